"""Reading weight files the package did not write: only plain data, and one-line errors."""

import os
import pickle

import pytest
import torch
from safetensors.torch import save_file

from faster_rcnn.state_dict_io import read_state_dict
from zip_records import zip_record_start


class RunsCode:
    """Unpickling this calls os.getpid (a stand-in for any code a crafted file runs)."""

    def __reduce__(self):
        return (os.getpid, ())


def test_a_plain_state_dict_is_read(tmp_path):
    torch.save({"w": torch.ones(2)}, tmp_path / "w.pth")
    assert torch.equal(read_state_dict(tmp_path / "w.pth")["w"], torch.ones(2))


def test_a_file_that_would_run_code_is_refused_without_running_it(tmp_path):
    path = tmp_path / "crafted.pth"
    torch.save({"w": torch.ones(2), "payload": RunsCode()}, path)
    with pytest.raises(ValueError) as info:
        read_state_dict(path)
    message = str(info.value)
    assert "could run code when loaded; refused" in message and "\n" not in message
    assert "weights_only=False" not in message


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("junk.pth", b"not a zip"),
        ("junk.safetensors", b"\x00" * 16),
        # Text saved as weights: its first byte is an unknown pickle opcode (a KeyError).
        ("hello.pth", b"hello"),
        ("notes.pth", b"hi\n"),
    ],
)
def test_unreadable_files_get_one_line(tmp_path, name, content):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(ValueError, match=f"{name} is not a") as info:
        read_state_dict(tmp_path / name)
    assert "\n" not in str(info.value)
    if name in ("hello.pth", "notes.pth"):  # said so, not by the code of the first byte
        assert str(info.value).endswith(
            "is not a PyTorch checkpoint or safetensors file (not a pickle)"
        )


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
@pytest.mark.parametrize("content", [{"w": torch.ones(2)}, None, [1, 2]])
def test_a_plain_pickle_is_said_to_be_one_not_a_torch_save_file(tmp_path, protocol, content):
    """pickle.dump's file was "not a pickle" (torch: "Unsupported operand 149"), "Invalid
    magic number; corrupt file?" (the legacy format's first pickle expected), or, of
    tensors in protocols 1 to 3, a file holding code."""
    path = tmp_path / "w.pth"
    path.write_bytes(pickle.dumps(content, protocol=protocol))
    with pytest.raises(ValueError) as info:
        read_state_dict(path)
    assert str(info.value) == (
        f"{path} is not a PyTorch checkpoint or safetensors file (a pickle, not a torch.save file)"
    )


@pytest.mark.parametrize(
    ("name", "cut", "why"),
    [
        # 8 bytes of header length, then "{": the length runs past the cut.
        ("w.safetensors", 20, "cut off: it ends within its header"),
        ("w.safetensors", -10, "cut off: it ends within its tensors"),
        ("w.safetensors", 0, "empty"),
        # torch's own words: "failed finding central directory".
        ("w.pth", -10, "cut off: its zip archive ends before its directory"),
    ],
)
def test_a_cut_off_weights_file_is_said_to_be_cut_off(tmp_path, name, cut, why):
    path = tmp_path / name
    weights = {"w": torch.zeros(100)}
    if path.suffix == ".safetensors":
        save_file(weights, path)
        kind = "a readable safetensors file"
    else:
        torch.save(weights, path)
        kind = "a PyTorch checkpoint or safetensors file"
    path.write_bytes(path.read_bytes()[:cut])
    with pytest.raises(ValueError) as info:
        read_state_dict(path)
    assert str(info.value) == f"{path} is not {kind} ({why})"


