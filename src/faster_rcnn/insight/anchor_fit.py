"""Anchor fitting: the anchor sizes and aspect ratios that give the most GT boxes a positive
anchor, on the model's own anchor grid.

The RPN learns a box well when some anchor overlaps it by the positive threshold (the
paper's 0.7): that anchor is trained to score it and to regress onto it. Whether a box
gets one depends on the anchor shapes *and* on where the anchors sit: centres every
``stride`` pixels of a level, less the anchors the border policy leaves out. A 20 px box
between the centres of a stride-32 grid reaches IoU 0.7 with no 20 px anchor at all.
Clustering box shapes (k-means on width and height, as YOLO-style tools do) ignores both;
this fit measures every candidate shape on every level's real grid for every box, as the
model sees it (resized, on its padded batch), and chooses per level the sizes and ratios
that cover the most boxes.

The best IoU of one anchor shape on one level with one box has a closed form: with the
shape fixed, the overlap along x depends only on the distance between the anchor's and
the box's centres along x, and shrinks as it grows (likewise along y), so the best anchor
is the one whose centre is nearest the box's centre on each axis among the anchors
inside the border. :func:`best_iou_on_level` computes it for every (shape, box) pair
at once; the search then runs on these numbers alone.

The search (:class:`CoverageSearch`) chooses the config's structure (``S`` sizes x ``R``
aspect ratios) one set at a time given the others: exactly when the options are few,
else by replacing a size and a ratio together, pair of slots by pair, until nothing
improves. It starts from the model's anchors and from the k-means anchors
(:mod:`.anchor_kmeans`) and keeps the better end, unless the model's anchors themselves,
whose shapes the candidates' ladders may miss, cover as many boxes with as high a mean
best IoU: a fit never covers the boxes worse than the anchors it would replace.

Two defaults come from training A/Bs (3 seeds each, `benchmarks/anchor_fit_ab.md`). One
set of shapes is chosen for every level, scaled with the level's stride
(:class:`LevelTying`), because one RPN head predicts every level; and boxes count as
covered at the RPN's own positive IoU. On the synthetic shapes with the ``small`` preset
(positives at 0.5), anchors chosen level by level for IoU 0.7 covered 62% of the boxes
at 0.7 against the preset's 40%, yet trained to a recall@300 at IoU 0.7 of 0.60 against
0.91: they covered fewer boxes at the 0.5 the RPN trains with, and a shared head learns
shapes that differ level by level poorly.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ..anchors import base_anchors
from ..config import AnchorConfig
from ..model import FasterRCNN
from .anchor_coverage import ImageBoxes, PaddedBatchAnchors, resized_targets
from .anchor_kmeans import kmeans_anchors

# Candidate sizes: a geometric ladder of this many steps an octave over the boxes' sizes.
SIZE_STEPS_PER_OCTAVE = 6
# Candidate aspect ratios (height / width): 2^(k/4), within the boxes' ratios, at most 32:
# a box of 1:20 (a pole, a line of text) reaches IoU 0.46 at best with any 1:8 anchor, so
# a ladder capped at 8 covered none that k-means' 1:20 anchors cover at 0.5; an anchor of
# ratio q reaches sqrt(q / r) / (2 - sqrt(q / r)) with a box of r, 0.5 up to 1:72 for 1:32.
RATIO_STEPS_PER_OCTAVE = 4
MAX_ASPECT_RATIO = 32.0
# Boxes the search runs on: a fixed random subset of larger datasets.
MAX_FIT_BOXES = 5000
MAX_PASSES = 10
# A set is chosen exhaustively when it has at most this many options, and this many
# options times boxes: small problems are solved exactly.
MAX_EXHAUSTIVE_OPTIONS = 5000
MAX_EXHAUSTIVE_WORK = 20_000_000


@dataclass(frozen=True)
class GridBoxes:
    """GT boxes as the model sees them, with the anchor grid of each one's image.

    Attributes:
        boxes: ``(G, 4)`` float64 boxes in resized-image pixels.
        image_sizes: ``(G, 2)`` float64 ``(height, width)`` of each box's resized image.
        grid_sizes: ``(G, L, 2)`` float64 ``(H_l, W_l)`` of every anchor level's map.
        strides: ``(G, L, 2)`` float64 ``(stride_h, stride_w)`` of every level.
    """

    boxes: Tensor
    image_sizes: Tensor
    grid_sizes: Tensor
    strides: Tensor

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    def subset(self, index: Tensor) -> GridBoxes:
        """The boxes ``index`` picks."""
        return GridBoxes(
            self.boxes[index], self.image_sizes[index], self.grid_sizes[index], self.strides[index]
        )


def grid_boxes(model: FasterRCNN, targets: Iterable[ImageBoxes]) -> GridBoxes:
    """Every GT box of ``targets`` (per image: ``(height, width)`` and ``(G_i, 4)`` boxes)
    with the grid the model's anchors sit on for its image."""
    grids = PaddedBatchAnchors.of_model(model)
    boxes, sizes, grid_sizes, strides = [], [], [], []
    for image in resized_targets(model, targets):
        count = len(image.boxes)
        padded = torch.tensor(image.padded_size, dtype=torch.float64)
        grid = torch.tensor(grids.grid_sizes(image.padded_size), dtype=torch.float64)
        boxes.append(image.resized_boxes.to(torch.float64))
        sizes.append(torch.tensor(image.image_size, dtype=torch.float64).expand(count, 2))
        grid_sizes.append(grid.expand(count, -1, -1))
        # As the anchor generator: the padded size divided, in integers, by the map's.
        strides.append(torch.div(padded, grid, rounding_mode="floor").expand(count, -1, -1))
    if not boxes:
        raise ValueError("the dataset has no ground-truth boxes to fit anchors to")
    return GridBoxes(torch.cat(boxes), torch.cat(sizes), torch.cat(grid_sizes), torch.cat(strides))


