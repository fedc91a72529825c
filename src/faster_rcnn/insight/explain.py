"""What the RPN does with one image, step by step, computed by the model's own code.

:func:`explain` runs one image (and its ground truth, if any) through the pieces a
training step and an inference pass use - the model's resize, backbone, anchor
generator, anchor labelling (:class:`~faster_rcnn.rpn.anchor_targets.AnchorTargetCreator`,
border policy included), mini-batch sampler, proposal selection and detection head - and
keeps what each step produced in an :class:`Explanation`. :func:`draw_explanation` turns
it into one picture of panels (a PNG unless named otherwise), each titled with the
numbers behind it, and writes those numbers to the JSON beside it:

1. the anchors of one location, with its level's stride and feature-map size;
2. every anchor's label: positive, negative, ignored, or outside the border;
3. the sampled mini-batch the RPN's loss would see;
4. the top proposals before NMS; 5. after NMS; 6. the detections (these three only for
   a trained model).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.axes import Axes
from matplotlib.backend_bases import RendererBase
from matplotlib.collections import LineCollection
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.patheffects import withStroke
from matplotlib.text import Text
from matplotlib.transforms import Bbox, ScaledTranslation
from torch import Tensor

from ..anchors import LevelGrid, anchors_crossing_border
from ..config import RPNConfig
from ..counted import counted
from ..data.dataset import as_float_image
from ..host_cpus import one_thread
from ..model import FasterRCNN, PreparedBatch
from ..ops.boxes import box_area, box_iou
from ..rpn.network import AnchorScores, RPNPrediction
from ..rpn.proposals import select_proposals
from ..transform import resize_boxes
from .draw import CAPTION_FONT, caption_font_file
from .plots import COLOURS, new_figure, save_figure

# The labels of AnchorTargetCreator.
POSITIVE, NEGATIVE, IGNORED = 1, 0, -1


@dataclass
class Location:
    """The feature-map cell whose anchors panel 1 shows.

    Attributes:
        level: index into :attr:`Explanation.levels`.
        row / col: the cell.
        anchor_indices: ``(A_l,)`` its anchors' indices among all anchors.
        iou: ``(A_l,)`` their IoU with GT box :attr:`gt_index` (zeros without one).
        gt_index: the GT box that chose the cell (the largest), ``None`` without GT.
    """

    level: int
    row: int
    col: int
    anchor_indices: Tensor
    iou: Tensor
    gt_index: int | None


@dataclass
class ProposalStages:
    """The RPN's proposals before and after NMS, and the detections made from them, all
    in the original image's pixels and by decreasing score.

    Attributes:
        candidates: ``(C, 4)`` the boxes NMS receives: the ``pre_nms_top_n`` best of each
            level, clipped, without those under ``min_size`` or ``score_thresh``.
        candidate_scores: ``(C,)`` their objectness probabilities.
        num_top_n: boxes kept by the per-level top-n, before clipping and filtering.
        boxes / scores: ``(P, 4)`` / ``(P,)`` the proposals after NMS (``P <=
            post_nms_top_n``), as :meth:`FasterRCNN.detect_with_proposals` returns them.
        detections: ``{"boxes": (D, 4), "labels": (D,), "scores": (D,)}``; ``None``
            where the box head was never trained (the RPN trained alone).
    """

    candidates: Tensor
    candidate_scores: Tensor
    num_top_n: int
    boxes: Tensor
    scores: Tensor
    detections: dict[str, Tensor] | None


@dataclass
class Explanation:
    """Everything :func:`explain` computed for one image (CPU tensors).

    Attributes:
        image: ``(3, H, W)`` the image as given, float in 0..1 or ``uint8`` levels.
        resized_size: ``(h, w)`` the model's resize of it, where the RPN works.
        gt_boxes: ``(G, 4)`` ground truth in the image's pixels (``G = 0`` allowed).
        gt_names: ``G`` class names, for the picture.
        anchors: ``(A, 4)`` every anchor, in resized-image pixels, in the RPN's order.
        labels: ``(A,)`` the model's labels: 1 positive, 0 negative, -1 ignored (crossing
            anchors included).
        outside: ``(A,)`` bool, anchors crossing the border by more than
            ``rpn.allowed_border`` (labelled -1 too).
        sampled_positive / sampled_negative: ``(A,)`` bool, the sampler's mini-batch.
        levels: the anchor grid of each feature level.
        location: the cell of panel 1.
        seed: the seed of the sampler's generator.
        rpn: the RPN's settings (thresholds, batch size, NMS).
        class_names: names of the model's labels ``1..C``.
        proposals: proposals and detections; ``None`` when not asked for.
    """

    image: Tensor
    resized_size: tuple[int, int]
    gt_boxes: Tensor
    gt_names: tuple[str, ...]
    anchors: Tensor
    labels: Tensor
    outside: Tensor
    sampled_positive: Tensor
    sampled_negative: Tensor
    levels: list[LevelGrid]
    location: Location
    seed: int
    rpn: RPNConfig
    class_names: tuple[str, ...]
    proposals: ProposalStages | None

    @property
    def original_size(self) -> tuple[int, int]:
        return int(self.image.shape[-2]), int(self.image.shape[-1])

    def to_original(self, boxes: Tensor) -> Tensor:
        """``(N, 4)`` boxes from resized-image to original-image pixels."""
        return resize_boxes(boxes, self.resized_size, self.original_size)

    def counts(self, selected: slice | None = None) -> dict[str, int]:
        """How many anchors (of ``selected``, default all) are positive, negative, ignored
        (inside the border) and outside, and how many were sampled."""
        part = slice(None) if selected is None else selected
        labels, outside = self.labels[part], self.outside[part]
        return {
            "anchors": int(labels.numel()),
            "positive": int((labels == POSITIVE).sum()),
            "negative": int((labels == NEGATIVE).sum()),
            "ignored": int(((labels == IGNORED) & ~outside).sum()),
            "outside": int(outside.sum()),
            "sampled_positive": int(self.sampled_positive[part].sum()),
            "sampled_negative": int(self.sampled_negative[part].sum()),
        }


@torch.no_grad()
def explain(
    model: FasterRCNN,
    image: Tensor,
    gt_boxes: Tensor | None = None,
    gt_names: tuple[str, ...] = (),
    seed: int = 0,
    with_proposals: bool = True,
    with_detections: bool = True,
) -> Explanation:
    """Run ``image`` through the model's RPN, keeping what each step computes.

    The model runs in eval mode (the last ``min_size``; restored afterwards). Anchor
    labels and the sampled batch are the model's own training targets for these boxes:
    :meth:`AnchorTargetCreator.assign_single` and ``model.rpn.fg_bg_sampler`` with a
    generator seeded by ``seed``.

    Args:
        model: the detector (its device is used).
        image: ``(3, H, W)``, float in 0..1 or ``uint8`` levels, as the model takes it.
        gt_boxes: ``(G, 4)`` ground truth in the image's pixels; ``None`` for none.
        gt_names: a class name per GT box, kept for the picture.
        seed: seed of the sampler's ``torch.Generator``.
        with_proposals: also compute the proposals and detections (worth it for a
            trained model only).
        with_detections: with the proposals, the detections too: not for a model whose
            box head was never trained (the RPN trained alone), whose detections mean
            nothing.

    Raises:
        ValueError: a malformed image or box (as the model reports it).
    """
    was_training = model.training
    model.eval()
    try:
        return _explain(model, image, gt_boxes, gt_names, seed, with_proposals, with_detections)
    finally:
        model.train(was_training)


def _explain(
    model: FasterRCNN,
    image: Tensor,
    gt_boxes: Tensor | None,
    gt_names: tuple[str, ...],
    seed: int,
    with_proposals: bool,
    with_detections: bool,
) -> Explanation:
    device = next(model.parameters()).device
    gt = torch.zeros((0, 4)) if gt_boxes is None else gt_boxes.to(torch.float32).cpu()
    # The RPN is class-agnostic: any valid label gives the same anchor targets.
    labels = torch.ones(len(gt), dtype=torch.int64, device=device)
    target = {"boxes": gt.to(device), "labels": labels}
    batch = model.prepare_batch([image.to(device)], [target])
    features = model.features(batch.images)
    prediction = model.rpn.predict(batch.images, features) if with_proposals else None
    scored = model.rpn.score_anchors(batch.images, features) if prediction is None else prediction
    detections = None
    if prediction is not None:
        detections = model.roi_heads(features, prediction.boxes, batch.images.image_sizes)[0]
    forward = _Forward(batch, scored, prediction, detections)
    return _explanation(model, image, gt, gt_names, seed, forward, with_detections)


class _Forward(NamedTuple):
    """What the model's own forward computed for :func:`explain`.

    Attributes:
        batch: the prepared (resized) image and its target.
        scored: the RPN head's anchors and objectness logits.
        prediction: the same with the proposals after NMS; ``None`` without proposals.
        detections: the box head's detections of those proposals, in resized-image
            pixels; ``None`` without proposals.
    """

    batch: PreparedBatch
    scored: AnchorScores | RPNPrediction
    prediction: RPNPrediction | None
    detections: list[dict[str, Tensor]] | None


# The model's forward keeps the user's threads; what explain does with its outputs is many
# small operations on anchors and boxes, which a second thread only slows: on a loaded
# 2-core machine 0.12-0.81 s on 2 threads against 14-62 ms on 1 (host_cpus.one_thread;
# benchmarks/bench_explain.md).
@one_thread()
def _explanation(
    model: FasterRCNN,
    image: Tensor,
    gt: Tensor,
    gt_names: tuple[str, ...],
    seed: int,
    forward: _Forward,
    with_detections: bool,
) -> Explanation:
    """The :class:`Explanation` of the model's ``forward`` on ``image`` (ground truth
    ``gt``, ``(G, 4)`` on the CPU)."""
    batch, scored, prediction = forward.batch, forward.scored, forward.prediction
    resized_gt, resized = batch.training_targets()[0]["boxes"], batch.images.image_sizes[0]
    labels, outside, positive, negative = _anchor_targets(model, scored, resized_gt, resized, seed)
    levels = scored.levels
    anchors = scored.anchors[0].cpu()
    return Explanation(
        image=image.detach().cpu(),
        resized_size=resized,
        gt_boxes=gt,
        gt_names=tuple(gt_names) or ("",) * len(gt),
        anchors=anchors,
        labels=labels,
        outside=outside,
        sampled_positive=positive,
        sampled_negative=negative,
        levels=levels,
        location=_pick_location(anchors, resized_gt.cpu(), outside, levels, resized),
        seed=seed,
        rpn=model.config.rpn,
        class_names=model.config.label_names(),
        proposals=None
        if prediction is None or forward.detections is None
        else _proposals(model, batch, prediction, forward.detections, with_detections),
    )


def _anchor_targets(
    model: FasterRCNN,
    scored: AnchorScores | RPNPrediction,
    gt_boxes: Tensor,
    image_size: tuple[int, int],
    seed: int,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The model's training targets of one image's anchors.

    Args:
        scored: the RPN head's output on the image (anchors and objectness logits).
        gt_boxes: ``(G, 4)`` in resized-image pixels.

    Returns:
        ``(A,)`` labels (1, 0, -1), and ``(A,)`` bool: crossing the border, sampled
        positive, sampled negative; all on the CPU.
    """
    anchors = scored.anchors[0]
    creator = model.rpn.target_creator
    labels, _ = creator.assign_single(anchors, gt_boxes, image_size, scored.levels)
    outside = anchors_crossing_border(anchors, image_size, creator.allowed_border)
    generator = torch.Generator(device=anchors.device).manual_seed(seed)
    positive, negative = model.rpn.fg_bg_sampler([labels], [scored.objectness.view(-1)], generator)
    return labels.cpu(), outside.cpu(), positive[0].bool().cpu(), negative[0].bool().cpu()


