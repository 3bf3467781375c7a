"""fMRIPrep derivatives: find the runs of a subject per output space, inspect them, load them.

fMRIPrep (Esteban et al. 2019) writes, per run, in ``<fmriprep>/sub-XX[/ses-YY]/func/``::

    sub-XX[_ses-YY]_task-T_run-NN_space-S[_res-R]_desc-preproc_bold.nii.gz   (+ .json: RepetitionTime)
    sub-XX[_ses-YY]_task-T_run-NN_space-S[_res-R]_desc-brain_mask.nii.gz
    sub-XX[_ses-YY]_task-T_run-NN_desc-confounds_timeseries.tsv (+ .json)    (< 20.2: _regressors.tsv)

with ``S`` e.g. ``T1w`` or ``MNI152NLin2009cAsym`` (``res-2``: the template at 2 mm). A space is named
here as fMRIPrep's ``--output-spaces`` writes it: ``T1w``, ``MNI152NLin2009cAsym:res-2``. The events of
each run come from the raw BIDS folder (``<bids>/sub-XX[/ses-YY]/func/*_events.tsv``), by default the
folder two levels above ``<fmriprep>`` (``<bids>/derivatives/fmriprep``).

:func:`load_fmriprep` checks everything it can from headers and tables first (:func:`plan_subject`:
missing runs, volume counts against the events, confounds rows and columns for the chosen strategy, mask
grids, the FreeSurfer file), then reads one run at a time: brain-mask voxels, confound regression with
:mod:`brain2music.data.confounds`, the 240-s median detrend and per-run z-score, the hemodynamic delay and
the clip cut — the same :class:`~brain2music.data.SubjectData` as the raw-BIDS loader.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from brain2music.data.bids import (
    TEST_TASK,
    TRAIN_TASK,
    Run,
    expected_volumes,
    find_events,
    first_sidecar_tr,
    header_tr,
    normalize_subject,
    parse_bids_name,
    task_sidecar,
)
from brain2music.data.confounds import ConfoundStrategy, check_confounds, read_confounds_table
from brain2music.errors import ConfigError, DataError, DataFileNotFoundError

__all__ = [
    "FmriprepRun",
    "SubjectPlan",
    "find_fmriprep_runs",
    "is_fmriprep_dir",
    "load_fmriprep",
    "plan_subject",
    "resolve_space",
]

_ALLOWED = {"sub", "ses", "task", "run", "space", "res", "cohort", "desc"}


@dataclass
class FmriprepRun:
    """The fMRIPrep files of one run in one output space."""

    subject: str
    session: str | None
    task: str
    run: int | None
    space: str
    bold: Path
    mask: Path | None = None
    sidecar: Path | None = None
    confounds: Path | None = None

    @property
    def key(self) -> tuple:
        """``(task, session, run)``: what pairs this run with its raw BIDS run and events."""
        return (self.task, self.session, self.run)

    @property
    def name(self) -> str:
        """The run's BIDS stem, ``sub-01[_ses-01]_task-Training[_run-01]`` (no space, suffix or extension)."""
        ses = f"_{self.session}" if self.session else ""
        run = f"_run-{self.run:02d}" if self.run is not None else ""
        return f"{self.subject}{ses}_task-{self.task}{run}"


def _space_key(ent: dict[str, str]) -> str:
    key = ent.get("space", "native")
    for extra in ("cohort", "res"):
        if extra in ent:
            key += f":{extra}-{ent[extra]}"
    return key


def is_fmriprep_dir(path: str | os.PathLike) -> bool:
    """True when ``path`` holds fMRIPrep BOLD derivatives (``sub-*/[ses-*/]func/*_desc-preproc_bold.nii.gz``)."""
    path = Path(path)
    if not path.is_dir():
        return False
    patterns = ("sub-*/func/*_desc-preproc_bold.nii.gz", "sub-*/ses-*/func/*_desc-preproc_bold.nii.gz")
    return any(next(path.glob(p), None) is not None for p in patterns)


