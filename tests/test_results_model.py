"""The results model: one reader and one writer, unknown fields kept, old layouts refused with a remedy."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from brain2music.evaluate.space import MetricSpace
from brain2music.results import (
    SCHEMA_VERSION,
    EncoderInfo,
    MethodResult,
    Predictions,
    ResultsFolder,
    ResultsLayoutError,
    StudyResults,
    SummaryRow,
)
from brain2music.results.settings import DataSource, StudySettings


def _study():
    return StudyResults(
        config={"bids_root": "/data/ds", "encoders": ["clap"], "out": "/r"},
        subjects=["sub-001"],
        methods=["ridge"],
        encoders={"clap": EncoderInfo(10.0, 4, 8, "embeddings/clap.npz", "paper")},
        rows=[MethodResult("sub-001", "clap", "ridge", "test", "paper", 0.8, 0.3, [0.7, 0.9], 0.001, 60)],
        summary=[
            SummaryRow("clap", "ridge", "test", "paper", 0.8, None, [0.8, 0.8], 0.001, 0.3, None, 0.2, 1)
        ],
    )


def test_round_trip_keeps_fields_a_newer_writer_added(tmp_path):
    folder = ResultsFolder(tmp_path)
    folder.write(_study())
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["schema_version"] == SCHEMA_VERSION
    # A newer stage added a field to a row and a top-level list this reader does not know.
    data["rows"][0]["tag_agreement"] = 0.5
    data["decoding_backend"] = {"name": "torch"}
    (tmp_path / "results.json").write_text(json.dumps(data))
    study = folder.read()
    assert study.rows[0].id_acc_ci == [0.7, 0.9] and study.rows[0].extra == {"tag_agreement": 0.5}
    folder.write(study)
    again = json.loads((tmp_path / "results.json").read_text())
    assert again["rows"][0]["tag_agreement"] == 0.5 and again["decoding_backend"] == {"name": "torch"}
    assert (
        (tmp_path / "table2.csv")
        .read_text()
        .splitlines()[1]
        .startswith(
            'id_acc,clap,paper,1 subject; CI resamples not recorded,"0.800 ± n/a [0.800, 0.800] p=0.001"'
        )
    )


def test_old_layout_is_refused_with_the_command_that_regenerates_it(tmp_path):
    (tmp_path / "results.json").write_text(json.dumps({"version": "0.1.0", "config": {"bids_root": "/d",
                                                      "stimuli": "/g", "encoders": ["acoustic"], "out": "/o"}}))  # fmt: skip
    with pytest.raises(
        ResultsLayoutError, match="brain2music reproduce /d --stimuli /g --encoders acoustic --out /o"
    ):
        ResultsFolder(tmp_path).read()
    with pytest.raises(FileNotFoundError, match="not a results folder"):
        ResultsFolder(tmp_path / "nothing").read()


def test_predictions_round_trip_with_their_metric_space(tmp_path):
    rng = np.random.default_rng(0)
    target = rng.normal(5.0, 2.0, size=(6, 4, 3)).astype(np.float32)
    space = MetricSpace.fit("standardized", target)
    p = Predictions("sub-001", "clap", "ridge", np.array([f"blues.{i:05d}" for i in range(6)]), np.array(["blues"] * 6),
                    target + 0.1, target, np.eye(6), np.ones(6), space)  # fmt: skip
    folder = ResultsFolder(tmp_path)
    folder.write_predictions(p)
    back = folder.read_predictions("clap", "ridge", "sub-001")
    np.testing.assert_allclose(back.space.transform(back.target), space.transform(target), rtol=1e-6)
    assert back.space.name == "standardized" and folder.prediction_subjects("clap", "ridge") == ["sub-001"]
    np.savez(folder.predictions_path("clap", "ridge", "sub-002"), clip_ids=p.clip_ids, predicted=p.predicted)
    with pytest.raises(ResultsLayoutError, match="regenerate"):
        folder.read_predictions("clap", "ridge", "sub-002")


def test_select_method_uses_training_cv_only():
    study = _study()
    study.summary.append(
        SummaryRow("clap", "encsel", "test", "paper", 0.6, None, None, None, 0.2, None, 0.4, 1)
    )
    assert study.select_method("clap") == "encsel"  # worse on test, better in training CV
    study.summary = [s for s in study.summary if s.method == "ridge"]
    study.summary[0].train_cv_r_mean = None
    with pytest.raises(ValueError, match="--method"):
        study.select_method("clap")


def test_a_folder_written_before_top_k_and_the_selected_ratio_still_loads(tmp_path):
    from brain2music.results.table import format_table, table_csv

    folder = ResultsFolder(tmp_path)
    folder.write(_study())
    data = json.loads((tmp_path / "results.json").read_text())
    for key in [k for k in data["summary"][0] if k.startswith("top") or k in ("n_clips", "ci_resamples")]:
        del data["summary"][0][key]
    data["rows"][0] = {k: v for k, v in data["rows"][0].items() if not k.startswith("top")}
    data["chance"] = [
        {"subject": "sub-001", "encoder": "clap", "space": "paper", "id_acc": 0.5, "pearson_r": 0.0}
    ]
    data["encoding"] = [{"subject": "sub-001", "encoder": "clap", "map": None, "npz": "e.npz", "n_voxels": 10,
                         "n_significant": 2, "fdr_alpha": 0.05, "n_permutations": 10, "mean_test_r": 0.1,
                         "max_test_r": 0.5, "mean_noise_ceiling": 0.6, "mean_test_r_over_ceiling_significant": 0.9,
                         "n_selected": 5, "mean_cv_r": 0.1}]  # fmt: skip
    (tmp_path / "results.json").write_text(json.dumps(data))
    study = folder.read()
    enc = study.encoding[0]
    # The test-selected ratio is kept under its own name and never taken for the training-selected one.
    assert enc.mean_test_r_over_ceiling_selected is None
    assert enc.extra == {"mean_test_r_over_ceiling_significant": 0.9}
    assert study.rows[0].top1_acc is None and study.summary[0].ci_resamples is None
    text = format_table(study)
    assert "0.800 ± n/a [0.800, 0.800] p=0.001" in text and "1 subject; CI resamples not recorded" in text
    assert "top1_acc,clap,paper,1 subject; CI resamples not recorded,n/a" in table_csv(study)


def test_elapsed_seconds_are_a_field_and_older_folders_with_them_in_config_still_load(tmp_path):
    folder = ResultsFolder(tmp_path)
    study = _study()
    study.elapsed_s = 12.5
    folder.write(study)
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["elapsed_s"] == 12.5 and "elapsed_s" not in data["config"]
    # A folder that recorded the time inside config reads it into the field.
    data.pop("elapsed_s")
    data["config"]["elapsed_s"] = 3.0
    (tmp_path / "results.json").write_text(json.dumps(data))
    back = folder.read()
    assert back.elapsed_s == 3.0 and "elapsed_s" not in back.config.extra
    assert back.config == _study().config


# ------------------------------------------------------------------------- reconstruction scores
def _flat_scores():
    """One subject's scores in the flat form of schema-2 files, with the ``oracle`` spelling."""
    return {
        "subject": "sub-001", "n_clips": 6, "space": "paper",
        "retrieval_id_acc": 0.9, "retrieval_id_acc_ci": [0.8, 1.0], "retrieval_id_acc_p": 0.01,
        "chance_id_acc": 0.5, "chance_id_acc_ci": [0.4, 0.6], "chance_id_acc_p": 0.6,
        "oracle_id_acc": 1.0, "oracle_id_acc_ci": [1.0, 1.0], "oracle_id_acc_p": 0.001,
        "oracle_generation_top1_acc": 0.5, "oracle_generation_top1_acc_ci": None,
        "generation_id_acc": None, "generation_id_acc_ci": None, "generation_id_acc_p": None,
        "retrieval_tag_agreement_genre": 0.75, "retrieval_tag_agreement_genre_ci": [0.5, 1.0],
        "retrieval_tag_agreement_genre_p": 0.03, "retrieval_genre_agreement": 1.0, "retrieval_score_mean": 0.4,
        "top1_chance": 1 / 6, "top5_chance": 5 / 6, "tagger_accuracy": 0.8, "selection_score_mean": None,
    }  # fmt: skip


