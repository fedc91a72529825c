"""COCO detection reader (the ``instances_*.json`` format, read with :mod:`json`).

Category ids, which need not be contiguous, become labels ``1..C`` in increasing
category-id order; ``label_to_category_id`` and ``category_id_to_label`` translate
between the two (detections must be written back with category ids for COCO evaluation).

``bbox`` is ``[x, y, width, height]`` in continuous pixels and becomes
``x1, y1, x2, y2 = x, y, x + width, y + height``. A negative ``width`` or ``height`` (a box
dragged leftwards or upwards, saved as drawn) is read as the box between its corners,
as the VOC reader reads one whose ``xmax < xmin``, and counted in the same warning. An
annotation without one, or with an empty one (some tools export masks only) takes the
extent of its ``segmentation``: of its polygons' points, or of its RLE, compressed or
not, as pycocotools' ``toBbox`` gives it.

Image ids are integers or strings (``"img_001"``, as some exporters write them). A
target's ``image_id`` is an integer: a string id is known by a number past the file's
largest integer id (:func:`image_numbers`), in the reader and in evaluation against the
file alike. Records that list one file under several ids are one image, with the boxes of
all (:func:`merged_image_ids`), in both too.

Crowd annotations (``iscrowd = 1``) are kept with ``target["iscrowd"]`` set: evaluation
needs them, training should not see them - :func:`drop_crowd` removes them, and the
training loaders call it. Images without annotations are kept as examples with no
object. Each image file's header is read when the file is opened: where an image's
``width`` and ``height`` are its file's turned by 90 degrees and the file has an EXIF
orientation that turns it so, the image is turned on reading (the annotation was drawn
on the turned image); where they disagree otherwise, the file's size is taken; either is
reported in a warning. Boxes are clipped to that size; annotations whose box has no
area, or none inside the image, are left out and listed in ``skipped_annotations``. Both
are counted in ``box_audit`` and reported in a warning when the file is read.
"""

from __future__ import annotations

import json
import math
import re
import reprlib
import warnings
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path, PureWindowsPath
from typing import Any

import torch
from pycocotools import mask as mask_utils
from torch import Tensor

from ..counted import counted
from .box_audit import BoxAudit
from .dataset import (
    ImageFileDataset,
    Sample,
    Target,
    TransparentWrapper,
    boxes_kept,
    boxes_tensor,
    empty_split_error,
    first_few,
    image_sizes,
    images_there,
    read_image_levels,
    read_text,
    target_of,
    written_path,
)
from .labelme import is_labelme_data

# What an empty split's message adds of a file whose ``images`` list is empty.
EMPTY_IMAGES_LIST = "its 'images' list is empty"

# An image id as a COCO file writes it (see the module).
ImageId = int | str


