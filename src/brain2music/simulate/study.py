"""Write a complete simulated study: composed stimuli + simulated brains in the ds003720 layout.

Output (``OUT``)::

    OUT/bids/dataset_description.json, README, task-Training_bold.json, task-Test_bold.json
    OUT/bids/sub-00N/func/sub-00N_task-{Training,Test}_run-NN_{bold.nii.gz,bold.json,events.tsv}
    OUT/bids/derivatives/brain_mask.nii.gz   (the loader's default mask)
    OUT/bids/derivatives/parcels.nii.gz + parcels.tsv (index, name)
    OUT/stimuli/genres/<genre>/<genre>.000NN.wav   (30-s tracks, 22,050 Hz, GTZAN layout)
    OUT/stimuli/metadata.csv                       (what was composed, one row per track)
    OUT/truth/truth.json       config, auditory parcels (core/belt), feature names, EV summaries, file list
    OUT/truth/features.npz     feature_names, slow (bool), genre_factors (10, 4), clip_ids,
                               clip_features (n_clips, n_bins, 49) before the HRF, bin_duration, hrf,
                               feature_mean/feature_std (z-scoring), and per run ``train_run-01`` … /
                               ``test_run-01`` … the run design matrix X_run (n_volumes, n_features)
    OUT/truth/sub-00N.npz      weights (n_features, n_voxels), voxel_indices (flat C-order indices of the
                               mask voxels = the loader's voxel order), parcel, tuned, auditory, ev (target),
                               ev_realized (var(signal) / (var(signal) + var(noise)) over all runs),
                               noise_sd, ar_coef, baseline, scale, psc, pref_freq, pref_rate, slow_share
    OUT/simulation.json        config + version; written last: its presence marks a complete study

The study is built in ``OUT.partial`` and renamed to ``OUT`` at the very end, so an interrupted run never
leaves a dataset at ``OUT`` that looks complete. The noise-free BOLD of a run is
``baseline + scale * (X_run @ weights)``; see :func:`load_truth`.

With ``layout="fmriprep"`` the BOLD goes to ``OUT/bids/derivatives/fmriprep`` instead (preprocessed runs
with simulated head motion, confounds, brain masks, FreeSurfer ``aparc.a2009s+aseg.mgz``; see
:mod:`brain2music.simulate.fmriprep_layout`), ``OUT/bids`` keeps events and sidecars, and the truth adds
each run's head motion (``OUT/truth/sub-00N_motion.npz``).
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from brain2music._io import save_npz, write_json, write_text
from brain2music.data.events import GENRES
from brain2music.errors import ConfigError
from brain2music.simulate.features import map_jobs
from brain2music.simulate.settings import SimulationSettings
from brain2music.simulate.truth import ev_summary, write_truth

__all__ = ["simulate_study"]

TR = 1.5
SR = 22050
TRACK_DURATION = 30.0
BIN_DURATION = 0.5
N_GENRE_FACTORS = 4
N_DRIFT_BASIS = 4

log = logging.getLogger(__name__)


def _track_job(args):
    """Compose, render and write one track (runs in a worker process when n_jobs > 1)."""
    from brain2music.simulate.composer import render, sample_params
    from brain2music.stimuli import write_audio

    genre, track, seed, path = args
    params = sample_params(genre, np.random.default_rng(seed))
    audio = render(params, sr=SR, duration=TRACK_DURATION)
    write_audio(path, audio, SR)
    return params


def _clip_job(args):
    from brain2music.simulate.features import _analyse
    from brain2music.stimuli import load_stimulus

    root, genre, track, start = args
    audio = load_stimulus(root, genre, int(track), float(start), sr=SR)
    return _analyse(audio, SR, BIN_DURATION)


def _run_designs(runs, clip_index, clip_feats, n_bins_clip, hrf, bins_per_tr):
    """Per run: place each presentation's feature bins at its onset, convolve with the HRF, average per TR."""
    from scipy.signal import fftconvolve

    out = {}
    for (split, run), ev in runs.items():
        rows = [clip_feats[clip_index[(g, int(t))]] for g, t in zip(ev.genre, ev.track)]
        series = np.concatenate(rows, axis=0)  # (n_rows * n_bins_clip, n_features)
        conv = fftconvolve(series, hrf[:, None], axes=0)[: series.shape[0]]
        n_vol = series.shape[0] // bins_per_tr
        out[(split, run)] = conv[: n_vol * bins_per_tr].reshape(n_vol, bins_per_tr, -1).mean(axis=1)
    return out


