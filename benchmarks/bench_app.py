"""App cold start: seconds from `streamlit run streamlit_app.py` to the first classification answered
in a real browser (Debian chromium + Playwright), on the shipped model. Runs it --runs times.

    python benchmarks/bench_app.py [--runs 3] [--image PATH]
"""

import argparse
import os
import platform
import sys
import time
from pathlib import Path

from appserver import CHROMIUM, CHROMIUM_FLAGS, AppServer


def one_cold_start(browser, image: Path) -> tuple[float, float]:
    """(seconds until the server answers /_stcore/health, seconds until the verdict is on screen)."""
    with AppServer() as server:
        context = browser.new_context()
        page = context.new_page()
        page.set_default_timeout(120_000)
        page.goto(f"{server.url}/classify")
        page.locator("[data-testid=stFileUploaderDropzoneInput]").set_input_files(str(image))
        page.locator("[data-testid=stMain] h2").filter(has_text="mask").first.wait_for()
        answered = time.perf_counter() - server.started
        context.close()
        return server.healthy_after, answered


def main():
    from maskdet import config

    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument(
        "--image", type=Path, default=next(iter(sorted((config.DATA_DIR / "with_mask").glob("*.jpg"))), None)
    )
    a = ap.parse_args()
    if a.image is None:
        sys.exit("give --image PATH (a face photo)")
    from playwright.sync_api import sync_playwright

    print(f"# {platform.node()} {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}, model {config.DEFAULT_MODEL}")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS)
        rows = [one_cold_start(browser, a.image) for _ in range(a.runs)]
        browser.close()
    for i, (healthy, answered) in enumerate(rows, 1):
        print(f"cold start {i}: server healthy {healthy:5.1f} s, first classification answered {answered:5.1f} s")
    print(f"median first classification: {sorted(r[1] for r in rows)[len(rows) // 2]:.1f} s (goal <= 15 s)")


if __name__ == "__main__":
    main()
