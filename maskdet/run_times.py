"""How long a training run takes: about how long before it starts (from the runs finished here, or the
shipped model's card), and while it runs, how far it is and the time left."""

from __future__ import annotations

import statistics
from pathlib import Path

from . import config, runs


def progress(status: dict, records: list[dict]) -> dict:
    """How far a run is (runs.status, runs.metrics): {"step", "total" (the whole run's steps, 0 until known),
    "left_s" (seconds left at the pace of the batches since the run last (re)started, None until known)}."""
    total = (status.get("epochs") or 0) * (status.get("steps_per_epoch") or 0)
    batches = [r for r in records if r.get("kind") == "batch"]
    step = max(status.get("step") or 0, batches[-1]["step"] if batches else 0)
    segment = batches
    for i in range(len(batches) - 1, 0, -1):  # a resumed run starts its clock again: use the last stretch
        if batches[i]["step"] <= batches[i - 1]["step"]:
            segment = batches[i:]
            break
    left = None
    if len(segment) >= 3 and total:
        pace = (segment[-1]["time"] - segment[0]["time"]) / max(1, segment[-1]["step"] - segment[0]["step"])
        left = max(0.0, (total - step) * pace)
    return {"step": step, "total": total, "left_s": left}


STARTUP_S = 20  # starting the process, importing TensorFlow, building the model (measured here: 15-25 s)


def expected_seconds(
    backbone: str,
    input_size: int,
    epochs: int,
    train_images: int,
    runs_dir: Path = config.RUNS_DIR,
    card: dict | None = None,
    listing: list[dict] | None = None,
) -> tuple[float, str] | None:
    """About how long a run of these settings takes on this machine, and what the guess rests on:
    the finished runs in `runs_dir` with the same backbone (their seconds per image and epoch, the
    median, scaled by the input's pixel count), else the shipped model's card (its training time on
    its machine). None when there is nothing to go on. `listing`: runs.list_runs(runs_dir) when the caller
    has it already."""
    rates = []
    for s in runs.list_runs(runs_dir) if listing is None else listing:
        p = runs.params(Path(s["path"]))
        n, elapsed, done = s.get("train_images"), s.get("elapsed_s"), p.get("epochs")
        if s.get("state") == "done" and p.get("backbone") == backbone and n and elapsed and done:
            rates.append((elapsed - STARTUP_S) / (n * done) / (p.get("input_size") or input_size) ** 2)
    if rates:
        rate, source = statistics.median(rates), f"{len(rates)} finished run{'s' if len(rates) > 1 else ''} here"
    else:
        card = card if card is not None else runs.read_json(Path(config.MODEL_CARD), {}) or {}
        p, t = card.get("parameters") or {}, card.get("training") or {}
        n = (card.get("split") or {}).get("train_images")
        if p.get("backbone") != backbone or not n or not t.get("elapsed_s") or not t.get("epochs"):
            return None
        rate = (t["elapsed_s"] - STARTUP_S) / (n * t["epochs"]) / (p.get("input_size") or input_size) ** 2
        source = f"the shipped model's training ({card.get('machine') or 'its machine'})"
    return STARTUP_S + rate * input_size**2 * train_images * epochs, source


def say_duration(seconds: float) -> str:
    """'about 40 s', 'about 14 min', 'about 1 h 20 min'."""
    if seconds < 90:
        return f"about {max(10, round(seconds, -1)):.0f} s"
    minutes = round(seconds / 60)
    return f"about {minutes} min" if minutes < 90 else f"about {minutes // 60} h {minutes % 60} min"
