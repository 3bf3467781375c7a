"""What ``brain2music embed`` does: an audio folder through :func:`~brain2music.embeddings.embed_folder`, or
a captions CSV through :func:`~brain2music.embeddings.embed_captions` when the encoder embeds text."""

from __future__ import annotations

import os
from typing import Any

from brain2music.embeddings.batch import EmbeddingSet, embed_folder
from brain2music.embeddings.captions import embed_captions
from brain2music.embeddings.registry import encoder_modality, get_encoder
from brain2music.errors import ConfigError

__all__ = ["embed_source"]


def embed_source(
    source: str | os.PathLike,
    encoder: str = "acoustic",
    *,
    out: str | os.PathLike,
    bids: str | os.PathLike | None = None,
    ds003720: bool = False,
    encoder_options: dict[str, Any] | None = None,
    **kwargs,
) -> EmbeddingSet:
    """What ``brain2music embed`` does: embed a stimulus/audio folder, or a captions CSV with a text encoder.

    Parameters
    ----------
    source
        Folder of audio (see :func:`embed_folder`), or the captions CSV when ``encoder`` embeds text.
    encoder, encoder_options
        Registry name and constructor options (``model``, ``device``, ``batch_size``, ...).
    out
        Output ``.npz`` (written atomically).
    bids
        BIDS root of the experiment whose clips to embed from the GTZAN-layout ``source``.
    ds003720
        Use the packaged design of the real ds003720 (for the real GTZAN) instead of ``bids``.
    **kwargs
        Passed to :func:`embed_clips` (``cache_dir``, ``scheduler``, ``workers``, ``on_error``, ...).
    """
    options = {k: v for k, v in (encoder_options or {}).items() if v is not None}
    if encoder_modality(encoder) == "text":
        clip_ids = None
        if bids is not None or ds003720:
            from brain2music.embeddings.clips import experiment_clips

            table = experiment_clips(bids) if bids is not None else _packaged_clips()
            clip_ids = table.clip_id.tolist()
        return embed_captions(source, encoder, clip_ids=clip_ids, out=out, **options)
    if bids is not None and ds003720:
        raise ConfigError("pass either --bids or --ds003720, not both")
    enc = get_encoder(encoder, **options)
    design = _packaged_clips() if ds003720 else None
    return embed_folder(source, enc, bids=bids, design=design, out=out, **kwargs)


def _packaged_clips():
    from brain2music.data import clip_table, packaged_design

    return clip_table(packaged_design())
