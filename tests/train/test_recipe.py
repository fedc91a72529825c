"""The training recipe: object statistics by hand, choices that respect the user's."""

from __future__ import annotations

import dataclasses
import json
import sys

import pytest
import torch
from PIL import Image

from faster_rcnn.anchor_file import write_anchor_file
from faster_rcnn.backbones import build_backbone
from faster_rcnn.cli import main
from faster_rcnn.cli import train as train_cli
from faster_rcnn.config import AnchorConfig
from faster_rcnn.data.repeat_factor import REPEAT_THRESHOLD
from faster_rcnn.models import preset_config
from faster_rcnn.train import recipe, step_timing
from faster_rcnn.train.checkpoint import STATE_FILE, load_model
from faster_rcnn.train.recipe import (
    CROWDED_LR_PER_IMAGE,
    CROWDED_NMS_THRESH,
    CROWDED_OBJECTS,
    CROWDED_SHARE,
    FINER_MAP_ANY_STEPS_SIDE,
    FINER_MAP_OBJECTS,
    FINER_MAP_STEPS,
    GT_JITTER,
    ROI_BATCH_SIZE,
    SHORT_RUN_STEPS,
    SMALL_SIDE,
    SOFT_NMS_SIGMA,
    ObjectStatistics,
    choose_learning_rate,
    choose_recipe,
    choose_repeat_threshold,
    choose_short_run_steps,
    multi_scale_sizes,
    object_statistics,
    recipe_lines,
    same_class_neighbour_iou,
    sizes_reached,
    under_anchor_note,
)
from faster_rcnn.train.step_timing import TIMED_STEPS
from faster_rcnn.train.train_config import LR_PER_IMAGE
from peak_memory import peak_rise_mb
from step_clock import clock_of_steps


def _item(height: int, width: int, boxes: list[list[float]], labels: list[int]):
    target = {"boxes": torch.tensor(boxes).reshape(-1, 4), "labels": torch.tensor(labels)}
    return torch.zeros(3, height, width), target


# Two classes; images of 400 x 600 resize to 800 x 1200 at min_size 800 (scale 2), and
# 800 x 800 stays (scale 1).
DATASET = [
    _item(400, 600, [[0, 0, 10, 40], [0, 0, 100, 100], [5, 5, 105, 105]], [1, 2, 2]),
    _item(800, 800, [[0, 0, 33, 33], [0, 0, 60, 60]], [1, 2]),
    _item(400, 600, [], []),
]


def test_object_statistics_are_measured_on_the_resized_objects() -> None:
    config = preset_config("mobilenet_v2_fpn", 3).replace(class_names=("dot", "blob"))
    stats = object_statistics(DATASET, config)
    assert stats.images == 3 and stats.objects_per_image == 2  # counts 3, 2, 0
    assert (stats.objects_where_any, stats.images_with_objects) == (2.5, 2)  # 3 and 2
    assert stats.most_objects == 3
    assert stats.class_counts == {"dot": 2, "blob": 3}
    # dot: sqrt(10 * 40) * 2 = 40 and 33 * 1 = 33, median (torch: lower) 33; blob: 200,
    # 200 and 60
    assert stats.class_sides == {"dot": pytest.approx(33.0), "blob": pytest.approx(200.0)}
    assert stats.smallest_class() == "dot" and stats.share("dot") == 0.4
    # The two blobs of the first image overlap at 95^2 / (2 * 100^2 - 95^2); nothing else
    # overlaps one of its class.
    pair = 95**2 / (2 * 100**2 - 95**2)
    assert stats.neighbour_ious["dot"] == (0.0, 0.0)
    assert stats.neighbour_ious["blob"] == pytest.approx((pair, pair, 0.0))
    assert stats.overlapping_share("blob", 0.5) == pytest.approx(2 / 3)
    assert stats.overlapping_share("blob", 0.83) == stats.overlapping_share("dot", 0.5) == 0.0
    assert stats.overlapping_share("none", 0.5) == 0.0
    assert stats.images_with == {"dot": 2, "blob": 2}  # images, not boxes


def test_recipe_changes_the_roi_sampling_and_says_why() -> None:
    config = preset_config("mobilenet_v2_fpn", 3).replace(class_names=("dot", "blob"))
    stats = object_statistics(DATASET, config)
    chosen, choices = choose_recipe(config, stats)
    assert chosen.roi_heads.batch_size_per_image == ROI_BATCH_SIZE
    assert chosen.roi_heads.sampler == "class_balanced"
    assert chosen.roi_heads.gt_jitter == GT_JITTER
    assert [c.setting for c in choices] == [
        "roi_heads.batch_size_per_image",
        "roi_heads.gt_jitter",
        "roi_heads.sampler",
        "transform.min_size",
        "backbone.returned_layers",
        "transform.multi_scale_per",
        "roi_heads.soft_nms_sigma",
    ]
    assert "'dot' 33 px" in choices[2].line() and "rarest 'dot' 40%" in choices[2].line()
    # What the user gave stays, an explicit 0 copies too.
    given = {"roi_heads.batch_size_per_image", "roi_heads.gt_jitter", "transform.min_size"}
    kept, choices = choose_recipe(config, stats, given=given)
    assert kept.roi_heads.batch_size_per_image == 512 and kept.transform.min_size == (800,)
    assert kept.roi_heads.gt_jitter == 0
    assert [c.setting for c in choices] == [
        "roi_heads.sampler",
        "backbone.returned_layers",
        "roi_heads.soft_nms_sigma",
    ]


def test_recipe_gives_a_share_under_one_percent_its_tenth() -> None:
    # One dot among 250 objects: 0.4 %, not "0%".
    blobs = [[4 * k, 0, 4 * k + 30, 30] for k in range(249)]
    data = [_item(400, 1200, [[0, 0, 10, 40], *blobs], [1] + [2] * 249)]
    config = preset_config("mobilenet_v2_fpn", 3).replace(class_names=("dot", "blob"))
    _, choices = choose_recipe(config, object_statistics(data, config))
    sampler = next(c for c in choices if c.setting == "roi_heads.sampler")
    assert "the rarest 'dot' 0.4% of the objects" in sampler.line()


def test_recipe_repeats_images_where_a_class_is_in_under_a_tenth_of_them() -> None:
    def stats(images_with: dict[str, int]) -> ObjectStatistics:
        held = {"objects_where_any": 3.0, "images_with_objects": 100}
        return ObjectStatistics(100, 3.0, 9, {}, {}, images_with=images_with, **held)

    chosen = choose_repeat_threshold(stats({"cell": 98, "platelet": 5, "leukocyte": 9}))
    assert chosen is not None and chosen.value == REPEAT_THRESHOLD == 0.4
    assert chosen.setting == "train.repeat_threshold"
    assert "'platelet' is in 5.0% of the training images (and 1 more under a tenth)" in chosen.why
    assert choose_repeat_threshold(stats({"cell": 98, "platelet": 10})) is None  # a tenth
    assert choose_repeat_threshold(stats({"raccoon": 5})) is None  # one class
    given = {"train.repeat_threshold"}
    assert choose_repeat_threshold(stats({"cell": 98, "platelet": 5}), given) is None


def test_recipe_gives_a_class_of_sub_pixel_boxes_its_first_digit() -> None:
    # Boxes of 0.1 x 0.4 px (a label slip), 0.2 px a side, are 0.4 px at 800 and 0.6 px at
    # the enlarged 1120: not "0 px", which no box is.
    data = [_item(400, 600, [[0, 0, 0.1, 0.4], [50, 50, 50.1, 50.4]], [1, 1])] * 3
    config = preset_config("mobilenet_v2_fpn", 2).replace(class_names=("dot",))
    _, choices = choose_recipe(config, object_statistics(data, config))
    text = "\n".join(choice.line() for choice in choices)
    assert "the smallest class 'dot' is 0.4 px once resized to 800, under the smallest" in text
    assert "the smallest class 'dot' 0.6 px once resized: foreground RoIs" in text
    assert "the smallest class 'dot' is 0.6 px once resized, under the smallest anchor" in text
    assert " 0 px" not in text


def test_multi_scale_sizes_end_at_the_preset_size() -> None:
    assert multi_scale_sizes(800) == (640, 672, 704, 736, 768, 800)
    assert multi_scale_sizes(320) == (256, 288, 320)
    assert multi_scale_sizes(600) == (504, 536, 568, 600)
    assert multi_scale_sizes(96) == (96,)


def test_recipe_trains_at_several_scales_when_a_class_is_small() -> None:
    config = preset_config("mobilenet_v2_fpn", 3).replace(class_names=("dot", "blob"))
    chosen, choices = choose_recipe(config, object_statistics(DATASET, config))
    assert chosen.transform.min_size == (640, 672, 704, 736, 768, 800)
    line = next(c.line() for c in choices if c.setting == "transform.min_size")
    assert line.startswith(
        "  transform.min_size = (640, 672, 704, 736, 768, 800): the smallest class 'dot' "
        "is 33 px once resized"
    )
    # Not when the smallest class is large: 'dot' at 4.3x is 142 px.
    large = config.replace(transform={"min_size": (3440,), "max_size": 6000})
    stats = object_statistics(DATASET, large)
    assert stats.class_sides["dot"] >= SMALL_SIDE
    assert choose_recipe(large, stats)[0].transform.min_size == (3440,)
    # Nor when the config already has several sizes.
    several = config.replace(transform={"min_size": (600, 800)})
    stats = object_statistics(DATASET, several)
    assert choose_recipe(several, stats)[0].transform.min_size == (600, 800)


