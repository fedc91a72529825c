"""Anchor coverage against hand-computed IoUs on a known anchor grid."""

import itertools

import pytest
import torch
from PIL import Image

from faster_rcnn.cli import main
from faster_rcnn.cli.anchors import level_strides
from faster_rcnn.data.synthetic import SyntheticShapes
from faster_rcnn.image_list import ImageList
from faster_rcnn.insight.anchor_coverage import (
    PaddedBatchAnchors,
    dataset_targets,
    measure_anchor_coverage,
)
from faster_rcnn.insight.anchor_plots import CoverageReport
from faster_rcnn.model import FasterRCNN
from faster_rcnn.models import preset_config
from faster_rcnn.ops.boxes import box_iou
from faster_rcnn.transform import padded_size
from thread_counts import threads_at_calls


def square_anchor_model(
    min_size: int = 64, max_size: int = 128, allowed_border: float = -1
) -> FasterRCNN:
    """The small backbone (strides 8, 16, 32, 64) with one square anchor per level, 2x the
    stride: centres at multiples of the stride (offset 0); positives at IoU 0.7."""
    config = preset_config("small", 4).replace(
        anchors={"sizes": ((16,), (32,), (64,), (128,)), "aspect_ratios": ((1.0,),) * 4},
        transform={"min_size": (min_size,), "max_size": max_size},
        rpn={"fg_iou_thresh": 0.7, "allowed_border": allowed_border},
    )
    return FasterRCNN.from_config(config)


def test_best_iou_and_positives_match_hand_computation():
    model = square_anchor_model()
    boxes = torch.tensor(
        [
            [8.0, 8.0, 24.0, 24.0],  # exactly the 16-px anchor centred at (16, 16)
            [12.0, 8.0, 28.0, 24.0],  # 4 px right of it: best 12*16 / (2*256 - 192) = 0.6
            [0.0, 0.0, 64.0, 64.0],  # the 64-px anchor centred at (32, 32)
        ]
    )
    coverage = measure_anchor_coverage(model, [((64, 64), boxes)])
    torch.testing.assert_close(coverage.best_iou, torch.tensor([1.0, 0.6, 1.0]))
    # Neighbouring 16-px anchors overlap the first box by 1/3, the 32-px one at (16, 16) by
    # 1/4: one positive. The 128-px anchor at (0, 0) overlaps the third by 4096/16384.
    assert coverage.num_positive.tolist() == [1, 0, 1]
    torch.testing.assert_close(coverage.sizes, torch.tensor([16.0, 16.0, 64.0]))
    torch.testing.assert_close(coverage.aspect_ratios, torch.ones(3))


def test_boxes_are_scaled_like_the_images():
    model = square_anchor_model(min_size=64, max_size=128)
    # A 32 x 48 image is resized by 2 to 64 x 96, so this box becomes the exact anchor
    # (8, 8, 24, 24).
    coverage = measure_anchor_coverage(model, [((32, 48), torch.tensor([[4.0, 4.0, 12.0, 12.0]]))])
    torch.testing.assert_close(coverage.best_iou, torch.tensor([1.0]))
    torch.testing.assert_close(coverage.sizes, torch.tensor([16.0]))


def test_an_image_the_model_cannot_resize_is_left_out():
    """A 1 x 1000 strip would be resized to 0 x 128 (min_size 64, max_size 128): the
    model refuses it, so its box is not counted; the 32 x 48 image's box still is."""
    model = square_anchor_model(min_size=64, max_size=128)
    strip = ((1, 1000), torch.tensor([[0.0, 0.0, 100.0, 1.0]]))
    fits = ((32, 48), torch.tensor([[4.0, 4.0, 12.0, 12.0]]))
    coverage = measure_anchor_coverage(model, [strip, fits])
    torch.testing.assert_close(coverage.best_iou, torch.tensor([1.0]))
    # Only the strip holds boxes: the error says why none is measured, not that there
    # is none.
    with pytest.raises(
        ValueError, match=r"cannot resize any of the 1 image\(s\) with ground-truth"
    ):
        measure_anchor_coverage(model, [strip, ((32, 48), torch.zeros((0, 4)))])


