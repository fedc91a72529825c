"""Option types and the options several commands share."""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch

from ..config import MIN_TRAIN_WINDOW, FasterRCNNConfig
from ..insight.pictures import FORMATS
from ..model import FasterRCNN
from ..test_time_flips import TEST_TIME_FLIPS, TestTimeFlips
from ..train.checkpoint import MODEL_FILE, UnfinishedRunError, read_model_config
from ..train.recipe import FINER_MAP_ANY_STEPS_SIDE, FINER_MAP_OBJECTS, FINER_MAP_STEPS, SMALL_SIDE
from ..windowed_detection import DEFAULT_OVERLAP, WindowedDetection
from .out_lock import lock_holder

# Suffixes of the files the commands write or read, which no one gives a folder: an --out
# of a command that writes a folder, not there yet, with one of them names a file.
FILE_SUFFIXES = frozenset({*FORMATS, ".json", ".safetensors", ".onnx", ".pt", ".pth"})


def refuse_without_effect(flags: Sequence[str], context: str) -> None:
    """Refuse the options ``flags`` given (none: nothing to refuse), which have no effect
    in ``context`` (``"without --fit: ..."``), in one line naming them."""
    if flags:
        verb = "has" if len(flags) == 1 else "have"
        raise ValueError(f"{' and '.join(flags)} {verb} no effect {context}")


def given_flags(args: argparse.Namespace, unset: dict[str, object]) -> list[str]:
    """The flags of ``unset`` (``{"--flag": its value when not given}``) that ``args``
    sets to another value."""
    return [flag for flag, value in unset.items() if getattr(args, flag_dest(flag)) != value]


def parser_defaults(parser: argparse.ArgumentParser, flags: Sequence[str]) -> dict[str, object]:
    """``{"--flag": its default}`` of ``flags``, as ``parser`` declares them: the
    ``unset`` of :func:`given_flags`, without a second copy of the defaults to keep in
    step."""
    return {flag: parser.get_default(flag_dest(flag)) for flag in flags}


def flag_dest(flag: str) -> str:
    """The attribute ``--flag-name`` is parsed into: ``flag_name``."""
    return flag.removeprefix("--").replace("-", "_")


def add_data_arguments(
    parser: argparse.ArgumentParser,
    default_split: str | None,
    chosen: str = "test, else val",
    default_data: str | None = "synthetic",
    data_help: str = "",
) -> None:
    """``--data`` (a dataset, format auto-detected; ``default_data`` when not given, as
    ``data_help`` adds) and ``--split`` (``None``: the command chooses, as ``chosen``
    says)."""
    parser.add_argument(
        "--data",
        type=non_empty,
        default=default_data,
        help="'synthetic', 'slides' (generated: see faster_rcnn.data.slides), or a Pascal "
        f"VOC, COCO, YOLO, YOLO Keras TXT, CSV, VIA, CreateML, LabelMe or CVAT dataset "
        f"(format auto-detected){data_help}",
    )
    chosen = chosen if default_split is None else default_split
    parser.add_argument("--split", type=non_empty, default=default_split, help=f"default: {chosen}")


def add_image_size_arguments(
    parser: argparse.ArgumentParser, default: str = "the preset's"
) -> None:
    """``--min-size`` and ``--max-size``: the resize, in place of ``default``'s."""
    parser.add_argument(
        "--min-size",
        type=positive_int,
        nargs="+",
        help=f"shorter image side(s) (default: {default})",
    )
    parser.add_argument(
        "--max-size", type=positive_int, help=f"longer image side at most (default: {default})"
    )


def with_image_sizes(config: FasterRCNNConfig, args: argparse.Namespace) -> FasterRCNNConfig:
    """``config`` with the ``--min-size`` / ``--max-size`` given; a warning says when a
    shorter side given is above the longer side's cap, so that the cap alone decides."""
    if args.min_size:
        config = config.replace(transform={"min_size": tuple(args.min_size)})
    if args.max_size:
        config = config.replace(transform={"max_size": args.max_size})
    max_size = config.transform.max_size
    above = [str(size) for size in config.transform.min_size if size > max_size]
    if above and (args.min_size or args.max_size):
        some = "" if len(above) == len(config.transform.min_size) else "at those sizes "
        warnings.warn(
            f"--min-size {' '.join(above)} above --max-size {max_size}: {some}each image is "
            f"resized so that its longer side is {max_size}",
            stacklevel=2,
        )
    return config


def size_names(args: argparse.Namespace) -> tuple[str, str]:
    """How a message names the resize's two sizes: ``--min-size`` / ``--max-size`` where
    those flags set them, else the config's fields (the preset's or the recipe's)."""
    return (
        "--min-size" if args.min_size else "min_size",
        "--max-size" if args.max_size else "max_size",
    )


