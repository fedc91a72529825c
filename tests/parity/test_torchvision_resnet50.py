"""End to end against torchvision's ``fasterrcnn_resnet50_fpn`` itself (random weights).

torchvision cannot be imported next to this project's torch, so the peer runs in its own
environment (design.md, "Measuring"): point ``FASTER_RCNN_TORCHVISION_PYTHON`` at that
environment's interpreter. The test is skipped when it is not set.
"""

import os
import subprocess
from pathlib import Path

import pytest
import torch
from torchvision_record import check_eval, check_train

from faster_rcnn.models import resnet50_fpn

PEER_PYTHON = os.environ.get("FASTER_RCNN_TORCHVISION_PYTHON", "")
SCRIPT = Path(__file__).parent / "torchvision_side.py"

pytestmark = pytest.mark.skipif(
    not Path(PEER_PYTHON).is_file(),
    reason="set FASTER_RCNN_TORCHVISION_PYTHON to a Python that has torchvision",
)


@pytest.fixture(scope="module")
def record(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("torchvision") / "resnet50.pt"
    subprocess.run([PEER_PYTHON, str(SCRIPT), "resnet50", str(out)], check=True)
    return torch.load(out, weights_only=True)


@pytest.fixture(scope="module")
def model(record):
    model = resnet50_fpn()
    model.load_state_dict(record["state_dict"], strict=True)
    return model


def test_eval_detections_match_torchvision(model, record):
    check_eval(model, record)


def test_training_losses_and_head_gradients_match_torchvision(model, record):
    check_train(model, record)
