"""Compare our model with a record written by ``torchvision_side.py``.

The tolerances below are the ones the README states; the checks return the worst
differences they saw, which the parity tests print (``pytest -s``).
"""

import os
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from tiny_backbone import TinyBackbone
from torch import Tensor, nn

from faster_rcnn import AnchorGenerator, FasterRCNN
from faster_rcnn.backbones.training_conv import training_rewrites
from faster_rcnn.roi_heads import MultiScaleRoIAlign

PEER_PYTHON = os.environ.get("FASTER_RCNN_TORCHVISION_PYTHON", "")
SCRIPT = Path(__file__).parent / "torchvision_side.py"
# The mark of a module that needs the peer: skipped where it is not set.
needs_peer = pytest.mark.skipif(
    not Path(PEER_PYTHON).is_file(),
    reason="set FASTER_RCNN_TORCHVISION_PYTHON to a Python that has torchvision",
)

HEAD_PREFIXES = ("rpn.head.", "roi_heads.box_head.", "roi_heads.box_predictor.")
BOX_ATOL = 1e-3  # px, detections and proposals
SCORE_ATOL = 1e-4
REWRITE_BOX_RTOL = 1e-5  # of a coordinate, for inference rewrites (see below)
LOSS_ATOL = 1e-4
# Relative to the largest entry of each gradient (the worst seen: 5.1e-7, resnet50_fpn_v2).
GRAD_ATOL = 2e-5
# Where a pre-activation of the box head's fc6/fc7 is this close to 0 (relative to the
# layer's largest) for some RoI, float rounding decides whether its ReLU is open, and one
# such disagreement moves the gradients of the whole head below it: in
# mobilenet_v3_large_320_fpn's record, fc7's unit 748 at one RoI (-6.5e-8) moved fc7's
# row by 2.9e-4 and 298 of fc6's 1024 rows by up to 5.3e-5, while with that one ReLU set
# as torchvision had it every gradient agreed within 2.2e-7. So our side takes the peer's
# recorded decision at such elements, and only there: a disagreement farther from 0 fails.
RELU_EDGE = 3e-7
# A box head with batch norm in training mode (resnet50_fpn_v2's four convs) couples all
# RoIs of a channel through the batch statistics, so such an edge at one RoI moves the
# whole channel's gradient: up to 1.6e-3 there, over most entries, while the predictor
# after it and the losses agree within 1.4e-7 and 5e-10. Its gradients get this tolerance.
GRAD_ATOL_BATCH_NORM_HEAD = 5e-3


