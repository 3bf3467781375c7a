"""Benchmark audio queries of a ``full``-coverage library: real recordings, snippets, 100,000-track scale.

1. Real music (``benchmarks/real_music.py``: the 94 recordings Debian's game/music packages ship, 30 s to
   9 min, Ogg/MP3 44.1 kHz stereo): a ``coverage="full"`` library is built with the ``acoustic`` encoder.
   Queries are 5-s snippets taken at a random offset of every track (the same offsets for every
   variant), as a WAV and re-encoded as MP3 by libsndfile. Reports top-1 accuracy (the source track
   first), the offset error, and the time of one query (file read + embedding + search).
2. Scale: the same real tracks plus synthetic distractor tracks up to ``--n-tracks`` (default 100,000
   tracks × 30 s = 20 windows of 1.5 s each, 2,000,000 windows in all). The distractors are drawn from a
   Gaussian model fitted to the real windows (between-track covariance of the track means, within-track
   covariance of the residuals, lag-1 autocorrelation across windows), so they share the real windows'
   first and second moments; they are not music. The library's automatic window index (IVF-PQ above
   200,000 windows, float16 window store for the exact re-scoring) answers the same snippet queries;
   exact search (every alignment of every track) is the reference for recall@1. Reports build time,
   sizes on disk, resident memory, and the query time.

Usage (heavy: run it alone on the machine, no other heavy job beside it)::

    python benchmarks/bench_library_snippets.py [--n-tracks 100000] [--snippet 5] [--skip-scale] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf


def rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def current_rss_gb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024**2
    return float("nan")


def folder_gb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1024**3


def make_snippets(tracks, out: Path, seconds: float, seed: int) -> pd.DataFrame:
    """One snippet per track at a random offset: WAV (original rate, stereo) and an MP3 re-encoding."""
    from brain2music.stimuli import read_audio

    rng = np.random.default_rng(seed)
    rows = []
    for i, t in enumerate(tracks):
        offset = float(rng.uniform(0.0, t.duration - seconds - 0.1))
        audio, sr = read_audio(t.path, mono=False, offset=offset, duration=seconds)
        wav, mp3 = out / f"q{i:03d}.wav", out / f"q{i:03d}.mp3"
        sf.write(wav, audio, sr)
        sf.write(mp3, audio, sr, format="MP3")
        rows.append({"track": str(Path(t.path).resolve()), "offset": offset, "wav": wav, "mp3": mp3})
    return pd.DataFrame(rows)


def run_queries(lib, snippets: pd.DataFrame, variant: str, *, exact: bool | None) -> pd.DataFrame:
    lib.query(snippets.iloc[0][variant], k=1, exact=exact)  # warm: encoder, JIT, index, metadata
    rows = []
    for _, s in snippets.iterrows():
        t0, c0 = time.perf_counter(), time.process_time()
        hits = lib.query(s[variant], k=5, exact=exact)
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        top = hits[0]
        rows.append(
            {
                "track": s["track"],
                "top1": top.path,
                "correct": top.path == s["track"],
                "offset_error": abs(top.offset - s["offset"]) if top.path == s["track"] else np.nan,
                "in_top5": any(h.path == s["track"] for h in hits),
                "seconds": dt,
                "cpu_seconds": cpu,
            }
        )
    return pd.DataFrame(rows)


def summary(name: str, res: pd.DataFrame) -> None:
    for _, miss in res[~res["correct"]].iterrows():
        print(
            f"  miss: {'/'.join(miss['track'].split('/')[-3:])} -> {'/'.join(miss['top1'].split('/')[-3:])}"
        )
    t = res["seconds"].to_numpy() * 1000
    cpu = res["cpu_seconds"].to_numpy() * 1000
    print(
        f"  {name:40s} top-1 {res['correct'].mean():.3f}  top-5 {res['in_top5'].mean():.3f}  "
        f"offset error median {np.nanmedian(res['offset_error']):.2f} s (max {np.nanmax(res['offset_error']):.2f})\n"
        f"  {'':40s} query wall median {np.median(t):.1f} ms (p90 {np.percentile(t, 90):.1f}, max {t.max():.1f}); "
        f"CPU median {np.median(cpu):.1f} ms (p90 {np.percentile(cpu, 90):.1f})"
    )


def distractors(lib, n_tracks: int, n_windows: int, seed: int):
    """Gaussian tracks with the real windows' moments: ``(embeddings (n*w, dim), clip (n, r, dim))``."""
    blocks = [lib.track_windows(i)[1] for i in range(len(lib))]
    means = np.stack([b.mean(axis=0) for b in blocks]).astype(np.float64)
    resid = [b - b.mean(axis=0) for b in blocks]
    within = np.concatenate(resid).astype(np.float64)
    rho = np.mean(
        [np.mean(r[1:] * r[:-1], axis=0) / np.maximum(np.mean(r**2, axis=0), 1e-12) for r in resid], 0
    )
    rho = np.clip(rho, 0.0, 0.99)
    rng = np.random.default_rng(seed)
    dim = means.shape[1]

    def factor(cov):
        w, v = np.linalg.eigh(cov)
        return v * np.sqrt(np.clip(w, 0, None))

    a_between = factor(np.cov(means, rowvar=False))
    a_within = factor(np.cov(within, rowvar=False))
    out = np.empty((n_tracks, n_windows, dim), dtype=np.float32)
    for s in range(0, n_tracks, 10_000):
        m = min(n_tracks, s + 10_000) - s
        mu = means.mean(axis=0) + rng.standard_normal((m, dim)) @ a_between.T
        e = rng.standard_normal((m, dim)) @ a_within.T
        for k in range(n_windows):
            if k:
                e = rho * e + np.sqrt(1 - rho**2) * (rng.standard_normal((m, dim)) @ a_within.T)
            out[s : s + m, k] = mu + e
    return out


