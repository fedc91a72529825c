"""What ``train`` trains on where the data has splits: ``train`` and ``val`` joined when a
``test`` split is kept apart (VOC's ``trainval``), ``train`` alone otherwise; and the
warning of ``evaluate`` on a split the model was trained on."""

import argparse
import json
import shutil
import signal
from pathlib import Path

import pytest
import torch
from PIL import Image

from faster_rcnn.cli import main
from faster_rcnn.cli.splits import TRAINING_SPLITS_FILE, default_training_splits, training_images
from faster_rcnn.data import open_dataset
from faster_rcnn.data.holdout import SPLIT_FILE
from faster_rcnn.data.joined import JoinedDataset
from faster_rcnn.data.open import find_layout


def voc(root: Path, splits: dict[str, list[tuple[str, str, int]]]) -> Path:
    """A VOC dataset: per split, ``(image id, class, image width)`` of one-box images."""
    (root / "ImageSets" / "Main").mkdir(parents=True, exist_ok=True)
    (root / "Annotations").mkdir(exist_ok=True)
    (root / "JPEGImages").mkdir(exist_ok=True)
    for split, items in splits.items():
        ids = "".join(f"{image_id}\n" for image_id, _, _ in items)
        (root / "ImageSets" / "Main" / f"{split}.txt").write_text(ids)
        for image_id, name, width in items:
            Image.new("RGB", (width, 30), (90, 120, 200)).save(
                root / "JPEGImages" / f"{image_id}.jpg"
            )
            (root / "Annotations" / f"{image_id}.xml").write_text(
                f"<annotation><size><width>{width}</width><height>30</height></size><object>"
                f"<name>{name}</name><bndbox><xmin>2</xmin><ymin>3</ymin><xmax>20</xmax>"
                "<ymax>25</ymax></bndbox></object></annotation>"
            )
    return root


THREE_SPLITS = {
    "train": [("a", "dog", 40), ("b", "cat", 44)],
    "val": [("c", "cat", 48)],
    "test": [("d", "dog", 52)],
}


def test_joined_dataset_numbers_the_items_of_its_parts_in_order(tmp_path):
    root = voc(tmp_path, THREE_SPLITS)
    train = open_dataset(root, "train")
    val = open_dataset(root, "val", train.class_names)
    joined = JoinedDataset([train, val])
    assert len(joined) == 3 and joined.class_names == ("cat", "dog") and joined.num_classes == 3
    assert [joined.image_size(i) for i in range(3)] == [(30, 40), (30, 44), (30, 48)]
    assert [Path(f).stem for f in joined.image_files] == ["a", "b", "c"]
    image, target = joined[2]
    assert image.shape == (3, 30, 48) and target["image_id"] == 2
    assert target["labels"].tolist() == [1]  # cat, in train's class order
    assert torch.equal(joined.target(1)["boxes"], train.target(1)["boxes"])
    assert joined.target(1)["image_id"] == 1
    with pytest.raises(IndexError, match="index 3 out of range for 3 images"):
        joined[3]


def test_joined_dataset_refuses_parts_whose_classes_differ(tmp_path):
    root = voc(tmp_path, {"train": [("a", "dog", 40)], "val": [("c", "cat", 48)]})
    with pytest.raises(ValueError, match=r"different classes: \['dog'\] and \['cat'\]"):
        JoinedDataset([open_dataset(root, "train"), open_dataset(root, "val")])
    with pytest.raises(ValueError, match="no datasets"):
        JoinedDataset([])


@pytest.mark.parametrize(
    ("splits", "expected"),
    [
        (("train", "val", "test"), ("train", "val")),
        (("train", "val", "test", "trainval"), ("train", "val")),
        (("train", "test"), ("train",)),  # no validation images to add
        (("train", "val"), ("train",)),  # val is what evaluate scores
        (("trainval", "test"), ("train",)),  # train finds trainval
    ],
)
def test_default_training_splits(tmp_path, splits, expected):
    root = voc(tmp_path, {s: [(f"{s}0", "dog", 40)] for s in splits})
    assert default_training_splits(find_layout(root)) == expected


