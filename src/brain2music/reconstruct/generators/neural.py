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

from brain2music.errors import (
    ConfigError,
    DataError,
    DataFileNotFoundError,
    incompatible_checkpoint,
    missing_checkpoint,
    require,
)
from brain2music.models.clap_aligner import ClapAligner, as_vectors
from brain2music.reconstruct.generators.base import Generator, target_vector

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


def _aligner(aligner) -> ClapAligner | None:
    if aligner is None or isinstance(aligner, ClapAligner):
        return aligner
    return ClapAligner.load(aligner)


# ------------------------------------------------------------------------------------------------ MusicLDM
def _target_space(encoder) -> tuple[str, str | None]:
    """``(description, clap_space)`` of what produced the targets: an encoder object or its config dict."""
    if isinstance(encoder, dict):
        cfg = encoder
    else:
        cfg = getattr(encoder, "config", None)
        cfg = cfg() if callable(cfg) else cfg
        cfg = cfg if isinstance(cfg, dict) else {}
        if getattr(encoder, "clap_space_", None):
            cfg = {**cfg, "clap_space": encoder.clap_space_}
    name = cfg.get("encoder") or getattr(encoder, "name", type(encoder).__name__)
    model = cfg.get("model")
    return (f"encoder {name!r}" + (f" ({model})" if model else ""), cfg.get("clap_space"))


