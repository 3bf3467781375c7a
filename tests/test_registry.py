"""The registry helper behind every plug-in family and the one "must be one of" check."""

from __future__ import annotations

import pytest

from brain2music._checks import check_choice
from brain2music._registry import Registry
from brain2music.embeddings import list_encoders
from brain2music.errors import ConfigError, DataError
from brain2music.models._backend import BACKENDS
from brain2music.reconstruct.generators import describe_generators, list_generators
from brain2music.study.context import SUBJECT_LOADERS
from brain2music.study.methods import DEFAULT_METHODS, get_method, list_methods


def test_registry_names_get_and_error():
    reg = Registry("widget")
    assert reg.register("b", 2) == 2 and reg.register("a", 1) == 1
    assert reg.names() == ["a", "b"] and list(reg) == ["a", "b"] and len(reg) == 2 and "a" in reg
    assert reg.get("b") == 2 and reg.get("zzz", None) is None
    with pytest.raises(ConfigError, match="unknown widget 'c'; known widgets: a, b"):
        reg.get("c")
    ordered = Registry("method", order="registration")
    for name in ("ridge", "ensemble", "encsel"):
        ordered.register(name, object())
    assert ordered.names() == ["ridge", "ensemble", "encsel"]
    assert ordered.pop("ensemble") is not None and ordered.names() == ["ridge", "encsel"]


def test_every_list_function_returns_names():
    encoders, generators = list_encoders(), list_generators()
    assert isinstance(encoders, list) and isinstance(generators, list)
    assert encoders == sorted(encoders) and {"acoustic", "debug"} <= set(encoders)
    assert generators == sorted(generators) and {"debug", "offline"} <= set(generators)
    assert list(describe_generators()) == generators and all(describe_generators().values())
    methods = list_methods()  # registration order: the default methods first, then debug
    assert isinstance(methods, list) and methods[: len(DEFAULT_METHODS)] == list(DEFAULT_METHODS)
    assert (
        "debug" in methods and get_method("krr-rbf").kernel == "rbf" and get_method("encsel").kernel is None
    )
    assert get_method("krr-rbf").needs == get_method("encsel").needs == {"encoding"}
    with pytest.raises(ConfigError, match="unknown method 'nope'; known methods: ridge, ensemble"):
        get_method("nope")
    assert SUBJECT_LOADERS.names() == ["bids", "derivatives", "fmriprep"] and BACKENDS[0] == "numpy"
    with pytest.raises(ConfigError, match="unknown data source 'xnat'; known data sources: bids"):
        SUBJECT_LOADERS.get("xnat")


def test_check_choice():
    assert check_choice("b", ("a", "b"), what="mode") == "b"
    with pytest.raises(ConfigError, match="--mode must be one of a, b; got 'c'"):
        check_choice("c", ("a", "b"), what="--mode")
    with pytest.raises(DataError, match="kind must be one of 1, 2; got 3"):
        check_choice(3, (1, 2), what="kind", error=DataError)
