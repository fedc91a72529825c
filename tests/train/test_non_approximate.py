"""Non-approximate joint training: the classification loss of the foreground RoIs
reaches the RPN's regression branch through the proposals, exactly (finite
differences), and nothing else does."""

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


DETECTION_LOSSES = ("loss_classifier", "loss_box_reg")
CLASSIFIER = ("loss_classifier",)


def detection_loss(model, losses_of, dtype=torch.float32, names=DETECTION_LOSSES):
    images = [DATA[i][0].to(dtype) for i in range(2)]
    targets = [DATA[i][1] for i in range(2)]
    losses = losses_of(model, images, targets, torch.Generator().manual_seed(1))
    return sum(losses[name] for name in names)


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


def background_kept(creator):
    """``creator`` (a ProposalTargetCreator), except that every call after the first
    gives the background RoIs of the first: the scheme holds them constant."""
    first = []

    def kept(*args, **kwargs):
        sample = creator(*args, **kwargs)
        if not first:
            first.append(sample)
            return sample
        rois = [
            torch.where((labels > 0)[:, None], now, then.detach())
            for now, then, labels in zip(
                sample.proposals, first[0].proposals, first[0].labels, strict=True
            )
        ]
        return sample._replace(proposals=rois)

    # The parts whose numbers model.config reads, and the head's box coder.
    kept.fg_bg_sampler = creator.fg_bg_sampler
    kept.proposal_matcher = creator.proposal_matcher
    kept.box_coder = creator.box_coder
    return kept


def test_the_gradient_through_the_proposals_matches_finite_differences(monkeypatch):
    """The gradient of both detection losses with respect to the RPN's box deltas is the
    finite-difference derivative of the classification loss, with the regression
    targets and the background RoIs held as they were (the scheme's stops)."""
    model = tiny_model(dtype=torch.float64)
    creator = model.roi_heads.target_creator
    monkeypatch.setattr(creator.box_coder, "encode", first_result_kept(creator.box_coder.encode))
    monkeypatch.setattr(model.roi_heads, "target_creator", background_kept(creator))
    bias = model.rpn.head.bbox_pred.bias
    detection_loss(model, non_approximate_losses, torch.float64).backward()
    analytic = bias.grad.clone()
    eps = 1e-6
    for k in analytic.abs().argsort(descending=True)[:6].tolist():
        with torch.no_grad():
            bias[k] += eps
            plus = detection_loss(model, non_approximate_losses, torch.float64, CLASSIFIER)
            bias[k] -= 2 * eps
            minus = detection_loss(model, non_approximate_losses, torch.float64, CLASSIFIER)
            bias[k] += eps
        numeric = (plus - minus) / (2 * eps)
        assert numeric.item() == pytest.approx(analytic[k].item(), rel=1e-4, abs=1e-9), k
    assert analytic.abs().max() > 1e-3  # the comparison was not between zeros


def test_background_rois_move_no_proposal():
    """With no object in the images every sampled RoI is background: the detection
    losses then give the RPN's regression branch nothing."""
    model = tiny_model()
    images = [DATA[i][0] for i in range(2)]
    empty = {"boxes": torch.zeros((0, 4)), "labels": torch.zeros((0,), dtype=torch.int64)}
    losses = non_approximate_losses(model, images, [empty, empty], torch.Generator())
    (losses["loss_classifier"] + losses["loss_box_reg"]).backward()
    grad = model.rpn.head.bbox_pred.weight.grad
    assert grad is None or not grad.any()
    assert model.roi_heads.box_predictor.cls_score.weight.grad.abs().sum() > 0


def test_the_box_loss_moves_no_proposal():
    """Its targets are held constant, so its gradient in the proposal would only say
    where the head's prediction matches a stale target: it is not used."""
    model = tiny_model()
    detection_loss(model, non_approximate_losses, names=("loss_box_reg",)).backward()
    grad = model.rpn.head.bbox_pred.weight.grad
    assert grad is None or not grad.any()
    assert model.roi_heads.box_predictor.bbox_pred.weight.grad.abs().sum() > 0


def test_the_losses_are_those_of_approximate_training():
    """What moves the proposals adds a term of value 0: the logged losses, and every
    gradient but the RPN's box branch's, are the approximate scheme's."""
    approximate, exact = tiny_model(), tiny_model()
    images, targets = [DATA[i][0] for i in range(2)], [DATA[i][1] for i in range(2)]
    ours = non_approximate_losses(exact, images, targets, torch.Generator().manual_seed(1))
    theirs = detector_losses(approximate, images, targets, torch.Generator().manual_seed(1))
    assert {k: v.item() for k, v in ours.items()} == {k: v.item() for k, v in theirs.items()}
    sum(ours.values()).backward()
    sum(theirs.values()).backward()
    for (name, p), q in zip(exact.named_parameters(), approximate.parameters(), strict=True):
        if p.grad is None or name.startswith(("rpn.head", "backbone")):
            continue
        assert torch.allclose(p.grad, q.grad, rtol=1e-5, atol=1e-7), name


def test_roipool_is_refused_with_the_reason():
    with pytest.raises(ValueError, match=r"needs RoIAlign.*RoIPool's quantised bins"):
        non_approximate_trainer(tiny_model("pool"), DATA, TrainConfig(steps=1, batch_size=1))


def test_the_switch_is_restored_after_an_error():
    model = tiny_model()
    with pytest.raises(RuntimeError), differentiable_proposals(model.rpn):
        raise RuntimeError
    assert model.rpn.differentiable_proposals is False