def bench_real(args, tmp: Path):
    from real_music import real_tracks

    from brain2music.reconstruct.library import MusicLibrary, build_library

    tracks = real_tracks()
    minutes = sum(t.duration for t in tracks) / 60
    print(f"{len(tracks)} real tracks, {minutes:.1f} min; load {os.getloadavg()}")
    if (tmp / "real" / "manifest.json").is_file():  # --workdir of an earlier run
        lib = MusicLibrary(tmp / "real")
        print(f"reusing {lib}")
    else:
        music = tmp / "music"
        music.mkdir()
        for i, t in enumerate(tracks):
            os.symlink(t.path, music / f"{i:03d}-{t.collection}{Path(t.path).suffix}")
        t0 = time.perf_counter()
        lib = build_library(music, tmp / "real", encoder="acoustic", coverage="full", progress=False)
        print(
            f"build full library: {time.perf_counter() - t0:.1f} s, {lib.window_store.n_items} tracks, "
            f"{len(lib.window_store)} windows, skipped {len(lib.skipped)}"
        )
    (tmp / "snippets").mkdir(exist_ok=True)
    snippets = make_snippets(tracks, tmp / "snippets", args.snippet, args.seed)
    print(f"real library alone ({len(lib)} tracks), {args.snippet:g}-s snippets:")
    for variant in ("wav", "mp3"):
        summary(f"{variant}, exact", run_queries(lib, snippets, variant, exact=True))
    return lib, snippets


