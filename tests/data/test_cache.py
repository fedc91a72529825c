"""InMemoryDataset: the wrapped items exactly, as uint8 levels, each read once, fresh
tensors every time, targets without a read; the bytes it will hold, from the images'
sizes."""

import sys
from pathlib import Path

import pytest
import torch

from faster_rcnn.data import InMemoryDataset, SyntheticShapes, image_size_of
from faster_rcnn.data.cache import cached_bytes, eight_bit_levels
from faster_rcnn.data.dataset import UnreadableImageError, as_float_image, target_of
from peak_memory import peak_rise_mb


class CountingReads:
    """A dataset that counts how often each item is read."""

    class_names = ("thing",)
    num_classes = 2

    def __init__(self, images: list[torch.Tensor]) -> None:
        self.images = images
        self.reads = [0] * len(images)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        self.reads[index] += 1
        boxes = torch.tensor([[1.0, 2.0, 5.0, 6.0]])
        return self.images[index].clone(), {"boxes": boxes, "labels": torch.tensor([1])}


def test_synthetic_items_come_back_exactly():
    data = SyntheticShapes(3, image_size=(48, 64), seed=5)
    cached = InMemoryDataset(data)
    assert image_size_of(cached, 2) == (48, 64)  # before any read
    for _ in range(2):  # first read and cached read
        for i in range(3):
            image, target = cached[i]
            expected_image, expected_target = data[i]
            assert image.dtype == torch.uint8
            assert torch.equal(as_float_image(image), expected_image)
            assert torch.equal(target["boxes"], expected_target["boxes"])
            assert torch.equal(target["labels"], expected_target["labels"])
    assert cached.class_names == data.class_names and cached.num_classes == 4
    assert len(cached) == 3 and cached.image_size(2) == (48, 64)


def test_each_item_is_read_once_and_callers_get_their_own_tensors():
    levels = torch.tensor([0.0, 1 / 255, 0.5, 0.2 / 255, 254.6 / 255, 1.0])
    source = CountingReads([levels.reshape(1, 2, 3).expand(3, 2, 3)])
    cached = InMemoryDataset(source)
    image, target = cached[0]
    # Stored and handed out at 8 bits: exact levels stay, others go to the nearest one.
    expected = torch.tensor([0, 1, 128, 0, 255, 255], dtype=torch.uint8)
    assert torch.equal(image[1].flatten(), expected)
    image.zero_()
    target["boxes"][0, 0] = 100.0
    again, target_again = cached[0]
    assert torch.equal(again[1].flatten(), expected)
    assert target_again["boxes"].tolist() == [[1.0, 2.0, 5.0, 6.0]]
    assert source.reads == [1]
    assert cached.image_size(0) == (2, 3)


class CountingReadsWithTargets(CountingReads):
    """:class:`CountingReads` that gives a target without reading its image, as the
    readers of image files do."""

    def target(self, index: int):
        return {"boxes": torch.tensor([[1.0, 2.0, 5.0, 6.0]]), "labels": torch.tensor([1])}


def test_targets_are_read_without_decoding_the_images():
    source = CountingReadsWithTargets([torch.zeros(3, 2, 3), torch.zeros(3, 2, 3)])
    cached = InMemoryDataset(source)
    assert target_of(cached, 1)["boxes"].tolist() == [[1.0, 2.0, 5.0, 6.0]]
    assert source.reads == [0, 0]
    cached[0]
    target = target_of(cached, 0)  # the cached one, a copy of it
    target["boxes"][0, 0] = 100.0
    assert target_of(cached, 0)["boxes"].tolist() == [[1.0, 2.0, 5.0, 6.0]]
    assert source.reads == [1, 0]


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/self/status")
def test_an_image_is_stored_at_8_bits_with_a_third_of_it_as_float_scratch():
    # A 3 x 3000 x 3000 image is 108 MB in float32 and 27 MB in uint8: scaled and rounded
    # in a whole float copy, storing it raised the peak by 135 MB; a channel at a time, by
    # the 36 MB of one channel's scratch and the 27 MB kept.
    setup = (
        "from faster_rcnn.data.cache import eight_bit_levels\n"
        "eight_bit_levels(torch.rand(3, 300, 300))\n"
        "image = torch.rand(3, 3000, 3000)"
    )
    assert peak_rise_mb(setup, "levels = eight_bit_levels(image)") < 90  # MB


def test_an_image_is_stored_at_the_nearest_8_bit_levels():
    levels = torch.tensor([0.0, 0.5 / 255, 0.51 / 255, 127.5 / 255, 1.0, 1.2, -0.1])
    image = levels.expand(3, 2, 7)
    stored = eight_bit_levels(image)
    assert stored.dtype == torch.uint8 and stored.shape == (3, 2, 7)
    assert stored[2, 1].tolist() == [0, 0, 1, 128, 255, 255, 0]


class SizedImages:
    """A dataset of images of the sizes given, answering ``image_size`` without a
    read; ``None`` is an image that cannot be read."""

    class_names = ("thing",)

    def __init__(self, sizes: list[tuple[int, int] | None]) -> None:
        self.sizes = sizes

    def __len__(self) -> int:
        return len(self.sizes)

    def image_size(self, index: int) -> tuple[int, int]:
        if self.sizes[index] is None:
            raise UnreadableImageError(Path(f"{index}.jpg"), f"{index}.jpg: cannot be read")
        return self.sizes[index]


def test_the_bytes_cached_are_three_a_pixel_of_the_images_as_decoded():
    """Three 48 x 64 images keep 3 x 3 x 48 x 64 bytes, as the cache holds them."""
    data = SyntheticShapes(3, image_size=(48, 64), seed=5)
    assert cached_bytes(data, range(3)) == 27648
    cached = InMemoryDataset(data)
    for i in range(3):
        cached[i]
    assert sum(pixels.nbytes for pixels, _ in cached._items.values()) == 27648


def test_the_bytes_cached_are_scaled_from_the_images_read_to_all():
    """Images 0 and 2 of four hold 100 + 600 pixels: the four, 1400 at 3 bytes a pixel;
    an image that cannot be read is never cached, and counts for none."""
    data = SizedImages([(10, 10), (99, 99), (20, 30), None])
    assert cached_bytes(data, [0, 2]) == 4200
    assert cached_bytes(data, [0, 2, 3]) == round(3 * 700 * 4 / 3)
    assert cached_bytes(data, [3]) == 0
