"""One SGD step, against the update worked out by hand."""

import math

import pytest
import torch
from torch import nn

from faster_rcnn.train.state import TrainingState
from faster_rcnn.train.step import train_step
from faster_rcnn.train.train_config import TrainConfig


def quadratic(model: nn.Module):
    """loss_a = sum(w^2) / 2 (gradient w), loss_b = 3 * sum(w) (gradient 3)."""

    def losses(images, targets, generator):
        (w,) = model.parameters()
        return {"loss_a": (w**2).sum() / 2, "loss_b": 3 * w.sum()}

    return losses


def one_weight(values: list[float]) -> nn.Module:
    model = nn.Linear(len(values), 1, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([values]))
    return model


def test_two_steps_follow_sgd_with_momentum_and_weight_decay():
    model = one_weight([1.0, -2.0])
    cfg = TrainConfig(lr=0.1, momentum=0.9, weight_decay=0.01, grad_clip_norm=None)
    state = TrainingState(model, cfg, list(model.parameters()), "joint")  # type: ignore[arg-type]
    result = train_step(state, quadratic(model), [], [], lr=0.1)
    assert result.losses == pytest.approx({"loss_a": 2.5, "loss_b": -3.0, "loss": -0.5})
    # g = w + 3 + 0.01 w; first step: buffer = g, w -= lr * g.
    w = torch.tensor([1.0, -2.0])
    g = w + 3 + 0.01 * w
    # The reported norm is the loss gradient's (w + 3 = (4, 1)); decay is the optimizer's.
    assert result.grad_norm == pytest.approx(math.sqrt(17))
    w1 = w - 0.1 * g
    assert torch.allclose(model.weight[0], w1)
    train_step(state, quadratic(model), [], [], lr=0.05)
    buffer = 0.9 * g + (w1 + 3 + 0.01 * w1)
    assert torch.allclose(model.weight[0], w1 - 0.05 * buffer)


def test_gradients_are_clipped_to_the_norm():
    model = one_weight([0.0, 0.0])  # gradient (3, 3), norm 4.24
    cfg = TrainConfig(momentum=0.0, weight_decay=0.0, grad_clip_norm=1.0)
    state = TrainingState(model, cfg, list(model.parameters()), "joint")  # type: ignore[arg-type]
    result = train_step(state, quadratic(model), [], [], lr=1.0)
    assert result.grad_norm == pytest.approx(math.sqrt(18))  # before clipping
    expected = -torch.full((2,), 1 / math.sqrt(2))
    assert torch.allclose(model.weight[0], expected, atol=1e-5)


def test_a_non_finite_loss_is_returned_and_leaves_weights_and_momentum_alone():
    model = one_weight([1.0, 2.0])
    state = TrainingState(model, TrainConfig(), list(model.parameters()), "rpn")  # type: ignore[arg-type]

    def infinite(images, targets, generator):
        return {"loss_a": model.weight.sum() * math.inf}

    result = train_step(state, infinite, [], [], lr=0.1)
    assert result.losses == {"loss_a": math.inf, "loss": math.inf}
    assert result.grad_norm is None
    assert model.weight.tolist() == [[1.0, 2.0]]
    assert model.weight.grad is None and state.optimizer.state == {}


@pytest.mark.parametrize("clip", [None, 10.0])
def test_a_finite_loss_with_a_non_finite_gradient_leaves_weights_and_momentum_alone(clip):
    """The gradient of sqrt(|w|) at w = 0 is NaN (infinite times sign 0): applied,
    clipped or not, the update would turn the weight into NaN."""
    model = one_weight([0.0, 4.0])
    cfg = TrainConfig(grad_clip_norm=clip)
    state = TrainingState(model, cfg, list(model.parameters()), "rpn")  # type: ignore[arg-type]

    def square_root(images, targets, generator):
        return {"loss_a": model.weight.abs().sqrt().sum()}

    result = train_step(state, square_root, [], [], lr=0.1)
    assert result.losses == {"loss_a": 2.0, "loss": 2.0}
    assert result.grad_norm is None
    assert model.weight.tolist() == [[0.0, 4.0]]
    assert model.weight.grad is None and state.optimizer.state == {}
