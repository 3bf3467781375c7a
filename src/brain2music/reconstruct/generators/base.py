"""The generator protocol, the registry, the ``debug`` generator and best-of-N selection.

A generator turns a target embedding into new audio::

    audio, sr = generator.generate(target_embedding, n_samples=1, duration=15.0, random_state=0)

``target_embedding`` is ``(dim,)`` or ``(n_windows, dim)`` (window-averaged by the generator when it
conditions on one vector, as the paper did with MuLan); ``audio`` is always ``(n_samples, n_audio)``
float32 at ``sr`` Hz. Generators that need an encoder (the offline search, best-of-N) take it at
construction.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

from brain2music._registry import Registry
from brain2music.errors import ConfigError, DataError
from brain2music.windows import clip_vectors

__all__ = [
    "BestOfN",
    "DebugGenerator",
    "Generator",
    "check_generator_options",
    "cosine_scores",
    "generator_parameters",
    "get_generator",
    "describe_generators",
    "list_generators",
    "register_generator",
    "resolve_generator_options",
    "target_vector",
]


def target_vector(target_embedding: np.ndarray, *, dim: int | None = None) -> np.ndarray:
    """``(dim,)`` or ``(n_windows, dim)`` → the window-averaged ``(dim,)`` float64 vector, checked."""
    t = np.asarray(target_embedding, dtype=np.float64)
    if t.ndim == 2:
        t = clip_vectors(t[None])[0]
    if t.ndim != 1 or (dim is not None and t.shape[0] != dim):
        want = f"({dim},) or (n_windows, {dim})" if dim else "(dim,) or (n_windows, dim)"
        raise DataError(f"target_embedding must have shape {want}; got {np.shape(target_embedding)}")
    if not np.all(np.isfinite(t)):
        raise DataError("target_embedding contains NaN or infinite values")
    return t


def cosine_scores(candidates: np.ndarray, target: np.ndarray, *, center=None, scale=None) -> np.ndarray:
    """Cosine similarity of window-averaged ``candidates (n, [r,] dim)`` to ``target ([r,] dim)``.

    With ``center``/``scale`` (e.g. mean and sd of a reference set) the vectors are standardised first,
    which makes descriptors with a large common offset (acoustic features) comparable.
    """
    c = clip_vectors(np.asarray(candidates, dtype=np.float64))
    t = target_vector(target, dim=c.shape[1])
    if center is not None:
        c, t = c - center, t - center
    if scale is not None:
        c, t = c / scale, t / scale
    denom = np.linalg.norm(c, axis=1) * np.linalg.norm(t)
    return (c @ t) / np.where(denom == 0, 1.0, denom)


class Generator:
    """Base class: subclasses set ``name`` and ``sr`` and implement :meth:`_generate_one`."""

    name = "base"
    sr = 22050

    def generate(
        self,
        target_embedding: np.ndarray,
        *,
        n_samples: int = 1,
        duration: float = 15.0,
        random_state: int | None = None,
    ) -> tuple[np.ndarray, int]:
        """Generate ``n_samples`` clips of ``duration`` s for one target.

        Returns
        -------
        audio : ndarray ``(n_samples, round(duration * sr))`` float32
        sr : int
        """
        if int(n_samples) < 1:
            raise ConfigError(f"n_samples must be >= 1, got {n_samples!r}")
        if not duration or duration <= 0:
            raise ConfigError(f"duration must be a positive number of seconds, got {duration!r}")
        rng = np.random.default_rng(random_state)
        n = int(round(duration * self.sr))
        out = np.zeros((int(n_samples), n), dtype=np.float32)
        for i in range(int(n_samples)):
            audio = np.asarray(
                self._generate_one(target_embedding, duration=duration, rng=rng), dtype=np.float32
            ).reshape(-1)[:n]
            out[i, : len(audio)] = audio
        return out, int(self.sr)

    def generate_many(
        self,
        target_embeddings,
        *,
        n_samples: int = 1,
        duration: float = 15.0,
        random_state: int | None = None,
    ) -> tuple[np.ndarray, int]:
        """Generate for many targets ``(n, [r,] dim)``: ``(n, n_samples, n_audio)`` float32 and ``sr``.

        Neural generators batch the targets on their device; this default generates one target at a time,
        target ``i`` with the ``i``-th seed drawn from ``random_state``.
        """
        seeds = np.random.default_rng(random_state).integers(2**31 - 1, size=len(target_embeddings))
        clips = [
            self.generate(t, n_samples=n_samples, duration=duration, random_state=int(s))
            for t, s in zip(target_embeddings, seeds, strict=True)
        ]
        if not clips:
            return np.zeros((0, int(n_samples), int(round(duration * self.sr))), np.float32), int(self.sr)
        return np.stack([c[0] for c in clips]), int(clips[0][1])

    def _generate_one(self, target_embedding, *, duration: float, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError  # pragma: no cover

    @property
    def config(self) -> dict:
        """What identifies the generator in a reconstruction record: ``{"generator": name, "sr": sr}``."""
        return {"generator": self.name, "sr": int(self.sr)}


class DebugGenerator(Generator):
    """Instant, dependency-free generator for tests and dry runs.

    Plays a chord of three sine tones whose pitches are a hash of the window-averaged target, with a
    little noise drawn from ``random_state``: different targets give different audio, the same target
    and seed give the same audio. It does not try to match the target's embedding.
    """

    name = "debug"

    def __init__(self, *, sr: int = 8000):
        self.sr = int(sr)

    def _generate_one(self, target_embedding, *, duration, rng):
        t = target_vector(target_embedding)
        digest = hashlib.sha256(np.round(t, 5).tobytes()).digest()
        pitches = [48 + digest[i] % 36 for i in range(3)]
        times = np.arange(int(round(duration * self.sr))) / self.sr
        audio = sum(np.sin(2 * np.pi * 440.0 * 2 ** ((p - 69) / 12) * times) for p in pitches) / 3
        audio = audio + 0.01 * rng.standard_normal(times.size)
        return (0.5 * audio).astype(np.float32)


class BestOfN(Generator):
    """Generate ``n`` candidates with ``base`` and keep the one whose score against the target is highest.

    Parameters
    ----------
    base : Generator
    encoder
        Embeds each candidate (``embed(audio, sr) -> (r, dim)``).
    n : int
        Candidates per requested sample (Ciferri et al. used 100).
    scorer : callable, optional
        ``scorer(candidate_embeddings (n, r, dim), target_embedding) -> (n,)`` scores; default: cosine of
        window averages. Pass e.g. an encoding model's predicted-response correlation to select as
        Ciferri et al. did.

    Attributes
    ----------
    last_scores_ : ndarray ``(n_samples, n)`` scores of the candidates of the last call.
    last_choice_ : ndarray ``(n_samples,)`` index of the kept candidate of each sample.
    last_embeddings_ : ndarray ``(n_samples, r, dim)`` embeddings of the kept candidates.

    With ``n_samples=1`` the candidates are ``base.generate(target, n_samples=n, random_state=random_state)``,
    so for a generator that draws its samples one after another from ``random_state`` (``debug``,
    ``offline``, ``musicldm``) the first candidate is exactly the plain generation with the same seed and
    best-of-N never scores below best-of-1 by its own criterion.
    """

    name = "best-of"

    def __init__(self, base: Generator, encoder: Any, *, n: int = 8, scorer: Callable | None = None):
        if int(n) < 1:
            raise ConfigError(f"best-of n must be >= 1, got {n!r}")
        self.base = base
        self.encoder = encoder
        self.n = int(n)
        self.scorer = scorer
        self.sr = base.sr
        self.name = f"best-of-{self.n}({base.name})"

    def generate(self, target_embedding, *, n_samples=1, duration=15.0, random_state=None):
        """Generate ``n_samples`` clips, each the best-scoring of ``n`` candidates of ``base``.

        Each candidate is embedded with ``encoder`` (from its first ``min(duration, 15)`` s) and scored
        against ``target_embedding`` with ``scorer`` (default: cosine of the window averages); the argmax is
        kept. Sample ``i`` uses seed ``random_state`` when ``n_samples == 1``, else the ``i``-th seed drawn
        from it.

        Returns
        -------
        audio : ndarray ``(n_samples, round(duration * sr))`` float32
        sr : int

        Sets ``last_scores_``, ``last_choice_`` and ``last_embeddings_`` (see the class).
        """
        from brain2music.reconstruct.clip_embedding import clip_embedding, prepare_clip

        rng = np.random.default_rng(random_state)
        seeds = [random_state] if int(n_samples) == 1 else rng.integers(2**31, size=int(n_samples))
        picks, scores, choice, kept = [], [], [], []
        for seed in seeds:
            cands, sr = self.base.generate(
                target_embedding, n_samples=self.n, duration=duration, random_state=seed
            )
            embs = np.stack(
                [
                    clip_embedding(self.encoder, prepare_clip(a, sr, duration=min(duration, 15.0)), sr)
                    for a in cands
                ]
            )
            s = (
                np.asarray(self.scorer(embs, target_embedding), dtype=np.float64)
                if self.scorer is not None
                else cosine_scores(embs, target_embedding)
            )
            best = int(np.argmax(s))
            picks.append(cands[best])
            scores.append(s)
            choice.append(best)
            kept.append(embs[best])
        self.last_scores_ = np.asarray(scores)
        self.last_choice_ = np.asarray(choice)
        self.last_embeddings_ = np.stack(kept)
        return np.stack(picks), int(sr)

    @property
    def config(self) -> dict:
        """``{"generator": "best-of", "n", "score", "base"}``: ``score`` is the scorer's name (default
        ``"embedding"``), ``base`` the base generator's config."""
        return {"generator": "best-of", "n": self.n, "score": getattr(self.scorer, "name", "embedding"),
                "base": self.base.config}  # fmt: skip


