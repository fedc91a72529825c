"""YOLO Keras TXT reader: Roboflow's "YOLO Keras TXT" export, and the annotation files of
keras-yolo3 (qqwweee's, and the Keras and TensorFlow YOLO ports that read them).

Layout::

    <folder>/_annotations.txt      one image a line
    <folder>/_classes.txt          the class names, one a line
    <folder>/*.jpg                 the images it names, beside it

A line is an image's path and its boxes, separated by spaces::

    a.jpg 10,20,50,60,0 5,5,25,30,1
    b.jpg                            an image without objects

A box is ``x1,y1,x2,y2,class_id``: its corners in continuous pixels, as keras-yolo3
reads them (its width is ``x2 - x1``: ``preprocess_true_boxes``), and the class id
counted from 0, class ``k`` the name on line ``k + 1`` of the classes file (label
``k + 1`` here). keras-yolo3 writes whole numbers; corners with decimals are read too.
keras-yolo3's files have any name (``2007_train.txt``) and paths relative to where it
runs, often absolute; a path here is read relative to the file's folder, or as
absolute. Their class names are in a file given apart (``model_data/voc_classes.txt``):
here the ``_classes.txt`` or ``classes.txt`` beside the file (:func:`classes_file_beside`).
Roboflow's export holds a folder per split (``train/``, ``valid/``, ``test/``), each with
both files beside its images.

keras-yolo3 reads the images with PIL, as stored, not turned by their EXIF orientation
(Roboflow's exports carry none): so are they here, each one's size read from its file's
header. Boxes are clipped to it and those wholly outside it dropped, counted in
``box_audit`` and warned about on opening. An image a line names that is not there is
left out with its boxes, with one warning (:func:`~.dataset.images_there`); an image
beside ``_annotations.txt`` that no line names is left out with one warning naming it (a
keras-yolo3 file's images are not warned of: its splits' images often share a folder).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from ..counted import counted
from .box_audit import audited_targets
from .dataset import (
    NO_IMAGE_BESIDE,
    TargetsReadOnOpening,
    empty_split_error,
    first_few,
    holds_images,
    image_sizes,
    images_beside,
    images_there,
    read_text,
    warn_of_images_left_out,
    written_path,
)
from .yolo import read_names_file

# What ``faster-rcnn data`` calls the format.
KERAS_TXT_FORMAT = "YOLO Keras TXT"
# The files Roboflow writes in each split folder.
ANNOTATIONS_FILE = "_annotations.txt"
# The class names beside it: Roboflow's name first, then the usual one.
CLASSES_FILES = ("_classes.txt", "classes.txt")
# What a box is, for the errors.
BOX_FORM = "x1,y1,x2,y2,class_id"
# The lines a file is told by: its first images may have no objects (a path alone).
TOLD_BY_LINES = 20
CLASS_ID = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class KerasBox:
    """One box of a line: where it is (as the errors and warnings name it), its class id
    and corners."""

    where: str  # "line 3, a.jpg [10,20,50,60,0]"
    class_id: int
    box: list[float]  # x1, y1, x2, y2 pixels


@dataclass(frozen=True)
class KerasLine:
    """One line: the image's path as written, its line and its boxes."""

    path: str
    line: int
    boxes: list[KerasBox]


class KerasTXTDetection(TargetsReadOnOpening):
    """The images and boxes of one YOLO Keras TXT file (see the module).

    Args:
        annotation_file: the ``.txt`` file (``_annotations.txt``); its classes file is
            looked for beside it (:func:`classes_file_beside`).
        split: the split it is (Roboflow's ``train/``), for the error of one without
            images; ``None`` for a file without splits.

    ``dataset[i]`` is ``(image, target)``, the image as :func:`~.dataset.read_image_levels`
    decodes it (``uint8[3, H, W]`` levels of an 8-bit file), with target
    ``{"boxes": float32[N, 4] x1 y1 x2 y2 pixels, "labels": int64[N], "image_id": i}``.
    The images keep the file's order, the classes the classes file's.

    Attributes:
        box_audit: the boxes clipped to their image or dropped (warned about on opening).
        classes_file: the file the class names are read from.

    Raises:
        FileNotFoundError: the file does not exist, or no classes file is beside it.
        ValueError: no image beside ``_annotations.txt``, none of those it names there,
            or no line (:func:`empty_split_error`); a bad classes file
            (:func:`~.yolo.read_names_file`); or a bad line, in one line naming the file,
            the line, the image and the box (see :func:`read_keras_lines`).
    """

    def __init__(self, annotation_file: str | Path, split: str | None = None) -> None:
        self.annotation_file = Path(annotation_file)
        if not self.annotation_file.is_file():
            raise FileNotFoundError(f"annotation file {self.annotation_file} does not exist")
        folder = self.annotation_file.parent
        roboflow = self.annotation_file.name == ANNOTATIONS_FILE
        if roboflow and not holds_images(folder):
            raise empty_split_error(self.annotation_file, split, NO_IMAGE_BESIDE)
        self.classes_file = classes_file_beside(self.annotation_file)
        if self.classes_file is None:
            raise FileNotFoundError(
                f"{self.annotation_file}: no {' or '.join(CLASSES_FILES)} beside it, whose "
                "line k + 1 names class k"
            )
        self.class_names = read_names_file(self.classes_file)
        lines = read_keras_lines(self.annotation_file, self.class_names, self.classes_file)
        if not lines:
            raise empty_split_error(self.annotation_file, split, "no line in it")
        files = [folder / written_path(line.path) for line in lines]
        kept = images_there(files, self.annotation_file, split)
        self.image_files = [files[k] for k in kept]
        if roboflow:  # a keras-yolo3 file's splits often share a folder of images
            warn_of_images_left_out(
                images_beside(self.image_files),
                str(self.annotation_file),
                ("image is on no line and", "images are on no line and"),
                "a line of its path alone makes an image one without objects",
            )
        self._set_targets([lines[k] for k in kept])

    def _set_targets(self, lines: list[KerasLine]) -> None:
        """Each image's size, from its file's header, and its boxes clipped to it
        (``float32[N, 4]``) and labels."""
        source = str(self.annotation_file)
        names = [f"{line.path}, line {line.line}" for line in lines]
        unknown = [None] * len(lines)
        self._sizes = image_sizes(unknown, self.image_files, names, source, "size").sizes
        boxes = ([(b.where, b.box, b.class_id + 1) for b in line.boxes] for line in lines)
        self.box_audit, self._boxes, self._labels = audited_targets(boxes, self._sizes, source)


