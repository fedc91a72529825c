"""RoI sampling for the Fast R-CNN head: GT appended, labels by IoU, balanced sample."""

from __future__ import annotations

import sys

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from faster_rcnn.ops.boxes import BoxCoder, box_iou
from faster_rcnn.roi_heads.proposal_targets import (
    ProposalTargetCreator,
    add_gt_proposals,
    jittered_boxes,
)
from peak_memory import peak_rise_mb

CODER = BoxCoder((10.0, 10.0, 5.0, 5.0))

GT_BOXES = torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 40.0, 40.0]])
GT_LABELS = torch.tensor([3, 5])
# Best IoU with the GT boxes, computed by hand (areas 100 and 400):
PROPOSALS = torch.tensor(
    [
        [0.0, 0.0, 10.0, 10.0],  # 1.0 with GT 0
        [0.0, 0.0, 10.0, 5.0],  # 50 / 100 = 0.5 exactly with GT 0
        [0.0, 0.0, 10.0, 4.0],  # 40 / 100 = 0.4 with GT 0
        [20.0, 20.0, 40.0, 21.0],  # 20 / 400 = 0.05 with GT 1
        [100.0, 100.0, 110.0, 110.0],  # 0 with both
        [20.0, 20.0, 40.0, 26.0],  # 120 / 400 = 0.3 with GT 1
    ]
)


def make_creator(
    bg_lo: float = 0.0, fg: float = 0.5, batch: int = 512, fraction: float = 0.25, jitter: int = 0
) -> ProposalTargetCreator:
    return ProposalTargetCreator(
        fg_iou_thresh=fg,
        bg_iou_thresh_hi=0.5,
        bg_iou_thresh_lo=bg_lo,
        batch_size_per_image=batch,
        positive_fraction=fraction,
        box_coder=CODER,
        gt_jitter=jitter,
    )


def test_add_gt_proposals_appends_gt_after_proposals() -> None:
    (out,) = add_gt_proposals([PROPOSALS], [GT_BOXES])
    assert out.shape == (8, 4)
    assert torch.equal(out[:6], PROPOSALS)
    assert torch.equal(out[6:], GT_BOXES)


@pytest.mark.parametrize(
    ("bg_lo", "expected"),
    [
        # torchvision: background is [0, 0.5), IoU exactly 0.5 is foreground.
        (0.0, [3, 3, 0, 0, 0, 0, 3, 5]),
        # the paper: background is [0.1, 0.5), so IoU 0.05 and 0 are ignored.
        (0.1, [3, 3, 0, -1, -1, 0, 3, 5]),
    ],
)
def test_labels_follow_iou_thresholds(bg_lo: float, expected: list[int]) -> None:
    candidates = add_gt_proposals([PROPOSALS], [GT_BOXES])
    matched, labels = make_creator(bg_lo).assign_targets_to_proposals(
        candidates, [GT_BOXES], [GT_LABELS]
    )
    assert labels[0].tolist() == expected
    assert labels[0].dtype == torch.int64
    # As in torchvision, a proposal below the background threshold is "matched" to GT 0.
    assert matched[0].tolist() == [0, 0, 0, 0, 0, 0, 0, 1]


def test_iou_between_bg_hi_and_fg_is_ignored() -> None:
    candidates = add_gt_proposals([PROPOSALS], [GT_BOXES])
    _, labels = make_creator(fg=0.7).assign_targets_to_proposals(
        candidates, [GT_BOXES], [GT_LABELS]
    )
    # IoU 0.5 is neither background (< 0.5) nor foreground (>= 0.7).
    assert labels[0].tolist() == [3, -1, 0, 0, 0, 0, 3, 5]


