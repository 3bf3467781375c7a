"""Best-of-N selection scores (Ciferri et al.): which of N generated candidates to keep for a test clip.

Both scores see only what a decoder sees at test time — the subject's measured response to the clip
and what was fitted on the training clips — never the test clip's true embedding:

- ``embedding``: cosine of the candidate's window-averaged embedding to the *predicted* (decoded)
  embedding, in the metric space the predictions were scored in (:class:`EmbeddingScore`).
- ``encoding``: the subject's encoding model (fitted on the training clips in ``reproduce``) predicts the
  voxel responses the candidate would evoke; the score is their Pearson correlation with the measured
  response to the clip (averaged over repeats), both taken relative to the training mean response, over
  the voxels the model predicts best in training cross-validation (:class:`EncodingScore`).

A score is a callable ``score(candidate_embeddings (n, r, dim), predicted (r, dim)) -> (n,)``, the
``scorer`` of :class:`~brain2music.reconstruct.generators.BestOfN`; higher is better.
"""

from __future__ import annotations

import numpy as np

from brain2music._checks import check_choice
from brain2music.errors import DataError

__all__ = [
    "SCORES",
    "SCORER_VOXELS",
    "EmbeddingScore",
    "EncodingScore",
    "check_score",
    "encoding_model_arrays",
]

SCORES = ("embedding", "encoding")

#: Voxels kept by :func:`encoding_model_arrays` (the best by training-CV r): bounds the file at
#: ``dim * n_delays * 1000`` weights per subject (6 MB for 512-d CLAP with 3 delays).
SCORER_VOXELS = 1000


class EmbeddingScore:
    """Cosine of window-averaged candidates to the predicted embedding in a metric space.

    Parameters
    ----------
    space : :class:`~brain2music.evaluate.space.MetricSpace` or None (raw vectors)
    """

    name = "embedding"

    def __init__(self, space=None):
        self.space = space

    def __call__(self, candidates: np.ndarray, predicted: np.ndarray) -> np.ndarray:
        from brain2music.windows import clip_vectors

        c = np.asarray(candidates, dtype=np.float64)
        t = np.asarray(predicted, dtype=np.float64)
        if self.space is not None:
            c, t = self.space.transform(c), self.space.transform(t)
        c = clip_vectors(c)
        t = clip_vectors(t[None])[0] if t.ndim == 2 else t
        denom = np.linalg.norm(c, axis=1) * np.linalg.norm(t)
        return (c @ t) / np.where(denom == 0, 1.0, denom)


def encoding_model_arrays(model, data, *, voxels: np.ndarray) -> dict[str, np.ndarray]:
    """What :class:`EncodingScore` needs from a fitted :class:`~brain2music.models.EncodingModel`.

    ``data`` is the subject's :class:`~brain2music.data.SubjectData` (its test responses averaged over
    repeats are saved, restricted to ``voxels``: the indices into its voxels chosen by training CV).
    """
    voxels = np.asarray(voxels, dtype=np.int64)
    ridge = model.ridge_
    if ridge.coef_ is None:
        raise DataError("the encoding model has no linear weights (it must be fitted with the primal solver)")
    return {
        "voxels": voxels,
        "coef": np.asarray(ridge.coef_[:, voxels], dtype=np.float32),
        "intercept": np.asarray(ridge.intercept_[voxels], dtype=np.float32),
        "response_mean": np.asarray(ridge.y_mean_[voxels], dtype=np.float32),
        "feature_mean": np.asarray(model.feature_mean_, dtype=np.float32),
        "feature_std": np.asarray(model.feature_std_, dtype=np.float32),
        "cv_r": np.asarray(model.cv_r_[voxels], dtype=np.float32),
        "window": np.asarray(float(model.window)),
        "delays": np.asarray([int(d) for d in np.atleast_1d(model.delays)], dtype=np.int64),
        "base_delay": np.asarray(int(model.base_delay)),
        "tr": np.asarray(float(model.tr)),
        "test_clip_ids": np.asarray(data.test_clips.clip_id).astype(str),
        "test_response": np.asarray(data.test_mean[:, :, voxels], dtype=np.float32),
    }


class EncodingScore:
    """Correlation of the encoding model's predicted response to each candidate with the measured one.

    Build it from the arrays of :func:`encoding_model_arrays` (``ResultsFolder.read_encoding_model``);
    :meth:`for_clip` gives the scorer of one test clip.
    """

    name = "encoding"

    def __init__(self, arrays: dict[str, np.ndarray], *, where: str = "encoding model"):
        missing = [k for k in ("coef", "intercept", "response_mean", "test_response", "test_clip_ids")
                   if k not in arrays]  # fmt: skip
        if missing:
            raise DataError(f"{where}: missing arrays {missing}; rerun `brain2music reproduce`")
        self.a = arrays
        self.where = where
        self.clip_index = {str(c): i for i, c in enumerate(arrays["test_clip_ids"])}
        self.n_trs = int(arrays["test_response"].shape[1])

    def predict(self, embeddings: np.ndarray) -> np.ndarray:
        """Predicted responses ``(n, n_trs, n_voxels)`` to embeddings ``(n, r, dim)``."""
        from brain2music.models.encoding import delay_features, tr_features

        a = self.a
        feats = tr_features(np.asarray(embeddings, dtype=np.float32), float(a["window"]), self.n_trs,
                            tr=float(a["tr"]))  # fmt: skip
        std = np.where(a["feature_std"] > 0, a["feature_std"], 1.0)
        feats = (feats - a["feature_mean"]) / std
        X = delay_features(feats, a["delays"], base_delay=int(a["base_delay"]))
        n = X.shape[0]
        if X.shape[2] != a["coef"].shape[0]:
            raise DataError(
                f"{self.where}: candidates give {X.shape[2]} delayed features, the model takes "
                f"{a['coef'].shape[0]} (embeddings of another encoder?)"
            )
        return (X.reshape(n * self.n_trs, -1) @ a["coef"] + a["intercept"]).reshape(n, self.n_trs, -1)

    def for_clip(self, clip_id: str):
        """``scorer(candidates (n, r, dim), predicted) -> (n,)`` for test clip ``clip_id``."""
        if str(clip_id) not in self.clip_index:
            raise DataError(f"{self.where}: no measured response for test clip {clip_id!r}")
        measured = self.a["test_response"][self.clip_index[str(clip_id)]] - self.a["response_mean"]

        def score(candidates: np.ndarray, predicted=None) -> np.ndarray:
            pred = self.predict(candidates) - self.a["response_mean"]
            return _pearson_rows(pred.reshape(len(pred), -1), measured.reshape(-1))

        return score


def _pearson_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r of every row of ``a (n, m)`` with ``b (m,)``."""
    a = np.asarray(a, dtype=np.float64) - np.mean(a, axis=1, keepdims=True)
    b = np.asarray(b, dtype=np.float64) - np.mean(b)
    denom = np.linalg.norm(a, axis=1) * np.linalg.norm(b)
    return (a @ b) / np.where(denom == 0, 1.0, denom)


def check_score(score: str) -> str:
    """``score`` if it is one of :data:`SCORES`, else a :class:`ConfigError` naming ``--score``."""
    return check_choice(score, SCORES, what="--score")
