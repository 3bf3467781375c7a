"""The per-TR live pipeline: volume → decoder voxels → causal preprocessing → window → embedding →
library tracks and genre similarity, one JSON-ready record per volume.

Timing conventions, for volume ``t`` (0-based) at repetition time ``TR`` and delay ``D`` volumes:

- the decoder input is the mean of the z-scored volumes ``t - n_w + 1 .. t`` where ``n_w`` is the number
  of TRs in one embedding window (1 for 1.5-s windows, 7 for 10-s windows): exactly the volumes the batch
  pipeline averages for a window that ends with volume ``t`` (fewer at the start of the run);
- that prediction describes the music window that ended ``D`` volumes earlier, at scan time
  ``(t + 1 - D) * TR`` (``music_time`` = [end - window, end]);
- the *query* sent to the library is the mean of the last ``r`` predictions (``r`` windows per 15-s clip,
  paper Table 1): at the last window of a clip it is the clip vector the batch evaluation scores;
- genre similarity is Pearson's r between the standardised query and each genre's mean training clip
  (:class:`~brain2music.live.model.LiveModel`), the same metric as identification accuracy;
- the true clip (with ``events``) is the one playing at ``(t + 0.5 - D) * TR``, the middle of the TR the
  volume responds to; ``genre_match`` compares its genre with the top decoded genre;
- when the true clip is one of the results folder's test clips, ``truth_rank`` is its rank among all
  test clips by Pearson r of their true embeddings with the query (:mod:`brain2music.live.ranking`),
  with ``top1`` / ``top5`` and the running top-1 / top-5 over the clip presentations decoded to their end.

A missing or bad volume is replaced by the last good raw volume (last observation carried forward, so the
drift window keeps its length in time) and its record says ``imputed``; before the first good volume
nothing can be decoded and the record has no prediction.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from brain2music.errors import DataError
from brain2music.live.model import LiveModel
from brain2music.live.preprocess import DEFAULT_PRIOR_VOLUMES, CausalPreprocessor
from brain2music.live.ranking import RankTally
from brain2music.live.sources import Arrival
from brain2music.windows import window_tr_weights

__all__ = ["LivePipeline", "check_library", "window_volumes"]

log = logging.getLogger("brain2music.live")


def window_volumes(window: float, tr: float) -> int:
    """TRs averaged into one embedding window (midpoint rule of :mod:`brain2music.windows`)."""
    weights = window_tr_weights(window, max(1, int(round(15.0 / tr))), tr=tr)
    counts = (weights > 0).sum(axis=1)
    if counts.min() != counts.max():  # pragma: no cover - impossible for the paper's windows
        raise DataError(f"a {window}-s window holds {counts.min()} to {counts.max()} TRs at TR {tr} s")
    return int(counts[0])


def check_library(library, model: LiveModel) -> None:
    """Refuse a library whose encoder or dimension differs from the decoder's (both files named)."""
    if library.encoder_name != model.encoder:
        raise DataError(
            f"the library {library.path} was built with encoder {library.encoder_name!r} but the decoder "
            f"{model.decoder_path} predicts {model.encoder!r} embeddings; build the library with "
            f"--encoder {model.encoder} or use a {library.encoder_name!r} decoder"
        )
    if library.dim != model.dim:
        raise DataError(
            f"the library {library.path} holds {library.dim}-d vectors but the decoder {model.decoder_path} "
            f"predicts {model.dim}-d embeddings"
        )


