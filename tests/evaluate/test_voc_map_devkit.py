"""VOC AP against an independent port of the devkit's evaluation, on the cases where
implementations part: duplicates, tied scores, difficult objects detected twice, classes
with ground truth and no detections or detections and no ground truth, empty images.

The reference below is py-faster-rcnn's ``voc_eval`` (numpy, one detection at a time)
with the MATLAB devkit's choices where the two differ: a stable sort (MATLAB's ``sort``;
numpy's default quicksort breaks ties arbitrarily), a hit at IoU >= the threshold
(py-faster-rcnn tests ``>``) and the 11-point thresholds of MATLAB's ``0:0.1:1``
(py-faster-rcnn's ``np.arange(0, 1.1, 0.1)`` has 0.6 and 0.7 a bit above them).
Coordinates are continuous, without the devkit's "+1", as in the package. A class without
a positive (every box difficult, or none) has no recall: NaN, left out of the mean (the
devkit divides by zero there).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from faster_rcnn.evaluate.voc_map import VOCEvaluator

NUM_CLASSES = 5  # background, then 1..4


def devkit_class_ap(
    predictions: list[dict], targets: list[dict], label: int, threshold: float, use_07: bool
) -> tuple[float, int, int]:
    """``(AP, npos, detections)`` of class ``label``, as the devkit scores it."""
    ranked, tp, fp, npos = devkit_outcomes(predictions, targets, label, threshold)
    if npos == 0:
        return math.nan, npos, len(ranked)
    fp, tp = np.cumsum(fp), np.cumsum(tp)
    recall = tp / float(npos)
    precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    return devkit_ap(recall, precision, use_07), npos, len(ranked)


def devkit_outcomes(
    predictions: list[dict], targets: list[dict], label: int, threshold: float
) -> tuple[list[tuple[int, int]], np.ndarray, np.ndarray, int]:
    """``(ranked, tp, fp, npos)`` of class ``label`` as the devkit matches it: its
    detections ``(image, index in the image's prediction)`` by rank, whether each is a
    true and a false positive (neither: ignored), and the objects to find."""
    records, npos = [], 0
    for target in targets:
        keep = target["labels"].numpy() == label
        difficult = target["difficult"].numpy()[keep].astype(bool)
        records.append(
            {
                "bbox": target["boxes"].numpy()[keep].astype(np.float64).reshape(-1, 4),
                "difficult": difficult,
                "det": [False] * int(keep.sum()),
            }
        )
        npos += int((~difficult).sum())
    found, confidence, detected = [], [], []
    for image, prediction in enumerate(predictions):
        keep = prediction["labels"].numpy() == label
        found += [(image, int(k)) for k in np.flatnonzero(keep)]
        confidence += prediction["scores"].numpy()[keep].tolist()
        detected += prediction["boxes"].numpy()[keep].astype(np.float64).tolist()
    order = np.argsort(-np.array(confidence), kind="stable")
    boxes = np.array(detected, dtype=np.float64).reshape(-1, 4)[order]
    ranked = [found[i] for i in order]
    tp, fp = np.zeros(len(ranked)), np.zeros(len(ranked))
    for d, (image, _) in enumerate(ranked):
        record, bb = records[image], boxes[d]
        ovmax, jmax = -np.inf, -1
        gt = record["bbox"]
        if gt.size > 0:
            iw = np.maximum(np.minimum(gt[:, 2], bb[2]) - np.maximum(gt[:, 0], bb[0]), 0.0)
            ih = np.maximum(np.minimum(gt[:, 3], bb[3]) - np.maximum(gt[:, 1], bb[1]), 0.0)
            inters = iw * ih
            union = (
                (bb[2] - bb[0]) * (bb[3] - bb[1])
                + (gt[:, 2] - gt[:, 0]) * (gt[:, 3] - gt[:, 1])
                - inters
            )
            overlaps = inters / union
            ovmax, jmax = np.max(overlaps), int(np.argmax(overlaps))
        if ovmax >= threshold:
            if not record["difficult"][jmax]:
                if not record["det"][jmax]:
                    tp[d] = 1.0
                    record["det"][jmax] = True
                else:
                    fp[d] = 1.0
        else:
            fp[d] = 1.0
    return ranked, tp, fp, npos


def devkit_ap(recall: np.ndarray, precision: np.ndarray, use_07: bool) -> float:
    """py-faster-rcnn's ``voc_ap``, as written there but for the 11 thresholds."""
    if use_07:
        ap = 0.0
        for t in matlab_colon(0.0, 0.1, 1.0):
            p = 0.0 if np.sum(recall >= t) == 0 else np.max(precision[recall >= t])
            ap = ap + p / 11.0
        return float(ap)
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mpre = np.concatenate(([0.0], precision, [0.0]))
    for i in range(mpre.size - 1, 0, -1):
        mpre[i - 1] = np.maximum(mpre[i - 1], mpre[i])
    i = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


def matlab_colon(start: float, step: float, stop: float) -> list[float]:
    """MATLAB's ``start:step:stop`` where ``stop`` is a whole number of steps away, as
    MathWorks describes its colon operator: the first half adds multiples of ``step`` to
    ``start``, the second subtracts them from ``stop``, an odd middle is the midpoint."""
    n = round((stop - start) / step)
    values = [start + k * step for k in range(n // 2 + 1)]
    values += [stop - k * step for k in range((n + 1) // 2 - 1, -1, -1)]
    if n % 2 == 0:
        values[n // 2] = (start + stop) / 2
    return values


def tricky_case(rng: np.random.Generator) -> tuple[list[dict], list[dict]]:
    """Images of integer boxes, a quarter without objects; each object detected 0-3
    times (duplicates), near it, difficult ones alike; some detections far from any
    object; scores on a grid of four (ties across and within images). Class 3 has
    objects and no detections, class 4 detections and no objects."""
    predictions, targets = [], []
    for _ in range(int(rng.integers(0, 7))):
        n = 0 if rng.random() < 0.25 else int(rng.integers(1, 5))
        xy = rng.integers(0, 50, (n, 2))
        gt_boxes = np.concatenate((xy, xy + rng.integers(4, 20, (n, 2))), axis=1)
        gt_labels = rng.integers(1, 4, n)
        copies = rng.integers(0, 4, n)
        on_objects = np.repeat(gt_boxes, copies, axis=0) + rng.integers(-3, 4, (copies.sum(), 4))
        far = rng.integers(0, 60, (int(rng.integers(0, 3)), 2))
        far_boxes = np.concatenate((far, far + rng.integers(2, 15, far.shape)), axis=1)
        boxes = np.concatenate((on_objects, far_boxes)).reshape(-1, 4)
        boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 1)
        labels = np.concatenate((np.repeat(gt_labels, copies), rng.integers(1, 5, len(far))))
        labels[labels == 3] = 4  # class 3 is never detected; class 4 never annotated
        swap = rng.random(len(labels)) < 0.15  # a detection of another class on an object
        labels[swap] = rng.choice([1, 2, 4], int(swap.sum()))
        targets.append(
            {
                "boxes": torch.tensor(gt_boxes, dtype=torch.float32).reshape(-1, 4),
                "labels": torch.tensor(gt_labels, dtype=torch.int64),
                "difficult": torch.tensor(rng.random(n) < 0.3),
            }
        )
        predictions.append(
            {
                "boxes": torch.tensor(boxes, dtype=torch.float32),
                "labels": torch.tensor(labels, dtype=torch.int64),
                "scores": torch.tensor(rng.integers(1, 5, len(labels)) / 4, dtype=torch.float32),
            }
        )
    return predictions, targets


def evaluate_in_batches(
    predictions: list[dict], targets: list[dict], threshold: float, rng: np.random.Generator
) -> VOCEvaluator:
    """An evaluator fed the images in batches of random sizes, empty ones among them."""
    evaluator = VOCEvaluator(NUM_CLASSES, iou_threshold=threshold)
    start = 0
    while True:
        stop = min(start + int(rng.integers(0, 3)), len(predictions))
        evaluator.update(predictions[start:stop], targets[start:stop])
        if stop == len(predictions):
            return evaluator
        start = stop


@pytest.mark.parametrize("seed", range(200))
def test_matches_the_devkit_on_tricky_cases(seed: int) -> None:
    rng = np.random.default_rng(seed)
    predictions, targets = tricky_case(rng)
    threshold = (0.5, 0.5, 0.3, 0.7)[seed % 4]
    evaluator = evaluate_in_batches(predictions, targets, threshold, rng)
    for use_07 in (False, True):
        result = evaluator.compute(use_07_metric=use_07)
        aps = []
        for label in range(1, NUM_CLASSES):
            ap, npos, num_dets = devkit_class_ap(predictions, targets, label, threshold, use_07)
            name = str(label)
            assert result.npos[name] == npos
            assert result.num_detections[name] == num_dets
            if math.isnan(ap):
                assert math.isnan(result.ap[name]), (name, use_07)
            else:
                assert result.ap[name] == pytest.approx(ap, abs=1e-12), (name, use_07)
                aps.append(ap)
        if aps:
            assert result.map == pytest.approx(sum(aps) / len(aps), abs=1e-12)
        else:
            assert math.isnan(result.map)


def det(boxes: list[list[float]], labels: list[int], scores: list[float]) -> dict:
    return {
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "labels": torch.tensor(labels, dtype=torch.int64),
        "scores": torch.tensor(scores, dtype=torch.float32),
    }


def gt(boxes: list[list[float]], labels: list[int], difficult: list[bool]) -> dict:
    return {
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "labels": torch.tensor(labels, dtype=torch.int64),
        "difficult": torch.tensor(difficult, dtype=torch.bool),
    }


A = [0.0, 0.0, 10.0, 10.0]
B = [20.0, 20.0, 40.0, 30.0]
FAR = [100.0, 100.0, 110.0, 110.0]


def test_tied_scores_keep_the_order_the_detections_came_in() -> None:
    # A false positive of image 0 and a true positive of image 1 at one score: ranked FP,
    # TP (the devkit's stable sort), precision 1/2 at recall 1. In the other order, 1.
    targets = [gt([], [], []), gt([A], [1], [False])]
    evaluator = VOCEvaluator(2)
    evaluator.update([det([FAR], [1], [0.5]), det([A], [1], [0.5])], targets)
    assert evaluator.compute().ap["1"] == pytest.approx(0.5)
    evaluator = VOCEvaluator(2)
    evaluator.update([det([A], [1], [0.5]), det([FAR], [1], [0.5])], targets[::-1])
    assert evaluator.compute().ap["1"] == 1.0


def test_a_difficult_object_detected_twice_costs_nothing() -> None:
    # Both detections on the difficult B are ignored, ranked above the one true positive.
    evaluator = VOCEvaluator(2)
    targets = [gt([A, B], [1, 1], [False, True])]
    evaluator.update([det([B, B, A], [1, 1, 1], [0.9, 0.8, 0.7])], targets)
    result = evaluator.compute()
    assert result.ap["1"] == 1.0
    assert result.npos["1"] == 1 and result.num_detections["1"] == 3


def test_classes_without_detections_or_without_objects_and_empty_images() -> None:
    # Class 1 found; class 2 has an object and no detection: AP 0, in the mean; class 3
    # has a detection and no object: NaN, out of the mean. The images without objects
    # add class 1's detection on them as a false positive below the true positive.
    evaluator = VOCEvaluator(4)
    targets = [gt([], [], []), gt([A, B], [1, 2], [False, False]), gt([], [], [])]
    predictions = [det([], [], []), det([A, FAR], [1, 3], [0.9, 0.8]), det([B], [1], [0.5])]
    evaluator.update(predictions, targets)
    result = evaluator.compute()
    assert result.ap["1"] == 1.0 and result.ap["2"] == 0.0 and math.isnan(result.ap["3"])
    assert result.npos == {"1": 1, "2": 1, "3": 0}
    assert result.num_detections == {"1": 2, "2": 0, "3": 1}
    assert result.map == 0.5
