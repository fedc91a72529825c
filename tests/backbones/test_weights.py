"""Loading torchvision ImageNet checkpoints into backbones (and VGG-16's fc6/fc7)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from faster_rcnn.backbones import (
    MobileNetV2FPNBackbone,
    MobileNetV3FPNBackbone,
    ResNetFPNBackbone,
    SmallFPNBackbone,
    VGG16Backbone,
    load_backbone_weights,
)
from faster_rcnn.backbones.weights import imagenet_architecture
from faster_rcnn.state_dict_io import read_state_dict

REPO_ROOT = Path(__file__).resolve().parents[2]
MOBILENET_V2_FILE = REPO_ROOT.parent / "shared" / "weights" / "mobilenet_v2-b0353104.pth"
needs_mobilenet_file = pytest.mark.skipif(
    not MOBILENET_V2_FILE.exists(), reason=f"{MOBILENET_V2_FILE} is not present"
)


class FakeBoxHead(nn.Module):
    def __init__(self, in_features: int, representation_size: int) -> None:
        super().__init__()
        self.fc6 = nn.Linear(in_features, representation_size)
        self.fc7 = nn.Linear(representation_size, representation_size)


class FakeRoIHeads(nn.Module):
    def __init__(self, box_head: nn.Module) -> None:
        super().__init__()
        self.box_head = box_head


class FakeDetector(nn.Module):
    """A backbone and, optionally, a box head, under the detector's attribute names."""

    def __init__(self, backbone: nn.Module, box_head: nn.Module | None = None) -> None:
        super().__init__()
        self.backbone = backbone
        if box_head is not None:
            self.roi_heads = FakeRoIHeads(box_head)


