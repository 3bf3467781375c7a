"""Querying a library: clip-vector search for decoder predictions, and audio queries matched window by
window at the best-aligning offset."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from brain2music.errors import ConfigError, DataError
from brain2music.reconstruct.clip_embedding import (
    clip_embedding,
    encoder_config,
    encoder_name,
    prepare_clip,
    resolve_encoder,
)
from brain2music.reconstruct.index import l2_normalize, search_index
from brain2music.reconstruct.library.manifest import META_COLUMNS, SILENCE_PEAK
from brain2music.reconstruct.window_store import match
from brain2music.stimuli import STIMULUS_DURATION, read_audio, rms_normalize
from brain2music.windows import clip_vectors

if TYPE_CHECKING:
    from brain2music.embeddings.base import SpanEmbedding

_BLAS = None


def _one_blas_thread():
    """A context with single-threaded BLAS: one query's matrices are small, and threaded BLAS on busy cores
    spins (a 5-s query took 333 ms instead of 92 ms with 2 BLAS threads under load 7; benchmarks/library.md)."""
    global _BLAS
    if _BLAS is None:
        from threadpoolctl import ThreadpoolController

        _BLAS = ThreadpoolController()
    return _BLAS.limit(limits=1, user_api="blas")


@dataclass(frozen=True)
class Match:
    """One result of an audio query: a library track, where in it the query aligns, and how well.

    Attributes
    ----------
    item : int
        Row of the track in :attr:`MusicLibrary.metadata`.
    path, track_id, title, artist, genre : str
    offset : float
        Seconds into the track at which the query begins (best-aligning offset, on the hop grid).
    score : float
        Mean cosine of the aligned query and track windows, in the library's window search space.
    n_windows : int
        Number of aligned window pairs the score averages.
    """

    item: int
    path: str
    track_id: str
    title: str
    artist: str
    genre: str
    offset: float
    score: float
    n_windows: int

    def as_dict(self) -> dict:
        """The fields as a plain, JSON-ready dict."""
        return dict(self.__dict__)


class Queries:
    """Searching an opened library by clip vector or by audio."""

    def check_encoder(self, name: str | None, *, source: str = "query") -> None:
        """Raise :class:`DataError` if ``name`` is not the library's encoder."""
        if name is not None and name != self.encoder_name:
            raise DataError(
                f"{source} embeddings come from encoder {name!r} but the library {self.path} was built "
                f"with encoder {self.encoder_name!r}; rebuild the library with --encoder {name} or query "
                f"with {self.encoder_name!r} embeddings"
            )

    def check_encoder_config(self, encoder: Any) -> None:
        """Raise :class:`DataError` if ``encoder``'s config differs from the one the library was built with.

        Same name but another checkpoint or window would give incompatible vectors.
        """
        mine = self.encoder_config
        theirs = json.loads(json.dumps(encoder_config(encoder), default=str))
        diff = {k: (mine[k], theirs[k]) for k in set(mine) & set(theirs) if mine[k] != theirs[k]}
        if diff:
            detail = ", ".join(f"{k}: library {a!r} vs given {b!r}" for k, (a, b) in sorted(diff.items()))
            raise DataError(
                f"encoder {self.encoder_name!r} is configured differently from the one that built the "
                f"library {self.path} ({detail})"
            )

    def query_vectors(self, embeddings: np.ndarray, *, encoder: str | None = None) -> np.ndarray:
        """``(n, dim)`` or ``(n, n_windows, dim)`` embeddings → window-averaged, L2-normalised ``(n, dim)``."""
        self.check_encoder(encoder)
        emb = np.asarray(embeddings, dtype=np.float32)
        if emb.ndim == 1:
            emb = emb[None]
        if emb.ndim == 3:
            emb = clip_vectors(emb)
        if emb.ndim != 2 or emb.shape[1] != self.dim:
            raise DataError(
                f"query embeddings have shape {np.shape(embeddings)}; the library (encoder "
                f"{self.encoder_name!r}) expects (n, {self.dim}) or (n, n_windows, {self.dim})"
            )
        return self._to_space(l2_normalize(emb, name="query embeddings"))

    def search(
        self,
        embeddings: np.ndarray,
        k: int = 10,
        *,
        encoder: str | None = None,
        exclude: Sequence[str] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` tracks by cosine similarity for a batch of query embeddings.

        Parameters
        ----------
        embeddings : ndarray ``(n, dim)``, ``(n, n_windows, dim)`` or ``(dim,)``
            Predicted or true embeddings; window-averaged and L2-normalised before the search.
        encoder
            Name of the encoder the queries come from; must be the library's.
        exclude
            Track paths never to return (e.g. the stimuli themselves).

        Returns
        -------
        scores : ndarray ``(n, k)`` cosine similarities, best first
        items : ndarray ``(n, k)`` item numbers (rows of :attr:`metadata`), ``-1`` where fewer exist
        """
        queries = self.query_vectors(embeddings, encoder=encoder)
        if len(self) == 0:
            raise DataError(f"{self.path}: the library is empty")
        if not exclude:
            return search_index(self.index, queries, k)
        drop = set(map(str, exclude))
        bad = self.metadata["path"].isin(drop).to_numpy()
        kk = min(len(self), k + int(bad.sum()))
        scores, items = search_index(self.index, queries, kk)
        out_s = np.full((len(queries), k), -np.inf, dtype=np.float32)
        out_i = np.full((len(queries), k), -1, dtype=np.int64)
        for q in range(len(queries)):
            keep = [(s, i) for s, i in zip(scores[q], items[q], strict=True) if i >= 0 and not bad[i]][:k]
            for j, (s, i) in enumerate(keep):
                out_s[q, j], out_i[q, j] = s, i
        return out_s, out_i

    def search_table(self, embeddings: np.ndarray, k: int = 10, **kwargs) -> pd.DataFrame:
        """Like :meth:`search`, as a tidy table: query, rank, score, item and the track's metadata."""
        scores, items = self.search(embeddings, k, **kwargs)
        rows = []
        meta = self.metadata
        for q in range(items.shape[0]):
            for rank, (s, i) in enumerate(zip(scores[q], items[q], strict=True)):
                if i < 0:
                    continue
                m = meta.iloc[int(i)]
                rows.append(
                    {"query": q, "rank": rank + 1, "score": float(s), **{c: m[c] for c in META_COLUMNS}}
                )
        return pd.DataFrame(rows, columns=["query", "rank", "score", *META_COLUMNS])

    def embed_audio(self, audio_path: str | os.PathLike, *, encoder: Any = None) -> np.ndarray:
        """Embed the first 15 s of an audio file as a library clip → ``(n_windows, dim)`` (paper protocol)."""
        enc = self._query_encoder(encoder)
        audio, sr = read_audio(audio_path, sr=int(enc.sr), duration=STIMULUS_DURATION)
        return clip_embedding(enc, prepare_clip(audio, sr), sr, source=str(audio_path))

    def _query_encoder(self, encoder: Any = None):
        if encoder is None:
            if self._encoder is None:  # neural encoders load weights: once per opened library
                self._encoder = self.make_encoder()
            return self._encoder
        enc = resolve_encoder(encoder)
        self.check_encoder(encoder_name(enc))
        return enc

    def embed_query(
        self, audio: str | os.PathLike | np.ndarray, sr: int | None = None, *, encoder: Any = None
    ) -> SpanEmbedding:
        """Embed a query recording of any length window by window, on the library's hop grid.

        ``audio`` is a file (any format :func:`brain2music.stimuli.read_audio` reads) or an array with
        ``sr``. The recording is RMS-normalised as a whole (like ``full`` tracks) and only the windows it
        covers are embedded. Raises :class:`DataError` naming the file when it is unreadable, shorter than
        one window, or silent.
        """
        enc = self._query_encoder(encoder)
        source = "query audio" if isinstance(audio, np.ndarray) else str(audio)
        if isinstance(audio, np.ndarray):
            if sr is None:
                raise ConfigError("an audio array needs its sample rate: query(audio, sr)")
            x = np.asarray(audio, dtype=np.float32)
            x = x.mean(axis=1) if x.ndim == 2 and x.shape[1] <= 8 else x
        else:
            x, sr = read_audio(audio, mono=True)
        peak = float(np.max(np.abs(x))) if x.size else 0.0
        if peak < SILENCE_PEAK:
            raise DataError(
                f"{source}: the query is silent (peak {20 * np.log10(max(peak, 1e-12)):.0f} dBFS); "
                "expected a recording of music"
            )
        if not hasattr(enc, "embed_span"):
            raise ConfigError(
                f"encoder {encoder_name(enc)!r} has no embed_span(); audio queries need a "
                "brain2music.embeddings.Encoder"
            )
        try:
            return enc.embed_span(rms_normalize(x), int(sr), hop=self.hop)
        except DataError as exc:
            raise DataError(f"{source}: {exc}") from exc

    def query(
        self,
        audio: str | os.PathLike | np.ndarray,
        sr: int | None = None,
        *,
        k: int = 5,
        encoder: Any = None,
        exact: bool | None = None,
    ) -> list[Match]:
        """Top-``k`` tracks for a query recording, each at its best-aligning offset (see the module docstring).

        Parameters
        ----------
        audio
            Query file or ``(n_samples,)`` / ``(n_samples, n_channels)`` array (with ``sr``): any length
            of at least one encoder window.
        k
            Number of tracks.
        exact
            Score every track (default when the library has no approximate window index) or only the
            candidates the window index proposes.

        Returns
        -------
        list of :class:`Match`, best first.
        """
        if int(k) < 1:
            raise ConfigError(f"k must be a positive integer, got {k!r}")
        store = self.window_store
        with _one_blas_thread():
            span = self.embed_query(audio, sr, encoder=encoder)
            hits = match(store, store.to_space(span.embeddings), span.starts, int(k), exact=exact)
        meta = self.metadata
        return [
            Match(
                item=h.item,
                **{c: str(meta.at[h.item, c]) for c in ("path", "track_id", "title", "artist", "genre")},
                offset=h.offset,
                score=h.score,
                n_windows=h.n_pairs,
            )
            for h in hits
        ]

    def read_window(
        self, item: int, start: float, duration: float | None = None, *, sr: int | None = None
    ) -> tuple[np.ndarray, int]:
        """Audio of a track from ``start`` s for ``duration`` s (default: one encoder window), mono.

        What a window found by :meth:`search_windows` sounds like: ``(audio (n_samples,), sr)``.
        """
        if not 0 <= int(item) < len(self):
            raise DataError(f"item must lie in [0, {len(self)}), got {item!r}")
        if duration is None:
            duration = float(self.encoder_config.get("window", STIMULUS_DURATION))
        return read_audio(self.metadata.at[int(item), "path"], sr=sr, offset=float(start), duration=duration)

    def search_windows(
        self, embeddings: np.ndarray, k: int = 10
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Nearest single library windows of raw window embeddings ``(n, dim)``.

        Returns ``scores (n, k)`` (cosine in the window space), ``items (n, k)`` and ``starts (n, k)`` (s
        into each track); ``-1`` items where the library has fewer than ``k`` windows.
        """
        store = self.window_store
        emb = np.asarray(embeddings, dtype=np.float32)
        if emb.ndim != 2 or emb.shape[1] != self.dim:
            raise DataError(f"window embeddings must have shape (n, {self.dim}); got {emb.shape}")
        scores, rows = store.nearest(store.to_space(emb), k)
        items = np.where(rows >= 0, store.items[np.maximum(rows, 0)], -1)
        starts = np.where(rows >= 0, store.starts[np.maximum(rows, 0)], np.nan)
        return scores, items.astype(np.int64), starts
