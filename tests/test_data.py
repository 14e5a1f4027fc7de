"""Dataset folders -> tables: class folders, formats, bad files, the leak-free split, data health."""

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from conftest import cli, make_dataset, synthetic_face
from maskdet import config, dataset, file_readers, groups, health, images, kaggle, pipeline


def test_class_folders_are_found_by_alias_and_case(tmp_path):
    make_dataset(tmp_path, per_class=3, class_dirs=("WithMask", "No_Mask"))
    table = dataset.list_files(tmp_path)
    assert sorted(table["label"].unique()) == ["with_mask", "without_mask"]
    assert len(table) == 6


def test_kaggle_nested_layout_and_train_validation_test_folders_are_found(tmp_path):
    make_dataset(tmp_path / "FaceMask-Dataset-covid-19" / "FaceMask-Dataset-covid-19", per_class=2)
    for part in ("Train", "Validation", "Test"):
        make_dataset(tmp_path / "other" / part, per_class=2)
    assert len(dataset.list_files(tmp_path / "FaceMask-Dataset-covid-19")) == 4
    table = dataset.list_files(tmp_path / "other")
    assert len(table) == 12 and table["path"].str.contains("Validation").sum() == 4


def test_wrong_folders_get_a_clear_message(tmp_path):
    with pytest.raises(dataset.DatasetError, match="does not exist"):
        dataset.scan(tmp_path / "nope")
    with pytest.raises(dataset.DatasetError, match="no class folders"):
        dataset.scan(tmp_path)
    (tmp_path / "cats").mkdir()
    with pytest.raises(dataset.DatasetError, match="sub-folders seen: cats"):
        dataset.scan(tmp_path)
    (tmp_path / "with_mask").mkdir()
    with pytest.raises(dataset.DatasetError, match="no image files"):
        dataset.scan(tmp_path)


def test_every_common_format_and_mode_is_read_as_rgb(tmp_path):
    face = synthetic_face(True, 1)
    d = tmp_path / "with_mask"
    d.mkdir()
    face.convert("RGBA").save(d / "a.png")
    face.convert("P").save(d / "b.gif")
    face.convert("L").save(d / "c.bmp")
    face.save(d / "d.webp")
    face.convert("CMYK").save(d / "e.jpg")
    face.save(d / "f.tiff")
    (tmp_path / "without_mask").mkdir()
    synthetic_face(False, 2).save(tmp_path / "without_mask" / "g.jpeg")
    table = dataset.scan(tmp_path, use_cache=False)
    assert table["error"].isna().all(), table["error"].tolist()
    assert set(table["format"]) >= {"PNG", "GIF", "BMP", "WEBP", "JPEG", "TIFF"}
    for p in table["path"]:
        assert images.open_image(p).mode == "RGB"


def test_exif_orientation_is_applied(tmp_path):
    img = Image.new("RGB", (60, 30), "red")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 on display
    img.save(tmp_path / "r.jpg", exif=exif)
    assert images.open_image(tmp_path / "r.jpg").size == (30, 60)


def scraped_files(folder: Path, seed: int = 0) -> dict[str, str | None]:
    """Real images under the names scrapers leave them, and a non-image with an image suffix, written into
    folder: file name -> the format a scan must find in it (None: not an image, to be skipped)."""
    folder.mkdir(parents=True, exist_ok=True)
    formats = {
        'quote.png"': "PNG",
        "size.jpg_1088Wx1632H": "JPEG",
        "no_suffix": "JPEG",
        "UPPER.JPG": "JPEG",
        "Mixed.Png": "PNG",
        "really_png.jpg": "PNG",
        "really_webp.jpg": "WEBP",
        "photo.jpeg?w=640": "JPEG",
    }
    for i, (name, fmt) in enumerate(formats.items()):
        synthetic_face(True, seed + i).save(folder / name, format=fmt)
    (folder / "forbidden.jpg").write_text("<html><body>403 Forbidden</body></html>\n" * 2000)  # a scraper's error page
    return {**formats, "forbidden.jpg": None}


