"""Neural generators (optional extra ``neural``): MusicLDM conditioned on CLAP, MusicGen from words.

- :class:`MusicLDMGenerator`: diffusers ``MusicLDMPipeline`` with the window-averaged target passed as
  ``prompt_embeds`` (the closest open analogue of MusicLM conditioned on MuLan). MusicLDM was trained on
  CLAP *text* embeddings; a predicted CLAP *audio* embedding sits in the same space but not the same
  distribution, so a :class:`ClapAligner` (linear map audio → text fitted on paired clips and captions,
  as Ciferri et al. did on MusicCaps) can be applied first. Decoding straight into the text space (the
  ``clap-text`` encoder, MuLan-text route) needs no aligner.
- :class:`MusicGenGenerator`: transformers MusicGen from a text prompt made of the vocabulary entries
  (tags or captions) nearest to the target in CLAP text space.

Real checkpoints load only from a local folder or the Hugging Face cache (``local_files_only=True``);
when absent the error names the checkpoint and how to get it. torch/diffusers/transformers are imported
when a model is first needed.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from brain2music._io import save_npz
from brain2music.errors import ConfigError, DataError, DataFileNotFoundError, missing_checkpoint, require
from brain2music.reconstruct.generators.base import Generator, target_vector
from brain2music.windows import clip_vectors

__all__ = [
    "DEFAULT_MUSICGEN",
    "DEFAULT_MUSICLDM",
    "DEFAULT_TAGS",
    "ClapAligner",
    "MusicGenGenerator",
    "MusicLDMGenerator",
]

DEFAULT_MUSICLDM = "ucsd-reach/musicldm"
DEFAULT_MUSICGEN = "facebook/musicgen-small"

#: Words a prompt is built from when no captions are given: genres, instruments, moods, tempo, production.
DEFAULT_TAGS: tuple[str, ...] = (
    "blues", "classical", "country", "disco", "hip hop", "jazz", "metal", "pop", "reggae", "rock",
    "electronic", "folk", "funk", "soul", "ambient", "orchestral",
    "piano", "acoustic guitar", "electric guitar", "distorted guitar", "bass guitar", "synthesizer",
    "strings", "violin", "saxophone", "trumpet", "organ", "drums", "drum machine", "vocals", "choir", "flute",
    "happy", "sad", "calm", "energetic", "aggressive", "romantic", "dark", "uplifting", "relaxing", "groovy",
    "slow tempo", "fast tempo", "medium tempo", "swing", "four on the floor", "shuffle rhythm",
    "lo-fi", "live recording", "studio recording", "reverb", "minimal", "dense arrangement",
)  # fmt: skip


def _require_torch(purpose: str):
    return require("torch", "neural", purpose)


def _device(device: str | None) -> str:
    if device:
        return device
    torch = _require_torch("neural generation")
    return "cuda" if torch.cuda.is_available() else "cpu"


# ------------------------------------------------------------------------------------------------ aligner
class ClapAligner:
    """Linear map from CLAP-audio to CLAP-text embeddings (ridge, penalty chosen by CV), output L2-normalised.

    ``fit(audio_embeddings (n, [r,] dim), text_embeddings (n, [1,] dim))``; ``transform(x) -> (n, dim)``.
    Fit it on any paired audio/captions, e.g. the stimuli and the Brain2Music captions.

    Attributes
    ----------
    coef_ : ndarray ``(dim_text, dim_audio)``; intercept_ : ndarray ``(dim_text,)``; alpha_ : float
    """

    def __init__(self, alphas: Sequence[float] = tuple(np.logspace(-3, 3, 13))):
        self.alphas = alphas

    def fit(self, audio_embeddings: np.ndarray, text_embeddings: np.ndarray) -> ClapAligner:
        from sklearn.linear_model import RidgeCV

        x = _as_2d(audio_embeddings, "audio_embeddings")
        y = _as_2d(text_embeddings, "text_embeddings")
        if len(x) != len(y) or len(x) < 3:
            raise DataError(
                f"ClapAligner needs >= 3 paired embeddings; got {len(x)} audio and {len(y)} text embeddings"
            )
        model = RidgeCV(alphas=np.asarray(self.alphas, dtype=float)).fit(x, y)
        self.coef_, self.intercept_, self.alpha_ = (
            model.coef_,
            np.atleast_1d(model.intercept_),
            float(model.alpha_),
        )
        return self

    def transform(self, audio_embeddings: np.ndarray) -> np.ndarray:
        if not hasattr(self, "coef_"):
            raise ConfigError("ClapAligner is not fitted; call fit() or ClapAligner.load()")
        x = _as_2d(audio_embeddings, "audio_embeddings")
        if x.shape[1] != self.coef_.shape[1]:
            raise DataError(
                f"ClapAligner expects {self.coef_.shape[1]}-d audio embeddings; got {x.shape[1]}-d"
            )
        y = x @ self.coef_.T + self.intercept_
        return y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12)

    def save(self, path: str | os.PathLike) -> Path:
        from brain2music import __version__

        return save_npz(
            path,
            coef=self.coef_,
            intercept=self.intercept_,
            alpha=self.alpha_,
            version=np.asarray(__version__),
        )

    @classmethod
    def load(cls, path: str | os.PathLike) -> ClapAligner:
        path = Path(path)
        if not path.is_file():
            raise DataFileNotFoundError(f"aligner file not found: {path}")
        with np.load(path, allow_pickle=False) as z:
            out = cls()
            out.coef_, out.intercept_, out.alpha_ = z["coef"], z["intercept"], float(z["alpha"])
        return out


def _as_2d(x, name) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 3:
        x = clip_vectors(x)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2:
        raise DataError(f"{name}: expected (n, dim) or (n, r, dim); got shape {x.shape}")
    return x


def _aligner(aligner) -> ClapAligner | None:
    if aligner is None or isinstance(aligner, ClapAligner):
        return aligner
    return ClapAligner.load(aligner)


# ------------------------------------------------------------------------------------------------ MusicLDM
class MusicLDMGenerator(Generator):
    """MusicLDM conditioned on a CLAP embedding passed as ``prompt_embeds``.

    Parameters
    ----------
    checkpoint : str or path
        Hugging Face id or local folder (default ``ucsd-reach/musicldm``); loaded with
        ``local_files_only=True``.
    pipeline : MusicLDMPipeline, optional
        An already built pipeline (tests build a tiny random one).
    aligner : ClapAligner or path, optional
        Maps the (audio-space) target into CLAP text space first.
    num_inference_steps, guidance_scale : diffusion settings (MusicLDM's defaults: 200 and 2.0).
    negative_prompt : str, optional
        Used for classifier-free guidance when ``guidance_scale > 1``.
    device : str, optional
    progress : bool
        Show the denoising progress bar.
    """

    name = "musicldm"

    def __init__(
        self,
        checkpoint: str | os.PathLike = DEFAULT_MUSICLDM,
        *,
        pipeline: Any = None,
        aligner: ClapAligner | str | os.PathLike | None = None,
        num_inference_steps: int = 50,
        guidance_scale: float = 2.0,
        negative_prompt: str | None = None,
        device: str | None = None,
        progress: bool = True,
    ):
        self.checkpoint = str(checkpoint)
        self.pipeline = pipeline
        self._given = pipeline is not None
        self.aligner = _aligner(aligner)
        self.num_inference_steps = int(num_inference_steps)
        self.guidance_scale = float(guidance_scale)
        self.negative_prompt = negative_prompt
        self.device = device
        self.progress = progress

    def _pipe(self):
        if self.pipeline is None:
            diffusers = require("diffusers", "neural", "the 'musicldm' generator")
            _require_torch("the 'musicldm' generator")
            try:
                self.pipeline = diffusers.MusicLDMPipeline.from_pretrained(
                    self.checkpoint, local_files_only=True
                )
            except (OSError, ValueError) as exc:
                raise missing_checkpoint("the 'musicldm' generator", self.checkpoint, exc) from exc
        self.pipeline.to(_device(self.device))
        self.pipeline.set_progress_bar_config(disable=not self.progress)
        return self.pipeline

    @property
    def sr(self) -> int:  # type: ignore[override]
        return int(self._pipe().vocoder.config.sampling_rate)

    @property
    def config(self) -> dict:
        return {
            "generator": self.name,
            "checkpoint": "<pipeline object>" if self._given else self.checkpoint,
            "aligner": self.aligner is not None,
            "num_inference_steps": self.num_inference_steps,
            "guidance_scale": self.guidance_scale,
            "negative_prompt": self.negative_prompt,
        }

    def conditioning(self, target_embedding: np.ndarray) -> np.ndarray:
        """Window-average, align (if an aligner is set) and L2-normalise the target → ``(dim,)``."""
        t = target_vector(target_embedding)
        if self.aligner is not None:
            t = self.aligner.transform(t)[0]
        return t / max(float(np.linalg.norm(t)), 1e-12)

    def generate(self, target_embedding, *, n_samples=1, duration=15.0, random_state=None):
        torch = _require_torch("the 'musicldm' generator")
        if int(n_samples) < 1:
            raise ConfigError(f"n_samples must be >= 1, got {n_samples!r}")
        pipe = self._pipe()
        cond = self.conditioning(target_embedding)
        dim = int(pipe.unet.config.projection_class_embeddings_input_dim or cond.size)
        if cond.size != dim:
            raise DataError(
                f"MusicLDM ({self.checkpoint}) is conditioned on {dim}-d CLAP embeddings; the target is "
                f"{cond.size}-d (use predictions of the 'clap' or 'clap-text' encoder)"
            )
        dtype = pipe.unet.dtype
        device = pipe._execution_device
        embeds = torch.as_tensor(cond[None], dtype=dtype, device=device)
        seed = int(np.random.default_rng(random_state).integers(2**31 - 1))
        gen = torch.Generator(device="cpu").manual_seed(seed)
        negative = None
        if self.negative_prompt and self.guidance_scale > 1:
            # The pipeline accepts a text negative prompt only together with a text prompt: embed it here.
            tokens = pipe.tokenizer(
                [self.negative_prompt], padding=True, truncation=True, return_tensors="pt"
            )
            with torch.no_grad():
                negative = pipe.text_encoder.get_text_features(
                    tokens.input_ids.to(device), attention_mask=tokens.attention_mask.to(device)
                ).to(dtype)
        out = pipe(
            prompt_embeds=embeds,
            negative_prompt_embeds=negative,
            num_inference_steps=self.num_inference_steps,
            guidance_scale=self.guidance_scale,
            audio_length_in_s=float(duration),
            num_waveforms_per_prompt=int(n_samples),
            generator=gen,
            output_type="np",
        )
        audio = np.asarray(out.audios, dtype=np.float32).reshape(int(n_samples), -1)
        return audio, int(pipe.vocoder.config.sampling_rate)


# ------------------------------------------------------------------------------------------------ MusicGen
class MusicGenGenerator(Generator):
    """MusicGen from a text prompt: the vocabulary entries nearest to the target in CLAP text space.

    Parameters
    ----------
    checkpoint : str or path
        Hugging Face id or local folder (default ``facebook/musicgen-small``).
    model, processor : optional
        A loaded ``MusicgenForConditionalGeneration`` and its processor (or any tokenizer).
    vocabulary : sequence of str or path, optional
        Tags or captions the prompt is built from (default :data:`DEFAULT_TAGS`); a CSV path reads the
        ``DescEN`` (Brain2Music captions) or ``caption`` column.
    vocabulary_embeddings : ndarray ``(n_vocab, [1,] dim)``, optional
        CLAP text embeddings of ``vocabulary``; computed with ``text_encoder`` when absent.
    text_encoder : str or encoder, default ``"clap-text"``
        Object with ``embed_texts(texts) -> (n, 1, dim)``.
    aligner : ClapAligner or path, optional
        Maps a CLAP-audio target into text space before the nearest-neighbour look-up.
    n_terms : int
        Vocabulary entries joined into the prompt.
    guidance_scale : float
    device : str, optional

    Attributes
    ----------
    last_prompt_ : str
    """

    name = "musicgen"

    def __init__(
        self,
        checkpoint: str | os.PathLike = DEFAULT_MUSICGEN,
        *,
        model: Any = None,
        processor: Any = None,
        vocabulary: Sequence[str] | str | os.PathLike | None = None,
        vocabulary_embeddings: np.ndarray | None = None,
        text_encoder: Any = "clap-text",
        aligner: ClapAligner | str | os.PathLike | None = None,
        n_terms: int = 3,
        guidance_scale: float = 3.0,
        device: str | None = None,
        progress: bool = True,
    ):
        self.checkpoint = str(checkpoint)
        self.model = model
        self.processor = processor
        self.vocabulary = _read_vocabulary(vocabulary)
        self.vocabulary_embeddings = vocabulary_embeddings
        self.text_encoder = text_encoder
        self.aligner = _aligner(aligner)
        self.n_terms = int(n_terms)
        self.guidance_scale = float(guidance_scale)
        self.device = device
        self.progress = progress
        if self.n_terms < 1:
            raise ConfigError(f"n_terms must be >= 1, got {n_terms!r}")

    @property
    def config(self) -> dict:
        return {
            "generator": self.name,
            "checkpoint": self.checkpoint,
            "n_vocabulary": len(self.vocabulary),
            "n_terms": self.n_terms,
            "aligner": self.aligner is not None,
            "guidance_scale": self.guidance_scale,
        }

    def _load(self):
        _require_torch("the 'musicgen' generator")
        if self.model is None:
            from brain2music.embeddings.neural import load_pretrained

            self.model = load_pretrained(
                "MusicgenForConditionalGeneration", self.checkpoint, purpose="the 'musicgen' generator"
            )
        if self.processor is None:
            from brain2music.embeddings.neural import load_pretrained

            self.processor = load_pretrained(
                "AutoProcessor", self.checkpoint, purpose="the 'musicgen' generator"
            )
        self.model.to(_device(self.device)).eval()
        return self.model, self.processor

    @property
    def sr(self) -> int:  # type: ignore[override]
        return int(self._load()[0].config.audio_encoder.sampling_rate)

    def _vocab_embeddings(self) -> np.ndarray:
        if self.vocabulary_embeddings is None:
            from brain2music.reconstruct.clip_embedding import resolve_encoder

            enc = (
                resolve_encoder(self.text_encoder)
                if isinstance(self.text_encoder, str)
                else self.text_encoder
            )
            if not hasattr(enc, "embed_texts"):
                raise ConfigError(f"text_encoder {self.text_encoder!r} has no embed_texts(texts)")
            self.vocabulary_embeddings = np.asarray(enc.embed_texts(list(self.vocabulary)))
        emb = _as_2d(self.vocabulary_embeddings, "vocabulary_embeddings")
        if len(emb) != len(self.vocabulary):
            raise DataError(f"{len(self.vocabulary)} vocabulary entries but {len(emb)} vocabulary embeddings")
        return emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)

    def prompt_for(self, target_embedding: np.ndarray) -> str:
        """The text prompt for a target: the ``n_terms`` nearest vocabulary entries, best first."""
        vocab = self._vocab_embeddings()
        t = target_vector(target_embedding)
        if self.aligner is not None:
            t = self.aligner.transform(t)[0]
        if t.size != vocab.shape[1]:
            raise DataError(
                f"the target is {t.size}-d but the vocabulary embeddings are {vocab.shape[1]}-d "
                f"(MusicGen prompts need CLAP-space targets: the 'clap' or 'clap-text' encoder)"
            )
        scores = vocab @ (t / max(float(np.linalg.norm(t)), 1e-12))
        best = np.argsort(-scores)[: self.n_terms]
        return ", ".join(self.vocabulary[i] for i in best)

    def generate(self, target_embedding, *, n_samples=1, duration=15.0, random_state=None):
        torch = _require_torch("the 'musicgen' generator")
        if int(n_samples) < 1:
            raise ConfigError(f"n_samples must be >= 1, got {n_samples!r}")
        prompt = self.prompt_for(target_embedding)
        self.last_prompt_ = prompt
        model, processor = self._load()
        inputs = processor(text=[prompt] * int(n_samples), padding=True, return_tensors="pt")
        inputs = {k: v.to(model.device) for k, v in inputs.items() if k in ("input_ids", "attention_mask")}
        frame_rate = float(model.config.audio_encoder.frame_rate)
        torch.manual_seed(int(np.random.default_rng(random_state).integers(2**31 - 1)))
        with torch.no_grad():
            codes = model.generate(
                **inputs,
                do_sample=True,
                guidance_scale=self.guidance_scale,
                max_new_tokens=max(1, int(round(duration * frame_rate))),
            )
        audio = codes.float().cpu().numpy().reshape(int(n_samples), -1)
        return audio.astype(np.float32), int(model.config.audio_encoder.sampling_rate)


def _read_vocabulary(vocabulary) -> list[str]:
    if vocabulary is None:
        return list(DEFAULT_TAGS)
    if isinstance(vocabulary, (str, os.PathLike)) and Path(vocabulary).suffix.lower() in (".csv", ".tsv"):
        import pandas as pd

        path = Path(vocabulary)
        if not path.is_file():
            raise DataFileNotFoundError(f"vocabulary file not found: {path}")
        tab = pd.read_csv(path, sep="\t" if path.suffix.lower() == ".tsv" else ",")
        col = next((c for c in ("DescEN", "caption", "text", "tag") if c in tab.columns), None)
        if col is None:
            raise DataError(
                f"{path}: expected a DescEN, caption, text or tag column; found {list(tab.columns)}"
            )
        return [str(t) for t in tab[col].dropna().unique()]
    words = [str(v) for v in vocabulary]
    if not words:
        raise ConfigError("vocabulary is empty")
    return words
