"""The explainer against the model's own assignment, sampler, proposals and detections, and
against labels counted by hand on a tiny anchor grid."""

import json
import time
import warnings
from dataclasses import replace
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch
from matplotlib.collections import LineCollection
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.text import Text
from PIL import Image

from exif_images import save_exif_jpeg
from faster_rcnn import models
from faster_rcnn.cli import main
from faster_rcnn.cli.explain import read_annotated_image
from faster_rcnn.data.dataset import as_float_image, read_image, read_image_levels
from faster_rcnn.insight import draw
from faster_rcnn.insight.draw import to_pil
from faster_rcnn.insight.explain import (
    CELL_ALPHAS,
    CELL_COLOURS,
    IGNORED_CODE,
    NEGATIVE_CODE,
    OUTSIDE_CODE,
    POSITIVE_CODE,
    cell_label_map,
    display_picture,
    draw_explanation,
    explain,
    explanation_figure,
    explanation_summary,
)
from faster_rcnn.insight.plots import save_figure
from faster_rcnn.model import FasterRCNN
from faster_rcnn.models import preset_config
from faster_rcnn.ops.boxes import clip_boxes_to_image, remove_small_boxes
from faster_rcnn.rpn.proposals import top_n_per_level
from faster_rcnn.train.checkpoint import load_model, save_model
from thread_counts import threads_at_calls

BOXES = torch.tensor([[20.0, 30.0, 120.0, 150.0], [150.0, 40.0, 190.0, 70.0], [60, 60, 80, 90.0]])


def square_anchor_model(allowed_border: float = -1) -> FasterRCNN:
    """The small backbone (strides 8, 16, 32, 64) with one square anchor per level, 2x the
    stride, centred on multiples of the stride; 64-px images are not resized."""
    config = preset_config("small", 4).replace(
        anchors={"sizes": ((16,), (32,), (64,), (128,)), "aspect_ratios": ((1.0,),) * 4},
        transform={"min_size": (64,), "max_size": 128},
        rpn={"fg_iou_thresh": 0.7, "allowed_border": allowed_border},
    )
    return FasterRCNN.from_config(config)


def seeded_small(seed: int = 0) -> FasterRCNN:
    """The small preset in eval mode, resizing to 160 / 256 px (quicker than 320 / 512)."""
    torch.manual_seed(seed)
    config = preset_config("small", 4).replace(transform={"min_size": (160,), "max_size": 256})
    return FasterRCNN.from_config(config).eval()


def smooth_image(height: int, width: int) -> torch.Tensor:
    """A gradient image (quick to encode as PNG), ``float[3, H, W]``."""
    y = torch.linspace(0, 1, height)[:, None].expand(height, width)
    x = torch.linspace(0, 1, width)[None, :].expand(height, width)
    return torch.stack([x, y, (x + y) / 2])


def model_anchors_and_labels(model: FasterRCNN, image: torch.Tensor, boxes: torch.Tensor):
    """Anchors and labels straight from the model's pieces, for comparison."""
    target = {"boxes": boxes, "labels": torch.ones(len(boxes), dtype=torch.int64)}
    batch = model.prepare_batch([image], [target])
    with torch.no_grad():
        features = list(model.features(batch.images).values())
    anchors = model.rpn.anchor_generator(batch.images, features)[0]
    size = batch.images.image_sizes[0]
    labels, _ = model.rpn.target_creator.assign_single(anchors, batch.targets[0]["boxes"], size)
    return anchors, labels


def test_labels_are_the_target_creators():
    model = seeded_small()
    image = torch.rand(3, 200, 260)
    explanation = explain(model, image, BOXES, with_proposals=False)
    anchors, labels = model_anchors_and_labels(model, image, BOXES)
    torch.testing.assert_close(explanation.anchors, anchors, rtol=0, atol=0)
    assert torch.equal(explanation.labels, labels)
    counts = explanation.counts()
    assert counts["positive"] == int((labels == 1).sum()) > 0
    assert counts["negative"] == int((labels == 0).sum())
    assert counts["ignored"] == int((labels == -1).sum()) > 0
    assert counts["outside"] == 0  # the small preset uses every anchor (allowed_border -1)
    assert sum(counts[k] for k in ("positive", "negative", "ignored")) == len(anchors)


@pytest.mark.parametrize(
    ("allowed_border", "expected"),
    [
        # The box is the 16-px anchor at (16, 16): its IoU is 1. Its four 16-px neighbours
        # overlap it by 128 / 384 = 1/3: ignored. The other 80 of the 8x8 + 4x4 + 2x2 + 1
        # anchors are below 0.3 (the diagonal ones 64 / 448, the 32-px one at (16, 16) 1/4).
        (-1, {"positive": 1, "ignored": 4, "negative": 80, "outside": 0}),
        # Anchors centred on row or column 0 reach past the 64-px image: 15 of 64, 7 of 16,
        # 3 of 4 and 1 of 1; the positive and the ignored ones are inside.
        (0, {"positive": 1, "ignored": 4, "negative": 54, "outside": 26}),
    ],
)
def test_labels_counted_by_hand_on_a_tiny_grid(allowed_border, expected):
    model = square_anchor_model(allowed_border)
    box = torch.tensor([[8.0, 8.0, 24.0, 24.0]])
    explanation = explain(model, torch.rand(3, 64, 64), box, with_proposals=False)
    assert model.training  # run in eval mode, given back as it was
    counts = explanation.counts()
    assert {k: counts[k] for k in expected} == expected
    assert counts["anchors"] == 85
    assert (explanation.labels[explanation.outside] == -1).all()
    # Panel 1 shows the cell of the box's best anchor: level 0, cell (2, 2), IoU 1.
    location = explanation.location
    assert (location.level, location.row, location.col) == (0, 2, 2)
    assert float(location.iou.max()) == 1.0
    assert [grid.grid_size for grid in explanation.levels] == [(8, 8), (4, 4), (2, 2), (1, 1)]
    assert [grid.stride for grid in explanation.levels] == [(8, 8), (16, 16), (32, 32), (64, 64)]


def test_panel_1_shows_the_best_anchor_where_every_anchor_crosses_the_border():
    # A 128 x 8 strip (not resized): every square anchor (16 px and up) reaches past it.
    model = square_anchor_model(allowed_border=0)
    box = torch.tensor([[40.0, 0.0, 56.0, 8.0]])
    explanation = explain(model, torch.rand(3, 8, 128), box, with_proposals=False)
    assert bool(explanation.outside.all())
    # The box's best anchor among them all (the 16-px one at x = 48), not cell (0, 0).
    location = explanation.location
    assert (location.level, location.row, location.col) == (0, 0, 6)
    assert float(location.iou.max()) == 0.5


def two_square_anchor_model(allowed_border: float = -1) -> FasterRCNN:
    """:func:`square_anchor_model` with two square anchors a cell: 2x and 3x the stride."""
    config = preset_config("small", 4).replace(
        anchors={
            "sizes": ((16, 24), (32, 48), (64, 96), (128, 192)),
            "aspect_ratios": ((1.0,),) * 4,
        },
        transform={"min_size": (64,), "max_size": 128},
        rpn={"fg_iou_thresh": 0.7, "allowed_border": allowed_border},
    )
    return FasterRCNN.from_config(config)


