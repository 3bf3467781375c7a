"""Batch extraction: many clips → ``(n_clips, r, dim)``, cached per clip, resumable, on Dask if asked.

Cache: one ``.npy`` per clip under ``cache_dir/<encoder>/<key[:2]>/<key>.npy``, where ``key`` hashes the
encoder name, its config, the package version and the audio samples actually embedded (so a changed file,
excerpt or encoder setting is a miss). Each file is written atomically the moment its clip is done, so
a run killed halfway leaves only complete entries and the rerun computes the rest. ``cache_dir`` resolves
as: the argument, else ``$BRAIN2MUSIC_CACHE/embeddings``, else ``~/.cache/brain2music/embeddings``;
``cache_dir=False`` turns caching off. On a cluster, the cache folder must be shared by the workers.

Concurrent writers (several ``embed`` runs, Dask workers, cluster jobs) share one cache safely without a
lock: an entry's name is the hash of everything that determines its content, so two writers of one
entry write the same bytes, each to its own temporary file renamed into place (atomic on POSIX); a
reader sees a complete entry or none. ``tests/test_concurrency.py`` runs three writers with overlapping
clips and counts one valid entry per clip.

Execution (``scheduler``): ``None`` or ``"none"`` runs in this process; ``"local"`` starts a Dask
``LocalCluster`` with ``workers`` single-threaded worker processes (default: all cores), except for an
encoder placed on a GPU (``device`` other than ``cpu``), which runs in this process and batches there;
``"tcp://host:8786"`` (any Dask scheduler address) uses that cluster. Clips go out in chunks of
``chunk_size``; the progress bar (stderr) counts clips.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from brain2music._checks import check_choice
from brain2music._io import atomic_path, save_npz, to_json
from brain2music._paths import cache_folder
from brain2music.embeddings.base import Encoder
from brain2music.embeddings.clips import AudioClip, audio_hash, clips_from_bids, clips_from_folder
from brain2music.embeddings.registry import get_encoder
from brain2music.errors import Brain2MusicError, ConfigError, DataError, DataFileNotFoundError

__all__ = [
    "EmbeddingSet",
    "EmbeddingCache",
    "default_cache_dir",
    "embed_clips",
    "embed_folder",
    "load_embeddings",
    "check_scheduler",
    "dask_client",
    "local_cluster",
]

CacheArg = str | os.PathLike | None | Literal[False]


def _version() -> str:
    from brain2music import __version__

    return __version__


# -- result ------------------------------------------------------------------------------------------------
@dataclass
class EmbeddingSet:
    """Embeddings of many clips and what produced them.

    Attributes
    ----------
    clip_ids : ndarray of str, shape ``(n_clips,)``
    embeddings : ndarray, shape ``(n_clips, r, dim)``, float32
    config : dict
        The encoder's config (``encoder``, ``window``, ``n_windows``, ``dim``, ``sr``, model, ...) plus
        the source of the clips.
    version : str
        brain2music version that computed them.
    skipped : dict
        ``{clip_id: error message}`` of clips left out with ``on_error="skip"``.
    path : str or None
        The file they were read from (named in errors), if any.
    """

    clip_ids: np.ndarray
    embeddings: np.ndarray
    config: dict[str, Any]
    version: str = field(default_factory=_version)
    skipped: dict[str, str] = field(default_factory=dict)
    path: str | None = None

    @property
    def encoder(self) -> str:
        """The encoder name recorded in ``config`` (``""`` when absent)."""
        return str(self.config.get("encoder", ""))

    @property
    def window(self) -> float:
        """The encoder's window length in seconds recorded in ``config`` (NaN when absent)."""
        return float(self.config.get("window", np.nan))

    def __len__(self) -> int:
        return len(self.clip_ids)

    def select(self, clip_ids: Iterable[str]) -> np.ndarray:
        """Embeddings of ``clip_ids`` in that order: ``(n, r, dim)``; a missing id raises DataError."""
        index = {c: i for i, c in enumerate(self.clip_ids)}
        wanted = list(clip_ids)
        missing = [c for c in wanted if c not in index]
        if missing:
            where = f" in {self.path}" if self.path else ""
            raise DataError(
                f"{len(missing)} clip(s) have no {self.encoder!r} embedding{where}, e.g. {missing[:5]}; "
                f"the set holds {len(index)} clips (key 'clip_ids')"
            )
        return self.embeddings[[index[c] for c in wanted]]

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``clip_ids, embeddings, config (JSON), version, skipped (JSON)`` to a ``.npz`` atomically."""
        return save_npz(
            path,
            clip_ids=np.asarray(self.clip_ids, dtype=str),
            embeddings=np.asarray(self.embeddings, dtype=np.float32),
            config=np.array(to_json(self.config, indent=None)),
            version=np.array(self.version),
            skipped=np.array(to_json(self.skipped, indent=None)),
        )


def load_embeddings(path: str | os.PathLike) -> EmbeddingSet:
    """Read an embeddings ``.npz``: ``clip_ids`` and ``embeddings`` at least (any tool's file; the format is
    :mod:`brain2music.embeddings.format`), or a file written by :meth:`EmbeddingSet.save`.

    A malformed file raises :class:`DataError` naming the file, the key, what was expected and found.
    """
    from brain2music.embeddings.format import check_embedding_arrays, open_npz, plain_config

    path = Path(path)
    if not path.is_file():
        raise DataFileNotFoundError(f"embeddings file not found: {path}")
    try:
        with open_npz(path) as npz:
            missing = {"clip_ids", "embeddings"} - set(npz.files)
            if missing:
                raise DataError(
                    f"{path}: not an embeddings file; lacks key(s) {sorted(missing)} (expected 'clip_ids' "
                    f"(n_clips,) and 'embeddings' (n_clips, r, dim); found {sorted(npz.files)})"
                )
            ids, emb = check_embedding_arrays(npz["clip_ids"], npz["embeddings"], where=str(path))
            skipped = json.loads(str(npz["skipped"])) if "skipped" in npz.files else {}
            version = (
                str(npz["version"]) if "version" in npz.files else "unknown (not written by brain2music)"
            )
            return EmbeddingSet(ids, emb, plain_config(npz, where=str(path)), version, skipped, str(path))
    except (OSError, ValueError) as exc:
        if isinstance(exc, Brain2MusicError):
            raise
        hint = ""
        if "Object arrays" in str(exc):
            hint = "; an array was saved as Python objects (e.g. pandas ids): save np.asarray(ids, dtype=str)"
        raise DataError(f"{path}: cannot read as an embeddings .npz ({exc}){hint}") from exc


# -- cache -------------------------------------------------------------------------------------------------
def default_cache_dir() -> Path:
    """``$BRAIN2MUSIC_CACHE/embeddings`` or ``~/.cache/brain2music/embeddings``."""
    return cache_folder("embeddings")


class EmbeddingCache:
    """Per-clip cache of one encoder's embeddings (see the module docstring)."""

    def __init__(self, folder: str | os.PathLike, encoder: Encoder):
        self.folder = Path(folder) / encoder.name
        self._prefix = to_json(
            {"encoder": encoder.name, "config": encoder.config, "version": _version()}, indent=None
        )

    def key(self, audio_digest: str) -> str:
        """The cache key of a clip: SHA-256 of the encoder name, config, package version and ``audio_digest``.

        ``audio_digest`` is :func:`~brain2music.embeddings.clips.audio_hash` of the samples actually embedded.
        """
        return hashlib.sha256((self._prefix + audio_digest).encode()).hexdigest()

    def path(self, key: str) -> Path:
        """The entry file of ``key``: ``<folder>/<encoder>/<key[:2]>/<key>.npy``."""
        return self.folder / key[:2] / f"{key}.npy"

    def get(self, key: str) -> np.ndarray | None:
        """The cached ``(r, dim)`` embedding of ``key``, or ``None`` when absent or unreadable.

        A damaged or foreign file counts as a miss, so the clip is recomputed and the entry overwritten; the
        caller checks the shape against its encoder.
        """
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError):  # a foreign or damaged file: recompute and overwrite
            return None

    def put(self, key: str, embedding: np.ndarray) -> None:
        """Store ``embedding`` ``(r, dim)`` as float32 under ``key``, atomically (temp file + rename)."""
        with atomic_path(self.path(key), suffix=".npy") as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, np.asarray(embedding, dtype=np.float32))


