"""Options several commands share: image sizes, and ``--out`` folders and files checked
before work."""

import argparse
import os
import warnings
from pathlib import Path

import pytest

from faster_rcnn.cli import arguments, build_parser, evaluate, main
from faster_rcnn.cli.arguments import check_out_file, check_out_folder, with_image_sizes
from faster_rcnn.models import preset_config

BIG = "1" + "0" * 21  # beyond int64


def sizes(min_size=None, max_size=None) -> argparse.Namespace:
    return argparse.Namespace(min_size=min_size, max_size=max_size)


def test_image_sizes_given_replace_the_presets_and_a_min_size_above_the_cap_is_warned():
    config = preset_config("small")  # 320 / 512
    assert with_image_sizes(config, sizes()).transform == config.transform
    given = with_image_sizes(config, sizes([256, 288], 400)).transform
    assert (given.min_size, given.max_size) == ((256, 288), 400)
    with pytest.warns(UserWarning) as record:
        with_image_sizes(config, sizes([800], 100))
    assert str(record[0].message) == (
        "--min-size 800 above --max-size 100: each image is resized so that its longer side is 100"
    )
    with pytest.warns(UserWarning, match=r"^--min-size 600 above --max-size 512: at those sizes"):
        with_image_sizes(config, sizes([300, 600]))  # the preset's cap
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with_image_sizes(config, sizes([512], 512))  # equal: the shorter side can reach it


def test_an_out_folder_in_a_file_is_refused_before_any_work(tmp_path):
    check_out_folder(tmp_path / "new" / "deeper", "training writes")  # made later: fine
    file = tmp_path / "file"
    file.write_text("")
    with pytest.raises(ValueError, match=rf"^--out {file} is a file: training writes a folder"):
        check_out_folder(file, "training writes")
    with pytest.raises(ValueError, match=rf"^--out {file / 'e'} is inside the file {file}: "):
        check_out_folder(file / "e", "evaluate writes")


