"""A linear map from CLAP-audio to CLAP-text embeddings, for generators trained on text embeddings.

MusicLDM was trained on CLAP *text* embeddings; a predicted CLAP *audio* embedding sits in the same space
but not the same distribution, so :class:`ClapAligner` (ridge, fitted on paired clips and captions, as
Ciferri et al. did on MusicCaps) maps it into the text distribution first
(:class:`~brain2music.reconstruct.generators.neural.MusicLDMGenerator` takes it as ``aligner``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from brain2music._io import save_npz
from brain2music.errors import ConfigError, DataError, DataFileNotFoundError
from brain2music.windows import clip_vectors

__all__ = ["ClapAligner", "as_vectors"]


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
        """Fit the ridge map from paired clips: a ``RidgeCV`` over ``alphas`` (efficient leave-one-out).

        Parameters
        ----------
        audio_embeddings : ndarray ``(n, dim_audio)``, ``(n, r, dim_audio)`` (window-averaged) or
            ``(dim_audio,)``
        text_embeddings : ndarray ``(n, dim_text)`` or ``(n, 1, dim_text)``
            The caption embedding of each clip, in the same order.

        Returns
        -------
        self, with ``coef_``, ``intercept_`` and ``alpha_`` set.

        Raises
        ------
        DataError
            When the two counts differ, there are fewer than 3 pairs, or an array is not 1-, 2- or 3-d.
        """
        from sklearn.linear_model import RidgeCV

        x = as_vectors(audio_embeddings, "audio_embeddings")
        y = as_vectors(text_embeddings, "text_embeddings")
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
        """Map CLAP-audio embeddings into the text space: ``(n, [r,] dim_audio)`` → ``(n, dim_text)``
        float64, each row L2-normalised.

        Raises
        ------
        ConfigError
            When the aligner is not fitted.
        DataError
            When the embedding dimension differs from the one it was fitted on.
        """
        if not hasattr(self, "coef_"):
            raise ConfigError("ClapAligner is not fitted; call fit() or ClapAligner.load()")
        x = as_vectors(audio_embeddings, "audio_embeddings")
        if x.shape[1] != self.coef_.shape[1]:
            raise DataError(
                f"ClapAligner expects {self.coef_.shape[1]}-d audio embeddings; got {x.shape[1]}-d"
            )
        y = x @ self.coef_.T + self.intercept_
        return y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12)

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``coef``, ``intercept``, ``alpha`` and the package version to ``path`` (``.npz``, atomic).

        Returns the path.
        """
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
        """An aligner read from a file :meth:`save` wrote (fitted, ``alphas`` at the default).

        Raises
        ------
        DataFileNotFoundError
            When ``path`` is not a file.
        """
        path = Path(path)
        if not path.is_file():
            raise DataFileNotFoundError(f"aligner file not found: {path}")
        with np.load(path, allow_pickle=False) as z:
            out = cls()
            out.coef_, out.intercept_, out.alpha_ = z["coef"], z["intercept"], float(z["alpha"])
        return out


def as_vectors(x, name: str) -> np.ndarray:
    """``(n, dim)``, ``(n, r, dim)`` (window-averaged) or ``(dim,)`` embeddings as float64 ``(n, dim)``."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 3:
        x = clip_vectors(x)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2:
        raise DataError(f"{name}: expected (n, dim) or (n, r, dim); got shape {x.shape}")
    return x