def test_voc_per_class_image_lists_are_not_splits(tmp_path):
    root = voc(tmp_path, THREE_SPLITS)
    for listed in ("dog_train", "dog_val", "cat_test", "my_dogs"):
        (root / "ImageSets" / "Main" / f"{listed}.txt").write_text("a -1\nb 1\n")
    layout = find_layout(root)
    assert layout.splits == ("my_dogs", "test", "train", "val")  # "dogs" is no split
    assert default_training_splits(layout) == ("train", "val")


def test_cvat_voc_without_subsets_is_its_default_list_without_splits(tmp_path, capsys):
    """CVAT's Pascal VOC export without subsets lists all its images in default.txt (and
    per class, car_default.txt): data without splits, which train takes whole and
    --val-fraction holds part of out. Beside a train.txt, default is a split as before."""
    items = [("a", "car", 40), ("b", "car", 44), ("c", "bus", 48)]
    data = voc(tmp_path / "data", {"default": items})
    (data / "ImageSets" / "Main" / "car_default.txt").write_text("a 1\nb 1\nc -1\n")
    layout = find_layout(data)
    assert layout.splits == () and default_training_splits(layout) == ("train",)
    assert [path.stem for path in open_dataset(data).image_files] == ["a", "b", "c"]
    assert main(["data", "--data", str(data)]) == 0
    printed = capsys.readouterr().out.splitlines()
    format_ = "Pascal VOC, all images in ImageSets/Main/default.txt (CVAT's export without subsets)"
    assert printed[0] == f"{data}: {format_}, no splits"
    assert printed[1] == "  all: 3 images, 3 boxes; image sizes 40x30 to 48x30 (width x height)"
    args = argparse.Namespace(data=str(data), split=None, val_fraction=None, split_seed=0)
    dataset, records = training_images(args)
    assert len(dataset) == 3 and records == {}
    assert capsys.readouterr().out == (
        f"{data}: {format_} without splits: training on all 3 images (--val-fraction F holds "
        "some out for evaluate)\n"
    )
    (data / "ImageSets" / "Main" / "train.txt").write_text("a\nb\n")
    layout = find_layout(data)
    assert (layout.format, layout.splits) == ("Pascal VOC", ("default", "train"))
    assert len(layout.open("train")) == 2


def test_generated_data_trains_on_train_alone():
    # Their validation and test images are the same ones (one seed).
    assert default_training_splits(find_layout("slides:2")) == ("train",)


def run_training(data: Path, out: Path, *extra: str) -> None:
    argv = ["train", "--data", str(data), "--steps", "1", "--batch-size", "1", "--out", str(out)]
    assert main([*argv, "--min-size", "64", "--max-size", "64", *extra]) == 0


def test_train_joins_val_where_test_is_kept_apart_and_evaluate_warns_on_it(tmp_path, capsys):
    data = voc(tmp_path / "data", THREE_SPLITS)
    assert main(["data", "--data", str(data)]) == 0
    assert "train trains on train and val together" in capsys.readouterr().out
    run_training(data, tmp_path / "run")
    printed = capsys.readouterr().out
    assert f"{data}: training on 2 train + 1 val images; test is kept for evaluate" in printed
    record = json.loads((tmp_path / "run" / TRAINING_SPLITS_FILE).read_text())
    assert record == {"data": str(data.resolve()), "splits": ["train", "val"]}

    model = str(tmp_path / "run" / "model.safetensors")
    assert main(["evaluate", "--model", model, "--data", str(data), "--split", "val"]) == 0
    assert "the model was trained on the val split" in capsys.readouterr().err
    assert main(["evaluate", "--model", model, "--data", str(data)]) == 0
    assert "trained on" not in capsys.readouterr().err  # test is held out


