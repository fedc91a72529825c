"""The command line end to end on tiny budgets: files written, metrics present, clear errors."""

import json
import math
import os
import re
import shutil
import signal
import sys
import warnings

import pytest
import safetensors.torch
import torch
from safetensors import SafetensorError

from faster_rcnn.cli import arguments, build_parser, main
from faster_rcnn.cli import train as train_cli
from faster_rcnn.cli.run_folder import scheme_of
from faster_rcnn.cli.train import run_length, uses_amp, uses_channels_last
from faster_rcnn.counted import counted
from faster_rcnn.data.dataset import read_image
from faster_rcnn.data.synthetic import SyntheticShapes
from faster_rcnn.fast_inference import optimize_for_inference
from faster_rcnn.host_memory import MemoryLevel
from faster_rcnn.insight.draw import to_pil
from faster_rcnn.model import FasterRCNN
from faster_rcnn.models import preset_config
from faster_rcnn.test_time_flips import TestTimeFlips
from faster_rcnn.train.alternating import STAGES
from faster_rcnn.train.checkpoint import (
    STATE_FILE,
    TrainingCheckpoint,
    load_model,
    read_model_config,
    save_model,
)
from faster_rcnn.train.rpn_only import rpn_trainer
from faster_rcnn.train.stops import TrainingInterrupted
from faster_rcnn.train.train_config import TrainConfig
from faster_rcnn.train.trainer import Trainer
from faster_rcnn.windowed_detection import WindowedDetection
from step_clock import clock_of_steps

TINY = ["--min-size", "96", "--max-size", "128"]