def test_small_batch_takes_everything_with_exact_targets() -> None:
    sample = make_creator(bg_lo=0.1)([PROPOSALS], [{"boxes": GT_BOXES, "labels": GT_LABELS}])
    # Everything labelled fits in the batch: the sample is all non-ignored RoIs, in order.
    kept = [0, 1, 2, 5, 6, 7]
    candidates = torch.cat([PROPOSALS, GT_BOXES])
    assert torch.equal(sample.proposals[0], candidates[kept])
    assert sample.labels[0].tolist() == [3, 3, 0, 0, 3, 5]
    assert sample.matched_idxs[0].tolist() == [0, 0, 0, 0, 0, 1]
    expected_targets = CODER.encode_single(GT_BOXES[[0, 0, 0, 0, 0, 1]], candidates[kept])
    torch.testing.assert_close(sample.regression_targets[0], expected_targets)
    # Hand check of one target: GT 0 (centre 5, 5; 10 x 10) against [0, 0, 10, 5]
    # (centre 5, 2.5; 10 x 5): (0, 10 * 2.5 / 5, 0, 5 * log 2).
    torch.testing.assert_close(
        sample.regression_targets[0][1],
        torch.tensor([0.0, 5.0, 0.0, 5.0 * torch.log(torch.tensor(2.0)).item()]),
    )


def test_jittered_boxes_move_each_box_by_unit_normal_deltas() -> None:
    copies = jittered_boxes(GT_BOXES, 3, CODER, torch.Generator().manual_seed(4))
    codes = torch.randn((6, 4), generator=torch.Generator().manual_seed(4))
    assert copies.shape == (6, 4)
    # First copy of every box, then the second...; each is its box moved by the codes.
    originals = GT_BOXES[[0, 1, 0, 1, 0, 1]]
    torch.testing.assert_close(CODER.encode_single(copies, originals), codes)
    # Hand check of the first: GT 0 (centre 5, 5; 10 x 10) moved by 10 * tx px and
    # scaled by exp(tw / 5).
    tx, ty, tw, th = codes[0].tolist()
    cx, cy, w, h = 5 + tx, 5 + ty, 10 * torch.tensor(tw / 5).exp(), 10 * torch.tensor(th / 5).exp()
    torch.testing.assert_close(
        copies[0], torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
    )


def test_jittered_boxes_overlap_their_box_as_documented() -> None:
    box = torch.tensor([[100.0, 50.0, 140.0, 110.0]])
    copies = jittered_boxes(box, 20000, CODER, torch.Generator().manual_seed(5))
    iou = box_iou(box, copies)[0]
    # Nine in ten at IoU >= 0.5, half at 0.66 or more, whatever the box's size.
    assert 0.92 < float((iou >= 0.5).float().mean()) < 0.95
    assert 0.64 < float(iou.median()) < 0.67
    deltas = CODER.encode_single(copies, box.expand(20000, 4))
    torch.testing.assert_close(deltas.std(dim=0), torch.ones(4), atol=0.03, rtol=0)


def test_jittered_copies_join_the_candidates_as_foreground_and_background() -> None:
    target = {"boxes": GT_BOXES, "labels": GT_LABELS}
    sample = make_creator(jitter=5)(
        [PROPOSALS], [target], generator=torch.Generator().manual_seed(6)
    )
    copies = jittered_boxes(GT_BOXES, 5, CODER, torch.Generator().manual_seed(6))
    candidates = torch.cat([PROPOSALS, GT_BOXES, copies])
    best_iou, best_gt = box_iou(GT_BOXES, candidates).max(dim=0)
    # The batch takes every labelled candidate (torchvision's background is [0, 0.5)):
    # the sample is the candidates reordered, each labelled by its best IoU.
    assert len(sample.labels[0]) == len(candidates)
    expected = torch.where(best_iou >= 0.5, GT_LABELS[best_gt], 0)
    assert sorted(sample.labels[0].tolist()) == sorted(expected.tolist())
    # Without copies, proposals 0 and 1 and both GT boxes are the foreground; at least
    # two copies join them.
    plain = make_creator()([PROPOSALS], [target], generator=torch.Generator().manual_seed(6))
    assert int((plain.labels[0] > 0).sum()) == 4
    assert int((sample.labels[0] > 0).sum()) >= 4 + 2
    for roi, label in zip(sample.proposals[0], sample.labels[0], strict=True):
        row = int(torch.where((candidates == roi).all(dim=1))[0][0])
        assert int(label) == int(expected[row])


