"""VGG Image Annotator (VIA) reader: the JSON that VIA 1.x and 2.x export ("Export
Annotations (as json)"), as the Mask R-CNN balloon dataset's ``via_region_data.json``,
and VIA 2's project file (``via_project_*.json``), which holds the same under
``_via_img_metadata``.

Layout::

    <folder>/via_region_data.json    the annotations: any name, one .json
    <folder>/*.jpg                   the images it names, beside it

The file is one object of images, each keyed by its file name and size::

    {"a.jpg12345": {"filename": "a.jpg", "size": 12345, "file_attributes": {},
      "regions": [{"shape_attributes": {"name": "rect", "x": 10, "y": 20,
                                        "width": 30, "height": 40},
                   "region_attributes": {"label": "cell"}}]}}

``regions`` is a list, or in VIA 1.x an object keyed ``"0"``, ``"1"``, ...; a region is
named by its place in it (``region 2``, counted from 0). Its box is the extent of its
shape, in continuous pixels: ``rect`` (``x, y, width, height``), ``polygon`` and
``polyline`` (``all_points_x``, ``all_points_y``), ``circle`` (``cx, cy, r``) and
``ellipse`` (``cx, cy, rx, ry``, turned by ``theta`` radians: see
:func:`ellipse_extent`). A ``point`` marks no box: points are left out, with one
warning counting them.

Its class is the value of a region attribute (:func:`class_attribute`): the one
attribute the regions fill, else ``label``, or the one of ``class``, ``name`` and
``type`` they fill. A value is text (VIA's text, radio, dropdown and image attributes)
or, of a checkbox attribute, an object of the options checked (``{"cell": true}``; VIA
leaves the others out), of which one must be. Where the regions fill no attribute (the
balloon dataset's hold none), every region is of one class, ``object``, with a warning.

VIA records no image size: each image's is read from its file's header when the file is
opened, turned by its EXIF orientation, as the browser VIA runs in shows the image and
its regions are drawn on (every current browser turns it), and the image is read so.
Boxes are clipped to it and those wholly outside it dropped, counted in ``box_audit`` and
warned about on opening. An image without regions is an image without objects; one the
file names that is not there is left out, with one warning
(:func:`~.dataset.images_there`), and so is an image beside it that the file does not
name (not added to the project, or added after the export).
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PureWindowsPath
from typing import Any

from ..counted import counted
from .box_audit import LabelledBox
from .dataset import (
    read_text,
    written_path,
)
from .json_start import first_entry
from .listed_images import ImagesListedInFile, ListedImage

# What ``faster-rcnn data`` calls the format.
VIA_FORMAT = "VGG Image Annotator (VIA)"
# The key of the images in a VIA 2 project file.
PROJECT_IMAGES = "_via_img_metadata"
# The region attributes that name a class, in the order they are preferred where the
# regions fill more than one (see class_attribute).
CLASS_ATTRIBUTES = ("label", "class", "name", "type")
# The shapes that make a box, and the numbers each is drawn with (an ellipse's theta,
# VIA 2's, is optional: VIA 1 draws them upright).
SHAPE_NUMBERS = {
    "rect": ("x", "y", "width", "height"),
    "circle": ("cx", "cy", "r"),
    "ellipse": ("cx", "cy", "rx", "ry"),
    "polygon": (),
    "polyline": (),
}
POINT = "point"
# The class of every region of a file whose regions fill no attribute: one class of
# objects, unnamed (the balloon dataset's regions are all balloons).
ONE_CLASS = "object"


@dataclass(frozen=True)
class VIAImage:
    """One image of a VIA file: its file name as written and its regions' boxes."""

    filename: str
    regions: list[LabelledBox]


