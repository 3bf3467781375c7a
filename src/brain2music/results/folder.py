"""The one reader and writer of a results folder: :class:`ResultsFolder`, and the one-writer lock.

Every stage exchanges typed records, never dicts of lists: ``reproduce`` builds a
:class:`~brain2music.results.StudyResults` and writes it with :meth:`ResultsFolder.write`;
``reconstruct``, ``report``, ``live`` and ``run`` read it with :meth:`ResultsFolder.read`. Arrays
(embeddings, predictions, decoders, encoding maps, the voxel grid) go through the same
:class:`ResultsFolder`. The layout is documented in ``docs/results_layout.md``.

Schema. ``results.json`` carries ``schema_version`` (:data:`~brain2music.results.SCHEMA_VERSION`). A
folder written before schema 2 (no ``schema_version`` key) is refused with a
:class:`~brain2music.results.ResultsLayoutError` that prints the command regenerating it.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from brain2music import __version__
from brain2music._io import (
    WRITER_LOCK,
    exclusive_writer,
    file_lock,
    lock_holder,
    save_npz,
    write_json,
    write_text,
)
from brain2music.errors import ConcurrentWriterError, DataError, DataFileNotFoundError, LockTimeout
from brain2music.results._record import SCHEMA_VERSION, ResultsLayoutError
from brain2music.results.grid import VoxelGrid
from brain2music.results.predictions import Predictions
from brain2music.results.reconstruction import ReconstructionResults
from brain2music.results.records import EncodingResult, StudyResults

__all__ = ["ResultsFolder", "one_writer"]


class ResultsFolder:
    """The one reader and writer of a results folder (``docs/results_layout.md``).

    Paths are relative to ``root``; every write is atomic. One writer at a time: a whole run holds the
    folder with :meth:`writing`, every single write takes the same lock unless this process (or the run
    that handed this object to a worker process) holds it, and a second writer is refused at once with a
    :class:`~brain2music.errors.ConcurrentWriterError` naming the first (pid, host, command, since when).
    """

    RESULTS = "results.json"
    TABLE = "table2.csv"
    RECONSTRUCTION = "reconstruction.json"

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        # The run's token, set only on copies pickled for worker processes (see __getstate__); in the
        # holding process a write checks _WRITING instead.
        self._lease: str | None = None

    def __getstate__(self) -> dict:
        # Pickled (for a Dask or process worker) while this process holds the folder: the copy writes
        # under the run's lease, whichever ResultsFolder object of the folder took it.
        state = dict(self.__dict__)
        held = _WRITING.get(_folder_key(self.root))
        if held is not None:
            state["_lease"] = held[0]
        return state

    # -- one writer at a time -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def writing(self, purpose: str) -> Iterator[ResultsFolder]:
        """Be the only writer of the folder for the whole block (a ``reproduce`` or ``reconstruct`` run).

        Another process that writes the folder meanwhile (a run or a single file), or reads it with
        :meth:`reading`, is refused at once; so is another thread that starts a run into it. Re-entrant
        in the holding thread (``brain2music run`` holds its folder around ``reproduce``); threads and
        worker processes that received this object (pickled, e.g. by a Dask scheduler) write under the
        run's lease. The kernel drops the lock when the holder dies: a crash never leaves it stale.
        """
        key = _folder_key(self.root)
        held = _WRITING.get(key)
        if held is not None:
            if held[1] != threading.get_ident():
                raise ConcurrentWriterError(
                    f"{self.root}: another thread of this process is writing this folder ({purpose} refused)"
                )
            yield self
            return
        lease = uuid.uuid4().hex
        created = not self.root.exists()
        try:
            with exclusive_writer(self.root, purpose=purpose, info={"lease": lease}):
                _WRITING[key] = (lease, threading.get_ident())
                try:
                    yield self
                finally:
                    del _WRITING[key]
        except BaseException:
            # A run that failed before writing anything leaves no folder behind (only its lock was there).
            if created:
                _remove_if_only_lock(self.root)
            raise

    @contextlib.contextmanager
    def reading(self, purpose: str) -> Iterator[ResultsFolder]:
        """Keep writers out while the block reads the folder (a shared lock; many readers at once).

        Refused at once with :class:`~brain2music.errors.ConcurrentWriterError` while another process
        writes the folder, so a reader never mixes two runs' files.
        """
        with contextlib.ExitStack() as stack:
            if self.root.is_dir() and _folder_key(self.root) not in _WRITING:
                try:
                    stack.enter_context(
                        file_lock(self.root / WRITER_LOCK, timeout=0, shared=True, purpose=purpose)
                    )
                except LockTimeout:
                    raise ConcurrentWriterError(
                        f"{self.root}: another process is writing this results folder "
                        f"({_describe_holder(self.root)}); {purpose} reads it: wait for that run to finish"
                    ) from None
            yield self

    @contextlib.contextmanager
    def _one_write(self, what: str) -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            if _folder_key(self.root) not in _WRITING:  # else: this process holds the folder
                try:
                    stack.enter_context(exclusive_writer(self.root, purpose=f"write {what}"))
                except ConcurrentWriterError:
                    if (
                        self._lease is None
                        or lock_holder(self.root / WRITER_LOCK).get("lease") != self._lease
                    ):
                        raise
                    # a worker of the run that holds the folder (it handed this object over)
            yield

    # -- paths ------------------------------------------------------------------------------------------
    def embeddings_rel(self, encoder: str) -> str:
        """Relative path of the embeddings of ``encoder``: ``embeddings/<encoder>.npz``."""
        return f"embeddings/{encoder}.npz"

    def predictions_path(self, encoder: str, method: str, subject: str) -> Path:
        """``predictions/<encoder>/<method>/<subject>.npz`` under the folder."""
        return self.root / "predictions" / encoder / method / f"{subject}.npz"

    def decoder_path(self, encoder: str, method: str, subject: str) -> Path:
        """``decoders/<encoder>/<method>/<subject>.joblib`` under the folder (the fitted decoder)."""
        return self.root / "decoders" / encoder / method / f"{subject}.joblib"

    def encoding_rel(self, encoder: str, subject: str) -> tuple[str, str]:
        """``(npz, nifti map)`` relative paths of an encoding model."""
        return f"encoding/{encoder}/{subject}_encoding.npz", f"encoding/{encoder}/{subject}_test_r.nii.gz"

    def encoding_model_rel(self, encoder: str, subject: str) -> str:
        """Relative path of the compact encoding model that scores best-of-N candidates (``--score encoding``)."""
        return f"encoding/{encoder}/{subject}_model.npz"

    def write_encoding_model(self, encoder: str, subject: str, arrays: dict) -> str:
        """Save an encoding model's linear map on its best voxels (see :mod:`brain2music.reconstruct.selection`)."""
        rel = self.encoding_model_rel(encoder, subject)
        save_npz(self.root / rel, schema_version=np.asarray(SCHEMA_VERSION), **arrays)
        return rel

    def read_encoding_model(self, encoder: str, subject: str) -> dict[str, np.ndarray]:
        """The arrays :meth:`write_encoding_model` saved; a folder written without them raises an error
        that says how to get them (rerun ``reproduce``)."""
        path = self.root / self.encoding_model_rel(encoder, subject)
        if not path.is_file():
            raise DataFileNotFoundError(
                f"{path} not found: the results folder has no encoding model of {encoder!r} for {subject} "
                "(older results folders lack it); rerun `brain2music reproduce` into it to score "
                "candidates with --score encoding, or use --score embedding"
            )
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}

    # -- results.json -----------------------------------------------------------------------------------
    def read(self) -> StudyResults:
        """Read ``results.json``; an absent or old-layout file raises an error that says what to run."""
        data = _read_json(self.root / self.RESULTS, missing=_NOT_RESULTS.format(root=self.root))
        _check_schema(data, self.root / self.RESULTS)
        return StudyResults.from_dict(data)

    def write(self, results: StudyResults) -> Path:
        """Write ``results.json`` and ``table2.csv`` (the summary as the paper's Table 2)."""
        from brain2music.results.table import table_csv

        results.schema_version = SCHEMA_VERSION
        results.version = __version__
        with self._one_write(self.RESULTS):
            write_text(self.root / self.TABLE, table_csv(results))
            return write_json(self.root / self.RESULTS, results.to_dict())

    # -- embeddings -------------------------------------------------------------------------------------
    def write_embeddings(self, encoder: str, embeddings) -> str:
        """Save an :class:`~brain2music.embeddings.EmbeddingSet` as ``embeddings/<encoder>.npz``."""
        rel = self.embeddings_rel(encoder)
        with self._one_write(rel):
            embeddings.save(self.root / rel)
        return rel

    def read_embeddings(self, results: StudyResults, encoder: str):
        """The :class:`~brain2music.embeddings.EmbeddingSet` of ``encoder``: the file ``results`` records for
        it, else ``embeddings/<encoder>.npz`` (errors of :func:`~brain2music.embeddings.load_embeddings`)."""
        from brain2music.embeddings import load_embeddings

        info = results.encoders.get(encoder)
        return load_embeddings(self.root / (info.embeddings if info else self.embeddings_rel(encoder)))

    # -- predictions ------------------------------------------------------------------------------------
    def write_predictions(self, p: Predictions) -> Path:
        """Save one decoder's test predictions as ``predictions/<encoder>/<method>/<subject>.npz``."""
        with self._one_write(f"predictions of {p.subject}"):
            return self._save_predictions(p)

    def _save_predictions(self, p: Predictions) -> Path:
        return save_npz(
            self.predictions_path(p.encoder, p.method, p.subject),
            clip_ids=np.asarray(p.clip_ids).astype(str),
            genres=np.asarray(p.genres).astype(str),
            predicted=np.asarray(p.predicted, dtype=np.float32),
            target=np.asarray(p.target, dtype=np.float32),
            similarity=np.asarray(p.similarity, dtype=np.float32),
            clip_scores=np.asarray(p.clip_scores, dtype=np.float32),
            schema_version=np.asarray(SCHEMA_VERSION),
            **p.space.arrays(),
        )

    def read_predictions(self, encoder: str, method: str, subject: str) -> Predictions:
        """The :class:`~brain2music.results.Predictions` of one decoder; a missing file or array raises
        an error naming the file."""
        from brain2music.evaluate.space import MetricSpace

        path = self.predictions_path(encoder, method, subject)
        if not path.is_file():
            raise DataFileNotFoundError(f"predictions file not found: {path}")
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in _PREDICTION_KEYS if k not in z.files]
            if missing:
                raise ResultsLayoutError(
                    f"{path}: missing arrays {missing} (written by an older brain2music?); regenerate the "
                    "results folder with `brain2music reproduce`"
                )
            arrays = {k: z[k] for k in _PREDICTION_KEYS}
        predicted, target = arrays["predicted"], arrays["target"]
        n = len(arrays["clip_ids"])
        if predicted.shape != target.shape or predicted.ndim != 3 or predicted.shape[0] != n:
            raise DataError(
                f"{path}: predicted {predicted.shape} and target {target.shape} must both be (n_test, r, dim) "
                f"with n_test = {n} clip ids"
            )
        return Predictions(
            subject=subject,
            encoder=encoder,
            method=method,
            clip_ids=arrays["clip_ids"].astype(str),
            genres=arrays["genres"].astype(str),
            predicted=predicted.astype(np.float32),
            target=target.astype(np.float32),
            similarity=arrays["similarity"].astype(np.float64),
            clip_scores=arrays["clip_scores"].astype(np.float64),
            space=MetricSpace.from_arrays(str(arrays["space"]), arrays["space_mean"], arrays["space_scale"]),
        )

    def prediction_encoders(self) -> list[str]:
        """The encoders with a ``predictions/<encoder>/`` folder, sorted."""
        return self._subfolders(self.root / "predictions")

    def prediction_methods(self, encoder: str) -> list[str]:
        """The methods with test predictions of ``encoder`` (``predictions/<encoder>/<method>/``), sorted."""
        return self._subfolders(self.root / "predictions" / encoder)

    @staticmethod
    def _subfolders(folder: Path) -> list[str]:
        return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []

    def prediction_subjects(self, encoder: str, method: str) -> list[str]:
        """The subjects with test predictions of ``encoder`` and ``method``, sorted."""
        folder = self.root / "predictions" / encoder / method
        return sorted(p.stem for p in folder.glob("*.npz")) if folder.is_dir() else []

    # -- decoders and encoding models -------------------------------------------------------------------
    def write_decoder(self, encoder: str, method: str, subject: str, decoder, config: dict) -> Path:
        """Save a fitted decoder with its ``config`` (subject, encoder, method, window, r) as a joblib file."""
        from brain2music.models import save_decoder

        with self._one_write(f"decoder of {subject}"):
            return save_decoder(decoder, self.decoder_path(encoder, method, subject), config=config)

    def write_encoding(self, encoder: str, subject: str, arrays: dict, image=None) -> tuple[str, str | None]:
        """Save an encoding model's arrays (and its NIfTI test-r map, when given); return relative paths."""
        npz_rel, map_rel = self.encoding_rel(encoder, subject)
        with self._one_write(npz_rel):
            save_npz(self.root / npz_rel, **arrays)
            if image is None:
                return npz_rel, None
            import nibabel as nib

            from brain2music._io import atomic_path

            with atomic_path(self.root / map_rel) as tmp:
                nib.save(image, str(tmp))
        return npz_rel, map_rel

    # -- encoding maps and the voxel grid ---------------------------------------------------------------
    def encoding_entry(self, subject: str, encoder: str | None = None, results: StudyResults | None = None):
        """The :class:`~brain2music.results.EncodingResult` of ``subject`` in ``results.json``: the one of
        ``encoder``, else any of the subject (all encoders of a subject share its voxels); ``results`` is
        read from ``results.json`` when not given. A subject without an entry raises
        :class:`~brain2music.errors.DataError`."""
        results = self.read() if results is None else results
        entries: list[EncodingResult] = [e for e in results.encoding if e.subject == subject]
        exact = [e for e in entries if e.encoder == encoder]
        if not (exact or entries):
            raise DataError(
                f"{self.root / self.RESULTS}: no encoding entry for {subject}; the voxel indices of the "
                "decoder's inputs are stored there (encoding/<encoder>/<subject>_encoding.npz)"
            )
        return (exact or entries)[0]

    def read_encoding(self, subject: str, encoder: str | None = None, results: StudyResults | None = None):
        """The arrays of ``encoding/<encoder>/<subject>_encoding.npz`` (``test_r``, ``p_permutation``,
        ``q_fdr``, ``significant``, ``noise_ceiling``, ``cv_r``, ``selected``, ``voxel_indices``); a file
        listed in ``results.json`` but absent raises :class:`~brain2music.errors.DataFileNotFoundError`."""
        entry = self.encoding_entry(subject, encoder, results)
        path = self.root / entry.npz
        if not path.is_file():
            raise DataFileNotFoundError(
                f"encoding arrays not found: {path} (listed in {self.root / self.RESULTS})"
            )
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}

    def subject_voxels(self, subject: str, encoder: str | None = None, results: StudyResults | None = None):
        """``(n_voxels,)`` int64: flat C-order indices into the BOLD grid of the decoder's input columns.

        Encoding arrays without ``voxel_indices`` (decoders fitted on derivative arrays) raise
        :class:`~brain2music.results.ResultsLayoutError`.
        """
        arrays = self.read_encoding(subject, encoder, results)
        if "voxel_indices" not in arrays:
            entry = self.encoding_entry(subject, encoder, results)
            raise ResultsLayoutError(
                f"{self.root / entry.npz}: no voxel_indices (the decoders were fitted on arrays without a "
                "voxel grid, or by an older brain2music)"
            )
        return np.asarray(arrays["voxel_indices"], dtype=np.int64)

    def encoding_map(self, subject: str, encoder: str | None = None, results: StudyResults | None = None):
        """The NIfTI image of the subject's encoding test-r map (``encoding/<encoder>/<subject>_test_r.nii.gz``);
        ``None`` where the folder has none (decoders fitted on derivative arrays have no grid)."""
        import nibabel as nib

        entry = self.encoding_entry(subject, encoder, results)
        if not entry.map or not (self.root / entry.map).is_file():
            return None
        return nib.load(str(self.root / entry.map))

    def grid(
        self, subject: str, encoder: str | None = None, results: StudyResults | None = None
    ) -> VoxelGrid:
        """The subject's :class:`~brain2music.results.VoxelGrid`: the voxel indices of its encoding arrays
        on the grid (shape, affine) of its encoding map's header. A subject without an encoding map raises
        :class:`~brain2music.errors.DataError` (no grid)."""
        results = self.read() if results is None else results
        voxels = self.subject_voxels(subject, encoder, results)
        image = self.encoding_map(subject, encoder, results)
        if image is None:
            raise DataError(f"{self.root / self.RESULTS}: no encoding map for {subject}, so no voxel grid")
        return VoxelGrid(image.shape[:3], image.affine, voxels)

    def grid_source(
        self, subject: str, encoder: str | None = None, results: StudyResults | None = None
    ) -> Path:
        """The file the grid's shape and affine come from (the encoding map)."""
        return self.root / str(self.encoding_entry(subject, encoder, results).map)

    # -- clip ids ---------------------------------------------------------------------------------------
    def test_clip_ids(self, encoder: str, subject: str) -> list[str]:
        """The clip ids of ``subject``'s test predictions of ``encoder``, over every method, sorted (empty
        where there are none)."""
        ids: set[str] = set()
        for method in self.prediction_methods(encoder):
            path = self.predictions_path(encoder, method, subject)
            if path.is_file():
                with np.load(path, allow_pickle=False) as z:
                    ids |= set(map(str, z["clip_ids"]))
        return sorted(ids)

    def embedded_clip_ids(self, results: StudyResults, encoder: str) -> list[str]:
        """The clip ids of ``embeddings/<encoder>.npz``, in the file's order."""
        return [str(c) for c in self.read_embeddings(results, encoder).clip_ids]

    # -- reconstruction.json ----------------------------------------------------------------------------
    @classmethod
    def read_reconstruction(cls, folder: str | os.PathLike) -> ReconstructionResults:
        """Read ``reconstruction.json`` of a reconstruction folder (schema 2, flat or nested scores)."""
        path = Path(folder) / cls.RECONSTRUCTION
        data = _read_json(path, missing=f"{path} not found: run `brain2music reconstruct` first")
        _check_schema(data, path, command="brain2music reconstruct RESULTS --library LIB --out OUT")
        return ReconstructionResults.from_dict(data)

    @classmethod
    def write_reconstruction(cls, folder: str | os.PathLike, recon: ReconstructionResults) -> Path:
        """Write ``reconstruction.json`` into ``folder`` (atomically, as the folder's one writer)."""
        recon.schema_version = SCHEMA_VERSION
        recon.version = __version__
        with cls(folder)._one_write(cls.RECONSTRUCTION):
            return write_json(Path(folder) / cls.RECONSTRUCTION, recon.to_dict())


