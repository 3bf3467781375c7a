"""The dense kernels of the compute backend: Cholesky inverse and solve against numpy, on every backend
this machine has (numpy always, torch on the CPU when the neural extra is installed)."""

from __future__ import annotations

import numpy as np
import pytest

from brain2music.errors import ConfigError
from brain2music.models import _backend as B


def _available():
    names = ["numpy"]
    try:
        import torch  # noqa: F401

        names.append("torch")
    except ImportError:
        pass
    return names


def _spd(n=12, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((3 * n, n))
    return (X.T @ X / (3 * n) + 0.1 * np.eye(n)).astype(np.float32)


@pytest.mark.parametrize("name", _available())
def test_cholesky_solve_matches_numpy(name):
    b = B.get_backend(name)
    A = _spd()
    rhs = np.random.default_rng(1).standard_normal((A.shape[0], 3)).astype(np.float32)
    expect = np.linalg.solve(A.astype(np.float64), rhs.astype(np.float64))
    got = B.to_numpy(B.cholesky_solve(b, B.asarray(b, A.copy()), B.asarray(b, rhs)))
    np.testing.assert_allclose(got, expect, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("name", _available())
def test_cholesky_inverse_matches_numpy(name):
    b = B.get_backend(name)
    A = _spd(n=9, seed=2)
    M = B.cholesky_inverse(b, B.asarray(b, A.copy()))
    # numpy leaves only the lower triangle valid: sym_block reads the symmetric matrix back.
    got = B.to_numpy(B.sym_block(b, M, 0, A.shape[0]))
    np.testing.assert_allclose(got, np.linalg.inv(A.astype(np.float64)), rtol=1e-3, atol=1e-4)
    block = B.to_numpy(B.sym_block(b, M, 2, 6))
    np.testing.assert_allclose(block, np.linalg.inv(A.astype(np.float64))[2:6, 2:6], rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("name", _available())
def test_not_positive_definite_gives_none(name):
    b = B.get_backend(name)
    A = np.diag([1.0, -1.0, 2.0]).astype(np.float32)
    assert B.cholesky_solve(b, B.asarray(b, A.copy()), B.asarray(b, np.ones((3, 1), np.float32))) is None
    assert B.cholesky_inverse(b, B.asarray(b, A.copy())) is None


def test_unknown_backend_names_the_choices():
    with pytest.raises(ConfigError, match="backend must be one of numpy, torch, torch_cuda, cupy; got 'jax'"):
        B.get_backend("jax")
    assert B.BACKENDS == ("numpy", "torch", "torch_cuda", "cupy")
