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
  :mod:`brain2music.reconstruct.tag_agreement`. Needs the stimuli (``config.stimuli`` and
  ``config.source.bids_root`` of the results folder); without them ``tag_agreement`` says why it was skipped.

Output folder::

    recon/
      reconstruction.json                      ReconstructionResults (docs/results_layout.md)
      audio/<subject>/<clip_id>.generated.wav
      audio/true_embedding/<clip_id>.generated.wav   with true_embedding_generation=True
      offline_bank.npz                          the offline generator's fitted bank (reused on reruns)
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np

from brain2music._checks import check_known_options
from brain2music.errors import ConfigError, DataError, DataFileNotFoundError
from brain2music.reconstruct.clip_embedding import encoder_name, resolve_encoder
from brain2music.reconstruct.generators import (
    BestOfN,
    generator_parameters,
    get_generator,
    resolve_generator_options,
)
from brain2music.reconstruct.library import MusicLibrary
from brain2music.reconstruct.selection import check_score
from brain2music.reconstruct.tag_agreement import ReconstructionTagging as _Tagging
from brain2music.results import (
    ReconstructionResults,
    ResultsFolder,
    StudyResults,
)
from brain2music.results.settings import ReconstructSettings
from brain2music.study.recon_scoring import summarise_subjects
from brain2music.study.recon_steps import CandidateSelection, ReconstructionRun, excluded_paths

__all__ = ["check_reconstruct", "reconstruct", "reconstruct_settings"]


#: The options of :func:`reconstruct` that name what a call may also give as an object
#: (``generator=`` a Generator, ``tag_agreement=`` a TagAgreement).
_OBJECT_OPTIONS = ("generator", "tag_agreement")


def reconstruct_settings(
    results: str | os.PathLike, library: str | os.PathLike, out: str | os.PathLike, /, **options
) -> ReconstructSettings:
    """Check the options of :func:`reconstruct` into :class:`ReconstructSettings` (errors name the option).

    An option :class:`ReconstructSettings` does not have is a ConfigError, never ignored.
    """
    known = [f.name for f in dataclasses.fields(ReconstructSettings)]
    check_known_options(options, set(known) - {"results", "library", "out"}, what="reconstruct")
    s = ReconstructSettings(results, library, out, **options)
    if s.n_clips is not None and int(s.n_clips) < 2:
        raise ConfigError(f"n_clips must be >= 2 (identification needs two clips), got {s.n_clips!r}")
    if int(s.k) < 1:
        raise ConfigError(f"k must be >= 1, got {s.k!r}")
    if int(s.best_of) < 1:
        raise ConfigError(f"--best-of must be >= 1, got {s.best_of!r}")
    check_score(s.score)
    return dataclasses.replace(
        s, n_clips=None if s.n_clips is None else int(s.n_clips), k=int(s.k), best_of=int(s.best_of),
        generator_options=dict(s.generator_options or {}), encoder_options=dict(s.encoder_options or {}),
        duration=float(s.duration), n_chance=int(s.n_chance), n_bootstrap=int(s.n_bootstrap),
        tag_library=int(s.tag_library), exclude_stimuli=bool(s.exclude_stimuli),
        true_embedding_generation=bool(s.true_embedding_generation),
    )  # fmt: skip