class COCODetection(ImageFileDataset):
    """Images and boxes of a COCO annotation file.

    Args:
        images_dir: the folder that ``file_name`` of every image is relative to; or the
            folders it may be, of which the one holding most of the first images is
            taken (exporters differ: Label Studio writes ``images/x.jpg`` from the file's
            own folder, CVAT ``x.jpg`` inside ``images/``). A ``file_name`` written with
            Windows' ``\\`` separators is read with ``/``; one that leaves the folder
            (Label Studio's path on its server) is looked for by its last part.
        annotation_file: the COCO json file.
        split: the split the file is (``train`` of ``instances_train.json``), for the error
            of an empty one; ``None`` for a file without splits.
        keep_missing_images: keep the images whose files are not there, for a caller that
            reads an image of the file given apart from it (``explain``), by name.

    A category that has no annotation and is the ``supercategory`` of another is not a
    class: Roboflow's exports name the dataset so, as category 0. An image whose file is
    not there (deleted after labelling) is left out with its annotations, in one warning
    (:func:`~.dataset.images_there`), unless ``keep_missing_images``.

    ``dataset[i]`` is ``(image, target)``, the image as :func:`~.dataset.read_image_levels`
    decodes it (``uint8[3, H, W]`` levels of an 8-bit file), with target
    ``{"boxes": float32[N, 4], "labels": int64[N], "iscrowd": bool[N], "image_id": int}``,
    ``image_id`` being the COCO image id (the number of a string one,
    :func:`image_numbers`, which :meth:`file_image_id` gives back). Images keep the order
    of the file's ``images``.

    Attributes:
        class_names: category names in label order.
        label_to_category_id: ``{label: COCO category id}``.
        category_id_to_label: the inverse.
        skipped_annotations: the annotation records left out for a box with no area
            (in the file, or inside the image).
        box_audit: the boxes clipped to their image or left out.

    Raises:
        FileNotFoundError: the annotation file does not exist.
        ValueError: unreadable json, an empty ``images`` list or none of its images
            there (:func:`empty_split_error`: an empty training split would leave
            training the others alone without a word), an image without ``file_name`` or
            whose id is neither an integer nor a string, or an annotation with such an
            image id, an unknown category id, an ``iscrowd`` other than 0 or 1 or a
            malformed ``bbox`` (or, without one, a malformed ``segmentation``), named by
            its ``id``. An annotation whose
            ``image_id`` no image has is left out with a warning.

    An image whose ``file_name`` more than one record lists, under different ids, is read
    once, at its first record's place and id, with the boxes of all its records, in one
    warning (:func:`merged_image_ids`).
    """

    def __init__(
        self,
        images_dir: str | Path | Sequence[str | Path],
        annotation_file: str | Path,
        split: str | None = None,
        keep_missing_images: bool = False,
    ) -> None:
        self.annotation_file = Path(annotation_file)
        data = load_coco_json(self.annotation_file)
        check_coco_records(data, self.annotation_file)
        if not data["images"]:
            raise empty_split_error(self.annotation_file, split, EMPTY_IMAGES_LIST)
        self.images_dir = _images_dir(images_dir, data["images"])
        self._set_classes(data)
        image_ids, position = self._set_images(data["images"], split, keep_missing_images)
        self._set_targets(data.get("annotations", []), image_ids, position)

    def _set_classes(self, data: dict[str, Any]) -> None:
        """``class_names`` and the label <-> category id maps: the categories that are
        classes (:func:`_classes`), labelled ``1..C`` by increasing id."""
        categories = sorted(_classes(data), key=lambda c: c["id"])
        category_ids = [c["id"] for c in categories]
        if len(set(category_ids)) != len(category_ids):
            raise ValueError(f"{self.annotation_file}: duplicate category ids in {category_ids}")
        self.class_names: tuple[str, ...] = tuple(str(c["name"]) for c in categories)
        self.label_to_category_id = {i + 1: cid for i, cid in enumerate(category_ids)}
        self.category_id_to_label = {cid: i + 1 for i, cid in enumerate(category_ids)}

    def _set_images(
        self, images: list[dict[str, Any]], split: str | None, keep_missing: bool
    ) -> tuple[set[ImageId], dict[ImageId, int]]:
        """The image records whose files are there, those files and their sizes (read
        from the files' headers; the others left out, :func:`images_there`), a record
        that lists the file of an earlier one merged into it (:func:`merged_image_ids`);
        the ids of all images, and the place of each kept one among them, which its
        annotations are filed by."""
        file = self.annotation_file
        ids = {image["id"] for image in images}
        if len(ids) != len(images):
            counts = Counter(image["id"] for image in images)
            repeated = [i for i, count in counts.items() if count > 1]
            raise ValueError(
                f"{file}: duplicate image ids ({first_few([repr(i) for i in repeated])})"
            )
        self._image_numbers = image_numbers(images)
        self._file_ids = {number: i for i, number in self._image_numbers.items()}
        merged = merged_image_ids(images, file)
        images = [image for image in images if image["id"] not in merged]
        files = [_image_file(self.images_dir, image, file) for image in images]
        kept = range(len(files)) if keep_missing else images_there(files, file, split)
        self._images: list[dict[str, Any]] = [images[k] for k in kept]
        self.image_files = [files[k] for k in kept]
        names = [str(path) for path in self.image_files]
        recorded = [image_record_size(image) for image in self._images]
        sizes = image_sizes(recorded, self.image_files, names, str(file), "width and height")
        self._sizes, self._turned = sizes.sizes, sizes.turned
        position = {image["id"]: k for k, image in enumerate(self._images)}
        # A record merged into an earlier one files its annotations with that one's.
        position.update({i: position[first] for i, first in merged.items() if first in position})
        return ids, position

    def _set_targets(
        self, annotations: list[Any], image_ids: set[ImageId], position: dict[ImageId, int]
    ) -> None:
        """Each image's boxes (``float32[N, 4]``), labels and crowd flags from the
        ``annotations`` of the ``image_ids``, filed by ``position`` (those of an image
        left out for want of its file go with it); those without area left out, in
        ``skipped_annotations``, and the boxes clipped or left out warned about."""
        file = self.annotation_file
        rows: list[list[list[float]]] = [[] for _ in self._images]
        labels: list[list[int]] = [[] for _ in self._images]
        crowd: list[list[bool]] = [[] for _ in self._images]
        self.skipped_annotations: list[dict[str, Any]] = []
        self.box_audit = BoxAudit()
        file_names = {i: self._images[k]["file_name"] for i, k in position.items()}
        for k, ann in of_listed_images(annotations, image_ids, file):
            name = annotation_name(ann, k, file_names)
            check_annotation_ids(ann, name, image_ids, self.category_id_to_label, file)
            is_crowd = crowd_flag(ann, name, file)
            k_image = position.get(ann["image_id"])
            if k_image is None:
                continue
            box = self._box(ann, name, k_image)
            if box is None:
                self.skipped_annotations.append(ann)
                continue
            rows[k_image].append(box)
            labels[k_image].append(self.category_id_to_label[ann["category_id"]])
            crowd[k_image].append(is_crowd)
        self._boxes = [boxes_tensor(r) for r in rows]
        self._labels = [torch.tensor(v, dtype=torch.int64) for v in labels]
        self._crowd = [torch.tensor(v, dtype=torch.bool) for v in crowd]
        self.box_audit.warn(str(file))

    def _box(self, ann: dict[str, Any], name: str, k_image: int) -> list[float] | None:
        """``x1, y1, x2, y2`` of an annotation, clipped to its image when the image's size
        is known; ``None`` (counted) when it has no area there."""
        x, y, w, h = annotation_bbox(ann, name, self.annotation_file)
        if dropped_without_area(ann, name, (x, y, w, h), self.box_audit):
            return None
        box = bbox_corners(x, y, w, h)
        size = self._sizes[k_image]
        if size is None:
            return box
        if w < 0 or h < 0:
            self.box_audit.swap(box, size[1], size[0], name)
        return self.box_audit.clip(box, size[1], size[0], name)

    def target(self, index: int) -> Target:
        """The target of image ``index``, without decoding the image."""
        self._check_index(index)
        return {
            "boxes": self._boxes[index].clone(),
            "labels": self._labels[index].clone(),
            "iscrowd": self._crowd[index].clone(),
            "image_id": self._image_numbers[self._images[index]["id"]],
        }

    def file_image_id(self, image_id: int) -> ImageId:
        """The id the file gives the image of a target's ``image_id``: that integer, or
        the string it numbers (:func:`image_numbers`), as a results file for the file's
        tools (pycocotools) writes it."""
        return self._file_ids[image_id]

    def _annotated_size(self, index: int) -> tuple[int, int] | None:
        """``(height, width)`` of the image as read (see :func:`~.dataset.image_sizes`);
        None when neither its file nor the json tells."""
        return self._sizes[index]

    def _read_image(self, index: int) -> Tensor:
        return read_image_levels(self.image_path(index), exif_transpose=index in self._turned)


