"""N-way identification during a live run: where the clip really playing ranks among the test clips.

When the run's events say which clip is playing and that clip is one of the results folder's test clips,
every volume's library query (the mean of the last ``r`` predictions) is compared with the true
embeddings of all test clips, by the measure and in the metric space of the batch evaluation: Pearson's
r across dimensions of the window-averaged vectors (paper Eq. 2), after the metric space the decoder's
test predictions were scored in. The playing clip's ``truth_rank`` is 1 + the number of other test clips
at least as similar (ties count against it, as in :func:`~brain2music.evaluate.topk_scores`); ``top1`` /
``top5`` say whether it is within the first 1 / 5 (chance 1 / n and 5 / n).

A clip presentation counts in the running top-1 / top-5 once its last volume is decoded: that volume's
query covers the clip's last ``r`` windows, the clip vector the batch evaluation scores.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["RankTally", "TestClips", "load_test_clips"]


@dataclass
class TestClips:
    """The candidates: ``clip_ids (n,)`` and their true embeddings ``vectors (n, dim)`` (window-averaged,
    in the metric ``space``, centred and scaled to unit norm so a dot product is Pearson's r)."""

    clip_ids: np.ndarray
    vectors: np.ndarray
    space: object  # MetricSpace
    source: str
    _index: dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_predictions(cls, pred, source: str) -> TestClips:
        """From a :class:`~brain2music.results.Predictions` (its ``target`` and ``space``)."""
        from brain2music.windows import clip_vectors

        vectors = _unit_rows(pred.space.transform(clip_vectors(np.asarray(pred.target, dtype=np.float64))))
        ids = np.asarray(pred.clip_ids).astype(str)
        return cls(ids, vectors, pred.space, source, {c: i for i, c in enumerate(ids)})

    def __len__(self) -> int:
        return len(self.clip_ids)

    def __contains__(self, clip_id) -> bool:
        return str(clip_id) in self._index

    def rank(self, query: np.ndarray, clip_id: str) -> int:
        """Rank (1 = first) of ``clip_id`` among the test clips by Pearson r with ``query (dim,)``."""
        q = _unit_rows(self.space.transform(np.asarray(query, dtype=np.float64))[None])[0]
        sims = self.vectors @ q
        return int(np.sum(sims >= sims[self._index[str(clip_id)]]))


def _unit_rows(x: np.ndarray) -> np.ndarray:
    x = x - x.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    # A constant vector has no correlation: a zero row scores 0 against everything (similarity_matrix's rule).
    return np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)


def load_test_clips(folder, encoder: str, method: str, subject: str) -> TestClips | None:
    """The test clips of ``folder``'s predictions of this decoder (``None`` when it has none)."""
    from brain2music.errors import DataFileNotFoundError

    try:
        pred = folder.read_predictions(encoder, method, subject)
    except DataFileNotFoundError:
        return None
    return TestClips.from_predictions(pred, str(folder.predictions_path(encoder, method, subject)))


class RankTally:
    """Per-volume rank fields and the running top-1 / top-5 over the finished clip presentations."""

    def __init__(self, test_clips: TestClips | None, tr: float):
        self.test_clips, self.tr = test_clips, float(tr)
        self.hits: list[tuple[bool, bool]] = []

    def fields(self, query: np.ndarray | None, truth: dict | None, music_end: float) -> dict:
        """``truth_rank``, ``top1``, ``top5``, ``clip_complete`` and the running accuracies of one volume."""
        out = {"truth_rank": None, "top1": None, "top5": None, "clip_complete": False}
        clips = self.test_clips
        if query is not None and truth is not None and clips is not None and truth["clip_id"] in clips:
            rank = clips.rank(query, truth["clip_id"])
            out.update(truth_rank=rank, top1=rank <= 1, top5=rank <= 5)
            # The last volume of the presentation: the next one's midpoint falls after the clip's end.
            out["clip_complete"] = music_end + self.tr / 2 >= truth["end"] - 1e-9
            if out["clip_complete"]:
                self.hits.append((rank <= 1, rank <= 5))
        return out | self.running()

    def running(self) -> dict:
        """``n_clips_ranked`` and the top-1 / top-5 accuracy over them (``None`` before the first)."""
        n = len(self.hits)
        acc = [float(np.mean([h[i] for h in self.hits])) if n else None for i in (0, 1)]
        return {"n_clips_ranked": n, "running_top1_acc": acc[0], "running_top5_acc": acc[1]}