# The sizes a model file holds, which no flag of evaluate, predict or explain sets.
MODEL_SIZE_NAMES = ("the model's min_size", "max_size")


def add_returned_layers_argument(parser: argparse.ArgumentParser, effect: str = "") -> None:
    """``--returned-layers STAGE ...``: the backbone stages the FPN reads in place of the
    preset's (``effect``: what else they do in the command, ``"; ..."``)."""
    parser.add_argument(
        "--returned-layers",
        type=whole_number,
        nargs="+",
        metavar="STAGE",
        help="the backbone stages the FPN reads (torchvision's returned_layers; ResNets: "
        "1-4; MobileNets: 0-5, default 4 5, both stride 32; 3 adds a stride-16 map, which "
        f"the recipe chooses where a class is under {SMALL_SIDE} px once resized and images "
        f"hold fewer than {FINER_MAP_OBJECTS} objects (where it is {FINER_MAP_ANY_STEPS_SIDE} "
        f"px or more, in a run of {FINER_MAP_STEPS} steps or more), and 2 3 stride-8 and "
        "stride-16 maps, which it chooses where the smallest class is under the smallest "
        f"anchor once resized: benchmarks/recipe_ab.md, rounds 48, 49, 54 and 58){effect}",
    )


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    """``--device``: where the model runs (:func:`device_name`)."""
    parser.add_argument(
        "--device",
        type=device_name,
        default="cpu",
        help="where the model runs: cpu (default), cuda, cuda:N or mps",
    )


def add_strict_argument(parser: argparse.ArgumentParser) -> None:
    """``--strict``: stop at an unreadable image instead of skipping it."""
    parser.add_argument(
        "--strict",
        action="store_true",
        help="stop at an unreadable image (default: warn, skip it, count it in the summary)",
    )


def add_tta_argument(parser: argparse.ArgumentParser) -> None:
    """``--tta FLIPS``: test-time flips (:class:`~faster_rcnn.test_time_flips.TestTimeFlips`)."""
    parser.add_argument(
        "--tta",
        choices=list(TEST_TIME_FLIPS),
        help="test-time augmentation: detect each image as it is and mirrored, and keep "
        "the best of the pooled boxes with the model's own NMS; 'horizontal' mirrors "
        "left-right (2 views), 'vertical' top-bottom (2), 'both' both ways (4 views: for "
        "images with no up, such as slides); a view costs a detection (default: none)",
    )


def lower_score_threshold(model: FasterRCNN, score: float | None, doing: str) -> None:
    """Lower the box head's score threshold to ``score`` (a command's ``--score``) where
    it is below it, as ``evaluate --score-thresh`` lowers it, and say so, ``doing`` it
    ("drawing detections"): the head returns no detection under its own (0.05 for every
    preset), so those ``--score`` asked for were left out without a word."""
    if score is None or score >= model.roi_heads.score_thresh:
        return
    print(
        f"{doing} down to score {score:g} (the model's threshold: {model.roi_heads.score_thresh:g})"
    )
    model.roi_heads.score_thresh = score


def with_tta(
    model: FasterRCNN | WindowedDetection, args: argparse.Namespace
) -> FasterRCNN | WindowedDetection | TestTimeFlips:
    """``model``, or with ``--tta`` its :class:`TestTimeFlips`, saying what runs."""
    if args.tta is None:
        return model
    detector = TestTimeFlips(model, args.tta)
    print(detector.describe())
    return detector


def add_windows_arguments(parser: argparse.ArgumentParser) -> None:
    """``--windows [H W]`` and ``--window-overlap F``: detection in windows
    (:class:`~faster_rcnn.windowed_detection.WindowedDetection`)."""
    parser.add_argument(
        "--windows",
        type=window_side,
        nargs="*",
        metavar=("H", "W"),
        help="detect each resized image in overlapping windows of at most H x W px (turned "
        "to its orientation), one at a time, each with the model's proposal limits for its "
        "share of the pixels (at least 1000, at most the model's), "
        "and merge them with the model's own NMS; no values: the window the model was "
        "trained on (train --train-window) (default: the whole image at once)",
    )
    parser.add_argument(
        "--window-overlap",
        type=overlap_fraction,
        metavar="F",
        help=f"with --windows: neighbouring windows overlap by at least F of a window's "
        f"side, 0 <= F < 1 (default {DEFAULT_OVERLAP:g})",
    )