def test_an_empty_test_split_is_neither_kept_for_evaluate_nor_scored(tmp_path, capsys):
    """An empty ImageSets/Main/test.txt was a split: train joined val to train, keeping
    test 'for evaluate', which then could not open it."""
    data = voc(tmp_path / "data", {**THREE_SPLITS, "test": []})
    run_training(data, tmp_path / "run")
    assert "test is kept for evaluate" not in capsys.readouterr().out
    record = json.loads((tmp_path / "run" / TRAINING_SPLITS_FILE).read_text())
    assert record["splits"] == ["train"]
    model = str(tmp_path / "run" / "model.safetensors")
    assert main(["evaluate", "--model", model, "--data", str(data)]) == 0
    printed = capsys.readouterr().out
    assert f"{data} has no test split: using val" in printed
    assert "images: 1\n" in printed


def test_train_with_split_given_trains_on_it_alone(tmp_path, capsys):
    data = voc(tmp_path / "data", THREE_SPLITS)
    run_training(data, tmp_path / "run", "--split", "train")
    assert "training on" not in capsys.readouterr().out
    record = json.loads((tmp_path / "run" / TRAINING_SPLITS_FILE).read_text())
    assert record["splits"] == ["train"]
    model = str(tmp_path / "run" / "model.safetensors")
    assert main(["evaluate", "--model", model, "--data", str(data), "--split", "val"]) == 0
    assert "trained on" not in capsys.readouterr().err


def test_a_val_split_with_classes_train_lacks_is_left_out(tmp_path, capsys):
    splits = {**THREE_SPLITS, "val": [("c", "bird", 48)]}
    data = voc(tmp_path / "data", splits)
    assert main(["data", "--data", str(data)]) == 0
    described = capsys.readouterr().out.splitlines()
    assert described[-2:] == [
        "note: val has boxes of classes that train has none of, 'bird' (1 box): train's "
        "model never learns them, and evaluate scores them as never found (AP 0)",
        "train trains on train alone: val has a class it lacks; evaluate scores test",
    ]
    run_training(data, tmp_path / "run")
    printed = capsys.readouterr().out
    assert f"{data}: val not trained on: " in printed and "'bird'" in printed
    record = json.loads((tmp_path / "run" / TRAINING_SPLITS_FILE).read_text())
    assert record["splits"] == ["train"]


def test_data_names_the_test_classes_training_never_sees(tmp_path, capsys):
    """A test split with a class train and val have no box of: data says so, once per
    split (val has only classes train has: no note, and it joins train)."""
    splits = {**THREE_SPLITS, "test": [("d", "dog", 52), ("e", "fox", 52), ("f", "fox", 40)]}
    data = voc(tmp_path / "data", splits)
    assert main(["data", "--data", str(data)]) == 0
    notes = [line for line in capsys.readouterr().out.splitlines() if "none of" in line]
    assert notes == [
        "note: test has boxes of classes that train and val have none of, 'fox' (2 boxes): "
        "train's model never learns them, and evaluate scores them as never found (AP 0)"
    ]


def without_splits(root: Path, images: int) -> Path:
    """VOC XML files without ImageSets/: a dataset without splits."""
    voc(root, {"all": [(f"i{k}", "dog", 40) for k in range(images)]})
    shutil.rmtree(root / "ImageSets")
    return root


