"""Data layer: ds003720-like BIDS datasets → preprocessed responses per clip.

Raw BIDS (:func:`load_subject`, no motion correction), fMRIPrep derivatives (:func:`load_fmriprep`,
confound regression with nilearn's strategies, Destrieux parcels from FreeSurfer) and the authors'
preprocessed arrays (:func:`load_derivatives`) all give the same :class:`SubjectData`.

Typical use::

    from brain2music.data import inspect_dataset, load_subject
    summary = inspect_dataset("ds003720")
    sub = load_subject("ds003720", "sub-001", delay=3)
    sub.train.shape        # (480, 10, n_voxels)
    sub.test.shape         # (60, 4, 10, n_voxels)
    sub.clips              # clip_id, genre, track, start, duration, split, run
"""

from brain2music.data.bids import (
    Run,
    find_runs,
    inspect_dataset,
    list_subjects,
    normalize_subject,
    subject_design,
)
from brain2music.data.confounds import ConfoundStrategy, clean_run
from brain2music.data.events import GENRES, build_design, clip_id, clip_table, read_events
from brain2music.data.example import write_example_dataset
from brain2music.data.fmriprep import (
    find_fmriprep_runs,
    is_fmriprep_dir,
    load_fmriprep,
    plan_subject,
)
from brain2music.data.fmriprep_inspect import inspect_fmriprep
from brain2music.data.loader import SubjectData, load_derivatives, load_subject, packaged_design
from brain2music.data.preprocess import (
    compute_mask,
    cut_clips,
    detrend_median,
    load_mask,
    preprocess_run,
    read_masked_run,
    window_average,
    zscore,
)

__all__ = [
    "ConfoundStrategy",
    "GENRES",
    "Run",
    "SubjectData",
    "build_design",
    "clean_run",
    "clip_id",
    "clip_table",
    "compute_mask",
    "cut_clips",
    "detrend_median",
    "find_fmriprep_runs",
    "find_runs",
    "inspect_dataset",
    "inspect_fmriprep",
    "is_fmriprep_dir",
    "list_subjects",
    "load_derivatives",
    "load_fmriprep",
    "load_mask",
    "load_subject",
    "normalize_subject",
    "packaged_design",
    "plan_subject",
    "preprocess_run",
    "read_events",
    "read_masked_run",
    "subject_design",
    "window_average",
    "write_example_dataset",
    "zscore",
]
