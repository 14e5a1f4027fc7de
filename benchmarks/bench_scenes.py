"""Scene photos, side by side in one run: how many annotated faces each face finder finds and how fast
(maskdet's finder: MTCNN on the photo and its mirror image plus BlazeFace; the same with MTCNN run by
TensorFlow instead of LiteRT; MTCNN alone, two passes and one; BlazeFace alone; mtcnn as it ships;
OpenCV's Haar cascade when cv2 is importable), then ms per 640x480 photo for find + classify, and faces/s on
crowded photos (all crops of a photo classified as one batch, against one crop at a time).

    python benchmarks/bench_scenes.py [--model models/maskdet.keras] [--data DIR] [--limit N] [--photos N]

OpenCV is not a maskdet dependency; to include Haar: pip install --target /tmp/cv opencv-python-headless<5
and run with PYTHONPATH=/tmp/cv.
"""
import argparse
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from maskdet import config, faces, images, infer, scenes  # noqa: E402

SCENES = config.PROJECT_DIR.parent / "shared" / "datasets" / "face-mask-scenes"


def finders() -> dict:
    """Name -> function(PIL image) -> [(xmin, ymin, xmax, ymax)]."""
    from mtcnn import MTCNN

    shipped = MTCNN()

    def mtcnn_as_shipped(**thresholds):
        return lambda img: [tuple(f["box"][:2]) + (f["box"][0] + f["box"][2], f["box"][1] + f["box"][3])
                            for f in shipped.detect_faces(np.asarray(img), **thresholds)]

    tf_engine = faces._build_detector(lite=False)

    def with_tensorflow(img):  # the same finder with MTCNN's networks run by TensorFlow (before LiteRT)
        served, faces._detector = faces.detector(), tf_engine
        try:
            return [f.box for f in faces.find_faces(img)]
        finally:
            faces._detector = served

    blaze = faces.blaze_detector()
    found = {
        "maskdet: MTCNN x2 + BlazeFace": lambda img: [f.box for f in faces.find_faces(img)],
        "the same, MTCNN run by TensorFlow": with_tensorflow,
        "MTCNN x2 alone (photo + mirror)": lambda img: [f.box for f in faces.find_faces(img, blaze=False)],
        "MTCNN one pass alone": lambda img: [f.box for f in faces.find_faces(img, mirrored=False, blaze=False)],
        "mtcnn as shipped, onet 0.7": mtcnn_as_shipped(threshold_onet=0.7),
        "mtcnn as shipped, defaults": mtcnn_as_shipped(),
    }
    if blaze is not None:
        found["BlazeFace alone (score > 0.5)"] = lambda img: [tuple(b) for b, _ in blaze(img)]
    try:
        import cv2
    except ImportError:
        print("(OpenCV not importable: Haar left out; see the docstring)")
        return found
    haar = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")

    def haar_find(img):
        grey = cv2.cvtColor(np.asarray(img), cv2.COLOR_RGB2GRAY)
        boxes = haar.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5, minSize=(20, 20))
        return [(x, y, x + w, y + h) for x, y, w, h in (boxes if len(boxes) else [])]

    found[f"OpenCV {cv2.__version__} Haar frontal"] = haar_find
    return found


def median_ms(fn, items, warmup=2):
    for item in items[:warmup]:
        fn(item)
    times = []
    for item in items:
        t = time.perf_counter()
        fn(item)
        times.append(time.perf_counter() - t)
    return 1000 * float(np.median(times))


