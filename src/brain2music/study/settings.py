"""The options of ``reproduce`` → a checked, frozen :class:`~brain2music.results.settings.StudySettings`.

:func:`study_settings` is the one place the options of the CLI (``brain2music reproduce``), the config
file (``brain2music run``) and the Python API (``reproduce(bids_root, **options)``) become settings: an
option it does not know is a ConfigError, and every check names the option. The checks need the
registries of the study (methods), the embeddings (encoders, metric spaces) and the models (backends),
so they live here, with the stage, and the record itself below every stage.

The options (``reproduce(bids_root, **options)``; the CLI flags and config keys of the same names):

stimuli : GTZAN-layout folder of the stimuli (needed unless every encoder has precomputed ``embeddings``).
encoders : embedding names (``brain2music.embeddings`` registry), e.g. ``("acoustic", "clap")``.
out : results folder (created; one writer at a time: a second run into it is refused at once).
subjects : subset of subjects (default: every ``sub-*`` folder).
derivatives : folder of the authors' preprocessed arrays (Zenodo) to use instead of raw BOLD.
source : a :class:`DataSource` (overrides ``derivatives``, ``fmriprep`` and their options and ``delay``;
    e.g. another loader kind).
fmriprep : fMRIPrep output folder to read instead of raw BOLD (events still come from ``bids_root``).
space : its output space (default ``T1w``; e.g. ``MNI152NLin2009cAsym:res-2``).
confounds : confound strategy regressed per run (default ``motion,wm_csf,high_pass``; ``none`` for
    detrend + z-score only); see :class:`brain2music.data.ConfoundStrategy`.
mask : voxel mask: a NIfTI file on the BOLD grid, or with fMRIPrep ``brain`` (its brain masks, the
    default) or ``cortex`` (cortical Destrieux voxels of FreeSurfer's aparc.a2009s+aseg).
freesurfer_dir : FreeSurfer subjects folder (default ``<fmriprep>/sourcedata/freesurfer``).
methods : decoder methods of the registry (:func:`brain2music.study.methods.list_methods`).
parcels : parcels of the ``ensemble``: ``"destrieux"`` (each subject's FreeSurfer Destrieux parcels,
    fMRIPrep T1w data), a label image (resampled to the BOLD grid by world coordinates when on another
    grid; default ``BIDS_ROOT/derivatives/parcels.nii.gz`` when present) or a ``.npy`` with one label
    per voxel; ``{subject}`` is substituted. Kept parcels are recorded with their names.
delay : hemodynamic shift (volumes) applied by the data layer; ``delays`` : FIR delays of the encoding model.
alphas, cv : penalty grid and number of run-grouped folds of every ridge.
n_top_parcels : parcels kept by the ensemble (paper: 6).
encsel_threshold, encsel_top : encoding-model CV r threshold / maximum number of voxels for ``encsel``.
reference : reference subject of ``aligned`` (default: the first subject).
n_permutations, fdr_alpha : permutation test and FDR level of the encoding maps.
logo, logo_method : run leave-one-genre-out with this method (any per-subject method; ``encsel`` by
    default). Everything the method chooses is refitted without the held-out genre.
metric_space : ``"paper"``, ``"standardized"``, or ``{encoder: space}``; default: each encoder's
    registered space (``acoustic``: standardized; neural embeddings: paper); for precomputed
    embeddings the ``space`` they name, else the default of the encoder their config records, else
    standardized.
n_bootstrap : bootstrap resamples of the confidence intervals.
random_state : seed of the permutations and bootstraps.
cache_dir : per-clip embedding cache (default: ``$BRAIN2MUSIC_CACHE`` or ``~/.cache/brain2music``).
backend : himalaya backend of every ridge, encoding model and alignment (``numpy``, ``torch``,
    ``torch_cuda``, ``cupy``): float32 on its device, results back as numpy.
scheduler : where the subjects run, one task each (:func:`~brain2music.study.reproduce.study_subject`): ``None``/``"none"`` in this
    process; ``"threads"`` a Dask thread pool; ``"local"`` a Dask ``LocalCluster`` of ``workers``
    processes; ``"tcp://host:8786"`` that Dask cluster (its workers must see the data and ``out``).
    The figures do not depend on it. ``workers`` : threads / local processes (default: all cores).
reuse_kernels : compute each subject's kernel once per window and share it between the fits on those
    samples (``False`` gives every fit its own; same figures, for checking).
encoder_options : constructor options of the encoders that are computed: ``{option: value}`` for every
    encoder that takes it, ``{encoder: {option: value}}`` for one (``--encoder-option [NAME:]KEY=VALUE``),
    e.g. ``{"mert": {"trust_remote_code": True}}``. An option no encoder takes is a ConfigError.
device, dtype : placement of the neural encoders (``auto``/``cpu``/``cuda``/``mps``; ``float16``, ...).
embeddings : read here only to resolve the metric spaces and which embeddings need ``stimuli``; the
    embeddings themselves go to ``reproduce(settings, embeddings=...)``.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from brain2music._checks import check_known_options
from brain2music.errors import ConfigError, DataError, DataFileNotFoundError
from brain2music.evaluate.space import check_space
from brain2music.results.settings import DataSource, StudySettings
from brain2music.study.methods import DEFAULT_METHODS, GroupMethod, get_method, list_methods

__all__ = [
    "STUDY_OPTIONS",
    "check_reproduce",
    "check_sources",
    "data_source",
    "embedding_sources",
    "resolve_study_encoders",
    "study_settings",
]

#: Every option of ``reproduce`` with its default (see :func:`brain2music.study.reproduce.reproduce`
#: for what each means). ``embeddings`` is read for the checks (metric spaces, stimuli needed) only:
#: the embeddings themselves are given to ``reproduce`` per call.
STUDY_OPTIONS: dict[str, Any] = {
    "stimuli": None, "encoders": ("acoustic",), "out": None, "subjects": None, "derivatives": None,
    "source": None, "fmriprep": None, "space": None, "confounds": None, "mask": None, "freesurfer_dir": None,
    "methods": DEFAULT_METHODS, "embeddings": None, "parcels": None, "delay": 3, "delays": (2, 3, 4),
    "alphas": None, "cv": 5, "n_top_parcels": 6, "encsel_threshold": 0.05, "encsel_top": None,
    "reference": None, "n_permutations": 1000, "fdr_alpha": 0.05, "logo": True, "logo_method": "encsel",
    "metric_space": None, "n_bootstrap": 1000, "random_state": 0, "cache_dir": None, "backend": "numpy",
    "scheduler": None, "workers": None, "reuse_kernels": True, "encoder_options": None, "device": None,
    "dtype": None,
}  # fmt: skip


def is_group(name: str) -> bool:
    """Whether the method ``name`` pools subjects (:class:`~brain2music.study.methods.GroupMethod`)."""
    return isinstance(get_method(name), GroupMethod)


def study_settings(bids_root: str | os.PathLike, /, **options) -> StudySettings:
    """Check the options of ``reproduce`` (:data:`STUDY_OPTIONS`) into :class:`StudySettings`.

    Errors name the option; an unknown option is a ConfigError (never silently ignored).
    """
    check_known_options(options, STUDY_OPTIONS, what="reproduce")
    if options.get("out") is None:
        raise ConfigError("reproduce: out (the results folder) is required")
    args = STUDY_OPTIONS | options
    bids_root = Path(bids_root)
    if not bids_root.is_dir():
        raise DataFileNotFoundError(f"BIDS root not found: {bids_root}")
    source = args["source"] or data_source(
        bids_root, derivatives=args["derivatives"], fmriprep=args["fmriprep"], space=args["space"],
        confounds=args["confounds"], mask=args["mask"], freesurfer_dir=args["freesurfer_dir"],
        delay=int(args["delay"]),
    )  # fmt: skip
    encoders = csv_list(args["encoders"], "encoders (e.g. acoustic)")
    subjects, methods, parcels, reference = _who(bids_root, args)
    given = embedding_sources(args["embeddings"])
    check_sources(encoders, given, args["stimuli"])
    spaces = _metric_spaces(encoders, args["metric_space"], given)
    from brain2music.models import DEFAULT_ALPHAS

    alphas = args["alphas"] if args["alphas"] is not None else DEFAULT_ALPHAS
    encoder_options = resolve_study_encoders(
        encoders, args["encoder_options"], args["device"], args["dtype"], precomputed=given
    )
    backend, scheduler, workers = _execution(args["backend"], args["scheduler"], args["workers"])
    return StudySettings(
        source=source, encoders=encoders, subjects=subjects, methods=methods, out=Path(args["out"]),
        stimuli=Path(args["stimuli"]) if args["stimuli"] is not None else None, parcels=parcels,
        delays=[int(d) for d in args["delays"]], alphas=[float(a) for a in alphas], cv=int(args["cv"]),
        n_top_parcels=int(args["n_top_parcels"]), encsel_threshold=args["encsel_threshold"],
        encsel_top=args["encsel_top"], reference=reference, n_permutations=int(args["n_permutations"]),
        fdr_alpha=float(args["fdr_alpha"]), logo=bool(args["logo"]), logo_method=args["logo_method"],
        metric_spaces=spaces, n_bootstrap=int(args["n_bootstrap"]), random_state=int(args["random_state"]),
        cache_dir=str(args["cache_dir"]) if args["cache_dir"] is not None else None,
        backend=backend, reuse_kernels=bool(args["reuse_kernels"]), scheduler=scheduler, workers=workers,
        encoder_options=encoder_options,
    )  # fmt: skip


def data_source(
    bids_root,
    *,
    derivatives=None,
    fmriprep=None,
    space: str | None = None,
    confounds: str | None = None,
    mask=None,
    freesurfer_dir=None,
    delay: int = 3,
) -> DataSource:
    """The :class:`DataSource` the command-line and config options describe (one place for ``reproduce``/``run``).

    ``fmriprep`` selects fMRIPrep derivatives (``space`` default ``T1w``, ``confounds`` default
    ``motion,wm_csf,high_pass``); otherwise ``derivatives`` the authors' arrays, else raw BIDS.
    ``space``, ``confounds`` and ``freesurfer_dir`` without ``fmriprep`` are errors (they would be
    ignored).
    """
    if fmriprep is not None and derivatives is not None:
        raise ConfigError("--fmriprep and --derivatives are two data sources; give one of them")
    if fmriprep is None:
        given = [n for n, v in (("--space", space), ("--confounds", confounds),
                                ("--freesurfer-dir", freesurfer_dir)) if v is not None]  # fmt: skip
        if given:
            raise ConfigError(f"{', '.join(given)} only apply to fMRIPrep derivatives (--fmriprep DIR)")
        if mask in ("brain", "cortex"):
            raise ConfigError(f"--mask {mask} needs fMRIPrep derivatives (--fmriprep DIR); give a mask file")
    if mask is not None and derivatives is not None and fmriprep is None:
        raise ConfigError(
            "--mask does not apply to the authors' arrays (--derivatives): they are masked already"
        )
    options = {} if mask is None else {"mask": str(mask)}
    if fmriprep is not None:
        from brain2music.data.confounds import ConfoundStrategy

        fmriprep = Path(fmriprep)
        if not fmriprep.is_dir():
            raise DataFileNotFoundError(f"fMRIPrep folder not found: {fmriprep} (--fmriprep)")
        strategy = ConfoundStrategy.parse("motion,wm_csf,high_pass" if confounds is None else confounds)
        options |= {"space": space or "T1w", "confounds": str(strategy)}
        if freesurfer_dir is not None:
            options["freesurfer_dir"] = str(freesurfer_dir)
        return DataSource("fmriprep", Path(bids_root), None, int(delay), options, fmriprep)
    kind = "derivatives" if derivatives is not None else "bids"
    return DataSource(kind, Path(bids_root), Path(derivatives) if derivatives else None, int(delay), options)


def _who(bids_root: Path, args: dict) -> tuple[list[str], list[str], str | None, str]:
    """``(subjects, methods, parcels, reference)``: the subjects and the methods this study can run."""
    from brain2music.data import list_subjects, normalize_subject

    methods = csv_list(args["methods"], "methods")
    unknown = [m for m in methods if m not in list_methods()]
    if unknown:
        raise ConfigError(f"unknown method(s) {unknown}; choose from {', '.join(list_methods())}")
    subjects = (
        [normalize_subject(s) for s in args["subjects"]] if args["subjects"] else list_subjects(bids_root)
    )
    if not subjects:
        raise DataError(f"{bids_root}: no sub-* folders found")
    parcels = args["parcels"]
    default_parcels = bids_root / "derivatives" / "parcels.nii.gz"
    parcels = (
        str(parcels) if parcels is not None else (str(default_parcels) if default_parcels.is_file() else None)
    )
    methods = _drop_unavailable(methods, parcels, subjects, default_parcels)
    if args["logo_method"] not in list_methods() or is_group(args["logo_method"]):
        raise ConfigError(f"logo_method must be a per-subject method; got {args['logo_method']!r}")
    reference = normalize_subject(args["reference"]) if args["reference"] else subjects[0]
    if reference not in subjects:
        raise ConfigError(f"reference subject {reference} is not among the subjects {subjects}")
    return subjects, methods, parcels, reference


def check_sources(encoders, given: Mapping, stimuli) -> None:
    """Every embedding is either precomputed (``given``) or computable from the ``stimuli`` folder."""
    missing = [e for e in encoders if e not in given]
    if missing and stimuli is None:
        raise ConfigError(
            f"no stimuli folder given and no precomputed embeddings for {', '.join(missing)}; "
            "pass --stimuli STIMULI_DIR (or --embeddings NAME=FILE.npz)"
        )


def _metric_spaces(encoders, space, given: Mapping) -> dict[str, str]:
    """``{encoder: metric space}``: the option (one name or per encoder), else the embeddings' own."""
    from brain2music.embeddings import encoder_metric_space

    spaces = {
        e: (space.get(e) if isinstance(space, Mapping) else space)
        or (precomputed_space(given[e]) if e in given else encoder_metric_space(e))
        for e in encoders
    }
    for e, sp in spaces.items():
        check_space(sp, what=f"metric space of {e}")
    return spaces