# ------------------------------------------------------------------------------------------------ registry
_REGISTRY: Registry[tuple[Callable[..., Generator], str, Callable[[], Callable] | None]] = Registry(
    "generator"
)


def register_generator(
    name: str,
    factory: Callable[..., Generator],
    *,
    description: str = "",
    signature_of: Callable[[], Callable] | None = None,
) -> None:
    """Register ``factory(**kwargs) -> Generator`` under ``name``.

    ``signature_of`` returns the callable whose signature lists the options (e.g. the generator class,
    imported lazily) when ``factory`` only forwards ``**kwargs``.
    """
    _REGISTRY.register(name, (factory, description, signature_of))


def list_generators() -> list[str]:
    """Names of the registered generators, sorted."""
    return _REGISTRY.names()


def describe_generators() -> dict[str, str]:
    """``{name: one-line description}`` of the registered generators."""
    return {name: _REGISTRY.get(name)[1] for name in list_generators()}


def _entry(name: str):
    return _REGISTRY.get(name)


def _signature(name: str) -> inspect.Signature:
    factory, _, signature_of = _entry(name)
    return inspect.signature(signature_of() if signature_of is not None else factory)


def generator_parameters(name: str) -> dict[str, Any]:
    """``{option: default}`` the generator ``name`` takes (from its constructor; nothing is loaded)."""
    return {
        k: p.default
        for k, p in _signature(name).parameters.items()
        if k != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }


