"""load_initial_weights: a run starts from an ImageNet backbone or a whole detector."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from faster_rcnn import FasterRCNN, load_initial_weights, load_torchvision_checkpoint
from faster_rcnn.config import AnchorConfig
from faster_rcnn.models import preset_config
from faster_rcnn.train import save_model
from faster_rcnn.train.checkpoint import STATE_FORMAT
from faster_rcnn.train.initial_weights import PREDICTOR, detector_fpn_stages


def small_model(class_names: tuple[str, ...], seed: int, **changes) -> FasterRCNN:
    config = preset_config("small", len(class_names) + 1)
    config = dataclasses.replace(config, class_names=class_names, **changes)
    torch.manual_seed(seed)
    return FasterRCNN.from_config(config)


def saved(model: FasterRCNN, path: Path) -> Path:
    save_model(model, path)
    return path


def test_a_model_file_of_the_same_classes_is_taken_whole(tmp_path: Path) -> None:
    source = small_model(("cell", "platelet"), seed=0)
    path = saved(source, tmp_path / "model.safetensors")
    fresh = small_model(("cell", "platelet"), seed=1)
    report = load_initial_weights(fresh, path)
    expected = source.state_dict()
    assert all(torch.equal(v, expected[k]) for k, v in fresh.state_dict().items())
    assert len(report.loaded) == len(expected) and not report.missing and not report.dropped
    assert report.notes == [
        "the box predictor: 2 of 2 classes taken from the file (cell, platelet)"
    ]


def test_the_predictor_is_taken_class_by_class_by_name(tmp_path: Path) -> None:
    """Model classes (c, x, a) from a file of (a, b, c): background row 0 <- 0, c (row 1)
    <- file row 3, a (row 3) <- file row 1; x (row 2) keeps its fresh draw. The box
    deltas move four rows a class."""
    source = small_model(("a", "b", "c"), seed=0)
    path = saved(source, tmp_path / "model.safetensors")
    fresh = small_model(("c", "x", "a"), seed=1)
    drawn = {k: v.clone() for k, v in fresh.roi_heads.box_predictor.state_dict().items()}
    report = load_initial_weights(fresh, path)
    old, new = source.roi_heads.box_predictor, fresh.roi_heads.box_predictor
    for to, come_from in ((0, 0), (1, 3), (3, 1)):
        assert torch.equal(new.cls_score.weight[to], old.cls_score.weight[come_from])
        assert torch.equal(new.cls_score.bias[to], old.cls_score.bias[come_from])
        rows, source_rows = slice(4 * to, 4 * to + 4), slice(4 * come_from, 4 * come_from + 4)
        assert torch.equal(new.bbox_pred.weight[rows], old.bbox_pred.weight[source_rows])
        assert torch.equal(new.bbox_pred.bias[rows], old.bbox_pred.bias[source_rows])
    assert torch.equal(new.cls_score.weight[2], drawn["cls_score.weight"][2])
    assert torch.equal(new.bbox_pred.weight[8:12], drawn["bbox_pred.weight"][8:12])
    assert report.notes == [
        "the box predictor: 2 of 3 classes taken from the file (c, a); x starts fresh"
    ]


def test_the_box_head_of_an_rpn_trained_alone_starts_fresh(tmp_path: Path) -> None:
    """Its random box head and predictor were taken as learned ("the box predictor: 2 of
    2 classes taken from the file"); the model's own draw stays, the RPN and backbone
    are taken."""
    source = small_model(("cell", "platelet"), seed=0)
    path = tmp_path / "rpn.safetensors"
    save_model(source, path, box_head_trained=False)
    fresh = small_model(("cell", "platelet"), seed=1)
    drawn = {k: v.clone() for k, v in fresh.roi_heads.state_dict().items()}
    report = load_initial_weights(fresh, path)
    assert all(torch.equal(v, drawn[k]) for k, v in fresh.roi_heads.state_dict().items())
    assert torch.equal(fresh.rpn.head.cls_logits.weight, source.rpn.head.cls_logits.weight)
    key = "backbone.body.stem.0.0.weight"
    assert torch.equal(fresh.state_dict()[key], source.state_dict()[key])
    assert report.notes == [
        "the box head and predictor start fresh: the file's RPN was trained alone (--scheme "
        "rpn), its box head never was"
    ]
    head = sorted(f"roi_heads.{key}" for key in drawn)
    assert sorted(report.dropped) == head and not report.missing
    assert len(report.loaded) == len(source.state_dict()) - len(head)


def test_a_file_without_the_datas_classes_leaves_the_predictor_fresh(tmp_path: Path) -> None:
    source = small_model(("a", "b"), seed=0)
    path = saved(source, tmp_path / "model.safetensors")
    fresh = small_model(("y", "z"), seed=1)
    drawn = fresh.roi_heads.box_predictor.cls_score.weight.clone()
    report = load_initial_weights(fresh, path)
    assert torch.equal(fresh.roi_heads.box_predictor.cls_score.weight, drawn)
    assert torch.equal(fresh.rpn.head.cls_logits.weight, source.rpn.head.cls_logits.weight)
    assert report.notes == [
        "the box predictor starts fresh: none of the data's classes is among the file's (a, b)"
    ]
    assert sorted(report.dropped) == sorted(k for k in source.state_dict() if PREDICTOR in k)
    assert len(report.loaded) == len(source.state_dict()) - 4 and not report.missing


@pytest.mark.parametrize("layout", ["state_dict", "reference_script", "ddp"])
def test_a_torchvision_coco_checkpoint_fine_tunes_with_a_fresh_predictor(
    tmp_path: Path, layout: str
) -> None:
    """A ``fasterrcnn_mobilenet_v3_large_fpn`` COCO file (this preset is its module tree):
    every tensor but the 91-class predictor loads into a 3-class model; its old key
    layout (``rpn.head.conv.weight``) too. torchvision files name no classes."""
    torch.manual_seed(0)
    coco = FasterRCNN.from_config(preset_config("mobilenet_v3_large_fpn", 91)).state_dict()
    state = dict(coco)
    state["rpn.head.conv.weight"] = state.pop("rpn.head.conv.0.0.weight")
    if layout == "reference_script":
        state = {"model": state, "epoch": torch.tensor(26)}
    elif layout == "ddp":
        state = {f"module.{k}": v for k, v in state.items()}
    torch.save(state, tmp_path / "coco.pth")
    config = dataclasses.replace(
        preset_config("mobilenet_v3_large_fpn", 4), class_names=("a", "b", "c")
    )
    torch.manual_seed(1)
    model = FasterRCNN.from_config(config)
    report = load_initial_weights(model, tmp_path / "coco.pth")
    assert torch.equal(model.rpn.head.conv[0][0].weight, coco["rpn.head.conv.0.0.weight"])
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in coco.items() if PREDICTOR not in k)
    assert not report.missing and not report.unexpected
    assert len(report.loaded) == len(coco) - 4
    assert report.notes == [
        "the box predictor starts fresh: none of the data's classes is among the file's 91 "
        "outputs, read as COCO's categories"
    ]


def test_a_coco_detectors_outputs_of_the_datas_classes_are_taken_by_category(
    tmp_path: Path,
) -> None:
    """A 91-output torchvision file's rows are COCO's category ids: person is 1, VOC's
    aeroplane COCO's airplane (5), traffic light 10 whatever its case and spacing; a
    class COCO lacks starts fresh. A file of other outputs names nothing."""
    torch.manual_seed(0)
    coco = FasterRCNN.from_config(preset_config("small", 91)).state_dict()
    torch.save(coco, tmp_path / "coco.pth")
    classes = ("Traffic_Light", "raccoon", "person", "aeroplane")
    model = small_model(classes, seed=1)
    drawn = model.roi_heads.box_predictor.cls_score.weight.clone()
    report = load_initial_weights(model, tmp_path / "coco.pth")
    scores = model.roi_heads.box_predictor.cls_score.weight
    deltas = model.roi_heads.box_predictor.bbox_pred.weight
    source_scores = coco[PREDICTOR + "cls_score.weight"]
    source_deltas = coco[PREDICTOR + "bbox_pred.weight"]
    for to, category in ((0, 0), (1, 10), (3, 1), (4, 5)):
        assert torch.equal(scores[to], source_scores[category])
        assert torch.equal(
            deltas[4 * to : 4 * to + 4], source_deltas[4 * category : 4 * category + 4]
        )
    assert torch.equal(scores[2], drawn[2])
    assert report.notes == [
        "the box predictor: 3 of 4 classes taken from the file's 91 outputs, read as COCO's "
        "categories (Traffic_Light as traffic light, person, aeroplane as airplane); "
        "raccoon starts fresh"
    ]
    converted = load_torchvision_checkpoint(tmp_path / "coco.pth", "small")
    save_model(converted, tmp_path / "converted.safetensors")  # as `faster-rcnn convert` does
    model = small_model(classes, seed=1)
    again = load_initial_weights(model, tmp_path / "converted.safetensors")
    assert again.notes == report.notes
    assert torch.equal(model.roi_heads.box_predictor.cls_score.weight, scores)
    coco_without_a_row = {
        k: v[: 4 * 90] if "bbox_pred" in k else v[:90] if "cls_score" in k else v
        for k, v in coco.items()
    }
    torch.save(coco_without_a_row, tmp_path / "other.pth")
    report = load_initial_weights(small_model(classes, seed=1), tmp_path / "other.pth")
    assert report.notes == ["the box predictor starts fresh: the file does not name its classes"]


def test_tensors_of_another_shape_start_fresh_and_are_named(tmp_path: Path) -> None:
    """A file of three anchors a place into a model of five: the RPN's two sibling
    layers keep their draw, everything else loads. The note names the first in the
    file's order (a safetensors file's is alphabetical)."""
    three = AnchorConfig(sizes=((16,), (32,), (64,), (128,)), aspect_ratios=((0.5, 1.0, 2.0),) * 4)
    five = AnchorConfig(
        sizes=((16,), (32,), (64,), (128,)), aspect_ratios=((0.25, 0.5, 1, 2, 4),) * 4
    )
    source = small_model(("a",), seed=0, anchors=three)
    path = saved(source, tmp_path / "model.safetensors")
    fresh = small_model(("a",), seed=1, anchors=five)
    drawn = fresh.rpn.head.cls_logits.weight.clone()
    report = load_initial_weights(fresh, path)
    assert torch.equal(fresh.rpn.head.cls_logits.weight, drawn)
    assert torch.equal(fresh.rpn.head.conv[0][0].weight, source.rpn.head.conv[0][0].weight)
    assert sorted(report.dropped) == [
        "rpn.head.bbox_pred.bias",
        "rpn.head.bbox_pred.weight",
        "rpn.head.cls_logits.bias",
        "rpn.head.cls_logits.weight",
    ]
    assert report.notes[0] == (
        "dropped: tensors whose shapes differ from the model's start fresh (the first, "
        "rpn.head.bbox_pred.bias: (12,) in the file, (20,) in the model)"
    )
    assert not report.missing


def test_a_detector_of_another_backbone_is_refused_untouched(tmp_path: Path) -> None:
    torch.manual_seed(0)
    other = FasterRCNN.from_config(preset_config("mobilenet_v3_large_fpn", 2)).state_dict()
    torch.save(other, tmp_path / "other.pth")
    model = small_model(("a",), seed=1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=r"other\.pth: its backbone is not this preset's \("):
        load_initial_weights(model, tmp_path / "other.pth")
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_a_training_state_is_refused_pointing_to_resume_and_the_run_s_model_file(
    tmp_path: Path,
) -> None:
    """A run's ``<run>/joint/state.pt`` (the optimizer and the step) given as the weights
    to start from was "expected a state dict of named tensors or a checkpoint with a
    'model' entry, got dict". Said to be a training state, with ``--resume`` and the
    model file that holds its weights."""
    run = tmp_path / "run"
    (run / "joint").mkdir(parents=True)
    state = run / "joint" / "state.pt"
    torch.save({"format": STATE_FORMAT, "stage": "joint", "step": 2}, state)
    saved(small_model(("a",), seed=0), run / "model.safetensors")
    with pytest.raises(ValueError) as info:
        load_initial_weights(small_model(("a",), seed=1), state)
    assert str(info.value) == (
        f"{state} is the state (optimizer, step) of a training checkpoint, not weights: "
        "`train --resume` goes on with its run; to start from its weights, pass the run's "
        f"model file, {run / 'model.safetensors'}"
    )


def test_an_imagenet_file_fills_the_backbone_only(tmp_path: Path) -> None:
    """A MobileNetV2 classifier's ``features.N`` keys go to ``backbone.body.N``."""
    torch.manual_seed(0)
    body = FasterRCNN.from_config(preset_config("mobilenet_v2_fpn", 2)).backbone.body
    imagenet = {f"features.{k}": v for k, v in body.state_dict().items()}
    imagenet["classifier.1.weight"] = torch.zeros(1000, 1280)
    torch.save(imagenet, tmp_path / "mobilenet_v2.pth")
    torch.manual_seed(1)
    model = FasterRCNN.from_config(preset_config("mobilenet_v2_fpn", 2))
    report = load_initial_weights(model, tmp_path / "mobilenet_v2.pth")
    assert report.architecture == "mobilenet_v2" and report.dropped == ["classifier.1.weight"]
    assert all(
        torch.equal(model.backbone.body.state_dict()[k], v) for k, v in body.state_dict().items()
    )


