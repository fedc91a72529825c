"""`faster-rcnn train` steps in NHWC and in NCHW memory layout, side by side.

    python benchmarks/layout_ab.py [--presets mobilenet_v2_fpn small ...] [--steps 12]
        [--data slides] [--weights mobilenet_v2_fpn=PATH ...] [--results FILE]

For each preset two `faster-rcnn train` runs start at once, one with `--channels-last`
and one with `--no-channels-last`, one thread each, on the same data, seed and recipe,
so they draw the same batches and share the machine alike. Each run's step times come
from its `metrics.jsonl`. The record keeps, per preset, each arm's median step time
after the first two steps (oneDNN's first calls and the heap's growth) and the median of
the per-step ratios NCHW / NHWC (above 1: NHWC faster). Presets without `--weights` start
from random weights, which does not change what a step computes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
from datetime import date
from pathlib import Path

import machine
from faster_rcnn.train.metrics import read_metrics

ARMS = {"nhwc": "--channels-last", "nchw": "--no-channels-last"}
SKIPPED_STEPS = 2
RESULTS = Path(__file__).parent / "results" / "layout_ab.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["mobilenet_v2_fpn"])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--data", default="slides")
    parser.add_argument("--weights", nargs="*", default=[], metavar="PRESET=PATH")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    weights = dict(item.split("=", 1) for item in args.weights)
    record = {
        "date": date.today().isoformat(),
        "machine": machine.describe(),
        "data": args.data,
        "steps": args.steps,
        "presets": {},
    }
    for preset in args.presets:
        step_seconds = side_by_side(preset, args.data, args.steps, weights.get(preset))
        record["presets"][preset] = summary(step_seconds)
        print(preset, json.dumps(record["presets"][preset]), flush=True)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.results}")


def side_by_side(preset: str, data: str, steps: int, weights: str | None) -> dict[str, list[float]]:
    """Each arm's step times, the two runs started together with one thread each."""
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        runs = {}
        for arm, flag in ARMS.items():
            command = ["faster-rcnn", "train", "--data", data, "--preset", preset]
            command += ["--steps", str(steps), "--seed", "0", flag, "--out", f"{tmp}/{arm}"]
            command += ["--weights", weights] if weights else []
            with Path(tmp, f"{arm}.log").open("w") as log:
                runs[arm] = subprocess.Popen(command, env=env, stdout=log, stderr=log)
        for arm, run in runs.items():
            if run.wait() != 0:
                tail = Path(tmp, f"{arm}.log").read_text()[-2000:]
                raise RuntimeError(
                    f"{preset} {arm}: faster-rcnn train exited with {run.returncode}\n{tail}"
                )
        return {
            arm: [step["seconds"] for step in read_metrics(Path(tmp, arm, "metrics.jsonl"))]
            for arm in ARMS
        }


def summary(step_seconds: dict[str, list[float]]) -> dict[str, object]:
    """Medians after the skipped steps, the median per-step ratio, and the raw times."""
    kept = {arm: seconds[SKIPPED_STEPS:] for arm, seconds in step_seconds.items()}
    ratios = [nchw / nhwc for nhwc, nchw in zip(kept["nhwc"], kept["nchw"], strict=True)]
    return {
        "median_step_s": {arm: round(statistics.median(s), 3) for arm, s in kept.items()},
        "nchw_over_nhwc": round(statistics.median(ratios), 3),
        "nhwc_faster_steps": f"{sum(r > 1 for r in ratios)}/{len(ratios)}",
        "step_s": {arm: [round(s, 3) for s in seconds] for arm, seconds in step_seconds.items()},
    }


if __name__ == "__main__":
    main()
