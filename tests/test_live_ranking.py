"""Live N-way identification: the rank of the clip playing among the results folder's test clips, per
volume, and the running top-1 / top-5, on a pipeline whose decoder's predictions are known."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from brain2music.evaluate import identification_scores, similarity_matrix
from brain2music.evaluate.space import MetricSpace
from brain2music.live import LiveModel, LivePipeline, VoxelGrid, summarize
from brain2music.live.ranking import load_test_clips
from brain2music.live.sources import Arrival
from brain2music.live.volumes import RawVolume
from brain2music.results import Predictions, ResultsFolder

TR, DELAY, R, DIM = 1.5, 3, 10, 8
TEST = [f"{g}.{i:05d}" for i, g in enumerate(["blues", "jazz", "rock", "metal", "pop", "disco"])]


class ScriptedDecoder:
    """Returns the rows of ``script`` one per call, whatever the input (the predictions are known)."""

    def __init__(self, script: np.ndarray):
        self.script, self.n = script, 0

    def predict(self, X):
        out = self.script[self.n][None]
        self.n += 1
        return out


@pytest.fixture
def folder(tmp_path):
    """A results folder with the decoder's test predictions: 6 test clips, standardized space."""
    rng = np.random.default_rng(0)
    target = rng.standard_normal((len(TEST), R, DIM)) * rng.uniform(0.5, 3.0, DIM) + rng.uniform(-2, 2, DIM)
    space = MetricSpace.fit("standardized", rng.standard_normal((40, R, DIM)) * 2.0 + 1.0)
    sim = similarity_matrix(space.transform(target), space.transform(target))
    pred = Predictions("sub-001", "fake", "ridge", np.array(TEST), np.array([c.split(".")[0] for c in TEST]),
                       target.astype(np.float32), target.astype(np.float32), sim, identification_scores(sim), space)  # fmt: skip
    results = ResultsFolder(tmp_path / "results")
    results.write_predictions(pred)
    return results


def _run(folder, clip_rows, playing):
    """Decode one volume per TR while the clips ``playing`` (ids, 15 s each) play; the decoder predicts
    ``clip_rows[j]`` for every volume that responds to the j-th clip. Returns (records, predictions)."""
    clips = load_test_clips(folder, "fake", "ridge", "sub-001")
    n_vol = DELAY + 10 * len(playing)
    script = np.zeros((n_vol, DIM))
    for t in range(DELAY, n_vol):
        script[t] = clip_rows[int(((t + 0.5 - DELAY) * TR) // 15)]
    grid = VoxelGrid((3, 3, 3), np.eye(4), np.arange(12))
    model = LiveModel(ScriptedDecoder(script), folder.root / "decoder.joblib", folder.root, "sub-001", "fake",
                      "ridge", TR, R, DELAY, TR, grid, "test", None, None, np.zeros(DIM), np.ones(DIM), [],
                      np.zeros((0, DIM)), test_clips=clips)  # fmt: skip
    events = pd.DataFrame({"onset": 15.0 * np.arange(len(playing)), "duration": 15.0, "clip_id": playing,
                           "genre": [c.split(".")[0] for c in playing]})  # fmt: skip
    pipeline = LivePipeline(model, None, events=events)
    rng = np.random.default_rng(1)
    records = [pipeline.process(Arrival(t, RawVolume(rng.standard_normal((3, 3, 3)).astype(np.float32), np.eye(4)),
                                        None, time.time())) for t in range(n_vol)]  # fmt: skip
    return records, script, clips


def _reference_rank(query, clip_id, pred):
    """Rank of ``clip_id`` among the test clips by Pearson r with ``query``, in the predictions' space."""
    targets = pred.space.transform(pred.target.astype(np.float64).mean(axis=1))
    q = pred.space.transform(query)
    r = np.array([np.corrcoef(q, t)[0, 1] for t in targets])
    return int(np.sum(r >= r[list(pred.clip_ids).index(clip_id)] - 1e-12))


def test_a_perfect_decoder_ranks_every_clip_first(folder):
    pred = folder.read_predictions("fake", "ridge", "sub-001")
    playing = [TEST[i] for i in (2, 0, 5, 4)]
    rows = pred.target.astype(np.float64).mean(axis=1)[[TEST.index(c) for c in playing]]
    records, _, clips = _run(folder, rows, playing)
    assert len(clips) == 6 and clips.source.endswith("sub-001.npz")
    ends = [r for r in records if r["clip_complete"]]
    assert [r["truth"]["clip_id"] for r in ends] == playing  # one finished presentation per clip
    assert all(r["truth_rank"] == 1 and r["top1"] and r["top5"] for r in ends)
    assert [r["n_clips_ranked"] for r in ends] == [1, 2, 3, 4] and ends[-1]["running_top1_acc"] == 1.0
    assert records[0]["truth_rank"] is None and records[0]["n_clips_ranked"] == 0
    summary = summarize(records, len(clips))
    assert (summary["n_clips_ranked"], summary["top1_acc"], summary["top5_acc"]) == (4, 1.0, 1.0)
    assert summary["top1_chance"] == pytest.approx(1 / 6) and summary["top5_chance"] == pytest.approx(5 / 6)


def test_known_predictions_give_the_reference_rank(folder):
    pred = folder.read_predictions("fake", "ridge", "sub-001")
    playing = [TEST[0], TEST[1], "classical.00099", TEST[3]]  # the third is no test clip
    vectors = pred.target.astype(np.float64).mean(axis=1)
    # every clip is decoded as another test clip (a shift), so the query mixes two clips mid-presentation
    rows = vectors[[3, 5, 0, 1]] + 0.3 * np.random.default_rng(2).standard_normal((4, DIM))
    records, script, _ = _run(folder, rows, playing)
    checked = 0
    for t, rec in enumerate(records):
        truth = rec["truth"]
        if truth is None or truth["clip_id"] not in TEST:
            assert rec["truth_rank"] is None and rec["top1"] is None
            continue
        query = script[max(0, t - R + 1) : t + 1].mean(axis=0)
        assert rec["truth_rank"] == _reference_rank(query, truth["clip_id"], pred), t
        assert rec["top5"] == (rec["truth_rank"] <= 5)
        checked += 1
    assert checked == 30
    ends = [r for r in records if r["clip_complete"]]
    assert [r["truth"]["clip_id"] for r in ends] == [TEST[0], TEST[1], TEST[3]]
    summary = summarize(records, 6)
    assert summary["top1_acc"] == pytest.approx(np.mean([r["truth_rank"] == 1 for r in ends]))
    assert summary["top1_acc"] < 1.0  # a wrong decode is not ranked first
