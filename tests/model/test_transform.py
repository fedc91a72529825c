import math
import sys

import numpy as np
import pytest
import torch

from faster_rcnn.config import TransformConfig
from faster_rcnn.models import PRESETS
from faster_rcnn.transform import ImageTransform, resize_boxes, resize_image, resized_size
from peak_memory import peak_rise_mb


def make_transform(**kwargs) -> ImageTransform:
    return ImageTransform(TransformConfig(**kwargs)).eval()


def test_torchvision_s_fixed_size_is_none_and_setting_one_is_refused():
    """torchvision's transform resizes every image to ``fixed_size`` where it is set;
    images keep their aspect ratio here, so only its ``None`` is taken."""
    transform = make_transform()
    assert transform.fixed_size is None
    transform.fixed_size = None
    with pytest.raises(ValueError, match=r"^transform\.fixed_size = \(640, 480\): images"):
        transform.fixed_size = (640, 480)
    assert transform.fixed_size is None


def test_torchvision_s_skip_resize_is_false_and_setting_it_is_refused():
    """torchvision's transform leaves training images unresized where ``_skip_resize`` is
    set (its references' multiscale and LSJ augmentations); every image is resized here,
    so reading it says False and only False is taken."""
    transform = make_transform(min_size=(40,), max_size=100).train()
    assert transform._skip_resize is False
    transform._skip_resize = False
    with pytest.raises(ValueError, match=r"^transform\._skip_resize = True: every image is"):
        transform._skip_resize = True
    assert transform._skip_resize is False
    batch, _ = transform([torch.rand(3, 20, 30)])
    assert batch.image_sizes == [(40, 60)]


def test_resize_scales_shorter_side_to_min_size():
    image = torch.rand(3, 100, 200)
    assert resize_image(image, min_size=50, max_size=1000).shape == (3, 50, 100)


def test_resize_caps_longer_side_at_max_size():
    # Shorter side 100 -> 200 would make the longer 800 > 500, so scale = 500/400 = 1.25.
    image = torch.rand(3, 100, 400)
    assert resize_image(image, min_size=200, max_size=500).shape == (3, 125, 500)


def test_resize_boxes_per_axis():
    boxes = torch.tensor([[10.0, 20.0, 30.0, 40.0]])
    out = resize_boxes(boxes, original_size=(100, 200), new_size=(50, 400))
    torch.testing.assert_close(out, torch.tensor([[20.0, 10.0, 60.0, 20.0]]))


def test_normalize_uses_mean_and_std():
    transform = make_transform(image_mean=(0.5, 0.25, 0.0), image_std=(0.5, 0.25, 2.0))
    image = torch.ones(3, 2, 2)
    out = transform.normalize(image)
    torch.testing.assert_close(out[:, 0, 0], torch.tensor([1.0, 3.0, 0.5]))


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/self/status")
def test_normalize_holds_one_full_size_copy_beside_the_image():
    # A 3 x 3000 x 3000 image is 108 MB in float32: the difference and a quotient beside it
    # raised the peak by 206 MB; divided in place, by the difference's 103.
    setup = (
        "from faster_rcnn.config import TransformConfig\n"
        "from faster_rcnn.transform import ImageTransform\n"
        "transform = ImageTransform(TransformConfig())\n"
        "transform.normalize(torch.rand(3, 8, 8))\n"
        "image = torch.rand(3, 3000, 3000)"
    )
    assert peak_rise_mb(setup, "out = transform.normalize(image)") < 160  # MB


def test_batch_pads_to_multiple_of_size_divisible_with_zeros():
    transform = make_transform(min_size=(40,), max_size=1000, size_divisible=32)
    images = [torch.rand(3, 40, 50), torch.rand(3, 80, 40)]
    batch, targets = transform(images)
    assert targets is None
    # Image 2 resizes to 80x40 (shorter side 40 already); batch is (80, 50) -> (96, 64).
    assert batch.tensors.shape == (2, 3, 96, 64)
    assert batch.image_sizes == [(40, 50), (80, 40)]
    assert torch.all(batch.tensors[0, :, 40:, :] == 0)
    assert torch.all(batch.tensors[0, :, :, 50:] == 0)


def test_forward_resizes_targets_and_postprocess_maps_back():
    transform = make_transform(min_size=(100,), max_size=1000)
    image = torch.rand(3, 50, 80)
    target = {"boxes": torch.tensor([[5.0, 10.0, 25.0, 40.0]]), "labels": torch.tensor([1])}
    batch, targets = transform([image], [target])
    assert batch.image_sizes == [(100, 160)]
    torch.testing.assert_close(targets[0]["boxes"], torch.tensor([[10.0, 20.0, 50.0, 80.0]]))
    assert target["boxes"][0, 0] == 5.0  # the caller's target is not modified
    detections = [{"boxes": targets[0]["boxes"].clone()}]
    back = transform.postprocess(detections, batch.image_sizes, [(50, 80)])
    torch.testing.assert_close(back[0]["boxes"], target["boxes"])


def test_multiscale_training_draws_each_size_and_eval_uses_last():
    transform = ImageTransform(TransformConfig(min_size=(32, 64), max_size=1000))
    gen = torch.Generator().manual_seed(0)
    transform.train()
    sizes = {transform([torch.rand(3, 16, 16)], generator=gen)[0].image_sizes[0] for _ in range(40)}
    assert sizes == {(32, 32), (64, 64)}
    transform.eval()
    assert transform([torch.rand(3, 16, 16)])[0].image_sizes == [(64, 64)]


