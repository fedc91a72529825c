"""load_torchvision_checkpoint: the file formats torchvision users have."""

import argparse

import pytest
import torch
from safetensors.torch import save_file

from faster_rcnn import FasterRCNN, load_torchvision_checkpoint, read_torchvision_state_dict
from faster_rcnn.models import mobilenet_v2_fpn_config, resnet50_fpn_config


@pytest.fixture(scope="module")
def mobilenet_state() -> dict:
    torch.manual_seed(0)
    return FasterRCNN.from_config(mobilenet_v2_fpn_config(num_classes=3)).state_dict()


def assert_same_weights(model: FasterRCNN, state: dict) -> None:
    loaded = model.state_dict()
    assert list(loaded) == list(state)
    for key, value in state.items():
        assert torch.equal(loaded[key], value), key


def test_bare_state_dict_loads_with_class_count_from_the_file(tmp_path, mobilenet_state):
    path = tmp_path / "model.pth"
    torch.save(mobilenet_state, path)
    model = load_torchvision_checkpoint(path, preset="mobilenet_v2_fpn")
    assert model.num_classes == 3 and not model.training
    assert_same_weights(model, mobilenet_state)


def test_reference_script_checkpoint_with_args_and_ddp_prefix(tmp_path, mobilenet_state):
    # torchvision's references/detection/train.py saves model, optimizer, args, epoch.
    checkpoint = {
        "model": {f"module.{k}": v for k, v in mobilenet_state.items()},
        "optimizer": {"state": {}, "param_groups": []},
        "args": argparse.Namespace(lr=0.02, epochs=26),
        "epoch": 25,
    }
    path = tmp_path / "checkpoint.pth"
    torch.save(checkpoint, path)
    model = load_torchvision_checkpoint(path, preset="mobilenet_v2_fpn")
    assert_same_weights(model, mobilenet_state)


def test_safetensors_state_dict_loads(tmp_path, mobilenet_state):
    path = tmp_path / "model.safetensors"
    save_file(mobilenet_state, path)
    model = load_torchvision_checkpoint(path, preset="mobilenet_v2_fpn")
    assert_same_weights(model, mobilenet_state)


def test_old_fpn_and_rpn_key_layout_loads(tmp_path):
    # torchvision's published COCO weights predate Conv2dNormActivation in the FPN and
    # the RPN head: "fpn.inner_blocks.0.weight", "rpn.head.conv.weight".
    with torch.device("meta"):
        keys = FasterRCNN.from_config(resnet50_fpn_config()).state_dict()
    old = {}
    for key, value in keys.items():
        key = key.replace("rpn.head.conv.0.0.", "rpn.head.conv.")
        for block in ("inner_blocks", "layer_blocks"):
            for i in range(4):
                key = key.replace(f"fpn.{block}.{i}.0.", f"fpn.{block}.{i}.")
        old[key] = torch.zeros(value.shape)
    old["backbone.fpn.inner_blocks.0.weight"] = torch.full((256, 256, 1, 1), 0.5)
    path = tmp_path / "coco.pth"
    torch.save(old, path)
    model = load_torchvision_checkpoint(path)
    assert model.num_classes == 91
    assert torch.all(model.backbone.fpn.inner_blocks[0][0].weight == 0.5)


def test_code_in_a_checkpoint_is_refused(tmp_path, mobilenet_state):
    path = tmp_path / "evil.pth"
    torch.save({"model": mobilenet_state, "hook": print}, path)
    with pytest.raises(ValueError, match="could run code when loaded; refused") as info:
        read_torchvision_state_dict(path)
    assert "weights_only=False" not in str(info.value)


def test_wrong_preset_and_missing_file_are_clear(tmp_path, mobilenet_state):
    path = tmp_path / "model.pth"
    torch.save(mobilenet_state, path)
    with pytest.raises(ValueError, match="does not fit the resnet50_fpn preset"):
        load_torchvision_checkpoint(path, preset="resnet50_fpn")
    with pytest.raises(FileNotFoundError, match="no checkpoint file"):
        load_torchvision_checkpoint(tmp_path / "absent.pth")
    torch.save({"weights": [1, 2]}, tmp_path / "odd.pth")
    with pytest.raises(ValueError, match="expected a state dict"):
        read_torchvision_state_dict(tmp_path / "odd.pth")
