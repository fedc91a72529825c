"""Decoding image files: every depth to 0..1 RGB, and bad files refused in one line."""

import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import GifImagePlugin, Image, PngImagePlugin

from exif_images import move_after_image_data, png_chunks, save_exif_png
from faster_rcnn.data.dataset import (
    as_float_image,
    image_frames,
    read_image,
    read_image_header,
    read_image_levels,
    read_image_size,
    read_upright_size,
    warn_of_later_frames,
)


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


def test_8_bit_files_decode_to_their_uint8_levels_and_deeper_grey_to_float(
    tmp_path: Path,
) -> None:
    pixels = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) * 14
    Image.fromarray(pixels).save(tmp_path / "rgb.png")
    levels = read_image_levels(tmp_path / "rgb.png")
    assert levels.dtype == torch.uint8 and torch.equal(
        levels, torch.from_numpy(pixels).permute(2, 0, 1)
    )
    Image.fromarray(np.array([[0, 65535]], dtype=np.uint16)).save(tmp_path / "grey16.png")
    grey = read_image_levels(tmp_path / "grey16.png")
    assert grey.dtype == torch.float32 and grey[:, 0].tolist() == [[0.0, 1.0]] * 3


def test_as_float_image_gives_every_level_as_the_float_decoder_did() -> None:
    # The float32 quotient numpy gave each level before the readers kept levels.
    levels = torch.arange(256, dtype=torch.uint8).reshape(1, 16, 16)
    expected = np.arange(256, dtype=np.float32).reshape(1, 16, 16) / np.float32(255)
    scaled = as_float_image(levels)
    assert scaled.dtype == torch.float32
    assert np.array_equal(scaled.numpy().view(np.int32), expected.view(np.int32))
    image = torch.rand(3, 4, 5)
    assert as_float_image(image) is image  # a float image as it is
    # Other integer levels are not on 255's scale: int16 was divided by 255 silently.
    with pytest.raises(TypeError, match="expected uint8 levels or a floating point image"):
        as_float_image(levels.to(torch.int16))


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


def test_unsigned_32_bit_grey_tiff_samples_from_2_31_up_are_not_black(tmp_path: Path) -> None:
    # PIL writes mode I as signed (SampleFormat 2) and reads SampleFormat 1, unsigned,
    # as signed too: the tag's entry (SHORT, count 1) is set to 1 in the file.
    pixels = np.array([[0, 2**30, 2**31, 2**32 - 1]], np.uint32)
    Image.fromarray(pixels.view(np.int32)).save(tmp_path / "signed.tif")
    signed = (tmp_path / "signed.tif").read_bytes()
    entry = b"\x53\x01\x03\x00\x01\x00\x00\x00\x02\x00"
    assert signed.count(entry) == 1
    (tmp_path / "unsigned.tif").write_bytes(signed.replace(entry, entry[:-2] + b"\x01\x00"))
    image = read_image(tmp_path / "unsigned.tif")
    assert torch.allclose(image[0], torch.tensor([[0.0, 0.25, 0.5, 1.0]]), atol=1e-6)
    # Signed, the same bits are 0, 2**30, -2**31 and -1: the negative ones black.
    image = read_image(tmp_path / "signed.tif")
    assert torch.equal(image[0], torch.tensor([[0.0, 1.0, 0.0, 0.0]]))


def test_a_decompression_bomb_is_refused_in_one_line(tmp_path: Path, monkeypatch) -> None:
    Image.new("RGB", (300, 300)).save(tmp_path / "big.png")
    # A limit of 20000 pixels stands for PIL's 89 million: the file declares 90000.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 20000)
    for read in (read_image, read_image_size):
        with pytest.raises(
            ValueError, match=r"refusing image .*big.png: .* decompression bomb.*; downscale it"
        ):
            read(tmp_path / "big.png")


def test_an_image_in_pils_warning_range_is_read_without_its_warning(
    tmp_path: Path, monkeypatch
) -> None:
    Image.new("RGB", (200, 150), "red").save(tmp_path / "aerial.png")
    # A limit of 20000 pixels stands for PIL's 89 million: the file's 30000 are more, but
    # under twice as many, where PIL warns of a "decompression bomb DOS attack" naming
    # no file. The image is the user's: it is read, without a word.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 20000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        image = read_image(tmp_path / "aerial.png")
        assert read_image_size(tmp_path / "aerial.png") == (150, 200)
    assert image.shape == (3, 150, 200)
    assert torch.equal(image[:, 0, 0], torch.tensor([1.0, 0.0, 0.0]))


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