def of_listed_images(
    annotations: list[Any], image_ids: Collection[ImageId], file: Path, quiet: bool = False
) -> list[tuple[int, Any]]:
    """The ``annotations`` with their places in ``file``, less those whose ``image_id`` is
    an id (an integer or a string) that no image has, left out with one warning naming
    them (none where ``quiet``: the reader has named them already): an image taken out of
    the ``images`` list with its annotations left behind (a file edited by hand, or
    merged) leaves nothing to draw them on, and pycocotools, torchvision and detectron2
    pass them over. One whose ``image_id`` is an image's id written as the other kind
    (the string ``"1"`` for the integer 1) is named with that likely cause, and left out
    alike. The reader and evaluation against the file both leave them out here, two
    calls below the one the warning points at (``COCODetection(...)``,
    ``COCOEvaluator.from_coco_json(...)``)."""
    orphans = [
        k
        for k, ann in enumerate(annotations)
        if isinstance(ann, dict)
        and is_image_id(ann.get("image_id"))
        and ann["image_id"] not in image_ids
    ]
    if orphans and not quiet:
        named = [
            f"{annotation_name(annotations[k], k)} "
            f"({_orphan_image_id(annotations[k]['image_id'], image_ids)})"
            for k in orphans
        ]
        their = "its" if len(orphans) == 1 else "their"
        warnings.warn(
            f"{file}: {counted(len(orphans), 'annotation is', 'annotations are')} left out, no "
            f"image has {their} image_id: {first_few(named)}",
            stacklevel=4,
        )
    gone = set(orphans)
    return [(k, ann) for k, ann in enumerate(annotations) if k not in gone]


