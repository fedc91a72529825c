"""Step-by-step training parity: torchvision's Faster R-CNN against ours (issue 16).

Both detectors start from the same weights and see the same batches, and each takes
its SGD steps the way its own training does:

- torchvision: ``FasterRCNN`` built by ``benchmarks/raccoon_torchvision.py``'s ``build``
  (``mobilenet_backbone("mobilenet_v2", fpn=True, trainable_layers=3)``, FrozenBN, our
  preset's anchors, the ImageNet weights), trained by that script's loop body;
- ours: the ``mobilenet_v2_fpn`` preset, into which torchvision's whole initial state
  dict is loaded with ``strict=True`` (same keys, so RPN head, FPN, box head and
  predictor start equal too), trained by ``faster_rcnn.train.step.train_step`` with the
  optimizer of ``faster_rcnn.train.state.TrainingState``, what ``faster-rcnn train``
  runs.

The batches are those both trainings read: ``iterate_batches`` over the training split
with ``RandomHorizontalFlip(0.5)``, grouped by aspect ratio. The learning rate is
``learning_rate(TrainConfig(steps=--schedule-steps, lr=--lr, schedule="cosine"), step)``
on both sides (warm-up of 50 steps from 0.1 x), SGD momentum 0.9, weight decay 5e-4 on
every trainable parameter, gradient norm clipped to 10.

The samplers draw differently on the two sides (ours from the trainer's generator,
torchvision's from the global one), so they are made to agree (``--sampling``):

- ``keyed`` (default): all four samplers (RPN anchors and RoIs, both sides) are replaced
  by one deterministic rule. Every candidate ``i`` of image ``b`` at step ``s`` gets a
  fixed key ``u[i] ~ U(0, 1)`` drawn from a generator seeded by ``(stream, s, b)``
  (stream 0 for the RPN, 1 for the RoI head, the same on both sides); the sample is the
  ``min(256 * 0.5, #pos)`` positives and ``min(256 - n_pos, #neg)`` negatives with the
  smallest keys (512 and 0.25 for the RoI head). Same counts and same marginal
  distribution as the random sampler, but a candidate's fate no longer depends on how
  many others there are, so a tiny change in the candidate set changes the sample only
  locally.
- ``seeded``: the real samplers, ours called with ``generator=None`` (which draws from
  the global generator in torchvision's order) and the global seed set to the same
  value before each side's forward pass. The draws match exactly while both sides have
  exactly the same numbers of positive and negative candidates.

Both NMS implementations return the proposals by decreasing score but order equal
scores differently (ours stably, torchvision's not), and an untrained RPN gives many
exactly equal probabilities; so each side's proposals are re-sorted by (score, then
coordinates), a permutation that changes nothing else in training (``--raw-order``
keeps each side's own order). In both modes the samples are recorded and compared
(``rpn``/``roi`` columns: the Jaccard index of the sampled index sets, 1 = identical; the
indices point into each side's candidate list, so they compare boxes only where the
orders agree).

``--sync`` copies torchvision's weights and momentum into ours before every step, so that
each step's losses and gradients are compared on identical states (what a systematic
difference would show at every step; a step whose gradients differ by more than 1e-5 is
explained by the tensors that differ most and by the box-head ReLUs whose input has a
different sign on the two sides). Without it the two train freely and the weight drift
between them is reported. ``--control`` adds another torchvision model whose weights
are perturbed by a relative 1e-6 at the start: the drift that float noise alone grows
into, the yardstick for ours. ``--init`` prints the initial weight statistics of the
freshly initialised heads of both (RPN head, FPN, fc6/fc7, predictor) instead.

Run in the torchvision environment (``/work/tvenv``: torch 2.14.1 + torchvision 0.29.1,
this package installed with ``pip install --no-deps -e .``), from the repository root
(``--data`` and ``--weights`` default to ``../shared/data/raccoon`` and
``../shared/weights/mobilenet_v2-b0353104.pth``), on one thread::

    OMP_NUM_THREADS=1 /work/tvenv/bin/python benchmarks/step_parity.py --steps 100 --sync
    OMP_NUM_THREADS=1 /work/tvenv/bin/python benchmarks/step_parity.py --steps 30 --control
    OMP_NUM_THREADS=1 /work/tvenv/bin/python benchmarks/step_parity.py --sampling seeded --sync
    OMP_NUM_THREADS=1 /work/tvenv/bin/python benchmarks/step_parity.py --init

Results are in ``benchmarks/step_parity.md``.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from faster_rcnn.data import Augmented, RandomHorizontalFlip, iterate_batches, open_dataset
from faster_rcnn.data.augment import derive_seed
from faster_rcnn.model import FasterRCNN
from faster_rcnn.models import preset_config
from faster_rcnn.rpn import network as rpn_network
from faster_rcnn.train.schedule import learning_rate
from faster_rcnn.train.state import TrainingState
from faster_rcnn.train.step import train_step
from faster_rcnn.train.train_config import TrainConfig
from faster_rcnn.train.trainer import detector_losses
from raccoon_torchvision import build as build_torchvision

LOSS_NAMES = ("loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg")
SHORT = {
    "loss_objectness": "obj",
    "loss_rpn_box_reg": "rpn_box",
    "loss_classifier": "cls",
    "loss_box_reg": "box",
}
RPN_STREAM, ROI_STREAM = 0, 1
KEY_TABLE = 1 << 16
Targets = list[dict[str, Tensor]]


# ----------------------------------------------------------------------------- samplers


@dataclass
class SampleLog:
    """What one sampler chose, per call of the current step: per image, the sampled
    positive and negative candidate indices and the number of candidates."""

    calls: list[list[tuple[Tensor, Tensor, int]]] = field(default_factory=list)

    def record(self, pos_masks: Sequence[Tensor], neg_masks: Sequence[Tensor]) -> None:
        self.calls.append(
            [
                (torch.where(p)[0], torch.where(n)[0], p.numel())
                for p, n in zip(pos_masks, neg_masks, strict=True)
            ]
        )


class KeyedSampler:
    """Balanced positive/negative sampling with a fixed key per candidate (module
    docstring); callable as torchvision's sampler ``(labels)`` and as ours ``(labels,
    scores, generator)``, returning per image uint8 masks of positives and negatives."""

    def __init__(self, batch_size_per_image: int, positive_fraction: float, stream: int) -> None:
        self.batch_size_per_image = batch_size_per_image
        self.positive_fraction = positive_fraction
        self.stream = stream
        self.step = 0
        self.log = SampleLog()

    def keys(self, image: int, count: int) -> Tensor:
        """The candidates' keys: a fixed table for (stream, step, image), so a candidate's
        key does not depend on how many candidates there are."""
        if count > KEY_TABLE:
            raise ValueError(f"{count} candidates, more than the key table's {KEY_TABLE}")
        generator = torch.Generator().manual_seed(derive_seed(self.stream, self.step, image))
        return torch.rand(KEY_TABLE, generator=generator)[:count]

    def __call__(
        self,
        labels: list[Tensor],
        scores: list[Tensor] | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[list[Tensor], list[Tensor]]:
        pos_masks, neg_masks = [], []
        for image, labels_per_image in enumerate(labels):
            keys = self.keys(image, labels_per_image.numel()).to(labels_per_image.device)
            positive = torch.where(labels_per_image >= 1)[0]
            negative = torch.where(labels_per_image == 0)[0]
            num_pos = min(int(self.batch_size_per_image * self.positive_fraction), len(positive))
            num_neg = min(self.batch_size_per_image - num_pos, len(negative))
            pos_idx = positive[torch.argsort(keys[positive], stable=True)[:num_pos]]
            neg_idx = negative[torch.argsort(keys[negative], stable=True)[:num_neg]]
            pos_masks.append(_mask(labels_per_image, pos_idx))
            neg_masks.append(_mask(labels_per_image, neg_idx))
        self.log.record(pos_masks, neg_masks)
        return pos_masks, neg_masks


class RecordingSampler:
    """The model's own sampler, its choices recorded (``--sampling seeded``)."""

    def __init__(self, inner: Callable[..., tuple[list[Tensor], list[Tensor]]]) -> None:
        self.inner = inner
        self.step = 0
        self.log = SampleLog()

    def __call__(self, labels: list[Tensor], *args: Any) -> tuple[list[Tensor], list[Tensor]]:
        pos_masks, neg_masks = self.inner(labels, *args)
        self.log.record(pos_masks, neg_masks)
        return pos_masks, neg_masks


