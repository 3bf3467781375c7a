"""``brain2music run experiment.yaml``: run a whole experiment from one configuration file."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "run",
        help="run a whole experiment from a YAML config (see `brain2music config --example`)",
    )
    p.add_argument("config", help="experiment configuration file (YAML)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from brain2music.study.experiment import run_experiment

    summary = run_experiment(args.config)
    if summary.get("report"):
        print(f"report: {summary['report']}")
    print(f"results: {summary['results']}")
    return 0
