"""Box geometry and BoxCoder against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from faster_rcnn.ops import BoxCoder, box_area, box_iou, clip_boxes_to_image, remove_small_boxes
from faster_rcnn.ops.boxes import best_box_iou, box_ioa, box_iou_blocks


def t(rows: list[list[float]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64).reshape(-1, 4)


def test_box_area() -> None:
    boxes = t([[0, 0, 2, 3], [1, 1, 1, 5], [-1, -2, 1.5, 2]])
    torch.testing.assert_close(box_area(boxes), torch.tensor([6.0, 0.0, 10.0], dtype=torch.float64))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_boxes_are_measured_in_float32(dtype: torch.dtype) -> None:
    """A model run in half precision: float16 holds at most 65504, less than the area of
    a box 256 px a side (whose IoUs came out 0), and bfloat16 keeps 8 bits of an area."""
    boxes = t([[0, 0, 300, 300], [2, 2, 302, 302], [0, 0, 100, 100]]).float()
    low = boxes.to(dtype)  # the corners are exact in either
    assert box_area(low).tolist() == [90000.0, 90000.0, 10000.0]
    assert torch.equal(box_iou(low, low), box_iou(boxes, boxes))
    assert torch.equal(box_ioa(low, low), box_ioa(boxes, boxes))
    values, indices = best_box_iou(low, low[:2])
    assert values.dtype == torch.float32 and torch.equal(indices, torch.tensor([0, 1]))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_deltas_are_decoded_in_float32(dtype: torch.dtype) -> None:
    # Mixed precision's deltas: in their bfloat16 the corners round to 4 px steps past
    # 512 (1012.5 to 1012), as detectron2 avoids by decoding in float32.
    anchors = t([[996, 996, 1028, 1028], [500, 500, 532, 532]]).float()
    deltas = t([[0.015625, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]).to(dtype)
    boxes = BoxCoder((1.0, 1.0, 1.0, 1.0)).decode_single(deltas, anchors)
    assert boxes.dtype == torch.float32
    assert boxes.tolist() == [[996.5, 996.0, 1028.5, 1028.0], [500.0, 500.0, 532.0, 532.0]]


def test_box_iou_hand_computed() -> None:
    boxes1 = t([[0, 0, 2, 2], [0, 0, 4, 4]])
    boxes2 = t(
        [
            [1, 1, 3, 3],  # partial overlap with the first: 1 / (4 + 4 - 1)
            [3, 3, 5, 5],  # disjoint from the first, overlaps the second by 1
            [1, 1, 3, 3],  # duplicate column
            [2, 0, 4, 2],  # touches the first along an edge: IoU 0
            [0, 0, 2, 2],  # identical to the first, contained in the second: 4 / 16
            [1, 1, 1, 1],  # degenerate point
        ]
    )
    expected = torch.tensor(
        [
            [1 / 7, 0.0, 1 / 7, 0.0, 1.0, 0.0],
            [4 / 16, 1 / 19, 4 / 16, 4 / 16, 4 / 16, 0.0],
        ],
        dtype=torch.float64,
    )
    torch.testing.assert_close(box_iou(boxes1, boxes2), expected)


def test_box_ioa_is_the_share_of_the_first_box_inside_the_second() -> None:
    boxes1 = t([[0, 0, 2, 2], [1, 1, 1, 1]])  # the second has no area
    boxes2 = t([[0, 0, 10, 10], [1, 0, 3, 2], [5, 5, 6, 6]])
    expected = torch.tensor([[1.0, 0.5, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(box_ioa(boxes1, boxes2), expected)
    # Not symmetric: the large box is a hundredth inside the small one.
    assert box_ioa(boxes2[:1], boxes1[:1]).item() == pytest.approx(4 / 100)


def test_box_iou_of_two_degenerate_boxes_is_zero() -> None:
    point = t([[1, 1, 1, 1]])
    assert box_iou(point, point).item() == 0.0
    line = t([[0, 1, 4, 1]])
    assert box_iou(line, line).item() == 0.0


def test_box_iou_empty() -> None:
    assert box_iou(t([]), t([[0, 0, 1, 1]])).shape == (0, 1)
    assert box_iou(t([[0, 0, 1, 1]]), t([])).shape == (1, 0)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(*[st.integers(0, 20)] * 4), min_size=1, max_size=8))
def test_box_iou_is_symmetric_and_bounded(corners: list[tuple[int, int, int, int]]) -> None:
    boxes = t([[min(a, c), min(b, d), max(a, c), max(b, d)] for a, b, c, d in corners])
    iou = box_iou(boxes, boxes)
    torch.testing.assert_close(iou, iou.t())
    assert ((iou >= 0) & (iou <= 1)).all()
    non_degenerate = box_area(boxes) > 0
    assert (iou.diagonal()[non_degenerate] == 1).all()


def test_clip_boxes_to_image() -> None:
    boxes = t([[-5, -3, 20, 30], [2, 3, 4, 5], [16, 11, 18, 12]])
    clipped = clip_boxes_to_image(boxes, (10, 15))  # (height, width)
    torch.testing.assert_close(clipped, t([[0, 0, 15, 10], [2, 3, 4, 5], [15, 10, 15, 10]]))
    batched = clip_boxes_to_image(boxes.expand(2, 3, 4), (10, 15))
    assert batched.shape == (2, 3, 4)
    torch.testing.assert_close(batched[1], clipped)


def test_remove_small_boxes() -> None:
    boxes = t([[0, 0, 1, 1], [0, 0, 0.5, 3], [0, 0, 3, 0.99], [2, 2, 5, 4], [0, 0, 1.0, 2]])
    assert remove_small_boxes(boxes, 1.0).tolist() == [0, 3, 4]
    assert remove_small_boxes(boxes, 2.0).tolist() == [3]
    assert remove_small_boxes(t([]), 1.0).tolist() == []


def test_encode_hand_computed() -> None:
    # Anchor: centre (5, 10), size 10 x 20. Box: centre (12, 9), size 20 x 10.
    anchor = t([[0, 0, 10, 20]])
    box = t([[2, 4, 22, 14]])
    plain = BoxCoder((1.0, 1.0, 1.0, 1.0)).encode_single(box, anchor)
    expected = torch.tensor([[0.7, -0.05, math.log(2.0), math.log(0.5)]], dtype=torch.float64)
    torch.testing.assert_close(plain, expected)
    weighted = BoxCoder((10.0, 10.0, 5.0, 5.0)).encode_single(box, anchor)
    torch.testing.assert_close(weighted, expected * torch.tensor([10.0, 10.0, 5.0, 5.0]))
    torch.testing.assert_close(BoxCoder((1.0, 1.0, 1.0, 1.0)).decode_single(expected, anchor), box)


# Sides between 1 and 40: no box is more than 1000/16 times its anchor, where decode clamps.
positive_box = st.tuples(
    st.floats(-50, 50), st.floats(-50, 50), st.floats(1, 40), st.floats(1, 40)
).map(lambda b: [b[0], b[1], b[0] + b[2], b[1] + b[3]])


@settings(max_examples=50, deadline=None)
@given(
    pairs=st.lists(st.tuples(positive_box, positive_box), min_size=1, max_size=6),
    weights=st.sampled_from([(1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0)]),
)
def test_encode_decode_round_trip(
    pairs: list[tuple[list[float], list[float]]], weights: tuple[float, float, float, float]
) -> None:
    boxes = t([box for box, _ in pairs])
    anchors = t([anchor for _, anchor in pairs])
    coder = BoxCoder(weights)
    deltas = coder.encode_single(boxes, anchors)
    torch.testing.assert_close(coder.decode_single(deltas, anchors), boxes)
    # The list API splits per image and decodes to (N, 1, 4).
    per_image = coder.encode([boxes[:1], boxes[1:]], [anchors[:1], anchors[1:]])
    assert [len(d) for d in per_image] == [1, len(pairs) - 1]
    decoded = coder.decode(torch.cat(per_image), [anchors[:1], anchors[1:]])
    assert decoded.shape == (len(pairs), 1, 4)
    torch.testing.assert_close(decoded[:, 0], boxes)


def test_class_specific_decode() -> None:
    coder = BoxCoder((10.0, 10.0, 5.0, 5.0))
    proposals = t([[0, 0, 10, 20], [5, 5, 9, 7]])
    generator = torch.Generator().manual_seed(0)
    deltas = torch.randn(2, 4 * 3, generator=generator, dtype=torch.float64)
    decoded = coder.decode_single(deltas, proposals)
    assert decoded.shape == (2, 12)
    for c in range(3):
        torch.testing.assert_close(
            decoded[:, 4 * c : 4 * c + 4],
            coder.decode_single(deltas[:, 4 * c : 4 * c + 4], proposals),
        )
    torch.testing.assert_close(
        coder.decode(deltas, [proposals[:1], proposals[1:]]), decoded.view(2, 3, 4)
    )
    # Class 1's deltas for the first proposal, decoded by hand: centre (5, 10), size 10 x 20.
    dx, dy, dw, dh = (deltas[0, 4:8] / torch.tensor([10.0, 10.0, 5.0, 5.0])).tolist()
    cx, cy, w, h = 5 + dx * 10, 10 + dy * 20, 10 * math.exp(dw), 20 * math.exp(dh)
    torch.testing.assert_close(
        decoded[0, 4:8],
        torch.tensor([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dtype=torch.float64),
    )


@pytest.mark.parametrize("weights", [(1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0)])
def test_decode_clamps_tw_th_from_above(weights: tuple[float, float, float, float]) -> None:
    coder = BoxCoder(weights)
    anchor = t([[0, 0, 16, 8]])
    ww, wh = weights[2], weights[3]
    # log-size deltas far above log(1000 / 16): clamped, a box at most 1000/16 times the anchor.
    huge = torch.tensor([[0.0, 0.0, 20.0 * ww, 30.0 * wh]], dtype=torch.float64)
    box = coder.decode_single(huge, anchor)[0]
    torch.testing.assert_close(box[2] - box[0], torch.tensor(1000.0, dtype=torch.float64))
    torch.testing.assert_close(box[3] - box[1], torch.tensor(500.0, dtype=torch.float64))
    torch.testing.assert_close((box[0] + box[2]) / 2, torch.tensor(8.0, dtype=torch.float64))
    # From below there is no clamp.
    tiny = torch.tensor([[0.0, 0.0, -10.0 * ww, -10.0 * wh]], dtype=torch.float64)
    box = coder.decode_single(tiny, anchor)[0]
    torch.testing.assert_close(
        box[2] - box[0], torch.tensor(16 * math.exp(-10.0), dtype=torch.float64)
    )
    assert coder.bbox_xform_clip == pytest.approx(math.log(1000.0 / 16))


def test_best_box_iou_is_the_matrix_maximum_bit_for_bit_in_any_block_size() -> None:
    generator = torch.Generator().manual_seed(0)
    corners = torch.rand(30, 2, generator=generator) * 40
    boxes = torch.cat((corners, corners + 10), dim=1)
    candidates = torch.cat((boxes[:5], boxes + 3, boxes * 0.5))  # ties with boxes[:5]
    expected = box_iou(boxes, candidates).max(dim=0)
    for block_pairs in (1, 29, 31, 1000, 1 << 20):
        values, indices = best_box_iou(boxes, candidates, block_pairs)
        assert torch.equal(values, expected.values)
        assert torch.equal(indices, expected.indices)
    values, indices = best_box_iou(boxes, candidates[:0])
    assert values.shape == indices.shape == (0,) and indices.dtype == torch.int64


def test_box_iou_blocks_are_the_matrix_columns_bit_for_bit() -> None:
    generator = torch.Generator().manual_seed(1)
    corners = torch.rand(7, 2, generator=generator) * 40
    boxes = torch.cat((corners, corners + 10), dim=1)
    candidates = torch.cat((boxes + 1, boxes * 0.5, boxes[:3]))  # 17 columns
    expected = box_iou(boxes, candidates)
    # 1 pair: a column a block; 7 * 5: blocks of 5 and a last one of 2; 7 * 17: one block.
    for block_pairs, widths in ((1, [1] * 17), (7 * 5, [5, 5, 5, 2]), (7 * 17, [17])):
        blocks = list(box_iou_blocks(boxes, candidates, block_pairs))
        assert [block.shape for _, block in blocks] == [(7, w) for w in widths]
        assert [expected[:, columns].shape[1] for columns, _ in blocks] == widths
        assert torch.equal(torch.cat([block for _, block in blocks], dim=1), expected)