def test_an_out_folder_named_as_a_file_is_refused_unless_it_is_a_folder(tmp_path, capsys):
    """predict --out x.jpg made a folder x.jpg: a user naming a file is told the command
    writes a folder; a folder of that name already there is taken."""
    with pytest.raises(ValueError) as refused:
        check_out_folder(tmp_path / "boxes.JPG", "predict writes")
    assert str(refused.value) == (
        f"--out {tmp_path / 'boxes.JPG'} names a .JPG file, but predict writes a folder there "
        "(its files inside): name a folder"
    )
    for name in ("metrics.json", "model.safetensors", "run.pth"):
        with pytest.raises(ValueError, match="names a"):
            check_out_folder(tmp_path / name, "training writes")
    (tmp_path / "old.json").mkdir()
    check_out_folder(tmp_path / "old.json", "evaluate writes")
    check_out_folder(tmp_path / "run.v2", "training writes")  # no file's suffix: a folder
    argv = ["predict", str(tmp_path / "a.jpg"), "--model", "m", "--out", str(tmp_path / "x.png")]
    assert main(argv) == 2
    assert "names a .png file, but predict writes a folder there" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_an_out_folder_in_a_read_only_folder_is_refused_before_any_work(tmp_path, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    # Root may write anywhere, so the permission check is what stands for the folder's mode.
    allowed = os.access
    monkeypatch.setattr(
        arguments.os, "access", lambda path, mode: path != locked and allowed(path, mode)
    )
    with pytest.raises(ValueError, match=rf"^--out {locked} is read-only: training writes a "):
        check_out_folder(locked, "training writes")
    inside = locked / "run" / "deeper"
    said = rf"^--out {inside} is inside the read-only folder {locked}: evaluate writes a folder"
    with pytest.raises(ValueError, match=said):
        check_out_folder(inside, "evaluate writes")
    check_out_folder(tmp_path / "free", "training writes")  # its parent is writable: fine


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["train", "--seed", "-1"], "argument --seed: must be from 0 to 2**63 - 1, got -1"),
        (["train", "--seed", str(2**63)], f"--seed: must be from 0 to 2**63 - 1, got {2**63}"),
        (["demo", "--seed", "-1"], "argument --seed: must be from 0 to 2**63 - 1, got -1"),
        (["explain", "x.png", "--seed", "-3"], "--seed: must be from 0 to 2**63 - 1, got -3"),
        (["train", "--split-seed", "-2"], "--split-seed: must be from 0 to 2**63 - 1, got -2"),
        (["train", "--workers", "-1"], "argument --workers: must be >= 0, got -1"),
        (["train", "--minutes", "inf"], "argument --minutes: must be a finite number > 0, got inf"),
        (["train", "--lr", "nan"], "argument --lr: must be a finite number > 0, got nan"),
        (["anchors", "--iou", "0"], "argument --iou: must be between 0 and 1, got 0"),
        (["anchors", "--iou", "1"], "argument --iou: must be between 0 and 1, got 1"),
        (["train", "--steps", "1e3"], "argument --steps: must be a whole number, got 1e3"),
        (["train", "--workers", "2.0"], "argument --workers: must be a whole number, got 2.0"),
        (["demo", "--seed", "1e3"], "argument --seed: must be a whole number, got 1e3"),
        (["train", "--lr", "abc"], "argument --lr: must be a number, got abc"),
        (["predict", "--score", ".5x"], "argument --score: must be a number, got .5x"),
        (["train", "--allowed-border", "inf"], "must be >= 0, or -1 to keep every anchor, got inf"),
        (
            ["train", "--returned-layers", "1.5"],
            "--returned-layers: must be a whole number, got 1.5",
        ),
        (
            ["anchors", "--returned-layers", "nan"],
            "--returned-layers: must be a whole number, got nan",
        ),
        (["train", "--steps", ""], "argument --steps: is empty: give a whole number"),
        (["train", "--lr", ""], "argument --lr: is empty: give a number"),
        (["demo", "--test-images", BIG], f"--test-images: must be at most 2**63 - 1, got {BIG}"),
        (["train", "--steps", str(2**63)], f"--steps: must be at most 2**63 - 1, got {2**63}"),
        (["train", "--gt-jitter", BIG], f"--gt-jitter: must be at most 2**63 - 1, got {BIG}"),
        (["explain", "x.png", "--top", BIG], f"--top: must be at most 2**63 - 1, got {BIG}"),
    ],
)
def test_flags_out_of_range_are_refused_by_name_before_any_work(argv, error, capsys):
    """A seed torch cannot take, a negative worker count, an endless budget or an IoU no
    anchor can fit at were refused late, by an internal name or not at all; a count given
    as 1e3, or a number as text, by the name of the option's type function ("invalid
    positive_int value: '1e3'", "invalid int value: '1.5'" of --returned-layers); an empty
    one as "must be a whole number, got " (nothing after it); a count beyond int64 was
    taken, and the demo trained for its minutes before stopping on it with a traceback
    (--test-images), train at its first step (--gt-jitter)."""
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert capsys.readouterr().err.strip().endswith(error)


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="no /proc: not Linux")
def test_an_out_in_proc_is_refused_before_any_work_though_its_mode_allows_it(tmp_path):
    """/proc's mode lets root write, so only making a folder there fails: the commands
    worked first, then stopped on "[Errno 2] No such file or directory: '/proc/ev'"
    (export after a minute of exporting)."""
    made = r"is inside /proc, where nothing can be made \(No such file or directory\)"
    with pytest.raises(ValueError, match=rf"^--out /proc/ev {made}: evaluate writes a folder"):
        check_out_folder(Path("/proc/ev"), "evaluate writes")
    with pytest.raises(ValueError, match=rf"^--out /proc/m.onnx {made}: export writes a file"):
        check_out_file(Path("/proc/m.onnx"), "export writes")
    with pytest.raises(ValueError, match=r"^--out /proc is a folder where nothing can be made"):
        check_out_folder(Path("/proc"), "training writes")
    check_out_folder(tmp_path / "free" / "run", "training writes")
    check_out_file(tmp_path / "m.onnx", "export writes")
    assert list(tmp_path.iterdir()) == []  # the folders tried are gone


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["evaluate", "--model", "m.safetensors", "--out", ""], "--out"),
        (["predict", "--model", "m.safetensors", "x.png", "--out", ""], "--out"),
        (["predict", "--model", "m.safetensors", ""], "inputs"),
        (["anchors", "--anchors", ""], "--anchors"),
        (["train", "--weights", ""], "--weights"),
        (["export", "--model", ""], "--model"),
        (["explain", ""], "image"),
        (["convert", "m.pth", "--out", ""], "--out"),
        (["demo", "--out", ""], "--out"),
    ],
)
def test_an_empty_path_is_refused_not_taken_for_the_current_folder(argv, flag, capsys):
    """An unset shell variable (``--out "$OUT"``) wrote evaluate's, predict's, anchors'
    and the demo's files into the current folder, and read it as a model or dataset."""
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith(f"argument {flag}: is empty: name a file or folder")
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--data", ""],
        ["data", "--data", ""],
        ["evaluate", "--model", "m.safetensors", "--split", ""],
        ["predict", "--model", "m.safetensors", "--data", ""],
    ],
)
def test_an_empty_dataset_or_split_is_refused(argv, capsys):
    """--data "" was read as the current folder; --split "" chose the default split."""
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert capsys.readouterr().err.strip().endswith(f"argument {argv[-2]}: is empty")


