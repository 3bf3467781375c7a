"""The records of ``results.json``: what ``reproduce`` measured, per subject, embedding and method.

:class:`StudyResults` holds them all; every other class here is one row of one of its lists. How another
stage adds a field: give the dataclass a typed field with a default (``None``, ``0.0``,
``field(default_factory=dict)``), fill it where the record is built, and document it in
``docs/results_layout.md``. Adding an optional field does not change :data:`SCHEMA_VERSION`; changing
what a field means does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from brain2music import __version__
from brain2music.errors import DataError
from brain2music.results._record import SCHEMA_VERSION, _Record
from brain2music.results.settings import StudySettings

__all__ = [
    "ChanceResult",
    "EncoderInfo",
    "EncodingResult",
    "EnsembleParcels",
    "GenreScore",
    "HeldOutGenreScore",
    "MethodResult",
    "PairedTest",
    "SplitHalfResult",
    "StudyResults",
    "SummaryRow",
]


@dataclass
class EncoderInfo(_Record):
    """One embedding of the study: its windows, size, file and the metric space of its numbers."""

    window: float
    r: int
    dim: int
    embeddings: str  # relative path of embeddings/<encoder>.npz
    space: str  # "paper" | "standardized"
    # Constructor options the encoder was built with (--encoder-option; not the device): what
    # reconstruct needs to rebuild the same encoder. Empty for precomputed embeddings.
    options: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)


@dataclass
class MethodResult(_Record):
    """The score of one decoder method for one subject, embedding and split.

    ``id_acc_ci`` is the 95 % bootstrap interval over the test clips, ``id_acc_p`` the permutation
    p-value against chance; both ``None`` for the ``train`` split. ``top1_acc`` / ``top5_acc``: the
    peers' N-way identification, the fraction of test clips whose true target is among the 1 / 5 most
    correlated with the prediction (chance ``k / n_clips``), with the same bootstrap interval and
    permutation p; ``None`` for the ``train`` split and in older folders. ``train_cv_r`` is the
    method's *nested* cross-validated Pearson r on the training clips (every choice of the method
    refitted in each outer run-grouped fold; the criterion ``reconstruct`` and the report select a method
    by); ``train_cv_r_inner`` the CV r read after those choices were made on all training clips
    (recorded for comparison, never used to choose); ``train_cv_id_acc`` the nested identification
    accuracy among held-out training clips (the score a method is chosen by); ``selection_seconds`` the
    time the nested refits took. All ``None`` in folders written before nesting.
    """

    subject: str
    encoder: str
    method: str
    split: str  # "test" | "train"
    space: str
    id_acc: float
    pearson_r: float
    id_acc_ci: list[float] | None = None
    id_acc_p: float | None = None
    n_clips: int = 0
    n_voxels: int = 0
    fit_seconds: float = 0.0
    train_cv_r: float | None = None
    top1_acc: float | None = None
    top1_acc_ci: list[float] | None = None
    top1_acc_p: float | None = None
    top5_acc: float | None = None
    top5_acc_ci: list[float] | None = None
    top5_acc_p: float | None = None
    train_cv_r_inner: float | None = None
    selection_seconds: float | None = None
    train_cv_id_acc: float | None = None
    extra: dict = field(default_factory=dict)


@dataclass
class GenreScore(_Record):
    """Mean per-clip id acc of one genre's test clips (``per_genre``, or ``leave_one_genre_out``)."""

    subject: str
    encoder: str
    method: str
    genre: str
    id_acc: float
    space: str
    extra: dict = field(default_factory=dict)


@dataclass
class HeldOutGenreScore(GenreScore):
    """Leave-one-genre-out: mean id acc of a genre's test clips by the method refitted without that genre."""


@dataclass
class ChanceResult(_Record):
    """The ``ridge`` test predictions with shuffled clip labels (mean over permutations).

    ``top1_acc`` / ``top5_acc`` are the shuffled-label top-k accuracies, ``top1_chance`` /
    ``top5_chance`` their expected value ``k / n_clips``.
    """

    subject: str
    encoder: str
    space: str
    id_acc: float
    pearson_r: float
    n_permutations: int = 100
    n_clips: int = 0
    top1_acc: float | None = None
    top5_acc: float | None = None
    top1_chance: float | None = None
    top5_chance: float | None = None
    extra: dict = field(default_factory=dict)


