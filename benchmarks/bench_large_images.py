"""Median time to read a JPEG and prepare it for the model, by image size, with the
transform normalising before or after the resize.

    python benchmarks/bench_large_images.py [--repeats 7] [--reuse-freed-memory]

Each size is a JPEG of :func:`bench_decode.write_jpeg`'s texture. Timed per size:
``read_image``; the model's transform in eval mode (800/1333), which normalises an image
the resize shrinks after resizing it; and torchvision's order, normalising the full
image first (both padded into a batch). The two batches must agree to float rounding
(checked: at most 1e-5 in normalised units). ``--reuse-freed-memory`` keeps freed memory
for reuse, as ``faster-rcnn``'s commands do (:mod:`faster_rcnn.host_memory`). The record
goes to ``results/bench_large_images.json``, or ``bench_large_images_reused.json``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from datetime import date
from pathlib import Path

import torch
from torch import Tensor

import machine
from bench_decode import write_jpeg
from bench_inference import median_seconds
from faster_rcnn.config import TransformConfig
from faster_rcnn.data.dataset import read_image
from faster_rcnn.host_memory import reuse_freed_memory
from faster_rcnn.transform import ImageTransform, resize_image

SIZES = ((640, 480), (1333, 1000), (4032, 3024), (8000, 6000))  # width, height
RESULTS = Path(__file__).parent / "results"


def normalized_first(transform: ImageTransform, image: Tensor) -> Tensor:
    """The padded batch of the image normalised at full size, then resized: torchvision's
    order."""
    size = transform.min_size[-1]
    return transform.batch([resize_image(transform.normalize(image), size, transform.max_size)])


def prepared(transform: ImageTransform, image: Tensor) -> Tensor:
    """The padded batch of the image as the model's transform prepares it."""
    return transform([image])[0].tensors


def timed(transform: ImageTransform, path: Path, repeats: int) -> dict[str, object]:
    """One row of the record: the image ``path``'s times, and how far the two orders'
    prepared images differ."""
    image = read_image(path)
    difference = float(
        (prepared(transform, image) - normalized_first(transform, image)).abs().max()
    )
    if difference > 1e-5:
        raise SystemExit(f"{path.name}: the two orders differ by {difference}")
    width, height = image.shape[-1], image.shape[-2]
    return {
        "size": f"{width}x{height}",
        "read_image_ms": 1000 * median_seconds(lambda: read_image(path), repeats),
        "transform_ms": 1000 * median_seconds(lambda: prepared(transform, image), repeats),
        "normalized_first_ms": 1000
        * median_seconds(lambda: normalized_first(transform, image), repeats),
        "max_difference": difference,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--reuse-freed-memory", action="store_true")
    args = parser.parse_args()
    reused = args.reuse_freed_memory and reuse_freed_memory()
    transform = ImageTransform(TransformConfig()).eval()
    rows = []
    with tempfile.TemporaryDirectory() as folder, torch.inference_mode():
        for width, height in SIZES:
            path = write_jpeg(Path(folder), width, height)
            row = timed(transform, path, args.repeats)
            rows.append(row)
            print(
                f"{row['size']}: read_image {row['read_image_ms']:.1f} ms, transform "
                f"{row['transform_ms']:.1f} ms, normalised first {row['normalized_first_ms']:.1f} "
                f"ms (largest difference {row['max_difference']:.1e})"
            )
    record = {
        "date": str(date.today()),
        "machine": machine.describe(),
        "threads": torch.get_num_threads(),
        "repeats": args.repeats,
        "freed_memory": "reused" if reused else "unmapped",
        "rows": rows,
    }
    RESULTS.mkdir(exist_ok=True)
    name = "bench_large_images_reused.json" if reused else "bench_large_images.json"
    (RESULTS / name).write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
