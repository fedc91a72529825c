"""Non-approximate joint training: the detection losses reach the RPN's regression
branch through the proposals, exactly (finite differences), and only there."""

import pytest
import torch

from faster_rcnn import FasterRCNN
from faster_rcnn.data.synthetic import SyntheticShapes
from faster_rcnn.models import small_config
from faster_rcnn.train.non_approximate import (
    differentiable_proposals,
    non_approximate_losses,
    non_approximate_trainer,
)
from faster_rcnn.train.train_config import TrainConfig
from faster_rcnn.train.trainer import detector_losses

DATA = SyntheticShapes(4, image_size=(64, 64), seed=2, max_objects=2)


def tiny_model(pooler: str = "align", dtype: torch.dtype = torch.float32) -> FasterRCNN:
    cfg = small_config(DATA.num_classes).replace(
        transform={"min_size": (64,), "max_size": 64},
        rpn={"pre_nms_top_n_train": 50, "post_nms_top_n_train": 20},
        roi_heads={"batch_size_per_image": 16},
    )
    if pooler == "pool":
        cfg = cfg.replace(roi_heads={"pooler": "pool", "featmap_names": ("0",)})
    torch.manual_seed(0)
    return FasterRCNN.from_config(cfg).to(dtype).train()


def detection_loss(model, losses_of, dtype=torch.float32) -> torch.Tensor:
    images = [DATA[i][0].to(dtype) for i in range(2)]
    targets = [DATA[i][1] for i in range(2)]
    losses = losses_of(model, images, targets, torch.Generator().manual_seed(1))
    return losses["loss_classifier"] + losses["loss_box_reg"]


def test_the_detection_losses_reach_the_rpn_regression_branch_only_in_this_scheme():
    model = tiny_model()
    detection_loss(model, detector_losses).backward()
    assert model.rpn.head.bbox_pred.weight.grad is None  # approximate: proposals constant
    model.zero_grad(set_to_none=True)
    detection_loss(model, non_approximate_losses).backward()
    assert model.rpn.head.bbox_pred.weight.grad.abs().sum() > 0
    # Which proposals are kept is a choice made on the scores: no gradient there.
    assert model.rpn.head.cls_logits.weight.grad is None
    assert model.rpn.differentiable_proposals is False  # switched on only inside


def first_result_kept(function):
    """``function``, except that every call after the first returns the first result."""
    results = []

    def kept(*args):
        if not results:
            results.append(function(*args))
        return results[0]

    return kept


def test_the_gradient_through_the_proposals_matches_finite_differences(monkeypatch):
    model = tiny_model(dtype=torch.float64)
    # The scheme holds the regression targets constant (they must not chase the
    # proposals): so do the finite differences, with the first forward's targets.
    coder = model.roi_heads.target_creator.box_coder
    monkeypatch.setattr(coder, "encode", first_result_kept(coder.encode))
    bias = model.rpn.head.bbox_pred.bias
    detection_loss(model, non_approximate_losses, torch.float64).backward()
    analytic = bias.grad.clone()
    eps = 1e-6
    for k in analytic.abs().argsort(descending=True)[:6].tolist():
        with torch.no_grad():
            bias[k] += eps
            plus = detection_loss(model, non_approximate_losses, torch.float64)
            bias[k] -= 2 * eps
            minus = detection_loss(model, non_approximate_losses, torch.float64)
            bias[k] += eps
        numeric = (plus - minus) / (2 * eps)
        assert numeric.item() == pytest.approx(analytic[k].item(), rel=1e-4, abs=1e-9), k
    assert analytic.abs().max() > 1e-3  # the comparison was not between zeros


def test_roipool_is_refused_with_the_reason():
    with pytest.raises(ValueError, match=r"needs RoIAlign.*RoIPool's quantised bins"):
        non_approximate_trainer(tiny_model("pool"), DATA, TrainConfig(steps=1, batch_size=1))


def test_the_switch_is_restored_after_an_error():
    model = tiny_model()
    with pytest.raises(RuntimeError), differentiable_proposals(model.rpn):
        raise RuntimeError
    assert model.rpn.differentiable_proposals is False
