"""The typed results model of a results folder, and its one reader and one writer.

Every stage exchanges these dataclasses, never dicts of lists: ``reproduce`` builds a
:class:`StudyResults` and writes it with :meth:`ResultsFolder.write`; ``reconstruct``, ``report`` and
``run`` read it with :meth:`ResultsFolder.read`. Arrays (embeddings, predictions, decoders, encoding maps)
go through the same :class:`ResultsFolder`. The layout is documented in ``docs/results_layout.md``.

Schema. ``results.json`` carries ``schema_version`` (:data:`SCHEMA_VERSION`). A folder written before
schema 2 (no ``schema_version`` key) is refused with a :class:`ResultsLayoutError` that prints the command
regenerating it. Adding an optional field (with a default) to a record does not change the schema
version; changing what a field means does.

How another stage adds a field: give the dataclass a typed field with a default (``None``, ``0.0``,
``field(default_factory=dict)``), fill it where the record is built, and document it in
``docs/results_layout.md``. Keys a reader does not know are kept in the record's ``extra`` dict and written
back unchanged, so an older reader never drops a newer writer's fields.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import json
import os
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from brain2music import __version__
from brain2music._io import (
    WRITER_LOCK,
    exclusive_writer,
    file_lock,
    lock_holder,
    save_npz,
    write_json,
    write_text,
)
from brain2music.errors import ConcurrentWriterError, DataError, DataFileNotFoundError, LockTimeout

__all__ = [
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
    "SplitHalfResult",
    "StudyResults",
    "SummaryRow",
    "SummaryStat",
    "one_writer",
]

#: Version of the results-folder layout (results.json, predictions, reconstruction.json).
SCHEMA_VERSION = 2

T = TypeVar("T")


class ResultsLayoutError(DataError):
    """A results folder of another layout version; the message says how to regenerate it."""


# ---------------------------------------------------------------------------------------------- records
@dataclass
class _Record:
    """Base of every record: unknown keys survive a read/write round trip in ``extra``."""

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any]) -> T:
        names = {f.name for f in dataclasses.fields(cls)}
        known = {k: v for k, v in data.items() if k in names and k != "extra"}
        extra = {k: v for k, v in data.items() if k not in names}
        extra.update(data.get("extra") or {})
        obj = cls(**known)
        obj.extra = extra
        obj._post_read()
        return obj

    def _post_read(self) -> None:
        """Rebuild nested records after :meth:`from_dict` (overridden where records nest)."""

    def to_dict(self) -> dict[str, Any]:
        out = {}
        for f in dataclasses.fields(self):
            if f.name == "extra":
                continue
            value = getattr(self, f.name)
            out[f.name] = _plain(value)
        out.update(_plain(self.extra))
        return out


def _plain(value):
    if isinstance(value, _Record):
        return value.to_dict()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    return value


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
    (recorded for comparison, never used to choose); ``selection_seconds`` the time the nested refits
    took. Both
    ``None`` in folders written before nesting.
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
    """Everything ``results.json`` holds (layout: ``docs/results_layout.md``)."""

    config: dict
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
    schema_version: int = SCHEMA_VERSION
    version: str = __version__
    extra: dict = field(default_factory=dict)

    def _post_read(self) -> None:
        self.encoders = {
            k: v if isinstance(v, EncoderInfo) else EncoderInfo.from_dict(v) for k, v in self.encoders.items()
        }
        for name, cls in _LISTS.items():
            setattr(self, name, [v if isinstance(v, cls) else cls.from_dict(v) for v in getattr(self, name)])

    def add(self, *records: _Record) -> None:
        """Append records to the list of their type (e.g. an :class:`EnsembleParcels` of a method)."""
        for record in records:
            name = next((n for n, cls in _LISTS.items() if type(record) is cls), None)
            if name is None:
                raise TypeError(f"StudyResults holds no list of {type(record).__name__}")
            getattr(self, name).append(record)

    # -- queries ----------------------------------------------------------------------------------------
    def space(self, encoder: str) -> str:
        """The metric space of every number of ``encoder``."""
        return self.encoders[encoder].space

    def results_for(
        self, encoder: str, *, split: str = "test", method: str | None = None
    ) -> list[MethodResult]:
        return [
            r
            for r in self.rows
            if r.encoder == encoder and r.split == split and (method is None or r.method == method)
        ]

    def summary_for(self, encoder: str, method: str, split: str = "test") -> SummaryRow | None:
        return next(
            (s for s in self.summary if s.encoder == encoder and s.method == method and s.split == split),
            None,
        )

    def select_method(self, encoder: str, among: list[str] | None = None) -> str:
        """The method with the best mean training-CV r for ``encoder`` (never a test score).

        The score is ``train_cv_r_mean``: nested (every choice refitted in each outer fold) in folders
        that record ``train_cv_r_inner_mean`` beside it (see :meth:`selection_is_nested`).
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
        return max(cands, key=lambda s: s.train_cv_r_mean).method

    def selection_is_nested(self, encoder: str) -> bool:
        """Whether the training-CV scores of ``encoder`` are nested (folders written with nesting)."""
        return any(
            s.encoder == encoder and s.split == "test" and s.train_cv_r_inner_mean is not None
            for s in self.summary
        )


