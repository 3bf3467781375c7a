"""The encoder registry: ``get_encoder(name, **kwargs)`` and ``list_encoders()``.

Plug-ins register a factory under a name; neural factories import torch only when called, so listing the
encoders or using ``acoustic`` never needs the ``neural`` extra.

Options. Every stage passes encoder options the same way (CLI ``--encoder-option KEY=VALUE``,
``--device``, ``--dtype``; config file ``embeddings.options``): :func:`encoder_parameters` lists what an
encoder takes (read from its constructor, no model loaded), :func:`resolve_encoder_options` turns a run's
options into each encoder's keyword arguments and refuses, before any weights load, an option that the
encoder it is meant for does not take.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from brain2music._registry import Registry
from brain2music.embeddings.base import Encoder
from brain2music.errors import ConfigError

__all__ = [
    "PLACEMENT_OPTIONS",
    "check_encoder_options",
    "describe_encoders",
    "encoder_metric_space",
    "encoder_parameters",
    "encoder_target",
    "get_encoder",
    "list_encoders",
    "register_encoder",
    "resolve_encoder_options",
]

#: Options that say where a model runs rather than what it computes: given for a whole run (``--device``,
#: ``--dtype``), they reach only the encoders that take them (a weight-free encoder has no device).
PLACEMENT_OPTIONS = ("device", "dtype")


@dataclass(frozen=True)
class _Entry:
    factory: Callable[..., Encoder]
    description: str
    modality: str
    metric_space: str = "paper"
    signature_of: Callable[[], Callable] | None = None


_REGISTRY: Registry[_Entry] = Registry("encoder")


def register_encoder(
    name: str,
    factory: Callable[..., Encoder],
    *,
    description: str = "",
    modality: str = "audio",
    metric_space: str = "paper",
    signature_of: Callable[[], Callable] | None = None,
) -> None:
    """Register ``factory(**kwargs) -> Encoder`` under ``name`` (replacing an earlier entry).

    ``metric_space`` is the space its identification accuracies are computed in by default
    (:mod:`brain2music.evaluate.space`): ``"paper"`` (raw vectors, as Eq. 2-3 of the paper; the right
    choice for learned embeddings) or ``"standardized"`` (dimensions z-scored with training statistics;
    only for embeddings whose dimensions are in fixed physical units).
    ``signature_of`` returns the callable whose signature lists the options (e.g. the encoder class, imported
    lazily) when ``factory`` itself only forwards ``**kwargs``; by default the factory's own signature.
    """
    if modality not in ("audio", "text"):
        raise ConfigError(f"modality must be 'audio' or 'text', got {modality!r}")
    if metric_space not in ("paper", "standardized"):
        raise ConfigError(f"metric_space must be 'paper' or 'standardized', got {metric_space!r}")
    _REGISTRY.register(name, _Entry(factory, description, modality, metric_space, signature_of))


def list_encoders() -> list[str]:
    """Names of the registered encoders, sorted."""
    return _REGISTRY.names()


def describe_encoders() -> dict[str, str]:
    """``{name: one-line description}`` of the registered encoders."""
    return {name: _REGISTRY.get(name).description for name in list_encoders()}


def encoder_modality(name: str) -> str:
    """``"audio"`` or ``"text"``: what the named encoder embeds (no model is loaded)."""
    return _entry(name).modality


def encoder_metric_space(name: str) -> str:
    """The default metric space of the encoder registered as ``name``; ``"standardized"`` for unregistered
    names (precomputed embeddings of an encoder this installation does not know: dimensions of unknown
    units, each z-scored with training statistics)."""
    return _REGISTRY.get(name).metric_space if name in _REGISTRY else "standardized"


def _entry(name: str) -> _Entry:
    return _REGISTRY.get(name)


def encoder_parameters(name: str) -> dict[str, Any]:
    """``{option: default}`` the encoder ``name`` takes (its constructor's keyword arguments).

    Read from the signature, so no model is loaded and torch is not imported. A required argument has the
    default ``inspect.Parameter.empty``.

    >>> sorted(encoder_parameters("debug"))
    ['clip_duration', 'window']
    """
    return {
        k: p.default
        for k, p in _signature(name).parameters.items()
        if k != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }


def encoder_target(name: str) -> Callable:
    """The callable whose signature lists encoder ``name``'s options (usually its class; nothing is loaded)."""
    entry = _entry(name)
    return entry.signature_of() if entry.signature_of is not None else entry.factory


def _signature(name: str) -> inspect.Signature:
    return inspect.signature(encoder_target(name))


def _takes(name: str, key: str) -> bool:
    """Whether encoder ``name`` takes option ``key`` (any key, for a factory of bare ``**kwargs``)."""
    params = _signature(name).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return True
    return key in encoder_parameters(name)


def check_encoder_options(name: str, options: Mapping[str, Any], *, source: str = "") -> None:
    """Raise :class:`ConfigError` when ``options`` holds a key the encoder ``name`` does not take.

    ``source`` says where the options came from (e.g. ``"--encoder-option"``) for the message.
    """
    takes = encoder_parameters(name)
    unknown = [k for k in options if not _takes(name, k)]
    if unknown:
        where = f" (from {source})" if source else ""
        raise ConfigError(
            f"encoder {name!r} does not take option(s) {', '.join(repr(k) for k in unknown)}{where}; "
            f"it takes: {', '.join(takes) or 'no options'}"
        )


def _split_scoped(options: Mapping[str, Any] | None) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Split run options into unscoped ones and ``{encoder: {...}}`` ones (keys that are encoder names)."""
    unscoped: dict[str, Any] = {}
    scoped: dict[str, dict[str, Any]] = {}
    for key, value in (options or {}).items():
        if key in _REGISTRY:
            if not isinstance(value, Mapping):
                raise ConfigError(
                    f"options for encoder {key!r} must be a mapping of option: value, got {value!r}"
                )
            scoped.setdefault(key, {}).update(value)
        else:
            unscoped[key] = value
    return unscoped, scoped


def resolve_encoder_options(
    names: Sequence[str],
    options: Mapping[str, Any] | None = None,
    *,
    device: str | None = None,
    dtype: str | None = None,
    source: str = "--encoder-option",
) -> dict[str, dict[str, Any]]:
    """Each encoder's keyword arguments from the options of a run that uses the encoders ``names``.

    Parameters
    ----------
    names
        Registry names of the encoders of the run.
    options
        ``{option: value}`` meant for every encoder of the run, and ``{encoder_name: {option: value}}``
        for one encoder (its own values win). An unscoped option goes to every encoder that takes it and
        must be taken by at least one; a scoped option must be taken by its encoder.
    device, dtype
        Placement for the whole run (:data:`PLACEMENT_OPTIONS`): given to the encoders that take them,
        unless an option already sets them.

    Returns
    -------
    ``{name: kwargs}`` for :func:`get_encoder`. Raises :class:`ConfigError` for an option no encoder takes,
    naming the option, the encoder and what it takes.
    """
    names = list(dict.fromkeys(names))
    for n in names:
        _entry(n)
    unscoped, scoped = _split_scoped(options)
    for n in scoped:
        if n not in names:
            raise ConfigError(
                f"{source}: options for encoder {n!r}, which this run does not use (encoders: {', '.join(names)})"
            )
    takes = {n: encoder_parameters(n) for n in names}
    orphans = [k for k in unscoped if not any(_takes(n, k) for n in names)]
    if orphans:
        if len(names) == 1:
            check_encoder_options(names[0], {k: unscoped[k] for k in orphans}, source=source)
        raise ConfigError(
            f"{source}: no encoder of this run ({', '.join(names)}) takes option(s) "
            f"{', '.join(repr(k) for k in orphans)}; "
            + "; ".join(f"{n!r} takes: {', '.join(takes[n]) or 'no options'}" for n in names)
        )
    out: dict[str, dict[str, Any]] = {}
    for n in names:
        own = dict(scoped.get(n, {}))
        check_encoder_options(n, own, source=f"{source} {n}:...")
        kwargs = {k: v for k, v in unscoped.items() if _takes(n, k)}
        kwargs.update(own)
        for key, value in (("device", device), ("dtype", dtype)):
            if value is not None and key in takes[n]:
                kwargs.setdefault(key, value)
        out[n] = kwargs
    return out


def get_encoder(name: str | Encoder, **kwargs) -> Encoder:
    """The encoder registered as ``name``, built with ``kwargs`` (an :class:`Encoder` is returned as is).

    An option the encoder does not take raises :class:`ConfigError` before anything is loaded.

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
    check_encoder_options(name, kwargs)
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


def _musicnn_options():
    """MusicnnEncoder with its ``model`` bound (the registry name sets it): the options a user gives."""
    import functools

    from brain2music.embeddings.musicnn import MusicnnEncoder

    return functools.partial(MusicnnEncoder, "musicnn-msd")


def _neural(cls: str):
    # The module imports torch only inside functions, so reading a signature stays cheap.
    from brain2music.embeddings import neural

    return getattr(neural, cls)


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
        "clap",
        _clap,
        description="CLAP audio (laion/larger_clap_music), 512-d, 10-s windows (r=4)",
        signature_of=lambda: _neural("ClapEncoder"),
    )
    register_encoder(
        "clap-text",
        _clap_text,
        modality="text",
        description="CLAP text tower for captions, 512-d, one 15-s window (r=1)",
        signature_of=lambda: _neural("ClapTextEncoder"),
    )
    register_encoder(
        "encodec",
        _encodec,
        description="EnCodec latent (facebook/encodec_24khz), 128-d, 1.5-s windows (r=10)",
        signature_of=lambda: _neural("EncodecEncoder"),
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
        register_encoder(
            name,
            _musicnn(name),
            description=f"{what}, 3-s windows (r=9); layer=...; no torch",
            signature_of=_musicnn_options,
        )
    register_encoder(
        "mert",
        _mert,
        description="MERT-v1 layer 7 (m-a-p/MERT-v1-95M, trust_remote_code), 5-s windows (r=7)",
        signature_of=lambda: _neural("MertEncoder"),
    )


_register_builtins()
