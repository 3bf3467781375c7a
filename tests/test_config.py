"""Experiment configuration: defaults, validation with line numbers, the example."""

from __future__ import annotations

import pytest
import yaml

from brain2music.cli import main
from brain2music.config import example_config, load_config, parse_config
from brain2music.errors import ConfigError


def test_example_is_valid_and_complete(tmp_path):
    text = example_config()
    data = yaml.safe_load(text)
    data["simulate"]["enabled"] = True  # the example's data paths do not exist here
    cfg = parse_config(data, path=tmp_path / "x.yaml")
    assert cfg["experiment"]["out"] == str(tmp_path / "results/my-experiment")
    assert cfg["embeddings"]["encoders"] == ["acoustic"]
    assert cfg["decoding"]["methods"] == ["ridge", "ensemble", "encsel", "aligned"]


def test_unknown_key_names_key_and_line(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("experiment:\n  out: res\nsimulate:\n  enabled: true\n  voxles: 300\n")
    with pytest.raises(
        ConfigError, match=r"exp.yaml:5: simulate.voxles: unknown key 'voxles'.*known keys: .*voxels"
    ):
        load_config(path)
    path.write_text("experiment:\n  out: res\nsimulation:\n  enabled: true\n")
    with pytest.raises(ConfigError, match=r"exp.yaml:3: simulation: unknown section"):
        load_config(path)


def test_missing_path_names_key_and_line(tmp_path):
    path = tmp_path / "exp.yaml"
    (tmp_path / "stim").mkdir()
    path.write_text("experiment:\n  out: res\ndata:\n  stimuli: stim\n  bids: nowhere/ds003720\n")
    with pytest.raises(ConfigError, match=r"exp.yaml:5: data.bids: path does not exist: .*nowhere/ds003720"):
        load_config(path)


def test_types_are_checked(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("experiment:\n  out: res\nsimulate:\n  enabled: yes please\n")
    with pytest.raises(ConfigError, match=r"exp.yaml:4: simulate.enabled: expected true or false"):
        load_config(path)
    path.write_text("experiment:\n  name: x\nsimulate:\n  enabled: true\n")
    with pytest.raises(ConfigError, match="experiment.out"):
        load_config(path)


def test_relative_paths_resolve_against_the_file(tmp_path):
    (tmp_path / "d" / "bids").mkdir(parents=True)
    (tmp_path / "d" / "gtzan").mkdir()
    path = tmp_path / "d" / "exp.yaml"
    path.write_text("experiment: {out: out}\ndata: {bids: bids, stimuli: gtzan, subjects: [sub-001]}\n")
    cfg = load_config(path)
    assert cfg["data"]["bids"] == str(tmp_path / "d" / "bids")
    assert cfg["data"]["subjects"] == ["sub-001"]


def test_cli_config(tmp_path, capsys):
    assert main(["config", "--example"]) == 0
    assert "experiment:" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text("experiment:\n  out: r\n  colour: blue\n")
    assert main(["config", "--check", str(bad)]) == 2
    assert "bad.yaml:3: experiment.colour" in capsys.readouterr().err