def test_an_empty_file_and_a_heic_photo_say_what_they_are(tmp_path: Path) -> None:
    (tmp_path / "empty.jpg").write_bytes(b"")
    # An iPhone photo starts with an ISO media "ftyp" box naming the HEIC brands.
    (tmp_path / "photo.heic").write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic")
    (tmp_path / "text.jpg").write_text("not an image")
    reasons = {
        "empty.jpg": "the file is empty (0 bytes)",
        "photo.heic": "a HEIC/HEIF photo, which PIL cannot decode: convert it to JPEG or PNG",
        "text.jpg": "not in an image format PIL knows",
    }
    for name, reason in reasons.items():
        for read in (read_image, read_image_size):
            with pytest.raises(ValueError) as info:
                read(tmp_path / name)
            assert str(info.value) == f"cannot read image {tmp_path / name}: {reason}"


def test_a_str_path_is_read_as_its_path(tmp_path: Path) -> None:
    """read_image is public (faster_rcnn.data): a script's str path is read, not an
    AttributeError; its errors name the file as a Path's do."""
    pixels = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) * 14
    Image.fromarray(pixels).save(tmp_path / "rgb.png")
    assert torch.equal(read_image(str(tmp_path / "rgb.png")), read_image(tmp_path / "rgb.png"))
    assert read_image_size(str(tmp_path / "rgb.png")) == (2, 3)
    with pytest.raises(FileNotFoundError, match=r"^image file .*absent\.png does not exist$"):
        read_image(str(tmp_path / "absent.png"))


def _png_with_exif(tmp_path: Path, where: str) -> Path:
    """A PNG stored 40 wide and 20 high with EXIF orientation 6 in an ``eXIf`` chunk
    ``where`` ("before" or "after" its image data), or with no EXIF ("none")."""
    path = tmp_path / f"{where}.png"
    if where == "none":
        Image.new("RGB", (40, 20)).save(path)
        return path
    save_exif_png(path, (40, 20), orientation=6)
    if where == "after":
        move_after_image_data(path, b"eXIf")
    return path


@pytest.mark.parametrize(("where", "orientation"), [("before", 6), ("after", 6), ("none", 1)])
def test_a_pngs_orientation_is_read_wherever_its_exif_is_without_decoding_it(
    tmp_path: Path, monkeypatch, where: str, orientation: int
) -> None:
    """PIL's getexif decodes a PNG whose EXIF is not before its image data (to look for
    it after): reading the header of each of 5,000 PNGs spent 12 of 21 s so."""
    path = _png_with_exif(tmp_path, where)
    with Image.open(path) as image:
        assert image.getexif().get(0x0112, 1) == orientation  # as PIL finds it, decoding
    decoded = []
    load = PngImagePlugin.PngImageFile.load
    monkeypatch.setattr(
        PngImagePlugin.PngImageFile, "load", lambda image: decoded.append(image) or load(image)
    )
    assert read_image_header(path) == (20, 40, orientation)
    assert read_upright_size(path) == ((40, 20) if orientation == 6 else (20, 40))
    assert decoded == []
    # Decoding it turned after the header was read finds the same orientation.
    assert read_image(path, exif_transpose=True).shape == (3, *read_upright_size(path))


def test_a_pngs_xmp_orientation_after_its_image_data_is_read_as_pil_reads_it(
    tmp_path: Path,
) -> None:
    """Without EXIF, PIL takes the orientation from XMP (an ``iTXt`` chunk) wherever it is."""
    info = PngImagePlugin.PngInfo()
    xmp = '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:Description tiff:Orientation="8"/>'
    info.add_itxt("XML:com.adobe.xmp", xmp + "</x:xmpmeta>")
    Image.new("RGB", (40, 20)).save(tmp_path / "xmp.png", pnginfo=info)
    move_after_image_data(tmp_path / "xmp.png", b"iTXt")
    with Image.open(tmp_path / "xmp.png") as image:
        assert image.getexif()[0x0112] == 8
    assert read_image_header(tmp_path / "xmp.png") == (20, 40, 8)


