"""The compute backend of the ridge solvers: himalaya's backends, plus the few dense kernels they lack.

``backend="numpy" | "torch" | "torch_cuda" | "cupy"`` selects a himalaya backend module
(``himalaya.backend.set_backend``); the solvers then hold their float32 arrays on that backend's device and
use its array operations. himalaya's backends have no Cholesky factorisation, so :func:`cholesky_inverse`
and :func:`cholesky_solve` call LAPACK (numpy), ``torch.linalg`` or ``cupy.linalg`` directly. Results go back
to numpy with :func:`to_numpy`.
"""

from __future__ import annotations

import contextlib
import functools
import os

import numpy as np

from brain2music._checks import check_choice
from brain2music._registry import Registry
from brain2music.errors import ConfigError

__all__ = ["BACKENDS", "get_backend", "use_backend", "to_numpy", "cholesky_inverse", "cholesky_solve"]


def _check_available(name: str) -> None:
    """Raise ConfigError when a backend's library or device is missing (before himalaya imports it:
    its ``torch_cuda`` module would otherwise skip a whole pytest run, or raise a bare RuntimeError)."""
    if name in ("torch", "torch_cuda"):
        try:
            import torch
        except ImportError as err:
            raise ConfigError(
                f"backend={name!r} needs PyTorch: install the neural extra (pip install -e '.[neural]')"
            ) from err
        if name == "torch_cuda" and not torch.cuda.is_available():
            raise ConfigError(
                "backend='torch_cuda' needs a CUDA GPU and a CUDA build of PyTorch; none is available here "
                "(torch.cuda.is_available() is False). Use backend='numpy' or 'torch' on a CPU."
            )
    elif name == "cupy":
        try:
            import cupy  # noqa: F401
            import cupyx.scipy.linalg  # noqa: F401
        except ImportError as err:
            raise ConfigError(
                "backend='cupy' needs CuPy and a CUDA GPU (pip install cupy-cuda12x); it is not installed"
            ) from err


#: The himalaya backends the solvers accept, each with the check that its library and device are present.
_BACKENDS: Registry = Registry("backend", order="registration")
for _name in ("numpy", "torch", "torch_cuda", "cupy"):
    _BACKENDS.register(_name, _check_available)
BACKENDS = tuple(_BACKENDS.names())


def get_backend(name: str = "numpy"):
    """The himalaya backend module ``name`` (validated), without changing himalaya's global backend."""
    check_choice(name, BACKENDS, what="backend")
    _BACKENDS.get(name)(name)
    with use_backend(name) as module:
        return module


@contextlib.contextmanager
def use_backend(name: str):
    """Set himalaya's backend to ``name`` for the block (restored afterwards) and yield its module."""
    from himalaya.backend import get_backend as himalaya_get
    from himalaya.backend import set_backend

    previous = himalaya_get().name
    try:
        yield set_backend(name)
    finally:
        set_backend(previous)


def to_numpy(array) -> np.ndarray:
    """A backend array (numpy, torch, cupy) as a numpy array on the host."""
    if isinstance(array, np.ndarray):
        return array
    if hasattr(array, "detach"):  # torch
        return array.detach().cpu().numpy()
    if hasattr(array, "get"):  # cupy
        return array.get()
    return np.asarray(array)


def asarray(b, array, dtype: str = "float32"):
    """``array`` on backend ``b``'s device (no copy on the CPU backends when already float32)."""
    if b.name == "numpy":
        return np.asarray(array, dtype=dtype)
    if b.name.startswith("torch") and isinstance(array, np.ndarray):
        import torch

        array = np.ascontiguousarray(array, dtype=dtype)
        tensor = torch.from_numpy(array)
        return tensor if b.name == "torch" else tensor.to("cuda", non_blocking=False)
    return b.asarray(array, dtype=dtype)


def index(b, idx: np.ndarray):
    """Integer indices usable to index arrays of backend ``b``."""
    idx = np.asarray(idx, dtype=np.int64)
    if b.name == "numpy":
        return idx
    return b.asarray(idx, dtype="int64")


def take_block(b, K, rows: np.ndarray):
    """``K[rows][:, rows]`` (numpy: Fortran-ordered, the layout LAPACK factorises without a copy)."""
    if b.name == "numpy":
        return np.asfortranarray(K[np.ix_(rows, rows)])
    idx = index(b, rows)
    return K[idx][:, idx]


def shifted_copy(b, A, value: float, *, constant: float = 0.0, out=None):
    """A copy of the square ``A`` plus ``constant`` in every entry and ``value`` on the diagonal
    (numpy: into ``out`` when given, a Fortran-ordered buffer of the same shape)."""
    if b.name == "numpy":
        if out is None:
            out = np.empty(A.shape, dtype=A.dtype, order="F")
        np.add(A, np.float32(constant), out=out)
        out.flat[:: out.shape[0] + 1] += np.float32(value)
        return out
    out = A + constant
    if b.name.startswith("torch"):
        out.diagonal().add_(value)
        return out
    diag = b.arange(out.shape[0])  # cupy
    out[diag, diag] += value
    return out


#: Below this size LAPACK runs on one BLAS thread: threads save little on small factorisations.
SMALL_LAPACK = 2048


