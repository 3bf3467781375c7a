"""Encoders on real recordings: leave-one-track-out 1-NN collection accuracy (not tuned on composed music).

    python benchmarks/bench_real_music.py [--encoders acoustic,mfcc-stats,musicnn-msd]

Data: the real recordings of ``benchmarks/real_music.py`` (94 tracks of Debian's game and music packages in
6 collections). Each track gives up to 4 non-overlapping 15-s excerpts, spread over the track. Each
excerpt becomes one vector: the encoder's windows averaged (``mfcc-stats``: mean and standard deviation
of 20 librosa MFCCs over the excerpt, the plain baseline). Dimensions are z-scored over all excerpts;
the score is the accuracy of the nearest neighbour by cosine similarity among the excerpts of *other*
tracks (leave one track out: excerpts of a track never sit on both sides), with its standard error
from 2,000 bootstrap resamples of tracks; chance is the same score with collections shuffled over tracks.

Collections differ in more than genre (composer, production, era, instrumentation of one game), so
this is a "same collection" accuracy, a stand-in for genre.

The tracks are split once, by a hash of their file names within each collection, into a development
half (``dev``: every design choice about ``acoustic`` was made on its numbers only) and a held-out half
(``held-out``: the figure to report). Held-out excerpts are queried against all other tracks of both
halves; dev excerpts only against dev tracks.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

EXCERPT = 15.0
MAX_EXCERPTS = 4


def excerpts(tracks) -> list[tuple[int, float]]:
    """``[(track index, start s)]``: up to 4 non-overlapping 15-s excerpts per track, spread over it."""
    out = []
    for i, t in enumerate(tracks):
        n = int(min(MAX_EXCERPTS, t.duration // EXCERPT))
        starts = np.linspace(0.0, t.duration - EXCERPT, n) if n > 1 else [0.0]
        out.extend((i, float(s)) for s in starts)
    return out


def split(tracks) -> np.ndarray:
    """``(n_tracks,)`` bool, True = held out: within each collection, every other track by name hash."""
    held = np.zeros(len(tracks), dtype=bool)
    by: dict[str, list[int]] = {}
    for i, t in enumerate(tracks):
        by.setdefault(t.collection, []).append(i)
    for idx in by.values():
        order = sorted(idx, key=lambda i: hashlib.sha1(Path(tracks[i].path).name.encode()).hexdigest())
        held[order[1::2]] = True
    return held


def mfcc_stats(audio: np.ndarray, sr: int) -> np.ndarray:
    import librosa

    mfcc = librosa.feature.mfcc(y=audio, sr=sr, n_mfcc=20)
    return np.concatenate([mfcc.mean(axis=1), mfcc.std(axis=1)]).astype(np.float32)


def features(name: str, tracks, items, cache: Path | None) -> np.ndarray:
    """``(n_excerpts, dim)`` one vector per excerpt (cached in ``cache`` by name and encoder config)."""
    from brain2music.embeddings import get_encoder
    from brain2music.stimuli.audio import read_audio, resample

    enc = None if name == "mfcc-stats" else get_encoder(name)
    key = hashlib.sha1(repr((name, enc.config if enc else "librosa-mfcc20", items)).encode()).hexdigest()[:12]
    path = cache / f"{name}-{key}.npy" if cache else None
    if path is not None and path.exists():
        return np.load(path)
    out = []
    t0 = time.process_time()
    for i, start in items:
        audio, sr = read_audio(tracks[i].path, mono=True, offset=start, duration=EXCERPT)
        if enc is None:
            out.append(mfcc_stats(resample(audio, sr, 22050), 22050))
        else:
            out.append(enc.embed(audio, sr).mean(axis=0))
    cpu = time.process_time() - t0
    print(f"  {name}: {len(items)} excerpts in {cpu:.0f} s CPU (reading and decoding included)")
    X = np.stack(out)
    if path is not None:
        cache.mkdir(parents=True, exist_ok=True)
        np.save(path, X)
    return X


def nn_accuracy(
    X: np.ndarray, labels: np.ndarray, groups: np.ndarray, queries: np.ndarray, gallery: np.ndarray
):
    """Per-query hit (1-NN by cosine over z-scored dims, excluding the query's own track)."""
    used = queries | gallery
    Z = X.copy()
    mu, sd = Z[used].mean(axis=0), Z[used].std(axis=0)
    Z = (Z - mu) / np.where(sd > 0, sd, 1.0)
    Z /= np.maximum(np.linalg.norm(Z, axis=1, keepdims=True), 1e-12)
    S = Z[queries] @ Z.T
    q = np.flatnonzero(queries)
    S[:, ~gallery] = -np.inf
    S[groups[q][:, None] == groups[None, :]] = -np.inf
    return labels[S.argmax(axis=1)] == labels[q], groups[q]


def score(hits: np.ndarray, track_of: np.ndarray, n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Accuracy over queries and its bootstrap standard error over tracks."""
    rng = np.random.default_rng(seed)
    tracks = np.unique(track_of)
    per = {t: hits[track_of == t] for t in tracks}
    boots = []
    for _ in range(n_boot):
        pick = rng.choice(tracks, len(tracks))
        boots.append(np.concatenate([per[t] for t in pick]).mean())
    return float(hits.mean()), float(np.std(boots))


def evaluate(X, labels, groups, held_track):
    """``{"dev": (acc, se), "held-out": (acc, se), "chance": ...}`` for excerpt features ``X``."""
    held = held_track[groups]
    out = {}
    hits, g = nn_accuracy(X, labels, groups, ~held, ~held)
    out["dev"] = score(hits, g)
    hits, g = nn_accuracy(X, labels, groups, held, np.ones_like(held))
    out["held-out"] = score(hits, g)
    rng = np.random.default_rng(1)
    track_labels = {t: labels[groups == t][0] for t in np.unique(groups)}
    chance = []
    for _ in range(20):
        perm = dict(zip(track_labels, rng.permutation(list(track_labels.values()))))
        shuffled = np.array([perm[t] for t in groups])
        chance.append(nn_accuracy(X, shuffled, groups, held, np.ones_like(held))[0].mean())
    out["chance"] = (float(np.mean(chance)), float(np.std(chance)))
    return out


def main(argv=None) -> int:
    from real_music import real_tracks

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--encoders", default="acoustic,mfcc-stats,musicnn-msd")
    p.add_argument("--cache", default="/tmp/b2m-real-music", help="feature cache folder ('' for none)")
    args = p.parse_args(argv)
    tracks = real_tracks()
    items = excerpts(tracks)
    groups = np.array([i for i, _ in items])
    labels = np.array([tracks[i].collection for i, _ in items])
    held_track = split(tracks)
    print(f"load average at start: {os.getloadavg()}")
    counts = {str(c): int((labels == c).sum()) for c in dict.fromkeys(labels)}
    print(f"{len(tracks)} tracks ({held_track.sum()} held out), {len(items)} excerpts of 15 s: {counts}")
    rows = []
    for name in args.encoders.split(","):
        X = features(name, tracks, items, Path(args.cache) if args.cache else None)
        rows.append((name, X.shape[1], evaluate(X, labels, groups, held_track)))
    print(f"\n{'encoder':14s} {'dim':>5s} {'dev (choices)':>15s} {'held-out':>15s} {'shuffled':>15s}")
    for name, dim, r in rows:
        cells = [f"{r[k][0]:.3f} ± {r[k][1]:.3f}" for k in ("dev", "held-out", "chance")]
        print(f"{name:14s} {dim:5d} " + " ".join(f"{c:>15s}" for c in cells))
    print(f"load average at end: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
