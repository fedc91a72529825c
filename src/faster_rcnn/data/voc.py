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
boxes left without area are dropped (see :mod:`.box_audit`). A box whose corners are
reversed (``xmax < xmin - 1`` or ``ymax < ymin - 1``: a box dragged leftwards or upwards,
saved as drawn) is read with them swapped, and counted in the same warning.

Image sizes: each image file's header is read when the dataset is opened. When
``<size>`` is the image's size turned by 90 degrees and the file has an EXIF orientation
that turns it so, the image is turned on reading (the annotation was drawn on the turned
image); when ``<size>`` disagrees otherwise, the file's size is taken. Either is reported
in a warning.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from xml.etree.ElementTree import Element

import torch
from torch import Tensor

from ..counted import counted
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
    listed_once,
    read_image_levels,
    read_text,
    warn_of_left_out,
)
from .xml_file import xml_root

_BOX_FIELDS = ("xmin", "ymin", "xmax", "ymax")


@dataclass(frozen=True)
class _VOCObject:
    name: str
    box: list[float]  # converted x1, y1, x2, y2
    difficult: bool
    swapped: bool = False  # written with xmax < xmin (or ymax < ymin): read swapped
    written: list[float] | None = None  # xmin, ymin, xmax, ymax as the file writes them


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
            splits so that labels agree even when a split lacks a class. Names that
            differ from one of them, or from another found, only in case are read as it
            (with a warning).
        keep_difficult: keep objects marked ``<difficult>1</difficult>`` (flagged in
            ``target["difficult"]``); when False they are dropped.
        is_split: False where the list holds all the dataset's images, no split's (CVAT's
            ``default.txt``, its export without subsets): an empty one is then "the
            dataset" in the error, not "the default split".

    ``dataset[i]`` is ``(image, target)``, the image as :func:`~.dataset.read_image_levels`
    decodes it (``uint8[3, H, W]`` levels of an 8-bit file), with target
    ``{"boxes": float32[N, 4], "labels": int64[N], "difficult": bool[N], "image_id": i}``.

    Attributes:
        box_audit: the boxes clipped to their image or dropped (warned about on opening).

    An id of the split file without its annotation or its image (an image deleted after
    labelling, a list written before the annotations were) is left out with a warning
    naming it: there is nothing to train on or score.

    Raises:
        FileNotFoundError: a missing split file, named.
        ValueError: a split file listing no id with both files, malformed XML (naming
            the file and the object's index among its ``<object>`` elements) or an
            unknown class.
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
        annotation_files, image_files = _listed_files(self.root, split, is_split)
        records = [parse_annotation(path) for path in annotation_files]
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
        records = _one_spelling(records, class_names, source)
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
        return read_image_levels(self.image_path(index), exif_transpose=index in self._turned)

    def _clipped(self, record: VOCRecord, size: tuple[int, int] | None) -> VOCRecord:
        """``record`` with its boxes clipped to the ``(height, width)`` image and those
        left without area dropped (all kept when the size is unknown)."""
        if size is None:
            return record
        height, width = size
        objects = []
        for j, obj in enumerate(record.objects):
            where = f"{record.image_id}.xml object {j}"
            box = audited_box(obj, width, height, where, self.box_audit)
            if box is not None:
                objects.append(_VOCObject(obj.name, box, obj.difficult))
        return VOCRecord(record.image_id, objects, size, record.filename)


def _one_spelling(
    records: list[VOCRecord], class_names: Sequence[str] | None, source: str
) -> list[VOCRecord]:
    """``records`` with the class names that differ from another only in case read as one
    spelling, with a warning: the spelling of ``class_names`` where given, else the one
    that most boxes have. A labeller's ``rbc`` among thousands of ``RBC`` is a slip, not a
    class that a model should learn from a handful of boxes (and be scored on)."""
    counts = Counter(obj.name for record in records for obj in record.objects)
    spellings = (
        list(class_names)
        if class_names is not None
        else sorted(counts, key=lambda name: (-counts[name], name))
    )
    spelling_of: dict[str, str] = {}
    for name in spellings:
        spelling_of.setdefault(name.casefold(), name)
    kept = set(class_names or ())  # a given class keeps its name, in any case
    renamed = {
        name: spelling
        for name in counts
        if name not in kept and (spelling := spelling_of.get(name.casefold(), name)) != name
    }
    if not renamed:
        return records
    read_as = "; ".join(
        f"{counted(counts[name], 'box')} of {name!r} as {spelling!r}"
        for name, spelling in renamed.items()
    )
    warnings.warn(
        f"{source}: class names that differ only in case are read as one class: {read_as}",
        stacklevel=4,
    )
    return [
        replace(
            record,
            objects=[replace(o, name=renamed.get(o.name, o.name)) for o in record.objects],
        )
        for record in records
    ]


def _listed_files(root: Path, split: str, is_split: bool) -> tuple[list[Path], list[Path]]:
    """The annotation and image files of the ids that ``ImageSets/Main/<split>.txt`` lists,
    those without either left out with a warning naming them (``is_split``: see
    :func:`_read_split`).

    Raises:
        ValueError: no id has both (:func:`empty_split_error`).
    """
    ids = _read_split(root, split, is_split)
    annotations = as_on_disk([root / "Annotations" / f"{i}.xml" for i in ids])
    images = _image_files(root / "JPEGImages", ids)
    missing = [_lacks(xml, image) for xml, image in zip(annotations, images, strict=True)]
    split_file = split_list(root, split)
    suffixes = ",".join(IMAGE_SUFFIXES)
    left_out = [f"{i} ({lacks})" for i, lacks in zip(ids, missing, strict=True) if lacks]
    why = f"not found as Annotations/<id>.xml and JPEGImages/<id>{{{suffixes}}}"
    warn_of_left_out(split_file, left_out, "id", why)
    kept = [k for k, lacks in enumerate(missing) if not lacks]
    if not kept:
        detail = f"none of its {counted(len(ids), 'id')} has both an annotation and an image"
        raise empty_split_error(split_file, split if is_split else None, detail)
    return [annotations[k] for k in kept], [images[k] for k in kept]


def _lacks(annotation: Path, image: Path | None) -> str:
    """What an id lacks of its files: ``"no annotation"``, ``"no image"``, both, or ``""``."""
    lacks = [] if annotation.is_file() else ["no annotation"]
    return ", ".join(lacks if image else [*lacks, "no image"])


def _image_files(folder: Path, ids: Sequence[str]) -> list[Path | None]:
    """The image of each id: ``<id>.jpg`` in ``folder``, as the VOC tools have it, else
    the file of that stem with another image suffix (CVAT's VOC export keeps each image's
    own: ``.png``, ``.JPG``); None where there is neither."""
    others: dict[str, Path] | None = None  # stem -> file, listed once if ever needed
    files: list[Path | None] = []
    for image_id in ids:
        path = folder / f"{image_id}.jpg"
        if not path.is_file():
            if others is None:
                others = _files_by_stem(folder)
            path = others.get(image_id)
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
    dataset's images (for the error of an empty one). An id listed more than once is
    read once, with a warning (:func:`~.dataset.listed_once`).

    Raises:
        FileNotFoundError: the list is not there, naming the lists that are.
        ValueError: it lists no image (:func:`empty_split_error`).
    """
    split_file = split_list(root, split)
    if not split_file.is_file():
        available = sorted(p.stem for p in files_with_suffix(split_file.parent, ".txt"))
        listed = ", ".join(available) or "none"
        raise FileNotFoundError(
            f"VOC split file {split_file} does not exist (splits found: {listed})"
        )
    lines = read_text(split_file).splitlines()
    ids = tuple(listed_once([line.strip() for line in lines if line.strip()], split_file, "id"))
    if not ids:
        raise empty_split_error(split_file, split if is_split else None)
    return ids


def parse_annotation(path: Path) -> VOCRecord:
    """Read one VOC XML file; every problem is reported with the file's path."""
    if not path.is_file():
        raise FileNotFoundError(f"annotation file {path} does not exist")
    root = xml_root(path)
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
    # A tool that saves a box dragged leftwards or upwards as drawn writes xmax < xmin:
    # the box between them is meant. Where xmax = xmin - 1 it is read as the box of no
    # area that VOC's inclusive indices make it, and dropped (BoxAudit).
    swapped = xmax < xmin - 1 or ymax < ymin - 1
    if xmax < xmin - 1:
        xmin, xmax = xmax, xmin
    if ymax < ymin - 1:
        ymin, ymax = ymax, ymin
    box = [xmin - 1.0, ymin - 1.0, xmax, ymax]
    difficult = difficult_text == "1"
    return _VOCObject(name, box, difficult, swapped, written=raw)


def audited_box(
    obj: _VOCObject, width: float, height: float, where: str, audit: BoxAudit
) -> list[float] | None:
    """``obj``'s box clipped to a ``width`` x ``height`` image, or None where it is left
    without area (:meth:`BoxAudit.clip`); a box read with its corners swapped is counted
    as such in ``audit``. The warnings name a box by its numbers as the file writes them,
    on the pixels VOC counts from 1 (its ``xmin`` 0 is a pixel left of the image)."""
    frame = f"on pixels 1..{width:g} x 1..{height:g}"
    if obj.swapped:
        audit.swap(obj.box, width, height, where, frame, obj.written)
    return audit.clip(obj.box, width, height, where, frame=frame, written=obj.written)


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
