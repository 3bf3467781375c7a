"""Benchmark: load and preprocess one full-size subject (18 runs × 410 volumes × 60,000 voxels).

Writes a synthetic subject with the real ds003720 design (events from the package) on the real image grid
(96 × 96 × 68, int16, uncompressed .nii like OpenNeuro's files) and a brain mask of ``--voxels`` voxels,
then times :func:`brain2music.data.load_subject` in a fresh child process per repeat and reports its peak
resident memory (``ru_maxrss``).

    python benchmarks/bench_load.py --workdir /tmp/b2m-bench-load [--voxels 60000] [--repeats 3]

The data (~9 GB) stays in ``--workdir`` for reuse; delete it afterwards.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import time
from importlib.resources import as_file, files
from pathlib import Path

import numpy as np

GRID = (96, 96, 68)


def write_subject(root: Path, n_voxels: int, seed: int = 0) -> None:
    import nibabel as nib

    done = root / ".complete"
    if done.exists():
        return
    shutil.rmtree(root, ignore_errors=True)
    func = root / "sub-001" / "func"
    func.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    # A central ellipsoid holding n_voxels voxels stands in for cortex.
    idx = np.indices(GRID).reshape(3, -1).T
    centre = (np.array(GRID) - 1) / 2
    dist = (((idx - centre) / (np.array(GRID) / 2)) ** 2).sum(1)
    flat = np.argsort(dist, kind="stable")[:n_voxels]
    mask = np.zeros(int(np.prod(GRID)), np.uint8)
    mask[flat] = 1
    (root / "derivatives").mkdir()
    nib.save(nib.Nifti1Image(mask.reshape(GRID), affine), str(root / "derivatives" / "brain_mask.nii.gz"))
    res = files("brain2music") / "resources" / "ds003720"
    sidecar = (res / "bold_template.json").read_text()
    for entry in sorted(res.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith("_events.tsv"):
            continue
        with as_file(entry) as p:
            shutil.copy(p, func / entry.name)
        (func / entry.name.replace("_events.tsv", "_bold.json")).write_text(sidecar)
        data = np.empty(GRID + (410,), dtype=np.int16)
        for t in range(410):
            data[..., t] = rng.integers(900, 1100, size=GRID, dtype=np.int16)
        nib.save(nib.Nifti1Image(data, affine), str(func / entry.name.replace("_events.tsv", "_bold.nii")))
        del data
    (root / "dataset_description.json").write_text('{"Name": "bench", "BIDSVersion": "1.4.0"}')
    done.touch()


def child(root: str) -> None:
    from brain2music.data import load_subject

    t0 = time.perf_counter()
    sub = load_subject(root, "sub-001")
    seconds = time.perf_counter() - t0
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(
        json.dumps(
            {"seconds": seconds, "peak_rss_gb": peak_gb, "train": sub.train.shape, "test": sub.test.shape}
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", default="/tmp/b2m-bench-load")
    ap.add_argument("--voxels", type=int, default=60000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child)
        return
    root = Path(args.workdir) / f"bids-{args.voxels}"
    t0 = time.perf_counter()
    write_subject(root, args.voxels)
    print(f"data ready in {time.perf_counter() - t0:.1f} s: {root}")
    results = []
    for _ in range(args.repeats):
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(root)], check=True, capture_output=True, text=True
        )
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(results[-1])
    secs = statistics.median(r["seconds"] for r in results)
    peak = statistics.median(r["peak_rss_gb"] for r in results)
    print(f"load_subject, 18 runs × 410 × {args.voxels} voxels: median {secs:.1f} s, peak RSS {peak:.2f} GB")


if __name__ == "__main__":
    main()
