import enum
import math
import warnings

import pytest
import torch

from faster_rcnn import FasterRCNN
from faster_rcnn.models import small_config
from faster_rcnn.validation import (
    rgb_image_list,
    validate_image_sizes,
    validate_images,
    validate_targets,
)


def target(boxes, labels=None):
    boxes = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    if labels is None:
        labels = [1] * len(boxes)
    return {"boxes": boxes, "labels": torch.tensor(labels, dtype=torch.int64)}


def test_valid_targets_including_an_empty_image_pass():
    validate_targets([target([[0, 0, 10, 10]]), target([])], num_images=2, num_classes=3)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (target([[0, 0, 10, 10], [5, 5, 5, 9]]), r"image 1, box 1: .* has no area"),
        (target([[0, 0, 10, 10], [5, 9, 8, 2]]), r"image 1, box 1: .* has no area"),
        (target([[0, 0, math.nan, 10]]), r"image 1, box 0: non-finite"),
        (target([[0, 0, math.inf, 10]]), r"image 1, box 0: non-finite"),
        (target([[0, 0, 10, 10]], [0]), r"image 1, box 0: label 0 is outside 1..2"),
        (target([[0, 0, 10, 10]], [3]), r"image 1, box 0: label 3 is outside 1..2"),
        ({"boxes": torch.zeros(2, 5), "labels": torch.ones(2, dtype=torch.int64)}, r"\(N, 4\)"),
        (
            {"boxes": torch.zeros(1, 4, dtype=torch.bool), "labels": torch.ones(1).long()},
            r"image 1: boxes must be floating point or integer, got torch.bool",
        ),
        ({"boxes": torch.tensor([[0.0, 0, 1, 1]]), "labels": torch.ones(1)}, "int64"),
        ({"boxes": torch.tensor([[0.0, 0, 1, 1]]), "labels": torch.ones(2).long()}, r"\(1,\)"),
        ({"boxes": torch.tensor([[0.0, 0, 1, 1]])}, "'boxes' and 'labels'"),
        (
            {"boxes": torch.empty(1, 4, device="meta"), "labels": torch.ones(1).long()},
            r"^image 1: boxes are on the meta device, which holds no values$",
        ),
        (
            {
                "boxes": torch.tensor([[0.0, 0, 1, 1]]),
                "labels": torch.ones(1, device="meta").long(),
            },
            r"^image 1: labels are on the meta device, which holds no values$",
        ),
    ],
)
def test_invalid_targets_name_the_image_and_box(bad, message):
    with pytest.raises(ValueError, match=message):
        validate_targets([target([[0, 0, 10, 10]]), bad], num_images=2, num_classes=3)


class BoundingBoxFormat(enum.Enum):
    XYXY = "XYXY"
    CXCYWH = "CXCYWH"


class BoundingBoxes(torch.Tensor):
    """Stands for torchvision's ``tv_tensors.BoundingBoxes``: a tensor with its format."""

    @staticmethod
    def __new__(cls, data: list[list[float]], box_format: str) -> "BoundingBoxes":
        boxes = torch.tensor(data).as_subclass(cls)
        boxes.format = BoundingBoxFormat[box_format]
        return boxes


def test_boxes_that_say_another_format_than_xyxy_are_refused():
    """torchvision's detectors read a CXCYWH box (30, 35, 40, 50) as the XYXY box it
    would be, silently; here it is named. XYXY ones pass."""
    labels = torch.ones(1, dtype=torch.int64)
    xyxy = {"boxes": BoundingBoxes([[10.0, 10.0, 50.0, 60.0]], "XYXY"), "labels": labels}
    validate_targets([xyxy], 1, 3, [(100, 120)])
    centred = {"boxes": BoundingBoxes([[30.0, 35.0, 40.0, 50.0]], "CXCYWH"), "labels": labels}
    with pytest.raises(
        ValueError,
        match=r"^image 0: boxes are in format CXCYWH, the model reads XYXY \(x1, y1, x2, y2\): "
        r"convert them first \(torchvision's v2\.ConvertBoundingBoxFormat\(\"XYXY\"\)\)$",
    ):
        validate_targets([centred], 1, 3, [(100, 120)])


