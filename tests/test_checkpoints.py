"""The dry run of ``--check``: each component's outcome, its status from the error it raised, the table."""

from __future__ import annotations

import io

import pytest

from brain2music.checkpoints import CheckResult, check_component, check_encoders, check_generator, print_check
from brain2music.errors import ConfigError, DataError, DataFileNotFoundError, MissingDependencyError


def test_weight_free_encoder_and_generator_are_usable():
    results = check_encoders({"acoustic": {}}) + check_generator("debug", {})
    assert [(r.kind, r.name, r.status, r.ok) for r in results] == [
        ("encoder", "acoustic", "no weights", True),
        ("generator", "debug", "no weights", True),
    ]
    out = io.StringIO()
    assert print_check(results, file=out) == 0
    assert out.getvalue().strip().endswith("2 of 2 components usable")


def test_status_follows_the_error_raised():
    def failing(exc):
        def build():
            raise exc

        return build

    cases = {
        "missing": DataFileNotFoundError("no such checkpoint /x; download it"),
        "missing dependency": MissingDependencyError("install the neural extra"),
        "bad option": ConfigError("encoder 'x' does not take option 'y'"),
        "incompatible": DataError("weights do not fit"),
    }
    for status, exc in cases.items():
        r = check_component("encoder", "x", "/x", failing(exc))
        assert (r.status, r.ok, r.message, r.checkpoint) == (status, False, str(exc), "/x")
    ok = check_component("generator", "g", None, lambda: object())
    assert (ok.status, ok.ok) == ("no weights", True)


def test_unknown_encoder_is_refused_before_loading_and_a_failure_fails_the_table():
    with pytest.raises(ConfigError, match="unknown encoder 'nope'; known encoders: acoustic"):
        check_encoders({"nope": {}})
    bad = check_component(
        "encoder",
        "clap",
        "/models/clap",
        lambda: (_ for _ in ()).throw(DataFileNotFoundError("/models/clap not found")),
    )
    good = CheckResult("encoder", "acoustic", None, "no weights", "", 0.0)
    out = io.StringIO()
    assert print_check([bad, good], file=out) == 1
    text = out.getvalue()
    assert "/models/clap not found" in text and "1 of 2 components usable; fix: clap" in text
    assert bad.to_dict()["ok"] is False and good.to_dict()["ok"] is True
