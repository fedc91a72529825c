"""RoI pooling: level mapping, scale inference, multi-scale RoIAlign and RoIPool."""

from __future__ import annotations

import math
from collections import OrderedDict

import pytest
import torch

from faster_rcnn.ops.roi_align import boxes_to_rois, roi_align, roi_pool
from faster_rcnn.roi_heads.pooling import (
    LevelMapper,
    MultiScaleRoIAlign,
    SingleScaleRoIPool,
    infer_scale,
    setup_scales,
)


def square(centre: float, side: float) -> list[float]:
    return [centre - side / 2, centre - side / 2, centre + side / 2, centre + side / 2]


def test_level_mapper_on_hand_computed_sizes() -> None:
    mapper = LevelMapper(k_min=2, k_max=5)
    boxes = torch.tensor(
        [
            square(300, 224),  # canonical size -> level 4
            square(300, 112),  # half -> level 3
            square(300, 448),  # double -> level 5
            square(300, 56),  # level 2
            square(300, 4),  # tiny: level -2, clamped to 2
            square(300, 4000),  # huge: level 8, clamped to 5
            [0.0, 0.0, 448.0, 112.0],  # sqrt(448 * 112) = 224 -> level 4
            square(300, 223.0),  # just below 224 -> level 3
        ]
    )
    assert (mapper([boxes]) + 2).tolist() == [4, 3, 5, 2, 2, 5, 4, 3]


def test_level_mapper_concatenates_images_and_uses_canonical_settings() -> None:
    mapper = LevelMapper(k_min=3, k_max=6, canonical_scale=100, canonical_level=5)
    first = torch.tensor([square(500, 100)])
    second = torch.tensor([square(500, 50), square(500, 400)])
    # levels 5, 4, 7 -> clamped to 6; minus k_min
    assert mapper([first, second]).tolist() == [2, 1, 3]


def test_level_mapper_maps_float16_boxes_as_float32_ones() -> None:
    """A 300 px RoI of a model run in half precision: its area overflowed float16 and
    sent it to the last level (5) instead of level 4."""
    mapper = LevelMapper(k_min=2, k_max=5)
    boxes = torch.tensor([square(300, 300), square(300, 500), square(300, 150)])
    assert (mapper([boxes]) + 2).tolist() == [4, 5, 3]
    assert (mapper([boxes.half()]) + 2).tolist() == [4, 5, 3]


def test_infer_scale_rounds_log2_of_the_longer_side_ratio() -> None:
    assert infer_scale(torch.zeros(1, 1, 200, 300), (800, 1216)) == 0.25
    # 38 / 600 = 2 ** -3.98 -> 1/16 (VGG-16 on a padded 608-pixel batch)
    assert infer_scale(torch.zeros(1, 1, 38, 63), (600, 1000)) == 1 / 16
    assert infer_scale(torch.zeros(1, 1, 13, 20), (800, 1216)) == 1 / 64


def test_infer_scale_of_a_wide_strip_goes_by_its_width() -> None:
    # A 2000 x 50 strip resized to 512 x 12, padded to 32 rows: stride 8 gives 4 x 64,
    # stride 32 1 x 16. By the height alone 4 / 12 said 1/4 and 1 / 12 said 1/16.
    assert infer_scale(torch.zeros(1, 1, 4, 64), (12, 512)) == 1 / 8
    assert infer_scale(torch.zeros(1, 1, 1, 16), (12, 512)) == 1 / 32
    # The same strip standing (12 x 512 -> 512 x 12) went by its height already.
    assert infer_scale(torch.zeros(1, 1, 64, 4), (512, 12)) == 1 / 8


