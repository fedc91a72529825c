"""CSV of boxes reader: the TensorFlow Object Detection CSV (Roboflow's "Tensorflow
Object Detection CSV" export, the raccoon dataset's own CSV and many Kaggle sets), and
keras-retinanet's CSV, which has no header.

Layout::

    <folder>/_annotations.csv      one box a row, under a header row
    <folder>/*.jpg                 the images it names, beside it

The header names the columns, in any order and any case; others are ignored::

    filename,width,height,class,xmin,ymin,xmax,ymax

``width`` and ``height`` may be left out (both): the image file's size is then the only
one. The corners are continuous pixel coordinates, as TensorFlow's ``generate_tfrecord``
reads them (``xmin / width``), not VOC's 1-based indices. Rows of one image need not be
together; the images keep the order in which the file first names them, and the classes
are the names found, sorted (:class:`~.class_order.InClassOrder` renumbers a split to
another's).

Each image file's header is read when the file is opened and checked against the
recorded ``width`` and ``height`` as the COCO and VOC readers check theirs
(:func:`~.dataset.image_sizes`: the file decides, or turns the image by its EXIF
orientation where the recorded size is its turned one; a warning either way). Boxes are
clipped to that size and those wholly outside it dropped, counted in ``box_audit`` and
warned about on opening.

An image without objects is a row of its file name with the class and the corners left
empty (``a.jpg,,,,,,,``, keras-retinanet's convention; its width and height may be
given). An image beside the CSV that no row names is left out, with one warning naming
it, as :class:`~.voc_folder.VOCFolder` leaves out an image without an ``.xml``: it may be
one not labelled yet. An image a row names that is not there (deleted after
labelling) is left out with its rows, with one warning (:func:`~.dataset.images_there`);
one that is there but cannot be decoded is left to the run to skip, or stop at under
``--strict`` (:mod:`.unreadable`).

keras-retinanet's CSV (fizyr's keras-retinanet, yhenon's pytorch-retinanet and the Kaggle
kernels built on them) has no header; its rows are::

    path/to/image.jpg,x1,y1,x2,y2,class_name
    path/to/image2.jpg,,,,,          an image without objects

``path`` is relative to the CSV's folder (its images may be in folders of their own) or
absolute; the corners are read as the header's are, the size from the image file. Its
first row tells it from a header (:func:`is_retinanet_csv`): a row with a number among
its corners, or with the class and corners empty. Its class order is that of the
``classes.csv`` beside it (:mod:`.class_mapping`), where there is one; a box of another
class is refused. An image that no row names is not warned of: the images of its splits
(``train.csv``, ``val.csv``) often share one folder.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path

from torch import Tensor

from ..counted import counted
from .box_audit import audited_targets
from .class_mapping import CLASS_MAPPING_FILE, class_mapping_in, read_class_mapping
from .dataset import (
    NO_IMAGE_BESIDE,
    TargetsReadOnOpening,
    empty_split_error,
    first_few,
    holds_images,
    image_sizes,
    images_beside,
    images_there,
    numbered_csv_rows,
    read_image_levels,
    read_text_start,
    warn_of_images_left_out,
    written_path,
)

# The file Roboflow writes in each split folder.
ANNOTATIONS_FILE = "_annotations.csv"
# The columns every row needs; "width" and "height" are read where both are there.
NEEDED_COLUMNS = ("filename", "class", "xmin", "ymin", "xmax", "ymax")
SIZE_COLUMNS = ("width", "height")
CORNERS = NEEDED_COLUMNS[2:]
# Enough of a CSV to hold its first row, which tells keras-retinanet's from a header.
FIRST_ROW_BYTES = 1 << 16


@dataclass(frozen=True)
class RowFormat:
    """Where the rows of a CSV hold their values, and how its errors name them.

    Attributes:
        columns: the field of each value, by its name in the header (``filename``,
            ``class``, ``xmin``, ``ymin``, ``xmax``, ``ymax``; ``width`` and ``height``
            where given).
        length: the fields a row has.
        expected: what a row of another length is told (``"the header has 8"``).
        shown: the name the errors give a value, where not its name in ``columns``.
    """

    columns: Mapping[str, int]
    length: int
    expected: str
    shown: Mapping[str, str] = field(default_factory=dict)

    def name(self, column: str) -> str:
        """What the errors call ``column``: ``x1`` in keras-retinanet's rows for ``xmin``."""
        return self.shown.get(column, column)


