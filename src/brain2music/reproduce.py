"""``reproduce``: the paper's decoding study end to end, plus the peers' improvements, into a results folder.

For each subject and each embedding the pipeline

1. loads the subject's responses (raw BIDS through :func:`brain2music.data.load_subject`, or the authors'
   preprocessed arrays through :func:`brain2music.data.load_derivatives`) and averages them over the
   embedding windows of that embedding (``SubjectData.windowed``);
2. fits an encoding model (FIR-delayed embedding → every voxel), tests it on the test clips (permutation
   test + Benjamini–Hochberg FDR, noise ceiling from the test repeats) and saves the map;
3. fits every decoder method on the training clips (penalty per embedding dimension by 5-fold CV grouped
   by run), predicts the test clips (responses averaged over the test repeats), and scores them with the
   paper's identification accuracy and Pearson r (window-averaged clip vectors, see
   :mod:`brain2music.evaluate.identification`);
4. adds Chance (shuffled clip labels), the split-half Oracle (:func:`brain2music.evaluate.split_half_oracle`),
   per-genre accuracy and leave-one-genre-out accuracy;

then fits the ``aligned`` decoder across subjects, prints a Table-2-like table and writes the folder
documented in ``docs/results_layout.md``.

Methods: ``ridge`` (all mask voxels), ``ensemble`` (paper: a model per parcel, top 6 averaged), ``encsel``
(voxels selected by the encoding model's CV r on the training clips), ``aligned`` (encsel voxels mapped
into a reference subject's encsel voxels, one decoder on the pooled subjects), ``krr-rbf`` (kernel ridge
with an RBF kernel on the encsel voxels; compare with ``encsel``).
"""

from __future__ import annotations

import functools
import json
import os
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from brain2music import __version__
from brain2music._io import save_npz, write_json, write_text
from brain2music.errors import ConfigError, DataError, DataFileNotFoundError
from brain2music.evaluate import (
    chance_identification,
    identification_accuracy,
    leave_one_genre_out,
    mean_pearson_r,
    per_genre_accuracy,
    response_noise_ceiling,
    similarity_matrix,
    split_half_oracle,
)
from brain2music.models import (
    ALIGNMENT_ALPHAS,
    DEFAULT_ALPHAS,
    EncodingModel,
    EnsembleDecoder,
    FunctionalAlignment,
    RidgeDecoder,
    SubsetDecoder,
    fdr_bh,
    permutation_test,
    save_decoder,
    select_voxels,
)
from brain2music.models._checks import match_clip_ids

__all__ = ["METHODS", "DEFAULT_METHODS", "reproduce", "load_embeddings_file", "format_table"]

#: Every decoder method ``reproduce`` knows.
METHODS = ("ridge", "ensemble", "encsel", "aligned", "krr-rbf")
DEFAULT_METHODS = METHODS

#: Window (s) implied by the number of windows r per 15-s clip (paper Table 1).
_WINDOW_FOR_R = {10: 1.5, 7: 5.0, 4: 10.0, 1: 15.0}


# --------------------------------------------------------------------------------------------- embeddings
def load_embeddings_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read an embeddings ``.npz`` (``clip_ids``, ``embeddings (n_clips, r, dim)``, optional ``config``/``window``).

    Returns ``{"clip_ids", "embeddings", "window", "config", "path"}``.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFileNotFoundError(f"embeddings file not found: {path}")
    with np.load(path, allow_pickle=False) as npz:
        for key in ("clip_ids", "embeddings"):
            if key not in npz.files:
                raise DataError(f"{path}: missing array {key!r}; found {npz.files}")
        clip_ids = [str(c) for c in npz["clip_ids"]]
        emb = np.asarray(npz["embeddings"], dtype=np.float32)
        config: dict = {}
        if "config" in npz.files:
            try:
                config = json.loads(str(npz["config"]))
            except json.JSONDecodeError:
                config = {}
        window = float(npz["window"]) if "window" in npz.files else config.get("window")
    if emb.ndim == 2:
        emb = emb[:, None, :]
    if emb.ndim != 3 or emb.shape[0] != len(clip_ids):
        raise DataError(
            f"{path}: embeddings must be (n_clips, r, dim) with one row per clip id; got {emb.shape} "
            f"for {len(clip_ids)} clip ids"
        )
    if window is None:
        window = _WINDOW_FOR_R.get(emb.shape[1])
        if window is None:
            raise DataError(
                f"{path}: no 'window' in config and r={emb.shape[1]} is not one of {sorted(_WINDOW_FOR_R)}"
            )
    return {
        "clip_ids": clip_ids,
        "embeddings": emb,
        "window": float(window),
        "config": config,
        "path": str(path),
    }


