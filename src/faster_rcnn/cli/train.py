"""``faster-rcnn train``: a detector trained on a dataset by one of the paper's schemes.

``--scheme joint`` (approximate joint training, the default), ``--scheme
non-approximate`` (the paper's third scheme), ``--scheme rpn`` (the RPN alone) and
``--scheme alternating`` (the paper's four steps, each a stage of its own)
checkpoint as they go and resume; the alternating scheme shares ``--minutes`` among its
four steps 2:1:2:1.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..anchor_file import other_scale, with_anchor_file
from ..config import BACKBONES, AnchorConfig, FasterRCNNConfig, TransformConfig
from ..counted import counted
from ..data.augment import Augmented, RandomHorizontalFlip, RandomVerticalFlip, Transform
from ..data.blur_noise import BlurAndNoise
from ..data.cache import BYTES_PER_PIXEL, InMemoryDataset, cached_bytes
from ..data.coco import WithoutCrowd
from ..data.dataset import DetectionDataset, Sample, first_few, spread_indices, target_of
from ..data.difficult import WithoutDifficult
from ..data.open import is_generated
from ..data.photometric import ColorJitter
from ..data.random_crop import RandomCrop
from ..data.repeat_factor import (
    RARE_IMAGE_SHARE,
    REPEAT_FACTORS_FILE,
    REPEAT_THRESHOLD,
    Repeated,
    class_image_shares,
    class_repeat_factors,
    image_labels,
    repeat_factors,
    repeated_indices,
)
from ..data.resizable import ResizableImages
from ..data.resize_audit import audit_resize
from ..data.small_object_paste import SmallObjectPaste
from ..data.unreadable import UnreadableLog
from ..host_memory import bytes_text, least_available
from ..model import FasterRCNN
from ..models import PRESETS, preset_config
from ..train.alternating import (
    STAGES,
    AlternatingConfig,
    train_alternating,
)
from ..train.anchorless import anchorless_images
from ..train.checkpoint import MODEL_FILE, read_model_config, save_model, saved_checkpoints
from ..train.initial_weights import detector_fpn_stages, load_initial_weights
from ..train.memory_layout import default_memory_layout
from ..train.non_approximate import check_box_differentiable, non_approximate_trainer
from ..train.precision import default_cpu_precision, mixed_precision_dtype
from ..train.recipe import (
    CROWDED_OBJECTS,
    MAX_IMAGES_READ,
    SHORT_RUN_STEPS,
    choose_learning_rate,
    choose_recipe,
    choose_repeat_threshold,
    choose_short_run_steps,
    class_label,
    object_statistics,
    pixels,
    recipe_lines,
    under_anchor_note,
)
from ..train.rpn_only import rpn_trainer
from ..train.schedule import SCHEDULES
from ..train.state import weights_record
from ..train.step_timing import TIMED_STEPS, median_step_seconds
from ..train.train_config import LR_PER_IMAGE, TrainConfig, steps_bound
from ..train.trainer import Trainer
from .arguments import (
    add_data_arguments,
    add_device_argument,
    add_image_size_arguments,
    add_returned_layers_argument,
    add_strict_argument,
    file_of_flag,
    given_flags,
    minutes,
    non_negative_float,
    non_negative_int,
    open_fraction,
    path_argument,
    positive_float,
    positive_int,
    probability,
    random_seed,
    refuse_without_effect,
    size_names,
    with_image_sizes,
)
from .model_options import (
    add_config_options,
    check_nms_options,
    given_settings,
    with_config_options,
)
from .out_lock import check_one_process, training_lock
from .run_folder import (
    begin_fresh_run,
    check_out,
    clear_cut_off_saves,
    resumed_weights,
    say_replaced_run,
    scheme_of,
)
from .splits import (
    Records,
    add_holdout_arguments,
    check_split_seed,
    training_images,
    write_records,
)
from .streams import reader_proof

# The trainers of the single-stage schemes; "alternating" runs four stages.
STAGE_TRAINERS = {"joint": Trainer, "non-approximate": non_approximate_trainer, "rpn": rpn_trainer}
# A run loses at most this much work to a crash (a signal writes a checkpoint at once).
CHECKPOINT_EVERY = 500
CHECKPOINT_MINUTES = 5.0
# The options that set the detection head alone: how its RoIs are sampled in training,
# and how the trained head selects its detections.
HEAD_OPTIONS = (
    "--roi-batch-size",
    "--roi-sampler",
    "--gt-jitter",
    "--detections-per-image",
    "--box-nms-thresh",
    "--soft-nms",
)
# The run's length without --minutes.
DEFAULT_STEPS = 2000
# --cache-images is refused where the decoded images would take more than this share of
# the memory available: the machine would swap, or the kernel end the run, in its first
# epoch.
CACHE_SHARE = 0.8
# The repeated classes the repeat line names, the most repeated first (the others are
# in REPEAT_FACTORS_FILE).
REPEATS_NAMED = 5


# The step schedule's decays, as argparse help writes percent signs.
DECAYS = " and ".join(f"{100 * fraction:.0f}%%" for fraction in TrainConfig.lr_decay_at)


WEIGHTS_HELP = (
    "ImageNet backbone weights (torchvision), or a whole detector's to fine-tune: a model "
    "file of this package or a torchvision Faster R-CNN checkpoint of the same preset "
    "(every layer that fits; the data's classes the file has, by name or as a COCO file's "
    "categories, keep their outputs); --resume goes on from the checkpoint's weights (the "
    "alternating scheme's steps not begun from the file the run started from), and takes "
    "no other file"
)


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = commands.add_parser("train", help="train a detector on a dataset")
    add_data_arguments(parser, None, chosen="train, and val too where there is a test split")
    add_holdout_arguments(parser, "the split is written to --out/split.json")
    add_strict_argument(parser)
    parser.add_argument(
        "--preset", choices=list(PRESETS), default="small", help="the model (default: small)"
    )
    parser.add_argument(
        "--scheme",
        choices=[*STAGE_TRAINERS, "alternating"],
        default="joint",
        help="approximate joint training; non-approximate joint training (the detection "
        "head's classification loss also trains the RPN's box regression, through "
        "RoIAlign); the RPN alone; or the paper's 4-step alternating scheme",
    )
    parser.add_argument("--weights", type=path_argument, help=WEIGHTS_HELP)
    parser.add_argument(
        "--anchors",
        type=path_argument,
        help="an anchor file (sizes and aspect ratios per level) in place of the preset's, "
        "e.g. the one `faster-rcnn anchors --fit` writes",
    )
    add_returned_layers_argument(parser)
    add_config_options(parser)
    parser.add_argument(
        "--recipe",
        choices=["auto", "preset"],
        default="auto",
        help="auto (default): adjust the preset to the dataset where measurements showed "
        "it helps, and print each change and why; preset: the preset's numbers as they are",
    )
    add_optimisation_arguments(parser)
    add_image_size_arguments(parser, "the preset's, or the recipe's")
    add_augmentation_arguments(parser)
    parser.add_argument(
        "--skip-difficult",
        action="store_true",
        help="train without the objects VOC marks difficult (py-faster-rcnn's choice; by "
        "default they are trained on like any other, as in torchvision's references)",
    )
    parser.add_argument(
        "--workers",
        type=non_negative_int,
        default=0,
        help="DataLoader worker processes (default 0)",
    )
    parser.add_argument(
        "--cache-images",
        action="store_true",
        help="keep the images in memory after their first read, at 3 bytes a pixel "
        f"(with --workers 0); refused where they would take more than {CACHE_SHARE * 100:.0f}%% "
        "of the memory available",
    )
    parser.add_argument(
        "--amp",
        action=argparse.BooleanOptionalAction,
        help="mixed precision: float16 on CUDA, bfloat16 on a CPU with bfloat16 instructions "
        "(default: on such a CPU, where a step took 0.25-0.83 times as long: "
        "benchmarks/recipe_ab.md, rounds 25, 44 and 45)",
    )
    parser.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        help="NHWC memory layout (default: on a CPU where it trains the backbone faster: "
        "with AVX-512 every one, without it the depthwise-separable ones)",
    )
    add_checkpoint_arguments(parser)
    parser.add_argument(
        "--out",
        type=path_argument,
        default=Path("runs/train"),
        help="the run folder: checkpoints, metrics.jsonl, model.safetensors (default: runs/train)",
    )
    parser.add_argument(
        "--seed",
        type=random_seed,
        default=0,
        help="seed of the weights, the sampling and the augmentations (default 0)",
    )
    add_device_argument(parser)
    return parser


def add_augmentation_arguments(parser: argparse.ArgumentParser) -> None:
    """The random changes training makes to its images: left-right flips, and top-bottom
    flips, crops, windows, colours, blur and noise if asked."""
    parser.add_argument(
        "--no-flip",
        action="store_true",
        help="no random horizontal flips (the paper's only augmentation)",
    )
    parser.add_argument(
        "--vertical-flip",
        action="store_true",
        help="also flip half the images top-bottom, drawn apart from the left-right flip: "
        "for images with no up or down, such as microscope slides or aerial photographs "
        "(default off)",
    )
    parser.add_argument(
        "--random-crop",
        type=open_fraction,
        metavar="MIN_SCALE",
        help="cut half the images to a random window of their own shape, its sides drawn "
        "from MIN_SCALE..1 times theirs, so that their objects are seen up to 1 / MIN_SCALE "
        "times larger; a box whose centre is in the window is kept, cut to it "
        "(faster_rcnn.data.random_crop); default none",
    )
    parser.add_argument(
        "--train-window",
        type=positive_int,
        nargs=2,
        metavar=("H", "W"),
        help="train on random windows of at most H x W px of the resized images (turned to "
        "each image's orientation), evaluate on whole ones: for large images enlarged by "
        "--min-size / --max-size for their small objects, a step then costs the window's "
        "pixels, not the image's (faster_rcnn.transform); default none",
    )
    parser.add_argument(
        "--paste-small",
        type=positive_int,
        metavar="COPIES",
        help="in half the images, paste COPIES more copies of each object of the smallest "
        "class (by median side once resized) where no box lies, each with a margin that "
        "fades into its new place (faster_rcnn.data.small_object_paste); default none",
    )
    parser.add_argument(
        "--repeat-threshold",
        type=probability,
        metavar="SHARE",
        help="list the images of a class held by fewer than SHARE of the training images "
        "more often, sqrt(SHARE / its share) times, as LVIS's repeat-factor sampling "
        "(faster_rcnn.data.repeat_factor); 0 lists each image once; default: the recipe's "
        f"{REPEAT_THRESHOLD:g} where a class of two or more is in under "
        f"{RARE_IMAGE_SHARE:.0%}% of the images, else 0",  # %% is argparse's "%"
    )
    parser.add_argument(
        "--color-jitter",
        type=non_negative_float,
        nargs=4,
        metavar=("BRIGHTNESS", "CONTRAST", "SATURATION", "HUE"),
        help="random brightness, contrast and saturation factors drawn from [1 - x, 1 + x], "
        "and a hue turn from [-HUE, HUE] (at most 0.5), as torchvision's ColorJitter "
        "(faster_rcnn.data.photometric); default none",
    )
    parser.add_argument(
        "--blur-noise",
        type=non_negative_float,
        nargs=2,
        metavar=("BLUR", "NOISE"),
        help="a Gaussian blur of standard deviation drawn from [0, BLUR] px, then Gaussian "
        "noise of standard deviation drawn from [0, NOISE] (pixels 0..1), after any colour "
        "jitter: for images whose focus or camera will differ from the training images' "
        "(faster_rcnn.data.blur_noise); default none",
    )


def add_optimisation_arguments(parser: argparse.ArgumentParser) -> None:
    """The run's length and budget, batch, learning rate and schedule."""
    parser.add_argument(
        "--steps",
        type=positive_int,
        help=f"SGD steps (default {DEFAULT_STEPS}; with --minutes, as many as the budget "
        "fits, and where both are given the first reached ends the run); the alternating "
        "scheme's four stages share them 2:1:2:1, so it takes 4 or more",
    )
    parser.add_argument(
        "--minutes",
        type=minutes,
        help="stop after this long; the schedule is laid over the steps that fit (where a "
        "recipe choice turns on them, a few steps are timed before the budget starts)",
    )
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        help=f"images a step (default {TrainConfig.batch_size}, or the training images where "
        "fewer: in a time budget twice the steps of 4, ahead of 4 on crowded images with a "
        "small rare class and even on others: benchmarks/recipe_ab.md, round 28)",
    )
    parser.add_argument(
        "--lr",
        type=positive_float,
        help=f"peak learning rate (default {LR_PER_IMAGE:g} for each image of a batch, so "
        f"{LR_PER_IMAGE * TrainConfig.batch_size:g} at the default batch: for batches of 4, "
        f"{LR_PER_IMAGE * 4:g} measured best, benchmarks/seed_study.md; the recipe doubles "
        f"it where images hold {CROWDED_OBJECTS} objects or more, and raises that up to twice "
        f"where --minutes fit fewer than {SHORT_RUN_STEPS} steps, benchmarks/recipe_ab.md, "
        "rounds 32-39; a rate given is kept as it is)",
    )
    parser.add_argument(
        "--grad-clip-norm",
        type=positive_float,
        default=TrainConfig.grad_clip_norm,
        metavar="NORM",
        help="clip the gradients' total norm to this (default "
        f"{TrainConfig.grad_clip_norm:g}; each step's norm before clipping is in "
        "metrics.jsonl)",
    )
    parser.add_argument(
        "--schedule",
        choices=SCHEDULES,
        default=TrainConfig.schedule,
        help=f"after the warm-up: 'step' divides the rate by 10 at {DECAYS} of the run; "
        f"'cosine' lowers it smoothly to 0 (default {TrainConfig.schedule!r})",
    )


