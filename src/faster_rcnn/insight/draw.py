"""Pictures of what the detector and its RPN see: boxes drawn on the input image."""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np
import torch
from matplotlib import font_manager
from matplotlib.ft2font import FT2Font
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

from .pictures import image_pictures, save_picture

# Distinct, readable outline colours, cycled by class label.
_PALETTE = (
    (230, 25, 75),
    (60, 180, 75),
    (255, 225, 25),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (250, 190, 190),
)
# The captions' font: matplotlib's DejaVu Sans, which has the letters of most alphabets
# (PIL's default drew a box for each letter of 'chat ü' or 'кошка' and, built without
# FreeType or before Pillow 10.1, failed on a character outside Latin-1). A class name in
# letters it lacks (Chinese, Japanese, Korean) is drawn in an installed font that has
# them (caption_font_file).
CAPTION_FONT = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
# The code points of a caption besides its class's name: those of its score.
SCORE_CHARACTERS = frozenset(map(ord, " 0123456789."))
CAPTION_SIZE = 11  # pixels
# Outlines of 2 px, proposals of 1 px and captions of CAPTION_SIZE on an image of this mean
# side or less, thicker and larger in proportion on a larger one: a 4000 x 3000 photo
# viewed whole on a screen shows them as a 640-px image does.
REFERENCE_SIDE = 640
# The zlib level of the PNG pictures: PIL's default (6) took 5.7 s to write a 12 Mpx phone
# photo's picture, level 1 2.4 s for the same pixels in a file 14 % smaller (their
# noise compresses no better at 6).
PICTURE_PNG_LEVEL = 1
# How many of the RPN's proposals a picture draws, the strongest.
PROPOSALS_DRAWN = 50
# An outline is at most this share of its box's shorter side (at least 1 px): PIL draws it
# inside the box, and the 8 px of a 3000 x 2000 image filled an object of 8-30 px whole.
OUTLINE_SHARE = 1 / 8
# A caption's textbbox, (left, top, right, bottom) in pixels.
Rect = tuple[float, float, float, float]


def to_pil(image: Tensor) -> Image.Image:
    """``(3, H, W)``, float in 0..1 or ``uint8`` levels -> an RGB PIL image."""
    levels = image.detach()
    if levels.dtype != torch.uint8:  # levels are the picture already: no float copy
        # In place after the clamp's copy: one full-size float copy of the image, not three.
        levels = levels.clamp(0, 1).mul_(255).round_().to(torch.uint8)
    return Image.fromarray(levels.permute(1, 2, 0).cpu().numpy(), mode="RGB")


def draw_detections(
    image: Tensor,
    detections: dict[str, Tensor],
    class_names: Sequence[str],
    score_threshold: float = 0.5,
) -> Image.Image:
    """The image with each detection scoring at least ``score_threshold`` outlined and
    labelled ``name score``, lines and captions scaled with the image
    (:func:`drawing_scale`), a small box's outline thinner (:func:`outline_width`). The
    captions are drawn over every outline, each where :func:`caption_places` puts it:
    none over another, one without a free place left out.

    Args:
        image: ``(3, H, W)``, float in 0..1 or ``uint8`` levels.
        detections: ``{"boxes": (D, 4), "labels": (D,), "scores": (D,)}``.
        class_names: names of labels ``1..C`` (index 0 is label 1).
    """
    return _outline_detections(to_pil(image), detections, class_names, score_threshold)


def _outline_detections(
    picture: Image.Image,
    detections: dict[str, Tensor],
    class_names: Sequence[str],
    score_threshold: float,
) -> Image.Image:
    """:func:`draw_detections` on ``picture``, an RGB image drawn on in place."""
    draw = ImageDraw.Draw(picture)
    scale = drawing_scale(picture)
    size = round(CAPTION_SIZE * scale)
    keep = detections["scores"] >= score_threshold
    boxes = detections["boxes"][keep].tolist()
    labels = detections["labels"][keep].tolist()
    scores = detections["scores"][keep].tolist()
    for box, label in zip(boxes, labels, strict=True):
        draw.rectangle(box, outline=_colour(label), width=outline_width(box, round(2 * scale)))
    names = [_class_name(label, class_names) for label in labels]
    captions = [f"{name} {score:.2f}" for name, score in zip(names, scores, strict=True)]
    fonts = [caption_font(caption_font_file(name), size) for name in names]
    extents = [draw.textbbox((0, 0), c, font=f) for c, f in zip(captions, fonts, strict=True)]
    places = caption_places(extents, boxes, scores, picture.size)
    for caption, font, label, place in zip(captions, fonts, labels, places, strict=True):
        if place is not None:
            draw.rectangle(draw.textbbox(place, caption, font=font), fill=_colour(label))
            draw.text(place, caption, fill=(0, 0, 0), font=font)
    return picture


def _colour(label: int) -> tuple[int, int, int]:
    """The outline and caption colour of ``label``: :data:`_PALETTE`, cycled."""
    return _PALETTE[(label - 1) % len(_PALETTE)]


