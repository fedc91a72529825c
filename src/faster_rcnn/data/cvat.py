"""CVAT's own export, "CVAT for images 1.1": one ``annotations.xml`` for a task, a job or
a project.

Layouts::

    <folder>/annotations.xml, <folder>/images/a.jpg           CVAT 2.x, with the images
    <folder>/annotations.xml, <folder>/images/<subset>/a.jpg  ... of a project's subsets
    <folder>/annotations.xml, <folder>/a.jpg                  the file beside the images

The file's root is ``<annotations>``, which starts with ``<version>`` and ``<meta>`` (a
Pascal VOC file's is ``<annotation>``)::

    <annotations>
      <version>1.1</version>
      <meta><task><labels><label><name>cell</name>...</label></labels></task></meta>
      <image id="0" name="a.jpg" width="640" height="480" subset="Train">
        <box label="cell" xtl="10" ytl="20" xbr="40" ybr="60" rotation="30"/>
        <polygon label="cell" points="5,30;25,32;15,60"/>
      </image>
    </annotations>

An image's ``name`` may hold a sub-path (``sub/a.jpg``); its file is looked for in
``images/<subset>/``, ``images/`` and the file's own folder, in that order. A shape's box
is its extent, in continuous pixels: ``box`` (``xtl ytl xbr ybr``, turned by
``rotation`` degrees about its centre: :func:`turned_box_extent`), ``polygon`` and
``polyline`` (``points="x1,y1;x2,y2;..."``), ``ellipse`` (``cx cy rx ry``, turned:
:func:`~.via.ellipse_extent`) and ``mask`` (``left top width height``: the rectangle its
pixels lie in). ``points``, ``skeleton``, ``tag`` and ``cuboid`` mark no box: they are
skipped, counted in one warning. CVAT for *video*, whose shapes lie in ``<track>``
elements, is refused, saying to export "CVAT for images".

The classes are the labels ``<meta>`` declares (of its ``<task>``, ``<project>`` or
``<job>``), in its order, less those that never mark a box (a skeleton's points, labels
with a ``<parent>``, and the labels of points, skeletons, tags and cuboids, by their
``<type>``); a shape of a label it does not declare is refused. A file that declares
none has the labels found, sorted, as the other readers do.

The images' ``subset`` (CVAT's ``Train``, ``Validation``, ``Test``) are the splits, named
as written (``val`` finds ``Validation``, :meth:`~.open.DatasetLayout.resolve`); a file
without subsets, or whose images are all ``default``, has none; a subset none of whose
images is there is left out, with a note (:func:`subset_without_images`), unless
``train`` finds it. Each image's ``width`` and ``height`` are checked against its file,
which decides (as the COCO reader checks its sizes, :func:`~.dataset.image_sizes`);
boxes are clipped to it and those left without area dropped, counted in ``box_audit``
and warned about on opening. An image without shapes is an image without objects; one
the file names that is not there is left out, with one warning
(:func:`~.dataset.images_there`), and so is an image beside them that the file does not
name.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as ElementTree
from torch import Tensor

from ..counted import counted
from .box_audit import LabelledBox, audited_targets
from .dataset import (
    TargetsReadOnOpening,
    empty_split_error,
    empty_split_message,
    first_few,
    image_sizes,
    images_beside,
    images_there,
    none_there,
    read_image_levels,
    warn_of_images_left_out,
    written_path,
)
from .via import ellipse_extent
from .xml_file import xml_root

# What ``faster-rcnn data`` calls the format.
CVAT_FORMAT = "CVAT for images 1.1"
# The name CVAT gives the file, by which a folder holding it is told.
ANNOTATIONS_XML = "annotations.xml"
# The folder of the images beside it in CVAT 2.x's exports.
IMAGES_FOLDER = "images"
# The subset of the images of a task without subsets: not a split.
NO_SUBSET = "default"
# The first element of the file, after which it is told (a Pascal VOC file has neither).
FIRST_ELEMENTS = ("version", "meta")
# The shapes that make a box, and the numbers each is drawn with (besides rotation).
SHAPE_NUMBERS = {
    "box": ("xtl", "ytl", "xbr", "ybr"),
    "ellipse": ("cx", "cy", "rx", "ry"),
    "mask": ("left", "top", "width", "height"),
    "polygon": (),
    "polyline": (),
}
# The shapes that mark no box: skipped, with a warning.
NO_BOX_SHAPES = ("points", "skeleton", "tag", "cuboid")


@dataclass(frozen=True)
class CVATImage:
    """One ``<image>`` of a CVAT file.

    Attributes:
        name: its ``name``, the file's path as written.
        size: ``(height, width)`` from its ``height`` and ``width``.
        subset: its ``subset``; ``None`` where it has none.
        shapes: its shapes that have a box, in file order.
        skipped: per shape that marks no box, how many it has.
    """

    name: str
    size: tuple[int, int]
    subset: str | None
    shapes: list[LabelledBox]
    skipped: Counter[str]


@dataclass(frozen=True)
class CVATFile:
    """A CVAT file, read: its classes (:func:`class_names`) and its images."""

    path: Path
    class_names: tuple[str, ...]
    images: list[CVATImage]

    def splits(self) -> tuple[str, ...]:
        """The subsets of its images, sorted; none where it has none but ``default``."""
        subsets = {image.subset or NO_SUBSET for image in self.images}
        return () if subsets <= {NO_SUBSET} else tuple(sorted(subsets))

    def subset_indices(self, split: str | None) -> list[int]:
        """The indices of the images of the subset ``split`` (``default``: those without
        one too), in file order; of every image for ``None``."""
        return [
            k for k, image in enumerate(self.images) if split in (None, image.subset or NO_SUBSET)
        ]


class CVATDetection(TargetsReadOnOpening):
    """The images and boxes of a CVAT for images file, or of one subset of it (see the
    module).

    Args:
        annotation: the ``annotations.xml`` file, or it read (:func:`read_cvat_file`).
        split: the subset to open (``Train``); ``None``: every image.

    ``dataset[i]`` is ``(image, target)``, the image as :func:`~.dataset.read_image_levels`
    decodes it (``uint8[3, H, W]`` levels of an 8-bit file), with target
    ``{"boxes": float32[N, 4] x1 y1 x2 y2 pixels, "labels": int64[N], "image_id": i}``.
    The images keep the file's order.

    Attributes:
        box_audit: the boxes clipped to their image or dropped (warned about on opening).

    Raises:
        ValueError: the split names no image, or none of those it names is there
            (:func:`empty_split_error`); or a bad file, in one line naming it (and the
            image and shape; see :func:`read_cvat_file`).
    """

    def __init__(self, annotation: str | Path | CVATFile, split: str | None = None) -> None:
        read = annotation if isinstance(annotation, CVATFile) else read_cvat_file(Path(annotation))
        self.annotation_file = read.path
        folder = self.annotation_file.parent
        every_file = [cvat_image_file(folder, image) for image in read.images]
        chosen = read.subset_indices(split)
        if not chosen:
            raise empty_split_error(self.annotation_file, split, "it names no image")
        files = [every_file[k] for k in chosen]
        kept = images_there(files, self.annotation_file, split)
        self.image_files = [files[k] for k in kept]
        images = [read.images[chosen[k]] for k in kept]
        # An image of another subset, in the same folder, is not left out of this one.
        named = set(every_file)
        warn_of_images_left_out(
            [path for path in images_beside(self.image_files) if path not in named],
            str(self.annotation_file),
            ("image is not in it and", "images are not in it and"),
            "an image of the CVAT task without shapes is one without objects",
        )
        warn_of_skipped_shapes(images, str(self.annotation_file))
        self.class_names = read.class_names
        self._set_targets(images)

    def _set_targets(self, images: list[CVATImage]) -> None:
        """Each image's size (its file's, checked against the annotated one), its shapes'
        boxes clipped to it (``float32[N, 4]``) and their labels."""
        source = str(self.annotation_file)
        names = [image.name for image in images]
        recorded = [image.size for image in images]
        sizes = image_sizes(recorded, self.image_files, names, source, "width and height")
        self._sizes, self._turned = sizes.sizes, sizes.turned
        label_of = {name: k + 1 for k, name in enumerate(self.class_names)}
        boxes = ([(s.where, s.box, label_of[s.label]) for s in image.shapes] for image in images)
        self.box_audit, self._boxes, self._labels = audited_targets(boxes, self._sizes, source)

    def _read_image(self, index: int) -> Tensor:
        return read_image_levels(self.image_path(index), exif_transpose=index in self._turned)


def cvat_image_file(folder: Path, image: CVATImage) -> Path:
    """The file of ``image`` of a CVAT file in ``folder``: its ``name`` in
    ``images/<subset>/``, ``images/`` or ``folder``, the first that is there (the first
    whose folder is, where none is: named as not found)."""
    name = written_path(image.name)
    images = folder / IMAGES_FOLDER
    candidates = [images / name, folder / name]
    if image.subset:
        candidates.insert(0, images / image.subset / name)
    there = next((path for path in candidates if path.is_file()), None)
    return there or next((path for path in candidates if path.parent.is_dir()), candidates[0])


def subset_without_images(read: CVATFile, split: str) -> str | None:
    """Why the subset ``split`` of the CVAT file ``read`` gives no image, as opening it
    says (:func:`empty_split_message`): none of its images' files is there (a subset
    exported without its images); ``None`` where one is, stopping at the first."""
    folder = read.path.parent
    chosen = read.subset_indices(split)
    if any(cvat_image_file(folder, read.images[k]).is_file() for k in chosen):
        return None
    return empty_split_message(read.path, split, none_there(len(chosen)))


def is_cvat_file(path: Path) -> bool:
    """Whether the ``.xml`` ``path`` is CVAT's: its root ``<annotations>`` and its first
    element ``<version>`` or ``<meta>``, read no further (the file may be large)."""
    try:
        events = ElementTree.iterparse(path, events=("start",))
        (_, root), (_, first) = next(events), next(events)
    except (OSError, ParseError, StopIteration):
        return False
    return root.tag == "annotations" and first.tag in FIRST_ELEMENTS


def read_cvat_file(path: Path) -> CVATFile:
    """The CVAT for images file ``path``, its shapes read as boxes (see the module).

    Raises:
        FileNotFoundError: it does not exist.
        ValueError: in one line naming the file: it is not XML, not CVAT's, CVAT for
            video; or, naming the image (and the shape), an image without ``name`` or
            with a ``width`` or ``height`` not a whole number above 0, a shape of an
            unknown kind, without a label or of one ``<meta>`` does not declare, with a
            number missing or not one, a size not above 0, points not ``x,y;...``.
    """
    if not path.is_file():
        raise FileNotFoundError(f"CVAT annotation file {path} does not exist")
    root = xml_root(path)
    if root.tag != "annotations":
        raise ValueError(f"{path}: not a CVAT for images file: its root is <{root.tag}>")
    if root.find("track") is not None:
        raise ValueError(
            f'{path}: CVAT for video (its shapes are in <track> elements): export "CVAT for '
            'images 1.1" instead'
        )
    declared = declared_labels(root)
    images = [_image_element(element, path) for element in root.findall("image")]
    labels = [shape.label for image in images for shape in image.shapes]
    if not declared:
        return CVATFile(path, tuple(sorted(set(labels))), images)
    for image in images:
        for shape in image.shapes:
            if shape.label not in declared:
                raise ValueError(
                    f"{path}, {shape.where}: the label is not one of those <meta> declares "
                    f"({first_few([repr(name) for name in declared])})"
                )
    return CVATFile(path, declared, images)


def declared_labels(root: Element) -> tuple[str, ...]:
    """The names of the labels ``<meta>`` declares, of its task, project or job, in its
    order, less those that never mark a box: a skeleton's points (labels with a
    ``<parent>``) and the labels of a kind that marks none (``<type>tag</type>``)."""
    names = (
        (label.findtext("name") or "").strip()
        for label in root.findall("meta/*/labels/label")
        if not (label.findtext("parent") or "").strip()
        and (label.findtext("type") or "").strip() not in NO_BOX_SHAPES
    )
    return tuple(dict.fromkeys(name for name in names if name))


def _image_element(element: Element, path: Path) -> CVATImage:
    """An ``<image>`` of the file ``path``, checked, its shapes read as boxes."""
    name = (element.get("name") or "").strip()
    if not name:
        raise ValueError(f"{path}, image id {element.get('id')!r}: no name")
    width, height = (_side(element, key, f"{path}, {name}") for key in ("width", "height"))
    shapes, skipped = [], Counter[str]()
    for k, shape in enumerate(element):
        if shape.tag in NO_BOX_SHAPES:
            skipped[shape.tag] += 1
            continue
        label = (shape.get("label") or "").strip()
        where = f"{name}, {shape.tag} {k} {label!r}"
        if shape.tag not in SHAPE_NUMBERS:
            known = ", ".join([*SHAPE_NUMBERS, *NO_BOX_SHAPES])
            raise ValueError(f"{path}, {name}, shape {k}: <{shape.tag}> is none of {known}")
        if not label:
            raise ValueError(f"{path}, {name}, {shape.tag} {k}: no label")
        shapes.append(LabelledBox(where, label, _shape_box(shape, f"{path}, {where}")))
    return CVATImage(name, (height, width), element.get("subset"), shapes, skipped)


def _side(element: Element, key: str, where: str) -> int:
    """An image's ``width`` or ``height``, a whole number above 0."""
    text = element.get(key)
    if text is None or not text.strip().isdigit() or int(text) <= 0:
        said = "missing" if text is None else f"{text!r}, not a whole number above 0"
        raise ValueError(f"{where}: {key} is {said}")
    return int(text)


