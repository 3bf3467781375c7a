"""The decoder-method protocol: what a method needs, how it fits, what a fitted method gives back.

A method is a small class with a ``name``, the set of things it ``needs`` and ``fit(ctx, targets)``
(per subject) or ``prepare`` + ``fit_group`` (methods that pool subjects). Methods build their ridge
models with ``ctx.ridge(...)`` and read shared fits (encoding model, voxel selection, parcels) from the
:class:`~brain2music.study.context.SubjectContext`, so a precomputation made once per subject (and per
fold) serves every method and embedding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

__all__ = ["NEEDS", "DecoderMethod", "FittedMethod", "GroupMethod", "flat"]

#: What a method may declare in ``needs``.
NEEDS = frozenset({"parcels", "encoding", "subjects"})


def flat(a: np.ndarray) -> np.ndarray:
    """``(n_clips, r, n)`` → ``(n_clips * r, n)`` window samples."""
    return a.reshape(-1, a.shape[-1])


@dataclass
class FittedMethod:
    """A fitted decoder and what the study records about it.

    Attributes
    ----------
    decoder : ``predict(X (n_samples, n_voxels of the context)) -> (n_samples, dim)``
    saved : the object written to ``decoders/``: ``predict`` on the subject's *full* voxel vector
        (selection and alignment inside); defaults to ``decoder``.
    train_cv_r : mean over embedding dimensions of the decoder's own cross-validated Pearson r on the
        training clips (run-grouped folds), read after the method's choices were made on all of them;
        recorded as ``train_cv_r_inner``. Methods are compared by the nested score of
        :mod:`brain2music.study.nested`, which refits those choices in every outer fold.
    n_inputs : voxels the decoder reads.
    records : extra result records (e.g. :class:`~brain2music.results.EnsembleParcels`).
    """

    decoder: Any
    train_cv_r: float | None
    n_inputs: int
    saved: Any = None
    fit_seconds: float = 0.0
    records: list = field(default_factory=list)

    def __post_init__(self):
        if self.saved is None:
            self.saved = self.decoder


class DecoderMethod:
    """Base of per-subject methods: subclasses set ``name``, ``needs``, ``description`` and ``fit``."""

    name: ClassVar[str] = "base"
    needs: ClassVar[frozenset[str]] = frozenset()
    description: ClassVar[str] = ""

    def fit(self, ctx, targets) -> FittedMethod:  # pragma: no cover - abstract
        """Fit on ``ctx``'s training clips and ``targets.train``; return the :class:`FittedMethod`."""
        raise NotImplementedError


class GroupMethod(DecoderMethod):
    """A method fitted on several subjects at once (``needs`` holds ``"subjects"``).

    ``prepare(ctx, targets)`` runs in the subject loop and returns a (small) state, usually a context
    restricted to the voxels the method uses; ``fit_group({subject: state})`` then returns
    ``{subject: (ctx_for_scoring, FittedMethod)}``.
    """

    needs: ClassVar[frozenset[str]] = frozenset({"subjects"})

    def prepare(self, ctx, targets) -> Any:  # pragma: no cover - abstract
        """The (small) per-subject state :meth:`fit_group` needs, made in the subject loop."""
        raise NotImplementedError

    def fit_group(
        self, states: dict[str, Any], targets: dict[str, Any]
    ) -> dict[str, tuple[Any, FittedMethod]]:
        """Fit on every subject's state at once; ``{subject: (ctx_for_scoring, FittedMethod)}``."""
        raise NotImplementedError  # pragma: no cover - abstract

    def fit(self, ctx, targets) -> FittedMethod:
        """Raises :class:`TypeError`: a group method is fitted with :meth:`prepare` and :meth:`fit_group`."""
        raise TypeError(f"method {self.name!r} pools subjects; use prepare() and fit_group()")
