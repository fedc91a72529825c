"""Training comparisons over several seeds: ours and torchvision's, arm by arm.

An *arm* is one way of training (a detector, a dataset, options and a number of steps);
each arm trains once a seed and is scored on the test split (VOC AP@0.5 per class). The
arms of a study are listed in :data:`STUDIES`. Step counts stand for a CPU budget: the
steps each side fits in 20 minutes on this project's 2-core machine, measured there
(``benchmarks/seed_study.md``), so a study can run where training is fast (a GPU) and still
compare what each side reaches in that budget. An arm with ``--minutes`` among its options
(the ``schemes`` study) is timed where it runs instead.

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

from faster_rcnn.data.open import GENERATED
from faster_rcnn.train.metrics import METRICS_FILE, read_metrics

HERE = Path(__file__).resolve().parent
WEIGHTS = "weights/mobilenet_v2-b0353104.pth"  # under --data-root
RACCOON = "data/raccoon"  # under --data-root


@dataclass(frozen=True)
class Arm:
    """One way of training: ``detector`` is ``ours`` or ``torchvision``; ``data`` a dataset
    name or a path under ``--data-root``; ``options`` go to the training command; ``steps``
    is the run's length (or its cap, with ``--minutes`` among the options); ``weights``
    the ImageNet backbone under ``--data-root`` (``None``: none, as for ``small``)."""

    name: str
    detector: str
    data: str
    steps: int
    options: tuple[str, ...] = ()
    preset: str = "mobilenet_v2_fpn"
    weights: str | None = WEIGHTS


# Every arm states its size, batch, rate and schedule, so that its results stay what they
# were when train's defaults change. The preset's size and batch:
_SIZE = ("--batch-size", "4", "--min-size", "800", "--max-size", "1333")
_SIZE_1024 = ("--batch-size", "4", "--min-size", "1024", "--max-size", "1707")
_OLD = ("--lr", "0.02", "--schedule", "step")  # train's defaults before this study
_NEW = ("--lr", "0.01", "--schedule", "cosine")  # ... and after it
_OLD_RATE_COSINE = ("--lr", "0.02", "--schedule", "cosine")
_NEW_RATE_STEP = ("--lr", "0.01", "--schedule", "step")
_TORCHVISION = ("--lr", "0.02")  # its script always runs cosine
_TORCHVISION_NEW = ("--lr", "0.01")  # ... at our new default rate
# The README's raccoon recipe, the same for both sides.
_README = ("--batch-size", "2", "--lr", "0.01", "--min-size", "512", "--max-size", "853")
_README_COSINE = (*_README, "--schedule", "cosine")  # ours; torchvision's script always is
# Every study here ran when train clipped the gradients at norm 10 (it clips at 5 since
# round 19 of recipe_ab.md); both sides keep that unless an arm says otherwise.
_CLIP = ("--grad-clip-norm", "10")

# Steps in 20 minutes on 2 cores: 1200 s over the median seconds a step of 10-16 steps,
# each side alone, both on torch 2.14.1 (seed_study.md).
SLIDES_OURS, SLIDES_TORCHVISION = 285, 149  # 4.21 s and 8.07 s a step
RACCOON_OURS, RACCOON_TORCHVISION = 168, 123  # 7.14 s and 9.74 s a step
RACCOON_ALTERNATING_20MIN = 234  # 1200 s / 5.13 s, see schemes_raccoon_same_time
# Slides at 1024/1707: 7.65 s a step against 4.5 s at 800/1333 (both torch 2.13.0), so
# 285 * 4.5 / 7.65 steps.
SLIDES_1024_OURS = 168
# Today's defaults (batches of 2) in 20 minutes: the mosaics' steps on a Zen 4 EPYC in
# bfloat16 (753-886 over rounds 28-30 of recipe_ab.md) and raccoon's on a Zen 3 EPYC in
# float32 (388-392, round 31). Rate arms keep everything else at today's defaults.
MOSAICS_ZEN4_BATCH2 = 820
RACCOON_ZEN3_BATCH2 = 390
MOSAICS = "data/mosaics"  # under --data-root: benchmarks/crowded_slides.py writes it
# Slides with 2-6 cells (5 objects an image, the median): ``crowded_slides.py SPARSE
# --grid 1 --cells 2 6 --train 300 --test 100``; with 0-2 cells (2 an image): --cells 0 2.
# They run the slides' steps in 20 minutes on a Zen 3 (464-563 over round 32 of
# recipe_ab.md).
SPARSE = "data/sparse"
SCARCE = "data/scarce"
SLIDES_ZEN3_BATCH2 = 520
# Raccoon's photos, 3 x 3 to an image (``mosaic_dataset.py``): real and crowded.
RACCOON_MOSAICS = "data/raccoon_mosaics"
# One photo in a grey 2 x 2 mosaic (``--grid 2 --tile 600 --photos 1``): raccoons as
# small as the 2 x 2 mosaics' and as few as raccoon's own, at the steps the 2 x 2 mosaics
# fit in 20 minutes on a Zen 3 (533-588, round 33).
RACCOON_LONE = "data/raccoon_lone"
RACCOON_2X2_ZEN3_BATCH2 = 560


def _rate(lr: str) -> tuple[str, ...]:
    """Today's recipe (batches of 2, the clip at 5, float32) at the rate ``lr``."""
    return ("--batch-size", "2", "--lr", lr, "--grad-clip-norm", "5", "--no-amp")