def test_panel_1_quotes_the_best_iou_of_an_anchor_inside_the_border():
    # The paper's border policy. The box (0, 0, 20, 20) is best met inside the image by
    # the 16-px anchor at (8, 8): 256 / 400 = 0.64; the 24-px one there, (-4, -4, 20, 20),
    # crosses the border with 400 / 576 = 0.69 and is never trained on.
    model = two_square_anchor_model(allowed_border=0)
    box = torch.tensor([[0.0, 0.0, 20.0, 20.0]])
    explanation = explain(model, torch.rand(3, 64, 64), box, with_proposals=False)
    location = explanation.location
    assert (location.level, location.row, location.col) == (0, 1, 1)
    torch.testing.assert_close(location.iou, torch.tensor([0.64, 400 / 576]))
    title = explanation_figure(explanation).axes[0].get_title(loc="left")
    assert title.endswith("best IoU 0.64 with the largest ground-truth box")


@pytest.mark.parametrize(
    ("half_side", "legend"),
    [
        # 13.1 px: the 16-px anchor meets it at 171.61 / 256 = 0.67 (its best: positive),
        # the 24-px one at 171.61 / 576 = 0.298, below 0.3: negative, not "0.30".
        (6.55, ["positive (1): IoU 0.67", "negative (1): IoU 0.29"]),
        # 12.86 px: 165.3 / 256 = 0.646 and 165.3 / 576 = 0.287, rounded as any other.
        (6.43, ["positive (1): IoU 0.65", "negative (1): IoU 0.29"]),
    ],
)
def test_panel_1_never_shows_a_negative_at_the_negative_threshold(half_side, legend):
    # A square box centred on the anchors at (16, 16).
    model = two_square_anchor_model()
    box = torch.tensor([[16 - half_side, 16 - half_side, 16 + half_side, 16 + half_side]])
    explanation = explain(model, torch.rand(3, 64, 64), box, with_proposals=False)
    location = explanation.location
    assert (location.level, location.row, location.col) == (0, 2, 2)
    texts = explanation_figure(explanation).axes[0].get_legend().get_texts()
    assert [text.get_text() for text in texts] == [*legend, "ground truth (1)"]


def test_panel_1_gives_the_stride_as_width_x_height_as_the_feature_map():
    # 160 x 208 (height x width), not resized, is padded to 160 x 224: the pool level
    # (stride-2 max pool of the 5 x 7 stride-32 map) has 3 x 4 cells, so torchvision's
    # strides are 160 // 3 = 53 rows and 224 // 4 = 56 columns.
    model = seeded_small()
    box = torch.tensor([[20.0, 10.0, 190.0, 150.0]])
    explanation = explain(model, torch.rand(3, 160, 208), box, with_proposals=False)
    grid = explanation.levels[explanation.location.level]
    assert (grid.name, grid.stride, grid.grid_size) == ("pool", (53, 56), (3, 4))
    title = explanation_figure(explanation).axes[0].get_title(loc="left")
    assert "level 'pool': stride 56x53 px, feature map 4x3, row 2, column 2\n" in title


def test_panel_1_gives_the_stride_in_the_pixels_it_draws_and_the_models():
    # 480 x 320 is resized to 240 x 160 (padded to 256 x 160): the stride-16 level's
    # anchors are 32 px apart as drawn, in the image's pixels, where the title said 16.
    box = torch.tensor([[100.0, 100.0, 200.0, 180.0]])
    explanation = explain(seeded_small(), torch.rand(3, 320, 480), box, with_proposals=False)
    grid = explanation.levels[explanation.location.level]
    assert (grid.name, grid.stride, grid.grid_size) == ("1", (16, 16), (10, 16))
    title = explanation_figure(explanation).axes[0].get_title(loc="left")
    assert "level '1': stride 32 px (16 px resized), feature map 16x10, row 4, column 5\n" in title
    level = explanation_summary(explanation)["levels"][1]
    assert (level["stride"], level["stride_in_image"]) == ([16, 16], [32.0, 32.0])


def test_proposal_panels_write_every_count_with_thousands_separators():
    """--top 100000 titled panel 4 "the top 1192 of 1,192 candidates"."""
    explanation = explain(seeded_small(), smooth_image(120, 160))
    candidates = len(explanation.proposals.candidates)
    assert candidates >= 1000  # the small preset's 500 best of each of its levels
    figure = explanation_figure(explanation, top_k=100_000)
    title = figure.axes[3].get_title(loc="left")
    assert title.startswith(f"4 · before NMS: the top {candidates:,} of {candidates:,} candidates")
    kept = len(explanation.proposals.boxes)
    assert figure.axes[4].get_title(loc="left").endswith(f"the top {kept:,} drawn")


def text_past_the_figure(figure: Figure) -> list[str]:
    """The first line of each panel title, and each legend, that reaches past the
    figure's edges once drawn."""
    figure.canvas.draw()
    renderer, frame = figure.canvas.get_renderer(), figure.bbox
    cut = []
    for ax in figure.axes:
        title = ax.get_title(loc="left")
        parts = [c for c in ax.get_children() if isinstance(c, Text) and c.get_text() == title]
        for part in [*parts, *([ax.get_legend()] if ax.get_legend() else [])]:
            box = part.get_window_extent(renderer)
            if box.x0 < frame.x0 or box.x1 > frame.x1 or box.y0 < frame.y0:
                cut.append(title.splitlines()[0])
    return cut


@pytest.mark.parametrize(("height", "width"), [(1000, 40), (40, 1000), (300, 400)])
def test_no_title_or_legend_runs_past_the_picture(height, width):
    # A tall image makes narrow panels: their titles began at the panel's left edge in
    # the middle of its column, and the third column's ran past the picture's right edge.
    explanation = explain(seeded_small(), torch.rand(3, height, width), BOXES[:1] / 5)
    assert text_past_the_figure(explanation_figure(explanation)) == []


@pytest.mark.parametrize(("height", "width"), [(1000, 40), (40, 1000)])
def test_panel_1_shows_a_strip_of_an_image_in_a_view_at_most_2_to_1(height, width):
    # The 160 / 256 resize makes it 10 x 256 px: its anchors (up to 34 px, 133 px in the
    # image) were drawn in a view of the whole 25:1 strip, a 0.3-inch speck.
    explanation = explain(seeded_small(), torch.rand(3, height, width), BOXES[:1] / 5)
    ax = explanation_figure(explanation).axes[0]
    (left, right), (bottom, top) = ax.get_xlim(), ax.get_ylim()
    view_w, view_h = right - left, bottom - top
    assert view_w / view_h == pytest.approx(0.5 if height > width else 2.0)
    anchors = explanation.to_original(explanation.anchors[explanation.location.anchor_indices])
    x1, y1 = anchors[:, :2].amin(dim=0).tolist()
    x2, y2 = anchors[:, 2:].amax(dim=0).tolist()
    assert left <= x1 and x2 <= right and top <= y1 and y2 <= bottom
    assert max(x2 - x1, y2 - y1) > max(view_w, view_h) / 8