# keras-retinanet's rows, which have no header: path,x1,y1,x2,y2,class_name.
RETINANET_ROW = RowFormat(
    columns={"filename": 0, "xmin": 1, "ymin": 2, "xmax": 3, "ymax": 4, "class": 5},
    length=6,
    expected="keras-retinanet's rows have 6: path,x1,y1,x2,y2,class_name",
    shown={"xmin": "x1", "ymin": "y1", "xmax": "x2", "ymax": "y2"},
)


@dataclass(frozen=True)
class CSVRow:
    """One box of a CSV, checked: where it is, its image, class and corners; or a row
    that names an image without objects (``box`` ``None``, ``name`` empty)."""

    line: int
    where: str  # "<file>, line 3, a.jpg [2, 3, 20, 25]", as the errors name it
    filename: str
    name: str
    box: list[float] | None  # x1, y1, x2, y2 pixels
    size: tuple[int, int] | None  # (height, width) recorded, None without the columns


class CSVDetection(TargetsReadOnOpening):
    """The images and boxes of one TensorFlow Object Detection or keras-retinanet CSV file
    (see the module).

    Args:
        annotation_file: the ``.csv`` file; the images of a TensorFlow one are looked for
            beside it, those of a keras-retinanet one where its paths say.
        split: the split it is (Roboflow's ``train/``), for the error of one without
            images; ``None`` for a file without splits.

    ``dataset[i]`` is ``(image, target)``, the image as :func:`~.dataset.read_image_levels`
    decodes it (``uint8[3, H, W]`` levels of an 8-bit file), with target
    ``{"boxes": float32[N, 4] x1 y1 x2 y2 pixels, "labels": int64[N], "image_id": i}``.

    Attributes:
        box_audit: the boxes clipped to their image or dropped (warned about on opening).
        class_file: the class mapping of a keras-retinanet CSV, which gives the class
            order; ``None`` where there is none (the classes are then sorted by name).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is a class mapping (``classes.csv``); no image beside a
            TensorFlow CSV, none of those it names there, or
            no row (:func:`empty_split_error`); a bad class mapping
            (:func:`~.class_mapping.read_class_mapping`); or a bad first row, header or
            row, in one line naming the file, the line and, for a row, its image and box:
            a first row that is neither a header nor keras-retinanet's, a column missing,
            a row of another length than the header (or keras-retinanet's 6), an empty
            file name, no class where a corner is given, a class the class mapping lacks,
            a corner or size that is not a number, ``xmax <= xmin`` or ``ymax <= ymin``,
            a size that is not a whole number above 0 or that another row of the image
            contradicts.
    """

    def __init__(self, annotation_file: str | Path, split: str | None = None) -> None:
        self.annotation_file = Path(annotation_file)
        if not self.annotation_file.is_file():
            raise FileNotFoundError(f"CSV annotation file {self.annotation_file} does not exist")
        if self.annotation_file.name.lower() == CLASS_MAPPING_FILE:
            raise ValueError(
                f"{self.annotation_file} is keras-retinanet's class mapping (class_name,id), "
                "not boxes: open the CSV of boxes beside it"
            )
        folder = self.annotation_file.parent
        retinanet = is_retinanet_csv(self.annotation_file)
        if not retinanet and not holds_images(folder):
            raise empty_split_error(self.annotation_file, split, NO_IMAGE_BESIDE)
        by_image = read_rows_by_image(self.annotation_file)
        if not by_image:
            raise empty_split_error(self.annotation_file, split, "no row under its header")
        self.class_file = class_mapping_in(folder) if retinanet else None
        mapped = None if self.class_file is None else _mapped(self.class_file, by_image.values())
        files = [folder / written_path(name) for name in by_image]
        kept = images_there(files, self.annotation_file, split)
        self.image_files = [files[k] for k in kept]
        named = list(by_image.values())
        rows = [named[k] for k in kept]
        if not retinanet:  # whose splits' images often share a folder
            warn_of_images_left_out(
                images_beside(self.image_files),
                str(self.annotation_file),
                ("image is in no row and", "images are in no row and"),
                "a row of its file name with the class and corners left empty makes an image "
                "one without objects",
            )
        self.class_names: tuple[str, ...] = mapped or tuple(
            sorted({r.name for rs in rows for r in rs} - {""})
        )
        self._set_targets(rows)

    def _set_targets(self, rows: list[list[CSVRow]]) -> None:
        """Each image's size (:func:`image_sizes`), boxes clipped to it (``float32[N,
        4]``) and labels, from its ``rows``."""
        source = str(self.annotation_file)
        names = [f"{rs[0].filename}, line {rs[0].line}" for rs in rows]
        recorded = [rs[0].size for rs in rows]
        sizes = image_sizes(recorded, self.image_files, names, source, "width and height")
        self._sizes, self._turned = sizes.sizes, sizes.turned
        label_of = {name: k + 1 for k, name in enumerate(self.class_names)}
        boxes = (
            [(f"line {r.line}, {r.filename}", r.box, label_of[r.name]) for r in rs if r.box]
            for rs in rows
        )
        self.box_audit, self._boxes, self._labels = audited_targets(boxes, self._sizes, source)

    def _read_image(self, index: int) -> Tensor:
        return read_image_levels(self.image_path(index), exif_transpose=index in self._turned)


