"""A live session: model + library + source + outputs (JSON lines, log, page). ``brain2music live`` calls
:func:`run_live`; :func:`live_decode` is the same pipeline as a Python generator of per-TR records.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from brain2music import __version__
from brain2music._io import to_json
from brain2music.errors import ConfigError, DataError
from brain2music.live.model import bold_tr, load_live_model
from brain2music.live.pipeline import LivePipeline, read_run_events
from brain2music.live.preprocess import DEFAULT_PRIOR_VOLUMES
from brain2music.live.sources import FolderWatcher, ReplaySource

__all__ = ["LiveOutput", "default_events", "live_decode", "open_live", "run_live"]

log = logging.getLogger("brain2music.live")
JSONL = "live.jsonl"
LOG = "live.log"


def default_events(bold: str | os.PathLike) -> Path | None:
    """The BIDS events file beside a run (``..._bold.nii[.gz]`` → ``..._events.tsv``), if it exists."""
    name = Path(bold).name
    for suf in ("_bold.nii.gz", "_bold.nii"):
        if name.endswith(suf):
            cand = Path(bold).with_name(name[: -len(suf)] + "_events.tsv")
            return cand if cand.is_file() else None
    return None


def open_live(
    decoder: str | os.PathLike,
    library=None,
    *,
    results: str | os.PathLike | None = None,
    events=None,
    k: int = 5,
    tr: float | None = None,
    prior_volumes: int = DEFAULT_PRIOR_VOLUMES,
    detrend_window: float = 240.0,
    training_stats: bool = True,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = False,
) -> LivePipeline:
    """Load a decoder (and its results folder), open the library and check they fit together.

    ``library``: a library folder or an opened :class:`~brain2music.reconstruct.MusicLibrary` (None: no
    retrieval). ``events``: an events file or table of the run (None: no ground truth). Raises
    :class:`~brain2music.errors.DataError` for every mismatch known before the first volume.
    """
    import pandas as pd

    from brain2music.reconstruct import MusicLibrary, open_library

    model = load_live_model(decoder, results=results, tr=tr, detrend_window=detrend_window,
                            training_stats=training_stats, cache_dir=cache_dir, progress=progress)  # fmt: skip
    lib = library if (library is None or isinstance(library, MusicLibrary)) else open_library(library)
    ev = events if (events is None or isinstance(events, pd.DataFrame)) else read_run_events(events)
    return LivePipeline(model, lib, k=k, events=ev, prior_volumes=prior_volumes)


def _source(
    pipeline: LivePipeline, replay, watch, *, speed: float, idle_timeout, poll: float, n_volumes=None
):
    tr = pipeline.model.tr
    if (replay is None) == (watch is None):
        raise ConfigError("give exactly one of --replay BOLD or --watch DIR")
    if replay is not None:
        file_tr = bold_tr(replay)
        if file_tr is not None and abs(file_tr - tr) > 1e-3:
            raise DataError(f"{replay}: TR {file_tr} s, but the decoder was trained at TR {tr} s")
        src = ReplaySource(replay, tr=tr, speed=speed)
        pipeline.model.grid.extract(  # a wrong grid is known before the first volume: refuse to start
            _FirstVolume(src.shape, src.affine), source=str(replay)
        )
        return src
    return FolderWatcher(watch, tr=tr, poll=poll, idle_timeout=idle_timeout, n_volumes=n_volumes)


class _FirstVolume:
    def __init__(self, shape, affine):
        self.data = np.zeros(shape, dtype=np.float32)
        self.affine = affine


def live_decode(
    decoder: str | os.PathLike,
    library=None,
    *,
    replay: str | os.PathLike | None = None,
    watch: str | os.PathLike | None = None,
    events=None,
    speed: float = 1.0,
    idle_timeout: float | None = 30.0,
    poll: float = 0.005,
    **options,
) -> Iterator[dict]:
    """Yield one record per volume of a replayed run or a watched folder (keys: README, "Live decoding").

    ``options`` go to :func:`open_live` (``results``, ``k``, ``tr``, ``prior_volumes``, ...). For a replay
    without ``events``, the BIDS events file beside the run is used when present.
    """
    if replay is not None and events is None:
        events = default_events(replay)
    pipeline = open_live(decoder, library, events=events, **options)
    yield from pipeline.run(
        _source(pipeline, replay, watch, speed=speed, idle_timeout=idle_timeout, poll=poll)
    )


class LiveOutput:
    """``OUT/live.jsonl`` (one JSON object per line) and ``OUT/live.log``.

    Lines: one ``{"type": "start", ...}`` per session, one ``{"type": "tr", ...}`` per volume, one
    ``{"type": "end", ...}`` when a session ends. Each line is written with one ``write`` and flushed, so a
    reader tailing the file sees whole records. On a restart with the same source the file is continued:
    volumes it already holds are not written again (they are still processed, to rebuild the causal
    state), and a half-written last line left by a crash is cut off. Another source in the same folder is
    refused.
    """

    def __init__(self, out: str | os.PathLike, source: str):
        self.dir = Path(out)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / JSONL
        self.source = source
        self.done_volumes: set[int] = set()
        if self.path.is_file():
            self._resume()
        self._fh = open(self.path, "a", encoding="utf-8")
        self._log_handler = logging.FileHandler(self.dir / LOG, encoding="utf-8")
        self._log_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(self._log_handler)

    def _resume(self) -> None:
        raw = self.path.read_bytes()
        if raw and not raw.endswith(b"\n"):  # a crash mid-line: drop the partial record
            raw = raw[: raw.rfind(b"\n") + 1]
            with open(self.path, "r+b") as fh:
                fh.truncate(len(raw))
        sources = set()
        for line in raw.decode("utf-8").splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if rec.get("type") == "start":
                sources.add(rec.get("source"))
            elif rec.get("type") == "tr":
                self.done_volumes.add(int(rec["volume"]))
        other = sources - {self.source}
        if other:
            raise DataError(
                f"{self.path} holds results of another source ({sorted(map(str, other))[0]}); "
                f"choose another --out folder for {self.source}"
            )

    def write(self, record: dict) -> bool:
        """Append ``record`` unless it is a volume already written; True when written."""
        if record.get("type") == "tr" and record["volume"] in self.done_volumes:
            return False
        self._fh.write(to_json(record, indent=None) + "\n")
        self._fh.flush()
        return True

    def close(self) -> None:
        """Close the log file and detach the session's log handler."""
        self._fh.close()
        log.removeHandler(self._log_handler)
        self._log_handler.close()


