"""Leave-one-genre-out generalisation: train without a genre, identify that genre's test clips."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from brain2music.errors import DataError
from brain2music.evaluate.identification import identification_scores, similarity_matrix

__all__ = ["leave_one_genre_out"]

#: ``fit_without(drop) -> (predicted_test (n_test, r, dim), to_space)``: fit on the training clips where
#: ``drop`` is False and predict every test clip; ``to_space`` maps embeddings into the metric space
#: fitted on the same clips.
FitWithout = Callable[[np.ndarray], tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]]


def leave_one_genre_out(
    fit_without: FitWithout,
    train_genres,
    test_genres,
    test_embeddings: np.ndarray,
    *,
    windows: str = "mean",
    progress: bool = False,
) -> dict[str, float]:
    """Identification accuracy of each genre's test clips by a model fitted without that genre.

    For each genre ``g``, ``fit_without(train_genres == g)`` fits everything (voxel selection, penalties,
    metric space: whatever the model chooses) on the training clips of the other genres only, and returns
    its predictions of the test clips. Each test clip of ``g`` is identified among the true embeddings
    of **all** test clips (``j`` runs over every test clip, as in the main score), so the values compare
    directly with :func:`~brain2music.evaluate.per_genre_accuracy`.

    Parameters
    ----------
    train_genres : (n_train,) genre of each training clip; test_genres : (n_test,)
    test_embeddings : (n_test, r, dim) true embeddings of the test clips

    Returns
    -------
    dict genre → mean identification accuracy of its test clips.
    """
    train_genres = np.asarray(train_genres).astype(str)
    test_genres = np.asarray(test_genres).astype(str)
    test_embeddings = np.asarray(test_embeddings, dtype=np.float64)
    if test_embeddings.shape[0] != test_genres.shape[0]:
        raise DataError(
            f"test embeddings {test_embeddings.shape} and test genres {test_genres.shape} disagree on n_test"
        )
    genres = [g for g in sorted(set(test_genres.tolist())) if g in set(train_genres.tolist())]
    out: dict[str, float] = {}
    iterator = genres
    if progress:
        from tqdm import tqdm

        iterator = tqdm(genres, desc="leave-one-genre-out", leave=False)
    for g in iterator:
        predicted_test, to_space = fit_without(train_genres == g)
        held = test_genres == g
        target = to_space(test_embeddings)
        predicted = np.array(target, copy=True)
        predicted[held] = to_space(np.asarray(predicted_test)[held])
        # Rows of clips outside g are never scored; only C_ii vs C_ij for held-out i matters.
        scores = identification_scores(similarity_matrix(predicted, target, windows=windows))
        out[g] = float(scores[held].mean())
    return out
