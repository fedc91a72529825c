"""Write README's "Performance" tables from the benchmark records in ``results/``.

    python benchmarks/performance_table.py [--readme README.md] [--results DIR --block NAME]

The table goes between the ``<!-- NAME:begin -->`` and ``<!-- NAME:end -->`` lines of the
README (``performance`` by default), replacing what was there; each row names the record
it comes from, and the header gives the machine, the versions and the dates of the
records. Records that do not exist are left out. The records of another kind of machine
keep a folder and a block of their own (``--results benchmarks/results/avx2 --block
performance-avx2``). Run the benchmarks first (each in torchvision's environment):
``bench_end_to_end.py``, ``bench_train_step.py``, ``bench_nms.py`` and ``bench_ops.py``;
the first two again with ``--reuse-freed-memory ARM ... --results
results/NAME_reused.json`` for the rows whose processes keep freed memory for reuse, and
``bench_nms.py`` again with a model trained on crowded images (``--results
results/bench_nms_crowded.json``), whose RPN keeps many more of its boxes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
NMS_CASES = {
    "synthetic_6000": "NMS, 6000 RPN-like boxes, IoU 0.7",
    "synthetic_12000": "NMS, 12000 RPN-like boxes",
    "rpn_top6000": "NMS, a trained RPN's best 6000 proposals (the paper's)",
    "rpn_top12000": "NMS, a trained RPN's best 12000 proposals",
    "rpn_levels": "NMS, a trained RPN's per-level batched NMS (up to 1000 a level, 1000 kept)",
    "rpn_levels_train": "NMS, the same at training's numbers (up to 2000 a level, 2000 kept)",
    "detections": "NMS, class-batched, of a trained model's detections",
}
# The cases of a second model's record (``bench_nms_crowded``), on crowded images.
RECORDED_NMS_CASES = ("rpn_top6000", "rpn_levels", "rpn_levels_train", "detections")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readme", type=Path, default=Path(__file__).parents[1] / "README.md")
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder of records")
    parser.add_argument("--block", default="performance", help="the README block to rewrite")
    args = parser.parse_args()
    begin, end = f"<!-- {args.block}:begin -->", f"<!-- {args.block}:end -->"
    text = args.readme.read_text()
    if begin not in text or end not in text:
        raise SystemExit(f"{args.readme}: no {begin} ... {end} block to replace")
    records = load_records(args.results)
    if not records:
        raise SystemExit(f"{args.results}: no benchmark records")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    root, results = Path(__file__).resolve().parents[1], args.results.resolve()
    source = results.relative_to(root) if results.is_relative_to(root) else args.results
    command = "python benchmarks/performance_table.py"
    if args.block != "performance":
        command += f" --results {source} --block {args.block}"
    args.readme.write_text(f"{head}{begin}\n{table(records, source, command)}{end}{tail}")
    print(f"-> {args.readme}")


def load_records(folder: Path) -> dict[str, dict]:
    names = (
        "bench_end_to_end",
        "bench_end_to_end_reused",
        "bench_train_step",
        "bench_train_step_reused",
        "bench_train_step_channels_last",
        "bench_nms",
        "bench_nms_crowded",
        "bench_ops",
    )
    paths = {name: folder / f"{name}.json" for name in names}
    return {name: json.loads(path.read_text()) for name, path in paths.items() if path.exists()}


def table(records: dict[str, dict], source: Path, command: str) -> str:
    """The markdown: a header line, then one table of ours against torchvision;
    ``source`` is the records' folder, relative to the project's root, and ``command``
    what rewrites the table."""
    first = next(iter(records.values()))
    versions = {k: v for record in records.values() for k, v in record["versions"].items()}
    dates = sorted({record["date"] for record in records.values()})
    lines = [
        f"Measured {' to '.join(dict.fromkeys([dates[0], dates[-1]]))} on {first['machine']}, "
        + ", ".join(f"{name} {version}" for name, version in sorted(versions.items()))
        + "; every ratio is torchvision's median over ours, measured in the same run "
        f"(`{command}` rewrites this table from `{source}/`).",
        "",
        "| what | ours | torchvision | torchvision / ours | record |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name in ("bench_end_to_end", "bench_end_to_end_reused"):
        lines += _inference_rows(records.get(name), name)
    for name in ("bench_train_step", "bench_train_step_reused", "bench_train_step_channels_last"):
        lines += _training_rows(records.get(name), name)
    lines += _nms_rows(records.get("bench_nms"), "bench_nms", NMS_CASES)
    crowded = {case: f"{NMS_CASES[case]}, on crowded slides" for case in RECORDED_NMS_CASES}
    lines += _nms_rows(records.get("bench_nms_crowded"), "bench_nms_crowded", crowded)
    lines += _operator_rows(records.get("bench_ops"))
    return "\n".join(lines) + "\n"


def _row(what: str, ours: str, theirs: str, ratio: float, record: str) -> str:
    return f"| {what} | {ours} | {theirs} | **{ratio:.2f}x** | `{record}` |"


def _milliseconds(value: float) -> str:
    """A time in ms: one decimal, two significant digits under 1 ms (0.04, not 0.0)."""
    return f"{value:.2g} ms" if value < 1 else f"{value:.1f} ms"


def _memory_label(record: dict, ours: str, theirs: str) -> str:
    """Which sides' processes kept freed memory for reuse (``--reuse-freed-memory``) and
    ran in NHWC layout (``--channels-last``)."""
    label = ""
    for option, what in (
        ("reuse_freed_memory", "reusing freed memory"),
        ("channels_last", "channels-last"),
    ):
        sides = set(record.get(option, ()))
        if ours in sides and theirs in sides:
            label += f", both {what}"
        elif ours in sides:
            label += f", ours {what}"
    return label


def _inference_rows(record: dict | None, name: str) -> list[str]:
    if record is None:
        return []
    rows = []
    height, width = record["image"]
    for preset, result in record["presets"].items():
        theirs = result.get("torchvision_eager")
        for arm, label in (("ours_eager", "eager"), ("ours_fast", "rewritten")):
            if theirs is None or arm not in result:
                continue
            ours = result[arm]["median_s"]
            label += _memory_label(record, arm, "torchvision_eager")
            rows.append(
                _row(
                    f"`{preset}` inference, one {height}x{width} image, {label}",
                    f"{ours:.2f} s",
                    f"{theirs['median_s']:.2f} s",
                    theirs["median_s"] / ours,
                    name,
                )
            )
    return rows


def _training_rows(record: dict | None, name: str) -> list[str]:
    if record is None:
        return []
    rows = []
    height, width = record["images"][0]
    memory = _memory_label(record, "ours", "torchvision")
    for preset, result in record["presets"].items():
        ours, theirs = result["ours"], result["torchvision"]
        rows.append(
            _row(
                f"`{preset}` training step, 2 images of {height}x{width}{memory} (peak memory)",
                f"{ours['median_s']:.2f} s ({ours['peak_rss_gb']:.1f} GB)",
                f"{theirs['median_s']:.2f} s ({theirs['peak_rss_gb']:.1f} GB)",
                result["torchvision_over_ours"],
                name,
            )
        )
    return rows


def _nms_rows(record: dict | None, name: str, labels: dict[str, str]) -> list[str]:
    """A row for each case of ``labels`` that the record ``name`` has."""
    if record is None:
        return []
    rows = []
    for case, label in labels.items():
        result = record["cases"].get(case)
        if result is None:
            continue
        inputs = "" if result["inputs"] == 1 else f" (median of {result['inputs']} inputs)"
        rows.append(
            _row(
                label + inputs,
                _milliseconds(result["ours_ms"]),
                _milliseconds(result["torchvision_ms"]),
                result["torchvision_over_ours"],
                name,
            )
        )
    return rows


def _operator_rows(record: dict | None) -> list[str]:
    """RoIAlign (forward, and with its backward) and the RPN's anchor assignment."""
    if record is None:
        return []
    rows = []
    for name, result in record["operators"].items():
        if "torchvision_ms" not in result:
            continue
        if name.startswith("roi_align"):
            what = name.replace("roi_align", "RoIAlign,", 1)
        elif name.startswith("anchor assignment"):
            what = name.replace("anchor assignment", "RPN anchor assignment,", 1)
        else:
            continue
        rows.append(
            _row(
                what,
                _milliseconds(result["ours_ms"]),
                _milliseconds(result["torchvision_ms"]),
                result["torchvision_over_ours"],
                "bench_ops",
            )
        )
    return rows


if __name__ == "__main__":
    main()