def _shape_box(shape: Element, where: str) -> list[float]:
    """``[x1, y1, x2, y2]``, the extent of a shape (see the module)."""
    if shape.tag in ("polygon", "polyline"):
        return _points_extent(shape.get("points"), where)
    numbers = [_number(shape, key, where) for key in SHAPE_NUMBERS[shape.tag]]
    rotation = _number(shape, "rotation", where) if "rotation" in shape.attrib else 0.0
    if shape.tag == "box":
        return turned_box_extent(*numbers, rotation)
    for key, number in zip(SHAPE_NUMBERS[shape.tag][2:], numbers[2:], strict=True):
        if number <= 0:
            raise ValueError(f"{where}: {key} {number:g} is not above 0")
    if shape.tag == "ellipse":
        return ellipse_extent(*numbers, math.radians(rotation))
    left, top, width, height = numbers
    return [left, top, left + width, top + height]


def turned_box_extent(x1: float, y1: float, x2: float, y2: float, rotation: float) -> list[float]:
    """``[x1, y1, x2, y2]``, the smallest upright box around the box ``x1, y1, x2, y2``
    turned by ``rotation`` degrees about its centre: a side ``w`` turned by ``a`` spans
    ``w |cos a|`` across and ``w |sin a|`` down, so the turned box reaches
    ``(w |cos a| + h |sin a|) / 2`` to each side and ``(w |sin a| + h |cos a|) / 2`` up
    and down. A box the audit drops (no area) is kept as it is, for it to drop."""
    if not rotation or x2 <= x1 or y2 <= y1:
        return [x1, y1, x2, y2]
    cos, sin = abs(math.cos(math.radians(rotation))), abs(math.sin(math.radians(rotation)))
    width, height = x2 - x1, y2 - y1
    half_width = (width * cos + height * sin) / 2
    half_height = (width * sin + height * cos) / 2
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    return [cx - half_width, cy - half_height, cx + half_width, cy + half_height]


