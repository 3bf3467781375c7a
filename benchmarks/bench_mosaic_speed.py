"""Speed of the mosaic generator with a 10,000-track library, on one core (target: < 2 s per 15-s clip).

Run (heavy: writes a 10,000-track library of about a million windows; run under the shared lock)::

    python benchmarks/bench_mosaic_speed.py --workdir /tmp/mosaic_speed \\
        [--real-library LIB] [--tracks 10000] [--clips 20] [--repeats 3]

The library: the 94 real recordings of ``benchmarks/real_music.py`` (a ``coverage="full"`` library with
the ``acoustic`` encoder, built in ``--workdir`` unless ``--real-library`` is given) plus distractor tracks
up to ``--tracks``. A distractor is a symbolic link to one of the real recordings (so its audio can be
read and analysed like any track: the corpus analysis cache is keyed by the file's real path, so it is
analysed once) whose clip and window embeddings are that recording's plus Gaussian noise (0.5 sd per
dimension): embeddings spread like real ones, and the window store holds about a million windows, so the
automatic IVF-PQ window index is used as it would be for a real library of that size.

Timed: ``MosaicGenerator.generate`` for ``--clips`` targets (clip embeddings of real tracks with noise,
their own recording excluded), every BLAS and OpenMP pool limited to one thread; wall and CPU time per
clip, median over clips and repeats. The one-off costs (corpus analysis assembly, fade compensation,
opening the store) are printed separately.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))


def _real_library(work: Path, given: str | None):
    from brain2music.reconstruct.library import MusicLibrary, build_library

    if given:
        return MusicLibrary(given)
    from real_music import real_tracks

    music = work / "music"
    if not music.is_dir():
        music.mkdir(parents=True)
        for i, t in enumerate(real_tracks()):
            os.symlink(t.path, music / f"{i:03d}_{Path(t.path).name}")
    lib_dir = work / "real_lib"
    if lib_dir.is_dir():
        return MusicLibrary(lib_dir)
    return build_library(music, lib_dir, encoder="acoustic", coverage="full", progress=False)


def _big_library(real, work: Path, n_tracks: int, rng):
    import pandas as pd

    from brain2music.reconstruct.library import MusicLibrary, library_from_embeddings

    out = work / f"lib_{n_tracks}"
    if out.is_dir():
        return MusicLibrary(out)
    clips = real.windows(None)
    spans = [
        (st, emb) for emb, st, counts in real.search_window_blocks() for st, emb in _split(emb, st, counts)
    ]
    n_real = len(real)
    links = work / "distractors"
    links.mkdir(exist_ok=True)
    src = rng.integers(0, n_real, n_tracks - n_real)
    sd_clip = clips.reshape(-1, clips.shape[-1]).std(0)
    all_span = np.concatenate([e for _, e in spans])
    sd_win = all_span.std(0)
    meta, clip_rows, span_rows, start_rows = [], [], [], []
    for i in range(n_tracks):
        if i < n_real:
            path, c, (st, e) = real.metadata.at[i, "path"], clips[i], spans[i]
        else:
            j = int(src[i - n_real])
            path = links / f"d{i:05d}{Path(real.metadata.at[j, 'path']).suffix}"
            if not path.exists():
                os.symlink(real.metadata.at[j, "path"], path)
            st, e = spans[j]
            c = clips[j] + 0.5 * sd_clip * rng.standard_normal(clips[j].shape)
            e = e + 0.5 * sd_win * rng.standard_normal(e.shape)
        meta.append({"path": str(path), "genre": "", "duration": float(st[-1] + 1.5)})
        clip_rows.append(c.astype(np.float32))
        span_rows.append(e.astype(np.float32))
        start_rows.append(st)
    bounds = np.concatenate([[0], np.cumsum([len(s) for s in start_rows])])
    span = (np.concatenate(span_rows), np.concatenate(start_rows), bounds)
    return library_from_embeddings(
        out, np.stack(clip_rows), pd.DataFrame(meta), encoder="acoustic", encoder_config=real.encoder_config,
        span=span, hop=real.hop, progress=False,
    )  # fmt: skip


def _split(emb, starts, counts):
    offsets = np.concatenate([[0], np.cumsum(counts)])
    for a, b in zip(offsets[:-1], offsets[1:], strict=True):
        yield starts[a:b], emb[a:b]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", default="/tmp/bench_mosaic_speed")
    p.add_argument("--real-library", default=None)
    p.add_argument("--tracks", type=int, default=10_000)
    p.add_argument("--clips", type=int, default=20)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument(
        "--analysis-dir",
        default=None,
        help="corpus analysis cache (default WORKDIR/analysis); e.g. LIB/mosaic "
        "of --real-library, whose per-track analyses the distractors reuse",
    )
    args = p.parse_args(argv)

    import faiss
    from threadpoolctl import threadpool_limits

    from brain2music.reconstruct.generators.mosaic import MosaicGenerator

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    print(f"load at start: {os.getloadavg()}")
    real = _real_library(work, args.real_library)
    t0 = time.perf_counter()
    lib = _big_library(real, work, args.tracks, rng)
    print(f"library: {len(lib)} tracks, {len(lib.window_store)} windows, window index "
          f"{lib.window_store.info['index']['kind']} (built/opened in {time.perf_counter() - t0:.1f} s)")  # fmt: skip
    faiss.omp_set_num_threads(1)
    with threadpool_limits(limits=1):
        t0 = time.perf_counter()
        gen = MosaicGenerator(lib, analysis_dir=args.analysis_dir or work / "analysis").fit()
        print(f"one-off: analysis + fade compensation + store in {time.perf_counter() - t0:.1f} s")
        items = rng.choice(len(real), args.clips, replace=False)
        clips = real.windows(items)
        sd = clips.reshape(-1, clips.shape[-1]).std(0)
        targets = clips + 0.5 * sd * rng.standard_normal(clips.shape)
        gen.generate(targets[0], random_state=0)  # warm-up (imports, first reads)
        walls, cpus = [], []
        for _ in range(args.repeats):
            for item, target in zip(items, targets, strict=True):
                w, c = time.perf_counter(), time.process_time()
                gen.generate(target, random_state=0, exclude=[str(lib.metadata.at[int(item), "path"])])
                walls.append(time.perf_counter() - w)
                cpus.append(time.process_time() - c)
    walls, cpus = np.array(walls), np.array(cpus)
    print(f"{len(walls)} generations (15 s each), one thread: wall median {np.median(walls):.3f} s "
          f"(p90 {np.percentile(walls, 90):.3f}, max {walls.max():.3f}); CPU median {np.median(cpus):.3f} s")  # fmt: skip
    print(f"load at end: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
