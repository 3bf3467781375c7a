"""Audible discontinuities at the joins of mosaics, against random concatenation (real recordings).

Run (heavy: builds a 94-track library unless ``--library`` is given; run under the shared lock)::

    python benchmarks/bench_mosaic_joins.py --workdir /tmp/joins [--library LIB]

What it does: a ``coverage="full"`` library of the real recordings of ``benchmarks/real_music.py``
(acoustic encoder) is the corpus. Targets are the clip embeddings (first 15 s) of ``--targets`` library
tracks; each is rebuilt from the *other* tracks (its own excluded), so no target is reachable by copying.
Conditions, each rendering 15-s clips on the same 3-s slot grid with the same 50-ms crossfades:

- ``mosaic``: the generator's defaults (target + join costs, beat/onset cuts, join levelling);
- ``mosaic, continuity 0``: the same candidates chosen for the target alone;
- ``mosaic, continuity 1`` / ``3``: the join costs weighted more (the default is 0.3);
- ``mosaic, no snapping``: cuts stay on the slot grid (no beat/onset alignment);
- ``random concatenation``: random tracks at random positions, played at their track level.

Metric (per join; a join is where a segment's cut lands in the output): spectral flux (librosa's onset
strength, log-mel, hop 512 at 22,050 Hz) of the output, maximum within ±2 frames (±46 ms) of the join.
A join counts as an **audible discontinuity** when that flux exceeds what the sources themselves show
there — the larger of the flux at the cut point in the incoming segment's own track and at the end point
in the outgoing segment's track (a cut on a real onset is not a discontinuity) — by more than
``--margin`` times the output clip's median flux. Also printed: the raw join flux over the clip's
median (no source correction), and the mean target cost of the chosen segments.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

SR = 22050
HOP = 512


def _flux(y: np.ndarray) -> np.ndarray:
    import librosa

    return librosa.onset.onset_strength(y=y, sr=SR, hop_length=HOP)


def _flux_at(y: np.ndarray, t: float, flux=None) -> float:
    f = _flux(y) if flux is None else flux
    k = int(round(t * SR / HOP))
    return float(f[max(k - 2, 0) : k + 3].max()) if len(f) else 0.0


def join_scores(audio: np.ndarray, segments: list[dict], margin: float) -> list[dict]:
    """Per join of a rendered clip: output flux, natural flux of the sources there, spike yes/no."""
    from brain2music.stimuli import read_audio

    flux = _flux(audio)
    median = float(np.median(flux)) + 1e-9
    out = []
    for a, b in zip(segments[:-1], segments[1:], strict=True):
        pre = b["source_start"]
        cut_out = b["output_start"] + (b.get("pre", 0.05))  # where B's cut lands
        cut_in = pre + b.get("pre", 0.05)  # B's cut in its track
        end_a = a["source_start"] + (cut_out - a["output_start"])  # where A's audio ends in its track
        yb, _ = read_audio(b["path"], sr=SR, offset=max(cut_in - 1.0, 0.0), duration=2.0)
        ya, _ = read_audio(a["path"], sr=SR, offset=max(end_a - 1.0, 0.0), duration=2.0)
        natural = max(_flux_at(yb, min(1.0, cut_in)), _flux_at(ya, min(1.0, end_a)))
        at = _flux_at(audio, cut_out, flux)
        out.append(
            {"flux": at / median, "excess": (at - natural) / median, "spike": at - natural > margin * median}
        )
    return out


def random_segments(lib, analysis, rng, *, exclude: int, duration=15.0, segment=3.0, crossfade=0.05):
    durations = analysis.durations
    ok = np.flatnonzero((durations > segment + 2.0) & (np.arange(len(durations)) != exclude))
    segs = []
    n = int(np.ceil(duration / segment))
    for j in range(n):
        item = int(rng.choice(ok))
        pre = crossfade if j else 0.0
        length = min(segment, duration - j * segment) + pre
        start = float(rng.uniform(0.5, durations[item] - length - 0.5))
        segs.append({"item": item, "path": str(lib.metadata.at[item, "path"]), "source_start": start,
                     "output_start": j * segment - pre, "duration": length, "pre": pre,
                     "gain_db": float(-20 * np.log10(max(analysis.rms[item], 1e-6)) - 20)})  # fmt: skip
    return segs


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", default="/tmp/bench_mosaic_joins")
    p.add_argument("--library", default=None, help="an existing coverage=full library of real recordings")
    p.add_argument("--targets", type=int, default=30)
    p.add_argument("--margin", type=float, default=2.0)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    from brain2music.reconstruct.generators.mosaic import MosaicGenerator, render_segments
    from brain2music.reconstruct.library import MusicLibrary, build_library

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    print(f"load at start: {os.getloadavg()}")
    if args.library:
        lib = MusicLibrary(args.library)
    else:
        from real_music import real_tracks

        music = work / "music"
        if not music.is_dir():
            music.mkdir()
            for i, t in enumerate(real_tracks()):
                os.symlink(t.path, music / f"{i:03d}_{Path(t.path).name}")
        lib_dir = work / "lib"
        lib = MusicLibrary(lib_dir) if lib_dir.is_dir() else build_library(
            music, lib_dir, encoder="acoustic", coverage="full", progress=False
        )  # fmt: skip
    rng = np.random.default_rng(args.seed)
    items = rng.choice(len(lib), min(args.targets, len(lib)), replace=False)
    targets = lib.windows(items)
    conditions = {
        "mosaic": {},
        "mosaic, continuity 0": {"continuity": 0.0},
        "mosaic, continuity 1": {"continuity": 1.0},
        "mosaic, continuity 3": {"continuity": 3.0},
        "mosaic, no snapping": {"snap": 0.0},
    }
    results = {}
    for name, opts in conditions.items():
        gen = MosaicGenerator(lib, **opts).fit()
        joins, costs, t0 = [], [], time.perf_counter()
        for item, target in zip(items, targets, strict=True):
            audio, _ = gen.generate(target, random_state=0, exclude=[str(lib.metadata.at[int(item), "path"])])
            plan = gen.last_plans_[0]["segments"]
            for s in plan[1:]:
                s["pre"] = gen.crossfade
            joins.append(join_scores(audio[0], plan, args.margin))
            costs.append(np.mean([s["target_cost"] for s in plan]))
        results[name] = (joins, float(np.mean(costs)), (time.perf_counter() - t0) / len(items))
    analysis = gen.analysis_
    joins = []
    for item in items:
        segs = random_segments(lib, analysis, rng, exclude=int(item))
        audio = render_segments(segs, sr=SR, crossfade=0.05, duration=15.0)
        joins.append(join_scores(audio, segs, args.margin))
    results["random concatenation"] = (joins, float("nan"), float("nan"))
    print(f"{len(items)} targets, library {lib.path} ({len(lib)} tracks), margin {args.margin}")
    print("discontinuities: share of joins (95 % bootstrap CI over clips)")
    print(f"{'condition':24s} {'joins':>6s} {'discontinuities':>24s} {'per clip':>9s} {'join flux/median':>17s} "
          f"{'target cost':>12s} {'s/clip':>7s}")  # fmt: skip
    for name, (per_clip, cost, dt) in results.items():
        j = [x for clip in per_clip for x in clip]
        spikes = np.array([x["spike"] for x in j])
        flux = np.array([x["flux"] for x in j])
        # resample clips (joins of one clip are not independent), ratio of spikes to joins
        rng_ci = np.random.default_rng(0)
        counts = np.array([[sum(x["spike"] for x in c), len(c)] for c in per_clip], dtype=float)
        boot = counts[rng_ci.integers(0, len(counts), (1000, len(counts)))].sum(axis=1)
        lo, hi = np.quantile(boot[:, 0] / boot[:, 1], [0.025, 0.975])
        share = f"{spikes.mean():.3f} [{lo:.3f}, {hi:.3f}]"
        print(f"{name:24s} {len(j):6d} {share:>24s} {spikes.sum() / len(items):9.2f} "
              f"{np.median(flux):17.2f} {cost:12.3f} {dt:7.2f}")  # fmt: skip
    print(f"load at end: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
