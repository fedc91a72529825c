"""Checks of user input, with errors that name the image and the box at fault.

Degenerate or non-finite boxes are the most common cause of NaN losses reported against
detection libraries; they are rejected here, before any computation, instead.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import torch
from torch import Tensor

from .transform import resized_size

# Pixel values this far above 1 mean an image in 0..255, not 0..1; this far below 0, one
# normalised already (ImageNet's mean and std make black about -2).
_BRIGHTEST = 1.5
_DARKEST = -0.5
_NOT_A_BATCH = "images must be a non-empty list of (3, H, W) tensors or an (N, 3, H, W) batch"


def rgb_image_list(images: Sequence[Tensor] | Tensor) -> list[Tensor]:
    """The images as a list of ``(3, H, W)`` tensors, in the forms torchvision's detectors
    take them: an ``(N, C, H, W)`` batch tensor is its ``N`` images, and a grey ``(1, H,
    W)`` image is its channel three times (what torchvision's normalisation broadcasts it
    to). Any other image is left as it is, for :func:`validate_images` to name.

    Raises:
        ValueError: ``images`` is neither a non-empty list (or tuple) nor a batch tensor.
    """
    if isinstance(images, Tensor) and images.dim() == 4:
        images = list(images.unbind(0))
    if not isinstance(images, (list, tuple)) or len(images) == 0:
        raise ValueError(_NOT_A_BATCH)
    return [_as_rgb(image) for image in images]


def _as_rgb(image: Tensor) -> Tensor:
    """A grey ``(1, H, W)`` image as ``(3, H, W)`` (a view); anything else unchanged."""
    if isinstance(image, Tensor) and image.dim() == 3 and image.shape[0] == 1:
        return image.expand(3, -1, -1)
    return image


def validate_images(images: list[Tensor], device: torch.device | None = None) -> None:
    """Each image must be a floating point ``(3, H, W)`` tensor (or a grey ``(1, H, W)``
    one, which :func:`rgb_image_list` makes ``(3, H, W)``) with ``H, W > 0`` and finite
    values (0..255 or normalised values are warned of: the model expects 0..1 and
    normalises them itself), or ``uint8`` levels, on ``device`` (the model's) where it is
    given, and never on the meta device."""
    if not isinstance(images, (list, tuple)) or len(images) == 0:
        raise ValueError(_NOT_A_BATCH)
    for i, image in enumerate(images):
        if not isinstance(image, Tensor):
            raise ValueError(f"image {i}: expected a tensor, got {type(image).__name__}")
        if image.dim() != 3 or image.shape[0] not in (1, 3) or 0 in image.shape:
            raise ValueError(
                f"image {i}: expected shape (3, H, W), or (1, H, W) for a grey image, got "
                f"{tuple(image.shape)}{_shape_hint(image)}"
            )
        if image.dtype == torch.uint8:  # 8-bit levels, which fill 0..255 by definition
            _check_device(image, device, f"image {i} is")
            continue
        if not image.is_floating_point():
            raise ValueError(
                f"image {i}: expected a floating point tensor in 0..1 or uint8, got "
                f"{image.dtype} (scale a 0..255 image: image.float() / 255, as torchvision's "
                "ToDtype(torch.float32, scale=True) does)"
            )
        _check_device(image, device, f"image {i} is")
        darkest, brightest = (float(v) for v in torch.aminmax(image.detach()))
        if not (math.isfinite(darkest) and math.isfinite(brightest)):
            raise ValueError(f"image {i}: NaN or infinite pixel values")
        _warn_of_pixel_range(darkest, brightest, i)


def _shape_hint(image: Tensor) -> str:
    """How an image of a common wrong shape becomes ``(3, H, W)``: an ``(H, W)`` grey
    image given its channel, an RGBA image's alpha channel dropped, an ``(H, W, C)``
    array's channels put first; else nothing (an empty image stays empty whatever is
    done to it)."""
    if 0 in image.shape:
        return ""
    if image.dim() == 2:
        return " (a grey image: image[None] gives it its channel)"
    if image.dim() != 3:
        return ""
    if image.shape[0] == 4:
        return " (an RGBA image: drop its alpha channel, image[:3])"
    if image.shape[-1] in (1, 3):
        return " (channels last: image.permute(2, 0, 1) puts them first)"
    return ""


def _warn_of_pixel_range(darkest: float, brightest: float, image: int) -> None:
    """Warn of an image normalised already, or in 0..255: the model detects in either,
    badly, as torchvision's does without a word."""
    if darkest < _DARKEST:
        warnings.warn(
            f"image {image}: pixel values down to {darkest:g}; the model expects 0..1 and "
            "normalises them itself (pass the images before any mean/std normalisation)",
            stacklevel=4,
        )
    elif brightest > _BRIGHTEST:
        warnings.warn(
            f"image {image}: pixel values up to {brightest:g}; the model expects "
            "0..1 (divide 0..255 images by 255)",
            stacklevel=4,
        )


