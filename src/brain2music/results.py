"""Reading a results folder written by ``brain2music reproduce`` (layout: docs/results_layout.md)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from brain2music.errors import DataError, DataFileNotFoundError


def read_results(results: str | os.PathLike) -> dict:
    """The ``results.json`` of a results folder, with an error that says how to make one when absent."""
    results = Path(results)
    path = results / "results.json"
    if not path.is_file():
        raise DataFileNotFoundError(
            f"{results}: not a results folder (no results.json); write one with `brain2music reproduce` "
            "or `brain2music run`"
        )
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from exc
