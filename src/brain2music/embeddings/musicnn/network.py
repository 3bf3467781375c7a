"""The forward pass of the musicnn and VGG taggers (Pons & Serra 2019) in numpy, float32.

A re-implementation of ``musicnn/models.py`` (TensorFlow 1 graph, inference mode) that reads the same
checkpoints. Input: ``(n_patches, 187, 96)`` log-mel patches (see :mod:`.spectrogram`). The architecture,
with TF's layer names (those of the checkpoint):

musicnn (``MTT_musicnn``, ``MSD_musicnn``)
    ``batch_normalization`` of the input (one scalar); front end: two timbral convolutions over
    7 frames x 38 / 67 mel bands (``conv2d``, ``conv2d_1``: 204 filters each, time padded by 3) and three
    temporal ones over 128 / 64 / 32 frames x 1 band (``conv2d_2..4``: 51 filters, TF "same" padding),
    each followed by ReLU, batch norm and a max over frequency -> 561 channels per frame; mid end: three
    convolutions over 7 frames x all channels (``conv2d_5..7``, 64 filters, ReLU, batch norm, the last two
    residual) -> 753 channels (front end + the three mid-end outputs); back end: max and mean over time
    (``max_pool``, ``mean_pool``: 753-d each), interleaved, batch norm, dense 200 + ReLU + batch norm
    (``penultimate``), dense 50 (logits) and a sigmoid (``taggram``).
vgg (``MTT_vgg``, ``MSD_vgg``)
    input batch norm, five 3x3 convolutions of 128 filters (``1CNN..5CNN``, ReLU, batch norm, max pools
    4x1/2, 2x2/2, 2x2/2, 2x2/2, 4x4/4) -> ``pool5`` (2 x 1 x 128, flattened to 256), dense 50, sigmoid.

Batch norm uses the stored moving averages and TF's default epsilon 0.001. Convolutions are im2col +
one float32 matrix product each (the BLAS numpy links), which is where all the time goes.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = ["N_FRAMES", "N_MELS", "ARCHITECTURES", "LAYERS", "expected_shapes", "prepare_weights", "forward"]

N_FRAMES = 187  # 3 s at 16 kHz, hop 256: librosa.time_to_frames(3, sr=16000, n_fft=512, hop_length=256) + 1
N_MELS = 96
BN_EPSILON = 1e-3  # tf.compat.v1.layers.batch_normalization default

#: layers each architecture can return, with their size
LAYERS = {
    "musicnn": {"taggram": 50, "logits": 50, "penultimate": 200, "mean_pool": 753, "max_pool": 753},
    "vgg": {"taggram": 50, "logits": 50, "pool5": 256},
}

ARCHITECTURES = {
    "MTT_musicnn": "musicnn",
    "MSD_musicnn": "musicnn",
    "MTT_vgg": "vgg",
    "MSD_vgg": "vgg",
}


def expected_shapes(model: str, n_classes: int = 50) -> dict[str, tuple[int, ...]]:
    """``{tensor name: shape}`` of every weight the forward pass of ``model`` reads from its checkpoint."""
    arch = ARCHITECTURES[model]
    shapes: dict[str, tuple[int, ...]] = {}

    def bn(index: int, n: int) -> None:
        name = "batch_normalization" + (f"_{index}" if index else "")
        for part in ("gamma", "beta", "moving_mean", "moving_variance"):
            shapes[f"{name}/{part}"] = (n,)

    def layer(name: str, kernel: tuple[int, ...]) -> None:
        shapes[f"{name}/kernel"] = kernel
        shapes[f"{name}/bias"] = (kernel[-1],)

    bn(0, 1)
    if arch == "musicnn":
        convs = [
            ((7, 38, 1, 204), 204),
            ((7, 67, 1, 204), 204),
            ((128, 1, 1, 51), 51),
            ((64, 1, 1, 51), 51),
            ((32, 1, 1, 51), 51),
            ((7, 561, 1, 64), 64),
            ((7, 64, 1, 64), 64),
            ((7, 64, 1, 64), 64),
        ]
        for i, (kernel, n) in enumerate(convs):
            layer("conv2d" + (f"_{i}" if i else ""), kernel)
            bn(i + 1, n)
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


def prepare_weights(weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Float32 copies of ``weights`` plus every batch norm as ``bn<i>/scale`` and ``bn<i>/shift``.

    Inference-mode batch norm is ``x * scale + shift`` with ``scale = gamma / sqrt(var + eps)`` and
    ``shift = beta - mean * scale``, the form TF's ``tf.nn.batch_normalization`` evaluates.
    """
    w = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in weights.items()}
    for key in [k for k in w if k.endswith("/gamma")]:
        name = key[: -len("/gamma")]
        index = int(name.rsplit("_", 1)[1]) if name != "batch_normalization" else 0
        scale = w[key] / np.sqrt(w[f"{name}/moving_variance"] + np.float32(BN_EPSILON))
        w[f"bn{index}/scale"] = scale.astype(np.float32)
        w[f"bn{index}/shift"] = (w[f"{name}/beta"] - w[f"{name}/moving_mean"] * scale).astype(np.float32)
    return w