def embedding_sources(embeddings) -> dict[str, Any]:
    """``{name: path, EmbeddingSet or dict}`` from a mapping or from ``["name=path", ...]`` (the CLI form)."""
    if embeddings is None:
        return {}
    if isinstance(embeddings, Mapping):
        return dict(embeddings)
    if isinstance(embeddings, (str, os.PathLike)):
        embeddings = [embeddings]
    out = {}
    for item in embeddings:
        name, sep, path = str(item).partition("=")
        if not sep or not name.strip() or not path.strip():
            raise ConfigError(f"--embeddings expects NAME=FILE.npz (e.g. acoustic=emb.npz); got {item!r}")
        out[name.strip()] = path.strip()
    return out


def csv_list(value, what: str) -> list[str]:
    """A list of distinct names from a list or a comma-separated text (at least one, else ConfigError)."""
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    out = list(dict.fromkeys(value or []))
    if not out:
        raise ConfigError(f"{what} must name at least one entry")
    return out


def precomputed_space(value) -> str:
    """The metric space of precomputed embeddings (path, set or dict): :func:`~brain2music.embeddings.format.default_space`."""
    from brain2music.embeddings import EmbeddingSet
    from brain2music.embeddings.format import default_space, read_config

    if isinstance(value, (str, os.PathLike)):
        if not Path(value).is_file():
            raise DataFileNotFoundError(f"embeddings file not found: {value} (--embeddings)")
        return default_space(read_config(value))
    if isinstance(value, EmbeddingSet):
        return default_space(value.config)
    if not isinstance(value, Mapping):
        return "standardized"  # loading it refuses it, naming what it expected
    return default_space(
        dict(value.get("config") or {}) | ({"space": value["space"]} if value.get("space") else {})
    )


