"""The ground truth of a simulated study: written by :func:`~brain2music.simulate.simulate_study` into
``OUT/truth/`` (with the completion marker ``OUT/simulation.json``), read back by :func:`load_truth`."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from brain2music._io import write_json, write_text
from brain2music.errors import ConfigError, DataFileNotFoundError

__all__ = ["COMPLETE_MARKER", "StudyTruth", "load_truth", "write_truth"]

COMPLETE_MARKER = "simulation.json"


def write_truth(
    tmp: Path, config: dict, atlas, features, summaries: dict, motion: dict, *, tr: float, sr: int
) -> None:
    """What the simulator knows (``truth/truth.json``, ``truth/README.md``), then the completion marker.

    ``atlas`` holds the auditory/core/belt parcel ids, ``features`` the feature names and which are slow.
    """
    from brain2music import __version__

    write_json(
        tmp / "truth" / "truth.json",
        {
            "version": __version__,
            "config": config,
            "tr": tr,
            "sr": sr,
            "auditory_parcels": atlas.auditory,
            "core_parcels": atlas.core,
            "belt_parcels": atlas.belt,
            "feature_names": features.names,
            "slow_features": [n for n, s_ in zip(features.names, features.slow) if s_],
            "n_voxels": config["n_voxels"],
            "explainable_variance": summaries,
            "layout": config.get("layout", "bids"),
            **({"motion": motion} if motion else {}),
            "files": {
                "features.npz": "run design matrices X_run (z-scored, HRF-convolved features at TR) and clip features",
                "sub-XXX.npz": "voxel tuning (weights), noise parameters and explainable variance per voxel",
            },
            "noise_free_bold": "baseline + scale * (X_run @ weights); in signal units X_run @ weights (unit variance)",
        },
    )
    write_text(tmp / "truth" / "README.md", TRUTH_README)
    write_json(tmp / COMPLETE_MARKER, {"version": __version__, "config": config, "complete": True})


TRUTH_README = """# Ground truth of a simulated study (brain2music simulate)

What the simulator knows and a decoder must not see. Read it with `brain2music.simulate.load_truth(OUT)`.

- `truth.json`: the options, the auditory parcel ids (`core_parcels`, `belt_parcels`; ids of
  `../bids/derivatives/parcels.nii.gz`), the feature names, and per subject the distribution of the
  realized explainable variance.
- `features.npz`: `feature_names`, `slow` (clip-constant timbre/genre factors), `genre_factors` (10 x 4),
  `clip_ids`, `clip_features` (n_clips, n_bins, n_features) before the HRF in 0.5-s bins, `hrf`,
  `feature_mean`/`feature_std`, and for every run `train_run-NN` / `test_run-NN`: the design matrix
  X_run (n_volumes, n_features): z-scored, HRF-convolved features at TR 1.5 s.
