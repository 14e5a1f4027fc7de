"""The per-file work of a scan (maskdet.dataset's _scan_file: decode, hash, health, signature, keypoints) for
many files at once. Threads share one Python and wait for its lock between the OpenCV and Pillow calls (20 s
against 13 s for facemask-12k on 2 cores), so many files are read by worker processes: each a fresh
`python -m maskdet.file_readers` (neither a fork of the caller, threads and all, nor a re-run of the caller's
script, as multiprocessing would do), given its share of the paths on stdin, sending each file's row back on
stdout as soon as it is read. What a worker leaves unread (it could not start, or died) is read by threads here.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from . import config

BATCH = 100  # rows a worker sends at once
WORKER = __name__  # the module a worker runs (python -m)


def read_files(paths: list[str], scan_file, progress=None) -> list[dict]:
    """scan_file(path) of each path, in order; `progress(done, total)` now and then, from the calling thread."""
    if len(paths) >= config.READ_PROCESSES_FROM and config.READ_PROCESSES > 1:
        return _in_workers(paths, scan_file, config.READ_PROCESSES, progress)
    return _in_threads(paths, scan_file, progress)


def _in_threads(paths: list[str], scan_file, progress=None) -> list[dict]:
    rows = []
    with ThreadPoolExecutor(max_workers=config.READ_THREADS) as pool:
        for row in pool.map(scan_file, paths):
            rows.append(row)
            if progress and (len(rows) % 200 == 1 or len(rows) == len(paths)):
                progress(len(rows), len(paths))
    return rows


def _in_workers(paths: list[str], scan_file, n: int, progress=None) -> list[dict]:
    shares = [paths[k::n] for k in range(n)]
    rows: list[list[dict]] = [[] for _ in range(n)]
    path = [str(config.PROJECT_DIR), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    procs = []

    def follow(k):  # a worker's rows, as they come
        try:
            while True:
                rows[k] += pickle.load(procs[k].stdout)
        except Exception:  # EOFError at the end; anything else: a worker gone wrong, its rest is read below
            pass

    try:
        for share in shares:
            command = [sys.executable, "-m", WORKER]
            pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "stderr": subprocess.DEVNULL}
            p = subprocess.Popen(command, env=env, **pipes)
            procs.append(p)
            p.stdin.write(pickle.dumps(share))
            p.stdin.close()
        followers = [threading.Thread(target=follow, args=(k,), daemon=True) for k in range(n)]
        for t in followers:
            t.start()
        while any(t.is_alive() for t in followers):
            time.sleep(0.2)
            if progress:
                progress(sum(map(len, rows)), len(paths))
    except OSError:  # a worker could not be started: what the others did not read is read below
        pass
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
    for k, share in enumerate(shares):  # a worker that did not finish: threads read the rest
        if len(rows[k]) < len(share):
            rows[k] += _in_threads(share[len(rows[k]) :], scan_file)
    out = [None] * len(paths)
    for k in range(n):
        out[k::n] = rows[k]
    if progress:
        progress(len(paths), len(paths))
    return out


def _worker() -> None:
    from . import dataset, photo_match as pm

    pm.prepare()
    paths = pickle.loads(sys.stdin.buffer.read())
    for start in range(0, len(paths), BATCH):
        rows = [dataset._scan_file(path) for path in paths[start : start + BATCH]]
        pickle.dump(rows, sys.stdout.buffer, protocol=pickle.HIGHEST_PROTOCOL)
        sys.stdout.buffer.flush()


if __name__ == "__main__":
    _worker()