def best_iou_on_level(
    boxes: GridBoxes, level: int, shapes: Tensor, offset: float, allowed_border: float
) -> Tensor:
    """The best IoU each anchor shape reaches with each box on one level's grid.

    Args:
        boxes: ``G`` boxes and their grids.
        level: which anchor level's grid.
        shapes: ``(S, 4)`` origin-centred anchors (:func:`~faster_rcnn.anchors.base_anchors`).
        offset: anchor centres at ``(index + offset) * stride``.
        allowed_border: the RPN's border policy (-1: every anchor counts).

    Returns:
        ``(S, G)`` float64 IoU; 0 where every anchor of the shape crosses the border.
    """
    shapes = shapes.to(torch.float64)
    overlap = []
    for axis in (0, 1):  # x, then y
        overlap.append(
            _best_overlap(
                boxes.boxes[:, axis],
                boxes.boxes[:, axis + 2],
                boxes.image_sizes[:, 1 - axis],
                boxes.grid_sizes[:, level, 1 - axis],
                boxes.strides[:, level, 1 - axis],
                shapes[:, axis],
                shapes[:, axis + 2],
                offset,
                allowed_border,
            )
        )
    intersection = overlap[0] * overlap[1]
    box_area = (boxes.boxes[:, 2] - boxes.boxes[:, 0]) * (boxes.boxes[:, 3] - boxes.boxes[:, 1])
    shape_area = (shapes[:, 2] - shapes[:, 0]) * (shapes[:, 3] - shapes[:, 1])
    return intersection / (shape_area[:, None] + box_area[None, :] - intersection)


def _best_overlap(
    low: Tensor,
    high: Tensor,
    extent: Tensor,
    cells: Tensor,
    stride: Tensor,
    shape_low: Tensor,
    shape_high: Tensor,
    offset: float,
    allowed_border: float,
) -> Tensor:
    """``(S, G)`` the longest overlap along one axis of boxes ``[low, high]`` (``(G,)``
    each) with anchors ``[centre + shape_low, centre + shape_high]`` (``(S,)`` each)
    centred on the grid ``(index + offset) * stride``, ``index`` in ``[0, cells)`` and
    inside ``[-allowed_border, extent + allowed_border]`` when ``allowed_border >= 0``."""
    shape_centre = (shape_low + shape_high)[:, None] / 2
    ideal = ((low + high)[None, :] / 2 - shape_centre) / stride - offset
    first = torch.zeros_like(ideal)
    last = (cells - 1).expand_as(ideal)
    if allowed_border >= 0:
        first = first.maximum(torch.ceil((-allowed_border - shape_low[:, None]) / stride - offset))
        last = last.minimum(
            torch.floor((extent + allowed_border - shape_high[:, None]) / stride - offset)
        )
    best = torch.zeros_like(ideal)
    for index in (ideal.floor(), ideal.ceil()):
        centre = (index.clamp(min=first).minimum(last) + offset) * stride
        reach = (high.minimum(centre + shape_high[:, None])) - low.maximum(
            centre + shape_low[:, None]
        )
        best = best.maximum(reach.clamp(min=0))
    return best.masked_fill(first > last, 0.0)


