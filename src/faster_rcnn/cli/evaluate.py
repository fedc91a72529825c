"""``faster-rcnn evaluate``: VOC mAP, COCO AP and proposal recall of a model file; or the
COCO AP of a detections file (``predict --data`` writes one) against a COCO annotation
file, with no model."""

from __future__ import annotations

import argparse
import math
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch

from ..counted import counted
from ..data.dataset import Sample
from ..data.resizable import ResizableImages
from ..evaluate.coco_ap import score_results_file
from ..evaluate.runner import EvaluationResult, evaluate_detector, write_figures
from ..model import FasterRCNN
from ..test_time_flips import TestTimeFlips
from ..train.checkpoint import box_head_trained, load_model, run_and_stage_of
from ..windowed_detection import WindowedDetection
from .arguments import (
    MODEL_SIZE_NAMES,
    add_data_arguments,
    add_device_argument,
    add_strict_argument,
    add_tta_argument,
    add_windows_arguments,
    check_out_folder,
    check_window_flags,
    file_of_flag,
    given_flags,
    open_fraction,
    parser_defaults,
    path_argument,
    positive_int,
    refuse_without_effect,
    unwritable_folder,
    with_tta,
    with_windows,
)
from .splits import add_holdout_arguments, check_split_seed, evaluation_images, trained_data


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = commands.add_parser("evaluate", help="VOC mAP, COCO AP and proposal recall")
    parser.add_argument("--model", type=path_argument, help="a model.safetensors")
    parser.add_argument(
        "--coco-annotations",
        type=path_argument,
        help="score COCO AP against this COCO annotation file (its ids, areas and crowd "
        "flags, as the official evaluation does) instead of the dataset's targets",
    )
    parser.add_argument(
        "--detections",
        type=path_argument,
        help="instead of --model: a COCO results file (e.g. predict --data's "
        "detections.json) to score against --coco-annotations",
    )
    add_data_arguments(
        parser,
        default_split=None,
        default_data=None,
        data_help="; default: the data --model was trained on",
    )
    add_holdout_arguments(
        parser,
        "they are scored, and no split written (without it, the split.json that train "
        "--val-fraction wrote beside --model says which: by default on data without "
        "splits, with --split val on data without val)",
    )
    add_strict_argument(parser)
    add_tta_argument(parser)
    add_windows_arguments(parser)
    parser.add_argument(
        "--out",
        type=path_argument,
        help="write metrics.json and the proposal recall plots (recall_vs_iou, "
        "recall_vs_proposals, recall_by_size: each a .png with its numbers in a .json) here; "
        "default: the folder 'evaluation' beside --model; for a run's checkpoint "
        "(RUN/joint/model.safetensors), RUN/evaluation/joint, which the run's next "
        "checkpoint leaves",
    )
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=1,
        help="images run together (default 1: each image as predict sees it; images of "
        "different sizes batched together are padded to one, which changes the detections "
        "near the padding, and so the score)",
    )
    parser.add_argument(
        "--score-thresh",
        type=open_fraction,
        metavar="T",
        help="score the head's candidates down to this score (default: the model's own, "
        "0.05 for every preset; a Soft-NMS head keeps the scores it lowers down to its "
        "roi_heads.soft_nms_min_score, 0.001 by default); 0.001 is how Ultralytics scores "
        "mAP: a lower threshold only adds detections below those kept, which never lowers "
        "an AP",
    )
    add_device_argument(parser)
    # Their values when not given, read from the options above, for --detections to refuse.
    parser.set_defaults(model_option_defaults=parser_defaults(parser, MODEL_OPTIONS))
    return parser


def run(args: argparse.Namespace) -> int:
    if (args.model is None) == (args.detections is None):
        raise ValueError("evaluate needs --model or --detections (not both)")
    if args.detections is not None:
        return score_detections_file(args)
    check_split_seed(args)
    check_window_flags(args)
    out = output_folder(args.out, args.model)
    with file_of_flag("--model", args.model):
        model = load_model(args.model, device=args.device)
    if args.score_thresh is not None:
        print(
            f"scoring detections down to score {args.score_thresh:g} "
            f"(the model's threshold: {model.roi_heads.score_thresh:g})"
        )
        model.roi_heads.score_thresh = args.score_thresh
    if args.data is None:
        args.data = trained_data(args.model)
        print(f"scoring {args.data}, the data {args.model} was trained on (--data names another)")
    # The model's label order decides which class each label means.
    dataset = evaluation_images(args, model.config.class_names or None)
    if not len(dataset):
        raise ValueError(
            f"{args.data}: no images to evaluate (`faster-rcnn data --data {args.data}`)"
        )
    check_unnamed_outputs(model, getattr(dataset, "class_names", ()), args)
    if args.coco_annotations is not None and getattr(dataset, "image_files", None) is None:
        raise ValueError(
            f"--coco-annotations {args.coco_annotations}: {args.data} is generated, not "
            "image files of that annotation file"
        )
    transform = model.config.transform
    # An image the model cannot resize is left out as an unreadable one is.
    dataset = ResizableImages(dataset, transform.min_size, transform.max_size, MODEL_SIZE_NAMES)
    evaluate_and_report(
        with_tta(with_windows(model, args), args),
        dataset,
        out,
        args.device,
        args.batch_size,
        args.strict,
        args.coco_annotations,
        class_names=dataset.class_names if model.config.class_names else None,
        detections=box_head_trained(args.model),
    )
    return 0


