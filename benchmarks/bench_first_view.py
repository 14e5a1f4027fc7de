"""First views after `streamlit run`: seconds until the Dataset page shows its figures and until the Evaluate
page shows its figures and its first errors with their heat maps, in a real browser (Debian chromium +
Playwright), on the shipped model and the default data set. Each view is measured on a fresh server:

- cold: a cache folder holding only the dataset scan (as after a first visit to the Dataset page): no
  predictions, no heat maps, no decoded pixels, no LiteRT conversion of the model (a model never served here);
- cold, model converted: the same plus the model's LiteRT conversion (a model this machine has served before);
- restart: the cache folder after a cold view (predictions and heat maps stored on disk), a new server.

    python benchmarks/bench_first_view.py [--runs 2] [--cache DIR]

--cache: where the scan caches are copied from (default: MASKDET_CACHE or .cache/).
"""

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

from appserver import CHROMIUM, CHROMIUM_FLAGS, AppServer

SCAN_CACHES = ("scan-", "groups-", "keypoints", "pair-verdicts-")  # what reading the dataset leaves behind
CONVERSIONS = ("lite-",)  # the model's LiteRT conversion (maskdet.infer.lite_cache_path)


def first_view(browser, cache: Path, page_name: str) -> tuple[float, float]:
    """(seconds until the server answers, seconds until the page is drawn) on a fresh server."""
    with AppServer(env={"MASKDET_CACHE": str(cache)}) as server:
        context = browser.new_context(viewport={"width": 1600, "height": 1000})
        page = context.new_page()
        page.set_default_timeout(300_000)
        page.goto(f"{server.url}/{page_name}")
        main = page.locator("[data-testid=stMain]")
        if page_name == "evaluate":
            main.locator("[data-testid=stMetric]").filter(has_text="Balanced accuracy").wait_for()
            main.get_by_text("Errors (").first.wait_for()
            gallery = main.locator("[data-testid=stImage] img")
            gallery.first.wait_for()
            page.wait_for_function(
                "() => [...document.querySelectorAll('[data-testid=stMain] img')]"
                ".every(i => i.complete && i.naturalWidth > 0)"
            )
        else:
            main.locator("[data-testid=stMetric]").filter(has_text="Class balance").wait_for()
            main.locator("[data-testid=stVegaLiteChart]").first.wait_for()
        drawn = time.perf_counter() - server.started
        context.close()
        return server.healthy_after, drawn


def main():
    from maskdet import config

    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--cache", type=Path, default=config.CACHE_DIR)
    a = ap.parse_args()
    from playwright.sync_api import sync_playwright

    print(
        f"# {platform.node()} {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}, "
        f"{time.strftime('%Y-%m-%d %H:%M')}, model {config.DEFAULT_MODEL.name}, data {config.DATA_DIR}"
    )
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS)
        for run in range(1, a.runs + 1):
            for converted in (False, True):
                with tempfile.TemporaryDirectory(prefix="maskdet-bench-cache-") as tmp:
                    cache = Path(tmp)
                    for f in a.cache.iterdir():
                        if f.name.startswith(SCAN_CACHES + (CONVERSIONS if converted else ())):
                            shutil.copy(f, cache / f.name)
                    views = [
                        ("Evaluate, cold" + (", model converted" if converted else ""), "evaluate"),
                        ("Evaluate, restart", "evaluate"),
                    ]
                    if not converted:
                        views.insert(0, ("Dataset, fresh server", "dataset"))
                    for name, view in views:
                        healthy, drawn = first_view(browser, cache, view)
                        print(
                            f"run {run}: {name:34s} server healthy {healthy:5.1f} s, page drawn {drawn:5.1f} s "
                            f"(load {os.getloadavg()[0]:.1f})",
                            flush=True,
                        )
        browser.close()


if __name__ == "__main__":
    main()