def summarize(records: list[dict], test_clips: int | None = None) -> dict:
    """Latency percentiles, genre agreement, N-way identification and status counts of a session's records.

    ``top1_acc`` / ``top5_acc``: the fraction of the clip presentations decoded to their last volume
    (``clip_complete``) whose clip ranked first / among the first 5 of the test clips (``None`` when no
    test clip was played), with their chance levels ``top1_chance`` / ``top5_chance`` = k / n for
    ``test_clips`` = n candidates (the ``start`` record's ``test_clips``).
    """
    from brain2music.evaluate import topk_chance

    lat = np.array([r["latency_ms"] for r in records if r.get("latency_ms") is not None], dtype=float)
    judged = [r["genre_match"] for r in records if r.get("genre_match") is not None]
    ranked = [r for r in records if r.get("clip_complete") and r.get("truth_rank") is not None]
    status: dict[str, int] = {}
    for r in records:
        key = r["status"] + (" (imputed)" if r.get("imputed") else "")
        status[key] = status.get(key, 0) + 1
    return {
        "n_volumes": len(records),
        "latency_ms_p50": float(np.percentile(lat, 50)) if lat.size else None,
        "latency_ms_p99": float(np.percentile(lat, 99)) if lat.size else None,
        "latency_ms_max": float(lat.max()) if lat.size else None,
        "genre_match_rate": float(np.mean(judged)) if judged else None,
        "n_genre_judged": len(judged),
        "n_clips_ranked": len(ranked),
        "top1_acc": float(np.mean([r["top1"] for r in ranked])) if ranked else None,
        "top5_acc": float(np.mean([r["top5"] for r in ranked])) if ranked else None,
        "truth_rank_median": float(np.median([r["truth_rank"] for r in ranked])) if ranked else None,
        "test_clips": test_clips,
        "top1_chance": topk_chance(test_clips, 1) if test_clips else None,
        "top5_chance": topk_chance(test_clips, 5) if test_clips else None,
        "status": status,
        "n_issues": sum(len(r.get("issues", [])) for r in records),
    }


def _progress_line(rec: dict) -> str:
    top = rec["top"][0] if rec.get("top") else None
    lat = "catch-up" if rec["latency_ms"] is None else f"{rec['latency_ms']:6.1f} ms"
    parts = [f"vol {rec['volume']:4d}", f"{rec['status']:7s}", lat]
    if top:
        parts.append(f"top: {top['title']} ({top['score']:.3f})")
    if rec.get("top_genre"):
        truth = rec.get("truth")
        mark = "" if truth is None else f" [playing {truth['genre']} {'✓' if rec['genre_match'] else '✗'}]"
        parts.append(f"genre {rec['top_genre']}{mark}")
    if rec.get("truth_rank") is not None:
        parts.append(f"clip rank {rec['truth_rank']}")
    return "  ".join(parts)


