"""Configs are frozen and validated completely when made: type, range, consistency."""

import dataclasses
import math

import numpy as np
import pytest
import torch

from faster_rcnn.config import (
    BACKBONES,
    FLOAT32_LARGEST,
    FLOAT32_SMALLEST,
    AnchorConfig,
    BackboneConfig,
    ConfigError,
    FasterRCNNConfig,
    RoIHeadsConfig,
    RPNConfig,
    TransformConfig,
)
from faster_rcnn.model import FasterRCNN
from faster_rcnn.models import PRESETS, preset_config
from faster_rcnn.ops.soft_nms import soft_nms_factor
from faster_rcnn.train.train_config import TrainConfig


@pytest.mark.parametrize("name", list(PRESETS))
def test_json_round_trip_restores_every_preset_exactly(name):
    cfg = dataclasses.replace(preset_config(name, num_classes=3), class_names=("cat", "dog"))
    assert FasterRCNNConfig.from_json(cfg.to_json()) == cfg


def test_unknown_fields_and_inconsistent_class_names_are_rejected():
    data = preset_config("small").to_dict()
    data["rpn"]["nms_threshold"] = 0.7
    with pytest.raises(ValueError, match=r"unknown RPNConfig field\(s\): \['nms_threshold'\]"):
        FasterRCNNConfig.from_dict(data)
    data = preset_config("small", num_classes=3).to_dict()
    data["class_names"] = ["a", "b", "c"]
    with pytest.raises(ValueError, match=r"class_names must be 2 names.*got 3"):
        FasterRCNNConfig.from_dict(data)
    with pytest.raises(ValueError, match="unknown config field 'colour'"):
        FasterRCNNConfig.from_dict({"colour": 1})


def test_replace_names_a_misspelt_field_and_refuses_repeated_names():
    config = preset_config("small", num_classes=3)
    with pytest.raises(ValueError) as error:
        config.replace(rpn={"nms_thresold": 0.5})
    assert str(error.value) == (
        "unknown RPNConfig field(s): ['nms_thresold'] (did you mean 'nms_thresh'?)"
    )
    with pytest.raises(ValueError, match=r"^unknown FasterRCNNConfig field\(s\): \['colour'\]$"):
        config.replace(colour=1)
    with pytest.raises(ValueError) as error:
        config.replace(class_names=("dog", "dog"))
    assert str(error.value) == (
        "FasterRCNNConfig.class_names must be names of different classes; 'dog' repeats"
    )
    # convert --classes "" x wrote a model file with a class named "".
    for names in (("", "dog"), ("dog", " ")):
        with pytest.raises(ValueError) as error:
            config.replace(class_names=names)
        blank = repr(names[0] if names[0] != "dog" else names[1])
        assert (
            str(error.value) == f"FasterRCNNConfig.class_names must be non-blank names; got {blank}"
        )
    with pytest.raises(ValueError) as error:
        config.replace(roi_heads={"featmap_names": ("0", "0")})
    assert str(error.value) == (
        "RoIHeadsConfig.featmap_names must be names of different maps, got ('0', '0')"
    )


