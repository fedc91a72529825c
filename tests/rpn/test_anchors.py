import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from faster_rcnn.anchors import AnchorGenerator, anchors_crossing_border
from faster_rcnn.config import FasterRCNNConfig
from faster_rcnn.image_list import ImageList

# The paper's 9 anchors (sizes 128, 256, 512; ratios h/w 0.5, 1, 2), ratio-major, centred
# on the origin. Half-sizes: 128 / sqrt(2) / 2 = 45.25 -> 45, 128 * sqrt(2) / 2 = 90.51 -> 91,
# 181.02 -> 181, 362.04 -> 362.
PAPER_BASE = [
    [-91.0, -45.0, 91.0, 45.0],
    [-181.0, -91.0, 181.0, 91.0],
    [-362.0, -181.0, 362.0, 181.0],
    [-64.0, -64.0, 64.0, 64.0],
    [-128.0, -128.0, 128.0, 128.0],
    [-256.0, -256.0, 256.0, 256.0],
    [-45.0, -91.0, 45.0, 91.0],
    [-91.0, -181.0, 91.0, 181.0],
    [-181.0, -362.0, 181.0, 362.0],
]


def paper_generator(offset: float) -> AnchorGenerator:
    return AnchorGenerator(((128, 256, 512),), ((0.5, 1.0, 2.0),), offset=offset)


def image_list(height: int, width: int, num_images: int = 1) -> ImageList:
    return ImageList(torch.zeros(num_images, 3, height, width), [(height, width)] * num_images)


def test_paper_anchors_at_first_location_offset_zero() -> None:
    anchors = paper_generator(0.0)(image_list(64, 64), [torch.zeros(1, 8, 4, 4)])[0]
    assert anchors.shape == (4 * 4 * 9, 4)
    torch.testing.assert_close(anchors[:9], torch.tensor(PAPER_BASE), rtol=0, atol=0)


def test_paper_anchors_at_first_location_offset_half() -> None:
    anchors = paper_generator(0.5)(image_list(64, 64), [torch.zeros(1, 8, 4, 4)])[0]
    expected = torch.tensor(
        [
            [-83.0, -37.0, 99.0, 53.0],
            [-173.0, -83.0, 189.0, 99.0],
            [-354.0, -173.0, 370.0, 189.0],
            [-56.0, -56.0, 72.0, 72.0],
            [-120.0, -120.0, 136.0, 136.0],
            [-248.0, -248.0, 264.0, 264.0],
            [-37.0, -83.0, 53.0, 99.0],
            [-83.0, -173.0, 99.0, 189.0],
            [-173.0, -354.0, 189.0, 370.0],
        ]
    )
    torch.testing.assert_close(anchors[:9], expected, rtol=0, atol=0)


def test_paper_anchor_areas_and_ratios() -> None:
    base = torch.tensor(PAPER_BASE)
    widths, heights = base[:, 2] - base[:, 0], base[:, 3] - base[:, 1]
    areas = (widths * heights).view(3, 3)
    for column, size in enumerate((128, 256, 512)):
        assert torch.allclose(areas[:, column], torch.tensor(float(size**2)), rtol=0.01)
    ratios = (heights / widths).view(3, 3)
    for row, ratio in enumerate((0.5, 1.0, 2.0)):
        assert torch.allclose(ratios[row], torch.tensor(ratio), rtol=0.02)


def test_location_major_order() -> None:
    # Grid of 2 rows x 3 columns at stride 16; row (i * W + j) * A + a is anchor a at (i, j).
    anchors = paper_generator(0.0)(image_list(32, 48), [torch.zeros(1, 8, 2, 3)])[0]
    base = torch.tensor(PAPER_BASE)
    assert anchors.shape == (2 * 3 * 9, 4)
    for i in range(2):
        for j in range(3):
            for a in range(9):
                shift = torch.tensor([16.0 * j, 16.0 * i, 16.0 * j, 16.0 * i])
                assert torch.equal(anchors[(i * 3 + j) * 9 + a], base[a] + shift)


