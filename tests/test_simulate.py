"""The simulated study: layout read by the real loader, design rules, determinism, truth, errors, CLI."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from brain2music.data import GENRES, inspect_dataset, load_subject, read_events
from brain2music.errors import ConfigError, DataFileNotFoundError

SMALL = dict(
    n_subjects=2,
    n_voxels=600,
    seed=3,
    clips_per_genre=2,
    test_clips_per_genre=1,
    train_runs=2,
    test_runs=2,
    test_repeats=3,
    n_parcels=24,
    n_auditory_parcels=4,
)
CLI_ARGS = [
    "--subjects", "2", "--voxels", "600", "--seed", "3", "--clips-per-genre", "2",
    "--test-clips-per-genre", "1", "--train-runs", "2", "--test-runs", "2", "--test-repeats", "3",
    "--parcels", "24", "--auditory-parcels", "4", "--quiet",
]  # fmt: skip


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    """A small study written through the CLI (so the CLI is exercised too)."""
    from brain2music.cli import main

    out = tmp_path_factory.mktemp("sim") / "study"
    assert main(["simulate", str(out), *CLI_ARGS]) == 0
    return out


def _digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_layout_loads_through_the_real_loader(study):
    bids = study / "bids"
    summary = inspect_dataset(bids)
    assert summary["subjects"] == ["sub-001", "sub-002"]
    assert summary["tr"] == 1.5
    assert summary["n_train_clips"] == 20 and summary["n_test_clips"] == 10
    assert summary["n_test_repeats"] == 3
    assert summary["genres"] == {g: {"train": 2, "test": 1} for g in GENRES}
    assert summary["design_identical_across_subjects"]
    sub = load_subject(bids, 1)
    assert sub.train.shape == (20, 10, 600)
    assert sub.test.shape == (10, 3, 10, 600)
    assert sub.info["mask"].endswith("derivatives/brain_mask.nii.gz")
    assert sub.info["n_dropped_voxels"] == 0
    # Every clip of the design has its 30-s track in the GTZAN layout, and the excerpt loader reads it.
    from brain2music.stimuli import load_stimuli, read_audio

    audio = load_stimuli(study / "stimuli", sub.clips.iloc[:3])
    assert audio.shape == (3, 15 * 22050)
    assert np.allclose(np.sqrt((audio**2).mean(axis=1)), 0.1, atol=1e-3)
    track, sr = read_audio(study / "stimuli" / "genres" / "jazz" / "jazz.00000.wav")
    assert sr == 22050 and len(track) == 30 * 22050
    assert (study / "simulation.json").is_file() and not (study.parent / "study.partial").exists()


def test_events_and_images_follow_the_ds003720_rules(study):
    import nibabel as nib

    func = study / "bids" / "sub-001" / "func"
    raw = (func / "sub-001_task-Training_run-01_events.tsv").read_bytes().decode()
    lines = raw.split("\r\n")
    assert lines[0] == "onset\tduration\tgenre\ttrack\tstart\tend"
    assert lines[1].split("\t")[2].startswith("'") and lines[1].split("\t")[2].endswith("'")
    train = [read_events(func / f"sub-001_task-Training_run-{r:02d}_events.tsv") for r in (1, 2)]
    test = [read_events(func / f"sub-001_task-Test_run-{r:02d}_events.tsv") for r in (1, 2)]
    for ev in train + test:
        assert np.array_equal(ev.onset, 15.0 * np.arange(len(ev)))
        assert (ev.duration == 15).all()
        assert ((ev.start >= 0) & (ev.start <= 15)).all()
    # Training row 0 repeats the previous run's last clip; run 1 wraps around to the last run.
    assert train[1].clip_id[0] == train[0].clip_id.iloc[-1]
    assert train[0].clip_id[0] == train[1].clip_id.iloc[-1]
    # Test rows are periodic: row i plays U[i mod n].
    for ev in test:
        n = ev.clip_id.nunique()
        assert len(ev) == 3 * n + 1
        assert all(ev.clip_id[i] == ev.clip_id[i % n] for i in range(len(ev)))
    img = nib.load(str(func / "sub-001_task-Training_run-01_bold.nii.gz"))
    assert img.shape[3] == 10 * len(train[0])
    assert img.get_data_dtype() == np.int16
    parcels = nib.load(str(study / "bids" / "derivatives" / "parcels.nii.gz")).get_fdata()
    mask = nib.load(str(study / "bids" / "derivatives" / "brain_mask.nii.gz")).get_fdata() > 0
    assert mask.sum() == 600
    assert set(np.unique(parcels[mask]).astype(int)) == set(range(1, 25))
    assert (parcels[~mask] == 0).all()
    tsv = (study / "bids" / "derivatives" / "parcels.tsv").read_text().splitlines()
    assert tsv[0] == "index\tname" and len(tsv) == 25


def test_full_design_reports_the_ds003720_numbers(tmp_path):
    """The default design (no rendering needed) gives 480/60/4 and 48/6 per genre through ``inspect``."""
    import nibabel as nib

    from brain2music.simulate.design import make_design, write_events

    _, runs = make_design(
        clips_per_genre=48, test_clips_per_genre=6, train_runs=12, test_runs=6, test_repeats=4,
        rng=np.random.default_rng(0),
    )  # fmt: skip
    func = tmp_path / "sub-001" / "func"
    func.mkdir(parents=True)
    for (split, run), ev in runs.items():
        stem = func / f"sub-001_task-{'Training' if split == 'train' else 'Test'}_run-{run:02d}"
        write_events(Path(f"{stem}_events.tsv"), ev)
        assert len(ev) == 41
        img = nib.Nifti1Image(np.zeros((2, 2, 2, 10 * len(ev)), dtype=np.int16), np.eye(4))
        img.header["pixdim"][4] = 1.5
        nib.save(img, f"{stem}_bold.nii.gz")
    summary = inspect_dataset(tmp_path)
    assert (summary["n_train_clips"], summary["n_test_clips"], summary["n_test_repeats"]) == (480, 60, 4)
    assert summary["genres"] == {g: {"train": 48, "test": 6} for g in GENRES}
    assert all(r["n_volumes"] == 410 for r in summary["per_subject"]["sub-001"]["training_runs"])
    # Genres are balanced within runs (4 of each in a 40-clip training run, 1 of each in a test run).
    counts = runs[("train", 3)].iloc[1:].genre.value_counts()
    assert set(counts) == {4}
    assert set(runs[("test", 2)].iloc[:10].genre.value_counts()) == {1}


def test_same_seed_gives_identical_files(study, tmp_path):
    from brain2music.simulate import simulate_study

    again = simulate_study(tmp_path / "again", **SMALL, progress=False)
    first, second = _digests(study), _digests(again)
    assert first.keys() == second.keys()
    different = [k for k in first if first[k] != second[k]]
    assert different == []
    assert any(k.endswith(".nii.gz") for k in first) and any(k.endswith(".wav") for k in first)


def test_tracks_within_a_genre_are_not_copies(study):
    import pandas as pd

    meta = pd.read_csv(study / "stimuli" / "metadata.csv")
    assert len(meta) == 30 and set(meta.genre) == set(GENRES)
    assert meta.seed.nunique() == 30
    from brain2music.stimuli import read_audio

    for genre in ("rock", "classical"):
        a, _ = read_audio(study / "stimuli" / "genres" / genre / f"{genre}.00000.wav")
        b, _ = read_audio(study / "stimuli" / "genres" / genre / f"{genre}.00001.wav")
        assert abs(np.corrcoef(a, b)[0, 1]) < 0.5
        assert np.sqrt(np.mean(a**2)) > 0.01 and np.sqrt(np.mean(b**2)) > 0.01


def test_noise_free_responses_are_predictable_and_noisy_ones_are_not(study):
    """OLS of a voxel's response on its own tuning features: R² = 1 without noise; noisy R² tracks the EV."""
    import nibabel as nib
    from scipy.stats import spearmanr

    from brain2music.simulate import load_truth

    truth = load_truth(study)
    sub = truth.subject(1)
    mask = nib.load(str(study / "bids" / "derivatives" / "brain_mask.nii.gz")).get_fdata() > 0
    assert np.array_equal(sub["voxel_indices"], np.flatnonzero(mask.ravel()))
    runs = [("train", 1), ("train", 2), ("test", 1), ("test", 2)]
    X = np.concatenate([truth.design(s, r) for s, r in runs])
    clean = np.concatenate([truth.noise_free(1, s, r) for s, r in runs])
    func = study / "bids" / "sub-001" / "func"
    noisy = []
    for s, r in runs:
        task = "Training" if s == "train" else "Test"
        data = nib.load(str(func / f"sub-001_task-{task}_run-{r:02d}_bold.nii.gz")).get_fdata()
        noisy.append(data[mask].T - data[mask].T.mean(axis=0))  # centred per run
    noisy = np.concatenate(noisy)

    def r2(Y, X=X):
        design = np.column_stack([np.ones(len(X)), X])
        coef, *_ = np.linalg.lstsq(design, Y, rcond=None)
        resid = Y - design @ coef
        return 1 - resid.var(axis=0) / np.maximum(Y.var(axis=0), 1e-12)

    tuned = sub["tuned"]
    assert tuned.sum() >= 10
    assert np.allclose(r2(clean[:, tuned]), 1.0, atol=1e-5)
    assert np.allclose(clean[:, ~tuned], 0.0)
    r2_noisy = r2(noisy)
    assert r2_noisy[tuned].max() < 0.95
    assert spearmanr(r2_noisy[tuned], sub["ev_realized"][tuned]).statistic > 0.6
    assert r2_noisy[tuned].mean() > r2_noisy[~tuned].mean() + 0.05
    # With the voxel's true tuning (no fitting), corr(noisy, clean)² equals the realized explainable
    # variance var(s) / (var(s) + var(n)) up to the sample correlation of signal and noise.
    centred = np.concatenate([truth.noise_free(1, s, r) - truth.noise_free(1, s, r).mean(0) for s, r in runs])
    corr = [np.corrcoef(noisy[:, v], centred[:, v])[0, 1] for v in np.flatnonzero(tuned)]
    err = np.abs(np.square(corr) - sub["ev_realized"][tuned])
    assert np.median(err) < 0.03 and err.max() < 0.15
    # Tuned voxels lie in the auditory parcels named by the truth; the noise-free BOLD is in scanner units.
    assert set(np.unique(sub["parcel"][tuned])) <= set(truth.info["auditory_parcels"])
    bold = truth.noise_free(1, "test", 1, units="bold")
    assert np.allclose(bold.mean(axis=0)[~tuned], sub["baseline"][~tuned])


