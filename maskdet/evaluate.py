"""A model x a split -> predictions, confusion matrix, metrics, curves, the table of errors."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from . import config, dataset, files, images, pipeline, runs


def metrics(y_true: np.ndarray, p_mask: np.ndarray, threshold: float = config.DEFAULT_THRESHOLD) -> dict:
    """y_true is 1 for with_mask. The confusion matrix's rows are true classes, columns predicted,
    both in config.CLASS_NAMES order."""
    y_true = np.asarray(y_true).astype(int)
    pred = (np.asarray(p_mask) >= threshold).astype(int)
    # index 0 = with_mask (y=1), index 1 = without_mask (y=0)
    cm = [[int(((y_true == t) & (pred == p)).sum()) for p in (1, 0)] for t in (1, 0)]
    per_class = {}
    for k, cls in enumerate(config.CLASS_NAMES):
        tp = cm[k][k]
        predicted = cm[0][k] + cm[1][k]
        actual = sum(cm[k])
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[cls] = {"precision": precision, "recall": recall, "f1": f1, "support": actual}
    n = len(y_true)
    recalls = [per_class[c]["recall"] for c in config.CLASS_NAMES if per_class[c]["support"]]
    return {
        "n": n,
        "accuracy": float((pred == y_true).mean()) if n else 0.0,
        "balanced_accuracy": float(np.mean(recalls)) if recalls else 0.0,
        "confusion_matrix": cm,
        "classes": list(config.CLASS_NAMES),
        "per_class": per_class,
        "threshold": threshold,
        "roc_auc": roc_auc(y_true, p_mask),
    }


def roc_auc(y_true, p_mask) -> float | None:
    y_true, p = np.asarray(y_true).astype(int), np.asarray(p_mask, float)
    pos, neg = p[y_true == 1], p[y_true == 0]
    if not len(pos) or not len(neg):
        return None
    ranks = pd.Series(np.concatenate([pos, neg])).rank().to_numpy()
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def curves(y_true, p_mask) -> pd.DataFrame:
    """ROC and precision-recall points for the with_mask class, one row per threshold."""
    y_true, p = np.asarray(y_true).astype(int), np.asarray(p_mask, float)
    thresholds = np.unique(np.concatenate([[0.0, 1.0 + 1e-9], p]))[::-1]
    pos, neg = max(int(y_true.sum()), 1), max(int((1 - y_true).sum()), 1)
    rows = []
    for t in thresholds:
        pred = p >= t
        tp, fp = int((pred & (y_true == 1)).sum()), int((pred & (y_true == 0)).sum())
        rows.append(
            {
                "threshold": float(min(t, 1.0)),
                "tpr": tp / pos,
                "fpr": fp / neg,
                "precision": tp / (tp + fp) if tp + fp else 1.0,
                "recall": tp / pos,
            }
        )
    return pd.DataFrame(rows)


def _floor(v: float, step: float = 0.05) -> float:
    return float(np.floor(v / step) * step)


def curve_view(points: pd.DataFrame) -> dict:
    """Axis domains that show where the ROC and precision-recall curves bend, for curves() points.

    A good model's curves hug the frame on [0, 1] axes (at AUC 0.999 they are the frame). ROC: false
    positive rate from 0 to max(0.2, the rate at which 99% of the masked faces are found), true positive
    rate from just under the share found with no false positive. Precision-recall: recall from just under
    the point where precision drops below 99%, precision from just under its value at 99% recall.
    Each view keeps at least 0.1 of each axis and never leaves [0, 1]."""

    def knee(frame, col, at):  # the first row (in curves' threshold order) where col reaches `at`
        hit = frame[frame[col] >= at]
        return hit.iloc[0] if len(hit) else frame.iloc[-1]

    fpr_knee = float(knee(points, "tpr", 0.99)["fpr"])
    tpr_at_zero = float(points.loc[points["fpr"] == 0, "tpr"].max()) if (points["fpr"] == 0).any() else 0.0
    roc = {"x": [0.0, min(1.0, max(0.2, fpr_knee))], "y": [max(0.0, min(0.9, _floor(tpr_at_zero) - 0.05)), 1.0]}
    sharp = points[points["precision"] < 0.99]
    recall_drop = float(sharp["recall"].min()) if len(sharp) else 1.0
    precision_at_knee = float(knee(points, "recall", 0.99)["precision"])
    pr = {
        "x": [max(0.0, min(0.9, _floor(recall_drop) - 0.05)), 1.0],
        "y": [max(0.0, min(0.9, _floor(precision_at_knee) - 0.05)), 1.0],
    }
    return {"roc": roc, "pr": pr}


CLASSIFY_CHUNK = 256  # images classified between two progress reports


def predict_table(classifier, table: pd.DataFrame, progress=None) -> pd.DataFrame:
    """The table's readable rows with p_mask and the predicted label added. `progress(done, total, what)`
    follows the reading of the images and their classification."""
    good = dataset.usable(table)
    pixels = pipeline.load_pixels(good, progress=progress and (lambda done, total: progress(done, total, "reading")))
    p = np.zeros(len(good), np.float32)
    for start in range(0, len(good), CLASSIFY_CHUNK):
        p[start : start + CLASSIFY_CHUNK] = classifier.probs(pixels[start : start + CLASSIFY_CHUNK])
        if progress:
            progress(min(start + CLASSIFY_CHUNK, len(good)), len(good), "classifying")
    return _with_predictions(good, p, classifier.threshold)


def _with_predictions(good: pd.DataFrame, p_mask: np.ndarray, threshold: float) -> pd.DataFrame:
    good = good.copy()
    good["p_mask"] = p_mask
    good["predicted"] = np.where(good["p_mask"] >= threshold, *config.CLASS_NAMES)
    return good.drop(columns=["signature"], errors="ignore")


PREDICTIONS_VERSION = 1  # of what a stored predictions file holds: part of its name


def predictions_file(model_path, table: pd.DataFrame) -> Path:
    """Where the predictions of a model file on a table's readable rows are stored: named by the model file's
    content and the rows' files and contents (dataset.fingerprint), so neither a promotion, a retrained model
    nor a changed image can meet stale predictions."""
    key = hashlib.sha256(
        f"{PREDICTIONS_VERSION}|{config.IMAGE_SIZE}|{runs.sha256_of(Path(model_path))}|"
        f"{dataset.fingerprint(table)}".encode()
    ).hexdigest()[:24]
    return config.CACHE_DIR / f"predictions-{key}.pkl"


def stored_predictions(
    model_path, table: pd.DataFrame, load_classifier, progress=None, threshold: float = config.DEFAULT_THRESHOLD
) -> pd.DataFrame:
    """predict_table() of a model file, kept on disk (predictions_file()): after a restart the P(mask) of each
    image is read back in a moment instead of the model being loaded and run again. `load_classifier()` is
    called only when the predictions must be computed."""
    good = dataset.usable(table)
    where = predictions_file(model_path, good)
    try:
        stored = pd.read_pickle(where)
        p = good["path"].map(stored).to_numpy(np.float32)
        if not np.isnan(p).any():
            return _with_predictions(good, p, threshold)
    except Exception:  # none yet, or torn: it is only a cache
        pass
    if progress:
        progress(0, len(good), "loading the model before classifying")
    p = predict_table(load_classifier(), good, progress)["p_mask"].to_numpy()
    try:
        config.CACHE_DIR.mkdir(parents=True, exist_ok=True)
        files.save_pickle_atomic(where, pd.Series(p, index=good["path"].to_numpy()))
    except OSError:  # a read-only cache folder: the predictions still serve this time
        pass
    return _with_predictions(good, p, threshold)


def errors(predictions: pd.DataFrame, threshold: float = config.DEFAULT_THRESHOLD) -> pd.DataFrame:
    """Misclassified rows, the most confidently wrong first, with their error type."""
    pred = np.where(predictions["p_mask"] >= threshold, *config.CLASS_NAMES)
    wrong = predictions[pred != predictions["label"]].copy()
    wrong["predicted"] = pred[pred != predictions["label"]]
    wrong["confidence"] = np.where(wrong["predicted"] == config.CLASS_NAMES[0], wrong["p_mask"], 1 - wrong["p_mask"])
    wrong["error_type"] = np.where(wrong["predicted"] == config.CLASS_NAMES[0], "false mask", "false no-mask")
    return wrong.sort_values("confidence", ascending=False).reset_index(drop=True)


def family_of(table: pd.DataFrame) -> pd.Series:
    """Each row's photo family: its near-duplicate group (one photo and its augmented or re-saved
    copies, always in one split), or the file itself where it has none."""
    return table["group"].fillna(table["path"]) if "group" in table else table["path"]


def one_per_family(rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """The first row of each photo family (errors come most confidently wrong first: its worst) and, for
    each row kept, how many rows its family has among those given."""
    family = family_of(rows)
    first = ~family.duplicated()
    return rows[first], family[first].map(family.value_counts())


def families(predictions: pd.DataFrame, threshold: float = config.DEFAULT_THRESHOLD) -> dict:
    """How many photo families the rows hold, and in how many of them at least one image is wrong.
    A family's copies tend to be right or wrong together, so this says how many distinct faces
    the errors really are."""
    if "group" not in predictions or predictions.empty:
        return {"families": None, "families_with_errors": None}
    return {
        "families": int(family_of(predictions).nunique()),
        "families_with_errors": int(family_of(errors(predictions, threshold)).nunique()),
    }


def evaluate(classifier, data_dir, split: str = "val", val_fraction: float = config.DEFAULT_VAL_FRACTION):
    """(predictions table, metrics) of a classifier on a dataset's split ("val" or "all")."""
    table = dataset.scan(data_dir, val_fraction=val_fraction)
    if split == "val":
        table = table[table["split"] == "val"]
    elif split != "all":
        raise ValueError("split must be 'val' or 'all'")
    if dataset.usable(table).empty:
        raise dataset.DatasetError(f"{data_dir}: no readable images in the {split} split")
    preds = predict_table(classifier, table)
    m = metrics(dataset.labels_of(preds), preds["p_mask"].to_numpy(), classifier.threshold)
    return preds, {**m, **families(preds, classifier.threshold)}


