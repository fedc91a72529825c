"""Parity with torchvision on a committed record of a small torchvision FasterRCNN.

The record was written by ``torchvision_side.py tiny`` (torchvision's own code on a tiny
plain backbone); this test needs no torchvision.
"""

import math
from pathlib import Path

import pytest
import torch
from tiny_backbone import TinyBackbone
from torchvision_record import check_eval, check_resize, check_train, tiny_constructor_form

from faster_rcnn import FasterRCNN
from faster_rcnn.config import (
    AnchorConfig,
    BackboneConfig,
    FasterRCNNConfig,
    RoIHeadsConfig,
    RPNConfig,
    TransformConfig,
)
from faster_rcnn.roi_heads import FastRCNNPredictor, TwoMLPHead

FIXTURE = Path(__file__).parent / "fixtures" / "tiny_fasterrcnn.pt"


def tiny_config() -> FasterRCNNConfig:
    """The settings ``torchvision_side.tiny_model`` passes to torchvision's FasterRCNN."""
    return FasterRCNNConfig(
        num_classes=4,
        backbone=BackboneConfig(name="custom", out_channels=TinyBackbone.out_channels),
        transform=TransformConfig(min_size=(200,), max_size=320),
        anchors=AnchorConfig(sizes=((24, 32), (64, 96)), aspect_ratios=((0.5, 1.0, 2.0),) * 2),
        rpn=RPNConfig(
            pre_nms_top_n_train=300,
            pre_nms_top_n_test=200,
            post_nms_top_n_train=200,
            post_nms_top_n_test=100,
        ),
        roi_heads=RoIHeadsConfig(
            featmap_names=("0", "1"), representation_size=64, batch_size_per_image=64
        ),
    )


@pytest.fixture(scope="module")
def record() -> dict:
    return torch.load(FIXTURE, weights_only=True)


@pytest.fixture
def model(record: dict) -> FasterRCNN:
    model = FasterRCNN(TinyBackbone(), tiny_config())
    model.load_state_dict(record["state_dict"], strict=True)
    return model


def test_state_dict_keys_are_torchvisions(record, model):
    assert list(model.state_dict()) == list(record["state_dict"])


def float32_resized_size(size: tuple[int, int], min_size: int, max_size: int) -> tuple[int, int]:
    """torchvision's resize when scripted or traced: the scale in float32."""
    shape = torch.tensor(size, dtype=torch.float32)
    scale = torch.min(min_size / shape.min(), max_size / shape.max()).item()
    return math.floor(size[0] * scale), math.floor(size[1] * scale)


def test_record_holds_sizes_where_a_float32_scale_is_a_pixel_short(record):
    # Each image is one the old float32 arithmetic resized a pixel short of torchvision's
    # eager resize, so check_resize and the detections below would catch its return.
    for image, resized in zip(record["images_uint8"], record["resized_sizes"], strict=True):
        size = (image.shape[-2], image.shape[-1])
        assert float32_resized_size(size, 200, 320) != tuple(resized), size


def test_images_are_resized_as_torchvision_does(model, record):
    check_resize(model, record)


def test_eval_detections_match_torchvision(model, record):
    print("\ntiny eval, worst differences:", check_eval(model, record))


def test_training_losses_and_head_gradients_match_torchvision(model, record):
    print("\ntiny training, worst differences:", check_train(model, record))


def test_relu_decisions_are_replayed_only_at_the_edge(model, record):
    # The peer's recorded ReLU decisions are taken only where our pre-activation is within
    # RELU_EDGE of 0; one that differs farther from 0 is a real difference and fails.
    relu_open = dict(record["train_relu_open"])
    flipped = relu_open["roi_heads.box_head.fc7"].clone()
    flipped[0, 0] = ~flipped[0, 0]
    tampered = {**record, "train_relu_open": {**relu_open, "roi_heads.box_head.fc7": flipped}}
    with pytest.raises(AssertionError, match="fc7: a ReLU away from 0 differs"):
        check_train(model, tampered)


def constructor_form_model() -> FasterRCNN:
    """``torchvision_side.tiny_model`` as written there (torchvision's constructor form,
    its ``box_head`` and ``box_predictor`` given as modules), with this package's classes
    (:func:`~torchvision_record.tiny_constructor_form`)."""
    return tiny_constructor_form(
        lambda: {"box_head": TwoMLPHead(16 * 7 * 7, 64), "box_predictor": FastRCNNPredictor(64, 4)}
    )


def test_torchvision_s_constructor_form_builds_the_recorded_model_weight_for_weight(record):
    """The given heads are the model's and no other weights are drawn, so the random
    stream, and every weight, is the one torchvision's constructor drew."""
    model = constructor_form_model()
    assert model.config == tiny_config()
    state = model.state_dict()
    assert list(state) == list(record["state_dict"])
    assert [k for k, v in record["state_dict"].items() if not torch.equal(state[k], v)] == []
    print("\nconstructor form eval, worst differences:", check_eval(model, record))
    print("constructor form training, worst differences:", check_train(model, record))
