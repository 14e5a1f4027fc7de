"""Dataset folders -> one pandas table; the leak-free split; data health; pixels for training.

A dataset is any folder with one sub-folder per class (names matched loosely, see
config.CLASS_ALIASES), possibly nested (Kaggle's download) or split into
Train/Validation/Test folders: every folder whose name is a class alias counts.
"""
from __future__ import annotations

import hashlib
import io
import os
import re
import stat
import warnings
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageOps, UnidentifiedImageError

from . import config, groups
from .groups import split_of_groups  # noqa: F401  (the split lives in groups; cards name data.split_of_groups)

Image.MAX_IMAGE_PIXELS = config.MAX_IMAGE_PIXELS
SCAN_CACHE_VERSION = 4  # 4: keypoints for verified near-duplicate groups (maskdet.groups)
# A property (size, sharpness...) that alone orders this share of cross-class image pairs is a shortcut
# a model can learn instead of masks.
SHORTCUT_SEPARABILITY = 0.75


class ImageError(ValueError):
    """An input that is not a usable image; the message says why, for a user, and `reason` says
    which kind of trouble it is (one of SKIP_REASONS)."""

    def __init__(self, message: str, reason: str = "unreadable"):
        super().__init__(message)
        self.reason = reason


# Why a scan does not use a file of the class folders (the table's `skipped` column).
SKIP_REASONS = ("not an image", "empty file", "unreadable", "too small", "too large", "hidden file")


class DatasetError(ValueError):
    """A folder that cannot be used as a dataset; the message says why, for a user."""


# ---------------------------------------------------------------- images

def open_image(source) -> Image.Image:
    """Any user image (path, bytes, file object or PIL image) -> RGB PIL image, EXIF-rotated.

    Raises ImageError with a one-sentence reason for anything that is not a usable image.
    """
    name = getattr(source, "name", None) or (str(source) if isinstance(source, (str, Path)) else "image")
    try:
        if isinstance(source, Image.Image):
            img = source
        else:
            if isinstance(source, (bytes, bytearray, memoryview)):
                data = bytes(source)
            elif isinstance(source, (str, Path)):
                path = Path(source)
                if not path.exists():
                    raise ImageError(f"{path}: no such file")
                if path.is_dir():
                    raise ImageError(f"{path}: is a folder, not an image")
                data = path.read_bytes()
            else:
                data = source.read()
            if not data:
                raise ImageError(f"{Path(name).name}: the file is empty (0 bytes)", "empty file")
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                img = Image.open(io.BytesIO(data))
                img.load()
        if img.width * img.height > config.MAX_IMAGE_PIXELS:
            raise ImageError(f"{Path(name).name}: {img.width}x{img.height} is too large "
                             f"(limit {config.MAX_IMAGE_PIXELS:,} pixels)", "too large")
        if img.width < 2 or img.height < 2:
            raise ImageError(f"{Path(name).name}: {img.width}x{img.height} is too small to hold a face",
                             "too small")
        img = ImageOps.exif_transpose(img)  # phone photos store rotation in EXIF
        return _to_rgb(img)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"{Path(name).name}: the image is too large to open safely "
                         f"(limit {config.MAX_IMAGE_PIXELS:,} pixels)", "too large") from None
    except UnidentifiedImageError:
        raise ImageError(f"{Path(name).name}: not an image file (or a format Pillow cannot read)",
                         "not an image") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(f"{Path(name).name}: the image is damaged or truncated ({exc})") from None


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16/32-bit greyscale: scale to 8 bits
        arr = np.asarray(img, dtype=np.float64)
        peak = arr.max() or 1.0
        img = Image.fromarray((arr * (255.0 / peak)).astype(np.uint8))
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def to_array(img: Image.Image) -> np.ndarray:
    """RGB PIL image -> the model's uint8 input (IMAGE_SIZE, 3). The one resize used for
    training and serving alike, so the two cannot drift apart."""
    h, w = config.IMAGE_SIZE
    return np.asarray(img.resize((w, h), Image.Resampling.BILINEAR), dtype=np.uint8)


# ---------------------------------------------------------------- folders

def _norm(name: str) -> str:
    return re.sub(r"[\s_\-]+", "", name.lower())


def class_of_folder(name: str) -> str | None:
    """Folder name -> class name, or None when it names no class."""
    key = _norm(name)
    for cls, aliases in config.CLASS_ALIASES.items():
        if key == _norm(cls) or key in aliases:
            return cls
    return None


