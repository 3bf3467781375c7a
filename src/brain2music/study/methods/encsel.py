"""``encsel``: ridge on the voxels an encoding model predicts well (Ciferri et al., without alignment)."""

from __future__ import annotations

from typing import ClassVar

from brain2music.study.methods.base import DecoderMethod, FittedMethod
from brain2music.study.methods.subset import fit_on_voxels


class EncselMethod(DecoderMethod):
    """Ridge on the encoding-selected voxels; subclasses change the ridge's ``kernel`` (``krr-rbf``)."""

    name = "encsel"
    needs = frozenset({"encoding"})
    description = "voxels with encoding-model CV r > threshold on the training clips; ridge"
    #: ``kernel`` of :class:`~brain2music.models.RidgeDecoder`; ``None`` keeps the study's linear ridge.
    kernel: ClassVar[str | None] = None

    def fit(self, ctx, targets) -> FittedMethod:
        """Select voxels on ``ctx``'s training clips only, then fit the ridge on them."""
        selected = ctx.selected_voxels(targets)
        ridge = ctx.ridge() if self.kernel is None else ctx.ridge(kernel=self.kernel)
        return fit_on_voxels(ctx, targets, selected, ridge)
