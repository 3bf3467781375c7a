"""Benchmark of an encoder (default ``acoustic``): clips per second on one core, and Dask 2 workers vs 1.

Usage::

    python benchmarks/bench_embed.py [--encoder acoustic|musicnn-msd|...] [--clips 48] [--repeats 3]

Every figure is the median of ``--repeats`` runs on the same synthetic 15-s clips (22,050 Hz WAV files:
tones, chords, noise bursts, click tracks), cache off, after a warm-up (librosa's numba JIT). BLAS/OpenMP
threads are pinned to 1 so "per core" means one core; the compute-only figure is also given in CPU
seconds of this process (robust to other jobs on the machine: wall time under load is an upper bound).
The BLAS core type that OpenBLAS picked is printed (``OPENBLAS_CORETYPE`` overrides it). The Dask timings exclude cluster start-up (each
cluster is started once, warmed up, then timed), and include reading the files on the workers; the
clusters are :func:`brain2music.embeddings.batch.local_cluster` (what ``--scheduler local`` starts).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

SR = 22050
CLIP_S = 15.0


def make_clips(folder: Path, n: int, seed: int = 0) -> list[Path]:
    from brain2music.stimuli import write_audio

    rng = np.random.default_rng(seed)
    t = np.arange(int(CLIP_S * SR)) / SR
    paths = []
    for i in range(n):
        kind = i % 4
        if kind == 0:
            y = sum(0.2 * np.sin(2 * np.pi * rng.uniform(100, 800) * r * t) for r in (1, 1.25, 1.5))
        elif kind == 1:
            y = 0.1 * rng.standard_normal(t.size) * (np.sin(2 * np.pi * rng.uniform(1, 3) * t) > 0)
        elif kind == 2:
            y = np.zeros(t.size)
            y[:: int(SR * 60 / rng.uniform(80, 160))] = 1.0
        else:
            y = 0.3 * np.sin(2 * np.pi * rng.uniform(200, 1000) * t) * np.exp(-(t % 0.5) * 4)
        paths.append(write_audio(folder / f"clip{i:03d}.wav", y.astype(np.float32), SR))
    return paths


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", default="acoustic")
    parser.add_argument("--clips", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-dask", action="store_true")
    args = parser.parse_args()

    from brain2music.embeddings import AudioClip, embed_clips, get_encoder
    from brain2music.stimuli import read_audio

    print(f"load average at start: {os.getloadavg()}  (cores: {os.cpu_count()})")
    from threadpoolctl import threadpool_info

    blas = [
        f"{i.get('internal_api')} {i.get('version')} core {i.get('architecture')}"
        for i in threadpool_info()
        if i.get("user_api") == "blas"
    ]
    print(f"BLAS: {'; '.join(blas)}")
    name = args.encoder
    enc = get_encoder(name)
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_clips(Path(tmp), args.clips)
        clips = [AudioClip(p.stem, str(p)) for p in paths]
        audios = [read_audio(p)[0] for p in paths]
        enc.embed_many(audios[:2], SR)  # warm-up: numba JIT of librosa, weights of pretrained encoders

        # 1. compute only (audio in memory), one process, one thread
        times, cpus = [], []
        for _ in range(args.repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            for a in audios:
                enc.embed(a, SR)
            times.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
        t, c = statistics.median(times), statistics.median(cpus)
        print(
            f"{name}, compute only, 1 core: {args.clips / t:.1f} clips/s = "
            f"{args.clips * CLIP_S / t:.0f}x real time (median of {args.repeats}: {t:.2f} s for {args.clips} clips; "
            f"runs {', '.join(f'{x:.2f}' for x in times)}); in CPU time {args.clips * CLIP_S / c:.0f}x real time "
            f"({1000 * c / args.clips:.0f} ms CPU per clip)"
        )

        # 2. embed_clips in-process (reads the files, hashes, no cache)
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            embed_clips(clips, enc, cache_dir=False, progress=False)
            times.append(time.perf_counter() - t0)
        t_inproc = statistics.median(times)
        print(
            f"{name}, embed_clips in-process (file reading included), 1 core: {args.clips / t_inproc:.1f} clips/s = "
            f"{args.clips * CLIP_S / t_inproc:.0f}x real time (runs {', '.join(f'{x:.2f}' for x in times)})"
        )
        print(f"peak RSS of this process: {peak_rss_mb():.0f} MB")

        # 3. cache hits
        cache = Path(tmp) / "cache"
        embed_clips(clips, enc, cache_dir=cache, progress=False)
        t0 = time.perf_counter()
        res = embed_clips(clips, enc, cache_dir=cache, progress=False)
        t_hit = time.perf_counter() - t0
        print(
            f"{name}, all {res.n_cached_} clips from the cache: {args.clips / t_hit:.0f} clips/s ({t_hit:.2f} s)"
        )

        if args.skip_dask:
            return
        # 4. Dask LocalCluster: 1 vs 2 single-threaded worker processes
        from distributed import Client

        from brain2music.embeddings.batch import local_cluster

        per = {}
        for n_workers in (1, 2):
            with local_cluster(n_workers) as cluster, Client(cluster) as client:
                embed_clips(
                    clips[: 2 * n_workers],
                    enc,
                    cache_dir=False,
                    scheduler=client,
                    chunk_size=1,
                    progress=False,
                )  # warm-up on every worker
                times = []
                cpu0 = sum(client.run(_cpu_seconds).values())
                for _ in range(args.repeats):
                    t0 = time.perf_counter()
                    embed_clips(clips, enc, cache_dir=False, scheduler=client, chunk_size=4, progress=False)
                    times.append(time.perf_counter() - t0)
                cpu = sum(client.run(_cpu_seconds).values()) - cpu0
                per[n_workers] = statistics.median(times)
                # CPU seconds the workers got per wall second: n_workers on an idle machine, less when
                # other processes compete for the cores.
                print(
                    f"dask LocalCluster {n_workers} worker(s): {args.clips / per[n_workers]:.1f} clips/s "
                    f"(runs {', '.join(f'{x:.2f}' for x in times)}); workers got {cpu / sum(times):.2f} "
                    f"cores on average"
                )
        print(f"dask speed-up 2 workers vs 1: {per[1] / per[2]:.2f}x")
        print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