def test_a_run_that_fails_leaves_the_records_beside_the_model_as_they_were(tmp_path, capsys):
    """evaluate takes the records beside a model for that model's: a run refused before
    the data is read, or stopped by an error after, leaves the earlier run's (and a
    refused run into a new folder makes none)."""
    run = tmp_path / "run"
    run_training(voc(tmp_path / "data", THREE_SPLITS), run)
    record = (run / TRAINING_SPLITS_FILE).read_text()
    other = without_splits(tmp_path / "other", 4)
    (tmp_path / "text.pth").write_text("not weights")
    failures = {
        ("--preset", "mobilenet_v2_fpn", "--weights", str(tmp_path / "text.pth")): "--weights "
        f"{tmp_path / 'text.pth'} is not a PyTorch checkpoint or safetensors file (not a pickle)",
        ("--resume", "--scheme", "rpn"): f"{run} holds a finished --scheme joint run "
        f"({run / 'joint'}), not a --scheme rpn one: give --scheme joint --resume to continue it",
        # Refused once the data is read: other classes than the checkpoint's.
        ("--resume", "--val-fraction", "0.5"): "was trained on the classes ['cat', 'dog'], not "
        "['dog']",
    }
    capsys.readouterr()
    for options, said in failures.items():
        argv = ["train", "--data", str(other), "--steps", "1", *options, "--out", str(run)]
        assert main(argv) == 2
        assert (run / TRAINING_SPLITS_FILE).read_text() == record
        assert not (run / SPLIT_FILE).exists()
        assert said in capsys.readouterr().err
    fresh = tmp_path / "fresh"
    assert main(["train", "--weights", str(tmp_path / "text.pth"), "--out", str(fresh)]) == 2
    assert not fresh.exists()


def test_a_run_leaves_no_record_of_an_earlier_one_beside_its_model(tmp_path, capsys):
    data = voc(tmp_path / "data", THREE_SPLITS)
    run = tmp_path / "run"
    run_training(data, run)
    other = without_splits(tmp_path / "other", 4)
    run_training(other, run, "--val-fraction", "0.5")
    assert not (run / TRAINING_SPLITS_FILE).exists()  # it named the first run's data
    capsys.readouterr()
    assert main(["evaluate", "--model", str(run / "model.safetensors")]) == 0
    printed = capsys.readouterr().out
    assert f"scoring {other}, the data {run / 'model.safetensors'} was trained on" in printed
    assert f"scoring the 2 images held out in {run / SPLIT_FILE}" in printed
    run_training(data, run)
    assert not (run / SPLIT_FILE).exists() and (run / TRAINING_SPLITS_FILE).is_file()


def killed(*_args, **_kwargs):
    """Stands in for a step of training as a signal that kills the run there."""
    raise KeyboardInterrupt


def test_evaluate_scores_the_checkpoint_of_an_unfinished_run_on_its_held_out_images(
    tmp_path, capsys, monkeypatch
):
    """A run stopped before its model file (or still going) had written no records:
    evaluate of its checkpoint found no data without --data, and with it scored all the
    images, the 2 trained on among them, instead of the 2 held out."""
    data = without_splits(tmp_path / "data", 4)
    run = tmp_path / "run"
    monkeypatch.setattr("faster_rcnn.cli.train.save_model", killed)  # the run's model file
    argv = ["train", "--data", str(data), "--steps", "2", "--checkpoint-every", "1"]
    argv += ["--batch-size", "1", "--min-size", "64", "--max-size", "64", "--out", str(run)]
    assert main([*argv, "--val-fraction", "0.5"]) == 128 + signal.SIGINT
    checkpoint = run / "joint" / "model.safetensors"
    assert checkpoint.is_file() and not (run / "model.safetensors").exists()
    assert len(json.loads((run / SPLIT_FILE).read_text())["val"]) == 2
    capsys.readouterr()
    held = f"scoring the 2 images held out in {run / SPLIT_FILE}"
    assert main(["evaluate", "--model", str(checkpoint)]) == 0
    printed = capsys.readouterr().out
    assert f"scoring {data}, the data {checkpoint} was trained on" in printed
    assert held in printed and "images: 2\n" in printed
    assert main(["evaluate", "--model", str(checkpoint), "--data", str(data)]) == 0
    captured = capsys.readouterr()
    assert held in captured.out and "images: 2\n" in captured.out
    assert "warning" not in captured.err


