"""The load test of the running app (benchmarks/bench_load.py), small and bounded: tabs classify at once
while another watches a live run; every upload is answered, the broken ones with their message, nothing
fails, and the server loads the model once however many sessions use it."""

import json
import os
import subprocess
import sys

import pytest

from appserver import CHROMIUM
from conftest import PROJECT

pytestmark = pytest.mark.slow


def test_parallel_tabs_are_all_answered_and_the_model_is_loaded_once():
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing in CI")
        pytest.skip(f"{CHROMIUM} not installed")
    proc = subprocess.run(
        [
            sys.executable,
            "benchmarks/bench_load.py",
            "--tabs",
            "3",
            "--watchers",
            "1",
            "--uploads",
            "3",
            "--rounds",
            "2",
            "--timeout",
            "150",
            "--json",
        ],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=840,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    for r in report["rounds"]:
        assert r["errors"] == [] and r["handled"] == r["requests"] == 3 * 4, r
        assert r["watch_views"] and min(r["watch_views"]) >= 2, r  # the watcher saw the run move on
    assert report["model_loads"] == 1, report["model_log"]
    assert report["server_alive"]
    # memory settles: the second round of the same work adds little to the first (caches are bounded)
    assert report["rounds"][1]["rss_after_mb"] - report["rounds"][0]["rss_after_mb"] < 150, report
