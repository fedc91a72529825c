"""``faster-rcnn anchors``: how well a preset's or a model's anchors cover a dataset, as a
table, a picture and JSON; with ``--fit``, anchors fitted to the dataset on the model's
own grid, written as a file ``train --anchors`` takes."""

from __future__ import annotations

import argparse
import shlex
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from torch import Tensor

from ..anchor_file import scale_notes, with_anchor_file, write_anchor_file
from ..config import BACKBONES, FasterRCNNConfig, RPNConfig
from ..counted import counted
from ..data.dataset import Sample, image_name_of
from ..data.holdout import Subset
from ..host_cpus import one_thread
from ..insight.anchor_coverage import (
    ImageBoxes,
    PaddedBatchAnchors,
    dataset_targets,
    measure_anchor_coverage,
    resized_targets,
    unresizable_images,
)
from ..insight.anchor_fit import AnchorFit, check_anchors_per_location, fit_anchors
from ..model import FasterRCNN
from ..models import PRESETS, preset_config
from ..train.checkpoint import load_model, read_model_config
from ..train.recipe import MAX_IMAGES_READ, choose_recipe, object_statistics
from .arguments import (
    add_data_arguments,
    add_image_size_arguments,
    add_returned_layers_argument,
    check_out_folder,
    file_of_flag,
    given_flags,
    open_fraction,
    path_argument,
    positive_int,
    refuse_without_effect,
    size_names,
    with_image_sizes,
)
from .splits import check_split_name, layout_saying_what_is_left_out, trained_data

if TYPE_CHECKING:  # matplotlib, which draws the report, loads only when it is made
    from ..insight.anchor_plots import CoverageReport, StrideRange

FITTED_FILE = "fitted_anchors.json"
UNCOVERED_SHOWN = 5
# A fit that leaves most boxes without an anchor at its IoU: no anchor shape reaches them
# on the model's grid, whose cells are too far apart for them (a plain majority, not a
# measured threshold).
FEW_COVERED = 0.5
# Where the recipe's choices that an anchor file switches off were measured ahead: the
# larger input, the finer maps, and the stride-16 map where it waits for the run's steps.
ENLARGED_ROUND, FINER_MAPS_ROUND, FINER_MAP_STEPS_ROUND = 51, 54, 58


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        "anchors",
        help="how well a preset's anchors cover a dataset's boxes, and anchors fitted to it",
        description="For every ground-truth box, the best IoU of any anchor the RPN trains "
        "on and the number of anchors at or above the positive threshold, by box size and "
        "aspect ratio; a picture (anchors.png) and the numbers (anchors.json) in --out. "
        "With --fit, anchor sizes and ratios that give the most boxes a positive anchor on "
        "the model's own grid, written to --out/fitted_anchors.json for train --anchors.",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--preset", choices=list(PRESETS), default="small", help="its anchors (default: small)"
    )
    source.add_argument("--model", type=path_argument, help="a model.safetensors (its anchors)")
    parser.add_argument("--anchors", type=path_argument, help="an anchor file to measure instead")
    add_returned_layers_argument(
        parser,
        "; of --preset: its anchors measured, or --fit, on every map they give, for train "
        "with the same --returned-layers",
    )
    add_image_size_arguments(parser)
    add_data_arguments(
        parser,
        default_split="train",
        default_data=None,
        data_help="; default: the data --model was trained on, else 'synthetic'",
    )
    parser.add_argument(
        "--max-images",
        type=positive_int,
        help="measure the first N images (default: all; train's recipe, which --fit weighs, "
        f"reads at most {MAX_IMAGES_READ} of them, as train does)",
    )
    parser.add_argument(
        "--out", type=path_argument, default=Path("runs/anchors"), help="default: runs/anchors"
    )
    parser.add_argument("--fit", action="store_true", help="fit anchors to the boxes")
    parser.add_argument(
        "--iou",
        type=open_fraction,
        help="--fit covers boxes at this IoU (default: the RPN's "
        "positive threshold, 0.7 in the paper's rule)",
    )
    parser.add_argument(
        "--per-level",
        action="store_true",
        help="--fit each level's anchors alone; by default one set of shapes is scaled with "
        "the stride on every level, as the RPN's shared head expects",
    )
    parser.add_argument(
        "--anchors-per-location",
        type=positive_int,
        help="--fit: anchors per feature-map location (default: the model's)",
    )
    return parser


