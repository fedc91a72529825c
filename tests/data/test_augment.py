import pytest
import torch

from faster_rcnn.data.augment import (
    Augmented,
    RandomFlip,
    RandomHorizontalFlip,
    RandomVerticalFlip,
    derive_seed,
)
from faster_rcnn.data.blur_noise import BlurAndNoise
from faster_rcnn.data.dataset import as_float_image
from faster_rcnn.data.photometric import ColorJitter
from faster_rcnn.data.random_crop import RandomCrop
from faster_rcnn.data.small_object_paste import SmallObjectPaste
from faster_rcnn.data.synthetic import SyntheticShapes


def _sample() -> tuple[torch.Tensor, dict]:
    image = torch.arange(2 * 3 * 5, dtype=torch.float32).reshape(3, 2, 5) / 30
    target = {
        "boxes": torch.tensor([[0.0, 0.5, 2.0, 2.0], [1.5, 0.0, 5.0, 1.0]]),
        "labels": torch.tensor([1, 2]),
        "image_id": 7,
    }
    return image, target


def test_flip_mirrors_image_and_boxes_exactly() -> None:
    image, target = _sample()
    before = target["boxes"].clone()
    flipped, out = RandomHorizontalFlip(p=1.0)(image, target, torch.Generator())
    assert torch.equal(flipped[:, :, 0], image[:, :, 4]) and torch.equal(
        flipped[:, 1, 3], image[:, 1, 1]
    )
    # x1' = W - x2, x2' = W - x1 with W = 5.
    assert torch.equal(out["boxes"], torch.tensor([[3.0, 0.5, 5.0, 2.0], [0.0, 0.0, 3.5, 1.0]]))
    assert torch.equal(out["labels"], target["labels"]) and out["image_id"] == 7
    assert torch.equal(target["boxes"], before)  # input untouched
    twice = RandomHorizontalFlip(p=1.0)(flipped, out, torch.Generator())
    assert torch.equal(twice[0], image) and torch.equal(twice[1]["boxes"], before)

    kept, same = RandomHorizontalFlip(p=0.0)(image, target, torch.Generator())
    assert kept is image and same is target
    with pytest.raises(ValueError, match=r"in 0\.\.1"):
        RandomHorizontalFlip(p=1.5)


def test_vertical_flip_mirrors_image_and_boxes_exactly() -> None:
    image, target = _sample()
    before = target["boxes"].clone()
    flipped, out = RandomVerticalFlip(p=1.0)(image, target, torch.Generator())
    assert torch.equal(flipped[:, 0], image[:, 1]) and torch.equal(flipped[:, 1], image[:, 0])
    # y1' = H - y2, y2' = H - y1 with H = 2; x unchanged.
    assert torch.equal(out["boxes"], torch.tensor([[0.0, 0.0, 2.0, 1.5], [1.5, 1.0, 5.0, 2.0]]))
    assert torch.equal(target["boxes"], before)  # input untouched
    twice = RandomVerticalFlip(p=1.0)(flipped, out, torch.Generator())
    assert torch.equal(twice[0], image) and torch.equal(twice[1]["boxes"], before)
    with pytest.raises(ValueError, match="direction must be one of"):
        RandomFlip(0.5, "diagonal")


def test_both_flips_turn_the_image_half_round() -> None:
    image, target = _sample()
    gen = torch.Generator()
    flipped, out = RandomHorizontalFlip(p=1.0)(*RandomVerticalFlip(p=1.0)(image, target, gen), gen)
    assert torch.equal(flipped, image.rot90(2, dims=(1, 2)))
    # A half turn maps (x1, y1, x2, y2) to (W - x2, H - y2, W - x1, H - y1), W = 5, H = 2.
    assert torch.equal(out["boxes"], torch.tensor([[3.0, 0.0, 5.0, 1.5], [0.0, 1.0, 3.5, 2.0]]))


def test_flip_of_empty_boxes() -> None:
    image, target = _sample()
    target["boxes"] = torch.zeros((0, 4))
    _, out = RandomHorizontalFlip(p=1.0)(image, target, torch.Generator())
    assert out["boxes"].shape == (0, 4)


def test_flip_probability() -> None:
    flip, image, target = RandomHorizontalFlip(p=0.3), *_sample()
    gen = torch.Generator().manual_seed(0)
    flips = sum(flip(image, target, gen)[0] is not image for _ in range(2000))
    assert 500 < flips < 700


def test_augmented_items_depend_only_on_seed_epoch_and_index() -> None:
    base = SyntheticShapes(16, image_size=(24, 32), seed=3)
    data = Augmented(base, [RandomHorizontalFlip()], seed=5)
    assert data.class_names == base.class_names and data.num_classes == 4 and len(data) == 16
    assert data.image_size(3) == (24, 32)

    def flipped(dataset: Augmented) -> list[bool]:
        return [not torch.equal(dataset[i][0], base[i][0]) for i in range(len(dataset))]

    first = flipped(data)
    assert 0 < sum(first) < 16
    # Another wrapper with the same seed, read in reverse order, draws the same.
    again = Augmented(base, [RandomHorizontalFlip()], seed=5)
    assert [not torch.equal(again[i][0], base[i][0]) for i in reversed(range(16))] == first[::-1]
    data.set_epoch(1)
    assert flipped(data) != first
    data.set_epoch(0)
    assert flipped(data) == first
    assert flipped(Augmented(base, [RandomHorizontalFlip()], seed=6)) != first
    # Boxes follow the image: a flipped item's boxes are the mirrored originals.
    i = next(k for k in range(16) if first[k] and len(base[k][1]["boxes"]))
    boxes = base[i][1]["boxes"]
    assert torch.equal(data[i][1]["boxes"][:, 0], 32 - boxes[:, 2])


def test_derive_seed_mixes_keys() -> None:
    assert derive_seed(0, 1, 2) == derive_seed(0, 1, 2)
    assert (
        len({derive_seed(0, 1, 2), derive_seed(0, 2, 1), derive_seed(1, 0, 2), derive_seed(0, 1)})
        == 4
    )


@pytest.mark.parametrize(
    "step",
    [
        RandomHorizontalFlip(p=1.0),
        RandomCrop(0.5, p=1.0),
        ColorJitter(0.4, 0.4, 0.4, 0.1),
        BlurAndNoise(2.0, 0.05),
        SmallObjectPaste([1, 2], copies=2, p=1.0),
    ],
    ids=["flip", "crop", "color_jitter", "blur_noise", "paste"],
)
def test_a_step_gives_uint8_levels_what_it_gives_the_float_image_scaled_from_them(step):
    """The readers' items are uint8: a step that moves pixels keeps them levels, one
    that computes scales them first, and either way the model sees the same numbers."""
    generator = torch.Generator().manual_seed(0)
    levels = torch.randint(0, 256, (3, 40, 60), generator=generator).to(torch.uint8)
    target = {"boxes": torch.tensor([[5.0, 5.0, 15.0, 12.0]]), "labels": torch.tensor([1])}
    got, got_target = step(levels, target, torch.Generator().manual_seed(1))
    expected, expected_target = step(
        as_float_image(levels), target, torch.Generator().manual_seed(1)
    )
    assert torch.equal(as_float_image(got), expected)
    assert torch.equal(got_target["boxes"], expected_target["boxes"])