def test_jittered_copies_come_from_the_generator_alone() -> None:
    target = {"boxes": GT_BOXES, "labels": GT_LABELS}
    creator = make_creator(batch=16, jitter=3)
    state = torch.get_rng_state()
    first = creator([PROPOSALS], [target], generator=torch.Generator().manual_seed(9))
    second = creator([PROPOSALS], [target], generator=torch.Generator().manual_seed(9))
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(first.proposals[0], second.proposals[0])
    other = creator([PROPOSALS], [target], generator=torch.Generator().manual_seed(10))
    assert not torch.equal(first.proposals[0], other.proposals[0])


def _proposals_around(box: torch.Tensor, count: int, jitter: float, gen: torch.Generator):
    noise = (torch.rand(count, 4, generator=gen) - 0.5) * 2 * jitter
    return box + noise


def test_sample_sizes_512_at_quarter_positive() -> None:
    gen = torch.Generator().manual_seed(0)
    gt = torch.tensor([[100.0, 100.0, 200.0, 200.0]])
    far = torch.tensor([[300.0, 300.0, 400.0, 400.0]])
    few_pos = torch.cat([_proposals_around(gt[0], 10, 2.0, gen), far.repeat(990, 1)])
    many_pos = torch.cat([_proposals_around(gt[0], 300, 2.0, gen), far.repeat(700, 1)])
    target = {"boxes": gt, "labels": torch.tensor([1])}
    sample = make_creator()([few_pos, many_pos], [target, target], generator=gen)

    few, many = sample.labels
    # 10 jittered proposals + the GT box itself are positive; negatives fill the rest.
    assert (few > 0).sum() == 11 and (few == 0).sum() == 512 - 11
    assert (many > 0).sum() == 128 and (many == 0).sum() == 384
    for proposals, labels in zip(sample.proposals, sample.labels, strict=True):
        iou = box_iou(gt, proposals)[0]
        assert ((iou >= 0.5) == (labels > 0)).all()


def test_image_without_gt_is_all_background_with_dummy_targets() -> None:
    gen = torch.Generator().manual_seed(1)
    proposals = _proposals_around(torch.tensor([50.0, 50.0, 90.0, 90.0]), 20, 5.0, gen)
    empty = {"boxes": torch.zeros((0, 4)), "labels": torch.zeros((0,), dtype=torch.int64)}
    with_gt = {"boxes": GT_BOXES, "labels": GT_LABELS}
    # The paper's lower background bound does not empty an image without objects.
    sample = make_creator(bg_lo=0.1)([PROPOSALS, proposals], [with_gt, empty], generator=gen)
    assert sample.labels[1].tolist() == [0] * 20
    assert sample.matched_idxs[1].tolist() == [0] * 20
    assert torch.equal(sample.proposals[1], proposals)
    expected = CODER.encode_single(torch.zeros((20, 4)), proposals)
    torch.testing.assert_close(sample.regression_targets[1], expected)
    # The first image is unaffected by its neighbour.
    assert sample.labels[0].tolist() == [3, 3, 0, 0, 3, 5]


def test_generator_makes_the_sample_reproducible_without_global_rng() -> None:
    gen = torch.Generator().manual_seed(2)
    proposals = torch.rand(400, 4, generator=gen) * 100
    proposals[:, 2:] += proposals[:, :2] + 1
    target = {"boxes": torch.tensor([[10.0, 10.0, 60.0, 60.0]]), "labels": torch.tensor([2])}
    creator = make_creator(batch=64)
    state = torch.get_rng_state()
    first = creator([proposals], [target], generator=torch.Generator().manual_seed(7))
    second = creator([proposals], [target], generator=torch.Generator().manual_seed(7))
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(first.proposals[0], second.proposals[0])
    assert len(first.labels[0]) == 64


