"""Median time of ``explain`` on 1 and 2 threads, split into the model's forward and its
own work, and of the synthetic shapes an image.

    python benchmarks/bench_explain.py [--repeats 5] [--draw-only]
        [--weights ../shared/weights/mobilenet_v2-b0353104.pth] [--out results/bench_explain.json]

The image is a synthetic shapes image of 320 or 800 px a side, its boxes the ground
truth. Each case is timed ``--repeats`` times after a first call, on 1 and 2 threads
(``torch.set_num_threads``):

- ``explain()`` (the python API): the forward is the time spent in the model's
  ``prepare_batch``, ``features``, ``rpn.predict`` / ``rpn.score_anchors`` and box head,
  the rest is explain's own (anchor targets, panel 1's cell, the proposal stages); for
  the untrained ``small`` preset with and without the proposals (``faster-rcnn explain``
  without ``--model`` asks for none), for ``mobilenet_v2_fpn`` (ImageNet backbone from
  ``--weights``; skipped without the file) with them, as ``--model`` does;
- ``draw_explanation``: the figure, its PNG and its JSON;
- with ``--draw-only``, its figure and picture alone (not its JSON), split into building
  the figure (``explanation_figure``), rendering it (the canvas's ``draw`` in
  ``save_figure``) and the rest of ``save_figure`` (the picture's encoding and writing),
  on the wall clock and in this process's CPU seconds (which other work on the machine
  leaves as they are), for the small model's six panels of 320, 800 and 2000 px images;
  run it with ``PYTHONPATH`` set to another tree's ``src`` to compare two versions in
  one session;
- ``faster-rcnn explain`` in this process: ``--preset small``, and ``--model`` of that
  ``mobilenet_v2_fpn`` saved to a temporary file (800 px only);
- ``SyntheticShapes``: an image and a target alone (``target(i)``), on the one thread
  they are drawn on, over 40 images of 320 px and 10 of 800 px.

Prints each median and writes them all to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

import faster_rcnn
import machine
from faster_rcnn.backbones.weights import load_backbone_weights
from faster_rcnn.cli import main as cli
from faster_rcnn.data.synthetic import SyntheticShapes
from faster_rcnn.insight.draw import to_pil
from faster_rcnn.insight.explain import (
    Explanation,
    draw_explanation,
    explain,
    explanation_figure,
)
from faster_rcnn.insight.plots import save_figure
from faster_rcnn.model import FasterRCNN
from faster_rcnn.models import mobilenet_v2_fpn, small
from faster_rcnn.train.checkpoint import save_model

RESULTS = Path(__file__).parent / "results"
SIDES = (320, 800)
DRAW_SIDES = (320, 800, 2000)
# The forward's pieces explain calls, as (owner's path from the model, method name).
FORWARD = (("", "prepare_batch"), ("", "features"), ("rpn", "predict"), ("rpn", "score_anchors"))


class ForwardClock:
    """The seconds spent in a model's forward, by wrapping its pieces on the instance; a
    piece called by another (``rpn.predict`` calls ``rpn.score_anchors``) counts once."""

    def __init__(self, model: FasterRCNN) -> None:
        self.seconds = 0.0
        self._depth = 0
        for path, name in FORWARD:
            owner = model.get_submodule(path)
            setattr(owner, name, self._timed(getattr(owner, name)))
        model.roi_heads.forward = self._timed(model.roi_heads.forward)

    def _timed(self, method: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            self._depth += 1
            try:
                return method(*args, **kwargs)
            finally:
                self._depth -= 1
                if not self._depth:
                    self.seconds += time.perf_counter() - start

        return timed


def shapes_image(side: int) -> tuple[Tensor, Tensor]:
    """A ``side`` px square synthetic image with a few objects, and their boxes."""
    data = SyntheticShapes(20, image_size=(side, side), seed=0, empty_fraction=0.0)
    index = max(range(len(data)), key=lambda i: len(data.target(i)["boxes"]))
    image, target = data[index]
    return image, target["boxes"]


def time_explain(
    model: FasterRCNN, clock: ForwardClock, side: int, proposals: bool, repeats: int
) -> dict[str, float]:
    """Median total, forward and own milliseconds of ``explain``, and of drawing it."""
    image, boxes = shapes_image(side)
    explain(model, image, boxes, with_proposals=proposals)
    totals, forwards, draws = [], [], []
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(repeats):
            clock.seconds = 0.0
            start = time.perf_counter()
            explanation = explain(model, image, boxes, with_proposals=proposals)
            totals.append(time.perf_counter() - start)
            forwards.append(clock.seconds)
            start = time.perf_counter()
            draw_explanation(explanation, Path(folder) / "explained.png")
            draws.append(time.perf_counter() - start)
    owns = [total - forward for total, forward in zip(totals, forwards, strict=True)]
    return {
        name: 1000 * statistics.median(values)
        for name, values in (("total", totals), ("forward", forwards), ("own", owns))
    } | {"draw": 1000 * statistics.median(draws)}


def time_drawing(explanation: Explanation, repeats: int) -> dict[str, float]:
    """Median milliseconds of ``draw_explanation``'s figure and picture, on the wall clock
    (``figure``, ``render``, ``save``: the rest of ``save_figure``, ``total``) and in this
    process's CPU time (``*_cpu``), and the picture's size in megabytes."""
    times: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "explained.png"
        for run in range(repeats + 1):
            laps = [(time.perf_counter(), time.process_time())]
            figure = explanation_figure(explanation)
            laps.append((time.perf_counter(), time.process_time()))
            canvas, rendered = figure.canvas, []
            canvas.draw = _lapped(canvas.draw, rendered)  # type: ignore[method-assign]
            save_figure(figure, path)
            laps.append((time.perf_counter(), time.process_time()))
            if run:  # the first is a warm-up
                (wall0, cpu0), (wall1, cpu1), (wall2, cpu2) = laps
                render, render_cpu = rendered[0]
                for name, value in (
                    ("figure", wall1 - wall0), ("figure_cpu", cpu1 - cpu0),
                    ("render", render), ("render_cpu", render_cpu),
                    ("save", wall2 - wall1 - render), ("save_cpu", cpu2 - cpu1 - render_cpu),
                    ("total", wall2 - wall0), ("total_cpu", cpu2 - cpu0),
                ):  # fmt: skip
                    times.setdefault(name, []).append(value)
        megabytes = path.stat().st_size / 1e6
    return {name: 1000 * statistics.median(values) for name, values in times.items()} | {
        "picture_mb": megabytes
    }


def _lapped(method: Callable[[], Any], laps: list[tuple[float, float]]) -> Callable[[], Any]:
    """``method``, appending its wall and CPU seconds to ``laps`` at each call."""

    def lapped() -> Any:
        wall, cpu = time.perf_counter(), time.process_time()
        result = method()
        laps.append((time.perf_counter() - wall, time.process_time() - cpu))
        return result

    return lapped


def time_draw_only(repeats: int) -> list[dict[str, Any]]:
    """:func:`time_drawing` of the untrained small model's six panels of each of
    :data:`DRAW_SIDES`, on one thread."""
    torch.manual_seed(0)
    model, rows = small(num_classes=4), []
    for side in DRAW_SIDES:
        image, boxes = shapes_image(side)
        explanation = explain(model, image, boxes)
        rows.append({"what": "draw", "model": "small", "side": side})
        rows[-1] |= time_drawing(explanation, repeats)
        print(rows[-1], flush=True)
    return rows


def time_cli(arguments: list[str], side: int, repeats: int) -> float:
    """Median milliseconds of ``faster-rcnn explain`` of the ``side`` px image."""
    image, boxes = shapes_image(side)
    times = []
    with tempfile.TemporaryDirectory() as folder:
        picture, labels = Path(folder) / "image.png", Path(folder) / "image.txt"
        to_pil(image).save(picture)
        labels.write_text(yolo_lines(boxes, side))
        argv = ["explain", str(picture), "--annotations", str(labels), *arguments]
        argv += ["--out", str(Path(folder) / "explained.png")]
        for run in range(repeats + 1):
            start = time.perf_counter()
            if cli(argv) != 0:
                raise SystemExit(f"faster-rcnn {' '.join(argv)} failed")
            if run:  # the first is a warm-up
                times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def yolo_lines(boxes: Tensor, side: int) -> str:
    """``(N, 4)`` pixel boxes of a ``side`` px square image as a YOLO label file's lines."""
    centres, sides = (boxes[:, :2] + boxes[:, 2:]) / 2 / side, (boxes[:, 2:] - boxes[:, :2]) / side
    rows = torch.cat([centres, sides], 1).tolist()
    return "".join(f"0 {x:.6f} {y:.6f} {w:.6f} {h:.6f}\n" for x, y, w, h in rows)