def _check_device(tensor: Tensor, device: torch.device | None, subject: str) -> None:
    """``tensor`` must hold values (a meta tensor has none to check or detect in) and be
    on ``device`` where it is given; ``subject`` begins the message ("image 0 is")."""
    if tensor.device.type == "meta":
        raise ValueError(f"{subject} on the meta device, which holds no values")
    if device is not None and tensor.device != device:
        raise ValueError(
            f"{subject} on {tensor.device}, the model on {device}: inputs must be on the "
            "model's device"
        )


def validate_image_sizes(images: list[Tensor], min_sizes: Sequence[int], max_size: int) -> None:
    """Each image must keep at least one pixel a side when resized (see
    :func:`too_elongated`)."""
    for i, image in enumerate(images):
        reason = too_elongated((int(image.shape[-2]), int(image.shape[-1])), min_sizes, max_size)
        if reason is not None:
            raise ValueError(f"image {i}: {reason}")


def too_elongated(
    size: tuple[int, int],
    min_sizes: Sequence[int],
    max_size: int,
    names: tuple[str, str] = ("min_size", "max_size"),
) -> str | None:
    """Why an image of ``(height, width)`` cannot be resized to ``min_sizes`` capped by
    ``max_size`` (a strip 5000 wide and 1 high would be 1333 wide and 0 high at 800 /
    1333), or ``None`` when it can. The smallest ``min_size`` shrinks an image most, so
    it alone is checked. The message gives the size as width x height, as ``data``
    does, and the two sizes by ``names`` (the command line's ``--min-size`` /
    ``--max-size`` where those flags set them)."""
    min_size = min(min_sizes)
    if min(resized_size(size, min_size, max_size)) >= 1:
        return None
    return (
        f"{size[1]}x{size[0]} (width x height) is too elongated to resize to {names[0]} "
        f"{min_size} / {names[1]} {max_size}: a side would shrink to 0 pixels"
    )


def validate_targets(
    targets: list[dict[str, Tensor]],
    num_images: int,
    num_classes: int,
    image_sizes: Sequence[tuple[int, int]] | None = None,
    device: torch.device | None = None,
) -> None:
    """Check training targets against the model's data contract.

    Args:
        targets: per image, ``{"boxes": (N, 4) x1 y1 x2 y2, "labels": int64 (N,)}``,
            the boxes floating point or integer; ``N = 0`` (an image with no object) is
            valid.
        num_images: how many images the targets belong to.
        num_classes: classes including background; labels must be in ``1..num_classes-1``.
        image_sizes: per image, ``(height, width)``; given, a box must overlap its image
            and reach no further beyond it than the image's own size.
        device: the model's; given, boxes and labels must be on it (never on meta).

    Raises:
        ValueError: naming the image (its index, and its target's ``image_id`` where it
            has one) and, where it applies, the box.
    """
    _check_target_list(targets, num_images)
    for i, target in enumerate(targets):
        image = _image_named(target, i)
        boxes, labels = _boxes_and_labels(target, image)
        _check_device(boxes, device, f"{image}: boxes are")
        _check_device(labels, device, f"{image}: labels are")
        _check_box_coordinates(boxes, image)
        if image_sizes is not None and len(boxes):
            validate_boxes_in_image(boxes, image_sizes[i], image)
        _check_label_range(labels, num_classes, image)


def _image_named(target: object, index: int) -> str:
    """What the messages call image ``index`` of the batch: ``image 0``, with its
    target's ``image_id`` where it has one (``image 0 (image_id 5)``), since a batch of a
    shuffled loader does not tell which dataset item is at fault."""
    image_id = target.get("image_id") if isinstance(target, dict) else None
    if isinstance(image_id, Tensor) and image_id.numel() == 1:  # torch.tensor([idx])
        image_id = image_id.item()
    if isinstance(image_id, (int, str)):
        return f"image {index} (image_id {image_id})"
    return f"image {index}"


def _check_target_list(targets: object, num_images: int) -> None:
    """``targets`` must be a list (or tuple) of one target per image."""
    if not isinstance(targets, (list, tuple)) or len(targets) != num_images:
        count = len(targets) if isinstance(targets, (list, tuple)) else type(targets).__name__
        raise ValueError(f"expected a list of {num_images} target dicts, got {count}")


def _boxes_and_labels(target: object, image: str) -> tuple[Tensor, Tensor]:
    """The ``(N, 4)`` boxes (integer ones as float64) and ``(N,)`` int64 labels of the
    target of ``image``, checked for their types and shapes."""
    if not isinstance(target, dict) or "boxes" not in target or "labels" not in target:
        raise ValueError(f"{image}: target must be a dict with 'boxes' and 'labels'")
    boxes = _checked_boxes(target["boxes"], image)
    _check_label_tensor(target["labels"], boxes.shape[0], image)
    return boxes, target["labels"]


