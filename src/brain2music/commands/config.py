"""``brain2music config --example`` prints a commented experiment configuration;
``brain2music config --check FILE`` validates one."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    """Add ``brain2music config`` (print the commented example config, or ``--check`` a config file) to ``subparsers``."""
    p = subparsers.add_parser("config", help="print a commented example experiment config, or check one")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--example", action="store_true", help="print a commented example configuration")
    g.add_argument("--check", metavar="FILE", help="validate FILE and print the configuration with defaults")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from brain2music.config import example_config, load_config

    if args.example:
        print(example_config(), end="")
        return 0
    import yaml

    print(yaml.safe_dump(load_config(args.check).to_dict(), sort_keys=False), end="")
    return 0
