"""LabelMe JSON files in a folder: what LabelMe and its derivatives (AnyLabeling,
X-AnyLabeling) write, one ``.json`` per image.

Layouts::

    <folder>/*.json, <folder>/*.jpg             each file beside its image
    <folder>/*.json, imagePath "../images/a.jpg"  the images in another folder

A file is an object of this shape (its other keys are not read)::

    {"shapes": [{"label": "cell", "points": [[x1, y1], [x2, y2]],
                 "shape_type": "rectangle", ...}, ...],
     "imagePath": "a.jpg", "imageData": null, "imageHeight": 480, "imageWidth": 640}

Its image is ``imagePath`` relative to the file (a Windows tool's ``\\`` separators read
as ``/``), else the file of that name beside it (a path from another machine), else the
one of the file's stem with an image suffix beside it. A file's ``imageData`` (the image
itself, base64-encoded, where LabelMe was set to save it) is not read: images are read
from files here, as by every reader (``predict --data``, ``evaluate`` and the skip of an
unreadable image name them by file, and decoding a copy out of each JSON would keep
megabytes of text in memory per image). A file whose image is not found is left out,
with one warning naming what was looked for (and saying so of ``imageData``); an image
beside the annotated ones that no file names is left out with a warning too (LabelMe
writes a file only for the images saved).

Each shape's box, in continuous pixels (the points of a shape are where it was clicked,
in any order):

- ``rectangle``: the extent of its points, two opposite corners (LabelMe's, dragged
  either way) or four (X-AnyLabeling's);
- ``polygon``, and the turned boxes ``oriented_rectangle`` (LabelMe) and ``rotation``
  (X-AnyLabeling): the extent of its points, as the YOLO reader reads a polygon and
  the COCO reader a segmentation;
- ``circle``: its centre and a point on it, the box the centre +- the radius;
- ``mask``: its two points, the rectangle its mask lies in;
- ``point``, ``points``, ``line`` and ``linestrip`` mark no box: they are skipped,
  counted in one warning naming the files.

A shape without ``shape_type`` is a polygon, as LabelMe reads the files written before
shapes had types. An image without shapes (or with none but those skipped) is an image
without objects. Classes are the labels found, sorted (:class:`~.class_order.InClassOrder`
renumbers a split to another's).

Images are read upright, turned by their EXIF orientation, as LabelMe shows them to be
labelled; ``imageWidth`` and ``imageHeight`` are checked against that size, the file's
used where they differ, with a warning. Boxes are clipped to it and those left without
area dropped, counted in ``box_audit`` and warned about on opening.
"""

from __future__ import annotations

import json
import math
import os
import reprlib
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import Tensor

from ..counted import counted
from .box_audit import LabelledBox, audited_targets
from .dataset import (
    IMAGE_SUFFIXES,
    TargetsReadOnOpening,
    UnreadableImageError,
    empty_split_error,
    files_with_suffix,
    first_few,
    image_files_in,
    images_beside,
    read_image_levels,
    read_text,
    read_upright_size,
    warn_of_images_left_out,
    warn_of_left_out,
    written_path,
)
from .json_start import first_key

# The keys that make a JSON file LabelMe's.
LABELME_KEYS = ("shapes", "imagePath")
# The keys of a COCO file's object, the first of which it starts with (pycocotools,
# Roboflow and CVAT write "info" or "licenses" first, Label Studio "images").
COCO_KEYS = ("info", "licenses", "images", "annotations", "categories")
# The shape types that have a box, with the points each needs at least (a circle: its
# centre and a point on it, no more).
POINTS_NEEDED = {
    "rectangle": 2,
    "polygon": 3,
    "oriented_rectangle": 4,
    "rotation": 4,
    "circle": 2,
    "mask": 2,
}
# The shape types that mark no box: skipped, with a warning.
NO_BOX_SHAPES = ("point", "points", "line", "linestrip")
SHAPE_TYPES = (*POINTS_NEEDED, *NO_BOX_SHAPES)


@dataclass(frozen=True)
class LabelMeFile:
    """One LabelMe file, checked.

    Attributes:
        path: the file.
        image_path: its ``imagePath`` as written, ``""`` where it has none.
        size: ``(height, width)`` from ``imageHeight`` and ``imageWidth``; ``None``
            where it lacks them.
        shapes: the shapes that have a box, in file order.
        skipped: per shape type that marks no box, how many it has.
        holds_image: whether its ``imageData`` holds the image (not read).
    """

    path: Path
    image_path: str
    size: tuple[int, int] | None
    shapes: list[LabelledBox]
    skipped: Counter[str]
    holds_image: bool


