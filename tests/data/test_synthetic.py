import pytest
import torch

from faster_rcnn.data.synthetic import (
    AREA_FRACTION,
    ShapeClass,
    SyntheticShapes,
    _uncovered,
    _window,
)
from faster_rcnn.ops.boxes import box_iou
from thread_counts import threads_at_calls


def test_same_seed_same_images_other_seed_other_images():
    a, b, c = SyntheticShapes(4, seed=3), SyntheticShapes(4, seed=3), SyntheticShapes(4, seed=4)
    for i in range(4):
        assert torch.equal(a[i][0], b[i][0])
        assert torch.equal(a[i][1]["boxes"], b[i][1]["boxes"])
    assert not torch.equal(a[0][0], c[0][0])


def test_targets_follow_the_data_contract_and_cover_the_spec():
    data = SyntheticShapes(120, image_size=(160, 200), seed=0)
    sides, ratios, counts, labels = [], [], [], set()
    for i in range(len(data)):
        image, target = data[i]
        assert image.shape == (3, 160, 200) and image.dtype == torch.float32
        assert image.min() >= 0 and image.max() <= 1
        boxes = target["boxes"]
        assert target["labels"].dtype == torch.int64 and boxes.shape[1] == 4
        assert torch.all(boxes[:, 2] > boxes[:, 0]) and torch.all(boxes[:, 3] > boxes[:, 1])
        assert torch.all(boxes[:, :2] >= 0) and torch.all(boxes[:, 2] <= 200)
        assert torch.all(boxes[:, 3] <= 160)
        if len(boxes) > 1:
            iou = box_iou(boxes, boxes).fill_diagonal_(0)
            assert iou.max() <= data.max_overlap + 1e-6
        w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        sides += torch.minimum(w, h).tolist()
        ratios += (h / w).tolist()
        counts.append(len(boxes))
        labels |= set(target["labels"].tolist())
    assert labels == {1, 2, 3}
    assert 0 in counts and max(counts) > 3  # empty images and crowded ones
    assert min(sides) < 16 and max(sides) > 80  # small and large objects
    assert min(ratios) < 0.5 and max(ratios) > 2  # elongated both ways


def test_every_box_shows_its_shape():
    """Shapes drawn later leave most of the earlier ones visible: each box holds its
    class's colour over at least ``min_visible`` of the area its shape fills in a box
    (before, 3.6% of the boxes framed shapes hidden for the most part, 1% entirely)."""
    data = SyntheticShapes(200, seed=1)
    shares = []
    for index in range(len(data)):
        image, target = data[index]
        height = image.shape[1]
        shade = 1.0 - 0.25 * ((torch.arange(height) + 0.5) / height)
        unshaded = image / shade[None, :, None]
        boxes, labels = target["boxes"].long().tolist(), target["labels"].tolist()
        for box, label in zip(boxes, labels, strict=True):
            x1, y1, x2, y2 = box
            drawn = data.classes[label - 1]
            colour = torch.tensor(drawn.colour)[:, None, None]
            # Colour jitter is at most 0.075 a channel and the noise has sigma 0.03.
            coloured = (unshaded[:, y1:y2, x1:x2] - colour).abs().amax(dim=0) < 0.2
            shares.append(coloured.float().mean().item() / AREA_FRACTION[drawn.geometry])
    assert len(shares) > 500
    assert min(shares) >= data.min_visible


