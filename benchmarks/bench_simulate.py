"""Benchmark of the simulated study (issue 3).

Scenarios (each runs in its own process so its peak memory is its own):

- ``render``: composer render speed, × real time on one core (30-s tracks, 2 per genre, repeated);
- ``genres``: genre separability — 5-fold CV logistic regression on mel-band mean/std of 15-s renders
  (20 tracks per genre), against shuffled labels;
- ``demo``: a demo-sized study (2 subjects × 3,000 voxels, 8 + 2 clips per genre, 4 + 2 runs);
- ``default``: the CLI default (2 subjects × 5,000 voxels, full ds003720 design), plus the distribution of
  explainable variance: realized (truth) and estimated from the test repeats after the real loader;
- ``full``: one full-size subject (60,000 voxels, full design): time and peak memory.

Usage::

    python benchmarks/bench_simulate.py                 # all scenarios
    python benchmarks/bench_simulate.py render genres   # some
"""

from __future__ import annotations

import json
import logging
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SR = 22050


def peak_rss_gb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, kids) / 1024**2


def bench_render(repeats: int = 3) -> dict:
    from brain2music.data import GENRES
    from brain2music.simulate import render, sample_params

    params = [
        sample_params(g, np.random.default_rng(100 + 10 * i + k))
        for i, g in enumerate(GENRES)
        for k in range(2)
    ]
    render(params[0], duration=2.0)  # warm-up (imports)
    per_track, per_genre, cpu = [], {g: [] for g in GENRES}, []
    load_before = os.getloadavg()[0]
    for _ in range(repeats):
        for p in params:
            t, c = time.perf_counter(), time.process_time()
            render(p, sr=SR, duration=30.0)
            dt = time.perf_counter() - t
            cpu.append(time.process_time() - c)
            per_track.append(dt)
            per_genre[p.genre].append(dt)
    med = statistics.median(per_track)
    return {
        "tracks": len(params),
        "repeats": repeats,
        "load_average_1min": [round(load_before, 1), round(os.getloadavg()[0], 1)],
        "cpu_count": os.cpu_count(),
        "median_s_per_30s_track": round(med, 3),
        "x_realtime_median": round(30.0 / med, 1),
        "x_realtime_per_cpu_second_median": round(30.0 / statistics.median(cpu), 1),
        "x_realtime_slowest_track": round(30.0 / max(per_track), 1),
        "x_realtime_by_genre": {g: round(30.0 / statistics.median(v), 1) for g, v in per_genre.items()},
    }


def bench_genres(per_genre: int = 20) -> dict:
    import librosa
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from brain2music.data import GENRES
    from brain2music.simulate import render, sample_params

    rng = np.random.default_rng(7)
    X, y = [], []
    for g in GENRES:
        for _ in range(per_genre):
            audio = render(sample_params(g, rng), duration=15.0)
            mel = librosa.power_to_db(librosa.feature.melspectrogram(y=audio, sr=SR, n_mels=32))
            X.append(np.concatenate([mel.mean(axis=1), mel.std(axis=1)]))
            y.append(g)
    X, y = np.array(X), np.array(y)
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=5000))
    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    acc = cross_val_score(clf, X, y, cv=cv)
    shuffled = [
        cross_val_score(clf, X, np.random.default_rng(s).permutation(y), cv=cv).mean() for s in range(5)
    ]
    return {
        "tracks_per_genre": per_genre,
        "features": "mean and sd over time of 32 log-mel bands (64 values) of 15-s renders",
        "cv_accuracy_mean": round(float(acc.mean()), 3),
        "cv_accuracy_sd": round(float(acc.std()), 3),
        "shuffled_label_accuracy_mean": round(float(np.mean(shuffled)), 3),
        "chance": 0.1,
    }