class LabelMeFolder(TargetsReadOnOpening):
    """The images and boxes of a folder of LabelMe JSON files (see the module).

    Args:
        folder: the folder holding the ``.json`` files (all are read, sorted by name).
        split: the split ``folder`` is (``train/``), for the error of one without
            images; ``None`` for a folder without splits.

    ``dataset[i]`` is ``(image, target)``, the image as :func:`~.dataset.read_image_levels`
    decodes it (``uint8[3, H, W]`` levels of an 8-bit file), with target
    ``{"boxes": float32[N, 4] x1 y1 x2 y2 pixels, "labels": int64[N], "image_id": i}``.

    Attributes:
        annotation_files: the ``.json`` file of each image, in item order.
        box_audit: the boxes clipped to their image or dropped (warned about on opening).

    Raises:
        ValueError: no ``.json`` file in ``folder``, or none whose image is found
            (:func:`empty_split_error`); or, in one line naming the file (and the shape),
            a file that is not JSON or not LabelMe's, or a bad shape
            (:func:`read_labelme_file`).
    """

    def __init__(self, folder: str | Path, split: str | None = None) -> None:
        self.root = Path(folder)
        files = files_with_suffix(self.root, ".json")
        if not files:
            raise ValueError(f"no .json annotation file in {self.root}")
        records = [read_labelme_file(path) for path in files]
        found = _found_images(records, self.root, split)
        records = [records[k] for k in found]
        self.annotation_files = [record.path for record in records]
        self.image_files = list(found.values())
        warn_of_images_left_out(
            images_beside(self.image_files),
            str(self.root),
            ("image has no .json and is", "images have no .json and are"),
            "an image without objects needs a .json without shapes (saved in LabelMe) to be "
            "trained on",
        )
        warn_of_skipped_shapes(records, str(self.root))
        self.class_names: tuple[str, ...] = tuple(
            sorted({shape.label for record in records for shape in record.shapes})
        )
        self._set_targets(records)

    def _set_targets(self, records: list[LabelMeFile]) -> None:
        """Each image's upright size (:func:`upright_sizes`), boxes clipped to it
        (``float32[N, 4]``) and labels, from its file's ``records``."""
        source = str(self.root)
        self._sizes = upright_sizes(records, self.image_files, source)
        label_of = {name: k + 1 for k, name in enumerate(self.class_names)}
        boxes = ([(s.where, s.box, label_of[s.label]) for s in r.shapes] for r in records)
        self.box_audit, self._boxes, self._labels = audited_targets(boxes, self._sizes, source)

    def _read_image(self, index: int) -> Tensor:
        return read_image_levels(self.image_path(index), exif_transpose=True)


def is_labelme_file(path: Path) -> bool:
    """Whether ``path`` is a JSON file of LabelMe's: an object with ``shapes`` and
    ``imagePath`` (what tells it from a COCO file, one of which may lie alone in a
    folder as LabelMe's may). A file that starts as COCO's do is told by its start
    (:func:`.first_key`), unparsed: it may be a gigabyte."""
    if first_key(path) in COCO_KEYS:
        return False
    try:
        data = json.loads(read_text(path))
    except (OSError, ValueError):  # json.JSONDecodeError is a ValueError
        return False
    return is_labelme_data(data)


def is_labelme_data(data: Any) -> bool:
    """Whether the parsed JSON ``data`` is a LabelMe file's object."""
    return isinstance(data, dict) and all(key in data for key in LABELME_KEYS)


def holds_labelme_json(folder: Path) -> bool:
    """Whether ``folder`` holds a LabelMe ``.json`` file (in any case: ``.JSON`` too),
    told by the first of them by name (:func:`is_labelme_file`): the others are read,
    and one that is not LabelMe's refused by name, when the folder is opened."""
    files = files_with_suffix(folder, ".json")
    return bool(files) and is_labelme_file(files[0])


