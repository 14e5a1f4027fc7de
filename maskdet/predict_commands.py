"""What the classifying commands of `python -m maskdet` do: evaluate, evaluate-scenes, predict and
predict-video, one function per command, given the parsed arguments (maskdet.__main__ parses them)."""

from __future__ import annotations

import json
import sys

from . import config


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
    from . import infer, photos

    clf = infer.Classifier.load(a.model, a.threshold)
    failed = 0
    for path in a.images:
        r = photos.classify_photo(clf, path, mode="crop" if a.crop else "auto")
        failed += r["error"] is not None
        # the photo's verdict (photos.verdict): one face labelled without a mask makes it "without_mask";
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
    """`python -m maskdet predict-video`: analyse one file, print its faces and people, write the annotated
    mp4 and the CSV. With --json, one JSON line per analysed frame ({"frame", "t", "faces"}) and a last
    line {"summary": {...}}; else a line per person and the summary. Progress with time left goes to
    stderr. Returns the exit status: 0, or 2 for a file that is not a usable video (one sentence)."""
    import contextlib

    from . import files, infer, video, video_analysis
    from .video import fmt_duration

    path, every, out, csv, as_json = a.video, a.every, a.out, a.csv, a.json
    stdout, stderr = sys.stdout, sys.stderr
    try:
        info = video.probe(path)  # a bad file is told before the model loads
    except video.VideoError as exc:
        print(f"error: {exc}", file=stderr)
        return 2
    print(
        f"{path}: {info.describe()}; analysing " + ("every frame" if every == 1 else f"one frame in {every}"),
        file=stderr,
        flush=True,
    )
    classifier = infer.Classifier.load(a.model, a.threshold, lite="convert")

    shown = [0.0]

    def progress(done, total, elapsed):  # twice a second at most: a terminal is slow to scroll
        if elapsed - shown[0] < 0.5 and done < total:
            return
        shown[0] = elapsed
        left = video_analysis.time_left(done, total, elapsed)
        print(
            f"\rframes {done}/{total} ({done / max(total, 1):.0%})"
            + (f", {fmt_duration(left)} left   " if left is not None else "   "),
            end="",
            file=stderr,
            flush=True,
        )

    try:
        with contextlib.ExitStack() as stack:  # the CSV is written aside: a failed analysis leaves none
            csv_file = None
            if csv:
                csv_file = stack.enter_context(open(stack.enter_context(files.written_aside(csv)), "w"))
                csv_file.write(video_analysis.detections_csv([]))

            def on_frame(record):
                if as_json:
                    print(json.dumps(record), file=stdout, flush=True)
                if csv_file:
                    csv_file.write(video_analysis.detections_csv([record]).split("\n", 1)[1])

            summary = video_analysis.analyse(
                path, classifier, every=every, out=out, finder=a.finder, progress=progress, on_frame=on_frame
            )
    except video.VideoError as exc:
        print(f"\nerror: {exc}", file=stderr)
        return 2
    print(file=stderr)
    if summary["broken"]:
        print(f"warning: {summary['broken']}; analysed up to there", file=stderr)
    if out:
        summary["out"] = str(out)
    if as_json:
        print(json.dumps({"summary": summary}), file=stdout, flush=True)
        return 0
    for p in summary["people"]:
        print(
            f"person #{p['track']}: {p['label']} ({p['frames_with_mask']} of {p['frames']} frames with mask, "
            f"mean p_mask {p['p_mask']:.3f}), seen {fmt_duration(p['first_s'])}-{fmt_duration(p['last_s'])}",
            file=stdout,
        )
    print(f"{path}: {summary['sentence']}", file=stdout)
    print(
        f"{summary['frames_analysed']} of {summary['frames_decoded']} frames analysed at "
        f"{summary['work_size'][0]}x{summary['work_size'][1]} in {summary['elapsed_s']:.1f} s "
        f"({summary['analysed_fps']} analysed frames/s, {summary['speed']}x real time)"
        + (f"; annotated video: {out}" if out else "")
        + (f"; detections: {csv}" if csv else ""),
        file=stdout,
    )
    return 0


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
