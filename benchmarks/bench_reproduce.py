"""Benchmark: ``reproduce`` on a simulated study, wall time per execution setting, same figures checked.

Each setting runs in a fresh process (peak RSS is that run's) on the same study and embedding cache:

- ``serial``    subjects one after the other in the process (the default);
- ``noreuse``   serial, every dual ridge computing its own kernel (``reuse_kernels=False``);
- ``local1`` / ``local2``  one Dask task per subject on a ``LocalCluster`` of 1 / 2 worker processes;
- ``threads``   one thread per subject.

Prints each run's wall time, the load average before and after, peak RSS, and the largest difference of any
test id acc / Pearson r from the first setting's (the figures must not depend on the setting).
``--profile`` adds the cumulative time of the study's stages (cProfile) to the first setting.

Usage::

    brain2music simulate /tmp/sim                     # the default study: 2 subjects x 5,000 voxels
    python benchmarks/bench_reproduce.py /tmp/sim --settings serial --profile
    python benchmarks/bench_reproduce.py /tmp/sim --settings local1,local2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

SETTINGS = {
    "serial": {},
    "noreuse": {"reuse_kernels": False},
    "local1": {"scheduler": "local", "workers": 1},
    "local2": {"scheduler": "local", "workers": 2},
    "threads": {"scheduler": "threads", "workers": 2},
}

#: Stages reported by --profile: (label, function qualname suffix as cProfile names it).
STAGES = [
    ("load subject", "context.py", "load_subject_for_study"),
    ("embeddings", "reproduce.py", "_load_embeddings"),
    ("encoding maps", "reproduce.py", "_encoding_maps"),
    ("  encoding model fit", "encoding.py", "fit"),
    ("  permutation test", "encoding.py", "permutation_test"),
    ("method fits (all)", "scoring.py", "fit_and_score"),
    ("  ridge (all voxels)", "ridge.py", "fit"),
    ("  ensemble", "ensemble.py", "fit"),
    ("  encsel", "encsel.py", "fit"),
    ("  krr-rbf", "krr_rbf.py", "fit"),
    ("reference scores (chance, split-half)", "scoring.py", "reference_scores"),
    ("leave-one-genre-out", "scoring.py", "leave_one_genre_out"),
    ("aligned (group fit)", "reproduce.py", "_fit_group"),
    ("paired tests", "reproduce.py", "_paired_tests"),
    ("summary", "reproduce.py", "_summarise"),
    ("dual CV solves", "_dual.py", "solve"),
    ("primal CV solves", "_primal.py", "_ridge_cv_primal"),
]


def _child(args) -> None:
    """Run one setting; print a JSON line with the wall time, peak RSS and the figures."""
    from brain2music.study.reproduce import reproduce

    kw = SETTINGS[args.setting] | ({"backend": args.backend} if args.backend else {})
    prof = None
    if args.profile:
        import cProfile

        prof = cProfile.Profile()
        prof.enable()
    t0 = time.perf_counter()
    res = reproduce(
        os.path.join(args.sim, "bids"), stimuli=os.path.join(args.sim, "stimuli"), encoders=args.encoders.split(","),
        out=args.out, cache_dir=args.cache_dir, verbose=False, **kw,
    )  # fmt: skip
    wall = time.perf_counter() - t0
    stages = {}
    if prof is not None:
        import pstats

        prof.disable()
        stats = pstats.Stats(prof).stats
        for label, file, func in STAGES:
            stages[label] = sum(
                v[3] for (f, _, name), v in stats.items() if f.endswith(file) and name == func
            )
    figures = {
        f"{r.subject}/{r.encoder}/{r.method}": [r.id_acc, r.pearson_r] for r in res.rows if r.split == "test"
    }
    print(json.dumps({"wall": wall, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "children_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
                      "figures": figures, "stages": stages, "config": {k: getattr(res.config, k) for k in
                      ("backend", "scheduler", "workers", "reuse_kernels")}}))  # fmt: skip


def _compare(figures: dict, reference: str) -> None:
    """Print the largest differences of test id acc and r against another results folder's test rows."""
    from brain2music.results import ResultsFolder

    ref = {f"{r.subject}/{r.encoder}/{r.method}": [r.id_acc, r.pearson_r] for r in ResultsFolder(reference).read().rows
           if r.split == "test"}  # fmt: skip
    keys = sorted(ref.keys() & figures.keys())
    for key in keys:
        (a, ra), (b, rb) = figures[key], ref[key]
        print(
            f"  vs reference {key:32s} id acc {a:.4f} / {b:.4f} ({a - b:+.4f}), r {ra:.4f} / {rb:.4f} ({ra - rb:+.4f})"
        )
    worst = max(abs(x - y) for k in keys for x, y in zip(figures[k], ref[k]))
    print(f"max |diff| vs {reference} over {len(keys)} test rows: {worst:.4f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sim", help="simulated study folder (from `brain2music simulate`)")
    p.add_argument("--settings", default="serial", help=f"comma-separated among {', '.join(SETTINGS)}")
    p.add_argument("--encoders", default="acoustic")
    p.add_argument("--cache-dir", default=None, help="embedding cache (warm it with a first run)")
    p.add_argument("--backend", default=None)
    p.add_argument("--profile", action="store_true", help="cProfile the first setting's stages")
    p.add_argument(
        "--reference",
        default=None,
        help="a results folder of the same study (e.g. from main): compare every test row",
    )
    p.add_argument("--setting", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.setting:
        _child(args)
        return
    first = None
    for k, name in enumerate(args.settings.split(",")):
        load_before = os.getloadavg()
        with tempfile.TemporaryDirectory() as out:
            cmd = [
                sys.executable,
                __file__,
                args.sim,
                "--setting",
                name,
                "--out",
                out,
                "--encoders",
                args.encoders,
            ]
            cmd += ["--cache-dir", args.cache_dir] if args.cache_dir else []
            cmd += ["--backend", args.backend] if args.backend else []
            cmd += ["--profile"] if args.profile and k == 0 else []
            done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"{name} failed:\n{done.stderr[-3000:]}")
        run = json.loads(done.stdout.strip().splitlines()[-1])
        load_after = os.getloadavg()
        diff = ""
        if first is None:
            first = run
        else:
            keys = first["figures"].keys() & run["figures"].keys()
            worst = max(
                abs(a - b) for key in keys for a, b in zip(first["figures"][key], run["figures"][key])
            )
            diff = f", max |diff| of test id acc / r vs {args.settings.split(',')[0]}: {worst:.2e}"
        rss = max(run["rss_mb"], run["children_rss_mb"])
        print(
            f"{name:8s} wall {run['wall']:7.1f} s, peak RSS {rss:6.0f} MB, load {load_before[0]:.2f} -> "
            f"{load_after[0]:.2f}{diff}  {json.dumps(run['config'])}",
            flush=True,
        )
        for label, seconds in run["stages"].items():
            print(f"           {label:40s} {seconds:7.1f} s")
    if args.reference:
        _compare(first["figures"], args.reference)
    by_method = {}
    for key, (acc, _) in first["figures"].items():
        by_method.setdefault(key.split("/", 1)[1], []).append(acc)
    print(
        "test id acc (mean over subjects): "
        + ", ".join(f"{m} {sum(v) / len(v):.3f}" for m, v in by_method.items())
    )


if __name__ == "__main__":
    main()
