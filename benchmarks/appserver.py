"""`streamlit run streamlit_app.py` as a child process on 127.0.0.1, for the browser tests and the
benchmarks: start it on a free port, wait until it answers, read its memory, stop it.

    with AppServer(env={"MASKDET_RUNS": "/tmp/runs"}) as server:
        page.goto(server.url + "/classify")
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
# Debian's chromium, headless, with nothing that calls out to the network (this machine has none)
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AppServer:
    """The app's server process; `log` holds what it printed (maskdet logs each model load there)."""

    def __init__(
        self,
        env: dict | None = None,
        log: Path | None = None,
        start_timeout: float = 120,
        address: str | None = "127.0.0.1",
    ):
        self.env = {**os.environ, **(env or {})}
        self.address = address  # --server.address; None: as the README starts it (.streamlit/config.toml's)
        self._own_log = log is None  # a log of our own making is removed on exit
        self.log = Path(log or tempfile.mkstemp(prefix="streamlit-", suffix=".log")[1])
        self.start_timeout = start_timeout
        self.proc = None

    def start(self) -> AppServer:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.started = time.perf_counter()
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "streamlit",
                    "run",
                    "streamlit_app.py",
                    "--server.headless",
                    "true",
                    *(["--server.address", self.address] if self.address else []),
                    "--server.port",
                    str(self.port),
                ],
                cwd=PROJECT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        while not self.healthy():
            if self.proc.poll() is not None or time.perf_counter() - self.started > self.start_timeout:
                self.stop()
                raise RuntimeError(f"streamlit did not start:\n{self.log_text()[-3000:]}")
            time.sleep(0.2)
        self.healthy_after = time.perf_counter() - self.started
        return self

    def healthy(self) -> bool:
        try:
            return urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2).read() == b"ok"
        except OSError:
            return False

    def rss_mb(self) -> float:
        """The server's resident memory now, in MB (from /proc)."""
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def model_loads(self) -> int:
        """How many times this server has loaded a model file (the app logs each load)."""
        return self.log_text().count("maskdet: model loaded")

    def kill(self) -> None:
        """SIGKILL, as a crash or an out-of-memory kill would end it."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> AppServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
        if self._own_log:
            self.log.unlink(missing_ok=True)
