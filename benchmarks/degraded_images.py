"""A copy of a YOLO-layout dataset whose images are degraded as real microscope images are.

    python benchmarks/degraded_images.py SRC OUT [--seed 0] [--blur 0.5 2.0]
        [--fade 0.55 0.9] [--cast 0.06] [--noise 0.01 0.04] [--quality 35 75]

The generated slides are clean: sharp edges, one stain, light noise, JPEG at quality 92.
Real slides are not: focus drifts, stains fade and take a colour cast from slide to
slide, the camera adds noise and the files are compressed harder. Each image of the copy
gets, in this order, each strength drawn uniformly from its range for that image:

- ``--blur``: defocus, a Gaussian blur of that standard deviation in pixels;
- ``--fade``: a faded stain, every pixel moved towards the image's mean colour (the
  contrast kept, 1 = unchanged);
- ``--cast``: a colour cast, each channel scaled by a factor within ``1 +- cast``;
- ``--noise``: sensor noise, Gaussian, of that standard deviation (pixels in 0..1);
- ``--quality``: saved as JPEG at that quality.

Training and test images are degraded alike, drawn from ``--seed`` in turn over the
training split's files and then the others', so the same command writes the same set.
The copy keeps SRC's labels (a symbolic link) and ``classes.txt``. ``recipe_ab.md``
(round 43) trains and evaluates on the degraded slides.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from faster_rcnn.data.dataset import image_files_in


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    _range(parser, "--blur", (0.5, 2.0), "Gaussian blur's standard deviation, px")
    _range(parser, "--fade", (0.55, 0.9), "contrast kept about the mean colour")
    parser.add_argument(
        "--cast", type=float, default=0.06, help="channel gains in 1 +- cast (default 0.06)"
    )
    _range(parser, "--noise", (0.01, 0.04), "noise's standard deviation, 0..1 pixels")
    _range(parser, "--quality", (35, 75), "JPEG quality", kind=int)
    args = parser.parse_args()
    args.out.mkdir(parents=True)
    shutil.copy(args.src / "classes.txt", args.out / "classes.txt")
    (args.out / "labels").symlink_to((args.src / "labels").resolve())
    rng = np.random.default_rng(args.seed)
    sources = _image_files(args.src / "images")
    for src in sources:
        out = (args.out / src.relative_to(args.src)).with_suffix(".jpg")
        out.parent.mkdir(parents=True, exist_ok=True)
        with Image.open(src) as image:
            degraded, quality = degrade(image.convert("RGB"), rng, args)
        degraded.save(out, quality=quality)
    print(f"{args.out}: {len(sources)} images degraded")


def degrade(
    image: Image.Image, rng: np.random.Generator, args: argparse.Namespace
) -> tuple[Image.Image, int]:
    """``image`` blurred, faded, colour-cast and noised, each by a strength drawn from
    ``rng`` in its range of ``args``, and the JPEG quality to save it at."""
    blurred = image.filter(ImageFilter.GaussianBlur(rng.uniform(*args.blur)))
    pixels = np.asarray(blurred, dtype=np.float32) / 255
    mean = pixels.mean(axis=(0, 1))
    pixels = mean + rng.uniform(*args.fade) * (pixels - mean)
    pixels = pixels * rng.uniform(1 - args.cast, 1 + args.cast, size=3).astype(np.float32)
    pixels = pixels + rng.normal(0, rng.uniform(*args.noise), pixels.shape).astype(np.float32)
    quality = int(rng.integers(args.quality[0], args.quality[1], endpoint=True))
    return Image.fromarray((pixels.clip(0, 1) * 255).round().astype(np.uint8)), quality


def _range(
    parser: argparse.ArgumentParser, flag: str, default: tuple, meaning: str, kind=float
) -> None:
    """A ``LOW HIGH`` option whose strength is drawn from that range for each image."""
    parser.add_argument(
        flag,
        type=kind,
        nargs=2,
        default=default,
        metavar=("LOW", "HIGH"),
        help=f"{meaning} (default {default[0]} {default[1]})",
    )


def _image_files(images: Path) -> list[Path]:
    """The images, the training split's first, then the other splits by name."""
    splits = sorted(path for path in images.iterdir() if path.is_dir())
    splits.sort(key=lambda split: split.name != "train")
    return [path for split in splits for path in image_files_in(split)]


if __name__ == "__main__":
    main()
