"""torchvision's Faster R-CNN on the raccoon dataset, for a side-by-side with ours.

Run in the torchvision environment (design.md, "Measuring"), with this package installed
there (``pip install --no-deps -e .``):

    python benchmarks/raccoon_torchvision.py --data ../shared/data/raccoon \
        --weights ../shared/weights/mobilenet_v2-b0353104.pth --minutes 20 --steps 600

The detector is torchvision's ``FasterRCNN`` on ``mobilenet_backbone("mobilenet_v2",
fpn=True, trainable_layers=3)`` with the anchors of our ``mobilenet_v2_fpn`` preset. The
data (readers, flips, batch order), the optimiser (SGD, momentum 0.9, weight decay 5e-4,
warm-up then cosine), the budget and the evaluation (VOC mAP@0.5 on the test split) are
this package's, so the only difference from ``faster-rcnn train`` is the detector code.
Its ``--lr`` stays 0.02, the rate of the runs recorded with it; ``faster-rcnn train``'s
default is now 0.0025 an image (``seed_study.md``): 0.005 for its batches of 2
(``recipe_ab.md``, round 28); likewise its ``--grad-clip-norm`` stays 10 where
``train``'s is now 5 (``recipe_ab.md``, round 19). ``--device cuda`` trains on a GPU, and
``--out FILE`` writes the steps, the median seconds a step and the scores as JSON (what
``seed_study.py`` reads). ``--detections-per-image`` raises torchvision's cap of 100
detections an image for crowded data, where the cap alone would cut the rare classes
(``recipe_ab.md``, round 9). A run that ``--minutes`` stops before ``--steps`` lays its
cosine over the steps that fit, as ``faster-rcnn train`` does.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import mobilenet_backbone
from torchvision.ops.misc import FrozenBatchNorm2d

from faster_rcnn.data import (
    Augmented,
    InMemoryDataset,
    RandomHorizontalFlip,
    iterate_batches,
    open_dataset,
)
from faster_rcnn.evaluate import VOCEvaluator
from faster_rcnn.train.budget import TimeBudget
from faster_rcnn.train.schedule import learning_rate
from faster_rcnn.train.train_config import TrainConfig


def build(
    num_classes: int, weights: str, min_size: int, max_size: int, detections_per_img: int = 100
) -> FasterRCNN:
    backbone = mobilenet_backbone(
        backbone_name="mobilenet_v2",
        fpn=True,
        weights=None,
        trainable_layers=3,
        norm_layer=FrozenBatchNorm2d,
    )
    state = torch.load(weights, map_location="cpu", weights_only=True)
    body = {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
    missing, _ = backbone.body.load_state_dict(body, strict=False)
    if missing:
        raise SystemExit(f"backbone weights missing {missing[:5]}")
    anchors = AnchorGenerator(((32, 64, 128, 256, 512),) * 3, ((0.5, 1.0, 2.0),) * 3)
    return FasterRCNN(
        backbone,
        num_classes,
        min_size=min_size,
        max_size=max_size,
        rpn_anchor_generator=anchors,
        rpn_score_thresh=0.05,
        box_detections_per_img=detections_per_img,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--steps", type=int, default=600, help="schedule length")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--lr", type=float, default=0.02)
    parser.add_argument(
        "--grad-clip-norm",
        type=float,
        default=10.0,
        help="the clip of the runs recorded with it; faster-rcnn train's default is now 5",
    )
    parser.add_argument("--min-size", type=int, default=800)
    parser.add_argument("--max-size", type=int, default=1333)
    parser.add_argument(
        "--detections-per-image",
        type=int,
        default=100,
        help="torchvision's box_detections_per_img (its default 100 caps crowded images)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--cache-images", action="store_true", help="as faster-rcnn train's: decode once"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", help="write the steps, their seconds and the scores here (JSON)")
    args = parser.parse_args()
    device = torch.device(args.device)

    train_set = open_dataset(args.data, "train")
    test_set = open_dataset(args.data, "test", class_names=train_set.class_names)
    torch.manual_seed(args.seed)
    model = build(
        train_set.num_classes,
        args.weights,
        args.min_size,
        args.max_size,
        args.detections_per_image,
    ).to(device)
    cfg = TrainConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        grad_clip_norm=args.grad_clip_norm,
        schedule="cosine",
    )
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=5e-4)
    images = InMemoryDataset(train_set) if args.cache_images else train_set
    flipped = Augmented(images, [RandomHorizontalFlip(0.5)], seed=args.seed)
    batches = iterate_batches(flipped, args.batch_size, seed=args.seed)

    model.train()
    start = time.perf_counter()
    # Paced as `faster-rcnn train` paces a budget: the cosine is laid over the steps that
    # fit, so a run the clock stops still ends at its lowest learning rate.
    budget = TimeBudget(cfg.steps, args.minutes * 60)
    step, step_seconds = 0, []
    while step < cfg.steps and (planned_steps := budget.plan(step)) is not None:
        step_start = time.perf_counter()
        images, targets = next(batches)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(cfg, step, planned_steps)
        images = [image.to(device) for image in images]
        targets = [
            {"boxes": t["boxes"].to(device), "labels": t["labels"].to(device)} for t in targets
        ]
        losses = model(images, targets)
        total = sum(losses.values())
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip_norm)
        optimizer.step()
        step_seconds.append(time.perf_counter() - step_start)
        if step % 20 == 0:
            print(
                f"step {step} {time.perf_counter() - start:.0f}s loss {total.item():.3f}",
                flush=True,
            )
        step += 1
    seconds = time.perf_counter() - start
    print(f"torchvision: {step} steps in {seconds:.0f} s")

    model.eval()
    evaluator = VOCEvaluator(train_set.num_classes, class_names=train_set.class_names)
    with torch.no_grad():
        for i in range(len(test_set)):
            image, target = test_set[i]
            detections = model([image.to(device)])
            evaluator.update([{k: v.cpu() for k, v in d.items()} for d in detections], [target])
    result = evaluator.compute()
    print(result.table())
    if args.out:
        record = {
            "detector": "torchvision",
            "steps": step,
            "train_seconds": seconds,
            "median_step_seconds": statistics.median(step_seconds[1:] or step_seconds),
            "voc_map50": result.map,
            "voc_ap50": result.ap,
            "args": vars(args),
        }
        with open(args.out, "w") as f:
            json.dump(record, f, indent=1)


if __name__ == "__main__":
    main()
