"""From user images to one normalised, padded batch, and from detections back to the images.

The arithmetic follows torchvision's ``GeneralizedRCNNTransform`` in eager mode step for
step (scale factor in Python floats, bilinear resize with ``recompute_scale_factor``,
per-axis float32 box ratios), so a torchvision checkpoint sees exactly the tensor it was
trained on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import TransformConfig, as_sizes, check_setting
from .data.dataset import as_float_image
from .data.random_crop import boxes_in_window
from .image_list import ImageList
from .ops.boxes import clip_boxes_to_image

# The transform's settings, the fields of TransformConfig.
CONFIG_SETTINGS = (
    "min_size",
    "max_size",
    "image_mean",
    "image_std",
    "size_divisible",
    "multi_scale_per",
    "train_window",
)


class ImageTransform(nn.Module):
    """Normalise, resize and batch images (and their boxes); map detections back.

    Each image is scaled so that its shorter side becomes ``min_size`` unless that makes
    the longer side exceed ``max_size``, in which case the longer side becomes
    ``max_size`` (the paper's 600 / 1000, torchvision's 800 / 1333). In training, with
    several ``min_size`` values one is drawn per image (multi-scale training), or one per
    batch (``multi_scale_per="batch"``), so that no image is padded up to a larger one's
    size. One ``min_size`` set alone (``transform.min_size = 600``) is kept as ``(600,)``.

    With ``train_window`` (height, width), training cuts each resized image larger than it
    to a random window of at most that size, turned to the image's orientation
    (:func:`window_size`); its boxes whose centre lies in the window are kept, cut to it.
    Evaluation never cuts: the detector finds at the scale it trained at, on any extent.
    """

    def __init__(self, cfg: TransformConfig) -> None:
        super().__init__()
        self.min_size = cfg.min_size
        self.max_size = cfg.max_size
        self.size_divisible = cfg.size_divisible
        self.image_mean = cfg.image_mean
        self.image_std = cfg.image_std
        self.multi_scale_per = cfg.multi_scale_per
        self.train_window = cfg.train_window

    def __setattr__(self, name: str, value: object) -> None:
        # torchvision's users set them on the built model (``transform.min_size = 600``):
        # checked by the config's rules.
        if name in CONFIG_SETTINGS:
            check_setting(TransformConfig, name, value, f"transform.{name}")
        super().__setattr__(name, value)

    @property
    def min_size(self) -> tuple[int, ...]:
        """The shorter side's target lengths (one drawn per image or batch in training,
        the last in evaluation)."""
        return self._min_size

    @min_size.setter
    def min_size(self, value: tuple[int, ...] | int) -> None:
        self._min_size = as_sizes(value)

    @property
    def fixed_size(self) -> None:
        """torchvision's fixed ``(width, height)`` every image is resized to, where it is
        set: never here (``None``), images keep their aspect ratio."""
        return None

    @fixed_size.setter
    def fixed_size(self, value: tuple[int, int] | None) -> None:
        if value is not None:
            raise ValueError(
                f"transform.fixed_size = {value!r}: images are resized keeping their aspect "
                "ratio here; set transform.min_size and transform.max_size"
            )

    @property
    def _skip_resize(self) -> bool:
        """torchvision's switch that leaves training images at the size they come in (its
        references set it where their augmentations resize them): never set here
        (``False``), every image is resized, in training too."""
        return False

    @_skip_resize.setter
    def _skip_resize(self, value: bool) -> None:
        if value is not False:
            raise ValueError(
                f"transform._skip_resize = {value!r}: every image is resized here, in "
                "training too; give transform.min_size several sizes for multi-scale training"
            )

    def forward(
        self,
        images: list[Tensor],
        targets: list[dict[str, Tensor]] | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[ImageList, list[dict[str, Tensor]] | None]:
        """Prepare a batch.

        Args:
            images: per image, ``float[3, H_i, W_i]`` with values in 0..1, or ``uint8``
                levels (:meth:`normalize`).
            targets: per image, ``{"boxes": (N_i, 4), "labels": (N_i,)}`` in the image's
                pixels; other keys are carried along unchanged.
            generator: random source of the multi-scale choice and the training window in
                training; ``None`` draws from the global generator, as torchvision does.

        Returns:
            The padded ``ImageList`` (its ``image_sizes`` are the resized sizes, the
            windows' in training with ``train_window``) and the targets with boxes in
            their pixels.
        """
        resized_images = []
        resized_targets = [] if targets is not None else None
        per_batch = self.multi_scale_per == "batch"
        shared_size = self._choose_min_size(generator) if per_batch else None
        for i, image in enumerate(images):
            image = self.normalize(image)
            original_size = (int(image.shape[-2]), int(image.shape[-1]))
            min_size = shared_size if shared_size is not None else self._choose_min_size(generator)
            image = resize_image(image, min_size, self.max_size)
            target = None
            if targets is not None:
                target = dict(targets[i])
                resized_size = (int(image.shape[-2]), int(image.shape[-1]))
                target["boxes"] = resize_boxes(target["boxes"], original_size, resized_size)
            if self.training and self.train_window is not None:
                image, target = self._cut_window(image, target, generator)
            resized_images.append(image)
            if target is not None and resized_targets is not None:
                resized_targets.append(target)
        image_sizes = [(int(img.shape[-2]), int(img.shape[-1])) for img in resized_images]
        return ImageList(self.batch(resized_images), image_sizes), resized_targets

    def normalize(self, image: Tensor) -> Tensor:
        """``(image - mean) / std`` per channel; ``image`` is ``(3, H, W)``, floating point
        in 0..1 or ``uint8`` levels, which are scaled to 0..1 first as the image files'
        reader scales them (:func:`~faster_rcnn.data.dataset.as_float_image`)."""
        if image.dtype == torch.uint8:
            # The scaled copy is ours: normalised in place, the one full-size float copy.
            scaled = as_float_image(image)
            return scaled.sub_(self._channel_tensor(self.image_mean, scaled)).div_(
                self._channel_tensor(self.image_std, scaled)
            )
        if not image.is_floating_point():
            raise TypeError(
                f"images must be floating point tensors in 0..1 or uint8, got {image.dtype}"
            )
        mean = self._channel_tensor(self.image_mean, image)
        std = self._channel_tensor(self.image_std, image)
        # Divided in place: the same numbers, without a third full-size copy beside the
        # image and the difference (an 8000 x 6000 photo's is 576 MB). At full size, before
        # the resize, as torchvision: normalising a shrunk image after it gives the same
        # numbers to float rounding (1e-6), which changed a proposal in tests/parity.
        return (image - mean).div_(std)

    @staticmethod
    def _channel_tensor(values: Sequence[float], image: Tensor) -> Tensor:
        """``(3, 1, 1)`` per-channel ``values`` in ``image``'s dtype and device."""
        return torch.as_tensor(values, dtype=image.dtype, device=image.device)[:, None, None]

    def batch(self, images: list[Tensor]) -> Tensor:
        """Zero-pad images to a common size divisible by ``size_divisible``.

        Args:
            images: per image, ``(C, H_i, W_i)``.

        Returns:
            ``(N, C, H, W)`` with ``(H, W)`` the :func:`padded_size` of the images.
        """
        channels = images[0].shape[0]
        height, width = padded_size([img.shape[-2:] for img in images], self.size_divisible)
        batched = images[0].new_zeros((len(images), channels, height, width))
        # Indexed, not iterated: autograd refuses an in-place copy into a view from
        # unbind, so images that require a gradient (saliency, adversarial) would fail.
        for i, img in enumerate(images):
            batched[i, :, : img.shape[1], : img.shape[2]].copy_(img)
        return batched

    def postprocess(
        self,
        detections: list[dict[str, Tensor]],
        image_sizes: list[tuple[int, int]],
        original_image_sizes: list[tuple[int, int]],
    ) -> list[dict[str, Tensor]]:
        """Map detection boxes from resized-image to original-image pixels (in place).

        The boxes were clipped to the resized image; scaled back, float rounding can put a
        side a few millionths of a pixel past the original image, so they are clipped to
        it again."""
        for detection, resized, original in zip(
            detections, image_sizes, original_image_sizes, strict=True
        ):
            boxes = resize_boxes(detection["boxes"], resized, original)
            detection["boxes"] = clip_boxes_to_image(boxes, original)
        return detections

    def _choose_min_size(self, generator: torch.Generator | None) -> int:
        if not self.training:
            return self.min_size[-1]
        # torchvision draws even when there is one size; drawing the same way keeps the
        # global random stream (and so the samplers) in step with it.
        draw = torch.empty(1).uniform_(0.0, float(len(self.min_size)), generator=generator)
        return self.min_size[int(draw.item())]

    def _cut_window(
        self,
        image: Tensor,
        target: dict[str, Tensor] | None,
        generator: torch.Generator | None,
    ) -> tuple[Tensor, dict[str, Tensor] | None]:
        """A random window of :func:`window_size` of the resized ``(C, H, W)`` image, and
        ``target`` as it lies in it (:func:`~faster_rcnn.data.random_crop.boxes_in_window`:
        a box whose centre is outside is dropped, with its label); an image the window
        holds whole is returned as it is, drawing nothing."""
        height, width = int(image.shape[-2]), int(image.shape[-1])
        crop_h, crop_w = window_size((height, width), self.train_window)
        if (crop_h, crop_w) == (height, width):
            return image, target
        draws = torch.rand(2, generator=generator, dtype=torch.float64).tolist()
        top = int(draws[0] * (height - crop_h + 1))
        left = int(draws[1] * (width - crop_w + 1))
        cropped = image[..., top : top + crop_h, left : left + crop_w]
        if target is None:
            return cropped, None
        return cropped, boxes_in_window(target, (left, top, left + crop_w, top + crop_h))


def window_size(image_size: Sequence[int], window: Sequence[int]) -> tuple[int, int]:
    """The ``(height, width)`` of the training window cut from an image of ``image_size``:
    ``window`` (height, width) turned so that its longer side lies along the image's
    longer side (as given where either is square), each side at most the image's."""
    height, width = image_size
    window_h, window_w = window
    if (height - width) * (window_h - window_w) < 0:  # one portrait, the other landscape
        window_h, window_w = window_w, window_h
    return min(height, window_h), min(width, window_w)


def resize_image(image: Tensor, min_size: int, max_size: int) -> Tensor:
    """Bilinearly rescale ``(C, H, W)`` so the shorter side is ``min_size``, the longer at
    most ``max_size``."""
    return F.interpolate(
        image[None],
        size=None,
        scale_factor=resize_scale(image.shape[-2:], min_size, max_size),
        mode="bilinear",
        recompute_scale_factor=True,
        align_corners=False,
    )[0]


def resize_scale(image_size: Sequence[int], min_size: int, max_size: int) -> float:
    """The factor :func:`resize_image` scales an image of ``(height, width)`` by.

    Python (double) arithmetic, as torchvision in eager mode. Its scripted and traced
    paths compute in float32, which lands one pixel short (375x500 -> 799x1066 instead
    of 800x1066) for about half of all image sizes; eager is what its users run and what
    its checkpoints were trained with.
    """
    height, width = (int(side) for side in image_size)
    return min(min_size / min(height, width), max_size / max(height, width))


def resized_size(image_size: Sequence[int], min_size: int, max_size: int) -> tuple[int, int]:
    """The ``(height, width)`` :func:`resize_image` makes of an image of ``image_size``
    (the interpolation's ``floor(size * scale)``), without touching pixels."""
    scale = resize_scale(image_size, min_size, max_size)
    height, width = image_size
    return math.floor(height * scale), math.floor(width * scale)


def resize_boxes(
    boxes: Tensor, original_size: tuple[int, int], new_size: tuple[int, int]
) -> Tensor:
    """Scale ``(N, 4)`` boxes from an image of ``original_size`` to ``new_size`` (h, w)."""
    ratio_h, ratio_w = (
        torch.tensor(new, dtype=torch.float32, device=boxes.device)
        / torch.tensor(old, dtype=torch.float32, device=boxes.device)
        for new, old in zip(new_size, original_size, strict=True)
    )
    x1, y1, x2, y2 = boxes.unbind(1)
    return torch.stack((x1 * ratio_w, y1 * ratio_h, x2 * ratio_w, y2 * ratio_h), dim=1)


def padded_size(sizes: Sequence[Sequence[int]], size_divisible: int) -> tuple[int, int]:
    """The ``(height, width)`` a batch of images of ``sizes`` (each ``(H_i, W_i)``) is
    padded to: the largest height and width, each rounded up to a multiple of
    ``size_divisible`` (in float arithmetic, as torchvision)."""
    stride = float(size_divisible)
    height, width = (
        int(math.ceil(max(sides) / stride) * stride) for sides in zip(*sizes, strict=True)
    )
    return height, width