@dataclass
class SplitHalfResult(_Record):
    """Split-half reproducibility of a decoder's output (not a noise ceiling: it needs no targets).

    ``id_acc`` / ``pearson_r``: decodes of two halves of the test repeats compared with each other (all
    distinct half splits, averaged). ``pearson_r_full``: the Spearman–Brown correction of ``pearson_r``
    to the full number of repeats (the reliability of the decode of the repeat-averaged response; for an
    odd number of repeats the halves hold ``n // 2`` and ``n - n // 2`` of them and the correction is the
    one for unequal halves, :func:`~brain2music.evaluate.noise.split_half_full_r`). ``top1_acc`` /
    ``top5_acc``: half A's decodes identified among half B's, N-way, as ``id_acc`` is pairwise.
    """

    subject: str
    encoder: str
    method: str
    space: str
    id_acc: float | None
    pearson_r: float | None
    pearson_r_full: float | None
    n_repeats: int
    top1_acc: float | None = None
    top5_acc: float | None = None
    n_clips: int = 0
    extra: dict = field(default_factory=dict)


@dataclass
class PairedTest(_Record):
    """Paired test between two methods on the same test clips: ``diff`` = id acc of ``method_a`` − ``method_b``.

    ``subject`` is a subject id, or ``"mean"`` for the mean over subjects.
    """

    encoder: str
    method_a: str
    method_b: str
    subject: str
    space: str
    diff: float
    diff_ci: list[float] | None
    p_value: float
    n_clips: int
    test: str = "sign-flip permutation of per-clip score differences (two-sided)"
    extra: dict = field(default_factory=dict)


@dataclass
class SummaryRow(_Record):
    """Mean over subjects of a method's id acc, top-k and r.

    sd: ``ddof=1`` over subjects. CI: hierarchical bootstrap of the mean
    (:func:`~brain2music.evaluate.stats.hierarchical_bootstrap_ci`) over ``n_subjects`` subjects of
    ``n_clips`` test clips each; ``ci_resamples`` says what was resampled (``"clips"`` below 3 subjects,
    ``"clips, subjects"`` from 3 on), ``None`` with no interval (the ``train`` split). ``top1_acc_*`` /
    ``top5_acc_*``: the same for N-way identification (chance ``k / n_clips``).
    """

    encoder: str
    method: str
    split: str
    space: str
    id_acc_mean: float
    id_acc_sd: float | None
    id_acc_ci: list[float] | None
    id_acc_p: float | None
    r_mean: float
    r_sd: float | None
    train_cv_r_mean: float | None
    n_subjects: int
    n_clips: int = 0
    ci_resamples: str | None = None
    top1_acc_mean: float | None = None
    top1_acc_sd: float | None = None
    top1_acc_ci: list[float] | None = None
    top1_acc_p: float | None = None
    top5_acc_mean: float | None = None
    top5_acc_sd: float | None = None
    top5_acc_ci: list[float] | None = None
    top5_acc_p: float | None = None
    train_cv_r_inner_mean: float | None = None  # mean of train_cv_r_inner (not a selection criterion)
    train_cv_id_acc_mean: float | None = None  # mean of the nested train_cv_id_acc (the selection criterion)
    extra: dict = field(default_factory=dict)


@dataclass
class EnsembleParcels(_Record):
    """The parcels the ``ensemble`` kept for one subject, best first, with their training CV r."""

    subject: str
    encoder: str
    parcels: list[int]
    cv_scores: list[float]
    all_parcels: list[int] = field(default_factory=list)
    all_cv_scores: list[float] = field(default_factory=list)
    #: Names of ``parcels`` (e.g. Destrieux ``ctx_rh_G_temp_sup-G_T_transv``); empty when the parcellation
    #: has none. A parcel without a name is named by its label.
    parcel_names: list[str] = field(default_factory=list)
    extra: dict = field(default_factory=dict)


@dataclass
class EncodingResult(_Record):
    """The encoding model of one subject and embedding: test map, significance, repeat-based noise ceiling.

    ``mean_test_r_over_ceiling_selected``: mean over the ``n_selected`` voxels chosen by training CV (the
    ``encsel`` selection, no test clip involved) of test r / noise ceiling. Folders that carry the
    test-selected ratio ``mean_test_r_over_ceiling_significant`` keep it, under that name, in ``extra``.
    """

    subject: str
    encoder: str
    map: str | None
    npz: str
    n_voxels: int
    n_significant: int
    fdr_alpha: float
    n_permutations: int
    mean_test_r: float
    max_test_r: float
    mean_noise_ceiling: float | None
    n_selected: int
    mean_cv_r: float
    mean_test_r_over_ceiling_selected: float | None = None
    extra: dict = field(default_factory=dict)


_LISTS = {
    "rows": MethodResult,
    "chance": ChanceResult,
    "split_half": SplitHalfResult,
    "summary": SummaryRow,
    "per_genre": GenreScore,
    "leave_one_genre_out": HeldOutGenreScore,
    "paired_tests": PairedTest,
    "ensemble_parcels": EnsembleParcels,
    "encoding": EncodingResult,
}