# Folders this process writes: resolved root -> (lease token, thread that holds the run).
_WRITING: dict[str, tuple[str, int]] = {}


def _folder_key(root: Path) -> str:
    return os.path.realpath(root)


def _remove_if_only_lock(root: Path) -> None:
    try:
        if root.is_dir() and {p.name for p in root.iterdir()} <= {WRITER_LOCK}:
            (root / WRITER_LOCK).unlink(missing_ok=True)
            root.rmdir()
    except OSError:  # another process took the folder meanwhile: leave it
        pass


def _describe_holder(root: Path) -> str:
    info = lock_holder(root / WRITER_LOCK)
    if not info:
        return "an unknown process"
    return f"pid {info.get('pid')} on {info.get('host')} ({info.get('purpose')}), since {info.get('since')}"


def one_writer(purpose: str, *, writes: str = "out", reads: str | None = None):
    """Decorator: run the whole function as the only writer of its ``writes`` folder argument.

    With ``reads``, also hold that results-folder argument as a reader (:meth:`ResultsFolder.reading`),
    so no run rewrites it meanwhile. Both are taken before the function starts any work; a second
    writer gets a :class:`~brain2music.errors.ConcurrentWriterError` at once.
    """

    def decorate(fn):
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def run(*args, **kwargs):
            arguments = signature.bind(*args, **kwargs).arguments
            with contextlib.ExitStack() as stack:
                stack.enter_context(ResultsFolder(arguments[writes]).writing(purpose))
                if reads is not None:
                    stack.enter_context(ResultsFolder(arguments[reads]).reading(purpose))
                return fn(*args, **kwargs)

        return run

    return decorate