def add_checkpoint_arguments(parser: argparse.ArgumentParser) -> None:
    """``--resume`` and how often checkpoints are written."""
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue from the checkpoint in --out (Ctrl-C, SIGTERM and SIGHUP, the "
        "terminal closing, stop a run with one; under nohup it goes on; output whose "
        "reader has gone, `| head`, is dropped and the run goes on)",
    )
    parser.add_argument(
        "--checkpoint-every",
        type=positive_int,
        metavar="STEPS",
        help="write a checkpoint every STEPS steps (default 500) ...",
    )
    parser.add_argument(
        "--checkpoint-minutes",
        type=positive_float,
        metavar="MINUTES",
        help="... and whenever MINUTES have passed since the last one (default 5)",
    )


def run(args: argparse.Namespace) -> int:
    check_one_process("train")
    check_options(args)
    if args.resume:
        args.weights = resumed_weights(args)
    # The run's results are its files: it goes on where its output's reader has gone
    # (`| head`), not ended at its next line.
    with training_lock(args.out), reader_proof("stdout"):
        clear_cut_off_saves(args.out)
        if not args.resume:
            say_replaced_run(args.out)
        return train(args)


def train(args: argparse.Namespace) -> int:
    """Train as ``args`` say (their options checked) and write the model file."""
    dataset, records = training_images(args)
    dataset = images_with_boxes(dataset, args)
    args.batch_size = batch_size(dataset, args)
    check_workers(dataset, args)
    warn_of_classes_without_boxes(dataset, args)
    if args.cache_images:
        check_cache_fits(dataset)
        dataset = InMemoryDataset(dataset)
    config, rate, repeat = model_and_rate(dataset, args)
    say_train_window(config)
    pasted = small_class_label(dataset, config, args.paste_small) if args.paste_small else None
    listed, repeats = repeated(resizable(dataset, config, args), repeat, args.seed, args.out)
    records |= repeats
    dataset = augmented(listed, args, pasted)
    if args.channels_last is None and torch.device(args.device).type == "cpu":
        print(default_memory_layout(config.backbone.name, torch.device(args.device)).line())
    say_default_precision(args)
    train_cfg = train_config(args, run_length(args), rate)
    if not args.resume:
        begin_fresh_run(args.out, records)
    if args.scheme == "alternating":
        train_alternating_scheme(args, config, dataset, train_cfg)
    else:
        train_one_stage(args, config, dataset, train_cfg)
    if args.resume:  # now checked against its checkpoints; an earlier version's run began without
        write_records(args.out, records)
    print(f"wrote {args.out / MODEL_FILE}")
    return 0