# Every tensor here is small (a dataset's boxes, their summaries): a second thread only
# waits for the first (see host_cpus.one_thread).
@one_thread()
def run(args: argparse.Namespace) -> int:
    check_options(args)
    check_out_folder(args.out, "anchors writes")
    # A bad --model or --returned-layers is named before the data is sought.
    if args.model:
        with file_of_flag("--model", args.model):
            config = read_model_config(args.model)
    else:
        config = preset_stages_config(args, 2)
    if args.anchors_per_location is not None:
        max_size = args.max_size or config.transform.max_size
        check_anchors_per_location(args.anchors_per_location, max_size)
    args.data = measured_data(args)
    layout = layout_saying_what_is_left_out(args.data)
    hint = "anchors measures all its images: leave --split out"
    check_split_name(layout, args.split, ("train",), hint)
    dataset = layout.open(args.split)
    model = measured_model(args, dataset.num_classes)
    count = min(len(dataset), args.max_images or len(dataset))
    targets = list(dataset_targets(dataset, count))
    names = [image_name_of(dataset, index) for index in range(count)]
    report = coverage_report(model, targets, names)
    print(f"{counted(len(report.coverage), 'box')} in {counted(count, 'image')}")
    print_unresizable(model, targets, names, size_names(args))
    print(report.coverage.table())
    print_uncovered(report, model.config.rpn)
    picture = report.save(args.out / "anchors.png", f"anchor coverage: {describe(args)}")
    print(f"wrote {picture} and {picture.with_suffix('.json')}")
    if args.fit:
        # The recipe the fit weighs reads the images measured too, not the whole dataset.
        fit_and_report(args, model, targets, names, Subset(dataset, range(count)))
    return 0


def check_options(args: argparse.Namespace) -> None:
    """Refuse ``--returned-layers`` with ``--model`` (whose FPN reads the stages it was
    trained on), ``--fit``'s own options without it (the coverage alone would ignore
    them), and a fit that would write its anchor file over the ``--anchors`` it starts
    from."""
    if args.model:
        stages = given_flags(args, {"--returned-layers": None})
        refuse_without_effect(stages, "with --model: its FPN reads the stages it was trained on")
    if not args.fit:
        unset = {"--iou": None, "--per-level": False, "--anchors-per-location": None}
        refuse_without_effect(given_flags(args, unset), "without --fit (options of the fit)")
    elif args.anchors and Path(args.anchors).resolve() == (args.out / FITTED_FILE).resolve():
        raise ValueError(
            f"--anchors {args.anchors}: --fit would write its fitted anchors over it; give "
            "another --out"
        )


def measured_data(args: argparse.Namespace) -> str:
    """``--data``; by default the data ``--model`` was trained on (saying so), else the
    generated shapes."""
    if args.data is not None:
        return args.data
    if args.model is None:
        return "synthetic"
    data = trained_data(args.model, "measure")
    print(f"measuring {data}, the data {args.model} was trained on (--data names another)")
    return data


def measured_model(args: argparse.Namespace, num_classes: int) -> FasterRCNN:
    """The model whose anchors are measured: ``--model``, or ``--preset`` for the data's
    classes; with ``--anchors`` and the image sizes given in place of its own."""
    if args.model:
        config = load_model(args.model).config
    else:
        # The anchors do not depend on the classes; data without an object has none.
        config = preset_stages_config(args, max(num_classes, 2))
    if args.anchors:
        config = with_anchor_file(config, args.anchors)
    return FasterRCNN.from_config(with_image_sizes(config, args))


