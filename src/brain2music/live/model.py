"""Everything a live decoder needs, gathered from a fitted decoder file and its results folder.

A decoder file (``results/decoders/<encoder>/<method>/<subject>.joblib``) holds the fitted estimator and
``config`` = subject, encoder, method, window, r. The rest comes from the results folder it lies in, read
through :class:`brain2music.results.ResultsFolder`:

- the voxel grid (:meth:`~brain2music.results.ResultsFolder.grid`): ``voxel_indices`` of
  ``encoding/<encoder>/<subject>_encoding.npz`` (flat C-order indices of the decoder's input columns into
  the BOLD grid) on the shape and affine of the header of ``encoding/<encoder>/<subject>_test_r.nii.gz``;
- the hemodynamic delay (``config.source.delay``, volumes) and the BIDS root (``config.source.bids_root``), whose
  training runs give the TR and the training statistics of the z-score prior
  (:func:`brain2music.live.preprocess.training_statistics`);
- the embedding scale and the genre prototypes: ``embeddings/<encoder>.npz``, training clips only (the
  clips of the BIDS design's training split; without a BIDS root, every clip not among the subject's
  test predictions, :meth:`~brain2music.results.ResultsFolder.test_clip_ids`);
- the test clips and their true embeddings, for the rank of the clip playing
  (:mod:`brain2music.live.ranking`): the decoder's test predictions
  ``predictions/<encoder>/<method>/<subject>.npz`` (``target`` and the metric ``space``), when present.

Every mismatch that can be known before the first volume (decoder vs voxel count, a missing grid) raises
:class:`~brain2music.errors.DataError` naming the file.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from brain2music.errors import ConfigError, DataError
from brain2music.live.preprocess import training_statistics
from brain2music.live.ranking import TestClips, load_test_clips
from brain2music.results.grid import VoxelGrid
from brain2music.results.settings import StudySettings

__all__ = ["LiveModel", "bold_tr", "load_live_model"]


@dataclass
class LiveModel:
    """A decoder ready for live use. Arrays: ``prior_cv (n_voxels,)``, ``embedding_mean/sd (dim,)``,
    ``genre_prototypes (n_genres, dim)`` (standardised, centred and unit-norm rows)."""

    decoder: object
    decoder_path: Path
    results_dir: Path
    subject: str
    encoder: str
    method: str
    window: float
    r: int
    delay: int
    tr: float
    grid: VoxelGrid
    grid_source: str
    prior_cv: np.ndarray | None
    stats_source: str | None
    embedding_mean: np.ndarray
    embedding_sd: np.ndarray
    genres: list[str]
    genre_prototypes: np.ndarray
    bids_root: Path | None = None
    info: dict = field(default_factory=dict)
    #: the results folder's test clips (``None``: no test predictions, so no ``truth_rank``)
    test_clips: TestClips | None = None

    @property
    def n_voxels(self) -> int:
        """Number of voxels the decoder reads (the voxels of its grid)."""
        return self.grid.n_voxels

    @property
    def dim(self) -> int:
        """Embedding dimension of the decoder's output (length of ``embedding_mean``)."""
        return int(self.embedding_mean.shape[0])

    def describe(self) -> dict:
        """A JSON-ready summary (the ``start`` record of the live output)."""
        return {
            "decoder": str(self.decoder_path),
            "results": str(self.results_dir),
            "subject": self.subject,
            "encoder": self.encoder,
            "method": self.method,
            "window_s": self.window,
            "r": self.r,
            "delay_volumes": self.delay,
            "tr_s": self.tr,
            "n_voxels": self.n_voxels,
            "grid": list(self.grid.shape),
            "grid_source": self.grid_source,
            "training_statistics": self.stats_source,
            "genres": list(self.genres),
            "dim": self.dim,
            "test_clips": None if self.test_clips is None else len(self.test_clips),
            "test_clips_source": None if self.test_clips is None else self.test_clips.source,
        }


def bold_tr(path: str | os.PathLike) -> float | None:
    """TR (s) of a BOLD image: ``RepetitionTime`` of its JSON sidecar, else the NIfTI header's 4th zoom."""
    import nibabel as nib

    path = Path(path)
    stem = path.name
    for suf in (".nii.gz", ".nii"):
        if stem.endswith(suf):
            stem = stem[: -len(suf)]
    sidecar = path.with_name(stem + ".json")
    if sidecar.is_file():
        try:
            tr = json.loads(sidecar.read_text(encoding="utf-8")).get("RepetitionTime")
            if tr:
                return float(tr)
        except (json.JSONDecodeError, TypeError, ValueError):
            pass
    try:
        hdr = nib.load(str(path)).header
    except Exception as exc:
        raise DataError(f"{path}: cannot read as a NIfTI image ({exc})") from exc
    zooms = hdr.get_zooms()
    if len(zooms) > 3 and zooms[3] > 0:
        return float(zooms[3]) / (1000.0 if hdr.get_xyzt_units()[1] == "msec" else 1.0)
    return None