def images_with_boxes(dataset: DetectionDataset, args: argparse.Namespace) -> WithoutCrowd:
    """The training images as trained on: without the difficult objects where
    ``--skip-difficult`` (refused on data that marks none), nor crowd regions; refused
    where that leaves no box."""
    if args.skip_difficult:
        check_marks_difficult(dataset, args)
        dataset = WithoutDifficult(dataset)
    dataset = WithoutCrowd(dataset)  # never trained on: the recipe counts no crowd either
    require_boxes(dataset, args)
    return dataset


def model_and_rate(
    dataset: DetectionDataset, args: argparse.Namespace
) -> tuple[FasterRCNNConfig, dict[str, Any], float | None]:
    """The model's config, ``TrainConfig``'s rate settings and the repeat threshold: the
    options', or with ``--recipe auto`` the recipe's (:func:`with_recipe`); with a warning
    where the anchors or the resizing do not suit the training images."""
    config = model_config(args, dataset.class_names)
    lr = args.lr if args.lr is not None else LR_PER_IMAGE * args.batch_size
    rate: dict[str, Any] = {"lr": lr}
    repeat = args.repeat_threshold
    if args.recipe == "auto":
        config, rate, repeat = with_recipe(config, dataset, args, rate)
    warn_of_anchor_scale(args, config)
    if not is_generated(args.data):  # its boxes are read by placing every shape again
        warn_of_resizing(dataset, config)
    return config, rate, repeat


