"""Synthetic subjects with a known embedding → voxel map (helpers shared by the model/reproduce tests)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from brain2music.data import SubjectData, clip_table, packaged_design
from brain2music.models.encoding import tr_features

_CLIPS = None


def design_clips() -> pd.DataFrame:
    """The real ds003720 clip table (480 training clips in 12 runs, 60 test clips)."""
    global _CLIPS
    if _CLIPS is None:
        _CLIPS = clip_table(packaged_design())
    return _CLIPS.copy()


def make_embeddings(clip_ids, *, r: int = 1, dim: int = 8, seed: int = 0) -> np.ndarray:
    """Random embeddings ``(n_clips, r, dim)``: a per-clip vector plus small per-window variation."""
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((len(clip_ids), 1, dim))
    return (base + 0.3 * rng.standard_normal((len(clip_ids), r, dim))).astype(np.float32)


def make_subject(
    embeddings: np.ndarray,
    clip_ids,
    *,
    subject: str = "sub-001",
    window: float = 15.0,
    n_voxels: int = 120,
    n_parcels: int = 12,
    auditory=(3, 7),
    noise: float = 0.0,
    n_repeats: int = 4,
    seed: int = 1,
    shuffle_voxels: bool = False,
    weights: np.ndarray | None = None,
) -> tuple[SubjectData, np.ndarray, np.ndarray]:
    """A :class:`SubjectData` whose voxels in the ``auditory`` parcels respond linearly to the embeddings.

    Returns ``(subject, labels (n_voxels,), weights (dim, n_voxels))``. Other voxels are pure noise
    (with ``noise=0`` they get an independent random signal so that no voxel is constant).
    """
    rng = np.random.default_rng(seed)
    clips = design_clips()
    pos = {c: i for i, c in enumerate(clip_ids)}
    dim = embeddings.shape[-1]
    labels = np.repeat(np.arange(1, n_parcels + 1), int(np.ceil(n_voxels / n_parcels)))[:n_voxels]
    if shuffle_voxels:
        labels = rng.permutation(labels)
    if weights is None:
        weights = rng.standard_normal((dim, n_voxels)) / np.sqrt(dim)
    active = np.isin(labels, auditory)
    n_trs = 10

    def responses(ids, n_rep):
        feats = tr_features(embeddings[[pos[c] for c in ids]], window, n_trs)  # (n, n_trs, dim)
        signal = feats @ weights
        signal[..., ~active] = 0.0
        # Inactive voxels carry a clip-specific nuisance unrelated to the embeddings.
        signal[..., ~active] += rng.standard_normal((len(ids), 1, int((~active).sum())))
        out = np.repeat(signal[:, None], n_rep, axis=1)
        out = out + noise * rng.standard_normal(out.shape)
        return out.astype(np.float32)

    train_ids = clips.loc[clips.split == "train", "clip_id"].tolist()
    test_ids = clips.loc[clips.split == "test", "clip_id"].tolist()
    train = responses(train_ids, 1)[:, 0]
    test = responses(test_ids, n_repeats)
    mask = np.zeros((n_voxels, 1, 1), dtype=bool)
    mask[:] = True
    sub = SubjectData(
        subject=subject,
        train=train,
        test=test,
        test_mean=test.mean(axis=1),
        clips=clips,
        train_runs=clips.loc[clips.split == "train", "run"].to_numpy(),
        tr=1.5,
        delay=3,
        mask=mask,
        voxel_indices=np.arange(n_voxels),
        affine=np.eye(4),
        info={"source": "synthetic"},
    )
    return sub, labels, weights
