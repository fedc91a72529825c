"""A training step with and without the activations fused into the convolutions, alternating.

    python benchmarks/conv_activation.py [--preset mobilenet_v2_fpn] [--repeats 6]
        [--float32-only] [--results FILE]

A step as ``faster-rcnn train`` runs it on a CPU (channels-last, the recipe's 128 RoIs an
image and jittered GT copies, 4 images of 800x1066 with 4 boxes each), in float32 and,
on a CPU with bfloat16 instructions, in bfloat16 too. Two arms take turns step by step
in one process, on the same weights (learning rate 0):

- ``fused``: each ReLU or ReLU6 after a convolution runs inside the convolution's
  oneDNN call, forward and backward (``backbones/conv_activation.py``), as ``train``
  runs it;
- ``separate``: the activation after the convolution, as before.

The record keeps each arm's median step after the first round and the ratio fused /
separate per precision. Thread count: ``OMP_NUM_THREADS`` (torch's default otherwise).
``--float32-only`` leaves bfloat16 out: for a run with the kernels held to narrower
instructions, standing for another CPU (``ONEDNN_MAX_CPU_ISA=AVX2
ATEN_CPU_CAPABILITY=avx2`` for one without AVX-512), where the CPU's own bfloat16 flag
still shows. The record names the oneDNN cap.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from datetime import date
from pathlib import Path

import torch

import machine
from bfloat16_kernels import timed_step, training_setup
from faster_rcnn.backbones import training_conv
from faster_rcnn.backbones.conv_activation import fuses
from faster_rcnn.host_memory import reuse_freed_memory
from faster_rcnn.train.precision import cpu_has_bfloat16

RESULTS = Path(__file__).parent / "results" / "conv_activation.json"
ARMS = ("fused", "separate")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="mobilenet_v2_fpn")
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--float32-only", action="store_true")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    reuse_freed_memory()
    precisions = {"float32": False}
    if cpu_has_bfloat16() and not args.float32_only:
        precisions["bfloat16"] = True
    setup = training_setup(args.preset, 128)
    seconds = {(p, arm): [] for p in precisions for arm in ARMS}
    try:
        for _ in range(args.repeats):
            for precision, bfloat16 in precisions.items():
                for arm in ARMS:
                    training_conv.fuses = fuses if arm == "fused" else _never
                    seconds[precision, arm].append(timed_step(*setup, bfloat16))
    finally:
        training_conv.fuses = fuses
    record = {
        "date": date.today().isoformat(),
        "machine": machine.describe(),
        "threads": torch.get_num_threads(),
        "preset": args.preset,
        "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA", "all"),
    }
    for precision in precisions:
        medians = {arm: statistics.median(seconds[precision, arm][1:]) for arm in ARMS}
        ratio = medians["fused"] / medians["separate"]
        record[precision] = {
            "median_step_s": {arm: round(m, 3) for arm, m in medians.items()},
            "fused_over_separate": round(ratio, 3),
            "step_s": {arm: [round(s, 3) for s in seconds[precision, arm]] for arm in ARMS},
        }
        print(
            f"{precision}: fused {medians['fused']:.3f} s, separate "
            f"{medians['separate']:.3f} s, ratio {ratio:.3f}"
        )
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.results}")


def _never(conv: torch.nn.Conv2d, x: torch.Tensor) -> bool:
    return False


if __name__ == "__main__":
    main()
