"""YOLO (Darknet / Ultralytics) detection reader.

Layout under ``root``, where ``[split/]`` is present when a split is asked for::

    images/[split/]<name>.jpg|jpeg|png|bmp|webp|tif|tiff
    labels/[split/]<name>.txt     one "class cx cy w h" line per box, or a polygon
                                  "class x1 y1 x2 y2 x3 y3 ..." (its extent is the box)
    classes.txt or obj.names      optional, one class name per line (or in labels/[split/])

Label coordinates are the box centre and size as fractions of the image width and
height; classes count from 0, so class ``k`` is label ``k + 1``. Images are read upright,
turned by their EXIF orientation as Ultralytics reads them (OpenCV applies it), since
its users label and check their boxes on the turned image; Roboflow's exports are
turned already and carry no orientation. An image without a label
file has no object. Boxes reaching past the image border are clipped to it, and boxes
wholly outside it or without area (a width or height of 0 or below, a polygon whose
points all share one x or one y) dropped; both are counted in ``box_audit`` and reported
in a warning when the dataset is opened, as are label files whose image is not found.
Suffixes are read in any case (``a.TXT`` is the label file of ``a.JPG``): files copied
from Windows, whose file names ignore case, may have them so.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from ..counted import counted
from .box_audit import BoxAudit
from .dataset import (
    IMAGE_SUFFIXES,
    ImageFileDataset,
    Sample,
    Target,
    as_on_disk,
    boxes_tensor,
    empty_split_error,
    files_with_suffix,
    first_few,
    image_files_in,
    read_image_levels,
    read_text,
    read_upright_size,
    warn_of_images_left_out,
)

NAMES_FILES = ("classes.txt", "obj.names")
# What an empty split's message adds of an images folder without an image file.
NO_IMAGE_FILE = f"no {'/'.join(IMAGE_SUFFIXES)} file in it"
# A corner cx - w / 2 of fractions written with 6 decimals is off by up to 1e-6: a box
# that much past the border is the file's rounding, clipped without a warning.
FRACTION_ROUNDING = 1e-6


def read_names_file(path: Path) -> tuple[str, ...]:
    """The class names of a ``classes.txt`` / ``obj.names`` file: one a line, class ``k``
    on line ``k + 1``; blank lines after the last name left out.

    Raises:
        ValueError: a blank line before a name, naming the file and line: Darknet and
            LabelImg count it as a class, so leaving it out would give every name after
            it the id of the one before, and keeping it a class without a name.
    """
    names = [line.strip() for line in read_text(path).splitlines()]
    while names and not names[-1]:
        names.pop()
    if "" in names:
        line = names.index("") + 1
        raise ValueError(
            f"{path}, line {line}: blank, with class names after it: class k is the name on "
            "line k + 1, so a blank line takes an id; delete it or name its class"
        )
    return tuple(names)


class YOLODetection(ImageFileDataset):
    """Images and boxes of a YOLO-format dataset.

    All label files are parsed on construction, so a malformed line is reported at once.

    Args:
        root: the folder holding ``images/`` and ``labels/``.
        split: the subfolder of both, e.g. ``"train"``; None when they hold the files
            directly.

    Class names come from ``classes.txt`` or ``obj.names`` in ``root``, else in the
    labels folder (where LabelImg writes ``classes.txt``), else they are ``class0,
    class1, ...`` up to the largest class id found.

    ``dataset[i]`` is ``(image, target)``, the image as :func:`~.dataset.read_image_levels`
    decodes it (``uint8[3, H, W]`` levels of an 8-bit file), with target
    ``{"boxes": float32[N, 4] x1 y1 x2 y2 pixels, "labels": int64[N], "image_id": i}``.

    Attributes:
        box_audit: the boxes clipped to their image or dropped.
        label_to_category_id: ``{label: class id in the label files}`` (``k + 1: k``).
        unlabelled_images: the image files without a label file, read as holding no
            object (silently, unless no image has one), which ``faster-rcnn data``
            counts.

    Raises:
        FileNotFoundError: the images folder does not exist.
        ValueError: no image in the images folder (:func:`empty_split_error`), or a
            label line that is not five numbers or a polygon, with an integer class (among
            the names, where a file names them) and corners within one image size of the
            image (naming the file and line number).
    """

    def __init__(self, root: str | Path, split: str | None = None) -> None:
        self.root = Path(root)
        self.split = split
        images_dir = self.root / "images" if split is None else self.root / "images" / split
        labels_dir = self.root / "labels" if split is None else self.root / "labels" / split
        if not images_dir.is_dir():
            found = sorted(p.name for p in (self.root / "images").glob("*") if p.is_dir())
            listed = ", ".join(found) or "none"
            raise FileNotFoundError(
                f"YOLO images folder {images_dir} does not exist (splits found: {listed})"
            )
        self.image_files = image_files_in(images_dir)
        if not self.image_files:
            raise empty_split_error(images_dir, split, NO_IMAGE_FILE)
        label_files = as_on_disk([labels_dir / f"{p.stem}.txt" for p in self.image_files])
        names_files = [folder / n for folder in (self.root, labels_dir) for n in NAMES_FILES]
        names_file = next((path for path in names_files if path.is_file()), None)
        names = read_names_file(names_file) if names_file is not None else None
        self._load(label_files, names, str(names_file), str(labels_dir))
        warn_of_unread_labels(label_files, str(labels_dir))

    def _load(
        self,
        label_files: list[Path],
        class_names: tuple[str, ...] | None,
        names_source: str,
        source: str,
    ) -> None:
        """Parse the label file of each image of ``self.image_files``; ``class_names``
        None names the classes ``class0, class1, ...`` up to the largest id found.
        ``names_source`` and ``source`` name where the names and the labels come from."""
        self.box_audit = BoxAudit()
        # Per image: (height, width) upright once its header is read (:meth:`image_size`).
        self._sizes: list[tuple[int, int] | None] = [None] * len(self.image_files)
        # Per image: int64[N] class ids and float32[N, 4] x1, y1, x2, y2 in 0..1.
        self._labels = [parse_label_file(path, self.box_audit) for path in label_files]
        self.box_audit.warn(source)
        self.unlabelled_images = [
            image
            for image, path in zip(self.image_files, label_files, strict=True)
            if not path.is_file()
        ]
        if len(self.unlabelled_images) == len(label_files):  # as Ultralytics warns
            warnings.warn(
                f"{source}: no label file for any of the {counted(len(label_files), 'image')} (as "
                f"{label_files[0]}): every image is read as holding no object",
                stacklevel=3,
            )
        largest = [int(c.max()) if len(c) else -1 for c, _ in self._labels]
        if class_names is None:
            class_names = tuple(f"class{k}" for k in range(max(largest, default=-1) + 1))
        self.class_names: tuple[str, ...] = class_names
        # The file's class ids, as detections are written for this data (Ultralytics'
        # predictions JSON writes them so): label k + 1 is class k.
        self.label_to_category_id = {k + 1: k for k in range(len(class_names))}
        for path, class_id in zip(label_files, largest, strict=True):
            if class_id >= len(self.class_names):
                raise unnamed_class_error(path, self.class_names, names_source)

    def __getitem__(self, index: int) -> Sample:
        # The boxes scale with the image size: take it from the decoded image.
        image = self._read_image(index)
        return image, self._target(index, (image.shape[-2], image.shape[-1]))

    def target(self, index: int) -> Target:
        """The target of image ``index``; only the image file's header is read."""
        return self._target(index, self.image_size(index))

    def image_size(self, index: int) -> tuple[int, int]:
        """``(height, width)`` of image ``index`` upright, from its file's header, read once:
        the recipe, the loader's aspect-ratio groups and the audits each ask for it."""
        path = self.image_path(index)  # checks the index
        size = self._sizes[index]
        if size is None:
            size = self._sizes[index] = read_upright_size(path)
        return size

    def _read_image(self, index: int) -> Tensor:
        return read_image_levels(self.image_path(index), exif_transpose=True)

    def _target(self, index: int, size: tuple[int, int]) -> Target:
        height, width = size
        classes, corners = self._labels[index]
        scale = torch.tensor([width, height, width, height], dtype=torch.float32)
        return {"boxes": corners * scale, "labels": classes + 1, "image_id": index}


