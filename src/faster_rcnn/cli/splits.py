"""Which images a command takes from ``--data``: a split, or the part of a dataset
without splits that ``--val-fraction`` holds out (see :mod:`faster_rcnn.data.holdout`).

Training takes ``train``, and ``val`` with it where the data keeps a ``test`` split
apart from both: Pascal VOC's ``trainval`` convention, which detectron2 and mmdetection
follow too. ``train`` never looks at validation images, so they would go unused
otherwise. Data with one split trains on it where ``train`` finds it (``train2017``),
else where ``--split`` names it (``val2017``), and ``--val-fraction`` holds part of it
out even where it is a validation split: it is no split kept from training. The splits
trained on are written to ``<--out>/training_splits.json``, and ``evaluate`` warns when
asked to score one of them.

These records are written as a fresh run begins, once its data is read and checked (a
resumed run's with its model file, once checked against its checkpoints), and an earlier
run's record that a run does not rewrite is removed then: ``evaluate`` reads the records
of a run's folder as those of its checkpoints and of its model file, so they must always be
those of the run that wrote them, not of one that failed to start, nor of an earlier one.
Until a run that began replacing a finished one finishes, they are not read as the
finished run's model file's (:func:`~.unfinished.records_folder`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..counted import counted
from ..data.dataset import DetectionDataset
from ..data.holdout import (
    SPLIT_FILE,
    Subset,
    held_out_of,
    holdout_indices,
    item_keys,
    read_split,
    split_record,
)
from ..data.joined import JoinedDataset
from ..data.open import GENERATED, DatasetLayout, find_layout, is_generated
from ..data.repeat_factor import REPEAT_FACTORS_FILE
from .arguments import open_fraction, random_seed
from .unfinished import records_folder

TRAINING_SPLITS_FILE = "training_splits.json"
# What a training run records beside its model file (file name: its JSON content).
Records = dict[str, dict[str, Any]]
RECORD_FILES = (TRAINING_SPLITS_FILE, SPLIT_FILE, REPEAT_FACTORS_FILE)


def add_holdout_arguments(parser: argparse.ArgumentParser, held_out: str) -> None:
    """``--val-fraction`` and ``--split-seed``; ``held_out`` ends the help of
    ``--val-fraction``: what the command does with the images it holds out."""
    parser.add_argument(
        "--val-fraction",
        type=open_fraction,
        metavar="F",
        help="hold out this fraction of the images for evaluation (for data without "
        f"splits, or with train and test alone: of train); {held_out}",
    )
    parser.add_argument(
        "--split-seed", type=random_seed, default=0, help="which images --val-fraction holds out"
    )


def check_split_seed(args: argparse.Namespace) -> None:
    """Refuse a ``--split-seed`` without the ``--val-fraction`` it draws."""
    if args.split_seed and args.val_fraction is None:
        raise ValueError(
            "--split-seed has no effect without --val-fraction: it draws the images "
            "--val-fraction holds out"
        )


def check_val_fraction(args: argparse.Namespace, layout: DatasetLayout) -> None:
    """Refuse ``--val-fraction`` on data (``layout``, of ``--data``) with a validation
    split of its own (:func:`_validation_split`): it would hold out part of what training
    takes (``train``, or ``train`` and ``val``), images that ``evaluate`` does not score
    on such data (it scores ``test`` or ``val``), so it is almost surely a mistake.

    Raises:
        ValueError: the data has a validation split.
    """
    if args.val_fraction is None:
        return
    split = _validation_split(layout)
    if split is None:
        return
    images = len(layout.opener(split, None))
    raise ValueError(
        f"--val-fraction {args.val_fraction:g}: {args.data} has a validation split of its "
        f"own, {split} ({counted(images, 'image')}): --val-fraction is for data "
        "without one (evaluate scores the data's own splits, not images held out of train): "
        "leave it out"
    )


def check_split_name(
    layout: DatasetLayout, split: str | None, meaningful: Sequence[str], hint: str
) -> None:
    """Refuse a ``--split`` (``None``: not given) other than the ``meaningful`` ones on
    data without splits, where it names no part of the images (``hint`` says what to do
    instead): such data gives all its images for any name, so a ``--split test`` or a typo
    silently took them all.

    Raises:
        ValueError: ``layout`` has no splits and ``split`` is not among ``meaningful``.
    """
    if split is None or layout.splits or split in meaningful:
        return
    raise ValueError(f"--split {split}: {layout.path} ({layout.format}) has no splits; {hint}")


def training_images(args: argparse.Namespace) -> tuple[DetectionDataset, Records]:
    """The ``--split`` of ``--data`` (default: :func:`default_training_splits`), less what
    ``--val-fraction`` holds out; and the records of both (``training_splits.json`` for
    data with splits, ``split.json`` for a held-out part) for :func:`write_records` to
    write into ``--out`` as the run begins. On data without splits, ``--split`` can
    only be ``train`` (all the images, as by default); ``--val-fraction`` is refused on
    data with a validation split (:func:`check_val_fraction`), checked on the layout
    found once here."""
    layout = layout_saying_what_is_left_out(args.data)
    check_val_fraction(args, layout)
    check_split_name(
        layout, args.split, ("train",), "train takes all its images: leave --split out"
    )
    splits = (args.split,) if args.split else _checked_default_splits(layout)
    dataset, trained_on = _open_training_splits(layout, splits)
    data = _data_key(args.data)
    records: Records = {}
    if layout.splits:
        records[TRAINING_SPLITS_FILE] = {"data": data, "splits": trained_on}
    if args.val_fraction is None:
        if len(layout.splits) < 2:
            which = f"with one split, {trained_on[0]}" if layout.splits else "without splits"
            print(
                f"{args.data}: {layout.format} {which}: training on all "
                f"{counted(len(dataset), 'image')} (--val-fraction F holds some out for "
                "evaluate)"
            )
        return dataset, records
    # check_val_fraction has refused data with a val split: one split here, if any.
    held_from = trained_on[0] if layout.splits else None
    _check_enough_to_hold_out(
        args, dataset, f"{args.data} ({held_from})" if held_from else args.data
    )
    fraction, seed = args.val_fraction, args.split_seed
    parts, records[SPLIT_FILE] = split_record(data, dataset, fraction, seed, held_from)
    scored = "; evaluate --split val scores them" if layout.splits else ""
    print(
        f"{args.data}: {len(parts['val'])} of {counted(len(dataset), 'image')} held out for "
        "evaluation "
        f"(--val-fraction {args.val_fraction:g}, --split-seed {args.split_seed}), listed in "
        f"{args.out / SPLIT_FILE} with the model{scored}"
    )
    return Subset(dataset, parts["train"]), records


def _check_enough_to_hold_out(
    args: argparse.Namespace, dataset: DetectionDataset, source: str
) -> None:
    """Refuse ``--val-fraction`` on ``dataset`` (``source``, of ``--data``) of fewer than
    two images: one is held out and one left to train on (:func:`holdout_indices`)."""
    if len(dataset) < 2:
        raise ValueError(
            f"--val-fraction {args.val_fraction:g}: {source} holds "
            f"{counted(len(dataset), 'image')}, and two are needed to hold one out and train "
            "on the other: add images, or leave --val-fraction out to take them all"
        )


def layout_saying_what_is_left_out(data: str) -> DatasetLayout:
    """:func:`find_layout` of ``data``, printing a note for each split it leaves out for
    holding no image (an empty ``test.txt``): the commands that take a split from it say
    why that one is not there, as ``data`` does."""
    layout = find_layout(data)
    for why in layout.left_out.values():
        print(f"note: {why}: left out")
    return layout


def write_records(out: Path, records: Mapping[str, dict[str, Any]]) -> None:
    """Write a training run's ``records`` (file name: content, of :data:`RECORD_FILES`)
    into its folder ``out``, and remove an earlier run's record that ``records`` lacks:
    ``evaluate`` reads the splits' as those of the run's checkpoints and model file
    (:func:`trained_data`, :func:`evaluation_images`)."""
    for name in RECORD_FILES:
        file = out / name
        if name in records:
            file.write_text(json.dumps(records[name], indent=1))
        else:
            file.unlink(missing_ok=True)


def default_training_splits(layout: DatasetLayout) -> tuple[str, ...]:
    """``("train", "val")`` when ``layout`` has a test split and a validation split (files,
    not generated data, whose validation and test images are the same), else
    ``("train",)``."""
    if layout.format in GENERATED or not all(_has_split(layout, s) for s in ("test", "val")):
        return ("train",)
    return ("train", "val")


def _checked_default_splits(layout: DatasetLayout) -> tuple[str, ...]:
    """:func:`default_training_splits`, ``train`` among them checked to fit a split.

    Raises:
        ValueError: no split fits ``train`` (``val2017`` alone): ``--split`` must name one,
            as the error does (:func:`_split_to_train_on`).
    """
    try:
        layout.resolve("train")
    except ValueError as error:
        raise ValueError(f"{error}: {_split_to_train_on(layout)}") from None
    return default_training_splits(layout)


def _split_to_train_on(layout: DatasetLayout) -> str:
    """The ``--split`` to pass where none of ``layout``'s splits fits ``train``: the only
    one (a validation split, most likely, so ``--val-fraction`` to keep some for
    ``evaluate``), or one of them."""
    if len(layout.splits) == 1:
        return (
            f"--split {layout.splits[0]} trains on it (add --val-fraction 0.2 to hold a fifth "
            "of it out: evaluate has no other split to score)"
        )
    return f"name the split to train on: {_split_options(layout)}"


def _split_options(layout: DatasetLayout) -> str:
    """``"--split train or --split val"``: an option for each of ``layout``'s splits."""
    return " or ".join(f"--split {split}" for split in layout.splits)


