"""``brain2music reconstruct``: retrieve and generate music for the predicted embeddings of a results folder."""

from __future__ import annotations


def _run(args) -> int:
    from brain2music.study.reconstruct import reconstruct
    from brain2music.study.table import cell

    options = {}
    for item in args.option or []:
        key, _, value = item.partition("=")
        options[key.strip().replace("-", "_")] = _parse_value(value)
    report = reconstruct(
        args.results,
        args.library,
        args.out,
        generator=None if args.generator == "none" else args.generator,
        generator_options=options,
        method=args.method,
        subjects=args.subjects,
        n_clips=args.n_clips,
        k=args.k,
        best_of=args.best_of,
        duration=args.duration,
        exclude_stimuli=not args.keep_stimuli,
        random_state=args.seed,
        oracle_generation=args.oracle_generation,
        progress=not args.quiet,
    )
    print(
        f"wrote {args.out}/reconstruction.json ({len(report.clips)} clips, encoder {report.encoder}, "
        f"method {report.method} chosen by {report.method_selected_by}, metric space {report.space})"
    )
    for key in (
        "retrieval_id_acc",
        "generation_id_acc",
        "chance_id_acc",
        "oracle_id_acc",
        "oracle_generation_id_acc",
        "retrieval_genre_agreement",
        "generation_genre_agreement",
    ):
        if key in report.summary:
            s = report.summary[key]
            print(f"  {key:28s} {cell(s.mean, s.sd, s.ci)} (n={s.n_subjects})")
    return 0


def _parse_value(value: str):
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(value.lower(), value)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "reconstruct",
        help="retrieve and generate music for the predicted embeddings of a results folder, and evaluate it",
    )
    p.add_argument("results", help="results folder written by `brain2music reproduce`")
    p.add_argument(
        "--library", required=True, help="music library (`brain2music library build`) of the same encoder"
    )
    p.add_argument(
        "--generator",
        default="offline",
        help="offline (default, no weights), mosaic (the library's own recordings, a --coverage full "
        "library), debug, musicldm, musicgen, or none (retrieval only)",
    )
    p.add_argument(
        "--option",
        action="append",
        metavar="KEY=VALUE",
        help="generator option, repeatable (e.g. n_bank=40, n_candidates=4, sr=16000, checkpoint=PATH)",
    )
    p.add_argument("--best-of", type=int, default=1, help="candidates per clip; keep the closest (default 1)")
    p.add_argument(
        "--method",
        default=None,
        help="decoder whose predictions to use (default: the best by training cross-validation)",
    )
    p.add_argument("--subjects", nargs="+", default=None, help="subjects (default: all)")
    p.add_argument("--n-clips", type=int, default=None, help="reconstruct only the first N test clips")
    p.add_argument("-k", type=int, default=5, help="retrieved tracks per clip (default 5)")
    p.add_argument("--duration", type=float, default=15.0, help="seconds of generated audio (default 15)")
    p.add_argument(
        "--keep-stimuli",
        action="store_true",
        help="allow retrieving (and reusing in a mosaic) the test clips' own tracks and recordings",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument(
        "--oracle-generation",
        action="store_true",
        help="also generate from the true embeddings (the generator's ceiling)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=_run)
