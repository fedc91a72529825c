"""InMemoryDataset: the wrapped items exactly, each read once, fresh tensors every time;
the bytes it will hold, from the images' sizes."""

from pathlib import Path

import torch

from faster_rcnn.data import InMemoryDataset, SyntheticShapes, image_size_of
from faster_rcnn.data.cache import cached_bytes
from faster_rcnn.data.dataset import UnreadableImageError


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
            assert image.dtype == torch.float32 and torch.equal(image, expected_image)
            assert torch.equal(target["boxes"], expected_target["boxes"])
            assert torch.equal(target["labels"], expected_target["labels"])
    assert cached.class_names == data.class_names and cached.num_classes == 4
    assert len(cached) == 3 and cached.image_size(2) == (48, 64)


def test_each_item_is_read_once_and_callers_get_their_own_tensors():
    levels = torch.tensor([0.0, 1 / 255, 0.5, 0.2 / 255, 254.6 / 255, 1.0])
    source = CountingReads([levels.reshape(1, 2, 3).expand(3, 2, 3)])
    cached = InMemoryDataset(source)
    image, target = cached[0]
    # Stored at 8 bits: exact levels stay, others go to the nearest one.
    expected = torch.tensor([0.0, 1.0, 128.0, 0.0, 255.0, 255.0]) / 255
    assert torch.equal(image[1].flatten(), expected)
    image.zero_()
    target["boxes"][0, 0] = 100.0
    again, target_again = cached[0]
    assert torch.equal(again[1].flatten(), expected)
    assert target_again["boxes"].tolist() == [[1.0, 2.0, 5.0, 6.0]]
    assert source.reads == [1]
    assert cached.image_size(0) == (2, 3)


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
