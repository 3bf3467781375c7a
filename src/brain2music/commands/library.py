"""``brain2music library build|add|search``: a searchable music library."""

from __future__ import annotations

import sys

from brain2music._io import to_json
from brain2music.commands._options import add_encoder_options, encoder_options, raw_encoder_options
from brain2music.reconstruct.index import INDEX_KINDS
from brain2music.reconstruct.window_store import WINDOW_INDEX_KINDS


def _print_ingest(lib) -> None:
    rep = lib.last_ingest_
    index = (lib.manifest.get("index") or {}).get("kind") or "pending (another writer is still adding)"
    print(
        f"{lib.path}: {rep['n_added']} tracks added, {rep['n_already_present']} already present, "
        f"{len(lib)} in the library (encoder {lib.encoder_name!r}, coverage {lib.coverage}, index {index}, "
        f"space {lib.space})"
    )
    if rep["skipped"]:
        print(f"skipped {len(rep['skipped'])} unreadable files:", file=sys.stderr)
        for s in rep["skipped"]:
            print(f"  {s['path']}: {s['error']}", file=sys.stderr)


def _build(args) -> int:
    from brain2music.reconstruct.library import build_library

    options = encoder_options(args, args.encoder)
    if args.check:
        from brain2music.checkpoints import check_encoders, print_check

        return print_check(check_encoders({args.encoder: options}))
    lib = build_library(
        args.music_dir,
        args.out,
        encoder=args.encoder,
        metadata=args.metadata,
        coverage=args.coverage,
        hop=args.hop,
        index=args.index,
        space=args.space,
        window_index=args.window_index,
        batch_size=args.batch_size,
        encoder_options=options,
    )
    _print_ingest(lib)
    return 0


def _add(args) -> int:
    from brain2music.reconstruct.library import add_to_library

    lib = add_to_library(
        args.library,
        args.music_dir,
        encoder=args.encoder,
        metadata=args.metadata,
        index=args.index,
        space=args.space,
        window_index=args.window_index,
        batch_size=args.batch_size,
        encoder_options=raw_encoder_options(args),
    )
    _print_ingest(lib)
    return 0


def _search(args) -> int:
    from brain2music.reconstruct.library import search_library

    table = search_library(
        args.library,
        audio=args.audio,
        k=args.k,
        encoder=args.encoder,
        exact=True if args.exact else None,
        encoder_options=raw_encoder_options(args),
    )
    if args.json:
        print(to_json(table.to_dict(orient="records")))
    else:
        cols = ["query_path", "rank", "score", "offset", "title", "artist", "genre", "path"]
        print(table[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0


def register(subparsers) -> None:
    """Add ``brain2music library`` (``build``, ``add``, ``search`` a music library) to ``subparsers``."""
    p = subparsers.add_parser("library", help="build, extend and search a music library")
    sub = p.add_subparsers(dest="library_command", metavar="ACTION", required=True)

    def ingest_options(q, *, encoder_required: bool):
        q.add_argument("music_dir", help="folder of audio files (searched recursively; FMA layout accepted)")
        q.add_argument(
            "--encoder",
            required=encoder_required,
            default=None,
            help="embedding encoder name (brain2music.embeddings)",
        )
        q.add_argument(
            "--metadata",
            default=None,
            help="CSV with path or track_id + title/artist/genre, or FMA tracks.csv (found automatically)",
        )
        q.add_argument(
            "--index",
            choices=INDEX_KINDS,
            default=None if not encoder_required else "auto",
            help="vector index: auto (exact below 100k tracks, IVF above), flat, ivf, hnsw",
        )
        q.add_argument(
            "--space",
            choices=("auto", "cosine", "zscore"),
            default=None if not encoder_required else "auto",
            help="similarity: cosine, or cosine after per-dimension z-scoring (auto: z-score when all tracks look alike)",
        )
        q.add_argument(
            "--window-index",
            choices=WINDOW_INDEX_KINDS,
            default=None if not encoder_required else "auto",
            help="index over the search windows: auto (exact below 200k windows, IVF-PQ above), exact, "
            "ivfpq, ivfsq8, hnsw",
        )
        q.add_argument("--batch-size", type=int, default=64, help="tracks per committed shard (default 64)")
        add_encoder_options(q)

    b = sub.add_parser("build", help="embed a music folder into a new library (resumes an interrupted build)")
    ingest_options(b, encoder_required=True)
    b.add_argument("--out", required=True, help="library folder to create")
    b.add_argument(
        "--coverage",
        choices=("first15", "full"),
        default="first15",
        help="windows audio queries match: first15 (each track's first 15 s, the paper's protocol) or full "
        "(every window of the whole track, stored with its offset)",
    )
    b.add_argument(
        "--hop", type=float, default=None, help="full coverage: seconds between window ends (default 1.5)"
    )
    b.add_argument(
        "--check",
        action="store_true",
        help="only load the encoder's checkpoint and report whether it is usable; build nothing",
    )
    b.set_defaults(func=_build)

    a = sub.add_parser("add", help="append a music folder to an existing library")
    a.add_argument("library", help="library folder")
    ingest_options(a, encoder_required=False)
    a.set_defaults(func=_add)

    s = sub.add_parser(
        "search", help="top-k library tracks for query audio, each with the offset where the query aligns"
    )
    s.add_argument("library", help="library folder")
    s.add_argument(
        "--audio",
        required=True,
        nargs="+",
        help="query audio file(s) of any length from one encoder window up (wav, flac, ogg, mp3, ...)",
    )
    s.add_argument("-k", type=int, default=5, help="number of tracks per query (default 5)")
    s.add_argument("--encoder", default=None, help="encoder of the query (default: the library's)")
    s.add_argument("--exact", action="store_true", help="score every track (ignore the window index)")
    add_encoder_options(s)
    s.add_argument("--json", action="store_true", help="print JSON records (track, offset in s, score, ...)")
    s.set_defaults(func=_search)