# ------------------------------------------------------------------------------------------ predictions
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
    space: Any  # MetricSpace (imported lazily: evaluate imports models)


# --------------------------------------------------------------------------------------- reconstruction
#: Earlier reconstruction.json files (schema 2) spell retrieval (and generation) from the true embedding
#: with the prefix ``oracle`` in fields, summary keys, tags and config; they are read under today's names.
_OLD_PREFIX, _PREFIX = "oracle", "true_embedding"


def _renamed(key: str) -> str:
    """``oracle_id_acc`` -> ``true_embedding_id_acc``, ``oracle`` -> ``true_embedding``; others unchanged."""
    if key == _OLD_PREFIX or key.startswith(_OLD_PREFIX + "_"):
        return _PREFIX + key[len(_OLD_PREFIX) :]
    return key


def _renamed_keys(data: dict | None) -> dict | None:
    return None if data is None else {_renamed(k): v for k, v in data.items()}


@dataclass
class SummaryStat(_Record):
    """Mean over subjects of one reconstruction metric, with its n.

    ``sd``: over subjects (``ddof=1``; ``None`` with one subject). ``ci``: 95 % hierarchical bootstrap
    of the mean (:func:`~brain2music.evaluate.stats.hierarchical_bootstrap_ci`) from the per-clip scores
    of ``n_subjects`` subjects and ``n_clips`` distinct test clips; ``ci_resamples`` says what was
    resampled (``"clips"`` below 3 subjects, ``"clips, subjects"`` from 3 on). ``ci`` is ``None`` where
    there is nothing to resample (one clip and fewer than 3 subjects, or no per-clip scores, as for the
    chance levels ``top1_chance``, ``top5_chance``). Files written before these fields have ``n_clips``
    0 and ``ci_resamples`` ``None``.
    """

    mean: float
    sd: float | None
    ci: list[float] | None
    n_subjects: int
    n_clips: int = 0
    ci_resamples: str | None = None
    extra: dict = field(default_factory=dict)


