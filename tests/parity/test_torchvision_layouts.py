"""The torchvision-compatible presets have torchvision's exact state-dict layout (keys, in
order, and shapes), as recorded by ``torchvision_side.py keys`` from torchvision itself."""

import json
from pathlib import Path

import pytest
import torch

from faster_rcnn import FasterRCNN
from faster_rcnn.models import preset_config

LAYOUTS = json.loads(
    (Path(__file__).parent / "fixtures" / "torchvision_state_dict_layouts.json").read_text()
)


# Preset -> the torchvision model whose layout it has (the 320 version differs from the
# other only in its resize and proposal counts).
LAYOUT_OF = {
    "resnet50_fpn": "resnet50_fpn",
    "resnet50_fpn_v2": "resnet50_fpn_v2",
    "mobilenet_v2_fpn": "mobilenet_v2_fpn",
    "mobilenet_v3_large_fpn": "mobilenet_v3_large_fpn",
    "mobilenet_v3_large_320_fpn": "mobilenet_v3_large_fpn",
}


@pytest.mark.parametrize("preset", list(LAYOUT_OF))
def test_preset_state_dict_is_torchvisions(preset):
    with torch.device("meta"):
        model = FasterRCNN.from_config(preset_config(preset))
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    layout = LAYOUTS[LAYOUT_OF[preset]]
    assert list(ours) == list(layout)
    assert ours == layout
