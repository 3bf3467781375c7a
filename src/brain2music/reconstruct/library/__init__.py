"""A music library on disk: track metadata + embeddings in Parquet shards, FAISS indexes, and queries.

Layout of a library folder::

    lib/
      manifest.json            the only source of truth: format, generation, encoder name + config, dim,
                               n_windows, coverage, hop, shard list, skipped files, index and window
                               store descriptions, search spaces, package version
      manifest.json.lock       taken for a few milliseconds by each commit (compare-and-swap)
      shards/part-<uuid>.parquet  one file per committed batch of tracks (unique names: concurrent writers)
      index-<id>.faiss         clip-vector index over all committed tracks (brain2music.reconstruct.index)
      windex-<id>/             per-window store + optional window index (brain2music.reconstruct.window_store)

Each shard is a Parquet table with one row per track: ``path``, ``track_id``, ``title``, ``artist``,
``genre``, ``duration`` (seconds of the track embedded), ``vector`` (``dim`` float32: the window-average
of the track's ``(n_windows, dim)`` clip embedding, L2-normalised, so the inner product of two vectors is
their cosine similarity), ``windows`` (``n_windows * dim`` float32: the raw per-window clip embedding,
used to score reconstructions the way the decoders are scored) and, for ``coverage="full"``, ``span``
(list of ``n_span * dim`` float32: every window of the whole track) with ``span_starts`` (the window
starts in seconds). A track's item number is its row in the library: the shard's ``start`` in the
manifest plus its row in the shard.

Two kinds of search:

- **Clip vectors** (:meth:`MusicLibrary.search`): the paper's retrieval for reconstruction. Every track is
  embedded from its first 15 s, padded with silence if shorter, with the stimuli's 2-s fades and RMS
  normalisation, so library tracks and stimuli are comparable; a query is a ``(n_windows, dim)`` (or
  window-averaged) embedding, e.g. a decoder's prediction.
- **Audio queries** (:meth:`MusicLibrary.query`, ``brain2music library search --audio``): a recording of
  any length from one window up is embedded window by window (:meth:`Encoder.embed_span
  <brain2music.embeddings.Encoder.embed_span>`: only the windows it really covers, no padding) and its
  windows are matched against every track's *search windows* at the best-aligning offset: the ``r``
  clip windows of its first 15 s (``coverage="first15"``, the default) or every window of the whole
  track on the ``hop`` grid (``coverage="full"``; no fades, the track RMS-normalised as a whole, like a
  query). Results are (track, offset in s, score) records.

Search space: by default cosine similarity. For descriptors with a large shared offset (``acoustic``),
where every raw cosine is ≈ 1, vectors are standardised with the library's per-dimension mean and sd
first (``space="zscore"``, chosen automatically when the mean cosine between tracks exceeds 0.5;
recorded in the manifest with its statistics, separately for clip vectors and windows, and applied to
queries too).

Crash safety and concurrent writers: tracks are embedded in batches; each batch is written to a shard
with a unique name (temp file + rename) and then listed in the manifest by a compare-and-swap commit
(:func:`brain2music._io.commit_json`): the manifest is replaced atomically, and only if no other writer
committed since it was read; otherwise the commit is redone on the fresh manifest (tracks another
writer added meanwhile are dropped from the batch). So N concurrent ``build``/``add`` runs (a cluster
job array) leave every track in the library exactly once, a crash loses at most the batch in
progress, and rerunning resumes (files already in the library are skipped). Unlisted shards and indexes
older than an hour (left by a crash) are deleted by the next writer. Indexes are rebuilt after
ingestion and committed only if they cover every committed track (else a later writer's rebuild
does); a missing or stale index is rebuilt when the library is used.

The modules: :mod:`.manifest` (format, encoder, shard list), :mod:`.tracks` (the Parquet track store),
:mod:`.indexes` (clip-vector index, window store, rebuilding them), :mod:`.query` (search by vector or
audio), :mod:`.core` (:class:`MusicLibrary` and the functions that open and search one) and
:mod:`.build` (the writers).
"""

from brain2music.reconstruct.library.build import (
    add_to_library,
    build_library,
    library_from_embeddings,
    read_fma_tracks,
)
from brain2music.reconstruct.library.core import MusicLibrary, open_library, search_library
from brain2music.reconstruct.library.indexes import clip_space_map, rebuild_indexes
from brain2music.reconstruct.library.manifest import COVERAGES, FORMAT_VERSION, SPACES
from brain2music.reconstruct.library.query import Match

__all__ = [
    "COVERAGES",
    "FORMAT_VERSION",
    "SPACES",
    "Match",
    "MusicLibrary",
    "add_to_library",
    "build_library",
    "clip_space_map",
    "library_from_embeddings",
    "open_library",
    "read_fma_tracks",
    "rebuild_indexes",
    "search_library",
]