@dataclass
class ReconstructionScores(_Record):
    """One subject's reconstruction metrics over its ``n_clips`` reconstructed test clips.

    Kinds: ``retrieval`` (top-1 track for the predicted embedding), ``generation`` (audio generated from
    it), ``chance`` (a random library track, mean over ``n_chance`` draws), ``true_embedding`` (retrieval
    with the true embedding of the original: what this library returns for a perfect decode, not an
    upper bound of the scores) and ``true_embedding_generation`` (generation from it).

    Every ``*_id_acc`` (pairwise, paper Eq. 2-3) and ``*_top1_acc`` / ``*_top5_acc`` (N-way: the fraction
    of clips whose original is among the 1 / 5 originals most correlated with the reconstruction's
    embedding; chance ``top1_chance`` / ``top5_chance`` = k / n_clips) is in the metric space ``space``
    and comes from one similarity matrix per kind (reconstructions × originals). ``*_ci`` are 95 %
    bootstrap intervals over the clips, ``*_p`` one-sided permutation p-values against chance (for
    ``chance``: of the mean over the draws). ``<kind>_tag_agreement_<group>`` (groups genre, instrument,
    mood) are the paper's class agreement with the musicnn taggers; their ``_ci`` are bootstrap intervals
    over clips, their ``_p`` two-sided paired sign-flip p-values of the difference from chance.

    ``from_dict`` reads files that spell ``true_embedding`` as ``oracle``.
    """

    subject: str
    n_clips: int
    space: str
    retrieval_id_acc: float
    chance_id_acc: float
    true_embedding_id_acc: float
    generation_id_acc: float | None = None
    true_embedding_generation_id_acc: float | None = None
    retrieval_id_acc_ci: list[float] | None = None
    generation_id_acc_ci: list[float] | None = None
    chance_id_acc_ci: list[float] | None = None
    true_embedding_id_acc_ci: list[float] | None = None
    true_embedding_generation_id_acc_ci: list[float] | None = None
    retrieval_id_acc_p: float | None = None
    generation_id_acc_p: float | None = None
    chance_id_acc_p: float | None = None
    true_embedding_id_acc_p: float | None = None
    true_embedding_generation_id_acc_p: float | None = None
    # N-way identification (the peers' metric) of every kind, and its chance level k / n_clips.
    top1_chance: float | None = None
    top5_chance: float | None = None
    retrieval_top1_acc: float | None = None
    retrieval_top1_acc_ci: list[float] | None = None
    retrieval_top1_acc_p: float | None = None
    retrieval_top5_acc: float | None = None
    retrieval_top5_acc_ci: list[float] | None = None
    retrieval_top5_acc_p: float | None = None
    generation_top1_acc: float | None = None
    generation_top1_acc_ci: list[float] | None = None
    generation_top1_acc_p: float | None = None
    generation_top5_acc: float | None = None
    generation_top5_acc_ci: list[float] | None = None
    generation_top5_acc_p: float | None = None
    chance_top1_acc: float | None = None
    chance_top1_acc_ci: list[float] | None = None
    chance_top1_acc_p: float | None = None
    chance_top5_acc: float | None = None
    chance_top5_acc_ci: list[float] | None = None
    chance_top5_acc_p: float | None = None
    true_embedding_top1_acc: float | None = None
    true_embedding_top1_acc_ci: list[float] | None = None
    true_embedding_top1_acc_p: float | None = None
    true_embedding_top5_acc: float | None = None
    true_embedding_top5_acc_ci: list[float] | None = None
    true_embedding_top5_acc_p: float | None = None
    true_embedding_generation_top1_acc: float | None = None
    true_embedding_generation_top1_acc_ci: list[float] | None = None
    true_embedding_generation_top1_acc_p: float | None = None
    true_embedding_generation_top5_acc: float | None = None
    true_embedding_generation_top5_acc_ci: list[float] | None = None
    true_embedding_generation_top5_acc_p: float | None = None
    retrieval_genre_agreement: float | None = None
    generation_genre_agreement: float | None = None
    chance_genre_agreement: float | None = None
    true_embedding_genre_agreement: float | None = None
    true_embedding_generation_genre_agreement: float | None = None
    tagger_accuracy: float | None = None
    retrieval_score_mean: float | None = None
    generation_score_mean: float | None = None
    # Class agreement with the musicnn taggers (reconstruct/tag_agreement.py): per kind and tag group.
    retrieval_tag_agreement_genre: float | None = None
    retrieval_tag_agreement_instrument: float | None = None
    retrieval_tag_agreement_mood: float | None = None
    generation_tag_agreement_genre: float | None = None
    generation_tag_agreement_instrument: float | None = None
    generation_tag_agreement_mood: float | None = None
    chance_tag_agreement_genre: float | None = None
    chance_tag_agreement_instrument: float | None = None
    chance_tag_agreement_mood: float | None = None
    true_embedding_tag_agreement_genre: float | None = None
    true_embedding_tag_agreement_instrument: float | None = None
    true_embedding_tag_agreement_mood: float | None = None
    true_embedding_generation_tag_agreement_genre: float | None = None
    true_embedding_generation_tag_agreement_instrument: float | None = None
    true_embedding_generation_tag_agreement_mood: float | None = None
    retrieval_tag_agreement_genre_ci: list[float] | None = None
    retrieval_tag_agreement_instrument_ci: list[float] | None = None
    retrieval_tag_agreement_mood_ci: list[float] | None = None
    generation_tag_agreement_genre_ci: list[float] | None = None
    generation_tag_agreement_instrument_ci: list[float] | None = None
    generation_tag_agreement_mood_ci: list[float] | None = None
    true_embedding_tag_agreement_genre_ci: list[float] | None = None
    true_embedding_tag_agreement_instrument_ci: list[float] | None = None
    true_embedding_tag_agreement_mood_ci: list[float] | None = None
    retrieval_tag_agreement_genre_p: float | None = None
    retrieval_tag_agreement_instrument_p: float | None = None
    retrieval_tag_agreement_mood_p: float | None = None
    generation_tag_agreement_genre_p: float | None = None
    generation_tag_agreement_instrument_p: float | None = None
    generation_tag_agreement_mood_p: float | None = None
    # Best-of-N (reconstruct --best-of N --score embedding|encoding): the selection score of the kept
    # candidate and of the first candidate (= plain generation, best-of-1), averaged over the clips.
    selection_score_mean: float | None = None
    selection_score_first_mean: float | None = None
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReconstructionScores:
        return super().from_dict(_renamed_keys(data))

    def metrics(self) -> dict[str, float]:
        """The scalar metrics to summarise over subjects (every numeric field but ``n_clips`` and the p's)."""
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if (
                f.name != "n_clips"
                and not f.name.endswith("_p")
                and isinstance(v, (int, float))
                and not isinstance(v, bool)
            ):
                out[f.name] = float(v)
        return out


