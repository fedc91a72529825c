"""Where a detector loses VOC AP, class by class: its false positives by kind, and its
missed objects by the stage that lost them.

Matching is VOC's (:mod:`.voc_map`): a detection is a true positive when it takes a box
of its class at IoU >= t. Every other detection (bar those it ignores: on a difficult box
or in one of COCO's crowd regions) is a false positive of the first kind it fits, checked
in this order against the image's boxes, crowd regions aside (the kinds of TIDE, Bolya et
al. 2020, with its background IoU of 0.1):

- **duplicate**: it overlaps a box of its class at IoU >= t that a higher-scoring
  detection took;
- **other class**: it overlaps a box of another class at IoU >= t;
- **mislocated**: it overlaps a box of its class at IoU >= 0.1, but below t;
- **background**: none of these.

A kind's cost is the AP the class gains when that kind's detections are left out and the
rest ranked as before: what fixing it would be worth. Unlike TIDE, which also turns a
fixed error into a true positive, leaving out changes no recall, so the costs of false
positives and the missed objects below do not count an object twice.

Every box that no detection took, difficult ones and crowd regions aside, is a missed
object, of the first kind it fits:

- **neighbour**: a detection of its class overlaps it at IoU >= t but took another box
  (two touching objects, one detection: NMS or a box between them);
- **other class**: a detection of another class overlaps it at IoU >= t;
- **mislocated**: a detection of its class overlaps it at IoU >= 0.1, but below t;
- **not detected**: none of these, though one of the proposals the head scored covers it
  at IoU >= t: the RPN found it and the head turned it down;
- **not proposed**: no such proposal: the RPN missed it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ..ops.boxes import box_iou
from .inputs import (
    box_flags,
    check_iou_threshold,
    check_num_classes,
    check_one_per_image,
    cpu_boxes,
    foreground_class_names,
    read_detections,
    read_ground_truth,
)
from .voc_map import match_image, ranked_ap

FALSE_POSITIVE_KINDS = ("duplicate", "other class", "mislocated", "background")
MISSED_KINDS = ("neighbour", "other class", "mislocated", "not detected", "not proposed")
# TIDE's background threshold: below this IoU a detection has nothing to do with a box.
NEAR_IOU = 0.1


@dataclass(frozen=True)
class ErrorBreakdown:
    """Per class: its AP, what each kind of false positive costs, and why objects were
    missed.

    Attributes:
        iou_threshold: the IoU of a true positive.
        ap: class name -> VOC AP (area under the curve); NaN without ground truth.
        cost: class -> false-positive kind -> the AP gained without those detections.
        false_positives: class -> kind -> how many detections are of it.
        objects: class -> ground truth boxes neither difficult nor crowd.
        missed: class -> missed kind -> how many boxes no detection took, by why.
    """

    iou_threshold: float
    ap: dict[str, float]
    cost: dict[str, dict[str, float]]
    false_positives: dict[str, dict[str, int]]
    objects: dict[str, int]
    missed: dict[str, dict[str, int]]

    def as_dict(self) -> dict[str, float]:
        """Flat figures: ``"fp_cost/<kind>/<class>"``, ``"num_false_positives/<kind>/
        <class>"`` and ``"num_missed/<kind>/<class>"`` (kinds with spaces as ``_``)."""
        flat: dict[str, float] = {}
        for name in self.ap:
            for kind in FALSE_POSITIVE_KINDS:
                key = f"{kind.replace(' ', '_')}/{name}"
                flat[f"fp_cost/{key}"] = self.cost[name][kind]
                flat[f"num_false_positives/{key}"] = float(self.false_positives[name][kind])
            for kind in MISSED_KINDS:
                flat[f"num_missed/{kind.replace(' ', '_')}/{name}"] = float(self.missed[name][kind])
        return flat

    def table(self) -> str:
        """Two plain-text tables: the false positives' costs (their number in
        parentheses) and the missed objects by kind."""
        width = max([len("class"), *(len(name) for name in self.ap)])
        t = f"{self.iou_threshold:g}"
        costs = [
            f"{'class':<{width}}  {'AP':>6}" + "".join(f"  {k:>15}" for k in FALSE_POSITIVE_KINDS)
        ]
        for name, ap in self.ap.items():
            cells = (
                f"{_signed(self.cost[name][k])} ({self.false_positives[name][k]})"
                for k in FALSE_POSITIVE_KINDS
            )
            shown = "n/a" if math.isnan(ap) else f"{ap:.3f}"
            costs.append(f"{name:<{width}}  {shown:>6}" + "".join(f"  {c:>15}" for c in cells))
        missed = [
            f"{'class':<{width}}  {'objects':>7}  {'found':>5}"
            + "".join(f"  {k:>12}" for k in MISSED_KINDS)
        ]
        for name, total in self.objects.items():
            found = total - sum(self.missed[name].values())
            counts = "".join(f"  {self.missed[name][k]:>12d}" for k in MISSED_KINDS)
            missed.append(f"{name:<{width}}  {total:>7d}  {found:>5d}{counts}")
        undefined = any(math.isnan(ap) for ap in self.ap.values())
        note = ["n/a: no object of the class to find: no AP for its false positives to cost"]
        return "\n".join(
            [
                f"false positives at IoU {t}: the AP each kind costs (how many)",
                *costs,
                *(note if undefined else []),
                f"missed objects at IoU {t} (no detection took them, at any score), by where "
                "they were lost",
                *missed,
            ]
        )


