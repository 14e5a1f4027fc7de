"""What the data, training and model commands of `python -m maskdet` do: one function per command, given the
parsed arguments; the classifying commands are maskdet/predict_commands.py's, the parser and the error handling
maskdet.__main__'s."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path

from . import backbones, config
from .train_params import TrainParams


def cmd_download(a):
    from . import kaggle

    def progress(done, total, what):
        print(f"\r{kaggle.progress_words(done, total, what)}   ", end="", file=sys.stderr)

    print(f"downloading {config.KAGGLE_DATASET} into {a.dest} (Ctrl-C stops it) ...", file=sys.stderr)
    folder = kaggle.download(a.dest, a.username, a.key, progress=progress)
    print(file=sys.stderr)
    print(folder)


def cmd_scan(a):
    from . import dataset, health, split_memory

    def progress(done, total, what="reading images"):
        print(f"\r{what} {done}/{total}   ", end="", file=sys.stderr)

    if a.forget_split and split_memory.forget(a.data, a.val_fraction):
        print(f"{a.data}: the remembered split is forgotten; splitting by the files alone", file=sys.stderr)
    table = dataset.scan(a.data, val_fraction=a.val_fraction, progress=progress)
    print(file=sys.stderr)
    report = health.health(table)
    root = Path(a.data).expanduser()

    def rel(p):
        return str(Path(p).relative_to(root)) if Path(p).is_relative_to(root) else str(p)

    if a.json:
        good = dataset.usable(table)
        families = good[good["group_size"] > 1].sort_values("path").groupby("group", sort=False)["path"]
        report.update(
            {
                "n_images": report["readable"],
                "groups": sorted(([rel(p) for p in paths] for _, paths in families), key=lambda g: g[0]),
                "split": {rel(p): s for p, s in zip(good["path"], good["split"])},
                "label_conflicts": [
                    {**c, "files": [{**f, "path": rel(f["path"])} for f in c["files"]]}
                    for c in report["label_conflicts"]
                ],
            }
        )
        print(json.dumps(report, default=str))
        return
    print(
        f"{a.data}: {report['readable']} readable images of {report['files']} files; classes {report['class_counts']}"
    )
    print(f"split: {report['split_counts']} (validation: {report['val_groups']} photo families)")
    by_reason = ", ".join(f"{n} {r}" for r, n in report["skipped_by_reason"].items())
    print(
        f"near-duplicate groups (copies of one photo): {report['near_duplicate_groups']} "
        f"({report['images_in_near_duplicate_groups']} images); exact duplicate files: "
        f"{report['exact_duplicate_files']}; skipped files: {len(report['skipped'])}"
        + (f" ({by_reason})" if by_reason else "")
    )
    for c in report["label_conflicts"]:  # copies of one photo under two labels: data errors
        files = ", ".join(f"{rel(f['path'])} [{f['label']}]" for f in c["files"])
        print(f"label conflict ({c['split']}): {files}")
    for f in report["skipped"]:  # every file not used, with its reason
        print(f"skipped [{f['reason']}] {rel(f['path'])}: {f['error']}")
    for w in report["warnings"]:
        print(f"warning: {w}")


def cmd_train(a):
    from . import runs, train

    if a.run_dir:  # the process runs.start() spawns
        status = train.run(a.run_dir, lock_fd=a.lock_fd)
        return 0 if status["state"] != "failed" else 1
    params = TrainParams(**{f.name: getattr(a, f.name) for f in dataclasses.fields(TrainParams)})  # the parser's
    if not a.resume and not Path(a.data).expanduser().is_dir():  # a resumed run reads its own params.json
        raise FileNotFoundError(f"{a.data}: the dataset folder does not exist")
    if a.background:
        if a.resume:
            raise runs.RunError("--resume runs in the foreground; leave out --background")
        run_dir = runs.start(a.data, a.runs_dir, params)
        print(run_dir)
        return 0
    lock = runs.acquire_lock(a.runs_dir)
    if a.resume:
        run_dir = runs.find(a.resume, a.runs_dir)
        st = runs.status(run_dir)
        if st["state"] == "done":
            os.close(lock)
            raise runs.RunError(f"run {a.resume} already finished; start a new run instead")
        if not st["has_checkpoint"]:
            print(f"run {a.resume} has no checkpoint yet; it starts from epoch 1", file=sys.stderr)
    else:
        run_dir = runs.create(a.data, a.runs_dir, params)
    print(run_dir, flush=True)

    def echo(r):
        if r.get("partial"):
            return
        val = f", val_loss {r['val_loss']:.4f}, val_accuracy {r['val_accuracy']:.4f}" if "val_loss" in r else ""
        print(
            f"epoch {r['epoch']}: loss {r['loss']:.4f}, accuracy {r['accuracy']:.4f}{val} ({r['epoch_s']:.0f} s)",
            file=sys.stderr,
            flush=True,
        )

    status = train.run(run_dir, lock_fd=lock, echo=echo)
    if status["state"] == "failed":
        raise RuntimeError(f"training failed: {status.get('error')} (details in {run_dir}/traceback.txt)")
    print(
        f"{status['state']}: validation accuracy {status['val_accuracy']:.4f} "
        f"({status.get('val_images')} images), model in {run_dir / 'model.keras'}",
        file=sys.stderr,
    )
    return 0


def cmd_runs(a):
    from . import runs

    listing = runs.list_runs(a.runs_dir)
    if a.json:
        print(json.dumps(listing, default=str))
        return
    for r in listing:
        acc = f" val_accuracy {r['val_accuracy']:.4f}" if r.get("val_accuracy") is not None else ""
        print(
            f"{r['run_id']}  {r['state']:9s} epoch {r.get('completed_epochs', 0)}/{r.get('epochs', '?')}{acc}"
            + (f"  ({r['error']})" if r.get("error") else "")
        )
    if not listing:
        print(f"no runs in {a.runs_dir}", file=sys.stderr)


def cmd_cancel(a):
    from . import runs

    run_dir = runs.find(a.run_id, a.runs_dir)
    runs.cancel(run_dir)
    print(f"cancel requested for {a.run_id}")


def cmd_promote(a):
    from . import cards, models, runs

    try:
        dest = models.promote(runs.find(a.run_id, a.runs_dir), force=a.force)
    except models.DegenerateModel as exc:
        raise models.PromotionError(f"{exc}; not promoted (`promote {a.run_id} --force` promotes it anyway)") from None
    card = models.read_card(dest)
    if card.get("promoted_despite"):
        print(f"warning: promoted although {card['promoted_despite']}", file=sys.stderr)
    card = models.measure_card(dest, a.scenes, log=lambda msg: print(msg, file=sys.stderr))
    print(dest)
    print(cards.card_summary(card), file=sys.stderr)


def cmd_rollback(a):
    from . import models

    print(models.rollback())


def cmd_convert_weights(a):
    print(backbones.convert_mobilenet_v2(a.pth, a.out))


def cmd_export(a):
    from . import export

    print(export.export(a.model, a.format, a.out))