def _resolve_cache(cache_dir: CacheArg) -> Path | None:
    if cache_dir is False:
        return None
    return Path(cache_dir) if cache_dir is not None else default_cache_dir()


# -- the unit of work (runs in this process or on a Dask worker) -------------------------------------------
def _embed_chunk(encoder: Encoder, clips: Sequence[AudioClip], cache_folder: str | None, on_error: str):
    """Embed ``clips``; returns ``[(embedding | None, computed: bool, error | None)]`` in order."""
    cache = EmbeddingCache(cache_folder, encoder) if cache_folder else None
    results: list[Any] = [None] * len(clips)
    todo, audios, rates, keys = [], [], [], []
    for i, clip in enumerate(clips):
        try:
            audio, sr = clip.load()
            key = cache.key(audio_hash(audio, sr)) if cache else None
            hit = cache.get(key) if cache else None
            if hit is not None and hit.shape == (encoder.n_windows, encoder.dim):
                results[i] = (hit, False, None)
                continue
            encoder.prepare(audio, sr)  # fail here, per clip, rather than for the whole batch
        except Brain2MusicError as exc:
            if on_error == "raise":
                raise type(exc)(f"clip {clip.clip_id!r}: {exc}") from exc
            results[i] = (None, False, str(exc))
            continue
        todo.append(i)
        audios.append(audio)
        rates.append(sr)
        keys.append(key)
    if todo:
        embedded = encoder.embed_many(audios, rates)
        for i, key, emb in zip(todo, keys, embedded):
            if cache:
                cache.put(key, emb)
            results[i] = (emb, True, None)
    return results


