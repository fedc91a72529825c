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


@pytest.mark.parametrize("preset", ["resnet50_fpn", "mobilenet_v2_fpn"])
def test_preset_state_dict_is_torchvisions(preset):
    with torch.device("meta"):
        model = FasterRCNN.from_config(preset_config(preset))
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert list(ours) == list(LAYOUTS[preset])
    assert ours == LAYOUTS[preset]