@dataclass(frozen=True)
class LevelTying:
    """How the anchor levels share what the search chooses.

    The RPN's head is shared by every level, so its ``a``-th output predicts the ``a``-th
    anchor of every level from features of that level's scale: FPN anchors are the same
    shapes scaled with the stride (torchvision: 32 at stride 4 ... 512 at stride 64).
    Tied, one set of sizes and ratios is chosen and each level takes the sizes times its
    stride over the finest stride (a power of two); untied, every level is chosen alone,
    the best the geometry allows but harder for a shared head to learn.

    Attributes:
        groups: per level, which chosen set it takes.
        scales: per level, the factor on that set's sizes.
    """

    groups: tuple[int, ...]
    scales: tuple[float, ...]

    @classmethod
    def tied(cls, boxes: GridBoxes) -> LevelTying:
        """One set for all levels, scaled by the levels' strides (rounded to powers of 2)."""
        strides = boxes.strides.amax(dim=2).median(dim=0).values
        octaves = (strides / strides.min()).log2().round()
        return cls((0,) * len(strides), tuple((2.0**octaves).tolist()))

    @classmethod
    def untied(cls, num_levels: int) -> LevelTying:
        """A set of its own for every level."""
        return cls(tuple(range(num_levels)), (1.0,) * num_levels)

    @property
    def num_groups(self) -> int:
        return max(self.groups) + 1


@dataclass(frozen=True)
class Candidates:
    """The anchor shapes the search chooses from, measured on every box.

    Attributes:
        sizes: ``(Z,)`` candidate sizes (square root of the area), ascending, at scale 1.
        ratios: ``(R,)`` candidate aspect ratios (height / width), ascending.
        quality: ``(S, Z, R, G)`` float32 best IoU with box ``g`` of size ``z`` and ratio
            ``r`` of set ``s``, over the levels that take set ``s`` (at their scale).
        tying: which levels take which set.
    """

    sizes: Tensor
    ratios: Tensor
    quality: Tensor
    tying: LevelTying


def measure_candidates(
    boxes: GridBoxes, tying: LevelTying, offset: float, allowed_border: float
) -> Candidates:
    """Every candidate shape (a ladder of sizes and ratios spanning the boxes') on every
    level at that level's scale, against every box."""
    sizes = candidate_sizes(boxes.boxes, min(tying.scales), max(tying.scales))
    ratios = candidate_ratios(boxes.boxes)
    shape = (tying.num_groups, len(sizes), len(ratios), len(boxes))
    quality = torch.zeros(shape, dtype=torch.float32)
    for level, (group, scale) in enumerate(zip(tying.groups, tying.scales, strict=True)):
        for r, ratio in enumerate(ratios.tolist()):
            shapes = base_anchors((sizes * scale).tolist(), [ratio])
            iou = best_iou_on_level(boxes, level, shapes, offset, allowed_border)
            quality[group, :, r] = quality[group, :, r].maximum(iou.float())
    return Candidates(sizes, ratios, quality, tying)


def candidate_sizes(boxes: Tensor, low_scale: float = 1.0, high_scale: float = 1.0) -> Tensor:
    """``(Z,)`` sizes on the ladder ``2^(k / steps)``, :data:`SIZE_STEPS_PER_OCTAVE` an
    octave, that reach from half the smallest box's size at ``high_scale`` to twice the
    largest's at ``low_scale`` (at least 4 px)."""
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    low = math.log2(max(float(areas.min().sqrt()) / 2 / high_scale, 4.0))
    high = math.log2(max(float(areas.max().sqrt()) * 2 / low_scale, 8.0))
    steps = SIZE_STEPS_PER_OCTAVE
    exponents = torch.arange(math.floor(low * steps), math.ceil(high * steps) + 1)
    # Rounded as they will be written to a config file, so that what is measured is that.
    return (2.0 ** (exponents.to(torch.float64) / steps)).round(decimals=2)


