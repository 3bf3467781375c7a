"""``brain2music demo``: the whole path on a simulated study, no downloads, no GPU."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    """Add ``brain2music demo`` (the embedded default study end to end, into ``--out``) to ``subparsers``."""
    p = subparsers.add_parser(
        "demo",
        help="simulate a small study, decode music from it, retrieve and generate, and write an HTML report",
        description="Run the embedded demo: simulate a small study (composed music + simulated brains), embed "
        "the stimuli, fit and evaluate decoders, retrieve and generate reconstructions, write report.html. "
        "Stages already done in OUT are reused.",
    )
    p.add_argument("--out", default="brain2music-demo", help="output folder (default ./brain2music-demo)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from brain2music.pipeline.experiment import run_demo

    summary = run_demo(args.out, seed=args.seed)
    print(f"report: {summary['report']}")
    print(f"results: {summary['results']}")
    print(f"total time: {summary['total_s']:.0f} s")
    return 0
