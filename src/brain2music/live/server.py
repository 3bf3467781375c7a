"""The live page: a small HTTP server on 127.0.0.1 (never another interface) with no outside resources.

Routes:

- ``/`` — the page (``resources/live/page.html``: inline CSS and JavaScript, no CDN, no fonts to fetch);
- ``/api/state?since=N`` — JSON ``{meta, records: records[N:], issues, done}``; records without their
  ``prediction`` vector (the page does not need it);
- ``/audio/<item>.wav`` — the first 30 s of library track ``item`` as 16-bit WAV (decoded with
  :func:`brain2music.stimuli.read_audio`, so any format the library was built from plays in any browser),
  with HTTP Range support for the media element.

The page polls ``/api/state`` every 0.4 s; the pipeline never waits for it.
"""

from __future__ import annotations

import http.server
import io
import re
import threading
import time
from collections import OrderedDict
from importlib.resources import files
from urllib.parse import parse_qs, urlparse

from brain2music._io import to_json
from brain2music.errors import ConfigError

__all__ = ["LiveServer", "LiveState"]

AUDIO_SECONDS = 30.0
AUDIO_SR = 22050


class LiveState:
    """What the page shows; the pipeline thread adds to it, server threads read it (under a lock)."""

    def __init__(self, meta: dict):
        self.meta = dict(meta)
        self.records: list[dict] = []
        self.issues: list[dict] = []
        self.done = False
        self._lock = threading.Lock()

    def add_record(self, record: dict) -> None:
        """Append one TR record for the page (its ``prediction`` vector left out)."""
        slim = {k: v for k, v in record.items() if k != "prediction"}
        with self._lock:
            self.records.append(slim)

    def add_issue(self, issue: dict) -> None:
        """Append a warning the page shows (a late or missing volume, a dropped TR)."""
        with self._lock:
            self.issues.append(dict(issue))

    def finish(self) -> None:
        """Mark the session done (the page stops polling)."""
        with self._lock:
            self.done = True

    def snapshot(self, since: int = 0) -> dict:
        """What the page polls: the meta, the records from index ``since`` on, the last 200 issues."""
        with self._lock:
            return {"meta": self.meta, "records": self.records[max(0, since) :], "n": len(self.records),
                    "issues": self.issues[-200:], "done": self.done}  # fmt: skip


class _AudioCache:
    def __init__(self, library, size: int = 16):
        self.library = library
        self.size = size
        self._items: OrderedDict[int, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, item: int) -> bytes:
        with self._lock:
            if item in self._items:
                self._items.move_to_end(item)
                return self._items[item]
        import soundfile as sf

        from brain2music.stimuli import read_audio

        path = str(self.library.metadata["path"].iloc[item])
        audio, sr = read_audio(path, sr=AUDIO_SR, duration=AUDIO_SECONDS)
        buf = io.BytesIO()
        sf.write(buf, audio, sr, format="WAV", subtype="PCM_16")
        data = buf.getvalue()
        with self._lock:
            self._items[item] = data
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return data


def _page() -> bytes:
    return (files("brain2music") / "resources" / "live" / "page.html").read_bytes()


class LiveServer:
    """Serve ``state`` (and the audio of ``library``) on ``http://127.0.0.1:port`` in a daemon thread.

    ``port=0`` picks a free port; :attr:`url` says which.
    """

    def __init__(self, state: LiveState, library=None, *, port: int = 8765):
        if not 0 <= int(port) <= 65535:
            raise ConfigError(f"--port must be in 0..65535; got {port}")
        self.state = state
        self.library = library
        self.audio = _AudioCache(library) if library is not None else None
        page = _page()
        server_self = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):  # the live log carries what matters
                pass

            def _send(self, code: int, body: bytes, ctype: str, extra: dict | None = None):
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def do_HEAD(self):
                self.do_GET()

            def do_GET(self):
                url = urlparse(self.path)
                try:
                    if url.path in ("/", "/index.html"):
                        return self._send(200, page, "text/html; charset=utf-8")
                    if url.path == "/api/state":
                        since = int(parse_qs(url.query).get("since", ["0"])[0])
                        body = to_json(server_self.state.snapshot(since), indent=None).encode()
                        return self._send(200, body, "application/json")
                    m = re.fullmatch(r"/audio/(\d+)\.wav", url.path)
                    if m and server_self.audio is not None:
                        return self._audio(int(m.group(1)))
                    self._send(404, b"not found", "text/plain")
                except (BrokenPipeError, ConnectionResetError):  # the browser went away mid-answer
                    pass

            def _audio(self, item: int):
                lib = server_self.library
                if item >= len(lib):
                    return self._send(404, b"no such track", "text/plain")
                try:
                    data = server_self.audio.get(item)
                except Exception as exc:  # an unreadable track must not take the page down
                    server_self.state.add_issue({"kind": "audio", "file": None, "volume": None,
                                                 "message": f"library track {item}: cannot play ({exc})"})  # fmt: skip
                    return self._send(500, str(exc).encode(), "text/plain")
                rng = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", "") or "")
                if rng and (rng.group(1) or rng.group(2)):
                    start = int(rng.group(1)) if rng.group(1) else max(0, len(data) - int(rng.group(2)))
                    end = int(rng.group(2)) if rng.group(1) and rng.group(2) else len(data) - 1
                    end = min(end, len(data) - 1)
                    extra = {"Content-Range": f"bytes {start}-{end}/{len(data)}", "Accept-Ranges": "bytes"}
                    return self._send(206, data[start : end + 1], "audio/wav", extra)
                self._send(200, data, "audio/wav", {"Accept-Ranges": "bytes"})

        # Loopback only: the page shows a brain scan in progress and must not be reachable from outside.
        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", int(port)), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="brain2music-live-page", daemon=True
        )

    @property
    def url(self) -> str:
        """The page's address on this machine."""
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/"

    def start(self) -> LiveServer:
        """Serve the page from a daemon thread; returns ``self``."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._httpd.shutdown()
        self._httpd.server_close()


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05) -> bool:
    """Poll ``predicate()`` until true or ``timeout`` seconds pass (for tests and scripts)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
