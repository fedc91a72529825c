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
from tiny_backbone import TinyBackbone
from torchvision_record import check_eval, check_train, needs_peer, peer_record

from faster_rcnn import AnchorGenerator, FasterRCNN
from faster_rcnn.roi_heads import FastRCNNPredictor, MultiScaleRoIAlign
from faster_rcnn.rpn import RPNHead

pytestmark = needs_peer


@pytest.fixture(scope="module")
def record(tmp_path_factory) -> dict:
    return peer_record("tiny_heads", tmp_path_factory)


def heads_model() -> FasterRCNN:
    """``torchvision_side.tiny_heads_model`` with this package's classes, drawn from the
    record's seed, its class scores redrawn as there."""
    torch.manual_seed(0)
    model = FasterRCNN(
        TinyBackbone(),
        num_classes=None,
        min_size=200,
        max_size=320,
        rpn_anchor_generator=AnchorGenerator(((24, 32), (64, 96)), ((0.5, 1.0, 2.0),) * 2),
        rpn_head=RPNHead(16, 6, conv_depth=2),
        rpn_pre_nms_top_n_train=300,
        rpn_pre_nms_top_n_test=200,
        rpn_post_nms_top_n_train=200,
        rpn_post_nms_top_n_test=100,
        box_roi_pool=MultiScaleRoIAlign(["0", "1"], 7, 2),
        box_predictor=FastRCNNPredictor(1024, 4),
        box_batch_size_per_image=64,
    )
    with torch.no_grad():
        model.roi_heads.box_predictor.cls_score.weight.normal_(0, 0.15)
    return model


def test_given_heads_draw_torchvision_s_weights_and_compute_what_it_does(record):
    model = heads_model()
    assert (model.config.rpn.head_conv_depth, model.config.num_classes) == (2, 4)
    state = model.state_dict()
    assert list(state) == list(record["state_dict"])
    assert [k for k, v in record["state_dict"].items() if not torch.equal(state[k], v)] == []
    print("\nheads eval, worst differences:", check_eval(model, record, exact_order=False))
    print("heads training, worst differences:", check_train(model, record))