def check_generator_options(name: str, options: dict, *, source: str = "") -> None:
    """Raise :class:`ConfigError` for an option the generator ``name`` does not take."""
    params = _signature(name).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    takes = generator_parameters(name)
    unknown = [k for k in options if k not in takes]
    if unknown:
        where = f" (from {source})" if source else ""
        raise ConfigError(
            f"generator {name!r} does not take option(s) {', '.join(repr(k) for k in unknown)}{where}; "
            f"it takes: {', '.join(takes) or 'no options'}"
        )


def resolve_generator_options(
    name: str,
    options: dict | None = None,
    *,
    device: str | None = None,
    dtype: str | None = None,
    source: str = "--generator-option",
) -> dict[str, Any]:
    """The keyword arguments of generator ``name``: ``options`` checked, plus ``device``/``dtype`` if it takes them."""
    kwargs = dict(options or {})
    check_generator_options(name, kwargs, source=source)
    takes = generator_parameters(name)
    for key, value in (("device", device), ("dtype", dtype)):
        if value is not None and key in takes:
            kwargs.setdefault(key, value)
    return kwargs


def get_generator(name: str | Generator, **kwargs) -> Generator:
    """Build the generator registered as ``name`` with ``kwargs`` (a Generator is returned unchanged).

    Built-in names: ``debug``, ``offline`` (needs ``encoder=``), ``musicldm``, ``musicgen``,
    ``best-of`` (``base=``, ``encoder=``, ``n=``). An option the generator does not take raises
    :class:`ConfigError` before anything is loaded.
    """
    if isinstance(name, Generator):
        return name
    factory = _entry(name)[0]
    check_generator_options(name, kwargs)
    try:
        return factory(**kwargs)
    except TypeError as exc:
        if "unexpected keyword" in str(exc) or "required" in str(exc):
            raise ConfigError(f"generator {name!r}: {exc}") from exc
        raise