def _validation_split(layout: DatasetLayout) -> str | None:
    """The validation split of ``layout`` that training leaves for ``evaluate`` to score;
    ``None`` where there is none, or where it is the only split (``val2017`` alone), which
    is what ``train --split`` can take and ``--val-fraction`` hold part of out."""
    if len(layout.splits) < 2 or not _has_split(layout, "val"):
        return None
    return layout.resolve("val")


def _has_split(layout: DatasetLayout, split: str) -> bool:
    if not layout.splits:
        return False
    try:
        layout.resolve(split)
    except ValueError:
        return False
    return True


def _open_training_splits(
    layout: DatasetLayout, splits: Sequence[str]
) -> tuple[DetectionDataset, list[str]]:
    """The first of ``splits``, joined by the others where their classes agree; and the
    names of the splits it holds."""
    first = layout.open(splits[0])
    parts, names = [first], [layout.resolve(splits[0])]
    for split in splits[1:]:
        try:
            parts.append(layout.open(split, first.class_names))
        except ValueError as error:
            print(f"{layout.path}: {split} not trained on: {error}")
            continue
        names.append(layout.resolve(split))
    if len(parts) == 1:
        return first, names
    counts = " + ".join(f"{len(part)} {name}" for part, name in zip(parts, names, strict=True))
    print(
        f"{layout.path}: training on {counts} images; test is kept for evaluate "
        f"(--split {splits[0]} trains on {splits[0]} alone)"
    )
    return JoinedDataset(parts), names


