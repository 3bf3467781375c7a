"""The simulator's fMRIPrep confounds: fMRIPrep's definitions checked on runs with known answers, and the
table as written (TSV with ``n/a``) read back by the data layer's confounds reader."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from brain2music.data.confounds import read_confounds_table
from brain2music.simulate.fmriprep_layout import confounds_table
from brain2music.simulate.motion import MOTION_COLUMNS

TR = 1.5


@pytest.fixture(scope="module")
def run():
    rng = np.random.default_rng(0)
    n, v = 120, 60
    tissue = np.repeat([0, 1, 2], v // 3)  # cortex, white matter, ventricle
    bold = (1000 + 10 * rng.standard_normal((n, v))).astype(np.float32)
    motion = np.zeros((n, 6))
    motion[60:, 0] = 0.3  # a 0.3-mm step in x at volume 60
    motion[90:, 5] = 0.002  # a 0.002-rad turn about z at volume 90: 0.1 mm of arc at 50 mm
    table, meta = confounds_table(bold, tissue, motion, TR)
    return bold, tissue, motion, table, meta


def test_signals_and_motion_follow_fmriprep_definitions(run):
    bold, tissue, motion, table, _ = run
    np.testing.assert_allclose(table["global_signal"], bold.mean(axis=1), rtol=1e-6)
    np.testing.assert_allclose(table["white_matter"], bold[:, tissue == 1].mean(axis=1), rtol=1e-6)
    np.testing.assert_allclose(table["csf"], bold[:, tissue == 2].mean(axis=1), rtol=1e-6)
    fd = table["framewise_displacement"].to_numpy()
    assert np.isnan(fd[0]) and np.isnan(table["dvars"][0]) and np.isnan(table["trans_x_derivative1"][0])
    expect = np.zeros(len(fd) - 1)
    expect[59], expect[89] = 0.3, 0.1
    np.testing.assert_allclose(fd[1:], expect, atol=1e-9)
    for j, name in enumerate(MOTION_COLUMNS):
        np.testing.assert_allclose(table[name], motion[:, j])
        np.testing.assert_allclose(table[f"{name}_power2"], motion[:, j] ** 2)


def test_cosine_basis_is_fmriprep_high_pass(run):
    *_, table, _ = run
    cos = table[[c for c in table.columns if c.startswith("cosine")]].to_numpy()
    # 128-s high-pass over 120 x 1.5 s: floor(2 * 180 / 128) = 2 -> one column besides the constant.
    assert cos.shape[1] == 1
    np.testing.assert_allclose(cos.T @ cos, np.eye(1), atol=1e-10)
    np.testing.assert_allclose(cos.sum(axis=0), 0.0, atol=1e-10)


def test_compcor_components_reach_half_the_variance(run):
    *_, table, meta = run
    for prefix in ("t_comp_cor", "c_comp_cor", "w_comp_cor", "a_comp_cor"):
        names = sorted(k for k in meta if k.startswith(prefix))
        assert names, prefix
        cumulative = [meta[k]["CumulativeVarianceExplained"] for k in names]
        assert cumulative[-1] >= 0.5 and (len(names) == 1 or cumulative[-2] < 0.5)
        comps = table[names].to_numpy()
        np.testing.assert_allclose(comps.T @ comps, np.eye(len(names)), atol=1e-8)  # orthonormal
    assert meta["c_comp_cor_00"]["Mask"] == "CSF" and meta["t_comp_cor_00"]["Method"] == "tCompCor"


def test_written_table_reads_back(run, tmp_path):
    *_, table, _ = run
    path = tmp_path / "sub-001_task-Training_run-01_desc-confounds_timeseries.tsv"
    # As FmriprepWriter.write_run writes it.
    path.write_text(table.to_csv(sep="\t", index=False, na_rep="n/a", float_format="%.8g"))
    back = read_confounds_table(path)
    assert list(back.columns) == list(table.columns)
    pd.testing.assert_frame_equal(back, table, check_dtype=False, check_exact=False, rtol=1e-7, atol=1e-9)