def test_flat_reconstruction_scores_load_nested_under_todays_names():
    from brain2music.results import ReconstructionScores, Score

    s = ReconstructionScores.from_dict(_flat_scores())
    assert set(s.scores) == {"retrieval", "chance", "true_embedding", "true_embedding_generation"}
    assert s.get("retrieval", "id_acc") == Score(0.9, [0.8, 1.0], 0.01, n_clips=6)
    assert s.get("true_embedding", "id_acc") == Score(1.0, [1.0, 1.0], 0.001, n_clips=6)
    # the longest kind wins: true_embedding_generation, not true_embedding's "generation_top1_acc"
    assert s.get("true_embedding_generation", "top1_acc") == Score(0.5, None, None, n_clips=6)
    assert s.get("generation", "id_acc") is None and s.value("generation", "id_acc") is None
    assert s.get("retrieval", "tag_agreement_genre") == Score(0.75, [0.5, 1.0], 0.03, n_clips=6)
    assert s.value("retrieval", "genre_agreement") == 1.0 and s.value("retrieval", "score_mean") == 0.4
    assert (s.top1_chance, s.tagger_accuracy, s.selection_score_mean) == (1 / 6, 0.8, None)
    assert s.extra == {}
    assert s.metrics() == {
        "retrieval_id_acc": 0.9, "retrieval_tag_agreement_genre": 0.75, "retrieval_genre_agreement": 1.0,
        "retrieval_score_mean": 0.4, "chance_id_acc": 0.5, "true_embedding_id_acc": 1.0,
        "true_embedding_generation_top1_acc": 0.5, "top1_chance": 1 / 6, "top5_chance": 5 / 6,
        "tagger_accuracy": 0.8,
    }  # fmt: skip