_PREDICTION_KEYS = (
    "clip_ids", "genres", "predicted", "target", "similarity", "clip_scores", "space", "space_mean", "space_scale",
)  # fmt: skip

_NOT_RESULTS = "{root}: not a results folder (no results.json); write one with `brain2music reproduce` or `brain2music run`"


def _read_json(path: Path, *, missing: str) -> dict:
    if not path.is_file():
        raise DataFileNotFoundError(missing)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object, found {type(data).__name__}")
    return data


def _check_schema(data: dict, path: Path, *, command: str | None = None) -> None:
    found = data.get("schema_version", 1)
    if found == SCHEMA_VERSION:
        return
    if command is None:
        command = _reproduce_command(data.get("config") or {})
    raise ResultsLayoutError(
        f"{path}: results layout {found}, but this brain2music ({__version__}) reads layout {SCHEMA_VERSION} "
        "(metric spaces, confidence intervals, split-half reproducibility; see docs/results_layout.md). "
        f"Regenerate the folder: {command}"
    )


def _reproduce_command(config: dict) -> str:
    """The ``brain2music reproduce`` command line that regenerates an old results folder."""
    parts = ["brain2music reproduce", str(config.get("bids_root") or "BIDS_ROOT")]
    if config.get("stimuli"):
        parts += ["--stimuli", str(config["stimuli"])]
    if config.get("derivatives"):
        parts += ["--derivatives", str(config["derivatives"])]
    parts += ["--encoders", ",".join(config.get("encoders") or ["acoustic"])]
    if config.get("methods"):
        parts += ["--methods", ",".join(config["methods"])]
    parts += ["--out", str(config.get("out") or "RESULTS")]
    return " ".join(parts)
