"""fMRIPrep derivatives: run discovery per space (ses-, res-), confound regression, Destrieux parcels,
inspect, bad input — on trees the tests write with the real ds003720 events."""

from __future__ import annotations

import json
import shutil
import warnings

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from brain2music.cli import main
from brain2music.data import (
    ConfoundStrategy,
    clean_run,
    find_fmriprep_runs,
    inspect_fmriprep,
    load_fmriprep,
    load_subject,
)
from brain2music.data.fmriprep import resolve_space
from brain2music.data.parcels import destrieux_names, labels_on_grid
from brain2music.errors import ConfigError, DataError, DataFileNotFoundError, NoMotionCorrectionWarning
from conftest import confounds_frame, make_bids_tree, make_fmriprep_tree, write_aparc

T1 = ("space-T1w", (3, 3, 2), np.diag([2.0, 2.0, 2.0, 1.0]))
MNI_AFFINE = np.array([[2.0, 0, 0, -3.0], [0, 2.0, 0, -5.0], [0, 0, 2.0, -1.0], [0, 0, 0, 1.0]])
MNI = ("space-MNI152NLin2009cAsym_res-2", (4, 4, 3), MNI_AFFINE)
# Real ds003720 runs, a subset to keep the tests fast: 40 training clips per run, 10 test clips x 4.
RUNS = {("train", 1), ("train", 2), ("train", 3), ("train", 4), ("test", 1), ("test", 2)}
FEW_RUNS = {("train", 1), ("train", 2), ("train", 3), ("test", 1)}


def _motion(split, run, n):
    rng = np.random.default_rng(100 * (split == "test") + run)
    walk = np.cumsum(rng.normal(0, 0.02, size=(n, 6)), axis=0)
    walk[:, 3:] /= 50.0
    return walk - walk[0]


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """Two spaces (T1w, MNI 2 mm), sessions ses-1 (training runs 1-2) / ses-2, noise BOLD."""
    return make_fmriprep_tree(
        tmp_path_factory.mktemp("fp") / "bids", spaces=(T1, MNI), sessions=True, runs=RUNS
    )


def _copy(tree, tmp_path):
    root = tmp_path / "bids"
    shutil.copytree(tree, root)
    return root, root / "derivatives" / "fmriprep"


def test_runs_per_space_with_sessions_and_resolution(tree):
    fp = tree / "derivatives" / "fmriprep"
    spaces = find_fmriprep_runs(fp, 1)
    assert list(spaces) == ["MNI152NLin2009cAsym:res-2", "T1w"]
    assert all(len(v) == 6 for v in spaces.values())
    run = spaces["T1w"][0]
    assert run.session in ("ses-1", "ses-2") and run.mask is not None and run.confounds is not None
    assert run.confounds.name.endswith("_desc-confounds_timeseries.tsv")
    for name in ("MNI152NLin2009cAsym", "MNI152NLin2009cAsym_res-2", "space-MNI152NLin2009cAsym:res-2"):
        assert resolve_space(spaces, name, where="x") == "MNI152NLin2009cAsym:res-2"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no raw-BIDS motion warning on the fMRIPrep path
        sub = load_fmriprep(fp, "sub-001", space="MNI152NLin2009cAsym", confounds="motion,wm_csf,high_pass")
    assert sub.train.shape == (160, 10, 48) and sub.test.shape == (20, 4, 10, 48)
    assert sub.train.dtype == np.float32 and np.isfinite(sub.train).all()
    assert sub.info["space"] == "MNI152NLin2009cAsym:res-2" and sub.info["source"] == "fmriprep"
    # Sessions: training runs of ses-1 then ses-2 numbered 1..4 for the design (CV groups).
    assert sorted(set(sub.train_runs)) == [1, 2, 3, 4]
    assert [r["run"] for r in sub.info["runs"]][:3] == [
        "sub-001_ses-1_task-Training_run-01",
        "sub-001_ses-1_task-Training_run-02",
        "sub-001_ses-2_task-Training_run-03",
    ]
    assert [r["n_regressors"] for r in sub.info["runs"]] == [24 + 2 + 8] * 6  # motion full, wm_csf, 8 cosines