def _orphan_image_id(image_id: ImageId, image_ids: Collection[ImageId]) -> str:
    """How the warning of :func:`of_listed_images` names an ``image_id`` that no image
    has: with the likely cause where an image has it written as the other kind (the
    integer 1 for the string ``"1"``, or the reverse), which the ids do not match."""
    if isinstance(image_id, str):
        digits = re.fullmatch(r"-?[0-9]+", image_id)
        other: ImageId | None = int(image_id) if digits else None
        kinds = "a string where the image's id is the integer"
    else:
        other, kinds = str(image_id), "an integer where the image's id is the string"
    if other is None or other not in image_ids:
        return f"image_id {image_id!r}"
    return f"image_id {image_id!r}, {kinds} {other!r}"


def merged_image_ids(
    images: list[dict[str, Any]], file: Path, quiet: bool = False
) -> dict[ImageId, ImageId]:
    """``{id: first id}`` of the records of ``images`` (checked,
    :func:`check_coco_records`) whose ``file_name`` names the file (as the reader finds
    it, :func:`_in_folder`) of an earlier record, of another id: an exporter's glitch, or
    two annotation sessions of one image merged. Each image is read once, at its first
    record's place and id, with the annotations of all its ids: read as two, each copy
    taught its objects of the other as background and was scored twice. One warning
    names the files (none where ``quiet``: the reader has named them already)."""
    records: dict[Path, list[dict[str, Any]]] = {}
    for image in images:
        name = _file_name(image)
        if name is not None:
            records.setdefault(_in_folder(name), []).append(image)
    shared = [listed for listed in records.values() if len(listed) > 1]
    if shared and not quiet:
        named = [
            f"{listed[0]['file_name']} (ids {', '.join(repr(i['id']) for i in listed)})"
            for listed in shared
        ]
        warnings.warn(
            f"{file}: {counted(len(shared), 'file name is', 'file names are')} listed under "
            f"more than one image id, each image read once with the boxes of all its ids: "
            f"{first_few(named)}",
            stacklevel=4,
        )
    return {image["id"]: listed[0]["id"] for listed in shared for image in listed[1:]}