class VIADetection(ImagesListedInFile):
    """The images and boxes of one VIA JSON file (see the module).

    Args:
        annotation_file: the ``.json`` file (an export or a project); its images are
            looked for beside it.
        split: the split it is (the balloon dataset's ``train/``), for the error of one
            without images; ``None`` for a file without splits.

    ``dataset[i]`` is ``(image, target)``, the image as :func:`~.dataset.read_image_levels`
    decodes it (``uint8[3, H, W]`` levels of an 8-bit file), with target
    ``{"boxes": float32[N, 4] x1 y1 x2 y2 pixels, "labels": int64[N], "image_id": i}``.
    The images keep the file's order, and the classes are the names found, sorted.

    Attributes:
        box_audit: the boxes clipped to their image or dropped (warned about on opening).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: no image beside it, none of those it names there, or it names none
            (:func:`empty_split_error`); or a bad entry, in one line naming the file, the
            image and the region (see :func:`read_via_images`).
    """

    FORMAT = "VIA"
    WITHOUT_BOXES = "an image of the VIA project without regions is one without objects"

    def _listed_images(self, file: Path) -> list[ListedImage]:
        """The images of the VIA ``file`` with their regions' boxes (:func:`read_via_images`)."""
        images = read_via_images(file)
        return [ListedImage(via_image_file(file.parent, i.filename), i.regions) for i in images]


def via_image_file(folder: Path, filename: str) -> Path:
    """The image file that ``filename`` of a VIA file in ``folder`` names: the path as
    written, relative to the folder; where it is a URL or an absolute path (of the
    machine it was labelled on), its last part, beside the file."""
    if "://" in filename or PureWindowsPath(filename).anchor:  # C:\..., /...
        return folder / PureWindowsPath(filename.rpartition("/")[2]).name
    return folder / written_path(filename)


def is_via_file(file: Path) -> bool:
    """Whether the ``.json`` ``file`` is VIA's, told by its start (:func:`.first_entry`):
    a project's first key is one of VIA's own (``_via_settings``), an export's first value
    an image with ``filename`` and ``regions``. A COCO file's first value (``info``,
    ``images``) is neither, and a Label Studio export is a list."""
    first = first_entry(file)
    if first is None:
        return False
    key, value = first
    is_image = isinstance(value, dict) and {"filename", "regions"} <= value.keys()
    return key.startswith("_via_") or is_image


def read_via_images(file: Path) -> list[VIAImage]:
    """The images of the VIA ``file`` (an export or a project), in its order, with the
    boxes of their regions; points are left out, with one warning counting them.

    Raises:
        ValueError: in one line naming the file (and the image and region): not JSON,
            not VIA's object of images, an image without ``filename`` or ``regions`` or
            named twice, a region without ``shape_attributes``, of an unknown shape, with
            a number missing, not a number, or not above 0 where it is a size, polygon
            point lists of other lengths or empty; the class attribute not told
            (:func:`class_attribute`); a region without a class, or with several
            checked.
    """
    entries = _image_entries(file)
    _refuse_images_named_twice(entries, file)
    attribute = class_attribute(_region_attributes(entries, file), file)
    images, points = [], 0
    for entry in entries.values():
        filename = entry["filename"]
        regions = []
        for index, region in _regions(entry, f"{file}, {filename}"):
            where = f"{filename}, region {index}"
            box = _shape_box(region, f"{file}, {where}")
            if box is None:
                points += 1
                continue
            name = _class_name(region, attribute, f"{file}, {where}")
            regions.append(LabelledBox(where, name, box))
        images.append(VIAImage(filename, regions))
    if attribute is None and any(image.regions for image in images):
        warnings.warn(
            f"{file}: no region fills a region attribute to give its class: every region is "
            f"read as one class, {ONE_CLASS!r} (to name classes, add a 'label' in VIA and set "
            "it on every region)",
            stacklevel=3,
        )
    if points:
        warnings.warn(
            f"{file}: {counted(points, 'point region is', 'point regions are')} left out: a "
            "point marks no box",
            stacklevel=3,
        )
    return images


