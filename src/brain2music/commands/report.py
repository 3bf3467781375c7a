"""``brain2music report RESULTS_DIR``: build the HTML report of a finished run."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    """Add ``brain2music report`` (the HTML report of a results folder) to ``subparsers``."""
    p = subparsers.add_parser(
        "report", help="build report.html for a finished run (results of reproduce/run)"
    )
    p.add_argument("results", help="results folder (holds results.json)")
    p.add_argument(
        "--recon",
        action="append",
        default=None,
        help="reconstruction folder (default RESULTS/reconstruction); repeat it to play the generated clips "
        "of several reconstructions (e.g. --generator mosaic and offline) side by side",
    )
    p.add_argument("--out", default=None, help="where to write report.html (default: the results folder)")
    p.add_argument(
        "--max-clips", type=int, default=12, help="test clips shown with audio players (default 12)"
    )
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from brain2music.report import build_report

    path = build_report(args.results, recon_dir=args.recon, out=args.out, max_clips=args.max_clips)
    print(f"report written to {path}")
    return 0
