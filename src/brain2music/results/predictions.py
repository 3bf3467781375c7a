"""The test predictions of one decoder, as ``predictions/<encoder>/<method>/<subject>.npz`` holds them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from brain2music.evaluate.space import MetricSpace

__all__ = ["Predictions"]


@dataclass
class Predictions:
    """``predictions/<encoder>/<method>/<subject>.npz``: test predictions and how they were scored.

    Attributes
    ----------
    clip_ids, genres : ``(n_test,)`` str
    predicted, target : ``(n_test, r, dim)`` float32, in the encoder's units
    similarity : ``(n_test, n_test)`` the matrix ``C_ij`` of the id acc, in the metric space ``space``
    clip_scores : ``(n_test,)`` per-clip identification scores (Eq. 3)
    space : :class:`~brain2music.evaluate.space.MetricSpace` fitted on the training targets
    """

    subject: str
    encoder: str
    method: str
    clip_ids: np.ndarray
    genres: np.ndarray
    predicted: np.ndarray
    target: np.ndarray
    similarity: np.ndarray
    clip_scores: np.ndarray
    space: MetricSpace
