"""Training images with no anchor inside them under the paper's border rule, counted from
their sizes."""

import torch

from faster_rcnn.models import preset_config
from faster_rcnn.train.anchorless import (
    AnchorlessImages,
    admits_an_anchor,
    anchor_shapes,
    anchorless_images,
)


class SizedImages:
    """A dataset of images of the sizes given, named by file, read by nothing but their
    sizes."""

    class_names = ("thing",)

    def __init__(self, sizes: list[tuple[int, int]]) -> None:
        self.sizes = sizes

    def __len__(self) -> int:
        return len(self.sizes)

    def image_size(self, index: int) -> tuple[int, int]:
        return self.sizes[index]

    def image_path(self, index: int) -> str:
        return f"{index}.jpg"

    def __getitem__(self, index: int):
        raise AssertionError("no image is decoded")


def paper_config(min_size: tuple[int, ...] = (600,), allowed_border: float = 0):
    config = preset_config("paper_vgg16", 2)
    return config.replace(transform={"min_size": min_size}, rpn={"allowed_border": allowed_border})


def test_vgg16s_anchors_are_at_least_90_px_on_their_shorter_side():
    """Sizes 128, 256 and 512 at ratios 0.5, 1 and 2, their half sides rounded: 128 at
    ratio 0.5 is 181.02 x 90.51, halves 90.51 and 45.25, so 182 x 90."""
    shapes = anchor_shapes(preset_config("paper_vgg16").anchors)
    assert shapes.tolist() == [
        [182, 90],
        [362, 182],
        [724, 362],
        [128, 128],
        [256, 256],
        [512, 512],
        [90, 182],
        [182, 362],
        [362, 724],
    ]


def test_an_image_admits_an_anchor_where_one_shape_fits_both_ways():
    shapes = torch.tensor([[182.0, 90.0], [128.0, 128.0], [90.0, 182.0]])
    assert not admits_an_anchor((89, 1000), shapes, 0)  # every shape too high
    assert admits_an_anchor((90, 182), shapes, 0)
    assert not admits_an_anchor((127, 181), shapes, 0)
    assert admits_an_anchor((80, 172), shapes, 5)  # 5 px past each side: 90 x 182


def test_a_strip_resized_to_1000_x_25_is_counted_on_paper_vgg16():
    """A 2000 x 50 strip at 600 / 1000 is 1000 x 25, under every anchor's 90 px height;
    a 300 x 200 photo is 900 x 600, and holds them all."""
    data = SizedImages([(200, 300), (50, 2000), (200, 300), (60, 2000)])
    found = anchorless_images(data, paper_config(), range(4))
    assert (found.images, found.anchorless) == (4, 2)
    assert found.example == "1.jpg, 2000x50 (width x height), 1000x25 once resized"
    assert found.notes() == [
        "2 of the 4 images admit no anchor inside once resized to 600 px (the first: 1.jpg, "
        "2000x50 (width x height), 1000x25 once resized), and anchors crossing the border by "
        "more than 0 px are ignored in training (rpn.allowed_border): the RPN learns nothing "
        "from them; keep every anchor (--allowed-border -1, as torchvision's presets do) or "
        "give smaller ones (--anchors)"
    ]


def test_images_are_measured_at_the_largest_shorter_side_drawn():
    """A 300 x 100 image is 240 x 80 at 80 px, under the 90 px anchor's height, and
    360 x 120 at 120 px, which holds the 182 x 90 one (on the stride-16 grid too, centred
    at y = 56 or 72): drawn from both, it is trained with anchors at 120 px."""
    data = SizedImages([(100, 300)])
    assert anchorless_images(data, paper_config((80,)), [0]).anchorless == 1
    assert anchorless_images(data, paper_config((80, 120)), [0]).anchorless == 0
    # 10 px allowed past each side: 80 + 20 px holds the 90 px anchor at 80 px too.
    assert anchorless_images(data, paper_config((80,), 10), [0]).anchorless == 0


def test_nothing_is_counted_where_every_anchor_is_kept():
    """torchvision's presets keep the anchors crossing the border: no image is read."""
    data = SizedImages([(50, 2000)])
    for config in (paper_config(allowed_border=-1), preset_config("mobilenet_v2_fpn", 2)):
        found = anchorless_images(data, config, [0])
        assert (found.images, found.anchorless, found.notes()) == (0, 0, [])


def test_an_image_too_elongated_to_resize_is_left_out_as_training_leaves_it_out():
    """1 x 2000 is 0 px high at 600 / 1000: training skips it, and it is not counted."""
    found = anchorless_images(SizedImages([(1, 2000)]), paper_config(), [0])
    assert (found.images, found.anchorless) == (0, 0)


def test_the_line_agrees_with_one_image():
    found = AnchorlessImages(600, 1000, 0)
    found.count("a.jpg", (50, 2000), anchor_shapes(preset_config("paper_vgg16").anchors))
    assert found.notes()[0].startswith("1 of the 1 image admits no anchor inside")
