"""Finding the runs of a ds003720-like BIDS dataset and checking them without reading image data.

Expected layout (``.nii`` or ``.nii.gz``)::

    ROOT/sub-001/func/sub-001_task-Training_run-01_bold.nii
    ROOT/sub-001/func/sub-001_task-Training_run-01_bold.json     (RepetitionTime)
    ROOT/sub-001/func/sub-001_task-Training_run-01_events.tsv
    ...                task-Test_run-01 ...

``RepetitionTime`` is read from the run's sidecar, else from a dataset-level ``task-<task>_bold.json``
(BIDS inheritance), else from the NIfTI header.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from brain2music.data.events import GENRES, build_design, clip_table, read_events
from brain2music.errors import DataError, DataFileNotFoundError

TRAIN_TASK = "Training"
TEST_TASK = "Test"

_RUN_RE = re.compile(
    r"^(?P<sub>sub-[A-Za-z0-9]+)_task-(?P<task>[A-Za-z0-9]+)_run-(?P<run>\d+)_(?P<kind>bold|events)"
    r"(?P<ext>\.nii\.gz|\.nii|\.json|\.tsv)$"
)


@dataclass
class Run:
    """The files of one functional run."""

    subject: str
    task: str
    split: str  # "train" or "test"
    run: int
    bold: Path | None = None
    sidecar: Path | None = None
    events: Path | None = None
    session: str | None = None  # "ses-01" when the dataset has sessions

    @property
    def name(self) -> str:
        """The run's BIDS stem, ``sub-01[_ses-01]_task-Training_run-01`` (no suffix or extension)."""
        ses = f"_{self.session}" if self.session else ""
        return f"{self.subject}{ses}_task-{self.task}_run-{self.run:02d}"


@dataclass
class RunInfo:
    """Header facts of one run (no image data read)."""

    run: Run
    n_volumes: int
    tr: float
    shape: tuple[int, ...]
    events: object = field(repr=False, default=None)  # pandas DataFrame


def parse_bids_name(name: str) -> tuple[dict[str, str], str, str] | None:
    """Split a BIDS file name into ``(entities, suffix, extension)``; ``None`` if it is not one.

    ``parse_bids_name("sub-01_ses-2_task-Test_run-03_space-T1w_desc-preproc_bold.nii.gz")`` gives
    ``({"sub": "01", "ses": "2", "task": "Test", "run": "03", "space": "T1w", "desc": "preproc"},
    "bold", ".nii.gz")``. Entity order is kept (dicts are ordered).
    """
    stem, dot, rest = name.partition(".")
    ext = dot + rest
    parts = stem.split("_")
    if len(parts) < 2:
        return None
    entities: dict[str, str] = {}
    for part in parts[:-1]:
        key, sep, value = part.partition("-")
        if not sep or not key.isalnum() or not value or not value.replace("+", "").isalnum():
            return None
        entities[key] = value
    if "sub" not in entities or not parts[-1].isalnum():
        return None
    return entities, parts[-1], ext


def find_events(
    root: str | os.PathLike,
    subject: str | int,
    *,
    train_task: str = TRAIN_TASK,
    test_task: str = TEST_TASK,
) -> list[Run]:
    """The training and test runs of ``subject`` that have an ``*_events.tsv`` (BOLD images not needed).

    Used when the BOLD comes from elsewhere (fMRIPrep derivatives). Looks in ``ROOT/sub-XX/func`` and
    ``ROOT/sub-XX/ses-*/func`` (sessions); each run gets its raw ``_bold.json`` sidecar and ``_bold``
    image when present. Sorted by split, session, run.
    """
    root = Path(root)
    subject = normalize_subject(subject)
    folders = [root / subject / "func"]
    if (root / subject).is_dir():
        folders += sorted(p / "func" for p in (root / subject).glob("ses-*") if (p / "func").is_dir())
    splits = {train_task: "train", test_task: "test"}
    runs: dict[tuple, Run] = {}
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            parsed = parse_bids_name(path.name)
            if parsed is None:
                continue
            ent, suffix, ext = parsed
            if f"sub-{ent['sub']}" != subject or ent.get("task") not in splits or "run" not in ent:
                continue
            if set(ent) - {"sub", "ses", "task", "run"}:
                continue
            session = f"ses-{ent['ses']}" if "ses" in ent else None
            key = (ent["task"], session, int(ent["run"]))
            if suffix == "events" and ext == ".tsv":
                run = runs.setdefault(key, Run(subject, ent["task"], splits[ent["task"]], int(ent["run"])))
                run.session, run.events = session, path
            elif suffix == "bold":
                run = runs.setdefault(key, Run(subject, ent["task"], splits[ent["task"]], int(ent["run"])))
                run.session = session
                if ext == ".json":
                    run.sidecar = path
                elif ext in (".nii", ".nii.gz") and (run.bold is None or ext == ".nii"):
                    run.bold = path
    found = [r for r in runs.values() if r.events is not None]
    if not found:
        raise DataFileNotFoundError(
            f"{root / subject}: no events files of task {train_task!r} or {test_task!r} found (expected "
            f"{root / subject / 'func'}/{subject}_task-{train_task}_run-01_events.tsv, or under ses-*/func)"
        )
    order = {"train": 0, "test": 1}
    return sorted(found, key=lambda r: (order[r.split], r.session or "", r.run))


