"""``faster-rcnn evaluate``: VOC mAP, COCO AP and proposal recall of a model file."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import torch

from ..data.dataset import Sample
from ..evaluate.recall_plots import write_recall_plots
from ..evaluate.runner import EvaluationResult, evaluate_detector
from ..model import FasterRCNN
from ..train.checkpoint import load_model
from .arguments import add_data_arguments, add_strict_argument, device_name, positive_int
from .splits import add_holdout_arguments, evaluation_images


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = commands.add_parser("evaluate", help="VOC mAP, COCO AP and proposal recall")
    parser.add_argument("--model", type=Path, required=True, help="a model.safetensors")
    add_data_arguments(parser, default_split=None)
    add_holdout_arguments(parser)
    add_strict_argument(parser)
    parser.add_argument(
        "--out",
        type=Path,
        help="write metrics.json and the proposal recall plots (recall_vs_iou, "
        "recall_vs_proposals, recall_by_size: each a .png with its numbers in a .json) here; "
        "default: the folder 'evaluation' beside --model",
    )
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=1,
        help="images run together (default 1: each image as predict sees it; images of "
        "different sizes batched together are padded to one, which changes the detections "
        "near the padding, and so the score)",
    )
    parser.add_argument("--device", type=device_name, default="cpu")
    return parser


def run(args: argparse.Namespace) -> int:
    model = load_model(args.model, device=args.device)
    # The model's label order decides which class each label means.
    dataset = evaluation_images(args, model.config.class_names or None)
    out = args.out if args.out is not None else args.model.parent / "evaluation"
    evaluate_and_report(model, dataset, out, args.device, args.batch_size, args.strict)
    return 0


def evaluate_and_report(
    model: FasterRCNN,
    dataset: Sequence[Sample],
    out: Path | None,
    device: str | torch.device,
    batch_size: int,
    strict: bool = False,
) -> EvaluationResult:
    """Evaluate, print the table, and when ``out`` is given write ``<out>/metrics.json``
    and the recall plots (:func:`write_recall_plots`), saying where; ``strict`` stops at an
    unreadable image instead of leaving it out."""
    result = evaluate_detector(
        model,
        dataset,
        batch_size=batch_size,
        device=device,
        class_names=model.config.label_names(),
        progress=True,
        strict=strict,
    )
    print(result.table())
    if out is not None:
        result.save_json(out / "metrics.json")
        plots = write_recall_plots(result.recall_curves, out, result.detection_proposals)
        names = ", ".join(plot.name for plot in plots)
        print(f"wrote {out}/metrics.json and the recall plots {names} (numbers in .json beside)")
    return result