def _ours(name: str, data: str, steps: int, *options: str) -> Arm:
    return Arm(name, "ours", data, steps, options)


def _small(name: str, steps: int, *options: str) -> Arm:
    """Ours, the ``small`` preset on the generated shapes, without pretrained weights."""
    return Arm(name, "ours", "synthetic", steps, options, preset="small", weights=None)


# The paper's three schemes (issue 13) on the generated shapes: the same budget, and the
# same steps (joint training's median in that budget).
SCHEMES = ("joint", "non-approximate", "alternating")
SCHEME_MINUTES = 2
SCHEME_STEPS = 355  # joint training's median in 2 minutes, 3 seeds (347, 355, 375)
SCHEME_LONG_STEPS = 4 * SCHEME_STEPS  # does alternating training catch up given longer?


def _torchvision(name: str, data: str, steps: int, *options: str) -> Arm:
    return Arm(name, "torchvision", data, steps, options)


STUDIES: dict[str, tuple[Arm, ...]] = {
    "slides_20min": (
        _ours("ours", "slides", SLIDES_OURS, *_SIZE, *_OLD),
        _torchvision("torchvision", "slides", SLIDES_TORCHVISION, *_SIZE, *_TORCHVISION),
    ),
    # What each of the recipe's changes does alone, and torchvision given our steps.
    "slides_ablation": (
        _ours("ours_preset", "slides", SLIDES_OURS, *_SIZE, *_OLD, "--recipe", "preset"),
        _ours("ours_128_random", "slides", SLIDES_OURS, *_SIZE, *_OLD, "--roi-sampler", "random"),
        _ours("ours_512_balanced", "slides", SLIDES_OURS, *_SIZE, *_OLD, "--roi-batch-size", "512"),
        _torchvision("torchvision_our_steps", "slides", SLIDES_OURS, *_SIZE, *_TORCHVISION),
    ),
    "raccoon": (
        _ours("ours_20min", RACCOON, RACCOON_OURS, *_SIZE, *_OLD),
        _torchvision("torchvision_20min", RACCOON, RACCOON_TORCHVISION, *_SIZE, *_TORCHVISION),
        _ours("ours_readme", RACCOON, 360, *_README_COSINE),
        _torchvision("torchvision_readme", RACCOON, 360, *_README),
    ),
    # Why ours trailed on raccoon: the recipe's two changes apart, the schedule, the rate.
    "raccoon_ablation": (
        _ours("ours_readme_preset", RACCOON, 360, *_README_COSINE, "--recipe", "preset"),
        _ours("ours_readme_128_random", RACCOON, 360, *_README_COSINE, "--roi-sampler", "random"),
        _ours("ours_readme_512_balanced", RACCOON, 360, *_README_COSINE, "--roi-batch-size", "512"),
        _ours("ours_20min_preset", RACCOON, RACCOON_OURS, *_SIZE, *_OLD, "--recipe", "preset"),
        _ours(
            "ours_20min_preset_cosine",
            RACCOON,
            RACCOON_OURS,
            *_SIZE,
            *_OLD_RATE_COSINE,
            "--recipe",
            "preset",
        ),
        _ours("ours_20min_lr_0.01", RACCOON, RACCOON_OURS, *_SIZE, *_NEW_RATE_STEP),
    ),
    "schemes": tuple(
        _small(
            f"{scheme}_{SCHEME_MINUTES}min",
            10**6,
            "--scheme",
            scheme,
            "--minutes",
            str(SCHEME_MINUTES),
        )
        for scheme in SCHEMES
    ),
    "schemes_same_steps": tuple(
        _small(f"{scheme}_{SCHEME_STEPS}_steps", SCHEME_STEPS, "--scheme", scheme)
        for scheme in SCHEMES
    ),
    # The new defaults over five seeds, against torchvision at the same rate and schedule.
    "defaults": (
        _ours("ours_defaults", "slides", SLIDES_OURS, *_SIZE, *_NEW),
        _torchvision(
            "torchvision_lr_0.01", "slides", SLIDES_TORCHVISION, *_SIZE, *_TORCHVISION_NEW
        ),
        _ours("ours_20min_defaults", RACCOON, RACCOON_OURS, *_SIZE, *_NEW),
        _torchvision(
            "torchvision_20min_lr_0.01", RACCOON, RACCOON_TORCHVISION, *_SIZE, *_TORCHVISION_NEW
        ),
    ),
    # The paper's three schemes on real data with a pretrained backbone, 20 CPU minutes of
    # joint training's steps.
    "schemes_raccoon": tuple(
        _ours(f"raccoon_{scheme}", RACCOON, RACCOON_OURS, *_SIZE, *_NEW, "--scheme", scheme)
        for scheme in SCHEMES
    ),
    # Alternating training in joint training's 20 CPU minutes on raccoon. Its stages
    # take 5.48 / 10.30 / 3.11 / 3.29 s a step on this CPU (torch 2.13.0, medians; the
    # second runs the first stage's RPN too), so 2:1:2:1 steps average 5.13 s a step
    # against joint's 6.9 s (174 steps in 1205 s). Non-approximate training's 6.45 s a
    # step makes its equal-time count joint's.
    "schemes_raccoon_same_time": (
        _ours(
            "raccoon_alternating_20min",
            RACCOON,
            RACCOON_ALTERNATING_20MIN,
            *_SIZE,
            *_NEW,
            "--scheme",
            "alternating",
        ),
    ),
    "schemes_long": tuple(
        _small(f"{scheme}_{SCHEME_LONG_STEPS}_steps", SCHEME_LONG_STEPS, "--scheme", scheme)
        for scheme in SCHEMES
    ),
    # Non-approximate training once background RoIs stopped moving their proposals
    # (train/non_approximate.py), beside joint training run again in the same session.
    "schemes_foreground": tuple(
        _small(f"{scheme}_{steps}_steps", steps, "--scheme", scheme)
        for steps in (SCHEME_STEPS, SCHEME_LONG_STEPS)
        for scheme in ("joint", "non-approximate")
    ),
    "schemes_raccoon_foreground": tuple(
        _ours(f"raccoon_{scheme}", RACCOON, RACCOON_OURS, *_SIZE, *_NEW, "--scheme", scheme)
        for scheme in ("joint", "non-approximate")
    ),
    # The README's raccoon recipe again, once the recipe added jittered GT copies (round 15
    # of recipe_ab.md), both sides on this machine's CPU.
    "readme_today": (
        _ours("ours_readme_jitter", RACCOON, 360, *_README_COSINE),
        _torchvision("torchvision_readme_cpu", RACCOON, 360, *_README),
        # ... and which of the recipe's choices costs at equal steps.
        _ours("ours_readme_no_jitter", RACCOON, 360, *_README_COSINE, "--gt-jitter", "0"),
        _ours("ours_readme_preset_cpu", RACCOON, 360, *_README_COSINE, "--recipe", "preset"),
    ),
    # A larger input for the small class, in the same 20 CPU minutes.
    "input_size": (_ours("ours_1024", "slides", SLIDES_1024_OURS, *_SIZE_1024, *_NEW),),
    # Twice the default rate at batch 2 where a 20-minute budget fits many steps (the
    # mosaics on a Zen 4) and few (raccoon on a Zen 3): round 32 of recipe_ab.md.
    "rate_batch2": tuple(
        _ours(f"{name}_{steps}_lr{lr}", data, steps, *_rate(lr))
        for name, data, steps in (
            ("mosaics", MOSAICS, MOSAICS_ZEN4_BATCH2),
            ("raccoon", RACCOON, RACCOON_ZEN3_BATCH2),
        )
        for lr in ("0.005", "0.01")
    ),
    # Where the crowded rate starts: images of 5 and 2 objects (round 33 of recipe_ab.md).
    "rate_sparse": tuple(
        _ours(f"{name}_{SLIDES_ZEN3_BATCH2}_lr{lr}", data, SLIDES_ZEN3_BATCH2, *_rate(lr))
        for name, data in (("sparse", SPARSE), ("scarce", SCARCE))
        for lr in ("0.005", "0.01")
    ),
    # ... and on real photos, crowded (10 objects an image).
    "rate_raccoon_mosaics": tuple(
        _ours(
            f"raccoon_mosaics_{RACCOON_ZEN3_BATCH2}_lr{lr}",
            RACCOON_MOSAICS,
            RACCOON_ZEN3_BATCH2,
            *_rate(lr),
        )
        for lr in ("0.005", "0.01")
    ),
    # ... and which of the crowd and the objects' size it follows: raccoons as small as the
    # 2 x 2 mosaics' (ahead at 0.01 in round 33), one an image (round 35).
    "rate_lone_raccoons": tuple(
        _ours(
            f"raccoon_lone_{RACCOON_2X2_ZEN3_BATCH2}_lr{lr}",
            RACCOON_LONE,
            RACCOON_2X2_ZEN3_BATCH2,
            *_rate(lr),
        )
        for lr in ("0.005", "0.01")
    ),
    # The rate and schedule of a 20-minute run, on both datasets (with the recipe).
    "schedule": (
        _ours("ours_20min_cosine", RACCOON, RACCOON_OURS, *_SIZE, *_OLD_RATE_COSINE),
        _ours("ours_20min_cosine_lr_0.01", RACCOON, RACCOON_OURS, *_SIZE, *_NEW),
        _ours("ours_cosine", "slides", SLIDES_OURS, *_SIZE, *_OLD_RATE_COSINE),
        _ours("ours_cosine_lr_0.01", "slides", SLIDES_OURS, *_SIZE, *_NEW),
        _ours("ours_lr_0.01", "slides", SLIDES_OURS, *_SIZE, *_NEW_RATE_STEP),
    ),
}


