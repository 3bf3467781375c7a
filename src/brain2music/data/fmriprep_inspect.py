"""Inspecting fMRIPrep derivatives without loading them: per subject and space, the runs found, their
volume counts against the events, the confound groups present, and every problem, for ``brain2music
inspect`` (:func:`inspect_fmriprep`)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from brain2music.data.bids import (
    TEST_TASK,
    TRAIN_TASK,
    Run,
    expected_volumes,
    find_events,
    first_sidecar_tr,
    normalize_subject,
    task_sidecar,
)
from brain2music.data.confounds import read_confounds_table
from brain2music.data.fmriprep import FmriprepRun, default_bids_root, find_fmriprep_runs, match_runs
from brain2music.errors import DataError, DataFileNotFoundError

__all__ = ["inspect_fmriprep"]


def _confound_groups(columns) -> dict[str, int]:
    cols = [str(c) for c in columns]
    groups = {
        "motion": sum(c.startswith(("trans_", "rot_")) for c in cols),
        "white_matter": sum(c.startswith("white_matter") for c in cols),
        "csf": sum(c.startswith("csf") and not c.startswith("csf_wm") for c in cols),
        "global_signal": sum(c.startswith("global_signal") for c in cols),
        "cosine": sum(c.startswith("cosine") for c in cols),
        "a_comp_cor": sum(c.startswith("a_comp_cor") for c in cols),
        "c_comp_cor": sum(c.startswith("c_comp_cor") for c in cols),
        "w_comp_cor": sum(c.startswith("w_comp_cor") for c in cols),
        "t_comp_cor": sum(c.startswith("t_comp_cor") for c in cols),
        "motion_outlier": sum(c.startswith("motion_outlier") for c in cols),
        "non_steady_state": sum(c.startswith("non_steady_state") for c in cols),
    }
    for single in ("framewise_displacement", "dvars", "std_dvars", "rmsd"):
        groups[single] = int(single in cols)
    return groups


def _inspect_run(ev: Run | None, fp: FmriprepRun, tr_hint: float | None) -> tuple[dict, list[str]]:
    import nibabel as nib

    problems = []
    row = {"run": fp.name, "space": fp.space, "bold": str(fp.bold), "split": ev.split if ev else None}
    try:
        img = nib.load(str(fp.bold))
        row["n_volumes"] = int(img.shape[3]) if len(img.shape) == 4 else None
    except Exception as exc:
        problems.append(f"{fp.bold}: cannot read as a NIfTI image ({exc})")
        return row, problems
    tr = first_sidecar_tr([fp.sidecar]) or tr_hint
    if ev is not None and tr:
        from brain2music.data.events import read_events

        need = expected_volumes(read_events(ev.events), tr)
        row["n_volumes_expected"] = need
        if row["n_volumes"] != need:
            problems.append(
                f"{fp.bold}: has {row['n_volumes']} volumes but its events ({ev.events.name}) need {need}"
            )
    if fp.mask is None:
        problems.append(f"{fp.bold.name}: no desc-brain_mask beside it")
    if fp.confounds is None:
        problems.append(f"{fp.bold.name}: no desc-confounds_timeseries.tsv beside it")
        return row, problems
    table = read_confounds_table(fp.confounds)
    row["confounds"] = str(fp.confounds)
    row["n_confound_rows"] = len(table)
    row["confound_columns"] = _confound_groups(table.columns)
    if len(table) != row["n_volumes"]:
        problems.append(
            f"{fp.confounds}: {len(table)} rows; the BOLD of run {fp.name} has {row['n_volumes']} volumes"
        )
    if "framewise_displacement" in table:
        fd = table["framewise_displacement"].to_numpy(dtype=float)
        if np.isfinite(fd).any():
            row["fd_mean"] = float(np.nanmean(fd))
            row["fd_max"] = float(np.nanmax(fd))
            row["n_fd_over_0.5"] = int(np.sum(fd > 0.5))
    return row, problems


def inspect_fmriprep(
    fmriprep_dir: str | os.PathLike,
    *,
    bids_root: str | os.PathLike | None = None,
    subjects: list[str] | None = None,
    train_task: str = TRAIN_TASK,
    test_task: str = TEST_TASK,
) -> dict:
    """Summarise fMRIPrep derivatives (headers and confounds tables only).

    Returns a JSON-ready dict: ``fmriprep``, ``bids_root``, ``subjects`` and ``per_subject[sub]`` with
    ``spaces`` (``{space: n_runs}``), ``runs`` (per run and space: volumes, confound column groups, mean
    and max framewise displacement, volumes with FD > 0.5 mm), and ``problems``: every run missing in a
    space or mismatched against the events (named), every table whose length differs from its BOLD.
    ``problems`` (top level) collects them all; the function does not raise for them.
    """
    fmriprep = Path(fmriprep_dir)
    if not fmriprep.is_dir():
        raise DataFileNotFoundError(f"fMRIPrep folder not found: {fmriprep}")
    if subjects:
        subjects = [normalize_subject(s) for s in subjects]
    else:
        subjects = sorted(p.name for p in fmriprep.iterdir() if p.is_dir() and p.name.startswith("sub-"))
    if not subjects:
        raise DataFileNotFoundError(
            f"{fmriprep}: no subject folders (sub-*); is this an fMRIPrep output folder?"
        )
    per_subject, all_problems = {}, []
    root_used = None
    for sub in subjects:
        problems: list[str] = []
        spaces = find_fmriprep_runs(fmriprep, sub)
        try:
            root = Path(bids_root) if bids_root is not None else default_bids_root(fmriprep, sub)
            events = find_events(root, sub, train_task=train_task, test_task=test_task)
            root_used = root_used or root
        except (DataError, DataFileNotFoundError) as exc:
            problems.append(f"events: {exc}")
            root, events = None, []
        tr = _events_tr(events, root)
        rows = []
        for key, runs in spaces.items():
            task_runs = [r for r in runs if r.task in (train_task, test_task)]
            pairs, missing, extra = match_runs(events, task_runs, fmriprep, key, sub)
            problems += [f"missing in space {key}: {m}" for m in missing]
            problems += [f"{r.bold}: no events for this run in {root}" for r in extra] if events else []
            for ev, fp in pairs + [(None, r) for r in extra]:
                row, probs = _inspect_run(ev, fp, tr)
                rows.append(row)
                problems += probs
        problems = list(dict.fromkeys(problems))  # a confounds table serves every space: report it once
        per_subject[sub] = {
            "spaces": {k: len(v) for k, v in spaces.items()},
            "n_event_runs": len(events),
            "runs": rows,
            "problems": problems,
        }
        all_problems += [f"{sub}: {p}" for p in problems]
    return {
        "fmriprep": str(fmriprep),
        "bids_root": str(root_used) if root_used else None,
        "subjects": subjects,
        "per_subject": per_subject,
        "problems": all_problems,
    }


def _events_tr(events: list[Run], root: Path | None) -> float | None:
    return first_sidecar_tr(p for ev in events for p in (ev.sidecar, task_sidecar(root, ev.task)))