# ------------------------------------------------------------------------------------------------ main
def reconstruct(
    settings: ReconstructSettings | str | os.PathLike,
    library: str | os.PathLike | MusicLibrary | None = None,
    out: str | os.PathLike | None = None,
    /,
    *,
    encoder: Any = None,
    progress: bool = True,
    **options,
) -> ReconstructionResults:
    """Retrieve and generate music for the predicted embeddings of a results folder; evaluate; write JSON.

    ``reconstruct(settings)`` with a :class:`~brain2music.results.settings.ReconstructSettings`
    (:func:`reconstruct_settings` builds one), or ``reconstruct(results, library, out, **options)``,
    which builds the same settings. Beside the settings a call may give ``library`` as an opened
    :class:`MusicLibrary`, ``generator=`` a Generator and ``tag_agreement=`` a TagAgreement.

    Parameters
    ----------
    results : folder written by ``brain2music reproduce``.
    library : music library built with the same encoder as the predictions to use.
    out : output folder (``reconstruction.json``, ``audio/``). One writer at a time, and ``results`` is
        not rewritten meanwhile: either running elsewhere refuses this run at once.
    encoder : encoder object used to embed generated audio; default: the library's encoder, rebuilt from
        the registry with the options recorded in the library, updated by ``encoder_options``.
    progress : progress bars.
    options : the fields of :class:`~brain2music.results.settings.ReconstructSettings`:

        - ``generator``: registry name (``offline``, ``mosaic``, ``debug``, ``musicldm``, ``musicgen``)
          or a Generator; ``None`` skips generation (retrieval only). ``generator_options``: keywords of
          :func:`~brain2music.reconstruct.generators.get_generator` (``--generator-option``), checked
          against the generator before anything loads; a generator that takes ``encoder`` gets the
          library's encoder (MusicLDM then checks that it embeds into its own CLAP space and refuses a
          mismatch unless an ``aligner`` option is given).
        - ``encoder_options``: options overriding the library's recorded ones (e.g. ``model=`` another
          copy); ``device``, ``dtype``: placement of the neural encoder and generator.
        - ``method``: decoder whose predictions to use (default: the best by training cross-validation);
          ``subjects``: subjects to reconstruct for (default: all with predictions); ``n_clips``: only
          the first ``n_clips`` test clips (default: all; at least 2); ``k``: retrieved tracks per clip.
        - ``best_of``: candidates generated per clip, the best by ``score`` kept: ``"embedding"`` (cosine
          to the predicted embedding in the predictions' metric space) or ``"encoding"`` (the subject's
          encoding model's predicted response to the candidate against the measured response; needs
          ``encoding/<enc>/<subject>_model.npz``). Neither looks at the test clip's true embedding
          (:mod:`brain2music.reconstruct.selection`).
        - ``duration``: seconds of generated audio; ``exclude_stimuli``: never retrieve (nor reuse in a
          mosaic) a library track whose id is a test clip id, nor the recording a test clip was cut
          from (studies made with ``simulate --music``); ``n_chance``: random-track draws averaged for
          the Chance row; ``true_embedding_generation``: also generate from the true embedding of each
          clip (what the generator makes of a perfect decode).
        - ``n_bootstrap``, ``random_state``: resamples and seed of every confidence interval (per subject
          over its clips; over subjects the hierarchical bootstrap of :func:`summarise_subjects`), and
          the seed of every random draw.
        - ``tag_agreement``: score class agreement with the musicnn taggers (needs ``musicnn``), or a
          :class:`~brain2music.reconstruct.tag_agreement.TagAgreement` to use (and its cached tags);
          ``taggers``: ``{group: tagger}`` (default
          :data:`~brain2music.reconstruct.tag_agreement.DEFAULT_TAGGERS`); ``tag_library``: at most this
          many library tracks (a random sample) tagged for the Chance level.

    Returns
    -------
    The :class:`~brain2music.results.ReconstructionResults` written to ``reconstruction.json``.
    """
    objects = {k: options.pop(k) for k in _OBJECT_OPTIONS if k in options and not _plain(k, options[k])}
    if isinstance(library, MusicLibrary):
        objects["library"] = library
        library = None if isinstance(settings, ReconstructSettings) else library.path
    if isinstance(settings, ReconstructSettings):
        if options or out is not None or library is not None:
            raise ConfigError(
                "reconstruct(settings, ...): give the options in the settings (reconstruct_settings), "
                "not beside them"
            )
    else:
        settings = reconstruct_settings(settings, library, out, **options,
                                        **{k: _named(k, v) for k, v in objects.items() if k != "library"})  # fmt: skip
    with contextlib.ExitStack() as stack:
        stack.enter_context(ResultsFolder(settings.out).writing("brain2music reconstruct"))
        stack.enter_context(ResultsFolder(settings.results).reading("brain2music reconstruct"))
        return _reconstruct(settings, objects, encoder, progress)


def _plain(key: str, value) -> bool:
    """Whether ``value`` of option ``key`` is a setting (a name, a flag, ``None``) rather than an object."""
    return value is None or (isinstance(value, str) if key == "generator" else isinstance(value, bool))


def _named(key: str, obj) -> Any:
    """The setting an object stands for: a generator by its name, a tag scorer by ``True``."""
    return getattr(obj, "name", type(obj).__name__) if key == "generator" else True