def time_shapes(side: int, count: int, repeats: int) -> dict[str, float]:
    """Median milliseconds of a synthetic image and of its target alone."""
    data = SyntheticShapes(count, image_size=(side, side), seed=0)
    result = {}
    for name, draw in (("image", data.__getitem__), ("target", data.target)):
        passes = []
        for _ in range(repeats):
            start = time.perf_counter()
            for index in range(count):
                draw(index)
            passes.append((time.perf_counter() - start) / count)
        result[name] = 1000 * statistics.median(passes)
    return result


def models(weights: Path) -> dict[str, FasterRCNN]:
    """The untrained small preset, and mobilenet_v2_fpn with ``weights`` where present."""
    torch.manual_seed(0)
    built = {"small": small(num_classes=4)}
    if weights.is_file():
        built["mobilenet_v2_fpn"] = mobilenet_v2_fpn(num_classes=4)
        load_backbone_weights(built["mobilenet_v2_fpn"], weights)
    else:
        print(f"{weights} not found: mobilenet_v2_fpn left out")
    return built


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--draw-only", action="store_true", help="time draw_explanation alone")
    parser.add_argument(
        "--weights", type=Path, default=Path("../shared/weights/mobilenet_v2-b0353104.pth")
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "bench_explain.json")
    args = parser.parse_args()
    threads_before = torch.get_num_threads()
    if args.draw_only:
        torch.set_num_threads(1)
        write_record(args.out, args.repeats, time_draw_only(args.repeats))
        return
    rows: list[dict[str, Any]] = []
    built = models(args.weights)
    for name, model in built.items():
        clock = ForwardClock(model)
        for side in SIDES:
            for proposals in (False, True) if name == "small" else (True,):
                for threads in (1, 2):
                    torch.set_num_threads(threads)
                    ms = time_explain(model, clock, side, proposals, args.repeats)
                    rows.append(
                        {"what": "explain", "model": name, "side": side,
                         "proposals": proposals, "threads": threads, **ms}
                    )  # fmt: skip
                    print(rows[-1], flush=True)
    with tempfile.TemporaryDirectory() as folder:
        cli_cases = [(["--preset", "small"], "small", side) for side in SIDES]
        if "mobilenet_v2_fpn" in built:
            path = Path(folder) / "mobilenet_v2_fpn.safetensors"
            backbone_only = mobilenet_v2_fpn(num_classes=4)
            load_backbone_weights(backbone_only, args.weights)
            save_model(backbone_only, path)
            cli_cases.append((["--model", str(path)], "mobilenet_v2_fpn", 800))
        for arguments, name, side in cli_cases:
            for threads in (1, 2):
                torch.set_num_threads(threads)
                ms = time_cli(arguments, side, args.repeats)
                rows.append(
                    {"what": "cli", "model": name, "side": side, "threads": threads, "total": ms}
                )
                print(rows[-1], flush=True)
    torch.set_num_threads(threads_before)
    for side, count in ((320, 40), (800, 10)):
        rows.append({"what": "shapes", "side": side, **time_shapes(side, count, args.repeats)})
        print(rows[-1], flush=True)
    write_record(args.out, args.repeats, rows)


def write_record(path: Path, repeats: int, rows: list[dict[str, Any]]) -> None:
    """The rows measured, with the date, the machine and its load, as JSON to ``path``."""
    record = {
        "date": str(date.today()),
        "machine": machine.describe(),
        "load_average": os.getloadavg(),
        "faster_rcnn": str(Path(faster_rcnn.__file__).parent),
        "repeats": repeats,
        "rows": rows,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