def drop_crowd(target: Target) -> Target:
    """``target`` without its crowd boxes (those with ``target["iscrowd"]`` set).

    Every per-box entry is filtered; a target without ``"iscrowd"`` comes back as is.
    The flags may be of any dtype, 0 or 1: the readers' are bool, torchvision's tutorial
    and reference scripts give int64.
    """
    crowd = target.get("iscrowd")
    if not isinstance(crowd, Tensor) or not bool(crowd.any()):
        return target
    # As a mask: ~ of int64 flags would be indices (-1, -2), keeping the wrong boxes.
    return boxes_kept(target, ~crowd.bool())


class WithoutCrowd(TransparentWrapper):
    """``dataset`` with its crowd boxes taken out of every target (:func:`drop_crowd`), as
    the training loader gives them: what is trained on, for whoever reads the targets
    before (the recipe, the check that there is a box to learn)."""

    def __getitem__(self, index: int) -> Sample:
        image, target = self.dataset[index]
        return image, drop_crowd(target)

    def target(self, index: int) -> Target:
        """The target of item ``index``, read as cheaply as the wrapped dataset allows."""
        return drop_crowd(target_of(self.dataset, index))


def load_coco_json(path: Path) -> dict[str, Any]:
    """The object of a COCO json file; a one-line error naming the file when there is
    none or it is not such an object."""
    if not path.is_file():
        raise FileNotFoundError(f"COCO annotation file {path} does not exist")
    try:
        data = json.loads(read_text(path))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid json ({error})") from error
    if is_labelme_data(data):  # one image's shapes: its folder is the dataset
        raise ValueError(f"{path}: a LabelMe file, not COCO: read its folder, {path.parent}")
    if not isinstance(data, dict) or "images" not in data or "categories" not in data:
        raise ValueError(f"{path}: not a COCO detection file (needs 'images' and 'categories')")
    return data


def listed_image_names(file: Path) -> list[Path] | None:
    """Where the reader looks for each image the COCO ``file`` lists, relative to its image
    folder (its ``file_name``, :func:`_in_folder`); ``None`` where ``file`` is no readable
    COCO file or an image has no ``file_name``, which opening it names."""
    try:
        images = load_coco_json(file)["images"]
    except (OSError, ValueError):
        return None
    names = [_file_name(image) for image in images] if isinstance(images, list) else [None]
    return None if None in names else [_in_folder(name) for name in names if name is not None]


def check_coco_records(data: Any, file: Path) -> None:
    """The fields the reader relies on: categories with an integer ``id`` and a ``name``,
    images with an integer or string ``id`` (each named by position when it is not)."""
    if not isinstance(data, dict) or not isinstance(data.get("categories"), list):
        raise ValueError(f"{file}: expected a COCO object with a 'categories' list")
    if not isinstance(data.get("images"), list):
        raise ValueError(f"{file}: expected a COCO object with an 'images' list")
    if not isinstance(data.get("annotations", []), list):
        raise ValueError(f"{file}: 'annotations' must be a list")
    for k, category in enumerate(data["categories"]):
        if not isinstance(category, dict) or not _is_id(category.get("id")):
            raise ValueError(f"{file}: category #{k} has no integer id")
        name = category.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"{file}: category {category['id']} has no name")
    for k, image in enumerate(data["images"]):
        if not isinstance(image, dict) or not is_image_id(image.get("id")):
            shown = image.get("id") if isinstance(image, dict) else image
            raise ValueError(f"{file}: image #{k} has id {shown!r}, not an integer or a string")


def image_numbers(images: list[dict[str, Any]]) -> dict[ImageId, int]:
    """The integer each image id of a file's ``images`` (checked, :func:`check_coco_records`)
    is known by in targets and evaluation: an integer id, itself; a string id, a number
    past the file's largest integer id, in the order of ``images``. pycocotools would take
    strings, but a target's ``image_id`` is an integer (and COCOeval cannot sort a file's
    ids where both kinds are among them)."""
    ids = [image["id"] for image in images]
    numbers: dict[ImageId, int] = {i: i for i in ids if _is_id(i)}
    after = max(numbers.values(), default=0) + 1
    strings = [i for i in ids if isinstance(i, str)]
    numbers.update({s: after + k for k, s in enumerate(strings)})
    return numbers