def test_padded_size_is_the_size_of_the_transform_batch():
    # Coverage places anchors on the padded batch of one image; the transform pads the same.
    assert padded_size([(64, 65)], 32) == (64, 96)
    assert padded_size([(30, 41), (33, 20)], 32) == (64, 64)
    transform = square_anchor_model().transform
    images = [torch.zeros(3, 30, 41), torch.zeros(3, 70, 20)]
    expected = padded_size([(30, 41), (70, 20)], transform.size_divisible)
    assert transform.batch(images).shape == (2, 3, *expected)


def test_meta_feature_sizes_match_a_real_forward_pass():
    model = square_anchor_model(min_size=96, max_size=160).eval()
    boxes = torch.tensor([[10.0, 10.0, 50.0, 40.0]])
    coverage = measure_anchor_coverage(model, [((96, 160), boxes)])
    # The same anchors from a real forward pass: the best IoU must agree.
    images, _ = model.transform([torch.zeros(3, 96, 160)])
    with torch.no_grad():
        features = list(model.features(images).values())
    anchors = model.rpn.anchor_generator(images, features)[0]
    torch.testing.assert_close(coverage.best_iou, box_iou(boxes, anchors).max(dim=1).values)


def test_border_policy_leaves_crossing_anchors_out():
    # A 44 x 44 image padded to 64 x 64: the 16-px anchor centred at (40, 40) reaches 48.
    model = square_anchor_model(min_size=44, max_size=64)
    box = torch.tensor([[30.0, 30.0, 44.0, 44.0]])
    everything = measure_anchor_coverage(model, [((44, 44), box)])
    torch.testing.assert_close(everything.best_iou, torch.tensor([144 / 308]))
    model = square_anchor_model(min_size=44, max_size=64, allowed_border=0)
    # The best anchor within the image is the one centred at (32, 32).
    inside = measure_anchor_coverage(model, [((44, 44), box)])
    torch.testing.assert_close(inside.best_iou, torch.tensor([100 / 352]))


def test_summary_rows_partition_the_boxes():
    model = square_anchor_model()
    boxes = torch.tensor([[8.0, 8.0, 24.0, 24.0], [0.0, 0.0, 64.0, 64.0], [0, 0, 10.0, 30.0]])
    coverage = measure_anchor_coverage(model, [((64, 64), boxes)])
    rows = coverage.rows(ratio_edges=(0.0, 1.5, float("inf")))
    assert sum(row["boxes"] for row in rows[:-1]) == rows[-1]["boxes"] == 3
    assert rows[-1]["covered_0.7"] == pytest.approx(2 / 3)
    assert "best >= 0.7" in coverage.table()


def test_images_without_boxes_are_skipped_and_an_empty_dataset_is_an_error():
    model = square_anchor_model()
    empty = torch.zeros((0, 4))
    box = torch.tensor([[8.0, 8.0, 24.0, 24.0]])
    assert len(measure_anchor_coverage(model, [((64, 64), empty), ((64, 64), box)])) == 1
    with pytest.raises(ValueError, match="no ground-truth boxes"):
        measure_anchor_coverage(model, [((64, 64), empty)])


def test_dataset_targets_reads_items():
    dataset = SyntheticShapes(3, image_size=(48, 64))
    items = list(dataset_targets(dataset, count=2))
    assert [size for size, _ in items] == [(48, 64), (48, 64)]
    torch.testing.assert_close(items[1][1], dataset[1][1]["boxes"])


