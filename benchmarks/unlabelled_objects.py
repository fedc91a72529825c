"""A copy of a YOLO-layout dataset in which a share of one class's objects lose their labels.

    python benchmarks/unlabelled_objects.py SRC OUT [--class-index 0] [--share 0.25]
        [--seed 0]

Real datasets often leave objects of a crowded class unlabelled (a clump of cells, the
far members of a crowd), in training and test alike. The copy keeps SRC's images (a
symbolic link) and ``classes.txt``; in every split each label of class ``--class-index``
is dropped with probability ``--share``, drawn from ``--seed`` in turn over the training
split's files and then the others', so the same command writes the same set.
``recipe_ab.md`` (round 24) scores the detections' selection on such a set.
"""

from __future__ import annotations

import argparse
import random
import shutil
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--class-index", type=int, default=0)
    parser.add_argument("--share", type=float, default=0.25)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.out.mkdir(parents=True)
    shutil.copy(args.src / "classes.txt", args.out / "classes.txt")
    (args.out / "images").symlink_to((args.src / "images").resolve())
    rng = random.Random(args.seed)
    kept = dropped = 0
    for src in _label_files(args.src / "labels"):
        lines = src.read_text().splitlines()
        keep = [
            line
            for line in lines
            if int(line.split()[0]) != args.class_index or rng.random() >= args.share
        ]
        kept, dropped = kept + len(keep), dropped + len(lines) - len(keep)
        out = args.out / src.relative_to(args.src)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("".join(f"{line}\n" for line in keep))
    print(f"{args.out}: {kept} labels kept, {dropped} of class {args.class_index} dropped")


def _label_files(labels: Path) -> list[Path]:
    """The label files, the training split's first, then the other splits by name."""
    splits = sorted(path for path in labels.iterdir() if path.is_dir())
    splits.sort(key=lambda split: split.name != "train")
    return [path for split in splits for path in sorted(split.glob("*.txt"))]


if __name__ == "__main__":
    main()
