"""Dataset inspection, preprocessing and loading, on real metadata plus small generated images."""

from __future__ import annotations

import json
import shutil
import warnings

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from brain2music.cli import main
from brain2music.data import (
    cut_clips,
    detrend_median,
    inspect_dataset,
    load_derivatives,
    load_subject,
    packaged_design,
    window_average,
    write_example_dataset,
    zscore,
)
from brain2music.errors import DataError, DataFileNotFoundError, NoMotionCorrectionWarning
from conftest import DS003720, make_bids_tree, write_bold

SUBJECTS = ("sub-001", "sub-002", "sub-003", "sub-004", "sub-005")


@pytest.fixture(scope="module")
def full_tree(tmp_path_factory):
    """All five subjects' real metadata with tiny 2×2×1 images (.nii.gz for two subjects)."""
    root = tmp_path_factory.mktemp("ds") / "bids"
    make_bids_tree(root, subjects=SUBJECTS[:3], shape=(2, 2, 1))
    make_bids_tree(root, subjects=SUBJECTS[3:], shape=(2, 2, 1), ext=".nii.gz")
    return root


def test_inspect_real_layout(full_tree):
    s = inspect_dataset(full_tree)
    assert s["subjects"] == list(SUBJECTS)
    assert s["tr"] == 1.5
    assert (s["n_train_clips"], s["n_test_clips"], s["n_test_repeats"]) == (480, 60, 4)
    assert all(v == {"train": 48, "test": 6} for v in s["genres"].values()) and len(s["genres"]) == 10
    for d in s["per_subject"].values():
        assert [r["n_volumes"] for r in d["training_runs"]] == [410] * 12
        assert [r["run"] for r in d["test_runs"]] == [1, 2, 3, 4, 5, 6]
        assert [r["n_volumes"] for r in d["test_runs"]] == [410] * 6
    assert s["design_identical_across_subjects"]


