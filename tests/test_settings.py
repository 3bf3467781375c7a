"""Settings objects: frozen, one builder per stage, unknown options refused, recorded configs read back."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from brain2music.errors import ConfigError
from brain2music.live import LiveSettings, run_live
from brain2music.results.settings import DataSource, ReconstructSettings, StudySettings
from brain2music.simulate import SimulationSettings, simulate_study
from brain2music.study.reconstruct import reconstruct, reconstruct_settings
from brain2music.study.reproduce import reproduce
from brain2music.study.settings import STUDY_OPTIONS, study_settings


def _settings(tmp_path) -> StudySettings:
    source = DataSource(
        "fmriprep", tmp_path / "bids", None, 2, {"space": "T1w", "mask": "brain"}, tmp_path / "fp"
    )
    return StudySettings(
        source=source, encoders=["acoustic", "mfcc"], subjects=["sub-001", "sub-002"], methods=["ridge"],
        out=tmp_path / "out", stimuli=tmp_path / "stim", delays=[1, 2], alphas=[1.0, 10.0], cv=4,
        metric_spaces={"acoustic": "standardized", "mfcc": "paper"}, encoder_options={"acoustic": {}},
        scheduler="threads", workers=2,
    )  # fmt: skip


def test_study_settings_are_frozen_and_write_lists(tmp_path):
    s = _settings(tmp_path)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.cv = 3
    assert s.encoders == ("acoustic", "mfcc") and isinstance(s.out, Path)
    d = s.to_dict()
    assert d["encoders"] == ["acoustic", "mfcc"] and d["delays"] == [1, 2] and d["alphas"] == [1.0, 10.0]
    assert d["bids_root"] == str((tmp_path / "bids").resolve()) and d["delay"] == 2
    assert d["source"]["kind"] == "fmriprep" and d["source"]["fmriprep"] == str((tmp_path / "fp").resolve())


def test_from_dict_reads_back_what_to_dict_recorded(tmp_path):
    s = _settings(tmp_path)
    recorded = s.to_dict() | {"elapsed_s": 12.5}  # a config written by another version holds more
    back = StudySettings.from_dict(recorded)
    assert back.extra == {"elapsed_s": 12.5} and back.to_dict() == recorded
    assert dataclasses.replace(back, extra={}).to_dict() == s.to_dict()
    assert back.source == dataclasses.replace(s.source, bids_root=(tmp_path / "bids").resolve(),
                                              fmriprep=(tmp_path / "fp").resolve())  # fmt: skip


def test_from_dict_of_an_earlier_config_takes_the_defaults(tmp_path):
    """A schema-2 config without the later fields (and without ``source``) still reads."""
    old = {"bids_root": "/data/bids", "derivatives": "/data/deriv", "delay": 4, "encoders": ["acoustic"],
           "subjects": ["sub-001"], "methods": ["ridge"], "out": "/r", "alphas": [1.0], "cv": 5}  # fmt: skip
    s = StudySettings.from_dict(old)
    assert s.source == DataSource("derivatives", Path("/data/bids"), Path("/data/deriv"), 4)
    assert (
        s.reuse_kernels is True and s.scheduler is None and s.encoder_options == {} and s.backend == "numpy"
    )


def test_study_settings_refuse_an_unknown_option(tmp_path):
    with pytest.raises(ConfigError, match=r"reproduce: unknown option\(s\) colour"):
        study_settings(tmp_path, out=tmp_path / "out", colour="blue")
    with pytest.raises(ConfigError, match=r"unknown option\(s\) n_permutation\b"):
        reproduce(tmp_path, out=tmp_path / "out", n_permutation=10)
    with pytest.raises(ConfigError, match="out .the results folder. is required"):
        study_settings(tmp_path)
    assert "embeddings" in STUDY_OPTIONS and "verbose" not in STUDY_OPTIONS


def test_reproduce_refuses_options_beside_settings(tmp_path):
    with pytest.raises(ConfigError, match="given beside a StudySettings"):
        reproduce(_settings(tmp_path), cv=3)


def test_reconstruct_settings_check_and_refuse(tmp_path):
    s = reconstruct_settings(
        tmp_path / "r", tmp_path / "lib", tmp_path / "out", k=3, n_clips=4, subjects=["sub-001"]
    )
    assert isinstance(s, ReconstructSettings) and s.subjects == ("sub-001",) and s.k == 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.k = 4
    with pytest.raises(ConfigError, match=r"reconstruct: unknown option\(s\) top_k"):
        reconstruct_settings(tmp_path, tmp_path, tmp_path, top_k=3)
    with pytest.raises(ConfigError, match="n_clips must be >= 2"):
        reconstruct_settings(tmp_path, tmp_path, tmp_path, n_clips=1)
    with pytest.raises(ConfigError, match="k must be >= 1"):
        reconstruct(tmp_path, tmp_path, tmp_path, k=0)
    with pytest.raises(ConfigError, match="not beside them"):
        reconstruct(s, k=4)


def test_live_settings(tmp_path):
    bold = tmp_path / "sub-001_task-Test_run-01_bold.nii.gz"
    bold.touch()
    events = tmp_path / "sub-001_task-Test_run-01_events.tsv"
    events.touch()
    s = LiveSettings.from_options("dec.joblib", None, replay=bold, k=3)
    assert s.events == events and s.k == 3 and s.decoder == Path("dec.joblib")  # the events beside the run
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.k = 4
    with pytest.raises(ConfigError, match="exactly one of --replay BOLD or --watch DIR"):
        LiveSettings.from_options("dec.joblib", replay=bold, watch=tmp_path)
    with pytest.raises(ConfigError, match=r"live: unknown option\(s\) speeed"):
        run_live("dec.joblib", None, replay=bold, speeed=2)
    with pytest.raises(ConfigError, match="port must be in"):
        LiveSettings.from_options("dec.joblib", replay=bold, port=70000)
    with pytest.raises(ConfigError, match="not beside them"):
        run_live(s, k=2)


def test_simulation_settings(tmp_path):
    s = SimulationSettings.from_options(n_subjects=1, n_voxels=200, seed=3)
    config = s.to_config()
    assert list(config)[:3] == ["n_subjects", "n_voxels", "seed"] and "music" not in config
    with pytest.raises(ConfigError, match=r"n_voxels \(--voxels\) must be at least n_parcels"):
        SimulationSettings.from_options(n_voxels=100)
    with pytest.raises(ConfigError, match=r"simulate: unknown option\(s\) subjects"):
        simulate_study(tmp_path / "sim", subjects=2)
    with pytest.raises(ConfigError, match=r"seed \(--seed\) must be a whole number >= 0"):
        simulate_study(tmp_path / "sim", SimulationSettings(seed=-1))
    with pytest.raises(ConfigError, match="given beside the settings"):
        simulate_study(tmp_path / "sim", s, seed=4)
    assert not (tmp_path / "sim").exists()
