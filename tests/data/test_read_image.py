"""Decoding image files: every depth to 0..1 RGB, and bad files refused in one line."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from faster_rcnn.data.dataset import read_image, read_image_size


def test_8_bit_rgb_is_divided_by_255(tmp_path: Path) -> None:
    pixels = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) * 14
    Image.fromarray(pixels).save(tmp_path / "rgb.png")
    image = read_image(tmp_path / "rgb.png")
    assert image.shape == (3, 2, 3) and image.dtype == torch.float32
    expected = torch.from_numpy(pixels).permute(2, 0, 1).float() / 255
    assert torch.equal(image, expected)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "P", "CMYK", "1"])
def test_8_bit_modes_give_pils_rgb_divided_by_255(tmp_path: Path, mode: str) -> None:
    pixels = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3) * 4
    image = Image.fromarray(pixels).convert(mode)
    path = tmp_path / ("image.jpg" if mode == "CMYK" else "image.png")
    image.save(path)
    with Image.open(path) as saved:
        expected = torch.from_numpy(np.array(saved.convert("RGB"))).permute(2, 0, 1).float() / 255
    assert torch.equal(read_image(path), expected)


def test_16_bit_grey_is_scaled_by_its_depth_not_clipped_white(tmp_path: Path) -> None:
    grey = np.array([[0, 16384, 32768, 65535]], dtype=np.uint16)
    Image.fromarray(grey).save(tmp_path / "grey16.png")
    image = read_image(tmp_path / "grey16.png")
    assert image.shape == (3, 1, 4)
    assert torch.allclose(image[0], torch.tensor([[0.0, 0.25, 0.5, 1.0]]), atol=1e-4)
    assert torch.equal(image[0], image[2])


@pytest.mark.parametrize(
    ("pixels", "expected"),
    [
        # Float TIFFs in 0..1 and in 0..255 (a NaN is black), and 32-bit integers beyond
        # 16 bits, which take their own brightest pixel as white.
        (np.array([[0.0, 0.25, 0.5, 1.0]], np.float32), [0.0, 0.25, 0.5, 1.0]),
        (np.array([[0.0, 63.75, np.nan, 255.0]], np.float32), [0.0, 0.25, 0.0, 1.0]),
        (np.array([[0, 2**18, 2**19, 2**20]], np.int32), [0.0, 0.25, 0.5, 1.0]),
    ],
)
def test_32_bit_grey_is_scaled_by_the_range_it_is_stored_in(
    tmp_path: Path, pixels: np.ndarray, expected: list[float]
) -> None:
    Image.fromarray(pixels).save(tmp_path / "grey32.tif")
    image = read_image(tmp_path / "grey32.tif")
    assert image.shape == (3, 1, 4)
    assert torch.allclose(image[1], torch.tensor([expected]), atol=1e-6)


def test_a_decompression_bomb_is_refused_in_one_line(tmp_path: Path, monkeypatch) -> None:
    Image.new("RGB", (300, 300)).save(tmp_path / "big.png")
    # A limit of 20000 pixels stands for PIL's 89 million: the file declares 90000.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 20000)
    for read in (read_image, read_image_size):
        with pytest.raises(ValueError, match=r"refusing image .*big.png: .* decompression bomb"):
            read(tmp_path / "big.png")


def test_truncated_and_non_image_files_name_themselves(tmp_path: Path) -> None:
    Image.new("RGB", (64, 64), "red").save(tmp_path / "whole.jpg")
    data = (tmp_path / "whole.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.png").write_text("not an image")
    for name in ("cut.jpg", "text.png"):
        with pytest.raises(ValueError, match=f"cannot read image .*{name}") as info:
            read_image(tmp_path / name)
        assert "\n" not in str(info.value)
    with pytest.raises(FileNotFoundError, match=r"absent\.png does not exist"):
        read_image(tmp_path / "absent.png")


def test_a_str_path_is_read_as_its_path(tmp_path: Path) -> None:
    """read_image is public (faster_rcnn.data): a script's str path is read, not an
    AttributeError; its errors name the file as a Path's do."""
    pixels = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) * 14
    Image.fromarray(pixels).save(tmp_path / "rgb.png")
    assert torch.equal(read_image(str(tmp_path / "rgb.png")), read_image(tmp_path / "rgb.png"))
    assert read_image_size(str(tmp_path / "rgb.png")) == (2, 3)
    with pytest.raises(FileNotFoundError, match=r"^image file .*absent\.png does not exist$"):
        read_image(str(tmp_path / "absent.png"))