def test_inspect_cli_json_and_table(full_tree, capsys):
    assert main(["inspect", str(full_tree), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n_train_clips"] == 480 and out["tr"] == 1.5
    assert main(["inspect", str(full_tree)]) == 0
    text = capsys.readouterr().out
    assert "12 runs × 410 volumes" in text and "480 training, 60 test × 4 repeats" in text


def _copy(full_tree, tmp_path):
    root = tmp_path / "bids"
    shutil.copytree(full_tree, root)
    return root


def test_broken_run_is_named(full_tree, tmp_path, capsys):
    root = _copy(full_tree, tmp_path)
    bad = root / "sub-002/func/sub-002_task-Training_run-07_bold.nii"
    write_bold(bad, np.zeros((2, 2, 1, 400), dtype=np.float32))
    with pytest.raises(
        DataError, match=r"sub-002_task-Training_run-07_bold.nii: has 400 volumes but .* need 410"
    ):
        inspect_dataset(root)
    assert main(["inspect", str(root)]) == 2
    assert "sub-002_task-Training_run-07_bold.nii" in capsys.readouterr().err


def test_missing_files_are_named(full_tree, tmp_path):
    root = _copy(full_tree, tmp_path)
    (root / "sub-001/func/sub-001_task-Test_run-03_events.tsv").unlink()
    (root / "sub-005/func/sub-005_task-Training_run-02_bold.nii.gz").unlink()
    with pytest.raises(DataError) as err:
        inspect_dataset(root)
    assert "sub-001_task-Test_run-03_events.tsv" in str(err.value)
    assert "sub-005_task-Training_run-02_bold.nii" in str(err.value)


def test_inconsistent_tr(full_tree, tmp_path):
    root = _copy(full_tree, tmp_path)
    sidecar = root / "sub-001/func/sub-001_task-Test_run-02_bold.json"
    meta = json.loads(sidecar.read_text())
    meta["RepetitionTime"] = 2.0
    sidecar.write_text(json.dumps(meta))
    with pytest.raises(DataError, match=r"sub-001_task-Test_run-02_bold.json: RepetitionTime 2.0 s differs"):
        inspect_dataset(root, subjects=["sub-001"])


def test_header_check_does_not_read_image_data(full_tree, monkeypatch):
    calls = []
    original = nib.arrayproxy.ArrayProxy.__array__

    def spy(self, *a, **k):
        calls.append(1)
        return original(self, *a, **k)

    monkeypatch.setattr(nib.arrayproxy.ArrayProxy, "__array__", spy)
    monkeypatch.setattr(nib.arrayproxy.ArrayProxy, "__getitem__", lambda *a: calls.append(1))
    inspect_dataset(full_tree, subjects=["sub-001", "sub-004"])
    assert calls == []


# --- preprocessing steps ---------------------------------------------------------------------------


def test_detrend_median_matches_reference():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(410, 7)).astype(np.float32) + np.linspace(0, 5, 410)[:, None]
    out = detrend_median(x, tr=1.5, window=240.0)  # 161-volume centred window
    ref = np.empty_like(x)
    for t in range(410):
        lo, hi = max(0, t - 80), min(410, t + 81)
        ref[t] = x[t] - np.median(x[lo:hi], axis=0)
    np.testing.assert_allclose(out, ref, atol=1e-5)
    interior = x - ndimage.median_filter(x, size=(161, 1))
    np.testing.assert_allclose(out[80:-80], interior[80:-80], atol=1e-5)


def test_zscore_and_constant_voxel():
    x = np.random.default_rng(1).normal(3.0, 2.0, size=(100, 4)).astype(np.float32)
    x[:, 2] = 5.0
    z = zscore(x)
    np.testing.assert_allclose(z[:, [0, 1, 3]].mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(z[:, [0, 1, 3]].std(0), 1, atol=1e-5)
    assert np.isnan(z[:, 2]).all()


def test_cut_clips_with_delay_and_edge():
    run = np.arange(410, dtype=np.float32)[:, None] * np.ones((1, 2), np.float32)
    clips = cut_clips(run, np.array([15.0, 600.0]), tr=1.5, n_trs=10, delay=3)
    np.testing.assert_array_equal(clips[0, :, 0], np.arange(13, 23))
    # The last clip's tail runs past the run: it repeats the last volume.
    np.testing.assert_array_equal(clips[1, :, 0], [403, 404, 405, 406, 407, 408, 409, 409, 409, 409])
    with pytest.raises(DataError, match="delay"):
        cut_clips(run, np.array([0.0]), tr=1.5, n_trs=10, delay=-1)


def test_window_average_matches_table1():
    resp = np.arange(10, dtype=np.float32)[None, :, None] * np.ones((2, 1, 3), np.float32)
    assert window_average(resp, 1.5).shape == (2, 10, 3)
    np.testing.assert_allclose(window_average(resp, 15.0)[0, 0, 0], 4.5)
    ten = window_average(resp, 10.0)
    assert ten.shape == (2, 4, 3)
    np.testing.assert_allclose(
        ten[0, :, 0], [3.0, 4.0, 5.0, 6.0], rtol=1e-6
    )  # 7 TRs each: 0-6, 1-7, 2-8, 3-9
    assert window_average(resp, 5.0).shape == (2, 7, 3)


# --- loading a subject ----------------------------------------------------------------------------


def _clip_signal(design_runs):
    """Image data whose voxel 0 holds the presentation's clip index in every volume of that clip."""

    def signal(split, run, n, shape):
        ev = design_runs[(split, run)]
        data = np.random.default_rng(run).normal(0, 1, size=shape + (n,)).astype(np.float32)
        for row, cid in enumerate(ev):
            data[0, 0, 0, row * 10 : row * 10 + 10] = 100.0 + cid
        return data

    return signal


def test_load_subject_puts_every_clip_in_its_place(tmp_path):
    from brain2music.data import read_events

    func = DS003720 / "sub-001/func"
    lookup, runs = {}, {}
    for ev_path in sorted(func.glob("*_events.tsv")):
        split = "train" if "Training" in ev_path.name else "test"
        run = int(ev_path.name.split("_run-")[1][:2])
        ids = read_events(ev_path).clip_id.tolist()
        runs[(split, run)] = [lookup.setdefault(c, len(lookup)) for c in ids]
    root = make_bids_tree(tmp_path / "bids", shape=(2, 2, 2), signal=_clip_signal(runs))
    mask = nib.Nifti1Image(np.ones((2, 2, 2), np.uint8), np.diag([2.0, 2.0, 2.0, 1.0]))
    sub = load_subject(root, 1, mask=mask, delay=0, detrend_window=None)
    assert sub.train.shape == (480, 10, 8) and sub.test.shape == (60, 4, 10, 8)
    assert sub.test_mean.shape == (60, 10, 8) and sub.train.dtype == np.float32
    assert list(sub.clips.columns) == ["clip_id", "genre", "track", "start", "duration", "split", "run"]
    assert sub.train_runs.shape == (480,) and set(sub.train_runs) == set(range(1, 13))
    # Per run, z-scoring is an affine map of voxel 0, so it stays perfectly correlated with the clip index.
    order = np.array([lookup[c] for c in sub.clips.clip_id], dtype=float)
    v0_train = sub.train[:, 5, 0]
    for run in range(1, 13):
        sel = sub.train_runs == run
        assert np.corrcoef(v0_train[sel], order[:480][sel])[0, 1] > 0.9999
    v0_test = sub.test[:, :, 5, 0]
    test_runs = sub.test_clips.run.to_numpy()
    for run in range(1, 7):
        sel = test_runs == run
        assert np.corrcoef(v0_test[sel, 0], order[480:][sel])[0, 1] > 0.9999
        # Repeat 3 of the first clip of each test run is the last row of the run: the delay-free cut is exact.
        np.testing.assert_allclose(v0_test[sel], v0_test[sel][:, :1].repeat(4, axis=1), atol=1e-5)
    img = sub.to_image(np.arange(8, dtype=np.float32))
    assert img.shape == (2, 2, 2)


def test_load_subject_drops_nan_voxels_with_warning(tmp_path):
    def signal(split, run, n, shape):
        data = np.random.default_rng(run).normal(100, 1, size=shape + (n,)).astype(np.float32)
        if split == "test" and run == 2:
            data[1, 1, 0, 50] = np.nan
        return data

    root = make_bids_tree(tmp_path / "bids", shape=(2, 2, 1), signal=signal)
    mask_path = root / "mask.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((2, 2, 1), np.uint8), np.diag([2.0, 2.0, 2.0, 1.0])), str(mask_path))
    with pytest.warns(UserWarning, match="dropping 1 of 4 voxel"):
        sub = load_subject(root, "sub-001", mask=mask_path)
    assert sub.n_voxels == 3 and np.isfinite(sub.train).all()
    assert 3 not in sub.voxel_indices


def test_mask_on_another_grid_is_rejected(bids_tree, tmp_path):
    mask_path = tmp_path / "mask.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((4, 4, 4), np.uint8), np.eye(4)), str(mask_path))
    with pytest.raises(
        DataError, match=r"mask .*mask.nii.gz has grid \(4, 4, 4\); expected the BOLD grid \(3, 3, 2\)"
    ):
        load_subject(bids_tree, 1, mask=mask_path)
    with pytest.raises(DataFileNotFoundError):
        load_subject(bids_tree, 1, mask=tmp_path / "missing.nii.gz")


def test_load_derivatives(tmp_path):
    design = packaged_design()
    n_vox = 5
    # Volume t of the training array holds 1000*run + t (per run 400 volumes).
    train = np.concatenate(
        [1000.0 * r + np.arange(400)[:, None] + np.zeros((1, n_vox)) for r in range(1, 13)]
    )
    test = np.concatenate([1000.0 * r + np.arange(400)[:, None] + np.zeros((1, n_vox)) for r in range(1, 7)])
    np.save(tmp_path / "sub-003_Resp_Training.npy", train.astype(np.float32))
    np.save(tmp_path / "sub-003_Resp_Test.npy", test.astype(np.float32))
    sub = load_derivatives(tmp_path, 3, delay=3)
    assert sub.train.shape == (480, 10, n_vox) and sub.test.shape == (60, 4, 10, n_vox)
    first = sub.clips.iloc[0]
    row = design[(design.split == "train") & (design.clip_id == first.clip_id)].iloc[0]
    # events row 1 is derivative volume 0; with a 3-volume delay the clip starts at volume 3.
    expected = 1000.0 * row.run + (row.row - 1) * 10 + 3 + np.arange(10)
    np.testing.assert_allclose(sub.train[0, :, 0], expected)
    np.testing.assert_allclose(sub.test_mean, sub.test.mean(axis=1))
    # Only the repeat-mean file: clips come out in order of first presentation.
    (tmp_path / "sub-003_Resp_Test.npy").unlink()
    means = sub.test.mean(axis=1)
    with pytest.raises(DataFileNotFoundError, match="sub-003_Resp_Test.npy"):
        load_derivatives(tmp_path, 3)
    unshifted = load_derivatives_mean_file(tmp_path, design, n_vox)
    sub2 = load_derivatives(tmp_path, 3, delay=0)
    np.testing.assert_allclose(sub2.test_mean, unshifted)
    assert means.shape == sub2.test_mean.shape


def load_derivatives_mean_file(folder, design, n_vox):
    mean = np.arange(600, dtype=np.float32)[:, None] + np.zeros((1, n_vox), np.float32)
    np.save(folder / "sub-003_Resp_Test_Mean.npy", mean)
    return mean.reshape(60, 10, n_vox)


def test_derivative_shape_mismatch_is_named(tmp_path):
    np.save(tmp_path / "sub-001_Resp_Training.npy", np.zeros((100, 3), np.float32))
    with pytest.raises(DataError, match=r"sub-001_Resp_Training.npy: shape \(100, 3\); expected \(4800"):
        load_derivatives(tmp_path, 1)


def test_example_dataset_roundtrip(tmp_path, capsys):
    out = tmp_path / "ex"
    assert main(["example-data", str(out), "--subjects", "2"]) == 0
    s = inspect_dataset(out)
    assert s["subjects"] == ["sub-001", "sub-002"] and s["n_train_clips"] == 480
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # The one expected warning: raw BIDS BOLD is used without motion correction.
        warnings.simplefilter("ignore", NoMotionCorrectionWarning)
        sub = load_subject(out, 2)
    assert sub.train.shape[:2] == (480, 10) and sub.n_voxels == 6 * 6 * 4
    assert main(["example-data", str(out)]) == 2
    assert "not empty" in capsys.readouterr().err
    write_example_dataset(out, n_subjects=1, overwrite=True)
    assert inspect_dataset(out)["subjects"] == ["sub-001"]


# ------------------------------------------------------------------ the authors' arrays, real shapes
V_REAL = 257  # voxels: the row counts are the real ones, the voxel count is kept small for speed


def _authors_arrays(folder, subject="sub-004", n_vox=V_REAL, seed=0):
    """Arrays shaped like Zenodo 10.5281/zenodo.8275363: 4800 x V training (12 runs x 400 volumes, first 10
    volumes dropped), 2400 x V test (6 x 400) and 600 x V test mean (60 clips x 10, repeats averaged, clips in
    order of first presentation, unshifted), float32. Volume value = run code + volume index + voxel noise."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(0, 0.01, size=(1, n_vox)).astype(np.float32)
    train = np.concatenate([1000.0 * r + np.arange(400)[:, None] + noise for r in range(1, 13)]).astype(
        np.float32
    )
    test = np.concatenate([-1000.0 * r + np.arange(400)[:, None] + noise for r in range(1, 7)]).astype(
        np.float32
    )
    np.save(folder / f"{subject}_Resp_Training.npy", train)
    np.save(folder / f"{subject}_Resp_Test.npy", test)
    # The repeat mean the authors ship: per test run, clip i of the run's 10 is volumes 10*i..10*i+9 of
    # each of its 4 presentations (rows 1-40 of the events).
    blocks = test.reshape(6, 4, 10, 10, n_vox).mean(axis=1)  # run, clip, volume, voxel
    np.save(folder / f"{subject}_Resp_Test_Mean.npy", blocks.reshape(600, n_vox).astype(np.float32))
    return train, test


def test_authors_arrays_of_the_real_shapes(tmp_path):
    train, test = _authors_arrays(tmp_path)
    assert train.shape == (4800, V_REAL) and test.shape == (2400, V_REAL)
    assert np.load(tmp_path / "sub-004_Resp_Test_Mean.npy").shape == (600, V_REAL)
    sub = load_derivatives(tmp_path, 4, delay=3)
    assert sub.train.shape == (480, 10, V_REAL) and sub.test.shape == (60, 4, 10, V_REAL)
    assert sub.test_mean.shape == (60, 10, V_REAL) and sub.train.dtype == np.float32
    design = packaged_design()
    # Every training clip's 10 volumes come from its run, starting 3 volumes after its events row.
    for k in (0, 57, 479):
        clip = sub.train_clips.iloc[k]
        row = design[(design.split == "train") & (design.clip_id == clip.clip_id)].iloc[0]
        expect = np.minimum((row.row - 1) * 10 + 3 + np.arange(10), 399) + 1000.0 * row.run
        np.testing.assert_allclose(sub.train[k, :, 0], expect, atol=0.05)
        assert sub.train_runs[k] == row.run
    # Test clips: each repeat from its own presentation, all in the clip's run.
    for k in (0, 33, 59):
        clip = sub.test_clips.iloc[k]
        rows = design[(design.split == "test") & (design.clip_id == clip.clip_id)].sort_values("repeat")
        for rep, row in enumerate(rows.itertuples()):
            expect = np.minimum((row.row - 1) * 10 + 3 + np.arange(10), 399) - 1000.0 * row.run
            np.testing.assert_allclose(sub.test[k, rep, :, 0], expect, atol=0.05)
    np.testing.assert_allclose(sub.test_mean, sub.test.mean(axis=1), rtol=1e-6)


def test_authors_test_mean_file_gives_the_same_responses(tmp_path):
    _authors_arrays(tmp_path)
    full = load_derivatives(tmp_path, 4, delay=0)
    (tmp_path / "sub-004_Resp_Test.npy").unlink()
    mean_only = load_derivatives(tmp_path, 4, delay=0)
    assert mean_only.test.shape == (60, 1, 10, V_REAL)
    np.testing.assert_allclose(mean_only.test_mean, full.test_mean, rtol=1e-5, atol=1e-3)
    # With the 3-volume delay the mean file is shifted within each run's block of clips; only the run's
    # last clip differs (its 4th presentation has no following clip; the loader repeats the last volume).
    shifted = load_derivatives(tmp_path, 4, delay=3)
    ref = load_derivatives(_full(tmp_path / "full"), 4, delay=3)
    last = ref.test_clips.groupby("run").tail(1).index.to_numpy()
    others = np.setdiff1d(np.arange(60), last)
    np.testing.assert_allclose(shifted.test_mean[others], ref.test_mean[others], rtol=1e-5, atol=1e-3)


def _full(folder):
    folder.mkdir()
    _authors_arrays(folder)
    return folder


def test_authors_arrays_bad_input_is_named(tmp_path):
    train, test = _authors_arrays(tmp_path)
    np.save(tmp_path / "sub-004_Resp_Test.npy", test[:, :100])
    with pytest.raises(
        DataError, match=r"sub-004_Resp_Test.npy: 100 voxels; .*sub-004_Resp_Training.npy has 257"
    ):
        load_derivatives(tmp_path, 4)
    np.save(tmp_path / "sub-004_Resp_Test.npy", test[:2390])
    with pytest.raises(
        DataError,
        match=r"sub-004_Resp_Test.npy: shape \(2390, 257\); expected \(2400, n_voxels\) = 6 runs × 400",
    ):
        load_derivatives(tmp_path, 4)
    bad = train.copy()
    bad[123, 7] = np.nan
    np.save(tmp_path / "sub-004_Resp_Training.npy", bad)
    np.save(tmp_path / "sub-004_Resp_Test.npy", test)
    with pytest.warns(UserWarning, match="dropping 1 of 257 voxel"):
        sub = load_derivatives(tmp_path, 4)
    assert sub.n_voxels == 256 and 7 not in sub.voxel_indices
