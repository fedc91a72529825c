import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from faster_rcnn.ops.boxes import box_iou
from faster_rcnn.rpn.proposals import select_proposals, top_n_per_level


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def select(
    boxes: list[list[float]],
    probabilities: list[float],
    levels: list[int] | None = None,
    image_size: tuple[int, int] = (100, 100),
    **overrides: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run one image through select_proposals; ``levels`` gives anchors per level."""
    settings_ = {
        "pre_nms_top_n": 1000,
        "post_nms_top_n": 1000,
        "nms_thresh": 0.7,
        "score_thresh": 0.0,
        "min_size": 1e-3,
        **overrides,
    }
    out_boxes, out_scores = select_proposals(
        torch.tensor([boxes]),
        torch.tensor([logit(p) for p in probabilities]),
        [image_size],
        levels or [len(boxes)],
        **settings_,
    )
    return out_boxes[0], out_scores[0]


def test_nms_removes_the_lower_scoring_overlapping_box() -> None:
    boxes = [
        [10.0, 10.0, 50.0, 50.0],  # A, p = 0.9
        [12.0, 10.0, 52.0, 50.0],  # B, IoU(A, B) = 1520 / 1680 = 0.905 > 0.7, p = 0.8
        [60.0, 60.0, 90.0, 90.0],  # C, disjoint, p = 0.3
        [10.0, 10.0, 50.0, 38.0],  # D, IoU(A, D) = 0.7 exactly: kept (only > 0.7 removes)
    ]
    kept, scores = select(boxes, [0.9, 0.8, 0.3, 0.6])
    assert kept.tolist() == [boxes[0], boxes[3], boxes[2]]
    torch.testing.assert_close(scores, torch.tensor([0.9, 0.6, 0.3]))


def test_nms_is_independent_per_level() -> None:
    boxes = [[10.0, 10.0, 50.0, 50.0], [12.0, 10.0, 52.0, 50.0]]
    kept, _ = select(boxes, [0.9, 0.8], levels=[1, 1])
    assert kept.tolist() == boxes


def test_pre_nms_top_n_is_per_level() -> None:
    # Disjoint boxes; level 0 has 3 anchors, level 1 has 4; keep 2 of each.
    boxes = [[10.0 * i, 0.0, 10.0 * i + 5, 5.0] for i in range(7)]
    probabilities = [0.1, 0.9, 0.5, 0.2, 0.3, 0.8, 0.4]
    kept, scores = select(boxes, probabilities, levels=[3, 4], pre_nms_top_n=2)
    assert sorted(kept[:, 0].tolist()) == [10.0, 20.0, 50.0, 60.0]
    torch.testing.assert_close(scores, torch.tensor([0.9, 0.8, 0.5, 0.4]))


def test_top_n_per_level_indices() -> None:
    objectness = torch.tensor([[0.1, 0.9, 0.5, 0.2, 0.3, 0.8, 0.4], [7, 6, 5, 4, 3, 2, 1.0]])
    assert top_n_per_level(objectness, [3, 4], 2).tolist() == [[1, 2, 5, 6], [0, 1, 3, 4]]
    assert top_n_per_level(objectness, [3, 4], 10).shape == (2, 7)


def test_min_size_removes_small_boxes() -> None:
    boxes = [[0.0, 0.0, 0.5, 10.0], [20.0, 20.0, 30.0, 20.9], [40.0, 40.0, 41.0, 41.0]]
    kept, _ = select(boxes, [0.9, 0.8, 0.7], min_size=1.0)
    assert kept.tolist() == [boxes[2]]


def test_score_thresh_keeps_equal_scores() -> None:
    boxes = [[10.0 * i, 0.0, 10.0 * i + 5, 5.0] for i in range(3)]
    out_boxes, out_scores = select_proposals(
        torch.tensor([boxes]),
        torch.tensor([0.0, -0.1, 0.1]),  # probabilities 0.5, 0.475, 0.525
        [(100, 100)],
        [3],
        pre_nms_top_n=10,
        post_nms_top_n=10,
        nms_thresh=0.7,
        score_thresh=0.5,
        min_size=0.0,
    )
    assert out_boxes[0].tolist() == [boxes[2], boxes[0]]
    assert out_scores[0][1].item() == 0.5


def test_post_nms_top_n() -> None:
    boxes = [[10.0 * i, 0.0, 10.0 * i + 5, 5.0] for i in range(5)]
    kept, scores = select(boxes, [0.1, 0.2, 0.9, 0.4, 0.5], post_nms_top_n=2)
    assert kept.tolist() == [boxes[2], boxes[4]]
    assert scores.shape == (2,)


def test_clipping_uses_each_image_s_own_size() -> None:
    boxes = torch.tensor([[[-10.0, -5.0, 70.0, 90.0]], [[-10.0, -5.0, 70.0, 90.0]]])
    out_boxes, _ = select_proposals(
        boxes,
        torch.zeros(2),
        [(80, 60), (100, 100)],
        [1],
        pre_nms_top_n=10,
        post_nms_top_n=10,
        nms_thresh=0.7,
        score_thresh=0.0,
        min_size=1e-3,
    )
    assert out_boxes[0].tolist() == [[0.0, 0.0, 60.0, 80.0]]
    assert out_boxes[1].tolist() == [[0.0, 0.0, 70.0, 90.0]]


def naive_select(
    boxes: torch.Tensor,
    logits: torch.Tensor,
    image_size: tuple[int, int],
    counts: list[int],
    pre: int,
    post: int,
    nms_thresh: float,
    min_size: float,
) -> list[list[float]]:
    """Straightforward per-level loops, greedy NMS by hand (no score threshold)."""
    height, width = image_size
    candidates = []
    start = 0
    for level, count in enumerate(counts):
        order = sorted(range(start, start + count), key=lambda i: -logits[i].item())[:pre]
        for i in order:
            x1, y1, x2, y2 = boxes[i].tolist()
            box = [min(max(x1, 0), width), min(max(y1, 0), height)]
            box += [min(max(x2, 0), width), min(max(y2, 0), height)]
            if box[2] - box[0] >= min_size and box[3] - box[1] >= min_size:
                candidates.append((torch.sigmoid(logits[i]).item(), level, box))
        start += count
    candidates.sort(key=lambda c: -c[0])
    kept: list[tuple[float, int, list[float]]] = []
    for score, level, box in candidates:
        if all(
            other_level != level
            or box_iou(torch.tensor([box]), torch.tensor([other])).item() <= nms_thresh
            for _, other_level, other in kept
        ):
            kept.append((score, level, box))
    return [box for _, _, box in kept[:post]]


@settings(max_examples=25, deadline=None)
@given(
    counts=st.lists(st.integers(1, 12), min_size=1, max_size=3),
    pre=st.integers(1, 8),
    post=st.integers(1, 20),
    seed=st.integers(0, 2**16),
)
def test_matches_naive_reference(counts: list[int], pre: int, post: int, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    total = sum(counts)
    corners = torch.rand(total, 2, generator=generator) * 60 - 10
    sizes = torch.rand(total, 2, generator=generator) * 40
    boxes = torch.cat([corners, corners + sizes], dim=1)
    logits = torch.randn(total, generator=generator)
    out_boxes, out_scores = select_proposals(
        boxes[None],
        logits,
        [(45, 50)],
        counts,
        pre_nms_top_n=pre,
        post_nms_top_n=post,
        nms_thresh=0.5,
        score_thresh=0.0,
        min_size=2.0,
    )
    expected = naive_select(boxes, logits, (45, 50), counts, pre, post, 0.5, 2.0)
    assert out_boxes[0].tolist() == expected
    assert bool((out_scores[0][:-1] >= out_scores[0][1:]).all())