def test_fpn_levels_counts_and_strides() -> None:
    generator = AnchorGenerator.from_config(FasterRCNNConfig())
    assert generator.num_anchors_per_location() == [3] * 5
    grids = [(16, 24), (8, 12), (4, 6), (2, 3), (1, 2)]
    features = [torch.zeros(2, 4, h, w) for h, w in grids]
    anchors = generator(image_list(64, 96, num_images=2), features)
    assert len(anchors) == 2
    assert torch.equal(anchors[0], anchors[1])
    counts = [h * w * 3 for h, w in grids]
    assert anchors[0].shape == (sum(counts), 4)
    levels = anchors[0].split(counts)
    # Strides are padded size // feature size: 4, 8, 16, 32 and (64 // 1, 96 // 2) = (64, 48).
    expected_strides = [(4, 4), (8, 8), (16, 16), (32, 32), (64, 48)]
    for level, (h, w), (stride_y, stride_x), size in zip(
        levels, grids, expected_strides, (32, 64, 128, 256, 512), strict=True
    ):
        centres = (level[:, :2] + level[:, 2:]) / 2
        centres = centres.view(h, w, 3, 2)
        assert torch.equal(centres[0, 0, 0], torch.tensor([0.0, 0.0]))
        if w > 1:
            assert torch.equal(centres[0, 1, 0], torch.tensor([float(stride_x), 0.0]))
        if h > 1:
            assert torch.equal(centres[1, 0, 0], torch.tensor([0.0, float(stride_y)]))
        square = level[1]  # ratio 1.0 is the middle shape
        assert torch.equal(square, torch.tensor([-size / 2, -size / 2, size / 2, size / 2]))


def test_stride_uses_integer_division() -> None:
    generator = AnchorGenerator(((10,),), ((1.0,),))
    anchors = generator(image_list(100, 100), [torch.zeros(1, 1, 13, 13)])[0]
    centres_x = ((anchors[:, 0] + anchors[:, 2]) / 2).view(13, 13)[0]
    assert torch.equal(centres_x, torch.arange(13, dtype=torch.float32) * 7)  # 100 // 13


