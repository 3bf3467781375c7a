"""`brain2music run`: a whole experiment from a config, stage reuse, and the report in a real browser."""

from __future__ import annotations

import json

import pytest
import yaml

from brain2music.cli import main
from brain2music.errors import ConfigError
from brain2music.pipeline.experiment import demo_config, run_experiment
from browser import browser_available, check_page, serve


def _tiny_config(out):
    return {
        "experiment": {"name": "tiny", "out": str(out), "seed": 3},
        "simulate": {
            "enabled": True,
            "subjects": 2,
            "voxels": 300,
            "clips_per_genre": 4,
            "test_clips_per_genre": 1,
            "train_runs": 5,
            "test_runs": 1,
            "library_tracks": 12,
        },
        "embeddings": {"encoders": ["acoustic"]},
        "decoding": {"methods": ["ridge", "encsel"]},
        "reconstruction": {"generator": "debug", "n_clips": 4, "top_k": 2},
        "report": {"max_clips": 2},
    }


@pytest.mark.slow
def test_run_experiment_end_to_end_and_reuse(tmp_path, capsys):
    out = tmp_path / "exp"
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(_tiny_config(out)))
    assert main(["run", str(path)]) == 0
    assert "report:" in capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    assert {r["method"] for r in results["rows"]} == {"ridge", "encsel"}
    recon = json.loads((out / "reconstruction" / "reconstruction.json").read_text())
    # musicnn class agreement on the simulated study's own stimuli (found through its events)
    assert recon["tag_agreement"]["taggers"]["genre"] == "musicnn-msd"
    assert 0 <= recon["summary"]["retrieval_tag_agreement_genre"]["mean"] <= 1
    assert recon["summary"]["true_embedding_tag_agreement_mood"]["n_subjects"] == 2
    html = (out / "report.html").read_text()
    assert "<audio" in html and "Table 2" in html
    first = json.loads((out / "experiment.json").read_text())["timings_s"]
    assert all(first[s] > 0 for s in ("simulate", "reproduce", "library", "reconstruct", "report"))
    # Nothing changed: every stage is reused.
    summary = run_experiment(path, verbose=False)
    assert all(v == 0.0 for v in summary["timings_s"].values())
    # A changed report option reruns the report only.
    cfg = _tiny_config(out)
    cfg["report"]["max_clips"] = 1
    path.write_text(yaml.safe_dump(cfg))
    summary = run_experiment(path, verbose=False)
    assert summary["timings_s"]["report"] > 0
    assert all(summary["timings_s"][s] == 0.0 for s in ("simulate", "reproduce", "library", "reconstruct"))
    if browser_available():
        with serve(out) as base:
            state = check_page(f"{base}/report.html")
        assert state["images"] and state["audio"]
        assert all(i["ok"] for i in state["images"]), state["images"]
        assert all(a["ok"] for a in state["audio"]), state["audio"]
        assert not state["severe_logs"], state["severe_logs"]


def test_demo_config_is_valid(tmp_path):
    from brain2music.config import parse_config

    cfg = parse_config(demo_config(tmp_path / "d"), check_paths=False)
    assert cfg["simulate"]["enabled"] and cfg["reconstruction"]["preset"] == "demo"


def test_library_encoder_must_be_decoded(tmp_path):
    cfg = _tiny_config(tmp_path / "x")
    cfg["library"] = {"encoder": "clap"}
    with pytest.raises(ConfigError, match="library.encoder"):
        run_experiment(cfg, verbose=False)
