"""Command-line interface: ``brain2music <command> ...``.

The CLI holds no logic. Each command lives in its own module under :mod:`brain2music.commands` and exposes
``register(subparsers)``, which adds an ``argparse`` sub-parser whose ``func`` calls one public function.
Modules are discovered automatically, so a stage adds a command without touching this file.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from brain2music import __version__
from brain2music.errors import Brain2MusicError


def build_parser() -> argparse.ArgumentParser:
    """The ``brain2music`` argument parser, with one sub-command per module of :mod:`brain2music.commands`.

    Every module there whose name has no leading underscore is imported and its ``register(subparsers)``
    adds its sub-parser; ``--version`` prints the package version.
    """
    parser = argparse.ArgumentParser(
        prog="brain2music",
        description="Reconstruct the music a person heard from fMRI (Brain2Music, open re-implementation).",
    )
    parser.add_argument("--version", action="version", version=f"brain2music {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    from brain2music import commands

    names = sorted(m.name for m in pkgutil.iter_modules(commands.__path__) if not m.name.startswith("_"))
    for name in names:
        module = importlib.import_module(f"brain2music.commands.{name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``brain2music`` on ``argv`` (default: ``sys.argv[1:]``) and return the exit status.

    Without a command the help is printed (status 0). A :class:`~brain2music.errors.Brain2MusicError` is
    printed as ``brain2music <command>: error: <message>`` on stderr and gives status 2; a closed output pipe
    gives 0, Ctrl-C 130; otherwise the command's own return value (``None``: 0).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        result = args.func(args)
    except Brain2MusicError as exc:
        print(f"brain2music {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # pragma: no cover - output piped into `head` and the like
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:  # pragma: no cover - interactive
        print("interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
