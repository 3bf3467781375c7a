"""Live decoding: causal preprocessing, volume files (NIfTI, DICOM mosaics), replay, folder watching, the
JSON-lines output and restart, up-front refusals, and the page in headless Chromium."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from brain2music.errors import DataError
from brain2music.live import (
    CausalPreprocessor,
    FolderWatcher,
    IncompleteFile,
    VoxelGrid,
    causal_preprocess,
    live_decode,
    open_live,
    read_volume,
)
from brain2music.live.volumes import is_volume_file, volume_number
from live_fakes import dicom_geometry, write_mosaic


# ------------------------------------------------------------------------------------------------ reference
def reference_causal(data, *, size, prior_cv=None, n0=0):
    """Direct per-volume loop of the documented formulas (np.median over the trailing window)."""
    data = np.asarray(data, dtype=np.float64)
    out = np.zeros_like(data)
    s1 = np.zeros(data.shape[1])
    s2 = np.zeros(data.shape[1])
    for t in range(data.shape[0]):
        trend = np.median(data[max(0, t - size + 1) : t + 1], axis=0)
        d = data[t] - trend
        s1 += d
        s2 += d * d
        n = t + 1
        k = n0 if prior_cv is not None else 0
        prior = 0.0 if prior_cv is None else k * (prior_cv * np.abs(trend)) ** 2
        mean = s1 / (n + k)
        var = (s2 + prior) / (n + k) - mean**2
        out[t] = np.where(var > 1e-12 * (1 + mean**2), (d - mean) / np.sqrt(np.maximum(var, 1e-300)), 0.0)
    return out


@pytest.mark.parametrize("integer_data", [False, True])
def test_causal_preprocessor_matches_direct_loop(integer_data):
    rng = np.random.default_rng(1)
    n, v = 120, 37
    data = 500 + np.cumsum(rng.normal(size=(n, v)), axis=0) + rng.normal(scale=3, size=(n, v))
    if integer_data:  # many ties: exercises the sorted-window search with duplicates
        data = np.rint(data / 4) * 4
    data = data.astype(np.float32)
    prior_cv = rng.uniform(0.001, 0.02, size=v)
    pre = CausalPreprocessor(v, tr=1.5, detrend_window=15.0, prior_cv=prior_cv, prior_volumes=5)
    assert pre.size == 11  # 10 volumes rounded up to odd: the window slides many times below
    online = np.stack([pre.update(x) for x in data])
    ref = reference_causal(data, size=11, prior_cv=prior_cv, n0=5)
    np.testing.assert_allclose(online, ref, atol=1e-9)
    np.testing.assert_allclose(
        causal_preprocess(data, tr=1.5, detrend_window=15.0, prior_cv=prior_cv, prior_volumes=5),
        ref,
        atol=1e-9,
    )
    # Causality: changing the future changes nothing before it.
    changed = data.copy()
    changed[60:] += 100
    np.testing.assert_allclose(causal_preprocess(changed, tr=1.5, detrend_window=15.0)[:60],
                               causal_preprocess(data, tr=1.5, detrend_window=15.0)[:60])  # fmt: skip
    # Without a prior: plain running moments, so the last volume's z uses the whole run's moments.
    plain = CausalPreprocessor(v, tr=1.5, detrend_window=15.0)
    last = [plain.update(x) for x in data][-1]
    np.testing.assert_allclose(last, reference_causal(data, size=11)[-1], atol=1e-9)


@pytest.mark.parametrize("band", [4, 32])
def test_running_median_band_at_the_default_window(band):
    """The default 161-volume window over a 400-volume run, with a tiny band (rebuilt very often) or the
    default one, on tie-heavy data; the trend is the exact trailing median."""
    rng = np.random.default_rng(2)
    data = np.rint(1000 + np.cumsum(rng.normal(size=(400, 23)), axis=0) + rng.normal(scale=2, size=(400, 23)))
    data = data.astype(np.float32)
    pre = CausalPreprocessor(23, tr=1.5, band=band)
    for t, x in enumerate(data):
        pre.update(x)
        np.testing.assert_array_equal(
            pre.trend, np.median(data[max(0, t - 160) : t + 1].astype(np.float64), axis=0)
        )


def test_volume_names():
    assert volume_number("vol_0007.nii") == 7
    assert volume_number("001_000003_000012.dcm") == 12
    assert volume_number("scan.nii.gz") is None
    assert is_volume_file("f0001.nii.gz") and is_volume_file("x.IMA")
    for name in (".f0001.nii", "f0001.nii.tmp", "f0001.nii.part", "f0001.nii~", "notes.txt"):
        assert not is_volume_file(name)


def test_dicom_mosaic_lands_on_the_nifti_grid(tmp_path):
    """A Siemens mosaic (pydicom-written, LPS rows x columns x slices) maps onto a RAS NIfTI grid."""
    rng = np.random.default_rng(0)
    rows, cols, n_sl = 6, 5, 7
    vol = (10 + 2 * rng.integers(100, 3000, size=(rows, cols, n_sl))).astype(np.float32)  # exact in uint16
    path = write_mosaic(tmp_path / "001_000007_000004.dcm", vol, number=4, slope=2.0, intercept=10.0)
    raw = read_volume(path)
    assert raw.number == 4 and raw.tr == pytest.approx(1.5)
    np.testing.assert_allclose(raw.data, vol)  # unmosaicked and rescaled
    # The decoder's grid: canonical RAS, i.e. columns flipped to +R, rows flipped to +A.
    _, rcs_affine = dicom_geometry(vol.shape)
    P = np.array([[0, -1, 0, rows - 1], [-1, 0, 0, cols - 1], [0, 0, 1, 0], [0, 0, 0, 1.0]])
    nifti = np.transpose(vol[::-1, ::-1, :], (1, 0, 2))  # nifti[a, b, c] = vol[rows-1-b, cols-1-a, c]
    voxels = np.flatnonzero(rng.random(nifti.size) < 0.5)
    grid = VoxelGrid(nifti.shape, rcs_affine @ P, voxels)
    np.testing.assert_allclose(grid.extract(raw), nifti.ravel()[voxels])
    # A grid that is not a flip/permutation of the decoder's (other voxel size) is refused with the file.
    other = VoxelGrid(nifti.shape, np.diag([2.0, 2.0, 2.0, 1.0]), voxels)
    with pytest.raises(DataError, match="does not match the decoder's grid"):
        other.extract(raw, source=str(path))
    # Half-written: shorter than its pixel data; cut inside the header: no pixel data yet.
    blob = path.read_bytes()
    (tmp_path / "cut.dcm").write_bytes(blob[:-100])
    with pytest.raises(IncompleteFile, match="pixel data"):
        read_volume(tmp_path / "cut.dcm")
    (tmp_path / "head.dcm").write_bytes(blob[:400])
    with pytest.raises(IncompleteFile):
        read_volume(tmp_path / "head.dcm")


def test_nifti_volume_completeness(tmp_path):
    import nibabel as nib

    data = np.arange(60, dtype=np.float32).reshape(3, 4, 5)
    for name in ("v.nii", "v.nii.gz"):
        nib.save(nib.Nifti1Image(data, np.eye(4)), str(tmp_path / name))
        np.testing.assert_array_equal(read_volume(tmp_path / name).data, data)
        blob = (tmp_path / name).read_bytes()
        (tmp_path / ("cut_" + name)).write_bytes(blob[: len(blob) - 30])
        with pytest.raises(IncompleteFile):
            read_volume(tmp_path / ("cut_" + name))
    nib.save(nib.Nifti1Image(np.zeros((3, 4, 5, 2), np.float32), np.eye(4)), str(tmp_path / "four.nii"))
    with pytest.raises(DataError, match="one 3-D volume"):
        read_volume(tmp_path / "four.nii")


# ------------------------------------------------------------------------------ a small simulated study
@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    """Training statistics are cached under $BRAIN2MUSIC_CACHE: never in the user's home in tests."""
    monkeypatch.setenv("BRAIN2MUSIC_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A 1-subject simulated study, its ridge decoder (reproduce) and a library of its stimuli."""
    from threadpoolctl import threadpool_limits

    from brain2music.reconstruct import build_library
    from brain2music.simulate import simulate_study
    from brain2music.study.reproduce import reproduce

    base = tmp_path_factory.mktemp("live")
    with threadpool_limits(1):
        sim = simulate_study(
            base / "sim", n_subjects=1, n_voxels=300, seed=3, clips_per_genre=2, test_clips_per_genre=1,
            train_runs=2, test_runs=1, test_repeats=2, n_parcels=8, n_auditory_parcels=2, snr=3.0, progress=False,
        )  # fmt: skip
        reproduce(sim / "bids", stimuli=sim / "stimuli", out=base / "results", methods=["ridge"], logo=False, cv=2,
                  n_permutations=20, cache_dir=base / "cache", verbose=False)  # fmt: skip
        build_library(sim / "stimuli", base / "lib", encoder="acoustic", progress=False)
    func = sim / "bids" / "sub-001" / "func"
    return {
        "base": base,
        "decoder": base / "results" / "decoders" / "acoustic" / "ridge" / "sub-001.joblib",
        "results": base / "results",
        "library": base / "lib",
        "bold": func / "sub-001_task-Test_run-01_bold.nii.gz",
        "events": func / "sub-001_task-Test_run-01_events.tsv",
        "cache": base / "cache",
    }


def _offline_predictions(pipeline, bold):
    """The offline causal computation: whole run → reference preprocessing loop → window → decoder."""
    from brain2music.data.preprocess import read_masked_run

    model = pipeline.model
    mask = np.zeros(int(np.prod(model.grid.shape)), dtype=bool)
    mask[model.grid.voxel_indices] = True
    data = read_masked_run(bold, mask.reshape(model.grid.shape))
    z = reference_causal(data, size=pipeline.pre.size, prior_cv=model.prior_cv, n0=pipeline.pre.prior_volumes)
    n_w = pipeline.n_w
    X = np.stack([z[max(0, t - n_w + 1) : t + 1].mean(axis=0) for t in range(len(z))])
    return np.asarray(model.decoder.predict(X.astype(np.float32)), dtype=np.float64)


@pytest.mark.slow
def test_replay_matches_offline_causal_computation(study):
    pipeline = open_live(study["decoder"], study["library"], events=study["events"], cache_dir=study["cache"])
    model = pipeline.model
    assert model.prior_cv is not None and model.delay == 3 and model.tr == 1.5
    records = list(live_decode(study["decoder"], study["library"], replay=study["bold"], speed=0,
                               cache_dir=study["cache"]))  # fmt: skip
    ref = _offline_predictions(pipeline, study["bold"])
    assert len(records) == len(ref) == 210
    pred = np.array([r["prediction"] for r in records])
    scale = np.abs(ref).max(axis=0) + 1.0
    np.testing.assert_allclose(pred / scale, ref / scale, atol=1e-5)
    # The query is the mean of the last r predictions; the top track is the library's answer to it.
    lib = pipeline.library
    t = 150
    query = ref[t - model.r + 1 : t + 1].mean(axis=0)
    scores, items = lib.search(query[None].astype(np.float32), 5, encoder="acoustic")
    assert [x["item"] for x in records[t]["top"]] == items[0].tolist()
    np.testing.assert_allclose([x["score"] for x in records[t]["top"]], scores[0], atol=1e-4)
    # Ground truth: the clip playing delay volumes before each volume; matches are judged against it.
    first = records[3 + 10 * 5]  # volume 53 responds to the music at 50.5 * 1.5 s = clip row 5
    from brain2music.data import read_events

    ev = read_events(study["events"])
    assert first["truth"]["clip_id"] == ev.clip_id[5]
    assert first["genre_match"] == (first["top_genre"] == ev.genre[5])
    assert records[0]["truth"] is None  # before the delay, nothing heard yet is decodable
    assert all(r["latency_ms"] is not None and r["latency_ms"] >= 0 for r in records)


def _nifti_bytes(data: np.ndarray, affine) -> bytes:
    import nibabel as nib

    return nib.Nifti1Image(np.asarray(data, dtype=np.float32), affine).to_bytes()


def _write_nifti_volume(path: Path, data: np.ndarray, affine) -> None:
    path.write_bytes(_nifti_bytes(data, affine))


@pytest.mark.slow
def test_watch_mode_files_written_by_the_test(study, tmp_path):
    """Volumes written one by one into a folder, incl. a half-written file, a rename into place, a DICOM
    mosaic, a missing volume, a truncated file and a wrong-shape file; then a restart continues."""
    import nibabel as nib

    img = nib.load(str(study["bold"]))
    run = np.asarray(img.dataobj, dtype=np.float32)
    affine = img.affine
    folder = tmp_path / "export"
    folder.mkdir()
    pipeline = open_live(study["decoder"], study["library"], cache_dir=study["cache"])
    replay = list(live_decode(study["decoder"], study["library"], replay=study["bold"], speed=0, events=None,
                              cache_dir=study["cache"]))  # fmt: skip
    n_ok = 12
    events_seen: list[str] = []

    def writer():
        # Files already there at the watcher's first scan are caught up (no latency): start after it.
        assert watcher.scanned.wait(10)
        for i in range(n_ok):
            path = folder / f"vol_{i + 1:04d}.nii"
            if i == 4:  # half-written: the first half now, the rest after the watcher has seen it
                blob = _nifti_bytes(run[..., i], affine)
                with open(path, "wb") as fh:
                    fh.write(blob[: len(blob) // 2])
                    fh.flush()
                    time.sleep(0.3)
                    fh.write(blob[len(blob) // 2 :])
            elif i == 7:  # written under a temporary name and renamed into place
                _write_nifti_volume(folder / f".vol_{i + 1:04d}.nii.part", run[..., i], affine)
                time.sleep(0.1)
                os.replace(folder / f".vol_{i + 1:04d}.nii.part", path)
            else:
                if i == 9:  # late: nothing for several (watcher) TRs, then the file comes
                    time.sleep(0.8)
                _write_nifti_volume(path, run[..., i], affine)
            time.sleep(0.05)
        # volume 12 never comes; 13 arrives; 14 is truncated for good; 15 has the wrong shape
        _write_nifti_volume(folder / "vol_0014.nii", run[..., 13], affine)
        blob = _nifti_bytes(run[..., 14], affine)
        (folder / "vol_0015.nii").write_bytes(blob[: len(blob) - 500])
        _write_nifti_volume(folder / "vol_0016.nii", run[:-1, :, :, 15], affine)
        _write_nifti_volume(folder / "vol_0017.nii", run[..., 16], affine)

    # The watcher's TR only paces its late/missing decisions: 0.2 s here so the test is quick.
    watcher = FolderWatcher(
        folder, tr=0.2, late_after=0.2, settle=1.0, missing_after=0.4, idle_timeout=3.0, n_volumes=17
    )
    pipeline.issue_listeners.append(lambda issue: events_seen.append(issue["kind"]))
    thread = threading.Thread(target=writer)
    thread.start()
    records = list(pipeline.run(watcher))
    thread.join()
    assert [r["volume"] for r in records] == list(range(17))
    pred = np.array([r["prediction"] for r in records[:n_ok]])
    ref = np.array([r["prediction"] for r in replay[:n_ok]])
    np.testing.assert_allclose(pred, ref, rtol=1e-5, atol=1e-5)  # the half-written file was read whole
    assert records[4]["status"] == "ok" and not records[4]["issues"]
    by_vol = {r["volume"]: r for r in records}
    assert by_vol[12]["status"] == "missing" and by_vol[12]["imputed"]
    assert by_vol[14]["status"] == "bad" and by_vol[14]["imputed"]
    assert any("vol_0015.nii" in i["message"] and i["kind"] == "truncated" for i in by_vol[14]["issues"])
    assert by_vol[15]["status"] == "bad"
    assert any("vol_0016.nii" in i["message"] and i["kind"] == "wrong-shape" for i in by_vol[15]["issues"])
    assert by_vol[16]["status"] == "ok"
    assert {"late", "missing", "truncated", "wrong-shape"} <= set(events_seen)
    assert by_vol[9]["status"] == "ok" and any(i["kind"] == "late" for i in by_vol[9]["issues"])
    assert all(r["latency_ms"] is not None and r["latency_ms"] < 5000 for r in records)

    # Restart: the files already in the folder are caught up (same results), then new ones go live.
    (folder / "vol_0015.nii").unlink()
    _write_nifti_volume(folder / "vol_0015.nii", run[..., 14], affine)  # the export re-sent it whole
    vol = np.asarray(run[..., 17])
    rows_first = np.transpose(vol[::-1, ::-1, :], (1, 0, 2))  # as a DICOM mosaic would store it
    again = open_live(study["decoder"], study["library"], cache_dir=study["cache"])
    watcher = FolderWatcher(folder, tr=1.5, settle=1.0, missing_after=0.4, idle_timeout=3.0, n_volumes=18)
    out = []
    for rec in again.run(watcher):
        out.append(rec)
        if rec["volume"] == 16:
            _write_mosaic_like(folder, rows_first, affine, number=18)
    assert [r["volume"] for r in out] == list(range(18))
    assert all(r["catch_up"] for r in out[:17]) and not out[17]["catch_up"]
    np.testing.assert_allclose([r["prediction"] for r in out[:12]], pred, rtol=1e-5, atol=1e-5)
    assert out[14]["status"] == "ok"
    assert out[17]["status"] == "ok" and out[17]["file"].endswith(".dcm")


def _write_mosaic_like(folder: Path, rows_first: np.ndarray, nifti_affine, *, number: int) -> None:
    """Write a volume of a canonical (diagonal, RAS) NIfTI grid as a Siemens mosaic on the same grid.

    ``rows_first[i, j, s] = nifti[cols-1-j, rows-1-i, s]``: DICOM rows run toward posterior and columns
    toward patient left, i.e. against the NIfTI's +A and +R axes.
    """
    assert (
        np.allclose(nifti_affine[:3, :3], np.diag(np.diag(nifti_affine)[:3]))
        and (np.diag(nifti_affine)[:3] > 0).all()
    )
    rows, cols = rows_first.shape[:2]
    zoom = np.diag(nifti_affine)[:3]
    ras_of_first = nifti_affine @ np.array(
        [cols - 1, rows - 1, 0, 1.0]
    )  # NIfTI voxel of DICOM voxel (0, 0, 0)
    origin = (-ras_of_first[0], -ras_of_first[1], ras_of_first[2])  # RAS -> LPS
    write_mosaic(folder / f"001_000007_{number:06d}.dcm", rows_first, number=number,
                 spacing=(zoom[1], zoom[0], zoom[2]), origin=origin, slope=0.05)  # fmt: skip


# ----------------------------------------------------------------------------------- refusals, CLI, page
@pytest.mark.slow
def test_refuses_mismatches_known_up_front(study, tmp_path):
    import nibabel as nib
    import pandas as pd

    from brain2music.reconstruct import library_from_embeddings

    other = library_from_embeddings(tmp_path / "other_lib", np.random.default_rng(0).normal(size=(4, 1, 8)),
                                    pd.DataFrame({"path": [f"t{i}.wav" for i in range(4)]}), encoder="clap",
                                    progress=False)  # fmt: skip
    with pytest.raises(DataError, match=r"built with encoder 'clap'.*acoustic"):
        open_live(study["decoder"], other, cache_dir=study["cache"])
    # A results folder whose voxel mask does not fit the decoder (one voxel fewer).
    res = tmp_path / "results"
    shutil.copytree(study["results"], res)
    npz = res / "encoding" / "acoustic" / "sub-001_encoding.npz"
    with np.load(npz) as f:
        arrays = dict(f)
    arrays["voxel_indices"] = arrays["voxel_indices"][:-1]
    np.savez(npz, **arrays)
    with pytest.raises(DataError, match=r"expects 300 voxels but the subject's voxel mask .* has 299"):
        open_live(res / "decoders" / "acoustic" / "ridge" / "sub-001.joblib", cache_dir=study["cache"])
    # A run on another grid: refused before the first volume, naming the file.
    img = nib.load(str(study["bold"]))
    bad = tmp_path / "other_grid_bold.nii.gz"
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj)[:, :, :-1], img.affine, img.header), str(bad))
    with pytest.raises(DataError, match="other_grid_bold.nii.gz: volume grid"):
        next(live_decode(study["decoder"], study["library"], replay=bad, speed=0, cache_dir=study["cache"]))


@pytest.mark.slow
def test_cli_no_browser_out_and_restart(study, tmp_path, capsys):
    from brain2music.cli import main

    out = tmp_path / "live"
    args = ["live", "--decoder", str(study["decoder"]), "--library", str(study["library"]), "--replay",
            str(study["bold"]), "--speed", "0", "--no-browser", "--out", str(out), "--quiet"]  # fmt: skip
    assert main(args) == 0
    lines = [json.loads(x) for x in (out / "live.jsonl").read_text().splitlines()]
    assert lines[0]["type"] == "start" and lines[0]["subject"] == "sub-001" and lines[-1]["type"] == "end"
    trs = [x for x in lines if x["type"] == "tr"]
    assert [x["volume"] for x in trs] == list(range(210))
    assert {"top", "genre_similarity", "truth", "genre_match", "latency_ms", "prediction"} <= set(trs[0])
    assert lines[-1]["n_volumes"] == 210
    # The test run plays the results folder's test clips: each volume ranks the clip playing among them.
    n_test = lines[0]["test_clips"]
    assert n_test >= 2 and lines[0]["test_clips_source"].endswith("sub-001.npz")
    ranked = [x for x in trs if x["truth_rank"] is not None]
    assert ranked and all(
        1 <= x["truth_rank"] <= n_test and x["top5"] == (x["truth_rank"] <= 5) for x in ranked
    )
    assert lines[-1]["n_clips_ranked"] == sum(x["clip_complete"] for x in trs) > 0
    assert 0.0 <= lines[-1]["top1_acc"] <= lines[-1]["top5_acc"] <= 1.0
    assert lines[-1]["top1_chance"] == pytest.approx(1 / n_test)
    # A crash left half a line: the restart cuts it, and writes no volume twice.
    with open(out / "live.jsonl", "a") as fh:
        fh.write('{"type": "tr", "volu')
    assert main(args) == 0
    again = [json.loads(x) for x in (out / "live.jsonl").read_text().splitlines()]
    assert [x["volume"] for x in again if x["type"] == "tr"] == list(range(210))
    assert sum(x["type"] == "start" for x in again) == 2
    # Another source into the same folder is refused with both named.
    other = study["bold"].with_name("sub-001_task-Training_run-01_bold.nii.gz")
    assert main([*args[:6], str(other), *args[7:]]) == 2
    assert "holds results of another source" in capsys.readouterr().err


def _chromium():
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    from browser import CHROMEDRIVER, CHROMIUM

    opts = Options()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--autoplay-policy=no-user-gesture-required"):  # fmt: skip
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)


@pytest.mark.slow
@pytest.mark.browser
def test_page_updates_and_plays_in_headless_chromium(study, tmp_path):
    from brain2music.live import run_live
    from browser import browser_available

    if not browser_available():
        pytest.skip("chromium + chromedriver + selenium needed")
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    import nibabel as nib

    img = nib.load(str(study["bold"]))
    run, affine = np.asarray(img.dataobj, dtype=np.float32), img.affine
    folder = tmp_path / "export"
    folder.mkdir()
    stop = threading.Event()
    result = {}

    def writer():  # an export writing one volume per 0.1 s; volume 20's file stays truncated
        for i in range(90):
            if stop.is_set():
                return
            blob = _nifti_bytes(run[..., i], affine)
            (folder / f"vol_{i + 1:04d}.nii").write_bytes(blob[:-400] if i == 20 else blob)
            time.sleep(0.1)

    def session():
        result["summary"] = run_live(study["decoder"], study["library"], watch=folder, events=study["events"],
                                     port=port, open_browser=False, linger=None, verbose=False, stop=stop)  # fmt: skip

    threading.Thread(target=writer, daemon=True).start()
    thread = threading.Thread(target=session, daemon=True)
    thread.start()
    driver = _chromium()
    try:
        url = f"http://127.0.0.1:{port}/"
        deadline = time.time() + 30
        while True:  # the server starts once the model is loaded
            try:
                driver.get(url)
                break
            except Exception:
                if time.time() > deadline:
                    raise
                time.sleep(0.3)

        def n_volumes():
            return driver.execute_script(
                "const e = document.getElementById('n-volumes'); return e ? parseInt(e.textContent) : 0;"
            )

        deadline = time.time() + 30
        while n_volumes() < 5 and time.time() < deadline:
            time.sleep(0.2)
        first = n_volumes()
        time.sleep(2.0)
        assert n_volumes() > first >= 5  # the page follows the volumes as they arrive
        state = driver.execute_script("""
            const decks = [...document.querySelectorAll('audio')];
            return {rows: document.querySelectorAll('#top tr').length,
                    legend: document.getElementById('legend').textContent,
                    decks: decks.map(a => ({src: a.getAttribute('src'), ready: a.readyState, error: a.error ? a.error.code : null,
                                            duration: a.duration}))};
        """)
        assert state["rows"] == 5 and "rock" in state["legend"]
        deadline = time.time() + 20  # the truncated file is reported on the page, named
        while "vol_0021.nii" not in driver.find_element("id", "issues").text and time.time() < deadline:
            time.sleep(0.2)
        assert "vol_0021.nii" in driver.find_element("id", "issues").text
        assert "decoded top genre = genre playing in" in driver.find_element("id", "match-summary").text
        deadline = time.time() + 20  # the rank of the playing clip among the test clips, once one has ended
        while "top-1" not in driver.find_element("id", "rank-summary").text and time.time() < deadline:
            time.sleep(0.2)
        assert "among the" in driver.find_element("id", "rank-summary").text
        assert "top-1" in driver.find_element("id", "rank-summary").text
        loaded = [d for d in state["decks"] if d["src"]]
        assert loaded and all(d["src"].startswith("/audio/") for d in loaded)
        deadline = time.time() + 15
        while time.time() < deadline:
            decks = driver.execute_script("return [...document.querySelectorAll('audio')].map(a => "
                                          "({src: a.getAttribute('src'), ready: a.readyState, error: a.error}));")  # fmt: skip
            if any(d["src"] and d["ready"] >= 1 and d["error"] is None for d in decks):
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"no playable audio element: {decks}")
        driver.find_element("id", "listen").click()
        deadline = time.time() + 15
        played = 0.0
        while time.time() < deadline and played <= 0.2:
            played = driver.execute_script(
                "return Math.max(...[...document.querySelectorAll('audio')].map(a => a.paused ? 0 : a.currentTime));"
            )
            time.sleep(0.2)
        assert played > 0.2, driver.find_element("id", "audio-state").text  # the top track really plays
        severe = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
        assert not severe, severe
    finally:
        driver.quit()
        stop.set()
        thread.join(timeout=30)
    assert result["summary"]["n_volumes"] >= first
