"""``brain2music tag AUDIO_OR_FOLDER... --tagger musicnn-msd``: tag probabilities of recordings."""

from __future__ import annotations

import argparse
import json

_TAGGERS = "musicnn-msd (default), musicnn-mtt, musicnn-vgg-msd, musicnn-vgg-mtt"


def register(subparsers) -> None:
    """Add ``brain2music tag`` (musicnn tag probabilities of audio files) to ``subparsers``."""
    p = subparsers.add_parser(
        "tag",
        help="tag recordings with a pretrained musicnn tagger (50 tags, no TensorFlow)",
        description=(
            "For each audio file (folders are searched recursively), the probabilities of the tagger's 50 "
            "tags averaged over the file's consecutive 3-s patches, as the original musicnn.tagger does. "
            "The weights come from the musicnn package (pip install --no-deps musicnn) or --weights DIR."
        ),
    )
    p.add_argument("paths", nargs="+", metavar="AUDIO_OR_FOLDER", help="audio files or folders")
    p.add_argument("--tagger", "-t", default="musicnn-msd", help=f"tagger: {_TAGGERS}")
    p.add_argument("-k", "--top", type=int, default=5, help="tags to print per file (default 5)")
    p.add_argument(
        "--json",
        action="store_true",
        help='print [{"file": ..., "tags": {tag: probability}}] with all 50 tags, highest first',
    )
    p.add_argument(
        "--weights", metavar="DIR", help="folder with the checkpoint (default: the musicnn package)"
    )
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from brain2music.embeddings.musicnn import tag_files
    from brain2music.errors import ConfigError

    if args.top < 1:
        raise ConfigError(f"-k/--top must be at least 1, got {args.top}")
    results = tag_files(args.paths, args.tagger, weights=args.weights)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for item in results:
        top = list(item["tags"].items())[: args.top]
        print(f"{item['file']}: " + ", ".join(f"{tag} {p:.3f}" for tag, p in top))
    return 0
