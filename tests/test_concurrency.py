"""Concurrent writers lose nothing: CAS commits, locks, a library and the embedding cache under N processes."""

from __future__ import annotations

import json
import multiprocessing as mp
import threading
import time

import numpy as np
import pytest
import soundfile as sf

from brain2music._io import commit_json, exclusive_writer, file_lock, read_json_generation
from brain2music.embeddings.acoustic import DebugEncoder
from brain2music.errors import ConcurrentWriterError, LockTimeout

CTX = mp.get_context("spawn")  # forked children of a process that loaded OpenMP (faiss) can deadlock


def _run_all(target, arg_list, timeout=120):
    barrier = CTX.Barrier(len(arg_list))
    procs = [CTX.Process(target=target, args=(barrier, *args)) for args in arg_list]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout)
    codes = [p.exitcode for p in procs]
    assert codes == [0] * len(procs), f"writer exit codes {codes}"


# ---------------------------------------------------------------------------------------------- helpers
def _increment(barrier, path, n):
    barrier.wait()
    for _ in range(n):
        commit_json(path, lambda doc: {"count": (doc or {"count": 0})["count"] + 1})


def test_commit_json_loses_no_update(tmp_path):
    path = tmp_path / "counter.json"
    _run_all(_increment, [(path, 30)] * 3)
    doc, gen = read_json_generation(path)
    assert doc["count"] == 90 and gen == 89  # generation 0 is the first commit


def _hold(barrier, folder, seconds):
    with exclusive_writer(folder, purpose="brain2music reproduce"):
        barrier.wait()
        time.sleep(seconds)


def test_second_writer_is_refused_naming_the_first(tmp_path):
    barrier = CTX.Barrier(2)
    holder = CTX.Process(target=_hold, args=(barrier, tmp_path, 1.5))
    holder.start()
    barrier.wait()
    with pytest.raises(ConcurrentWriterError, match=rf"{tmp_path}.*pid {holder.pid}.*brain2music reproduce"):
        with exclusive_writer(tmp_path, purpose="brain2music reconstruct"):
            pass
    with pytest.raises(LockTimeout, match=r"\.writer\.lock: locked by pid"):
        with file_lock(tmp_path / ".writer.lock", timeout=0.2):
            pass
    holder.join(30)
    with exclusive_writer(tmp_path, purpose="test"):  # free again once the holder is gone
        pass


def test_lock_of_a_killed_holder_is_released(tmp_path):
    barrier = CTX.Barrier(2)
    holder = CTX.Process(target=_hold, args=(barrier, tmp_path, 60.0))
    holder.start()
    barrier.wait()
    holder.kill()
    holder.join(30)
    with file_lock(tmp_path / ".writer.lock", timeout=5):
        pass


# ---------------------------------------------------------------------------------------------- library
def _make_folder(folder, n, seed):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        t = np.arange(8000 * 16) / 8000
        f = rng.uniform(100, 2000)
        audio = 0.4 * np.sin(2 * np.pi * f * t) + 0.05 * rng.standard_normal(t.size)
        sf.write(folder / f"{folder.name}-{i}.wav", audio.astype(np.float32), 8000)


class LockstepDebug(DebugEncoder):
    """The ``debug`` encoder, but every writer embeds each track at the same moment: commits then collide."""

    def __init__(self, barrier):
        super().__init__()
        self._barrier = barrier

    def _embed_batch(self, audio):
        try:
            self._barrier.wait(timeout=1.0)
        except threading.BrokenBarrierError:  # a writer with fewer tracks left: go on unsynchronised
            pass
        return super()._embed_batch(audio)


def _add(barrier, steps, lib, folder, build):
    from brain2music.reconstruct.library import add_to_library, build_library

    enc = LockstepDebug(steps)
    barrier.wait()
    if build:
        build_library(folder, lib, encoder=enc, coverage="full", batch_size=1, progress=False)
    else:
        add_to_library(lib, folder, encoder=enc, batch_size=1, progress=False)


@pytest.mark.parametrize("build", [False, True], ids=["add", "build"])
def test_concurrent_writers_keep_every_track_once(tmp_path, build):
    from brain2music.reconstruct.library import MusicLibrary, build_library

    folders = [tmp_path / f"music{k}" for k in range(3)]
    for k, folder in enumerate(folders):
        _make_folder(folder, 5, seed=k)
    lib_path = tmp_path / "lib"
    n_base = 0
    if not build:  # `library add` onto an existing library, as a cluster job array would
        _make_folder(tmp_path / "base", 2, seed=9)
        build_library(tmp_path / "base", lib_path, encoder="debug", coverage="full", progress=False)
        n_base = 2
    # 3 writers of different folders plus a 4th that repeats folder 1 (a resubmitted job)
    jobs = [*folders, folders[1]]
    steps = CTX.Barrier(len(jobs))
    _run_all(_add, [(steps, lib_path, f, build) for f in jobs])

    lib = MusicLibrary(lib_path)
    expected = {str(p.resolve()) for f in folders for p in f.glob("*.wav")}
    paths = list(lib.metadata["path"])
    assert len(paths) == len(set(paths)) == len(lib) == n_base + 15
    assert expected <= set(paths)
    assert list(lib.metadata["item"]) == list(range(len(lib)))
    # the writers really interleaved their commits (one shard per track, batch_size=1)
    owner = [p.rsplit("/", 2)[-2] for p in paths[n_base:]]
    assert sum(a != b for a, b in zip(owner, owner[1:])) > len(folders) - 1
    # the last commit's indexes cover every track: nothing stale to rebuild
    doc = json.loads((lib_path / "manifest.json").read_text())
    assert doc["index"]["n_items"] == doc["window_store"]["n_items"] == len(lib)
    assert len(list(lib_path.glob("index-*.faiss"))) == 1 and len(list(lib_path.glob("windex-*"))) == 1
    assert len(list((lib_path / "shards").iterdir())) == len(doc["shards"])  # no orphan shard left
    assert lib.window_store.n_items == len(lib)
    hit = lib.query(folders[2] / "music2-3.wav", k=1)[0]
    assert hit.path == str((folders[2] / "music2-3.wav").resolve()) and hit.offset == 0.0


# ---------------------------------------------------------------------------------------------- cache
def _embed(barrier, files, cache):
    from brain2music.embeddings import embed_clips

    barrier.wait()
    embed_clips(files, "debug", cache_dir=cache, progress=False)


def test_concurrent_embedding_cache_writers(tmp_path):
    from brain2music.embeddings import EmbeddingCache, embed_clips, get_encoder

    _make_folder(tmp_path / "music", 12, seed=3)
    files = sorted(str(p) for p in (tmp_path / "music").glob("*.wav"))
    cache = tmp_path / "cache"
    # three writers with overlapping clip sets: every clip is written by at least two of them
    _run_all(_embed, [(files[:8], cache), (files[4:], cache), (files[::2] + files[1:4:2], cache)])
    entries = [p for p in (cache / "debug").rglob("*") if p.is_file()]
    assert len(entries) == len(files)  # one entry per clip, no temp file left behind
    serial = embed_clips(files, "debug", cache_dir=False, progress=False)
    again = embed_clips(files, "debug", cache_dir=cache, progress=False)
    assert again.n_cached_ == len(files) and np.array_equal(again.embeddings, serial.embeddings)
    assert EmbeddingCache(cache, get_encoder("debug")).folder == cache / "debug"
