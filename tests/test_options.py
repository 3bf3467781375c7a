"""Encoder and generator options: one syntax for every stage, checked against what each plug-in takes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from brain2music.cli import main
from brain2music.commands._options import parse_options, parse_value
from brain2music.embeddings.registry import (
    encoder_parameters,
    get_encoder,
    register_encoder,
    resolve_encoder_options,
)
from brain2music.errors import ConfigError
from brain2music.reconstruct.generators import (
    generator_parameters,
    get_generator,
    resolve_generator_options,
)


def test_parse_value_and_options():
    assert [parse_value(v) for v in ("7", "0.5", "TRUE", "none", "[1, 2]", "taggram", "cuda:0")] == [
        7,
        0.5,
        True,
        None,
        [1, 2],
        "taggram",
        "cuda:0",
    ]
    opts = parse_options(
        ["trust-remote-code=true", "mert:layer=7", "model=/m/a:b=c", "clap-text:max_length=8"]
    )
    assert opts == {
        "trust_remote_code": True,
        "mert": {"layer": 7},
        "model": "/m/a:b=c",
        "clap-text": {"max_length": 8},
    }
    for bad in ("layer", "=3", ":layer=3", "mert:=3", "bad key=1"):
        with pytest.raises(ConfigError, match="--encoder-option: expected KEY=VALUE"):
            parse_options([bad])
    with pytest.raises(ConfigError, match="looks like JSON"):
        parse_value("[1, 2")


def test_parameters_are_read_without_loading_models():
    # Reading the neural encoders' options must not need their checkpoints (none exist here).
    assert {"model", "device", "dtype", "batch_size", "layer", "trust_remote_code"} <= set(
        encoder_parameters("mert")
    )
    assert "trust_remote_code" not in encoder_parameters("clap")
    assert {"checkpoint", "aligner", "device", "dtype", "batch_size"} <= set(generator_parameters("musicldm"))


def test_unknown_option_is_refused_naming_what_the_encoder_takes():
    with pytest.raises(ConfigError, match=r"encoder 'acoustic' does not take option\(s\) 'layr'.*n_mels"):
        get_encoder("acoustic", layr=3)
    with pytest.raises(
        ConfigError, match=r"generator 'debug' does not take option\(s\) 'steps'.*it takes: sr"
    ):
        get_generator("debug", steps=3)


def test_resolve_scoped_unscoped_and_placement():
    out = resolve_encoder_options(
        ["acoustic", "debug"],
        {"window": 5.0, "acoustic": {"n_mels": 16}},
        device="cuda",
        dtype="float16",
    )
    # window goes to both, n_mels to acoustic only; neither has weights, so neither gets a device.
    assert out == {"acoustic": {"window": 5.0, "n_mels": 16}, "debug": {"window": 5.0}}
    assert resolve_encoder_options(["mert"], {"trust_remote_code": True}, device="cpu", dtype="auto") == {
        "mert": {"trust_remote_code": True, "device": "cpu", "dtype": "auto"}
    }
    # An explicit option wins over the run-wide placement.
    assert resolve_encoder_options(["clap"], {"device": "cpu"}, device="cuda")["clap"]["device"] == "cpu"
    with pytest.raises(
        ConfigError, match=r"no encoder of this run \(acoustic, debug\) takes option\(s\) 'layer'"
    ):
        resolve_encoder_options(["acoustic", "debug"], {"layer": 7})
    with pytest.raises(ConfigError, match=r"encoder 'debug' does not take option\(s\) 'n_mels'"):
        resolve_encoder_options(["acoustic", "debug"], {"debug": {"n_mels": 16}})
    with pytest.raises(ConfigError, match="options for encoder 'mert', which this run does not use"):
        resolve_encoder_options(["acoustic"], {"mert": {"layer": 7}})
    assert resolve_generator_options("musicldm", {"num_inference_steps": 10}, device="cuda") == {
        "num_inference_steps": 10,
        "device": "cuda",
    }
    assert resolve_generator_options("debug", {}, device="cuda") == {}


def test_plugin_with_bare_kwargs_factory_takes_any_option():
    from brain2music.embeddings.acoustic import DebugEncoder

    register_encoder("test-kwargs", lambda **kw: DebugEncoder(**kw), description="test")
    try:
        assert resolve_encoder_options(["test-kwargs"], {"window": 5.0}) == {"test-kwargs": {"window": 5.0}}
        with pytest.raises(ConfigError, match="test-kwargs.*unexpected keyword"):
            get_encoder("test-kwargs", bogus=1)
    finally:
        from brain2music.embeddings import registry

        registry._REGISTRY.pop("test-kwargs")


def _music(folder, n=3, sr=8000):
    folder.mkdir(parents=True)
    t = np.arange(16 * sr) / sr
    for i in range(n):
        sf.write(folder / f"t{i}.wav", (0.3 * np.sin(2 * np.pi * 200 * (i + 1) * t)).astype(np.float32), sr)


def test_cli_embed_and_library_pass_options(tmp_path, capsys):
    _music(tmp_path / "music")
    out = tmp_path / "emb.npz"
    rc = main(
        ["embed", str(tmp_path / "music"), "-e", "debug", "--encoder-option", "window=5", "--out", str(out)]
        + ["--scheduler", "none", "--no-cache", "--no-progress"]
    )
    assert rc == 0
    with np.load(out) as z:
        assert z["embeddings"].shape == (3, 7, 4)  # 5-s windows: r = 7
        assert json.loads(str(z["config"]))["window"] == 5.0
    assert (
        main(
            ["embed", str(tmp_path / "music"), "-e", "debug", "--encoder-option", "n_mels=3", "-o", str(out)]
        )
        == 2
    )
    assert "encoder 'debug' does not take option(s) 'n_mels'" in capsys.readouterr().err

    lib = tmp_path / "lib"
    argv = ["library", "build", str(tmp_path / "music"), "--encoder", "debug", "--out", str(lib)]
    assert main([*argv, "--encoder-option", "window=5", "--device", "cpu"]) == 0
    manifest = json.loads((lib / "manifest.json").read_text())
    assert manifest["encoder"]["options"] == {"window": 5.0}  # device is not recorded: it is per machine
    # search and add rebuild the encoder with the recorded options.
    capsys.readouterr()
    assert (
        main(
            [
                "library",
                "search",
                str(lib),
                "--audio",
                str(tmp_path / "music" / "t1.wav"),
                "-k",
                "1",
                "--json",
            ]
        )
        == 0
    )
    hits = json.loads(capsys.readouterr().out)
    assert len(hits) == 1 and hits[0]["path"].endswith(".wav")
    from brain2music.reconstruct.library import MusicLibrary

    rebuilt = MusicLibrary(lib).make_encoder(device="cuda")  # placement ignored: no weights
    assert rebuilt.window == 5.0 and rebuilt.n_windows == 7
    assert (
        main(
            [
                "library",
                "search",
                str(lib),
                "--audio",
                str(tmp_path / "music" / "t1.wav"),
                "--encoder-option",
                "layer=2",
            ]
        )
        == 2
    )
    assert "does not take option(s) 'layer'" in capsys.readouterr().err


def test_cli_check_reports_weightless_and_missing(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert main(["embed", "unused", "-e", "acoustic", "--check"]) == 0
    assert "no weights" in capsys.readouterr().out
    pytest.importorskip("transformers")
    assert (
        main(["library", "build", "unused", "--encoder", "encodec", "--out", str(tmp_path / "l"), "--check"])
        == 1
    )
    out = capsys.readouterr().out
    assert "missing" in out and "huggingface-cli download facebook/encodec_24khz" in out
    assert not (tmp_path / "l").exists()  # a dry run writes nothing


def test_musicnn_layer_through_the_shared_options(capsys):
    """issue 10's encoders take --encoder-option layer=... (validated without loading the weights)."""
    pytest.importorskip("musicnn")
    from brain2music.embeddings.registry import encoder_parameters

    assert set(encoder_parameters("musicnn-msd")) == {"layer", "weights", "clip_duration"}
    out = resolve_encoder_options(["musicnn-msd", "clap"], {"layer": "taggram"}, device="cuda")
    assert out == {"musicnn-msd": {"layer": "taggram"}, "clap": {"device": "cuda"}}
    assert main(["embed", "unused", "-e", "musicnn-msd", "--encoder-option", "layer=taggram", "--check"]) == 0
    printed = capsys.readouterr().out
    assert "encoder   musicnn-msd  ok" in printed and "MSD_musicnn" in printed
    assert main(["embed", "unused", "-e", "musicnn-msd", "--encoder-option", "layer=nope", "--check"]) == 1
    assert "unknown layer 'nope'" in capsys.readouterr().out