def _image_entries(file: Path) -> dict[str, dict[str, Any]]:
    """The images of the VIA ``file`` by their key, each checked to be an object with a
    ``filename`` and ``regions``."""
    try:
        data = json.loads(read_text(file))
    except json.JSONDecodeError as error:
        raise ValueError(f"{file}: not valid json ({error})") from None
    if isinstance(data, dict) and PROJECT_IMAGES in data:
        data = data[PROJECT_IMAGES]
    if not isinstance(data, dict):
        raise ValueError(
            f"{file}: not a VGG Image Annotator (VIA) file (an object of images, each with "
            "'filename' and 'regions')"
        )
    for key, entry in data.items():
        if not isinstance(entry, dict):
            raise ValueError(
                f"{file}, {key}: not an image (an object with 'filename' and 'regions')"
            )
        filename = entry.get("filename")
        if not isinstance(filename, str) or not filename.strip():
            raise ValueError(f"{file}, {key}: no 'filename'")
        if not isinstance(entry.get("regions"), (list, dict)):
            raise ValueError(f"{file}, {filename}: no 'regions' list")
    return data


def _regions(entry: dict[str, Any], where: str) -> list[tuple[str, dict[str, Any]]]:
    """``(index, region)`` of each region of an image's ``entry``: its place in the list,
    or its key in VIA 1's object; each checked to be an object with ``shape_attributes``."""
    regions = entry["regions"]
    pairs = list(regions.items()) if isinstance(regions, dict) else list(enumerate(regions))
    for index, region in pairs:
        if not isinstance(region, dict) or not isinstance(region.get("shape_attributes"), dict):
            raise ValueError(f"{where}, region {index}: no 'shape_attributes'")
    return [(str(index), region) for index, region in pairs]


def _region_attributes(entries: dict[str, dict[str, Any]], file: Path) -> list[dict[str, Any]]:
    """The ``region_attributes`` of every region of the images ``entries``."""
    found = []
    for entry in entries.values():
        for index, region in _regions(entry, f"{file}, {entry['filename']}"):
            attributes = region.get("region_attributes", {})
            if not isinstance(attributes, dict):
                where = f"{file}, {entry['filename']}, region {index}"
                raise ValueError(f"{where}: 'region_attributes' must be an object")
            found.append(attributes)
    return found


def class_attribute(region_attributes: Iterable[dict[str, Any]], file: Path) -> str | None:
    """The region attribute that holds the class, of those the regions fill (a value
    not empty, a checkbox with an option checked): the one, else ``label``, else the one
    of ``class``, ``name`` and ``type`` (:data:`CLASS_ATTRIBUTES`); ``None`` where the
    regions fill none (the balloon dataset's hold none: every region is of
    :data:`ONE_CLASS`) or there are no regions.

    Raises:
        ValueError: the regions fill several and none of those alone, naming them and
            saying how to choose.
    """
    filled = list(
        dict.fromkeys(
            name
            for attributes in region_attributes
            for name, value in attributes.items()
            if _filled(value)
        )
    )
    if len(filled) <= 1:
        return filled[0] if filled else None
    common = [name for name in CLASS_ATTRIBUTES if name in filled]
    if CLASS_ATTRIBUTES[0] in common or len(common) == 1:
        return common[0]
    raise ValueError(
        f"{file}: the regions have the attributes {', '.join(map(repr, filled))}; which one "
        "is the class cannot be told: name it 'label' in the file's region_attributes"
    )


def _filled(value: Any) -> bool:
    """Whether a region attribute's ``value`` gives something: text not blank, or a
    checkbox with an option checked."""
    if isinstance(value, dict):
        return any(checked is True for checked in value.values())
    return value is not None and str(value).strip() != ""


def _class_name(region: dict[str, Any], attribute: str | None, where: str) -> str:
    """The class of ``region``: the text of its ``attribute``, or the one option of it
    checked; :data:`ONE_CLASS` where the regions fill no attribute (``None``)."""
    if attribute is None:
        return ONE_CLASS
    value = region.get("region_attributes", {}).get(attribute)
    name = value
    if isinstance(value, dict):
        checked = [option for option, on in value.items() if on is True]
        if len(checked) > 1:
            shown = ", ".join(map(repr, checked))
            raise ValueError(f"{where}: {attribute!r} has {shown} checked; a box has one class")
        name = checked[0] if checked else None
    if not isinstance(name, (str, int, float)) or isinstance(name, bool) or not _filled(name):
        said = "missing" if value is None else repr(value)
        raise ValueError(f"{where}: no class ({attribute!r} is {said})")
    return str(name).strip()