def test_panels_of_a_wide_strip_of_an_image_span_the_pictures_width():
    # In three columns a 1600 x 60 image was drawn 5.4 inches wide, a strip 0.2 inches
    # tall in panels 2-6; a row each, it is drawn at the width of the whole figure.
    explanation = explain(seeded_small(), torch.rand(3, 60, 1600), BOXES[:1] / 5)
    figure = explanation_figure(explanation)
    figure.canvas.draw()
    inches = [ax.get_window_extent().height / figure.dpi for ax in figure.axes[1:]]
    assert len(inches) == 5 and min(inches) >= 0.9 * figure.get_figwidth() * 60 / 1600
    assert text_past_the_figure(figure) == []


@pytest.mark.parametrize(("height", "width"), [(900, 1200), (1200, 500), (150, 1200)])
def test_panels_2_to_6_draw_the_image_from_a_picture_of_their_size(height, width):
    # Each panel drew the image from a picture of up to 1200 px a side, resampled by
    # matplotlib at every draw (85 ms a panel) to the panel's 583 px.
    box = torch.tensor([[10.0, 10.0, 120.0, 100.0]])
    explanation = explain(seeded_small(), smooth_image(height, width), box)
    figure = explanation_figure(explanation)
    figure.canvas.draw()
    assert figure.axes[0].images[0].get_array().shape == (height, width, 3)  # it zooms in
    for ax in figure.axes[1:]:
        picture = ax.images[0].get_array()
        (x0, y0), (x1, y1) = ax.transData.transform([(0, 0), (width, height)])
        drawn = max(abs(x1 - x0), abs(y1 - y0))  # the image's longer side on the panel
        # Never upsampled (the strip); at most the panel's grid cell: a tall image's title
        # and legend take a fifth of it.
        assert min(drawn, max(height, width)) <= max(picture.shape) <= 1.2 * drawn
        assert picture.shape[0] / picture.shape[1] == pytest.approx(height / width, rel=0.02)


@pytest.mark.parametrize("max_side", [40, 20])
def test_uint8_levels_are_displayed_as_the_float_image_scaled_from_them(max_side):
    """As the readers' items and ``read_annotated_image`` give an image; downscaled too, in
    float: interpolated as levels, each pixel would be rounded to one."""
    levels = torch.randint(0, 256, (3, 30, 40), generator=torch.Generator().manual_seed(0))
    levels = levels.to(torch.uint8)
    expected = display_picture(as_float_image(levels), max_side)
    assert np.array_equal(display_picture(levels, max_side), expected)
    if max_side == 40:  # whole: the levels themselves
        assert np.array_equal(expected, levels.permute(1, 2, 0).numpy())


def test_cell_map_shows_each_cells_best_label():
    model = square_anchor_model(allowed_border=0)
    box = torch.tensor([[8.0, 8.0, 24.0, 24.0]])
    explanation = explain(model, torch.rand(3, 64, 64), box, with_proposals=False)
    codes, column_edges, row_edges = cell_label_map(explanation)
    assert codes.shape == (8, 8)  # the stride-8 level's cells, centred on its anchors
    # Halfway between the centres 0, 8, ..., 56; the last cell reaches the image's edge.
    edges = [0.0, 4.0, 12.0, 20.0, 28.0, 36.0, 44.0, 52.0, 64.0]
    assert column_edges.tolist() == row_edges.tolist() == edges
    assert codes[2, 2] == POSITIVE_CODE
    assert [int(codes[r, c]) for r, c in ((1, 2), (3, 2), (2, 1), (2, 3))] == [IGNORED_CODE] * 4
    # Row and column 0: every level's anchor there crosses the border; (1, 1) is inside.
    assert (codes[0] == OUTSIDE_CODE).all() and (codes[:, 0] == OUTSIDE_CODE).all()
    assert codes[1, 1] == NEGATIVE_CODE


def test_cell_map_edges_stop_at_the_image_in_the_batchs_padding():
    # 160 x 208, not resized, is padded to 160 x 224: the stride-8 map has 28 columns,
    # centred on 0 .. 216; the one on 208 keeps its left half, the one on 216 nothing.
    explanation = explain(seeded_small(), torch.rand(3, 160, 208), BOXES, with_proposals=False)
    _, column_edges, row_edges = cell_label_map(explanation)
    assert column_edges[-4:].tolist() == [196.0, 204.0, 208.0, 208.0]
    assert row_edges[[0, 1, -2, -1]].tolist() == [0.0, 4.0, 148.0, 160.0]


def test_the_saved_cell_map_covers_the_image_with_cells_centred_on_their_anchors(tmp_path):
    # A grey 64 x 64 image, the box on the 16-px anchor at (16, 16): along y = 16 the
    # cells are negative to x = 4, ignored to 12, positive to 20, ignored to 28, then
    # negative to the image's right edge; the map stopped at 60, a strip of grey.
    box = torch.tensor([[8.0, 8.0, 24.0, 24.0]])
    explanation = explain(square_anchor_model(), torch.full((3, 64, 64), 0.5), box)
    figure = explanation_figure(explanation)
    picture = np.asarray(Image.open(save_figure(figure, tmp_path / "explain.png")))
    ax = figure.axes[1]

    def drawn(x: float, y: float) -> list[int]:
        column, row = ax.transData.transform((x, y))
        return picture[round(picture.shape[0] - row), round(column)].tolist()

    def cell(code: int) -> list[int]:
        """A cell's colour over the image's grey (128)."""
        red, green, blue, _ = to_rgba(CELL_COLOURS[code])
        alpha = CELL_ALPHAS[code]
        return [round(255 * alpha * c + (1 - alpha) * 128) for c in (red, green, blue)]

    # Half a pixel either side of each edge, at 9 of the picture's pixels a pixel.
    expected = {
        3.5: NEGATIVE_CODE,
        4.5: IGNORED_CODE,
        11.5: IGNORED_CODE,
        12.5: POSITIVE_CODE,
        19.5: POSITIVE_CODE,
        20.5: IGNORED_CODE,
        27.5: IGNORED_CODE,
        28.5: NEGATIVE_CODE,
        63.5: NEGATIVE_CODE,
    }
    for x, code in expected.items():
        assert drawn(x, 16.0) == pytest.approx(cell(code), abs=2), x
    assert drawn(40.0, 63.5) == pytest.approx(cell(NEGATIVE_CODE), abs=2)


def test_the_labels_panel_outlines_positive_anchors_only_up_to_a_thousand():
    # The 19,212 positives of an image of 1,000 objects hid the cell map and the ground
    # truth under orange outlines. Here 400 boxes make 434 positives, 1,600 make 1,171;
    # the outlines are those not white (the ground truth's).
    image = torch.rand(3, 256, 256)
    for step, positives, outlined in ((12.0, 434, True), (6.0, 1171, False)):
        corners = torch.cartesian_prod(torch.arange(0, 240, step), torch.arange(0, 240, step))
        boxes = torch.cat([corners, corners + 16], dim=1)
        explanation = explain(seeded_small(), image, boxes, with_proposals=False)
        assert explanation.counts()["positive"] == positives
        ax = explanation_figure(explanation).axes[1]
        lines = [c for c in ax.collections if isinstance(c, LineCollection)]  # not the map
        outlines = [c for c in lines if tuple(c.get_color()[0]) != (1, 1, 1, 1)]
        labels = [text.get_text() for text in ax.get_legend().get_texts()]
        assert ax.get_title(loc="left").endswith("not outlined: over 1,000") is not outlined
        assert (len(outlines), "positive anchor" in labels) == (int(outlined), outlined)
        if outlined:
            assert len(outlines[0].get_segments()) == positives


