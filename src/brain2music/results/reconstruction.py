"""The records of ``reconstruction.json``: what ``reconstruct`` made of each test clip and how it scored.

:class:`ReconstructionResults` holds one :class:`ReconstructedClip` per (subject, test clip), one
:class:`ReconstructionScores` per subject and a :class:`SummaryStat` per metric over subjects.

A subject's scores nest as kind → metric → :class:`Score` (value, 95 % CI, p, n): kinds are
:data:`KINDS`, metrics e.g. ``id_acc``, ``top1_acc``, ``top5_acc``, ``genre_agreement``,
``tag_agreement_<group>``, ``score_mean``. Summaries over subjects and each clip's scores are keyed by
the flat name ``<kind>_<metric>`` (:func:`flat_name`), e.g. ``retrieval_id_acc``.

Files of schema 2 written before the nesting hold the flat keys ``<kind>_<metric>``, ``..._ci``,
``..._p`` in each per-subject record, some spelling the kind ``true_embedding`` as ``oracle``; they are
read into the nested form under today's names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from brain2music import __version__
from brain2music._checks import check_choice
from brain2music.results._record import SCHEMA_VERSION, _Record

__all__ = [
    "KINDS",
    "ReconstructedClip",
    "ReconstructionResults",
    "ReconstructionScores",
    "Score",
    "SummaryStat",
    "flat_name",
]

#: The kinds of reconstruction scored: ``retrieval`` (top-1 track for the predicted embedding),
#: ``generation`` (audio generated from it), ``chance`` (a random library track), ``true_embedding``
#: (retrieval with the true embedding of the original) and ``true_embedding_generation`` (generation from it).
KINDS = ("retrieval", "generation", "chance", "true_embedding", "true_embedding_generation")
# Longest first, so that a flat key finds its own kind (``true_embedding_generation_id_acc``).
_BY_LENGTH = sorted(KINDS, key=len, reverse=True)

#: Some reconstruction.json files of schema 2 spell retrieval (and generation) from the true embedding
#: with the prefix ``oracle`` in fields, summary keys, tags and config; they are read under today's names.
_OLD_PREFIX, _PREFIX = "oracle", "true_embedding"


def _renamed(key: str) -> str:
    """``oracle_id_acc`` -> ``true_embedding_id_acc``, ``oracle`` -> ``true_embedding``; others unchanged."""
    if key == _OLD_PREFIX or key.startswith(_OLD_PREFIX + "_"):
        return _PREFIX + key[len(_OLD_PREFIX) :]
    return key


def _renamed_keys(data: dict | None) -> dict | None:
    return None if data is None else {_renamed(k): v for k, v in data.items()}


def flat_name(kind: str, metric: str) -> str:
    """The flat key of a kind's metric, as summaries and clip scores spell it: ``retrieval_id_acc``."""
    return f"{kind}_{metric}"


def split_name(key: str) -> tuple[str, str] | None:
    """``(kind, metric)`` of a flat key (:func:`flat_name`); ``None`` for a key of no kind."""
    for kind in _BY_LENGTH:
        if key.startswith(kind + "_"):
            return kind, key[len(kind) + 1 :]
    return None


