"""Compare our model with a record written by ``torchvision_side.py``."""

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor

from faster_rcnn import FasterRCNN

HEAD_PREFIXES = ("rpn.head.", "roi_heads.box_head.", "roi_heads.box_predictor.")


class ReplaySampler:
    """Returns the recorded (pos_masks, neg_masks) of each call, in order."""

    def __init__(self, calls: list) -> None:
        self.calls = list(calls)

    def __call__(self, labels: list[Tensor], generator: torch.Generator | None = None):
        pos, neg = self.calls.pop(0)
        assert [len(p) for p in pos] == [len(x) for x in labels], "candidate counts differ"
        return pos, neg


def in_reference_order(ours: Tensor, theirs: Tensor, atol: float = 1e-3) -> Tensor:
    """``ours`` permuted into the order of ``theirs``; both must hold the same boxes.

    Proposals with exactly equal scores (common: zero padding gives identical features)
    come out of torchvision's final unstable sort in an arbitrary order, ours in index
    order; the set of proposals is the same (to ``atol`` px: thread counts and library
    versions change the last bits), which is what this checks.
    """
    assert ours.shape == theirs.shape, "proposal counts differ"
    distance = (theirs[:, None, :] - ours[None, :, :]).abs().amax(dim=2)
    order = []
    taken = torch.zeros(len(ours), dtype=torch.bool)
    for i, row in enumerate(distance):
        row = row.masked_fill(taken, float("inf"))
        j = int(row.argmin())
        assert row[j] <= atol, f"torchvision proposal {theirs[i].tolist()} is not among ours"
        taken[j] = True
        order.append(j)
    return ours[torch.tensor(order, dtype=torch.int64)]


@contextmanager
def replayed_samplers(model: FasterRCNN, record: dict) -> Iterator[None]:
    """Replay torchvision's sampled masks, our proposals put in torchvision's order."""
    rpn, roi = model.rpn, model.roi_heads.target_creator
    saved = rpn.fg_bg_sampler, roi.fg_bg_sampler
    rpn.fg_bg_sampler = ReplaySampler(record["rpn_samples"])
    roi.fg_bg_sampler = ReplaySampler(record["roi_samples"])

    def reorder(module, inputs, output):
        boxes, losses = output
        aligned = [
            in_reference_order(ours, theirs)
            for ours, theirs in zip(boxes, record["train_proposals"], strict=True)
        ]
        return aligned, losses

    hook = rpn.register_forward_hook(reorder)
    try:
        yield
    finally:
        hook.remove()
        rpn.fg_bg_sampler, roi.fg_bg_sampler = saved


def assert_same_detections(ours: list[dict], theirs: list[dict]) -> None:
    """Same count and labels, boxes within 1e-3 px, scores within 1e-4."""
    assert len(ours) == len(theirs)
    for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        assert len(a["boxes"]) == len(b["boxes"]), f"image {i}: detection counts differ"
        assert torch.equal(a["labels"], b["labels"]), f"image {i}: labels differ"
        torch.testing.assert_close(a["boxes"], b["boxes"], atol=1e-3, rtol=0)
        torch.testing.assert_close(a["scores"], b["scores"], atol=1e-4, rtol=0)


def check_eval(model: FasterRCNN, record: dict) -> None:
    model.eval()
    with torch.no_grad():
        single = [model([image])[0] for image in record["images"]]
        batched = model(record["images"])
    assert all(len(d["boxes"]) > 0 for d in record["eval_single"]), "a vacuous record"
    assert_same_detections(single, record["eval_single"])
    assert_same_detections(batched, record["eval_batched"])


def check_train(model: FasterRCNN, record: dict) -> None:
    """Same four losses within 1e-4 and the same head gradients, samplers replayed."""
    model.train()
    model.zero_grad(set_to_none=True)
    with replayed_samplers(model, record):
        losses = model(record["images"], record["targets"])
    assert set(losses) == set(record["train_losses"])
    for name, value in record["train_losses"].items():
        torch.testing.assert_close(losses[name].detach(), value, atol=1e-4, rtol=0, msg=name)
    sum(losses.values()).backward()
    grads = {
        name: p.grad
        for name, p in model.named_parameters()
        if name.startswith(HEAD_PREFIXES) and p.grad is not None
    }
    assert set(grads) == set(record["train_grads"])
    for name, theirs in record["train_grads"].items():
        scale = theirs.abs().max().clamp(min=1e-12)
        torch.testing.assert_close(grads[name] / scale, theirs / scale, atol=1e-5, rtol=0)