def test_recipe_leaves_out_sizes_the_longer_sides_cap_makes_equal() -> None:
    config = preset_config("mobilenet_v2_fpn", 3).replace(class_names=("dot", "blob"))
    # 200 x 3000 strips (15:1): the cap of 1333 resizes every one to 88 x 1333 at each of
    # 640..800, so several sizes would draw one; the dot is 13 px there.
    strips = [_item(200, 3000, [[0, 0, 30, 30], [0, 0, 150, 150]], [1, 2])] * 3
    stats = object_statistics(strips, config)
    assert stats.aspect == 15.0
    assert sizes_reached(multi_scale_sizes(800), 1333, stats.aspect) == (88,)
    chosen, choices = choose_recipe(config, stats, given={"transform.max_size"})
    assert chosen.transform.min_size == (800,)
    assert "transform.min_size" not in [c.setting for c in choices]
    # With the input enlarged (the dot is under the anchor), the cap grows alike: one size.
    chosen, choices = choose_recipe(config, stats)
    assert chosen.transform.min_size == (1120,) and chosen.transform.max_size == 1866
    # 16:9 (450 x 800) reaches 640..749 of 640..800: drawn, and the line says so.
    wide = [_item(450, 800, [[0, 0, 10, 10], [0, 0, 150, 150]], [1, 2])] * 3
    stats = object_statistics(wide, config)
    assert sizes_reached(multi_scale_sizes(800), 1333, stats.aspect) == (640, 672, 704, 736, 749)
    chosen, choices = choose_recipe(config, stats, given={"transform.max_size"})
    assert chosen.transform.min_size == multi_scale_sizes(800)
    line = next(c.line() for c in choices if c.setting == "transform.min_size")
    assert line.endswith(
        "(images of the median shape, 1.78:1, reach 640 to 749 px: the longer side's cap, "
        "1333, stops the rest)"
    )
    # 4:3 reaches them all, and the line is as before.
    assert sizes_reached(multi_scale_sizes(800), 1333, 4 / 3) == multi_scale_sizes(800)


def test_recipe_draws_the_multi_scale_size_per_batch() -> None:
    config = preset_config("mobilenet_v2_fpn", 3).replace(class_names=("dot", "blob"))
    chosen, choices = choose_recipe(config, object_statistics(DATASET, config))
    assert chosen.transform.multi_scale_per == "batch"
    line = next(c.line() for c in choices if c.setting == "transform.multi_scale_per")
    assert line.startswith("  transform.multi_scale_per = batch: the images of a batch")
    # Sizes the user gave are drawn per batch too, unless the user said per image.
    several = config.replace(transform={"min_size": (600, 800)})
    stats = object_statistics(DATASET, several)
    given = {"transform.min_size"}
    assert choose_recipe(several, stats, given)[0].transform.multi_scale_per == "batch"
    given = {"transform.min_size", "transform.multi_scale_per"}
    assert choose_recipe(several, stats, given)[0].transform.multi_scale_per == "image"
    # One size: nothing to draw.
    large = config.replace(transform={"min_size": (3440,), "max_size": 6000})
    chosen, choices = choose_recipe(large, object_statistics(DATASET, large))
    assert chosen.transform.multi_scale_per == "image"
    assert "transform.multi_scale_per" not in [c.setting for c in choices]


def test_recipe_samples_at_random_with_one_object_an_image() -> None:
    config = preset_config("mobilenet_v2_fpn", 3).replace(class_names=("dot", "blob"))
    single = _item(400, 600, [[0, 0, 50, 50]], [2])
    for images in ([single] * 3, [single, DATASET[2], DATASET[2]]):
        stats = object_statistics(images, config)
        chosen, choices = choose_recipe(config, stats)
        assert stats.objects_where_any == 1 and chosen.roi_heads.sampler == "random"
        assert "roi_heads.sampler" not in [c.setting for c in choices]


def test_recipe_balances_the_rois_of_crowded_images_among_empty_ones() -> None:
    """Two images of three hold no object: the median image holds none, but the one that
    holds objects has three to share its foreground RoIs among (an empty image has none
    to share), and the line says so."""
    config = preset_config("mobilenet_v2_fpn", 3).replace(class_names=("dot", "blob"))
    stats = object_statistics([DATASET[0], *DATASET[2:] * 2], config)  # counts 3, 0, 0
    assert (stats.objects_per_image, stats.objects_where_any) == (0, 3)
    chosen, choices = choose_recipe(config, stats)
    assert chosen.roi_heads.sampler == "class_balanced"
    line = next(c.line() for c in choices if c.setting == "roi_heads.sampler")
    assert line.startswith(
        "  roi_heads.sampler = class_balanced: an image with objects holds 3 (the median; 2 "
        "of the 3 images read hold none), the smallest class 'dot' "
    )
    assert "the rarest 'dot' 33% of the objects" in line


def test_recipe_enlarges_the_input_when_a_class_is_under_the_smallest_anchor() -> None:
    config = preset_config("mobilenet_v2_fpn", 3).replace(class_names=("dot", "blob"))
    # 'dot' 25 px once resized to 800 (400 x 600 images resize 2x), anchors from 32: 1.28
    # times larger, 1024 px in steps of 32, and the longer side's cap alike.
    dots = [_item(400, 600, [[0, 0, 12.5, 12.5], [0, 0, 100, 100]], [1, 2])] * 3
    chosen, choices = choose_recipe(config, object_statistics(dots, config))
    assert [c.setting for c in choices[:2]] == ["transform.min_size", "transform.max_size"]
    assert choices[0].value == (1024,) and choices[1].value == round(1333 * 1024 / 800)
    assert choices[0].line() == (
        "  transform.min_size = (1024,): the smallest class 'dot' is 25 px once resized to "
        "800, under the smallest anchor (32 px): images are resized 1.28 times larger"
    )
    # Multi-scale training then builds on 1024, and says the size the objects have there.
    assert chosen.transform.min_size == multi_scale_sizes(1024)
    assert chosen.transform.max_size == 1706
    scales = next(c for c in choices[2:] if c.setting == "transform.min_size")
    assert "'dot' is 32 px once resized" in scales.line()
    # Where more than 1.4 times would be needed ('dot' 20 px), by 1.4: 1120 px.
    specks = [_item(400, 600, [[0, 0, 10, 10]], [1])] * 3
    chosen, choices = choose_recipe(config, object_statistics(specks, config))
    assert choices[0].value == (1120,) and choices[1].value == 1866
    assert choices[0].line() == (
        "  transform.min_size = (1120,): the smallest class 'dot' is 20 px once resized to "
        "800, under the smallest anchor (32 px): images are resized 1.40 times larger (at "
        "most 1.4: a step takes longer on larger images)"
    )
    assert chosen.transform.min_size == multi_scale_sizes(1120)
    # The step of 32 px that reaches the anchor is not taken past 1.4 times: 'dot' 23 px
    # at 600 needs 1.39 times, 864 px in steps of 32 (1.44), and gets 832 (1.39).
    at_600 = config.replace(transform={"min_size": (600,), "max_size": 1000})
    near = [_item(400, 600, [[0, 0, 15.3, 15.3]], [1])] * 3
    chosen, choices = choose_recipe(at_600, object_statistics(near, at_600))
    assert choices[0].value == (832,) and chosen.transform.max_size == round(1000 * 832 / 600)
    # A size from which 1.4 times is not a step of 32 px larger stays.
    tiny = config.replace(transform={"min_size": (64,), "max_size": 100})
    chosen, _ = choose_recipe(tiny, object_statistics(specks, tiny))
    assert (chosen.transform.min_size, chosen.transform.max_size) == ((64,), 100)
    # Nor for a class of points.
    points = [_item(400, 600, [[5, 5, 5, 5]], [1])] * 3
    chosen, _ = choose_recipe(config, object_statistics(points, config))
    assert chosen.transform.max_size == 1333
    assert chosen.backbone.returned_layers != (2, 3, 4, 5)  # nor read the finest maps
    # Sizes the user gave stay, either of them.
    for given in ({"transform.min_size"}, {"transform.max_size"}):
        chosen, _ = choose_recipe(config, object_statistics(dots, config), given)
        assert chosen.transform.max_size == 1333


def test_a_class_the_enlarged_input_leaves_under_half_the_smallest_anchor_is_noted() -> None:
    """1600 x 1200 photos of 6-12 px objects were resized to the small preset's 320 px,
    enlarged by at most 1.4 to 448: the objects 4 px against anchors from 12, and nothing
    said so."""
    config = preset_config("mobilenet_v2_fpn", 3).replace(class_names=("dot", "blob"))
    # 'dot' 10 px at 800 (400 x 600 images resize 2x): enlarged 1.4 times to 1120, 14 px,
    # under half the 32-px anchor; 1120 * 32 / 14 = 2560 px reaches it, 5.2 times the pixels.
    specks = [_item(400, 600, [[0, 0, 5, 5]], [1])] * 3
    stats = object_statistics(specks, config)
    chosen, _ = choose_recipe(config, stats)
    assert (chosen.transform.min_size[-1], chosen.transform.max_size) == (1120, 1866)
    assert under_anchor_note(chosen, stats, 800) == (
        "the smallest class 'dot' is 14 px once resized to 1120 px, under half the smallest "
        "anchor (32 px): even the anchor centred on such an object overlaps it at an IoU "
        "under 0.25, and the RPN learns to propose few; --min-size 2560 --max-size 4265 "
        "brings it to the anchor (a step about 5 times as long), or an anchor file fitted to "
        "the data (`faster-rcnn anchors --fit`) brings the anchors to it"
    )
    # On windows a step costs a window's pixels: the larger resize costs detection.
    windowed = chosen.replace(transform={"train_window": (800, 1067)})
    assert "the anchor (detection about 5 times as long)" in under_anchor_note(windowed, stats, 800)
    # 'dot' 20 px at 800 is 28 px at 1120, over half the anchor: no note.
    larger = [_item(400, 600, [[0, 0, 10, 10]], [1])] * 3
    stats = object_statistics(larger, config)
    assert under_anchor_note(choose_recipe(config, stats)[0], stats, 800) is None
    # Nor for a class of points, nor without objects.
    points = [_item(400, 600, [[5, 5, 5, 5]], [1])] * 3
    assert under_anchor_note(config, object_statistics(points, config), 800) is None
    assert (
        under_anchor_note(config, object_statistics([_item(400, 600, [], [])], config), 800) is None
    )


