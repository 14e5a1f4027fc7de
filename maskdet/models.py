"""The active model and its card: promoting a finished run to it, keeping the previous one, rolling back.

The active model is config.DEFAULT_MODEL (models/maskdet.keras) with its card config.MODEL_CARD
(models/maskdet.card.json). Promoting a run keeps the model it replaces as maskdet.previous.keras
and that model's card as maskdet.card.json.previous, so rollback() can put both back.
Every file is written aside and renamed into place, so a reader sees the old model or the new
one, never half of one.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from . import cards, config, files, runs


class PromotionError(RuntimeError):
    """A run that cannot become the active model, or no previous model to roll back to;
    the message says why, for a user."""


class DegenerateModel(PromotionError):
    """A run whose model does not tell the classes apart (degenerate()): promoted only with force=True."""

    def __init__(self, run_id: str, reason: str):
        super().__init__(f"run {run_id} does not tell the classes apart: {reason}")
        self.reason = reason


# Below this balanced accuracy a model is little better than always giving the same answer.
MIN_BALANCED_ACCURACY = 0.6


def degenerate(evaluation: dict | None) -> str | None:
    """Why a model's validation figures say it answers (almost) the same for every face, or None.

    A model is degenerate when a predicted class column of the confusion matrix is empty (it never
    answers that class) or when its balanced accuracy is under MIN_BALANCED_ACCURACY. Its plain
    accuracy then only repeats the share of the majority class ([[94, 0], [56, 0]] reads 62.7%).
    None when there are no figures (runs from before evaluation.json).
    """
    if not evaluation:
        return None
    cm = evaluation.get("confusion_matrix")
    if cm and sum(map(sum, cm)):
        for k, cls in enumerate(config.CLASS_NAMES):
            if not sum(row[k] for row in cm):
                other = config.CLASS_NAMES[1 - k]
                return f"constant output: it answers {other} for every validation image, never {cls}"
    balanced = evaluation.get("balanced_accuracy")
    if isinstance(balanced, (int, float)) and balanced < MIN_BALANCED_ACCURACY:
        return (
            f"balanced accuracy {balanced:.1%} (under {MIN_BALANCED_ACCURACY:.0%}): "
            "little better than giving every face the same answer"
        )
    return None


def run_evaluation(run_dir: Path) -> dict | None:
    """A run's validation figures (its evaluation.json), or None before it has them."""
    return runs.read_json(Path(run_dir) / "evaluation.json", None)


def previous_model(model: Path | None = None) -> Path:
    """Where the model replaced by the last promotion is kept (still a loadable .keras file)."""
    model = Path(model or config.DEFAULT_MODEL)
    return model.with_name(f"{model.stem}.previous{model.suffix}")


def card_path(model: Path | None = None) -> Path:
    """The card that describes a model file: MODEL_CARD for the active model, else <stem>.card.json."""
    model = Path(model or config.DEFAULT_MODEL)
    if model == Path(config.DEFAULT_MODEL):
        return Path(config.MODEL_CARD)
    if model == previous_model(config.DEFAULT_MODEL):
        return previous_card(config.MODEL_CARD)
    return model.with_name(f"{model.stem}.card.json")


def previous_card(card: Path | None = None) -> Path:
    """Where the card of the replaced model is kept: <card name>.previous."""
    card = Path(card or config.MODEL_CARD)
    return card.with_name(card.name + ".previous")


def read_card(model: Path | None = None) -> dict | None:
    """The model's card as a dict, or None when it has none (or an unreadable one)."""
    return runs.read_json(card_path(model), None)


