"""torchvision's builder keywords on the presets: each sets its config field, and the
model built runs with it."""

import pytest
import torch

from faster_rcnn import models
from faster_rcnn.backbones import FrozenBatchNorm2d
from faster_rcnn.models import preset_config

# Each torchvision keyword, a value unlike the presets', and where it lands.
KEYWORDS = {
    "min_size": (320, ("transform", "min_size", (320,))),
    "max_size": (500, ("transform", "max_size", 500)),
    "image_mean": ((0.5, 0.5, 0.5), ("transform", "image_mean", (0.5, 0.5, 0.5))),
    "image_std": ((0.25, 0.25, 0.25), ("transform", "image_std", (0.25, 0.25, 0.25))),
    "rpn_pre_nms_top_n_train": (1500, ("rpn", "pre_nms_top_n_train", 1500)),
    "rpn_pre_nms_top_n_test": (600, ("rpn", "pre_nms_top_n_test", 600)),
    "rpn_post_nms_top_n_train": (1200, ("rpn", "post_nms_top_n_train", 1200)),
    "rpn_post_nms_top_n_test": (300, ("rpn", "post_nms_top_n_test", 300)),
    "rpn_nms_thresh": (0.6, ("rpn", "nms_thresh", 0.6)),
    "rpn_fg_iou_thresh": (0.65, ("rpn", "fg_iou_thresh", 0.65)),
    "rpn_bg_iou_thresh": (0.25, ("rpn", "bg_iou_thresh", 0.25)),
    "rpn_batch_size_per_image": (128, ("rpn", "batch_size_per_image", 128)),
    "rpn_positive_fraction": (0.4, ("rpn", "positive_fraction", 0.4)),
    "rpn_score_thresh": (0.05, ("rpn", "score_thresh", 0.05)),
    "box_score_thresh": (0.7, ("roi_heads", "score_thresh", 0.7)),
    "box_nms_thresh": (0.4, ("roi_heads", "nms_thresh", 0.4)),
    "box_detections_per_img": (7, ("roi_heads", "detections_per_img", 7)),
    "box_fg_iou_thresh": (0.6, ("roi_heads", "fg_iou_thresh", 0.6)),
    "box_bg_iou_thresh": (0.4, ("roi_heads", "bg_iou_thresh_hi", 0.4)),
    "box_batch_size_per_image": (128, ("roi_heads", "batch_size_per_image", 128)),
    "box_positive_fraction": (0.3, ("roi_heads", "positive_fraction", 0.3)),
    "bbox_reg_weights": ((1.0, 1.0, 1.0, 1.0), ("roi_heads", "box_coder_weights", (1.0,) * 4)),
    "trainable_backbone_layers": (5, ("backbone", "trainable_layers", 5)),
}


@pytest.mark.parametrize("keyword", list(KEYWORDS))
def test_each_keyword_sets_its_field_and_nothing_else(keyword):
    value, (section, field, expected) = KEYWORDS[keyword]
    model = models.mobilenet_v3_large_320_fpn(3, **{keyword: value})
    preset = preset_config("mobilenet_v3_large_320_fpn", 3)
    assert getattr(getattr(model.config, section), field) == expected
    assert model.config == preset.replace(**{section: {field: expected}})