Sampler = KeyedSampler | RecordingSampler


def _mask(like: Tensor, indices: Tensor) -> Tensor:
    mask = torch.zeros_like(like, dtype=torch.uint8)
    mask[indices] = 1
    return mask


def install_samplers(model: nn.Module, ours: bool, keyed: bool) -> dict[str, Sampler]:
    """Replace (keyed) or wrap (seeded) the model's RPN and RoI samplers."""
    rpn_owner = model.rpn
    roi_owner = model.roi_heads.target_creator if ours else model.roi_heads
    samplers: dict[str, Sampler] = {}
    for name, owner, stream, size, fraction in (
        ("rpn", rpn_owner, RPN_STREAM, 256, 0.5),
        ("roi", roi_owner, ROI_STREAM, 512, 0.25),
    ):
        inner = owner.fg_bg_sampler
        if keyed:
            # The settings of both models are torchvision's defaults; check, not assume.
            assert inner.batch_size_per_image == size and inner.positive_fraction == fraction
            samplers[name] = KeyedSampler(size, fraction, stream)
        else:
            samplers[name] = RecordingSampler(inner)
        owner.fg_bg_sampler = samplers[name]
    return samplers


def start_step(samplers: dict[str, Sampler], step: int) -> None:
    for sampler in samplers.values():
        sampler.step = step
        sampler.log = SampleLog()