@pytest.mark.parametrize(
    ("file_stages", "model_stages"), [((3, 4, 5), (4, 5)), ((4, 5), (3, 4, 5))]
)
def test_fpn_levels_are_matched_by_the_stage_they_read(
    tmp_path: Path, file_stages: tuple[int, ...], model_stages: tuple[int, ...]
) -> None:
    """A model file trained with the finer map (stages 3, 4, 5) into a model without it,
    and back: each level's blocks come from the file's level of the same stage, never
    from the level at the same index (whose inputs are another stage's)."""

    def mobilenet(stages: tuple[int, ...], seed: int) -> FasterRCNN:
        config = preset_config("mobilenet_v2_fpn", 2).with_returned_layers(stages)
        torch.manual_seed(seed)
        return FasterRCNN.from_config(dataclasses.replace(config, class_names=("a",)))

    source = mobilenet(file_stages, seed=0)
    path = saved(source, tmp_path / "model.safetensors")
    model = mobilenet(model_stages, seed=1)
    report = load_initial_weights(model, path)
    for stage in (4, 5):
        to, come_from = model_stages.index(stage), file_stages.index(stage)
        for block in ("inner_blocks", "layer_blocks"):
            ours = getattr(model.backbone.fpn, block)[to][0].weight
            assert torch.equal(ours, getattr(source.backbone.fpn, block)[come_from][0].weight)
    assert report.notes[0] == (
        "the FPN's levels are matched by the backbone stage they read: the file's stages "
        f"{file_stages}, the model's {model_stages}"
    )
    blocks = ("inner_blocks", "layer_blocks")
    stage_3 = [f"backbone.fpn.{b}.0.0.{kind}" for b in blocks for kind in ("bias", "weight")]
    if 3 in file_stages:  # the model reads no stage 3: its blocks are left out
        assert sorted(report.dropped) == sorted(stage_3) and not report.missing
    else:  # the model's stage-3 level has nothing to take
        assert sorted(report.missing) == sorted(stage_3) and not report.dropped
    assert report.notes[1] == "the box predictor: 1 of 1 class taken from the file (a)"


