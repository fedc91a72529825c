"""Shape-only anchors: k-means of the boxes' widths and heights, as YOLO-style tools fit
them (Redmon and Farhadi 2017: the distance is 1 - IoU of two boxes sharing a centre).

It sees only box shapes: not where anchors sit, nor how far apart a level's centres are.
:mod:`.anchor_fit` starts from it and measures it, as the baseline to beat.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ..config import AnchorConfig

MAX_ITERATIONS = 100


def kmeans_anchors(
    boxes: Tensor,
    num_levels: int,
    sizes_per_level: int,
    ratios_per_level: int,
    offset: float = 0.0,
) -> AnchorConfig:
    """k-means anchors in the config's structure: ``num_levels * sizes_per_level`` shape
    clusters, whose sizes (square root of the area) go to the levels in ascending order,
    and ``ratios_per_level`` clusters of the boxes' log aspect ratios, shared by every
    level. Where the boxes have fewer distinct shapes than that, clusters end on the same
    value; each repeat is moved one rounding step (0.01 px, 0.001 in ratio) above the
    value before it, so that no anchor repeats (the config refuses repeats) and the
    anchors cover the boxes as the clusters do.

    Args:
        boxes: ``(G, 4)`` boxes (``x1, y1, x2, y2``), as the model sees them.
        num_levels / sizes_per_level / ratios_per_level: the structure of the result.
        offset: the anchor offset of the result.
    """
    boxes = boxes.to(torch.float64)
    shapes = torch.stack((boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]), dim=1)
    centroids = shape_kmeans(shapes, num_levels * sizes_per_level)
    sizes = _ascending_distinct((centroids[:, 0] * centroids[:, 1]).sqrt().tolist(), 2)
    log_ratios = (shapes[:, 1] / shapes[:, 0]).log()[:, None]
    ratios = kmeans(log_ratios, ratios_per_level, _one_dimensional_distance)[:, 0].exp()
    return AnchorConfig(
        sizes=tuple(
            sizes[start : start + sizes_per_level]
            for start in range(0, len(sizes), sizes_per_level)
        ),
        aspect_ratios=(_ascending_distinct(ratios.tolist(), 3),) * num_levels,
        offset=offset,
    )


def _ascending_distinct(values: list[float], decimals: int) -> tuple[float, ...]:
    """``values`` rounded to ``decimals``, ascending, each one that repeats the value
    before it moved one step of ``10**-decimals`` above it."""
    step = 10.0**-decimals
    distinct: list[float] = []
    for value in sorted(round(v, decimals) for v in values):
        if distinct and value <= distinct[-1]:
            value = round(distinct[-1] + step, decimals)
        distinct.append(value)
    return tuple(distinct)


def shape_kmeans(shapes: Tensor, k: int) -> Tensor:
    """``(k, 2)`` widths and heights of ``k`` clusters of ``(G, 2)`` box shapes under the
    distance 1 - IoU of centred boxes."""
    return kmeans(shapes, k, _shape_distance)


def kmeans(points: Tensor, k: int, distance: Callable[[Tensor, Tensor], Tensor]) -> Tensor:
    """Lloyd's k-means of ``(G, D)`` points under ``distance(points, centroids) -> (G, k)``,
    started deterministically at quantiles of the first coordinate's order (by the product
    of the coordinates for shapes) and run until no point changes cluster. A cluster
    that loses every point keeps its centroid. Returns ``(k, D)`` centroids."""
    order = points.prod(dim=1).argsort()
    picks = torch.linspace(0, len(points) - 1, k).round().long()
    centroids = points[order[picks]].clone()
    assignment = None
    for _ in range(MAX_ITERATIONS):
        new = distance(points, centroids).argmin(dim=1)
        if assignment is not None and torch.equal(new, assignment):
            break
        assignment = new
        for cluster in range(k):
            members = points[assignment == cluster]
            if len(members):
                centroids[cluster] = members.mean(dim=0)
    return centroids


def _shape_distance(shapes: Tensor, centroids: Tensor) -> Tensor:
    """``(G, k)`` 1 - IoU of box shapes and centroid shapes sharing a centre."""
    inter = shapes[:, None, 0].minimum(centroids[None, :, 0]) * shapes[:, None, 1].minimum(
        centroids[None, :, 1]
    )
    union = shapes.prod(dim=1)[:, None] + centroids.prod(dim=1)[None, :] - inter
    return 1 - inter / union


def _one_dimensional_distance(points: Tensor, centroids: Tensor) -> Tensor:
    """``(G, k)`` absolute differences of ``(G, 1)`` points and ``(k, 1)`` centroids."""
    return (points - centroids.T).abs()
