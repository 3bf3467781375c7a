"""One subject's linear kernel, computed once and shared by every all-voxel ridge of that subject.

The decoders of all embeddings read the same voxels; only the samples differ: window samples are averages
of a clip's TRs (:func:`brain2music.data.preprocess.window_average`), and leave-one-genre-out drops whole
clips. So the kernel of every such sample set follows from the kernel of the TRs, ``K_TR = X_c X_c^T``
(one pass over the responses, the only ``O(n^2 n_voxels)`` step): a window kernel is ``B K_TR B^T`` with the
per-clip averaging ``B`` (``O(n^2 r)``), a clip subset is a block, and re-centring with the new samples' own
means is ``C K C``. A :class:`KernelView` also keeps the per-penalty factorisations of a CV
(:class:`~brain2music.models._dual.DualCV`) when asked, for a second set of targets on the same samples.

Use::

    sk = SubjectKernel(sub.train)                                  # (n_clips, n_trs, n_voxels)
    view = sk.windowed(1.5)                                        # rows = window_average(...).reshape(-1, V)
    RidgeDecoder().fit(X, Y, groups, kernel=view)                  # X = those rows
    RidgeDecoder().fit(X[keep_rows], Y[keep_rows], g, kernel=view.subset(keep_clips))
"""

from __future__ import annotations

import numpy as np

from brain2music.errors import DataError
from brain2music.models import _backend as B
from brain2music.models._dual import DualCV, centered_linear_kernel, double_center

__all__ = ["SubjectKernel", "KernelView"]


class SubjectKernel:
    """The centred linear kernel of a subject's TRs, from which every window and clip subset is derived.

    Parameters
    ----------
    responses : ndarray (n_clips, n_trs, n_voxels) float32, held by reference (not copied); or
        ``(n_samples, n_voxels)`` (then only :meth:`view` is available, no windows).
    backend : himalaya backend of the kernel and the solves ("numpy", "torch", "torch_cuda", "cupy").
    cache_factors : keep each view's per-penalty factorisations (``n_alphas * n_samples^2 * 4`` bytes) so a
        second set of targets on the same samples only pays the products with the targets.
    tr : repetition time (s) of the TRs, for the window weights.
    """

    def __init__(self, responses, *, backend: str = "numpy", cache_factors: bool = False, tr: float = 1.5):
        responses = np.asarray(responses)
        if responses.ndim == 2:
            responses = responses[:, None, :]
        if responses.ndim != 3 or min(responses.shape) == 0:
            raise DataError(
                f"responses must be (n_clips, n_trs, n_voxels) or (n_samples, n_voxels); got {responses.shape}"
            )
        self.responses = responses
        self.backend = backend
        self.b = B.get_backend(backend)
        self.cache_factors = bool(cache_factors)
        self.tr = float(tr)
        self._tr_kernel = None
        self._views: dict = {}

    @property
    def n_clips(self) -> int:
        """Number of clips (first axis of ``responses``; the samples of a 2-d input)."""
        return self.responses.shape[0]

    @property
    def n_trs(self) -> int:
        """TRs per clip (second axis of ``responses``; 1 for a 2-d input)."""
        return self.responses.shape[1]

    @property
    def n_features(self) -> int:
        """Number of voxels (last axis of ``responses``)."""
        return self.responses.shape[2]

    def tr_kernel(self):
        """Centred kernel of all TR rows ``(n_clips * n_trs, n_clips * n_trs)`` (computed on first use)."""
        if self._tr_kernel is None:
            X = self.responses.reshape(-1, self.n_features)
            mean = X.mean(axis=0, dtype=np.float64).astype(np.float32)
            self._tr_kernel = centered_linear_kernel(self.b, X, mean)
        return self._tr_kernel

    def view(self) -> KernelView:
        """The view of the TR rows themselves (``responses.reshape(-1, n_voxels)``)."""
        if "rows" not in self._views:
            self._views["rows"] = KernelView(self, self.tr_kernel(), self.n_trs, np.arange(self.n_clips))
        return self._views["rows"]

    def windowed(self, window: float) -> KernelView:
        """The view of the window samples of ``window`` seconds (rows clip-major, as ``window_average``)."""
        from brain2music.windows import window_tr_weights

        key = ("window", float(window))
        if key not in self._views:
            W = window_tr_weights(window, self.n_trs, tr=self.tr).astype(np.float32)
            r = W.shape[0]
            if r == self.n_trs and np.array_equal(W, np.eye(r, dtype=np.float32)):
                self._views[key] = self.view()
            else:
                K = _average_windows(self.b, self.tr_kernel(), W, self.n_clips)
                self._views[key] = KernelView(self, double_center(self.b, K), r, np.arange(self.n_clips))
        return self._views[key]