@dataclass
class StudyResults(_Record):
    """Everything ``results.json`` holds (layout: ``docs/results_layout.md``).

    ``config``: the settings of the ``reproduce`` run, a :class:`~brain2music.results.settings.StudySettings`
    (read it by attribute: ``config.source.bids_root``, ``config.stimuli``); ``results.json`` holds its
    :meth:`~brain2music.results.settings.StudySettings.to_dict` form, and a dict given here or read from a
    folder is turned into settings by :meth:`~brain2music.results.settings.StudySettings.from_dict` (keys
    it does not know kept in ``config.extra``). ``elapsed_s``: wall-clock seconds of the run (``None``
    where not measured); folders that record it inside ``config`` are read into this field.
    """

    config: StudySettings
    subjects: list[str]
    methods: list[str]
    encoders: dict[str, EncoderInfo] = field(default_factory=dict)
    rows: list[MethodResult] = field(default_factory=list)
    chance: list[ChanceResult] = field(default_factory=list)
    split_half: list[SplitHalfResult] = field(default_factory=list)
    summary: list[SummaryRow] = field(default_factory=list)
    per_genre: list[GenreScore] = field(default_factory=list)
    leave_one_genre_out: list[HeldOutGenreScore] = field(default_factory=list)
    paired_tests: list[PairedTest] = field(default_factory=list)
    ensemble_parcels: list[EnsembleParcels] = field(default_factory=list)
    encoding: list[EncodingResult] = field(default_factory=list)
    elapsed_s: float | None = None
    schema_version: int = SCHEMA_VERSION
    version: str = __version__
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if isinstance(self.config, dict):
            config = dict(self.config)
            elapsed = config.pop("elapsed_s", None)
            self.elapsed_s = self.elapsed_s if self.elapsed_s is not None else elapsed
            self.config = StudySettings.from_dict(config)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of ``results.json``; ``config`` is the settings' own :meth:`StudySettings.to_dict`."""
        return super().to_dict() | {"config": self.config.to_dict()}

    def _post_read(self) -> None:
        self.encoders = {
            k: v if isinstance(v, EncoderInfo) else EncoderInfo.from_dict(v) for k, v in self.encoders.items()
        }
        for name, cls in _LISTS.items():
            setattr(self, name, [v if isinstance(v, cls) else cls.from_dict(v) for v in getattr(self, name)])

    def add(self, *records: _Record) -> None:
        """Append records to the list of their type (e.g. an :class:`EnsembleParcels` of a method).

        A record of a type the results hold no list of raises ``TypeError``.
        """
        for record in records:
            name = next((n for n, cls in _LISTS.items() if type(record) is cls), None)
            if name is None:
                raise TypeError(f"StudyResults holds no list of {type(record).__name__}")
            getattr(self, name).append(record)

    # -- queries ----------------------------------------------------------------------------------------
    def space(self, encoder: str) -> str:
        """The metric space of every number of ``encoder`` (``KeyError`` for one not in ``encoders``)."""
        return self.encoders[encoder].space

    def results_for(
        self, encoder: str, *, split: str = "test", method: str | None = None
    ) -> list[MethodResult]:
        """The rows of ``encoder`` on ``split`` (``"test"`` or ``"train"``), of one ``method`` or all."""
        return [
            r
            for r in self.rows
            if r.encoder == encoder and r.split == split and (method is None or r.method == method)
        ]

    def summary_for(self, encoder: str, method: str, split: str = "test") -> SummaryRow | None:
        """The summary row of ``encoder`` and ``method`` on ``split``; ``None`` where there is none."""
        return next(
            (s for s in self.summary if s.encoder == encoder and s.method == method and s.split == split),
            None,
        )

    def select_method(self, encoder: str, among: list[str] | None = None) -> str:
        """The method with the best training cross-validation score for ``encoder`` (never a test score).

        In folders written with nested scores the score is ``train_cv_id_acc_mean``, the nested
        identification accuracy among held-out training clips (the metric Table 2 reports; ties broken
        by the nested ``train_cv_r_mean``); in older folders ``train_cv_r_mean``. ``among`` restricts the
        candidates to those methods. Raises :class:`~brain2music.errors.DataError` when no candidate has a
        training-CV score.
        """
        cands = [
            s
            for s in self.summary
            if s.encoder == encoder
            and s.split == "test"
            and s.train_cv_r_mean is not None
            and (among is None or s.method in among)
        ]
        if not cands:
            raise DataError(
                f"no method of encoder {encoder!r} has a training cross-validation score to select by; "
                "pass the method explicitly (--method)"
            )
        if all(s.train_cv_id_acc_mean is not None for s in cands):
            return max(cands, key=lambda s: (s.train_cv_id_acc_mean, s.train_cv_r_mean)).method
        return max(cands, key=lambda s: s.train_cv_r_mean).method

    def selection_is_nested(self, encoder: str) -> bool:
        """Whether the training-CV scores of ``encoder`` are nested (folders written with nesting)."""
        return any(
            s.encoder == encoder and s.split == "test" and s.train_cv_r_inner_mean is not None
            for s in self.summary
        )
