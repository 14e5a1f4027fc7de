"""What each command of `python -m maskdet` does: one function per command, given the parsed arguments;
the parser and the error handling are maskdet.__main__'s."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from . import backbones, config, model as model_lib


def cmd_download(a):
    from . import kaggle

    def progress(done, total, what):
        print(f"\r{kaggle.progress_words(done, total, what)}   ", end="", file=sys.stderr)

    print(f"downloading {config.KAGGLE_DATASET} into {a.dest} (Ctrl-C stops it) ...", file=sys.stderr)
    folder = kaggle.download(a.dest, a.username, a.key, progress=progress)
    print(file=sys.stderr)
    print(folder)


def cmd_scan(a):
    from . import dataset, health

    def progress(done, total, what="reading images"):
        print(f"\r{what} {done}/{total}   ", end="", file=sys.stderr)

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
    params = {
        "backbone": a.backbone,
        "input_size": a.input_size,
        "epochs": a.epochs,
        "head_epochs": a.head_epochs,
        "batch_size": a.batch_size,
        "alpha": a.alpha,
        "learning_rate": a.learning_rate or model_lib.default_learning_rate(a.backbone),
        "fine_tune_learning_rate": a.fine_tune_learning_rate,
        "val_fraction": a.val_fraction,
        "limit": a.limit,
        "augment": a.augment,
        "seed": a.seed,
    }
    if not a.resume and not Path(a.data).expanduser().is_dir():  # a resumed run reads its own params.json
        raise FileNotFoundError(f"{a.data}: the dataset folder does not exist")
    if a.background:
        if a.resume:
            raise runs.RunError("--resume runs in the foreground; leave out --background")
        run_dir = runs.start(a.data, a.runs_dir, **params)
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


def cmd_evaluate(a):
    from . import evaluate, infer

    clf = infer.Classifier.load(a.model, a.threshold)
    _, m = evaluate.evaluate(clf, a.data, a.split, a.val_fraction)
    if a.json:
        print(json.dumps(m))
        return
    cm = m["confusion_matrix"]
    print(
        f"{a.model} on {a.data} ({a.split}, {m['n']} images): accuracy {m['accuracy']:.4f}, "
        f"balanced accuracy {m['balanced_accuracy']:.4f}"
    )
    print(f"confusion matrix (rows true, columns predicted: {', '.join(config.CLASS_NAMES)}): {cm}")
    for cls, pc in m["per_class"].items():
        print(f"  {cls}: precision {pc['precision']:.4f} recall {pc['recall']:.4f} f1 {pc['f1']:.4f}")
    if m.get("families"):
        wrong = m["confusion_matrix"][0][1] + m["confusion_matrix"][1][0]
        print(
            f"{wrong} wrong images from {m['families_with_errors']} of the {m['families']} photo families "
            "(a family: one photo and its near-duplicates, kept in one split)"
        )


def cmd_predict(a):
    from . import infer

    clf = infer.Classifier.load(a.model, a.threshold)
    failed = 0
    for path in a.images:
        r = infer.classify_photo(clf, path, mode="crop" if a.crop else "auto")
        failed += r["error"] is not None
        # the photo's verdict (infer.verdict): one face labelled without a mask makes it "without_mask";
        # uncertain faces never decide; p_mask is the deciding face's (the least masked of its label)
        deciding = [f for f in r["faces"] if f["label"] == r["verdict"]]
        lead = min(deciding, key=lambda f: f["p_mask"], default=None)
        if a.json:
            print(
                json.dumps(
                    {
                        "path": str(path),
                        "label": None if r["error"] else r["verdict"],
                        "p_mask": lead and lead["p_mask"],
                        "counts": r["counts"],
                        "error": r["error"],
                        "mode": r["mode"],
                        "faces": r["faces"],
                    }
                ),
                flush=True,
            )
        elif r["error"]:
            print(f"{path}: error: {r['error']}")
        elif r["mode"] == "crop":
            print(f"{path}: {lead['label']} (p_mask {lead['p_mask']:.3f}; {r['note']})")
        else:
            c = r["counts"]
            tally = ", ".join(f"{n} {label.replace('_', ' ')}" for label, n in c.items() if n)
            faces = "; ".join(
                f"{f['label']} (p_mask {f['p_mask']:.3f}, face score {f['face_score']:.2f}) at {f['box']}"
                for f in r["faces"]
            )
            print(f"{path}: {r['verdict']}: {r['note']}" + (f" ({tally}): {faces}" if faces else ""))
    return 1 if failed else 0


def cmd_predict_video(a):
    from . import video

    return video.predict(
        a.video, a.model, every=a.every, out=a.out, csv=a.csv, as_json=a.json, finder=a.finder, threshold=a.threshold
    )


def cmd_evaluate_scenes(a):
    from . import infer, scenes

    clf = infer.Classifier.load(a.model, a.threshold)
    m = scenes.evaluate_scenes(
        clf,
        a.data,
        min_side=a.min_side,
        limit=a.limit,
        progress=lambda d, t: print(f"\rphotos {d}/{t}", end="", file=sys.stderr),
    )
    print(file=sys.stderr)
    if a.json:
        print(json.dumps(m))
        return 0

    def pc(v):
        return "n/a" if v is None else f"{v:.1%}"

    print(
        f"{a.model} on {a.data}: {m['images']} photos, {m['faces']} annotated faces of at least "
        f"{m['min_side']} px (with_mask + without_mask)"
    )
    print(
        f"found (IoU >= {m['min_iou']}): {pc(m['found'])}; found and labelled right: {pc(m['found_and_right'])} "
        f"(balanced over the two classes: {pc(m['balanced_found_and_right'])}); "
        f"uncertain: {pc(m['uncertain'])}; false boxes per photo: {m['false_boxes_per_image']:.2f}; "
        f"second boxes on one face per photo: {m['duplicates_per_image']:.3f}"
    )
    for cls, c in m["per_class"].items():
        right = f", found and labelled right {pc(c['found_and_right'])}" if "found_and_right" in c else ""
        false = (
            f", false boxes labelled so per photo {c['false_boxes_per_image']:.2f}"
            if "false_boxes_per_image" in c
            else ""
        )
        print(f"  {cls} ({c['faces']} faces): found {pc(c['found'])}{right}{false}; labelled {c['predicted']}")
    for e in m["errors"]:
        print(f"error: {e}")
    return 1 if m["errors"] else 0


def cmd_promote(a):
    from . import models, runs

    try:
        dest = models.promote(runs.find(a.run_id, a.runs_dir), force=a.force)
    except models.DegenerateModel as exc:
        raise models.PromotionError(f"{exc}; not promoted (`promote {a.run_id} --force` promotes it anyway)") from None
    card = models.read_card(dest)
    if card.get("promoted_despite"):
        print(f"warning: promoted although {card['promoted_despite']}", file=sys.stderr)
    card = models.measure_card(dest, a.scenes, log=lambda msg: print(msg, file=sys.stderr))
    print(dest)
    print(models.card_summary(card), file=sys.stderr)


def cmd_rollback(a):
    from . import models

    print(models.rollback())


def cmd_convert_weights(a):
    print(backbones.convert_mobilenet_v2(a.pth, a.out))


def cmd_export(a):
    from . import export

    print(export.export(a.model, a.format, a.out))
