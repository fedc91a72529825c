"""ImageFileDataset: what the VOC, COCO and YOLO readers share."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from faster_rcnn.data.dataset import ImageFileDataset, Target


class TwoImages(ImageFileDataset):
    """Two image files; the annotation gives the size of the first only."""

    def __init__(self, root: Path) -> None:
        self.class_names = ("cat", "dog")
        self.image_files = [root / "a.png", root / "b.png"]
        Image.new("RGB", (40, 30)).save(self.image_files[0])
        Image.new("RGB", (12, 24)).save(self.image_files[1])

    def target(self, index: int) -> Target:
        self._check_index(index)
        return {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}

    def _annotated_size(self, index: int) -> tuple[int, int] | None:
        return (300, 400) if index == 0 else None


def test_length_classes_items_and_sizes(tmp_path: Path) -> None:
    data = TwoImages(tmp_path)
    assert len(data) == 2 and data.num_classes == 3
    # The annotation's size wins; without one, the file header answers.
    assert data.image_size(0) == (300, 400) and data.image_size(1) == (24, 12)
    image, target = data[1]
    assert image.shape == (3, 24, 12) and target["boxes"].shape == (0, 4)
    assert data.image_path(1) == tmp_path / "b.png"


def test_an_item_of_an_8_bit_file_is_its_uint8_levels_of_a_16_bit_grey_float(
    tmp_path: Path,
) -> None:
    """Levels are a quarter of float32 on the way to the model, which scales them."""
    data = TwoImages(tmp_path)
    Image.new("RGB", (40, 30), (0, 128, 255)).save(data.image_files[0])
    Image.fromarray(np.full((24, 12), 65535, dtype=np.uint16)).save(data.image_files[1])
    image, _ = data[0]
    assert image.dtype == torch.uint8 and image[:, 5, 7].tolist() == [0, 128, 255]
    grey, _ = data[1]
    assert grey.dtype == torch.float32 and torch.equal(grey, torch.ones(3, 24, 12))


@pytest.mark.parametrize("index", [-1, 2])
def test_every_access_checks_the_index(tmp_path: Path, index: int) -> None:
    data = TwoImages(tmp_path)
    for access in (data.__getitem__, data.image_path, data.image_size):
        with pytest.raises(IndexError, match=f"index {index} out of range for 2 images"):
            access(index)