def unnamed_class_error(path: Path, names: tuple[str, ...], names_source: str) -> ValueError:
    """The error of the label file ``path`` naming its first line whose class is not among
    the ``names`` (read from ``names_source``), as the errors of a malformed line do."""
    lines = enumerate(read_text(path).splitlines(), start=1)
    line_number, class_id = next(
        (number, class_id)
        for number, line in lines
        if line.strip() and (class_id := int(float(line.split()[0]))) >= len(names)
    )
    ids = f" (ids 0 to {len(names) - 1})" if len(names) > 1 else " (id 0)" if names else ""
    return ValueError(
        f"{path}, line {line_number}: class {class_id} is not among the "
        f"{counted(len(names), 'class')} named in {names_source}{ids}"
    )


class YOLOFolder(YOLODetection):
    """LabelImg's YOLO format: images with the label file of each beside it (``a.txt`` of
    ``a.jpg``) and ``classes.txt`` in their folder, where LabelImg writes both. LabelImg
    writes a label file for each image it saves, an empty one for an image without
    boxes: an image without one was never annotated, and is left out with a warning.

    Args:
        folder: the folder of the images, their label files and ``classes.txt``.

    Raises:
        ValueError: no image in ``folder`` has a label file, or a label problem (named).
    """

    def __init__(self, folder: str | Path) -> None:
        self.root, self.split = Path(folder), None
        images = image_files_in(self.root)
        wanted = [p.with_suffix(".txt") for p in images]
        labels = dict(zip(images, as_on_disk(wanted), strict=True))
        self.image_files = [p for p in images if labels[p].is_file()]
        if not self.image_files:
            raise ValueError(
                f"{self.root}: no image has a label file beside it (as a.txt of a.jpg), as "
                "LabelImg writes them in YOLO format"
            )
        labelled = set(self.image_files)  # a list's membership test is quadratic in them
        warn_of_images_left_out(
            [p for p in images if p not in labelled],
            str(self.root),
            ("image has no .txt and is", "images have no .txt and are"),
            "an image without objects needs an empty .txt to be trained on",
        )
        label_files = [labels[p] for p in self.image_files]
        names_file = self.root / NAMES_FILES[0]
        self._load(label_files, read_names_file(names_file), str(names_file), str(self.root))
        warn_of_unread_labels(label_files, str(self.root))