def _bn(x: np.ndarray, w: dict[str, np.ndarray], index: int) -> np.ndarray:
    return x * w[f"bn{index}/scale"] + w[f"bn{index}/shift"]


def _conv_time(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray, before: int, after: int) -> np.ndarray:
    """Convolution over time of ``(B, T, C)`` with a ``(k, C, 1, n)`` kernel spanning all channels.

    Returns ``(B, T + before + after - k + 1, n)``.
    """
    k = kernel.shape[0]
    xp = np.pad(x, ((0, 0), (before, after), (0, 0)))
    cols = sliding_window_view(xp, k, axis=1)  # (B, T', C, k)
    b, t = cols.shape[:2]
    cols = np.ascontiguousarray(cols.transpose(0, 1, 3, 2)).reshape(b * t, -1)
    out = cols @ kernel.reshape(-1, kernel.shape[-1])
    out += bias
    return out.reshape(b, t, -1)


def _timbral(x: np.ndarray, w: dict[str, np.ndarray], conv: str, bn: int) -> np.ndarray:
    """``(B, T, F)`` -> ``(B, T, n)``: conv over 7 frames x k bands, ReLU, batch norm, max over frequency."""
    kernel = w[f"{conv}/kernel"]
    kt, kf, _, n = kernel.shape
    xp = np.pad(x, ((0, 0), (3, 3), (0, 0)))
    cols = sliding_window_view(xp, (kt, kf), axis=(1, 2))  # (B, T, F - kf + 1, kt, kf)
    b, t, f = cols.shape[:3]
    y = (np.ascontiguousarray(cols).reshape(b * t * f, kt * kf) @ kernel.reshape(kt * kf, n)).reshape(b, t, f, n)
    return _relu_bn_max(y, w, conv, bn)


def _relu_bn_max(y: np.ndarray, w: dict[str, np.ndarray], conv: str, bn: int) -> np.ndarray:
    """max over axis 2 of batch_norm(relu(y + bias)), without normalising every element.

    ReLU and an affine map with a positive scale are non-decreasing, so they commute with the max; a
    negative scale turns the max into a min.
    """
    bias = w[f"{conv}/bias"]
    scale, shift = w[f"bn{bn}/scale"], w[f"bn{bn}/shift"]
    hi = np.maximum(y.max(axis=2) + bias, 0.0)
    lo = np.maximum(y.min(axis=2) + bias, 0.0)
    return np.where(scale >= 0, hi, lo) * scale + shift


def _temporal(x: np.ndarray, w: dict[str, np.ndarray], conv: str, bn: int) -> np.ndarray:
    """``(B, T, F)`` -> ``(B, T, n)``: conv over k frames x 1 band ("same"), ReLU, batch norm, max over F."""
    kernel = w[f"{conv}/kernel"]
    k, n = kernel.shape[0], kernel.shape[-1]
    before = (k - 1) // 2  # TF "same": the extra padding goes after
    xp = np.pad(x, ((0, 0), (before, k - 1 - before), (0, 0)))
    cols = sliding_window_view(xp, k, axis=1)  # (B, T, F, k)
    b, t, f = cols.shape[:3]
    y = (np.ascontiguousarray(cols).reshape(b * t * f, k) @ kernel.reshape(k, n)).reshape(b, t, f, n)
    return _relu_bn_max(y, w, conv, bn)


