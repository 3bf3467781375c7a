"""The paper's class agreement of reconstructions with their originals, scored by the musicnn taggers.

Denk et al. (2023) tag the original and the reconstruction with a pretrained tagger and count how often
they get the same classes, in three groups: genres (top 2), instruments (top 2), moods (top 1). Here:

- Each group is tagged by one musicnn tagger (:data:`DEFAULT_TAGGERS`): genres and moods by
  ``musicnn-msd`` (the Million Song Dataset tags hold the genres and the moods), instruments by
  ``musicnn-mtt`` (MagnaTagATune's tags name instruments; MSD's "instrument" tags are only vocalists,
  guitar, acoustic, instrumental). The groups' tags are those of :mod:`brain2music.embeddings.musicnn.tags`.
- A clip's tags are the tagger's probabilities averaged over the clip's 3-s patches (``brain2music tag``).
  What is tagged is the audio each embedding was made from: the stimulus excerpt (faded, RMS-normalised,
  as the subjects heard it), the first 15 s of a library track (what the library embedded), the generated
  file.
- Agreement of one pair: :func:`brain2music.evaluate.tags.top_k_agreement` on the group's columns.
- Chance: the expected agreement of the original with a library track drawn uniformly at random
  (:func:`brain2music.evaluate.tags.chance_top_k_agreement`), over the library tracks that retrieval may
  return (at most ``max_library`` of them, a random sample beyond that).

Audio is tagged once per file (cached by key), so subjects share the originals' and library tracks' tags.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from brain2music.errors import ConfigError
from brain2music.results import KINDS, Score
from brain2music.results.settings import StudySettings

__all__ = [
    "DEFAULT_TAGGERS",
    "ReconstructionTagging",
    "TagAgreement",
    "field_name",
    "metric_name",
    "score_tags",
]

#: which musicnn tagger scores each group (see the module docstring for why)
DEFAULT_TAGGERS: dict[str, str] = {"genre": "musicnn-msd", "instrument": "musicnn-mtt", "mood": "musicnn-msd"}

Loader = Callable[[], tuple[np.ndarray, int]]  # () -> (audio (n_samples,), sr)


class TagAgreement:
    """Tag audio with the musicnn taggers and score class agreement per group.

    Parameters
    ----------
    taggers : {group: tagger name}
        Groups to score and the tagger of each (names of :func:`~brain2music.embeddings.musicnn.get_tagger`).
    top_k : {group: k}, optional
        Top tags compared per group (default: the paper's, :data:`~brain2music.embeddings.musicnn.tags.TOP_K`).
    weights : path, optional
        Checkpoint folder for every tagger (default: the installed ``musicnn`` package).
    """

    def __init__(self, taggers: Mapping[str, str] | None = None, top_k: Mapping[str, int] | None = None,
                 *, weights=None):  # fmt: skip
        from brain2music.embeddings.musicnn.tags import TAG_GROUPS, TOP_K

        self.taggers = dict(DEFAULT_TAGGERS if taggers is None else taggers)
        self.top_k = {g: int((top_k or TOP_K).get(g, TOP_K.get(g, 1))) for g in self.taggers}
        unknown = sorted(set(self.taggers) - set(TOP_K))
        if unknown:
            raise ConfigError(f"unknown tag group(s) {unknown}; known groups: {sorted(TOP_K)}")
        self.weights = weights
        self._models: dict = {}
        self._cache: dict[tuple[str, str], np.ndarray] = {}
        self.columns: dict[str, list[int]] = {}
        self.group_tags: dict[str, tuple[str, ...]] = {}
        for group, name in self.taggers.items():
            tagger = self._tagger(name)
            dataset = "MSD" if tagger.pretrained.checkpoint.startswith("MSD") else "MTT"
            self.group_tags[group] = TAG_GROUPS[dataset][group]
            index = {t: i for i, t in enumerate(tagger.tags)}
            self.columns[group] = [index[t] for t in self.group_tags[group]]

    def _tagger(self, name: str):
        from brain2music.embeddings.musicnn import get_tagger

        if name not in self._models:
            self._models[name] = get_tagger(name, weights=self.weights)
        return self._models[name]

    @property
    def config(self) -> dict:
        """The tagger and ``top_k`` of each group and the tags it compares (stored with the scores)."""
        return {"taggers": dict(self.taggers), "top_k": dict(self.top_k),
                "groups": {g: list(t) for g, t in self.group_tags.items()}}  # fmt: skip

    def probs(self, keys: Sequence[str], loaders: Sequence[Loader]) -> dict[str, np.ndarray]:
        """``{group: (n, n_group_tags)}`` tag probabilities of the audio ``loaders[i]()`` known as ``keys[i]``.

        Each key is tagged once per tagger (later calls reuse it): use the file path, or a path plus the
        excerpt, as key.
        """
        names = sorted(set(self.taggers.values()))
        for key, load in zip(keys, loaders, strict=True):
            todo = [n for n in names if (n, key) not in self._cache]
            if todo:
                audio, sr = load()
                for n in todo:
                    self._cache[(n, key)] = self._tagger(n).predict_proba(audio, sr)
        return {
            g: np.array([self._cache[(name, k)][self.columns[g]] for k in keys]).reshape(len(keys), len(cols))
            for g, name in self.taggers.items()
            for cols in [self.columns[g]]
        }

    def agreement(self, original: Mapping[str, np.ndarray], other: Mapping[str, np.ndarray]) -> dict:
        """``{group: (n,)}`` agreement of each original with the reconstruction in the same row."""
        from brain2music.evaluate.tags import top_k_agreement

        return {g: top_k_agreement(original[g], other[g], self.top_k[g]) for g in self.taggers}

    def chance(self, original: Mapping[str, np.ndarray], library: Mapping[str, np.ndarray]) -> dict:
        """``{group: (n,)}`` expected agreement of each original with a random track of ``library``."""
        from brain2music.evaluate.tags import chance_top_k_agreement

        return {g: chance_top_k_agreement(original[g], library[g], self.top_k[g]) for g in self.taggers}

    def top_tags(self, probs: Mapping[str, np.ndarray]) -> list[dict[str, list[str]]]:
        """Per row, ``{group: its top-k tags, most probable first}`` (what the agreement compares)."""
        n = len(next(iter(probs.values())))
        out: list[dict[str, list[str]]] = [{} for _ in range(n)]
        for g, p in probs.items():
            order = np.argsort(-p, axis=1, kind="stable")[:, : self.top_k[g]]
            for i in range(n):
                out[i][g] = [self.group_tags[g][j] for j in order[i]]
        return out


# ------------------------------------------------------------------------- one subject's reconstruction
# Which reconstruction kinds (all of :data:`~brain2music.results.KINDS` are scored) get a CI over clips
# and a paired p-value against chance.
_WITH_CI = ("retrieval", "generation", "true_embedding")
_WITH_P = ("retrieval", "generation")


def field_name(kind: str, group: str) -> str:
    """The flat name of a kind's agreement in a group, e.g. ``retrieval_tag_agreement_genre`` (summaries,
    clip scores); the per-subject :class:`~brain2music.results.Score` is ``scores[kind][metric_name(group)]``."""
    return f"{kind}_{metric_name(group)}"


def metric_name(group: str) -> str:
    """The metric of a tag group: ``tag_agreement_genre``."""
    return f"tag_agreement_{group}"


def audio_loader(path: str, duration: float | None = 15.0, **clip) -> Loader:
    """A loader of ``duration`` s of ``path`` from its start (or an :class:`AudioClip` spec)."""
    from brain2music.embeddings.clips import AudioClip

    return AudioClip(str(path), str(path), duration=duration, **clip).load


def score_tags(
    scorer: TagAgreement,
    original: dict[str, np.ndarray],
    reconstructions: Mapping[str, dict[str, np.ndarray] | None],
    library: dict[str, np.ndarray],
    *,
    n_bootstrap: int = 1000,
    random_state: int = 0,
) -> tuple[dict[str, dict[str, Score]], dict[str, np.ndarray]]:
    """Per-subject tag agreement scores of every kind, and the per-clip agreements they are means of.

    Parameters
    ----------
    original : ``{group: (n, n_group_tags)}`` tag probabilities of the originals.
    reconstructions : ``{kind: {group: (n, n_group_tags)} | None}`` for kinds of :data:`KINDS` but
        ``chance`` (``None``: that kind was not made).
    library : ``{group: (n_library, n_group_tags)}``: the tracks a random draw may return (Chance).

    Returns
    -------
    ``({kind: {metric: Score}}, {flat name: (n,)})``: per kind made and group (metric
    :func:`metric_name`), the mean agreement over the ``n`` clips with a 95 % bootstrap CI over clips for
    retrieval, generation and true_embedding and a two-sided paired sign-flip p-value of the per-clip
    difference from chance for retrieval and generation; then each clip's agreement, keyed
    :func:`field_name` (what the summaries over subjects resample).
    """
    from brain2music.evaluate.stats import bootstrap_ci, ci_list, paired_test

    chance = scorer.chance(original, library)
    per_clip = {"chance": chance} | {
        kind: scorer.agreement(original, probs)
        for kind, probs in reconstructions.items()
        if probs is not None
    }
    out: dict[str, dict[str, Score]] = {}
    clip_values: dict[str, np.ndarray] = {}
    for kind in KINDS:
        for group in scorer.taggers:
            values = per_clip.get(kind, {}).get(group)
            if values is None:
                continue
            values = np.asarray(values, dtype=np.float64)
            clip_values[field_name(kind, group)] = values
            ci = (
                bootstrap_ci(values, n_bootstrap=n_bootstrap, random_state=random_state)
                if kind in _WITH_CI
                else None
            )
            test = paired_test(values, chance[group], random_state=random_state) if kind in _WITH_P else None
            out.setdefault(kind, {})[metric_name(group)] = Score(
                float(np.mean(values)), ci_list(ci),
                None if test is None else test.p_value, n_clips=int(len(values)),
            )  # fmt: skip
    return out, clip_values


def stimulus_clips(config: StudySettings | None, ids: Sequence[str]) -> tuple[dict | None, str | None]:
    """``({clip_id: AudioClip}, None)``: the stimuli of clips ``ids`` of a study, or ``(None, why not)``.

    The excerpts come from the study's events (``config.source.bids_root``), the audio from
    ``config.stimuli``: exactly what the embeddings were computed from (and the subjects heard).
    """
    from brain2music.embeddings.clips import clips_from_design, experiment_clips
    from brain2music.errors import DataError, DataFileNotFoundError

    bids, stimuli = (None, None) if config is None else (config.source.bids_root, config.stimuli)
    if not bids or not stimuli:
        return None, "the results folder's config names no stimuli folder and BIDS root"
    try:
        table = experiment_clips(bids, subjects=list(config.subjects) or None)
        clips = {c.clip_id: c for c in clips_from_design(table[table.clip_id.isin(set(ids))], stimuli)}
    except (DataError, DataFileNotFoundError) as exc:
        return None, f"the stimuli could not be read: {exc}"
    missing = [c for c in ids if c not in clips]
    if missing:
        return None, f"no stimulus found for test clip(s) {missing[:5]} in the events of {bids}"
    return clips, None


@dataclass
class ReconstructionTagging:
    """Tag agreement inside :func:`brain2music.study.reconstruct.reconstruct` (state shared by subjects).

    ``info`` is what ``reconstruction.json`` records as ``tag_agreement``: the scorer's config, or
    ``{"skipped": why}`` when the originals' audio is not available.
    """

    scorer: TagAgreement | None
    info: dict
    study_config: StudySettings | None
    max_library: int
    random_state: int = 0
    progress: bool = False
    library_: dict = field(default_factory=dict)

    @classmethod
    def make(cls, study, enabled: bool | TagAgreement, taggers=None, max_library: int = 200, *,
             random_state: int = 0, progress: bool = False) -> ReconstructionTagging | None:  # fmt: skip
        """``enabled``: True, False, or a :class:`TagAgreement` to use (its tags of earlier audio are reused)."""
        if enabled is False or enabled is None:
            return None
        if int(max_library) < 1:
            raise ConfigError(
                f"tag_library must be >= 1 (library tracks tagged for Chance), got {max_library!r}"
            )
        config = study.config
        if not config.source.bids_root or not config.stimuli:
            why = "the results folder's config names no stimuli folder and BIDS root"
            return cls(None, {"skipped": why}, None, int(max_library))
        scorer = enabled if isinstance(enabled, TagAgreement) else TagAgreement(taggers)
        info = scorer.config | {"library_tracks": None}
        return cls(scorer, info, config, int(max_library), random_state, progress)

    def subject(self, run, ids, found, gen_paths) -> tuple[dict, list, dict]:
        """``({kind: {metric: Score}}, per-clip tag classes, {flat name: per-clip agreement (n,)})`` of
        one subject's reconstructions."""
        if self.scorer is None:
            return {}, [None] * len(ids), {}
        originals, why = stimulus_clips(self.study_config, [str(c) for c in ids])
        if originals is None:
            self.info, self.scorer = {"skipped": why}, None
            return {}, [None] * len(ids), {}
        meta = run.lib.metadata

        def tracks(items):
            paths = [str(meta.at[int(i), "path"]) for i in items]
            return self._probs(paths, [audio_loader(p) for p in paths], "library tracks")

        original = self._probs(
            [repr(originals[str(c)]) for c in ids], [originals[str(c)].load for c in ids], "stimuli"
        )
        made = {"retrieval": tracks(found.items[:, 0]), "true_embedding": tracks(found.true_items[:, 0])}
        if gen_paths and gen_paths[0] is not None:
            made["generation"] = self._files([run.out / p for p in gen_paths])
        if run.true_embedding_generation and all(c in run.truth_cache for c in ids):
            made["true_embedding_generation"] = self._files([run.out / run.truth_cache[c][0] for c in ids])
        library = self._library(found.allowed, tracks)
        scores, per_clip = score_tags(self.scorer, original, made, library, n_bootstrap=run.n_bootstrap,
                                      random_state=self.random_state)  # fmt: skip
        names = {
            "retrieval": "retrieved",
            "generation": "generated",
            "true_embedding_generation": "true_embedding_generated",
        }
        per_kind = {"original": self.scorer.top_tags(original)} | {
            names.get(k, k): self.scorer.top_tags(p) for k, p in made.items()
        }
        classes = [{kind: rows[i] for kind, rows in per_kind.items()} for i in range(len(ids))]
        return scores, classes, per_clip

    def _probs(self, keys, loaders, what):
        from tqdm.auto import tqdm

        bar = tqdm(total=len(keys), desc=f"tagging {what}", disable=not self.progress, leave=False)
        out = self.scorer.probs(keys, [_counted(load, bar) for load in loaders])
        bar.close()
        return out

    def _files(self, paths):
        return self._probs([str(p) for p in paths], [audio_loader(p) for p in paths], "generated audio")

    def _library(self, allowed, tracks):
        """Tags of the tracks a random draw may return: all of them, or a sample of ``max_library``."""
        key = None if allowed is None else frozenset(int(i) for i in allowed)
        if key not in self.library_:
            items = np.asarray(sorted(key)) if key is not None else np.arange(0)
            if len(items) > self.max_library:
                rng = np.random.default_rng(self.random_state)
                items = np.sort(rng.choice(items, self.max_library, replace=False))
            self.library_[key] = tracks(items)
            self.info["library_tracks"] = int(len(items))
        return self.library_[key]


def _counted(load: Loader, bar) -> Loader:
    def run():
        bar.update()
        return load()

    return run
