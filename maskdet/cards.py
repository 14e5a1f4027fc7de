"""What a model card says: a finished run's card (make_card: where it came from, its data, split, network,
parameters, metrics) and one line of it for lists. Where cards lie, promoting, rolling back and measuring a
promoted model for its card are maskdet/models.py's."""

from __future__ import annotations

import json
import os
from pathlib import Path

from . import config, runs


def backbone_facts(params: dict) -> dict:
    """What a card says of the network: architecture, backbone, where its starting weights came from, licence."""
    from . import backbones

    name = params.get("backbone", backbones.SCRATCH)  # runs from before backbones were a choice
    io = f"input {list(config.INPUT_SHAPE)} RGB 0-255, sigmoid = P({config.POSITIVE_CLASS})"
    if name == backbones.SCRATCH:
        return {
            "architecture": f"MobileNet alpha={params.get('alpha')} from scratch, {io}",
            "backbone": name,
            "weights_source": "random initialisation",
            "weights_licence": None,
        }
    spec = backbones.BACKBONES[name]
    size = params.get("input_size", config.DEFAULT_INPUT_SIZE)
    tuned = (
        "fine-tuned"
        if params.get("epochs", 0) > params.get("head_epochs", config.DEFAULT_HEAD_EPOCHS)
        else "frozen, only the head trained"
    )
    return {
        "architecture": f"{spec.title} {tuned}, faces resized to {size}x{size} inside the model, {io}",
        "backbone": name,
        "weights_source": spec.weights_source,
        "weights_licence": spec.licence,
    }


def project_name(path: str | Path | None) -> str | None:
    """A folder as a card names it: relative to the project when it lies in the folder that holds the project
    (`runs/<id>`, `../shared/datasets/facemask-12k`), so a card reads true on every clone; else absolute."""
    if path is None:
        return None
    path, project = Path(path).expanduser().resolve(), config.PROJECT_DIR.resolve()
    return os.path.relpath(path, project) if path.is_relative_to(project.parent) else str(path)


def make_card(run_dir: Path, name: str | None = None) -> dict:
    """A model card for a finished run: where it came from, its data, split, parameters and metrics."""
    run_dir = Path(run_dir)
    st, params = runs.status(run_dir), runs.params(run_dir)
    evaluation = runs.read_json(run_dir / "evaluation.json", {}) or {}
    model_file = run_dir / "model.keras"
    return {
        "name": name or config.DEFAULT_MODEL.stem,
        **backbone_facts(params),
        "classes": list(config.CLASS_NAMES),
        "promoted": runs.now(),
        "source_run": st.get("run_id", run_dir.name),
        "source_path": project_name(run_dir),
        "data": project_name(params.get("data")),
        "data_fingerprint": st.get("data_fingerprint"),  # dataset.fingerprint of the folder trained on
        "data_files": st.get("data_files"),  # files in the class folders, images used, files skipped by reason
        "split": {
            "method": "near-duplicate groups hashed into train/val (maskdet.groups.split_of_groups)",
            "val_fraction": params.get("val_fraction"),
            "limit": params.get("limit"),
            "train_images": st.get("train_images"),
            "val_images": st.get("val_images"),
        },
        "parameters": {**params, "data": project_name(params.get("data"))},
        "training": {
            "epochs": st.get("completed_epochs"),
            "elapsed_s": st.get("elapsed_s"),
            "finished": st.get("finished"),
            "state": st.get("state"),
        },
        "metrics": {
            k: evaluation.get(k)
            for k in ("accuracy", "balanced_accuracy", "roc_auc", "threshold", "confusion_matrix", "per_class", "n")
            if k in evaluation
        },
        "sha256": runs.sha256_of(model_file),
        "bytes": model_file.stat().st_size,
    }


def card_summary(card: dict | None) -> str:
    """A one-line description of a card for lists: source, validation accuracy, date."""
    if not card:
        return "no model card"
    parts = [card["backbone"]] if card.get("backbone") else []
    if card.get("source_run"):
        parts.append(f"run {card['source_run']}")
    acc = (card.get("metrics") or {}).get("accuracy")
    if acc is None:
        acc = card.get("val_accuracy")
    if isinstance(acc, (int, float)):
        parts.append(f"val accuracy {acc:.1%}")
    date = card.get("promoted") or card.get("date") or card.get("created")
    if date:
        parts.append(str(date)[:10])
    return ", ".join(parts) or json.dumps(card)[:80]