def annotation_name(ann: Any, k: int, file_names: Mapping[ImageId, str] | None = None) -> str:
    """How errors name annotation ``k`` of a file: by its ``id``, else its position, and
    the ``file_name`` of its image where ``file_names`` (by image id) has it:
    ``annotation 7 of a.jpg``, to find it in a labelling tool."""
    if not isinstance(ann, dict):
        return f"annotation #{k}"
    image_id = ann.get("image_id")
    image = file_names.get(image_id) if file_names and isinstance(image_id, (int, str)) else None
    return f"annotation {ann.get('id', f'#{k}')}" + (f" of {image}" if image else "")


def check_annotation_ids(
    ann: Any,
    name: str,
    image_ids: Collection[ImageId],
    category_ids: Collection[int],
    file: Path,
) -> None:
    """A one-line error naming annotation ``name`` unless it is an object whose
    ``image_id`` and ``category_id`` are among the file's."""
    if not isinstance(ann, dict):
        raise ValueError(f"{file}: {name} is {type(ann).__name__}, not an object")
    if not is_image_id(ann.get("image_id")):
        raise ValueError(
            f"{file}: {name} has image_id {ann.get('image_id')!r}, not an integer or a string"
        )
    if ann["image_id"] not in image_ids:
        raise ValueError(f"{file}: {name} has unknown image_id {ann.get('image_id')!r}")
    if not _is_id(ann.get("category_id")) or ann["category_id"] not in category_ids:
        raise ValueError(
            f"{file}: {name} has category_id {ann.get('category_id')!r}, not one of "
            f"{sorted(category_ids)}"
        )


def crowd_flag(ann: dict[str, Any], name: str, file: Path) -> bool:
    """Whether annotation ``name`` is a crowd region: its ``iscrowd`` 1 (or true), not
    where it is 0 (or false, or absent); a one-line error naming it otherwise. A string
    ``"0"`` is refused rather than read as true, which would leave its box out of
    training and scoring without a word."""
    crowd = ann.get("iscrowd", 0)
    if crowd not in (0, 1):
        raise ValueError(f"{file}: {name} has iscrowd {crowd!r}, not 0 or 1")
    return bool(crowd)


def bbox_corners(x: float, y: float, width: float, height: float) -> list[float]:
    """``x1, y1, x2, y2`` of a COCO ``bbox``: a negative ``width`` or ``height`` (a box
    dragged leftwards or upwards, saved as drawn, ``x`` its right edge) reaches back from
    ``x`` or ``y``, and the box between its corners is meant."""
    x1, x2 = sorted((x, x + width))
    y1, y2 = sorted((y, y + height))
    return [x1, y1, x2, y2]


def dropped_without_area(
    ann: dict[str, Any], name: str, bbox: tuple[float, ...], audit: BoxAudit
) -> bool:
    """Whether ``bbox`` (``x, y, width, height`` of annotation ``name``,
    :func:`annotation_bbox`) has a side of 0, counted in ``audit`` as dropped where it
    has."""
    x, y, w, h = bbox
    if w != 0 and h != 0:
        return False
    shown = ann.get("bbox") or f"segmentation extent [{x:g}, {y:g}, {w:g}, {h:g}]"
    audit.drop(f"{name} {shown}", "no area")
    return True


def annotation_bbox(ann: dict[str, Any], name: str, file: Path) -> tuple[float, ...]:
    """``x, y, width, height`` of an annotation: its ``bbox``, else the extent of its
    ``segmentation`` (:func:`segmentation_extent`); a one-line error naming it unless its
    ``bbox`` is four finite numbers or, without one, it has a segmentation. An empty
    ``bbox`` (``[]``, as LabelMe-to-COCO converters write it beside the polygons) is
    none."""
    bbox = ann.get("bbox")
    if bbox in (None, []) and ann.get("segmentation"):
        return segmentation_extent(ann["segmentation"], name, file)
    if (
        not isinstance(bbox, list)
        or len(bbox) != 4
        or not all(_is_number(v) and math.isfinite(v) for v in bbox)
    ):
        raise ValueError(f"{file}: {name} has bbox {bbox!r}, not [x, y, width, height]")
    return tuple(map(float, bbox))