def train_one_stage(
    args: argparse.Namespace,
    config: FasterRCNNConfig,
    dataset: Sequence[Sample],
    train_cfg: TrainConfig,
) -> None:
    """The ``--scheme``'s one stage (joint, non-approximate or the RPN alone) on a fresh
    model with ``--weights``; the model is saved, and the steps it ran said."""
    model = build_model(args, config)
    trainer_of = STAGE_TRAINERS[args.scheme]
    started = weights_record(args.weights)  # a resumed stage keeps its checkpoint's
    trainer = trainer_of(
        model,
        dataset,
        train_cfg,
        out_dir=args.out,
        progress=True,
        weights=started,
        scheme=args.scheme,
    )
    fit_and_save(trainer, args.out, args.resume, box_head_trained=args.scheme != "rpn")


def train_config(args: argparse.Namespace, steps: int, rate: dict[str, Any]) -> TrainConfig:
    """The run's optimisation settings: its ``steps``, the ``rate`` settings
    (``TrainConfig``'s ``lr``, and ``short_run_steps``; none: its defaults) and the
    options' (``--batch-size`` not given: ``TrainConfig``'s)."""
    return TrainConfig(
        steps=steps,
        batch_size=args.batch_size or TrainConfig.batch_size,
        **rate,
        grad_clip_norm=args.grad_clip_norm,
        schedule=args.schedule,
        max_seconds=args.minutes * 60 if args.minutes else None,
        amp=uses_amp(args),
        num_workers=args.workers,
        seed=args.seed,
        checkpoint_every=args.checkpoint_every or CHECKPOINT_EVERY,
        checkpoint_minutes=args.checkpoint_minutes or CHECKPOINT_MINUTES,
        skip_unreadable=not args.strict,
    )


def require_boxes(dataset: WithoutCrowd, args: argparse.Namespace) -> None:
    """Refuse training images without a single box among them: the detector would learn
    only background, and say nothing (labels in a folder the reader does not look in,
    every object difficult and left out, or every box a COCO crowd region)."""
    if not len(dataset):
        raise ValueError(f"{args.data}: no training images (`faster-rcnn data --data {args.data}`)")
    if holds_boxes(dataset):
        return
    left_out = " once --skip-difficult left out the difficult ones" if args.skip_difficult else ""
    if holds_boxes(dataset.dataset):
        left_out += "," * bool(left_out) + " but crowd regions (iscrowd 1), never trained on"
    raise ValueError(
        f"{args.data}: no box in any of the {len(dataset)} training images{left_out}: "
        f"nothing to learn (`faster-rcnn data --data {args.data}` shows what was read)"
    )


def warn_of_classes_without_boxes(dataset: DetectionDataset, args: argparse.Namespace) -> None:
    """Warn of the classes that no training box has (a names list or COCO categories
    longer than what was labelled): the model has them, and never detects them. An
    image that cannot be read counts no box (training skips it)."""
    boxes = Counter(label for labels in image_labels(dataset) for label in labels)
    missing = [name for k, name in enumerate(dataset.class_names, 1) if not boxes[k]]
    if missing:
        have = counted(len(missing), "class has", "classes have")
        print(
            f"faster-rcnn: warning: {args.data}: {have} no training box, and will never be "
            f"detected: {first_few(missing)} "
            f"(`faster-rcnn data --data {args.data}` counts each class's boxes)",
            file=sys.stderr,
        )


def check_marks_difficult(dataset: DetectionDataset, args: argparse.Namespace) -> None:
    """Refuse ``--skip-difficult`` on data whose targets have no ``difficult`` marks
    (any but Pascal VOC's), where it would leave nothing out without a word."""
    if len(dataset) and "difficult" not in target_of(dataset, 0):
        raise ValueError(
            f"--skip-difficult has no effect on {args.data}: only Pascal VOC annotations "
            "mark objects difficult"
        )


def holds_boxes(dataset: DetectionDataset) -> bool:
    """Whether any image of ``dataset`` has a box."""
    return any(len(target_of(dataset, i)["boxes"]) for i in range(len(dataset)))


def batch_size(dataset: DetectionDataset, args: argparse.Namespace) -> int:
    """``--batch-size``, by default :class:`TrainConfig`'s or the training images where
    fewer. One above the training images is refused: every batch would hold them all,
    fewer than asked, at the learning rate of the batch asked for (``--lr`` follows the
    batch size), and without a word."""
    if args.batch_size is None:
        return min(TrainConfig.batch_size, len(dataset))
    if args.batch_size > len(dataset):
        raise ValueError(
            f"--batch-size {args.batch_size}: {args.data} has {len(dataset)} training "
            f"images, so no batch would hold more than {len(dataset)} (the learning rate "
            f"follows the batch size): give --batch-size {len(dataset)} or less"
        )
    return args.batch_size


def check_workers(dataset: DetectionDataset, args: argparse.Namespace) -> None:
    """Refuse more ``--workers`` than training images: a worker loads whole batches, so
    the others would load nothing, each a process started every epoch (a million of
    them never got to the first step)."""
    if args.workers > len(dataset):
        raise ValueError(
            f"--workers {args.workers}: {args.data} has {len(dataset)} training images, and "
            "a worker loads whole batches of them, so the others would load none: give "
            f"--workers {len(dataset)} or fewer"
        )


def check_cache_fits(dataset: DetectionDataset) -> None:
    """Refuse ``--cache-images`` where ``dataset``'s images, decoded as the cache keeps
    them (:func:`~faster_rcnn.data.cache.cached_bytes`, from the sizes of up to
    :data:`MAX_IMAGES_READ` images spread over it), would take more than
    :data:`CACHE_SHARE` of the memory available (the machine's, or a container's memory
    limit's, as the refusal says); where the machine does not say, nothing is checked."""
    level = least_available()
    if level is None:
        return
    needed = cached_bytes(dataset, spread_indices(len(dataset), MAX_IMAGES_READ))
    if needed > CACHE_SHARE * level.available:
        raise ValueError(
            f"--cache-images: the {counted(len(dataset), 'training image')} would take "
            f"{bytes_text(needed)} in memory ({BYTES_PER_PIXEL} bytes a pixel), more than "
            f"{CACHE_SHARE:.0%} of the {level.available_text()}: train without "
            "--cache-images"
        )