def test_cli_check_of_reproduce_reconstruct_and_run(tmp_path, capsys):
    """--check on every remaining stage: it builds what the run would build, runs nothing, writes nothing."""
    assert main(["reproduce", str(tmp_path), "--encoders", "acoustic,debug", "--check"]) == 0
    out = capsys.readouterr().out
    assert out.count("no weights") == 2 and "2 of 2 components usable" in out
    assert (
        main(["reproduce", str(tmp_path), "--encoders", "debug", "--encoder-option", "layr=1", "--check"])
        == 2
    )
    assert "encoder 'debug' does not take option(s) 'layr' (from --encoder-option)" in capsys.readouterr().err
    assert main(["reproduce", str(tmp_path), "--encoders", "debug"]) == 2
    assert "--out" in capsys.readouterr().err

    _music(tmp_path / "music")
    lib = tmp_path / "lib"
    argv = ["library", "build", str(tmp_path / "music"), "--encoder", "debug", "--out", str(lib)]
    assert main([*argv, "--encoder-option", "window=5"]) == 0
    capsys.readouterr()
    check = ["reconstruct", "unused", "--library", str(lib), "--check"]
    assert main([*check, "--generator", "debug", "--generator-option", "sr=8000"]) == 0
    out = capsys.readouterr().out
    assert "encoder   debug" in out and "generator debug" in out and "2 of 2" in out
    assert main([*check, "--generator", "debug", "--generator-option", "steps=3"]) == 2
    assert (
        "generator 'debug' does not take option(s) 'steps' (from --generator-option)"
        in capsys.readouterr().err
    )
    assert main([*check, "--generator", "debug", "--encoder-option", "n_mels=3"]) == 1
    assert "does not take option(s) 'n_mels'" in capsys.readouterr().out  # reported, not raised

    from brain2music.pipeline.experiment import check_experiment, demo_config

    cfg = demo_config(tmp_path / "exp")
    cfg["embeddings"] = {"encoders": ["debug"], "options": {"window": 5.0}}
    cfg["reconstruction"]["generator_options"] = {"n_candidates": 2}
    results = check_experiment(cfg)
    assert [(r.kind, r.name, r.ok) for r in results] == [
        ("encoder", "debug", True), ("encoder", "debug (library)", True), ("generator", "offline", True),
    ]  # fmt: skip
    assert not (tmp_path / "exp").exists()
    cfg["reconstruction"]["generator_options"] = {"num_inference_steps": 2}
    with pytest.raises(ConfigError, match="generator 'offline' does not take option"):
        check_experiment(cfg)


