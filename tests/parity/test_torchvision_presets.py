"""End to end against torchvision's own detectors (random weights) for the presets that
mirror them: ``fasterrcnn_resnet50_fpn`` and ``fasterrcnn_resnet50_fpn_v2``, a
``FasterRCNN`` on ``mobilenet_backbone("mobilenet_v2", fpn=True)``,
``fasterrcnn_mobilenet_v3_large_fpn`` and ``fasterrcnn_mobilenet_v3_large_320_fpn``.

torchvision cannot be imported next to this project's torch, so the peer runs in its own
environment (design.md, "Measuring"): point ``FASTER_RCNN_TORCHVISION_PYTHON`` at that
environment's interpreter. The tests are skipped when it is not set. Run with ``-s`` to
see the worst differences. The peer runs on this process's thread count; the gradients
agree within 3.3e-7 of their largest entry on 1 and on 2 threads, once the box head's
ReLUs at the edge are replayed (``torchvision_record.RELU_EDGE``).
"""

import pytest
from torchvision_record import check_eval, check_resize, check_train, needs_peer, peer_record

from faster_rcnn.fast_inference import optimize_for_inference
from faster_rcnn.models import (
    mobilenet_v2_fpn,
    mobilenet_v3_large_320_fpn,
    mobilenet_v3_large_fpn,
    resnet50_fpn,
    resnet50_fpn_v2,
)

PRESETS = {
    "resnet50": resnet50_fpn,
    "resnet50_fpn_v2": resnet50_fpn_v2,
    "mobilenet_v2_fpn": mobilenet_v2_fpn,
    "mobilenet_v3_large_fpn": mobilenet_v3_large_fpn,
    "mobilenet_v3_large_320_fpn": mobilenet_v3_large_320_fpn,
}

pytestmark = needs_peer


@pytest.fixture(scope="module", params=list(PRESETS))
def preset(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def record(preset, tmp_path_factory) -> dict:
    return peer_record(preset, tmp_path_factory)


@pytest.fixture(scope="module")
def model(preset, record):
    model = PRESETS[preset]()
    model.load_state_dict(record["state_dict"], strict=True)
    return model


def test_images_are_resized_as_torchvision_does(model, record):
    check_resize(model, record)


def test_eval_detections_match_torchvision(preset, model, record):
    print(f"\n{preset} eval, worst differences:", check_eval(model, record))


# The random ResNet-50 records amplify the rewrites' rounding past the tolerances (a
# trained MobileNetV2 FPN stays within 2.7e-4 px and 4.7e-6, README "Faster inference").
REWRITE_DRIFT = {
    "resnet50": "one detection's score moves by 1.0e-4, the tolerance",
    "resnet50_fpn_v2": "one of 400 detections differs (3.6 px, score 0.033)",
}


def test_eval_detections_match_torchvision_with_inference_rewrites(preset, model, record, request):
    if preset in REWRITE_DRIFT:
        request.applymarker(pytest.mark.xfail(reason=REWRITE_DRIFT[preset], strict=False))
    # Folding and channels-last change float rounding (1e-7 relative), which may swap
    # detections whose scores differ by less than the tolerance: compared as sets.
    fast = optimize_for_inference(model)
    worst = check_eval(fast, record, exact_order=False)
    print(f"\n{preset} eval, batch norms folded, channels-last:", worst)


def test_training_losses_and_head_gradients_match_torchvision(preset, model, record):
    print(f"\n{preset} training, worst differences:", check_train(model, record))
