"""A YOLO set whose train split holds a class in few of its images: round 55's sets.

    python benchmarks/crowded_slides.py SLIDES --grid 1 --train 900 --test 100
    python benchmarks/image_rare_class.py SLIDES OUT --holding 15 --first 100

OUT's train split is ``--images`` images of SRC's (300 by default): ``--holding`` of
those that hold ``--name`` (a class of ``classes.txt``; ``platelet`` by default), from
the ``--first``-th of them on in file order, and the rest from those that do not, in file
order. The test split is SRC's, whole. So the class is as common in the test images as
ever, and in the training images only in the share asked for: what repeat-factor
sampling (``train --repeat-threshold``) is for. Round 55 of ``recipe_ab.md`` trained on
``--holding 30`` (10 %, the first 30) and ``--holding 15 --first 100`` (5 %).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path, help="a YOLO set with train and test splits")
    parser.add_argument("out", type=Path)
    parser.add_argument("--name", default="platelet", help="the class made rare (default platelet)")
    parser.add_argument("--images", type=int, default=300, help="training images (default 300)")
    parser.add_argument("--holding", type=int, required=True, help="of them, those holding it")
    parser.add_argument("--first", type=int, default=0, help="the first holding image taken")
    args = parser.parse_args()
    names = (args.src / "classes.txt").read_text().split()
    label = str(names.index(args.name))
    files = sorted((args.src / "labels" / "train").glob("*.txt"))
    holding = [
        f for f in files if any(line.split()[:1] == [label] for line in f.read_text().splitlines())
    ]
    held = set(holding)
    others = [f for f in files if f not in held]
    chosen = others[: args.images - args.holding] + holding[args.first : args.first + args.holding]
    if len(chosen) != args.images:
        raise SystemExit(f"{args.src} has too few images for {args.images} ({len(chosen)} found)")
    copy_split(args.src, args.out, "train", chosen)
    copy_split(args.src, args.out, "test", sorted((args.src / "labels" / "test").glob("*.txt")))
    shutil.copy(args.src / "classes.txt", args.out / "classes.txt")
    print(f"-> {args.out}: {args.holding} of {args.images} training images hold {args.name!r}")


def copy_split(src: Path, out: Path, split: str, labels: list[Path]) -> None:
    """Copy each label file of ``labels`` and its ``.jpg`` image into ``out``'s ``split``."""
    for kind in ("images", "labels"):
        (out / kind / split).mkdir(parents=True, exist_ok=True)
    for path in labels:
        shutil.copy(path, out / "labels" / split / path.name)
        image = f"{path.stem}.jpg"
        shutil.copy(src / "images" / split / image, out / "images" / split / image)


if __name__ == "__main__":
    main()
