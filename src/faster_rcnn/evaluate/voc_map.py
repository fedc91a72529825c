"""Pascal VOC detection average precision, as the official devkit computes it.

Per class, all detections of the class over the dataset are ranked by score (a stable
sort, so ties keep the order in which they were seen). Each detection goes to the ground
truth box of its own class that it overlaps most in its image - over *all* such boxes
(crowd regions aside), matched or not, as in the devkit's ``VOCevaldet.m`` and
py-faster-rcnn's ``voc_eval``:

- IoU >= threshold and that box is ``difficult``: ignored (neither TP nor FP);
- IoU >= threshold and that box not yet taken by a higher-ranked detection: TP;
- IoU >= threshold and the box already taken: FP (a duplicate);
- IoU below the threshold (or no box of the class in the image): FP.

COCO's crowd regions (``iscrowd``) are scored as COCOeval scores them: a detection goes
to a box first, as above, and one that would then be an FP (a duplicate, or nothing
reached) but lies in a crowd region of its class - the share of the detection inside
it, COCO's overlap with a crowd region, at the threshold or more - is ignored.

Neither difficult boxes nor crowd regions count in the number of positives ``npos``:
missing one costs nothing. The AP is either the VOC2007 11-point interpolated average,
or (VOC2010 and later) the area under the precision/recall curve made monotone from the
right.

Where py-faster-rcnn's ``voc_eval`` (and the Python ports after it) part from the MATLAB
devkit, the devkit is followed: a hit is IoU ``>=`` the threshold (``voc_eval``: ``>``),
ties keep their order (MATLAB's stable ``sort``), and the 11 recall thresholds are
MATLAB's ``0:0.1:1``, in which 0.6 and 0.7 are the doubles nearest them
(``np.arange(0, 1.1, 0.1)`` has 0.6000000000000001 and 0.7000000000000001, which a recall
of exactly 3/5 or 7/10 does not reach).

Coordinates are continuous (no "+1" on widths, unlike the devkit's integer pixels), the
convention of the rest of the package. A class without a single ground truth box that
is neither difficult nor crowd has no defined recall: its AP is NaN and it is left out of
the mean.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ..counted import counted
from ..ops.boxes import box_ioa, box_iou
from .inputs import (
    box_flags,
    check_iou_threshold,
    check_num_classes,
    check_one_per_image,
    foreground_class_names,
    read_detections,
    read_ground_truth,
)

# The devkit's precision is tp / max(tp + fp, eps) with numpy's float64 eps.
_EPS = torch.finfo(torch.float64).eps
# The VOC2007 devkit's 11 recall thresholds, MATLAB's 0:0.1:1: its colon operator
# adds multiples of the step to the start for the first half and subtracts them from the
# end for the second, so 3 * 0.1 = 0.30000000000000004 but 1 - 4 * 0.1 = 0.6 exactly.
VOC07_RECALL_THRESHOLDS = tuple(k * 0.1 if k <= 5 else 1 - (10 - k) * 0.1 for k in range(11))


def voc_ap(recall: Tensor, precision: Tensor, use_07_metric: bool = False) -> float:
    """Average precision of one class from its precision/recall curve.

    Args:
        recall: ``(D,)`` cumulative recall after each ranked detection (non-decreasing).
        precision: ``(D,)`` cumulative precision after each ranked detection.
        use_07_metric: the VOC2007 11-point average instead of the area under the curve.

    Returns:
        The AP in ``[0, 1]``; 0 for an empty curve.
    """
    recall = recall.to(torch.float64)
    precision = precision.to(torch.float64)
    if use_07_metric:
        total = 0.0
        for threshold in VOC07_RECALL_THRESHOLDS:
            reached = precision[recall >= threshold]
            total += float(reached.max()) if reached.numel() else 0.0
        return total / 11.0
    zero, one = recall.new_zeros(1), recall.new_ones(1)
    mrec = torch.cat((zero, recall, one))
    mpre = torch.cat((zero, precision, zero))
    # Precision envelope: at each recall, the best precision at that recall or beyond.
    mpre = mpre.flip(0).cummax(0).values.flip(0)
    steps = torch.where(mrec[1:] != mrec[:-1])[0]
    return float(((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]).sum())


def ranked_ap(
    scores: Tensor, tp: Tensor, fp: Tensor, npos: int, use_07_metric: bool = False
) -> float:
    """One class's AP from its detections' scores and true/false-positive flags.

    Args:
        scores: ``(D,)`` the class's detections over the dataset, ranked here by a
            stable sort (ties keep their order).
        tp: bool ``(D,)``; fp: bool ``(D,)`` (a detection on a difficult box or in a
            crowd region has neither).
        npos: the class's ground truth boxes that are neither difficult nor crowd.
        use_07_metric: the VOC2007 11-point average.

    Returns:
        The AP; NaN when ``npos`` is 0 (recall is undefined).
    """
    if npos == 0:
        return math.nan
    order = torch.sort(scores, descending=True, stable=True).indices
    tp_cum = tp[order].to(torch.float64).cumsum(0)
    fp_cum = fp[order].to(torch.float64).cumsum(0)
    precision = tp_cum / (tp_cum + fp_cum).clamp(min=_EPS)
    return voc_ap(tp_cum / npos, precision, use_07_metric)


@dataclass(frozen=True)
class VOCResult:
    """Per-class VOC AP and its mean.

    Attributes:
        map: mean of the per-class APs that are not NaN (NaN when all are).
        ap: class name -> AP; NaN for a class without ground truth to find (every box
            difficult or crowd, or none).
        npos: class name -> number of ground truth boxes neither difficult nor crowd.
        num_detections: class name -> number of detections of the class.
        iou_threshold: the IoU a detection needs to be a true positive.
        use_07_metric: whether ``ap`` is the 11-point VOC2007 average.
    """

    map: float
    ap: dict[str, float]
    npos: dict[str, int]
    num_detections: dict[str, int]
    iou_threshold: float
    use_07_metric: bool

    def table(self) -> str:
        """A plain-text table: one row per class, then the mean, and where an AP is
        undefined (``n/a``), why."""
        metric = "11-point" if self.use_07_metric else "area"
        width = max([len("mAP"), *(len(name) for name in self.ap)])
        header = f"{'class':<{width}}  {'AP':>6}  {'npos':>6}  {'dets':>7}"
        lines = [f"VOC AP@{self.iou_threshold:g} ({metric})", header, "-" * len(header)]
        for name, ap in self.ap.items():
            lines.append(
                f"{name:<{width}}  {_ap_cell(ap)}  {self.npos[name]:>6d}  "
                f"{self.num_detections[name]:>7d}"
            )
        lines.append("-" * len(header))
        lines.append(f"{'mAP':<{width}}  {_ap_cell(self.map)}")
        return "\n".join([*lines, *self._undefined_note()])

    def _undefined_note(self) -> list[str]:
        """A line saying why the n/a APs are undefined and what the mean is over; none
        where every AP is defined."""
        undefined = sum(math.isnan(ap) for ap in self.ap.values())
        if not undefined:
            return []
        why = "n/a: no object to find (none, or each difficult or a crowd region), no recall"
        if undefined == len(self.ap):
            return [f"{why}: no class has an AP, nor a mean"]
        defined = counted(len(self.ap) - undefined, "class")
        return [f"{why}: the mAP is the mean of the other {defined}"]


class VOCEvaluator:
    """Accumulates detections and ground truth image by image, then computes VOC AP.

    Args:
        num_classes: classes including the background; labels are ``1..num_classes-1``.
        iou_threshold: IoU for a true positive, in ``(0, 1]``.
        use_07_metric: 11-point VOC2007 AP instead of the area under the curve.
        class_names: names of classes ``1..num_classes-1`` (or of ``0..num_classes-1``,
            background first, which is then dropped); default the label as text.
    """

    def __init__(
        self,
        num_classes: int,
        iou_threshold: float = 0.5,
        use_07_metric: bool = False,
        class_names: Sequence[str] | None = None,
    ) -> None:
        check_num_classes(num_classes)
        check_iou_threshold(iou_threshold)
        self.num_classes = num_classes
        self.iou_threshold = iou_threshold
        self.use_07_metric = use_07_metric
        self.class_names = foreground_class_names(num_classes, class_names)
        self.reset()

    def reset(self) -> None:
        """Forget everything accumulated so far."""
        self._npos = torch.zeros(self.num_classes, dtype=torch.int64)
        self._labels: list[Tensor] = []
        self._scores: list[Tensor] = []
        self._tp: list[Tensor] = []
        self._fp: list[Tensor] = []
        self._num_images = 0

    def update(
        self, predictions: list[dict[str, Tensor]], targets: list[dict[str, Tensor]]
    ) -> None:
        """Add a batch of images.

        Args:
            predictions: per image ``{"boxes": (D, 4), "labels": int64 (D,), "scores": (D,)}``.
            targets: per image ``{"boxes": (N, 4), "labels": int64 (N,)}``, optionally
                ``"difficult": bool (N,)`` and ``"iscrowd": bool (N,)`` (missing: no box
                is).
        """
        check_one_per_image(predictions, targets)
        for prediction, target in zip(predictions, targets, strict=True):
            image = self._num_images
            det_boxes, det_labels, det_scores = read_detections(prediction, image, self.num_classes)
            gt_boxes, gt_labels = read_ground_truth(target, image, self.num_classes)
            difficult = box_flags(target, "difficult", gt_boxes.shape[0], image)
            crowd = box_flags(target, "iscrowd", gt_boxes.shape[0], image)
            tp, fp = match_image(
                det_boxes,
                det_labels,
                det_scores,
                gt_boxes,
                gt_labels,
                difficult,
                crowd,
                self.iou_threshold,
            )
            self._labels.append(det_labels)
            self._scores.append(det_scores)
            self._tp.append(tp)
            self._fp.append(fp)
            to_find = gt_labels[~(difficult | crowd)]
            self._npos += torch.bincount(to_find, minlength=self.num_classes)
            self._num_images += 1

    def compute(self, use_07_metric: bool | None = None) -> VOCResult:
        """Per-class AP over everything added since construction or :meth:`reset`.

        Args:
            use_07_metric: override the evaluator's choice of metric (the matching is the
                same for both, so one evaluator can give both).
        """
        if use_07_metric is None:
            use_07_metric = self.use_07_metric
        labels = torch.cat(self._labels) if self._labels else torch.zeros(0, dtype=torch.int64)
        scores = torch.cat(self._scores) if self._scores else torch.zeros(0)
        tp = torch.cat(self._tp) if self._tp else torch.zeros(0, dtype=torch.bool)
        fp = torch.cat(self._fp) if self._fp else torch.zeros(0, dtype=torch.bool)
        ap: dict[str, float] = {}
        npos: dict[str, int] = {}
        num_detections: dict[str, int] = {}
        for label, name in enumerate(self.class_names, start=1):
            keep = labels == label
            npos[name] = int(self._npos[label])
            num_detections[name] = int(keep.sum())
            ap[name] = ranked_ap(scores[keep], tp[keep], fp[keep], npos[name], use_07_metric)
        defined = [value for value in ap.values() if not math.isnan(value)]
        mean = sum(defined) / len(defined) if defined else math.nan
        return VOCResult(
            map=mean,
            ap=ap,
            npos=npos,
            num_detections=num_detections,
            iou_threshold=self.iou_threshold,
            use_07_metric=use_07_metric,
        )


def _ap_cell(ap: float) -> str:
    """An AP in the table's column of six: four decimals, or ``n/a`` where undefined."""
    return f"{'n/a':>6}" if math.isnan(ap) else f"{ap:>6.4f}"


