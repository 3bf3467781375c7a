"""Find and load the pretrained musicnn checkpoints without importing (or installing) TensorFlow.

The ``musicnn`` 0.1.0 wheel (ISC licence) ships TF1 checkpoints of four taggers in its package folder:
``MTT_musicnn``, ``MTT_vgg`` (MagnaTagATune, 50 tags), ``MSD_musicnn`` and ``MSD_vgg`` (Million Song
Dataset, 50 tags). Importing ``musicnn`` imports TensorFlow, so the folder is found through the package's
installed metadata (``importlib.metadata``) or, failing that, by looking for ``musicnn/<model>/.index``
on ``sys.path``. Install it with ``pip install --no-deps musicnn``: its metadata pins ``numpy<1.17``,
which no current environment can honour, and brain2music needs none of its dependencies.

Where the weights are read from, first match wins: the ``weights`` argument (``--weights DIR``: a model
folder holding ``.index`` and ``.data-00000-of-00001``, or a folder holding ``<model>/``), the
environment variable ``BRAIN2MUSIC_MUSICNN_WEIGHTS`` (same meaning), the installed package.
"""

from __future__ import annotations

import os
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np

from brain2music.embeddings.musicnn.checkpoint import CheckpointReader
from brain2music.embeddings.musicnn.network import ARCHITECTURES, expected_shapes
from brain2music.errors import ConfigError, DataError, DataFileNotFoundError, MissingDependencyError

__all__ = ["MODELS", "INSTALL_HINT", "find_package_dir", "model_dir", "load_weights"]

MODELS = tuple(ARCHITECTURES)
INSTALL_HINT = "pip install --no-deps musicnn"
ENV_VAR = "BRAIN2MUSIC_MUSICNN_WEIGHTS"


def _check_model(model: str) -> None:
    if model not in ARCHITECTURES:
        raise ConfigError(f"unknown musicnn model {model!r}; expected one of {', '.join(MODELS)}")


def find_package_dir() -> Path | None:
    """The installed ``musicnn`` package folder (found without importing it), or ``None``."""
    from importlib import metadata

    try:
        dist = metadata.distribution("musicnn")
    except metadata.PackageNotFoundError:
        dist = None
    if dist is not None:
        for f in dist.files or []:
            if f.name == "models.py" and f.parent.name == "musicnn":
                folder = Path(dist.locate_file(f)).parent
                if folder.is_dir():
                    return folder
    for entry in sys.path:
        folder = Path(entry or ".") / "musicnn"
        if (folder / "models.py").is_file():
            return folder
    return None


def _checkpoint_in(folder: Path, model: str) -> Path | None:
    for candidate in (folder, folder / model):
        if (candidate / ".index").is_file() or any(candidate.glob("*.index")):
            return candidate
    return None


def model_dir(model: str, weights: str | os.PathLike | None = None) -> Path:
    """The folder holding the checkpoint of ``model`` (see the module docstring for the search order)."""
    _check_model(model)
    given = weights if weights is not None else os.environ.get(ENV_VAR) or None
    if given is not None:
        folder = Path(given).expanduser()
        if not folder.is_dir():
            raise DataFileNotFoundError(f"musicnn weights folder {folder} does not exist")
        found = _checkpoint_in(folder, model)
        if found is None:
            raise DataFileNotFoundError(
                f"no TensorFlow checkpoint of {model} in {folder}: expected {folder}/.index (a model "
                f"folder of the musicnn package) or {folder / model}/.index"
            )
        return found
    package = find_package_dir()
    if package is None:
        raise MissingDependencyError(
            f"the pretrained {model} weights come from the musicnn package, which is not installed. "
            f"Install it with: {INSTALL_HINT}  (or pass --weights DIR / set {ENV_VAR})"
        )
    found = _checkpoint_in(package, model)
    if found is None:
        raise DataFileNotFoundError(
            f"the installed musicnn package ({package}) has no checkpoint of {model}; "
            f"expected {package / model}/.index. Reinstall it with: {INSTALL_HINT}"
        )
    return found


def _check_dataset(folder: Path, model: str) -> None:
    """MSD and MTT checkpoints have the same tensors; the package's ``config.json`` says which is which."""
    import json

    path = folder / "config.json"
    if not path.is_file():
        return
    try:
        ident = str(json.loads(path.read_text())["audio_rep"]["identifier"]).lower()
    except (ValueError, KeyError, TypeError):
        return  # not musicnn's training config: nothing to check against
    want = model.split("_")[0].lower()
    if not ident.startswith(want):
        raise DataError(
            f"the checkpoint in {folder} was trained on {ident.split('_')[0].upper()} ({path}), not "
            f"{want.upper()} as {model} needs; pass the {model} folder as --weights"
        )


@lru_cache(maxsize=8)
def _load(folder: str, model: str) -> dict[str, np.ndarray]:
    _check_dataset(Path(folder), model)
    reader = CheckpointReader(folder)
    weights: dict[str, np.ndarray] = {}
    for name, shape in expected_shapes(model).items():
        if name not in reader:
            raise DataError(
                f"checkpoint {reader.index_path} lacks tensor {name!r} of the {model} architecture "
                f"(is it a checkpoint of another model?)"
            )
        found = reader.entries[name].shape
        if found != shape:
            raise DataError(
                f"checkpoint {reader.index_path}: tensor {name!r} has shape {found}, the {model} "
                f"architecture expects {shape}"
            )
        value = reader.read(name).astype(np.float32)
        if not np.all(np.isfinite(value)):
            raise DataError(f"checkpoint {reader.index_path}: tensor {name!r} holds NaN or infinite values")
        weights[name] = value
    return weights


def load_weights(model: str, weights: str | os.PathLike | None = None) -> dict[str, np.ndarray]:
    """``{tensor name: float32 array}`` of every weight ``model``'s forward pass needs (shapes checked).

    Cached per folder: loading again is free. The arrays are shared; do not modify them.
    """
    folder = model_dir(model, weights)
    return _load(str(folder.resolve()), model)