def candidate_ratios(boxes: Tensor) -> Tensor:
    """``(R,)`` ratios ``2^(k / steps)`` spanning the boxes' (within ``1/32 .. 32``), at least
    the three usual ones (1:2, 1:1, 2:1)."""
    ratios = (boxes[:, 3] - boxes[:, 1]) / (boxes[:, 2] - boxes[:, 0])
    limit = math.log2(MAX_ASPECT_RATIO)
    low = max(min(math.log2(float(ratios.min())), -1.0), -limit)
    high = min(max(math.log2(float(ratios.max())), 1.0), limit)
    steps = RATIO_STEPS_PER_OCTAVE
    exponents = torch.arange(math.floor(low * steps), math.ceil(high * steps) + 1)
    return (2.0 ** (exponents.to(torch.float64) / steps)).round(decimals=3)


# One set's chosen sizes and ratios, as indices among the candidates.
SetSelection = tuple[tuple[int, ...], tuple[int, ...]]
# Per set of shapes (see LevelTying): its selection.
Selection = tuple[SetSelection, ...]


class CoverageSearch:
    """Ascent of the boxes covered at ``iou`` over selections of candidates, one set of
    shapes at a time given the others: exhaustively when the set's options are few,
    else by replacing a size and a ratio together, every (size, ratio) pair of slots in
    turn (which moves single slots too), until a whole pass changes nothing.

    Args:
        candidates: the measured candidate shapes.
        iou: a box is covered when some selected anchor reaches this IoU with it.
    """

    def __init__(self, candidates: Candidates, iou: float) -> None:
        self.quality = candidates.quality
        self.iou = iou

    def score(self, best: Tensor) -> Tensor:
        """``(..., G)`` best IoU per box -> ``(...)`` the number of boxes covered, ties
        broken by how close the others come (a number below 1)."""
        covered = (best >= self.iou).sum(dim=-1).to(torch.float64)
        closeness = best.clamp(max=self.iou).to(torch.float64).mean(dim=-1) / self.iou
        return covered + closeness * 0.999

    def best_iou(self, selection: Selection) -> Tensor:
        """``(G,)`` the best IoU of each box with the selected shapes."""
        per_set = [self._set_best(group, *pair) for group, pair in enumerate(selection)]
        return torch.stack(per_set).amax(dim=0)

    def _set_best(self, group: int, sizes: Sequence[int], ratios: Sequence[int]) -> Tensor:
        """``(G,)`` the best IoU of each box with one set's selected shapes."""
        if not sizes or not ratios:
            return torch.zeros(self.quality.shape[-1])
        block = self.quality[group, list(sizes)][:, list(ratios)]
        return block.flatten(0, 1).amax(dim=0)

    def run(self, start: Selection) -> Selection:
        """Improve ``start`` set by set until a whole pass changes nothing."""
        selection = list(start)
        per_set = [self._set_best(group, *pair) for group, pair in enumerate(selection)]
        for _ in range(MAX_PASSES):
            changed = False
            for group, pair in enumerate(selection):
                others = [best for i, best in enumerate(per_set) if i != group]
                elsewhere = torch.stack(others).amax(dim=0) if others else per_set[group] * 0
                chosen = self._improve_set(group, pair, elsewhere)
                if chosen != pair:
                    selection[group] = chosen
                    per_set[group] = self._set_best(group, *chosen)
                    changed = True
            if not changed:
                break
        return tuple(selection)

    def _improve_set(self, group: int, pair: SetSelection, elsewhere: Tensor) -> SetSelection:
        """A better selection of one set given the ``(G,)`` best IoU of the others."""
        num_sizes, num_ratios, num_boxes = self.quality.shape[1:]
        options = math.comb(num_sizes, len(pair[0])) * math.comb(num_ratios, len(pair[1]))
        if options <= MAX_EXHAUSTIVE_OPTIONS and options * num_boxes <= MAX_EXHAUSTIVE_WORK:
            return self._exhaustive(group, pair, elsewhere)
        for i, j in itertools.product(range(len(pair[0])), range(len(pair[1]))):
            pair = self._improve_slots(group, pair, (i, j), elsewhere)
        return pair

    def _exhaustive(self, group: int, pair: SetSelection, elsewhere: Tensor) -> SetSelection:
        """The best of every selection of as many sizes and ratios as ``pair`` has; the
        current one unless another scores strictly higher."""
        quality = self.quality[group]
        ratio_sets = torch.tensor(
            list(itertools.combinations(range(quality.shape[1]), len(pair[1])))
        )
        best, best_score = pair, float(self.score(self._set_best(group, *pair).maximum(elsewhere)))
        for sizes in itertools.combinations(range(quality.shape[0]), len(pair[0])):
            per_ratio = quality[list(sizes)].amax(dim=0)  # (R, G)
            scores = self.score(per_ratio[ratio_sets].amax(dim=1).maximum(elsewhere))
            top = int(scores.argmax())
            if float(scores[top]) > best_score:
                best, best_score = (sizes, tuple(ratio_sets[top].tolist())), float(scores[top])
        return best

    def _improve_slots(
        self, group: int, pair: SetSelection, slots: tuple[int, int], elsewhere: Tensor
    ) -> SetSelection:
        """``pair`` with its size ``slots[0]`` and ratio ``slots[1]`` replaced by the best
        (size, ratio) together; unchanged unless another scores strictly higher."""
        sizes, ratios = pair
        kept_sizes = [v for k, v in enumerate(sizes) if k != slots[0]]
        kept_ratios = [v for k, v in enumerate(ratios) if k != slots[1]]
        quality = self.quality[group]  # (Z, R, G)
        options = quality.maximum(self._set_best(group, kept_sizes, kept_ratios)).maximum(elsewhere)
        if kept_ratios:  # a new size also meets the kept ratios
            options = options.maximum(quality[:, kept_ratios].amax(dim=1)[:, None])
        if kept_sizes:  # a new ratio also meets the kept sizes
            options = options.maximum(quality[kept_sizes].amax(dim=0)[None])
        scores = self.score(options)  # (Z, R)
        scores[kept_sizes] = -1.0
        scores[:, kept_ratios] = -1.0
        size, ratio = divmod(int(scores.argmax()), scores.shape[1])
        if scores[size, ratio] <= scores[sizes[slots[0]], ratios[slots[1]]]:
            return pair
        return tuple(sorted([*kept_sizes, size])), tuple(sorted([*kept_ratios, ratio]))


