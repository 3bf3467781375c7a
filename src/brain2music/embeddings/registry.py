"""The encoder registry: ``get_encoder(name, **kwargs)`` and ``list_encoders()``.

Plug-ins register a factory under a name; neural factories import torch only when called, so listing the
encoders or using ``acoustic`` never needs the ``neural`` extra.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from brain2music.embeddings.base import Encoder
from brain2music.errors import ConfigError

__all__ = ["get_encoder", "list_encoders", "register_encoder", "describe_encoders", "encoder_metric_space"]


@dataclass(frozen=True)
class _Entry:
    factory: Callable[..., Encoder]
    description: str
    modality: str
    metric_space: str = "paper"


_REGISTRY: dict[str, _Entry] = {}


def register_encoder(
    name: str,
    factory: Callable[..., Encoder],
    *,
    description: str = "",
    modality: str = "audio",
    metric_space: str = "paper",
) -> None:
    """Register ``factory(**kwargs) -> Encoder`` under ``name`` (replacing an earlier entry).

    ``metric_space`` is the space its identification accuracies are computed in by default
    (:mod:`brain2music.evaluate.space`): ``"paper"`` (raw vectors, as Eq. 2-3 of the paper; the right
    choice for learned embeddings) or ``"standardized"`` (dimensions z-scored with training statistics;
    only for embeddings whose dimensions are in fixed physical units).
    """
    if modality not in ("audio", "text"):
        raise ConfigError(f"modality must be 'audio' or 'text', got {modality!r}")
    if metric_space not in ("paper", "standardized"):
        raise ConfigError(f"metric_space must be 'paper' or 'standardized', got {metric_space!r}")
    _REGISTRY[name] = _Entry(factory, description, modality, metric_space)


def list_encoders() -> list[str]:
    """Names of the registered encoders, sorted."""
    return sorted(_REGISTRY)


def describe_encoders() -> dict[str, str]:
    """``{name: one-line description}`` of the registered encoders."""
    return {name: _REGISTRY[name].description for name in list_encoders()}


def encoder_modality(name: str) -> str:
    """``"audio"`` or ``"text"``: what the named encoder embeds (no model is loaded)."""
    return _entry(name).modality


def encoder_metric_space(name: str) -> str:
    """The default metric space of the encoder registered as ``name``; ``"paper"`` for unregistered names
    (precomputed embeddings of an encoder this installation does not know)."""
    return _REGISTRY[name].metric_space if name in _REGISTRY else "paper"


def _entry(name: str) -> _Entry:
    if name not in _REGISTRY:
        raise ConfigError(f"unknown encoder {name!r}; known encoders: {', '.join(list_encoders())}")
    return _REGISTRY[name]


def get_encoder(name: str | Encoder, **kwargs) -> Encoder:
    """The encoder registered as ``name``, built with ``kwargs`` (an :class:`Encoder` is returned as is).

    >>> get_encoder("acoustic").n_windows
    10
    """
    if isinstance(name, Encoder):
        if kwargs:
            raise ConfigError(
                f"got an encoder object and options {sorted(kwargs)}; pass options to its constructor"
            )
        return name
    entry = _entry(name)
    try:
        return entry.factory(**kwargs)
    except TypeError as exc:
        if "unexpected keyword" in str(exc):
            raise ConfigError(f"encoder {name!r}: {exc}") from exc
        raise


def _clap(**kw):
    from brain2music.embeddings.neural import ClapEncoder

    return ClapEncoder(**kw)


def _clap_text(**kw):
    from brain2music.embeddings.neural import ClapTextEncoder

    return ClapTextEncoder(**kw)


def _encodec(**kw):
    from brain2music.embeddings.neural import EncodecEncoder

    return EncodecEncoder(**kw)


def _mert(**kw):
    from brain2music.embeddings.neural import MertEncoder

    return MertEncoder(**kw)


def _musicnn(model: str) -> Callable[..., Encoder]:
    def factory(**kw):
        from brain2music.embeddings.musicnn import MusicnnEncoder

        return MusicnnEncoder(model, **kw)

    return factory


def _register_builtins() -> None:
    from brain2music.embeddings.acoustic import AcousticEncoder, DebugEncoder

    register_encoder(
        "acoustic",
        AcousticEncoder,
        description="librosa music descriptors, 102-d, 1.5-s windows (r=10); no weights",
        metric_space="standardized",  # dB, Hz, rates: dimensions in fixed units of very different size
    )
    register_encoder(
        "debug",
        DebugEncoder,
        description="4 signal statistics, 1.5-s windows (r=10); for tests",
        metric_space="standardized",
    )
    register_encoder(
        "clap", _clap, description="CLAP audio (laion/larger_clap_music), 512-d, 10-s windows (r=4)"
    )
    register_encoder(
        "clap-text",
        _clap_text,
        modality="text",
        description="CLAP text tower for captions, 512-d, one 15-s window (r=1)",
    )
    register_encoder(
        "encodec",
        _encodec,
        description="EnCodec latent (facebook/encodec_24khz), 128-d, 1.5-s windows (r=10)",
    )
    for name, what in (
        (
            "musicnn-msd",
            "musicnn MSD tagger (pretrained, weights from the musicnn package), penultimate 200-d",
        ),
        ("musicnn-mtt", "musicnn MagnaTagATune tagger (pretrained), penultimate 200-d"),
        ("musicnn-vgg-msd", "VGG MSD tagger of the musicnn package (pretrained), pool5 256-d"),
        ("musicnn-vgg-mtt", "VGG MagnaTagATune tagger of the musicnn package (pretrained), pool5 256-d"),
    ):
        register_encoder(name, _musicnn(name), description=f"{what}, 3-s windows (r=9); layer=...; no torch")
    register_encoder(
        "mert", _mert, description="MERT-v1 layer 7 (m-a-p/MERT-v1-95M, trust_remote_code), 5-s windows (r=7)"
    )


_register_builtins()
