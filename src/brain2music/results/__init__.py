"""The results model: the typed records of a results folder, its one reader and writer, its voxel grid.

This package sits below the stages: ``study`` writes it, ``reconstruct``, ``report``, ``live`` and
``run`` read it, and it imports none of them at import time (the embeddings and decoder files are read
and written through ``brain2music.embeddings`` and ``brain2music.models`` inside the methods that need
them). Modules:

- :mod:`~brain2music.results.records` — :class:`StudyResults` (``results.json``) and its rows;
- :mod:`~brain2music.results.reconstruction` — :class:`ReconstructionResults` (``reconstruction.json``),
  per-subject :class:`ReconstructionScores` nested kind → metric → :class:`Score`;
- :mod:`~brain2music.results.predictions` — :class:`Predictions` (``predictions/…/<subject>.npz``);
- :mod:`~brain2music.results.grid` — :class:`VoxelGrid`, a subject's voxels on its image grid
  (``transform`` / ``inverse_transform``);
- :mod:`~brain2music.results.folder` — :class:`ResultsFolder` (every read and write, one writer at a
  time) and :func:`one_writer`;
- :mod:`~brain2music.results.table` — the paper's Table 2 from a :class:`StudyResults`;
- :mod:`~brain2music.results.settings` — the frozen settings of every stage (:class:`StudySettings`,
  :class:`DataSource`, :class:`ReconstructSettings`), recorded in the results they produce.

The layout is documented in ``docs/results_layout.md``.
"""

from brain2music.results._record import SCHEMA_VERSION, ResultsLayoutError
from brain2music.results.folder import ResultsFolder, one_writer
from brain2music.results.grid import VoxelGrid
from brain2music.results.predictions import Predictions
from brain2music.results.reconstruction import (
    KINDS,
    ReconstructedClip,
    ReconstructionResults,
    ReconstructionScores,
    Score,
    SummaryStat,
)
from brain2music.results.records import (
    ChanceResult,
    EncoderInfo,
    EncodingResult,
    EnsembleParcels,
    GenreScore,
    HeldOutGenreScore,
    MethodResult,
    PairedTest,
    SplitHalfResult,
    StudyResults,
    SummaryRow,
)

__all__ = [
    "KINDS",
    "SCHEMA_VERSION",
    "ChanceResult",
    "EncoderInfo",
    "EncodingResult",
    "EnsembleParcels",
    "GenreScore",
    "HeldOutGenreScore",
    "MethodResult",
    "PairedTest",
    "Predictions",
    "ReconstructedClip",
    "ReconstructionResults",
    "ReconstructionScores",
    "ResultsFolder",
    "ResultsLayoutError",
    "Score",
    "SplitHalfResult",
    "StudyResults",
    "SummaryRow",
    "SummaryStat",
    "VoxelGrid",
    "one_writer",
]
