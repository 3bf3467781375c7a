"""The voxel grid of a results folder: a masker on plain arrays, read through ``ResultsFolder``."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from brain2music.errors import DataError, DataFileNotFoundError
from brain2music.evaluate.space import MetricSpace
from brain2music.results import EncodingResult, Predictions, ResultsFolder, StudyResults, VoxelGrid

SHAPE = (4, 5, 3)
AFFINE = np.array([[2.0, 0, 0, -4], [0, 2.5, 0, 3], [0, 0, 3.0, 1], [0, 0, 0, 1]])


def _grid(seed=0):
    rng = np.random.default_rng(seed)
    return VoxelGrid(SHAPE, AFFINE, np.sort(rng.choice(int(np.prod(SHAPE)), 17, replace=False)))


def test_transform_picks_the_grid_voxels_of_every_volume():
    grid = _grid()
    series = np.random.default_rng(1).normal(size=SHAPE + (6,)).astype(np.float32)
    X = grid.transform(nib.Nifti1Image(series, AFFINE))
    assert X.shape == (6, 17) and X.dtype == np.float32
    i, j, k = np.unravel_index(grid.voxel_indices, SHAPE)
    np.testing.assert_array_equal(X, series[i, j, k, :].T)  # reference: fancy indexing of the 4-D array
    np.testing.assert_array_equal(grid.transform(series[..., 2]), X[[2]])  # a 3-D volume is one sample
    assert grid.mask.sum() == 17 and grid.mask[i[0], j[0], k[0]]
    assert VoxelGrid.from_mask(grid.mask, AFFINE).voxel_indices.tolist() == grid.voxel_indices.tolist()


def test_inverse_transform_puts_values_back_and_zeros_elsewhere():
    grid = _grid()
    values = np.arange(1, 18, dtype=np.float32)
    img = grid.inverse_transform(values)
    assert img.shape == SHAPE and np.allclose(img.affine, AFFINE)
    data = np.asarray(img.dataobj)
    assert data.sum() == values.sum() and np.count_nonzero(data) == 17
    np.testing.assert_array_equal(grid.transform(img)[0], values)
    rows = np.stack([values, -values, 2 * values])
    img4 = grid.inverse_transform(rows)
    assert img4.shape == SHAPE + (3,)
    np.testing.assert_array_equal(grid.transform(img4), rows)


def test_the_grid_refuses_other_shapes_affines_and_sizes():
    grid = _grid()
    with pytest.raises(DataError, match=r"expected an image of shape \(4, 5, 3\)"):
        grid.transform(np.zeros((4, 5, 4)))
    with pytest.raises(DataError, match="affine differs"):
        grid.transform(nib.Nifti1Image(np.zeros(SHAPE, dtype=np.float32), np.eye(4)))
    with pytest.raises(DataError, match="n_voxels = 17"):
        grid.inverse_transform(np.zeros(16))
    with pytest.raises(DataError, match="voxel indices reach"):
        VoxelGrid(SHAPE, AFFINE, [0, 60])


def _folder(tmp_path, *, with_map=True):
    """A results folder with one subject's encoding arrays (and map) written through ResultsFolder."""
    folder, grid = ResultsFolder(tmp_path), _grid()
    test_r = np.linspace(-0.2, 0.6, 17).astype(np.float32)
    arrays = {"test_r": test_r, "voxel_indices": grid.voxel_indices}
    image = grid.inverse_transform(test_r) if with_map else None
    npz, map_rel = folder.write_encoding("clap", "sub-001", arrays, image)
    entry = EncodingResult("sub-001", "clap", map_rel, npz, 17, 3, 0.05, 100, 0.1, 0.6, None, 5, 0.1)
    folder.write(StudyResults(config={}, subjects=["sub-001"], methods=["ridge"], encoding=[entry]))
    return folder, grid, test_r


def test_results_folder_gives_the_grid_voxels_and_map_of_a_subject(tmp_path):
    folder, grid, test_r = _folder(tmp_path)
    got = folder.grid("sub-001", "clap")
    assert got.shape == SHAPE and np.allclose(got.affine, AFFINE)
    np.testing.assert_array_equal(got.voxel_indices, grid.voxel_indices)
    np.testing.assert_array_equal(folder.subject_voxels("sub-001", "clap"), grid.voxel_indices)
    # every encoder of a subject shares its voxels: another encoder's name finds the subject's entry
    np.testing.assert_array_equal(folder.grid("sub-001", "acoustic").voxel_indices, grid.voxel_indices)
    np.testing.assert_array_equal(got.transform(folder.encoding_map("sub-001"))[0], test_r)
    assert folder.read_encoding("sub-001")["test_r"].tolist() == test_r.tolist()
    assert folder.grid_source("sub-001").name == "sub-001_test_r.nii.gz"
    with pytest.raises(DataError, match="no encoding entry for sub-002"):
        folder.grid("sub-002")


def test_a_folder_without_an_encoding_map_has_no_grid(tmp_path):
    folder, _, _ = _folder(tmp_path, with_map=False)
    assert folder.encoding_map("sub-001") is None
    with pytest.raises(DataError, match="no encoding map for sub-001, so no voxel grid"):
        folder.grid("sub-001")
    (tmp_path / "encoding" / "clap" / "sub-001_encoding.npz").unlink()
    with pytest.raises(DataFileNotFoundError, match="sub-001_encoding.npz"):
        folder.subject_voxels("sub-001")


def test_test_clip_ids_are_the_union_over_methods_and_the_folder_lists_its_predictions(tmp_path):
    folder = ResultsFolder(tmp_path)
    space = MetricSpace.fit("paper", np.zeros((2, 1, 3)))
    for method, ids in (("ridge", ["b.00001", "a.00002"]), ("encsel", ["a.00002", "c.00003"])):
        n = len(ids)
        emb = np.ones((n, 1, 3), dtype=np.float32)
        folder.write_predictions(
            Predictions("sub-001", "clap", method, np.array(ids), np.array(["x"] * n), emb, emb,
                        np.eye(n), np.ones(n), space)
        )  # fmt: skip
    assert folder.test_clip_ids("clap", "sub-001") == ["a.00002", "b.00001", "c.00003"]
    assert folder.prediction_encoders() == ["clap"] and folder.prediction_methods("clap") == [
        "encsel",
        "ridge",
    ]
    assert folder.prediction_methods("mert") == [] and folder.prediction_subjects("clap", "ridge") == [
        "sub-001"
    ]
    assert folder.test_clip_ids("clap", "sub-002") == [] and folder.test_clip_ids("mert", "sub-001") == []