def _execution(backend, scheduler, workers) -> tuple[str, str | None, int | None]:
    """Validate ``backend`` (loadable here), ``scheduler`` and ``workers`` (errors name the option)."""
    from brain2music.embeddings.batch import check_scheduler
    from brain2music.models._backend import get_backend

    # ConfigError for an unknown name, or naming what to install when its library or device is missing.
    get_backend(backend)
    if scheduler == "threads":
        pass
    elif check_scheduler(scheduler) is None:
        scheduler = None
    elif not isinstance(scheduler, str):
        raise ConfigError("scheduler must be 'none', 'threads', 'local' or a Dask address (a string)")
    if workers is not None and (not isinstance(workers, (int, np.integer)) or workers < 1):
        raise ConfigError(f"workers must be a positive integer; got {workers!r}")
    return backend, scheduler, None if workers is None else int(workers)


def resolve_study_encoders(
    encoders, options=None, device=None, dtype=None, *, precomputed=()
) -> dict[str, dict]:
    """``{encoder: kwargs}`` of the encoders a study computes from ``--encoder-option``/``--device``/
    ``--dtype`` (checked against each encoder's constructor before anything is loaded).

    ``precomputed`` names the embeddings given as files (``--embeddings``): they need no registry entry
    and take no options, so an option meant for one of them is a ConfigError.
    """
    from brain2music.embeddings.registry import resolve_encoder_options

    given = set(precomputed)
    options = dict(options or {})
    for name in given & set(options):
        raise ConfigError(
            f"--encoder-option {name}:...: {name!r} is precomputed (--embeddings {name}=FILE), so it computes "
            "nothing and takes no options"
        )
    computed = [e for e in encoders if e not in given]
    if not computed:
        if options:
            raise ConfigError(
                f"--encoder-option {', '.join(options)}: every embedding of this run is precomputed "
                f"({', '.join(encoders)}); no encoder is built to take options"
            )
        return {}
    return resolve_encoder_options(computed, options, device=device, dtype=dtype)


def check_reproduce(encoders, *, embeddings=None, encoder_options=None, device=None, dtype=None) -> list:
    """``reproduce --check``: build every encoder the study would compute (loading its checkpoint), embed
    nothing; returns :class:`~brain2music.checkpoints.CheckResult` per encoder (precomputed ones skipped)."""
    from brain2music.checkpoints import check_encoders

    encoders = csv_list(encoders, "encoders (e.g. acoustic)")
    given = embedding_sources(embeddings)
    return check_encoders(resolve_study_encoders(encoders, encoder_options, device, dtype, precomputed=given))


def _drop_unavailable(methods: list[str], parcels, subjects, default_parcels) -> list[str]:
    """Skip (with a warning) methods whose needs this study cannot meet."""
    keep = []
    for m in methods:
        needs = get_method(m).needs
        if "parcels" in needs and parcels is None:
            warnings.warn(
                f"method {m!r} skipped: no parcel image (looked for {default_parcels}; pass parcels=...)",
                stacklevel=4,
            )
        elif "subjects" in needs and len(subjects) < 2:
            warnings.warn(f"method {m!r} skipped: it pools subjects and needs at least 2", stacklevel=4)
        else:
            keep.append(m)
    return keep