def _pick_location(
    anchors: Tensor,
    gt_boxes: Tensor,
    outside: Tensor,
    levels: list[LevelGrid],
    image_size: tuple[int, int],
) -> Location:
    """The cell holding the best anchor (inside the border) of the largest GT box, or of
    every anchor where all cross the border (a strip of an image); without GT, the cell
    of the middle level nearest the image centre.

    Args:
        anchors: ``(A, 4)``; gt_boxes: ``(G, 4)``; outside: ``(A,)`` bool; all in
            resized-image pixels.
    """
    gt_index = None
    if len(gt_boxes):
        gt_index = int(box_area(gt_boxes).argmax())
        iou = box_iou(gt_boxes[gt_index : gt_index + 1], anchors)[0]
        inside = iou if bool(outside.all()) else iou.masked_fill(outside, -1.0)
        best = int(inside.argmax())
        level = max(k for k, grid in enumerate(levels) if grid.start <= best)
        cell = (best - levels[level].start) // levels[level].anchors_per_location
    else:
        iou = torch.zeros(len(anchors))
        level = len(levels) // 2
        rows, cols = levels[level].cell_centres()
        row = int((rows - image_size[0] / 2).abs().argmin())
        col = int((cols - image_size[1] / 2).abs().argmin())
        cell = row * levels[level].grid_size[1] + col
    grid = levels[level]
    first = grid.start + cell * grid.anchors_per_location
    indices = torch.arange(first, first + grid.anchors_per_location)
    row, col = divmod(cell, grid.grid_size[1])
    return Location(level, row, col, indices, iou[indices], gt_index)


