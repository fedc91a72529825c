"""NMS, ours against torchvision's, on the inputs a detector really gives it.

    /work/tvenv/bin/python benchmarks/bench_nms.py [--model M.safetensors --images DIR]
        [--repeats 7]

Run it in torchvision's environment (this package installed there with ``pip install
--no-deps -e .``): both operators then run on the same torch, in one process, on the
same tensors, alternating case by case; both must keep the same boxes in the same order,
up to the order of boxes with equal scores (torchvision sorts them unstably). The cases:

- ``synthetic``: 6000 and 12000 RPN-like boxes (``bench_ops.rpn_like_boxes``: boxes
  jittered around 50 objects plus clutter, random scores) at IoU 0.7;
- with ``--model`` and ``--images`` (a trained model and a folder of photos), what that
  model's NMS calls receive on each photo, recorded while it detects:
  - ``rpn_levels``: the RPN's per-level batched NMS (up to ``pre_nms_top_n`` boxes a
    level) at its ``nms_thresh``, its ``post_nms_top_n`` best kept (ours stops once
    they are settled; torchvision's NMS runs whole and is cut);
  - ``rpn_levels_train``: the same at the model's training numbers
    (``pre_nms_top_n_train``, ``post_nms_top_n_train``: 2000 and 2000 in the presets),
    what every training step runs per image (here at the detection's image size);
  - ``rpn_top6000`` / ``rpn_top12000``: the paper's single-map selection, the 6000 (or
    12000) best-scoring decoded proposals of all levels, clipped, in one NMS at 0.7;
  - ``detections``: the RoI head's class-batched NMS of its post-processing (none where
    the head selects by Soft-NMS, as the recipe's models do).

Each case reports the median over its inputs of the per-input median times, and the
ratio torchvision / ours; the record goes to ``results/bench_nms.json`` (or
``--results``).
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from collections.abc import Callable
from datetime import date
from functools import partial
from pathlib import Path

import torch
import torchvision.ops
from torch import Tensor

import faster_rcnn.roi_heads.postprocess as postprocess
import faster_rcnn.rpn.network as rpn_network
import faster_rcnn.rpn.proposals as rpn_proposals
import machine
from bench_ops import median_seconds, rpn_like_boxes
from faster_rcnn.data.dataset import IMAGE_SUFFIXES, read_image
from faster_rcnn.model import FasterRCNN
from faster_rcnn.ops import batched_nms, clip_boxes_to_image, nms
from faster_rcnn.train.checkpoint import load_model, load_weights, read_model_config

RESULTS = Path(__file__).parent / "results" / "bench_nms.json"
# One NMS call: boxes, scores, categories (None: plain NMS), IoU threshold, the number
# of best kept boxes wanted (None: all).
Call = tuple[Tensor, Tensor, Tensor | None, float, int | None]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path)
    parser.add_argument("--images", type=Path)
    parser.add_argument("--max-images", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    if (args.model is None) != (args.images is None):
        parser.error("--model and --images go together")
    cases = synthetic_cases()
    if args.model is not None:
        cases.update(recorded_cases(args.model, args.images, args.max_images))
    record = {
        "date": date.today().isoformat(),
        "machine": machine.describe(),
        "versions": {"torch": torch.__version__, "torchvision": torchvision.__version__},
        "model": str(args.model) if args.model else None,
        "repeats": args.repeats,
        "cases": {name: measure(calls, args.repeats) for name, calls in cases.items()},
    }
    for name, result in record["cases"].items():
        print(f"{name:14s} {json.dumps(result)}", flush=True)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(record, indent=1) + "\n")
    print(f"-> {args.results}")


def synthetic_cases() -> dict[str, list[Call]]:
    generator = torch.Generator().manual_seed(0)
    cases = {}
    for num_boxes in (6000, 12000):
        boxes = rpn_like_boxes(num_boxes, generator)
        scores = torch.rand(num_boxes, generator=generator)
        cases[f"synthetic_{num_boxes}"] = [(boxes, scores, None, 0.7, None)]
    return cases


def recorded_cases(model_path: Path, folder: Path, max_images: int) -> dict[str, list[Call]]:
    """The NMS inputs of a trained model detecting each photo of ``folder``, and those of
    its RPN at its training numbers."""
    photos = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    photos = photos[:max_images]
    cases = _detection_cases(load_model(model_path), photos)
    model = _with_training_proposals(model_path)
    original = _recorder(rpn_proposals, "batched_nms", cases["rpn_levels_train"])
    try:
        _detect_each(model, photos)
    finally:
        rpn_proposals.batched_nms = original
    # A model whose head runs Soft-NMS (the recipe's) makes no class-batched NMS call.
    return {name: calls for name, calls in cases.items() if calls}


def _with_training_proposals(model_path: Path) -> FasterRCNN:
    """The model of ``model_path``, in eval mode, its RPN at its training numbers (boxes a
    level before NMS, proposals kept)."""
    config = read_model_config(model_path)
    rpn = config.rpn
    config = config.replace(
        rpn={
            "pre_nms_top_n_test": rpn.pre_nms_top_n_train,
            "post_nms_top_n_test": rpn.post_nms_top_n_train,
        }
    )
    model = FasterRCNN.from_config(config)
    load_weights(model, model_path)
    return model.eval()


def _detection_cases(model: FasterRCNN, photos: list[Path]) -> defaultdict[str, list[Call]]:
    """The NMS inputs of ``model`` detecting each photo."""
    cases: dict[str, list[Call]] = defaultdict(list)
    rpn_nms = _recorder(rpn_proposals, "batched_nms", cases["rpn_levels"])
    head_nms = _recorder(postprocess, "batched_nms", cases["detections"])
    select = rpn_network.select_proposals

    def select_and_record(proposals, objectness, image_sizes, *rest, **options):
        scores = objectness.detach().reshape(proposals.shape[0], -1)
        for boxes, image_scores, size in zip(proposals, scores, image_sizes, strict=True):
            for top in (6000, 12000):
                best = image_scores.topk(min(top, image_scores.numel())).indices
                clipped = clip_boxes_to_image(boxes[best].detach(), size)
                cases[f"rpn_top{top}"].append((clipped, image_scores[best], None, 0.7, None))
        return select(proposals, objectness, image_sizes, *rest, **options)

    rpn_network.select_proposals = select_and_record
    try:
        _detect_each(model, photos)
    finally:
        rpn_network.select_proposals = select
        rpn_proposals.batched_nms = rpn_nms
        postprocess.batched_nms = head_nms
    return cases


def _detect_each(model: FasterRCNN, photos: list[Path]) -> None:
    """Detect each photo with ``model`` (for the NMS calls it makes)."""
    with torch.inference_mode():
        for photo in photos:
            model([read_image(photo)])


def _recorder(module: object, name: str, calls: list[Call]) -> Callable:
    """Replace ``module.name`` (a batched NMS) by one that records its inputs; returns it."""
    original = getattr(module, name)

    def recording(
        boxes: Tensor,
        scores: Tensor,
        idxs: Tensor,
        iou_threshold: float,
        max_kept: int | None = None,
    ) -> Tensor:
        calls.append((boxes.clone(), scores.clone(), idxs.clone(), iou_threshold, max_kept))
        return original(boxes, scores, idxs, iou_threshold, max_kept)

    setattr(module, name, recording)
    return original


def _first_kept(
    boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float, max_kept: int | None
) -> Tensor:
    """torchvision's batched NMS, cut to its ``max_kept`` best, as its RPN and RoI heads
    cut it."""
    return torchvision.ops.batched_nms(boxes, scores, idxs, iou_threshold)[:max_kept]


def _same_kept(ours: Tensor, theirs: Tensor, scores: Tensor) -> bool:
    """The same kept boxes, in the same order but for boxes whose scores tie."""
    same_boxes = torch.equal(ours.sort().values, theirs.sort().values)
    return same_boxes and torch.equal(scores[ours], scores[theirs])


def measure(calls: list[Call], repeats: int) -> dict:
    """Median times of ours and torchvision's over the calls; the outputs must agree."""
    ours, theirs = [], []
    device = torch.device("cpu")
    for boxes, scores, idxs, threshold, max_kept in calls:
        if idxs is None:
            run_ours = partial(nms, boxes, scores, threshold)
            run_theirs = partial(torchvision.ops.nms, boxes, scores, threshold)
        else:
            run_ours = partial(batched_nms, boxes, scores, idxs, threshold, max_kept)
            run_theirs = partial(_first_kept, boxes, scores, idxs, threshold, max_kept)
        if not _same_kept(run_ours(), run_theirs(), scores):
            raise SystemExit(f"different kept boxes on an input of {len(boxes)} boxes")
        ours.append(median_seconds(run_ours, device, repeats))
        theirs.append(median_seconds(run_theirs, device, repeats))
    ours_ms, theirs_ms = statistics.median(ours) * 1e3, statistics.median(theirs) * 1e3
    return {
        "inputs": len(calls),
        "boxes_median": int(statistics.median(len(call[0]) for call in calls)),
        "ours_ms": round(ours_ms, 2),
        "torchvision_ms": round(theirs_ms, 2),
        "torchvision_over_ours": round(theirs_ms / ours_ms, 2),
    }


if __name__ == "__main__":
    main()