def test_setup_scales_uses_largest_image_and_spans_levels() -> None:
    features = [torch.zeros(2, 1, 256 // s, 256 // s) for s in (4, 8, 16, 32)]
    # The largest height in the batch counts (256: the 100-pixel image would say 1/2).
    scales, mapper = setup_scales(features, [(100, 256), (256, 100)])
    assert scales == [1 / 4, 1 / 8, 1 / 16, 1 / 32]
    assert (mapper.k_min, mapper.k_max) == (2, 5)
    with pytest.raises(ValueError, match="image_shapes"):
        setup_scales(features, [])


def test_boxes_to_rois_numbers_each_box_by_its_image() -> None:
    a = torch.tensor([[1.0, 2.0, 3.0, 4.0]], dtype=torch.float64)
    b = torch.tensor([[5.0, 6.0, 7.0, 8.0], [9.0, 10.0, 11.0, 12.0]], dtype=torch.float64)
    rois = boxes_to_rois([a, torch.zeros((0, 4), dtype=torch.float64), b])
    assert rois.dtype == torch.float64
    assert rois.tolist() == [
        [0, 1, 2, 3, 4],
        [2, 5, 6, 7, 8],
        [2, 9, 10, 11, 12],
    ]
    assert boxes_to_rois([]).shape == (0, 5)
    with pytest.raises(ValueError, match="boxes of image 1 must have shape"):
        boxes_to_rois([a, torch.zeros(3)])


def pyramid(gen: torch.Generator, dtype: torch.dtype = torch.float32) -> OrderedDict:
    # A 128 x 128 batch: strides 4, 8, 16, 32, plus a pooled level that is not used.
    sizes = {"0": 32, "1": 16, "2": 8, "3": 4, "pool": 2}
    return OrderedDict(
        (k, torch.randn(2, 3, s, s, generator=gen, dtype=dtype)) for k, s in sizes.items()
    )


def random_boxes(
    gen: torch.Generator, count: int, max_side: float, min_side: float = 1.0
) -> torch.Tensor:
    xy = torch.rand(count, 2, generator=gen) * 100
    wh = torch.rand(count, 2, generator=gen) * (max_side - min_side) + min_side
    return torch.cat([xy, xy + wh], dim=1)


def test_multiscale_roi_align_pools_each_box_from_its_level() -> None:
    gen = torch.Generator().manual_seed(0)
    features = pyramid(gen)
    huge = torch.tensor([square(60, 500)])
    boxes = [torch.cat([random_boxes(gen, 20, 400), huge]), random_boxes(gen, 9, 30)]
    pooler = MultiScaleRoIAlign(["0", "1", "2", "3"], output_size=5, sampling_ratio=2)
    out = pooler(features, boxes, [(128, 128), (120, 128)])
    assert out.shape == (30, 3, 5, 5)

    levels_seen = set()
    rois = torch.cat(
        [torch.cat([torch.full((len(b), 1), float(i)), b], 1) for i, b in enumerate(boxes)]
    )
    for k, roi in enumerate(rois):
        w, h = float(roi[3] - roi[1]), float(roi[4] - roi[2])
        level = min(max(math.floor(4 + math.log2(math.sqrt(w * h) / 224) + 1e-6), 2), 5)
        levels_seen.add(level)
        expected = roi_align(
            features[str(level - 2)], roi[None], (5, 5), spatial_scale=2.0**-level, sampling_ratio=2
        )
        torch.testing.assert_close(out[k : k + 1], expected)
    assert levels_seen == {2, 3, 4, 5}


def test_multiscale_roi_align_passes_aligned_and_canonical_settings() -> None:
    gen = torch.Generator().manual_seed(1)
    features = pyramid(gen)
    boxes = [random_boxes(gen, 6, 60, min_side=20)]
    # With canonical_scale 8 every box of side >= 16 maps to the coarsest level.
    pooler = MultiScaleRoIAlign(
        ["0", "1", "2", "3"], 3, sampling_ratio=-1, aligned=True, canonical_scale=8
    )
    out = pooler(features, boxes, [(128, 128)])
    expected = roi_align(features["3"], boxes, 3, spatial_scale=1 / 32, aligned=True)
    torch.testing.assert_close(out, expected)


def test_single_level_is_plain_roi_align_and_keeps_dtype() -> None:
    gen = torch.Generator().manual_seed(2)
    features = pyramid(gen, torch.float64)
    boxes = [random_boxes(gen, 4, 50).double(), random_boxes(gen, 3, 50).double()]
    pooler = MultiScaleRoIAlign(["1"], 7, 2)
    out = pooler(features, boxes, [(128, 128), (128, 128)])
    assert out.dtype == torch.float64
    expected = roi_align(features["1"], boxes, 7, spatial_scale=1 / 8, sampling_ratio=2)
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize("output_size", [(5, 3), [5, 3]])
def test_an_output_size_pair_pools_to_that_height_and_width(output_size) -> None:
    """torchvision's ``output_size`` is one side or ``(height, width)``."""
    gen = torch.Generator().manual_seed(6)
    features = pyramid(gen)
    small, large = random_boxes(gen, 5, 30), torch.tensor([square(60, 500)])
    pooler = MultiScaleRoIAlign(["0", "1", "2", "3"], output_size, 2)
    out = pooler(features, [torch.cat([small, large])], [(128, 128)])
    assert out.shape == (6, 3, 5, 3)
    # Sides under 112 px pool from level 2 (map "0"), 500 px from level 5 (map "3").
    expected = [
        roi_align(features["0"], [small], (5, 3), spatial_scale=1 / 4, sampling_ratio=2),
        roi_align(features["3"], [large], (5, 3), spatial_scale=1 / 32, sampling_ratio=2),
    ]
    torch.testing.assert_close(out, torch.cat(expected))
    with pytest.raises(ValueError, match=r"^output_size must be an int or \(height, width\)"):
        MultiScaleRoIAlign(["0"], (7, 7, 7), 2)


def test_the_repr_is_torchvisions() -> None:
    assert repr(MultiScaleRoIAlign(["feat1", "feat3"], 7, 2)) == (
        "MultiScaleRoIAlign(featmap_names=['feat1', 'feat3'], output_size=(7, 7), sampling_ratio=2)"
    )


def test_maps_the_features_lack_are_passed_over_as_torchvision_does() -> None:
    """torchvision's ``MultiScaleRoIAlign(["0", "1", "2", "3"], 7, 2)`` over a MobileNet
    FPN's ``"0"``, ``"1"``, ``"pool"`` pools from ``"0"`` and ``"1"``: bit for bit what a
    pooler naming those two pools, the level mapper spanning those two levels."""
    gen = torch.Generator().manual_seed(3)
    features = OrderedDict((k, v) for k, v in pyramid(gen).items() if k in ("0", "1", "pool"))
    boxes = [torch.cat([random_boxes(gen, 8, 10), random_boxes(gen, 8, 300, min_side=224)])]
    wider = MultiScaleRoIAlign(["0", "1", "2", "3"], 7, 2)(features, boxes, [(128, 128)])
    assert torch.equal(wider, MultiScaleRoIAlign(["0", "1"], 7, 2)(features, boxes, [(128, 128)]))
    # Each box from its own map: the small ones from "0" (stride 4), the large from "1".
    rois = boxes_to_rois(boxes)
    from_0 = roi_align(features["0"], rois[:8], (7, 7), spatial_scale=0.25, sampling_ratio=2)
    from_1 = roi_align(features["1"], rois[8:], (7, 7), spatial_scale=0.125, sampling_ratio=2)
    torch.testing.assert_close(wider, torch.cat([from_0, from_1]))


def test_a_pooler_none_of_whose_maps_the_features_have_is_an_error() -> None:
    pooler = MultiScaleRoIAlign(["p8", "p9"], 7, 2)
    gen = torch.Generator().manual_seed(3)
    with pytest.raises(ValueError, match=r"\['p8', 'p9'\] requested, the backbone gives"):
        pooler(pyramid(gen), [random_boxes(gen, 2, 10)], [(128, 128)])


def test_multiscale_roi_align_gradient_reaches_every_used_level() -> None:
    gen = torch.Generator().manual_seed(4)
    features = OrderedDict((k, v.requires_grad_()) for k, v in pyramid(gen).items())
    boxes = [torch.tensor([square(60, 20), square(60, 150), square(60, 300)])]
    out = MultiScaleRoIAlign(["0", "1", "2", "3"], 4, 2)(features, boxes, [(128, 128)])
    out.sum().backward()
    # sides 20, 150, 300 -> levels 2, 3, 4; level 5 and "pool" receive nothing.
    assert [float(features[k].grad.abs().sum()) > 0 for k in ("0", "1", "2", "3")] == [
        True,
        True,
        True,
        False,
    ]
    assert features["pool"].grad is None


def test_empty_boxes_give_empty_output() -> None:
    gen = torch.Generator().manual_seed(5)
    out = MultiScaleRoIAlign(["0", "1"], 7, 2)(pyramid(gen), [torch.zeros((0, 4))], [(128, 128)])
    assert out.shape == (0, 3, 7, 7)


def test_single_scale_roi_pool_infers_stride_16() -> None:
    gen = torch.Generator().manual_seed(6)
    features = {"0": torch.randn(2, 4, 38, 63, generator=gen)}
    boxes = [random_boxes(gen, 5, 200), random_boxes(gen, 2, 200)]
    pooler = SingleScaleRoIPool("0", 7)
    out = pooler(features, boxes, [(600, 1000), (592, 900)])
    assert out.shape == (7, 4, 7, 7)
    torch.testing.assert_close(out, roi_pool(features["0"], boxes, 7, spatial_scale=1 / 16))
    assert list(pooler.parameters()) == []
