"""Neural encoders on transformers models: open stand-ins for the paper's closed embeddings.

==============  ======================================  ======  ==  ===========================
registry name   model (default checkpoint)              window  r   stands in for
==============  ======================================  ======  ==  ===========================
``clap``        ClapModel (laion/larger_clap_music)     10 s    4   MuLan-music (128-d; CLAP: 512)
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

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from brain2music.embeddings.base import Encoder, frame_window_means
from brain2music.embeddings.pretrained import (
    _fingerprint,
    _torch,
    clap_space_id,
    is_pipeline_checkpoint,
    load_pretrained,
    resolve_device,
    resolve_dtype,
)
from brain2music.errors import (
    ConfigError,
    DataError,
)

__all__ = ["ClapEncoder", "ClapTextEncoder", "EncodecEncoder", "MertEncoder"]

DEFAULT_CLAP = "laion/larger_clap_music"
DEFAULT_ENCODEC = "facebook/encodec_24khz"
DEFAULT_MERT = "m-a-p/MERT-v1-95M"


class _TransformersEncoder(Encoder):
    """Shared loading, placement (device, dtype), batching and pickling of transformers-based encoders.

    ``device``: ``"auto"`` (default: CUDA when available, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"``
    or ``"mps"``. ``dtype``: ``"auto"`` (default: float16 on CUDA, float32 elsewhere), ``"float32"``,
    ``"float16"`` or ``"bfloat16"``; anything but float32 is recorded in :attr:`config` (and so in cache
    keys and library manifests), since it changes the numbers.
    """

    default_checkpoint = ""
    model_class = "AutoModel"
    processor_class = "AutoProcessor"
    needs_processor = True
    #: Subfolders holding the model and the processor when the checkpoint is a diffusers pipeline
    #: (``model_index.json``); ``None``: this encoder cannot read from a pipeline.
    pipeline_parts: tuple[str, str, str] | None = None  # (model subfolder, processor subfolder, class)

    def __init__(
        self,
        model=None,
        processor=None,
        *,
        device: str | None = None,
        dtype: str | None = None,
        batch_size: int = 8,
        trust_remote_code: bool = False,
    ):
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.batch_size = int(batch_size)
        purpose = f"the {self.name!r} encoder"
        self.device = resolve_device(device, purpose=purpose)
        self.dtype = resolve_dtype(dtype, self.device, purpose=purpose)
        self.trust_remote_code = bool(trust_remote_code)
        self.checkpoint = self.default_checkpoint if model is None else model
        self._processor_arg = processor
        self._load()

    # -- loading ---------------------------------------------------------------------------------------
    @property
    def _named(self) -> bool:
        return isinstance(self.checkpoint, (str, os.PathLike))

    @property
    def _purpose(self) -> str:
        return f"the {self.name!r} encoder"

    def _check_trust(self) -> None:
        pass

    def _from_pipeline(self) -> bool:
        return self.pipeline_parts is not None and is_pipeline_checkpoint(self.checkpoint)

    def _load_model(self):
        """Load the named checkpoint's model (float32, on the CPU)."""
        if self._from_pipeline():
            return load_pretrained(
                self.model_class, self.checkpoint, purpose=self._purpose, subfolder=self.pipeline_parts[0]
            )
        return load_pretrained(
            self.model_class,
            self.checkpoint,
            purpose=self._purpose,
            trust_remote_code=self.trust_remote_code,
        )

    def _load_processor(self, source):
        if self._named and self._from_pipeline():
            _, subfolder, cls = self.pipeline_parts
            return load_pretrained(cls, source, purpose=self._purpose, subfolder=subfolder)
        return load_pretrained(
            self.processor_class, source, purpose=self._purpose, trust_remote_code=self.trust_remote_code
        )

    def _load(self) -> None:
        torch = _torch(self._purpose)
        if self._named:
            self._check_trust()
            model = self._load_model()
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
            processor = self._load_processor(source)
        self._identify(model)
        self.model = self._place(model)
        self.processor = processor
        self._setup()

    def _identify(self, model) -> None:
        """Hook: record what identifies the model's output space (before the model is cast)."""

    def _place(self, model):
        torch = _torch(self._purpose)
        return model.to(device=self.device, dtype=getattr(torch, self.dtype)).eval()

    def _inputs(self, features, keys=None) -> dict:
        """Processor output → tensors on the model's device; floating ones in the model's dtype."""
        torch = _torch(self._purpose)
        dtype = getattr(torch, self.dtype)
        out = {}
        for key, value in features.items():
            if keys is not None and key not in keys:
                continue
            value = value.to(self.device)
            out[key] = value.to(dtype) if value.is_floating_point() else value
        return out

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
            self.model = self._place(model)
        elif self.model is None:
            self._load()

    def _extra_config(self) -> dict[str, Any]:
        extra: dict[str, Any] = {"model": self.model_id_}
        if self.dtype != "float32":
            extra["dtype"] = self.dtype
        return extra

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


class _ClapSpace:
    """Mixin of the CLAP encoders: the model can come from a MusicLDM pipeline, and the embedding space is
    identified (:attr:`clap_space_`, in :attr:`config`) so a generator can check it conditions on the same
    CLAP (see :class:`brain2music.reconstruct.generators.neural.MusicLDMGenerator`)."""

    def _identify(self, model) -> None:
        self.clap_space_ = clap_space_id(model)


class ClapEncoder(_ClapSpace, _TransformersEncoder):
    """CLAP audio embeddings (the MuLan-music stand-in): 10-s windows, r = 4, L2-normalised.

    MuLan-music is 128-d; CLAP gives ``projection_dim`` = 512 dimensions (laion/larger_clap_music).

    Parameters
    ----------
    model : str, path or ClapModel
        Checkpoint name or folder (default ``laion/larger_clap_music``), or a loaded model. A diffusers
        MusicLDM pipeline (e.g. ``ucsd-reach/musicldm``) is accepted too: its own CLAP (``text_encoder``)
        and ``feature_extractor`` are used, the pairing MusicLDM generation expects.
    processor : ClapProcessor or ClapFeatureExtractor, optional
        Needed with a model object; loaded with the checkpoint otherwise.
    device : str
        ``"auto"`` (default: CUDA when available, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"``.
    dtype : str
        ``"auto"`` (default: float16 on CUDA, float32 elsewhere), ``"float32"``, ``"float16"``, ``"bfloat16"``.
    batch_size : int
        Windows per forward pass.
    window : float
        Window length (s); 10 gives the paper's r = 4.
    """

    name = "clap"
    model_class = "ClapModel"
    processor_class = "ClapProcessor"
    default_checkpoint = DEFAULT_CLAP
    pipeline_parts = ("text_encoder", "feature_extractor", "ClapFeatureExtractor")

    def __init__(
        self,
        model=None,
        processor=None,
        *,
        device: str | None = None,
        dtype: str | None = None,
        batch_size: int = 8,
        window: float = 10.0,
        clip_duration: float = 15.0,
    ):
        self.window = float(window)
        self.clip_duration = float(clip_duration)
        self._check_window()
        super().__init__(model, processor, device=device, dtype=dtype, batch_size=batch_size)

    def _setup(self) -> None:
        self.feature_extractor_ = _feature_extractor(self.processor)
        self.sr = int(self.feature_extractor_.sampling_rate)
        self.dim = int(self.model.config.projection_dim)

    def _extra_config(self) -> dict[str, Any]:
        return {**super()._extra_config(), "clap_space": self.clap_space_}

    def _embed_batch(self, audio: np.ndarray) -> np.ndarray:
        torch = _torch("the 'clap' encoder")
        segments = self._window_audio(audio)
        out = []
        for part in self._torch_batches(len(segments)):
            feats = self.feature_extractor_(list(segments[part]), sampling_rate=self.sr, return_tensors="pt")
            with torch.no_grad():
                out.append(self.model.get_audio_features(**self._inputs(feats)).float().cpu().numpy())
        return np.concatenate(out).reshape(len(audio), self.n_windows, self.dim)


class ClapTextEncoder(_ClapSpace, _TransformersEncoder):
    """CLAP text embeddings of captions (the MuLan-text stand-in): one 15-s window, r = 1, L2-normalised.

    Embeds text with :meth:`embed_texts`; :func:`brain2music.embeddings.embed_captions` embeds the
    Brain2Music captions file. ``processor`` is a ClapProcessor or any tokenizer. ``model`` may be a
    MusicLDM pipeline, as for :class:`ClapEncoder`.
    """

    name = "clap-text"
    modality = "text"
    model_class = "ClapModel"
    processor_class = "AutoTokenizer"
    default_checkpoint = DEFAULT_CLAP
    pipeline_parts = ("text_encoder", "tokenizer", "AutoTokenizer")
    window = 15.0

    def __init__(
        self,
        model=None,
        processor=None,
        *,
        device: str | None = None,
        dtype: str | None = None,
        batch_size: int = 32,
        max_length: int | None = None,
    ):
        self.max_length = max_length
        super().__init__(model, processor, device=device, dtype=dtype, batch_size=batch_size)

    def _setup(self) -> None:
        self.tokenizer_ = getattr(self.processor, "tokenizer", self.processor)
        self.dim = int(self.model.config.projection_dim)
        fe = getattr(self.processor, "feature_extractor", None)
        self.sr = int(getattr(fe, "sampling_rate", 48000))

    def _extra_config(self) -> dict[str, Any]:
        return {**super()._extra_config(), "max_length": self.max_length, "clap_space": self.clap_space_}

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
            inputs = self._inputs(tokens, keys=("input_ids", "attention_mask"))
            with torch.no_grad():
                out.append(self.model.get_text_features(**inputs).float().cpu().numpy())
        if not out:
            return np.zeros((0, 1, self.dim), dtype=np.float32)
        return np.concatenate(out)[:, None, :].astype(np.float32)


class EncodecEncoder(_TransformersEncoder):
    """EnCodec encoder latents averaged over 1.5-s windows (the SoundStream-avg stand-in), r = 10.

    The whole clip goes through the convolutional encoder once (every frame sees its real context); the
    continuous latent frames (75 per second, 128-d for encodec_24khz, before quantisation) whose centre
    lies in a window are averaged. ``batch_size`` counts clips.
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
        dtype: str | None = None,
        batch_size: int = 4,
        window: float = 1.5,
        clip_duration: float = 15.0,
    ):
        self.window = float(window)
        self.clip_duration = float(clip_duration)
        self._check_window()
        super().__init__(model, None, device=device, dtype=dtype, batch_size=batch_size)

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
            x = torch.from_numpy(audio[part])[:, None, :].repeat(1, self.channels_, 1)
            with torch.no_grad():
                latent = self.model.encoder(self._inputs({"x": x})["x"]).float().cpu().numpy()
            times = (np.arange(latent.shape[-1]) + 0.5) * self.hop_ / self.sr  # latent: (batch, dim, frames)
            out.append(frame_window_means(latent.transpose(0, 2, 1), times, self.windows))
        return np.concatenate(out)


#: Config attributes that transformers' HuBERT code reads and that MERT's remote ``MERTConfig`` (written
#: for transformers 4.2x) lacks, with the value that reproduces the behaviour MERT was trained with.
#: ``conv_pos_batch_norm`` arrived in transformers 4.48 (weight-normed positional conv when False); its
#: absence raises ``AttributeError`` inside ``HubertPositionalConvEmbedding`` (transformers issues
#: 35656 and 36134; 4.47.1 still loads MERT).
MERT_CONFIG_DEFAULTS: dict[str, Any] = {"conv_pos_batch_norm": False}


class MertEncoder(_TransformersEncoder):
    """MERT-v1 hidden layer 7, averaged over each 5-s window (the w2v-BERT-avg stand-in), r = 7.

    MERT checkpoints run Python code shipped with the checkpoint, so loading one by name needs an explicit
    opt-in: ``trust_remote_code=True`` (CLI: ``--encoder-option trust_remote_code=true``). The config is
    loaded first and the attributes newer transformers expect are filled in with their old defaults
    (:data:`MERT_CONFIG_DEFAULTS`) before the model is built from it. Any model whose forward accepts
    ``output_hidden_states=True`` (e.g. a HuBERT or wav2vec2 model) can be passed as an object. The default
    checkpoint ``m-a-p/MERT-v1-95M`` has 768-d states; ``m-a-p/MERT-v1-330M`` gives 1024-d like w2v-BERT.
    ``batch_size`` counts 5-s windows.
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
        dtype: str | None = None,
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
            model,
            processor,
            device=device,
            dtype=dtype,
            batch_size=batch_size,
            trust_remote_code=trust_remote_code,
        )

    def _check_trust(self) -> None:
        if not self.trust_remote_code:
            raise ConfigError(
                f"the 'mert' encoder's checkpoint {str(self.checkpoint)!r} runs Python code shipped with the "
                "checkpoint (trust_remote_code). Review it, then opt in with trust_remote_code=True "
                "(CLI: --encoder-option trust_remote_code=true)"
            )

    def _load_model(self):
        config = load_pretrained(
            "AutoConfig", self.checkpoint, purpose=self._purpose, trust_remote_code=self.trust_remote_code
        )
        self.config_patched_ = sorted(k for k in MERT_CONFIG_DEFAULTS if not hasattr(config, k))
        for key in self.config_patched_:
            setattr(config, key, MERT_CONFIG_DEFAULTS[key])
        return load_pretrained(
            self.model_class,
            self.checkpoint,
            purpose=self._purpose,
            trust_remote_code=self.trust_remote_code,
            config=config,
        )

    def _setup(self) -> None:
        self.feature_extractor_ = _feature_extractor(self.processor)
        self.sr = int(self.feature_extractor_.sampling_rate)
        self.dim = int(self.model.config.hidden_size)
        n_layers = int(getattr(self.model.config, "num_hidden_layers", self.layer))
        if not 0 <= self.layer <= n_layers:
            raise ConfigError(f"layer must be between 0 and {n_layers} for this model, got {self.layer}")

    def _extra_config(self) -> dict[str, Any]:
        return {**super()._extra_config(), "layer": self.layer}

    def _embed_batch(self, audio: np.ndarray) -> np.ndarray:
        torch = _torch("the 'mert' encoder")
        segments = self._window_audio(audio)
        out = []
        for part in self._torch_batches(len(segments)):
            feats = self.feature_extractor_(list(segments[part]), sampling_rate=self.sr, return_tensors="pt")
            inputs = self._inputs(feats, keys=("input_values", "attention_mask"))
            with torch.no_grad():
                states = self.model(**inputs, output_hidden_states=True).hidden_states[self.layer]
            out.append(states.float().mean(dim=1).cpu().numpy())
        return np.concatenate(out).reshape(len(audio), self.n_windows, self.dim)
