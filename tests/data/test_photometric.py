import colorsys

import pytest
import torch

from faster_rcnn.data.photometric import LUMA, ColorJitter, apply_color_map, color_map, hue_rotation

LUMA_T = torch.tensor(LUMA, dtype=torch.float64)


def _image(seed: int = 0, low: float = 0.0, high: float = 1.0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return low + (high - low) * torch.rand(3, 6, 7, generator=generator, dtype=torch.float64)


def _target() -> dict:
    return {
        "boxes": torch.tensor([[1.0, 2.0, 4.0, 5.0]]),
        "labels": torch.tensor([2]),
        "image_id": 3,
    }


def _mapped(image: torch.Tensor, *factors: float) -> torch.Tensor:
    matrix, offset = color_map(*factors, image.mean(dim=(1, 2)))
    return apply_color_map(image, matrix, offset)


def test_no_strength_leaves_the_image_as_it_is() -> None:
    image, target = _image().float(), _target()
    out, same = ColorJitter()(image, target, torch.Generator().manual_seed(1))
    assert torch.equal(out, image) and same is target


def test_each_adjustment_alone_matches_its_definition() -> None:
    image = _image()
    assert torch.allclose(_mapped(image, 1.6, 1, 1, 0), (1.6 * image).clamp(max=1))
    grey = (LUMA_T[:, None, None] * image).sum(0)
    # Contrast 0: every pixel is the image's mean grey; saturation 0: its own grey.
    assert torch.allclose(_mapped(image, 1, 0, 1, 0), grey.mean().expand(3, 6, 7))
    assert torch.allclose(_mapped(image, 1, 1, 0, 0), grey.expand(3, 6, 7))
    # Contrast 0.5 halves each pixel's distance to the mean grey.
    assert torch.allclose(_mapped(image, 1, 0.5, 1, 0), 0.5 * image + 0.5 * grey.mean())


def test_hue_rotation_keeps_grey_and_luma_and_turns_the_colour_wheel() -> None:
    assert torch.allclose(hue_rotation(0.5) @ hue_rotation(0.5), torch.eye(3, dtype=torch.float64))
    assert torch.allclose(
        hue_rotation(0.13) @ hue_rotation(-0.13), torch.eye(3, dtype=torch.float64)
    )
    grey = torch.full((3,), 0.4, dtype=torch.float64)
    assert torch.allclose(hue_rotation(0.21) @ grey, grey)
    colours = torch.tensor([[0.8, 0.2, 0.2], [0.2, 0.6, 0.3], [0.3, 0.3, 0.8], [0.9, 0.8, 0.1]])
    for rgb in colours.double():
        turned = hue_rotation(0.03) @ rgb
        assert float(LUMA_T @ turned) == pytest.approx(float(LUMA_T @ rgb))
        moved = colorsys.rgb_to_hsv(*turned.tolist())[0] - colorsys.rgb_to_hsv(*rgb.tolist())[0]
        assert 0.7 * 0.03 < (moved + 0.5) % 1 - 0.5 < 1.55 * 0.03  # HSV hue grows, about as far


def test_the_composed_map_is_the_adjustments_one_after_another() -> None:
    image = _image(2, 0.3, 0.6)  # mid-range, so that nothing is clipped
    b, c, s, h = 1.1, 0.85, 1.15, 0.02
    step = b * image
    step = c * step + (1 - c) * (LUMA_T[:, None, None] * step).sum(0).mean()
    step = s * step + (1 - s) * (LUMA_T[:, None, None] * step).sum(0)
    step = torch.einsum("ij,jhw->ihw", hue_rotation(h), step)
    assert torch.allclose(_mapped(image, b, c, s, h), step)


def test_draws_are_repeatable_within_their_ranges_and_boxes_stay() -> None:
    jitter, target = ColorJitter(brightness=0.2), _target()
    grey = torch.full((3, 4, 4), 0.5)
    values = []
    for seed in range(300):
        out, kept = jitter(grey, target, torch.Generator().manual_seed(seed))
        again, _ = jitter(grey, target, torch.Generator().manual_seed(seed))
        assert torch.equal(out, again) and kept is target
        values.append(float(out[0, 0, 0]))
    assert 0.4 <= min(values) < 0.41 and 0.59 < max(values) <= 0.6  # 0.5 x [0.8, 1.2]
    out, _ = ColorJitter(0.5, 0.5, 0.5, 0.1)(_image().float(), target, torch.Generator())
    assert out.dtype == torch.float32 and out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize(
    ("strengths", "message"),
    [((-0.1, 0, 0, 0), "brightness must be >= 0"), ((0, 0, 0, 0.6), r"hue must be in 0\.\.0\.5")],
)
def test_bad_strengths_are_refused(strengths, message) -> None:
    with pytest.raises(ValueError, match=message):
        ColorJitter(*strengths)