def _study(**kwargs) -> dict:
    from brain2music.simulate import simulate_study

    logging.basicConfig(level=logging.INFO, format="  %(message)s", stream=sys.stderr)
    with tempfile.TemporaryDirectory(dir=kwargs.pop("dir", None)) as tmp:
        out = Path(tmp) / "study"
        t = time.perf_counter()
        simulate_study(out, progress=False, **kwargs)
        wall = time.perf_counter() - t
        size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
        info = json.loads((out / "truth" / "truth.json").read_text())
        result = {
            "options": kwargs,
            "load_average_1min_at_end": round(os.getloadavg()[0], 1),
            "wall_s": round(wall, 1),
            "peak_rss_gb": round(peak_rss_gb(), 2),
            "disk_gb": round(size / 1024**3, 2),
            "ev_realized": info["explainable_variance"]["sub-001"],
        }
        if kwargs.get("n_voxels", 0) <= 10_000:
            result["ev_from_test_repeats"] = _ev_from_repeats(out)
    return result


def _ev_from_repeats(out: Path) -> dict:
    """Explainable variance per voxel from the test repeats after the real loader (Schoppe et al. 2016)."""
    from brain2music.data import load_subject

    sub = load_subject(out / "bids", 1)
    truth = np.load(out / "truth" / "sub-001.npz")
    rep = np.transpose(sub.test, (1, 0, 2, 3)).reshape(sub.test.shape[1], -1, sub.n_voxels)  # (n_rep, T, V)
    rep = (rep - rep.mean(axis=1, keepdims=True)) / rep.std(axis=1, keepdims=True)
    n = rep.shape[0]
    # voxelwise_tutorials.utils.explainable_variance with bias correction
    ev = np.var(rep.mean(axis=0), axis=0) / np.mean(np.var(rep, axis=1), axis=0)
    ev = ev - (1 - ev) / (n - 1)

    def q(x):
        return {f"q{p}": round(float(np.percentile(x, p)), 3) for p in (5, 25, 50, 75, 95)} | {
            "n": int(x.size)
        }

    aud, tuned = truth["auditory"], truth["tuned"]
    return {
        "tuned": q(ev[tuned]),
        "auditory_parcels": q(ev[aud]),
        "elsewhere": q(ev[~aud]),
        "tuned_share_in_0.05_0.5": round(float(np.mean((ev[tuned] >= 0.05) & (ev[tuned] <= 0.5))), 3),
        "auditory_share_in_0.05_0.5": round(float(np.mean((ev[aud] >= 0.05) & (ev[aud] <= 0.5))), 3),
        "corr_with_truth_ev_realized": round(
            float(np.corrcoef(ev[tuned], truth["ev_realized"][tuned])[0, 1]), 3
        ),
    }


SCENARIOS = {
    "render": bench_render,
    "genres": bench_genres,
    "demo": lambda: _study(
        n_subjects=2, n_voxels=3000, clips_per_genre=8, test_clips_per_genre=2, train_runs=4, test_runs=2
    ),
    "demo-jobs2": lambda: _study(
        n_subjects=2,
        n_voxels=3000,
        clips_per_genre=8,
        test_clips_per_genre=2,
        train_runs=4,
        test_runs=2,
        n_jobs=2,
    ),
    "default": lambda: _study(n_subjects=2, n_voxels=5000),
    "full": lambda: _study(n_subjects=1, n_voxels=60_000),
}


def main(argv: list[str]) -> None:
    if argv and argv[0] == "--child":
        print("RESULT " + json.dumps(SCENARIOS[argv[1]]()), flush=True)
        return
    for name in argv or list(SCENARIOS):
        proc = subprocess.run(
            [sys.executable, __file__, "--child", name], capture_output=True, text=True, check=False
        )
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        stages = [ln.strip() for ln in proc.stderr.splitlines() if ln.startswith("  ")]
        if proc.returncode or not lines:
            print(f"{name}: FAILED\n{proc.stderr[-3000:]}")
            continue
        print(f"== {name}")
        for s in stages:
            print(f"   stage {s}")
        print(json.dumps(json.loads(lines[-1][7:]), indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