def classes_file_beside(file: Path) -> Path | None:
    """The classes file beside the annotation ``file``: ``_classes.txt``, else
    ``classes.txt``; ``None`` where neither is there."""
    found = (file.parent / name for name in CLASSES_FILES)
    return next((path for path in found if path.is_file()), None)


def is_keras_txt(file: Path) -> bool:
    """Whether the ``.txt`` ``file`` is a YOLO Keras TXT file: named ``_annotations.txt``,
    or its first line with more than a path, among its first :data:`TOLD_BY_LINES`, a
    path and boxes, ``x1,y1,x2,y2,class_id`` each (the lines before it are images
    without objects). A YOLO label file's line is numbers without commas, and a list of
    images (Darknet's ``train.txt``) paths alone. Not where it cannot be read as text."""
    if file.name == ANNOTATIONS_FILE:
        return True
    try:
        text = read_text(file)
    except (OSError, ValueError):
        return False
    lines = (line.split() for line in text.splitlines()[:TOLD_BY_LINES])
    boxed = next((fields for fields in lines if len(fields) > 1), [])
    return bool(boxed) and all(_parsed_box(field) is not None for field in boxed[1:])


def read_keras_lines(
    file: Path, class_names: tuple[str, ...], classes_file: Path
) -> list[KerasLine]:
    """The lines of the YOLO Keras TXT ``file``, in its order, each box checked against
    the ``class_names`` of ``classes_file``; blank lines are passed over.

    Raises:
        ValueError: in one line naming the file, the line and, for a box, its image and
            the box: a box that is not ``x1,y1,x2,y2,class_id`` (a corner not a number, the
            class id not a whole number), ``x2 <= x1`` or ``y2 <= y1``, a class id the
            classes file has no line for, or an image named on an earlier line too.
    """
    lines: list[KerasLine] = []
    line_of: dict[str, int] = {}
    for number, text in enumerate(read_text(file).splitlines(), start=1):
        fields = text.split()
        if not fields:
            continue
        path, *boxes = fields
        if path in line_of:
            raise ValueError(
                f"{file}, line {number}: {path} is on line {line_of[path]} too: one line an "
                "image, holding all its boxes"
            )
        line_of[path] = number
        where = f"line {number}, {path}"
        checked = [
            _checked_box(f"{where} [{box}]", box, file, class_names, classes_file) for box in boxes
        ]
        lines.append(KerasLine(path, number, checked))
    return lines


def _checked_box(
    where: str, text: str, file: Path, class_names: tuple[str, ...], classes_file: Path
) -> KerasBox:
    """The box ``text`` of a line (``where``: its line, image and box), checked."""
    parsed = _parsed_box(text)
    if parsed is None:
        raise ValueError(
            f"{file}, {where}: not a box {BOX_FORM} (the corners numbers, the class id a "
            "whole number from 0)"
        )
    class_id, (x1, y1, x2, y2) = parsed
    if x2 <= x1 or y2 <= y1:
        low, high = ("x1", "x2") if x2 <= x1 else ("y1", "y2")
        values = {"x1": x1, "y1": y1, "x2": x2, "y2": y2}
        raise ValueError(
            f"{file}, {where}: {high} {values[high]:g} is not greater than {low} {values[low]:g}"
        )
    if class_id >= len(class_names):
        known = f"{counted(len(class_names), 'class')}: {first_few(list(class_names), 5)}"
        raise ValueError(
            f"{file}, {where}: class id {class_id} is not among those of {classes_file} "
            f"({known}), counted from 0"
        )
    return KerasBox(where, class_id, [x1, y1, x2, y2])


def _parsed_box(text: str) -> tuple[int, list[float]] | None:
    """The class id and corners of the box ``text``, ``x1,y1,x2,y2,class_id``; ``None``
    where it is not one."""
    values = text.split(",")
    if len(values) != 5 or not CLASS_ID.fullmatch(values[4]):
        return None
    try:
        corners = [float(value) for value in values[:4]]
    except ValueError:
        return None
    if not all(map(math.isfinite, corners)):
        return None
    return int(values[4]), corners
