"""``faster-rcnn export``: a trained model as an ONNX file that ONNX Runtime runs with any
batch size and image size (``predict --onnx`` runs it)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..config import RoIHeadsConfig
from ..train.checkpoint import box_head_trained, load_model, read_model_config, run_and_stage_of
from .arguments import check_out_file, file_of_flag, path_argument


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        "export",
        help="write a model as ONNX (any batch and image size; NMS and RoIAlign as ONNX ops)",
        description="Inputs: images (batch, 3, height, width) float32 in 0..1, each resized "
        "as the model resizes it, top left; image_sizes and original_sizes (batch, 2) int64 "
        "(height, width). Outputs: boxes (batch, D, 4) in original pixels, scores (batch, D), "
        "labels (batch, D) int64, label 0 after each image's detections. The file names its "
        "dynamic dimensions batch, height and width. The model's config is in the file's "
        "metadata. Needs the onnx extra: pip install -e '.[onnx]'.",
    )
    parser.add_argument("--model", type=path_argument, required=True, help="a model.safetensors")
    parser.add_argument("--format", choices=["onnx"], default="onnx", help="default: onnx")
    parser.add_argument(
        "--out",
        type=path_argument,
        help="the file to write (default: MODEL.onnx; for a run's checkpoint, "
        "RUN/joint/model.safetensors, RUN/joint.onnx, which the run's next checkpoint leaves)",
    )
    return parser


def run(args: argparse.Namespace) -> int:
    from ..export import export_onnx  # its graph operators: not at every start

    out = args.out or default_onnx_path(args.model)
    with file_of_flag("--model", args.model):  # named as such before --out is checked
        read_model_config(args.model)
    check_box_head_trained(args.model)
    check_onnx_out(out, args.model)
    with file_of_flag("--model", args.model):
        model = load_model(args.model)
    start = time.perf_counter()
    export_onnx(model, out)
    size = out.stat().st_size / 2**20
    print(f"{args.model} -> {out} ({size:.1f} MiB, {time.perf_counter() - start:.0f} s)")
    print(detection_selection(model.config.roi_heads))
    return 0


def detection_selection(heads: RoIHeadsConfig) -> str:
    """How the exported graph selects each image's detections: as the model does, fixed
    in the file, which a user of the file cannot see in its graph."""
    if heads.soft_nms_sigma > 0:
        nms = (
            f"Gaussian Soft-NMS per class (sigma {heads.soft_nms_sigma:g}, lowered scores kept "
            f"down to {heads.soft_nms_min_score:g}), run in the graph as a loop"
        )
    elif heads.class_nms_thresh:
        each = ", ".join(f"{iou:g}" for iou in heads.class_nms_thresh)
        nms = f"greedy NMS per class at each class's IoU ({each})"
    else:
        nms = f"greedy NMS per class at IoU {heads.nms_thresh:g}"
    return (
        f"detections in the file: scoring over {heads.score_thresh:g}, {nms}, the best "
        f"{heads.detections_per_img} an image"
    )


def check_box_head_trained(model: Path) -> None:
    """Refuse the model of the RPN trained alone: the graph's only outputs are the box
    head's detections, which it never learned, and its proposals are not among them."""
    if box_head_trained(model):
        return
    raise ValueError(
        f"--model {model}: the RPN was trained alone (--scheme rpn), its box head never was: "
        "the ONNX graph outputs only the box head's detections, which would mean nothing; "
        f"train the head from it first (train --weights {model})"
    )


def default_onnx_path(model: Path) -> Path:
    """``model`` with the suffix ``.onnx``; for the model of a training checkpoint
    (``<run>/<stage>/model.safetensors``), ``<run>/<stage>.onnx``: the run's next
    checkpoint replaces the stage's folder whole, an export in it with it."""
    found = run_and_stage_of(model.parent)
    if found is None:
        return model.with_suffix(".onnx")
    run, stage = found
    return run / f"{stage}.onnx"


def check_onnx_out(out: Path, model: Path) -> None:
    """Refuse, before the export's work, an ``--out`` that cannot be written, that is the
    ``model`` itself, or that is not named ``.onnx``: ONNX in a file named otherwise would
    overwrite another kind of file (a model file, a run's metrics), or pass for one (a
    ``model.safetensors`` that no command reads)."""
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder: name the .onnx file to write")
    check_out_file(out, "export writes")
    if out.exists() and out.samefile(model):
        raise ValueError(f"--out {out} is the --model file: name the .onnx file to write")
    if out.suffix.lower() != ".onnx":
        raise ValueError(
            f"--out {out} does not end in .onnx: export writes only .onnx files; name the "
            ".onnx file to write"
        )