def read_rows_by_image(file: Path) -> dict[str, list[CSVRow]]:
    """The rows of the CSV ``file`` by their image's file name as written, in the order
    the file first names each (see :func:`_read_rows` and :func:`_rows_by_image`).

    Raises:
        ValueError: a bad header or row (see :class:`CSVDetection`).
    """
    return _rows_by_image(_read_rows(file))


def is_retinanet_csv(file: Path) -> bool:
    """Whether the CSV ``file`` is keras-retinanet's, without a header: its first row is a
    box (:func:`_is_box_row`), read from its first :data:`FIRST_ROW_BYTES` alone (the
    file is read whole once, for its rows). Not where that row cannot be read as CSV:
    reading the rows says why."""
    start = read_text_start(file, FIRST_ROW_BYTES)
    try:
        first = next(csv.reader(io.StringIO(start, newline="")), [])
    except csv.Error:
        return False
    return _is_box_row(first)


def _is_box_row(row: list[str]) -> bool:
    """Whether the first ``row`` of a CSV is a box, keras-retinanet's, not a header: a
    number among its fields 2 to 5, its corners (no header names a column by a number),
    or six fields, the last five empty (an image without objects)."""
    values = [value.strip() for value in row]
    no_object = len(values) == RETINANET_ROW.length and not any(values[1:])
    return no_object or any(_finite(value) is not None for value in values[1:5])


def _read_rows(file: Path) -> list[CSVRow]:
    """The rows of the CSV ``file``, each checked (:func:`_parse_row`), under its header
    or, where its first row is a box, as keras-retinanet's; blank lines are passed over.

    Raises:
        ValueError: the file is empty, its first row is a box of other than six fields,
            its header lacks a column (naming it and the columns it has), or a row is
            bad (see :class:`CSVDetection`).
    """
    rows = numbered_csv_rows(file)
    first_line, first = next(rows, (1, []))
    if not any(value.strip() for value in first):
        raise ValueError(
            f"{file}: empty, expected the header {','.join(_all_columns())}, or "
            "keras-retinanet's rows path,x1,y1,x2,y2,class_name"
        )
    if _is_box_row(first):
        if len(first) != RETINANET_ROW.length:
            raise ValueError(
                f"{file}, line {first_line}: a row of {counted(len(first), 'field')} where "
                f"a header was expected ({','.join(_all_columns())}), or keras-retinanet's "
                "rows of 6, without one: path,x1,y1,x2,y2,class_name"
            )
        rows = chain([(first_line, first)], rows)
        form = RETINANET_ROW
    else:
        form = _header_format(file, first_line, first)
    return [
        _parse_row(row, form, file, line)
        for line, row in rows
        if any(value.strip() for value in row)
    ]


def _header_format(file: Path, line: int, names: list[str]) -> RowFormat:
    """Where the rows hold their values, by the header ``names`` on ``line`` of ``file``.

    Raises:
        ValueError: the header lacks a column, naming it and the columns it has; where
            it names none of those needed, saying what keras-retinanet's rows are.
    """
    header = [name.strip().lower() for name in names]
    columns = {name: k for k, name in enumerate(header)}
    wanted = NEEDED_COLUMNS + (SIZE_COLUMNS if any(c in columns for c in SIZE_COLUMNS) else ())
    missing = [name for name in wanted if name not in columns]
    if missing:
        retinanet = ""
        if len(missing) >= len(NEEDED_COLUMNS):  # no header at all
            retinanet = (
                "; nor is it a box of keras-retinanet's CSV, which has no header: "
                "path,x1,y1,x2,y2,class_name, the corners numbers"
            )
        # A name that holds a line break (a quote left open) is shown quoted: one line.
        shown = ", ".join(name if name.isprintable() else repr(name) for name in header)
        raise ValueError(
            f"{file}, line {line}: no {', '.join(map(repr, missing))} column (the "
            f"header has {shown}; needed: {', '.join(_all_columns())}){retinanet}"
        )
    return RowFormat(columns, len(header), f"the header has {len(header)}")