def _class_name(label: int, class_names: Sequence[str]) -> str:
    """The name of ``label`` (from 1), its number where ``class_names`` has none."""
    return class_names[label - 1] if 0 < label <= len(class_names) else str(label)


def caption_places(
    extents: Sequence[Rect],
    boxes: Sequence[Sequence[float]],
    scores: Sequence[float],
    image_size: tuple[int, int],
) -> list[tuple[float, float] | None]:
    """Where each detection's caption is drawn (its top-left, as ``draw.text`` takes
    it), ``None`` where it is left out: best score first (ties in the given order), each
    at the first of its :func:`caption_candidates` whose pixels meet none of a caption
    placed before it, so that no caption hides another on a crowded image.

    Args:
        extents: each caption's ``textbbox`` drawn at (0, 0), ``(left, top, right,
            bottom)``.
        boxes: the detections' ``[x1, y1, x2, y2]``.
        scores: their scores.
        image_size: ``(width, height)``.
    """
    taken = np.empty((len(boxes), 4))  # the pixels of the captions placed, (count, 4)
    count = 0
    places: list[tuple[float, float] | None] = [None] * len(boxes)
    for k in sorted(range(len(boxes)), key=lambda k: -scores[k]):
        for place in caption_candidates(extents[k], boxes[k], image_size):
            pixels = caption_pixels(extents[k], place)
            if not _meets_any(pixels, taken[:count]):
                taken[count] = pixels
                count += 1
                places[k] = place
                break
    return places


def caption_candidates(
    extent: Rect, box: Sequence[float], image_size: tuple[int, int]
) -> list[tuple[float, float]]:
    """The places a caption of ``extent`` (its ``textbbox`` drawn at (0, 0)) may take
    for ``box`` ``[x1, y1, x2, y2]`` on an image of ``image_size`` (width, height), by
    preference: above the box (outside the object itself), or below it where the image
    has no room above, then inside its top; at the box's left, then ending at its right
    edge (a large box whose left corner a neighbour's caption holds keeps its own), each
    moved left to end inside the image at its right edge. Never below a box that has room
    above: in a crowd that is inside the top of the box beneath, where its own caption
    would be."""
    width, height = image_size
    text_w, text_h = extent[2], extent[3]
    lefts = dict.fromkeys(max(0.0, min(x, width - text_w - 1)) for x in (box[0], box[2] - text_w))
    inside = max(0.0, min(box[1], height - text_h - 1))
    if box[1] > text_h:
        rows = [box[1] - text_h - 1, inside]
    elif box[3] + 1 + text_h < height:
        rows = [box[3] + 1, inside]
    else:
        rows = [inside]
    return [(x, y) for y in rows for x in lefts]


def caption_pixels(extent: Rect, place: tuple[float, float]) -> tuple[int, int, int, int]:
    """The pixels a caption of ``extent`` drawn at ``place`` may colour, its first and
    last column and row: its ``textbbox`` there, widened to whole pixels."""
    return (
        math.floor(extent[0] + place[0]),
        math.floor(extent[1] + place[1]),
        math.ceil(extent[2] + place[0]),
        math.ceil(extent[3] + place[1]),
    )


def _meets_any(pixels: tuple[int, int, int, int], taken: np.ndarray) -> bool:
    """Whether the pixels ``(x1, y1, x2, y2)`` (both ends included) share one with any
    row of ``taken`` ``(N, 4)``, given alike."""
    return bool(
        (
            (taken[:, 0] <= pixels[2])
            & (pixels[0] <= taken[:, 2])
            & (taken[:, 1] <= pixels[3])
            & (pixels[1] <= taken[:, 3])
        ).any()
    )


def outline_width(box: Sequence[float], width: int) -> int:
    """The width in px of the outline of ``box`` ``[x1, y1, x2, y2]``: ``width``, but at
    most :data:`OUTLINE_SHARE` of the box's shorter side, and at least 1, so that a small
    object stays in sight inside it."""
    shorter = min(box[2] - box[0], box[3] - box[1])
    return max(1, min(width, math.floor(shorter * OUTLINE_SHARE)))


def drawing_scale(picture: Image.Image) -> float:
    """How much thicker lines and larger captions are drawn on ``picture`` than on an
    image of :data:`REFERENCE_SIDE`: its mean side over that, at least 1."""
    return max(1.0, (picture.width + picture.height) / 2 / REFERENCE_SIDE)


@functools.cache
def caption_font(path: Path, size: int) -> ImageFont.FreeTypeFont:
    """The font file ``path`` at ``size`` pixels."""
    return ImageFont.truetype(str(path), size)