def test_sampled_batch_is_the_samplers_for_the_seed():
    model = seeded_small()
    # 30 boxes of 24 to 53 px: more than 128 positives.
    corners = torch.cartesian_prod(torch.arange(6.0) * 50, torch.arange(5.0) * 45)
    boxes = torch.cat([corners, corners + torch.arange(24.0, 54.0)[:, None]], dim=1)
    image = torch.rand(3, 240, 320)
    explanation = explain(model, image, boxes, seed=7, with_proposals=False)
    _, labels = model_anchors_and_labels(model, image, boxes)
    generator = torch.Generator().manual_seed(7)
    positive, negative = model.rpn.fg_bg_sampler([labels], None, generator)
    assert torch.equal(explanation.sampled_positive, positive[0].bool())
    assert torch.equal(explanation.sampled_negative, negative[0].bool())
    counts = explanation.counts()
    batch_size = model.config.rpn.batch_size_per_image
    assert counts["positive"] > batch_size // 2
    assert counts["sampled_positive"] == batch_size // 2
    assert counts["sampled_positive"] + counts["sampled_negative"] == batch_size
    assert (labels[explanation.sampled_positive] == 1).all()
    assert (labels[explanation.sampled_negative] == 0).all()
    other = explain(model, image, boxes, seed=8, with_proposals=False)
    assert not torch.equal(other.sampled_negative, explanation.sampled_negative)


def test_the_sampled_batchs_title_writes_its_counts_as_the_labels_panel_does():
    # 256 boxes of 20 px, 20 px apart: 2,560 positives, written '2560' in panel 3 where
    # panel 2 and the negatives beside them read '2,560'.
    torch.manual_seed(0)
    model = FasterRCNN.from_config(preset_config("small", 4)).eval()
    corners = torch.cartesian_prod(torch.arange(16.0) * 20, torch.arange(16.0) * 20)
    boxes = torch.cat([corners, corners + 19], dim=1)
    explanation = explain(model, smooth_image(320, 320), boxes, with_proposals=False)
    counts = explanation.counts()
    assert (counts["positive"], counts["negative"]) == (2560, 14300)
    figure = explanation_figure(explanation)
    title = figure.axes[2].get_title(loc="left")
    assert title.endswith("\n128 of 2,560 positive, 128 of 14,300 negative")
    legend = [text.get_text() for text in figure.axes[1].get_legend().get_texts()]
    assert "positive: 2,560" in legend


def test_proposals_and_detections_are_the_models():
    model = seeded_small(3)
    image = torch.rand(3, 180, 240)
    explanation = explain(model, image, BOXES)
    detections, proposals = model.detect_with_proposals([image])
    stages = explanation.proposals
    assert stages is not None
    torch.testing.assert_close(stages.boxes, proposals[0]["boxes"], rtol=0, atol=0)
    torch.testing.assert_close(stages.scores, proposals[0]["scores"], rtol=0, atol=0)
    for key in ("boxes", "labels", "scores"):
        torch.testing.assert_close(stages.detections[key], detections[0][key], rtol=0, atol=0)
    assert len(stages.candidates) == candidates_entering_nms(model, image)
    assert len(stages.boxes) <= model.config.rpn.post_nms_top_n_test < len(stages.candidates)
    assert (stages.candidate_scores[:-1] >= stages.candidate_scores[1:]).all()


def test_explain_works_on_one_thread_and_the_models_forward_on_the_users(monkeypatch, two_threads):
    # explain's own work is many small operations on anchors and boxes: on 2 threads of a
    # loaded 2-core machine it took 0.12-0.81 s against 14-62 ms on 1, and its figure
    # 1.4-1.9 s against 0.4 s (benchmarks/bench_explain.md).
    import faster_rcnn.insight.explain as explain_module
    from faster_rcnn.roi_heads.network import RoIHeads

    model = seeded_small(3)
    backbone = threads_at_calls(monkeypatch, model, "features")
    box_head = threads_at_calls(monkeypatch, RoIHeads, "forward")
    targets = threads_at_calls(monkeypatch, explain_module, "_anchor_targets")
    proposals = threads_at_calls(monkeypatch, explain_module, "_proposals")
    drawn = threads_at_calls(monkeypatch, explain_module, "label_codes")
    explanation = explain(model, torch.rand(3, 120, 160), BOXES)
    explanation_figure(explanation)
    explanation_summary(explanation)
    assert backbone == box_head == [2] and targets == proposals == [1]
    assert drawn and set(drawn) == {1}
    assert torch.get_num_threads() == 2


def test_detection_captions_stay_inside_the_panel():
    # Clipped to the panel, a caption above a box at the picture's top was lost whole, and
    # one beside its right edge was cut: the first goes into its box, the second ends at
    # its box's right edge.
    explanation = explain(seeded_small(3), torch.rand(3, 200, 300), BOXES[:1])
    assert explanation.proposals is not None
    boxes = torch.tensor(
        [[10.0, 0.0, 60.0, 40.0], [280.0, 100.0, 299.0, 120.0], [100.0, 80.0, 160.0, 140.0]]
    )
    detections = {"boxes": boxes, "labels": torch.tensor([1, 2, 3]), "scores": torch.ones(3)}
    explanation.proposals = replace(explanation.proposals, detections=detections)
    figure = explanation_figure(explanation)
    figure.canvas.draw()
    ax = figure.axes[5]
    captions = [t for t in ax.texts if t.get_text().endswith("1.00")]
    panel = ax.get_window_extent()
    assert len(captions) == 3
    for caption in captions:
        extent = caption.get_window_extent()
        assert panel.x0 <= extent.x0 and extent.x1 <= panel.x1, caption.get_text()
        assert panel.y0 <= extent.y0 and extent.y1 <= panel.y1, caption.get_text()
    # The caption of the box in the middle stays above its top-left corner.
    assert [(c.get_position(), c.get_ha(), c.get_va()) for c in captions] == [
        ((10.0, 0.0), "left", "top"),
        ((299.0, 100.0), "right", "bottom"),
        ((100.0, 80.0), "left", "bottom"),
    ]


def test_detection_captions_keep_their_padding_inside_the_panel_at_its_corners():
    # Measured without their 1-pt padding, captions of boxes at the picture's top-left and
    # top-right corners moved into their boxes but kept the padding past the panel's edge.
    explanation = explain(seeded_small(3), torch.rand(3, 200, 300), BOXES[:1])
    assert explanation.proposals is not None
    boxes = torch.tensor([[0.0, 0.0, 60.0, 40.0], [270.0, 0.0, 300.0, 40.0]])
    detections = {"boxes": boxes, "labels": torch.tensor([1, 2]), "scores": torch.ones(2)}
    explanation.proposals = replace(explanation.proposals, detections=detections)
    figure = explanation_figure(explanation)
    figure.canvas.draw()
    ax = figure.axes[5]
    panel = ax.get_window_extent()
    captions = [t for t in ax.texts if t.get_text().endswith("1.00")]
    assert [(c.get_ha(), c.get_va()) for c in captions] == [("left", "top"), ("right", "top")]
    for caption in captions:
        drawn = caption.get_bbox_patch().get_window_extent()
        text = caption.get_window_extent()
        assert drawn.width > text.width  # the padding is in what is measured
        # Inside, to float rounding (a pixel at 110 dpi is 0.65 pt).
        assert panel.x0 - 1e-6 <= drawn.x0 and drawn.x1 <= panel.x1 + 1e-6, caption.get_text()
        assert panel.y0 - 1e-6 <= drawn.y0 and drawn.y1 <= panel.y1 + 1e-6, caption.get_text()
    # Each touches the corner's two edges: moved in by no more than it must.
    left, right = (c.get_bbox_patch().get_window_extent() for c in captions)
    assert (left.x0, left.y1) == (pytest.approx(panel.x0), pytest.approx(panel.y1))
    assert (right.x1, right.y1) == (pytest.approx(panel.x1), pytest.approx(panel.y1))


