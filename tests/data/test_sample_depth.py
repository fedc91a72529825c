"""12- and 14-bit grey stored in 16-bit PNG and TIFF: white where the file declares it."""

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from faster_rcnn.data.dataset import read_image
from faster_rcnn.data.sample_depth import png_significant_bits

# A 12-bit camera's samples as they are, black to white, with noise in every bit.
TWELVE_BIT = np.array([[0, 1, 7, 1000], [2049, 3003, 4094, 4095]], np.uint16)
IHDR_END = 8 + 8 + 13 + 4  # signature, then IHDR's length, type, 13 bytes and checksum


def png_chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data, checksum."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def save_grey_png(path: Path, grey: np.ndarray, sbit: bytes | None = None) -> Path:
    """``grey`` (``uint16[H, W]``) as a 16-bit grey PNG, with an ``sBIT`` chunk holding
    ``sbit`` after IHDR where given (PIL writes none)."""
    Image.fromarray(grey).save(path)
    if sbit is not None:
        data = path.read_bytes()
        path.write_bytes(data[:IHDR_END] + png_chunk(b"sBIT", sbit) + data[IHDR_END:])
    return path


def grey_divided(grey: np.ndarray, white: int) -> torch.Tensor:
    """``float32[3, H, W]``: ``grey`` divided by ``white``, in three equal channels."""
    divided = torch.from_numpy(grey.astype(np.float32) / np.float32(white))
    return divided.expand(3, *grey.shape)


@pytest.mark.parametrize("bits", [12, 14])
def test_a_png_declaring_its_bits_in_sbit_is_white_at_their_largest_value(
    tmp_path: Path, bits: int
) -> None:
    grey = (TWELVE_BIT << (bits - 12)) | (2 ** (bits - 12) - 1)  # noise in the new bits
    path = save_grey_png(tmp_path / "camera.png", grey, sbit=bytes([bits]))
    assert png_significant_bits(path) == bits
    assert torch.equal(read_image(path), grey_divided(grey, 2**bits - 1))
    assert torch.equal(read_image(path)[:, 1, 3], torch.ones(3))


def test_a_png_without_sbit_keeps_white_at_65535(tmp_path: Path) -> None:
    path = save_grey_png(tmp_path / "camera.png", TWELVE_BIT)
    assert png_significant_bits(path) is None
    assert torch.equal(read_image(path), grey_divided(TWELVE_BIT, 65535))


