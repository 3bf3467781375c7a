"""``brain2music reconstruct``: music from predicted embeddings, by retrieval and by generation, evaluated.

Reads a results folder written by ``brain2music reproduce`` (through
:class:`~brain2music.results.ResultsFolder`) and a music library built with the same encoder. For
each selected subject and test clip it retrieves the top-``k`` library tracks for the predicted embedding
and generates new audio conditioned on it, then scores both against the originals.

Which decoder: ``method`` when given (``method_selected_by: "user"``); otherwise the method with the best
mean *training* cross-validation r in ``results.json``: ``"nested_train_cv"`` where that score is nested
(every choice of the method — voxels, parcels, alignment maps, penalties — refitted in each outer
run-grouped fold), ``"train_cv"`` for folders written before nesting. The test clips are never used to
choose it: they are the clips the reconstructions are scored on.

Evaluation (per subject, then mean ± sd (``ddof=1``) over subjects with a hierarchical bootstrap CI of
the per-clip scores, :mod:`brain2music.study.recon_scoring`), always in the metric space the predictions
were scored in by ``reproduce`` (saved with them). Each subject's scores nest kind → metric →
:class:`~brain2music.results.Score` (``per_subject[i].get("retrieval", "id_acc")``); summaries and
clip scores are keyed ``<kind>_<metric>`` (``summary["retrieval_id_acc"]``). The metrics:

- ``*_id_acc``: identification accuracy (paper Eq. 2–3, windows averaged) between the embeddings of the
  reconstructions and of the originals (the ``target`` embeddings); ``*_top1_acc`` / ``*_top5_acc``: the
  peers' N-way identification on the same similarity matrix (chance ``top1_chance`` / ``top5_chance``
  = k / n_clips); each with a 95 % bootstrap CI over clips and a permutation p-value against chance.
  ``retrieval``: the top-1 track's stored embedding; ``generation``: the embedding of the generated audio.
- ``chance``: a random library track per clip (mean over ``n_chance`` draws); ``true_embedding``:
  retrieval with the true embedding of the original (what this library returns for a perfect decode;
  not an upper bound: a reconstruction may score above it).
- ``*_genre_agreement``: how often a genre tagger gives the reconstruction the genre it gives the
  original. The tagger is a logistic regression on the window-averaged embeddings of the *training*
  stimuli; ``tagger_accuracy`` is its accuracy on the originals.
- ``*_tag_agreement_<group>``: the paper's class agreement with pretrained taggers (musicnn), genres
  top-2, instruments top-2, moods top-1, on the audio itself (the stimulus excerpt, the library track's
  first 15 s, the generated file); Chance is the expected agreement with a random library track. See
  :mod:`brain2music.reconstruct.tag_agreement`. Needs the stimuli (``config["stimuli"]`` and
  ``config["bids_root"]`` of the results folder); without them ``tag_agreement`` says why it was skipped.

Output folder::

    recon/
      reconstruction.json                      ReconstructionResults (docs/results_layout.md)
      audio/<subject>/<clip_id>.generated.wav
      audio/true_embedding/<clip_id>.generated.wav   with true_embedding_generation=True
      offline_bank.npz                          the offline generator's fitted bank (reused on reruns)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from brain2music.errors import ConfigError, DataError, DataFileNotFoundError
from brain2music.reconstruct.clip_embedding import clip_embedding, encoder_name, prepare_clip, resolve_encoder
from brain2music.reconstruct.generators import (
    BestOfN,
    Generator,
    cosine_scores,
    generator_parameters,
    get_generator,
    resolve_generator_options,
)
from brain2music.reconstruct.library import MusicLibrary
from brain2music.reconstruct.selection import EmbeddingScore, EncodingScore, check_score
from brain2music.reconstruct.tag_agreement import ReconstructionTagging as _Tagging
from brain2music.results import (
    Predictions,
    ReconstructedClip,
    ReconstructionResults,
    ReconstructionScores,
    ResultsFolder,
    Score,
    StudyResults,
    one_writer,
)
from brain2music.results.reconstruction import flat_name, split_name
from brain2music.study.recon_scoring import chance_levels, identification_fields, summarise_subjects
from brain2music.windows import clip_vectors

__all__ = ["GenreTagger", "check_reconstruct", "cosine_pairs", "reconstruct", "summarise_subjects"]


# ----------------------------------------------------------------------------------------------- tagger
class GenreTagger:
    """Genre classifier on window-averaged embeddings (standardise + multinomial logistic regression).

    ``fit(embeddings (n, [r,] dim), genres (n,))``; ``predict(embeddings) -> (n,) genres``.
    """

    def __init__(self, C: float = 1.0):
        self.C = C

    def fit(self, embeddings: np.ndarray, genres) -> GenreTagger:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        x = clip_vectors(np.asarray(embeddings, dtype=np.float64))
        y = np.asarray(genres).astype(str)
        if len(np.unique(y)) < 2:
            raise DataError(f"a genre tagger needs at least 2 genres in its training set; got {np.unique(y)}")
        self.model_ = make_pipeline(StandardScaler(), LogisticRegression(C=self.C, max_iter=2000)).fit(x, y)
        self.classes_ = self.model_.classes_
        return self

    def predict(self, embeddings: np.ndarray) -> np.ndarray:
        return self.model_.predict(clip_vectors(np.asarray(embeddings, dtype=np.float64)))


def _fit_tagger(folder: ResultsFolder, study: StudyResults, encoder: str, test_ids: set[str]):
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


# ------------------------------------------------------------------------------------------------ main
@one_writer("brain2music reconstruct", reads="results")
def reconstruct(
    results: str | os.PathLike,
    library: str | os.PathLike | MusicLibrary,
    out: str | os.PathLike,
    *,
    generator: str | Generator | None = "offline",
    generator_options: dict | None = None,
    encoder: Any = None,
    method: str | None = None,
    subjects: list[str] | None = None,
    n_clips: int | None = None,
    k: int = 5,
    best_of: int = 1,
    score: str = "embedding",
    encoder_options: dict | None = None,
    device: str | None = None,
    dtype: str | None = None,
    duration: float = 15.0,
    exclude_stimuli: bool = True,
    n_chance: int = 20,
    true_embedding_generation: bool = False,
    n_bootstrap: int = 1000,
    random_state: int = 0,
    progress: bool = True,
    tag_agreement: bool | Any = True,
    taggers: dict[str, str] | None = None,
    tag_library: int = 200,
) -> ReconstructionResults:
    """Retrieve and generate music for the predicted embeddings of a results folder; evaluate; write JSON.

    Parameters
    ----------
    results : folder written by ``brain2music reproduce``.
    library : music library built with the same encoder as the predictions to use.
    out : output folder (``reconstruction.json``, ``audio/``). One writer at a time, and ``results`` is
        not rewritten meanwhile: either running elsewhere refuses this run at once.
    generator : registry name (``offline``, ``mosaic``, ``debug``, ``musicldm``, ``musicgen``) or Generator; ``None``
        skips generation (retrieval only).
    generator_options : keyword arguments for :func:`~brain2music.reconstruct.generators.get_generator`
        (``--generator-option``), checked against the generator before anything loads. A generator that
        takes ``encoder`` gets the library's encoder (MusicLDM then checks that it embeds into its own
        CLAP space and refuses a mismatch unless an ``aligner`` option is given).
    encoder : encoder object used to embed generated audio; default: the library's encoder, rebuilt from
        the registry with the options recorded in the library, updated by ``encoder_options``.
    encoder_options : options overriding the library's recorded ones (e.g. ``model=`` another copy).
    device, dtype : placement of the neural encoder and generator (``--device``, ``--dtype``).
    method : decoder whose predictions to use; default: the best by training cross-validation.
    subjects : subjects to reconstruct for (default: all with predictions).
    n_clips : reconstruct only the first ``n_clips`` test clips (default: all). At least 2.
    k : retrieved tracks per clip.
    best_of : generate this many candidates per clip and keep the best by ``score`` (1: plain generation).
    score : ``"embedding"`` (cosine to the predicted embedding in the predictions' metric space) or
        ``"encoding"`` (the subject's encoding model's predicted response to the candidate against the
        measured response to the clip; needs ``encoding/<enc>/<subject>_model.npz`` from ``reproduce``).
        Neither looks at the test clip's true embedding (:mod:`brain2music.reconstruct.selection`).
    duration : seconds of generated audio.
    exclude_stimuli : never retrieve (nor reuse in a mosaic) a library track whose id is a test clip id, nor
        the recording a test clip was cut from (studies made with ``simulate --music``).
    n_chance : random-track draws averaged for the Chance row.
    true_embedding_generation : also generate from the true embedding of each clip (what the generator
        makes of a perfect decode).
    n_bootstrap, random_state : resamples and seed of every confidence interval (per subject over its
        clips; over subjects the hierarchical bootstrap of :func:`summarise_subjects`), and the seed of
        every random draw.
    tag_agreement : score class agreement with the musicnn taggers (needs the ``musicnn`` package); a
        :class:`~brain2music.reconstruct.tag_agreement.TagAgreement` to use that one (and its cached tags).
    taggers : ``{group: tagger}`` (default :data:`~brain2music.reconstruct.tag_agreement.DEFAULT_TAGGERS`).
    tag_library : at most this many library tracks (a random sample) are tagged for the Chance level.

    Returns
    -------
    The :class:`~brain2music.results.ReconstructionResults` written to ``reconstruction.json``.
    """
    folder, out = ResultsFolder(results), Path(out)
    study = folder.read()
    lib = library if isinstance(library, MusicLibrary) else MusicLibrary(library)
    enc_name = _check_library(study, folder, lib)
    if n_clips is not None and int(n_clips) < 2:
        raise ConfigError(f"n_clips must be >= 2 (identification needs two clips), got {n_clips!r}")
    if int(k) < 1:
        raise ConfigError(f"k must be >= 1, got {k!r}")
    if int(best_of) < 1:
        raise ConfigError(f"--best-of must be >= 1, got {best_of!r}")
    check_score(score)
    method, selected_by = _choose_method(study, folder, enc_name, method)
    subjects = _choose_subjects(folder, enc_name, method, subjects)
    if generator is not None and int(best_of) > 1 and score == "encoding":
        for s in subjects:  # fail before generating anything
            folder.read_encoding_model(enc_name, s)
    placement, selection = {"device": device, "dtype": dtype}, _Selection(score, folder, enc_name)
    generator_options = _mosaic_options(
        generator, generator_options, folder, study, lib, enc_name, method, subjects,
        exclude_stimuli=exclude_stimuli, progress=progress,
    )  # fmt: skip
    enc, gen = _make_generator(
        generator, generator_options, encoder if encoder is not None else _library_encoder(lib, encoder_options,
        placement), enc_name, int(best_of), out, progress, random_state, placement, selection,
    )  # fmt: skip
    run = _Run(folder, study, lib, enc_name, enc, gen, out, k=int(k), duration=float(duration),
               exclude_stimuli=exclude_stimuli, n_chance=int(n_chance),
               true_embedding_generation=true_embedding_generation,
               n_bootstrap=int(n_bootstrap), rng=np.random.default_rng(random_state), progress=progress,
               selection=selection if isinstance(gen, BestOfN) else None,
               tagging=_Tagging.make(study, tag_agreement, taggers, tag_library, random_state=random_state,
                                     progress=progress))  # fmt: skip
    clips, per_subject = [], []
    for subject in subjects:
        pred = folder.read_predictions(enc_name, method, subject)
        subject_clips, scores = run.subject(pred, n_clips)
        clips += subject_clips
        per_subject.append(scores)
    config = {
        "results": str(folder.root), "library": str(lib.path), "out": str(out), "encoder": enc_name,
        "method": method, "generator": None if gen is None else gen.config, "k": int(k), "n_clips": n_clips,
        "subjects": subjects, "best_of": int(best_of), "score": score if int(best_of) > 1 else None,
        "encoder_options": {k: v for k, v in (encoder_options or {}).items() if k != "device"},
        "generator_options": _plain_options(generator_options), "device": device, "dtype": dtype,
        "duration": float(duration),
        "exclude_stimuli": bool(exclude_stimuli), "n_chance": int(n_chance),
        "true_embedding_generation": bool(true_embedding_generation), "n_bootstrap": int(n_bootstrap),
        "random_state": random_state,
        "tag_agreement": tag_agreement is not False, "taggers": taggers, "tag_library": int(tag_library),
    }  # fmt: skip
    recon = ReconstructionResults(
        config=config, encoder=enc_name, method=method, method_selected_by=selected_by,
        space=study.space(enc_name) if enc_name in study.encoders else per_subject[0].space,
        generator=None if gen is None else gen.config,
        library={"path": str(lib.path), "n_items": len(lib), "encoder": enc_name}, subjects=subjects,
        clips=clips, per_subject=per_subject,
        summary=summarise_subjects(per_subject, clips, n_bootstrap=int(n_bootstrap), random_state=random_state),
        tag_agreement=run.tagging.info if run.tagging is not None else None,
    )  # fmt: skip
    ResultsFolder.write_reconstruction(out, recon)
    return recon


def check_reconstruct(
    library: str | os.PathLike | MusicLibrary,
    *,
    generator: str | None = "offline",
    generator_options: dict | None = None,
    encoder_options: dict | None = None,
    device: str | None = None,
    dtype: str | None = None,
) -> list:
    """``reconstruct --check``: build the library's encoder and the generator as the run would (loading
    every checkpoint, checking MusicLDM's CLAP pairing), generate nothing. Returns
    :class:`~brain2music.checkpoints.CheckResult` s (the generator is skipped if the encoder fails)."""
    from brain2music.checkpoints import check_component, check_generator

    lib = library if isinstance(library, MusicLibrary) else MusicLibrary(library)
    placement = {"device": device, "dtype": dtype}
    holder = {}

    def build():
        holder["enc"] = _library_encoder(lib, encoder_options, placement)()
        return holder["enc"]

    checkpoint = lib.encoder_options.get("model")
    results = [
        check_component("encoder", lib.encoder_name, None if checkpoint is None else str(checkpoint), build)
    ]
    if generator is None or "enc" not in holder:
        return results
    opts = resolve_generator_options(generator, dict(generator_options or {}), **placement)
    if "encoder" in generator_parameters(generator):
        opts.setdefault("encoder", holder["enc"])
    return results + check_generator(generator, opts)


# ------------------------------------------------------------------------------------------ the steps
def _check_library(study: StudyResults, folder: ResultsFolder, lib: MusicLibrary) -> str:
    enc_name = lib.encoder_name
    known = set(study.encoders) | set(folder.prediction_encoders())
    if enc_name not in known:
        raise DataError(
            f"the library {lib.path} was built with encoder {enc_name!r} but the results folder {folder.root} "
            f"has predictions for encoder(s) {sorted(known)}; build the library with one of those encoders"
        )
    return enc_name


def _choose_method(
    study: StudyResults, folder: ResultsFolder, encoder: str, method: str | None
) -> tuple[str, str]:
    """``(method, "user")`` for a given method, else the best by training CV: ``(method, "nested_train_cv")``
    (``"train_cv"`` when the folder's scores are not nested)."""
    available = folder.prediction_methods(encoder)
    if not available:
        raise DataFileNotFoundError(
            f"{folder.root / 'predictions' / encoder}: no predictions of encoder {encoder!r} in the results folder"
        )
    if method is not None:
        if method not in available:
            raise ConfigError(
                f"method {method!r} has no predictions for encoder {encoder!r}; available: {available}"
            )
        return method, "user"
    how = "nested_train_cv" if study.selection_is_nested(encoder) else "train_cv"
    return study.select_method(encoder, among=available), how


def _choose_subjects(folder: ResultsFolder, encoder: str, method: str, subjects) -> list[str]:
    available = folder.prediction_subjects(encoder, method)
    if subjects:
        missing = [s for s in subjects if s not in available]
        if missing:
            raise ConfigError(
                f"no predictions for subject(s) {missing} of {encoder}/{method}; available: {available}"
            )
        return list(subjects)
    if not available:
        raise DataFileNotFoundError(
            f"{folder.root / 'predictions' / encoder / method}: no subject predictions"
        )
    return available


def _library_encoder(lib: MusicLibrary, options: dict | None, placement: dict):
    """A builder of the library's encoder (called only when generation needs it)."""
    return lambda: lib.make_encoder(
        **(options or {}), **{k: v for k, v in placement.items() if v is not None}
    )


def _plain_options(options: dict | None) -> dict:
    """Generator options as recorded in the config (objects by their type name)."""
    plain = (str, int, float, bool, type(None), list, dict)
    return {k: v if isinstance(v, plain) else type(v).__name__ for k, v in (options or {}).items()}


def _make_generator(
    generator, options, encoder, enc_name, best_of, out, progress, random_state, placement, selection
):
    """``(encoder, generator)`` for generation, or ``(None, None)`` for retrieval only."""
    if generator is None:
        return None, None
    enc = resolve_encoder(encoder() if callable(encoder) and not hasattr(encoder, "embed") else encoder)
    if encoder_name(enc) != enc_name:
        raise DataError(
            f"encoder {encoder_name(enc)!r} given to embed generated audio, but the library and "
            f"predictions use encoder {enc_name!r}"
        )
    opts = dict(options or {})
    if isinstance(generator, str):
        opts = resolve_generator_options(generator, opts, **placement)
        takes = generator_parameters(generator)
        # The pairing check: a generator conditioned in an encoder's space (offline: its search;
        # MusicLDM: its CLAP) is told which encoder the predictions live in.
        defaults = {"encoder": enc, "progress": progress, "cache": out / "offline_bank.npz",
                    "random_state": random_state}  # fmt: skip
        for key, value in defaults.items():
            if key in takes and (key == "encoder" or generator == "offline"):
                opts.setdefault(key, value)
    gen = get_generator(generator, **opts)
    if best_of > 1:
        gen = BestOfN(gen, enc, n=best_of, scorer=selection)
    if hasattr(gen, "fit") and not hasattr(gen, "map_"):
        gen.fit()
    return enc, gen


def _mosaic_options(
    generator, options, folder, study, lib, enc_name, method, subjects, *, exclude_stimuli, progress
) -> dict | None:
    """The options of a mosaic (alone or as the base of ``best-of``): the library, and in evaluation the
    recordings of every test clip of ``subjects`` kept out of every mosaic."""
    opts = dict(options or {})
    if not (generator == "mosaic" or opts.get("base") == "mosaic"):
        return options
    opts.setdefault("library", lib)
    opts.setdefault("progress", progress)
    if exclude_stimuli:
        ids = {str(c) for s in subjects for c in folder.read_predictions(enc_name, method, s).clip_ids}
        opts.setdefault("exclude", _excluded_paths(lib, study.config, ids))
    return opts


def _excluded_paths(lib: MusicLibrary, config: dict, ids) -> list[str]:
    """Library tracks never to retrieve or reuse for test clips ``ids``: tracks whose id is a clip id
    (the stimuli themselves in the library) and the recordings the clips were cut from (a study made
    with ``simulate --music`` records them in ``stimuli/metadata.csv``)."""
    from brain2music.simulate.music import stimulus_sources

    meta, ids = lib.metadata, set(map(str, ids))
    root = (config or {}).get("stimuli")
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
class _Run:
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
    selection: _Selection | None = None
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
            self.taggers[key] = _fit_tagger(self.folder, self.study, self.enc_name, set(key))
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
        exclude = _excluded_paths(lib, self.study.config, ids) if self.exclude_stimuli else None
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
                scores.merge({kind: f})
                per_clip |= c
        tag_of = {
            "retrieval": "retrieved",
            "generation": "generated",
            "chance": "chance",
            "true_embedding": "true_embedding",
            "true_embedding_generation": "true_embedding_generated",
        }
        means = {flat_name(kind, "genre_agreement"): _matches(tags.get(t), tags.get("original"))
                 for kind, t in tag_of.items()}  # fmt: skip
        means["retrieval_score_mean"] = found.scores[:, 0].astype(np.float64)
        if generated is not None:
            means["generation_score_mean"] = np.array([g["score"] for g in gen_info])
        for key, values in means.items():
            if values is not None:
                kind, metric = split_name(key)
                scores.put(kind, metric, Score(float(values.mean()), n_clips=int(len(values))))
        outside = {"tagger_accuracy": _matches(tags.get("original"), genres)} | _selection_scores(gen_info)
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


class _Selection:
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


def _matches(a, b) -> np.ndarray | None:
    """Per clip 1.0 where labels ``a`` and ``b`` agree, else 0.0; ``None`` when either is missing."""
    if a is None or b is None:
        return None
    return (np.asarray(a) == np.asarray(b)).astype(np.float64)


def _stimulus_path(config: dict, clip: str) -> str | None:
    from brain2music.stimuli import find_gtzan_file

    root = (config or {}).get("stimuli")
    if not root:
        return None
    try:
        genre, track = clip.rsplit(".", 1)
        return str(find_gtzan_file(root, genre, int(track)))
    except (ValueError, DataFileNotFoundError):
        return None


def cosine_pairs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine of window-averaged ``a`` and ``b`` ``(n, [r,] dim)`` → ``(n,)``."""
    return np.array(
        [cosine_scores(x[None], y)[0] for x, y in zip(clip_vectors(a), clip_vectors(b), strict=True)]
    )
