"""Detection datasets (Pascal VOC, COCO, YOLO, TensorFlow and keras-retinanet CSV, VGG
Image Annotator, LabelMe, CVAT for images, generated shapes), augmentation, loaders.

Every dataset gives ``(image, target)`` pairs, the image ``(3, H, W)`` float in 0..1 or
(the readers' of 8-bit image files) ``uint8`` levels, with target boxes as ``x1, y1, x2,
y2`` absolute pixels and labels ``1..C``; see :mod:`.dataset`.
"""

from .augment import (
    Augmented,
    RandomFlip,
    RandomHorizontalFlip,
    RandomVerticalFlip,
    Transform,
    derive_seed,
)
from .box_audit import BoxAudit
from .cache import InMemoryDataset
from .coco import COCODetection, drop_crowd
from .createml import CreateMLDetection
from .csv_boxes import CSVDetection
from .cvat import CVATDetection
from .dataset import (
    DetectionDataset,
    ImageFileDataset,
    MissingImageError,
    Sample,
    Target,
    UnreadableImageError,
    WrappedDataset,
    as_float_image,
    image_size_of,
    read_image,
    read_image_levels,
)
from .keras_txt import KerasTXTDetection
from .labelme import LabelMeFolder
from .loader import (
    Batch,
    GroupedBatchSampler,
    aspect_ratio_groups,
    collate,
    collate_train,
    iterate_batches,
    make_eval_loader,
    make_train_loader,
)
from .open import open_dataset
from .slides import SyntheticSlides
from .synthetic import SyntheticShapes
from .unreadable import Skipped, SkipUnreadable, UnreadableLog
from .via import VIADetection
from .voc import VOCDetection
from .yolo import YOLODetection

__all__ = [
    "Augmented",
    "Batch",
    "BoxAudit",
    "COCODetection",
    "CSVDetection",
    "CVATDetection",
    "CreateMLDetection",
    "DetectionDataset",
    "GroupedBatchSampler",
    "ImageFileDataset",
    "InMemoryDataset",
    "KerasTXTDetection",
    "LabelMeFolder",
    "MissingImageError",
    "RandomFlip",
    "RandomHorizontalFlip",
    "RandomVerticalFlip",
    "Sample",
    "SkipUnreadable",
    "Skipped",
    "SyntheticShapes",
    "SyntheticSlides",
    "Target",
    "Transform",
    "UnreadableImageError",
    "UnreadableLog",
    "VIADetection",
    "VOCDetection",
    "WrappedDataset",
    "YOLODetection",
    "as_float_image",
    "aspect_ratio_groups",
    "collate",
    "collate_train",
    "derive_seed",
    "drop_crowd",
    "image_size_of",
    "iterate_batches",
    "make_eval_loader",
    "make_train_loader",
    "open_dataset",
    "read_image",
    "read_image_levels",
]
