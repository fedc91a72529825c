"""faster-rcnn convert: a torchvision checkpoint as a model file the other commands run."""

import pytest
import torch
from safetensors.torch import save_file

from faster_rcnn import FasterRCNN, load_torchvision_checkpoint
from faster_rcnn.cli import main
from faster_rcnn.data.synthetic import SyntheticShapes
from faster_rcnn.insight.draw import to_pil
from faster_rcnn.models import preset_config
from faster_rcnn.train.checkpoint import load_model, save_model

PRESET = "mobilenet_v3_large_320_fpn"


@pytest.fixture(scope="module")
def coco_file(tmp_path_factory):
    """A 91-output checkpoint laid out as torchvision's (this preset is its module tree)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("torchvision") / "fasterrcnn_coco.pth"
    torch.save(FasterRCNN.from_config(preset_config(PRESET, 91)).state_dict(), path)
    return path


def test_the_model_file_detects_as_the_checkpoint_and_names_coco_s_classes(
    coco_file, tmp_path, capsys
):
    out = tmp_path / "coco.safetensors"
    assert main(["convert", str(coco_file), "--preset", PRESET, "--out", str(out)]) == 0
    assert capsys.readouterr().out == (
        f"{coco_file} -> {out} ({PRESET}; classes person, bicycle, car, motorcycle, "
        "airplane, ... (90 in all))\n"
    )
    converted = load_model(out)
    assert converted.config.class_names[:2] == ("person", "bicycle")
    assert converted.config.class_names[11] == "N/A 12"
    image = SyntheticShapes(1, image_size=(120, 160), seed=1)[0][0]
    reference = load_torchvision_checkpoint(coco_file, PRESET)
    with torch.no_grad():
        _, ours = converted.detect_with_proposals([image])
        _, theirs = reference.detect_with_proposals([image])
    assert len(ours[0]["boxes"]) > 0 and torch.equal(ours[0]["boxes"], theirs[0]["boxes"])
    to_pil(image).save(tmp_path / "image.png")
    predict = ["predict", "--model", str(out), str(tmp_path / "image.png")]
    assert main([*predict, "--out", str(tmp_path / "p")]) == 0
    assert (tmp_path / "p" / "detections.json").is_file()


@pytest.mark.parametrize(
    ("head", "detector", "tensors"),
    [
        ("mask", "Mask R-CNN", ["mask_head.0.0.weight", "mask_predictor.mask_fcn_logits.bias"]),
        (
            "keypoint",
            "Keypoint R-CNN",
            ["keypoint_head.0.weight", "keypoint_predictor.kps_score_lowres.weight"],
        ),
    ],
)
def test_a_mask_or_keypoint_rcnn_checkpoint_converts_less_its_added_head(
    coco_file, tmp_path, capsys, head, detector, tensors
):
    """torchvision's Mask R-CNN and Keypoint R-CNN are the Faster R-CNN with a head added
    that changes no box: convert said "is it another preset's checkpoint?"; it leaves that
    head out, says so, and the model detects as the Faster R-CNN file of the same
    weights."""
    state = torch.load(coco_file, weights_only=True)
    path = tmp_path / f"{head}rcnn.pth"
    torch.save({**state, **{f"roi_heads.{key}": torch.ones(2, 3) for key in tensors}}, path)
    out = tmp_path / f"{head}.safetensors"
    assert main(["convert", str(path), "--preset", PRESET, "--out", str(out)]) == 0
    printed = capsys.readouterr()
    assert printed.err == (
        f"faster-rcnn: warning: {path} is a torchvision {detector} checkpoint: its {head} head "
        f"(2 tensors) is left out; the rest is the Faster R-CNN it is built on, which detects "
        f"the same boxes (no {head}s)\n"
    )
    assert printed.out.startswith(f"{path} -> {out} ({PRESET}; classes person, bicycle")
    converted, reference = load_model(out), load_torchvision_checkpoint(coco_file, PRESET)
    assert converted.state_dict().keys() == reference.state_dict().keys()
    for key, value in reference.state_dict().items():
        assert torch.equal(converted.state_dict()[key], value), key


def test_names_are_given_one_per_class_or_the_run_says_how_many(coco_file, tmp_path, capsys):
    out = tmp_path / "m.safetensors"
    argv = ["convert", str(coco_file), "--preset", PRESET, "--out", str(out), "--classes"]
    assert main([*argv, "cat", "dog"]) == 2
    assert capsys.readouterr().err == (
        f"faster-rcnn: error: {coco_file} has 90 classes besides the background, but 2 "
        "class names were given\n"
    )
    assert not out.exists()
    names = [f"c{k}" for k in range(1, 91)]
    assert main([*argv, *names]) == 0
    assert load_model(out).config.class_names == tuple(names)


def test_a_file_of_other_outputs_records_no_names_and_says_what_they_are_called(tmp_path, capsys):
    """Without --classes, a file of other than COCO's 91 outputs is written without class
    names, as the help says; the line says so, and what the commands that run the model
    call its outputs, rather than giving those placeholders as its classes."""
    torch.manual_seed(0)
    path = tmp_path / "three.pth"
    torch.save(FasterRCNN.from_config(preset_config(PRESET, 4)).state_dict(), path)
    out = tmp_path / "three.safetensors"
    assert main(["convert", str(path), "--preset", PRESET, "--out", str(out)]) == 0
    assert capsys.readouterr().out == (
        f"{path} -> {out} ({PRESET}; 3 classes without names, which predict, evaluate and "
        "explain call class1, class2, class3: --classes NAME ... names them)\n"
    )
    config = load_model(out).config
    assert config.class_names == () and config.label_names() == ("class1", "class2", "class3")
    with pytest.raises(SystemExit):
        main(["convert", "--help"])
    assert (
        "else the model file names none, and predict, evaluate and explain call them "
        "class1, class2, ...)"
    ) in " ".join(capsys.readouterr().out.split())


def test_convert_refuses_another_preset_s_file_and_an_out_it_would_overwrite(
    coco_file, tmp_path, capsys
):
    """An --out named otherwise than .safetensors is refused, there or not yet (a model
    file named .onnx passes for an exported model that predict --onnx cannot run), and
    so is a .safetensors file that is not a model file."""
    notes, exported = tmp_path / "notes.txt", tmp_path / "model.onnx"
    notes.write_text("mine")
    for out in (notes, exported):
        assert main(["convert", str(coco_file), "--out", str(out)]) == 2
        assert capsys.readouterr().err == (
            f"faster-rcnn: error: --out {out} does not end in .safetensors: convert writes "
            "a model file (safetensors); name the .safetensors file to write\n"
        )
    assert notes.read_text() == "mine" and not exported.exists()
    weights = tmp_path / "weights.safetensors"
    save_file({"w": torch.zeros(2)}, weights)
    assert main(["convert", str(coco_file), "--out", str(weights)]) == 2
    assert capsys.readouterr().err == (
        f"faster-rcnn: error: --out {weights} exists and is not a model file: convert "
        "overwrites only model files; name the file to write\n"
    )
    assert main(["convert", str(coco_file), "--out", str(tmp_path / "r50.safetensors")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        f"faster-rcnn: error: {coco_file} does not fit the resnet50_fpn preset: 2"
    )
    assert err.endswith("is it another preset's checkpoint?\n") and err.count("\n") == 1


def test_a_model_file_of_ours_is_refused_not_stripped_of_its_config(tmp_path, capsys):
    """Loaded into the preset, it would lose its class names, resize and thresholds."""
    config = preset_config(PRESET, 2).replace(
        class_names=("raccoon",), transform={"min_size": (256,)}, roi_heads={"score_thresh": 0.5}
    )
    model_file, out = tmp_path / "raccoon.safetensors", tmp_path / "converted.safetensors"
    save_model(FasterRCNN.from_config(config), model_file)
    assert main(["convert", str(model_file), "--preset", PRESET, "--out", str(out)]) == 2
    assert capsys.readouterr().err == (
        f"faster-rcnn: error: {model_file} is a model file of this package already (classes "
        "raccoon): load_model reads it with its own config and class names, which a "
        "preset's would replace, and every command takes it as it is\n"
    )
    assert not out.exists()
    assert load_model(model_file).config == config


def test_a_checkpoint_given_as_a_model_file_points_to_convert(coco_file, capsys):
    assert main(["evaluate", "--model", str(coco_file), "--data", "slides:1"]) == 2
    assert capsys.readouterr().err == (
        f"faster-rcnn: error: --model {coco_file} is a PyTorch checkpoint, not a model file: "
        f"`faster-rcnn convert {coco_file} --preset P` makes one of a torchvision "
        "Faster R-CNN's\n"
    )


def test_a_text_file_or_a_cut_off_checkpoint_given_as_a_model_is_said_unreadable(tmp_path, capsys):
    """A text file was refused in safetensors' words ("Error while deserializing header:
    header too small"); a cut-off checkpoint was sent to convert, which cannot read it."""
    text, cut = tmp_path / "classes.txt", tmp_path / "cut.pth"
    text.write_text("cat\n")
    torch.save({"model": {"w": torch.zeros(100)}}, cut)
    cut.write_bytes(cut.read_bytes()[:100])
    assert main(["evaluate", "--model", str(text), "--data", "synthetic:2"]) == 2
    assert capsys.readouterr().err == (
        f"faster-rcnn: error: --model {text} is not a readable model file (no safetensors "
        "header at its start)\n"
    )
    assert main(["evaluate", "--model", str(cut), "--data", "synthetic:2"]) == 2
    assert capsys.readouterr().err == (
        f"faster-rcnn: error: --model {cut} cannot be read: a PyTorch checkpoint, cut off: "
        "its zip archive ends before its directory\n"
    )


