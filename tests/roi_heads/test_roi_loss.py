"""The Fast R-CNN loss on a hand-computed example."""

from __future__ import annotations

import math

import torch

from faster_rcnn.roi_heads.loss import fastrcnn_loss


def smooth_l1(d: float, beta: float) -> float:
    return 0.5 * d * d / beta if abs(d) < beta else abs(d) - 0.5 * beta


def test_two_rois_three_classes_by_hand() -> None:
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.5, 0.5, 3.0]], dtype=torch.float64)
    # RoI 0 is background, RoI 1 is class 2: only its class-2 deltas (columns 8..11) count.
    deltas = torch.tensor(
        [
            [9.0, 9.0, 9.0, 9.0, 9.0, 9.0, 9.0, 9.0, 9.0, 9.0, 9.0, 9.0],
            [7.0, 7.0, 7.0, 7.0, -7.0, -7.0, -7.0, -7.0, 0.05, -0.3, 1.0, 0.0],
        ],
        dtype=torch.float64,
    )
    targets = torch.tensor([[5.0, 5.0, 5.0, 5.0], [0.0, 0.0, 0.5, -0.2]], dtype=torch.float64)
    beta = 1 / 9

    loss_cls, loss_box = fastrcnn_loss(
        logits, deltas, [torch.tensor([0]), torch.tensor([2])], [targets[:1], targets[1:]], beta
    )

    def nll(row: list[float], label: int) -> float:
        return -(row[label] - math.log(sum(math.exp(v) for v in row)))

    expected_cls = (nll([2.0, 1.0, 0.0], 0) + nll([0.5, 0.5, 3.0], 2)) / 2
    # differences 0.05 (quadratic), -0.3, 0.5, 0.2 (linear); summed, over 2 sampled RoIs
    expected_box = sum(smooth_l1(d, beta) for d in (0.05, -0.3, 0.5, 0.2)) / 2
    assert math.isclose(loss_cls.item(), expected_cls, rel_tol=1e-12)
    assert math.isclose(loss_box.item(), expected_box, rel_tol=1e-12)


def test_box_loss_gradient_only_reaches_gt_class_deltas_of_positives() -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 3, generator=gen, requires_grad=True)
    deltas = torch.randn(4, 12, generator=gen, requires_grad=True)
    labels = [torch.tensor([1, 0]), torch.tensor([2, 0])]
    targets = [torch.randn(2, 4, generator=gen), torch.randn(2, 4, generator=gen)]
    _, loss_box = fastrcnn_loss(logits, deltas, labels, targets)
    loss_box.backward()
    has_grad = deltas.grad.reshape(4, 3, 4).abs().sum(-1) > 0
    assert has_grad.tolist() == [
        [False, True, False],
        [False, False, False],
        [False, False, True],
        [False, False, False],
    ]


def test_all_background_gives_zero_box_loss() -> None:
    logits = torch.zeros(3, 4)
    loss_cls, loss_box = fastrcnn_loss(
        logits, torch.ones(3, 16), [torch.zeros(3, dtype=torch.int64)], [torch.ones(3, 4)]
    )
    assert loss_box.item() == 0.0
    assert math.isclose(loss_cls.item(), math.log(4), rel_tol=1e-6)


def test_no_rois_give_zero_losses_that_backpropagate() -> None:
    logits = torch.zeros((0, 3), requires_grad=True)
    deltas = torch.zeros((0, 12), requires_grad=True)
    no_labels, no_targets = [torch.zeros(0, dtype=torch.int64)] * 2, [torch.zeros((0, 4))] * 2
    loss_cls, loss_box = fastrcnn_loss(logits, deltas, no_labels, no_targets)
    assert loss_cls.item() == 0 and loss_box.item() == 0
    (loss_cls + loss_box).backward()
    assert logits.grad.shape == (0, 3) and deltas.grad.shape == (0, 12)