def _chunks(n: int, size: int) -> list[range]:
    return [range(s, min(n, s + size)) for s in range(0, n, size)]


@contextlib.contextmanager
def dask_client(scheduler: Any, workers: int | None):
    """Context manager yielding a ``distributed.Client`` for ``scheduler``.

    Parameters
    ----------
    scheduler : str or Client
        A running client (yielded as it is and left running), ``"local"`` (a :func:`local_cluster` of
        ``workers`` processes, default all cores, closed on exit) or a scheduler address such as
        ``"tcp://host:8786"`` (connected for the block, closed on exit). Validate it first with
        :func:`check_scheduler`; ``None`` is not accepted here.
    workers : int or None
        Worker processes of the ``"local"`` cluster.

    Raises
    ------
    ConfigError
        When the scheduler at the address cannot be reached within 20 s.
    """
    import distributed  # a core dependency, imported only when a cluster is asked for

    if not isinstance(scheduler, str):  # the caller's client: use it, leave it running
        yield scheduler
    elif scheduler == "local":
        n = workers or os.cpu_count() or 1
        with local_cluster(n) as cluster, distributed.Client(cluster) as client:
            yield client
    else:
        try:
            client = distributed.Client(scheduler, timeout="20s")
        except OSError as exc:
            raise ConfigError(f"cannot reach the Dask scheduler at {scheduler!r} ({exc})") from exc
        with client:
            yield client


@contextlib.contextmanager
def local_cluster(n_workers: int):
    """A Dask ``LocalCluster`` of ``n_workers`` single-threaded processes tuned for audio feature work.

    Dask sets ``MALLOC_TRIM_THRESHOLD_=65536`` in its workers; that switches off glibc's adaptive mmap
    threshold, so every multi-megabyte array becomes a fresh mmap and the acoustic encoder ran 2.5-3x
    slower per worker (measured). The variable is left unset here; set
    ``distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_: null`` on a cluster of your own.
    """
    import logging

    import dask
    import distributed

    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
        cluster = distributed.LocalCluster(
            n_workers=n_workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        )
    with cluster:
        yield cluster


