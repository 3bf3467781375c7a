"""What best-of-N buys: identification accuracy of generated music against N, on the simulator.

Ciferri et al. generated N candidates per test clip with MusicLDM and kept the best (0.741 -> 0.823 id
acc). This script measures the same with the offline generator (no weights) on a simulated study:

1. simulate a small study, run ``reproduce`` (acoustic embeddings, the ridge decoder; it also saves each
   subject's encoding model on its best training-CV voxels);
2. for every test clip of every subject, generate ``--n-max`` candidates from the *predicted* embedding
   with one call ``generate(predicted, n_samples=n_max, random_state=seed)`` — candidate ``j`` is exactly
   what ``reconstruct --best-of N`` (N > j) generates as its ``j``-th candidate, so best-of-N is the best
   of the first N here, for every N at once;
3. score the candidates by the two criteria of ``reconstruct --score`` (neither sees the true embedding):
   ``embedding`` (cosine to the predicted embedding, metric space of the predictions) and ``encoding``
   (the subject's encoding model's predicted response vs the measured one); and, as a ceiling only, by
   cosine to the *true* embedding (``truth``: not a method, it reads the answer);
4. for N in 1, 2, 4, ...: id acc (paper Eq. 2-3, in the predictions' metric space) of the kept candidates
   against the originals, with a 95 % bootstrap CI over clips; mean over subjects.

Usage (heavy: run it alone on the machine; about 1.5 s per candidate on one loaded core with ``--preset tiny``)::

    python benchmarks/bench_best_of.py --out /tmp/best_of --n-max 16

Writes ``OUT/best_of.json`` (every figure, the settings, the load average) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

PRESETS = {
    # Offline-generator effort per candidate (renders = 1 + n_neighbors + n_rounds * n_candidates).
    "tiny": dict(n_bank=60, n_candidates=1, n_rounds=1, n_neighbors=1),
    "demo": dict(n_bank=60, n_candidates=3, n_rounds=1, n_neighbors=2),
}


def _id_acc(x, target, space, seed):
    from brain2music.evaluate import identification_scores, similarity_matrix
    from brain2music.evaluate.stats import bootstrap_ci

    s = identification_scores(similarity_matrix(space.transform(x), space.transform(target)))
    ci = bootstrap_ci(s, n_bootstrap=1000, random_state=seed)
    return float(s.mean()), [float(ci[0]), float(ci[1])]


def _prepare(out: Path, args) -> Path:
    """Simulated study + reproduce (skipped when ``out/results`` exists)."""
    from brain2music.simulate import simulate_study
    from brain2music.study.reproduce import reproduce

    res = out / "results"
    if (res / "results.json").is_file():
        return res
    study = simulate_study(
        out / "study", n_subjects=args.subjects, n_voxels=args.voxels, seed=args.seed,
        clips_per_genre=24, test_clips_per_genre=args.test_per_genre, train_runs=6, test_runs=3,
        overwrite=True, progress=False,
    )  # fmt: skip
    reproduce(
        study / "bids", stimuli=study / "stimuli", encoders=["acoustic"], out=res, methods=["ridge"],
        logo=False, n_permutations=100, n_bootstrap=200, random_state=args.seed, verbose=False,
    )  # fmt: skip
    return res


def _clip_scores(x, target, space):
    from brain2music.evaluate import identification_scores, similarity_matrix

    return identification_scores(similarity_matrix(space.transform(x), space.transform(target)))


def _candidates(gen, enc, P, n_max, seeds):
    """``(n_clips, n_max, r, dim)`` embeddings of ``n_max`` candidates per predicted embedding."""
    from brain2music.reconstruct.clip_embedding import clip_embedding, prepare_clip

    out = []
    for p, seed in zip(P, seeds, strict=True):
        audio, sr = gen.generate(p, n_samples=n_max, duration=15.0, random_state=int(seed))
        out.append(np.stack([clip_embedding(enc, prepare_clip(a, sr, duration=15.0), sr) for a in audio]))
    return np.stack(out)


def _subject(folder, sub, gen, enc, args, rng):
    from brain2music.evaluate.stats import paired_test
    from brain2music.reconstruct.selection import EmbeddingScore, EncodingScore

    pred = folder.read_predictions("acoustic", "ridge", sub)
    n = len(pred.clip_ids) if args.n_clips is None else min(args.n_clips, len(pred.clip_ids))
    ids, P, T = pred.clip_ids[:n], pred.predicted[:n], pred.target[:n]
    t0 = time.perf_counter()
    C = _candidates(gen, enc, P, args.n_max, rng.integers(2**31 - 1, size=n))
    seconds = time.perf_counter() - t0
    emb_score = EmbeddingScore(pred.space)
    encoding = EncodingScore(folder.read_encoding_model("acoustic", sub))
    truth = EmbeddingScore(pred.space)
    scores = {
        "embedding": np.stack([emb_score(C[i], P[i]) for i in range(n)]),
        "encoding": np.stack([encoding.for_clip(ids[i])(C[i], None) for i in range(n)]),
        "truth (ceiling, reads the answer)": np.stack([truth(C[i], T[i]) for i in range(n)]),
    }
    ns = [k for k in (1, 2, 4, 8, 16, 32, 64) if k <= args.n_max]
    rows, first = {}, _clip_scores(C[:, 0], T, pred.space)
    for name, s in scores.items():
        for k in ns:
            kept = np.argmax(s[:, :k], axis=1)
            acc, ci = _id_acc(C[np.arange(n), kept], T, pred.space, args.seed)
            rows[f"{name}|{k}"] = {"id_acc": acc, "ci": ci, "kept_mean_index": float(kept.mean())}
            if k > 1:  # paired over clips against best-of-1 (the same clips, candidate 0)
                t = paired_test(
                    _clip_scores(C[np.arange(n), kept], T, pred.space), first, random_state=args.seed
                )
                rows[f"{name}|{k}"] |= {"diff_vs_1": t.diff, "diff_ci": [float(t.ci[0]), float(t.ci[1])],
                                        "p_vs_1": t.p_value}  # fmt: skip
    np.savez_compressed(Path(args.out) / f"candidates_{sub}.npz", embeddings=C, clip_ids=np.asarray(ids),
                        **{k.split(" ")[0]: v for k, v in scores.items()})  # fmt: skip
    decoded, decoded_ci = _id_acc(P, T, pred.space, args.seed)
    return {
        "subject": sub, "n_clips": int(n), "space": pred.space.name, "decoded_id_acc": decoded,
        "decoded_id_acc_ci": decoded_ci, "rows": rows, "seconds_generating": seconds,
        "seconds_per_candidate": seconds / (n * args.n_max), "ns": ns,
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--subjects", type=int, default=1)
    ap.add_argument("--voxels", type=int, default=2000)
    ap.add_argument("--test-per-genre", type=int, default=3, help="test clips per genre (default 3: 30)")
    ap.add_argument("--n-clips", type=int, default=None, help="first N test clips per subject (default all)")
    ap.add_argument("--n-max", type=int, default=16)
    ap.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--only", default=None, metavar="SUBJECT",
        help="only this subject (to split the run into short lock holds); the table covers every subject "
        "done so far in OUT",
    )  # fmt: skip
    args = ap.parse_args()

    from threadpoolctl import threadpool_limits

    from brain2music.embeddings import get_encoder
    from brain2music.reconstruct.generators import get_generator
    from brain2music.results import ResultsFolder

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    with threadpool_limits(1):
        res = _prepare(out, args)
        t_prepare = time.perf_counter() - t0
        folder = ResultsFolder(res)
        enc = get_encoder("acoustic")
        gen = get_generator("offline", encoder=enc, cache=out / "offline_bank.npz", random_state=args.seed,
                            progress=False, **PRESETS[args.preset])  # fmt: skip
        gen.fit()
        subjects = folder.prediction_subjects("acoustic", "ridge")
        for k, s in enumerate(subjects):
            if args.only is None or s == args.only:
                rng = np.random.default_rng([args.seed, k])  # the same seeds whether split or not
                done = _subject(folder, s, gen, enc, args, rng) | {"load_after": os.getloadavg()}
                (out / "subjects").mkdir(exist_ok=True)
                (out / "subjects" / f"{s}.json").write_text(json.dumps(done, indent=1))
    per_subject = [json.loads(p.read_text()) for p in sorted((out / "subjects").glob("*.json"))]
    report = {
        "command": "python benchmarks/bench_best_of.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v is not None),
        "preset": PRESETS[args.preset], "load_before": load_before, "load_after": os.getloadavg(),
        "seconds_total": time.perf_counter() - t0, "seconds_prepare": t_prepare, "per_subject": per_subject,
    }  # fmt: skip
    (out / "best_of.json").write_text(json.dumps(report, indent=1))
    _print(report)


def _print(report: dict) -> None:
    subs = report["per_subject"]
    ns = subs[0]["ns"]
    names = dict.fromkeys(k.split("|")[0] for k in subs[0]["rows"])
    print(f"id acc of generated music vs N ({subs[0]['space']} space, {len(subs)} subject(s), "
          f"{subs[0]['n_clips']} test clips each; 95% bootstrap CI over clips for one subject)")  # fmt: skip
    print(f"decoded (predicted embeddings): {np.mean([s['decoded_id_acc'] for s in subs]):.3f}")
    print(f"{'score':36s}" + "".join(f"{'N=' + str(k):>22s}" for k in ns))
    for name in names:
        cells = []
        for k in ns:
            accs = [s["rows"][f"{name}|{k}"]["id_acc"] for s in subs]
            ci = subs[0]["rows"][f"{name}|{k}"]["ci"] if len(subs) == 1 else None
            cells.append(f"{np.mean(accs):.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""))
        print(f"{name:36s}" + "".join(f"{c:>22s}" for c in cells))
    per = np.mean([s["seconds_per_candidate"] for s in subs])
    for name in names:
        for k in ns[1:]:
            r = [s["rows"][f"{name}|{k}"] for s in subs if "diff_vs_1" in s["rows"][f"{name}|{k}"]]
            if r:
                print(f"  {name} N={k} - N=1 (paired over clips): " + "; ".join(
                    f"{x['diff_vs_1']:+.3f} [{x['diff_ci'][0]:+.3f}, {x['diff_ci'][1]:+.3f}] p={x['p_vs_1']:.3f}"
                    for x in r))  # fmt: skip
    print(f"{per:.2f} s per candidate (render + embed); total {report['seconds_total']:.0f} s; "
          f"load {report['load_before']} -> {report['load_after']}")  # fmt: skip


if __name__ == "__main__":
    main()
