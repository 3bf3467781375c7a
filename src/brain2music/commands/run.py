"""``brain2music run experiment.yaml``: run a whole experiment from one configuration file."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    """Add ``brain2music run`` (every stage of one experiment config file) to ``subparsers``."""
    p = subparsers.add_parser(
        "run",
        help="run a whole experiment from a YAML config (see `brain2music config --example`)",
    )
    p.add_argument("config", help="experiment configuration file (YAML)")
    p.add_argument(
        "--check",
        action="store_true",
        help="only load the checkpoint of every encoder and generator the config names; run nothing",
    )
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from brain2music.pipeline.experiment import check_experiment, run_experiment

    if args.check:
        from brain2music.checkpoints import print_check

        return print_check(check_experiment(args.config))
    summary = run_experiment(args.config)
    if summary.get("report"):
        print(f"report: {summary['report']}")
    print(f"results: {summary['results']}")
    return 0
