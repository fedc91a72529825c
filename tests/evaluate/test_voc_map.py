"""Pascal VOC AP: hand-computed cases and the devkit's sequential loop as a reference."""

from __future__ import annotations

import math

import pytest
import torch

from faster_rcnn.evaluate.voc_map import VOCEvaluator, voc_ap


def det(boxes: list[list[float]], labels: list[int], scores: list[float]) -> dict:
    return {
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "labels": torch.tensor(labels, dtype=torch.int64),
        "scores": torch.tensor(scores, dtype=torch.float32),
    }


def gt(
    boxes: list[list[float]],
    labels: list[int],
    difficult: list[bool] | None = None,
    crowd: list[bool] | None = None,
) -> dict:
    target = {
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "labels": torch.tensor(labels, dtype=torch.int64),
    }
    if difficult is not None:
        target["difficult"] = torch.tensor(difficult, dtype=torch.bool)
    if crowd is not None:
        target["iscrowd"] = torch.tensor(crowd, dtype=torch.bool)
    return target


def both_metrics(predictions, targets, num_classes: int = 2):
    """(area result, 11-point result) of one evaluator."""
    evaluator = VOCEvaluator(num_classes)
    evaluator.update(predictions, targets)
    return evaluator.compute(), evaluator.compute(use_07_metric=True)


A = [0.0, 0.0, 10.0, 10.0]
B = [20.0, 20.0, 40.0, 30.0]
C = [50.0, 0.0, 60.0, 20.0]
FAR = [100.0, 100.0, 110.0, 110.0]


def test_perfect_detections_score_one() -> None:
    targets = [gt([A, B], [1, 2]), gt([C], [1])]
    predictions = [det([A, B], [1, 2], [0.9, 0.8]), det([C], [1], [0.7])]
    for result in both_metrics(predictions, targets, num_classes=3):
        assert result.ap == {"1": 1.0, "2": 1.0}
        assert result.map == 1.0
        assert result.npos == {"1": 2, "2": 1}
        assert result.num_detections == {"1": 2, "2": 1}


def test_false_positive_ranked_above_a_true_positive() -> None:
    # Ranked: TP (0.9), FP (0.8), TP (0.7); 3 positives, one never found.
    # recall 1/3, 1/3, 2/3; precision 1, 1/2, 2/3.
    # Area: 1/3 * 1 + 1/3 * 2/3 = 5/9. 11-point: recall >= 0, .1, .2, .3 reach precision
    # 1, recall >= .4, .5, .6 reach 2/3, the rest nothing: (4 + 3 * 2/3) / 11 = 6/11.
    targets = [gt([A, B], [1, 1]), gt([C], [1])]
    predictions = [det([A, FAR], [1, 1], [0.9, 0.8]), det([C], [1], [0.7])]
    area, eleven = both_metrics(predictions, targets)
    assert area.ap["1"] == pytest.approx(5 / 9, abs=1e-12)
    assert eleven.ap["1"] == pytest.approx(6 / 11, abs=1e-12)


def test_iou_exactly_at_threshold_is_a_hit() -> None:
    half = [0.0, 0.0, 10.0, 5.0]  # IoU with A: 50 / 100
    area, _ = both_metrics([det([half], [1], [0.5])], [gt([A], [1])])
    assert area.ap["1"] == 1.0
    evaluator = VOCEvaluator(2, iou_threshold=0.51)
    evaluator.update([det([half], [1], [0.5])], [gt([A], [1])])
    assert evaluator.compute().ap["1"] == 0.0


def test_detection_of_a_difficult_box_is_ignored() -> None:
    # Counted as a false positive it would halve the precision of the TP after it.
    targets = [gt([A, B], [1, 1], difficult=[False, True])]
    predictions = [det([B, A], [1, 1], [0.9, 0.8])]
    for result in both_metrics(predictions, targets):
        assert result.ap["1"] == 1.0
        assert result.npos["1"] == 1
        assert result.num_detections["1"] == 2
    # A missed difficult box costs nothing either.
    area, _ = both_metrics([det([A], [1], [0.8])], targets)
    assert area.ap["1"] == 1.0


