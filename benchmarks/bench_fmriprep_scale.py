"""Benchmark: full-size subjects from fMRIPrep derivatives through ``reproduce``: wall time and peak memory.

    python benchmarks/bench_fmriprep_scale.py --study STUDY --work WORK --subjects 1 [--methods ...]
        [--timeout 560] [--mask FILE] [--n-permutations 100]

``STUDY``: ``brain2music simulate STUDY --layout fmriprep --subjects 5 --voxels 60000`` (the full ds003720
design: 12 + 6 runs of 410 volumes; 60,000 brain-mask voxels per subject). ``reproduce`` (one encoder,
``acoustic``, computed once into WORK; ``--confounds motion,wm_csf,high_pass``, ``--parcels destrieux``) runs
in a child process under a wall-clock limit; the parent reports the child's wall time and peak resident
memory (``ru_maxrss`` of the waited-for child, also when the limit stopped it) and, when it finished, the
per-method test id acc and fit times. ``--mask`` restricts the voxels (a NIfTI on the BOLD grid) to make a
run fit a time budget; the note says so.

Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path


def embeddings(study: Path, work: Path) -> Path:
    from brain2music.embeddings import embed_folder

    path = work / "acoustic.npz"
    if not path.is_file():
        es = embed_folder(
            study / "stimuli", "acoustic", bids=study / "bids", cache_dir=work / "cache", progress=False
        )
        es.save(path)
    return path


def child(argv: list[str]) -> None:
    from threadpoolctl import threadpool_limits

    from brain2music.study.reproduce import reproduce

    opts = json.loads(argv[0])
    with threadpool_limits(limits=opts.pop("threads")):
        res = reproduce(**opts, verbose=False)
    rows = [r for r in res.rows if r.split == "test"]
    print(json.dumps({
        "id_acc": {f"{r.subject}/{r.method}": round(r.id_acc, 4) for r in rows},
        "fit_seconds": {f"{r.subject}/{r.method}": r.fit_seconds for r in rows},
        "n_voxels": {e.subject: e.n_voxels for e in res.encoding},
        "elapsed_s": res.elapsed_s,
    }))  # fmt: skip


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2:])
        return
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--study", required=True, type=Path)
    p.add_argument("--work", required=True, type=Path)
    p.add_argument("--subjects", type=int, default=1)
    p.add_argument("--methods", default="ridge,ensemble,encsel,aligned,krr-rbf")
    p.add_argument("--confounds", default="motion,wm_csf,high_pass")
    p.add_argument("--mask", default=None)
    p.add_argument("--n-permutations", type=int, default=100)
    p.add_argument("--logo", action="store_true")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--timeout", type=float, default=560.0)
    args = p.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    emb = embeddings(args.study, args.work)
    out = args.work / f"results_{args.subjects}sub{'_mask' if args.mask else ''}"
    opts = {
        "bids_root": str(args.study / "bids"), "fmriprep": str(args.study / "bids" / "derivatives" / "fmriprep"),
        "confounds": args.confounds, "parcels": "destrieux", "mask": args.mask,
        "embeddings": {"acoustic": str(emb)}, "out": str(out),
        "subjects": [f"sub-{k + 1:03d}" for k in range(args.subjects)],
        "methods": args.methods.split(","), "logo": args.logo, "n_permutations": args.n_permutations,
        "threads": args.threads,
    }  # fmt: skip
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", json.dumps(opts)], stdout=subprocess.PIPE, text=True
    )
    try:
        stdout, _ = proc.communicate(timeout=args.timeout)
        finished = proc.returncode == 0
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, _ = proc.communicate()
        finished = False
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2
    result = json.loads(stdout.strip().splitlines()[-1]) if finished and stdout.strip() else {}
    print(json.dumps({
        "subjects": args.subjects, "methods": opts["methods"], "confounds": args.confounds, "mask": args.mask,
        "finished": finished, "returncode": proc.returncode, "wall_s": round(wall, 1),
        "peak_rss_gb": round(peak, 2), "load_avg_start": load0, "load_avg_end": os.getloadavg(), **result,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