@dataclass
class ReconstructedClip(_Record):
    """One (subject, test clip): original, retrieved tracks, generated audio, tagger genres, scores.

    ``true_embedding``: the library track retrieved with the clip's true embedding. ``scores``: this
    clip's value of each per-subject metric of :class:`ReconstructionScores` that is a mean over clips
    (``retrieval_id_acc``: its Eq. 3 score, ``retrieval_top1_acc``: 1 or 0, ...); the summaries over
    subjects resample them. ``from_dict`` reads files that spell ``true_embedding`` as ``oracle``.
    """

    subject: str
    clip_id: str
    genre: str
    original: dict
    retrieved: list[dict]
    true_embedding: dict
    generated: dict | None = None
    true_embedding_generated: dict | None = None
    tags: dict | None = None
    #: ``{"original" | "retrieved" | "true_embedding" | "generated" | ...: {group: top-k musicnn tags}}``
    tag_classes: dict | None = None
    # A mosaic's source audio: [{path, source_start, output_start, duration}] (None for other generators).
    segments: list[dict] | None = None
    scores: dict[str, float] | None = None
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReconstructedClip:
        data = _renamed_keys(data)
        for key in ("tags", "tag_classes"):
            data[key] = _renamed_keys(data.get(key))
        return super().from_dict(data)