def jaccard(a: SampleLog, b: SampleLog) -> float:
    """Agreement of two samplers' choices in a step: |A & B| / |A | B| over (call, image,
    positive or negative, index); 1.0 when identical."""
    same = union = 0
    for call_a, call_b in zip(a.calls, b.calls, strict=True):
        for (pa, na, _), (pb, nb, _) in zip(call_a, call_b, strict=True):
            for x, y in ((pa, pb), (na, nb)):
                sx, sy = set(x.tolist()), set(y.tolist())
                same += len(sx & sy)
                union += len(sx | sy)
    return same / union if union else 1.0


def candidates(log: SampleLog) -> list[int]:
    return [n for call in log.calls for _, _, n in call]


# ----------------------------------------------------------------------------- proposal order

ProposalFn = Callable[..., tuple[list[Tensor], list[Tensor]]]


def canonical_order(boxes: list[Tensor], scores: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
    """Each image's proposals by decreasing score, equal scores by their coordinates.

    Both NMS implementations return the kept boxes by decreasing score but break ties
    differently (torchvision's final sort is not stable, ours is), and an untrained RPN
    gives many exactly equal probabilities; the proposals are then the same set in another
    order, and an index-keyed RoI sample differs. A permutation of the proposals changes
    nothing else in training (the RoI sampler treats them as a set)."""
    out_boxes, out_scores = [], []
    for b, s in zip(boxes, scores, strict=True):
        order = torch.arange(s.numel(), device=s.device)
        for key in (b[:, 3], b[:, 2], b[:, 1], b[:, 0], -s):  # least significant first
            order = order[torch.sort(key.detach()[order], stable=True).indices]
        out_boxes.append(b[order])
        out_scores.append(s[order])
    return out_boxes, out_scores


def canonical(select: ProposalFn) -> ProposalFn:
    def wrapped(*args: Any, **kwargs: Any) -> tuple[list[Tensor], list[Tensor]]:
        return canonical_order(*select(*args, **kwargs))

    return wrapped


def canonicalise_proposals(models: Sequence[nn.Module]) -> None:
    """Put every model's proposals in :func:`canonical_order`: torchvision's through its
    RPN's ``filter_proposals``, ours through ``faster_rcnn.rpn.network.select_proposals``."""
    rpn_network.select_proposals = canonical(rpn_network.select_proposals)
    for model in models:
        if not isinstance(model, FasterRCNN):
            model.rpn.filter_proposals = canonical(model.rpn.filter_proposals)


# ----------------------------------------------------------------------------- models


def build_pair(
    num_classes: int, class_names: Sequence[str], weights: str, min_size: int, max_size: int
) -> tuple[nn.Module, FasterRCNN]:
    """torchvision's model as raccoon_torchvision.py builds it, and ours with its state."""
    tv_model = build_torchvision(num_classes, weights, min_size, max_size)
    config = preset_config("mobilenet_v2_fpn", num_classes).replace(
        class_names=tuple(class_names), transform={"min_size": (min_size,), "max_size": max_size}
    )
    ours = FasterRCNN.from_config(config)
    ours.load_state_dict(tv_model.state_dict(), strict=True)
    tv_trainable = {n for n, p in tv_model.named_parameters() if p.requires_grad}
    our_trainable = {n for n, p in ours.named_parameters() if p.requires_grad}
    if tv_trainable != our_trainable:
        raise SystemExit(
            f"trainable parameters differ: torchvision only {sorted(tv_trainable - our_trainable)}"
            f", ours only {sorted(our_trainable - tv_trainable)}"
        )
    frozen = [n for n, p in ours.named_parameters() if not p.requires_grad]
    print(
        f"state dict copied (strict): {len(ours.state_dict())} entries; trainable parameters "
        f"identical on both sides: {len(our_trainable)} tensors, "
        f"{sum(p.numel() for p in ours.parameters() if p.requires_grad):,} values; "
        f"{len(frozen)} frozen ({frozen[0]} ... {frozen[-1]})"
    )
    return tv_model, ours


def trainable(model: nn.Module) -> dict[str, nn.Parameter]:
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def perturb(model: nn.Module, relative: float, seed: int) -> None:
    """Multiply every trainable weight by ``1 + relative * N(0, 1)``."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in trainable(model).values():
            p.mul_(1 + relative * torch.randn(p.shape, generator=generator))


@torch.no_grad()
def drift(a: nn.Module, b: nn.Module) -> tuple[float, str, float]:
    """``||w_a - w_b|| / ||w_a||`` over all trainable weights, and the tensor with the
    largest relative difference and that difference."""
    pa, pb = trainable(a), trainable(b)
    num = den = 0.0
    worst, worst_name = 0.0, ""
    for name, p in pa.items():
        d = float((p - pb[name]).norm())
        n = float(p.norm())
        num += d * d
        den += n * n
        rel = d / n if n > 0 else d
        if rel > worst:
            worst, worst_name = rel, name
    return math.sqrt(num / den), worst_name, worst


@torch.no_grad()
def grad_difference(a: nn.Module, b: nn.Module) -> tuple[float, list[tuple[str, float]]]:
    """``||g_a - g_b|| / ||g_a||`` over all gradients and the per-tensor values, largest
    first."""
    ga = {n: p.grad for n, p in trainable(a).items()}
    gb = {n: p.grad for n, p in trainable(b).items()}
    per_tensor, num, den = [], 0.0, 0.0
    for name, g in ga.items():
        other = gb[name]
        if g is None or other is None:
            per_tensor.append((name, math.inf if (g is None) != (other is None) else 0.0))
            continue
        d, n = float((g - other).norm()), float(g.norm())
        num, den = num + d * d, den + n * n
        per_tensor.append((name, d / n if n > 0 else d))
    per_tensor.sort(key=lambda item: -item[1])
    return math.sqrt(num / den), per_tensor


def sync_into(ours: FasterRCNN, state: TrainingState, tv_model: nn.Module, tv_opt: Any) -> None:
    """Our weights and momentum buffers := torchvision's."""
    ours.load_state_dict(tv_model.state_dict(), strict=True)
    our_params = trainable(ours)
    for name, p in trainable(tv_model).items():
        buffer = tv_opt.state.get(p, {}).get("momentum_buffer")
        if buffer is not None:
            state.optimizer.state[our_params[name]]["momentum_buffer"] = buffer.clone()


# ----------------------------------------------------------------------------- steps


def torchvision_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    params: list[nn.Parameter],
    cfg: TrainConfig,
    lr: float,
    images: list[Tensor],
    targets: Targets,
) -> tuple[dict[str, float], float]:
    """One step exactly as raccoon_torchvision.py's loop takes it: its losses, and the
    gradients' total norm before clipping."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    losses = model(images, [{"boxes": t["boxes"], "labels": t["labels"]} for t in targets])
    total = sum(losses.values())
    optimizer.zero_grad(set_to_none=True)
    total.backward()
    norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip_norm)
    optimizer.step()
    record = {k: float(v.detach()) for k, v in losses.items()}
    record["loss"] = float(total.detach())
    return record, float(norm)


def our_losses_global(
    model: FasterRCNN, images: list[Tensor], targets: Targets, generator: torch.Generator
) -> dict[str, Tensor]:
    """``detector_losses`` drawing from the global generator (``--sampling seeded``)."""
    return model(images, targets)


class ActivationTap:
    """Keeps the last outputs of the box head's fc6 and fc7 (before their ReLU)."""

    def __init__(self, model: nn.Module) -> None:
        self.outputs: dict[str, Tensor] = {}
        for name in ("fc6", "fc7"):
            layer = getattr(model.roi_heads.box_head, name)
            layer.register_forward_hook(partial(self._keep, name))

    def _keep(self, name: str, module: nn.Module, inputs: Any, output: Tensor) -> None:
        self.outputs[name] = output.detach()


