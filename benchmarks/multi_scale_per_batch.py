"""A multi-scale training step with the size drawn per image or per batch, alternating.

    python benchmarks/multi_scale_per_batch.py [--batch-size 4] [--rounds 24]
        [--amp | --no-amp] [--results FILE]

``mobilenet_v2_fpn`` trains on the generated slides (480x640) at the six sizes the recipe
chooses for them (shorter side 640 to 800), as ``faster-rcnn train`` runs a step on a CPU
(channels-last, the recipe's RoIs and jittered GT copies, bfloat16 where the CPU has it).
Drawn per image, a batch is zero-padded to its largest image, and the backbone convolves
the padding; drawn per batch (``--multi-scale-per batch``) no image is padded. Both arms
see the same sizes equally often: over ``--rounds`` steps each size is drawn for the same
number of images, in shuffled order, and the arms take turns step by step on the same
weights (learning rate 0) and the same images. The record keeps each arm's median and
mean step after the first round, their ratio, and the padded pixels' share. Thread
count: ``OMP_NUM_THREADS``.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
from datetime import date
from pathlib import Path

import torch

import machine
from bfloat16_kernels import timed_step
from faster_rcnn import FasterRCNN
from faster_rcnn.data.open import open_dataset
from faster_rcnn.host_memory import reuse_freed_memory
from faster_rcnn.models import preset_config
from faster_rcnn.train.precision import cpu_has_bfloat16
from faster_rcnn.train.recipe import GT_JITTER, ROI_BATCH_SIZE, multi_scale_sizes
from faster_rcnn.transform import padded_size, resized_size

RESULTS = Path(__file__).parent / "results" / "multi_scale_per_batch.json"
ARMS = ("image", "batch")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=24, help="steps per arm")
    parser.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    bfloat16 = cpu_has_bfloat16() if args.amp is None else args.amp
    reuse_freed_memory()
    dataset = open_dataset("slides", "train")
    model = training_model(dataset.class_names)
    sizes = model.transform.min_size
    if args.rounds % len(sizes):
        raise SystemExit(f"--rounds must be a multiple of the {len(sizes)} sizes")
    images = [dataset[i] for i in range(8 * args.batch_size)]
    batches = [images[k : k + args.batch_size] for k in range(0, len(images), args.batch_size)]
    draws = balanced_draws(sizes, args.rounds, args.batch_size)
    seconds, padded = alternate(model, batches, draws, args.rounds, bfloat16)
    record = summary(seconds, padded)
    record |= {
        "date": date.today().isoformat(),
        "machine": machine.describe(),
        "threads": torch.get_num_threads(),
        "precision": "bfloat16" if bfloat16 else "float32",
        "batch_size": args.batch_size,
        "sizes": list(sizes),
    }
    for arm in ARMS:
        print(
            f"per {arm:5}  median {record['median_step_s'][arm]:.3f} s  "
            f"mean {record['mean_step_s'][arm]:.3f} s  padding {record['padded_share'][arm]:.1%}"
        )
    print(f"per batch / per image (means): {record['batch_over_image']:.3f}")
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.results}")


def training_model(class_names: tuple[str, ...]) -> FasterRCNN:
    """``mobilenet_v2_fpn`` as the recipe trains it on the slides, channels-last, in
    training mode, randomly initialised (seed 0)."""
    torch.manual_seed(0)
    config = preset_config("mobilenet_v2_fpn", len(class_names) + 1)
    config = config.replace(
        transform={"min_size": multi_scale_sizes(config.transform.min_size[-1])},
        roi_heads={"batch_size_per_image": ROI_BATCH_SIZE, "gt_jitter": GT_JITTER},
    )
    model = FasterRCNN.from_config(config)
    model.to(memory_format=torch.channels_last)
    model.memory_format = torch.channels_last
    return model.train()


def balanced_draws(sizes: tuple[int, ...], rounds: int, batch_size: int) -> dict[str, list[int]]:
    """Per arm, the sizes its steps draw in turn: every size for ``rounds * batch_size /
    len(sizes)`` images in both, shuffled (``random.Random(0)``)."""
    rng = random.Random(0)
    per_batch = [size for size in sizes for _ in range(rounds // len(sizes))]
    per_image = [size for size in per_batch for _ in range(batch_size)]
    rng.shuffle(per_batch)
    rng.shuffle(per_image)
    return {"image": per_image, "batch": per_batch}


def alternate(model, batches, draws, rounds: int, bfloat16: bool):
    """Each arm's step seconds and the share of its batches' pixels that were padding."""
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.0)
    transform = model.transform
    seconds = {arm: [] for arm in ARMS}
    pixels = {arm: [0, 0] for arm in ARMS}
    queues = {arm: iter(sizes) for arm, sizes in draws.items()}
    for step in range(rounds):
        batch = batches[step % len(batches)]
        images, targets = [image for image, _ in batch], [target for _, target in batch]
        for arm in ARMS:
            drawn = [next(queues[arm]) for _ in range(len(batch) if arm == "image" else 1)]
            sizes = [
                resized_size(image.shape[-2:], size, transform.max_size)
                for image, size in zip(images, drawn * (len(batch) // len(drawn)), strict=True)
            ]
            height, width = padded_size(sizes, transform.size_divisible)
            pixels[arm][0] += sum(h * w for h, w in sizes)
            pixels[arm][1] += len(batch) * height * width
            transform.multi_scale_per = arm
            queue = iter(drawn)
            transform._choose_min_size = lambda generator, queue=queue: next(queue)
            seconds[arm].append(timed_step(model, optimizer, images, targets, bfloat16))
    del transform._choose_min_size
    padded = {arm: 1 - image / total for arm, (image, total) in pixels.items()}
    return seconds, padded


def summary(seconds: dict[str, list[float]], padded: dict[str, float]) -> dict:
    """Medians and means after the first round, their ratio, and the padding shares."""
    medians = {arm: statistics.median(times[1:]) for arm, times in seconds.items()}
    means = {arm: statistics.mean(times[1:]) for arm, times in seconds.items()}
    return {
        "median_step_s": {arm: round(m, 3) for arm, m in medians.items()},
        "mean_step_s": {arm: round(m, 3) for arm, m in means.items()},
        "batch_over_image": round(means["batch"] / means["image"], 3),
        "padded_share": {arm: round(share, 4) for arm, share in padded.items()},
        "step_s": {arm: [round(s, 3) for s in times] for arm, times in seconds.items()},
    }


if __name__ == "__main__":
    main()