def _func_folders(fmriprep: Path, subject: str) -> list[Path]:
    base = fmriprep / subject
    folders = [base / "func"] + sorted(p / "func" for p in base.glob("ses-*"))
    return [f for f in folders if f.is_dir()]


def find_fmriprep_runs(fmriprep_dir: str | os.PathLike, subject: str | int) -> dict[str, list[FmriprepRun]]:
    """Every preprocessed BOLD run of ``subject``, grouped by output space, with its mask and confounds.

    Returns ``{space: [FmriprepRun, ...]}`` sorted by task, session, run. Files with entities this reader
    does not know (``acq-``, ``echo-``, …) are skipped.
    """
    fmriprep = Path(fmriprep_dir)
    subject = normalize_subject(subject)
    if not fmriprep.is_dir():
        raise DataFileNotFoundError(f"fMRIPrep folder not found: {fmriprep}")
    folders = _func_folders(fmriprep, subject)
    if not folders:
        raise DataFileNotFoundError(
            f"{fmriprep}: no functional derivatives of {subject} (expected {fmriprep / subject / 'func'})"
        )
    bolds: dict[tuple, FmriprepRun] = {}
    masks, sidecars, confounds = {}, {}, {}
    for folder in folders:
        for path in sorted(folder.iterdir()):
            parsed = parse_bids_name(path.name)
            if parsed is None:
                continue
            ent, suffix, ext = parsed
            if f"sub-{ent['sub']}" != subject or "task" not in ent or set(ent) - _ALLOWED:
                continue
            session = f"ses-{ent['ses']}" if "ses" in ent else None
            run = int(ent["run"]) if "run" in ent else None
            rkey = (ent["task"], session, run)
            desc = ent.get("desc")
            if suffix == "bold" and desc == "preproc":
                skey = (_space_key(ent),) + rkey
                if ext == ".nii.gz":
                    bolds[skey] = FmriprepRun(subject, session, ent["task"], run, skey[0], path)
                elif ext == ".json":
                    sidecars[skey] = path
            elif suffix == "mask" and desc == "brain" and ext == ".nii.gz" and "task" in ent:
                masks[(_space_key(ent),) + rkey] = path
            elif desc == "confounds" and suffix in ("timeseries", "regressors") and ext == ".tsv":
                if suffix == "timeseries" or rkey not in confounds:
                    confounds[rkey] = path
    spaces: dict[str, list[FmriprepRun]] = {}
    for skey, r in bolds.items():
        r.mask, r.sidecar, r.confounds = masks.get(skey), sidecars.get(skey), confounds.get(r.key)
        spaces.setdefault(r.space, []).append(r)
    for runs in spaces.values():
        runs.sort(key=lambda r: (r.task, r.session or "", r.run or 0))
    return dict(sorted(spaces.items()))


def resolve_space(spaces: dict[str, list], requested: str, *, where: str) -> str:
    """Match a requested space (``T1w``, ``MNI152NLin2009cAsym``, ``…:res-2`` or ``…_res-2``) to one found."""
    req = str(requested).replace("_res-", ":res-").replace("_cohort-", ":cohort-")
    if req.startswith("space-"):
        req = req[len("space-") :]
    if req in spaces:
        return req
    matches = [s for s in spaces if s.split(":")[0] == req]
    if len(matches) == 1:
        return matches[0]
    found = ", ".join(spaces) or "none"
    if len(matches) > 1:
        raise ConfigError(
            f"{where}: space {requested!r} exists at several resolutions ({', '.join(matches)}); "
            "name one, e.g. --space " + matches[0]
        )
    raise DataFileNotFoundError(
        f"{where}: no *_space-{req.replace(':', '_')}_desc-preproc_bold.nii.gz files; spaces found: {found}"
    )