@dataclass
class ReconstructionResults(_Record):
    """Everything ``reconstruction.json`` holds.

    ``method_selected_by`` is ``"nested_train_cv"`` (the best mean nested training-CV r in results.json),
    ``"train_cv"`` (the same from a folder written before nesting) or ``"user"``.
    """

    config: dict
    encoder: str
    method: str
    method_selected_by: str
    space: str
    generator: dict | None
    library: dict
    subjects: list[str]
    clips: list[ReconstructedClip] = field(default_factory=list)
    per_subject: list[ReconstructionScores] = field(default_factory=list)
    summary: dict[str, SummaryStat] = field(default_factory=dict)
    #: the taggers, groups and top-k of the tag agreement, or ``{"skipped": why}``; None: not asked for
    tag_agreement: dict | None = None
    schema_version: int = SCHEMA_VERSION
    version: str = __version__
    extra: dict = field(default_factory=dict)

    def _post_read(self) -> None:
        self.config = _renamed_keys(self.config)
        self.clips = [
            c if isinstance(c, ReconstructedClip) else ReconstructedClip.from_dict(c) for c in self.clips
        ]
        self.per_subject = [
            s if isinstance(s, ReconstructionScores) else ReconstructionScores.from_dict(s)
            for s in self.per_subject
        ]
        self.summary = {
            _renamed(k): v if isinstance(v, SummaryStat) else SummaryStat.from_dict(v)
            for k, v in self.summary.items()
        }