class ErrorBreakdownEvaluator:
    """Accumulates detections, the head's proposals and ground truth image by image, then
    breaks each class's AP down (:class:`ErrorBreakdown`).

    Args:
        num_classes: classes including the background; labels are ``1..num_classes-1``.
        iou_threshold: IoU for a true positive, in ``(0, 1]``.
        class_names: as for :class:`~.voc_map.VOCEvaluator`.
    """

    def __init__(
        self,
        num_classes: int,
        iou_threshold: float = 0.5,
        class_names: Sequence[str] | None = None,
    ) -> None:
        check_num_classes(num_classes)
        check_iou_threshold(iou_threshold)
        self.num_classes = num_classes
        self.iou_threshold = iou_threshold
        self.class_names = foreground_class_names(num_classes, class_names)
        self._detections: list[tuple[Tensor, Tensor, Tensor, Tensor, Tensor]] = []
        self._missed = torch.zeros(num_classes, len(MISSED_KINDS), dtype=torch.int64)
        self._objects = torch.zeros(num_classes, dtype=torch.int64)
        self._num_images = 0

    def update(
        self,
        predictions: list[dict[str, Tensor]],
        proposals: list[dict[str, Tensor]],
        targets: list[dict[str, Tensor]],
    ) -> None:
        """Add a batch of images.

        Args:
            predictions: per image ``{"boxes": (D, 4), "labels": (D,), "scores": (D,)}``.
            proposals: per image ``{"boxes": (P, 4)}``, the proposals the head scored.
            targets: per image ``{"boxes": (N, 4), "labels": (N,)}``, optionally
                ``"difficult": bool (N,)`` and ``"iscrowd": bool (N,)``.
        """
        check_one_per_image(predictions, targets)
        check_one_per_image(proposals, targets, "proposal sets")
        for prediction, proposal, target in zip(predictions, proposals, targets, strict=True):
            image = self._num_images
            boxes, labels, scores = read_detections(prediction, image, self.num_classes)
            gt_boxes, gt_labels = read_ground_truth(target, image, self.num_classes)
            difficult = box_flags(target, "difficult", gt_boxes.shape[0], image)
            crowd = box_flags(target, "iscrowd", gt_boxes.shape[0], image)
            proposed = cpu_boxes(proposal["boxes"], image, "proposal")
            tp, fp = match_image(
                boxes, labels, scores, gt_boxes, gt_labels, difficult, crowd, self.iou_threshold
            )
            # Crowd regions are no objects: none to find, nor to be mistaken for.
            objects, object_labels = gt_boxes[~crowd], gt_labels[~crowd]
            overlaps = _Overlaps(boxes, labels, objects, object_labels)
            kinds = overlaps.false_positive_kinds(fp, self.iou_threshold)
            self._detections.append((labels, scores, tp, fp, kinds))
            missed = overlaps.missed_kinds(tp, difficult[~crowd], proposed, self.iou_threshold)
            self._missed.index_put_(
                (object_labels[missed >= 0], missed[missed >= 0]),
                torch.ones(int((missed >= 0).sum()), dtype=torch.int64),
                accumulate=True,
            )
            to_find = gt_labels[~(difficult | crowd)]
            self._objects += torch.bincount(to_find, minlength=self.num_classes)
            self._num_images += 1

    def compute(self) -> ErrorBreakdown:
        """The breakdown of everything added so far."""
        labels, scores, tp, fp, kinds = self._joined()
        ap, cost, false_positives, objects, missed = {}, {}, {}, {}, {}
        for label, name in enumerate(self.class_names, start=1):
            keep = labels == label
            npos = int(self._objects[label])
            s, t, f, k = scores[keep], tp[keep], fp[keep], kinds[keep]
            ap[name] = ranked_ap(s, t, f, npos)
            cost[name] = {}
            for index, kind in enumerate(FALSE_POSITIVE_KINDS):
                others = k != index
                cost[name][kind] = ranked_ap(s[others], t[others], f[others], npos) - ap[name]
            false_positives[name] = {
                kind: int((k == index).sum()) for index, kind in enumerate(FALSE_POSITIVE_KINDS)
            }
            objects[name] = npos
            missed[name] = dict(zip(MISSED_KINDS, self._missed[label].tolist(), strict=True))
        return ErrorBreakdown(self.iou_threshold, ap, cost, false_positives, objects, missed)

    def _joined(self) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """Every image's detections as one set: labels, scores, TP and FP flags, kinds."""
        if not self._detections:
            empty = torch.zeros(0, dtype=torch.int64)
            return empty, torch.zeros(0), empty.bool(), empty.bool(), empty
        labels, scores, tp, fp, kinds = (
            torch.cat(part) for part in zip(*self._detections, strict=True)
        )
        return labels, scores, tp, fp, kinds