def _compute_embeddings(
    name: str, stimuli: Path, bids_root: Path, subjects: list[str], cache_dir, verbose: bool
) -> dict[str, Any]:
    """Embed the stimuli the subjects heard with the registered encoder ``name`` (cached per clip)."""
    from brain2music.embeddings import embed_folder

    result = embed_folder(
        stimuli, name, bids=bids_root, subjects=subjects, cache_dir=cache_dir, progress=verbose
    )
    return _normalise_embedding_result(name, result)


def _normalise_embedding_result(name: str, result: Any) -> dict[str, Any]:
    if isinstance(result, (str, os.PathLike)):
        return load_embeddings_file(result)
    if isinstance(result, Mapping):
        clip_ids = [str(c) for c in result["clip_ids"]]
        emb = np.asarray(result["embeddings"], dtype=np.float32)
        config = dict(result.get("config") or {})
        window = result.get("window", config.get("window"))
    else:
        clip_ids = [str(c) for c in result.clip_ids]
        emb = np.asarray(result.embeddings, dtype=np.float32)
        config = dict(getattr(result, "config", {}) or {})
        window = getattr(result, "window", config.get("window"))
    if window is None:
        window = _WINDOW_FOR_R.get(emb.shape[1])
    if window is None:
        raise DataError(f"embeddings of {name!r}: unknown window for r={emb.shape[1]}")
    return {"clip_ids": clip_ids, "embeddings": emb, "window": float(window), "config": config, "path": None}


# ------------------------------------------------------------------------------------------- subjects
def _load(bids_root: Path, subject: str, derivatives: Path | None, delay: int):
    from brain2music.data import load_derivatives, load_subject

    if derivatives is not None:
        return load_derivatives(derivatives, subject, events_root=bids_root, delay=delay)
    return load_subject(bids_root, subject, delay=delay)


def _parcel_labels(parcels: str | None, sub) -> np.ndarray | None:
    if parcels is None:
        return None
    path = Path(str(parcels).format(subject=sub.subject))
    if not path.is_file():
        raise DataFileNotFoundError(f"parcel label file not found: {path}")
    if path.suffix == ".npy":
        labels = np.load(path)
        if labels.ndim != 1:
            raise DataError(
                f"{path}: parcel labels .npy must be 1-D (one label per voxel); got {labels.shape}"
            )
        if sub.info.get("source") == "derivatives":
            labels = labels[sub.voxel_indices] if labels.size != sub.n_voxels else labels
        if labels.size != sub.n_voxels:
            raise DataError(f"{path}: {labels.size} labels; {sub.subject} has {sub.n_voxels} voxels")
        return labels.astype(int)
    import nibabel as nib

    if sub.mask is None:
        raise DataError(
            f"{path}: a parcel image needs responses on a voxel grid, but {sub.subject} comes from "
            "derivative arrays; pass a .npy with one label per array column instead"
        )
    img = nib.load(str(path))
    if img.shape[:3] != sub.mask.shape:
        raise DataError(f"{path}: grid {img.shape[:3]}; the BOLD grid of {sub.subject} is {sub.mask.shape}")
    data = np.asarray(img.dataobj).reshape(-1)
    return np.rint(data[sub.voxel_indices]).astype(int)


# ---------------------------------------------------------------------------------------------- main
def _check_methods(methods: Sequence[str]) -> list[str]:
    if isinstance(methods, str):
        methods = [m.strip() for m in methods.split(",") if m.strip()]
    methods = list(dict.fromkeys(methods))
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise ConfigError(f"unknown method(s) {unknown or methods}; choose from {', '.join(METHODS)}")
    return methods


def _score(predicted, target, genres) -> dict[str, Any]:
    sim = similarity_matrix(predicted, target)
    return {
        "id_acc": identification_accuracy(predicted, target),
        "pearson_r": mean_pearson_r(predicted, target),
        "similarity": sim,
        "per_genre": per_genre_accuracy(sim, genres),
    }