@pytest.mark.parametrize(
    "stop", ["faster_rcnn.train.trainer.Trainer.fit", "faster_rcnn.cli.train.save_model"]
)
def test_the_records_of_a_run_stopped_while_replacing_a_finished_one_are_not_its_models(
    tmp_path, capsys, monkeypatch, stop
):
    """A run replacing a finished one writes its records as it begins, over the finished
    run's: stopped before its first step, or before its model file, the records beside the
    finished run's model file are the stopped run's, and evaluate does not take them for
    the model's (it would score the model on another dataset, or on images it trained on)."""
    run = tmp_path / "run"
    run_training(voc(tmp_path / "data", THREE_SPLITS), run)
    other = without_splits(tmp_path / "other", 4)
    monkeypatch.setattr(stop, killed)
    argv = ["train", "--data", str(other), "--steps", "1", "--val-fraction", "0.5"]
    argv += ["--min-size", "64", "--max-size", "64", "--out", str(run)]
    assert main(argv) == 128 + signal.SIGINT
    assert json.loads((run / SPLIT_FILE).read_text())["data"] == str(other.resolve())
    assert not (run / TRAINING_SPLITS_FILE).exists()
    model = run / "model.safetensors"
    capsys.readouterr()
    assert main(["evaluate", "--model", str(model)]) == 2
    captured = capsys.readouterr()
    assert captured.out == (
        f"note: {run / SPLIT_FILE} is that of a run begun after {model} that did not finish: "
        "not read as the model's\n"
    )
    assert captured.err == (
        "faster-rcnn: error: --data: which dataset to score? Nothing beside "
        f"{model} names the one it was trained on (training_splits.json or split.json)\n"
    )


@pytest.mark.parametrize(
    "splits",
    [
        THREE_SPLITS,  # val joins train: --val-fraction would hold out val images too
        {"train": THREE_SPLITS["train"], "val": THREE_SPLITS["val"]},  # evaluate scores val
    ],
)
def test_val_fraction_is_refused_where_the_data_has_a_validation_split(tmp_path, capsys, splits):
    """Images held out of data with splits are scored nowhere (evaluate scores its test
    or val split): --val-fraction there is refused in one line, naming the data's own,
    before anything is written."""
    data = voc(tmp_path / "data", splits)
    out = tmp_path / "run"
    argv = ["train", "--data", str(data), "--steps", "1", "--out", str(out)]
    assert main([*argv, "--val-fraction", "0.5"]) == 2
    assert capsys.readouterr().err == (
        f"faster-rcnn: error: --val-fraction 0.5: {data} has a validation split of its own, "
        "val (1 image): --val-fraction is for data without one (evaluate scores the data's "
        "own splits, not images held out of train): leave it out\n"
    )
    assert not out.exists()


def test_val_fraction_holds_part_of_train_out_where_the_data_has_no_validation_split(
    tmp_path, capsys
):
    """Data with train and test but no val: the part held out of train is its val, which
    evaluate --split val scores (test stays the default); on data with train alone, the
    held-out part is the default."""
    splits = {"train": [("a", "dog", 40), ("b", "dog", 44)], "test": THREE_SPLITS["test"]}
    data = voc(tmp_path / "data", splits)
    run_training(data, tmp_path / "run", "--val-fraction", "0.5")
    assert (
        f"{data}: 1 of 2 images held out for evaluation (--val-fraction 0.5, --split-seed 0), "
        f"listed in {tmp_path / 'run' / SPLIT_FILE} with the model; evaluate --split val "
        "scores them"
    ) in capsys.readouterr().out
    record = json.loads((tmp_path / "run" / SPLIT_FILE).read_text())
    assert record["split"] == "train" and record["val"] in (["a.jpg"], ["b.jpg"])
    evaluate = ["evaluate", "--model", str(tmp_path / "run" / "model.safetensors")]
    held = f"scoring the 1 image of train held out in {tmp_path / 'run' / SPLIT_FILE}"
    assert main([*evaluate, "--data", str(data), "--split", "val"]) == 0
    printed = capsys.readouterr().out
    assert held in printed and "images: 1\n" in printed
    assert main([*evaluate, "--data", str(data)]) == 0
    assert held not in capsys.readouterr().out  # test

    (data / "ImageSets" / "Main" / "test.txt").unlink()
    assert main([*evaluate, "--data", str(data)]) == 0
    assert held in capsys.readouterr().out