def commands(
    arm: Arm, seed: int, run_dir: Path, root: Path, device: str, max_steps: int | None = None
) -> list[list[str]]:
    """The commands that train ``arm`` with ``seed`` (for at most ``max_steps``) and leave
    its scores in ``run_dir``."""
    data = arm.data if arm.data in GENERATED else str(root / arm.data)
    steps = arm.steps if max_steps is None else min(arm.steps, max_steps)
    common = ["--data", data, "--seed", str(seed), "--steps", str(steps), "--cache-images"]
    if arm.weights is not None:
        common += ["--weights", str(root / arm.weights)]
    common += ["--device", device, *_CLIP, *arm.options]
    if arm.detector == "torchvision":
        script = str(HERE / "raccoon_torchvision.py")
        # Steps, not its default 20-minute clock, end the run.
        script_options = ["--minutes", "1e6", "--out", str(run_dir / "scores.json")]
        return [[sys.executable, script, *common, *script_options]]
    train = [sys.executable, "-m", "faster_rcnn", "train", "--preset", arm.preset]
    evaluate = [sys.executable, "-m", "faster_rcnn", "evaluate", "--data", data]
    evaluate += ["--split", "test", "--device", device, "--out", str(run_dir / "eval")]
    return [
        [*train, *common, "--out", str(run_dir)],
        [*evaluate, "--model", str(run_dir / "model.safetensors")],
    ]