def relu_flips(a: ActivationTap, b: ActivationTap) -> str:
    """Box-head units whose pre-activation has a different sign on the two sides (so the
    ReLU passes the gradient on one side only), and the largest such |pre-activation|."""
    parts = []
    for name, x in a.outputs.items():
        y = b.outputs[name]
        flips = (x > 0) != (y > 0)
        if flips.any():
            largest = float(torch.maximum(x[flips].abs(), y[flips].abs()).max())
            parts.append(f"{name}: {int(flips.sum())} (|pre-activation| <= {largest:.1e})")
    return "; ".join(parts) or "none"


def clone_batch(images: list[Tensor], targets: Targets) -> tuple[list[Tensor], Targets]:
    return [i.clone() for i in images], [
        {k: v.clone() if isinstance(v, Tensor) else v for k, v in t.items()} for t in targets
    ]


def step_zero(
    tv_model: nn.Module,
    ours: FasterRCNN,
    images: list[Tensor],
    targets: Targets,
    seeded: bool,
    seed: int,
) -> None:
    """Losses, intermediate tensors and gradients of both models on the first batch,
    before any update."""
    print("\n== step 0: identical weights, identical batch ==")
    with torch.no_grad():
        tv_images, tv_targets = tv_model.transform(*clone_batch(images, targets))
        batch = ours.prepare_batch(*clone_batch(images, targets))
        pixel_diff = float((tv_images.tensors - batch.images.tensors).abs().max())
        box_diff = max(
            float((a["boxes"] - b["boxes"]).abs().max())
            for a, b in zip(tv_targets, batch.training_targets(), strict=True)
        )
        print(
            f"transformed batch {tuple(tv_images.tensors.shape)} vs "
            f"{tuple(batch.images.tensors.shape)}; sizes {tv_images.image_sizes} vs "
            f"{batch.images.image_sizes}; max |diff| {pixel_diff:.2e}; boxes max |diff| "
            f"{box_diff:.2e}"
        )
        tv_features = tv_model.backbone(tv_images.tensors)
        our_features = ours.features(batch.images)
        for name, f in tv_features.items():
            g = our_features[name]
            print(
                f"feature {name!r} {tuple(f.shape)}: max |diff| / max |f| "
                f"{float((f - g).abs().max() / f.abs().max()):.2e}"
            )
        tv_model.rpn.eval()
        ours.rpn.eval()
        tv_props, _ = tv_model.rpn(tv_images, tv_features)
        our_props, _ = ours.rpn(batch.images, our_features)
        tv_model.rpn.train()
        ours.rpn.train()
        for i, (p, q) in enumerate(zip(tv_props, our_props, strict=True)):
            n = min(len(p), len(q))
            print(
                f"image {i}: eval-mode proposals {len(p)} vs {len(q)}, first {n} max |diff| "
                f"{float((p[:n] - q[:n]).abs().max()):.2e} px"
            )

    losses = {}
    for name, model in (("torchvision", tv_model), ("ours", ours)):
        if seeded:
            torch.manual_seed(seed)
        model.zero_grad(set_to_none=True)
        ims, tgts = clone_batch(images, targets)
        if name == "torchvision":
            tgts = [{"boxes": t["boxes"], "labels": t["labels"]} for t in tgts]
        out = model(ims, tgts)
        losses[name] = {k: float(v.detach()) for k, v in out.items()}
        sum(out.values()).backward()
    print(f"{'loss':<18}{'torchvision':>14}{'ours':>14}{'rel diff':>11}")
    for k in LOSS_NAMES:
        a, b = losses["torchvision"][k], losses["ours"][k]
        print(f"{k:<18}{a:>14.8f}{b:>14.8f}{abs(a - b) / abs(a):>11.1e}")
    total, per_tensor = grad_difference(tv_model, ours)
    print(f"gradients: ||g_tv - g_ours|| / ||g_tv|| = {total:.2e} over all trainable tensors")
    print("largest per-tensor relative differences:")
    for name, value in per_tensor[:6]:
        print(f"  {value:.2e}  {name}")
    tv_model.zero_grad(set_to_none=True)
    ours.zero_grad(set_to_none=True)