def files_on_disk(root: Path) -> list[str]:
    return sorted(str(Path(d) / f) for d, _, names in os.walk(root) for f in names)


def test_images_are_told_by_their_content_not_their_names(tiny_dataset):
    expected = scraped_files(tiny_dataset / "with_mask")
    table = dataset.scan(tiny_dataset, use_cache=False).set_index("path")
    assert sorted(table.index) == files_on_disk(tiny_dataset)  # every file has its row
    for name, fmt in expected.items():
        row = table.loc[str(tiny_dataset / "with_mask" / name)]
        if fmt:  # every image is read, whatever its name
            assert pd.isna(row["error"]) and row["format"] == fmt and row["split"] in ("train", "val"), name
            assert row["width"] == 64 and isinstance(row["hash"], str)
        else:  # the non-image is listed with its reason, and not read (no content hash)
            assert row["skipped"] == "not an image" and "not an image" in row["error"]
            assert pd.isna(row["hash"]) and pd.isna(row["split"])
    report = health.health(table.reset_index())
    assert report["files"] == 80 + 9 and report["readable"] == 80 + 8
    assert report["skipped"] == [
        {
            "path": str(tiny_dataset / "with_mask" / "forbidden.jpg"),
            "label": "with_mask",
            "reason": "not an image",
            "error": table.loc[str(tiny_dataset / "with_mask" / "forbidden.jpg"), "error"],
        }
    ]
    assert report["skipped_by_reason"] == {"not an image": 1}
    assert any(w.startswith("1 of the 89 files are skipped (1 not an image)") for w in report["warnings"])


