"""``faster-rcnn convert``: a torchvision Faster R-CNN checkpoint as a model file, which
every other command runs (evaluate, predict, explain, anchors, export, train --weights).

The presets that mirror torchvision's detectors module for module load its checkpoints
strictly (:func:`~faster_rcnn.load_torchvision_checkpoint`) and give the same
detections; the model file adds what a ``.pth`` lacks, the config and the class names
(COCO's for a file of 91 outputs, as torchvision's published detectors have; else those
given, or none: the other commands then call its outputs ``class1``, ``class2``, ...).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..config import FasterRCNNConfig
from ..counted import counted
from ..torchvision_checkpoint import load_torchvision_checkpoint
from ..train.checkpoint import MODEL_FILE, read_model_config, save_model
from .arguments import check_out_file, path_argument
from .run_folder import run_files

# The presets that are torchvision detectors module for module.
TORCHVISION_PRESETS = (
    "resnet50_fpn",
    "resnet50_fpn_v2",
    "mobilenet_v2_fpn",
    "mobilenet_v3_large_fpn",
    "mobilenet_v3_large_320_fpn",
)


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        "convert",
        help="write a torchvision Faster R-CNN checkpoint as a model file the other commands run",
        description="fasterrcnn_resnet50_fpn is --preset resnet50_fpn, "
        "fasterrcnn_resnet50_fpn_v2 resnet50_fpn_v2, fasterrcnn_mobilenet_v3_large_fpn "
        "mobilenet_v3_large_fpn, fasterrcnn_mobilenet_v3_large_320_fpn "
        "mobilenet_v3_large_320_fpn (the same weights as the previous one, on smaller "
        "images), a FasterRCNN on mobilenet_backbone('mobilenet_v2', fpn=True) "
        "mobilenet_v2_fpn. A Mask R-CNN or Keypoint R-CNN checkpoint converts less its "
        "mask or keypoint head (maskrcnn_resnet50_fpn is --preset resnet50_fpn, and so "
        "on): the boxes it detects are the same.",
    )
    parser.add_argument(
        "checkpoint",
        type=path_argument,
        help="a torchvision Faster R-CNN state dict, or a reference script's checkpoint",
    )
    parser.add_argument(
        "--preset",
        choices=TORCHVISION_PRESETS,
        default="resnet50_fpn",
        help="the model the checkpoint is (default: resnet50_fpn)",
    )
    parser.add_argument(
        "--classes",
        nargs="+",
        metavar="NAME",
        help="the names of the outputs after the background, in order (default: COCO's "
        "categories for a file of 91 outputs; else the model file names none, and predict, "
        "evaluate and explain call them class1, class2, ...)",
    )
    parser.add_argument(
        "--out",
        type=path_argument,
        help="the model file to write (default: CHECKPOINT.safetensors)",
    )
    return parser


def run(args: argparse.Namespace) -> int:
    out = args.out or args.checkpoint.with_suffix(".safetensors")
    check_model_out(out, args.checkpoint)
    model = load_torchvision_checkpoint(args.checkpoint, args.preset, None, args.classes)
    save_model(model, out)
    print(f"{args.checkpoint} -> {out} ({args.preset}; {described_classes(model.config)})")
    return 0


def described_classes(config: FasterRCNNConfig) -> str:
    """The classes a model file records, for convert's line: ``classes person, bicycle,
    ... (90 in all)``; where it records none, how many there are and what the other
    commands call them (``class1``, ...)."""
    names = config.label_names()
    shown = ", ".join(names[:5]) + (f", ... ({len(names)} in all)" if len(names) > 5 else "")
    if config.class_names:
        return f"classes {shown}"
    return (
        f"{counted(len(names), 'class')} without names, which predict, evaluate and explain "
        f"call {shown}: --classes NAME ... names them"
    )


def check_model_out(out: Path, checkpoint: Path) -> None:
    """Refuse, before any work, an ``--out`` that cannot be written, is not named
    ``.safetensors`` (a model file named ``.onnx`` or ``.pth`` passes for another kind of
    file), is the checkpoint itself, is a file other than a model file (which it would
    overwrite), or is the model file of a training run (whose checkpoints and records
    would describe another model)."""
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder: name the model file to write")
    if out.suffix.lower() != ".safetensors":
        raise ValueError(
            f"--out {out} does not end in .safetensors: convert writes a model file "
            "(safetensors); name the .safetensors file to write"
        )
    check_out_file(out, "convert writes")
    beside = run_files(out.parent) if out.name == MODEL_FILE else []
    if beside:
        raise ValueError(
            f"--out {out} is the model file of the training run in {out.parent}: the run's "
            f"files beside it ({', '.join(beside)}) would describe another model; name a file "
            "outside the run"
        )
    if out.exists() and checkpoint.exists() and out.samefile(checkpoint):
        raise ValueError(f"--out {out} is the checkpoint: name the model file to write")
    if out.exists():
        try:
            read_model_config(out)
        except ValueError:
            raise ValueError(
                f"--out {out} exists and is not a model file: convert overwrites only "
                "model files; name the file to write"
            ) from None
