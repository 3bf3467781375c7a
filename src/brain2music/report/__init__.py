"""The HTML report: numbers, figures, brain maps and audio of a finished run."""

from brain2music.report.html import build_report

__all__ = ["build_report"]
