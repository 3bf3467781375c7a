"""Benchmark: live decoding latency, and live vs batch identification accuracy.

``latency``: a writer process exports one 3-D volume file per interval into a folder (96 x 96 x 68 grid,
int16 NIfTI or a Siemens-style uint16 DICOM mosaic, written under a temporary name and renamed into
place, as real-time exports do); the live pipeline watches the folder and decodes each volume with a
ridge decoder on 60,000 voxels (512-d embeddings, CLAP's size) and searches a 100,000-track library.
Latency = result out (the record yielded by the pipeline) - the writer's clock right after the rename,
both ``time.time()`` on the same machine. The first 161 volumes fill the drift window (cheaper updates);
figures are given for all volumes and for the steady state after them.

``accuracy``: on the demo's outputs (``brain2music demo --out DIR``), every test run of every subject is
replayed through the live pipeline (speed 0) for every decoder method; the live predictions at the
volumes the batch pipeline averages for each clip window are turned into clip vectors exactly as the
batch evaluation does (mean over windows, mean over the test repeats, z-scored with the training
targets' statistics) and identified among the test clips. Offline variants of the preprocessing
(batch / causal drift removal x batch / causal z-score, with and without the training prior) show where
the gap comes from.

Usage::

    python benchmarks/bench_live.py latency [--voxels 60000 --tracks 100000 --volumes 300 --format nifti]
    python benchmarks/bench_live.py accuracy --demo brain2music-demo
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
GRID = (96, 96, 68)


# ------------------------------------------------------------------------------------------- latency
def _mask(n_voxels: int) -> np.ndarray:
    """The ``n_voxels`` grid voxels closest to the centre of an ellipsoid (a brain-shaped blob)."""
    idx = np.indices(GRID).reshape(3, -1).T.astype(np.float64)
    centre = (np.asarray(GRID) - 1) / 2
    d = (((idx - centre) / (np.asarray(GRID) / 2)) ** 2).sum(axis=1)
    return np.sort(np.argsort(d, kind="stable")[:n_voxels])


def _writer(folder: str, n: int, interval: float, fmt: str, queue) -> None:
    """Write ``n`` volumes, one per ``interval`` s (temp name + rename); report each completion time."""
    import nibabel as nib

    sys.path.insert(0, str(HERE.parent / "tests"))
    from live_fakes import write_mosaic  # the tests' Siemens-style mosaic writer (pydicom)

    rng = np.random.default_rng(0)
    baseline = rng.uniform(700, 1300, size=GRID).astype(np.float32)
    affine = np.diag([2.5, 2.5, 2.5, 1.0])
    queue.put("ready")  # imports done: the consumer starts watching now, the first volume comes 1 s later
    time.sleep(1.0)
    t0 = time.time()
    for i in range(n):
        vol = baseline * (1 + 0.01 * rng.standard_normal(GRID).astype(np.float32))
        if fmt == "nifti":
            final = Path(folder) / f"vol_{i + 1:05d}.nii"
            tmp = Path(folder) / f".vol_{i + 1:05d}.nii.tmp"
            img = nib.Nifti1Image(np.rint(vol).astype(np.int16), affine)
            tmp.write_bytes(img.to_bytes())
        else:
            final = Path(folder) / f"001_000007_{i + 1:06d}.dcm"
            tmp = Path(folder) / f".{final.name}.tmp"
            write_mosaic(tmp, np.transpose(vol[::-1, ::-1, :], (1, 0, 2)), number=i + 1, spacing=(2.5, 2.5, 2.5),
                         origin=(-(GRID[0] - 1) * 2.5, -(GRID[1] - 1) * 2.5, 0.0))  # fmt: skip
        os.replace(tmp, final)
        queue.put((i, time.time()))
        due = t0 + (i + 1) * interval
        time.sleep(max(0.0, due - time.time()))
    queue.put(None)


def _bench_model(n_voxels: int, dim: int, mask: np.ndarray):
    from brain2music.live import LiveModel, VoxelGrid
    from brain2music.models import RidgeDecoder

    rng = np.random.default_rng(1)
    X = rng.standard_normal((480, n_voxels), dtype=np.float32)
    Y = X[:, :dim] * 0.5 + rng.standard_normal((480, dim), dtype=np.float32)
    t0 = time.perf_counter()
    decoder = RidgeDecoder(alphas=[1e2, 1e3, 1e4, 1e5], cv=5).fit(X, Y, np.repeat(np.arange(12), 40))
    print(f"decoder fit 480 x {n_voxels} -> {dim}: {time.perf_counter() - t0:.1f} s")
    del X
    genres = ["blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock"]
    protos = rng.standard_normal((len(genres), dim))
    protos -= protos.mean(axis=1, keepdims=True)
    protos /= np.linalg.norm(protos, axis=1, keepdims=True)
    return LiveModel(
        decoder=decoder, decoder_path=Path("bench"), results_dir=Path("bench"), subject="sub-bench",
        encoder="bench", method="ridge", window=1.5, r=10, delay=3, tr=1.5,
        grid=VoxelGrid(GRID, np.diag([2.5, 2.5, 2.5, 1.0]), mask), grid_source="bench",
        prior_cv=np.full(n_voxels, 0.01), stats_source="bench", embedding_mean=np.zeros(dim),
        embedding_sd=np.ones(dim), genres=genres, genre_prototypes=protos,
    )  # fmt: skip


def _bench_library(path: Path, n_tracks: int, dim: int, index: str):
    import pandas as pd
    from bench_library import make_vectors

    from brain2music.reconstruct import library_from_embeddings

    vectors = make_vectors(n_tracks, dim)
    meta = pd.DataFrame({"path": [f"track{i:06d}.wav" for i in range(n_tracks)],
                         "genre": [f"g{i % 10}" for i in range(n_tracks)]})  # fmt: skip
    t0 = time.perf_counter()
    lib = library_from_embeddings(
        path, vectors[:, None, :], meta, encoder="bench", index=index, progress=False
    )
    print(
        f"library {n_tracks} x {dim}, index {lib.manifest['index']['kind']}: built in {time.perf_counter() - t0:.1f} s"
    )
    return lib


def _pct(values, q):
    return float(np.percentile(values, q)) if len(values) else float("nan")


def bench_latency(args) -> None:
    from threadpoolctl import threadpool_limits

    from brain2music.live import FolderWatcher, LivePipeline

    print(f"load average before: {os.getloadavg()}")
    mask = _mask(args.voxels)
    with threadpool_limits(args.threads), tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = _bench_model(args.voxels, args.dim, mask)
        for index in args.index:
            lib = _bench_library(tmp / f"lib-{index}", args.tracks, args.dim, index)
            for fmt in args.format:
                folder = tmp / f"export-{index}-{fmt}"
                folder.mkdir()
                pipeline = LivePipeline(model, lib, k=5)
                queue = mp.get_context("spawn").Queue()
                writer = mp.get_context("spawn").Process(
                    target=_writer, args=(str(folder), args.volumes, args.interval, fmt, queue)
                )
                watcher = FolderWatcher(folder, tr=1.5, n_volumes=args.volumes, idle_timeout=30)
                writer.start()
                if queue.get() != "ready":  # pragma: no cover - the writer's first message
                    raise RuntimeError("writer did not start")
                records = [dict(r, _out=time.time()) for r in pipeline.run(watcher)]
                done = {}
                while (item := queue.get()) is not None:
                    done[item[0]] = item[1]
                writer.join()
                _report(records, done, index, fmt, args)
    print(f"load average after: {os.getloadavg()}")


def _report(records, done, index, fmt, args) -> None:
    ok = [r for r in records if r["status"] == "ok"]
    lat = np.array([1e3 * (r["_out"] - done[r["volume"]]) for r in ok])
    own = np.array([r["latency_ms"] for r in ok])
    steady = np.array([r["volume"] >= 161 for r in ok])
    print(f"\n== {fmt} volumes, index {index}: {len(ok)} of {len(records)} ok ==")
    for name, sel in (("all volumes", np.ones_like(steady)), ("steady state (volume >= 161)", steady)):
        if sel.any():
            print(f"latency (writer's rename -> result out), {name}, n={sel.sum()}: p50 {_pct(lat[sel], 50):.1f} ms, "
                  f"p99 {_pct(lat[sel], 99):.1f} ms, max {lat[sel].max():.1f} ms")  # fmt: skip
    print(
        f"latency as recorded (file ctime -> result): p50 {_pct(own, 50):.1f} ms, p99 {_pct(own, 99):.1f} ms"
    )
    worst = np.argsort(lat)[::-1][:5]
    print("slowest volumes: " + "; ".join(
        f"{ok[i]['volume']}: {lat[i]:.0f} ms (" + ", ".join(f"{k} {v:.0f}" for k, v in ok[i]["timings_ms"].items()) + ")"
        for i in worst))  # fmt: skip
    sel = steady if steady.any() else np.ones_like(steady)
    for stage in ("read", "preprocess", "predict", "search"):
        v = np.array([r["timings_ms"].get(stage, np.nan) for r in ok])[sel]
        print(f"  {stage:10s} p50 {_pct(v, 50):6.2f} ms  p99 {_pct(v, 99):6.2f} ms")


# ------------------------------------------------------------------------------------------- accuracy
def _clip_vectors(pred, onsets_tr, *, delay, window, tr, n_trs, n_volumes):
    """Per presentation: the mean over the clip's r windows of the prediction made at each window's last
    volume (whose trailing average is that window's volumes). Volumes past the run's end repeat its last
    volume's prediction, as the batch pipeline repeats the last volume."""
    from brain2music.windows import window_tr_weights

    weights = window_tr_weights(window, n_trs, tr=tr)
    last = np.array([np.flatnonzero(row > 0).max() for row in weights])  # (r,)
    vols = np.minimum(onsets_tr[:, None] + delay + last[None, :], n_volumes - 1)
    return pred[vols].mean(axis=1)


def _offline_variants(data, tr, prior_cv, prior_volumes):
    """z-scored runs under each preprocessing variant: {name: (n_volumes, n_voxels)}."""
    from brain2music.data.preprocess import detrend_median, zscore
    from brain2music.live import causal_detrend, causal_zscore

    batch_d = detrend_median(data, tr=tr).astype(np.float64)
    causal_d, trend = causal_detrend(data, tr=tr)
    return {
        "batch (centred median, whole-run z)": zscore(batch_d).astype(np.float64),
        "causal median + whole-run z": zscore(causal_d).astype(np.float64),
        "centred median + running z (prior)": causal_zscore(
            batch_d, np.abs(data - batch_d), prior_cv=prior_cv, prior_volumes=prior_volumes
        ),  # fmt: skip
        "live without prior (running z only)": causal_zscore(causal_d, trend, prior_cv=None),
        "live (causal median + running z with prior)": causal_zscore(
            causal_d, trend, prior_cv=prior_cv, prior_volumes=prior_volumes
        ),  # fmt: skip
    }


def _clip_scores(pred_vectors, target_vectors, model) -> np.ndarray:
    """Per-clip identification scores (paper Eq. 3) in the z-scored embedding space of the training targets."""
    from brain2music.evaluate import identification_scores, similarity_matrix

    z = (np.asarray(pred_vectors) - model.embedding_mean) / model.embedding_sd
    t = (np.asarray(target_vectors) - model.embedding_mean) / model.embedding_sd
    return identification_scores(similarity_matrix(z, t))


def _run_predictions(pipe, dec, run, mask):
    """{variant: (n_volumes, dim) predictions} for one test run: the live replay and the offline variants."""
    from brain2music.data.preprocess import read_masked_run
    from brain2music.live import live_decode

    model = pipe.model
    data = read_masked_run(run.bold, mask)
    preds = {
        "live pipeline (replay)": np.array(
            [r["prediction"] for r in live_decode(dec, None, replay=run.bold, speed=0)]
        )
    }
    for name, z in _offline_variants(data, model.tr, model.prior_cv, pipe.pre.prior_volumes).items():
        X = np.stack([z[max(0, t - pipe.n_w + 1) : t + 1].mean(axis=0) for t in range(len(z))])
        preds[name] = np.asarray(model.decoder.predict(X.astype(np.float32)), dtype=np.float64)
    return preds


def _subject_method(demo: Path, subject: str, method: str, runs) -> dict:
    """Per-clip scores of every variant (repeat-averaged and per presentation) for one decoder."""
    from brain2music.data import read_events
    from brain2music.live import open_live

    dec = demo / "decoders" / "acoustic" / method / f"{subject}.joblib"
    pipe = open_live(dec, None)
    model = pipe.model
    with np.load(demo / "predictions" / "acoustic" / method / f"{subject}.npz") as f:
        test_ids, target, batch_pred = (
            list(f["clip_ids"]),
            f["target"].mean(axis=1),
            f["predicted"].mean(axis=1),
        )
    mask = np.zeros(int(np.prod(model.grid.shape)), dtype=bool)
    mask[model.grid.voxel_indices] = True
    mask = mask.reshape(model.grid.shape)
    per_clip: dict[str, dict[str, list]] = {}
    for run in runs:
        ev = read_events(run.events).iloc[1:]  # row 0 repeats the previous run's clip (dropped, as in batch)
        onsets = np.rint(ev.onset.to_numpy() / model.tr).astype(int)
        for name, p in _run_predictions(pipe, dec, run, mask.reshape(model.grid.shape)).items():
            vec = _clip_vectors(p, onsets, delay=model.delay, window=model.window, tr=model.tr,
                                n_trs=int(round(15 / model.tr)), n_volumes=len(p))  # fmt: skip
            for cid, v in zip(ev.clip_id, vec):
                per_clip.setdefault(name, {}).setdefault(cid, []).append(v)
    scores = {"batch (saved predictions)": _clip_scores(batch_pred, target, model)}
    for name, clips in per_clip.items():
        scores[name] = _clip_scores(np.stack([np.mean(clips[c], axis=0) for c in test_ids]), target, model)
        n_rep = min(len(v) for v in clips.values())
        single = [
            _clip_scores(np.stack([clips[c][k] for c in test_ids]), target, model) for k in range(n_rep)
        ]
        scores[name + " [single presentation]"] = np.mean(single, axis=0)
    return scores


def _paired_ci(diff: np.ndarray, n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), size=(n_boot, len(diff)))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def bench_accuracy(args) -> None:
    from threadpoolctl import threadpool_limits

    from brain2music.data import find_runs
    from brain2music.results import ResultsFolder

    demo = Path(args.demo)
    res = ResultsFolder(demo).read()
    print(f"load average before: {os.getloadavg()}")
    batch_rows = {(r.subject, r.method): r.id_acc for r in res.rows if r.split == "test"}
    scores: dict[str, dict[str, list]] = {}
    with threadpool_limits(args.threads):
        for subject in res.subjects:
            runs = [r for r in find_runs(res.config.source.bids_root, subject) if r.split == "test"]
            for method in res.methods:
                t0 = time.perf_counter()
                got = _subject_method(demo, subject, method, runs)
                print(f"{subject} {method} ({time.perf_counter() - t0:.0f} s): results.json {batch_rows[(subject, method)]:.3f}, "
                      + ", ".join(f"{k} {v.mean():.3f}" for k, v in got.items()))  # fmt: skip
                for name, v in got.items():
                    scores.setdefault(method, {}).setdefault(name, []).append(v)
    _print_accuracy(scores)
    print(f"load average after: {os.getloadavg()}")