class MusicLDMGenerator(Generator):
    """MusicLDM conditioned on a CLAP embedding passed as ``prompt_embeds``.

    MusicLDM conditions its UNet on embeddings of *its own* CLAP (the pipeline's ``text_encoder``). A
    target is usable as is only if it lives in that space: decode embeddings made with the pipeline's CLAP
    (the ``clap`` encoder with ``model=`` the MusicLDM checkpoint, the default pairing), or pass an
    ``aligner`` that maps the targets into it. Given the ``encoder`` that produced the targets, the
    generator compares the two CLAPs (:func:`~brain2music.embeddings.pretrained.clap_space_id`, a hash of
    their projection weights) before generating and refuses a mismatched pair without an aligner; only
    the dimension can be checked without it.

    Parameters
    ----------
    checkpoint : str or path
        Hugging Face id or local folder (default ``ucsd-reach/musicldm``); loaded with
        ``local_files_only=True``.
    pipeline : MusicLDMPipeline, optional
        An already built pipeline (tests build a tiny random one).
    aligner : ClapAligner or path, optional
        Maps the (audio-space) target into the generator's CLAP text space first.
    encoder : encoder or dict, optional
        The encoder (object, or its recorded ``config``) whose embeddings the targets are, for the pairing
        check above.
    num_inference_steps, guidance_scale : int, float
        Diffusion settings; the defaults are ``MusicLDMPipeline``'s own (200 DDIM steps, guidance 2.0).
        Fewer steps are proportionally faster (50 is a common trade).
    negative_prompt : str, optional
        Used for classifier-free guidance when ``guidance_scale > 1``.
    device, dtype : str, optional
        Placement: ``"auto"`` (CUDA when available; float16 there), ``"cpu"``, ``"cuda"``, ``"mps"``;
        ``"float32"``, ``"float16"``, ``"bfloat16"``.
    batch_size : int
        Targets denoised together by :meth:`generate_many` (times ``n_samples`` waveforms per pass).
    progress : bool
        Show the denoising progress bar.

    Attributes
    ----------
    pairing_ : str
        How the targets meet the generator's CLAP: ``"same CLAP"``, ``"aligned"`` or ``"unchecked"``.
    """

    name = "musicldm"

    def __init__(
        self,
        checkpoint: str | os.PathLike = DEFAULT_MUSICLDM,
        *,
        pipeline: Any = None,
        aligner: ClapAligner | str | os.PathLike | None = None,
        encoder: Any = None,
        num_inference_steps: int = 200,
        guidance_scale: float = 2.0,
        negative_prompt: str | None = None,
        device: str | None = None,
        dtype: str | None = None,
        batch_size: int = 4,
        progress: bool = True,
    ):
        self.checkpoint = str(checkpoint)
        self.pipeline = pipeline
        self._given = pipeline is not None
        self.aligner = _aligner(aligner)
        self.encoder = encoder
        self.num_inference_steps = int(num_inference_steps)
        self.guidance_scale = float(guidance_scale)
        self.negative_prompt = negative_prompt
        self.device = device
        self.dtype = dtype
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.batch_size = batch_size
        self.progress = progress
        self._placed = False

    def _pipe(self):
        if self._placed:
            return self.pipeline
        from brain2music.embeddings.pretrained import resolve_device, resolve_dtype

        purpose = "the 'musicldm' generator"
        torch = _require_torch(purpose)
        device = resolve_device(self.device, purpose=purpose)
        dtype = getattr(torch, resolve_dtype(self.dtype, device, purpose=purpose))
        if self.pipeline is None:
            diffusers = require("diffusers", "neural", purpose)
            try:
                self.pipeline = diffusers.MusicLDMPipeline.from_pretrained(
                    self.checkpoint, local_files_only=True, torch_dtype=dtype
                )
            except (OSError, ValueError) as exc:
                raise missing_checkpoint(purpose, self.checkpoint, exc) from exc
            except (AttributeError, TypeError, ImportError) as exc:
                raise incompatible_checkpoint(purpose, self.checkpoint, exc) from exc
        self.pipeline.to(device)
        if self.pipeline.unet.dtype != dtype:  # casting to the same dtype only earns diffusers warnings
            self.pipeline.to(dtype=dtype)
        self.pipeline.set_progress_bar_config(disable=not self.progress)
        self.device_, self.dtype_ = device, str(dtype).replace("torch.", "")
        self._check_pairing()
        self._placed = True
        return self.pipeline

    def load(self) -> MusicLDMGenerator:
        """Load the pipeline, place it and check the pairing now (what ``--check`` does); returns self."""
        self._pipe()
        return self

    def _check_pairing(self) -> None:
        from brain2music.embeddings.pretrained import clap_space_id

        self.generator_space_ = clap_space_id(self.pipeline.text_encoder)
        if self.encoder is None:
            self.pairing_ = "aligned" if self.aligner is not None else "unchecked"
            return
        what, space = _target_space(self.encoder)
        if space == self.generator_space_:
            self.pairing_ = "same CLAP"
        elif self.aligner is not None:
            self.pairing_ = "aligned"
        else:
            found = f"a CLAP with space id {space}" if space else "not a CLAP (no clap_space in its config)"
            raise ConfigError(
                f"MusicLDM ({self.checkpoint if not self._given else 'given pipeline'}) is conditioned on "
                f"embeddings of its own CLAP (space id {self.generator_space_}), but the targets come from "
                f"{what}, {found}: the embeddings would be read in the wrong space. Embed the stimuli with "
                f"the pipeline's CLAP (encoder 'clap' with model={self.checkpoint}) and decode again, or "
                "pass an aligner (aligner=PATH, a ClapAligner fitted into this CLAP's text space)"
            )

    @property
    def sr(self) -> int:  # type: ignore[override]
        """The vocoder's sampling rate (Hz); reading it loads and places the pipeline."""
        return int(self._pipe().vocoder.config.sampling_rate)

    @property
    def config(self) -> dict:
        """The checkpoint, whether an aligner is used, the checked pairing (``pairing_``), the sampling
        options and the dtype."""
        return {
            "generator": self.name,
            "checkpoint": "<pipeline object>" if self._given else self.checkpoint,
            "aligner": self.aligner is not None,
            "pairing": getattr(self, "pairing_", None),
            "num_inference_steps": self.num_inference_steps,
            "guidance_scale": self.guidance_scale,
            "negative_prompt": self.negative_prompt,
            "dtype": getattr(self, "dtype_", self.dtype),
        }

    def conditioning(self, target_embedding: np.ndarray) -> np.ndarray:
        """Window-average, align (if an aligner is set) and L2-normalise the target → ``(dim,)``."""
        t = target_vector(target_embedding)
        if self.aligner is not None:
            t = self.aligner.transform(t)[0]
        return t / max(float(np.linalg.norm(t)), 1e-12)

    def clap_encoder(self, **kwargs):
        """A ``clap`` encoder on this pipeline's own CLAP (to embed stimuli in the space MusicLDM reads)."""
        from brain2music.embeddings.neural import ClapEncoder

        pipe = self._pipe()
        if pipe.feature_extractor is None:
            raise ConfigError("this MusicLDM pipeline has no feature_extractor to embed audio with its CLAP")
        kwargs.setdefault("device", self.device_)
        return ClapEncoder(pipe.text_encoder, pipe.feature_extractor, **kwargs)

    def _negative(self, pipe, n: int):
        if not (self.negative_prompt and self.guidance_scale > 1):
            return None
        torch = _require_torch("the 'musicldm' generator")
        device = pipe._execution_device
        # The pipeline accepts a text negative prompt only together with a text prompt: embed it here.
        tokens = pipe.tokenizer([self.negative_prompt], padding=True, truncation=True, return_tensors="pt")
        with torch.no_grad():
            neg = pipe.text_encoder.get_text_features(
                tokens.input_ids.to(device), attention_mask=tokens.attention_mask.to(device)
            ).to(pipe.unet.dtype)
        return neg.repeat(n, 1)

    def generate(self, target_embedding, *, n_samples=1, duration=15.0, random_state=None):
        """Generate ``n_samples`` clips of ``duration`` s for one target ``(dim,)`` or ``(r, dim)``.

        The one-target case of :meth:`generate_many`: returns ``(n_samples, n_audio)`` float32 and ``sr``.
        """
        audio, sr = self.generate_many(
            np.asarray(target_embedding)[None],
            n_samples=n_samples,
            duration=duration,
            random_state=random_state,
        )
        return audio[0], sr

    def generate_many(self, target_embeddings, *, n_samples=1, duration=15.0, random_state=None):
        """Generate for many targets, ``batch_size`` of them per denoising pass.

        ``target_embeddings`` is ``(n, dim)`` or ``(n, r, dim)``; returns ``(n, n_samples, n_audio)`` and
        ``sr``. Every waveform has its own noise generator seeded from ``random_state`` and its position, so
        the result does not depend on ``batch_size``.
        """
        torch = _require_torch("the 'musicldm' generator")
        if int(n_samples) < 1:
            raise ConfigError(f"n_samples must be >= 1, got {n_samples!r}")
        n_samples = int(n_samples)
        pipe = self._pipe()
        conds = np.stack([self.conditioning(t) for t in target_embeddings])
        dim = int(pipe.unet.config.projection_class_embeddings_input_dim or conds.shape[1])
        if conds.shape[1] != dim:
            raise DataError(
                f"MusicLDM ({self.checkpoint}) is conditioned on {dim}-d CLAP embeddings; the target is "
                f"{conds.shape[1]}-d (use predictions of the 'clap' or 'clap-text' encoder)"
            )
        seeds = np.random.default_rng(random_state).integers(2**31 - 1, size=len(conds))
        out = []
        from tqdm.auto import tqdm

        starts = range(0, len(conds), self.batch_size)
        show = self.progress and len(starts) > 1
        for start in tqdm(starts, desc="musicldm: batches", disable=not show, leave=False):
            part = conds[start : start + self.batch_size]
            gens = [
                torch.Generator(device="cpu").manual_seed(int(s))
                for seed in seeds[start : start + len(part)]
                for s in np.random.default_rng(int(seed)).integers(2**31 - 1, size=n_samples)
            ]
            result = pipe(
                prompt_embeds=torch.as_tensor(part, dtype=pipe.unet.dtype, device=pipe._execution_device),
                negative_prompt_embeds=self._negative(pipe, len(part)),
                num_inference_steps=self.num_inference_steps,
                guidance_scale=self.guidance_scale,
                audio_length_in_s=float(duration),
                num_waveforms_per_prompt=n_samples,
                generator=gens,
                output_type="np",
            )
            out.append(np.asarray(result.audios, dtype=np.float32).reshape(len(part), n_samples, -1))
        return np.concatenate(out), int(pipe.vocoder.config.sampling_rate)


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
        dtype: str | None = None,
        batch_size: int = 4,
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
        self.dtype = dtype
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.batch_size = batch_size
        self.progress = progress
        self._placed = False
        if self.n_terms < 1:
            raise ConfigError(f"n_terms must be >= 1, got {n_terms!r}")

    @property
    def config(self) -> dict:
        """The checkpoint, vocabulary size, ``n_terms``, whether an aligner is used and ``guidance_scale``."""
        return {
            "generator": self.name,
            "checkpoint": self.checkpoint,
            "n_vocabulary": len(self.vocabulary),
            "n_terms": self.n_terms,
            "aligner": self.aligner is not None,
            "guidance_scale": self.guidance_scale,
        }

    def _load(self):
        from brain2music.embeddings.pretrained import load_pretrained, resolve_device, resolve_dtype

        purpose = "the 'musicgen' generator"
        torch = _require_torch(purpose)
        if self._placed:
            return self.model, self.processor
        if self.model is None:
            self.model = load_pretrained("MusicgenForConditionalGeneration", self.checkpoint, purpose=purpose)
        if self.processor is None:
            self.processor = load_pretrained("AutoProcessor", self.checkpoint, purpose=purpose)
        device = resolve_device(self.device, purpose=purpose)
        self.dtype_ = resolve_dtype(self.dtype, device, purpose=purpose)
        self.model.to(device=device, dtype=getattr(torch, self.dtype_)).eval()
        self._placed = True
        return self.model, self.processor

    def load(self) -> MusicGenGenerator:
        """Load MusicGen and the text encoder of the vocabulary (what ``--check`` does); returns self."""
        self._load()
        if self.vocabulary_embeddings is None and isinstance(self.text_encoder, str):
            from brain2music.reconstruct.clip_embedding import resolve_encoder

            self.text_encoder = resolve_encoder(self.text_encoder)
        return self

    @property
    def sr(self) -> int:  # type: ignore[override]
        """The audio codec's sampling rate (Hz); reading it loads and places the model."""
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
        emb = as_vectors(self.vocabulary_embeddings, "vocabulary_embeddings")
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
        """Generate ``n_samples`` clips of ``duration`` s for one target ``(dim,)`` or ``(r, dim)``.

        The one-target case of :meth:`generate_many`: returns ``(n_samples, n_audio)`` float32 and ``sr``.
        """
        audio, sr = self.generate_many(
            np.asarray(target_embedding)[None],
            n_samples=n_samples,
            duration=duration,
            random_state=random_state,
        )
        return audio[0], sr

    def generate_many(self, target_embeddings, *, n_samples=1, duration=15.0, random_state=None):
        """Prompts for many targets, ``batch_size`` of them (times ``n_samples``) per ``generate`` call:
        ``(n, n_samples, n_audio)`` and ``sr``. Sampling is seeded once per batch (torch's global seed), so
        unlike MusicLDM the waveforms depend on how targets are batched."""
        torch = _require_torch("the 'musicgen' generator")
        if int(n_samples) < 1:
            raise ConfigError(f"n_samples must be >= 1, got {n_samples!r}")
        n_samples = int(n_samples)
        prompts = [self.prompt_for(t) for t in target_embeddings]
        self.last_prompt_ = prompts[-1]
        model, processor = self._load()
        frame_rate = float(model.config.audio_encoder.frame_rate)
        rng = np.random.default_rng(random_state)
        out = []
        from tqdm.auto import tqdm

        starts = range(0, len(prompts), self.batch_size)
        show = self.progress and len(starts) > 1
        for start in tqdm(starts, desc="musicgen: batches", disable=not show, leave=False):
            part = prompts[start : start + self.batch_size]
            texts = [p for p in part for _ in range(n_samples)]
            inputs = processor(text=texts, padding=True, return_tensors="pt")
            inputs = {
                k: v.to(model.device) for k, v in inputs.items() if k in ("input_ids", "attention_mask")
            }
            torch.manual_seed(int(rng.integers(2**31 - 1)))
            with torch.no_grad():
                codes = model.generate(
                    **inputs,
                    do_sample=True,
                    guidance_scale=self.guidance_scale,
                    max_new_tokens=max(1, int(round(duration * frame_rate))),
                )
            out.append(codes.float().cpu().numpy().reshape(len(part), n_samples, -1))
        return np.concatenate(out).astype(np.float32), int(model.config.audio_encoder.sampling_rate)


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
