"""A training step with more threads than CPUs, as in a container whose CPU quota is
smaller than the cores it sees.

    python benchmarks/threads_over_cpus.py [--threads 2 4 8] [--repeats 5] [--results FILE]

``faster-rcnn`` lowers PyTorch's threads to a container's CPU quota
(``faster_rcnn/host_cpus.py``). This measures what more threads than CPUs cost: one
``mobilenet_v2_fpn`` training step as ``train`` runs it on a CPU (channels-last, the
recipe's RoIs, bfloat16 where the CPU has it, 4 images of 800x1066), with each
``--threads`` count in turn, in one process. Run inside a cgroup with a CPU quota, it
measures the quota's cost directly (the record keeps the quota). Run on a machine with
as many cores as the first count, the others stand in for a quota that allows only that
many cores' time (a quota also pauses threads that a many-core host runs at once, which
that does not show). The record keeps each count's median step after the first round and
its ratio to the first.
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
from faster_rcnn.host_cpus import cpu_quota
from faster_rcnn.host_memory import reuse_freed_memory
from faster_rcnn.train.precision import cpu_has_bfloat16

RESULTS = Path(__file__).parent / "results" / "threads_over_cpus.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[os.cpu_count() or 1, 8])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    reuse_freed_memory()
    described = machine.describe()
    model, optimizer, images, targets = training_setup("mobilenet_v2_fpn", rois=128)
    bfloat16 = cpu_has_bfloat16()
    seconds = {n: [] for n in args.threads}
    for _ in range(args.repeats):
        for n in args.threads:
            torch.set_num_threads(n)
            seconds[n].append(timed_step(model, optimizer, images, targets, bfloat16))
    medians = {n: statistics.median(times[1:]) for n, times in seconds.items()}
    first = medians[args.threads[0]]
    record = {
        "date": date.today().isoformat(),
        "machine": described,
        "cpus": os.cpu_count(),
        "cpu_quota": cpu_quota(),
        "precision": "bfloat16" if bfloat16 else "float32",
        "median_step_s": {str(n): round(m, 3) for n, m in medians.items()},
        "over_first": {str(n): round(m / first, 3) for n, m in medians.items()},
        "step_s": {str(n): [round(s, 3) for s in times] for n, times in seconds.items()},
    }
    for n, m in medians.items():
        print(f"{n} threads: {m:.3f} s  {m / first:.3f}")
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.results}")


if __name__ == "__main__":
    main()