@pytest.mark.parametrize(
    ("where", "cut", "orientation"),
    [
        # Cut in the image data: decoding fails, and with it PIL's search after it; EXIF
        # before the image data is read without decoding, as it was.
        ("after", "image data", 1),
        ("before", "image data", 6),
        # Cut in the eXIf chunk: PIL fails to read it.
        ("after", "exif", 1),
        # Only the IEND chunk lost: PIL has read the EXIF before it.
        ("after", "end", 6),
        # An eXIf chunk that holds no EXIF block: PIL cannot parse it.
        ("after", "garbled", 1),
    ],
)
def test_a_truncated_or_garbled_png_has_the_orientation_decoding_it_finds(
    tmp_path: Path, where: str, cut: str, orientation: int
) -> None:
    path = _png_with_exif(tmp_path, where)
    chunks = png_chunks(path.read_bytes())
    kinds = [chunk[4:8] for chunk in chunks]
    idat, exif = kinds.index(b"IDAT"), kinds.index(b"eXIf")
    if cut == "garbled":
        # Same length, and a right CRC: PIL reads the chunk and finds no TIFF header.
        data = b"\xff" * (len(chunks[exif]) - 12)
        crc = zlib.crc32(b"eXIf" + data).to_bytes(4, "big")
        chunks[exif] = chunks[exif][:8] + data + crc
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"".join(chunks))
    else:
        cut_chunk = {"image data": idat, "exif": exif, "end": len(chunks) - 1}[cut]
        end = 8 + sum(map(len, chunks[:cut_chunk])) + (len(chunks[cut_chunk]) // 2)
        path.write_bytes(path.read_bytes()[:end])
    with Image.open(path) as image:
        try:
            found = image.getexif().get(0x0112, 1)
        except Exception:
            found = 1
    assert found == orientation  # what the orientation read by decoding, as it was, gave
    assert read_image_header(path) == (20, 40, orientation)
    if cut == "image data":
        with pytest.raises(ValueError, match=rf"^cannot read image .*{where}\.png: [^\n]*$"):
            read_image(path)


def save_frames(path: Path, count: int, size: tuple[int, int] = (24, 16)) -> Path:
    """A file of ``count`` frames (animated GIF or PNG, multi-page TIFF, by its suffix),
    frame ``k`` filled with grey ``40 * k``."""
    frames = [Image.new("RGB", size, (40 * k,) * 3) for k in range(count)]
    frames[0].save(path, save_all=True, append_images=frames[1:])
    return path


@pytest.mark.parametrize("suffix", [".gif", ".png", ".tif"])
def test_image_frames_counts_an_animated_or_multi_page_files_frames(tmp_path, suffix) -> None:
    """GIF, APNG and TIFF of 3 frames count 3, of which read_image reads the first (black);
    a still image of each counts 1."""
    path = save_frames(tmp_path / f"three{suffix}", 3)
    assert image_frames(path) == 3
    assert float(read_image(path).max()) == 0.0
    assert image_frames(save_frames(tmp_path / f"one{suffix}", 1)) == 1


def test_image_frames_asks_no_frame_count_of_a_still_image(tmp_path, monkeypatch) -> None:
    """Pillow counts a GIF's frames by seeking through the whole file: only a file that
    ``is_animated`` says holds more is asked its ``n_frames``."""
    still = save_frames(tmp_path / "still.gif", 1)
    animated = save_frames(tmp_path / "animated.gif", 2)

    def counted_frames(image: GifImagePlugin.GifImageFile) -> int:
        raise AssertionError(f"n_frames asked of {image.filename}")

    monkeypatch.setattr(GifImagePlugin.GifImageFile, "n_frames", property(counted_frames))
    assert image_frames(still) == 1
    with pytest.raises(AssertionError, match=r"n_frames asked of .*animated\.gif"):
        image_frames(animated)


def test_warn_of_later_frames_names_the_file_and_its_frames(tmp_path) -> None:
    path = save_frames(tmp_path / "a.gif", 4)
    with pytest.warns(UserWarning) as warned:
        warn_of_later_frames(path, "detected")
    assert [str(w.message) for w in warned] == [
        f"{path}: only the first of its 4 frames is detected"
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_of_later_frames(save_frames(tmp_path / "b.gif", 1), "detected")