def _results_dir(decoder_path: Path, results) -> Path:
    if results is not None:
        return Path(results)
    parents = decoder_path.resolve().parents
    if len(parents) >= 4 and parents[2].name == "decoders":
        return parents[3]
    raise ConfigError(
        f"{decoder_path}: not inside a results folder (expected results/decoders/<encoder>/<method>/"
        "<subject>.joblib); pass the results folder (--results)"
    )


def _expected_inputs(decoder) -> int | None:
    for attr in ("n_features", "n_features_in_"):
        value = getattr(decoder, attr, None)
        if isinstance(value, (int, np.integer)) and value > 0:
            return int(value)
    return None


def _check_decoder_inputs(decoder, n_voxels: int, decoder_path: Path, npz: Path) -> None:
    expected = _expected_inputs(decoder)
    if expected is not None and expected != n_voxels:
        raise DataError(
            f"{decoder_path}: the decoder expects {expected} voxels but the subject's voxel mask "
            f"({npz}) has {n_voxels}; the decoder and the results folder do not belong together"
        )
    try:
        out = np.asarray(decoder.predict(np.zeros((1, n_voxels), dtype=np.float32)))
    except Exception as exc:
        raise DataError(
            f"{decoder_path}: the decoder cannot take one volume of the {n_voxels} mask voxels of {npz} ({exc})"
        ) from exc
    if out.ndim != 2 or out.shape[0] != 1:
        raise DataError(f"{decoder_path}: predict returned shape {out.shape} for one sample")


def _training_clips(bids_root: Path | None, subject: str, folder, encoder: str):
    """``(train clip ids or None, test clip ids)`` and a genre per clip id, from the design or predictions."""
    if bids_root is not None and bids_root.is_dir():
        from brain2music.data import subject_design
        from brain2music.data.events import clip_table

        _, _, design = subject_design(bids_root, subject)
        clips = clip_table(design)
        train = clips.loc[clips.split == "train"]
        return set(train.clip_id), dict(zip(clips.clip_id, clips.genre))
    return set(folder.test_clip_ids(encoder, subject)), None


def _embedding_space(folder, results, encoder: str, subject: str, bids_root: Path | None):
    results_dir = folder.root
    info = results.encoders.get(encoder)
    if not info:
        raise DataError(f"{results_dir / 'results.json'}: no embeddings recorded for encoder {encoder!r}")
    path = results_dir / info.embeddings
    stored = folder.read_embeddings(results, encoder)
    ids = np.asarray(stored.clip_ids).astype(str)
    emb = np.asarray(stored.embeddings, dtype=np.float64)
    chosen, genre_of = _training_clips(bids_root, subject, folder, encoder)
    if genre_of is not None:
        keep = np.array([c in chosen for c in ids])
    else:  # ``chosen`` holds the test clips: keep the others
        keep = np.array([c not in chosen for c in ids])
        genre_of = {c: c.split(".")[0] for c in ids}
    if keep.sum() < 2:
        raise DataError(f"{path}: fewer than 2 training clips among {len(ids)} embedded clips")
    flat = emb[keep].reshape(-1, emb.shape[-1])
    mean, sd = flat.mean(axis=0), flat.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    clip_vec = (emb[keep].mean(axis=1) - mean) / sd
    genres_arr = np.array([genre_of.get(c, "") for c in ids[keep]])
    genres = sorted(g for g in set(genres_arr) if g)
    protos = (
        np.stack([clip_vec[genres_arr == g].mean(axis=0) for g in genres])
        if genres
        else np.zeros((0, emb.shape[-1]))
    )
    protos = protos - protos.mean(axis=1, keepdims=True)
    protos /= np.maximum(np.linalg.norm(protos, axis=1, keepdims=True), 1e-12)
    return mean, sd, genres, protos


def _training_runs(bids_root: Path | None, subject: str):
    if bids_root is None or not bids_root.is_dir():
        return [], None
    from brain2music.data import find_runs
    from brain2music.data.bids import run_info

    runs = [r for r in find_runs(bids_root, subject) if r.split == "train"]
    tr = run_info(runs[0], bids_root).tr if runs else None
    return [r.bold for r in runs], tr


def _decoder_record(decoder_path: Path) -> tuple[dict, dict]:
    """The decoder file's record and its config, which must name what the live model is built from."""
    from brain2music.models import load_decoder_record

    record = load_decoder_record(decoder_path)
    cfg = record.get("config", {})
    missing = [k for k in ("subject", "encoder", "method", "window", "r") if k not in cfg]
    if missing:
        raise DataError(f"{decoder_path}: the decoder's config lacks {missing} (written by an old version?)")
    return record, cfg


