"""RoI feature extraction: RoIAlign (He et al., Mask R-CNN) and RoIPool (Girshick, Fast R-CNN).

Both turn each region of interest into a fixed ``output_size`` grid of features, with
torchvision's exact semantics (its CPU kernels ``roi_align_kernel.cpp`` and
``roi_pool_kernel.cpp``), in plain tensor operations so that they run on any device and
are differentiable by autograd.

Both are computed the same way. A bin of the output grid reads a small window of the
feature map, and a bin's output is a reduction over the feature rows of a channels-last
copy of the map (one contiguous row of ``C`` values per position) at its window's
positions: a weighted sum for RoIAlign (``embedding_bag``, which never materialises the
gathered rows), a maximum for RoIPool (gathered a cache-sized group of RoIs at a time).
RoIs are grouped by window size so that small windows are not padded to the largest.

RoIAlign's bilinear sampling is separable: the weight of feature ``(y, x)`` in a bin is a
sum over sampling points of ``wy(y) * wx(x)``, and the kernel's "outside the map" test is a
product of a test on ``y`` and a test on ``x``. So each axis is reduced to a short list of
taps (feature row or column, weight) per bin, and a bin's window is the outer product of
its row taps and column taps.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# RoIPool gathers the feature values of a group of RoIs at once: few enough to stay in the
# CPU's cache for the reduction that follows.
_POOL_GATHER_BUDGET = 1 << 19
# RoIs are grouped by window size; a group's windows, all as large as its largest RoI's,
# may need at most this many times the positions its RoIs need.
_MAX_PADDING = 1.25


def roi_align(
    input: Tensor,
    boxes: Tensor | list[Tensor],
    output_size: int | tuple[int, int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = -1,
    aligned: bool = False,
) -> Tensor:
    """RoIAlign: average of bilinearly interpolated samples over each bin of each RoI.

    Same semantics as ``torchvision.ops.roi_align``. A RoI ``(x1, y1, x2, y2)`` is mapped
    to feature coordinates by ``spatial_scale`` (minus half a pixel when ``aligned``) and
    split into ``output_size`` bins; each bin averages ``grid_h x grid_w`` bilinear samples
    placed at the centres of a regular sub-grid. Differentiable with respect to ``input``
    and to the box coordinates.

    Args:
        input: ``(N, C, H, W)`` feature maps.
        boxes: ``(K, 5)`` rows ``[batch_index, x1, y1, x2, y2]``, or a list of ``N``
            tensors ``(K_i, 4)`` of boxes in image ``i``.
        output_size: ``(out_h, out_w)``, or one int for both.
        spatial_scale: feature-map size over image size (``1 / stride``).
        sampling_ratio: samples per bin along each axis; ``<= 0`` uses
            ``ceil(roi_size / output_size)`` per RoI, as torchvision does.
        aligned: shift the box by half a pixel so that pixel centres line up (detectron2's
            ROIAlignV2); ``False`` is the original Mask R-CNN / torchvision default, which
            also stretches RoIs smaller than one feature pixel to one pixel.

    Returns:
        ``(K, C, out_h, out_w)`` pooled features, in ``input``'s dtype and memory layout
        (channels-last for a channels-last map).
    """
    pooled_h, pooled_w = _pair(output_size)
    compute_dtype = _compute_dtype(input.dtype)
    features = input.to(compute_dtype)
    rois = _as_rois(boxes, compute_dtype, input.device)
    channels, height, width = features.shape[1:]
    if rois.shape[0] == 0:
        return _empty_output(input, pooled_h, pooled_w)

    batch_index = rois[:, 0].to(torch.int64)
    start_x, bin_w = _align_bins(rois[:, 1], rois[:, 3], spatial_scale, pooled_w, aligned)
    start_y, bin_h = _align_bins(rois[:, 2], rois[:, 4], spatial_scale, pooled_h, aligned)
    adaptive = sampling_ratio <= 0
    grid_h = _samples_per_bin(bin_h, sampling_ratio)
    grid_w = _samples_per_bin(bin_w, sampling_ratio)
    count = (grid_h * grid_w).clamp(min=1).to(compute_dtype)

    rows, row_weights, num_rows = _bilinear_taps(start_y, bin_h, grid_h, pooled_h, height, adaptive)
    cols, col_weights, num_cols = _bilinear_taps(start_x, bin_w, grid_w, pooled_w, width, adaptive)
    # Adaptive grids make the tap count differ per RoI: RoIs of similar size are grouped
    # so that short tap lists are not padded to the longest one.
    order = torch.argsort(num_rows * num_cols) if adaptive else None

    taps, tap_weights, bag_starts = [], [], []
    num_taps = 0
    for group, group_rows, group_cols in _group_by_window(num_rows, num_cols, order):
        flat_idx = _window_indices(
            batch_index[group],
            rows[group, :, :group_rows],
            cols[group, :, :group_cols],
            height,
            width,
        )
        weights = (
            row_weights[group, :, None, :group_rows, None]
            * col_weights[group, None, :, None, :group_cols]
        )
        taps.append(flat_idx.flatten())
        tap_weights.append(weights.flatten())
        window = group_rows * group_cols
        bag_starts.append(
            torch.arange(num_taps, num_taps + flat_idx.numel(), window, device=input.device)
        )
        num_taps += flat_idx.numel()
    per_bin = _bag_sums(features, torch.cat(taps), torch.cat(tap_weights), torch.cat(bag_starts))
    if order is not None:
        count = count[order]
    output = per_bin.view(-1, pooled_h, pooled_w, channels) / count[:, None, None, None]
    output = _restore_order(output, order)
    return _in_layout_of(input, output).to(input.dtype)


def roi_pool(
    input: Tensor,
    boxes: Tensor | list[Tensor],
    output_size: int | tuple[int, int],
    spatial_scale: float = 1.0,
) -> Tensor:
    """RoIPool: maximum over quantised bins of each RoI (Fast R-CNN; the paper's RoI pooling).

    Same semantics as ``torchvision.ops.roi_pool``: box corners are scaled and rounded to
    the nearest feature cell (halves away from zero), the RoI spans
    ``max(end - start + 1, 1)`` cells, bin ``p`` covers cells
    ``[floor(p * bin), ceil((p + 1) * bin))`` from the RoI start, clipped to the map, and an
    empty bin gives 0. Differentiable with respect to ``input``: the gradient goes to the
    first maximal element of each bin in row-major order.

    Args:
        input: ``(N, C, H, W)`` feature maps.
        boxes: ``(K, 5)`` rows ``[batch_index, x1, y1, x2, y2]``, or a list of ``N``
            tensors ``(K_i, 4)`` of boxes in image ``i``.
        output_size: ``(out_h, out_w)``, or one int for both.
        spatial_scale: feature-map size over image size (``1 / stride``).

    Returns:
        ``(K, C, out_h, out_w)`` pooled features, in ``input``'s dtype and memory layout
        (channels-last for a channels-last map).
    """
    pooled_h, pooled_w = _pair(output_size)
    compute_dtype = _compute_dtype(input.dtype)
    rois = _as_rois(boxes, compute_dtype, input.device)
    channels, height, width = input.shape[1:]
    if rois.shape[0] == 0:
        return _empty_output(input, pooled_h, pooled_w)

    batch_index = rois[:, 0].to(torch.int64)
    corners = _round_half_away_from_zero(rois[:, 1:].detach() * spatial_scale).to(torch.int64)
    rows, num_rows_per_bin = _pool_bins(
        corners[:, 1], corners[:, 3], pooled_h, height, compute_dtype
    )
    cols, num_cols_per_bin = _pool_bins(
        corners[:, 0], corners[:, 2], pooled_w, width, compute_dtype
    )
    num_rows = num_rows_per_bin.amax(dim=1)
    num_cols = num_cols_per_bin.amax(dim=1)
    order = torch.argsort(num_rows * num_cols)

    feature_rows = input.permute(0, 2, 3, 1).reshape(-1, channels).contiguous()
    # With autograd, each bin's maximum is located first and read in one differentiable
    # gather at the end, so that the backward pass builds one gradient, which goes to the
    # first maximum in row-major order like the kernel's argmax.
    track_gradient = feature_rows.requires_grad
    source = feature_rows.detach()
    pooled = []
    for group, group_rows, group_cols in _group_by_window(
        num_rows, num_cols, order, channels * pooled_h * pooled_w, _POOL_GATHER_BUDGET
    ):
        flat_idx = _window_indices(
            batch_index[group],
            rows[group, :, :group_rows],
            cols[group, :, :group_cols],
            height,
            width,
        )
        flat_idx = flat_idx.view(-1, group_rows * group_cols)
        values = source.index_select(0, flat_idx.flatten()).view(*flat_idx.shape, channels)
        if track_gradient:
            pooled.append(flat_idx.gather(1, values.max(dim=1).indices))
        else:
            pooled.append(values.amax(dim=1))
    per_bin = torch.cat(pooled)
    if track_gradient:
        per_bin = feature_rows.gather(0, per_bin)
    empty = (num_rows_per_bin[order, :, None] == 0) | (num_cols_per_bin[order, None, :] == 0)
    output = torch.where(empty[..., None], 0.0, per_bin.view(-1, pooled_h, pooled_w, channels))
    output = _restore_order(output, order)
    return _in_layout_of(input, output)


def memory_format_of(maps: Tensor) -> torch.memory_format:
    """``torch.channels_last`` for ``(N, C, H, W)`` maps stored channels-last, else
    ``torch.contiguous_format``: the layout pooled RoIs take from the maps. Maps that are
    both (a 1x1 map, or a single channel) count as contiguous."""
    channels_last = maps.is_contiguous(memory_format=torch.channels_last)
    return (
        torch.channels_last
        if channels_last and not maps.is_contiguous()
        else torch.contiguous_format
    )


def _in_layout_of(input: Tensor, bins: Tensor) -> Tensor:
    """``(K, C, out_h, out_w)`` from ``(K, out_h, out_w, C)`` bins, in the memory layout of
    the ``(N, C, H, W)`` ``input``, as a convolution would answer: channels-last bins
    are already laid out so (no copy), and contiguous ones are copied into NCHW."""
    return bins.permute(0, 3, 1, 2).contiguous(memory_format=memory_format_of(input))


class RoIAlign(nn.Module):
    """:func:`roi_align` with fixed parameters, as ``torchvision.ops.RoIAlign``."""

    def __init__(
        self,
        output_size: int | tuple[int, int],
        spatial_scale: float,
        sampling_ratio: int,
        aligned: bool = False,
    ) -> None:
        super().__init__()
        self.output_size = output_size
        self.spatial_scale = spatial_scale
        self.sampling_ratio = sampling_ratio
        self.aligned = aligned

    def forward(self, input: Tensor, rois: Tensor | list[Tensor]) -> Tensor:
        """``(N, C, H, W)`` features and ``(K, 5)`` or per-image ``(K_i, 4)`` boxes ->
        ``(K, C, out_h, out_w)``."""
        return roi_align(
            input, rois, self.output_size, self.spatial_scale, self.sampling_ratio, self.aligned
        )

    def extra_repr(self) -> str:
        return (
            f"output_size={self.output_size}, spatial_scale={self.spatial_scale}, "
            f"sampling_ratio={self.sampling_ratio}, aligned={self.aligned}"
        )


class RoIPool(nn.Module):
    """:func:`roi_pool` with fixed parameters, as ``torchvision.ops.RoIPool``."""

    def __init__(self, output_size: int | tuple[int, int], spatial_scale: float) -> None:
        super().__init__()
        self.output_size = output_size
        self.spatial_scale = spatial_scale

    def forward(self, input: Tensor, rois: Tensor | list[Tensor]) -> Tensor:
        """``(N, C, H, W)`` features and ``(K, 5)`` or per-image ``(K_i, 4)`` boxes ->
        ``(K, C, out_h, out_w)``."""
        return roi_pool(input, rois, self.output_size, self.spatial_scale)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}, spatial_scale={self.spatial_scale}"


def _align_bins(
    start: Tensor, end: Tensor, spatial_scale: float, pooled: int, aligned: bool
) -> tuple[Tensor, Tensor]:
    """RoIAlign's RoI start in feature coordinates and bin size along one axis, both
    ``(K,)``, from the ``(K,)`` box starts and ends in image coordinates."""
    offset = 0.5 if aligned else 0.0
    feature_start = start * spatial_scale - offset
    length = end * spatial_scale - offset - feature_start
    if not aligned:
        length = length.clamp(min=1.0)
    return feature_start, length / pooled


def _samples_per_bin(bin_size: Tensor, sampling_ratio: int) -> Tensor:
    """``(K,)`` int64 bilinear samples per RoIAlign bin along one axis, of ``(K,)`` bin
    sizes: ``sampling_ratio``, or where it is ``<= 0`` torchvision's
    ``ceil(roi_size / pooled_size)``; an inverted aligned box, or a NaN one, gets none."""
    if sampling_ratio > 0:
        return torch.full(bin_size.shape, sampling_ratio, dtype=torch.int64, device=bin_size.device)
    return torch.ceil(bin_size.detach()).nan_to_num(0.0).to(torch.int64).clamp(min=0)


def _window_indices(
    batch_index: Tensor, rows: Tensor, cols: Tensor, height: int, width: int
) -> Tensor:
    """Indices into the channels-last feature rows (``(n * H + y) * W + x``) of the
    window of each bin of ``G`` RoIs.

    Args:
        batch_index: ``(G,)`` int64 image of each RoI.
        rows: ``(G, out_h, R)`` int64 feature rows of each bin's window.
        cols: ``(G, out_w, S)`` int64 feature columns of each bin's window.
        height: the feature maps' height ``H``.
        width: their width ``W``.

    Returns:
        ``(G, out_h, out_w, R, S)`` int64.
    """
    return (
        batch_index[:, None, None, None, None] * height + rows[:, :, None, :, None]
    ) * width + cols[:, None, :, None, :]


def _bag_sums(features: Tensor, taps: Tensor, weights: Tensor, bag_starts: Tensor) -> Tensor:
    """``(B, C)`` weighted sums of the ``(N, C, H, W)`` features' channel rows: bag ``b``
    sums ``weights[i] * row(taps[i])`` for ``i`` from ``bag_starts[b]`` to the next bag's
    start, where ``taps`` index the rows as :func:`_window_indices` does."""
    # The rows are gathered without being materialised, in one call so that the backward
    # pass builds one gradient.
    feature_rows = features.permute(0, 2, 3, 1).reshape(-1, features.shape[1]).contiguous()
    return F.embedding_bag(taps, feature_rows, bag_starts, mode="sum", per_sample_weights=weights)


def _bilinear_taps(
    start: Tensor, bin_size: Tensor, grid: Tensor, pooled: int, size: int, adaptive: bool
) -> tuple[Tensor, Tensor, Tensor]:
    """Feature rows (or columns) read by each RoIAlign bin along one axis, with weights.

    Args:
        start: ``(K,)`` RoI start in feature coordinates.
        bin_size: ``(K,)`` bin size.
        grid: ``(K,)`` int64 samples per bin along this axis.
        pooled: number of bins along this axis.
        size: feature-map size along this axis.
        adaptive: merge the taps of each bin into one weight per feature row of a window.
            With ``grid = ceil(bin_size)`` that window (at most ``grid + 1`` rows) is
            shorter than the ``2 * grid`` interpolation taps, which repeat rows.

    Returns:
        ``(K, pooled, T)`` int64 indices in ``[0, size)``, ``(K, pooled, T)`` weights and
        ``(K,)`` number of leading taps each RoI uses. The weight of feature ``(y, x)`` in
        bin ``(p, q)`` is the sum over taps of ``row_weight * col_weight``; unused taps
        have weight 0.
    """
    dtype = start.dtype
    device = start.device
    grid_max = max(int(grid.max()), 1)
    bins = torch.arange(pooled, dtype=dtype, device=device)
    sample = torch.arange(grid_max, device=device)
    # The kernel's operation order: (start + p * bin) + (i + 0.5) * bin / grid.
    coord = (start[:, None, None] + bins[None, :, None] * bin_size[:, None, None]) + (
        sample.to(dtype) + 0.5
    ) * bin_size[:, None, None] / grid.clamp(min=1).to(dtype)[:, None, None]
    # A sample more than one pixel outside the map contributes nothing, nor does NaN.
    active = (sample < grid[:, None, None]) & (coord >= -1.0) & (coord <= size)
    coord = torch.where(active, coord, 0.0).clamp(min=0.0)
    low = coord.detach().floor().to(torch.int64)
    # A sample in (or up to one pixel beyond) the last pixel reads that pixel only.
    at_edge = low >= size - 1
    low = torch.where(at_edge, size - 1, low)
    high = torch.where(at_edge, size - 1, low + 1)
    frac = torch.where(at_edge, 0.0, coord - low.to(dtype))
    taps = torch.stack((low, high), dim=-1).flatten(2)
    weights = torch.where(active[..., None], torch.stack((1.0 - frac, frac), dim=-1), 0.0)
    weights = weights.flatten(2)
    if not adaptive:
        return taps, weights, 2 * grid

    tap_active = active[..., None].expand(-1, -1, -1, 2).flatten(2)
    first = torch.where(tap_active, taps, size).amin(dim=2)
    last = torch.where(tap_active, taps, -1).amax(dim=2)
    span = (last - first + 1).clamp(min=0)
    first = torch.where(span > 0, first, 0)
    num_taps = span.amax(dim=1)
    window = first[..., None] + torch.arange(max(int(num_taps.max()), 1), device=device)
    # Inactive taps have weight 0, so where they land in the window does not matter.
    offsets = (taps - first[..., None]).clamp(0, window.shape[2] - 1)
    window_weights = weights.new_zeros(window.shape).scatter_add(2, offsets, weights)
    return window.clamp(max=size - 1), window_weights, num_taps


def _pool_bins(
    start: Tensor, end: Tensor, pooled: int, size: int, dtype: torch.dtype
) -> tuple[Tensor, Tensor]:
    """Feature rows (or columns) of each RoIPool bin along one axis.

    Args:
        start: ``(K,)`` int64 rounded RoI start.
        end: ``(K,)`` int64 rounded RoI end (inclusive).
        pooled: number of bins along this axis.
        size: feature-map size along this axis.
        dtype: precision of the bin edges (the kernel's: that of the features).

    Returns:
        ``(K, pooled, L)`` int64 indices in ``[0, size)`` and ``(K, pooled)`` number of
        cells in each bin. Positions past a bin's last cell repeat it: that leaves the
        maximum unchanged and its first occurrence (in row-major order) where it was.
    """
    bin_size = (end - start + 1).clamp(min=1).to(dtype) / pooled
    bins = torch.arange(pooled + 1, dtype=dtype, device=start.device)
    edges = bins[None, :] * bin_size[:, None]
    bin_start = (edges[:, :-1].floor().to(torch.int64) + start[:, None]).clamp(0, size)
    bin_end = (edges[:, 1:].ceil().to(torch.int64) + start[:, None]).clamp(0, size)
    num_cells = (bin_end - bin_start).clamp(min=0)
    cells = torch.arange(max(int(num_cells.max()), 1), device=start.device)
    offsets = torch.minimum(cells, (num_cells[..., None] - 1).clamp(min=0))
    return (bin_start[..., None] + offsets).clamp(max=size - 1), num_cells


def _group_by_window(
    num_rows: Tensor,
    num_cols: Tensor,
    order: Tensor | None,
    per_position: int = 1,
    budget: int | None = None,
) -> list[tuple[Tensor | slice, int, int]]:
    """Split the RoIs, in processing order, into groups that share one window size.

    A group's window covers its largest RoI; a group is closed before its padded windows
    exceed :data:`_MAX_PADDING` times what its RoIs need, or ``budget`` elements.

    Args:
        num_rows: ``(K,)`` window rows each RoI needs.
        num_cols: ``(K,)`` window columns each RoI needs.
        order: ``(K,)`` processing order, or ``None`` for the given order.
        per_position: elements per window position of a RoI.
        budget: elements per group (a single RoI may exceed it), or ``None``.

    Returns:
        Per group: its RoIs (indices, or a slice of the given order) and its window rows
        and columns.
    """
    if order is not None:
        num_rows = num_rows[order]
        num_cols = num_cols[order]
    num_rows = num_rows.clamp(min=1).cpu()
    num_cols = num_cols.clamp(min=1).cpu()
    num_rois = num_rows.shape[0]
    needed = (num_rows * num_cols).cumsum(0)
    groups: list[tuple[Tensor | slice, int, int]] = []
    start = 0
    while start < num_rois:
        # Window of the group [start, start + n) for every n: the running maxima.
        rows = num_rows[start:].cummax(0).values
        cols = num_cols[start:].cummax(0).values
        padded = torch.arange(1, num_rois - start + 1) * rows * cols
        group_needed = needed[start:] - (needed[start - 1] if start > 0 else 0)
        fits = padded <= _MAX_PADDING * group_needed
        if budget is not None:
            fits &= padded * per_position <= budget
        length = max(int(fits.cumprod(0).sum()), 1)
        end = start + length
        rois = order[start:end] if order is not None else slice(start, end)
        groups.append((rois, int(rows[length - 1]), int(cols[length - 1])))
        start = end
    return groups


def _restore_order(output: Tensor, order: Tensor | None) -> Tensor:
    """Rows of ``output`` computed in ``order`` put back in the RoIs' order."""
    if order is None:
        return output
    return output.index_select(0, torch.argsort(order))


def boxes_to_rois(boxes: list[Tensor]) -> Tensor:
    """Per-image boxes as the RoI operators' rows.

    Args:
        boxes: per image, ``(K_i, 4)`` boxes ``x1, y1, x2, y2``.

    Returns:
        ``(sum K_i, 5)`` rows ``[image index, x1, y1, x2, y2]`` in the boxes' dtype.
    """
    for image, image_boxes in enumerate(boxes):
        if image_boxes.dim() != 2 or image_boxes.shape[1] != 4:
            raise ValueError(
                f"boxes of image {image} must have shape (K, 4), got {tuple(image_boxes.shape)}"
            )
    if len(boxes) == 0:
        return torch.zeros((0, 5))
    concat = torch.cat(boxes)
    image_index = torch.cat(
        [
            torch.full((len(b), 1), i, dtype=concat.dtype, device=concat.device)
            for i, b in enumerate(boxes)
        ]
    )
    return torch.cat((image_index, concat), dim=1)


def _as_rois(boxes: Tensor | list[Tensor], dtype: torch.dtype, device: torch.device) -> Tensor:
    """``(K, 5)`` rows ``[batch_index, x1, y1, x2, y2]`` from either box format."""
    if isinstance(boxes, Tensor):
        if boxes.dim() != 2 or boxes.shape[1] != 5:
            raise ValueError(
                f"boxes as a tensor must have shape (K, 5) [batch_index, x1, y1, x2, y2], "
                f"got {tuple(boxes.shape)}"
            )
        return boxes.to(dtype=dtype, device=device)
    return boxes_to_rois(boxes).to(dtype=dtype, device=device)


def _round_half_away_from_zero(x: Tensor) -> Tensor:
    """C's ``round``: to the nearest integer, halves away from zero.

    ``torch.round`` rounds halves to even, and ``floor(x + 0.5)`` is wrong just below a
    half (``0.49999997 + 0.5`` rounds up to 1 in float32); ``x - trunc(x)`` is exact.
    """
    whole = torch.trunc(x)
    return whole + torch.where((x - whole).abs() >= 0.5, torch.sign(x), 0.0)


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """Coordinates and sums of half-precision features are computed in float32."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def _pair(output_size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(output_size, int):
        return output_size, output_size
    height, width = output_size
    return int(height), int(width)


def _empty_output(input: Tensor, pooled_h: int, pooled_w: int) -> Tensor:
    """``(0, C, out_h, out_w)``, still attached to ``input``'s autograd graph."""
    return input.flatten()[:0].reshape(0, input.shape[1], pooled_h, pooled_w)