def test_configs_are_immutable_so_a_built_model_cannot_drift_from_its_config():
    cfg = preset_config("small")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.rpn.fg_iou_thresh = 0.5  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.class_names = ("a",)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: RPNConfig(fg_iou_thresh=0.3, bg_iou_thresh=0.7), "bg_iou_thresh.*ordered"),
        (lambda: RPNConfig(fg_iou_thresh=1.5), "ordered"),
        (lambda: RPNConfig(sampler="ohem"), r"sampler must be one of 'random', 'hard_negative'"),
        (lambda: RPNConfig(nms_thresh="0.7"), "nms_thresh must be a number"),
        (lambda: RPNConfig(nms_thresh=float("nan")), "nms_thresh must be finite"),
        (lambda: RPNConfig(nms_thresh=10**400), "nms_thresh must be finite, got 1000"),
        (
            lambda: AnchorConfig(sizes=((10**400,),), aspect_ratios=((1.0,),)),
            r"sizes\[0\]\[0\] must be finite",
        ),
        (lambda: RPNConfig(batch_size_per_image=0), "batch_size_per_image must be >= 1"),
        (lambda: RPNConfig(pre_nms_top_n_test=True), "pre_nms_top_n_test must be an integer"),
        (lambda: RPNConfig(allowed_border=-2), "allowed_border must be >= 0, or -1"),
        (lambda: RPNConfig(box_coder_weights=(1.0, 1.0)), "must have 4 values, got 2"),
        (lambda: RPNConfig(head_conv_depth=0), r"head_conv_depth must be in \[1, 8\]"),
        (lambda: RoIHeadsConfig(box_head="fc"), "box_head must be one of 'two_mlp', 'vgg16'"),
        (lambda: RoIHeadsConfig(bg_iou_thresh_lo=0.6), "bg_iou_thresh_lo.*ordered"),
        (lambda: RoIHeadsConfig(pooler="pool"), "single feature map with pooler='pool'"),
        (lambda: RoIHeadsConfig(representation_size=10**9), "representation_size must be in"),
        (lambda: RoIHeadsConfig(predictor_init_std=0.0), "positive or None"),
        (lambda: RoIHeadsConfig(gt_jitter=-1), r"gt_jitter must be in \[0, 512\], the RoIs sampl"),
        (
            lambda: RoIHeadsConfig(batch_size_per_image=4, gt_jitter=5),
            r"gt_jitter must be in \[0, 4\]",
        ),
        (lambda: RoIHeadsConfig(soft_nms_sigma=-0.5), r"soft_nms_sigma must be 0 \(greedy NMS\)"),
        (lambda: RoIHeadsConfig(soft_nms_sigma=math.inf), "soft_nms_sigma must be finite"),
        (lambda: RoIHeadsConfig(soft_nms_min_score=1.0), "soft_nms_min_score must be in"),
        (lambda: RoIHeadsConfig(soft_nms_min_score=-0.1), "soft_nms_min_score must be in"),
        (lambda: TransformConfig(min_size=()), "min_size must be at least one size"),
        (lambda: TransformConfig(max_size=0), r"must be in \[1, 16384\]"),
        (lambda: TransformConfig(image_std=(0.2, 0.0, 0.2)), "image_std must be positive"),
        (lambda: AnchorConfig(sizes=((32,), (64,)), aspect_ratios=((1.0,),)), "one tuple per"),
        (lambda: AnchorConfig(sizes=((32, 48), (64,)), aspect_ratios=((1.0,),) * 2), "same num"),
        (lambda: AnchorConfig(sizes=((0,),), aspect_ratios=((1.0,),)), r"sizes\[0\] must be"),
        (lambda: BackboneConfig(name="resnet101"), "name must be one of vgg16, resnet50_fpn"),
        (lambda: BackboneConfig(name="vgg16", out_channels=256), "out_channels must be 512"),
        (lambda: BackboneConfig(trainable_layers=6), r"in \[0, 5\] for resnet50_fpn, or None"),
        (lambda: FasterRCNNConfig(num_classes=1), r"num_classes must be in \[2, 100000\]"),
        (
            lambda: FasterRCNNConfig(anchors=AnchorConfig(sizes=((32,),), aspect_ratios=((1.0,),))),
            r"anchors.sizes must be one tuple per feature map of resnet50_fpn \(5",
        ),
        (
            lambda: FasterRCNNConfig(roi_heads=RoIHeadsConfig(featmap_names=("p6", "p7"))),
            r"\['p6', 'p7'\] are not",
        ),
        (
            lambda: FasterRCNNConfig(
                roi_heads=RoIHeadsConfig(output_size=14, representation_size=16384)
            ),
            "at most 268435456 weights",
        ),
    ],
)
def test_bad_settings_are_refused_with_the_field_named(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize(
    ("make", "field", "requirement"),
    [
        (
            lambda: TransformConfig(max_size=20000),
            "TransformConfig.max_size",
            "must be in [1, 16384]",
        ),
        (
            lambda: TransformConfig(min_size=(300, 20000)),
            "TransformConfig.min_size",
            "must be in [1, 16384]",
        ),
        (
            lambda: TransformConfig(min_size=(300, 1.5)),
            "TransformConfig.min_size",
            "must be an integer, got 1.5",
        ),
        (
            lambda: RPNConfig(sampler="ohem"),
            "RPNConfig.sampler",
            "must be one of 'random', 'hard_negative'",
        ),
    ],
)
def test_a_refusal_names_the_one_field_refused_and_says_apart_what_it_must_be(
    make, field, requirement
):
    """A shorter side and the longer side's cap were refused together, as
    "min_size/max_size", so that nothing could tell which was wrong; a caller that took the
    value under another name (a command-line flag) reads the field and the requirement apart,
    an element's index (min_size[1]) left out of the field."""
    with pytest.raises(ConfigError) as refused:
        make()
    assert refused.value.field == field
    assert refused.value.requirement.startswith(requirement)
    message = str(refused.value)  # the library's own: the field and where in it
    assert message.startswith(field) and message.endswith(refused.value.requirement)


@pytest.mark.parametrize(
    ("make", "requirement", "python_only"),
    [
        (
            lambda: BackboneConfig(name="mobilenet_v2_fpn", returned_layers=(5, 4)),
            "must be increasing stage indices in [0, 5] for mobilenet_v2_fpn",
            ", got (5, 4)",
        ),
        (
            lambda: BackboneConfig(trainable_layers=6),
            "must be in [0, 5] for resnet50_fpn",
            ", or None for its default",
        ),
        (
            lambda: TrainConfig(grad_clip_norm=1e-320),
            "must be at least 1.4e-45 (> 0 in float32)",
            ", or None not to clip",
        ),
        (lambda: TrainConfig(checkpoint_every=0), "must be >= 1", " or None"),
    ],
)
def test_what_only_a_python_caller_wrote_is_in_the_message_not_the_requirement(
    make, requirement, python_only
):
    """A flag's refusal quotes the requirement after the value typed: it read
    "--returned-layers 5 4: must be ... for mobilenet_v2_fpn, got (5, 4)", a Python tuple,
    and "--trainable-layers 9: must be in [0, 5] for small, or None for its default", a
    value no flag gives. The config's own message keeps both."""
    with pytest.raises(ConfigError) as refused:
        make()
    assert refused.value.requirement == requirement
    assert str(refused.value) == f"{refused.value.field} {requirement}{python_only}"


def test_the_float32_bounds_are_torchs_and_a_sigma_float32_makes_0_is_refused():
    """A Soft-NMS sigma of 1e-320 is 0 in float32: the factor exp(-IoU^2 / sigma) of two
    boxes apart (IoU 0) was 0 / 0, a NaN score; the smallest float32 number is kept."""
    assert torch.finfo(torch.float32).max == FLOAT32_LARGEST
    assert torch.tensor(FLOAT32_SMALLEST).item() == FLOAT32_SMALLEST > 0
    assert torch.tensor(FLOAT32_SMALLEST / 2).item() == 0
    assert soft_nms_factor(torch.zeros(1), 1e-320, torch.float32).isnan().all()
    with pytest.raises(ConfigError, match=r"^RoIHeadsConfig.soft_nms_sigma must be 0 \(greedy"):
        RoIHeadsConfig(soft_nms_sigma=1e-320)
    kept = RoIHeadsConfig(soft_nms_sigma=FLOAT32_SMALLEST).soft_nms_sigma
    assert soft_nms_factor(torch.zeros(1), kept, torch.float32).tolist() == [1.0]
    assert RoIHeadsConfig(soft_nms_sigma=0.0).soft_nms_sigma == 0  # greedy NMS
    # Unusual, not meaningless: infinite in float32, it lowers no score.
    wide = RoIHeadsConfig(soft_nms_sigma=1e308).soft_nms_sigma
    assert soft_nms_factor(torch.ones(1), wide, torch.float32).tolist() == [1.0]


REPEATS = "must be distinct (a repeated value repeats its anchors), got"


@pytest.mark.parametrize(
    ("sizes", "ratios", "message"),
    [
        (((32, 32, 64),), ((1.0,),), f"sizes[0] {REPEATS} [32, 32, 64]: 32 repeats"),
        (
            ((16, 24, 40, 48), (32.0, 32, 8, 8)),
            ((2.0,),) * 2,
            f"sizes[1] {REPEATS} [32.0, 32, 8, 8]: 8, 32 repeats",
        ),
        (
            ((32,),),
            ((0.5, 1, 1.0, 2.0),),
            f"aspect_ratios[0] {REPEATS} [0.5, 1, 1.0, 2.0]: 1 repeats",
        ),
    ],
)
def test_a_repeated_anchor_size_or_ratio_of_a_level_is_refused(sizes, ratios, message):
    """A level with a size or ratio twice made the same anchors twice, silently."""
    with pytest.raises(ValueError) as error:
        AnchorConfig(sizes=sizes, aspect_ratios=ratios)
    assert str(error.value) == f"AnchorConfig.{message}"
    data = preset_config("paper_vgg16").to_dict()
    data["anchors"].update(sizes=sizes[-1:], aspect_ratios=ratios[-1:])
    with pytest.raises(
        ValueError, match=r"^AnchorConfig\.(sizes|aspect_ratios)\[0\] must be distinct"
    ):
        FasterRCNNConfig.from_dict(data)  # a model file's config
    # The same value on two levels is no repeat: each level has its own anchors.
    assert AnchorConfig(sizes=((32,), (32,)), aspect_ratios=((1.0,), (1.0,))).sizes[1] == (32,)


def test_numpy_numbers_are_taken_as_pythons_own():
    # Values computed with NumPy (an anchor fit, a grid search) are NumPy scalars.
    cfg = preset_config("small").replace(
        rpn={"nms_thresh": np.float32(0.5), "batch_size_per_image": np.int64(128)},
        transform={"min_size": (np.int32(96), 128), "max_size": np.uint16(160)},
    )
    assert (cfg.rpn.nms_thresh, cfg.rpn.batch_size_per_image) == (0.5, 128)
    assert (cfg.transform.min_size, cfg.transform.max_size) == ((96, 128), 160)
    kinds = {type(cfg.rpn.nms_thresh), type(cfg.transform.min_size[0])}
    assert kinds == {float, int}
    assert FasterRCNNConfig.from_json(cfg.to_json()) == cfg
    with pytest.raises(ValueError, match="batch_size_per_image must be an integer"):
        RPNConfig(batch_size_per_image=np.float64(128.0))
    with pytest.raises(ValueError, match="nms_thresh must be a number"):
        RPNConfig(nms_thresh=np.bool_(True))


def test_a_model_file_asking_for_a_huge_layer_is_refused_before_any_allocation():
    data = preset_config("small").to_dict()
    data["roi_heads"]["representation_size"] = 10**9
    with pytest.raises(ValueError, match=r"RoIHeadsConfig\.representation_size"):
        FasterRCNNConfig.from_dict(data)


@pytest.mark.parametrize(
    ("section", "name", "value", "message"),
    [
        ("roi_heads", "canonical_scale", 10**20, r"canonical_scale must be in \[1, 16384\]"),
        ("roi_heads", "canonical_level", 10**20, r"canonical_level must be in \[1, 14\]"),
        ("anchors", "sizes", [[1e39]] * 4, r"sizes\[0\] must be at most 16384 .*, got 1e\+39"),
        ("anchors", "aspect_ratios", [[1e-50]] * 4, r"aspect_ratios\[0\] must be in \[1/16384"),
    ],
)
def test_a_model_config_whose_numbers_overflow_at_forward_is_refused(section, name, value, message):
    """A canonical scale or level of 10**20 in a model file's config passed, then raised
    OverflowError at the first forward pass; an anchor size of 1e39 or ratio of 1e-50
    made infinite anchors."""
    data = preset_config("small").to_dict()
    data[section][name] = value
    with pytest.raises(ValueError, match=rf"(RoIHeads|Anchor)Config\.{message}"):
        FasterRCNNConfig.from_dict(data)


def test_the_largest_anchors_and_level_mapping_allowed_give_finite_detections():
    levels = len(preset_config("small").anchors.sizes)
    config = preset_config("small", 3).replace(
        anchors={"sizes": ((16384,),) * levels, "aspect_ratios": ((1 / 16384, 16384.0),) * levels},
        roi_heads={"canonical_scale": 16384, "canonical_level": 14, "score_thresh": 0.0},
    )
    model = FasterRCNN.from_config(config).eval()
    with torch.no_grad():
        (detections,), (proposals,) = model.detect_with_proposals([torch.rand(3, 64, 64)])
    assert torch.isfinite(proposals["boxes"]).all() and torch.isfinite(detections["boxes"]).all()


def test_lists_from_json_become_tuples_and_ints_are_numbers():
    cfg = TransformConfig(min_size=[600, 800], image_mean=[0, 0, 0])
    assert cfg.min_size == (600, 800) and isinstance(cfg.image_mean, tuple)
    assert RPNConfig(nms_thresh=1).nms_thresh == 1


def test_one_min_size_given_alone_is_a_tuple_of_one_however_the_config_is_made():
    """torchvision's transform takes ``min_size=800``; the config refused it ("must be a
    tuple"), though the presets' keyword took it."""
    assert TransformConfig(min_size=800).min_size == (800,)
    assert TransformConfig(min_size=np.int64(600)).min_size == (600,)
    assert type(TransformConfig(min_size=np.int64(600)).min_size[0]) is int
    config = FasterRCNNConfig().replace(transform={"min_size": 600})
    assert config.transform == TransformConfig(min_size=(600,))
    assert dataclasses.replace(config.transform, min_size=512).min_size == (512,)
    data = {"transform": {"min_size": 320, "max_size": 640}}
    assert FasterRCNNConfig.from_dict(data).transform.min_size == (320,)
    for value in (800.0, True, "800", None):
        with pytest.raises(
            ValueError,
            match=rf"^TransformConfig\.min_size must be an integer or a tuple of integers, "
            rf"got {value!r}$",
        ):
            TransformConfig(min_size=value)


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_names_a_known_backbone_with_matching_levels(name):
    cfg = preset_config(name)
    assert len(cfg.anchors.sizes) == len(BACKBONES[cfg.backbone.name].feature_maps)


def test_with_returned_layers_gives_each_map_its_anchors_and_pools_from_all_but_pool():
    mobile = preset_config("mobilenet_v2_fpn", 4)
    finer = mobile.with_returned_layers((3, 4, 5))
    assert finer.backbone.feature_maps() == ("0", "1", "2", "pool")
    # The MobileNet presets put the same 15 anchors on every level: the new one too.
    assert finer.anchors.sizes == ((32, 64, 128, 256, 512),) * 4
    assert finer.anchors.aspect_ratios == ((0.5, 1.0, 2.0),) * 4
    assert finer.roi_heads.featmap_names == ("0", "1", "2")
    assert FasterRCNNConfig.from_json(finer.to_json()) == finer
    # ResNet's anchors belong to the strides: without layer1 its 32-px anchors go.
    resnet = preset_config("resnet50_fpn", 4).with_returned_layers((2, 3, 4))
    assert resnet.anchors.sizes == ((64,), (128,), (256,), (512,))
    assert resnet.roi_heads.featmap_names == ("0", "1", "2")
    # The default stages change nothing but the field.
    same = mobile.with_returned_layers((4, 5))
    assert same.replace(backbone={"returned_layers": None}) == mobile


def test_with_returned_layers_refuses_a_new_stage_without_anchors_to_give_it():
    resnet = preset_config("resnet50_fpn", 4)
    with pytest.raises(ValueError, match=r"stages \[1\] have no anchors.*0, 1, pool"):
        resnet.with_returned_layers((2, 3, 4)).with_returned_layers((1, 2))
    with pytest.raises(ValueError, match=r"anchors\.sizes must be one tuple per feature map"):
        preset_config("mobilenet_v2_fpn").replace(backbone={"returned_layers": (3, 4, 5)})


def test_a_backbone_default_and_its_value_are_no_change() -> None:
    """A run started with the backbone's stages left to its default (None) and resumed with
    them spelled out, as the recipe and --resume give them, changed nothing; other stages,
    or other trainable layers, did (said by
    the values the defaults stand for)."""
    left = preset_config("mobilenet_v2_fpn", 3).replace(backbone={"trainable_layers": None})
    assert left.backbone.returned_layers is None and left.backbone.trainable_layers is None
    spelled = left.replace(backbone={"returned_layers": (4, 5), "trainable_layers": 3})
    assert spelled.changes_since(left) == [] and left.changes_since(spelled) == []
    finer = left.with_returned_layers((3, 4, 5))
    assert "backbone.returned_layers (4, 5) -> (3, 4, 5)" in finer.changes_since(left)
    assert left.replace(backbone={"trainable_layers": 5}).changes_since(left) == [
        "backbone.trainable_layers 3 -> 5"
    ]
