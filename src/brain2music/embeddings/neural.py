"""Neural encoders on transformers models: open stand-ins for the paper's closed embeddings.

==============  ======================================  ======  ==  ===========================
registry name   model (default checkpoint)              window  r   stands in for
==============  ======================================  ======  ==  ===========================
``clap``        ClapModel (laion/larger_clap_music)     10 s    4   MuLan-music (512-d)
``clap-text``   ClapModel text tower (same checkpoint)  15 s    1   MuLan-text, for captions
``encodec``     EncodecModel (facebook/encodec_24khz)   1.5 s   10  SoundStream-avg (128-d)
``mert``        MERT-v1 layer 7 (m-a-p/MERT-v1-95M)     5 s     7   w2v-BERT-avg, layer 7
==============  ======================================  ======  ==  ===========================

Every encoder takes either a loaded model (and processor) object — how tests inject tiny random-weight
models — or a checkpoint name / local folder, loaded with ``local_files_only=True``: nothing is downloaded.
A missing checkpoint raises :class:`~brain2music.errors.DataFileNotFoundError` saying which checkpoint is
needed and how to get it. torch and transformers are imported only here (the ``neural`` extra).

A checkpoint given by name is not pickled with the encoder: a Dask worker reloads it from its own cache,
so a cluster ships a few bytes per task instead of the weights.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from brain2music.embeddings.base import Encoder, frame_window_means
from brain2music.errors import ConfigError, DataError, missing_checkpoint, require

__all__ = ["ClapEncoder", "ClapTextEncoder", "EncodecEncoder", "MertEncoder"]

DEFAULT_CLAP = "laion/larger_clap_music"
DEFAULT_ENCODEC = "facebook/encodec_24khz"
DEFAULT_MERT = "m-a-p/MERT-v1-95M"


def _torch(purpose: str):
    require("transformers", "neural", purpose)
    return require("torch", "neural", purpose)


def load_pretrained(
    class_name: str, checkpoint: str | os.PathLike, *, purpose: str, trust_remote_code: bool = False
):
    """``transformers.<class_name>.from_pretrained(checkpoint, local_files_only=True)`` with a helpful error."""
    transformers = require("transformers", "neural", purpose)
    cls = getattr(transformers, class_name)
    kwargs: dict[str, Any] = {"local_files_only": True}
    if trust_remote_code:
        kwargs["trust_remote_code"] = True
    try:
        return cls.from_pretrained(str(checkpoint), **kwargs)
    except (OSError, ValueError) as exc:
        raise missing_checkpoint(purpose, checkpoint, exc, kind=class_name) from exc


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


class _TransformersEncoder(Encoder):
    """Shared loading, device handling and pickling of transformers-based encoders."""

    default_checkpoint = ""
    model_class = "AutoModel"
    processor_class = "AutoProcessor"
    needs_processor = True

    def __init__(
        self,
        model=None,
        processor=None,
        *,
        device: str | None = None,
        batch_size: int = 8,
        trust_remote_code: bool = False,
    ):
        if batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.batch_size = int(batch_size)
        self.device = device or "cpu"
        self.trust_remote_code = bool(trust_remote_code)
        self.checkpoint = self.default_checkpoint if model is None else model
        self._processor_arg = processor
        self._load()

    # -- loading ---------------------------------------------------------------------------------------
    @property
    def _named(self) -> bool:
        return isinstance(self.checkpoint, (str, os.PathLike))

    def _check_trust(self) -> None:
        pass

    def _load(self) -> None:
        torch = _torch(f"the {self.name!r} encoder")
        if self._named:
            self._check_trust()
            model = load_pretrained(
                self.model_class,
                self.checkpoint,
                purpose=f"the {self.name!r} encoder",
                trust_remote_code=self.trust_remote_code,
            )
            self.model_id_ = str(self.checkpoint)
        else:
            model = self.checkpoint
            if not isinstance(model, torch.nn.Module):
                raise ConfigError(
                    f"model of the {self.name!r} encoder must be a checkpoint name, a local folder or a loaded "
                    f"{self.model_class} (torch module), got {type(model).__name__}"
                )
            self.model_id_ = f"{type(model).__name__}:{_fingerprint(model)}"
        processor = self._processor_arg
        if processor is None and self.needs_processor:
            source = self.checkpoint if self._named else getattr(model, "name_or_path", "")
            if not source:
                raise ConfigError(
                    f"the {self.name!r} encoder got a model object without a processor; pass processor= "
                    f"(a {self.processor_class}) as well"
                )
            processor = load_pretrained(
                self.processor_class,
                source,
                purpose=f"the {self.name!r} encoder",
                trust_remote_code=self.trust_remote_code,
            )
        self.model = model.to(self.device).eval()
        self.processor = processor
        self._setup()

    def _setup(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def __getstate__(self):
        state = self.__dict__.copy()
        if self._named:  # workers reload named checkpoints from their own cache
            state["model"] = None
            state["processor"] = None
        else:
            # Weight-normed modules (EnCodec) refuse to pickle; ship class, config and weights instead.
            model = self.model
            state["model"] = None
            state["checkpoint"] = None
            state["_model_state"] = (
                type(model),
                model.config,
                {k: v.cpu() for k, v in model.state_dict().items()},
            )
        return state

    def __setstate__(self, state):
        packed = state.pop("_model_state", None)
        self.__dict__.update(state)
        if packed is not None:
            cls, config, weights = packed
            model = cls(config)
            model.load_state_dict(weights)
            self.checkpoint = model
            self.model = model.to(self.device).eval()
        elif self.model is None:
            self._load()

    def _extra_config(self) -> dict[str, Any]:
        return {"model": self.model_id_}

    def _torch_batches(self, n: int):
        for start in range(0, n, self.batch_size):
            yield slice(start, min(n, start + self.batch_size))

    def _window_audio(self, audio: np.ndarray) -> np.ndarray:
        """``(n_clips, n_samples)`` → ``(n_clips * r, window_samples)`` window excerpts, clip-major."""
        bounds = self.window_samples()
        length = int(round(self.window * self.sr))
        return np.stack([clip[a : a + length] for clip in audio for a, _ in bounds])


def _feature_extractor(processor):
    return getattr(processor, "feature_extractor", processor)


class ClapEncoder(_TransformersEncoder):
    """CLAP audio embeddings (the MuLan-music stand-in): 10-s windows, r = 4, L2-normalised.

    Parameters
    ----------
    model : str, path or ClapModel
        Checkpoint name or folder (default ``laion/larger_clap_music``), or a loaded model.
    processor : ClapProcessor or ClapFeatureExtractor, optional
        Needed with a model object; loaded with the checkpoint otherwise.
    device : str
        ``"cpu"`` (default) or a torch device such as ``"cuda"``.
    batch_size : int
        Windows per forward pass.
    window : float
        Window length (s); 10 gives the paper's r = 4.
    """

    name = "clap"
    model_class = "ClapModel"
    processor_class = "ClapProcessor"
    default_checkpoint = DEFAULT_CLAP

    def __init__(
        self,
        model=None,
        processor=None,
        *,
        device: str | None = None,
        batch_size: int = 8,
        window: float = 10.0,
        clip_duration: float = 15.0,
    ):
        self.window = float(window)
        self.clip_duration = float(clip_duration)
        self._check_window()
        super().__init__(model, processor, device=device, batch_size=batch_size)

    def _setup(self) -> None:
        self.feature_extractor_ = _feature_extractor(self.processor)
        self.sr = int(self.feature_extractor_.sampling_rate)
        self.dim = int(self.model.config.projection_dim)

    def _embed_batch(self, audio: np.ndarray) -> np.ndarray:
        torch = _torch("the 'clap' encoder")
        segments = self._window_audio(audio)
        out = []
        for part in self._torch_batches(len(segments)):
            feats = self.feature_extractor_(list(segments[part]), sampling_rate=self.sr, return_tensors="pt")
            feats = {k: v.to(self.device) for k, v in feats.items()}
            with torch.no_grad():
                out.append(self.model.get_audio_features(**feats).float().cpu().numpy())
        return np.concatenate(out).reshape(len(audio), self.n_windows, self.dim)


class ClapTextEncoder(_TransformersEncoder):
    """CLAP text embeddings of captions (the MuLan-text stand-in): one 15-s window, r = 1, L2-normalised.

    Embeds text with :meth:`embed_texts`; :func:`brain2music.embeddings.embed_captions` embeds the
    Brain2Music captions file. ``processor`` is a ClapProcessor or any tokenizer.
    """

    name = "clap-text"
    modality = "text"
    model_class = "ClapModel"
    processor_class = "AutoTokenizer"
    default_checkpoint = DEFAULT_CLAP
    window = 15.0

    def __init__(
        self,
        model=None,
        processor=None,
        *,
        device: str | None = None,
        batch_size: int = 32,
        max_length: int | None = None,
    ):
        self.max_length = max_length
        super().__init__(model, processor, device=device, batch_size=batch_size)

    def _setup(self) -> None:
        self.tokenizer_ = getattr(self.processor, "tokenizer", self.processor)
        self.dim = int(self.model.config.projection_dim)
        fe = getattr(self.processor, "feature_extractor", None)
        self.sr = int(getattr(fe, "sampling_rate", 48000))

    def _extra_config(self) -> dict[str, Any]:
        return {"model": self.model_id_, "max_length": self.max_length}

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Embed captions: ``(n_texts, 1, dim)`` float32 (one 15-s window per clip)."""
        torch = _torch("the 'clap-text' encoder")
        texts = [str(t) for t in texts]
        if any(not t.strip() for t in texts):
            raise DataError("cannot embed an empty caption")
        out = []
        for part in self._torch_batches(len(texts)):
            tokens = self.tokenizer_(
                texts[part], padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
            )
            tokens = {k: v.to(self.device) for k, v in tokens.items() if k in ("input_ids", "attention_mask")}
            with torch.no_grad():
                out.append(self.model.get_text_features(**tokens).float().cpu().numpy())
        if not out:
            return np.zeros((0, 1, self.dim), dtype=np.float32)
        return np.concatenate(out)[:, None, :].astype(np.float32)