def warn_of_resizing(dataset: DetectionDataset, config: FasterRCNNConfig) -> None:
    """Warn of the training objects too small to find once resized as ``config`` resizes
    them, and of the images it enlarges many times (:mod:`faster_rcnn.data.resize_audit`,
    as ``data`` notes them), and of the images with no anchor inside them where the RPN
    ignores the anchors crossing the border (:mod:`faster_rcnn.train.anchorless`), among
    up to :data:`MAX_IMAGES_READ` images spread over ``dataset``, as the recipe reads
    them."""
    transform = config.transform
    indices = spread_indices(len(dataset), MAX_IMAGES_READ)
    audit = audit_resize(dataset, transform.min_size, transform.max_size, indices)
    for note in [*audit.notes(), *anchorless_images(dataset, config, indices).notes()]:
        warnings.warn(f"training images: {note}", stacklevel=2)


def warn_of_anchor_scale(args: argparse.Namespace, config: FasterRCNNConfig) -> None:
    """Warn where ``--anchors`` were fitted at another input scale than ``config``'s (the
    sizes given or the recipe's). A warning, not a refusal: unlike a file of another
    number of levels, the anchors still build the model, and another scale may be meant
    (the recipe's smaller input, for objects larger than the file's largest anchor)."""
    note = other_scale(args.anchors, config.transform) if args.anchors else None
    if note:
        warnings.warn(note, stacklevel=2)


def resizable(
    dataset: DetectionDataset, config: FasterRCNNConfig, args: argparse.Namespace
) -> DetectionDataset:
    """``dataset``, an image too elongated for the model's sizes skipped as an unreadable
    one is (:mod:`faster_rcnn.data.resizable`), its warning naming the sizes by their
    flags where ``args`` give them."""
    transform = config.transform
    return ResizableImages(dataset, transform.min_size, transform.max_size, size_names(args))


def run_length(args: argparse.Namespace) -> int:
    """The steps to train: ``--steps``; else, with ``--minutes``, a bound the budget ends
    the run before; else :data:`DEFAULT_STEPS`."""
    if args.steps is not None:
        return args.steps
    return DEFAULT_STEPS if args.minutes is None else steps_bound(args.minutes * 60)


def check_options(args: argparse.Namespace) -> None:
    """Refuse, before the data is read or anything written, options the run would ignore
    or cannot honour: model or optimisation settings that make no valid config (named
    as the options that gave them: :mod:`.config_flags`), an ``--out`` it cannot write (or
    resume) in, ``--weights`` that do not load."""
    if args.cache_images and args.workers:
        raise ValueError("--cache-images works with --workers 0 only")
    check_split_seed(args)
    if args.color_jitter and args.color_jitter[3] > 0.5:
        raise ValueError(f"--color-jitter: HUE is at most 0.5 turns, got {args.color_jitter[3]}")
    check_head_options(args)
    check_alternating_steps(args)
    check_amp(args)
    check_nms_options(args)
    # The options' optimisation settings, before the data settles the run's steps and rate.
    train_config(args, DEFAULT_STEPS, {} if args.lr is None else {"lr": args.lr})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the run's own config warns
        config = model_config(args, ["object"])  # one class: the settings do not vary
    if args.scheme == "non-approximate":
        check_box_differentiable(config)
    check_multi_scale_per(args, config.transform.min_size)
    check_train_window(args, config.transform)
    check_out(args.out, args.scheme, args.resume)
    check_weights(args)


def check_multi_scale_per(args: argparse.Namespace, min_sizes: Sequence[int]) -> None:
    """Refuse ``--multi-scale-per`` where training has one shorter side ``min_sizes`` to
    draw (given, or the preset's kept): only the recipe may choose several."""
    fixed = args.min_size or args.recipe == "preset"
    if args.multi_scale_per and fixed and len(min_sizes) == 1:
        raise ValueError(
            f"--multi-scale-per has no effect with the one --min-size {min_sizes[0]}: it "
            "chooses how training draws among several"
        )


def check_train_window(args: argparse.Namespace, transform: TransformConfig) -> None:
    """Refuse ``--train-window`` where every image, resized to the sizes given (or the
    preset's kept), fits in the window whole: it would cut nothing."""
    fixed = (args.min_size and args.max_size) or args.recipe == "preset"
    why = window_cuts_nothing(args.train_window, transform) if args.train_window else None
    if fixed and why is not None:
        raise ValueError(f"{why}; give a smaller window, or larger sizes")


def window_cuts_nothing(window: Sequence[int], transform: TransformConfig) -> str | None:
    """Why ``window`` (height, width) cuts nothing from images resized by ``transform``
    (every one fits in it whole), else ``None``."""
    longest = transform.max_size  # the resized images' longer side at most
    shortest = min(max(transform.min_size), longest)  # and their shorter side
    if min(window) < shortest or max(window) < longest:
        return None
    height, width = window
    return (
        f"--train-window {height} {width} has no effect: every image resized to "
        f"--min-size {' '.join(map(str, transform.min_size))} --max-size {longest} fits "
        f"in it whole (at most {shortest} x {longest} px)"
    )


def check_alternating_steps(args: argparse.Namespace) -> None:
    """Refuse ``--steps`` too few for the alternating scheme's four stages to have one
    each (:func:`~faster_rcnn.train.alternating.split_steps`)."""
    if args.scheme == "alternating" and args.steps is not None and args.steps < len(STAGES):
        raise ValueError(
            f"--steps {args.steps}: the alternating scheme runs four stages, split 2:1:2:1, "
            f"each at least one step; give at least {len(STAGES)}"
        )


