"""``brain2music reconstruct``: retrieve and generate music for the predicted embeddings of a results folder."""

from __future__ import annotations

import argparse

from brain2music.commands._options import add_encoder_options, add_generator_options, parse_options


def _run(args) -> int:
    from brain2music.report.recon import sample_size
    from brain2music.results import KINDS
    from brain2music.results.table import cell
    from brain2music.study.reconstruct import check_reconstruct, reconstruct, reconstruct_settings

    # --option is the old name of --generator-option (kept so existing scripts run).
    options = parse_options((args.option or []) + (args.generator_option or []), flag="--generator-option")
    encoder_options = parse_options(args.encoder_option, flag="--encoder-option")
    generator = None if args.generator == "none" else args.generator
    if args.check:
        from brain2music.checkpoints import print_check

        return print_check(
            check_reconstruct(args.library, generator=generator, generator_options=options,
                              encoder_options=encoder_options, device=args.device, dtype=args.dtype)
        )  # fmt: skip
    if args.out is None:
        from brain2music.errors import ConfigError

        raise ConfigError("reconstruct: --out (the output folder) is required unless --check is given")
    settings = reconstruct_settings(
        args.results, args.library, args.out, generator=generator, generator_options=options,
        encoder_options=encoder_options, device=args.device, dtype=args.dtype, score=args.score,
        method=args.method, subjects=args.subjects, n_clips=args.n_clips, k=args.k, best_of=args.best_of,
        duration=args.duration, exclude_stimuli=not args.keep_stimuli, random_state=args.seed,
        true_embedding_generation=args.true_embedding_generation, n_bootstrap=args.n_bootstrap,
        tag_agreement=not args.no_tag_agreement,
    )  # fmt: skip
    report = reconstruct(settings, progress=not args.quiet)
    print(
        f"wrote {args.out}/reconstruction.json ({len(report.clips)} clips, encoder {report.encoder}, "
        f"method {report.method} chosen by {report.method_selected_by}, metric space {report.space})"
    )
    kinds = KINDS
    for key in (
        *(f"{kind}_{metric}" for metric in ("id_acc", "top1_acc", "top5_acc") for kind in kinds),
        "top1_chance",
        "top5_chance",
        "retrieval_genre_agreement",
        "generation_genre_agreement",
        "selection_score_first_mean",
        "selection_score_mean",
        *(f"{kind}_tag_agreement_{group}" for kind in kinds[:4] for group in ("genre", "instrument", "mood")),
    ):  # fmt: skip
        if key in report.summary:
            s = report.summary[key]
            print(f"  {key:42s} {cell(s.mean, s.sd, s.ci)} ({sample_size(s)})")
    return 0


def register(subparsers) -> None:
    """Add ``brain2music reconstruct`` (retrieval and generation from a results folder, evaluated) to ``subparsers``."""
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
    add_generator_options(p)
    p.add_argument(
        "--option", action="append", default=None, help=argparse.SUPPRESS
    )  # old --generator-option
    add_encoder_options(p)
    p.add_argument(
        "--best-of",
        type=int,
        default=1,
        metavar="N",
        help="generate N candidates per clip and keep the best by --score (default 1: plain generation)",
    )
    p.add_argument(
        "--score",
        choices=["embedding", "encoding"],
        default="embedding",
        help="best-of-N criterion: embedding (cosine to the decoded embedding) or encoding (the subject's "
        "encoding model's predicted response to the candidate vs the measured one); never the true embedding",
    )
    p.add_argument(
        "--check",
        action="store_true",
        help="only load the library's encoder and the generator's checkpoints and report what is missing",
    )
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
        "--n-bootstrap", type=int, default=1000, help="bootstrap resamples of every interval (default 1000)"
    )
    p.add_argument(
        "--true-embedding-generation",
        action="store_true",
        help="also generate from the true embeddings (what the generator makes of a perfect decode)",
    )
    p.add_argument(  # the option's earlier name, kept for existing scripts
        "--oracle-generation", dest="true_embedding_generation", action="store_true", help=argparse.SUPPRESS
    )
    p.add_argument(
        "--no-tag-agreement",
        action="store_true",
        help="skip the class agreement with the musicnn taggers (genres, instruments, moods)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--out", default=None, help="output folder (required unless --check)")
    p.set_defaults(func=_run)
