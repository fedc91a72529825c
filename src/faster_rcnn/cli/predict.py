"""``faster-rcnn predict``: detections of image files as COCO-style JSON and pictures.

Given files and folders, an image's ``image_id`` is its place in the sorted list and
``category_id`` the model's label. Given a dataset (``--data``), they are the dataset's
own: a COCO file's image and category ids, a string image id as the file writes it (so
``evaluate --detections``, or pycocotools, can score the JSON against that file; a class
of the model's that the file lacks has no id, and its detections are drawn but not
written), a YOLO dataset's class ids (from 0, as in its label files), else the image's
place in the split and the label. Image files are read upright, turned by their EXIF
orientation as a viewer shows them, and their boxes are in that frame; of an animated or
multi-page file, the first frame is detected, with a warning. A dataset's images are
read as its reader reads them.

A ``.txt`` file named is a list of images, one path a line, as YOLO tools take a
``train.txt``: read as the YOLO readers read a split's list, relative to the list's folder,
a first folder not in it standing for that folder (Darknet's ``data/obj/x.jpg`` of a list
in ``data/``; :func:`~faster_rcnn.data.darknet.darknet_path`).

With ``--onnx`` an exported model runs instead, with ONNX Runtime on the CPU; it gives
the same detections, but no proposals to draw.

An unreadable image, or one too elongated for the model to resize, is skipped with a
one-line warning naming it: the others are still detected and written, and the exit
status is 1. The detections are written image by image (:mod:`.detections_file`): a
stop signal leaves those of the images done in ``detections.json``, and its line says
how many. A progress bar counts the images where stderr is a terminal.
"""

from __future__ import annotations

import argparse
import os
import signal
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor
from tqdm.auto import tqdm

