"""Old import path of :mod:`brain2music.reconstruct.clip_embedding` (kept for existing scripts)."""

from brain2music.reconstruct.clip_embedding import (  # noqa: F401
    clip_embedding,
    encoder_config,
    encoder_name,
    prepare_clip,
    resolve_encoder,
)