def _known_answer_trees(tmp_path):
    """Same voxel data with and without a motion artifact B @ motion(t) (B known)."""
    rng = np.random.default_rng(7)
    loadings = rng.normal(0, 2.0, size=(6, 18))

    def clean(split, run, n, shape):
        r = np.random.default_rng(1000 * (split == "test") + run)
        return (100 + r.normal(size=(n,) + (int(np.prod(shape)),))).T.reshape(shape + (n,))

    def moved(split, run, n, shape):
        mm = _motion(split, run, n) * [1, 1, 1, 50, 50, 50]
        return clean(split, run, n, shape) + (mm @ loadings).T.reshape(shape + (n,))

    a = make_fmriprep_tree(tmp_path / "clean", signal=clean, motion=_motion, runs=FEW_RUNS)
    b = make_fmriprep_tree(tmp_path / "moved", signal=moved, motion=_motion, runs=FEW_RUNS)
    return a / "derivatives" / "fmriprep", b / "derivatives" / "fmriprep"


def test_motion_regression_recovers_the_motion_free_responses(tmp_path):
    clean_fp, moved_fp = _known_answer_trees(tmp_path)
    kw = dict(detrend_window=None, confounds="motion:basic")
    ref = load_fmriprep(clean_fp, 1, **kw)
    got = load_fmriprep(moved_fp, 1, **kw)
    # Projection is linear: regressing the six parameters out of (data + B @ motion) gives exactly what it
    # gives on the data alone.
    np.testing.assert_allclose(got.train, ref.train, atol=2e-4)
    np.testing.assert_allclose(got.test, ref.test, atol=2e-4)
    raw = load_fmriprep(moved_fp, 1, detrend_window=None, confounds="none")
    assert np.abs(raw.train - ref.train).mean() > 0.1
    # The regression comes before the (nonlinear) 240-s median detrend, so the match stays exact with it.
    d_ref = load_fmriprep(clean_fp, 1, confounds="motion:basic")
    d_got = load_fmriprep(moved_fp, 1, confounds="motion:basic")
    np.testing.assert_allclose(d_got.train, d_ref.train, atol=2e-4)
    assert np.abs(load_fmriprep(moved_fp, 1, confounds="none").train - d_ref.train).mean() > 0.1


def test_scrubbed_volumes_are_interpolated_and_excluded_from_the_fit():
    rng = np.random.default_rng(0)
    data = rng.normal(size=(60, 4)).astype(np.float32)
    conf = rng.normal(size=(60, 2))
    kept = np.setdiff1d(np.arange(60), [0, 20, 21, 59])
    out = clean_run(data, tr=1.5, confounds=conf, sample_mask=kept, detrend_window=None)
    # Reference: least squares on the kept volumes (with an intercept via z-scored confounds), residuals
    # z-scored over the kept volumes.
    x = np.column_stack([np.ones(kept.size), conf[kept]])
    res = data[kept] - x @ np.linalg.lstsq(x, data[kept], rcond=None)[0]
    res = (res - res.mean(0)) / res.std(0)
    np.testing.assert_allclose(out[kept], res, atol=1e-4)
    np.testing.assert_allclose(
        out[[20, 21]], [out[19] + (out[22] - out[19]) / 3, out[19] + 2 * (out[22] - out[19]) / 3], atol=1e-5
    )
    np.testing.assert_allclose(out[0], out[1])
    np.testing.assert_allclose(out[59], out[58])


def test_scrub_counts_censored_volumes(tmp_path):
    def jumpy(split, run, n):
        m = _motion(split, run, n)
        if split == "train" and run == 3:
            m[200:, 2] += 0.8  # a 0.8-mm jump at volume 200
        return m

    fp = make_fmriprep_tree(tmp_path / "b", motion=jumpy, runs=FEW_RUNS) / "derivatives" / "fmriprep"
    sub = load_fmriprep(fp, 1, confounds="motion:basic,scrub:0.5")
    censored = {r["run"]: r["n_censored"] for r in sub.info["runs"]}
    # The jump volume and the segment shorter than 5 volumes around it are censored (nilearn's scrub=5).
    assert censored["sub-001_task-Training_run-03"] >= 1
    assert sum(censored.values()) == censored["sub-001_task-Training_run-03"]
    assert sub.info["confounds"] == "motion:basic,scrub:0.5"


