"""Music embeddings: one encoder protocol, the paper's windows, batch extraction with a cache.

Typical use::

    from brain2music.embeddings import get_encoder, embed_folder
    enc = get_encoder("acoustic")            # or "musicnn-msd", "clap", "encodec", "mert", "clap-text", "debug"
    enc.sr, enc.dim, enc.window, enc.n_windows
    emb = enc.embed(audio, sr)               # (r, dim) float32
    result = embed_folder("stimuli", "acoustic", bids="bids_root", out="acoustic.npz")
    result.embeddings.shape                  # (n_clips, r, dim)

See :mod:`brain2music.embeddings.acoustic` for the weight-free descriptor vector and
:mod:`brain2music.embeddings.neural` for the transformers stand-ins of the paper's embeddings and
:mod:`brain2music.embeddings.musicnn` for the pretrained musicnn taggers (numpy, weights from the
``musicnn`` package).
"""

from brain2music.embeddings.base import Encoder
from brain2music.embeddings.batch import (
    EmbeddingCache,
    EmbeddingSet,
    default_cache_dir,
    embed_clips,
    embed_folder,
    load_embeddings,
    local_cluster,
)
from brain2music.embeddings.captions import embed_captions, read_captions
from brain2music.embeddings.clips import (
    AudioClip,
    clips_from_bids,
    clips_from_design,
    clips_from_folder,
    experiment_clips,
)
from brain2music.embeddings.registry import (
    describe_encoders,
    encoder_metric_space,
    get_encoder,
    list_encoders,
    register_encoder,
)
from brain2music.embeddings.source import embed_source

__all__ = [
    "AudioClip",
    "EmbeddingCache",
    "EmbeddingSet",
    "Encoder",
    "clips_from_bids",
    "clips_from_design",
    "clips_from_folder",
    "default_cache_dir",
    "describe_encoders",
    "embed_captions",
    "embed_clips",
    "embed_folder",
    "embed_source",
    "encoder_metric_space",
    "experiment_clips",
    "get_encoder",
    "list_encoders",
    "load_embeddings",
    "local_cluster",
    "read_captions",
    "register_encoder",
]
