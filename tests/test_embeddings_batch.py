"""Batch extraction: clip sources, cache hits, resume after interruption, bad files, Dask, captions, CLI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from brain2music.cli import main
from brain2music.embeddings import (
    AudioClip,
    EmbeddingSet,
    clips_from_bids,
    clips_from_folder,
    embed_captions,
    embed_clips,
    embed_folder,
    experiment_clips,
    load_embeddings,
    read_captions,
)
from brain2music.embeddings.acoustic import DebugEncoder
from brain2music.errors import ConfigError, DataError, DataFileNotFoundError
from brain2music.stimuli import load_stimulus, write_audio
from conftest import DS003720

SR = 8000


def noise(seconds=15.0, sr=SR, seed=0, amp=0.1):
    return (np.random.default_rng(seed).standard_normal(int(seconds * sr)) * amp).astype(np.float32)


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "audio"
    for i in range(5):
        write_audio(d / f"track{i}.wav", noise(16.0, seed=i, amp=0.05 * (i + 1)), SR)
    return d


class CountingEncoder(DebugEncoder):
    """Counts the clips it embeds; optionally fails after ``fail_after`` clips (a killed run)."""

    def __init__(self, fail_after=None):
        super().__init__()
        self.calls = 0
        self.fail_after = fail_after

    def _embed_batch(self, audio):
        if self.fail_after is not None and self.calls + len(audio) > self.fail_after:
            raise KeyboardInterrupt("killed")
        self.calls += len(audio)
        return super()._embed_batch(audio)


def test_embed_folder_shapes_ids_and_values(folder, tmp_path):
    out = tmp_path / "emb.npz"
    res = embed_folder(folder, "debug", cache_dir=False, progress=False, out=out)
    assert res.embeddings.shape == (5, 10, 4)
    assert list(res.clip_ids) == [f"track{i}" for i in range(5)]
    direct = DebugEncoder().embed(noise(16.0, seed=2, amp=0.15), SR)
    np.testing.assert_allclose(res.embeddings[2], direct, rtol=1e-3, atol=1e-4)  # 16-bit WAV rounding
    back = load_embeddings(out)
    np.testing.assert_array_equal(back.embeddings, res.embeddings)
    assert list(back.clip_ids) == list(res.clip_ids)
    assert back.config["encoder"] == "debug" and back.config["n_windows"] == 10
    assert back.config["source"]["folder"] == str(folder)
    from brain2music import __version__

    assert back.version == __version__
    np.testing.assert_array_equal(back.select(["track3", "track0"]), res.embeddings[[3, 0]])
    with pytest.raises(DataError, match="no 'debug' embedding"):
        back.select(["nope"])


def test_cache_hits_compute_nothing(folder, tmp_path):
    enc = CountingEncoder()
    first = embed_clips(clips_from_folder(folder), enc, cache_dir=tmp_path / "c", progress=False)
    assert enc.calls == 5 and first.n_computed_ == 5
    second = embed_clips(clips_from_folder(folder), enc, cache_dir=tmp_path / "c", progress=False)
    assert enc.calls == 5 and second.n_cached_ == 5 and second.n_computed_ == 0
    np.testing.assert_array_equal(first.embeddings, second.embeddings)
    # Changed audio content is a miss; so is another excerpt of the same file.
    write_audio(folder / "track1.wav", noise(16.0, seed=99), SR)
    third = embed_clips(clips_from_folder(folder), enc, cache_dir=tmp_path / "c", progress=False)
    assert third.n_computed_ == 1 and enc.calls == 6
    fourth = embed_clips(clips_from_folder(folder, start=0.5), enc, cache_dir=tmp_path / "c", progress=False)
    assert fourth.n_computed_ == 5
    # Another encoder config (window) has its own entries.
    other = embed_clips(
        clips_from_folder(folder), DebugEncoder(window=5.0), cache_dir=tmp_path / "c", progress=False
    )
    assert other.n_computed_ == 5 and other.embeddings.shape == (5, 7, 4)


def test_resume_after_interruption(folder, tmp_path):
    clips = clips_from_folder(folder)
    killed = CountingEncoder(fail_after=3)
    with pytest.raises(KeyboardInterrupt):
        embed_clips(clips, killed, cache_dir=tmp_path / "c", chunk_size=1, progress=False)
    assert killed.calls == 3
    # No temporary files are left that look like cache entries.
    entries = sorted((tmp_path / "c" / "debug").rglob("*"))
    assert sum(p.suffix == ".npy" for p in entries) == 3
    assert not any(".tmp" in p.name for p in entries)
    resumed = CountingEncoder()
    res = embed_clips(clips, resumed, cache_dir=tmp_path / "c", chunk_size=1, progress=False)
    assert resumed.calls == 2 and res.n_cached_ == 3
    fresh = embed_clips(clips, DebugEncoder(), cache_dir=False, progress=False)
    np.testing.assert_array_equal(res.embeddings, fresh.embeddings)


def test_bad_files(tmp_path, folder):
    (folder / "empty.wav").write_bytes(b"")
    with pytest.raises(DataError, match="clip 'empty'.*empty"):
        embed_folder(folder, "debug", cache_dir=False, progress=False)
    (folder / "empty.wav").unlink()
    (folder / "junk.wav").write_bytes(b"this is not audio at all" * 10)
    with pytest.raises(DataError, match="junk.wav: cannot read as audio"):
        embed_folder(folder, "debug", cache_dir=False, progress=False)
    write_audio(folder / "short.wav", noise(1.0), SR)
    res = embed_folder(folder, "debug", cache_dir=False, progress=False, on_error="skip")
    assert sorted(res.skipped) == ["junk", "short"] and len(res) == 5
    assert "shorter than one 1.5-s window" in res.skipped["short"]
    (tmp_path / "nothing").mkdir()
    with pytest.raises(DataFileNotFoundError, match="no audio files"):
        embed_folder(tmp_path / "nothing", "debug")
    with pytest.raises(DataFileNotFoundError, match="audio folder not found"):
        clips_from_folder(tmp_path / "missing")


def test_argument_checks(folder):
    clips = clips_from_folder(folder)
    with pytest.raises(ConfigError, match="scheduler must be"):
        embed_clips(clips, "debug", scheduler="bogus", cache_dir=False)
    with pytest.raises(ConfigError, match="on_error"):
        embed_clips(clips, "debug", on_error="ignore", cache_dir=False)
    with pytest.raises(DataError, match="unique"):
        embed_clips(clips + clips[:1], "debug", cache_dir=False, progress=False)
    with pytest.raises(ConfigError, match="unknown encoder"):
        embed_clips(clips, "nope")


def test_duplicate_stems_use_relative_paths(tmp_path):
    for sub in ("a", "b"):
        write_audio(tmp_path / sub / "x.wav", noise(2.0), SR)
    ids = [c.clip_id for c in clips_from_folder(tmp_path)]
    assert ids == ["a/x", "b/x"]


def test_paths_are_accepted(folder):
    res = embed_clips(sorted(folder.glob("*.wav"))[:2], "debug", cache_dir=False, progress=False)
    assert list(res.clip_ids) == ["track0", "track1"]


# -- experiment stimuli ---------------------------------------------------------------------------------
def test_experiment_clips_of_real_ds003720_events():
    table = experiment_clips(DS003720)
    assert len(table) == 540
    assert (table.split == "train").sum() == 480 and (table.split == "test").sum() == 60
    assert table.clip_id.is_unique


def _write_study(tmp_path):
    """Two training runs and one test run over 5 clips of a tiny GTZAN folder (16-s tracks)."""
    bids = tmp_path / "bids"
    func = bids / "sub-001" / "func"
    func.mkdir(parents=True)
    header = "onset\tduration\tgenre\ttrack\tstart\tend\r\n"

    def events(rows):
        return header + "".join(
            f"{15 * i}\t15\t'{g}'\t{t}\t{s}\t{s + 15}\r\n" for i, (g, t, s) in enumerate(rows)
        )

    (func / "sub-001_task-Training_run-01_events.tsv").write_text(
        events([("jazz", 3, 0.5), ("blues", 1, 0.0), ("rock", 2, 1.0)])
    )
    (func / "sub-001_task-Training_run-02_events.tsv").write_text(
        events([("rock", 2, 1.0), ("jazz", 3, 0.5), ("pop", 4, 0.25)])
    )
    (func / "sub-001_task-Test_run-01_events.tsv").write_text(
        events([("metal", 5, 0.0), ("metal", 5, 0.0), ("metal", 5, 0.0)])
    )
    stim = tmp_path / "gtzan"
    for k, (g, t) in enumerate([("blues", 1), ("rock", 2), ("jazz", 3), ("pop", 4), ("metal", 5)]):
        write_audio(stim / "genres" / g / f"{g}.{t:05d}.wav", noise(16.5, sr=22050, seed=k), 22050)
    return bids, stim


def test_bids_clips_are_the_stimuli(tmp_path):
    bids, stim = _write_study(tmp_path)
    clips = clips_from_bids(bids, stim)
    assert [c.clip_id for c in clips] == [
        "blues.00001",
        "rock.00002",
        "jazz.00003",
        "pop.00004",
        "metal.00005",
    ]
    for clip in clips:
        genre, track = clip.clip_id.split(".")
        audio, sr = clip.load()
        expected = load_stimulus(stim, genre, int(track), clip.start)
        assert sr == 22050
        np.testing.assert_array_equal(audio, expected)
    res = embed_folder(stim, "debug", bids=bids, cache_dir=False, progress=False)
    assert res.embeddings.shape == (5, 10, 4) and res.config["source"]["bids"] == str(bids)


def test_dask_local_cluster_matches_in_process(folder, tmp_path):
    pytest.importorskip("distributed")
    clips = clips_from_folder(folder)
    ref = embed_clips(clips, "debug", cache_dir=False, progress=False)
    res = embed_clips(clips, "debug", cache_dir=tmp_path / "c", scheduler="local", workers=1, progress=False)
    np.testing.assert_array_equal(res.embeddings, ref.embeddings)
    assert res.n_computed_ == 5
    # The workers wrote the shared cache: the in-process rerun computes nothing.
    again = embed_clips(clips, CountingEncoder(), cache_dir=tmp_path / "c", progress=False)
    assert again.n_computed_ == 0


def test_dask_client_reused_across_calls(folder):
    distributed = pytest.importorskip("distributed")
    import logging

    clips = clips_from_folder(folder)
    ref = embed_clips(clips, "debug", cache_dir=False, progress=False)
    with (
        distributed.LocalCluster(
            n_workers=1,
            threads_per_worker=1,
            processes=False,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        # Regression: a second call scattering the same encoder must not lose it when the first is released.
        for _ in range(3):
            res = embed_clips(clips, "debug", cache_dir=False, scheduler=client, chunk_size=2, progress=False)
            np.testing.assert_array_equal(res.embeddings, ref.embeddings)


# -- captions -------------------------------------------------------------------------------------------
CAPTIONS = (
    "ID,DescEN\n"
    "blues.00017_15s,A slow blues with guitar.\n"
    "disco.000011_15s,Upbeat disco with strings.\n"
    "rock.00002_15s,  Loud rock with drums.  \n"
)


class FakeTextEncoder(DebugEncoder):
    """A text encoder without weights: the caption's length and vowel count (to check the plumbing)."""

    name = "fake-text"
    modality = "text"
    window = 15.0

    def __init__(self):
        self.window = 15.0

    def embed_texts(self, texts):
        return np.array([[[len(t), sum(c in "aeiou" for c in t), 0, 1]] for t in texts], dtype=np.float32)


