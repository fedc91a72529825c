"""``faster-rcnn demo``: the small preset trained on synthetic shapes, evaluated, drawn."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ..data.augment import Augmented, RandomHorizontalFlip
from ..data.cache import InMemoryDataset
from ..data.open import open_dataset
from ..insight.pictures import DEFAULT_SUFFIX
from ..model import FasterRCNN
from ..models import preset_config
from ..train.memory_layout import default_memory_layout
from ..train.train_config import TrainConfig, steps_bound
from ..train.trainer import Trainer
from .arguments import add_device_argument, minutes, path_argument, positive_int, random_seed
from .evaluate import evaluate_and_report
from .out_lock import check_one_process, training_lock
from .run_folder import begin_fresh_run, check_out, clear_cut_off_saves, say_replaced_run
from .train import check_amp, fit_and_save, say_default_precision, uses_amp

PICTURES = 8


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        "demo",
        help="train the small preset on synthetic images, evaluate it, draw what it finds",
        description="Generate the synthetic dataset, train the small preset on it, evaluate "
        "on held-out images and write the model, metrics.json and pictures to --out.",
    )
    parser.add_argument(
        "--minutes", type=minutes, default=4.5, help="training budget in minutes (default 4.5)"
    )
    parser.add_argument(
        "--out", type=path_argument, default=Path("runs/demo"), help="default: runs/demo"
    )
    parser.add_argument(
        "--test-images",
        type=positive_int,
        default=100,
        help="held-out synthetic images the model is scored on (default 100)",
    )
    parser.add_argument(
        "--seed",
        type=random_seed,
        default=0,
        help="seed of the weights, the sampling and the flips (default 0)",
    )
    add_device_argument(parser)
    parser.add_argument(
        "--amp",
        action=argparse.BooleanOptionalAction,
        help="mixed precision, as train's --amp (default: as train chooses; on a Zen 4 "
        "with bfloat16 the demo fitted 1.2-1.3 times the steps and scored higher on both "
        "seeds measured: benchmarks/results/zen4/bench_demo_bfloat16.json)",
    )
    return parser


def run(args: argparse.Namespace) -> int:
    """Refuse what ``train`` refuses of ``--amp`` and ``--out`` (the demo has no
    ``--resume``: a run that did not finish is not overwritten), then run the demo
    holding ``--out``'s lock, as a training run."""
    check_one_process("the demo")
    check_amp(args)
    check_out(args.out, None, resume=False, writes="the demo writes")
    with training_lock(args.out):
        clear_cut_off_saves(args.out)
        say_replaced_run(args.out)
        return demo(args)


def demo(args: argparse.Namespace) -> int:
    """Train, evaluate and draw as ``args`` say (checked), into ``--out``."""
    # Kept in memory (600 MB for the 2000 images): drawing the 4 images of a step costs
    # about a seventh of the step, and each image is drawn once instead of every epoch.
    train_set = InMemoryDataset(open_dataset("synthetic", "train"))
    flipped = Augmented(train_set, [RandomHorizontalFlip(0.5)], seed=args.seed)
    test_set = open_dataset(f"synthetic:{args.test_images}", "test")
    config = preset_config("small", train_set.num_classes).replace(
        class_names=tuple(train_set.class_names)
    )
    torch.manual_seed(args.seed)
    model = FasterRCNN.from_config(config).to(torch.device(args.device))
    if default_memory_layout(config.backbone.name, torch.device(args.device)).channels_last:
        model.to(memory_format=torch.channels_last)
    # The schedule is laid out over the steps that fit in the budget (measured as it
    # runs), which ends the run.
    train_cfg = TrainConfig(
        steps=steps_bound(args.minutes * 60),
        batch_size=4,
        # The settings the demo's score was measured with, not train's defaults.
        lr=0.02,
        schedule="step",
        grad_clip_norm=10.0,
        max_seconds=args.minutes * 60,
        amp=uses_amp(args),
        seed=args.seed,
    )
    say_default_precision(args)
    begin_fresh_run(args.out, {})  # an earlier training run's records would name its data
    print(f"training the small preset on synthetic images for up to {args.minutes:g} min")
    fit_and_save(Trainer(model, flipped, train_cfg, out_dir=args.out, progress=True), args.out)
    evaluate_and_report(model, test_set, args.out, args.device, batch_size=4)
    write_pictures(model, [test_set[i][0] for i in range(min(PICTURES, len(test_set)))], args)
    print(f"wrote {args.out}/model.safetensors, metrics.json and pictures/")
    return 0


def write_pictures(model: FasterRCNN, images: list[torch.Tensor], args: argparse.Namespace) -> None:
    """Detections and proposals of a few test images under ``<out>/pictures``."""
    from ..insight.draw import save_pictures  # matplotlib: not at every start

    out = args.out / "pictures"
    out.mkdir(parents=True, exist_ok=True)
    model.eval()
    device = torch.device(args.device)
    detections, proposals = model.detect_with_proposals([image.to(device) for image in images])
    names = model.config.label_names()
    for i, (image, det, props) in enumerate(zip(images, detections, proposals, strict=True)):
        picture = out / f"{i:02d}{DEFAULT_SUFFIX}"
        save_pictures(image, det, props, names, picture, label="_detections")
