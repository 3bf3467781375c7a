"""Captions of the stimuli (Brain2Music, Kaggle ``nishimotolab/music-caption-brain2music``) → text embeddings.

The CSV has columns ``ID`` (e.g. ``blues.00017_15s``) and ``DescEN`` (the English caption). IDs are
mapped to clip ids (``blues.00017``): the ``_15s`` suffix is dropped and the track number re-padded to five
digits, which also repairs the one mistyped ID of the release (``disco.000011`` → ``disco.00011``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd

from brain2music.embeddings.batch import EmbeddingSet
from brain2music.embeddings.registry import get_encoder
from brain2music.errors import ConfigError, DataError, DataFileNotFoundError

__all__ = ["read_captions", "caption_clip_id", "embed_captions"]

_ID_RE = re.compile(r"^\s*(?P<genre>[A-Za-z]+)\.(?P<track>\d+)(?:_\d+(?:\.\d+)?s)?\s*$")


def caption_clip_id(raw: str) -> str | None:
    """``"blues.00017_15s"`` → ``"blues.00017"``; ``"disco.000011"`` → ``"disco.00011"``; else ``None``."""
    m = _ID_RE.match(str(raw))
    if not m:
        return None
    return f"{m['genre'].lower()}.{int(m['track']):05d}"


def read_captions(
    path: str | os.PathLike, *, id_column: str = "ID", text_column: str = "DescEN"
) -> pd.DataFrame:
    """Read a captions CSV into a table ``clip_id, caption, raw_id`` (one row per clip, file order)."""
    path = Path(path)
    if not path.is_file():
        raise DataFileNotFoundError(f"captions file not found: {path}")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"{path}: cannot read as a CSV file ({exc})") from exc
    missing = [c for c in (id_column, text_column) if c not in table.columns]
    if missing:
        raise DataError(
            f"{path}: lacks column(s) {missing}; expected {id_column!r} and {text_column!r}, "
            f"found {list(table.columns)}"
        )
    ids = []
    for row, raw in enumerate(table[id_column]):
        cid = caption_clip_id(raw)
        if cid is None:
            raise DataError(
                f"{path}: row {row + 2} has {id_column} {raw!r}; expected a clip id like 'blues.00017_15s'"
            )
        ids.append(cid)
    out = pd.DataFrame(
        {"clip_id": ids, "caption": table[text_column].str.strip(), "raw_id": table[id_column]}
    )
    empty = out.loc[out.caption == "", "raw_id"].tolist()
    if empty:
        raise DataError(f"{path}: {len(empty)} caption(s) are empty, e.g. for {empty[:5]}")
    dup = out.loc[out.clip_id.duplicated(), "clip_id"].tolist()
    if dup:
        raise DataError(f"{path}: clip(s) {dup[:5]} have more than one caption; expected one per clip")
    return out


def embed_captions(
    path: str | os.PathLike,
    encoder="clap-text",
    *,
    clip_ids: list[str] | None = None,
    out: str | os.PathLike | None = None,
    **encoder_kwargs,
):
    """Embed the captions of a CSV with a text encoder: an :class:`EmbeddingSet` ``(n_clips, 1, dim)``.

    ``clip_ids`` restricts (and orders) the clips; one without a caption is an error. ``out`` saves the
    result as ``.npz`` atomically.
    """
    enc = get_encoder(encoder, **encoder_kwargs)
    if enc.modality != "text":
        raise ConfigError(
            f"encoder {enc.name!r} embeds audio; captions need a text encoder such as 'clap-text'"
        )
    table = read_captions(path)
    if clip_ids is not None:
        index = table.set_index("clip_id")
        lacking = [c for c in clip_ids if c not in index.index]
        if lacking:
            raise DataError(f"{path}: no caption for {len(lacking)} clip(s), e.g. {lacking[:5]}")
        table = index.loc[list(clip_ids)].reset_index()
    embeddings = enc.embed_texts(table.caption.tolist())
    config = dict(enc.config)
    config["source"] = {"captions": str(path), "n_captions": len(table)}
    result = EmbeddingSet(table.clip_id.to_numpy(dtype=str), embeddings, config)
    if out is not None:
        result.save(out)
    return result
