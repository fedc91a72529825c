"""RoIAlign and RoIPool against naive loops written from torchvision's CPU kernels."""

from __future__ import annotations

import importlib
import math
from decimal import ROUND_HALF_UP, Decimal
from unittest import mock

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from faster_rcnn.ops import RoIAlign, RoIPool, roi_align, roi_pool

roi_align_module = importlib.import_module("faster_rcnn.ops.roi_align")

HEIGHT, WIDTH = 6, 7


def reference_roi_align(
    features: torch.Tensor,
    rois: torch.Tensor,
    output_size: tuple[int, int],
    spatial_scale: float,
    sampling_ratio: int,
    aligned: bool,
) -> torch.Tensor:
    """One RoI, bin and sample at a time, in Python floats (float64 arithmetic)."""
    pooled_h, pooled_w = output_size
    _, channels, height, width = features.shape
    output = torch.zeros(len(rois), channels, pooled_h, pooled_w, dtype=torch.float64)

    def bilinear(image: torch.Tensor, y: float, x: float) -> torch.Tensor:
        if y < -1.0 or y > height or x < -1.0 or x > width:
            return torch.zeros(channels, dtype=torch.float64)
        y, x = max(y, 0.0), max(x, 0.0)
        y_low, x_low = int(y), int(x)
        if y_low >= height - 1:
            y_low = y_high = height - 1
            y = float(y_low)
        else:
            y_high = y_low + 1
        if x_low >= width - 1:
            x_low = x_high = width - 1
            x = float(x_low)
        else:
            x_high = x_low + 1
        ly, lx = y - y_low, x - x_low
        hy, hx = 1.0 - ly, 1.0 - lx
        return (
            hy * hx * image[:, y_low, x_low]
            + hy * lx * image[:, y_low, x_high]
            + ly * hx * image[:, y_high, x_low]
            + ly * lx * image[:, y_high, x_high]
        )

    for k, (batch, x1, y1, x2, y2) in enumerate(rois.tolist()):
        image = features[int(batch)].double()
        offset = 0.5 if aligned else 0.0
        start_w, start_h = x1 * spatial_scale - offset, y1 * spatial_scale - offset
        roi_w = x2 * spatial_scale - offset - start_w
        roi_h = y2 * spatial_scale - offset - start_h
        if not aligned:
            roi_w, roi_h = max(roi_w, 1.0), max(roi_h, 1.0)
        bin_h, bin_w = roi_h / pooled_h, roi_w / pooled_w
        grid_h = sampling_ratio if sampling_ratio > 0 else math.ceil(roi_h / pooled_h)
        grid_w = sampling_ratio if sampling_ratio > 0 else math.ceil(roi_w / pooled_w)
        count = max(grid_h * grid_w, 1)
        for ph in range(pooled_h):
            for pw in range(pooled_w):
                total = torch.zeros(channels, dtype=torch.float64)
                for iy in range(grid_h):
                    y = start_h + ph * bin_h + (iy + 0.5) * bin_h / grid_h
                    for ix in range(grid_w):
                        x = start_w + pw * bin_w + (ix + 0.5) * bin_w / grid_w
                        total += bilinear(image, y, x)
                output[k, :, ph, pw] = total / count
    return output


def reference_roi_pool(
    features: torch.Tensor, rois: torch.Tensor, output_size: tuple[int, int], spatial_scale: float
) -> torch.Tensor:
    """One RoI, bin, channel and cell at a time; C's round() via Decimal."""
    pooled_h, pooled_w = output_size
    _, channels, height, width = features.shape
    output = torch.zeros(len(rois), channels, pooled_h, pooled_w, dtype=torch.float64)

    def c_round(value: float) -> int:
        return int(Decimal(value).quantize(Decimal(1), rounding=ROUND_HALF_UP))

    for k, (batch, x1, y1, x2, y2) in enumerate(rois.tolist()):
        image = features[int(batch)].double()
        start_w, start_h = c_round(x1 * spatial_scale), c_round(y1 * spatial_scale)
        end_w, end_h = c_round(x2 * spatial_scale), c_round(y2 * spatial_scale)
        bin_h = max(end_h - start_h + 1, 1) / pooled_h
        bin_w = max(end_w - start_w + 1, 1) / pooled_w
        for ph in range(pooled_h):
            for pw in range(pooled_w):
                h0 = min(max(math.floor(ph * bin_h) + start_h, 0), height)
                h1 = min(max(math.ceil((ph + 1) * bin_h) + start_h, 0), height)
                w0 = min(max(math.floor(pw * bin_w) + start_w, 0), width)
                w1 = min(max(math.ceil((pw + 1) * bin_w) + start_w, 0), width)
                if h1 <= h0 or w1 <= w0:
                    continue
                for c in range(channels):
                    output[k, c, ph, pw] = max(
                        image[c, h, w].item() for h in range(h0, h1) for w in range(w0, w1)
                    )
    return output