def _bids_root(results_dir: Path, settings: StudySettings) -> Path | None:
    """The BIDS root the results were computed on; decoders fitted on derivative arrays are refused."""
    if settings.source.kind == "derivatives":
        raise DataError(
            f"{results_dir}: the decoders were fitted on derivative arrays ({settings.source.derivatives}), "
            "whose columns have no voxel grid; live decoding needs decoders fitted on BIDS images"
        )
    return settings.source.bids_root


def _live_tr(tr: float | None, train_tr: float | None, bids_root: Path | None) -> float:
    """The TR of the live volumes: ``tr`` if given, else the training runs'; the two must agree."""
    if tr is None:
        tr = train_tr
    if tr is None:
        raise ConfigError(f"the TR is unknown (no training runs under {bids_root}); pass tr= (--tr)")
    if train_tr is not None and abs(train_tr - tr) > 1e-3:
        raise DataError(f"TR {tr} s differs from the decoder's training runs' TR {train_tr} s ({bids_root})")
    return tr


def _training_prior(bolds: list, grid: VoxelGrid, *, tr: float, subject: str, bids_root: Path | None,
                    training_stats: bool, detrend_window: float, cache_dir, progress: bool):  # fmt: skip
    """``(prior_cv (n_voxels,) or None, its source)`` from the training runs; warns when there are none."""
    if training_stats and bolds:
        stats = training_statistics(
            bolds, grid.voxel_indices, grid.shape, tr=tr, detrend_window=detrend_window, cache_dir=cache_dir,
            progress=progress,
        )  # fmt: skip
        return stats["prior_cv"], f"{stats['n_runs']} training runs ({stats['source']})"
    if training_stats:
        warnings.warn(
            f"no training runs found for {subject} (BIDS root {bids_root}); the live z-score has no prior",
            stacklevel=3,
        )
    return None, None


def load_live_model(
    decoder: str | os.PathLike,
    *,
    results: str | os.PathLike | None = None,
    tr: float | None = None,
    detrend_window: float = 240.0,
    training_stats: bool = True,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = False,
) -> LiveModel:
    """Load a decoder file and what live decoding needs from its results folder (module docstring).

    Parameters
    ----------
    decoder : path of ``decoders/<encoder>/<method>/<subject>.joblib``
    results : the results folder (default: the folder the decoder lies in)
    tr : repetition time in seconds (default: the training runs' TR)
    detrend_window : seconds of the causal drift window (default 240, as in training)
    training_stats : compute the z-score prior from the training runs (needs the BIDS root)
    cache_dir : where the training statistics are cached
    progress : a progress bar while the training statistics are computed (once per subject)

    Raises
    ------
    ConfigError
        The decoder lies outside a results folder and ``results`` is not given, or the TR is unknown.
    DataError
        The decoder's config lacks subject/encoder/method/window/r; the decoders were fitted on derivative
        arrays (no voxel grid); the decoder does not take the grid's voxels; ``tr`` differs from the
        training runs'; the results folder has no embeddings of the encoder or fewer than 2 training clips.
    """
    from brain2music.results import ResultsFolder

    decoder_path = Path(decoder)
    record, cfg = _decoder_record(decoder_path)
    results_dir = _results_dir(decoder_path, results)
    folder = ResultsFolder(results_dir)
    res = folder.read()
    subject, encoder = cfg["subject"], cfg["encoder"]
    entry = folder.encoding_entry(subject, encoder, res)
    bids_root = _bids_root(results_dir, res.config)
    grid = folder.grid(subject, encoder, res)
    _check_decoder_inputs(record["decoder"], grid.n_voxels, decoder_path, results_dir / entry.npz)
    bolds, train_tr = _training_runs(bids_root, subject)
    tr = _live_tr(tr, train_tr, bids_root)
    prior_cv, stats_source = _training_prior(
        bolds, grid, tr=tr, subject=subject, bids_root=bids_root, training_stats=training_stats,
        detrend_window=detrend_window, cache_dir=cache_dir, progress=progress,
    )  # fmt: skip
    mean, sd, genres, protos = _embedding_space(folder, res, encoder, subject, bids_root)
    return LiveModel(
        decoder=record["decoder"],
        decoder_path=decoder_path,
        results_dir=results_dir,
        subject=subject,
        encoder=encoder,
        method=cfg["method"],
        window=float(cfg["window"]),
        r=int(cfg["r"]),
        delay=int(res.config.source.delay),
        tr=float(tr),
        grid=grid,
        grid_source=str(folder.grid_source(subject, encoder, res)),
        prior_cv=prior_cv,
        stats_source=stats_source,
        embedding_mean=mean,
        embedding_sd=sd,
        genres=genres,
        genre_prototypes=protos,
        bids_root=bids_root,
        info={"detrend_window": detrend_window, "decoder_version": record.get("version")},
        test_clips=load_test_clips(folder, encoder, cfg["method"], subject),
    )