def segmentation_extent(segmentation: Any, name: str, file: Path) -> tuple[float, ...]:
    """``x, y, width, height`` enclosing a COCO segmentation: polygons ``[[x1, y1, x2, y2,
    x3, y3, ...], ...]`` (the extent of all their points) or an RLE ``{"size": [height,
    width], "counts": ...}``, its counts a list (uncompressed) or a string (compressed);
    a one-line error naming annotation ``name`` when it is neither, or its extent is not
    finite."""
    extent = None
    if isinstance(segmentation, list) and all(map(_is_polygon, segmentation)):
        extent = _polygons_extent(segmentation)
    elif _is_rle(segmentation):
        extent = _rle_extent(segmentation)
    if extent is None or not all(map(math.isfinite, extent)):
        raise ValueError(
            f"{file}: {name} has no bbox, and its segmentation {reprlib.repr(segmentation)} "
            "is neither polygons [[x1, y1, x2, y2, x3, y3, ...]] nor an RLE {'size': "
            "[height, width], 'counts': ...}"
        )
    return extent


def segmentation_area(segmentation: Any, size: tuple[int, int] | None) -> float | None:
    """The pixel area of a COCO segmentation as pycocotools measures it (the ``area``
    COCO's own files carry): an RLE's pixels, or those of polygons rasterised on the
    ``(height, width)`` image; ``None`` for anything else, or polygons on an image of
    unknown size."""
    if _is_rle(segmentation):
        return float(mask_utils.area(_compressed_rle(segmentation)))
    if size is None or not isinstance(segmentation, list) or not segmentation:
        return None
    if not all(map(_is_polygon, segmentation)):
        return None
    rles = mask_utils.frPyObjects(segmentation, *size)
    return float(mask_utils.area(mask_utils.merge(rles)))


def _polygons_extent(polygons: list[list[float]]) -> tuple[float, ...]:
    """``x, y, width, height`` enclosing the points of ``polygons``."""
    xs = [v for polygon in polygons for v in polygon[0::2]]
    ys = [v for polygon in polygons for v in polygon[1::2]]
    x1, y1, x2, y2 = float(min(xs)), float(min(ys)), float(max(xs)), float(max(ys))
    return x1, y1, x2 - x1, y2 - y1


def _rle_extent(rle: dict[str, Any]) -> tuple[float, ...]:
    """``x, y, width, height`` of an RLE's mask, as pycocotools' ``toBbox`` gives it."""
    return tuple(float(v) for v in mask_utils.toBbox(_compressed_rle(rle)))


def _compressed_rle(rle: dict[str, Any]) -> dict[str, Any]:
    """An RLE as pycocotools' mask functions take it: counts compressed to a string."""
    if isinstance(rle["counts"], list):
        return mask_utils.frPyObjects(rle, *rle["size"])
    return rle


def _is_polygon(polygon: Any) -> bool:
    """Whether ``polygon`` is a list of three or more ``x, y`` points, finite numbers."""
    return (
        isinstance(polygon, list)
        and len(polygon) >= 6
        and len(polygon) % 2 == 0
        and all(_is_number(v) and math.isfinite(v) for v in polygon)
    )


# pycocotools counts an RLE's pixels in 32 bits, and writes a compressed count in the
# characters "0" (48) to "o" (111).
_RLE_PIXELS = 2**32
_RLE_CHARACTERS = frozenset(map(chr, range(48, 112)))


