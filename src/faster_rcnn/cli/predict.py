"""``faster-rcnn predict``: detections of image files as COCO-style JSON and pictures.

An unreadable image is skipped with a one-line warning naming it: the others are still
detected and written, and the exit status is 1.
"""

from __future__ import annotations

import argparse
import json
import os
import warnings
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import Tensor

from ..data.dataset import IMAGE_SUFFIXES, read_image
from ..insight.draw import save_pictures
from ..train.checkpoint import load_model
from .arguments import device_name, probability


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        "predict", help="detect objects in images: COCO-style JSON and annotated PNGs"
    )
    parser.add_argument("--model", type=Path, required=True, help="a model.safetensors")
    parser.add_argument("inputs", nargs="+", type=Path, help="image files or folders")
    parser.add_argument("--out", type=Path, default=Path("runs/predict"))
    parser.add_argument("--score", type=probability, default=0.5, help="drawing threshold")
    parser.add_argument("--device", type=device_name, default="cpu")
    return parser


def run(args: argparse.Namespace) -> int:
    model = load_model(args.model, device=args.device)
    paths = image_paths(args.inputs)
    names = model.config.label_names()
    args.out.mkdir(parents=True, exist_ok=True)
    results: list[dict[str, Any]] = []
    unreadable = []
    for image_id, (path, name) in enumerate(zip(paths, picture_names(paths), strict=True)):
        try:
            image = read_image(path)
        except ValueError as error:  # one bad file does not cost the others
            warnings.warn(f"{error}; skipped", stacklevel=1)
            unreadable.append(path)
            continue
        detections, proposals = model.detect_with_proposals([image.to(args.device)])
        det = {k: v.cpu() for k, v in detections[0].items()}
        results += coco_records(det, image_id, path, names)
        save_pictures(image, det, proposals[0], names, args.out / name, args.score, suffix="")
    (args.out / "detections.json").write_text(json.dumps(results, indent=1) + "\n")
    skipped = f" ({len(unreadable)} unreadable, skipped)" if unreadable else ""
    print(
        f"{len(results)} detections in {len(paths) - len(unreadable)} images{skipped} "
        f"-> {args.out}/detections.json"
    )
    return 1 if unreadable else 0


def coco_records(
    detections: dict[str, Tensor], image_id: int, path: Path, class_names: Sequence[str]
) -> list[dict[str, Any]]:
    """One image's detections as COCO results (``bbox`` as x, y, width, height)."""
    return [
        {
            "image_id": image_id,
            "file_name": str(path),
            "category_id": label,
            "category_name": class_names[label - 1],
            "bbox": [round(v, 2) for v in (x1, y1, x2 - x1, y2 - y1)],
            "score": round(score, 5),
        }
        for (x1, y1, x2, y2), label, score in zip(
            detections["boxes"].tolist(),
            detections["labels"].tolist(),
            detections["scores"].tolist(),
            strict=True,
        )
    ]


def picture_names(paths: Sequence[Path]) -> list[str]:
    """A distinct name for each image's pictures: its file stem where no other image has
    that stem, else its path below the images' common folder with ``/`` and ``.`` as
    ``_`` (``a/img.jpg`` and ``b/img.jpg`` -> ``a_img_jpg``, ``b_img_jpg``)."""
    stems = Counter(path.stem for path in paths)
    folders = [path.resolve().parent for path in paths]
    root = Path(os.path.commonpath(folders)) if folders else Path()
    names: list[str] = []
    for path in paths:
        name = path.stem
        if stems[name] > 1:
            name = "_".join(path.resolve().relative_to(root).parts).replace(".", "_")
        while name in names:  # the rare name that still repeats gets a number
            name += "_"
        names.append(name)
    return names


def image_paths(inputs: Sequence[Path]) -> list[Path]:
    """The image files named, and those directly inside the folders named, sorted."""
    paths: list[Path] = []
    for item in inputs:
        if item.is_dir():
            paths += sorted(p for p in item.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        elif item.is_file():
            paths.append(item)
        else:
            raise FileNotFoundError(f"no such image or folder: {item}")
    if not paths:
        raise ValueError(
            f"no images ({', '.join(IMAGE_SUFFIXES)}) in {', '.join(map(str, inputs))}"
        )
    return paths