def read_labelme_file(path: Path) -> LabelMeFile:
    """The LabelMe file ``path``, checked, its shapes read as boxes (see the module).

    Raises:
        ValueError: in one line naming the file: it is not JSON, not a LabelMe object
            (``shapes`` and ``imagePath``), ``shapes`` is not a list, ``imagePath`` is not
            a string, ``imageWidth`` or ``imageHeight`` is not a whole number above 0; or,
            naming the shape too (its index and label), a shape that is not an object,
            has no label, a ``shape_type`` LabelMe has not, points that are not ``[x,
            y]`` numbers or too few of them for its type.
    """
    data = _labelme_object(path)
    image_path = data["imagePath"] or ""
    if not isinstance(image_path, str):
        raise ValueError(f"{path}: imagePath {image_path!r} is not a file name")
    shapes, skipped = _read_shapes(data["shapes"], path)
    size = _recorded_size(data, path)
    return LabelMeFile(path, image_path, size, shapes, skipped, bool(data.get("imageData")))


def _labelme_object(path: Path) -> dict[str, Any]:
    """The object of the LabelMe file ``path``, with its ``shapes`` a list.

    Raises:
        ValueError: it is not JSON, or not such an object, naming the file.
    """
    try:
        data = json.loads(read_text(path))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid json ({error})") from None
    if not is_labelme_data(data):
        raise ValueError(f"{path}: not a LabelMe file (needs 'shapes' and 'imagePath')")
    if not isinstance(data["shapes"], list):
        raise ValueError(f"{path}: 'shapes' is {type(data['shapes']).__name__}, not a list")
    return data


def _read_shapes(shapes: list[Any], path: Path) -> tuple[list[LabelledBox], Counter[str]]:
    """The ``shapes`` of the file ``path`` that have a box, and per type how many of the
    others (points and lines) it has.

    Raises:
        ValueError: a bad shape (:func:`_shape_box`).
    """
    boxed, skipped = [], Counter[str]()
    for k, shape in enumerate(shapes):
        shape_type, box = _shape_box(shape, f"{path}, shape {k}")
        if box is None:
            skipped[shape_type] += 1
        else:
            label = shape["label"]
            boxed.append(LabelledBox(f"{path.name} shape {k} {label!r}", label, box))
    return boxed, skipped


def _shape_box(shape: Any, where: str) -> tuple[str, list[float] | None]:
    """The type of a file's ``shape`` and its box (``None`` for a type that marks none),
    checked; ``where`` names it in errors (``"<file>, shape 2"``)."""
    if not isinstance(shape, dict):
        raise ValueError(f"{where}: {type(shape).__name__}, not an object")
    label = shape.get("label")
    if not isinstance(label, str) or not label.strip():
        raise ValueError(f"{where}: label {label!r} is no class name")
    where = f"{where} {label!r}"
    shape_type = shape.get("shape_type") or "polygon"
    if shape_type not in SHAPE_TYPES:
        raise ValueError(
            f"{where}: shape_type {shape_type!r} is not one of {', '.join(SHAPE_TYPES)}"
        )
    points = _points(shape.get("points"), where)
    if shape_type in NO_BOX_SHAPES:
        return shape_type, None
    if shape_type == "circle":
        if len(points) != 2:
            raise ValueError(
                f"{where}: a circle has 2 points (its centre and one on it), not {len(points)}"
            )
        return shape_type, circle_box(points)
    if len(points) < POINTS_NEEDED[shape_type]:
        raise ValueError(
            f"{where}: a {shape_type} has {POINTS_NEEDED[shape_type]} points or more, not "
            f"{len(points)}"
        )
    return shape_type, points_extent(points)


def _points(points: Any, where: str) -> list[tuple[float, float]]:
    """A shape's ``points``, checked: a list of ``[x, y]`` finite numbers."""
    if isinstance(points, list) and all(map(_is_point, points)):
        return [(float(x), float(y)) for x, y in points]
    raise ValueError(f"{where}: points {reprlib.repr(points)} are not [[x, y], ...] numbers")


def _is_point(point: Any) -> bool:
    return (
        isinstance(point, list)
        and len(point) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in point)
        and all(math.isfinite(v) for v in point)
    )


def points_extent(points: Sequence[tuple[float, float]]) -> list[float]:
    """``x1, y1, x2, y2`` enclosing ``points`` (a rectangle's corners, in any order)."""
    xs, ys = [x for x, _ in points], [y for _, y in points]
    return [min(xs), min(ys), max(xs), max(ys)]


def circle_box(points: Sequence[tuple[float, float]]) -> list[float]:
    """``x1, y1, x2, y2`` enclosing LabelMe's circle: its centre, then a point on it."""
    (cx, cy), (px, py) = points
    radius = math.hypot(px - cx, py - cy)
    return [cx - radius, cy - radius, cx + radius, cy + radius]