def test_a_crowd_region_is_not_an_object_to_find() -> None:
    # One object found and one crowd region not: AP 1 (counted as a miss it was 0.5).
    targets = [gt([A, B], [1, 1], crowd=[False, True])]
    for result in both_metrics([det([A], [1], [0.9])], targets):
        assert result.ap["1"] == 1.0
        assert result.npos["1"] == 1
    # A class whose only box is a crowd region has nothing to find: no AP.
    result, _ = both_metrics([det([A], [1], [0.9])], [gt([A, B], [1, 2], crowd=[False, True])], 3)
    assert result.npos["2"] == 0
    assert math.isnan(result.ap["2"])
    assert result.map == 1.0


REGION = [0.0, 0.0, 100.0, 100.0]
INSIDE = [10.0, 10.0, 20.0, 20.0]  # all of it in REGION, IoU with it 0.01
OUTSIDE = [200.0, 200.0, 210.0, 210.0]


def test_a_detection_in_a_crowd_region_of_its_class_is_ignored() -> None:
    # As COCOeval: the detection lies in the region (intersection over its own area 1 >=
    # 0.5), though its IoU with it is 0.01. Counted as a false positive above the true
    # positive, it would halve the AP.
    targets = [gt([REGION, OUTSIDE], [1, 1], crowd=[True, False])]
    result, _ = both_metrics([det([INSIDE, OUTSIDE], [1, 1], [0.9, 0.8])], targets)
    assert result.ap["1"] == 1.0
    # Half inside (0.4 of it, below 0.5): a false positive; recall 1 at precision 1/2.
    half_in = [90.0, 10.0, 115.0, 20.0]
    result, _ = both_metrics([det([half_in, OUTSIDE], [1, 1], [0.9, 0.8])], targets)
    assert result.ap["1"] == pytest.approx(0.5)
    # A region ignores detections of its own class only: a class-2 detection in a class-1
    # region is class 2's false positive, above its true positive.
    targets = [gt([REGION, OUTSIDE], [1, 2], crowd=[True, False])]
    result, _ = both_metrics([det([INSIDE, OUTSIDE], [2, 2], [0.9, 0.8])], targets, 3)
    assert result.ap["2"] == pytest.approx(0.5)


def test_an_object_in_a_crowd_region_is_found_before_the_region_ignores() -> None:
    # COCOeval matches objects first: the detection on INSIDE takes it (a true positive);
    # its duplicate, in the region too, is ignored rather than a false positive. Ranked
    # TP, TP: AP 1; with the duplicate a false positive, TP, FP, TP gives 1/2 + 1/2 * 2/3.
    targets = [gt([REGION, INSIDE, OUTSIDE], [1, 1, 1], crowd=[True, False, False])]
    duplicate = [10.5, 10.0, 20.5, 20.0]
    predictions = [det([INSIDE, duplicate, OUTSIDE], [1, 1, 1], [0.9, 0.8, 0.7])]
    for result in both_metrics(predictions, targets):
        assert result.ap["1"] == 1.0
        assert result.npos["1"] == 2


def test_duplicate_detection_is_a_false_positive() -> None:
    a, b = [0.0, 0.0, 10.0, 10.0], [2.0, 0.0, 12.0, 10.0]
    near_a = [0.5, 0.0, 10.5, 10.0]  # IoU 0.905 with a (taken), 0.739 with b (free)
    # The devkit gives the duplicate to its best box, a, already taken: FP, even though b
    # is free and overlaps enough. Ranked TP, FP, TP: recall 1/2, 1/2, 1; precision
    # 1, 1/2, 2/3; area 1/2 + 1/2 * 2/3 = 5/6. Matching to b instead would give 1.
    targets = [gt([a, b], [1, 1])]
    predictions = [det([a, near_a, b], [1, 1, 1], [0.9, 0.8, 0.7])]
    area, eleven = both_metrics(predictions, targets)
    assert area.ap["1"] == pytest.approx(5 / 6, abs=1e-12)
    # 11-point: recall >= 0..0.5 reach precision 1 (6 points), 0.6..1.0 reach 2/3 (5).
    assert eleven.ap["1"] == pytest.approx((6 + 5 * 2 / 3) / 11, abs=1e-12)


