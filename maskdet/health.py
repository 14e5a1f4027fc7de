"""Data health: what in a dataset table could mislead a model trained on it, as figures and warnings."""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import config, groups
from .dataset import file_counts, usable

# A property (size, sharpness...) that alone orders this share of cross-class image pairs is a shortcut
# a model can learn instead of masks.
SHORTCUT_SEPARABILITY = 0.75


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
        "skipped": [
            {
                "path": r.path,
                "label": r.label,
                "reason": r.skipped if isinstance(r.skipped, str) else "unreadable",
                "error": r.error,
            }
            for r in skipped.reindex(columns=["path", "label", "skipped", "error"]).itertuples(index=False)
        ],
        "exact_duplicate_sets": int(labels_per_hash.size),
        "exact_duplicate_files": int(len(dup) - labels_per_hash.size),
        "duplicates_across_classes": sorted(labels_per_hash[labels_per_hash > 1].index.tolist()),
        "near_duplicate_groups": int(near["group"].nunique()),
        "images_in_near_duplicate_groups": int(len(near)),
        "groups_across_classes": int((near.groupby("group")["label"].nunique() > 1).sum()),
        "label_conflicts": groups.label_conflicts(good),
        "val_groups": int(good.loc[good["split"] == "val", "group"].nunique()),
        "split_counts": {
            s: {c: int(((good["split"] == s) & (good["label"] == c)).sum()) for c in config.CLASS_NAMES}
            for s in ("train", "val")
        },
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
    features = {"image width": "width", "image height": "height", "file size per pixel": None, "sharpness": "sharpness"}
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
                f"{separability:.0%} of image pairs: a model can learn it instead of masks."
            )
    if total and report["balance"] < 0.5:
        report["warnings"].append(f"classes are unbalanced ({counts}); accuracy will flatter the model.")
    if report["label_conflicts"]:
        report["warnings"].append(
            f"{len(report['label_conflicts'])} photos are filed under both labels (exact or near copies; "
            "listed as label conflicts): one of the labels is wrong."
        )
    shown = {r: n for r, n in files["skipped"].items() if r != "hidden file"}  # hidden files: listed only
    if shown:
        report["warnings"].append(
            f"{sum(shown.values())} of the {files['files']} files are skipped "
            f"({', '.join(f'{n} {r}' for r, n in shown.items())}); each is listed with its reason."
        )
    return report
