"""The presentation design of a simulated study, following the rules of ds003720.

- Every genre has ``clips_per_genre`` training tracks and ``test_clips_per_genre`` test tracks, numbered
  ``0 .. n-1`` per genre (GTZAN stems ``<genre>.000NN``); which numbers are test tracks is random.
- Training: the training clips are dealt round-robin per genre to ``train_runs`` runs (so every run has
  about the same number of clips of each genre) and shuffled within each run. Row 0 of run k repeats the
  last clip of run k-1; row 0 of run 1 repeats the last clip of the last run.
- Test: the test clips are dealt to ``test_runs`` runs the same way; a run with clips ``U`` (n of them) has
  ``n * test_repeats + 1`` rows, row i playing ``U[i mod n]``, so dropping row 0 leaves every test clip
  ``test_repeats`` times.
- Onsets 0, 15, 30, …; duration 15 s; ``start`` (the excerpt's start in the 30-s track) is uniform in
  [0, 15] s with 2 decimals, fixed per clip; ``end = start + 15``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from brain2music.data.events import GENRES, clip_id

__all__ = ["CLIP_DURATION", "make_design", "runs_from_tracks", "write_events"]

CLIP_DURATION = 15.0


def _deal(per_genre: dict[str, list[int]], n_runs: int, rng: np.random.Generator) -> list[list[tuple]]:
    """Deal each genre's clips round-robin to runs (continuing where the previous genre stopped)."""
    runs: list[list[tuple]] = [[] for _ in range(n_runs)]
    k = 0
    for genre in GENRES:
        for track in per_genre.get(genre, []):
            runs[k % n_runs].append((genre, track))
            k += 1
    for run in runs:
        order = rng.permutation(len(run))
        run[:] = [run[i] for i in order]
    return runs


def make_design(
    *,
    clips_per_genre: int,
    test_clips_per_genre: int,
    train_runs: int,
    test_runs: int,
    test_repeats: int,
    rng: np.random.Generator,
) -> tuple[pd.DataFrame, dict[tuple[str, int], pd.DataFrame]]:
    """Draw the tracks and the run tables of a study.

    Returns
    -------
    tracks : DataFrame, one row per track: ``genre, track, clip_id, split, start``.
    runs : ``{("train" | "test", run_number): events DataFrame}`` with columns
        ``onset, duration, genre, track, start, end`` (genre unquoted).
    """
    n_tracks = clips_per_genre + test_clips_per_genre
    rows, train_tracks, test_tracks = [], {}, {}
    for genre in GENRES:
        order = rng.permutation(n_tracks)
        test = sorted(int(t) for t in order[:test_clips_per_genre])
        train = sorted(int(t) for t in order[test_clips_per_genre:])
        train_tracks[genre] = list(rng.permutation(train))
        test_tracks[genre] = list(rng.permutation(test))
        for t in range(n_tracks):
            rows.append(
                {
                    "genre": genre,
                    "track": t,
                    "clip_id": clip_id(genre, t),
                    "split": "test" if t in test else "train",
                    "start": round(float(rng.uniform(0.0, 30.0 - CLIP_DURATION)), 2),
                }
            )
    tracks = pd.DataFrame(rows)
    return tracks, runs_from_tracks(
        tracks,
        train_order=train_tracks,
        test_order=test_tracks,
        train_runs=train_runs,
        test_runs=test_runs,
        test_repeats=test_repeats,
        rng=rng,
    )


def runs_from_tracks(
    tracks: pd.DataFrame,
    *,
    train_order: dict[str, list[int]],
    test_order: dict[str, list[int]],
    train_runs: int,
    test_runs: int,
    test_repeats: int,
    rng: np.random.Generator,
) -> dict[tuple[str, int], pd.DataFrame]:
    """The run tables for a track table (``genre, track, start``) and each genre's training/test tracks in
    the order they are dealt to runs (genres may be missing or hold different numbers of tracks)."""
    start = {(r.genre, r.track): r.start for r in tracks.itertuples()}

    def table(clips: list[tuple]) -> pd.DataFrame:
        n = len(clips)
        starts = [start[c] for c in clips]
        return pd.DataFrame(
            {
                "onset": np.arange(n) * CLIP_DURATION,
                "duration": np.full(n, CLIP_DURATION),
                "genre": [g for g, _ in clips],
                "track": [int(t) for _, t in clips],
                "start": starts,
                "end": [round(s + CLIP_DURATION, 2) for s in starts],
            }
        )

    runs: dict[tuple[str, int], pd.DataFrame] = {}
    train = _deal(train_order, train_runs, rng)
    for k, clips in enumerate(train):
        previous = train[k - 1][-1]  # k = 0 wraps to the last run's last clip, as in ds003720
        runs[("train", k + 1)] = table([previous] + clips)
    test = _deal(test_order, test_runs, rng)
    for k, clips in enumerate(test):
        n = len(clips)
        runs[("test", k + 1)] = table([clips[i % n] for i in range(n * test_repeats + 1)])
    return runs


def write_events(path, events: pd.DataFrame) -> None:
    """Write an events table like the real ds003720 files: tab-separated, CRLF, genre quoted (``'disco'``)."""
    from brain2music._io import write_text

    lines = ["onset\tduration\tgenre\ttrack\tstart\tend"]
    for r in events.itertuples():
        lines.append(f"{r.onset:g}\t{r.duration:g}\t'{r.genre}'\t{int(r.track)}\t{r.start:.2f}\t{r.end:.2f}")
    write_text(path, "\r\n".join(lines) + "\r\n")
