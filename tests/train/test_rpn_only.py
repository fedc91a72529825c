"""RPN-only training: the RPN losses without the RoI head, and training on them alone."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from faster_rcnn import FasterRCNN
from faster_rcnn.data.synthetic import SyntheticShapes
from faster_rcnn.models import small_config
from faster_rcnn.train.rpn_only import rpn_losses, rpn_trainer
from faster_rcnn.train.train_config import TrainConfig

Sample = tuple[Tensor, dict[str, Tensor]]


pytestmark = pytest.mark.usefixtures("one_thread")


def small_model(min_size: tuple[int, ...] = (128,), seed: int = 0) -> FasterRCNN:
    cfg = small_config(4)
    cfg = cfg.replace(transform={"min_size": min_size, "max_size": 160})
    torch.manual_seed(seed)
    return FasterRCNN.from_config(cfg)


def synthetic(num_images: int, seed: int, empty_fraction: float = 0.0) -> list[Sample]:
    data = SyntheticShapes(
        num_images, image_size=(128, 128), seed=seed, max_objects=3, empty_fraction=empty_fraction
    )
    return [data[i] for i in range(num_images)]


def state(module: torch.nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_rpn_losses_equal_the_rpn_part_of_the_full_forward():
    # Two scales: the transform draws from the generator before the anchor sampler does,
    # so agreement needs the draws in the model's order. The last image has no object.
    model = small_model(min_size=(112, 128)).train()
    samples = [*synthetic(2, seed=1), (synthetic(1, seed=2)[0][0], _no_boxes())]
    images = [image for image, _ in samples]
    targets = [target for _, target in samples]

    full = model(images, targets, generator=torch.Generator().manual_seed(7))
    rpn = rpn_losses(model, images, targets, torch.Generator().manual_seed(7))

    assert set(rpn) == {"loss_objectness", "loss_rpn_box_reg"}
    for name, value in rpn.items():
        assert torch.equal(value, full[name]), name
    other_seed = rpn_losses(model, images, targets, torch.Generator().manual_seed(8))
    assert not torch.equal(other_seed["loss_objectness"], rpn["loss_objectness"])


def test_rpn_losses_check_targets_like_the_model():
    model = small_model().train()
    image, target = synthetic(1, seed=1)[0]
    bad = {"boxes": torch.tensor([[10.0, 10.0, 10.0, 40.0]]), "labels": torch.tensor([1])}
    with pytest.raises(ValueError, match="image 1, box 0"):
        rpn_losses(model, [image, image], [target, bad])


def _no_boxes() -> dict[str, Tensor]:
    return {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}


@pytest.fixture(scope="module")
def rpn_run() -> dict[str, object]:
    samples = synthetic(4, seed=3)
    model = small_model(seed=1)
    before = state(model)
    cfg = TrainConfig(
        steps=30, batch_size=2, lr=0.02, warmup_steps=0, schedule="step", lr_decay_at=()
    )
    history = rpn_trainer(model, samples, cfg).fit()
    return {"model": model, "before": before, "history": history}


def test_rpn_training_changes_only_the_backbone_and_the_rpn(rpn_run):
    model, before = rpn_run["model"], rpn_run["before"]
    after = model.state_dict()
    for key, value in before.items():
        if key.startswith("roi_heads."):
            assert torch.equal(after[key], value), f"{key} changed"
    for name, param in model.named_parameters():
        if name.startswith(("backbone.", "rpn.")) and param.requires_grad:
            assert not torch.equal(param, before[name]), f"{name} did not move"


def test_rpn_training_lowers_the_objectness_loss(rpn_run):
    history = rpn_run["history"]
    assert len(history) == 30
    assert set(history[0]) == {"loss_objectness", "loss_rpn_box_reg", "loss"}
    first = sum(h["loss_objectness"] for h in history[:5]) / 5
    last = sum(h["loss_objectness"] for h in history[-5:]) / 5
    assert last < 0.5 * first
