"""Near-duplicate groups on facemask-12k: recall on the Augmented_<id> families, families straddling the
split, files moved when 10% are added (the remembered split, and by the files alone), cold and warm scan
time; draws the pair sample for the precision check.

    python benchmarks/bench_groups.py [--data ../shared/datasets/facemask-12k] [--sample 320]

Each scan runs with a fresh MASKDET_CACHE (cold), then again (warm). The precision sample (random pairs of
images grouped together) is written to benchmarks/group_pairs.json if absent; benchmarks/group_sheets.py
draws it as contact sheets and counts the verdicts kept in that file.
"""

import argparse
import itertools
import json
import os
import random
import re
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
os.environ["MASKDET_CACHE"] = tempfile.mkdtemp(prefix="bench-groups-")  # before maskdet reads it

from maskdet import config, dataset, groups, health  # noqa: E402


def family_of(path: str):
    m = re.search(r"Augmented_(\d+)_", Path(path).name)
    return m.group(1) if m else None


def recall(table) -> tuple[float, int]:
    """Share of the pairs inside each Augmented_<id> family that sit in one group."""
    fam = table["path"].map(family_of)
    together = total = 0
    for _, rows in table[fam.notna()].groupby(fam[fam.notna()]):
        for a, b in itertools.combinations(rows["group"].tolist(), 2):
            total += 1
            together += a == b
    return together / total, int(fam.nunique())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=config.PROJECT_DIR.parent / "shared" / "datasets" / "facemask-12k")
    ap.add_argument("--sample", type=int, default=320)
    a = ap.parse_args()

    # adding 10%: the first 90% of each class folder (links to the real files) scanned first, cold; then the
    # last 10% linked into the same folder and scanned again (old pair verdicts cached)
    with tempfile.TemporaryDirectory() as tmp:
        rest = []
        for cls in config.CLASS_NAMES:
            (Path(tmp) / cls).mkdir()
            files = sorted((a.data / cls).iterdir())
            for f in files[: int(len(files) * 0.9)]:
                os.symlink(f, Path(tmp) / cls / f.name)
            rest += [(f, Path(tmp) / cls / f.name) for f in files[int(len(files) * 0.9) :]]
        t = time.time()
        before = dataset.scan(tmp).set_index("path")
        t_part = time.time() - t
        for f, link in rest:
            os.symlink(f, link)
        t = time.time()
        grown = dataset.scan(tmp).set_index("path")
        t_grow = time.time() - t
    old = grown.loc[before.index]
    moved = float((old["split"] != before["split"]).mean())
    pure = groups.split_of_groups(old["split_unit"], config.DEFAULT_VAL_FRACTION)  # the rule without memory
    moved_pure = float((pure != before["split"]).mean())

    os.environ["MASKDET_CACHE"] = tempfile.mkdtemp(prefix="bench-groups-cold-")
    config.CACHE_DIR = Path(os.environ["MASKDET_CACHE"])
    t = time.time()
    table = dataset.scan(a.data)
    t_cold = time.time() - t
    t = time.time()
    dataset.scan(a.data)
    t_warm = time.time() - t

    r, n_fam = recall(table)
    fam = table["path"].map(family_of)
    straddle = (table[fam.notna()].groupby(fam[fam.notna()])["split"].nunique() > 1).mean()
    ids_per_group = table[fam.notna()].groupby("group")["path"].apply(lambda s: s.map(family_of).nunique())
    report = health.health(table)
    out = {
        "images": len(table),
        "groups": report["near_duplicate_groups"],
        "images_in_groups": report["images_in_near_duplicate_groups"],
        "largest_group": int(table["group_size"].max()),
        "label_conflicts": len(report["label_conflicts"]),
        "augmented_families": n_fam,
        "recall": round(r, 4),
        "families_straddling_split": round(float(straddle), 4),
        "groups_with_several_augmented_ids": int((ids_per_group > 1).sum()),
        "val_images": int((table["split"] == "val").sum()),
        "val_groups": report["val_groups"],
        "moved_when_10pct_added": round(moved, 4),
        "moved_when_10pct_added_without_memory": round(moved_pure, 4),
        "scan_s": {
            "cold": round(t_cold, 1),
            "warm": round(t_warm, 2),
            "cold_90pct": round(t_part, 1),
            "after_adding_10pct": round(t_grow, 1),
        },
        "cpus": os.cpu_count(),
    }
    print(json.dumps(out, indent=1))

    sample_path = HERE / "group_pairs.json"
    if not sample_path.exists():
        rng = random.Random(13)
        grouped = table[table["group_size"] > 1]
        rel_of = dict(zip(table["path"], table["path"].map(lambda p: str(Path(p).relative_to(a.data)))))
        members = grouped.groupby("group")["path"].apply(sorted)
        pairs = sorted({tuple(sorted(p)) for g in members for p in itertools.combinations(g, 2)})
        picked = rng.sample(pairs, min(a.sample, len(pairs)))
        sample_path.write_text(
            json.dumps(
                {
                    "data": "facemask-12k",
                    "drawn": "uniformly among all pairs of images grouped together (seed 13)",
                    "pairs": [{"a": rel_of[x], "b": rel_of[y], "verdict": None} for x, y in picked],
                },
                indent=1,
            )
        )
        print(f"wrote {sample_path}: {len(picked)} pairs to judge (benchmarks/group_sheets.py)")


if __name__ == "__main__":
    main()
