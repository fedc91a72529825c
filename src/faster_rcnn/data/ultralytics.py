"""YOLO datasets described by an Ultralytics data YAML (``--data data.yaml``)::

    path: ../datasets/coco128   # the dataset root; relative to the YAML's folder
    train: images/train2017     # a folder of images, a .txt list of images, or a list
    val: images/val2017
    test:                       # optional
    names: {0: person, 1: bicycle}   # or a list: [person, bicycle]

Each image's labels are at the same path with its last ``images`` folder replaced by
``labels`` and the suffix by ``.txt`` (Ultralytics' rule); the labels are read as
:class:`~faster_rcnn.data.yolo.YOLODetection` reads them. In a ``.txt`` list, a relative
path is relative to the list's folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ..counted import counted
from .dataset import (
    as_on_disk,
    empty_split_error,
    empty_split_message,
    images_there,
    is_image_file,
    listed_once,
    read_text,
    written_path,
)
from .yolo import YOLODetection, warn_of_unread_labels

SPLIT_KEYS = ("train", "val", "test")


class _DataYAMLLoader(yaml.SafeLoader):
    """``yaml.safe_load``'s reading without YAML 1.1's truth values: an unquoted class name
    ``yes``, ``no``, ``on`` or ``off`` (a switch's states) stays that name, where
    ``safe_load`` made it ``True`` or ``False``. No entry of a data YAML is a truth value."""


_DataYAMLLoader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def read_data_yaml(file: Path) -> dict[str, Any]:
    """The YAML's mapping, checked to be one.

    Raises:
        ValueError: not YAML, or not a mapping with ``names``.
    """
    try:
        data = yaml.load(read_text(file), Loader=_DataYAMLLoader)
    except yaml.YAMLError as error:
        problem = str(error).replace("\n", " ")
        raise ValueError(f"{file}: not a readable YAML file ({problem})") from None
    if not isinstance(data, dict) or "names" not in data:
        raise ValueError(f"{file}: expected an Ultralytics data YAML, a mapping with 'names'")
    return data


def yaml_splits(data: dict[str, Any]) -> tuple[str, ...]:
    """The splits a data YAML's mapping names (of train, val and test, those with a
    value)."""
    return tuple(key for key in SPLIT_KEYS if data.get(key))


def unusable_split(file: Path, data: dict[str, Any], split: str) -> str | None:
    """Why the data YAML ``file`` (its mapping ``data``) names ``split`` in vain, as the
    reader says of a split without images (:func:`empty_split_message`): none of its
    folders or lists is there (Roboflow's ``test: ../test/images`` in an export without
    a test split), or they hold no image; ``None`` where they hold images, or where
    opening the split is what names the problem (an entry of another kind)."""
    root = _root(file, data)
    there = [str(e) for e in _as_list(data[split]) if _entry(root, str(e)).exists()]
    if not there:
        return empty_split_message(file, split, f"{_split_entry(data, split)} is not there")
    try:
        empty = not any(_names_an_image(root, name, file) for name in there)
    except (OSError, ValueError):
        return None
    return empty_split_message(file, split, _split_entry(data, split)) if empty else None


def _split_entry(data: dict[str, Any], split: str) -> str:
    """The data YAML's entry of ``split`` (its mapping ``data``), as written:
    ``"test: ../test/images"``."""
    return f"{split}: {data[split]}"


def _names_an_image(root: Path, name: str, file: Path) -> bool:
    """Whether a split entry names an image (:func:`_images`), stopping at the first:
    a folder of 50,000 images was listed and sorted whole, in 0.98 s."""
    entry = _entry(root, name)
    if entry.is_dir():
        return any(map(is_image_file, entry.rglob("*")))
    return bool(_images(root, name, file))


class UltralyticsYOLO(YOLODetection):
    """The images and boxes of one split of an Ultralytics data YAML (see the module).

    Args:
        yaml_file: the data YAML.
        split: ``train``, ``val`` or ``test``.

    Raises:
        FileNotFoundError: a folder or list the YAML names does not exist.
        ValueError: a malformed YAML, ``names`` or label, or no image in the split
            (:func:`empty_split_error`).

    An image of a ``.txt`` list that is not there is left out with a warning naming it
    (:func:`~faster_rcnn.data.dataset.images_there`); one listed more than once (by a
    list, or by two entries) is read once, with a warning
    (:func:`~faster_rcnn.data.dataset.listed_once`).
    """

    def __init__(self, yaml_file: str | Path, split: str = "train") -> None:
        file = Path(yaml_file)
        data = read_data_yaml(file)
        self.root = _root(file, data)
        self.split = split
        if not self.root.is_dir():
            # Ultralytics reads a relative path from its datasets folder too: a YAML
            # copied from its examples (path: ../datasets/coco8) names that folder.
            raise FileNotFoundError(
                f"{file}: 'path: {data['path']}' is not there ({self.root}): the split "
                "folders are read from it, relative to the YAML's folder; drop it to read "
                "them from the YAML's folder"
            )
        if not data.get(split):
            named = list(yaml_splits(data))
            raise ValueError(f"{file} names no {split!r} split (it names {named})")
        entries = _as_list(data[split])
        listed = [image for e in entries for image in _images(self.root, str(e), file)]
        images = listed_once(listed, f"{file} ({split})")
        if not images:
            raise empty_split_error(file, split, _split_entry(data, split))
        self.image_files = [images[k] for k in images_there(images, file, split)]
        label_files = as_on_disk([label_path(image) for image in self.image_files])
        names = _names(data.get("names"), file, data.get("nc"))
        self._load(label_files, names, str(file), f"{file} ({split})")
        folders = [entry for e in entries if (entry := _entry(self.root, str(e))).is_dir()]
        in_folders = _in_folders(folders, self.image_files, label_files)
        warn_of_unread_labels(in_folders, f"{file} ({split})")


def _root(file: Path, data: dict[str, Any]) -> Path:
    """The folder the split entries of the data YAML ``file`` (its mapping ``data``) are
    relative to: its ``path``, relative to the YAML's folder."""
    return file.parent / written_path(str(data.get("path") or "."))


