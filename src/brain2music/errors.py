"""The package's error types.

Every error a user can trigger with bad input is one of these. They subclass the built-in type a Python
user would expect (``ValueError``, ``FileNotFoundError``, ``ImportError``) so ``except ValueError`` keeps
working, and all of them subclass :class:`Brain2MusicError` so the CLI can print them without a traceback.
"""

from __future__ import annotations


class Brain2MusicError(Exception):
    """Base class of every error raised on purpose by brain2music."""


class DataError(Brain2MusicError, ValueError):
    """Input data (a file, an array, an argument) is not what was expected.

    The message names the file or argument, what was expected and what was found.
    """


class DataFileNotFoundError(Brain2MusicError, FileNotFoundError):
    """A file the dataset layout requires is missing. The message names the path."""


class ConfigError(Brain2MusicError, ValueError):
    """An experiment configuration or command-line option is invalid."""


class LockTimeout(DataError):
    """A lock on a shared file or folder could not be taken in time; the message names it and its holder."""


class ConcurrentWriterError(LockTimeout):
    """Another process is already writing a folder that allows one writer at a time."""


class MissingDependencyError(Brain2MusicError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


def require(module: str, extra: str, purpose: str):
    """Import ``module`` or raise :class:`MissingDependencyError` naming the extra that provides it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(
            f"{purpose} needs the optional dependency {module!r}, which is not installed. "
            f"Install it with: pip install 'brain2music[{extra}]'"
        ) from exc


def hub_cache_dir() -> str:
    """The Hugging Face hub cache this process reads (``HF_HUB_CACHE``, else ``HF_HOME/hub``)."""
    import os

    return os.environ.get("HF_HUB_CACHE") or os.path.join(
        os.environ.get("HF_HOME", os.path.expanduser("~/.cache/huggingface")), "hub"
    )


def missing_checkpoint(
    purpose: str, checkpoint, exc: Exception, *, kind: str | None = None
) -> DataFileNotFoundError:
    """The error for a model checkpoint that cannot be loaded offline: where it was looked for, how to get it.

    ``kind`` names the model class (e.g. ``ClapModel``); the caller raises the result ``from exc``.
    """
    import os

    local = os.path.isdir(str(checkpoint))
    where = f"the local folder {checkpoint}" if local else f"the Hugging Face cache ({hub_cache_dir()})"
    first = str(exc).splitlines()[0] if str(exc) else ""
    what = f" ({kind})" if kind else ""
    return DataFileNotFoundError(
        f"{purpose}: checkpoint {str(checkpoint)!r}{what} could not be loaded from {where} without network "
        f"({type(exc).__name__}: {first}). Get it on a machine with network with "
        f"`huggingface-cli download {checkpoint}` and copy the cache folder here (or set HF_HOME), or pass "
        "the path of a local folder holding the checkpoint."
    )


def incompatible_checkpoint(
    purpose: str, checkpoint, exc: Exception, *, kind: str | None = None
) -> DataError:
    """The error for a checkpoint that is on disk but cannot be built with the installed transformers."""
    import transformers

    first = str(exc).splitlines()[0] if str(exc) else ""
    what = f" ({kind})" if kind else ""
    return DataError(
        f"{purpose}: checkpoint {str(checkpoint)!r}{what} was found but could not be built with transformers "
        f"{transformers.__version__} ({type(exc).__name__}: {first}). Its code or config was written for "
        "another transformers version: code shipped with a checkpoint (trust_remote_code) reads config "
        "attributes that newer versions added or renamed. Pin a revision of the checkpoint that supports "
        "this version, or install the transformers version its model card names."
    )
