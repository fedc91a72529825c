"""torchvision's constructor form with head modules: ``FasterRCNN(backbone,
num_classes=None, box_predictor=FastRCNNPredictor(1024, 3))``, ``rpn_head=RPNHead(...)``,
``box_head=TwoMLPHead(...)``. This package's classes set the config fields their shapes
give, the model runs them with their weights, and a contradiction is one line."""

import re

import pytest
import torch
from given_heads import assert_round_trips, assert_runs_the_given_heads, head_fields
from torch import Tensor, nn

from faster_rcnn import AnchorGenerator, FasterRCNN, models
from faster_rcnn.roi_heads import (
    ConvFCHead,
    FastRCNNPredictor,
    MultiScaleRoIAlign,
    TwoMLPHead,
    VGG16BoxHead,
)
from faster_rcnn.rpn import RPNHead
from faster_rcnn.torchvision_heads import GivenHeads

CHANNELS = 24
POOLED = CHANNELS * 7 * 7  # 1176 inputs of a box head on 7x7 RoIs of 24 channels


class OneMapBackbone(nn.Sequential):
    """One stride-16 map of 24 channels, as the fine-tuning tutorial's MobileNetV2."""

    def __init__(self) -> None:
        super().__init__(
            nn.Conv2d(3, 16, 3, stride=4, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, CHANNELS, 3, stride=4, padding=1),
        )
        self.out_channels = CHANNELS


def tutorial_model(**heads: object) -> FasterRCNN:
    """The tutorial's model (15 anchors a location, one pooled map) with ``heads``;
    ``num_classes=3`` unless ``heads`` set it."""
    keywords = {"num_classes": 3, **heads}
    return FasterRCNN(
        OneMapBackbone(),
        rpn_anchor_generator=AnchorGenerator(
            sizes=((32, 64, 128, 256, 512),), aspect_ratios=((0.5, 1.0, 2.0),)
        ),
        box_roi_pool=MultiScaleRoIAlign(featmap_names=["0"], output_size=7, sampling_ratio=2),
        min_size=96,
        max_size=128,
        box_score_thresh=0.0,
        **keywords,
    )


def images() -> list[Tensor]:
    gen = torch.Generator().manual_seed(0)
    return [torch.rand(3, 100, 150, generator=gen), torch.rand(3, 120, 90, generator=gen)]


def detections(model: FasterRCNN) -> list[dict[str, Tensor]]:
    with torch.no_grad():
        return model.eval()(images())


FORMS = {
    "tutorial's predictor": (
        lambda: {"num_classes": None, "box_predictor": FastRCNNPredictor(1024, 4)},
        {
            "num_classes": 4,
            "box_head": "two_mlp",
            "representation_size": 1024,
            "head_conv_depth": 1,
        },
    ),
    "a predictor of another width, the head built to feed it": (
        lambda: {"num_classes": None, "box_predictor": FastRCNNPredictor(256, 3)},
        {"num_classes": 3, "box_head": "two_mlp", "representation_size": 256, "head_conv_depth": 1},
    ),
    "an RPN head": (
        lambda: {"rpn_head": RPNHead(CHANNELS, 15, conv_depth=2)},
        {
            "num_classes": 3,
            "box_head": "two_mlp",
            "representation_size": 1024,
            "head_conv_depth": 2,
        },
    ),
    "a box head": (
        lambda: {"box_head": TwoMLPHead(POOLED, 512)},
        {"num_classes": 3, "box_head": "two_mlp", "representation_size": 512, "head_conv_depth": 1},
    ),
    "all three": (
        lambda: {
            "num_classes": None,
            "rpn_head": RPNHead(CHANNELS, 15, conv_depth=3),
            "box_head": TwoMLPHead(POOLED, 128),
            "box_predictor": FastRCNNPredictor(128, 5),
        },
        {"num_classes": 5, "box_head": "two_mlp", "representation_size": 128, "head_conv_depth": 3},
    ),
    "torchvision's conv head of the v2 model": (
        lambda: {"box_head": ConvFCHead(CHANNELS, 7, 256)},
        {"num_classes": 3, "box_head": "conv_fc", "representation_size": 256, "head_conv_depth": 1},
    ),
    "a conv head and a predictor": (
        lambda: {
            "num_classes": None,
            "box_head": ConvFCHead(CHANNELS, 7, 128),
            "box_predictor": FastRCNNPredictor(128, 5),
        },
        {"num_classes": 5, "box_head": "conv_fc", "representation_size": 128, "head_conv_depth": 1},
    ),
    "the paper's VGG-16 head": (
        lambda: {"box_head": VGG16BoxHead(POOLED, 128)},
        {"num_classes": 3, "box_head": "vgg16", "representation_size": 128, "head_conv_depth": 1},
    ),
}


