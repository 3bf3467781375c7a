"""``brain2music embed SOURCE --encoder NAME --out OUT.npz``: embed stimuli, a music folder or captions."""

from __future__ import annotations

import argparse
import sys

from brain2music.commands._options import (
    add_encoder_options,
    add_scheduler_option,
    encoder_options,
    parse_value,
)
from brain2music.errors import ConfigError

_ENCODERS = (
    "acoustic (default, no weights), musicnn-msd, musicnn-mtt, musicnn-vgg-msd, musicnn-vgg-mtt (pretrained, "
    "no torch), clap, encodec, mert, clap-text (captions), debug"
)


def register(subparsers) -> None:
    """Add ``brain2music embed`` (embed every clip of a stimuli folder; cached, resumable) to ``subparsers``."""
    p = subparsers.add_parser(
        "embed",
        help="embed every clip of a stimulus/audio folder (or a captions CSV) into (n_clips, r, dim)",
        description=(
            "Embed clips on the paper's windows and save clip_ids, embeddings (n_clips, r, dim), the "
            "encoder config and the package version to an .npz. With --bids (or --ds003720) SOURCE is a "
            "GTZAN-layout folder and the clips are the experiment's 15-s stimuli (faded, RMS-normalised); "
            "without, every audio file under SOURCE is embedded from 0 s for 15 s. With a text encoder "
            "(clap-text), SOURCE is the Brain2Music captions CSV (ID, DescEN). Clips are cached one by one: "
            "rerunning skips them and a killed run continues where it stopped."
        ),
    )
    p.add_argument("source", help="stimulus or audio folder; captions CSV for clap-text")
    p.add_argument("--encoder", "-e", default="acoustic", help=f"encoder name: {_ENCODERS}")
    p.add_argument("--out", "-o", help="output .npz file (required unless --check)")
    which = p.add_mutually_exclusive_group()
    which.add_argument(
        "--bids", metavar="BIDS_ROOT", help="embed the clips listed in this study's events files"
    )
    which.add_argument(
        "--ds003720",
        action="store_true",
        help="embed the clips of the real ds003720 (packaged events) from a GTZAN folder",
    )
    p.add_argument(
        "--duration",
        type=float,
        default=15.0,
        help="without --bids: seconds of each file to embed, from --start (default 15)",
    )
    p.add_argument("--start", type=float, default=0.0, help="without --bids: offset in each file (s)")
    _add_pretrained_options(p.add_argument_group("pretrained encoders"))
    _add_execution_options(p.add_argument_group("execution"))
    p.set_defaults(func=_run)


def _add_pretrained_options(g) -> None:
    """Options of encoders with weights: checkpoint, placement, layer, ``--check``."""
    g.add_argument(
        "--checkpoint",
        metavar="NAME_OR_PATH",
        help="Hugging Face checkpoint name (from the local cache) or folder; default per encoder "
        "(same as --encoder-option model=...)",
    )
    add_encoder_options(g)
    g.add_argument("--batch-size", type=int, help="windows per forward pass (batch_size=...)")
    g.add_argument(
        "--layer",
        type=parse_value,
        help="mert: hidden layer (default 7); musicnn-*: penultimate (default), taggram, mean_pool, max_pool; "
        "musicnn-vgg-*: pool5 (default), taggram (same as --encoder-option layer=...)",
    )
    g.add_argument(
        "--weights", metavar="DIR", help="musicnn-*: checkpoint folder (default: the musicnn package)"
    )
    g.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="mert: allow running the code shipped with the checkpoint (trust_remote_code=true)",
    )
    g.add_argument(
        "--check",
        action="store_true",
        help="only load the encoder's checkpoint and report whether it is usable; embed nothing",
    )


def _add_execution_options(r) -> None:
    """Where and how the clips are embedded: cache, scheduler, workers, chunks, errors, progress."""
    r.add_argument(
        "--cache-dir",
        help="per-clip cache (default $BRAIN2MUSIC_CACHE/embeddings or ~/.cache/brain2music/embeddings)",
    )
    r.add_argument("--no-cache", action="store_true", help="do not read or write the per-clip cache")
    add_scheduler_option(r, runs="clips, in chunks,")
    r.add_argument(
        "--workers", type=int, help="local cluster: number of worker processes (default: all cores)"
    )
    r.add_argument("--chunk-size", type=int, help="clips per task")
    r.add_argument(
        "--skip-errors",
        action="store_true",
        help="leave out unreadable or too short files (listed in the output) instead of stopping",
    )
    r.add_argument("--no-progress", action="store_true", help="no progress bar")


def _run(args: argparse.Namespace) -> int:
    from brain2music.embeddings import embed_source

    shortcuts = {
        "model": args.checkpoint,
        "batch_size": args.batch_size,
        "layer": args.layer,
        "weights": args.weights,
        "trust_remote_code": True if args.trust_remote_code else None,
    }
    options = encoder_options(args, args.encoder, extra={k: v for k, v in shortcuts.items() if v is not None})
    if args.check:
        from brain2music.checkpoints import check_encoders, print_check

        return print_check(check_encoders({args.encoder: options}))
    if not args.out:
        raise ConfigError("embed: --out (the output .npz file) is required unless --check is given")
    result = embed_source(
        args.source,
        args.encoder,
        out=args.out,
        bids=args.bids,
        ds003720=args.ds003720,
        encoder_options=options,
        start=args.start,
        duration=args.duration,
        cache_dir=False if args.no_cache else args.cache_dir,
        scheduler=args.scheduler,
        workers=args.workers,
        chunk_size=args.chunk_size,
        on_error="skip" if args.skip_errors else "raise",
        progress=not args.no_progress,
    )
    n, r, dim = result.embeddings.shape
    done = ""
    if hasattr(result, "n_computed_"):
        done = f" ({result.n_computed_} computed, {result.n_cached_} from cache)"
    print(f"wrote {args.out}: {n} clips x {r} windows x {dim} dims, encoder {result.encoder}{done}")
    for clip, why in result.skipped.items():
        print(f"skipped {clip}: {why}", file=sys.stderr)
    return 0