def test_evaluate_val_fraction_scores_the_images_train_held_out_of_train(tmp_path, capsys):
    """On data with train and test splits, evaluate --val-fraction scores the part of
    train that train --val-fraction held out, not a part of test (which no run held
    out); where the model trained on all of train, it says so."""
    splits = {
        "train": [(f"t{k}", "dog", 40) for k in range(6)],
        "test": [(f"s{k}", "dog", 40) for k in range(4)],
    }
    data = voc(tmp_path / "data", splits)
    run_training(data, tmp_path / "held", "--val-fraction", "0.5")
    capsys.readouterr()
    argv = ["evaluate", "--data", str(data), "--val-fraction", "0.5", "--out", str(tmp_path)]
    assert main([*argv, "--model", str(tmp_path / "held" / "model.safetensors")]) == 0
    captured = capsys.readouterr()
    said = f"{data} (train): scoring the 3 of 6 images held out by --val-fraction 0.5"
    assert said in captured.out and "images: 3" in captured.out
    assert "trained on" not in captured.err
    run_training(data, tmp_path / "whole")
    capsys.readouterr()
    assert main([*argv, "--model", str(tmp_path / "whole" / "model.safetensors")]) == 0
    assert "the model was trained on the train split" in capsys.readouterr().err


def test_evaluate_refuses_val_fraction_where_the_data_has_a_validation_split(tmp_path, capsys):
    """As train refuses it: such data is scored on its own splits."""
    data = voc(tmp_path / "data", THREE_SPLITS)
    run_training(data, tmp_path / "run")
    capsys.readouterr()
    model = str(tmp_path / "run" / "model.safetensors")
    assert main(["evaluate", "--model", model, "--val-fraction", "0.5"]) == 2
    assert capsys.readouterr().err == (
        f"faster-rcnn: error: --val-fraction 0.5: {data.resolve()} has a validation split of "
        "its own, val (1 image): --val-fraction is for data without one (evaluate scores the "
        "data's own splits, not images held out of train): leave it out\n"
    )


def test_val_fraction_on_a_single_image_names_the_data_and_the_option(tmp_path, capsys):
    """'cannot hold out part of 1 image(s): two are needed' named neither the data nor
    --val-fraction, which asked for it."""
    data = voc(tmp_path / "data", {"train": [("a", "dog", 40)], "test": [("d", "dog", 52)]})
    refusal = (
        "--val-fraction 0.5: {} (train) holds 1 image, and two are needed to hold one out "
        "and train on the other: add images, or leave --val-fraction out to take them all\n"
    )
    argv = ["train", "--data", str(data), "--steps", "1", "--out", str(tmp_path / "held")]
    assert main([*argv, "--val-fraction", "0.5"]) == 2
    assert capsys.readouterr().err == f"faster-rcnn: error: {refusal.format(data)}"
    assert not (tmp_path / "held").exists()
    run_training(data, tmp_path / "run")
    capsys.readouterr()
    model = str(tmp_path / "run" / "model.safetensors")
    evaluate = ["evaluate", "--model", model, "--split", "train", "--val-fraction", "0.5"]
    assert main(evaluate) == 2
    assert capsys.readouterr().err == f"faster-rcnn: error: {refusal.format(data.resolve())}"