def test_the_largest_seed_trains(tmp_path):
    argv = ["train", "--data", "synthetic:2", "--preset", "small", "--steps", "1"]
    argv += ["--min-size", "64", "--max-size", "96", "--seed", str(2**63 - 1)]
    assert main([*argv, "--out", str(tmp_path)]) == 0


def test_an_out_file_in_a_file_or_a_read_only_folder_is_refused_before_any_work(
    tmp_path, monkeypatch
):
    check_out_file(tmp_path / "new" / "m.onnx", "export writes")  # its folder made later
    file = tmp_path / "file"
    file.write_text("")
    check_out_file(file, "export writes")  # an existing file is written over
    said = rf"^--out {file / 'm.onnx'} is inside the file {file}: export writes a file there$"
    with pytest.raises(ValueError, match=said):
        check_out_file(file / "m.onnx", "export writes")
    locked = tmp_path / "locked"
    locked.mkdir()
    allowed = os.access  # root may write anywhere: the permission check stands for the mode
    monkeypatch.setattr(
        arguments.os, "access", lambda path, mode: path != locked and allowed(path, mode)
    )
    inside = locked / "run" / "x.png"
    said = rf"^--out {inside} is inside the read-only folder {locked}: explain writes a file"
    with pytest.raises(ValueError, match=said):
        check_out_file(inside, "explain writes")


# Small enough that a command which ignores the flag tested ends soon.
ANCHORS = ["anchors", "--data", "synthetic:2", "--max-images", "1"]
TINY = ["--min-size", "64", "--max-size", "96"]
TRAIN = ["train", "--data", "synthetic:2", "--steps", "1"]
TRAIN_RPN = [*TRAIN, "--scheme", "rpn", *TINY]
SCORED_FILE = ["evaluate", "--detections", "d.json", "--coco-annotations", "c.json"]


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        ([*ANCHORS, "--iou", "0.5"], "--iou has no effect without --fit (options of the fit)"),
        (
            [*ANCHORS, "--per-level", "--anchors-per-location", "3"],
            "--per-level and --anchors-per-location have no effect without --fit",
        ),
        (
            [*SCORED_FILE, "--tta", "both", "--score-thresh", "0.01"],
            "--tta and --score-thresh have no effect with --detections (detections already "
            "made): they set how a --model detects",
        ),
        ([*SCORED_FILE, "--data", "synthetic"], "--data has no effect with --detections"),
        ([*SCORED_FILE, "--batch-size", "4"], "--batch-size has no effect with --detections"),
        (
            ["train", "--data", "synthetic:2", "--steps", "1", "--split-seed", "3"],
            "--split-seed has no effect without --val-fraction: it draws the images "
            "--val-fraction holds out",
        ),
        (
            ["evaluate", "--model", "m.safetensors", "--split-seed", "3"],
            "--split-seed has no effect without --val-fraction",
        ),
        (
            ["explain", "x.png", "--top", "10", "--score", "0"],
            "--top and --score have no effect without --model: an untrained preset draws no "
            "proposals or detections",
        ),
        (
            ["explain", "x.png", "--annotations", "x.xml", "--classes", "names.txt"],
            "--classes has no effect without a YOLO .txt as --annotations",
        ),
        (["explain", "x.png", "--classes", "names.txt"], "--classes has no effect without"),
        (
            [*TRAIN_RPN, "--roi-sampler", "class_balanced", "--gt-jitter", "2"],
            "--roi-sampler and --gt-jitter have no effect with --scheme rpn: it trains the RPN "
            "alone, not the detection head whose RoI sampling or detections they set",
        ),
        ([*TRAIN_RPN, "--roi-batch-size", "64"], "--roi-batch-size has no effect with --scheme"),
        (
            [*TRAIN_RPN, "--detections-per-image", "50", "--box-nms-thresh", "0.6"],
            "--detections-per-image and --box-nms-thresh have no effect with --scheme rpn: it "
            "trains the RPN alone, not the detection head whose RoI sampling or detections "
            "they set",
        ),
        ([*TRAIN_RPN, "--soft-nms", "0"], "--soft-nms has no effect with --scheme rpn"),
        (
            [*TRAIN, *TINY, "--multi-scale-per", "batch"],
            "--multi-scale-per has no effect with the one --min-size 64: it chooses how "
            "training draws among several",
        ),
        (
            [*TRAIN, "--recipe", "preset", "--multi-scale-per", "image"],
            "--multi-scale-per has no effect with the one --min-size 320",
        ),
        (
            [*TRAIN, *TINY, "--train-window", "96", "64"],
            "--train-window 96 64 has no effect: every image resized to --min-size 64 "
            "--max-size 96 fits in it whole (at most 64 x 96 px); give a smaller window, or "
            "larger sizes",
        ),
        (
            [*TRAIN, "--recipe", "preset", "--train-window", "512", "512"],
            "--train-window 512 512 has no effect: every image resized to --min-size 320 "
            "--max-size 512 fits",
        ),
    ],
)
def test_a_flag_another_leaves_without_effect_is_refused_before_any_work(
    argv, error, capsys, tmp_path
):
    """Each was accepted and silently ignored, the command run as if it were not given."""
    out = tmp_path / "out"
    assert main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("faster-rcnn: error: ") and error in err and err.count("\n") == 1
    assert not out.exists()