def _points_extent(points: str | None, where: str) -> list[float]:
    """The extent of a polygon's or polyline's ``points``, ``"x1,y1;x2,y2;..."``."""
    try:
        pairs = [[float(v) for v in point.split(",")] for point in (points or "").split(";")]
    except ValueError:
        pairs = []
    if not pairs or any(len(pair) != 2 or not all(map(math.isfinite, pair)) for pair in pairs):
        raise ValueError(f"{where}: points {points!r} are not x1,y1;x2,y2;... numbers")
    xs, ys = [x for x, _ in pairs], [y for _, y in pairs]
    return [min(xs), min(ys), max(xs), max(ys)]


def _number(shape: Element, key: str, where: str) -> float:
    """The number ``key`` of a shape."""
    text = shape.get(key)
    try:
        number = float(text) if text is not None else math.nan
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        said = "missing" if text is None else f"{text!r}, not a number"
        raise ValueError(f"{where}: {key} is {said}")
    return number


def warn_of_skipped_shapes(images: Sequence[CVATImage], source: str) -> None:
    """Warn of the shapes that mark no box (points, skeletons, tags, cuboids), skipped: how
    many of each kind, and on which images."""
    skipped = sum((image.skipped for image in images), Counter[str]())
    if not skipped:
        return
    kinds = ", ".join(f"{count} {name}" for name, count in sorted(skipped.items()))
    named = [f"{image.name} ({image.skipped.total()})" for image in images if image.skipped]
    warnings.warn(
        f"{source}: "
        f"{counted(skipped.total(), 'shape marks no box and is', 'shapes mark no box and are')}"
        f" skipped ({kinds}): {first_few(named)}",
        stacklevel=3,
    )
