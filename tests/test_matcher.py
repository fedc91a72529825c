"""The band matcher: both stages' rules as settings of one object, by hand-computed IoUs."""

import math

import pytest
import torch

from faster_rcnn.matcher import Matcher, checked_matcher
from faster_rcnn.ops.boxes import box_iou
from torchvision_stand_ins import TorchvisionMatcher

RPN = Matcher((0.3, 0.7), (0, -1, 1), allow_low_quality_matches=True)
PAPER_HEAD = Matcher((0.1, 0.5, 0.5), (-1, 0, -1, 1))


def test_rpn_bands_are_negative_ignored_positive_at_0_3_and_0_7():
    iou = torch.tensor([[0.0, 0.29, 0.3, 0.69, 0.7, 0.95]])
    matches, labels = Matcher((0.3, 0.7), (0, -1, 1))(iou)
    assert labels.tolist() == [0, 0, -1, -1, 1, 1]
    assert matches.tolist() == [0] * 6


def test_the_best_anchor_of_each_box_is_positive_ties_included():
    # GT 0 reaches 0.7 nowhere: its best anchors (1 and 3, tied at 0.5) become positive
    # and keep their own best GT (anchor 3 overlaps GT 1 more).
    iou = torch.tensor([[0.1, 0.5, 0.2, 0.5], [0.0, 0.0, 0.8, 0.6]])
    matches, labels = RPN(iou)
    assert labels.tolist() == [0, 1, 1, 1]
    assert matches.tolist() == [0, 0, 1, 1]


def test_paper_head_background_is_0_1_to_0_5_and_below_is_ignored():
    iou = torch.tensor([[0.05, 0.1, 0.49, 0.5, 0.9], [0.0, 0.0, 0.0, 0.0, 0.95]])
    matches, labels = PAPER_HEAD(iou)
    assert labels.tolist() == [-1, 0, 0, 1, 1]
    assert matches.tolist() == [0, 0, 0, 0, 1]


def test_no_ground_truth_counts_as_iou_zero():
    _, rpn_labels = RPN(torch.zeros(0, 3))
    assert rpn_labels.tolist() == [0, 0, 0]
    _, head_labels = PAPER_HEAD(torch.zeros(0, 2))
    assert head_labels.tolist() == [-1, -1]


@pytest.mark.parametrize(
    ("thresholds", "labels", "message"),
    [
        ((0.7, 0.3), (-1, 0, 1), r"^thresholds must be ascending, got \(0\.7, 0\.3\)$"),
        # The RPN's bands: in its config's words.
        ((0.7, 0.3), (0, -1, 1), r"thresholds\[1\] = 0\.3: bg_iou_thresh \(0\.7\) must be"),
        ((0.3, 0.7), (0, 1), "3 bands, got 2 labels"),
        ((0.5,), (0, 2), "1, 0 or -1"),
    ],
)
def test_bad_bands_are_refused(thresholds, labels, message):
    with pytest.raises(ValueError, match=message):
        Matcher(thresholds, labels)


