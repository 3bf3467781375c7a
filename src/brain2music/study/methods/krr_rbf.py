"""``krr-rbf``: kernel ridge with an RBF kernel on the ``encsel`` voxels (nonlinear counterpart)."""

from __future__ import annotations

from brain2music.study.methods.encsel import EncselMethod


class KernelRbfMethod(EncselMethod):
    """:class:`EncselMethod` with an RBF kernel ridge."""

    name = "krr-rbf"
    description = "encsel voxels; RBF kernel ridge (Nystroem above 2,000 samples)"
    kernel = "rbf"
