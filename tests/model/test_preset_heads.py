"""The presets take torchvision's head modules as its builders pass them on to
``FasterRCNN``: ``small(rpn_head=RPNHead(64, 12, conv_depth=2))``,
``box_head=ConvFCHead(64, 7, 128)``, ``num_classes=None,
box_predictor=FastRCNNPredictor(256, 3)``. This package's classes set the config fields
their shapes give, the model runs them with their weights, and a contradiction is one
line naming the preset."""

import re

import pytest
import torch
from given_heads import assert_round_trips, assert_runs_the_given_heads, head_fields
from torch import Tensor

from faster_rcnn import FasterRCNN, models
from faster_rcnn.roi_heads import ConvFCHead, FastRCNNPredictor, TwoMLPHead, VGG16BoxHead
from faster_rcnn.rpn import RPNHead

# The small preset: 64 channels, 12 anchors a location (4 sizes x 3 ratios), 7x7 RoIs.
POOLED = 64 * 7 * 7


def small_model(**options: object) -> FasterRCNN:
    """The small preset on 200/300 images, keeping every detection, with ``options``."""
    return models.small(min_size=200, max_size=300, box_score_thresh=0.0, **options)


def detections(model: FasterRCNN) -> list[dict[str, Tensor]]:
    gen = torch.Generator().manual_seed(0)
    images = [torch.rand(3, 100, 150, generator=gen), torch.rand(3, 120, 90, generator=gen)]
    with torch.no_grad():
        return model.eval()(images)


FORMS = {
    "a predictor, num_classes left out": (
        lambda: {"box_predictor": FastRCNNPredictor(96, 3)},
        {"num_classes": 3, "box_head": "two_mlp", "representation_size": 96, "head_conv_depth": 1},
    ),
    "a predictor, num_classes None": (
        lambda: {"num_classes": None, "box_predictor": FastRCNNPredictor(256, 5)},
        {"num_classes": 5, "box_head": "two_mlp", "representation_size": 256, "head_conv_depth": 1},
    ),
    "an RPN head": (
        lambda: {"rpn_head": RPNHead(64, 12, conv_depth=2)},
        {"num_classes": 4, "box_head": "two_mlp", "representation_size": 256, "head_conv_depth": 2},
    ),
    "a box head": (
        lambda: {"num_classes": 2, "box_head": TwoMLPHead(POOLED, 128)},
        {"num_classes": 2, "box_head": "two_mlp", "representation_size": 128, "head_conv_depth": 1},
    ),
    "the v2 model's conv head": (
        lambda: {"box_head": ConvFCHead(64, 7, 96)},
        {"num_classes": 4, "box_head": "conv_fc", "representation_size": 96, "head_conv_depth": 1},
    ),
    "the paper's VGG-16 head": (
        lambda: {"box_head": VGG16BoxHead(POOLED, 64)},
        {"num_classes": 4, "box_head": "vgg16", "representation_size": 64, "head_conv_depth": 1},
    ),
    "all three": (
        lambda: {
            "rpn_head": RPNHead(64, 12, conv_depth=3),
            "box_head": ConvFCHead(64, 7, 64),
            "box_predictor": FastRCNNPredictor(64, 6),
        },
        {"num_classes": 6, "box_head": "conv_fc", "representation_size": 64, "head_conv_depth": 3},
    ),
}


@pytest.mark.parametrize("form", list(FORMS))
def test_a_head_module_sets_its_fields_runs_with_its_weights_and_round_trips(form, tmp_path):
    torch.manual_seed(0)
    heads = FORMS[form][0]()
    model = small_model(**heads)
    assert head_fields(model) == FORMS[form][1]
    assert_runs_the_given_heads(model, heads)
    assert_round_trips(model, FasterRCNN.from_config, detections, tmp_path)


def test_the_given_weights_are_the_ones_the_model_detects_with():
    """A predictor whose class-2 bias dwarfs the others labels every detection 2."""
    torch.manual_seed(0)
    predictor = FastRCNNPredictor(256, 3)
    with torch.no_grad():
        predictor.cls_score.bias.copy_(torch.tensor([0.0, 0.0, 50.0]))
    labels = torch.cat([d["labels"] for d in detections(small_model(box_predictor=predictor))])
    assert len(labels) > 0 and bool((labels == 2).all())


def test_a_predictor_alone_keeps_the_preset_s_box_head_kind():
    """resnet50_fpn_v2's conv head is built to feed the predictor, not swapped for two
    fully connected layers."""
    model = models.resnet50_fpn_v2(weights_backbone=None, box_predictor=FastRCNNPredictor(512, 3))
    assert (model.config.roi_heads.box_head, model.config.roi_heads.representation_size) == (
        "conv_fc",
        512,
    )
    assert isinstance(model.roi_heads.box_head, ConvFCHead)