def lapack_thread_count(n: int) -> int:
    """BLAS threads for a LAPACK factorisation of an ``n x n`` matrix: one below :data:`SMALL_LAPACK`, else
    the cores not already busy (1-minute load average), at most the current BLAS limit.

    OpenBLAS's threaded potrf/potri synchronise so often that with more runnable jobs than cores they
    collapse: measured on the shared 2-core machine at load 4, a 4,800 x 4,800 inverse took 7.7 s with 2
    threads against 1.7 s with one, and 1 s against 15 ms at 960 x 960. On an idle machine every core is
    used.
    """
    if n < SMALL_LAPACK:
        return 1
    current = blas_threads()
    cores = os.cpu_count() or 1
    try:
        busy = int(os.getloadavg()[0])  # includes this process when it is running
    except OSError:
        busy = 1
    return max(1, min(current, cores - busy + 1))


@functools.cache
def _controller():
    # Built once: threadpoolctl scans the loaded libraries (~15 ms) every time a controller is created.
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def blas_threads() -> int:
    """The BLAS thread limit the process runs under (``OPENBLAS_NUM_THREADS`` etc., else the cores)."""
    limits = [lib.num_threads for lib in _controller().select(user_api="blas").lib_controllers]
    return max(limits) if limits else 1


def cpu_workers(b) -> int:
    """Threads a CPU backend may run independent single-threaded tasks on (1 on a GPU backend)."""
    if b.name == "numpy":
        return blas_threads()
    if b.name == "torch":
        import torch

        return torch.get_num_threads()
    return 1


@contextlib.contextmanager
def single_thread(b):
    """Context: the backend's CPU linear algebra on one thread (the caller parallelises over tasks)."""
    if b.name == "numpy":
        with _controller().limit(limits=1, user_api="blas"):
            yield
    elif b.name == "torch":
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(before)
    else:
        yield


def lapack_threads(n: int):
    """Context limiting BLAS to :func:`lapack_thread_count` threads."""
    return _controller().limit(limits=lapack_thread_count(n), user_api="blas")


def _device_cholesky(b, A):
    """The lower Cholesky factor of ``A`` on a torch or cupy backend, or ``None`` when ``A`` is not
    numerically positive definite (torch reports it in ``info``; cupy raises or returns non-finite)."""
    if b.name.startswith("torch"):
        import torch

        L, info = torch.linalg.cholesky_ex(A)
        return None if int(info) != 0 else L
    import cupy

    try:
        L = cupy.linalg.cholesky(A)
    except cupy.linalg.LinAlgError:
        return None
    return L if bool(cupy.isfinite(L).all()) else None


def cholesky_inverse(b, A):
    """Inverse of the symmetric positive definite ``A (n, n)`` from its Cholesky factor, or ``None`` when
    ``A`` is not numerically positive definite in float32. ``A`` may be overwritten.

    numpy: only the lower triangle of the result is valid (LAPACK ``potri``, computed in ``A``'s memory);
    read diagonal blocks with :func:`sym_block`. torch / cupy: the full symmetric inverse.
    """
    if b.name == "numpy":
        from scipy.linalg import lapack

        potrf, potri = lapack.get_lapack_funcs(("potrf", "potri"), (A,))
        c, info = potrf(A, lower=1, overwrite_a=1, clean=0)
        if info != 0:
            return None
        inv, info = potri(c, lower=1, overwrite_c=1)
        return inv if info == 0 else None
    L = _device_cholesky(b, A)
    if L is None:
        return None
    if b.name.startswith("torch"):
        import torch

        return torch.cholesky_inverse(L)
    import cupy
    import cupyx.scipy.linalg

    Linv = cupyx.scipy.linalg.solve_triangular(L, cupy.eye(A.shape[0], dtype=A.dtype), lower=True)
    return Linv.T @ Linv


def _symmetrize_lower(M: np.ndarray, block: int = 512) -> np.ndarray:
    """Copy the lower triangle of ``M`` onto the upper one in place (blocks keep the transposed reads cached)."""
    n = M.shape[0]
    for j in range(0, n, block):
        k = min(j + block, n)
        M[j:k, k:] = M[k:, j:k].T
        tile = M[j:k, j:k]
        low = np.tril(tile)
        tile[...] = low + np.tril(low, -1).T
    return M


def sym_block(b, M, start: int, stop: int):
    """The symmetric diagonal block ``M[start:stop, start:stop]`` (a copy) of a :func:`cholesky_inverse`."""
    block = M[start:stop, start:stop]
    if b.name == "numpy":
        low = np.tril(block)
        return low + np.tril(low, -1).T
    return b.copy(block)


def cholesky_solve(b, A, B):
    """``A^{-1} B`` for a symmetric positive definite ``A`` (float32), or ``None`` if ``A`` is not PD."""
    if b.name == "numpy":
        from scipy.linalg import cho_factor, cho_solve

        try:
            factor = cho_factor(A, lower=True, overwrite_a=True, check_finite=False)
        except np.linalg.LinAlgError:
            return None
        return cho_solve(factor, B, check_finite=False)
    L = _device_cholesky(b, A)
    if L is None:
        return None
    if b.name.startswith("torch"):
        import torch

        return torch.cholesky_solve(B, L)
    import cupyx.scipy.linalg

    Z = cupyx.scipy.linalg.solve_triangular(L, B, lower=True)
    return cupyx.scipy.linalg.solve_triangular(L.T, Z, lower=False)
