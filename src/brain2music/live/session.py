"""A live session: model + library + source + outputs (JSON lines, log, page). ``brain2music live`` calls
:func:`run_live`; :func:`live_decode` is the same pipeline as a Python generator of per-TR records.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from brain2music import __version__
from brain2music._checks import check_known_options
from brain2music._io import to_json
from brain2music.errors import ConfigError, DataError
from brain2music.live.model import bold_tr, load_live_model
from brain2music.live.pipeline import LivePipeline, read_run_events
from brain2music.live.preprocess import DEFAULT_PRIOR_VOLUMES
from brain2music.live.sources import FolderWatcher, ReplaySource

__all__ = ["LiveOutput", "LiveSettings", "default_events", "live_decode", "open_live", "run_live"]

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


@dataclass(frozen=True)
class LiveSettings:
    """Every option of a live session (``brain2music live`` and :func:`run_live` build the same one).

    Attributes
    ----------
    decoder, library : decoder file (``results/decoders/<enc>/<method>/<subject>.joblib``), library folder
        (None: no retrieval)
    replay, watch : a 4-D run to replay, or the folder a real-time export writes into (exactly one)
    events : events of the run (default for ``replay``: the BIDS events file beside it)
    speed : replay speed (1 = TR pace, 0 = as fast as possible)
    port : page port on 127.0.0.1 (0: any free port); ``browser=False`` serves no page,
        ``open_browser=False`` serves it without opening a browser
    out : folder of ``live.jsonl`` and ``live.log`` (None: no files)
    k, results, tr, prior_volumes : tracks per search, the decoder's results folder, its TR and the
        weight of the training prior in the live z-score (:func:`open_live`)
    idle_timeout : watch mode ends after this many seconds without a new volume (None: never)
    linger : seconds the page stays up after the run ends (None: until interrupted; 0: close at once)
    """

    decoder: Path
    library: Path | None = None
    replay: Path | None = None
    watch: Path | None = None
    events: Path | None = None
    speed: float = 1.0
    port: int = 8765
    browser: bool = True
    open_browser: bool = True
    out: Path | None = None
    k: int = 5
    results: Path | None = None
    tr: float | None = None
    prior_volumes: int = DEFAULT_PRIOR_VOLUMES
    idle_timeout: float | None = 30.0
    linger: float | None = None

    @classmethod
    def from_options(cls, decoder, library=None, **options) -> LiveSettings:
        """Check the options (errors name them; an unknown one is a ConfigError) into settings."""
        known = {f.name for f in dataclasses.fields(cls)} - {"decoder", "library"}
        check_known_options(options, known, what="live")
        if (options.get("replay") is None) == (options.get("watch") is None):
            raise ConfigError("give exactly one of --replay BOLD or --watch DIR")
        if options.get("replay") is not None and options.get("events") is None:
            options["events"] = default_events(options["replay"])
        paths = ("replay", "watch", "events", "out", "results")
        kw = {k: Path(v) if k in paths and v is not None else v for k, v in options.items()}
        s = cls(Path(decoder), None if library is None else Path(library), **kw)
        if int(s.k) < 1:
            raise ConfigError(f"k must be >= 1, got {s.k!r}")
        if float(s.speed) < 0:
            raise ConfigError(f"speed must be >= 0 (0: as fast as possible), got {s.speed!r}")
        if not 0 <= int(s.port) <= 65535:
            raise ConfigError(f"port must be in 0..65535, got {s.port!r}")
        return s


def run_live(
    settings: LiveSettings | str | os.PathLike,
    library: str | os.PathLike | None = None,
    /,
    *,
    verbose: bool = True,
    stop=None,
    **options,
) -> dict:
    """Decode a replayed run or a watched folder live; serve the page and/or write ``OUT/live.jsonl``.

    ``run_live(settings)`` with a :class:`LiveSettings`, or ``run_live(decoder, library, **options)``
    (its fields), which builds the same settings. ``verbose``: a line per volume on stderr; ``stop``: a
    :class:`threading.Event` whose setting ends the run (and the linger) after the current volume.

    Returns the session summary (:func:`summarize`) with ``url`` and ``out``.
    """
    if not isinstance(settings, LiveSettings):
        settings = LiveSettings.from_options(settings, library, **options)
    elif options or library is not None:
        raise ConfigError("run_live(settings, ...): give the options in the LiveSettings, not beside them")
    s = settings
    pipeline = open_live(s.decoder, s.library, results=s.results, events=s.events, k=s.k, tr=s.tr,
                         prior_volumes=s.prior_volumes)  # fmt: skip
    source = _source(pipeline, s.replay, s.watch, speed=s.speed, idle_timeout=s.idle_timeout, poll=0.005)
    source.stop = stop
    source_name = str(Path(s.replay if s.replay is not None else s.watch).resolve())
    meta = {**pipeline.model.describe(), "source": source_name, "mode": "replay" if s.replay else "watch",
            "library": str(getattr(pipeline.library, "path", "")) or None,
            "events": str(s.events) if s.events is not None else None, "version": __version__}  # fmt: skip
    output = LiveOutput(s.out, source_name) if s.out is not None else None
    server, state = _serve(s, pipeline, meta, verbose)
    console = _console() if verbose else None  # issues on stderr as they happen (besides live.log)
    try:
        if output is not None:
            output.write({"type": "start", **meta, "started_at": time.time(),
                          "resumed_volumes": len(output.done_volumes)})  # fmt: skip
        records = _decode(pipeline, source, output, state, verbose, stop)
        summary = summarize(records, meta.get("test_clips"))
        if output is not None:
            output.write({"type": "end", **summary, "ended_at": time.time()})
        if state is not None:
            state.finish()
        if verbose:
            print(to_json(summary), file=sys.stderr, flush=True)
        if server is not None and s.linger != 0:
            if verbose:
                print(f"run finished; the page stays at {server.url} ({'Ctrl-C to stop' if s.linger is None else f'{s.linger:.0f} s'})",
                      file=sys.stderr, flush=True)  # fmt: skip
            _linger(s.linger, stop)
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


def _serve(s: LiveSettings, pipeline: LivePipeline, meta: dict, verbose: bool):
    """``(server, state)`` of the live page (``(None, None)`` without ``browser``); opens a browser on it."""
    if not s.browser:
        return None, None
    from brain2music.live.server import LiveServer, LiveState

    state = LiveState(meta)
    pipeline.issue_listeners.append(state.add_issue)
    server = LiveServer(state, pipeline.library, port=s.port).start()
    if verbose:
        print(f"live page: {server.url}", file=sys.stderr, flush=True)
    if s.open_browser:
        import webbrowser

        webbrowser.open(server.url)
    return server, state


def _console() -> logging.Handler:
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(logging.Formatter("live: %(message)s"))
    log.addHandler(console)
    return console


def _decode(pipeline: LivePipeline, source, output, state, verbose: bool, stop) -> list[dict]:
    """Every volume of ``source`` through the pipeline, each record written, shown and kept."""
    records: list[dict] = []
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
    return records


def _linger(seconds: float | None, stop=None) -> None:
    deadline = None if seconds is None else time.time() + max(0.0, float(seconds))
    try:
        while deadline is None or time.time() < deadline:
            if stop is not None and stop.is_set():
                return
            time.sleep(0.1)
    except KeyboardInterrupt:
        pass
