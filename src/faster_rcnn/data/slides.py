"""Generated microscope slides: the hard case of many touching objects and two rare classes.

Each 480 x 640 image (the size of common blood-smear sets) is a stained slide:

- ``cell``: the common class, 10 to 24 an image, discs of 70 to 110 px with a pale centre
  and a darker rim, touching and overlapping (drawn translucent, as cells are, so both
  outlines show where two overlap);
- ``platelet``: small and rare, 28 to 50 px irregular purple granules, none to two an
  image (about 7 % of the boxes), often lying on a cell;
- ``leukocyte``: large and rare, 140 to 220 px, pale cytoplasm around a dark lobed
  nucleus, in about 80 % of the images.

Unlabelled purple specks under 18 px look like small platelets: a detector must learn
size as well as colour. Objects may be cut by the border; a box is the object's extent
inside the image, and an object with less than 40 % of its area inside is not drawn.
Images depend only on ``(seed, index)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ..host_cpus import one_thread

CLASS_NAMES = ("cell", "platelet", "leukocyte")
IMAGE_SIZE = (480, 640)  # (height, width)
# Diameter range in pixels, and how many an image (drawn uniformly in the range).
_CELL_DIAMETER, _CELLS = (70.0, 110.0), (10, 24)
_PLATELET_DIAMETER, _PLATELETS = (28.0, 50.0), (0, 2)
_LEUKOCYTE_DIAMETER = (140.0, 220.0)
_LEUKOCYTE_FRACTION = 0.8  # images with one leukocyte (a tenth of those get a second)
_SPECKS = (0, 6)
_MIN_INSIDE = 0.4  # the share of an object's area that must be inside the image


class SyntheticSlides:
    """Deterministic generated microscope slides (see the module).

    Args:
        num_images: dataset length.
        seed: images depend only on ``(seed, index)``.
        cells: the fewest and most cells drawn on a slide (``(10, 24)`` by default);
            more crowd them, and more of them overlap each other heavily. Cells whose
            area lies mostly outside the image are not drawn, so fewer may be labelled.

    ``dataset[i]`` is ``(image float[3, 480, 640] in 0..1, {"boxes": float[N, 4],
    "labels": int64[N]})`` with labels ``1..3`` in :data:`CLASS_NAMES` order (0 is
    background); boxes are ``x1, y1, x2, y2`` pixels; pixel values are multiples of 1/255.
    ``target(i)`` is the same target without the slide painted.
    """

    class_names = CLASS_NAMES
    image_size = IMAGE_SIZE

    def __init__(self, num_images: int, seed: int = 0, cells: tuple[int, int] = _CELLS) -> None:
        if not 0 <= cells[0] <= cells[1]:
            raise ValueError(f"cells must be (fewest, most) with 0 <= fewest <= most, not {cells}")
        self.num_images = num_images
        self.seed = seed
        self.cells = cells

    @property
    def num_classes(self) -> int:
        """Classes including background."""
        return len(CLASS_NAMES) + 1

    def __len__(self) -> int:
        return self.num_images

    # Painting is many small operations on one slide's cells: a second thread only waits
    # for the first (host_cpus.one_thread), and training reads these in its own process.
    @one_thread()
    def __getitem__(self, index: int) -> tuple[Tensor, dict[str, Tensor]]:
        return self._drawn(index, paint=True).finish()

    @one_thread()
    def target(self, index: int) -> dict[str, Tensor]:
        """``dataset[index][1]`` without the slide painted: its random numbers are drawn
        alike, its pixels are not."""
        return self._drawn(index, paint=False).target()

    def _drawn(self, index: int, paint: bool) -> _Canvas:
        """Slide ``index`` with its objects placed, painted where ``paint``."""
        if not 0 <= index < self.num_images:
            raise IndexError(f"index {index} out of range for {self.num_images} images")
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + index + 7_919)
        canvas = _Canvas(gen, paint)
        for _ in range(_count(gen, *self.cells)):
            canvas.draw_cell()
        if _uniform(gen) < _LEUKOCYTE_FRACTION:
            for _ in range(1 + int(_uniform(gen) < 0.1)):
                canvas.draw_leukocyte()
        for _ in range(_count(gen, *_SPECKS)):
            canvas.draw_speck()
        for _ in range(_count(gen, *_PLATELETS)):
            canvas.draw_platelet()
        return canvas


class _Canvas:
    """One slide being drawn: the image so far and the boxes of the labelled objects.

    Each object is drawn inside its own window (the square around it that its outline
    cannot leave), so a slide costs its objects' area, not 30 whole-image passes. Without
    ``paint``, the objects are placed and boxed from the same random numbers, and no pixel
    is painted (``image`` is ``None``).
    """

    def __init__(self, gen: torch.Generator, paint: bool = True) -> None:
        self.gen = gen
        draws = _background_draws(gen)
        self.image = _background(*draws) if paint else None
        self.boxes: list[Tensor] = []
        self.labels: list[int] = []

    def draw_cell(self) -> None:
        """A translucent disc with a pale centre and a darker rim (an erythrocyte)."""
        r = self._radius(_CELL_DIAMETER) * self._roundness()
        shape = self._place(r, label=1)
        if shape is None:
            return
        window, mask, dist, _ = shape
        colour = _jitter(self.gen, (0.86, 0.42, 0.45), 0.06)[:, None, None]
        if self.image is None:
            return
        pale_centre = 0.35 * torch.exp(-((dist / 0.45) ** 2))
        rim = 0.25 * torch.exp(-(((dist - 0.92) / 0.08) ** 2))
        fill = colour * (1 - rim) + (1 - colour) * pale_centre
        self._blend(window, mask, fill, alpha=0.75)

    def draw_platelet(self) -> None:
        """A small irregular granular purple blob (a thrombocyte)."""
        r = self._radius(_PLATELET_DIAMETER)
        shape = self._place(r, label=2, lobes=0.25)
        if shape is None:
            return
        window, mask, dist, _ = shape
        colour = _jitter(self.gen, (0.52, 0.30, 0.62), 0.07)[:, None, None]
        # The grain is drawn for the whole slide so that the random stream (and so every
        # slide) stays what it was when objects were drawn over the whole image.
        grain = torch.rand(IMAGE_SIZE, generator=self.gen)[window]
        alpha = _uniform(self.gen, 0.6, 0.9)  # stains take unevenly: some platelets are faint
        if self.image is None:
            return
        fill = colour * (0.9 + 0.12 * grain - 0.15 * dist.clamp(max=1))
        self._blend(window, mask, fill, alpha)

    def draw_leukocyte(self) -> None:
        """A large cell: pale violet cytoplasm around a dark nucleus of 2 to 4 lobes."""
        r = self._radius(_LEUKOCYTE_DIAMETER)
        shape = self._place(r, label=3)
        if shape is None:
            return
        window, mask, _, (cx, cy) = shape
        cytoplasm = _jitter(self.gen, (0.78, 0.70, 0.86), 0.04)[:, None, None]
        nucleus = _jitter(self.gen, (0.36, 0.18, 0.50), 0.05)[:, None, None]
        lobes = [self._lobe(cx, cy, r) for _ in range(2 + int(_uniform(self.gen) * 3))]
        if self.image is None:
            return
        self._blend(window, mask, cytoplasm, alpha=0.9)
        ys, xs = _pixel_centres(window)
        for lx, ly, lobe_r in lobes:
            lobe = (xs - lx) ** 2 + (ys - ly) ** 2 <= lobe_r**2
            self._blend(window, lobe & mask, nucleus, alpha=0.95)

    def _lobe(self, cx: float, cy: float, r: float) -> tuple[float, float, float]:
        """A lobe of the nucleus of a leukocyte of centre ``(cx, cy)`` and radius ``r``:
        its centre and radius."""
        angle = _uniform(self.gen, 0, 2 * math.pi)
        offset = _uniform(self.gen, 0.15, 0.4) * r
        lobe_r = _uniform(self.gen, 0.28, 0.42) * r
        return cx + offset * math.cos(angle), cy + offset * math.sin(angle), lobe_r

    def draw_speck(self) -> None:
        """Unlabelled debris: a purple dot under 18 px."""
        r = _uniform(self.gen, 2.5, 9.0)
        cx, cy = self._centre(r)
        colour = _jitter(self.gen, (0.50, 0.30, 0.60), 0.08)[:, None, None]
        if self.image is None:
            return
        window = _window(cx, cy, r)
        ys, xs = _pixel_centres(window)
        mask = (xs - cx) ** 2 + (ys - cy) ** 2 <= r**2
        self._blend(window, mask, colour, alpha=0.85)

    def finish(self) -> tuple[Tensor, dict[str, Tensor]]:
        """The noisy, 8-bit-quantised image (painted) and its target."""
        assert self.image is not None, "a canvas that does not paint has no image"
        image = self.image + 0.025 * torch.randn(self.image.shape, generator=self.gen)
        image = image.clamp(0, 1).mul_(255).round_().div_(255)
        return image, self.target()

    def target(self) -> dict[str, Tensor]:
        """The boxes and labels of the objects placed."""
        return {
            "boxes": torch.stack(self.boxes) if self.boxes else torch.zeros((0, 4)),
            "labels": torch.tensor(self.labels, dtype=torch.int64),
        }

    def _radius(self, diameters: tuple[float, float]) -> float:
        return _uniform(self.gen, *diameters) / 2

    def _roundness(self) -> float:
        return _uniform(self.gen, 0.92, 1.08)

    def _centre(self, r: float) -> tuple[float, float]:
        """A centre that may put up to half the object past the border."""
        height, width = IMAGE_SIZE
        return _uniform(self.gen, -0.5 * r, width + 0.5 * r), _uniform(
            self.gen, -0.5 * r, height + 0.5 * r
        )

    def _place(
        self, r: float, label: int, lobes: float = 0.06
    ) -> tuple[Window, Tensor, Tensor, tuple[float, float]] | None:
        """Place an object of mean radius ``r``, outline perturbed by up to ``lobes`` of it,
        and record its box: ``(window, (h, w) mask, (h, w) distance from the centre in
        radii, centre)`` over the object's window, or ``None`` when too little of it is
        inside the image."""
        cx, cy = self._centre(r)
        # Three harmonics of amplitude at most `lobes` each: the outline stays within this.
        window = _window(cx, cy, r * (1 + 3 * lobes))
        ys, xs = _pixel_centres(window)
        dx, dy = xs - cx, ys - cy
        angle = torch.atan2(dy, dx)
        outline = torch.ones_like(angle)
        for order in (2, 3, 5):
            phase = _uniform(self.gen, 0, 2 * math.pi)
            outline = outline + lobes * _uniform(self.gen, -1, 1) * torch.cos(order * angle + phase)
        dist = torch.sqrt(dx**2 + dy**2) / (r * outline)
        mask = dist <= 1
        inside = int(mask.sum())
        if inside < _MIN_INSIDE * math.pi * r * r or inside == 0:
            return None
        rows = torch.where(mask.any(dim=1))[0] + window[0].start
        cols = torch.where(mask.any(dim=0))[0] + window[1].start
        box = [float(cols[0]), float(rows[0]), float(cols[-1]) + 1, float(rows[-1]) + 1]
        self.boxes.append(torch.tensor(box))
        self.labels.append(label)
        return window, mask, dist, (cx, cy)

    def _blend(self, window: Window, mask: Tensor, fill: Tensor, alpha: float) -> None:
        """Lay ``fill`` (``(3, h, w)``, or ``(3, 1, 1)`` for one colour) over the image
        where ``mask`` ``(h, w)`` is set inside ``window``, ``alpha`` opaque."""
        weight = alpha * mask.float()
        region = self.image[:, window[0], window[1]]
        self.image[:, window[0], window[1]] = region * (1 - weight) + fill * weight


Window = tuple[slice, slice]  # rows, columns of the image


def _window(cx: float, cy: float, reach: float) -> Window:
    """The pixels whose centres lie within ``reach`` of ``(cx, cy)`` along each axis,
    cut to the image (possibly empty)."""
    height, width = IMAGE_SIZE

    def span(centre: float, size: int) -> slice:
        start = min(max(math.floor(centre - reach - 0.5), 0), size)
        return slice(start, min(max(math.ceil(centre + reach + 0.5), start), size))

    return span(cy, height), span(cx, width)


def _pixel_centres(window: Window) -> tuple[Tensor, Tensor]:
    """``(h, 1)`` row and ``(1, w)`` column pixel-centre coordinates of ``window``."""
    rows, cols = window
    ys = torch.arange(rows.start, rows.stop, dtype=torch.float32)[:, None] + 0.5
    xs = torch.arange(cols.start, cols.stop, dtype=torch.float32)[None, :] + 0.5
    return ys, xs


def _background_draws(gen: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """The random numbers of :func:`_background`, drawn from ``gen``: the ``(3,)`` tint, a
    ``(1, 1, 4, 4)`` lighting and a ``(1, 1, H / 2, W / 2)`` grain."""
    height, width = IMAGE_SIZE
    tint = _jitter(gen, (0.93, 0.86, 0.84), 0.03)
    light = torch.rand((1, 1, 4, 4), generator=gen)
    return tint, light, torch.rand((1, 1, height // 2, width // 2), generator=gen)


def _background(tint: Tensor, light: Tensor, grain: Tensor) -> Tensor:
    """A pale, unevenly lit stained field with fine grain: ``(3, H, W)`` in 0..1, of the
    draws of :func:`_background_draws`."""
    light = F.interpolate(light, size=IMAGE_SIZE, mode="bicubic")[0]
    grain = F.interpolate(grain, size=IMAGE_SIZE, mode="bilinear")[0]
    return (tint[:, None, None] * (0.92 + 0.08 * light) + 0.04 * (grain - 0.5)).clamp(0, 1)


def _jitter(gen: torch.Generator, colour: tuple[float, float, float], amount: float) -> Tensor:
    return (torch.tensor(colour) + amount * (2 * torch.rand(3, generator=gen) - 1)).clamp(0, 1)


def _count(gen: torch.Generator, low: int, high: int) -> int:
    """A whole number in ``[low, high]``, uniformly."""
    return low + int(_uniform(gen) * (high - low + 1))


def _uniform(gen: torch.Generator, low: float = 0.0, high: float = 1.0) -> float:
    return low + (high - low) * float(torch.rand((), generator=gen))