def test_read_captions_fixes_mistyped_id(tmp_path):
    path = tmp_path / "captions.csv"
    path.write_text(CAPTIONS)
    table = read_captions(path)
    assert table.clip_id.tolist() == ["blues.00017", "disco.00011", "rock.00002"]
    assert table.caption[2] == "Loud rock with drums."
    path.write_text("ID,DescEN\nblues.00017_15s,a\nblues.17,b\n")
    with pytest.raises(DataError, match="more than one caption"):
        read_captions(path)
    path.write_text("ID,Text\nblues.00017_15s,a\n")
    with pytest.raises(DataError, match="lacks column"):
        read_captions(path)
    path.write_text("ID,DescEN\nnot-an-id,a\n")
    with pytest.raises(DataError, match="row 2 has ID 'not-an-id'"):
        read_captions(path)


def test_embed_captions_keyed_by_clip(tmp_path):
    path = tmp_path / "captions.csv"
    path.write_text(CAPTIONS)
    res = embed_captions(
        path, FakeTextEncoder(), clip_ids=["rock.00002", "disco.00011"], out=tmp_path / "t.npz"
    )
    assert list(res.clip_ids) == ["rock.00002", "disco.00011"]
    assert res.embeddings.shape == (2, 1, 4)
    assert res.embeddings[0, 0, 0] == len("Loud rock with drums.")
    assert isinstance(load_embeddings(tmp_path / "t.npz"), EmbeddingSet)
    with pytest.raises(DataError, match="no caption for 1 clip"):
        embed_captions(path, FakeTextEncoder(), clip_ids=["jazz.00001"])
    with pytest.raises(ConfigError, match="captions need a text encoder"):
        embed_captions(path, "debug")
    with pytest.raises(ConfigError, match="embeds text"):
        embed_clips([AudioClip("x", "x.wav")], FakeTextEncoder())


