"""Benchmark: one full-size subject from fMRIPrep derivatives (18 runs x 410 volumes x 60,000 voxels).

    python benchmarks/bench_fmriprep.py --study /tmp/b2m-fmriprep [--repeats 3] [load] [regress] [motion] [encoding]

``--study`` is a study written by ``brain2music simulate OUT --layout fmriprep --voxels 60000`` (made here
when missing, 1 subject). Scenarios:

- ``load``: :func:`brain2music.data.load_fmriprep` of sub-001 with each confound strategy (``--confounds``),
  in a fresh child process per repeat: wall time and peak resident memory (``ru_maxrss``);
- ``regress``: the confound regression of one run (410 x 60,000 float32, the 34 regressors of
  ``motion,wm_csf,high_pass``): brain2music's ``Q (Qᵀ X)`` against :func:`nilearn.signal.clean`, time and
  largest difference;
- ``motion``: the simulated head motion per subject against the published statistics it was drawn from;
- ``encoding``: voxel-wise encoding-model test r (ridge from the simulator's true stimulus features, 1.5-s
  windows, FIR delays 2-4) per confound strategy, on the study and on a motion-free copy of it (the
  truth's motion artifact subtracted from every preprocessed run, same confounds tables), mean over the
  tuned voxels of every subject.

Prints one JSON line per measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_CONFOUNDS = ["none", "motion,wm_csf,high_pass", "motion,wm_csf,high_pass,scrub:0.5"]


def ensure_study(study: Path, voxels: int) -> None:
    if (study / "simulation.json").is_file():
        return
    from brain2music.simulate import simulate_study

    simulate_study(study, n_subjects=1, n_voxels=voxels, layout="fmriprep", progress=False)


def child(study: str, confounds: str) -> None:
    from brain2music.data import load_fmriprep

    t0 = time.perf_counter()
    sub = load_fmriprep(Path(study) / "bids" / "derivatives" / "fmriprep", "sub-001", confounds=confounds)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(
        json.dumps(
            {"seconds": seconds, "peak_rss_gb": peak, "train": sub.train.shape, "test": sub.test.shape}
        )
    )


def bench_load(study: Path, strategies: list[str], repeats: int) -> None:
    for conf in strategies:
        runs = []
        for _ in range(repeats):
            out = subprocess.run(
                [sys.executable, __file__, "--child", str(study), conf],
                capture_output=True,
                text=True,
                check=True,
            )
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        secs = [r["seconds"] for r in runs]
        print(json.dumps({
            "scenario": "load", "confounds": conf, "seconds_median": statistics.median(secs),
            "seconds": [round(s, 1) for s in secs], "peak_rss_gb": max(r["peak_rss_gb"] for r in runs),
            "train": runs[0]["train"], "test": runs[0]["test"], "load_avg": os.getloadavg(),
        }))  # fmt: skip


def bench_regress(study: Path, repeats: int) -> None:
    import numpy as np
    from nilearn.signal import clean

    from brain2music.data import plan_subject
    from brain2music.data.confounds import load_run_confounds, regress_confounds
    from brain2music.data.fmriprep import subject_mask
    from brain2music.data.preprocess import read_masked_run

    plan = plan_subject(
        study / "bids" / "derivatives" / "fmriprep", "sub-001", confounds="motion,wm_csf,high_pass"
    )
    mask, _ = subject_mask(plan, None)
    _, fp = plan.runs[0]
    conf, _, cols = load_run_confounds(fp.bold, plan.strategy, n_volumes=plan.n_volumes[0], tsv=fp.confounds)
    data = read_masked_run(fp.bold, mask)
    ours, theirs = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        a = regress_confounds(data, conf)
        ours.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        b = clean(data, detrend=False, standardize=None, confounds=conf, filter=False, t_r=plan.tr)
        theirs.append(time.perf_counter() - t0)
    print(json.dumps({
        "scenario": "regress", "shape": list(data.shape), "n_regressors": len(cols),
        "brain2music_s": statistics.median(ours), "nilearn_clean_s": statistics.median(theirs),
        "max_abs_diff": float(np.abs(a - b).max()), "data_sd": float(data.std()), "load_avg": os.getloadavg(),
    }))  # fmt: skip


def bench_motion(study: Path) -> None:
    truth = json.loads((study / "truth" / "truth.json").read_text())
    print(json.dumps({"scenario": "motion", "per_subject": truth.get("motion")}))


def motion_free_copy(study: Path) -> Path:
    """``<study>.motion-free``: the fMRIPrep folder with each run's recorded motion artifact subtracted."""
    import shutil

    import nibabel as nib
    import numpy as np

    from brain2music.simulate import load_truth

    out = study.with_name(study.name + ".motion-free")
    if (out / ".complete").exists():
        return out
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(study / "bids" / "derivatives" / "fmriprep", out)
    truth = load_truth(study)
    for path in sorted(out.rglob("*_desc-preproc_bold.nii.gz")):
        sub, split = path.name[:7], "train" if "Training" in path.name else "test"
        run = int(path.name.split("_run-")[1][:2])
        img = nib.load(str(path))
        data = np.ascontiguousarray(np.asarray(img.dataobj, dtype=np.float32))
        flat = data.reshape(-1, data.shape[3])
        flat[truth.subject(sub)["voxel_indices"]] -= truth.motion_artifact(sub, split, run).T
        nib.save(nib.Nifti1Image(np.round(data).astype(np.int16), img.affine, img.header), str(path))
    (out / ".complete").touch()
    return out