def check_scheduler(scheduler: Any) -> Any:
    """``None`` for in-process, else the validated scheduler (``"local"``, an address or a Client).

    The other stages that map work over Dask the way ``embed`` does (``reproduce --scheduler``) share it
    and :func:`dask_client`.
    """
    if scheduler is None or scheduler == "none":
        return None
    if not isinstance(scheduler, str):
        if hasattr(scheduler, "submit") and hasattr(scheduler, "scatter"):
            return scheduler  # a running distributed.Client
        raise ConfigError(
            f"scheduler must be a string or a distributed.Client, got {type(scheduler).__name__}"
        )
    if scheduler == "local" or "://" in scheduler:
        return scheduler
    raise ConfigError(
        f"scheduler must be 'none', 'local' or a Dask scheduler address like 'tcp://host:8786', got {scheduler!r}"
    )


def _clip_specs(clips) -> list[AudioClip]:
    """``clips`` as :class:`AudioClip` specs (a path: from 0 s, id = file stem), ids checked unique."""
    specs = [c if isinstance(c, AudioClip) else AudioClip(Path(c).stem, str(c)) for c in clips]
    if not specs:
        raise DataError("no clips to embed")
    ids = [c.clip_id for c in specs]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})
        raise DataError(f"clip ids must be unique; repeated: {dup[:5]}")
    return specs


