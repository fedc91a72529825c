"""Base of the readers of one annotation file that lists its images, beside it, with
their boxes (VGG Image Annotator's, CreateML's): every box read when it is opened, the
images read upright (EXIF orientation), as the annotation tools show them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from torch import Tensor

from .box_audit import LabelledBox, audited_targets
from .dataset import (
    NO_IMAGE_BESIDE,
    TargetsReadOnOpening,
    empty_split_error,
    holds_images,
    images_beside,
    images_there,
    read_image_levels,
    upright_size_or_none,
    warn_of_images_left_out,
)


@dataclass(frozen=True)
class ListedImage:
    """An image the file lists: its file (beside the annotation file) and its boxes."""

    file: Path
    boxes: list[LabelledBox]


class ImagesListedInFile(TargetsReadOnOpening):
    """One annotation file listing its images beside it (see the module).

    A subclass gives ``FORMAT`` (what an error calls the file: ``"VIA"``),
    ``WITHOUT_BOXES`` (what the warning of the images it does not list says an image
    without boxes is), :meth:`_listed_images` and, where the classes are not the names
    found sorted, :meth:`_class_order`.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: no image beside it, none of those it names there, or it names none
            (:func:`~.dataset.empty_split_error`); or what :meth:`_listed_images` raises.
    """

    FORMAT: ClassVar[str]
    WITHOUT_BOXES: ClassVar[str]

    def __init__(self, annotation_file: str | Path, split: str | None = None) -> None:
        self.annotation_file = Path(annotation_file)
        source = str(self.annotation_file)
        if not self.annotation_file.is_file():
            raise FileNotFoundError(f"{self.FORMAT} annotation file {source} does not exist")
        if not holds_images(self.annotation_file.parent):
            raise empty_split_error(self.annotation_file, split, NO_IMAGE_BESIDE)
        listed = self._listed_images(self.annotation_file)
        if not listed:
            raise empty_split_error(self.annotation_file, split, "it names no image")
        kept = images_there([image.file for image in listed], self.annotation_file, split)
        images = [listed[k] for k in kept]
        self.image_files = [image.file for image in images]
        warn_of_images_left_out(
            images_beside(self.image_files),
            source,
            ("image is not in it and", "images are not in it and"),
            self.WITHOUT_BOXES,
        )
        labels = [box.label for image in images for box in image.boxes]
        self.class_names: tuple[str, ...] = self._class_order(labels)
        self._sizes = [upright_size_or_none(path) for path in self.image_files]
        label_of = {name: k + 1 for k, name in enumerate(self.class_names)}
        boxes = ([(b.where, b.box, label_of[b.label]) for b in image.boxes] for image in images)
        self.box_audit, self._boxes, self._labels = audited_targets(boxes, self._sizes, source)

    def _listed_images(self, file: Path) -> list[ListedImage]:
        """The images ``file`` lists, in its order, with their boxes."""
        raise NotImplementedError

    @staticmethod
    def _class_order(labels: Sequence[str]) -> tuple[str, ...]:
        """The classes of the boxes' ``labels``: the names found, sorted."""
        return tuple(sorted(set(labels)))

    def _read_image(self, index: int) -> Tensor:
        return read_image_levels(self.image_path(index), exif_transpose=True)
