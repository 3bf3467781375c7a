"""Generators: target embedding → new audio. One protocol (:class:`Generator`), one registry.

Registered names:

- ``debug``: instant sine chords keyed on the target (tests, dry runs);
- ``offline``: the simulator's composer steered towards the target by a learned map + search (no weights);
- ``musicldm``: diffusers ``MusicLDMPipeline`` conditioned on the CLAP embedding as ``prompt_embeds``;
- ``musicgen``: transformers MusicGen from a text prompt built from the nearest captions/tags;
- ``mosaic``: concatenative synthesis from a ``coverage="full"`` library's real recordings (no weights);
- ``best-of``: wraps another generator, keeps the best of ``n`` candidates by embedding score.
"""

from __future__ import annotations

from brain2music.reconstruct.generators.base import (
    BestOfN,
    DebugGenerator,
    Generator,
    check_generator_options,
    cosine_scores,
    describe_generators,
    generator_parameters,
    get_generator,
    list_generators,
    register_generator,
    resolve_generator_options,
    target_vector,
)

__all__ = [
    "BestOfN",
    "DebugGenerator",
    "Generator",
    "check_generator_options",
    "cosine_scores",
    "generator_parameters",
    "get_generator",
    "describe_generators",
    "list_generators",
    "register_generator",
    "resolve_generator_options",
    "target_vector",
]


def _offline(**kw):
    from brain2music.reconstruct.generators.offline import OfflineGenerator

    if "encoder" not in kw:
        from brain2music.errors import ConfigError

        raise ConfigError("generator 'offline' needs encoder= (the encoder whose embeddings it targets)")
    return OfflineGenerator(**kw)


def _best_of(*, base="offline", encoder=None, n=8, scorer=None, **base_kw):
    from brain2music.errors import ConfigError

    if encoder is None:
        raise ConfigError("generator 'best-of' needs encoder= (to score the candidates)")
    from brain2music.reconstruct.clip_embedding import resolve_encoder

    encoder = resolve_encoder(encoder)
    if isinstance(base, str) and base in ("offline", "mosaic"):
        base_kw.setdefault("encoder", encoder)
    return BestOfN(get_generator(base, **base_kw), encoder, n=n, scorer=scorer)


def _mosaic(**kw):
    from brain2music.reconstruct.generators.mosaic import MosaicGenerator

    if kw.get("library") is None:
        from brain2music.errors import ConfigError

        raise ConfigError("generator 'mosaic' needs library= (a music library built with --coverage full)")
    return MosaicGenerator(**kw)


def _mosaic_class():
    from brain2music.reconstruct.generators.mosaic import MosaicGenerator

    return MosaicGenerator


def _musicldm(**kw):
    from brain2music.reconstruct.generators.neural import MusicLDMGenerator

    return MusicLDMGenerator(**kw)


def _musicgen(**kw):
    from brain2music.reconstruct.generators.neural import MusicGenGenerator

    return MusicGenGenerator(**kw)


def _neural(cls: str):
    # The module imports torch/diffusers only inside functions, so reading a signature stays cheap.
    from brain2music.reconstruct.generators import neural

    return getattr(neural, cls)


def _offline_class():
    from brain2music.reconstruct.generators.offline import OfflineGenerator

    return OfflineGenerator


register_generator("debug", DebugGenerator, description="sine chords keyed on the target; for tests")
register_generator(
    "offline",
    _offline,
    description="simulator composer + learned map + search; no weights",
    signature_of=_offline_class,
)
register_generator(
    "best-of", _best_of, description="best of n candidates of another generator by embedding score"
)
register_generator(
    "mosaic",
    _mosaic,
    description="concatenative synthesis from a library's real recordings; no weights",
    signature_of=_mosaic_class,
)
register_generator(
    "musicldm",
    _musicldm,
    description="diffusers MusicLDM conditioned on a CLAP embedding",
    signature_of=lambda: _neural("MusicLDMGenerator"),
)
register_generator(
    "musicgen",
    _musicgen,
    description="MusicGen from a text prompt of the nearest captions",
    signature_of=lambda: _neural("MusicGenGenerator"),
)