def _chunk_size(n: int, chunk_size: int | None, scheduler: Any, workers: int | None) -> int:
    """Clips per task: as given, else 16 in-process or ``ceil(n / (4 * workers))`` capped to 1..64 on Dask."""
    if chunk_size is None:
        if scheduler is None:
            chunk_size = 16
        else:
            if isinstance(scheduler, str):
                n_workers = workers or os.cpu_count() or 1
            else:
                n_workers = max(1, len(scheduler.scheduler_info().get("workers", {})))
            chunk_size = int(np.clip(-(-n // (4 * n_workers)), 1, 64))
    if chunk_size < 1:
        raise ConfigError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    return chunk_size


def _run_chunks(encoder, specs, chunks, cache_folder, on_error, scheduler, workers, progress) -> list[Any]:
    """``(embedding or None, computed?, error)`` per clip, chunk by chunk here or as tasks on Dask."""
    from tqdm.auto import tqdm

    results: list[Any] = [None] * len(specs)
    bar = tqdm(total=len(specs), desc=f"embed {encoder.name}", unit="clip", disable=not progress, leave=False)
    try:
        if scheduler is None:
            for rng in chunks:
                part = _embed_chunk(encoder, [specs[i] for i in rng], cache_folder, on_error)
                for i, r in zip(rng, part):
                    results[i] = r
                bar.update(len(rng))
        else:
            with dask_client(scheduler, workers) as client:
                from distributed import as_completed

                remote = client.scatter(
                    encoder, broadcast=True, hash=False
                )  # unique key: never shares a release
                futures = {
                    client.submit(
                        _embed_chunk, remote, [specs[i] for i in rng], cache_folder, on_error, pure=False
                    ): rng
                    for rng in chunks
                }
                for fut in as_completed(futures):
                    rng = futures[fut]
                    for i, r in zip(rng, fut.result()):
                        results[i] = r
                    bar.update(len(rng))
    finally:
        bar.close()
    return results


def embed_clips(
    clips: Sequence[AudioClip | str | os.PathLike],
    encoder: str | Encoder = "acoustic",
    *,
    cache_dir: CacheArg = None,
    scheduler: Any = None,
    workers: int | None = None,
    chunk_size: int | None = None,
    on_error: Literal["raise", "skip"] = "raise",
    progress: bool = True,
    out: str | os.PathLike | None = None,
    source: dict[str, Any] | None = None,
) -> EmbeddingSet:
    """Embed clips with an encoder: ``(n_clips, r, dim)`` plus clip ids, config and version.

    Parameters
    ----------
    clips
        :class:`AudioClip` specs (see :func:`clips_from_folder`, :func:`clips_from_bids`) or audio paths
        (embedded from 0 s for 15 s, id = file stem).
    encoder
        A registry name or an :class:`Encoder`.
    cache_dir
        Per-clip cache folder (``None``: default location, ``False``: no cache). See the module docstring.
    scheduler, workers
        ``None``/``"none"`` (in-process), ``"local"`` (LocalCluster of ``workers`` processes), a Dask
        scheduler address, or a running ``distributed.Client`` (reused, not closed).
    chunk_size
        Clips per task (default: 16 in-process or ``ceil(n / (4 * workers))`` capped to 1..64 on Dask).
    on_error
        ``"raise"`` (default): an unreadable, empty or too short clip stops the run with an error naming
        it; ``"skip"``: it is left out and listed in ``skipped``.
    progress
        Show a tqdm progress bar on stderr.
    out
        Also save the result there (``.npz``, atomically).
    source
        Recorded in ``config["source"]`` (where the clips came from).

    Returns
    -------
    EmbeddingSet
        Also sets ``n_computed_`` and ``n_cached_`` on it (clips embedded now / read from the cache).
    """
    check_choice(on_error, ("raise", "skip"), what="on_error")
    scheduler = check_scheduler(scheduler)
    encoder = get_encoder(encoder)
    if encoder.modality != "audio":
        raise ConfigError(
            f"encoder {encoder.name!r} embeds text; use brain2music.embeddings.embed_captions for captions"
        )
    if scheduler == "local" and str(getattr(encoder, "device", "cpu")) != "cpu":
        # One process owns the accelerator and batches on it; local worker processes would each load a
        # copy of the model onto the same device and compete for it.
        scheduler = None
    specs = _clip_specs(clips)
    ids = [c.clip_id for c in specs]
    cache = _resolve_cache(cache_dir)
    cache_folder = str(cache) if cache else None
    n = len(specs)
    chunks = _chunks(n, _chunk_size(n, chunk_size, scheduler, workers))
    results = _run_chunks(encoder, specs, chunks, cache_folder, on_error, scheduler, workers, progress)

    keep = [i for i in range(n) if results[i][0] is not None]
    skipped = {ids[i]: results[i][2] for i in range(n) if results[i][0] is None}
    if not keep:
        raise DataError(f"none of the {n} clips could be embedded; e.g. {next(iter(skipped.items()))}")
    embeddings = np.stack([results[i][0] for i in keep]).astype(np.float32, copy=False)
    config = dict(encoder.config)
    if source:
        config["source"] = source
    result = EmbeddingSet(np.asarray([ids[i] for i in keep], dtype=str), embeddings, config, skipped=skipped)
    result.n_computed_ = int(sum(results[i][1] for i in keep))
    result.n_cached_ = len(keep) - result.n_computed_
    if out is not None:
        result.save(out)
    return result


def embed_folder(
    folder: str | os.PathLike,
    encoder: str | Encoder = "acoustic",
    *,
    bids: str | os.PathLike | None = None,
    design: Any = None,
    subjects: list[str] | None = None,
    start: float = 0.0,
    duration: float | None = 15.0,
    **kwargs,
) -> EmbeddingSet:
    """Embed the clips of a stimulus folder (see :mod:`brain2music.embeddings.clips` for which).

    Parameters
    ----------
    folder
        A GTZAN-layout stimulus folder (with ``bids`` or ``design``) or any folder of audio files.
    bids
        BIDS root of the experiment: embed its clips (the 15-s stimuli the subjects heard).
    design
        Instead of ``bids``, a clip table / design (e.g. :func:`brain2music.data.packaged_design` for the
        real ds003720 with GTZAN).
    start, duration
        Without ``bids``/``design``: the excerpt of every file to embed.
    **kwargs
        Passed to :func:`embed_clips` (``cache_dir``, ``scheduler``, ``workers``, ``out``, ...).
    """
    from brain2music.embeddings.clips import clips_from_design

    if bids is not None and design is not None:
        raise ConfigError("pass either bids or design, not both")
    if bids is not None:
        clips = clips_from_bids(bids, folder, subjects=subjects)
        source = {"stimuli": str(folder), "bids": str(bids), "clips": "experiment stimuli (15 s, faded, RMS)"}
    elif design is not None:
        clips = clips_from_design(design, folder)
        source = {"stimuli": str(folder), "clips": "design stimuli (15 s, faded, RMS)"}
    else:
        clips = clips_from_folder(folder, start=start, duration=duration)
        source = {"folder": str(folder), "clips": f"every audio file from {start} s for {duration} s"}
    return embed_clips(clips, encoder, source=source, **kwargs)
