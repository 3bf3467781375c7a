"""The field's N-way metric (top-1 / top-5) in every test row, honest intervals with few subjects, and the
encoding ratio over voxels chosen without the test clips."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

import brain2music.study.reproduce as rep
from brain2music.evaluate import identification_scores, similarity_matrix, topk_scores
from brain2music.evaluate.stats import hierarchical_bootstrap_ci
from brain2music.results import ResultsFolder
from brain2music.study.scoring import topk_fields
from test_reproduce import SUBJECTS, _one_thread, _run, study  # noqa: F401  (fixtures)


def test_topk_in_every_test_row_and_the_summary_carries_its_n(study, tmp_path):  # noqa: F811
    out = tmp_path / "results"
    res = _run(study, out)
    on_disk = json.loads((out / "results.json").read_text())
    folder = ResultsFolder(out)
    for row in on_disk["rows"]:
        if row["split"] == "train":
            assert row["top1_acc"] is None and row["top5_acc"] is None
            continue
        pred = folder.read_predictions("acoustic", row["method"], row["subject"])
        for k in (1, 5):
            assert row[f"top{k}_acc"] == pytest.approx(topk_scores(pred.similarity, k).mean())
            lo, hi = row[f"top{k}_acc_ci"]
            assert lo <= row[f"top{k}_acc"] <= hi
            assert row[f"top{k}_acc_p"] == pytest.approx(1 / 1001)  # far above chance k/60
        # 0.5-sd noise on 20 tuned voxels: nearly every clip is its own best match.
        assert row["top1_acc"] > 0.9 and row["top5_acc"] > 0.97, row
    for c in on_disk["chance"]:
        assert c["n_clips"] == 60
        assert c["top1_chance"] == pytest.approx(1 / 60) and c["top5_chance"] == pytest.approx(5 / 60)
        assert c["top1_acc"] == pytest.approx(1 / 60, abs=0.02) and c["top5_acc"] == pytest.approx(
            5 / 60, abs=0.03
        )
    for h in on_disk["split_half"]:
        assert h["top1_acc"] > 0.9 and h["top5_acc"] > 0.97 and h["n_clips"] == 60
    for s in on_disk["summary"]:
        if s["split"] == "train":
            assert s["id_acc_ci"] is None and s["ci_resamples"] is None
            continue
        assert s["n_subjects"] == 2 and s["n_clips"] == 60 and s["ci_resamples"] == "clips"
        rows = [r for r in res.rows if r.method == s["method"] and r.split == "test"]
        preds = [folder.read_predictions("acoustic", s["method"], r.subject) for r in rows]
        assert s["top1_acc_mean"] == pytest.approx(np.mean([r.top1_acc for r in rows]))
        assert s["top5_acc_p"] < 0.01
        # The interval resamples the clips of both subjects (2 subjects: not the subjects themselves).
        expected = hierarchical_bootstrap_ci([p.clip_scores for p in preds], same_clips=True, random_state=0)
        assert s["id_acc_ci"] == pytest.approx(list(expected))
    # The encoding ratio averages over the voxels chosen by training CV, none chosen by test significance.
    for e in on_disk["encoding"]:
        assert "mean_test_r_over_ceiling_significant" not in e
        arrays = np.load(out / e["npz"])
        sel = arrays["selected"]
        ceiling = arrays["noise_ceiling"][sel].astype(np.float64)
        ok = np.isfinite(ceiling) & (ceiling > 0)
        ratio = arrays["test_r"][sel][ok] / ceiling[ok]
        assert e["mean_test_r_over_ceiling_selected"] == pytest.approx(float(ratio.mean()), rel=1e-5)
    table = (out / "table2.csv").read_text()
    assert "top1_acc,Chance,standardized,2 subjects; no CI," in table and "(k/N = 0.017)" in table
    assert "Split-half, all repeats (4 repeats)" in table


def test_topk_fields_perfect_and_shuffled_predictions():
    rng = np.random.default_rng(0)
    targets = rng.standard_normal((60, 1, 16))
    perfect = topk_fields(similarity_matrix(targets, targets), 500, 500, 0)
    assert perfect["top1_acc"] == 1.0 and perfect["top5_acc"] == 1.0
    assert perfect["top1_acc_p"] == pytest.approx(1 / 501) and perfect["top1_acc_ci"] == [1.0, 1.0]
    top5, p5 = [], []
    for seed in range(10):
        r = np.random.default_rng(seed + 1)
        decoded = targets + 0.3 * r.standard_normal(targets.shape)
        shuffled = decoded[r.permutation(60)]
        f = topk_fields(similarity_matrix(shuffled, targets), 200, 200, seed)
        top5.append(f["top5_acc"])
        p5.append(f["top5_acc_p"])
    assert np.mean(top5) == pytest.approx(5 / 60, abs=0.03)
    assert np.median(p5) > 0.1


def _fake_predictions(quality: float, seed: int, n: int = 60):
    r = np.random.default_rng(seed)
    targets = r.standard_normal((n, 1, 8))
    sim = similarity_matrix(targets + r.standard_normal(targets.shape) / quality, targets)
    return SimpleNamespace(
        clip_ids=np.arange(n).astype(str), similarity=sim, clip_scores=identification_scores(sim)
    )


def test_summary_interval_of_two_subjects_is_not_their_range():
    settings = SimpleNamespace(n_bootstrap=2000, n_permutations_id=200, random_state=0)
    good, bad = _fake_predictions(3.0, 1), _fake_predictions(0.4, 2)
    means = [good.clip_scores.mean(), bad.clip_scores.mean()]
    assert means[0] - means[1] > 0.2  # two very different subjects
    out = rep._test_summary([good, bad], settings)
    lo, hi = out["id_acc_ci"]
    assert out["ci_resamples"] == "clips" and out["n_clips"] == 60
    # A bootstrap over 2 subjects gives about [min, max]; resampling their clips gives the uncertainty of
    # the mean over these two subjects, much narrower and centred on it.
    assert hi - lo < 0.5 * (max(means) - min(means))
    assert lo < np.mean(means) < hi
    for k in (1, 5):
        assert out[f"top{k}_acc_ci"][0] <= out[f"top{k}_acc_mean"] <= out[f"top{k}_acc_ci"][1]
        assert out[f"top{k}_acc_sd"] == pytest.approx(
            np.std([topk_scores(p.similarity, k).mean() for p in (good, bad)], ddof=1)
        )
    three = rep._test_summary([good, bad, _fake_predictions(1.0, 3)], settings)
    assert three["ci_resamples"] == "clips, subjects"
