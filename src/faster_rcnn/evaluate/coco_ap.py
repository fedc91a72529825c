"""COCO box AP and AR, computed by pycocotools itself.

The ground truth is either collected from the targets (an in-memory COCO dataset is
built, box area as the object area unless the target carries ``"area"``) or an existing
COCO annotation file (:meth:`COCOEvaluator.from_coco_json`). The detections go through
``COCO.loadRes`` and ``COCOeval`` with the default parameters: IoU 0.50:0.05:0.95, at
most 1/10/100 detections per image and class, areas small [0, 32^2], medium [32^2, 96^2]
and large [96^2, 1e10], each range closed: an object of area exactly 32^2 or 96^2 is in
two sizes.

Pascal VOC's ``difficult`` objects of in-memory ground truth are ignored as in VOC mAP:
a detection on one, by IoU, is neither a true nor a false positive, however many found it
before, and missing one costs nothing. COCOeval's matching stays: a detection goes to a
free object to find that it reaches before a difficult one, even one that it overlaps
more, where VOC mAP ignores it (see :class:`COCOevalIgnoring`). They are not sent as
crowd regions (``iscrowd``), which COCOeval matches by the share of the detection inside
them.

pycocotools reports -1 for a figure without any ground truth (no small objects, say);
here that is NaN, so that it can't pass for a score.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import os
import warnings
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from pathlib import Path, PurePath, PureWindowsPath
from typing import Any

import numpy as np
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from torch import Tensor

from ..counted import counted
from ..data.box_audit import BoxAudit
from ..data.coco import (
    ImageId,
    annotation_bbox,
    annotation_name,
    bbox_corners,
    check_annotation_ids,
    check_coco_records,
    crowd_flag,
    dropped_without_area,
    image_numbers,
    image_record_size,
    load_coco_json,
    merged_image_ids,
    of_listed_images,
    segmentation_area,
)
from .inputs import (
    box_flags,
    check_num_classes,
    check_one_per_image,
    foreground_class_names,
    per_box,
    read_detections,
    read_ground_truth,
)

# COCOeval's largest maxDets: the detections of a class an image that it scores, its best
# by score (AP and AR100 alike).
COCO_MAX_DETECTIONS = 100

# The order of COCOeval.stats for boxes.
STAT_NAMES = (
    "AP",
    "AP50",
    "AP75",
    "APs",
    "APm",
    "APl",
    "AR1",
    "AR10",
    "AR100",
    "ARs",
    "ARm",
    "ARl",
)

# Where an image record of load_coco_annotations keeps the id its file gives it, its
# "id" being the number the reader gives that id (a string id's differs).
ID_IN_FILE = "id_in_file"

# Where the dataset of load_coco_annotations keeps the number of each id its file gives
# an image, those of the records merged into an earlier one of the same file too.
FILE_ID_NUMBERS = "file_id_numbers"


class COCOEvaluator:
    """Accumulates detections (and ground truth) image by image, then runs COCOeval.

    Args:
        num_classes: classes including the background; labels are ``1..num_classes-1``.
        class_names: names of classes ``1..num_classes-1`` (or of ``0..num_classes-1``,
            background first); default the label as text.
        label_to_category_id: our label -> COCO ``category_id``; default the identity.
    """

    def __init__(
        self,
        num_classes: int,
        class_names: Sequence[str] | None = None,
        label_to_category_id: Mapping[int, int] | None = None,
    ) -> None:
        check_num_classes(num_classes)
        labels = range(1, num_classes)
        names = foreground_class_names(num_classes, class_names)
        if label_to_category_id is None:
            label_to_category_id = {label: label for label in labels}
        missing = [label for label in labels if label not in label_to_category_id]
        if missing:
            raise ValueError(f"label_to_category_id has no category id for labels {missing}")
        self.num_classes = num_classes
        self.class_names = names
        self.label_to_category_id = {label: int(label_to_category_id[label]) for label in labels}
        self._categories = [
            {"id": self.label_to_category_id[label], "name": name}
            for label, name in zip(labels, names, strict=True)
        ]
        # Set by from_coco_json: the ground truth then comes from the file, and the
        # number each of its image ids is known by.
        self._coco_gt: COCO | None = None
        self._coco_file: Path | None = None
        self._file_ids: dict[ImageId, int] = {}
        self.reset()

    @classmethod
    def from_coco_json(
        cls,
        path: str | os.PathLike[str],
        label_to_category_id: Mapping[int, int] | None = None,
        class_names: Sequence[str] | None = None,
        read_before: bool = False,
    ) -> COCOEvaluator:
        """Evaluate against a COCO annotation file instead of the targets.

        Args:
            path: a COCO ``instances_*.json``.
            label_to_category_id: our label -> ``category_id``; default labels
                ``1..K`` for the file's categories in increasing id order (the usual
                contiguous mapping of COCO datasets).
            class_names: the names of labels ``1..K`` where the file may lack some of
                them (a test split without a class the model has): a label without a
                category id is then not scored, its detections left out. Default: the
                file's names, each label mapped.
            read_before: the file was opened as the dataset evaluated, whose reader
                warned of what it leaves out or turns: not warned of again
                (:func:`load_coco_annotations`).

        Then :meth:`update` needs each image's COCO ``image_id`` (an argument, the
        file's own id or the reader's number of it, or the target's ``"image_id"``); the
        targets' boxes are not used. Only the images seen by :meth:`update` are
        evaluated.
        """
        coco_gt = load_coco_annotations(path, read_before)
        category_ids = sorted(coco_gt.getCatIds())
        if label_to_category_id is None:
            label_to_category_id = {i + 1: cat for i, cat in enumerate(category_ids)}
        unknown = sorted(set(label_to_category_id.values()) - set(category_ids))
        if unknown:
            raise ValueError(f"{path}: category ids {unknown} are not in the file")
        labels = sorted(label_to_category_id)
        if class_names is None:
            if labels != list(range(1, len(labels) + 1)):
                raise ValueError(f"labels must be 1..K with no gap, got {labels}")
            class_names = [coco_gt.cats[label_to_category_id[label]]["name"] for label in labels]
        elif not set(labels) <= set(range(1, len(class_names) + 1)):
            raise ValueError(
                f"labels {labels} are not among the {counted(len(class_names), 'class')}"
            )
        evaluator = cls(len(class_names) + 1, class_names)
        evaluator.label_to_category_id = {
            label: int(label_to_category_id[label]) for label in labels
        }
        evaluator._coco_gt = coco_gt
        evaluator._coco_file = Path(path)
        evaluator._file_ids = coco_gt.dataset[FILE_ID_NUMBERS]
        return evaluator

    def check_file_names(self, images: Iterable[tuple[int, str]]) -> None:
        """Refuse an image whose file name is not the one the annotation file gives its
        id: the file of another split (Roboflow names each split's
        ``_annotations.coco.json``) would otherwise pair images by id alone and score
        each against another image's boxes.

        Args:
            images: ``(image_id, file name)`` of each image to be evaluated.

        Raises:
            ValueError: naming the id and both files.
        """
        if self._coco_gt is not None:
            check_file_names(self._coco_gt, self._coco_file, images)

    def reset(self) -> None:
        """Forget everything accumulated so far."""
        self._image_ids: list[int] = []
        self._seen: set[int] = set()
        self._gt_annotations: list[dict[str, Any]] = []
        self._detections: list[dict[str, Any]] = []

    def update(
        self,
        predictions: list[dict[str, Tensor]],
        targets: list[dict[str, Tensor]] | None = None,
        image_ids: Sequence[int | str] | None = None,
    ) -> None:
        """Add a batch of images.

        Args:
            predictions: per image ``{"boxes": (D, 4), "labels": int64 (D,), "scores": (D,)}``
                in the pixels of the annotated image.
            targets: per image ``{"boxes": (N, 4), "labels": int64 (N,)}``, optionally
                ``"iscrowd": bool (N,)``, ``"difficult": bool (N,)`` (ignored objects),
                ``"area": (N,)`` and ``"image_id"``. Required unless the ground truth
                comes from a COCO file.
            image_ids: one id per image; default the target's ``"image_id"``, else a
                running count of the images seen (in-memory ground truth only). Against
                a COCO file, an image's id as the file writes it, a string one too
                (``"img_001"``), or the integer the reader gives it (the target's
                ``"image_id"``, :func:`~faster_rcnn.data.coco.image_numbers`), which is
                an integer id itself.
        """
        if targets is not None:
            check_one_per_image(predictions, targets)
        if targets is None and self._coco_gt is None:
            raise ValueError("targets are required unless the evaluator reads a COCO file")
        if image_ids is not None and len(image_ids) != len(predictions):
            raise ValueError(f"got {len(image_ids)} image ids for {len(predictions)} images")
        for i, prediction in enumerate(predictions):
            target = targets[i] if targets is not None else None
            image_id = self._image_id(i, target, image_ids)
            annotations = []
            if self._coco_gt is None and target is not None:
                annotations = self._ground_truth_annotations(image_id, target)
            detections = self._detection_results(image_id, prediction)
            # Only a fully checked image is added.
            for annotation in annotations:
                # Ids start at 1: COCOeval takes a match with id 0 for no match.
                annotation["id"] = len(self._gt_annotations) + 1
                self._gt_annotations.append(annotation)
            self._detections.extend(detections)
            self._image_ids.append(image_id)
            self._seen.add(image_id)

    def compute(self) -> dict[str, float]:
        """The twelve COCO box figures, by the names in :data:`STAT_NAMES`."""
        coco_gt = self._coco_gt if self._coco_gt is not None else self._in_memory_gt()
        difficult = [ann["id"] for ann in self._gt_annotations if ann["difficult"]]
        return coco_figures(coco_gt, self._detections, sorted(self._seen), difficult)

    def objects_beyond_the_cap(self) -> tuple[int, int]:
        """How many of the images added hold more objects of some class than COCO scores
        detections of it (:data:`COCO_MAX_DETECTIONS`), and the most objects of one class
        that an image holds; crowd regions are not objects. Where a class has more, its
        recall in that image cannot pass ``COCO_MAX_DETECTIONS`` of them, however many
        detections the model makes."""
        if self._coco_gt is not None:
            annotations = self._coco_gt.dataset["annotations"]
        else:
            annotations = self._gt_annotations
        counts = Counter(
            (a["image_id"], a["category_id"])
            for a in annotations
            if not a.get("iscrowd", 0) and a["image_id"] in self._seen
        )
        beyond = {image for (image, _), count in counts.items() if count > COCO_MAX_DETECTIONS}
        return len(beyond), max(counts.values(), default=0)

    def _image_id(
        self,
        index: int,
        target: dict[str, Tensor] | None,
        image_ids: Sequence[int | str] | None,
    ) -> int:
        """The number image ``index`` of the batch is known by (see :meth:`update`)."""
        if image_ids is not None:
            image_id = self._number_of(image_ids[index])
            # Named as given where it is a string (the number the reader gives it is not
            # the file's), else as an integer (not a tensor's repr).
            given = image_ids[index] if isinstance(image_ids[index], str) else int(image_ids[index])
        elif target is not None and "image_id" in target:
            given = image_id = int(torch.as_tensor(target["image_id"]).reshape(-1)[0])
        elif self._coco_gt is None:
            given = image_id = len(self._image_ids)
        else:
            raise ValueError(
                f"image {index} of the batch: evaluating against a COCO file needs its "
                "image_id (argument image_ids or the target's 'image_id')"
            )
        if image_id in self._seen:
            raise ValueError(f"image id {given!r} was added twice")
        if self._coco_gt is not None and image_id not in self._coco_gt.imgs:
            raise ValueError(f"image id {given!r} is not in the COCO annotation file")
        return image_id

    def _number_of(self, image_id: int | str) -> int:
        """The number of an image id given to :meth:`update`: an integer's, itself; a
        string id of the COCO file's, the number the reader gives it; an id the file
        lists the file of an earlier image under, that image's
        (:func:`~faster_rcnn.data.coco.merged_image_ids`)."""
        if not isinstance(image_id, str):
            return self._file_ids.get(int(image_id), int(image_id))
        if self._coco_gt is None:
            raise ValueError(
                f"image id {image_id!r}: a string id names an image of a COCO file "
                "(from_coco_json); without one, image ids are integers"
            )
        if image_id not in self._file_ids:
            raise ValueError(f"image id {image_id!r} is not in the COCO annotation file")
        return self._file_ids[image_id]

    def _ground_truth_annotations(
        self, image_id: int, target: dict[str, Tensor]
    ) -> list[dict[str, Any]]:
        """COCO annotations (without ``"id"``) of an image's ground truth, each with its
        VOC ``"difficult"`` flag (0 or 1), which COCOeval itself does not read."""
        boxes, labels = read_ground_truth(target, image_id, self.num_classes)
        boxes = boxes.to(torch.float64)
        num = boxes.shape[0]
        widths, heights = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        areas = widths * heights
        if target.get("area") is not None:
            areas = per_box(target["area"], "area", num, image_id, "ground truth").double()
        iscrowd = box_flags(target, "iscrowd", num, image_id)
        difficult = box_flags(target, "difficult", num, image_id)
        xywh = torch.stack((boxes[:, 0], boxes[:, 1], widths, heights), dim=1).tolist()
        return [
            {
                "image_id": image_id,
                "category_id": self.label_to_category_id[label],
                "bbox": box,
                "area": float(box_area),
                "iscrowd": int(crowd),
                "difficult": int(hard),
            }
            for box, label, box_area, crowd, hard in zip(
                xywh,
                labels.tolist(),
                areas.tolist(),
                iscrowd.tolist(),
                difficult.tolist(),
                strict=True,
            )
        ]

    def _detection_results(
        self, image_id: int, prediction: dict[str, Tensor]
    ) -> list[dict[str, Any]]:
        """COCO result entries (``"bbox"`` as x, y, w, h) of an image's detections; those of
        a class the annotation file lacks are left out (nothing scores them)."""
        boxes, labels, scores = read_detections(prediction, image_id, self.num_classes)
        boxes = boxes.to(torch.float64)
        xywh = torch.cat((boxes[:, :2], boxes[:, 2:] - boxes[:, :2]), dim=1).tolist()
        return [
            {
                "image_id": image_id,
                "category_id": self.label_to_category_id[label],
                "bbox": box,
                "score": float(score),
            }
            for box, label, score in zip(xywh, labels.tolist(), scores.tolist(), strict=True)
            if label in self.label_to_category_id
        ]

    def _in_memory_gt(self) -> COCO:
        return _coco_from_dict(
            {
                "images": [{"id": image_id} for image_id in self._image_ids],
                "categories": copy.deepcopy(self._categories),
                "annotations": copy.deepcopy(self._gt_annotations),
            }
        )


def _coco_from_dict(dataset: dict[str, Any]) -> COCO:
    """A pycocotools ``COCO`` index of an in-memory dataset dict, quietly."""
    coco = COCO()
    coco.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def load_coco_annotations(path: str | os.PathLike[str], read_before: bool = False) -> COCO:
    """A COCO annotation file as pycocotools reads it, quietly, each record checked and
    the fields COCOeval needs but hand-made files leave out filled in: ``iscrowd``,
    ``bbox`` (the segmentation's extent, as the reader takes it; a negative side read as
    the reader reads it, between the box's corners) and ``area`` (the segmentation's
    pixels, as COCO's own files count them, else the clipped box's), which decides an
    object's small, medium or large; an ``area`` of 0 is taken as left out (it would make
    every object small). Image ids are the numbers the reader gives them
    (:func:`~faster_rcnn.data.coco.image_numbers`: a string id's past the integer ones),
    each image keeping its file's own id under :data:`ID_IN_FILE`.

    The annotations are numbered by their place in the file, from 1: pycocotools takes an
    annotation id of 0 for "not matched" and indexes two annotations of one id as one, so
    a file whose ids start at 0 (Roboflow's exports) or repeat would score its matches as
    false positives. Results never refer to annotation ids, so the figures of a file with
    valid ids do not change.

    A box that reaches past its image is clipped to the ``width`` and ``height`` the
    file records for the image, as the reader clips the targets (which training and VOC
    mAP see), and one with no area left there (outside the image, or none to begin with)
    is left out, as the reader leaves it out; the ``area`` the file gives stands. An
    image without a recorded size keeps its boxes as they are. pycocotools scores the
    file's boxes unclipped, while detectron2 and torchvision clip the training targets
    alone: a detection, always inside the image, of an object at the border then has an
    IoU under 1 with its own box (a box twice its visible part, IoU 0.5), and COCO AP
    and VOC mAP of one dataset disagreed.

    An annotation whose ``image_id`` no image has is left out, as the reader leaves it
    out (:func:`~faster_rcnn.data.coco.of_listed_images`); COCOeval, which scores the
    file's images only, would pass it over. An image file that records of several ids
    list is one image, as the reader reads it: its first record, under its id, with the
    annotations of all (:func:`~faster_rcnn.data.coco.merged_image_ids`), and the other
    ids are known by its number (:data:`FILE_ID_NUMBERS`); pycocotools scores each record
    as an image, and a detection of one copy's object in the other as a false positive.
    These, and the boxes of a negative side, clipped or left out, are named in a warning,
    unless ``read_before``: the file was opened as the dataset evaluated, whose reader
    named them.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a COCO json object, or an annotation with an ``image_id`` that is
            neither an integer nor a string, an unknown ``category_id``, an ``iscrowd``
            other than 0 or 1 or no four finite ``bbox`` numbers (the file and the
            annotation are named).
    """
    file = Path(path)
    data = load_coco_json(file)
    check_coco_records(data, file)
    merged = merged_image_ids(data["images"], file, quiet=read_before)
    image_sizes = {image["id"]: image_record_size(image) for image in data["images"]}
    category_ids = {category["id"] for category in data["categories"]}
    annotations = data.get("annotations", [])
    listed = of_listed_images(annotations, image_sizes.keys(), file, quiet=read_before)
    audit = BoxAudit()
    kept = []
    file_names = {image["id"]: image.get("file_name") for image in data["images"]}
    for k, ann in listed:
        name = annotation_name(ann, k, file_names)
        check_annotation_ids(ann, name, image_sizes.keys(), category_ids, file)
        crowd = crowd_flag(ann, name, file)
        size = image_sizes[merged.get(ann["image_id"], ann["image_id"])]
        box = _box_in_image(ann, name, size, file, audit)
        if box is None:
            continue
        x1, y1, x2, y2 = box
        width, height = x2 - x1, y2 - y1
        ann["bbox"] = [x1, y1, width, height]
        ann["id"] = k + 1
        ann["iscrowd"] = int(crowd)
        # LabelMe-to-COCO converters write 0; an infinite area would leave the object out
        # of every area range, "all" too.
        area = ann.get("area")
        if not (_is_finite(area) and area > 0):
            mask_area = segmentation_area(ann.get("segmentation"), size)
            ann["area"] = width * height if mask_area is None else mask_area
        kept.append(ann)
    data["annotations"] = kept
    if not read_before:
        audit.warn(str(file))
    _number_images(data, merged)
    return _coco_from_dict(data)


def _box_in_image(
    ann: dict[str, Any],
    name: str,
    size: tuple[int, int] | None,
    file: Path,
    audit: BoxAudit,
) -> list[float] | None:
    """``x1, y1, x2, y2`` of annotation ``name`` as the reader reads it on its ``(height,
    width)`` image (``None`` where the file does not give it): a box of a negative side
    read between its corners (:func:`~faster_rcnn.data.coco.bbox_corners`), one past the
    image clipped to it (:func:`_clipped`), each counted in ``audit``; ``None``, counted
    as dropped, for one with no area (a side of 0, or nothing inside the image)."""
    x, y, width, height = annotation_bbox(ann, name, file)
    if dropped_without_area(ann, name, (x, y, width, height), audit):
        return None
    box = bbox_corners(x, y, width, height)
    if size is None:
        if width < 0 or height < 0:
            audit.swap(box, 0, 0, name, frame="on an image of unknown size")
        return box
    if width < 0 or height < 0:
        audit.swap(box, size[1], size[0], name)
    return _clipped(box, name, size, audit)


def _clipped(
    box: list[float], name: str, size: tuple[int, int], audit: BoxAudit
) -> list[float] | None:
    """``box`` (``x1, y1, x2, y2`` of annotation ``name``) clipped to its ``(height,
    width)`` image as the reader clips it (:meth:`~faster_rcnn.data.box_audit.BoxAudit.clip`,
    counted in ``audit``), ``None`` where nothing is left; as it is where it lies inside."""
    height, width = size
    x1, y1, x2, y2 = box
    if 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height:
        return box  # the file's numbers, not rounded to float32 as the clip rounds them
    return audit.clip(box, width, height, name)


def _number_images(data: dict[str, Any], merged: Mapping[ImageId, ImageId]) -> None:
    """The image ids of a checked COCO ``data`` replaced, in its images and annotations,
    by the numbers the reader gives them (:func:`~faster_rcnn.data.coco.image_numbers`),
    each image's own kept under :data:`ID_IN_FILE`, the number of each id of the file
    under :data:`FILE_ID_NUMBERS`; the records ``merged`` into an earlier one of their
    file (``{id: first id}``, :func:`~faster_rcnn.data.coco.merged_image_ids`) taken out,
    their annotations and ids given to that one."""
    numbers = image_numbers(data["images"])
    data[FILE_ID_NUMBERS] = {i: numbers[merged.get(i, i)] for i in numbers}
    data["images"] = [image for image in data["images"] if image["id"] not in merged]
    for image in data["images"]:
        image[ID_IN_FILE], image["id"] = image["id"], numbers[image["id"]]
    for ann in data["annotations"]:
        ann["image_id"] = data[FILE_ID_NUMBERS][ann["image_id"]]


class COCOevalIgnoring(COCOeval):
    """Box ``COCOeval`` that also ignores the ground truth annotations ``ignored_ids``
    (VOC's difficult objects) as VOC mAP does: matched by IoU, each detection on one
    ignored.

    ``COCOeval._prepare`` sets each annotation's ``ignore`` flag from its ``iscrowd``
    alone, and ``evaluateImg`` reads that flag: an ignored object is sorted after the
    others, a detection goes to it only where no object to find that is still free
    reaches the threshold, and that detection is then neither a true nor a false
    positive; the object is in no recall. ``iscrowd`` itself, left as it is, decides
    the overlap (IoU, not the share of the detection inside) and that one detection
    matches it: a second one is left unmatched, a false positive, which
    :meth:`evaluateImg` then ignores (VOC ignores every detection on a difficult object).

    One difference from VOC mAP remains. VOC gives a detection to the object that it
    overlaps most and ignores it where that one is difficult; COCOeval gives it to a free
    object to find that it reaches, if any, before a difficult one that it overlaps more.
    VOC's choice leaves that object free for a detection ranked lower, which COCOeval
    matched without it, so only matching the image again, from that detection on, could
    make it: COCOeval's matching stands. (Between two objects to find, too, COCOeval passes
    over one found already to a free one that the detection reaches, where VOC counts a
    false positive.)

    The default ``params.useCats`` is assumed: the IoUs are those of one class.
    """

    def __init__(self, coco_gt: COCO, coco_dt: COCO, ignored_ids: Iterable[int]) -> None:
        super().__init__(coco_gt, coco_dt, "bbox")
        self.ignored_ids = frozenset(ignored_ids)

    def _prepare(self) -> None:
        super()._prepare()
        for image_annotations in self._gts.values():
            for annotation in image_annotations:
                if annotation["id"] in self.ignored_ids:
                    annotation["ignore"] = 1

    def evaluateImg(
        self, imgId: int, catId: int, aRng: Sequence[float], maxDet: int
    ) -> dict[str, Any] | None:
        """COCOeval's matches of one image and class, with each detection that no object
        took (``dtMatches`` 0) ignored (``dtIgnore``, ``(T, D)``) at the IoU thresholds
        that it reaches with an object of ``ignored_ids``."""
        result = super().evaluateImg(imgId, catId, aRng, maxDet)
        if result is not None:
            on_ignored = self._reaches_ignored(imgId, catId, len(result["dtIds"]))
            unmatched = result["dtMatches"] == 0
            result["dtIgnore"] = result["dtIgnore"] | (on_ignored & unmatched)
        return result

    def _reaches_ignored(self, image_id: int, category_id: int, num_dets: int) -> np.ndarray:
        """Bool ``(T, D)``: whether the image's ``D = num_dets`` best detections of the
        class reach each IoU threshold with one of its objects of ``ignored_ids``.

        ``computeIoU`` ranks the detections as ``evaluateImg`` does (by score, a stable
        sort, the first ``D`` kept there) and keeps the objects in ``self._gts`` order:
        row ``k`` of ``self.ious`` is ``dtIds[k]``, column ``j`` is ``self._gts[...][j]``.
        """
        # evaluateImg's threshold: a match at IoU >= t.
        thresholds = np.minimum(self.params.iouThrs, 1 - 1e-10)
        objects = self._gts[image_id, category_id]
        ignored = [j for j, obj in enumerate(objects) if obj["id"] in self.ignored_ids]
        ious = self.ious[image_id, category_id]
        if not ignored or len(ious) == 0:  # ([] without detections)
            return np.zeros((len(thresholds), num_dets), dtype=bool)
        best = np.asarray(ious)[:num_dets, ignored].max(axis=1)
        return best[None, :] >= thresholds[:, None]


def coco_figures(
    coco_gt: COCO,
    detections: Sequence[dict[str, Any]],
    image_ids: Sequence[int],
    ignored_ids: Iterable[int] = (),
) -> dict[str, float]:
    """The twelve COCO box figures (:data:`STAT_NAMES`) of COCO result entries
    ``detections`` against ``coco_gt``, over the images ``image_ids``, the ground truth
    annotations ``ignored_ids`` ignored (:class:`COCOevalIgnoring`)."""
    with contextlib.redirect_stdout(io.StringIO()):
        if detections:
            coco_dt = coco_gt.loadRes(copy.deepcopy(list(detections)))
        else:
            # loadRes fails on an empty list; an empty result set scores 0 wherever there
            # is ground truth, exactly as COCOeval would.
            coco_dt = _coco_from_dict(
                {
                    "images": coco_gt.dataset["images"],
                    "categories": copy.deepcopy(coco_gt.dataset["categories"]),
                    "annotations": [],
                }
            )
        coco_eval = COCOevalIgnoring(coco_gt, coco_dt, ignored_ids)
        coco_eval.params.imgIds = list(image_ids)
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    return {
        name: (math.nan if value < 0 else float(value))
        for name, value in zip(STAT_NAMES, coco_eval.stats, strict=True)
    }


def check_file_names(
    coco_gt: COCO, coco_file: str | os.PathLike[str] | None, images: Iterable[tuple[int, str]]
) -> None:
    """Refuse an image whose file name is not the one the annotation file ``coco_file``
    gives its id (see :meth:`COCOEvaluator.check_file_names`)."""
    for image_id, name in images:
        record = coco_gt.imgs.get(image_id)
        if record is None:
            raise ValueError(f"{coco_file} has no image of id {image_id} ({name})")
        listed, name = record.get("file_name"), PurePath(name).name
        # Read as the reader reads it: a Windows tool's "images\\x.jpg" is x.jpg.
        if isinstance(listed, str) and PureWindowsPath(listed).name != name:
            own = record.get(ID_IN_FILE, image_id)  # a string id as its file writes it
            raise ValueError(
                f"{coco_file}: image {own!r} is {listed}, not {name}: "
                "is it the annotation file of another split?"
            )


def score_results_file(
    annotation_file: str | os.PathLike[str], results_file: str | os.PathLike[str]
) -> dict[str, float]:
    """The COCO box figures of a results file (a JSON list of ``{"image_id",
    "category_id", "bbox": [x, y, w, h], "score"}``, as ``faster-rcnn predict --data``
    writes) against an annotation file, over all of the annotation file's images, as the
    official evaluation scores them.

    An entry's ``image_id`` is the annotation file's (a string one too, as pycocotools
    reads the file); one of a record merged into an earlier one of its image file is
    scored as that one's (:func:`load_coco_annotations`). Entries that carry the
    ``file_name`` of their image (``predict`` writes it) are checked against the
    annotation file's name for their ``image_id``, so that another split's annotation
    file is refused rather than scored by ids alone. The detections of an image's class
    past the 100 that COCOeval scores are counted in a warning.

    Raises:
        ValueError: the results are not such a list, or an entry lacks a field, has a
            malformed bbox, or names an image or a category the annotation file does not
            have, or another file name for its image (the entry is named).
    """
    coco_gt = load_coco_annotations(annotation_file)
    try:
        results = json.loads(Path(results_file).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{results_file}: not a readable JSON file ({error})") from None
    if not isinstance(results, list):
        raise ValueError(f"{results_file}: expected a list of detections, got {type(results)}")
    numbers = coco_gt.dataset[FILE_ID_NUMBERS]
    for k, entry in enumerate(results):
        _check_result(entry, k, coco_gt, numbers, results_file, annotation_file)
    numbered = [{**entry, "image_id": numbers[entry["image_id"]]} for entry in results]
    named = {
        (e["image_id"], e["file_name"]) for e in numbered if isinstance(e.get("file_name"), str)
    }
    check_file_names(coco_gt, annotation_file, sorted(named))
    _warn_of_detections_past_the_cap(numbered, results_file)
    return coco_figures(coco_gt, numbered, sorted(coco_gt.getImgIds()))


def _warn_of_detections_past_the_cap(results: Sequence[Mapping[str, Any]], file: object) -> None:
    """Warn of the ``results`` (checked entries of results file ``file``) that COCOeval
    does not score: those of an image's class past its best :data:`COCO_MAX_DETECTIONS`
    by score, which count neither as found nor as false positives. A file of up to 300
    detections an image (Ultralytics') or of every candidate can have them."""
    counts = Counter((entry["image_id"], entry["category_id"]) for entry in results)
    past = {key: n - COCO_MAX_DETECTIONS for key, n in counts.items() if n > COCO_MAX_DETECTIONS}
    if past:
        images = len({image for image, _ in past})
        warnings.warn(
            f"{file}: {counted(sum(past.values()), 'detection')} of "
            f"{counted(images, 'image')} rank past the {COCO_MAX_DETECTIONS} of an image's "
            "class that COCO scores: not scored, as in the official evaluation",
            stacklevel=3,
        )


def _check_result(
    entry: Any,
    k: int,
    coco_gt: COCO,
    numbers: Mapping[Any, int],
    results_file: object,
    annotation_file: object,
) -> None:
    """A one-line error naming detection ``k`` unless it is a result COCOeval can use once
    its ``image_id``, the file's, is the number ``numbers`` gives it."""
    where = f"{results_file}: detection {k}"
    needed = {"image_id", "category_id", "bbox", "score"}
    if not isinstance(entry, dict) or not needed <= entry.keys():
        raise ValueError(f"{where} needs image_id, category_id, bbox and score, got {entry!r}")
    if not isinstance(entry["image_id"], Hashable) or entry["image_id"] not in numbers:
        raise ValueError(
            f"{where}: image_id {entry['image_id']!r} is not in {annotation_file}"
            + _what_the_image_id_may_be(entry["image_id"], coco_gt)
        )
    if entry["category_id"] not in coco_gt.cats:
        raise ValueError(
            f"{where}: category_id {entry['category_id']!r} is not in {annotation_file} "
            f"(its ids: {sorted(coco_gt.cats)})"
        )
    bbox = entry["bbox"]
    if not (isinstance(bbox, list) and len(bbox) == 4 and all(map(_is_finite, bbox))):
        raise ValueError(f"{where}: bbox must be [x, y, width, height], got {bbox!r}")
    if bbox[2] < 0 or bbox[3] < 0:
        raise ValueError(f"{where}: bbox {bbox!r} has a negative width or height")
    if not _is_finite(entry["score"]):
        raise ValueError(f"{where}: score must be a finite number, got {entry['score']!r}")


def _what_the_image_id_may_be(image_id: Any, coco_gt: COCO) -> str:
    """Where an ``image_id`` that the annotation file of ``coco_gt`` lacks names one of
    its images otherwise, what it likely is (``": ..."``), else ``""``: the id of an image
    written as the other kind (``"1"`` for 1), or the stem of an image's file, as
    Ultralytics' ``predictions.json`` names images (an integer where the stem is
    digits, ``0001.jpg`` as 1)."""
    written = str(image_id)
    for image in coco_gt.dataset["images"]:
        own = image[ID_IN_FILE]
        if str(own) == written:
            kind = "a string" if isinstance(own, str) else "an integer"
            return f": its image {own!r} is written as {kind} there"
    for image in coco_gt.dataset["images"]:
        name = image.get("file_name")
        stem = PureWindowsPath(name).stem if isinstance(name, str) else None
        if stem is not None and written in (stem, stem.lstrip("0") or "0"):
            return (
                f": it is the stem of {name}, whose image_id there is {image[ID_IN_FILE]!r} "
                "(Ultralytics names images by file stem): give each detection that id"
            )
    return ""


def _is_finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
