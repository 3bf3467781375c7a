"""Open a page in Debian's headless Chromium (Selenium) and report what failed to load."""

from __future__ import annotations

import contextlib
import functools
import http.server
import shutil
import threading
import time
from pathlib import Path

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def browser_available() -> bool:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return False
    return Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()


@contextlib.contextmanager
def serve(folder: Path):
    """Serve ``folder`` on 127.0.0.1 (a random free port) for the duration of the block."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def check_page(url: str, *, timeout: float = 30.0) -> dict:
    """Load ``url`` and wait for every image and audio element; return what loaded and what failed."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    opts.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    try:
        driver.set_page_load_timeout(timeout)
        driver.get(url)
        script = """
            const imgs = [...document.images].map(i => ({src: i.getAttribute('src'), ok: i.complete && i.naturalWidth > 0}));
            const audio = [...document.querySelectorAll('audio')].map(a => ({src: a.getAttribute('src'),
                ok: a.readyState >= 1 && !a.error, error: a.error ? a.error.code : null, duration: a.duration}));
            return {imgs, audio};
        """
        deadline = time.time() + timeout
        while True:
            state = driver.execute_script(script)
            pending = [a for a in state["audio"] if not a["ok"] and a["error"] is None]
            if not pending or time.time() > deadline:
                break
            time.sleep(0.3)
        logs = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
        return {"images": state["imgs"], "audio": state["audio"], "severe_logs": logs, "title": driver.title}
    finally:
        driver.quit()