def _average_windows(b, K, W: np.ndarray, n_clips: int):
    """``B K B^T`` for the block-diagonal per-clip averaging ``B = I ⊗ W`` (W: (r, n_trs)), in O(n^2 r)."""
    r, t = W.shape
    Wd = B.asarray(b, W.T.copy())  # (t, r)
    # Right index: (c, t, c', t') x W^T -> (c, t, c', r); then the left TR index.
    right = (K.reshape(n_clips * t * n_clips, t) @ Wd).reshape(n_clips, t, n_clips, r)
    left = b.transpose(right, (0, 2, 3, 1)).reshape(n_clips * n_clips * r, t) @ Wd  # (c, c', r', r)
    return b.transpose(left.reshape(n_clips, n_clips, r, r), (0, 3, 1, 2)).reshape(n_clips * r, n_clips * r)


class KernelView:
    """The centred kernel of one sample set of a :class:`SubjectKernel` (rows clip-major, ``r`` per clip).

    Attributes
    ----------
    clips : indices (into the subject's clips) of the clips whose samples these are
    r : samples per clip
    n_samples, n_features
    """

    def __init__(self, parent: SubjectKernel, kernel, r: int, clips: np.ndarray):
        self.parent = parent
        self.b = parent.b
        self._kernel = kernel
        self.r = int(r)
        self.clips = np.asarray(clips, dtype=np.int64)
        self._cv: dict = {}
        #: Keep the per-penalty factorisations of :meth:`cv` (default: the parent's ``cache_factors``).
        self.keep_factors = parent.cache_factors

    @property
    def n_samples(self) -> int:
        """Rows of the view's kernel: ``len(clips) * r``."""
        return int(self.clips.size * self.r)

    @property
    def n_features(self) -> int:
        """Number of voxels of the parent's responses."""
        return self.parent.n_features

    @property
    def backend(self) -> str:
        """The parent's himalaya backend name (``"numpy"``, ``"torch"``, ``"torch_cuda"``, ``"cupy"``)."""
        return self.parent.backend

    def kernel(self):
        """The centred kernel ``(n_samples, n_samples)`` (backend array, float32)."""
        return self._kernel

    def subset(self, clips) -> KernelView:
        """The view of only ``clips`` (indices or a boolean mask over this view's clips), all their samples."""
        clips = np.asarray(clips)
        if clips.dtype == bool:
            if clips.shape != (self.clips.size,):
                raise DataError(
                    f"clip mask must have one flag per clip ({self.clips.size}); got {clips.shape}"
                )
            clips = np.flatnonzero(clips)
        clips = clips.astype(np.int64)
        if clips.size == 0 or clips.min() < 0 or clips.max() >= self.clips.size:
            raise DataError(f"clip indices must lie in [0, {self.clips.size}); got {clips.size} indices")
        rows = (clips[:, None] * self.r + np.arange(self.r)[None, :]).ravel()
        K = double_center(self.b, B.take_block(self.b, self._kernel, rows))
        return KernelView(self.parent, K, self.r, self.clips[clips])

    def check(self, X: np.ndarray, x_mean: np.ndarray, name: str = "X") -> None:
        """Raise :class:`DataError` unless ``X`` (n_samples, n_features) holds this view's samples.

        Compares a few diagonal entries ``|x_i - mean|^2`` with the kernel (cheap, and catches a view of
        another window, clip subset or subject).
        """
        if X.shape != (self.n_samples, self.n_features):
            raise DataError(
                f"{name} has shape {X.shape}; the kernel view holds {self.n_samples} samples x "
                f"{self.n_features} voxels ({self.clips.size} clips x r={self.r})"
            )
        rows = np.unique(np.linspace(0, self.n_samples - 1, 8).astype(int))
        diff = np.asarray(X[rows], dtype=np.float64) - x_mean
        expected = (diff * diff).sum(axis=1)
        K = self._kernel
        got = np.array([float(B.to_numpy(K[int(i), int(i)])) for i in rows])
        scale = max(float(np.mean(expected)), 1e-12)
        if not np.allclose(got, expected, rtol=1e-3, atol=1e-3 * scale):
            raise DataError(
                f"{name} does not hold the samples of this kernel view (squared norms of rows {rows[:3].tolist()} "
                f"are {np.round(expected[:3], 3).tolist()}, the kernel says {np.round(got[:3], 3).tolist()}): "
                "pass the view of the same responses, window and clips"
            )

    def cv(self, splits, alphas) -> DualCV:
        """The grouped-CV solver on this kernel (kept per (folds, penalties) when the parent caches factors)."""
        key = (
            tuple(np.asarray(t, dtype=np.int64).tobytes() for _, t in splits),
            tuple(np.asarray(alphas).tolist()),
        )
        if key in self._cv:
            return self._cv[key]
        solver = DualCV(self.b, self._kernel, splits, alphas, keep=self.keep_factors)
        if self.keep_factors:
            self._cv = {key: solver}  # the most recent CV only: factors are large
        return solver
