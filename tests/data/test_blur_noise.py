import argparse
import math

import pytest
import torch

from faster_rcnn.cli import main
from faster_rcnn.cli.train import augmented
from faster_rcnn.data.augment import Augmented, RandomHorizontalFlip, RandomVerticalFlip
from faster_rcnn.data.blur_noise import BlurAndNoise, gaussian_blur, gaussian_taps
from faster_rcnn.data.photometric import ColorJitter
from faster_rcnn.data.random_crop import RandomCrop
from faster_rcnn.data.small_object_paste import SmallObjectPaste
from faster_rcnn.data.synthetic import SyntheticShapes


def _target() -> dict:
    return {"boxes": torch.tensor([[1.0, 2.0, 4.0, 5.0]]), "labels": torch.tensor([2])}


def test_taps_are_the_normalised_gaussian() -> None:
    taps = gaussian_taps(1.0, 3)
    weights = [math.exp(-(k**2) / 2) for k in range(-3, 4)]
    expected = torch.tensor(weights, dtype=torch.float64) / sum(weights)
    assert torch.allclose(taps, expected, rtol=0, atol=1e-15)
    # By hand: 1 + 2 (e^-0.5 + e^-2 + e^-4.5) = 2.50596, so the centre tap is 0.39905,
    # near the continuous Gaussian's peak 1 / sqrt(2 pi) = 0.39894.
    assert taps[3].item() == pytest.approx(0.39905, abs=1e-5)


def test_a_point_spreads_into_the_outer_product_of_the_taps() -> None:
    image = torch.zeros(3, 21, 21, dtype=torch.float64)
    image[:, 10, 10] = 1.0
    blurred = gaussian_blur(image, 1.5)
    taps = gaussian_taps(1.5, 5)  # ceil(3 * 1.5) = 5 each side
    expected = torch.zeros(21, 21, dtype=torch.float64)
    expected[5:16, 5:16] = taps[:, None] * taps[None, :]
    for channel in blurred:
        assert torch.allclose(channel, expected, rtol=0, atol=1e-15)


def test_blur_keeps_a_flat_image_and_the_mean_of_a_varied_one() -> None:
    flat = torch.full((3, 9, 12), 0.4)
    assert torch.allclose(gaussian_blur(flat, 2.0), flat, atol=1e-6)
    stripes = torch.zeros(1, 40, 40, dtype=torch.float64)
    stripes[:, :, ::2] = 1.0  # a 2-px period: the finest detail there is
    blurred = gaussian_blur(stripes, 2.0)
    # Away from the border the stripes are gone: each pixel sees as much of both.
    assert torch.allclose(
        blurred[0, 10:30, 10:30], torch.full((20, 20), 0.5, dtype=torch.float64), atol=1e-3
    )


def test_a_gaussian_wider_than_the_image_is_cut_to_it() -> None:
    image = torch.rand(3, 4, 5, generator=torch.Generator().manual_seed(0))
    blurred = gaussian_blur(image, 10.0)
    assert blurred.shape == image.shape
    assert blurred.min() >= image.min() - 1e-6 and blurred.max() <= image.max() + 1e-6