def training_data(model: Path) -> dict:
    """What a model was trained on, from its run folder (a run's model.keras) or its card: `data` (the folder,
    absolute; None if unknown), `fingerprint` (dataset.fingerprint of it; None for models from before
    fingerprints) and `val_fraction` (of its split; the default if unknown)."""
    model = Path(model)
    params = runs.params(model.parent) if model.name == "model.keras" else {}
    if params:
        found = {
            "data": params.get("data"),
            "fingerprint": runs.status(model.parent).get("data_fingerprint"),
            "val_fraction": params.get("val_fraction"),
        }
    else:
        card = read_card(model) or {}
        found = {
            "data": card.get("data") or (card.get("parameters") or {}).get("data"),
            "fingerprint": card.get("data_fingerprint"),
            "val_fraction": (card.get("split") or {}).get("val_fraction")
            or (card.get("parameters") or {}).get("val_fraction"),
        }
    data = found["data"]
    return {
        "data": Path(os.path.normpath(config.PROJECT_DIR / data)) if data else None,  # relative to the project
        "fingerprint": found["fingerprint"],
        "val_fraction": float(found["val_fraction"] or config.DEFAULT_VAL_FRACTION),
    }


def trained_elsewhere(trained: dict, folder: Path, fingerprint: str) -> bool:
    """Whether a model (training_data()) was trained on other images than those of `folder` (whose
    dataset.fingerprint is given): told by the fingerprints, or by the folders for a model without one."""
    if trained["fingerprint"]:
        return trained["fingerprint"] != fingerprint
    return trained["data"] is not None and Path(trained["data"]).resolve() != Path(folder).resolve()


def measure_card(dest: Path | None = None, scenes_dir=None, log=None) -> dict:
    """The promoted model's card completed where it serves, whoever promoted it (the CLI, the Train
    page): this machine, how a face is scored, the validation figures as `evaluate --split val` gives
    them (when the run trained on a whole folder that is here), and with `scenes_dir` the cross-source
    and scene-photo figures. Writes the card and returns it; `log(message)` hears what is measured."""
    import platform
    import time

    from . import evaluate, infer, scenes

    dest = Path(dest or config.DEFAULT_MODEL)
    log = log or (lambda message: None)
    card = read_card(dest) or {}
    card["machine"] = f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}"
    clf = infer.Classifier.load(dest)
    card["scoring"] = "mean P(mask) of each face and its mirror image" if clf.mirror else "P(mask) of each face"
    params = card.get("parameters") or {}
    data = training_data(dest)["data"]  # the card names it relative to the project
    if data and data.is_dir() and not params.get("limit"):
        log(f"measuring the validation split of {data} ...")
        card["metrics"] = evaluate.evaluate(
            clf, data, "val", params.get("val_fraction") or config.DEFAULT_VAL_FRACTION
        )[1]
    if scenes_dir:
        log(f"measuring on {scenes_dir} ...")
        started = time.time()
        card["cross_source"] = {"data": str(scenes_dir), **evaluate.cross_source(clf, scenes_dir)}
        card["scenes"] = scenes.evaluate_scenes(clf, scenes_dir)
        card["scenes"].pop("errors", None)
        card["cross_source"]["measured_s"] = time.time() - started
    files.write_json_atomic(card_path(dest), card)
    return card


def promote(run_dir: Path, dest: Path | None = None, card: Path | None = None, force: bool = False) -> Path:
    """Make a finished run's model.keras the active model, keeping the one it replaces; returns dest.

    The replaced model becomes previous_model(dest) and its card previous_card(card), whatever the card
    says (the shipped model's card is written by hand and kept as it is). A degenerate model raises
    DegenerateModel unless force is given; its card then says why it was doubtful.
    """
    run_dir, dest = Path(run_dir), Path(dest or config.DEFAULT_MODEL)
    card = Path(card) if card else card_path(dest)
    try:
        runs.check_run_id(run_dir.name)
    except runs.RunError as exc:
        raise PromotionError(str(exc)) from None
    st = runs.status(run_dir)
    src = run_dir / "model.keras"
    if st["state"] in ("queued", "running"):
        raise PromotionError(f"run {run_dir.name} is still {st['state']}; promote it once it has finished")
    if not src.exists():
        raise PromotionError(
            f"run {run_dir.name} has no model.keras ({st['state']}{': ' + st['error'] if st.get('error') else ''})"
        )
    doubt = degenerate(run_evaluation(run_dir))
    if doubt and not force:
        raise DegenerateModel(run_dir.name, doubt)
    new_card = cards.make_card(run_dir, dest.stem)
    if doubt:
        new_card["promoted_despite"] = doubt
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        if runs.sha256_of(dest) == new_card["sha256"]:
            raise PromotionError(f"run {run_dir.name} is already the active model")
        files.copy_atomic(dest, previous_model(dest))
        if card.exists():
            files.copy_atomic(card, previous_card(card))
        else:  # a previous model without a card: no stale card may pose as its card
            previous_card(card).unlink(missing_ok=True)
    files.copy_atomic(src, dest)
    files.write_json_atomic(card, new_card)
    return dest