def check_window_flags(args: argparse.Namespace) -> None:
    """Refuse, before the model is built, ``--window-overlap`` without ``--windows``,
    ``--windows`` with one value or more than two, and ``--windows`` without values for
    a ``--model`` trained on whole images (its config, read from the file, says)."""
    if args.windows is None:
        if args.window_overlap is not None:
            raise ValueError("--window-overlap sets how --windows overlap: give --windows too")
        return
    if len(args.windows) not in (0, 2):
        given = " ".join(map(str, args.windows))
        raise ValueError(f"--windows takes H W, or no values for the model's own, got {given}")
    if args.windows:
        return
    with file_of_flag("--model", args.model):
        trained_window = read_model_config(args.model).transform.train_window
    if trained_window is None:
        raise ValueError(
            f"--windows without H W detects in the windows --model {args.model} was trained "
            "on, but it was trained on whole images (no train --train-window): give --windows H W"
        )


def with_windows(model: FasterRCNN, args: argparse.Namespace) -> FasterRCNN | WindowedDetection:
    """``model``, or with ``--windows`` (checked: :func:`check_window_flags`) its
    :class:`WindowedDetection`, saying what runs."""
    if args.windows is None:
        return model
    window = tuple(args.windows) or model.config.transform.train_window
    overlap = DEFAULT_OVERLAP if args.window_overlap is None else args.window_overlap
    detector = WindowedDetection(model, window, overlap)
    print(detector.describe())
    return detector


def check_out_folder(out: Path, writes: str) -> None:
    """Refuse, before any work, an ``--out`` folder that cannot be made or written
    (:func:`unwritable_folder`), or that names a file (not there yet, with one of
    :data:`FILE_SUFFIXES`); ``writes`` ends the message: "training writes"."""
    if out.suffix.lower() in FILE_SUFFIXES and not out.exists():
        raise ValueError(
            f"--out {out} names a {out.suffix} file, but {writes} a folder there (its "
            "files inside): name a folder"
        )
    reason = unwritable_folder(out)
    if reason is not None:
        raise ValueError(f"--out {out} {reason}: {writes} a folder there")


def check_out_file(out: Path, writes: str) -> None:
    """Refuse, before any work, an ``--out`` file whose folder cannot be made or written
    (inside a file, or a read-only folder); ``writes`` ends the message: "export writes"."""
    reason = _unwritable(out, out.parents)
    if reason is not None:
        raise ValueError(f"--out {out} {reason}: {writes} a file there")


def unwritable_folder(folder: Path) -> str | None:
    """Why ``folder`` cannot be made or written ("is a file", "is inside the read-only
    folder /data", ...), from the nearest path at or above it that exists; ``None`` when
    it can."""
    return _unwritable(folder, (folder, *folder.parents))


def _unwritable(path: Path, candidates: Sequence[Path]) -> str | None:
    """Why ``path`` cannot be made or written, from the first of ``candidates`` (``path``
    or the folders above it, nearest first) that exists; ``None`` when it can."""
    existing = next(candidate for candidate in candidates if candidate.exists())
    if not existing.is_dir():
        return "is a file" if existing == path else f"is inside the file {existing}"
    if not os.access(existing, os.W_OK | os.X_OK):
        return "is read-only" if existing == path else f"is inside the read-only folder {existing}"
    return _cannot_make_in(existing, path)


def _cannot_make_in(folder: Path, path: Path) -> str | None:
    """Why nothing can be made in ``folder`` (``path`` or a folder above it) though its
    mode allows it, as in /proc, which root's mode bits call writable: tried by making an
    empty folder there and removing it; ``None`` when it can."""
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".faster-rcnn-", dir=folder))
    except OSError as error:
        reason = f"where nothing can be made ({error.strerror})"
        return f"is a folder {reason}" if folder == path else f"is inside {folder}, {reason}"
    return None


@contextmanager
def file_of_flag(flag: str, path: Path) -> Iterator[None]:
    """Refusals of the file ``path`` that ``flag`` gave, in the block, name the flag:
    ``--model m.pth does not exist``, ``--weights w.txt is not a PyTorch checkpoint ...``,
    ``--weights w.pth: its backbone is not ...``; the library names the file alone."""
    try:
        yield
    except UnfinishedRunError as error:
        raise ValueError(_flag_file_error(flag, path, _run_going(error) or error)) from None
    except (FileNotFoundError, ValueError) as error:
        raise ValueError(_flag_file_error(flag, path, error)) from None


def _run_going(error: UnfinishedRunError) -> ValueError | None:
    """``error``'s run folder as the folder of a run still training, where it is one
    (its lock held: :mod:`~faster_rcnn.cli.out_lock`), which ``--resume`` would not
    finish but be refused; ``None`` where none trains there."""
    holder = lock_holder(error.run)
    if holder is None:
        return None
    return ValueError(
        f"{error.run} holds no {MODEL_FILE} yet: the training run there (process {holder}) "
        "writes it as it ends; pass the model file of its last checkpoint, "
        f"{error.last_checkpoint / MODEL_FILE}"
    )


