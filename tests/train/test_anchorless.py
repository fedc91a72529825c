"""Training images with no anchor inside them under the paper's border rule, counted from
their sizes on the model's anchor grid.

``paper_vgg16``'s anchors, their half sides rounded as the generator rounds them, are
182 x 90, 362 x 182, 724 x 362, 128 x 128, 256 x 256, 512 x 512, 90 x 182, 182 x 362 and
362 x 724, centred every 16 px at 8, 24, 40, 56, ... (offset 0.5)."""

import pytest
import torch

from faster_rcnn.anchors import AnchorGenerator
from faster_rcnn.backbones.build import build_backbone
from faster_rcnn.image_list import ImageList
from faster_rcnn.insight.anchor_coverage import PaddedBatchAnchors
from faster_rcnn.models import preset_config
from faster_rcnn.train.anchorless import AnchorlessImages, admitting_sizes, anchorless_images
from faster_rcnn.transform import ImageTransform


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
    found.count("a.jpg", (50, 2000), {(25, 1000): False})
    assert found.notes()[0].startswith("1 of the 1 image admits no anchor inside")


def test_an_anchor_that_fits_but_has_no_place_on_the_grid_leaves_the_image_anchorless():
    """95 px high holds the 182 x 90 anchor (and 95 px wide the 90 x 182 one) only centred
    45 to 50 px in, between the centres at 40 and 56; every other anchor is 128 px or more
    on that side. 101 px has room from 45 to 56: the anchor centred at 56 lies inside."""
    for side, anchorless in ((95, 2), (100, 2), (101, 0)):
        data = SizedImages([(side, 1000), (1000, side)])
        found = anchorless_images(data, paper_config((side,)), range(2))
        assert (found.images, found.anchorless) == (2, anchorless)
    found = anchorless_images(SizedImages([(95, 1000)]), paper_config((95,)), [0])
    assert found.example == "0.jpg, 1000x95 (width x height), 1000x95 once resized"


def test_the_border_allowed_widens_the_centres_that_place_an_anchor_inside():
    """95 px high: 3 px allowed past each side puts the 90 px anchor's centre from 42 to
    53, still none; 6 px from 39 to 56, where 40 and 56 are."""
    admitting = [admitting_sizes(paper_config(allowed_border=b), [(95, 1000)]) for b in (0, 3, 6)]
    assert admitting == [{(95, 1000): False}, {(95, 1000): False}, {(95, 1000): True}]


def test_each_size_is_decided_once_on_anchors_placed_once_a_padded_size(monkeypatch):
    """3000 images of 4 sizes, resized to 600 x 800, 800 x 600, 95 x 1000 and 94 x 1000;
    the last two are both padded to 96 x 1008."""
    placed = []
    place = PaddedBatchAnchors.placed

    def placing(anchors: PaddedBatchAnchors, padded: tuple[int, int]) -> torch.Tensor:
        placed.append(padded)
        return place(anchors, padded)

    monkeypatch.setattr(PaddedBatchAnchors, "placed", placing)
    sizes = [(375, 500), (500, 375), (95, 1000), (94, 1000)] * 750
    found = anchorless_images(SizedImages(sizes), paper_config(), range(3000))
    assert (found.images, found.anchorless) == (3000, 1500)
    assert sorted(placed) == [(96, 1008), (608, 800), (800, 608)]


def test_counting_leaves_the_global_random_state_as_it_was():
    state = torch.get_rng_state()
    anchorless_images(SizedImages([(95, 1000)]), paper_config(), [0])
    assert torch.equal(torch.get_rng_state(), state)


def brute_force_admits(config, backbone: torch.nn.Module, size: tuple[int, int]) -> bool:
    """Whether an image resized to ``size`` has an anchor inside: ``backbone`` run on the
    image padded as the model pads it, the anchors placed on its maps, each anchor's
    corners compared with the image's border."""
    batch = ImageTransform(config.transform).batch([torch.zeros(3, *size)])
    with torch.no_grad():
        maps = list(backbone(batch).values())
    anchors = AnchorGenerator.from_config(config)(ImageList(batch, [size]), maps)[0]
    border, (height, width) = config.rpn.allowed_border, size
    inside = (
        (anchors[:, 0] >= -border)
        & (anchors[:, 1] >= -border)
        & (anchors[:, 2] <= width + border)
        & (anchors[:, 3] <= height + border)
    )
    return bool(inside.any())


@pytest.mark.parametrize(
    ("preset", "heights", "widths", "count"),
    [("paper_vgg16", (85, 130), (150, 260), 5), ("small", (4, 40), (4, 120), 8)],
)
def test_the_count_agrees_with_every_anchor_placed_and_measured(preset, heights, widths, count):
    """Random sizes around the smallest anchors' sides, on the real feature maps of the
    padded image: the sizes counted are the ones with no anchor inside."""
    config = preset_config(preset, 2).replace(rpn={"allowed_border": 0})
    generator = torch.Generator().manual_seed(0)
    sizes = list(
        zip(
            torch.randint(*heights, (count,), generator=generator).tolist(),
            torch.randint(*widths, (count,), generator=generator).tolist(),
            strict=True,
        )
    )
    admitting = admitting_sizes(config, sizes)
    backbone = build_backbone(config.backbone).eval()
    assert admitting == {size: brute_force_admits(config, backbone, size) for size in sizes}
    assert set(admitting.values()) == {True, False}
