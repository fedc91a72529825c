"""One trained model scored with several IoUs for the head's per-class NMS.

    python benchmarks/box_nms_sweep.py --model M.safetensors --data D [--split test]
        [--ious 0.3 0.4 0.5 0.55 0.6 0.65 0.7] [--class-ious 0.6 0.5 0.5]
        [--soft-sigmas 0.5] [--out F.json]

The model runs once over the split with its NMS lifted; each IoU then applies the
per-class NMS and the model's cap on detections an image to those same candidates, as
the model would have, so the differences are only what NMS removes. ``--class-ious``
adds one arm with an IoU per class (what ``train``'s recipe chooses where a class's
objects overlap each other: :mod:`faster_rcnn.train.recipe`). ``--soft-sigmas`` adds one
arm per sigma with Gaussian Soft-NMS in each class instead
(:mod:`faster_rcnn.ops.soft_nms`: overlapping detections are lowered in score, not
removed, down to the model's floor, ``roi_heads.soft_nms_min_score``; then the cap, by
lowered score). Prints, for each arm, VOC mAP@0.5 and AP per class, COCO AP and AP75,
and the detections kept; and per class the share of the split's objects that overlap
another of their class at IoU 0.5 and 0.6 or more.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from faster_rcnn.data.dataset import Sample, target_of
from faster_rcnn.data.open import open_dataset
from faster_rcnn.evaluate.coco_ap import COCOEvaluator
from faster_rcnn.evaluate.voc_map import VOCEvaluator
from faster_rcnn.model import FasterRCNN
from faster_rcnn.roi_heads.postprocess import best_after_nms
from faster_rcnn.train.checkpoint import load_model
from faster_rcnn.train.recipe import same_class_neighbour_iou

Detections = dict[str, Tensor]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument(
        "--ious", type=float, nargs="+", default=[0.3, 0.4, 0.5, 0.55, 0.6, 0.65, 0.7]
    )
    parser.add_argument("--class-ious", type=float, nargs="+", help="one IoU per class")
    parser.add_argument("--soft-sigmas", type=float, nargs="+", default=[], help="Soft-NMS arms")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    model = load_model(args.model).eval()
    dataset = open_dataset(args.data, args.split, model.config.class_names)
    targets = [target_of(dataset, index) for index in range(len(dataset))]
    record = {"model": str(args.model), "data": args.data, "split": args.split}
    names = model.config.label_names()
    record["model_nms_iou"] = [model.roi_heads.nms_thresh, model.roi_heads.class_nms_thresh]
    record["overlapping_share"] = overlapping_shares(targets, names, (0.5, 0.6))
    print(json.dumps(record["overlapping_share"]))
    cap, lowest = model.roi_heads.detections_per_img, model.roi_heads.soft_nms_min_score
    candidates = candidates_before_nms(model, dataset)
    arms = [(iou,) * len(names) for iou in args.ious]
    arms += [tuple(args.class_ious)] if args.class_ious else []
    record["ious"] = {}
    for ious in arms:
        kept = [after_nms(detections, ious, cap) for detections in candidates]
        name = f"{ious[0]:g}" if len(set(ious)) == 1 else " ".join(f"{iou:g}" for iou in ious)
        record["ious"][name] = scores(kept, targets, names)
        print(f"{name:>12} {json.dumps(record['ious'][name])}", flush=True)
    record["soft_nms_sigmas"] = {}
    for sigma in args.soft_sigmas:
        kept = [after_soft_nms(detections, sigma, lowest, cap) for detections in candidates]
        record["soft_nms_sigmas"][f"{sigma:g}"] = arm = scores(kept, targets, names)
        print(f"{f'soft {sigma:g}':>12} {json.dumps(arm)}", flush=True)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(record, indent=1) + "\n")
        print(f"-> {args.out}")


def candidates_before_nms(model: FasterRCNN, dataset: Sequence[Sample]) -> list[Detections]:
    """Per image, the detections with NMS and the cap lifted (they stay lifted): every
    (box, class) pair above the score threshold, in the model's order."""
    model.roi_heads.nms_thresh = 1.0  # NMS removes a box overlapping *more* than this
    model.roi_heads.class_nms_thresh = ()
    model.roi_heads.soft_nms_sigma = 0.0  # greedy NMS, lifted: no score is lowered
    model.roi_heads.detections_per_img = 1_000_000
    with torch.inference_mode():
        return [model([dataset[index][0]])[0] for index in range(len(dataset))]


def after_nms(detections: Detections, ious: Sequence[float], cap: int) -> Detections:
    """``detections`` after per-class NMS, class ``k`` at ``ious[k - 1]``, the ``cap``
    best kept, as the model's head keeps them."""
    boxes, scores, labels = (detections[key] for key in ("boxes", "scores", "labels"))
    keep, _ = best_after_nms(boxes, scores, labels, ious[0], ious, cap)
    return {name: values[keep] for name, values in detections.items()}


def after_soft_nms(detections: Detections, sigma: float, lowest: float, cap: int) -> Detections:
    """``detections`` after Gaussian Soft-NMS in each class (scores lowered, those below
    ``lowest`` dropped), the ``cap`` best by lowered score kept."""
    boxes, scores, labels = (detections[key] for key in ("boxes", "scores", "labels"))
    keep, lowered = best_after_nms(boxes, scores, labels, 0.0, (), cap, sigma, lowest)
    return {"boxes": boxes[keep], "scores": lowered, "labels": labels[keep]}


def scores(
    predictions: list[Detections], targets: list[dict[str, Tensor]], class_names: Sequence[str]
) -> dict[str, float]:
    """VOC mAP@0.5 and AP per class, COCO AP and AP75, and the detections kept."""
    num_classes = len(class_names) + 1  # and the background
    voc = VOCEvaluator(num_classes, class_names=class_names)
    coco = COCOEvaluator(num_classes, class_names=class_names)
    voc.update(predictions, targets)
    coco.update(predictions, targets)
    result, figures = voc.compute(), coco.compute()
    record = {"voc_map50": result.map, "coco_ap": figures["AP"], "coco_ap75": figures["AP75"]}
    record |= {f"ap50/{name}": ap for name, ap in result.ap.items()}
    record = {name: round(value, 4) for name, value in record.items()}
    return record | {"detections": sum(len(p["boxes"]) for p in predictions)}


def overlapping_shares(
    targets: list[dict[str, Tensor]], class_names: Sequence[str], ious: Sequence[float]
) -> dict[str, dict[float, float]]:
    """Per class and IoU, the share of its objects with a neighbour of it at that IoU or
    more."""
    neighbours = torch.cat([same_class_neighbour_iou(t["boxes"], t["labels"]) for t in targets])
    labels = torch.cat([t["labels"] for t in targets])
    shares = {}
    for label, name in enumerate(class_names, start=1):
        of_class = neighbours[labels == label]
        if len(of_class):
            shares[name] = {iou: round(float((of_class >= iou).float().mean()), 4) for iou in ious}
    return shares


if __name__ == "__main__":
    main()
