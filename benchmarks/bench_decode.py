"""Median time to decode a JPEG to the float image a model takes, by image size.

    python benchmarks/bench_decode.py [--repeats 9] [--reuse-freed-memory]

Each size is a JPEG (quality 90) of smooth random texture, written to a temporary
folder. ``read_image`` (this package's decoder: PIL's pixels widened to float32 and
divided by 255 in place) is timed against the same division into a new array, as the
readers did before (and as ``numpy.asarray(image, dtype=float32) / 255`` does in most
training scripts). Both give the same values, which is checked. Decoding is
single-threaded. ``--reuse-freed-memory`` runs it as ``faster-rcnn``'s commands do,
keeping freed memory for reuse (:mod:`faster_rcnn.host_memory`), where a new array costs
little; a script that reads images through the library does not. The record goes to
``results/bench_decode.json``, or ``bench_decode_reused.json``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from datetime import date
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

import machine
from bench_inference import median_seconds
from faster_rcnn.data.dataset import read_image
from faster_rcnn.host_memory import reuse_freed_memory

SIZES = ((640, 480), (1333, 800), (1920, 1080), (4032, 3024))  # width, height
RESULTS = Path(__file__).parent / "results"


def numpy_decode(path: Path) -> Tensor:
    """PIL's RGB pixels widened to float32 and divided by 255 in numpy."""
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(pixels).permute(2, 0, 1)


def write_jpeg(folder: Path, width: int, height: int) -> Path:
    """A JPEG of random colours upsampled from a 1/8 grid: texture at several scales."""
    coarse = np.random.default_rng(0).integers(0, 256, (height // 8, width // 8, 3))
    image = Image.fromarray(coarse.astype(np.uint8)).resize((width, height), Image.BICUBIC)
    path = folder / f"{width}x{height}.jpg"
    image.save(path, quality=90)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--reuse-freed-memory", action="store_true")
    args = parser.parse_args()
    reused = args.reuse_freed_memory and reuse_freed_memory()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for width, height in SIZES:
            path = write_jpeg(Path(folder), width, height)
            if not torch.equal(read_image(path), numpy_decode(path)):
                raise SystemExit(f"{path.name}: read_image and numpy differ")
            ours = 1000 * median_seconds(lambda p=path: read_image(p), args.repeats)
            numpy_ms = 1000 * median_seconds(lambda p=path: numpy_decode(p), args.repeats)
            rows.append({"size": f"{width}x{height}", "read_image_ms": ours, "numpy_ms": numpy_ms})
            print(
                f"{width}x{height}: read_image {ours:.1f} ms, numpy {numpy_ms:.1f} ms "
                f"({ours / numpy_ms:.2f} times)"
            )
    record = {
        "date": str(date.today()),
        "machine": machine.describe(),
        "repeats": args.repeats,
        "freed_memory": "reused" if reused else "unmapped",
        "rows": rows,
    }
    RESULTS.mkdir(exist_ok=True)
    name = "bench_decode_reused.json" if reused else "bench_decode.json"
    (RESULTS / name).write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