def test_classes_are_drawn_as_often_as_their_weights_ask():
    """Four classes at weights 8 : 4 : 2 : 1 over 400 images of up to 6 objects (about
    1260 objects): each class's share of the objects within 4 sigma of 8/15 ... 1/15."""
    classes = (
        ShapeClass("red_ellipse", "ellipse", (0.85, 0.25, 0.2)),
        ShapeClass("blue_ellipse", "ellipse", (0.25, 0.35, 0.9)),
        ShapeClass("red_triangle", "triangle", (0.85, 0.25, 0.2)),
        ShapeClass("yellow_box", "rectangle", (0.9, 0.8, 0.2)),
    )
    data = SyntheticShapes(400, (96, 96), seed=5, classes=classes, class_weights=(8, 4, 2, 1))
    assert data.num_classes == 5 and data.class_names[3] == "yellow_box"
    labels = torch.cat([data[i][1]["labels"] for i in range(len(data))])
    counts = torch.bincount(labels, minlength=5)[1:].double()
    expected = torch.tensor([8, 4, 2, 1], dtype=torch.float64) / 15
    sigma = (expected * (1 - expected) / len(labels)).sqrt()
    assert len(labels) > 1000
    assert ((counts / len(labels) - expected).abs() < 4 * sigma).all(), counts


def test_equal_weights_draw_the_default_images():
    """Weights all alike pick each label as the default does, up to the float edges
    between labels, which no draw of 60 images lands on."""
    plain, weighted = (
        SyntheticShapes(60, seed=7),
        SyntheticShapes(60, seed=7, class_weights=(1, 1, 1)),
    )
    for i in range(60):
        assert torch.equal(plain[i][1]["labels"], weighted[i][1]["labels"])
        assert torch.equal(plain[i][0], weighted[i][0])


@pytest.mark.parametrize(
    ("classes", "weights", "message"),
    [
        ((), None, "geometries"),
        ((ShapeClass("star", "star", (1, 1, 1)),), None, "'star'"),
        (None, (1, 2), "3 positive numbers"),
        (None, (1, 0, 2), "3 positive numbers"),
    ],
)
def test_unknown_geometries_and_bad_weights_are_refused(classes, weights, message):
    extra = {} if classes is None else {"classes": classes}
    with pytest.raises(ValueError, match=message):
        SyntheticShapes(4, class_weights=weights, **extra)


@pytest.mark.parametrize(
    "data",
    [
        SyntheticShapes(400, image_size=(120, 160), seed=0),
        SyntheticShapes(100, seed=1),  # the default size, validation's seed
        SyntheticShapes(
            100,
            image_size=(96, 128),
            seed=2,
            max_objects=12,
            classes=[ShapeClass("a", "ellipse", (0.5, 0.5, 0.5)), *SyntheticShapes(1).classes],
            class_weights=[4, 1, 1, 1],
        ),
    ],
)
def test_target_gives_the_boxes_of_the_drawn_image_without_drawing_it(data, monkeypatch):
    """target(i) is what the recipe reads: the same boxes and labels as data[i], bit for
    bit, over every image (the crowded and empty ones too), with no background drawn."""
    drawn = [data[i][1] for i in range(len(data))]
    monkeypatch.setattr("faster_rcnn.data.synthetic._background", _not_drawn)
    for i, target in enumerate(drawn):
        read = data.target(i)
        assert torch.equal(read["boxes"], target["boxes"]), i
        assert torch.equal(read["labels"], target["labels"]), i
    assert sum(len(target["boxes"]) == 0 for target in drawn) > 0
    assert max(len(target["boxes"]) for target in drawn) >= 5
    with pytest.raises(IndexError, match="out of range"):
        data.target(len(data))


def _not_drawn(*args: object) -> None:
    raise AssertionError("target(i) drew the background")


def test_images_are_drawn_on_one_thread_and_the_threads_given_back(monkeypatch, two_threads):
    # Drawing is many small mask operations: on a loaded 2-core machine an image took
    # 180-730 ms on 2 threads against 22-55 ms on 1, in the process that trains.
    data = SyntheticShapes(2, seed=0)
    threads = threads_at_calls(monkeypatch, SyntheticShapes, "_place_objects")
    assert torch.equal(data.target(1)["boxes"], data[1][1]["boxes"])
    assert threads == [1, 1] and torch.get_num_threads() == 2