def compare_finders(found_by, photos, min_side):
    print(f"\nFinding faces on {len(photos)} photos of face-mask-scenes (their own size, mostly 400 px wide); "
          f"annotated faces >= {min_side} px, found = a box with IoU >= {scenes.MIN_IOU}")
    print(f"{'finder':36s} {'found':>6s} {'masked':>7s} {'unmasked':>9s} {'incorrect':>10s} {'false/photo':>12s} "
          f"{'ms/photo':>9s}")
    for name, find in found_by.items():
        find(photos[0][1])
        hits = {c: [0, 0] for c in (*config.CLASS_NAMES, scenes.INCORRECT)}
        false, times = 0, []
        for scene, image in photos:
            t = time.perf_counter()
            boxes = find(image)
            times.append(time.perf_counter() - t)
            matched = scenes.match(boxes, [a.box for a in scene.faces])
            false += len(boxes) - len(matched)
            for i, truth in enumerate(scene.faces):
                if truth.short_side >= min_side and truth.label in hits:
                    hits[truth.label][0] += 1
                    hits[truth.label][1] += i in matched
        both = [sum(hits[c][k] for c in config.CLASS_NAMES) for k in (0, 1)]
        share = {c: h[1] / h[0] if h[0] else float("nan") for c, h in hits.items()}
        print(f"{name:36s} {both[1] / both[0]:6.1%} {share['with_mask']:7.1%} {share['without_mask']:9.1%} "
              f"{share[scenes.INCORRECT]:10.1%} {false / len(photos):12.2f} {1000 * np.median(times):9.1f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, default=config.DEFAULT_MODEL)
    ap.add_argument("--data", type=Path, default=SCENES)
    ap.add_argument("--limit", type=int, help="compare the finders on the first N photos only (default all)")
    ap.add_argument("--photos", type=int, default=40, help="photos timed at 640x480")
    ap.add_argument("--min-side", type=int, default=config.MIN_FACE_SIDE)
    a = ap.parse_args()
    import tensorflow as tf

    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, TensorFlow {tf.__version__}, "
          f"load average before: {os.getloadavg()[0]:.1f}")
    found_by = finders()
    all_scenes = scenes.read_scenes(a.data, a.limit)
    photos = [(s, images.open_image(s.image)) for s in all_scenes]
    compare_finders(found_by, photos, a.min_side)

    clf = infer.Classifier.load(a.model, lite="convert")  # as the app serves it, once its warm-up is done
    sized = [image.resize((640, 480)) for _, image in photos[:a.photos]]
    # every photo goes through each contender in turn, so a busy spell on the machine hits all alike
    contenders = {"find + classify (infer.classify_photo, scene mode)":
                  lambda im: infer.classify_photo(clf, im, mode="scene"),
                  **{f"find only, {name}": find for name, find in found_by.items()}}
    times = {name: [] for name in contenders}
    for rep, image in enumerate([sized[0], *sized]):
        for name, run in contenders.items():
            t = time.perf_counter()
            run(image)
            if rep:  # the first photo warms up
                times[name].append(time.perf_counter() - t)
    print(f"\nOne 640x480 photo (median over {len(sized)} real scenes stretched to 640x480), model {a.model.name} "
          f"({clf.engine}):")
    for name, t in times.items():
        print(f"  {name}: {1000 * np.median(t):.1f} ms")

    crowded = [image for scene, image in photos if len(scene.faces) >= 10][:20]
    if crowded:
        n_faces, seconds, per_photo = 0, 0.0, []
        infer.classify_photo(clf, crowded[0], mode="scene")
        for image in crowded:
            t = time.perf_counter()
            r = infer.classify_photo(clf, image, mode="scene")
            seconds += time.perf_counter() - t
            n_faces += len(r["faces"])
            boxes = [f["box"] for f in r["faces"]]
            if boxes:
                per_photo.append(np.stack([images.to_array(c) for c in faces.face_crops(image, boxes)]))
        batched = sum(median_ms(clf.probs, [p] * 5) for p in per_photo) / n_faces
        alone = sum(median_ms(lambda px: [clf.probs(one[None]) for one in px], [p] * 3) for p in per_photo) / n_faces
        print(f"\nCrowded photos ({len(crowded)} with 10+ annotated faces, their own size): {n_faces} faces found, "
              f"{n_faces / seconds:.0f} faces/s for find + classify ({1000 * seconds / len(crowded):.0f} ms a photo)")
        print(f"  classifying the crops: {batched:.2f} ms a face with each photo's crops as one batch, "
              f"{alone:.2f} ms a face one crop at a time")
    print(f"\nload average after: {os.getloadavg()[0]:.1f} (other work on the machine slows every figure alike)")


if __name__ == "__main__":
    main()
