import math

import pytest
import torch

from faster_rcnn.rpn.loss import rpn_loss

BETA = 1.0 / 9


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def smooth_l1(d: float, beta: float = BETA) -> float:
    return 0.5 * d * d / beta if abs(d) < beta else abs(d) - 0.5 * beta


def tiny_example() -> dict[str, object]:
    # One image, 4 anchors: a sampled positive, two sampled negatives, an ignored anchor.
    return {
        "objectness": torch.tensor([2.0, -1.0, 0.5, 3.0]),
        "pred_bbox_deltas": torch.tensor(
            [[0.1, 0.0, 0.5, -0.05], [9.0, 9.0, 9.0, 9.0], [1.0, 2.0, 3.0, 4.0], [5.0] * 4]
        ),
        "labels": [torch.tensor([1.0, 0.0, 0.0, -1.0])],
        "regression_targets": [
            torch.tensor([[0.0, 0.05, 0.2, 0.0], [0.0] * 4, [0.0] * 4, [0.0] * 4])
        ],
        "pos_masks": [torch.tensor([1, 0, 0, 0], dtype=torch.uint8)],
        "neg_masks": [torch.tensor([0, 1, 1, 0], dtype=torch.uint8)],
    }


# -log(sigmoid(2)) for the positive, -log(1 - sigmoid(x)) = softplus(x) for the negatives.
EXPECTED_OBJECTNESS = (softplus(-2.0) + softplus(-1.0) + softplus(0.5)) / 3
# Differences 0.1, -0.05, 0.3, -0.05: beta = 1/9 = 0.111 makes 0.1 and 0.05 quadratic.
BOX_SUM = smooth_l1(0.1) + smooth_l1(-0.05) + smooth_l1(0.3) + smooth_l1(-0.05)


def test_per_sample_normalisation_hand_computed() -> None:
    loss_objectness, loss_box = rpn_loss(**tiny_example())
    assert loss_objectness.item() == pytest.approx(EXPECTED_OBJECTNESS, rel=1e-6)
    assert loss_box.item() == pytest.approx(BOX_SUM / 3, rel=1e-6)


def test_paper_normalisation_hand_computed() -> None:
    loss_objectness, loss_box = rpn_loss(
        **tiny_example(), normalization="paper", box_loss_weight=10.0, num_anchor_locations=2
    )
    assert loss_objectness.item() == pytest.approx(EXPECTED_OBJECTNESS, rel=1e-6)
    assert loss_box.item() == pytest.approx(10.0 * BOX_SUM / 2, rel=1e-6)


def test_paper_n_reg_counts_locations_of_every_image() -> None:
    example = tiny_example()
    doubled = {
        "objectness": example["objectness"].repeat(2),
        "pred_bbox_deltas": example["pred_bbox_deltas"].repeat(2, 1),
        **{key: example[key] * 2 for key in ("labels", "regression_targets")},
        **{key: example[key] * 2 for key in ("pos_masks", "neg_masks")},
    }
    loss_objectness, loss_box = rpn_loss(
        **doubled, normalization="paper", box_loss_weight=10.0, num_anchor_locations=2
    )
    assert loss_objectness.item() == pytest.approx(EXPECTED_OBJECTNESS, rel=1e-6)
    # Twice the sum over twice the locations.
    assert loss_box.item() == pytest.approx(10.0 * 2 * BOX_SUM / 4, rel=1e-6)


def test_beta_changes_the_box_loss() -> None:
    _, loss_box = rpn_loss(**tiny_example(), beta=1.0)
    expected = sum(smooth_l1(d, 1.0) for d in (0.1, -0.05, 0.3, -0.05)) / 3
    assert loss_box.item() == pytest.approx(expected, rel=1e-6)


def test_nothing_sampled_gives_zero_not_nan() -> None:
    example = tiny_example()
    example["objectness"].requires_grad_(True)
    example["pos_masks"] = [torch.zeros(4, dtype=torch.uint8)]
    example["neg_masks"] = [torch.zeros(4, dtype=torch.uint8)]
    loss_objectness, loss_box = rpn_loss(**example)
    assert loss_objectness.item() == 0.0 and loss_box.item() == 0.0
    (loss_objectness + loss_box).backward()


def test_gradcheck_float64() -> None:
    generator = torch.Generator().manual_seed(0)
    objectness = torch.randn(6, dtype=torch.float64, generator=generator, requires_grad=True)
    deltas = torch.randn(6, 4, dtype=torch.float64, generator=generator, requires_grad=True)
    labels = [torch.tensor([1.0, 0.0, -1.0], dtype=torch.float64)] * 2
    targets = [torch.randn(3, 4, dtype=torch.float64, generator=generator)] * 2
    pos = [torch.tensor([1, 0, 0], dtype=torch.uint8)] * 2
    neg = [torch.tensor([0, 1, 0], dtype=torch.uint8)] * 2
    for normalization in ("per_sample", "paper"):
        assert torch.autograd.gradcheck(
            lambda o, d, n=normalization: rpn_loss(
                o, d, labels, targets, pos, neg, normalization=n, num_anchor_locations=3
            ),
            (objectness, deltas),
        )


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="num_anchor_locations"):
        rpn_loss(**tiny_example(), normalization="paper")
    with pytest.raises(ValueError, match="normalization"):
        rpn_loss(**tiny_example(), normalization="mean")