def list_subjects(root: str | os.PathLike) -> list[str]:
    """Subject folders (``sub-*``) under a BIDS ``root``, sorted."""
    root = Path(root)
    if not root.is_dir():
        raise DataFileNotFoundError(f"BIDS root not found: {root}")
    subjects = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name.startswith("sub-"))
    if not subjects:
        raise DataFileNotFoundError(f"{root}: no subject folders (sub-*) found; is this a BIDS dataset root?")
    return subjects


def normalize_subject(subject: str | int) -> str:
    """Accept ``1``, ``"1"``, ``"001"`` or ``"sub-001"`` and return ``"sub-001"``."""
    text = str(subject)
    if text.startswith("sub-"):
        return text
    if text.isdigit():
        return f"sub-{int(text):03d}"
    return f"sub-{text}"


def find_runs(
    root: str | os.PathLike,
    subject: str | int,
    *,
    train_task: str = TRAIN_TASK,
    test_task: str = TEST_TASK,
) -> list[Run]:
    """All training and test runs of ``subject``, with their files, sorted by split then run number.

    Raises an error naming the file when a run has events but no BOLD image or the reverse.
    """
    root = Path(root)
    subject = normalize_subject(subject)
    func = root / subject / "func"
    if not func.is_dir():
        raise DataFileNotFoundError(f"functional folder not found: {func}")
    runs: dict[tuple[str, int], Run] = {}
    splits = {train_task: "train", test_task: "test"}
    for path in sorted(func.iterdir()):
        m = _RUN_RE.match(path.name)
        if not m or m["sub"] != subject or m["task"] not in splits:
            continue
        key = (m["task"], int(m["run"]))
        run = runs.setdefault(key, Run(subject, m["task"], splits[m["task"]], int(m["run"])))
        if m["kind"] == "events":
            run.events = path
        elif m["ext"] == ".json":
            run.sidecar = path
        elif run.bold is None or m["ext"] == ".nii":
            run.bold = path
    if not runs:
        raise DataFileNotFoundError(
            f"{func}: no runs of task {train_task!r} or {test_task!r} found "
            f"(expected files like {subject}_task-{train_task}_run-01_bold.nii)"
        )
    for run in runs.values():
        stem = func / run.name
        if run.events is None:
            raise DataFileNotFoundError(f"events file missing for run {run.name}: expected {stem}_events.tsv")
        if run.bold is None:
            fmriprep = root / "derivatives" / "fmriprep"
            hint = (
                f"; {fmriprep} holds fMRIPrep derivatives: read those instead (brain2music inspect {fmriprep}, "
                f"reproduce --fmriprep {fmriprep})"
                if fmriprep.is_dir()
                else ""
            )
            raise DataFileNotFoundError(
                f"BOLD image missing for run {run.name}: expected {stem}_bold.nii or {stem}_bold.nii.gz{hint}"
            )
    order = {"train": 0, "test": 1}
    return sorted(runs.values(), key=lambda r: (order[r.split], r.run))