def _print_accuracy(scores) -> None:
    methods = list(scores)
    names = list(scores[methods[0]])
    print(
        "\nidentification accuracy on the test clips (acoustic, embedding dims z-scored with the training targets;"
    )
    print("pooled over subjects' clips; in brackets: difference to the batch figure of the same presentation")
    print("mode, paired over clips, with its 95 % bootstrap CI)")
    print("| variant | " + " | ".join(methods) + " |")
    print("|---|" + "---|" * len(methods))
    for name in names:
        ref = "batch (centred median, whole-run z)" + (" [single presentation]" if "single" in name else "")
        cells = []
        for m in methods:
            v = np.concatenate(scores[m][name])
            cell = f"{v.mean():.3f}"
            if name != ref and ref in scores[m] and not name.startswith("batch (saved"):
                d = v - np.concatenate(scores[m][ref])
                lo, hi = _paired_ci(d)
                cell += f" ({d.mean():+.3f} [{lo:+.3f}, {hi:+.3f}])"
            cells.append(cell)
        print(f"| {name} | " + " | ".join(cells) + " |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    a = sub.add_parser("latency")
    a.add_argument("--voxels", type=int, default=60_000)
    a.add_argument("--tracks", type=int, default=100_000)
    a.add_argument("--dim", type=int, default=512)
    a.add_argument("--volumes", type=int, default=300)
    a.add_argument("--interval", type=float, default=0.25, help="seconds between exported volumes")
    a.add_argument("--format", nargs="+", default=["nifti", "dicom"], choices=["nifti", "dicom"])
    a.add_argument("--index", nargs="+", default=["auto"], choices=["auto", "flat", "ivf"])
    a.add_argument("--threads", type=int, default=2)
    b = sub.add_parser("accuracy")
    b.add_argument("--demo", default="brain2music-demo", help="output folder of `brain2music demo`")
    b.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    sys.path.insert(0, str(HERE))
    (bench_latency if args.what == "latency" else bench_accuracy)(args)


if __name__ == "__main__":
    main()
