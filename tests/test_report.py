"""The HTML report: built from a results folder, checked in a real headless browser."""

from __future__ import annotations

import re

import pytest

from brain2music.cli import main
from brain2music.errors import DataFileNotFoundError
from brain2music.report import build_report
from browser import browser_available, check_page, serve
from report_fakes import write_fake_reconstruction, write_fake_results


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = write_fake_results(tmp_path_factory.mktemp("run") / "results")
    write_fake_reconstruction(root)
    return build_report(root, max_clips=2)


def test_report_content(report):
    html = report.read_text()
    assert "0.700 ± 0.010 [0.690, 0.710] p=0.001" in html  # the Table-2 cell of ridge, with CI and p
    assert "Chance" in html and "Split-half reproducibility" in html and "Oracle retrieval" not in html
    # N-way top-1 beside the pairwise id acc, with its interval's n and the chance k/N.
    assert "Top-1 identification among the test clips" in html
    assert (
        "0.200 ± 0.020 [0.100, 0.300] p=0.004" in html and "2 subjects × 10 clips; CI resamples clips" in html
    )
    assert "0.100 ± 0.000 (k/N = 0.100)" in html
    assert "standardized" in html
    # Standardized-space numbers: no published figures beside them, and a note saying why.
    assert "Brain2Music MuLan-music" not in html and "Not comparable with published figures" in html
    # The best method by training CV (aligned) against ridge, paired on the same clips.
    assert "aligned − ridge" in html and "+0.150 [+0.100, +0.200]" in html
    assert html.count("<audio") == 2 * 6  # 2 clips × (original, 3 retrieved, generated, true embedding)
    # The fake reconstruction.json spells the true embedding "oracle", as earlier versions wrote it.
    assert "retrieval with the true embedding" in html and "retrieved with the true embedding" in html
    assert "Oracle" not in html and "n = 1 subject" in html
    # Offline page: no external resources, no scripts.
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert "<script" not in html
    assets = report.parent / "report_assets"
    for ref in re.findall(r'src="([^"]+)"', html):
        assert (report.parent / ref).is_file(), ref
    assert not any(
        p.name.startswith(".")
        for p in report.parent.iterdir()
        if p.name != "report_assets" and "partial" in p.name
    )
    assert len(list(assets.glob("*.png"))) >= 5


@pytest.mark.browser
@pytest.mark.skipif(not browser_available(), reason="needs chromium, chromedriver and selenium")
def test_report_loads_in_a_real_browser(report):
    with serve(report.parent) as base:
        state = check_page(f"{base}/report.html")
    assert state["images"] and state["audio"]
    broken_imgs = [i["src"] for i in state["images"] if not i["ok"]]
    broken_audio = [a for a in state["audio"] if not a["ok"]]
    assert not broken_imgs, broken_imgs
    assert not broken_audio, broken_audio
    assert all(a["duration"] > 1.0 for a in state["audio"])
    assert not state["severe_logs"], state["severe_logs"]


def test_browser_check_catches_a_broken_page(tmp_path):
    if not browser_available():
        pytest.skip("needs chromium, chromedriver and selenium")
    (tmp_path / "index.html").write_text(
        '<img src="missing.png"><audio src="missing.wav" preload="metadata"></audio>'
    )
    with serve(tmp_path) as base:
        state = check_page(f"{base}/index.html", timeout=10)
    assert not state["images"][0]["ok"] and not state["audio"][0]["ok"]


def test_report_draws_published_figures_only_beside_paper_space_numbers(tmp_path):
    paper = build_report(write_fake_results(tmp_path / "paper", space="paper"), max_clips=0).read_text()
    assert "Brain2Music MuLan-music" in paper and "Not comparable" not in paper
    assert "same metric space" in paper


def test_report_of_an_old_results_folder_says_how_to_regenerate(tmp_path):
    import json

    from brain2music.results import ResultsLayoutError

    (tmp_path / "old").mkdir()
    old = {"version": "0.1.0", "config": {"bids_root": "/data/ds", "stimuli": "/data/gtzan", "encoders": ["acoustic"],
                                          "methods": ["ridge"], "out": "/r"}, "rows": []}  # fmt: skip
    (tmp_path / "old" / "results.json").write_text(json.dumps(old))
    with pytest.raises(
        ResultsLayoutError, match=r"layout 1.*brain2music reproduce /data/ds --stimuli /data/gtzan"
    ):
        build_report(tmp_path / "old")


def test_report_needs_results(tmp_path, capsys):
    with pytest.raises(DataFileNotFoundError, match="results.json"):
        build_report(tmp_path)
    assert main(["report", str(tmp_path)]) == 2
    assert "results.json" in capsys.readouterr().err


def test_report_plays_several_generators_side_by_side(tmp_path):
    """Two reconstructions of the same results (e.g. the composer and a mosaic): each clip plays both
    generations, named by their generator, the mosaic with the recordings it is made of."""
    import json
    import shutil

    root = write_fake_results(tmp_path / "results")
    offline = write_fake_reconstruction(root)
    mosaic = shutil.copytree(offline, tmp_path / "recon_mosaic")
    doc = json.loads((mosaic / "reconstruction.json").read_text())
    doc["generator"] = {"generator": "best-of", "n": 4, "base": {"generator": "mosaic"}}
    for c in doc["clips"]:
        c["segments"] = [{"path": f"/music/{name}.ogg", "source_start": 1.0, "output_start": 3.0 * k,
                          "duration": 3.0} for k, name in enumerate(["a", "b", "a", "c"])]  # fmt: skip
    (mosaic / "reconstruction.json").write_text(json.dumps(doc))
    assert main(["report", str(root), "--recon", str(offline), "--recon", str(mosaic), "--max-clips", "2",
                 "--out", str(tmp_path / "page")]) == 0  # fmt: skip
    html = (tmp_path / "page" / "report.html").read_text()
    assert html.count("<audio") == 2 * 7  # 2 clips × (original, 3 retrieved, 2 generated, oracle)
    n = html.count("generated · offline")  # the template names each player more than once
    assert n >= 2 and html.count("generated · best-of-4 mosaic") == n
    assert html.count("4 segments of 3 recordings: a, b, c") == 2
