"""What every detection dataset shares: the item contract and reading image files.

A dataset is a sequence of ``(image, target)`` pairs:

- ``image``: ``float32[3, H, W]`` RGB in 0..1;
- ``target``: ``{"boxes": float32[N, 4]`` as ``x1, y1, x2, y2`` in continuous absolute
  pixels, ``"labels": int64[N]`` in ``1..C`` (0 is background), ``"image_id": int}``,
  plus ``"difficult": bool[N]`` (Pascal VOC) or ``"iscrowd": bool[N]`` (COCO).

Readers also carry ``class_names`` (without background), ``num_classes`` (with it) and
``image_size(i) -> (h, w)``, which reads only the file header or the annotation so that
batches can be grouped by aspect ratio without decoding every image. The readers of
image files (VOC, COCO, YOLO) share all of that through :class:`ImageFileDataset`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from .synthetic import SyntheticShapes

Target = dict[str, Tensor | int]
Sample = tuple[Tensor, Target]

# Target entries with one row per box: whatever removes boxes must filter all of them.
PER_BOX_KEYS = ("boxes", "labels", "difficult", "iscrowd")


class DetectionDataset(Protocol):
    """The interface of every reader in :mod:`faster_rcnn.data`."""

    class_names: tuple[str, ...]

    @property
    def num_classes(self) -> int: ...

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Sample: ...


def read_image(path: Path) -> Tensor:
    """Decode an image file to ``float32[3, H, W]`` RGB in 0..1.

    Pixels are taken as stored: an EXIF orientation tag is not applied, because box
    annotations are drawn on the stored pixels by the common labelling tools.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is not an image PIL can read.
    """
    if not path.is_file():
        raise FileNotFoundError(f"image file {path} does not exist")
    try:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as error:
        raise ValueError(f"cannot read image {path}: {error}") from error
    return torch.from_numpy(pixels.copy()).permute(2, 0, 1).float().div_(255.0)


def read_image_size(path: Path) -> tuple[int, int]:
    """``(height, width)`` of an image file, read from its header without decoding it."""
    if not path.is_file():
        raise FileNotFoundError(f"image file {path} does not exist")
    try:
        with Image.open(path) as image:
            width, height = image.size
    except (UnidentifiedImageError, OSError) as error:
        raise ValueError(f"cannot read image {path}: {error}") from error
    return height, width


def image_size_of(dataset: object, index: int) -> tuple[int, int]:
    """``(height, width)`` of item ``index`` of any dataset, as cheaply as it allows.

    Readers answer through ``image_size(index)``; :class:`SyntheticShapes` has one size
    for all images; any other dataset has its item decoded.
    """
    if isinstance(dataset, SyntheticShapes):
        return dataset.image_size
    image_size = getattr(dataset, "image_size", None)
    if callable(image_size):
        return image_size(index)
    image = dataset[index][0]  # type: ignore[index]
    return int(image.shape[-2]), int(image.shape[-1])


class WrappedDataset:
    """Base of the datasets that wrap another: class names, length and image sizes are
    the wrapped dataset's.

    Args:
        dataset: any detection dataset.
    """

    def __init__(self, dataset: DetectionDataset) -> None:
        self.dataset = dataset

    @property
    def class_names(self) -> tuple[str, ...]:
        """The wrapped dataset's class names."""
        return self.dataset.class_names

    @property
    def num_classes(self) -> int:
        """Classes including background."""
        return self.dataset.num_classes

    def __len__(self) -> int:
        return len(self.dataset)

    def image_size(self, index: int) -> tuple[int, int]:
        """``(height, width)`` of the wrapped item ``index``."""
        return image_size_of(self.dataset, index)


class ImageFileDataset(ABC):
    """Base of the readers of image files and their annotations.

    A reader sets ``class_names`` and ``image_files`` (the image file of each item, in
    item order) and implements :meth:`target`; the length, the class count, the items,
    the index checks and the image sizes are the same for all and written here. A reader
    whose annotation gives image sizes says so in :meth:`_annotated_size`.
    """

    class_names: tuple[str, ...]
    image_files: list[Path]

    @property
    def num_classes(self) -> int:
        """Classes including background."""
        return len(self.class_names) + 1

    def __len__(self) -> int:
        return len(self.image_files)

    def __getitem__(self, index: int) -> Sample:
        target = self.target(index)  # checks the index first
        return read_image(self.image_path(index)), target

    @abstractmethod
    def target(self, index: int) -> Target:
        """The target of image ``index``, without decoding the image."""

    def image_path(self, index: int) -> Path:
        """The file of image ``index``."""
        self._check_index(index)
        return self.image_files[index]

    def image_size(self, index: int) -> tuple[int, int]:
        """``(height, width)`` of image ``index``: from the annotation when it has it, else
        from the image file's header."""
        self._check_index(index)
        return self._annotated_size(index) or read_image_size(self.image_files[index])

    def _annotated_size(self, index: int) -> tuple[int, int] | None:
        """``(height, width)`` of image ``index`` as its annotation gives it; None (the
        default) when it does not."""
        return None

    def _check_index(self, index: int) -> None:
        if not 0 <= index < len(self.image_files):
            raise IndexError(f"index {index} out of range for {len(self.image_files)} images")


def boxes_tensor(rows: list[list[float]]) -> Tensor:
    """``float32[N, 4]`` from a list of ``N`` rows, ``(0, 4)`` when empty."""
    return torch.tensor(rows, dtype=torch.float32).reshape(-1, 4)
