"""keras-retinanet's class mapping file: the class order of its CSV of boxes.

keras-retinanet (``retinanet-train csv annotations.csv classes.csv``), yhenon's
pytorch-retinanet and the Kaggle kernels built on them take, beside the boxes, a CSV
without a header that gives each class an id, a class a row::

    cow,0
    cat,1
    bird,2

The ids are ``0..N-1``, the background implicit: the class of id ``i`` is label
``i + 1`` here. A class no box has keeps its place, so that splits read with one mapping
(``train.csv`` and ``val.csv``) label alike.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..counted import counted
from .dataset import files_with_suffix, numbered_csv_rows

# The name keras-retinanet's README and most datasets give it, matched in any case.
CLASS_MAPPING_FILE = "classes.csv"


def class_mapping_in(folder: Path) -> Path | None:
    """The ``classes.csv`` in ``folder``, its name in any case (``Classes.csv``); ``None``
    where there is none."""
    return next(
        (
            path
            for path in files_with_suffix(folder, ".csv")
            if path.name.lower() == CLASS_MAPPING_FILE
        ),
        None,
    )


def read_class_mapping(file: Path) -> tuple[str, ...]:
    """The class names of the mapping ``file``, in the order of their ids; blank lines
    are passed over.

    Raises:
        ValueError: in one line naming the file and the line: a row of other than two
            fields, no class name, an id that is not a whole number, a name or an id
            given on an earlier line too, an id outside ``0..N-1`` (``N`` rows), or no
            row at all.
    """
    by_id: dict[int, tuple[str, int]] = {}  # id -> (name, line)
    line_of: dict[str, int] = {}
    rows = [(line, row) for line, row in numbered_csv_rows(file) if any(v.strip() for v in row)]
    for line, row in rows:
        where = f"{file}, line {line}"
        name, class_id = _mapping_row(row, where)
        if name in line_of:
            raise ValueError(f"{where}: class {name!r} is given on line {line_of[name]} too")
        if class_id in by_id:
            other, other_line = by_id[class_id]
            raise ValueError(
                f"{where}: id {class_id} of {name!r} is given to {other!r} on line {other_line} too"
            )
        if not 0 <= class_id < len(rows):
            raise ValueError(
                f"{where}: id {class_id} of {name!r} is not among 0 to {len(rows) - 1}: the "
                f"{counted(len(rows), 'class is', 'classes are')} numbered from 0, the "
                "background implicit"
            )
        by_id[class_id], line_of[name] = (name, line), line
    if not by_id:
        raise ValueError(f"{file}: no class, where each row is class_name,id (cat,0)")
    return tuple(by_id[k][0] for k in range(len(by_id)))


def _mapping_row(row: list[str], where: str) -> tuple[str, int]:
    """The class name and id of a mapping ``row`` (``where``: its file and line)."""
    if len(row) != 2:
        raise ValueError(
            f"{where}: {counted(len(row), 'field')}, where a row is class_name,id (cat,0)"
        )
    name, text = (value.strip() for value in row)
    if not name:
        raise ValueError(f"{where}: no class name")
    if not re.fullmatch(r"-?[0-9]+", text):
        raise ValueError(f"{where}: id {text!r} of {name!r} is not a whole number")
    return name, int(text)