# -- CLI ------------------------------------------------------------------------------------------------
def test_cli_embed_end_to_end(folder, tmp_path, capsys):
    out = tmp_path / "out" / "acoustic.npz"
    args = [
        "embed",
        str(folder),
        "--encoder",
        "acoustic",
        "--out",
        str(out),
        "--cache-dir",
        str(tmp_path / "c"),
        "--scheduler",
        "none",
        "--no-progress",
    ]
    assert main(args) == 0
    assert "5 clips x 10 windows x 102 dims" in capsys.readouterr().out
    res = load_embeddings(out)
    assert res.embeddings.shape == (5, 10, 102) and np.all(np.isfinite(res.embeddings))
    assert main(args) == 0
    assert "(0 computed, 5 from cache)" in capsys.readouterr().out


def test_cli_embed_bids_and_errors(tmp_path, capsys):
    bids, stim = _write_study(tmp_path)
    out = tmp_path / "d.npz"
    assert (
        main(
            [
                "embed",
                str(stim),
                "-e",
                "debug",
                "--bids",
                str(bids),
                "-o",
                str(out),
                "--no-cache",
                "--scheduler",
                "none",
                "--no-progress",
            ]
        )
        == 0
    )
    assert load_embeddings(out).clip_ids[0] == "blues.00001"
    assert main(["embed", str(stim), "-e", "nope", "-o", str(out)]) == 2
    assert "unknown encoder 'nope'; known encoders:" in capsys.readouterr().err
    assert main(["embed", str(tmp_path / "missing"), "-o", str(out), "--scheduler", "none"]) == 2
    assert "audio folder not found" in capsys.readouterr().err
    assert main(["embed", str(stim), "-e", "acoustic", "--checkpoint", "x", "-o", str(out)]) == 2
    assert "encoder 'acoustic'" in capsys.readouterr().err