def test_a_box_nothing_overlaps_makes_no_low_quality_match():
    # The second GT box overlaps no prediction: its best IoU, 0, ties with every one.
    iou = torch.tensor([[0.8, 0.2, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    _, labels = Matcher((0.3, 0.7), (0, -1, 1), allow_low_quality_matches=True)(iou)
    assert labels.tolist() == [1, 0, 0, 0]


def test_a_floor_drops_weak_best_matches_and_keeps_strong_ones():
    iou = torch.tensor([[0.25, 0.1, 0.0], [0.0, 0.5, 0.4]])
    matcher = Matcher((0.3, 0.7), (0, -1, 1), True, low_quality_min_iou=0.3)
    _, labels = matcher(iou)
    assert labels.tolist() == [0, 1, -1]  # box 0's best (0.25) is under the floor


def test_match_best_labels_as_the_matrix_does_and_refuses_low_quality_matches() -> None:
    iou = torch.tensor([[0.05, 0.5, 0.3, 0.0], [0.2, 0.49, 0.6, 0.0]])
    best = iou.max(dim=0)
    matches, labels = PAPER_HEAD.match_best(best.values, best.indices)
    assert matches.tolist() == [1, 0, 1, 0] and labels.tolist() == [0, 1, 1, -1]
    assert [m.tolist() for m in PAPER_HEAD(iou)] == [matches.tolist(), labels.tolist()]
    with pytest.raises(ValueError, match="low-quality matches need every IoU"):
        RPN.match_best(best.values, best.indices)


def matrix_rule(matcher: Matcher, iou: torch.Tensor) -> tuple[list[int], list[int]]:
    """The rule on the whole matrix, written out: each column's best row and band, then
    rule (i) from each row's best."""
    values, matches = iou.max(dim=0)
    labels = torch.tensor(matcher.labels)[
        torch.bucketize(values, torch.tensor(matcher.thresholds), right=True)
    ]
    best_of_gt = iou.max(dim=1).values
    counts = (best_of_gt > 0) & (best_of_gt >= matcher.low_quality_min_iou)
    if matcher.allow_low_quality_matches:
        labels[((iou == best_of_gt[:, None]) & counts[:, None]).any(dim=0)] = 1
    return matches.tolist(), labels.tolist()


@pytest.mark.parametrize("width", [1, 2, 5, 12, 13, 40])
@pytest.mark.parametrize(
    "matcher", [RPN, PAPER_HEAD, Matcher((0.3, 0.7), (0, -1, 1), True, low_quality_min_iou=0.66)]
)
def test_match_blocks_is_the_whole_matrix_at_any_block_width(matcher, width) -> None:
    # IoUs up to 0.65 in steps of 0.05, so rule (i) makes every positive: ties within
    # columns (the first row wins) and within rows (GT box 1's best, 0.65, in columns 0, 3
    # and 8, all positive, whatever the blocks); -1 as a left-out prediction. The floor
    # of 0.66 leaves every GT box out of rule (i).
    generator = torch.Generator().manual_seed(3)
    iou = torch.randint(0, 14, (4, 13), generator=generator).float() * 0.05
    iou[:, 6] = -1.0
    iou[3] = 0.0  # a GT box nothing overlaps
    expected = matrix_rule(matcher, iou)

    def blocks():
        for first in range(0, 13, width):
            yield slice(first, first + width), iou[:, first : first + width].clone()

    assert [m.tolist() for m in matcher.match_blocks(blocks, 13)] == list(expected)
    assert [m.tolist() for m in matcher(iou)] == list(expected)


def test_torchvision_s_high_and_low_thresholds_bound_the_positive_and_negative_bands():
    """torchvision's ``Matcher(high_threshold, low_threshold)``: positive from the high
    one, negative below the low one. The RPN's are its 0.7 and 0.3; the head's its
    foreground 0.5 and the top of its background band, 0.5 too, its lowest bound (the
    paper's 0.1, below which RoIs are ignored) aside."""
    rpn = Matcher((0.3, 0.7), (0, -1, 1))
    head = Matcher((0.1, 0.5, 0.5), (-1, 0, -1, 1))
    assert (rpn.low_threshold, rpn.high_threshold) == (0.3, 0.7)
    assert (head.low_threshold, head.high_threshold) == (0.5, 0.5)
    head.high_threshold = 0.6
    head.low_threshold = 0.4
    assert head.thresholds == (0.1, 0.4, 0.6)
    _, labels = head(torch.tensor([[0.05, 0.35, 0.45, 0.6]]))
    assert labels.tolist() == [-1, 0, -1, 1]
    rpn.low_threshold = 0.2
    _, labels = rpn(torch.tensor([[0.19, 0.2, 0.69, 0.7]]))
    assert labels.tolist() == [0, -1, -1, 1]
    with pytest.raises(
        ValueError,
        match=r"^proposal_matcher\.low_threshold = 0\.7: bg_iou_thresh_lo \(0\.1\) must be "
        r"ordered 0\.0 <= bg_iou_thresh_lo \(0\.1\) <= bg_iou_thresh_hi \(0\.7\) <= "
        r"fg_iou_thresh \(0\.6\) <= 1\.0$",
    ):
        head.low_threshold = 0.7
    assert head.thresholds == (0.1, 0.4, 0.6)


def test_torchvision_s_matcher_becomes_one_labelling_as_it_does():
    """torchvision labels below ``low_threshold`` negative (its head: background from IoU
    0), up to ``high_threshold`` ignored, from there positive; it was refused."""
    iou = torch.tensor([[0.0, 0.19, 0.2, 0.59, 0.6, 0.9]])
    rpn = checked_matcher(TorchvisionMatcher(0.6, 0.2, True), (0, -1, 1), "rpn.proposal_matcher")
    assert (rpn.thresholds, rpn.allow_low_quality_matches) == ((0.2, 0.6), True)
    assert rpn(iou)[1].tolist() == [0, 0, -1, -1, 1, 1]
    head = checked_matcher(TorchvisionMatcher(0.6, 0.2), (-1, 0, -1, 1), "roi_heads.x", True)
    assert (head.thresholds, head.allow_low_quality_matches) == ((0.0, 0.2, 0.6), False)
    assert head(iou)[1].tolist() == [0, 0, -1, -1, 1, 1]
    ssd = type("SSDMatcher", (TorchvisionMatcher,), {})
    ssd.__module__ = "torchvision.models.detection._utils"
    with pytest.raises(
        TypeError,
        match=r"^rpn\.proposal_matcher takes faster_rcnn\.matcher\.Matcher, got "
        r"torchvision\.models\.detection\._utils\.SSDMatcher: ",
    ):
        checked_matcher(ssd(0.5, 0.5), (0, -1, 1), "rpn.proposal_matcher")


def test_a_best_iou_matcher_refuses_low_quality_matches_given_or_set_later():
    """Set on the head's matcher, low-quality matches were taken and the next training
    step failed in match_best ("low-quality matches need every IoU"). They are refused,
    as the refusal says because they would add nothing: with its GT boxes among the
    proposals (as the head appends them) every box's best IoU is 1, so rule (i) labels
    as the bands alone do."""
    generator = torch.Generator().manual_seed(0)
    corners = torch.rand(40, 2, generator=generator) * 80
    proposals = torch.cat((corners, corners + 5 + torch.rand(40, 2, generator=generator) * 40), 1)
    gt = proposals[[3, 17]] + torch.tensor([2.0, -1.0, 4.0, 3.0])
    iou = box_iou(gt, torch.cat((proposals, gt)))
    bands = Matcher((0.0, 0.5, 0.5), (-1, 0, -1, 1))
    rule_i = Matcher((0.0, 0.5, 0.5), (-1, 0, -1, 1), True)
    assert [m.tolist() for m in rule_i(iou)] == [m.tolist() for m in bands(iou)]
    assert bands(iou)[1].tolist().count(1) > 2  # more than the GT boxes themselves

    refused = r"^roi_heads\.m\.allow_low_quality_matches = True: the head appends every GT box"
    matcher = Matcher((0.0, 0.5, 0.5), (-1, 0, -1, 1), best_iou_only="roi_heads.m")
    with pytest.raises(ValueError, match=refused):
        matcher.allow_low_quality_matches = True
    matcher.allow_low_quality_matches = False
    assert matcher.allow_low_quality_matches is False
    with pytest.raises(ValueError, match=refused):
        Matcher((0.0, 0.5, 0.5), (-1, 0, -1, 1), True, best_iou_only="roi_heads.m")
    with pytest.raises(ValueError, match=refused):
        checked_matcher(rule_i, (-1, 0, -1, 1), "roi_heads.m", best_iou_only=True)
    rule_i.allow_low_quality_matches = False
    assert checked_matcher(rule_i, (-1, 0, -1, 1), "roi_heads.m", best_iou_only=True) is rule_i
    with pytest.raises(ValueError, match=refused):
        rule_i.allow_low_quality_matches = True
    rpn = Matcher((0.3, 0.7), (0, -1, 1))
    rpn.allow_low_quality_matches = True  # the RPN's matches from every IoU
    assert rpn.allow_low_quality_matches is True


@pytest.mark.parametrize(
    ("name", "value", "refusal"),
    [
        ("high_threshold", math.nan, r"high_threshold = nan: must be finite, got nan"),
        ("low_threshold", None, r"low_threshold = None: must be a number, got None"),
        ("low_quality_min_iou", None, r"low_quality_min_iou = None: must be a number, got None"),
        ("low_quality_min_iou", math.inf, r"low_quality_min_iou = inf: must be finite, got inf"),
        (
            "allow_low_quality_matches",
            None,
            r"allow_low_quality_matches = None: must be a bool, got None",
        ),
    ],
)
def test_an_iou_that_is_not_a_finite_number_is_refused_where_it_is_set(name, value, refusal):
    """torchvision's users set the matcher's IoUs on the built model: a NaN high threshold
    was taken and labelled every anchor positive (``bucketize`` placed every IoU above
    it) until ``model.config`` refused it at save; a ``None`` minimum failed in the
    training step, and a ``None`` threshold in ``float()``'s words; a ``None`` switch
    was taken as False until the config refused it."""
    matcher = Matcher((0.3, 0.7), (0, -1, 1), allow_low_quality_matches=True)
    with pytest.raises(ValueError, match=rf"^proposal_matcher\.{refusal}$"):
        setattr(matcher, name, value)
    assert (matcher.thresholds, matcher.low_quality_min_iou) == ((0.3, 0.7), 0.0)
    matcher.high_threshold, matcher.low_quality_min_iou = 0.6, 0.2
    assert (matcher.thresholds, matcher.low_quality_min_iou) == ((0.3, 0.6), 0.2)
