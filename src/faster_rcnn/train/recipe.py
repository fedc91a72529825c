"""The training recipe: the preset's numbers, adjusted to the dataset.

A preset states the detector as its source publishes it (torchvision's 512 RoIs an image,
say); what trains best in a short CPU budget on a given dataset is not always that.
:func:`choose_recipe` looks at the training objects - how many an image, how small the
smallest class is once resized - and changes what the measurements recorded in
``benchmarks/recipe_ab.md`` and ``benchmarks/seed_study.md`` show to help, each change
with its reason, so that ``train`` can print what it chose and why. Settings the user gave
are never changed.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ..config import BACKBONES, AnchorConfig, FasterRCNNConfig, RPNConfig
from ..counted import counted
from ..data.dataset import (
    Sample,
    UnreadableImageError,
    image_size_of,
    spread_indices,
    target_of,
)
from ..data.repeat_factor import RARE_IMAGE_SHARE, REPEAT_THRESHOLD
from ..ops.boxes import BEST_IOU_BLOCK_PAIRS, box_iou
from ..transform import resized_size, window_size
from .train_config import LR_PER_IMAGE

# The paper's RoIs an image (Fast R-CNN's 128). With torchvision's 512 the box head is
# about a third of a mobilenet_v2_fpn training step on a CPU: at 128 a 30-minute budget
# on the generated slides fitted 143 steps instead of 110 (benchmarks/recipe_ab.md). At
# equal steps the two scored alike (benchmarks/seed_study.md): the gain is the steps.
# Even with 150 objects an image 512 was behind (round 14: fewer steps, and the extra
# foreground RoIs went to the common class once the rare one's ran out).
ROI_BATCH_SIZE = 128
# Randomly moved copies of each GT box among the head's candidate RoIs. On 3x3 mosaics
# of the slides (150 objects an image, platelets 33 px) 4 copies were ahead on both
# seeds in the same 15 minutes: mAP@0.5 0.841 / 0.861 against 0.810 / 0.803, platelets
# 0.698 / 0.753 against 0.601 / 0.585, the cells even; ahead on all three seeds of the
# slides (near their ceiling) and on 3 seeds of 4 of raccoon, +0.020 mAP@0.5 on average
# (benchmarks/recipe_ab.md, round 15); on raccoon in 20 minutes even at IoU 0.5 and
# +0.020 COCO AP, ahead in all 3 seeds (round 16). At equal steps, without a clock,
# raccoon at 512 px scored 0.013 lower with them (benchmarks/seed_study.md,
# readme_today): their gain is the budget's, the recipe's case.
GT_JITTER = 4
# Images read to describe the objects: enough for stable medians, bounded time.
MAX_IMAGES_READ = 2000
# Multi-scale training (detectron2's 640-800 in steps of 32) where a class is small: each
# image's shorter side is drawn from SCALE_RANGE x the preset's size up to it, in
# SCALE_STEP px steps. On the generated slides (platelets 69 px once resized) it was
# ahead on both seeds at 150-200 steps and even at 300, where the slides are near their
# ceiling (benchmarks/recipe_ab.md, round 5).
SCALE_RANGE, SCALE_STEP = 0.8, 32
# One of those sizes drawn per batch, not per image (YOLOv5's multi-scale; torchvision
# and detectron2 draw per image): the same sizes as often, but no image of a batch is
# zero-padded up to a larger one's size, which the backbone would convolve. On the
# slides a step took 0.940 times as long with 2 images (padding 1.1 % of the pixels
# instead of 9.2 %) and 0.912 with 4 (instead of 15.2 %; benchmarks/recipe_ab.md,
# round 28).
MULTI_SCALE_PER = "batch"
SMALL_SIDE = 128  # px once resized: the measured platelets are well under it
# The backbone stage before the first the FPN reads, where a class is small once resized
# (under SMALL_SIDE) and images are not crowded (fewer than FINER_MAP_OBJECTS objects,
# the median): MobileNetV2's FPN reads two stride-32 stages (torchvision's default), and
# its stride-16 stage gives small objects a map four times as fine, for 0.77-0.89 times
# the steps. On the slides with their platelets 33 px once resized (15 objects an image,
# 5 minutes, four seeds) it was ahead on all four: mAP@0.5 +0.040 to +0.097, the
# platelets +0.089 to +0.254 (on the stride-32 maps their detections were misplaced),
# COCO AP +0.10 to +0.15; at the slides' own size (platelets 68 px, 20 minutes, two
# seeds) +0.001 and +0.007, COCO AP +0.022 and +0.005. At 30 objects an image (platelets
# 35 px, 20 minutes, two seeds) it was even to ahead at IoU 0.5 (+0.001 and +0.007, the
# platelets 0.000 and +0.013) and ahead in COCO AP (+0.034 and +0.039). Crowded images
# hold many small objects to learn from, and there the stride-32 maps learnt them too:
# at 66 objects an image (platelets 34 px, two seeds) it was even at IoU 0.5 (-0.005 and
# +0.003; the platelets -0.032 and -0.003, some never proposed) though ahead in COCO AP
# (+0.043 and +0.051); at 150 behind (-0.019 and -0.028, the platelets -0.085 and
# -0.107). Raccoon (no class under SMALL_SIDE) was behind (-0.006 and -0.002;
# benchmarks/recipe_ab.md, rounds 48 to 50). Below 40 objects it was never behind at IoU
# 0.5, nor its small class by more than 0.003; at 66 the small class lost up to 0.032.
# The median is over the images that hold objects (every image measured held some):
# images without any leave those with them as crowded.
FINER_MAP_OBJECTS = 40
# Where the smallest class is at least FINER_MAP_ANY_STEPS_SIDE px once resized (two
# cells of the stride-32 maps), the stride-16 map pays only in a run of FINER_MAP_STEPS
# of its steps or more: a short run has fewer, longer steps to learn its extra level in
# (the likely reading). In float32 held to AVX2 on a Zen 5 (one thread each, side by
# side), on the slides with a quarter of their cells unlabelled (13 objects an image):
# with the platelets 69 px once resized it was behind at 421-424 of its steps (mAP@0.5
# -0.022 and -0.021, the platelets -0.046 and -0.050), even at 513-516 (-0.005 and
# +0.003, COCO AP +0.004 and -0.008) and ahead at 637-644 (+0.006 and +0.003, COCO AP
# +0.024 and +0.019). Under that size it pays at any steps: with the platelets 60 px it
# was even at 459-466 steps (+0.004 and -0.003, COCO AP +0.021 and +0.027), with them 50
# px even at 324-363 (+0.003 and -0.005, COCO AP +0.055 and +0.032), and with them 33 px
# far ahead at 329-337 (+0.093 and +0.108, the platelets +0.221 and +0.264, whose boxes
# the stride-32 maps misplaced; benchmarks/recipe_ab.md, rounds 57 and 58). In a time
# budget the steps are not known before the model is built: train times a few first
# (train.step_timing).
FINER_MAP_ANY_STEPS_SIDE = 64
FINER_MAP_STEPS = 530
# A larger input where the smallest class is smaller than the smallest anchor once
# resized: by what reaches the anchor, at most MAX_UPSCALE (a step costs about its
# square). On 3x3 mosaics of the slides (platelets 23 px at 800, anchors from 32)
# 896-1088 px was ahead on both seeds in the same 15 minutes, with 40 % fewer steps:
# mAP@0.5 0.695 / 0.684 against 0.620 / 0.616, platelets 0.25 / 0.26 against 0.12 / 0.12
# (benchmarks/recipe_ab.md, round 9). Further from the anchors, MAX_UPSCALE is still
# ahead: with platelets 17 px at 800, 896-1120 px gave in 20 minutes, two seeds, on 4x4
# mosaics (48 objects an image) mAP@0.5 0.977 / 0.976 against 0.953 / 0.951, platelets
# 0.957 / 0.959 against 0.891 / 0.885, with 0.67 times the steps; on the slides on a
# larger canvas (17 objects an image) 0.930 / 0.915 against 0.802 / 0.830, platelets
# 0.849 / 0.803 against 0.477 / 0.563, with 0.61 times. Enlarged 1.88 times there, to
# the anchor, it was even at IoU 0.5 (0.929 / 0.918) in 0.65 times the steps (round 51).
MAX_UPSCALE = 1.4
# Where training cuts windows, the RPN's test-time limits grow with the evaluated image's
# pixels over a window's (round 69: 7.8 times), to at most this: each proposal is a RoI
# the box head pools, 50 kB of float32 in the FPN presets' 256 x 7 x 7.
WINDOW_PROPOSALS_MAX_TIMES = 10
# Where even the smallest class is larger than the largest anchor once resized, the images
# are made smaller until it is within it. Raccoon (its objects 642 px at 800), 20 minutes,
# two seeds: at 640 px COCO AP 0.552 / 0.587 against 0.513 / 0.530, AP75 0.658 / 0.649
# against 0.492 / 0.555, mAP@0.5 0.910 / 0.945 against 0.908 / 0.907, in about as many
# steps; at 512 px (1.5 times the steps) 0.576 / 0.605, 0.632 / 0.698 and 0.933 / 0.950,
# further still, but with the objects under the anchor (round 62).
SMALLER_INPUT = "on raccoon COCO AP +0.04 and +0.06: benchmarks/recipe_ab.md, round 62"
# Detections an image: at least this many times the most objects of a training image, in
# whole hundreds. The rare classes score lowest and are the first a cap cuts: on 3x3
# mosaics of the generated slides (117-186 objects an image) torchvision's 100 gave mAP
# 0.49 (platelets 0.00, leukocytes 0.77), 200 and more 0.75 (0.38, 0.98). Twice, as
# models return more detections than there are objects: up to 209 on test images of at
# most 178 objects there (benchmarks/recipe_ab.md, round 9).
DETECTIONS_PER_OBJECT = 2
# Proposals an image in evaluation: at least this many times the most objects of a
# training image, in whole hundreds. The RPN's NMS (at 0.7) leaves several proposals on
# each object, and on crowded images the preset's 1000 run out before the last objects:
# on 6 x 6 mosaics of the generated slides (up to 129 objects an image) a model the
# recipe trained went from mAP@0.5 0.969 to 0.980 with 2000, which this chooses there
# (cells 0.961 to 0.981, platelets 0.951 to 0.962), and two seeds' to 0.982 and 0.983
# with 4000; on 3 x 3 mosaics (up to 186) from 0.940 to 0.944 with 2800, though COCO AP
# fell there (0.700 to 0.693 counting every detection; AP75 0.757 to 0.735): more
# candidates, worse placed at strict overlaps, where on the 6 x 6 mosaics it rose
# (0.810 to 0.815; box voting, round 71, gave it back on the 3 x 3 and cost the others).
# 1.1 to 1.5 times the detection time (benchmarks/recipe_ab.md, round 70).
PROPOSALS_PER_OBJECT = 15
# The head's NMS for a class whose objects overlap each other: NMS at IoU t keeps one of
# two detections of a class that overlap more, so where many objects of a class have a
# neighbour of it beyond t, NMS removes true detections. On the generated slides (9 % of
# the cells overlap another at IoU >= 0.5, the other classes none) the same trained
# models scored higher with the cells' NMS at 0.6 on all three seeds and on their crowded
# mosaics: cells +0.008 to +0.013 AP@0.5, mAP +0.003 to +0.005. At 0.6 for every class
# the mosaics' platelets lost 0.034 (more duplicates of a class that did not need it),
# and raccoon (no overlaps) 0.008 to 0.016 (benchmarks/recipe_ab.md, round 22). Slides
# with fewer and with more cells (round 23): with 3.9 % of the cells beyond 0.5, 0.6
# still gained on them (+0.007 and +0.000 AP@0.5, two seeds) and lost nowhere, hence 2 %
# (under it, a class's few duplicate annotations alone could reach the share); with 19 %
# (10 % beyond 0.6), 0.7 was still behind 0.6 (cells 0.890 / 0.903 against 0.896 / 0.907).
CROWDED_NMS_THRESH = 0.6
CROWDED_SHARE = 0.02  # of a class's objects, with a neighbour of it beyond the NMS IoU
# Gaussian Soft-NMS (Bodla et al. 2017) instead of greedy NMS: a detection overlapping a
# better one of its class is lowered in score, not removed, so two objects that overlap
# keep both detections, and a duplicate ranks below them. Scored on the same ten trained
# models of four datasets (the slides, their mosaics, sparser and denser slides, raccoon),
# sigma 0.3 was ahead of greedy NMS with the IoUs above in COCO AP on all ten (mean
# +0.006) and in mAP@0.5 on nine (mean +0.0035; the mosaics -0.001); 0.5 gained more COCO
# AP (+0.010) but lost 0.010 mAP@0.5 on the mosaics' rare class (benchmarks/recipe_ab.md,
# round 23). Fresh runs on new seeds (slides, raccoon twice, the mosaics) and two more
# trained models were ahead in both figures, raccoon most (+0.035 and +0.025 mAP@0.5;
# round 24), and with a quarter of the dense slides' cells unlabelled it was even in
# mAP@0.5 and +0.008 in COCO AP (two seeds): 18 models, COCO AP ahead on all. It costs
# about 10 ms an image on a CPU core where greedy NMS costs 2.
SOFT_NMS_SIGMA = 0.3
# Twice the rate an image where images are crowded: a step's losses then average over
# the objects of all the batch's images, so its gradient is steadier and a longer step
# pays. At batches of 2, twice the rate was ahead on the slides (17 objects an image;
# two seeds, 20 minutes on a Zen 3 EPYC: mAP@0.5 +0.005 and +0.010, COCO AP +0.026 and
# +0.040) and on their mosaics (150: +0.17 and +0.09 there, the platelets 0.70 and 0.63
# against 0.23 and 0.38; at a Zen 4's 820 steps +0.014 over three seeds, the platelets
# +0.028), and behind on raccoon (one an image) in COCO AP on all five seeds, at IoU 0.5
# on four by 0.02-0.10 (benchmarks/recipe_ab.md, rounds 31 and 32). The same raccoon
# photos tiled 2 x 2 to an image (4 objects) were ahead on the CPU in AP75 on three
# seeds of three, in COCO AP on two (+0.020 on average) and at IoU 0.5 by +0.014 on
# average (-0.004, +0.002, +0.045); 3 x 3 (10) in COCO AP on all four seeds, CPU and
# GPU; 1 x 2 (2) were mixed over three seeds: behind at IoU 0.5 on two (-0.027, +0.004,
# -0.034), ahead in COCO AP on two (+0.030, -0.004, +0.010; rounds 33 and 34), though
# the generated slides gained even at 2 objects an image. Four times the rate was behind
# twice it on the slides with a quarter of their cells unlabelled (13 an image; two
# seeds: mAP@0.5 -0.005 and -0.010, COCO AP -0.004 and -0.009; round 34), so the rate
# stays at twice; on the 150-object mosaics four times was ahead (two seeds: mAP@0.5
# +0.058 and +0.047; at 17 objects even, one seed; round 35), at 37 and 66 within a
# seed's spread (+0.018 and -0.012; +0.002 and +0.005), and ahead at 66 where 10 minutes
# fitted half the steps (+0.013 and +0.028), as at 17 (one seed: +0.009; round 36): the
# crowd and few steps both count (SHORT_RUN_STEPS). The paper's alternating scheme
# gained most from twice (the slides, two seeds: mAP@0.5 +0.149 and +0.108, the
# platelets +0.43 and +0.32; round 34), the RPN trained alone proposed better at it (the
# slides, two seeds: AR@300 +0.021 and +0.023; round 35), and non-approximate training
# was ahead too (one seed: mAP@0.5 +0.008, COCO AP +0.041; round 36). The cut counts
# objects, not their size: raccoons as small as the 2 x 2 mosaics' but one an image were
# behind at IoU 0.5 on four GPU seeds of four (-0.029 on average), though ahead at IoU
# 0.75 (round 35).
CROWDED_OBJECTS = 4
CROWDED_LR_PER_IMAGE = 2 * LR_PER_IMAGE
# Where the time budget fits fewer steps than this, the crowded rate rises by this many
# steps over those that fit, at most twice (schedule.short_run_scale): a schedule of
# half the steps at twice the rate can take the weights as far. Four times the default
# rate an image against the crowded twice, on a Zen 3 EPYC at batches of 2 (one thread
# each, side by side; benchmarks/recipe_ab.md, rounds 35-37): where the budget fitted
# 255-279 steps ahead at 17 objects an image (two seeds: mAP@0.5 +0.009 and 0.000, COCO
# AP +0.055 and +0.032), at 66 (+0.013 and +0.028) and at 150 (+0.058 and +0.047); at 4
# (raccoon's photos tiled 2 x 2) mixed at IoU 0.5 (-0.023 and +0.002) and ahead in COCO
# AP (+0.020 and +0.022) and AP75 (+0.085 and +0.151), as twice the rate was there at 20
# minutes (round 33). Where the budget fitted 471-537 steps four times was within a
# seed's spread at 17, 37 and 66 objects (-0.002; +0.018 and -0.012; +0.002 and +0.005),
# so a scale of 1-1.2 there changes little. Raccoon (one object an image, 217-219 steps)
# lost at twice its default rate (mAP@0.5 -0.092, COCO AP -0.083), so the rise applies
# only where the crowded rate does. Against the crowded rate alone, side by side in 10
# minutes (240-282 steps), the rise was ahead at IoU 0.5 on the slides' seed 19 (+0.008,
# the platelets +0.025) and even on seed 20 (-0.001, COCO AP +0.014), and ahead at 66
# objects (+0.015, COCO AP +0.033; round 37). Where 5 minutes fitted 129-143 steps, so
# that the cap held the scale at twice, it was ahead on all five pairs (the slides,
# three seeds: +0.039, +0.058 and +0.056; 66 objects, two: +0.064 and +0.035; the
# platelets +0.106 to +0.187), and at 66 objects in 10 minutes on a second seed (+0.014;
# round 38). The rise is set for every scheme, each stage of the alternating one
# projecting its own steps: that scheme, with the rise in every stage (20 minutes, three
# seeds), was ahead at IoU 0.5 on two (+0.048, +0.055 and -0.009, the platelets +0.148,
# +0.183 and -0.030) and even in COCO AP (-0.013, +0.035 and 0.000; rounds 38-39);
# non-approximate training in 10 minutes was even on two seeds of three and ahead on the
# other (mAP@0.5 -0.003, +0.017 and +0.002, COCO AP -0.005, +0.033 and +0.010), and the
# RPN alone proposed better on all three (AR@300 +0.015, +0.012 and +0.010; round 39).
SHORT_RUN_STEPS = 520


@dataclass(frozen=True)
class ObjectStatistics:
    """The training objects as the model will see them.

    Attributes:
        images: images read.
        objects_per_image: median count of objects an image.
        most_objects: the most objects in one image.
        class_counts: objects per class name.
        class_sides: per class name, the median object side ``sqrt(w h)`` in pixels of
            the resized image.
        neighbour_ious: per class name, per object, its highest IoU with another object
            of its class in its image (0 without one).
        images_with: per class name, the images (of ``images``) that hold it.
        aspect: the images' median longer side over their shorter one.
        objects_where_any: median count of objects over the images that hold any (0
            without objects): how crowded an image with objects is, however many hold none.
        images_with_objects: the images (of ``images``) that hold any object.
    """

    images: int
    objects_per_image: float
    most_objects: int
    class_counts: dict[str, int]
    class_sides: dict[str, float]
    neighbour_ious: dict[str, tuple[float, ...]] = dataclasses.field(default_factory=dict)
    images_with: dict[str, int] = dataclasses.field(default_factory=dict)
    aspect: float = 1.0
    objects_where_any: float = dataclasses.field(kw_only=True)
    images_with_objects: int = dataclasses.field(kw_only=True)

    def smallest_class(self) -> str | None:
        """The class with the smallest median side (``None`` without objects)."""
        if not self.class_sides:
            return None
        return min(self.class_sides, key=self.class_sides.__getitem__)

    def rarest_class(self) -> str | None:
        """The class with the fewest objects (``None`` without objects)."""
        if not self.class_counts:
            return None
        return min(self.class_counts, key=self.class_counts.__getitem__)

    def share(self, name: str) -> float:
        """Fraction of all objects that are of class ``name``."""
        return self.class_counts[name] / max(1, sum(self.class_counts.values()))

    def overlapping_share(self, name: str, iou: float) -> float:
        """Fraction of the objects of class ``name`` with a neighbour of it at an IoU above
        ``iou`` (which NMS at ``iou`` would not both keep; 0 for a class without objects)."""
        values = self.neighbour_ious.get(name, ())
        return sum(value > iou for value in values) / max(1, len(values))

    def resized(self, factor: float) -> ObjectStatistics:
        """The same objects in images resized ``factor`` times more."""
        sides = {name: side * factor for name, side in self.class_sides.items()}
        return dataclasses.replace(self, class_sides=sides)


def object_statistics(
    dataset: Sequence[Sample], config: FasterRCNNConfig, max_images: int = MAX_IMAGES_READ
) -> ObjectStatistics:
    """Describe the objects of up to ``max_images`` images spread evenly over the dataset,
    resized as ``config`` resizes them in evaluation (the last ``min_size``).

    Readers answer from the annotations alone, the generated datasets without drawing
    their images (``target(index)``); other datasets are read whole. An image that cannot
    be read is left out here (training skips it too, and says so).
    """
    transform = config.transform
    names = _class_names(config)
    indices = spread_indices(len(dataset), max_images)
    counts, aspects, sides, neighbour_ious, images_with = [], [], {}, {}, Counter()
    for index in indices:
        try:
            target = target_of(dataset, index)
            height, width = image_size_of(dataset, index)
        except UnreadableImageError:
            continue
        boxes, labels = target["boxes"], target["labels"]
        counts.append(len(boxes))
        aspects.append(max(height, width) / max(1, min(height, width)))
        if len(boxes) == 0:
            continue
        new_height, _ = resized_size((height, width), transform.min_size[-1], transform.max_size)
        scale = new_height / height
        side = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).clamp(min=0).sqrt()
        neighbours = same_class_neighbour_iou(boxes, labels).tolist()
        resized = (side * scale).tolist()
        for label, value, iou in zip(labels.tolist(), resized, neighbours, strict=True):
            name = names[label - 1]
            sides.setdefault(name, []).append(value)
            neighbour_ious.setdefault(name, []).append(iou)
        images_with.update(names[label - 1] for label in set(labels.tolist()))
    held = [count for count in counts if count]
    return ObjectStatistics(
        images=len(counts),
        objects_per_image=float(statistics.median(counts)) if counts else 0.0,
        most_objects=max(counts, default=0),
        class_counts={name: len(values) for name, values in sides.items()},
        class_sides={name: float(torch.tensor(v).median()) for name, v in sides.items()},
        neighbour_ious={name: tuple(values) for name, values in neighbour_ious.items()},
        images_with=dict(images_with),
        aspect=float(statistics.median(aspects)) if aspects else 1.0,
        objects_where_any=float(statistics.median(held)) if held else 0.0,
        images_with_objects=len(held),
    )


def pixels(side: float) -> str:
    """An object side in whole pixels, or to its first digit under one ('0.3'): a class
    of sub-pixel boxes is not '0 px'."""
    return f"{side:.0f}" if side >= 1 else f"{side:.1g}"


def same_class_neighbour_iou(boxes: Tensor, labels: Tensor) -> Tensor:
    """Per box of ``(N, 4)`` ``boxes``, its highest IoU with another box of the same label
    in ``(N,)`` ``labels``: ``(N,)``, 0 where it has none.

    Each class's boxes are measured against each other a block of
    ``BEST_IOU_BLOCK_PAIRS`` pairs at a time: the whole ``(N, N)`` matrix of an image of
    5000 objects took 790 MB.
    """
    boxes = boxes.float()  # a reader may give integer pixels
    neighbour = boxes.new_zeros(len(boxes))
    for label in labels.unique():
        members = (labels == label).nonzero().flatten()
        neighbour[members] = _best_other_iou(boxes[members])
    return neighbour


def _best_other_iou(boxes: Tensor) -> Tensor:
    """Per box of ``(M, 4)`` ``boxes`` (``M >= 1``), its highest IoU with another of them:
    ``(M,)``, 0 for a box alone."""
    rows = max(1, BEST_IOU_BLOCK_PAIRS // len(boxes))
    best = []
    for first in range(0, len(boxes), rows):
        iou = box_iou(boxes[first : first + rows], boxes)
        own = torch.arange(len(iou), device=iou.device)
        iou[own, own + first] = 0.0
        best.append(iou.amax(dim=1))
    return torch.cat(best)


@dataclass(frozen=True)
class RecipeChoice:
    """One setting the recipe chose: ``setting`` is the config path, ``why`` says why (the
    preset's value where a change was weighed and left out, and why not).

    ``min_steps`` marks a choice made without knowing the run's steps that pays only in a
    run of at least that many: the caller times steps, and asks again with them.
    ``condition`` is what in the data led to the choice, the part of ``why`` before what
    the choice does (a backbone stages choice has one): the line that says an anchor file
    forgoes the choice quotes it.
    """

    setting: str
    value: object
    why: str
    min_steps: int | None = None
    condition: str | None = None

    def line(self) -> str:
        return f"  {self.setting} = {self.value}: {self.why}"


def recipe_lines(choices: Sequence[RecipeChoice]) -> list[str]:
    """One line a setting, in the order first chosen: the last value chosen for it (an
    input enlarged, then drawn at several sizes below that), with every reason."""
    merged: dict[str, RecipeChoice] = {}
    for choice in choices:
        before = merged.get(choice.setting)
        why = choice.why if before is None else f"{before.why}; {choice.why}"
        merged[choice.setting] = dataclasses.replace(choice, why=why)
    return [choice.line() for choice in merged.values()]


def choose_recipe(
    config: FasterRCNNConfig,
    stats: ObjectStatistics,
    given: Collection[str] = (),
    steps: int | None = None,
    weights_stages: tuple[int, ...] | None = None,
    box_head: bool = True,
    preset_anchors: AnchorConfig | None = None,
) -> tuple[FasterRCNNConfig, list[RecipeChoice]]:
    """The config to train, and the choices that made it from ``config``.

    Args:
        config: the preset's config (with what the user gave applied).
        stats: the training objects (:func:`object_statistics`).
        given: the settings the user gave (``"roi_heads.batch_size_per_image"``,
            ``"roi_heads.sampler"``, ``"roi_heads.gt_jitter"``, ``"transform.min_size"``,
            ``"transform.max_size"``, ``"transform.multi_scale_per"``,
            ``"roi_heads.detections_per_img"``, ``"roi_heads.nms_thresh"``,
            ``"roi_heads.soft_nms_sigma"``, ``"backbone.returned_layers"``; ``"anchors"``
            for an anchor file), which stay as they are.
        steps: the run's steps where known (given, or projected from timed steps in a
            time budget); ``None``: not known, and a choice that turns on them carries
            its ``min_steps``.
        weights_stages: the backbone stages the FPN of the run's initial weights read,
            where they are a detector's (a model file of this package): kept where they
            are finer than those the rule reads and a class is small, as its blocks
            for them are trained.
        box_head: whether the run trains the box head. The RPN trained alone
            (``--scheme rpn``) gets no choice that concerns the head alone (its RoI
            sampling, its detections an image and the proposals they need, its NMS):
            its model keeps the preset's, and says its box head is untrained.
        preset_anchors: the anchors ``config`` has without its anchor file (with
            ``"anchors"`` given): where they lead to an input or backbone stages the
            file's anchors do not, a choice keeps the file's and says what it forgoes,
            or the input the file's anchors led to and the size without them.
    """
    chosen, choices = _dataset_choices(config, stats, given, steps, weights_stages, box_head)
    if preset_anchors is None or "anchors" not in given:
        return chosen, choices
    unfiled, unfiled_choices = _dataset_choices(
        config.replace(anchors=preset_anchors),
        stats,
        set(given) - {"anchors"},
        steps,
        weights_stages,
        box_head,
    )
    forgone = _forgone_by_anchor_file(chosen, unfiled, unfiled_choices, stats, config)
    return chosen, choices + forgone


def _dataset_choices(
    config: FasterRCNNConfig,
    stats: ObjectStatistics,
    given: Collection[str],
    steps: int | None,
    weights_stages: tuple[int, ...] | None,
    box_head: bool,
) -> tuple[FasterRCNNConfig, list[RecipeChoice]]:
    """:func:`choose_recipe` for the anchors ``config`` has."""
    choices = _input_size_choices(config, stats, given)
    if choices:
        # The choices after it see the objects at the enlarged size.
        stats = stats.resized(choices[0].value[0] / config.transform.min_size[0])
        config = _with_choices(config, choices)
    choices += _roi_sampling_choices(config, stats, given) if box_head else []
    scales = _multi_scale_choice(config, stats, given, box_head)
    if scales is not None:
        choices.append(scales)
        config = _with_choices(config, [scales])
    finer = _finer_map_choice(config, stats, given, steps, weights_stages, box_head)
    if finer is not None:
        choices.append(finer)
    per_batch = _multi_scale_per_choice(config, given)
    if per_batch is not None:
        choices.append(per_batch)
    if box_head:
        choices += _box_head_output_choices(config, stats, given)
    choices += _window_proposal_choices(_with_choices(config, choices), stats, config.rpn)
    return _with_choices(config, choices), choices


def _forgone_by_anchor_file(
    chosen: FasterRCNNConfig,
    unfiled: FasterRCNNConfig,
    unfiled_choices: Sequence[RecipeChoice],
    stats: ObjectStatistics,
    config: FasterRCNNConfig,
) -> list[RecipeChoice]:
    """The input size and backbone stages of ``chosen`` (the recipe on an anchor file's
    anchors) where the recipe on the preset's anchors (``unfiled``, made by
    ``unfiled_choices``) chose others, each saying what the file forgoes or changes;
    ``stats``: the objects at ``config``'s (the preset's) size."""
    size_note = _input_size_note(chosen, unfiled, stats, config)
    forgone = [size_note] if size_note is not None else []
    stages = chosen.backbone.resolved_returned_layers()
    finer = unfiled.backbone.resolved_returned_layers()
    if finer != stages and finer is not None and stages is not None:
        rule = next(c for c in unfiled_choices if c.setting == "backbone.returned_layers")
        forgone.append(
            RecipeChoice("backbone.returned_layers", stages, _stages_forgone(rule, unfiled, stages))
        )
    return forgone


def _input_size_note(
    chosen: FasterRCNNConfig,
    unfiled: FasterRCNNConfig,
    stats: ObjectStatistics,
    config: FasterRCNNConfig,
) -> RecipeChoice | None:
    """Where the input of ``chosen`` (the recipe on an anchor file's anchors) is not that
    of ``unfiled`` (on the preset's): the enlargement or smaller input the file forgoes
    and why, else the size without the file (the input size choice says how the file's
    anchors led to its own). ``None`` where the two agree."""
    sizes = chosen.transform.min_size
    size, without = sizes[-1], unfiled.transform.min_size[-1]
    preset = config.transform.min_size[-1]
    if size == without:
        return None
    if without > max(size, preset) or without < preset <= size:
        why = _resize_forgone(unfiled, stats, config)
    else:
        why = f"without --anchors, on the preset's anchors, the shorter side would be {without} px"
    return RecipeChoice("transform.min_size", sizes, why)


def _resize_forgone(
    unfiled: FasterRCNNConfig, stats: ObjectStatistics, config: FasterRCNNConfig
) -> str:
    """Why images are not resized to the shorter side of ``unfiled`` (the recipe on the
    preset's anchors) with an anchor file: the smallest class, under the preset's smallest
    anchor (enlarged) or above its largest (made smaller), is not beyond the file's."""
    smallest = stats.smallest_class()
    assert smallest is not None  # the resizing is for it
    preset, size = config.transform.min_size[0], unfiled.transform.min_size[-1]
    ratio, enlarged = size / preset, size > preset
    capped = _capped_by_longer_side(preset, config.transform.max_size, stats.aspect)
    done = (
        f"enlarged {ratio:.2f} times" if enlarged else f"made smaller ({ratio:.2f} times as large)"
    )
    where, which = ("under", "smallest") if enlarged else ("above", "largest")
    anchor = _smallest_anchor if enlarged else _largest_anchor
    return (
        f"not {done} as without --anchors, where the smallest class {smallest!r} "
        f"({pixels(stats.class_sides[smallest])} px once resized to {preset}{capped}) is "
        f"{where} the preset's {which} anchor ({anchor(unfiled):g} px): the anchor file's "
        f"{which} is {anchor(config):g} px"
    )


def _stages_forgone(rule: RecipeChoice, unfiled: FasterRCNNConfig, stages: tuple[int, ...]) -> str:
    """Why the FPN reads ``stages`` with an anchor file where the recipe on the preset's
    anchors reads more (``unfiled``, as ``rule`` says): the file has a level a map."""
    finer = unfiled.backbone.resolved_returned_layers()
    assert finer is not None  # the caller compared them
    added = [str(stage) for stage in finer if stage not in stages]
    named = f"stage{'s' * (len(added) > 1)} {' and '.join(added)}"
    assert rule.condition is not None  # every stages choice says what led to it
    runs = f", in a run of {rule.min_steps} steps or more" if rule.min_steps else ""
    option = " ".join(map(str, finer))
    return (
        f"kept, --anchors gives one level a map: without it the recipe reads {named} "
        f"too (on the preset's anchors and input: {rule.condition}{runs}); --returned-layers "
        f"{option} takes an anchor file of {len(unfiled.anchors.sizes)} levels"
    )


def _box_head_output_choices(
    config: FasterRCNNConfig, stats: ObjectStatistics, given: Collection[str]
) -> list[RecipeChoice]:
    """How the trained head's detections are made: as many as the images need (and the
    proposals for them), selected by Soft-NMS or a crowded class's NMS IoU."""
    nms = _nms_choice(config, stats, given)
    return _detections_choices(config, stats, given) + ([nms] if nms is not None else [])


def _window_proposal_choices(
    config: FasterRCNNConfig, stats: ObjectStatistics, preset: RPNConfig
) -> list[RecipeChoice]:
    """Where training cuts windows (``transform.train_window``), as many RPN boxes a
    pixel in evaluation as on a window: the ``preset``'s test-time limits (per level
    before NMS, per image after it) times the evaluated image's pixels over a window's,
    for an image of the median aspect. The preset's limits are a window's: an image many
    windows large with them loses its small objects' proposals to the larger ones'
    (round 69). A limit ``config`` already raises further is kept: raised for the
    objects of a whole image (15 an object), it already counts the objects of every
    window, and scaled again it made 57,700 proposals an image for 543 objects."""
    window = config.transform.train_window
    if window is None:
        return []
    shorter = config.transform.min_size[-1]
    height, width = resized_size(
        (shorter, round(shorter * stats.aspect)), shorter, config.transform.max_size
    )
    window_h, window_w = window_size((height, width), window)
    times = height * width / (window_h * window_w)
    if times <= 1:
        return []
    capped = ""
    if times > WINDOW_PROPOSALS_MAX_TIMES:
        capped = f" (at most {WINDOW_PROPOSALS_MAX_TIMES}: each proposal is a RoI the head pools)"
    choices = []
    limits = (
        ("pre_nms_top_n_test", "boxes a level"),
        ("post_nms_top_n_test", "proposals an image"),
    )
    for setting, what in limits:
        value = getattr(preset, setting)
        scaled = _in_hundreds(round(value * min(times, WINDOW_PROPOSALS_MAX_TIMES)))
        if scaled <= getattr(config.rpn, setting):
            continue
        why = (
            f"training on windows of {window_h}x{window_w} px of images evaluated at "
            f"{width}x{height}, {times:.1f} times a window's pixels: {value} {what} in "
            f"evaluation, times that{capped}, keep as many a pixel as on a window"
        )
        choices.append(RecipeChoice(f"rpn.{setting}", scaled, why))
    return choices


def _roi_sampling_choices(
    config: FasterRCNNConfig, stats: ObjectStatistics, given: Collection[str]
) -> list[RecipeChoice]:
    """The paper's RoIs an image, jittered GT boxes among the candidates, and balanced
    sampling in crowded images."""
    choices = []
    roi = config.roi_heads
    if "roi_heads.batch_size_per_image" not in given and roi.batch_size_per_image > ROI_BATCH_SIZE:
        choices.append(
            RecipeChoice(
                "roi_heads.batch_size_per_image",
                ROI_BATCH_SIZE,
                f"the paper's RoIs an image, not {roi.batch_size_per_image}: the box head "
                "costs a quarter as much, and the budget fits more steps",
            )
        )
    objects = bool(stats.class_counts)
    if "roi_heads.gt_jitter" not in given and roi.gt_jitter == 0 and objects:
        choices.append(
            RecipeChoice(
                "roi_heads.gt_jitter",
                GT_JITTER,
                f"{GT_JITTER} randomly moved copies of each object's box join the head's "
                "candidate RoIs: from the first step every object, a small one too, has "
                "foreground RoIs at several overlaps, before the RPN learns to propose it",
            )
        )
    # With one object an image, taking turns among the objects is random sampling, and an
    # image without any has no foreground RoI to share out (every sampler draws its
    # negatives alike): how crowded the images that hold objects are decides, however
    # many hold none (the median over them).
    crowded = stats.objects_where_any >= 2
    if "roi_heads.sampler" not in given and roi.sampler == "random" and crowded:
        choices.append(_sampler_choice(stats))
    return choices


def _sampler_choice(stats: ObjectStatistics) -> RecipeChoice:
    """Object-balanced sampling of the foreground RoIs, class-balanced with several
    classes (with one class the two draw alike)."""
    # Class-balanced against object-balanced, side by side on the slides and their
    # mosaics: ahead in every pair, +0.009 to +0.124 mAP@0.5, the rare classes learned in
    # far fewer steps, the common class 0.01-0.06 lower (benchmarks/recipe_ab.md, round 12).
    # A share growing with the square root of a class's objects kept the common class
    # but was far behind on small rare objects in crowded images (round 13).
    smallest, rarest = stats.smallest_class(), stats.rarest_class()
    assert smallest is not None and rarest is not None
    crowd = _objects_an_image(stats)
    small = f"the smallest class {smallest!r} {pixels(stats.class_sides[smallest])} px once resized"
    share = 100 * stats.share(rarest)  # a tenth of a percent where under one
    if len(stats.class_counts) == 1:
        why = (
            f"{crowd}, {small}: foreground RoIs are spread over the objects, so each small "
            "one gets its share"
        )
        return RecipeChoice("roi_heads.sampler", "object_balanced", why)
    why = (
        f"{crowd}, {small}, the rarest {rarest!r} {share:.{0 if share >= 1 else 1}f}% of the "
        "objects: foreground RoIs are spread over the classes, then over each class's "
        "objects, so a rare class gets as many as a common one and each small object its share"
    )
    return RecipeChoice("roi_heads.sampler", "class_balanced", why)


def _with_choices(config: FasterRCNNConfig, choices: Sequence[RecipeChoice]) -> FasterRCNNConfig:
    for choice in choices:
        if choice.setting == "backbone.returned_layers":  # the anchors and pooled maps too
            if choice.value != config.backbone.resolved_returned_layers():  # not kept ones
                config = config.with_returned_layers(choice.value)  # type: ignore[arg-type]
            continue
        section, field = choice.setting.split(".")
        config = config.replace(**{section: {field: choice.value}})
    return config


def _smallest_anchor(config: FasterRCNNConfig) -> float:
    """The side of the config's smallest anchor, in resized-image pixels."""
    return min(min(sizes) for sizes in config.anchors.sizes)


def _largest_anchor(config: FasterRCNNConfig) -> float:
    """The side of the config's largest anchor, in resized-image pixels."""
    return max(max(sizes) for sizes in config.anchors.sizes)


def _smaller_input_choices(
    config: FasterRCNNConfig, smallest: str, side: float, aspect: float, given: Collection[str]
) -> list[RecipeChoice]:
    """A smaller input where the smallest class, ``smallest``, is ``side`` px once
    resized (images of the median shape ``aspect``:1), above the largest anchor: the
    shorter side shrinks (in ``SCALE_STEP`` px) until the class (its median side) is
    within a step of that anchor, and the longer side's cap alike: the objects are then
    where the anchors reach, with fewer pixels to convolve (:data:`SMALLER_INPUT`).
    ``given``: the settings the user gave (the anchors, from a file, are named as its)."""
    transform = config.transform
    preset, anchor = transform.min_size[0], _largest_anchor(config)
    size = SCALE_STEP * math.ceil(preset * anchor / side / SCALE_STEP)
    if size >= preset:
        return []
    capped = _capped_by_longer_side(preset, transform.max_size, aspect)
    why = (
        f"the smallest class {smallest!r} is {pixels(side)} px once resized to "
        f"{preset}{capped}, above "
        f"{_anchor_named('largest', given)} ({anchor:g} px): images are resized "
        f"{size / preset:.2f} times as large, the class then {pixels(side * size / preset)} "
        f"px, that anchor's size to the input's {SCALE_STEP}-px step ({SMALLER_INPUT})"
    )
    return _resized_input(config, size, why)


def _anchor_named(which: str, given: Collection[str]) -> str:
    """'the smallest anchor' (``which``: 'smallest'), or 'the anchor file's smallest
    anchor' where the anchors are a file's (``"anchors"`` in ``given``): the input it
    resizes for is then the file's doing."""
    owner = "the anchor file's" if "anchors" in given else "the"
    return f"{owner} {which} anchor"


def _resized_input(config: FasterRCNNConfig, size: int, why: str) -> list[RecipeChoice]:
    """The choices that resize the preset's single shorter side to ``size`` (``why``), and
    the longer side's cap alike."""
    transform = config.transform
    max_size = round(transform.max_size * size / transform.min_size[0])
    return [
        RecipeChoice("transform.min_size", (size,), why),
        RecipeChoice(
            "transform.max_size", max_size, f"the longer side's cap, {transform.max_size}, alike"
        ),
    ]


def under_anchor_note(
    config: FasterRCNNConfig, stats: ObjectStatistics, preset_size: int
) -> str | None:
    """Where the smallest class is under half the smallest anchor once resized as
    ``config`` resizes for evaluation (``stats``: the objects at ``preset_size``, the
    shorter side they were measured at; the recipe's enlargement stops at
    ``MAX_UPSCALE``): what it is and the sizes that bring it to the anchor. ``None``
    elsewhere, and for a class of points."""
    smallest = stats.smallest_class()
    if smallest is None:
        return None
    transform, anchor = config.transform, _smallest_anchor(config)
    size = transform.min_size[-1]
    side = stats.class_sides[smallest] * size / preset_size
    # A square object under half an anchor's side overlaps even the anchor centred on it
    # at an IoU under 1/4, under the RPN's background threshold.
    if not 0 < side < anchor / 2:
        return None
    reaching = SCALE_STEP * math.ceil(size * anchor / side / SCALE_STEP)
    max_size = round(transform.max_size * reaching / size)
    capped = _capped_by_longer_side(size, transform.max_size, stats.aspect)
    # On windows a training step costs a window's pixels: the larger resize costs detection.
    slower = "detection" if transform.train_window is not None else "a step"
    return (
        f"the smallest class {smallest!r} is {pixels(side)} px once resized to {size} px{capped}, "
        f"under half the smallest anchor ({anchor:g} px): even the anchor centred on such an "
        f"object overlaps it at an IoU under 0.25, and the RPN learns to propose few; "
        f"--min-size {reaching} --max-size {max_size} brings it to the anchor ({slower} "
        f"about {(reaching / size) ** 2:.0f} times as long), or an anchor file fitted to the "
        "data (`faster-rcnn anchors --fit`) brings the anchors to it"
    )


def multi_scale_sizes(size: int) -> tuple[int, ...]:
    """Shorter sides from ``SCALE_RANGE * size`` up to ``size`` (the last, which
    evaluation uses), ``SCALE_STEP`` apart: 800 gives 640, 672, ..., 800."""
    steps = round((1 - SCALE_RANGE) * size) // SCALE_STEP
    return tuple(size - SCALE_STEP * k for k in range(steps, -1, -1))


def _input_size_choices(
    config: FasterRCNNConfig, stats: ObjectStatistics, given: Collection[str]
) -> list[RecipeChoice]:
    """A larger input when the smallest class is smaller than the smallest anchor once
    resized and the user gave no sizes: the shorter side grows (in ``SCALE_STEP`` px)
    until the class reaches the anchor, by at most ``MAX_UPSCALE``, and the longer side's
    cap alike; a smaller one where the class is larger than the largest anchor
    (:func:`_smaller_input_choices`)."""
    smallest = stats.smallest_class()
    transform = config.transform
    sizes_given = {"transform.min_size", "transform.max_size"} & set(given)
    if smallest is None or sizes_given or len(transform.min_size) > 1:
        return []
    side, anchor = stats.class_sides[smallest], _smallest_anchor(config)
    if side > _largest_anchor(config):
        return _smaller_input_choices(config, smallest, side, stats.aspect, given)
    if not 0 < side < anchor:  # a class of points has no size to enlarge
        return []
    preset = transform.min_size[0]
    reaching = SCALE_STEP * math.ceil(preset * anchor / side / SCALE_STEP)
    size = min(reaching, SCALE_STEP * math.floor(preset * MAX_UPSCALE / SCALE_STEP))
    if size <= preset:
        return []
    capped = _capped_by_longer_side(preset, transform.max_size, stats.aspect)
    why = (
        f"the smallest class {smallest!r} is {pixels(side)} px once resized to "
        f"{preset}{capped}, under "
        f"{_anchor_named('smallest', given)} ({anchor:g} px): images are resized "
        f"{size / preset:.2f} times larger"
    )
    if size < reaching:
        why += f" (at most {MAX_UPSCALE:g}: a step takes longer on larger images)"
    return _resized_input(config, size, why)


def _multi_scale_choice(
    config: FasterRCNNConfig, stats: ObjectStatistics, given: Collection[str], box_head: bool
) -> RecipeChoice | None:
    """Multi-scale training when the smallest class is small once resized and the user
    gave no sizes; ``box_head``: whether the run trains the head (else the RPN alone)."""
    smallest = stats.smallest_class()
    sizes = config.transform.min_size
    if smallest is None or "transform.min_size" in given or len(sizes) > 1:
        return None
    side = stats.class_sides[smallest]
    scales = multi_scale_sizes(sizes[0])
    reached = sizes_reached(scales, config.transform.max_size, stats.aspect)
    if side >= SMALL_SIDE or len(reached) == 1:  # one size, or all capped alike
        return None
    trained = "the head" if box_head else "the RPN"
    why = (
        f"the smallest class {smallest!r} is {pixels(side)} px once resized: each image is "
        f"drawn at one of {len(scales)} sizes from {scales[0]} to {scales[-1]} px (the "
        f"shorter side), so {trained} sees every object at several scales and the "
        f"smaller steps fit more of them in the budget; evaluation stays at {scales[-1]}"
    )
    if len(reached) < len(scales):
        why += (
            f" (images of the median shape, {stats.aspect:.2f}:1, reach {reached[0]} to "
            f"{reached[-1]} px: the longer side's cap, {config.transform.max_size}, stops "
            "the rest)"
        )
    return RecipeChoice("transform.min_size", scales, why)


def sizes_reached(sizes: Sequence[int], max_size: int, aspect: float) -> tuple[int, ...]:
    """The distinct shorter sides, ascending, that an image whose longer side is
    ``aspect`` times its shorter one is resized to at each of ``sizes`` (shorter sides)
    under the longer side's cap ``max_size``: on 3000 x 200 strips (15:1) every size
    of 640..800 under 1333 gives 88."""
    return tuple(sorted({min(size, math.floor(max_size / aspect)) for size in sizes}))


def _capped_by_longer_side(size: int, max_size: int, aspect: float) -> str:
    """Where the longer side's cap ``max_size`` stops images of the median shape
    (``aspect``:1) short of the shorter side ``size``, what they reach, said after "once
    resized to ``size``" (the objects are measured there): ' (images of the median shape,
    8.00:1, reach 166 px: the longer side's cap, 1333, stops them)'; '' elsewhere."""
    reached = sizes_reached([size], max_size, aspect)[0]
    if reached == size:
        return ""
    return (
        f" (images of the median shape, {aspect:.2f}:1, reach {reached} px: the longer "
        f"side's cap, {max_size}, stops them)"
    )


def _finer_map_choice(
    config: FasterRCNNConfig,
    stats: ObjectStatistics,
    given: Collection[str],
    steps: int | None,
    weights_stages: tuple[int, ...] | None = None,
    box_head: bool = True,
) -> RecipeChoice | None:
    """The FPN reads backbone stages before its first one too, where the backbone reads
    its default stages and has such stages (MobileNets) and the user chose neither the
    stages nor the anchors (which are one level a map): the two before it where the
    smallest class is under the smallest anchor once resized (the input's enlargement
    did not bring it there), else the one before it where the class is small and the
    images are not crowded (where the class is ``FINER_MAP_ANY_STEPS_SIDE`` or more, two
    stride-32 cells, only in a run of ``FINER_MAP_STEPS``: :func:`_steps_for_finer_map`).
    A run that starts from a detector whose FPN read finer stages than those keeps them
    (``weights_stages``) where the smallest class is small (a finer map is weighed at all).
    ``box_head``: whether the run trains the head (else the RPN alone)."""
    spec = BACKBONES.get(config.backbone.name)
    stages = config.backbone.resolved_returned_layers()
    if stats.smallest_class() is None or spec is None or stages is None:
        return None
    if stages != spec.returned_layers or {"backbone.returned_layers", "anchors"} & set(given):
        return None
    rule = _finer_map_rule(config, stats, steps, stages, spec.returnable, box_head)
    # Fine-tuning round 59's 20-minute model of the slides (stages 3, 4 and 5) for 150
    # steps on the slides, two seeds: COCO AP 0.867 and 0.867 keeping its stages, 0.768
    # and 0.776 on those the rule reads at 150 steps (4 and 5); from a model of stages 4
    # and 5, 600 steps on the finer map the rule chose scored 0.851 against 0.842 on the
    # model's stages, one seed (benchmarks/recipe_ab.md, round 61).
    ruled = rule.value[0] if rule is not None else stages[0]  # type: ignore[index]
    small = stats.class_sides[stats.smallest_class()] < SMALL_SIDE  # type: ignore[index]
    if weights_stages is not None and weights_stages[0] < ruled and small:
        return _weights_stages_choice(weights_stages)
    return rule


def _finer_map_rule(
    config: FasterRCNNConfig,
    stats: ObjectStatistics,
    steps: int | None,
    stages: tuple[int, ...],
    returnable: Collection[int],
    box_head: bool,
) -> RecipeChoice | None:
    """:func:`_finer_map_choice` for a run from ImageNet weights, on the backbone's
    default ``stages``; ``returnable``: the stages it has; ``box_head``: whether the run
    trains the head, which pools RoIs from the maps (else the RPN alone)."""
    if stages[0] - 1 not in returnable:
        return None
    smallest = stats.smallest_class()
    assert smallest is not None  # _finer_map_choice said so
    side, anchor = stats.class_sides[smallest], _smallest_anchor(config)
    # Where the smallest class stays under the smallest anchor once resized (no enlargement,
    # at most MAX_UPSCALE, brought it there), the FPN reads the two stages before its first
    # (strides 8 and 16), crowded images or not. In 20 minutes, side by side, with 0.42 to
    # 0.55 times the steps: on 6x6 mosaics of the slides (108 objects an image, platelets 16
    # px, two seeds) mAP@0.5 0.972 / 0.970 against 0.924 / 0.930, platelets 0.953 / 0.951
    # against 0.810 / 0.829, COCO AP 0.810 / 0.813 against 0.650 / 0.671; on 4x4 mosaics (48
    # objects, platelets 24 px) 0.981 against 0.976, COCO AP 0.869 against 0.802; on the
    # slides on a larger canvas (17 objects, platelets 24 px, against the stride-16 map, two
    # seeds) 0.941 / 0.950 against 0.923 / 0.916, COCO AP 0.746 / 0.741 against 0.684 /
    # 0.690. A 16-px anchor on every level as well scored less (0.961;
    # benchmarks/recipe_ab.md, round 54).
    if 0 < side < anchor and stages[0] - 2 in returnable:  # points have no size
        own = "cells and a pooled RoI" if box_head else "cells"
        under = (
            f"the smallest class {smallest!r} is {pixels(side)} px once resized, under the "
            f"smallest anchor ({anchor:g} px)"
        )
        why = (
            f"{under}: the FPN reads the two backbone stages before stage {stages[0]} too, "
            f"maps two and four times as fine each way, where each tiny object has {own} of "
            "its own; a step takes 2.2-2.4 times as long"
        )
        finest = (stages[0] - 2, stages[0] - 1, *stages)
        return RecipeChoice("backbone.returned_layers", finest, why, condition=under)
    if side >= SMALL_SIDE or stats.objects_where_any >= FINER_MAP_OBJECTS:
        return None
    sparse = (
        f"the smallest class {smallest!r} is {pixels(side)} px once resized and "
        f"{_objects_an_image(stats)}"
    )
    finer = (stages[0] - 1, *stages)
    why = (
        f"{sparse}: the FPN reads the backbone stage before stage {stages[0]} too, a map "
        "twice as fine each way, where a small object spans more cells; a step takes "
        "1.1-1.4 times as long"
    )
    if side < FINER_MAP_ANY_STEPS_SIDE:
        return RecipeChoice("backbone.returned_layers", finer, why, condition=sparse)
    return _steps_for_finer_map(finer, stages, sparse, why, steps)


def _objects_an_image(stats: ObjectStatistics) -> str:
    """'an image holds 2 objects (the median)'; where some images hold none, the median
    over those that hold any: 'an image with objects holds 2 (the median; 95 of the 100
    images read hold none)'."""
    count = stats.objects_where_any
    if stats.images_with_objects == stats.images:
        return f"an image holds {counted(count, 'object')} (the median)"
    empty = stats.images - stats.images_with_objects
    return (
        f"an image with objects holds {count:g} (the median; {empty} of the "
        f"{counted(stats.images, 'image')} read hold{'s' * (empty == 1)} none)"
    )


def _weights_stages_choice(stages: tuple[int, ...]) -> RecipeChoice:
    """The stages the FPN of the detector a run starts from read, kept."""
    read = (
        f"--weights is a detector whose FPN read the backbone stages {', '.join(map(str, stages))}"
    )
    why = (
        f"{read}: the FPN reads them, as its blocks for them are trained, rather than leave "
        "the finer ones out"
    )
    return RecipeChoice("backbone.returned_layers", stages, why, condition=read)


def _steps_for_finer_map(
    finer: tuple[int, ...],
    stages: tuple[int, ...],
    sparse: str,
    why: str,
    steps: int | None,
) -> RecipeChoice:
    """The ``finer`` stages where the run fits ``FINER_MAP_STEPS`` (not known: the choice
    says so), else the preset's ``stages`` and why; ``sparse`` and ``why`` say why the
    finer map was weighed and what it does."""
    if steps is None:
        return RecipeChoice("backbone.returned_layers", finer, why, FINER_MAP_STEPS, sparse)
    if steps >= FINER_MAP_STEPS:
        why += f", and the run fits about {steps:,} of them (at least {FINER_MAP_STEPS})"
        return RecipeChoice("backbone.returned_layers", finer, why, condition=sparse)
    kept = (
        f"{sparse}, but the run fits about {counted(steps, 'step')}: reading the "
        f"stage before stage {stages[0]} too, a map twice as fine, pays from about "
        f"{FINER_MAP_STEPS} of its steps on (each 1.1-1.4 times as long), so the FPN reads "
        "the preset's stages"
    )
    return RecipeChoice("backbone.returned_layers", stages, kept, condition=sparse)


def _multi_scale_per_choice(
    config: FasterRCNNConfig, given: Collection[str]
) -> RecipeChoice | None:
    """One multi-scale size per batch, where training draws among several and the user
    did not say how."""
    transform = config.transform
    if "transform.multi_scale_per" in given or len(transform.min_size) == 1:
        return None
    if transform.multi_scale_per == MULTI_SCALE_PER:
        return None
    return RecipeChoice(
        "transform.multi_scale_per",
        MULTI_SCALE_PER,
        "the images of a batch are resized to the same drawn size, so that none is padded "
        "up to a larger one's: the sizes are drawn as often as per image, and a step is "
        "shorter (on the slides 6 % with 2 images, 9 % with 4)",
    )


def _detections_choices(
    config: FasterRCNNConfig, stats: ObjectStatistics, given: Collection[str]
) -> list[RecipeChoice]:
    """More detections an image when images hold more objects than the preset's cap
    leaves room for, and at test time at least as many proposals, and
    ``PROPOSALS_PER_OBJECT`` an object."""
    choices = []
    detections = config.roi_heads.detections_per_img
    needed = _in_hundreds(DETECTIONS_PER_OBJECT * stats.most_objects)
    if "roi_heads.detections_per_img" not in given and needed > detections:
        why = (
            f"up to {stats.most_objects} objects an image: {detections} detections would "
            "leave some uncounted, the rare classes' first (they score lowest)"
        )
        choices.append(RecipeChoice("roi_heads.detections_per_img", needed, why))
        detections = needed
    per_object = _in_hundreds(PROPOSALS_PER_OBJECT * stats.most_objects)
    # A detection is a refined proposal, and NMS only removes boxes: each stage before the
    # detections keeps at least as many.
    reasons = {
        # One level can hold every object: those of one size.
        "pre_nms_top_n_test": "boxes a level before the RPN's NMS (all of one level, where "
        "the objects are of one size)",
        "post_nms_top_n_test": "proposals an image",
    }
    for setting, what in reasons.items():
        value = getattr(config.rpn, setting)
        if value >= max(detections, per_object):
            continue
        why = f"{value} {what} cannot make {detections} detections"
        if per_object > detections:
            why = (
                f"up to {stats.most_objects} objects an image, and the RPN's NMS leaves "
                f"several proposals on each: {value} {what} would miss some, "
                f"{PROPOSALS_PER_OBJECT} an object keep them (round 70)"
            )
        choices.append(RecipeChoice(f"rpn.{setting}", max(detections, per_object), why))
    return choices


def _in_hundreds(count: int) -> int:
    """``count`` rounded up to whole hundreds."""
    return -(-count // 100) * 100


def _nms_choice(
    config: FasterRCNNConfig, stats: ObjectStatistics, given: Collection[str]
) -> RecipeChoice | None:
    """Soft-NMS at ``SOFT_NMS_SIGMA`` on data with objects, unless the user gave how to
    select detections: an IoU keeps greedy NMS at it for every class, and ``--soft-nms 0``
    keeps greedy NMS with the crowded classes' IoU (:func:`_crowded_nms_choice`)."""
    objects = bool(stats.class_counts)
    if "roi_heads.nms_thresh" in given or config.roi_heads.soft_nms_sigma > 0 or not objects:
        return None
    if "roi_heads.soft_nms_sigma" in given:
        return _crowded_nms_choice(config, stats)
    return _soft_nms_choice(config, stats)


def _soft_nms_choice(config: FasterRCNNConfig, stats: ObjectStatistics) -> RecipeChoice:
    """Gaussian Soft-NMS at ``SOFT_NMS_SIGMA``, saying which classes' objects overlap."""
    thresh = config.roi_heads.nms_thresh
    shares = _crowded_shares(config, stats)
    why = (
        "a detection overlapping a better one of its class is lowered in score, by "
        f"exp(-IoU^2 / {SOFT_NMS_SIGMA:g}), and kept down to "
        f"{config.roi_heads.soft_nms_min_score:g}, instead of removed by NMS at {thresh:g}"
    )
    if shares:
        why += f" ({_overlaps(shares, thresh)}, and NMS would keep one of each such pair)"
    why += (
        ": ahead of greedy NMS in COCO AP on all 18 trained models measured; "
        "--soft-nms 0 keeps greedy NMS"
    )
    return RecipeChoice("roi_heads.soft_nms_sigma", SOFT_NMS_SIGMA, why)


def _crowded_nms_choice(config: FasterRCNNConfig, stats: ObjectStatistics) -> RecipeChoice | None:
    """Greedy NMS at ``CROWDED_NMS_THRESH`` for each class of which at least
    ``CROWDED_SHARE`` of the objects overlap another of it beyond the preset's NMS IoU;
    the other classes keep that IoU."""
    thresh = config.roi_heads.nms_thresh
    shares = _crowded_shares(config, stats)
    if thresh >= CROWDED_NMS_THRESH or not shares:
        return None
    crowded = " and ".join(map(repr, shares))
    why = (
        f"{_overlaps(shares, thresh)}, and NMS at {thresh:g} keeps one detection of each "
        f"such pair: {crowded} at {CROWDED_NMS_THRESH:g}"
    )
    names = _class_names(config)
    if len(shares) < len(names):
        why += f", the other classes at {thresh:g}"
    value = tuple(CROWDED_NMS_THRESH if name in shares else thresh for name in names)
    return RecipeChoice("roi_heads.class_nms_thresh", value, why)


def class_label(config: FasterRCNNConfig, name: str) -> int:
    """The label (``1..num_classes-1``) of the class the statistics call ``name``."""
    return _class_names(config).index(name) + 1


def _class_names(config: FasterRCNNConfig) -> tuple[str, ...]:
    """The names the statistics give labels ``1..num_classes-1``: ``class_names``, or the
    label itself for a config without names."""
    return config.class_names or tuple(str(k) for k in range(1, config.num_classes))


def _crowded_shares(config: FasterRCNNConfig, stats: ObjectStatistics) -> dict[str, float]:
    """Per class of which at least ``CROWDED_SHARE`` of the objects overlap another of it
    beyond the preset's NMS IoU, in class order: that share."""
    thresh = config.roi_heads.nms_thresh
    shares = {name: stats.overlapping_share(name, thresh) for name in _class_names(config)}
    return {name: share for name, share in shares.items() if share >= CROWDED_SHARE}


def _overlaps(shares: dict[str, float], thresh: float) -> str:
    """'8% of the 'cell' objects overlap another of their class at an IoU above 0.5'."""
    classes = ", ".join(f"{100 * share:.0f}% of the {name!r}" for name, share in shares.items())
    return f"{classes} objects overlap another of their class at an IoU above {thresh:g}"


def choose_learning_rate(
    stats: ObjectStatistics, batch_size: int, given: Collection[str] = ()
) -> RecipeChoice | None:
    """Twice the default rate an image where the images hold ``CROWDED_OBJECTS`` objects
    or more (the median); ``None`` (the default rate) elsewhere, or where ``"train.lr"``
    is in ``given``."""
    if not _takes_crowded_rate(stats, given):
        return None
    objects = stats.objects_per_image
    why = (
        f"{counted(objects, 'object')} an image (median): a step's losses average over "
        f"about {counted(round(objects * batch_size), 'object')}, so its gradient is "
        f"steadier and a step can go further: {CROWDED_LR_PER_IMAGE:g} for each image of a "
        f"batch, not {LR_PER_IMAGE:g}"
    )
    return RecipeChoice("train.lr", CROWDED_LR_PER_IMAGE * batch_size, why)


def choose_short_run_steps(
    stats: ObjectStatistics, budgeted: bool, given: Collection[str] = ()
) -> RecipeChoice | None:
    """``SHORT_RUN_STEPS`` for a run in a time budget on crowded images (where
    :func:`choose_learning_rate` doubles the rate), in every scheme (each stage of the
    alternating one projects its own steps); ``None`` elsewhere, or where ``"train.lr"``
    is in ``given``."""
    if not budgeted or not _takes_crowded_rate(stats, given):
        return None
    why = (
        f"where the budget fits fewer steps (as projected once the first steps are timed), "
        f"the rate rises {SHORT_RUN_STEPS} / steps times, at most twice: a shorter "
        "schedule at a higher rate can take the weights as far"
    )
    return RecipeChoice("train.short_run_steps", SHORT_RUN_STEPS, why)


def choose_repeat_threshold(
    stats: ObjectStatistics, given: Collection[str] = ()
) -> RecipeChoice | None:
    """Repeat-factor sampling at ``REPEAT_THRESHOLD`` where, of two classes or more, one
    is held by fewer than ``RARE_IMAGE_SHARE`` of the images; ``None`` elsewhere, or where
    ``"train.repeat_threshold"`` is in ``given``."""
    rare = {
        name: count / stats.images
        for name, count in stats.images_with.items()
        if count < RARE_IMAGE_SHARE * stats.images
    }
    if "train.repeat_threshold" in given or len(stats.images_with) < 2 or not rare:
        return None
    rarest = min(rare, key=rare.__getitem__)
    others = f" (and {len(rare) - 1} more under a tenth)" if len(rare) > 1 else ""
    why = (
        f"the class {rarest!r} is in {rare[rarest]:.1%} of the training images{others}: an "
        f"image is listed max(1, sqrt({REPEAT_THRESHOLD:g} / share)) times an epoch for its "
        "rarest class, so a class that few images hold is in more steps (repeat-factor "
        "sampling); --repeat-threshold 0 lists each image once"
    )
    return RecipeChoice("train.repeat_threshold", REPEAT_THRESHOLD, why)


def _takes_crowded_rate(stats: ObjectStatistics, given: Collection[str]) -> bool:
    """Whether the images hold ``CROWDED_OBJECTS`` objects or more (the median) and no
    rate was given: where the recipe trains at the crowded rate."""
    return "train.lr" not in given and stats.objects_per_image >= CROWDED_OBJECTS
