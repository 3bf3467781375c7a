"""``brain2music simulate OUT``: write a simulated study (composed music + simulated fMRI) like ds003720."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    """Add ``brain2music simulate`` (a simulated study in the ds003720 or fMRIPrep layout) to ``subparsers``."""
    p = subparsers.add_parser(
        "simulate",
        help="write a simulated study (composed 10-genre music + simulated brains) in the ds003720 layout",
        description=(
            "Write OUT/bids (BIDS like ds003720), OUT/stimuli (30-s tracks in the GTZAN layout + metadata.csv) "
            "and OUT/truth (noise-free responses, voxel tuning, noise, explainable variance). "
            "Defaults: the full ds003720 design (48 + 6 clips per genre, 12 training and 6 test runs, "
            "4 test repeats) with 2 subjects of 5,000 voxels."
        ),
    )
    p.add_argument("out", help="output folder (must not exist or be empty, unless --overwrite)")
    p.add_argument("--subjects", type=int, default=2, help="number of subjects (default 2)")
    p.add_argument(
        "--voxels", type=int, default=5000, help="voxels per subject (default 5000; full size 60000)"
    )
    p.add_argument("--seed", type=int, default=0, help="random seed; same seed, same files (default 0)")
    p.add_argument("--clips-per-genre", type=int, default=48, help="training tracks per genre (default 48)")
    p.add_argument("--test-clips-per-genre", type=int, default=6, help="test tracks per genre (default 6)")
    p.add_argument("--train-runs", type=int, default=12, help="training runs (default 12)")
    p.add_argument("--test-runs", type=int, default=6, help="test runs (default 6)")
    p.add_argument("--test-repeats", type=int, default=4, help="presentations of every test clip (default 4)")
    p.add_argument("--parcels", type=int, default=150, help="parcels in the label image (default 150)")
    p.add_argument(
        "--auditory-parcels", type=int, default=10, help="parcels holding tuned voxels (default 10)"
    )
    p.add_argument(
        "--snr", type=float, default=1.0, help="signal-to-noise multiplier (default 1 = realistic)"
    )
    p.add_argument("--jobs", type=int, default=1, help="processes for rendering and features (default 1)")
    p.add_argument(
        "--layout",
        choices=["bids", "fmriprep"],
        default="bids",
        help="bids: raw BOLD without head motion (default); fmriprep: the same study with simulated head "
        "motion written as fMRIPrep derivatives (confounds, brain masks, FreeSurfer Destrieux segmentation)",
    )
    p.add_argument(
        "--music",
        metavar="DIR",
        default=None,
        help="cut the stimuli from the real recordings in DIR (one subfolder per genre, e.g. DIR/rock/*.ogg) "
        "instead of composing them; --clips-per-genre caps the training and --test-clips-per-genre counts "
        "the test recordings per genre",
    )
    p.add_argument(
        "--excerpts-per-track",
        type=int,
        default=1,
        help="with --music: 30-s pieces cut from each training recording (default 1)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace OUT once the new study is complete")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from brain2music.simulate import SimulationSettings, simulate_study

    settings = SimulationSettings.from_options(
        n_subjects=args.subjects, n_voxels=args.voxels, seed=args.seed, clips_per_genre=args.clips_per_genre,
        test_clips_per_genre=args.test_clips_per_genre, train_runs=args.train_runs, test_runs=args.test_runs,
        test_repeats=args.test_repeats, n_parcels=args.parcels, n_auditory_parcels=args.auditory_parcels,
        snr=args.snr, n_jobs=args.jobs, layout=args.layout, music=args.music,
        excerpts_per_track=args.excerpts_per_track,
    )  # fmt: skip
    out = simulate_study(args.out, settings, overwrite=args.overwrite, progress=not args.quiet)
    print(out)
    return 0