def peer_record(model: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The record ``torchvision_side.py model`` writes, run by the peer's interpreter on
    as many threads as this process: a convolution's summation order can depend on the
    thread count, and a random ResNet-50 amplifies the rounding (0.002 px on a box
    between 1 and 2 threads)."""
    out = tmp_path_factory.mktemp("torchvision") / f"{model}.pt"
    threads = {"OMP_NUM_THREADS": str(torch.get_num_threads())}
    subprocess.run(
        [PEER_PYTHON, str(SCRIPT), model, str(out)], check=True, env={**os.environ, **threads}
    )
    return torch.load(out, weights_only=True)


def tiny_constructor_form(heads: Callable[[], dict[str, nn.Module]]) -> FasterRCNN:
    """``torchvision_side``'s tiny model in torchvision's constructor form, with the head
    modules ``heads`` makes (after the backbone, in the order torchvision's side draws
    them), from the seed the record's model was drawn from, its class scores redrawn as
    there."""
    torch.manual_seed(0)
    backbone = TinyBackbone()
    model = FasterRCNN(
        backbone,
        num_classes=None,
        min_size=200,
        max_size=320,
        rpn_anchor_generator=AnchorGenerator(((24, 32), (64, 96)), ((0.5, 1.0, 2.0),) * 2),
        rpn_pre_nms_top_n_train=300,
        rpn_pre_nms_top_n_test=200,
        rpn_post_nms_top_n_train=200,
        rpn_post_nms_top_n_test=100,
        box_roi_pool=MultiScaleRoIAlign(["0", "1"], 7, 2),
        box_batch_size_per_image=64,
        **heads(),
    )
    with torch.no_grad():
        model.roi_heads.box_predictor.cls_score.weight.normal_(0, 0.15)
    return model


class ReplaySampler:
    """Returns the recorded (pos_masks, neg_masks) of each call, in order."""

    def __init__(self, calls: list) -> None:
        self.calls = list(calls)

    def __call__(
        self,
        labels: list[Tensor],
        scores: list[Tensor] | None = None,
        generator: torch.Generator | None = None,
    ):
        pos, neg = self.calls.pop(0)
        assert [len(p) for p in pos] == [len(x) for x in labels], "candidate counts differ"
        return pos, neg


def record_images(record: dict) -> list[Tensor]:
    """The record's images as both sides feed them: float ``(3, H, W)`` in 0..1."""
    return [image.float() / 255 for image in record["images_uint8"]]


def in_reference_order(ours: Tensor, theirs: Tensor, atol: float = BOX_ATOL) -> Tensor:
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


def max_abs_difference(a: Tensor, b: Tensor) -> float:
    return float((a - b).abs().max()) if a.numel() else 0.0


def assert_same_detections(ours: list[dict], theirs: list[dict]) -> dict[str, float]:
    """Same count and labels, boxes and scores within tolerance; the worst differences."""
    assert len(ours) == len(theirs)
    worst = {"box_px": 0.0, "score": 0.0}
    for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        assert len(a["boxes"]) == len(b["boxes"]), f"image {i}: detection counts differ"
        assert torch.equal(a["labels"], b["labels"]), f"image {i}: labels differ"
        torch.testing.assert_close(a["boxes"], b["boxes"], atol=BOX_ATOL, rtol=0)
        torch.testing.assert_close(a["scores"], b["scores"], atol=SCORE_ATOL, rtol=0)
        worst["box_px"] = max(worst["box_px"], max_abs_difference(a["boxes"], b["boxes"]))
        worst["score"] = max(worst["score"], max_abs_difference(a["scores"], b["scores"]))
    return worst


def assert_same_detections_up_to_order(ours: list[dict], theirs: list[dict]) -> dict[str, float]:
    """The same detections where float rounding differs (an inference rewrite): each of
    theirs matched to one of ours of its label, box and score within tolerance, in any
    order among scores closer than the tolerance; a detection may be missing on one side
    only where the list was cut at ``detections_per_img`` and its score is within the
    tolerance of the cut. Boxes may also differ by :data:`REWRITE_BOX_RTOL` of their
    coordinates: a rewrite's rounding (1e-7 relative a layer) grows through the 50
    layers of a random ResNet to about 1e-5 of a coordinate (1.1e-3 px seen on a 360 px
    one). The worst differences of the matched."""
    worst = {"box_px": 0.0, "score": 0.0}
    for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        unmatched = list(range(len(a["scores"])))
        for box, label, score in zip(b["boxes"], b["labels"], b["scores"], strict=True):
            candidates = [
                j
                for j in unmatched
                if a["labels"][j] == label
                and abs(float(a["scores"][j] - score)) <= SCORE_ATOL
                and _boxes_close(a["boxes"][j], box)
            ]
            if not candidates:
                nearest = min(
                    (max_abs_difference(a["boxes"][j], box), float(a["scores"][j] - score))
                    for j in unmatched
                    if a["labels"][j] == label
                )
                message = f"image {i}: {box} lost (nearest: {nearest[0]:.2g} px, {nearest[1]:.2g})"
                assert _at_the_cut(score, b["scores"], a["scores"]), message
                continue
            j = min(candidates, key=lambda k: abs(float(a["scores"][k] - score)))
            unmatched.remove(j)
            worst["box_px"] = max(worst["box_px"], max_abs_difference(a["boxes"][j], box))
            worst["score"] = max(worst["score"], abs(float(a["scores"][j] - score)))
        for j in unmatched:
            assert _at_the_cut(a["scores"][j], a["scores"], b["scores"]), f"image {i}: extra"
    return worst


def _boxes_close(a: Tensor, b: Tensor) -> bool:
    return bool(((a - b).abs() <= BOX_ATOL + REWRITE_BOX_RTOL * b.abs()).all())


def _at_the_cut(score: Tensor, own: Tensor, other: Tensor) -> bool:
    """Whether a detection scoring ``score`` may be missing from ``other``: both lists
    are full (cut at the same length) and it is within tolerance of the cut."""
    full = len(own) == len(other) and len(own) > 0
    return full and float(score) <= float(other.min()) + SCORE_ATOL


def assert_meaningful(record: dict) -> None:
    """The record tests something: every image with an object has detections, none of
    them with a saturated score (1.0, where scores would tie), and at most one in 50
    shares its score with another: float32 rounding makes a tie of two among 100 scores
    of a narrow range now and then (the tiny model with given heads on an AMD EPYC:
    0.27502647 twice in image 1), which a saturated head makes of most."""
    for i, detection in enumerate(record["eval_single"]):
        scores = detection["scores"]
        assert len(scores) > 0, f"image {i}: a vacuous record"
        assert float(scores.max()) < 1.0, f"image {i}: saturated scores"
        tied = len(scores) - len(scores.unique())
        assert tied <= len(scores) // 50, f"image {i}: {tied} tied scores"


def check_resize(model: FasterRCNN, record: dict) -> None:
    """Our transform resizes every image to the size torchvision's did."""
    model.eval()
    batch, _ = model.transform(record_images(record))
    assert batch.image_sizes == [tuple(size) for size in record["resized_sizes"]]


def check_eval(model: FasterRCNN, record: dict, exact_order: bool = True) -> dict[str, float]:
    """Detections of each image alone and of the whole batch; the worst differences.
    ``exact_order=False`` allows what float rounding allows: equal-within-tolerance
    scores in either order (see :func:`assert_same_detections_up_to_order`)."""
    assert_meaningful(record)
    images = record_images(record)
    model.eval()
    with torch.no_grad():
        single = [model([image])[0] for image in images]
        batched = model(images)
    compare = assert_same_detections if exact_order else assert_same_detections_up_to_order
    worst_single = compare(single, record["eval_single"])
    worst_batched = compare(batched, record["eval_batched"])
    return {key: max(worst_single[key], worst_batched[key]) for key in worst_single}


@contextmanager
def replayed_relu_edges(model: FasterRCNN, record: dict) -> Iterator[list[int]]:
    """Within the block, the box head's fc6/fc7 ReLUs open where the record's were, at
    pre-activations within :data:`RELU_EDGE` of 0; the gradient passes as it would. Yields
    a list that the forward pass fills with the number of decisions replayed per layer."""
    replayed: list[int] = []

    def replay(name: str):
        def hook(module, inputs, output: Tensor) -> Tensor:
            theirs_open = record["train_relu_open"][name]
            value = output.detach()
            differ = (value > 0) != theirs_open
            near_zero = value.abs() < RELU_EDGE * value.abs().max()
            assert not (differ & ~near_zero).any(), f"{name}: a ReLU away from 0 differs"
            replayed.append(int(differ.sum()))
            magnitude = value.abs().clamp(min=torch.finfo(value.dtype).tiny)
            target = torch.where(theirs_open, magnitude, -magnitude)
            return output + torch.where(differ, target - value, 0.0)

        return hook

    head = model.roi_heads.box_head
    hooks = [
        getattr(head, fc).register_forward_hook(replay(f"roi_heads.box_head.{fc}"))
        for fc in ("fc6", "fc7")
        if f"roi_heads.box_head.{fc}" in record["train_relu_open"]
    ]
    try:
        yield replayed
    finally:
        for hook in hooks:
            hook.remove()


def check_train(model: FasterRCNN, record: dict) -> dict[str, float]:
    """Same four losses and head gradients, samplers replayed; the worst differences."""
    model.train()
    model.zero_grad(set_to_none=True)
    # torchvision's exact operations: the rewrites' rounding would move proposals of
    # these random networks across the top-k and NMS cuts (tests/backbones checks them).
    with (
        training_rewrites(False),
        replayed_samplers(model, record),
        replayed_relu_edges(model, record) as replayed,
    ):
        losses = model(record_images(record), record["targets"])
    assert set(losses) == set(record["train_losses"])
    worst = {"loss": 0.0, "grad_relative": 0.0, "relu_edges_replayed": sum(replayed)}
    for name, value in record["train_losses"].items():
        ours = losses[name].detach()
        torch.testing.assert_close(
            ours, value, atol=LOSS_ATOL, rtol=0, msg=lambda m, name=name: f"{name}: {m}"
        )
        worst["loss"] = max(worst["loss"], max_abs_difference(ours, value))
    sum(losses.values()).backward()
    grads = {
        name: p.grad
        for name, p in model.named_parameters()
        if name.startswith(HEAD_PREFIXES) and p.grad is not None
    }
    assert set(grads) == set(record["train_grads"])
    head_norms = any(
        isinstance(m, torch.nn.BatchNorm2d) for m in model.roi_heads.box_head.modules()
    )
    for name, theirs in record["train_grads"].items():
        scale = theirs.abs().max().clamp(min=1e-12)
        ours, theirs = grads[name] / scale, theirs / scale
        loose = head_norms and name.startswith("roi_heads.box_head.")
        atol = GRAD_ATOL_BATCH_NORM_HEAD if loose else GRAD_ATOL
        torch.testing.assert_close(
            ours, theirs, atol=atol, rtol=0, msg=lambda m, name=name: f"{name}: {m}"
        )
        key = "grad_relative_batch_norm_head" if loose else "grad_relative"
        worst[key] = max(worst.get(key, 0.0), max_abs_difference(ours, theirs))
    return worst