def test_confound_strategy_text():
    s = ConfoundStrategy.parse("motion,wm_csf,high_pass")
    assert s.describe() == "motion:full,wm_csf:basic,high_pass"
    assert s.nilearn_kwargs()["strategy"] == ("motion", "wm_csf", "high_pass")
    assert (
        ConfoundStrategy.parse("none").enabled is False and ConfoundStrategy.parse(None).describe() == "none"
    )
    s = ConfoundStrategy.parse("motion:derivatives, scrub:0.3, compcor:temporal:4, high_pass")
    assert (s.motion, s.fd_threshold, s.compcor, s.n_compcor) == ("derivatives", 0.3, "temporal", 4)
    assert "trans_x_derivative1" in s.required_columns() and "framewise_displacement" in s.required_columns()
    for bad, msg in (
        ("motion:quadratic", "motion:basic|power2|derivatives|full"),
        ("scrub:big", "framewise-displacement threshold in mm"),
        ("compcor", "compcor needs high_pass"),
        ("aroma", "unknown component 'aroma'"),
        ("motion,motion", "given twice"),
    ):
        with pytest.raises(ConfigError, match=msg):
            ConfoundStrategy.parse(bad)


# ----------------------------------------------------------------------------------------- bad input
def _tsv(fp, run="sub-001_ses-1_task-Training_run-02"):
    return next(fp.rglob(f"{run}_desc-confounds_timeseries.tsv"))


def test_confounds_of_another_length_is_named(tree, tmp_path):
    _, fp = _copy(tree, tmp_path)
    tsv = _tsv(fp)
    pd.read_csv(tsv, sep="\t").iloc[:409].to_csv(tsv, sep="\t", index=False, na_rep="n/a")
    with pytest.raises(
        DataError, match=rf"{tsv.name}: 409 rows; expected one per volume of its BOLD run \(410"
    ):
        load_fmriprep(fp, 1)
    # `none` does not read the confounds at all.
    assert load_fmriprep(fp, 1, confounds="none").train.shape == (160, 10, 18)


def test_missing_column_for_the_strategy_is_named(tree, tmp_path):
    _, fp = _copy(tree, tmp_path)
    tsv = _tsv(fp)
    pd.read_csv(tsv, sep="\t").drop(columns=["trans_y_power2"]).to_csv(
        tsv, sep="\t", index=False, na_rep="n/a"
    )
    with pytest.raises(
        DataError,
        match=rf"{tsv.name}: confounds strategy 'motion:full' needs column\(s\) \['trans_y_power2'\]",
    ):
        load_fmriprep(fp, 1, confounds="motion")
    assert load_fmriprep(fp, 1, confounds="motion:derivatives").n_voxels == 18
    table = pd.read_csv(tsv, sep="\t").drop(
        columns=[c for c in pd.read_csv(tsv, sep="\t").columns if c.startswith("cosine")]
    )
    table.to_csv(tsv, sep="\t", index=False, na_rep="n/a")
    with pytest.raises(DataError, match=r"needs column\(s\) \['cosine\*'\]"):
        load_fmriprep(fp, 1, confounds="high_pass")


def test_mask_on_another_grid_is_named(tree, tmp_path):
    _, fp = _copy(tree, tmp_path)
    mask = next(fp.rglob("sub-001_ses-2_task-Test_run-02_space-T1w_desc-brain_mask.nii.gz"))
    nib.save(nib.Nifti1Image(np.ones((4, 4, 4), np.uint8), np.eye(4)), str(mask))
    with pytest.raises(
        DataError, match=rf"{mask.name}: brain mask on grid \(4, 4, 4\).*expected the grid of .*\(3, 3, 2\)"
    ):
        load_fmriprep(fp, 1)
    other = tmp_path / "mask.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((5, 5, 5), np.uint8), np.eye(4)), str(other))
    with pytest.raises(
        DataError, match=r"mask .*mask.nii.gz has grid \(5, 5, 5\); expected the BOLD grid \(4, 4, 3\)"
    ):
        load_fmriprep(fp, 1, space="MNI152NLin2009cAsym", mask=other)


def test_space_without_files_and_missing_runs_are_named(tree, tmp_path):
    _, fp = _copy(tree, tmp_path)
    with pytest.raises(
        DataFileNotFoundError,
        match=r"no \*_space-MNI152NLin6Asym_desc-preproc_bold.nii.gz files; spaces found: MNI152NLin2009cAsym:res-2, T1w",
    ):
        load_fmriprep(fp, 1, space="MNI152NLin6Asym")
    bold = next(fp.rglob("sub-001_ses-2_task-Training_run-03_space-T1w_desc-preproc_bold.nii.gz"))
    bold.unlink()
    with pytest.raises(
        DataFileNotFoundError,
        match=r"sub-001/ses-2/func/sub-001_ses-2_task-Training_run-03_space-T1w_desc-preproc_bold.nii.gz",
    ):
        load_fmriprep(fp, 1)
    short = next(
        fp.rglob(
            "sub-001_ses-2_task-Training_run-04_space-MNI152NLin2009cAsym_res-2_desc-preproc_bold.nii.gz"
        )
    )
    img = nib.load(str(short))
    nib.save(nib.Nifti1Image(np.asanyarray(img.dataobj)[..., :400], img.affine), str(short))
    with pytest.raises(DataError, match=rf"{short.name}: has 400 volumes but its events .* need 410"):
        load_fmriprep(fp, 1, space="MNI152NLin2009cAsym")