def test_reconstruction_scores_are_written_nested_and_read_back_equal():
    from brain2music.results import ReconstructionScores, Score

    s = ReconstructionScores.from_dict(_flat_scores())
    data = json.loads(json.dumps(s.to_dict()))
    assert data["scores"]["retrieval"]["id_acc"] == {"value": 0.9, "ci": [0.8, 1.0], "p": 0.01, "n_clips": 6}
    assert not any(k.startswith(("retrieval_", "oracle")) for k in data)
    assert ReconstructionScores.from_dict(data) == s
    # the flat form is the inverse of from_flat
    assert ReconstructionScores.from_flat("sub-001", 6, "paper", s.flat()) == s
    s.put("generation", "id_acc", Score(0.7, [0.6, 0.8], 0.02, n_clips=6))
    assert s.flat()["generation_id_acc_ci"] == [0.6, 0.8]
    with pytest.raises(ValueError, match="kind must be one of"):
        s.put("oracle", "id_acc", Score(1.0))


def test_summary_over_subjects_of_nested_scores():
    from brain2music.results import ReconstructedClip, ReconstructionScores
    from brain2music.study.recon_scoring import summarise_subjects

    subjects = []
    clips = []
    for i, values in enumerate(([1.0, 0.0, 1.0], [1.0, 1.0, 1.0])):
        sub = f"sub-00{i + 1}"
        subjects.append(
            ReconstructionScores.from_flat(sub, 3, "paper", {"retrieval_top1_acc": np.mean(values)})
        )
        clips += [ReconstructedClip(sub, f"blues.0000{j}", "blues", {}, [], {}, scores={"retrieval_top1_acc": v})
                  for j, v in enumerate(values)]  # fmt: skip
    stat = summarise_subjects(subjects, clips, n_bootstrap=200)["retrieval_top1_acc"]
    assert stat.mean == pytest.approx(5 / 6) and (stat.n_subjects, stat.n_clips) == (2, 3)
    assert stat.ci[0] <= stat.mean <= stat.ci[1] <= 1.0


def test_config_is_the_typed_settings_and_results_json_holds_exactly_their_dict(tmp_path):
    source = DataSource("bids", tmp_path / "bids", None, 2, {"mask": "brain"})
    settings = StudySettings(
        source, ("clap",), ("sub-001",), ("ridge",), tmp_path / "out", alphas=(1.0, 10.0)
    )
    folder = ResultsFolder(tmp_path)
    folder.write(dataclasses.replace(_study(), config=settings))
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["config"] == settings.to_dict()
    assert list(data)[0] == "config"  # the key stays where the writer put it
    back = folder.read()
    assert isinstance(back.config, StudySettings) and back.config == settings
    assert back.config.source.bids_root == tmp_path / "bids" and back.config.alphas == (1.0, 10.0)
    first = (tmp_path / "results.json").read_bytes()
    folder.write(back)
    assert (tmp_path / "results.json").read_bytes() == first  # read and written back: not a byte changed


def test_a_config_of_an_earlier_version_loads_and_keeps_the_keys_this_version_does_not_know(tmp_path):
    """Fewer keys, only the flat data-source copies, ``elapsed_s`` and unknown keys inside ``config``."""
    folder = ResultsFolder(tmp_path)
    folder.write(_study())
    data = json.loads((tmp_path / "results.json").read_text())
    data["config"] = {
        "bids_root": "/data/bids", "derivatives": "/data/deriv", "use_derivatives": True, "delay": 4,
        "encoders": ["clap"], "subjects": ["sub-001"], "methods": ["ridge"], "out": "/r", "cv": 3,
        "elapsed_s": 7.0, "experiment": {"name": "old"}, "notes": ["kept"],
    }  # fmt: skip
    (tmp_path / "results.json").write_text(json.dumps(data))
    back = folder.read()
    assert back.elapsed_s == 7.0 and back.config.cv == 3 and back.config.reuse_kernels is True
    assert back.config.source == DataSource("derivatives", Path("/data/bids"), Path("/data/deriv"), 4)
    assert back.config.extra == {"use_derivatives": True, "experiment": {"name": "old"}, "notes": ["kept"]}
    folder.write(back)
    again = json.loads((tmp_path / "results.json").read_text())["config"]
    assert {k: again[k] for k in back.config.extra} == back.config.extra and "elapsed_s" not in again
    assert again["source"]["kind"] == "derivatives" and again["bids_root"] == "/data/bids"
    # A key of the data source this version does not know survives too.
    data["config"] = again | {"source": again["source"] | {"session": "ses-01"}}
    (tmp_path / "results.json").write_text(json.dumps(data))
    assert folder.read().config.source.extra == {"session": "ses-01"}
    folder.write(folder.read())
    assert json.loads((tmp_path / "results.json").read_text())["config"] == data["config"]


@pytest.mark.parametrize("config", [{}, {"experiment": {"name": "fake"}}])
def test_the_minimal_configs_of_hand_written_folders_load(tmp_path, config):
    folder = ResultsFolder(tmp_path)
    folder.write(StudyResults(config=config, subjects=["sub-001"], methods=["ridge"]))
    back = folder.read()
    assert back.config.out is None and back.config.source.bids_root is None and back.config.stimuli is None
    assert back.config.extra == config
    assert json.loads((tmp_path / "results.json").read_text())["config"]["out"] is None