def sidecar_tr(path: Path) -> float | None:
    """``RepetitionTime`` (s) of a JSON sidecar, ``None`` when it states none; a non-positive value is an error."""
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: cannot read the JSON sidecar ({exc})") from exc
    tr = meta.get("RepetitionTime")
    if tr is None:
        return None
    try:
        tr = float(tr)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{path}: RepetitionTime is {tr!r}; expected a number of seconds") from exc
    if tr <= 0:
        raise DataError(f"{path}: RepetitionTime is {tr}; expected a positive number of seconds")
    return tr


def first_sidecar_tr(paths: Iterable[Path | None]) -> float | None:
    """The TR of the first sidecar in ``paths`` that states one (``None`` entries are skipped)."""
    for path in paths:
        if path is not None:
            tr = sidecar_tr(path)
            if tr is not None:
                return tr
    return None


def task_sidecar(root: str | os.PathLike | None, task: str) -> Path | None:
    """The dataset-level ``task-<task>_bold.json`` under ``root`` that runs inherit from, if it exists."""
    if root is None:
        return None
    path = Path(root) / f"task-{task}_bold.json"
    return path if path.is_file() else None


def header_tr(header) -> float:
    """TR (s) from a NIfTI header's 4th zoom (milliseconds converted), ``0.0`` when it holds none."""
    zooms = header.get_zooms()
    tr = float(zooms[3]) if len(zooms) > 3 else 0.0
    if tr > 0 and header.get_xyzt_units()[1] == "msec":
        tr /= 1000.0
    return tr


def run_info(run: Run, root: str | os.PathLike | None = None) -> RunInfo:
    """Read the header of a run's BOLD image (never its data), its TR and its events."""
    import nibabel as nib

    try:
        img = nib.load(str(run.bold))
    except Exception as exc:
        raise DataError(f"{run.bold}: cannot read as a NIfTI image ({exc})") from exc
    shape = tuple(int(s) for s in img.shape)
    if len(shape) != 4:
        raise DataError(f"{run.bold}: expected a 4-D image (x, y, z, time), found shape {shape}")
    tr = first_sidecar_tr([run.sidecar, task_sidecar(root, run.task)])
    from_header = header_tr(img.header)
    if tr is None:
        if from_header <= 0:
            raise DataError(
                f"{run.bold}: no RepetitionTime in a JSON sidecar and none in the NIfTI header; "
                f"add {run.name}_bold.json with RepetitionTime"
            )
        tr = from_header
    elif from_header > 0 and abs(from_header - tr) > 1e-3:
        warnings.warn(
            f"{run.bold}: NIfTI header TR {from_header} s differs from the sidecar's RepetitionTime {tr} s; "
            "using the sidecar",
            stacklevel=2,
        )
    events = read_events(run.events)
    return RunInfo(run=run, n_volumes=shape[3], tr=tr, shape=shape, events=events)


def expected_volumes(events, tr: float) -> int:
    """Volumes a run needs to cover its events: ``(last onset + duration) / tr``."""
    end = float(np.max(events["onset"].to_numpy() + events["duration"].to_numpy()))
    return int(round(end / tr))


def check_runs(infos: list[RunInfo], *, source: str) -> float:
    """Check TR consistency and volume counts; return the common TR. Errors name the file."""
    problems = []
    trs = sorted({round(i.tr, 6) for i in infos})
    if len(trs) > 1:
        first = infos[0]
        for info in infos:
            if abs(info.tr - first.tr) > 1e-6:
                problems.append(
                    f"{info.run.sidecar or info.run.bold}: RepetitionTime {info.tr} s differs from "
                    f"{first.tr} s of {first.run.sidecar or first.run.bold} (inconsistent TR across runs)"
                )
    shapes = {i.shape[:3] for i in infos}
    if len(shapes) > 1:
        problems.append(f"{source}: runs have different image grids {sorted(shapes)}")
    for info in infos:
        need = expected_volumes(info.events, info.tr)
        if info.n_volumes != need:
            problems.append(
                f"{info.run.bold}: has {info.n_volumes} volumes but its events "
                f"({info.run.events.name}) need {need} at TR {info.tr} s"
            )
    if problems:
        raise DataError("; ".join(problems))
    return float(infos[0].tr)


