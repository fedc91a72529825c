"""Checks shared by the tests of head modules given to torchvision's constructor form
and to the presets: the config fields a model took, the modules it runs, and its model
file rebuilding it."""

from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from faster_rcnn import FasterRCNN
from faster_rcnn.config import FasterRCNNConfig
from faster_rcnn.train.checkpoint import load_weights, read_model_config, save_model


def head_fields(model: FasterRCNN) -> dict[str, object]:
    """The config fields a given head sets."""
    config = model.config
    return {
        "num_classes": config.num_classes,
        "box_head": config.roi_heads.box_head,
        "representation_size": config.roi_heads.representation_size,
        "head_conv_depth": config.rpn.head_conv_depth,
    }


def assert_runs_the_given_heads(model: FasterRCNN, heads: dict[str, object]) -> None:
    """``model`` runs each head module of ``heads`` (its keywords) itself."""
    used = {
        "rpn_head": model.rpn.head,
        "box_head": model.roi_heads.box_head,
        "box_predictor": model.roi_heads.box_predictor,
    }
    assert all(used[key] is module for key, module in heads.items() if key != "num_classes")


def assert_round_trips(
    model: FasterRCNN,
    rebuild: Callable[[FasterRCNNConfig], FasterRCNN],
    detections: Callable[[FasterRCNN], list[dict[str, Tensor]]],
    folder: Path,
) -> None:
    """``model`` saved, then ``rebuild`` from the file's config and given its weights,
    makes the same ``detections``, some."""
    save_model(model, folder / "model.safetensors")
    rebuilt = rebuild(read_model_config(folder / "model.safetensors"))
    load_weights(rebuilt, folder / "model.safetensors")
    expected, got = detections(model), detections(rebuilt)
    assert sum(len(d["scores"]) for d in got) > 0
    for x, y in zip(got, expected, strict=True):
        assert all(torch.equal(x[key], y[key]) for key in ("boxes", "labels", "scores"))