# -------------------------------------------------------------------------------------- reader / writer
class ResultsFolder:
    """The one reader and writer of a results folder (``docs/results_layout.md``).

    Paths are relative to ``root``; every write is atomic. One writer at a time: a whole run holds the
    folder with :meth:`writing`, every single write takes the same lock unless this process (or the run
    that handed this object to a worker process) holds it, and a second writer is refused at once with a
    :class:`~brain2music.errors.ConcurrentWriterError` naming the first (pid, host, command, since when).
    """

    RESULTS = "results.json"
    TABLE = "table2.csv"
    RECONSTRUCTION = "reconstruction.json"

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        # The run's token, set only on copies pickled for worker processes (see __getstate__); in the
        # holding process a write checks _WRITING instead.
        self._lease: str | None = None

    def __getstate__(self) -> dict:
        # Pickled (for a Dask or process worker) while this process holds the folder: the copy writes
        # under the run's lease, whichever ResultsFolder object of the folder took it.
        state = dict(self.__dict__)
        held = _WRITING.get(_folder_key(self.root))
        if held is not None:
            state["_lease"] = held[0]
        return state

    # -- one writer at a time -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def writing(self, purpose: str) -> Iterator[ResultsFolder]:
        """Be the only writer of the folder for the whole block (a ``reproduce`` or ``reconstruct`` run).

        Another process that writes the folder meanwhile (a run or a single file), or reads it with
        :meth:`reading`, is refused at once; so is another thread that starts a run into it. Re-entrant
        in the holding thread (``brain2music run`` holds its folder around ``reproduce``); threads and
        worker processes that received this object (pickled, e.g. by a Dask scheduler) write under the
        run's lease. The kernel drops the lock when the holder dies: a crash never leaves it stale.
        """
        key = _folder_key(self.root)
        held = _WRITING.get(key)
        if held is not None:
            if held[1] != threading.get_ident():
                raise ConcurrentWriterError(
                    f"{self.root}: another thread of this process is writing this folder ({purpose} refused)"
                )
            yield self
            return
        lease = uuid.uuid4().hex
        created = not self.root.exists()
        try:
            with exclusive_writer(self.root, purpose=purpose, info={"lease": lease}):
                _WRITING[key] = (lease, threading.get_ident())
                try:
                    yield self
                finally:
                    del _WRITING[key]
        except BaseException:
            # A run that failed before writing anything leaves no folder behind (only its lock was there).
            if created:
                _remove_if_only_lock(self.root)
            raise

    @contextlib.contextmanager
    def reading(self, purpose: str) -> Iterator[ResultsFolder]:
        """Keep writers out while the block reads the folder (a shared lock; many readers at once).

        Refused at once with :class:`~brain2music.errors.ConcurrentWriterError` while another process
        writes the folder, so a reader never mixes two runs' files.
        """
        with contextlib.ExitStack() as stack:
            if self.root.is_dir() and _folder_key(self.root) not in _WRITING:
                try:
                    stack.enter_context(
                        file_lock(self.root / WRITER_LOCK, timeout=0, shared=True, purpose=purpose)
                    )
                except LockTimeout:
                    raise ConcurrentWriterError(
                        f"{self.root}: another process is writing this results folder "
                        f"({_describe_holder(self.root)}); {purpose} reads it: wait for that run to finish"
                    ) from None
            yield self

    @contextlib.contextmanager
    def _one_write(self, what: str) -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            if _folder_key(self.root) not in _WRITING:  # else: this process holds the folder
                try:
                    stack.enter_context(exclusive_writer(self.root, purpose=f"write {what}"))
                except ConcurrentWriterError:
                    if (
                        self._lease is None
                        or lock_holder(self.root / WRITER_LOCK).get("lease") != self._lease
                    ):
                        raise
                    # a worker of the run that holds the folder (it handed this object over)
            yield

    # -- paths ------------------------------------------------------------------------------------------
    def embeddings_rel(self, encoder: str) -> str:
        return f"embeddings/{encoder}.npz"

    def predictions_path(self, encoder: str, method: str, subject: str) -> Path:
        return self.root / "predictions" / encoder / method / f"{subject}.npz"

    def decoder_path(self, encoder: str, method: str, subject: str) -> Path:
        return self.root / "decoders" / encoder / method / f"{subject}.joblib"

    def encoding_rel(self, encoder: str, subject: str) -> tuple[str, str]:
        """``(npz, nifti map)`` relative paths of an encoding model."""
        return f"encoding/{encoder}/{subject}_encoding.npz", f"encoding/{encoder}/{subject}_test_r.nii.gz"

    def encoding_model_rel(self, encoder: str, subject: str) -> str:
        """Relative path of the compact encoding model that scores best-of-N candidates (``--score encoding``)."""
        return f"encoding/{encoder}/{subject}_model.npz"

    def write_encoding_model(self, encoder: str, subject: str, arrays: dict) -> str:
        """Save an encoding model's linear map on its best voxels (see :mod:`brain2music.reconstruct.selection`)."""
        rel = self.encoding_model_rel(encoder, subject)
        save_npz(self.root / rel, schema_version=np.asarray(SCHEMA_VERSION), **arrays)
        return rel

    def read_encoding_model(self, encoder: str, subject: str) -> dict[str, np.ndarray]:
        """The arrays :meth:`write_encoding_model` saved; a folder written without them raises an error
        that says how to get them (rerun ``reproduce``)."""
        path = self.root / self.encoding_model_rel(encoder, subject)
        if not path.is_file():
            raise DataFileNotFoundError(
                f"{path} not found: the results folder has no encoding model of {encoder!r} for {subject} "
                "(older results folders lack it); rerun `brain2music reproduce` into it to score "
                "candidates with --score encoding, or use --score embedding"
            )
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}

    # -- results.json -----------------------------------------------------------------------------------
    def read(self) -> StudyResults:
        """Read ``results.json``; an absent or old-layout file raises an error that says what to run."""
        data = _read_json(self.root / self.RESULTS, missing=_NOT_RESULTS.format(root=self.root))
        _check_schema(data, self.root / self.RESULTS)
        return StudyResults.from_dict(data)

    def write(self, results: StudyResults) -> Path:
        """Write ``results.json`` and ``table2.csv`` (the summary as the paper's Table 2)."""
        from brain2music.study.table import table_csv

        results.schema_version = SCHEMA_VERSION
        results.version = __version__
        with self._one_write(self.RESULTS):
            write_text(self.root / self.TABLE, table_csv(results))
            return write_json(self.root / self.RESULTS, results.to_dict())

    # -- embeddings -------------------------------------------------------------------------------------
    def write_embeddings(self, encoder: str, embeddings) -> str:
        """Save an :class:`~brain2music.embeddings.EmbeddingSet` as ``embeddings/<encoder>.npz``."""
        rel = self.embeddings_rel(encoder)
        with self._one_write(rel):
            embeddings.save(self.root / rel)
        return rel

    def read_embeddings(self, results: StudyResults, encoder: str):
        """The :class:`~brain2music.embeddings.EmbeddingSet` of ``encoder``."""
        from brain2music.embeddings import load_embeddings

        info = results.encoders.get(encoder)
        return load_embeddings(self.root / (info.embeddings if info else self.embeddings_rel(encoder)))

    # -- predictions ------------------------------------------------------------------------------------
    def write_predictions(self, p: Predictions) -> Path:
        with self._one_write(f"predictions of {p.subject}"):
            return self._save_predictions(p)

    def _save_predictions(self, p: Predictions) -> Path:
        return save_npz(
            self.predictions_path(p.encoder, p.method, p.subject),
            clip_ids=np.asarray(p.clip_ids).astype(str),
            genres=np.asarray(p.genres).astype(str),
            predicted=np.asarray(p.predicted, dtype=np.float32),
            target=np.asarray(p.target, dtype=np.float32),
            similarity=np.asarray(p.similarity, dtype=np.float32),
            clip_scores=np.asarray(p.clip_scores, dtype=np.float32),
            schema_version=np.asarray(SCHEMA_VERSION),
            **p.space.arrays(),
        )

    def read_predictions(self, encoder: str, method: str, subject: str) -> Predictions:
        from brain2music.evaluate.space import MetricSpace

        path = self.predictions_path(encoder, method, subject)
        if not path.is_file():
            raise DataFileNotFoundError(f"predictions file not found: {path}")
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in _PREDICTION_KEYS if k not in z.files]
            if missing:
                raise ResultsLayoutError(
                    f"{path}: missing arrays {missing} (written by an older brain2music?); regenerate the "
                    "results folder with `brain2music reproduce`"
                )
            arrays = {k: z[k] for k in _PREDICTION_KEYS}
        predicted, target = arrays["predicted"], arrays["target"]
        n = len(arrays["clip_ids"])
        if predicted.shape != target.shape or predicted.ndim != 3 or predicted.shape[0] != n:
            raise DataError(
                f"{path}: predicted {predicted.shape} and target {target.shape} must both be (n_test, r, dim) "
                f"with n_test = {n} clip ids"
            )
        return Predictions(
            subject=subject,
            encoder=encoder,
            method=method,
            clip_ids=arrays["clip_ids"].astype(str),
            genres=arrays["genres"].astype(str),
            predicted=predicted.astype(np.float32),
            target=target.astype(np.float32),
            similarity=arrays["similarity"].astype(np.float64),
            clip_scores=arrays["clip_scores"].astype(np.float64),
            space=MetricSpace.from_arrays(str(arrays["space"]), arrays["space_mean"], arrays["space_scale"]),
        )

    def prediction_subjects(self, encoder: str, method: str) -> list[str]:
        folder = self.root / "predictions" / encoder / method
        return sorted(p.stem for p in folder.glob("*.npz")) if folder.is_dir() else []

    # -- decoders and encoding models -------------------------------------------------------------------
    def write_decoder(self, encoder: str, method: str, subject: str, decoder, config: dict) -> Path:
        from brain2music.models import save_decoder

        with self._one_write(f"decoder of {subject}"):
            return save_decoder(decoder, self.decoder_path(encoder, method, subject), config=config)

    def write_encoding(self, encoder: str, subject: str, arrays: dict, image=None) -> tuple[str, str | None]:
        """Save an encoding model's arrays (and its NIfTI test-r map, when given); return relative paths."""
        npz_rel, map_rel = self.encoding_rel(encoder, subject)
        with self._one_write(npz_rel):
            save_npz(self.root / npz_rel, **arrays)
            if image is None:
                return npz_rel, None
            import nibabel as nib

            from brain2music._io import atomic_path

            with atomic_path(self.root / map_rel) as tmp:
                nib.save(image, str(tmp))
        return npz_rel, map_rel

    # -- reconstruction.json ----------------------------------------------------------------------------
    @classmethod
    def read_reconstruction(cls, folder: str | os.PathLike) -> ReconstructionResults:
        path = Path(folder) / cls.RECONSTRUCTION
        data = _read_json(path, missing=f"{path} not found: run `brain2music reconstruct` first")
        _check_schema(data, path, command="brain2music reconstruct RESULTS --library LIB --out OUT")
        return ReconstructionResults.from_dict(data)

    @classmethod
    def write_reconstruction(cls, folder: str | os.PathLike, recon: ReconstructionResults) -> Path:
        recon.schema_version = SCHEMA_VERSION
        recon.version = __version__
        with cls(folder)._one_write(cls.RECONSTRUCTION):
            return write_json(Path(folder) / cls.RECONSTRUCTION, recon.to_dict())