def find_class_folders(root: str | Path) -> dict[str, list[Path]]:
    """Every folder under root whose name is a class alias, by class (nested layouts too)."""
    root = Path(root).expanduser()
    if not root.exists():
        raise DatasetError(f"{root}: the folder does not exist")
    if not root.is_dir():
        raise DatasetError(f"{root}: is a file, not a folder")
    found: dict[str, list[Path]] = {c: [] for c in config.CLASS_NAMES}
    seen_dirs = []
    for dirpath, dirnames, _ in os.walk(root, followlinks=False):  # no symlink loops
        dirnames.sort()
        depth = len(Path(dirpath).relative_to(root).parts)
        if depth >= 5:
            dirnames[:] = []
            continue
        for d in list(dirnames):
            cls = class_of_folder(d)
            if cls:
                found[cls].append(Path(dirpath) / d)
                dirnames.remove(d)  # a class folder's own sub-folders belong to it
            else:
                seen_dirs.append(d)
    if not any(found.values()):
        names = ", ".join(sorted(set(seen_dirs))[:8]) or "none"
        raise DatasetError(
            f"{root}: no class folders found (sub-folders seen: {names}). Expected one folder per class, "
            f"named like {' / '.join(config.CLASS_NAMES)}.")
    return found


def list_files(root: str | Path) -> pd.DataFrame:
    """Every file in the class folders of a dataset folder, whatever its name: path, label (sorted,
    stable). Which files are images is told by their content when they are scanned, never by their
    names: scrapers leave names like `a.png"`, `b.jpg_1088Wx1632H` or none at all."""
    rows = []
    for cls, dirs in find_class_folders(root).items():
        for d in dirs:
            for dirpath, dirnames, filenames in os.walk(d, followlinks=False):
                dirnames.sort()
                for f in sorted(filenames):
                    rows.append((str(Path(dirpath) / f), cls))
    table = pd.DataFrame(rows, columns=["path", "label"])
    if table.empty:
        raise DatasetError(f"{root}: the class folders are empty (no image files)")
    return table.drop_duplicates("path").reset_index(drop=True)


# ---------------------------------------------------------------- scanning

def _sharpness(img: Image.Image) -> float:
    """Mean absolute Laplacian of the model-size greyscale image: low for upscaled or blurry crops."""
    g = np.asarray(img.convert("L").resize(config.IMAGE_SIZE[::-1], Image.Resampling.BILINEAR), np.float32)
    lap = 4 * g[1:-1, 1:-1] - g[:-2, 1:-1] - g[2:, 1:-1] - g[1:-1, :-2] - g[1:-1, 2:]
    return float(np.abs(lap).mean())


@lru_cache(maxsize=1)
def _signed_formats() -> tuple[str, ...]:
    """The formats Pillow recognises by a signature in a file's first bytes (its plugins with an
    `accept` test). Files are identified among these only: a few formats (TGA, ...) have no signature
    and would claim stray non-image files."""
    Image.init()
    return tuple(f for f in Image.ID if Image.OPEN[f][1] is not None)


def _claimed_format(prefix: bytes) -> str | None:
    """The format whose signature starts `prefix`, if any: a file that claims to be an image."""
    for f in _signed_formats():
        try:
            if Image.OPEN[f][1](prefix):
                return f
        except Exception:  # an accept test on too few bytes
            continue
    return None


