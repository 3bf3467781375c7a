"""``brain2music inspect ROOT [--fmriprep DIR] [--json]``: summarise a ds003720-like dataset (no image data read).

``ROOT`` is a raw BIDS root, or an fMRIPrep output folder (detected from its ``*_desc-preproc_bold.nii.gz``
files; events then come from ``--bids`` or the BIDS root two levels up).
"""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    """Add ``brain2music inspect`` (summarise a BIDS root or fMRIPrep folder from headers only) to ``subparsers``."""
    p = subparsers.add_parser(
        "inspect",
        help="summarise a ds003720-like BIDS dataset or its fMRIPrep derivatives (runs, confounds, motion)",
        description=(
            "Summarise a BIDS dataset laid out like OpenNeuro ds003720 (subjects, TR, runs, clips, genres), or "
            "fMRIPrep derivatives of it: runs found per space, confound columns, mean and max framewise "
            "displacement per run, runs missing or mismatched against the events. Reads headers and tables only."
        ),
    )
    p.add_argument("root", help="BIDS dataset root, or an fMRIPrep output folder")
    p.add_argument("--fmriprep", default=None, help="fMRIPrep output folder to inspect against ROOT's events")
    p.add_argument(
        "--bids", default=None, help="raw BIDS root with the events when ROOT is an fMRIPrep folder"
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--subjects", nargs="+", default=None, help="only these subjects (e.g. 1 2 or sub-001)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import sys

    from brain2music._io import to_json
    from brain2music.data import inspect_dataset, inspect_fmriprep, is_fmriprep_dir
    from brain2music.data.report_text import format_fmriprep_summary, format_summary

    fmriprep, bids = args.fmriprep, args.bids
    if fmriprep is None and is_fmriprep_dir(args.root):
        fmriprep = args.root
    elif fmriprep is not None:
        bids = bids or args.root
    if fmriprep is None:
        summary = inspect_dataset(args.root, subjects=args.subjects)
        print(to_json(summary) if args.json else format_summary(summary))
        return 0
    summary = inspect_fmriprep(fmriprep, bids_root=bids, subjects=args.subjects)
    print(to_json(summary) if args.json else format_fmriprep_summary(summary))
    if summary["problems"]:
        print(
            f"brain2music inspect: {len(summary['problems'])} problem(s) found (listed above)",
            file=sys.stderr,
        )
        return 1
    return 0
