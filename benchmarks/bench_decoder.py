"""Benchmark: decoder fit for one full-size subject (4,800 window samples × 60,000 voxels → 512 dims).

20 penalties, 5 run-grouped folds, penalty chosen per target. Every fit is timed against the unavoidable
arithmetic measured **in the same process, on the same X**: one float32 ``X @ X.T`` (the machine is shared,
so only such ratios are comparable between runs). Methods:

- ``ours``          brain2music ``RidgeDecoder`` (dual form picked automatically: one kernel, one Cholesky
                    inverse per penalty for all folds and targets, no refit; :mod:`brain2music.models._dual`);
- ``himalaya-dual`` himalaya ``KernelRidgeCV(fit_intercept=True)`` on the same folds: what ``RidgeDecoder``
                    ran before issue 13 (an eigendecomposition per fold and for the refit);
- ``himalaya``      himalaya ``RidgeCV`` (primal form, what you get without switching forms);
- ``sklearn``       scikit-learn ``RidgeCV(alpha_per_target=True)`` (leave-one-out GCV: a different CV).

Each repeat of each method runs in a fresh process (peak RSS = that method alone + the data). References
named in ``--slow`` are measured on a fraction of the voxels (``--fraction``) and extrapolated linearly in
the number of voxels (their cost is dominated by terms linear in n_features when n_features >> n_samples);
the output says so, and their ``X @ X.T`` is then that of the reduced X (the ratio is not extrapolated).
``--profile`` splits ``ours`` into its steps (kernel, CV solve, primal weights).

Usage::

    python benchmarks/bench_decoder.py                                     # full size, ours x3
    python benchmarks/bench_decoder.py --methods ours,himalaya-dual --n-voxels 20000 --dim 128
    python benchmarks/bench_decoder.py --backend torch --repeats 1
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


def _xxt_seconds(X) -> float:
    t0 = time.perf_counter()
    K = X @ X.T
    seconds = time.perf_counter() - t0
    del K
    return seconds


def _ours_profile(X, Y, groups, alphas, backend):
    """The steps of RidgeDecoder's dual fit, timed one by one (same calls as RidgeDecoder._fit_dual)."""
    from brain2music.models import _backend as B
    from brain2music.models import grouped_splits
    from brain2music.models._dual import DualCV, centered_linear_kernel

    b = B.get_backend(backend)
    steps = {}
    t0 = time.perf_counter()
    mean = X.mean(axis=0, dtype=np.float64).astype(np.float32)
    K = centered_linear_kernel(b, X, mean)
    steps["kernel"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    dual, best, scores = DualCV(b, K, grouped_splits(groups, 5), alphas).solve(Y)
    steps["cv_solve"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    W = X.T @ dual - np.outer(mean, dual.sum(axis=0))
    steps["primal_weights"] = time.perf_counter() - t0
    del W
    return steps, float(np.median(scores))


def worker(method, n_samples, n_voxels, dim, n_alphas, backend, profile):
    X, Y, groups = _data(n_samples, n_voxels, dim)
    base = _rss_mb()
    alphas = np.logspace(-2, 5, n_alphas)
    # Imports (and threadpoolctl's library scan) before the clock starts: they are not the fit.
    import himalaya.kernel_ridge  # noqa: F401
    import himalaya.ridge  # noqa: F401
    import sklearn.linear_model  # noqa: F401

    from brain2music.models import RidgeDecoder, _backend

    _backend.get_backend(backend)
    _backend.lapack_thread_count(4096)
    xxt_before = _xxt_seconds(X)
    extra = {}
    t0 = time.perf_counter()
    if method == "ours":
        dec = RidgeDecoder(alphas=alphas, cv=5, backend=backend).fit(X, Y, groups)
        extra = {"form": dec.form_, "median_cv_r": float(np.median(dec.cv_scores_)), "backend": backend}
    elif method == "himalaya-dual":
        from himalaya.kernel_ridge import KernelRidgeCV
        from himalaya.scoring import correlation_score

        from brain2music.models import grouped_splits

        m = KernelRidgeCV(
            alphas=alphas, kernel="linear", cv=grouped_splits(groups, 5), fit_intercept=True, warn=False,
            solver_params={"score_func": correlation_score},
        )  # fmt: skip
        if profile:
            import cProfile
            import pstats

            prof = cProfile.Profile()
            prof.runcall(m.fit, X, Y)
            stats = pstats.Stats(prof).stats
            # Where the old solver's time goes: eigendecompositions (5 folds + refit) and the rest.
            eigh = sum(v[3] for k, v in stats.items() if k[2] in ("eigh", "_add_error_message"))
            extra["steps"] = {"eigh": eigh}
        else:
            m.fit(X, Y)
        extra["median_cv_r"] = float(np.median(m.cv_scores_))
    elif method == "himalaya":
        from himalaya.ridge import RidgeCV
        from himalaya.scoring import correlation_score

        from brain2music.models import grouped_splits

        m = RidgeCV(
            alphas=alphas, cv=grouped_splits(groups, 5), fit_intercept=True,
            solver_params={"score_func": correlation_score},
        ).fit(X, Y)  # fmt: skip
        extra = {"median_cv_r": float(np.median(m.cv_scores_))}
    elif method == "sklearn":
        from sklearn.linear_model import RidgeCV

        RidgeCV(alphas=alphas, alpha_per_target=True).fit(X, Y)
        extra = {"note": "leave-one-out GCV (sklearn has no per-target choice with K-fold)"}
    else:
        raise SystemExit(f"unknown method {method}")
    seconds = time.perf_counter() - t0
    peak = _rss_mb()
    xxt_after = _xxt_seconds(X)
    if profile and method == "ours":
        extra["steps"], _ = _ours_profile(X, Y, groups, alphas, backend)
    if "steps" in extra and method != "ours":
        extra["steps"]["other"] = seconds - sum(extra["steps"].values())
    xxt = min(xxt_before, xxt_after)
    print(
        json.dumps(
            {"method": method, "seconds": seconds, "xxt_seconds": xxt, "xxt_both": [xxt_before, xxt_after],
             "peak_rss_mb": peak, "data_rss_mb": base, **extra}
        )
    )  # fmt: skip


def run(method, n_samples, n_voxels, dim, n_alphas, backend, profile):
    cmd = [sys.executable, __file__, "--worker", method, "--n-samples", str(n_samples), "--n-voxels",
           str(n_voxels), "--dim", str(dim), "--n-alphas", str(n_alphas), "--backend", backend]  # fmt: skip
    if profile:
        cmd.append("--profile")
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-samples", type=int, default=4800)
    ap.add_argument("--n-voxels", type=int, default=60000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--n-alphas", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--methods", default="ours")
    ap.add_argument("--backend", default="numpy", help="backend of 'ours' (numpy, torch, torch_cuda, cupy)")
    ap.add_argument("--fraction", type=float, default=0.1, help="voxel fraction for slow references")
    ap.add_argument("--slow", default="himalaya", help="comma-separated references measured on --fraction")
    ap.add_argument("--profile", action="store_true", help="time the steps of 'ours' (an extra fit)")
    ap.add_argument("--worker", default=None)
    a = ap.parse_args()
    if a.worker:
        worker(a.worker, a.n_samples, a.n_voxels, a.dim, a.n_alphas, a.backend, a.profile)
        return
    print(
        f"data: {a.n_samples} samples x {a.n_voxels} voxels -> {a.dim} dims, {a.n_alphas} penalties, 5 folds; "
        f"{a.repeats} repeat(s), medians"
    )
    results = {}
    for method in a.methods.split(","):
        slow = method in a.slow.split(",")
        n_vox = max(1, int(round(a.n_voxels * a.fraction))) if slow else a.n_voxels
        reps = [
            run(method, a.n_samples, n_vox, a.dim, a.n_alphas, a.backend, a.profile) for _ in range(a.repeats)
        ]
        sec = float(np.median([r["seconds"] for r in reps]))
        xxt = float(np.median([r["xxt_seconds"] for r in reps]))
        ratio = float(np.median([r["seconds"] / r["xxt_seconds"] for r in reps]))
        peak = float(np.median([r["peak_rss_mb"] for r in reps]))
        scale = a.n_voxels / n_vox
        results[method] = sec * scale
        tag = (
            ""
            if scale == 1
            else f" (measured on {n_vox} voxels, x{scale:.1f} extrapolated: {sec * scale:.1f} s)"
        )
        info = {k: v for k, v in reps[0].items() if k not in ("seconds", "xxt_seconds", "xxt_both", "peak_rss_mb",
                                                               "data_rss_mb", "method", "steps")}  # fmt: skip
        per_run = ", ".join(f"{r['seconds']:.1f}/{r['xxt_seconds']:.2f}" for r in reps)
        print(
            f"{method:13s} median {sec:8.2f} s, X @ X.T {xxt:6.2f} s, ratio {ratio:6.2f} "
            f"(per run fit/X@X.T s: {per_run}), "
            f"peak RSS {peak:6.0f} MB (data alone {reps[0]['data_rss_mb']:.0f} MB){tag}  {json.dumps(info)}"
        )
        for r in reps:
            if "steps" in r:
                steps = ", ".join(
                    f"{k} {v:.2f} s ({v / r['xxt_seconds']:.2f}x)" for k, v in r["steps"].items()
                )
                print(f"{'':13s} profile: {steps}")
    if "ours" in results:
        for m, s in results.items():
            if m != "ours":
                print(f"speed-up of ours over {m}: {s / results['ours']:.1f}x")


if __name__ == "__main__":
    main()