def _composed_stimuli(stim: Path, c: dict, s_design, s_music, progress: bool):
    """Design the study and compose, render and describe its tracks (``stimuli/metadata.csv``)."""
    from brain2music.simulate.design import make_design

    tracks, runs = make_design(
        clips_per_genre=c["clips_per_genre"],
        test_clips_per_genre=c["test_clips_per_genre"],
        train_runs=c["train_runs"],
        test_runs=c["test_runs"],
        test_repeats=c["test_repeats"],
        rng=np.random.default_rng(s_design),
    )
    track_seeds = s_music.generate_state(len(tracks), dtype=np.uint64)
    jobs = [
        (r.genre, int(r.track), int(track_seeds[i]), stim / "genres" / r.genre / f"{r.clip_id}.wav")
        for i, r in enumerate(tracks.itertuples())
    ]
    params = map_jobs(_track_job, jobs, c["n_jobs"], "composing tracks", progress)
    meta = []
    for r, p in zip(tracks.itertuples(), params):
        d = p.to_dict()
        d.update({f"program_{k}": ("" if v is None else v) for k, v in d.pop("instruments").items()})
        meta.append({"clip_id": r.clip_id, "split": r.split, "excerpt_start": r.start, **d})
    write_text(stim / "metadata.csv", pd.DataFrame(meta).to_csv(index=False))
    return tracks, runs


def _music_stimuli(stim: Path, c: dict, rng: np.random.Generator, progress: bool):
    """Design the study over the recordings of ``c["music"]`` and cut its tracks from them."""
    from brain2music.simulate.design import runs_from_tracks
    from brain2music.simulate.music import music_design, write_piece

    tracks, train_order, test_order = music_design(
        c["music"],
        clips_per_genre=c["clips_per_genre"],
        test_clips_per_genre=c["test_clips_per_genre"],
        excerpts_per_track=c["excerpts_per_track"],
        rng=rng,
    )
    n_train, n_test = int((tracks.split == "train").sum()), int((tracks.split == "test").sum())
    for name, runs, n in (("train_runs", c["train_runs"], n_train), ("test_runs", c["test_runs"], n_test)):
        if runs > n:
            raise ConfigError(
                f"{name} (--{name.replace('_', '-')}) must be at most the {n} {name[:-5]} clips cut from "
                f"{c['music']}; got {runs}"
            )
    runs = runs_from_tracks(
        tracks,
        train_order=train_order,
        test_order=test_order,
        train_runs=c["train_runs"],
        test_runs=c["test_runs"],
        test_repeats=c["test_repeats"],
        rng=rng,
    )
    jobs = [
        (r.source, r.source_offset, r.piece_duration, stim / "genres" / r.genre / f"{r.clip_id}.wav", SR)
        for r in tracks.itertuples()
    ]
    map_jobs(write_piece, jobs, c["n_jobs"], "cutting tracks", progress)
    meta = tracks.rename(columns={"start": "excerpt_start"}).drop(columns=["track"])
    write_text(stim / "metadata.csv", meta.to_csv(index=False))
    return tracks[["genre", "track", "clip_id", "split", "start"]], runs


def _write_nifti(path: Path, data: np.ndarray, affine: np.ndarray, *, tr: float | None = None) -> None:
    import nibabel as nib

    from brain2music._io import atomic_path

    img = nib.Nifti1Image(data, affine)
    img.header.set_xyzt_units("mm", "sec")
    if tr is not None:
        img.header["pixdim"][4] = tr
    # nibabel writes .nii.gz deterministically (gzip mtime 0, no file name in the header).
    with atomic_path(path) as tmp:
        nib.save(img, str(tmp))


def simulate_study(
    out: str | os.PathLike,
    settings: SimulationSettings | None = None,
    /,
    *,
    overwrite: bool = False,
    progress: bool = True,
    **options,
) -> Path:
    """Write a simulated study (composed music + simulated fMRI) in the ds003720 layout; return ``out``.

    ``simulate_study(out, settings)`` with a :class:`SimulationSettings`, or ``simulate_study(out,
    **options)`` with its fields as keywords, which builds the same settings.

    Parameters
    ----------
    out : folder to create (see the module docstring for its layout).
    settings : what to simulate (:class:`SimulationSettings`).
    overwrite : replace an existing non-empty ``out`` (only once the new study is complete).
    progress : tqdm progress bars on stderr.

    Raises
    ------
    ConfigError
        For an invalid option (naming it), or a non-empty ``out`` without ``overwrite``.
    """
    if settings is None:
        settings = SimulationSettings.from_options(**options)
    elif options:
        raise ConfigError(
            f"simulate_study(out, settings, ...): options {', '.join(sorted(options))} given beside the "
            "settings; build the settings with them"
        )
    else:
        settings.check()
    return _build_atomically(Path(out), settings.to_config(), overwrite=overwrite, progress=progress)


