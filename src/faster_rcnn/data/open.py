"""Open a dataset by path, telling its format from the files it holds."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .coco import COCODetection
from .dataset import DetectionDataset
from .synthetic import SyntheticShapes
from .voc import VOCDetection
from .yolo import YOLODetection

# Generated images: validation and test share a seed, training has its own.
SYNTHETIC_SEEDS = {"train": 0, "val": 1, "test": 1}
SYNTHETIC_SIZES = {"train": 2000, "val": 200, "test": 200}


def open_dataset(
    path: str | Path, split: str = "train", class_names: Sequence[str] | None = None
) -> DetectionDataset:
    """The ``split`` of the dataset at ``path``, in whichever format it is.

    - ``"synthetic"`` or ``"synthetic:N"``: :class:`SyntheticShapes` of ``N`` images
      (default 2000 for ``train``, 200 otherwise), seed 0 for ``train`` and 1 for ``val``
      and ``test``.
    - a folder with ``Annotations/`` and ``ImageSets/``: Pascal VOC
      (:class:`VOCDetection`), ``split`` naming ``ImageSets/Main/<split>.txt``.
    - a folder with ``annotations/*.json``: COCO. The only json file, or else the one
      named ``instances_<split>*.json``; images in the first folder found of
      ``<split>/``, ``<json name without instances_>/`` (``val2017/``) and ``images/``.
    - a ``.json`` file: COCO, that file; images looked for as above next to its
      ``annotations/`` folder (or next to the file), else in the file's own folder.
    - a folder with ``labels/``: YOLO (:class:`YOLODetection`), with ``images/<split>/``
      or, for ``train`` only, ``images/`` holding the files directly.

    Args:
        path: what to open.
        split: which part of it.
        class_names: for VOC, the class order to use (pass the training classes when
            opening another split); for the other formats, checked against theirs.

    Raises:
        FileNotFoundError: ``path``, a file it needs or any of its images does not exist.
        ValueError: the format cannot be told, or ``class_names`` do not match.
    """
    text = str(path)
    if text == "synthetic" or text.startswith("synthetic:"):
        dataset: DetectionDataset = _open_synthetic(text, split)
    else:
        root = Path(path)
        if not root.exists():
            raise FileNotFoundError(f"dataset path {root} does not exist")
        if root.is_file() and root.suffix == ".json":
            dataset = _open_coco_file(root, split)
        elif (root / "Annotations").is_dir() and (root / "ImageSets").is_dir():
            dataset = VOCDetection(root, split, class_names=class_names)
        elif sorted((root / "annotations").glob("*.json")):
            dataset = _open_coco_folder(root, split)
        elif (root / "labels").is_dir():
            dataset = _open_yolo(root, split)
        else:
            raise ValueError(
                f"cannot tell the dataset format of {root}: looked for Annotations/ and "
                "ImageSets/ (Pascal VOC), a .json file or annotations/*.json (COCO), "
                "labels/ (YOLO), or the name 'synthetic[:N]'"
            )
    check_image_files(dataset)
    if class_names is not None and tuple(class_names) != dataset.class_names:
        raise ValueError(
            f"{path} ({split}) has classes {list(dataset.class_names)}, expected "
            f"{list(class_names)}"
        )
    return dataset


def _open_synthetic(text: str, split: str) -> SyntheticShapes:
    if split not in SYNTHETIC_SEEDS:
        raise ValueError(f"synthetic data has splits {list(SYNTHETIC_SEEDS)}, not {split!r}")
    count = text.partition(":")[2]
    if count and (not count.isdigit() or int(count) == 0):
        raise ValueError(f"{text!r}: the number of images must be a positive integer")
    size = int(count) if count else SYNTHETIC_SIZES[split]
    return SyntheticShapes(size, seed=SYNTHETIC_SEEDS[split])


def _open_coco_folder(root: Path, split: str) -> COCODetection:
    files = sorted((root / "annotations").glob("*.json"))
    if len(files) > 1:
        files = [f for f in files if f.name.startswith(f"instances_{split}")]
        if len(files) != 1:
            names = [f.name for f in sorted((root / "annotations").glob("*.json"))]
            raise ValueError(
                f"{root / 'annotations'}: expected one file instances_{split}*.json among "
                f"{names}, found {len(files)}"
            )
    candidates = _coco_image_folders(root, split, files[0])
    images_dir = next((folder for folder in candidates if folder.is_dir()), None)
    if images_dir is None:
        raise FileNotFoundError(
            f"no images folder for {files[0]}: looked for {[str(c) for c in candidates]}"
        )
    return COCODetection(images_dir, files[0])


def _open_coco_file(file: Path, split: str) -> COCODetection:
    root = file.parent.parent if file.parent.name == "annotations" else file.parent
    candidates = _coco_image_folders(root, split, file)
    images_dir = next((folder for folder in candidates if folder.is_dir()), file.parent)
    return COCODetection(images_dir, file)


def _coco_image_folders(root: Path, split: str, annotation_file: Path) -> list[Path]:
    """Where the images of ``annotation_file`` may be, most specific first."""
    stem = annotation_file.stem.removeprefix("instances_")
    return [root / split, root / stem, root / "images"]


def _open_yolo(root: Path, split: str) -> YOLODetection:
    images = root / "images"
    if (images / split).is_dir():
        return YOLODetection(root, split)
    if images.is_dir() and split == "train" and not any(p.is_dir() for p in images.iterdir()):
        return YOLODetection(root)
    raise FileNotFoundError(
        f"YOLO dataset {root} has no images/{split}/ folder (images/ holding the files "
        "directly counts as the 'train' split)"
    )


def check_image_files(dataset: object, shown: int = 5) -> None:
    """Every image file of a reader exists (a ``stat`` each): all the missing ones are
    reported at once, before training or evaluation finds them one by one.

    Raises:
        FileNotFoundError: naming how many are missing and the first ``shown``.
    """
    files = getattr(dataset, "image_files", None)
    if files is None:
        return
    missing = [str(path) for path in files if not path.is_file()]
    if missing:
        more = f" and {len(missing) - shown} more" if len(missing) > shown else ""
        raise FileNotFoundError(
            f"{len(missing)} of {len(files)} image files are missing: "
            f"{', '.join(missing[:shown])}{more}"
        )