@dataclass
class Score(_Record):
    """One metric of one kind of reconstruction for one subject.

    ``value``: the mean over the subject's ``n_clips`` reconstructed clips, in the metric space of its
    :class:`ReconstructionScores`. ``ci``: 95 % bootstrap interval over the clips (``None`` where the
    metric has none). ``p``: for identification, the one-sided permutation p-value against chance
    (for ``chance``, of the mean over the draws); for tag agreement, the two-sided paired sign-flip
    p-value of the difference from chance; ``None`` where none is computed.
    """

    value: float
    ci: list[float] | None = None
    p: float | None = None
    n_clips: int = 0
    extra: dict = field(default_factory=dict)


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

    ``scores[kind][metric]`` is a :class:`Score` (kinds :data:`KINDS`); a kind or metric that was not
    made (no generator, no tagger) is absent. Metrics: ``id_acc`` (pairwise, paper Eq. 2-3),
    ``top1_acc`` / ``top5_acc`` (N-way: the fraction of clips whose original is among the 1 / 5 originals
    most correlated with the reconstruction's embedding), all in the metric space ``space`` from one
    similarity matrix per kind (reconstructions × originals), with CI and p; ``genre_agreement`` (the
    embedding genre tagger's label of reconstruction and original agree); ``tag_agreement_<group>``
    (groups genre, instrument, mood: the paper's class agreement with the musicnn taggers);
    ``score_mean`` (retrieval: the top-1 track's cosine score; generation: the generator's own score).

    Outside the kinds: ``top1_chance`` / ``top5_chance`` (the N-way chance level k / n_clips),
    ``tagger_accuracy`` (the genre tagger's accuracy on the originals), and for best-of-N generation
    ``selection_score_mean`` / ``selection_score_first_mean`` (the selection score of the kept and of the
    first candidate, averaged over the clips).
    """

    subject: str
    n_clips: int
    space: str
    scores: dict[str, dict[str, Score]] = field(default_factory=dict)
    top1_chance: float | None = None
    top5_chance: float | None = None
    tagger_accuracy: float | None = None
    selection_score_mean: float | None = None
    selection_score_first_mean: float | None = None
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReconstructionScores:
        """Read the nested form, or the flat keys of schema-2 files (``retrieval_id_acc``, ``oracle_...``)."""
        data = _renamed_keys(data)
        if "scores" not in data:
            data = _nested(data)
        return super().from_dict(data)

    @classmethod
    def from_flat(
        cls, subject: str, n_clips: int, space: str, fields: dict[str, Any]
    ) -> ReconstructionScores:
        """The scores of flat keys ``<kind>_<metric>`` with ``..._ci`` and ``..._p`` (and the fields outside
        the kinds); a metric whose value is ``None`` is left out."""
        return cls.from_dict({"subject": subject, "n_clips": int(n_clips), "space": space} | dict(fields))

    def _post_read(self) -> None:
        self.scores = {
            kind: {m: s if isinstance(s, Score) else Score.from_dict(s) for m, s in metrics.items()}
            for kind, metrics in self.scores.items()
        }

    def get(self, kind: str, metric: str) -> Score | None:
        """The :class:`Score` of ``kind``'s ``metric``; ``None`` where it was not made."""
        return self.scores.get(kind, {}).get(metric)

    def value(self, kind: str, metric: str) -> float | None:
        """The value of ``kind``'s ``metric``; ``None`` where it was not made."""
        score = self.get(kind, metric)
        return None if score is None else score.value

    def put(self, kind: str, metric: str, score: Score) -> None:
        """Record ``score`` as ``kind``'s ``metric`` (replacing one recorded before)."""
        check_choice(kind, KINDS, what="kind")
        self.scores.setdefault(kind, {})[metric] = score

    def merge(self, scores: dict[str, dict[str, Score]]) -> None:
        """Record every ``{kind: {metric: Score}}`` of ``scores``."""
        for kind, metrics in scores.items():
            for metric, score in metrics.items():
                self.put(kind, metric, score)

    def flat(self) -> dict[str, Any]:
        """The flat form of schema-2 files: ``<kind>_<metric>``, ``..._ci``, ``..._p`` for every score,
        then the fields outside the kinds (the inverse of :meth:`from_flat`, but for the scores' n)."""
        out: dict[str, Any] = {"subject": self.subject, "n_clips": self.n_clips, "space": self.space}
        for kind in KINDS:
            for metric, score in self.scores.get(kind, {}).items():
                name = flat_name(kind, metric)
                out |= {name: score.value, name + "_ci": score.ci, name + "_p": score.p}
        return out | {name: getattr(self, name) for name in _OUTSIDE_KINDS}

    def metrics(self) -> dict[str, float]:
        """The values to summarise over subjects, by flat name: every kind's metrics, then the chance
        levels, the tagger's accuracy and the selection scores that were recorded."""
        out = {
            flat_name(kind, metric): float(score.value)
            for kind in KINDS
            for metric, score in self.scores.get(kind, {}).items()
        }
        for name in _OUTSIDE_KINDS:
            value = getattr(self, name)
            if value is not None:
                out[name] = float(value)
        return out


#: Fields of :class:`ReconstructionScores` that belong to no kind (numbers of the subject as a whole).
_OUTSIDE_KINDS = ("top1_chance", "top5_chance", "tagger_accuracy", "selection_score_mean",
                  "selection_score_first_mean")  # fmt: skip


def _nested(data: dict[str, Any]) -> dict[str, Any]:
    """A per-subject record of flat keys (``retrieval_id_acc``, ``..._ci``, ``..._p``) in the nested form."""
    n_clips = int(data.get("n_clips") or 0)
    out: dict[str, Any] = {}
    parts: dict[tuple[str, str], dict[str, Any]] = {}
    for key, value in data.items():
        base, part = key, "value"
        for suffix in ("_ci", "_p"):
            if key.endswith(suffix):
                base, part = key[: -len(suffix)], suffix[1:]
        named = split_name(base)
        if named is None:
            out[key] = value
        else:
            parts.setdefault(named, {})[part] = value
    scores: dict[str, dict[str, Any]] = {}
    for (kind, metric), got in parts.items():
        if got.get("value") is not None:
            scores.setdefault(kind, {})[metric] = {"n_clips": n_clips} | got
    out["scores"] = scores
    return out


@dataclass
class ReconstructedClip(_Record):
    """One (subject, test clip): original, retrieved tracks, generated audio, tagger genres, scores.

    ``true_embedding``: the library track retrieved with the clip's true embedding. ``scores``: this
    clip's value of each per-subject metric of :class:`ReconstructionScores` that is a mean over clips,
    by flat name (``retrieval_id_acc``: its Eq. 3 score, ``retrieval_top1_acc``: 1 or 0, ...); the
    summaries over subjects resample them. ``from_dict`` reads files that spell ``true_embedding`` as ``oracle``.
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
        """Read a clip, the ``oracle`` spelling of schema-2 files included."""
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
