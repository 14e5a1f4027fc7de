"""Load test of the running app: several browser tabs classify photos at once while others watch a live
training run, against one `streamlit run` server on 127.0.0.1. Bounded in tabs, uploads and time.

Prints requests handled, errors, upload-to-answer latency, the server's memory (after warm-up, after
each round, peak) and how many times the server loaded the model (it should be once per process).

    python benchmarks/bench_load.py [--tabs 4] [--watchers 2] [--uploads 5] [--rounds 2] [--json]

Photos: face-mask-scenes photos and facemask-12k crops when ../shared/datasets is there, else drawn
faces; each tab also uploads one broken file, which must get its message while the others get answers.
With --train (the default) a small training run is started first and the watching tabs follow it on the
Train page; it is cancelled at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from appserver import CHROMIUM, CHROMIUM_FLAGS, PROJECT, AppServer

SHARED = PROJECT.parent / "shared" / "datasets"
IDLE = "[data-testid=stApp][data-test-script-state=notRunning]"


def photo_pool(folder: Path, n: int) -> list[Path]:
    """n photos: real scene photos and face crops when the shared data is there, else drawn faces."""
    from PIL import Image, ImageDraw

    scenes = sorted((SHARED / "face-mask-scenes" / "images").glob("*.jpg"))[: n // 2]
    crops = sorted((SHARED / "facemask-12k" / "with_mask").glob("*.jpg"))[: n // 4]
    crops += sorted((SHARED / "facemask-12k" / "without_mask").glob("*.jpg"))[: n // 4]
    pool = [p for pair in zip(scenes, crops) for p in pair]  # scene photos and face crops in turn
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        dest = folder / f"photo{i:03d}.jpg"
        if pool:
            Image.open(pool[i % len(pool)]).convert("RGB").save(dest, quality=92)
        else:  # a drawn face: an oval with eyes, a band over the mouth on every other one
            img = Image.new("RGB", (160, 160), (40 + 7 * i % 200, 90, 140))
            d = ImageDraw.Draw(img)
            d.ellipse([30, 15, 130, 150], fill=(220, 180, 150))
            d.ellipse([55, 60, 70, 70], fill="black")
            d.ellipse([90, 60, 105, 70], fill="black")
            d.rectangle([45, 95, 115, 135], fill="white" if i % 2 else (160, 40, 40))
            img.save(dest, quality=92)
        out.append(dest)
    return out


def small_dataset(folder: Path) -> Path:
    """The data the watched run trains on: a facemask-12k sample, or drawn faces."""
    if (SHARED / "facemask-12k").is_dir():
        return SHARED / "facemask-12k"
    for cls in ("with_mask", "without_mask"):
        (folder / cls).mkdir(parents=True, exist_ok=True)
        for p in photo_pool(folder / cls, 20):
            p.rename(folder / cls / f"{cls}_{p.name}")
    return folder


class MemorySampler(threading.Thread):
    """Samples the server's resident memory every 0.25 s; .peak is the highest seen."""

    def __init__(self, server):
        super().__init__(daemon=True)
        self.server, self.peak, self.running = server, 0.0, True

    def run(self):
        while self.running:
            try:
                self.peak = max(self.peak, self.server.rss_mb())
            except (OSError, ValueError):
                pass
            time.sleep(0.25)


async def settle(page):
    await page.wait_for_timeout(300)
    await page.wait_for_selector(IDLE)


async def answered(page, name: str, timeout_ms: float) -> str:
    """Wait until the result for upload `name` is on the page: "ok" (a picture captioned with its name)
    or "refused" (an error naming it)."""
    result = page.locator(
        f"[data-testid=stMain] [data-testid=stImageCaption]:has-text('{name}'), "
        f"[data-testid=stMain] [data-testid=stAlert]:has-text('{name}')"
    ).first
    await result.wait_for(timeout=timeout_ms)
    testid = await result.get_attribute("data-testid")
    return "ok" if testid == "stImageCaption" else "refused"