def test_targets_on_another_device_than_the_model_s_are_named():
    targets = [target([[0, 0, 10, 10]])]
    validate_targets(targets, 1, 3, device=torch.device("cpu"))
    with pytest.raises(
        ValueError,
        match=r"^image 0: boxes are on cpu, the model on meta: inputs must be on the model's "
        r"device$",
    ):
        validate_targets(targets, 1, 3, device=torch.device("meta"))


@pytest.mark.parametrize("image_id", [5, torch.tensor([5]), "5"])  # tutorials' forms
def test_a_bad_target_is_named_by_its_image_id_too(image_id):
    # A shuffled batch's position does not tell the dataset item; its image_id does.
    bad = {**target([[121, 37, 121, 225]]), "image_id": image_id}
    with pytest.raises(
        ValueError, match=r"^image 1 \(image_id 5\), box 0: \[121.0, 37.0, 121.0, 225.0\] has no"
    ):
        validate_targets([target([[0, 0, 10, 10]]), bad], num_images=2, num_classes=3)
    with pytest.raises(ValueError, match=r"^image 0 \(image_id 5\), box 0: label 7 is outside"):
        validate_targets([{**target([[0, 0, 9, 9]], [7]), "image_id": image_id}], 1, 3)


def test_target_count_must_match_images():
    with pytest.raises(ValueError, match="list of 2 target dicts, got 1"):
        validate_targets([target([])], num_images=2, num_classes=3)


def _with(image: torch.Tensor, value: float) -> torch.Tensor:
    image[1, 2, 3] = value
    return image


@pytest.mark.parametrize(
    ("images", "message"),
    [
        ([], "non-empty"),
        ([torch.zeros(4, 4, 4)], r"image 0: expected shape \(3, H, W\), or \(1, H, W\) for a"),
        ([torch.zeros(1, 3, 4, 4)], r"image 0: expected shape \(3, H, W\)"),
        ([torch.zeros(3, 4, 4), torch.zeros(3, 0, 4)], r"image 1: expected shape"),
        # Empty: no hint of channels last (its permute is empty too), nor of RGBA or grey.
        ([torch.zeros(3, 0, 3)], r"image 0: expected shape .*, got \(3, 0, 3\)$"),
        ([torch.zeros(4, 5, 0)], r"image 0: expected shape .*, got \(4, 5, 0\)$"),
        ([torch.zeros(0, 5)], r"image 0: expected shape .*, got \(0, 5\)$"),
        (
            [torch.zeros(3, 4, 4, dtype=torch.int16)],  # uint8 levels are taken
            r"image 0: expected a floating point tensor in 0..1 or uint8, got torch.int16 "
            r"\(scale a 0..255 image: image.float\(\) / 255",
        ),
        ([torch.zeros(3, 4, 4), _with(torch.zeros(3, 4, 4), math.nan)], r"image 1: NaN or inf"),
        ([_with(torch.zeros(3, 4, 4, dtype=torch.float16), -math.inf)], r"image 0: NaN or inf"),
        (
            [torch.zeros(3, 4, 4), torch.empty(3, 4, 4, device="meta")],
            r"^image 1 is on the meta device, which holds no values$",
        ),
    ],
)
def test_invalid_images(images, message):
    with pytest.raises(ValueError, match=message):
        validate_images(images)


@pytest.mark.parametrize(
    ("box", "message"),
    [
        ([120, 10, 130, 20], r"image 1, box 0: .* lies wholly outside the 100x80 image"),
        ([-30, 10, 0, 20], r"lies wholly outside"),
        ([10, 10, 1e30, 20], r"image 1, box 0: .* reaches further beyond the 100x80 image"),
        ([-101, 10, 20, 20], r"reaches further beyond"),
    ],
)
def test_boxes_outside_their_image_are_refused_given_the_sizes(box, message):
    targets = [target([[0, 0, 10, 10]]), target([box])]
    validate_targets(targets, num_images=2, num_classes=3)  # sizes unknown: no check
    with pytest.raises(ValueError, match=message):
        validate_targets(targets, 2, 3, image_sizes=[(80, 100), (80, 100)])
    # Partly outside is allowed (readers clip, torchvision accepts it).
    validate_targets([target([[-5, -5, 105, 85]])] * 2, 2, 3, image_sizes=[(80, 100)] * 2)