def check_head_options(args: argparse.Namespace) -> None:
    """Refuse the options that set the detection head alone (:data:`HEAD_OPTIONS`) with
    ``--scheme rpn``, which never trains the head: its model's untrained head makes no
    detections worth selecting."""
    if args.scheme == "rpn":
        refuse_without_effect(
            given_flags(args, dict.fromkeys(HEAD_OPTIONS)),
            "with --scheme rpn: it trains the RPN alone, not the detection head whose RoI "
            "sampling or detections they set",
        )


def check_weights(args: argparse.Namespace) -> None:
    """Refuse ``--weights`` that do not load into the preset's model (unreadable, not
    ImageNet weights of its backbone's kind, a detector of another backbone, or for a
    backbone it has none for)."""
    if args.weights is None:
        return
    with file_of_flag("--weights", args.weights):
        load_initial_weights(FasterRCNN.from_config(preset_config(args.preset, 2)), args.weights)


def check_amp(args: argparse.Namespace) -> None:
    """Refuse ``--amp`` where there is no mixed precision to train in."""
    if args.amp and mixed_precision_dtype(torch.device(args.device).type) is None:
        raise ValueError(
            f"--amp needs a CUDA device or a CPU with bfloat16 instructions (AVX512-BF16 "
            f"or AMX), got --device {args.device}"
        )


def model_config(args: argparse.Namespace, class_names: Sequence[str]) -> FasterRCNNConfig:
    """The preset for the classes ``class_names``, with the anchors, image sizes and
    training window asked for."""
    config = preset_config(args.preset, len(class_names) + 1)
    config = config.replace(class_names=tuple(class_names))
    stages = returned_layers(args)
    if stages:
        config = config.with_returned_layers(stages)
    if args.anchors:
        config = with_anchor_file(config, args.anchors)
    config = with_config_options(config, args)
    if args.train_window:
        config = config.replace(transform={"train_window": tuple(args.train_window)})
    return with_image_sizes(config, args)


def returned_layers(args: argparse.Namespace) -> tuple[int, ...] | None:
    """``--returned-layers``; with ``--resume`` and none given, those of the model the
    run continues, which the recipe keeps (its choice of them can turn on timed steps,
    and a second timing need not come out alike)."""
    if args.returned_layers:
        return tuple(args.returned_layers)
    if args.resume and args.out.is_dir():
        for checkpoint in saved_checkpoints(args.out):
            if scheme_of(checkpoint) == args.scheme:
                model = read_model_config(checkpoint / MODEL_FILE)
                return model.backbone.resolved_returned_layers()
    return None


def anchors_without_file(
    args: argparse.Namespace, class_names: Sequence[str]
) -> AnchorConfig | None:
    """The anchors the run's model would have without ``--anchors`` (``None`` without
    it, or where its ``--returned-layers`` need the file), for the recipe to say what the
    file's anchors forgo."""
    if not args.anchors:
        return None
    try:
        return model_config(
            argparse.Namespace(**{**vars(args), "anchors": None}), class_names
        ).anchors
    except ValueError:  # stages the preset has no anchors for
        return None


def with_recipe(
    config: FasterRCNNConfig,
    dataset: DetectionDataset,
    args: argparse.Namespace,
    rate: dict[str, Any],
) -> tuple[FasterRCNNConfig, dict[str, Any], float | None]:
    """``config``, the rate settings ``rate`` (``TrainConfig``'s ``lr``, and
    ``short_run_steps``) and the repeat threshold, adjusted to the dataset
    (:mod:`faster_rcnn.train.recipe`), each change printed with its reason; the options
    given on the command line stay, and a warning where the smallest class stays under half
    the smallest anchor (:func:`under_anchor_note`). Where a choice turns on the run's steps and
    ``--minutes`` leaves them unknown, steps are timed first (:func:`steps_that_fit`)."""
    stats = object_statistics(dataset, config)
    given = given_settings(args)
    given |= {"transform.min_size"} if args.min_size else set()
    given |= {"transform.max_size"} if args.max_size else set()
    given |= {"train.lr"} if args.lr is not None else set()
    given |= {"train.repeat_threshold"} if args.repeat_threshold is not None else set()
    given |= {"backbone.returned_layers"} if returned_layers(args) else set()
    given |= {"anchors"} if args.anchors else set()
    steps = None if args.minutes is not None else run_length(args)
    kept = detector_fpn_stages(args.weights) if args.weights else None
    box_head = args.scheme != "rpn"  # the RPN alone: no choice for the head
    unfiled = anchors_without_file(args, config.class_names)
    chosen, choices = choose_recipe(config, stats, given, steps, kept, box_head, unfiled)
    if steps is None and any(choice.min_steps for choice in choices):
        steps = steps_that_fit(args, chosen, dataset)
        chosen, choices = choose_recipe(config, stats, given, steps, kept, box_head, unfiled)
    under = under_anchor_note(chosen, stats, config.transform.min_size[-1])
    config = chosen
    rate_choices = [
        choose_learning_rate(stats, args.batch_size, given),
        choose_short_run_steps(stats, args.minutes is not None, given),
    ]
    for choice in filter(None, rate_choices):
        choices.append(choice)
        rate = {**rate, choice.setting.removeprefix("train."): choice.value}
    repeat = choose_repeat_threshold(stats, given)
    choices += [repeat] if repeat else []
    if choices:
        print("recipe (--recipe preset keeps the preset's numbers):")
        print("\n".join(recipe_lines(choices)))
    if under:  # after the recipe, which says how far it enlarged the input
        warnings.warn(f"training images: {under}", stacklevel=2)
    return config, rate, repeat.value if repeat else args.repeat_threshold


