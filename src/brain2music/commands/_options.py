"""The options every stage gives encoders and generators: one parser, one meaning, for every command.

``--encoder-option KEY=VALUE`` (repeatable) goes to every encoder of the run that takes ``KEY``;
``--encoder-option NAME:KEY=VALUE`` goes to encoder ``NAME`` only. ``--generator-option`` is the same for
the generator. ``--device`` (``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``) and ``--dtype`` (``auto``,
``float32``, ``float16``, ``bfloat16``) place every neural model of the run; weight-free encoders ignore
them. Values are read as JSON-like literals: ``7`` → int, ``0.5`` → float, ``true``/``false`` → bool,
``none``/``null`` → None, ``[a, b]`` or ``{...}`` → JSON, anything else → the string as typed. Keys may
use ``-`` for ``_`` (``trust-remote-code``).

The module holds parsing only; what an encoder takes is checked by
:func:`brain2music.embeddings.registry.resolve_encoder_options` (and its generator twin), before any model
is loaded, with an error naming the option and what the encoder takes.
"""

from __future__ import annotations

import argparse
import json
import re
from typing import Any

from brain2music.errors import ConfigError

__all__ = [
    "DEVICE_HELP",
    "DTYPE_CHOICES",
    "add_encoder_options",
    "add_generator_options",
    "add_placement_options",
    "add_scheduler_option",
    "encoder_options",
    "generator_options",
    "parse_options",
    "parse_value",
    "raw_encoder_options",
]

DTYPE_CHOICES = ("auto", "float32", "float16", "bfloat16")
DEVICE_HELP = "auto (default: cuda when available, else cpu), cpu, cuda, cuda:N or mps"
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")


def parse_value(text: str) -> Any:
    """``"7"`` → 7, ``"0.5"`` → 0.5, ``"true"`` → True, ``"none"`` → None, ``"[1, 2]"`` → [1, 2], else the text."""
    value = text.strip()
    low = value.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    if value[:1] in "[{":
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"option value {text!r} looks like JSON but does not parse ({exc})") from None
    return value


def parse_options(items: list[str] | None, *, flag: str = "--encoder-option") -> dict[str, Any]:
    """``["k=v", "name:k=v"]`` → ``{"k": v, "name": {"k": v}}`` (the mapping the registries resolve).

    Raises :class:`ConfigError` naming ``flag`` and the item for anything that is not ``[NAME:]KEY=VALUE``.
    """
    out: dict[str, Any] = {}
    for item in items or []:
        head, sep, value = item.partition("=")
        scope, colon, key = head.rpartition(":")
        key = key.strip().replace("-", "_")
        scope = scope.strip()
        if not sep or not _KEY.match(key) or (colon and not scope):
            raise ConfigError(
                f"{flag}: expected KEY=VALUE or NAME:KEY=VALUE (e.g. {flag} trust_remote_code=true or "
                f"{flag} mert:layer=7), got {item!r}"
            )
        target = out.setdefault(scope, {}) if scope else out
        if not isinstance(target, dict):
            raise ConfigError(f"{flag}: {scope!r} is given both as an option and as a name in {item!r}")
        target[key] = parse_value(value)
    return out


def _device(text: str) -> str:
    if not _DEVICE.match(text.strip()):
        raise argparse.ArgumentTypeError(f"expected {DEVICE_HELP}; got {text!r}")
    return text.strip()


def add_placement_options(parser) -> None:
    """``--device`` and ``--dtype`` (for every neural encoder and generator of the run)."""
    parser.add_argument(
        "--device", type=_device, default=None, metavar="DEVICE", help=f"torch device: {DEVICE_HELP}"
    )
    parser.add_argument(
        "--dtype",
        choices=DTYPE_CHOICES,
        default=None,
        help="model precision: auto (default: float16 on cuda, float32 elsewhere), float32, float16, bfloat16",
    )


def add_encoder_options(parser, *, placement: bool = True) -> None:
    """``--encoder-option [NAME:]KEY=VALUE`` (repeatable), and ``--device``/``--dtype`` unless ``placement=False``."""
    parser.add_argument(
        "--encoder-option",
        action="append",
        default=None,
        metavar="[NAME:]KEY=VALUE",
        help="encoder option, repeatable; NAME: limits it to one encoder (e.g. trust_remote_code=true, "
        "model=/models/clap, mert:layer=7, batch_size=16)",
    )
    if placement:
        add_placement_options(parser)


def add_generator_options(parser) -> None:
    """``--generator-option KEY=VALUE`` (repeatable); ``--device``/``--dtype`` come with the encoder options."""
    parser.add_argument(
        "--generator-option",
        action="append",
        default=None,
        metavar="KEY=VALUE",
        help="generator option, repeatable (e.g. num_inference_steps=100, aligner=aligner.npz, n_bank=40)",
    )


def _placement(args) -> dict[str, Any]:
    return {"device": getattr(args, "device", None), "dtype": getattr(args, "dtype", None)}


def raw_encoder_options(args) -> dict[str, Any]:
    """``--encoder-option`` items plus ``--device``/``--dtype``, unchecked: for a stage that learns the
    encoder's name later (e.g. from a library), where :meth:`MusicLibrary.make_encoder` checks them."""
    options = parse_options(getattr(args, "encoder_option", None), flag="--encoder-option")
    options.update({k: v for k, v in _placement(args).items() if v is not None})
    return options


def encoder_options(args, names: list[str] | str, *, extra: dict[str, Any] | None = None) -> dict:
    """Per-encoder keyword arguments from a parsed command line: ``{name: kwargs}`` (one name: its kwargs).

    ``extra`` holds options a command's own flags set (e.g. ``--checkpoint``); ``--encoder-option`` wins.
    """
    from brain2music.embeddings.registry import resolve_encoder_options

    options = dict(extra or {})
    options.update(parse_options(getattr(args, "encoder_option", None), flag="--encoder-option"))
    single = isinstance(names, str)
    resolved = resolve_encoder_options([names] if single else list(names), options, **_placement(args))
    return resolved[names] if single else resolved


def generator_options(args, name: str, *, extra: dict[str, Any] | None = None) -> dict:
    """Keyword arguments of generator ``name`` from a parsed command line (see :func:`encoder_options`)."""
    from brain2music.reconstruct.generators import resolve_generator_options

    options = dict(extra or {})
    options.update(parse_options(getattr(args, "generator_option", None), flag="--generator-option"))
    return resolve_generator_options(name, options, **_placement(args))


def add_scheduler_option(parser: argparse.ArgumentParser, *, runs: str, threads: bool = False) -> None:
    """``--scheduler`` with the one default of every stage and its Python API: ``none`` (this process).

    ``runs`` says what one task is (``"clips, in chunks"``); ``threads`` adds the Dask thread pool to the
    documented choices for stages that accept it.
    """
    pool = "threads (a Dask thread pool), " if threads else ""
    parser.add_argument(
        "--scheduler",
        default=None,
        help=f"where {runs} run: none (default, this process), {pool}local (a Dask LocalCluster on this "
        "machine) or a Dask scheduler address such as tcp://host:8786 (workers must see the data and the output)",
    )
