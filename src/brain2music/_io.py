"""Atomic file writing: a crash never leaves a half-written file that looks valid."""

from __future__ import annotations

import contextlib
import json
import os
import random
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only if the block succeeds.

    The temporary file lives in the same folder, so the final ``os.replace`` is atomic on POSIX.
    ``suffix`` defaults to the target's suffixes (libraries such as nibabel and soundfile pick the
    format from the extension).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix is None:
        suffix = "".join(path.suffixes)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def _json_default(obj: Any):
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")


def to_json(obj: Any, *, indent: int | None = 2) -> str:
    """Serialise ``obj`` to JSON, converting numpy scalars/arrays and paths."""
    return json.dumps(obj, indent=indent, default=_json_default)


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as JSON to ``path`` atomically."""
    return write_text(path, to_json(obj) + "\n")


def save_npz(path: str | os.PathLike, **arrays: Any) -> Path:
    """Save arrays to a compressed ``.npz`` atomically."""
    path = Path(path)
    with atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)
    return path


# ------------------------------------------------------------------------------ locks and CAS commits
# Data that many processes write (a library, a cache, a results folder) goes through these. flock locks
# are released by the kernel when the holder dies, so a crashed writer never leaves a stale lock; on
# Linux NFS they are emulated with POSIX byte-range locks (NLM / NFSv4), which cluster file systems honour.


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return "an unknown process"
    if not info:
        return "an unknown process"
    what = f" ({info['purpose']})" if info.get("purpose") else ""
    return f"pid {info.get('pid')} on {info.get('host')}{what}, since {info.get('since')}"


@contextlib.contextmanager
def file_lock(
    path: str | os.PathLike, *, timeout: float | None = None, poll: float = 0.05, purpose: str = ""
) -> Iterator[Path]:
    """Hold an exclusive lock on ``path`` (created if missing) for the duration of the block.

    ``timeout``: seconds to wait (``None``: forever, ``0``: fail at once); on expiry
    :class:`~brain2music.errors.LockTimeout` names the lock file and its holder (pid, host, purpose,
    since when), which the holder writes into the file.
    """
    import fcntl
    import socket
    import time
    from datetime import datetime, timezone

    from brain2music.errors import LockTimeout

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    deadline = None if timeout is None else time.monotonic() + float(timeout)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if deadline is not None and time.monotonic() >= deadline:
                    raise LockTimeout(
                        f"{path}: locked by {_holder(path)}; waited {timeout:g} s"
                        + (f" to {purpose}" if purpose else "")
                    ) from None
                time.sleep(poll * (0.5 + random.random()))
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "purpose": purpose,
            "since": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        try:
            yield path
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextlib.contextmanager
def exclusive_writer(folder: str | os.PathLike, *, purpose: str) -> Iterator[Path]:
    """Refuse a second concurrent writer of ``folder``: a non-blocking lock on ``folder/.writer.lock``.

    Raises :class:`~brain2music.errors.ConcurrentWriterError` naming the folder and the process that
    holds it. ``purpose`` (e.g. ``"brain2music reproduce"``) is shown to the refused writer.
    """
    from brain2music.errors import ConcurrentWriterError, LockTimeout

    folder = Path(folder)
    acquired = False
    try:
        with file_lock(folder / ".writer.lock", timeout=0, purpose=purpose) as lock:
            acquired = True
            yield lock
    except LockTimeout:
        if acquired:  # raised by the caller's block, not by taking this lock
            raise
        raise ConcurrentWriterError(
            f"{folder}: another process is writing this folder ({_holder(folder / '.writer.lock')}); "
            f"wait for it to finish or write to another folder ({purpose} refused)"
        ) from None


def read_json_generation(path: str | os.PathLike) -> tuple[dict | None, int]:
    """``(document, generation)`` of a JSON file committed by :func:`commit_json` (``(None, -1)`` if absent).

    Documents written without a ``generation`` field count as generation 0.
    """
    from brain2music.errors import DataError

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, -1
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from exc
    return doc, int(doc.get("generation", 0)) if isinstance(doc, dict) else 0


def commit_json(
    path: str | os.PathLike,
    update,
    *,
    retries: int = 1000,
    lock_timeout: float = 60.0,
) -> dict | None:
    """Compare-and-swap read-modify-write of a JSON document shared by concurrent writers.

    ``update(doc)`` receives the current document (``None`` if the file does not exist) and returns the
    new one, or ``None`` for "nothing to commit". It runs outside any lock (it may do slow work, e.g.
    write the data file the document will list) and must tolerate being called again: under
    ``file_lock(path + ".lock")`` the file is re-read, and the new document (``generation`` + 1) is
    written atomically only if nobody committed in between; otherwise ``update`` is called again with
    the fresh document, after a short jittered back-off. Returns the committed document (or ``None``).
    """
    import time

    from brain2music.errors import DataError

    path = Path(path)
    lock = path.with_name(path.name + ".lock")
    for attempt in range(int(retries)):
        doc, gen = read_json_generation(path)
        new = update(None if doc is None else json.loads(json.dumps(doc)))
        if new is None:
            return None
        with file_lock(lock, timeout=lock_timeout, purpose=f"commit {path.name}"):
            _, current = read_json_generation(path)
            if current == gen:
                new = dict(new)
                new["generation"] = gen + 1
                write_json(path, new)
                return new
        time.sleep(min(0.5, 0.005 * (1 + attempt)) * random.random())
    raise DataError(f"{path}: gave up committing after {retries} conflicting concurrent writes")