def damaged_zip(data: bytes, damage: str) -> bytes:
    """The zip archive ``data``, as torch.save wrote it, with ``damage``: a byte of the
    record ``data.pkl`` or of the first tensor flipped, the signature of the central
    directory's first entry, of the first tensor's local header or of the directory's end
    record garbled."""
    damaged = bytearray(data)
    offset = {
        # Within data.pkl, a protocol 2 pickle after its local header (the first name).
        "flipped": data.index(b"\x80\x02", data.index(b"data.pkl")) + 5,
        "directory": data.index(b"PK\x01\x02"),
        "header": data.index(b"PK\x03\x04", data.index(b"data/0") - 40),
        "end": data.rindex(b"PK\x05\x06"),
        "tensor": zip_record_start(data, "data/0") + 5,
    }[damage]
    damaged[offset] ^= 0xFF
    return bytes(damaged)


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        ("flipped", "damaged: its zip archive's data.pkl fails its checksum"),
        ("directory", "damaged: its zip archive's directory cannot be read"),
        ("header", "damaged: its zip archive's data/0 cannot be read"),
        ("end", "damaged: its zip archive's end-of-directory record is garbled"),
        ("tensor", "damaged: its zip archive's data/0 fails its checksum"),  # was read
    ],
)
def test_a_damaged_checkpoint_is_said_to_be_damaged_where(tmp_path, damage, why):
    """torch's first sentence was shown: "PytorchStreamReader failed reading zip archive:
    invalid header or archive is corrupted", "'utf-8' codec can't decode byte 0x9e", or,
    of a byte flipped in its pickle, "not a pickle"; of a whole file whose end record's
    signature is garbled, "cut off"."""
    path = tmp_path / "w.pth"
    torch.save({"w": torch.zeros(100)}, path)
    path.write_bytes(damaged_zip(path.read_bytes(), damage))
    with pytest.raises(ValueError) as info:
        read_state_dict(path)
    assert str(info.value) == f"{path} is not a PyTorch checkpoint or safetensors file ({why})"


def test_a_checkpoint_saved_without_checksums_is_read(tmp_path, monkeypatch):
    """torch.save records a checksum of 0 for every record where told to compute none:
    none to check the bytes against, not a mismatch."""
    monkeypatch.setattr(torch.utils.serialization.config.save, "compute_crc32", False)
    path = tmp_path / "w.pth"
    torch.save({"w": torch.arange(100.0)}, path)
    path.write_bytes(damaged_zip(path.read_bytes(), "tensor"))
    changed = read_state_dict(path)["w"]
    assert torch.equal(changed != torch.arange(100.0), torch.arange(100) == 1)


def test_a_checkpoint_after_other_bytes_is_said_to_have_them(tmp_path):
    """A whole torch.save zip after 32 other bytes (a header some tool wrote, a file
    appended to) was "not a pickle": zipfile reads such an archive, torch.load not."""
    path = tmp_path / "w.pth"
    torch.save({"w": torch.zeros(100)}, path)
    path.write_bytes(b"JUNK" * 8 + path.read_bytes())
    with pytest.raises(ValueError) as info:
        read_state_dict(path)
    assert str(info.value) == (
        f"{path} is not a PyTorch checkpoint or safetensors file (it has 32 bytes before its "
        "zip archive, which torch.load refuses)"
    )


def test_a_larger_checkpoint_cut_off_near_its_end_is_said_to_be_cut_off(tmp_path):
    """Past some size, a zip archive cut within its last record made torch raise
    OSError(EINVAL), which the command line printed alone: "[Errno 22] Invalid argument"."""
    path = tmp_path / "w.pth"
    torch.save({"w": torch.zeros(10_000)}, path)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ValueError) as info:
        read_state_dict(path)
    assert str(info.value) == (
        f"{path} is not a PyTorch checkpoint or safetensors file (cut off: its zip archive ends "
        "before its directory)"
    )


def test_a_legacy_format_checkpoint_cut_off_anywhere_is_said_to_be_cut_off(tmp_path):
    """torch.save's format before PyTorch 1.6 (pickles, then the tensors' bytes) cut off:
    within its pickles torch's unpickler stopped with an EOFError, an IndexError, a
    struct.error (a traceback) or a global whose name the cut shortened (refused as code);
    within its tensors with "unexpected EOF, expected 10 more bytes"."""
    whole = tmp_path / "whole.pth"
    torch.save({"model": {"w": torch.zeros(100)}}, whole, _use_new_zipfile_serialization=False)
    data, path = whole.read_bytes(), tmp_path / "cut.pth"
    tensors = len(data) - 400 - 8  # 100 float32, after their count (8 bytes)
    said = set()
    for cut in range(1, len(data)):
        path.write_bytes(data[:cut])
        with pytest.raises(ValueError) as info:
            read_state_dict(path, checkpoint_key="model")
        where = "mid-pickle" if cut < tensors else "within its tensors"
        assert str(info.value) == (
            f"{path} is not a PyTorch checkpoint or safetensors file (cut off: it ends {where})"
        )
        said.add(where)
    assert said == {"mid-pickle", "within its tensors"}
    assert torch.equal(read_state_dict(whole, checkpoint_key="model")["w"], torch.zeros(100))