class LivePipeline:
    """Decode volumes one at a time (see the module docstring).

    Parameters
    ----------
    model : :class:`~brain2music.live.model.LiveModel`
    library : an opened :class:`~brain2music.reconstruct.MusicLibrary` or None (no retrieval)
    k : tracks per record
    events : events table of the run (``brain2music.data.read_events``) or None
    prior_volumes : weight of the training prior in the z-score (volumes)
    detrend_window : seconds of the causal median
    """

    def __init__(
        self,
        model: LiveModel,
        library=None,
        *,
        k: int = 5,
        events: pd.DataFrame | None = None,
        prior_volumes: int = DEFAULT_PRIOR_VOLUMES,
        detrend_window: float | None = None,
    ):
        if library is not None:
            check_library(library, model)
        self.model = model
        self.library = library
        self.k = int(k)
        self.events = events
        window = model.info.get("detrend_window", 240.0) if detrend_window is None else detrend_window
        self.pre = CausalPreprocessor(
            model.n_voxels,
            tr=model.tr,
            detrend_window=window,
            prior_cv=model.prior_cv,
            prior_volumes=prior_volumes,
        )
        self.n_w = window_volumes(model.window, model.tr)
        self._z = np.zeros((self.n_w, model.n_voxels), dtype=np.float64)
        self._preds = np.zeros((model.r, model.dim), dtype=np.float64)
        self._n_preds = 0
        self._query: np.ndarray | None = None
        self.ranks = RankTally(model.test_clips, model.tr)
        self._last_raw: np.ndarray | None = None
        #: callables receiving every issue dict as soon as it is known (the page's issue list)
        self.issue_listeners: list = []
        self._meta = None
        if library is not None and len(library):
            meta = library.metadata
            self._meta = {
                c: meta[c].to_numpy() for c in ("item", "title", "artist", "genre", "track_id", "path")
            }
            # Load the index and run one query now: the first volume must not pay for reading it from disk.
            library.search(np.ones((1, model.dim), dtype=np.float32), 1, encoder=model.encoder)

    # -- one volume
    def _voxels(self, arrival: Arrival, issues: list[dict]) -> tuple[np.ndarray | None, str]:
        status = arrival.status
        if arrival.volume is None:
            return None, status
        try:
            x = self.model.grid.extract(arrival.volume, source=arrival.path or f"volume {arrival.index}")
        except DataError as exc:
            issues.append(
                {"kind": "wrong-shape", "file": arrival.path, "volume": arrival.index, "message": str(exc)}
            )
            return None, "bad"
        bad = ~np.isfinite(x)
        if bad.any():
            fill = self._last_raw[bad] if self._last_raw is not None else 0.0
            x = x.copy()
            x[bad] = fill
            issues.append({"kind": "non-finite", "file": arrival.path, "volume": arrival.index,
                           "message": f"{arrival.path}: {int(bad.sum())} voxel(s) NaN or infinite; "
                           "replaced by the previous volume's values"})  # fmt: skip
        return x, status

    def _truth(self, index: int) -> dict | None:
        if self.events is None:
            return None
        m = (index + 0.5 - self.model.delay) * self.model.tr
        ev = self.events
        hit = np.flatnonzero((ev["onset"].to_numpy() <= m) & (m < (ev["onset"] + ev["duration"]).to_numpy()))
        if hit.size == 0:
            return None
        row = ev.iloc[int(hit[-1])]
        return {
            "clip_id": str(row["clip_id"]),
            "genre": str(row["genre"]),
            "onset": float(row["onset"]),
            "end": float(row["onset"] + row["duration"]),
        }

    def _retrieve(self, query: np.ndarray) -> list[dict]:
        if self.library is None or self._meta is None:
            return []
        scores, items = self.library.search(
            query[None].astype(np.float32), self.k, encoder=self.model.encoder
        )
        out = []
        for rank, (s, i) in enumerate(zip(scores[0], items[0])):
            if i < 0:
                continue
            m = {c: v[int(i)] for c, v in self._meta.items()}
            out.append({"rank": rank + 1, "item": int(m["item"]), "score": round(float(s), 5),
                        "title": str(m["title"]), "artist": str(m["artist"]), "genre": str(m["genre"]),
                        "track_id": str(m["track_id"])})  # fmt: skip
        return out

    def _genre_similarity(self, query: np.ndarray) -> dict[str, float]:
        model = self.model
        if not model.genres:
            return {}
        q = (query - model.embedding_mean) / model.embedding_sd
        q = q - q.mean()
        norm = np.linalg.norm(q)
        sims = model.genre_prototypes @ (q / norm) if norm > 0 else np.zeros(len(model.genres))
        return {g: round(float(s), 5) for g, s in zip(model.genres, sims)}

    def _decode(self, x: np.ndarray, t0: float) -> tuple[dict, dict]:
        """Preprocess one raw volume, predict, query: ``(record fields, timings in ms)``."""
        model = self.model
        z = self.pre.update(x)
        self._last_raw = x
        self._z[(self.pre.n_seen - 1) % self.n_w] = z  # ring of the last n_w z-scored volumes
        n = min(self.pre.n_seen, self.n_w)
        X = self._z[:n].mean(axis=0)
        t1 = time.perf_counter()
        pred = np.asarray(model.decoder.predict(X[None].astype(np.float32)), dtype=np.float64)[0]
        t2 = time.perf_counter()
        self._preds[self._n_preds % model.r] = pred
        self._n_preds += 1
        query = self._preds[: min(self._n_preds, model.r)].mean(axis=0)
        self._query = query
        genres = self._genre_similarity(query)
        top = self._retrieve(query)
        t3 = time.perf_counter()
        fields = {
            "prediction": [float(f"{v:.7g}") for v in pred],  # float32 precision
            "genre_similarity": genres,
            "top_genre": max(genres, key=genres.get) if genres else None,
            "top": top,
        }
        ms = lambda a, b: round(1e3 * (b - a), 3)  # noqa: E731
        return fields, {"preprocess": ms(t0, t1), "predict": ms(t1, t2), "search": ms(t2, t3)}

    def process(self, arrival: Arrival) -> dict:
        """Decode one arrival and return its record (keys: README, "Live decoding")."""
        t0 = time.perf_counter()
        issues = list(arrival.issues)
        x, status = self._voxels(arrival, issues)
        for issue in issues[len(arrival.issues) :]:
            self._notify(issue)
        imputed = False
        if x is None and self._last_raw is not None:
            x, imputed = self._last_raw, True
        model = self.model
        end = (arrival.index + 1 - model.delay) * model.tr
        record = {
            "type": "tr", "volume": int(arrival.index), "file": arrival.path, "status": status,
            "imputed": imputed, "catch_up": bool(arrival.catch_up),
            "scan_time": round(arrival.index * model.tr, 4),
            "music_time": [round(end - model.window, 4), round(end, 4)],
            "prediction": None, "genre_similarity": {}, "top_genre": None, "top": [],
        }  # fmt: skip
        timings = {"read": round(arrival.read_ms, 3)}
        if x is not None:
            fields, decode_ms = self._decode(x, t0)
            record.update(fields)
            timings.update(decode_ms)
        truth = self._truth(arrival.index)
        record["truth"] = truth
        record["genre_match"] = (
            (record["top_genre"] == truth["genre"]) if truth and record["top_genre"] else None
        )
        record.update(self.ranks.fields(self._query if x is not None else None, truth, end))
        record["issues"] = issues
        done = time.time()
        record["timings_ms"] = timings
        record["latency_ms"] = None if arrival.catch_up else round(1e3 * (done - arrival.complete_at), 3)
        record["emitted_at"] = round(done, 6)
        return record

    def _notify(self, issue: dict) -> None:
        log.warning("%s", issue["message"])
        for listener in self.issue_listeners:
            listener(issue)

    def run(self, source: Iterable[Arrival]) -> Iterator[dict]:
        """Yield one record per volume of ``source`` (a :class:`ReplaySource` or :class:`FolderWatcher`).

        Issues the source notices (late, missing, truncated files) are logged when noticed, not only when
        the record of their volume is yielded.
        """
        if hasattr(source, "on_issue"):
            source.on_issue = self._notify
        # Everything loaded so far (decoder, library metadata) lives for the whole run; frozen, the garbage
        # collector stops rescanning it. With a 100,000-track library (2.2e5 tracked objects) a full
        # collection took 140 ms, a pause that would otherwise land on some volume; frozen: < 0.01 ms.
        gc.collect()
        gc.freeze()
        for arrival in source:
            yield self.process(arrival)


def read_run_events(path: str | Path | None) -> pd.DataFrame | None:
    """The events table of a replayed run (``read_events``), or None."""
    if path is None:
        return None
    from brain2music.data import read_events

    return read_events(path)