@dataclass(frozen=True)
class AnchorFit:
    """A fitted anchor config and the share of boxes it covers.

    Attributes:
        anchors: the fitted anchors (the model's offset).
        start: the anchors the search started from (the model's).
        kmeans: the shape-only k-means anchors of the same structure.
        covered: anchors name (``"start"``, ``"kmeans"``, ``"fitted"``) -> share of the
            fitted boxes covered at ``iou`` (closed form, on the search's boxes).
        iou: the coverage threshold.
        num_boxes: boxes the search ran on.
        start_kept: the fitted anchors are the model's: the search's best covers no more
            boxes at ``iou``, nor as many with a higher mean best IoU.
    """

    anchors: AnchorConfig
    start: AnchorConfig
    kmeans: AnchorConfig
    covered: dict[str, float]
    iou: float
    num_boxes: int
    start_kept: bool


@torch.no_grad()
def fit_anchors(
    model: FasterRCNN,
    targets: Iterable[ImageBoxes],
    iou: float | None = None,
    anchors_per_location: int | None = None,
    tie_levels: bool = True,
    max_boxes: int = MAX_FIT_BOXES,
    seed: int = 0,
) -> AnchorFit:
    """Anchors for the model's grid that give the most boxes an anchor at ``iou``.

    Args:
        model: the detector whose grid, transform and border policy are used.
        targets: per image, ``(height, width)`` and ``(G_i, 4)`` GT boxes in its pixels.
        iou: the coverage threshold; default the RPN's positive threshold.
        anchors_per_location: sizes x ratios per level, every factorisation tried (15 =
            5 x 3, 3 x 5, 15 x 1 or 1 x 15); default the model's sizes and ratios per level.
        tie_levels: one set of shapes scaled with the stride on every level
            (:class:`LevelTying`); else each level chosen alone.
        max_boxes: the search runs on at most this many boxes (a seeded random subset).
        seed: which subset.
    """
    config = model.config
    iou = config.rpn.fg_iou_thresh if iou is None else iou
    start = config.anchors
    boxes = grid_boxes(model, targets)
    if len(boxes) > max_boxes:
        generator = torch.Generator().manual_seed(seed)
        boxes = boxes.subset(torch.randperm(len(boxes), generator=generator)[:max_boxes])
    border = config.rpn.allowed_border
    tying = LevelTying.tied(boxes) if tie_levels else LevelTying.untied(len(start.sizes))
    candidates = measure_candidates(boxes, tying, start.offset, border)
    search = CoverageSearch(candidates, iou)
    if anchors_per_location is None:
        structures = [(len(start.sizes[0]), len(start.aspect_ratios[0]))]
    else:
        structures = factorisations(
            anchors_per_location, len(candidates.sizes), len(candidates.ratios)
        )
    fits = [_fit_structure(search, candidates, boxes, start, s) for s in structures]
    fitted, kmeans = max(fits, key=lambda fit: float(search.score(search.best_iou(fit[0]))))
    anchors = selection_config(fitted, candidates, start.offset)
    # The model's own shapes, which the candidates' ladders may miss, stay unless the fit
    # covers the boxes better: the search is indifferent above ``iou``, and fitted one box
    # at 0.60 where the preset's anchors reach 0.78.
    same_count = anchors.num_anchors_per_location() == start.num_anchors_per_location()
    start_kept = same_count and not _covers_better(anchors, start, boxes, border, iou)
    anchors = start if start_kept else anchors
    covered = {
        "start": covered_share(start, boxes, border, iou),
        "kmeans": covered_share(kmeans, boxes, border, iou),
        "fitted": covered_share(anchors, boxes, border, iou),
    }
    return AnchorFit(anchors, start, kmeans, covered, iou, len(boxes), start_kept)


