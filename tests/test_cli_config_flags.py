"""A config's refusal of a value given on the command line names the flag and the value
typed, not the config field, which a user of the commands never wrote."""

import argparse
from pathlib import Path

import pytest
import torch

from faster_rcnn import FasterRCNN
from faster_rcnn.cli import build_parser, main
from faster_rcnn.cli.config_flags import (
    FIELD_FLAGS,
    changes_by_flag,
    flag_error,
    settings_by_flag,
)
from faster_rcnn.config import ConfigError, TransformConfig
from faster_rcnn.models import preset_config
from faster_rcnn.train.checkpoint import WeightsMismatchError
from faster_rcnn.train.state import ChangedSettings, OtherModelSettings

ABSENT = ["--data", "absent-dataset"]  # every refusal below comes before the data is read
FLOAT32 = "must be in [1.4e-45, 3.4e+38] (> 0 and finite in float32)"


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["train", "--min-size", "100000"], "--min-size 100000: must be in [1, 16384]"),
        (["train", "--max-size", "20000"], "--max-size 20000: must be in [1, 16384]"),
        (["train", "--min-size", "300", "100000"], "--min-size 300 100000: must be in [1, 16384]"),
        (
            ["train", "--min-size", "100000", "--max-size", "20000"],
            "--min-size 100000: must be in [1, 16384]",  # the first refused
        ),
        (
            ["train", "--min-size", "300", "--max-size", "20000"],
            "--max-size 20000: must be in [1, 16384]",
        ),
        (
            ["train", "--trainable-layers", "9"],
            "--trainable-layers 9: must be in [0, 5] for small",
        ),
        (
            ["train", "--preset", "mobilenet_v2_fpn", "--returned-layers", "5", "4"],
            "--returned-layers 5 4: must be increasing stage indices in [0, 5] for "
            "mobilenet_v2_fpn",
        ),
        (
            ["train", "--preset", "paper_vgg16", "--returned-layers", "3"],
            "--returned-layers 3: must be left out for vgg16, whose feature maps are fixed",
        ),
        (
            ["train", "--soft-nms", "1e-320"],
            "--soft-nms 1e-320: must be 0 (greedy NMS) or at least 1.4e-45 (> 0 in float32)",
        ),
        (
            ["train", "--rpn-box-weight", "1e308"],
            "--rpn-box-weight 1e+308: must be in [0, 3.4e+38] (finite in float32)",
        ),
        (["train", "--lr", "1e-320"], f"--lr 1e-320: {FLOAT32}"),
        (["train", "--lr", "1e39"], f"--lr 1e+39: {FLOAT32}"),
        (
            ["train", "--grad-clip-norm", "1e-320"],
            "--grad-clip-norm 1e-320: must be at least 1.4e-45 (> 0 in float32)",
        ),
        (
            ["train", "--gt-jitter", str(2**63 - 1)],
            f"--gt-jitter {2**63 - 1}: must be in [0, 64], the RoIs sampled an image",
        ),
        (
            ["train", "--train-window", "16", "800"],
            "--train-window 16 800: must be two sides in [32, 16384] px",
        ),
        (
            ["data", "--data", "synthetic:2", "--max-size", "20000"],
            "--max-size 20000: must be in [1, 16384]",
        ),
    ],
)
def test_a_value_a_config_refuses_is_named_by_its_flag_before_any_work(
    argv, error, tmp_path, capsys
):
    """They were refused as "TransformConfig.min_size/max_size must be in [1, 16384]" (not
    saying which), "BackboneConfig.trainable_layers ..."; --lr 1e-320 (0 in float32) and
    --soft-nms 1e-320 trained a model that learned nothing or scored NaN, --rpn-box-weight
    1e308 one whose every step was skipped (an infinite loss), and --lr 1e39
    and --gt-jitter 2**63 - 1 stopped at the first step with a traceback. The config's
    words for a Python caller are left out: "got (5, 4)", "or None for its default",
    "must be None for vgg16"."""
    out = tmp_path / "out"
    options = ["--out", str(out)] if argv[0] == "train" else []
    given = [*argv, *ABSENT] if "--data" not in argv else argv
    assert main([*given, *options]) == 2
    err = capsys.readouterr().err
    assert err == f"faster-rcnn: error: {error}\n"
    assert "Config" not in err and not out.exists()