def test_train_evaluate_predict(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--data", "synthetic:8", "--steps", "3", "--cache-images", *TINY]
    assert main([*argv, "--out", str(out)]) == 0
    model = load_model(out / "model.safetensors")
    assert model.config.class_names == SyntheticShapes.class_names
    assert model.config.transform.min_size == (96,)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [0, 1, 2]
    assert "memory layout: " in capsys.readouterr().out

    metrics_dir = tmp_path / "eval"
    args = ["evaluate", "--model", str(out / "model.safetensors"), "--data", "synthetic:4"]
    assert main([*args, "--out", str(metrics_dir)]) == 0
    metrics = json.loads((metrics_dir / "metrics.json").read_text())
    assert {"voc_map50", "coco_ap", "recall@300@0.7", "AR@100"} <= set(metrics)
    assert "VOC mAP@0.5" in capsys.readouterr().out
    # A lower threshold only adds detections below those kept: no AP can drop.
    for thresh in ("0.001", "0.99"):
        assert main([*args, "--out", str(tmp_path / thresh), "--score-thresh", thresh]) == 0
        assert f"scoring detections down to score {thresh} (the model's threshold: 0.05)" in (
            capsys.readouterr().out
        )
    scored = {t: json.loads((tmp_path / t / "metrics.json").read_text()) for t in ("0.001", "0.99")}
    assert scored["0.001"]["voc_map50"] >= metrics["voc_map50"]
    assert scored["0.001"]["coco_ap"] >= metrics["coco_ap"]
    assert scored["0.99"]["voc_map50"] == 0.0  # three steps: nothing scores 0.99

    images = tmp_path / "images"
    images.mkdir()
    for i in range(2):
        to_pil(SyntheticShapes(2, image_size=(80, 120), seed=3)[i][0]).save(images / f"{i}.png")
    pred = tmp_path / "pred"
    model_file = str(out / "model.safetensors")
    args = ["predict", "--model", model_file, str(images), "--out", str(pred), "--score", "0"]
    assert main(args) == 0
    results = json.loads((pred / "detections.json").read_text())
    assert {r["file_name"] for r in results} <= {str(images / "0.png"), str(images / "1.png")}
    for r in results:
        x, y, w, h = r["bbox"]
        assert w >= 0 and h >= 0 and x >= 0 and y >= 0 and x + w <= 120.01 and y + h <= 80.01
        assert r["category_name"] == SyntheticShapes.class_names[r["category_id"] - 1]
    assert sorted(p.name for p in pred.glob("*.png")) == [
        "0.png",
        "0_proposals.png",
        "1.png",
        "1_proposals.png",
    ]


def test_demo_writes_model_metrics_and_pictures(tmp_path):
    out = tmp_path / "demo"
    out.mkdir()
    # An earlier training run's record: evaluate would take it for the demo model's.
    (out / "training_splits.json").write_text('{"data": "synthetic:4", "splits": ["train"]}')
    assert main(["demo", "--minutes", "0.05", "--out", str(out), "--test-images", "8"]) == 0
    assert (out / "model.safetensors").is_file()
    assert not (out / "training_splits.json").exists()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["num_images"] == 8
    assert len(list((out / "pictures").glob("*_detections.png"))) == 8


@pytest.mark.parametrize(
    ("options", "bfloat16", "amp", "printed"),
    [([], True, True, 1), ([], False, False, 1), (["--no-amp"], True, False, 0)],
)
def test_demo_trains_in_the_precision_train_would_choose(
    monkeypatch, capsys, tmp_path, options, bfloat16, amp, printed
):
    monkeypatch.setattr("faster_rcnn.train.precision.cpu_has_bfloat16", lambda: bfloat16)
    chosen = []

    class StopAtTheTrainer:
        def __init__(self, model, dataset, cfg, **kwargs):
            chosen.append(cfg.amp)
            raise KeyboardInterrupt

    monkeypatch.setattr("faster_rcnn.cli.demo.Trainer", StopAtTheTrainer)
    argv = ["demo", "--minutes", "0.05", "--out", str(tmp_path), *options]
    assert main(argv) == 128 + signal.SIGINT
    assert chosen == [amp]
    lines = [x for x in capsys.readouterr().out.splitlines() if x.startswith("precision:")]
    assert len(lines) == printed


def test_demo_amp_without_bfloat16_is_one_line(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr("faster_rcnn.train.precision.cpu_has_bfloat16", lambda: False)
    assert main(["demo", "--amp", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "--amp needs a CUDA device or a CPU with bfloat16 instructions" in err
    assert not any(tmp_path.iterdir())


def test_a_split_no_split_fits_is_named_as_the_split_flag(capsys):
    """The splits were a Python list, and the name given was not said to be --split's."""
    argv = ["train", "--data", "synthetic:2", "--split", "nonexistent", "--steps", "1", *TINY]
    assert main(argv) == 2
    assert capsys.readouterr().err == (
        "faster-rcnn: error: --split nonexistent: synthetic:2 (synthetic) has the splits "
        "train, val, test; none fits\n"
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["evaluate", "--model", "absent.safetensors"], "error: --model absent.safetensors does "),
        (["export", "--model", "absent.safetensors"], "error: --model absent.safetensors does not"),
        (["explain", "--model", "absent.safetensors", "x.png"], "--model absent.safetensors does "),
        (["anchors", "--model", "absent.safetensors"], "error: --model absent.safetensors does "),
        (["evaluate", "--model", "."], "error: --model . is a folder with no model.safetensors"),
        (["train", "--data", "/no/such/dataset", "--steps", "1"], "/no/such/dataset"),
        (["predict", "--model", "m.safetensors", "absent.png"], "absent.png"),
        (["train", "--cache-images", "--workers", "2"], "--cache-images works with --workers 0"),
        (["train", "--color-jitter", "0.2", "0.2", "0.2", "0.6"], "HUE is at most 0.5 turns"),
        (
            ["train", "--data", "absent", "--box-nms-thresh", "0.4", "--soft-nms", "0.5"],
            "--box-nms-thresh 0.4 sets greedy NMS, which --soft-nms 0.5 replaces",
        ),
        (["predict", "--onnx", "m.onnx", "x.png", "--tta", "both"], "--tta runs a --model"),
        (["predict", "--onnx", "m.onnx", "x.png", "--windows"], "--windows runs a --model"),
        (
            ["predict", "--onnx", "m.onnx", "x.png", "--window-overlap", "0.5"],
            "error: --window-overlap runs a --model",
        ),
        (
            ["evaluate", "--model", "absent.safetensors", "--window-overlap", "0.5"],
            "--window-overlap sets how --windows overlap: give --windows too",
        ),
        (
            ["evaluate", "--model", "absent.safetensors", "--windows", "64"],
            "--windows takes H W, or no values for the model's own, got 64",
        ),
        (["evaluate", "--model", "m.onnx"], "error: --model m.onnx is an exported ONNX model"),
        (["predict", "--onnx", "m.onnx", "x.png", "--split", "test"], "image files have none"),
    ],
)
def test_user_mistakes_are_one_line(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.onnx").write_bytes(b"\x08\x07")  # the start of an ONNX protobuf
    if argv[:2] == ["predict", "--model"]:
        main(["train", "--data", "synthetic:2", "--steps", "1", "--out", "r", *TINY])
        argv = ["predict", "--model", "r/model.safetensors", "absent.png"]
        capsys.readouterr()  # the training output
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("faster-rcnn: error:") and message in err and "\n" not in err


@pytest.mark.parametrize("scheme", ["rpn", "alternating"])
def test_other_training_schemes_write_a_loadable_model(tmp_path, scheme):
    out = tmp_path / scheme
    argv = ["train", "--data", "synthetic:4", "--steps", "4", "--scheme", scheme, *TINY]
    assert main([*argv, "--out", str(out)]) == 0
    model = load_model(out / "model.safetensors")
    detections, proposals = model.detect_with_proposals([SyntheticShapes(1)[0][0]])
    assert len(detections) == 1 and len(proposals[0]["boxes"]) > 0


@pytest.mark.parametrize("device", ["gpu0", "cuda:7"])
def test_a_device_this_machine_lacks_is_named_with_those_it_has(device, capsys):
    if device.startswith("cuda") and torch.cuda.device_count() > 7:
        pytest.skip("this machine has that device")
    with pytest.raises(SystemExit) as info:
        main(["evaluate", "--model", "m.safetensors", "--device", device])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"no device '{device}' here; available: cpu" in err and "Traceback" not in err


def test_the_cpu_named_by_its_index_trains_as_the_cpu(tmp_path, capsys):
    """torch names the one CPU cpu:0 too; it was refused as a device this machine lacks."""
    assert arguments.device_name("cpu:0") == "cpu"
    argv = ["train", "--data", "synthetic:2", "--preset", "small", "--steps", "1", *TINY]
    assert main([*argv, "--device", "cpu:0", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "model.safetensors").exists()
    with pytest.raises(SystemExit):
        main([*argv, "--device", "cpu:1", "--out", str(tmp_path / "other")])
    assert "no device 'cpu:1' here; available: cpu" in capsys.readouterr().err


def test_options_that_make_no_model_are_refused_before_the_data_is_read(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--data", str(tmp_path / "absent"), "--preset", "mobilenet_v2_fpn"]
    assert main([*argv, "--returned-layers", "7", "--out", str(out)]) == 2
    assert capsys.readouterr().err == (
        "faster-rcnn: error: --returned-layers 7: must be increasing stage indices in [0, 5] "
        "for mobilenet_v2_fpn\n"
    )
    assert not out.exists()


def test_non_approximate_training_of_a_roipool_preset_is_refused_before_the_data_is_read(
    tmp_path, capsys
):
    """The refusal came only once the data was read and the recipe had counted its objects
    (four minutes on the 2000 generated shapes)."""
    out = tmp_path / "run"
    argv = ["train", "--data", str(tmp_path / "absent"), "--preset", "paper_vgg16"]
    assert main([*argv, "--scheme", "non-approximate", "--out", str(out)]) == 2
    assert capsys.readouterr().err == (
        "faster-rcnn: error: non-approximate joint training needs RoIAlign (pooler 'align'): "
        "RoIPool's quantised bins pass no gradient to the box coordinates\n"
    )
    assert not out.exists()


def test_a_preset_meant_for_imagenet_weights_warns_without_them(tmp_path, capsys):
    argv = ["train", "--data", "synthetic:2", "--steps", "1", "--preset", "mobilenet_v2_fpn"]
    assert main([*argv, *TINY, "--out", str(tmp_path)]) == 0
    assert "no --weights were given: those layers stay random" in capsys.readouterr().err


def test_train_fine_tunes_from_a_model_file_and_says_what_it_took(tmp_path, capsys):
    assert (
        main(
            ["train", "--data", "synthetic:2", "--steps", "1", *TINY, "--out", str(tmp_path / "a")]
        )
        == 0
    )
    weights = tmp_path / "a" / "model.safetensors"
    capsys.readouterr()
    argv = ["train", "--data", "slides:2", "--steps", "1", *TINY, "--weights", str(weights)]
    assert main([*argv, "--out", str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    assert f"{weights}: loaded 124 tensors (a whole detector)\n" in out
    assert (
        "  the box predictor starts fresh: none of the data's classes is among the file's "
        "(rectangle, ellipse, triangle)\n"
    ) in out
    assert load_model(tmp_path / "b" / "model.safetensors").config.class_names == (
        "cell",
        "platelet",
        "leukocyte",
    )


def test_a_detector_of_another_backbone_as_weights_is_one_line_before_any_writing(tmp_path, capsys):
    coco = FasterRCNN.from_config(preset_config("mobilenet_v3_large_fpn", 91)).state_dict()
    torch.save(coco, tmp_path / "coco.pth")
    argv = ["train", "--data", "synthetic:2", "--steps", "1", *TINY, "--out", str(tmp_path / "r")]
    assert main([*argv, "--weights", str(tmp_path / "coco.pth")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        f"faster-rcnn: error: --weights {tmp_path / 'coco.pth'}: its backbone is not this "
        "preset's (backbone.body."
    )
    assert err.endswith("train with the preset it was trained with\n") and err.count("\n") == 1
    assert not (tmp_path / "r").exists()


def test_predict_goes_on_past_an_unreadable_image(tmp_path, capsys):
    main(["train", "--data", "synthetic:2", "--steps", "1", "--out", str(tmp_path / "r"), *TINY])
    images = tmp_path / "images"
    images.mkdir()
    to_pil(SyntheticShapes(1, image_size=(80, 120), seed=3)[0][0]).save(images / "good.png")
    (images / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    capsys.readouterr()
    model = str(tmp_path / "r" / "model.safetensors")
    args = ["predict", "--model", model, str(images), "--out", str(tmp_path / "p"), "--score", "0"]
    assert main(args) == 1
    out, err = capsys.readouterr()
    assert "in 1 image (1 skipped)" in out
    assert re.search(r"^faster-rcnn: warning: cannot read image .*bad\.png.*; skipped$", err, re.M)
    results = json.loads((tmp_path / "p" / "detections.json").read_text())
    assert {r["file_name"] for r in results} <= {str(images / "good.png")}
    assert (tmp_path / "p" / "good_proposals.png").is_file()


def test_predict_warns_that_it_detects_the_first_frame_of_an_animated_image(tmp_path, capsys):
    """An animated PNG or GIF was detected as its first frame without a word: one warning
    per such file, none for a still image."""
    main(["train", "--data", "synthetic:2", "--steps", "1", "--out", str(tmp_path / "r"), *TINY])
    images = tmp_path / "images"
    images.mkdir()
    frames = [to_pil(SyntheticShapes(1, image_size=(80, 120), seed=k)[0][0]) for k in range(3)]
    frames[0].save(images / "moving.png", save_all=True, append_images=frames[1:])
    frames[0].save(images / "still.png")
    frames[1].save(tmp_path / "named.gif", save_all=True, append_images=frames[2:])
    model = str(tmp_path / "r" / "model.safetensors")
    capsys.readouterr()
    args = ["predict", "--model", model, str(images), str(tmp_path / "named.gif")]
    assert main([*args, "--out", str(tmp_path / "p")]) == 0
    out, err = capsys.readouterr()
    assert err.splitlines() == [
        f"faster-rcnn: warning: {images / 'moving.png'}: only the first of its 3 frames is "
        "detected",
        f"faster-rcnn: warning: {tmp_path / 'named.gif'}: only the first of its 2 frames is "
        "detected",
    ]
    assert "in 3 images" in out


def test_predict_says_how_many_detections_its_pictures_draw(tmp_path, capsys):
    # A short run's detections score under the default 0.5: its pictures show none, and
    # the line saying how many it wrote must not let them pass for drawn.
    main(["train", "--data", "synthetic:2", "--steps", "1", "--out", str(tmp_path / "r"), *TINY])
    images = tmp_path / "images"
    images.mkdir()
    to_pil(SyntheticShapes(1, image_size=(80, 120), seed=3)[0][0]).save(images / "0.png")
    model = str(tmp_path / "r" / "model.safetensors")
    capsys.readouterr()
    args = ["predict", "--model", model, str(images), "--score", "0.05", "--out"]
    assert main([*args, str(tmp_path / "all")]) == 0
    scores = sorted(r["score"] for r in json.loads((tmp_path / "all/detections.json").read_text()))
    assert len(set(scores)) >= 2
    assert len(scores) == 100  # the model's limit (at_limit's note)
    everything = (
        f"100 detections in 1 image -> {tmp_path / 'all'}/detections.json; 1 image reached "
        "the model's 100 detections an image (roi_heads.detections_per_img), the "
        "lowest-scoring cut"
    )
    assert capsys.readouterr().out == (
        f"{everything}; the pictures draw 100, those scoring 0.05 or more (--score)\n"
    )
    # A threshold between two written scores, clear of their rounding.
    k = next(i for i in range(1, len(scores)) if scores[i] > scores[i - 1])
    threshold = (scores[k - 1] + scores[k]) / 2
    args[-2] = str(threshold)
    assert main([*args, str(tmp_path / "part")]) == 0
    assert capsys.readouterr().out.endswith(
        f"the pictures draw {len(scores) - k}, those scoring {threshold:g} or more (--score)\n"
    )


def test_predict_says_which_images_reached_the_model_s_detections_an_image(tmp_path, capsys):
    # A crowded image fills the limit: 1,100 detections in detections.json read as 1,100
    # found, not as the first 1,100 of more.
    args = ["--data", "synthetic:2", "--steps", "1", "--detections-per-image", "3"]
    main(["train", *args, "--out", str(tmp_path / "r"), *TINY])
    images = tmp_path / "images"
    images.mkdir()
    for seed in (3, 4):
        image = SyntheticShapes(1, image_size=(80, 120), seed=seed)[0][0]
        to_pil(image).save(images / f"{seed}.png")
    model = str(tmp_path / "r" / "model.safetensors")
    capsys.readouterr()
    out = tmp_path / "p"
    assert main(["predict", "--model", model, str(images), "--no-pictures", "--out", str(out)]) == 0
    assert len(json.loads((out / "detections.json").read_text())) == 6
    assert capsys.readouterr().out == (
        f"6 detections in 2 images -> {out}/detections.json; 2 images reached the model's 3 "
        "detections an image (roi_heads.detections_per_img), the lowest-scoring cut\n"
    )


def test_predict_names_the_pictures_of_an_earlier_run_that_stay_in_its_out(tmp_path, capsys):
    """An --out holding an earlier predict's pictures of images not detected this time:
    the last line names them, not to pass for this run's, and they stay (predict cannot
    tell them from a user's own); an image read from --out is this run's, a note no
    picture."""
    main(["train", "--data", "synthetic:2", "--steps", "1", "--out", str(tmp_path / "r"), *TINY])
    images, out = tmp_path / "images", tmp_path / "p"
    images.mkdir()
    for name, seed in [("a.png", 3), ("b.png", 4)]:
        to_pil(SyntheticShapes(1, image_size=(80, 120), seed=seed)[0][0]).save(images / name)
    predict = ["predict", "--model", str(tmp_path / "r" / "model.safetensors"), "--out", str(out)]
    assert main([*predict, str(images)]) == 0
    assert capsys.readouterr().out.endswith("or more (--score)\n")
    to_pil(SyntheticShapes(1, image_size=(80, 120), seed=5)[0][0]).save(out / "c.jpg")
    (out / "notes.txt").write_text("mine")
    assert main([*predict, str(images / "a.png"), str(out / "c.jpg")]) == 0
    assert capsys.readouterr().out.endswith(
        "or more (--score); 2 older pictures stay beside them, not this run's (b.png, "
        "b_proposals.png)\n"
    )
    assert sorted(path.name for path in out.iterdir()) == [
        "a.png",
        "a_proposals.png",
        "b.png",
        "b_proposals.png",
        "c.jpg",
        "c.png",
        "c_proposals.png",
        "detections.json",
        "notes.txt",
    ]


def test_predict_names_what_a_folder_holds_besides_images(tmp_path, capsys):
    """A folder is read as Ultralytics and detectron2's demo read one, the image files
    directly inside: the warning counts the rest, and names the pattern that reads its
    subfolders too, which then does."""
    main(["train", "--data", "synthetic:2", "--steps", "1", "--out", str(tmp_path / "r"), *TINY])
    images = tmp_path / "images"
    (images / "more" / "deeper").mkdir(parents=True)
    for seed, name in enumerate(("good.png", "more/deeper/deep.png")):
        to_pil(SyntheticShapes(1, image_size=(80, 120), seed=seed)[0][0]).save(images / name)
    for name in ("clip.mp4", "notes.txt", ".DS_Store"):
        (images / name).write_bytes(b"not read")
    capsys.readouterr()
    model = str(tmp_path / "r" / "model.safetensors")
    assert main(["predict", "--model", model, str(images), "--out", str(tmp_path / "p")]) == 0
    captured = capsys.readouterr()
    assert " in 1 image -> " in captured.out
    assert captured.err == (
        f"faster-rcnn: warning: {images}: 1 folder and 2 other files (.mp4, .txt) left out: "
        "predict reads the image files directly inside a folder (.jpg, .jpeg, .png, .bmp, "
        f'.webp, .tif, .tiff, .gif); a quoted "{images}/**/*" reads those in its subfolders '
        "too\n"
    )
    pattern = captured.err.split('"')[1]
    assert main(["predict", "--model", model, pattern, "--out", str(tmp_path / "all")]) == 0
    assert " in 2 images -> " in capsys.readouterr().out
    shutil.rmtree(images / "more")
    assert main(["predict", "--model", model, str(images), "--out", str(tmp_path / "q")]) == 0
    assert capsys.readouterr().err == (
        f"faster-rcnn: warning: {images}: 2 other files (.mp4, .txt) left out: predict reads "
        "the image files directly inside a folder (.jpg, .jpeg, .png, .bmp, .webp, .tif, "
        ".tiff, .gif)\n"
    )
    for name in ("clip.mp4", "notes.txt"):
        (images / name).unlink()
    assert main(["predict", "--model", model, str(images), "--out", str(tmp_path / "s")]) == 0
    assert capsys.readouterr().err == ""


def test_evaluate_and_predict_with_test_time_flips(tmp_path, capsys):
    main(["train", "--data", "synthetic:4", "--steps", "3", "--out", str(tmp_path / "r"), *TINY])
    model_file = tmp_path / "r" / "model.safetensors"
    capsys.readouterr()
    args = ["evaluate", "--model", str(model_file), "--data", "synthetic:4", "--tta", "both"]
    assert main([*args, "--out", str(tmp_path / "eval")]) == 0
    views = "as it is, mirrored left-right, mirrored top-bottom, turned half"
    assert f"each image detected 4 times ({views})" in capsys.readouterr().out
    assert (tmp_path / "eval" / "metrics.json").is_file()

    images = tmp_path / "images"
    images.mkdir()
    to_pil(SyntheticShapes(1, image_size=(80, 120), seed=3)[0][0]).save(images / "0.png")
    pred = tmp_path / "pred"
    args = ["predict", "--model", str(model_file), str(images), "--out", str(pred)]
    assert main([*args, "--score", "0.05", "--tta", "horizontal"]) == 0
    written = json.loads((pred / "detections.json").read_text())
    detector = TestTimeFlips(optimize_for_inference(load_model(model_file)), "horizontal")
    (expected,) = detector([read_image(images / "0.png")])
    assert len(written) == len(expected["scores"]) > 0
    for record, box, score in zip(written, expected["boxes"], expected["scores"], strict=True):
        x1, y1, x2, y2 = box.tolist()
        assert record["bbox"] == pytest.approx([x1, y1, x2 - x1, y2 - y1], abs=0.006)
        assert record["score"] == pytest.approx(float(score), abs=1e-5)


def test_evaluate_and_predict_in_windows(tmp_path, capsys):
    argv = ["train", "--data", "synthetic:4", "--steps", "3", "--train-window", "64", "64"]
    main([*argv, "--out", str(tmp_path / "r"), *TINY])
    model_file = tmp_path / "r" / "model.safetensors"
    capsys.readouterr()
    args = ["evaluate", "--model", str(model_file), "--data", "synthetic:4", "--windows"]
    assert main([*args, "--out", str(tmp_path / "eval")]) == 0
    assert (
        "windows of 64 x 64 at the model's scale (overlap 25%): each image resized to 96 px "
        "(longer side at most 128)" in capsys.readouterr().out
    )
    assert (tmp_path / "eval" / "metrics.json").is_file()

    images = tmp_path / "images"
    images.mkdir()
    to_pil(SyntheticShapes(1, image_size=(80, 120), seed=3)[0][0]).save(images / "0.png")
    pred = tmp_path / "pred"
    args = ["predict", "--model", str(model_file), str(images), "--out", str(pred)]
    args += ["--score", "0.05"]
    assert main([*args, "--windows", "48", "64", "--window-overlap", "0.5", "--tta", "both"]) == 0
    out = capsys.readouterr().out
    assert "windows of 48 x 64 at the model's scale (overlap 50%)" in out
    assert "test-time flips (both)" in out
    written = json.loads((pred / "detections.json").read_text())
    windows = WindowedDetection(optimize_for_inference(load_model(model_file)), (48, 64), 0.5)
    (expected,) = TestTimeFlips(windows, "both")([read_image(images / "0.png")])
    assert len(written) == len(expected["scores"]) > 0
    for record, box, score in zip(written, expected["boxes"], expected["scores"], strict=True):
        x1, y1, x2, y2 = box.tolist()
        assert record["bbox"] == pytest.approx([x1, y1, x2 - x1, y2 - y1], abs=0.006)
        assert record["score"] == pytest.approx(float(score), abs=1e-5)


def test_windows_of_a_model_trained_on_whole_images_are_refused_before_it_is_built(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    model = tmp_path / "m.safetensors"
    save_model(FasterRCNN.from_config(preset_config("small", 2)), model)
    monkeypatch.setattr(FasterRCNN, "from_config", None)  # building it would fail
    for command in (
        ["evaluate", "--model", str(model)],
        ["predict", "--model", str(model), "x.png"],
    ):
        assert main([*command, "--windows"]) == 2
        assert capsys.readouterr().err == (
            f"faster-rcnn: error: --windows without H W detects in the windows --model {model} "
            "was trained on, but it was trained on whole images (no train --train-window): "
            "give --windows H W\n"
        )


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--windows", "16", "800"], "argument --windows: must be at least 32 px, got 16"),
        (["--windows", "--window-overlap", "1"], "must be at least 0 and below 1, got 1"),
    ],
)
def test_a_window_under_32_px_or_an_overlap_of_1_is_refused(flags, message, capsys):
    with pytest.raises(SystemExit) as info:
        main(["evaluate", "--model", "m.safetensors", *flags])
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_alternating_shares_minutes_among_its_four_steps_in_channels_last(tmp_path, monkeypatch):
    out = tmp_path / "alt"
    argv = ["train", "--data", "synthetic:8", "--scheme", "alternating", "--minutes", "0.05"]
    argv += ["--steps", "100000", "--batch-size", "1", "--min-size", "64", "--max-size", "64"]
    clock_of_steps(monkeypatch, 0.35)
    assert main([*argv, "--channels-last", "--out", str(out)]) == 0
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = {stage: sum(r["stage"] == stage for r in records) for stage in STAGES}
    # Each step gets 2:1:2:1 of the 3 s left as it starts, and starts no training step
    # that would end past its share (the first always runs): rpn 1 s (0.35 s a step: 2
    # steps, 0.7 s), fast_rcnn 2.3 / 4 = 0.575 s (1, 0.35), rpn_finetune 1.95 * 2 / 3 =
    # 1.3 s (3, 1.05), fast_rcnn_finetune 0.9 s (2, 0.7).
    assert list(steps.values()) == [2, 1, 3, 2]
    seconds = [r["seconds"] for r in records]
    assert seconds == [pytest.approx(0.35)] * 8
    assert sum(seconds) <= 3.0  # within the budget
    assert load_model(out / "model.safetensors").config.class_names == SyntheticShapes.class_names


def test_a_budget_of_few_slow_steps_ends_its_warmup_and_decays(tmp_path, monkeypatch, capsys):
    """3 s of 0.35 s steps: at step 3 the 3 steps timed say 3 + 1.95 / 0.35 = 8 fit, and
    the warm-up (50 steps, at most half of a --minutes run) is 4 steps of the 8: steps 4-7
    train at the cosine's rate, not at a tenth of it."""
    out = tmp_path / "run"
    argv = ["train", "--data", "synthetic:8", "--minutes", "0.05", "--steps", "100000"]
    argv += ["--batch-size", "1", "--min-size", "64", "--max-size", "64", "--out", str(out)]
    clock_of_steps(monkeypatch, 0.35)
    assert main(argv) == 0
    assert (
        "joint: stopped after 8 steps: 2.8 s of the 3 s budget spent, and a step takes about "
        "0.35 s (the median of the last 5 steps): the next would end past the budget"
    ) in capsys.readouterr().out
    state = torch.load(out / "joint" / STATE_FILE, weights_only=True)
    settings = state["train_config"]
    assert settings["schedule"] == "cosine"
    assert (settings["warmup_steps"], settings["warmup_factor"]) == (50, 0.1)
    lr, scale = settings["lr"], state["lr_scale"] or 1.0
    rates = [json.loads(line)["lr"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    # Steps 0-2 are laid over the 100000 steps (a warm-up of 50), 3-7 over 8 (of 4).
    warming = [lr * (0.1 + 0.9 * step / 50) for step in range(3)]
    cosine = [lr * scale * (1 + math.cos(math.pi * step / 8)) / 2 for step in range(3, 8)]
    cosine[0] *= 0.1 + 0.9 * 3 / 4
    assert rates == pytest.approx(warming + cosine)
    assert settings["warmup_share"] == 2


def test_alternating_steps_count_its_four_stages_together(tmp_path, capsys):
    """--steps for the alternating scheme are its four stages' together, split 2:1:2:1 to
    the step (5: 2:1:1:1), and said so; under 4 a stage would have none: refused in one
    line before the data is read."""
    out = tmp_path / "alt"
    argv = ["train", "--data", str(tmp_path / "absent"), "--scheme", "alternating"]
    argv += ["--min-size", "64", "--max-size", "64", "--out", str(out)]
    assert main([*argv, "--steps", "3"]) == 2
    assert capsys.readouterr().err == (
        "faster-rcnn: error: --steps 3: the alternating scheme runs four stages, split "
        "2:1:2:1, each at least one step; give at least 4\n"
    )
    assert not out.exists()
    argv[2] = "synthetic:4"
    assert main([*argv, "--steps", "5"]) == 0
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [sum(r["stage"] == stage for r in records) for stage in STAGES] == [2, 1, 1, 1]
    assert (
        "alternating: 5 steps (rpn 2, fast_rcnn 1, rpn_finetune 1, fast_rcnn_finetune 1) in "
    ) in capsys.readouterr().out
    # Resumed: the steps are the run's, the time this process's alone.
    assert main([*argv, "--steps", "6", "--resume"]) == 0
    said = capsys.readouterr().out
    assert re.search(r"alternating: \d+ steps \(.*\), this run's part in \d+ s\n", said), said


@pytest.mark.parametrize(
    ("options", "preset", "device", "capability", "expected"),
    [
        ([], "resnet50_fpn", "cpu", "AVX512", True),
        ([], "mobilenet_v2_fpn", "cpu", "AVX512", True),
        ([], "resnet50_fpn", "cpu", "AVX2", False),
        ([], "paper_vgg16", "cpu", "AVX2", False),
        ([], "mobilenet_v2_fpn", "cpu", "AVX2", True),
        ([], "mobilenet_v3_large_320_fpn", "cpu", "AVX2", True),
        ([], "small", "cpu", "DEFAULT", True),
        (["--no-channels-last"], "mobilenet_v2_fpn", "cpu", "AVX512", False),
        (["--channels-last"], "resnet50_fpn", "cpu", "AVX2", True),
        ([], "mobilenet_v2_fpn", "cuda", "AVX512", False),
    ],
)
def test_training_runs_channels_last_where_it_was_measured_faster(
    monkeypatch, options, preset, device, capability, expected
):
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    args = build_parser().parse_args(["train", "--data", "synthetic:2", *options])
    args.device = device  # set after parsing: the parser refuses a device this machine lacks
    assert uses_channels_last(args, preset_config(preset, 3)) is expected


@pytest.mark.parametrize(
    ("options", "device", "bfloat16", "expected"),
    [
        ([], "cpu", True, True),
        ([], "cpu", False, False),
        (["--no-amp"], "cpu", True, False),
        ([], "cuda", True, False),
        (["--amp"], "cuda", False, True),
    ],
)
def test_training_is_mixed_precision_by_default_on_a_cpu_with_bfloat16(
    monkeypatch, options, device, bfloat16, expected
):
    monkeypatch.setattr("faster_rcnn.train.precision.cpu_has_bfloat16", lambda: bfloat16)
    args = build_parser().parse_args(["train", "--data", "synthetic:2", *options])
    args.device = device  # set after parsing: the parser refuses a device this machine lacks
    assert uses_amp(args) is expected


@pytest.mark.parametrize(("bfloat16", "line"), [(True, "bfloat16 mixed"), (False, "float32")])
def test_train_says_which_precision_it_chose_on_a_cpu(
    monkeypatch, capsys, tmp_path, bfloat16, line
):
    monkeypatch.setattr("faster_rcnn.train.precision.cpu_has_bfloat16", lambda: bfloat16)
    argv = ["train", "--data", "synthetic:2", "--steps", "1", *TINY, "--out", str(tmp_path)]
    assert main(argv) == 0
    printed = [x for x in capsys.readouterr().out.splitlines() if x.startswith("precision:")]
    assert len(printed) == 1 and line in printed[0]


def test_amp_on_a_cpu_without_bfloat16_is_one_line(monkeypatch, capsys):
    monkeypatch.setattr("faster_rcnn.train.precision.cpu_has_bfloat16", lambda: False)
    assert main(["train", "--data", "synthetic:2", "--amp"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--amp needs a CUDA device or a CPU with bfloat16 instructions" in err
    assert "\n" not in err


def test_predict_keeps_same_named_images_from_different_folders_apart(tmp_path):
    assert (
        main(
            ["train", "--data", "synthetic:2", "--steps", "1", *TINY, "--out", str(tmp_path / "r")]
        )
        == 0
    )
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        to_pil(SyntheticShapes(1, image_size=(64, 80), seed=ord(folder))[0][0]).save(
            tmp_path / folder / "img.png"
        )
    (tmp_path / "a" / "other.png").write_bytes((tmp_path / "a" / "img.png").read_bytes())
    out = tmp_path / "pred"
    argv = ["predict", "--model", str(tmp_path / "r" / "model.safetensors"), "--out", str(out)]
    assert main([*argv, str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    pictures = sorted(p.name for p in out.glob("*.png"))
    assert pictures == [
        "a_img_png.png",
        "a_img_png_proposals.png",
        "b_img_png.png",
        "b_img_png_proposals.png",
        "other.png",
        "other_proposals.png",
    ]


def test_predict_writes_no_picture_over_another(tmp_path):
    """``a_proposals.jpg``'s detections picture would be ``a.jpg``'s proposals picture."""
    run = tmp_path / "r"
    assert main(["train", "--data", "synthetic:2", "--steps", "1", *TINY, "--out", str(run)]) == 0
    images = tmp_path / "coll"
    images.mkdir()
    for seed, name in enumerate(("a.jpg", "a_proposals.jpg")):
        to_pil(SyntheticShapes(1, image_size=(64, 80), seed=seed)[0][0]).save(images / name)
    out = tmp_path / "pc"
    argv = ["predict", "--model", str(run / "model.safetensors"), str(images), "--out", str(out)]
    assert main(argv) == 0
    assert sorted(p.name for p in out.glob("*.png")) == [
        "a_jpg.png",
        "a_jpg_proposals.png",
        "a_proposals_jpg.png",
        "a_proposals_jpg_proposals.png",
    ]


def test_predict_refuses_an_out_where_its_pictures_would_replace_its_images(tmp_path, capsys):
    """``--out`` the images' own folder wrote ``a.png``'s picture over ``a.png``."""
    model = tmp_path / "model.safetensors"
    save_model(FasterRCNN.from_config(preset_config("small", 2)), model)
    images = tmp_path / "images"
    images.mkdir()
    to_pil(SyntheticShapes(1, image_size=(64, 80))[0][0]).save(images / "a.png")
    before = (images / "a.png").read_bytes()
    argv = ["predict", "--model", str(model), str(images / "a.png"), "--out", str(images)]
    assert main(argv) == 2
    assert capsys.readouterr().err == (
        f"faster-rcnn: error: --out {images}: the picture a.png would replace the image "
        f"{images / 'a.png'} it is drawn from; choose another --out\n"
    )
    assert (images / "a.png").read_bytes() == before
    assert sorted(p.name for p in images.iterdir()) == ["a.png"]


def test_predict_writes_and_draws_detections_under_the_head_s_threshold_score_asks_for(
    tmp_path, capsys
):
    """The box head returns nothing under its own 0.05: ``--score 0.001`` drew and wrote
    nothing under 0.05, saying it drew every detection scoring 0.001 or more."""
    model = tmp_path / "model.safetensors"  # untrained, of 90 classes: scores about 1/91
    save_model(FasterRCNN.from_config(preset_config("small", 91)), model)
    images = tmp_path / "images"
    images.mkdir()
    to_pil(SyntheticShapes(1, image_size=(80, 120), seed=3)[0][0]).save(images / "0.png")
    argv = ["predict", "--model", str(model), images, "--score", "0.001", "--out", tmp_path]
    assert main([str(arg) for arg in argv]) == 0
    said = capsys.readouterr().out.splitlines()
    assert (
        said[0]
        == "writing and drawing detections down to score 0.001 (the model's threshold: 0.05)"
    )
    scores = [r["score"] for r in json.loads((tmp_path / "detections.json").read_text())]
    assert min(scores) < 0.05 and min(scores) >= 0.001
    assert f"the pictures draw {len(scores)}, those scoring 0.001 or more" in said[1]


def test_predict_refuses_an_out_that_is_a_folder_it_reads(tmp_path, capsys):
    """``--out`` a folder named as input, or the folder of a pattern matching its
    pictures: no picture replaced ``a.jpg``, but a second run detected the first's a.png
    and a_proposals.png too, as 3 images, silently. A pattern no picture matches reads
    the images alone, run after run."""
    model = tmp_path / "model.safetensors"
    save_model(FasterRCNN.from_config(preset_config("small", 2)), model)
    images = tmp_path / "images"
    images.mkdir()
    to_pil(SyntheticShapes(1, image_size=(64, 80))[0][0]).save(images / "a.jpg")
    predict = ["predict", "--model", str(model), "--out", str(images)]
    for item, picture in [(images, "a.png"), (images / "a*", "a.png")]:
        assert main([*predict, str(item)]) == 2
        assert capsys.readouterr().err == (
            f"faster-rcnn: error: --out {images}: predict reads {item}, and would read the "
            f"picture {picture} it writes there as an image the next time; choose another "
            "--out\n"
        )
    assert sorted(p.name for p in images.iterdir()) == ["a.jpg"]
    for _ in range(2):
        assert main([*predict, str(images / "*.jpg")]) == 0
        assert " in 1 image -> " in capsys.readouterr().out


def test_predict_without_pictures_writes_the_same_detections_and_no_picture(tmp_path, capsys):
    """``--no-pictures``: detections.json alone, as with pictures, and the images' own
    folder is then an --out like any other, nothing written over or read back."""
    model = tmp_path / "model.safetensors"
    save_model(FasterRCNN.from_config(preset_config("small", 2)), model)
    images = tmp_path / "images"
    images.mkdir()
    to_pil(SyntheticShapes(1, image_size=(64, 80))[0][0]).save(images / "a.jpg")
    predict = ["predict", "--model", str(model), str(images), "--out"]
    assert main([*predict, str(tmp_path / "drawn")]) == 0
    drawn = capsys.readouterr().out
    assert main([*predict, str(images), "--no-pictures"]) == 0
    written = (tmp_path / "drawn" / "detections.json").read_text()
    assert (images / "detections.json").read_text() == written
    count = len(json.loads(written))
    assert count == 100  # the model's limit
    assert capsys.readouterr().out == (
        f"100 detections in 1 image -> {images}/detections.json; 1 image reached the model's "
        "100 detections an image (roi_heads.detections_per_img), the lowest-scoring cut\n"
    )
    assert drawn.startswith(f"{counted(count, 'detection')} in 1 image -> ")
    assert sorted(p.name for p in images.iterdir()) == ["a.jpg", "detections.json"]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_predict_stopped_keeps_the_detections_of_the_images_done(
    tmp_path, capsys, monkeypatch, signum
):
    """Ctrl-C or SIGTERM mid-run lost every detection, as detections.json was written at
    the end alone: the images done stay in it, valid JSON, and the last line says how
    many and that a rerun starts over."""
    from faster_rcnn.cli import predict as predict_cli

    model = tmp_path / "model.safetensors"
    save_model(FasterRCNN.from_config(preset_config("small", 2)), model)
    images = tmp_path / "images"
    images.mkdir()
    for k in range(4):
        to_pil(SyntheticShapes(1, image_size=(64, 80), seed=k)[0][0]).save(images / f"{k}.png")
    (images / "1.png").write_bytes(b"")
    predict = ["predict", "--model", str(model), str(images), "--score", "0", "--no-pictures"]
    assert main([*predict, "--out", str(tmp_path / "all")]) == 1
    every = json.loads((tmp_path / "all" / "detections.json").read_text())
    read = predict_cli.read_named_image

    def stopped_at_the_last(path):
        if path.name == "3.png":
            signal.raise_signal(signum)
        return read(path)

    monkeypatch.setattr(predict_cli, "read_named_image", stopped_at_the_last)
    capsys.readouterr()
    out = tmp_path / "stopped"
    assert main([*predict, "--out", str(out)]) == 128 + signum
    kept = json.loads((out / "detections.json").read_text())
    assert kept == [r for r in every if r["image_id"] in (0, 2)] and len(kept) == 200
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"faster-rcnn: interrupted by {signal.Signals(signum).name} after 3 of 4 images (1 "
        f"skipped): {out}/detections.json holds their 200 detections; a rerun detects every "
        "image again"
    )
    assert sorted(p.name for p in out.iterdir()) == ["detections.json"]


def test_predict_reads_a_named_file_as_uint8_levels_and_detects_what_the_float_image_gives(
    tmp_path,
):
    """A file named to predict was decoded to float32, four times a reader's uint8 item
    (576 MB of an 8000 x 6000 photo, not 144): its levels go to the model, which scales
    them itself, and the detections are the float image's to the bit."""
    from faster_rcnn.cli.predict import coco_records, read_named_image

    model_file = tmp_path / "model.safetensors"
    save_model(FasterRCNN.from_config(preset_config("small", 2)), model_file)
    photo = tmp_path / "photo.jpg"
    to_pil(SyntheticShapes(1, image_size=(80, 120), seed=3)[0][0]).save(photo)
    levels = read_named_image(photo)
    assert levels.dtype == torch.uint8 and levels.shape == (3, 80, 120)
    assert torch.equal(levels.float() / 255, read_image(photo))
    out = tmp_path / "p"
    argv = ["predict", "--model", str(model_file), str(photo), "--score", "0", "--out", str(out)]
    assert main(argv) == 0
    model = optimize_for_inference(load_model(model_file)).eval()
    with torch.no_grad():
        (float_detections,) = model([read_image(photo)])
    expected = coco_records(float_detections, 0, photo, ("class1",))
    assert len(expected) == 100
    assert json.loads((out / "detections.json").read_text()) == json.loads(json.dumps(expected))


def test_predict_replaces_the_unfinished_file_of_a_killed_run_and_says_so(tmp_path, capsys):
    """A run killed outright leaves detections.json.partial beside an earlier run's
    detections.json: the next run emptied it without a word. It says it replaces it, and
    leaves its own detections.json alone."""
    model = tmp_path / "model.safetensors"
    save_model(FasterRCNN.from_config(preset_config("small", 2)), model)
    image = tmp_path / "a.png"
    to_pil(SyntheticShapes(1, image_size=(64, 80), seed=0)[0][0]).save(image)
    out = tmp_path / "p"
    out.mkdir()
    partial = out / "detections.json.partial"
    partial.write_text('[\n{"image_id": 0, "file_name": "killed.jpg", "bbox": [1, 2, 3, 4]},\n{"im')
    (out / "detections.json").write_text("[]\n")
    predict = ["predict", "--model", str(model), str(image), "--no-pictures", "--out", str(out)]
    assert main(predict) == 0
    assert capsys.readouterr().err == (
        f"faster-rcnn: warning: {partial}: the unfinished detections of an earlier run, "
        "killed before it ended, are replaced by this run's\n"
    )
    detected = json.loads((out / "detections.json").read_text())
    assert len(detected) == 100 and {d["file_name"] for d in detected} == {str(image)}
    assert sorted(p.name for p in out.iterdir()) == ["detections.json"]
    assert main(predict) == 0
    assert capsys.readouterr().err == ""


def test_predict_refuses_an_out_whose_detections_another_run_is_writing(tmp_path, capsys):
    """Two runs into one --out: the second emptied the first's detections.json.partial
    and both wrote into it. The writer holds a lock on it; the second run is refused in
    one line, the file left whole, and the lock goes with the writer."""
    fcntl = pytest.importorskip("fcntl")
    model = tmp_path / "model.safetensors"
    save_model(FasterRCNN.from_config(preset_config("small", 2)), model)
    image = tmp_path / "a.png"
    to_pil(SyntheticShapes(1, image_size=(64, 80), seed=0)[0][0]).save(image)
    out = tmp_path / "p"
    out.mkdir()
    partial = out / "detections.json.partial"
    written = '[\n{"image_id": 0, "file_name": "other.jpg", "bbox": [1, 2, 3, 4]}'
    predict = ["predict", "--model", str(model), str(image), "--no-pictures", "--out", str(out)]
    with partial.open("w") as writer:
        writer.write(written)
        writer.flush()
        fcntl.flock(writer, fcntl.LOCK_EX)
        assert main(predict) == 2
        assert capsys.readouterr().err == (
            f"faster-rcnn: error: {partial} is being written by another predict run: wait "
            "for it to end, or choose another --out\n"
        )
        assert partial.read_text() == written
        assert sorted(p.name for p in out.iterdir()) == ["detections.json.partial"]
    assert main(predict) == 0
    assert "replaced by this run's" in capsys.readouterr().err
    assert len(json.loads((out / "detections.json").read_text())) == 100


def test_predict_shows_its_progress_through_the_images_on_a_terminal(tmp_path, capsys, monkeypatch):
    """Thousands of images at a second or two each went by without a word until the
    last line: a bar counts them where stderr is a terminal, and leaves a log alone."""
    model = tmp_path / "model.safetensors"
    save_model(FasterRCNN.from_config(preset_config("small", 2)), model)
    images = tmp_path / "images"
    images.mkdir()
    for k in range(3):
        to_pil(SyntheticShapes(1, image_size=(64, 80), seed=k)[0][0]).save(images / f"{k}.png")
    predict = ["predict", "--model", str(model), str(images), "--no-pictures", "--out"]
    assert main([*predict, str(tmp_path / "logged")]) == 0
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert main([*predict, str(tmp_path / "seen")]) == 0
    assert re.search(r"\rpredict: 100%\|[^|]*\| 3/3 \[", capsys.readouterr().err)


def test_gradient_clipping_is_set_from_the_command_line_and_norms_are_logged(tmp_path):
    out = tmp_path / "clip"
    argv = ["train", "--data", "synthetic:2", "--steps", "2", "--grad-clip-norm", "0.5", *TINY]
    assert main([*argv, "--out", str(out)]) == 0
    model = load_model(out / "model.safetensors")
    saved = TrainingCheckpoint.load(out / "joint", model).train_config
    assert saved["grad_clip_norm"] == 0.5
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 2 and all(record["grad_norm"] > 0 for record in records)


@pytest.mark.parametrize(
    ("options", "steps"),
    [
        ([], 2000),
        (["--steps", "300"], 300),
        # The budget alone ends the run: 20 minutes bound it at 1000 steps a second.
        (["--minutes", "20"], 1_200_000),
        (["--minutes", "20", "--steps", "300"], 300),
    ],
)
def test_a_run_is_as_long_as_its_steps_or_else_its_budget(options, steps):
    args = build_parser().parse_args(["train", "--data", "synthetic:2", *options])
    assert run_length(args) == steps


def test_train_lays_a_budget_without_steps_over_the_steps_that_fit(tmp_path):
    out = tmp_path / "budget"
    assert (
        main(["train", "--data", "synthetic:2", "--minutes", "0.01", *TINY, "--out", str(out)]) == 0
    )
    model = load_model(out / "model.safetensors")
    # 0.6 s at 1000 steps a second: the bound, not 2000, so the clock ends the run.
    assert TrainingCheckpoint.load(out / "joint", model).train_config["steps"] == 600


def test_the_learning_rate_follows_the_batch_unless_given(tmp_path):
    argv = ["train", "--data", "synthetic:4", "--steps", "1", *TINY]
    expected = {
        (): (2, 0.005),
        ("--batch-size", "4"): (4, 0.01),
        ("--batch-size", "4", "--lr", "0.003"): (4, 0.003),
    }
    for number, (options, (batch_size, lr)) in enumerate(expected.items()):
        out = tmp_path / str(number)
        assert main([*argv, *options, "--out", str(out)]) == 0
        model = load_model(out / "model.safetensors")
        saved = TrainingCheckpoint.load(out / "joint", model).train_config
        assert (saved["batch_size"], saved["lr"]) == (batch_size, pytest.approx(lr))


def test_training_images_without_a_box_are_refused(tmp_path, capsys):
    """A YOLO folder whose label files are all empty (or missing) reads as images without
    objects: training on it would learn only background, so it is refused before a model
    is built."""
    images, labels = (tmp_path / "data" / part / "train" for part in ("images", "labels"))
    images.mkdir(parents=True)
    labels.mkdir(parents=True)
    (tmp_path / "data" / "classes.txt").write_text("cell\n")
    for k, (image, _) in enumerate(SyntheticShapes(3, image_size=(64, 80), seed=0)):
        to_pil(image).save(images / f"{k}.png")
        (labels / f"{k}.txt").write_text("")
    data = tmp_path / "data"
    assert main(["train", "--data", str(data), "--steps", "1", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"faster-rcnn: error: {data}: no box in any of the 3 training images: nothing to "
        f"learn (`faster-rcnn data --data {data}` shows what was read)"
    )
    assert not (tmp_path / "r" / "model.safetensors").exists()


def test_crowd_regions_are_neither_boxes_to_learn_nor_objects_the_recipe_counts(tmp_path, capsys):
    """Training leaves COCO's crowd regions out (CVAT exports masks as such): a file of
    them alone is refused as one without boxes, and the recipe counts the objects that
    are trained on: one an image here, not five (twice the rate is for crowded images)."""
    data = tmp_path / "data"
    data.mkdir()
    images = [{"id": k, "file_name": f"{k}.png", "width": 80, "height": 64} for k in range(2)]
    for k, (image, _) in enumerate(SyntheticShapes(2, image_size=(64, 80), seed=0)):
        to_pil(image).save(data / f"{k}.png")
    crowd = [[2 + 3 * j, 2, 20, 20] for j in range(4)]
    annotations = [
        {"image_id": k, "category_id": 1, "bbox": box, "iscrowd": 1}
        for k in range(2)
        for box in crowd
    ]
    coco = {"images": images, "categories": [{"id": 1, "name": "cell"}]}
    (data / "_annotations.coco.json").write_text(json.dumps({**coco, "annotations": annotations}))
    argv = ["train", "--data", str(data), "--steps", "1", *TINY, "--out", str(tmp_path / "r")]
    assert main(argv) == 2
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith(
            f"{data}: no box in any of the 2 training images but crowd regions (iscrowd 1), never "
            f"trained on: nothing to learn (`faster-rcnn data --data {data}` shows what was read)"
        )
    )
    annotations += [{"image_id": k, "category_id": 1, "bbox": [40, 30, 24, 24]} for k in range(2)]
    (data / "_annotations.coco.json").write_text(json.dumps({**coco, "annotations": annotations}))
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "recipe (" in printed
    assert "roi_heads.sampler" not in printed and "train.lr" not in printed


def test_images_the_cache_cannot_hold_are_refused_before_they_are_read(
    tmp_path, capsys, monkeypatch
):
    """8 images of 320 x 320 take 2,457,600 bytes decoded: more than 80 % of 3 MB, so
    --cache-images is refused in one line before a model is built; 2,457,600 / 0.8 bytes
    available hold them."""
    machine = MemoryLevel(3_000_000, 24 * 10**9, "MemAvailable")
    monkeypatch.setattr(train_cli, "least_available", lambda: machine)
    argv = ["train", "--data", "synthetic:8", "--steps", "1", "--cache-images", *TINY]
    assert main([*argv, "--out", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err.strip() == (
        "faster-rcnn: error: --cache-images: the 8 training images would take 2.5 MB in "
        "memory (3 bytes a pixel), more than 80% of the 3.0 MB the machine has available "
        "(MemAvailable): train without --cache-images"
    )
    assert not (tmp_path / "r" / "model.safetensors").exists()
    enough = MemoryLevel(round(2_457_600 / 0.8), 24 * 10**9, "MemAvailable")
    monkeypatch.setattr(train_cli, "least_available", lambda: enough)
    train_cli.check_cache_fits(SyntheticShapes(8))
    monkeypatch.setattr(train_cli, "least_available", lambda: None)  # the machine does not say
    train_cli.check_cache_fits(SyntheticShapes(8))


@pytest.mark.parametrize("limit_file", ["memory.max", "memory.high", "memory.limit_in_bytes"])
def test_a_refusal_by_a_containers_memory_limit_names_the_limit(
    tmp_path, capsys, monkeypatch, limit_file
):
    """Where a container's limit leaves less than the machine has, the refusal says the
    figure is the limit's, and which file sets it."""
    container = MemoryLevel(2_000_000, 4 * 2**30, limit_file)
    monkeypatch.setattr(train_cli, "least_available", lambda: container)
    argv = ["train", "--data", "synthetic:8", "--steps", "1", "--cache-images", *TINY]
    assert main([*argv, "--out", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err.strip() == (
        "faster-rcnn: error: --cache-images: the 8 training images would take 2.5 MB in "
        "memory (3 bytes a pixel), more than 80% of the 2.0 MB this container's memory "
        f"limit leaves (cgroup {limit_file}): train without --cache-images"
    )


def test_skip_difficult_is_refused_on_data_that_marks_nothing_difficult(tmp_path, capsys):
    """Only Pascal VOC marks objects difficult: on other data --skip-difficult trained as
    without it, without a word. On VOC it trains."""
    argv = ["train", "--steps", "1", *TINY, "--skip-difficult"]
    assert main([*argv, "--data", "synthetic:2", "--out", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err == (
        "faster-rcnn: error: --skip-difficult has no effect on synthetic:2: only Pascal VOC "
        "annotations mark objects difficult\n"
    )
    assert not (tmp_path / "r").exists()
    voc = tmp_path / "voc"
    for folder in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (voc / folder).mkdir(parents=True)
    for name, difficult in (("a", 0), ("b", 1)):
        to_pil(SyntheticShapes(1, image_size=(80, 96), seed=1)[0][0]).save(
            voc / "JPEGImages" / f"{name}.jpg"
        )
        (voc / "Annotations" / f"{name}.xml").write_text(
            "<annotation><object><name>cat</name><difficult>0</difficult><bndbox><xmin>10"
            "</xmin><ymin>10</ymin><xmax>50</xmax><ymax>40</ymax></bndbox></object><object>"
            f"<name>cat</name><difficult>{difficult}</difficult><bndbox><xmin>55</xmin><ymin>"
            "20</ymin><xmax>90</xmax><ymax>70</ymax></bndbox></object></annotation>"
        )
    (voc / "ImageSets/Main/train.txt").write_text("a\nb\n")
    assert main([*argv, "--data", str(voc), "--out", str(tmp_path / "r")]) == 0


def test_a_batch_or_workers_more_than_the_training_images_are_refused_and_the_default_fits(
    tmp_path, capsys
):
    """3 images in batches of 4 would train on batches of 3 at the rate of 4 (0.01, not
    0.0075): refused before a model is built. Without --batch-size, one image trains in
    batches of 1, at the preset's rate of 1 (0.0025, not the default batch's 0.005)."""
    argv = ["train", "--steps", "1", *TINY, "--out", str(tmp_path / "r")]
    assert main([*argv, "--data", "synthetic:3", "--batch-size", "4"]) == 2
    assert capsys.readouterr().err.strip() == (
        "faster-rcnn: error: --batch-size 4: synthetic:3 has 3 training images, so no "
        "batch would hold more than 3 (the learning rate follows the batch size): give "
        "--batch-size 3 or less"
    )
    assert not (tmp_path / "r" / "model.safetensors").exists()
    # More workers than images load nothing (--workers 1000000 forked until it froze).
    assert main([*argv, "--data", "synthetic:3", "--workers", "4"]) == 2
    assert capsys.readouterr().err.strip() == (
        "faster-rcnn: error: --workers 4: synthetic:3 has 3 training images, and a "
        "worker loads whole batches of them, so the others would load none: give --workers "
        "3 or fewer"
    )
    assert main([*argv, "--data", "synthetic:1", "--recipe", "preset"]) == 0
    model = load_model(tmp_path / "r" / "model.safetensors")
    saved = TrainingCheckpoint.load(tmp_path / "r" / "joint", model).train_config
    assert (saved["batch_size"], saved["lr"]) == (1, pytest.approx(0.0025))


def test_an_image_too_elongated_to_resize_is_skipped_and_counted_as_unresizable(tmp_path, capsys):
    """A strip 600 wide and 1 high would be 128 wide and 0 high at --min-size 96 /
    --max-size 128: training uses the next image in its place, evaluate leaves it out and predict
    skips it, each naming the file, none stops; the summaries count it as unresizable."""
    images, labels = (tmp_path / "data" / part / "train" for part in ("images", "labels"))
    images.mkdir(parents=True)
    labels.mkdir(parents=True)
    (tmp_path / "data" / "classes.txt").write_text("\n".join(SyntheticShapes.class_names))
    for k, (image, target) in enumerate(SyntheticShapes(3, image_size=(64, 80), seed=0)):
        to_pil(image).save(images / f"{k}.png")
        rows = [
            f"{label - 1} {(x1 + x2) / 160} {(y1 + y2) / 128} {(x2 - x1) / 80} {(y2 - y1) / 64}"
            for (x1, y1, x2, y2), label in zip(
                target["boxes"].tolist(), target["labels"].tolist(), strict=True
            )
        ]
        (labels / f"{k}.txt").write_text("\n".join(rows))
    to_pil(torch.rand(3, 1, 600)).save(images / "strip.png")
    (labels / "strip.txt").write_text("0 0.5 0.5 0.1 1.0")
    run = tmp_path / "r"
    argv = ["train", "--data", str(tmp_path / "data"), "--steps", "4", "--batch-size", "2"]
    assert main([*argv, *TINY, "--out", str(run)]) == 0
    reason = "600x1 (width x height) is too elongated to resize to --min-size 96 / --max-size 128"
    captured = capsys.readouterr()
    assert f"{images / 'strip.png'}: {reason}" in captured.err
    # Counted as what it is, not as an image that could not be read.
    assert "joint: 1 unresizable image skipped" in captured.out
    assert "unreadable" not in captured.out
    data = str(tmp_path / "data")
    evaluate = ["evaluate", "--model", str(run / "model.safetensors"), "--data", data]
    assert main(evaluate) == 2  # the data has a train split only
    assert capsys.readouterr().err.strip() == (
        f"faster-rcnn: error: {tmp_path / 'data'} (YOLO) has the split train; none fits "
        "'test' (nor 'val'): name the split to score, --split train"
    )
    assert main([*evaluate, "--split", "train"]) == 0
    assert "images: 3 (1 unresizable, left out)" in capsys.readouterr().out
    argv = ["predict", "--model", str(run / "model.safetensors"), str(images / "strip.png")]
    assert main([*argv, str(images / "0.png"), "--out", str(tmp_path / "p")]) == 1
    captured = capsys.readouterr()
    # predict has no --min-size: the sizes are the model file's.
    reason = reason.replace("--min-size", "the model's min_size").replace("--max-", "max_")
    assert f"{images / 'strip.png'}: {reason}" in captured.err
    assert "in 1 image (1 skipped)" in captured.out


def test_a_run_trained_over_names_what_the_replaced_model_left_beside_it(tmp_path, capsys):
    """export's model.onnx and evaluate's evaluation/ stay beside the new model file:
    `predict --onnx run/model.onnx` would run the model replaced."""
    out = tmp_path / "run"
    argv = ["train", "--data", "synthetic:4", "--steps", "1", "--out", str(out), *TINY]
    assert main(argv) == 0
    (out / "model.onnx").write_bytes(b"the replaced model's")
    capsys.readouterr()
    assert main(argv) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.endswith("go as training begins; model.onnx, made from that run, stays")
    (out / "evaluation").mkdir()
    assert main(argv) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.endswith("; model.onnx and evaluation/, made from that run, stay")
    assert (out / "model.onnx").read_bytes() == b"the replaced model's"


def test_a_checkpoints_export_goes_beside_its_stage_where_its_next_checkpoint_leaves_it(
    tmp_path, capsys, monkeypatch
):
    """MODEL.onnx beside a checkpoint's model was inside the checkpoint's folder, which the
    run's next checkpoint replaces whole: the export went silently. It is RUN/joint.onnx,
    which a run trained over names as it names model.onnx."""
    monkeypatch.setattr(
        "faster_rcnn.export.export_onnx", lambda model, out: out.write_bytes(b"onnx")
    )
    run = tmp_path / "run"
    argv = ["train", "--data", "synthetic:2", "--out", str(run), *TINY]
    assert main([*argv, "--steps", "2"]) == 0
    capsys.readouterr()
    assert main(["export", "--model", str(run / "joint" / "model.safetensors")]) == 0
    assert f"-> {run / 'joint.onnx'} (" in capsys.readouterr().out
    assert main(["export", "--model", str(run / "model.safetensors")]) == 0
    assert f"-> {run / 'model.onnx'} (" in capsys.readouterr().out
    assert main([*argv, "--steps", "3", "--resume"]) == 0
    assert (run / "joint.onnx").read_bytes() == b"onnx"
    capsys.readouterr()
    assert main([*argv, "--steps", "1"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.endswith("; model.onnx and joint.onnx, made from that run, stay")


@pytest.mark.parametrize(
    ("roi_heads", "selection"),
    [
        (
            {"soft_nms_sigma": 0.3},
            "Gaussian Soft-NMS per class (sigma 0.3, lowered scores kept down to 0.001), run "
            "in the graph as a loop, the best 100 an image",
        ),
        ({"detections_per_img": 300}, "greedy NMS per class at IoU 0.5, the best 300 an image"),
        (
            {"class_nms_thresh": (0.5, 0.6, 0.5)},
            "greedy NMS per class at each class's IoU (0.5, 0.6, 0.5), the best 100 an image",
        ),
    ],
)
def test_export_says_how_the_file_selects_its_detections(
    roi_heads, selection, tmp_path, capsys, monkeypatch
):
    """The export printed its file's name and size alone: a Soft-NMS model's user could
    not tell whether the graph kept it, as it does, or fell back to greedy NMS."""
    monkeypatch.setattr(
        "faster_rcnn.export.export_onnx", lambda model, out: out.write_bytes(b"onnx")
    )
    model = tmp_path / "model.safetensors"
    config = preset_config("small", 4).replace(roi_heads=roi_heads)
    save_model(FasterRCNN.from_config(config), model)
    assert main(["export", "--model", str(model)]) == 0
    assert capsys.readouterr().out.splitlines()[1] == (
        f"detections in the file: scoring over 0.05, {selection}"
    )


def test_export_refuses_a_box_head_never_trained(tmp_path, capsys):
    """The model of the RPN trained alone was written as ONNX whose only outputs are its
    untrained head's detections: predict --onnx then gave them without a warning."""
    model = tmp_path / "rpn.safetensors"
    save_model(FasterRCNN.from_config(preset_config("small", 4)), model, box_head_trained=False)
    assert main(["export", "--model", str(model)]) == 2
    assert capsys.readouterr().err == (
        f"faster-rcnn: error: --model {model}: the RPN was trained alone (--scheme rpn), its "
        "box head never was: the ONNX graph outputs only the box head's detections, which "
        f"would mean nothing; train the head from it first (train --weights {model})\n"
    )
    assert not (tmp_path / "rpn.onnx").exists()


def test_evaluate_gives_a_box_head_never_trained_its_proposal_recall_alone(tmp_path, capsys):
    """The RPN trained alone was scored as a detector too: a table of its untrained
    head's APs (0.000 and the like) and their error breakdown, below the one warning that
    they mean nothing."""
    model = tmp_path / "rpn.safetensors"
    save_model(FasterRCNN.from_config(preset_config("small", 4)), model, box_head_trained=False)
    argv = ["evaluate", "--model", str(model), "--data", "synthetic:2"]
    assert main([*argv, "--out", str(tmp_path / "eval")]) == 0
    out = capsys.readouterr().out
    assert "images: 2\nproposal recall (" in out
    assert "AP" not in out.replace("AR@", "") and "mAP" not in out
    assert (tmp_path / "eval" / "metrics.json").is_file()


def test_train_warns_of_classes_no_training_box_has(tmp_path, capsys):
    """A names list longer than what was labelled: the classes without a training box
    are named (the model has them and never detects them); none where every class has
    one."""
    data = tmp_path / "yolo"
    for split in ("images", "labels"):
        (data / split / "train").mkdir(parents=True)
    for k in range(2):
        to_pil(torch.rand(3, 96, 96)).save(data / "images" / "train" / f"a{k}.jpg")
        (data / "labels" / "train" / f"a{k}.txt").write_text(f"{k} 0.5 0.5 0.4 0.4\n")
    (data / "classes.txt").write_text("red\nblue\ngreen\nwhite\n")
    argv = ["train", "--data", str(data), "--steps", "1", *TINY, "--out"]
    assert main([*argv, str(tmp_path / "run")]) == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if "training box" in line]
    assert warned == [
        f"faster-rcnn: warning: {data}: 2 classes have no training box, and will never be "
        f"detected: green, white (`faster-rcnn data --data {data}` counts each class's boxes)"
    ]
    (data / "classes.txt").write_text("red\nblue\n")
    assert main([*argv, str(tmp_path / "run2")]) == 0
    assert "training box" not in capsys.readouterr().err


def test_a_run_stopped_before_its_first_step_is_started_anew_without_resume(tmp_path, capsys):
    """A run whose only image cannot be read stops at its first step with a checkpoint of
    no step: once the image is mended, the same command starts anew (nothing of the
    stopped run is lost) instead of being refused for want of --resume."""
    data = tmp_path / "coco"
    (data / "images").mkdir(parents=True)
    (data / "images" / "a.jpg").write_bytes(b"")  # its header unread: decoding fails
    coco = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 96, "height": 96}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 40, 40], "iscrowd": 0}
        ],
        "categories": [{"id": 1, "name": "thing"}],
    }
    (data / "annotations.json").write_text(json.dumps(coco))
    out = tmp_path / "run"
    argv = ["train", "--data", str(data / "annotations.json"), "--steps", "1", "--out", str(out)]
    argv += TINY
    assert main(argv) == 2
    assert "none of the 1 image can be read" in capsys.readouterr().err
    assert TrainingCheckpoint.steps_in(out / "joint") == 0
    to_pil(torch.rand(3, 96, 96)).save(data / "images" / "a.jpg")
    assert main(argv) == 0
    assert TrainingCheckpoint.steps_in(out / "joint") == 1


def test_a_run_that_did_not_finish_is_not_overwritten_without_resume(tmp_path, capsys):
    """A checkpoint written after the model file (or without one) is a run that stopped
    before its end: a fresh run there is refused before anything is loaded, --resume
    continues it; a finished run may be trained over, and the run says so. --out naming a
    file is refused."""
    out = tmp_path / "run"
    argv = ["train", "--data", "synthetic:4", "--steps", "2", "--out", str(out), *TINY]
    assert main(argv) == 0
    assert " holds a finished run" not in capsys.readouterr().out
    assert main(argv) == 0  # finished: trained over, as before
    replaced = f"{out} holds a finished run (its model.safetensors of 20"
    assert capsys.readouterr().out.startswith(replaced)
    assert main([*argv, "--resume"]) == 0  # continued, not replaced
    assert " holds a finished run" not in capsys.readouterr().out
    (out / "model.safetensors").unlink()  # as a run stopped by a signal leaves it
    capsys.readouterr()
    assert main(argv) == 2
    assert capsys.readouterr().err.strip() == (
        f"faster-rcnn: error: {out} holds the checkpoint of a run that did not finish "
        f"({out / 'joint'}): --resume continues it; to start anew, remove it or choose "
        "another --out"
    )
    assert main([*argv, "--resume"]) == 0
    (tmp_path / "file").write_text("")
    argv = ["train", "--data", "synthetic:4", "--steps", "1", "--out", str(tmp_path / "file")]
    assert main(argv) == 2
    assert "is a file: training writes a folder there" in capsys.readouterr().err


def test_a_replaced_run_takes_every_stage_checkpoint_and_its_metrics_with_it(tmp_path, capsys):
    """A finished joint run trained over by --scheme rpn loses its joint checkpoint,
    metrics and records (replaced by the new run's) as the new run begins, not before: a
    typo in the new run's options leaves it whole, and once replaced, --scheme joint
    --resume finds nothing of it to continue (it did, and wrote the replaced joint model
    over the RPN's)."""
    out = tmp_path / "run"
    argv = ["train", "--data", "synthetic:4", "--steps", "2", "--out", str(out), *TINY]
    assert main(argv) == 0
    capsys.readouterr()
    assert main([*argv, "--scheme", "rpn", "--batch-size", "5"]) == 2  # 4 images
    assert TrainingCheckpoint.find(out / "joint") == out / "joint"
    assert (out / "metrics.jsonl").is_file()
    capsys.readouterr()
    assert main([*argv, "--scheme", "rpn"]) == 0
    assert re.search(
        r"holds a finished run \(its model.safetensors of [-0-9: ]+\): this run replaces it: "
        r"its checkpoints \(joint\), metrics.jsonl and training_splits.json go as training "
        r"begins\n",
        capsys.readouterr().out,
    )
    assert sorted(folder.name for folder in out.iterdir() if folder.is_dir()) == ["rpn"]
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [(r["stage"], r["step"]) for r in records] == [("rpn", 0), ("rpn", 1)]
    assert main([*argv, "--resume"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"faster-rcnn: error: {out} holds a finished --scheme rpn run ({out / 'rpn'}), not "
        "a --scheme joint one: give --scheme rpn --resume to continue it"
    )


def test_a_fresh_run_says_it_removes_the_metrics_of_a_run_stopped_before_a_checkpoint(
    tmp_path, capsys
):
    """A run killed before its first checkpoint leaves only metrics.jsonl: nothing resumes
    it, and the next run removes it as it begins, saying so first (it went silently)."""
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.jsonl").write_text('{"stage": "rpn", "step": 0}\n')
    argv = ["train", "--data", "synthetic:4", "--steps", "1", "--out", str(out), *TINY]
    assert main(argv) == 0
    assert capsys.readouterr().out.splitlines()[0] == (
        f"{out} holds the metrics.jsonl of a run that stopped before its first checkpoint "
        "(no model file or checkpoint beside it): it goes as training begins"
    )
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [(r["stage"], r["step"]) for r in records] == [("joint", 0)]


def test_the_metrics_of_a_run_stopped_while_replacing_a_finished_one_are_not_called_its(
    tmp_path, capsys
):
    """A run replacing a finished one and killed before its first checkpoint leaves the
    finished run's model file and its own metrics.jsonl: the next run called them the
    finished run's ("its metrics.jsonl go"). Metrics older than the model file, beside no
    checkpoint (removed by hand), are the finished run's."""
    out = tmp_path / "run"
    argv = ["train", "--data", "synthetic:4", "--steps", "1", "--out", str(out), *TINY]
    assert main(argv) == 0
    # As the replacing run leaves it: its checkpoints and metrics gone, its own begun.
    model_written = (out / "model.safetensors").stat().st_mtime
    os.utime(out / "model.safetensors", (model_written - 60, model_written - 60))
    shutil.rmtree(out / "joint")
    (out / "metrics.jsonl").write_text('{"stage": "joint", "step": 0}\n')
    capsys.readouterr()
    assert main(argv) == 0
    assert re.fullmatch(
        rf"{re.escape(str(out))} holds a finished run \(its model.safetensors of [-0-9: ]+\): "
        r"this run replaces it; the metrics.jsonl of a run that began replacing it and "
        r"stopped before its first checkpoint goes as training begins",
        capsys.readouterr().out.splitlines()[0],
    )
    shutil.rmtree(out / "joint")
    os.utime(out / "metrics.jsonl", (model_written - 120, model_written - 120))
    assert main(argv) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.endswith(
        ": this run replaces it: its metrics.jsonl and training_splits.json go as training begins"
    )


def test_a_resume_refuses_a_damaged_metrics_file_before_reading_the_data(tmp_path, capsys):
    """The trainer found a damaged line only as it went on, once the data was read (and a
    recipe's steps timed) and the model built: a larger set's minutes lost to a refusal
    its files already showed."""
    out = tmp_path / "run"
    argv = ["train", "--data", "synthetic:2", "--steps", "2", "--out", str(out), *TINY]
    assert main(argv) == 0
    metrics = out / "metrics.jsonl"
    lines = metrics.read_text().splitlines()
    metrics.write_text("\n".join(['{"stage": "joint"}', *lines[1:]]) + "\n")
    capsys.readouterr()
    assert main([*argv, "--resume"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        f"faster-rcnn: error: {metrics}, line 1: not a JSON record (not an object with a "
        "string 'stage' and an integer 'step')\n"
    )


def test_resume_names_the_scheme_of_the_run_it_finds(tmp_path, capsys):
    """--resume, or a fresh start, in a folder holding another scheme's run says which
    --scheme continues it; the alternating scheme's first step and the RPN trained alone
    are both a stage 'rpn', told apart."""

    def train(out, *options):
        return main(
            ["train", "--data", "synthetic:4", "--steps", "4", "--out", str(out), *TINY, *options]
        )

    out = tmp_path / "alt"
    assert train(out, "--scheme", "alternating") == 0
    (out / "model.safetensors").unlink()  # as a run stopped in its first step leaves it
    for stage in STAGES[1:]:
        shutil.rmtree(out / stage)
    capsys.readouterr()
    for scheme in ("joint", "rpn"):
        assert train(out, "--scheme", scheme, "--resume") == 2
        assert capsys.readouterr().err.strip() == (
            f"faster-rcnn: error: {out} holds an unfinished --scheme alternating run "
            f"({out / 'rpn'}), not a --scheme {scheme} one: give --scheme alternating "
            "--resume to continue it"
        )
    assert train(out) == 2
    assert capsys.readouterr().err.strip() == (
        f"faster-rcnn: error: {out} holds the checkpoint of a run that did not finish "
        f"({out / 'rpn'}): --scheme alternating --resume continues it; to start anew, remove "
        "it or choose another --out"
    )
    assert train(out, "--scheme", "alternating", "--resume") == 0
    # The RPN's run warms up over at most half its steps, with a budget or without; the
    # alternating scheme's steps over a tenth.
    for name, budget in (("rpn", ()), ("rpn_budget", ("--minutes", "1"))):
        rpn = tmp_path / name
        assert train(rpn, "--scheme", "rpn", *budget) == 0
        capsys.readouterr()
        assert train(rpn, "--scheme", "alternating", "--resume") == 2
        assert capsys.readouterr().err.strip() == (
            f"faster-rcnn: error: {rpn} holds a finished --scheme rpn run ({rpn / 'rpn'}), "
            "not a --scheme alternating one: give --scheme rpn --resume to continue it"
        )


def test_a_stage_rpn_is_told_by_the_scheme_its_checkpoint_records_else_by_its_warmup(
    tmp_path,
):
    """The RPN trained alone and the alternating scheme's first step are both a stage
    'rpn': a checkpoint says which, whatever warm-up share the API gave it; one of an
    earlier version, which does not, is told by the share (a tenth: the step's)."""
    data = SyntheticShapes(1, image_size=(64, 64), seed=3, max_objects=2)
    config = preset_config("small", data.num_classes)
    config = config.replace(transform={"min_size": (64,), "max_size": 64})

    def rpn_checkpoint(name, warmup_share, **scheme):
        cfg = TrainConfig(steps=1, batch_size=1, warmup_share=warmup_share)
        model = FasterRCNN.from_config(config)
        rpn_trainer(model, data, cfg, out_dir=tmp_path / name, **scheme).fit()
        return tmp_path / name / "rpn"

    alone, step = rpn_checkpoint("alone", 10), rpn_checkpoint("step", 2, scheme="alternating")
    assert [scheme_of(alone), scheme_of(step)] == ["rpn", "alternating"]
    # As an earlier version wrote them: no scheme, and the shares their runs had (a
    # --steps run's None, before 2 was the default; the step's tenth).
    for checkpoint, share in ((alone, None), (step, 10)):
        state = torch.load(checkpoint / STATE_FILE, weights_only=True)
        del state["scheme"]
        state["train_config"]["warmup_share"] = share
        torch.save(state, checkpoint / STATE_FILE)
    assert [scheme_of(alone), scheme_of(step)] == ["rpn", "alternating"]


def weights_file(path, seed):
    """A model file of the small preset for the synthetic shapes, drawn from ``seed``."""
    torch.manual_seed(seed)
    config = preset_config("small", 4).replace(class_names=SyntheticShapes.class_names)
    save_model(FasterRCNN.from_config(config), path)
    return path


def forget_started_weights(stage_dir):
    """Make ``stage_dir``'s checkpoint as an earlier version wrote it: without the record
    of the weights its run started from."""
    state = torch.load(stage_dir / "state.pt", weights_only=True)
    del state["weights"]
    torch.save(state, stage_dir / "state.pt")


def test_a_resumed_run_takes_no_weights_but_those_it_started_from(tmp_path, capsys, monkeypatch):
    """--resume continues from the checkpoint's weights: --weights naming the file the run
    started from (the command repeated with --resume added) is taken, any other refused in
    one line, as any is where the run started without, or (of an earlier version) does
    not record which."""
    start, other = weights_file(tmp_path / "start.pt", 0), weights_file(tmp_path / "other.pt", 1)
    out = tmp_path / "run"
    argv = ["train", "--data", "synthetic:4", "--steps", "2", *TINY, "--out", str(out)]
    assert main([*argv, "--weights", str(start)]) == 0
    capsys.readouterr()
    assert main([*argv, "--resume", "--weights", str(other)]) == 2
    assert capsys.readouterr().err == (
        f"faster-rcnn: error: --weights {other}: a resumed run continues from its "
        f"checkpoint's weights, so --weights has no effect (the run started from "
        f"{start.resolve()}): leave --weights out, or start a new --out to train from {other}\n"
    )
    monkeypatch.chdir(tmp_path)
    assert main([*argv, "--resume", "--weights", "start.pt"]) == 0  # the same file
    assert main([*argv, "--resume"]) == 0
    assert "loaded" not in capsys.readouterr().out  # the checkpoint's weights, not the file's
    assert main([*argv, "--resume", "--weights", "start.pt"]) == 0  # still recorded
    forget_started_weights(out / "joint")
    capsys.readouterr()
    assert main([*argv, "--resume", "--weights", "start.pt"]) == 2
    assert f"has no effect ({out} does not record which it started from: an earlier " in (
        capsys.readouterr().err
    )
    assert main([*argv, "--out", str(tmp_path / "random")]) == 0
    argv = [*argv, "--out", str(tmp_path / "random"), "--resume", "--weights", "start.pt"]
    assert main(argv) == 2
    assert "has no effect (the run started without --weights)" in capsys.readouterr().err


def test_a_resumed_alternating_run_starts_its_steps_to_come_from_its_own_weights(tmp_path, capsys):
    """The alternating scheme builds its second step's model from the weights the run
    started from: resumed before that step, without --weights, it takes them, and ends as
    the uninterrupted run did; other weights are refused."""
    start, other = weights_file(tmp_path / "start.pt", 0), weights_file(tmp_path / "other.pt", 1)
    out = tmp_path / "run"
    argv = ["train", "--data", "synthetic:4", "--steps", "4", "--scheme", "alternating", *TINY]
    argv += ["--out", str(out)]
    assert main([*argv, "--weights", str(start)]) == 0
    whole = load_model(out / "model.safetensors").state_dict()
    (out / "model.safetensors").unlink()  # as a run stopped in its first step leaves it
    for stage in STAGES[1:]:
        shutil.rmtree(out / stage)
    capsys.readouterr()
    assert main([*argv, "--resume", "--weights", str(other)]) == 2
    assert capsys.readouterr().err == (
        f"faster-rcnn: error: --weights {other}: a resumed run continues from its "
        "checkpoints' weights, and its steps not begun start from the weights the run "
        f"started from (the run started from {start.resolve()}): leave --weights out, or "
        f"start a new --out to train from {other}\n"
    )
    assert main([*argv, "--resume"]) == 0
    said = f"{out}: its step fast_rcnn, not begun, starts from the run's weights, {start.resolve()}"
    assert said in capsys.readouterr().out
    resumed = load_model(out / "model.safetensors").state_dict()
    assert all(torch.equal(resumed[key], value) for key, value in whole.items())


def test_the_alternating_scheme_says_its_starting_weights_before_its_first_step(
    tmp_path, capsys, monkeypatch
):
    """What --weights provided is said before step 1, as the other schemes say it (it was
    said after step 4, hours later, or never where the run stopped); and a backbone that
    freezes layers for ImageNet weights, given none, is warned of as in joint training."""

    def stopped(run, model_a, weights):
        raise TrainingInterrupted("rpn", 0, signal.SIGINT, tmp_path / "rpn")

    monkeypatch.setattr("faster_rcnn.train.alternating.AlternatingRun.train_rpn", stopped)
    start = weights_file(tmp_path / "start.pt", 0)
    argv = ["train", "--data", "synthetic:4", "--steps", "4", "--scheme", "alternating", *TINY]
    assert main([*argv, "--weights", str(start), "--out", str(tmp_path / "a")]) == 130
    assert f"{start}: loaded 128 tensors (a whole detector)" in capsys.readouterr().out
    argv += ["--trainable-layers", "3", "--out", str(tmp_path / "b")]
    assert main(argv) == 130
    assert (
        "faster-rcnn: warning: the small preset freezes backbone layers or batch norm for "
        "ImageNet weights, and no --weights were given" in capsys.readouterr().err
    )


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file locks")
def test_the_demo_refuses_an_out_that_train_refuses(tmp_path, capsys, monkeypatch):
    """A folder holding a run that did not finish, one a training run is writing, one
    that cannot be written: refused before the demo trains; and a demo stopped by Ctrl-C
    offers no --resume, which it does not have."""
    import fcntl

    out = tmp_path / "run"
    assert main(["train", "--data", "synthetic:4", "--steps", "1", "--out", str(out), *TINY]) == 0
    (out / "model.safetensors").unlink()  # as a run stopped by a signal leaves it
    capsys.readouterr()
    demo = ["demo", "--minutes", "0.05", "--test-images", "2", "--out"]
    assert main([*demo, str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == (
        f"faster-rcnn: error: {out} holds the checkpoint of a run that did not finish "
        f"({out / 'joint'}): to start anew, remove it or choose another --out\n"
    )
    shutil.rmtree(out / "joint")
    with open(out / ".training.lock", "w") as held:  # as a run in progress holds it
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.write("4242\n")
        held.flush()
        assert main([*demo, str(out)]) == 2
        assert capsys.readouterr().err.strip() == (
            f"faster-rcnn: error: {out} is being written by another training run (process "
            "4242): wait for it to end, or choose another --out"
        )
    (tmp_path / "file").write_text("")
    assert main([*demo, str(tmp_path / "file" / "demo")]) == 2
    assert capsys.readouterr().err.strip() == (
        f"faster-rcnn: error: --out {tmp_path / 'file' / 'demo'} is inside the file "
        f"{tmp_path / 'file'}: the demo writes a folder there"
    )

    class Stopped:
        def __init__(self, *args, **kwargs):
            raise TrainingInterrupted("joint", 3, signal.SIGINT, out / "joint")

    monkeypatch.setattr("faster_rcnn.cli.demo.Trainer", Stopped)
    assert main([*demo, str(out)]) == 128 + signal.SIGINT
    assert capsys.readouterr().err.strip() == (
        f"faster-rcnn: joint: stopped by SIGINT after 3 steps; checkpoint in {out / 'joint'}"
    )


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file locks")
def test_the_folder_of_a_run_still_training_given_as_a_model_says_it_is_going(tmp_path, capsys):
    """Not "did not finish; add --resume": that --resume would be refused, the run going
    on to write its model file."""
    import fcntl

    out = tmp_path / "run"
    assert main(["train", "--data", "synthetic:4", "--steps", "1", "--out", str(out), *TINY]) == 0
    (out / "model.safetensors").unlink()  # as it is until the run ends
    capsys.readouterr()
    with open(out / ".training.lock", "w") as held:  # as the run in progress holds it
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.write("4242\n")
        held.flush()
        assert main(["evaluate", "--model", str(out)]) == 2
    assert capsys.readouterr().err == (
        f"faster-rcnn: error: --model {out} holds no model.safetensors yet: the training "
        f"run there (process 4242) writes it as it ends; pass the model file of its last "
        f"checkpoint, {out / 'joint' / 'model.safetensors'}\n"
    )
    assert main(["evaluate", "--model", str(out)]) == 2  # the run stopped: resume it
    assert "did not finish; add --resume" in capsys.readouterr().err


def test_an_output_path_that_cannot_be_written_is_one_line(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--data", "synthetic:4", "--steps", "1", "--out", str(run), *TINY]) == 0
    model = str(run / "model.safetensors")
    (tmp_path / "file").write_text("")
    capsys.readouterr()
    file = tmp_path / "file"
    argv = ["evaluate", "--model", model, "--data", "synthetic:2", "--out", str(file)]
    assert main(argv) == 2
    captured = capsys.readouterr()  # refused before the evaluation, not after it
    assert captured.out == ""
    said = f"faster-rcnn: error: --out {file} is a file: evaluate writes a folder there\n"
    assert captured.err == said
    assert main([*argv[:-1], str(file / "e")]) == 2
    said = f"--out {file / 'e'} is inside the file {file}: evaluate writes a folder there"
    assert said in capsys.readouterr().err
    # The default folder beside the model, unwritable: the figures are printed anyway.
    (run / "evaluation").write_text("")
    assert main(argv[:-2]) == 0
    captured = capsys.readouterr()
    assert "VOC mAP@0.5" in captured.out
    assert captured.err.splitlines()[0] == (
        f"faster-rcnn: warning: {run / 'evaluation'} is a file: the figures are printed, not "
        "written (--out names a folder)"
    )
    assert main(["export", "--model", model, "--out", str(tmp_path)]) == 2
    assert "is a folder: name the .onnx file to write" in capsys.readouterr().err


def test_predict_explain_and_export_refuse_an_out_they_cannot_write_before_any_work(
    tmp_path, capsys, monkeypatch
):
    """An --out inside a file, or in a read-only folder, is refused before the model is
    loaded (predict would have detected every image, export spent seconds exporting)."""
    run = tmp_path / "run"
    assert main(["train", "--data", "synthetic:2", "--steps", "1", "--out", str(run), *TINY]) == 0
    model = str(run / "model.safetensors")
    image = tmp_path / "0.png"
    to_pil(SyntheticShapes(1, image_size=(64, 80), seed=3)[0][0]).save(image)
    (tmp_path / "file").write_text("")
    locked = tmp_path / "locked"
    locked.mkdir()
    allowed = os.access  # root may write anywhere: the permission check stands for the mode
    monkeypatch.setattr(
        arguments.os, "access", lambda path, mode: path != locked and allowed(path, mode)
    )
    capsys.readouterr()
    for out, reason in [
        (tmp_path / "file", "is a file"),
        (locked, "is read-only"),
    ]:
        assert main(["predict", "--model", model, str(image), "--out", str(out)]) == 2
        said = f"faster-rcnn: error: --out {out} {reason}: predict writes a folder there\n"
        assert capsys.readouterr() == ("", said)
    for command in (["explain", str(image), "--model", model], ["export", "--model", model]):
        for folder, reason in [
            (tmp_path / "file", f"is inside the file {tmp_path / 'file'}"),
            (locked, f"is inside the read-only folder {locked}"),
        ]:
            out = folder / "x.png"
            assert main([*command, "--out", str(out)]) == 2
            said = f"faster-rcnn: error: --out {out} {reason}: {command[0]} writes a file there\n"
            assert capsys.readouterr() == ("", said)
    assert list(locked.iterdir()) == []


def test_export_refuses_to_write_over_its_model_or_a_file_that_is_not_onnx(tmp_path, capsys):
    """An --out not named .onnx is refused before any work, there or not yet: ONNX would
    overwrite a run's metrics, or pass for a model file in a new model.safetensors."""
    run = tmp_path / "run"
    assert main(["train", "--data", "synthetic:2", "--steps", "1", "--out", str(run), *TINY]) == 0
    model = run / "model.safetensors"
    kept = {path: path.read_bytes() for path in (model, run / "metrics.jsonl")}
    capsys.readouterr()
    for out in (model, tmp_path / "run" / ".." / "run" / "model.safetensors"):
        assert main(["export", "--model", str(model), "--out", str(out)]) == 2
        said = (
            f"faster-rcnn: error: --out {out} is the --model file: name the .onnx file to write\n"
        )
        assert capsys.readouterr() == ("", said)
    for name in ("run/metrics.jsonl", "new.safetensors", "model.txt", "exported"):
        out = tmp_path / name
        assert main(["export", "--model", str(model), "--out", str(out)]) == 2
        assert capsys.readouterr().err == (
            f"faster-rcnn: error: --out {out} does not end in .onnx: export writes only .onnx "
            "files; name the .onnx file to write\n"
        )
    assert {path: path.read_bytes() for path in kept} == kept
    assert sorted(path.name for path in tmp_path.iterdir()) == ["run"]
    load_model(model)


def test_a_folder_given_for_a_model_or_an_image_is_said_to_be_one(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run, empty = tmp_path / "run", tmp_path / "empty"
    empty.mkdir()
    run.mkdir()
    (run / "model.safetensors").write_bytes(b"")  # refused as a folder before it is read
    commands = [
        ["predict", "x.png", "--model"],
        ["evaluate", "--model"],
        ["export", "--model"],
        ["anchors", "--model"],
        ["explain", "x.png", "--model"],
    ]
    for command in commands:
        assert main([*command, str(run)]) == 2
        assert capsys.readouterr().err == (
            f"faster-rcnn: error: --model {run} is a folder: pass the model file in it, "
            f"{run / 'model.safetensors'}\n"
        )
    assert main(["evaluate", "--model", str(empty)]) == 2
    assert capsys.readouterr().err == (
        f"faster-rcnn: error: --model {empty} is a folder with no model.safetensors in it: pass a "
        "model file\n"
    )
    assert main(["explain", str(empty)]) == 2
    said = f"faster-rcnn: error: {empty} is a folder, not an image file\n"
    assert capsys.readouterr().err == said


def test_a_training_checkpoint_given_as_a_model_points_to_the_runs_model_file(tmp_path, capsys):
    """<run>/joint/state.pt (or the folder) as --model was refused with advice to convert
    it, which is for torchvision checkpoints: the run's model file is what to pass, or,
    before the run has written one, the checkpoint's own model file."""
    run = tmp_path / "run"
    argv = ["train", "--data", "synthetic:2", "--steps", "1", "--batch-size", "2", *TINY]
    assert main([*argv, "--out", str(run)]) == 0
    state, model = run / "joint" / "state.pt", run / "model.safetensors"
    commands = [["predict", "x.png", "--model"], ["evaluate", "--model"], ["export", "--model"]]
    capsys.readouterr()
    for command in commands:
        assert main([*command, str(state)]) == 2
        assert capsys.readouterr().err == (
            f"faster-rcnn: error: --model {state} is the state (optimizer, step) of a training "
            f"checkpoint, not a model file: pass the run's model file, {model}\n"
        )
        assert main([*command, str(run / "joint")]) == 2
        assert capsys.readouterr().err == (
            f"faster-rcnn: error: --model {run / 'joint'} is a training checkpoint: pass the run's "
            f"model file, {model}\n"
        )
    model.unlink()  # as a run stopped before its end leaves it
    assert main(["evaluate", "--model", str(state)]) == 2
    assert capsys.readouterr().err == (
        f"faster-rcnn: error: --model {state} is the state (optimizer, step) of a training "
        "checkpoint, not a model file: pass the checkpoint's own, "
        f"{run / 'joint' / 'model.safetensors'} (`train --resume --out {run}` finishes the "
        f"run and writes {model})\n"
    )


def test_a_full_disk_mid_run_is_one_line_naming_the_checkpoint_and_keeps_the_last_one(
    tmp_path, capsys, monkeypatch
):
    """The line named the file refused, in <stage>.partial, which was removed at once."""
    real_save = safetensors.torch.save_model
    saves: list[str] = []

    def full_at_the_second(model, filename, metadata=None, force_contiguous=False):
        saves.append(filename)
        if len(saves) == 2:
            raise SafetensorError(
                "Error while serializing: I/O error: No space left on device (os error 28)"
            )
        real_save(model, filename, metadata=metadata, force_contiguous=force_contiguous)

    monkeypatch.setattr(safetensors.torch, "save_model", full_at_the_second)
    run = tmp_path / "run"
    argv = ["train", "--data", "synthetic:2", "--steps", "2", "--checkpoint-every", "1"]
    assert main([*argv, "--batch-size", "2", *TINY, "--out", str(run)]) == 2
    err = capsys.readouterr().err  # the progress bar's lines, then the error's
    assert err.endswith(f"\nfaster-rcnn: error: No space left on device: {run / 'joint'}\n")
    assert "Traceback" not in err
    assert TrainingCheckpoint.steps_in(run / "joint") == 1
    assert not (run / "joint.partial").exists()


def test_a_run_resumed_after_a_kill_mid_save_removes_what_the_save_left(tmp_path, capsys):
    """The temporary file of a model file cut off (5 MB here, a resnet50_fpn's 160 MB)
    stayed for good, one more each kill; ``<stage>.partial`` until the stage's next save."""
    run = tmp_path / "run"
    argv = ["train", "--data", "synthetic:2", "--batch-size", "2", *TINY, "--out", str(run)]
    assert main([*argv, "--steps", "1"]) == 0
    shutil.copytree(run / "joint", run / "joint.partial")  # killed before its renames
    cut_off = run / f".model.safetensors.41.{'0123456789abcdef' * 2}.tmp"
    cut_off.write_bytes((run / "model.safetensors").read_bytes()[:100])
    (run / "notes.tmp").write_text("the user's")
    assert main([*argv, "--steps", "2", "--resume"]) == 0
    assert "joint: resuming from step 1 of 2" in capsys.readouterr().out
    left = [".training.lock", "joint", "metrics.jsonl", "model.safetensors", "notes.tmp"]
    assert sorted(os.listdir(run)) == [*left, "training_splits.json"]


def test_evaluate_without_data_scores_what_the_model_was_trained_on(tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["train", "--data", "synthetic:4", "--steps", "1", "--out", str(run), *TINY]
    assert main(argv) == 0
    model = run / "model.safetensors"
    capsys.readouterr()
    assert main(["evaluate", "--model", str(model), "--out", str(tmp_path / "e")]) == 0
    out = capsys.readouterr().out
    assert f"scoring synthetic:4, the data {model} was trained on" in out
    assert "images: 4" in out  # synthetic:4's test split
    alone = tmp_path / "alone" / "model.safetensors"
    alone.parent.mkdir()
    alone.write_bytes(model.read_bytes())
    assert main(["evaluate", "--model", str(alone)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"faster-rcnn: error: --data: which dataset to score? Nothing beside {alone} names "
        "the one it was trained on (training_splits.json or split.json)"
    )


def test_a_model_of_the_rpn_trained_alone_warns_that_its_box_head_is_untrained(tmp_path, capsys):
    argv = ["train", "--data", "synthetic:4", "--steps", "1", "--scheme", "rpn", *TINY]
    assert main([*argv, "--out", str(tmp_path / "rpn")]) == 0
    model = tmp_path / "rpn" / "model.safetensors"
    capsys.readouterr()
    assert main(["evaluate", "--model", str(model), "--out", str(tmp_path / "e")]) == 0
    said = f"faster-rcnn: warning: {model}: the RPN was trained alone (--scheme rpn), its box"
    assert said in capsys.readouterr().err
    argv = ["train", "--data", "synthetic:4", "--steps", "1", *TINY]
    assert main([*argv, "--out", str(tmp_path / "joint")]) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a jointly trained model loads without a word
        load_model(tmp_path / "joint" / "model.safetensors")


def test_the_recipe_chooses_nothing_for_the_box_head_of_the_rpn_trained_alone(tmp_path, capsys):
    """On these images the recipe moves copies of the boxes into a joint run's RoIs,
    spreads them over the classes and selects its detections by Soft-NMS; the RPN alone
    never trains its box head: no line is about the head, and its model keeps the
    preset's head."""
    argv = ["train", "--data", "synthetic:4", "--steps", "1", *TINY]
    assert main([*argv, "--out", str(tmp_path / "joint")]) == 0
    printed = capsys.readouterr().out
    assert "roi_heads.gt_jitter = 4" in printed and "roi_heads.soft_nms_sigma = 0.3" in printed
    assert main([*argv, "--scheme", "rpn", "--out", str(tmp_path / "rpn")]) == 0
    printed = capsys.readouterr().out
    assert "roi_heads." not in printed
    roi_heads = read_model_config(tmp_path / "rpn" / "model.safetensors").roi_heads
    assert roi_heads == preset_config("small", 4).roi_heads


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file locks")
def test_a_second_training_run_in_the_same_out_is_refused_while_the_first_runs(tmp_path, capsys):
    import fcntl

    out = tmp_path / "run"
    argv = ["train", "--data", "synthetic:4", "--steps", "1", "--out", str(out), *TINY]
    out.mkdir()
    with open(out / ".training.lock", "a+") as held:  # as a run in progress holds it
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.write("4242\n")
        held.flush()
        assert main(argv) == 2
        assert capsys.readouterr().err.strip() == (
            f"faster-rcnn: error: {out} is being written by another training run (process "
            "4242): wait for it to end, or choose another --out"
        )
        assert not (out / "model.safetensors").exists()
    assert main(argv) == 0  # the lock went with its holder
    assert main(argv) == 0  # and a run's own lock with the run


def test_predict_reads_a_pattern_its_shell_left_unexpanded_and_each_image_once(tmp_path):
    """Windows' shells pass `images\\*.png` on as it is: predict expands it (image files
    only, sorted); a file named twice, or named and in a folder named, is read once."""
    from faster_rcnn.cli.predict import image_paths

    images = tmp_path / "images"
    images.mkdir()
    for name in ("b.png", "a.png", "c.jpg", "notes.txt"):
        (images / name).write_bytes(b"x")
    assert image_paths([images / "*.png"]) == [images / "a.png", images / "b.png"]
    assert image_paths([images / "[bc].*"]) == [images / "b.png", images / "c.jpg"]
    named = [images / "c.jpg", images / ".." / "images" / "c.jpg", images]
    assert image_paths(named) == [images / "c.jpg", images / "a.png", images / "b.png"]
    with pytest.raises(FileNotFoundError, match=r"no image file matches .*\*\.gif$"):
        image_paths([images / "*.gif"])


def test_predict_reads_a_double_star_pattern_at_every_depth_and_keeps_the_pictures_apart(
    tmp_path, capsys
):
    """A quoted ``photos/**/*.png`` read as ``photos/*/*.png``, one folder down alone (glob
    without ``recursive``): every depth now, sorted, each file once, its pictures named
    by their path where a name repeats, and an --out below the pattern's folder refused
    where the next run would read its pictures back (a hidden one is not read, as glob
    goes into no hidden folder)."""
    model = tmp_path / "model.safetensors"
    save_model(FasterRCNN.from_config(preset_config("small", 2)), model)
    photos = tmp_path / "photos"
    names = ["a/deep/img.png", "a/img.png", "b/img.png", "top.png"]
    for seed, name in enumerate(names):
        (photos / name).parent.mkdir(parents=True, exist_ok=True)
        to_pil(SyntheticShapes(1, image_size=(48, 64), seed=seed)[0][0]).save(photos / name)
    predict = ["predict", "--model", str(model), "--score", "0", "--out"]
    out = tmp_path / "p"
    assert main([*predict, str(out), str(photos / "**" / "*.png"), str(photos / "b/img.png")]) == 0
    detected = json.loads((out / "detections.json").read_text())
    assert {(d["image_id"], d["file_name"]) for d in detected} == {
        (k, str(photos / name)) for k, name in enumerate(names)
    }
    assert sorted(p.name for p in out.glob("*.png") if "_proposals" not in p.name) == [
        "a_deep_img_png.png",
        "a_img_png.png",
        "b_img_png.png",
        "top.png",
    ]
    assert " in 4 images -> " in capsys.readouterr().out
    inside = photos / "a" / "predicted"
    assert main([*predict, str(inside), str(photos / "**" / "*")]) == 2
    assert capsys.readouterr().err == (
        f"faster-rcnn: error: --out {inside}: predict reads {photos / '**' / '*'}, and would "
        "read the picture a_deep_img_png.png it writes there as an image the next time; "
        "choose another --out\n"
    )
    assert not inside.exists()
    (photos / "top.jpg").write_bytes((photos / "top.png").read_bytes())
    for kept, pattern in [(photos / ".predicted", "*"), (inside, "*.jpg")]:
        assert main([*predict, str(kept), str(photos / "**" / pattern)]) == 0
        assert (kept / "detections.json").is_file()


def test_predict_takes_the_same_image_files_named_as_in_a_folder(tmp_path):
    """A .gif named was detected, one in a folder left out: one list of suffixes, in any
    case, for a folder and a pattern."""
    from faster_rcnn.cli.predict import image_paths

    images = tmp_path / "images"
    images.mkdir()
    taken = ["a.gif", "b.WEBP", "c.TIF", "d.tiff", "e.BMP", "f.Jpeg", "g.PNG", "h.GIF"]
    for name in [*taken, "clip.mp4"]:
        (images / name).write_bytes(b"x")
    with pytest.warns(UserWarning, match=r"1 other file \(\.mp4\) left out"):
        assert image_paths([images]) == [images / name for name in sorted(taken)]
    assert image_paths([images / name for name in taken]) == [images / name for name in taken]
    assert image_paths([images / "*.gif"]) == [images / "a.gif"]
    # A file named is tried whatever its suffix, as PIL may read it (.jfif, .ppm).
    assert image_paths([images / "clip.mp4"]) == [images / "clip.mp4"]


def test_predict_reads_a_txt_list_of_images_as_the_yolo_readers_read_one(tmp_path):
    """A YOLO train.txt (any case of .txt) is a list of images, not a file to skip as no
    image: its paths are relative to its folder, `./` and Windows' `\\` too, and a first
    folder not in it is Darknet's data/ standing for it; in the list's order."""
    from faster_rcnn.cli.predict import image_paths

    data = tmp_path / "data"
    (data / "obj").mkdir(parents=True)
    for name in ("a.jpg", "b.jpg", "c.jpg", "d.jpg"):
        (data / "obj" / name).write_bytes(b"x")
    (data / "train.TXT").write_text(
        "data/obj/b.jpg\n\n./obj/a.jpg\nobj\\c.jpg\n" + f"{data / 'obj' / 'd.jpg'}\n"
    )
    obj = data / "obj"
    assert image_paths([data / "train.TXT"]) == [
        obj / "b.jpg",
        obj / "a.jpg",
        obj / "c.jpg",
        obj / "d.jpg",
    ]
    (data / "empty.txt").write_text("\n")
    with pytest.raises(ValueError, match=r"empty\.txt: lists no image \(a \.txt input is one"):
        image_paths([data / "empty.txt"])
    (data / "a.txt").write_text("0 0.5 0.5 0.2 0.1\n")  # a label file given for a list
    with pytest.raises(ValueError) as refused:
        image_paths([data / "a.txt"])
    assert str(refused.value) == (
        f"{data / 'a.txt'}, line 1: '0 0.5 0.5 0.2 0.1' is numbers, not an image path (a "
        "YOLO label file?): a .txt input lists image paths, one a line"
    )


def test_predict_detects_the_images_of_a_list_and_skips_one_not_there(tmp_path, capsys):
    main(["train", "--data", "synthetic:2", "--steps", "1", "--out", str(tmp_path / "r"), *TINY])
    (tmp_path / "images").mkdir()
    to_pil(SyntheticShapes(1, image_size=(80, 120), seed=3)[0][0]).save(tmp_path / "images/a.png")
    (tmp_path / "test.txt").write_text("images/a.png\nimages/gone.png\n")
    model, out = str(tmp_path / "r" / "model.safetensors"), tmp_path / "p"
    capsys.readouterr()
    argv = ["predict", "--model", model, str(tmp_path / "test.txt"), "--out", str(out)]
    assert main([*argv, "--score", "0"]) == 1
    captured = capsys.readouterr()
    assert captured.err == (
        f"faster-rcnn: warning: image file {tmp_path / 'images/gone.png'} does not exist; skipped\n"
    )
    assert " in 1 image (1 skipped) -> " in captured.out
    detections = json.loads((out / "detections.json").read_text())
    assert detections and {d["file_name"] for d in detections} == {str(tmp_path / "images/a.png")}
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "a_proposals.png", "detections.json"]


def test_train_and_the_demo_started_by_torchrun_as_several_processes_are_refused(
    tmp_path, capsys, monkeypatch
):
    """The commands train in one process: under `torchrun --nproc_per_node 2` each process
    would train alone, writing over the other's files in --out. Refused before anything
    is written; one process (WORLD_SIZE 1, as `torchrun --nproc_per_node 1` sets) trains."""
    out = tmp_path / "run"
    argv = ["train", "--data", "synthetic:4", "--steps", "1", "--out", str(out), *TINY]
    demo = ["demo", "--minutes", "0.05", "--test-images", "2", "--out", str(out)]
    monkeypatch.setenv("WORLD_SIZE", "2")
    for command, name in ((argv, "train"), (demo, "the demo")):
        assert main(command) == 2
        assert capsys.readouterr().err == (
            f"faster-rcnn: error: {name} trains in one process, and torchrun started 2 "
            "(WORLD_SIZE=2): each would train alone and write over the others' files in "
            "--out; data-parallel training is a script's that calls "
            "faster_rcnn.train.init_distributed() (README, Using it)\n"
        )
        assert not out.exists()
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert main(argv) == 0
    assert (out / "model.safetensors").is_file()
    # An empty WORLD_SIZE (a shell's `export WORLD_SIZE=`) is no torchrun: it trains.
    monkeypatch.setenv("WORLD_SIZE", "")
    empty = ["train", "--data", "synthetic:4", "--steps", "1", "--out", str(tmp_path / "e")]
    assert main([*empty, *TINY]) == 0


def test_sigterm_outside_training_is_not_taken_for_a_failure_of_the_code_it_lands_in(
    tmp_path, monkeypatch
):
    """Outside training SIGTERM raises where the command is; landing in an image's
    decoding, which takes any Exception for a corrupt file, it was an unreadable image,
    skipped, and the command went on."""
    from PIL import Image

    from faster_rcnn.cli.interrupted import Interrupted, interrupt
    from faster_rcnn.data import dataset

    path = tmp_path / "a.png"
    Image.new("RGB", (4, 4)).save(path)
    monkeypatch.setattr(
        dataset, "_rgb_pixels", lambda image, depth: signal.raise_signal(signal.SIGTERM)
    )
    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        with pytest.raises(Interrupted) as stop:
            read_image(path)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert stop.value.signum == signal.SIGTERM


def test_the_trained_line_counts_the_steps_skipped_for_a_non_finite_gradient(tmp_path, capsys):
    def overflowing_gradient(model, images, targets, generator):
        # sqrt(|w|) at w = 0: the loss is finite, its gradient NaN.
        w = model.rpn.head.cls_logits.bias
        return {"loss_root": (w * 0).abs().sqrt().sum() + 1.5}

    data = SyntheticShapes(2, image_size=(64, 64), seed=3, max_objects=1)
    config = preset_config("small", data.num_classes).replace(
        transform={"min_size": (64,), "max_size": 64}
    )
    cfg = TrainConfig(steps=2, batch_size=1, max_nonfinite_steps=3)
    trainer = Trainer(
        FasterRCNN.from_config(config), data, cfg, compute_losses=overflowing_gradient
    )
    with pytest.warns(UserWarning, match="non-finite gradient"):
        train_cli.fit_and_save(trainer, tmp_path)
    assert re.search(
        r"joint: 2 steps in \d+ s \(2 skipped: non-finite loss or gradient\)$",
        capsys.readouterr().out,
        re.MULTILINE,
    )