def default_bids_root(fmriprep: Path, subject: str) -> Path:
    """The raw BIDS folder beside an fMRIPrep output folder, where ``subject``'s events are read.

    Looks for a ``<subject>/`` folder two levels up (``bids/derivatives/fmriprep``), then one level up
    (``fmriprep`` beside the subjects).

    Raises
    ------
    DataFileNotFoundError
        When neither holds ``<subject>/``; the message asks for the BIDS root.
    """
    for candidate in (fmriprep.parent.parent, fmriprep.parent):
        if (candidate / subject).is_dir() and candidate != fmriprep:
            return candidate
    raise DataFileNotFoundError(
        f"no raw BIDS folder with {subject}'s events found next to {fmriprep} (looked in "
        f"{fmriprep.parent.parent}); pass the BIDS root (events are read from there)"
    )


@dataclass
class SubjectPlan:
    """Everything :func:`load_fmriprep` needs, checked from headers and tables (no image data read)."""

    subject: str
    fmriprep: Path
    bids_root: Path
    space: str
    runs: list[tuple[Run, FmriprepRun]]
    analysis_runs: list[int]
    tr: float
    design: object  # pandas DataFrame, brain2music.data.events.build_design
    n_volumes: list[int]
    strategy: ConfoundStrategy
    grid: tuple[tuple[int, ...], np.ndarray]
    aparc: Path | None = None
    info: dict = field(default_factory=dict)


def _run_tr(ev: Run, fp: FmriprepRun, bids_root: Path, header) -> float:
    tr = first_sidecar_tr([fp.sidecar, ev.sidecar, task_sidecar(bids_root, ev.task)])
    if tr is None:
        tr = header_tr(header)
        if tr <= 0:
            raise DataError(
                f"{fp.bold}: no RepetitionTime in its JSON sidecar, the raw one, or the NIfTI header"
            )
    return float(tr)


def match_runs(events: list[Run], runs: list[FmriprepRun], fmriprep: Path, space: str, subject: str):
    """Pair each raw run with events with its fMRIPrep run of the same ``(task, session, run)``.

    Parameters
    ----------
    events : list of Run
        The raw BIDS runs that have events.
    runs : list of FmriprepRun
        The subject's preprocessed runs in one output space.
    fmriprep, space, subject
        Used only to spell the expected paths of missing runs.

    Returns
    -------
    pairs : list of ``(Run, FmriprepRun)``
        In the order of ``events``.
    missing : list of str
        The expected ``*_desc-preproc_bold.nii.gz`` path of every event run without a preprocessed run.
    extra : list of FmriprepRun
        Preprocessed runs without events (the caller warns about them).
    """
    by_key = {r.key: r for r in runs}
    pairs, missing = [], []
    for ev in events:
        fp = by_key.pop((ev.task, ev.session, ev.run), None)
        if fp is None:
            ses_dir = f"{ev.session}/" if ev.session else ""
            missing.append(
                f"{fmriprep / subject}/{ses_dir}func/{ev.name}_space-{space.replace(':', '_')}_desc-preproc_bold.nii.gz"
            )
        else:
            pairs.append((ev, fp))
    return pairs, missing, list(by_key.values())


