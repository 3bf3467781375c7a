"""Audio queries of any length, offset and encoding against composed music (acoustic encoder)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from brain2music.errors import DataError, DataFileNotFoundError
from brain2music.reconstruct.library import MusicLibrary, build_library, search_library
from brain2music.stimuli import read_audio, resample

GENRES = ["rock", "classical", "jazz", "hiphop", "country", "metal"]
SR = 22050


@pytest.fixture(scope="module")
def music(tmp_path_factory):
    """Six composed 30-s tracks, one per genre, each of three 10-s sections (composer, FluidSynth).

    A single composed piece loops a few bars, so an excerpt would match several offsets equally well;
    sections make every offset unique, as in most real music.
    """
    from brain2music.simulate import render, sample_params

    folder = tmp_path_factory.mktemp("music")
    paths = []
    for i, genre in enumerate(GENRES):
        path = folder / f"{genre}.{i:05d}.wav"
        parts = [render(sample_params(genre, 100 + 10 * i + j), sr=SR, duration=10.0) for j in range(3)]
        sf.write(path, np.concatenate(parts), SR)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def libs(music, tmp_path_factory):
    root = tmp_path_factory.mktemp("libs")
    folder = music[0].parent
    first15 = build_library(folder, root / "first15", encoder="acoustic", progress=False)
    full = build_library(folder, root / "full", encoder="acoustic", coverage="full", progress=False)
    return first15, full


def _top(lib, query, **kw):
    return lib.query(query, k=3, **kw)


@pytest.mark.parametrize("which", [0, 1])
def test_exact_file_is_its_own_first_match(libs, music, which):
    lib = libs[which]
    for path in music:
        best = _top(lib, path)[0]
        assert best.path == str(path.resolve()) and best.offset == 0.0
        # first15 clips carry the stimuli's 2-s fades (the paper's protocol), the query does not.
        assert best.score > (0.85 if lib.coverage == "first15" else 0.99)


def test_12s_copy_at_44k_stereo_finds_its_source(libs, music, tmp_path):
    # The case: a 12-s copy; padding it to 15 s with silence used to sink its source.
    for path in music:
        audio, sr = read_audio(path, duration=12.0)
        q = tmp_path / f"{path.stem}.44k.wav"
        stereo = np.stack([resample(audio, sr, 44100)] * 2, axis=1)
        sf.write(q, stereo, 44100)
        for lib in libs:
            hits = _top(lib, q)
            assert hits[0].path == str(path.resolve()), (lib.coverage, path.name, hits)
            assert hits[0].offset == 0.0 and hits[0].n_windows == 8  # 12 s = 8 windows of 1.5 s, no padding
            assert hits[0].score > hits[1].score + 0.1


def test_6s_excerpt_from_7s_found_with_its_offset(libs, music, tmp_path):
    full = libs[1]
    for path in music:
        q = tmp_path / f"{path.stem}.excerpt.flac"
        audio, sr = read_audio(path, offset=7.0, duration=6.0)
        sf.write(q, audio, sr)
        best = _top(full, q)[0]
        assert best.path == str(path.resolve())
        assert abs(best.offset - 7.0) <= 1.5  # within one window (the hop grid is 1.5 s)
    # Python API and search_library agree.
    table = search_library(full, audio=q, k=2)
    assert table.iloc[0]["path"] == best.path and table.iloc[0]["offset"] == best.offset


@pytest.mark.parametrize("fmt,subtype", [("MP3", None), ("OGG", "VORBIS")])
def test_lossy_reencoding_finds_its_source(libs, music, tmp_path, fmt, subtype):
    for path in music[:3]:
        audio, sr = read_audio(path)
        q = tmp_path / f"{path.stem}.{fmt.lower()}"
        sf.write(q, audio, sr, format=fmt, subtype=subtype)
        for lib in libs:
            assert _top(lib, q)[0].path == str(path.resolve()), (fmt, lib.coverage, path.name)


def test_bad_queries_name_the_file(libs, tmp_path):
    lib = libs[1]
    short = tmp_path / "short.wav"
    sf.write(short, 0.1 * np.random.default_rng(0).standard_normal(SR), SR)  # 1 s < one 1.5-s window
    with pytest.raises(DataError, match=r"short\.wav.*shorter than one 1\.5-s window"):
        lib.query(short)
    silent = tmp_path / "silent.ogg"
    sf.write(silent, np.zeros(5 * SR), SR, format="OGG", subtype="VORBIS")
    with pytest.raises(DataError, match=r"silent\.ogg.*silent"):
        lib.query(silent)
    junk = tmp_path / "junk.mp3"
    junk.write_bytes(b"ID3 this is not an mp3 at all" * 10)
    with pytest.raises(DataError, match=r"junk\.mp3.*cannot read"):
        lib.query(junk)
    with pytest.raises(DataFileNotFoundError, match="missing.wav"):
        lib.query(tmp_path / "missing.wav")


def test_window_store_api(libs, music):
    first15, full = libs
    assert first15.coverage == "first15" and full.coverage == "full" and full.hop == 1.5
    starts, emb = full.track_windows(2)
    assert emb.shape == (20, first15.dim) and np.allclose(starts, np.arange(20) * 1.5)
    store = full.window_store
    assert len(store) == 6 * 20 and store.vectors.dtype == np.float16
    # A library window's own embedding finds itself (item and offset).
    scores, items, found = full.search_windows(emb[[5, 11]], k=1)
    assert list(items[:, 0]) == [2, 2] and list(found[:, 0]) == [7.5, 16.5]
    assert np.all(scores[:, 0] > 0.999)
    audio, sr = full.read_window(2, 7.5)
    ref, _ = read_audio(full.metadata.at[2, "path"], offset=7.5, duration=1.5)
    assert sr == SR and np.array_equal(audio, ref)
    # first15: the clip windows of the paper's protocol (r = 10), reconstruction's clip vectors unchanged.
    starts15, emb15 = first15.track_windows(0)
    assert emb15.shape == (10, first15.dim) and np.allclose(emb15, first15.windows([0])[0])
    assert np.allclose(full.vectors, first15.vectors, atol=1e-6)  # same first-15-s clip vectors


def test_cli_full_coverage_search_json(music, tmp_path, capsys):
    from brain2music import cli

    folder = music[0].parent
    assert cli.main(["library", "build", str(folder), "--encoder", "acoustic", "--out", str(tmp_path / "lib"),
                     "--coverage", "full", "--hop", "0.75"]) == 0  # fmt: skip
    assert "coverage full" in capsys.readouterr().out
    q = tmp_path / "q.wav"
    audio, sr = read_audio(music[4], offset=10.0, duration=5.0)
    sf.write(q, audio, sr)
    assert cli.main(["library", "search", str(tmp_path / "lib"), "--audio", str(q), "-k", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out[0]["path"] == str(music[4].resolve()) and abs(out[0]["offset"] - 10.0) <= 0.75
    assert {"score", "offset", "rank", "n_windows", "title"} <= set(out[0])
    lib = MusicLibrary(tmp_path / "lib")
    assert lib.hop == 0.75 and len(lib.track_windows(0)[0]) == 39  # windows end at 1.5, 2.25, ..., 30 s


@pytest.mark.neural
def test_clap_library_matches_an_excerpt(tmp_path):
    """The same query path for a neural encoder (tiny random-weight CLAP: 10-s windows on the 1.5-s grid)."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from brain2music.embeddings.neural import ClapEncoder
    from test_embeddings_neural import tiny_clap

    enc = ClapEncoder(*tiny_clap(), batch_size=8)
    rng = np.random.default_rng(0)
    folder = tmp_path / "music"
    folder.mkdir()
    sr = enc.sr
    for i in range(3):  # tones that glide differently: every offset looks different
        t = np.arange(24 * sr) / sr
        f = 300 * (i + 1) * (1 + 0.5 * np.sin(2 * np.pi * t / (17 + 5 * i)))
        y = np.sin(2 * np.pi * np.cumsum(f) / sr) * (0.2 + 0.15 * np.sin(t)) + 0.02 * rng.standard_normal(
            t.size
        )
        sf.write(folder / f"t{i}.wav", y.astype(np.float32), sr)
    lib = build_library(folder, tmp_path / "lib", encoder=enc, coverage="full", progress=False)
    assert lib.track_windows(0)[1].shape == (10, enc.dim)  # windows ending at 10.5, 12, ..., 24 s
    audio, _ = read_audio(folder / "t1.wav", offset=6.0, duration=11.5)
    q = tmp_path / "q.ogg"
    sf.write(q, audio, sr, format="OGG", subtype="VORBIS")
    best = lib.query(q, k=2, encoder=enc)[0]
    assert best.path == str((folder / "t1.wav").resolve()) and abs(best.offset - 6.0) <= 1.5