def _scan_file(path: str) -> dict:
    """One file of the class folders: identified by its header (Pillow, nothing decoded), and only an
    image is read whole. A file not used says why in `skipped` (one of SKIP_REASONS) and `error`."""
    row = {"width": np.nan, "height": np.nan, "format": None, "mode": None, "sharpness": np.nan,
           "hash": None, "error": None, "signature": None, "skipped": None, "keypoints": None}
    try:
        if Path(path).name.startswith("."):
            raise ImageError("hidden file (its name starts with a dot); not read", "hidden file")
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise ImageError("not a regular file", "unreadable")
        with open(path, "rb") as f:
            try:
                with Image.open(f, formats=_signed_formats()) as raw:  # the header only
                    row["format"], row["mode"] = raw.format, raw.mode
            except UnidentifiedImageError:
                f.seek(0)
                prefix = f.read(16)
                if not prefix:
                    raise ImageError("the file is empty (0 bytes)", "empty file") from None
                if claimed := _claimed_format(prefix):
                    raise ImageError(f"the image is damaged (it starts like {claimed}, but its header "
                                     "cannot be read)", "unreadable") from None
                raise ImageError("not an image file (or a format Pillow cannot read); not read",
                                 "not an image") from None
            except Image.DecompressionBombError:
                raise ImageError(f"the image is too large to open safely "
                                 f"(limit {config.MAX_IMAGE_PIXELS:,} pixels)", "too large") from None
            f.seek(0)
            data = f.read()
        row["hash"] = hashlib.sha1(data).hexdigest()
        img = open_image(data)
        row["width"], row["height"] = img.size
        row["sharpness"] = _sharpness(img)
        row["signature"] = groups.signature(img)
        row["keypoints"] = groups.keypoints(img)
    except ImageError as exc:
        row["error"] = str(exc).replace("image: ", "", 1)
        row["skipped"] = exc.reason
    except FileNotFoundError:
        row["error"], row["skipped"] = "the file is gone (or a link to nothing)", "unreadable"
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        row["error"] = f"unreadable: {exc}"
        row["skipped"] = "unreadable"
    return row


def _cache_file(root: Path) -> Path:
    key = hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:16]
    return config.CACHE_DIR / f"scan-v{SCAN_CACHE_VERSION}-{key}.pkl"


def scan(root: str | Path, val_fraction: float = config.DEFAULT_VAL_FRACTION,
         use_cache: bool = True, progress=None) -> pd.DataFrame:
    """A dataset folder -> one table, a row per file in its class folders (images told by content).

    Columns: path, label, width, height, bytes, format, mode, sharpness, hash, error, skipped,
    group (near-duplicate group: copies of one photo, named by its smallest content hash), group_size,
    split_unit (groups the split keeps together), split ("train"/"val"; None for files not used).
    Files not used (not an image, empty, unreadable, too small or large, hidden) stay in the table
    with `skipped` (the reason, one of SKIP_REASONS) and `error` (what exactly) set; never fatal.
    `progress(done, total, what)` is called while files are read and while look-alike pairs are checked.
    Per-file results are cached by path, size and modification time, so a rescan reads only new or changed
    files; groups (maskdet.groups) are cached by the files' contents.
    """
    root = Path(root).expanduser()
    table = list_files(root)
    stats = [_size_and_time(p) for p in table["path"]]
    table["bytes"] = [s[0] for s in stats]
    table["mtime"] = [s[1] for s in stats]

    cache_path = _cache_file(root)
    cached = {}
    if use_cache and cache_path.exists():
        try:
            old = pd.read_pickle(cache_path)
            cached = {(r.path, r.bytes, r.mtime): r._asdict() for r in old.itertuples(index=False)}
        except Exception:  # a stale or torn cache is only a cache
            cached = {}
    todo = [i for i, r in enumerate(table.itertuples(index=False)) if (r.path, r.bytes, r.mtime) not in cached]
    results: dict[int, dict] = {}
    if todo:
        groups.prepare()  # OpenCV loaded once, here, before the reading threads use it
    with ThreadPoolExecutor(max_workers=min(4, (os.cpu_count() or 1) + 1)) as pool:
        for n, (i, row) in enumerate(zip(todo, pool.map(_scan_file, table["path"].iloc[todo]))):
            results[i] = row
            if progress and (n % 200 == 0 or n == len(todo) - 1):
                progress(n + 1, len(todo), "reading images")
    cols = ["width", "height", "format", "mode", "sharpness", "hash", "error", "skipped", "signature"]
    new_keypoints = {row["hash"]: row["keypoints"] for row in results.values() if row.get("keypoints") is not None}
    records = []
    for i, r in enumerate(table.itertuples(index=False)):
        src = results.get(i) or cached[(r.path, r.bytes, r.mtime)]
        records.append({c: src.get(c) for c in cols})
    table = pd.concat([table, pd.DataFrame(records)], axis=1)
    if use_cache:
        config.CACHE_DIR.mkdir(parents=True, exist_ok=True)
        tmp = cache_path.with_suffix(f".{os.getpid()}.tmp")
        table.to_pickle(tmp)
        os.replace(tmp, cache_path)
    if progress:
        progress(0, 1, "checking look-alike pairs")
    table = _cached_groups(table, root, new_keypoints, use_cache,
                           progress and (lambda d, t: progress(d, t, "checking look-alike pairs")))
    table["split"] = groups.split_of_groups(table["split_unit"], val_fraction)
    table.loc[table["error"].notna(), "split"] = None
    return table.drop(columns=["mtime"])


