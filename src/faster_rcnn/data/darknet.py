"""YOLO datasets in Darknet's layout, as CVAT's "YOLO 1.1" export writes them::

    obj.data             classes = 2, names = data/obj.names, train = data/train.txt,
                         valid = data/valid.txt (optional), backup = backup/
    obj.names            one class name per line
    train.txt            one image a line: data/obj_train_data/img1.jpg
    obj_train_data/      the images and, beside each, its label file img1.txt
    valid.txt, obj_valid_data/   another subset, where there is one

Each ``obj.data`` entry whose value is a ``.txt`` list (other than ``names``) is a split,
named by its key: ``train``, ``valid``. Paths in ``obj.data`` and in the lists are
written as Darknet reads them, from the folder above this one, which it names ``data/``
(``data/obj_train_data/img1.jpg``): their first folder stands for this one, whatever its
name. A path whose first folder is in this one (``obj_train_data/img1.jpg``) is relative
to it. The labels are read as :class:`~faster_rcnn.data.yolo.YOLODetection` reads them.
"""

from __future__ import annotations

from pathlib import Path

from ..counted import counted
from .dataset import (
    as_on_disk,
    empty_split_error,
    images_there,
    listed_once,
    read_text,
    written_path,
)
from .yolo import YOLODetection, read_names_file, warn_of_unread_labels

DATA_FILE = "obj.data"
NAMES_FILE = "obj.names"
# obj.data keys that are not splits; any other whose value is a .txt list is one.
NOT_SPLITS = ("classes", "names", "backup")


def read_obj_data(file: Path) -> dict[str, str]:
    """The ``key = value`` entries of an ``obj.data`` file (``#`` starts a comment).

    Raises:
        ValueError: a line that is not ``key = value``, naming it.
    """
    entries = {}
    for line_number, line in enumerate(read_text(file).splitlines(), start=1):
        text = line.partition("#")[0].strip()
        if not text:
            continue
        key, equals, value = (part.strip() for part in text.partition("="))
        if not equals or not key:
            raise ValueError(f"{file}, line {line_number}: {text!r} is not 'key = value'")
        entries[key] = value
    return entries


def darknet_splits(entries: dict[str, str]) -> dict[str, str]:
    """The split lists of ``obj.data``'s ``entries``: ``{split: list path}``."""
    return {
        key: value
        for key, value in entries.items()
        if key not in NOT_SPLITS and value.lower().endswith(".txt")
    }


def darknet_path(root: Path, name: str) -> Path:
    """A path of ``obj.data`` or of a list, in the folder ``root``: relative to it where
    its first folder is in it, else written from Darknet's folder, which holds this one
    as ``data/`` (CVAT's ``data/obj_train_data/x.jpg``). Darknet on Windows separates
    folders by a backslash (``data\\obj\\x.jpg``)."""
    path = written_path(name)
    if path.is_absolute() or len(path.parts) < 2 or (root / path.parts[0]).is_dir():
        return root / path
    return root.joinpath(*path.parts[1:])


class DarknetYOLO(YOLODetection):
    """The images and boxes of one split of a Darknet folder (see the module).

    Args:
        root: the folder holding ``obj.data``.
        split: an ``obj.data`` key naming a list, ``train`` or ``valid``.

    Class names come from the file ``obj.data`` names (``obj.names`` where it names
    none), and must be as many as its ``classes`` where it gives them.

    Raises:
        FileNotFoundError: the split's list does not exist.
        ValueError: a malformed ``obj.data`` or label, no such split, or no image in it
            (:func:`empty_split_error`).

    An image of the list that is not there is left out with a warning naming it
    (:func:`~faster_rcnn.data.dataset.images_there`); one listed more than once is read
    once, with a warning (:func:`~faster_rcnn.data.dataset.listed_once`).
    """

    def __init__(self, root: str | Path, split: str = "train") -> None:
        self.root = Path(root)
        self.split = split
        data_file = self.root / DATA_FILE
        entries = read_obj_data(data_file)
        lists = darknet_splits(entries)
        if split not in lists:
            raise ValueError(f"{data_file} names no {split!r} split (it names {list(lists)})")
        listed = darknet_path(self.root, lists[split])
        if not listed.is_file():
            raise FileNotFoundError(f"{data_file}: the {split} list {listed} does not exist")
        lines = [line.strip() for line in read_text(listed).splitlines() if line.strip()]
        images = listed_once([darknet_path(self.root, line) for line in lines], listed)
        if not images:
            raise empty_split_error(listed, split)
        kept = images_there(images, listed, split)
        listed_labels = as_on_disk([image.with_suffix(".txt") for image in images])
        self.image_files = [images[k] for k in kept]
        label_files = [listed_labels[k] for k in kept]
        names_file = darknet_path(self.root, entries.get("names", NAMES_FILE))
        names = _names(names_file, data_file, entries.get("classes"))
        self._load(label_files, names, str(names_file), f"{self.root} ({split})")
        # The label file of an image left out is not unread: the image is named as gone.
        warn_of_unread_labels(listed_labels, f"{self.root} ({split})")


def _names(file: Path, data_file: Path, classes: str | None) -> tuple[str, ...] | None:
    """The class names of ``file`` (None where it does not exist), as many as
    ``obj.data``'s ``classes`` where it gives them."""
    if not file.is_file():
        return None
    names = read_names_file(file)
    if classes is not None and classes != str(len(names)):
        raise ValueError(
            f"{data_file}: 'classes = {classes}' but {file} names "
            f"{counted(len(names), 'class')}: they must agree"
        )
    return names
