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


# ------------------------------------------------------------------- every key of the schema is read
_ALTERNATIVE = {
    "simulate.layout": "fmriprep",
    "data.mask": "cortex",
    "data.parcels": "destrieux",
    "data.space": "MNI152NLin2009cAsym:res-2",
    "data.confounds": "none",
    "embeddings.encoders": ["clap", "acoustic"],
    "decoding.methods": ["ridge"],
    "library.encoder": "clap",
    "reconstruction.generator": "musicgen",
    "reconstruction.preset": "demo",
    "reconstruction.score": "encoding",
    "reconstruction.generator_options": {"num_inference_steps": 10},
    "embeddings.options": {"batch_size": 4},
    "experiment.device": "cuda",
    "experiment.dtype": "float16",
}


def _alternative(section: str, key: str, tmp_path):
    from brain2music.config import SCHEMA

    default, kind = SCHEMA[section][key]
    dotted = f"{section}.{key}"
    if dotted in _ALTERNATIVE:
        return _ALTERNATIVE[dotted]
    if dotted == "embeddings.precomputed":  # the stage fingerprint reads the file's bytes
        (tmp_path / "clap.npz").write_bytes(b"precomputed clap")
        return {"clap": str(tmp_path / "clap.npz")}
    base = kind.rstrip("?")
    if base == "bool":
        return not default
    if base == "int":
        return 1 if default is None else default + 1
    if base == "list":
        return ["sub-009"]
    if base == "path":
        return str(tmp_path / f"alt_{key}")
    return f"alt_{key}"


def _recorded_run(values: dict, tmp_path, monkeypatch) -> list:
    """Run ``brain2music run`` with every stage's work replaced by a recorder; return what it was asked."""
    import shutil
    import sys

    import threadpoolctl

    import brain2music.pipeline.experiment as experiment
    import brain2music.reconstruct
    import brain2music.report
    import brain2music.simulate
    import brain2music.study.reconstruct
    import brain2music.study.reproduce
    from brain2music.pipeline.experiment import run_experiment

    calls = []

    def recorder(name):
        def fn(*args, **kwargs):
            kwargs.pop("config", None) if name == "build_report" else None  # shown in the report only
            calls.append((name, repr(args), repr(sorted(kwargs.items()))))

        return fn

    real_limits = threadpoolctl.threadpool_limits

    def limits(*args, **kwargs):
        if sys._getframe(1).f_globals.get("__name__") == experiment.__name__:
            calls.append(("threadpool_limits", repr(args), repr(sorted(kwargs.items()))))
        return real_limits(*args, **kwargs)

    for module, name in ((brain2music.simulate, "simulate_study"), (experiment, "compose_library"),
                         (brain2music.study.reproduce, "reproduce"), (brain2music.reconstruct, "build_library"),
                         (brain2music.study.reconstruct, "reconstruct"), (brain2music.report, "build_report")):  # fmt: skip
        monkeypatch.setattr(module, name, recorder(name))
    monkeypatch.setattr(threadpoolctl, "threadpool_limits", limits)
    shutil.rmtree(tmp_path / "out", ignore_errors=True)
    run_experiment(parse_config(values, path=tmp_path / "exp.yaml", check_paths=False), verbose=False)
    return calls


def _unread_keys(tmp_path, monkeypatch) -> list[str]:
    from brain2music.config import SCHEMA

    # simulate.enabled: false is the `real` base, where data.* keys are read.
    simulated = {"experiment": {"out": "out"}, "simulate": {"enabled": True},
                 "embeddings": {"encoders": ["acoustic", "clap"]}}  # fmt: skip
    real = {"experiment": {"out": "out"}, "data": {"bids": "bids", "stimuli": "stim"}}
    baseline = {}
    unread = []
    for section, keys in SCHEMA.items():
        for key in keys:
            base = real if section == "data" or f"{section}.{key}" == "simulate.enabled" else simulated
            if id(base) not in baseline:
                baseline[id(base)] = _recorded_run(base, tmp_path, monkeypatch)
            values = {s: dict(v) for s, v in base.items()}
            values.setdefault(section, {})[key] = _alternative(section, key, tmp_path)
            if _recorded_run(values, tmp_path, monkeypatch) == baseline[id(base)]:
                unread.append(f"{section}.{key}")
    return unread


def test_every_config_key_changes_what_run_does(tmp_path, monkeypatch):
    """A key that nothing reads fails here: changing it alone must change what some stage is asked."""
    assert _unread_keys(tmp_path, monkeypatch) == [], "config keys accepted but read by nothing"


def test_the_key_check_finds_a_key_nothing_reads(tmp_path, monkeypatch):
    from brain2music.config import SCHEMA

    monkeypatch.setitem(SCHEMA, "data", dict(SCHEMA["data"], unused=(None, "str?")))
    monkeypatch.setitem(SCHEMA, "report", dict(SCHEMA["report"], theme=("light", "str")))
    assert _unread_keys(tmp_path, monkeypatch) == ["data.unused", "report.theme"]
