"""Old import path of :mod:`brain2music.study.reproduce` (kept for existing scripts)."""

from brain2music.study.methods import DEFAULT_METHODS, list_methods
from brain2music.study.reproduce import StudySettings, reproduce
from brain2music.study.table import format_table, table_csv

__all__ = ["DEFAULT_METHODS", "METHODS", "StudySettings", "format_table", "reproduce", "table_csv"]

#: Every registered decoder method.
METHODS = tuple(list_methods())
