"""Backbones: output levels, sizes and channels, torchvision's state-dict layout, freezing."""

from __future__ import annotations

import dataclasses
import math
from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from faster_rcnn import FasterRCNN
from faster_rcnn.backbones import (
    FeaturePyramidNetwork,
    FrozenBatchNorm2d,
    LastLevelMaxPool,
    MobileNetV2FPNBackbone,
    MobileNetV3FPNBackbone,
    ResNetFPNBackbone,
    SmallFPNBackbone,
    VGG16Backbone,
    build_backbone,
)
from faster_rcnn.config import BACKBONES, BackboneConfig
from faster_rcnn.models import preset_config


def ceil_sizes(height: int, width: int, strides: list[int]) -> list[tuple[int, int]]:
    """Sizes after stride-2 convs with "same" padding, which round up at every halving."""
    return [(math.ceil(height / s), math.ceil(width / s)) for s in strides]


def floor_sizes(height: int, width: int, strides: list[int]) -> list[tuple[int, int]]:
    """Sizes after 2x2 max pools, which round down at every halving."""
    return [(height // s, width // s) for s in strides]


def output_summary(backbone: nn.Module, height: int, width: int) -> list[tuple[str, int, tuple]]:
    with torch.no_grad():
        features = backbone.eval()(torch.rand(1, 3, height, width))
    return [(name, f.shape[1], tuple(f.shape[-2:])) for name, f in features.items()]


# ---------------------------------------------------------------------------------------
# Output levels
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("height", "width"), [(225, 333)])
def test_resnet50_fpn_outputs(height: int, width: int) -> None:
    backbone = build_backbone(BackboneConfig(name="resnet50_fpn"))
    assert backbone.out_channels == 256
    sizes = ceil_sizes(height, width, [4, 8, 16, 32, 64])
    names = ["0", "1", "2", "3", "pool"]
    expected = [(n, 256, s) for n, s in zip(names, sizes, strict=True)]
    assert output_summary(backbone, height, width) == expected


@pytest.mark.parametrize(("height", "width"), [(224, 320), (225, 333)])
@pytest.mark.parametrize("name", ["mobilenet_v2_fpn", "mobilenet_v3_large_fpn"])
def test_mobilenet_fpn_outputs(name: str, height: int, width: int) -> None:
    # torchvision's extractor reads the last two stages' first blocks (14 and 18 of
    # MobileNetV2, 13 and 16 of MobileNetV3-Large), which are both at stride 32.
    backbone = build_backbone(BackboneConfig(name=name))
    assert backbone.out_channels == 256
    s32, s64 = ceil_sizes(height, width, [32, 64])
    expected = [("0", 256, s32), ("1", 256, s32), ("pool", 256, s64)]
    assert output_summary(backbone, height, width) == expected


@pytest.mark.parametrize(("height", "width"), [(96, 160), (113, 167)])
def test_vgg16_outputs(height: int, width: int) -> None:
    backbone = build_backbone(BackboneConfig(name="vgg16", out_channels=512))
    assert backbone.out_channels == 512
    assert output_summary(backbone, height, width) == [
        ("0", 512, floor_sizes(height, width, [16])[0])
    ]


@pytest.mark.parametrize(("height", "width"), [(224, 320), (225, 333)])
def test_small_outputs(height: int, width: int) -> None:
    cfg = BackboneConfig(name="small", out_channels=64, frozen_batch_norm=False)
    backbone = build_backbone(cfg)
    assert backbone.out_channels == 64
    sizes = ceil_sizes(height, width, [8, 16, 32, 64])
    expected = [(n, 64, s) for n, s in zip(["0", "1", "2", "pool"], sizes, strict=True)]
    assert output_summary(backbone, height, width) == expected


def test_small_keeps_dtype_and_trains_its_batch_norm() -> None:
    backbone = SmallFPNBackbone(out_channels=32)
    norms = [m for m in backbone.modules() if isinstance(m, (nn.BatchNorm2d, FrozenBatchNorm2d))]
    assert norms and all(type(m) is nn.BatchNorm2d for m in norms)
    features = backbone(torch.rand(2, 3, 64, 64))
    sum(f.sum() for f in features.values()).backward()
    assert all(p.grad is not None for p in backbone.parameters())
    with torch.no_grad():
        features = backbone.double().eval()(torch.rand(1, 3, 64, 64, dtype=torch.float64))
    assert all(f.dtype == torch.float64 and f.shape[:2] == (1, 32) for f in features.values())


def test_small_exports_with_dynamic_image_sizes() -> None:
    backbone = SmallFPNBackbone(out_channels=16).eval()
    height = torch.export.Dim("height", min=128, max=2048)
    width = torch.export.Dim("width", min=128, max=2048)
    program = torch.export.export(
        backbone, (torch.rand(1, 3, 160, 192),), dynamic_shapes=({2: height, 3: width},)
    )
    image = torch.rand(1, 3, 213, 167)
    exported, eager = program.module()(image), backbone(image)
    assert list(exported) == list(eager)
    for name, feature in eager.items():
        torch.testing.assert_close(exported[name], feature)


def test_build_backbone_rejects_unknown_names_and_out_of_range_layers() -> None:
    with pytest.raises(ValueError, match="name must be one of vgg16, resnet50_fpn"):
        build_backbone(BackboneConfig(name="resnet18"))
    with pytest.raises(ValueError, match=r"in \[0, 5\] for resnet50_fpn, or None for its default"):
        build_backbone(BackboneConfig(name="resnet50_fpn", trainable_layers=6))
    with pytest.raises(ValueError, match=r"in \[0, 6\] for mobilenet_v2_fpn, or None"):
        build_backbone(BackboneConfig(name="mobilenet_v2_fpn", trainable_layers=7))
    with pytest.raises(ValueError, match="pass it as FasterRCNN"):
        build_backbone(BackboneConfig(name="custom"))


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_backbone_specs_name_the_feature_maps_each_backbone_returns(name: str) -> None:
    out_channels = BACKBONES[name].fixed_channels or 16
    backbone = build_backbone(BackboneConfig(name=name, out_channels=out_channels))
    with torch.no_grad():
        features = backbone(torch.rand(1, 3, 128, 128))
    assert tuple(features) == BACKBONES[name].feature_maps
    assert all(f.shape[1] == out_channels == backbone.out_channels for f in features.values())


def test_a_backbone_that_contradicts_the_config_is_refused() -> None:
    small = preset_config("small")
    with pytest.raises(ValueError, match=r"VGG16Backbone but config\.backbone\.name is 'small'"):
        FasterRCNN(VGG16Backbone(), small.replace(backbone={"out_channels": 512}))
    with pytest.raises(ValueError, match=r"out_channels=64 but config\.backbone\.out_channels"):
        FasterRCNN(build_backbone(small.backbone), small.replace(backbone={"out_channels": 32}))
    thawed = build_backbone(dataclasses.replace(small.backbone, frozen_batch_norm=True))
    with pytest.raises(ValueError, match=r"differs from the one config\.backbone describes"):
        FasterRCNN(thawed, small)
    FasterRCNN(build_backbone(small.backbone), small)  # the matching one builds


class TwoMapBackbone(nn.Module):
    """A user's backbone returning two maps, ``"0"`` (stride 8) and ``"1"`` (stride 16)."""

    out_channels = 8

    def __init__(self) -> None:
        super().__init__()
        self.fine = nn.Conv2d(3, 8, 3, stride=8, padding=1)
        self.coarse = nn.Conv2d(8, 8, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        fine = self.fine(x)
        return OrderedDict([("0", fine), ("1", self.coarse(fine))])


def test_a_custom_backbone_with_other_maps_than_the_config_is_refused_when_built() -> None:
    custom = preset_config("small").replace(
        backbone={"name": "custom", "out_channels": 8}, roi_heads={"featmap_names": ("0", "1")}
    )
    # The small preset's four anchor levels on a two-map backbone: refused when built,
    # not at the first forward pass.
    with pytest.raises(ValueError, match=r"anchors\.sizes must be one tuple per feature map "):
        FasterRCNN(TwoMapBackbone(), custom)
    anchors = custom.anchors
    two_levels = custom.replace(
        anchors={"sizes": anchors.sizes[:2], "aspect_ratios": anchors.aspect_ratios[:2]}
    )
    with pytest.raises(ValueError, match=r"featmap_names must be among .* \['2', '3'\] are not"):
        FasterRCNN(TwoMapBackbone(), two_levels.replace(roi_heads={"featmap_names": ("2", "3")}))
    # Some of them returned: the others are passed over, as torchvision's pooler does.
    passing_over = two_levels.replace(roi_heads={"featmap_names": ("0", "2")})
    assert FasterRCNN(TwoMapBackbone(), passing_over).config == passing_over
    narrower = TwoMapBackbone()
    narrower.out_channels = 4  # its maps have 8
    with pytest.raises(ValueError, match=r"maps have \{'0': 8, '1': 8\} channels .* are 4"):
        FasterRCNN(narrower, two_levels.replace(backbone={"out_channels": 4}))
    backbone = TwoMapBackbone()
    weights = {k: v.clone() for k, v in backbone.state_dict().items()}
    model = FasterRCNN(backbone, two_levels).eval()  # the matching one builds...
    assert all(torch.equal(v, weights[k]) for k, v in backbone.state_dict().items())
    assert len(model([torch.rand(3, 64, 64)])) == 1  # ... and detects


def test_build_backbone_follows_frozen_batch_norm() -> None:
    frozen = build_backbone(BackboneConfig(name="resnet50_fpn", frozen_batch_norm=True))
    trained = build_backbone(BackboneConfig(name="resnet50_fpn", frozen_batch_norm=False))
    assert isinstance(frozen.body.bn1, FrozenBatchNorm2d)
    assert type(trained.body.bn1) is nn.BatchNorm2d
    assert isinstance(build_backbone(BackboneConfig(name="mobilenet_v2_fpn")).body["0"][1],
                      FrozenBatchNorm2d)  # fmt: skip


# ---------------------------------------------------------------------------------------
# torchvision's state-dict layout
# ---------------------------------------------------------------------------------------


def batch_norm_keys(prefix: str) -> list[str]:
    return [f"{prefix}.{name}" for name in ("weight", "bias", "running_mean", "running_var")]


def torchvision_resnet50_fpn_keys() -> list[str]:
    """``fasterrcnn_resnet50_fpn().backbone.state_dict()`` keys, written from its structure."""
    keys = ["body.conv1.weight", *batch_norm_keys("body.bn1")]
    for layer, num_blocks in enumerate((3, 4, 6, 3), start=1):
        for block in range(num_blocks):
            prefix = f"body.layer{layer}.{block}"
            for i in (1, 2, 3):
                keys += [f"{prefix}.conv{i}.weight", *batch_norm_keys(f"{prefix}.bn{i}")]
            if block == 0:
                keys += [
                    f"{prefix}.downsample.0.weight",
                    *batch_norm_keys(f"{prefix}.downsample.1"),
                ]
    for blocks in ("inner_blocks", "layer_blocks"):
        for level in range(4):
            keys += [f"fpn.{blocks}.{level}.0.weight", f"fpn.{blocks}.{level}.0.bias"]
    return keys


def test_resnet50_fpn_has_torchvision_keys_and_shapes() -> None:
    state = ResNetFPNBackbone().state_dict()
    assert list(state) == torchvision_resnet50_fpn_keys()
    assert len(state) == 53 + 53 * 4 + 16  # 53 convs, 53 frozen batch norms, 8 FPN convs
    shapes = {
        "body.conv1.weight": (64, 3, 7, 7),
        "body.layer1.0.conv1.weight": (64, 64, 1, 1),
        "body.layer1.0.conv3.weight": (256, 64, 1, 1),
        "body.layer1.0.downsample.0.weight": (256, 64, 1, 1),
        "body.layer2.0.conv2.weight": (128, 128, 3, 3),
        "body.layer2.1.conv1.weight": (128, 512, 1, 1),
        "body.layer3.5.bn3.running_var": (1024,),
        "body.layer4.0.downsample.0.weight": (2048, 1024, 1, 1),
        "body.layer4.2.conv3.weight": (2048, 512, 1, 1),
        "fpn.inner_blocks.0.0.weight": (256, 256, 1, 1),
        "fpn.inner_blocks.3.0.weight": (256, 2048, 1, 1),
        "fpn.layer_blocks.2.0.weight": (256, 256, 3, 3),
        "fpn.layer_blocks.3.0.bias": (256,),
    }
    assert {k: tuple(state[k].shape) for k in shapes} == shapes


def test_resnet50_fpn_parameter_counts_match_torchvision() -> None:
    # torchvision's resnet50 has 25,557,032 parameters, 2,049,000 of them in fc.
    trained_bn = ResNetFPNBackbone(frozen_batch_norm=False)
    assert sum(p.numel() for p in trained_bn.body.parameters()) == 23_508_032
    # FPN: 1x1 laterals (256+512+1024+2048)*256 + 4*256, 3x3 outputs 4*(256*256*9 + 256).
    assert sum(p.numel() for p in trained_bn.fpn.parameters()) == 3_344_384
    # Frozen batch norm keeps the affine terms as buffers instead of parameters.
    frozen = ResNetFPNBackbone()
    affine = sum(
        b.numel() for n, b in frozen.body.named_buffers() if n.endswith(("weight", "bias"))
    )
    assert sum(p.numel() for p in frozen.body.parameters()) + affine == 23_508_032


def test_resnet50_fpn_bottleneck_strides_on_the_3x3_conv() -> None:
    block = ResNetFPNBackbone().body.layer2[0]
    assert (block.conv1.stride, block.conv2.stride, block.conv3.stride) == ((1, 1), (2, 2), (1, 1))
    assert block.downsample[0].stride == (2, 2)


def test_fpn_loads_pre_conv2dnormactivation_checkpoints_strictly() -> None:
    # torchvision's published fasterrcnn_resnet50_fpn weights predate the ".0" in FPN keys.
    source = SmallFPNBackbone(out_channels=16)
    target = SmallFPNBackbone(out_channels=16)
    old_style = {
        key.replace(".0.weight", ".weight").replace(".0.bias", ".bias")
        if key.startswith("fpn.")
        else key: value
        for key, value in source.state_dict().items()
    }
    assert "fpn.inner_blocks.1.weight" in old_style
    target.load_state_dict(old_style, strict=True)
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key


def test_mobilenet_v2_fpn_has_torchvision_keys_and_shapes() -> None:
    backbone = MobileNetV2FPNBackbone(frozen_batch_norm=False)
    state = backbone.state_dict()
    shapes = {
        "body.0.0.weight": (32, 3, 3, 3),
        "body.0.1.running_mean": (32,),
        "body.1.conv.0.0.weight": (32, 1, 3, 3),  # t = 1: no expansion conv
        "body.1.conv.1.weight": (16, 32, 1, 1),
        "body.1.conv.2.weight": (16,),
        "body.2.conv.0.0.weight": (96, 16, 1, 1),
        "body.2.conv.1.0.weight": (96, 1, 3, 3),
        "body.2.conv.2.weight": (24, 96, 1, 1),
        "body.2.conv.3.running_var": (24,),
        "body.14.conv.2.weight": (160, 576, 1, 1),
        "body.17.conv.2.weight": (320, 960, 1, 1),
        "body.18.0.weight": (1280, 320, 1, 1),
        "body.18.1.bias": (1280,),
        "fpn.inner_blocks.0.0.weight": (256, 160, 1, 1),
        "fpn.inner_blocks.1.0.weight": (256, 1280, 1, 1),
        "fpn.layer_blocks.1.0.weight": (256, 256, 3, 3),
    }
    assert {k: tuple(state[k].shape) for k in shapes} == shapes
    assert backbone.body.return_layers == {"14": "0", "18": "1"}
    assert list(backbone.body) == [str(i) for i in range(19)]
    # torchvision's mobilenet_v2 has 3,504,872 parameters, 1,281,000 of them in the classifier.
    assert sum(p.numel() for p in backbone.body.parameters()) == 2_223_872


def test_mobilenet_v3_large_fpn_has_torchvision_keys_and_shapes() -> None:
    backbone = MobileNetV3FPNBackbone(frozen_batch_norm=False)
    state = backbone.state_dict()
    shapes = {
        "body.0.0.weight": (16, 3, 3, 3),
        "body.1.block.0.0.weight": (16, 1, 3, 3),  # 16 -> 16: no expansion conv
        "body.1.block.1.0.weight": (16, 16, 1, 1),
        "body.2.block.0.0.weight": (64, 16, 1, 1),
        "body.4.block.1.0.weight": (72, 1, 5, 5),  # 5x5 depthwise
        "body.4.block.2.fc1.weight": (24, 72, 1, 1),  # squeeze: 72 / 4 = 18, rounded to 24
        "body.4.block.2.fc2.bias": (72,),
        "body.4.block.3.0.weight": (40, 72, 1, 1),
        "body.13.block.2.fc1.weight": (168, 672, 1, 1),
        "body.15.block.3.1.running_var": (160,),
        "body.16.0.weight": (960, 160, 1, 1),
        "fpn.inner_blocks.0.0.weight": (256, 160, 1, 1),
        "fpn.inner_blocks.1.0.weight": (256, 960, 1, 1),
    }
    assert {k: tuple(state[k].shape) for k in shapes} == shapes
    assert backbone.body.return_layers == {"13": "0", "16": "1"}
    assert list(backbone.body) == [str(i) for i in range(17)]
    # torchvision's mobilenet_v3_large has 5,483,032 parameters; its classifier,
    # Linear(960, 1280) and Linear(1280, 1000), has 2,511,080.
    assert sum(p.numel() for p in backbone.body.parameters()) == 2_971_952
    # Squeeze-and-excitation convolutions start with zero biases, as in torchvision.
    assert torch.count_nonzero(state["body.4.block.2.fc1.bias"]) == 0


def test_vgg16_has_torchvision_feature_indices() -> None:
    backbone = VGG16Backbone()
    conv_indices = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
    expected = [f"body.{i}.{kind}" for i in conv_indices for kind in ("weight", "bias")]
    assert list(backbone.state_dict()) == expected
    assert isinstance(backbone.body[-1], nn.ReLU)  # conv5_3's ReLU; pool5 is dropped
    assert tuple(backbone.body[28].weight.shape) == (512, 512, 3, 3)
    # torchvision's vgg16 has 138,357,544 parameters, 123,642,856 of them in the classifier.
    assert sum(p.numel() for p in backbone.parameters()) == 14_714_688


# ---------------------------------------------------------------------------------------
# Freezing
# ---------------------------------------------------------------------------------------


def trainable_prefixes(backbone: nn.Module, depth: int) -> set[str]:
    return {
        ".".join(name.split(".")[:depth])
        for name, p in backbone.named_parameters()
        if p.requires_grad
    }


@pytest.mark.parametrize(
    ("trainable_layers", "trained"),
    [
        (0, set()),
        (1, {"layer4"}),
        (3, {"layer2", "layer3", "layer4"}),
        (4, {"layer1", "layer2", "layer3", "layer4"}),
        (5, {"conv1", "bn1", "layer1", "layer2", "layer3", "layer4"}),
    ],
)
def test_resnet50_fpn_trainable_layers(trainable_layers: int, trained: set[str]) -> None:
    backbone = ResNetFPNBackbone(trainable_layers=trainable_layers, frozen_batch_norm=False)
    body_trained = trainable_prefixes(backbone.body, 1)
    assert body_trained == trained
    assert all(p.requires_grad for p in backbone.fpn.parameters())


def test_mobilenet_v2_fpn_freezes_the_blocks_before_the_trained_stages() -> None:
    # Stages start at blocks 0, 2, 4, 7, 14, 18; three trained stages = blocks 7..18.
    backbone = MobileNetV2FPNBackbone(trainable_layers=3, frozen_batch_norm=False)
    assert trainable_prefixes(backbone.body, 1) == {str(i) for i in range(7, 19)}
    last_only = MobileNetV2FPNBackbone(trainable_layers=1, frozen_batch_norm=False)
    assert trainable_prefixes(last_only.body, 1) == {"18"}
    everything = MobileNetV2FPNBackbone(trainable_layers=6, frozen_batch_norm=False)
    assert trainable_prefixes(everything.body, 1) == {str(i) for i in range(19)}


def test_mobilenet_v3_large_fpn_freezes_the_blocks_before_the_trained_stages() -> None:
    # Stages start at blocks 0, 2, 4, 7, 13, 16; three trained stages = blocks 7..16.
    backbone = MobileNetV3FPNBackbone(trainable_layers=3, frozen_batch_norm=False)
    assert trainable_prefixes(backbone.body, 1) == {str(i) for i in range(7, 17)}
    two = MobileNetV3FPNBackbone(trainable_layers=2, frozen_batch_norm=False)
    assert trainable_prefixes(two.body, 1) == {str(i) for i in range(13, 17)}


def test_vgg16_default_freezes_conv1_and_conv2_like_py_faster_rcnn() -> None:
    backbone = VGG16Backbone()
    assert trainable_prefixes(backbone.body, 1) == {"10", "12", "14", "17", "19", "21", "24",
                                                    "26", "28"}  # fmt: skip
    assert trainable_prefixes(VGG16Backbone(trainable_layers=1).body, 1) == {"24", "26", "28"}
    assert trainable_prefixes(VGG16Backbone(trainable_layers=0).body, 1) == set()


def test_small_trains_everything_by_default() -> None:
    backbone = build_backbone(BackboneConfig(name="small", frozen_batch_norm=False))
    assert all(p.requires_grad for p in backbone.parameters())
    two = SmallFPNBackbone(trainable_layers=2)
    assert trainable_prefixes(two.body, 1) == {"stage3", "stage4"}


# ---------------------------------------------------------------------------------------
# Frozen batch norm
# ---------------------------------------------------------------------------------------


def test_frozen_batch_norm_equals_batch_norm_in_eval_mode() -> None:
    generator = torch.Generator().manual_seed(0)
    reference = nn.BatchNorm2d(5).double().eval()
    with torch.no_grad():
        for tensor in (reference.weight, reference.bias, reference.running_mean):
            tensor.copy_(torch.randn(5, generator=generator, dtype=torch.float64))
        reference.running_var.copy_(torch.rand(5, generator=generator, dtype=torch.float64) + 0.1)
    frozen = FrozenBatchNorm2d(5).double()
    frozen.load_state_dict(reference.state_dict(), strict=True)  # drops num_batches_tracked
    assert set(frozen.state_dict()) == {"weight", "bias", "running_mean", "running_var"}
    x = torch.randn(2, 5, 3, 4, generator=generator, dtype=torch.float64)
    torch.testing.assert_close(frozen(x), reference(x), rtol=1e-12, atol=1e-12)
    # Training mode changes nothing: the statistics are constants.
    torch.testing.assert_close(frozen.train()(x), reference(x), rtol=1e-12, atol=1e-12)
    assert list(frozen.parameters()) == []


def test_frozen_batch_norm_gradient_with_respect_to_its_input() -> None:
    frozen = FrozenBatchNorm2d(3).double()
    frozen.running_var.fill_(0.5)
    frozen.weight.copy_(torch.tensor([1.0, -2.0, 0.5]))
    x = torch.randn(1, 3, 2, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(frozen, (x,))


# ---------------------------------------------------------------------------------------
# Feature pyramid
# ---------------------------------------------------------------------------------------


def nearest_resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """F.interpolate(mode="nearest"): output index i reads input index floor(i * in / out)."""
    rows = [math.floor(i * x.shape[-2] / size[0]) for i in range(size[0])]
    cols = [math.floor(j * x.shape[-1] / size[1]) for j in range(size[1])]
    return x[..., rows, :][..., cols]


def naive_fpn(fpn: FeaturePyramidNetwork, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
    """P_i = conv3x3(conv1x1(C_i) + resize(top-down_{i+1})), written level by level."""

    def conv(block: nn.Module, x: torch.Tensor, padding: int) -> torch.Tensor:
        return F.conv2d(x, block[0].weight, block[0].bias, padding=padding)

    top_down = conv(fpn.inner_blocks[-1], inputs[-1], 0)
    outputs = [conv(fpn.layer_blocks[-1], top_down, 1)]
    for level in range(len(inputs) - 2, -1, -1):
        lateral = conv(fpn.inner_blocks[level], inputs[level], 0)
        top_down = lateral + nearest_resize(top_down, tuple(lateral.shape[-2:]))
        outputs.insert(0, conv(fpn.layer_blocks[level], top_down, 1))
    last = outputs[-1]
    return [*outputs, last[..., ::2, ::2]]


def test_fpn_matches_a_naive_top_down_pathway_on_odd_sizes() -> None:
    generator = torch.Generator().manual_seed(1)
    fpn = FeaturePyramidNetwork([3, 5, 7], 4, LastLevelMaxPool()).double()
    with torch.no_grad():
        for p in fpn.parameters():
            p.copy_(torch.randn(p.shape, generator=generator, dtype=torch.float64))
    # Sizes of stride 8/16/32 maps of a 225x333 image, and a non-halving pair.
    sizes = [(29, 42), (15, 21), (7, 9)]
    inputs = [
        torch.randn(2, c, h, w, generator=generator, dtype=torch.float64)
        for c, (h, w) in zip([3, 5, 7], sizes, strict=True)
    ]
    out = fpn(OrderedDict(zip(["a", "b", "c"], inputs, strict=True)))
    assert list(out) == ["a", "b", "c", "pool"]
    expected = naive_fpn(fpn, inputs)
    for got, want in zip(out.values(), expected, strict=True):
        torch.testing.assert_close(got, want)
    assert tuple(out["pool"].shape[-2:]) == (4, 5)


def test_fpn_initialisation_and_level_check() -> None:
    fpn = FeaturePyramidNetwork([8, 16], 32)
    assert all(torch.count_nonzero(p) == 0 for n, p in fpn.named_parameters() if "bias" in n)
    # kaiming_uniform_(a=1): bound = sqrt(6 / ((1 + a^2) fan_in)) = sqrt(3 / fan_in).
    weight = fpn.layer_blocks[0][0].weight
    assert weight.abs().max() <= math.sqrt(3 / (32 * 9))
    assert weight.abs().max() > 0.9 * math.sqrt(3 / (32 * 9))
    with pytest.raises(ValueError, match="built for 2 levels, got 1"):
        fpn(OrderedDict(x=torch.zeros(1, 8, 4, 4)))


# torchvision's `returned_layers`: the stages the FPN reads, with the strides they give.
@pytest.mark.parametrize(
    ("name", "returned", "strides"),
    [
        ("mobilenet_v2_fpn", (3, 4, 5), (16, 32, 32, 64)),
        ("mobilenet_v2_fpn", (2, 5), (8, 32, 64)),
        ("mobilenet_v3_large_fpn", (3, 4, 5), (16, 32, 32, 64)),
        ("resnet50_fpn", (2, 3, 4), (8, 16, 32, 64)),
    ],
)
def test_returned_layers_choose_the_maps_the_fpn_reads(
    name: str, returned: tuple[int, ...], strides: tuple[int, ...]
) -> None:
    config = BackboneConfig(name=name, out_channels=16, returned_layers=returned)
    backbone = build_backbone(config)
    with torch.no_grad():
        features = backbone(torch.rand(1, 3, 256, 256))
    assert tuple(features) == config.feature_maps()
    assert tuple(256 // f.shape[-1] for f in features.values()) == strides
    # Frozen stages stay frozen whatever the FPN reads: 3 trainable stages of 6 (MobileNet)
    # or of 5 (ResNet) leave the stem frozen.
    stem = backbone.body["0"] if "mobilenet" in name else backbone.body.conv1
    assert not any(p.requires_grad for p in stem.parameters())


def test_returned_layers_are_refused_where_the_maps_are_fixed_or_out_of_range() -> None:
    with pytest.raises(ValueError, match="left out for small, whose feature maps are fixed"):
        BackboneConfig(name="small", returned_layers=(1, 2))
    with pytest.raises(ValueError, match=r"increasing stage indices in \[0, 5\]"):
        BackboneConfig(name="mobilenet_v2_fpn", returned_layers=(5, 3))
    with pytest.raises(ValueError, match=r"increasing stage indices in \[1, 4\]"):
        BackboneConfig(name="resnet50_fpn", returned_layers=(0, 1))
    with pytest.raises(ValueError, match=r"increasing stage indices"):
        BackboneConfig(name="mobilenet_v2_fpn", returned_layers=())
