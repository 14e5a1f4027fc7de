"""Scene photos, side by side in one run: for each face-finder setting (which finders look) and each rule
for which boxes are reported, the annotated faces found and the false boxes per photo, on all photos and on
each half (even and odd file order); then ms per 640x480 photo for find + classify and for each finder
setting, and faces/s on crowded photos (all crops of a photo classified as one batch, against one at a time).

    python benchmarks/bench_scenes.py [--model models/maskdet.keras] [--data DIR] [--limit N] [--photos N]
"""

import argparse
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from maskdet import config, faces, images, infer, photos, scenes  # noqa: E402

SCENES = config.PROJECT_DIR.parent / "shared" / "datasets" / "face-mask-scenes"


# Finder settings compared: name -> find_faces keywords (every one returns its doubtful boxes too, so the
# rules below are applied to one search per photo).
FINDERS = {
    "MTCNN x2": dict(blaze=False, full_range=False),
    "MTCNN x2 + BlazeFace": dict(tiles=False, full_range=False),
    "MTCNN x2 + BlazeFace + tiles": dict(full_range=False),
    "MTCNN x2 + BlazeFace + tiles + full-range (maskdet)": dict(),
    "MTCNN x1 + BlazeFace + tiles + full-range": dict(mirrored=False),
}


# Which of the boxes a setting reports: name -> rule(Face) -> bool.
def side(face) -> int:
    return min(face.box[2] - face.box[0], face.box[3] - face.box[1])


RULES = {
    "every box": lambda f: True,
    "face score 1 (2 finders agree or 1 sure)": lambda f: f.score >= 1.0,
    f">= {faces.MIN_LABEL_SIDE} px only": lambda f: side(f) >= faces.MIN_LABEL_SIDE,
    f"face score 1 and >= {faces.MIN_LABEL_SIDE} px": lambda f: f.score >= 1.0 and side(f) >= faces.MIN_LABEL_SIDE,
    f"the same, or all 3 finders and >= {faces.SMALLEST_SIDE} px (maskdet)": lambda f: f.confirmed,
}


def median_ms(fn, items, warmup=2):
    for item in items[:warmup]:
        fn(item)
    times = []
    for item in items:
        t = time.perf_counter()
        fn(item)
        times.append(time.perf_counter() - t)
    return 1000 * float(np.median(times))


def finder_table(photos, min_side):
    """found and false boxes per photo for every finder setting and rule, on all photos and on each half."""
    print(
        f"\nFinding faces on {len(photos)} photos of face-mask-scenes (their own size, mostly 400 px wide); "
        f"found: annotated with/without-mask faces >= {min_side} px with a box at IoU >= {scenes.MIN_IOU}; "
        "false: a box on no annotated face (any size or class) at IoU >= 0.3; halves: even and odd file order"
    )
    print(
        f"{'finders':52s} {'which boxes':42s} {'found':>6s} {'false':>6s} | {'even':>13s} | {'odd':>13s} | "
        f"{'ms/photo':>8s}"
    )
    for name, kw in FINDERS.items():
        faces.find_faces(photos[0][1], doubtful=True, **kw)
        found_by_photo, times = [], []
        for _, image in photos:
            t = time.perf_counter()
            found_by_photo.append(faces.find_faces(image, doubtful=True, **kw))
            times.append(time.perf_counter() - t)
        for rule_name, rule in RULES.items():
            cells = []
            for part in (slice(None), slice(0, None, 2), slice(1, None, 2)):
                n = hit = false = 0
                for (scene, _), found in list(zip(photos, found_by_photo))[part]:
                    boxes = [f.box for f in found if rule(f)]
                    truths = [a.box for a in scene.faces]
                    matched = scenes.match(boxes, truths)
                    false += sum(all(scenes.iou(box, t) < scenes.MIN_IOU for t in truths) for box in boxes)
                    for i, truth in enumerate(scene.faces):
                        if truth.short_side >= min_side and truth.label in config.CLASS_NAMES:
                            n, hit = n + 1, hit + (i in matched)
                cells.append((hit / n, false / len(photos[part])))
            (f, b), (fe, be), (fo, bo) = cells
            print(
                f"{name:52s} {rule_name:42s} {f:6.1%} {b:6.2f} | {fe:6.1%} {be:6.2f} | {fo:6.1%} {bo:6.2f} | "
                f"{1000 * np.median(times):8.1f}",
                flush=True,
            )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, default=config.DEFAULT_MODEL)
    ap.add_argument("--data", type=Path, default=SCENES)
    ap.add_argument("--limit", type=int, help="compare the finders on the first N photos only (default all)")
    ap.add_argument("--photos", type=int, default=40, help="photos timed at 640x480")
    ap.add_argument("--min-side", type=int, default=config.MIN_FACE_SIDE)
    a = ap.parse_args()
    import tensorflow as tf

    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, TensorFlow {tf.__version__}, "
        f"load average before: {os.getloadavg()[0]:.1f}"
    )
    all_scenes = scenes.read_scenes(a.data, a.limit)
    pictures = [(s, images.open_image(s.image)) for s in all_scenes]
    finder_table(pictures, a.min_side)

    clf = infer.Classifier.load(a.model, lite="convert")  # as the app serves it, once its warm-up is done
    sized = [image.resize((640, 480)) for _, image in pictures[: a.photos]]
    # every photo goes through each contender in turn, so a busy spell on the machine hits all alike
    contenders = {
        "find + classify (photos.classify_photo, scene mode)": lambda im: photos.classify_photo(clf, im, mode="scene"),
        **{f"find only, {name}": (lambda im, kw=kw: faces.find_faces(im, **kw)) for name, kw in FINDERS.items()},
    }
    times = {name: [] for name in contenders}
    for rep, image in enumerate([sized[0], *sized]):
        for name, run in contenders.items():
            t = time.perf_counter()
            run(image)
            if rep:  # the first photo warms up
                times[name].append(time.perf_counter() - t)
    print(
        f"\nOne 640x480 photo (median over {len(sized)} real scenes stretched to 640x480), model {a.model.name} "
        f"({clf.engine}):"
    )
    for name, t in times.items():
        print(f"  {name}: {1000 * np.median(t):.1f} ms")

    crowded = [image for scene, image in pictures if len(scene.faces) >= 10][:20]
    if crowded:
        n_faces, seconds, per_photo = 0, 0.0, []
        photos.classify_photo(clf, crowded[0], mode="scene")
        for image in crowded:
            t = time.perf_counter()
            r = photos.classify_photo(clf, image, mode="scene")
            seconds += time.perf_counter() - t
            n_faces += len(r["faces"])
            boxes = [f["box"] for f in r["faces"]]
            if boxes:
                per_photo.append(np.stack([images.to_array(c) for c in faces.face_crops(image, boxes)]))
        batched = sum(median_ms(clf.probs, [p] * 5) for p in per_photo) / n_faces
        alone = sum(median_ms(lambda px: [clf.probs(one[None]) for one in px], [p] * 3) for p in per_photo) / n_faces
        print(
            f"\nCrowded photos ({len(crowded)} with 10+ annotated faces, their own size): {n_faces} faces found, "
            f"{n_faces / seconds:.0f} faces/s for find + classify ({1000 * seconds / len(crowded):.0f} ms a photo)"
        )
        print(
            f"  classifying the crops: {batched:.2f} ms a face with each photo's crops as one batch, "
            f"{alone:.2f} ms a face one crop at a time"
        )
    print(f"\nload average after: {os.getloadavg()[0]:.1f} (other work on the machine slows every figure alike)")


if __name__ == "__main__":
    main()