def test_a_shapes_window_holds_every_pixel_its_whole_image_mask_has():
    # Pixel centres within 3 of x = 10.2: 7.5 .. 12.5 (columns 7-12), the window one more
    # each side; rows: centres within 2 of y = 5, cut at the image's top for y = 1.
    assert _window(10.2, 5.0, 3.0, 2.0, (20, 30)) == (slice(2, 8), slice(6, 14))
    assert _window(10.2, 1.0, 3.0, 2.0, (20, 30)) == (slice(0, 4), slice(6, 14))
    assert _window(-9.0, 5.0, 3.0, 2.0, (20, 30))[1] == slice(0, 0)  # left of the image
    generator = torch.Generator().manual_seed(0)
    ys = torch.arange(40, dtype=torch.float32)[:, None] + 0.5
    xs = torch.arange(60, dtype=torch.float32)[None, :] + 0.5
    for _ in range(200):
        cx, cy, w, h = (
            torch.rand(4, generator=generator) * torch.tensor([80, 60, 40, 30])
        ).tolist()
        cx, cy = cx - 10, cy - 10
        u, v = (xs - cx) / (w / 2), (ys - cy) / (h / 2)  # as the dataset computes them
        whole = (u.abs() <= 1) & (v.abs() <= 1)  # a rectangle: the others lie inside it
        rows, cols = _window(cx, cy, w / 2, h / 2, (40, 60))
        assert int(whole[rows, cols].sum()) == int(whole.sum())


def test_uncovered_pixels_are_those_of_whole_image_masks():
    generator = torch.Generator().manual_seed(1)

    def random_window() -> tuple[slice, slice]:
        top, left = torch.randint(0, 30, (2,), generator=generator).tolist()
        height, width = torch.randint(1, 15, (2,), generator=generator).tolist()
        return slice(top, top + height), slice(left, left + width)

    def whole(window: tuple[slice, slice], pixels: torch.Tensor) -> torch.Tensor:
        image = torch.zeros(45, 45, dtype=torch.bool)
        image[window] = pixels
        return image

    def random_pixels(window: tuple[slice, slice]) -> torch.Tensor:
        rows, cols = window
        size = (rows.stop - rows.start, cols.stop - cols.start)
        return torch.rand(size, generator=generator) < 0.6

    disjoint = 0
    for _ in range(300):
        window, over = random_window(), random_window()
        pixels, mask = random_pixels(window), random_pixels(over)
        expected = whole(window, pixels) & ~whole(over, mask)
        assert torch.equal(whole(window, _uncovered(window, pixels, over, mask)), expected)
        disjoint += torch.equal(expected, whole(window, pixels))
    assert 0 < disjoint < 300  # some left as they were (windows apart), some not


def test_crowded_images_are_those_of_whole_image_masks():
    # Drawn with a whole-image mask per object and per pair of objects before each was
    # drawn in its own window (the grey levels' sum, the boxes, the labels of each).
    data = SyntheticShapes(
        6, image_size=(240, 400), seed=2, max_objects=30, max_overlap=0.7, min_visible=0.3,
        min_object_size=6.0,
    )  # fmt: skip
    expected = {
        2: (34499596, 19622.0, [[266.0, 51.0, 301.0, 66.0], [222.0, 150.0, 241.0, 164.0]],
            [2, 3, 2, 2, 1, 3, 2, 2, 1, 3, 3, 3, 2, 3, 3, 3, 3, 2, 2, 3, 2, 1, 1, 2, 1, 1, 1,
             3, 3, 1]),
        5: (33350704, 13794.0, [[187.0, 132.0, 241.0, 199.0], [297.0, 136.0, 332.0, 158.0]],
            [2, 3, 3, 2, 2, 1, 1, 3, 2, 3, 3, 1, 2, 1, 3, 3, 3, 1, 1, 1, 1, 1]),
    }  # fmt: skip
    for index, (grey_levels, box_sum, first_boxes, labels) in expected.items():
        image, target = data[index]
        assert int((image * 255).round().to(torch.int64).sum()) == grey_levels
        assert float(target["boxes"].sum()) == box_sum
        assert target["boxes"][:2].tolist() == first_boxes
        assert target["labels"].tolist() == labels
