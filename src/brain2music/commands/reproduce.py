"""``brain2music reproduce BIDS_ROOT --stimuli DIR --encoders acoustic,clap --out results/``: the paper's Table 2."""

from __future__ import annotations

import argparse

from brain2music.commands._options import add_encoder_options, add_scheduler_option, parse_options


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def register(subparsers) -> None:
    """Add ``brain2music reproduce`` (decoders and the paper's evaluation into a results folder) to ``subparsers``."""
    p = subparsers.add_parser(
        "reproduce",
        help="decode music embeddings from fMRI and evaluate as in Brain2Music (Table 2)",
        description=(
            "Fit decoders (fMRI -> music embedding) and encoding models for every subject and embedding, "
            "evaluate them with the paper's identification accuracy, print a Table-2-like table and write "
            "the results folder (results.json, table2.csv, predictions, decoders, encoding maps)."
        ),
    )
    _add_data_options(p)
    _add_method_options(p)
    _add_execution_options(p)
    p.set_defaults(func=_run)


def _add_data_options(p) -> None:
    """The study's data: BIDS root, stimuli, embeddings, fMRIPrep inputs, mask, subjects."""
    p.add_argument("bids_root", help="BIDS root of a ds003720-like dataset (e.g. SIM/bids)")
    p.add_argument("--stimuli", default=None, help="GTZAN-layout stimulus folder (e.g. SIM/stimuli)")
    p.add_argument(
        "--encoders", type=_csv, default=["acoustic"], help="comma-separated embeddings (default: acoustic)"
    )
    p.add_argument("--out", default=None, help="results folder to write (required unless --check)")
    p.add_argument(
        "--derivatives", default=None, help="folder of the authors' preprocessed arrays (instead of raw BOLD)"
    )
    p.add_argument(
        "--fmriprep", default=None, metavar="DIR",
        help="fMRIPrep output folder to read instead of raw BOLD (e.g. BIDS_ROOT/derivatives/fmriprep); "
        "events still come from BIDS_ROOT",
    )  # fmt: skip
    p.add_argument(
        "--space", default=None,
        help="fMRIPrep output space (default T1w; e.g. MNI152NLin2009cAsym:res-2)",
    )  # fmt: skip
    p.add_argument(
        "--confounds", default=None,
        help="fMRIPrep confounds regressed per run with nilearn's strategies, comma-separated: "
        "motion[:basic|power2|derivatives|full], wm_csf, global_signal, high_pass, scrub[:FD mm], "
        "compcor[:anat_combined|anat_separated|temporal][:N]; none = detrend + z-score only "
        "(default motion,wm_csf,high_pass)",
    )  # fmt: skip
    p.add_argument(
        "--mask", default=None,
        help="voxel mask: a NIfTI on the BOLD grid; with --fmriprep also brain (its brain masks, default) "
        "or cortex (cortical Destrieux voxels of FreeSurfer's aparc.a2009s+aseg)",
    )  # fmt: skip
    p.add_argument(
        "--freesurfer-dir", default=None, metavar="DIR",
        help="FreeSurfer subjects folder (default FMRIPREP/sourcedata/freesurfer)",
    )  # fmt: skip
    p.add_argument("--subjects", nargs="+", default=None, help="only these subjects (e.g. 1 2 or sub-001)")


