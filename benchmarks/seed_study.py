"""Training comparisons over several seeds: ours and torchvision's, arm by arm.

An *arm* is one way of training (a detector, a dataset, options and a number of steps);
each arm trains once a seed and is scored on the test split (VOC AP@0.5 per class). The
arms of a study are listed in :data:`STUDIES`. Step counts stand for a CPU budget: the
steps each side fits in 20 minutes on this project's 2-core machine, measured there
(``benchmarks/seed_study.md``), so a study can run where training is fast (a GPU) and still
compare what each side reaches in that budget.

    python benchmarks/seed_study.py run --study slides_20min raccoon --seeds 0 1 2 3 4 \\
        --data-root ../shared --device cuda --jobs 8 --out runs/seeds
    python benchmarks/seed_study.py table runs/seeds/results.json

``run`` starts up to ``--jobs`` trainings at once (``--threads`` each), skips runs already
scored (in ``--results``, default ``--out/results.json``, or in ``--done``), stops starting
new ones after ``--minutes``, and rewrites the results after every run. ``table`` prints
the mean, spread and every seed's score of each arm as Markdown. The torchvision arms need
torchvision importable (``benchmarks/raccoon_torchvision.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
WEIGHTS = "weights/mobilenet_v2-b0353104.pth"  # under --data-root
RACCOON = "data/raccoon"  # under --data-root


@dataclass(frozen=True)
class Arm:
    """One way of training: ``detector`` is ``ours`` or ``torchvision``; ``data`` a dataset
    name or a path under ``--data-root``; ``options`` go to the training command."""

    name: str
    detector: str
    data: str
    steps: int
    options: tuple[str, ...] = ()


# The preset's size, batch and learning rate for every arm of a 20-minute study; each side
# then trains with its own schedule (ours: step decays, torchvision's script: cosine).
_DEFAULTS = ("--batch-size", "4", "--lr", "0.02", "--min-size", "800", "--max-size", "1333")
_DEFAULTS_LR_01 = (*_DEFAULTS[:2], "--lr", "0.01", *_DEFAULTS[4:])
# The README's raccoon recipe, the same for both sides.
_README_RACCOON = ("--batch-size", "2", "--lr", "0.01", "--min-size", "512", "--max-size", "853")
_README_COSINE = (*_README_RACCOON, "--schedule", "cosine")  # torchvision's script: always

# Steps in 20 minutes on 2 cores: 1200 s over the median seconds a step of 10-16 steps,
# each side alone, both on torch 2.14.1 (seed_study.md).
SLIDES_OURS, SLIDES_TORCHVISION = 285, 149  # 4.21 s and 8.07 s a step
RACCOON_OURS, RACCOON_TORCHVISION = 168, 123  # 7.14 s and 9.74 s a step

STUDIES: dict[str, tuple[Arm, ...]] = {
    "slides_20min": (
        Arm("ours", "ours", "slides", SLIDES_OURS, _DEFAULTS),
        Arm("torchvision", "torchvision", "slides", SLIDES_TORCHVISION, _DEFAULTS),
    ),
    # What each of the recipe's changes does alone, and torchvision given our steps.
    "slides_ablation": (
        Arm("ours_preset", "ours", "slides", SLIDES_OURS, (*_DEFAULTS, "--recipe", "preset")),
        Arm(
            "ours_128_random",
            "ours",
            "slides",
            SLIDES_OURS,
            (*_DEFAULTS, "--roi-sampler", "random"),
        ),
        Arm(
            "ours_512_balanced",
            "ours",
            "slides",
            SLIDES_OURS,
            (*_DEFAULTS, "--roi-batch-size", "512"),
        ),
        Arm("torchvision_our_steps", "torchvision", "slides", SLIDES_OURS, _DEFAULTS),
    ),
    "raccoon": (
        Arm("ours_20min", "ours", RACCOON, RACCOON_OURS, _DEFAULTS),
        Arm("torchvision_20min", "torchvision", RACCOON, RACCOON_TORCHVISION, _DEFAULTS),
        Arm("ours_readme", "ours", RACCOON, 360, _README_COSINE),
        Arm("torchvision_readme", "torchvision", RACCOON, 360, _README_RACCOON),
    ),
    # The schedule and rate of a 20-minute run, on both datasets (with the recipe).
    "schedule": (
        Arm(
            "ours_20min_cosine", "ours", RACCOON, RACCOON_OURS, (*_DEFAULTS, "--schedule", "cosine")
        ),
        Arm(
            "ours_20min_cosine_lr_0.01",
            "ours",
            RACCOON,
            RACCOON_OURS,
            (*_DEFAULTS_LR_01, "--schedule", "cosine"),
        ),
        Arm("ours_cosine", "ours", "slides", SLIDES_OURS, (*_DEFAULTS, "--schedule", "cosine")),
        Arm(
            "ours_cosine_lr_0.01",
            "ours",
            "slides",
            SLIDES_OURS,
            (*_DEFAULTS_LR_01, "--schedule", "cosine"),
        ),
        Arm("ours_lr_0.01", "ours", "slides", SLIDES_OURS, _DEFAULTS_LR_01),
    ),
    # Why ours trails on raccoon: the recipe's two changes apart, the schedule, the rate.
    "raccoon_ablation": (
        Arm("ours_readme_preset", "ours", RACCOON, 360, (*_README_COSINE, "--recipe", "preset")),
        Arm(
            "ours_readme_128_random",
            "ours",
            RACCOON,
            360,
            (*_README_COSINE, "--roi-sampler", "random"),
        ),
        Arm(
            "ours_readme_512_balanced",
            "ours",
            RACCOON,
            360,
            (*_README_COSINE, "--roi-batch-size", "512"),
        ),
        Arm("ours_20min_preset", "ours", RACCOON, RACCOON_OURS, (*_DEFAULTS, "--recipe", "preset")),
        Arm(
            "ours_20min_preset_cosine",
            "ours",
            RACCOON,
            RACCOON_OURS,
            (*_DEFAULTS, "--recipe", "preset", "--schedule", "cosine"),
        ),
        Arm(
            "ours_20min_lr_0.01",
            "ours",
            RACCOON,
            RACCOON_OURS,
            _DEFAULTS_LR_01,
        ),
    ),
}


def commands(
    arm: Arm, seed: int, run_dir: Path, root: Path, device: str, max_steps: int | None = None
) -> list[list[str]]:
    """The commands that train ``arm`` with ``seed`` (for at most ``max_steps``) and leave
    its scores in ``run_dir``."""
    data = arm.data if arm.data == "slides" else str(root / arm.data)
    steps = arm.steps if max_steps is None else min(arm.steps, max_steps)
    common = ["--data", data, "--weights", str(root / WEIGHTS), "--seed", str(seed)]
    common += ["--steps", str(steps), "--cache-images", "--device", device, *arm.options]
    if arm.detector == "torchvision":
        script = str(HERE / "raccoon_torchvision.py")
        # Steps, not its default 20-minute clock, end the run.
        script_options = ["--minutes", "1e6", "--out", str(run_dir / "scores.json")]
        return [[sys.executable, script, *common, *script_options]]
    train = [sys.executable, "-m", "faster_rcnn", "train", "--preset", "mobilenet_v2_fpn"]
    evaluate = [sys.executable, "-m", "faster_rcnn", "evaluate", "--data", data]
    evaluate += ["--split", "test", "--device", device, "--out", str(run_dir / "eval")]
    return [
        [*train, *common, "--out", str(run_dir)],
        [*evaluate, "--model", str(run_dir / "model.safetensors")],
    ]


def scores(arm: Arm, run_dir: Path) -> dict[str, float]:
    """``{"map": ..., "ap/<class>": ...}`` of a finished run, and for ours its proposal
    recall and mean loss over the last 10 steps."""
    if arm.detector == "torchvision":
        record = json.loads((run_dir / "scores.json").read_text())
        aps = record["voc_ap50"]
        return {"map": record["voc_map50"], **{f"ap/{k}": v for k, v in aps.items()}}
    metrics = json.loads((run_dir / "eval" / "metrics.json").read_text())
    per_class = {
        f"ap/{k.removeprefix('voc_ap50/')}": v
        for k, v in metrics.items()
        if k.startswith("voc_ap50/")
    }
    steps = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    final_loss = statistics.mean(step["losses"]["loss"] for step in steps[-10:])
    return {
        "map": metrics["voc_map50"],
        **per_class,
        "recall@300@0.7": metrics["recall@300@0.7"],
        "final_loss": final_loss,
    }


def run_study(args: argparse.Namespace) -> None:
    arms = [arm for study in args.study for arm in STUDIES[study]]
    results_file = args.results or args.out / "results.json"
    results = json.loads(results_file.read_text()) if results_file.exists() else {}
    for done in args.done:
        results.update(json.loads(Path(done).read_text()))
    todo = [(arm, seed) for seed in args.seeds for arm in arms if key(arm, seed) not in results]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONUNBUFFERED": "1"}
    start, running = time.monotonic(), []
    while todo or running:
        while todo and len(running) < args.jobs and time.monotonic() - start < args.minutes * 60:
            arm, seed = todo.pop(0)
            run_dir = args.out / arm.name / f"seed{seed}"
            run_dir.mkdir(parents=True, exist_ok=True)
            steps = commands(arm, seed, run_dir, args.data_root, args.device, args.max_steps)
            script = " && ".join(subprocess.list2cmdline(c) for c in steps)
            with open(run_dir / "log.txt", "w") as log:  # the child keeps its own handle
                process = subprocess.Popen(
                    script, shell=True, stdout=log, stderr=subprocess.STDOUT, env=env
                )
            running.append((arm, seed, run_dir, process, time.monotonic()))
        if not todo or time.monotonic() - start >= args.minutes * 60:
            todo = []
        time.sleep(2)
        for item in [r for r in running if r[3].poll() is not None]:
            running.remove(item)
            arm, seed, run_dir, process, began = item
            if process.returncode != 0:
                tail = (run_dir / "log.txt").read_text()[-2000:]
                print(f"{key(arm, seed)} failed ({process.returncode}):\n{tail}", flush=True)
                continue
            results[key(arm, seed)] = {**scores(arm, run_dir), "seconds": time.monotonic() - began}
            results_file.write_text(json.dumps(results, indent=1))
            print(f"{key(arm, seed)}: mAP {results[key(arm, seed)]['map']:.3f}", flush=True)


def key(arm: Arm, seed: int) -> str:
    return f"{arm.name}/seed{seed}"


def table(results_path: Path) -> str:
    """Markdown: one row an arm, mean +- standard deviation and each seed, per score."""
    results: dict[str, dict[str, float]] = json.loads(results_path.read_text())
    by_arm: dict[str, dict[str, dict[str, float]]] = {}
    for name, record in results.items():
        arm, seed = name.rsplit("/", 1)
        by_arm.setdefault(arm, {})[seed] = record
    score_names = sorted({s for r in results.values() for s in r if s == "map" or "/" in s})
    score_names = ["map", *[s for s in score_names if s != "map"]]
    lines = [
        "| arm | seeds | " + " | ".join(score_names) + " |",
        "| --- | --- | " + " | ".join("---" for _ in score_names) + " |",
    ]
    for arm, seeds in by_arm.items():
        cells = []
        for score in score_names:
            values = [seeds[s][score] for s in sorted(seeds) if score in seeds[s]]
            if not values:
                cells.append("")
                continue
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            each = " ".join(f"{v:.2f}" for v in values)
            cells.append(f"**{statistics.mean(values):.3f}** ± {spread:.3f} ({each})")
        lines.append(f"| {arm} | {len(seeds)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands_ = parser.add_subparsers(dest="command", required=True)
    run = commands_.add_parser("run", help="train and score every arm of a study, every seed")
    run.add_argument("--study", choices=sorted(STUDIES), nargs="+", required=True)
    run.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    run.add_argument("--data-root", type=Path, default=HERE.parent.parent / "shared")
    run.add_argument("--device", default="cpu")
    run.add_argument("--jobs", type=int, default=1, help="trainings at once")
    run.add_argument("--threads", type=int, default=2, help="threads of each training")
    run.add_argument("--minutes", type=float, default=1e9, help="start no run after this long")
    run.add_argument("--max-steps", type=int, help="cut every arm's steps (a smoke test)")
    run.add_argument("--done", nargs="*", default=[], help="results.json files of runs to skip")
    run.add_argument("--out", type=Path, required=True, help="the runs' folders")
    run.add_argument("--results", type=Path, help="the scores (default: --out/results.json)")
    show = commands_.add_parser("table", help="Markdown table of a results.json")
    show.add_argument("results", type=Path)
    args = parser.parse_args()
    if args.command == "run":
        run_study(args)
    else:
        print(table(args.results))


if __name__ == "__main__":
    main()
