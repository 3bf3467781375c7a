"""``reproduce`` on a small study written by the simulator (composed music, simulated brains, acoustic)."""

from __future__ import annotations

import json

import pytest
from threadpoolctl import threadpool_limits

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _one_thread():
    with threadpool_limits(1):
        yield


def test_reproduce_on_simulated_study(tmp_path):
    simulate = pytest.importorskip("brain2music.simulate")
    from brain2music.study.reproduce import reproduce

    sim = simulate.simulate_study(
        tmp_path / "sim", n_subjects=2, n_voxels=400, seed=0, clips_per_genre=6, test_clips_per_genre=3,
        train_runs=6, test_runs=3, n_parcels=16, n_auditory_parcels=3, snr=3.0, progress=False,
    )  # fmt: skip
    truth = json.loads((sim / "truth" / "truth.json").read_text())
    res = reproduce(
        sim / "bids", stimuli=sim / "stimuli", out=tmp_path / "results", methods=["ridge", "ensemble", "encsel", "aligned"],
        n_top_parcels=3, n_permutations=100, logo=False, cache_dir=tmp_path / "cache", verbose=False,
    )  # fmt: skip
    test_rows = [r for r in res.rows if r.split == "test"]
    assert len(test_rows) == 2 * 4
    for row in test_rows:
        assert row.id_acc > 0.6 and row.space == "standardized", row
    for c in res.chance:
        assert c.id_acc == pytest.approx(0.5, abs=0.1)
    # The ensemble's best parcel is one the simulator made auditory.
    for e in res.ensemble_parcels:
        assert e.parcels[0] in truth["auditory_parcels"]