def _proposals(
    model: FasterRCNN,
    batch: PreparedBatch,
    prediction: RPNPrediction,
    detections: list[dict[str, Tensor]],
    with_detections: bool,
) -> ProposalStages:
    """The boxes entering NMS, the proposals after it and (``with_detections``) the
    box head's ``detections`` of them, mapped back to the original image as
    :meth:`FasterRCNN.detect_with_proposals` maps them."""
    rpn, sizes = model.rpn, batch.images.image_sizes
    decoded = rpn.box_coder.decode(prediction.pred_bbox_deltas, prediction.anchors).view(1, -1, 4)
    # NMS at IoU 1.0 suppresses nothing: what the real selection hands to NMS, in order.
    candidates, candidate_scores = select_proposals(
        decoded,
        prediction.objectness,
        sizes,
        prediction.num_anchors_per_level,
        pre_nms_top_n=rpn.pre_nms_top_n(),
        post_nms_top_n=decoded.shape[1],
        nms_thresh=1.0,
        score_thresh=rpn.score_thresh,
        min_size=rpn.min_size,
    )
    back = model.transform.postprocess(
        [{"boxes": candidates[0]}, {"boxes": prediction.boxes[0]}, detections[0]],
        sizes * 3,
        batch.original_sizes * 3,
    )
    return ProposalStages(
        candidates=back[0]["boxes"].cpu(),
        candidate_scores=candidate_scores[0].cpu(),
        num_top_n=sum(min(rpn.pre_nms_top_n(), n) for n in prediction.num_anchors_per_level),
        boxes=back[1]["boxes"].cpu(),
        scores=prediction.scores[0].cpu(),
        detections={k: v.cpu() for k, v in back[2].items()} if with_detections else None,
    )


# ---------------------------------------------------------------------------- drawing

# Anchor label codes, in the order a cell's colour prefers them: its best anchor's label.
OUTSIDE_CODE, NEGATIVE_CODE, IGNORED_CODE, POSITIVE_CODE = 0, 1, 2, 3
CODE_NAMES = ("outside", "negative", "ignored", "positive")
# Okabe-Ito: blue, yellow and vermillion, and its grey.
CODE_COLOURS = ("#999999", COLOURS[0], COLOURS[6], COLOURS[5])
# Each label's cells over the image: outside darkened, negatives (everywhere) the faintest.
CELL_COLOURS = ("#000000", *CODE_COLOURS[1:])
CELL_ALPHAS = (0.6, 0.3, 0.5, 0.7)
PROPOSAL_COLOUR = COLOURS[1]
CLASS_COLOURS = (COLOURS[2], COLOURS[4], COLOURS[3], COLOURS[1], COLOURS[0], COLOURS[6])
PANEL_WIDTH = 5.4  # inches
DISPLAY_SIDE = 1200  # the image is drawn downscaled to at most this many pixels a side
MANY_BOXES = 50  # from this many boxes on, thinner lines and no text per box
# Panel 2 outlines the positive anchors up to this many: the 19,212 of an image of 1,000
# objects covered the whole cell map (and the ground truth) in orange.
MAX_OUTLINED_POSITIVES = 1000
# Panel 1's view is at most this elongated (width / height or height / width): the anchors
# of one cell of a strip of an image (4000 x 150) are drawn large enough to see.
MAX_VIEW_ELONGATION = 2.0
# From this elongation (width / height) on, each panel has a row of the figure's whole
# width: in a third of it, the panels drew a 1600 x 60 image as a strip 0.2 inches tall.
STRIP_ELONGATION = 6.0
PANEL_TEXT_HEIGHT = 1.2  # inches: a panel's title and legend
# The RPN settings the panels' titles quote, written to the JSON.
RPN_SETTINGS = (
    "fg_iou_thresh",
    "bg_iou_thresh",
    "allow_low_quality_matches",
    "allowed_border",
    "batch_size_per_image",
    "positive_fraction",
    "sampler",
    "pre_nms_top_n_test",
    "post_nms_top_n_test",
    "nms_thresh",
    "score_thresh",
    "min_size",
)


def label_codes(explanation: Explanation) -> Tensor:
    """``(A,)`` int64 code of every anchor's label: 3 positive, 2 ignored, 1 negative,
    0 outside the border."""
    labels = explanation.labels
    codes = torch.full(labels.shape, IGNORED_CODE, dtype=torch.int64)
    codes[labels == POSITIVE] = POSITIVE_CODE
    codes[labels == NEGATIVE] = NEGATIVE_CODE
    codes[explanation.outside] = OUTSIDE_CODE
    return codes


def cell_label_map(explanation: Explanation) -> tuple[Tensor, Tensor, Tensor]:
    """Every cell of the finest level coloured by the best label code of the anchors, of
    every level, whose cell contains its centre.

    A cell is centred on its anchors, at ``(index + offset) * stride``: the backbones'
    stride-2 3x3 convolutions (padding 1) centre feature ``j`` on input pixel ``2 j``, as
    torchvision's anchors (offset 0) are; VGG's 2x2 pools centre it half a stride on, as
    ``paper_vgg16``'s are (offset 0.5). Each pixel of the image lies in the cell of its
    nearest anchor centre: the cells along the image's edges reach to them.

    Returns:
        ``(H_0, W_0)`` int64 codes, and the cells' ``(W_0 + 1,)`` column and ``(H_0 + 1,)``
        row edges in original-image pixels (for ``pcolormesh``).
    """
    codes = label_codes(explanation)
    finest = max(explanation.levels, key=lambda grid: grid.grid_size[0] * grid.grid_size[1])
    centre_rows, centre_cols = finest.cell_centres()
    result = torch.zeros(finest.grid_size, dtype=torch.int64)
    for grid in explanation.levels:
        per_cell = codes[grid.start : grid.start + grid.num_anchors]
        per_cell = per_cell.view(*grid.grid_size, grid.anchors_per_location).amax(dim=-1)
        rows = _nearest_cell(centre_rows, grid.stride[0], grid.offset, grid.grid_size[0])
        cols = _nearest_cell(centre_cols, grid.stride[1], grid.offset, grid.grid_size[1])
        result = torch.maximum(result, per_cell[rows][:, cols])
    (height, width), (resized_h, resized_w) = explanation.original_size, explanation.resized_size
    column_edges = _cell_edges(centre_cols, resized_w) * (width / resized_w)
    row_edges = _cell_edges(centre_rows, resized_h) * (height / resized_h)
    return result, column_edges, row_edges