def run_steps(args: argparse.Namespace) -> list[dict[str, Any]]:
    torch.set_num_threads(args.threads)
    train_set = open_dataset(args.data, "train")
    torch.manual_seed(args.seed)
    tv_model, ours = build_pair(
        train_set.num_classes, train_set.class_names, args.weights, args.min_size, args.max_size
    )
    keyed = args.sampling == "keyed"
    control = None
    if args.control:
        control = copy.deepcopy(tv_model)
        perturb(control, 1e-6, args.seed + 1)
    tv_samplers = install_samplers(tv_model, ours=False, keyed=keyed)
    our_samplers = install_samplers(ours, ours=True, keyed=keyed)
    control_samplers = install_samplers(control, ours=False, keyed=keyed) if control else {}
    if not args.raw_order:
        canonicalise_proposals([m for m in (tv_model, ours, control) if m is not None])

    cfg = TrainConfig(
        steps=args.schedule_steps,
        batch_size=args.batch_size,
        lr=args.lr,
        grad_clip_norm=10.0,  # the clip of the runs step_parity.md records
        schedule="cosine",
        seed=args.seed,
    )
    tv_params = [p for p in tv_model.parameters() if p.requires_grad]
    tv_opt = torch.optim.SGD(tv_params, lr=cfg.lr, momentum=0.9, weight_decay=5e-4)
    state = TrainingState(ours, cfg, list(trainable(ours).values()), "joint")
    if control is not None:
        control_params = [p for p in control.parameters() if p.requires_grad]
        control_opt = torch.optim.SGD(control_params, lr=cfg.lr, momentum=0.9, weight_decay=5e-4)
    losses_of = partial(our_losses_global if not keyed else detector_losses, ours)

    flipped = Augmented(train_set, [RandomHorizontalFlip(0.5)], seed=args.seed)
    batches: Iterator = iterate_batches(flipped, args.batch_size, seed=args.seed)
    for model in (tv_model, ours, control):
        if model is not None:
            model.train()
    tv_tap, our_tap = ActivationTap(tv_model), ActivationTap(ours)

    records: list[dict[str, Any]] = []
    for step in range(args.steps):
        images, targets = next(batches)
        if step == 0:
            for samplers in (tv_samplers, our_samplers):
                start_step(samplers, step)
            step_zero(tv_model, ours, images, targets, not keyed, derive_seed(args.seed, step))
            print(
                "\n== training steps (rel = |ours - tv| / tv; drift = ||w_ours - w_tv|| / "
                "||w_tv|| after the step) =="
            )
        if args.sync:
            sync_into(ours, state, tv_model, tv_opt)
        lr = learning_rate(cfg, step)
        for samplers in (tv_samplers, our_samplers, control_samplers):
            start_step(samplers, step)
        seed = derive_seed(args.seed, step)

        if not keyed:
            torch.manual_seed(seed)
        tv_rec, tv_norm = torchvision_step(
            tv_model, tv_opt, tv_params, cfg, lr, *clone_batch(images, targets)
        )
        if not keyed:
            torch.manual_seed(seed)
        our_step = train_step(state, losses_of, *clone_batch(images, targets), lr)
        our_rec = our_step.losses
        our_norm = math.nan if our_step.grad_norm is None else our_step.grad_norm  # skipped
        grad_rel, per_tensor = grad_difference(tv_model, ours)
        record: dict[str, Any] = {
            "step": step,
            "lr": lr,
            "torchvision": tv_rec,
            "ours": our_rec,
            "grad_norm": {"torchvision": tv_norm, "ours": our_norm},
            "grad_rel_diff": grad_rel,
            "rpn_jaccard": jaccard(tv_samplers["rpn"].log, our_samplers["rpn"].log),
            "roi_jaccard": jaccard(tv_samplers["roi"].log, our_samplers["roi"].log),
            "roi_candidates": {
                "torchvision": candidates(tv_samplers["roi"].log),
                "ours": candidates(our_samplers["roi"].log),
            },
        }
        record["drift"], record["drift_worst"], record["drift_worst_value"] = drift(tv_model, ours)
        if control is not None:
            if not keyed:
                torch.manual_seed(seed)
            control_rec, _ = torchvision_step(
                control, control_opt, control_params, cfg, lr, *clone_batch(images, targets)
            )
            record["control"] = control_rec
            record["control_grad_rel_diff"] = grad_difference(tv_model, control)[0]
            record["control_drift"] = drift(tv_model, control)[0]
            record["control_rpn_jaccard"] = jaccard(
                tv_samplers["rpn"].log, control_samplers["rpn"].log
            )
            record["control_roi_jaccard"] = jaccard(
                tv_samplers["roi"].log, control_samplers["roi"].log
            )
        records.append(record)
        print_record(record, header=step == 0)
        if args.sync and grad_rel > 1e-5:
            # Equal states, yet gradients apart by more than float noise: say where.
            worst = ", ".join(f"{name} {value:.1e}" for name, value in per_tensor[:3])
            print(f"      gradient differs most in: {worst}")
            print(f"      box-head ReLU sign flips: {relu_flips(tv_tap, our_tap)}")
    print_summary(records)
    return records


