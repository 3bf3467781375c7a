"""Dry run of the neural path: load every checkpoint a run names and report what is missing.

``--check`` on ``embed``, ``library build`` (and ``run`` for a config file) calls these: each encoder and
generator is built exactly as the real run would build it (same options, same ``local_files_only``
loading), which reads every weight file, but nothing is embedded or generated. Each outcome is one
:class:`CheckResult`; :func:`print_check` prints them as a table and gives the exit status (0: all usable).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from brain2music.errors import (
    Brain2MusicError,
    ConfigError,
    DataError,
    DataFileNotFoundError,
    MissingDependencyError,
)

__all__ = ["CheckResult", "check_component", "check_encoders", "check_generator", "print_check"]


@dataclass
class CheckResult:
    """What loading one component found.

    Attributes
    ----------
    kind : {"encoder", "generator"}
    name : str
        Registry name.
    checkpoint : str or None
        The checkpoint it loads (None for a component without weights).
    status : {"ok", "no weights", "missing", "incompatible", "missing dependency", "bad option"}
    message : str
        The error message when not usable (it says how to fix it), else a short description.
    seconds : float
        Time the load took.
    size_bytes : int or None
        Disk size of the checkpoint when found (local folder or Hugging Face cache entry).
    """

    kind: str
    name: str
    checkpoint: str | None
    status: str
    message: str
    seconds: float
    size_bytes: int | None = None

    @property
    def ok(self) -> bool:
        """Whether the component is usable: status ``"ok"`` or ``"no weights"`` (nothing to load)."""
        return self.status in ("ok", "no weights")

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict, with ``ok`` added."""
        return {**asdict(self), "ok": self.ok}


def _status(exc: Exception) -> str:
    if isinstance(exc, DataFileNotFoundError):
        return "missing"
    if isinstance(exc, MissingDependencyError):
        return "missing dependency"
    if isinstance(exc, ConfigError):
        return "bad option"
    if isinstance(exc, DataError):
        return "incompatible"
    return "error"


def _size(checkpoint: str | None) -> int | None:
    """Bytes on disk of a local checkpoint folder or of its Hugging Face cache entry (None if unknown)."""
    if not checkpoint:
        return None
    if os.path.isdir(checkpoint):
        return sum(
            os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(checkpoint) for f in files
        )
    try:
        from huggingface_hub import scan_cache_dir

        from brain2music.errors import hub_cache_dir

        for repo in scan_cache_dir(hub_cache_dir()).repos:
            if repo.repo_id == checkpoint:
                return int(repo.size_on_disk)
    except Exception:  # noqa: BLE001 - the size is a courtesy; a cache it cannot scan is not an error
        return None
    return None


def _run(kind: str, name: str, checkpoint: str | None, build) -> CheckResult:
    t0 = time.perf_counter()
    try:
        obj = build()
    except Brain2MusicError as exc:
        return CheckResult(kind, name, checkpoint, _status(exc), str(exc), time.perf_counter() - t0)
    seconds = time.perf_counter() - t0
    if checkpoint is None:
        # Weights that ship inside a package (musicnn) show up only in the built object's config.
        cfg = getattr(obj, "config", None)
        model = cfg.get("model") if isinstance(cfg, dict) else None
        if model is None:
            return CheckResult(kind, name, None, "no weights", "runs without a checkpoint", seconds)
        return CheckResult(kind, name, str(model), "ok", repr(obj), seconds)
    return CheckResult(kind, name, checkpoint, "ok", repr(obj), seconds, _size(checkpoint))


def check_component(kind: str, name: str, checkpoint: str | None, build) -> CheckResult:
    """Call ``build()`` (which loads the component) and report the outcome as a :class:`CheckResult`."""
    return _run(kind, name, checkpoint, build)


def _encoder_checkpoint(name: str, options: Mapping[str, Any]) -> str | None:
    from brain2music.embeddings.registry import encoder_parameters, encoder_target

    if "model" not in encoder_parameters(name):
        return None
    model = options.get("model")
    if model is not None and not isinstance(model, (str, os.PathLike)):
        return "<model object>"
    if model is not None:
        return str(model)
    return str(getattr(encoder_target(name), "default_checkpoint", "") or "<default>")


def check_encoders(options_by_name: Mapping[str, Mapping[str, Any]]) -> list[CheckResult]:
    """Build every encoder ``{name: kwargs}`` (kwargs as :func:`resolve_encoder_options` returns them)."""
    from brain2music.embeddings.registry import get_encoder

    out = []
    for name, options in options_by_name.items():
        checkpoint = _encoder_checkpoint(name, options)
        out.append(_run("encoder", name, checkpoint, lambda n=name, o=options: get_encoder(n, **dict(o))))
    return out


def check_generator(name: str, options: Mapping[str, Any]) -> list[CheckResult]:
    """Build generator ``name`` and load its checkpoints (``load()``), generating nothing."""
    from brain2music.reconstruct.generators import generator_parameters, get_generator

    params = generator_parameters(name)
    checkpoint = None
    if "checkpoint" in params:
        checkpoint = str(options.get("checkpoint") or params["checkpoint"])

    def build():
        gen = get_generator(name, **dict(options))
        if hasattr(gen, "load"):
            gen.load()
        return gen

    return [_run("generator", name, checkpoint, build)]


def _human(n: int | None) -> str:
    if n is None:
        return ""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return ""  # pragma: no cover


def print_check(results: list[CheckResult], *, file=None) -> int:
    """Print one line per component (and the reason for each that is not usable); 0 if all are usable."""
    file = file or sys.stdout
    for r in results:
        where = r.checkpoint or "-"
        size = f", {_human(r.size_bytes)} on disk" if r.size_bytes else ""
        print(f"{r.kind:9s} {r.name:12s} {r.status:18s} {where}{size} ({r.seconds:.1f} s)", file=file)
        if not r.ok:
            print(f"    {r.message}", file=file)
    bad = [r for r in results if not r.ok]
    print(
        f"{len(results) - len(bad)} of {len(results)} components usable"
        + ("" if not bad else f"; fix: {', '.join(r.name for r in bad)}"),
        file=file,
    )
    return 0 if not bad else 1
