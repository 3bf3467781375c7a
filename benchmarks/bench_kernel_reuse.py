"""Benchmark: what sharing one subject's kernel saves across embeddings and leave-one-genre-out refits.

The fits ``reproduce`` makes on the all-voxel responses of one subject and one window, done two ways in the
same process on the same data:

- ``plain``: every fit computes its own kernel and factorisations (``reuse_kernels=False``);
- ``shared``: one :class:`~brain2music.models.SubjectKernel` view (what ``SubjectContext.kernel`` builds)
  with factorisations kept: embedding 1, embedding 2 (same window, other targets), and ``--genres`` refits
  each without one genre's clips (blocks of the same kernel).

Prints both wall times (medians over ``--repeats``), their ratio, the load average, and the largest
difference between the two ways' predictions (they must agree to float32 precision).

Usage::

    python benchmarks/bench_kernel_reuse.py                       # the default simulated study's size
    python benchmarks/bench_kernel_reuse.py --n-voxels 20000 --repeats 1
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def _fits(X3, Y1, Y2, groups, genres, *, shared: bool, alphas):
    from brain2music.models import RidgeDecoder, SubjectKernel

    n_clips, r, V = X3.shape
    X = X3.reshape(-1, V)
    view = SubjectKernel(X3, cache_factors=True).view() if shared else None
    preds = []
    for Y in (Y1, Y2):
        dec = RidgeDecoder(alphas, cv=5).fit(X, Y, np.repeat(groups, r), kernel=view)
        preds.append(dec.predict(X[:r]))
    for g in range(genres):
        keep = genres_of(n_clips, genres) != g
        rows = np.repeat(keep, r)
        sub = view.subset(keep) if shared else None
        if sub is not None:
            sub.keep_factors = False
        dec = RidgeDecoder(alphas, cv=5).fit(X[rows], Y1[rows], np.repeat(groups[keep], r), kernel=sub)
        preds.append(dec.predict(X[:r]))
    return preds


def genres_of(n_clips: int, n_genres: int) -> np.ndarray:
    return np.arange(n_clips) % n_genres


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n-clips", type=int, default=480)
    p.add_argument("--r", type=int, default=10, help="windows per clip (default 10: 1.5-s windows of 15 s)")
    p.add_argument("--n-voxels", type=int, default=5000)
    p.add_argument("--dims", default="102,512", help="dimensions of the two embeddings")
    p.add_argument("--genres", type=int, default=2, help="leave-one-genre-out refits timed (of 10)")
    p.add_argument("--repeats", type=int, default=1)
    args = p.parse_args()
    rng = np.random.default_rng(0)
    X3 = rng.standard_normal((args.n_clips, args.r, args.n_voxels), dtype=np.float32)
    d1, d2 = (int(d) for d in args.dims.split(","))
    X = X3.reshape(-1, args.n_voxels)
    Y1 = X[:, :100] @ rng.standard_normal((100, d1), dtype=np.float32) * 0.1
    Y1 += rng.standard_normal(Y1.shape, dtype=np.float32)
    Y2 = X[:, 100:200] @ rng.standard_normal((100, d2), dtype=np.float32) * 0.1
    Y2 += rng.standard_normal(Y2.shape, dtype=np.float32)
    groups = np.repeat(np.arange(12), int(np.ceil(args.n_clips / 12)))[: args.n_clips]
    alphas = np.logspace(-2, 5, 20)
    print(
        f"data: {args.n_clips} clips x r={args.r} = {X.shape[0]} samples x {args.n_voxels} voxels; "
        f"embeddings of {d1} and {d2} dims; {args.genres} held-out-genre refits; 20 penalties, 5 folds"
    )
    # Warm-up (imports, BLAS and thread-pool start-up) so neither way pays it.
    # Fewer samples than voxels, so the warm-up fits take the dual form that a shared kernel serves.
    n_warm = max(2, min(60, 299 // args.r))
    _fits(
        X3[:n_warm, :, :300],
        Y1[: n_warm * args.r],
        Y2[: n_warm * args.r],
        np.arange(n_warm) % 12,
        2,
        shared=True,
        alphas=alphas,
    )
    times = {"plain": [], "shared": []}
    for _ in range(args.repeats):
        for way in ("plain", "shared"):
            load = os.getloadavg()[0]
            t0 = time.perf_counter()
            preds = _fits(X3, Y1, Y2, groups, args.genres, shared=way == "shared", alphas=alphas)
            times[way].append(time.perf_counter() - t0)
            print(f"  {way:6s} {times[way][-1]:7.1f} s  (load before {load:.2f})", flush=True)
            if way == "plain":
                reference = preds
        worst = max(float(np.abs(a - b).max() / (np.abs(b).max() + 1e-12)) for a, b in zip(preds, reference))
    plain, shared = (float(np.median(times[w])) for w in ("plain", "shared"))
    print(
        f"median plain {plain:.1f} s, shared {shared:.1f} s: shared = {shared / plain:.2f} x plain; "
        f"max relative prediction difference {worst:.1e}; load {os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    main()
