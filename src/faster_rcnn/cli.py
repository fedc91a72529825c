"""The ``faster-rcnn`` command line: demo, train, evaluate, predict.

User mistakes (a missing file, an unknown preset, a bad option value) end in one line on
stderr and exit status 2, not a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from .backbones import load_backbone_weights
from .config import FasterRCNNConfig
from .data.augment import Augmented, RandomHorizontalFlip
from .data.cache import InMemoryDataset
from .data.dataset import read_image
from .data.open import open_dataset
from .evaluate.runner import evaluate_detector
from .insight.anchor_coverage import dataset_targets, measure_anchor_coverage
from .insight.draw import draw_detections, draw_proposals
from .model import FasterRCNN
from .models import PRESETS, preset_config
from .train.alternating import AlternatingConfig, train_alternating
from .train.checkpoint import load_model, save_model
from .train.rpn_only import train_rpn_only
from .train.train_config import TrainConfig
from .train.trainer import Trainer

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
# More steps a second than the demo's training reaches on any CPU (about 5 on two cores).
DEMO_MAX_STEPS_PER_SECOND = 20


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, FileNotFoundError, NotADirectoryError) as error:
        print(f"faster-rcnn: error: {error}", file=sys.stderr)
        return 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="faster-rcnn", description="The Region Proposal Network and Faster R-CNN."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        help="train the small preset on synthetic images, evaluate it, draw what it finds",
        description="Generate the synthetic dataset, train the small preset on it, evaluate "
        "on held-out images and write the model, metrics.json and pictures to --out.",
    )
    demo.add_argument("--minutes", type=positive_float, default=4.5, help="training budget")
    demo.add_argument("--out", type=Path, default=Path("runs/demo"))
    demo.add_argument("--test-images", type=positive_int, default=100)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--device", default="cpu")
    demo.set_defaults(run=run_demo)

    train = commands.add_parser("train", help="train a detector on a dataset")
    add_data_arguments(train, default_split="train")
    train.add_argument("--preset", choices=list(PRESETS), default="small")
    train.add_argument(
        "--scheme",
        choices=["joint", "rpn", "alternating"],
        default="joint",
        help="approximate joint training, the RPN alone, or the paper's 4-step scheme",
    )
    train.add_argument("--weights", type=Path, help="ImageNet backbone weights (torchvision)")
    train.add_argument("--steps", type=positive_int, default=2000)
    train.add_argument("--minutes", type=positive_float, help="stop after this long")
    train.add_argument("--batch-size", type=positive_int, default=4)
    train.add_argument("--lr", type=positive_float, default=0.02)
    train.add_argument("--schedule", choices=["step", "cosine"], default="step")
    train.add_argument("--min-size", type=positive_int, nargs="+", help="shorter image side(s)")
    train.add_argument("--max-size", type=positive_int, help="longer image side at most")
    train.add_argument(
        "--no-flip",
        action="store_true",
        help="no random horizontal flips (the paper's only augmentation)",
    )
    train.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    train.add_argument(
        "--cache-images",
        action="store_true",
        help="keep the images in memory after their first read, at 3 bytes a pixel "
        "(with --workers 0)",
    )
    train.add_argument("--amp", action="store_true", help="mixed precision (CUDA)")
    train.add_argument(
        "--channels-last",
        action="store_true",
        help="NHWC memory layout: faster convolutions on CPU (joint and rpn schemes)",
    )
    train.add_argument("--resume", action="store_true", help="continue from --out")
    train.add_argument("--out", type=Path, default=Path("runs/train"))
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--device", default="cpu")
    train.set_defaults(run=run_train)

    evaluate = commands.add_parser("evaluate", help="VOC mAP, COCO AP and proposal recall")
    evaluate.add_argument("--model", type=Path, required=True, help="a model.safetensors")
    add_data_arguments(evaluate, default_split="test")
    evaluate.add_argument("--out", type=Path, help="write metrics.json here")
    evaluate.add_argument("--batch-size", type=positive_int, default=4)
    evaluate.add_argument("--device", default="cpu")
    evaluate.set_defaults(run=run_evaluate)

    predict = commands.add_parser(
        "predict", help="detect objects in images: COCO-style JSON and annotated PNGs"
    )
    predict.add_argument("--model", type=Path, required=True, help="a model.safetensors")
    predict.add_argument("inputs", nargs="+", type=Path, help="image files or folders")
    predict.add_argument("--out", type=Path, default=Path("runs/predict"))
    predict.add_argument("--score", type=probability, default=0.5, help="drawing threshold")
    predict.add_argument("--device", default="cpu")
    predict.set_defaults(run=run_predict)

    anchors = commands.add_parser(
        "anchors",
        help="how well a preset's anchors cover a dataset's boxes (no training)",
        description="For every ground-truth box, the best IoU of any anchor the RPN trains "
        "on and the number of anchors at or above the positive threshold, by box size and "
        "aspect ratio.",
    )
    source = anchors.add_mutually_exclusive_group()
    source.add_argument("--preset", choices=list(PRESETS), default="small")
    source.add_argument("--model", type=Path, help="a model.safetensors (its anchors)")
    add_data_arguments(anchors, default_split="train")
    anchors.add_argument("--max-images", type=positive_int, help="measure the first N images")
    anchors.set_defaults(run=run_anchors)
    return parser


def add_data_arguments(parser: argparse.ArgumentParser, default_split: str) -> None:
    parser.add_argument(
        "--data",
        default="synthetic",
        help="'synthetic', or a Pascal VOC, COCO or YOLO dataset (format auto-detected)",
    )
    parser.add_argument("--split", default=default_split)


def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def probability(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text}")
    return value


def run_demo(args: argparse.Namespace) -> int:
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
    # Convolutions in NHWC layout: a training step of the small preset 13% faster on CPU.
    model.to(memory_format=torch.channels_last)
    # The schedule is laid out over the steps that fit in the budget (measured as it
    # runs); this bound is never reached on CPU.
    train_cfg = TrainConfig(
        steps=max(100, int(args.minutes * 60 * DEMO_MAX_STEPS_PER_SECOND)),
        batch_size=4,
        max_seconds=args.minutes * 60,
        seed=args.seed,
    )
    print(f"training the small preset on synthetic images for up to {args.minutes:g} min")
    fit(model, flipped, train_cfg, args.out, resume=False)
    report(model, test_set, args.out, args.device, batch_size=4)
    pictures = [test_set[i][0] for i in range(min(8, len(test_set)))]
    write_pictures(model, pictures, args.out / "pictures", 0.5)
    print(f"wrote {args.out}/model.safetensors, metrics.json and pictures/")
    return 0


def run_train(args: argparse.Namespace) -> int:
    dataset = open_dataset(args.data, args.split)
    config = preset_config(args.preset, dataset.num_classes).replace(
        class_names=tuple(dataset.class_names)
    )
    if args.cache_images:
        if args.workers:
            raise ValueError("--cache-images works with --workers 0 only")
        dataset = InMemoryDataset(dataset)
    if not args.no_flip:
        dataset = Augmented(dataset, [RandomHorizontalFlip(0.5)], seed=args.seed)
    if args.min_size:
        config = config.replace(transform={"min_size": tuple(args.min_size)})
    if args.max_size:
        config = config.replace(transform={"max_size": args.max_size})
    train_cfg = TrainConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        schedule=args.schedule,
        max_seconds=args.minutes * 60 if args.minutes else None,
        amp=args.amp,
        num_workers=args.workers,
        seed=args.seed,
    )
    if args.scheme == "alternating":
        result = train_alternating(
            config,
            dataset,
            AlternatingConfig.proportional(args.steps, base=train_cfg, init_seed=args.seed),
            backbone_weights=args.weights,
            on_step=print_alternating_progress,
            device=args.device,
        )
        if result.weights_report is not None:
            print(result.weights_report)
        save_model(result.model, args.out / "model.safetensors")
        print(f"wrote {args.out}/model.safetensors")
        return 0
    torch.manual_seed(args.seed)
    model = FasterRCNN.from_config(config)
    if args.weights:
        print(load_backbone_weights(model, args.weights))
    model.to(torch.device(args.device))
    if args.channels_last:
        model.to(memory_format=torch.channels_last)
    if args.scheme == "rpn":
        history = train_rpn_only(
            model, dataset, train_cfg, out_dir=args.out, resume=args.resume, progress=True
        )
        print(f"{len(history)} RPN steps")
        save_model(model, args.out / "model.safetensors")
    else:
        fit(model, dataset, train_cfg, args.out, resume=args.resume)
    print(f"wrote {args.out}/model.safetensors")
    return 0


def print_alternating_progress(step_name: str, step: int, losses: dict[str, float]) -> None:
    if step % 50 == 0:
        print(f"{step_name:20s} step {step:5d}  loss {losses['loss']:.4f}", flush=True)


def fit(
    model: FasterRCNN, dataset, train_cfg: TrainConfig, out: Path, resume: bool
) -> list[dict[str, float]]:
    """Joint training with checkpoints and metrics under ``out``; the model file last."""
    start = time.perf_counter()
    history = Trainer(model, dataset, train_cfg, out_dir=out, progress=True).fit(resume)
    print(f"{len(history)} steps in {time.perf_counter() - start:.0f} s")
    save_model(model, out / "model.safetensors")
    return history


def run_evaluate(args: argparse.Namespace) -> int:
    model = load_model(args.model, device=args.device)
    # The model's label order decides which class each label means.
    dataset = open_dataset(args.data, args.split, class_names=model.config.class_names or None)
    report(model, dataset, args.out, args.device, args.batch_size)
    return 0


def report(
    model: FasterRCNN, dataset, out: Path | None, device: str, batch_size: int
) -> dict[str, float]:
    """Evaluate, print the table and write ``metrics.json`` when ``out`` is given."""
    result = evaluate_detector(
        model,
        dataset,
        batch_size=batch_size,
        device=device,
        class_names=class_names_of(model.config),
        progress=True,
    )
    print(result.table())
    metrics = result.as_dict()
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        # NaN (a metric with nothing to measure, e.g. a class without objects) -> null.
        finite = {k: None if v != v else v for k, v in metrics.items()}
        (out / "metrics.json").write_text(json.dumps(finite, indent=2) + "\n")
    return metrics


def run_predict(args: argparse.Namespace) -> int:
    model = load_model(args.model, device=args.device)
    paths = image_paths(args.inputs)
    names = class_names_of(model.config)
    args.out.mkdir(parents=True, exist_ok=True)
    results = []
    for image_id, path in enumerate(paths):
        image = read_image(path)
        detections, proposals = model.detect_with_proposals([image.to(args.device)])
        det = {k: v.cpu() for k, v in detections[0].items()}
        for box, label, score in zip(
            det["boxes"].tolist(), det["labels"].tolist(), det["scores"].tolist(), strict=True
        ):
            x1, y1, x2, y2 = box
            results.append(
                {
                    "image_id": image_id,
                    "file_name": str(path),
                    "category_id": label,
                    "category_name": names[label - 1],
                    "bbox": [round(v, 2) for v in (x1, y1, x2 - x1, y2 - y1)],
                    "score": round(score, 5),
                }
            )
        save_pictures(image, det, proposals[0], names, args.score, args.out / path.stem, suffix="")
    (args.out / "detections.json").write_text(json.dumps(results, indent=1) + "\n")
    print(f"{len(results)} detections in {len(paths)} images -> {args.out}/detections.json")
    return 0


def run_anchors(args: argparse.Namespace) -> int:
    dataset = open_dataset(args.data, args.split)
    if args.model:
        model = load_model(args.model)
    else:
        model = FasterRCNN.from_config(preset_config(args.preset, dataset.num_classes))
    count = min(len(dataset), args.max_images or len(dataset))
    coverage = measure_anchor_coverage(model, dataset_targets(dataset, count))
    print(f"{len(coverage)} boxes in {count} images")
    print(coverage.table())
    return 0


def image_paths(inputs: Sequence[Path]) -> list[Path]:
    """The image files named, and those directly inside the folders named, sorted."""
    paths: list[Path] = []
    for item in inputs:
        if item.is_dir():
            paths += sorted(p for p in item.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        elif item.is_file():
            paths.append(item)
        else:
            raise FileNotFoundError(f"no such image or folder: {item}")
    if not paths:
        raise ValueError(
            f"no images ({', '.join(IMAGE_SUFFIXES)}) in {', '.join(map(str, inputs))}"
        )
    return paths


def write_pictures(model: FasterRCNN, images: list[torch.Tensor], out: Path, score: float) -> None:
    """Detections and proposals of a few images as PNGs under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    device = next(model.parameters()).device
    model.eval()
    detections, proposals = model.detect_with_proposals([img.to(device) for img in images])
    names = class_names_of(model.config)
    for i, (image, det, props) in enumerate(zip(images, detections, proposals, strict=True)):
        save_pictures(image, det, props, names, score, out / f"{i:02d}")


def save_pictures(
    image: torch.Tensor,
    detections: dict[str, torch.Tensor],
    proposals: dict[str, torch.Tensor],
    class_names: Sequence[str],
    score: float,
    stem: Path,
    suffix: str = "_detections",
) -> None:
    """``<stem><suffix>.png`` (detections scoring at least ``score``) and
    ``<stem>_proposals.png`` (the strongest proposals) of one image."""
    det = {k: v.cpu() for k, v in detections.items()}
    props = {k: v.cpu() for k, v in proposals.items()}
    draw_detections(image, det, class_names, score).save(f"{stem}{suffix}.png")
    draw_proposals(image, props).save(f"{stem}_proposals.png")


def class_names_of(config: FasterRCNNConfig) -> tuple[str, ...]:
    if config.class_names:
        return config.class_names
    return tuple(f"class{i}" for i in range(1, config.num_classes))
