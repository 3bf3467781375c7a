"""Placing and loading transformers models: the device and dtype a model runs in, checkpoints read from
the local cache only (errors say how to get a missing one), and hashes that identify a model's weights.

Shared by the neural encoders (:mod:`brain2music.embeddings.neural`) and the neural generators
(:mod:`brain2music.reconstruct.generators.neural`); torch and transformers are imported when called.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

from brain2music.errors import (
    ConfigError,
    hub_cache_dir,
    incompatible_checkpoint,
    missing_checkpoint,
    require,
)

__all__ = [
    "DTYPES",
    "clap_space_id",
    "is_pipeline_checkpoint",
    "load_pretrained",
    "resolve_device",
    "resolve_dtype",
]


def _torch(purpose: str):
    require("transformers", "neural", purpose)
    return require("torch", "neural", purpose)


# -- placement ---------------------------------------------------------------------------------------------
DTYPES = ("float32", "float16", "bfloat16")


def resolve_device(device: str | None, *, purpose: str = "neural model") -> str:
    """``None``/``"auto"`` → ``"cuda"`` when torch sees a GPU, else ``"cpu"``; an explicit device is checked.

    ``"mps"`` (Apple GPUs) is never chosen automatically: some audio operators still fall back to the CPU
    there, so it is opt-in.
    """
    torch = _torch(purpose)
    text = "auto" if device is None else str(device).strip()
    if text == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if text == "cpu":
        return text
    if text == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise ConfigError(
                f"{purpose}: device 'mps' was asked for, but this torch build sees no MPS device"
            )
        return text
    if text == "cuda" or (text.startswith("cuda:") and text[5:].isdigit()):
        if not torch.cuda.is_available():
            raise ConfigError(
                f"{purpose}: device {text!r} was asked for, but torch {torch.__version__} sees no CUDA GPU "
                "(a CPU-only build, or no driver); use --device cpu or install a CUDA build of torch"
            )
        index = int(text[5:]) if ":" in text else 0
        if index >= torch.cuda.device_count():
            raise ConfigError(
                f"{purpose}: device {text!r} was asked for, but torch sees {torch.cuda.device_count()} GPU(s)"
            )
        return text
    raise ConfigError(f"{purpose}: device must be auto, cpu, cuda, cuda:N or mps; got {device!r}")


def resolve_dtype(dtype: str | None, device: str, *, purpose: str = "neural model") -> str:
    """``None``/``"auto"`` → ``"float16"`` on a CUDA device (half the memory, several times the speed on
    tensor cores), else ``"float32"``; an explicit name must be one of :data:`DTYPES`."""
    text = "auto" if dtype is None else str(dtype).strip().replace("torch.", "")
    if text == "auto":
        return "float16" if device.startswith("cuda") else "float32"
    if text not in DTYPES:
        raise ConfigError(f"{purpose}: dtype must be auto, {', '.join(DTYPES)}; got {dtype!r}")
    return text


# -- loading -----------------------------------------------------------------------------------------------
def load_pretrained(
    class_name: str,
    checkpoint: str | os.PathLike,
    *,
    purpose: str,
    trust_remote_code: bool = False,
    **kwargs: Any,
):
    """``transformers.<class_name>.from_pretrained(checkpoint, local_files_only=True, **kwargs)``, with errors
    that say what to do: a missing checkpoint (``OSError``/``ValueError``) names it and how to fetch it; one
    whose code does not fit the installed transformers (``AttributeError``/``TypeError``/``ImportError``
    raised while building it) says so instead of leaving a traceback from inside the library."""
    transformers = require("transformers", "neural", purpose)
    cls = getattr(transformers, class_name)
    kwargs["local_files_only"] = True
    if trust_remote_code:
        kwargs["trust_remote_code"] = True
    try:
        return cls.from_pretrained(str(checkpoint), **kwargs)
    except (OSError, ValueError) as exc:
        raise missing_checkpoint(purpose, checkpoint, exc, kind=class_name) from exc
    except (AttributeError, TypeError, ImportError) as exc:
        raise incompatible_checkpoint(purpose, checkpoint, exc, kind=class_name) from exc


def is_pipeline_checkpoint(checkpoint: str | os.PathLike) -> bool:
    """Whether ``checkpoint`` (a folder or a hub id in the local cache) is a diffusers pipeline (has
    ``model_index.json``), e.g. MusicLDM, whose CLAP lives in its ``text_encoder`` subfolder."""
    if os.path.isdir(str(checkpoint)):
        return os.path.isfile(os.path.join(str(checkpoint), "model_index.json"))
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - ships with transformers
        return False
    found = try_to_load_from_cache(str(checkpoint), "model_index.json", cache_dir=hub_cache_dir())
    return isinstance(found, str)


def _fingerprint(model) -> str:
    """Hash of an injected model's config and weights, so cache keys tell two random models apart."""
    h = hashlib.sha256()
    cfg = getattr(model, "config", None)
    if cfg is not None:
        h.update(cfg.to_json_string(use_diff=False).encode())
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def clap_space_id(model) -> str:
    """Identity of a CLAP model's embedding space: a hash of its audio and text projection weights.

    Two CLAPs give comparable embeddings only if they are the same model, and the projections (the last
    layers into the shared space) tell two checkpoints apart cheaply. Weights are rounded to float16
    first, so a model loaded in half precision has the same identity as its float32 original.
    """
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        if name.startswith(("audio_projection.", "text_projection.")):
            h.update(name.encode())
            h.update(tensor.detach().to("cpu").half().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]
