"""Raccoon with a validation split, to measure what training on ``train`` and ``val``
together buys (``benchmarks/recipe_ab.md``, round 10).

    python benchmarks/raccoon_with_val.py OUT [--raccoon ../shared/data/raccoon]

Writes a Pascal VOC layout at ``OUT``: ``JPEGImages/`` and ``Annotations/`` linked to
raccoon's, its 40 test images as ``test``, and its 160 training images split into
``train`` (112) and ``val`` (48, drawn with ``random.Random(0)``), ``trainval`` all 160.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

VAL_IMAGES = 48


def read_ids(path: Path) -> list[str]:
    return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]


def write_ids(path: Path, ids: list[str]) -> None:
    path.write_text("".join(f"{i}\n" for i in ids))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--raccoon", type=Path, default=Path("../shared/data/raccoon"))
    args = parser.parse_args()
    source = args.raccoon.resolve()
    lists = args.out / "ImageSets" / "Main"
    lists.mkdir(parents=True, exist_ok=True)
    for folder in ("JPEGImages", "Annotations"):
        link = args.out / folder
        if not link.exists():
            link.symlink_to(source / folder)
    train = read_ids(source / "ImageSets" / "Main" / "train.txt")
    val = set(random.Random(0).sample(train, VAL_IMAGES))
    write_ids(lists / "train.txt", [i for i in train if i not in val])
    write_ids(lists / "val.txt", [i for i in train if i in val])
    write_ids(lists / "trainval.txt", train)
    write_ids(lists / "test.txt", read_ids(source / "ImageSets" / "Main" / "test.txt"))
    print(f"wrote {args.out}: {len(train) - len(val)} train, {len(val)} val images")


if __name__ == "__main__":
    main()