def _add_method_options(p) -> None:
    """The decoders, their settings, and the evaluation (metric space, bootstrap, leave-one-genre-out)."""
    p.add_argument(
        "--methods",
        type=_csv,
        default=None,
        help="comma-separated decoders among ridge, ensemble, encsel, aligned, krr-rbf (default: all; debug for tests)",
    )
    p.add_argument(
        "--embeddings", nargs="+", default=None, metavar="NAME=FILE",
        help="precomputed embeddings .npz of any name (clip_ids (n,), embeddings (n, r, dim), optionally "
        "window and space; `brain2music embed` writes one), e.g. mulan=mulan.npz; list the name in --encoders",
    )  # fmt: skip
    p.add_argument(
        "--parcels",
        default=None,
        help="parcels of the ensemble: destrieux (each subject's FreeSurfer Destrieux parcels, with "
        "--fmriprep --space T1w), or a label image ({subject} substituted; resampled to the BOLD grid "
        "when on another one) (default: BIDS_ROOT/derivatives/parcels.nii.gz)",
    )
    p.add_argument(
        "--reference", default=None, help="reference subject of the aligned decoder (default: first)"
    )
    p.add_argument("--delay", type=int, default=3, help="hemodynamic shift in volumes (default 3)")
    p.add_argument("--cv", type=int, default=5, help="run-grouped CV folds (default 5)")
    p.add_argument("--n-top-parcels", type=int, default=6, help="parcels kept by the ensemble (default 6)")
    p.add_argument(
        "--encsel-threshold", type=float, default=0.05, help="encoding CV r threshold (default 0.05)"
    )
    p.add_argument(
        "--encsel-top", type=int, default=None, help="keep at most this many encoding-selected voxels"
    )
    p.add_argument(
        "--n-permutations", type=int, default=1000, help="permutations of the encoding test (default 1000)"
    )
    p.add_argument("--no-logo", action="store_true", help="skip leave-one-genre-out")
    p.add_argument(
        "--logo-method",
        default="encsel",
        help="per-subject decoder of leave-one-genre-out (default encsel; refitted without each genre)",
    )
    p.add_argument(
        "--metric-space",
        choices=["paper", "standardized"],
        default=None,
        help="space of every id acc: paper (raw vectors, Eq. 2-3) or standardized (dimensions z-scored with "
        "training statistics); default: each encoder's registered space (acoustic: standardized)",
    )
    p.add_argument(
        "--no-standardize", action="store_true", help=argparse.SUPPRESS
    )  # hidden alias of --metric-space paper
    p.add_argument(
        "--n-bootstrap", type=int, default=1000, help="bootstrap resamples of the 95%% CIs (default 1000)"
    )


def _add_execution_options(p) -> None:
    """Where the study runs: cache, compute backend, scheduler, encoder placement, ``--check``."""
    p.add_argument("--cache-dir", default=None, help="embedding cache folder")
    p.add_argument(
        "--backend", default="numpy",
        help="compute backend of every ridge and encoding model: numpy (default), torch, torch_cuda or cupy "
        "(himalaya's backends; float32 on the device)",
    )  # fmt: skip
    add_scheduler_option(p, runs="subjects, one task each,", threads=True)
    p.add_argument("--workers", type=int, default=None, help="threads / local workers (default: all cores)")
    add_encoder_options(p)
    p.add_argument(
        "--check",
        action="store_true",
        help="only load the checkpoint of every encoder the study computes and report what is missing",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars and no table")


def _run(args: argparse.Namespace) -> int:
    from brain2music.study.reproduce import reproduce
    from brain2music.study.settings import check_reproduce, study_settings

    options = parse_options(args.encoder_option, flag="--encoder-option")
    if args.check:
        from brain2music.checkpoints import print_check

        return print_check(
            check_reproduce(args.encoders, embeddings=args.embeddings, encoder_options=options,
                            device=args.device, dtype=args.dtype)
        )  # fmt: skip
    if args.out is None:
        from brain2music.errors import ConfigError

        raise ConfigError("reproduce: --out (the results folder) is required unless --check is given")
    settings = study_settings(
        args.bids_root, stimuli=args.stimuli, encoders=args.encoders, out=args.out, subjects=args.subjects,
        derivatives=args.derivatives, fmriprep=args.fmriprep, space=args.space, confounds=args.confounds,
        mask=args.mask, freesurfer_dir=args.freesurfer_dir, **({"methods": args.methods} if args.methods else {}),
        embeddings=args.embeddings, parcels=args.parcels, reference=args.reference, delay=args.delay,
        cv=args.cv, n_top_parcels=args.n_top_parcels, encsel_threshold=args.encsel_threshold,
        encsel_top=args.encsel_top, n_permutations=args.n_permutations, logo=not args.no_logo,
        logo_method=args.logo_method, metric_space="paper" if args.no_standardize else args.metric_space,
        n_bootstrap=args.n_bootstrap, cache_dir=args.cache_dir, backend=args.backend, scheduler=args.scheduler,
        workers=args.workers, encoder_options=options, device=args.device, dtype=args.dtype,
    )  # fmt: skip
    reproduce(settings, embeddings=args.embeddings, verbose=not args.quiet)
    return 0