def _shape_box(region: dict[str, Any], where: str) -> list[float] | None:
    """``[x1, y1, x2, y2]``, the extent of a region's shape; ``None`` for a point."""
    shape = region["shape_attributes"]
    name = shape.get("name")
    if name == POINT:
        return None
    if name not in SHAPE_NUMBERS:
        known = ", ".join([*SHAPE_NUMBERS, POINT])
        raise ValueError(f"{where}: the shape {name!r} is none of {known}")
    if name in ("polygon", "polyline"):
        return _points_extent(shape, where)
    numbers = [_number(shape, key, where) for key in SHAPE_NUMBERS[name]]
    for key, number in zip(SHAPE_NUMBERS[name][2:], numbers[2:], strict=True):
        if number <= 0:
            raise ValueError(f"{where}: {name} {key} {number:g} is not above 0")
    if name == "rect":
        x, y, width, height = numbers
        return [x, y, x + width, y + height]
    if name == "circle":
        cx, cy, r = numbers
        return [cx - r, cy - r, cx + r, cy + r]
    theta = _number(shape, "theta", where) if "theta" in shape else 0.0
    return ellipse_extent(*numbers, theta)


def ellipse_extent(cx: float, cy: float, rx: float, ry: float, theta: float) -> list[float]:
    """``[x1, y1, x2, y2]``, the smallest upright box around the ellipse of centre ``cx,
    cy`` and radii ``rx`` (along x before turning), ``ry``, turned by ``theta`` radians.

    Its points are ``(rx cos t cos theta - ry sin t sin theta, rx cos t sin theta + ry
    sin t cos theta)`` from the centre; ``a cos t + b sin t`` reaches at most
    ``sqrt(a² + b²)``, so the box reaches ``sqrt(rx² cos² theta + ry² sin² theta)`` to each
    side and ``sqrt(rx² sin² theta + ry² cos² theta)`` up and down.
    """
    cos, sin = math.cos(theta), math.sin(theta)
    half_width = math.hypot(rx * cos, ry * sin)
    half_height = math.hypot(rx * sin, ry * cos)
    return [cx - half_width, cy - half_height, cx + half_width, cy + half_height]


def _points_extent(shape: dict[str, Any], where: str) -> list[float]:
    """The extent of a polygon's or polyline's points."""
    xs, ys = shape.get("all_points_x"), shape.get("all_points_y")
    if not isinstance(xs, list) or not isinstance(ys, list) or not xs or len(xs) != len(ys):
        shown = [len(p) if isinstance(p, list) else p for p in (xs, ys)]
        raise ValueError(
            f"{where}: {shape['name']} all_points_x and all_points_y must be lists of as many "
            f"numbers, at least one (they are of {shown[0]!r} and {shown[1]!r})"
        )
    for key, values in (("all_points_x", xs), ("all_points_y", ys)):
        bad = next((k for k, value in enumerate(values) if not _is_number(value)), None)
        if bad is not None:
            said = f"{values[bad]!r}, not a number"
            raise ValueError(f"{where}: {shape['name']} {key}[{bad}] is {said}")
    return [min(xs), min(ys), max(xs), max(ys)]


def _number(shape: dict[str, Any], key: str, where: str) -> float:
    """The number ``shape[key]`` of a shape."""
    value = shape.get(key)
    if not _is_number(value):
        said = "missing" if key not in shape else f"{value!r}, not a number"
        raise ValueError(f"{where}: {shape['name']} {key} is {said}")
    return float(value)


def _is_number(value: Any) -> bool:
    """Whether ``value`` is a finite JSON number (not ``true``, which Python takes for 1)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _refuse_images_named_twice(entries: dict[str, dict[str, Any]], file: Path) -> None:
    """Refuse a file that names one image file under two keys (VIA keys an image by its
    name and size: the file replaced after labelling), which would train on it twice."""
    keys: dict[str, str] = {}
    for key, entry in entries.items():
        first = keys.setdefault(entry["filename"], key)
        if first != key:
            raise ValueError(
                f"{file}, {entry['filename']}: named by two images, {first!r} and {key!r}; "
                "remove one from the project"
            )