def preset_stages_config(args: argparse.Namespace, num_classes: int) -> FasterRCNNConfig:
    """``--preset`` for ``num_classes`` classes, its FPN reading ``--returned-layers`` where
    given (as train builds it: a new stage takes the anchors every level has)."""
    config = preset_config(args.preset, num_classes)
    if args.returned_layers:
        config = config.with_returned_layers(tuple(args.returned_layers))
    return config


def coverage_report(
    model: FasterRCNN, targets: list[ImageBoxes], names: Sequence[str]
) -> CoverageReport:
    """The coverage of the model's anchors over ``targets`` (per image: size, boxes)."""
    from ..insight.anchor_plots import CoverageReport  # matplotlib: not at every start

    coverage = measure_anchor_coverage(model, targets)
    return CoverageReport(
        coverage,
        model.config.anchors,
        level_strides(model, targets),
        model.config.rpn.bg_iou_thresh,
        names,
    )


def level_strides(model: FasterRCNN, targets: list[ImageBoxes]) -> list[StrideRange]:
    """The stride of every anchor level over the padded batches of the images measured,
    down and across: the first image's alone said 64 of raccoon's coarsest level, which
    is 57 to 64 px over its images."""
    grids = PaddedBatchAnchors.of_model(model)
    padded = {image.padded_size for image in resized_targets(model, targets)}
    per_size = [[level.stride for level in grids.grid(size).levels] for size in padded]
    strides: list[StrideRange] = []
    for level in zip(*per_size, strict=True):
        down, across = zip(*level, strict=True)
        strides.append(((min(down), max(down)), (min(across), max(across))))
    return strides


def print_unresizable(
    model: FasterRCNN,
    targets: list[ImageBoxes],
    names: Sequence[str],
    sizes_named: tuple[str, str],
) -> None:
    """One line on the images with boxes left out, too elongated for the model to resize
    (as training and evaluation leave them out), naming the first, and the sizes as
    ``sizes_named``."""
    left_out = unresizable_images(model, targets, sizes_named)
    if not left_out:
        return
    index, _, why = left_out[0]
    boxes = sum(count for _, count, _ in left_out)
    print(
        f"{len(left_out)} of the {counted(len(targets), 'image')} ({counted(boxes, 'box')}) "
        "left out: too elongated for the model to resize, as training and evaluation leave "
        f"them out (the first, {names[index]}: {why})"
    )


def print_uncovered(report: CoverageReport, rpn: RPNConfig) -> None:
    """One line on the boxes no anchor overlaps by the negative threshold, and a few."""
    uncovered = report.uncovered()
    if not uncovered:
        return
    sizes = [box["size"] for box in uncovered]
    share = len(uncovered) / len(report.coverage)
    best = report.coverage.best_iou
    print(
        f"{counted(len(uncovered), 'box')} ({share:.1%}) without an anchor at IoU "
        f"{report.bg_iou_thresh:g} ({background_note(best[best < report.bg_iou_thresh], rpn)}): "
        f"sizes {min(sizes):g} to {max(sizes):g} px resized, median "
        f"{statistics.median(sizes):g}; the worst:"
    )
    for box in uncovered[:UNCOVERED_SHOWN]:
        print(f"  {box['image']} {box['box']} ({box['size']:g} px, best IoU {box['best_iou']:g})")


