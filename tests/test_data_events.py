"""Events parsing and the clip design, on the real ds003720 events files."""

from __future__ import annotations

import numpy as np
import pytest

from brain2music.data import GENRES, build_design, clip_id, clip_table, read_events
from brain2music.errors import DataError, DataFileNotFoundError
from conftest import DS003720

ALL_EVENTS = sorted(DS003720.glob("sub-*/func/*_events.tsv"))


def test_real_files_present():
    assert len(ALL_EVENTS) == 90
    assert b"\r\n" in ALL_EVENTS[0].read_bytes()  # the quirk we must survive


@pytest.mark.parametrize("path", ALL_EVENTS, ids=lambda p: p.name)
def test_every_real_events_file_parses(path):
    ev = read_events(path)
    assert len(ev) == 41
    assert set(ev.genre) <= set(GENRES)
    np.testing.assert_allclose(ev.onset, np.arange(41) * 15.0)
    np.testing.assert_allclose(ev.end - ev.start, 15.0)
    assert all(c == clip_id(g, t) for c, g, t in zip(ev.clip_id, ev.genre, ev.track))


def test_half_quoted_genre_and_short_row():
    # sub-001 Training run-12 holds the 14.99-s row (pop 49: start 9.59, end 24.58).
    ev = read_events(DS003720 / "sub-001/func/sub-001_task-Training_run-12_events.tsv")
    row = ev[ev.clip_id == "pop.00049"].iloc[0]
    assert row.duration == 15.0 and row.end == pytest.approx(24.59)
    half_quoted = [p for p in ALL_EVENTS if "\tclassical'\t" in p.read_text()]
    assert half_quoted, "expected the real files to contain a half-quoted genre"
    assert "classical" in set(read_events(half_quoted[0]).genre)


def _design(sub="sub-001"):
    func = DS003720 / sub / "func"
    train = {r: read_events(func / f"{sub}_task-Training_run-{r:02d}_events.tsv") for r in range(1, 13)}
    test = {r: read_events(func / f"{sub}_task-Test_run-{r:02d}_events.tsv") for r in range(1, 7)}
    return train, test, build_design(train, test, source=sub)


def test_design_matches_the_paper():
    train, test, design = _design()
    # Row 0 of training run k repeats run k-1's last clip; run-01 row 0 repeats run-12's last clip.
    for r in range(2, 13):
        assert train[r].clip_id.iloc[0] == train[r - 1].clip_id.iloc[40]
    assert train[1].clip_id.iloc[0] == train[12].clip_id.iloc[40]
    # Test runs: row i is clip U[i mod 10].
    for ev in test.values():
        ids = ev.clip_id.to_numpy()
        assert all(ids[i] == ids[i % 10] for i in range(41))
    clips = clip_table(design)
    tr, te = clips[clips.split == "train"], clips[clips.split == "test"]
    assert len(tr) == 480 and tr.clip_id.is_unique
    assert len(te) == 60
    assert (design[design.split == "test"].groupby("clip_id").size() == 4).all()
    assert (tr.genre.value_counts() == 48).all() and (te.genre.value_counts() == 6).all()
    assert (tr.groupby("run").size() == 40).all()


def test_same_design_for_every_subject():
    ref = clip_table(_design("sub-001")[2])
    for sub in ("sub-002", "sub-003", "sub-004", "sub-005"):
        assert clip_table(_design(sub)[2]).equals(ref)


def test_bad_genre_names_file_and_row(tmp_path):
    path = tmp_path / "x_events.tsv"
    path.write_text("onset\tduration\tgenre\ttrack\tstart\tend\r\n0\t15\t'polka'\t3\t1.0\t16.0\r\n")
    with pytest.raises(DataError, match=r"x_events.tsv.*row 1.*'polka'"):
        read_events(path)


def test_missing_column_and_missing_file(tmp_path):
    path = tmp_path / "y_events.tsv"
    path.write_text("onset\tgenre\n0\tjazz\n")
    with pytest.raises(DataError, match="missing column"):
        read_events(path)
    with pytest.raises(DataFileNotFoundError, match="nope_events.tsv"):
        read_events(tmp_path / "nope_events.tsv")


def test_clip_in_both_splits_is_rejected():
    train, test, _ = _design()
    leaked = test[1].copy()
    leaked.loc[3, ["genre", "track", "clip_id", "start"]] = train[1].loc[
        5, ["genre", "track", "clip_id", "start"]
    ]
    with pytest.raises(DataError, match="both training and test"):
        build_design(train, {**test, 1: leaked}, source="sub-001")