def test_a_class_size_once_resized_says_where_the_longer_sides_cap_stops_the_images() -> None:
    """500 x 4000 panoramas of 30-px objects were said to be 'resized to 800', their objects
    10 px there: the longer side's cap resizes them to 166 x 1333, which the lines left out."""
    config = preset_config("mobilenet_v2_fpn", 3).replace(class_names=("dot", "blob"))
    # 1333 / 4000: the dot 10 px; enlarged 1.4 times (the cap alike, 1866: 233 x 1866), 14 px.
    panoramas = [_item(500, 4000, [[0, 0, 30, 30]], [1])] * 3
    stats = object_statistics(panoramas, config)
    chosen, choices = choose_recipe(config, stats)
    assert choices[0].line() == (
        "  transform.min_size = (1120,): the smallest class 'dot' is 10 px once resized to "
        "800 (images of the median shape, 8.00:1, reach 166 px: the longer side's cap, 1333, "
        "stops them), under the smallest anchor (32 px): images are resized 1.40 times "
        "larger (at most 1.4: a step takes longer on larger images)"
    )
    assert under_anchor_note(chosen, stats, 800).startswith(  # type: ignore[union-attr]
        "the smallest class 'dot' is 14 px once resized to 1120 px (images of the median "
        "shape, 8.00:1, reach 233 px: the longer side's cap, 1866, stops them), under half"
    )
    # 1000 x 2000 images resize to 666 x 1333, the 1000-px box 666 px: above the 512-px
    # anchor, 800 * 512 / 666 = 615, 640 in steps of 32.
    wide = [_item(1000, 2000, [[0, 0, 1000, 1000]], [1])] * 3
    _, choices = choose_recipe(config, object_statistics(wide, config))
    assert choices[0].value == (640,)
    assert (
        choices[0]
        .line()
        .startswith(
            "  transform.min_size = (640,): the smallest class 'dot' is 666 px once resized to 800 "
            "(images of the median shape, 2.00:1, reach 666 px: the longer side's cap, 1333, "
            "stops them), above the largest anchor (512 px)"
        )
    )


