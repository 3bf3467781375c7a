"""The steps of a reconstruction, per subject: retrieve, generate, tag and score (:class:`ReconstructionRun`).

:func:`brain2music.study.reconstruct.reconstruct` resolves the settings, the decoder, the subjects, the
encoder and the generator, then runs :meth:`ReconstructionRun.subject` for each subject. The metrics
are :mod:`brain2music.evaluate.reconstruction`; the summaries over subjects
:mod:`brain2music.study.recon_scoring`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from brain2music.errors import DataError, DataFileNotFoundError
from brain2music.evaluate.reconstruction import (
    GenreTagger,
    chance_levels,
    identification_fields,
    label_agreement,
)
from brain2music.reconstruct.clip_embedding import clip_embedding, prepare_clip
from brain2music.reconstruct.generators import BestOfN
from brain2music.reconstruct.library import MusicLibrary
from brain2music.reconstruct.selection import EmbeddingScore, EncodingScore
from brain2music.reconstruct.tag_agreement import ReconstructionTagging as _Tagging
from brain2music.results import (
    Predictions,
    ReconstructedClip,
    ReconstructionScores,
    ResultsFolder,
    Score,
    StudyResults,
)
from brain2music.results.reconstruction import flat_name, split_name
from brain2music.results.settings import StudySettings

__all__ = ["CandidateSelection", "ReconstructionRun", "excluded_paths", "fit_tagger"]


def fit_tagger(folder: ResultsFolder, study: StudyResults, encoder: str, test_ids: set[str]):
    """The genre tagger on the training stimuli's embeddings, or None when they are not available."""
    try:
        es = folder.read_embeddings(study, encoder)
    except DataFileNotFoundError:
        return None
    ids = np.asarray(es.clip_ids).astype(str)
    train = np.array([c not in test_ids for c in ids])
    genres = np.array([c.split(".")[0] for c in ids])
    if train.sum() < 2 or len(np.unique(genres[train])) < 2:
        return None
    return GenreTagger().fit(es.embeddings[train], genres[train])


def excluded_paths(lib: MusicLibrary, config: StudySettings, ids) -> list[str]:
    """Library tracks never to retrieve or reuse for test clips ``ids``: tracks whose id is a clip id
    (the stimuli themselves in the library) and the recordings the clips were cut from (a study made
    with ``simulate --music`` records them in ``stimuli/metadata.csv``)."""
    from brain2music.simulate.music import stimulus_sources

    meta, ids = lib.metadata, set(map(str, ids))
    root = config.stimuli
    own = {str(Path(p).resolve()) for c, p in (stimulus_sources(root) if root else {}).items() if c in ids}
    hit = meta["track_id"].astype(str).isin(ids) | meta["path"].astype(str).isin(own)
    return list(meta.loc[hit, "path"])


def _segments_of(gen) -> list[dict] | None:
    """The source segments of the clip ``gen`` returned last (generators that reuse library audio)."""
    plans, pick = getattr(gen, "last_plans_", None), 0
    if plans is None and hasattr(gen, "base"):  # best-of-N: the plan of the candidate it kept
        plans = getattr(gen.base, "last_plans_", None)
        pick = int(gen.last_choice_[-1]) if plans is not None else 0
    if not plans:
        return None
    keys = ("path", "source_start", "output_start", "duration")
    return [{k: seg[k] for k in keys} for seg in plans[pick]["segments"]]


@dataclass
class _Retrieved:
    """Library search results for one subject's clips (indices into the library)."""

    scores: np.ndarray  # (n, k)
    items: np.ndarray  # (n, k)
    true_scores: np.ndarray  # (n, 1)
    true_items: np.ndarray  # (n, 1)
    windows: np.ndarray  # (n, r, dim) top-1
    true_windows: np.ndarray  # (n, r, dim)
    chance_windows: np.ndarray  # (n_chance, n, r, dim)
    allowed: np.ndarray | None = None  # (n_allowed,) items a random draw may return