@pytest.mark.parametrize(("cut", "where"), [(100, "mid-pickle"), (-10, "within its tensors")])
def test_a_cut_off_legacy_format_checkpoint_given_as_a_model_is_said_unreadable(
    tmp_path, capsys, cut, where
):
    """torch.save's format before PyTorch 1.6, cut off, was sent to convert as a
    checkpoint (which cannot read it); whole, it still is."""
    path = tmp_path / "model.pth"
    torch.save({"model": {"w": torch.zeros(100)}}, path, _use_new_zipfile_serialization=False)
    whole = path.read_bytes()
    path.write_bytes(whole[:cut])
    for command in (["evaluate", "--data", "synthetic:2"], ["predict", "x.png"]):
        assert main([*command, "--model", str(path)]) == 2
        assert capsys.readouterr().err == (
            f"faster-rcnn: error: --model {path} cannot be read: a PyTorch checkpoint, cut "
            f"off: it ends {where}\n"
        )
    path.write_bytes(whole)
    assert main(["evaluate", "--model", str(path), "--data", "synthetic:2"]) == 2
    assert capsys.readouterr().err == (
        f"faster-rcnn: error: --model {path} is a PyTorch checkpoint, not a model file: "
        f"`faster-rcnn convert {path} --preset P` makes one of a torchvision Faster R-CNN's\n"
    )


