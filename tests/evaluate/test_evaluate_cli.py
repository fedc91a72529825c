"""``faster-rcnn evaluate`` writes metrics.json and the recall plots, by default beside the
model."""

from __future__ import annotations

import json
import shutil

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


def test_a_checkpoints_figures_go_to_its_run_where_its_next_checkpoints_leave_them(
    tmp_path, capsys
) -> None:
    """The default beside a checkpoint's model was inside the checkpoint's folder, which
    the run's next checkpoint replaces whole and a run trained over it removes: the
    figures went silently. They go to the run's evaluation/<stage>; a checkpoint's
    .previous (a cut-off save) is its stage's, a copy renamed out of its run keeps its own."""
    run = tmp_path / "run"
    train = ["train", "--data", "synthetic:2", *TINY, "--out", str(run)]
    for folder, options in (("joint", ()), ("fast_rcnn", ("--scheme", "alternating"))):
        assert main([*train, "--steps", "4", *options]) == 0  # the second replaces the first
        model = run / folder / "model.safetensors"
        assert main(["evaluate", "--model", str(model), "--data", "synthetic:3"]) == 0
        assert f"wrote {run / 'evaluation' / folder}/metrics.json" in capsys.readouterr().out
    assert main([*train, "--steps", "1"]) == 0  # replaces the alternating run
    assert main([*train, "--steps", "2", "--resume"]) == 0
    for folder in ("joint", "fast_rcnn"):
        assert (run / "evaluation" / folder / "recall_by_size.png").is_file()
    assert not (run / "joint" / "evaluation").exists()
    (run / "joint").rename(run / "joint.previous")
    copy = tmp_path / "copy"
    shutil.copytree(run / "joint.previous", copy)  # out of its run
    capsys.readouterr()
    for checkpoint, out in ((run / "joint.previous", run / "evaluation/joint"), (copy, None)):
        model = checkpoint / "model.safetensors"
        assert main(["evaluate", "--model", str(model), "--data", "synthetic:3"]) == 0
        assert f"wrote {out or copy / 'evaluation'}/metrics.json" in capsys.readouterr().out


def test_the_out_help_names_the_default(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    printed = " ".join(capsys.readouterr().out.split())
    assert "default: the folder 'evaluation' beside --model; for a run's checkpoint" in printed
    assert "(RUN/joint/model.safetensors), RUN/evaluation/joint, which" in printed


def write_voc(root, splits: dict[str, list[list[tuple[str, list[int]]]]]) -> None:
    """A Pascal VOC folder of 96 x 96 grey images, split name -> images -> objects."""
    from PIL import Image

    for folder in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for split, images in splits.items():
        ids = [f"{split}{i}" for i in range(len(images))]
        for image_id, objects in zip(ids, images, strict=True):
            Image.new("RGB", (96, 96), (128, 128, 128)).save(
                root / "JPEGImages" / f"{image_id}.jpg"
            )
            boxes = "".join(
                f"<object><name>{name}</name><bndbox><xmin>{box[0]}</xmin><ymin>{box[1]}</ymin>"
                f"<xmax>{box[2]}</xmax><ymax>{box[3]}</ymax></bndbox></object>"
                for name, box in objects
            )
            (root / "Annotations" / f"{image_id}.xml").write_text(
                f"<annotation><size><width>96</width><height>96</height></size>{boxes}</annotation>"
            )
        (root / "ImageSets/Main" / f"{split}.txt").write_text("\n".join(ids) + "\n")


def test_splits_without_some_or_any_objects_say_why_figures_are_undefined(tmp_path, capsys) -> None:
    run = tmp_path / "run"
    assert main(["train", "--data", "synthetic:2", "--steps", "1", *TINY, "--out", str(run)]) == 0
    rectangle = ("rectangle", [10, 10, 60, 50])
    write_voc(tmp_path / "voc", {"some": [[rectangle], [rectangle]], "none": [[], []]})
    capsys.readouterr()
    model = str(run / "model.safetensors")
    evaluate = ["evaluate", "--model", model, "--data", str(tmp_path / "voc"), "--score-thresh"]
    assert main([*evaluate, "0.001", "--split", "some", "--out", str(tmp_path / "some")]) == 0
    printed = capsys.readouterr().out
    assert "nan" not in printed.lower()
    assert "ellipse       n/a       0" in printed
    assert "the mAP is the mean of the other 1 class" in printed
    assert main([*evaluate, "0.001", "--split", "none", "--out", str(tmp_path / "none")]) == 0
    printed = capsys.readouterr().out
    assert "nan" not in printed.lower()
    assert "images: 2\nno object to find in them (none annotated" in printed
    assert "mAP           n/a\n" in printed
    metrics = json.loads((tmp_path / "none" / "metrics.json").read_text())
    assert metrics["voc_map50"] is None and metrics["coco_ap"] is None


def test_a_detections_file_says_why_figures_are_undefined(tmp_path, capsys) -> None:
    images = [{"id": 1, "file_name": "a.jpg", "width": 100, "height": 100}]
    empty = {"images": images, "categories": [{"id": 1, "name": "cat"}], "annotations": []}
    one = {**empty, "annotations": [{"image_id": 1, "category_id": 1, "bbox": [10, 10, 50, 50]}]}
    detections = tmp_path / "detections.json"
    detections.write_text(
        json.dumps([{"image_id": 1, "category_id": 1, "bbox": [10, 10, 50, 50], "score": 0.9}])
    )
    for name, data in (("empty", empty), ("one", one)):
        (tmp_path / f"{name}.json").write_text(json.dumps(data))
    files = ["evaluate", "--detections", str(detections), "--coco-annotations"]
    assert main([*files, str(tmp_path / "empty.json")]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"n/a: {tmp_path / 'empty.json'} has no object to find in its images (none, or each "
        "a crowd region): every figure is undefined"
    )
    assert main([*files, str(tmp_path / "one.json")]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[-2].startswith("AP 1.0000") and "APs n/a" in printed[-2]
    assert printed[-1] == "n/a: no object of that size to find"
