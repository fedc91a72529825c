"""Fuzzing the model API: random image shapes, dtypes and values, random and degenerate
boxes and labels. The only acceptable outcomes are finite losses (training), detections
inside their images (inference), or the project's own one-line ``ValueError``."""

import math
import os
import re
import warnings

import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from faster_rcnn import FasterRCNN
from faster_rcnn.models import small_config

NUM_CLASSES = 3
FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "60")),
    derandomize="FUZZ_RANDOM" not in os.environ,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module")
def model() -> FasterRCNN:
    cfg = small_config(NUM_CLASSES).replace(
        transform={"min_size": (64,), "max_size": 96},
        rpn={"pre_nms_top_n_train": 100, "post_nms_top_n_train": 50},
        roi_heads={"batch_size_per_image": 16},
    )
    torch.manual_seed(0)
    return FasterRCNN.from_config(cfg)


SIDES = st.one_of(*[st.integers(8, 120)] * 4, st.sampled_from([0, 1, 2, 3000]))
DTYPES = st.sampled_from([torch.float32] * 4 + [torch.float64, torch.float16, torch.uint8])
SPECIAL = st.sampled_from([0.0, 1.0, 255.0, -1.0, math.nan, math.inf, -math.inf, 1e30])


def rarely(draw: st.DrawFn) -> bool:
    """True one time in eight: most inputs are well formed, with one fault at a time."""
    return draw(st.integers(0, 7)) == 5  # not 0: Hypothesis draws its minimum often


@st.composite
def images(draw: st.DrawFn) -> torch.Tensor:
    """An image: mostly (3, H, W) float32 in 0..1, sometimes another shape, dtype or value."""
    shape = [3, draw(SIDES), draw(SIDES)]
    if rarely(draw):
        shape = draw(st.sampled_from([shape[1:], [1, *shape], [1, *shape[1:]], [4, *shape[1:]]]))
    generator = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
    image = torch.rand(shape, generator=generator)
    if image.numel() and rarely(draw):
        image.view(-1)[draw(st.integers(0, image.numel() - 1))] = draw(SPECIAL)
    return image.to(draw(DTYPES)) if rarely(draw) else image


COORDINATES = st.one_of(SPECIAL, st.floats(allow_nan=True, allow_infinity=True))


@st.composite
def box(draw: st.DrawFn, height: int, width: int) -> list[float]:
    """A box in a ``height`` x ``width`` image: mostly inside it, sometimes any values."""
    if rarely(draw):
        return [draw(st.floats(-5, 5)) + draw(COORDINATES) for _ in range(4)]
    x1, x2 = sorted(draw(st.floats(-0.2 * width, 1.2 * width)) for _ in range(2))
    y1, y2 = sorted(draw(st.floats(-0.2 * height, 1.2 * height)) for _ in range(2))
    return [x1, y1, x2, y2]


@st.composite
def examples(draw: st.DrawFn) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """An image and its target, the boxes drawn for the image's size."""
    image = draw(images())
    height, width = (max(int(side), 1) for side in image.shape[-2:])
    rows = draw(st.lists(box(height, width), max_size=4))
    boxes = torch.tensor(rows, dtype=torch.float64 if rarely(draw) else torch.float32)
    boxes = boxes.reshape(-1) if rarely(draw) else boxes.reshape(-1, 4)
    labels = draw(st.lists(st.integers(1, NUM_CLASSES - 1), min_size=len(rows), max_size=len(rows)))
    if labels and rarely(draw):
        labels[0] = draw(st.sampled_from([-1, 0, NUM_CLASSES]))
    dtype = torch.int32 if rarely(draw) else torch.int64
    return image, {"boxes": boxes, "labels": torch.tensor(labels, dtype=dtype)}


def _assert_one_line(error: BaseException) -> None:
    kind = re.sub(r"[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?", "#", str(error))[:60]  # numbers out
    event(f"refused: {type(error).__name__}: {kind}")
    assert "\n" not in str(error), f"a message over several lines: {error!r}"


@FUZZ
@given(batch=st.lists(examples(), min_size=1, max_size=2))
def test_training_gives_finite_losses_or_a_one_line_error(model, batch):
    model.train()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # 0..255 images are warned of, not refused
            losses = model([image for image, _ in batch], [target for _, target in batch])
    except ValueError as error:
        _assert_one_line(error)
        return
    event("trained")
    assert set(losses) >= {"loss_objectness", "loss_rpn_box_reg", "loss_classifier"}
    for name, value in losses.items():
        assert math.isfinite(value.item()), (name, value)


@FUZZ
@given(batch=st.lists(images(), min_size=1, max_size=2))
def test_inference_gives_detections_inside_the_images_or_a_one_line_error(model, batch):
    model.eval()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            detections = model(batch)
    except ValueError as error:
        _assert_one_line(error)
        return
    event("detected")
    for image, found in zip(batch, detections, strict=True):
        height, width = image.shape[-2:]
        boxes = found["boxes"]
        assert bool(torch.isfinite(boxes).all()) and bool(torch.isfinite(found["scores"]).all())
        assert bool((boxes[:, :2] >= 0).all()) and bool((boxes[:, 2] <= width).all())
        assert bool((boxes[:, 3] <= height).all())
        assert bool(((found["labels"] >= 1) & (found["labels"] < NUM_CLASSES)).all())