def _is_rle(segmentation: Any) -> bool:
    """Whether ``segmentation`` is an RLE: a positive ``size`` ``[height, width]`` and
    ``counts`` a compressed string or a list of counts that cover the image."""
    if not isinstance(segmentation, dict):
        return False
    size, counts = segmentation.get("size"), segmentation.get("counts")
    if not (isinstance(size, list) and len(size) == 2 and all(_is_id(v) and v > 0 for v in size)):
        return False
    if size[0] * size[1] >= _RLE_PIXELS:
        return False
    if isinstance(counts, str):
        return _RLE_CHARACTERS.issuperset(counts)
    return (
        isinstance(counts, list)
        and all(_is_id(c) and c >= 0 for c in counts)
        and sum(counts) == size[0] * size[1]
    )


def image_record_size(image: dict[str, Any]) -> tuple[int, int] | None:
    """``(height, width)`` of an image record, None when it lacks them."""
    height, width = image.get("height"), image.get("width")
    if _is_id(height) and _is_id(width) and height > 0 and width > 0:
        return height, width
    return None


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_image_id(value: Any) -> bool:
    """Whether ``value`` is an image id as a COCO file may write it: an integer (not a
    bool) or a string."""
    return _is_id(value) or isinstance(value, str)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# Image records looked for in each candidate folder: enough that one odd record (a file
# missing, or named from another folder) does not decide for the others.
_IMAGES_PROBED = 20


def _images_dir(candidates: str | Path | Sequence[str | Path], images: list[Any]) -> Path:
    """The candidate folder holding most of the first :data:`_IMAGES_PROBED` images (the
    first of those that tie, the first folder if none holds any)."""
    if isinstance(candidates, (str, Path)):
        return Path(candidates)
    folders = [Path(c) for c in candidates]
    names = [_file_name(image) for image in images[:_IMAGES_PROBED]]
    names = [_in_folder(name) for name in names if name is not None]
    found = [sum((folder / name).is_file() for name in names) for folder in folders]
    return folders[found.index(max(found))]


def _file_name(image: Any) -> Path | None:
    """The ``file_name`` of an image record as a relative path (a Windows tool's ``\\``
    separators read as ``/``), or ``None`` when it has none."""
    name = image.get("file_name") if isinstance(image, dict) else None
    return written_path(name) if isinstance(name, str) and name else None


def _classes(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The categories that are classes: not a placeholder without annotations that only
    groups others (Roboflow's category 0, named after the dataset, which may be the name
    of its one class too)."""
    categories = data["categories"]
    annotations = data.get("annotations") or []
    ids = (a.get("category_id") for a in annotations if isinstance(a, dict))
    used = {i for i in ids if _is_id(i)}
    parents = Counter(
        c.get("supercategory") for c in categories if isinstance(c.get("supercategory"), str)
    )

    def groups_others(category: dict[str, Any]) -> bool:
        # Whether another category has its name as supercategory: its own does not count
        # (COCO's "person" is its own, as is the class Roboflow names as its project).
        own = category.get("supercategory") == category["name"]
        return parents[category["name"]] > own

    return [c for c in categories if c["id"] in used or not groups_others(c)]


def _in_folder(name: Path) -> Path:
    """Where an image's ``file_name`` is looked for in the image folder: itself, or its
    last part where it leaves the folder. Label Studio writes the path an image had on
    its server (``../../label-studio/media/upload/4/x.png``, ``/data/upload/1/x.png``)
    and exports the image as ``images/x.png``; a script run on Windows, the image's own
    path there (``C:\\data\\x.png``)."""
    leaves = name.is_absolute() or PureWindowsPath(name).drive or ".." in name.parts
    return Path(name.name) if leaves else name


def _image_file(images_dir: Path, image: dict[str, Any], file: Path) -> Path:
    """The file of an image record, which must lie inside ``images_dir``: a
    ``file_name`` that leaves it is taken by its last part, where that is there."""
    relative = _file_name(image)
    if relative is None:
        raise ValueError(f"{file}: image {image['id']} has no file_name")
    inside = _in_folder(relative)
    if inside != relative and not (images_dir / inside).is_file():
        raise ValueError(
            f"{file}: image {image['id']} has file_name {image['file_name']!r}, which leaves "
            f"the image folder {images_dir}, and {inside} is not in it either"
        )
    return images_dir / inside