def scores(arm: Arm, run_dir: Path) -> dict[str, float]:
    """``{"map": ..., "ap/<class>": ...}`` of a finished run, and for ours its COCO AP and
    AP75, proposal recall, mean loss over the last 10 steps, steps run (in all stages) and
    median seconds a step."""
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
    steps = read_metrics(run_dir / METRICS_FILE)
    return {
        "map": metrics["voc_map50"],
        **per_class,
        "coco_ap": metrics["coco_ap"],
        "coco_ap75": metrics["coco_ap75"],
        "recall@300@0.7": metrics["recall@300@0.7"],
        "final_loss": statistics.mean(step["losses"]["loss"] for step in steps[-10:]),
        "steps": len(steps),
        "step_seconds": statistics.median(step["seconds"] for step in steps),
    }


@dataclass
class Run:
    """A training under way."""

    arm: Arm
    seed: int
    folder: Path
    process: subprocess.Popen
    began: float


def start(arm: Arm, seed: int, args: argparse.Namespace) -> Run:
    """Start ``arm``'s commands for ``seed`` in the background, logged to its folder."""
    folder = args.out / arm.name / f"seed{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    steps = commands(arm, seed, folder, args.data_root, args.device, args.max_steps)
    script = " && ".join(subprocess.list2cmdline(c) for c in steps)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONUNBUFFERED": "1"}
    with open(folder / "log.txt", "w") as log:  # the child keeps its own handle
        process = subprocess.Popen(
            script, shell=True, stdout=log, stderr=subprocess.STDOUT, env=env
        )
    return Run(arm, seed, folder, process, time.monotonic())