def test_detection_captions_never_cover_each_other():
    # Each was drawn above its box's top-left corner: boxes a few pixels apart wrote their
    # captions over each other. The best keeps its place, the next go to another corner of
    # their box, and one with no free corner is left out, as in predict's pictures.
    explanation = explain(seeded_small(3), torch.rand(3, 200, 300), BOXES[:1])
    assert explanation.proposals is not None
    boxes = torch.tensor(
        [[102.0, 82, 170, 120], [100.0, 80, 220, 150], [101.0, 81, 165, 118], [104, 84, 250, 160]]
    )
    scores = torch.tensor([0.7, 0.9, 0.65, 0.8])
    detections = {"boxes": boxes, "labels": torch.ones(4, dtype=torch.int64), "scores": scores}
    explanation.proposals = replace(explanation.proposals, detections=detections)
    figure = explanation_figure(explanation)
    figure.canvas.draw()
    ax = figure.axes[5]
    shown = [t for t in ax.texts if t.get_visible()]
    assert [(t.get_text(), t.get_position(), t.get_ha(), t.get_va()) for t in shown] == [
        ("class1 0.90", (100.0, 80.0), "left", "bottom"),  # above the top-left corner
        ("class1 0.80", (250.0, 84.0), "right", "bottom"),  # above the top-right corner
        ("class1 0.70", (102.0, 82.0), "left", "top"),  # inside the top-left corner
    ]
    drawn = [t.get_bbox_patch().get_window_extent() for t in shown]
    for i, box in enumerate(drawn):
        assert not any(box.overlaps(other) for other in drawn[i + 1 :]), shown[i].get_text()


def test_panel_6_writes_a_class_name_in_a_font_that_has_its_letters(monkeypatch):
    # Its captions and legend were DejaVu Sans alone: '⌚' drew as a box, with
    # matplotlib's warning of a missing glyph. predict's pictures already fell back.
    fonts = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    monkeypatch.setattr(draw, "fallback_fonts", lambda: [fonts / "STIXGeneral.ttf"])
    draw.caption_font_file.cache_clear()
    explanation = explain(seeded_small(3), torch.rand(3, 200, 300), BOXES[:1])
    assert explanation.proposals is not None
    explanation.class_names = ("⌚ watch", "кошка", "cat")
    boxes = torch.tensor([[10.0, 20.0, 60.0, 60.0], [100.0, 80.0, 160.0, 140.0]])
    detections = {"boxes": boxes, "labels": torch.tensor([1, 2]), "scores": torch.ones(2)}
    explanation.proposals = replace(explanation.proposals, detections=detections)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no glyph missing
        figure = explanation_figure(explanation)
        figure.canvas.draw()
    draw.caption_font_file.cache_clear()
    ax = figure.axes[5]
    texts = [*ax.texts, *ax.get_legend().get_texts()]
    fonts_of = {t.get_text(): Path(t.get_fontproperties().get_file() or "").name for t in texts}
    assert fonts_of == {
        "⌚ watch 1.00": "STIXGeneral.ttf",
        "кошка 1.00": "",  # matplotlib's default, DejaVu Sans
        "⌚ watch (1)": "STIXGeneral.ttf",
        "кошка (1)": "",
        "ground truth (1)": "",
    }
    assert {t.get_fontsize() for t in texts} == {8.0}


def candidates_entering_nms(model: FasterRCNN, image: torch.Tensor) -> int:
    """The boxes NMS receives, counted step by step as the RPN's selection makes them."""
    rpn = model.rpn
    batch = model.prepare_batch([image])
    with torch.no_grad():
        prediction = rpn.predict(batch.images, model.features(batch.images))
    decoded = rpn.box_coder.decode(prediction.pred_bbox_deltas, prediction.anchors).view(-1, 4)
    objectness = prediction.objectness.view(1, -1)
    top = top_n_per_level(objectness, prediction.num_anchors_per_level, rpn.pre_nms_top_n())[0]
    boxes = clip_boxes_to_image(decoded[top], batch.images.image_sizes[0])
    keep = remove_small_boxes(boxes, rpn.min_size)
    return int((torch.sigmoid(objectness[0, top[keep]]) >= rpn.score_thresh).sum())


def test_without_ground_truth_every_anchor_is_negative():
    model = seeded_small()
    explanation = explain(model, torch.rand(3, 100, 200), with_proposals=False)
    counts = explanation.counts()
    assert counts["negative"] == counts["anchors"]
    assert counts["sampled_negative"] == model.config.rpn.batch_size_per_image
    # Panel 1: the middle level's cell at the centre of the 128 x 256 resized image.
    location = explanation.location
    grid = explanation.levels[location.level]
    assert location.level == len(explanation.levels) // 2 and location.gt_index is None
    assert (location.row * grid.stride[0], location.col * grid.stride[1]) == (64, 128)


def test_dense_ground_truth_on_a_large_image_is_quick(tmp_path):
    generator = torch.Generator().manual_seed(0)
    corners = torch.rand(300, 2, generator=generator) * torch.tensor([1950.0, 1450.0])
    boxes = torch.cat([corners, corners + 8 + 40 * torch.rand(300, 2, generator=generator)], 1)
    model = models.small(num_classes=4).eval()  # its own 320 / 512 resize
    # This process's CPU seconds, which other processes sharing the cores leave as they
    # are: 3 to 4, where the wall clock read 12 with the cores shared five ways.
    start = time.process_time()
    explanation = explain(model, smooth_image(1500, 2000), boxes, ("cell",) * 300)
    path = draw_explanation(explanation, tmp_path / "dense.png")
    assert time.process_time() - start < 20
    summary = json.loads(path.with_suffix(".json").read_text())
    assert summary["counts"] == explanation.counts() and len(summary["ground_truth"]) == 300
    assert path.stat().st_size > 10_000


def write_voc(path: Path, objects: list[tuple[str, list[int]]]) -> None:
    """A LabelImg XML of 1-based inclusive boxes ``xmin ymin xmax ymax``."""
    boxes = "".join(
        f"<object><name>{name}</name><bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin>"
        f"<xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>"
        for name, (x1, y1, x2, y2) in objects
    )
    path.write_text(
        f"<annotation><size><width>160</width><height>120</height></size>{boxes}</annotation>"
    )