def _musicnn(x: np.ndarray, w: dict[str, np.ndarray], layers: Iterable[str]) -> dict[str, np.ndarray]:
    x = _bn(x, w, 0)
    front = np.concatenate(
        [
            _timbral(x, w, "conv2d", 1),
            _timbral(x, w, "conv2d_1", 2),
            _temporal(x, w, "conv2d_2", 3),
            _temporal(x, w, "conv2d_3", 4),
            _temporal(x, w, "conv2d_4", 5),
        ],
        axis=2,
    )
    mid = [front]
    h = front
    for i, conv in enumerate(("conv2d_5", "conv2d_6", "conv2d_7")):
        y = _conv_time(h, w[f"{conv}/kernel"], w[f"{conv}/bias"], 3, 3)
        y = _bn(np.maximum(y, 0.0), w, 6 + i)
        h = y if i == 0 else y + h
        mid.append(h)
    features = np.concatenate(mid, axis=2)  # (B, T, 753)
    max_pool = features.max(axis=1)
    mean_pool = features.mean(axis=1, dtype=np.float32)
    flat = np.stack([max_pool, mean_pool], axis=2).reshape(len(x), -1)  # TF's concat on axis 2 + flatten
    flat = _bn(flat, w, 9)
    dense = np.maximum(flat @ w["dense/kernel"] + w["dense/bias"], 0.0)
    penultimate = _bn(dense, w, 10)
    logits = penultimate @ w["dense_1/kernel"] + w["dense_1/bias"]
    out = {"logits": logits, "penultimate": penultimate, "mean_pool": mean_pool, "max_pool": max_pool}
    return {k: out[k] for k in layers if k in out}


def _conv3x3(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """TF "same" 3x3 convolution of ``(B, H, W, C)`` -> ``(B, H, W, n)``."""
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    cols = sliding_window_view(xp, (3, 3), axis=(1, 2))  # (B, H, W, C, 3, 3)
    b, h, wd, c = cols.shape[:4]
    cols = np.ascontiguousarray(cols.transpose(0, 1, 2, 4, 5, 3)).reshape(b * h * wd, 9 * c)
    out = cols @ kernel.reshape(9 * c, -1)
    out += bias
    return out.reshape(b, h, wd, -1)


def _max_pool(x: np.ndarray, size: tuple[int, int], stride: tuple[int, int]) -> np.ndarray:
    """TF "valid" max pooling of ``(B, H, W, C)``."""
    win = sliding_window_view(x, size, axis=(1, 2))[:, :: stride[0], :: stride[1]]
    return win.max(axis=(-2, -1))


def _vgg(x: np.ndarray, w: dict[str, np.ndarray], layers: Iterable[str]) -> dict[str, np.ndarray]:
    h = _bn(x[..., None], w, 0)
    pools = [((4, 1), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((4, 4), (4, 4))]
    for i, (size, stride) in enumerate(pools):
        conv = f"{i + 1}CNN"
        h = _bn(np.maximum(_conv3x3(h, w[f"{conv}/kernel"], w[f"{conv}/bias"]), 0.0), w, i + 1)
        h = _max_pool(h, size, stride)
    pool5 = h.reshape(len(x), -1)
    logits = pool5 @ w["dense/kernel"] + w["dense/bias"]
    out = {"logits": logits, "pool5": pool5}
    return {k: out[k] for k in layers if k in out}


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return (0.5 * (1.0 + np.tanh(0.5 * z))).astype(np.float32)


def forward(
    patches: np.ndarray, weights: dict[str, np.ndarray], arch: str, layers: Iterable[str] = ("taggram",)
) -> dict[str, np.ndarray]:
    """Run the network on log-mel patches.

    Parameters
    ----------
    patches : ndarray, shape ``(n_patches, 187, 96)``
        ``log10(10000 * mel + 1)`` patches (float32).
    weights : dict
        The checkpoint's tensors (see :func:`expected_shapes`) after :func:`prepare_weights`.
    arch : {"musicnn", "vgg"}
    layers : iterable of str
        Any of :data:`LAYERS` ``[arch]``.

    Returns
    -------
    dict ``{layer: (n_patches, size)}`` float32.
    """
    layers = list(layers)
    x = np.ascontiguousarray(patches, dtype=np.float32)
    need = set(layers) | ({"logits"} if "taggram" in layers else set())
    out = _musicnn(x, weights, need) if arch == "musicnn" else _vgg(x, weights, need)
    if "taggram" in layers:
        out["taggram"] = _sigmoid(out["logits"])
    return {k: np.asarray(out[k], dtype=np.float32) for k in layers}