def _size_and_time(path: str) -> tuple[int, int]:
    """Size and modification time of a file; (0, -1) for one that cannot be stat'ed (a broken link)."""
    try:
        s = os.stat(path)
    except OSError:
        return 0, -1
    return s.st_size, s.st_mtime_ns


def _cached_groups(table: pd.DataFrame, root: Path, new_keypoints: dict, use_cache: bool,
                   progress=None) -> pd.DataFrame:
    """groups.group_images over the readable rows, remembered on disk by the files' paths and contents.
    Keypoints live in a cache of their own (bulky; read only when the groups must be worked out)."""
    ok = table["error"].isna().to_numpy()
    key = hashlib.sha1(groups._PARAMS.encode()
                       + "|".join(table["path"] + ":" + table["hash"].fillna("-")).encode()).hexdigest()[:20]
    path = config.CACHE_DIR / f"groups-{key}.pkl"
    names = units = None
    if use_cache and path.exists():
        try:
            names, units = pd.read_pickle(path)
        except Exception:  # a torn or stale cache is only a cache
            names = None
    if names is None or len(names) != len(table):
        good = table[ok]
        kp_path = _cache_file(root).with_name(_cache_file(root).name.replace("scan-", f"keypoints{groups.VERSION}-"))
        stored = {}
        if use_cache and len(new_keypoints) < good["hash"].nunique():
            try:
                stored = pd.read_pickle(kp_path)
            except Exception:
                stored = {}
        known = {**stored, **new_keypoints}
        path_of = dict(zip(good["hash"], good["path"]))

        def keypoints_of(h):
            if h not in known:  # the cache lost it: read the file again
                known[h] = groups.keypoints(open_image(path_of[h]))
            return known[h]

        names, units = np.full(len(table), None, dtype=object), np.full(len(table), None, dtype=object)
        if len(good):
            names[ok], units[ok] = groups.group_images(
                good["hash"].tolist(), np.stack(good["signature"].to_numpy()), keypoints_of,
                use_cache=use_cache, progress=progress)
        if use_cache:
            config.CACHE_DIR.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            pd.to_pickle((names, units), tmp)
            os.replace(tmp, path)
            if set(known) != set(stored):
                tmp = kp_path.with_suffix(f".{os.getpid()}.tmp")
                pd.to_pickle({h: known[h] for h in path_of if h in known}, tmp)
                os.replace(tmp, kp_path)
    table = table.copy()
    table["group"] = names
    table["split_unit"] = units  # groups linked by weaker evidence: kept on one side of the split too
    table["group_size"] = table.groupby("group")["path"].transform("size")
    table.loc[~ok, "group_size"] = np.nan
    return table


def file_counts(table: pd.DataFrame) -> dict:
    """"N of M": every file of the class folders (`files`), the images used (`readable`) and the
    files not used by reason (`skipped`, most first)."""
    reasons = table.reindex(columns=["skipped"]).loc[table["error"].notna(), "skipped"].fillna("unreadable")
    counts = reasons.value_counts()
    order = sorted(counts.index, key=lambda r: (-counts[r], SKIP_REASONS.index(r) if r in SKIP_REASONS else 99, r))
    return {"files": int(len(table)), "readable": int(table["error"].isna().sum()),
            "skipped": {str(r): int(counts[r]) for r in order}}


def usable(table: pd.DataFrame) -> pd.DataFrame:
    """The rows that can be trained on: readable, labelled."""
    return table[table["error"].isna()].reset_index(drop=True)


def check_trainable(table: pd.DataFrame) -> None:
    """Raise DatasetError saying why a table cannot be trained on, if it cannot."""
    good = usable(table)
    counts = good["label"].value_counts()
    missing = [c for c in config.CLASS_NAMES if counts.get(c, 0) == 0]
    if missing:
        raise DatasetError(f"cannot train: no readable images of class {', '.join(missing)} "
                           f"(found {', '.join(f'{k}: {v}' for k, v in counts.items()) or 'none'})")
    for split in ("train", "val"):
        part = good[good["split"] == split]["label"].value_counts()
        if any(part.get(c, 0) == 0 for c in config.CLASS_NAMES):
            raise DatasetError(f"cannot train: the {split} split lacks a class; add images "
                               f"(each class needs at least a few distinct images)")