def plan_subject(
    fmriprep_dir: str | os.PathLike,
    subject: str | int,
    *,
    bids_root: str | os.PathLike | None = None,
    space: str = "T1w",
    confounds: str | ConfoundStrategy | None = "motion,wm_csf,high_pass",
    mask: str | os.PathLike | None = None,
    parcels: str | os.PathLike | None = None,
    freesurfer_dir: str | os.PathLike | None = None,
    train_task: str = TRAIN_TASK,
    test_task: str = TEST_TASK,
) -> SubjectPlan:
    """Check one subject's fMRIPrep inputs without reading image data; raise naming the first bad file.

    See :func:`load_fmriprep` for the parameters. Checks: the space exists; every run with events has a
    preprocessed BOLD run (and the reverse is warned about); volume counts against the events; one TR;
    one grid for every run and its brain mask; the confounds table of every run has one row per volume
    and the columns the strategy needs; the FreeSurfer segmentation exists when Destrieux parcels or the
    cortex mask are asked for.
    """
    from brain2music.data.events import build_design

    fmriprep = Path(fmriprep_dir)
    subject = normalize_subject(subject)
    strategy = ConfoundStrategy.parse(confounds)
    spaces = find_fmriprep_runs(fmriprep, subject)
    key = resolve_space(spaces, space, where=str(fmriprep / subject))
    bids_root = Path(bids_root) if bids_root is not None else default_bids_root(fmriprep, subject)
    events = find_events(bids_root, subject, train_task=train_task, test_task=test_task)
    pairs, missing, extra = match_runs(events, spaces[key], fmriprep, key, subject)
    if missing:
        raise DataFileNotFoundError(
            f"{len(missing)} run(s) with events in {bids_root / subject} have no fMRIPrep BOLD in space "
            f"{key}: expected " + ", ".join(missing[:4]) + (" …" if len(missing) > 4 else "")
        )
    if extra:
        warnings.warn(
            f"{fmriprep / subject}: ignoring {len(extra)} fMRIPrep run(s) of space {key} without events in "
            f"{bids_root}: {', '.join(r.bold.name for r in extra[:3])}",
            stacklevel=2,
        )
    n_vols, trs, grid = [], [], None
    for ev, fp in pairs:
        n_vol, tr, grid = _check_run(ev, fp, bids_root, strategy, grid, first=pairs[0][1])
        n_vols.append(n_vol)
        trs.append(tr)
    if len({round(t, 6) for t in trs}) > 1:
        raise DataError(f"{fmriprep / subject}: runs have different TRs {sorted(set(trs))}")
    analysis_runs = _analysis_runs(pairs)
    design = build_design(
        {n: _events(ev) for (ev, _), n in zip(pairs, analysis_runs) if ev.split == "train"},
        {n: _events(ev) for (ev, _), n in zip(pairs, analysis_runs) if ev.split == "test"},
        source=str(bids_root / subject),
    )
    for split, task in (("train", train_task), ("test", test_task)):
        if not (design.split == split).any():
            raise DataError(f"{bids_root / subject}: no {split} ({task}) runs found")
    aparc = None
    wants_fs = str(mask) == "cortex" or str(parcels) == "destrieux"
    if wants_fs:
        from brain2music.data.parcels import check_subject_space, find_aparc

        check_subject_space(key, "--parcels destrieux / --mask cortex")
        aparc = find_aparc(subject, fmriprep_dir=fmriprep, freesurfer_dir=freesurfer_dir)
    if mask not in (None, "brain", "cortex") and not Path(mask).is_file():
        raise DataFileNotFoundError(f"mask image not found: {mask}")
    return SubjectPlan(
        subject=subject, fmriprep=fmriprep, bids_root=bids_root, space=key, runs=pairs,
        analysis_runs=analysis_runs, tr=float(trs[0]), design=design, n_volumes=n_vols, strategy=strategy,
        grid=grid, aparc=aparc,
    )  # fmt: skip