def test_classes_are_matched_separately_and_class_without_ground_truth_is_nan() -> None:
    # A class-2 detection on a class-1 box is a class-2 false positive; the class-2 box
    # is missed; class 3 has a detection but no ground truth: NaN, left out of the mean.
    targets = [gt([A, B], [1, 2])]
    predictions = [det([A, A, FAR], [2, 1, 3], [0.9, 0.5, 0.4])]
    for result in both_metrics(predictions, targets, num_classes=4):
        assert result.ap["1"] == 1.0
        assert result.ap["2"] == 0.0
        assert math.isnan(result.ap["3"])
        assert result.map == 0.5


def test_no_ground_truth_at_all_gives_nan_map() -> None:
    evaluator = VOCEvaluator(3, class_names=["cat", "dog"])
    evaluator.update([det([A], [1], [0.9])], [gt([], [])])
    result = evaluator.compute()
    assert math.isnan(result.map)
    assert list(result.ap) == ["cat", "dog"]
    assert result.table().splitlines()[3:] == [
        "cat     n/a       0        1",
        "dog     n/a       0        0",
        "------------------------------",
        "mAP     n/a",
        "n/a: no object to find (none, or each difficult or a crowd region), no recall: "
        "no class has an AP, nor a mean",
    ]


def test_the_table_says_why_a_class_has_no_ap() -> None:
    evaluator = VOCEvaluator(4, class_names=["cat", "dog", "owl"])
    evaluator.update([det([A, B], [1, 2], [0.9, 0.8])], [gt([A], [1])])
    table = evaluator.compute().table()
    assert "nan" not in table
    assert table.splitlines()[3:] == [
        "cat  1.0000       1        1",
        "dog     n/a       0        1",
        "owl     n/a       0        0",
        "------------------------------",
        "mAP  1.0000",
        "n/a: no object to find (none, or each difficult or a crowd region), no recall: "
        "the mAP is the mean of the other 1 class",
    ]
    # Every class with objects: no note.
    evaluator = VOCEvaluator(2, class_names=["cat"])
    evaluator.update([det([A], [1], [0.9])], [gt([A], [1])])
    assert evaluator.compute().table().splitlines()[-1] == "mAP  1.0000"


def test_voc_ap_eleven_point_thresholds_are_the_devkits_matlab_colon() -> None:
    # MATLAB's 0:0.1:1 has 3 * 0.1 = 0.30000000000000004: a recall of exactly 0.3 reaches
    # only the thresholds 0, 0.1 and 0.2.
    recall = torch.tensor([0.3], dtype=torch.float64)
    precision = torch.tensor([1.0], dtype=torch.float64)
    assert voc_ap(recall, precision, use_07_metric=True) == pytest.approx(3 / 11)
    assert voc_ap(recall, precision) == pytest.approx(0.3)
    assert voc_ap(torch.zeros(0), torch.zeros(0)) == 0.0
    # But 1 - 4 * 0.1 = 0.6 and 1 - 3 * 0.1 = 0.7 exactly (np.arange's 6 * 0.1 and
    # 7 * 0.1 are 0.6000000000000001 and 0.7000000000000001): recalls of exactly 3/5 and
    # 7/10 reach them, 7 and 8 thresholds of 11.
    for found, npos, reached in ((3, 5, 7), (7, 10, 8)):
        recall = torch.tensor([found / npos], dtype=torch.float64)
        assert voc_ap(recall, precision, use_07_metric=True) == reached / 11


def test_three_of_five_objects_found_reach_the_eleven_point_threshold_0_6() -> None:
    # Five objects, three found by the only detections: recall 3/5 at precision 1, so
    # the thresholds 0, 0.1, ..., 0.6 reach precision 1 and 0.7..1.0 nothing: 7/11 (the
    # VOC2007 devkit's; py-faster-rcnn's np.arange thresholds give 6/11).
    boxes = [[20.0 * k, 0.0, 20.0 * k + 10.0, 10.0] for k in range(5)]
    targets = [gt(boxes, [1] * 5)]
    predictions = [det(boxes[:3], [1, 1, 1], [0.9, 0.8, 0.7])]
    area, eleven = both_metrics(predictions, targets)
    assert area.ap["1"] == pytest.approx(0.6, abs=1e-12)
    assert eleven.ap["1"] == pytest.approx(7 / 11, abs=1e-12)


