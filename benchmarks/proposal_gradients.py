"""Which detection losses should move the proposals? Their gradients in a trained model.

    python benchmarks/proposal_gradients.py --model runs/shapes/model.safetensors \\
        [--data synthetic] [--images 32]

For the RoIs the head samples (non-approximate joint training's forward pass), this
prints, per Fast R-CNN loss (classification, box regression):

- the cosine between the loss's descent direction in each foreground RoI's coordinates
  and the direction from the RoI to its GT box (``x1, y1, x2, y2``), mean and share
  positive: does the loss pull the proposal onto its object?
- the norm of the gradient it would give the RPN's box-regression weights through the
  foreground RoIs' proposals, beside the norm the RPN's own box loss gives them.

``faster_rcnn/train/non_approximate.py`` quotes these numbers for its choice (only the
classification loss of foreground RoIs moves the proposals).
"""

from __future__ import annotations

import argparse
import statistics

import torch
from torch import Tensor

import faster_rcnn.roi_heads.network as roi_heads_network
from faster_rcnn.data.open import open_dataset
from faster_rcnn.train.checkpoint import load_model
from faster_rcnn.train.non_approximate import differentiable_proposals

LOSSES = ("loss_classifier", "loss_box_reg")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", default="synthetic")
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=4)
    args = parser.parse_args()
    model = load_model(args.model).train()
    dataset = open_dataset(args.data, "train")
    cosines: dict[str, list[Tensor]] = {name: [] for name in LOSSES}
    norms: dict[str, list[float]] = {name: [] for name in (*LOSSES, "loss_rpn_box_reg")}
    recorded = record_sampling(model)
    for start in range(0, args.images, args.batch_size):
        samples = [dataset[i] for i in range(start, start + args.batch_size)]
        measure_batch(model, samples, start, recorded, cosines, norms)
    print("loss | cos(descent, toward GT), mean | share > 0 | grad norm, RPN box weights")
    for name in LOSSES:
        values = torch.cat(cosines[name])
        print(
            f"{name} | {values.mean():.3f} | {(values > 0).float().mean():.3f} "
            f"| {statistics.mean(norms[name]):.3f}"
        )
    print(f"loss_rpn_box_reg | | | {statistics.mean(norms['loss_rpn_box_reg']):.3f}")
    print(f"({len(values)} foreground RoIs of {args.images} images)")


def measure_batch(
    model, samples: list, seed: int, recorded: dict, cosines: dict, norms: dict
) -> None:
    """Add one batch's cosines (per foreground RoI) and gradient norms."""
    images, targets = [s[0] for s in samples], [s[1] for s in samples]
    with differentiable_proposals(model.rpn):
        losses = model(images, targets, generator=torch.Generator().manual_seed(seed))
    sample, pooled = recorded["sample"], recorded["pooled"]
    resized = model.prepare_batch(images, targets).training_targets()
    weight = model.rpn.head.bbox_pred.weight
    (rpn_grad,) = torch.autograd.grad(losses["loss_rpn_box_reg"], weight, retain_graph=True)
    norms["loss_rpn_box_reg"].append(rpn_grad.norm().item())
    for name in LOSSES:
        grads = torch.autograd.grad(losses[name], pooled, retain_graph=True)
        pull = 0.0
        for live, grad, labels, matched, target in zip(
            sample.proposals, grads, sample.labels, sample.matched_idxs, resized, strict=True
        ):
            foreground = labels > 0
            toward = target["boxes"][matched[foreground]] - live.detach()[foreground]
            descent = -grad[foreground]
            moved = toward.norm(dim=1) > 0  # GT boxes among the RoIs have nowhere to go
            cosine = (descent * toward).sum(1) / (descent.norm(dim=1) * toward.norm(dim=1))
            cosines[name].append(cosine[moved])
            pull = pull + (live * torch.where(foreground[:, None], grad, 0.0)).sum()
        (grad_w,) = torch.autograd.grad(pull, weight, retain_graph=True)
        norms[name].append(grad_w.norm().item())


def record_sampling(model) -> dict:
    """Record, on every training forward pass from now on, the head's sampled RoIs (with
    their path to the proposals) and the constant copies it pools."""
    recorded: dict = {}
    creator, pool = model.roi_heads.target_creator, roi_heads_network.pooled_boxes

    def sampling(*args, **kwargs):
        recorded["sample"] = creator(*args, **kwargs)
        return recorded["sample"]

    def pooled(rois):
        recorded["pooled"] = pool(rois)
        return recorded["pooled"]

    model.roi_heads.target_creator = sampling
    roi_heads_network.pooled_boxes = pooled
    return recorded


if __name__ == "__main__":
    main()