def print_record(r: dict[str, Any], header: bool) -> None:
    control = "control" in r
    if header:
        cols = "".join(f"{SHORT[k] + ' tv':>11}{'ours':>9}{'rel':>8}" for k in LOSS_NAMES)
        extra = f"{'ctl g rel':>10}{'ctl drift':>10}{'ctl rpn/roi':>12}" if control else ""
        print(
            f"{'step':>4}{'lr':>8}{cols}{'|g| tv':>8}{'ours':>7}{'g rel':>8}{'drift':>9}"
            f"{'rpn/roi':>10}{extra}"
        )
    cells = ""
    for k in LOSS_NAMES:
        a, b = r["torchvision"][k], r["ours"][k]
        cells += f"{a:>11.5f}{b:>9.5f}{abs(a - b) / max(abs(a), 1e-12):>8.0e}"
    extra = ""
    if control:
        extra = (
            f"{r['control_grad_rel_diff']:>10.0e}{r['control_drift']:>10.1e}"
            f"{r['control_rpn_jaccard']:>6.3f}/{r['control_roi_jaccard']:.3f}"
        )
    print(
        f"{r['step']:>4}{r['lr']:>8.5f}{cells}{r['grad_norm']['torchvision']:>8.2f}"
        f"{r['grad_norm']['ours']:>7.2f}{r['grad_rel_diff']:>8.0e}{r['drift']:>9.1e}"
        f"{r['rpn_jaccard']:>6.3f}/{r['roi_jaccard']:.3f}{extra}",
        flush=True,
    )


