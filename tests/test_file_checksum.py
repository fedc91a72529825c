"""A model file carries the CRC-32 of its bytes: a damaged copy is refused, not loaded."""

import io
import json
import re
import zlib
from pathlib import Path

import pytest
import safetensors.torch
import torch
from safetensors import safe_open

from faster_rcnn import FasterRCNN, file_checksum
from faster_rcnn.file_checksum import check_checksum, digits_after
from faster_rcnn.models import small_config
from faster_rcnn.state_dict_io import read_state_dict
from faster_rcnn.train.checkpoint import (
    load_model,
    read_model_config,
    save_model,
)


def tiny_model() -> FasterRCNN:
    torch.manual_seed(0)
    return FasterRCNN.from_config(small_config(4).replace(transform={"min_size": (64,)}))


def recorded_crc(path: Path) -> str:
    with safe_open(str(path), framework="pt") as file:
        return file.metadata()["crc32"]


def crc_of(data: bytes, recorded: str) -> str:
    """The CRC-32 of the model file ``data`` with its checksum's digits as zeros, computed
    here on its own: the header's one ``"crc32":"<digits>"``."""
    entry = f'"crc32":"{recorded}"'.encode()
    assert data.count(entry) == 1
    blank = data.replace(entry, b'"crc32":"00000000"')
    return f"{zlib.crc32(blank):08x}"


def test_a_model_file_records_the_crc32_of_its_bytes(tmp_path):
    path = tmp_path / "m.safetensors"
    save_model(tiny_model(), path)
    recorded = recorded_crc(path)
    assert re.fullmatch("[0-9a-f]{8}", recorded)
    assert recorded == crc_of(path.read_bytes(), recorded)
    check_checksum(path)


def tensor_byte(path: Path, name: str) -> int:
    """Where the first byte of the tensor ``name`` of the safetensors file ``path`` lies."""
    data = path.read_bytes()
    length = int.from_bytes(data[:8], "little")
    return 8 + length + json.loads(data[8 : 8 + length])[name]["data_offsets"][0]


def damage(path: Path, offset: int, flip: int = 0x01) -> str:
    """Flip bits of the byte at ``offset`` of ``path``; the CRC-32 its bytes then give."""
    data = bytearray(path.read_bytes())
    data[offset] ^= flip
    path.write_bytes(data)
    return crc_of(bytes(data), recorded_crc(path))


def assert_refused(load, path: Path, crc: str, recorded: str) -> None:
    with pytest.raises(ValueError) as info:
        load(path)
    assert str(info.value) == (
        f"{path} is damaged: its bytes give the CRC-32 {crc}, not the {recorded} written "
        "with them (copy it again, or use another checkpoint)"
    )


@pytest.mark.parametrize("load", [load_model, read_state_dict])
def test_a_bit_flipped_in_a_tensor_is_refused(tmp_path, load):
    """Before, both loaded the changed weight without a word."""
    path = tmp_path / "m.safetensors"
    save_model(tiny_model(), path)
    recorded = recorded_crc(path)
    name = "roi_heads.box_predictor.cls_score.weight"
    crc = damage(path, tensor_byte(path, name) + 1, flip=0x40)
    with safe_open(str(path), framework="pt") as file:  # what was read without a word
        changed = file.get_tensor(name).flatten()[0] - tiny_model().state_dict()[name].flatten()[0]
    assert changed != 0
    assert_refused(load, path, crc, recorded)


def test_a_changed_setting_in_the_header_is_refused(tmp_path):
    """The config is in the header, which the checksum covers: a digit changed there was
    a model of other settings."""
    path = tmp_path / "m.safetensors"
    save_model(tiny_model(), path)
    recorded, data = recorded_crc(path), path.read_bytes()
    offset = data.index(b'\\"nms_thresh\\": 0.7') + len(b'\\"nms_thresh\\": 0.')
    crc = damage(path, offset, flip=ord("7") ^ ord("3"))  # 0.7 -> 0.3
    assert read_model_config(path).rpn.nms_thresh == 0.3  # what was read without a word
    assert_refused(load_model, path, crc, recorded)


@pytest.mark.parametrize("load", [load_model, read_model_config])
def test_a_damaged_field_name_in_the_header_is_said_as_damage(tmp_path, load):
    """A changed letter of a field name made the config invalid, and the file was
    refused for "unknown RPNConfig field", as if its settings needed mending."""
    path = tmp_path / "m.safetensors"
    save_model(tiny_model(), path)
    recorded, data = recorded_crc(path), path.read_bytes()
    offset = data.index(b'\\"nms_thresh\\"') + len(b'\\"nms_thres')
    crc = damage(path, offset, flip=ord("h") ^ ord("x"))  # nms_thresh -> nms_thresx
    assert_refused(load, path, crc, recorded)


def test_a_model_file_that_records_no_checksum_still_loads(tmp_path):
    """Files of older versions, written before the checksum, and damaged or not: nothing
    to check them against."""
    model, path = tiny_model(), tmp_path / "m.safetensors"
    metadata = {"format": "faster-rcnn/1", "config": model.config.to_json()}
    safetensors.torch.save_model(model, str(path), metadata=metadata)
    loaded = load_model(path)
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name


def test_entries_are_found_once_wherever_the_chunks_cut_them(monkeypatch):
    """An ONNX export's entry is looked for in chunks of the file: a chunk's end through
    an entry (chunks of every size, here) still finds it, and finds it once; seven
    digits are no entry."""
    data = b"xx<k>12345678yyy<k>0000000" + b"<k>00000000" + b"<k>zz"
    for chunk in range(1, len(data) + 1):
        monkeypatch.setattr(file_checksum, "_CHUNK", chunk)
        assert digits_after(io.BytesIO(data), b"<k>") == [5, 29], chunk