def test_the_built_model_runs_with_them():
    """A torchvision user's arguments, as its fasterrcnn_* builders take them: at most 3
    detections at 0.0 score and above, the image resized to 200 on its shorter side."""
    model = models.small(
        3,
        weights=None,
        weights_backbone=None,
        progress=False,
        box_detections_per_img=3,
        box_score_thresh=0.0,
        min_size=200,
        max_size=400,
    ).eval()
    image = torch.rand(3, 100, 150, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        batch, _ = model.transform([image])
        (detections,) = model([image])
    assert batch.image_sizes == [(200, 300)]
    assert 0 < len(detections["boxes"]) <= 3


@pytest.mark.parametrize(
    ("options", "error", "said"),
    [
        ({"box_predictor": torch.nn.Linear(2, 2)}, ValueError, "model.roi_heads.box_predictor"),
        ({"rpn_anchor_generator": object()}, ValueError, "config.anchors"),
        ({"weights": "DEFAULT"}, ValueError, "nothing is downloaded here"),
        ({"weights_backbone": "IMAGENET1K_V1"}, ValueError, "load_backbone_weights"),
        ({"box_score_tresh": 0.5}, TypeError, "unexpected keyword argument 'box_score_tresh'"),
        ({"box_score_thresh": 1.5}, ValueError, "RoIHeadsConfig.score_thresh"),
    ],
)
def test_what_has_no_field_here_is_refused_in_one_line(options, error, said):
    with pytest.raises(error) as raised:
        models.small(3, **options)
    assert said in str(raised.value) and "\n" not in str(raised.value)


def test_what_torchvision_passes_its_transform_is_taken_where_it_asks_for_what_is_done_here():
    """torchvision's FasterRCNN passes ``**kwargs`` on to its GeneralizedRCNNTransform:
    ``fixed_size=None`` and ``_skip_resize=False`` (its defaults) were refused as unexpected
    keywords; another value asks for what is never done here, refused in one line."""
    defaults = {"fixed_size": None, "_skip_resize": False}
    assert models.small(3, **defaults).config == preset_config("small", 3)
    refused = {
        "fixed_size": ((640, 480), "only None is taken here; torchvision resizes every image"),
        "_skip_resize": (True, "only False is taken here; torchvision's references pass it"),
    }
    for key, (value, said) in refused.items():
        with pytest.raises(ValueError) as raised:
            models.small(3, **{key: value})
        assert str(raised.value).startswith(f"small({key}={value!r}): {said}")
        assert "\n" not in str(raised.value)


@pytest.mark.parametrize(("preset", "stages"), [("resnet50_fpn", 5), ("mobilenet_v3_large_fpn", 6)])
def test_weights_backbone_none_builds_torchvision_s_untrained_backbone(preset, stages):
    """torchvision's builders given ``weights_backbone=None`` train every stage with
    ``nn.BatchNorm2d``; left out (ImageNet weights to come), 3 stages and frozen norms."""
    build = getattr(models, preset)
    untrained = build(3, weights=None, weights_backbone=None)
    assert untrained.config == preset_config(preset, 3).replace(
        backbone={"frozen_batch_norm": False, "trainable_layers": stages}
    )
    assert all(p.requires_grad for p in untrained.parameters())
    modules = list(untrained.backbone.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in modules)
    assert not any(isinstance(m, FrozenBatchNorm2d) for m in modules)
    pretrained_layout = build(3, weights=None)
    assert pretrained_layout.config == preset_config(preset, 3)
    assert not all(p.requires_grad for p in pretrained_layout.parameters())


def test_trainable_layers_with_an_untrained_backbone_are_overridden_with_a_warning():
    message = (
        r"^mobilenet_v3_large_320_fpn\(weights_backbone=None, trainable_backbone_layers=2\): "
        r"an untrained backbone trains all 6 stages, as torchvision's builders do"
    )
    with pytest.warns(UserWarning, match=message) as warned:
        model = models.mobilenet_v3_large_320_fpn(
            3, weights_backbone=None, trainable_backbone_layers=2
        )
    assert warned[0].filename == __file__  # points at the caller's line
    assert model.config.backbone.trainable_layers == 6
    assert all(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize(
    "builder, preset",
    [
        ("fasterrcnn_resnet50_fpn", "resnet50_fpn"),
        ("fasterrcnn_resnet50_fpn_v2", "resnet50_fpn_v2"),
        ("fasterrcnn_mobilenet_v3_large_fpn", "mobilenet_v3_large_fpn"),
        ("fasterrcnn_mobilenet_v3_large_320_fpn", "mobilenet_v3_large_320_fpn"),
    ],
)
def test_torchvision_s_builder_names_build_their_preset_keyword_only(builder, preset):
    """Code written for torchvision.models.detection runs with its import changed: the
    same keywords, positional arguments refused as there, what would download too."""
    build = getattr(models, builder)
    options = {"weights": None, "progress": False, "box_score_thresh": 0.7, "min_size": 320}
    model = build(num_classes=3, **options)
    assert model.config == getattr(models, preset)(3, **options).config
    assert model.config.num_classes == 3 and model.config.roi_heads.score_thresh == 0.7
    assert build(weights=None).config == preset_config(preset)  # 91, COCO's, as there
    with pytest.raises(TypeError, match="positional argument"):
        build(3)
    with pytest.raises(ValueError, match="load_torchvision_checkpoint"):
        build(weights="DEFAULT")
