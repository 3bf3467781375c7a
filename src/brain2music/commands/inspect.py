"""``brain2music inspect BIDS_ROOT [--json]``: summarise a ds003720-like dataset (no image data read)."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "inspect",
        help="summarise a ds003720-like BIDS dataset (subjects, TR, runs, clips, genres)",
        description="Summarise a BIDS dataset laid out like OpenNeuro ds003720. Reads headers only.",
    )
    p.add_argument("root", help="BIDS dataset root (folder holding sub-001, sub-002, ...)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--subjects", nargs="+", default=None, help="only these subjects (e.g. 1 2 or sub-001)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from brain2music._io import to_json
    from brain2music.data import inspect_dataset
    from brain2music.data.report_text import format_summary

    summary = inspect_dataset(args.root, subjects=args.subjects)
    print(to_json(summary) if args.json else format_summary(summary))
    return 0