def subject_design(
    root: str | os.PathLike,
    subject: str | int,
    *,
    train_task: str = TRAIN_TASK,
    test_task: str = TEST_TASK,
):
    """Runs, header facts, TR and design table of one subject, all checked (no image data read).

    Returns ``(infos, tr, design)`` where ``design`` is :func:`brain2music.data.events.build_design`'s table.
    """
    subject = normalize_subject(subject)
    runs = find_runs(root, subject, train_task=train_task, test_task=test_task)
    infos = [run_info(r, root) for r in runs]
    tr = check_runs(infos, source=str(Path(root) / subject))
    design = build_design(
        {i.run.run: i.events for i in infos if i.run.split == "train"},
        {i.run.run: i.events for i in infos if i.run.split == "test"},
        source=str(Path(root) / subject),
    )
    if not (design.split == "train").any():
        raise DataError(f"{Path(root) / subject}: no training ({train_task}) runs found")
    if not (design.split == "test").any():
        raise DataError(f"{Path(root) / subject}: no test ({test_task}) runs found")
    return infos, tr, design


def count_test_repeats(design, *, source: str) -> int:
    """Number of presentations of each test clip (after dropping row 0); must be equal for every clip."""
    counts = design[design.split == "test"].groupby("clip_id").size()
    if counts.nunique() != 1:
        raise DataError(
            f"{source}: test clips are presented an unequal number of times "
            f"({counts.value_counts().to_dict()} clips by count); expected every test clip equally often"
        )
    return int(counts.iloc[0])


def summarize_subject(root, subject, **kwargs) -> dict:
    """The design summary of one subject (see :func:`inspect_dataset`)."""
    infos, tr, design = subject_design(root, subject, **kwargs)
    clips = clip_table(design)
    genres = {
        g: {
            "train": int(((clips.genre == g) & (clips.split == "train")).sum()),
            "test": int(((clips.genre == g) & (clips.split == "test")).sum()),
        }
        for g in GENRES
    }
    return {
        "tr": tr,
        "training_runs": [
            {"run": i.run.run, "n_volumes": i.n_volumes, "bold": str(i.run.bold)}
            for i in infos
            if i.run.split == "train"
        ],
        "test_runs": [
            {"run": i.run.run, "n_volumes": i.n_volumes, "bold": str(i.run.bold)}
            for i in infos
            if i.run.split == "test"
        ],
        "image_shape": list(infos[0].shape[:3]),
        "n_train_clips": int((clips.split == "train").sum()),
        "n_test_clips": int((clips.split == "test").sum()),
        "n_test_repeats": count_test_repeats(design, source=str(Path(root) / normalize_subject(subject))),
        "genres": genres,
    }


def inspect_dataset(root: str | os.PathLike, *, subjects: list[str] | None = None, **kwargs) -> dict:
    """Summarise a ds003720-like dataset without reading image data.

    Returns a JSON-ready dict: ``root``, ``subjects``, ``tr``, the design numbers shared by all subjects
    (``n_train_clips``, ``n_test_clips``, ``n_test_repeats``, ``genres`` as ``{genre: {"train", "test"}}``)
    and ``per_subject`` with each subject's ``training_runs`` / ``test_runs`` (run number and volume count)
    and its own design numbers. Every broken run is reported in one error that names its file.
    """
    root = Path(root)
    subjects = [normalize_subject(s) for s in subjects] if subjects else list_subjects(root)
    per_subject, problems = {}, []
    for sub in subjects:
        try:
            per_subject[sub] = summarize_subject(root, sub, **kwargs)
        except (DataError, DataFileNotFoundError) as exc:
            problems.append(f"{sub}: {exc}")
    if problems:
        raise DataError(f"{root}: {len(problems)} subject(s) with problems:\n  " + "\n  ".join(problems))
    trs = {s: d["tr"] for s, d in per_subject.items()}
    if len(set(trs.values())) > 1:
        raise DataError(f"{root}: subjects have different TRs {trs}")
    first = per_subject[subjects[0]]
    keys = ("n_train_clips", "n_test_clips", "n_test_repeats", "genres")
    return {
        "root": str(root),
        "subjects": subjects,
        "tr": first["tr"],
        **{k: first[k] for k in keys},
        "design_identical_across_subjects": all(
            all(d[k] == first[k] for k in keys) for d in per_subject.values()
        ),
        "per_subject": per_subject,
    }