@dataclass
class ReconstructionRun:
    """State shared by the subjects of one reconstruction (taggers and generations from the true embeddings
    are reused)."""

    folder: ResultsFolder
    study: StudyResults
    lib: MusicLibrary
    enc_name: str
    enc: Any
    gen: Any
    out: Path
    k: int
    duration: float
    exclude_stimuli: bool
    n_chance: int
    true_embedding_generation: bool
    n_bootstrap: int
    rng: np.random.Generator
    progress: bool
    selection: CandidateSelection | None = None
    truth_cache: dict = field(default_factory=dict)
    taggers: dict = field(default_factory=dict)
    tagging: _Tagging | None = None
    segments: dict = field(default_factory=dict)  # generated file -> its mosaic's source segments

    def subject(
        self, pred: Predictions, n_clips: int | None
    ) -> tuple[list[ReconstructedClip], ReconstructionScores]:
        """Retrieve, tag, generate and score one subject's clips."""
        sel = slice(None) if n_clips is None else slice(0, int(n_clips))
        ids, genres = pred.clip_ids[sel], pred.genres[sel]
        P, T = pred.predicted[sel], pred.target[sel]
        self._check(pred, ids, P)
        found = self._retrieve(ids, P, T)
        key = frozenset(pred.clip_ids)
        if key not in self.taggers:  # subjects share their test set: fit once
            self.taggers[key] = fit_tagger(self.folder, self.study, self.enc_name, set(key))
        tagger = self.taggers[key]
        generated, gen_paths, truth_generated = self._generate(pred, ids, P, T)
        reconstructions = {"retrieved": found.windows, "true_embedding": found.true_windows,
                           "chance": found.chance_windows[0], "generated": generated,
                           "true_embedding_generated": truth_generated}  # fmt: skip
        tags = {}
        if tagger is not None:
            tags = {"original": tagger.predict(T)} | {
                name: tagger.predict(x) for name, x in reconstructions.items() if x is not None
            }
        gen_info = self._generation_info(generated, gen_paths, P, T)
        clips = self._clips(pred.subject, ids, genres, found, gen_info, tags)
        scores, per_clip = self._score(
            pred, ids, genres, T, found, generated, truth_generated, tags, gen_info
        )
        if self.tagging is not None:
            tag_scores, classes, tag_clip = self.tagging.subject(self, ids, found, gen_paths)
            scores.merge(tag_scores)
            per_clip |= tag_clip
            for clip, tag_classes in zip(clips, classes, strict=True):
                clip.tag_classes = tag_classes
        for i, clip in enumerate(clips):  # what the summaries over subjects resample
            clip.scores = {key: float(v[i]) for key, v in per_clip.items() if v is not None}
        return clips, scores

    def _check(self, pred: Predictions, ids, P) -> None:
        where = self.folder.predictions_path(pred.encoder, pred.method, pred.subject)
        if len(ids) < 2:
            raise DataError(f"{where}: needs at least 2 test clips, found {len(ids)}")
        if P.shape[1:] != (self.lib.n_windows, self.lib.dim):
            raise DataError(
                f"{where}: embeddings of shape (r, dim) = {P.shape[1:]}, but the library stores "
                f"({self.lib.n_windows}, {self.lib.dim}) for encoder {self.enc_name!r}"
            )

    def _retrieve(self, ids, P, T) -> _Retrieved:
        lib, meta = self.lib, self.lib.metadata
        exclude = excluded_paths(lib, self.study.config, ids) if self.exclude_stimuli else None
        if exclude and len(exclude) >= len(lib):
            raise DataError(f"{lib.path}: the library holds only the test stimuli; nothing left to retrieve")
        r_scores, r_items = lib.search(P, self.k, encoder=self.enc_name, exclude=exclude)
        o_scores, o_items = lib.search(T, 1, encoder=self.enc_name, exclude=exclude)
        allowed = np.setdiff1d(np.arange(len(lib)), meta.index[meta["path"].isin(set(exclude or []))])
        chance_draws = self.rng.choice(allowed, size=(max(1, self.n_chance), len(ids)))
        # One read of the shards for every embedding needed (the library may be large).
        wins = lib.windows(np.concatenate([r_items[:, 0], o_items[:, 0], chance_draws.ravel()]))
        n = len(ids)
        chance = wins[2 * n :].reshape(len(chance_draws), n, lib.n_windows, lib.dim)
        return _Retrieved(r_scores, r_items, o_scores, o_items, wins[:n], wins[n : 2 * n], chance, allowed)

    def _generate(self, pred: Predictions, ids, P, T):
        """``(generated (n, r, dim) | None, paths, generated from T (n, r, dim) | None)``; writes the audio."""
        from tqdm.auto import tqdm

        if self.gen is None:
            return None, [None] * len(ids), None
        subject = pred.subject
        paths, embs, self.selected = [], [], []
        for i in tqdm(range(len(ids)), desc=f"generating for {subject}", disable=not self.progress):
            rel = Path("audio") / subject / f"{ids[i]}.generated.wav"
            if self.selection is not None:
                self.selection.select(subject, ids[i], pred.space)
            embs.append(self._generate_one(P[i], rel))
            paths.append(str(rel))
            self.selected.append(self._selected())
        truth = None
        if self.true_embedding_generation:
            # Generation from the true embedding: the same for every subject, so made once per clip.
            # With best-of-N its candidates are ranked by cosine to the true embedding (the ceiling).
            todo = [i for i, c in enumerate(ids) if c not in self.truth_cache]
            for i in tqdm(todo, desc="generating from true embeddings", disable=not self.progress):
                rel = Path("audio") / "true_embedding" / f"{ids[i]}.generated.wav"
                if self.selection is not None:
                    self.selection.select(None, ids[i], pred.space)
                self.truth_cache[ids[i]] = (str(rel), self._generate_one(T[i], rel))
            truth = np.stack([self.truth_cache[c][1] for c in ids])
        return np.stack(embs), paths, truth

    def _generate_one(self, target: np.ndarray, rel: Path) -> np.ndarray:
        from brain2music.stimuli import write_audio

        audio, sr = self.gen.generate(
            target, n_samples=1, duration=self.duration, random_state=int(self.rng.integers(2**31))
        )
        write_audio(self.out / rel, audio[0], sr)
        self.segments[str(rel)] = _segments_of(self.gen)
        if isinstance(self.gen, BestOfN):  # the kept candidate is embedded already
            return self.gen.last_embeddings_[0]
        return clip_embedding(self.enc, prepare_clip(audio[0], sr, duration=min(self.duration, 15.0)), sr)

    def _selected(self) -> dict | None:
        """The best-of-N record of the last generation: the score, every candidate's score, the kept one."""
        if self.selection is None:
            return None
        scores = [float(x) for x in self.gen.last_scores_[0]]
        return {"score": self.selection.name, "scores": scores, "kept": int(self.gen.last_choice_[0])}

    def _generation_info(self, generated, gen_paths, P, T) -> list[dict | None]:
        """Per clip: the generated file, its cosine to the predicted and the true embedding, nearest track."""
        if generated is None:
            return [None] * len(P)
        meta = self.lib.metadata
        # Scores in the library's search space, so they compare with the retrieval scores.
        g = self.lib.query_vectors(generated)
        gen_score = np.sum(g * self.lib.query_vectors(P), axis=1)
        gen_true = np.sum(g * self.lib.query_vectors(T), axis=1)
        near_s, near_i = self.lib.search(generated, 1)
        selected = getattr(self, "selected", None) or [None] * len(P)
        return [
            {"path": gen_paths[i], "score": float(gen_score[i]), "score_true": float(gen_true[i]),
             "nearest_library": {"path": str(meta.at[int(near_i[i, 0]), "path"]), "score": float(near_s[i, 0])}}
            | ({"best_of": selected[i]} if selected[i] else {})
            for i in range(len(P))
        ]  # fmt: skip

    def _clips(self, subject, ids, genres, found: _Retrieved, gen_info, tags) -> list[ReconstructedClip]:
        meta = self.lib.metadata
        out = []
        for i, clip in enumerate(ids):
            o = int(found.true_items[i, 0])
            out.append(
                ReconstructedClip(
                    subject=subject,
                    clip_id=str(clip),
                    genre=str(genres[i]),
                    original={"clip_id": str(clip), "path": _stimulus_path(self.study.config, str(clip))},
                    retrieved=[
                        _track(meta, it, s, rank=j + 1)
                        for j, (s, it) in enumerate(zip(found.scores[i], found.items[i], strict=True))
                        if it >= 0
                    ],
                    true_embedding={
                        k: v
                        for k, v in _track(meta, o, found.true_scores[i, 0]).items()
                        if k not in ("rank", "artist")
                    },
                    generated=gen_info[i],
                    true_embedding_generated={"path": self.truth_cache[clip][0]}
                    if clip in self.truth_cache and gen_info[i]
                    else None,
                    tags={key: str(v[i]) for key, v in tags.items() if key != "chance"} or None,
                    segments=self.segments.get(gen_info[i]["path"]) if gen_info[i] else None,
                )  # fmt: skip
            )
        return out

    def _score(
        self, pred, ids, genres, T, found, generated, truth_generated, tags, gen_info
    ) -> tuple[ReconstructionScores, dict[str, np.ndarray | None]]:
        """``(scores, {metric: per-clip values})``: every metric in the predictions' metric space, the
        identification metrics (pairwise and N-way) with a bootstrap CI over clips and a p-value."""
        space, seed = pred.space, int(self.rng.integers(2**31))
        made = {"retrieval": found.windows, "generation": generated, "chance": found.chance_windows,
                "true_embedding": found.true_windows, "true_embedding_generation": truth_generated}  # fmt: skip
        scores = ReconstructionScores(subject=pred.subject, n_clips=int(len(ids)), space=space.name,
                                      **chance_levels(len(ids)))  # fmt: skip
        per_clip = {}
        for kind, x in made.items():
            if x is not None:
                f, c = identification_fields(kind, space.transform(x), space.transform(T),
                                             n_bootstrap=self.n_bootstrap, random_state=seed)  # fmt: skip
                scores.merge({kind: {metric: Score(**v) for metric, v in f.items()}})
                per_clip |= c
        tag_of = {
            "retrieval": "retrieved",
            "generation": "generated",
            "chance": "chance",
            "true_embedding": "true_embedding",
            "true_embedding_generation": "true_embedding_generated",
        }
        means = {flat_name(kind, "genre_agreement"): label_agreement(tags.get(t), tags.get("original"))
                 for kind, t in tag_of.items()}  # fmt: skip
        means["retrieval_score_mean"] = found.scores[:, 0].astype(np.float64)
        if generated is not None:
            means["generation_score_mean"] = np.array([g["score"] for g in gen_info])
        for key, values in means.items():
            if values is not None:
                kind, metric = split_name(key)
                scores.put(kind, metric, Score(float(values.mean()), n_clips=int(len(values))))
        outside = {"tagger_accuracy": label_agreement(tags.get("original"), genres)} | _selection_scores(
            gen_info
        )
        for key, values in outside.items():
            setattr(scores, key, None if values is None else float(values.mean()))
        return scores, per_clip | means | outside