def test_thresholds_out_of_order_are_rejected() -> None:
    with pytest.raises(
        ValueError,
        match=r"^proposal_matcher\.thresholds\[0\] = 0\.6: must be ordered 0\.0 <= "
        r"bg_iou_thresh_lo \(0\.6\) <= bg_iou_thresh_hi \(0\.5\) <= fg_iou_thresh \(0\.5\) "
        r"<= 1\.0$",
    ):
        ProposalTargetCreator(0.5, 0.5, 0.6, 128, 0.25, CODER)


@st.composite
def boxes_strategy(draw: st.DrawFn, max_count: int) -> torch.Tensor:
    count = draw(st.integers(1, max_count))
    coords = st.floats(0, 60, allow_nan=False, width=32)
    sizes = st.floats(1, 40, allow_nan=False, width=32)
    rows = [
        [x, y, x + w, y + h]
        for x, y, w, h in draw(
            st.lists(st.tuples(coords, coords, sizes, sizes), min_size=count, max_size=count)
        )
    ]
    return torch.tensor(rows)


@settings(max_examples=40, deadline=None)
@given(
    gt=boxes_strategy(4),
    proposals=boxes_strategy(30),
    bg_lo=st.sampled_from([0.0, 0.1]),
    batch=st.integers(1, 40),
    seed=st.integers(0, 2**31),
)
def test_sample_obeys_the_labelling_rules(
    gt: torch.Tensor, proposals: torch.Tensor, bg_lo: float, batch: int, seed: int
) -> None:
    labels = torch.arange(1, gt.shape[0] + 1)
    creator = make_creator(bg_lo=bg_lo, batch=batch)
    sample = creator(
        [proposals],
        [{"boxes": gt, "labels": labels}],
        generator=torch.Generator().manual_seed(seed),
    )
    rois, roi_labels, matched = sample.proposals[0], sample.labels[0], sample.matched_idxs[0]
    best_iou, best_gt = box_iou(gt, rois).max(dim=0)
    foreground = roi_labels > 0
    assert (best_iou[foreground] >= 0.5).all()
    assert torch.equal(roi_labels[foreground], labels[best_gt[foreground]])
    assert ((best_iou[~foreground] >= bg_lo) & (best_iou[~foreground] < 0.5)).all()
    assert (roi_labels >= 0).all()
    # As many as the quotas allow: up to a quarter foreground, negatives fill the rest.
    candidate_iou = box_iou(gt, torch.cat([proposals, gt])).max(dim=0).values
    num_fg = int((candidate_iou >= 0.5).sum())
    num_bg = int(((candidate_iou >= bg_lo) & (candidate_iou < 0.5)).sum())
    expected_fg = min(int(batch * 0.25), num_fg)
    assert int(foreground.sum()) == expected_fg
    assert int((~foreground).sum()) == min(batch - expected_fg, num_bg)
    torch.testing.assert_close(sample.regression_targets[0], CODER.encode_single(gt[matched], rois))


# A crowded image's RoI matching in a fresh process: 2500 GT boxes against 2000 proposals,
# the GT boxes and 4 jittered copies of each (the recipe's gt_jitter), 36 million pairs.
_CROWDED_MATCHING_SETUP = """
from faster_rcnn.ops.boxes import BoxCoder
from faster_rcnn.roi_heads.proposal_targets import ProposalTargetCreator
creator = ProposalTargetCreator(0.5, 0.5, 0.0, 512, 0.25, BoxCoder((10, 10, 5, 5)), gt_jitter=4)
generator = torch.Generator().manual_seed(0)
def boxes(count, side):
    corners = torch.rand(count, 2, generator=generator) * 1000
    return torch.cat((corners, corners + side), dim=1)
def sample(count):
    labels = torch.ones(count, dtype=torch.int64)
    return creator([boxes(2000, 30.0)], [{"boxes": boxes(count, 20.0), "labels": labels}])
sample(10)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/self/status")
def test_crowded_image_is_matched_without_a_gt_by_roi_matrix() -> None:
    # The whole (G, P) IoU matrix and its intermediates raised the peak by 1.1 GB; a
    # block of 2^18 pairs at a time raises it by 8 MB.
    rise = peak_rise_mb(_CROWDED_MATCHING_SETUP, "rois = sample(2500)")
    assert rise < 100  # MB
