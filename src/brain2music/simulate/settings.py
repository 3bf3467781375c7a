"""What a simulated study is made of: :class:`SimulationSettings`, checked with errors that name the
option and its ``brain2music simulate`` flag."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from brain2music._checks import check_known_options
from brain2music.errors import ConfigError

__all__ = ["LAYOUTS", "SimulationSettings"]

_FLAGS = {
    "n_subjects": "--subjects",
    "n_voxels": "--voxels",
    "clips_per_genre": "--clips-per-genre",
    "test_clips_per_genre": "--test-clips-per-genre",
    "train_runs": "--train-runs",
    "test_runs": "--test-runs",
    "test_repeats": "--test-repeats",
    "n_parcels": "--parcels",
    "n_auditory_parcels": "--auditory-parcels",
    "snr": "--snr",
    "n_jobs": "--jobs",
    "seed": "--seed",
    "layout": "--layout",
}

#: Output layouts: raw BIDS BOLD (motion-free), or fMRIPrep derivatives with simulated head motion.
LAYOUTS = ("bids", "fmriprep")


def _check_options(**o) -> None:
    def need(name, ok, expected):
        if not ok:
            flag = _FLAGS.get(name, name)
            raise ConfigError(f"{name} ({flag}) must be {expected}; got {o[name]!r}")

    for name in (
        "n_subjects",
        "n_voxels",
        "clips_per_genre",
        "test_clips_per_genre",
        "train_runs",
        "test_runs",
        "test_repeats",
        "n_parcels",
        "n_auditory_parcels",
        "n_jobs",
    ):
        need(name, isinstance(o[name], (int, np.integer)) and o[name] >= 1, "a whole number >= 1")
    need(
        "n_voxels",
        o["n_voxels"] >= o["n_parcels"],
        f"at least n_parcels ({o['n_parcels']}) so that every parcel has a voxel",
    )
    need(
        "n_auditory_parcels",
        o["n_auditory_parcels"] < o["n_parcels"],
        f"smaller than n_parcels ({o['n_parcels']})",
    )
    need("n_subjects", o["n_subjects"] <= 999, "at most 999")
    need("train_runs", o["train_runs"] <= 99, "at most 99")
    need("test_runs", o["test_runs"] <= 99, "at most 99")
    need("snr", isinstance(o["snr"], (int, float)) and o["snr"] > 0, "a positive number")
    need("layout", o["layout"] in LAYOUTS, f"one of {', '.join(LAYOUTS)}")
    if "music" in o:  # the run-count limits depend on the recordings found (checked in _design)
        return
    need(
        "train_runs",
        o["train_runs"] <= 10 * o["clips_per_genre"],
        f"at most the number of training clips ({10 * o['clips_per_genre']} = 10 genres x clips_per_genre)",
    )
    need(
        "test_runs",
        o["test_runs"] <= 10 * o["test_clips_per_genre"],
        f"at most the number of test clips ({10 * o['test_clips_per_genre']})",
    )
    need(
        "clips_per_genre",
        o["clips_per_genre"] + o["test_clips_per_genre"] <= 99_999,
        "at most 99,999 tracks per genre",
    )


@dataclass(frozen=True)
class SimulationSettings:
    """What a simulated study is made of (:func:`simulate_study`; ``simulation.json``'s ``config``).

    Attributes
    ----------
    n_subjects, n_voxels : subjects and mask voxels per subject (full size: 5 × 60,000).
    seed : everything is deterministic for a seed (identical files).
    clips_per_genre, test_clips_per_genre : training / test tracks per genre (ds003720: 48 / 6).
    train_runs, test_runs, test_repeats : runs and presentations of every test clip (ds003720: 12, 6, 4).
    n_parcels, n_auditory_parcels : parcels of the label image, and how many carry tuned voxels.
    snr : multiplies every tuned voxel's signal-to-noise ratio (1 = default difficulty).
    n_jobs : processes for composing/rendering and stimulus features.
    layout : ``"bids"`` (raw BIDS BOLD without head motion) or ``"fmriprep"``: the same study (same seed,
        same signal and noise) with simulated head motion and its artifacts, written as fMRIPrep
        derivatives with confounds, brain masks and a FreeSurfer ``aparc.a2009s+aseg.mgz``
        (:mod:`brain2music.simulate.fmriprep_layout`); ``OUT/bids`` then holds events and sidecars only.
    music : a folder of real recordings with one subfolder per genre: the stimuli are cut from them
        instead of composed (:mod:`brain2music.simulate.music`); ``clips_per_genre`` then caps the
        training recordings and ``test_clips_per_genre`` counts the test recordings of each genre.
    excerpts_per_track : with ``music``, 30-s pieces cut from each training recording.
    """

    n_subjects: int = 2
    n_voxels: int = 5000
    seed: int = 0
    clips_per_genre: int = 48
    test_clips_per_genre: int = 6
    train_runs: int = 12
    test_runs: int = 6
    test_repeats: int = 4
    n_parcels: int = 150
    n_auditory_parcels: int = 10
    snr: float = 1.0
    n_jobs: int = 1
    layout: str = "bids"
    music: Path | None = None
    excerpts_per_track: int = 1

    @classmethod
    def from_options(cls, **options) -> SimulationSettings:
        """Checked settings from keyword options (errors name the option and its flag)."""
        check_known_options(options, {f.name for f in dataclasses.fields(cls)}, what="simulate")
        settings = cls(**options)
        settings.check()
        return settings

    def check(self) -> None:
        """ConfigError naming the first option out of range."""
        if self.music is not None:
            e = self.excerpts_per_track
            if not isinstance(e, (int, np.integer)) or e < 1:
                raise ConfigError(
                    f"excerpts_per_track (--excerpts-per-track) must be a whole number >= 1; got {e!r}"
                )
        _check_options(**self.to_config())
        if not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise ConfigError(f"seed (--seed) must be a whole number >= 0; got {self.seed!r}")

    def to_config(self) -> dict:
        """The build's config (``music`` and ``excerpts_per_track`` only for a study cut from recordings)."""
        config = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        del config["music"], config["excerpts_per_track"]
        if self.music is not None:
            config.update(
                music=str(Path(self.music).resolve()), excerpts_per_track=int(self.excerpts_per_track)
            )
        return config