def test_a_split_name_that_data_without_splits_lacks_is_refused(tmp_path, capsys):
    """Data without splits gave all its images for any --split: evaluate --split bogus
    scored them all, predict --split test and train --split X took them all. train names
    all of them there (train, anchors, evaluate), val the images held out by
    --val-fraction or the model's split.json (evaluate); any other name is refused."""
    data = without_splits(tmp_path / "data", 2)
    run = tmp_path / "run"
    run_training(data, run, "--split", "train")
    model = str(run / "model.safetensors")
    evaluate = ["evaluate", "--model", model, "--data", str(data)]
    no_val = (
        "--split train scores all its images; there is no 'val' without --val-fraction F "
        f"(given here, or to train, which writes {run / SPLIT_FILE})"
    )
    refused = [
        (
            ["train", "--data", str(data), "--steps", "1", "--out", str(tmp_path / "r")],
            "X",
            "train takes all its images: leave --split out",
        ),
        (evaluate, "bogus", no_val),
        (evaluate, "val", no_val),
        (
            [*evaluate, "--val-fraction", "0.5"],
            "test",
            "--val-fraction scores the images it holds out of all of them: leave --split out",
        ),
        (
            ["predict", "--model", model, "--data", str(data), "--out", str(tmp_path / "p")],
            "test",
            "predict takes all its images: leave --split out",
        ),
        (
            ["anchors", "--data", str(data), "--out", str(tmp_path / "a")],
            "val",
            "anchors measures all its images: leave --split out",
        ),
    ]
    capsys.readouterr()
    for argv, split, said in refused:
        assert main([*argv, "--split", split]) == 2, argv
        assert capsys.readouterr().err.strip() == (
            f"faster-rcnn: error: --split {split}: {data} (Pascal VOC XML files (no "
            f"ImageSets/)) has no splits; {said}"
        )
    # The refused train made no folder (it is refused after taking the folder's lock).
    assert not (tmp_path / "r").exists()
    assert not (tmp_path / "r" / "model.safetensors").exists()
    assert not (tmp_path / "p" / "detections.json").exists()
    assert main([*evaluate, "--split", "train"]) == 0
    assert "scoring all 2 images, which training may have seen" in capsys.readouterr().err
    assert main([*evaluate, "--split", "val", "--val-fraction", "0.5"]) == 0
    assert "scoring the 1 of 2 images held out by --val-fraction 0.5" in capsys.readouterr().out


def coco_split(root: Path, split: str, images: int) -> Path:
    """COCO's layout with one split: ``annotations/instances_<split>.json``, one box an
    image, its images in ``<split>/``."""
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / split).mkdir()
    names = [f"{split}{k}.jpg" for k in range(images)]
    for name in names:
        Image.new("RGB", (40, 30), (90, 120, 200)).save(root / split / name)
    coco = {
        "images": [
            {"id": k, "file_name": n, "width": 40, "height": 30} for k, n in enumerate(names)
        ],
        "annotations": [
            {"id": k, "image_id": k, "category_id": 1, "bbox": [2, 3, 18, 22], "iscrowd": 0}
            for k in range(images)
        ],
        "categories": [{"id": 1, "name": "dog"}],
    }
    (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(coco))
    return root