def steps_that_fit(
    args: argparse.Namespace, config: FasterRCNNConfig, dataset: DetectionDataset
) -> int:
    """The steps of the run in ``--minutes`` (at most ``--steps``), projected from
    :data:`TIMED_STEPS` steps of a throwaway model of ``config`` timed on the run's images,
    batch and precision (:mod:`faster_rcnn.train.step_timing`); says what it timed.

    Where training draws among several sizes, the steps are timed at the middle one: a
    step's time follows the size drawn (0.76-1.14 s among the recipe's six on the
    slides), so a median of a few drawn ones would be noisy, where the middle size's is
    near the run's mean.
    """
    sizes = config.transform.min_size
    size = sizes[len(sizes) // 2]
    config = config.replace(transform={"min_size": (size,)})
    cfg = TrainConfig(
        steps=1 + TIMED_STEPS,
        batch_size=args.batch_size,
        amp=uses_amp(args),
        num_workers=args.workers,
        seed=args.seed,
        checkpoint_every=None,
    )
    trainer_of = STAGE_TRAINERS.get(args.scheme, Trainer)  # alternating: its joint steps
    images = augmented(resizable(dataset, config, args), args)
    quiet = UnreadableLog(warn=False)  # the run itself warns
    trainer = trainer_of(build_model(args, config, quiet=True), images, cfg, unreadable=quiet)
    seconds = median_step_seconds(trainer)
    fits = max(1, int(args.minutes * 60 / seconds))
    print(
        f"timed {TIMED_STEPS} training steps of the recipe's model at {size} px: "
        f"{seconds:.2f} s a step (the median), about {counted(fits, 'step')} in "
        f"{counted(args.minutes, 'minute')}"
    )
    return fits if args.steps is None else min(fits, args.steps)


def say_train_window(config: FasterRCNNConfig) -> None:
    """Say, with ``--train-window``, the windows training cuts and the resize they are cut
    from."""
    transform = config.transform
    if transform.train_window is None:
        return
    height, width = transform.train_window
    sizes = ", ".join(map(str, transform.min_size))
    print(
        f"window: training on windows of {height}x{width} px of the images resized to "
        f"{sizes} px (longer side at most {transform.max_size}), evaluation on the whole image"
    )
    # Sizes given are checked before the data is read; the recipe's only now.
    why = window_cuts_nothing(transform.train_window, transform)
    if why is not None:
        warnings.warn(
            f"{why}, with the sizes the recipe settled: give a smaller window, or larger sizes",
            stacklevel=2,
        )


def small_class_label(dataset: Sequence[Sample], config: FasterRCNNConfig, copies: int) -> int:
    """The label of the training objects' smallest class (by median side once resized),
    whose objects ``--paste-small`` copies; says so."""
    stats = object_statistics(dataset, config)
    name = stats.smallest_class()
    if name is None:
        raise ValueError("--paste-small: the training images hold no objects to copy")
    print(
        f"paste: {counted(copies, 'more copy')} of each {name!r} object (the smallest class, "
        f"{pixels(stats.class_sides[name])} px once resized) in half the images, where no box lies"
    )
    return class_label(config, name)


def repeated(
    dataset: DetectionDataset, threshold: float | None, seed: int, out: Path
) -> tuple[DetectionDataset, Records]:
    """The dataset with the images of classes few images hold listed more often, at repeat
    ``threshold`` (see :mod:`faster_rcnn.data.repeat_factor`; ``None`` or 0: each image
    once), the fractions drawn from ``seed``; says which (the most repeated few); and the
    record of every class's share and factor, to be written into ``out`` (none where
    each image is listed once)."""
    if not threshold:
        return dataset, {}
    labels = image_labels(dataset)
    shares = class_image_shares(labels)
    factors = class_repeat_factors(shares, threshold)
    most_first = sorted(factors, key=lambda label: (factors[label], label), reverse=True)
    if factors[most_first[0]] == 1:
        print(f"repeat: every class is in at least {threshold:.0%} of the images")
        return dataset, {}
    indices = repeated_indices(repeat_factors(labels, threshold), seed)
    names = dataset.class_names
    repeats = [label for label in most_first if factors[label] > 1]
    print(
        "repeat: an image is listed as often as its rarest class asks, "
        f"{named_repeats(names, shares, factors, repeats, out)}: an epoch reads "
        f"{counted(len(indices), 'item')} of {counted(len(dataset), 'image')}"
    )
    classes = {names[c - 1]: {"share": shares[c], "factor": factors[c]} for c in most_first}
    record = {"threshold": threshold, "images": len(dataset), "items": len(indices)}
    return Repeated(dataset, indices), {REPEAT_FACTORS_FILE: {**record, "classes": classes}}


def named_repeats(
    names: Sequence[str],
    shares: dict[int, float],
    factors: dict[int, float],
    repeats: Sequence[int],
    out: Path,
) -> str:
    """The repeated classes ``repeats`` (labels, the most repeated first) with their
    ``shares`` of the images and their ``factors``: all of them, or where that leaves two
    or more out, the first ``REPEATS_NAMED``, how many more there are, their factors'
    range and the record in ``out`` that lists every class."""
    first, *others = repeats
    name = names[first - 1]
    named = [f"{name!r} (in {shares[first]:.0%} of the images) {factors[first]:.2f} times"]
    shown = others if len(others) <= REPEATS_NAMED else others[: REPEATS_NAMED - 1]
    named += [f"{names[c - 1]!r} (in {shares[c]:.0%}) {factors[c]:.2f}" for c in shown]
    if len(shown) < len(others):
        rest = others[len(shown) :]
        named.append(
            f"and {len(rest)} more classes, {factors[rest[0]]:.2f} down to "
            f"{factors[rest[-1]]:.2f} times (every class in {out / REPEAT_FACTORS_FILE}, "
            "written with the model)"
        )
    return ", ".join(named)


def augmented(
    dataset: Sequence[Sample], args: argparse.Namespace, pasted: int | None = None
) -> Sequence[Sample]:
    """The dataset as training reads it: with copies of class ``pasted``'s objects (with
    ``--paste-small``), cropped (with ``--random-crop``), flipped
    left-right at random (unless ``--no-flip``) and top-bottom (with ``--vertical-flip``),
    then colour-jittered (with ``--color-jitter``), then blurred and noised (with
    ``--blur-noise``)."""
    transforms: list[Transform] = []
    if pasted is not None:
        transforms.append(SmallObjectPaste([pasted], args.paste_small))
    if args.random_crop:
        transforms.append(RandomCrop(args.random_crop))
    if not args.no_flip:
        transforms.append(RandomHorizontalFlip(0.5))
    if args.vertical_flip:
        transforms.append(RandomVerticalFlip(0.5))
    if args.color_jitter and any(args.color_jitter):
        transforms.append(ColorJitter(*args.color_jitter))
    if args.blur_noise and any(args.blur_noise):
        transforms.append(BlurAndNoise(*args.blur_noise))
    return Augmented(dataset, transforms, seed=args.seed) if transforms else dataset


def build_model(
    args: argparse.Namespace, config: FasterRCNNConfig, quiet: bool = False
) -> FasterRCNN:
    """A fresh model drawn from ``--seed``, with ``--weights`` loaded, on ``--device``;
    it says which weights it loaded, and warns where it expected some (unless ``quiet``,
    or resuming: the checkpoint's weights replace them)."""
    torch.manual_seed(args.seed)
    model = FasterRCNN.from_config(config)
    if args.weights:
        report = load_initial_weights(model, args.weights)
        if not quiet:
            print(report)
    elif not quiet:
        warn_without_backbone_weights(args, config)
    model.to(torch.device(args.device))
    if uses_channels_last(args, config):
        model.to(memory_format=torch.channels_last)
    return model


def warn_without_backbone_weights(args: argparse.Namespace, config: FasterRCNNConfig) -> None:
    """Warn, unless resuming (the checkpoint's weights replace them), where the backbone
    freezes layers for ImageNet weights and no ``--weights`` were given."""
    if args.weights or args.resume or not expects_pretrained_backbone(config):
        return
    print(
        f"faster-rcnn: warning: the {args.preset} preset freezes backbone layers or batch "
        "norm for ImageNet weights, and no --weights were given: those layers stay "
        "random and untrained",
        file=sys.stderr,
    )


def say_default_precision(args: argparse.Namespace) -> None:
    """Print the precision chosen on a CPU when ``--amp`` / ``--no-amp`` was not given."""
    if args.amp is None and torch.device(args.device).type == "cpu":
        print(default_cpu_precision().line())


def uses_amp(args: argparse.Namespace) -> bool:
    """``--amp`` as given; by default mixed precision on a CPU with bfloat16 instructions
    (:func:`~faster_rcnn.train.precision.default_cpu_precision`), float32 elsewhere."""
    if args.amp is not None:
        return args.amp
    return torch.device(args.device).type == "cpu" and default_cpu_precision().amp


def uses_channels_last(args: argparse.Namespace, config: FasterRCNNConfig) -> bool:
    """``--channels-last`` as given; by default the layout measured faster for the
    backbone on the device (:func:`~faster_rcnn.train.memory_layout.default_memory_layout`)."""
    if args.channels_last is not None:
        return args.channels_last
    return default_memory_layout(config.backbone.name, torch.device(args.device)).channels_last


def expects_pretrained_backbone(config: FasterRCNNConfig) -> bool:
    """Whether the backbone freezes batch norm or early stages, as fine-tuning does."""
    backbone = config.backbone
    spec = BACKBONES.get(backbone.name)
    frozen_stages = spec is not None and backbone.resolved_trainable_layers() != spec.stages
    return backbone.frozen_batch_norm or frozen_stages


def fit_and_save(
    trainer: Trainer, out: Path, resume: bool = False, box_head_trained: bool = True
) -> list[dict[str, float]]:
    """Run the trainer (checkpoints and metrics under ``out``), then write the model file
    (marked when the trainer left its box head untrained)."""
    start = time.perf_counter()
    history = trainer.fit(resume=resume)
    skipped = (
        f" ({trainer.skipped_steps} skipped: non-finite loss or gradient)"
        if trainer.skipped_steps
        else ""
    )
    seconds = time.perf_counter() - start
    resumed = f", resumed at step {trainer.resumed_at}" if trainer.resumed_at is not None else ""
    print(f"{trainer.stage}: {counted(len(history), 'step')} in {seconds:.0f} s{resumed}{skipped}")
    if trainer.unreadable.files:
        print(f"{trainer.stage}: {trainer.unreadable.summary()}")
    save_model(trainer.model, out / MODEL_FILE, box_head_trained)
    return history


def train_alternating_scheme(
    args: argparse.Namespace,
    config: FasterRCNNConfig,
    dataset: Sequence[Sample],
    train_cfg: TrainConfig,
) -> None:
    """The paper's four steps, ``--steps`` split among them 2:1:2:1 (at least 4,
    checked); the model is saved, and the steps each ran said."""
    # One budget for the four steps, shared 2:1:2:1, rather than --minutes for each.
    base = train_cfg.replace(max_seconds=None)
    # Without --steps, a bound --minutes ends the run before: a step each at the least.
    total = max(train_cfg.steps, len(STAGES))
    warn_without_backbone_weights(args, config)
    start = time.perf_counter()
    result = train_alternating(
        config,
        dataset,
        AlternatingConfig.proportional(total, base=base, init_seed=args.seed),
        backbone_weights=args.weights,
        device=args.device,
        out_dir=args.out,
        resume=args.resume,
        progress=True,
        max_seconds=train_cfg.max_seconds,
        channels_last=uses_channels_last(args, config),
        on_weights=print,  # before step 1, as the other schemes say it
    )
    ran = {stage: len(getattr(result, stage)) for stage in STAGES}
    each = ", ".join(f"{stage} {steps}" for stage, steps in ran.items())
    seconds = time.perf_counter() - start
    # A resumed run's histories hold the steps before it too; the clock is this run's.
    timed = f", this run's part in {seconds:.0f} s" if args.resume else f" in {seconds:.0f} s"
    print(f"alternating: {counted(sum(ran.values()), 'step')} ({each}){timed}")
    if result.unreadable.files:
        print(f"alternating: {result.unreadable.summary()}")
    save_model(result.model, args.out / MODEL_FILE)