@pytest.mark.parametrize("form", list(FORMS))
def test_a_head_module_sets_its_fields_runs_with_its_weights_and_round_trips(form, tmp_path):
    torch.manual_seed(0)
    heads = FORMS[form][0]()
    model = tutorial_model(**heads)
    assert head_fields(model) == FORMS[form][1]
    assert_runs_the_given_heads(model, heads)
    assert_round_trips(
        model, lambda config: FasterRCNN(OneMapBackbone(), config), detections, tmp_path
    )


def test_the_given_weights_are_the_ones_the_model_detects_with():
    """A predictor whose class-2 bias dwarfs the others labels every detection 2: the
    model did not draw a fresh predictor."""
    torch.manual_seed(0)
    predictor = FastRCNNPredictor(1024, 3)
    with torch.no_grad():
        predictor.cls_score.bias.copy_(torch.tensor([0.0, 0.0, 50.0]))
    found = detections(tutorial_model(num_classes=None, box_predictor=predictor))
    labels = torch.cat([d["labels"] for d in found])
    assert len(labels) > 0 and bool((labels == 2).all())


def test_the_constructor_draws_no_weights_for_a_head_it_is_given():
    """With a box head and predictor given, the RPN head is the last weights drawn: the
    random stream continues as after torchvision's constructor, which builds no other."""
    torch.manual_seed(0)
    head, predictor = TwoMLPHead(POOLED, 64), FastRCNNPredictor(64, 3)
    tutorial_model(num_classes=None, box_head=head, box_predictor=predictor)
    after_model = torch.rand(3)
    torch.manual_seed(0)
    _ = [TwoMLPHead(POOLED, 64), FastRCNNPredictor(64, 3), OneMapBackbone(), RPNHead(CHANNELS, 15)]
    assert torch.equal(after_model, torch.rand(3))


def layer_replaced() -> FastRCNNPredictor:
    predictor = FastRCNNPredictor(1024, 3)
    predictor.bbox_pred = nn.Linear(1024, 8)
    return predictor


def conv_less_layer_replaced() -> ConvFCHead:
    """A head of no convs on 24 x 7 x 7 RoIs, its layer taking 100 inputs instead."""
    head = ConvFCHead(CHANNELS, 7, 1024, num_convs=0)
    head[1] = nn.Linear(100, 1024)
    return head


def of_another_kind(head: nn.Module, layer: str) -> nn.Module:
    """``head`` with its ``layer`` replaced by a module of another kind."""
    setattr(head, layer, nn.Identity())
    return head


def replaced(head: nn.Module, layer: str, by: nn.Module) -> nn.Module:
    """``head`` with its layer at the dotted path ``layer`` replaced ``by`` another."""
    *parents, name = layer.split(".")
    setattr(head.get_submodule(".".join(parents)), name, by)
    return head


class OwnPredictor(FastRCNNPredictor):
    """A user's own predictor class (a subclass the config cannot rebuild)."""