CROSS_SOURCE_MARGINS = (0.0, 0.15, 0.3)  # a face's label must not depend on how tightly it is cut


def cross_source(classifier, scenes_dir, min_side: int = config.MIN_FACE_SIDE, margins=CROSS_SOURCE_MARGINS) -> dict:
    """Metrics on faces from other photos than the training set's: the annotated with_mask /
    without_mask faces of a face-mask-scenes folder (at least min_side px), cut out as squares around
    each annotated box widened by each margin (a share of the box's side on every side; 0: the box
    itself). A model that learned image quality instead of masks fails here. The top-level figures
    are those of the app's own margin (faces.FACE_MARGIN); `by_margin` holds one entry per margin."""
    from . import faces, scenes

    result = {}
    for margin in sorted({*margins, faces.FACE_MARGIN}):
        crops = scenes.scene_face_crops(scenes_dir, min_side=min_side, margin=margin)
        if not crops:
            raise dataset.DatasetError(f"{scenes_dir}: no annotated faces of at least {min_side} px")
        pixels = np.stack([images.to_array(img) for img, _ in crops])
        y = np.array([label == config.POSITIVE_CLASS for _, label in crops], dtype=int)
        m = metrics(y, classifier.probs(pixels), classifier.threshold)
        if margin == faces.FACE_MARGIN:
            result.update(m)
        if margin in margins:
            result.setdefault("by_margin", {})[f"{margin:g}"] = {
                k: m[k] for k in ("n", "accuracy", "balanced_accuracy", "confusion_matrix", "roc_auc")
            }
    result["min_side"] = min_side
    result["margin"] = faces.FACE_MARGIN
    return result
