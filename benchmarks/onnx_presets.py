"""Every preset exported to ONNX and run by ONNX Runtime against the eager model.

    OMP_NUM_THREADS=1 python benchmarks/onnx_presets.py [--presets ...] [--out F.json]

For each preset of :data:`faster_rcnn.models.PRESETS`, in a fresh process: the model with
its own class count, randomly initialised (seed 0; the MobileNets' layers drawn
He-normal, as a fresh MobileNet's features are ~1e-14) and its heads' last layers
rescaled so that scores spread as a trained model's do (``tests/spread_models.py``);
exported with :func:`~faster_rcnn.export.export_onnx` (timed, and the file's size); then
the file run by :class:`~faster_rcnn.export.OnnxDetector` on one thread on random images
of 480x640, 333x517, 1000x200 and 40x1600 (height x width) alone, and 480x640 with
333x517 in one batch, against the eager model on the same images.

An image matches when ONNX Runtime returns as many detections as the eager model and
each eager detection pairs with one of the same label, box within ``BOX_TOLERANCE``
pixels and score within ``SCORE_TOLERANCE``. Detections whose scores lie closer than
that may come in either order (float noise of 1e-6 orders near ties either way, and a
random model has many): those pairs are counted as ``reordered``, not as mismatches.
Exits 1 when a preset fails to export or to match.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import torch

import machine
from faster_rcnn import FasterRCNN, models
from faster_rcnn.export import OnnxDetector, export_onnx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from spread_models import images_of_sizes, spread_scores

BATCHES = ([(480, 640)], [(333, 517)], [(1000, 200)], [(40, 1600)], [(480, 640), (333, 517)])
BOX_TOLERANCE = 0.05
SCORE_TOLERANCE = 1e-4
RESULTS = Path(__file__).parent / "results" / "onnx_presets.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=list(models.PRESETS))
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--worker", metavar="PRESET", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(check_preset(args.worker)))
        return
    record = {
        "date": date.today().isoformat(),
        "machine": machine.describe(),
        "versions": versions(),
        "box_tolerance_px": BOX_TOLERANCE,
        "score_tolerance": SCORE_TOLERANCE,
        "presets": {},
    }
    for preset in args.presets:
        result = run_worker(preset)
        record["presets"][preset] = result
        print(summary(preset, result), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"-> {args.out}")
    sys.exit(0 if all(r.get("matched") for r in record["presets"].values()) else 1)


def run_worker(preset: str) -> dict:
    """:func:`check_preset` in a process of its own: each export pays the exporter's
    first-call costs, as ``faster-rcnn export`` does; a failure is recorded, not raised."""
    done = subprocess.run(
        [sys.executable, __file__, "--worker", preset], capture_output=True, text=True
    )
    if done.returncode != 0:
        return {"matched": False, "error": done.stderr.strip().splitlines()[-1][:300]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def check_preset(preset: str) -> dict:
    """Export ``preset``'s spread random model and compare ONNX Runtime's detections
    with the eager model's on :data:`BATCHES`."""
    torch.manual_seed(0)
    model = getattr(models, preset)()
    model = spread_scores(model, reinit_backbone=preset.startswith("mobilenet"))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"{preset}.onnx"
        start = time.perf_counter()
        export_onnx(model, path)
        seconds = time.perf_counter() - start
        size = path.stat().st_size / 2**20
        detector = OnnxDetector(path, threads=1)
        shapes = [list(i.shape) for i in detector.session.get_inputs()]
        cases = [compare_batch(model, detector, sizes) for sizes in BATCHES]
    return {
        "export_seconds": round(seconds, 1),
        "file_mib": round(size, 1),
        "input_shapes": shapes,
        "matched": all(case["matched"] for case in cases),
        "max_box_px": max(case["max_box_px"] for case in cases),
        "max_score": max(case["max_score"] for case in cases),
        "cases": cases,
    }


def compare_batch(model: FasterRCNN, detector: OnnxDetector, sizes: list[tuple[int, int]]) -> dict:
    """Both runtimes on images of ``sizes``, per image :func:`pair_detections`."""
    images = images_of_sizes(sizes)
    with torch.no_grad():
        expected = model(images)
    start = time.perf_counter()
    got = detector(images)
    seconds = time.perf_counter() - start
    pairs = [pair_detections(g, e) for g, e in zip(got, expected, strict=True)]
    return {
        "sizes": sizes,
        "eager_detections": [len(e["scores"]) for e in expected],
        "onnx_detections": [len(g["scores"]) for g in got],
        "matched": all(p["unmatched"] == 0 for p in pairs),
        "unmatched": sum(p["unmatched"] for p in pairs),
        "reordered": sum(p["reordered"] for p in pairs),
        "max_box_px": max(p["max_box_px"] for p in pairs),
        "max_score": max(p["max_score"] for p in pairs),
        "onnx_seconds": round(seconds, 2),
    }


def pair_detections(got: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> dict:
    """Pair each of ``expected``'s detections (``boxes (D, 4)``, ``labels``, ``scores
    (D,)``) with the closest unpaired one of ``got`` of its label and a score within
    :data:`SCORE_TOLERANCE`. ``unmatched``: expected detections without a pair within
    :data:`BOX_TOLERANCE`, and the difference in count; ``reordered``: pairs at different
    ranks; the largest box (px) and score differences of the pairs."""
    free = torch.ones(len(got["scores"]), dtype=torch.bool)
    unmatched = abs(len(got["scores"]) - len(expected["scores"]))
    reordered, box_diff, score_diff = 0, 0.0, 0.0
    for rank, (box, label, score) in enumerate(
        zip(expected["boxes"], expected["labels"], expected["scores"], strict=True)
    ):
        scores_apart = (got["scores"] - score).abs()
        boxes_apart = (got["boxes"] - box).abs().amax(dim=1)
        candidate = free & (got["labels"] == label) & (scores_apart <= SCORE_TOLERANCE)
        boxes_apart = torch.where(candidate, boxes_apart, torch.inf)
        if len(boxes_apart) == 0 or boxes_apart.min() > BOX_TOLERANCE:
            unmatched += 1
            continue
        paired = int(boxes_apart.argmin())
        free[paired] = False
        reordered += paired != rank
        box_diff = max(box_diff, boxes_apart[paired].item())
        score_diff = max(score_diff, scores_apart[paired].item())
    return {
        "unmatched": unmatched,
        "reordered": reordered,
        "max_box_px": box_diff,
        "max_score": score_diff,
    }


def summary(preset: str, result: dict) -> str:
    if "error" in result:
        return f"{preset:28s} failed: {result['error']}"
    verdict = "matched" if result["matched"] else "MISMATCH"
    reordered = sum(case["reordered"] for case in result["cases"])
    return (
        f"{preset:28s} export {result['export_seconds']:6.1f} s  {result['file_mib']:6.1f} MiB  "
        f"{verdict}  boxes within {result['max_box_px']:.2g} px, scores within "
        f"{result['max_score']:.2g}, {reordered} ranked apart in near ties"
    )


def versions() -> dict[str, str]:
    import onnx
    import onnxruntime
    import onnxscript

    return {
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxscript": onnxscript.__version__,
        "onnxruntime": onnxruntime.__version__,
    }


if __name__ == "__main__":
    main()