def _check_run(ev: Run, fp: FmriprepRun, bids_root: Path, strategy: ConfoundStrategy, grid, *, first):
    """Header and table checks of one run; returns ``(n_volumes, tr, grid)`` (the grid of the first run)."""
    import nibabel as nib

    from brain2music.data.events import read_events

    try:
        img = nib.load(str(fp.bold))
    except Exception as exc:
        raise DataError(f"{fp.bold}: cannot read as a NIfTI image ({exc})") from exc
    if len(img.shape) != 4:
        raise DataError(f"{fp.bold}: expected a 4-D image (x, y, z, time), found shape {img.shape}")
    tr = _run_tr(ev, fp, bids_root, img.header)
    need = expected_volumes(read_events(ev.events), tr)
    if img.shape[3] != need:
        raise DataError(
            f"{fp.bold}: has {img.shape[3]} volumes but its events ({ev.events.name}) need {need} at TR {tr} s"
        )
    if grid is None:
        grid = (tuple(img.shape[:3]), img.affine)
    elif tuple(img.shape[:3]) != grid[0] or not np.allclose(img.affine, grid[1], atol=1e-3):
        raise DataError(
            f"{fp.bold}: grid {img.shape[:3]} differs from {first.bold.name}'s {grid[0]} "
            "(every run of a space must share one grid)"
        )
    _check_mask_file(fp, grid)
    if strategy.enabled:
        if fp.confounds is None:
            raise DataFileNotFoundError(
                f"confounds table missing for {fp.bold.name}: expected "
                f"{fp.bold.parent / (fp.name + '_desc-confounds_timeseries.tsv')} (or --confounds none)"
            )
        table = read_confounds_table(fp.confounds)
        meta = _json(fp.confounds.with_suffix(".json")) if "compcor" in strategy.components else None
        check_confounds(table, strategy, tsv=fp.confounds, n_volumes=img.shape[3], meta=meta)
    return int(img.shape[3]), tr, grid


def _events(ev: Run):
    from brain2music.data.events import read_events

    return read_events(ev.events)


def _json(path: Path) -> dict:
    from brain2music.data.confounds import _read_json

    return _read_json(path)


def _analysis_runs(pairs) -> list[int]:
    """Run numbers for the design: BIDS run numbers, or 1..n per split in (session, run) order with sessions."""
    if not any(ev.session for ev, _ in pairs):
        return [ev.run for ev, _ in pairs]
    counters = {"train": 0, "test": 0}
    out = []
    for ev, _ in pairs:
        counters[ev.split] += 1
        out.append(counters[ev.split])
    return out


def _check_mask_file(fp: FmriprepRun, grid) -> None:
    import nibabel as nib

    if fp.mask is None:
        return
    try:
        m = nib.load(str(fp.mask))
    except Exception as exc:
        raise DataError(f"{fp.mask}: cannot read as a NIfTI mask ({exc})") from exc
    if tuple(m.shape[:3]) != grid[0] or not np.allclose(m.affine, grid[1], atol=1e-3):
        raise DataError(
            f"{fp.mask}: brain mask on grid {tuple(m.shape[:3])} (affine {np.round(m.affine[:3, 3], 2).tolist()}); "
            f"expected the grid of {fp.bold.name}: {grid[0]} (affine {np.round(grid[1][:3, 3], 2).tolist()})"
        )


def _brain_mask(plan: SubjectPlan) -> np.ndarray:
    """Voxels inside every run's fMRIPrep brain mask (fMRIPrep masks differ slightly between runs)."""
    import nibabel as nib

    out = None
    for _, fp in plan.runs:
        if fp.mask is None:
            raise DataFileNotFoundError(
                f"brain mask missing for {fp.bold.name}: expected "
                f"{fp.bold.name.replace('_desc-preproc_bold', '_desc-brain_mask')} beside it (or --mask FILE)"
            )
        m = np.asanyarray(nib.load(str(fp.mask)).dataobj) > 0
        out = m if out is None else (out & m)
    if not out.any():
        raise DataError(f"{plan.fmriprep / plan.subject}: the runs' brain masks share no voxel")
    return out


def _reference(plan: SubjectPlan):
    import nibabel as nib

    return nib.Nifti1Image(np.zeros(plan.grid[0], dtype=np.uint8), plan.grid[1])


