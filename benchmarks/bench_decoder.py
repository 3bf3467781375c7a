"""Benchmark: decoder fit for one full-size subject (4,800 window samples × 60,000 voxels → 512 dims).

20 penalties, 5 run-grouped folds, penalty chosen per target. Compares

- ``ours``      brain2music RidgeDecoder (himalaya KernelRidgeCV, dual form, picked automatically);
- ``himalaya``  himalaya RidgeCV (primal form, what you get without switching forms);
- ``sklearn``   scikit-learn RidgeCV(alpha_per_target=True) (its per-target choice exists only for
                efficient leave-one-out GCV, so the CV scheme differs);

each in a fresh process (peak RSS = that method alone + the data). The references named in ``--slow``
are measured on a fraction of the voxels (``--fraction``) and extrapolated linearly in
the number of voxels (the cost of both primal solvers is dominated by terms linear in n_features when
n_features >> n_samples); the output says so.

Usage::

    python benchmarks/bench_decoder.py                       # full size, all three
    python benchmarks/bench_decoder.py --n-voxels 6000 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np


def _data(n_samples, n_voxels, dim, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_samples, n_voxels), dtype=np.float32)
    W = rng.standard_normal((200, dim), dtype=np.float32)
    Y = X[:, :200] @ W * 0.05 + rng.standard_normal((n_samples, dim), dtype=np.float32)
    groups = np.repeat(np.arange(12), int(np.ceil(n_samples / 12)))[:n_samples]
    return X, Y, groups


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def worker(method, n_samples, n_voxels, dim, n_alphas):
    X, Y, groups = _data(n_samples, n_voxels, dim)
    base = _rss_mb()
    alphas = np.logspace(-2, 5, n_alphas)
    t0 = time.perf_counter()
    if method == "ours":
        from brain2music.models import RidgeDecoder

        dec = RidgeDecoder(alphas=alphas, cv=5).fit(X, Y, groups)
        extra = {"form": dec.form_, "median_cv_r": float(np.median(dec.cv_scores_))}
    elif method == "himalaya":
        from himalaya.ridge import RidgeCV
        from himalaya.scoring import correlation_score

        from brain2music.models import grouped_splits

        Xc, Yc = X - X.mean(0), Y - Y.mean(0)
        m = RidgeCV(
            alphas=alphas, cv=grouped_splits(groups, 5), solver_params={"score_func": correlation_score}
        )
        m.fit(Xc, Yc)
        extra = {"median_cv_r": float(np.median(m.cv_scores_))}
    elif method == "sklearn":
        from sklearn.linear_model import RidgeCV

        m = RidgeCV(alphas=alphas, alpha_per_target=True).fit(X, Y)
        extra = {"note": "leave-one-out GCV (sklearn has no per-target choice with K-fold)"}
    else:
        raise SystemExit(f"unknown method {method}")
    seconds = time.perf_counter() - t0
    print(
        json.dumps(
            {"method": method, "seconds": seconds, "peak_rss_mb": _rss_mb(), "data_rss_mb": base, **extra}
        )
    )


def run(method, n_samples, n_voxels, dim, n_alphas):
    cmd = [sys.executable, __file__, "--worker", method, "--n-samples", str(n_samples), "--n-voxels",
           str(n_voxels), "--dim", str(dim), "--n-alphas", str(n_alphas)]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-samples", type=int, default=4800)
    ap.add_argument("--n-voxels", type=int, default=60000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--n-alphas", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--methods", default="ours,himalaya,sklearn")
    ap.add_argument("--fraction", type=float, default=0.1, help="voxel fraction for slow references")
    ap.add_argument("--slow", default="himalaya", help="comma-separated references measured on --fraction")
    ap.add_argument("--worker", default=None)
    a = ap.parse_args()
    if a.worker:
        worker(a.worker, a.n_samples, a.n_voxels, a.dim, a.n_alphas)
        return
    print(
        f"data: {a.n_samples} samples x {a.n_voxels} voxels -> {a.dim} dims, {a.n_alphas} penalties, 5 folds"
    )
    results = {}
    for method in a.methods.split(","):
        slow = method in a.slow.split(",")
        n_vox = max(1, int(round(a.n_voxels * a.fraction))) if slow else a.n_voxels
        reps = [run(method, a.n_samples, n_vox, a.dim, a.n_alphas) for _ in range(a.repeats)]
        sec = float(np.median([r["seconds"] for r in reps]))
        peak = float(np.median([r["peak_rss_mb"] for r in reps]))
        scale = a.n_voxels / n_vox
        results[method] = sec * scale
        tag = (
            ""
            if scale == 1
            else f" (measured on {n_vox} voxels, x{scale:.1f} extrapolated: {sec * scale:.1f} s)"
        )
        print(
            f"{method:9s} median {sec:8.2f} s over {a.repeats} run(s), peak RSS {peak:8.0f} MB "
            f"(data alone {reps[0]['data_rss_mb']:.0f} MB){tag}  {json.dumps({k: v for k, v in reps[0].items() if k not in ('seconds', 'peak_rss_mb', 'data_rss_mb', 'method')})}"
        )
    if "ours" in results:
        for m, s in results.items():
            if m != "ours":
                print(f"speed-up of ours over {m}: {s / results['ours']:.1f}x")


if __name__ == "__main__":
    main()