def test_feature_count_mismatch_names_both_numbers() -> None:
    generator = AnchorGenerator.from_config(FasterRCNNConfig())
    features = [torch.zeros(1, 4, 8 // 2**i, 8 // 2**i) for i in range(4)]
    with pytest.raises(ValueError, match=r"for 5 feature level.*received 4 feature map"):
        generator(image_list(32, 32), features)


def test_sizes_and_ratios_level_count_mismatch() -> None:
    with pytest.raises(ValueError, match=r"for 2 feature level.*for 3"):
        AnchorGenerator(((32,), (64,)), ((1.0,),) * 3)


def test_flat_sizes_are_one_a_level_and_flat_ratios_serve_every_level() -> None:
    """torchvision's reading: ``AnchorGenerator((32, 64), (0.5, 1.0))`` is two levels."""
    generator = AnchorGenerator((32, 64), (0.5, 1.0))
    assert generator.sizes == ((32.0,), (64.0,))
    assert generator.aspect_ratios == ((0.5, 1.0),) * 2
    assert generator.num_anchors_per_location() == [2, 2]
    # Size 32 at ratio 0.5: 45.25 x 22.63 -> half-sides 23 and 11; 64 at 1: 32 and 32.
    torch.testing.assert_close(
        generator.cell_anchors[0][0], torch.tensor([-23.0, -11.0, 23.0, 11.0]), rtol=0, atol=0
    )
    torch.testing.assert_close(
        generator.cell_anchors[1][1], torch.tensor([-32.0, -32.0, 32.0, 32.0]), rtol=0, atol=0
    )


def test_dtype_and_batch() -> None:
    generator = paper_generator(0.5)
    features = [torch.zeros(3, 2, 2, 2, dtype=torch.float64)]
    anchors = generator(image_list(32, 32, num_images=3), features)
    assert len(anchors) == 3
    assert all(a.dtype == torch.float64 for a in anchors)
    assert generator.state_dict() == {}


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_features_get_float32_anchors(dtype: torch.dtype) -> None:
    # Mixed precision on a CPU makes the features bfloat16, in which a corner past 1024 px
    # is a multiple of 8: the anchor of centre 1028 (stride 8), 32 px wide, is 1012..1044.
    generator = AnchorGenerator(sizes=((32,),), aspect_ratios=((1.0,),), offset=0.5)
    features = [torch.zeros(1, 2, 130, 130, dtype=dtype)]
    (anchors,) = generator(image_list(1040, 1040), features)
    assert anchors.dtype == torch.float32
    assert anchors[128 * 130 + 128].tolist() == [1012.0, 1012.0, 1044.0, 1044.0]


def naive_anchors(
    sizes: list[float],
    ratios: list[float],
    grid: tuple[int, int],
    stride: tuple[int, int],
    offset: float,
) -> torch.Tensor:
    rows = []
    for i in range(grid[0]):
        for j in range(grid[1]):
            cx, cy = (j + offset) * stride[1], (i + offset) * stride[0]
            for r in ratios:
                for s in sizes:
                    half_w = round(s / math.sqrt(r) / 2)
                    half_h = round(s * math.sqrt(r) / 2)
                    rows.append([cx - half_w, cy - half_h, cx + half_w, cy + half_h])
    return torch.tensor(rows, dtype=torch.float64)


@settings(max_examples=30, deadline=None)
@given(
    sizes=st.lists(st.sampled_from([8.0, 24.0, 40.0, 100.0]), min_size=1, max_size=3),
    ratios=st.lists(st.sampled_from([0.25, 0.5, 1.0, 3.0]), min_size=1, max_size=3),
    grid=st.tuples(st.integers(1, 5), st.integers(1, 5)),
    image=st.tuples(st.integers(20, 60), st.integers(20, 60)),
    offset=st.sampled_from([0.0, 0.5]),
)
def test_matches_naive_loops(
    sizes: list[float],
    ratios: list[float],
    grid: tuple[int, int],
    image: tuple[int, int],
    offset: float,
) -> None:
    generator = AnchorGenerator((sizes,), (ratios,), offset=offset)
    anchors = generator(image_list(*image), [torch.zeros(1, 1, *grid)])[0]
    stride = (image[0] // grid[0], image[1] // grid[1])
    expected = naive_anchors(sizes, ratios, grid, stride, offset)
    # The sizes are chosen so that no half-size lies within float error of a .5 tie.
    torch.testing.assert_close(anchors.double(), expected, rtol=0, atol=0)


def test_anchors_crossing_border_counts() -> None:
    anchors = torch.tensor(
        [
            [0.0, 0.0, 200.0, 100.0],  # exactly the image
            [-1.0, 10.0, 50.0, 50.0],  # 1 px left
            [10.0, -3.0, 50.0, 50.0],  # 3 px above
            [10.0, 10.0, 205.0, 50.0],  # 5 px right
            [10.0, 10.0, 50.0, 106.0],  # 6 px below
            [50.0, 50.0, 60.0, 60.0],  # well inside
        ]
    )
    size = (100, 200)
    assert anchors_crossing_border(anchors, size, 0).tolist() == [
        False,
        True,
        True,
        True,
        True,
        False,
    ]
    assert anchors_crossing_border(anchors, size, 3).tolist() == [
        False,
        False,
        False,
        True,
        True,
        False,
    ]
    assert anchors_crossing_border(anchors, size, 5).sum() == 1
    assert anchors_crossing_border(anchors, size, -1).sum() == 0