def reproduce(
    bids_root: str | os.PathLike,
    *,
    stimuli: str | os.PathLike | None = None,
    encoders: Sequence[str] = ("acoustic",),
    out: str | os.PathLike,
    subjects: Sequence[str] | None = None,
    derivatives: str | os.PathLike | None = None,
    methods: Sequence[str] = DEFAULT_METHODS,
    embeddings: Mapping[str, Any] | None = None,
    parcels: str | os.PathLike | None = None,
    delay: int = 3,
    delays: Sequence[int] = (2, 3, 4),
    alphas: Sequence[float] = tuple(DEFAULT_ALPHAS),
    cv: int = 5,
    n_top_parcels: int = 6,
    encsel_threshold: float | None = 0.05,
    encsel_top: int | None = None,
    reference: str | None = None,
    n_permutations: int = 1000,
    fdr_alpha: float = 0.05,
    logo: bool = True,
    logo_method: str = "encsel",
    standardize: bool = True,
    random_state: int = 0,
    cache_dir: str | os.PathLike | None = None,
    verbose: bool = True,
) -> dict[str, Any]:
    """Run the decoding study and write the results folder ``out``; return the ``results.json`` dict.

    Parameters
    ----------
    bids_root : BIDS root of a ds003720-like dataset (events are always read from here).
    stimuli : GTZAN-layout folder of the stimuli (needed unless every encoder has precomputed ``embeddings``).
    encoders : embedding names (``brain2music.embeddings`` registry), e.g. ``("acoustic", "clap")``.
    out : results folder (created).
    subjects : subset of subjects (default: every ``sub-*`` folder).
    derivatives : folder of the authors' preprocessed arrays (Zenodo) to use instead of raw BOLD.
    methods : decoder methods, any of :data:`METHODS`.
    embeddings : precomputed embeddings per encoder name: a path to an ``.npz`` (``clip_ids``,
        ``embeddings``, ``config``/``window``) or a dict with those keys. Encoders missing here are computed.
    parcels : label image on the BOLD grid for the ``ensemble`` (default ``BIDS_ROOT/derivatives/parcels.nii.gz``
        when present); a ``.npy`` with one label per voxel also works; ``{subject}`` is substituted.
    delay : hemodynamic shift (volumes) applied by the data layer; ``delays`` : FIR delays of the encoding model.
    alphas, cv : penalty grid and number of run-grouped folds of every ridge.
    n_top_parcels : parcels kept by the ensemble (paper: 6).
    encsel_threshold, encsel_top : encoding-model CV r threshold / maximum number of voxels for ``encsel``.
    reference : reference subject of ``aligned`` (default: the first subject).
    n_permutations, fdr_alpha : permutation test and FDR level of the encoding maps.
    logo, logo_method : run leave-one-genre-out with this method (``encsel``, the default, or ``ridge``;
        ``ridge`` refits the all-voxel decoder 10 times, which at full size takes long).
    standardize : z-score every embedding dimension with the training clips' mean and sd before the
        metrics (identification, r, chance, oracle, leave-one-genre-out); decoders and saved
        predictions stay in the encoder's units.
    random_state : seed of the permutations (chance, permutation test).
    cache_dir : per-clip embedding cache (default: ``$BRAIN2MUSIC_CACHE`` or ``~/.cache/brain2music``).
    verbose : progress bars (stderr) and the printed table (stdout).
    """
    from tqdm import tqdm

    from brain2music.data import list_subjects, normalize_subject
    from brain2music.data.preprocess import window_average

    t_start = time.time()
    bids_root = Path(bids_root)
    out = Path(out)
    methods = _check_methods(methods)
    if isinstance(encoders, str):
        encoders = [e.strip() for e in encoders.split(",") if e.strip()]
    encoders = list(dict.fromkeys(encoders))
    if not encoders:
        raise ConfigError("encoders must name at least one embedding (e.g. acoustic)")
    if logo_method not in ("ridge", "encsel"):
        raise ConfigError(f"logo_method must be 'ridge' or 'encsel'; got {logo_method!r}")
    if not bids_root.is_dir():
        raise DataFileNotFoundError(f"BIDS root not found: {bids_root}")
    derivatives = Path(derivatives) if derivatives is not None else None
    subjects = [normalize_subject(s) for s in subjects] if subjects else list_subjects(bids_root)
    if not subjects:
        raise DataError(f"{bids_root}: no sub-* folders found")
    embeddings = _embedding_sources(embeddings)
    missing_enc = [e for e in encoders if e not in embeddings]
    if missing_enc and stimuli is None:
        raise ConfigError(
            f"no stimuli folder given and no precomputed embeddings for {', '.join(missing_enc)}; "
            "pass --stimuli STIMULI_DIR (or --embeddings NAME=FILE.npz)"
        )
    if parcels is None:
        default_parcels = bids_root / "derivatives" / "parcels.nii.gz"
        parcels = str(default_parcels) if default_parcels.is_file() else None
    elif parcels is not None:
        parcels = str(parcels)
    if "ensemble" in methods and parcels is None:
        warnings.warn(
            f"method 'ensemble' skipped: no parcel image (looked for {bids_root / 'derivatives' / 'parcels.nii.gz'}; "
            "pass parcels=...)",
            stacklevel=2,
        )
        methods = [m for m in methods if m != "ensemble"]
    if "aligned" in methods and len(subjects) < 2:
        warnings.warn(
            "method 'aligned' skipped: functional alignment needs at least 2 subjects", stacklevel=2
        )
        methods = [m for m in methods if m != "aligned"]
    alphas = [float(a) for a in alphas]
    reference = normalize_subject(reference) if reference else subjects[0]
    if reference not in subjects:
        raise ConfigError(f"reference subject {reference} is not among the subjects {subjects}")
    config = {
        "bids_root": str(bids_root.resolve()),
        "stimuli": str(Path(stimuli).resolve()) if stimuli is not None else None,
        "derivatives": str(derivatives.resolve()) if derivatives is not None else None,
        "use_derivatives": derivatives is not None,
        "encoders": encoders,
        "subjects": subjects,
        "methods": methods,
        "parcels": parcels,
        "delay": int(delay),
        "delays": [int(d) for d in delays],
        "alphas": alphas,
        "cv": int(cv),
        "n_top_parcels": int(n_top_parcels),
        "encsel_threshold": encsel_threshold,
        "encsel_top": encsel_top,
        "reference": reference,
        "n_permutations": int(n_permutations),
        "fdr_alpha": float(fdr_alpha),
        "logo": bool(logo),
        "logo_method": logo_method,
        "standardize": bool(standardize),
        "random_state": int(random_state),
        "cache_dir": str(cache_dir) if cache_dir is not None else None,
        "evaluation": (
            "window-averaged clip vectors; test responses averaged over repeats; "
            + (
                "embedding dimensions z-scored with training statistics"
                if standardize
                else "raw embedding units"
            )
        ),
        "out": str(out.resolve()),
    }
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "version": __version__,
        "config": config,
        "subjects": subjects,
        "encoders": {},
        "methods": methods,
        "rows": [],
        "chance": [],
        "oracle": [],
        "summary": [],
        "per_genre": [],
        "leave_one_genre_out": [],
        "ensemble_parcels": [],
        "encoding": [],
    }
    emb_sets: dict[str, dict] = {}
    keep_for_alignment: dict[tuple[str, str], dict] = {}
    progress = tqdm(
        total=len(subjects) * len(encoders), desc="reproduce", disable=not verbose, file=sys.stderr
    )
    for subject in subjects:
        sub = _load(bids_root, subject, derivatives, delay)
        labels = _parcel_labels(parcels, sub) if "ensemble" in methods else None
        train_clips, test_clips = sub.train_clips, sub.test_clips
        for enc in encoders:
            if enc not in emb_sets:
                emb_sets[enc] = _get_embeddings(
                    enc, embeddings, stimuli, bids_root, subjects, cache_dir, verbose
                )
                _write_embeddings(out, enc, emb_sets[enc], results)
            es = emb_sets[enc]
            y_train = es["embeddings"][
                match_clip_ids(train_clips.clip_id, es["clip_ids"], what=f"{enc} embeddings")
            ]
            y_test = es["embeddings"][
                match_clip_ids(test_clips.clip_id, es["clip_ids"], what=f"{enc} embeddings")
            ]
            window, r = es["window"], es["embeddings"].shape[1]
            x_train, x_test = sub.windowed(window)
            if x_train.shape[1] != r:
                raise DataError(
                    f"{enc} embeddings have r={r} windows per clip but a {window}-s window over the "
                    f"{sub.train.shape[1]} TRs of {subject} gives {x_train.shape[1]}"
                )
            test_reps = window_average(sub.test, window, tr=sub.tr)
            groups = np.repeat(sub.train_runs, r)
            ctx = {
                "subject": subject, "encoder": enc, "window": window, "r": r,
                "train_genres": train_clips.genre.to_numpy(), "test_genres": test_clips.genre.to_numpy(),
                "test_ids": test_clips.clip_id.to_numpy(), "train_ids": train_clips.clip_id.to_numpy(),
                "scale": _embedding_scale(y_train) if standardize else None,
            }  # fmt: skip
            z = functools.partial(_standardize, ctx["scale"])

            # Encoding model: maps + the voxel selection for encsel / aligned / krr-rbf.
            enc_model = EncodingModel(
                window, delays=delays, base_delay=sub.delay, tr=sub.tr, alphas=alphas, cv=cv
            )
            enc_model.fit(y_train, sub.train, sub.train_runs)
            selected = select_voxels(enc_model.cv_r_, n_top=encsel_top, threshold=encsel_threshold)
            results["encoding"].append(
                _encoding_maps(
                    out, sub, enc, enc_model, y_test, selected, n_permutations, fdr_alpha, random_state
                )
            )

            def make(method, _sel=selected, _labels=labels, _nvox=sub.n_voxels):
                if method == "ridge":
                    return RidgeDecoder(alphas=alphas, cv=cv)
                if method == "ensemble":
                    return EnsembleDecoder(_labels, n_top=n_top_parcels, alphas=alphas, cv=cv)
                if method == "encsel":
                    return SubsetDecoder(_sel, RidgeDecoder(alphas=alphas, cv=cv), n_features=_nvox)
                if method == "krr-rbf":
                    return SubsetDecoder(
                        _sel, RidgeDecoder(alphas=alphas, cv=cv, kernel="rbf"), n_features=_nvox
                    )
                raise AssertionError(method)  # pragma: no cover

            fitted = {}
            for method in methods:
                if method == "aligned":
                    continue
                t0 = time.time()
                dec = make(method).fit(_flat(x_train), _flat(y_train), groups)
                fit_s = time.time() - t0
                fitted[method] = dec
                _evaluate_method(out, results, ctx, method, dec, x_train, y_train, x_test, y_test, fit_s)
                if method == "ensemble":
                    results["ensemble_parcels"].append(
                        {"subject": subject, "encoder": enc, "parcels": dec.selected_.tolist(),
                         "cv_scores": dec.selected_scores_.tolist(),
                         "all_parcels": dec.parcel_ids_.tolist(), "all_cv_scores": dec.parcel_scores_.tolist()}
                    )  # fmt: skip
            # Chance and Oracle use the paper's decoder (ridge on all voxels), whatever the methods asked for.
            first_decoder = fitted.get("ridge") or make("ridge").fit(_flat(x_train), _flat(y_train), groups)
            pred_test = first_decoder.predict(_flat(x_test)).reshape(y_test.shape)
            ch_acc, ch_r = chance_identification(z(pred_test), z(y_test), random_state=random_state)
            results["chance"].append(
                {"subject": subject, "encoder": enc, "id_acc": ch_acc, "pearson_r": ch_r}
            )
            oracle_predict = functools.partial(_decode_windows, first_decoder, ctx["scale"])
            or_acc, or_r = split_half_oracle(oracle_predict, test_reps)
            results["oracle"].append(
                {"subject": subject, "encoder": enc, "id_acc": or_acc, "pearson_r": or_r}
            )
            if logo:
                cols = selected if logo_method == "encsel" else slice(None)
                logo_acc = leave_one_genre_out(
                    lambda: RidgeDecoder(alphas=alphas, cv=cv),
                    x_train[..., cols], z(y_train), ctx["train_genres"], sub.train_runs,
                    x_test[..., cols], z(y_test), ctx["test_genres"],
                )  # fmt: skip
                for g, acc in logo_acc.items():
                    results["leave_one_genre_out"].append(
                        {"subject": subject, "encoder": enc, "genre": g, "id_acc": acc, "method": logo_method}
                    )
            if "aligned" in methods:
                keep_for_alignment[(subject, enc)] = {
                    "selected": selected, "n_voxels": sub.n_voxels,
                    "x_train": x_train[..., selected].copy(), "x_test": x_test[..., selected].copy(),
                    "y_train": y_train, "y_test": y_test, "train_runs": sub.train_runs, "ctx": ctx,
                }  # fmt: skip
            progress.update(1)
        del sub
    progress.close()

    if "aligned" in methods:
        for enc in tqdm(encoders, desc="aligned", disable=not verbose, file=sys.stderr):
            _fit_aligned(out, results, keep_for_alignment, subjects, enc, reference, alphas, cv)

    results["summary"] = _summarise(results)
    table = format_table(results)
    write_text(out / "table2.csv", table_csv(results))
    results["config"]["elapsed_s"] = round(time.time() - t_start, 1)
    write_json(out / "results.json", results)
    if verbose:
        print(table)
    return results