CONTRADICTIONS = {
    "num_classes with a predictor": (
        lambda: {"num_classes": 3, "box_predictor": FastRCNNPredictor(1024, 3)},
        "FasterRCNN(num_classes=3, box_predictor=FastRCNNPredictor(1024, 3)): num_classes "
        "must be None when box_predictor is given (its 3 classes are the model's), as "
        "torchvision's FasterRCNN requires",
    ),
    "neither num_classes nor a predictor": (
        lambda: {"num_classes": None},
        "FasterRCNN(backbone, ...) needs num_classes (background included), or "
        "box_predictor=FastRCNNPredictor(in_features, num_classes)",
    ),
    "a predictor of more classes than the config takes": (
        lambda: {"num_classes": None, "box_predictor": FastRCNNPredictor(8, 100_001)},
        "FasterRCNN(box_predictor=FastRCNNPredictor(8, 100001)): its class count 100001 "
        "(background included) is the model's num_classes, which must be in [2, 100000]",
    ),
    "RPN head's channels": (
        lambda: {"rpn_head": RPNHead(256, 15)},
        "FasterRCNN(rpn_head=RPNHead(256, 15)): its 256 input channels contradict the "
        "backbone's out_channels 24",
    ),
    "RPN head's anchors": (
        lambda: {"rpn_head": RPNHead(CHANNELS, 3, conv_depth=2)},
        "FasterRCNN(rpn_head=RPNHead(24, 3, conv_depth=2)): its 3 anchors a location "
        "contradict the anchor generator's 15 (5 sizes x 3 aspect ratios a level)",
    ),
    "box head's inputs": (
        lambda: {"box_head": TwoMLPHead(256 * 7 * 7, 1024)},
        "FasterRCNN(box_head=TwoMLPHead(12544, 1024)): its 12544 inputs contradict a pooled "
        "RoI's 24 x 7 x 7 = 1176 (the backbone's out_channels, the RoI pooler's output_size)",
    ),
    "box head's width and the predictor's": (
        lambda: {
            "num_classes": None,
            "box_head": TwoMLPHead(POOLED, 512),
            "box_predictor": FastRCNNPredictor(1024, 3),
        },
        "FasterRCNN(box_head=TwoMLPHead(1176, 512), box_predictor=FastRCNNPredictor(1024, "
        "3)): the head's 512 features contradict the predictor's 1024 inputs",
    ),
    "a layer replaced in a predictor": (
        lambda: {"num_classes": None, "box_predictor": layer_replaced()},
        "FasterRCNN(box_predictor=FastRCNNPredictor(1024, 3)): its bbox_pred.bias is (8,), "
        "not the (12,) of that head (a layer replaced, which the config cannot rebuild)",
    ),
    "an RPN head's convs replaced by another kind": (
        lambda: {"rpn_head": of_another_kind(RPNHead(CHANNELS, 15), "conv")},
        "FasterRCNN(rpn_head=RPNHead(...)): its layers are not those of a RPNHead (a layer "
        "replaced, which the config cannot rebuild)",
    ),
    "a box head's first layer replaced by another kind": (
        lambda: {"box_head": of_another_kind(TwoMLPHead(POOLED, 1024), "fc6")},
        "FasterRCNN(box_head=TwoMLPHead(...)): its layers are not those of a TwoMLPHead (a "
        "layer replaced, which the config cannot rebuild)",
    ),
    "a predictor's scores replaced by another kind": (
        lambda: {
            "num_classes": None,
            "box_predictor": of_another_kind(FastRCNNPredictor(1024, 3), "cls_score"),
        },
        "FasterRCNN(box_predictor=FastRCNNPredictor(...)): its layers are not those of a "
        "FastRCNNPredictor (a layer replaced, which the config cannot rebuild)",
    ),
    "an RPN head's activation replaced": (
        lambda: {"rpn_head": replaced(RPNHead(CHANNELS, 15), "conv.0.1", nn.GELU())},
        "FasterRCNN(rpn_head=RPNHead(24, 15)): its conv.0.1 is GELU(approximate='none'), not "
        "the ReLU(inplace=True) of that head (a layer replaced, which the config cannot "
        "rebuild)",
    ),
    "an RPN head's conv dilated": (
        lambda: {
            "rpn_head": replaced(
                RPNHead(CHANNELS, 15), "conv.0.0", nn.Conv2d(24, 24, 3, padding=2, dilation=2)
            )
        },
        "FasterRCNN(rpn_head=RPNHead(24, 15)): its conv.0.0 is Conv2d(24, 24, "
        "kernel_size=(3, 3), stride=(1, 1), padding=(2, 2), dilation=(2, 2)), not the "
        "Conv2d(24, 24, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1)) of that head (a "
        "layer replaced, which the config cannot rebuild)",
    ),
    "a layer without weights added to an RPN head": (
        lambda: {"rpn_head": replaced(RPNHead(CHANNELS, 15), "conv.0.2", nn.Sigmoid())},
        "FasterRCNN(rpn_head=RPNHead(24, 15)): its conv.0.2 is Sigmoid(), not the None of "
        "that head (a layer replaced, which the config cannot rebuild)",
    ),
    "a conv head's last activation replaced": (
        lambda: {"box_head": replaced(ConvFCHead(CHANNELS, 7, 64), "6", nn.Sigmoid())},
        "FasterRCNN(box_head=ConvFCHead(24, 7, 64)): its 6 is Sigmoid(), not the "
        "ReLU(inplace=True) of that head (a layer replaced, which the config cannot rebuild)",
    ),
    "a conv head's conv padding otherwise": (
        lambda: {
            "box_head": replaced(
                ConvFCHead(CHANNELS, 7, 64),
                "3.0",
                nn.Conv2d(24, 24, 3, padding=1, padding_mode="reflect", bias=False),
            )
        },
        "FasterRCNN(box_head=ConvFCHead(24, 7, 64)): its 3.0 is Conv2d(24, 24, "
        "kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), bias=False, "
        "padding_mode=reflect), not the Conv2d(24, 24, kernel_size=(3, 3), stride=(1, 1), "
        "padding=(1, 1), bias=False) of that head (a layer replaced, which the config "
        "cannot rebuild)",
    ),
    "a conv head of another conv count": (
        lambda: {"box_head": ConvFCHead(CHANNELS, 7, 1024, num_convs=2)},
        "FasterRCNN(box_head=ConvFCHead(24, 7, 1024, num_convs=2)): config.roi_heads.box_head "
        "'conv_fc' has 4 convs (torchvision's FastRCNNConvFCHead), so a head of 2 cannot be "
        "rebuilt from the config",
    ),
    "a conv head without convs": (
        lambda: {"box_head": ConvFCHead(CHANNELS, 7, 1024, num_convs=0)},
        "FasterRCNN(box_head=ConvFCHead(24, 7, 1024, num_convs=0)): config.roi_heads.box_head "
        "'conv_fc' has 4 convs (torchvision's FastRCNNConvFCHead), so a head of 0 cannot be "
        "rebuilt from the config",
    ),
    "the layer replaced in a conv head without convs": (
        lambda: {"box_head": conv_less_layer_replaced()},
        "FasterRCNN(box_head=ConvFCHead(24, 7, 1024, num_convs=0)): its 1.weight is (1024, "
        "100), not the (1024, 1176) of that head (a layer replaced, which the config cannot "
        "rebuild)",
    ),
    "a conv head's channels": (
        lambda: {"box_head": ConvFCHead(32, 7, 1024)},
        "FasterRCNN(box_head=ConvFCHead(32, 7, 1024)): its 32 channels contradict the "
        "backbone's out_channels 24",
    ),
    "a conv head's grid": (
        lambda: {"box_head": ConvFCHead(CHANNELS, 5, 1024)},
        "FasterRCNN(box_head=ConvFCHead(24, 5, 1024)): its 5 x 5 RoIs contradict "
        "the RoI pooler's output_size 7",
    ),
    "a conv head's conv replaced by another kind": (
        lambda: {"box_head": of_another_kind(ConvFCHead(CHANNELS, 7, 64), "0")},
        "FasterRCNN(box_head=ConvFCHead(...)): its layers are not those of a ConvFCHead (a "
        "layer replaced, which the config cannot rebuild)",
    ),
    "a VGG-16 head of another dropout": (
        lambda: {"box_head": VGG16BoxHead(POOLED, 64, dropout=0.3)},
        "FasterRCNN(box_head=VGG16BoxHead(1176, 64, dropout=0.3)): config.roi_heads.box_head "
        "'vgg16' drops 0.5 (the paper's), so a head dropping 0.3 cannot be rebuilt from the "
        "config",
    ),
    "a VGG-16 head's inputs": (
        lambda: {"box_head": VGG16BoxHead(512 * 7 * 7, 64)},
        "FasterRCNN(box_head=VGG16BoxHead(25088, 64)): its 25088 inputs contradict a "
        "pooled RoI's 24 x 7 x 7 = 1176 (the backbone's out_channels, the RoI pooler's "
        "output_size)",
    ),
    "a predictor of the user's own class": (
        lambda: {"num_classes": None, "box_predictor": OwnPredictor(1024, 3)},
        "FasterRCNN(box_predictor=...): torchvision takes a module there; here that part is "
        "model.roi_heads.box_predictor replaced on the built model (torchvision's "
        "fine-tuning idiom; num_classes follows it)",
    ),
    "a box head of another class": (
        lambda: {"box_head": nn.Flatten()},
        "FasterRCNN(box_head=...): torchvision takes a module there; here that part is "
        "config.roi_heads (box_head, representation_size)",
    ),
}