# Box corners in image pixels: with scales down to 1/4 they reach well outside the
# 6 x 7 feature map on both sides; tiny and inverted boxes come up as well.
coordinate = st.floats(min_value=-12.0, max_value=36.0, allow_nan=False, width=32)
box = st.tuples(st.integers(0, 1), coordinate, coordinate, coordinate, coordinate)


def small_box_near(
    draw: st.DrawFn, corner: tuple[float, float], size: float
) -> tuple[float, float, float, float]:
    x, y = corner
    return (x, y, x + draw(st.floats(0.0, size)), y + draw(st.floats(0.0, size)))


@st.composite
def roi_sets(draw: st.DrawFn) -> torch.Tensor:
    rois = draw(st.lists(box, min_size=1, max_size=4))
    corner = draw(st.tuples(coordinate, coordinate))
    tiny = small_box_near(draw, corner, 0.5)
    return torch.tensor([*rois, (draw(st.integers(0, 1)), *tiny)], dtype=torch.float64)


def features(seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(2, 3, HEIGHT, WIDTH, generator=generator, dtype=torch.float64)


@settings(max_examples=60, deadline=None)
@given(
    rois=roi_sets(),
    output_size=st.sampled_from([(2, 2), (3, 2), (1, 4)]),
    spatial_scale=st.sampled_from([1.0, 0.5, 0.25]),
    sampling_ratio=st.sampled_from([-1, 1, 2]),
    aligned=st.booleans(),
)
def test_roi_align_matches_reference(
    rois: torch.Tensor,
    output_size: tuple[int, int],
    spatial_scale: float,
    sampling_ratio: int,
    aligned: bool,
) -> None:
    x = features()
    expected = reference_roi_align(x, rois, output_size, spatial_scale, sampling_ratio, aligned)
    actual = roi_align(x, rois, output_size, spatial_scale, sampling_ratio, aligned)
    torch.testing.assert_close(actual, expected, rtol=1e-12, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    rois=roi_sets(),
    output_size=st.sampled_from([(2, 2), (3, 2), (1, 4)]),
    spatial_scale=st.sampled_from([1.0, 0.5, 0.25]),
)
def test_roi_pool_matches_reference(
    rois: torch.Tensor, output_size: tuple[int, int], spatial_scale: float
) -> None:
    x = features()
    expected = reference_roi_pool(x, rois, output_size, spatial_scale)
    torch.testing.assert_close(roi_pool(x, rois, output_size, spatial_scale), expected)


def test_large_adaptive_grid_matches_reference() -> None:
    """Adaptive grids of very different sizes in one call (RoIs are grouped by size)."""
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(1, 2, 23, 29, generator=generator, dtype=torch.float64)
    rois = torch.tensor(
        [[0, 1.3, 2.2, 27.9, 21.4], [0, 3.1, 4.7, 4.4, 5.2], [0, -3.0, 9.5, 12.2, 30.0]],
        dtype=torch.float64,
    )
    for aligned in (False, True):
        expected = reference_roi_align(x, rois, (3, 4), 1.0, -1, aligned)
        torch.testing.assert_close(roi_align(x, rois, (3, 4), 1.0, -1, aligned), expected)


@pytest.mark.parametrize(("max_padding", "pool_budget"), [(1.0, 1), (1e9, 1 << 30)])
def test_grouping_of_rois_does_not_change_results(max_padding: float, pool_budget: int) -> None:
    """One RoI per group, or all RoIs in one padded group: same outputs and gradients."""
    generator = torch.Generator().manual_seed(2)
    x = torch.randn(2, 3, 17, 19, generator=generator, dtype=torch.float64)
    corners = torch.rand(40, 2, generator=generator, dtype=torch.float64) * 60 - 10
    sizes = torch.rand(40, 2, generator=generator, dtype=torch.float64) ** 3 * 50
    batch = torch.randint(2, (40, 1), generator=generator).double()
    rois = torch.cat((batch, corners, corners + sizes), dim=1)

    def outputs() -> list[torch.Tensor]:
        features = x.clone().requires_grad_()
        align = roi_align(features, rois, (3, 2), 0.5, -1)
        pool = roi_pool(features, rois, (3, 2), 0.5)
        (align.sum() + (pool * pool).sum()).backward()
        return [align, pool, features.grad]

    expected = outputs()
    with (
        mock.patch.object(roi_align_module, "_MAX_PADDING", max_padding),
        mock.patch.object(roi_align_module, "_POOL_GATHER_BUDGET", pool_budget),
    ):
        actual = outputs()
    for a, e in zip(actual, expected, strict=True):
        torch.testing.assert_close(a, e, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(
        expected[0], reference_roi_align(x, rois, (3, 2), 0.5, -1, False), rtol=1e-12, atol=1e-12
    )
    torch.testing.assert_close(expected[1], reference_roi_pool(x, rois, (3, 2), 0.5))


def test_roi_align_nan_box_gives_zeros() -> None:
    x = features(10)
    rois = torch.tensor([[0, math.nan, 1.0, 4.0, 5.0], [1, 0.5, 1.0, 4.0, 5.0]])
    for sampling_ratio in (-1, 2):
        out = roi_align(x, rois.double(), 2, 1.0, sampling_ratio)
        assert (out[0] == 0).all()
        torch.testing.assert_close(out[1:], roi_align(x, rois[1:].double(), 2, 1.0, sampling_ratio))


def test_channels_last_and_non_contiguous_input() -> None:
    x = features(11)
    rois = torch.tensor([[1, 0.5, 1.0, 5.0, 4.5], [0, -1.0, 2.0, 3.0, 9.0]], dtype=torch.float64)
    for op in (lambda t: roi_align(t, rois, 2, 1.0, 2), lambda t: roi_pool(t, rois, 2)):
        expected = op(x)
        assert expected.is_contiguous()
        nhwc = op(x.contiguous(memory_format=torch.channels_last))
        torch.testing.assert_close(nhwc, expected)
        # Channels-last maps give channels-last RoIs, as a convolution would.
        assert nhwc.is_contiguous(memory_format=torch.channels_last)
        assert not nhwc.is_contiguous()
        wide = torch.cat((x, x), dim=3)[..., ::2]  # strided view
        torch.testing.assert_close(op(wide), op(wide.contiguous()))


def test_roi_align_hand_computed() -> None:
    # One sample per bin, at the bin centres (1.0, 1.5) and (3.0, 1.5) of a 4 x 2 box.
    x = torch.arange(20, dtype=torch.float32).reshape(1, 1, 4, 5)
    rois = torch.tensor([[0, 0.0, 0.5, 4.0, 2.5]])
    out = roi_align(x, rois, (1, 2), sampling_ratio=1)
    # value(y, x) = 5 y + x on the map, bilinear is exact for it.
    torch.testing.assert_close(out, torch.tensor([[[[8.5, 10.5]]]]))


def test_roi_pool_rounds_halves_away_from_zero() -> None:
    x = torch.arange(36, dtype=torch.float64).reshape(1, 1, 6, 6)
    # x1 = 2.5 -> column 3 (torch.round would give 2); y1 = 0.5 -> row 1; x2 = y2 = 4.5 -> 5.
    rois = torch.tensor([[0, 2.5, 0.5, 4.5, 4.5]], dtype=torch.float64)
    out = roi_pool(x, rois, 1)
    assert out.item() == 35.0
    rois = torch.tensor([[0, 2.5, 0.5, 3.49, 1.49]], dtype=torch.float64)
    assert roi_pool(x, rois, 1).item() == 9.0  # rows 1, columns 3: value 6 + 3


def test_list_of_boxes_equals_batch_index_format() -> None:
    x = features(3)
    boxes = [
        torch.tensor([[0.5, 1.0, 4.0, 5.5], [2.0, 2.0, 3.0, 3.0]], dtype=torch.float64),
        torch.tensor([[1.0, 0.0, 6.5, 4.0]], dtype=torch.float64),
    ]
    rois = torch.tensor(
        [[0, 0.5, 1.0, 4.0, 5.5], [0, 2.0, 2.0, 3.0, 3.0], [1, 1.0, 0.0, 6.5, 4.0]],
        dtype=torch.float64,
    )
    torch.testing.assert_close(roi_align(x, boxes, 3, 1.0, 2), roi_align(x, rois, 3, 1.0, 2))
    torch.testing.assert_close(roi_pool(x, boxes, 3), roi_pool(x, rois, 3))


def test_modules() -> None:
    x = features(4)
    rois = torch.tensor([[1, 0.5, 1.0, 13.0, 9.5]], dtype=torch.float64)
    align = RoIAlign((2, 3), spatial_scale=0.5, sampling_ratio=2, aligned=True)
    pool = RoIPool((2, 3), spatial_scale=0.5)
    torch.testing.assert_close(align(x, rois), roi_align(x, rois, (2, 3), 0.5, 2, True))
    torch.testing.assert_close(pool(x, rois), roi_pool(x, rois, (2, 3), 0.5))
    assert "sampling_ratio=2" in repr(align)


@pytest.mark.parametrize("op", [roi_align, roi_pool])
def test_empty_rois(op) -> None:
    x = features().requires_grad_()
    for rois in (torch.zeros(0, 5, dtype=torch.float64), [torch.zeros(0, 4)] * 2):
        out = op(x, rois, (3, 2))
        assert out.shape == (0, 3, 3, 2)
        out.sum().backward()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("op", [roi_align, roi_pool])
def test_dtypes_follow_input(op, dtype: torch.dtype) -> None:
    x = features(5)
    rois = torch.tensor([[0, 0.3, 0.6, 5.2, 4.9], [1, 1.6, 0.2, 6.8, 5.9]], dtype=torch.float64)
    out = op(x.to(dtype), rois.to(dtype), 2)
    assert out.dtype == dtype
    tolerance = {torch.float32: 1e-5, torch.float16: 1e-2, torch.bfloat16: 5e-2}[dtype]
    torch.testing.assert_close(out.double(), op(x, rois, 2), rtol=tolerance, atol=tolerance)


def test_roi_pool_gradient_goes_to_first_maximum() -> None:
    x = torch.zeros(1, 1, 3, 3, dtype=torch.float64, requires_grad=True)
    roi_pool(x, torch.tensor([[0, 0.0, 0.0, 2.0, 2.0]], dtype=torch.float64), 1).sum().backward()
    expected = torch.zeros(1, 1, 3, 3, dtype=torch.float64)
    expected[0, 0, 0, 0] = 1.0
    torch.testing.assert_close(x.grad, expected)


@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", [-1, 2])
def test_roi_align_gradcheck_input(aligned: bool, sampling_ratio: int) -> None:
    x = features(6).requires_grad_()
    rois = torch.tensor(
        [[0, -2.3, 1.1, 5.4, 4.2], [1, 0.7, 0.3, 13.6, 11.9], [1, 2.0, 2.0, 2.2, 2.3]],
        dtype=torch.float64,
    )
    assert torch.autograd.gradcheck(
        lambda t: roi_align(t, rois, (2, 3), 0.5, sampling_ratio, aligned), (x,)
    )


def test_roi_pool_gradcheck_input() -> None:
    x = features(7).requires_grad_()
    rois = torch.tensor(
        [[0, -2.3, 1.1, 5.4, 4.2], [1, 0.7, 0.3, 13.6, 11.9], [0, 7.0, 3.0, 6.0, 2.0]],
        dtype=torch.float64,
    )
    assert torch.autograd.gradcheck(lambda t: roi_pool(t, rois, (2, 3), 0.5), (x,))


@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", [-1, 2])
def test_roi_align_gradcheck_boxes(aligned: bool, sampling_ratio: int) -> None:
    """Box gradients flow through the bilinear weights.

    The boxes are chosen so that the function is smooth around them: every sample sits
    away from integer coordinates (where the bilinear weights have a kink), inside the map,
    and the adaptive grid size stays away from a jump of its ceil().
    """
    x = features(8)
    boxes = torch.tensor([[0.37, 0.61, 4.83, 3.52], [1.26, 1.17, 5.94, 4.71]], dtype=torch.float64)
    batch = torch.tensor([[0.0], [1.0]], dtype=torch.float64)
    boxes.requires_grad_()

    def pooled(b: torch.Tensor) -> torch.Tensor:
        rois = torch.cat((batch, b), dim=1)
        return roi_align(x, rois, (2, 2), 1.0, sampling_ratio, aligned)

    assert torch.autograd.gradcheck(pooled, (boxes,))
    list_pooled = roi_align(x, [boxes[:1], boxes[1:]], (2, 2), 1.0, sampling_ratio, aligned)
    assert list_pooled.requires_grad


def test_memory_format_of_reads_the_layout_and_calls_ambiguous_maps_contiguous() -> None:
    memory_format_of = roi_align_module.memory_format_of
    maps = torch.rand(2, 8, 5, 6)
    assert memory_format_of(maps) == torch.contiguous_format
    assert memory_format_of(maps.contiguous(memory_format=torch.channels_last)) == (
        torch.channels_last
    )
    # A 1x1 map is laid out the same both ways: its strides fit either.
    assert memory_format_of(torch.rand(2, 8, 1, 1)) == torch.contiguous_format
