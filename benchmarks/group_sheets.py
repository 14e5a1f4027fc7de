"""Contact sheets of the precision sample (benchmarks/group_pairs.json): each pair of images that the
near-duplicate finder put in one group, side by side and numbered, to judge by eye whether they are copies
of one photo. Prints the verdicts recorded in the file ("copy" or "different"). `--file group_lifted.json`
draws the pairs joined by the second look (aligned thumbnails) instead, with their correlation; `--file
group_merged.json` the links that joined groups when that look began to allow stretched and zoomed copies.

    python benchmarks/group_sheets.py [--data ../shared/datasets/facemask-12k] [--out /tmp/group-sheets]
        [--file group_pairs.json]
"""

import argparse
import json
from pathlib import Path

from PIL import Image, ImageDraw, ImageOps

HERE = Path(__file__).resolve().parent
SIDE, PER_ROW, PER_SHEET = 96, 5, 40


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "datasets" / "facemask-12k")
    ap.add_argument("--out", type=Path, default=Path("/tmp/group-sheets"))
    ap.add_argument("--file", default="group_pairs.json", help="a sample in benchmarks/")
    a = ap.parse_args()
    pairs = json.loads((HERE / a.file).read_text())["pairs"]
    a.out.mkdir(parents=True, exist_ok=True)
    cell_w, cell_h = 2 * SIDE + 12, SIDE + 16
    for s in range(0, len(pairs), PER_SHEET):
        part = pairs[s : s + PER_SHEET]
        rows = (len(part) + PER_ROW - 1) // PER_ROW
        sheet = Image.new("RGB", (PER_ROW * cell_w, rows * cell_h), "white")
        draw = ImageDraw.Draw(sheet)
        for k, p in enumerate(part):
            x, y = (k % PER_ROW) * cell_w, (k // PER_ROW) * cell_h
            for dx, name in ((0, p["a"]), (SIDE, p["b"])):
                img = ImageOps.exif_transpose(Image.open(a.data / name)).convert("RGB").resize((SIDE, SIDE))
                sheet.paste(img, (x + dx, y))
            score = f"  {p['aligned_correlation']:.3f}" if "aligned_correlation" in p else ""
            draw.text((x + 2, y + SIDE + 2), f"#{s + k}  {p.get('verdict') or ''}{score}", fill="black")
        sheet.save(a.out / f"pairs-{s:03d}.png")
    verdicts = [p.get("verdict") for p in pairs]
    print(
        f"{len(pairs)} pairs; sheets in {a.out}; copy {verdicts.count('copy')}, "
        f"different {verdicts.count('different')}, not judged {verdicts.count(None)}"
    )


if __name__ == "__main__":
    main()
