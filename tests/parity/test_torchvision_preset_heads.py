"""A preset given head modules, against torchvision's builder given them:
``mobilenet_v3_large_320_fpn(4, weights=None, weights_backbone=None,
rpn_head=RPNHead(256, 15, conv_depth=2), box_head=TwoMLPHead(256 * 7 * 7, 1024))`` with
this package's classes builds torchvision's network, layer for layer, and computes what
it does.

The peer runs ``torchvision_side.py builder_heads`` in its own environment: point
``FASTER_RCNN_TORCHVISION_PYTHON`` at that environment's interpreter (skipped otherwise;
see test_torchvision_presets.py).
"""

import pytest
from torchvision_record import check_eval, check_train, needs_peer, peer_record

from faster_rcnn.models import mobilenet_v3_large_320_fpn
from faster_rcnn.roi_heads import TwoMLPHead
from faster_rcnn.rpn import RPNHead

pytestmark = needs_peer


@pytest.fixture(scope="module")
def record(tmp_path_factory) -> dict:
    return peer_record("builder_heads", tmp_path_factory)


def test_a_preset_given_heads_builds_and_computes_what_torchvision_s_builder_does(record):
    rpn_head, box_head = RPNHead(256, 15, conv_depth=2), TwoMLPHead(256 * 7 * 7, 1024)
    model = mobilenet_v3_large_320_fpn(
        4, weights=None, weights_backbone=None, rpn_head=rpn_head, box_head=box_head
    )
    assert model.rpn.head is rpn_head and model.roi_heads.box_head is box_head
    config = model.config
    assert (config.rpn.head_conv_depth, config.roi_heads.representation_size) == (2, 1024)
    assert list(model.state_dict()) == list(record["state_dict"])
    model.load_state_dict(record["state_dict"], strict=True)
    print("\npreset with heads eval, worst differences:", check_eval(model, record))
    print("preset with heads training, worst differences:", check_train(model, record))