def warn_of_unread_labels(label_files: Sequence[Path], source: str) -> None:
    """Warn of the ``.txt`` files in the folders of ``label_files`` that are not among
    them: no image of theirs was found (missing, named in another case, or of a format
    the readers do not take), so their boxes would be lost without a word."""
    read = set(label_files)
    unread = sorted(
        path.name
        for folder in sorted({p.parent for p in label_files})
        for path in files_with_suffix(folder, ".txt")
        if path not in read and path.name not in NAMES_FILES
    )
    if unread:
        warnings.warn(
            f"{source}: {counted(len(unread), 'label file is', 'label files are')} not read, "
            "no image of theirs was found "
            f"({'/'.join(IMAGE_SUFFIXES)}): {first_few(unread)}",
            stacklevel=3,
        )


def parse_label_file(path: Path, audit: BoxAudit) -> tuple[Tensor, Tensor]:
    """``(int64[N] class ids, float32[N, 4] x1, y1, x2, y2 as fractions)`` of one label
    file, boxes clipped to the image (those outside it dropped, both counted in
    ``audit``); empty when the file does not exist."""
    classes: list[int] = []
    rows: list[list[float]] = []
    if not path.is_file():
        return torch.zeros(0, dtype=torch.int64), boxes_tensor(rows)
    for line_number, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path.name}, line {line_number}"
        class_id, corners = _parse_label_line(line, f"{path}, line {line_number}")
        clipped = audit.clip(
            corners, 1.0, 1.0, where, rounding=FRACTION_ROUNDING, frame="in image fractions"
        )
        if clipped is not None:
            classes.append(class_id)
            rows.append(clipped)
    return torch.tensor(classes, dtype=torch.int64), boxes_tensor(rows)


def _parse_label_line(line: str, where: str) -> tuple[int, list[float]]:
    """The class and the ``x1, y1, x2, y2`` fractions of one ``class cx cy w h`` line, or
    of one ``class x1 y1 x2 y2 x3 y3 ...`` polygon line (Ultralytics' segment and
    oriented-box labels: the box is the polygon's extent)."""
    try:
        values = [float(v) for v in line.split()]
    except ValueError:
        raise ValueError(f"{where}: {line.strip()!r} is not numbers") from None
    if len(values) != 5 and (len(values) < 7 or len(values) % 2 == 0):
        raise ValueError(
            f"{where}: expected 5 values 'class cx cy w h' or a polygon 'class x1 y1 x2 y2 "
            f"x3 y3 ...', got {len(values)}"
        )
    class_id = values[0]
    if not class_id.is_integer() or class_id < 0:
        raise ValueError(f"{where}: class {class_id:g} is not an integer >= 0")
    corners = _box_corners(values[1:], where) if len(values) == 5 else _extent(values[1:], where)
    return int(class_id), corners


def _box_corners(values: list[float], where: str) -> list[float]:
    """``x1, y1, x2, y2`` of a ``cx cy w h`` box in fractions of the image size."""
    cx, cy, w, h = values
    corners = [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]
    # Fractions of the image size: a box reaching further than one image size beyond it
    # (pixel coordinates, most likely) is an error, not a box to clip. A size of 0 or
    # below is a box without area, which the reader drops as it drops any (BoxAudit).
    if not all(-1.0 <= v <= 2.0 for v in corners):
        raise ValueError(
            f"{where}: cx cy w h = {cx:g} {cy:g} {w:g} {h:g} must be fractions of the image "
            "size (the box within one image size of the image)"
        )
    return corners


def _extent(points: list[float], where: str) -> list[float]:
    """``x1, y1, x2, y2`` enclosing a polygon's ``x y`` points, fractions of the image."""
    xs, ys = points[0::2], points[1::2]
    for k, (x, y) in enumerate(zip(xs, ys, strict=True)):
        if not (-1.0 <= x <= 2.0 and -1.0 <= y <= 2.0):  # NaN fails too
            raise ValueError(
                f"{where}: polygon point {k + 1} (x y = {x:g} {y:g}) must be fractions of "
                "the image size, within one image size of the image"
            )
    # A polygon whose points all share one x or one y has an extent without area, which
    # the reader drops as it drops any box without area (BoxAudit).
    return [min(xs), min(ys), max(xs), max(ys)]