def background_note(best_iou: Tensor, rpn: RPNConfig) -> str:
    """What the RPN's labels make of the anchors of boxes whose best anchor IoUs,
    ``best_iou``, are under its negative threshold: background, but for those at a box's
    best IoU where the best-anchor rule makes them positive (``allow_low_quality_matches``,
    at an IoU above 0 and at least ``low_quality_min_iou``), as explain labels them."""
    rescued = (best_iou > 0) & (best_iou >= rpn.low_quality_min_iou)
    kept = int(rescued.sum()) if rpn.allow_low_quality_matches else 0
    if kept == 0:
        return "every anchor is background to it"
    rule = "the RPN's best-anchor rule alone makes those positive"
    if kept == len(best_iou):
        return f"every anchor but those at its best IoU is background to it: {rule}"
    return f"every anchor is background to it but those at the best IoU of {kept}: {rule}"


def fit_and_report(
    args: argparse.Namespace,
    model: FasterRCNN,
    targets: list[ImageBoxes],
    names: Sequence[str],
    dataset: Sequence[Sample],
) -> AnchorFit:
    """Fit anchors, print the coverage before and after, write the anchor file and the
    fitted anchors' picture, and say whether to train with them (:func:`train_advice`)."""
    fit = fit_anchors(
        model,
        targets,
        iou=args.iou,
        anchors_per_location=args.anchors_per_location,
        tie_levels=not args.per_level,
    )
    print(
        f"\nfitted on {counted(fit.num_boxes, 'box')}: share with an anchor at IoU >= "
        f"{fit.iou:g} on the model's grid: {fit.covered['start']:.1%} (the model's anchors), "
        f"{fit.covered['kmeans']:.1%} (k-means of box shapes), {fit.covered['fitted']:.1%} "
        "(fitted)"
    )
    if fit.start_kept:
        print(
            "the model's anchors are kept: no fitted ones give more boxes an anchor at IoU "
            f"{fit.iou:g}, or as many with a higher mean best IoU"
        )
    # The same backbone: only the anchors (and the RPN head they size) change.
    fitted_model = FasterRCNN(model.backbone, model.config.replace(anchors=fit.anchors))
    report = coverage_report(fitted_model, targets, names)
    print(report.coverage.table())
    notes = {"fitted_at_iou": fit.iou, "covered": fit.covered, "data": str(args.data)}
    notes |= scale_notes(model.config.transform)  # train warns at another scale
    path = write_anchor_file(args.out / FITTED_FILE, fit.anchors, notes)
    picture = report.save(args.out / "anchors_fitted.png", f"fitted anchors: {describe(args)}")
    print(f"wrote {path} and {picture}; {train_advice(args, model.config, fit, path, dataset)}")
    return fit


def train_advice(
    args: argparse.Namespace,
    config: FasterRCNNConfig,
    fit: AnchorFit,
    path: Path,
    dataset: Sequence[Sample],
) -> str:
    """The command that trains with the anchor file at ``path``, fitted on ``config``'s
    model; first, where the fit still covers few boxes (under :data:`FEW_COVERED`) or
    where ``train`` without the file enlarges the images or reads finer maps for this
    data (a preset measured, not a model), that, and the ``--returned-layers`` that fit
    anchors for its finer maps: one line, or two."""
    # A preset measured is named: fitted on its maps, the file fits no other preset's.
    preset = ["--preset", args.preset] if args.model is None else []
    options = " ".join(
        [
            *preset,
            *stages_options(config),
            *size_options(config),
            "--anchors",
            shlex.quote(str(path)),
        ]
    )
    command = f"faster-rcnn train ... {options}"
    covered = fit.covered["fitted"]
    few = (
        f"the fitted anchors still give only {covered:.1%} of the boxes an anchor at IoU "
        f"{fit.iou:g}: on this grid no anchor shape reaches the rest"
    )
    forgone = recipe_forgone(args, config, fit, dataset) if args.model is None else None
    if forgone is not None:
        lead = f"{few}\n" if covered < FEW_COVERED else ""
        done, finer = forgone
        maps = f"anchors --returned-layers {finer} --fit"
        refit = f", with anchors fitted for its maps ({maps})" if finer else ""
        return f"{lead}{done}: train without --anchors{refit}, or with them anyway: {command}"
    if covered < FEW_COVERED:
        return f"{few}; a larger input or finer maps reach more; to train with them: {command}"
    return f"train with them: {command}"


