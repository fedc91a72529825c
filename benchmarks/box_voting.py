"""Box voting after the head's NMS, at several IoU thresholds, on one trained model.

    python benchmarks/box_voting.py --model M.safetensors --data D [--split test]
        [--proposals N] [--thresholds 0.5 0.6 0.7 0.8 0.9] [--out F.json]

Box voting (Gidaris and Komodakis, 2015; detectron's ``TEST.BBOX_VOTE``) replaces each
detection the NMS keeps by the score-weighted mean of every candidate of its class that
overlaps it by at least the threshold, its score unchanged. The model runs once an
image; its head's candidates (before NMS) are kept and selected again for each
threshold, so every row scores the same candidates. Prints, per threshold (0: the
model's own detections), VOC mAP@0.5 and AP per class, and COCO AP, AP50 and AP75 with
every detection counted. ``--proposals`` sets the RPN's test-time limits (the boxes a
level before its NMS and the proposals an image after it). Round 71 of ``recipe_ab.md``
measured it.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from detections_cap import write_record
from faster_rcnn.data.dataset import Sample
from faster_rcnn.data.open import open_dataset
from faster_rcnn.evaluate.voc_map import VOCEvaluator
from faster_rcnn.model import FasterRCNN
from faster_rcnn.ops.boxes import box_iou
from faster_rcnn.train.checkpoint import load_model
from proposal_limits import coco_ap_every_detection


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--proposals", type=int)
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.5, 0.6, 0.7, 0.8, 0.9])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    model = load_model(args.model).eval()
    if args.proposals is not None:
        model.rpn._pre_nms_top_n["testing"] = args.proposals
        model.rpn._post_nms_top_n["testing"] = args.proposals
    dataset = open_dataset(args.data, args.split, model.config.class_names)
    seen = SeenCandidates(model, dataset)
    record = {**{k: str(v) for k, v in vars(args).items()}, "thresholds": {}}
    for threshold in [0.0, *args.thresholds]:
        figures = seen.figures(threshold)
        record["thresholds"][threshold] = {name: round(value, 4) for name, value in figures.items()}
        print(f"{threshold:4.2f} {json.dumps(record['thresholds'][threshold])}", flush=True)
    write_record(record, args.out)


class SeenCandidates:
    """The head's candidates of every image of ``dataset``, and the figures of each
    selection of them."""

    def __init__(self, model: FasterRCNN, dataset: Sequence[Sample]) -> None:
        self.model = model
        self.candidates: list[dict[str, Tensor]] = []
        self.resized: list[tuple[int, int]] = []
        self.sizes: list[tuple[int, int]] = []
        self.targets: list[dict[str, Tensor]] = []
        heads = model.roi_heads
        found_by_head = heads.candidates

        def keep_candidates(
            features: dict[str, Tensor],
            proposals: list[Tensor],
            image_shapes: list[tuple[int, int]],
        ) -> list[dict[str, Tensor]]:
            found = found_by_head(features, proposals, image_shapes)
            self.candidates += found
            self.resized += image_shapes
            return found

        heads.candidates = keep_candidates
        with torch.inference_mode():
            for index in range(len(dataset)):
                image, target = dataset[index]
                model([image])
                self.sizes.append((image.shape[1], image.shape[2]))
                self.targets.append(target)
        del heads.candidates

    def figures(self, threshold: float) -> dict[str, float]:
        """VOC mAP@0.5, each class's AP@0.5 and COCO AP (every detection) of the
        detections voted at ``threshold`` (0: the model's own)."""
        detections = [
            voted(self.model.roi_heads.select(found), found, threshold) for found in self.candidates
        ]
        detections = self.model.transform.postprocess(detections, self.resized, self.sizes)
        names = self.model.config.label_names()
        voc = VOCEvaluator(self.model.num_classes, class_names=names)
        voc.update(detections, self.targets)
        result = voc.compute()
        figures = {"voc_map50": result.map} | {f"ap50/{n}": ap for n, ap in result.ap.items()}
        coco = coco_ap_every_detection(self.sizes, self.targets, detections, self.model.num_classes)
        return figures | coco


def voted(
    kept: dict[str, Tensor], candidates: dict[str, Tensor], threshold: float
) -> dict[str, Tensor]:
    """``kept`` (``{"boxes": (D, 4), "labels": (D,), "scores": (D,)}``) with each box
    the score-weighted mean of the ``candidates`` of its label that overlap it by at
    least ``threshold`` (itself among them); ``threshold`` 0 leaves it as it is."""
    if threshold == 0 or kept["boxes"].numel() == 0:
        return kept
    same_label = kept["labels"][:, None] == candidates["labels"][None, :]
    voters = (box_iou(kept["boxes"], candidates["boxes"]) >= threshold) & same_label
    weights = candidates["scores"][None, :] * voters
    boxes = weights @ candidates["boxes"] / weights.sum(1, keepdim=True)
    return {**kept, "boxes": boxes}


if __name__ == "__main__":
    main()