def random_like(state: dict[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {
        key: torch.randint(0, 1000, value.shape, generator=generator)
        if value.dtype == torch.int64
        else torch.rand(value.shape, generator=generator)
        for key, value in state.items()
    }


def save(state: dict[str, torch.Tensor], path: Path) -> Path:
    if path.suffix == ".safetensors":
        save_file(state, path)
    else:
        torch.save(state, path)
    return path


@pytest.fixture(scope="module")
def resnet50_state() -> dict[str, torch.Tensor]:
    """A ``resnet50-*.pth`` lookalike: BatchNorm2d trunk (with num_batches_tracked) and fc.

    Its trunk keys are the backbone body's, which test_backbones checks against
    torchvision's layout.
    """
    trunk = ResNetFPNBackbone(frozen_batch_norm=False).body.state_dict()
    state = random_like(trunk, seed=0)
    state["fc.weight"] = torch.rand(1000, 2048)
    state["fc.bias"] = torch.rand(1000)
    return state


@pytest.fixture(scope="module")
def resnet50_file(
    resnet50_state: dict[str, torch.Tensor], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    return save(resnet50_state, tmp_path_factory.mktemp("weights") / "resnet50-test.pth")


def vgg16_state(fc_in: int, fc_width: int) -> dict[str, torch.Tensor]:
    """A ``vgg16-*.pth`` lookalike: real conv shapes, a scaled-down classifier.

    The real fc6 is Linear(25088, 4096), 411 MB; the key mapping does not depend on it.
    """
    conv_shapes = {f"features.{k}": v for k, v in VGG16Backbone().body.state_dict().items()}
    state = random_like(conv_shapes, seed=1)
    generator = torch.Generator().manual_seed(2)
    classifier = {0: (fc_width, fc_in), 3: (fc_width, fc_width), 6: (7, fc_width)}
    for index, (rows, cols) in classifier.items():
        state[f"classifier.{index}.weight"] = torch.rand(rows, cols, generator=generator)
        state[f"classifier.{index}.bias"] = torch.rand(rows, generator=generator)
    return state


# ---------------------------------------------------------------------------------------
# The real torchvision MobileNetV2 file
# ---------------------------------------------------------------------------------------


@needs_mobilenet_file
@pytest.mark.parametrize("frozen_batch_norm", [True, False])
def test_real_mobilenet_v2_file_loads_completely(frozen_batch_norm: bool) -> None:
    detector = FakeDetector(MobileNetV2FPNBackbone(frozen_batch_norm=frozen_batch_norm))
    report = load_backbone_weights(detector, MOBILENET_V2_FILE)
    assert report.architecture == "mobilenet_v2"
    assert report.missing == []
    assert report.unexpected == []
    assert report.dropped == ["classifier.1.weight", "classifier.1.bias"]
    file_state = torch.load(MOBILENET_V2_FILE, map_location="cpu", weights_only=True)
    weights = {k: v for k, v in file_state.items() if not k.endswith("num_batches_tracked")}
    assert len(report.loaded) == len(weights) - 2
    model_state = detector.state_dict()
    for key, value in weights.items():
        if key.startswith("features."):
            model_key = "backbone.body." + key.removeprefix("features.")
            assert torch.equal(model_state[model_key], value), key
    # An ImageNet file has no FPN: it keeps its initialisation (zero biases).
    fpn_biases = [v for k, v in model_state.items() if ".fpn." in k and k.endswith("bias")]
    assert len(fpn_biases) == 4 and all(torch.count_nonzero(b) == 0 for b in fpn_biases)


@needs_mobilenet_file
def test_real_mobilenet_v2_file_loads_into_a_bare_backbone() -> None:
    backbone = MobileNetV2FPNBackbone()
    report = load_backbone_weights(backbone, MOBILENET_V2_FILE)
    assert report.loaded[0] == "body.0.0.weight"
    assert report.missing == [] and report.unexpected == []
    assert "loaded 260 tensors (mobilenet_v2)" in str(report)


def test_mobilenet_v3_large_file_fills_the_body_and_drops_the_classifier(
    tmp_path: Path,
) -> None:
    # A ``mobilenet_v3_large-*.pth`` lookalike: torchvision's ``features.N`` keys (the
    # body's, which test_torchvision_layouts checks against torchvision) with batch norm
    # counters, and its two-layer classifier.
    trunk = MobileNetV3FPNBackbone(frozen_batch_norm=False).body.state_dict()
    state = {f"features.{k}": v for k, v in random_like(trunk, seed=3).items()}
    state |= {
        "classifier.0.weight": torch.rand(1280, 960),
        "classifier.0.bias": torch.rand(1280),
        "classifier.3.weight": torch.rand(1000, 1280),
        "classifier.3.bias": torch.rand(1000),
    }
    detector = FakeDetector(MobileNetV3FPNBackbone())
    report = load_backbone_weights(detector, save(state, tmp_path / "mobilenet_v3_large.pth"))
    assert report.architecture == "mobilenet_v3_large"
    assert report.missing == [] and report.unexpected == []
    assert sorted(report.dropped) == sorted(k for k in state if k.startswith("classifier."))
    model_state = detector.state_dict()
    for key, value in state.items():
        if key.startswith("features.") and not key.endswith("num_batches_tracked"):
            model_key = "backbone.body." + key.removeprefix("features.")
            assert torch.equal(model_state[model_key], value), key


# ---------------------------------------------------------------------------------------
# ResNet-50
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_resnet50_file_loads_into_frozen_batch_norm(
    resnet50_state: dict[str, torch.Tensor], tmp_path: Path, suffix: str
) -> None:
    path = save(resnet50_state, tmp_path / f"resnet50{suffix}")
    detector = FakeDetector(ResNetFPNBackbone())
    report = load_backbone_weights(detector, path)
    assert report.architecture == "resnet50"
    assert report.missing == [] and report.unexpected == []
    assert sorted(report.dropped) == ["fc.bias", "fc.weight"]  # safetensors sorts its keys
    assert len(report.loaded) == 53 + 53 * 4  # convs and the four buffers of each norm
    model_state = detector.state_dict()
    for key, value in resnet50_state.items():
        if not key.startswith("fc.") and not key.endswith("num_batches_tracked"):
            assert torch.equal(model_state["backbone.body." + key], value), key


def test_loading_keeps_the_model_dtype(resnet50_file: Path) -> None:
    backbone = ResNetFPNBackbone().double()
    load_backbone_weights(backbone, resnet50_file)
    file_state = torch.load(resnet50_file, weights_only=True)
    assert backbone.body.conv1.weight.dtype == torch.float64
    assert torch.equal(backbone.body.conv1.weight, file_state["conv1.weight"].double())


def test_missing_and_unexpected_keys_are_reported(
    resnet50_state: dict[str, torch.Tensor], tmp_path: Path
) -> None:
    state = dict(resnet50_state)
    del state["layer4.2.bn3.running_var"]
    state["layer5.0.conv1.weight"] = torch.zeros(1)
    report = load_backbone_weights(
        FakeDetector(ResNetFPNBackbone()), save(state, tmp_path / "partial.pth")
    )
    assert report.missing == ["backbone.body.layer4.2.bn3.running_var"]
    assert report.unexpected == ["layer5.0.conv1.weight"]
    text = str(report)
    assert "missing (1): backbone.body.layer4.2.bn3.running_var" in text
    assert "unexpected (1): layer5.0.conv1.weight" in text


def test_shape_mismatch_names_the_key_and_both_shapes(
    resnet50_state: dict[str, torch.Tensor], tmp_path: Path
) -> None:
    state = dict(resnet50_state, **{"conv1.weight": torch.zeros(64, 3, 3, 3)})
    path = save(state, tmp_path / "bad.pth")
    message = (
        r"conv1\.weight has shape \(64, 3, 3, 3\) "
        r"but the model's backbone\.body\.conv1\.weight has shape \(64, 3, 7, 7\)"
    )
    detector = FakeDetector(ResNetFPNBackbone())
    before = {k: v.clone() for k, v in detector.state_dict().items()}
    with pytest.raises(ValueError, match=message):
        load_backbone_weights(detector, path)
    # Shapes are checked before anything is copied: the model is untouched.
    assert all(torch.equal(v, before[k]) for k, v in detector.state_dict().items())


def test_a_training_checkpoint_loads_and_a_detectors_is_named_as_one(
    resnet50_state: dict[str, torch.Tensor], tmp_path: Path
) -> None:
    """A reference script's ``{"model": state, "optimizer": ...}`` loads as its state; a
    whole detector's state dict fits no backbone key, and the error says what it is
    (it asked whether the file was an ImageNet checkpoint, or said it got a dict)."""
    checkpoint = {"model": resnet50_state, "optimizer": {"lr": torch.tensor(0.02)}}
    torch.save(checkpoint, tmp_path / "checkpoint.pth")
    report = load_backbone_weights(FakeDetector(ResNetFPNBackbone()), tmp_path / "checkpoint.pth")
    trunk = [k for k in resnet50_state if not k.startswith("fc.")]
    assert len(report.loaded) == sum(not k.endswith("num_batches_tracked") for k in trunk)
    detector_state = {f"backbone.body.{k}": v for k, v in resnet50_state.items()}
    detector_state["rpn.head.conv.0.0.weight"] = torch.zeros(256, 256, 3, 3)
    torch.save({"model": detector_state}, tmp_path / "detector.pth")
    with pytest.raises(ValueError, match=r"it is a whole detector's \(backbone, rpn, roi_heads\)"):
        load_backbone_weights(FakeDetector(ResNetFPNBackbone()), tmp_path / "detector.pth")


# ---------------------------------------------------------------------------------------
# VGG-16: conv layers into the body, fc6/fc7 into the box head
# ---------------------------------------------------------------------------------------


def test_vgg16_file_fills_the_body_and_the_box_head(tmp_path: Path) -> None:
    state = vgg16_state(fc_in=24, fc_width=16)
    detector = FakeDetector(VGG16Backbone(), FakeBoxHead(24, 16))
    report = load_backbone_weights(detector, save(state, tmp_path / "vgg16.pth"))
    assert report.architecture == "vgg16"
    assert report.missing == [] and report.unexpected == []
    assert report.dropped == ["classifier.6.weight", "classifier.6.bias"]
    assert len(report.loaded) == 26 + 4
    box_head = detector.roi_heads.box_head
    assert torch.equal(box_head.fc6.weight, state["classifier.0.weight"])
    assert torch.equal(box_head.fc6.bias, state["classifier.0.bias"])
    assert torch.equal(box_head.fc7.weight, state["classifier.3.weight"])
    assert torch.equal(box_head.fc7.bias, state["classifier.3.bias"])
    for index in (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28):
        assert torch.equal(detector.backbone.body[index].weight, state[f"features.{index}.weight"])


def test_vgg16_file_into_a_bare_backbone_drops_the_classifier(tmp_path: Path) -> None:
    state = vgg16_state(fc_in=24, fc_width=16)
    report = load_backbone_weights(VGG16Backbone(), save(state, tmp_path / "vgg16.pth"))
    assert report.missing == [] and report.unexpected == []
    assert sorted(report.dropped) == sorted(k for k in state if k.startswith("classifier."))


def test_vgg16_fc6_of_another_size_is_a_shape_error(tmp_path: Path) -> None:
    path = save(vgg16_state(fc_in=24, fc_width=16), tmp_path / "vgg16.pth")
    detector = FakeDetector(VGG16Backbone(), FakeBoxHead(24, 8))
    message = (
        r"classifier\.0\.weight has shape \(16, 24\) "
        r"but the model's roi_heads\.box_head\.fc6\.weight has shape \(8, 24\)"
    )
    with pytest.raises(ValueError, match=message):
        load_backbone_weights(detector, path)


# ---------------------------------------------------------------------------------------
# Refusals
# ---------------------------------------------------------------------------------------


def test_a_file_of_another_architecture_is_refused_naming_what_it_is(
    resnet50_file: Path, tmp_path: Path
) -> None:
    """The error names the network the file is the checkpoint of, and the presets whose
    backbone takes it; a ResNet-101's (ResNet-50's layer4, more layer3 blocks) is not
    taken for a ResNet-50's."""
    with pytest.raises(ValueError) as refused:
        load_backbone_weights(MobileNetV2FPNBackbone(), resnet50_file)
    assert str(refused.value).endswith(
        "tensors fit the mobilenet_v2 backbone; it is a torchvision resnet50 ImageNet "
        "checkpoint, which the backbone of the presets resnet50_fpn and resnet50_fpn_v2 takes"
    )
    deeper = torch.load(resnet50_file, weights_only=True)
    deeper["layer3.6.conv1.weight"] = deeper["layer3.5.conv1.weight"].clone()
    with pytest.raises(ValueError) as refused:
        load_backbone_weights(MobileNetV2FPNBackbone(), save(deeper, tmp_path / "r101.pth"))
    assert str(refused.value).endswith("is it a torchvision mobilenet_v2 ImageNet checkpoint?")


@pytest.mark.parametrize(
    ("backbone", "prefix", "architecture"),
    [
        (ResNetFPNBackbone, "", "resnet50"),
        (MobileNetV2FPNBackbone, "features.", "mobilenet_v2"),
        (MobileNetV3FPNBackbone, "features.", "mobilenet_v3_large"),
        (VGG16Backbone, "features.", "vgg16"),
        (SmallFPNBackbone, "", None),
    ],
)
def test_imagenet_architecture_tells_each_network_by_its_own_layers(
    backbone: type[nn.Module], prefix: str, architecture: str | None
) -> None:
    """Each lookalike checkpoint (the backbone's layers under torchvision's names) is
    told as its network's, the small backbone's as none."""
    state = {prefix + key: value for key, value in backbone().body.state_dict().items()}
    assert imagenet_architecture(state) == architecture


@needs_mobilenet_file
def test_the_published_mobilenet_v2_file_is_told_as_mobilenet_v2() -> None:
    assert imagenet_architecture(read_state_dict(MOBILENET_V2_FILE)) == "mobilenet_v2"


def test_the_small_backbone_has_no_imagenet_format(resnet50_file: Path) -> None:
    with pytest.raises(ValueError, match="SmallFPNBackbone") as refused:
        load_backbone_weights(FakeDetector(SmallFPNBackbone()), resnet50_file)
    assert str(refused.value).endswith(
        "the small backbone trains from scratch); it is a torchvision resnet50 ImageNet "
        "checkpoint, which the backbone of the presets resnet50_fpn and resnet50_fpn_v2 takes"
    )


def test_a_file_that_is_not_a_state_dict_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], path)
    with pytest.raises(ValueError, match=r"list\.pth: expected a state dict of named tensors"):
        load_backbone_weights(VGG16Backbone(), path)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"no checkpoint file at .*absent\.pth"):
        load_backbone_weights(VGG16Backbone(), tmp_path / "absent.pth")


def test_a_backbone_file_with_nan_is_refused_and_a_ddp_prefix_is_removed(
    resnet50_state: dict[str, torch.Tensor], tmp_path: Path
) -> None:
    wrapped = {f"module.{k}": v for k, v in resnet50_state.items()}
    torch.save(wrapped, tmp_path / "ddp.pth")
    report = load_backbone_weights(FakeDetector(ResNetFPNBackbone()), tmp_path / "ddp.pth")
    assert report.loaded and not report.unexpected
    diverged = dict(resnet50_state)
    diverged["conv1.weight"] = diverged["conv1.weight"].clone()
    diverged["conv1.weight"][0, 0, 0, 0] = float("nan")
    torch.save(diverged, tmp_path / "nan.pth")
    with pytest.raises(ValueError, match=r"nan\.pth: 1 tensor holds NaN or infinite"):
        load_backbone_weights(FakeDetector(ResNetFPNBackbone()), tmp_path / "nan.pth")
