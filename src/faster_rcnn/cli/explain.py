"""``faster-rcnn explain``: one picture of what the RPN does with an image.

With ``--model`` all six panels (anchors of one location, every anchor's label, the
sampled mini-batch, proposals before and after NMS, detections); without it a preset's
freshly built model gives the anchors and their labels (the first three). The boxes of
``--annotations`` - a Pascal VOC / LabelImg ``.xml``, a YOLO ``.txt``, a LabelMe
``.json``, a CVAT for images ``.xml``, a COCO, VGG Image Annotator (VIA) or CreateML
``.json``, a YOLO Keras ``.txt`` or a TensorFlow Object Detection or keras-retinanet
``.csv`` that lists the image - are the ground truth the anchors are labelled against: a
VOC file's difficult objects too, as ``train`` trains on them, unless
``--skip-difficult`` leaves them out as ``train --skip-difficult`` does.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path, PureWindowsPath
from typing import cast

import torch
from torch import Tensor

from ..data import cvat
from ..data.box_audit import BoxAudit
from ..data.coco import COCODetection, drop_crowd
from ..data.createml import is_createml_file, read_createml_images
from ..data.csv_boxes import read_rows_by_image
from ..data.dataset import (
    boxes_tensor,
    image_sizes,
    read_image_levels,
    warn_of_later_frames,
    written_path,
)
from ..data.keras_txt import classes_file_beside, is_keras_txt, read_keras_lines
from ..data.labelme import (
    is_labelme_file,
    read_labelme_file,
    upright_sizes,
    warn_of_skipped_shapes,
)
from ..data.resizable import check_resizable
from ..data.via import is_via_file, read_via_images, via_image_file
from ..data.voc import audited_box, parse_annotation
from ..data.yolo import NAMES_FILES, parse_label_file, read_names_file, unnamed_class_error
from ..insight.pictures import DEFAULT_SUFFIX, FORMATS, picture_path
from ..model import FasterRCNN
from ..models import PRESETS, preset_config
from ..train.checkpoint import box_head_trained, load_model
from .arguments import (
    MODEL_SIZE_NAMES,
    add_device_argument,
    check_out_file,
    file_of_flag,
    given_flags,
    lower_score_threshold,
    path_argument,
    positive_int,
    probability,
    random_seed,
    refuse_without_effect,
)


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        "explain",
        help="one picture of the RPN at work on an image: anchors, labels, sampled batch, "
        "proposals, detections",
        description="Panels of what the model's own code does with one image: the anchors "
        "of one location, every anchor's label against the ground truth, the sampled "
        "mini-batch, and with --model the proposals before and after NMS and the detections. "
        "The numbers go to a JSON file beside the picture.",
    )
    parser.add_argument("image", type=path_argument, help="an image file")
    parser.add_argument(
        "--annotations",
        type=path_argument,
        help="its boxes: a Pascal VOC / LabelImg or CVAT for images .xml, a YOLO or YOLO "
        "Keras .txt, a COCO, VGG Image Annotator (VIA), CreateML or LabelMe .json or a "
        "TensorFlow Object Detection or keras-retinanet .csv",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--model", type=path_argument, help="a model.safetensors: all six panels")
    source.add_argument(
        "--preset",
        choices=list(PRESETS),
        default="small",
        help="without --model, an untrained preset gives the anchors (panels 1-3)",
    )
    parser.add_argument(
        "--classes",
        type=path_argument,
        help="class names of a YOLO .txt, one a line (default: classes.txt or obj.names "
        "beside it or above it, else the model's; of a YOLO Keras .txt, the _classes.txt "
        "or classes.txt beside it)",
    )
    parser.add_argument(
        "--skip-difficult",
        action="store_true",
        help="with a VOC .xml as --annotations: label the anchors without the objects it "
        "marks difficult, as train --skip-difficult trains (by default they are ground "
        "truth like any other, as train trains on them)",
    )
    parser.add_argument(
        "--out",
        type=path_argument,
        help=f"the picture to write, in the format its suffix names ({', '.join(FORMATS)}; "
        f"{DEFAULT_SUFFIX} without one), the numbers in a .json beside it (default: "
        f"runs/explain/<image>_explained{DEFAULT_SUFFIX})",
    )
    parser.add_argument(
        "--seed", type=random_seed, default=0, help="seed of the sampled mini-batch"
    )
    parser.add_argument(
        "--top",
        type=positive_int,
        help="with --model: proposals drawn before and after NMS (default 50)",
    )
    parser.add_argument(
        "--score",
        type=probability,
        help="with --model: detections drawn from this score (default 0.5); under the "
        "box head's own threshold (0.05), the head is run down to it",
    )
    add_device_argument(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    check_options(args)
    out = args.out or Path("runs/explain") / f"{args.image.stem}_explained{DEFAULT_SUFFIX}"
    out = check_explain_out(out, args)
    if args.model:
        with file_of_flag("--model", args.model):
            model = load_model(args.model, device=args.device)
        lower_score_threshold(model, args.score, "drawing detections")
        name = f"model {args.model}"
    else:
        torch.manual_seed(args.seed)  # the untrained weights (a hard-negative sampler's ranks)
        model = FasterRCNN.from_config(preset_config(args.preset)).to(args.device)
        name = f"untrained preset {args.preset}"
    if args.annotations:
        image, boxes, names = read_annotated_image(
            args.annotations,
            args.image,
            args.classes,
            model.config.label_names(),
            args.skip_difficult,
        )
    else:
        # Upright, as predict reads an image file: no annotations were drawn on it as stored.
        image, boxes, names = read_image_levels(args.image, exif_transpose=True), None, ()
    warn_of_later_frames(args.image, "explained")
    # The model's own check would name the image "image 0", not its file.
    transform = model.transform
    check_resizable(image, args.image, transform.min_size, transform.max_size, MODEL_SIZE_NAMES)
    from ..insight.explain import draw_explanation, explain  # matplotlib: not at every start

    trained = args.model is not None
    explanation = explain(
        model,
        image,
        boxes,
        names,
        args.seed,
        with_proposals=trained,
        with_detections=trained and box_head_trained(args.model),
    )
    drawn = {"top_k": args.top, "score_threshold": args.score}
    given = {setting: value for setting, value in drawn.items() if value is not None}
    path = draw_explanation(explanation, out, f"{args.image.name}, {name}", **given)
    counts = explanation.counts()
    print(
        f"{counts['anchors']:,} anchors: {counts['positive']:,} positive, {counts['negative']:,} "
        f"negative, {counts['ignored']:,} ignored, {counts['outside']:,} outside the border; "
        f"sampled {counts['sampled_positive']} + {counts['sampled_negative']} -> {path}"
    )
    return 0


def check_options(args: argparse.Namespace) -> None:
    """Refuse the options that the panels asked for leave without effect: ``--top`` and
    ``--score`` without ``--model`` (they draw its proposals and detections), ``--classes``
    without a YOLO ``.txt`` as ``--annotations`` (the names of its class numbers),
    ``--skip-difficult`` without a VOC ``.xml`` (the only format that marks them)."""
    if args.model is None:
        refuse_without_effect(
            given_flags(args, {"--top": None, "--score": None}),
            "without --model: an untrained preset draws no proposals or detections",
        )
    if args.classes and not _suffix_is(args.annotations, ".txt"):
        raise ValueError(
            "--classes has no effect without a YOLO .txt as --annotations: it names the "
            "class numbers of such a file"
        )
    if args.skip_difficult and not _suffix_is(args.annotations, ".xml"):
        raise ValueError(
            "--skip-difficult has no effect without a VOC .xml as --annotations: only such "
            "a file marks objects difficult"
        )


def _suffix_is(path: Path | None, suffix: str) -> bool:
    """Whether ``path`` is given and ends in ``suffix``, in any case."""
    return path is not None and path.suffix.lower() == suffix


def check_explain_out(out: Path, args: argparse.Namespace) -> Path:
    """The picture ``--out`` names (:func:`picture_path`: its own format, a PNG without a
    suffix); refused where it cannot be written, is a folder, has a suffix no picture
    format has, or where it or the JSON beside it would replace the image,
    ``--annotations`` or ``--classes`` read."""
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder: name the picture file to write")
    picture = picture_path(out, "--out")
    check_out_file(picture, "explain writes")
    read = {"the image": args.image, "--annotations": args.annotations, "--classes": args.classes}
    for written in (picture, picture.with_suffix(".json")):
        for what, path in read.items():
            if path is not None and written.exists() and path.exists() and written.samefile(path):
                raise ValueError(f"--out {out} would write {written} over {what}, which it reads")
    return picture


def read_annotated_image(
    path: Path,
    image_path: Path,
    classes_file: Path | None = None,
    model_names: Sequence[str] = (),
    skip_difficult: bool = False,
) -> tuple[Tensor, Tensor, tuple[str, ...]]:
    """An image and its ground truth from an annotation file, by its suffix, the image
    decoded as that format's reader decodes it (turned by its EXIF orientation where the
    reader turns it).

    Args:
        path: a Pascal VOC / LabelImg or CVAT for images ``.xml``, a YOLO or YOLO Keras
            ``.txt``, a COCO, VIA, CreateML or LabelMe ``.json`` (told apart by content)
            or a TensorFlow Object Detection or keras-retinanet ``.csv``.
        image_path: the image (a CVAT, COCO, VIA, CreateML, YOLO Keras or CSV file is
            searched for its file name).
        classes_file: class names of a YOLO or YOLO Keras file, one a line.
        model_names: class names of a YOLO file when no names file is found.
        skip_difficult: leave out the objects a VOC file marks difficult.

    Returns:
        The image as the readers' items carry it (``uint8[3, H, W]`` levels of an 8-bit
        file, :func:`~faster_rcnn.data.dataset.read_image_levels`), its ``(G, 4)`` boxes
        in pixels, clipped to it, and a class name per box.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: ``path`` is a folder, an unknown suffix, a malformed file, a VOC or
            YOLO file of another image (or LabelMe), a CVAT, COCO, VIA, CreateML, YOLO
            Keras or CSV file without the image.
    """
    if path.is_dir():
        raise ValueError(f"{path} is a folder, not an annotation file")
    if not path.is_file():
        raise FileNotFoundError(f"annotation file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".xml" and cvat.is_cvat_file(path):
        return _cvat_annotated(path, image_path)
    if suffix == ".xml":
        return _voc_annotated(path, image_path, skip_difficult)
    if suffix == ".txt" and is_keras_txt(path):
        return _keras_txt_annotated(path, image_path, classes_file)
    if suffix == ".txt":
        if path.stem.lower() != image_path.stem.lower():  # YOLO's only link to its image
            raise ValueError(f"{path} labels {path.stem}.*, not {image_path.name}")
        # Upright, as the YOLO reader (and Ultralytics) reads it.
        image = read_image_levels(image_path, exif_transpose=True)
        names = _yolo_names(path, classes_file, model_names)
        return (image, *_yolo_boxes(path, (image.shape[-2], image.shape[-1]), *names))
    if suffix == ".json" and is_via_file(path):
        return _via_annotated(path, image_path)
    if suffix == ".json" and is_createml_file(path):
        return _createml_annotated(path, image_path)
    if suffix == ".json" and is_labelme_file(path):
        return _labelme_annotated(path, image_path)
    if suffix == ".json":
        return _coco_annotated(path, image_path)
    if suffix == ".csv":
        return _csv_annotated(path, image_path)
    raise ValueError(
        f"{path}: annotations must be a Pascal VOC or CVAT for images .xml, a YOLO .txt, a "
        "YOLO Keras .txt, a COCO, VIA, CreateML or LabelMe .json or a TensorFlow Object "
        "Detection or keras-retinanet .csv"
    )


def _voc_annotated(
    path: Path, image_path: Path, skip_difficult: bool = False
) -> tuple[Tensor, Tensor, tuple[str, ...]]:
    """The image and its VOC XML's boxes, turned and clipped as the VOC reader turns and
    clips them, its difficult objects left out where ``skip_difficult``; refused when
    neither the XML's ``<filename>`` nor its own name is the image's (another image's
    boxes)."""
    record = parse_annotation(path)
    named = PureWindowsPath(record.filename).name if record.filename else None
    if path.stem.lower() != image_path.stem.lower() and named not in (None, image_path.name):
        raise ValueError(f"{path} annotates {named}, not {image_path.name}")
    sizes = image_sizes([record.size], [image_path], [image_path.name], str(path), "<size>")
    image = read_image_levels(image_path, exif_transpose=bool(sizes.turned))
    audit, rows, names = BoxAudit(), [], []
    for j, obj in enumerate(record.objects):
        if skip_difficult and obj.difficult:
            continue
        box = audited_box(obj, image.shape[-1], image.shape[-2], f"object {j}", audit)
        if box is not None:
            rows.append(box)
            names.append(obj.name)
    audit.warn(str(path))
    return image, boxes_tensor(rows), tuple(names)


def _csv_annotated(path: Path, image_path: Path) -> tuple[Tensor, Tensor, tuple[str, ...]]:
    """The image and the boxes of the rows of a CSV of boxes
    (:mod:`~faster_rcnn.data.csv_boxes`) that name a file of its name, wherever the CSV
    puts it, turned and clipped as the CSV reader turns and clips them."""
    by_image = read_rows_by_image(path)
    rows = next(
        (r for name, r in by_image.items() if written_path(name).name == image_path.name), None
    )
    if rows is None:
        raise ValueError(f"{path} has no row of an image named {image_path.name!r}")
    where = f"{rows[0].filename}, line {rows[0].line}"
    sizes = image_sizes([rows[0].size], [image_path], [where], str(path), "width and height")
    image = read_image_levels(image_path, exif_transpose=bool(sizes.turned))
    boxes = [(f"line {r.line}, {r.filename}", r.box, r.name) for r in rows if r.box]
    return _with_clipped_boxes(image, boxes, path)  # a row without a box: no object


def _via_annotated(path: Path, image_path: Path) -> tuple[Tensor, Tensor, tuple[str, ...]]:
    """The image and the boxes of the regions of a VIA file (:mod:`~faster_rcnn.data.via`)
    on an image of its name, wherever the file puts it, read upright and clipped as the
    VIA reader reads and clips them."""
    images = read_via_images(path)
    named = (i for i in images if via_image_file(path.parent, i.filename).name == image_path.name)
    annotated = next(named, None)
    if annotated is None:
        raise ValueError(f"{path} has no image named {image_path.name!r}")
    image = read_image_levels(image_path, exif_transpose=True)
    boxes = [(region.where, region.box, region.label) for region in annotated.regions]
    return _with_clipped_boxes(image, boxes, path)


def _cvat_annotated(path: Path, image_path: Path) -> tuple[Tensor, Tensor, tuple[str, ...]]:
    """The image and the boxes of the shapes of a CVAT for images file
    (:mod:`~faster_rcnn.data.cvat`) on an image of its name, whatever its subset, turned
    and clipped as the CVAT reader turns and clips them."""
    named = (
        image
        for image in cvat.read_cvat_file(path).images
        if written_path(image.name).name == image_path.name
    )
    annotated = next(named, None)
    if annotated is None:
        raise ValueError(f"{path} has no image named {image_path.name!r}")
    source = str(path)
    sizes = image_sizes(
        [annotated.size], [image_path], [annotated.name], source, "width and height"
    )
    image = read_image_levels(image_path, exif_transpose=bool(sizes.turned))
    cvat.warn_of_skipped_shapes([annotated], source)
    boxes = [(shape.where, shape.box, shape.label) for shape in annotated.shapes]
    return _with_clipped_boxes(image, boxes, path)


def _keras_txt_annotated(
    path: Path, image_path: Path, classes_file: Path | None
) -> tuple[Tensor, Tensor, tuple[str, ...]]:
    """The image and the boxes of the line of a YOLO Keras TXT file
    (:mod:`~faster_rcnn.data.keras_txt`) that names a file of its name, wherever the line
    puts it, read as stored and clipped as the reader reads and clips them; the class
    names from ``classes_file``, else the classes file beside ``path``."""
    names_file = classes_file or classes_file_beside(path)
    if names_file is None or not names_file.is_file():
        raise FileNotFoundError(
            f"{path}: no classes file {names_file or 'beside it'}: give the class names "
            "with --classes FILE, one a line"
        )
    class_names = read_names_file(names_file)
    lines = read_keras_lines(path, class_names, names_file)
    named = (line for line in lines if written_path(line.path).name == image_path.name)
    annotated = next(named, None)
    if annotated is None:
        raise ValueError(f"{path} has no line of an image named {image_path.name!r}")
    boxes = [(box.where, box.box, class_names[box.class_id]) for box in annotated.boxes]
    return _with_clipped_boxes(read_image_levels(image_path), boxes, path)


def _createml_annotated(path: Path, image_path: Path) -> tuple[Tensor, Tensor, tuple[str, ...]]:
    """The image and the boxes of a CreateML file (:mod:`~faster_rcnn.data.createml`) on
    an image of its name, wherever the file puts it, read upright and clipped as the
    CreateML reader reads and clips them."""
    images = read_createml_images(path)
    named = (i for i in images if written_path(i.image).name == image_path.name)
    annotated = next(named, None)
    if annotated is None:
        raise ValueError(f"{path} has no image named {image_path.name!r}")
    boxes = [(box.where, box.box, box.label) for box in annotated.boxes]
    return _with_clipped_boxes(read_image_levels(image_path, exif_transpose=True), boxes, path)


def _labelme_annotated(path: Path, image_path: Path) -> tuple[Tensor, Tensor, tuple[str, ...]]:
    """The image and the boxes of a LabelMe file (:mod:`~faster_rcnn.data.labelme`), read
    upright and clipped as the LabelMe reader reads them; refused when neither the file's
    ``imagePath`` nor its own name is the image's (another image's boxes)."""
    record = read_labelme_file(path)
    named = written_path(record.image_path).name if record.image_path else None
    if path.stem.lower() != image_path.stem.lower() and named not in (None, image_path.name):
        raise ValueError(f"{path} annotates {named}, not {image_path.name}")
    image = read_image_levels(image_path, exif_transpose=True)
    upright_sizes([record], [image_path], str(path))  # warns of another recorded size
    warn_of_skipped_shapes([record], str(path))
    boxes = [(shape.where, shape.box, shape.label) for shape in record.shapes]
    return _with_clipped_boxes(image, boxes, path)


def _with_clipped_boxes(
    image: Tensor, boxes: Sequence[tuple[str, list[float], str]], source: Path
) -> tuple[Tensor, Tensor, tuple[str, ...]]:
    """``(C, H, W)`` ``image``, its ``(where, box, class name)`` ``boxes`` clipped to it as
    the readers clip theirs (:meth:`~faster_rcnn.data.box_audit.BoxAudit.clip_all`,
    warned about naming the annotation file ``source``) as ``float32[N, 4]``, and their
    class names."""
    audit = BoxAudit()
    kept, names = audit.clip_all(boxes, (int(image.shape[-2]), int(image.shape[-1])))
    audit.warn(str(source))
    return image, boxes_tensor(kept), tuple(names)


def _yolo_names(
    path: Path, classes_file: Path | None, model_names: Sequence[str]
) -> tuple[tuple[str, ...], str]:
    """Class names of a YOLO label file and where they are read: ``classes_file``, a
    names file beside it or up to two folders above it (``labels/<split>/``), else
    ``model_names`` ("the model")."""
    candidates = [classes_file] if classes_file else []
    candidates += [folder / name for folder in path.parents[:3] for name in NAMES_FILES]
    for candidate in candidates:
        if candidate.is_file():
            return read_names_file(candidate), str(candidate)
    if classes_file and classes_file.is_dir():
        raise ValueError(f"{classes_file} is a folder, not a classes file")
    if classes_file:
        raise FileNotFoundError(f"classes file {classes_file} does not exist")
    return tuple(model_names), "the model"


def _yolo_boxes(
    path: Path, image_size: tuple[int, int], class_names: tuple[str, ...], names_source: str
) -> tuple[Tensor, tuple[str, ...]]:
    """A YOLO label file's boxes in pixels, read by the YOLO reader's parser; a class not
    among ``class_names`` (read from ``names_source``) is refused naming its line."""
    audit = BoxAudit()
    classes, corners = parse_label_file(path, audit)
    audit.warn(str(path))
    if len(classes) and int(classes.max()) >= len(class_names):
        error = unnamed_class_error(path, class_names, names_source)
        raise ValueError(f"{error}; give the names with --classes FILE, one a line")
    height, width = image_size
    scale = torch.tensor([width, height, width, height], dtype=torch.float32)
    return corners * scale, tuple(class_names[k] for k in classes.tolist())


def _coco_annotated(path: Path, image_path: Path) -> tuple[Tensor, Tensor, tuple[str, ...]]:
    """The image named like ``image_path`` in a COCO file and its boxes (crowd left out,
    as in training). Where the file's ``file_name`` is the image, it is decoded as the
    COCO reader decodes it (turned where it turns it); else as stored."""
    # The image is the one given, wherever the file's file_name puts it: the file's other
    # images need not be there, nor this one where file_name says.
    dataset = COCODetection(image_path.parent, path, keep_missing_images=True)
    matches = [k for k, file in enumerate(dataset.image_files) if file.name == image_path.name]
    if not matches:
        raise ValueError(f"{path} has no image named {image_path.name!r}")
    if dataset.image_files[matches[0]].resolve() == image_path.resolve():
        image, target = dataset[matches[0]]
    else:
        image, target = read_image_levels(image_path), dataset.target(matches[0])
    target = drop_crowd(target)
    boxes, labels = cast(Tensor, target["boxes"]), cast(Tensor, target["labels"])
    return image, boxes, tuple(dataset.class_names[k - 1] for k in labels.tolist())
