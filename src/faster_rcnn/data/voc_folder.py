"""Pascal VOC XML files in a folder, without ``ImageSets/``: what LabelImg, CVAT's
"Pascal VOC" export without subsets and many tutorials produce.

Layouts::

    <folder>/*.xml, <folder>/*.jpg           the images alongside their annotations
    <root>/annots/*.xml, <root>/images/*.jpg  the images in a sibling folder

Each annotation's image is the file its ``<filename>`` names (only the name: LabelImg
may store a full path from another machine), else the one with its stem and an image
suffix; looked for in the XML folder first, then in the sibling folders that hold
images (``images/`` and ``JPEGImages/`` first). Boxes and sizes are read as in
:class:`~faster_rcnn.data.voc.VOCDetection`. Such a folder has no splits: hold part of it
out with :mod:`faster_rcnn.data.holdout`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path, PureWindowsPath

from ..counted import counted
from .dataset import (
    IMAGE_SUFFIXES,
    empty_split_error,
    files_with_suffix,
    first_few,
    holds_images,
    image_files_in,
    images_beside,
    warn_of_images_left_out,
    warn_of_left_out,
)
from .voc import VOCDetection, VOCRecord, parse_annotation

# Sibling folders looked in first, in this order; then the others, by name.
PREFERRED_IMAGE_FOLDERS = ("images", "JPEGImages", "imgs", "img")


class VOCFolder(VOCDetection):
    """The images and boxes of a folder of VOC XML files (see the module).

    Args:
        xml_dir: the folder holding the ``.xml`` files (all are read, sorted by name).
        images_dir: where the images are; default: looked for (see the module).
        class_names / keep_difficult: as for :class:`~faster_rcnn.data.voc.VOCDetection`.
        split: the split ``xml_dir`` is (Roboflow's ``train/``), for the error of one
            without images; ``None`` for a folder without splits.

    Raises:
        ValueError: no ``.xml`` file in ``xml_dir``; no image where its images are looked
            for (:func:`empty_split_error`); or an annotation problem (named).

    An annotation whose image is found nowhere is left out with one warning naming what
    was looked for where (:func:`~.dataset.warn_of_left_out`).
    """

    def __init__(
        self,
        xml_dir: str | Path,
        images_dir: str | Path | None = None,
        class_names: Sequence[str] | None = None,
        keep_difficult: bool = True,
        split: str | None = None,
    ) -> None:
        self.root, self.split = Path(xml_dir), split
        annotation_files = files_with_suffix(self.root, ".xml")
        if not annotation_files:
            raise ValueError(f"no .xml annotation file in {self.root}")
        folders = [Path(images_dir)] if images_dir is not None else image_folders(self.root)
        if not any(folder.is_dir() and holds_images(folder) for folder in folders):
            raise empty_split_error(self.root, split, without_their_images(self.root))
        records = [parse_annotation(path) for path in annotation_files]
        found = _found_images(records, annotation_files, ImageIndex(folders), split)
        records = [records[k] for k in found]
        annotation_files = [annotation_files[k] for k in found]
        image_files = list(found.values())
        warn_of_images_left_out(
            images_beside(image_files),
            str(self.root),
            ("image has no .xml and is", "images have no .xml and are"),
            "an image without objects needs an .xml without <object> to be trained on",
        )
        self._load(
            records, annotation_files, image_files, str(self.root), class_names, keep_difficult
        )


def _found_images(
    records: list[VOCRecord], annotation_files: list[Path], index: ImageIndex, split: str | None
) -> dict[int, Path]:
    """``{k: image}`` of the annotations whose image ``index`` finds, the others left out
    with one warning naming what was looked for where (an image deleted after labelling).

    Raises:
        ValueError: none is found (:func:`empty_split_error`).
    """
    found = {}
    left_out = []
    for k, (record, path) in enumerate(zip(records, annotation_files, strict=True)):
        image = index.find(record, path)
        if image is not None:
            found[k] = image
        else:
            left_out.append(f"{path.name} ({index.wanted(record, path)})")
    xml_dir = annotation_files[0].parent
    folders = [str(folder) for folder in index.folders]
    # Siblings searched may be many (a folder of datasets): the first few, counted.
    where = (
        first_few(folders) if len(folders) <= 3 else f"{len(folders)} folders, {first_few(folders)}"
    )
    warn_of_left_out(xml_dir, left_out, ".xml file", f"its image not found in {where}")
    if not found:
        detail = f"none of its {counted(len(records), '.xml file')} has its image"
        raise empty_split_error(xml_dir, split, detail)
    return found


def holds_voc_xml(folder: Path) -> bool:
    """Whether ``folder`` holds a ``.xml`` file (in any case: ``.XML`` too); it stops at
    the first."""
    return folder.is_dir() and any(p.suffix.lower() == ".xml" for p in folder.iterdir())


def image_folders(xml_dir: Path) -> list[Path]:
    """Where the images of the annotations in ``xml_dir`` may be, in search order."""
    siblings = sorted(p for p in xml_dir.parent.iterdir() if p.is_dir() and p != xml_dir)
    preferred = {name: rank for rank, name in enumerate(PREFERRED_IMAGE_FOLDERS)}
    siblings.sort(key=lambda p: preferred.get(p.name, len(preferred)))
    return [folder for folder in [xml_dir, *siblings] if holds_images(folder)]


def without_their_images(folder: Path) -> str:
    """What an empty split's message adds of the folder ``folder`` of ``.xml`` files
    without images: ``"3 .xml files without their images"``."""
    return f"{counted(len(files_with_suffix(folder, '.xml')), '.xml file')} without their images"


class ImageIndex:
    """The image files of some folders, found by name or by stem, folder by folder."""

    def __init__(self, folders: list[Path]) -> None:
        self.folders = folders
        self._by_name: list[dict[str, Path]] = []
        self._by_stem: list[dict[str, Path]] = []
        for folder in folders:
            files = image_files_in(folder) if folder.is_dir() else []
            self._by_name.append({p.name.lower(): p for p in files})
            self._by_stem.append({p.stem.lower(): p for p in files})

    def find(self, record: VOCRecord, annotation_file: Path) -> Path | None:
        """The image of ``record``: by its ``<filename>``, else by the annotation's stem;
        None where neither is in any folder."""
        name = PureWindowsPath(record.filename).name.lower() if record.filename else None
        for by_name in self._by_name:
            if name is not None and name in by_name:
                return by_name[name]
        stem = annotation_file.stem.lower()
        for by_stem in self._by_stem:
            if stem in by_stem:
                return by_stem[stem]
        return None

    @staticmethod
    def wanted(record: VOCRecord, annotation_file: Path) -> str:
        """What :meth:`find` looks for: ``'a.jpg' (<filename>) or a{.jpg,.png,...}``."""
        wanted = ([f"{record.filename!r} (<filename>)"] if record.filename else []) + [
            f"{annotation_file.stem}{{{','.join(IMAGE_SUFFIXES)}}}"
        ]
        return " or ".join(wanted)
