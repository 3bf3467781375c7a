"""Where live volumes come from: a recorded 4-D run replayed at TR pace, or a folder a scanner export
writes one file per TR into.

Both yield :class:`Arrival` objects in volume order, each with the time its volume became available
(``complete_at``, seconds since the epoch): the latency clock of the live pipeline starts there.

Folder watching (:class:`FolderWatcher`) polls the folder (every 5 ms by default; polling rather than
inotify because scanner exports often land on network shares that deliver no file events — OpenNFT offers
a polling observer for the same reason). A file is read only once it is complete:

- files with temporary names (hidden, ``.tmp``, ``.part``, ``~``) are never read: writers that rename
  into place are picked up at the rename;
- a file is complete when it holds what its own header declares (:func:`~brain2music.live.volumes.read_volume`);
  one that stays short while its size stops changing for ``settle`` seconds is *truncated*, one that
  cannot be parsed is *unreadable*: both are reported with the file named and the volume counts as bad;
- ``complete_at`` is the file's ctime, i.e. its last write or its rename into place.

Volume numbers come from the DICOM InstanceNumber, else the last number in the file name, counted from
``first_number`` (default: 0 if a file numbered 0 is seen first, else 1). Volume ``n`` is *late* when it
is not there one TR + ``late_after`` after volume ``n - 1`` (reported once, the watcher keeps waiting) and
*missing* once a later volume has been complete for ``missing_after`` seconds without it. A restart
reads the files already in the folder first (``catch_up=True``), so the causal state is rebuilt and the
run continues where the folder is.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from brain2music.errors import DataError, DataFileNotFoundError
from brain2music.live.volumes import IncompleteFile, RawVolume, is_volume_file, read_volume, volume_number

__all__ = ["Arrival", "FolderWatcher", "ReplaySource"]


@dataclass
class Arrival:
    """One volume slot of the run.

    ``status``: ``"ok"`` (``volume`` set), ``"missing"`` (never arrived) or ``"bad"`` (file unreadable,
    truncated or of the wrong shape). ``issues``: ``{"kind", "file", "volume", "message"}`` dicts noticed
    since the previous arrival.
    """

    index: int
    volume: RawVolume | None
    path: str | None
    complete_at: float
    status: str = "ok"
    issues: list[dict] = field(default_factory=list)
    catch_up: bool = False
    read_ms: float = 0.0


def _issue(kind: str, message: str, *, file: str | None = None, volume: int | None = None) -> dict:
    return {"kind": kind, "file": file, "volume": volume, "message": message}


class ReplaySource:
    """Play a recorded 4-D run (``.nii``/``.nii.gz``) volume by volume.

    Volume ``i`` becomes available ``(i - start + 1) * tr / speed`` seconds after the start (the end of its
    acquisition); ``speed=0`` plays as fast as the consumer takes them (``complete_at`` = hand-over time).
    Volumes are read ``chunk`` at a time ahead of their release, so reading is not part of the latency.
    """

    def __init__(
        self, bold: str | os.PathLike, *, tr: float, speed: float = 1.0, start: int = 0, chunk: int = 16
    ):
        import nibabel as nib

        self.bold = Path(bold)
        if not self.bold.is_file():
            raise DataFileNotFoundError(f"BOLD run to replay not found: {self.bold}")
        try:
            # keep_file_open: a .nii.gz is then decompressed once, front to back, not again for every chunk
            self._img = nib.load(str(self.bold), keep_file_open=True)
        except Exception as exc:
            raise DataError(f"{self.bold}: cannot read as a NIfTI image ({exc})") from exc
        if len(self._img.shape) != 4:
            raise DataError(f"{self.bold}: expected a 4-D run (x, y, z, time); found shape {self._img.shape}")
        if speed < 0:
            raise DataError(f"speed must be >= 0 (0 = as fast as possible); got {speed}")
        self.tr = float(tr)
        self.speed = float(speed)
        self.start = int(start)
        self.chunk = int(chunk)
        self.n_volumes = int(self._img.shape[3])
        #: a threading.Event; once set, iteration ends before the next volume
        self.stop = None
        self.shape = tuple(int(s) for s in self._img.shape[:3])
        self.affine = np.asarray(self._img.affine, dtype=np.float64)

    def __iter__(self) -> Iterator[Arrival]:
        t0 = time.time()
        block, b0 = None, -1
        proxy = self._img.dataobj
        for i in range(self.start, self.n_volumes):
            if self.stop is not None and self.stop.is_set():
                return
            if block is None or i >= b0 + block.shape[3]:
                b0 = i
                block = np.asarray(proxy[..., i : min(self.n_volumes, i + self.chunk)], dtype=np.float32)
            data = np.ascontiguousarray(block[..., i - b0])
            if self.speed > 0:
                due = t0 + (i - self.start + 1) * self.tr / self.speed
                while (wait := due - time.time()) > 0:
                    if self.stop is not None and self.stop.is_set():
                        return
                    time.sleep(min(wait, 0.1))
            else:
                due = time.time()
            yield Arrival(i, RawVolume(data, self.affine, tr=self.tr), f"{self.bold}#{i}", due)


def _import_readers() -> None:
    """Import the NIfTI and DICOM readers now: their first import (0.2-0.3 s) must not land on volume 0."""
    import warnings

    import nibabel  # noqa: F401
    import pydicom  # noqa: F401

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from nibabel.nicom import dicomwrappers  # noqa: F401


@dataclass
class _FileState:
    size: int
    ctime: float
    changed_at: float
    tried: tuple | None = None  # (size, ctime) of the last failed read
    at_start: bool = False


class FolderWatcher:
    """Yield the volumes a real-time export writes into ``folder`` (see the module docstring).

    Parameters
    ----------
    folder : the export folder (must exist)
    tr : seconds; paces the late / missing decisions
    poll : seconds between scans of the folder
    settle : seconds a short or unreadable file must stay unchanged before it is declared bad
    late_after, missing_after : seconds (default ``tr / 2`` and ``tr``)
    idle_timeout : stop after this many seconds without a new volume, counted from the first one (the
        watcher waits for the first volume as long as it takes; None: run until the consumer stops)
    first_number : the number of the first volume's file (default: inferred, see the module docstring)
    n_volumes : stop after this many volume slots (None: no limit)
    """

    def __init__(
        self,
        folder: str | os.PathLike,
        *,
        tr: float,
        poll: float = 0.005,
        settle: float = 1.0,
        late_after: float | None = None,
        missing_after: float | None = None,
        idle_timeout: float | None = None,
        first_number: int | None = None,
        n_volumes: int | None = None,
    ):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise DataFileNotFoundError(f"watch folder not found: {self.folder}")
        self.tr = float(tr)
        self.poll = float(poll)
        self.settle = float(settle)
        self.late_after = self.tr / 2 if late_after is None else float(late_after)
        self.missing_after = self.tr if missing_after is None else float(missing_after)
        self.idle_timeout = idle_timeout
        self.first_number = first_number
        self.n_volumes = n_volumes
        self._files: dict[str, _FileState] = {}
        self._done: set[str] = set()
        self._ready: dict[int, Arrival] = {}
        self._issues: list[dict] = []
        self._first_scan = True
        #: called with each issue dict as soon as it is noticed (the pipeline logs it and shows it)
        self.on_issue = None
        #: a threading.Event; once set, iteration ends at the next poll
        self.stop = None
        #: set once the first scan is done: files there by then are caught up, later ones are live
        self.scanned = threading.Event()
        _import_readers()

    def _report(self, issue: dict) -> dict:
        if self.on_issue is not None:
            self.on_issue(issue)
        return issue

    # -- one scan of the folder
    def _scan(self, now: float) -> None:
        try:  # names already consumed are dropped first: a scan stays cheap with hundreds of files
            with os.scandir(self.folder) as it:
                entries = [
                    e for e in it if e.name not in self._done and is_volume_file(e.name) and e.is_file()
                ]
        except FileNotFoundError:
            entries = []
        for entry in sorted(entries, key=lambda e: e.name):
            try:
                st = entry.stat()
            except FileNotFoundError:  # renamed away between listing and stat
                continue
            state = self._files.get(entry.name)
            if state is None:
                state = self._files[entry.name] = _FileState(
                    st.st_size, st.st_ctime, now, at_start=self._first_scan
                )
            elif (st.st_size, st.st_ctime) != (state.size, state.ctime):
                state.size, state.ctime, state.changed_at = st.st_size, st.st_ctime, now
            if state.tried == (state.size, state.ctime) and now - state.changed_at < self.settle:
                continue  # failed at this size already; wait for a change or for the settle time
            self._try_read(entry.name, state, now)
        self._first_scan = False
        self.scanned.set()

    def _pending(self, index: int) -> bool:
        """Is a file of volume ``index`` in the folder but not complete yet (it is waited for, not missing)?"""
        base = 0 if self.first_number is None else self.first_number
        return any(volume_number(name) == index + base for name in self._files)

    def _number(self, name: str, volume: RawVolume | None) -> int | None:
        number = volume.number if volume is not None and volume.number is not None else volume_number(name)
        if number is None:
            return None
        if self.first_number is None:
            self.first_number = 0 if number == 0 else 1
        return number - self.first_number

    def _try_read(self, name: str, state: _FileState, now: float) -> None:
        path = self.folder / name
        t0 = time.perf_counter()
        try:
            volume = read_volume(path)
            status, problem = "ok", None
        except (IncompleteFile, DataError) as exc:
            if now - state.changed_at < self.settle:
                state.tried = (state.size, state.ctime)
                return
            kind = "truncated" if isinstance(exc, IncompleteFile) else "unreadable"
            volume, status, problem = None, "bad", _issue(kind, str(exc), file=str(path))
        except FileNotFoundError:
            self._files.pop(name, None)
            return
        self._done.add(name)
        self._files.pop(name, None)
        index = self._number(name, volume)
        if index is None or index < 0:
            self._issues.append(self._report(_issue("unnumbered", f"{path}: cannot tell which volume this file holds "
                                       "(no InstanceNumber, no number in the name); ignored", file=str(path))))  # fmt: skip
            return
        if problem is not None:
            problem["volume"] = index
            self._report(problem)
        if index < self._next or index in self._ready:
            what = "was declared missing" if index < self._next else "already arrived"
            self._issues.append(self._report(_issue("too-late" if index < self._next else "duplicate",
                                       f"{path}: volume {index} {what}; file ignored", file=str(path), volume=index)))  # fmt: skip
            return
        self._ready[index] = Arrival(index, volume, str(path), state.ctime, status, [problem] if problem else [],
                                     catch_up=state.at_start, read_ms=1e3 * (time.perf_counter() - t0))  # fmt: skip

    def __iter__(self) -> Iterator[Arrival]:
        self._next = 0
        last_at = time.time()
        late_reported = -1
        while self.n_volumes is None or self._next < self.n_volumes:
            if self.stop is not None and self.stop.is_set():
                return
            now = time.time()
            self._scan(now)
            while self._next in self._ready:
                arrival = self._ready.pop(self._next)
                arrival.issues = self._issues + arrival.issues
                self._issues = []
                last_at = max(last_at, arrival.complete_at) if not arrival.catch_up else now
                self._next += 1
                yield arrival
                if self.n_volumes is not None and self._next >= self.n_volumes:
                    return
            now = time.time()
            later = [a.complete_at for i, a in self._ready.items() if i > self._next]
            if later and now - min(later) >= self.missing_after and not self._pending(self._next):
                issue = _issue("missing", f"volume {self._next}: no complete file in {self.folder} while "
                               f"volume {min(i for i in self._ready if i > self._next)} arrived "
                               f"{now - min(later):.2f} s ago", volume=self._next)  # fmt: skip
                nxt = min(i for i in self._ready if i > self._next)
                yield Arrival(self._next, None, None, now, "missing", self._issues + [self._report(issue)],
                              catch_up=self._ready[nxt].catch_up)  # fmt: skip
                self._issues = []
                self._next += 1
                continue
            # Before the first volume the scan may simply not have started: neither late nor idle then.
            if self._next == 0 and not self._ready:
                time.sleep(self.poll)
                continue
            if late_reported < self._next and now - last_at > self.tr + self.late_after and not self._ready:
                late_reported = self._next
                self._issues.append(self._report(_issue("late", f"volume {self._next}: not in {self.folder} "
                                           f"{now - last_at:.2f} s after the previous one (TR {self.tr} s)",
                                           volume=self._next)))  # fmt: skip
            if self.idle_timeout is not None and now - last_at > self.idle_timeout and not self._ready:
                return
            time.sleep(self.poll)