def max_relative(diffs: Sequence[float], reference: Sequence[float]) -> float:
    return max(abs(d) / max(abs(a), 1e-12) for d, a in zip(diffs, reference, strict=True))


def print_summary(records: list[dict[str, Any]]) -> None:
    print("\n== summary ==")
    for k in (*LOSS_NAMES, "loss"):
        tv = [r["torchvision"][k] for r in records]
        ours = [r["ours"][k] for r in records]
        diffs = [b - a for a, b in zip(tv, ours, strict=True)]
        mean_diff = sum(diffs) / len(diffs)
        mean_tv = sum(tv) / len(tv)
        line = (
            f"{k:<18} mean tv {mean_tv:.5f}  mean ours {sum(ours) / len(ours):.5f}  "
            f"mean(ours - tv) {mean_diff:+.5f} ({mean_diff / mean_tv:+.2%})  "
            f"max |rel| {max_relative(diffs, tv):.1e}"
        )
        if "control" in records[0]:
            ctl = [r["control"][k] for r in records]
            cdiffs = [c - a for c, a in zip(ctl, tv, strict=True)]
            line += (
                f"\n{'':<18} control: mean(control - tv) {sum(cdiffs) / len(cdiffs):+.5f}  "
                f"max |rel| {max_relative(cdiffs, tv):.1e}"
            )
        print(line)
    last = records[-1]
    print(
        f"weight drift after {len(records)} steps: ours {last['drift']:.2e} (largest: "
        f"{last['drift_worst']} {last['drift_worst_value']:.2e})"
        + (f"; control {last['control_drift']:.2e}" if "control" in last else "")
    )


# ----------------------------------------------------------------------------- init