@functools.cache
def caption_font_file(name: str) -> Path:
    """The font file the captions of the class ``name`` are drawn in:
    :data:`CAPTION_FONT` where it has every character of the name, else the first of
    :func:`fallback_fonts` that has them and the score's; where none has, a one-line
    warning (once a name) that the name shows as boxes, and :data:`CAPTION_FONT`."""
    needed = {ord(c) for c in name if c.isprintable()} | SCORE_CHARACTERS
    if needed <= font_characters(CAPTION_FONT):
        return CAPTION_FONT
    found = next((path for path in fallback_fonts() if needed <= font_characters(path)), None)
    if found is None:
        warnings.warn(
            f"class {name!r}: no font here has its letters, so its name shows as boxes in "
            "the pictures",
            stacklevel=2,
        )
        return CAPTION_FONT
    return found


@functools.cache
def fallback_fonts() -> list[Path]:
    """The font files installed, as matplotlib finds them, and its own: upright ones of
    regular weight first, then by path; none whose every character is a placeholder box
    (a "Last Resort" font, as matplotlib's own and macOS's)."""
    entries = [*font_manager.fontManager.ttflist, *_fonts_new_to_matplotlib()]
    entries = [e for e in entries if "lastresort" not in e.name.lower().replace(" ", "")]
    entries.sort(key=lambda e: (e.style != "normal", abs(_weight(e.weight) - 400), e.fname))
    return list(dict.fromkeys(Path(entry.fname) for entry in entries))


def _fonts_new_to_matplotlib() -> list[font_manager.FontEntry]:
    """The installed fonts that matplotlib's list, kept from the first time it ran, lacks:
    those installed since (it sees them only once its cache is deleted)."""
    known = {entry.fname for entry in font_manager.fontManager.ttflist}
    entries = []
    for path in font_manager.findSystemFonts():
        if path not in known:
            try:
                entries.append(font_manager.ttfFontProperty(FT2Font(path)))
            except Exception:  # as matplotlib's own list leaves out a font it cannot read
                continue
    return entries


def _weight(weight: str | int) -> int:
    """A font's weight as a number: 400 regular, 700 bold."""
    return font_manager.weight_dict.get(weight, 400) if isinstance(weight, str) else weight


@functools.cache
def font_characters(path: Path) -> frozenset[int]:
    """The code points the font file ``path`` has a glyph for (its first face); none
    where FreeType cannot read it."""
    try:
        return frozenset(FT2Font(str(path)).get_charmap())
    except (OSError, RuntimeError):
        return frozenset()


def draw_proposals(
    image: Tensor, proposals: dict[str, Tensor], top_k: int = PROPOSALS_DRAWN
) -> Image.Image:
    """The image with the RPN's ``top_k`` proposals, the strongest drawn brightest, the
    lines scaled with the image (:func:`drawing_scale`), a small box's thinner
    (:func:`outline_width`).

    Args:
        image: ``(3, H, W)``, float in 0..1 or ``uint8`` levels.
        proposals: ``{"boxes": (P, 4), "scores": (P,)}`` by decreasing score.
    """
    return _outline_proposals(to_pil(image), proposals, top_k)


def _outline_proposals(image: Image.Image, proposals: dict[str, Tensor], top_k: int) -> Image.Image:
    """:func:`draw_proposals` on a new copy of ``image``, an RGB image."""
    picture = image.convert("RGBA")
    overlay = Image.new("RGBA", picture.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    boxes = proposals["boxes"][:top_k].tolist()
    width = round(drawing_scale(picture))
    for rank, box in reversed(list(enumerate(boxes))):
        alpha = int(255 - 200 * rank / max(len(boxes) - 1, 1))
        draw.rectangle(box, outline=(255, 255, 0, alpha), width=outline_width(box, width))
    return Image.alpha_composite(picture, overlay).convert("RGB")


def save_pictures(
    image: Tensor,
    detections: dict[str, Tensor],
    proposals: dict[str, Tensor] | None,
    class_names: Sequence[str],
    picture: Path,
    score_threshold: float = 0.5,
    label: str = "",
) -> list[Path]:
    """Write the pictures of one image named after ``picture``, in the format of its
    suffix (:func:`~faster_rcnn.insight.pictures.image_pictures`): its detections
    (:func:`draw_detections`), with ``label`` after the name, and given proposals,
    ``_proposals`` after it (:func:`draw_proposals`), a PNG at zlib level
    :data:`PICTURE_PNG_LEVEL`; the tensors may be on any device. Returns the paths
    written, the detections picture's first."""
    paths = image_pictures(picture, proposals is not None, label)
    # Converted once for both pictures: a 12 Mpx photo's conversion takes about 0.3 s and
    # a float copy of it.
    pixels = to_pil(image.cpu())
    written = []
    if proposals is not None:  # drawn on a copy, before the detections mark the pixels
        props = {k: v.cpu() for k, v in proposals.items()}
        drawn = _outline_proposals(pixels, props, PROPOSALS_DRAWN)
        written.append(save_picture(drawn, paths[1], PICTURE_PNG_LEVEL))
    det = {k: v.cpu() for k, v in detections.items()}
    drawn = _outline_detections(pixels, det, class_names, score_threshold)
    return [save_picture(drawn, paths[0], PICTURE_PNG_LEVEL), *written]
