"""End-to-end inference, ours and torchvision's, eager and ONNX, with the same weights.

    /work/tvenv/bin/python benchmarks/bench_end_to_end.py [--presets ...] [--arms ...]
        [--rounds 3] [--repeats 5] [--batch 1]

Run it in torchvision's environment with this package installed there (``pip install
--no-deps -e .`` plus the onnx extra), so that both eager detectors run on the same torch.
For each preset, torchvision's randomly initialised detector (seed 0) is saved and loaded
into ours; each side is exported with its own exporter (torchvision's documented path:
the TorchScript-based exporter, opset 11); then the arms are timed on one image:
eager ours, eager ours after ``optimize_for_inference`` (batch norms folded,
channels-last), ONNX ours (``OnnxDetector``: our resizing in torch, then the session),
eager torchvision and ONNX torchvision (resizing inside its graph); and, only when asked
for, ``ours_compiled``: the rewritten model with its backbone through ``torch.compile``.
Every timing runs in a fresh process, the arms alternate round by round, and each
process reports the median of ``--repeats`` calls after a first call that is timed on its
own (the compiled arm's compiles, into an Inductor cache of the run's own that the later
rounds find warm); the record keeps the median and the range over the rounds, and every
round's first call. An arm that cannot run (an export that fails) is recorded with its
error. With ``--batch N`` each call detects N different images at once (padding
included) and the record adds images per second. The arms named by
``--reuse-freed-memory`` keep freed memory for reuse, as ``faster-rcnn``'s commands do
(:mod:`faster_rcnn.host_memory`): name every arm for a comparison on the same allocator
settings, only ours for ours as the program runs against torchvision as its users run it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import torch

import machine
from bench_inference import median_seconds
from faster_rcnn.host_memory import reuse_freed_memory

ARMS = ("ours_eager", "ours_fast", "ours_onnx", "torchvision_eager", "torchvision_onnx")
OPTIONAL_ARMS = ("ours_compiled",)
TORCHVISION_BUILDERS = {
    "resnet50_fpn": "fasterrcnn_resnet50_fpn",
    "mobilenet_v3_large_fpn": "fasterrcnn_mobilenet_v3_large_fpn",
    "mobilenet_v3_large_320_fpn": "fasterrcnn_mobilenet_v3_large_320_fpn",
}
IMAGE_SIZE = (480, 640)
RESULTS = Path(__file__).parent / "results" / "bench_end_to_end.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=list(TORCHVISION_BUILDERS))
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS + OPTIONAL_ARMS)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--batch", type=int, default=1, help="images a call (throughput)")
    parser.add_argument(
        "--reuse-freed-memory",
        nargs="+",
        default=[],
        metavar="ARM",
        choices=ARMS + OPTIONAL_ARMS,
        help="arms whose process keeps freed memory for reuse, as faster-rcnn's commands do",
    )
    parser.add_argument("--worker", nargs=3, metavar=("ARM", "PRESET", "FOLDER"))
    parser.add_argument("--reuse", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        if args.reuse:
            reuse_freed_memory()
        arm, preset, folder = args.worker
        print(json.dumps(time_arm(arm, preset, Path(folder), args.repeats, args.batch)))
        return
    record = {
        "date": date.today().isoformat(),
        "machine": machine.describe(),
        "versions": _versions(),
        "image": list(IMAGE_SIZE),
        "batch": args.batch,
        "reuse_freed_memory": args.reuse_freed_memory,
        "rounds": args.rounds,
        "repeats": args.repeats,
        "presets": {},
    }
    with tempfile.TemporaryDirectory() as temporary:
        for preset in args.presets:
            folder = Path(temporary) / preset
            record["presets"][preset] = measure_preset(preset, folder, args)
            print(json.dumps({preset: record["presets"][preset]}, indent=1), flush=True)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(record, indent=1) + "\n")
    print(f"-> {args.results}")


def measure_preset(preset: str, folder: Path, args: argparse.Namespace) -> dict:
    """Export both sides, then time the four arms, alternating, in fresh processes."""
    folder.mkdir(parents=True)
    exports = prepare(preset, folder, args.arms)
    medians: dict[str, list[float]] = {arm: [] for arm in args.arms}
    first_calls: dict[str, list[float]] = {arm: [] for arm in args.arms}
    errors: dict[str, str] = {}
    for _ in range(args.rounds):
        for arm in args.arms:
            if arm in errors or exports.get(arm) is False:
                continue
            worker = [sys.executable, __file__, "--worker", arm, preset, str(folder)]
            worker += ["--repeats", str(args.repeats), "--batch", str(args.batch)]
            if arm in args.reuse_freed_memory:
                worker.append("--reuse")
            done = subprocess.run(
                worker,
                capture_output=True,
                text=True,
                env={**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(folder / "inductor")},
            )
            if done.returncode != 0:
                errors[arm] = done.stderr.strip().splitlines()[-1]
                continue
            timing = json.loads(done.stdout.splitlines()[-1])
            medians[arm].append(timing["seconds"])
            first_calls[arm].append(timing["first_call_s"])
    result = {"export_seconds": exports["seconds"], "errors": {**exports["errors"], **errors}}
    for arm, values in medians.items():
        if values:
            result[arm] = {
                "images_per_s": round(args.batch / statistics.median(values), 3),
                "median_s": round(statistics.median(values), 4),
                "min_s": round(min(values), 4),
                "max_s": round(max(values), 4),
                "first_call_s": [round(seconds, 3) for seconds in first_calls[arm]],
            }
    for slower, faster in (
        ("ours_eager", "ours_fast"),
        ("ours_fast", "ours_compiled"),
        ("torchvision_eager", "ours_compiled"),
        ("ours_eager", "ours_onnx"),
        ("torchvision_eager", "ours_fast"),
        ("torchvision_eager", "ours_eager"),
        ("torchvision_onnx", "ours_onnx"),
        ("torchvision_onnx", "torchvision_eager"),
    ):
        if slower in result and faster in result:
            ratio = result[slower]["median_s"] / result[faster]["median_s"]
            result[f"{slower}_over_{faster}"] = round(ratio, 3)
    return result


def prepare(preset: str, folder: Path, arms: list[str]) -> dict:
    """torchvision's random detector saved; each side exported where an arm needs it."""
    import torchvision

    from faster_rcnn import load_torchvision_checkpoint
    from faster_rcnn.export import export_onnx

    torch.manual_seed(0)
    builder = getattr(torchvision.models.detection, TORCHVISION_BUILDERS[preset])
    theirs = builder(weights=None, weights_backbone=None).eval()
    torch.save(theirs.state_dict(), folder / "torchvision.pth")
    seconds, errors = {}, {}
    if "ours_onnx" in arms:
        start = time.perf_counter()
        ours = load_torchvision_checkpoint(folder / "torchvision.pth", preset)
        export_onnx(ours, folder / "ours.onnx")
        seconds["ours"] = round(time.perf_counter() - start, 1)
    if "torchvision_onnx" in arms:
        start = time.perf_counter()
        try:
            torch.onnx.export(
                theirs,
                ([_image()],),
                str(folder / "torchvision.onnx"),
                opset_version=11,
                dynamo=False,
                input_names=["images"],
                output_names=["boxes", "labels", "scores"],
                dynamic_axes={"images": [1, 2], "boxes": [0], "labels": [0], "scores": [0]},
            )
            seconds["torchvision"] = round(time.perf_counter() - start, 1)
        except Exception as error:  # whatever the exporter raises is the finding
            errors["torchvision_onnx"] = f"export failed: {type(error).__name__}: {error}"[:300]
    return {
        "seconds": seconds,
        "errors": errors,
        "torchvision_onnx": "torchvision_onnx" not in errors,
    }


