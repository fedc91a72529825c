"""Pascal VOC detection reader.

Layout under ``root``::

    ImageSets/Main/<split>.txt    one image id per line
    Annotations/<id>.xml          <size>, and one <object> per box
    JPEGImages/<id>.jpg           or <id> with another image suffix (.png, .JPG, ...)

The id decides both file names, as in the VOC tools: the XML ``<filename>`` field is
ignored, since real datasets get it wrong. Suffixes are read in any case (``train.TXT``,
``<id>.XML``), as files copied from Windows may have them; the folder names are VOC's.

Coordinates: VOC boxes are 1-based, inclusive pixel indices (``xmin = 1, xmax = W`` is
the whole width). They become continuous pixel coordinates as in detectron2:
``x1 = xmin - 1, y1 = ymin - 1, x2 = xmax, y2 = ymax``, then are clipped to the image;
boxes left without area are dropped (see :mod:`.box_audit`), and so are boxes whose
corners are reversed (``xmax < xmin`` or ``ymax < ymin``), as the COCO reader drops a
negative width.

Image sizes: each image file's header is read when the dataset is opened. When
``<size>`` is the image's size turned by 90 degrees and the file has an EXIF orientation
that turns it so, the image is turned on reading (the annotation was drawn on the turned
image); when ``<size>`` disagrees otherwise, the file's size is taken. Either is reported
in a warning.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as ElementTree
import torch
from torch import Tensor

from .box_audit import BoxAudit
from .dataset import (
    IMAGE_SUFFIXES,
    ImageFileDataset,
    Target,
    as_on_disk,
    boxes_tensor,
    empty_split_error,
    files_with_suffix,
    image_files_in,
    image_sizes,
    read_image,
    read_text,
)

_BOX_FIELDS = ("xmin", "ymin", "xmax", "ymax")


@dataclass(frozen=True)
class _VOCObject:
    name: str
    box: list[float]  # converted x1, y1, x2, y2
    difficult: bool


@dataclass(frozen=True)
class VOCRecord:
    image_id: str  # the annotation file's stem
    objects: list[_VOCObject]
    size: tuple[int, int] | None  # (height, width) from <size>, None when absent or 0
    filename: str | None  # <filename>, the image file the annotation names


class VOCDetection(ImageFileDataset):
    """Images and boxes of one split of a Pascal VOC style dataset.

    All annotations of the split are parsed on construction, so a malformed file is
    reported at once rather than in the middle of training.

    Args:
        root: the folder holding ``Annotations/``, ``ImageSets/`` and ``JPEGImages/``.
        split: name of the id list ``ImageSets/Main/<split>.txt``.
        class_names: class of label ``i + 1`` is ``class_names[i]``. Default: the sorted
            names found in this split; pass the training split's ``class_names`` to other
            splits so that labels agree even when a split lacks a class.
        keep_difficult: keep objects marked ``<difficult>1</difficult>`` (flagged in
            ``target["difficult"]``); when False they are dropped.
        is_split: False where the list holds all the dataset's images, no split's (CVAT's
            ``default.txt``, its export without subsets): an empty one is then "the
            dataset" in the error, not "the default split".

    ``dataset[i]`` is ``(image float32[3, H, W] in 0..1, target)`` with target
    ``{"boxes": float32[N, 4], "labels": int64[N], "difficult": bool[N], "image_id": i}``.

    Attributes:
        box_audit: the boxes clipped to their image or dropped (warned about on opening).

    Raises:
        FileNotFoundError: a missing split file, annotation or image, named.
        ValueError: an empty split file, malformed XML (naming the file and the object's
            index among its ``<object>`` elements) or an unknown class.
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        class_names: Sequence[str] | None = None,
        keep_difficult: bool = True,
        *,
        is_split: bool = True,
    ) -> None:
        self.root = Path(root)
        self.split = split
        ids = _read_split(self.root, split, is_split)
        annotation_files = as_on_disk([self.root / "Annotations" / f"{i}.xml" for i in ids])
        records = [parse_annotation(path) for path in annotation_files]
        image_files = _image_files(self.root / "JPEGImages", ids, split)
        source = f"{self.root} ({split})"
        self._load(records, annotation_files, image_files, source, class_names, keep_difficult)

    def _load(
        self,
        records: list[VOCRecord],
        annotation_files: list[Path],
        image_files: list[Path],
        source: str,
        class_names: Sequence[str] | None,
        keep_difficult: bool,
    ) -> None:
        """Take the parsed annotations of ``annotation_files`` and their images, in this
        order; ``source`` names the dataset in warnings."""
        self.keep_difficult = keep_difficult
        self.annotation_files = annotation_files
        self.ids = tuple(path.stem for path in annotation_files)
        self.image_files = image_files
        found = sorted({obj.name for record in records for obj in record.objects})
        self.class_names: tuple[str, ...] = (
            tuple(found) if class_names is None else tuple(class_names)
        )
        self._label_of = {name: i + 1 for i, name in enumerate(self.class_names)}
        for path, record in zip(annotation_files, records, strict=True):
            for j, obj in enumerate(record.objects):
                if obj.name not in self._label_of:
                    raise ValueError(
                        f"{path}: object {j} has class {obj.name!r}, not one of "
                        f"{list(self.class_names)}"
                    )
        names = [record.image_id for record in records]
        sizes = image_sizes([r.size for r in records], self.image_files, names, source, "<size>")
        self._sizes, self._turned = sizes.sizes, sizes.turned
        self.box_audit = BoxAudit()
        self._records = [
            self._clipped(record, size) for record, size in zip(records, self._sizes, strict=True)
        ]
        self.box_audit.warn(source)

    def target(self, index: int) -> Target:
        """The target of image ``index``, without decoding the image."""
        self._check_index(index)
        objects = [
            o for o in self._records[index].objects if self.keep_difficult or not o.difficult
        ]
        return {
            "boxes": boxes_tensor([o.box for o in objects]),
            "labels": torch.tensor([self._label_of[o.name] for o in objects], dtype=torch.int64),
            "difficult": torch.tensor([o.difficult for o in objects], dtype=torch.bool),
            "image_id": index,
        }

    def _annotated_size(self, index: int) -> tuple[int, int] | None:
        """``(height, width)`` of the image as read (see :func:`~.dataset.image_sizes`); None when
        neither its file nor its ``<size>`` tells."""
        return self._sizes[index]

    def _read_image(self, index: int) -> Tensor:
        return read_image(self.image_path(index), exif_transpose=index in self._turned)

    def _clipped(self, record: VOCRecord, size: tuple[int, int] | None) -> VOCRecord:
        """``record`` with its boxes clipped to the ``(height, width)`` image and those
        left without area dropped (all kept when the size is unknown)."""
        if size is None:
            return record
        height, width = size
        objects = []
        for j, obj in enumerate(record.objects):
            where = f"{record.image_id}.xml object {j}"
            box = self.box_audit.clip(obj.box, width, height, where)
            if box is not None:
                objects.append(_VOCObject(obj.name, box, obj.difficult))
        return VOCRecord(record.image_id, objects, size, record.filename)