def balanced_sample(table: pd.DataFrame, limit: int, seed: int = 0) -> pd.DataFrame:
    """About `limit` rows, half per class, keeping whole near-duplicate groups together."""
    good = usable(table)
    parts = []
    for cls in config.CLASS_NAMES:
        rows = good[good["label"] == cls]
        groups = rows["group"].drop_duplicates().sample(frac=1.0, random_state=seed)
        sizes = rows.groupby("group").size().reindex(groups)
        keep = groups[(sizes.cumsum() <= limit // 2).to_numpy()]
        parts.append(rows[rows["group"].isin(keep)])
    return pd.concat(parts).sort_values("path").reset_index(drop=True)


# ---------------------------------------------------------------- data health

def _auc(a: np.ndarray, b: np.ndarray) -> float:
    """P(value of a random `a` image > that of a random `b` image), ties half."""
    a, b = a[~np.isnan(a)], b[~np.isnan(b)]
    if len(a) == 0 or len(b) == 0:
        return 0.5
    ranks = pd.Series(np.concatenate([a, b])).rank().to_numpy()
    return float((ranks[: len(a)].sum() - len(a) * (len(a) + 1) / 2) / (len(a) * len(b)))


def health(table: pd.DataFrame) -> dict:
    """What could mislead a model trained on this table, as figures and warnings."""
    good = usable(table)
    counts = {c: int((good["label"] == c).sum()) for c in config.CLASS_NAMES}
    total = sum(counts.values())
    dup = good[good.duplicated("hash", keep=False)]
    labels_per_hash = dup.groupby("hash")["label"].nunique()
    near = good[good["group_size"] > 1]
    files = file_counts(table)
    skipped = table[table["error"].notna()]
    report = {
        "files": files["files"],  # every file in the class folders
        "readable": int(len(good)),  # the images used
        "class_counts": counts,
        "balance": (min(counts.values()) / max(counts.values())) if max(counts.values()) else 0.0,
        "skipped_by_reason": files["skipped"],
        "skipped": [{"path": r.path, "label": r.label,
                     "reason": r.skipped if isinstance(r.skipped, str) else "unreadable", "error": r.error}
                    for r in skipped.reindex(columns=["path", "label", "skipped", "error"]).itertuples(index=False)],
        "exact_duplicate_sets": int(labels_per_hash.size),
        "exact_duplicate_files": int(len(dup) - labels_per_hash.size),
        "duplicates_across_classes": sorted(labels_per_hash[labels_per_hash > 1].index.tolist()),
        "near_duplicate_groups": int(near["group"].nunique()),
        "images_in_near_duplicate_groups": int(len(near)),
        "groups_across_classes": int((near.groupby("group")["label"].nunique() > 1).sum()),
        "label_conflicts": groups.label_conflicts(good),
        "val_groups": int(good.loc[good["split"] == "val", "group"].nunique()),
        "split_counts": {s: {c: int(((good["split"] == s) & (good["label"] == c)).sum())
                             for c in config.CLASS_NAMES} for s in ("train", "val")},
        "per_class": {},
        "shortcuts": [],
        "warnings": [],
    }
    for cls in config.CLASS_NAMES:
        rows = good[good["label"] == cls]
        report["per_class"][cls] = {
            "median_width": float(rows["width"].median()) if len(rows) else None,
            "median_height": float(rows["height"].median()) if len(rows) else None,
            "median_sharpness": float(rows["sharpness"].median()) if len(rows) else None,
            "formats": rows["format"].value_counts().to_dict(),
            "modes": rows["mode"].value_counts().to_dict(),
        }
    a, b = (good[good["label"] == c] for c in config.CLASS_NAMES)
    features = {
        "image width": "width", "image height": "height", "file size per pixel": None, "sharpness": "sharpness"}
    for label, col in features.items():
        if col is None:
            fa = (a["bytes"] / (a["width"] * a["height"])).to_numpy(float)
            fb = (b["bytes"] / (b["width"] * b["height"])).to_numpy(float)
        else:
            fa, fb = a[col].to_numpy(float), b[col].to_numpy(float)
        auc = _auc(fa, fb)
        separability = max(auc, 1 - auc)
        shortcut = separability >= SHORTCUT_SEPARABILITY
        report["shortcuts"].append({"property": label, "separability": separability, "shortcut": shortcut})
        if shortcut:
            report["warnings"].append(
                f"{label} alone tells {config.CLASS_NAMES[0]} from {config.CLASS_NAMES[1]} for "
                f"{separability:.0%} of image pairs: a model can learn it instead of masks.")
    if total and report["balance"] < 0.5:
        report["warnings"].append(f"classes are unbalanced ({counts}); accuracy will flatter the model.")
    if report["label_conflicts"]:
        report["warnings"].append(
            f"{len(report['label_conflicts'])} photos are filed under both labels (exact or near copies; "
            "listed as label conflicts): one of the labels is wrong.")
    shown = {r: n for r, n in files["skipped"].items() if r != "hidden file"}  # hidden files: listed only
    if shown:
        report["warnings"].append(
            f"{sum(shown.values())} of the {files['files']} files are skipped "
            f"({', '.join(f'{n} {r}' for r, n in shown.items())}); each is listed with its reason.")
    return report


# ---------------------------------------------------------------- pixels and tf.data

def load_pixels(table: pd.DataFrame, use_cache: bool = True, progress=None) -> np.ndarray:
    """Decode every row once into an (N, H, W, 3) uint8 array, cached on disk by content."""
    key = hashlib.sha1(("|".join(table["hash"].astype(str)) + str(config.IMAGE_SIZE)).encode()).hexdigest()[:20]
    cache_path = config.CACHE_DIR / f"pixels-{key}.npy"
    if use_cache and cache_path.exists():
        try:
            arr = np.load(cache_path)
            if arr.shape[0] == len(table):
                return arr
        except Exception:
            pass
    out = np.zeros((len(table), *config.INPUT_SHAPE), np.uint8)

    def load(i_path):
        i, path = i_path
        out[i] = to_array(open_image(path))

    with ThreadPoolExecutor(max_workers=min(4, (os.cpu_count() or 1) + 1)) as pool:
        for n, _ in enumerate(pool.map(load, enumerate(table["path"]))):
            if progress and (n % 500 == 0 or n == len(table) - 1):
                progress(n + 1, len(table))
    if use_cache:
        config.CACHE_DIR.mkdir(parents=True, exist_ok=True)
        tmp = cache_path.with_suffix(f".{os.getpid()}.tmp.npy")
        np.save(tmp, out)
        os.replace(tmp, cache_path)
    return out


def labels_of(table: pd.DataFrame) -> np.ndarray:
    """1.0 for the positive class (with mask), 0.0 otherwise: what the sigmoid predicts."""
    return (table["label"] == config.POSITIVE_CLASS).to_numpy(np.float32)


CONTEXT_SHARE = 0.5  # share of training faces shown among other faces instead of mirrored copies of themselves
MAX_ZOOM_OUT = 1.7  # a found face is cut with a margin: up to 0.35 of its side on each side shows its surroundings


def _with_surroundings(images):
    """Each face in the middle of a 3x3 mosaic: its mirror images around it (what reflect-padding shows) or,
    for CONTEXT_SHARE of them, other faces of the batch, as neighbours in a crowd stand beside a face cut out
    with a margin. The label stays the middle face's, so the model learns to judge the face in the centre."""
    import tensorflow as tf

    n = tf.shape(images)[0]
    lr, ud, both = tf.reverse(images, [2]), tf.reverse(images, [1]), tf.reverse(images, [1, 2])
    others = tf.random.uniform([n, 1, 1, 1]) < CONTEXT_SHARE

    def beside(k, own):
        return tf.where(others, tf.roll(images, k, axis=0), own)

    rows = [[beside(1, both), beside(2, ud), beside(3, both)],
            [beside(4, lr), images, beside(5, lr)],
            [beside(6, both), beside(7, ud), beside(8, both)]]
    return tf.concat([tf.concat(row, axis=2) for row in rows], axis=1)


def _geometric_augment(images):
    """Random flip, rotation (+-20 deg), zoom (-15% to +70% more surroundings) and shift (+-8%) per image, as
    ONE projective transform of the face amid its surroundings (_with_surroundings): four separate Keras
    layers cost four resamplings and ran 4x slower here."""
    import math

    import tensorflow as tf

    n = tf.shape(images)[0]
    h, w = (float(v) for v in config.IMAGE_SIZE)
    mosaic = _with_surroundings(images)
    theta = tf.random.uniform([n], -0.06, 0.06) * 2 * math.pi
    # >1 shows more of the surroundings: found faces are cut with a margin, training crops are tight
    scale = tf.exp(tf.random.uniform([n], -math.log(1.15), math.log(MAX_ZOOM_OUT)))
    flip = tf.where(tf.random.uniform([n]) < 0.5, -1.0, 1.0)
    tx, ty = tf.random.uniform([n], -0.08, 0.08) * w, tf.random.uniform([n], -0.08, 0.08) * h
    cx, cy = (w - 1) / 2, (h - 1) / 2
    a0, a1 = flip * scale * tf.cos(theta), -scale * tf.sin(theta)
    b0, b1 = flip * scale * tf.sin(theta), scale * tf.cos(theta)
    a2 = cx + w - a0 * cx - a1 * cy + tx  # the middle tile of the mosaic starts at (w, h)
    b2 = cy + h - b0 * cx - b1 * cy + ty
    zeros = tf.zeros([n])
    transforms = tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)  # output -> input coordinates
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=mosaic, transforms=transforms, output_shape=tf.shape(images)[1:3], fill_value=0.0,
        interpolation="BILINEAR", fill_mode="REFLECT")


