"""Study a grouping rule on facemask-12k in seconds: the evidence of every candidate pair is gathered once,
then rules (how many look-alikes, where the second look starts, its thresholds) are replayed from it.

    python benchmarks/group_rules.py dump [--data ../shared/datasets/facemask-12k] [--neighbours 24]
    python benchmarks/group_rules.py replay

`dump` (about 4 min here, 2 cores) scans the folder (cached), takes each image's `--neighbours` nearest
look-alikes (maskdet.look_alikes.candidate_pairs) and keeps for each pair its inliers before the second look and,
from 6 inliers up, its aligned correlation (maskdet.photo_match.evidence_many), in /tmp/group-evidence.pkl.
`replay` prints, per rule, the share of the pairs inside the `Augmented_<id>` families grouped together
(recall), the families on both sides of the split, the largest group and split unit. The first row is the
rule of maskdet.groups as it stands (two passes, VERSION 4; the replay reproduces bench_groups.py's 98.32% /
0.78%), the others one pass over the look-alikes (VERSION 3) and its neighbours.
"""

import argparse
import os
import pickle
import re
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from maskdet import config, dataset, groups, look_alikes, photo_match as pm  # noqa: E402
from maskdet.images import open_image  # noqa: E402

EVIDENCE = Path("/tmp/group-evidence.pkl")
LOWEST = 6  # the lowest inlier count whose aligned correlation is kept


def dump(data: Path, neighbours: int) -> None:
    table = dataset.scan(data)
    good = table[table["error"].isna()]
    unique, first = np.unique(good["hash"].to_numpy(), return_index=True)
    signatures = np.stack(good["signature"].to_numpy())[first]
    paths = good["path"].to_numpy()[first]
    pairs = look_alikes.candidate_pairs(signatures, unique, k=neighbours)
    pm.prepare()
    features = {i: pm.keypoints(open_image(paths[i])) for i in range(len(unique))}

    def work(chunk):
        return pm.evidence_many([(features[i], features[j]) for i, j in chunk], align_from=LOWEST)

    chunks = [pairs[k : k + pm.CHUNK] for k in range(0, len(pairs), pm.CHUNK)]
    with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
        found = [e for part in pool.map(work, chunks) for e in part]
    inliers = np.array([n for n, _ in found])
    ncc = np.array([-2.0 if c is None else c for _, c in found])
    similarity = (signatures[pairs[:, 0]] * signatures[pairs[:, 1]]).sum(axis=1)
    evidence = {"data": str(data), "unique": unique, "signatures": signatures, "pairs": pairs}
    evidence.update(inliers=inliers, ncc=ncc, similarity=similarity, rows=good[["path", "hash"]])
    evidence["greys"] = look_alikes.grey_thumbnails([features[i][4] for i in range(len(unique))])
    with open(EVIDENCE, "wb") as f:
        pickle.dump(evidence, f)
    print(f"{len(pairs)} pairs of {len(unique)} images -> {EVIDENCE}")


def components(n: int, links: np.ndarray) -> np.ndarray:
    """The component of each of n images, joined by `links` (maskdet.groups' union-find)."""
    c = groups._Components(n)
    for i, j in links:
        c.union(i, j)
    return np.array([c.find(i) for i in range(n)])


def replay() -> None:
    e = pickle.load(open(EVIDENCE, "rb"))
    unique, pairs, inl, ncc = e["unique"], e["pairs"], e["inliers"], e["ncc"]
    n = len(unique)
    row_image = pd.Series(np.arange(n), index=unique)[e["rows"]["hash"]].to_numpy()
    family = e["rows"]["path"].map(lambda p: (m := re.search(r"Augmented_(\d+)_", Path(p).name)) and m.group(1))
    in_family = family.notna().to_numpy()
    fam, img = family[in_family].to_numpy(), row_image[in_family]
    code = pairs[:, 0] * n + pairs[:, 1]

    def among(k):  # the pairs that k look-alikes give
        p = look_alikes.candidate_pairs(e["signatures"], unique, k=k)
        return np.isin(code, p[:, 0] * n + p[:, 1])

    def report(name, group_links, unit_links):
        g = components(n, pairs[group_links])
        u = components(n, pairs[group_links | unit_links])
        df = pd.DataFrame({"f": fam, "g": g[img]})
        total = df.groupby("f").size()
        same = df.groupby(["f", "g"]).size()
        recall = (same * (same - 1) // 2).sum() / (total * (total - 1) // 2).sum()
        unit_name = pd.Series(unique).groupby(u).transform("min").to_numpy()
        side = groups.split_of_groups(pd.Series(unit_name[img]), config.DEFAULT_VAL_FRACTION).to_numpy()
        straddle = (pd.DataFrame({"f": fam, "s": side}).groupby("f")["s"].nunique() > 1).mean()
        print(
            f"{name:62s} {recall:7.2%} {straddle:7.2%} {np.bincount(g).max():5d} {np.bincount(u).max():5d} "
            f"{int(group_links.sum()):7d}"
        )

    def rule(k, align_from, one_photo, one_side):
        m = among(k)
        lifted = (inl >= align_from) & (ncc >= one_photo)
        near = (inl >= align_from) & (ncc >= one_side) if one_side else np.zeros_like(m)
        return ((inl >= pm.MIN_INLIERS) | lifted) & m, ((inl >= pm.SPLIT_INLIERS) | near) & m

    def two_passes(align_from, one_photo, one_side):  # maskdet.groups as it stands (VERSION 4)
        first, second = look_alikes.first_pass_pairs(e["signatures"], e["greys"], unique)
        at = pd.Series(np.arange(len(code)), index=code)
        f, s = at[first[:, 0] * n + first[:, 1]].to_numpy(), at[second[:, 0] * n + second[:, 1]].to_numpy()
        lifted = (inl >= align_from) & (ncc >= one_photo)
        join = (inl >= pm.MIN_INLIERS) | lifted
        unit = (inl >= pm.SPLIT_INLIERS) | ((inl >= align_from) & (ncc >= one_side))
        g1 = components(n, pairs[f[join[f]]])
        copied = np.bincount(g1, minlength=n)[g1] > 1
        used = np.zeros(len(code), bool)
        used[f] = True
        used[s[copied[pairs[s, 0]] | copied[pairs[s, 1]]]] = True
        return join & used, unit & used

    print(f"{'rule':62s} {'recall':>7s} {'straddle':>8s} {'group':>5s} {'unit':>5s} {'links':>7s}")
    here = (look_alikes.NEIGHBOURS, pm.ALIGN_FROM, pm.ALIGN_NCC, pm.ALIGN_SPLIT_NCC)
    if "greys" in e:
        report(f"maskdet.groups now: two passes, second look from {here[1]}", *two_passes(*here[1:]))
    report(f"one pass: {here[0]} look-alikes, second look from {here[1]}", *rule(*here))
    for k in (6, 8, 10, 16, 24):
        report(f"{k} look-alikes", *rule(k, *here[1:]))
    for align_from in (6, 12):
        report(f"second look from {align_from} inliers", *rule(here[0], align_from, *here[2:]))
    for one_photo in (0.96, 0.985):
        report(f"one photo at an aligned correlation >= {one_photo}", *rule(here[0], here[1], one_photo, here[3]))
    report("no near-miss rule for the split", *rule(*here[:3], None))


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["dump", "replay"])
    ap.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "datasets" / "facemask-12k")
    ap.add_argument("--neighbours", type=int, default=24)
    a = ap.parse_args()
    dump(a.data, a.neighbours) if a.what == "dump" else replay()