async def classify_tab(browser, url: str, photos: list[Path], broken: Path, stats: dict, tab: int, timeout_ms):
    """One tab: open Classify, upload the photos one after another (each added to the list), wait for
    each answer; the broken file goes in the middle."""
    context = await browser.new_context(viewport={"width": 1200, "height": 1400})
    page = await context.new_page()
    page.set_default_timeout(timeout_ms)
    try:
        await page.goto(f"{url}/classify")
        await page.wait_for_selector("h1:has-text('Classify')")
        await settle(page)
        uploads = list(photos)
        uploads.insert(len(uploads) // 2, broken)
        for i, photo in enumerate(uploads):
            name = f"tab{tab}-{i}-{photo.name}"
            copy = photo.parent / name
            shutil.copy(photo, copy)
            t = time.perf_counter()
            # one more file for the uploader: the page then shows every answer so far (cached) and the new one
            await page.locator("[data-testid=stFileUploaderDropzoneInput]").set_input_files(str(copy))
            try:
                outcome = await answered(page, name, timeout_ms)
            except Exception as exc:  # a timeout: counted, and the tab goes on
                stats["errors"].append(f"tab {tab} upload {i}: no answer ({type(exc).__name__})")
                continue
            expect = "refused" if photo == broken else "ok"
            if outcome != expect:
                stats["errors"].append(f"tab {tab} upload {i}: {outcome}, expected {expect}")
            else:
                stats["handled"] += 1
                stats["latency"].append(time.perf_counter() - t)
        await settle(page)
        for text in await page.locator("[data-testid=stException]").all_inner_texts():
            stats["errors"].append(f"tab {tab}: exception on the page: {text[:300]}")
    finally:
        await context.close()


async def watch_tab(browser, url: str, stats: dict, stop: asyncio.Event, tab: int, timeout_ms):
    """One tab on the Train page following the live run until told to stop; checks it stays live."""
    context = await browser.new_context(viewport={"width": 1200, "height": 1400})
    page = await context.new_page()
    page.set_default_timeout(timeout_ms)
    try:
        await page.goto(f"{url}/train")
        await page.wait_for_selector("h1:has-text('Train')")
        await page.get_by_text("Current run:").first.wait_for()
        seen = set()
        while not stop.is_set():
            steps = await page.locator("[data-testid=stMain]").inner_text()
            seen.add(hash(steps))
            await asyncio.sleep(1)
        stats["watch_views"].append(len(seen))
        for text in await page.locator("[data-testid=stException]").all_inner_texts():
            stats["errors"].append(f"watcher {tab}: exception on the page: {text[:300]}")
    except Exception as exc:
        stats["errors"].append(f"watcher {tab}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
    finally:
        await context.close()


async def load(server, a, photos, broken, train_run) -> dict:
    from playwright.async_api import async_playwright

    timeout_ms = a.timeout * 1000
    report = {"rounds": []}
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS)
        warm = {"handled": 0, "errors": [], "latency": []}
        t = time.perf_counter()
        await classify_tab(browser, server.url, photos[:1], broken, warm, -1, timeout_ms)
        report["warm_up_s"] = time.perf_counter() - t
        report["rss_after_warm_up_mb"] = server.rss_mb()
        for _ in range(a.rounds):
            stats = {"handled": 0, "errors": [], "latency": [], "watch_views": []}
            stop = asyncio.Event()
            watchers = [
                asyncio.create_task(watch_tab(browser, server.url, stats, stop, w, timeout_ms))
                for w in range(a.watchers if train_run else 0)
            ]
            t = time.perf_counter()
            await asyncio.gather(
                *(
                    classify_tab(
                        browser,
                        server.url,
                        photos[(k * a.uploads) % len(photos) :][: a.uploads],
                        broken,
                        stats,
                        k,
                        timeout_ms,
                    )
                    for k in range(a.tabs)
                )
            )
            stop.set()
            await asyncio.gather(*watchers)
            lat = sorted(stats["latency"])
            report["rounds"].append(
                {
                    "requests": a.tabs * (a.uploads + 1),
                    "handled": stats["handled"],
                    "errors": stats["errors"],
                    "wall_s": time.perf_counter() - t,
                    "latency_median_s": lat[len(lat) // 2] if lat else None,
                    "latency_p95_s": lat[min(len(lat) - 1, int(0.95 * len(lat)))] if lat else None,
                    "watch_views": stats["watch_views"],
                    "rss_after_mb": server.rss_mb(),
                }
            )
        await browser.close()
    return report


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tabs", type=int, default=4, help="tabs classifying at once")
    ap.add_argument("--watchers", type=int, default=2, help="tabs watching the live run at once")
    ap.add_argument("--uploads", type=int, default=5, help="photos each classifying tab uploads, one by one")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=180, help="seconds one answer may take")
    ap.add_argument("--no-train", dest="train", action="store_false", help="no training run to watch")
    ap.add_argument("--json", action="store_true", help="print one JSON report instead of a table")
    a = ap.parse_args()
    if not CHROMIUM.exists():
        sys.exit(f"{CHROMIUM} is missing (apt-get install chromium)")

    tmp = Path(tempfile.mkdtemp(prefix="maskdet-load-"))
    runs_dir = tmp / "runs"
    photos = photo_pool(tmp / "photos", max(a.uploads * a.tabs, 8))
    broken = tmp / "photos" / "broken.jpg"
    broken.write_bytes(photos[0].read_bytes()[:300])  # a truncated JPEG
    data_dir = small_dataset(tmp / "data")
    env = {"MASKDET_RUNS": str(runs_dir), "MASKDET_DATA": str(data_dir), "TF_CPP_MIN_LOG_LEVEL": "3"}
    train_run = None
    started = time.perf_counter()
    server = AppServer(env=env, log=tmp / "streamlit.log")
    try:
        if a.train:  # a small, long run to watch; niced so it takes the cores the server leaves
            proc = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "maskdet",
                    "train",
                    "--data",
                    str(data_dir),
                    "--limit",
                    "200",
                    "--alpha",
                    "0.25",
                    "--epochs",
                    "500",
                    "--batch-size",
                    "16",
                    "--runs-dir",
                    str(runs_dir),
                    "--background",
                ],
                cwd=PROJECT,
                env={**os.environ, **env},
                capture_output=True,
                text=True,
                timeout=120,
            )
            if proc.returncode != 0:
                sys.exit(f"could not start the training run: {proc.stderr.strip()[-500:]}")
            train_run = Path(proc.stdout.strip().splitlines()[0])
        server.start()
        sampler = MemorySampler(server)
        sampler.start()
        report = asyncio.run(
            asyncio.wait_for(
                load(server, a, photos, broken, train_run), timeout=a.timeout * (a.uploads + 2) * a.rounds + 120
            )
        )
        sampler.running = False
        report.update(
            machine=f"{platform.node()} {os.cpu_count()} cores",
            date=time.strftime("%Y-%m-%d %H:%M"),
            tabs=a.tabs,
            watchers=a.watchers if train_run else 0,
            uploads_per_tab=a.uploads + 1,
            server_healthy_after_s=server.healthy_after,
            rss_peak_mb=sampler.peak,
            model_loads=server.model_loads(),
            model_log=[line.split("maskdet: ", 1)[1] for line in server.log_text().splitlines() if "maskdet: " in line],
            server_alive=server.proc.poll() is None and server.healthy(),
            total_s=time.perf_counter() - started,
            training_run=train_run.name if train_run else None,
        )
    finally:
        if train_run is not None:
            from maskdet import runs

            runs.cancel(train_run)
            deadline = time.time() + 60
            while runs.status(train_run)["state"] in ("queued", "running") and time.time() < deadline:
                time.sleep(0.5)
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    if a.json:
        print(json.dumps(report))
        return
    print(
        f"# load test: {report['machine']}, {report['date']}; {a.tabs} tabs classifying ({a.uploads + 1} uploads "
        f"each, one broken) and {report['watchers']} tabs watching a live training run, {a.rounds} rounds"
    )
    print(
        f"server healthy after {report['server_healthy_after_s']:.1f} s; first tab warmed up in "
        f"{report['warm_up_s']:.1f} s; model loads in the server: {report['model_loads']}"
    )
    for line in report["model_log"]:
        print(f"  server log: {line}")
    print(
        f"{'round':>5} {'requests':>8} {'handled':>8} {'errors':>6} {'wall s':>7} {'median s':>8} {'p95 s':>6} "
        f"{'RSS after MB':>12}"
    )
    print(f"{'warm':>5} {'':>8} {'':>8} {'':>6} {'':>7} {'':>8} {'':>6} {report['rss_after_warm_up_mb']:12.0f}")
    for i, r in enumerate(report["rounds"], 1):
        print(
            f"{i:5d} {r['requests']:8d} {r['handled']:8d} {len(r['errors']):6d} {r['wall_s']:7.1f} "
            f"{r['latency_median_s'] or float('nan'):8.2f} {r['latency_p95_s'] or float('nan'):6.2f} "
            f"{r['rss_after_mb']:12.0f}"
        )
        for e in r["errors"]:
            print(f"      error: {e}")
    print(
        f"peak RSS {report['rss_peak_mb']:.0f} MB; growth from round 1 to round {a.rounds}: "
        f"{report['rounds'][-1]['rss_after_mb'] - report['rounds'][0]['rss_after_mb']:+.0f} MB; "
        f"server still answering: {report['server_alive']}"
    )


if __name__ == "__main__":
    main()