@pytest.mark.parametrize("brightest", [4095, 255])
def test_sbit_samples_scaled_up_to_16_bits_as_the_png_spec_asks_stay_as_they_are(
    tmp_path: Path, brightest: int
) -> None:
    # Left bit replication of 12-bit samples: the same image, not 16 times brighter; the
    # dark one (every sample below 4096 once scaled up) stays dark too.
    original = (TWELVE_BIT.astype(np.int64) * brightest // 4095).astype(np.uint16)
    scaled = (original << 4) | (original >> 8)
    path = save_grey_png(tmp_path / "scaled.png", scaled, sbit=b"\x0c")
    assert torch.equal(read_image(path), grey_divided(scaled, 65535))
    assert torch.allclose(read_image(path), grey_divided(original, 4095), atol=1 / 65535)


def test_sbit_below_a_sample_is_not_believed(tmp_path: Path) -> None:
    grey = TWELVE_BIT.copy()
    grey[0, 0] = 4097
    path = save_grey_png(tmp_path / "camera.png", grey, sbit=b"\x0c")
    assert torch.equal(read_image(path), grey_divided(grey, 65535))


def test_an_8_bit_png_with_sbit_is_divided_by_255_as_before(tmp_path: Path) -> None:
    grey = np.array([[0, 3, 31, 255]], np.uint8)
    Image.fromarray(grey).save(tmp_path / "grey8.png")
    data = (tmp_path / "grey8.png").read_bytes()
    path = tmp_path / "grey8_sbit.png"
    path.write_bytes(data[:IHDR_END] + png_chunk(b"sBIT", b"\x05") + data[IHDR_END:])
    assert torch.equal(read_image(path), grey_divided(grey, 255))


@pytest.mark.parametrize(
    "sbit",
    [
        b"\x00",  # no significant bits: not a depth
        b"\x10",  # 16: the stored depth
        b"\x11",  # more than the stored depth
        b"",  # empty
        b"\x0c\x0c\x0c\x0c\x0c",  # longer than any colour type's
    ],
)
def test_an_sbit_chunk_that_declares_no_depth_below_16_keeps_65535(
    tmp_path: Path, sbit: bytes
) -> None:
    path = save_grey_png(tmp_path / "camera.png", TWELVE_BIT, sbit=sbit)
    assert png_significant_bits(path) is None
    assert torch.equal(read_image(path), grey_divided(TWELVE_BIT, 65535))


def test_a_truncated_or_corrupt_header_reads_as_no_sbit(tmp_path: Path) -> None:
    data = save_grey_png(tmp_path / "camera.png", TWELVE_BIT, sbit=b"\x0c").read_bytes()
    sbit_at = data.index(b"sBIT") - 4
    bad_checksum = data[: sbit_at + 9] + b"\x00\x00\x00\x00" + data[sbit_at + 13 :]
    cuts = {
        "signature.png": data[:5],
        "ihdr.png": data[:20],
        "chunk_head.png": data[: sbit_at + 6],
        "sbit_data.png": data[: sbit_at + 8],
        "checksum.png": data[: sbit_at + 11],
        "bad_checksum.png": bad_checksum,
        "not_a_png.png": b"GIF89a" + data[6:],
    }
    for name, cut in cuts.items():
        (tmp_path / name).write_bytes(cut)
        assert png_significant_bits(tmp_path / name) is None, name
    assert png_significant_bits(tmp_path / "absent.png") is None
    assert png_significant_bits(tmp_path) is None  # a folder


def test_sbit_after_the_image_data_is_not_where_the_spec_puts_it(tmp_path: Path) -> None:
    data = save_grey_png(tmp_path / "camera.png", TWELVE_BIT).read_bytes()
    iend_at = data.index(b"IEND") - 4
    path = tmp_path / "late.png"
    path.write_bytes(data[:iend_at] + png_chunk(b"sBIT", b"\x0c") + data[iend_at:])
    assert png_significant_bits(path) is None
    assert torch.equal(read_image(path), grey_divided(TWELVE_BIT, 65535))


def test_a_turned_png_keeps_its_sbit_depth(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned 90 degrees clockwise
    Image.fromarray(TWELVE_BIT).save(tmp_path / "turned.png", exif=exif)
    data = (tmp_path / "turned.png").read_bytes()
    path = tmp_path / "turned_sbit.png"
    path.write_bytes(data[:IHDR_END] + png_chunk(b"sBIT", b"\x0c") + data[IHDR_END:])
    upright = np.ascontiguousarray(np.rot90(TWELVE_BIT, k=-1))
    assert torch.equal(read_image(path, exif_transpose=True), grey_divided(upright, 4095))


@pytest.mark.parametrize("tag", [281, 341])  # MaxSampleValue, SMaxSampleValue
@pytest.mark.parametrize(("declared", "white"), [(4095, 4095), (16383, 16383), (3000, 65535)])
def test_a_tiff_declaring_a_max_sample_value_of_2_to_the_bits_less_1_is_white_there(
    tmp_path: Path, tag: int, declared: int, white: int
) -> None:
    # 3000 is a statistic of the pixels (the TIFF spec's reading of the field), not a
    # depth: the image stays as dark as it is.
    grey = np.minimum(TWELVE_BIT, 3000)
    Image.fromarray(grey).save(tmp_path / "camera.tif", tiffinfo={tag: declared})
    assert torch.equal(read_image(tmp_path / "camera.tif"), grey_divided(grey, white))


def test_a_tiff_without_a_max_sample_value_keeps_65535(tmp_path: Path) -> None:
    Image.fromarray(TWELVE_BIT).save(tmp_path / "camera.tif")
    assert torch.equal(read_image(tmp_path / "camera.tif"), grey_divided(TWELVE_BIT, 65535))