def test_cli_with_a_model_and_voc_annotations(tmp_path, capsys):
    torch.manual_seed(0)
    save_model(models.small(num_classes=4), tmp_path / "model.safetensors")
    to_pil(smooth_image(120, 160)).save(tmp_path / "a.png")
    write_voc(tmp_path / "a.xml", [("cat", [11, 21, 90, 100]), ("dog", [100, 10, 150, 60])])
    out = tmp_path / "out" / "a.png"
    argv = ["explain", str(tmp_path / "a.png"), "--annotations", str(tmp_path / "a.xml")]
    argv += ["--model", str(tmp_path / "model.safetensors"), "--out", str(out), "--seed", "3"]
    assert main(argv) == 0
    summary = json.loads(out.with_suffix(".json").read_text())
    # The same numbers as the explainer on the decoded PNG with the VOC boxes made 0-based.
    model = load_model(tmp_path / "model.safetensors")
    boxes = torch.tensor([[10.0, 20.0, 90.0, 100.0], [99.0, 9.0, 150.0, 60.0]])
    expected = explain(model, read_image(tmp_path / "a.png"), boxes, seed=3)
    assert summary["counts"] == expected.counts()
    assert [gt["name"] for gt in summary["ground_truth"]] == ["cat", "dog"]
    assert summary["proposals"]["after_nms"] == len(expected.proposals.boxes)
    assert "-> " in capsys.readouterr().out


def test_cli_skip_difficult_labels_the_anchors_as_train_skip_difficult_trains(tmp_path, capsys):
    # The dog is difficult: train trains on it by default, and without it where
    # --skip-difficult; explain labelled the anchors against it either way.
    to_pil(smooth_image(120, 160)).save(tmp_path / "a.png")
    (tmp_path / "a.xml").write_text(
        "<annotation><size><width>160</width><height>120</height></size>"
        "<object><name>cat</name><difficult>0</difficult><bndbox><xmin>11</xmin>"
        "<ymin>21</ymin><xmax>90</xmax><ymax>100</ymax></bndbox></object>"
        "<object><name>dog</name><difficult>1</difficult><bndbox><xmin>100</xmin>"
        "<ymin>10</ymin><xmax>150</xmax><ymax>60</ymax></bndbox></object></annotation>"
    )
    argv = ["explain", str(tmp_path / "a.png"), "--annotations", str(tmp_path / "a.xml")]
    torch.manual_seed(0)  # as explain builds the preset for --seed 0
    model = FasterRCNN.from_config(preset_config("small"))
    cat = torch.tensor([[10.0, 20.0, 90.0, 100.0]])
    for skip, names in (([], ["cat", "dog"]), (["--skip-difficult"], ["cat"])):
        out = tmp_path / f"out{len(skip)}.png"
        assert main([*argv, *skip, "--out", str(out)]) == 0
        summary = json.loads(out.with_suffix(".json").read_text())
        assert [gt["name"] for gt in summary["ground_truth"]] == names
    expected = explain(model, read_image(tmp_path / "a.png"), cat, seed=0)
    assert summary["counts"] == expected.counts()
    # Only a VOC file marks objects difficult.
    capsys.readouterr()
    assert main(["explain", str(tmp_path / "a.png"), "--skip-difficult"]) == 2
    assert capsys.readouterr().err == (
        "faster-rcnn: error: --skip-difficult has no effect without a VOC .xml as "
        "--annotations: only such a file marks objects difficult\n"
    )


def test_cli_draws_the_detections_score_asks_for_under_the_head_s_threshold(tmp_path, capsys):
    """A COCO detector's random class scores are near 1 / 91, under the head's 0.05: with
    --score 0.001 panel 6 said "0 with score >= 0.001" of the none the head returned."""
    torch.manual_seed(0)
    save_model(models.small(num_classes=91), tmp_path / "coco.safetensors")
    to_pil(smooth_image(120, 160)).save(tmp_path / "a.png")
    argv = ["explain", str(tmp_path / "a.png"), "--model", str(tmp_path / "coco.safetensors")]
    assert main([*argv, "--score", "0.001", "--out", str(tmp_path / "a_out.png")]) == 0
    assert capsys.readouterr().out.startswith(
        "drawing detections down to score 0.001 (the model's threshold: 0.05)\n"
    )
    detections = json.loads((tmp_path / "a_out.json").read_text())["proposals"]["detections"]
    scores = [detection["score"] for detection in detections]
    assert len(scores) == 100 and min(scores) >= 0.001 and max(scores) < 0.05
    # Above the head's threshold it is left as it is, and nothing is said.
    assert main([*argv, "--score", "0.3", "--out", str(tmp_path / "b_out.png")]) == 0
    assert not capsys.readouterr().out.startswith("drawing")
    assert json.loads((tmp_path / "b_out.json").read_text())["proposals"]["detections"] == []


def test_cli_draws_no_detections_of_a_box_head_never_trained(tmp_path, capsys):
    # A model of `train --scheme rpn`: its RPN learned, its box head never did.
    torch.manual_seed(0)
    save_model(models.small(num_classes=4), tmp_path / "rpn.safetensors", box_head_trained=False)
    to_pil(smooth_image(120, 160)).save(tmp_path / "a.png")
    argv = ["explain", str(tmp_path / "a.png"), "--model", str(tmp_path / "rpn.safetensors")]
    assert main([*argv, "--out", str(tmp_path / "a_out.png")]) == 0
    assert "its box head never was" in capsys.readouterr().err
    proposals = json.loads((tmp_path / "a_out.json").read_text())["proposals"]
    assert proposals["detections"] is None and proposals["after_nms"] > 0
    with pytest.warns(UserWarning, match="its box head never was"):
        model = load_model(tmp_path / "rpn.safetensors")
    explanation = explain(model, smooth_image(120, 160), with_detections=False)
    title = explanation_figure(explanation).axes[5].get_title(loc="left")
    assert title.startswith("6 · no detections: the box head was never trained\n")


def test_cli_without_annotations_or_model(tmp_path):
    to_pil(smooth_image(90, 120)).save(tmp_path / "b.png")
    assert main(["explain", str(tmp_path / "b.png"), "--out", str(tmp_path / "b_out.png")]) == 0
    summary = json.loads((tmp_path / "b_out.json").read_text())
    assert summary["counts"]["positive"] == 0 and "proposals" not in summary
    assert summary["counts"]["negative"] == summary["counts"]["anchors"]


