"""Bad input, faults and concurrency: every case gets a clear message, nothing is lost, nothing crashes."""

import io
import json
import os
import signal
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import PROJECT, cli, fake_run, make_dataset, synthetic_face
from maskdet import config, dataset, files, images, infer, model as model_lib, models, runs


def huge_png(width=20000, height=20000) -> bytes:
    """A valid PNG header announcing width x height (a decompression bomb), with one tiny data chunk."""

    def chunk(kind, payload):
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def bad_inputs(tmp_path) -> dict[str, Path]:
    """Every kind of bad or odd input a user can hand us, as files."""
    face = synthetic_face(True, 7, size=96)
    files = {}

    def put(name, payload):
        files[name] = tmp_path / name
        files[name].write_bytes(payload)

    def save(name, img, **kw):
        buf = io.BytesIO()
        img.save(buf, format=kw.pop("format", None) or Image.registered_extensions()[Path(name).suffix], **kw)
        put(name, buf.getvalue())

    put("text.jpg", b"hello, I am not a picture\n" * 10)
    put("doc.pdf", b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n")
    put("random.png", np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    put("empty.jpg", b"")
    good = io.BytesIO()
    face.save(good, format="JPEG")
    put("truncated.jpg", good.getvalue()[: len(good.getvalue()) // 2])
    good_png = io.BytesIO()
    face.save(good_png, format="PNG")
    put("truncated.png", good_png.getvalue()[: len(good_png.getvalue()) // 2])
    save("rgba.png", face.convert("RGBA"))
    save("palette.gif", face.convert("P"))
    save("grey.png", face.convert("L"))
    save("cmyk.jpg", face.convert("CMYK"))
    save("sixteen.png", Image.fromarray(np.asarray(face.convert("L"), np.uint16) * 257))
    exif = Image.Exif()
    exif[0x0112] = 8
    save("rotated.jpg", face.rotate(-90, expand=True), exif=exif)
    put("bomb.png", huge_png())
    frames = [synthetic_face(i % 2 == 0, i, size=96) for i in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    put("animated.gif", buf.getvalue())
    save("tiny.png", Image.new("RGB", (1, 1), "white"))
    return files


EXPECT_ERROR = {
    "text.jpg",
    "doc.pdf",
    "random.png",
    "empty.jpg",
    "truncated.jpg",
    "truncated.png",
    "bomb.png",
    "tiny.png",
}


def test_every_bad_image_gets_a_clear_reason_and_odd_ones_are_read(tmp_path):
    for name, path in bad_inputs(tmp_path).items():
        if name in EXPECT_ERROR:
            with pytest.raises(images.ImageError) as err:
                images.open_image(path)
            msg = str(err.value)
            assert name in msg and len(msg) < 200 and "\n" not in msg, msg
        else:
            img = images.open_image(path)
            assert img.mode == "RGB" and images.to_array(img).shape == config.INPUT_SHAPE, name
    assert images.open_image(tmp_path / "rotated.jpg").size == (96, 96)
    assert "too large" in str(pytest.raises(images.ImageError, images.open_image, tmp_path / "bomb.png").value)


def test_a_batch_with_bad_inputs_still_classifies_the_good_ones(tmp_path):
    from maskdet import infer

    model_lib.make_model("mobilenet_scratch", alpha=0.25).save(tmp_path / "m.keras")
    clf = infer.Classifier.load(tmp_path / "m.keras")
    files = bad_inputs(tmp_path)
    results = clf.classify_crops(list(files.values()))
    for (name, _), r in zip(files.items(), results):
        if name in EXPECT_ERROR:
            assert r["error"] and r["p_mask"] is None, name
        else:
            assert r["error"] is None and 0 <= r["p_mask"] <= 1, (name, r)


@pytest.mark.slow
def test_cli_predict_reports_each_bad_input_on_its_line(tmp_path):
    model_lib.make_model("mobilenet_scratch", alpha=0.25).save(tmp_path / "m.keras")
    files = bad_inputs(tmp_path)
    proc = cli(
        "predict", "--model", tmp_path / "m.keras", "--json", "--crop", *files.values(), tmp_path / "missing.jpg"
    )
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [Path(line["path"]).name for line in lines] == [*files, "missing.jpg"]
    for line in lines:
        bad = Path(line["path"]).name in EXPECT_ERROR | {"missing.jpg"}
        assert (line["error"] is not None) == bad, line
    assert proc.returncode == 1 and "Traceback" not in proc.stderr


def test_odd_dataset_folders_are_read_or_refused_with_a_reason(tmp_path):
    root = make_dataset(tmp_path / "odd set", per_class=6, class_dirs=("With Mask", "no-mask"))
    synthetic_face(True, 99).save(root / "With Mask" / "visage masqué ü.jpg")
    (root / "With Mask" / "readme.txt").write_text("not an image")
    (root / "With Mask" / "broken.png").write_bytes(b"\x89PNG broken")
    os.symlink(root, root / "no-mask" / "loop")  # a symlink loop must not hang the scan
    table = dataset.scan(root, use_cache=False)
    assert len(table) == 15  # every file of the class folders, the non-image too
    bad = table[table["error"].notna()]
    assert dict(zip(bad["path"].map(lambda p: Path(p).name), bad["skipped"])) == {
        "readme.txt": "not an image",
        "broken.png": "not an image",
    }  # "\x89PNG b..." is not PNG's signature
    assert table["path"].str.contains("masqué ü").any()
    with pytest.raises(dataset.DatasetError, match="sub-folders seen: cats, dogs"):
        dataset.scan(make_dataset(tmp_path / "unknown", per_class=1, class_dirs=("cats", "dogs")), use_cache=False)


@pytest.mark.slow
def test_training_refuses_data_it_cannot_train_on(tmp_path):
    one_class = make_dataset(tmp_path / "one", per_class=8, class_dirs=("with_mask",))
    proc = cli("train", "--data", one_class, "--epochs", 1, "--runs-dir", tmp_path / "runs")
    assert proc.returncode == 2 and "no readable images of class without_mask" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_sessions_classifying_at_once_get_the_answers_each_would_get_alone():
    """Threads sharing one Classifier on LiteRT (as the app's sessions share one per model) each get the answers
    a lone caller gets, for one face and for batches of every size: each call is served by an interpreter of
    its own (maskdet/litert.py), resized to its batch, and no call sees another's output buffer."""
    m = model_lib.make_model("mobilenet_scratch", alpha=0.25)
    clf = infer.Classifier(m, lite=infer.to_tflite(m))  # checked against Keras on its way in
    assert clf.engine == "tflite + keras"
    rng = np.random.default_rng(5)
    batches = [rng.integers(0, 256, (n, *config.INPUT_SHAPE)).astype(np.uint8) for n in (1, 3, 40, 1, 7, 33)]
    alone = [clf.probs(b) for b in batches]
    answers, failures = {}, []

    def session(k):
        try:
            order = np.random.default_rng(k).permutation(len(batches))
            answers[k] = [(i, clf.probs(batches[i])) for _ in range(3) for i in order]
        except Exception as exc:  # reported below, with the session it happened in
            failures.append(f"session {k}: {exc!r}")

    threads = [threading.Thread(target=session, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures
    for k in range(6):
        for i, p in answers[k]:
            np.testing.assert_allclose(p, alone[i], atol=1e-6)


def test_status_writes_are_atomic_under_sigkill(tmp_path):
    """A writer killed at random moments leaves the old or the new status, never a torn file."""
    target = tmp_path / "status.json"
    files.write_json_atomic(target, {"n": -1, "pad": "x"})
    writer = (
        "import sys; from maskdet import files; from pathlib import Path\n"
        "i = 0\nwhile True:\n"
        "    files.write_json_atomic(Path(sys.argv[1]), {'n': i, 'pad': 'x' * 200000}); i += 1\n"
    )
    seen = set()
    rng = np.random.default_rng(1)
    for _ in range(15):
        proc = subprocess.Popen([sys.executable, "-c", writer, str(target)])
        time.sleep(0.3 + rng.random() * 0.4)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        value = json.loads(target.read_text())  # never torn
        seen.add(value["n"])
    assert len(seen) > 1  # the writer did write, many times


def test_promotion_and_rollback_killed_at_any_moment_leave_whole_files(tmp_path):
    """A process promoting and rolling back in a loop, killed at random moments: the active model is always
    one of the two models byte for byte (never a mix or a cut), and its card is whole JSON."""
    big_a, big_b = b"A" * 3_000_000, b"B" * 3_000_000  # large enough that a copy takes a while
    run_a = fake_run(tmp_path / "runs", "20260101-000000-aaaa", big_a)
    run_b = fake_run(tmp_path / "runs", "20260101-000000-bbbb", big_b)
    dest, card = tmp_path / "models" / "maskdet.keras", tmp_path / "models" / "maskdet.card.json"
    worker = (
        "import sys; from maskdet import models; from pathlib import Path\n"
        "a, b, dest, card = map(Path, sys.argv[1:])\n"
        "while True:\n"
        "    for run in (b, a):\n"
        "        try:\n            models.promote(run, dest, card)\n"
        "        except models.PromotionError:  # already active: roll back instead\n"
        "            models.rollback(dest, card)\n"
    )
    models.promote(run_a, dest, card)  # an active model from the start, whenever the first kill comes
    rng = np.random.default_rng(2)
    seen = set()
    for _ in range(15):
        proc = subprocess.Popen([sys.executable, "-c", worker, str(run_a), str(run_b), str(dest), str(card)])
        time.sleep(0.4 + rng.random() * 0.5)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        body = dest.read_bytes()
        assert body in (big_a, big_b)  # never torn
        assert json.loads(card.read_text())["source_run"] in (run_a.name, run_b.name)
        seen.add(body[:1])
    assert seen == {b"A", b"B"}  # both models were active at some kill: the worker did its work


@pytest.mark.slow
def test_two_simultaneous_starts_give_exactly_one_run(tmp_path):
    dataset = make_dataset(tmp_path / "faces", per_class=16)
    runs_dir = tmp_path / "runs"
    args = [
        sys.executable,
        "-m",
        "maskdet",
        "train",
        "--data",
        str(dataset),
        "--epochs",
        "50",
        "--batch-size",
        "8",
        "--runs-dir",
        str(runs_dir),
        "--background",
    ]
    procs = [
        subprocess.Popen(args, cwd=PROJECT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    codes = sorted(p.returncode for p in procs)
    try:
        assert codes == [0, 2], outs
        refused = next(err for p, (out, err) in zip(procs, outs) if p.returncode == 2)
        assert "already running" in refused
        assert len(runs.list_runs(runs_dir)) == 1
    finally:
        for r in runs.list_runs(runs_dir):
            runs.cancel(Path(r["path"]))
        deadline = time.time() + 180
        while runs.active_run(runs_dir) and time.time() < deadline:
            time.sleep(0.5)