def subject_mask(plan: SubjectPlan, mask) -> tuple[np.ndarray, str]:
    """The voxel mask (3-D bool) and a description: brain masks, cortex from FreeSurfer, or a file."""
    from brain2music.data.preprocess import load_mask

    if mask is None or str(mask) == "brain":
        return _brain_mask(plan), "fMRIPrep desc-brain_mask (intersection over runs)"
    if str(mask) == "cortex":
        from brain2music.data.parcels import cortex_mask

        cortex = cortex_mask(plan.aparc, _reference(plan)) & _brain_mask(plan)
        if not cortex.any():
            raise DataError(f"{plan.aparc}: no cortical voxel inside the brain mask of {plan.subject}")
        return cortex, f"cortex (Destrieux labels of {plan.aparc}) within the brain mask"
    return load_mask(mask, _reference(plan)), str(mask)


def subject_parcels(plan: SubjectPlan, parcels) -> tuple[np.ndarray | None, dict | None, str | None]:
    """Parcel labels on the BOLD grid (3-D int), their names and the file read, from FreeSurfer or an atlas
    (:func:`brain2music.data.parcels.parcels_on_grid`)."""
    from brain2music.data.parcels import parcels_on_grid

    if parcels is None:
        return None, None, None
    return parcels_on_grid(parcels, plan.subject, _reference(plan), aparc=plan.aparc)


def _clean_fmriprep_run(plan: SubjectPlan, fp: FmriprepRun, n_vol: int, mask_arr, detrend_window):
    """One run's mask voxels with the plan's confounds regressed, detrended and z-scored; also the voxels
    that are not finite (before or after cleaning), the confounds' sample mask and their columns."""
    from brain2music.data.confounds import clean_run, load_run_confounds
    from brain2music.data.preprocess import read_masked_run

    conf, sample_mask, columns = (None, None, [])
    if plan.strategy.enabled:
        conf, sample_mask, columns = load_run_confounds(
            fp.bold, plan.strategy, n_volumes=n_vol, tsv=fp.confounds
        )
    data = read_masked_run(fp.bold, mask_arr)
    bad = ~np.isfinite(data).all(axis=0)
    data = clean_run(
        np.nan_to_num(data),
        tr=plan.tr,
        confounds=conf,
        sample_mask=sample_mask,
        detrend_window=detrend_window,
    )
    bad |= ~np.isfinite(data).all(axis=0)
    return data, bad, sample_mask, columns