def test_a_window_that_cuts_nothing_at_the_sizes_the_recipe_settled_is_warned_of(tmp_path, capsys):
    """With a size left to the recipe the window cannot be checked before the data is read:
    it was silently ignored; it is warned of once the recipe has settled the sizes."""
    argv = [*TRAIN, "--min-size", "64", "--train-window", "1024", "1024"]
    assert main([*argv, "--out", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert (
        "faster-rcnn: warning: --train-window 1024 1024 has no effect: every image resized "
        "to --min-size 64 --max-size "
    ) in err
    assert "with the sizes the recipe settled: give a smaller window, or larger sizes" in err


@pytest.mark.parametrize(
    ("command", "said", "unsaid"),
    [
        ("train", "the split is written to --out/split.json", "no split written"),
        ("evaluate", "they are scored, and no split written", "written to --out/split.json"),
    ],
)
def test_val_fraction_help_says_what_the_command_does_with_the_images(
    command, said, unsaid, capsys
):
    """evaluate writes no split.json: its help had said it did, as train's does."""
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert said in text and unsaid not in text


def test_every_option_of_a_models_detection_is_refused_with_detections():
    """evaluate --detections refuses each option that sets how a --model detects, at any
    value but the default its parser declares (read from it, not kept twice)."""
    command = evaluate.add_parser(argparse.ArgumentParser().add_subparsers())
    scoring = {"--help", "--model", "--detections", "--coco-annotations", "--out"}
    flags = {action.option_strings[-1] for action in command._actions} - scoring
    assert flags == set(evaluate.MODEL_OPTIONS)
    args = command.parse_args(["--detections", "d.json"])
    assert arguments.given_flags(args, args.model_option_defaults) == []
    assert args.model_option_defaults["--device"] == "cpu"
    assert args.model_option_defaults["--batch-size"] == 1


def test_every_option_of_every_command_says_what_it_does():
    """Each option's --help line has a text: --out, --seed, --device, train's --preset and
    --workers, predict's --score and others had none, the defaults unsaid."""
    commands = next(
        action
        for action in build_parser()._actions
        if isinstance(action, argparse._SubParsersAction)
    )
    unexplained = [
        f"{name} {action.option_strings[-1]}"
        for name, command in commands.choices.items()
        for action in command._actions
        if action.option_strings and not action.help
    ]
    assert unexplained == []