def _data_key(data: str) -> str:
    """``--data`` as training and evaluation both name it: the absolute path of a file
    dataset, the name of a generated one."""
    return str(Path(data).resolve()) if Path(data).exists() else data


def trained_data(model: Path, use: str = "score") -> str:
    """The dataset the training run of ``model`` was trained on, as its
    ``training_splits.json`` (or the ``split.json`` of ``--val-fraction``) names it;
    ``use`` says what the command does with it, for the error.

    Raises:
        ValueError: neither file of the run (:func:`~.unfinished.records_folder`) names a
            dataset that is still there.
    """
    folder, gone = records_folder(model), None
    for name in (TRAINING_SPLITS_FILE, SPLIT_FILE):
        file = model_record(model, folder, name)
        try:
            data = json.loads(file.read_text()).get("data") if file is not None else None
        except (ValueError, AttributeError):  # not JSON, or not an object
            data = None
        if isinstance(data, str) and (Path(data).exists() or is_generated(data)):
            return data
        if isinstance(data, str) and gone is None:
            gone = f"{file} names {data}, which is not there from here"
    files = f"{TRAINING_SPLITS_FILE} or {SPLIT_FILE}"
    where = "beside" if folder in (None, model.parent) else f"in {folder}, the run of"
    nothing = f"Nothing {where} {model} names the one it was trained on ({files})"
    raise ValueError(f"--data: which dataset to {use}? {gone or nothing}")


