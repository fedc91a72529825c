"""``faster-rcnn evaluate`` writes metrics.json and the recall plots, by default beside the
model."""

from __future__ import annotations

import json

import pytest

from faster_rcnn.cli import main

TINY = ["--min-size", "96", "--max-size", "128"]
STEMS = ("recall_vs_iou", "recall_vs_proposals", "recall_by_size")


def test_evaluate_writes_the_plots_beside_the_model_by_default(tmp_path, capsys) -> None:
    run = tmp_path / "run"
    assert main(["train", "--data", "synthetic:2", "--steps", "1", *TINY, "--out", str(run)]) == 0
    capsys.readouterr()
    assert (
        main(["evaluate", "--model", str(run / "model.safetensors"), "--data", "synthetic:3"]) == 0
    )
    out = run / "evaluation"
    printed = capsys.readouterr().out
    plots = ", ".join(f"{stem}.png" for stem in STEMS)
    assert f"wrote {out}/metrics.json and the recall plots {plots}" in printed
    assert "(the model's detections use its 300)" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"recall@300@0.7/small", "num_gt/small", "proposals_per_image/mean"} <= set(metrics)
    for stem in STEMS:
        assert (out / f"{stem}.png").read_bytes().startswith(b"\x89PNG")
        assert json.loads((out / f"{stem}.json").read_text())["num_gt"] == metrics["num_gt"]


def test_the_out_help_names_the_default(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    assert "default: the folder 'evaluation' beside --model" in " ".join(
        capsys.readouterr().out.split()
    )