def test_train_warns_of_a_class_under_half_the_smallest_anchor(tmp_path, capsys) -> None:
    """The synthetic rectangles are 2.9 px at --min-size 64 (320 x 320 images, 5 times
    smaller), under half the small preset's 12-px anchor: 64 * 12 / 2.9 = 261, 288 in steps
    of 32."""
    argv = ["train", "--data", "synthetic:2", "--steps", "1", "--min-size", "64"]
    assert main([*argv, "--max-size", "128", "--out", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "the smallest class 'rectangle' is 3 px once resized to 64 px, under half" in err
    assert "--min-size 288 --max-size 576 brings it to the anchor" in err


def test_recipe_makes_the_input_smaller_where_every_class_is_above_the_largest_anchor() -> None:
    config = preset_config("mobilenet_v2_fpn", 2).replace(class_names=("raccoon",))
    # 321 px a side in 400 x 600 images, 642 px once resized to 800 (as raccoon's median):
    # above the largest anchor (512 px) until 800 * 512 / 642 = 638, 640 in steps of 32.
    large = [_item(400, 600, [[0, 0, 321, 321]], [1])] * 3
    chosen, choices = choose_recipe(config, object_statistics(large, config))
    assert [c.setting for c in choices[:2]] == ["transform.min_size", "transform.max_size"]
    assert (chosen.transform.min_size, chosen.transform.max_size) == ((640,), 1066)
    assert (
        choices[0]
        .line()
        .startswith(
            "  transform.min_size = (640,): the smallest class 'raccoon' is 642 px once resized "
            "to 800, above the largest anchor (512 px): images are resized 0.80 times as "
            "large, the class then 514 px, that anchor's size to the input's 32-px step"
        )
    )
    # Within the largest anchor (510 px once resized), or given sizes: the preset's.
    within = [_item(400, 600, [[0, 0, 255, 255]], [1])] * 3
    chosen, _ = choose_recipe(config, object_statistics(within, config))
    assert (chosen.transform.min_size, chosen.transform.max_size) == ((800,), 1333)
    chosen, _ = choose_recipe(config, object_statistics(large, config), {"transform.max_size"})
    assert chosen.transform.min_size == (800,)
    # A second, smaller class within the anchors keeps the size too.
    mixed = [_item(400, 600, [[0, 0, 321, 321], [0, 0, 100, 100]], [1, 2])] * 3
    two = config.replace(num_classes=3, class_names=("raccoon", "cat"))
    chosen, _ = choose_recipe(two, object_statistics(mixed, two))
    assert chosen.transform.min_size == (800,)


def test_recipe_reads_a_finer_backbone_stage_where_a_class_is_small_and_images_sparse() -> None:
    config = preset_config("mobilenet_v2_fpn", 3).replace(class_names=("dot", "blob"))
    # 'dot' 33 px once resized; 3 and 2 objects in two images, none in the third.
    stats = object_statistics(DATASET, config)
    chosen, choices = choose_recipe(config, stats)
    assert chosen.backbone.returned_layers == (3, 4, 5)
    # Every map keeps the preset's anchors; the head pools from all but "pool".
    assert chosen.anchors.sizes == (config.anchors.sizes[0],) * 4
    assert chosen.roi_heads.featmap_names == ("0", "1", "2")
    line = next(c.line() for c in choices if c.setting == "backbone.returned_layers")
    assert line.startswith(
        "  backbone.returned_layers = (3, 4, 5): the smallest class 'dot' is 33 px once resized "
        "and an image with objects holds 2.5 (the median; 1 of the 3 images read holds none): "
        "the FPN reads the backbone stage before stage 4 too"
    )
    # The new map is stride 16, the preset's two stride 32.
    assert _map_strides(chosen) == {"0": 16, "1": 32, "2": 32, "pool": 64}
    # One object an image (the median): "1 object".
    single = [_item(400, 600, [[0, 0, 20, 20]], [1])] * 3
    _, choices = choose_recipe(config, object_statistics(single, config))
    line = next(c.line() for c in choices if c.setting == "backbone.returned_layers")
    assert "is 40 px once resized and an image holds 1 object (the median): " in line


def test_the_finer_stage_weighs_the_images_that_hold_objects_where_most_hold_none() -> None:
    """Seven images of ten without objects: the median image holds none, but the three
    that hold objects decide how crowded an image is, and the line says so."""
    config = preset_config("mobilenet_v2_fpn", 3).replace(class_names=("dot", "blob"))
    empty = DATASET[2]
    sparse = [DATASET[0], DATASET[1], DATASET[1], *[empty] * 7]  # 3, 2 and 2 objects
    stats = object_statistics(sparse, config)
    assert (stats.objects_per_image, stats.objects_where_any) == (0, 2)
    assert stats.images_with_objects == 3
    chosen, choices = choose_recipe(config, stats)
    assert chosen.backbone.returned_layers == (3, 4, 5)
    line = next(c.line() for c in choices if c.setting == "backbone.returned_layers")
    assert line.startswith(
        "  backbone.returned_layers = (3, 4, 5): the smallest class 'dot' is 33 px once resized "
        "and an image with objects holds 2 (the median; 7 of the 10 images read hold none): "
        "the FPN reads the backbone stage before stage 4 too"
    )

    # Crowded images among empty ones are crowded: the preset's stages. The dots are 40 px
    # once resized, within the anchors.
    def crowded(count: int):
        corners = [(22.0 * (k % 25), 22.0 * (k // 25)) for k in range(count)]
        return _item(400, 600, [[x, y, x + 20, y + 20] for x, y in corners], [1] * count)

    held = [crowded(FINER_MAP_OBJECTS), DATASET[1], crowded(FINER_MAP_OBJECTS + 9)]
    stats = object_statistics([*held, *[empty] * 7], config)
    assert (stats.objects_per_image, stats.objects_where_any) == (0, FINER_MAP_OBJECTS)
    assert choose_recipe(config, stats)[0].backbone.returned_layers is None


def test_a_run_from_a_detector_keeps_its_fpn_s_finer_stages_for_small_objects() -> None:
    config = preset_config("mobilenet_v2_fpn", 3).replace(class_names=("dot", "blob"))
    # 'dot' 66 px once resized: the rule reads stage 3 too only in a run of 530 steps.
    stats = object_statistics(DATASET, config).resized(2.0)
    chosen, choices = choose_recipe(config, stats, steps=150, weights_stages=(3, 4, 5))
    assert chosen.backbone.returned_layers == (3, 4, 5)
    assert chosen.anchors.sizes == (config.anchors.sizes[0],) * 4
    assert next(c.line() for c in choices if c.setting == "backbone.returned_layers") == (
        "  backbone.returned_layers = (3, 4, 5): --weights is a detector whose FPN read the "
        "backbone stages 3, 4, 5: the FPN reads them, as its blocks for them are trained, "
        "rather than leave the finer ones out"
    )
    assert choose_recipe(config, stats, steps=150)[0].backbone.resolved_returned_layers() == (
        4,
        5,
    )
    # Where the rule reads a finer stage than the detector did, the rule decides.
    for weights in ((4, 5), (3, 4, 5)):
        chosen, choices = choose_recipe(config, stats, steps=600, weights_stages=weights)
        assert chosen.backbone.returned_layers == (3, 4, 5)
        line = next(c.line() for c in choices if c.setting == "backbone.returned_layers")
        assert "--weights" not in line
    # Nor where every class is large (132 px once resized): no finer map is weighed.
    large = object_statistics(DATASET, config).resized(4.0)
    chosen, _ = choose_recipe(config, large, steps=150, weights_stages=(3, 4, 5))
    assert chosen.backbone.resolved_returned_layers() == (4, 5)
    # Stages the user gave stay.
    given = config.with_returned_layers((2, 3, 4, 5))
    chosen, _ = choose_recipe(given, stats, {"backbone.returned_layers"}, weights_stages=(4, 5))
    assert chosen.backbone.returned_layers == (2, 3, 4, 5)


def _map_strides(config) -> dict[str, int]:
    """The stride of each feature map the config's backbone returns, from a 256 x 320
    input."""
    backbone = build_backbone(config.backbone).eval()
    with torch.no_grad():
        maps = backbone(torch.zeros(1, 3, 256, 320))
    return {name: 256 // m.shape[-2] for name, m in maps.items()}


def test_recipe_reads_two_finer_stages_where_the_smallest_class_stays_under_the_anchor() -> None:
    config = preset_config("mobilenet_v2_fpn", 3).replace(class_names=("dot", "blob"))
    # 'dot' 10 px in 400 x 600 images: 20 px at 800, 28 px once enlarged 1.4 times to
    # 1120, still under the 32-px anchor; 'blob' 100 px. Crowded images too.
    dots = [_item(400, 600, [[0, 0, 10, 10], [0, 0, 100, 100]], [1, 2])] * 3
    stats = object_statistics(dots, config)
    for objects in (2.0, float(FINER_MAP_OBJECTS), 150.0):
        counted = dataclasses.replace(stats, objects_where_any=objects)
        chosen, choices = choose_recipe(config, counted)
        assert chosen.transform.min_size[-1] == 1120
        assert chosen.backbone.returned_layers == (2, 3, 4, 5)
        assert chosen.anchors.sizes == (config.anchors.sizes[0],) * 5
        assert chosen.roi_heads.featmap_names == ("0", "1", "2", "3")
    line = next(c.line() for c in choices if c.setting == "backbone.returned_layers")
    assert line.startswith(
        "  backbone.returned_layers = (2, 3, 4, 5): the smallest class 'dot' is 28 px once "
        "resized, under the smallest anchor (32 px): the FPN reads the two backbone stages "
        "before stage 4 too"
    )
    # The new maps are strides 8 and 16.
    assert _map_strides(chosen) == {"0": 8, "1": 16, "2": 32, "3": 32, "pool": 64}
    # 'dot' 24 px at 800 reaches the anchor at 1088 (32.6 px): the one finer stage where
    # images are sparse, none where they are crowded.
    at_anchor = stats.resized(1.2)
    assert choose_recipe(config, at_anchor)[0].backbone.returned_layers == (3, 4, 5)
    crowded = dataclasses.replace(at_anchor, objects_where_any=float(FINER_MAP_OBJECTS))
    assert choose_recipe(config, crowded)[0].backbone.returned_layers is None
    # Stages or anchors the user gave stay.
    for given in ({"backbone.returned_layers"}, {"anchors"}):
        assert choose_recipe(config, stats, given)[0].backbone == config.backbone


def test_an_anchor_file_keeps_the_input_and_stages_and_says_what_the_recipe_forgoes() -> None:
    config = preset_config("mobilenet_v2_fpn", 3).replace(class_names=("dot", "blob"))
    sizes, ratios = ((8, 64, 512),) * 3, ((1.0,),) * 3
    filed = config.replace(anchors=AnchorConfig(sizes=sizes, aspect_ratios=ratios))
    # 'dot' 20 px at 800: under the preset's 32-px anchor (1120 px and stages 2 and 3
    # without the file), over the file's 8 px.
    dots = [_item(400, 600, [[0, 0, 10, 10], [0, 0, 100, 100]], [1, 2])] * 3
    stats = object_statistics(dots, config)
    chosen, choices = choose_recipe(filed, stats, {"anchors"}, preset_anchors=config.anchors)
    assert chosen.transform.min_size == multi_scale_sizes(800)
    assert chosen.backbone == config.backbone and chosen.anchors == filed.anchors
    assert not any(choice.min_steps for choice in choices)  # nothing to time for a note
    lines = [line for line in recipe_lines(choices) if "min_size" in line or "layers" in line]
    assert lines == [
        "  transform.min_size = (640, 672, 704, 736, 768, 800): the smallest class 'dot' is "
        "20 px once resized: each image is drawn at one of 6 sizes from 640 to 800 px (the "
        "shorter side), so the head sees every object at several scales and the smaller "
        "steps fit more of them in the budget; evaluation stays at 800; not enlarged 1.40 "
        "times as without --anchors, where the smallest class 'dot' (20 px once resized to "
        "800) is under the preset's smallest anchor (32 px): the anchor file's smallest is "
        "8 px",
        "  backbone.returned_layers = (4, 5): kept, --anchors gives one level a map: without "
        "it the recipe reads stages 2 and 3 too (on the preset's anchors and input: the "
        "smallest class 'dot' is 28 px once resized, under the smallest anchor (32 px)); "
        "--returned-layers 2 3 4 5 takes an anchor file of 5 levels",
    ]
    # 'dot' 80 px: the one finer stage, which pays in a run of FINER_MAP_STEPS.
    dots = [_item(400, 600, [[0, 0, 40, 40], [0, 0, 100, 100]], [1, 2])] * 3
    stats = object_statistics(dots, config)
    _, choices = choose_recipe(filed, stats, {"anchors"}, preset_anchors=config.anchors)
    assert choices[-1].line() == (
        "  backbone.returned_layers = (4, 5): kept, --anchors gives one level a map: without "
        "it the recipe reads stage 3 too (on the preset's anchors and input: the smallest "
        "class 'dot' is 80 px once resized and an image holds 2 objects (the median), in a "
        f"run of {FINER_MAP_STEPS} steps or more); --returned-layers 3 4 5 takes an anchor "
        "file of 4 levels"
    )
    assert choices[-1].min_steps is None
    # Where the run is too short for it, the recipe would not read it either: no note.
    _, choices = choose_recipe(filed, stats, {"anchors"}, 100, preset_anchors=config.anchors)
    assert "backbone.returned_layers" not in [choice.setting for choice in choices]
    # Stages given as well: the recipe keeps them either way, and says only the input.
    given = {"anchors", "backbone.returned_layers"}
    _, choices = choose_recipe(filed, stats, given, preset_anchors=config.anchors)
    assert "backbone.returned_layers" not in [choice.setting for choice in choices]


def test_an_input_an_anchor_file_makes_smaller_is_said_to_be_the_files_doing() -> None:
    config = preset_config("mobilenet_v2_fpn", 3).replace(class_names=("dot", "blob"))
    filed = config.replace(anchors=AnchorConfig(((4, 8, 16),) * 3, ((1.0,),) * 3))
    # 'dot' 40 px at 800: within the preset's anchors (32-512), above the file's largest
    # (16 px): 800 x 16 / 40 = 320 px, where 'dot' is 16 px, drawn at 256-320.
    dots = [_item(400, 600, [[0, 0, 20, 20], [0, 0, 100, 100]], [1, 2])] * 3
    stats = object_statistics(dots, config)
    chosen, choices = choose_recipe(filed, stats, {"anchors"}, preset_anchors=config.anchors)
    assert (chosen.transform.min_size, chosen.transform.max_size) == ((256, 288, 320), 533)
    lines = [line for line in recipe_lines(choices) if "_size =" in line]
    assert lines == [
        "  transform.min_size = (256, 288, 320): the smallest class 'dot' is 40 px once "
        "resized to 800, above the anchor file's largest anchor (16 px): images are resized "
        "0.40 times as large, the class then 16 px, that anchor's size to the input's 32-px "
        "step (on raccoon COCO AP +0.04 and +0.06: benchmarks/recipe_ab.md, round 62); the "
        "smallest class 'dot' is 16 px once resized: each image is drawn at one of 3 sizes "
        "from 256 to 320 px (the shorter side), so the head sees every object at several "
        "scales and the smaller steps fit more of them in the budget; evaluation stays at "
        "320; without --anchors, on the preset's anchors, the shorter side would be 800 px",
        "  transform.max_size = 533: the longer side's cap, 1333, alike",
    ]
    # Without the preset's anchors to compare, the line still names the file's.
    _, choices = choose_recipe(filed, stats, {"anchors"})
    assert "above the anchor file's largest anchor (16 px)" in recipe_lines(choices)[0]


def test_an_anchor_file_that_reaches_large_objects_says_the_smaller_input_it_forgoes() -> None:
    config = preset_config("mobilenet_v2_fpn", 2).replace(class_names=("dot",))
    filed = config.replace(anchors=AnchorConfig(((64, 256, 1024),) * 3, ((1.0,),) * 3))
    # 'dot' 800 px at 800: above the preset's largest anchor (512 px; 512 px without the
    # file), within the file's.
    dots = [_item(400, 600, [[0, 0, 400, 400]], [1])] * 3
    stats = object_statistics(dots, config)
    assert choose_recipe(config, stats)[0].transform.min_size == (512,)
    chosen, choices = choose_recipe(filed, stats, {"anchors"}, preset_anchors=config.anchors)
    assert chosen.transform == config.transform
    assert [line for line in recipe_lines(choices) if "_size =" in line] == [
        "  transform.min_size = (800,): not made smaller (0.64 times as large) as without "
        "--anchors, where the smallest class 'dot' (800 px once resized to 800) is above the "
        "preset's largest anchor (512 px): the anchor file's largest is 1024 px"
    ]


def test_the_stages_an_anchor_file_forgoes_are_said_with_a_class_name_holding_a_colon() -> None:
    # The reason is the rule's whole condition, not its text up to the first ': '.
    config = preset_config("mobilenet_v2_fpn", 3).replace(class_names=("dot: 2 um", "blob"))
    filed = config.replace(anchors=AnchorConfig(((8, 64, 512),) * 3, ((1.0,),) * 3))
    dots = [_item(400, 600, [[0, 0, 10, 10], [0, 0, 100, 100]], [1, 2])] * 3
    stats = object_statistics(dots, config)
    _, choices = choose_recipe(filed, stats, {"anchors"}, preset_anchors=config.anchors)
    assert choices[-1].line() == (
        "  backbone.returned_layers = (4, 5): kept, --anchors gives one level a map: without "
        "it the recipe reads stages 2 and 3 too (on the preset's anchors and input: the "
        "smallest class 'dot: 2 um' is 28 px once resized, under the smallest anchor (32 "
        "px)); --returned-layers 2 3 4 5 takes an anchor file of 5 levels"
    )


def test_recipe_lines_say_a_setting_chosen_twice_once_with_its_final_value() -> None:
    config = preset_config("mobilenet_v2_fpn", 3).replace(class_names=("dot", "blob"))
    # 'dot' 20 px at 800: enlarged to 1120, then drawn at 896-1120.
    specks = [_item(400, 600, [[0, 0, 10, 10]], [1])] * 3
    _, choices = choose_recipe(config, object_statistics(specks, config))
    lines = recipe_lines(choices)
    sizes = [line for line in lines if line.startswith("  transform.min_size")]
    assert sizes == [
        "  transform.min_size = (896, 928, 960, 992, 1024, 1056, 1088, 1120): the smallest "
        "class 'dot' is 20 px once resized to 800, under the smallest anchor (32 px): images "
        "are resized 1.40 times larger (at most 1.4: a step takes longer on larger images); "
        "the smallest class 'dot' is 28 px once resized: each image is drawn at one of 8 "
        "sizes from 896 to 1120 px (the shorter side), so the head sees every object at "
        "several scales and the smaller steps fit more of them in the budget; evaluation "
        "stays at 1120"
    ]
    assert lines[0] == sizes[0]  # where it was first chosen
    assert len(lines) == len({choice.setting for choice in choices})


def test_recipe_keeps_the_presets_stages_where_the_finer_one_is_not_for_this_data() -> None:
    config = preset_config("mobilenet_v2_fpn", 3).replace(class_names=("dot", "blob"))
    stats = object_statistics(DATASET, config)
    # Crowded images: FINER_MAP_OBJECTS objects an image (the median).
    crowded = dataclasses.replace(stats, objects_where_any=float(FINER_MAP_OBJECTS))
    assert choose_recipe(config, crowded)[0].backbone.returned_layers is None
    # No class small once resized: 'dot' 142 px at 3440.
    large = config.replace(transform={"min_size": (3440,), "max_size": 6000})
    assert choose_recipe(large, object_statistics(DATASET, large))[0].backbone == config.backbone
    # Stages or anchors the user gave.
    for given in ({"backbone.returned_layers"}, {"anchors"}):
        assert choose_recipe(config, stats, given)[0].backbone == config.backbone
    # A backbone without a finer stage to read (ResNet-50's FPN reads its four) or whose
    # stages are fixed.
    for preset in ("resnet50_fpn", "small"):
        other = preset_config(preset, 3).replace(class_names=("dot", "blob"))
        chosen, choices = choose_recipe(other, object_statistics(DATASET, other))
        assert chosen.backbone == other.backbone
        assert "backbone.returned_layers" not in [c.setting for c in choices]


def test_recipe_reads_the_finer_stage_for_larger_small_objects_in_runs_that_fit_it() -> None:
    config = preset_config("mobilenet_v2_fpn", 3).replace(class_names=("dot", "blob"))
    stats = object_statistics(DATASET, config).resized(2)  # 'dot' 66 px
    assert FINER_MAP_ANY_STEPS_SIDE <= stats.class_sides["dot"] < SMALL_SIDE
    preset_stages, _ = choose_recipe(config, stats, {"backbone.returned_layers"})
    # Steps not known: the finer stage, marked as paying from FINER_MAP_STEPS on.
    chosen, choices = choose_recipe(config, stats)
    (finer,) = [c for c in choices if c.setting == "backbone.returned_layers"]
    assert (chosen.backbone.returned_layers, finer.min_steps) == ((3, 4, 5), FINER_MAP_STEPS)
    # As many steps: the finer stage, and how many fit.
    chosen, choices = choose_recipe(config, stats, steps=FINER_MAP_STEPS)
    (finer,) = [c for c in choices if c.setting == "backbone.returned_layers"]
    assert (chosen.backbone.returned_layers, finer.min_steps) == ((3, 4, 5), None)
    assert finer.line().endswith(
        f"a step takes 1.1-1.4 times as long, and the run fits about {FINER_MAP_STEPS} of "
        f"them (at least {FINER_MAP_STEPS})"
    )
    # One step fewer: the preset's stages and config, and the line says why.
    chosen, choices = choose_recipe(config, stats, steps=FINER_MAP_STEPS - 1)
    assert chosen == preset_stages
    (kept,) = [c for c in choices if c.setting == "backbone.returned_layers"]
    assert kept.line() == (
        "  backbone.returned_layers = (4, 5): the smallest class 'dot' is 66 px once resized "
        "and an image with objects holds 2.5 (the median; 1 of the 3 images read holds none), "
        "but the run fits about "
        f"{FINER_MAP_STEPS - 1} steps: reading the stage before stage 4 too, a map twice as "
        f"fine, pays from about {FINER_MAP_STEPS} of its steps on (each 1.1-1.4 times as "
        "long), so the FPN reads the preset's stages"
    )
    # A class further under the stride-32 maps' cells takes the finer stage at any steps.
    small = object_statistics(DATASET, config)  # 'dot' 33 px
    assert small.class_sides["dot"] < FINER_MAP_ANY_STEPS_SIDE
    chosen, choices = choose_recipe(config, small, steps=1)
    (finer,) = [c for c in choices if c.setting == "backbone.returned_layers"]
    assert (chosen.backbone.returned_layers, finer.min_steps) == ((3, 4, 5), None)


def _large_dots(root):
    """A YOLO set of four 160 x 160 images, each with two 80-px 'dot's."""
    (root / "images" / "train").mkdir(parents=True)
    (root / "labels" / "train").mkdir(parents=True)
    (root / "classes.txt").write_text("dot\n")
    for k in range(4):
        Image.new("RGB", (160, 160), (40 * k, 90, 160)).save(root / "images" / "train" / f"{k}.png")
        lines = "0 0.25 0.25 0.5 0.5\n0 0.75 0.75 0.5 0.5\n"
        (root / "labels" / "train" / f"{k}.txt").write_text(lines)
    return root


def test_train_with_an_anchor_file_says_the_finer_stage_it_forgoes(tmp_path, capsys, monkeypatch):
    data = _large_dots(tmp_path / "dots")
    sizes, ratios = ((48, 96),) * 3, ((1.0,),) * 3
    path = write_anchor_file(tmp_path / "a.json", AnchorConfig(sizes, ratios), {})
    monkeypatch.setattr(recipe, "FINER_MAP_STEPS", 1)  # the run's one step fits it
    argv = ["train", "--data", str(data), "--min-size", "128", "160", "192", "--max-size"]
    argv += ["192", "--preset", "mobilenet_v2_fpn", "--steps", "1", "--anchors", str(path)]
    assert main([*argv, "--out", str(tmp_path / "run")]) == 0
    assert (
        "  backbone.returned_layers = (4, 5): kept, --anchors gives one level a map: without "
        "it the recipe reads stage 3 too (on the preset's anchors and input: the smallest "
        "class 'dot' is 96 px once resized and an image holds 2 objects (the median)); "
        "--returned-layers 3 4 5 takes an anchor file of 4 levels\n"
    ) in capsys.readouterr().out
    config = load_model(tmp_path / "run" / "model.safetensors").config
    assert config.backbone.resolved_returned_layers() == (4, 5)


def _timed_at(seconds: float, timings: list[float]):
    """A stand-in for the CLI's ``median_step_seconds`` that times the steps as the run
    would (their throwaway model trains), records the median in ``timings`` and returns
    ``seconds``: the steps that fit do not follow the machine's load."""

    def median_step_seconds(trainer) -> float:
        timings.append(step_timing.median_step_seconds(trainer))
        return seconds

    return median_step_seconds


def test_a_time_budget_takes_the_finer_stage_by_the_steps_timed(tmp_path, capsys, monkeypatch):
    data = _large_dots(tmp_path / "dots")
    argv = ["train", "--data", str(data), "--min-size", "128", "160", "192", "--max-size"]
    argv += ["192", "--preset", "mobilenet_v2_fpn", "--minutes", "0.05"]
    # Steps timed at 0.7 s: 0.05 minutes fit int(3 / 0.7) = 4 of them.
    timings: list[float] = []
    monkeypatch.setattr(train_cli, "median_step_seconds", _timed_at(0.7, timings))
    # A run fits FINER_MAP_STEPS: the finer stage, and the steps timed (at the middle of
    # the sizes drawn).
    monkeypatch.setattr(recipe, "FINER_MAP_STEPS", 4)
    assert main([*argv, "--out", str(tmp_path / "kept")]) == 0
    assert len(timings) == 1 and timings[0] > 0
    printed = capsys.readouterr().out
    assert (
        f"timed {TIMED_STEPS} training steps of the recipe's model at 160 px: 0.70 s a step "
        "(the median), about 4 steps in 0.05 minutes\n"
    ) in printed
    assert (
        "backbone.returned_layers = (3, 4, 5): the smallest class 'dot' is 96 px once resized "
        "and an image holds 2 objects (the median): the FPN reads the backbone stage before "
        "stage 4 too, a map twice as fine each way, where a small object spans more cells; a "
        "step takes 1.1-1.4 times as long, and the run fits about 4 of them (at least 4)\n"
    ) in printed
    kept = load_model(tmp_path / "kept" / "model.safetensors").config
    assert kept.backbone.returned_layers == (3, 4, 5)
    assert kept.transform.min_size == (128, 160, 192)
    # One step fewer than FINER_MAP_STEPS: the preset's stages.
    monkeypatch.setattr(recipe, "FINER_MAP_STEPS", 5)
    assert main([*argv, "--out", str(tmp_path / "preset")]) == 0
    assert len(timings) == 2
    printed = capsys.readouterr().out
    assert (
        "backbone.returned_layers = (4, 5): the smallest class 'dot' is 96 px once resized and "
        "an image holds 2 objects (the median), but the run fits about 4 steps: reading the "
        "stage before stage 4 too, a map twice as fine, pays from about 5 of its steps on "
    ) in printed
    preset = load_model(tmp_path / "preset" / "model.safetensors").config.backbone
    assert preset.resolved_returned_layers() == (4, 5)
    # The timed model leaves the run as it would be without it: the same first step as a
    # run given the stages, which times nothing.
    assert main([*argv, "--returned-layers", "4", "5", "--out", str(tmp_path / "given")]) == 0
    assert "training steps of the recipe's model" not in capsys.readouterr().out
    timed, given = (_first_losses(tmp_path / run) for run in ("preset", "given"))
    assert timed == given
    # Steps given without a budget: nothing timed.
    assert main([*argv[:-2], "--steps", "1", "--out", str(tmp_path / "steps")]) == 0
    printed = capsys.readouterr().out
    assert "training steps of the recipe's model" not in printed
    assert "but the run fits about 1 step: " in printed


def _crowded(count: int):
    """A 400 x 600 image with ``count`` 10-px objects of class 1 in a row."""
    boxes = [[12.0 * k, 0.0, 12.0 * k + 10, 10.0] for k in range(count)]
    return _item(400, 600, boxes, [1] * count)


def test_recipe_balances_the_objects_of_a_single_class() -> None:
    # With one class, class-balanced sampling is object-balanced sampling: the recipe
    # names the simpler one.
    config = preset_config("mobilenet_v2_fpn", 2).replace(class_names=("dot",))
    chosen, choices = choose_recipe(config, object_statistics([_crowded(5)], config))
    assert chosen.roi_heads.sampler == "object_balanced"
    line = next(c.line() for c in choices if c.setting == "roi_heads.sampler")
    # 'dot' 20 px at 800, seen at the 1.4 times larger input the recipe chose first.
    assert "an image holds 5 objects (the median), the smallest class 'dot' 28 px" in line


def test_recipe_makes_room_for_the_detections_of_crowded_images() -> None:
    config = preset_config("mobilenet_v2_fpn", 3).replace(class_names=("dot", "blob"))
    # The most objects in an image is 51: twice that, in hundreds, is 200.
    stats = object_statistics([_crowded(51), _crowded(3), DATASET[2]], config)
    chosen, choices = choose_recipe(config, stats)
    assert chosen.roi_heads.detections_per_img == 200
    # 1000 proposals an image already leave room.
    assert (chosen.rpn.pre_nms_top_n_test, chosen.rpn.post_nms_top_n_test) == (1000, 1000)
    line = next(c.line() for c in choices if c.setting == "roi_heads.detections_per_img")
    assert line.startswith("  roi_heads.detections_per_img = 200: up to 51 objects an image")
    # 50 objects leave room in 100 detections.
    stats = object_statistics([_crowded(50)], config)
    assert choose_recipe(config, stats)[0].roi_heads.detections_per_img == 100
    # A cap the user gave stays; the proposals are raised to make its detections, and
    # FPN levels keep their boxes apart: one level holds all only where the objects are
    # of one size.
    given = {"roi_heads.detections_per_img"}
    many = config.replace(roi_heads={"detections_per_img": 2000})
    kept, choices = choose_recipe(many, object_statistics([_crowded(51)], many), given)
    assert kept.roi_heads.detections_per_img == 2000
    assert (kept.rpn.pre_nms_top_n_test, kept.rpn.post_nms_top_n_test) == (2000, 2000)
    lines = "\n".join(recipe_lines(choices))
    assert "  rpn.post_nms_top_n_test = 2000: 1000 proposals an image cannot make 2000" in lines
    assert (
        "  rpn.pre_nms_top_n_test = 2000: 1000 boxes a level before the RPN's NMS (all of one "
        "level, where the objects are of one size) cannot make 2000 detections"
    ) in lines


def test_recipe_keeps_fifteen_proposals_an_object_of_crowded_images() -> None:
    """15 proposals an object of the most crowded image, in whole hundreds: 66 objects
    (990) leave the preset's 1000, 67 (1005) make 1100, at test time only."""
    config = preset_config("mobilenet_v2_fpn", 3).replace(class_names=("dot", "blob"))
    chosen = choose_recipe(config, object_statistics([_crowded(66)], config))[0]
    assert (chosen.rpn.pre_nms_top_n_test, chosen.rpn.post_nms_top_n_test) == (1000, 1000)
    chosen, choices = choose_recipe(config, object_statistics([_crowded(67)], config))
    assert (chosen.rpn.pre_nms_top_n_test, chosen.rpn.post_nms_top_n_test) == (1100, 1100)
    assert (chosen.rpn.pre_nms_top_n_train, chosen.rpn.post_nms_top_n_train) == (2000, 2000)
    assert (
        "  rpn.post_nms_top_n_test = 1100: up to 67 objects an image, and the RPN's NMS "
        "leaves several proposals on each: 1000 proposals an image would miss some, 15 an "
        "object keep them (round 70)"
    ) in recipe_lines(choices)
    # The preset that keeps 150 proposals for speed: 120 objects make 1800, more than the
    # 300 detections.
    fast = preset_config("mobilenet_v3_large_320_fpn", 3).replace(class_names=("dot", "blob"))
    chosen = choose_recipe(fast, object_statistics([_crowded(120)], fast))[0]
    assert chosen.roi_heads.detections_per_img == 300
    assert (chosen.rpn.pre_nms_top_n_test, chosen.rpn.post_nms_top_n_test) == (1800, 1800)


def test_recipe_keeps_as_many_proposals_a_pixel_on_the_whole_image_as_on_a_window() -> None:
    """Trained on windows of 800 x 1067 px of images evaluated at 2987 x 2240, 6690880 /
    853600 = 7.84 windows' pixels: the RPN's test-time limits are 1000 times that, in
    whole hundreds above."""
    config = preset_config("mobilenet_v2_fpn", 2).replace(
        class_names=("cell",), transform={"min_size": (2240,), "max_size": 2987}
    )
    held = {"objects_where_any": 3.0, "images_with_objects": 10}
    stats = ObjectStatistics(10, 3.0, 9, {"cell": 100}, {"cell": 60.0}, aspect=4 / 3, **held)
    given = {"transform.min_size", "transform.max_size"}
    for window in ((800, 1067), (1067, 800)):  # a portrait window is turned to the images
        windowed = config.replace(transform={"train_window": window})
        chosen, choices = choose_recipe(windowed, stats, given)
        assert (chosen.rpn.pre_nms_top_n_test, chosen.rpn.post_nms_top_n_test) == (7900, 7900)
        assert (chosen.rpn.pre_nms_top_n_train, chosen.rpn.post_nms_top_n_train) == (2000, 2000)
    lines = recipe_lines(choices)
    assert (
        "  rpn.post_nms_top_n_test = 7900: training on windows of 800x1067 px of images "
        "evaluated at 2987x2240, 7.8 times a window's pixels: 1000 proposals an image in "
        "evaluation, times that, keep as many a pixel as on a window"
    ) in lines
    # Windows of 256 x 256 px: 102 windows' pixels, the limits at most 10 times.
    small = config.replace(transform={"train_window": (256, 256)})
    chosen, choices = choose_recipe(small, stats, given)
    assert (chosen.rpn.pre_nms_top_n_test, chosen.rpn.post_nms_top_n_test) == (10000, 10000)
    assert "times that (at most 10: each proposal is a RoI the head pools)" in choices[-1].why
    # Without windows, or with one that holds the whole image, the limits stay.
    assert choose_recipe(config, stats, given)[0].rpn == config.rpn
    whole = config.replace(transform={"train_window": (2240, 2987)})
    assert choose_recipe(whole, stats, given)[0].rpn == config.rpn


def test_recipe_scales_only_the_presets_proposals_by_the_windows_in_an_image() -> None:
    """Images of up to 543 objects evaluated at 3000 x 2000, trained on windows of 800 x
    1067 px (7.03 windows' pixels): 15 proposals an object of the whole image are 8200,
    more than the preset's 1000 a window scaled to it (7100), and are kept: scaled again
    (57,700) they counted every window's objects 7 times over. With 300 objects (4500)
    the preset's scaled 7100 is kept."""
    config = preset_config("mobilenet_v2_fpn", 2).replace(
        class_names=("cell",),
        transform={"min_size": (2000,), "max_size": 3000, "train_window": (800, 1067)},
    )
    given = {"transform.min_size", "transform.max_size"}
    for most, limit in ((543, 8200), (300, 7100)):
        held = {"objects_where_any": 300.0, "images_with_objects": 10}
        stats = ObjectStatistics(
            10, 300.0, most, {"cell": 3000}, {"cell": 60.0}, aspect=1.5, **held
        )
        chosen, choices = choose_recipe(config, stats, given)
        assert (chosen.rpn.pre_nms_top_n_test, chosen.rpn.post_nms_top_n_test) == (limit, limit)
        lines = "\n".join(recipe_lines(choices))
        assert ("training on windows of 800x1067 px" in lines) == (limit == 7100)
    assert (
        "  rpn.post_nms_top_n_test = 7100: up to 300 objects an image, and the RPN's NMS "
        "leaves several proposals on each: 1000 proposals an image would miss some, 15 an "
        "object keep them (round 70); training on windows of 800x1067 px of images "
        "evaluated at 3000x2000, 7.0 times a window's pixels: 1000 proposals an image in "
        "evaluation, times that, keep as many a pixel as on a window"
    ) in lines


# What a joint run's lines say of the head, and the RPN trained alone's instead.
RPN_WORDS = {
    "so the head sees every object": "so the RPN sees every object",
    "cells and a pooled RoI of its own": "cells of its own",
}


def test_the_rpn_trained_alone_gets_no_choice_that_concerns_the_box_head_alone() -> None:
    """On crowded images of overlapping objects a joint run's recipe chooses the head's
    RoI sampling, its detections (and the proposals they need) and their NMS, greedy or
    soft; the RPN alone keeps the preset's for all of them, and the rest as a joint run,
    its lines speaking of what it trains: the RPN, not the head."""
    fast = preset_config("mobilenet_v3_large_320_fpn", 3).replace(class_names=("dot", "blob"))
    blobs = _item(400, 600, [[300, 300, 400, 400], [300, 300, 400, 390]], [2, 2])  # IoU 0.9
    stats = object_statistics([_crowded(120), blobs], fast)
    head_only = {"roi_heads", "rpn.pre_nms_top_n_test", "rpn.post_nms_top_n_test"}
    for given in (set(), GREEDY):
        joint, joint_choices = choose_recipe(fast, stats, given)
        alone, choices = choose_recipe(fast, stats, given, box_head=False)
        settings = {c.setting for c in joint_choices}
        assert {s for s in settings if s.startswith(tuple(head_only))} == (
            {
                "roi_heads.batch_size_per_image",
                "roi_heads.gt_jitter",
                "roi_heads.sampler",
                "roi_heads.detections_per_img",
                "rpn.pre_nms_top_n_test",
                "rpn.post_nms_top_n_test",
            }
            | ({"roi_heads.class_nms_thresh"} if given else {"roi_heads.soft_nms_sigma"})
        )
        kept = [c for c in joint_choices if not c.setting.startswith(tuple(head_only))]
        assert [(c.setting, c.value) for c in kept] == [(c.setting, c.value) for c in choices]
        joint_lines = "\n".join(c.line() for c in kept)
        assert "so the head sees every object" in joint_lines
        assert "each tiny object has cells and a pooled RoI of its own" in joint_lines
        for head, rpn in RPN_WORDS.items():
            joint_lines = joint_lines.replace(head, rpn)
        lines = "\n".join(c.line() for c in choices)
        assert lines == joint_lines and "head" not in lines and "RoI" not in lines
        # The finer maps the recipe reads for the small dots are pooled from alike.
        maps = {"featmap_names": joint.roi_heads.featmap_names}
        assert alone.roi_heads == dataclasses.replace(fast.roi_heads, **maps)
        assert alone.rpn == fast.rpn
        assert alone.transform == joint.transform and alone.backbone == joint.backbone


def test_same_class_neighbour_iou_by_hand() -> None:
    boxes = torch.tensor([[0, 0, 10, 10], [5, 0, 15, 10], [0, 0, 10, 10], [20, 20, 30, 30.0]])
    # Boxes 0 and 1 (class 1) share half a box: IoU 50 / 150. Box 2 is box 0 again but of
    # class 2, and box 3 is alone: neither has a neighbour of its class.
    labels = torch.tensor([1, 1, 2, 1])
    ious = same_class_neighbour_iou(boxes, labels)
    assert ious.tolist() == pytest.approx([1 / 3, 1 / 3, 0.0, 0.0])
    none = same_class_neighbour_iou(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long))
    assert none.shape == (0,)


# An image of 5000 objects of 3 classes in a fresh process: each one's nearest neighbour
# of its class.
_NEIGHBOURS_SETUP = """
from faster_rcnn.train.recipe import same_class_neighbour_iou
generator = torch.Generator().manual_seed(0)
corners = torch.rand(5000, 2, generator=generator) * 2000
boxes, labels = torch.cat((corners, corners + 15), 1), torch.arange(5000) % 3 + 1
same_class_neighbour_iou(boxes[:10], labels[:10])
"""


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/self/status")
def test_neighbours_of_a_crowded_image_are_found_in_little_memory() -> None:
    # The whole 5000 x 5000 IoU matrix raised the peak by 790 MB; a class at a time, a
    # block of pairs at a time, by about 20.
    assert peak_rise_mb(_NEIGHBOURS_SETUP, "same_class_neighbour_iou(boxes, labels)") < 100  # MB


def _with_overlapping_pair(spread: int):
    """``spread`` separate 10-px objects of class 1, and two of it that overlap at IoU 0.9,
    beside one of class 2."""
    pair = [[300.0, 300.0, 400.0, 400.0], [300.0, 300.0, 400.0, 390.0]]
    boxes = _crowded(spread)[1]["boxes"].tolist() + pair + [[300.0, 300.0, 400.0, 400.0]]
    return _item(400, 600, boxes, [1] * (spread + 2) + [2])


def test_recipe_selects_detections_by_soft_nms_and_says_which_objects_overlap() -> None:
    config = preset_config("mobilenet_v2_fpn", 3).replace(class_names=("dot", "blob"))
    stats = object_statistics(DATASET, config)
    chosen, choices = choose_recipe(config, stats)
    assert SOFT_NMS_SIGMA == 0.3
    assert chosen.roi_heads.soft_nms_sigma == 0.3 and chosen.roi_heads.class_nms_thresh == ()
    assert choices[-1].line() == (
        "  roi_heads.soft_nms_sigma = 0.3: a detection overlapping a better one of its class "
        "is lowered in score, by exp(-IoU^2 / 0.3), and kept down to 0.001, instead of "
        "removed by NMS at 0.5 (67% of "
        "the 'blob' objects overlap another of their class at an IoU above 0.5, and NMS "
        "would keep one of each such pair): ahead of greedy NMS in COCO AP on all 18 trained "
        "models measured; --soft-nms 0 keeps greedy NMS"
    )
    # Without overlapping objects the reason is the measurement alone.
    single = [_item(400, 600, [[0, 0, 50, 50]], [2])]
    line = choose_recipe(config, object_statistics(single, config))[1][-1].line()
    assert "instead of removed by NMS at 0.5: ahead of greedy NMS" in line
    # A sigma or an IoU the user gave stays, and so does the preset's own Soft-NMS.
    for given, kept in (("roi_heads.nms_thresh", 0.0), ("roi_heads.soft_nms_sigma", 0.5)):
        asked = config.replace(roi_heads={"soft_nms_sigma": kept})
        chosen, choices = choose_recipe(asked, stats, given={given})
        assert (chosen.roi_heads.soft_nms_sigma, chosen.roi_heads.class_nms_thresh) == (kept, ())
        assert not any("nms" in choice.setting for choice in choices)
    soft = config.replace(roi_heads={"soft_nms_sigma": 0.5})
    assert choose_recipe(soft, stats)[0].roi_heads.soft_nms_sigma == 0.5


GREEDY = {"roi_heads.soft_nms_sigma"}  # --soft-nms 0


def test_greedy_nms_asked_for_raises_the_iou_of_a_class_whose_objects_overlap() -> None:
    config = preset_config("mobilenet_v2_fpn", 3).replace(class_names=("dot", "blob"))
    chosen, choices = choose_recipe(config, object_statistics(DATASET, config), GREEDY)
    assert CROWDED_NMS_THRESH == 0.6
    assert chosen.roi_heads.soft_nms_sigma == 0.0
    assert chosen.roi_heads.class_nms_thresh == (0.5, 0.6)
    assert choices[-1].line() == (
        "  roi_heads.class_nms_thresh = (0.5, 0.6): 67% of the 'blob' objects overlap another "
        "of their class at an IoU above 0.5, and NMS at 0.5 keeps one detection of each "
        "such pair: 'blob' at 0.6, the other classes at 0.5"
    )
    # A fiftieth of a class's objects is enough (2 of 100), a little less is not (2 of
    # 101); the blob under the pair is of another class and does not count.
    assert CROWDED_SHARE == 0.02
    for spread, thresholds in ((98, (0.6, 0.5)), (99, ())):
        stats = object_statistics([_with_overlapping_pair(spread)], config)
        assert choose_recipe(config, stats, GREEDY)[0].roi_heads.class_nms_thresh == thresholds
    # Measured against the preset's own IoU: the paper's 0.3 counts looser overlaps too.
    paper = preset_config("paper_vgg16", 3).replace(class_names=("dot", "blob"))
    loose = [_item(400, 600, [[0, 0, 10, 10], [5, 0, 15, 10]], [2, 2])]
    chosen = choose_recipe(paper, object_statistics(loose, paper), GREEDY)[0]
    assert chosen.roi_heads.class_nms_thresh == (0.3, 0.6)
    chosen = choose_recipe(config, object_statistics(loose, config), GREEDY)[0]
    assert chosen.roi_heads.class_nms_thresh == ()
    # Every class crowded: no other class to name. A model without class names counts
    # labels.
    two_pairs = [[0, 0, 10, 10], [0, 0, 10, 9], [0, 0, 9, 10], [0, 0, 10, 10]]
    both = [_item(400, 600, two_pairs, [1, 1, 2, 2])]
    unnamed = preset_config("mobilenet_v2_fpn", 3)
    chosen, choices = choose_recipe(unnamed, object_statistics(both, unnamed), GREEDY)
    assert chosen.roi_heads.class_nms_thresh == (0.6, 0.6)
    assert choices[-1].line().endswith("'1' and '2' at 0.6")
    # An IoU the user gave stays, for every class, and a preset's at 0.6 or above is kept.
    stats = object_statistics(DATASET, config)
    kept, choices = choose_recipe(config, stats, given={"roi_heads.nms_thresh", *GREEDY})
    assert kept.roi_heads.class_nms_thresh == ()
    assert "roi_heads.class_nms_thresh" not in [c.setting for c in choices]
    high = config.replace(roi_heads={"nms_thresh": 0.7})
    assert choose_recipe(high, stats, GREEDY)[0].roi_heads.class_nms_thresh == ()


def test_recipe_leaves_a_dataset_without_objects_and_small_batches_alone() -> None:
    config = preset_config("small", 3)
    stats = object_statistics([DATASET[2]], config)
    chosen, choices = choose_recipe(config, stats)
    assert choices == [] and chosen == config


def test_recipe_doubles_the_rate_for_crowded_images_only() -> None:
    def stats(objects_per_image: float) -> ObjectStatistics:
        held = {"objects_where_any": objects_per_image, "images_with_objects": 10}
        return ObjectStatistics(10, objects_per_image, 30, {"cell": 100}, {"cell": 60.0}, **held)

    assert CROWDED_LR_PER_IMAGE == 2 * LR_PER_IMAGE == 0.005
    rate = choose_learning_rate(stats(CROWDED_OBJECTS), batch_size=2)
    assert rate is not None and rate.setting == "train.lr"
    assert rate.value == pytest.approx(0.01)
    assert f"{CROWDED_OBJECTS:g} objects an image (median)" in rate.line()
    assert "0.005 for each image of a batch, not 0.0025" in rate.line()
    assert f"average over about {2 * CROWDED_OBJECTS} objects" in rate.line()
    crowded = choose_learning_rate(stats(150), batch_size=4)
    assert crowded.value == pytest.approx(0.02) and "about 600 objects" in crowded.line()
    assert choose_learning_rate(stats(CROWDED_OBJECTS - 0.5), batch_size=2) is None
    assert choose_learning_rate(stats(1), batch_size=2) is None  # raccoon's one an image
    assert choose_learning_rate(stats(150), batch_size=2, given={"train.lr"}) is None


def test_the_recipe_raises_a_short_runs_rate_in_a_budget_on_crowded_images_only() -> None:
    def stats(objects_per_image: float) -> ObjectStatistics:
        held = {"objects_where_any": objects_per_image, "images_with_objects": 10}
        return ObjectStatistics(10, objects_per_image, 30, {"cell": 100}, {"cell": 60.0}, **held)

    choice = choose_short_run_steps(stats(17), budgeted=True)
    assert choice is not None and choice.setting == "train.short_run_steps"
    assert choice.value == SHORT_RUN_STEPS
    assert f"rises {SHORT_RUN_STEPS} / steps times, at most twice" in choice.line()
    assert choose_short_run_steps(stats(1), budgeted=True) is None  # raccoon
    assert choose_short_run_steps(stats(17), budgeted=False) is None  # --steps
    assert choose_short_run_steps(stats(17), True, given={"train.lr"}) is None


def _first_losses(run) -> dict[str, float]:
    """The losses of a run's first step."""
    return json.loads((run / "metrics.jsonl").read_text().splitlines()[0])["losses"]


def _first_rate(run) -> float:
    """The learning rate of a run's first step: of a run of one step, its peak (a warm-up
    takes at most half a run's steps)."""
    return json.loads((run / "metrics.jsonl").read_text().splitlines()[0])["lr"]


def test_train_prints_its_recipe_and_the_model_keeps_it(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    argv = ["train", "--data", "slides:2", "--steps", "1", "--min-size", "96"]
    assert (
        main([*argv, "--max-size", "128", "--preset", "mobilenet_v2_fpn", "--out", str(out)]) == 0
    )
    printed = capsys.readouterr().out
    assert "recipe (--recipe preset keeps the preset's numbers):" in printed
    assert "roi_heads.sampler = class_balanced" in printed
    assert f"roi_heads.gt_jitter = {GT_JITTER}" in printed
    # 2 of the 26 cells of these two slides overlap another at an IoU above 0.5.
    assert "roi_heads.soft_nms_sigma = 0.3: a detection overlapping" in printed
    assert "(8% of the 'cell' objects overlap another" in printed
    # These slides hold 18 and 12 objects: crowded, so twice the rate an image.
    assert "train.lr = 0.01: 15 objects an image (median)" in printed
    assert "train.short_run_steps" not in printed  # no time budget
    assert _first_rate(out) == pytest.approx(0.01)
    trained = load_model(out / "model.safetensors").config.roi_heads
    assert (trained.sampler, trained.gt_jitter) == ("class_balanced", GT_JITTER)
    assert (trained.soft_nms_sigma, trained.class_nms_thresh) == (0.3, ())
    argv += ["--max-size", "128", "--preset", "mobilenet_v2_fpn", "--recipe", "preset"]
    assert main([*argv, "--out", str(tmp_path / "plain")]) == 0
    assert "recipe (" not in capsys.readouterr().out
    plain = load_model(tmp_path / "plain" / "model.safetensors").config.roi_heads
    assert (plain.sampler, plain.batch_size_per_image, plain.gt_jitter) == ("random", 512, 0)
    assert (plain.nms_thresh, plain.class_nms_thresh, plain.soft_nms_sigma) == (0.5, (), 0)
    assert _first_rate(tmp_path / "plain") == pytest.approx(2 * LR_PER_IMAGE)
    given = ["--box-nms-thresh", "0.45", "--lr", "0.003", "--out", str(tmp_path / "given")]
    assert main([*argv[:-2], *given]) == 0
    printed = capsys.readouterr().out
    assert "nms" not in printed and "train.lr" not in printed
    assert _first_rate(tmp_path / "given") == pytest.approx(0.003)
    heads = load_model(tmp_path / "given" / "model.safetensors").config.roi_heads
    assert (heads.nms_thresh, heads.class_nms_thresh, heads.soft_nms_sigma) == (0.45, (), 0)


@pytest.mark.parametrize(
    ("scheme", "stages"),
    [
        ("joint", ["joint"]),
        ("non-approximate", ["non_approximate"]),
        ("rpn", ["rpn"]),
        ("alternating", ["rpn", "fast_rcnn", "rpn_finetune", "fast_rcnn_finetune"]),
    ],
)
def test_a_time_budget_on_crowded_images_trains_with_the_short_run_steps(
    tmp_path, capsys, monkeypatch, scheme, stages
):
    out = tmp_path / "run"
    # Steps of a second, as timed for the recipe and as the budget counts them, however
    # loaded the machine: the budget fits 300 (the preset's stages, fewer than
    # FINER_MAP_STEPS), and no stage's first steps say it fits fewer than the 20 a
    # projection waits for.
    monkeypatch.setattr(train_cli, "median_step_seconds", lambda trainer: 1.0)
    clock_of_steps(monkeypatch, 1.0)
    argv = ["train", "--data", "slides:2", "--steps", "6", "--minutes", "5", "--min-size", "96"]
    argv += ["--max-size", "128", "--preset", "mobilenet_v2_fpn", "--scheme", scheme]
    assert main([*argv, "--out", str(out)]) == 0
    expected = f"train.short_run_steps = {SHORT_RUN_STEPS}: where the budget fits fewer steps"
    assert expected in capsys.readouterr().out
    for stage in stages:
        state = torch.load(out / stage / STATE_FILE, weights_only=True)
        assert state["train_config"]["short_run_steps"] == SHORT_RUN_STEPS, stage
        assert state["train_config"]["lr"] == pytest.approx(0.01), stage  # the crowded rate
        # The stage ends before the budget projects its length: the rate is not raised.
        assert state["lr_scale"] is None, stage
    rates = [json.loads(line)["lr"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(rates) == 6 and max(rates) <= 0.01 * (1 + 1e-6)


def test_train_reads_the_backbone_stages_given_and_the_model_keeps_them(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    argv = ["train", "--data", "slides:2", "--steps", "1", "--min-size", "96", "--max-size", "128"]
    argv += ["--preset", "mobilenet_v2_fpn", "--returned-layers", "3", "4", "5"]
    assert main([*argv, "--out", str(out)]) == 0
    config = load_model(out / "model.safetensors").config
    assert config.backbone.returned_layers == (3, 4, 5)
    assert len(config.anchors.sizes) == 4 and config.roi_heads.featmap_names == ("0", "1", "2")
    capsys.readouterr()
    assert main([*argv[:-4], "--returned-layers", "4", "3", "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "faster-rcnn: error: --returned-layers 4 3: must be increasing stage indices in [0, 5] "
        "for mobilenet_v2_fpn"
    )


def test_a_resumed_run_keeps_its_own_stages_and_is_told_them_where_others_are_given(
    tmp_path, capsys
) -> None:
    """A run of the preset's stages, stopped and resumed where the recipe would add the
    finer stage (as it may where its choice turned on timed steps): it resumes with its
    own. Given other stages, one line names what differs and the option that builds the
    run's own."""
    out = tmp_path / "run"
    argv = ["train", "--data", "slides:2", "--steps", "2", "--min-size", "96", "--max-size"]
    argv += ["128", "--preset", "mobilenet_v2_fpn", "--out", str(out)]
    assert main([*argv, "--steps", "1", "--returned-layers", "4", "5"]) == 0
    (out / "model.safetensors").unlink()  # as a run stopped by a signal leaves it
    capsys.readouterr()
    assert main([*argv, "--resume", "--returned-layers", "3", "4", "5"]) == 2
    assert (
        capsys.readouterr()
        .err.strip()
        .splitlines()[-1]
        .startswith(
            f"faster-rcnn: error: {out / 'joint'} was trained with other model settings than this "
            "run builds (anchors.aspect_ratios, anchors.sizes, --returned-layers, "
            "roi_heads.featmap_names): resume with the options the run was started with (its "
            "backbone stages: --returned-layers 4 5); the weights in "
        )
    )
    assert main([*argv, "--resume"]) == 0
    assert "backbone.returned_layers" not in capsys.readouterr().out
    assert load_model(out / "model.safetensors").config.backbone.returned_layers == (4, 5)
    # A finished run resumed: its checkpoint's stages still.
    assert main([*argv, "--resume"]) == 0
    assert load_model(out / "model.safetensors").config.backbone.returned_layers == (4, 5)


def test_train_enlarges_images_unless_a_side_is_given(tmp_path, capsys) -> None:
    """The slides' platelets are 25 px at mobilenet_v3_large_320_fpn's 320 (anchors from
    32): images are resized 1.28 times larger, 416 px; with a --max-size given they stay
    at 320."""
    argv = ["train", "--data", "slides:2", "--steps", "1"]
    argv += ["--preset", "mobilenet_v3_large_320_fpn", "--out"]
    assert main([*argv, str(tmp_path / "auto")]) == 0
    assert "transform.max_size = 832" in capsys.readouterr().out
    transform = load_model(tmp_path / "auto" / "model.safetensors").config.transform
    assert (transform.min_size[-1], transform.max_size) == (416, 832)
    assert main([*argv, str(tmp_path / "given"), "--max-size", "400"]) == 0
    assert "transform.max_size" not in capsys.readouterr().out
    transform = load_model(tmp_path / "given" / "model.safetensors").config.transform
    assert (transform.min_size[-1], transform.max_size) == (320, 400)


@pytest.mark.parametrize(
    ("data", "module"), [("synthetic:30", "synthetic"), ("slides:6", "slides")]
)
def test_the_recipe_counts_generated_objects_without_drawing_the_images(data, module, monkeypatch):
    """train --data synthetic spent minutes drawing its 2000 images before its first step,
    only for the recipe to count their objects: it reads their targets alone now (as
    train wraps the data), the counts those of the drawn images."""
    from faster_rcnn.data.coco import WithoutCrowd
    from faster_rcnn.data.open import open_dataset

    dataset = open_dataset(data)
    config = preset_config("small", dataset.num_classes)
    drawn = object_statistics([dataset[i] for i in range(len(dataset))], config)

    def not_drawn(*args: object) -> None:
        raise AssertionError("an image was drawn")

    monkeypatch.setattr(f"faster_rcnn.data.{module}._background", not_drawn)
    assert object_statistics(WithoutCrowd(dataset), config) == drawn