def model_record(model: Path, folder: Path | None, name: str) -> Path | None:
    """The record ``name`` (of :data:`RECORD_FILES`) of the run that wrote ``model``, in
    ``folder``, that run's (:func:`~.unfinished.records_folder`), where it has one; where
    the one beside ``model`` is that of a run begun after it that did not finish
    (``folder`` ``None``), ``None``, with a note."""
    if folder is not None:
        file = folder / name
        return file if file.is_file() else None
    if (model.parent / name).is_file():
        print(
            f"note: {model.parent / name} is that of a run begun after {model} that did not "
            "finish: not read as the model's"
        )
    return None


def test_or_val(layout: DatasetLayout) -> str:
    """``test`` when the layout has such a split (or none at all), else ``val``.

    Raises:
        ValueError: the layout has neither (only ``train``, say): ``--split`` must name
            one, as the error does.
    """
    try:
        return layout.resolve("test")
    except ValueError as no_test:
        try:
            split = layout.resolve("val")
        except ValueError:
            named = _split_options(layout)
            raise ValueError(f"{no_test} (nor 'val'): name the split to score, {named}") from None
    print(f"{layout.path} has no test split: using val")
    return split


def _scored_split(layout: DatasetLayout, val_fraction: float | None) -> str:
    """The split ``evaluate`` scores without ``--split``: with ``--val-fraction`` on data
    with splits (and no validation split: :func:`check_val_fraction`), the split ``train
    --val-fraction`` holds part of out (``train``, or the only split); else
    :func:`test_or_val`."""
    if val_fraction is not None and layout.splits:
        return layout.resolve("train" if len(layout.splits) > 1 else layout.splits[0])
    return test_or_val(layout)


def evaluation_images(
    args: argparse.Namespace, class_names: Sequence[str] | None
) -> DetectionDataset:
    """The ``--split`` of ``--data`` (default: ``test``, else ``val``), labelled in the
    model's class order ``class_names`` (a class of the split's that the model lacks comes
    after them, with a warning); for data without splits, the images held out by
    ``--val-fraction`` (with a warning where the model's ``split.json`` trained on some),
    else by the ``split.json`` of ``--model``'s run (:func:`~.unfinished.records_folder`;
    its ``train`` part with ``--split train``), else all of them (with a warning). On data
    with splits, ``--val-fraction`` is what ``train`` takes it for: refused where the data
    has a validation split (:func:`check_val_fraction`), else it holds out part of
    ``train`` (by default), the images ``train --val-fraction`` held out; and where such
    data has no ``val``, the ``val`` the model's ``split.json`` held out of a split stands
    in for one."""
    layout = layout_saying_what_is_left_out(args.data)
    check_val_fraction(args, layout)
    folder = records_folder(args.model)
    file = model_record(args.model, folder, SPLIT_FILE)
    _check_split_without_splits(layout, args, file, (folder or args.model.parent) / SPLIT_FILE)
    held_from = _held_out_of(layout, args.split, file)
    split = held_from or args.split or _scored_split(layout, args.val_fraction)
    dataset = layout.open(split, class_names, append_unknown=True)
    if class_names is not None:
        _warn_of_untrained_classes(f"{args.data} ({split})", dataset, class_names)
    record = model_record(args.model, folder, TRAINING_SPLITS_FILE)
    if args.val_fraction is not None:
        source = f"{args.data} ({split})" if layout.splits else args.data
        _check_enough_to_hold_out(args, dataset, source)
        held = holdout_indices(item_keys(dataset), args.val_fraction, args.split_seed)["val"]
        print(
            f"{source}: scoring the {len(held)} of {counted(len(dataset), 'image')} held out by "
            f"--val-fraction {args.val_fraction:g} --split-seed {args.split_seed}"
        )
        if file is not None:
            _warn_if_held_images_trained_on(file, dataset, held)
        elif layout.splits:  # trained on the whole split, if on it at all
            _warn_if_trained_on(record, args.data, layout, split)
        return Subset(dataset, held)
    if held_from:
        held_part = read_split(file, dataset, "val")
        apart = f" apart from {held_from}" if _has_split(layout, "val") else ""
        print(
            f"{args.data} has no val split{apart}: scoring the "
            f"{counted(len(held_part), 'image')} of {held_from} held out in {file}"
        )
        return held_part
    if layout.splits:
        _warn_if_trained_on(record, args.data, layout, split)
        return dataset
    if file is not None:
        return _part_of_split_file(file, dataset, args)
    print(
        f"faster-rcnn: warning: {args.data} has no splits and the run of {args.model} left no "
        f"{SPLIT_FILE}: scoring all {counted(len(dataset), 'image')}, which training may have "
        "seen",
        file=sys.stderr,
    )
    return dataset