def _cell_edges(centres: Tensor, side: int) -> Tensor:
    """``(N + 1,)`` edges of the cells around ``(N,)`` anchor centres on one axis of an
    image ``side`` pixels long: halfway between neighbouring centres, the first and last
    at the image's edges; a cell past the image (in the batch's padding) has no width."""
    middles = ((centres[:-1] + centres[1:]) / 2).clamp(0, side)
    return torch.cat([torch.zeros(1), middles, torch.full((1,), float(side))])


def _nearest_cell(centres: Tensor, stride: int, offset: float, size: int) -> Tensor:
    """Index of the cell of a level (``stride``, ``offset``) nearest each of ``centres``."""
    return (centres / stride - offset).round().long().clamp(0, size - 1)


def draw_explanation(
    explanation: Explanation,
    path: str | Path,
    title: str = "",
    top_k: int = 50,
    score_threshold: float = 0.5,
) -> Path:
    """Write the explanation's panels to the picture ``path`` and its numbers to the JSON
    beside it (:func:`explanation_summary`).

    Args:
        explanation: from :func:`explain`; panels 4-6 need its proposals.
        path: the picture to write, in the format of its suffix (a PNG without one:
            :func:`~faster_rcnn.insight.pictures.picture_path`; its folder is made).
        title: the figure's title (e.g. the image's and the model's names).
        top_k: proposals drawn before and after NMS.
        score_threshold: detections drawn from this score.

    Returns:
        The picture's path.
    """
    figure = explanation_figure(explanation, title, top_k, score_threshold)
    return save_figure(figure, path, explanation_summary(explanation, top_k, score_threshold))