def _labels_for(shape):
    labels = np.zeros(shape, np.int32)
    labels[0] = 12133  # right Heschl's gyrus
    labels[1, :, 0] = 11175
    labels[1, :, 1] = 41  # Right-Cerebral-White-Matter
    labels[2, 0, 0] = 11101
    return labels


def test_destrieux_parcels_and_cortex_mask_from_freesurfer(tree, tmp_path):
    root, fp = _copy(tree, tmp_path)
    labels = _labels_for(T1[1])
    write_aparc(fp / "sourcedata/freesurfer/sub-001/mri/aparc.a2009s+aseg.mgz", T1[1], T1[2], labels)
    sub = load_fmriprep(fp, 1, parcels="destrieux")
    expected = np.where(labels >= 11101, labels, 0).ravel()[sub.voxel_indices]
    np.testing.assert_array_equal(sub.parcels, expected)
    assert sub.parcel_names == {
        12133: "ctx_rh_G_temp_sup-G_T_transv",
        11175: "ctx_lh_S_temporal_transverse",
        11101: "ctx_lh_G_and_S_frontomargin",
    }
    cortex = load_fmriprep(fp, 1, mask="cortex", confounds="none")
    assert cortex.n_voxels == int((labels >= 11101).sum()) == 10
    # --freesurfer-dir: another subjects folder.
    fs = tmp_path / "fs"
    shutil.move(str(fp / "sourcedata/freesurfer"), str(fs))
    with pytest.raises(
        DataFileNotFoundError, match=r"looked for .*sourcedata/freesurfer/sub-001/mri/aparc.a2009s\+aseg.mgz"
    ):
        load_fmriprep(fp, 1, parcels="destrieux")
    assert load_fmriprep(fp, 1, parcels="destrieux", freesurfer_dir=fs, confounds="none").parcel_names[12133]
    # FreeSurfer labels are subject space: with template-space BOLD they are refused.
    with pytest.raises(ConfigError, match=r"space 'MNI152NLin2009cAsym:res-2'; use --space T1w"):
        load_fmriprep(fp, 1, space="MNI152NLin2009cAsym", parcels="destrieux", freesurfer_dir=fs)


def test_freesurfer_file_without_destrieux_labels_is_named(tree, tmp_path):
    _, fp = _copy(tree, tmp_path)
    desikan = np.full(T1[1], 1030, np.int32)  # ctx-lh-superiortemporal in aparc+aseg (Desikan-Killiany)
    path = fp / "sourcedata/freesurfer/sub-001/mri/aparc.a2009s+aseg.mgz"
    write_aparc(path, T1[1], T1[2], desikan)
    with pytest.raises(DataError, match=r"aparc.a2009s\+aseg.mgz: no cortical Destrieux labels .*Desikan"):
        load_fmriprep(fp, 1, parcels="destrieux")
    with pytest.raises(DataError, match="no cortical Destrieux labels"):
        load_fmriprep(fp, 1, mask="cortex")


def test_regression_matches_nilearn_signal_clean():
    from nilearn.signal import clean

    from brain2music.data.confounds import regress_confounds

    rng = np.random.default_rng(5)
    data = rng.normal(size=(120, 30)).astype(np.float32) + 50
    conf = np.column_stack([rng.normal(size=(120, 4)), np.cumsum(rng.normal(size=120)), np.ones(120) * 2])
    conf[:, 3] = conf[:, 0] + conf[:, 1]  # rank-deficient, as motion expansions can be
    ref = clean(data, detrend=False, standardize=None, confounds=conf[:, :5], filter=False, t_r=1.5)
    np.testing.assert_allclose(regress_confounds(data, conf[:, :5]), ref, rtol=1e-4, atol=1e-3)


