"""Benchmark the music-library index: 1,000,000 × 512-d vectors, exact vs approximate top-10.

Vectors imitate audio embeddings rather than iid noise: a shared mean direction (CLAP-like embeddings
are anisotropic), 2,000 cluster centres drawn from a 64-dimensional subspace (genres/artists live on a
low-rank manifold) with cluster sizes following a Zipf law, and per-track noise with a heavy (Student-t)
tail. Queries imitate *predicted* embeddings: a random library track plus noise at a cosine of about
0.6-0.8 to it, as decoders produce.

Usage::

    python benchmarks/bench_library.py [--n 1000000] [--dim 512] [--repeats 5] [--store]
    python benchmarks/bench_library.py --offline [--targets 4]

``--offline`` instead measures the offline generator with the ``acoustic`` encoder: fit time (the bank)
and time per generated 15-s clip at a cheap ("demo") and the default setting, and the score reached
(standardised cosine to the target) against the best bank track and the median bank track.

Prints build time, peak resident memory, the median time for 60 queries (exact and IVF at several
``nprobe``) and recall@10 of IVF against exact search. ``--store`` also writes and re-reads the library
through :func:`brain2music.reconstruct.library.library_from_embeddings` (Parquet shards + index).
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time

import numpy as np


def rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KiB on Linux


def make_vectors(
    n: int, dim: int, *, n_clusters: int = 2000, rank: int = 64, noise: float = 0.25, seed: int = 0
) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mean = rng.standard_normal(dim).astype(np.float32)
    mean *= 5.0 / np.linalg.norm(mean)  # random pairs then have cosine ≈ 0.3, as CLAP audio embeddings
    basis = np.linalg.qr(rng.standard_normal((dim, rank)))[0].T.astype(np.float32)  # (rank, dim)
    centres = (rng.standard_normal((n_clusters, rank)).astype(np.float32) @ basis) + mean
    sizes = 1.0 / np.arange(1, n_clusters + 1) ** 0.8
    labels = rng.choice(n_clusters, size=n, p=sizes / sizes.sum())
    out = np.empty((n, dim), dtype=np.float32)
    for s in range(0, n, 100_000):
        e = min(n, s + 100_000)
        eps = rng.standard_t(5, size=(e - s, dim)).astype(np.float32) * np.float32(noise)
        out[s:e] = centres[labels[s:e]] + eps
    return out


def make_queries(vectors: np.ndarray, n_queries: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    src = vectors[rng.choice(len(vectors), n_queries, replace=False)]
    src = src / np.linalg.norm(src, axis=1, keepdims=True)
    noise = rng.standard_normal(src.shape).astype(np.float32)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    mix = rng.uniform(0.6, 0.9, size=(n_queries, 1)).astype(np.float32)  # cosine to the source ≈ mix
    return (mix * src + np.sqrt(1 - mix**2) * noise).astype(np.float32)


def timed_search(index, queries, k, repeats, **kw):
    from brain2music.reconstruct.index import search_index

    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        _, idx = search_index(index, queries, k, **kw)
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), idx


def recall_at_k(approx: np.ndarray, exact: np.ndarray) -> float:
    k = exact.shape[1]
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(approx, exact, strict=True)]))


def bench_offline(n_targets: int) -> None:
    from brain2music.embeddings.registry import get_encoder
    from brain2music.reconstruct.clip_embedding import prepare_clip
    from brain2music.reconstruct.generators import get_generator
    from brain2music.simulate.composer import render, sample_params

    enc = get_encoder("acoustic")
    rng = np.random.default_rng(123)
    genres = ["metal", "classical", "reggae", "jazz", "disco", "country"]
    targets = []
    for i in range(n_targets):
        audio = render(sample_params(genres[i % len(genres)], rng), 22050, 15.0)
        targets.append(enc.embed(prepare_clip(audio, 22050), 22050))
    for name in ("demo", "default"):
        gen = get_generator("offline", encoder=enc, progress=False, random_state=0, preset=name)
        t0 = time.perf_counter()
        gen.fit()
        t_fit = time.perf_counter() - t0
        times, scores, best_bank, med_bank = [], [], [], []
        for i, t in enumerate(targets):
            t0 = time.perf_counter()
            gen.generate(t, random_state=i)
            times.append(time.perf_counter() - t0)
            scores.append(gen.last_score_)
            bank = gen._score(gen.bank_embeddings_, t)
            best_bank.append(bank.max())
            med_bank.append(np.median(bank))
        print(
            f"offline[{name}] {gen.config}: fit {t_fit:.1f} s; per clip median {np.median(times):.1f} s "
            f"(min {min(times):.1f}, max {max(times):.1f}); score {np.mean(scores):.3f} vs best bank "
            f"{np.mean(best_bank):.3f}, median bank {np.mean(med_bank):.3f} (means over {n_targets} targets)"
        )
    print(f"peak RSS {rss_gb():.2f} GB")


def main() -> None:
    import faiss

    from brain2music.reconstruct.index import build_index, index_params

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--queries", type=int, default=60)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--hnsw", action="store_true", help="also build an HNSW index (slow on few cores)")
    ap.add_argument("--store", action="store_true", help="also write/read the Parquet library")
    ap.add_argument("--offline", action="store_true", help="benchmark the offline generator instead")
    ap.add_argument("--targets", type=int, default=4, help="targets for --offline")
    args = ap.parse_args()
    if args.offline:
        bench_offline(args.targets)
        return
    print(f"faiss {faiss.__version__}, threads {faiss.omp_get_max_threads()}")

    t0 = time.perf_counter()
    vectors = make_vectors(args.n, args.dim)
    queries = make_queries(vectors, args.queries)
    print(
        f"data: {args.n} x {args.dim} clustered vectors in {time.perf_counter() - t0:.1f} s; peak RSS {rss_gb():.2f} GB"
    )

    t0 = time.perf_counter()
    flat = build_index(vectors, kind="flat")
    print(f"flat: build {time.perf_counter() - t0:.1f} s; peak RSS {rss_gb():.2f} GB")
    t_exact, exact = timed_search(flat, queries, args.k, args.repeats)
    print(f"flat: {args.queries} queries top-{args.k}: median {t_exact:.3f} s over {args.repeats} runs")
    del flat

    t0 = time.perf_counter()
    ivf = build_index(vectors, kind="ivf")
    t_build = time.perf_counter() - t0
    p = index_params(ivf)
    print(
        f"ivf: build (train + add) {t_build:.1f} s, nlist {p['nlist']}, default nprobe {p['nprobe']}; peak RSS {rss_gb():.2f} GB"
    )
    for nprobe in sorted({8, 16, 32, 64, p["nprobe"], 256}):
        t, idx = timed_search(ivf, queries, args.k, args.repeats, nprobe=nprobe)
        print(
            f"ivf nprobe {nprobe:4d}: median {t:.3f} s, recall@{args.k} {recall_at_k(idx, exact):.3f}, speed-up x{t_exact / t:.1f}"
        )
    ivf.nprobe = p["nprobe"]
    del ivf

    if args.hnsw:
        t0 = time.perf_counter()
        hnsw = build_index(vectors, kind="hnsw")
        print(f"hnsw: build {time.perf_counter() - t0:.1f} s; peak RSS {rss_gb():.2f} GB")
        for ef in (64, 128, 256):
            hnsw.hnsw.efSearch = ef
            t, idx = timed_search(hnsw, queries, args.k, args.repeats)
            print(f"hnsw efSearch {ef}: median {t:.3f} s, recall@{args.k} {recall_at_k(idx, exact):.3f}")
        del hnsw

    if args.store:
        import pandas as pd

        from brain2music.reconstruct.library import MusicLibrary, library_from_embeddings

        meta = pd.DataFrame({"path": [f"track{i:07d}.mp3" for i in range(args.n)]})
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            library_from_embeddings(tmp + "/lib", vectors[:, None, :], meta, encoder="bench", progress=False)
            print(
                f"store: write shards + auto index {time.perf_counter() - t0:.1f} s; peak RSS {rss_gb():.2f} GB"
            )
            t0 = time.perf_counter()
            lib = MusicLibrary(tmp + "/lib")
            _ = lib.index, lib.metadata
            t_open = time.perf_counter() - t0
            t0 = time.perf_counter()
            _, items = lib.search(queries, args.k)
            print(
                f"store: open (index + metadata) {t_open:.1f} s; library.search {time.perf_counter() - t0:.3f} s, recall@{args.k} {recall_at_k(items, exact):.3f}"
            )
    print(f"peak RSS {rss_gb():.2f} GB")


if __name__ == "__main__":
    main()