def _recorded_size(data: dict[str, Any], path: Path) -> tuple[int, int] | None:
    """``(height, width)`` from a file's ``imageHeight`` and ``imageWidth``; ``None``
    where either is absent or ``null``.

    Raises:
        ValueError: one is not a whole number above 0.
    """
    sides = {name: data.get(name) for name in ("imageHeight", "imageWidth")}
    if None in sides.values():
        return None
    for name, side in sides.items():
        whole = isinstance(side, (int, float)) and not isinstance(side, bool)
        if not (whole and math.isfinite(side) and side == int(side) and side > 0):
            raise ValueError(f"{path}: {name} {side!r} is not a whole number above 0")
    return int(sides["imageHeight"]), int(sides["imageWidth"])


def upright_sizes(
    records: Sequence[LabelMeFile], image_files: Sequence[Path], source: str
) -> list[tuple[int, int] | None]:
    """Each image's ``(height, width)`` once turned by its EXIF orientation, as LabelMe
    shows it, from its file's header, checked against its file's recorded size: the
    image file's is used where they differ, with one warning naming the first few. An
    image whose header cannot be read keeps its recorded size; loading it will fail."""
    sizes: list[tuple[int, int] | None] = []
    mismatched = []
    for record, path in zip(records, image_files, strict=True):
        try:
            size = read_upright_size(path)
        except UnreadableImageError:
            sizes.append(record.size)
            continue
        if record.size not in (None, size):
            recorded = f"{record.size[1]}x{record.size[0]}"
            mismatched.append(f"{record.path.name} ({recorded}, file {size[1]}x{size[0]})")
        sizes.append(size)
    if mismatched:
        warnings.warn(
            f"{source}: {counted(len(mismatched), 'image')}: the annotated imageWidth x "
            f"imageHeight differs from the image file's, which is used ({first_few(mismatched)})",
            stacklevel=4,
        )
    return sizes


def find_image(record: LabelMeFile, by_stem: dict[str, Path]) -> Path | None:
    """The image of ``record`` (see the module), ``by_stem`` the images beside it by
    stem; ``None`` where none is there."""
    folder = record.path.parent
    if record.image_path:
        written = written_path(record.image_path)
        # ../images/a.jpg as images/a.jpg beside the folder, as the other readers name it
        beside = Path(os.path.normpath(folder / written))
        for candidate in (beside, folder / written.name):
            if candidate.is_file():
                return candidate
    return by_stem.get(record.path.stem)


def wanted_image(record: LabelMeFile) -> str:
    """What :func:`find_image` looks for: ``'a.jpg' (imagePath) or a{.jpg,.png,...}``."""
    wanted = [f"{record.image_path!r} (imagePath)"] if record.image_path else []
    wanted.append(f"{record.path.stem}{{{','.join(IMAGE_SUFFIXES)}}}")
    return " or ".join(wanted)


def _found_images(records: list[LabelMeFile], folder: Path, split: str | None) -> dict[int, Path]:
    """``{k: image}`` of the ``records`` (of the files in ``folder``) whose image is
    found, the others left out with one warning naming what was looked for.

    Raises:
        ValueError: none is found (:func:`empty_split_error`).
    """
    by_stem = {path.stem: path for path in image_files_in(folder)}
    found, left_out, embedded = {}, [], 0
    for k, record in enumerate(records):
        image = find_image(record, by_stem)
        if image is not None:
            found[k] = image
            continue
        left_out.append(f"{record.path.name} ({wanted_image(record)})")
        embedded += record.holds_image
    why = "its image not found"
    if embedded:
        why += (
            f" ({counted(embedded, 'file holds', 'files hold')} it in imageData, which is not "
            "read: save the image beside its .json)"
        )
    warn_of_left_out(folder, left_out, ".json file", why)
    if not found:
        detail = f"none of its {counted(len(records), '.json file')} has its image file"
        raise empty_split_error(folder, split, detail)
    return found


def warn_of_skipped_shapes(records: Sequence[LabelMeFile], source: str) -> None:
    """Warn of the shapes that mark no box (points and lines), skipped: how many of each
    type, and in which files."""
    skipped = sum((record.skipped for record in records), Counter[str]())
    if not skipped:
        return
    types = ", ".join(f"{count} {name}" for name, count in sorted(skipped.items()))
    files = [
        f"{record.path.name} ({record.skipped.total()})" for record in records if record.skipped
    ]
    warnings.warn(
        f"{source}: "
        f"{counted(skipped.total(), 'shape marks no box and is', 'shapes mark no box and are')}"
        f" skipped ({types}): {first_few(files)}",
        stacklevel=3,
    )
