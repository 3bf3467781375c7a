"""Music library: storage, resume after a crash, search, encoder checks, FMA metadata, CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from brain2music.embeddings.base import Encoder
from brain2music.errors import DataError, DataFileNotFoundError
from brain2music.reconstruct.index import build_index, search_index
from brain2music.reconstruct.library import (
    MusicLibrary,
    add_to_library,
    build_library,
    read_fma_tracks,
    search_library,
)
from brain2music.reconstruct.library import build as buildmod


class FakeEncoder(Encoder):
    """A tiny deterministic encoder: log energy in ``dim`` FFT bands per 5-s window (r = 7)."""

    name = "fake"
    sr = 8000
    dim = 16
    window = 5.0

    def _embed_batch(self, audio):
        out = np.empty((len(audio), self.n_windows, self.dim), dtype=np.float32)
        for k, (a, b) in enumerate(self.window_samples()):
            spec = np.abs(np.fft.rfft(audio[:, a:b], axis=1)) ** 2
            bands = np.array_split(spec[:, 1:], self.dim, axis=1)
            out[:, k] = np.log1p(np.stack([x.sum(axis=1) for x in bands], axis=1) / (b - a))
        return out


class OtherEncoder(FakeEncoder):
    name = "other"


def tone(freq, sr=8000, dur=16.0, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * dur)) / sr
    return (0.5 * np.sin(2 * np.pi * freq * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


FREQS = [110, 220, 330, 550, 880, 1320, 1760, 2640, 3300]


def make_music(folder, freqs=FREQS, sr=8000, fmt="wav"):
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, f in enumerate(freqs):
        p = folder / f"track{i:02d}_{f}.{fmt}"
        sf.write(p, tone(f, sr, seed=i), sr)
        paths.append(p)
    return paths


def test_build_search_roundtrip(tmp_path):
    paths = make_music(tmp_path / "music")
    (tmp_path / "music" / "broken.wav").write_bytes(b"RIFF garbage, not audio")
    lib = build_library(
        tmp_path / "music", tmp_path / "lib", encoder=FakeEncoder(), batch_size=4, progress=False
    )
    assert len(lib) == len(FREQS)
    assert [s["path"].endswith("broken.wav") for s in lib.skipped] == [True]
    assert len(lib.manifest["shards"]) == 3  # 9 tracks in batches of 4
    reopened = MusicLibrary(tmp_path / "lib")
    assert reopened.encoder_name == "fake" and reopened.dim == 16 and reopened.n_windows == 7
    assert np.allclose(np.linalg.norm(reopened.vectors, axis=1), 1.0, atol=1e-5)
    # Querying with a library track returns that track first, at offset 0, with cosine ≈ 1 (the library
    # clip has the stimuli's fades, the query not).
    table = search_library(tmp_path / "lib", audio=paths[3], k=3, encoder=FakeEncoder())
    assert table.iloc[0]["path"] == str(paths[3].resolve())
    assert table.iloc[0]["score"] == pytest.approx(1.0, abs=1e-3)
    assert table.iloc[0]["offset"] == 0.0
    assert list(table["rank"]) == [1, 2, 3]
    # Batch search with per-window embeddings equals search with window averages.
    w = reopened.windows([0, 5])
    assert w.shape == (2, 7, 16)
    s1, i1 = reopened.search(w, k=2, encoder="fake")
    s2, i2 = reopened.search(w.mean(axis=1), k=2)
    assert np.array_equal(i1, i2) and i1[0, 0] == 0 and i1[1, 0] == 5
    # exclusion never returns the excluded track
    _, i3 = reopened.search(w, k=2, exclude=[reopened.metadata.loc[0, "path"]])
    assert 0 not in i3[0]


def test_query_with_other_encoder_names_both(tmp_path):
    make_music(tmp_path / "music", FREQS[:3])
    lib = build_library(tmp_path / "music", tmp_path / "lib", encoder=FakeEncoder(), progress=False)
    with pytest.raises(DataError, match=r"'other'.*'fake'"):
        lib.search(np.ones((1, 16)), encoder="other")
    with pytest.raises(DataError, match=r"'other'.*'fake'"):
        search_library(lib, audio=tmp_path / "music" / "track00_110.wav", encoder=OtherEncoder())
    with pytest.raises(DataError, match=r"'other'.*'fake'"):
        add_to_library(tmp_path / "lib", tmp_path / "music", encoder=OtherEncoder(), progress=False)
    with pytest.raises(DataError, match="expects"):
        lib.search(np.ones((1, 5)))

    class OtherWindow(FakeEncoder):
        window = 4.0

    with pytest.raises(DataError, match="window: library 5.0 vs given 4.0"):
        add_to_library(tmp_path / "lib", tmp_path / "music", encoder=OtherWindow(), progress=False)


def test_empty_folder_and_all_unreadable(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no audio files"):
        build_library(tmp_path / "empty", tmp_path / "lib", encoder=FakeEncoder(), progress=False)
    assert not (tmp_path / "lib").exists()
    with pytest.raises(DataFileNotFoundError):
        build_library(tmp_path / "nope", tmp_path / "lib", encoder=FakeEncoder(), progress=False)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "a.mp3").write_bytes(b"")
    with pytest.raises(DataError, match="none of the 1 audio files"):
        build_library(tmp_path / "bad", tmp_path / "lib2", encoder=FakeEncoder(), progress=False)


def test_crash_mid_build_keeps_committed_batches_and_resumes(tmp_path, monkeypatch):
    make_music(tmp_path / "music")
    enc = FakeEncoder()
    calls = {"n": 0}
    real = buildmod.clip_embedding
    monkeypatch.setattr(buildmod, "EMBED_GROUP", 1)  # one track at a time: through clip_embedding

    def flaky(encoder, audio, sr, **kw):
        calls["n"] += 1
        if calls["n"] == 7:
            raise KeyboardInterrupt("simulated crash")
        return real(encoder, audio, sr, **kw)

    monkeypatch.setattr(buildmod, "clip_embedding", flaky)
    with pytest.raises(KeyboardInterrupt):
        build_library(tmp_path / "music", tmp_path / "lib", encoder=enc, batch_size=3, progress=False)
    crashed = MusicLibrary(tmp_path / "lib")
    assert len(crashed) == 6  # two committed batches of 3
    assert len(crashed.metadata) == 6 and crashed.vectors.shape == (6, 16)
    # A crash inside a shard write leaves only a temp file that no manifest lists.
    (tmp_path / "lib" / "shards" / "part-000002.parquet").write_bytes(b"half-written")
    monkeypatch.setattr(buildmod, "clip_embedding", real)
    lib = build_library(tmp_path / "music", tmp_path / "lib", encoder=enc, batch_size=3, progress=False)
    assert len(lib) == 9 and lib.last_ingest_["n_already_present"] == 6
    assert lib.metadata["path"].is_unique
    assert np.array_equal(lib.metadata["item"], np.arange(9))


def test_add_appends_and_reindexes(tmp_path):
    make_music(tmp_path / "a", FREQS[:4])
    make_music(tmp_path / "b", FREQS[4:], fmt="flac")
    build_library(tmp_path / "a", tmp_path / "lib", encoder=FakeEncoder(), progress=False)
    lib = add_to_library(tmp_path / "lib", tmp_path / "b", encoder=FakeEncoder(), progress=False)
    assert len(lib) == len(FREQS) and lib.index.ntotal == len(FREQS)
    lib = add_to_library(tmp_path / "lib", tmp_path / "b", encoder=FakeEncoder(), progress=False)
    assert len(lib) == len(FREQS) and lib.last_ingest_["n_added"] == 0
    assert len(list((tmp_path / "lib").glob("index*.faiss"))) == 1  # older index files are removed
    # stale index (e.g. deleted) is rebuilt on open
    (tmp_path / "lib" / lib.manifest["index"]["file"]).unlink()
    with pytest.warns(UserWarning, match="rebuilding"):
        assert MusicLibrary(tmp_path / "lib").index.ntotal == len(FREQS)


FMA_CSV = """,album,artist,set,track,track,track
,title,name,split,genre_top,title,number
track_id,,,,,,
2,AWOL - A Way Of Life,AWOL,training,Hip-Hop,Food,3
5,AWOL - A Way Of Life,AWOL,training,Hip-Hop,This World,6
140,Constant Hitmaker,Alec K. Redfearn,training,Folk,Queen Of The Wires,1
"""


def test_fma_layout_metadata(tmp_path):
    root = tmp_path / "fma"
    (root / "fma_metadata").mkdir(parents=True)
    (root / "fma_metadata" / "tracks.csv").write_text(FMA_CSV)
    tab = read_fma_tracks(root / "fma_metadata" / "tracks.csv")
    assert tab.loc[140, "artist"] == "Alec K. Redfearn" and tab.loc[2, "genre"] == "Hip-Hop"
    music = root / "fma_large"
    for tid, f in [(2, 220), (140, 440)]:
        d = music / f"{tid:06d}"[:3]
        d.mkdir(parents=True, exist_ok=True)
        sf.write(d / f"{tid:06d}.wav", tone(f), 8000)
    lib = build_library(music, tmp_path / "lib", encoder=FakeEncoder(), progress=False)
    meta = lib.metadata.set_index("track_id")
    assert meta.loc["000002", "title"] == "Food" and meta.loc["000140", "genre"] == "Folk"
    with pytest.raises(DataError, match="not an FMA tracks.csv"):
        (tmp_path / "x.csv").write_text("a,b\n1,2\n3,4\n")
        read_fma_tracks(tmp_path / "x.csv")


def test_index_kinds_agree_with_brute_force():
    rng = np.random.default_rng(0)
    centers = rng.standard_normal((20, 32))
    x = (centers[rng.integers(0, 20, 3000)] + 0.3 * rng.standard_normal((3000, 32))).astype(np.float32)
    q = x[:25] + 0.05 * rng.standard_normal((25, 32)).astype(np.float32)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    truth = np.argsort(-(qn @ xn.T), axis=1)[:, :10]
    for kind in ("flat", "ivf", "hnsw"):
        index = build_index(x, kind=kind)
        scores, idx = search_index(index, q, 10)
        recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(idx, truth, strict=True)])
        assert recall >= (1.0 if kind == "flat" else 0.9), kind
        if kind == "flat":
            assert np.allclose(scores, np.take_along_axis(qn @ xn.T, truth, 1), atol=1e-5)


def test_cli_build_search(tmp_path, monkeypatch, capsys):
    from brain2music import cli
    from brain2music.embeddings import registry

    make_music(tmp_path / "music", FREQS[:4])
    monkeypatch.setitem(registry._REGISTRY, "fake", registry._Entry(FakeEncoder, "test encoder", "audio"))
    assert (
        cli.main(
            ["library", "build", str(tmp_path / "music"), "--encoder", "fake", "--out", str(tmp_path / "lib")]
        )
        == 0
    )
    q = tmp_path / "music" / "track02_330.wav"
    capsys.readouterr()
    assert cli.main(["library", "search", str(tmp_path / "lib"), "--audio", str(q), "-k", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out[0]["path"] == str(q.resolve()) and len(out) == 2 and out[0]["offset"] == 0.0
    assert (
        cli.main(
            ["library", "build", str(tmp_path / "empty"), "--encoder", "fake", "--out", str(tmp_path / "l2")]
        )
        == 2
    )
    assert "music folder not found" in capsys.readouterr().err
    info = pd.DataFrame(json.loads(open(tmp_path / "lib" / "manifest.json").read())["shards"])
    assert info["n_items"].sum() == 4


def test_search_space_auto_zscore_matches_brute_force(tmp_path):
    from brain2music.reconstruct.library import library_from_embeddings

    rng = np.random.default_rng(0)
    emb = rng.standard_normal((300, 3, 12)).astype(np.float32) * rng.uniform(0.1, 2, 12).astype(np.float32)
    meta = pd.DataFrame({"path": [f"t{i}.wav" for i in range(300)], "genre": "x"})
    # Centred data: plain cosine.
    lib = library_from_embeddings(tmp_path / "a", emb, meta, encoder="fake", progress=False)
    assert lib.space == "cosine"
    # A large shared offset makes every raw cosine ~1: auto switches to z-scored cosine.
    shifted = emb + 20.0
    lib = library_from_embeddings(tmp_path / "b", shifted, meta, encoder="fake", progress=False)
    assert lib.space == "zscore"
    q = shifted[:5].mean(axis=1) + rng.standard_normal((5, 12)).astype(np.float32)
    unit = shifted.mean(axis=1) / np.linalg.norm(shifted.mean(axis=1), axis=1, keepdims=True)
    mu, sd = unit.mean(0), unit.std(0)
    z = (unit - mu) / sd
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    qz = (q / np.linalg.norm(q, axis=1, keepdims=True) - mu) / sd
    qz /= np.linalg.norm(qz, axis=1, keepdims=True)
    truth = np.argsort(-(qz @ z.T), axis=1)[:, :3]
    scores, items = MusicLibrary(tmp_path / "b").search(q, 3)
    assert np.array_equal(items, truth)
    assert np.allclose(scores, np.take_along_axis(qz @ z.T, truth, 1), atol=1e-4)
    # forced plain cosine on the same data
    lib = library_from_embeddings(
        tmp_path / "c", shifted, meta, encoder="fake", space="cosine", progress=False
    )
    assert lib.space == "cosine" and lib.search(q, 1)[0].min() > 0.99


def test_batched_encoders_give_the_same_library(tmp_path, monkeypatch):
    class BatchEncoder(FakeEncoder):
        batches = []

        def _embed_batch(self, audio):
            BatchEncoder.batches.append(len(audio))
            return super()._embed_batch(audio)

    make_music(tmp_path / "music")
    (tmp_path / "music" / "zz_broken.flac").write_bytes(b"fLaC but not really")
    many = build_library(tmp_path / "music", tmp_path / "b", encoder=BatchEncoder(), progress=False)
    # groups of 8: [track00..07] batched; [track08, zz_broken]: one readable track, embedded alone
    assert BatchEncoder.batches == [8, 1]
    monkeypatch.setattr(buildmod, "EMBED_GROUP", 1)
    one = build_library(tmp_path / "music", tmp_path / "a", encoder=FakeEncoder(), progress=False)
    assert np.allclose(one.vectors, many.vectors) and len(many.skipped) == 1


def test_plain_metadata_csv_with_relative_paths(tmp_path):
    paths = make_music(tmp_path / "music" / "jazz", FREQS[:2])
    pd.DataFrame(
        {"path": [f"jazz/{p.name}" for p in paths], "title": ["One", "Two"], "artist": "me", "genre": "jazz"}
    ).to_csv(tmp_path / "music" / "metadata.csv", index=False)
    lib = build_library(
        tmp_path / "music",
        tmp_path / "lib",
        encoder=FakeEncoder(),
        metadata=tmp_path / "music" / "metadata.csv",
        progress=False,
    )
    assert list(lib.metadata["title"]) == ["One", "Two"] and set(lib.metadata["genre"]) == {"jazz"}
    with pytest.raises(DataError, match="'path' or 'track_id'"):
        (tmp_path / "bad.csv").write_text("clip,title\nx,y\n")
        build_library(
            tmp_path / "music",
            tmp_path / "lib2",
            encoder=FakeEncoder(),
            metadata=tmp_path / "bad.csv",
            progress=False,
        )


def test_format_1_library_opens_and_gets_a_window_store(tmp_path):
    paths = make_music(tmp_path / "music", FREQS[:3])
    build_library(tmp_path / "music", tmp_path / "lib", encoder=FakeEncoder(), progress=False)
    manifest = tmp_path / "lib" / "manifest.json"
    doc = json.loads(manifest.read_text())
    for key in ("window_store", "coverage", "hop", "generation"):
        doc.pop(key)
    doc["format"] = 1  # as written by brain2music 0.1
    manifest.write_text(json.dumps(doc))
    lib = MusicLibrary(tmp_path / "lib")
    assert lib.coverage == "first15" and lib.hop == 1.5 and len(lib) == 3
    with pytest.warns(UserWarning, match="window store missing"):
        hit = lib.query(paths[1], encoder=FakeEncoder())[0]
    assert hit.path == str(paths[1].resolve()) and MusicLibrary(tmp_path / "lib").manifest["format"] == 2


def test_only_old_orphans_are_removed(tmp_path):
    import os

    make_music(tmp_path / "a", FREQS[:2])
    make_music(tmp_path / "b", FREQS[2:4])
    build_library(tmp_path / "a", tmp_path / "lib", encoder=FakeEncoder(), progress=False)
    shards = tmp_path / "lib" / "shards"
    young, old = shards / "part-young.parquet", shards / "part-old.parquet"
    young.write_bytes(b"another writer's shard, not yet committed")
    old.write_bytes(b"left by a crash a day ago")
    os.utime(old, (0, 0))
    add_to_library(tmp_path / "lib", tmp_path / "b", encoder=FakeEncoder(), progress=False)
    assert young.exists() and not old.exists()