def init_statistics(seed: int, num_classes: int = 2) -> None:
    """Weight statistics of the heads each side initialises itself (torchvision's
    backbone body is loaded from ImageNet weights in both trainings and not compared)."""
    torch.set_num_threads(1)
    from torchvision.models.detection import FasterRCNN as TVFasterRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.backbone_utils import mobilenet_backbone
    from torchvision.ops.misc import FrozenBatchNorm2d

    torch.manual_seed(seed)
    backbone = mobilenet_backbone(
        backbone_name="mobilenet_v2",
        fpn=True,
        weights=None,
        trainable_layers=3,
        norm_layer=FrozenBatchNorm2d,
    )
    anchors = AnchorGenerator(((32, 64, 128, 256, 512),) * 3, ((0.5, 1.0, 2.0),) * 3)
    tv_model = TVFasterRCNN(backbone, num_classes, rpn_anchor_generator=anchors)
    torch.manual_seed(seed)
    ours = FasterRCNN.from_config(preset_config("mobilenet_v2_fpn", num_classes))
    tv_state, our_state = tv_model.state_dict(), ours.state_dict()
    heads = [k for k in tv_state if not k.startswith("backbone.body.")]
    print(
        f"{'tensor':<44}{'fan_in':>7}{'expect std':>11}{'tv mean':>10}{'tv std':>10}"
        f"{'ours mean':>10}{'ours std':>10}{'tv max/std':>11}{'ours max/std':>13}"
    )
    for key in heads:
        a, b = tv_state[key].double(), our_state[key].double()
        fan_in, expected = expected_std(key, tv_state)
        ratio_a = float(a.abs().max() / a.std()) if a.std() > 0 else 0.0
        ratio_b = float(b.abs().max() / b.std()) if b.std() > 0 else 0.0
        print(
            f"{key:<44}{fan_in:>7}{expected:>11.5f}{float(a.mean()):>10.5f}{float(a.std()):>10.5f}"
            f"{float(b.mean()):>10.5f}{float(b.std()):>10.5f}{ratio_a:>11.2f}{ratio_b:>13.2f}"
        )
    print(
        "expected: RPN convs N(0, 0.01) bias 0; FPN convs kaiming_uniform(a=1): "
        "U(+-sqrt(3/fan_in)), std 1/sqrt(fan_in), bias 0;\n"
        "nn.Linear default (fc6, fc7, predictor): "
        "U(+-1/sqrt(fan_in)) for weight and bias, std 1/sqrt(3 fan_in); max/std = sqrt(3) = "
        "1.73 for a uniform, about 4-5 for a large normal sample"
    )


def expected_std(key: str, state: dict[str, Tensor]) -> tuple[int, float]:
    """The fan-in of the layer and the std its initialisation scheme implies."""
    weight = state[key.removesuffix("bias") + "weight"] if key.endswith("bias") else state[key]
    fan_in = weight[0].numel()
    if key.startswith("rpn.head."):
        return fan_in, 0.01 if key.endswith("weight") else 0.0
    if key.startswith("backbone.fpn."):
        return fan_in, 1 / math.sqrt(fan_in) if key.endswith("weight") else 0.0
    # nn.Linear's default: weight and bias from U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    return fan_in, 1 / math.sqrt(3 * fan_in)


# ----------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/raccoon")
    parser.add_argument("--weights", default="../shared/weights/mobilenet_v2-b0353104.pth")
    parser.add_argument("--steps", type=int, default=30, help="steps compared")
    parser.add_argument("--schedule-steps", type=int, default=360, help="the schedule's length")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--min-size", type=int, default=320)
    parser.add_argument("--max-size", type=int, default=533)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--sampling", choices=["keyed", "seeded"], default="keyed")
    parser.add_argument(
        "--raw-order", action="store_true", help="keep each NMS's own order of equal scores"
    )
    parser.add_argument("--sync", action="store_true", help="compare each step on equal states")
    parser.add_argument("--control", action="store_true", help="add a perturbed torchvision copy")
    parser.add_argument("--init", action="store_true", help="initialisation statistics only")
    parser.add_argument("--json", type=Path, help="write the per-step records here")
    args = parser.parse_args()
    if args.init:
        init_statistics(args.seed)
        return
    records = run_steps(args)
    if args.json:
        args.json.write_text(json.dumps(records, indent=1))


if __name__ == "__main__":
    main()
