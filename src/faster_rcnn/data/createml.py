"""CreateML JSON reader: the object detection annotations of Apple's Create ML, as
Roboflow's "CreateML JSON" export writes them (and RectLabel, MakeML and IBM Cloud
Annotations).

Layout::

    <folder>/_annotations.createml.json    the annotations: Roboflow's name, or any .json
    <folder>/*.jpg                         the images it names, beside it

The file is a list of images, each with its boxes::

    [{"image": "a.jpg",
      "annotations": [{"label": "cat",
                       "coordinates": {"x": 30, "y": 40, "width": 20, "height": 10}}]}]

``x`` and ``y`` are the box's centre, ``width`` and ``height`` its size, in continuous
pixels: the box is ``[x - width / 2, y - height / 2, x + width / 2, y + height / 2]``.
An annotation is named by its place in its image's list (``annotation 2``, counted from
0). The classes are the labels in the order the file first gives each (Create ML keeps no
list of them; :class:`~.class_order.InClassOrder` renumbers a split to another's).
Roboflow's export holds a folder per split (``train/``, ``valid/``, ``test/``).

The file records no image size: each image's is read from its file's header, turned by
its EXIF orientation, as Apple's tools show the image the boxes are drawn on (Roboflow's
exports carry no orientation), and the image is read so. Boxes are clipped to it and
those wholly outside it dropped, counted in ``box_audit`` and warned about on opening.
An image with an empty ``annotations`` list is an image without objects; one the file
names that is not there is left out, with one warning (:func:`~.dataset.images_there`),
and so is an image beside it that the file does not name.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .box_audit import LabelledBox
from .dataset import (
    read_text,
    written_path,
)
from .json_start import first_item
from .listed_images import ImagesListedInFile, ListedImage

# What ``faster-rcnn data`` calls the format.
CREATEML_FORMAT = "CreateML JSON"
# The file Roboflow writes in each split folder.
ANNOTATIONS_FILE = "_annotations.createml.json"
# The numbers of an annotation's coordinates: its centre and size.
COORDINATES = ("x", "y", "width", "height")


@dataclass(frozen=True)
class CreateMLImage:
    """One image of a CreateML file: its file name as written and its boxes."""

    image: str
    boxes: list[LabelledBox]


class CreateMLDetection(ImagesListedInFile):
    """The images and boxes of one CreateML JSON file (see the module).

    Args:
        annotation_file: the ``.json`` file; its images are looked for beside it.
        split: the split it is (Roboflow's ``train/``), for the error of one without
            images; ``None`` for a file without splits.

    ``dataset[i]`` is ``(image, target)``, the image as :func:`~.dataset.read_image_levels`
    decodes it (``uint8[3, H, W]`` levels of an 8-bit file), with target
    ``{"boxes": float32[N, 4] x1 y1 x2 y2 pixels, "labels": int64[N], "image_id": i}``.
    The images keep the file's order, the classes the order the file first gives each.

    Attributes:
        box_audit: the boxes clipped to their image or dropped (warned about on opening).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: no image beside it, none of those it names there, or it names none
            (:func:`empty_split_error`); or a bad entry, in one line naming the file, the
            image and the annotation (see :func:`read_createml_images`).
    """

    FORMAT = "CreateML"
    WITHOUT_BOXES = 'an image with "annotations": [] is one without objects'

    def _listed_images(self, file: Path) -> list[ListedImage]:
        """The images of the CreateML ``file`` with their boxes
        (:func:`read_createml_images`)."""
        images = read_createml_images(file)
        return [ListedImage(file.parent / written_path(i.image), i.boxes) for i in images]

    @staticmethod
    def _class_order(labels: Sequence[str]) -> tuple[str, ...]:
        """The classes of the boxes' ``labels``, in the order the file first gives each."""
        return tuple(dict.fromkeys(labels))


def is_createml_file(file: Path) -> bool:
    """Whether the ``.json`` ``file`` is CreateML's: named ``_annotations.createml.json``,
    or its first item (:func:`.first_item`) an object with ``image`` and ``annotations``.
    A COCO or VIA file is an object, and a Label Studio export's items hold their image
    under ``data``."""
    if file.name == ANNOTATIONS_FILE:
        return True
    first = first_item(file)
    return isinstance(first, dict) and {"image", "annotations"} <= first.keys()


def read_createml_images(file: Path) -> list[CreateMLImage]:
    """The images of the CreateML ``file``, in its order, with their boxes.

    Raises:
        ValueError: in one line naming the file (and the image and annotation): not
            JSON, not a list, an item without ``image`` or ``annotations``, an image
            named twice, an annotation without a ``label`` or ``coordinates``, a
            coordinate missing or not a number, a ``width`` or ``height`` not above 0.
    """
    try:
        data = json.loads(read_text(file))
    except json.JSONDecodeError as error:
        raise ValueError(f"{file}: not valid json ({error})") from None
    if not isinstance(data, list):
        raise ValueError(
            f"{file}: not a CreateML file (a list of images, each with 'image' and 'annotations')"
        )
    images: list[CreateMLImage] = []
    index_of: dict[str, int] = {}
    for index, entry in enumerate(data):
        name = _image_name(entry, f"{file}, image {index}")
        if name in index_of:
            raise ValueError(
                f"{file}, image {index}: {name} is image {index_of[name]} too: one entry an "
                "image, holding all its annotations"
            )
        index_of[name] = index
        annotations = enumerate(entry["annotations"])
        boxes = [_box(a, f"{name}, annotation {k}", file) for k, a in annotations]
        images.append(CreateMLImage(name, boxes))
    return images


def _image_name(entry: Any, where: str) -> str:
    """The ``image`` of an ``entry`` of the list, checked to be an object with an image
    name and an ``annotations`` list."""
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: not an image (an object with 'image' and 'annotations')")
    name = entry.get("image")
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{where}: no 'image' (the image's file name)")
    if not isinstance(entry.get("annotations"), list):
        raise ValueError(f"{where}, {name}: no 'annotations' list")
    return name


def _box(annotation: Any, where: str, file: Path) -> LabelledBox:
    """The label and box of an ``annotation`` (``where``: its image and place)."""
    said = f"{file}, {where}"
    if not isinstance(annotation, dict):
        raise ValueError(f"{said}: not an object with 'label' and 'coordinates'")
    label = annotation.get("label")
    if not isinstance(label, str) or not label.strip():
        raise ValueError(f"{said}: no 'label'")
    coordinates = annotation.get("coordinates")
    if not isinstance(coordinates, dict):
        raise ValueError(f"{said}: no 'coordinates' ({', '.join(COORDINATES)})")
    x, y, width, height = (_number(coordinates, key, said) for key in COORDINATES)
    for key, size in (("width", width), ("height", height)):
        if size <= 0:
            raise ValueError(f"{said}: {key} {size:g} is not above 0")
    box = [x - width / 2, y - height / 2, x + width / 2, y + height / 2]
    return LabelledBox(where, label.strip(), box)


def _number(coordinates: dict[str, Any], key: str, where: str) -> float:
    """The number ``coordinates[key]`` of an annotation."""
    value = coordinates.get(key)
    finite = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not finite or not math.isfinite(value):
        said = "missing" if key not in coordinates else f"{value!r}, not a number"
        raise ValueError(f"{where}: coordinates {key} is {said}")
    return float(value)