def recipe_forgone(
    args: argparse.Namespace, config: FasterRCNNConfig, fit: AnchorFit, dataset: Sequence[Sample]
) -> tuple[str, str] | None:
    """What ``train``'s recipe does for this data on the preset's anchors (``config``'s
    model, at the image sizes given) that the fitted anchors switch off - a larger input,
    finer maps (in a run of enough steps, where the rule waits for them) - with where it
    was measured ahead, and the stages of those maps (``""`` where none); ``None`` where
    nothing."""
    preset = config.replace(anchors=preset_stages_config(args, 2).anchors)
    given = {"transform.min_size"} if args.min_size else set()
    given |= {"backbone.returned_layers"} if args.returned_layers else set()
    given |= {"transform.max_size"} if args.max_size else set()
    stats = object_statistics(dataset, preset)
    unfiled, choices = choose_recipe(preset, stats, given)
    filed, _ = choose_recipe(preset.replace(anchors=fit.anchors), stats, given | {"anchors"})
    done, rounds = [], []
    size, enlarged = preset.transform.min_size[-1], unfiled.transform.min_size[-1]
    if enlarged > max(size, filed.transform.min_size[-1]):
        done.append(f"enlarges the images {enlarged / size:.2f} times")
        rounds.append(ENLARGED_ROUND)
    stages = filed.backbone.resolved_returned_layers() or ()
    finer = unfiled.backbone.resolved_returned_layers() or ()
    added = [str(k) for k in finer if k not in stages]
    if added:
        rule = next(c for c in choices if c.setting == "backbone.returned_layers")
        # Asked without the run's steps, the recipe marks a map that pays only in a run of
        # enough of them (min_steps).
        runs = f" (in a run of {rule.min_steps} steps or more)" if rule.min_steps else ""
        named = f"stage{'s' * (len(added) > 1)} {' and '.join(added)}"
        done.append(f"reads backbone {named} too{runs}")
        rounds.append(FINER_MAP_STEPS_ROUND if rule.min_steps else FINER_MAPS_ROUND)
    if not done:
        return None
    measured = f"round{'s' * (len(rounds) > 1)} {' and '.join(map(str, rounds))}"
    return (
        f"for this data train without --anchors {' and '.join(done)}, which an anchor file "
        "switches off, each measured ahead on small objects (benchmarks/recipe_ab.md, "
        f"{measured})",
        " ".join(map(str, finer)) if added else "",
    )


def stages_options(config: FasterRCNNConfig) -> list[str]:
    """``--returned-layers`` of the measured model where its FPN reads other backbone
    stages than its backbone's default (a model the recipe gave finer maps, or the
    preset with ``--returned-layers``): the anchor file holds one level a map, which a
    model of the default stages would refuse."""
    stages = config.backbone.resolved_returned_layers()
    spec = BACKBONES.get(config.backbone.name)
    if stages is None or spec is None or stages == spec.returned_layers:
        return []
    return ["--returned-layers", *map(str, stages)]


def size_options(config: FasterRCNNConfig) -> list[str]:
    """``--min-size`` and ``--max-size`` of the measured model: the anchors fit its boxes
    resized at them, and ``train`` at other sizes (a preset's, or the recipe's) warns."""
    transform = config.transform
    return ["--min-size", *map(str, transform.min_size), "--max-size", str(transform.max_size)]


def describe(args: argparse.Namespace) -> str:
    """``data (split), model or preset (stages)`` for a title."""
    source = args.model or f"preset {args.preset}"
    if args.returned_layers:  # of a preset alone
        source += f" (stages {' '.join(map(str, args.returned_layers))})"
    anchors = f", anchors {args.anchors}" if args.anchors else ""
    return f"{args.data} ({args.split}), {source}{anchors}"