def test_a_blur_of_any_width_averages_the_image_as_the_widest_does() -> None:
    """--blur-noise 1e308 0 stopped training with a traceback: sigma**2 overflowed (and
    ceil(3 * sigma), from 6e307). Its taps are all alike, a box filter over the image."""
    assert torch.equal(gaussian_taps(1e308, 3), torch.full((7,), 1 / 7, dtype=torch.float64))
    image = torch.rand(3, 6, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(gaussian_blur(image, 1e308), gaussian_blur(image, 1e6), atol=1e-9)
    out, _ = BlurAndNoise(blur=1.7e308)(image, _target(), torch.Generator().manual_seed(2))
    assert out.isfinite().all() and not torch.equal(out, image)


def test_no_strength_leaves_the_image_as_it_is() -> None:
    image, target = torch.rand(3, 8, 9), _target()
    out, same = BlurAndNoise()(image, target, torch.Generator().manual_seed(1))
    assert torch.equal(out, image) and same is target


def test_noise_has_the_drawn_strength_and_stays_in_range() -> None:
    image = torch.full((3, 200, 200), 0.5)
    generator = torch.Generator().manual_seed(3)
    out, _ = BlurAndNoise(noise=0.04)(image, _target(), generator)
    # The two draws come first from the generator: the second sets the noise's share.
    _, noise_draw = torch.rand(
        2, generator=torch.Generator().manual_seed(3), dtype=torch.float64
    ).tolist()
    assert (out - image).std().item() == pytest.approx(0.04 * noise_draw, rel=0.02)
    strong, _ = BlurAndNoise(noise=5.0)(image, _target(), torch.Generator().manual_seed(3))
    assert strong.min() == 0.0 and strong.max() == 1.0


def test_the_blur_is_drawn_up_to_its_strength() -> None:
    image = torch.zeros(1, 31, 31)
    image[0, 15, 15] = 1.0
    peaks = []
    for seed in range(20):
        out, _ = BlurAndNoise(blur=3.0)(image, _target(), torch.Generator().manual_seed(seed))
        first_draw = torch.rand(
            1, generator=torch.Generator().manual_seed(seed), dtype=torch.float64
        )
        sigma = 3.0 * first_draw.item()
        assert torch.allclose(out, gaussian_blur(image, sigma))
        peaks.append(out.max().item())
    # Widths from near 0 (the point kept) to near 3 px (its peak 1 / (2 pi 9) = 0.018).
    assert max(peaks) > 0.5 and min(peaks) < 0.03


def test_the_input_and_the_boxes_are_unchanged() -> None:
    image, target = torch.rand(3, 10, 10), _target()
    kept = image.clone()
    out, out_target = BlurAndNoise(2.0, 0.05)(image, target, torch.Generator().manual_seed(0))
    assert torch.equal(image, kept) and not torch.equal(out, image) and out_target is target


@pytest.mark.parametrize("strengths", [(-0.1, 0.0), (0.0, -1.0), (float("nan"), 0.0)])
def test_a_negative_strength_is_refused(strengths: tuple[float, float]) -> None:
    with pytest.raises(ValueError, match="must be >= 0"):
        BlurAndNoise(*strengths)


def test_training_reads_copies_crops_flips_then_colour_jitter_then_blur_and_noise() -> None:
    data = SyntheticShapes(2, image_size=(16, 16), seed=0)
    plain = argparse.Namespace(
        random_crop=None,
        no_flip=True,
        vertical_flip=False,
        color_jitter=None,
        blur_noise=None,
        seed=0,
    )
    assert augmented(data, plain) is data
    every = argparse.Namespace(
        paste_small=3,
        random_crop=0.6,
        no_flip=False,
        vertical_flip=True,
        color_jitter=[0.1, 0.2, 0.3, 0.04],
        blur_noise=[1.5, 0.02],
        seed=0,
    )
    wrapped = augmented(data, every, pasted=2)
    assert isinstance(wrapped, Augmented)
    paste, crop, flip, vertical, jitter, blur_noise = wrapped.transforms
    assert isinstance(paste, SmallObjectPaste) and paste.labels == {2}
    assert (paste.copies, paste.p) == (3, 0.5)
    assert isinstance(crop, RandomCrop) and (crop.min_scale, crop.p) == (0.6, 0.5)
    assert isinstance(flip, RandomHorizontalFlip) and flip.direction == "horizontal"
    assert isinstance(vertical, RandomVerticalFlip) and vertical.direction == "vertical"
    assert isinstance(jitter, ColorJitter) and jitter.strengths == (0.1, 0.2, 0.3, 0.04)
    assert isinstance(blur_noise, BlurAndNoise) and blur_noise.strengths == (1.5, 0.02)
    zero = argparse.Namespace(
        random_crop=None,
        no_flip=True,
        vertical_flip=False,
        color_jitter=[0.0] * 4,
        blur_noise=[0.0, 0.0],
        seed=0,
    )
    assert augmented(data, zero) is data


def test_train_reads_blurred_and_noised_images(tmp_path, monkeypatch) -> None:
    seen = []
    call = BlurAndNoise.__call__

    def recorded(self, image, target, generator):
        out, target = call(self, image, target, generator)
        seen.append((image, out))
        return out, target

    monkeypatch.setattr(BlurAndNoise, "__call__", recorded)
    argv = ["train", "--data", "synthetic:2", "--steps", "2", "--batch-size", "1"]
    argv += ["--min-size", "96", "--max-size", "128", "--blur-noise", "2", "0.05"]
    assert main([*argv, "--out", str(tmp_path)]) == 0
    assert len(seen) == 2 and all(not torch.equal(image, out) for image, out in seen)
    assert (tmp_path / "model.safetensors").exists()
