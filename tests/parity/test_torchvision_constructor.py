"""torchvision's constructor form with head modules given, against torchvision itself:
``FasterRCNN(backbone, num_classes=None, rpn_head=RPNHead(16, 6, conv_depth=2),
box_predictor=FastRCNNPredictor(1024, 4), ...)`` with this package's classes draws
torchvision's weights from the same seed and computes what torchvision does.

The peer runs ``torchvision_side.py tiny_heads`` in its own environment: point
``FASTER_RCNN_TORCHVISION_PYTHON`` at that environment's interpreter (skipped otherwise;
see test_torchvision_presets.py).
"""

import pytest
import torch
from torchvision_record import (
    check_eval,
    check_train,
    needs_peer,
    peer_record,
    tiny_constructor_form,
)

from faster_rcnn import FasterRCNN
from faster_rcnn.roi_heads import FastRCNNPredictor
from faster_rcnn.rpn import RPNHead

pytestmark = needs_peer


@pytest.fixture(scope="module")
def record(tmp_path_factory) -> dict:
    return peer_record("tiny_heads", tmp_path_factory)


def heads_model() -> FasterRCNN:
    """``torchvision_side.tiny_heads_model`` with this package's classes
    (:func:`~torchvision_record.tiny_constructor_form`)."""
    return tiny_constructor_form(
        lambda: {
            "rpn_head": RPNHead(16, 6, conv_depth=2),
            "box_predictor": FastRCNNPredictor(1024, 4),
        }
    )


def test_given_heads_draw_torchvision_s_weights_and_compute_what_it_does(record):
    model = heads_model()
    assert (model.config.rpn.head_conv_depth, model.config.num_classes) == (2, 4)
    state = model.state_dict()
    assert list(state) == list(record["state_dict"])
    assert [k for k, v in record["state_dict"].items() if not torch.equal(state[k], v)] == []
    print("\nheads eval, worst differences:", check_eval(model, record, exact_order=False))
    print("heads training, worst differences:", check_train(model, record))