def _embedding_sources(embeddings) -> dict[str, Any]:
    """``{name: path or dict}`` from a mapping or from ``["name=path", ...]`` (the CLI form)."""
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


def _flat(a: np.ndarray) -> np.ndarray:
    """``(n_clips, r, n)`` → ``(n_clips * r, n)`` samples."""
    return a.reshape(-1, a.shape[-1])


def _decode_windows(decoder, scale, responses: np.ndarray) -> np.ndarray:
    """Decode window responses ``(n_clips, r, n_voxels)`` → standardised ``(n_clips, r, dim)``."""
    pred = decoder.predict(_flat(responses)).reshape(responses.shape[0], responses.shape[1], -1)
    return _standardize(scale, pred)


def _embedding_scale(y_train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and sd of every embedding dimension over the training window samples."""
    flat = _flat(np.asarray(y_train, dtype=np.float64))
    sd = flat.std(axis=0)
    return flat.mean(axis=0), np.where(sd > 0, sd, 1.0)


def _standardize(scale, a: np.ndarray) -> np.ndarray:
    """z-score embedding dimensions with the training statistics (identity when ``scale`` is None).

    Embeddings in fixed units (the ``acoustic`` descriptors: dB, kHz, ...) have dimensions whose means
    differ by orders of magnitude; a correlation across dimensions would then compare every clip with the
    same mean profile. The metrics therefore see every dimension in training-sd units; ridge is equivariant
    to this per-dimension affine map, so the decoders and saved predictions stay in the encoder's units.
    """
    if scale is None:
        return a
    return (np.asarray(a, dtype=np.float64) - scale[0]) / scale[1]


def _get_embeddings(enc, embeddings, stimuli, bids_root, subjects, cache_dir, verbose) -> dict:
    if enc in embeddings:
        value = embeddings[enc]
        if isinstance(value, (str, os.PathLike)):
            return load_embeddings_file(value)
        return _normalise_embedding_result(enc, value)
    return _compute_embeddings(enc, Path(stimuli), bids_root, subjects, cache_dir, verbose)


def _write_embeddings(out: Path, enc: str, es: dict, results: dict) -> None:
    rel = f"embeddings/{enc}.npz"
    cfg = dict(es["config"])
    cfg.setdefault("window", es["window"])
    cfg.setdefault("encoder", enc)
    if es.get("path"):
        cfg.setdefault("source", es["path"])
    save_npz(
        out / rel,
        clip_ids=np.asarray(es["clip_ids"]),
        embeddings=es["embeddings"].astype(np.float32),
        config=json.dumps(cfg, default=str),
        version=__version__,
    )
    n, r, dim = es["embeddings"].shape
    results["encoders"][enc] = {"window": es["window"], "r": int(r), "dim": int(dim), "embeddings": rel}


def _evaluate_method(
    out, results, ctx, method, dec, x_train, y_train, x_test, y_test, fit_s, save_as=None
) -> None:
    subject, enc = ctx["subject"], ctx["encoder"]
    flat = x_test.reshape(-1, x_test.shape[-1])
    pred_test = dec.predict(flat).reshape(y_test.shape)
    pred_train = dec.predict(x_train.reshape(-1, x_train.shape[-1])).reshape(y_train.shape)
    z = functools.partial(_standardize, ctx["scale"])
    test = _score(z(pred_test), z(y_test), ctx["test_genres"])
    train_acc = identification_accuracy(z(pred_train), z(y_train))
    train_r = mean_pearson_r(z(pred_train), z(y_train))
    n_vox = _n_inputs(dec)
    for split, acc, rr in (("test", test["id_acc"], test["pearson_r"]), ("train", train_acc, train_r)):
        results["rows"].append(
            {"subject": subject, "encoder": enc, "method": method, "split": split, "id_acc": acc,
             "pearson_r": rr, "n_voxels": n_vox, "fit_seconds": round(fit_s, 3)}
        )  # fmt: skip
    for g, acc in test["per_genre"].items():
        results["per_genre"].append(
            {"subject": subject, "encoder": enc, "method": method, "genre": g, "id_acc": acc}
        )
    save_npz(
        out / "predictions" / enc / method / f"{subject}.npz",
        clip_ids=np.asarray(ctx["test_ids"]).astype(str),
        genres=np.asarray(ctx["test_genres"]).astype(str),
        predicted=pred_test.astype(np.float32),
        target=np.asarray(y_test, dtype=np.float32),
        similarity=test["similarity"].astype(np.float32),
    )
    save_decoder(
        dec if save_as is None else save_as,
        out / "decoders" / enc / method / f"{subject}.joblib",
        config={"subject": subject, "encoder": enc, "method": method, "window": ctx["window"], "r": ctx["r"],
                "input": "responses averaged over each embedding window, (n_samples, n_voxels) of the subject"},
    )  # fmt: skip


def _n_inputs(dec) -> int:
    if isinstance(dec, SubsetDecoder):
        return int(np.size(dec.voxels))
    if isinstance(dec, EnsembleDecoder):
        return int(sum(v.size for v in dec.voxels_))
    return int(getattr(dec, "n_features_in_", 0))


def _encoding_maps(out, sub, enc, model, y_test, selected, n_permutations, fdr_alpha, random_state) -> dict:
    predicted = model.predict(y_test, sub.test_mean.shape[1])
    test_r, p = permutation_test(
        predicted, sub.test_mean, n_permutations=n_permutations, random_state=random_state
    )
    q = fdr_bh(p)
    significant = q < fdr_alpha
    ceiling = response_noise_ceiling(sub.test) if sub.test.shape[1] >= 2 else np.full(sub.n_voxels, np.nan)
    base = out / "encoding" / enc
    npz_rel = f"encoding/{enc}/{sub.subject}_encoding.npz"
    save_npz(
        out / npz_rel,
        test_r=test_r.astype(np.float32), p_permutation=p.astype(np.float32), q_fdr=q.astype(np.float32),
        significant=significant, noise_ceiling=ceiling.astype(np.float32), cv_r=model.cv_r_.astype(np.float32),
        selected=selected.astype(np.int64), voxel_indices=np.asarray(sub.voxel_indices),
    )  # fmt: skip
    map_rel = None
    if sub.mask is not None and sub.affine is not None:
        import nibabel as nib

        from brain2music._io import atomic_path

        map_rel = f"encoding/{enc}/{sub.subject}_test_r.nii.gz"
        base.mkdir(parents=True, exist_ok=True)
        with atomic_path(out / map_rel) as tmp:
            nib.save(sub.to_image(test_r), str(tmp))
    finite = np.isfinite(ceiling) & (ceiling > 0)
    return {
        "subject": sub.subject,
        "encoder": enc,
        "map": map_rel,
        "npz": npz_rel,
        "n_voxels": int(sub.n_voxels),
        "n_significant": int(significant.sum()),
        "fdr_alpha": float(fdr_alpha),
        "n_permutations": int(n_permutations),
        "mean_test_r": float(np.mean(test_r)),
        "max_test_r": float(np.max(test_r)),
        "mean_noise_ceiling": float(np.nanmean(ceiling)) if np.isfinite(ceiling).any() else None,
        "mean_test_r_over_ceiling_significant": (
            float(np.mean(test_r[significant & finite] / ceiling[significant & finite]))
            if (significant & finite).any()
            else None
        ),  # fmt: skip
        "n_selected": int(selected.size),
        "mean_cv_r": float(np.mean(model.cv_r_)),
    }


def _fit_aligned(out, results, kept, subjects, enc, reference, alphas, cv) -> None:
    ref = kept[(reference, enc)]
    ref_ids = list(ref["ctx"]["train_ids"])
    ref_run = dict(zip(ref_ids, ref["train_runs"]))
    r = ref["ctx"]["r"]
    parts_x, parts_y, parts_g, maps = [], [], [], {}
    for s in subjects:
        k = kept[(s, enc)]
        ids = list(k["ctx"]["train_ids"])
        shared = [c for c in ref_ids if c in set(ids)]
        if len(shared) < cv:
            raise DataError(f"{s} shares only {len(shared)} training clips with the reference {reference}")
        si = match_clip_ids(shared, ids, what=f"{s} training clips", source="reference training clips")
        ri = match_clip_ids(shared, ref_ids, what="reference training clips", source="shared clips")
        g = np.repeat([ref_run[c] for c in shared], r)
        if s == reference:
            maps[s] = None
            xs = k["x_train"][si]
        else:
            src = k["x_train"][si].reshape(-1, k["x_train"].shape[-1])
            dst = ref["x_train"][ri].reshape(-1, ref["x_train"].shape[-1])
            maps[s] = FunctionalAlignment(alphas=ALIGNMENT_ALPHAS, cv=cv).fit(src, dst, g)
            xs = maps[s].transform(src).reshape(len(shared), r, -1)
        parts_x.append(xs.reshape(-1, xs.shape[-1]))
        parts_y.append(k["y_train"][si].reshape(-1, k["y_train"].shape[-1]))
        parts_g.append(g)
    t0 = time.time()
    pooled = RidgeDecoder(alphas=alphas, cv=cv).fit(
        np.concatenate(parts_x), np.concatenate(parts_y), np.concatenate(parts_g)
    )
    fit_s = time.time() - t0
    for s in subjects:
        k = kept[(s, enc)]
        # Only the selected voxels were kept in memory, so evaluate on those; the saved decoder takes the
        # subject's full voxel vector like every other decoder.
        dec = SubsetDecoder(np.arange(k["selected"].size), pooled, alignment=maps[s])
        full = SubsetDecoder(k["selected"], pooled, alignment=maps[s], n_features=k["n_voxels"])
        _evaluate_method(
            out, results, k["ctx"], "aligned", dec, k["x_train"], k["y_train"], k["x_test"], k["y_test"], fit_s,
            save_as=full,
        )  # fmt: skip


def _summarise(results) -> list[dict]:
    import pandas as pd

    rows = pd.DataFrame(results["rows"])
    summary = []
    if rows.empty:
        return summary
    for (enc, method, split), grp in rows.groupby(["encoder", "method", "split"], sort=False):
        summary.append(
            {"encoder": enc, "method": method, "split": split,
             "id_acc_mean": float(grp.id_acc.mean()), "id_acc_sd": float(grp.id_acc.std(ddof=0)),
             "r_mean": float(grp.pearson_r.mean()), "r_sd": float(grp.pearson_r.std(ddof=0)),
             "n_subjects": int(grp.subject.nunique())}
        )  # fmt: skip
    return summary


def _cell(values) -> str:
    values = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    if values.size == 0:
        return "n/a"
    return f"{values.mean():.3f} ± {values.std():.3f}"


def _table_rows(results, key: str = "id_acc", split: str = "test") -> tuple[list[str], list[list[str]]]:
    methods = results["methods"]
    encs = list(results["encoders"])
    header = ["embedding"] + methods
    lines = []
    rows = [r for r in results["rows"] if r["split"] == split]
    for enc in encs:
        cells = [_cell([r[key] for r in rows if r["encoder"] == enc and r["method"] == m]) for m in methods]
        lines.append([enc] + cells)
    for name in ("chance", "oracle"):
        for enc in encs:
            label = name.capitalize() if len(encs) == 1 else f"{name.capitalize()} ({enc})"
            cell = _cell([r[key] for r in results[name] if r["encoder"] == enc])
            lines.append([label] + [cell] * len(methods))
    return header, lines


def table_csv(results) -> str:
    """Table 2 as CSV: rows = embeddings (+ Chance, Oracle), columns = methods, test id acc "mean ± sd"."""
    import csv
    import io

    header, lines = _table_rows(results)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(lines)
    return buf.getvalue()


def format_table(results) -> str:
    """Plain-text Table 2 (test identification accuracy and Pearson r, mean ± sd over subjects)."""
    out = []
    n = len(results["subjects"])
    for key, title in (("id_acc", "identification accuracy"), ("pearson_r", "Pearson r")):
        header, lines = _table_rows(results, key)
        widths = [max(len(str(row[i])) for row in [header] + lines) for i in range(len(header))]
        out.append(f"Test {title} (mean ± sd over {n} subject{'s' if n != 1 else ''})")
        out.append("  ".join(h.ljust(w) for h, w in zip(header, widths)))
        out.append("  ".join("-" * w for w in widths))
        out.extend("  ".join(str(c).ljust(w) for c, w in zip(row, widths)) for row in lines)
        out.append("")
    return "\n".join(out)