def _image_files(folder: Path, ids: Sequence[str], split: str) -> list[Path]:
    """The image of each id: ``<id>.jpg`` in ``folder``, as the VOC tools have it, else
    the file of that stem with another image suffix (CVAT's VOC export keeps each image's
    own: ``.png``, ``.JPG``).

    Raises:
        FileNotFoundError: an id without an image, naming what was looked for where.
    """
    others: dict[str, Path] | None = None  # stem -> file, listed once if ever needed
    files = []
    for image_id in ids:
        path = folder / f"{image_id}.jpg"
        if not path.is_file():
            if others is None:
                others = _files_by_stem(folder)
            if image_id not in others:
                raise FileNotFoundError(
                    f"no image for id {image_id!r} of split {split!r}: looked for "
                    f"{folder / image_id}{{{','.join(IMAGE_SUFFIXES)}}}"
                )
            path = others[image_id]
        files.append(path)
    return files


def _files_by_stem(folder: Path) -> dict[str, Path]:
    """The image files in ``folder`` by stem (the first in name order where several
    share one)."""
    by_stem: dict[str, Path] = {}
    for path in image_files_in(folder) if folder.is_dir() else []:
        by_stem.setdefault(path.stem, path)
    return by_stem


def split_list(root: Path, split: str) -> Path:
    """The image list ``ImageSets/Main/<split>.txt`` of the VOC dataset ``root``, as it is
    on disk (``train.TXT``: :func:`as_on_disk`)."""
    return as_on_disk([root / "ImageSets" / "Main" / f"{split}.txt"])[0]