def _encoding_r(folder: Path, bids: Path, subject: str, conf: str, emb, ids):

    from brain2music.data import load_fmriprep
    from brain2music.models import EncodingModel

    sub = load_fmriprep(folder, subject, bids_root=bids, confounds=conf)
    tr_i = [ids.index(c) for c in sub.train_clips.clip_id]
    te_i = [ids.index(c) for c in sub.test_clips.clip_id]
    cv = min(5, len(set(sub.train_runs)))
    model = EncodingModel(1.5, base_delay=sub.delay, cv=cv).fit(emb[tr_i], sub.train, sub.train_runs)
    a = model.predict(emb[te_i], sub.train.shape[1]).reshape(-1, sub.n_voxels)
    b = sub.test_mean.reshape(-1, sub.n_voxels)
    a = (a - a.mean(0)) / a.std(0)
    b = (b - b.mean(0)) / b.std(0)
    return (a * b).mean(0)


def bench_encoding(study: Path, strategies: list[str]) -> None:
    import numpy as np

    from brain2music.simulate import load_truth

    truth = load_truth(study)
    free = motion_free_copy(study)
    feats = truth.features["clip_features"]
    ids = list(truth.features["clip_ids"])
    emb = feats.reshape(feats.shape[0], 10, 3, feats.shape[2]).mean(axis=2)  # 0.5-s bins -> 1.5-s windows
    subjects = sorted(truth.info["explainable_variance"])
    for conf in strategies:
        moved, clean = [], []
        for s in subjects:
            tuned = truth.subject(s)["tuned"]
            moved.append(
                _encoding_r(study / "bids" / "derivatives" / "fmriprep", study / "bids", s, conf, emb, ids)[
                    tuned
                ]
            )
            clean.append(_encoding_r(free, study / "bids", s, conf, emb, ids)[tuned])
        moved, clean = np.concatenate(moved), np.concatenate(clean)
        print(json.dumps({
            "scenario": "encoding", "confounds": conf, "n_tuned_voxels": int(moved.size),
            "test_r_motion": float(moved.mean()), "test_r_motion_free": float(clean.mean()),
            "mean_abs_gap": float(np.abs(moved - clean).mean()), "load_avg": os.getloadavg(),
        }))  # fmt: skip


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3])
        return
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("scenarios", nargs="*", default=["load", "regress", "motion"])
    p.add_argument("--study", required=True, type=Path)
    p.add_argument("--voxels", type=int, default=60000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--confounds", nargs="+", default=DEFAULT_CONFOUNDS)
    args = p.parse_args()
    ensure_study(args.study, args.voxels)
    if "load" in args.scenarios:
        bench_load(args.study, args.confounds, args.repeats)
    if "regress" in args.scenarios:
        bench_regress(args.study, args.repeats)
    if "motion" in args.scenarios:
        bench_motion(args.study)
    if "encoding" in args.scenarios:
        bench_encoding(args.study, args.confounds)


if __name__ == "__main__":
    main()
