"""Soft-NMS at 100, 1,000 and 5,000 boxes of one category: the factors a block of
visited boxes at a time (``faster_rcnn.ops.batched_soft_nms``) against all N x N of them
up front (the formulation before, kept here), in one process, alternating.

    python benchmarks/bench_soft_nms.py [--repeats 5]

RPN-like boxes (``bench_ops.rpn_like_boxes``: jittered around 50 objects, and clutter),
random scores, ``sigma`` 0.5, threshold 0.05, one thread. Both must keep the same boxes
in the same order with the same lowered scores, bit for bit. Prints the median wall and
CPU time of each and writes them to ``results/bench_soft_nms.json``.

On the shared 2-core machine under load (3 repeats, CPU time): 4.4 and 4.7 ms at 100
boxes (all at once either way), 76 and 64 ms at 1,000, 2,093 and 357 ms at 5,000 (1,049
visited), the up-front factors first; the visiting loop itself is a tenth of a second.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

import machine
from bench_ops import rpn_like_boxes
from faster_rcnn.ops import batched_soft_nms, box_iou
from faster_rcnn.ops.soft_nms import soft_nms_factor

RESULTS = Path(__file__).parent / "results" / "bench_soft_nms.json"
SIZES = (100, 1000, 5000)
SIGMA, THRESHOLD = 0.5, 0.05


def upfront_soft_nms(boxes: Tensor, scores: Tensor) -> tuple[Tensor, Tensor]:
    """One category's Soft-NMS with every pair's factor computed before the first visit."""
    factors = soft_nms_factor(box_iou(boxes, boxes), SIGMA, scores.dtype)
    current = scores.masked_fill(scores < THRESHOLD, float("-inf"))
    visited, visited_scores = [], []
    while bool(current.max() > float("-inf")):
        best = int(current.argmax())
        visited.append(best)
        visited_scores.append(current[best].clone())
        current[best] = float("-inf")
        current.mul_(factors[best])
        current.masked_fill_(current < THRESHOLD, float("-inf"))
    return torch.tensor(visited), torch.stack(visited_scores)


def timed(fn: Callable[..., tuple[Tensor, Tensor]], *args: object) -> tuple[float, float, tuple]:
    """Wall and CPU seconds of one call, and what it returned."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn(*args)
    return time.perf_counter() - wall, time.process_time() - cpu, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    record = {"machine": machine.describe(), "repeats": args.repeats, "boxes": {}}
    for num_boxes in SIZES:
        generator = torch.Generator().manual_seed(0)
        boxes = rpn_like_boxes(num_boxes, generator)
        scores = torch.rand(num_boxes, generator=generator)
        category = torch.zeros(num_boxes, dtype=torch.int64)
        times: dict[str, list[tuple[float, float]]] = {"upfront": [], "blocks": []}
        for _ in range(args.repeats):
            wall, cpu, before = timed(upfront_soft_nms, boxes, scores)
            times["upfront"].append((wall, cpu))
            wall, cpu, after = timed(batched_soft_nms, boxes, scores, category, SIGMA, THRESHOLD)
            times["blocks"].append((wall, cpu))
            assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))
        medians = {
            name: {
                "wall_ms": 1000 * statistics.median(w for w, _ in runs),
                "cpu_ms": 1000 * statistics.median(c for _, c in runs),
            }
            for name, runs in times.items()
        }
        record["boxes"][str(num_boxes)] = medians | {"kept": len(after[0])}
        line = ", ".join(
            f"{n} {m['wall_ms']:.0f} ms ({m['cpu_ms']:.0f} CPU)" for n, m in medians.items()
        )
        print(f"{num_boxes} boxes, {len(after[0])} kept: {line}")
    RESULTS.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
