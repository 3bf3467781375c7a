"""``reproduce`` on fMRIPrep derivatives: a tiny ``simulate --layout fmriprep`` study end to end, Destrieux
parcels named in results.json and the report, and bad input that stops before anything is written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from brain2music.errors import ConfigError, DataError, DataFileNotFoundError

pytestmark = pytest.mark.slow

# Three 165-s training runs: long enough for fMRIPrep's 128-s cosine regressors (high_pass).
SIM = dict(
    n_subjects=1, n_voxels=400, seed=5, clips_per_genre=3, test_clips_per_genre=1, train_runs=3,
    test_runs=1, test_repeats=2, n_parcels=24, n_auditory_parcels=4,
)  # fmt: skip


@pytest.fixture(autouse=True)
def _one_thread():
    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def sim(tmp_path_factory) -> dict:
    """One simulated subject in the fMRIPrep layout (head motion, confounds, FreeSurfer aparc), and
    embeddings of the true stimulus features (one 15-s window per clip) so no encoder runs."""
    from brain2music.embeddings import EmbeddingSet
    from brain2music.simulate import load_truth, simulate_study

    root = tmp_path_factory.mktemp("simfp")
    study = simulate_study(root / "study", **SIM, layout="fmriprep", progress=False)
    truth = load_truth(study)
    feats = truth.features["clip_features"]
    emb = root / "emb.npz"
    EmbeddingSet(
        np.array(truth.features["clip_ids"]), feats.mean(axis=1, keepdims=True),
        {"encoder": "acoustic", "window": 15.0},
    ).save(emb)  # fmt: skip
    sub = truth.subject(1)
    auditory = np.unique(sub["aparc_label"][sub["auditory"]])
    return {"bids": study / "bids", "fmriprep": study / "bids/derivatives/fmriprep", "emb": emb,
            "auditory": set(int(a) for a in auditory)}  # fmt: skip


def _args(sim, out, *extra):
    return [
        "reproduce", str(sim["bids"]), "--fmriprep", str(sim["fmriprep"]), "--embeddings",
        f"acoustic={sim['emb']}", "--methods", "ridge,ensemble", "--cv", "3", "--n-permutations", "50",
        "--n-bootstrap", "50", "--no-logo", "--n-top-parcels", "3", "--out", str(out), "--quiet", *extra,
    ]  # fmt: skip


def test_cli_reproduce_on_fmriprep_with_destrieux_parcels(sim, tmp_path):
    from brain2music.cli import main
    from brain2music.data.parcels import destrieux_names
    from brain2music.report import build_report
    from brain2music.results import ResultsFolder

    out = tmp_path / "results"
    argv = _args(
        sim, out, "--space", "T1w", "--confounds", "motion,wm_csf,high_pass", "--parcels", "destrieux"
    )
    assert main(argv) == 0
    res = ResultsFolder(out).read()
    source = res.config.source
    assert source.kind == "fmriprep" and source.fmriprep == sim["fmriprep"].resolve()
    assert source.options == {"space": "T1w", "confounds": "motion:full,wm_csf:basic,high_pass"}
    assert res.config.parcels == "destrieux"
    (ens,) = res.ensemble_parcels
    names = destrieux_names()
    assert ens.parcel_names == [names[p] for p in ens.parcels]
    assert set(ens.all_parcels) <= set(names)  # cortical Destrieux labels only
    # Known answer: the simulator gave the auditory Destrieux parcels the tuned voxels.
    assert ens.parcels[0] in sim["auditory"], (ens.parcels, sim["auditory"])
    test = {r.method: r.id_acc for r in res.rows if r.split == "test"}
    assert test["ridge"] > 0.6 and test["ensemble"] > 0.6, test
    html = build_report(out).read_text(encoding="utf-8")
    assert f"{ens.parcel_names[0]} ({ens.parcels[0]})" in html


def test_confounds_none_and_cortex_mask(sim, tmp_path):
    from brain2music.study.reproduce import reproduce

    kw = dict(
        fmriprep=sim["fmriprep"], embeddings={"acoustic": sim["emb"]}, methods=["ridge"], cv=3,
        n_permutations=20, n_bootstrap=20, logo=False, verbose=False,
    )  # fmt: skip
    none = reproduce(sim["bids"], out=tmp_path / "a", confounds="none", **kw)
    cortex = reproduce(sim["bids"], out=tmp_path / "b", mask="cortex", **kw)
    assert none.config.source.options["confounds"] == "none"
    assert cortex.config.source.options["mask"] == "cortex"
    n_all = none.encoding[0].n_voxels
    assert 0 < cortex.encoding[0].n_voxels < n_all  # white matter and ventricles left out


def _copy(sim, tmp_path) -> dict:
    bids = tmp_path / "bids"
    shutil.copytree(sim["bids"], bids)
    return dict(sim, bids=bids, fmriprep=bids / "derivatives" / "fmriprep")


def _first(root: Path, pattern: str) -> Path:
    return sorted(root.rglob(pattern))[0]


def _short_table(s):
    tsv = _first(s["fmriprep"], "*Training_run-01_desc-confounds_timeseries.tsv")
    lines = tsv.read_text().splitlines()
    tsv.write_text("\n".join(lines[:-1]) + "\n")
    return tsv.name, {}


def _no_column(s):
    import pandas as pd

    tsv = _first(s["fmriprep"], "*Training_run-02_desc-confounds_timeseries.tsv")
    pd.read_csv(tsv, sep="\t").drop(columns=["csf"]).to_csv(tsv, sep="\t", index=False)
    return tsv.name, {}


def _mask_grid(s):
    import nibabel as nib

    path = _first(s["fmriprep"], "*Test_run-01_space-T1w_desc-brain_mask.nii.gz")
    img = nib.load(str(path))
    nib.save(nib.Nifti1Image(np.ones((4, 4, 4), np.uint8), img.affine), str(path))
    return path.name, {}


def _no_aparc(s):
    path = _first(s["fmriprep"], "aparc.a2009s+aseg.mgz")
    path.unlink()
    return "aparc.a2009s+aseg.mgz", {"parcels": "destrieux"}


def _desikan(s):
    import nibabel as nib

    path = _first(s["fmriprep"], "aparc.a2009s+aseg.mgz")
    img = nib.load(str(path))
    data = np.asarray(img.dataobj).copy()
    # Cortical Destrieux labels -> Desikan-Killiany-like ones (what aparc+aseg.mgz holds).
    data[(data >= 11100) & (data < 12000)] = 1001
    data[(data >= 12100) & (data < 13000)] = 2001
    nib.save(nib.MGHImage(data.astype(np.int32), img.affine), str(path))
    return path.name, {"parcels": "destrieux"}


def _space(s):
    return "MNI152NLin2009cAsym", {"space": "MNI152NLin2009cAsym"}


@pytest.mark.parametrize(
    "corrupt, error",
    [(_short_table, DataError), (_no_column, DataError), (_mask_grid, DataError),
     (_no_aparc, DataFileNotFoundError), (_desikan, DataError), (_space, DataFileNotFoundError)],
    ids=["table-length", "column", "mask-grid", "no-freesurfer", "no-destrieux", "space"],
)  # fmt: skip
def test_bad_derivatives_name_the_file_and_write_nothing(sim, tmp_path, corrupt, error):
    from brain2music.study.reproduce import reproduce

    s = _copy(sim, tmp_path)
    named, kw = corrupt(s)
    out = tmp_path / "results"
    with pytest.raises(error, match=named.replace("+", r"\+").replace(".", r"\.")):
        reproduce(
            s["bids"], fmriprep=s["fmriprep"], embeddings={"acoustic": s["emb"]}, methods=["ridge", "ensemble"],
            out=out, verbose=False, **kw,
        )  # fmt: skip
    assert not out.exists()


def test_source_options_that_would_be_ignored_are_errors(sim, tmp_path):
    from brain2music.study.reproduce import reproduce

    kw = dict(embeddings={"acoustic": sim["emb"]}, out=tmp_path / "r", verbose=False)
    with pytest.raises(ConfigError, match="--confounds only apply to fMRIPrep"):
        reproduce(sim["bids"], confounds="motion", **kw)
    with pytest.raises(ConfigError, match="destrieux"):
        reproduce(sim["bids"], parcels="destrieux", **kw)
    with pytest.raises(ConfigError, match="one of them"):
        reproduce(sim["bids"], fmriprep=sim["fmriprep"], derivatives=sim["bids"], **kw)
    assert not (tmp_path / "r").exists()
    assert json.loads((sim["bids"] / "dataset_description.json").read_text())  # untouched


def test_parcel_image_on_another_grid_is_resampled_by_world_coordinates(sim, tmp_path):
    """A label image at half the voxel size (the same world positions) gives the BOLD-grid labels back."""
    import nibabel as nib

    from brain2music.data import load_fmriprep
    from brain2music.study.context import subject_parcels

    sub = load_fmriprep(sim["fmriprep"], 1, bids_root=sim["bids"], confounds="none")
    atlas = sim["bids"] / "derivatives" / "parcels.nii.gz"
    img = nib.load(str(atlas))
    fine = np.asarray(img.dataobj)
    for axis in range(3):
        fine = np.repeat(fine, 2, axis=axis)
    path = tmp_path / "sub-001" / "fine.nii.gz"
    path.parent.mkdir()
    nib.save(nib.Nifti1Image(fine, img.affine @ np.diag([0.5, 0.5, 0.5, 1.0])), str(path))
    shutil.copy(atlas.with_name("parcels.tsv"), path.with_name("fine.tsv"))
    on_grid, names = subject_parcels(str(atlas), sub)
    resampled, fine_names = subject_parcels(str(tmp_path / "{subject}" / "fine.nii.gz"), sub)
    assert np.array_equal(resampled, on_grid) and on_grid.any()
    assert fine_names == names and len(names) == len(np.unique(on_grid[on_grid > 0]))