def test_coco_with_train2017_alone_trains_on_it_by_its_name_too(tmp_path, capsys):
    """COCO's annotations/instances_train2017.json alone is the split train2017, as the
    README's --split train2017 names it (it was data without splits, which refused the
    name); evaluate asks which split to score, as on YOLO data with train alone."""
    data = coco_split(tmp_path / "data", "train2017", 2)
    assert main(["data", "--data", str(data)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == f"{data}: COCO, splits train2017"
    assert printed[-1] == (
        "one split: `train --split train2017 --val-fraction 0.2` holds out a reproducible "
        "fifth of its images, which `evaluate` then scores"
    )
    run_training(data, tmp_path / "run", "--split", "train2017")
    printed = capsys.readouterr().out
    assert (
        f"{data}: COCO with one split, train2017: training on all 2 images (--val-fraction F "
        "holds some out for evaluate)"
    ) in printed
    assert "\njoint: 1 step in " in printed  # --steps 1
    record = json.loads((tmp_path / "run" / TRAINING_SPLITS_FILE).read_text())
    assert record == {"data": str(data.resolve()), "splits": ["train2017"]}
    evaluate = ["evaluate", "--model", str(tmp_path / "run" / "model.safetensors")]
    assert main([*evaluate, "--data", str(data)]) == 2
    assert capsys.readouterr().err == (
        f"faster-rcnn: error: {data} (COCO) has the split train2017; none fits 'test' "
        "(nor 'val'): name the split to score, --split train2017\n"
    )
    assert main([*evaluate, "--data", str(data), "--split", "train2017"]) == 0
    assert "the model was trained on the train2017 split" in capsys.readouterr().err


def test_coco_with_val2017_alone_trains_on_it_when_named_and_holds_part_out(tmp_path, capsys):
    """With val2017 alone, train asks for the split by name; --val-fraction then holds
    part of it out (val2017 is the only split, not a validation split kept from training),
    and evaluate scores that part; predict --data takes val2017."""
    data = coco_split(tmp_path / "data", "val2017", 4)
    run = tmp_path / "run"
    argv = ["train", "--data", str(data), "--steps", "1", "--out", str(run)]
    assert main(argv) == 2
    assert capsys.readouterr().err == (
        f"faster-rcnn: error: {data} (COCO) has the split val2017; none fits 'train': "
        "--split val2017 trains on it (add --val-fraction 0.2 to hold a fifth of it out: "
        "evaluate has no other split to score)\n"
    )
    run_training(data, run, "--split", "val2017", "--val-fraction", "0.5")
    assert f"{data}: 2 of 4 images held out for evaluation" in capsys.readouterr().out
    assert json.loads((run / SPLIT_FILE).read_text())["split"] == "val2017"
    model = str(run / "model.safetensors")
    assert main(["evaluate", "--model", model, "--data", str(data)]) == 0
    printed = capsys.readouterr().out
    assert (
        f"{data} has no val split apart from val2017: scoring the 2 images of val2017 held "
        f"out in {run / SPLIT_FILE}"
    ) in printed
    assert "images: 2\n" in printed
    argv = ["evaluate", "--model", model, "--data", str(data), "--val-fraction", "0.5"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert f"{data} (val2017): scoring the 2 of 4 images held out by" in printed
    argv = ["predict", "--model", model, "--data", str(data), "--out", str(tmp_path / "p")]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert f"{data} has no test split: using val" in printed
    assert " in 4 images -> " in printed


def test_a_lone_split_not_named_train_is_named_by_the_option_train_refuses_without(
    tmp_path, capsys
):
    """Roboflow's export of valid/ alone, or ImageSets/Main/val.txt alone: train asked for
    --split without naming it. It names the one to pass; trained on that split, evaluate
    scores it (the only split there is) and warns that the model was trained on it."""
    data = voc(tmp_path / "data", {"val": [("a", "dog", 40), ("b", "cat", 44)]})
    run = tmp_path / "run"
    argv = ["train", "--data", str(data), "--steps", "1", "--out", str(run)]
    assert main(argv) == 2
    assert capsys.readouterr().err == (
        f"faster-rcnn: error: {data} (Pascal VOC) has the split val; none fits 'train': "
        "--split val trains on it (add --val-fraction 0.2 to hold a fifth of it out: "
        "evaluate has no other split to score)\n"
    )
    assert not run.exists()
    run_training(data, run, "--split", "val")
    assert f"{data}: Pascal VOC with one split, val: training on all 2 images" in (
        capsys.readouterr().out
    )
    assert main(["evaluate", "--model", str(run / "model.safetensors"), "--data", str(data)]) == 0
    captured = capsys.readouterr()
    assert f"{data} has no test split: using val" in captured.out
    assert "images: 2\n" in captured.out
    assert f"the model was trained on the val split of {data}" in captured.err
    voc(tmp_path / "more", {"val": [("c", "dog", 40)], "test": [("d", "dog", 40)]})
    argv = ["train", "--data", str(tmp_path / "more"), "--steps", "1", "--out", str(run)]
    assert main(argv) == 2
    assert capsys.readouterr().err.endswith(
        "none fits 'train': name the split to train on: --split test or --split val\n"
    )
