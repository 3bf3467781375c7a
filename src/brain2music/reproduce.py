"""Old import path of :mod:`brain2music.study.reproduce` (kept for existing scripts)."""

from brain2music.results.table import format_table, table_csv
from brain2music.study.methods import DEFAULT_METHODS, list_methods
from brain2music.study.reproduce import StudySettings, reproduce

__all__ = ["DEFAULT_METHODS", "METHODS", "StudySettings", "format_table", "reproduce", "table_csv"]

#: Every registered decoder method.
METHODS = tuple(list_methods())
