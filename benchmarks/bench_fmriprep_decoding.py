"""Benchmark: what confound regression does to decoding, on fMRIPrep derivatives with simulated head motion.

    python benchmarks/bench_fmriprep_decoding.py --study STUDY --work WORK \\
        [--confounds none motion,wm_csf,high_pass ...] [--methods ridge,encsel,ensemble]

``STUDY`` is written by ``brain2music simulate STUDY --layout fmriprep ...`` (the head motion of a
cooperative adult drawn from published statistics, and its artifact; never tuned to a method). For each
confound strategy, ``reproduce`` runs twice with the same options: on the study, and on a motion-free copy
of it (each run's recorded motion artifact subtracted; same confounds tables), so the effect of regression
is read against the accuracy the motion took away. Parcels: each subject's Destrieux parcels from the
simulated FreeSurfer ``aparc.a2009s+aseg.mgz`` (``--parcels destrieux``). Embedding: ``acoustic``
(computed once from the stimuli, stored in WORK).

Prints one JSON line per (data, confounds): mean test id acc over subjects with its 95 % CI (bootstrap
over subjects) and metric space per method, the per-subject values, the ensemble's kept parcels by name,
the wall time, and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_fmriprep import motion_free_copy  # noqa: E402


def embeddings(study: Path, work: Path) -> Path:
    from brain2music.embeddings import embed_folder

    path = work / "acoustic.npz"
    if not path.is_file():
        es = embed_folder(
            study / "stimuli", "acoustic", bids=study / "bids", cache_dir=work / "cache", progress=False
        )
        es.save(path)
    return path


def run(study: Path, fmriprep: Path, conf: str, methods: list[str], emb: Path, out: Path, args) -> dict:
    from brain2music.study.reproduce import reproduce

    t0 = time.perf_counter()
    res = reproduce(
        study / "bids", fmriprep=fmriprep, confounds=conf, parcels="destrieux", embeddings={"acoustic": emb},
        methods=methods, out=out, logo=False, n_permutations=args.n_permutations, n_bootstrap=1000,
        n_top_parcels=args.n_top_parcels, cv=args.cv, verbose=False,
    )  # fmt: skip
    seconds = time.perf_counter() - t0
    summary = {
        r.method: {"id_acc_mean": r.id_acc_mean, "ci": r.id_acc_ci, "sd": r.id_acc_sd, "space": r.space}
        for r in res.summary
        if r.split == "test"
    }
    per_subject = {f"{r.subject}/{r.method}": round(r.id_acc, 4) for r in res.rows if r.split == "test"}
    parcels = {e.subject: e.parcel_names for e in res.ensemble_parcels}
    chance = [c.id_acc for c in res.chance]
    return {"summary": summary, "per_subject": per_subject, "ensemble_parcels": parcels,
            "chance": chance, "seconds": round(seconds, 1)}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--study", required=True, type=Path)
    p.add_argument("--work", required=True, type=Path)
    p.add_argument("--confounds", nargs="+", default=["none", "motion,wm_csf,high_pass"])
    p.add_argument("--methods", default="ridge,encsel,ensemble")
    p.add_argument("--data", nargs="+", default=["motion", "motion-free"], choices=["motion", "motion-free"])
    p.add_argument("--n-permutations", type=int, default=200)
    p.add_argument("--n-top-parcels", type=int, default=6)
    p.add_argument("--cv", type=int, default=5, help="run-grouped folds (at most the training runs)")
    args = p.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    emb = embeddings(args.study, args.work)
    folders = {"motion": args.study / "bids" / "derivatives" / "fmriprep"}
    if "motion-free" in args.data:
        folders["motion-free"] = motion_free_copy(args.study)
    methods = [m for m in args.methods.split(",") if m]
    for conf in args.confounds:
        for data in args.data:
            out = args.work / f"{data}_{conf.replace(',', '+').replace(':', '-')}"
            row = run(args.study, folders[data], conf, methods, emb, out, args)
            print(
                json.dumps({"data": data, "confounds": conf, **row, "load_avg": os.getloadavg()}), flush=True
            )


if __name__ == "__main__":
    main()