def test_cli_prints_the_table(tmp_path, capsys):
    # Its --out given: the default, runs/anchors, was written into the checkout.
    argv = ["anchors", "--data", "synthetic:6", "--max-images", "4", "--out", str(tmp_path)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "in 4 images" in out and "median best IoU" in out


def test_coverage_keeps_each_box_as_given_and_its_image():
    model = square_anchor_model(min_size=64, max_size=128)
    first = torch.tensor([[8.0, 8.0, 24.0, 24.0], [1.5, 2.5, 40.25, 30.0]])
    third = torch.tensor([[4.0, 4.0, 12.0, 12.0]])
    targets = [((64, 64), first), ((50, 50), torch.zeros((0, 4))), ((32, 48), third)]
    coverage = measure_anchor_coverage(model, targets)
    # In the image's own pixels, not the resized ones (the third image is doubled), and
    # the index among the images given, counting the one without boxes.
    torch.testing.assert_close(coverage.boxes, torch.cat([first, third]))
    assert coverage.image_index.tolist() == [0, 0, 2]
    assert coverage.image_index.dtype == torch.int64
    torch.testing.assert_close(coverage.sizes[2], torch.tensor(16.0))  # 8 px, doubled
    # The order of the boxes is the order given, also when images of one size are
    # measured together out of order.
    shuffled = [((32, 48), third), ((64, 64), first), ((32, 48), third * 2)]
    coverage = measure_anchor_coverage(model, shuffled)
    assert coverage.image_index.tolist() == [0, 1, 1, 2]
    torch.testing.assert_close(coverage.boxes, torch.cat([third, first, third * 2]))
    # Both 32 x 48 images' boxes become exact anchors (16 and 32 px) once doubled.
    torch.testing.assert_close(coverage.best_iou[[0, 3]], torch.ones(2))


@pytest.mark.parametrize("preset", ["small", "mobilenet_v2_fpn"])
def test_empty_batch_feature_sizes_are_the_real_forward_pass(preset):
    config = preset_config(preset, 4).replace(transform={"min_size": (64,), "max_size": 256})
    model = FasterRCNN.from_config(config).train()
    grids = PaddedBatchAnchors.of_model(model)
    # Heights and widths are cached apart: (96, 64) after (64, 96) and (96, 96) reuse them.
    for padded in [(64, 96), (96, 64), (96, 96), (64, 64), (160, 224), (32, 256)]:
        images = ImageList(torch.zeros(1, 3, *padded), [padded])
        with torch.no_grad():
            features = list(model.eval().features(images).values())
        model.train()
        assert grids.grid_sizes(padded) == [tuple(f.shape[-2:]) for f in features], padded
        # And the anchors are the generator's on those maps.
        torch.testing.assert_close(grids(padded), model.rpn.anchor_generator(images, features)[0])
    # The pass leaves the model in training mode, batch norm included.
    assert all(module.training for module in model.modules())


@pytest.mark.parametrize("preset", ["small", "mobilenet_v2_fpn"])
def test_windowed_measure_equals_the_dense_one(preset):
    # Boxes from 2 to 400 px, anywhere, against a preset's real anchors at 320 x 480 (one
    # level of 9 shapes; three levels of 15 shapes from 32 to 512 px, up to stride 64),
    # with and without the border policy: measuring only the anchors that can matter must
    # change neither the best IoU nor the count at the positive IoU.
    from faster_rcnn.anchors import anchors_crossing_border
    from faster_rcnn.insight.anchor_coverage import PaddedBatchAnchors, _measure_group

    generator = torch.Generator().manual_seed(0)
    size = 2 * 200 ** torch.rand(600, generator=generator)
    ratio = 4 ** (2 * torch.rand(600, generator=generator) - 1)
    centre = torch.rand(600, 2, generator=generator) * torch.tensor([480.0, 320.0])
    half = torch.stack((size / ratio.sqrt(), size * ratio.sqrt()), dim=1) / 2
    boxes = torch.cat((centre - half, centre + half), dim=1)
    for threshold, border in ((0.1, -1), (0.5, 0), (0.7, -1)):
        config = preset_config(preset, 4).replace(
            rpn={"fg_iou_thresh": threshold, "bg_iou_thresh": 0.1, "allowed_border": border}
        )
        grid = PaddedBatchAnchors.of_model(FasterRCNN.from_config(config)).grid((320, 480))
        allowed = ~anchors_crossing_border(grid.anchors, (300, 470), border)
        best, positives = _measure_group(boxes, grid, allowed, config.rpn)
        iou = box_iou(boxes, grid.anchors[allowed])
        torch.testing.assert_close(best, iou.max(dim=1).values, rtol=0, atol=0)
        assert torch.equal(positives, (iou >= threshold).sum(dim=1))
        assert (best < 0.25).any() and (best >= 0.25).any()  # both paths taken


def test_cli_measures_the_data_the_model_was_trained_on_by_default(tmp_path, capsys):
    """Without --data, anchors --model measured 2000 generated images, whatever the model
    was trained on; it now measures the model's own data, as evaluate scores it."""
    run = tmp_path / "run"
    argv = ["train", "--data", "synthetic:3", "--preset", "small", "--steps", "1"]
    assert main([*argv, "--min-size", "64", "--max-size", "96", "--out", str(run)]) == 0
    capsys.readouterr()
    model = run / "model.safetensors"
    assert main(["anchors", "--model", str(model), "--out", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"measuring synthetic:3, the data {model} was trained on")
    assert " in 3 images" in out
    file = tmp_path / "file"
    file.write_text("")
    assert main(["anchors", "--model", str(model), "--out", str(file)]) == 2
    captured = capsys.readouterr()
    assert (
        captured.err.strip()
        == f"faster-rcnn: error: --out {file} is a file: anchors writes a folder there"
    )
    assert captured.out == ""  # refused before measuring


def test_cli_says_how_many_images_it_leaves_out_too_elongated_to_resize(tmp_path, capsys):
    """A 600 x 1 strip among two images is left out of the measure as training leaves it
    out: that went unsaid where other images remained."""
    images, labels = tmp_path / "data" / "images", tmp_path / "data" / "labels"
    images.mkdir(parents=True)
    labels.mkdir()
    (tmp_path / "data" / "classes.txt").write_text("cell\n")
    for k in range(2):
        Image.new("RGB", (80, 64)).save(images / f"{k}.png")
        (labels / f"{k}.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    Image.new("RGB", (600, 1)).save(images / "strip.png")
    (labels / "strip.txt").write_text("0 0.5 0.5 0.1 1.0\n0 0.2 0.5 0.1 1.0\n")
    argv = ["anchors", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "a")]
    assert main([*argv, "--min-size", "96", "--max-size", "128"]) == 0
    out = capsys.readouterr().out
    assert (
        "2 boxes in 3 images\n1 of the 3 images (2 boxes) left out: too elongated for the " in out
    )
    reason = "600x1 (width x height) is too elongated to resize to --min-size 96 / --max-size 128"
    assert (
        f"(the first, {images / 'strip.png'}: {reason}: a side would shrink to 0 pixels)\n" in out
    )


def test_medians_of_an_even_count_are_the_mean_of_the_middle_two(tmp_path, capsys):
    # The small preset's stride-8 anchors (12-24 px, centres at multiples of 8) on a 64 x
    # 64 image, not resized. The 4-px box (18, 18, 22, 22) lies in the 12-px square at
    # (16, 16): 16 / 144 = 0.111; the 6-px box (41, 41, 47, 47) meets the 12-px one at
    # (40, 40) by 5 x 5: 25 / 155 = 0.161; the 16-px box (8, 40, 24, 56) is the 16-px
    # square at (16, 48): 1.
    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    (data / "labels").mkdir()
    (data / "classes.txt").write_text("cell\n")
    Image.new("RGB", (64, 64)).save(data / "images" / "a.png")
    (data / "labels" / "a.txt").write_text(
        "0 0.3125 0.3125 0.0625 0.0625\n0 0.6875 0.6875 0.09375 0.09375\n0 0.25 0.75 0.25 0.25\n"
    )
    argv = ["anchors", "--data", str(data), "--out", str(tmp_path / "a")]
    assert main([*argv, "--min-size", "64", "--max-size", "128"]) == 0
    out = capsys.readouterr().out
    # The two boxes under 16 px: median (0.111 + 0.161) / 2, not the lower 0.111.
    assert "     < 16  0.67-1.50      2            0.136         0.0%" in out
    assert "      all        all      3            0.161        33.3%" in out
    assert "sizes 4 to 6 px resized, median 5; the worst:" in out  # not the upper 6


def visible_tick_labels(axis) -> list:
    """The tick labels an axis shows (drawn, with text, inside its view)."""
    low, high = sorted(axis.get_view_interval())
    ticks = [*axis.get_major_ticks(), *axis.get_minor_ticks()]
    return [
        tick.label1
        for tick in ticks
        if tick.label1.get_visible() and tick.label1.get_text() and low <= tick.get_loc() <= high
    ]


@pytest.mark.parametrize(
    ("anchor_sizes", "sides", "x_labels"),
    [
        # Boxes of 20 to 700 px: a scale of under two decades, on which matplotlib
        # labelled the minor ticks '3x10^2', '4x10^2', ... into one another.
        ((16, 32, 64, 128), (20, 45, 90, 180, 350, 700), ["20", "50", "100", "200", "500"]),
        # 70 to 130 px, one major tick in view: the minor ones are labelled too.
        ((80, 96, 112, 128), (70, 85, 100, 115, 130), ["70", "80", "90", "100"]),
    ],
)
def test_the_pictures_axes_are_labelled_in_plain_numbers_that_do_not_overlap(
    anchor_sizes, sides, x_labels
):
    config = preset_config("small", 4).replace(
        anchors={"sizes": tuple((s,) for s in anchor_sizes), "aspect_ratios": ((1.0,),) * 4},
        transform={"min_size": (800,), "max_size": 1333},
    )
    model = FasterRCNN.from_config(config)
    side = torch.tensor(sides, dtype=torch.float32)
    boxes = torch.stack([torch.zeros_like(side), torch.zeros_like(side), side, side], dim=1)
    coverage = measure_anchor_coverage(model, [((800, 800), boxes)])
    strides = [((s, s), (s, s)) for s in (8, 16, 32, 64)]
    report = CoverageReport(coverage, model.config.anchors, strides, 0.3, ["a.png"])
    figure = report.figure("title")
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    histogram_axes, shapes_axes = figure.axes[:2]
    for axis in (shapes_axes.xaxis, shapes_axes.yaxis):
        labels = sorted(visible_tick_labels(axis), key=lambda label: float(label.get_text()))
        assert [label.get_text() for label in labels] == x_labels
        extents = [label.get_window_extent(renderer) for label in labels]
        assert not any(a.overlaps(b) for a, b in itertools.combinations(extents, 2))
    counts = [label.get_text() for label in visible_tick_labels(histogram_axes.yaxis)]
    assert all(text.isdigit() for text in counts)  # boxes, not '2.5' boxes


def test_the_pictures_legend_gives_a_levels_stride_as_width_x_height_where_they_differ():
    # A 224 x 160 batch's coarsest map is 4 x 3: its anchors are 56 px apart across and
    # 53 down; the legend said 'stride 56'.
    model = FasterRCNN.from_config(preset_config("small", 4))
    boxes = torch.tensor([[0.0, 0.0, 40.0, 40.0]])
    coverage = measure_anchor_coverage(model, [((160, 224), boxes)])
    strides = [((s, s), (s, s)) for s in (8, 16, 32)] + [((53, 53), (56, 56))]
    report = CoverageReport(coverage, model.config.anchors, strides, 0.3, ["a.png"])
    labels = [c.get_label() for c in report.figure("title").axes[1].collections]
    levels = [label for label in labels if label.startswith("anchors, level")]
    assert levels == [
        "anchors, level 0 (stride 8)",
        "anchors, level 1 (stride 16)",
        "anchors, level 2 (stride 32)",
        "anchors, level 3 (stride 56x53)",
    ]


def test_a_levels_stride_is_given_over_every_image_measured():
    # At 320 / 512 the small preset pads a 320 x 448 image to 320 x 448, whose stride-64
    # map of 5 x 7 cells is 64 px apart both ways, and a 320 x 480 one to 320 x 480: 5 x 8
    # cells, 60 px apart across (480 // 8). The first image's batch alone said 64 x 64;
    # a 288 x 512 image (5 x 8 cells: 57 down, 64 across) widens the range both ways.
    config = preset_config("small", 4).replace(transform={"min_size": (320,), "max_size": 512})
    model = FasterRCNN.from_config(config)
    box = torch.tensor([[0.0, 0.0, 100.0, 100.0]])
    sizes = [(320, 448), (320, 480), (288, 512)]
    strides = level_strides(model, [(size, box) for size in sizes])
    assert strides == [
        ((8, 8), (8, 8)),
        ((16, 16), (16, 16)),
        ((32, 32), (32, 32)),
        ((57, 64), (60, 64)),
    ]
    coverage = measure_anchor_coverage(model, [(size, box) for size in sizes])
    report = CoverageReport(coverage, model.config.anchors, strides, 0.3, ["a", "b", "c"])
    assert report.summary()["anchors"]["strides"][2:] == [
        {"height": [32, 32], "width": [32, 32]},
        {"height": [57, 64], "width": [60, 64]},
    ]
    labels = [c.get_label() for c in report.figure("title").axes[1].collections]
    assert labels[-1] == "anchors, level 3 (stride 60-64x57-64)"


def test_the_tables_last_column_says_it_is_a_mean():
    # Anchors at 0.7 of each box: 1, 0 and 1 (as in the hand-computed test above), 0.7
    # a box: the column read as a count of anchors ('anchors >= 0.7').
    model = square_anchor_model()
    boxes = torch.tensor([[8.0, 8.0, 24.0, 24.0], [12.0, 8.0, 28.0, 24.0], [0, 0, 64.0, 64.0]])
    table = measure_anchor_coverage(model, [((64, 64), boxes)]).table().splitlines()
    assert table[0].endswith("  mean anchors >= 0.7")
    assert table[-1].split()[-1] == "0.7" and table[-1].startswith("      all")


def test_cli_on_data_without_an_object_says_so(tmp_path, capsys):
    # A VOC set whose one image has no object has no class either: the preset was built
    # for it with 0 classes and refused ('num_classes must be in [2, 100000]').
    data = tmp_path / "voc"
    for folder in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (data / folder).mkdir(parents=True)
    Image.new("RGB", (64, 48)).save(data / "JPEGImages" / "a.jpg")
    (data / "Annotations" / "a.xml").write_text(
        "<annotation><filename>a.jpg</filename>"
        "<size><width>64</width><height>48</height><depth>3</depth></size></annotation>"
    )
    (data / "ImageSets" / "Main" / "train.txt").write_text("a\n")
    assert main(["anchors", "--data", str(data), "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert error == "faster-rcnn: error: the dataset has no ground-truth boxes to measure\n"


def test_the_pictures_no_anchor_rings_lie_under_the_boxes_points():
    # A box of 40 px at the grid's corner (covered) and one of 4 px (no anchor at 0.3): the
    # rings, drawn over the points, hid the covered boxes beside the uncovered ones.
    config = preset_config("small", 4).replace(transform={"min_size": (800,), "max_size": 1333})
    model = FasterRCNN.from_config(config)
    boxes = torch.tensor([[0.0, 0.0, 4.0, 4.0], [0.0, 0.0, 40.0, 40.0]])
    coverage = measure_anchor_coverage(model, [((800, 800), boxes)])
    strides = [((16, 16), (16, 16))] * len(config.anchors.sizes)
    report = CoverageReport(coverage, model.config.anchors, strides, 0.3, ["a.png"])
    shapes_axes = report.figure("title").axes[1]
    by_label = {c.get_label(): c for c in shapes_axes.collections}
    rings = by_label["no anchor at 0.3 (1)"]
    points = next(c for c in shapes_axes.collections if c.get_array() is not None)
    anchors = [c for label, c in by_label.items() if label.startswith("anchors, level")]
    assert rings.get_zorder() < points.get_zorder() < min(a.get_zorder() for a in anchors)
    assert max(rings.get_linewidths()) < 1


def test_the_pictures_legends_lie_under_the_axes_and_counts_have_thousands_separators():
    # Inside, at the upper left, the histogram's legend covered its bars where most boxes
    # have a low best IoU (here 1,200 of 4 px: no anchor at 0.3), and '1200' was written
    # where explain writes '1,200'.
    config = preset_config("small", 4).replace(transform={"min_size": (800,), "max_size": 1333})
    model = FasterRCNN.from_config(config)
    corners = torch.arange(1200, dtype=torch.float32)[:, None].repeat(1, 2) * 0.5
    coverage = measure_anchor_coverage(model, [((800, 800), torch.cat([corners, corners + 4], 1))])
    strides = [((16, 16), (16, 16))] * len(config.anchors.sizes)
    report = CoverageReport(coverage, model.config.anchors, strides, 0.3, ["a.png"])
    figure = report.figure("title")
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    histogram_axes, shapes_axes = figure.axes[:2]
    assert histogram_axes.get_title().endswith(": 0% reach 0.5, 1,200 below 0.3")
    labels = [text.get_text() for text in shapes_axes.get_legend().get_texts()]
    assert labels[0] == "no anchor at 0.3 (1,200)"
    for axes in (histogram_axes, shapes_axes):
        legend = axes.get_legend().get_window_extent(renderer)
        panel = axes.get_window_extent(renderer)
        assert legend.y1 < panel.y0 and panel.x0 <= legend.x0 and legend.x1 <= panel.x1
        assert figure.bbox.contains(legend.x0, legend.y0)


def test_images_of_one_padded_size_are_measured_together_without_a_border_policy(monkeypatch):
    # 40 x 40 and 44 x 48 images are resized to 44 x 44 and 44 x 48 (min size 44, max
    # 64), both padded to 64 x 64: without a border policy they share every anchor, so
    # their boxes are measured in one group, with the numbers each image alone gives.
    import faster_rcnn.insight.anchor_coverage as coverage_module

    box = torch.tensor([[30.0, 30.0, 40.0, 40.0]])
    targets = [((40, 40), box), ((44, 48), box)]
    groups = []
    measure_group = coverage_module._measure_group

    def counted_group(boxes, *args):
        groups.append(len(boxes))
        return measure_group(boxes, *args)

    monkeypatch.setattr(coverage_module, "_measure_group", counted_group)
    for border, sizes in ((-1, [2]), (0, [1, 1])):
        model = square_anchor_model(min_size=44, max_size=64, allowed_border=border)
        groups.clear()
        together = measure_anchor_coverage(model, targets)
        assert groups == sizes
        alone = [measure_anchor_coverage(model, [target]).best_iou for target in targets]
        assert torch.equal(together.best_iou, torch.cat(alone))
    # Within the image, the 16-px anchor centred at (32, 32) is the best of both: 7 x 7 of
    # the first box (33 to 44 resized), all 10 x 10 of the second.
    torch.testing.assert_close(together.best_iou, torch.tensor([49 / 328, 100 / 256]))


def test_the_measurement_runs_on_one_thread_and_gives_the_threads_back(monkeypatch, two_threads):
    # Thousands of small operations: a second thread only waits for the first at each.
    import faster_rcnn.insight.anchor_coverage as coverage_module

    threads = threads_at_calls(monkeypatch, coverage_module, "_measure_group")
    box = torch.tensor([[8.0, 8.0, 24.0, 24.0]])
    measure_anchor_coverage(square_anchor_model(), [((64, 64), box)])
    assert threads == [1] and torch.get_num_threads() == 2


def test_the_command_runs_on_one_thread_and_gives_the_threads_back(
    tmp_path, monkeypatch, two_threads
):
    # The summary table of 37,352 boxes took 2.2-6.2 s on 2 threads of a loaded machine,
    # 0.08 s on 1: every tensor the command makes is small.
    import faster_rcnn.cli.anchors as anchors_command

    threads = threads_at_calls(monkeypatch, anchors_command, "print_uncovered")
    out = tmp_path / "anchors"
    argv = ["anchors", "--data", "synthetic:4", "--max-images", "4", "--out", str(out)]
    assert main(argv) == 0
    assert threads == [1] and torch.get_num_threads() == 2