def test_the_anchors_sizes_are_named_by_their_flags(tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["anchors", "--data", "synthetic:2", "--out", str(out), "--min-size", "64"]
    assert main([*argv, "--max-size", "100000"]) == 2
    assert capsys.readouterr().err == (
        "faster-rcnn: error: --max-size 100000: must be in [1, 16384]\n"
    )


@pytest.mark.parametrize("command", ["train", "demo"])
def test_a_budget_of_infinite_seconds_is_refused_by_its_flag(command, capsys):
    """train --minutes 1e308 was refused as "TrainConfig.max_seconds must be finite, got
    inf" once the data was read; the demo stopped with a traceback (int(inf))."""
    with pytest.raises(SystemExit) as exit_:
        main([command, "--minutes", "1e308"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("argument --minutes: must be at most 3e+306 minutes, got 1e308")


def test_a_field_no_flag_given_set_keeps_the_configs_own_words():
    """A model file's config, or a field the command chose, is not blamed on a flag."""
    try:
        TransformConfig(max_size=20000)
    except ConfigError as error:
        refused = error
    assert flag_error(refused, argparse.Namespace(max_size=20000)) == (
        "--max-size 20000: must be in [1, 16384]"
    )
    for args in (argparse.Namespace(max_size=None), argparse.Namespace()):  # evaluate has none
        assert flag_error(refused, args) == "TransformConfig.max_size must be in [1, 16384]"


def test_names_given_twice_or_blank_are_named_by_the_flag_that_gave_them(tmp_path, capsys):
    """convert --classes a a b was refused as "FasterRCNNConfig.class_names must be ..."."""
    torch.manual_seed(0)
    path = tmp_path / "three.pth"
    torch.save(FasterRCNN.from_config(preset_config("mobilenet_v2_fpn", 4)).state_dict(), path)
    argv = ["convert", str(path), "--preset", "mobilenet_v2_fpn", "--classes"]
    assert main([*argv, "a", "b", "a"]) == 2
    assert capsys.readouterr().err == (
        "faster-rcnn: error: --classes a b a: must be names of different classes; 'a' repeats\n"
    )
    assert main([*argv, "a", " ", "b"]) == 2
    assert capsys.readouterr().err == (
        "faster-rcnn: error: --classes a   b: must be non-blank names; got ' '\n"
    )
    assert not path.with_suffix(".safetensors").exists()


def test_every_flag_that_names_a_field_is_an_option_of_a_command():
    commands = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    flags = {
        flag
        for command in commands.values()
        for action in command._actions
        for flag in action.option_strings
    }
    assert set(FIELD_FLAGS.values()) <= flags
    assert len(FIELD_FLAGS) == len(set(FIELD_FLAGS.values()))  # one field a flag


def test_a_resumed_run_names_the_sizes_it_changes_by_their_flags(tmp_path, capsys):
    """A run resumed without the sizes it was started with was warned of
    "transform.max_size 128 -> 512, transform.min_size (96,) -> (64,)": fields no user of
    the commands wrote, where the flags are what resume it as it was started."""
    run = tmp_path / "run"
    argv = ["train", "--data", "synthetic:2", "--recipe", "preset", "--out", str(run)]
    assert main([*argv, "--steps", "1", "--min-size", "96", "--max-size", "128"]) == 0
    capsys.readouterr()
    assert main([*argv, "--steps", "2", "--min-size", "64", "--resume"]) == 0  # max: 512
    assert (
        f"faster-rcnn: warning: resuming {run / 'joint'} with changed settings: steps 1 -> 2, "
        "--max-size 128 -> 512, --min-size 96 -> 64; the run will not match an "
        "uninterrupted one\n"
    ) in capsys.readouterr().err


def test_a_resumed_runs_changed_model_settings_are_named_by_the_flags_that_set_them():
    """Each with its values as typed; a setting no flag sets, and the others (the run's
    length, its data), keep the library's words."""
    warning = ChangedSettings(
        Path("run/joint"),
        [
            "steps 1 -> 2",
            ("backbone.returned_layers", (4, 5), (3, 4, 5)),
            ("roi_heads.score_thresh", 0.05, 0.5),
            ("roi_heads.soft_nms_sigma", 0.0, 0.3),
            ("transform.min_size", (600,), (480, 512)),
            ("transform.multi_scale_per", "image", "batch"),
        ],
    )
    assert str(warning) == (
        "resuming run/joint with changed settings: steps 1 -> 2, backbone.returned_layers "
        "(4, 5) -> (3, 4, 5), roi_heads.score_thresh 0.05 -> 0.5, roi_heads.soft_nms_sigma "
        "0.0 -> 0.3, transform.min_size (600,) -> (480, 512), transform.multi_scale_per "
        "'image' -> 'batch'; the run will not match an uninterrupted one"
    )
    assert changes_by_flag(warning) == (
        "resuming run/joint with changed settings: steps 1 -> 2, --returned-layers 4 5 -> "
        "3 4 5, roi_heads.score_thresh 0.05 -> 0.5, --soft-nms 0 -> 0.3, --min-size 600 -> "
        "480 512, --multi-scale-per image -> batch; the run will not match an uninterrupted "
        "one"
    )


def test_a_resume_refused_for_other_model_settings_names_the_flags_that_set_them():
    """As the changed settings' warning does: the settings were named as config fields
    ("transform.min_size", "roi_heads.soft_nms_sigma"); one no flag sets keeps its name."""
    trained = preset_config("mobilenet_v2_fpn")
    now = trained.replace(
        transform={"min_size": (96,)}, roi_heads={"score_thresh": 0.5, "soft_nms_sigma": 0.3}
    )
    error = OtherModelSettings(Path("run/joint"), trained, now, WeightsMismatchError("a shape"))
    said = (
        "run/joint was trained with other model settings than this run builds ({}): resume "
        "with the options the run was started with; a shape"
    )
    assert str(error) == said.format(
        "roi_heads.score_thresh, roi_heads.soft_nms_sigma, transform.min_size"
    )
    assert settings_by_flag(error) == said.format("roi_heads.score_thresh, --soft-nms, --min-size")


def test_a_resume_refused_for_another_backbone_names_the_presets_that_build_its_own():
    """Another preset's checkpoint differed in about twenty settings (anchors, sizes,
    heads), all listed before the one to change; the backbone is said alone, with the
    presets that build the checkpoint's (two share MobileNetV3-Large)."""
    trained = preset_config("mobilenet_v3_large_320_fpn")
    error = OtherModelSettings(
        Path("run/joint"), trained, preset_config("small"), WeightsMismatchError("a shape")
    )
    said = (
        "run/joint was trained with backbone mobilenet_v3_large_fpn, not small as this run "
        "builds: resume with the options the run was started with ({})"
    )
    assert str(error) == said.format(
        "preset_config('mobilenet_v3_large_fpn') or preset_config('mobilenet_v3_large_320_fpn')"
    )
    assert settings_by_flag(error) == said.format(
        "--preset mobilenet_v3_large_fpn or --preset mobilenet_v3_large_320_fpn"
    )