def match_image(
    det_boxes: Tensor,
    det_labels: Tensor,
    det_scores: Tensor,
    gt_boxes: Tensor,
    gt_labels: Tensor,
    difficult: Tensor,
    crowd: Tensor,
    iou_threshold: float,
) -> tuple[Tensor, Tensor]:
    """TP and FP flags of one image's detections, all classes at once.

    The devkit's sequential loop, vectorised: a detection's ground truth box (its best
    overlap among boxes of its class) does not depend on earlier matches, so the loop
    reduces to "the highest-ranked detection that picks a box takes it, later ones that
    pick it are duplicates". Within one image and class the global ranking is the stable
    sort of the image's detections by score, which is the order used here. Crowd regions
    are not boxes to pick: a detection that picked none, or one already taken, and lies
    in a crowd region of its class (:func:`in_crowd`) is ignored, as COCOeval does.

    Args:
        det_boxes: ``(D, 4)``; det_labels: ``(D,)``; det_scores: ``(D,)``.
        gt_boxes: ``(N, 4)``; gt_labels: ``(N,)``; difficult: bool ``(N,)``; crowd:
            bool ``(N,)``, the crowd regions.

    Returns:
        Bool ``(D,)`` true-positive and false-positive flags in the input order; a
        detection matched to a difficult box, or ignored in a crowd region, has neither.
    """
    num_dets = det_boxes.shape[0]
    if gt_boxes.shape[0] == 0 or num_dets == 0:
        return torch.zeros(num_dets, dtype=torch.bool), torch.ones(num_dets, dtype=torch.bool)
    # float64, so that an IoU of exactly t (70/100, say) passes a threshold of t.
    iou = box_iou(det_boxes.to(torch.float64), gt_boxes.to(torch.float64))
    own_box = (det_labels[:, None] == gt_labels[None, :]) & ~crowd[None, :]
    iou = torch.where(own_box, iou, -1.0)
    best_iou, best_gt = iou.max(dim=1)  # ties go to the first box, as in the devkit
    hit = best_iou >= iou_threshold
    ignored = hit & difficult[best_gt]
    candidate = hit & ~ignored

    rank = torch.empty(num_dets, dtype=torch.int64)
    rank[torch.sort(det_scores, descending=True, stable=True).indices] = torch.arange(num_dets)
    # For each ground truth box, the best rank among the candidates that picked it.
    first_rank = torch.full((gt_boxes.shape[0],), num_dets, dtype=torch.int64)
    first_rank.scatter_reduce_(0, best_gt[candidate], rank[candidate], reduce="amin")
    tp = candidate & (rank == first_rank[best_gt])
    in_region = in_crowd(det_boxes, det_labels, gt_boxes, gt_labels, crowd, iou_threshold)
    fp = ~tp & ~ignored & ~in_region
    return tp, fp


def in_crowd(
    det_boxes: Tensor,
    det_labels: Tensor,
    gt_boxes: Tensor,
    gt_labels: Tensor,
    crowd: Tensor,
    iou_threshold: float,
) -> Tensor:
    """Which detections lie in a crowd region of their class: COCO's overlap with one
    (the share of the detection inside it) at ``iou_threshold`` or more.

    Args:
        det_boxes: ``(D, 4)``; det_labels: ``(D,)``.
        gt_boxes: ``(N, 4)``; gt_labels: ``(N,)``; crowd: bool ``(N,)``.

    Returns:
        Bool ``(D,)``.
    """
    regions = crowd.nonzero().squeeze(1)
    inside = box_ioa(det_boxes.to(torch.float64), gt_boxes[regions].to(torch.float64))
    own_class = det_labels[:, None] == gt_labels[regions][None, :]
    return ((inside >= iou_threshold) & own_class).any(dim=1)
