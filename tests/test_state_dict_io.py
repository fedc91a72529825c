"""Reading weight files the package did not write: only plain data, and one-line errors."""

import os

import pytest
import torch
from safetensors.torch import save_file

from faster_rcnn.state_dict_io import read_state_dict


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