def test_an_image_a_side_of_which_would_resize_to_nothing_is_refused():
    validate_image_sizes([torch.zeros(3, 4, 5000)], (800,), 1333)  # 4 x 5000 -> 1 x 1333
    with pytest.raises(
        ValueError, match=r"image 1: 5000x1 \(width x height\) is too elongated .* min_size 800"
    ):
        validate_image_sizes([torch.zeros(3, 9, 9), torch.zeros(3, 1, 5000)], (800,), 1333)


def test_images_on_another_device_than_the_model_s_are_named():
    """torchvision fails deep inside the network; here the image is named before any
    computation."""
    model = FasterRCNN.from_config(small_config(3)).to("meta").eval()
    with pytest.raises(
        ValueError,
        match=r"^image 0 is on cpu, the model on meta: inputs must be on the model's device$",
    ):
        model([torch.rand(3, 20, 30)])


def test_images_in_0_255_are_warned_about():
    with pytest.warns(UserWarning, match=r"image 0: pixel values up to 255; .* expects 0..1"):
        validate_images([torch.full((3, 4, 4), 255.0)])


def test_images_normalised_already_are_warned_about_as_such():
    """Normalised with ImageNet's mean and std, black is about -2 and white about 2.6:
    the warning says so, not that the image is in 0..255."""
    mean = torch.tensor([0.485, 0.456, 0.406]).reshape(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).reshape(3, 1, 1)
    image = torch.zeros(3, 4, 4)
    image[:, 0, 0] = 1.0
    normalised = (image - mean) / std  # -2.1179 .. 2.64
    with pytest.warns(UserWarning) as caught:
        validate_images([image, normalised])
    assert [str(w.message) for w in caught] == [
        "image 1: pixel values down to -2.1179; the model expects 0..1 and normalises them "
        "itself (pass the images before any mean/std normalisation)"
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        validate_images([image - 0.4])  # noise a little below 0 is no normalisation


def test_detections_lie_inside_their_original_image_after_scaling_back():
    # Clipped in the resized image, then scaled back, sides came out up to 4e-6 px past
    # the original image (found by tests/fuzz); they are clipped again.
    torch.manual_seed(0)
    config = small_config(3).replace(transform={"min_size": (64,), "max_size": 96})
    model = FasterRCNN.from_config(config).eval()
    sizes = [(56, 109), (103, 41), (29, 60), (51, 21), (35, 46)]
    with torch.no_grad():
        detections = model([torch.rand(3, h, w) for h, w in sizes])
    for (height, width), found in zip(sizes, detections, strict=True):
        boxes = found["boxes"]
        assert len(boxes) > 0
        assert float(boxes.min()) >= 0
        assert float(boxes[:, 2].max()) <= width and float(boxes[:, 3].max()) <= height


def test_images_of_another_float_dtype_are_computed_in_the_weights_dtype():
    torch.manual_seed(0)
    config = small_config(3).replace(transform={"min_size": (96,), "max_size": 128})
    model = FasterRCNN.from_config(config).eval()
    image = torch.rand(3, 90, 120, dtype=torch.float64)
    with torch.no_grad():
        expected = model([image.float()])
        # float64 -> float32, exactly
        torch.testing.assert_close(model([image]), expected, rtol=0, atol=0)
        half = model([image.half()])[0]
    assert half["boxes"].dtype == torch.float32


def test_integer_boxes_pass():
    boxes = torch.tensor([[0, 0, 10, 10]], dtype=torch.int32)
    validate_targets([{"boxes": boxes, "labels": torch.ones(1).long()}], 1, 3, [(20, 20)])


@pytest.mark.parametrize(
    "images",
    [torch.zeros(3, 4, 4), torch.zeros(0, 3, 4, 4), [], None, "image.jpg"],
)
def test_what_is_no_batch_of_images_is_named(images):
    message = r"^images must be a non-empty list of \(3, H, W\) tensors or an \(N, 3, H, W\) batch$"
    with pytest.raises(ValueError, match=message):
        rgb_image_list(images)


def test_a_batch_tensor_and_grey_images_become_a_list_of_colour_images():
    batch = torch.rand(2, 3, 4, 5)
    assert [torch.equal(a, b) for a, b in zip(rgb_image_list(batch), batch, strict=True)] == [
        True,
        True,
    ]
    grey = torch.rand(1, 4, 5)
    (colour,) = rgb_image_list([grey])
    assert colour.shape == (3, 4, 5) and all(torch.equal(c, grey[0]) for c in colour)