def _colour_augment(images):
    """Per-image brightness, contrast and saturation jitter."""
    import tensorflow as tf

    n = tf.shape(images)[0]
    mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
    contrast = tf.random.uniform([n, 1, 1, 1], 0.7, 1.3)
    brightness = tf.random.uniform([n, 1, 1, 1], -40.0, 40.0)
    grey = tf.reduce_mean(images, axis=3, keepdims=True)
    saturation = tf.random.uniform([n, 1, 1, 1], 0.6, 1.4)
    images = grey + (images - grey) * saturation
    return (images - mean) * contrast + mean + brightness


def _quality_augment(images):
    """Randomly degrade image quality (down- then up-scaling, pixelation, JPEG artefacts) so the
    model cannot tell the classes apart by how sharp or clean their photos are."""
    import tensorflow as tf

    h, w = config.IMAGE_SIZE
    n = tf.shape(images)[0]
    side = tf.random.uniform([], 16, h + 1, dtype=tf.int32)
    small = tf.image.resize(images, [side, side], method="area")
    blurry = tf.cond(tf.random.uniform([]) < 0.5,
                     lambda: tf.image.resize(small, [h, w], method="bilinear"),
                     lambda: tf.image.resize(small, [h, w], method="nearest"))
    images = tf.where(tf.random.uniform([n, 1, 1, 1]) < 0.5, blurry, images)
    # JPEG re-compression of the first ~30% of the (shuffled) batch: per-image work, so on a share only
    k = n * 3 // 10
    quality = tf.random.uniform([], 15, 90, dtype=tf.int32)
    jpegged = tf.map_fn(lambda im: tf.image.adjust_jpeg_quality(im / 255.0, quality) * 255.0,
                        tf.clip_by_value(images[:k], 0, 255),  # k is 0 for batches under 4 images
                        fn_output_signature=tf.TensorSpec([h, w, 3], tf.float32))
    return tf.concat([jpegged, images[k:]], axis=0)