def test_every_file_not_used_is_listed_with_its_reason_never_fatal(tiny_dataset):
    folder = tiny_dataset / "without_mask"
    good = (folder / "face_000.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (tiny_dataset / "with_mask" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (folder / "empty.png").write_bytes(b"")
    Image.new("RGB", (1, 1)).save(folder / "dot.png")
    (folder / "notes.txt").write_text("not an image")
    (folder / "README").write_text("no suffix and no image either")
    (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1" + bytes(100))
    synthetic_face(False, 5).save(folder / "._face_000.jpg")  # a hidden file is skipped even when it is an image
    os.symlink(folder / "gone.jpg", folder / "dangling.jpg")
    reasons = {
        "truncated.jpg": "unreadable",
        "broken.jpg": "unreadable",
        "empty.png": "empty file",
        "dot.png": "too small",
        "notes.txt": "not an image",
        "README": "not an image",
        ".DS_Store": "hidden file",
        "._face_000.jpg": "hidden file",
        "dangling.jpg": "unreadable",
    }
    table = dataset.scan(tiny_dataset, use_cache=False)
    assert len(table) == len(files_on_disk(tiny_dataset)) == 89  # the dangling link included
    bad = table[table["error"].notna()]
    assert dict(zip(bad["path"].map(lambda p: Path(p).name), bad["skipped"])) == reasons
    assert bad["split"].isna().all() and bad["group"].isna().all()
    assert table.loc[table["skipped"] == "hidden file", "hash"].isna().all()  # hidden files are not read
    assert len(dataset.usable(table)) == 80
    report = health.health(table)
    assert report["files"] == 89 and report["readable"] == 80 and len(report["skipped"]) == 9
    assert report["skipped_by_reason"] == {
        "unreadable": 3,
        "not an image": 2,
        "hidden file": 2,
        "empty file": 1,
        "too small": 1,
    }
    assert {f["reason"] for f in report["skipped"]} == set(reasons.values())
    # hidden files are listed but not warned about: every Mac-made folder has them
    assert (
        "7 of the 89 files are skipped (3 unreadable, 2 not an image, 1 empty file, 1 too small); each is "
        "listed with its reason."
    ) in report["warnings"]
    assert dataset.file_counts(table) == {"files": 89, "readable": 80, "skipped": report["skipped_by_reason"]}
    again = dataset.scan(tiny_dataset)  # through the per-file cache, twice: the same reasons
    again = dataset.scan(tiny_dataset)
    pd.testing.assert_series_equal(again["skipped"], table["skipped"])


def _same_rows(a: list[dict], b: list[dict]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.keys() == y.keys()
        for k in x:
            if k in ("keypoints", "signature") and x[k] is not None:
                parts = zip(x[k], y[k]) if k == "keypoints" else [(x[k], y[k])]
                assert all(np.array_equal(u, v) for u, v in parts), k
            else:
                assert x[k] == y[k] or (pd.isna(x[k]) and pd.isna(y[k])), (k, x[k], y[k])


def test_many_files_are_read_by_worker_processes_giving_what_threads_give(tiny_dataset, tmp_path, monkeypatch):
    """From READ_PROCESSES_FROM files on, worker processes (python -m maskdet.file_readers) read the files:
    the rows threads give, broken files included, in order, with progress; workers that die or cannot start
    leave their share to threads."""
    folder = tiny_dataset / "without_mask"
    (folder / "truncated.jpg").write_bytes((folder / "face_000.jpg").read_bytes()[:300])
    (folder / "notes.txt").write_text("not an image")
    paths = dataset.list_files(tiny_dataset)["path"].tolist()
    threads = file_readers.read_files(paths, dataset._scan_file)  # few files: threads
    assert sum(r["error"] is not None for r in threads) == 2
    started = []
    popen = file_readers.subprocess.Popen
    monkeypatch.setattr(file_readers.subprocess, "Popen", lambda *a, **k: started.append(a) or popen(*a, **k))
    monkeypatch.setattr(config, "READ_PROCESSES_FROM", 10)
    monkeypatch.setattr(config, "READ_PROCESSES", 2)
    seen = []
    _same_rows(threads, file_readers.read_files(paths, dataset._scan_file, lambda d, t: seen.append((d, t))))
    assert len(started) == 2 and seen[-1] == (len(paths), len(paths)) and seen == sorted(seen)
    monkeypatch.setattr(file_readers, "WORKER", "maskdet.no_such_module")  # workers that end at once
    _same_rows(threads, file_readers.read_files(paths, dataset._scan_file))
    monkeypatch.setattr(file_readers.sys, "executable", str(tmp_path / "no-python"))  # cannot start
    _same_rows(threads, file_readers.read_files(paths, dataset._scan_file))
    assert len(started) == 5  # 2, 2, then the one that failed to start


def test_files_that_are_not_images_change_nothing_else(tiny_dataset):
    """Same images, same table rows, hashes, groups and split (so the pixel and group caches hold)."""
    cols = ["path", "label", "hash", "format", "width", "group", "group_size", "split"]
    before = dataset.usable(dataset.scan(tiny_dataset, use_cache=False))[cols]
    for folder in ("with_mask", "without_mask"):
        (tiny_dataset / folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
        (tiny_dataset / folder / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0" + bytes(60))
        (tiny_dataset / folder / "urls.txt").write_text("https://example.org/a.jpg\n")
    after = dataset.scan(tiny_dataset, use_cache=False)
    assert len(after) == 86
    pd.testing.assert_frame_equal(dataset.usable(after)[cols], before, check_dtype=False)  # NaN widths make floats


def test_scan_command_reads_every_image_and_lists_every_skipped_file(tmp_path):
    root = make_dataset(tmp_path / "web", per_class=3)
    expected = scraped_files(root / "with_mask")
    (root / "without_mask" / "empty.jpg").write_bytes(b"")
    (root / "without_mask" / ".hidden.jpg").write_bytes(b"")
    proc = cli("scan", "--data", root, check=True)
    out = proc.stdout.splitlines()
    assert out[0].startswith(f"{root}: 14 readable images of 17 files")
    assert "skipped files: 3 (1 not an image, 1 empty file, 1 hidden file)" in proc.stdout
    skipped = sorted(line for line in out if line.startswith("skipped ["))
    assert skipped[0].startswith("skipped [empty file] without_mask/empty.jpg: ")
    assert skipped[1].startswith("skipped [hidden file] without_mask/.hidden.jpg: ")
    assert skipped[2].startswith("skipped [not an image] with_mask/forbidden.jpg: not an image")
    report = json.loads(cli("scan", "--data", root, "--json", check=True).stdout)
    assert report["files"] == 17 and report["readable"] == 14 == 6 + sum(map(bool, expected.values()))
    assert {Path(f["path"]).name: f["reason"] for f in report["skipped"]} == {
        "forbidden.jpg": "not an image",
        "empty.jpg": "empty file",
        ".hidden.jpg": "hidden file",
    }


def test_split_is_deterministic_and_exact_copies_share_a_split(tiny_dataset):
    for i in range(10):  # copies under other names, even in the other class folder
        shutil.copy(tiny_dataset / "with_mask" / f"face_{i:03d}.jpg", tiny_dataset / "with_mask" / f"copy_{i}.jpg")
    shutil.copy(tiny_dataset / "with_mask" / "face_011.jpg", tiny_dataset / "without_mask" / "mislabelled.jpg")
    a = dataset.scan(tiny_dataset, use_cache=False)
    b = dataset.scan(tiny_dataset)  # through the cache
    b2 = dataset.scan(tiny_dataset)
    pd.testing.assert_series_equal(a["split"], b["split"])
    pd.testing.assert_series_equal(b["split"], b2["split"])
    assert (a.groupby("hash")["split"].nunique() == 1).all()
    report = health.health(a)
    assert report["exact_duplicate_files"] == 11
    assert len(report["duplicates_across_classes"]) == 1


def test_a_folder_named_another_way_is_not_read_again(tiny_dataset, monkeypatch):
    """The app names a folder by its resolved path, the README's commands by a relative one: each finds what
    the other read, so a training run started after a look at the data in the app decodes no image twice."""
    read = []

    def progress(done, total, what):
        read.append(what)

    first = dataset.scan(tiny_dataset, progress=progress)
    assert "reading images" in read
    monkeypatch.chdir(tiny_dataset.parent)
    (tiny_dataset.parent / "linked").symlink_to(tiny_dataset)
    for name in ("tiny", "./tiny/", "linked", f"../{tiny_dataset.parent.name}/tiny"):
        read.clear()
        again = dataset.scan(name, progress=progress)
        assert "reading images" not in read, name
        assert again["split"].tolist() == first["split"].tolist() and len(again) == 80
        assert dataset.fingerprint(again, name) == dataset.fingerprint(first, tiny_dataset)


def test_the_fingerprint_names_the_files_and_their_contents_not_the_folder(tiny_dataset, tmp_path):
    fingerprint = dataset.fingerprint(dataset.scan(tiny_dataset), tiny_dataset)
    copy = shutil.copytree(tiny_dataset, tmp_path / "elsewhere" / "copy")
    assert dataset.fingerprint(dataset.scan(copy), copy) == fingerprint  # the same files in another folder
    (copy / "with_mask" / "face_000.jpg").rename(copy / "with_mask" / "renamed.jpg")
    renamed = dataset.fingerprint(dataset.scan(copy), copy)
    shutil.copy(copy / "without_mask" / "face_001.jpg", copy / "with_mask" / "renamed.jpg")  # new content
    changed = dataset.fingerprint(dataset.scan(copy), copy)
    (copy / "with_mask" / "notes.txt").write_text("not an image")  # not an image: not part of the data
    assert dataset.fingerprint(dataset.scan(copy), copy) == changed
    assert len({fingerprint, renamed, changed}) == 3


def test_val_fraction_sets_the_share_and_only_adds_groups(tiny_dataset):
    small = dataset.scan(tiny_dataset, val_fraction=0.1, use_cache=False)
    large = dataset.scan(tiny_dataset, val_fraction=0.5, use_cache=False)
    assert (small["split"] == "val").sum() < (large["split"] == "val").sum()
    assert (large.loc[small["split"] == "val", "split"] == "val").all()
    with pytest.raises(ValueError):
        dataset.scan(tiny_dataset, val_fraction=1.5)


def test_errors_are_counted_by_photo_family(tiny_dataset):
    from maskdet import evaluate

    original = tiny_dataset / "with_mask" / "face_000.jpg"
    for k in range(3):  # three copies of one photo: one family with the original
        shutil.copy(original, tiny_dataset / "with_mask" / f"copy_{k}.jpg")
    table = dataset.usable(dataset.scan(tiny_dataset, use_cache=False))
    family = table.loc[table["path"].str.endswith("face_000.jpg"), "group"].iloc[0]
    assert (table["group"] == family).sum() == 4
    # every image right except the four copies of that photo, called unmasked
    table["p_mask"] = np.where(table["label"] == "with_mask", 0.9, 0.1)
    table.loc[table["group"] == family, "p_mask"] = 0.2
    assert evaluate.families(table) == {"families": table["group"].nunique(), "families_with_errors": 1}
    assert len(evaluate.errors(table)) == 4
    table.loc[table["path"].str.endswith("face_001.jpg"), "p_mask"] = 0.3  # a second photo wrong
    assert evaluate.families(table)["families_with_errors"] == 2


def test_balanced_sample_halves_the_classes(tiny_dataset):
    table = dataset.scan(tiny_dataset, use_cache=False)
    sample = dataset.balanced_sample(table, 40)
    counts = sample["label"].value_counts()
    assert 10 <= counts["with_mask"] <= 20 and 10 <= counts["without_mask"] <= 20


def test_one_class_only_cannot_be_trained(tmp_path):
    make_dataset(tmp_path, per_class=5, class_dirs=("with_mask",))
    table = dataset.scan(tmp_path, use_cache=False)
    with pytest.raises(dataset.DatasetError, match="no readable images of class without_mask"):
        dataset.check_trainable(table)


def test_model_input_pixels_match_between_training_and_serving(tiny_dataset):
    table = dataset.usable(dataset.scan(tiny_dataset, use_cache=False))
    pixels = pipeline.load_pixels(table.iloc[:5], use_cache=False)
    for path, arr in zip(table["path"].iloc[:5], pixels):
        assert np.array_equal(arr, images.to_array(images.open_image(Path(path).read_bytes())))
    assert pixels.shape == (5, *config.INPUT_SHAPE) and pixels.dtype == np.uint8


def test_augmentation_keeps_shape_and_range_and_changes_images():
    import tensorflow as tf

    x = tf.constant(np.stack([np.asarray(synthetic_face(True, i).resize((100, 100))) for i in range(8)]), tf.float32)
    y = pipeline.augment_batch(x).numpy()
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 255
    assert np.abs(y - x.numpy()).mean() > 5
    for n in (1, 3):  # the last batch of an epoch can be tiny
        assert pipeline.augment_batch(x[:n]).shape == (n, 100, 100, 3)


# ---------------------------------------------------------------- the shared 12k data set


@pytest.mark.shared
def test_facemask_split_keeps_augmented_families_together(facemask_dir):
    table = dataset.scan(facemask_dir)
    assert len(table) == 11616 and table["error"].isna().all() and table["skipped"].isna().all()
    # no group crosses the split, by construction ...
    assert (table.groupby("group")["split"].nunique() == 1).all()
    # ... and the groups found by content hold the Augmented_<id> families, which a random split leaks
    family = table["path"].str.extract(r"(with_mask|without_mask)/(?:train|test|validation)_Augmented_(\d+)_")
    table["family"] = family[0] + family[1]
    fams = table.dropna(subset=["family"]).groupby("family")["split"].nunique()
    crossing = (fams > 1).mean()
    assert len(fams) > 800 and crossing < 0.05, crossing
    val_share = (table["split"] == "val").mean()
    assert 0.15 < val_share < 0.27
    report = health.health(table)
    print(
        f"near-duplicate groups {report['near_duplicate_groups']}, families crossing {crossing:.3f}, "
        f"split {report['split_counts']}"
    )
    assert report["near_duplicate_groups"] > 300


@pytest.mark.shared
@pytest.mark.slow
def test_adding_files_keeps_the_old_files_split(facemask_dir, tmp_path):
    # the dataset as it was before a tenth of its files were added, as links to the real files
    rest = []
    for cls in config.CLASS_NAMES:
        (tmp_path / cls).mkdir()
        files = sorted((facemask_dir / cls).iterdir())
        for f in files[: int(len(files) * 0.9)]:
            os.symlink(f, tmp_path / cls / f.name)
        rest += [(f, tmp_path / cls / f.name) for f in files[int(len(files) * 0.9) :]]
    before = dataset.scan(tmp_path).set_index("path")
    for f, link in rest:
        os.symlink(f, link)
    after = dataset.scan(tmp_path).set_index("path")
    moved = (before["split"] != after.loc[before.index, "split"]).mean()
    pure = groups.split_of_groups(after["split_unit"], config.DEFAULT_VAL_FRACTION)  # the rule without memory
    moved_pure = (before["split"] != pure.loc[before.index]).mean()
    print(f"old files whose split changed after adding 10% more: {moved:.2%} (by the files alone: {moved_pure:.2%})")
    assert moved <= 0.01  # a group moves only when a new file proves it one photo with another group
    assert moved_pure > moved  # the memory is what keeps them


def test_health_warns_that_image_size_gives_the_class_away(facemask_dir):
    report = health.health(dataset.scan(facemask_dir))
    assert report["class_counts"] == {"with_mask": 5707, "without_mask": 5909}
    assert any(w.startswith("image width alone") for w in report["warnings"])
    assert report["files"] == report["readable"] == 11616 and report["skipped"] == []


# ---------------------------------------------------------------- Kaggle


def _no_credentials(monkeypatch, tmp_path):
    monkeypatch.delenv("KAGGLE_USERNAME", raising=False)
    monkeypatch.delenv("KAGGLE_KEY", raising=False)
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "no-kaggle"))
    monkeypatch.setenv("HOME", str(tmp_path))


def test_kaggle_without_credentials_says_so_at_once(monkeypatch, tmp_path):
    _no_credentials(monkeypatch, tmp_path)
    with pytest.raises(dataset.DatasetError, match="Kaggle credentials missing"):
        kaggle.download(tmp_path / "dl")
    assert not (tmp_path / "dl").exists()


def test_kaggle_credentials_come_from_kaggle_json(monkeypatch, tmp_path):
    _no_credentials(monkeypatch, tmp_path)
    (tmp_path / "no-kaggle").mkdir()
    (tmp_path / "no-kaggle" / "kaggle.json").write_text('{"username": "u", "key": "k"}')
    assert kaggle.kaggle_credentials() == ("u", "k")
    (tmp_path / "no-kaggle" / "kaggle.json").write_text("{oops")
    with pytest.raises(dataset.DatasetError, match="not a valid kaggle.json"):
        kaggle.kaggle_credentials()


@pytest.mark.timeout(120)
def test_kaggle_without_network_fails_clearly_and_leaves_nothing(monkeypatch, tmp_path):
    _no_credentials(monkeypatch, tmp_path)
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")  # nothing listens there: no network
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    started = time.time()
    with pytest.raises(dataset.DatasetError, match="could not reach www.kaggle.com") as err:
        kaggle.download(tmp_path / "dl", username="someone", key="0" * 32)
    assert time.time() - started < 20 and "\n" not in str(err.value)
    left = list((tmp_path / "dl").iterdir()) if (tmp_path / "dl").exists() else []
    assert left == []
