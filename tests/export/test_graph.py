"""DetectionGraph: the eager detector's detections, batched and of fixed shape.

Fed the batch the eager transform builds, the graph must give the eager detections bit for
bit: every step is the same arithmetic on the same values, only batched. From raw resized
images (normalised inside the graph, after resizing rather than before) it agrees to float
noise.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from faster_rcnn import FasterRCNN, FasterRCNNConfig, models
from faster_rcnn.data.dataset import as_float_image
from faster_rcnn.export import DetectionGraph, prepare_graph_inputs
from faster_rcnn.export.graph_ops import nms_rows
from faster_rcnn.models import paper_vgg16_config, small_config
from faster_rcnn.ops import nms
from faster_rcnn.roi_heads import MultiScaleRoIAlign
from spread_models import images_of_sizes, small_detector, spread_scores

SIZES = [(240, 320), (300, 200), (100, 400)]


def _smaller(config: FasterRCNNConfig) -> FasterRCNN:
    """The preset at a third of its image size (VGG-16 at 600 px is slow on a CPU)."""
    return FasterRCNN.from_config(config.replace(transform={"min_size": (208,), "max_size": 320}))


def _eager_and_graph(model, images):
    graph = DetectionGraph(model)
    with torch.no_grad():
        eager = model(images)
        batch = model.prepare_batch(images)
        sizes = torch.tensor(batch.images.image_sizes)
        originals = torch.tensor(batch.original_sizes)
        exact = graph.detect(batch.images.tensors, sizes, originals)
        from_raw = graph(*prepare_graph_inputs(model.transform, images))
    return eager, exact, from_raw


def _unpadded(outputs, image):
    boxes, scores, labels = (output[image] for output in outputs)
    found = labels > 0
    return {"boxes": boxes[found], "scores": scores[found], "labels": labels[found]}


def _assert_bit_for_bit(outputs, eager):
    for image, expected in enumerate(eager):
        got = _unpadded(outputs, image)
        for key in ("boxes", "scores", "labels"):
            assert torch.equal(got[key], expected[key]), (image, key)


def _uncapped_small_detector():
    """The small detector with a cap that hides nothing NMS keeps, the test images, and
    its detections with greedy NMS at one IoU for every class."""
    model = small_detector()
    model.roi_heads.detections_per_img = 1000
    images = images_of_sizes(SIZES)
    with torch.no_grad():
        return model, images, model(images)


@pytest.mark.parametrize(
    "make",
    [
        small_detector,
        lambda: spread_scores(models.mobilenet_v3_large_320_fpn(5), reinit_backbone=True),
        lambda: spread_scores(_smaller(paper_vgg16_config(5)), reinit_backbone=True),
    ],
    ids=["small", "mobilenet_v3_large_320_fpn", "paper_vgg16_roi_pool"],
)
def test_graph_gives_the_eager_detections_bit_for_bit(make):
    torch.manual_seed(0)
    model = make()
    eager, exact, from_raw = _eager_and_graph(model, images_of_sizes(SIZES))
    assert sum(len(d["scores"]) for d in eager) > 0
    _assert_bit_for_bit(exact, eager)
    for image, expected in enumerate(eager):
        close = _unpadded(from_raw, image)
        assert torch.equal(close["labels"], expected["labels"])
        torch.testing.assert_close(close["scores"], expected["scores"], atol=1e-4, rtol=0)


def test_graph_gives_the_eager_detections_of_a_strip_far_wider_than_tall():
    # 50 x 2000 resizes to 12 x 512 in a batch of 32 rows: the eager pooler took the
    # scale of its stride-8 map, 4 rows, for 1/4 by the height (the graph knows 1/8).
    torch.manual_seed(0)
    eager, exact, _ = _eager_and_graph(small_detector(), images_of_sizes([(50, 2000)]))
    assert len(eager[0]["scores"]) > 0
    _assert_bit_for_bit(exact, eager)


def test_graph_inputs_of_uint8_levels_are_those_of_the_float_image_scaled_from_them():
    """As the model takes a reader's uint8 item: scaled before the resize, never
    interpolated as levels."""
    generator = torch.Generator().manual_seed(0)
    levels = [
        torch.randint(0, 256, (3, h, w), generator=generator).to(torch.uint8) for h, w in SIZES
    ]
    transform = small_detector().transform
    got = prepare_graph_inputs(transform, levels)
    expected = prepare_graph_inputs(transform, [as_float_image(image) for image in levels])
    for tensor, wanted in zip(got, expected, strict=True):
        assert tensor.dtype == wanted.dtype and torch.equal(tensor, wanted)


def test_graph_applies_each_class_its_own_nms_threshold():
    model, images, uniform = _uncapped_small_detector()
    model.roi_heads.class_nms_thresh = (0.9, 0.5, 0.2)
    eager, exact, _ = _eager_and_graph(model, images)
    # The thresholds change what NMS keeps, class 1 more and class 3 less...
    for label, more in ((1, True), (3, False)):
        counts = [sum(int((d["labels"] == label).sum()) for d in ds) for ds in (eager, uniform)]
        assert (counts[0] > counts[1]) if more else (counts[0] < counts[1]), (label, counts)
    # ... and the graph keeps the same.
    _assert_bit_for_bit(exact, eager)


def test_graph_gives_the_eager_soft_nms_detections_bit_for_bit():
    model, images, greedy = _uncapped_small_detector()
    model.roi_heads.soft_nms_sigma = 0.5
    eager, exact, from_raw = _eager_and_graph(model, images)
    # Soft-NMS keeps detections that greedy NMS removes (lowered in score).
    assert sum(len(d["scores"]) for d in eager) > sum(len(d["scores"]) for d in greedy)
    _assert_bit_for_bit(exact, eager)
    # From raw images, float noise may swap two detections of different classes whose
    # lowered scores are 1e-6 apart (it did on 2 threads): each class keeps its own.
    for image, expected in enumerate(eager):
        got = _unpadded(from_raw, image)
        for label in range(1, model.num_classes):
            scores = [d["scores"][d["labels"] == label] for d in (got, expected)]
            torch.testing.assert_close(*scores, atol=1e-4, rtol=0)


def test_levels_with_fewer_anchors_than_the_pre_nms_limit_are_padded_not_filled():
    # 20,000 a level is more than the coarser levels have (6720 anchors and fewer), and
    # every survivor of NMS is kept: a padding entry let through would be one more proposal.
    config = small_config(4).replace(
        rpn={"pre_nms_top_n_test": 20000, "post_nms_top_n_test": 20000}
    )
    torch.manual_seed(0)
    model = spread_scores(FasterRCNN.from_config(config))
    graph = DetectionGraph(model)
    with torch.no_grad():
        batch = model.prepare_batch(images_of_sizes(SIZES[:2]))
        features = model.features(batch.images)
        expected, _ = model.rpn.propose(batch.images, features)
        sizes = torch.tensor(batch.images.image_sizes)
        proposals, real = graph._proposals(batch.images.tensors, list(features.values()), sizes)
    for image, boxes in enumerate(expected):
        assert torch.equal(proposals[image][real[image]], boxes)


def test_equal_scores_are_ordered_as_the_eager_model_orders_them():
    # Every RoI gets the same class scores, so all detections tie: the eager model lists
    # them by proposal, then by class, and so must the graph.
    model = small_detector()
    with torch.no_grad():
        model.roi_heads.box_predictor.cls_score.weight.zero_()
        model.roi_heads.box_predictor.cls_score.bias.copy_(torch.tensor([0.0, 1, 1, 1]))
    eager, exact, _ = _eager_and_graph(model, images_of_sizes(SIZES[:2]))
    for image, expected in enumerate(eager):
        assert len(expected["scores"].unique()) == 1 and len(expected["labels"].unique()) > 1
        got = _unpadded(exact, image)
        assert all(torch.equal(got[key], expected[key]) for key in got)


def test_padding_rows_are_label_zero_and_score_zero():
    model = small_detector()
    with torch.no_grad():
        model.roi_heads.box_predictor.cls_score.bias[0] += 8  # background wins mostly
        boxes, scores, labels = DetectionGraph(model)(
            *prepare_graph_inputs(model.transform, images_of_sizes(SIZES))
        )
        eager = model(images_of_sizes(SIZES))
    limit = model.config.roi_heads.detections_per_img
    assert boxes.shape == (3, limit, 4) and scores.shape == labels.shape == (3, limit)
    for image, expected in enumerate(eager):
        found = int((labels[image] > 0).sum())
        assert found == len(expected["scores"]) < limit
        assert (labels[image, found:] == 0).all() and (scores[image, found:] == 0).all()
        assert (boxes[image, found:] == 0).all()


def test_no_detections_at_all_gives_all_padding():
    model = small_detector()
    with torch.no_grad():
        model.roi_heads.box_predictor.cls_score.bias[0] += 100
        _, scores, labels = DetectionGraph(model)(
            *prepare_graph_inputs(model.transform, images_of_sizes(SIZES))
        )
    assert (labels == 0).all() and (scores == 0).all()


def test_nms_rows_keeps_the_greedy_choice_of_every_row():
    # A chain: each box overlaps the next above the threshold, not the one after.
    chain = torch.tensor([[0.0, 0, 10, 10], [6, 0, 16, 10], [12, 0, 22, 10], [18, 0, 28, 10]])
    boxes = torch.stack((chain, chain + 100.0))
    scores = torch.tensor([[0.9, 0.8, 0.7, 0.6], [0.5, -torch.inf, 0.7, 0.6]])
    kept = nms_rows(boxes, scores, 0.2, 3)
    assert nms(chain, scores[0], 0.2).tolist() == [0, 2]
    # Row 2 without its second box: 2 beats 3 and 0 is apart from both.
    assert kept.tolist() == [[0, 2, -1], [2, 0, -1]]


def test_torch_export_of_the_model_is_refused_naming_the_graph_which_exports_as_named():
    """torch.export fails deep in the eager model (a data-dependent guard, dozens of lines);
    the model names the graph instead, and the graph exports as the message says."""
    model = small_detector().eval()
    images = images_of_sizes(SIZES[:2])
    with pytest.raises(RuntimeError, match=r"^torch\.export cannot trace FasterRCNN's forward"):
        torch.export.export(model, (images,))
    inputs = prepare_graph_inputs(model.transform, images)
    program = torch.export.export(DetectionGraph(model), inputs)
    with torch.no_grad():
        eager = model(images)
    assert sum(len(d["scores"]) for d in eager) > 0
    exported = program.module()(*inputs)
    for image, expected in enumerate(eager):  # normalised after resizing: float noise
        found = _unpadded(exported, image)
        assert torch.equal(found["labels"], expected["labels"])
        torch.testing.assert_close(found["scores"], expected["scores"], atol=1e-4, rtol=0)


def test_graph_refuses_a_float64_model():
    with pytest.raises(ValueError, match="float32"):
        DetectionGraph(models.small(3).double())


class _DoubledRoIAlign(MultiScaleRoIAlign):
    """A subclass pooling otherwise: the graph would pool it as its parent."""

    def forward(self, x, boxes, image_shapes):
        return super().forward(x, boxes, image_shapes) * 2


class _WrappedPooler(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x, boxes, image_shapes):
        return self.inner(x, boxes, image_shapes)


@pytest.mark.parametrize(
    "replace",
    [
        lambda pool: _DoubledRoIAlign(pool.featmap_names, pool.output_size, pool.sampling_ratio),
        lambda pool: MultiScaleRoIAlign(pool.featmap_names, (7, 5), pool.sampling_ratio),
        _WrappedPooler,
    ],
    ids=["subclass", "rectangular grid", "wrapper"],
)
def test_graph_refuses_a_pooler_it_would_not_pool_as(replace):
    model = models.small(3)
    model.roi_heads.box_roi_pool = replace(model.roi_heads.box_roi_pool)
    with pytest.raises(ValueError, match=r"^model\.roi_heads\.box_roi_pool is \w+\(.*export"):
        DetectionGraph(model)