@pytest.mark.parametrize("refused", list(CONTRADICTIONS))
def test_a_contradiction_or_another_class_is_refused_in_one_line(refused):
    heads, message = CONTRADICTIONS[refused]
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        tutorial_model(**heads())


@pytest.mark.parametrize("depth", [0, 9])
def test_an_rpn_head_of_a_depth_the_config_refuses_is_named(depth):
    with pytest.raises(ValueError) as refused:
        tutorial_model(rpn_head=RPNHead(CHANNELS, 15, conv_depth=depth))
    assert str(refused.value) == (
        f"FasterRCNN(rpn_head=RPNHead(24, 15, conv_depth={depth})): "
        "RPNConfig.head_conv_depth must be in [1, 8]"
    )


# The small preset's config (64 channels, 12 anchors a location, 7x7 RoIs, two fully
# connected layers of 256, one RPN conv) for 2 named classes, and heads it does not describe.
NOT_DESCRIBED = {
    "a predictor of more classes": (
        GivenHeads(box_predictor=FastRCNNPredictor(256, 5)),
        "FasterRCNN(box_predictor=FastRCNNPredictor(256, 5)): its 5 classes contradict "
        "config.num_classes 3",
    ),
    "a predictor of another width": (
        GivenHeads(box_predictor=FastRCNNPredictor(128, 3)),
        "FasterRCNN(box_predictor=FastRCNNPredictor(128, 3)): it gives "
        "roi_heads.representation_size 128, config.roi_heads.representation_size is 256",
    ),
    "an RPN head of two convs": (
        GivenHeads(rpn_head=RPNHead(64, 12, conv_depth=2)),
        "FasterRCNN(rpn_head=RPNHead(64, 12, conv_depth=2)): it gives rpn.head_conv_depth "
        "2, config.rpn.head_conv_depth is 1",
    ),
    "a conv head": (
        GivenHeads(box_head=ConvFCHead(64, 7, 256)),
        "FasterRCNN(box_head=ConvFCHead(64, 7, 256)): it gives roi_heads.box_head "
        "'conv_fc', config.roi_heads.box_head is 'two_mlp'",
    ),
    "an RPN head of other anchors": (
        GivenHeads(rpn_head=RPNHead(64, 3)),
        "FasterRCNN(rpn_head=RPNHead(64, 3)): its 3 anchors a location contradict the "
        "anchor generator's 12 (4 sizes x 3 aspect ratios a level)",
    ),
    "a predictor of the user's own class": (
        GivenHeads(box_predictor=OwnPredictor(256, 3)),
        "FasterRCNN(box_predictor=OwnPredictor(...)): a config rebuilds only "
        "FastRCNNPredictor there, not OwnPredictor",
    ),
    "a box head of another class": (
        GivenHeads(box_head=nn.Flatten()),  # type: ignore[arg-type]
        "FasterRCNN(box_head=Flatten(...)): a config rebuilds only TwoMLPHead, "
        "VGG16BoxHead or ConvFCHead there, not Flatten",
    ),
}