def test_cli_errors_are_one_line(tmp_path, capsys):
    to_pil(torch.rand(3, 40, 40)).save(tmp_path / "c.png")
    assert main(["explain", str(tmp_path / "c.png"), "--annotations", str(tmp_path / "x.xml")]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0
    (tmp_path / "c.tsv").write_text("1\t2")
    assert main(["explain", str(tmp_path / "c.png"), "--annotations", str(tmp_path / "c.tsv")]) == 2
    assert "YOLO .txt" in capsys.readouterr().err
    (tmp_path / "c.csv").write_text("1,2")
    assert main(["explain", str(tmp_path / "c.png"), "--annotations", str(tmp_path / "c.csv")]) == 2
    said = capsys.readouterr().err
    assert said.startswith(f"faster-rcnn: error: {tmp_path / 'c.csv'}, line 1: a row of 2 fields")
    assert said.count("\n") == 1
    # Another image's XML, by its <filename> and its own name: refused, not drawn.
    other = tmp_path / "d.xml"
    other.write_text("<annotation><filename>d.jpg</filename></annotation>")
    assert main(["explain", str(tmp_path / "c.png"), "--annotations", str(other)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"faster-rcnn: error: {other} annotates d.jpg, not c.png"
    )


def test_cli_names_the_file_of_an_image_too_elongated_to_resize(tmp_path, capsys):
    """The model's own check named it "image 0"."""
    to_pil(torch.rand(3, 1, 2000)).save(tmp_path / "strip.png")
    assert main(["explain", str(tmp_path / "strip.png"), "--out", str(tmp_path / "o.png")]) == 2
    assert capsys.readouterr().err == (
        f"faster-rcnn: error: {tmp_path / 'strip.png'}: 2000x1 (width x height) is too "
        "elongated to resize to the model's min_size 320 / max_size 512: a side would shrink "
        "to 0 pixels\n"
    )
    assert [p.name for p in tmp_path.iterdir()] == ["strip.png"]


def test_cli_refuses_an_out_that_would_replace_what_it_reads(tmp_path, capsys):
    """``--out`` the image itself, or the PNG whose JSON of numbers is the COCO file read,
    wrote the explanation over them; a folder was written as ``<folder>.png``."""
    image = tmp_path / "f.png"
    to_pil(smooth_image(40, 40)).save(image)
    coco = tmp_path / "boxes.json"
    _one_image_coco(coco, "f.png", (40, 40), "cat", [1, 2, 10, 20])
    kept = image.read_bytes(), coco.read_bytes()
    argv = ["explain", str(image), "--annotations", str(coco), "--out"]
    assert main([*argv, str(image)]) == 2
    assert capsys.readouterr().err == (
        f"faster-rcnn: error: --out {image} would write {image} over the image, which it reads\n"
    )
    assert main([*argv, str(tmp_path / "boxes.png")]) == 2
    assert capsys.readouterr().err.endswith(
        f"would write {coco} over --annotations, which it reads\n"
    )
    assert main([*argv, str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        f"faster-rcnn: error: --out {tmp_path} is a folder: name the picture file to write\n"
    )
    assert (image.read_bytes(), coco.read_bytes()) == kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["boxes.json", "f.png"]


def _one_image_coco(
    path: Path, file_name: str, size: tuple[int, int], name: str, bbox: list[float]
) -> None:
    """A COCO file of one ``(width, height)`` image with one box of class ``name``."""
    coco = {
        "images": [{"id": 5, "file_name": file_name, "width": size[0], "height": size[1]}],
        "categories": [{"id": 3, "name": name}],
        "annotations": [{"id": 1, "image_id": 5, "category_id": 3, "bbox": bbox}],
    }
    path.write_text(json.dumps(coco))


def test_yolo_and_coco_annotations(tmp_path):
    to_pil(torch.rand(3, 40, 80)).save(tmp_path / "d.png")
    (tmp_path / "labels").mkdir()
    (tmp_path / "classes.txt").write_text("cat\ndog\n")
    (tmp_path / "labels" / "d.txt").write_text("1 0.5 0.5 0.5 0.25\n")
    image, boxes, names = read_annotated_image(tmp_path / "labels" / "d.txt", tmp_path / "d.png")
    assert torch.equal(image, read_image_levels(tmp_path / "d.png"))
    torch.testing.assert_close(boxes, torch.tensor([[20.0, 15.0, 60.0, 25.0]]))
    assert names == ("dog",)
    _one_image_coco(tmp_path / "d.json", "images/d.png", (80, 40), "cat", [1, 2, 10, 20])
    image, boxes, names = read_annotated_image(tmp_path / "d.json", tmp_path / "d.png")
    assert torch.equal(image, read_image_levels(tmp_path / "d.png"))  # file_name is elsewhere
    torch.testing.assert_close(boxes, torch.tensor([[1.0, 2.0, 11.0, 22.0]]))
    assert names == ("cat",)
    with pytest.raises(ValueError, match=r"no image named 'e\.png'"):
        read_annotated_image(tmp_path / "d.json", tmp_path / "e.png")
    # A YOLO label file is its image's by name alone: another image's is refused.
    to_pil(torch.rand(3, 40, 80)).save(tmp_path / "e.png")
    with pytest.raises(ValueError, match=r"d\.txt labels d\.\*, not e\.png$"):
        read_annotated_image(tmp_path / "labels" / "d.txt", tmp_path / "e.png")


def test_csv_annotations_give_the_rows_of_the_image_of_that_name(tmp_path):
    """Rows of other images left out; the image's own clipped to it, as the CSV reader
    clips them; a CSV without the image refused by name."""
    to_pil(torch.rand(3, 40, 80)).save(tmp_path / "d.png")
    csv_file = tmp_path / "_annotations.csv"
    csv_file.write_text(
        "filename,width,height,class,xmin,ymin,xmax,ymax\n"
        "train/d.png,80,40,dog,2,3,20,30\n"
        "other.png,50,50,cat,1,1,9,9\n"
        "train/d.png,80,40,cat,70,30,90,45\n"
    )
    with pytest.warns(UserWarning, match=r"1 box clipped to the image \(line 4, train/d\.png"):
        image, boxes, names = read_annotated_image(csv_file, tmp_path / "d.png")
    assert torch.equal(image, read_image_levels(tmp_path / "d.png"))
    assert torch.equal(boxes, torch.tensor([[2.0, 3.0, 20.0, 30.0], [70.0, 30.0, 80.0, 40.0]]))
    assert names == ("dog", "cat")
    with pytest.raises(ValueError) as refused:
        read_annotated_image(csv_file, tmp_path / "e.png")
    assert str(refused.value) == f"{csv_file} has no row of an image named 'e.png'"


def test_labelme_annotations_give_the_files_boxes_as_the_labelme_reader_reads_them(tmp_path):
    """A LabelMe .json, told from a COCO one by its content: a rectangle drawn either way,
    a circle's box clipped to the image, a point skipped with a warning; another image's
    file refused by its imagePath."""
    to_pil(torch.rand(3, 40, 80)).save(tmp_path / "d.png")
    shapes = [
        {"label": "dog", "points": [[30, 25], [4, 2]], "shape_type": "rectangle"},
        {"label": "cat", "points": [[75, 35], [75, 43]], "shape_type": "circle"},  # radius 8
        {"label": "cat", "points": [[5, 5]], "shape_type": "point"},
    ]
    file = tmp_path / "d.json"
    file.write_text(
        json.dumps({"shapes": shapes, "imagePath": "d.png", "imageHeight": 40, "imageWidth": 80})
    )
    with pytest.warns(UserWarning) as warned:
        image, boxes, names = read_annotated_image(file, tmp_path / "d.png")
    assert [str(w.message) for w in warned] == [
        f"{file}: 1 shape marks no box and is skipped (1 point): d.json (1)",
        f"{file}: 1 box clipped to the image (d.json shape 1 'cat' [67, 27, 83, 43] on 80x40)",
    ]
    assert torch.equal(image, read_image_levels(tmp_path / "d.png"))
    assert torch.equal(boxes, torch.tensor([[4.0, 2.0, 30.0, 25.0], [67.0, 27.0, 80.0, 40.0]]))
    assert names == ("dog", "cat")
    to_pil(torch.rand(3, 40, 80)).save(tmp_path / "e.png")
    with pytest.raises(ValueError) as refused:
        read_annotated_image(file, tmp_path / "e.png")
    assert str(refused.value) == f"{file} annotates d.png, not e.png"


def test_a_yolo_class_without_a_name_is_refused_naming_its_line_and_the_names_source(tmp_path):
    """As the YOLO reader refuses it: the line, the ids the names allow and where they are
    read (a names file found, or the model's), with how to give others."""
    to_pil(torch.rand(3, 40, 80)).save(tmp_path / "d.png")
    (tmp_path / "d.txt").write_text("0 0.5 0.5 0.5 0.25\n\n2 0.5 0.5 0.1 0.1\n")
    hint = "; give the names with --classes FILE, one a line"
    with pytest.raises(ValueError) as refused:
        read_annotated_image(tmp_path / "d.txt", tmp_path / "d.png", None, ["cat", "dog"])
    assert str(refused.value) == (
        f"{tmp_path / 'd.txt'}, line 3: class 2 is not among the 2 classes named in the model "
        f"(ids 0 to 1){hint}"
    )
    (tmp_path / "classes.txt").write_text("cat\n")
    with pytest.raises(ValueError) as refused:
        read_annotated_image(tmp_path / "d.txt", tmp_path / "d.png", None, ["cat", "dog"])
    assert str(refused.value) == (
        f"{tmp_path / 'd.txt'}, line 3: class 2 is not among the 1 class named in "
        f"{tmp_path / 'classes.txt'} (id 0){hint}"
    )


def test_a_folder_given_as_the_annotations_or_the_classes_is_named_a_folder(tmp_path, capsys):
    """--annotations Annotations/ or --classes labels/ said the folder "does not exist"."""
    to_pil(torch.rand(3, 40, 80)).save(tmp_path / "d.png")
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "d.txt").write_text("0 0.5 0.5 0.5 0.25\n")
    explain = ["explain", str(tmp_path / "d.png"), "--out", str(tmp_path / "x.png")]
    assert main([*explain, "--annotations", str(tmp_path / "labels")]) == 2
    said = f"faster-rcnn: error: {tmp_path / 'labels'} is a folder, not an annotation file\n"
    assert capsys.readouterr().err == said
    argv = [*explain, "--annotations", str(tmp_path / "labels" / "d.txt")]
    assert main([*argv, "--classes", str(tmp_path / "labels")]) == 2
    said = f"faster-rcnn: error: {tmp_path / 'labels'} is a folder, not a classes file\n"
    assert capsys.readouterr().err == said
    assert not (tmp_path / "x.png").exists()


def test_an_exif_tagged_image_is_turned_as_its_annotations_reader_turns_it(tmp_path):
    """e.jpg is stored 40 wide and 20 high with orientation 6 (shown 20 wide, 40 high). A
    YOLO label is read on the upright image; a VOC <size> or COCO record of the turned
    size turns it too; a VOC <size> of the stored size leaves it as stored."""
    save_exif_jpeg(tmp_path / "e.jpg", (40, 20), orientation=6)
    stored = read_image_levels(tmp_path / "e.jpg")
    turned = torch.rot90(stored, k=-1, dims=(1, 2))
    (tmp_path / "e.txt").write_text("0 0.5 0.5 1 1\n")
    image, boxes, _ = read_annotated_image(tmp_path / "e.txt", tmp_path / "e.jpg", None, ["a"])
    assert torch.equal(image, turned)
    assert torch.equal(boxes, torch.tensor([[0.0, 0, 20, 40]]))
    for width, height, expected in [(20, 40, turned), (40, 20, stored)]:
        (tmp_path / "e.xml").write_text(
            f"<annotation><size><width>{width}</width><height>{height}</height></size><object>"
            "<name>a</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>30</xmax><ymax>30</ymax>"
            "</bndbox></object></annotation>"
        )
        image, boxes, _ = read_annotated_image(tmp_path / "e.xml", tmp_path / "e.jpg")
        assert torch.equal(image, expected)
        assert torch.equal(boxes, torch.tensor([[0.0, 0, min(width, 30), min(height, 30)]]))
    _one_image_coco(tmp_path / "e.json", "e.jpg", (20, 40), "a", [0, 25, 20, 15])
    image, boxes, _ = read_annotated_image(tmp_path / "e.json", tmp_path / "e.jpg")
    assert torch.equal(image, turned)
    assert torch.equal(boxes, torch.tensor([[0.0, 25, 20, 40]]))


def test_cli_without_annotations_reads_an_exif_tagged_image_upright_as_predict_does(tmp_path):
    """e.jpg is stored 40 wide and 20 high with orientation 6: without annotations it was
    explained as stored, sideways, where predict detects it upright (20 wide, 40 high)."""
    save_exif_jpeg(tmp_path / "e.jpg", (40, 20), orientation=6)
    assert main(["explain", str(tmp_path / "e.jpg"), "--out", str(tmp_path / "e_out.png")]) == 0
    summary = json.loads((tmp_path / "e_out.json").read_text())
    assert summary["image_size"] == [40, 20]


@pytest.mark.parametrize(
    ("name", "written", "image_format"),
    [("g.jpg", "g.jpg", "JPEG"), ("g.WEBP", "g.WEBP", "WEBP"), ("g", "g.png", "PNG")],
)
def test_cli_writes_the_picture_format_out_names(tmp_path, name, written, image_format):
    """``--out g.jpg`` was written as ``g.png``: the suffix given is the format written
    (a JPEG without the figure's alpha), a PNG where there is none."""
    to_pil(smooth_image(40, 60)).save(tmp_path / "g_in.png")
    assert main(["explain", str(tmp_path / "g_in.png"), "--out", str(tmp_path / name)]) == 0
    with Image.open(tmp_path / written) as picture:
        assert picture.format == image_format
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["g_in.png", written, "g.json"])


def test_cli_refuses_an_out_suffix_no_picture_format_has(tmp_path, capsys):
    to_pil(smooth_image(40, 60)).save(tmp_path / "h.png")
    assert main(["explain", str(tmp_path / "h.png"), "--out", str(tmp_path / "h.txt")]) == 2
    assert capsys.readouterr().err == (
        f"faster-rcnn: error: --out {tmp_path / 'h.txt'}: a picture is written as .png, "
        ".jpg, .jpeg, .webp, .bmp, .tif, .tiff, not .txt\n"
    )
    assert [p.name for p in tmp_path.iterdir()] == ["h.png"]


def test_cli_warns_that_it_explains_the_first_frame_of_a_multi_page_image(tmp_path, capsys):
    pages = [to_pil(smooth_image(90, 120)), to_pil(smooth_image(90, 120).flip(-1))]
    pages[0].save(tmp_path / "pages.tif", save_all=True, append_images=pages[1:])
    argv = ["explain", str(tmp_path / "pages.tif"), "--out", str(tmp_path / "out.png")]
    assert main(argv) == 0
    assert capsys.readouterr().err == (
        f"faster-rcnn: warning: {tmp_path / 'pages.tif'}: only the first of its 2 frames is "
        "explained\n"
    )