def test_num_classes_none_is_the_preset_s_count():
    assert models.small(None).config.num_classes == 4


CONTRADICTIONS = {
    "num_classes with a predictor": (
        lambda: {"num_classes": 3, "box_predictor": FastRCNNPredictor(256, 3)},
        "small(num_classes=3, box_predictor=FastRCNNPredictor(256, 3)): num_classes must be "
        "None when box_predictor is given (its 3 classes are the model's), as torchvision's "
        "FasterRCNN requires",
    ),
    "a predictor of the background alone": (
        lambda: {"box_predictor": FastRCNNPredictor(256, 1)},
        "small(box_predictor=FastRCNNPredictor(256, 1)): its class count 1 (background "
        "included) is the model's num_classes, which must be in [2, 100000]",
    ),
    "RPN head's channels": (
        lambda: {"rpn_head": RPNHead(256, 12)},
        "small(rpn_head=RPNHead(256, 12)): its 256 input channels contradict the backbone's "
        "out_channels 64",
    ),
    "RPN head's anchors": (
        lambda: {"rpn_head": RPNHead(64, 3)},
        "small(rpn_head=RPNHead(64, 3)): its 3 anchors a location contradict the anchor "
        "generator's 12 (4 sizes x 3 aspect ratios a level)",
    ),
    "RPN head's depth": (
        lambda: {"rpn_head": RPNHead(64, 12, conv_depth=0)},
        "small(rpn_head=RPNHead(64, 12, conv_depth=0)): RPNConfig.head_conv_depth must be in "
        "[1, 8]",
    ),
    "box head's inputs": (
        lambda: {"box_head": TwoMLPHead(256 * 7 * 7, 1024)},
        "small(box_head=TwoMLPHead(12544, 1024)): its 12544 inputs contradict a pooled RoI's "
        "64 x 7 x 7 = 3136 (the backbone's out_channels, the RoI pooler's output_size)",
    ),
    "a conv head of another conv count": (
        lambda: {"box_head": ConvFCHead(64, 7, 64, num_convs=1)},
        "small(box_head=ConvFCHead(64, 7, 64, num_convs=1)): config.roi_heads.box_head "
        "'conv_fc' has 4 convs (torchvision's FastRCNNConvFCHead), so a head of 1 cannot be "
        "rebuilt from the config",
    ),
    "box head's width and the predictor's": (
        lambda: {"box_head": TwoMLPHead(POOLED, 64), "box_predictor": FastRCNNPredictor(32, 3)},
        "small(box_head=TwoMLPHead(3136, 64), box_predictor=FastRCNNPredictor(32, 3)): the "
        "head's 64 features contradict the predictor's 32 inputs",
    ),
    "a box head of another class": (
        lambda: {"box_head": torch.nn.Flatten()},
        "small(box_head=...): torchvision takes a module there; here that part is "
        "config.roi_heads (box_head, representation_size)",
    ),
}


@pytest.mark.parametrize("refused", list(CONTRADICTIONS))
def test_a_contradiction_or_another_class_is_refused_in_one_line(refused):
    options, message = CONTRADICTIONS[refused]
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        models.small(**options())


# torchvision's builder passes these to FasterRCNN itself, so a caller's, None included,
# is "got multiple values for keyword argument" there.
BUILDERS_OWN = {
    "v2's RPN head": (
        "resnet50_fpn_v2",
        "rpn_head",
        lambda: RPNHead(256, 3, conv_depth=2),
        "rpn.head_conv_depth",
    ),
    "v2's box head, None": (
        "resnet50_fpn_v2",
        "box_head",
        lambda: None,
        "roi_heads.box_head and representation_size",
    ),
    "v2's anchor generator, None": (
        "resnet50_fpn_v2",
        "rpn_anchor_generator",
        lambda: None,
        "anchors",
    ),
    "MobileNetV3's anchor generator, None": (
        "mobilenet_v3_large_320_fpn",
        "rpn_anchor_generator",
        lambda: None,
        "anchors",
    ),
}


@pytest.mark.parametrize("repeated", list(BUILDERS_OWN))
def test_a_module_torchvision_s_builder_passes_itself_is_refused_as_there(repeated):
    preset, key, value, fields = BUILDERS_OWN[repeated]
    message = (
        f"{preset}() got multiple values for keyword argument '{key}': the preset passes its "
        f"own, as torchvision's fasterrcnn_{preset} does (here that part is "
        f"preset_config('{preset}').{fields})"
    )
    with pytest.raises(TypeError, match=f"^{re.escape(message)}$"):
        getattr(models, preset)(weights_backbone=None, **{key: value()})
