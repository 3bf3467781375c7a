"""The offline generator: new music from the simulator's composer, steered towards a target embedding.

No downloaded weights; works with any encoder (``acoustic`` included). Two stages:

1. **Learn a map embedding → composer parameters** (:meth:`OfflineGenerator.fit`): draw ``n_bank``
   tracks with :func:`brain2music.simulate.composer.sample_params` (genres in turn), render them, embed
   them, and fit a ridge regression from the standardised window-averaged embedding to the parameter
   vector of :func:`~brain2music.simulate.composer.params_to_vector`. The rendered bank is kept as a
   nearest-neighbour memory.
2. **Refine by search** (:meth:`OfflineGenerator.generate`): start from the ridge prediction and the
   ``n_neighbors`` bank tracks nearest to the target, then for ``n_rounds`` rounds perturb the best
   parameter vectors (Gaussian steps in the ``[0, 1]`` encoding, genre swaps, new note-level seeds),
   render and embed ``n_candidates`` new tracks, and keep the best. The score is the cosine similarity of
   window-averaged embeddings after standardising with the bank's mean and sd (so descriptors with a
   large shared offset do not make every cosine ≈ 1).

The returned clip is always freshly composed and rendered with a new seed, never a bank or library
track. Cost per generated clip ≈ ``(n_neighbors + 1 + n_rounds * n_candidates)`` renders + embeddings
(bank tracks are already embedded; about 0.3 s each with ``acoustic`` at 22 kHz on one core); fitting
costs ``n_bank`` renders + embeddings once (cache it with ``cache=``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from brain2music._checks import check_choice
from brain2music._io import save_npz
from brain2music.errors import ConfigError
from brain2music.reconstruct.clip_embedding import clip_embedding, encoder_config, encoder_name, prepare_clip
from brain2music.reconstruct.generators.base import Generator, cosine_scores, target_vector
from brain2music.windows import clip_vectors

__all__ = ["OFFLINE_PRESETS", "OfflineGenerator"]

#: Named settings: ``demo`` is cheap enough for ``brain2music demo`` (6 renders per clip, a 60-track
#: bank at 16 kHz); ``default`` is the class defaults. See benchmarks/library.md for measured costs.
OFFLINE_PRESETS: dict[str, dict] = {
    "demo": dict(n_bank=60, n_candidates=3, n_rounds=1, n_neighbors=2),
    "default": {},
}

# Coordinates of composer.params_to_vector that are continuous knobs (the rest are choices).
_CONTINUOUS = frozenset(
    (
        "tempo",
        "swing",
        "melody_density",
        "melody_register",
        "distortion",
        "reverb",
        "compression",
        "lowpass",
        "velocity",
    )
)


class OfflineGenerator(Generator):
    """Compose new tracks whose embedding approaches the target (see the module docstring).

    Parameters
    ----------
    encoder
        Encoder object or registry name; its embeddings define the target space.
    n_bank : int
        Tracks rendered to learn the embedding → parameters map (≥ 10, one genre each in turn).
    n_candidates, n_rounds : int
        Search effort per generated clip.
    n_neighbors : int
        Bank tracks (nearest to the target) that seed the search.
    step : float
        Initial sd of the Gaussian steps in the ``[0, 1]`` parameter encoding (halved each round).
    sr : int
        Rendering sample rate. Keep the stimuli's 22050 Hz: a lower rate is cheaper to render but
        leaves the top band empty, a systematic difference from the targets that dominated the
        standardised score and brought generation down to chance in our test (benchmarks/library.md).
    genres : sequence of str, optional
        Genres the bank draws from (default: the 10 GTZAN genres).
    cache : path, optional
        ``.npz`` file keeping the fitted bank (reused when the encoder and settings match).
    random_state : int
    progress : bool
    preset : {"demo", "default"}, optional
        Named settings from :data:`OFFLINE_PRESETS`; explicit arguments still win.

    Attributes
    ----------
    bank_embeddings_ : ndarray ``(n_bank, n_windows, dim)``
    bank_params_ : ndarray ``(n_bank, n_params)``
    bank_genres_ : ndarray ``(n_bank,)`` of str
    last_score_ : float
        Score of the last generated clip (cosine after standardisation).
    """

    name = "offline"

    def __init__(
        self,
        encoder: Any,
        *,
        n_bank: int = 100,
        n_candidates: int = 6,
        n_rounds: int = 2,
        n_neighbors: int = 3,
        step: float = 0.15,
        sr: int = 22050,
        genres=None,
        cache: str | os.PathLike | None = None,
        random_state: int = 0,
        progress: bool = True,
        preset: str | None = None,
    ):
        self.encoder = encoder
        self.n_bank = n_bank
        self.n_candidates = n_candidates
        self.n_rounds = n_rounds
        self.n_neighbors = n_neighbors
        self.step = step
        self.sr = sr
        self.genres = genres
        self.cache = cache
        self.random_state = random_state
        self.progress = progress
        self.preset = preset
        if preset is not None:
            check_choice(preset, sorted(OFFLINE_PRESETS), what="OfflineGenerator: preset")
            # A preset replaces the defaults only: compare with the signature's defaults.
            import inspect

            defaults = {k: v.default for k, v in inspect.signature(type(self).__init__).parameters.items()}
            for key, value in OFFLINE_PRESETS[preset].items():
                if getattr(self, key) == defaults[key]:
                    setattr(self, key, value)

    # -- helpers
    @property
    def config(self) -> dict:
        """The encoder name, the search options, ``sr``, the genres of the sound bank and ``random_state``."""
        return {
            "generator": self.name,
            "encoder": encoder_name(self._enc()),
            "n_bank": int(self.n_bank),
            "n_candidates": int(self.n_candidates),
            "n_rounds": int(self.n_rounds),
            "n_neighbors": int(self.n_neighbors),
            "step": float(self.step),
            "sr": int(self.sr),
            "genres": list(self._genres()),
            "random_state": int(self.random_state),
        }

    def _enc(self):
        from brain2music.reconstruct.clip_embedding import resolve_encoder

        if not hasattr(self, "_encoder_obj"):
            self._encoder_obj = resolve_encoder(self.encoder)
        return self._encoder_obj

    def _genres(self) -> tuple[str, ...]:
        from brain2music.data.events import GENRES

        return tuple(self.genres) if self.genres else tuple(GENRES)

    def _render_embed(self, params, duration: float) -> tuple[np.ndarray, np.ndarray]:
        from brain2music.simulate.composer import render

        audio = render(params, sr=int(self.sr), duration=float(duration))
        if not np.all(np.isfinite(audio)):
            raise RuntimeError(f"the composer rendered non-finite audio for {params}")
        clip = prepare_clip(audio, int(self.sr), duration=min(float(duration), 15.0))
        return audio, clip_embedding(self._enc(), clip, int(self.sr), source="offline generator")

    def _check(self) -> None:
        for name, low in (("n_bank", 10), ("n_candidates", 1), ("n_rounds", 0), ("n_neighbors", 0)):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < low:
                raise ConfigError(f"OfflineGenerator: {name} must be an integer >= {low}, got {value!r}")
        if int(self.sr) < 16000:
            # The composer's effects (a low-pass up to 8 kHz) need a Nyquist frequency above 8 kHz.
            raise ConfigError(f"OfflineGenerator: sr must be >= 16000 Hz, got {self.sr!r}")
        if not self.step > 0:
            raise ConfigError(f"OfflineGenerator: step must be > 0, got {self.step!r}")

    # -- fitting
    def fit(self) -> OfflineGenerator:
        """Render and embed the bank and fit the ridge map embedding → parameters."""
        from sklearn.linear_model import RidgeCV
        from tqdm.auto import tqdm

        from brain2music.simulate.composer import params_to_vector, sample_params

        self._check()
        genres = self._genres()
        key = {
            k: v
            for k, v in self.config.items()
            if k not in ("n_candidates", "n_rounds", "n_neighbors", "step")
        }
        key["encoder_config"] = encoder_config(self._enc())
        if not self._load_cache(key):
            rng = np.random.default_rng(self.random_state)
            embs, vecs, names, seeds = [], [], [], []
            for i in tqdm(range(int(self.n_bank)), desc="offline generator: bank", disable=not self.progress):
                params = sample_params(genres[i % len(genres)], rng)
                _, emb = self._render_embed(params, 15.0)
                embs.append(emb)
                vecs.append(params_to_vector(params))
                names.append(params.genre)
                seeds.append(params.seed)
            self.bank_embeddings_ = np.stack(embs).astype(np.float32)
            self.bank_params_ = np.stack(vecs)
            self.bank_genres_ = np.asarray(names)
            self.bank_seeds_ = np.asarray(seeds, dtype=np.int64)
            if self.cache is not None:
                save_npz(
                    self.cache,
                    embeddings=self.bank_embeddings_,
                    params=self.bank_params_,
                    genres=self.bank_genres_,
                    seeds=self.bank_seeds_,
                    key=np.asarray(_json(key)),
                )
        x = clip_vectors(self.bank_embeddings_).astype(np.float64)
        self.center_ = x.mean(axis=0)
        sd = x.std(axis=0)
        self.scale_ = np.where(sd > 1e-8 * max(1.0, float(sd.max())), sd, 1.0)
        self.map_ = RidgeCV(alphas=np.logspace(-2, 4, 13)).fit(
            (x - self.center_) / self.scale_, self.bank_params_
        )
        return self

    def _load_cache(self, key: dict) -> bool:
        if self.cache is None or not Path(self.cache).is_file():
            return False
        with np.load(self.cache, allow_pickle=False) as z:
            if str(z["key"]) != _json(key):
                return False
            self.bank_embeddings_ = z["embeddings"]
            self.bank_params_ = z["params"]
            self.bank_genres_ = z["genres"]
            self.bank_seeds_ = z["seeds"]
        return True

    # -- generation
    def predict_params(self, target_embedding) -> np.ndarray:
        """Ridge estimate of the parameter vector for a target ``(dim,)``/``(r, dim)`` → ``(n_params,)``."""
        if not hasattr(self, "map_"):
            self.fit()
        t = target_vector(target_embedding, dim=self.bank_embeddings_.shape[2])
        return np.clip(self.map_.predict(((t - self.center_) / self.scale_)[None])[0], 0.0, 1.0)

    @staticmethod
    def _mutate(vec: np.ndarray, sd: float, rng: np.random.Generator, *, p_switch: float) -> np.ndarray:
        """Gaussian step on the continuous coordinates; each categorical one re-drawn with prob ``p_switch``.

        Categorical coordinates (key, mode, programs, patterns) are not stepped: a small step there would
        silently swap an instrument, which changes the sound far more than any continuous knob.
        """
        from brain2music.data.events import GENRES
        from brain2music.simulate.composer import PARAM_NAMES

        vec = np.array(vec, dtype=np.float64, copy=True)
        cont = np.array([n in _CONTINUOUS for n in PARAM_NAMES])
        vec[cont] += rng.normal(0.0, sd, int(cont.sum()))
        if p_switch > 0:
            n_genres = len(GENRES)
            if rng.random() < p_switch:
                vec[:n_genres] = 0.0
                vec[int(rng.integers(n_genres))] = 1.0
            cat = np.flatnonzero(~cont)
            cat = cat[cat >= n_genres]
            flip = cat[rng.random(cat.size) < p_switch]
            vec[flip] = rng.random(flip.size)
        return np.clip(vec, 0.0, 1.0)

    def _score(self, embs: np.ndarray, target) -> np.ndarray:
        return cosine_scores(embs, target, center=self.center_, scale=self.scale_)

    def _generate_one(self, target_embedding, *, duration, rng):
        from tqdm.auto import tqdm

        from brain2music.simulate.composer import params_from_vector

        if not hasattr(self, "map_"):
            self.fit()
        target = target_vector(target_embedding, dim=self.bank_embeddings_.shape[2])
        bank_scores = self._score(self.bank_embeddings_, target)
        order = np.argsort(-bank_scores)[: int(self.n_neighbors)]
        # Starting points: the ridge estimate (new note-level seed) and the nearest bank tracks with their
        # own seed but perturbed parameters, so every candidate is new music yet close to a good track.
        starts = [(self.predict_params(target), int(rng.integers(2**31 - 1)))] + [
            (
                self._mutate(self.bank_params_[i], float(self.step) / 2, rng, p_switch=0.0),
                int(self.bank_seeds_[i]),
            )
            for i in order
        ]
        pool: list[tuple[float, np.ndarray, int, np.ndarray]] = []  # (score, param vector, seed, audio)
        total = len(starts) + int(self.n_rounds) * int(self.n_candidates)
        bar = tqdm(total=total, desc="offline generator: search", disable=not self.progress, leave=False)

        def evaluate(vec, seed):
            audio, emb = self._render_embed(params_from_vector(vec, seed=seed), duration)
            pool.append((float(self._score(emb[None], target)[0]), vec, seed, audio))
            bar.update()

        for vec, seed in starts:
            evaluate(vec, seed)
        for rnd in range(int(self.n_rounds)):
            pool.sort(key=lambda p: -p[0])
            parents = pool[:2]
            sd = float(self.step) / (2**rnd)
            for c in range(int(self.n_candidates)):
                _, pvec, pseed, _ = parents[c % len(parents)]
                vec = self._mutate(pvec, sd, rng, p_switch=0.15)
                # Half the children keep the parent's notes (refine the sound), half get new notes.
                seed = pseed if rng.random() < 0.5 else int(rng.integers(2**31 - 1))
                evaluate(vec, seed)
        bar.close()
        best = max(pool, key=lambda p: p[0])
        self.last_score_ = best[0]
        self.last_params_ = params_from_vector(best[1], seed=best[2])
        return best[3]


def _json(obj) -> str:
    import json

    return json.dumps(obj, sort_keys=True, default=str)