class _Overlaps:
    """One image's detections against its objects (its ground truth boxes, crowd regions
    left out): the IoUs with boxes of the detection's own class and of the others
    (``(D, N)``, -1 where the other kind)."""

    def __init__(self, boxes: Tensor, labels: Tensor, gt_boxes: Tensor, gt_labels: Tensor):
        # float64, as VOC matching, so that an IoU of exactly t passes a threshold of t.
        iou = box_iou(boxes.to(torch.float64), gt_boxes.to(torch.float64))
        own = labels[:, None] == gt_labels[None, :]
        self.gt_boxes = gt_boxes
        self.own = torch.where(own, iou, -1.0)
        self.other = torch.where(own, -1.0, iou)

    def false_positive_kinds(self, fp: Tensor, t: float) -> Tensor:
        """int64 ``(D,)``: each false positive's index in :data:`FALSE_POSITIVE_KINDS`,
        -1 for the rest."""
        own, other = _best(self.own, 1), _best(self.other, 1)
        kinds = torch.full(fp.shape, FALSE_POSITIVE_KINDS.index("background"))
        kinds[own >= NEAR_IOU] = FALSE_POSITIVE_KINDS.index("mislocated")
        kinds[other >= t] = FALSE_POSITIVE_KINDS.index("other class")
        kinds[own >= t] = FALSE_POSITIVE_KINDS.index("duplicate")
        return torch.where(fp, kinds, -1)

    def missed_kinds(self, tp: Tensor, difficult: Tensor, proposals: Tensor, t: float) -> Tensor:
        """int64 ``(N,)``: each missed box's index in :data:`MISSED_KINDS`, -1 for the
        boxes a true positive took and the difficult ones."""
        taken = torch.zeros(self.gt_boxes.shape[0], dtype=torch.bool)
        if tp.any():
            taken[self.own[tp].argmax(1)] = True
        proposed = _best(box_iou(proposals.to(torch.float64), self.gt_boxes.to(torch.float64)), 0)
        own, other = _best(self.own, 0), _best(self.other, 0)
        kinds = torch.full(taken.shape, MISSED_KINDS.index("not proposed"))
        kinds[proposed >= t] = MISSED_KINDS.index("not detected")
        kinds[own >= NEAR_IOU] = MISSED_KINDS.index("mislocated")
        kinds[other >= t] = MISSED_KINDS.index("other class")
        kinds[own >= t] = MISSED_KINDS.index("neighbour")
        return torch.where(taken | difficult, -1, kinds)


def _signed(value: float) -> str:
    """An AP difference with its sign; ``n/a`` for a class without ground truth."""
    return "n/a" if math.isnan(value) else f"{value:+.3f}"


def _best(iou: Tensor, dim: int) -> Tensor:
    """The largest IoU along ``dim`` (-1 where there is nothing to overlap)."""
    if iou.shape[dim] == 0:
        shape = list(iou.shape)
        del shape[dim]
        return torch.full(shape, -1.0, dtype=iou.dtype)
    return iou.max(dim).values