def _reconstruct(s: ReconstructSettings, objects: dict, encoder, progress: bool) -> ReconstructionResults:
    folder, out = ResultsFolder(s.results), Path(s.out)
    study = folder.read()
    lib = objects.get("library") or MusicLibrary(s.library)
    enc_name = _check_library(study, folder, lib)
    method, selected_by = _choose_method(study, folder, enc_name, s.method)
    subjects = _choose_subjects(folder, enc_name, method, s.subjects)
    generator = objects.get("generator", s.generator)
    if generator is not None and s.best_of > 1 and s.score == "encoding":
        for subject in subjects:  # fail before generating anything
            folder.read_encoding_model(enc_name, subject)
    placement, selection = (
        {"device": s.device, "dtype": s.dtype},
        CandidateSelection(s.score, folder, enc_name),
    )
    generator_options = _mosaic_options(
        generator, s.generator_options, folder, study, lib, enc_name, method, subjects,
        exclude_stimuli=s.exclude_stimuli, progress=progress,
    )  # fmt: skip
    enc, gen = _make_generator(
        generator, generator_options, encoder if encoder is not None else _library_encoder(lib, s.encoder_options,
        placement), enc_name, s.best_of, out, progress, s.random_state, placement, selection,
    )  # fmt: skip
    tagging = _Tagging.make(study, objects.get("tag_agreement", s.tag_agreement), s.taggers, s.tag_library,
                            random_state=s.random_state, progress=progress)  # fmt: skip
    run = ReconstructionRun(folder, study, lib, enc_name, enc, gen, out, k=s.k, duration=s.duration,
                            exclude_stimuli=s.exclude_stimuli, n_chance=s.n_chance,
                            true_embedding_generation=s.true_embedding_generation, n_bootstrap=s.n_bootstrap,
                            rng=np.random.default_rng(s.random_state), progress=progress,
                            selection=selection if isinstance(gen, BestOfN) else None, tagging=tagging)  # fmt: skip
    clips, per_subject = [], []
    for subject in subjects:
        subject_clips, scores = run.subject(folder.read_predictions(enc_name, method, subject), s.n_clips)
        clips += subject_clips
        per_subject.append(scores)
    config = _recorded_config(s, folder, lib, out, enc_name, method, subjects, gen, generator_options)
    recon = ReconstructionResults(
        config=config, encoder=enc_name, method=method, method_selected_by=selected_by,
        space=study.space(enc_name) if enc_name in study.encoders else per_subject[0].space,
        generator=None if gen is None else gen.config,
        library={"path": str(lib.path), "n_items": len(lib), "encoder": enc_name}, subjects=subjects,
        clips=clips, per_subject=per_subject,
        summary=summarise_subjects(per_subject, clips, n_bootstrap=s.n_bootstrap, random_state=s.random_state),
        tag_agreement=run.tagging.info if run.tagging is not None else None,
    )  # fmt: skip
    ResultsFolder.write_reconstruction(out, recon)
    return recon


def _recorded_config(
    s: ReconstructSettings, folder, lib, out, enc_name, method, subjects, gen, generator_options
):
    """``reconstruction.json``'s ``config``: the settings with what they resolved to."""
    return {
        "results": str(folder.root), "library": str(lib.path), "out": str(out), "encoder": enc_name,
        "method": method, "generator": None if gen is None else gen.config, "k": s.k, "n_clips": s.n_clips,
        "subjects": subjects, "best_of": s.best_of, "score": s.score if s.best_of > 1 else None,
        "encoder_options": {k: v for k, v in s.encoder_options.items() if k != "device"},
        "generator_options": _plain_options(generator_options), "device": s.device, "dtype": s.dtype,
        "duration": s.duration, "exclude_stimuli": s.exclude_stimuli, "n_chance": s.n_chance,
        "true_embedding_generation": s.true_embedding_generation, "n_bootstrap": s.n_bootstrap,
        "random_state": s.random_state, "tag_agreement": s.tag_agreement is not False, "taggers": s.taggers,
        "tag_library": s.tag_library,
    }  # fmt: skip


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
        opts.setdefault("exclude", excluded_paths(lib, study.config, ids))
    return opts
