"""A training run is a folder: runs/<run-id>/ with params.json, status.json, metrics.jsonl,
checkpoint.keras and model.keras. Starting, listing, reading and cancelling runs.

Only one training runs per runs folder: it holds an exclusive lock on runs/.lock for its
whole life. The kernel drops the lock when the process dies, however it dies.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import secrets
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from . import config, files
from .train_params import TrainParams

STATES = ("queued", "running", "done", "failed", "cancelled")
FINAL = ("done", "failed", "cancelled")


class RunError(RuntimeError):
    """A run that cannot be started or found; the message says why, for a user."""


def sha256_of(path: Path) -> str:
    """The SHA-256 of a file's content, read in 1 MB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_json(path: Path, default=None):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return default


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def new_run_id() -> str:
    return datetime.now().strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


# ---------------------------------------------------------------- the lock


def acquire_lock(runs_dir: Path):
    """Take the one-training-per-folder lock, or raise RunError naming the run that holds it."""
    runs_dir = Path(runs_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(runs_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        live = [r for r in list_runs(runs_dir) if r["state"] in ("queued", "running")]
        who = f" (run {live[0]['run_id']})" if live else ""
        raise RunError(
            f"another training is already running in {runs_dir}{who}; wait for it or cancel it first"
        ) from None
    return fd


# ---------------------------------------------------------------- reading


def _alive(pid) -> bool:
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (killed, not yet reaped) is dead for our purposes
        with open(f"/proc/{int(pid)}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def status(run_dir: Path) -> dict:
    """The run's status; a run whose process is gone without saying so reads as failed."""
    run_dir = Path(run_dir)
    st = read_json(run_dir / "status.json", {}) or {}
    st.setdefault("run_id", run_dir.name)
    st.setdefault("state", "failed" if not (run_dir / "params.json").exists() else "queued")
    if st["state"] in ("queued", "running") and not _alive(st.get("pid")):
        grace = time.time() - (run_dir / "status.json").stat().st_mtime if (run_dir / "status.json").exists() else 99
        if st.get("pid") or grace > 30:
            st["state"] = "failed"
            st["error"] = (
                "the training process ended without finishing (killed or crashed); "
                "resume it to continue from its last checkpoint"
            )
            st["interrupted"] = True
            log = _log_tail(run_dir)
            if log and not st.get("pid"):
                st["error"] = f"the training process failed to start: {log}"
    st["cancel_requested"] = (run_dir / "CANCEL").exists()
    st["has_checkpoint"] = (run_dir / "checkpoint.keras").exists()
    st["has_model"] = (run_dir / "model.keras").exists()
    return st


def _log_tail(run_dir: Path, lines: int = 3) -> str:
    try:
        text = (Path(run_dir) / "log.txt").read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " / ".join(text[-lines:])


def params(run_dir: Path) -> dict:
    return read_json(Path(run_dir) / "params.json", {}) or {}


def metrics(run_dir: Path) -> list[dict]:
    """Every complete line of metrics.jsonl (a torn last line, from a kill, is skipped)."""
    out = []
    try:
        with open(Path(run_dir) / "metrics.jsonl") as f:
            for line in f:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue
    except OSError:
        pass
    return out


METRICS = ("loss", "accuracy")


def curve_points(records: list[dict]) -> list[dict]:
    """metrics.jsonl's records as the points of the loss and accuracy curves, {"step", "epoch", "metric",
    "value", "series"}: series "batch" (every batch), "train" and "validation" (every whole epoch; a cancelled
    run's partial epoch has no validation and is left out, as are values not recorded)."""
    points = []
    for r in records:
        if r.get("kind") == "batch":
            series = (("batch", ""),)
        elif r.get("kind") == "epoch" and not r.get("partial"):
            series = (("train", ""), ("validation", "val_"))
        else:
            continue
        for metric in METRICS:
            for name, prefix in series:
                if r.get(prefix + metric) is not None:
                    points.append(
                        {
                            "step": r["step"],
                            "epoch": r["epoch"],
                            "metric": metric,
                            "value": r[prefix + metric],
                            "series": name,
                        }
                    )
    return points


def list_runs(runs_dir: Path = config.RUNS_DIR) -> list[dict]:
    """Status of every run, newest first."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    runs = [
        status(d) | {"path": str(d)}
        for d in runs_dir.iterdir()
        if d.is_dir() and not d.name.startswith(".") and (d / "params.json").exists()
    ]
    return sorted(runs, key=lambda r: r["run_id"], reverse=True)


def active_run(runs_dir: Path = config.RUNS_DIR) -> dict | None:
    """The run now queued or running, if any."""
    return next((r for r in list_runs(runs_dir) if r["state"] in ("queued", "running")), None)


# A run id is a plain name: letters, digits, '.', '_' and '-', not starting with a dot, no '..' (new_run_id()
# gives 20261126-011810-3bf1). Checked wherever an id arrives from a user, so no id points outside runs/.
RUN_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")


def check_run_id(run_id) -> str:
    """The run id if it is a plain name, else RunError (a path separator, '..' or another character)."""
    if not isinstance(run_id, str) or not RUN_ID.fullmatch(run_id) or ".." in run_id:
        raise RunError(
            f"{run_id!r} is not a run id (letters, digits, '.', '_' and '-' only, like 20261126-011810-3bf1)"
        )
    return run_id


def find(run_id: str, runs_dir: Path = config.RUNS_DIR) -> Path:
    path = Path(runs_dir) / check_run_id(run_id)
    if not (path / "params.json").exists():
        raise RunError(f"no run {run_id!r} in {runs_dir}")
    return path


# ---------------------------------------------------------------- acting


def cancel(run_dir: Path) -> None:
    """Ask a run to stop; it finishes its current batch, saves what it learned and says cancelled."""
    run_dir = Path(run_dir)
    check_run_id(run_dir.name)
    if not (run_dir / "params.json").exists():
        raise RunError(f"{run_dir} is not a training run (no params.json)")
    (run_dir / "CANCEL").write_text(now())


def create(data_dir, runs_dir: Path, params: TrainParams) -> Path:
    """A new run's folder under runs_dir with its params.json (the data folder resolved); the caller holds
    the runs folder's lock."""
    run_dir = Path(runs_dir) / new_run_id()
    run_dir.mkdir(parents=True)
    data = str(Path(data_dir).expanduser().resolve())
    files.write_json_atomic(run_dir / "params.json", {"data": data, **params.record()})
    return run_dir


def start(data_dir, runs_dir: Path = config.RUNS_DIR, params: TrainParams | None = None) -> Path:
    """Start a training run in its own process; returns its folder at once.

    The lock is taken here and handed to the child, so of two simultaneous starts exactly
    one begins and the other gets a RunError saying why.
    """
    runs_dir = Path(runs_dir)
    fd = acquire_lock(runs_dir)
    try:
        run_dir = create(data_dir, runs_dir, params or TrainParams())
        files.write_json_atomic(run_dir / "status.json", {"run_id": run_dir.name, "state": "queued", "created": now()})
        args = [sys.executable, "-m", "maskdet", "train", "--run-dir", str(run_dir), "--lock-fd", str(fd)]
        with open(run_dir / "log.txt", "ab") as log:
            subprocess.Popen(
                args,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                pass_fds=(fd,),
                start_new_session=True,
                cwd=str(config.PROJECT_DIR),
            )
        return run_dir
    finally:
        os.close(fd)  # the child holds its own copy of the lock
