"""Metric spaces: in which coordinates predicted and true embeddings are compared.

The paper's identification accuracy (Eq. 2–3) correlates raw embedding vectors across dimensions. That is
the ``paper`` space, and the only one in which a number may sit beside the published figures. Some
embeddings have dimensions in fixed physical units (the ``acoustic`` descriptors: dB, kHz, ...) whose
means differ by orders of magnitude; a correlation across their dimensions compares every clip with the
same mean profile. For those the ``standardized`` space z-scores every embedding dimension with the mean
and sd of the *training* clips' target embeddings before any metric.

Which space an encoder uses by default is declared where the encoder is registered
(``register_encoder(..., metric_space=...)``, :func:`brain2music.embeddings.encoder_metric_space`);
``reproduce``, ``reconstruct`` and the report all apply the :class:`MetricSpace` recorded for it.

Ridge is equivariant to a per-dimension affine map of the targets, so decoders and saved predictions stay
in the encoder's units whatever the space; only the metrics see the transformed values.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from brain2music._checks import check_choice
from brain2music.errors import DataError

__all__ = ["METRIC_SPACES", "MetricSpace", "check_space"]

#: The metric spaces, in the order the docs list them.
METRIC_SPACES = ("paper", "standardized")


def check_space(space: str, *, what: str = "metric space") -> str:
    """Return ``space`` if it is one of :data:`METRIC_SPACES`, else raise :class:`ConfigError`."""
    return check_choice(space, METRIC_SPACES, what=what)


@dataclass(frozen=True)
class MetricSpace:
    """A metric space with its fitted statistics.

    Attributes
    ----------
    name : ``"paper"`` (identity) or ``"standardized"``.
    mean, scale : ``(dim,)`` training mean and sd of every embedding dimension (``standardized`` only;
        ``None`` for ``paper``). A constant dimension gets scale 1.
    """

    name: str
    mean: np.ndarray | None = None
    scale: np.ndarray | None = None

    @classmethod
    def fit(cls, name: str, train_embeddings: np.ndarray) -> MetricSpace:
        """The space ``name`` fitted on the training targets ``(n_clips, r, dim)`` or ``(n_samples, dim)``."""
        check_space(name)
        if name == "paper":
            return cls("paper")
        flat = np.asarray(train_embeddings, dtype=np.float64)
        flat = flat.reshape(-1, flat.shape[-1])
        if flat.shape[0] < 2:
            raise DataError(f"a standardized space needs at least 2 training samples; got {flat.shape[0]}")
        sd = flat.std(axis=0)
        return cls("standardized", flat.mean(axis=0), np.where(sd > 0, sd, 1.0))

    @classmethod
    def from_arrays(cls, name: str, mean=None, scale=None) -> MetricSpace:
        """Rebuild a space saved with :meth:`arrays` (``mean``/``scale`` empty for ``paper``)."""
        check_space(str(name))
        if name == "paper":
            return cls("paper")
        return cls("standardized", np.asarray(mean, dtype=np.float64), np.asarray(scale, dtype=np.float64))

    def arrays(self) -> dict[str, np.ndarray]:
        """``{"space", "space_mean", "space_scale"}`` to save beside predictions."""
        empty = np.zeros(0, dtype=np.float64)
        return {
            "space": np.asarray(self.name),
            "space_mean": empty if self.mean is None else np.asarray(self.mean, dtype=np.float64),
            "space_scale": empty if self.scale is None else np.asarray(self.scale, dtype=np.float64),
        }

    def transform(self, embeddings: np.ndarray) -> np.ndarray:
        """Embeddings ``(..., dim)`` in this space (float64); identity for ``paper``."""
        a = np.asarray(embeddings, dtype=np.float64)
        if self.name == "paper":
            return a
        if a.shape[-1] != self.mean.shape[0]:
            raise DataError(
                f"embeddings have {a.shape[-1]} dimensions; the {self.name} space was fitted on "
                f"{self.mean.shape[0]}"
            )
        return (a - self.mean) / self.scale
