"""One writer per results folder: ``reproduce`` / ``reconstruct`` / ``run`` in other processes are refused.

The first run is paused in the middle of writing (after its first predictions file) by a real second
process; everything the second writer tries meanwhile must be refused with a clear error, change no file,
and the first run must still complete a consistent folder.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import threading

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import brain2music.study.reproduce as rep
from brain2music._io import WRITER_LOCK, exclusive_writer
from brain2music.cli import main
from brain2music.embeddings import EmbeddingSet
from brain2music.errors import ConcurrentWriterError
from brain2music.results import ResultsFolder, StudyResults
from brain2music.study.reconstruct import reconstruct
from test_models_synth import design_clips, make_embeddings, make_subject

CTX = mp.get_context("spawn")  # forked children of a process that loaded OpenMP (faiss) can deadlock
SUBJECTS = ["sub-001", "sub-002"]


@pytest.fixture(autouse=True)
def _one_thread():
    with threadpool_limits(1):
        yield


def _synthetic_study(root):
    """Two small synthetic subjects (as in test_reproduce); returns the files and the subjects to serve."""
    ids = design_clips().clip_id.tolist()
    emb = make_embeddings(ids, r=1, dim=6, seed=0)
    subs = {
        s: make_subject(emb, ids, subject=s, n_voxels=60, n_parcels=6, noise=0.5, seed=k + 1)[0]
        for k, s in enumerate(SUBJECTS)
    }
    for s in SUBJECTS:
        (root / "bids" / s).mkdir(parents=True)
    EmbeddingSet(np.array(ids), emb, {"encoder": "acoustic", "window": 15.0}).save(root / "emb.npz")
    return {"bids": root / "bids", "emb": root / "emb.npz"}, subs


def _reproduce(study, out, **kw):
    return rep.reproduce(
        study["bids"], out=out, embeddings={"acoustic": study["emb"]}, methods=["debug"], logo=False,
        n_permutations=20, n_bootstrap=50, verbose=False, **kw,
    )  # fmt: skip


def _reproduce_paused(root, out, started, go):
    """A whole ``reproduce`` that stops after its first predictions file until ``go`` is set."""
    study, subs = _synthetic_study(root)
    rep.load_subject_for_study = lambda source, s: subs[s]
    write = ResultsFolder.write_predictions

    def paused(self, p):
        path = write(self, p)
        if not started.is_set():
            started.set()
            go.wait(120)
        return path

    ResultsFolder.write_predictions = paused
    with threadpool_limits(1):
        _reproduce(study, out, random_state=0)


def _snapshot(folder):
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in folder.rglob("*")
        if p.is_file() and p.name != WRITER_LOCK
    }


def test_second_writer_of_a_results_folder_is_refused_and_the_first_completes(tmp_path, monkeypatch, capsys):
    out = tmp_path / "results"
    started, go = CTX.Event(), CTX.Event()
    first = CTX.Process(target=_reproduce_paused, args=(tmp_path / "a", out, started, go))
    first.start()
    try:
        study, subs = _synthetic_study(tmp_path / "b")
        monkeypatch.setattr(rep, "load_subject_for_study", lambda source, s: subs[s])
        assert started.wait(120), "the first reproduce never reached its first predictions file"
        before = _snapshot(out)
        assert any(k.startswith("predictions/") for k in before) and "results.json" not in before
        holder = rf"pid {first.pid} on .*\(brain2music reproduce\), since "
        with pytest.raises(ConcurrentWriterError, match=rf"{out}: another process is writing.*{holder}"):
            _reproduce(study, out, random_state=1)
        # the CLI says the same and exits 2
        code = main([
            "reproduce", str(study["bids"]), "--out", str(out), "--embeddings", f"acoustic={study['emb']}",
            "--methods", "debug", "--no-logo", "--quiet",
        ])  # fmt: skip
        assert code == 2
        assert "brain2music reproduce: error:" in capsys.readouterr().err
        # reconstruct into the folder is refused before it reads anything (no library is even opened) ...
        with pytest.raises(ConcurrentWriterError, match=rf"{holder}.*brain2music reconstruct refused"):
            reconstruct(out, tmp_path / "no-library", out)
        # ... and so is reconstruct reading it while it is being written (it would mix two runs)
        with pytest.raises(ConcurrentWriterError, match=rf"{holder}.*brain2music reconstruct reads it"):
            reconstruct(out, tmp_path / "no-library", tmp_path / "recon")
        # a single file written by hand too
        with pytest.raises(ConcurrentWriterError, match=holder):
            ResultsFolder(out).write(StudyResults(config={}, subjects=[], methods=[]))
        assert _snapshot(out) == before  # the refused writers changed nothing
    finally:
        go.set()
        first.join(180)
    assert first.exitcode == 0
    folder = ResultsFolder(out)
    res = folder.read()
    assert res.config.random_state == 0 and res.methods == ["debug"]
    assert folder.prediction_subjects("acoustic", "debug") == SUBJECTS
    for s in SUBJECTS:
        assert folder.read_predictions("acoustic", "debug", s).predicted.shape[0] == 60
    # released with the run: the next writer goes ahead
    assert _reproduce(study, out, random_state=1).config.random_state == 1
    assert folder.read().config.random_state == 1


def _worker_writes(leased, queue):
    es = EmbeddingSet(np.array(["blues.00000"]), np.zeros((1, 1, 2), np.float32), {"window": 15.0})
    outcome = []
    for f in (ResultsFolder(leased.root), leased):  # a stranger, then the object the run handed over
        try:
            f.write_embeddings("acoustic", es)
            outcome.append("written")
        except ConcurrentWriterError as exc:
            outcome.append(str(exc))
    queue.put(outcome)


def test_workers_of_a_run_write_under_its_lease_and_strangers_are_refused(tmp_path):
    # What a process-based scheduler (Dask) does with the subject loop: the run's ResultsFolder is
    # pickled to worker processes, which write while the parent holds the folder.
    folder, queue = ResultsFolder(tmp_path / "res"), CTX.Queue()
    with folder.writing("brain2music reproduce"):
        worker = CTX.Process(target=_worker_writes, args=(folder, queue))
        worker.start()
        stranger, own = queue.get(timeout=120)
        worker.join(60)
    assert f"pid {os.getpid()} on " in stranger and "another process is writing this folder" in stranger
    assert own == "written" and (folder.root / "embeddings" / "acoustic.npz").is_file()


def test_a_run_is_reentrant_in_its_thread_and_refuses_other_threads(tmp_path):
    es = EmbeddingSet(np.array(["blues.00000"]), np.zeros((1, 1, 2), np.float32), {"window": 15.0})
    errors = []

    def other_run():
        try:
            with ResultsFolder(tmp_path).writing("brain2music reproduce"):
                pass
        except ConcurrentWriterError as exc:
            errors.append(str(exc))

    with ResultsFolder(tmp_path).writing("brain2music run"):
        with ResultsFolder(tmp_path).writing("brain2music reproduce"):  # `run` around `reproduce`
            ResultsFolder(tmp_path).write_embeddings("acoustic", es)
        with ResultsFolder(tmp_path).reading("brain2music reconstruct"):  # reads what it writes
            pass
        thread = threading.Thread(target=other_run)
        thread.start()
        thread.join()
    assert len(errors) == 1 and "another thread of this process" in errors[0]
    with exclusive_writer(tmp_path, purpose="next"):  # released at the end of the outer block
        pass
