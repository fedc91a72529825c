"""Pictures of what the detector and its RPN see: boxes drawn on the input image."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import torch
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
# FreeType or before Pillow 10.1, failed on a character outside Latin-1).
CAPTION_FONT = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
CAPTION_SIZE = 11  # pixels
# Outlines of 2 px, proposals of 1 px and captions of CAPTION_SIZE on an image of this mean
# side or less, thicker and larger in proportion on a larger one: a 4000 x 3000 photo
# viewed whole on a screen shows them as a 640-px image does.
REFERENCE_SIDE = 640


def to_pil(image: Tensor) -> Image.Image:
    """``float[3, H, W]`` in 0..1 -> an RGB PIL image."""
    array = (image.detach().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0)
    return Image.fromarray(array.cpu().numpy(), mode="RGB")


def draw_detections(
    image: Tensor,
    detections: dict[str, Tensor],
    class_names: Sequence[str],
    score_threshold: float = 0.5,
) -> Image.Image:
    """The image with each detection scoring at least ``score_threshold`` outlined and
    labelled ``name score``, lines and captions scaled with the image
    (:func:`drawing_scale`).

    Args:
        image: ``float[3, H, W]`` in 0..1.
        detections: ``{"boxes": (D, 4), "labels": (D,), "scores": (D,)}``.
        class_names: names of labels ``1..C`` (index 0 is label 1).
    """
    picture = to_pil(image)
    draw = ImageDraw.Draw(picture)
    scale = drawing_scale(picture)
    font = caption_font(round(CAPTION_SIZE * scale))
    keep = detections["scores"] >= score_threshold
    for box, label, score in zip(
        detections["boxes"][keep].tolist(),
        detections["labels"][keep].tolist(),
        detections["scores"][keep].tolist(),
        strict=True,
    ):
        colour = _PALETTE[(label - 1) % len(_PALETTE)]
        draw.rectangle(box, outline=colour, width=round(2 * scale))
        name = class_names[label - 1] if 0 < label <= len(class_names) else str(label)
        caption = f"{name} {score:.2f}"
        anchor = _caption_place(draw.textbbox((0, 0), caption, font=font), box, picture.size)
        draw.rectangle(draw.textbbox(anchor, caption, font=font), fill=colour)
        draw.text(anchor, caption, fill=(0, 0, 0), font=font)
    return picture


def _caption_place(
    text_box: tuple[float, float, float, float],
    box: list[float],
    image_size: tuple[int, int],
) -> tuple[float, float]:
    """Where a caption of ``text_box`` (its extent drawn at (0, 0)) goes for ``box``
    ``[x1, y1, x2, y2]`` on an image of ``image_size`` (width, height): above the box,
    or below it at the top edge (never over the object itself), inside its top where it
    fills the image's height; moved left to end inside the image at its right edge."""
    width, height = image_size
    text_w, text_h = text_box[2], text_box[3]
    x = max(0.0, min(box[0], width - text_w - 1))
    if box[1] > text_h:
        return x, box[1] - text_h - 1
    return (x, box[3] + 1) if box[3] + 1 + text_h < height else (x, box[1])


def drawing_scale(picture: Image.Image) -> float:
    """How much thicker lines and larger captions are drawn on ``picture`` than on an
    image of :data:`REFERENCE_SIDE`: its mean side over that, at least 1."""
    return max(1.0, (picture.width + picture.height) / 2 / REFERENCE_SIDE)


@functools.cache
def caption_font(size: int) -> ImageFont.FreeTypeFont:
    """:data:`CAPTION_FONT` at ``size`` pixels."""
    return ImageFont.truetype(str(CAPTION_FONT), size)


def draw_proposals(image: Tensor, proposals: dict[str, Tensor], top_k: int = 50) -> Image.Image:
    """The image with the RPN's ``top_k`` proposals, the strongest drawn brightest, the
    lines scaled with the image (:func:`drawing_scale`).

    Args:
        image: ``float[3, H, W]`` in 0..1.
        proposals: ``{"boxes": (P, 4), "scores": (P,)}`` by decreasing score.
    """
    picture = to_pil(image).convert("RGBA")
    overlay = Image.new("RGBA", picture.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    boxes = proposals["boxes"][:top_k].tolist()
    width = round(drawing_scale(picture))
    for rank, box in reversed(list(enumerate(boxes))):
        alpha = int(255 - 200 * rank / max(len(boxes) - 1, 1))
        draw.rectangle(box, outline=(255, 255, 0, alpha), width=width)
    return Image.alpha_composite(picture, overlay).convert("RGB")


def save_pictures(
    image: Tensor,
    detections: dict[str, Tensor],
    proposals: dict[str, Tensor] | None,
    class_names: Sequence[str],
    picture: Path,
    score_threshold: float = 0.5,
    label: str = "",
) -> None:
    """Write the pictures of one image named after ``picture``, in the format of its
    suffix (:func:`~faster_rcnn.insight.pictures.image_pictures`): its detections
    (:func:`draw_detections`), with ``label`` after the name, and given proposals,
    ``_proposals`` after it (:func:`draw_proposals`); the tensors may be on any device."""
    paths = image_pictures(picture, proposals is not None, label)
    det = {k: v.cpu() for k, v in detections.items()}
    save_picture(draw_detections(image.cpu(), det, class_names, score_threshold), paths[0])
    if proposals is not None:
        props = {k: v.cpu() for k, v in proposals.items()}
        save_picture(draw_proposals(image.cpu(), props), paths[1])