def check_unnamed_outputs(
    model: FasterRCNN, class_names: Sequence[str], args: argparse.Namespace
) -> None:
    """Refuse data with more classes ``class_names`` than ``--model`` has outputs, where
    it names no classes (a checkpoint converted without ``--classes``): its outputs are
    taken for the data's first classes, and a box of a class past them stopped the
    evaluation at it, naming no file or class."""
    outputs = model.config.num_classes - 1
    if model.config.class_names or len(class_names) <= outputs:
        return
    raise ValueError(
        f"{args.model} names no classes: its {counted(outputs, 'output is', 'outputs are')} "
        f"taken for the first of the {len(class_names)} classes of {args.data}, "
        f"{list(class_names)}; name its classes (faster-rcnn convert CHECKPOINT --classes "
        "NAME ...)"
    )


def output_folder(out: Path | None, model: Path) -> Path | None:
    """Where the figures go: ``out`` (refused now if it cannot be written), by default
    :func:`default_output_folder`, or, where that cannot be written (a read-only model
    folder), nowhere, with a warning: the figures are printed anyway."""
    if out is not None:
        check_out_folder(out, "evaluate writes")
        return out
    default = default_output_folder(model)
    reason = unwritable_folder(default)
    if reason is None:
        return default
    warnings.warn(
        f"{default} {reason}: the figures are printed, not written (--out names a folder)",
        stacklevel=2,
    )
    return None


def default_output_folder(model: Path) -> Path:
    """The folder ``evaluation`` beside ``model``; for the model of a training checkpoint
    (``<run>/<stage>/model.safetensors``), ``<run>/evaluation/<stage>``: the run's next
    checkpoint replaces the stage's folder whole, and a run trained over it removes it."""
    found = run_and_stage_of(model.parent)
    if found is None:
        return model.parent / "evaluation"
    run, stage = found
    return run / "evaluation" / stage


# The options that say how a --model detects: --detections has none.
MODEL_OPTIONS = (
    "--data",
    "--split",
    "--val-fraction",
    "--split-seed",
    "--strict",
    "--tta",
    "--windows",
    "--window-overlap",
    "--batch-size",
    "--score-thresh",
    "--device",
)


def score_detections_file(args: argparse.Namespace) -> int:
    """Print (and with ``--out`` write) the COCO figures of ``--detections`` against
    ``--coco-annotations``; refuse the options of a ``--model``'s detection."""
    if args.coco_annotations is None:
        raise ValueError("--detections is scored against a COCO file: give --coco-annotations")
    refuse_without_effect(
        given_flags(args, args.model_option_defaults),
        "with --detections (detections already made): they set how a --model detects",
    )
    figures = score_results_file(args.coco_annotations, args.detections)
    print(f"{args.detections} against {args.coco_annotations}:")
    print("  ".join(f"{name} {_figure(value)}" for name, value in figures.items()))
    for line in _undefined_figures_note(figures, args.coco_annotations):
        print(line)
    if args.out is not None:
        metrics = {f"coco_{name.lower()}": value for name, value in figures.items()}
        write_figures(args.out / "metrics.json", metrics, indent=1)
        print(f"wrote {args.out}/metrics.json")
    return 0


def _undefined_figures_note(figures: dict[str, float], annotation_file: Path) -> list[str]:
    """Why COCO ``figures`` are n/a (NaN), where one is: a line, or none."""
    if math.isnan(figures["AP"]):
        return [
            f"n/a: {annotation_file} has no object to find in its images (none, or each a "
            "crowd region): every figure is undefined"
        ]
    if any(map(math.isnan, figures.values())):
        return ["n/a: no object of that size to find"]
    return []


def _figure(value: float) -> str:
    """A COCO figure as printed: ``n/a`` where it is undefined (NaN)."""
    return "n/a" if math.isnan(value) else f"{value:.4f}"


def evaluate_and_report(
    model: FasterRCNN | WindowedDetection | TestTimeFlips,
    dataset: Sequence[Sample],
    out: Path | None,
    device: str | torch.device,
    batch_size: int,
    strict: bool = False,
    coco_annotations: Path | None = None,
    class_names: Sequence[str] | None = None,
    detections: bool = True,
) -> EvaluationResult:
    """Evaluate, print the table, and when ``out`` is given write ``<out>/metrics.json``
    and the recall plots (:func:`write_recall_plots`), saying where; ``strict`` stops at an
    unreadable image instead of leaving it out; COCO AP is scored against
    ``coco_annotations`` when given; ``class_names`` (default: the model's) may go on
    past the model's classes (see :func:`evaluate_detector`); without ``detections`` (a
    box head never trained) the table gives the proposal recall alone."""
    result = evaluate_detector(
        model,
        dataset,
        batch_size=batch_size,
        device=device,
        class_names=class_names or model.config.label_names(),
        progress=True,
        coco_annotation_file=coco_annotations,
        strict=strict,
    )
    print(result.table(detections))
    if out is not None:
        from ..evaluate.recall_plots import write_recall_plots  # matplotlib: not at every start

        result.save_json(out / "metrics.json")
        plots = write_recall_plots(result.recall_curves, out, result.detection_proposals)
        names = ", ".join(plot.name for plot in plots)
        print(f"wrote {out}/metrics.json and the recall plots {names} (numbers in .json beside)")
    return result