class EncodecEncoder(_TransformersEncoder):
    """EnCodec encoder latents averaged over 1.5-s windows (the SoundStream-avg stand-in), r = 10.

    The whole clip goes through the convolutional encoder once (every frame sees its real context); the
    continuous latent frames (75 per second, 128-d for encodec_24khz, before quantisation) whose centre
    lies in a window are averaged.
    """

    name = "encodec"
    model_class = "EncodecModel"
    default_checkpoint = DEFAULT_ENCODEC
    needs_processor = False

    def __init__(
        self,
        model=None,
        *,
        device: str | None = None,
        batch_size: int = 4,
        window: float = 1.5,
        clip_duration: float = 15.0,
    ):
        self.window = float(window)
        self.clip_duration = float(clip_duration)
        self._check_window()
        super().__init__(model, None, device=device, batch_size=batch_size)

    def _setup(self) -> None:
        cfg = self.model.config
        self.sr = int(cfg.sampling_rate)
        self.dim = int(cfg.hidden_size)
        self.channels_ = int(cfg.audio_channels)
        self.hop_ = int(np.prod(cfg.upsampling_ratios))

    def _embed_batch(self, audio: np.ndarray) -> np.ndarray:
        torch = _torch("the 'encodec' encoder")
        out = []
        for part in self._torch_batches(len(audio)):
            x = torch.from_numpy(audio[part]).to(self.device)[:, None, :].repeat(1, self.channels_, 1)
            with torch.no_grad():
                latent = self.model.encoder(x).float().cpu().numpy()  # (batch, dim, n_frames)
            times = (np.arange(latent.shape[-1]) + 0.5) * self.hop_ / self.sr
            out.append(frame_window_means(latent.transpose(0, 2, 1), times, self.windows))
        return np.concatenate(out)