def test_cli_skip_errors_lists_skipped(folder, tmp_path, capsys):
    (folder / "empty.wav").write_bytes(b"")
    out = tmp_path / "e.npz"
    assert (
        main(
            [
                "embed",
                str(folder),
                "-e",
                "debug",
                "-o",
                str(out),
                "--no-cache",
                "--scheduler",
                "none",
                "--skip-errors",
                "--no-progress",
            ]
        )
        == 0
    )
    assert "skipped empty:" in capsys.readouterr().err
    assert load_embeddings(out).skipped.keys() == {"empty"}


def test_load_embeddings_errors(tmp_path):
    with pytest.raises(DataFileNotFoundError):
        load_embeddings(tmp_path / "nope.npz")
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(DataError, match="not an embeddings file"):
        load_embeddings(tmp_path / "other.npz")
    (tmp_path / "bad.npz").write_bytes(b"garbage")
    with pytest.raises(DataError, match="cannot read"):
        load_embeddings(tmp_path / "bad.npz")


def test_embedding_set_roundtrip_keeps_dtypes(tmp_path):
    res = EmbeddingSet(
        np.array(["a", "b"]), np.ones((2, 1, 3), dtype=np.float64), {"encoder": "x", "window": 15.0}
    )
    res.save(tmp_path / "r.npz")
    back = load_embeddings(tmp_path / "r.npz")
    assert back.embeddings.dtype == np.float32 and back.window == 15.0 and back.encoder == "x"
    assert isinstance(pd.Series(back.clip_ids).iloc[0], str)