def test_bad_labels_name_the_image_and_box() -> None:
    evaluator = VOCEvaluator(3)
    with pytest.raises(ValueError, match=r"image 1, box 0: predicted label 3"):
        evaluator.update([det([], [], []), det([A], [3], [0.9])], [gt([A], [1]), gt([A], [1])])
    bad_boxes = {**det([A], [1], [0.9]), "boxes": torch.zeros(1, 5)}
    with pytest.raises(ValueError, match=r"image 0: predicted boxes must have shape \(N, 4\)"):
        VOCEvaluator(3).update([bad_boxes], [gt([A], [1])])
    with pytest.raises(ValueError, match="class names"):
        VOCEvaluator(3, class_names=["only one"])


def reference_voc(predictions, targets, num_classes, iou_threshold, use_07):
    """py-faster-rcnn's voc_eval loop, one detection at a time (>= threshold, stable sort,
    continuous coordinates); crowd regions left out of it and, as COCOeval, a false
    positive inside one of its class (intersection / its area >= threshold) ignored."""
    aps = {}
    for label in range(1, num_classes):
        recs, npos = [], 0
        for target in targets:
            crowd = target.get("iscrowd", torch.zeros(len(target["labels"]), dtype=torch.bool))
            keep = (target["labels"] == label) & ~crowd
            diff = target.get("difficult", torch.zeros(len(keep), dtype=torch.bool))[keep]
            recs.append(
                {"bbox": target["boxes"][keep].tolist(), "difficult": diff.tolist(),
                 "det": [False] * int(keep.sum()),
                 "crowd": target["boxes"][(target["labels"] == label) & crowd].tolist()}
            )  # fmt: skip
            npos += int((~diff).sum())
        entries = []
        for image, prediction in enumerate(predictions):
            for box, lab, score in zip(
                prediction["boxes"].tolist(),
                prediction["labels"].tolist(),
                prediction["scores"].tolist(),
                strict=True,
            ):
                if lab == label:
                    entries.append((image, box, score))
        order = sorted(range(len(entries)), key=lambda i: -entries[i][2])  # stable
        tp, fp = [], []
        for i in order:
            image, bb, _ = entries[i]
            rec = recs[image]
            ovmax, jmax = -math.inf, -1
            for j, g in enumerate(rec["bbox"]):
                iw = min(bb[2], g[2]) - max(bb[0], g[0])
                ih = min(bb[3], g[3]) - max(bb[1], g[1])
                if iw > 0 and ih > 0:
                    inter = iw * ih
                    union = (bb[2] - bb[0]) * (bb[3] - bb[1]) + (g[2] - g[0]) * (g[3] - g[1])
                    ov = inter / (union - inter)
                    if ov > ovmax:
                        ovmax, jmax = ov, j
            if ovmax >= iou_threshold:
                if rec["difficult"][jmax]:
                    tp.append(0.0), fp.append(0.0)
                elif not rec["det"][jmax]:
                    rec["det"][jmax] = True
                    tp.append(1.0), fp.append(0.0)
                else:
                    tp.append(0.0), fp.append(0.0 if in_region(bb, rec, iou_threshold) else 1.0)
            else:
                tp.append(0.0), fp.append(0.0 if in_region(bb, rec, iou_threshold) else 1.0)
        if npos == 0:
            aps[str(label)] = math.nan
            continue
        tp_c = torch.tensor(tp, dtype=torch.float64).cumsum(0)
        fp_c = torch.tensor(fp, dtype=torch.float64).cumsum(0)
        recall = tp_c / npos
        precision = tp_c / torch.clamp(tp_c + fp_c, min=torch.finfo(torch.float64).eps)
        if use_07:
            ap = 0.0
            # MATLAB's 0:0.1:1, as the VOC2007 devkit's loop has it.
            for t in [0.0, 0.1, 0.2, 3 * 0.1, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]:
                p = precision[recall >= t]
                ap += (float(p.max()) if len(p) else 0.0) / 11
        else:
            mrec = [0.0, *recall.tolist(), 1.0]
            mpre = [0.0, *precision.tolist(), 0.0]
            for i in range(len(mpre) - 1, 0, -1):
                mpre[i - 1] = max(mpre[i - 1], mpre[i])
            ap = sum(
                (mrec[i + 1] - mrec[i]) * mpre[i + 1]
                for i in range(len(mrec) - 1)
                if mrec[i + 1] != mrec[i]
            )
        aps[str(label)] = ap
    return aps