def _build_atomically(out: Path, config: dict, *, overwrite: bool, progress: bool) -> Path:
    """Build the study in ``OUT.partial`` and rename it to ``out`` once complete (replacing ``out`` only
    with ``overwrite``)."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        if not overwrite:
            raise ConfigError(
                f"{out} exists and is not empty; choose another folder or pass overwrite=True (--overwrite)"
            )
    tmp = out.with_name(out.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        _build(tmp, config, progress)
    except BaseException:
        # Never leave a half-written study behind (a killed process leaves only OUT.partial).
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.exists():
        shutil.rmtree(out) if out.is_dir() else out.unlink()
    os.replace(tmp, out)
    return out


class _Lap:
    """Logs the time of each stage of a build."""

    def __init__(self):
        self.clock = time.perf_counter()

    def __call__(self, stage: str) -> None:
        now = time.perf_counter()
        log.info("%s: %.1f s", stage, now - self.clock)
        self.clock = now


def _build(tmp: Path, config: dict, progress: bool) -> None:
    """Write the whole study into ``tmp`` (see the module docstring), step by step."""
    (tmp / "bids" / "derivatives").mkdir(parents=True)
    (tmp / "truth").mkdir()
    # Independent streams per part, so changing e.g. the number of subjects leaves the music unchanged.
    ss = np.random.SeedSequence(config["seed"])
    s_design, s_music, s_genre, s_atlas, s_subjects = ss.spawn(5)
    # A sixth stream for head motion: the first five (and so every motion-free file) do not change.
    s_motion = ss.spawn(1)[0]
    lap = _Lap()
    tracks, runs = _write_music(tmp, config, s_design, s_music, progress)
    if "music" in config:
        lap(f"cutting {len(tracks)} tracks from the recordings of {config['music']}")
    else:
        lap(f"composing and rendering {len(tracks)} tracks")
    features = _write_features(tmp, config, tracks, runs, s_genre, progress)
    lap("stimulus features and run design matrices")
    atlas = _write_atlas(tmp, config, s_atlas)
    summaries, motion = _write_subjects(
        tmp, config, atlas, runs, features, (s_subjects, s_motion), progress, lap
    )
    write_truth(tmp, config, atlas, features, summaries, motion, tr=TR, sr=SR)


def _write_music(tmp: Path, c: dict, s_design, s_music, progress: bool):
    """1. The presentation design, and the stimuli (composed, or cut from ``c["music"]``) with their
    metadata."""
    stim = tmp / "stimuli"
    for g in GENRES:
        (stim / "genres" / g).mkdir(parents=True, exist_ok=True)
    if "music" in c:
        return _music_stimuli(stim, c, np.random.default_rng(s_design), progress)
    return _composed_stimuli(stim, c, s_design, s_music, progress)


@dataclass
class _Features:
    names: list[str]
    slow: np.ndarray
    designs: dict  # (split, run) -> z-scored design matrix at TR
    cov: np.ndarray


def _write_features(tmp: Path, c: dict, tracks, runs, s_genre, progress: bool) -> _Features:
    """2. Stimulus features, once per unique clip, from the very excerpts the loader produces."""
    from nilearn.glm.first_level import glover_hrf

    from brain2music.simulate.features import FAST_FEATURES, TIMBRE_FACTORS

    stim = tmp / "stimuli"
    jobs = [(stim, r.genre, r.track, r.start) for r in tracks.itertuples()]
    feats = map_jobs(_clip_job, jobs, c["n_jobs"], "stimulus features", progress)
    genre_factors = np.random.default_rng(s_genre).normal(size=(len(GENRES), N_GENRE_FACTORS))
    n_bins_clip = feats[0][0].shape[0]
    clip_feats = np.stack(
        [
            np.concatenate(
                [f, np.repeat(tf[None], n_bins_clip, 0), np.repeat(genre_factors[GENRES.index(g)][None], n_bins_clip, 0)],
                axis=1,
            )
            for (f, tf), g in zip(feats, tracks.genre)
        ]
    ).astype(np.float32)  # fmt: skip
    names = list(FAST_FEATURES) + list(TIMBRE_FACTORS) + [f"genre_factor{k}" for k in range(N_GENRE_FACTORS)]
    slow = np.array([not n.startswith(("rate", "scale", "level")) for n in names])
    hrf = glover_hrf(t_r=BIN_DURATION, oversampling=1, time_length=32.0)
    clip_index = {(r.genre, int(r.track)): i for i, r in enumerate(tracks.itertuples())}
    raw = _run_designs(runs, clip_index, clip_feats, n_bins_clip, hrf, int(round(TR / BIN_DURATION)))
    stacked = np.concatenate(list(raw.values()), axis=0)
    mean, std = stacked.mean(axis=0), stacked.std(axis=0)
    std[std < 1e-8] = 1.0
    designs = {k: ((v - mean) / std).astype(np.float32) for k, v in raw.items()}
    cov = np.cov(np.concatenate(list(designs.values()), axis=0), rowvar=False)
    save_npz(
        tmp / "truth" / "features.npz",
        feature_names=np.array(names), slow=slow, genres=np.array(GENRES), genre_factors=genre_factors,
        clip_ids=tracks.clip_id.to_numpy(dtype=str), clip_features=clip_feats, bin_duration=BIN_DURATION,
        hrf=hrf, feature_mean=mean, feature_std=std,
        **{f"{split}_run-{run:02d}": x for (split, run), x in designs.items()},
    )  # fmt: skip
    return _Features(names, slow, designs, cov)


def _write_atlas(tmp: Path, c: dict, s_atlas):
    """3. Template space: the mask, the parcels and the BIDS dataset descriptions."""
    from brain2music import __version__
    from brain2music.simulate.brain import make_atlas

    atlas = make_atlas(c["n_voxels"], c["n_parcels"], c["n_auditory_parcels"], np.random.default_rng(s_atlas))
    der = tmp / "bids" / "derivatives"
    _write_nifti(der / "brain_mask.nii.gz", atlas.mask.astype(np.uint8), atlas.affine)
    _write_nifti(der / "parcels.nii.gz", atlas.parcels, atlas.affine)
    write_text(
        der / "parcels.tsv", "index\tname\n" + "".join(f"{i + 1}\t{n}\n" for i, n in enumerate(atlas.names))
    )
    generated = [{"Name": "brain2music simulate", "Version": __version__}]
    write_json(
        der / "dataset_description.json",
        {"Name": "brain2music simulated derivatives", "BIDSVersion": "1.4.0", "DatasetType": "derivative",
         "GeneratedBy": generated},
    )  # fmt: skip
    bids = tmp / "bids"
    write_json(
        bids / "dataset_description.json",
        {"Name": "brain2music simulated music-genre fMRI study", "BIDSVersion": "1.4.0", "License": "CC0",
         "Authors": ["brain2music simulate"], "GeneratedBy": generated},
    )  # fmt: skip
    write_text(
        bids / "README",
        "Simulated study written by `brain2music simulate` in the layout of OpenNeuro "
        "ds003720: composed 10-genre music and simulated BOLD responses. Ground truth in ../truth/.\n"
        + (
            "Layout fmriprep: the BOLD is in derivatives/fmriprep (preprocessed runs with head motion, "
            "confounds, brain masks, FreeSurfer segmentation in sourcedata/freesurfer); this folder holds the "
            "events and sidecars only (no raw BOLD images).\n"
            if c.get("layout", "bids") == "fmriprep"
            else ""
        ),
    )
    for task in ("Training", "Test"):
        write_json(bids / f"task-{task}_bold.json", {"TaskName": task, "RepetitionTime": TR})
    return atlas


def _write_subjects(tmp: Path, c: dict, atlas, runs, features: _Features, seeds, progress, lap):
    """4. Subjects, one run at a time (never a whole subject in memory).

    ``seeds`` = (subjects stream, head-motion stream). Returns the EV summaries and, for the fMRIPrep
    layout, the head-motion summaries per subject (else ``{}``).
    """
    from tqdm.auto import tqdm

    from brain2music import __version__
    from brain2music.simulate.brain import make_subject

    s_subjects, s_motion = seeds
    flat = np.flatnonzero(atlas.mask.ravel())
    sub_seeds = s_subjects.spawn(c["n_subjects"])
    motion_seeds = s_motion.spawn(c["n_subjects"])
    summaries, motion_summaries = {}, {}
    writer = None
    if c.get("layout", "bids") == "fmriprep":
        from brain2music.simulate.fmriprep_layout import FmriprepWriter

        writer = FmriprepWriter(tmp / "bids", atlas, TR, __version__)
    bar = tqdm(total=c["n_subjects"] * len(runs), desc="simulating BOLD", disable=not progress, leave=False)
    for s in range(c["n_subjects"]):
        sub = f"sub-{s + 1:03d}"
        rng = np.random.default_rng(sub_seeds[s])
        model = make_subject(
            atlas, features.names, features.slow, features.cov, N_DRIFT_BASIS, rng, snr=c["snr"]
        )
        head = None
        if writer is not None:
            from brain2music.simulate.motion import SubjectMotion

            head = SubjectMotion(flat.size, np.random.default_rng(motion_seeds[s]))
            writer.write_subject(sub)
        func = tmp / "bids" / sub / "func"
        ev_realized = _write_runs(func, sub, atlas, runs, features, model, rng, bar, writer, head)
        auditory = np.isin(atlas.voxel_parcel, atlas.auditory)
        extra = (
            {}
            if head is None
            else head.truth() | {"tissue": writer.anat["tissue"], "aparc_label": writer.anat["label"]}
        )
        save_npz(
            tmp / "truth" / f"{sub}.npz",
            weights=model.weights, voxel_indices=flat, parcel=atlas.voxel_parcel, tuned=model.tuned,
            auditory=auditory, ev=model.ev, ev_realized=ev_realized.astype(np.float32), noise_sd=model.noise_sd,
            ar_coef=model.ar_coef, baseline=model.baseline, scale=model.scale, psc=model.psc,
            pref_freq=model.pref_freq, pref_rate=model.pref_rate, slow_share=model.slow_share, **extra,
        )  # fmt: skip
        if head is not None:
            save_npz(tmp / "truth" / f"{sub}_motion.npz", **head.runs)
            motion_summaries[sub] = head.summary()
        summaries[sub] = ev_summary(ev_realized, model.tuned, auditory)
        del model
        lap(f"{sub}: tuning, {len(runs)} runs of BOLD written")
    bar.close()
    return summaries, motion_summaries


def _write_runs(
    func: Path, sub: str, atlas, runs, features: _Features, model, rng, bar, writer=None, head=None
) -> np.ndarray:
    """Every run of one subject (events, sidecar, BOLD); returns the realised explainable variance per voxel.

    With an fMRIPrep ``writer`` the BOLD (plus ``head``'s motion artifact) goes to the derivatives folder
    and ``func`` keeps the events and sidecars only.
    """
    from brain2music.simulate.brain import simulate_run
    from brain2music.simulate.design import write_events

    func.mkdir(parents=True)
    flat = np.flatnonzero(atlas.mask.ravel())
    # NIfTI stores Fortran order: filling a Fortran-ordered grid saves a full copy per run on writing.
    flat_f = np.ravel_multi_index(np.unravel_index(flat, atlas.mask.shape), atlas.mask.shape, order="F")

    def write_grid(path: Path, data: np.ndarray | None) -> None:
        """Masked data ``(n_volumes, n_voxels)`` (or the mask itself for ``None``) as a NIfTI image."""
        if data is None:
            _write_nifti(path, atlas.mask.astype(np.uint8), atlas.affine)
            return
        grid = np.zeros(atlas.mask.shape + (data.shape[0],), dtype=np.int16, order="F")
        grid.reshape(atlas.mask.size, -1, order="F")[flat_f] = np.clip(np.round(data.T), -32768, 32767)
        _write_nifti(path, grid, atlas.affine, tr=TR)

    sig_ss = np.zeros(flat.size)
    noise_ss = np.zeros(flat.size)
    for (split, run), ev in runs.items():
        task = "Training" if split == "train" else "Test"
        stem = func / f"{sub}_task-{task}_run-{run:02d}"
        write_events(Path(f"{stem}_events.tsv"), ev)
        write_json(Path(f"{stem}_bold.json"), {"TaskName": task, "RepetitionTime": TR})
        bold, signal, noise = simulate_run(model, features.designs[(split, run)], TR, rng)
        sig_ss += ((signal - signal.mean(0)) ** 2).sum(0)
        noise_ss += ((noise - noise.mean(0)) ** 2).sum(0)
        del signal, noise
        if writer is None:
            write_grid(Path(f"{stem}_bold.nii.gz"), bold)
        else:
            motion = head.apply(bold, model.baseline, f"{split}_run-{run:02d}", TR)
            writer.write_run(sub, task, run, bold, motion, write_grid)
        del bold
        bar.update()
    return sig_ss / np.maximum(sig_ss + noise_ss, 1e-12)