@pytest.mark.parametrize("given", list(NOT_DESCRIBED))
def test_heads_given_with_a_config_that_does_not_describe_them_are_refused(given):
    """The config would be the model's (its file's), so it must describe the heads: a
    predictor of 5 classes beside 2 class names is not silently taken as 5 classes."""
    config = models.small_config(3).replace(class_names=("cell", "platelet"))
    heads, message = NOT_DESCRIBED[given]
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        FasterRCNN.from_config(config, heads)


# The keywords' refusals of a head whose layers no config rebuilds.
NOT_REBUILT = [
    "a layer replaced in a predictor",
    "an RPN head's convs replaced by another kind",
    "a box head's first layer replaced by another kind",
    "a predictor's scores replaced by another kind",
    "the layer replaced in a conv head without convs",
    "a conv head's conv replaced by another kind",
    "an RPN head's activation replaced",
    "an RPN head's conv dilated",
    "a layer without weights added to an RPN head",
    "a conv head's last activation replaced",
    "a conv head's conv padding otherwise",
]


@pytest.mark.parametrize("refused", NOT_REBUILT)
def test_a_head_given_with_a_config_is_refused_as_the_keywords_refuse_it(refused):
    """``heads=`` checks the layers as the keywords do: taken, a layer replaced would make
    a model file that loads into no model, or a traceback where a layer is read."""
    keywords, message = CONTRADICTIONS[refused]
    heads = GivenHeads(**{key: head for key, head in keywords().items() if key != "num_classes"})
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        FasterRCNN(OneMapBackbone(), tutorial_model().config, heads=heads)


