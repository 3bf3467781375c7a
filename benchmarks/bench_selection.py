"""Selection scores against test scores: what each method's training-CV score chooses, nested or not.

For one study and one embedding (the study's own, or random Gaussian targets of the same shape that no
brain encodes), ``reproduce`` runs every method; this prints per method the test id acc and top-1 / top-5
(mean over subjects, hierarchical 95 % CI, n), the two nested scores (every choice refitted inside each
outer training fold): the identification accuracy among held-out training clips (``train_cv_id_acc``,
the score ``reconstruct`` chooses by) and the per-dimension r (``train_cv_r``), the r read after the
choices were made on all training clips (``train_cv_r_inner``), what the nested scoring cost, and which
method each score selects.

    python benchmarks/bench_selection.py --study W/sim0 --embeddings acoustic=W/sim0_acoustic.npz --out W/sel_sim0
    python benchmarks/bench_selection.py --study W/sim0 --embeddings acoustic=W/sim0_acoustic.npz --noise --out W/sel_noise

``--noise`` replaces the embedding by a standard normal vector per clip and window (seeded), written as a
plain ``.npz`` (``clip_ids``, ``embeddings``, ``window``): every selection score should then be near 0
and every test id acc near 0.5. Heavy (several CPU-minutes on the default study): run it alone.
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

import numpy as np


def noise_file(source: Path, out: Path, seed: int) -> Path:
    with np.load(source, allow_pickle=False) as z:
        ids, shape = z["clip_ids"], z["embeddings"].shape
        window = float(json.loads(str(z["config"])).get("window")) if "config" in z else float(z["window"])
    rng = np.random.default_rng(seed)
    emb = rng.standard_normal(shape).astype(np.float32)
    np.savez(out, clip_ids=ids, embeddings=emb, window=window)
    return out


def run(study: Path, name: str, path: Path, out: Path, methods: str, extra: list[str]) -> float:
    cmd = [sys.executable, "-m", "brain2music.cli", "reproduce", str(study / "bids"), "--embeddings",
           f"{name}={path}", "--encoders", name, "--methods", methods, "--out", str(out), "--quiet", *extra]  # fmt: skip
    print("$ " + " ".join(cmd[2:]), flush=True)
    t0, r0 = time.time(), resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, check=True)
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    print(f"wall {time.time() - t0:.1f} s, CPU {cpu:.1f} s, load {os.getloadavg()}", flush=True)
    return cpu


def table(results: Path) -> None:
    d = json.loads((results / "results.json").read_text())
    rows = [r for r in d["rows"] if r["split"] == "test"]
    summ = {(s["method"], s["split"]): s for s in d["summary"]}
    methods = list(dict.fromkeys(r["method"] for r in rows))
    print(
        f"\n{results}: space {rows[0]['space']}, subjects {len(d['subjects'])}, test clips {rows[0]['n_clips']}"
    )
    print(
        "| method | test id acc [95 % CI] | top-1 | top-5 | nested train-CV id acc | nested train-CV r "
        "| train-CV r after the choices | nesting s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    scores = {"nested_acc": {}, "nested": {}, "inner": {}}
    keys = {"nested_acc": "train_cv_id_acc", "nested": "train_cv_r", "inner": "train_cv_r_inner"}
    for m in methods:
        mine = [r for r in rows if r["method"] == m]
        ci = summ.get((m, "test"), {}).get("id_acc_ci")
        ci_txt = f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""
        for name, key in keys.items():
            scores[name][m] = np.mean([r[key] for r in mine if r.get(key) is not None] or [np.nan])
        top1 = np.mean([r.get("top1_acc", np.nan) for r in mine])
        top5 = np.mean([r.get("top5_acc", np.nan) for r in mine])
        sec = np.sum([r.get("selection_seconds", 0.0) or 0.0 for r in mine])
        print(
            f"| {m} | {np.mean([r['id_acc'] for r in mine]):.3f}{ci_txt} | {top1:.3f} | {top5:.3f} | "
            f"{scores['nested_acc'][m]:.3f} | {scores['nested'][m]:.3f} | {scores['inner'][m]:.3f} | {sec:.1f} |"
        )
    pick = lambda sc: max((m for m in sc if np.isfinite(sc[m])), key=sc.get, default=None)  # noqa: E731
    test = {m: np.mean([r["id_acc"] for r in rows if r["method"] == m]) for m in methods}
    print(
        f"\nselected by the nested id acc (the rule): {pick(scores['nested_acc'])}; by the nested r: "
        f"{pick(scores['nested'])}; by the r after the choices: {pick(scores['inner'])}; best test id acc "
        f"(for reference, never used to choose): {pick(test)}"
    )


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--study", type=Path, required=True)
    ap.add_argument("--embeddings", required=True, help="NAME=FILE.npz of the study's clips")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--noise", action="store_true", help="random Gaussian targets of the same shape")
    ap.add_argument("--methods", default="ridge,ensemble,encsel,aligned,krr-rbf")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--table-only", action="store_true")
    args, extra = ap.parse_known_args(argv)
    name, _, path = args.embeddings.partition("=")
    path = Path(path)
    if args.noise:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        name, path = "noise", noise_file(path, args.out.parent / f"{args.out.name}_noise.npz", args.seed)
    if not args.table_only:
        run(args.study, name, path, args.out, args.methods, ["--no-logo", *extra])
    table(args.out)


if __name__ == "__main__":
    main()
