"""Old import path of :mod:`brain2music.study.reconstruct` (kept for existing scripts)."""

from brain2music.study.reconstruct import GenreTagger, reconstruct  # noqa: F401