def load_fmriprep(
    fmriprep_dir: str | os.PathLike,
    subject: str | int,
    *,
    bids_root: str | os.PathLike | None = None,
    space: str = "T1w",
    confounds: str | ConfoundStrategy | None = "motion,wm_csf,high_pass",
    mask: str | os.PathLike | None = None,
    parcels: str | os.PathLike | None = None,
    freesurfer_dir: str | os.PathLike | None = None,
    delay: int = 3,
    detrend_window: float | None = 240.0,
    train_task: str = TRAIN_TASK,
    test_task: str = TEST_TASK,
):
    """Load one subject from fMRIPrep derivatives into a :class:`~brain2music.data.SubjectData`.

    Parameters
    ----------
    fmriprep_dir : the fMRIPrep output folder (``<bids>/derivatives/fmriprep``).
    subject : ``"sub-001"``, ``"001"`` or ``1``.
    bids_root : raw BIDS root with the events (default: two folders above ``fmriprep_dir``).
    space : output space, e.g. ``"T1w"``, ``"MNI152NLin2009cAsym:res-2"``.
    confounds : strategy text (:mod:`brain2music.data.confounds`), a :class:`ConfoundStrategy`, or
        ``"none"``/``None`` for detrend + z-score only.
    mask : ``None``/``"brain"`` (fMRIPrep brain masks, intersected over runs), ``"cortex"`` (cortical
        Destrieux voxels of FreeSurfer's aparc.a2009s+aseg within the brain mask, the paper's choice) or
        a NIfTI mask on the BOLD grid.
    parcels : ``"destrieux"`` (FreeSurfer, T1w space only), a label image (NIfTI/.mgz, ``{subject}`` is
        substituted; resampled to the BOLD grid by nearest neighbour when on another grid), or None.
        Kept voxels' labels land in ``SubjectData.parcels``, names in ``parcel_names``.
    freesurfer_dir : FreeSurfer subjects folder (default ``<fmriprep>/sourcedata/freesurfer``).
    delay, detrend_window, train_task, test_task : as :func:`brain2music.data.load_subject`.

    Voxels that are NaN or constant in any run are dropped with a warning.
    """
    from brain2music.data.loader import SubjectData, _Assembler
    from brain2music.data.preprocess import cut_clips, drop_bad_voxels

    plan = plan_subject(
        fmriprep_dir, subject, bids_root=bids_root, space=space, confounds=confounds, mask=mask,
        parcels=parcels, freesurfer_dir=freesurfer_dir, train_task=train_task, test_task=test_task,
    )  # fmt: skip
    mask_arr, mask_source = subject_mask(plan, mask)
    labels_grid, names, parcel_source = subject_parcels(plan, parcels)
    design, tr = plan.design, plan.tr
    n_trs = int(round(float(design["duration"].median()) / tr))
    n_vox = int(mask_arr.sum())
    source = str(plan.fmriprep / plan.subject)
    assembler = _Assembler(design, n_trs, n_vox, source)
    bad = np.zeros(n_vox, dtype=bool)
    run_info = []
    for (ev, fp), run_no, n_vol in zip(plan.runs, plan.analysis_runs, plan.n_volumes):
        data, bad_run, sample_mask, columns = _clean_fmriprep_run(plan, fp, n_vol, mask_arr, detrend_window)
        bad |= bad_run
        rows = np.flatnonzero(((design.split == ev.split) & (design.run == run_no)).to_numpy())
        assembler.add(
            rows, cut_clips(data, design["onset"].to_numpy()[rows], tr=tr, n_trs=n_trs, delay=delay)
        )
        del data
        run_info.append(_run_summary(ev, fp, run_no, n_vol, sample_mask, columns))
    keep = drop_bad_voxels(bad, source=source)
    clips, train, train_runs, test = assembler.finish(keep)
    del assembler
    voxel_indices = np.flatnonzero(mask_arr.ravel())[keep]
    return SubjectData(
        subject=plan.subject, train=train, test=test, test_mean=test.mean(axis=1), clips=clips,
        train_runs=train_runs, tr=tr, delay=int(delay), mask=mask_arr, voxel_indices=voxel_indices,
        affine=plan.grid[1],
        parcels=None if labels_grid is None else labels_grid.ravel()[voxel_indices],
        parcel_names=names,
        info={
            "source": "fmriprep", "fmriprep": str(plan.fmriprep), "bids_root": str(plan.bids_root),
            "space": plan.space, "confounds": plan.strategy.describe(), "mask": mask_source,
            "parcels": parcel_source,
            "freesurfer_dir": None if freesurfer_dir is None else str(freesurfer_dir),
            "motion_correction": "fMRIPrep (realigned); confounds regressed: "
            + plan.strategy.describe(), "n_dropped_voxels": int(n_vox - keep.size), "runs": run_info,
        },
    )  # fmt: skip


def _run_summary(ev: Run, fp: FmriprepRun, run_no: int, n_vol: int, sample_mask, columns) -> dict:
    out = {
        "run": fp.name, "split": ev.split, "analysis_run": int(run_no), "bold": str(fp.bold),
        "n_volumes": int(n_vol), "n_regressors": len(columns),
        "n_censored": 0 if sample_mask is None else int(n_vol - len(sample_mask)),
    }  # fmt: skip
    if fp.confounds is not None:
        table = read_confounds_table(fp.confounds)
        if "framewise_displacement" in table:
            fd = table["framewise_displacement"].to_numpy(dtype=float)
            out["fd_mean"] = float(np.nanmean(fd)) if np.isfinite(fd).any() else None
            out["fd_max"] = float(np.nanmax(fd)) if np.isfinite(fd).any() else None
    return out
