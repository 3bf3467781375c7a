"""``brain2music live``: decode music from a brain while it is being scanned (or from a replayed run)."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    """Add ``brain2music live`` (decode volumes while they are scanned: ``--watch`` or ``--replay``) to ``subparsers``."""
    p = subparsers.add_parser(
        "live",
        help="decode each fMRI volume as it arrives (a watched export folder or a replayed run) into music",
        description="Live decoding: every volume goes through causal preprocessing (drift removal and z-score "
        "from past volumes and the decoder's training statistics), the hemodynamic delay and the decoder's "
        "window, the decoder, and a library search. A page on 127.0.0.1 shows the top tracks, the decoded "
        "similarity to each genre, the latency per volume and plays the top track; --out writes one JSON line "
        "per volume.",
    )
    p.add_argument("--decoder", required=True, help="results/decoders/<encoder>/<method>/<subject>.joblib")
    p.add_argument(
        "--library", help="music library folder (brain2music library build); omit for no retrieval"
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--watch", metavar="DIR", help="folder a real-time export writes one volume file per TR into "
                     "(3-D NIfTI, or DICOM incl. Siemens mosaics)")  # fmt: skip
    src.add_argument("--replay", metavar="BOLD", help="a recorded 4-D run (.nii/.nii.gz) played at TR pace")
    p.add_argument("--events", help="events.tsv of the run: shows what was really playing (replay default: the "
                   "BIDS events file beside the run)")  # fmt: skip
    p.add_argument(
        "--speed", type=float, default=1.0, help="replay speed (1 = TR pace, 0 = as fast as possible)"
    )
    p.add_argument(
        "--port", type=int, default=8765, help="page port on 127.0.0.1 (default 8765; 0 = any free)"
    )
    p.add_argument("--no-browser", action="store_true", help="serve no page (results to --out only)")
    p.add_argument("--no-open", action="store_true", help="serve the page but do not open a browser")
    p.add_argument("--out", help="folder for live.jsonl (one JSON record per volume) and live.log")
    p.add_argument("-k", type=int, default=5, help="tracks per volume (default 5)")
    p.add_argument("--results", help="results folder of the decoder (default: the folder it lies in)")
    p.add_argument("--tr", type=float, help="repetition time in seconds (default: the training runs' TR)")
    p.add_argument("--prior-volumes", type=int, default=20,
                   help="weight of the training prior in the live z-score, in volumes (default 20)")  # fmt: skip
    p.add_argument("--idle-timeout", type=float, default=30.0,
                   help="watch mode: stop after this many seconds without a new volume (default 30; 0 = never)")  # fmt: skip
    p.add_argument("--linger", type=float, default=None,
                   help="seconds the page stays up after the run (default: until Ctrl-C)")  # fmt: skip
    p.add_argument("--quiet", action="store_true", help="no line per volume on stderr")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from brain2music.live import LiveSettings, run_live

    settings = LiveSettings.from_options(
        args.decoder, args.library, replay=args.replay, watch=args.watch, events=args.events, speed=args.speed,
        port=args.port, browser=not args.no_browser, open_browser=not args.no_open, out=args.out, k=args.k,
        results=args.results, tr=args.tr, prior_volumes=args.prior_volumes,
        idle_timeout=args.idle_timeout or None, linger=0 if args.no_browser else args.linger,
    )  # fmt: skip
    summary = run_live(settings, verbose=not args.quiet)
    if summary["out"]:
        print(f"results: {summary['out']}")
    return 0
