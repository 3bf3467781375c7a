"""Data layer: ds003720-like BIDS datasets → preprocessed responses per clip.

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
from brain2music.data.events import GENRES, build_design, clip_id, clip_table, read_events
from brain2music.data.example import write_example_dataset
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
    "GENRES",
    "Run",
    "SubjectData",
    "build_design",
    "clip_id",
    "clip_table",
    "compute_mask",
    "cut_clips",
    "detrend_median",
    "find_runs",
    "inspect_dataset",
    "list_subjects",
    "load_derivatives",
    "load_mask",
    "load_subject",
    "normalize_subject",
    "packaged_design",
    "preprocess_run",
    "read_events",
    "read_masked_run",
    "subject_design",
    "window_average",
    "write_example_dataset",
    "zscore",
]
