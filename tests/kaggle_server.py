"""A stand-in for Kaggle's download API on this machine, so that the real download process can be tested
without a network: the `kaggle` library, told KAGGLE_API_ENVIRONMENT=LOCALHOST, asks http://localhost for
the dataset's archive; with HTTP_PROXY pointing at this server, the request comes here. It serves a zip
of a folder, in chunks, optionally pausing half-way until `release()`, and records who asked with what.

    with FakeKaggle(folder, monkeypatch, pause=True) as kaggle_api: ...
"""

from __future__ import annotations

import base64
import io
import json
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

DOWNLOAD_PATH = "/api/v1/datasets.DatasetApiService/DownloadDataset"


def zip_of(folder: Path, inside: str = "") -> bytes:
    """A zip archive of every file under folder, named relative to it (under `inside/` if given)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                z.write(path, str(Path(inside) / path.relative_to(folder)))
    return buf.getvalue()


class FakeKaggle:
    def __init__(self, folder: Path, monkeypatch, pause: bool = False, status: int = 200, chunk: int = 8192):
        self.archive = zip_of(folder)
        self.status, self.chunk = status, chunk
        self.seen: list[dict] = []  # one entry per request: path, the credentials it carried
        self.paused = threading.Event()  # set once half the archive is sent and the server waits
        self._release = threading.Event()
        if not pause:
            self._release.set()
        self._stopping = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                auth = self.headers.get("Authorization") or ""
                user = base64.b64decode(auth.split(" ", 1)[1]).decode() if auth.startswith("Basic ") else None
                fake.seen.append({"path": self.path, "credentials": user})
                if not self.path.endswith(DOWNLOAD_PATH) or fake.status != 200:
                    code = 404 if fake.status == 200 else fake.status
                    body = json.dumps({"code": code, "message": f"fake Kaggle says {code}"}).encode()
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/zip")
                self.send_header("Content-Length", str(len(fake.archive)))
                self.end_headers()
                half = len(fake.archive) // 2
                for start in range(0, len(fake.archive), fake.chunk):
                    if start >= half and not fake._release.is_set():
                        fake.paused.set()
                        while not fake._release.wait(0.1):
                            if fake._stopping.is_set():
                                return
                    try:
                        self.wfile.write(fake.archive[start : start + fake.chunk])
                        self.wfile.flush()
                    except OSError:  # the download process was stopped
                        return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        proxy = f"http://127.0.0.1:{self.server.server_address[1]}"
        monkeypatch.setenv("KAGGLE_API_ENVIRONMENT", "LOCALHOST")  # the kaggle library asks http://localhost ...
        for var in ("HTTP_PROXY", "http_proxy"):  # ... through this "proxy", which answers itself
            monkeypatch.setenv(var, proxy)
        for var in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(var, raising=False)

    def release(self) -> None:
        """Let a paused download finish."""
        self._release.set()

    def __enter__(self) -> FakeKaggle:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._stopping.set()
        self._release.set()
        self.server.shutdown()
        self.server.server_close()


def wait_for(condition, timeout: float = 60, what: str = "condition") -> None:
    started = time.time()
    while not condition():
        if time.time() - started > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)