def rollback(dest: Path | None = None, card: Path | None = None) -> Path:
    """Swap the active model and card with the previous ones (a second rollback undoes the first)."""
    dest = Path(dest or config.DEFAULT_MODEL)
    card = Path(card) if card else card_path(dest)
    prev, prev_card = previous_model(dest), previous_card(card)
    if not prev.exists():
        raise PromotionError(f"no previous model to roll back to ({prev} does not exist)")
    swap = dest.with_name(f".{dest.name}.{os.getpid()}.swap")
    swap_card = card.with_name(f".{card.name}.{os.getpid()}.swap")
    had_card, had_prev_card = card.exists(), prev_card.exists()
    if dest.exists():
        files.copy_atomic(dest, swap)
    if had_card:
        files.copy_atomic(card, swap_card)
    files.copy_atomic(prev, dest)
    if had_prev_card:
        files.copy_atomic(prev_card, card)
    else:
        card.unlink(missing_ok=True)
    if swap.exists():
        os.replace(swap, prev)
    else:
        prev.unlink()
    if had_card:
        os.replace(swap_card, prev_card)
    else:
        prev_card.unlink(missing_ok=True)
    return dest


def version(models_dir: Path | None = None) -> str:
    """A token that changes whenever a file of the models folder is added, removed or replaced (a promotion,
    a rollback, from any process): views of the folder are keyed by it, so none outlives a change."""
    models_dir = Path(models_dir or config.MODELS_DIR)
    try:
        entries = sorted(
            (e.name, e.stat().st_mtime_ns, e.stat().st_size)
            for e in os.scandir(models_dir)
            if not e.name.startswith(".") and e.is_file()
        )
    except OSError:  # no folder yet
        entries = []
    return hashlib.sha256(repr(entries).encode()).hexdigest()[:16]


def describe(model: Path) -> dict:
    """One model file: path, whether it exists, size, modification time and card (None if none)."""
    model = Path(model)
    exists = model.exists()
    stat = model.stat() if exists else None
    return {
        "path": str(model),
        "name": model.name,
        "exists": exists,
        "bytes": stat.st_size if stat else None,
        "mtime": stat.st_mtime if stat else None,
        "card": read_card(model) if exists else None,
    }


def active_model(dest: Path | None = None) -> dict:
    """The active model (describe()); "exists" is False until one is trained and promoted or shipped."""
    return describe(Path(dest or config.DEFAULT_MODEL))


def list_models(models_dir: Path | None = None) -> list[dict]:
    """Every .keras file in the models folder, the active model first, then the previous one, then by name."""
    models_dir = Path(models_dir or config.MODELS_DIR)
    if not models_dir.is_dir():
        return []
    active = Path(config.DEFAULT_MODEL)
    order = {active.name: 0, previous_model(active).name: 1}
    files = [p for p in models_dir.glob("*.keras") if not p.name.startswith(".")]
    return [describe(p) for p in sorted(files, key=lambda p: (order.get(p.name, 2), p.name))]
