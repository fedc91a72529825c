"""One trained model evaluated with several caps on its detections an image.

    python benchmarks/detections_cap.py --model M.safetensors --data D [--split test]
        [--caps 100 200 300 500] [--out F.json]

Only the cap (``roi_heads.detections_per_img``) changes between the evaluations, so the
differences are what the cap cuts: on images with more objects than the cap, the
detections of the lowest scores, which are the rare classes' first. Prints VOC mAP@0.5,
AP per class and COCO AP for each cap, and how many detections the model returns an
image with no cap at all, against the objects there are.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Sequence
from pathlib import Path

import torch

from faster_rcnn.data.dataset import Sample, target_of
from faster_rcnn.data.open import open_dataset
from faster_rcnn.evaluate.runner import evaluate_detector
from faster_rcnn.model import FasterRCNN
from faster_rcnn.train.checkpoint import load_model

UNCAPPED = 10_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--caps", type=int, nargs="+", default=[100, 200, 300, 500])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    model = load_model(args.model).eval()
    dataset = open_dataset(args.data, args.split, model.config.class_names)
    record = {"model": str(args.model), "data": args.data, "split": args.split}
    record["returned"] = returned_detections(model, dataset)
    print(json.dumps(record["returned"]))
    record["caps"] = {}
    for cap in args.caps:
        model.roi_heads.detections_per_img = cap
        figures = evaluated_figures(model, dataset)
        record["caps"][cap] = {name: round(value, 4) for name, value in figures.items()}
        print(f"{cap:5d} {json.dumps(record['caps'][cap])}", flush=True)
    write_record(record, args.out)


def write_record(record: dict[str, object], out: Path | None) -> None:
    """Write ``record`` as JSON to ``out`` (its folder made), and say so; nothing where
    ``out`` is ``None``."""
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(record, indent=1) + "\n")
        print(f"-> {out}")


def evaluated_figures(model: FasterRCNN, dataset: Sequence[Sample]) -> dict[str, float]:
    """VOC mAP@0.5, COCO AP and each class's AP@0.5 of ``model`` on ``dataset``, as
    ``evaluate`` scores them (one image a batch)."""
    result = evaluate_detector(model, dataset, batch_size=1, class_names=model.config.label_names())
    figures = {"voc_map50": result.voc.map, "coco_ap": result.coco["AP"]}
    return figures | {f"ap50/{name}": ap for name, ap in result.voc.ap.items()}


def returned_detections(model: FasterRCNN, dataset: Sequence[Sample]) -> dict[str, float]:
    """Median and most detections an image with the cap lifted (it stays lifted), and
    median and most objects an image."""
    model.roi_heads.detections_per_img = UNCAPPED
    returned, objects = [], []
    with torch.inference_mode():
        for index in range(len(dataset)):
            image, _ = dataset[index]
            returned.append(len(model([image])[0]["boxes"]))
            objects.append(len(target_of(dataset, index)["boxes"]))
    return {
        "detections_median": statistics.median(returned),
        "detections_max": max(returned),
        "objects_median": statistics.median(objects),
        "objects_max": max(objects),
    }


if __name__ == "__main__":
    main()