# Its tensor work is many small operations on anchors (label codes, counts per level, box
# outlines), which a second thread only slows: 0.4 s on 1 thread, 1.4-1.9 s on 2 for an
# 800 px image on a loaded 2-core machine (host_cpus.one_thread).
@one_thread()
def explanation_figure(
    explanation: Explanation, title: str = "", top_k: int = 50, score_threshold: float = 0.5
) -> Figure:
    """The panels of :func:`draw_explanation`, as a figure (arguments as there)."""
    height, width = explanation.original_size
    panels = 3 if explanation.proposals is None else 6
    if width > STRIP_ELONGATION * height:
        figure, axes = _strip_figure(panels, height / width)
    else:
        panel_height = min(max(PANEL_WIDTH * height / width, 2.4), 8.0) + PANEL_TEXT_HEIGHT
        figure = new_figure(3 * PANEL_WIDTH, panels // 3 * panel_height + 0.4)
        axes = figure.subplots(panels // 3, 3, squeeze=False).ravel()
    # Panel 1 zooms in: the finer picture. The others show the whole image, drawn from
    # one of their size: matplotlib resamples a picture for each panel at every draw, in
    # time that grows with its pixels (a 2000 px image's six panels rendered in 1.38 s of
    # CPU from pictures of 1200 px, 0.76 s from 595 px: benchmarks/bench_explain.md).
    _show_image(axes[0], explanation, display_picture(explanation.image))
    picture = display_picture(explanation.image, _panel_side(axes[1], (height, width)))
    for ax in axes[1:]:
        _show_image(ax, explanation, picture)
    _draw_location(axes[0], explanation)
    _draw_labels(axes[1], explanation)
    _draw_batch(axes[2], explanation)
    captions: list[tuple[Text, list[float]]] = []
    if explanation.proposals is not None:
        _draw_candidates(axes[3], explanation, explanation.proposals, top_k)
        _draw_proposals(axes[4], explanation, explanation.proposals, top_k)
        captions = _draw_detections(axes[5], explanation, explanation.proposals, score_threshold)
    resized_h, resized_w = explanation.resized_size
    sizes = f"{width}x{height} px, resized to {resized_w}x{resized_h} by the model"
    figure.suptitle(f"{title}{': ' if title else ''}{sizes} (boxes in the image's pixels)")
    if captions:
        figure.draw_without_rendering()  # the layout, which sets the captions' size
        _keep_captions_inside(axes[5], captions)
        _leave_no_caption_over_another(axes[5], captions)
    return figure


def _strip_figure(panels: int, aspect: float) -> tuple[Figure, np.ndarray]:
    """A figure of one panel a row for an image wider than :data:`STRIP_ELONGATION`
    times its height (``aspect``: height / width): the image across the figure's width,
    panel 1's view (:data:`MAX_VIEW_ELONGATION`) as wide as a column of the usual
    three."""
    width = 3 * PANEL_WIDTH
    heights = [PANEL_WIDTH / MAX_VIEW_ELONGATION] + [width * aspect] * (panels - 1)
    figure = new_figure(width, sum(heights) + panels * PANEL_TEXT_HEIGHT + 0.4)
    axes = figure.subplots(panels, 1, squeeze=False, height_ratios=heights).ravel()
    return figure, axes


def display_picture(image: Tensor, max_side: int = DISPLAY_SIDE) -> np.ndarray:
    """``(3, H, W)``, float in 0..1 or ``uint8`` levels -> ``uint8[h, w, 3]``, downscaled
    (antialiased) so that its longer side is at most ``max_side``."""
    image = as_float_image(image)  # interpolated as levels, it would round each pixel
    scale = min(1.0, max_side / max(image.shape[-2:]))
    if scale < 1.0:
        size = (max(1, round(image.shape[-2] * scale)), max(1, round(image.shape[-1] * scale)))
        image = F.interpolate(image[None], size=size, mode="bilinear", antialias=True)[0]
    return (image.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()


def _panel_side(ax: Axes, image_size: tuple[int, int]) -> int:
    """The longer side, in the figure's pixels, of an image of ``image_size`` ``(H, W)``
    shown whole in ``ax``'s cell of the figure's grid, as if the layout left no margins:
    at least its size in ``ax`` whatever room the layout makes for titles and legends."""
    grid = ax.get_gridspec()
    columns = grid.get_geometry()[1]
    ratios = grid.get_height_ratios()
    row = ax.get_subplotspec().rowspan.start
    figure_width, figure_height = ax.figure.bbox.size
    cell_width, cell_height = figure_width / columns, figure_height * ratios[row] / sum(ratios)
    height, width = image_size
    return math.ceil(max(height, width) * min(cell_width / width, cell_height / height))


def box_outlines(
    boxes: Tensor, colour: str | np.ndarray, linewidth: float, stroke: bool = False
) -> LineCollection:
    """``(N, 4)`` boxes as one collection of closed outlines: fast for thousands.

    Args:
        colour: one colour, or ``(N, 4)`` RGBA, one per box.
        stroke: outline each line in black (legible on any image).
    """
    x1, y1, x2, y2 = boxes.detach().cpu().to(torch.float64).numpy().T
    corners = [(x1, y1), (x2, y1), (x2, y2), (x1, y2), (x1, y1)]
    segments = np.stack([np.stack(corner, axis=-1) for corner in corners], axis=1)
    lines = LineCollection(segments, colors=colour, linewidths=linewidth)
    if stroke:
        lines.set_path_effects([withStroke(linewidth=linewidth + 1.6, foreground="black")])
    return lines


def _show_image(ax: Axes, explanation: Explanation, picture: np.ndarray) -> None:
    """The image in its own pixels, with the ground truth outlined in white, at the left
    of its column."""
    height, width = explanation.original_size
    ax.set_anchor("W")
    ax.imshow(picture, extent=(0, width, height, 0))
    if len(explanation.gt_boxes):
        linewidth = 0.7 if len(explanation.gt_boxes) >= MANY_BOXES else 1.3
        ax.add_collection(box_outlines(explanation.gt_boxes, "white", linewidth, stroke=True))
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.set_xticks([])
    ax.set_yticks([])


def _gt_handle(explanation: Explanation) -> list[Line2D]:
    """The legend entry of the ground truth (none without it)."""
    if not len(explanation.gt_boxes):
        return []
    handle = Line2D(
        [], [], color="white", linewidth=1.3, label=f"ground truth ({len(explanation.gt_boxes)})"
    )
    handle.set_path_effects([withStroke(linewidth=2.9, foreground="black")])
    return [handle]


def _finish(ax: Axes, title: str, handles: list[Any], legend_title: str | None = None) -> None:
    """Title the panel and put its legend under it, both from its left edge, which is
    its column's (:func:`_show_image`): an image much taller than wide makes a narrow
    panel, whose text would otherwise run past the figure's edge."""
    ax.set_title(title, fontsize=9, loc="left")
    if handles:
        ax.legend(
            handles=handles,
            title=legend_title,
            title_fontsize=8,
            loc="upper left",
            bbox_to_anchor=(0.0, -0.01),
            ncols=min(3, len(handles)),
            fontsize=8,
            frameon=False,
            handlelength=1.6,
            columnspacing=1.2,
        )


def _draw_location(ax: Axes, explanation: Explanation) -> None:
    """Panel 1: the anchors of one cell, coloured by label, zoomed in around them."""
    location = explanation.location
    grid = explanation.levels[location.level]
    anchors = explanation.to_original(explanation.anchors[location.anchor_indices])
    codes = label_codes(explanation)[location.anchor_indices]
    handles: list[Any] = []
    for code in range(len(CODE_NAMES)):  # positives last, on top
        chosen = codes == code
        if chosen.any():
            ax.add_collection(box_outlines(anchors[chosen], CODE_COLOURS[code], 1.4, stroke=True))
            handles.insert(
                0, _anchor_handle(code, location.iou[chosen], location.gt_index, explanation.rpn)
            )
    centre = anchors.view(-1, 2, 2).mean(dim=(0, 1))
    ax.plot(*centre.tolist(), marker="+", color="white", markersize=9, markeredgewidth=1.5)
    focus = anchors
    if location.gt_index is not None:
        gt = explanation.gt_boxes[location.gt_index : location.gt_index + 1]
        ax.add_collection(box_outlines(gt, "white", 2.4, stroke=True))
        focus = torch.cat([anchors, gt])
    zoomed = _frame(ax, explanation, focus)
    if location.gt_index is None:
        why = "no ground truth: the middle level, at the image centre"
    else:
        why = f"best IoU {_best_trained_iou(explanation):.2f} with the largest ground-truth box"
        why += " (every anchor crosses the border)" if bool(explanation.outside.all()) else ""
    _finish(
        ax,
        f"1 · the {counted(len(anchors), 'anchor')} of one location"
        f"{' (zoomed in)' if zoomed else ''}\n"
        f"level '{grid.name}': stride {_stride_text(explanation, grid)}, feature map "
        f"{_width_x_height(grid.grid_size)}, row {location.row}, column {location.col}\n{why}",
        handles + _gt_handle(explanation),
    )


def _stride_text(explanation: Explanation, grid: LevelGrid) -> str:
    """A level's stride in the image's pixels, in which the panel draws the anchors and
    the objects, and in the model's resized ones where they differ: ``"20 px (8 px
    resized)"``; ``"8 px"`` for an image the model does not resize."""
    drawn = _pair(_image_stride(explanation, grid))
    resized = _pair(grid.stride)
    return f"{drawn} px" if drawn == resized else f"{drawn} px ({resized} px resized)"


def _image_stride(explanation: Explanation, grid: LevelGrid) -> tuple[float, float]:
    """``(stride_h, stride_w)`` of a level in the original image's pixels, to one
    decimal."""
    (height, width), (resized_h, resized_w) = explanation.original_size, explanation.resized_size
    return (
        round(grid.stride[0] * height / resized_h, 1),
        round(grid.stride[1] * width / resized_w, 1),
    )


def _best_trained_iou(explanation: Explanation) -> float:
    """The best IoU of panel 1's anchors with its ground-truth box among those the RPN
    trains on: inside the border (the cell holds the best of them), or of them all where
    every anchor crosses it."""
    location = explanation.location
    inside = ~explanation.outside[location.anchor_indices]
    return float((location.iou[inside] if inside.any() else location.iou).max())


def _anchor_handle(code: int, iou: Tensor, gt_index: int | None, rpn: RPNConfig) -> Line2D:
    """Legend entry of the anchors of one label in panel 1, with their IoU range."""
    label = f"{CODE_NAMES[code]} ({iou.numel()})"
    if gt_index is not None and code != OUTSIDE_CODE:
        below = {NEGATIVE_CODE: rpn.bg_iou_thresh, IGNORED_CODE: rpn.fg_iou_thresh}.get(code)
        low, high = (_iou_text(float(value), below) for value in (iou.min(), iou.max()))
        label += f": IoU {low}" if low == high else f": IoU {low}-{high}"
    return Line2D([], [], color=CODE_COLOURS[code], linewidth=1.4, label=label)


def _iou_text(iou: float, below: float | None = None) -> str:
    """An IoU to two decimals, rounded; rounded down where it is under a threshold
    ``below`` that rounding would reach: a negative at 0.298 reads 0.29, not the 0.30 of
    its "< 0.3"."""
    text = f"{iou:.2f}"
    if below is not None and float(text) >= below > iou:
        text = f"{math.floor(iou * 100) / 100:.2f}"
    return text


def _frame(ax: Axes, explanation: Explanation, boxes: Tensor) -> bool:
    """Show all of ``boxes`` (original pixels; anchors may reach past the image, whose
    surroundings are grey) in a view of the image's aspect ratio, or of
    :data:`MAX_VIEW_ELONGATION` where the image is more elongated: zoomed in where twice
    their extent fits in half the view of the whole image, else the whole image and
    them. Returns whether it zoomed in."""
    height, width = explanation.original_size
    aspect = min(max(width / height, 1 / MAX_VIEW_ELONGATION), MAX_VIEW_ELONGATION)
    x1, y1 = boxes[:, :2].amin(dim=0).tolist()
    x2, y2 = boxes[:, 2:].amax(dim=0).tolist()
    ax.set_facecolor("#dddddd")
    view_w = 2.0 * max(x2 - x1, (y2 - y1) * aspect)
    zoomed = view_w < 0.5 * max(width, height * aspect)
    if not zoomed:
        x1, y1, x2, y2 = min(x1, 0.0), min(y1, 0.0), max(x2, width), max(y2, height)
        view_w = max(x2 - x1, (y2 - y1) * aspect)
    view_h = view_w / aspect
    cx, cy = _centre(x1, x2, width, view_w), _centre(y1, y2, height, view_h)
    ax.set_xlim(cx - view_w / 2, cx + view_w / 2)
    ax.set_ylim(cy + view_h / 2, cy - view_h / 2)
    return zoomed


def _centre(low: float, high: float, size: float, view: float) -> float:
    """The centre of a ``view`` wide window on one axis showing ``[low, high]``: on it,
    moved inside ``[0, size]`` as far as it allows; the middle when it is wider still."""
    first, last = min(0.0, low) + view / 2, max(size, high) - view / 2
    if first > last:
        return (first + last) / 2
    return min(max((low + high) / 2, first), last)


def _draw_labels(ax: Axes, explanation: Explanation) -> None:
    """Panel 2: every anchor's label as a map of cells, positives outlined (up to
    :data:`MAX_OUTLINED_POSITIVES`)."""
    codes, column_edges, row_edges = cell_label_map(explanation)
    colours = np.array([to_rgba(c, a) for c, a in zip(CELL_COLOURS, CELL_ALPHAS, strict=True)])
    ax.pcolormesh(column_edges.numpy(), row_edges.numpy(), colours[codes.numpy()])
    counts, rpn = explanation.counts(), explanation.rpn
    handles: list[Any] = [
        Patch(color=colours[code], label=f"{name}: {counts[name]:,}")
        for code, name in reversed(list(enumerate(CODE_NAMES)))
    ]
    outlined = ""
    if counts["positive"] <= MAX_OUTLINED_POSITIVES:
        positives = explanation.to_original(explanation.anchors[explanation.labels == POSITIVE])
        linewidth = 0.5 if len(positives) >= MANY_BOXES else 1.0
        ax.add_collection(box_outlines(positives, CODE_COLOURS[POSITIVE_CODE], linewidth))
        handles.append(Line2D([], [], color=CODE_COLOURS[POSITIVE_CODE], label="positive anchor"))
    else:
        outlined = f"\npositive anchors not outlined: over {MAX_OUTLINED_POSITIVES:,}"
    best = " or a box's best anchor" if rpn.allow_low_quality_matches else ""
    border = (
        "border: every anchor used"
        if rpn.allowed_border < 0
        else f"border: anchors over it by > {rpn.allowed_border:g} px left out"
    )
    ground = "; no ground truth: all negative" if not len(explanation.gt_boxes) else ""
    _finish(
        ax,
        f"2 · the labels of all {counts['anchors']:,} anchors "
        f"({counted(len(explanation.levels), 'level')})\npositive: IoU >= "
        f"{rpn.fg_iou_thresh:g}{best}; "
        f"negative: < {rpn.bg_iou_thresh:g}\n{border}{ground}{outlined}",
        handles + _gt_handle(explanation),
        legend_title="cell colour: the best label of its anchors, all levels",
    )


def _draw_batch(ax: Axes, explanation: Explanation) -> None:
    """Panel 3: the sampled mini-batch, positives over negatives."""
    counts, rpn = explanation.counts(), explanation.rpn
    negatives = explanation.to_original(explanation.anchors[explanation.sampled_negative])
    positives = explanation.to_original(explanation.anchors[explanation.sampled_positive])
    ax.add_collection(box_outlines(negatives, to_rgba(CODE_COLOURS[NEGATIVE_CODE], 0.75), 0.6))
    ax.add_collection(box_outlines(positives, CODE_COLOURS[POSITIVE_CODE], 1.2))
    handles = [
        Line2D([], [], color=CODE_COLOURS[POSITIVE_CODE], label=f"positive ({len(positives)})"),
        Line2D([], [], color=CODE_COLOURS[NEGATIVE_CODE], label=f"negative ({len(negatives)})"),
    ]
    limit = int(rpn.batch_size_per_image * rpn.positive_fraction)
    how = "the hardest negatives" if rpn.sampler == "hard_negative" else "drawn at random"
    _finish(
        ax,
        f"3 · the sampled mini-batch ({how}, seed {explanation.seed})\n"
        f"{len(positives) + len(negatives)} of batch_size_per_image {rpn.batch_size_per_image}, "
        f"at most {limit} positive:\n"
        f"{len(positives)} of {counts['positive']:,} positive, "
        f"{len(negatives)} of {counts['negative']:,} negative",
        handles + _gt_handle(explanation),
    )


def _ranked(ax: Axes, boxes: Tensor, scores: Tensor, top_k: int) -> list[Line2D]:
    """Draw the first ``top_k`` boxes, the best the most opaque; returns the legend entry."""
    boxes, scores = boxes[:top_k], scores[:top_k]
    if not len(boxes):
        return []
    colours = np.repeat(np.array([to_rgba(PROPOSAL_COLOUR)]), len(boxes), axis=0)
    colours[:, 3] = np.linspace(1.0, 0.35, len(boxes))
    ax.add_collection(box_outlines(boxes, colours, 1.0))
    label = f"objectness {float(scores[0]):.2f} (opaque) to {float(scores[-1]):.2f}"
    return [Line2D([], [], color=PROPOSAL_COLOUR, label=label)]


def _draw_candidates(
    ax: Axes, explanation: Explanation, stages: ProposalStages, top_k: int
) -> None:
    """Panel 4: the best boxes NMS receives."""
    rpn = explanation.rpn
    handles = _ranked(ax, stages.candidates, stages.candidate_scores, top_k)
    _finish(
        ax,
        f"4 · before NMS: the top {min(top_k, len(stages.candidates)):,} of "
        f"{len(stages.candidates):,} candidates\nthe {rpn.pre_nms_top_n_test:,} best per level "
        f"({stages.num_top_n:,} of {len(explanation.anchors):,} anchors), clipped,\n"
        f"sides >= {rpn.min_size:g} px, objectness >= {rpn.score_thresh:g}",
        handles + _gt_handle(explanation),
    )


def _draw_proposals(ax: Axes, explanation: Explanation, stages: ProposalStages, top_k: int) -> None:
    """Panel 5: the proposals NMS keeps."""
    rpn = explanation.rpn
    handles = _ranked(ax, stages.boxes, stages.scores, top_k)
    _finish(
        ax,
        f"5 · after NMS (IoU {rpn.nms_thresh:g}, per level): {len(stages.boxes):,} proposals\n"
        f"kept of {len(stages.candidates):,} (post_nms_top_n {rpn.post_nms_top_n_test:,}); "
        f"the top {min(top_k, len(stages.boxes)):,} drawn",
        handles + _gt_handle(explanation),
    )


def _draw_detections(
    ax: Axes, explanation: Explanation, stages: ProposalStages, score_threshold: float
) -> list[tuple[Text, list[float]]]:
    """Panel 6: the detections from ``score_threshold``, by class, named when few; none
    where the box head was never trained.

    Returns:
        Each caption drawn, with its box ``[x1, y1, x2, y2]``, by decreasing score, for
        :func:`_keep_captions_inside` and :func:`_leave_no_caption_over_another` once the
        figure's layout is done.
    """
    detections, names = stages.detections, explanation.class_names
    if detections is None:
        _finish(
            ax,
            "6 · no detections: the box head was never trained\n(the RPN was trained alone: "
            f"its {len(stages.boxes):,} proposals are what it learned)",
            _gt_handle(explanation),
        )
        return []
    keep = detections["scores"] >= score_threshold
    boxes, labels, scores = (detections[k][keep] for k in ("boxes", "labels", "scores"))
    handles: list[Any] = []
    for label in labels.unique().tolist():
        colour = CLASS_COLOURS[(label - 1) % len(CLASS_COLOURS)]
        chosen = labels == label
        ax.add_collection(box_outlines(boxes[chosen], colour, 1.6, stroke=True))
        handles.append(
            Line2D([], [], color=colour, label=f"{names[label - 1]} ({int(chosen.sum())})")
        )
    few = len(boxes) < MANY_BOXES // 2
    captions = _draw_captions(ax, boxes, labels, scores, names) if few else []
    _finish(
        ax,
        f"6 · detections: {len(boxes):,} with score >= {score_threshold:g}\n(of "
        f"{len(detections['boxes']):,} the head returned from {len(stages.boxes):,} proposals)",
        handles + _gt_handle(explanation),
    )
    if handles:  # the classes' entries come first, the ground truth's after them
        texts = ax.get_legend().get_texts()
        for text, label in zip(texts, labels.unique().tolist(), strict=False):
            text.set_fontproperties(_name_font(names[label - 1]))
    return captions


def _draw_captions(
    ax: Axes, boxes: Tensor, labels: Tensor, scores: Tensor, names: tuple[str, ...]
) -> list[tuple[Text, list[float]]]:
    """A caption ``"name score"`` on the top-left corner of each of the ``(K, 4)`` boxes,
    in its class's colour, drawn by decreasing score (the best first keep their places).

    Returns:
        Each caption with its box ``[x1, y1, x2, y2]``, in that order.
    """
    captions: list[tuple[Text, list[float]]] = []
    order = scores.argsort(descending=True, stable=True)
    for box, label, score in zip(
        boxes[order].tolist(), labels[order].tolist(), scores[order].tolist(), strict=True
    ):
        colour = CLASS_COLOURS[(label - 1) % len(CLASS_COLOURS)]
        caption = ax.text(
            box[0],
            box[1],
            f"{names[label - 1]} {score:.2f}",
            fontproperties=_name_font(names[label - 1]),
            va="bottom",
            bbox={"facecolor": colour, "edgecolor": "none", "pad": 1.0},
            clip_on=True,
        )
        caption.set_in_layout(False)
        captions.append((caption, box))
    return captions


def _name_font(name: str) -> FontProperties:
    """The font of 8 pt a class ``name`` is written in: matplotlib's default where
    DejaVu Sans has its letters, else the installed font ``predict``'s pictures draw it
    in (:func:`~faster_rcnn.insight.draw.caption_font_file`, which warns once where none
    has)."""
    path = caption_font_file(name)
    return FontProperties(size=8) if path == CAPTION_FONT else FontProperties(fname=path, size=8)


def _keep_captions_inside(ax: Axes, captions: list[tuple[Text, list[float]]]) -> None:
    """Move each caption, drawn above its box's top-left corner, to where the panel shows
    all of it, its 1-pt padding too: into the box where above would leave the picture's
    top, ending at the box's right edge where it would run past the right (clipped, a box
    at the top lost its caption whole); then, where the padding still crosses the panel's
    edge (a box on the picture's edge), in by as much. Call once the figure's layout is
    done: it measures the captions."""
    renderer = ax.figure.canvas.get_renderer()
    panel = ax.get_window_extent(renderer)
    for caption, (_, _, x2, _) in captions:
        drawn = _drawn_extent(caption, renderer)
        if drawn.y1 > panel.y1:  # display y grows upwards: past the picture's top
            caption.set_verticalalignment("top")
        if drawn.x1 > panel.x1:
            caption.set_x(x2)
            caption.set_horizontalalignment("right")
        _move_inside(caption, _drawn_extent(caption, renderer), panel)


def _leave_no_caption_over_another(ax: Axes, captions: list[tuple[Text, list[float]]]) -> None:
    """Where a caption (by decreasing score) meets one kept before it, move it to the
    first free of its box's other top corners, above then inside, each moved inside the
    panel; with none free, leave it out, as predict's pictures do
    (:func:`~faster_rcnn.insight.draw.caption_places`): a crowd of detections wrote their
    captions over each other. Call after :func:`_keep_captions_inside`."""
    renderer = ax.figure.canvas.get_renderer()
    panel = ax.get_window_extent(renderer)
    kept: list[Bbox] = []
    for caption, (x1, y1, x2, _) in captions:
        drawn = _drawn_extent(caption, renderer)
        others = ((x2, "right", "bottom"), (x1, "left", "top"), (x2, "right", "top"))
        for x, horizontal, vertical in others:
            if not any(drawn.overlaps(other) for other in kept):
                break
            caption.set(x=x, y=y1, ha=horizontal, va=vertical, transform=ax.transData)
            _move_inside(caption, _drawn_extent(caption, renderer), panel)
            drawn = _drawn_extent(caption, renderer)
        if any(drawn.overlaps(other) for other in kept):
            caption.set_visible(False)
        else:
            kept.append(drawn)


def _drawn_extent(caption: Text, renderer: RendererBase) -> Bbox:
    """The display extent of ``caption`` as drawn: its text with the padding of the box
    behind it."""
    caption.update_bbox_position_size(renderer)  # where the box is, at the caption's place
    return caption.get_bbox_patch().get_window_extent(renderer)


def _move_inside(caption: Text, drawn: Bbox, panel: Bbox) -> None:
    """Move ``caption``, whose display extent is ``drawn``, by as much as that crosses the
    edges of ``panel`` (the left and bottom first where it is larger): an offset in
    inches, which a later layout's new scale of the panel leaves as it was."""
    dx = max(panel.x0 - drawn.x0, 0.0) or min(panel.x1 - drawn.x1, 0.0)
    dy = max(panel.y0 - drawn.y0, 0.0) or min(panel.y1 - drawn.y1, 0.0)
    if dx or dy:
        inches = caption.figure.dpi_scale_trans
        offset = ScaledTranslation(dx / caption.figure.dpi, dy / caption.figure.dpi, inches)
        caption.set_transform(caption.get_transform() + offset)


def _pair(values: tuple[float, float]) -> str:
    """``(height, width)`` as width x height, as the titles give sizes: ``(8, 8)`` ->
    ``"8"``, ``(8, 16.5)`` -> ``"16.5x8"``."""
    return f"{values[0]:g}" if values[0] == values[1] else _width_x_height(values)


def _width_x_height(values: tuple[float, float]) -> str:
    """``(height, width)`` -> ``"WxH"``."""
    return f"{values[1]:g}x{values[0]:g}"


@one_thread()  # many small operations, as explanation_figure
def explanation_summary(
    explanation: Explanation, top_k: int = 50, score_threshold: float = 0.5
) -> dict[str, Any]:
    """The numbers behind the panels, for JSON: boxes in original-image pixels."""
    data: dict[str, Any] = {
        "image_size": list(explanation.original_size),
        "resized_size": list(explanation.resized_size),
        "ground_truth": [
            {"box": _rounded(box), "name": name}
            for box, name in zip(explanation.gt_boxes.tolist(), explanation.gt_names, strict=True)
        ],
        "counts": explanation.counts(),
        "levels": [_level_summary(explanation, grid) for grid in explanation.levels],
        "location": _location_summary(explanation),
        "seed": explanation.seed,
        "rpn": {key: getattr(explanation.rpn, key) for key in RPN_SETTINGS},
    }
    if explanation.proposals is not None:
        data["proposals"] = _proposal_summary(
            explanation, explanation.proposals, top_k, score_threshold
        )
    return data


def _location_summary(explanation: Explanation) -> dict[str, Any]:
    """Panel 1's cell and its anchors: box, IoU with the chosen GT box, label."""
    location = explanation.location
    boxes = explanation.to_original(explanation.anchors[location.anchor_indices])
    codes = label_codes(explanation)[location.anchor_indices]
    return {
        "level": explanation.levels[location.level].name,
        "row": location.row,
        "col": location.col,
        "ground_truth_index": location.gt_index,
        "anchors": [
            {"box": _rounded(box), "iou": round(iou, 4), "label": CODE_NAMES[code]}
            for box, iou, code in zip(
                boxes.tolist(), location.iou.tolist(), codes.tolist(), strict=True
            )
        ],
    }


def _level_summary(explanation: Explanation, grid: LevelGrid) -> dict[str, Any]:
    counts = explanation.counts(slice(grid.start, grid.start + grid.num_anchors))
    return {
        "name": grid.name,
        "grid_size": list(grid.grid_size),
        "stride": list(grid.stride),
        "stride_in_image": list(_image_stride(explanation, grid)),
        "anchors_per_location": grid.anchors_per_location,
        **counts,
    }


def _proposal_summary(
    explanation: Explanation, stages: ProposalStages, top_k: int, score_threshold: float
) -> dict[str, Any]:
    return {
        "kept_by_top_n": stages.num_top_n,
        "before_nms": len(stages.candidates),
        "after_nms": len(stages.boxes),
        "before_nms_top": _scored(stages.candidates[:top_k], stages.candidate_scores[:top_k]),
        "after_nms_top": _scored(stages.boxes[:top_k], stages.scores[:top_k]),
        "score_threshold": score_threshold,
        "detections": _detection_summary(stages.detections, explanation.class_names),
    }


def _detection_summary(
    detections: dict[str, Tensor] | None, names: tuple[str, ...]
) -> list[dict[str, Any]] | None:
    """Each detection's box, class and score; ``None`` where the box head was never
    trained."""
    if detections is None:
        return None
    return [
        {"box": _rounded(box), "name": names[label - 1], "label": label, "score": round(score, 4)}
        for box, label, score in zip(
            detections["boxes"].tolist(),
            detections["labels"].tolist(),
            detections["scores"].tolist(),
            strict=True,
        )
    ]


def _scored(boxes: Tensor, scores: Tensor) -> list[dict[str, Any]]:
    return [
        {"box": _rounded(box), "score": round(score, 4)}
        for box, score in zip(boxes.tolist(), scores.tolist(), strict=True)
    ]


def _rounded(box: list[float]) -> list[float]:
    return [round(value, 1) for value in box]
