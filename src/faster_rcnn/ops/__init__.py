"""Detection operators in plain PyTorch: box geometry, NMS and Soft-NMS, RoIAlign and
RoIPool."""

from .boxes import BoxCoder, box_area, box_iou, clip_boxes_to_image, remove_small_boxes
from .nms import batched_nms, batched_nms_per_category, nms
from .roi_align import RoIAlign, RoIPool, boxes_to_rois, roi_align, roi_pool
from .soft_nms import batched_soft_nms

__all__ = [
    "BoxCoder",
    "RoIAlign",
    "RoIPool",
    "batched_nms",
    "batched_nms_per_category",
    "batched_soft_nms",
    "box_area",
    "box_iou",
    "boxes_to_rois",
    "clip_boxes_to_image",
    "nms",
    "remove_small_boxes",
    "roi_align",
    "roi_pool",
]