def _as_list(entries: Any) -> list[Any]:
    """A split's entries: a list as it is, one entry as a list of it."""
    return entries if isinstance(entries, list) else [entries]


def label_path(image: Path) -> Path:
    """Ultralytics' rule: the last ``images`` folder becomes ``labels``, the suffix ``.txt``."""
    parts = list(image.parts)
    if "images" in parts:
        k = len(parts) - 1 - parts[::-1].index("images")
        parts[k] = "labels"
    return Path(*parts).with_suffix(".txt")


def _images(root: Path, name: str, file: Path) -> list[Path]:
    """The images a split entry names: a folder's (recursively), or a list file's (its
    paths' folders separated by ``/``, or by ``\\`` as written on Windows).

    Like Ultralytics, ``../x`` that does not exist is taken as ``x`` (Roboflow's exports
    write ``train: ../train/images`` beside ``train/``).
    """
    entry = _entry(root, name)
    if entry.is_dir():
        found = entry.rglob("*")
        return sorted(p for p in found if is_image_file(p))
    if entry.is_file() and entry.suffix.lower() == ".txt":
        lines = [line.strip() for line in read_text(entry).splitlines() if line.strip()]
        return [entry.parent / written_path(line) for line in lines]
    raise FileNotFoundError(f"{file}: {entry} is neither a folder of images nor a .txt list")


def _in_folders(folders: list[Path], images: list[Path], labels: list[Path]) -> list[Path]:
    """The ``labels`` of the ``images`` in ``folders``: a folder entry reads all its
    images, so a label file beside theirs is a stray (a ``.txt`` list may name only
    some)."""
    return [
        label
        for image, label in zip(images, labels, strict=True)
        if any(image.is_relative_to(folder) for folder in folders)
    ]


def _entry(root: Path, name: str) -> Path:
    """The folder or list file a split entry names, its folders separated by ``/`` or by
    ``\\`` as written on Windows (``images\\train``)."""
    written = written_path(name)
    entry = root / written
    if not entry.exists() and written.parts[:1] == ("..",):
        return root.joinpath(*written.parts[1:])
    return entry


def _names(names: Any, file: Path, count: Any = None) -> tuple[str, ...]:
    """Class names from a list, or from a mapping of the ids 0..C-1; as many as ``count``
    (the YAML's ``nc``) where it gives a number, as Ultralytics requires."""
    found = _listed_names(names, file)
    if isinstance(count, int) and count != len(found):
        raise ValueError(
            f"{file}: 'nc: {count}' but 'names' lists {counted(len(found), 'class')}: they "
            "must agree"
        )
    return found


def _listed_names(names: Any, file: Path) -> tuple[str, ...]:
    if isinstance(names, list) and all(isinstance(n, (str, int)) for n in names):
        return tuple(str(n) for n in names)
    ids = list(names) if isinstance(names, dict) else None
    if (
        ids is not None
        and all(type(k) is int for k in ids)
        and sorted(ids) == list(range(len(ids)))
        and all(isinstance(n, (str, int)) for n in names.values())
    ):
        return tuple(str(names[k]) for k in range(len(names)))
    raise ValueError(f"{file}: 'names' must be a list of names or a mapping 0..C-1 -> name")
