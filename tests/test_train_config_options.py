"""train's options for the paper's choices: each sets its config field, help shows presets."""

from __future__ import annotations

import pytest
import torch

from faster_rcnn.cli import main
from faster_rcnn.cli.model_options import CONFIG_OPTIONS
from faster_rcnn.data.difficult import WithoutDifficult, without_difficult
from faster_rcnn.train.checkpoint import load_model

TINY = ["--min-size", "96", "--max-size", "128", "--steps", "1"]


def test_each_option_sets_its_field_and_the_recipe_keeps_it(tmp_path) -> None:
    options = ["--rpn-sampler", "hard_negative", "--allowed-border", "0", "--rpn-loss", "paper"]
    options += ["--rpn-box-weight", "10", "--roi-batch-size", "256", "--roi-sampler", "random"]
    options += ["--detections-per-image", "300", "--gt-jitter", "2", "--box-nms-thresh", "0.45"]
    # Two shorter sides for --multi-scale-per to draw from (TINY's last given is taken).
    options += ["--trainable-layers", "2", "--multi-scale-per", "batch", "--min-size", "96", "112"]
    argv = ["train", "--data", "synthetic:2", *TINY, *options, "--out", str(tmp_path)]
    assert main(argv) == 0
    config = load_model(tmp_path / "model.safetensors").config
    assert (config.rpn.sampler, config.rpn.allowed_border) == ("hard_negative", 0)
    assert (config.rpn.loss_normalization, config.rpn.box_loss_weight) == ("paper", 10)
    assert (config.roi_heads.batch_size_per_image, config.roi_heads.sampler) == (256, "random")
    assert (config.roi_heads.detections_per_img, config.roi_heads.gt_jitter) == (300, 2)
    assert (config.roi_heads.nms_thresh, config.roi_heads.class_nms_thresh) == (0.45, ())
    assert config.backbone.trainable_layers == 2
    assert config.transform.multi_scale_per == "batch"


def test_a_sigma_given_reaches_the_model_and_0_keeps_greedy_nms(tmp_path, capsys) -> None:
    # Two slides, whose cells overlap each other: with greedy NMS the recipe raises the
    # cells' IoU, and by default it chooses Soft-NMS at 0.3.
    argv = ["train", "--data", "slides:2", *TINY, "--preset", "mobilenet_v2_fpn"]
    assert main([*argv, "--soft-nms", "0.5", "--out", str(tmp_path / "soft")]) == 0
    assert "nms" not in capsys.readouterr().out
    heads = load_model(tmp_path / "soft" / "model.safetensors").roi_heads
    assert (heads.soft_nms_sigma, heads.class_nms_thresh) == (0.5, ())
    assert main([*argv, "--soft-nms", "0", "--out", str(tmp_path / "greedy")]) == 0
    printed = capsys.readouterr().out
    assert "soft_nms_sigma" not in printed and "class_nms_thresh = (0.6, 0.5, 0.5)" in printed
    heads = load_model(tmp_path / "greedy" / "model.safetensors").roi_heads
    assert (heads.soft_nms_sigma, heads.class_nms_thresh) == (0.0, (0.6, 0.5, 0.5))
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--soft-nms", "-0.1", "--out", str(tmp_path / "bad")])
    assert exit_.value.code == 2
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith("argument --soft-nms: must be a finite number >= 0, got -0.1")
    )


def test_help_shows_every_presets_value(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    torchvision = ", ".join(
        f"{preset}: {{0}}"
        for preset in (
            "resnet50_fpn",
            "resnet50_fpn_v2",
            "mobilenet_v2_fpn",
            "mobilenet_v3_large_fpn",
            "mobilenet_v3_large_320_fpn",
        )
    )
    assert f"paper_vgg16: 0, {torchvision.format(-1)}, small: -1" in text
    assert f"paper_vgg16: 10, {torchvision.format(1)}, small: 10" in text
    assert f"paper_vgg16: 0.3, {torchvision.format(0.5)}, small: 0.5" in text
    # The small backbone leaves its trained stages to its default: all five.
    assert f"paper_vgg16: 3, {torchvision.format(3)}, small: 5" in text
    assert f"paper_vgg16: image, {torchvision.format('image')}, small: image" in text
    assert len(CONFIG_OPTIONS) == 12


def test_a_bad_border_is_refused_in_one_line(capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--allowed-border", "-2"])
    assert exit_.value.code == 2
    assert "must be >= 0, or -1 to keep every anchor, got -2" in capsys.readouterr().err


def test_more_trainable_layers_than_the_backbone_has_are_refused_in_one_line(
    tmp_path, capsys
) -> None:
    argv = ["train", "--data", "synthetic:2", *TINY, "--preset", "mobilenet_v2_fpn"]
    assert main([*argv, "--trainable-layers", "7", "--out", str(tmp_path)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.endswith("--trainable-layers 7: must be in [0, 6] for mobilenet_v2_fpn")


def test_a_negative_jitter_is_refused_in_one_line(capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--gt-jitter", "-1"])
    assert exit_.value.code == 2
    assert "must be >= 0, got -1" in capsys.readouterr().err


def test_difficult_objects_leave_every_per_box_entry() -> None:
    target = {
        "boxes": torch.tensor([[0.0, 0, 5, 5], [1, 1, 6, 6], [2, 2, 9, 9]]),
        "labels": torch.tensor([1, 2, 3]),
        "difficult": torch.tensor([False, True, False]),
        "image_id": 7,
    }
    kept = without_difficult(target)
    assert kept["labels"].tolist() == [1, 3] and kept["image_id"] == 7
    assert torch.equal(kept["boxes"], target["boxes"][[0, 2]])
    assert not bool(kept["difficult"].any())
    plain = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}
    assert without_difficult(plain) is plain
    dataset = WithoutDifficult([(torch.zeros(3, 10, 10), target)])
    assert dataset[0][1]["labels"].tolist() == [1, 3]
    assert dataset.target(0)["labels"].tolist() == [1, 3]


def test_difficult_flags_given_as_integers_are_a_mask() -> None:
    target = {
        "boxes": torch.tensor([[0.0, 0, 5, 5], [1, 1, 6, 6], [2, 2, 9, 9]]),
        "labels": torch.tensor([1, 2, 3]),
        "difficult": torch.tensor([0, 1, 0]),  # int64, as a user's dataset may give them
    }
    assert without_difficult(target)["labels"].tolist() == [1, 3]