from ..config import FasterRCNNConfig
from ..counted import counted
from ..data.coco import ImageId
from ..data.darknet import darknet_path
from ..data.dataset import (
    IMAGE_SUFFIXES,
    DetectionDataset,
    UnreadableImageError,
    first_few,
    image_files_in,
    is_image_file,
    read_image_levels,
    read_text,
    target_of,
    warn_of_later_frames,
)
from ..data.resizable import check_resizable
from ..fast_inference import optimize_for_inference
from ..insight.pictures import DEFAULT_SUFFIX, image_pictures
from ..train.checkpoint import load_model
from .arguments import (
    MODEL_SIZE_NAMES,
    add_device_argument,
    add_tta_argument,
    add_windows_arguments,
    check_out_folder,
    check_window_flags,
    file_of_flag,
    lower_score_threshold,
    non_empty,
    path_argument,
    probability,
    with_tta,
    with_windows,
)
from .detections_file import DetectionsFile
from .image_patterns import every_file_below, is_pattern, named_by_pattern, pattern_images
from .interrupted import Interrupted
from .splits import check_split_name, layout_saying_what_is_left_out, test_or_val


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        "predict", help="detect objects in images: COCO-style JSON and annotated PNGs"
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", type=path_argument, help="a model.safetensors")
    source.add_argument("--onnx", type=path_argument, help="a model exported by faster-rcnn export")
    parser.add_argument(
        "inputs",
        nargs="*",
        type=path_argument,
        help="image files, folders (the images directly inside), patterns (images/*.jpg; "
        "quoted 'photos/**/*.jpg' at any depth) or .txt lists of image paths, one a line "
        "(a YOLO train.txt)",
    )
    parser.add_argument(
        "--data",
        type=non_empty,
        help="instead of files: the images of a dataset's --split, written with its own "
        "image and category ids",
    )
    parser.add_argument("--split", type=non_empty, help="with --data (default: test, else val)")
    parser.add_argument(
        "--out",
        type=path_argument,
        default=Path("runs/predict"),
        help="the folder of detections.json and the pictures (default: runs/predict)",
    )
    parser.add_argument(
        "--score",
        type=probability,
        default=0.5,
        help="drawing threshold (default 0.5); under the box head's own (0.05), the head is "
        "run down to it, and detections.json holds those detections too",
    )
    parser.add_argument(
        "--no-pictures",
        dest="pictures",
        action="store_false",
        help="write detections.json alone, no picture of each image (drawing and saving "
        "them took half of a run's time on phone photos of 12 and 48 Mpx)",
    )
    add_tta_argument(parser)
    add_windows_arguments(parser)
    add_device_argument(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    if (args.data is None) == (not args.inputs):
        raise ValueError("predict needs image files or folders, or --data (not both)")
    if args.split is not None and args.data is None:
        raise ValueError("--split chooses a split of --data; image files have none")
    check_out_folder(args.out, "predict writes")
    detect, config = load_detector(args)
    images = images_to_detect(args, config.class_names or None)
    names_of = checked_picture_names(args, images.paths) if args.pictures else None
    args.out.mkdir(parents=True, exist_ok=True)
    predicted = Predicted(limit=config.roi_heads.detections_per_img)
    with (
        DetectionsFile(args.out / "detections.json") as written,
        interruption_saying_what_is_kept(predicted, len(images.paths), written),
    ):
        detect_and_draw(images, detect, config, names_of, args.out, args.score, predicted, written)
    score = args.score if args.pictures else None
    print(summary_line(predicted, written.count, images.paths, args.out, score))
    return 1 if predicted.skipped else 0


def checked_picture_names(args: argparse.Namespace, paths: Sequence[Path]) -> list[str]:
    """The names of the images' pictures in ``--out`` (:func:`picture_names`), none of
    which replaces an image read or is one the inputs would read the next time."""
    proposals = args.onnx is None
    names_of = picture_names(paths, proposals)
    check_no_image_written_over(args.out, paths, names_of, proposals)
    check_out_not_read(args.out, args.inputs, names_of, proposals)
    return names_of


@dataclass
class Predicted:
    """What ``predict`` made of its images, counted as it detects them (the detections
    themselves go to ``detections.json`` image by image: :class:`DetectionsFile`).

    Attributes:
        detected: how many images were detected.
        skipped: the images that could not be read or resized.
        drawn: how many detections the pictures draw (those scoring ``--score`` or more).
        pictures: the pictures written, resolved.
        limit: the model's most detections an image (``roi_heads.detections_per_img``).
        at_limit: how many images reached it, their lowest-scoring detections cut.
    """

    detected: int = 0
    skipped: list[Path] = field(default_factory=list)
    drawn: int = 0
    limit: int = 0
    at_limit: int = 0
    pictures: set[Path] = field(default_factory=set)


def detect_and_draw(
    images: ImagesToDetect,
    detect: Detect,
    config: FasterRCNNConfig,
    names_of: Sequence[str] | None,
    out: Path,
    score: float,
    predicted: Predicted,
    written: DetectionsFile,
) -> None:
    """Each image detected, its detections written to ``written`` and counted in
    ``predicted``, and drawn in ``out`` as its name in ``names_of`` (the detections
    scoring ``score`` or more, and the proposals where ``detect`` gives them; ``None``:
    not drawn); one that cannot be read or resized is skipped with a warning naming it.
    A progress bar counts the images on a terminal."""
    names, transform = config.label_names(), config.transform
    each = zip(images.paths, images.image_ids, strict=True)
    with tqdm(each, desc="predict", total=len(images.paths), unit="image", disable=None) as bar:
        for k, (path, image_id) in enumerate(bar):
            try:
                image = images.read(k)
                check_resizable(
                    image, path, transform.min_size, transform.max_size, MODEL_SIZE_NAMES
                )
            except ValueError as error:  # one bad file does not cost the others
                warnings.warn(f"{error}; skipped", stacklevel=1)
                predicted.skipped.append(path)
                continue
            det, proposals = detect(image)
            predicted.at_limit += len(det["scores"]) >= predicted.limit
            written.write(coco_records(det, image_id, path, names, images.category_ids))
            predicted.detected += 1
            if names_of is not None:
                picture = out / names_of[k]
                save_image_pictures(image, det, proposals, names, picture, score, predicted)


@contextmanager
def interruption_saying_what_is_kept(
    predicted: Predicted, total: int, written: DetectionsFile
) -> Iterator[None]:
    """A stop signal (Ctrl-C's ``KeyboardInterrupt``, :class:`.Interrupted`) raised as
    :class:`.Interrupted` whose line says what ``written`` keeps of the ``total`` images:
    ``interrupted by SIGINT after 412 of 3,000 images (2 skipped): runs/p/detections.json
    holds their 41,000 detections; a rerun detects every image again``."""
    try:
        yield
    except (KeyboardInterrupt, Interrupted) as stop:
        signum = stop.signum if isinstance(stop, Interrupted) else signal.SIGINT
        tried = predicted.detected + len(predicted.skipped)
        skipped = f" ({len(predicted.skipped)} skipped)" if predicted.skipped else ""
        kept = (
            f" after {tried:,} of {counted(total, 'image')}{skipped}: {written.path} holds "
            f"their {counted(written.count, 'detection')}; a rerun detects every image again"
        )
        raise Interrupted(signum, kept) from None


def save_image_pictures(
    image: Tensor,
    detections: dict[str, Tensor],
    proposals: dict[str, Tensor] | None,
    names: Sequence[str],
    picture: Path,
    score: float,
    predicted: Predicted,
) -> None:
    """Save the pictures of one image as ``picture`` (:func:`save_pictures`), counting
    them and what they draw in ``predicted``."""
    from ..insight.draw import save_pictures  # matplotlib: not at every start

    written = save_pictures(image, detections, proposals, names, picture, score)
    predicted.pictures |= {path.resolve() for path in written}
    predicted.drawn += int((detections["scores"] >= score).sum())


def summary_line(
    predicted: Predicted, detections: int, paths: Sequence[Path], out: Path, score: float | None
) -> str:
    """Predict's last line: how many ``detections`` in how many of the images ``paths``
    (and how many skipped), where they are written, how many images reached the model's
    limit (:class:`Predicted`), and, where pictures were drawn at
    ``score`` (``None``: none were), how many they draw and the older pictures beside them
    (:func:`older_pictures`)."""
    left_out = f" ({len(predicted.skipped)} skipped)" if predicted.skipped else ""
    written = (
        f"{counted(detections, 'detection')} in "
        f"{counted(predicted.detected, 'image')}{left_out} "
        f"-> {out}/detections.json{at_limit(predicted)}"
    )
    if score is None:
        return written
    return (
        f"{written}; the pictures draw {predicted.drawn}, those scoring {score:g} or more "
        f"(--score){older_pictures(out, predicted.pictures, paths)}"
    )


def at_limit(predicted: Predicted) -> str:
    """``; 1 image reached the model's 1,100 detections an image (...)``, empty where
    none did: their count in detections.json is the limit's, not the objects'."""
    if not predicted.at_limit:
        return ""
    reached = counted(predicted.at_limit, "image")
    return (
        f"; {reached} reached the model's {predicted.limit:,} detections an image "
        "(roi_heads.detections_per_img), the lowest-scoring cut"
    )


def older_pictures(out: Path, written: set[Path], read: Sequence[Path]) -> str:
    """The pictures in ``out`` that this run neither wrote (``written``, resolved) nor
    read (``read``), as the end of predict's last line: ``; 2 older pictures stay beside
    them, not this run's (b.png, b_proposals.png)``, empty where there are none. An
    earlier predict's pictures of images not detected this time would pass for this
    run's; they are named, not removed: predict cannot tell them from pictures it did not
    write."""
    this_run = written | {path.resolve() for path in read}
    older = sorted(
        p.name for p in out.iterdir() if is_image_file(p) and p.resolve() not in this_run
    )
    if not older:
        return ""
    stay = counted(len(older), "older picture stays", "older pictures stay")
    return f"; {stay} beside them, not this run's ({first_few(older)})"


Detect = Callable[[Tensor], tuple[dict[str, Tensor], dict[str, Tensor] | None]]


def load_detector(args: argparse.Namespace) -> tuple[Detect, FasterRCNNConfig]:
    """What detects one image (its detections and proposals, on the CPU; no proposals
    from ONNX), and the model's config."""
    if args.onnx is not None:
        if args.device != "cpu":
            raise ValueError("predict --onnx runs on the CPU (ONNX Runtime's CPU provider)")
        if args.tta is not None:
            raise ValueError("--tta runs a --model: an exported model detects each image once")
        if args.windows is not None or args.window_overlap is not None:
            flag = "--windows" if args.windows is not None else "--window-overlap"
            raise ValueError(f"{flag} runs a --model: an exported model detects whole images")
        from ..export import OnnxDetector  # its graph operators: not at every start

        onnx_detector = OnnxDetector(args.onnx)
        exported = onnx_detector.config.roi_heads.score_thresh
        if args.score < exported:
            warnings.warn(
                f"--score {args.score:g}: {args.onnx} returns no detection under {exported:g}, "
                "its box head's threshold when exported (--model runs the head down to it)",
                stacklevel=1,
            )
        return (lambda image: (onnx_detector([image])[0], None)), onnx_detector.config
    check_window_flags(args)
    # Batch norms folded and channels-last: the same detections to float rounding, faster.
    with file_of_flag("--model", args.model):
        model = optimize_for_inference(load_model(args.model, device=args.device))
    writing = "writing and drawing detections" if args.pictures else "writing detections"
    lower_score_threshold(model, args.score, writing)
    detector = with_tta(with_windows(model, args), args)

    def detect(image: Tensor) -> tuple[dict[str, Tensor], dict[str, Tensor] | None]:
        detections, proposals = detector.detect_with_proposals([image.to(args.device)])
        return (
            {k: v.cpu() for k, v in detections[0].items()},
            {k: v.cpu() for k, v in proposals[0].items()},
        )

    return detect, model.config


@dataclass(frozen=True)
class ImagesToDetect:
    """The images ``predict`` detects.

    Attributes:
        paths: their files.
        image_ids: the id each is written with.
        read: image ``k`` decoded as a dataset's reader decodes it, as the model takes
            it: ``uint8[3, H, W]`` levels of an 8-bit file, ``float32`` in 0..1 of a
            deeper grey one.
        category_ids: the label -> category id map its detections are written with;
            ``None`` writes the label.
    """

    paths: list[Path]
    image_ids: Sequence[ImageId]
    read: Callable[[int], Tensor]
    category_ids: Mapping[int, int] | None = None


def images_to_detect(args: argparse.Namespace, class_names: Sequence[str] | None) -> ImagesToDetect:
    """The images of ``--data`` (:func:`dataset_images`), or else of the files, folders,
    patterns and lists ``inputs`` names (:func:`image_paths`), their places for ids."""
    if args.data is not None:
        images = dataset_images(args, class_names)
        check_out_outside_data(args.out, images.paths, args.data)
        return images
    paths = image_paths(args.inputs)
    return ImagesToDetect(paths, list(range(len(paths))), lambda k: read_named_image(paths[k]))


def read_named_image(path: Path) -> Tensor:
    """An image file the user named, as a viewer shows it: turned by its EXIF orientation
    (as explain and Ultralytics read it; no annotations were drawn on it as stored), its
    first frame, with a warning where it holds more. Its pixels are as the readers' items
    carry them (:func:`~faster_rcnn.data.dataset.read_image_levels`): ``uint8`` levels of
    an 8-bit file, a quarter of float32's memory, which the model scales itself."""
    image = read_image_levels(path, exif_transpose=True)
    warn_of_later_frames(path, "detected")
    return image


def dataset_images(args: argparse.Namespace, class_names: Sequence[str] | None) -> ImagesToDetect:
    """The images of ``--data``'s ``--split``: decoded by its reader (turned as it turns
    them for training and evaluation), with its image ids and label -> category id map
    (where the dataset has no ids of its own, the place in the split and the label stand
    in); a class of the split's that the model lacks does not stop it."""
    layout = layout_saying_what_is_left_out(args.data)
    check_split_name(layout, args.split, (), "predict takes all its images: leave --split out")
    dataset = layout.open(args.split or test_or_val(layout), class_names, append_unknown=True)
    files = getattr(dataset, "image_files", None)
    if files is None:
        raise ValueError(f"{args.data} is generated, not image files: predict needs files")
    image_ids = [_image_id(dataset, i) for i in range(len(files))]
    category_ids = getattr(dataset, "label_to_category_id", None)
    return ImagesToDetect(list(files), image_ids, lambda k: dataset[k][0], category_ids)


def _image_id(dataset: DetectionDataset, index: int) -> ImageId:
    """The dataset's id of image ``index``, as its COCO file writes it (a string id too,
    :meth:`~faster_rcnn.data.coco.COCODetection.file_image_id`); its place where the
    dataset has none, or where its target cannot be read (a YOLO target needs the image's
    size: the image is then skipped as unreadable)."""
    try:
        image_id = int(target_of(dataset, index).get("image_id", index))
    except UnreadableImageError:
        return index
    file_image_id = getattr(dataset, "file_image_id", None)
    return image_id if file_image_id is None else file_image_id(image_id)


def coco_records(
    detections: dict[str, Tensor],
    image_id: ImageId,
    path: Path,
    class_names: Sequence[str],
    category_ids: Mapping[int, int] | None = None,
) -> list[dict[str, Any]]:
    """One image's detections as COCO results (``bbox`` as x, y, width, height), the
    labels written as ``category_ids[label]`` when given; a label without one (a class
    the dataset's file lacks) is left out, as no file of its ids can score it."""
    return [
        {
            "image_id": image_id,
            "file_name": str(path),
            "category_id": label if category_ids is None else category_ids[label],
            "category_name": class_names[label - 1],
            "bbox": [round(v, 2) for v in (x1, y1, x2 - x1, y2 - y1)],
            "score": round(score, 5),
        }
        for (x1, y1, x2, y2), label, score in zip(
            detections["boxes"].tolist(),
            detections["labels"].tolist(),
            detections["scores"].tolist(),
            strict=True,
        )
        if category_ids is None or label in category_ids
    ]


def picture_names(paths: Sequence[Path], proposals: bool = True) -> list[str]:
    """A file name for each image's detections picture, ``<name>.png`` (with ``proposals``
    its ``<name>_proposals.png`` beside it: :func:`image_pictures`), such that no picture
    is another's: its file stem where no other image's pictures take those names, else its
    path below the images' common folder with ``/`` and ``.`` as ``_`` (``a/img.jpg`` and
    ``b/img.jpg`` -> ``a_img_jpg.png``, ``b_img_jpg.png``; ``a.jpg`` and
    ``a_proposals.jpg``, whose detections picture would be the proposals picture of
    ``a.jpg`` -> ``a_jpg.png``, ``a_proposals_jpg.png``)."""

    def pictures(name: str) -> set[str]:
        return {p.name for p in image_pictures(Path(name + DEFAULT_SUFFIX), proposals)}

    wanted = Counter(picture for path in paths for picture in pictures(path.stem))
    folders = [path.resolve().parent for path in paths]
    root = Path(os.path.commonpath(folders)) if folders else Path()
    names: list[str] = []
    taken: set[str] = set()
    for path in paths:
        name = path.stem
        if any(wanted[picture] > 1 for picture in pictures(name)):
            name = "_".join(path.resolve().relative_to(root).parts).replace(".", "_")
        while pictures(name) & taken:  # the rare name that still repeats gets a "_" more
            name += "_"
        names.append(name + DEFAULT_SUFFIX)
        taken |= pictures(name)
    return names


def check_no_image_written_over(
    out: Path, paths: Sequence[Path], names: Sequence[str], proposals: bool = True
) -> None:
    """Refuse an ``out`` where a picture predict writes (each of ``names`` and, with
    ``proposals``, its proposals picture beside it) would replace one of the images
    ``paths`` it reads: an --out that is the images' own folder."""
    folder = out.resolve()  # the names hold no folders: each picture is in it
    read = {path.resolve() for path in paths}
    for name in names:
        for picture in image_pictures(folder / name, proposals):
            if picture in read:
                raise ValueError(
                    f"--out {out}: the picture {picture.name} would replace the image "
                    f"{picture} it is drawn from; choose another --out"
                )


def check_out_outside_data(out: Path, paths: Sequence[Path], data: str) -> None:
    """Refuse an ``out`` that holds images ``paths`` of the dataset ``data``: its
    pictures would join the dataset's images (a YOLO split reads every image in its
    folder, and gave each picture the label file of the image it was drawn from)."""
    folder = out.resolve()
    # The folder an image is in, linked or not; each resolved once, not once an image.
    if any(parent.resolve() == folder for parent in {path.parent for path in paths}):
        raise ValueError(
            f"--out {out} holds images of {data}: the pictures predict writes there would "
            "join them; choose another --out"
        )


def check_out_not_read(
    out: Path, inputs: Sequence[Path], names: Sequence[str], proposals: bool = True
) -> None:
    """Refuse an ``out`` that is a folder ``inputs`` names, or one that a pattern there
    reaches (``images/*``, or any folder below ``photos`` of ``photos/**/*``), where a
    picture predict writes (``names``, as in :func:`check_no_image_written_over`) is an
    image that input reads: the next run on it would detect this run's pictures as
    images of its own."""
    folder = out.resolve()
    pictures = [picture for name in names for picture in image_pictures(folder / name, proposals)]
    for item in inputs:
        read = _read_back(item, folder, pictures)
        if read:
            raise ValueError(
                f"--out {out}: predict reads {item}, and would read the picture "
                f"{read[0].name} it writes there as an image the next time; choose another "
                "--out"
            )


def _read_back(item: Path, folder: Path, pictures: list[Path]) -> list[Path]:
    """Those of the ``pictures`` in ``folder`` (resolved) that the input ``item`` would
    read as images once they are written: all where ``item`` is ``folder``, those it
    names where it is a pattern."""
    if item.is_dir():
        return pictures if item.resolve() == folder else []
    if item.is_file() or not is_pattern(item):
        return []
    return named_by_pattern(item, pictures)


def image_paths(inputs: Sequence[Path]) -> list[Path]:
    """The image files named, in the order given, with those directly inside the folders
    named and the image files a pattern names (``images/*.jpg``, ``photos/**/*.jpg`` at
    any depth: :func:`~.image_patterns.pattern_images`), each sorted, and those a ``.txt``
    list names (:func:`listed_images`), in its order; every file once. A warning names
    what else a folder holds (:func:`warn_of_the_rest`)."""
    paths: list[Path] = []
    for item in inputs:
        if item.is_dir():
            images = image_files_in(item)
            warn_of_the_rest(item, images)
            paths += images
        elif item.is_file() and item.suffix.lower() == ".txt":
            paths += listed_images(item)
        elif item.is_file():  # named: tried whatever its suffix (.jfif, .ppm...)
            paths.append(item)
        elif is_pattern(item):
            paths += pattern_images(item)
        else:
            raise FileNotFoundError(f"no such image or folder: {item}")
    if not paths:
        raise ValueError(
            f"no images ({', '.join(IMAGE_SUFFIXES)}) in {', '.join(map(str, inputs))}"
        )
    return _each_once(paths)


def listed_images(list_file: Path) -> list[Path]:
    """The images a ``.txt`` list names, one a line (blank lines aside), as the YOLO
    readers read a split's list (:func:`~faster_rcnn.data.darknet.darknet_path`, from the
    list's folder). A listed file that is not there is skipped when read, as an unreadable
    image is, with a warning naming it.

    Raises:
        ValueError: the list names nothing, or a line is numbers, not a path (a YOLO
            label file given for a list), naming it.
    """
    lines = [line.strip() for line in read_text(list_file).splitlines()]
    for number, line in enumerate(lines, start=1):
        if line and _numbers(line):
            raise ValueError(
                f"{list_file}, line {number}: {line!r} is numbers, not an image path (a YOLO "
                "label file?): a .txt input lists image paths, one a line"
            )
    if not any(lines):
        raise ValueError(f"{list_file}: lists no image (a .txt input is one image path a line)")
    return [darknet_path(list_file.parent, line) for line in lines if line]


def _numbers(line: str) -> bool:
    """Whether ``line`` is numbers separated by spaces, as a YOLO label line is."""
    try:
        [float(word) for word in line.split()]
    except ValueError:
        return False
    return True


def _each_once(paths: Sequence[Path]) -> list[Path]:
    """``paths`` without a file named again (by another path to it, too)."""
    seen: set[Path] = set()
    unique = []
    for path in paths:
        if path.resolve() not in seen:
            seen.add(path.resolve())
            unique.append(path)
    return unique


def warn_of_the_rest(folder: Path, images: Sequence[Path]) -> None:
    """Warn of the subfolders and other files (hidden ones aside) of ``folder`` that are
    not among its ``images``: predict reads only the image files directly inside, and
    the pattern ``folder/**/*`` those of its subfolders too, which the warning says."""
    taken = set(images)
    rest = [p for p in folder.iterdir() if p not in taken and not p.name.startswith(".")]
    folders = sum(p.is_dir() for p in rest)
    files = len(rest) - folders
    parts = [counted(folders, "folder")] if folders else []
    if files:
        kinds = sorted({p.suffix.lower() or "no suffix" for p in rest if not p.is_dir()})
        parts.append(f"{counted(files, 'other file')} ({', '.join(kinds)})")
    if not parts:
        return
    pattern = every_file_below(folder)
    deeper = f'; a quoted "{pattern}" reads those in its subfolders too' if folders else ""
    warnings.warn(
        f"{folder}: {' and '.join(parts)} left out: predict reads the image files directly "
        f"inside a folder ({', '.join(IMAGE_SUFFIXES)}){deeper}",
        stacklevel=1,
    )