def run_live(
    decoder: str | os.PathLike,
    library: str | os.PathLike | None,
    *,
    replay: str | os.PathLike | None = None,
    watch: str | os.PathLike | None = None,
    events: str | os.PathLike | None = None,
    speed: float = 1.0,
    port: int = 8765,
    browser: bool = True,
    open_browser: bool = True,
    out: str | os.PathLike | None = None,
    k: int = 5,
    results: str | os.PathLike | None = None,
    tr: float | None = None,
    prior_volumes: int = DEFAULT_PRIOR_VOLUMES,
    idle_timeout: float | None = 30.0,
    linger: float | None = None,
    verbose: bool = True,
    stop=None,
) -> dict:
    """Decode a replayed run or a watched folder live; serve the page and/or write ``OUT/live.jsonl``.

    Parameters
    ----------
    decoder, library : decoder file (``results/decoders/<enc>/<method>/<subject>.joblib``), library folder
    replay, watch : a 4-D run to replay, or the folder a real-time export writes into (exactly one)
    events : events of the run (default for ``replay``: the BIDS events file beside it)
    speed : replay speed (1 = TR pace, 0 = as fast as possible)
    port : page port on 127.0.0.1 (0: any free port); ``browser=False`` serves no page,
        ``open_browser=False`` serves it without opening a browser
    out : folder of ``live.jsonl`` and ``live.log`` (None: no files)
    idle_timeout : watch mode ends after this many seconds without a new volume (None: never)
    linger : seconds the page stays up after the run ends (None: until interrupted; 0: close at once)
    stop : a :class:`threading.Event`; setting it ends the run (and the linger) after the current volume

    Returns the session summary (:func:`summarize`) with ``url`` and ``out``.
    """
    if replay is not None and events is None:
        events = default_events(replay)
    pipeline = open_live(
        decoder, library, results=results, events=events, k=k, tr=tr, prior_volumes=prior_volumes
    )
    source = _source(pipeline, replay, watch, speed=speed, idle_timeout=idle_timeout, poll=0.005)
    source.stop = stop
    source_name = str(Path(replay if replay is not None else watch).resolve())
    meta = {**pipeline.model.describe(), "source": source_name, "mode": "replay" if replay else "watch",
            "library": str(getattr(pipeline.library, "path", "")) or None,
            "events": str(events) if events is not None else None, "version": __version__}  # fmt: skip
    output = LiveOutput(out, source_name) if out is not None else None
    server = state = None
    if browser:
        from brain2music.live.server import LiveServer, LiveState

        state = LiveState(meta)
        pipeline.issue_listeners.append(state.add_issue)
        server = LiveServer(state, pipeline.library, port=port).start()
        if verbose:
            print(f"live page: {server.url}", file=sys.stderr, flush=True)
        if open_browser:
            import webbrowser

            webbrowser.open(server.url)
    records: list[dict] = []
    console = None
    if verbose:  # issues on stderr as they happen (besides live.log)
        console = logging.StreamHandler(sys.stderr)
        console.setFormatter(logging.Formatter("live: %(message)s"))
        log.addHandler(console)
    try:
        if output is not None:
            output.write(
                {
                    "type": "start",
                    **meta,
                    "started_at": time.time(),
                    "resumed_volumes": len(output.done_volumes),
                }
            )
        for rec in pipeline.run(source):
            if stop is not None and stop.is_set():
                break
            records.append(rec)
            if output is not None:
                output.write(rec)
            if state is not None:
                state.add_record(rec)
            if verbose:
                print(_progress_line(rec), file=sys.stderr, flush=True)
        summary = summarize(records, meta.get("test_clips"))
        if output is not None:
            output.write({"type": "end", **summary, "ended_at": time.time()})
        if state is not None:
            state.finish()
        if verbose:
            print(to_json(summary), file=sys.stderr, flush=True)
        if server is not None and linger != 0:
            if verbose:
                print(f"run finished; the page stays at {server.url} ({'Ctrl-C to stop' if linger is None else f'{linger:.0f} s'})",
                      file=sys.stderr, flush=True)  # fmt: skip
            _linger(linger, stop)
    finally:
        if output is not None:
            output.close()
        if server is not None:
            server.stop()
        if console is not None:
            log.removeHandler(console)
    summary["url"] = server.url if server is not None else None
    summary["out"] = str(output.path) if output is not None else None
    return summary


def _linger(seconds: float | None, stop=None) -> None:
    deadline = None if seconds is None else time.time() + max(0.0, float(seconds))
    try:
        while deadline is None or time.time() < deadline:
            if stop is not None and stop.is_set():
                return
            time.sleep(0.1)
    except KeyboardInterrupt:
        pass
