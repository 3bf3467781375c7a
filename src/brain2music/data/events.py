"""Reading ``*_events.tsv`` files of ds003720 and building the clip design from them.

The real files have quirks that this module absorbs:

- lines end in CRLF;
- ``genre`` is quoted (``'disco'``), and in some rows one quote is missing (``classical'``);
- in ``Training_run-12`` one row has ``end - start = 14.99``: the clip length is taken from ``duration``;
- row 0 of a training run repeats the previous run's last clip; row 0 of a test run repeats the run's
  last clip. Both are dropped (:func:`build_design`).

Clips are identified by ``f"{genre}.{track:05d}"``, the GTZAN file stem.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pandas as pd

from brain2music.errors import DataError, DataFileNotFoundError

GENRES: tuple[str, ...] = (
    "blues",
    "classical",
    "country",
    "disco",
    "hiphop",
    "jazz",
    "metal",
    "pop",
    "reggae",
    "rock",
)
"""The 10 GTZAN genres, in alphabetical order (the order used for genre indices everywhere)."""

EVENT_COLUMNS = ("onset", "duration", "genre", "track", "start", "end")


def clip_id(genre: str, track: int) -> str:
    """The clip key used everywhere: the GTZAN file stem, e.g. ``clip_id("disco", 9) == "disco.00009"``."""
    return f"{genre}.{int(track):05d}"


def _clean_genre(value: object, path: Path, row: int) -> str:
    text = str(value).strip().strip("'\"").strip().lower()
    if text not in GENRES:
        raise DataError(
            f"{path}: row {row + 1} has genre {value!r}; expected one of the 10 GTZAN genres {list(GENRES)}"
        )
    return text


def read_events(path: str | os.PathLike) -> pd.DataFrame:
    """Read one ``*_events.tsv`` into a table with a clean ``genre`` and a ``clip_id`` column.

    Returns a DataFrame with columns ``onset, duration, genre, track, start, end, clip_id`` (one row per
    presented clip, in presentation order). ``end`` is recomputed as ``start + duration``.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFileNotFoundError(f"events file not found: {path}")
    try:
        raw = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not a UTF-8 text file ({exc})") from exc
    text = raw.replace("\r\n", "\n").replace("\r", "\n")
    try:
        table = pd.read_csv(io.StringIO(text), sep="\t", dtype=str, keep_default_na=False, quoting=3)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"{path}: cannot parse as a tab-separated events table ({exc})") from exc
    table.columns = [str(c).strip().lower() for c in table.columns]
    missing = [c for c in EVENT_COLUMNS if c not in table.columns]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {missing}; expected columns {list(EVENT_COLUMNS)}, "
            f"found {list(table.columns)}"
        )
    if len(table) == 0:
        raise DataError(f"{path}: the events table has no rows")
    out = pd.DataFrame(index=range(len(table)))
    for col in ("onset", "duration", "start"):
        values = pd.to_numeric(table[col].str.strip(), errors="coerce")
        bad = np.flatnonzero(values.isna().to_numpy())
        if bad.size:
            raise DataError(
                f"{path}: column {col!r} row {bad[0] + 1} is {table[col].iloc[bad[0]]!r}; expected a number"
            )
        out[col] = values.astype(float).to_numpy()
    track = pd.to_numeric(table["track"].str.strip(), errors="coerce")
    bad = np.flatnonzero(track.isna().to_numpy() | (track.fillna(0) % 1 != 0).to_numpy())
    if bad.size:
        raise DataError(
            f"{path}: column 'track' row {bad[0] + 1} is {table['track'].iloc[bad[0]]!r}; "
            "expected a whole number"
        )
    out["genre"] = [_clean_genre(v, path, i) for i, v in enumerate(table["genre"])]
    out["track"] = track.astype(int).to_numpy()
    # The real files store end = start + 15 except one row of 14.99 s: trust the duration column.
    out["end"] = out["start"] + out["duration"]
    out["clip_id"] = [clip_id(g, t) for g, t in zip(out["genre"], out["track"])]
    if np.any(out["duration"] <= 0):
        raise DataError(f"{path}: non-positive duration in the events table")
    return out[["onset", "duration", "genre", "track", "start", "end", "clip_id"]]


def build_design(
    train_events: dict[int, pd.DataFrame],
    test_events: dict[int, pd.DataFrame],
    *,
    source: str = "events",
) -> pd.DataFrame:
    """Build the table of presentations that enter the analysis from the events of every run.

    Parameters
    ----------
    train_events, test_events
        ``{run_number: events table}`` as returned by :func:`read_events`.
    source
        A name for error messages (e.g. the subject folder).

    Returns
    -------
    DataFrame with one row per kept presentation: ``split`` (``"train"``/``"test"``), ``run``, ``row``
    (row in the run's events), ``onset``, ``duration``, ``clip_id``, ``genre``, ``track``, ``start``,
    ``repeat`` (0-based presentation index of the clip within its split). Row 0 of every run is dropped.
    """
    rows = []
    for split, runs in (("train", train_events), ("test", test_events)):
        for run in sorted(runs):
            ev = runs[run]
            if len(ev) < 2:
                raise DataError(
                    f"{source}: {split} run {run} has {len(ev)} event row(s); expected at least 2"
                )
            kept = ev.iloc[1:].copy()
            kept.insert(0, "row", np.arange(1, len(ev)))
            kept.insert(0, "run", run)
            kept.insert(0, "split", split)
            rows.append(kept)
    if not rows:
        raise DataError(f"{source}: no runs found")
    design = pd.concat(rows, ignore_index=True)
    design["repeat"] = design.groupby(["split", "clip_id"]).cumcount()
    train_ids = set(design.loc[design.split == "train", "clip_id"])
    test_ids = set(design.loc[design.split == "test", "clip_id"])
    both = sorted(train_ids & test_ids)
    if both:
        raise DataError(
            f"{source}: {len(both)} clip(s) appear in both training and test runs, e.g. {both[:5]}; "
            "a clip must belong to one split only"
        )
    starts = design.groupby("clip_id")["start"].nunique()
    if (starts > 1).any():
        clash = list(starts[starts > 1].index[:5])
        raise DataError(f"{source}: clip(s) {clash} are presented with different start times")
    return design


def clip_table(design: pd.DataFrame) -> pd.DataFrame:
    """One row per unique clip: ``clip_id, genre, track, start, duration, split, run`` (first presentation).

    Training clips come first in presentation order, then test clips in order of first presentation.
    """
    first = design.drop_duplicates(["split", "clip_id"]).copy()
    first["order"] = first["split"].map({"train": 0, "test": 1})
    first = first.sort_values(["order", "run", "row"], kind="stable")
    cols = ["clip_id", "genre", "track", "start", "duration", "split", "run"]
    return first[cols].reset_index(drop=True)
