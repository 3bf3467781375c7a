"""The mosaic generator: generation not retrieval (waveform cross-correlation), steering, DP, encoders."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from brain2music.errors import ConfigError, DataError
from brain2music.reconstruct.clip_embedding import clip_embedding, prepare_clip
from brain2music.reconstruct.generators import BestOfN, get_generator, list_generators
from brain2music.reconstruct.generators.mosaic import MosaicGenerator, slot_weights, viterbi
from brain2music.reconstruct.library import MusicLibrary, build_library
from brain2music.stimuli import read_audio
from mosaic_music import copied_stretches, synth_track, write_tracks

SR = 8000  # library files and output at 8 kHz: copies are exact at integer lags, the check stays fast


@pytest.fixture(scope="module")
def music(tmp_path_factory):
    return write_tracks(tmp_path_factory.mktemp("mosaic") / "music", 9, duration=20.0, sr=SR)


@pytest.fixture(scope="module")
def lib(music, tmp_path_factory):
    return build_library(
        music[0].parent, tmp_path_factory.mktemp("lib") / "lib", encoder="acoustic", coverage="full",
        progress=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def gen(lib, music):
    return MosaicGenerator(lib, exclude=[str(music[0])], sr=SR).fit()


def _sources(lib):
    return [read_audio(p, sr=SR)[0] for p in lib.metadata["path"]]


def test_registered_and_needs_a_full_library(lib, music, tmp_path):
    assert "mosaic" in list_generators()
    with pytest.raises(ConfigError, match="library="):
        get_generator("mosaic")
    first15 = build_library(music[0].parent, tmp_path / "f15", encoder="debug", progress=False)
    with pytest.raises(ConfigError, match="--coverage full"):
        get_generator("mosaic", library=first15)
    with pytest.raises(DataError, match="encoder"):
        get_generator("mosaic", library=lib, encoder="debug")
    for bad in (dict(segment=0.1), dict(max_segment=1.0), dict(min_sources=0), dict(crossfade=2.0)):
        with pytest.raises(ConfigError, match="mosaic"):
            MosaicGenerator(lib, **bad)


def test_copy_detector_finds_a_pasted_excerpt(lib):
    """The cross-correlation check itself: a 7-s paste of one source and 8 s of another are found."""
    src = _sources(lib)
    fake = np.concatenate([src[3][2 * SR : 9 * SR], 0.3 * src[4][1 * SR : 9 * SR]])
    found = copied_stretches(fake, src, SR)
    assert [(i, round(length, 2)) for i, _, length in found[:2]] == [(4, 8.0), (3, 7.0)]


@pytest.mark.parametrize("max_segment, min_sources", [(6.0, 3), (3.0, 4)])
def test_generation_not_retrieval(lib, music, max_segment, min_sources):
    """Waveform cross-correlation against every library track: no copied stretch longer than the set
    length (plus the crossfade and the detector's block), at least ``min_sources`` sources, and never the
    excluded track."""
    g = MosaicGenerator(lib, exclude=[str(music[0])], sr=SR, max_segment=max_segment, min_sources=min_sources)
    audio, sr = g.generate(lib.windows([0])[0], random_state=0)
    assert sr == SR and audio.shape == (1, 15 * SR) and np.all(np.isfinite(audio))
    found = copied_stretches(audio[0], _sources(lib), SR)
    assert found, "the output should be made of library audio"
    assert max(length for _, _, length in found) <= max_segment + g.crossfade + 0.5
    sources = {i for i, _, length in found if length >= 1.0}
    assert len(sources) >= min_sources and 0 not in {i for i, _, _ in found}
    copied = sum(length for _, _, length in found)
    assert copied > 12.0  # nearly all of the 15 s is found again in some source
    plan = g.last_plans_[0]
    assert plan["n_sources"] >= min_sources and plan["longest_segment"] <= max_segment + g.crossfade + 1e-6


def test_follows_the_target(lib, music, gen):
    """Mosaics for held-in tracks' embeddings (excluding the track itself): each mosaic's embedding is
    closer to its own target than to the other targets (identification), far above chance."""
    from brain2music.embeddings import get_encoder
    from brain2music.evaluate.identification import identification_accuracy

    enc = get_encoder("acoustic")
    targets = lib.windows(np.arange(1, 9))
    embs = []
    for i, t in enumerate(targets, start=1):
        audio, sr = gen.generate(t, random_state=0, exclude=[str(lib.metadata.at[i, "path"])])
        embs.append(clip_embedding(enc, prepare_clip(audio[0], sr), sr))
        assert i not in {s["item"] for s in gen.last_plans_[0]["segments"]}
    ref = lib.windows(None)
    mean, sd = ref.mean(axis=(0, 1)), ref.std(axis=(0, 1)) + 1e-6
    acc = identification_accuracy((np.stack(embs) - mean) / sd, (targets - mean) / sd)
    assert acc >= 0.8


def test_continuity_weight_trades_target_for_smooth_joins(lib, gen):
    """The DP's two terms: with continuity 0 the target cost is minimal, with a large weight the joins
    are cheaper (and the target cost cannot be lower)."""
    target = lib.windows([3])[0]

    def costs(weight):
        g = MosaicGenerator(lib, exclude=[str(lib.metadata.at[3, "path"])], sr=SR, continuity=weight)
        g.analysis_, g.store_, g.fade_ = gen.analysis_, gen.store_, gen.fade_
        g.window_, g.window_starts_, g.excluded_ = (
            gen.window_,
            gen.window_starts_,
            g._excluded_items(g.exclude),
        )
        slots, weights = slot_weights(g.window_starts_, g.window_, 15.0, g.segment)
        layers = g._layers(g._targets(target), slots, weights, g.excluded_)
        path = g._solve(layers, None)
        unit = sum(layers[j]["cost"][c] for j, c in enumerate(path))
        joins = sum(layers[j]["join"][path[j - 1], c] for j, c in enumerate(path) if j) / max(weight, 1e-9)
        return unit, joins

    u0, _ = costs(0.0)
    u1, j1 = costs(3.0)
    _, j_small = costs(1e-3)
    assert u0 <= u1 + 1e-9 and j1 <= j_small + 1e-9


def test_viterbi_matches_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(20):
        sizes = rng.integers(1, 5, size=4)
        unary = [rng.random(n) for n in sizes]
        pairwise = [
            np.where(rng.random((a, b)) < 0.3, np.inf, rng.random((a, b)))
            for a, b in itertools.pairwise(sizes)
        ]
        best = min(
            (
                sum(unary[j][c] for j, c in enumerate(p))
                + sum(pairwise[j][p[j], p[j + 1]] for j in range(3)),
                p,
            )
            for p in itertools.product(*[range(n) for n in sizes])
        )
        path, cost = viterbi(unary, pairwise)
        if np.isfinite(best[0]):
            assert cost == pytest.approx(best[0]) and tuple(path) == best[1]
        else:
            assert not np.isfinite(cost)


def test_slot_geometry_for_short_and_long_windows():
    from brain2music.windows import embedding_windows

    # acoustic: 1.5-s windows, 3-s slots -> two windows inside each slot, half each
    slots, w = slot_weights(embedding_windows(1.5)[:, 0], 1.5, 15.0, 3.0)
    assert slots.shape == (5, 2) and np.allclose(w[1], [0, 0, 0.5, 0.5, 0, 0, 0, 0, 0, 0])
    # CLAP: 10-s windows (r = 4) hold a middle slot entirely, each window counts the same
    slots, w = slot_weights(embedding_windows(10.0)[:, 0], 10.0, 15.0, 3.0)
    assert np.allclose(w[2], 0.25) and np.allclose(w.sum(axis=1), 1.0)
    # a slot past the windows is tied to the last one
    slots, w = slot_weights(embedding_windows(10.0)[:, 0], 10.0, 18.0, 3.0)
    assert len(slots) == 6 and w[5, 3] == 1.0


def test_samples_differ_and_best_of_picks_by_embedding(lib, gen):
    from brain2music.embeddings import get_encoder

    target = lib.windows([2])[0]
    audio, _ = gen.generate(target, n_samples=3, random_state=1)
    assert not np.allclose(audio[0], audio[1]) and not np.allclose(audio[1], audio[2])
    again, _ = gen.generate(target, n_samples=1, random_state=7)
    np.testing.assert_array_equal(again[0], audio[0])  # sample 0 is the best path, whatever the seed
    best = BestOfN(gen, get_encoder("acoustic"), n=3)
    out, sr = best.generate(target, random_state=1)
    assert out.shape == (1, 15 * SR) and best.last_scores_.shape == (1, 3)
    # reconstruction.json records the segments of the candidate best-of kept, not of the first one
    from brain2music.study.recon_steps import _segments_of

    kept = gen.last_plans_[int(np.argmax(best.last_scores_[0]))]["segments"]
    assert [s["source_start"] for s in _segments_of(best)] == [s["source_start"] for s in kept]
    assert [s["path"] for s in _segments_of(gen)] == [s["path"] for s in gen.last_plans_[0]["segments"]]
    via_registry = get_generator("best-of", base="mosaic", library=lib, encoder="acoustic", n=2, sr=SR)
    assert via_registry.generate(target, random_state=0)[0].shape == (1, 15 * SR)


def test_errors_name_the_problem(lib, music, gen):
    with pytest.raises(DataError, match=r"\(102,\) or \(10, 102\)"):
        gen.generate(np.zeros((3, 5)))
    everything = [str(p) for p in music[1:]]
    g = MosaicGenerator(lib, exclude=everything[:-2] + [str(music[0])], sr=SR)
    with pytest.raises(DataError, match="min_sources = 3"):
        g.generate(lib.windows([0])[0])


def test_analysis_is_cached_next_to_the_library(lib, gen, monkeypatch):
    from brain2music.reconstruct.generators import mosaic_analysis

    monkeypatch.setattr(mosaic_analysis, "analyse_track", lambda path: pytest.fail("analysed twice"))
    again = MosaicGenerator(MusicLibrary(lib.path), sr=SR).fit()
    assert again.analysis_.path == gen.analysis_.path and (lib.path / "mosaic" / "tracks").is_dir()
    assert again.analysis_.info["paths"] == list(lib.metadata["path"])


def _tiny_library(tmp_path, enc, n=6, duration=24.0):
    import soundfile as sf

    folder = tmp_path / "music"
    folder.mkdir()
    for i in range(n):
        sf.write(folder / f"t{i}.wav", synth_track(50 + i, duration=duration, sr=enc.sr), enc.sr)
    return build_library(folder, tmp_path / "lib", encoder=enc, coverage="full", progress=False)


def test_musicnn_windows(tmp_path):
    """3-s windows (r = 9): slots tie to windows inside and across them; the clip re-embeds finitely."""
    from brain2music.embeddings import get_encoder

    enc = get_encoder("musicnn-msd")
    lib = _tiny_library(tmp_path, enc, n=5, duration=20.0)
    g = MosaicGenerator(lib, encoder=enc, exclude=[str(lib.metadata.at[0, "path"])], sr=16000)
    audio, sr = g.generate(lib.windows([0])[0], random_state=0)
    assert g.last_plans_[0]["n_sources"] >= 3
    emb = clip_embedding(enc, prepare_clip(audio[0], sr), sr)
    assert emb.shape == (9, enc.dim)


@pytest.mark.neural
def test_clap_windows(tmp_path):
    """10-s windows (r = 4) through the same path (tiny random-weight CLAP)."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from brain2music.embeddings.neural import ClapEncoder
    from test_embeddings_neural import tiny_clap

    enc = ClapEncoder(*tiny_clap(), batch_size=8)
    lib = _tiny_library(tmp_path, enc, n=5, duration=24.0)
    g = MosaicGenerator(lib, encoder=enc, exclude=[str(lib.metadata.at[0, "path"])], sr=enc.sr)
    audio, sr = g.generate(lib.windows([0])[0], random_state=0)
    found = copied_stretches(audio[0], [read_audio(p, sr=sr)[0] for p in lib.metadata["path"]], sr)
    assert max(length for _, _, length in found) <= g.max_segment + g.crossfade + 0.5
    assert len({i for i, _, length in found if length >= 1.0}) >= 3


def _plain_windows(lib) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per library item: ``(starts (n,), raw window embeddings (n, dim))`` of the whole track."""
    out = []
    for emb, starts, counts in lib.search_window_blocks():
        offsets = np.concatenate([[0], np.cumsum(counts)])
        out += [(starts[a:b], emb[a:b]) for a, b in itertools.pairwise(offsets)]
    return out


# The target of the known-answer tests: 0-6 s of the output are item 2 from 4.5 s, 6-12 s item 5 from
# 3 s, 12-15 s item 7 from 6 s (offsets on the 1.5-s window grid of the store).
_PIECES = [(2, 4.5, 0.0, 6.0), (5, 3.0, 6.0, 6.0), (7, 6.0, 12.0, 3.0)]


def _pieced_target(lib) -> np.ndarray:
    """``(r, dim)`` raw window embeddings: each clip window taken from the piece that covers it."""
    plain, target = _plain_windows(lib), []
    for t in lib.clip_window_starts():
        item, src, out, _ = next(p for p in _PIECES if p[2] <= t < p[2] + p[3])
        starts, emb = plain[item]
        target.append(emb[int(np.argmin(np.abs(starts - (src + t - out))))])
    return np.stack(target)


def _exact_mosaic(lib, **kw):
    """A mosaic that follows each window exactly: no snapping, no crossfade, no join cost, and no fade
    compensation (the target is made of plain library windows, not of a faded stimulus clip)."""
    g = MosaicGenerator(lib, sr=SR, snap=0.0, crossfade=0.0, continuity=0.0, window_weight=1.0, **kw).fit()
    g.fade_ = np.zeros_like(g.fade_)
    return g


def test_a_library_holding_the_targets_segments_reproduces_them(lib):
    """Known answer: when the target's windows are windows of library tracks, the mosaic is those very
    segments, at their places (the plan), and the audio is their waveforms (cross-correlation)."""
    g = _exact_mosaic(lib)
    audio, _ = g.generate(_pieced_target(lib), random_state=0)
    meta = lib.metadata
    got = [
        (s["item"], s["source_start"], s["output_start"], s["duration"]) for s in g.last_plans_[0]["segments"]
    ]
    assert np.allclose(got, _PIECES), got
    assert [s["path"] for s in g.last_plans_[0]["segments"]] == [str(meta.at[p[0], "path"]) for p in _PIECES]
    assert all(s["target_cost"] == pytest.approx(0.0, abs=1e-3) for s in g.last_plans_[0]["segments"])
    found = copied_stretches(audio[0], _sources(lib), SR)
    for item, _, out, length in _PIECES:
        hits = [f for f in found if f[0] == item and abs(f[1] - out) <= 0.5]
        assert hits and hits[0][2] == pytest.approx(length, abs=0.5), (item, found)
    assert {f[0] for f in found if f[2] >= 1.0} == {p[0] for p in _PIECES}


def test_excluded_recordings_never_appear(lib):
    """Excluding the track of the middle piece: it is in no segment and nowhere in the waveform, while
    the pieces of the other tracks are still reproduced exactly (exclusion removes only what it must)."""
    banned = str(lib.metadata.at[5, "path"])
    for g, extra, listen in (
        (_exact_mosaic(lib, exclude=[banned]), None, True),
        (_exact_mosaic(lib), [banned], False),
    ):
        audio, _ = g.generate(_pieced_target(lib), random_state=0, exclude=extra)
        segs = g.last_plans_[0]["segments"]
        assert 5 not in {s["item"] for s in segs} and banned not in {s["path"] for s in segs}
        assert (segs[0]["item"], segs[0]["source_start"], segs[0]["duration"]) == pytest.approx((2, 4.5, 6.0))
        assert (segs[-1]["item"], segs[-1]["source_start"], segs[-1]["output_start"]) == pytest.approx(
            (7, 6.0, 12.0)
        )
        if listen:  # the waveform check once (the plan is what is rendered)
            assert 5 not in {i for i, _, _ in copied_stretches(audio[0], _sources(lib), SR)}


def test_min_sources_holds_when_one_track_fits_every_slot(lib, gen):
    """A held-in track's own windows as the target with a long max_segment: the DP would rather play that
    track in several runs; the mosaic still uses min_sources tracks (on real recordings this once fell
    back silently to 1-2 tracks), and a clip too short for min_sources slots is refused."""
    g = MosaicGenerator(lib, sr=SR, max_segment=12.0)
    g.analysis_, g.store_, g.fade_ = gen.analysis_, gen.store_, gen.fade_
    g.window_, g.window_starts_, g.excluded_ = gen.window_, gen.window_starts_, g._excluded_items(())
    for k in range(4):
        g.generate(lib.windows([k])[0], random_state=0)
        assert len({s["item"] for s in g.last_plans_[0]["segments"]}) >= 3, k
    with pytest.raises(DataError, match="2 slot.*min_sources = 3"):
        g.generate(lib.windows([0])[0], duration=6.0)