def test_config_file_neural_keys_are_checked():
    from brain2music.config import parse_config
    from brain2music.pipeline.experiment import demo_config

    cfg = demo_config("out")
    cfg["experiment"] |= {"device": "cuda:1", "dtype": "float16"}
    cfg["embeddings"]["options"] = {"mert": {"trust_remote_code": True}, "batch_size": 4}
    cfg["reconstruction"] |= {"best_of": 4, "score": "encoding", "generator_options": {"n_bank": 20}}
    values = parse_config(cfg, check_paths=False).values
    assert values["embeddings"]["options"]["mert"] == {"trust_remote_code": True}
    assert values["reconstruction"]["best_of"] == 4
    for section, key, value, message in [
        ("experiment", "device", "gpu", "experiment.device: expected auto, cpu, cuda"),
        ("experiment", "dtype", "half", "experiment.dtype: expected auto, float32"),
        ("embeddings", "options", "batch_size=4", "embeddings.options: expected a mapping"),
        ("reconstruction", "best_of", 0, "reconstruction.best_of: must be at least 1"),
        ("reconstruction", "score", "cosine", "reconstruction.score: expected embedding or encoding"),
    ]:
        bad = demo_config("out")
        bad[section][key] = value
        with pytest.raises(ConfigError, match=message):
            parse_config(bad, check_paths=False)