def _check_split_without_splits(
    layout: DatasetLayout, args: argparse.Namespace, file: Path | None, written: Path
) -> None:
    """On data without splits, refuse a ``--split`` that names no images there: ``train``
    is all of them (or the ``train`` part of the model's ``split.json``, ``file``), and
    ``val`` the images ``--val-fraction`` or ``file`` holds out; without either, ``val``
    names none (``written``: where ``train --val-fraction`` writes one)."""
    if args.val_fraction is not None:
        hint = "--val-fraction scores the images it holds out of all of them: leave --split out"
    elif file is not None:
        hint = f"{file} holds 'train' and 'val' of it"
    else:
        hint = (
            "--split train scores all its images; there is no 'val' without --val-fraction "
            f"F (given here, or to train, which writes {written})"
        )
    held = args.val_fraction is not None or file is not None
    check_split_name(layout, args.split, ("train", "val") if held else ("train",), hint)


def _held_out_of(layout: DatasetLayout, split: str | None, file: Path | None) -> str | None:
    """The split of ``layout`` whose images the model's ``split.json`` (``file``) held
    part of out, where those are what evaluate should score: data with splits but no
    ``val`` of its own (:func:`_validation_split`), asked for ``--split val``, or for
    nothing and without ``test``; else ``None``."""
    if not layout.splits or file is None or _validation_split(layout) is not None:
        return None
    if split != "val" and (split is not None or _has_split(layout, "test")):
        return None
    held_from = held_out_of(file)
    return held_from if held_from is not None and _has_split(layout, held_from) else None


def _warn_of_untrained_classes(
    source: str, dataset: DetectionDataset, class_names: Sequence[str]
) -> None:
    """Warn when ``dataset`` (``source``) has classes after the model's ``class_names``."""
    untrained = list(dataset.class_names[len(class_names) :])
    if untrained:
        print(
            f"faster-rcnn: warning: {source} has classes the model was not trained on, "
            f"{untrained}: they are scored as never found (AP 0 where they have a box)",
            file=sys.stderr,
        )


def _part_of_split_file(file: Path, dataset: DetectionDataset, args: argparse.Namespace) -> Subset:
    """The part of ``dataset`` (data without splits) that ``--split`` names in ``file``, the
    model's ``split.json``: its held-out ``val`` by default, or its ``train`` (with a
    warning: the model was trained on it)."""
    part = args.split or "val"  # train or val: _check_split_without_splits
    subset = read_split(file, dataset, part)
    if part == "val":
        print(
            f"{args.data} has no splits: scoring the {counted(len(subset), 'image')} held out "
            f"in {file}"
        )
    else:
        print(
            f"faster-rcnn: warning: scoring the {counted(len(subset), 'image')} of {args.data} "
            f"the model was trained on ({file}): its scores there are not held out",
            file=sys.stderr,
        )
    return subset


def _warn_if_held_images_trained_on(file: Path, dataset: DetectionDataset, held: list[int]) -> None:
    """Warn when images held out by a ``--val-fraction`` given to ``evaluate`` are among
    those the model's ``split.json`` (``file``) trained on."""
    try:
        trained = set(read_split(file, dataset, "train").indices)
    except ValueError:
        return  # another dataset's split: not ours to judge
    seen = len(trained.intersection(held))
    if seen:
        print(
            f"faster-rcnn: warning: the model was trained on {seen} of the "
            f"{counted(len(held), 'image')} scored ({file}): give the --val-fraction and "
            "--split-seed training was given",
            file=sys.stderr,
        )


def _warn_if_trained_on(record: Path | None, data: str, layout: DatasetLayout, split: str) -> None:
    """Warn when the training run of the model (its ``training_splits.json``, ``record``,
    if any) trained on the ``split`` of ``data`` about to be scored."""
    if record is None:
        return
    try:
        trained = json.loads(record.read_text())
        same_data = trained["data"] == _data_key(data)
        splits = list(trained["splits"])
    except (OSError, ValueError, TypeError, KeyError):
        return  # not ours to judge: scoring goes on
    if same_data and layout.resolve(split) in splits:
        print(
            f"faster-rcnn: warning: the model was trained on the {split} split of {data} "
            f"({record}): its scores there are not held out",
            file=sys.stderr,
        )