def time_arm(arm: str, preset: str, folder: Path, repeats: int, batch: int) -> dict:
    """The first call's seconds, and the median of ``repeats`` calls after it, of one arm
    on ``batch`` benchmark images."""
    images = [_image(seed) for seed in range(batch)]
    if arm in ("ours_eager", "ours_fast", "ours_compiled"):
        from faster_rcnn import load_torchvision_checkpoint
        from faster_rcnn.fast_inference import optimize_for_inference

        model = load_torchvision_checkpoint(folder / "torchvision.pth", preset)
        if arm != "ours_eager":
            model = optimize_for_inference(model)
        if arm == "ours_compiled":
            # The backbone (with the FPN) is where the time goes; the rest has
            # data-dependent shapes that torch.compile would split into many graphs.
            model.backbone = torch.compile(model.backbone, dynamic=False)
        run = _no_grad(lambda: model(images))
    elif arm == "ours_onnx":
        from faster_rcnn.export import OnnxDetector

        detector = OnnxDetector(folder / "ours.onnx")
        run = lambda: detector(images)  # noqa: E731
    elif arm == "torchvision_eager":
        import torchvision

        builder = getattr(torchvision.models.detection, TORCHVISION_BUILDERS[preset])
        model = builder(weights=None, weights_backbone=None).eval()
        model.load_state_dict(torch.load(folder / "torchvision.pth"))
        run = _no_grad(lambda: model(images))
    else:
        import onnxruntime

        session = onnxruntime.InferenceSession(
            str(folder / "torchvision.onnx"), providers=["CPUExecutionProvider"]
        )
        if batch != 1:
            raise ValueError("torchvision's ONNX export takes the one image it was traced with")
        feed = {session.get_inputs()[0].name: images[0].numpy()}
        run = lambda: session.run(None, feed)  # noqa: E731
    start = time.perf_counter()
    run()
    first_call = time.perf_counter() - start
    return {"seconds": median_seconds(run, repeats, warmup=0), "first_call_s": first_call}


def _no_grad(fn):
    def run():
        with torch.inference_mode():
            return fn()

    return run


def _image(seed: int = 0) -> torch.Tensor:
    return torch.rand(3, *IMAGE_SIZE, generator=torch.Generator().manual_seed(seed))


def _versions() -> dict:
    import onnxruntime

    versions = {"torch": torch.__version__, "onnxruntime": onnxruntime.__version__}
    try:
        import torchvision

        versions["torchvision"] = torchvision.__version__
    except ImportError:
        pass
    return versions


if __name__ == "__main__":
    main()