def test_multi_scale_per_batch_resizes_every_image_of_a_batch_alike():
    sizes = (32, 48, 64)
    per_image = ImageTransform(TransformConfig(min_size=sizes, max_size=1000)).train()
    per_batch_config = TransformConfig(min_size=sizes, max_size=1000, multi_scale_per="batch")
    per_batch = ImageTransform(per_batch_config)
    per_batch.train()
    images = [torch.rand(3, 16, 16), torch.rand(3, 16, 24), torch.rand(3, 16, 16)]
    gen_image, gen_batch = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    mixed, shorter_sides = 0, set()
    for _ in range(30):
        batch = per_batch(images, generator=gen_batch)[0]
        # One draw a batch: every image's shorter side is the same one of the sizes.
        assert len({min(size) for size in batch.image_sizes}) == 1
        assert batch.image_sizes[0] == batch.image_sizes[2]
        shorter_sides.add(min(batch.image_sizes[0]))
        mixed += len({min(s) for s in per_image(images, generator=gen_image)[0].image_sizes}) > 1
    assert shorter_sides == set(sizes)
    assert mixed > 0  # drawn per image, a batch's sizes differ
    per_batch.eval()
    assert per_batch(images)[0].image_sizes == [(64, 64), (64, 96), (64, 64)]


def test_integer_images_other_than_uint8_are_rejected():
    with pytest.raises(TypeError, match=r"floating point tensors in 0\.\.1 or uint8"):
        make_transform().normalize(torch.zeros(3, 4, 4, dtype=torch.int16))


def test_uint8_levels_normalise_to_the_same_bits_as_the_float_image_read_from_them():
    # Every level, in each channel: level / 255 rounded once, then the float path's ops.
    levels = torch.arange(256, dtype=torch.uint8).repeat(3, 1)[:, None, :]
    as_read = levels.numpy().astype(np.float32) / np.float32(255)
    transform = make_transform()
    expected = transform.normalize(torch.from_numpy(as_read))
    assert torch.equal(transform.normalize(levels).view(torch.int32), expected.view(torch.int32))


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/self/status")
def test_normalising_uint8_levels_holds_one_float_copy_beside_them():
    # A 3 x 3000 x 3000 image: 27 MB of levels, 108 MB scaled to float; scaled and then
    # normalised out of place, the peak rose by two float copies (206 MB).
    setup = (
        "from faster_rcnn.config import TransformConfig\n"
        "from faster_rcnn.transform import ImageTransform\n"
        "transform = ImageTransform(TransformConfig())\n"
        "transform.normalize(torch.zeros(3, 8, 8, dtype=torch.uint8))\n"
        "image = torch.randint(0, 256, (3, 3000, 3000), dtype=torch.uint8)"
    )
    assert peak_rise_mb(setup, "out = transform.normalize(image)") < 160  # MB


@pytest.mark.parametrize("size", [(64, 64), (37, 91), (300, 200), (481, 641)])
def test_resized_size_matches_the_transform(size):
    image = torch.zeros(3, *size)
    expected = tuple(resize_image(image, 320, 512).shape[-2:])
    assert resized_size(size, 320, 512) == expected


def torchvision_eager_resized_size(h: int, w: int, min_size: int, max_size: int):
    """``GeneralizedRCNNTransform`` in eager mode: the scale in Python floats, then the
    interpolation's ``floor(side * scale)``."""
    scale = min(min_size / min(h, w), max_size / max(h, w))
    return math.floor(h * scale), math.floor(w * scale)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_resized_size_is_torchvisions_eager_size_on_a_dense_grid(preset):
    transform = PRESETS[preset]().transform
    sides = range(200, 1301, 3)
    for min_size in transform.min_size:
        wrong = [
            (h, w)
            for h in sides
            for w in sides
            if resized_size((h, w), min_size, transform.max_size)
            != torchvision_eager_resized_size(h, w, min_size, transform.max_size)
        ]
        assert not wrong, f"{len(wrong)} sizes differ, e.g. {wrong[:3]}"


@pytest.mark.parametrize(
    ("size", "expected"),
    [  # torchvision 0.29.1's eager transform at 800 / 1333 (float32 is a pixel short)
        ((375, 500), (800, 1066)),
        ((500, 375), (1066, 800)),
        ((333, 500), (800, 1201)),
        ((250, 710), (469, 1333)),
    ],
)
def test_transform_resizes_like_torchvision_where_float32_is_a_pixel_short(size, expected):
    transform = make_transform(min_size=(800,), max_size=1333)
    batch, _ = transform([torch.zeros(3, *size)])
    assert batch.image_sizes == [expected]
    assert resized_size(size, 800, 1333) == expected


def test_one_min_size_set_alone_on_the_transform_resizes_as_a_tuple_of_one():
    """``transform.min_size = 60`` made the next batch fail ('int' object is not
    iterable); it is the one size ``(60,)``."""
    transform = make_transform(min_size=(100,), max_size=1000)
    transform.min_size = 60
    assert transform.min_size == (60,)
    images, _ = transform([torch.rand(3, 30, 40)])
    assert images.image_sizes == [(60, 80)]


def test_batch_carries_the_gradient_of_images_that_require_one():
    # Saliency maps and adversarial examples differentiate the batch by its input images.
    transform = make_transform(min_size=(4,), max_size=1000, size_divisible=8)
    images = [torch.rand(3, 4, 4, requires_grad=True), torch.rand(3, 4, 6, requires_grad=True)]
    batch, _ = transform(images)
    batch.tensors.sum().backward()
    # d(sum)/d(pixel) is 1 / std of the pixel's channel; the padding adds nothing.
    std = torch.tensor(TransformConfig().image_std)
    for image in images:
        torch.testing.assert_close(image.grad, (1 / std)[:, None, None].expand_as(image))