def in_region(bb: list[float], rec: dict, iou_threshold: float) -> bool:
    """Whether box ``bb`` lies in one of ``rec``'s crowd regions, as COCOeval measures."""
    for g in rec["crowd"]:
        iw = max(min(bb[2], g[2]) - max(bb[0], g[0]), 0.0)
        ih = max(min(bb[3], g[3]) - max(bb[1], g[1]), 0.0)
        if iw * ih / ((bb[2] - bb[0]) * (bb[3] - bb[1])) >= iou_threshold:
            return True
    return False


def random_case(gen: torch.Generator, num_images: int, num_classes: int, crowd: bool = False):
    """Integer boxes near the ground truth, scores on a coarse grid (many ties); with
    ``crowd``, some boxes crowd regions, some of them large."""
    predictions, targets = [], []
    for _ in range(num_images):
        n = int(torch.randint(0, 5, (), generator=gen))
        xy = torch.randint(0, 40, (n, 2), generator=gen).float()
        wh = torch.randint(4, 20, (n, 2), generator=gen).float()
        boxes = torch.cat((xy, xy + wh), dim=1)
        labels = torch.randint(1, num_classes, (n,), generator=gen)
        difficult = torch.rand(n, generator=gen) < 0.3
        targets.append({"boxes": boxes, "labels": labels, "difficult": difficult})
        m = int(torch.randint(0, 8, (), generator=gen))
        src = boxes[torch.randint(0, n, (m,), generator=gen)] if n else torch.zeros(m, 4)
        jitter = torch.randint(-3, 4, (m, 4), generator=gen).float()
        d_boxes = src + jitter
        d_boxes[:, 2:] = torch.maximum(d_boxes[:, 2:], d_boxes[:, :2] + 1)
        d_labels = torch.randint(1, num_classes, (m,), generator=gen)
        scores = torch.randint(1, 6, (m,), generator=gen).float() / 5
        predictions.append({"boxes": d_boxes, "labels": d_labels, "scores": scores})
        if crowd:  # detections near a grown region lie inside it, at a low IoU
            iscrowd = torch.rand(n, generator=gen) < 0.3
            grown = iscrowd & (torch.rand(n, generator=gen) < 0.5)
            regions = boxes.clone()
            regions[grown] += torch.tensor([-10.0, -10.0, 10.0, 10.0])
            targets[-1] |= {"boxes": regions, "iscrowd": iscrowd}
    return predictions, targets


@pytest.mark.parametrize("seed", range(40))
def test_matches_the_sequential_devkit_loop(seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    num_classes = 4
    predictions, targets = random_case(gen, 6, num_classes, crowd=seed % 2 == 1)
    threshold = (0.5, 0.3, 0.7)[seed % 3]
    for use_07 in (False, True):
        evaluator = VOCEvaluator(num_classes, iou_threshold=threshold, use_07_metric=use_07)
        # Two batches: accumulation across update() calls must not change anything.
        evaluator.update(predictions[:3], targets[:3])
        evaluator.update(predictions[3:], targets[3:])
        got = evaluator.compute().ap
        expected = reference_voc(predictions, targets, num_classes, threshold, use_07)
        for name, value in expected.items():
            if math.isnan(value):
                assert math.isnan(got[name])
            else:
                assert got[name] == pytest.approx(value, abs=1e-12), (name, use_07)
