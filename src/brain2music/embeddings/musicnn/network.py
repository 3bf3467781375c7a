"""The forward pass of the musicnn and VGG taggers (Pons & Serra 2019) in numpy, float32.

A re-implementation of ``musicnn/models.py`` (a TensorFlow 1 graph, run in inference mode) that reads
the same checkpoints. Input: log-mel patches of 187 frames x 96 bands (see :mod:`.spectrogram`). The
architecture, with TF's layer names (those of the checkpoint):

musicnn (``MTT_musicnn``, ``MSD_musicnn``)
    ``batch_normalization`` of the input (one scalar); front end: two timbral convolutions over
    7 frames x 38 / 67 mel bands (``conv2d``, ``conv2d_1``: 204 filters each, time zero-padded by 3) and
    three temporal ones over 128 / 64 / 32 frames x 1 band (``conv2d_2..4``: 51 filters, TF "same"
    padding), each followed by ReLU, batch norm and a max over frequency -> 561 channels per frame; mid
    end: three convolutions over 7 frames x all channels (``conv2d_5..7``, 64 filters, ReLU, batch norm,
    the last two residual) -> 753 channels (front end + the three mid-end outputs); back end: max and
    mean over time (``max_pool``, ``mean_pool``: 753-d each), interleaved, batch norm, dense 200 + ReLU +
    batch norm (``penultimate``), dense 50 (logits), sigmoid (``taggram``).
vgg (``MTT_vgg``, ``MSD_vgg``)
    input batch norm, five 3x3 convolutions of 128 filters (``1CNN..5CNN``, ReLU, batch norm, max pools
    4x1/2, 2x2/2, 2x2/2, 2x2/2, 4x4/4) -> ``pool5`` (2 x 1 x 128, flattened to 256), dense 50, sigmoid.

Batch norm uses the stored moving averages and TF's default epsilon 0.001.

Speed. Almost all the work is the two timbral convolutions (2.3 GFLOP per patch). Patches cut from one
spectrogram (the r = 9 overlapping 3-s windows of a clip, or a file's consecutive patches) share them:
:meth:`Network.forward_frames` convolves the whole spectrogram once and recomputes only the 3 frames at
each end of each patch, where the patch's own zero padding enters. The result is the same as running
every patch on its own (what the original does), to float32 rounding. Convolutions are one float32
matrix product each (im2col for the timbral ones, a banded weight matrix for the temporal ones), in
chunks that stay in cache, on one BLAS thread (parallelism belongs to clips: Dask workers); ReLU and batch norm are applied after the max over frequency (both are
monotone per channel, a negative batch-norm scale turning the max into a min).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = [
    "N_FRAMES",
    "N_MELS",
    "ARCHITECTURES",
    "LAYERS",
    "Network",
    "expected_shapes",
]

N_FRAMES = 187  # 3 s at 16 kHz, hop 256: librosa.time_to_frames(3, sr=16000, n_fft=512, hop_length=256) + 1
N_MELS = 96
BN_EPSILON = 1e-3  # tf.compat.v1.layers.batch_normalization default
_TIME_CHUNK = 32  # output frames per timbral matrix product (keeps im2col in cache)
_TEMPORAL_CHUNK = 16  # output frames per temporal matrix product

#: layers each architecture can return, with their size
LAYERS = {
    "musicnn": {"taggram": 50, "logits": 50, "penultimate": 200, "mean_pool": 753, "max_pool": 753},
    "vgg": {"taggram": 50, "logits": 50, "pool5": 256},
}

ARCHITECTURES = {"MTT_musicnn": "musicnn", "MSD_musicnn": "musicnn", "MTT_vgg": "vgg", "MSD_vgg": "vgg"}

_TIMBRAL = (("conv2d", 1), ("conv2d_1", 2))
_TEMPORAL = (("conv2d_2", 3), ("conv2d_3", 4), ("conv2d_4", 5))
_MIDEND = (("conv2d_5", 6), ("conv2d_6", 7), ("conv2d_7", 8))


def _bn_name(index: int) -> str:
    return "batch_normalization" + (f"_{index}" if index else "")


def expected_shapes(model: str, n_classes: int = 50) -> dict[str, tuple[int, ...]]:
    """``{tensor name: shape}`` of every weight the forward pass of ``model`` reads from its checkpoint."""
    shapes: dict[str, tuple[int, ...]] = {}

    def bn(index: int, n: int) -> None:
        for part in ("gamma", "beta", "moving_mean", "moving_variance"):
            shapes[f"{_bn_name(index)}/{part}"] = (n,)

    def layer(name: str, kernel: tuple[int, ...]) -> None:
        shapes[f"{name}/kernel"] = kernel
        shapes[f"{name}/bias"] = (kernel[-1],)

    bn(0, 1)
    if ARCHITECTURES[model] == "musicnn":
        kernels = [(7, 38, 1, 204), (7, 67, 1, 204), (128, 1, 1, 51), (64, 1, 1, 51), (32, 1, 1, 51)]
        kernels += [(7, 561, 1, 64), (7, 64, 1, 64), (7, 64, 1, 64)]
        for i, kernel in enumerate(kernels):
            layer("conv2d" + (f"_{i}" if i else ""), kernel)
            bn(i + 1, kernel[-1])
        bn(9, 2 * 753)
        layer("dense", (2 * 753, 200))
        bn(10, 200)
        layer("dense_1", (200, n_classes))
    else:
        for i in range(5):
            layer(f"{i + 1}CNN", (3, 3, 1 if i == 0 else 128, 128))
            bn(i + 1, 128)
        layer("dense", (256, n_classes))
    return shapes


def _banded(kernel: np.ndarray, n_out: int) -> np.ndarray:
    """``(n_out + k - 1, n_out * n)`` matrix ``B`` with ``x[t0 : t0 + n_out + k - 1] @ B`` = the correlation
    of ``x`` with the ``(k, n)`` kernel at output frames ``t0 .. t0 + n_out - 1``."""
    k, n = kernel.shape
    band = np.zeros((n_out + k - 1, n_out, n), dtype=np.float32)
    for t in range(n_out):
        band[t : t + k, t, :] = kernel
    return band.reshape(n_out + k - 1, n_out * n)


class Network:
    """One pretrained tagger, ready to run.

    Parameters
    ----------
    weights : dict
        ``{tensor name: array}`` as read from the checkpoint (at least :func:`expected_shapes`).
    arch : {"musicnn", "vgg"}
    """

    def __init__(self, weights: dict[str, np.ndarray], arch: str):
        if arch not in LAYERS:
            raise ValueError(f"arch must be 'musicnn' or 'vgg', got {arch!r}")
        self.arch = arch
        w = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in weights.items()}
        self.bn: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for key in [k for k in w if k.startswith("batch_normalization") and k.endswith("/gamma")]:
            name = key[: -len("/gamma")]
            index = int(name.rsplit("_", 1)[1]) if name != "batch_normalization" else 0
            # tf.nn.batch_normalization: x * (gamma * rsqrt(var + eps)) + (beta - mean * that)
            scale = (w[key] / np.sqrt(w[f"{name}/moving_variance"] + np.float32(BN_EPSILON))).astype(
                np.float32
            )
            self.bn[index] = (
                scale,
                (w[f"{name}/beta"] - w[f"{name}/moving_mean"] * scale).astype(np.float32),
            )
        self.w = w
        if arch == "musicnn":
            # Channels whose batch-norm scale is >= 0 need the max over frequency, the others the min:
            # order the filters so each group is one contiguous slice (one reduction per element).
            self._order: dict[str, tuple[np.ndarray, np.ndarray, int]] = {}
            for conv, bn in _TIMBRAL + _TEMPORAL:
                positive = self.bn[bn][0] >= 0
                perm = np.concatenate([np.flatnonzero(positive), np.flatnonzero(~positive)])
                self._order[conv] = (perm, np.argsort(perm), int(positive.sum()))
            self._kernels = {
                conv: np.ascontiguousarray(w[f"{conv}/kernel"][..., self._order[conv][0]])
                for conv, _ in _TIMBRAL
            }
            self._banded = {
                conv: _banded(w[f"{conv}/kernel"][:, 0, 0, self._order[conv][0]], _TEMPORAL_CHUNK)
                for conv, _ in _TEMPORAL
            }

    # -- shared pieces -------------------------------------------------------------------------------
    def _norm(self, x: np.ndarray, index: int) -> np.ndarray:
        scale, shift = self.bn[index]
        return x * scale + shift

    def _pool_freq(self, extreme: np.ndarray, conv: str, bn: int) -> np.ndarray:
        """batch_norm(relu(y + bias)) max-pooled over frequency, from ``extreme``: the max of ``y`` over
        frequency for the filters (in ``self._order`` order) whose scale is >= 0, the min for the others."""
        scale, shift = self.bn[bn]
        top = extreme[..., self._order[conv][1]] + self.w[f"{conv}/bias"]
        return np.maximum(top, 0.0) * scale + shift

    def _timbral(self, x: np.ndarray, conv: str, bn: int) -> np.ndarray:
        """'valid' over time: ``(N, L, 96)`` -> ``(N, L - 6, 204)`` (conv, ReLU, batch norm, max over bands)."""
        kernel = self._kernels[conv]
        kt, kf, _, n = kernel.shape
        k2 = kernel.reshape(kt * kf, n)
        p = self._order[conv][2]
        n_items, length, n_bands = x.shape
        t_out, f_out = length - kt + 1, n_bands - kf + 1
        extreme = np.empty((n_items, t_out, n), dtype=np.float32)
        windows = sliding_window_view(x, (kt, kf), axis=(1, 2))  # (N, t_out, f_out, kt, kf)
        for i in range(n_items):
            for t0 in range(0, t_out, _TIME_CHUNK):
                cols = windows[i, t0 : t0 + _TIME_CHUNK].reshape(-1, kt * kf)
                y = (cols @ k2).reshape(-1, f_out, n)
                extreme[i, t0 : t0 + _TIME_CHUNK, :p] = y[:, :, :p].max(axis=1)
                extreme[i, t0 : t0 + _TIME_CHUNK, p:] = y[:, :, p:].min(axis=1)
        return self._pool_freq(extreme, conv, bn)

    def _temporal(self, patches: np.ndarray, conv: str, bn: int) -> np.ndarray:
        """TF 'same' over time: ``(B, 187, 96)`` -> ``(B, 187, 51)``."""
        k = self.w[f"{conv}/kernel"].shape[0]
        band = self._banded[conv]
        n = self.w[f"{conv}/kernel"].shape[-1]
        b, t, f = patches.shape
        step = _TEMPORAL_CHUNK
        n_chunks = -(-t // step)
        before = (k - 1) // 2  # TF "same" puts the odd extra frame of padding after
        xp = np.pad(patches, ((0, 0), (before, k - 1 - before + n_chunks * step - t), (0, 0)))
        xt = np.ascontiguousarray(xp.transpose(0, 2, 1))  # (B, F, frames): one row per band
        p = self._order[conv][2]
        extreme = np.empty((b, n_chunks * step, n), dtype=np.float32)
        for c in range(n_chunks):
            rows = xt[:, :, c * step : c * step + step + k - 1].reshape(b * f, -1)
            y = (rows @ band).reshape(b, f, step, n)
            extreme[:, c * step : (c + 1) * step, :p] = y[..., :p].max(axis=1)
            extreme[:, c * step : (c + 1) * step, p:] = y[..., p:].min(axis=1)
        return self._pool_freq(extreme[:, :t], conv, bn)

    def _conv_time(self, x: np.ndarray, conv: str) -> np.ndarray:
        """Convolution over 7 frames x all channels, time zero-padded by 3: ``(B, T, C)`` -> ``(B, T, 64)``."""
        kernel = self.w[f"{conv}/kernel"]
        k = kernel.shape[0]
        xp = np.pad(x, ((0, 0), (3, 3), (0, 0)))
        cols = sliding_window_view(xp, k, axis=1)  # (B, T, C, k)
        b, t = cols.shape[:2]
        cols = np.ascontiguousarray(cols.transpose(0, 1, 3, 2)).reshape(b * t, -1)
        out = cols @ kernel.reshape(-1, kernel.shape[-1])
        out += self.w[f"{conv}/bias"]
        return out.reshape(b, t, -1)

    # -- musicnn ---------------------------------------------------------------------------------------
    def _front_end(self, spectrogram: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """``(B, 187, 561)`` front-end features of the patches ``spectrogram[o : o + 187]``."""
        x = self._norm(spectrogram, 0)  # the original pads after the input batch norm
        patches = np.stack([x[o : o + N_FRAMES] for o in offsets])
        full = np.pad(x, ((3, 3), (0, 0)))[None]
        zeros = np.zeros((3, N_MELS), dtype=np.float32)
        # The 3 frames at each end of a patch see its zero padding: recompute them from the patch alone.
        edges = np.stack(
            [np.concatenate([zeros, p[:6]]) for p in patches]
            + [np.concatenate([p[-6:], zeros]) for p in patches]
        )
        parts = []
        for conv, bn in _TIMBRAL:
            whole = self._timbral(full, conv, bn)[0]
            edge = self._timbral(edges, conv, bn)
            feats = np.stack([whole[o : o + N_FRAMES] for o in offsets])
            feats[:, :3] = edge[: len(offsets)]
            feats[:, -3:] = edge[len(offsets) :]
            parts.append(feats)
        parts += [self._temporal(patches, conv, bn) for conv, bn in _TEMPORAL]
        return np.concatenate(parts, axis=2)

    def _musicnn(self, spectrogram: np.ndarray, offsets: np.ndarray, need: set[str]) -> dict[str, np.ndarray]:
        front = self._front_end(spectrogram, offsets)
        mid = [front]
        h = front
        for i, (conv, bn) in enumerate(_MIDEND):
            y = self._norm(np.maximum(self._conv_time(h, conv), 0.0), bn)
            h = y if i == 0 else y + h  # residual connections on the 2nd and 3rd
            mid.append(h)
        features = np.concatenate(mid, axis=2)  # (B, 187, 753)
        out = {"max_pool": features.max(axis=1), "mean_pool": features.mean(axis=1, dtype=np.float32)}
        if need & {"penultimate", "logits"}:
            # TF concatenates [max, mean] on a new last axis and flattens: they interleave.
            flat = np.stack([out["max_pool"], out["mean_pool"]], axis=2).reshape(len(offsets), -1)
            dense = np.maximum(self._norm(flat, 9) @ self.w["dense/kernel"] + self.w["dense/bias"], 0.0)
            out["penultimate"] = self._norm(dense, 10)
            out["logits"] = out["penultimate"] @ self.w["dense_1/kernel"] + self.w["dense_1/bias"]
        return out

    # -- vgg -------------------------------------------------------------------------------------------
    def _conv3x3(self, x: np.ndarray, conv: str) -> np.ndarray:
        """TF 'same' 3x3 convolution of ``(B, H, W, C)`` -> ``(B, H, W, 128)``."""
        kernel = self.w[f"{conv}/kernel"]
        xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
        cols = sliding_window_view(xp, (3, 3), axis=(1, 2))  # (B, H, W, C, 3, 3)
        b, h, wd, c = cols.shape[:4]
        out = np.empty((b, h, wd, kernel.shape[-1]), dtype=np.float32)
        k2 = kernel.reshape(9 * c, -1)
        for i in range(b):  # one patch at a time keeps the im2col matrix small
            col = np.ascontiguousarray(cols[i].transpose(0, 1, 3, 4, 2)).reshape(h * wd, 9 * c)
            out[i] = (col @ k2).reshape(h, wd, -1)
        out += self.w[f"{conv}/bias"]
        return out

    def _vgg(self, spectrogram: np.ndarray, offsets: np.ndarray, need: set[str]) -> dict[str, np.ndarray]:
        h = self._norm(np.stack([spectrogram[o : o + N_FRAMES] for o in offsets])[..., None], 0)
        pools = [((4, 1), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((4, 4), (4, 4))]
        for i, (size, stride) in enumerate(pools):
            h = self._norm(np.maximum(self._conv3x3(h, f"{i + 1}CNN"), 0.0), i + 1)
            h = sliding_window_view(h, size, axis=(1, 2))[:, :: stride[0], :: stride[1]].max(axis=(-2, -1))
        pool5 = h.reshape(len(offsets), -1)
        return {"pool5": pool5, "logits": pool5 @ self.w["dense/kernel"] + self.w["dense/bias"]}

    # -- public ----------------------------------------------------------------------------------------
    def forward_frames(
        self, spectrogram: np.ndarray, offsets: Sequence[int], layers: Iterable[str] = ("taggram",)
    ) -> dict[str, np.ndarray]:
        """Run the network on the patches ``spectrogram[o : o + 187]`` for ``o`` in ``offsets``.

        Parameters
        ----------
        spectrogram : ndarray, shape ``(n_frames, 96)``
            ``log10(10000 * mel + 1)`` frames (float32).
        offsets : sequence of int
            First frame of each patch; patches may overlap.
        layers : iterable of str
            Any of :data:`LAYERS` ``[arch]``.

        Returns
        -------
        dict ``{layer: (n_patches, size)}`` float32; each patch as if run on its own.
        """
        layers = list(layers)
        unknown = [name for name in layers if name not in LAYERS[self.arch]]
        if unknown:
            raise ValueError(
                f"unknown layers {unknown} for {self.arch}; expected {sorted(LAYERS[self.arch])}"
            )
        x = np.ascontiguousarray(spectrogram, dtype=np.float32)
        offsets = np.asarray(offsets, dtype=np.int64)
        if x.ndim != 2 or x.shape[1] != N_MELS:
            raise ValueError(f"spectrogram must be (n_frames, {N_MELS}), got {x.shape}")
        if len(offsets) == 0 or offsets.min() < 0 or offsets.max() + N_FRAMES > len(x):
            raise ValueError(f"patch offsets must lie in [0, {len(x) - N_FRAMES}], got {offsets.tolist()}")
        need = set(layers) | ({"logits"} if "taggram" in layers else set())
        from threadpoolctl import threadpool_limits  # comes with scikit-learn

        # The products are small (cache-sized chunks): BLAS threads only contend, badly on a busy machine
        # (5 s instead of 0.3 s per clip measured with 2 threads under load). Parallelise over clips.
        with threadpool_limits(1, user_api="blas"):
            run = self._musicnn if self.arch == "musicnn" else self._vgg
            out = run(x, offsets, need)
        if "taggram" in layers:
            out["taggram"] = 1.0 / (1.0 + np.exp(-out["logits"]))
        return {name: np.asarray(out[name], dtype=np.float32) for name in layers}

    def forward(self, patches: np.ndarray, layers: Iterable[str] = ("taggram",)) -> dict[str, np.ndarray]:
        """Run the network on ``(n_patches, 187, 96)`` patches, each on its own: ``{layer: (n_patches, size)}``."""
        patches = np.asarray(patches, dtype=np.float32)
        if patches.ndim != 3 or patches.shape[1:] != (N_FRAMES, N_MELS):
            raise ValueError(f"patches must be (n_patches, {N_FRAMES}, {N_MELS}), got {patches.shape}")
        offsets = np.arange(len(patches)) * N_FRAMES
        return self.forward_frames(patches.reshape(-1, N_MELS), offsets, layers)