def test_a_training_runs_state_points_to_its_model_file_not_convert(tmp_path, capsys):
    """<run>/joint/state.pt given to convert said only "got dict": it is a run's training
    state, whose model is a model file already (the run's, or before the run wrote one,
    the checkpoint's own, which train --resume finishes)."""
    run = tmp_path / "run"
    argv = ["train", "--data", "synthetic:2", "--steps", "1", "--batch-size", "2"]
    assert main([*argv, "--min-size", "96", "--max-size", "128", "--out", str(run)]) == 0
    state, model = run / "joint" / "state.pt", run / "model.safetensors"
    capsys.readouterr()
    assert main(["convert", str(state)]) == 2
    said = (
        f"faster-rcnn: error: {state} is the state (optimizer, step) of a training run's "
        "checkpoint, not a torchvision checkpoint, and its model needs no converting: use "
    )
    assert capsys.readouterr().err == f"{said}the run's model file, {model}\n"
    model.unlink()  # as a run stopped before its end leaves it
    assert main(["convert", str(state), "--preset", PRESET]) == 2
    assert capsys.readouterr().err == (
        f"{said}the checkpoint's own, {run / 'joint' / 'model.safetensors'} (`train --resume "
        f"--out {run}` finishes the run and writes {model})\n"
    )
    assert sorted(path.name for path in (run / "joint").iterdir()) == [
        "model.safetensors",
        "state.pt",
    ]


def test_convert_refuses_a_training_run_s_model_file_but_writes_over_its_own(
    coco_file, tmp_path, capsys
):
    """A run's records and checkpoints describe its model.safetensors: convert writing
    another model there left them describing a model they are not (silently), and so does
    one written where the model of a run that did not finish will go. A model file
    beside no run's files, as convert writes, is written over, as before."""
    run = tmp_path / "run"
    train = ["train", "--data", "synthetic:2", "--steps", "1", "--out", str(run)]
    assert main([*train, "--min-size", "96", "--max-size", "128"]) == 0
    model = run / "model.safetensors"
    trained = model.read_bytes()
    capsys.readouterr()
    convert = ["convert", str(coco_file), "--preset", PRESET, "--out"]
    assert main([*convert, str(model)]) == 2
    assert capsys.readouterr().err == (
        f"faster-rcnn: error: --out {model} is the model file of the training run in {run}: "
        "the run's files beside it (joint, metrics.jsonl, training_splits.json) would "
        "describe another model; name a file outside the run\n"
    )
    assert model.read_bytes() == trained
    model.unlink()  # as a run stopped by a signal leaves it
    (run / "metrics.jsonl").unlink()
    assert main([*convert, str(model)]) == 2
    assert "the run's files beside it (joint, training_splits.json) would" in (
        capsys.readouterr().err
    )
    assert not model.exists()
    converted = tmp_path / "converted" / "model.safetensors"
    for _ in range(2):
        assert main([*convert, str(converted)]) == 0
    assert load_model(converted).config.class_names[0] == "person"


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("classes.txt", b"raccoon\n", "is not a PyTorch checkpoint or safetensors file (not a"),
        # Said by the exception's name, EOFError, where torch.load gave no message.
        ("empty.pth", b"", "is not a PyTorch checkpoint or safetensors file (empty)"),
        ("cut.pth", b"\x80\x02", "is not a PyTorch checkpoint or safetensors file (cut off: "),
        ("empty.safetensors", b"", "is not a readable safetensors file (empty)"),
    ],
)
def test_a_file_that_is_no_checkpoint_is_refused_in_one_line(
    tmp_path, capsys, name, content, reason
):
    """A text file or an empty .safetensors given as the checkpoint ended in a traceback
    (an IndexError, a SafetensorError) where convert asked whether it was a run's state."""
    path = tmp_path / name
    path.write_bytes(content)
    out = tmp_path / "converted.safetensors"
    assert main(["convert", str(path), "--preset", PRESET, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"faster-rcnn: error: {path} {reason}") and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == [path]