# Folders this process writes: resolved root -> (lease token, thread that holds the run).
_WRITING: dict[str, tuple[str, int]] = {}


def _folder_key(root: Path) -> str:
    return os.path.realpath(root)


def _remove_if_only_lock(root: Path) -> None:
    try:
        if root.is_dir() and {p.name for p in root.iterdir()} <= {WRITER_LOCK}:
            (root / WRITER_LOCK).unlink(missing_ok=True)
            root.rmdir()
    except OSError:  # another process took the folder meanwhile: leave it
        pass


def _describe_holder(root: Path) -> str:
    info = lock_holder(root / WRITER_LOCK)
    if not info:
        return "an unknown process"
    return f"pid {info.get('pid')} on {info.get('host')} ({info.get('purpose')}), since {info.get('since')}"


def one_writer(purpose: str, *, writes: str = "out", reads: str | None = None):
    """Decorator: run the whole function as the only writer of its ``writes`` folder argument.

    With ``reads``, also hold that results-folder argument as a reader (:meth:`ResultsFolder.reading`),
    so no run rewrites it meanwhile. Both are taken before the function starts any work; a second
    writer gets a :class:`~brain2music.errors.ConcurrentWriterError` at once.
    """

    def decorate(fn):
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def run(*args, **kwargs):
            arguments = signature.bind(*args, **kwargs).arguments
            with contextlib.ExitStack() as stack:
                stack.enter_context(ResultsFolder(arguments[writes]).writing(purpose))
                if reads is not None:
                    stack.enter_context(ResultsFolder(arguments[reads]).reading(purpose))
                return fn(*args, **kwargs)

        return run

    return decorate


