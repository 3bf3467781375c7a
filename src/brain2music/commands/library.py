"""``brain2music library build|add|search``: a searchable music library."""

from __future__ import annotations

import sys

from brain2music._io import to_json
from brain2music.reconstruct.index import INDEX_KINDS


def _print_ingest(lib) -> None:
    rep = lib.last_ingest_
    print(
        f"{lib.path}: {rep['n_added']} tracks added, {rep['n_already_present']} already present, "
        f"{len(lib)} in the library (encoder {lib.encoder_name!r}, index {lib.manifest['index']['kind']}, space {lib.space})"
    )
    if rep["skipped"]:
        print(f"skipped {len(rep['skipped'])} unreadable files:", file=sys.stderr)
        for s in rep["skipped"]:
            print(f"  {s['path']}: {s['error']}", file=sys.stderr)


def _build(args) -> int:
    from brain2music.reconstruct.library import build_library

    lib = build_library(
        args.music_dir,
        args.out,
        encoder=args.encoder,
        metadata=args.metadata,
        index=args.index,
        space=args.space,
        batch_size=args.batch_size,
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
        batch_size=args.batch_size,
    )
    _print_ingest(lib)
    return 0


def _search(args) -> int:
    from brain2music.reconstruct.library import search_library

    table = search_library(args.library, audio=args.audio, k=args.k, encoder=args.encoder)
    if args.json:
        print(to_json(table.to_dict(orient="records")))
    else:
        print(
            table[["query_path", "rank", "score", "title", "artist", "genre", "path"]].to_string(index=False)
        )
    return 0


def register(subparsers) -> None:
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
        q.add_argument("--batch-size", type=int, default=64, help="tracks per committed shard (default 64)")

    b = sub.add_parser("build", help="embed a music folder into a new library (resumes an interrupted build)")
    ingest_options(b, encoder_required=True)
    b.add_argument("--out", required=True, help="library folder to create")
    b.set_defaults(func=_build)

    a = sub.add_parser("add", help="append a music folder to an existing library")
    a.add_argument("library", help="library folder")
    ingest_options(a, encoder_required=False)
    a.set_defaults(func=_add)

    s = sub.add_parser("search", help="top-k library tracks for query audio")
    s.add_argument("library", help="library folder")
    s.add_argument("--audio", required=True, nargs="+", help="query audio file(s)")
    s.add_argument("-k", type=int, default=5, help="number of tracks per query (default 5)")
    s.add_argument("--encoder", default=None, help="encoder of the query (default: the library's)")
    s.add_argument("--json", action="store_true", help="print JSON records")
    s.set_defaults(func=_search)
