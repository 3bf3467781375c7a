"""The base of every record of a results folder, the schema version and its error.

Every record is a dataclass whose :meth:`_Record.from_dict` / :meth:`_Record.to_dict` give the JSON form.
Keys a reader does not know are kept in the record's ``extra`` dict and written back unchanged, so an
older reader never drops a newer writer's fields.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from brain2music.errors import DataError

__all__ = ["SCHEMA_VERSION", "ResultsLayoutError"]

#: Version of the results-folder layout (results.json, predictions, reconstruction.json).
SCHEMA_VERSION = 2

T = TypeVar("T")


class ResultsLayoutError(DataError):
    """A results folder of another layout version; the message says how to regenerate it."""


@dataclass
class _Record:
    """Base of every record: unknown keys survive a read/write round trip in ``extra``."""

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any]) -> T:
        """The record of a JSON object; keys that are not fields go to ``extra``."""
        names = {f.name for f in dataclasses.fields(cls)}
        known = {k: v for k, v in data.items() if k in names and k != "extra"}
        extra = {k: v for k, v in data.items() if k not in names}
        extra.update(data.get("extra") or {})
        obj = cls(**known)
        obj.extra = extra
        obj._post_read()
        return obj

    def _post_read(self) -> None:
        """Rebuild nested records after :meth:`from_dict` (overridden where records nest)."""

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form: every field, then the ``extra`` keys."""
        out = {}
        for f in dataclasses.fields(self):
            if f.name == "extra":
                continue
            value = getattr(self, f.name)
            out[f.name] = _plain(value)
        out.update(_plain(self.extra))
        return out


def _plain(value):
    if isinstance(value, _Record):
        return value.to_dict()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    return value