def _fit_structure(
    search: CoverageSearch,
    candidates: Candidates,
    boxes: GridBoxes,
    start: AnchorConfig,
    structure: tuple[int, int],
) -> tuple[Selection, AnchorConfig]:
    """The best selection of ``structure`` = (sizes, ratios) per set, ascending from
    the model's anchors and from k-means; and the k-means anchors."""
    kmeans = kmeans_anchors(boxes.boxes, len(start.sizes), *structure, offset=start.offset)
    ends = [search.run(snap(anchors, candidates, structure)) for anchors in (start, kmeans)]
    best = max(ends, key=lambda end: float(search.score(search.best_iou(end))))
    return best, kmeans


def _covers_better(
    anchors: AnchorConfig, other: AnchorConfig, boxes: GridBoxes, allowed_border: float, iou: float
) -> bool:
    """Whether ``anchors`` give more ``boxes`` an anchor at ``iou`` than ``other``, or as
    many with a higher mean best IoU (closed form, float64)."""
    first, second = (anchor_best_iou(config, boxes, allowed_border) for config in (anchors, other))
    covered = [int((best >= iou).sum()) for best in (first, second)]
    if covered[0] != covered[1]:
        return covered[0] > covered[1]
    return float(first.mean()) > float(second.mean())


def check_anchors_per_location(count: int, max_size: int) -> None:
    """Refuse ``count`` anchors per location that no boxes could fit, before any are
    read: no ``sizes * ratios == count`` within the most candidates :func:`candidate_sizes`
    and :func:`candidate_ratios` give for boxes in images resized to at most ``max_size``
    a side (readers clip boxes to their image): those of a 1 px box, of the most
    elongated ones and of the whole image (1 % larger: a resized box may pass the side
    by a rounding error).

    Raises:
        ValueError: naming the count and those limits.
    """
    side = 1.01 * max_size
    extremes = torch.tensor(
        [[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 64.0], [0.0, 0.0, 64.0, 1.0], [0.0, 0.0, side, side]]
    )
    sizes, ratios = len(candidate_sizes(extremes)), len(candidate_ratios(extremes))
    try:
        factorisations(count, sizes, ratios)
    except ValueError:
        raise ValueError(
            f"--anchors-per-location {count} is no sizes x ratios within the candidate "
            f"shapes: at most {sizes} sizes and {ratios} ratios for images of --max-size "
            f"{max_size}"
        ) from None