def bench_scale(args, real_lib, snippets, tmp: Path):
    from brain2music.reconstruct.library import MusicLibrary, library_from_embeddings

    if (tmp / "big" / "manifest.json").is_file():  # --workdir of an earlier run
        return query_scale(args, MusicLibrary(tmp / "big"), snippets)
    n_syn = args.n_tracks - len(real_lib)
    r, dim = real_lib.n_windows, real_lib.dim
    t0 = time.perf_counter()
    syn = distractors(real_lib, n_syn, args.windows_per_track, args.seed)
    print(
        f"\nscale: {n_syn} synthetic + {len(real_lib)} real tracks; distractors drawn in {time.perf_counter() - t0:.1f} s"
    )
    real_blocks = [real_lib.track_windows(i) for i in range(len(real_lib))]
    emb = np.concatenate([syn.reshape(-1, dim), *[b[1] for b in real_blocks]])
    starts = np.concatenate(
        [np.tile(np.arange(args.windows_per_track) * 1.5, n_syn), *[b[0] for b in real_blocks]]
    )
    counts = np.concatenate([np.full(n_syn, args.windows_per_track), [len(b[0]) for b in real_blocks]])
    bounds = np.concatenate([[0], np.cumsum(counts)])
    clips = np.concatenate([syn[:, :r], real_lib.windows()])
    meta = pd.DataFrame(
        {"path": [f"synthetic/{i:06d}" for i in range(n_syn)] + list(real_lib.metadata["path"])}
    )
    del syn
    t0 = time.perf_counter()
    library_from_embeddings(
        tmp / "big", clips, meta, encoder="acoustic", encoder_config=real_lib.encoder_config,
        span=(emb, starts, bounds), progress=False,
    )  # fmt: skip
    build_s = time.perf_counter() - t0
    del emb, clips
    print(
        f"write + index {len(meta)} tracks, {bounds[-1]} windows: {build_s:.1f} s; peak RSS so far {rss_gb():.2f} GB"
    )
    store_dir = next((tmp / "big").glob("windex-*"))
    sizes = {p.name: p.stat().st_size / 1024**2 for p in store_dir.iterdir()}
    print(
        f"on disk: library {folder_gb(tmp / 'big'):.2f} GB; window store "
        + ", ".join(f"{k} {v:.0f} MB" for k, v in sizes.items())
    )
    query_scale(args, MusicLibrary(tmp / "big"), snippets)


def query_scale(args, lib, snippets):
    rss0 = current_rss_gb()
    print(f"window index: {lib.manifest['window_store']['index']}")
    res_ann = {v: run_queries(lib, snippets, v, exact=None) for v in ("wav", "mp3")}
    print(
        f"resident memory of the opened library after the queries: +{current_rss_gb() - rss0:.2f} GB (process {current_rss_gb():.2f} GB)"
    )
    if args.skip_exact:
        for v in ("wav", "mp3"):
            summary(f"{v}, IVF-PQ candidates + exact rescoring", res_ann[v])
        return
    res_exact = {v: run_queries(lib, snippets, v, exact=True) for v in ("wav", "mp3")}
    print(f"{len(lib)}-track library, {args.snippet:g}-s snippets (load {os.getloadavg()}):")
    for v in ("wav", "mp3"):
        summary(f"{v}, IVF-PQ candidates + exact rescoring", res_ann[v])
        summary(f"{v}, exact (every alignment)", res_exact[v])
        same = (res_ann[v]["top1"] == res_exact[v]["top1"]).mean()
        print(f"  {v}: recall@1 of the index against exact search {same:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n-tracks", type=int, default=100_000)
    ap.add_argument("--windows-per-track", type=int, default=20, help="20 windows of 1.5 s = 30-s tracks")
    ap.add_argument("--snippet", type=float, default=5.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-scale", action="store_true")
    ap.add_argument(
        "--skip-exact", action="store_true", help="at scale, only the indexed queries (no recall)"
    )
    ap.add_argument("--workdir", default=None, help="keep the libraries here and reuse them on the next run")
    ap.add_argument("--threads", type=int, default=None, help="FAISS OpenMP threads (default: all cores)")
    args = ap.parse_args()
    if args.threads:
        import faiss

        faiss.omp_set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="b2m-snippets-") as tmp:
        tmp = Path(args.workdir or tmp)
        tmp.mkdir(parents=True, exist_ok=True)
        lib, snippets = bench_real(args, tmp)
        if not args.skip_scale:
            bench_scale(args, lib, snippets, tmp)
    # CPU time counts this process only (not the other jobs sharing the cores); OpenMP threads of FAISS
    # are included, so it bounds what one query costs on an idle core.
    print(f"peak RSS {rss_gb():.2f} GB")


if __name__ == "__main__":
    main()