def _flag_file_error(flag: str, path: Path, error: Exception) -> str:
    """``error``, a refusal of the file ``path`` that ``flag`` gave, naming the flag."""
    if isinstance(error, FileNotFoundError) and not path.exists():
        return f"{flag} {path} does not exist"
    said = str(error)
    if said.startswith((f"{path} ", f"{path}:")):
        return f"{flag} {said}"
    return f"{flag} {path}: {said}"


def path_argument(text: str) -> Path:
    """A file or folder given on the command line; an empty one (an unset shell variable,
    ``--out "$OUT"``) is refused, not taken for the current folder."""
    if not text:
        raise argparse.ArgumentTypeError("is empty: name a file or folder")
    return Path(text)


def non_empty(text: str) -> str:
    """A name given on the command line (``--data``, ``--split``), refused empty."""
    if not text:
        raise argparse.ArgumentTypeError("is empty")
    return text


def whole_number(text: str) -> int:
    """``text`` as an integer; one that is not (``1e3``, ``1.5``) is refused saying so,
    where argparse would name the option's type function ("invalid positive_int value")."""
    if not text:
        raise argparse.ArgumentTypeError("is empty: give a whole number")
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text}") from None


def number(text: str) -> float:
    """``text`` as a float, refused as :func:`whole_number` refuses a non-integer."""
    if not text:
        raise argparse.ArgumentTypeError("is empty: give a number")
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text}") from None


def positive_int(text: str) -> int:
    value = count(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def non_negative_int(text: str) -> int:
    value = count(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def random_seed(text: str) -> int:
    """A random seed: an integer from 0 to the largest that torch's generators take."""
    value = whole_number(text)
    if not 0 <= value <= _MAX_COUNT:
        raise argparse.ArgumentTypeError(f"must be from 0 to 2**63 - 1, got {text}")
    return value


def count(text: str) -> int:
    """``text`` as a whole number of at most 2**63 - 1, the most that torch's int64 (a
    step, an index) and a Python length hold: a larger count is refused here, not by an
    overflow in the command's work."""
    value = whole_number(text)
    if value > _MAX_COUNT:
        raise argparse.ArgumentTypeError(f"must be at most 2**63 - 1, got {text}")
    return value


_MAX_COUNT = 2**63 - 1


def positive_float(text: str) -> float:
    value = number(text)
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def minutes(text: str) -> float:
    """A time budget in minutes, refused where its seconds would be infinite."""
    value = positive_float(text)
    if not math.isfinite(value * 60):
        raise argparse.ArgumentTypeError(f"must be at most {_MAX_MINUTES:.3g} minutes, got {text}")
    return value


_MAX_MINUTES = sys.float_info.max / 60


def non_negative_float(text: str) -> float:
    value = number(text)
    if not 0 <= value < math.inf:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def probability(text: str) -> float:
    value = number(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text}")
    return value


def window_side(text: str) -> int:
    """A window's side in px: at least the FPN presets' smallest anchor, 32 px."""
    value = count(text)
    if value < MIN_TRAIN_WINDOW:
        raise argparse.ArgumentTypeError(f"must be at least {MIN_TRAIN_WINDOW} px, got {text}")
    return value


def overlap_fraction(text: str) -> float:
    """A share of a window's side that its neighbours overlap by: 0 or more, below 1."""
    value = number(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 0 and below 1, got {text}")
    return value


def open_fraction(text: str) -> float:
    """A number strictly between 0 and 1."""
    value = number(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def device_name(text: str) -> str:
    """A device this machine has (``cpu``, ``cuda``, ``cuda:1``, ``mps``), ``cpu:0`` and
    ``mps:0`` named as ``cpu`` and ``mps``, the one device of their kind."""
    try:
        parsed = torch.device(text)
    except RuntimeError:
        parsed = None
    if parsed is not None and parsed.type in ("cpu", "mps") and parsed.index == 0:
        parsed = torch.device(parsed.type)
    if (
        parsed is None
        or str(parsed) not in {*available_devices(), "cuda"}
        or (parsed.type == "cuda" and not torch.cuda.is_available())
    ):
        raise argparse.ArgumentTypeError(
            f"no device {text!r} here; available: {', '.join(available_devices())}"
        )
    return str(parsed)


def available_devices() -> list[str]:
    """The devices this machine can run on."""
    devices = ["cpu"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if torch.backends.mps.is_available():
        devices.append("mps")
    return devices