def run_study(args: argparse.Namespace) -> None:
    arms = [arm for study in args.study for arm in STUDIES[study]]
    results_file = args.results or args.out / "results.json"
    results = json.loads(results_file.read_text()) if results_file.exists() else {}
    for done in args.done:
        results.update(json.loads(Path(done).read_text()))
    todo = [(arm, seed) for seed in args.seeds for arm in arms if key(arm, seed) not in results]
    deadline = time.monotonic() + args.minutes * 60
    running: list[Run] = []
    while running or (todo and time.monotonic() < deadline):
        while todo and len(running) < args.jobs and time.monotonic() < deadline:
            running.append(start(*todo.pop(0), args))
        time.sleep(2)
        for run in [r for r in running if r.process.poll() is not None]:
            running.remove(run)
            name = key(run.arm, run.seed)
            if run.process.returncode != 0:
                tail = (run.folder / "log.txt").read_text()[-2000:]
                print(f"{name} failed ({run.process.returncode}):\n{tail}", flush=True)
                continue
            seconds = time.monotonic() - run.began
            results[name] = {**scores(run.arm, run.folder), "seconds": seconds}
            results_file.write_text(json.dumps(results, indent=1))
            print(f"{name}: mAP {results[name]['map']:.3f}", flush=True)


def key(arm: Arm, seed: int) -> str:
    return f"{arm.name}/seed{seed}"


def table(results_path: Path) -> str:
    """Markdown: one row an arm, mean +- standard deviation and each seed, per score."""
    results: dict[str, dict[str, float]] = json.loads(results_path.read_text())
    by_arm: dict[str, dict[str, dict[str, float]]] = {}
    for name, record in results.items():
        arm, seed = name.rsplit("/", 1)
        by_arm.setdefault(arm, {})[seed] = record
    present = {s for r in results.values() for s in r}
    extra = [s for s in ("coco_ap", "recall@300@0.7", "steps", "step_seconds") if s in present]
    score_names = ["map", *sorted(s for s in present if "/" in s), *extra]
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
            if score == "steps":
                each = " ".join(f"{v:.0f}" for v in values)
                cells.append(f"{statistics.mean(values):.0f} ± {spread:.0f} ({each})")
            else:
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
