"""``brain2music example-data OUT``: write a small ds003720-shaped dataset to try ``inspect`` and the loader."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    """Add ``brain2music example-data`` (a tiny dataset with the real ds003720 events) to ``subparsers``."""
    p = subparsers.add_parser(
        "example-data",
        help="write a small example dataset in the ds003720 layout (real events, small random images)",
    )
    p.add_argument("out", help="output folder (must not exist or be empty)")
    p.add_argument("--subjects", type=int, default=5, help="number of subjects (default 5)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from brain2music.data import write_example_dataset

    path = write_example_dataset(
        args.out, n_subjects=args.subjects, random_state=args.seed, overwrite=args.overwrite
    )
    print(f"wrote example dataset to {path}")
    return 0
