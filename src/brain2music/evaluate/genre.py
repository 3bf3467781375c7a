"""Leave-one-genre-out generalisation: train without a genre, identify that genre's test clips."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from brain2music.errors import DataError
from brain2music.evaluate.identification import identification_scores, similarity_matrix

__all__ = ["leave_one_genre_out"]


def leave_one_genre_out(
    make_decoder: Callable[[], object],
    train_responses: np.ndarray,
    train_embeddings: np.ndarray,
    train_genres,
    train_groups,
    test_responses: np.ndarray,
    test_embeddings: np.ndarray,
    test_genres,
    *,
    windows: str = "mean",
    progress: bool = False,
) -> dict[str, float]:
    """Identification accuracy of each genre's test clips by a decoder trained on the other genres.

    For each genre ``g`` a fresh decoder (``make_decoder()``) is trained on the training clips of every
    other genre; it predicts the test clips of ``g``, and each of them is identified among the true
    embeddings of **all** test clips (``j`` runs over every test clip, as in the main score), so the
    values compare directly with :func:`~brain2music.evaluate.per_genre_accuracy`.

    Parameters
    ----------
    train_responses : (n_train, r, n_voxels); train_embeddings : (n_train, r, dim)
    train_genres, train_groups : (n_train,) genre and run of each training clip
    test_responses : (n_test, r, n_voxels); test_embeddings : (n_test, r, dim); test_genres : (n_test,)

    Returns
    -------
    dict genre → mean identification accuracy of its test clips.
    """
    train_genres = np.asarray(train_genres).astype(str)
    test_genres = np.asarray(test_genres).astype(str)
    train_groups = np.asarray(train_groups)
    n_train, r = train_responses.shape[:2]
    if train_embeddings.shape[:2] != (n_train, r) or train_genres.shape != (n_train,):
        raise DataError(
            f"training arrays disagree: responses {train_responses.shape}, embeddings {train_embeddings.shape}, "
            f"genres {train_genres.shape}"
        )
    genres = [g for g in sorted(set(test_genres.tolist())) if g in set(train_genres.tolist())]
    out: dict[str, float] = {}
    iterator = genres
    if progress:
        from tqdm import tqdm

        iterator = tqdm(genres, desc="leave-one-genre-out", leave=False)
    for g in iterator:
        keep = train_genres != g
        dec = make_decoder()
        dec.fit(
            train_responses[keep].reshape(-1, train_responses.shape[-1]),
            train_embeddings[keep].reshape(-1, train_embeddings.shape[-1]),
            np.repeat(train_groups[keep], r),
        )
        held = test_genres == g
        pred = dec.predict(test_responses[held].reshape(-1, test_responses.shape[-1]))
        predicted = np.array(test_embeddings, dtype=np.float64, copy=True)
        predicted[held] = pred.reshape(int(held.sum()), r, -1)
        # Rows of clips outside g are never scored; only C_ii vs C_ij for held-out i matters.
        scores = identification_scores(similarity_matrix(predicted, test_embeddings, windows=windows))
        out[g] = float(scores[held].mean())
    return out