def _selection_scores(gen_info) -> dict[str, np.ndarray]:
    """Per clip, the selection score of the kept and of the first (= best-of-1) candidate (best-of-N)."""
    picks = [g["best_of"] for g in gen_info if g and g.get("best_of")]
    if not picks:
        return {}
    return {"selection_score_mean": np.array([p["scores"][p["kept"]] for p in picks]),
            "selection_score_first_mean": np.array([p["scores"][0] for p in picks])}  # fmt: skip


class CandidateSelection:
    """The scorer of :class:`BestOfN` in a reconstruction: switched to each (subject, clip) before it is
    generated (:meth:`select`), since the encoding score depends on the subject and on the clip."""

    def __init__(self, name: str, folder: ResultsFolder, encoder: str):
        self.name, self.folder, self.encoder = name, folder, encoder
        self.models: dict[str, EncodingScore] = {}
        self.current = None

    def select(self, subject: str | None, clip: str, space) -> None:
        """Score the next candidates for ``clip`` of ``subject`` (``None``: generation from the truth,
        ranked by the embedding score against the target it is given)."""
        if self.name == "embedding" or subject is None:
            self.current = EmbeddingScore(space)
            return
        if subject not in self.models:
            where = self.folder.root / self.folder.encoding_model_rel(self.encoder, subject)
            self.models[subject] = EncodingScore(
                self.folder.read_encoding_model(self.encoder, subject), where=str(where)
            )
        self.current = self.models[subject].for_clip(clip)

    def __call__(self, candidates, target):
        return self.current(candidates, target)


def _track(meta, item, score, *, rank: int | None = None) -> dict:
    row = {"rank": rank, "path": str(meta.at[int(item), "path"]), "title": str(meta.at[int(item), "title"]),
           "artist": str(meta.at[int(item), "artist"]), "genre": str(meta.at[int(item), "genre"]),
           "score": float(score)}  # fmt: skip
    return row


def _stimulus_path(config: StudySettings, clip: str) -> str | None:
    from brain2music.stimuli import find_gtzan_file

    root = config.stimuli
    if not root:
        return None
    try:
        genre, track = clip.rsplit(".", 1)
        return str(find_gtzan_file(root, genre, int(track)))
    except (ValueError, DataFileNotFoundError):
        return None