def test_weights_with_nan_are_refused_untouched(tmp_path: Path) -> None:
    source = small_model(("a",), seed=0)
    with torch.no_grad():
        source.roi_heads.box_head.fc6.weight[0, 0] = float("nan")
    state = source.state_dict()
    torch.save(state, tmp_path / "diverged.pth")
    model = small_model(("a",), seed=1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=r"diverged\.pth: 1 tensor holds NaN or infinite"):
        load_initial_weights(model, tmp_path / "diverged.pth")
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_the_fpn_stages_of_a_model_file_are_read_from_its_header(tmp_path: Path) -> None:
    config = preset_config("mobilenet_v2_fpn", 2).with_returned_layers((3, 4, 5))
    save_model(FasterRCNN.from_config(config), tmp_path / "finer.safetensors")
    save_model(small_model(("a",), seed=0), tmp_path / "small.safetensors")
    torch.save(small_model(("a",), seed=0).state_dict(), tmp_path / "torchvision.pth")
    assert detector_fpn_stages(tmp_path / "finer.safetensors") == (3, 4, 5)
    assert detector_fpn_stages(tmp_path / "small.safetensors") is None  # no choice of stages
    assert detector_fpn_stages(tmp_path / "torchvision.pth") is None


@pytest.mark.parametrize("name", ["model.pth", "model.SAFETENSORS", "model"])
def test_a_model_file_is_one_whatever_its_name(tmp_path: Path, name: str) -> None:
    source = small_model(("a", "b"), seed=0)
    path = saved(source, tmp_path / name)
    report = load_initial_weights(small_model(("b",), seed=1), path)
    assert report.notes == ["the box predictor: 1 of 1 class taken from the file (b)"]