- `sub-00N.npz`: `weights` (n_features, n_voxels), `voxel_indices` (C-order flat indices of the mask
  voxels: the loader's voxel order), `parcel`, `tuned`, `auditory`, `ev` (target), `ev_realized`
  (var(signal) / (var(signal) + var(noise)) over all runs), `noise_sd`, `ar_coef`, `baseline`, `scale`,
  `psc`, `pref_freq`, `pref_rate`, `slow_share`; with `--layout fmriprep` also `motion_position` (6, n_voxels)
  and `motion_spike` (n_voxels,) (artifact per mm, fraction of baseline), `motion_scale`, `tissue` (0 cortex,
  1 white matter, 2 ventricle) and `aparc_label` (the aparc.a2009s+aseg label of every voxel).
- `sub-00N_motion.npz` (`--layout fmriprep`): the head motion of every run, `train_run-NN` / `test_run-NN`
  (n_volumes, 6): trans_x/y/z in mm, rot_x/y/z in rad (the confounds table's columns).

With `--layout fmriprep` the preprocessed BOLD is the motion-free BOLD plus
`baseline * (motion_mm @ motion_position + FD * motion_spike)` (`StudyTruth.motion_artifact`).

Noise-free response of a run: `X_run @ weights` (unit variance for tuned voxels, 0 elsewhere), in scanner
units `baseline + scale * (X_run @ weights)`. The model is documented in `brain2music.simulate.brain`.
"""


def ev_summary(ev: np.ndarray, tuned: np.ndarray, auditory: np.ndarray) -> dict:
    """Percentiles of the realized explainable variance of the tuned, auditory and other voxels."""

    def q(x):
        if x.size == 0:
            return {}
        return {f"q{int(p)}": float(np.percentile(x, p)) for p in (5, 25, 50, 75, 95)} | {"n": int(x.size)}

    return {
        "tuned": q(ev[tuned]),
        "auditory": q(ev[auditory]),
        "non_auditory": q(ev[~auditory]),
        "tuned_fraction_in_0.05_0.5": float(np.mean((ev[tuned] >= 0.05) & (ev[tuned] <= 0.5)))
        if tuned.any()
        else 0.0,
    }


@dataclass
class StudyTruth:
    """What the simulator knows about a study (see :func:`load_truth`)."""

    root: Path
    info: dict
    features: dict

    @property
    def feature_names(self) -> list[str]:
        """Names of the design's feature columns, in column order."""
        return list(self.features["feature_names"])

    def design(self, split: str, run: int) -> np.ndarray:
        """The run's feature design matrix ``(n_volumes, n_features)`` (``split`` is "train" or "test")."""
        key = f"{split}_run-{int(run):02d}"
        if key not in self.features:
            raise ConfigError(f"no run {key!r} in {self.root / 'truth' / 'features.npz'}")
        return self.features[key]

    def subject(self, subject: str | int) -> dict:
        """The subject's truth arrays (weights, tuned, ev, ev_realized, noise_sd, …) as a dict."""
        from brain2music.data import normalize_subject

        path = self.root / "truth" / f"{normalize_subject(subject)}.npz"
        if not path.is_file():
            raise DataFileNotFoundError(f"truth file not found: {path}")
        with np.load(path) as z:
            return {k: z[k] for k in z.files}

    def noise_free(self, subject: str | int, split: str, run: int, *, units: str = "signal") -> np.ndarray:
        """Noise-free response of a run ``(n_volumes, n_voxels)``: in ``"signal"`` units (``X_run @ weights``,
        unit variance over the study for tuned voxels, 0 for others) or ``"bold"`` (scanner units)."""
        sub = self.subject(subject)
        signal = self.design(split, run) @ sub["weights"]
        if units == "signal":
            return signal
        if units == "bold":
            return sub["baseline"] + sub["scale"] * signal
        raise ConfigError(f"units must be 'signal' or 'bold'; got {units!r}")

    def noise_free_clips(self, subject: str | int, *, delay: int = 3) -> dict:
        """Noise-free responses arranged like :func:`brain2music.data.load_subject`'s arrays.

        Returns a dict with ``train (n_train_clips, n_trs, n_voxels)``, ``test (n_test_clips, n_trs,
        n_voxels)`` (noise-free, so one response per test clip) and ``clips`` (the loader's clip table),
        in signal units (not z-scored), cut with the same hemodynamic ``delay`` as the loader.
        """
        from brain2music.data.bids import subject_design
        from brain2music.data.events import clip_table
        from brain2music.data.preprocess import cut_clips

        _, tr, design = subject_design(self.root / "bids", subject)
        sub = self.subject(subject)
        n_trs = int(round(float(design["duration"].median()) / tr))
        per = np.empty((len(design), n_trs, sub["weights"].shape[1]), dtype=np.float32)
        for (split, run), rows in design.groupby(["split", "run"]).groups.items():
            signal = self.design(split, run) @ sub["weights"]
            per[rows] = cut_clips(
                signal, design.loc[rows, "onset"].to_numpy(), tr=tr, n_trs=n_trs, delay=delay
            )
        clips = clip_table(design)
        out = {"clips": clips}
        for split in ("train", "test"):
            ids = clips.loc[clips.split == split, "clip_id"].tolist()
            pos = {c: i for i, c in enumerate(ids)}
            rows = design[design.split == split]
            acc = np.zeros((len(ids),) + per.shape[1:], dtype=np.float64)
            counts = np.zeros(len(ids))
            for row, cid in zip(rows.index, rows.clip_id):
                acc[pos[cid]] += per[row]
                counts[pos[cid]] += 1
            # Repeated presentations of a clip give the same noise-free response (up to the HRF
            # overlap with the neighbouring clips), so they are averaged as the loader averages them.
            out[split] = (acc / counts[:, None, None]).astype(np.float32)
        return out

    def motion(self, subject: str | int, split: str, run: int) -> np.ndarray:
        """Head motion of a run ``(n_volumes, 6)`` (trans mm, rot rad) of an ``--layout fmriprep`` study."""
        from brain2music.data import normalize_subject

        path = self.root / "truth" / f"{normalize_subject(subject)}_motion.npz"
        if not path.is_file():
            raise DataFileNotFoundError(
                f"no head-motion truth {path} (the study was not simulated with --layout fmriprep)"
            )
        key = f"{split}_run-{int(run):02d}"
        with np.load(path) as z:
            if key not in z.files:
                raise ConfigError(f"no run {key!r} in {path}")
            return z[key].astype(np.float64)

    def motion_artifact(self, subject: str | int, split: str, run: int) -> np.ndarray:
        """The motion artifact added to a run's BOLD ``(n_volumes, n_voxels)``, in scanner units."""
        from brain2music.simulate.motion import motion_artifact

        sub = self.subject(subject)
        frac = motion_artifact(self.motion(subject, split, run), sub["motion_position"], sub["motion_spike"])
        return sub["baseline"] * frac


def load_truth(out: str | os.PathLike) -> StudyTruth:
    """Read the ground truth of a simulated study written by :func:`simulate_study`."""
    import json

    out = Path(out)
    if not (out / COMPLETE_MARKER).is_file():
        raise DataFileNotFoundError(
            f"{out}: not a complete simulated study ({COMPLETE_MARKER} missing); run `brain2music simulate {out}`"
        )
    info = json.loads((out / "truth" / "truth.json").read_text(encoding="utf-8"))
    with np.load(out / "truth" / "features.npz") as z:
        features = {k: z[k] for k in z.files}
    return StudyTruth(root=out, info=info, features=features)