def _all_columns() -> list[str]:
    """The header Roboflow writes, in its order."""
    return ["filename", *SIZE_COLUMNS, *NEEDED_COLUMNS[1:]]


def _parse_row(row: list[str], form: RowFormat, file: Path, line: int) -> CSVRow:
    """The row on ``line`` of ``file``, checked (``form``: where its values are)."""
    where = f"{file}, line {line}"
    if len(row) != form.length:
        raise ValueError(f"{where}: {counted(len(row), 'field')}, where {form.expected}")
    value = {name: row[k].strip() for name, k in form.columns.items()}
    corners = [value[name] for name in CORNERS]
    where = f"{where}, {value['filename'] or '(no file name)'} [{', '.join(corners)}]"
    if not value["filename"]:
        raise ValueError(f"{where}: no file name")
    sized = "width" in form.columns
    if not value["class"] and not any(corners):  # keras-retinanet's image without objects
        size = _size_if_given(value, where) if sized else None
        return CSVRow(line, where, value["filename"], "", None, size)
    if not value["class"]:
        raise ValueError(f"{where}: no class name")
    x1, y1, x2, y2 = (_number(value[name], form.name(name), where) for name in CORNERS)
    if x2 <= x1 or y2 <= y1:
        low, high = ("xmin", "xmax") if x2 <= x1 else ("ymin", "ymax")
        raise ValueError(
            f"{where}: {form.name(high)} {value[high]} is not greater than "
            f"{form.name(low)} {value[low]}"
        )
    size = (_size(value, "height", where), _size(value, "width", where)) if sized else None
    return CSVRow(line, where, value["filename"], value["class"], [x1, y1, x2, y2], size)


def _finite(text: str) -> float | None:
    """The finite number ``text`` is; ``None`` where it is none."""
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _number(text: str, name: str, where: str) -> float:
    """The finite number ``text`` of the column ``name`` of a row."""
    number = _finite(text)
    if number is None:
        raise ValueError(f"{where}: {name} {text!r} is not a number")
    return number


def _size(value: dict[str, str], name: str, where: str) -> int:
    """The image side in column ``name`` (``width``, ``height``): a whole number above 0."""
    number = _number(value[name], name, where)
    if not number.is_integer() or number <= 0:
        raise ValueError(f"{where}: {name} {value[name]} is not a whole number above 0")
    return int(number)


def _size_if_given(value: dict[str, str], where: str) -> tuple[int, int] | None:
    """A row's recorded ``(height, width)``, ``None`` where both are left empty."""
    if not value["width"] and not value["height"]:
        return None
    return _size(value, "height", where), _size(value, "width", where)


def _rows_by_image(rows: Sequence[CSVRow]) -> dict[str, list[CSVRow]]:
    """``rows`` by their file name, in the order the file first names each.

    Raises:
        ValueError: a row whose size differs from the one an earlier row of its image
            gives (a file written from two versions of it).
    """
    by_image: dict[str, list[CSVRow]] = {}
    for row in rows:
        first = by_image.setdefault(row.filename, [row])[0]
        if first is row:
            continue
        if row.size != first.size:
            raise ValueError(
                f"{row.where}: width and height {_shown(row.size)}, where line {first.line} "
                f"gives {_shown(first.size)}"
            )
        by_image[row.filename].append(row)
    return by_image


def _mapped(class_file: Path, rows: Iterable[list[CSVRow]]) -> tuple[str, ...]:
    """The classes of the mapping ``class_file`` in its order, each of the ``rows`` (of
    all images, there or not) checked to have a class of it, or none.

    Raises:
        ValueError: a bad mapping (:func:`read_class_mapping`), or a row of another class,
            naming it, its line, image and box.
    """
    names = read_class_mapping(class_file)
    for row in (row for image_rows in rows for row in image_rows):
        if row.name and row.name not in names:
            raise ValueError(
                f"{row.where}: class {row.name!r} is not in {class_file} "
                f"({first_few(list(names), 5)})"
            )
    return names


def _shown(size: tuple[int, int] | None) -> str:
    """A recorded ``(height, width)`` as ``width x height``."""
    return "none" if size is None else f"{size[1]}x{size[0]}"