def test_labels_resampled_by_world_coordinates_match_a_reference():
    rng = np.random.default_rng(3)
    src = rng.integers(0, 200, size=(30, 28, 26)).astype(np.int32)
    c, s = np.cos(0.3), np.sin(0.3)
    src_aff = np.array([[-1.0, 0, 0, 14], [0, c, -s, -12], [0, s, c, -9], [0, 0, 0, 1]])  # oblique 1 mm
    ref = nib.Nifti1Image(
        np.zeros((7, 6, 5), np.uint8),
        np.array([[2.5, 0, 0, -7.3], [0, 2.5, 0, -6.1], [0, 0, 2.5, -5.2], [0, 0, 0, 1]]),
    )
    got = labels_on_grid(nib.MGHImage(src, src_aff), ref)
    ijk = np.indices(ref.shape).reshape(3, -1).T
    world = ijk @ ref.affine[:3, :3].T + ref.affine[:3, 3]
    idx = np.rint((world - src_aff[:3, 3]) @ np.linalg.inv(src_aff[:3, :3]).T).astype(int)
    inside = ((idx >= 0) & (idx < src.shape)).all(axis=1)
    expect = np.zeros(len(ijk), np.int32)
    expect[inside] = src[tuple(idx[inside].T)]
    np.testing.assert_array_equal(got.ravel(), expect)
    # nilearn's nearest-neighbour resampling agrees wherever the point is not in the last half voxel of the
    # source's field of view (where scipy's order-0 resampler returns 0).
    from nilearn.image import resample_to_img

    nl = np.asanyarray(
        resample_to_img(
            nib.Nifti1Image(src, src_aff), ref, interpolation="nearest", force_resample=True, copy_header=True
        ).dataobj
    ).ravel()
    exact = (world - src_aff[:3, 3]) @ np.linalg.inv(src_aff[:3, :3]).T
    interior = ((exact >= 0) & (exact <= np.array(src.shape) - 1)).all(axis=1)
    assert interior.sum() > 150
    np.testing.assert_array_equal(nl[interior], expect[interior])


def test_template_atlas_is_resampled_to_the_bold_grid(tree, tmp_path):
    _, fp = _copy(tree, tmp_path)
    # A 1-mm atlas on its own grid covering the MNI BOLD grid; parcel = 1 + x-index of the BOLD voxel.
    shape = (12, 12, 10)
    aff = np.array([[1.0, 0, 0, -4.0], [0, 1.0, 0, -6.0], [0, 0, 1.0, -2.0], [0, 0, 0, 1.0]])
    world = np.indices(shape).reshape(3, -1).T + aff[:3, 3]
    bold_i = np.rint((world[:, 0] - MNI_AFFINE[0, 3]) / 2.0).astype(int)
    atlas = (1 + np.clip(bold_i, 0, 3)).reshape(shape).astype(np.int16)
    path = tmp_path / "atlas" / "tpl-MNI152NLin2009cAsym_atlas.nii.gz"
    path.parent.mkdir()
    nib.save(nib.Nifti1Image(atlas, aff), str(path))
    pd.DataFrame({"index": [1, 2, 3, 4], "name": ["x0", "x1", "x2", "x3"]}).to_csv(
        path.with_name("tpl-MNI152NLin2009cAsym_atlas.tsv"), sep="\t", index=False
    )
    sub = load_fmriprep(fp, 1, space="MNI152NLin2009cAsym:res-2", parcels=str(path), confounds="none")
    i = np.unravel_index(sub.voxel_indices, MNI[1])[0]
    np.testing.assert_array_equal(sub.parcels, i + 1)
    assert sub.parcel_names == {1: "x0", 2: "x1", 3: "x2", 4: "x3"}