# Heads given with the small preset's config (64 channels, 12 anchors a location, 7x7
# RoIs) of the box head kind each needs.
ROUND_TRIPS = {
    "an RPN head": (lambda: GivenHeads(rpn_head=RPNHead(64, 12)), "two_mlp"),
    "a box head of two layers": (
        lambda: GivenHeads(box_head=TwoMLPHead(64 * 7 * 7, 256)),
        "two_mlp",
    ),
    "the paper's VGG-16 head": (
        lambda: GivenHeads(box_head=VGG16BoxHead(64 * 7 * 7, 256)),
        "vgg16",
    ),
    "a conv head": (lambda: GivenHeads(box_head=ConvFCHead(64, 7, 256)), "conv_fc"),
    "a predictor": (lambda: GivenHeads(box_predictor=FastRCNNPredictor(256, 3)), "two_mlp"),
}


@pytest.mark.parametrize("given", list(ROUND_TRIPS))
def test_a_model_of_heads_given_with_a_config_reloads_from_its_file_as_itself(given, tmp_path):
    """The model file's config rebuilds the network the given head made: loaded, it makes
    the very detections (the given head's weights are not those a fresh head draws)."""
    torch.manual_seed(0)
    make, box_head = ROUND_TRIPS[given]
    config = models.small_config(3).replace(
        transform={"min_size": (96,), "max_size": 128},
        roi_heads={"box_head": box_head, "score_thresh": 0.0},
    )
    heads = make()
    model = FasterRCNN.from_config(config, heads)
    assert_runs_the_given_heads(model, {k: v for k, v in heads._asdict().items() if v is not None})
    assert_round_trips(model, FasterRCNN.from_config, detections, tmp_path)