def test_explainable_variance_is_realistic(study):
    """Tuned voxels mostly in 0.05–0.5, none elsewhere (the default difficulty)."""
    from brain2music.simulate import load_truth

    truth = load_truth(study)
    for s in (1, 2):
        sub = truth.subject(s)
        ev = sub["ev_realized"]
        tuned = sub["tuned"]
        assert np.median(ev[tuned]) > 0.05 and np.median(ev[tuned]) < 0.5
        assert np.mean((ev[tuned] > 0.02) & (ev[tuned] < 0.6)) > 0.7
        assert (ev[~tuned] == 0).all()
    # Subjects differ voxel for voxel (own tuning), though the template grid is shared.
    a, b = truth.subject(1), truth.subject(2)
    assert not np.array_equal(a["tuned"], b["tuned"])
    both = a["tuned"] & b["tuned"]
    if both.sum() > 5:
        corr = [np.corrcoef(a["weights"][:, v], b["weights"][:, v])[0, 1] for v in np.flatnonzero(both)]
        assert np.mean(corr) < 0.9


def test_bad_options_raise_config_errors(tmp_path):
    from brain2music.simulate import simulate_study

    with pytest.raises(ConfigError, match="n_subjects"):
        simulate_study(tmp_path / "a", n_subjects=0)
    with pytest.raises(ConfigError, match="n_voxels .*n_parcels"):
        simulate_study(tmp_path / "a", n_voxels=10, n_parcels=150)
    with pytest.raises(ConfigError, match="train_runs"):
        simulate_study(tmp_path / "a", clips_per_genre=1, train_runs=11)
    full = tmp_path / "full"
    full.mkdir()
    (full / "x.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="not empty"):
        simulate_study(full)
    assert (full / "x.txt").read_text() == "keep me"
    with pytest.raises(DataFileNotFoundError, match="simulation.json"):
        from brain2music.simulate import load_truth

        load_truth(full)


def _fake_track(args):
    """A quick stand-in for composing + rendering (a chord of sines whose pitch depends on the track)."""
    from brain2music.simulate.composer import sample_params
    from brain2music.stimuli import write_audio

    genre, track, seed, path = args
    t = np.arange(30 * 22050) / 22050
    write_audio(path, 0.3 * np.sin(2 * np.pi * (220 + 10 * track + 30 * GENRES.index(genre)) * t), 22050)
    return sample_params(genre, np.random.default_rng(seed))


def test_an_interrupted_run_leaves_no_dataset(tmp_path, monkeypatch):
    import brain2music.simulate.brain as brain
    import brain2music.simulate.study as study_mod
    from brain2music.simulate import simulate_study

    real_run, calls = brain.simulate_run, []

    def interrupted_after_one_run(*args, **kwargs):
        calls.append(1)
        if len(calls) > 1:
            raise KeyboardInterrupt
        return real_run(*args, **kwargs)

    monkeypatch.setattr(study_mod, "_track_job", _fake_track)
    monkeypatch.setattr(brain, "simulate_run", interrupted_after_one_run)
    with pytest.raises(KeyboardInterrupt):
        simulate_study(tmp_path / "out", **SMALL, progress=False)
    assert len(calls) == 2
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()
    # With --overwrite, the old study survives a failed rewrite.
    old = tmp_path / "old"
    old.mkdir()
    (old / "simulation.json").write_text("{}")
    with pytest.raises(KeyboardInterrupt):
        simulate_study(old, **SMALL, overwrite=True, progress=False)
    assert (old / "simulation.json").read_text() == "{}"
    # And once nothing fails, overwrite replaces it with a complete study.
    monkeypatch.setattr(brain, "simulate_run", real_run)
    simulate_study(old, **SMALL, overwrite=True, progress=False)
    assert (old / "bids" / "derivatives" / "brain_mask.nii.gz").is_file()
    assert '"complete": true' in (old / "simulation.json").read_text()


def test_cli_reports_bad_options(tmp_path, capsys):
    from brain2music.cli import main

    assert main(["simulate", str(tmp_path / "x"), "--subjects", "0"]) == 2
    err = capsys.readouterr().err
    assert "brain2music simulate: error:" in err and "--subjects" in err
    assert main(["simulate", str(tmp_path / "x"), "--voxels", "100"]) == 2
    assert "--voxels" in capsys.readouterr().err


def test_parallel_jobs_write_the_same_study(study, tmp_path):
    """n_jobs only changes the speed: worker processes write the same files as one process.

    Runs after this process has rendered with FluidSynth (the ``study`` fixture): forked workers would
    deadlock in their first FluidSynth call, spawned ones do not.
    """
    from brain2music.simulate import simulate_study

    tiny = dict(SMALL, n_subjects=1, clips_per_genre=1, train_runs=1, test_runs=1)
    one = simulate_study(tmp_path / "one", **tiny, n_jobs=1, progress=False)
    two = simulate_study(tmp_path / "two", **tiny, n_jobs=2, progress=False)
    a, b = _digests(one), _digests(two)
    assert a.keys() == b.keys()
    assert [k for k in a if a[k] != b[k]] == ["simulation.json", "truth/truth.json"]  # they record n_jobs


def test_noise_free_clips_line_up_with_the_loader(study):
    """The truth's clip responses follow the loader's clip order; noisy test means correlate with them
    where voxels are tuned and not elsewhere."""
    from brain2music.simulate import load_truth

    truth = load_truth(study)
    clean = truth.noise_free_clips(1)
    sub = load_subject(study / "bids", 1)
    assert clean["train"].shape == sub.train.shape and clean["test"].shape == sub.test_mean.shape
    assert list(clean["clips"].clip_id) == list(sub.clips.clip_id)
    tuned = truth.subject(1)["tuned"]
    noisy, ref = sub.test_mean.reshape(-1, sub.n_voxels), clean["test"].reshape(-1, sub.n_voxels)
    corr = np.array([np.corrcoef(noisy[:, v], ref[:, v])[0, 1] for v in np.flatnonzero(tuned)])
    assert np.median(corr) > 0.3
    rng = np.random.default_rng(0)
    fake = ref[:, rng.choice(np.flatnonzero(tuned), size=(~tuned).sum())]  # tuned signals, untuned data
    null = [np.corrcoef(noisy[:, v], fake[:, k])[0, 1] for k, v in enumerate(np.flatnonzero(~tuned))]
    assert abs(np.median(null)) < 0.1


# --------------------------------------------------------------------------- layout fmriprep (head motion)
@pytest.fixture(scope="module")
def study_fp(tmp_path_factory) -> Path:
    """The ``study`` (same options and seed) written as fMRIPrep derivatives with head motion."""
    from brain2music.simulate import simulate_study

    return simulate_study(
        tmp_path_factory.mktemp("simfp") / "study", **SMALL, layout="fmriprep", progress=False
    )


def _fmriprep(study_fp: Path) -> Path:
    return study_fp / "bids" / "derivatives" / "fmriprep"


def test_fmriprep_layout_is_the_same_study_plus_head_motion(study, study_fp):
    import nibabel as nib

    from brain2music.data import inspect_fmriprep
    from brain2music.simulate import load_truth

    fp = _fmriprep(study_fp)
    files = {str(p.relative_to(fp)) for p in fp.rglob("*") if p.is_file()}
    stem = "sub-002/func/sub-002_task-Test_run-02"
    assert {
        f"{stem}_space-T1w_desc-preproc_bold.nii.gz", f"{stem}_space-T1w_desc-preproc_bold.json",
        f"{stem}_space-T1w_desc-brain_mask.nii.gz", f"{stem}_desc-confounds_timeseries.tsv",
        f"{stem}_desc-confounds_timeseries.json", "sourcedata/freesurfer/sub-002/mri/aparc.a2009s+aseg.mgz",
    } <= files  # fmt: skip
    assert not list((study_fp / "bids" / "sub-001" / "func").glob("*_bold.nii*"))  # events and sidecars only
    # Same music, same events.
    d_bids, d_fp = _digests(study), _digests(study_fp)
    same = [k for k in d_bids if k.startswith(("stimuli/", "bids/sub-")) and not k.endswith(".nii.gz")]
    assert same and all(d_bids[k] == d_fp[k] for k in same)
    # Preprocessed BOLD = the motion-free BOLD + the recorded motion artifact (up to int16 rounding).
    truth = load_truth(study_fp)
    raw = nib.load(str(study / "bids" / "sub-002/func/sub-002_task-Test_run-02_bold.nii.gz"))
    pre = nib.load(str(fp / f"{stem}_space-T1w_desc-preproc_bold.nii.gz"))
    assert np.allclose(raw.affine, pre.affine)
    idx = truth.subject(2)["voxel_indices"]
    flat = lambda img: np.asarray(img.dataobj, dtype=np.float32).reshape(-1, img.shape[3])[idx].T  # noqa: E731
    diff = flat(pre) - flat(raw) - truth.motion_artifact(2, "test", 2)
    assert np.abs(diff).max() <= 1.0 + 1e-3 and np.abs(truth.motion_artifact(2, "test", 2)).max() > 2
    summary = inspect_fmriprep(fp)
    assert summary["problems"] == [] and summary["per_subject"]["sub-001"]["spaces"] == {"T1w": 4}
    cols = summary["per_subject"]["sub-001"]["runs"][0]["confound_columns"]
    assert cols["motion"] == 24 and cols["white_matter"] == cols["csf"] == cols["global_signal"] == 4
    assert cols["cosine"] >= 1 and cols["a_comp_cor"] >= 1 and cols["framewise_displacement"] == 1
    assert truth.info["layout"] == "fmriprep" and set(truth.info["motion"]) == {"sub-001", "sub-002"}


def test_aparc_carries_auditory_destrieux_labels(study_fp):
    import nibabel as nib

    from brain2music.data.parcels import destrieux_labels, destrieux_names
    from brain2music.simulate import load_truth

    fp = _fmriprep(study_fp)
    truth = load_truth(study_fp)
    sub = truth.subject(1)
    bold = nib.load(str(next(fp.rglob("sub-001_task-Training_run-01_space-T1w_desc-preproc_bold.nii.gz"))))
    labels = destrieux_labels(fp / "sourcedata/freesurfer/sub-001/mri/aparc.a2009s+aseg.mgz", bold)
    on_voxels = labels.ravel()[sub["voxel_indices"]]
    # Nearest-neighbour resampling gives back exactly the labels of the simulated anatomy.
    expect = np.where(sub["aparc_label"] > 11100, sub["aparc_label"], 0)
    np.testing.assert_array_equal(on_voxels, expect)
    auditory = np.isin(sub["parcel"], truth.info["auditory_parcels"])
    names = destrieux_names()
    aud_names = {names[v].split("_", 2)[2] for v in np.unique(on_voxels[auditory])}
    assert aud_names <= {"G_temp_sup-G_T_transv", "S_temporal_transverse", "G_temp_sup-Plan_tempo",
                         "G_temp_sup-Lateral", "G_temp_sup-Plan_polar", "S_temporal_sup"}  # fmt: skip
    assert "G_temp_sup-G_T_transv" in aud_names and (on_voxels[auditory] > 0).all()
    assert not np.isin(on_voxels[~auditory], [v for v in np.unique(on_voxels[auditory])]).any()
    assert (sub["tissue"] == 1).any() and (sub["tissue"] == 2).any()


def _corr(a, b):
    a = (a - a.mean(0)) / a.std(0)
    b = (b - b.mean(0)) / b.std(0)
    return a.T @ b / len(a)


def _r2(x, m):
    """Share of each voxel's variance explained by the six motion traces ``m`` (least squares)."""
    x = x - x.mean(0)
    m = m - m.mean(0)
    return 1 - ((x - m @ np.linalg.lstsq(m, x, rcond=None)[0]) ** 2).sum(0) / (x**2).sum(0)


def test_after_regression_voxels_no_longer_correlate_with_head_motion(study_fp):
    """Mean (over voxels) variance explained by each run's own motion traces, against chance: the same
    traces time-reversed or circularly shifted (same smoothness, no alignment with the data; 20 nulls)."""
    from brain2music.data import plan_subject
    from brain2music.data.confounds import clean_run, load_run_confounds
    from brain2music.data.fmriprep import subject_mask
    from brain2music.data.preprocess import read_masked_run
    from brain2music.simulate import load_truth

    truth = load_truth(study_fp)
    result = {}
    for conf in ("none", "motion"):
        own, nulls = [], []
        for subject in (1, 2):
            plan = plan_subject(_fmriprep(study_fp), subject, confounds=conf)
            mask, _ = subject_mask(plan, None)
            for (ev, f), n in zip(plan.runs, plan.n_volumes):
                c, kept = None, None
                if plan.strategy.enabled:
                    c, kept, _ = load_run_confounds(f.bold, plan.strategy, n_volumes=n, tsv=f.confounds)
                x = clean_run(read_masked_run(f.bold, mask), tr=plan.tr, confounds=c, sample_mask=kept)
                m = truth.motion(subject, ev.split, ev.run)
                own.append(_r2(x, m).mean())
                shifts = np.linspace(n // 5, n - n // 5, 19).astype(int)
                nulls.append(
                    [_r2(x, m[::-1]).mean()] + [_r2(x, np.roll(m, k, axis=0)).mean() for k in shifts]
                )
        result[conf] = (float(np.mean(own)), np.mean(nulls, axis=0))
    own, null = result["none"]
    assert own > null.max()  # the artifact: above every null (p < 0.05)
    own, null = result["motion"]
    assert own <= np.median(null)  # after regression: not above chance


def test_encoding_r_returns_toward_the_motion_free_study(study_fp, tmp_path):
    """Voxel-wise encoding test r (true stimulus features) on the motion study vs the same study without
    the motion artifact, analysed the same way: regression removes the artifact's effect on r."""
    import shutil

    import nibabel as nib

    from brain2music.data import load_fmriprep
    from brain2music.models import EncodingModel
    from brain2music.simulate import load_truth

    truth = load_truth(study_fp)
    free = tmp_path / "free"
    shutil.copytree(_fmriprep(study_fp), free)
    for path in free.rglob("*_desc-preproc_bold.nii.gz"):
        sub, split = path.name[:7], "train" if "Training" in path.name else "test"
        img = nib.load(str(path))
        data = np.ascontiguousarray(np.asarray(img.dataobj, dtype=np.float32))
        flat = data.reshape(-1, data.shape[3])
        flat[truth.subject(sub)["voxel_indices"]] -= truth.motion_artifact(
            sub, split, int(path.name.split("_run-")[1][:2])
        ).T
        nib.save(nib.Nifti1Image(np.round(data).astype(np.int16), img.affine, img.header), str(path))
    feats = truth.features["clip_features"]
    ids = list(truth.features["clip_ids"])
    emb = feats.reshape(feats.shape[0], 10, 3, feats.shape[2]).mean(axis=2)  # 0.5-s bins -> 1.5-s windows

    def test_r(folder, conf, subject):
        sub = load_fmriprep(folder, subject, bids_root=study_fp / "bids", confounds=conf)
        tr_i = [ids.index(c) for c in sub.train_clips.clip_id]
        te_i = [ids.index(c) for c in sub.test_clips.clip_id]
        model = EncodingModel(1.5, base_delay=sub.delay, cv=2).fit(emb[tr_i], sub.train, sub.train_runs)
        pred = model.predict(emb[te_i], sub.train.shape[1]).reshape(-1, sub.n_voxels)
        return _corr(pred, sub.test_mean.reshape(-1, sub.n_voxels)).diagonal()

    gaps = {}
    for conf in ("none", "motion"):
        gaps[conf] = np.mean(
            [
                np.abs(test_r(_fmriprep(study_fp), conf, s) - test_r(free, conf, s))[
                    truth.subject(s)["tuned"]
                ].mean()
                for s in (1, 2)
            ]
        )
    assert gaps["motion"] < 0.5 * gaps["none"]


def test_motion_statistics_are_those_of_cooperative_adults():
    from brain2music.simulate.motion import motion_summary, simulate_motion, subject_motion_scale

    rng = np.random.default_rng(0)
    runs = [
        motion_summary(simulate_motion(410, 1.5, rng, scale=subject_motion_scale(rng))) for _ in range(300)
    ]
    fd = np.array([r["fd_mean"] for r in runs])
    disp = np.array([r["max_displacement"] for r in runs])
    # Published: mean FD 0.14 ± 0.04 mm (low-motion healthy adults), max displacement 0.78 ± 0.36 mm per
    # task run (young adults); see brain2music.simulate.motion.
    assert 0.10 < fd.mean() < 0.16 and 0.02 < fd.std() < 0.07
    assert 0.6 < disp.mean() < 1.0 and 0.15 < disp.std() < 0.5
    assert np.mean([r["n_fd_over_0.5"] for r in runs]) < 3  # a handful of jumps per 10-min run