class MertEncoder(_TransformersEncoder):
    """MERT-v1 hidden layer 7, averaged over each 5-s window (the w2v-BERT-avg stand-in), r = 7.

    MERT checkpoints run Python code shipped with the checkpoint, so loading one by name needs an explicit
    opt-in: ``trust_remote_code=True`` (CLI: ``--trust-remote-code``). Any model whose forward accepts
    ``output_hidden_states=True`` (e.g. a HuBERT or wav2vec2 model) can be passed as an object. The default
    checkpoint ``m-a-p/MERT-v1-95M`` has 768-d states; ``m-a-p/MERT-v1-330M`` gives 1024-d like w2v-BERT.
    """

    name = "mert"
    model_class = "AutoModel"
    processor_class = "AutoFeatureExtractor"
    default_checkpoint = DEFAULT_MERT

    def __init__(
        self,
        model=None,
        processor=None,
        *,
        layer: int = 7,
        device: str | None = None,
        batch_size: int = 8,
        trust_remote_code: bool = False,
        window: float = 5.0,
        clip_duration: float = 15.0,
    ):
        try:
            self.layer = int(layer)  # the CLI's --layer arrives as a string
        except (TypeError, ValueError):
            raise ConfigError(f"mert: layer must be an integer hidden-layer index, got {layer!r}") from None
        self.window = float(window)
        self.clip_duration = float(clip_duration)
        self._check_window()
        super().__init__(
            model, processor, device=device, batch_size=batch_size, trust_remote_code=trust_remote_code
        )

    def _check_trust(self) -> None:
        if not self.trust_remote_code:
            raise ConfigError(
                f"the 'mert' encoder's checkpoint {str(self.checkpoint)!r} runs Python code shipped with the "
                "checkpoint (trust_remote_code). Review it, then opt in with trust_remote_code=True "
                "(CLI: --trust-remote-code)"
            )

    def _setup(self) -> None:
        self.feature_extractor_ = _feature_extractor(self.processor)
        self.sr = int(self.feature_extractor_.sampling_rate)
        self.dim = int(self.model.config.hidden_size)
        n_layers = int(getattr(self.model.config, "num_hidden_layers", self.layer))
        if not 0 <= self.layer <= n_layers:
            raise ConfigError(f"layer must be between 0 and {n_layers} for this model, got {self.layer}")

    def _extra_config(self) -> dict[str, Any]:
        return {"model": self.model_id_, "layer": self.layer}

    def _embed_batch(self, audio: np.ndarray) -> np.ndarray:
        torch = _torch("the 'mert' encoder")
        segments = self._window_audio(audio)
        out = []
        for part in self._torch_batches(len(segments)):
            feats = self.feature_extractor_(list(segments[part]), sampling_rate=self.sr, return_tensors="pt")
            inputs = {
                k: v.to(self.device) for k, v in feats.items() if k in ("input_values", "attention_mask")
            }
            with torch.no_grad():
                states = self.model(**inputs, output_hidden_states=True).hidden_states[self.layer]
            out.append(states.float().mean(dim=1).cpu().numpy())
        return np.concatenate(out).reshape(len(audio), self.n_windows, self.dim)
