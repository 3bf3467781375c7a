"""tools/structure.py on a small package with known answers: a long function, a long file, a long
parameter list, a cycle through a lazy import, a shim, imports against the layering rule and public
functions without a docstring."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

TOOL = Path(__file__).resolve().parents[1] / "tools" / "structure.py"


def _load():
    spec = importlib.util.spec_from_file_location("structure_tool", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _package(root: Path) -> None:
    pkg = root / "src" / "brain2music"
    for sub in ("alpha", "beta", "gamma"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text('"""Top."""\n')
    body = "\n".join(f"    x{i} = {i}" for i in range(85))
    (pkg / "alpha" / "long.py").write_text(
        "from brain2music.beta import thing\n\n\ndef long_one():\n" + body + "\n    return x0\n"
    )
    params = ", ".join(f"p{i}" for i in range(13))
    (pkg / "beta" / "thing.py").write_text(
        f"class K:\n    def method(self, {params}):\n        return 0\n\n\n"
        "def lazy():\n    from brain2music.alpha import long\n\n    return long\n"
    )
    (pkg / "gamma" / "old.py").write_text(
        '"""Old path."""\n\nfrom brain2music.beta.thing import K  # noqa: F401\n\n__all__ = ["K"]\n'
    )
    (pkg / "gamma" / "big.py").write_text("\n".join(f"v{i} = {i}" for i in range(601)) + "\n")


def test_known_answers(tmp_path):
    _package(tmp_path)
    result = _load().measure(tmp_path)
    assert [(f["name"], f["lines"]) for f in result["functions"]] == [("long_one", 87)]
    assert [(f["where"], f["lines"]) for f in result["files"]] == [("src/brain2music/gamma/big.py:1", 601)]
    assert [(f["name"], f["parameters"]) for f in result["parameters"]] == [
        ("method", 13)
    ]  # self not counted
    assert [c["subpackages"] for c in result["cycles"]] == [["alpha", "beta"]]  # through the lazy import
    assert [s["module"] for s in result["shims"]] == ["brain2music.gamma.old"]


def test_runs_from_the_repository_root_and_prints_json(tmp_path):
    _package(tmp_path)
    out = subprocess.run(
        [sys.executable, str(TOOL), "--json", "--root", str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    doc = json.loads(out)
    assert set(doc) == {
        "functions", "files", "parameters", "cycles", "shims", "limits", "layering", "unplaced", "undocumented"
    }  # fmt: skip
    text = subprocess.run(
        [sys.executable, str(TOOL), "--root", str(tmp_path)], capture_output=True, text=True, check=True
    ).stdout
    assert "functions over 80 lines: 1" in text and "alpha <-> beta" in text
    bad = subprocess.run(
        [sys.executable, str(TOOL), "--root", str(tmp_path / "nowhere")], capture_output=True
    )
    assert bad.returncode == 2 and b"no src/brain2music/" in bad.stderr


def _layered_package(root: Path) -> None:
    pkg = root / "src" / "brain2music"
    for sub in ("data", "models", "study", "report", "simulate", "extra"):
        (pkg / sub).mkdir(parents=True)
    (pkg / "__init__.py").write_text("from brain2music.study import run  # the top may import anything\n")
    (pkg / "data" / "__init__.py").write_text("from brain2music.models import fit\n")
    (pkg / "models" / "__init__.py").write_text(
        'def fit():\n    """Fit."""\n\n\ndef undocumented():\n    return 1\n\n\n'
        "class K:\n    def method(self):\n        return 1\n\n    def _private(self):\n        return 2\n\n"
        '    def __len__(self):\n        return 0\n\n    @property\n    def p(self):\n        """P."""\n'
        "        return 3\n\n    @p.setter\n    def p(self, value):\n        pass\n\n\n"
        "class _Hidden:\n    def method(self):\n        return 4\n"
    )
    (pkg / "models" / "_solver.py").write_text("def public_in_private():\n    return 1\n")
    (pkg / "study" / "__init__.py").write_text(
        '"""S."""\n\n\ndef run():\n    """Run."""\n    from brain2music.report import page\n    from brain2music.simulate import sim\n\n'
        "    return page, sim\n"
    )
    (pkg / "report" / "__init__.py").write_text("page = 1\n")
    (pkg / "simulate" / "__init__.py").write_text("sim = 1\n")
    (pkg / "extra" / "__init__.py").write_text("from brain2music.data import fit\n")
    (pkg / "cli.py").write_text("from brain2music import __version__, extra\n")  # extra: a sub-package


def test_layering_and_docstrings(tmp_path):
    _layered_package(tmp_path)
    tool = _load()
    result = tool.measure(tmp_path)
    assert [(x["from"], x["to"], x["kind"]) for x in result["layering"]] == [
        ("data", "models", "upward"),
        ("study", "report", "same layer"),  # a lazy import counts
    ]
    assert result["layering"][0]["where"] == "src/brain2music/data/__init__.py:1"
    assert result["unplaced"] == [
        "extra"
    ]  # cli -> extra is listed once, as unplaced; __version__ is no package
    # Private modules, private classes, private and dunder methods and property setters are not counted.
    assert [u["name"] for u in result["undocumented"]] == ["undocumented", "K.method"]
    assert tool.layer_of("errors") == 0 and tool.layer_of("cli") == len(tool.LAYERS) - 1
    text = tool.report(result)
    assert "imports against the layering rule: 2" in text and "not in the layer table: extra" in text