def _read_split(root: Path, split: str, is_split: bool) -> tuple[str, ...]:
    """The image ids listed in ``ImageSets/Main/<split>.txt``, one a line: the whole line,
    since ids may hold spaces (CVAT names them after the image files), as torchvision's
    ``VOCDetection`` reads them. ``is_split``: whether the list is a split's, not all the
    dataset's images (for the error of an empty one).

    Raises:
        FileNotFoundError: the list is not there, naming the lists that are.
        ValueError: it lists no image (:func:`empty_split_error`).
    """
    split_file = split_list(root, split)
    if not split_file.is_file():
        available = sorted(p.stem for p in files_with_suffix(split_file.parent, ".txt"))
        raise FileNotFoundError(
            f"VOC split file {split_file} does not exist (splits found: {available})"
        )
    lines = read_text(split_file).splitlines()
    ids = tuple(line.strip() for line in lines if line.strip())
    if not ids:
        raise empty_split_error(split_file, split if is_split else None)
    return ids


def parse_annotation(path: Path) -> VOCRecord:
    """Read one VOC XML file; every problem is reported with the file's path."""
    if not path.is_file():
        raise FileNotFoundError(f"annotation file {path} does not exist")
    try:
        root = ElementTree.parse(path).getroot()
    except ParseError as error:
        raise ValueError(f"{path}: malformed XML ({error})") from error
    if root.tag != "annotation":
        # Another XML (CVAT's <annotations>, a namespaced <{uri}annotation>) would be read
        # as an image without objects: none of its elements has the names looked for.
        raise ValueError(
            f"{path}: not a Pascal VOC annotation: its root element is <{root.tag}>, "
            "not <annotation>"
        )
    width = _number(root, "size/width", path, "<size>")
    height = _number(root, "size/height", path, "<size>")
    size = (int(height), int(width)) if width and height else None
    objects = [_parse_object(element, j, path) for j, element in enumerate(root.iter("object"))]
    filename = (root.findtext("filename") or "").strip() or None
    return VOCRecord(image_id=path.stem, objects=objects, size=size, filename=filename)


def _parse_object(element: Element, index: int, path: Path) -> _VOCObject:
    where = f"object {index}"
    name = (element.findtext("name") or "").strip()
    if not name:
        raise ValueError(f"{path}: {where} has no <name>")
    difficult_text = (element.findtext("difficult") or "0").strip()
    if difficult_text not in ("0", "1"):
        raise ValueError(f"{path}: {where} has <difficult>{difficult_text}</difficult>")
    raw = []
    for field in _BOX_FIELDS:
        value = _number(element, f"bndbox/{field}", path, where)
        if value is None:
            raise ValueError(f"{path}: {where} ({name!r}) has no <bndbox>/<{field}>")
        raw.append(value)
    xmin, ymin, xmax, ymax = raw
    # A box with xmax < xmin (or ymax < ymin) is kept as read: the reader drops it, as it
    # drops every box without area, and says so (BoxAudit).
    box = [xmin - 1.0, ymin - 1.0, xmax, ymax]
    return _VOCObject(name=name, box=box, difficult=difficult_text == "1")


def _number(element: Element, field: str, path: Path, where: str) -> float | None:
    """The finite number in ``element``'s sub-element ``field``, None when it is absent."""
    text = element.findtext(field)
    if text is None or not text.strip():
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ValueError(f"{path}: {where}: <{field}> is {text.strip()!r}, not a number")
    return value
