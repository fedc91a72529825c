"""One trained model evaluated with several test-time proposal limits.

    python benchmarks/proposal_limits.py --model M.safetensors --data D [--split test]
        [--limits 1000 2000 2800] [--out F.json]

Only the RPN's test-time limits change between the evaluations (the boxes a level
before its NMS and the proposals an image after it, both set to each limit), so the
differences are what more proposals give the head on crowded images. Prints, per limit,
VOC mAP@0.5 and AP per class, COCO AP at pycocotools' 100 detections a class an image
(as ``evaluate``), COCO AP with every detection counted (``maxDets`` 10000), and the
seconds an image of the detection (one pass, one image at a time). Round 70 of
``recipe_ab.md`` measured ``train``'s choice of 15 proposals an object with it.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from torch import Tensor

from detections_cap import evaluated_figures, write_record
from faster_rcnn.data.dataset import Sample
from faster_rcnn.data.open import open_dataset
from faster_rcnn.model import FasterRCNN
from faster_rcnn.train.checkpoint import load_model

EVERY_DETECTION = 10_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--limits", type=int, nargs="+", default=[1000, 2000, 2800])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    model = load_model(args.model).eval()
    dataset = open_dataset(args.data, args.split, model.config.class_names)
    record = {"model": str(args.model), "data": args.data, "split": args.split, "limits": {}}
    for limit in args.limits:
        model.rpn._pre_nms_top_n["testing"] = limit
        model.rpn._post_nms_top_n["testing"] = limit
        figures = evaluated_figures(model, dataset) | every_detection_coco(model, dataset)
        record["limits"][limit] = {name: round(value, 4) for name, value in figures.items()}
        print(f"{limit:6d} {json.dumps(record['limits'][limit])}", flush=True)
    write_record(record, args.out)


def every_detection_coco(model: FasterRCNN, dataset: Sequence[Sample]) -> dict[str, float]:
    """COCO AP, AP50 and AP75 over every detection the model makes (pycocotools with
    ``maxDets`` 10000), and the seconds an image its detection took."""
    sizes, targets, detections, seconds = [], [], [], 0.0
    with torch.inference_mode():
        for index in range(len(dataset)):
            image, target = dataset[index]
            sizes.append((image.shape[1], image.shape[2]))
            targets.append(target)
            start = time.perf_counter()
            detections.append(model([image])[0])
            seconds += time.perf_counter() - start
    return coco_ap_every_detection(sizes, targets, detections, model.num_classes) | {
        "seconds_an_image": seconds / len(dataset)
    }


def coco_ap_every_detection(
    sizes: Sequence[tuple[int, int]],
    targets: Sequence[dict[str, Tensor]],
    detections: Sequence[dict[str, Tensor]],
    num_classes: int,
) -> dict[str, float]:
    """COCO AP, AP50 and AP75 of ``detections`` against ``targets`` (per image of
    ``(height, width)`` ``sizes``: ``{"boxes": (D, 4), "labels": (D,), "scores": (D,)}``
    and ``{"boxes": (N, 4), "labels": (N,)}`` in its pixels), every detection counted
    (pycocotools with ``maxDets`` 10000)."""
    images, objects, found = [], [], []
    for index, (size, target, detected) in enumerate(zip(sizes, targets, detections, strict=True)):
        images.append({"id": index, "height": size[0], "width": size[1]})
        for box, label in zip(target["boxes"].tolist(), target["labels"].tolist(), strict=True):
            objects.append({"image_id": index, "category_id": label, **_coco_box(box)})
        for box, label, score in zip(
            detected["boxes"].tolist(),
            detected["labels"].tolist(),
            detected["scores"].tolist(),
            strict=True,
        ):
            found.append(
                {"image_id": index, "category_id": label, "score": score, **_coco_box(box)}
            )
    truth = COCO()
    categories = [{"id": k} for k in range(1, num_classes)]
    objects = [{**o, "id": k + 1, "iscrowd": 0} for k, o in enumerate(objects)]
    truth.dataset = {"images": images, "annotations": objects, "categories": categories}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints as it goes
        truth.createIndex()
        scored = COCOeval(truth, truth.loadRes(found), "bbox")
        scored.params.maxDets = [1, 10, EVERY_DETECTION]
        scored.evaluate()
        scored.accumulate()
    precision = scored.eval["precision"][..., 0, -1]  # every area, the most detections
    at = {iou: precision[k][precision[k] > -1].mean() for k, iou in ((0, 50), (5, 75))}
    return {
        "coco_ap_every_detection": float(precision[precision > -1].mean()),
        "coco_ap50_every_detection": float(at[50]),
        "coco_ap75_every_detection": float(at[75]),
    }


def _coco_box(box: list[float]) -> dict[str, object]:
    """COCO's ``bbox`` (x, y, width, height) and ``area`` of ``x1, y1, x2, y2``."""
    x1, y1, x2, y2 = box
    return {"bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1)}


if __name__ == "__main__":
    main()
