"""A detection dataset drawn on the fly from a seed: no files, same images every time.

Each image holds up to ``max_objects`` filled shapes - by default one class per geometry
(rectangle, ellipse, triangle) with a class-typical but jittered colour - on a textured,
noisy background. Other classes (a geometry and a colour each) and how often each is
drawn can be given, for a long-tailed set of many classes. Object sizes run from about
12 px to most of the image and aspect ratios from 1:3 to 3:1; objects may overlap (IoU
of their boxes at most ``max_overlap``, and a shape drawn over others leaves at least
``min_visible`` of each visible) and may be cut off by the image border, and some images
hold no object at all. Boxes are the tight extent of each shape's visible part, in
``x1, y1, x2, y2`` pixels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ..host_cpus import one_thread
from ..ops.boxes import box_iou


class ShapeClass(NamedTuple):
    """A class of drawn objects: its name, its geometry (a key of ``AREA_FRACTION``) and
    its mean RGB colour in 0..1, which every object jitters, so that colour hints at the
    class without deciding it."""

    name: str
    geometry: str
    colour: tuple[float, float, float]


# Area of each geometry as a fraction of its w x h bounding box.
AREA_FRACTION = {"rectangle": 1.0, "ellipse": math.pi / 4, "triangle": 0.5}
CLASSES = (
    ShapeClass("rectangle", "rectangle", (0.85, 0.25, 0.2)),
    ShapeClass("ellipse", "ellipse", (0.2, 0.75, 0.3)),
    ShapeClass("triangle", "triangle", (0.25, 0.35, 0.9)),
)
CLASS_NAMES = tuple(c.name for c in CLASSES)
Window = tuple[slice, slice]  # rows, columns of the image


class SyntheticShapes:
    """Deterministic synthetic detection images.

    Args:
        num_images: dataset length.
        image_size: ``(height, width)`` of every image.
        seed: images depend only on ``(seed, index)``.
        max_objects: most objects per image.
        empty_fraction: share of images with no object.
        min_object_size: smallest object side before clipping, in pixels.
        max_overlap: largest IoU allowed between two objects' boxes.
        min_visible: smallest share of an object's pixels in the image that the shapes
            drawn over it must leave visible.
        classes: the classes drawn, label ``k`` being ``classes[k - 1]``.
        class_weights: how often each class is drawn for an object, relative to the
            others (``None``: all alike).

    ``dataset[i]`` is ``(image float[3, H, W] in 0..1, {"boxes": float[N, 4],
    "labels": int64[N]})`` with labels ``1..len(classes)`` (0 is background); pixel
    values are multiples of 1/255, as in a decoded 8-bit image. ``target(i)`` is the same
    target without the image drawn.
    """

    class_names = CLASS_NAMES

    def __init__(
        self,
        num_images: int,
        image_size: tuple[int, int] = (320, 320),
        seed: int = 0,
        max_objects: int = 6,
        empty_fraction: float = 0.1,
        min_object_size: float = 12.0,
        max_overlap: float = 0.4,
        min_visible: float = 0.7,
        classes: Sequence[ShapeClass] = CLASSES,
        class_weights: Sequence[float] | None = None,
    ) -> None:
        unknown = [c.geometry for c in classes if c.geometry not in AREA_FRACTION]
        if not classes or unknown:
            raise ValueError(f"classes need geometries among {sorted(AREA_FRACTION)}: {unknown}")
        if class_weights is not None and (
            len(class_weights) != len(classes) or min(class_weights) <= 0
        ):
            raise ValueError(
                f"class_weights needs {len(classes)} positive numbers: {class_weights}"
            )
        self.num_images = num_images
        self.image_size = image_size
        self.seed = seed
        self.max_objects = max_objects
        self.empty_fraction = empty_fraction
        self.min_object_size = min_object_size
        self.max_overlap = max_overlap
        self.min_visible = min_visible
        self.classes = tuple(classes)
        self.class_names = tuple(c.name for c in self.classes)
        # Cumulative shares, for drawing a label from one uniform number.
        self._label_edges = None
        if class_weights is not None:
            self._label_edges = torch.tensor(class_weights, dtype=torch.float64).cumsum(0)
            self._label_edges /= self._label_edges[-1].clone()

    @property
    def num_classes(self) -> int:
        """Classes including background."""
        return len(self.classes) + 1

    def __len__(self) -> int:
        return self.num_images

    # Drawing is many small operations on masks of one image: a second thread only waits
    # for the first (host_cpus.one_thread), and training reads these in its own process.
    @one_thread()
    def __getitem__(self, index: int) -> tuple[Tensor, dict[str, Tensor]]:
        gen = self._generator(index)
        height, width = self.image_size
        image = _background(_background_draws(height, width, gen), height, width)
        placed, boxes = self._place_objects(gen)
        shade = 1.0 - 0.25 * (self._pixel_centres()[0] / height)  # fills are not flat
        for shape in placed:
            rows, cols = shape.window
            fill = shape.colour.clamp(0, 1)[:, None, None] * shade[rows]
            image[:, rows, cols] = torch.where(shape.mask, fill, image[:, rows, cols])
        image = (image + 0.03 * torch.randn(image.shape, generator=gen)).clamp(0, 1)
        image = image.mul_(255).round_().div_(255)
        return image, _target(placed, boxes)

    @one_thread()
    def target(self, index: int) -> dict[str, Tensor]:
        """``dataset[index][1]`` without the image drawn: its random numbers are drawn
        alike, its pixels are not (the background, the fills, the noise)."""
        gen = self._generator(index)
        _background_draws(*self.image_size, gen)
        return _target(*self._place_objects(gen))

    def _generator(self, index: int) -> torch.Generator:
        """The generator image ``index`` is drawn from, as it starts."""
        if not 0 <= index < self.num_images:
            raise IndexError(f"index {index} out of range for {self.num_images} images")
        return torch.Generator().manual_seed(self.seed * 1_000_003 + index)

    def _pixel_centres(self) -> tuple[Tensor, Tensor]:
        """``(H, 1)`` row and ``(1, W)`` column pixel-centre coordinates."""
        height, width = self.image_size
        ys = torch.arange(height, dtype=torch.float32)[:, None] + 0.5
        xs = torch.arange(width, dtype=torch.float32)[None, :] + 0.5
        return ys, xs

    def _place_objects(self, gen: torch.Generator) -> tuple[list[_Placed], list[Tensor]]:
        """The objects of one image, in the order they are drawn, each over the earlier
        ones; and the ``(4,)`` box of what is visible of each once all are drawn.

        Each object's pixels are kept in its window (the rectangle its shape cannot
        leave): an image costs its objects' area, not a whole-image mask per object and
        per pair of them.
        """
        ys, xs = self._pixel_centres()
        placed: list[_Placed] = []
        visible: list[Tensor] = []  # (h, w) pixels of each object's window not drawn over
        drawn_pixels: list[int] = []  # pixels of each object in the image when drawn
        boxes: list[Tensor] = []
        if _uniform(gen) < self.empty_fraction:
            return placed, boxes
        num_objects = 1 + int(_uniform(gen) * self.max_objects)
        for _ in range(num_objects * 4):  # a few tries per object to respect overlap
            if len(boxes) == num_objects:
                break
            drawn = self._draw_object(xs, ys, gen)
            if drawn is None:
                continue
            label, window, mask, box = drawn
            if boxes and box_iou(box[None], torch.stack(boxes)).max() > self.max_overlap:
                continue
            # A new object is drawn over the others; one that would hide too much of
            # another (a small shape inside a large one's box, say) is not drawn.
            uncovered = [
                _uncovered(shape.window, pixels, window, mask)
                for shape, pixels in zip(placed, visible, strict=True)
            ]
            uncovered_boxes = [
                self._visible_box(shape.window, pixels)
                for shape, pixels in zip(placed, uncovered, strict=True)
            ]
            if any(
                new_box is None or int(pixels.sum()) < self.min_visible * count
                for pixels, new_box, count in zip(
                    uncovered, uncovered_boxes, drawn_pixels, strict=True
                )
            ):
                continue
            colour = torch.tensor(self.classes[label - 1].colour) + 0.15 * (
                torch.rand(3, generator=gen) - 0.5
            )
            placed.append(_Placed(label, window, mask, colour))
            visible = [*uncovered, mask]
            drawn_pixels.append(int(mask.sum()))
            boxes = [*uncovered_boxes, box]
        return placed, boxes

    def _draw_object(
        self, xs: Tensor, ys: Tensor, gen: torch.Generator
    ) -> tuple[int, Window, Tensor, Tensor] | None:
        """One random shape: ``(label, window, (h, w) mask over the window, (4,) visible
        box)``, or ``None`` when too little of it is inside the image.

        Args:
            xs / ys: ``(1, W)`` / ``(H, 1)`` the image's pixel-centre coordinates.
        """
        height, width = self.image_size
        label = self._label(_uniform(gen))
        geometry = self.classes[label - 1].geometry
        largest = 0.8 * min(height, width)
        size = math.exp(_uniform(gen, math.log(self.min_object_size), math.log(largest)))
        ratio = math.exp(_uniform(gen, math.log(1 / 3), math.log(3)))  # height / width
        w, h = size / math.sqrt(ratio), size * math.sqrt(ratio)
        # Centres may lie a little outside the image, so some objects are cut off.
        cx = _uniform(gen, -0.15 * w, width + 0.15 * w)
        cy = _uniform(gen, -0.15 * h, height + 0.15 * h)
        window = _window(cx, cy, w / 2, h / 2, self.image_size)
        rows, cols = window
        # Shape-normalised coordinates: every shape lies in |u| <= 1, |v| <= 1.
        u, v = (xs[:, cols] - cx) / (w / 2), (ys[rows] - cy) / (h / 2)
        if geometry == "rectangle":
            mask = (u.abs() <= 1) & (v.abs() <= 1)
        elif geometry == "ellipse":
            mask = u**2 + v**2 <= 1
        else:  # apex up, base at the bottom edge
            mask = (v <= 1) & (2 * u.abs() <= v + 1)
        full_area = w * h * AREA_FRACTION[geometry]
        if int(mask.sum()) < 0.4 * full_area:  # mostly outside the image
            return None
        box = self._visible_box(window, mask)
        return None if box is None else (label, window, mask, box)

    def _label(self, draw: float) -> int:
        """The label (``1..len(classes)``) that a uniform ``draw`` in [0, 1) picks."""
        if self._label_edges is None:
            return 1 + int(draw * len(self.classes))
        return 1 + int(torch.searchsorted(self._label_edges, draw, right=True))

    @staticmethod
    def _visible_box(window: Window, mask: Tensor) -> Tensor | None:
        """``(4,)`` tight box, in image pixels, of a ``(h, w)`` mask over ``window``, or
        ``None`` when the mask is empty or a side of its box is below 6 px."""
        rows = torch.where(mask.any(dim=1))[0] + window[0].start
        cols = torch.where(mask.any(dim=0))[0] + window[1].start
        if len(rows) == 0:
            return None
        box = torch.tensor(
            [float(cols[0]), float(rows[0]), float(cols[-1]) + 1, float(rows[-1]) + 1]
        )
        return None if min(box[2] - box[0], box[3] - box[1]) < 6 else box


class _Placed(NamedTuple):
    """An object drawn on an image: its label, its window, its ``(h, w)`` pixels over the
    window and its RGB fill colour."""

    label: int
    window: Window
    mask: Tensor
    colour: Tensor


def _window(
    cx: float, cy: float, half_width: float, half_height: float, image_size: tuple[int, int]
) -> Window:
    """The pixels whose centres lie within ``half_width`` of ``cx`` and ``half_height`` of
    ``cy``, cut to the image of ``image_size`` ``(height, width)`` (possibly empty)."""

    def span(centre: float, half: float, size: int) -> slice:
        start = min(max(math.floor(centre - half - 0.5), 0), size)
        return slice(start, min(max(math.ceil(centre + half + 0.5), start), size))

    return span(cy, half_height, image_size[0]), span(cx, half_width, image_size[1])


def _uncovered(window: Window, pixels: Tensor, over: Window, mask: Tensor) -> Tensor:
    """``pixels`` ``(h, w)`` of ``window`` without those of ``mask``, a shape drawn over
    them in its own window ``over``."""
    shared = _intersection(window, over)
    if shared is None:
        return pixels
    result = pixels.clone()
    result[_within(shared, window)] &= ~mask[_within(shared, over)]
    return result


def _intersection(first: Window, second: Window) -> Window | None:
    """The pixels of both windows; ``None`` where they have none in common."""
    rows, cols = (
        slice(max(a.start, b.start), min(a.stop, b.stop))
        for a, b in zip(first, second, strict=True)
    )
    return (rows, cols) if rows.start < rows.stop and cols.start < cols.stop else None


def _within(part: Window, window: Window) -> Window:
    """``part`` (of the image, inside ``window``) as the slices of ``window``'s pixels."""
    (rows, cols), (top, left) = part, (window[0].start, window[1].start)
    return slice(rows.start - top, rows.stop - top), slice(cols.start - left, cols.stop - left)


