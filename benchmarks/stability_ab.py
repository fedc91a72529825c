"""Does a training setting keep the first steps at the peak learning rate from going astray?

    python benchmarks/stability_ab.py --arms clip10="--grad-clip-norm 10" clip5="" \
        [--data ../shared/data/raccoon] [--weights PATH] [--seeds 0 1 2 3] \
        [--planned-steps 444] [--stop-after 130] [--results FILE]

Each arm (a name and the `faster-rcnn train` options it adds) runs once per seed: a
`mobilenet_v2_fpn` run planned for `--planned-steps` steps (the schedule of a 20-minute
run on a 2-core CPU), stopped after `--stop-after` of them, past the end of the warm-up
and well into the peak rate, where a run that goes astray does so. Two runs go at a time,
one thread each. The record keeps, per run, the mean loss and classifier loss of every
20 steps and of the last 30, and the gradient norms before clipping (from
`metrics.jsonl`). A healthy run's classifier loss keeps falling through the peak; one
going astray climbs back towards the 0.5-0.6 of a head that cannot tell its class from
the background.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import statistics
import subprocess
import tempfile
import time
from datetime import date
from pathlib import Path

import machine
from faster_rcnn.train.metrics import read_metrics

RESULTS = Path(__file__).parent / "results" / "stability_ab.json"
WINDOW = 20
LAST = 30


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arms", nargs="+", required=True, metavar='NAME="OPTIONS"')
    parser.add_argument("--data", default="../shared/data/raccoon")
    parser.add_argument("--weights", default="../shared/weights/mobilenet_v2-b0353104.pth")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3])
    parser.add_argument("--planned-steps", type=int, default=444)
    parser.add_argument("--stop-after", type=int, default=130)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    arms = dict(item.split("=", 1) for item in args.arms)
    runs = [(arm, seed) for arm in arms for seed in args.seeds]
    record = {
        "date": date.today().isoformat(),
        "machine": machine.describe(),
        "data": args.data,
        "planned_steps": args.planned_steps,
        "stop_after": args.stop_after,
        "arms": {arm: {"options": options, "seeds": {}} for arm, options in arms.items()},
    }
    command = partial_command(args)
    with tempfile.TemporaryDirectory() as tmp:
        for pair in (runs[i : i + 2] for i in range(0, len(runs), 2)):
            folders = side_by_side(
                {
                    f"{arm}_s{seed}": [*command, *shlex.split(arms[arm]), "--seed", str(seed)]
                    for arm, seed in pair
                },
                Path(tmp),
                args.stop_after,
            )
            for (arm, seed), folder in zip(pair, folders, strict=True):
                steps = read_metrics(folder / "metrics.jsonl")[: args.stop_after]
                summary = summarise(steps)
                record["arms"][arm]["seeds"][str(seed)] = summary
                print(arm, seed, json.dumps({k: summary[k] for k in ("loss_last", "cls_last")}))
    for arm in record["arms"].values():
        lasts = [run["cls_last"] for run in arm["seeds"].values()]
        arm["cls_last_mean"] = round(statistics.mean(lasts), 3)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.results}")


def partial_command(args: argparse.Namespace) -> list[str]:
    """`faster-rcnn train` with what every arm shares."""
    command = ["faster-rcnn", "train", "--data", args.data, "--preset", "mobilenet_v2_fpn"]
    return [*command, "--weights", args.weights, "--steps", str(args.planned_steps)]


def side_by_side(commands: dict[str, list[str]], tmp: Path, stop_after: int) -> list[Path]:
    """Start the runs together, one thread each; stop each after ``stop_after`` steps."""
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    running = {}
    for name, command in commands.items():
        with (tmp / f"{name}.log").open("w") as log:
            process = subprocess.Popen(
                [*command, "--out", str(tmp / name)], env=env, stdout=log, stderr=log
            )
        running[name] = process
    stopped: set[str] = set()
    while any(process.poll() is None for process in running.values()):
        for name, process in running.items():
            if name not in stopped and steps_done(tmp / name) >= stop_after:
                process.send_signal(signal.SIGTERM)  # a checkpoint, then a one-line exit
                stopped.add(name)
        time.sleep(2)
    for name in running:
        if steps_done(tmp / name) < stop_after:
            tail = (tmp / f"{name}.log").read_text()[-2000:]
            raise RuntimeError(f"{name}: faster-rcnn train stopped early\n{tail}")
    return [tmp / name for name in running]


def steps_done(folder: Path) -> int:
    path = folder / "metrics.jsonl"
    return len(path.read_text().splitlines()) if path.is_file() else 0


def summarise(steps: list[dict]) -> dict[str, object]:
    """Mean losses per window and over the last steps; the gradient norms."""
    loss = [step["losses"]["loss"] for step in steps]
    cls = [step["losses"]["loss_classifier"] for step in steps]
    norms = [step["grad_norm"] for step in steps if step["grad_norm"] is not None]

    def per_window(values: list[float]) -> list[float]:
        return [
            round(statistics.mean(values[i : i + WINDOW]), 3) for i in range(0, len(values), WINDOW)
        ]

    return {
        "steps": len(steps),
        "loss_last": round(statistics.mean(loss[-LAST:]), 3),
        "cls_last": round(statistics.mean(cls[-LAST:]), 3),
        "loss_per_window": per_window(loss),
        "cls_per_window": per_window(cls),
        "grad_norm_median": round(statistics.median(norms), 2),
        "grad_norm_max": round(max(norms), 1),
    }


if __name__ == "__main__":
    main()