# ------------------------------------------------------------------------------------------- inspect
def test_inspect_names_missing_and_mismatched_runs(tree, tmp_path, capsys):
    root, fp = _copy(tree, tmp_path)
    next(
        fp.rglob(
            "sub-001_ses-2_task-Training_run-04_space-MNI152NLin2009cAsym_res-2_desc-preproc_bold.nii.gz"
        )
    ).unlink()
    tsv = _tsv(fp, "sub-001_ses-2_task-Test_run-02")
    pd.read_csv(tsv, sep="\t").iloc[:300].to_csv(tsv, sep="\t", index=False, na_rep="n/a")
    summary = inspect_fmriprep(fp)
    d = summary["per_subject"]["sub-001"]
    assert d["spaces"] == {"MNI152NLin2009cAsym:res-2": 5, "T1w": 6}
    problems = "\n".join(summary["problems"])
    assert "missing in space MNI152NLin2009cAsym:res-2: " in problems
    assert (
        "sub-001/ses-2/func/sub-001_ses-2_task-Training_run-04_space-MNI152NLin2009cAsym_res-2_desc-preproc_bold.nii.gz"
        in problems
    )
    assert f"{tsv.name}: 300 rows; the BOLD of run sub-001_ses-2_task-Test_run-02 has 410 volumes" in problems
    row = next(
        r for r in d["runs"] if r["run"] == "sub-001_ses-1_task-Training_run-01" and r["space"] == "T1w"
    )
    fd = pd.read_csv(_tsv(fp, "sub-001_ses-1_task-Training_run-01"), sep="\t")["framewise_displacement"]
    assert row["fd_mean"] == pytest.approx(fd.mean()) and row["fd_max"] == pytest.approx(fd.max())
    assert row["confound_columns"]["motion"] == 24 and row["confound_columns"]["cosine"] == 8
    assert main(["inspect", str(fp)]) == 1
    out, err = capsys.readouterr()
    assert "FD mean" in out and "T1w (6 runs)" in out and "2 problem(s)" in err
    assert main(["inspect", str(root), "--fmriprep", str(fp), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["per_subject"]["sub-001"]["spaces"]["T1w"] == 6


def test_raw_bids_path_warns_that_nothing_corrects_motion(tmp_path):
    root = make_bids_tree(tmp_path / "bids", shape=(2, 2, 1))
    mask = tmp_path / "mask.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((2, 2, 1), np.uint8), np.diag([2.0, 2.0, 2.0, 1.0])), str(mask))
    with pytest.warns(
        NoMotionCorrectionWarning, match=r"no motion correction.*--fmriprep DIR.*--derivatives DIR"
    ):
        sub = load_subject(root, 1, mask=mask)
    assert sub.info["motion_correction"].startswith("none")


def test_destrieux_table_is_complete():
    names = destrieux_names()
    assert len(names) == 150 and min(names) == 11101 and max(names) == 12175
    assert names[11133] == "ctx_lh_G_temp_sup-G_T_transv" and names[12175] == "ctx_rh_S_temporal_transverse"
    assert all(names[12100 + k] == names[11100 + k].replace("ctx_lh_", "ctx_rh_") for k in range(1, 76))


def test_confounds_frame_helper_has_fmriprep_columns():
    t = confounds_frame(np.zeros((410, 6)))
    assert {"trans_x_derivative1_power2", "framewise_displacement", "std_dvars", "cosine07"} <= set(t.columns)


def test_parcels_on_grid_on_the_grid_and_on_kept_voxels(tmp_path):
    from brain2music.data.parcels import parcels_on_grid

    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    labels = np.zeros((4, 3, 2), np.int32)
    labels[0], labels[3, 2, 1] = 5, 7
    (tmp_path / "sub-001").mkdir()
    nib.save(nib.Nifti1Image(labels, affine), tmp_path / "sub-001" / "atlas.nii.gz")
    (tmp_path / "sub-001" / "atlas.tsv").write_text("index\tname\n5\tfive\n7\tseven\n9\tnine\n")
    ref = nib.Nifti1Image(np.zeros(labels.shape, np.uint8), affine)  # the same grid: labels unchanged
    pattern = str(tmp_path / "{subject}" / "atlas.nii.gz")
    grid, names, source = parcels_on_grid(pattern, "sub-001", ref)
    np.testing.assert_array_equal(grid, labels)
    assert names == {5: "five", 7: "seven"} and source == str(tmp_path / "sub-001" / "atlas.nii.gz")
    kept = np.array([0, 1, labels.size - 1, 10])  # flat indices of the kept voxels
    on_voxels, names, _ = parcels_on_grid(pattern, "sub-001", ref, voxels=kept)
    np.testing.assert_array_equal(on_voxels, [5, 5, 7, 0])
    assert names == {5: "five", 7: "seven"}
    _, names, _ = parcels_on_grid(pattern, "sub-001", ref, voxels=np.array([0, 1]))
    assert names == {5: "five"}  # names of the labels on the kept voxels only
    with pytest.raises(DataError, match=r"atlas.nii.gz: no parcel label falls on a kept voxel of sub-001"):
        parcels_on_grid(pattern, "sub-001", ref, voxels=np.array([10, 11]))
    with pytest.raises(ConfigError, match="parcels 'destrieux' of sub-001 need its FreeSurfer"):
        parcels_on_grid("destrieux", "sub-001", ref)
