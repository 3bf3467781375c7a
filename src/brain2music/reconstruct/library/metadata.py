"""Track metadata for a library: FMA's ``tracks.csv``, a metadata table, or the file names."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from brain2music.errors import DataError, DataFileNotFoundError


def read_fma_tracks(path: str | os.PathLike) -> pd.DataFrame:
    """Read FMA's ``tracks.csv`` (3 header rows) → DataFrame indexed by int track id with title, artist, genre."""
    path = Path(path)
    try:
        raw = pd.read_csv(path, index_col=0, header=[0, 1], low_memory=False)
    except Exception as exc:
        raise DataError(f"{path}: cannot read as FMA tracks.csv ({exc})") from exc
    wanted = {("track", "title"): "title", ("artist", "name"): "artist", ("track", "genre_top"): "genre"}
    missing = [f"{a}.{b}" for a, b in wanted if (a, b) not in raw.columns]
    if missing:
        raise DataError(
            f"{path}: not an FMA tracks.csv; expected 3 header rows with columns track.title, "
            f"artist.name, track.genre_top, missing {', '.join(missing)}"
        )
    out = raw[list(wanted)].copy()
    out.columns = list(wanted.values())
    out.index = pd.to_numeric(out.index, errors="coerce")
    out = out[out.index.notna()]
    out.index = out.index.astype(np.int64)
    return out.fillna("").astype(str)


def _find_fma_metadata(music_dir: Path) -> Path | None:
    # FMA ships fma_metadata/tracks.csv beside fma_large/; also accept it inside or next to the folder.
    for cand in (
        music_dir / "tracks.csv",
        music_dir / "fma_metadata" / "tracks.csv",
        music_dir.parent / "tracks.csv",
        music_dir.parent / "fma_metadata" / "tracks.csv",
    ):
        if cand.is_file():
            return cand
    return None


def _read_metadata_table(path: Path) -> pd.DataFrame:
    """A plain metadata CSV (columns ``path`` or ``track_id``, and any of title/artist/genre), or FMA's."""
    with open(path, encoding="utf-8", errors="replace") as fh:
        head = [fh.readline() for _ in range(3)]
    if head[0].startswith(",") and "track" in head[0] and "track_id" in head[2]:
        tab = read_fma_tracks(path)
        tab.index = tab.index.astype(str).str.zfill(6)
        return tab
    tab = pd.read_csv(path, dtype=str).fillna("")
    key = "path" if "path" in tab.columns else "track_id" if "track_id" in tab.columns else None
    if key is None:
        raise DataError(
            f"{path}: a metadata table needs a 'path' or 'track_id' column; found {list(tab.columns)}"
        )
    return tab.set_index(key)


def describe_file(path: Path, music_dir: Path, meta: pd.DataFrame | None) -> dict:
    """The metadata row of one audio file of a library build.

    ``track_id`` and ``title`` default to the file stem, ``genre`` to a GTZAN genre named by the stem's
    prefix (``blues.00012.wav``) or the parent folder. When ``meta`` is given, its first row whose index is
    the path relative to ``music_dir``, the full path, the stem, or the stem without or with zero-padding to
    6 digits (FMA's ids) fills ``title``, ``artist`` and ``genre`` where non-empty.

    Returns
    -------
    dict with ``path`` (resolved), ``track_id``, ``title``, ``artist``, ``genre``.
    """
    from brain2music.data.events import GENRES

    stem = path.stem
    info = {"path": str(path.resolve()), "track_id": stem, "title": stem, "artist": "", "genre": ""}
    prefix = stem.split(".")[0]
    if prefix in GENRES:  # GTZAN naming: blues.00012.wav
        info["genre"] = prefix
    elif path.parent.name in GENRES:
        info["genre"] = path.parent.name
    if meta is not None:
        rel = str(path.relative_to(music_dir)) if path.is_relative_to(music_dir) else str(path)
        for key in (rel, str(path), stem, stem.lstrip("0") or "0", stem.zfill(6)):
            if key in meta.index:
                row = meta.loc[key]
                if isinstance(row, pd.DataFrame):
                    row = row.iloc[0]
                for col in ("title", "artist", "genre"):
                    if col in row.index and str(row[col]):
                        info[col] = str(row[col])
                break
    return info


def load_metadata(metadata, music_dir: Path) -> pd.DataFrame | None:
    """The metadata table of a library build, indexed by path or track id, or ``None``.

    ``metadata`` may be a DataFrame (used as it is), a path to a metadata CSV (columns ``path`` or
    ``track_id`` and any of title/artist/genre) or FMA's ``tracks.csv``, or ``None``: FMA's ``tracks.csv``
    found in or next to ``music_dir`` (``fma_metadata/tracks.csv``), else no table.

    Raises
    ------
    DataFileNotFoundError
        When a given path is not a file.
    DataError
        When the table has neither a ``path`` nor a ``track_id`` column, or is an unreadable FMA table.
    """
    if metadata is None:
        found = _find_fma_metadata(music_dir)
        return _read_metadata_table(found) if found else None
    if isinstance(metadata, pd.DataFrame):
        return metadata
    path = Path(metadata)
    if not path.is_file():
        raise DataFileNotFoundError(f"metadata table not found: {path}")
    return _read_metadata_table(path)