def _target(placed: Sequence[_Placed], boxes: Sequence[Tensor]) -> dict[str, Tensor]:
    """The target of an image's ``placed`` objects, whose visible ``boxes`` they are."""
    return {
        "boxes": torch.stack(list(boxes)) if boxes else torch.zeros((0, 4)),
        "labels": torch.tensor([shape.label for shape in placed], dtype=torch.int64),
    }


def _uniform(gen: torch.Generator, low: float = 0.0, high: float = 1.0) -> float:
    return low + (high - low) * float(torch.rand((), generator=gen))


def _background_draws(height: int, width: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """The random numbers of :func:`_background`, drawn from ``gen``: ``(1, 3, 6, 6)``
    coarse colours and a ``(1, 1, height / 4, width / 4)`` texture."""
    small = (max(1, height // 4), max(1, width // 4))
    return torch.rand((1, 3, 6, 6), generator=gen), torch.rand((1, 1, *small), generator=gen)


def _background(draws: tuple[Tensor, Tensor], height: int, width: int) -> Tensor:
    """A smooth random colour field with fine texture: ``(3, height, width)`` in 0..1,
    of the ``draws`` of :func:`_background_draws`.

    Both are drawn at a quarter of the resolution and upsampled once: the texture's cells
    are 4 px anyway, and a bicubic field at full size costs more than the rest of the image.
    """
    coarse, texture = draws
    base = F.interpolate(coarse, size=texture.shape[-2:], mode="bicubic", align_corners=False)
    field = 0.35 + 0.3 * base + 0.25 * (texture - 0.5)
    full = F.interpolate(field, size=(height, width), mode="bilinear", align_corners=False)
    return full[0].clamp(0, 1)