def augment_batch(images):
    """The training augmentation: geometry, colour, then image quality; float 0-255 in and out."""
    import tensorflow as tf

    return tf.clip_by_value(_quality_augment(_colour_augment(_geometric_augment(images))), 0.0, 255.0)


def make_dataset(pixels: np.ndarray, labels: np.ndarray, batch_size: int, training: bool,
                 augment: bool = True, seed: int = 0):
    """In-memory uint8 pixels -> a batched tf.data pipeline (shuffle, augment, prefetch)."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((pixels, labels.astype(np.float32)))
    if training:
        ds = ds.shuffle(len(pixels), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    ds = ds.map(lambda x, y: (tf.cast(x, tf.float32), y))
    if training and augment:
        ds = ds.map(lambda x, y: (augment_batch(x), y), num_parallel_calls=2)
    ds = ds.prefetch(2)
    options = tf.data.Options()
    options.autotune.enabled = False  # autotune stalls every epoch on this 2-core CPU (MEASURED.md)
    return ds.with_options(options)


# ---------------------------------------------------------------- Kaggle

def kaggle_credentials(username: str | None = None, key: str | None = None) -> tuple[str, str]:
    """Credentials from arguments, KAGGLE_USERNAME/KAGGLE_KEY, or ~/.kaggle/kaggle.json."""
    import json

    username = username or os.environ.get("KAGGLE_USERNAME")
    key = key or os.environ.get("KAGGLE_KEY")
    if username and key:
        return username, key
    path = Path(os.environ.get("KAGGLE_CONFIG_DIR", Path.home() / ".kaggle")) / "kaggle.json"
    if path.exists():
        try:
            creds = json.loads(path.read_text())
            return creds["username"], creds["key"]
        except (ValueError, KeyError, TypeError):
            raise DatasetError(f"{path}: not a valid kaggle.json (needs \"username\" and \"key\")") from None
    raise DatasetError("Kaggle credentials missing: give a username and API key, set KAGGLE_USERNAME and "
                       "KAGGLE_KEY, or put kaggle.json in ~/.kaggle (Kaggle > Settings > Create New Token).")


def _check_kaggle(username: str, key: str, dataset: str, timeout: float = 15) -> None:
    """Ask Kaggle's API about the dataset with these credentials first, so that a failure says why:
    no network, credentials refused, no access, no such dataset (opendatasets only says "Abort")."""
    import base64
    import urllib.error
    import urllib.request

    url = f"https://www.kaggle.com/api/v1/datasets/view/{dataset}"
    auth = base64.b64encode(f"{username}:{key}".encode()).decode()
    request = urllib.request.Request(url, headers={"Authorization": f"Basic {auth}", "User-Agent": "maskdet"})
    try:
        urllib.request.urlopen(request, timeout=timeout).close()
    except urllib.error.HTTPError as exc:
        reason = {401: "Kaggle refused the credentials (401): check the username and the API key "
                       "(kaggle.json, from kaggle.com > Settings > API)",
                  403: "Kaggle refused access to the dataset (403): sign in on kaggle.com and accept its terms",
                  404: f"Kaggle has no dataset {dataset!r} (404)"}.get(exc.code, f"Kaggle answered HTTP {exc.code}")
        raise DatasetError(f"Kaggle download failed: {reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        why = getattr(exc, "reason", exc)
        raise DatasetError(f"Kaggle download failed: could not reach www.kaggle.com ({why}); check the network "
                           "connection or proxy, or download the dataset by hand and give its folder") from None


def download(dest: str | Path, username: str | None = None, key: str | None = None,
             dataset: str = config.KAGGLE_DATASET) -> Path:
    """Download the Kaggle dataset into dest through opendatasets; returns the dataset folder.

    Never prompts: opendatasets asks on stdin when it finds no credentials, which would hang
    a server, so credentials are always handed to it through the environment and stdin is closed.
    A failed download leaves no partial folder that would look complete.
    """
    import contextlib
    import shutil
    import sys

    username, key = kaggle_credentials(username, key)
    dest = Path(dest).expanduser()
    slug = dataset.split("/")[-1]
    target = dest / slug
    if target.exists() and any(target.iterdir()):
        find_class_folders(target)  # an existing download must be a dataset, else say so
        return target
    _check_kaggle(username, key, dataset)
    dest.mkdir(parents=True, exist_ok=True)
    partial = dest / f".{slug}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    saved = {k: os.environ.get(k) for k in ("KAGGLE_USERNAME", "KAGGLE_KEY")}
    os.environ["KAGGLE_USERNAME"], os.environ["KAGGLE_KEY"] = username, key
    old_stdin = sys.stdin
    sys.stdin = io.StringIO("")  # any prompt gets EOF at once instead of waiting forever
    try:
        import opendatasets

        with contextlib.redirect_stdout(io.StringIO()):
            opendatasets.download(f"https://www.kaggle.com/datasets/{dataset}", data_dir=str(partial))
        got = partial / slug
        if not got.exists() or not any(got.iterdir()):
            raise DatasetError("the Kaggle download finished without files; check the credentials")
        find_class_folders(got)
        os.replace(got, target)
        return target
    except DatasetError:
        raise
    except EOFError:
        raise DatasetError("Kaggle rejected the credentials (opendatasets asked for them again)") from None
    except Exception as exc:  # network errors, 401/403 from the Kaggle API
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DatasetError(f"Kaggle download failed: {msg}. Check the network and the credentials.") from None
    finally:
        sys.stdin = old_stdin
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(partial, ignore_errors=True)