_PREDICTION_KEYS = (
    "clip_ids", "genres", "predicted", "target", "similarity", "clip_scores", "space", "space_mean", "space_scale",
)  # fmt: skip

_NOT_RESULTS = "{root}: not a results folder (no results.json); write one with `brain2music reproduce` or `brain2music run`"


def _read_json(path: Path, *, missing: str) -> dict:
    if not path.is_file():
        raise DataFileNotFoundError(missing)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object, found {type(data).__name__}")
    return data


def _check_schema(data: dict, path: Path, *, command: str | None = None) -> None:
    found = data.get("schema_version", 1)
    if found == SCHEMA_VERSION:
        return
    if command is None:
        command = _reproduce_command(data.get("config") or {})
    raise ResultsLayoutError(
        f"{path}: results layout {found}, but this brain2music ({__version__}) reads layout {SCHEMA_VERSION} "
        "(metric spaces, confidence intervals, split-half reproducibility; see docs/results_layout.md). "
        f"Regenerate the folder: {command}"
    )


def _reproduce_command(config: dict) -> str:
    """The ``brain2music reproduce`` command line that regenerates an old results folder."""
    parts = ["brain2music reproduce", str(config.get("bids_root") or "BIDS_ROOT")]
    if config.get("stimuli"):
        parts += ["--stimuli", str(config["stimuli"])]
    if config.get("derivatives"):
        parts += ["--derivatives", str(config["derivatives"])]
    parts += ["--encoders", ",".join(config.get("encoders") or ["acoustic"])]
    if config.get("methods"):
        parts += ["--methods", ",".join(config["methods"])]
    parts += ["--out", str(config.get("out") or "RESULTS")]
    return " ".join(parts)
