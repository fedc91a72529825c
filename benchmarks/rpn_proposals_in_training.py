"""How many proposals a trained model's RPN passes to the box head in training.

    python benchmarks/rpn_proposals_in_training.py OUT NAME=MODEL:DATA [NAME=MODEL:DATA ...]

The MobileNet presets drop proposals whose objectness is under 0.05 (torchvision's
``rpn_score_thresh``), in training as at test time. Once the RPN is confident, that could
leave the box head few candidates to sample its RoIs from. For each model, over about 40
training images spread evenly through the training split of DATA, each image alone: the
proposals at the training limits (pre- and post-NMS top-n) with the threshold and
without it. The network runs in eval mode (batch norm as trained) with only the RPN's
limits switched to training's. Quantiles per model go to OUT (JSON).
"""

from __future__ import annotations

import argparse
import json
from datetime import date

import torch

from faster_rcnn.data.open import open_dataset
from faster_rcnn.train.checkpoint import load_model

THRESHOLDS = (0.05, 0.0)
IMAGES = 40


def quantiles(values: list[int]) -> dict[str, float]:
    """Minimum, 10 %, median and 90 % of ``values``."""
    data = torch.tensor(values, dtype=torch.float64)
    picked = {"q10": 0.1, "median": 0.5, "q90": 0.9}
    return {"min": float(data.min()), **{k: float(data.quantile(q)) for k, q in picked.items()}}


@torch.no_grad()
def proposal_counts(model_path: str, data: str) -> dict:
    """Per threshold, the quantiles of the proposals an image; and the objects an image."""
    model = load_model(model_path).eval()
    dataset = open_dataset(data, "train")
    counts: dict[float, list[int]] = {t: [] for t in THRESHOLDS}
    objects = []
    for index in range(0, len(dataset), max(1, len(dataset) // IMAGES)):
        image, target = dataset[index]
        batch = model.prepare_batch([image])
        features = model.features(batch.images)
        model.rpn.training = True  # training's limits; the modules stay as in eval
        for threshold in THRESHOLDS:
            model.rpn.score_thresh = threshold
            counts[threshold].append(len(model.rpn.propose(batch.images, features)[0][0]))
        model.rpn.training = False
        objects.append(len(target["boxes"]))
    return {
        "model": model_path,
        "data": data,
        "images": len(objects),
        "objects": quantiles(objects),
        **{f"proposals_at_{t:g}": quantiles(c) for t, c in counts.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("runs", nargs="+", metavar="NAME=MODEL:DATA")
    args = parser.parse_args()
    runs = {}
    for run in args.runs:
        name, where = run.split("=", 1)
        model_path, data = where.split(":", 1)
        runs[name] = proposal_counts(model_path, data)
        print(name, json.dumps({k: v for k, v in runs[name].items() if k.startswith("prop")}))
    record = {"date": str(date.today()), "thresholds": THRESHOLDS, "runs": runs}
    with open(args.out, "w") as file:
        json.dump(record, file, indent=1)
        file.write("\n")


if __name__ == "__main__":
    main()