def factorisations(count: int, max_sizes: int, max_ratios: int) -> list[tuple[int, int]]:
    """Every ``(sizes, ratios)`` with ``sizes * ratios == count`` within the candidates
    (the sizes tried up to ``max_sizes`` only: a count of 10**18 is refused at once)."""
    pairs = [(s, count // s) for s in range(1, min(count, max_sizes) + 1) if count % s == 0]
    pairs = [(s, r) for s, r in pairs if r <= max_ratios]
    if not pairs:
        raise ValueError(f"{count} anchors per location do not fit the candidate shapes")
    return pairs


def covered_share(
    anchors: AnchorConfig, boxes: GridBoxes, allowed_border: float, iou: float
) -> float:
    """The share of ``boxes`` that some anchor of ``anchors`` overlaps by ``iou`` or more."""
    return float((anchor_best_iou(anchors, boxes, allowed_border) >= iou).double().mean())


def anchor_best_iou(anchors: AnchorConfig, boxes: GridBoxes, allowed_border: float) -> Tensor:
    """``(G,)`` float64 the best IoU of each box with any anchor of ``anchors`` (closed
    form)."""
    best = torch.zeros(len(boxes), dtype=torch.float64)
    for level, (sizes, ratios) in enumerate(zip(anchors.sizes, anchors.aspect_ratios, strict=True)):
        shapes = base_anchors(sizes, ratios)
        level_best = best_iou_on_level(boxes, level, shapes, anchors.offset, allowed_border)
        best = best.maximum(level_best.amax(dim=0))
    return best


def snap(anchors: AnchorConfig, candidates: Candidates, structure: tuple[int, int]) -> Selection:
    """The candidates nearest (in log scale) to ``anchors``, ``structure`` = (sizes, ratios)
    distinct ones per set: each set from the first level that takes it, at scale 1."""
    tying = candidates.tying
    selection = []
    for group in range(tying.num_groups):
        level = tying.groups.index(group)
        sizes = [size / tying.scales[level] for size in anchors.sizes[level]]
        selection.append(
            (
                _nearest_distinct(sizes, candidates.sizes, structure[0]),
                _nearest_distinct(anchors.aspect_ratios[level], candidates.ratios, structure[1]),
            )
        )
    return tuple(selection)


def _nearest_distinct(values: Sequence[float], ladder: Tensor, count: int) -> tuple[int, ...]:
    """Indices of ``count`` distinct ladder values nearest to ``values`` (resampled
    geometrically to ``count`` values when their number differs)."""
    logs = torch.tensor(values, dtype=torch.float64).log()
    if count == 1:
        logs = logs.mean().reshape(1)
    elif len(values) != count:
        logs = torch.linspace(float(logs.min()), float(logs.max()), count, dtype=torch.float64)
    distance = (ladder.log()[None, :] - logs[:, None]).abs()
    chosen: list[int] = []
    for row in distance:
        row = row.clone()
        row[chosen] = math.inf
        chosen.append(int(row.argmin()))
    return tuple(sorted(chosen))


def selection_config(selection: Selection, candidates: Candidates, offset: float) -> AnchorConfig:
    """The :class:`AnchorConfig` of a selection: each level takes its set's sizes at its
    scale and its set's ratios."""
    tying = candidates.tying
    sizes, ratios = [], []
    for group, scale in zip(tying.groups, tying.scales, strict=True):
        chosen_sizes, chosen_ratios = selection[group]
        sizes.append(
            tuple(round(s * scale, 2) for s in candidates.sizes[list(chosen_sizes)].tolist())
        )
        ratios.append(tuple(candidates.ratios[list(chosen_ratios)].tolist()))
    return AnchorConfig(sizes=tuple(sizes), aspect_ratios=tuple(ratios), offset=offset)
