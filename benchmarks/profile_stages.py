"""Where one eval-mode detection spends its time, stage by stage, plain and rewritten.

    python benchmarks/profile_stages.py [--preset resnet50_fpn] [--repeats 5]
        [--reuse-freed-memory]

One 480x640 image, random weights, ``torch.inference_mode``; each stage timed with
forward hooks on its module, per call, median over the repeats (after one warm-up).
Proposal selection is the RPN minus its head; post-processing is the RoI heads minus
pooling, box head and predictor; preparing is everything before the backbone (checks,
resize, normalise, pad) and the mapping back. ``--reuse-freed-memory`` runs it as
``faster-rcnn``'s commands do, keeping freed memory for reuse
(:mod:`faster_rcnn.host_memory`).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict

import torch

from faster_rcnn.fast_inference import optimize_for_inference
from faster_rcnn.host_memory import reuse_freed_memory
from faster_rcnn.model import FasterRCNN
from faster_rcnn.models import PRESETS, preset_config

HOOKED = {
    "backbone body": "backbone.body",
    "FPN": "backbone.fpn",
    "RPN head": "rpn.head",
    "RPN": "rpn",
    "RoI pooling": "roi_heads.box_roi_pool",
    "box head": "roi_heads.box_head",
    "box predictor": "roi_heads.box_predictor",
    "RoI heads": "roi_heads",
}


def profile(model: FasterRCNN, image: torch.Tensor, repeats: int) -> dict[str, float]:
    """Median seconds per stage, and in all."""
    spent: dict[str, list[float]] = defaultdict(list)
    started: dict[str, float] = {}
    modules = dict(model.named_modules())
    hooks = []
    for stage, name in HOOKED.items():
        if name not in modules:
            continue

        def before(module, args, stage=stage):
            started[stage] = time.perf_counter()

        def after(module, args, output, stage=stage):
            spent[stage].append(time.perf_counter() - started[stage])

        hooks.append(modules[name].register_forward_pre_hook(before))
        hooks.append(modules[name].register_forward_hook(after))
    with torch.inference_mode():
        model([image])
        spent.clear()
        for _ in range(repeats):
            start = time.perf_counter()
            model([image])
            spent["total"].append(time.perf_counter() - start)
    for hook in hooks:
        hook.remove()
    # The derived stages per call, then medians: residuals of medians could be negative.
    heads = spent.pop("RoI heads")
    rpn = spent.pop("RPN")
    parts = zip(spent["RoI pooling"], spent["box head"], spent["box predictor"], strict=True)
    spent["post-processing"] = [h - sum(p) for h, p in zip(heads, parts, strict=True)]
    spent["proposal selection"] = [r - h for r, h in zip(rpn, spent["RPN head"], strict=True)]
    network = zip(spent["backbone body"], spent["FPN"], rpn, heads, strict=True)
    spent["preparing"] = [t - sum(n) for t, n in zip(spent["total"], network, strict=True)]
    median = {stage: statistics.median(times) for stage, times in spent.items()}
    return median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="resnet50_fpn", choices=list(PRESETS))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--reuse-freed-memory", action="store_true")
    args = parser.parse_args()
    reused = args.reuse_freed_memory and reuse_freed_memory()
    torch.manual_seed(0)
    model = FasterRCNN.from_config(preset_config(args.preset)).eval()
    image = torch.rand(3, 480, 640, generator=torch.Generator().manual_seed(0))
    plain = profile(model, image, args.repeats)
    fast = profile(optimize_for_inference(model), image, args.repeats)
    memory = "freed memory reused" if reused else "freed memory unmapped"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.preset}, {memory}")
    print(f"{'stage':20s} {'plain':>9s} {'rewritten':>9s}")
    for stage in [*sorted(set(plain) - {"total"}, key=lambda s: -plain[s]), "total"]:
        share = 100 * plain[stage] / plain["total"]
        line = f"{stage:20s} {plain[stage] * 1000:7.0f} ms {fast[stage] * 1000:7.0f} ms"
        print(f"{line}  ({share:4.1f} % of plain)")


if __name__ == "__main__":
    main()
