"""A training step's time against the backbone's trained stages, to set budget-matched steps.

    python benchmarks/trainable_layers.py [--preset mobilenet_v2_fpn] [--layers 2 3 4 5]
        [--repeats 6] [--results FILE]

A step as ``faster-rcnn train`` runs it on a CPU (channels-last, the recipe's 128 RoIs an
image and jittered GT copies, 4 images of 800x1066), for each ``--layers`` count of the
backbone's last stages trained (``--trainable-layers``), in float32 and, on a CPU with
bfloat16 instructions, in bfloat16 too. The arms take turns step by step in one process,
each on its own model (same seed, learning rate 0). The record keeps each arm's median
step after the first round and its ratio to the preset's count: a run with N trained
stages fits about 1 / ratio times the preset's steps in the same budget, which is how
round 27 of ``recipe_ab.md`` set each arm's steps. Thread count: ``OMP_NUM_THREADS``.
With ``ONEDNN_MAX_CPU_ISA=AVX512_CORE`` (kept in the record) oneDNN emulates bfloat16 as
on an AVX-512 CPU without AVX512-BF16.
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
from faster_rcnn.host_memory import reuse_freed_memory
from faster_rcnn.models import preset_config
from faster_rcnn.train.precision import cpu_has_bfloat16

RESULTS = Path(__file__).parent / "results" / "trainable_layers.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="mobilenet_v2_fpn")
    parser.add_argument("--layers", type=int, nargs="+", default=[2, 3, 4, 5])
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    reuse_freed_memory()
    preset_layers = preset_config(args.preset, 4).backbone.resolved_trainable_layers()
    layers = sorted({*args.layers, preset_layers})
    precisions = ["float32", "bfloat16"] if cpu_has_bfloat16() else ["float32"]
    record = {
        "date": date.today().isoformat(),
        "machine": machine.describe(),
        "threads": torch.get_num_threads(),
        "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA"),
        "preset": args.preset,
        "preset_trainable_layers": preset_layers,
    }
    for precision in precisions:
        seconds = alternate(args.preset, layers, precision == "bfloat16", args.repeats)
        medians = {k: statistics.median(times[1:]) for k, times in seconds.items()}
        record[precision] = {
            "median_step_s": {str(k): round(m, 3) for k, m in medians.items()},
            "over_preset": {
                str(k): round(m / medians[preset_layers], 3) for k, m in medians.items()
            },
            "step_s": {str(k): [round(s, 3) for s in times] for k, times in seconds.items()},
        }
        for k in layers:
            ratio = record[precision]["over_preset"][str(k)]
            print(f"{precision} {k} trained stages: {medians[k]:.3f} s  {ratio:.3f}")
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.results}")


def alternate(
    preset: str, layers: list[int], bfloat16: bool, repeats: int
) -> dict[int, list[float]]:
    """Each count's step seconds, the counts taking turns ``repeats`` times."""
    arms = {k: training_setup(preset, rois=128, trainable_layers=k) for k in layers}
    seconds = {k: [] for k in layers}
    for _ in range(repeats):
        for k, arm in arms.items():
            seconds[k].append(timed_step(*arm, bfloat16))
    return seconds


if __name__ == "__main__":
    main()
