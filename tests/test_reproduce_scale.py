"""Issue 13's execution options of ``reproduce``: shared kernels, ``backend`` and ``scheduler`` change no figure."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import brain2music.models._dual as dual_mod
import brain2music.models.kernel as kernel_mod
import brain2music.models.ridge as ridge_mod
import brain2music.study.reproduce as rep
from brain2music.embeddings import EmbeddingSet
from brain2music.errors import ConfigError
from brain2music.results import ResultsFolder
from margins import assert_held_out_genres_match, assert_rows_match
from test_models_synth import design_clips, make_embeddings, make_subject

SUBJECTS = ["sub-001", "sub-002"]


@pytest.fixture(autouse=True)
def _one_thread():
    with threadpool_limits(1):
        yield


@pytest.fixture
def study(tmp_path, monkeypatch):
    """Two subjects with more voxels (600) than training samples (480 clips, r=1): the ridge is dual.

    Two embeddings share the 15-s window, so the second reuses the first one's kernel and factorisations.
    """
    ids = design_clips().clip_id.tolist()
    emb_a = make_embeddings(ids, r=1, dim=5, seed=0)
    emb_b = make_embeddings(ids, r=1, dim=4, seed=1)
    subs = {
        s: make_subject(emb_a, ids, subject=s, n_voxels=600, noise=1.0, seed=k + 1)[0]
        for k, s in enumerate(SUBJECTS)
    }
    monkeypatch.setattr(rep, "load_subject_for_study", lambda source, s: subs[s])
    bids = tmp_path / "bids"
    for s in SUBJECTS:
        (bids / s).mkdir(parents=True)
    embeddings = {
        "acoustic": EmbeddingSet(np.array(ids), emb_a, {"encoder": "acoustic", "window": 15.0}),
        "debug": EmbeddingSet(np.array(ids), emb_b, {"encoder": "debug", "window": 15.0}),
    }
    return {"bids": bids, "embeddings": embeddings, "tmp": tmp_path}


def _run(study, name, **kw):
    return rep.reproduce(
        study["bids"], out=study["tmp"] / name, embeddings=study["embeddings"], encoders=["acoustic", "debug"],
        methods=["ridge"], logo_method="ridge", n_permutations=20, n_bootstrap=50, verbose=False, **kw,
    )  # fmt: skip


def _assert_same(a, b, folder_a, folder_b):
    """Same figures: continuous ones to float32 tolerance, id accs and p-values within a few pairs."""
    assert_rows_match(a.rows, b.rows)
    assert_held_out_genres_match(a.leave_one_genre_out, b.leave_one_genre_out, n_test=60)
    fa, fb = ResultsFolder(folder_a), ResultsFolder(folder_b)
    for s in SUBJECTS:
        for enc in ("acoustic", "debug"):
            pa = fa.read_predictions(enc, "ridge", s).predicted
            pb = fb.read_predictions(enc, "ridge", s).predicted
            np.testing.assert_allclose(pa, pb, rtol=1e-3, atol=1e-3 * float(np.abs(pb).max()))


def _count(monkeypatch, module, name):
    calls = []
    original = getattr(module, name)

    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)
    return calls


def test_shared_kernels_give_the_same_figures_with_fewer_kernels_and_factorisations(study, monkeypatch):
    per_fit = _count(monkeypatch, ridge_mod, "centered_linear_kernel")
    shared = _count(monkeypatch, kernel_mod, "centered_linear_kernel")
    factors = _count(monkeypatch, dual_mod.B, "cholesky_inverse")
    plain = _run(study, "plain", reuse_kernels=False)
    n_plain = (len(per_fit), len(shared), len(factors))
    reused = _run(study, "reused")
    n_reused = (len(per_fit) - n_plain[0], len(shared) - n_plain[1], len(factors) - n_plain[2])
    # Without reuse: 2 subjects x 2 embeddings x (1 fit + 10 held-out genres + 5 outer folds of the
    # nested selection score), each its own X X^T.
    assert n_plain[:2] == (2 * 2 * 16, 0)
    # With reuse: one X X^T per subject for every fit of both embeddings, genres and folds held out included.
    assert n_reused[:2] == (0, 2)
    # The second embedding of the window reuses the first one's factorisations of the all-clip kernel.
    n_alphas = len(plain.config.alphas)
    assert n_reused[2] == n_plain[2] - 2 * n_alphas
    _assert_same(reused, plain, study["tmp"] / "reused", study["tmp"] / "plain")
    assert reused.config.reuse_kernels is True and plain.config.reuse_kernels is False


def test_backend_is_validated_and_recorded(study):
    with pytest.raises(ConfigError, match="backend must be one of"):
        _run(study, "bad", backend="tensorflow")
    with pytest.raises(ConfigError, match="cupy"):
        try:
            import cupy  # noqa: F401

            pytest.skip("CuPy is installed here")
        except ImportError:
            _run(study, "cupy", backend="cupy")
    with pytest.raises(ConfigError, match="scheduler must be"):
        _run(study, "sched", scheduler="bogus")
    with pytest.raises(ConfigError, match="workers"):
        _run(study, "workers", scheduler="threads", workers=0)


def test_torch_backend_and_threads_scheduler_give_the_serial_numpy_figures(study):
    pytest.importorskip("torch")
    numpy_run = _run(study, "numpy", logo=False)
    torch_run = _run(study, "torch", logo=False, backend="torch", scheduler="threads", workers=2)
    assert (torch_run.config.backend, torch_run.config.scheduler) == ("torch", "threads")
    assert numpy_run.config.scheduler is None
    _assert_same(torch_run, numpy_run, study["tmp"] / "torch", study["tmp"] / "numpy")


def test_cli_backend_and_scheduler_options(study, capsys):
    from brain2music.cli import main

    study["embeddings"]["acoustic"].save(study["tmp"] / "emb.npz")
    base = ["reproduce", str(study["bids"]), "--out", str(study["tmp"] / "cli"), "--embeddings",
            f"acoustic={study['tmp'] / 'emb.npz'}", "--methods", "ridge", "--subjects", "1", "--no-logo",
            "--n-permutations", "10", "--n-bootstrap", "10", "--quiet"]  # fmt: skip
    assert main(base + ["--backend", "tensorflow"]) == 2
    assert (
        "backend must be one of numpy, torch, torch_cuda, cupy; got 'tensorflow'" in capsys.readouterr().err
    )
    assert main(base + ["--scheduler", "threads", "--workers", "1"]) == 0
    config = ResultsFolder(study["tmp"] / "cli").read().config
    assert (config.backend, config.scheduler, config.workers) == ("numpy", "threads", 1)


@pytest.mark.slow
def test_dask_local_cluster_equals_serial_on_a_tiny_simulated_study(tmp_path):
    """Subjects as tasks on two worker processes (real loaders in the workers, no monkeypatching)."""
    from brain2music.simulate import simulate_study

    sim = simulate_study(
        tmp_path / "sim", n_subjects=2, n_voxels=200, seed=0, clips_per_genre=5, test_clips_per_genre=2,
        train_runs=5, test_runs=2, n_parcels=16, n_auditory_parcels=3, snr=3.0, progress=False,
    )  # fmt: skip
    kw = dict(
        stimuli=sim / "stimuli", methods=["ridge", "encsel"], n_permutations=50, n_bootstrap=50, logo=False,
        cache_dir=tmp_path / "cache", verbose=False,
    )  # fmt: skip
    serial = rep.reproduce(sim / "bids", out=tmp_path / "serial", **kw)
    local = rep.reproduce(sim / "bids", out=tmp_path / "local", scheduler="local", workers=2, **kw)
    assert local.config.scheduler == "local" and local.config.workers == 2
    assert [(r.subject, r.method, r.split) for r in local.rows] == [
        (r.subject, r.method, r.split) for r in serial.rows
    ]
    assert_rows_match(local.rows, serial.rows)


def test_the_comparison_allows_a_few_pairs_and_no_more():
    """One pair of 3,540 (the BLAS difference seen between two machines) passes; four pairs fail."""
    import dataclasses

    from brain2music.results import MethodResult

    row = MethodResult("sub-001", "acoustic", "ridge", "test", "paper", 0.53249, 0.2, [0.5, 0.56], 0.01, 60)
    one_pair = dataclasses.replace(row, id_acc=row.id_acc - 1 / 3540)
    assert_rows_match([row], [one_pair])
    with pytest.raises(AssertionError):
        assert_rows_match([row], [dataclasses.replace(row, id_acc=row.id_acc - 4 / 3540)])
    with pytest.raises(AssertionError):
        assert_rows_match([row], [dataclasses.replace(row, pearson_r=row.pearson_r + 1e-3)])