def _checked_boxes(boxes: object, image: str) -> Tensor:
    """``boxes`` if an ``(N, 4)`` floating point tensor (XYXY where it says its format);
    integer ones as float64, in which a negative width stays negative (it wraps in
    uint8)."""
    if not isinstance(boxes, Tensor) or boxes.dim() != 2 or boxes.shape[1] != 4:
        shape = tuple(boxes.shape) if isinstance(boxes, Tensor) else type(boxes).__name__
        raise ValueError(f"{image}: boxes must have shape (N, 4), got {shape}")
    if not (boxes.is_floating_point() or _is_integer(boxes)):
        raise ValueError(f"{image}: boxes must be floating point or integer, got {boxes.dtype}")
    _check_box_format(boxes, image)
    return boxes.double() if _is_integer(boxes) else boxes


def _check_box_format(boxes: Tensor, image: str) -> None:
    """A torchvision ``BoundingBoxes`` (a tensor with a ``format``) must be XYXY: the
    model reads x1, y1, x2, y2, and torchvision's detectors read any format as those,
    silently (a CXCYWH box is then another box, or none)."""
    box_format = getattr(boxes, "format", None)
    name = getattr(box_format, "name", box_format)
    if box_format is not None and name != "XYXY":
        raise ValueError(
            f"{image}: boxes are in format {name}, the model reads XYXY (x1, y1, "
            "x2, y2): convert them first (torchvision's "
            'v2.ConvertBoundingBoxFormat("XYXY"))'
        )


def _check_label_tensor(labels: object, num_boxes: int, image: str) -> None:
    """``labels`` must be an int64 tensor of shape ``(num_boxes,)``."""
    if not isinstance(labels, Tensor) or labels.dtype != torch.int64:
        dtype = labels.dtype if isinstance(labels, Tensor) else type(labels).__name__
        raise ValueError(f"{image}: labels must be an int64 tensor, got {dtype}")
    if labels.shape != (num_boxes,):
        raise ValueError(
            f"{image}: labels must have shape ({num_boxes},) to match the boxes, "
            f"got {tuple(labels.shape)}"
        )


def _check_box_coordinates(boxes: Tensor, image: str) -> None:
    """Each of the ``(N, 4)`` boxes must be finite, with ``x2 > x1`` and ``y2 > y1``."""
    bad = ~torch.isfinite(boxes).all(dim=1)
    if bad.any():
        j = int(torch.where(bad)[0][0])
        raise ValueError(f"{image}, box {j}: non-finite coordinates {boxes[j].tolist()}")
    bad = (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])
    if bad.any():
        j = int(torch.where(bad)[0][0])
        raise ValueError(
            f"{image}, box {j}: {boxes[j].tolist()} has no area "
            "(boxes are x1, y1, x2, y2 with x2 > x1 and y2 > y1)"
        )


def _check_label_range(labels: Tensor, num_classes: int, image: str) -> None:
    """Each of the ``(N,)`` labels must be a foreground class, ``1..num_classes-1``."""
    bad = (labels < 1) | (labels >= num_classes)
    if bad.any():
        j = int(torch.where(bad)[0][0])
        raise ValueError(
            f"{image}, box {j}: label {int(labels[j])} is outside 1..{num_classes - 1} "
            "(0 is background)"
        )


def float_boxes(target: dict[str, Tensor]) -> dict[str, Tensor]:
    """``target`` with integer ``(N, 4)`` boxes as float32, as torchvision's resize makes
    them (multiplying by float32 ratios); floating boxes are left as they are."""
    boxes = target["boxes"]
    if boxes.is_floating_point():
        return target
    return {**target, "boxes": boxes.to(torch.float32)}


def _is_integer(tensor: Tensor) -> bool:
    return not (tensor.is_floating_point() or tensor.is_complex() or tensor.dtype == torch.bool)


def validate_boxes_in_image(boxes: Tensor, image_size: tuple[int, int], image: str) -> None:
    """A box must overlap its ``(height, width)`` image and stay within the image's own
    size of it: a box at 1e30 makes a loss of 1e29, not an error, further on."""
    height, width = image_size
    x1, y1, x2, y2 = boxes.unbind(1)
    outside = (x1 >= width) | (y1 >= height) | (x2 <= 0) | (y2 <= 0)
    if outside.any():
        j = int(torch.where(outside)[0][0])
        raise ValueError(
            f"{image}, box {j}: {boxes[j].tolist()} lies wholly outside the {width}x{height} image"
        )
    far = (x1 < -width) | (y1 < -height) | (x2 > 2 * width) | (y2 > 2 * height)
    if far.any():
        j = int(torch.where(far)[0][0])
        raise ValueError(
            f"{image}, box {j}: {boxes[j].tolist()} reaches further beyond the "
            f"{width}x{height} image than the image's own size"
        )
