"""Reading weight files that the package did not write: safely, and with errors that name them.

The one reader behind :func:`~faster_rcnn.backbones.load_backbone_weights` (torchvision
ImageNet classifiers) and :func:`~faster_rcnn.read_torchvision_state_dict` (torchvision
detectors).
"""

from __future__ import annotations

import argparse
import json
import pickle
import pickletools
import struct
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor

from . import file_checksum
from .counted import counted


def read_state_dict(path: str | Path, checkpoint_key: str | None = None) -> dict[str, Tensor]:
    """Named tensors of a ``.safetensors`` file or of a ``torch.save``-d state dict, on the CPU.

    ``torch.save`` files are read with ``weights_only=True``: no code in the file is run.
    Tensors, containers and an ``argparse.Namespace`` (in which training scripts keep
    their arguments) are all such a file may hold.

    Args:
        path: the file.
        checkpoint_key: also accept a training checkpoint, a mapping whose entry of this
            name (``"model"`` in torchvision's reference scripts) is the state dict.

    A file is read as safetensors by its suffix or, whatever its name, by its header (a
    model file saved as ``model.pth`` is one).

    Returns:
        ``{name: tensor}`` as stored, but for the ``module.`` prefix that
        ``DistributedDataParallel`` leaves on every key, which is removed.

    Raises:
        FileNotFoundError: there is no file at ``path``.
        ValueError: the file is unreadable, holds objects that are not plain data (which
            could run code), or holds no state dict of named tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file at {path}")
    if path.suffix.lower() == ".safetensors" or _has_safetensors_header(path):
        return _without_ddp_prefix(_read_safetensors(path))
    return _without_ddp_prefix(_state_dict_in(_torch_load(path), path, checkpoint_key))


def _read_safetensors(path: Path) -> dict[str, Tensor]:
    """The tensors of the safetensors file ``path``, on the CPU."""
    try:
        tensors = load_file(path, device="cpu")
    except SafetensorError as error:
        why = safetensors_failure(path)
        raise ValueError(f"{path} is not a readable safetensors file ({why})") from error
    file_checksum.check_checksum(path)  # a model file of the package's records one
    return tensors


def _torch_load(path: Path) -> object:
    """What the ``torch.save`` file ``path`` holds, read with ``weights_only=True``, on the
    CPU; every way the file can fail to be read is a ``ValueError`` naming it and saying
    why in words (:func:`torch_load_failure`)."""
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            content = torch.load(path, map_location="cpu", weights_only=True)
    except TORCH_LOAD_ERRORS as error:
        why = torch_load_failure(path, error)
        if why == HOLDS_CODE:
            # Never suggest weights_only=False: that would run whatever code the file holds.
            raise ValueError(
                f"{path} {HOLDS_CODE}; refused (export the weights as a plain state dict or "
                "safetensors)"
            ) from error
        raise _not_weights(path, why) from error
    damage = zip_damage(path)  # what torch.load read unchecked: its tensors' bytes
    if damage is not None:
        raise _not_weights(path, damage)
    return content


# What torch.load raises of a file it cannot read. Bytes that are no pickle stop the
# unpickler anywhere: an unknown opcode is a KeyError (naming the byte), a missing
# argument an IndexError, a short one a struct.error. A zip archive cut off within its
# last record is an OSError ("Invalid argument"). A file named .safetensors it reads as
# one.
TORCH_LOAD_ERRORS = (
    SafetensorError,
    pickle.UnpicklingError,
    EOFError,
    KeyError,
    IndexError,
    struct.error,
    RuntimeError,
    ValueError,
    OSError,
)
# What zipfile raises of a damaged archive: its own error, a name that is no UTF-8 (a
# ValueError), an offset out of the file (an OSError), a method or flag garbled into one it
# lacks (NotImplementedError, RuntimeError: "encrypted").
_ZIP_ERRORS = (zipfile.BadZipFile, ValueError, OSError, EOFError, NotImplementedError, RuntimeError)
# Why torch.load(weights_only=True) refuses a file it reads: objects that are not data.
HOLDS_CODE = "holds Python objects besides tensors, which could run code when loaded"
# Why a file that is one whole pickle (pickle.dump's, of anything) is no torch.save file.
PLAIN_PICKLE = "a pickle, not a torch.save file"
# Why a torch.save file that is_cut_off_zip cannot be read.
CUT_OFF_ZIP = "cut off: its zip archive ends before its directory"
# Why a whole torch.save file whose last record's signature is garbled cannot be read.
GARBLED_END = "damaged: its zip archive's end-of-directory record is garbled"
# The pickles a torch.save file of the legacy format (before PyTorch 1.6) begins with:
# a magic number, the format's version, the system's, the content, its tensors' keys.
# The tensors' bytes follow them.
_LEGACY_PICKLES = 5


def torch_load_failure(path: Path, error: Exception) -> str:
    """Why ``torch.load(weights_only=True)`` could not read the file ``path``, having
    raised ``error`` (one of :data:`TORCH_LOAD_ERRORS`), in words: a file cut off is
    said to be, whatever part of the reading ran out of bytes (the unpickler stops with
    an EOFError, a struct.error, an IndexError or a global whose name is cut short)."""
    if isinstance(error, SafetensorError):
        return safetensors_failure(path)
    if path.stat().st_size == 0:
        return "empty"
    if _has_safetensors_header(path):  # named otherwise than .safetensors
        return "a safetensors file, not a torch.save one"
    if _has_garbled_end(path):  # torch: "... failed finding central directory"
        return GARBLED_END
    if is_cut_off_zip(path):  # torch says alike
        return CUT_OFF_ZIP
    before = bytes_before_zip(path)
    if before:  # torch: "PytorchStreamReader failed reading zip archive: ..."
        return f"it has {counted(before, 'byte')} before its zip archive, which torch.load refuses"
    damage = zip_damage(path)
    if damage is not None:  # torch: "PytorchStreamReader failed reading zip archive: ..."
        return damage
    if isinstance(error, EOFError) or _is_cut_off_pickle(path):
        return "cut off: it ends mid-pickle"
    if isinstance(error, RuntimeError) and str(error).startswith("unexpected EOF"):
        return "cut off: it ends within its tensors"  # the legacy format's, after its pickles
    if is_one_pickle(path):  # torch: "Unsupported operand 149", "Invalid magic number"
        return PLAIN_PICKLE
    if isinstance(error, pickle.UnpicklingError) and "global" in str(error).lower():
        return HOLDS_CODE
    if isinstance(error, (RuntimeError, ValueError, OSError)):
        # torch's first sentence: "PytorchStreamReader failed reading zip archive: ...".
        return str(error).splitlines()[0].split(". ")[0]
    return "not a pickle"


def is_cut_off_zip(path: Path) -> bool:
    """Whether ``path`` starts as a zip archive (as ``torch.save`` writes one) but lacks the
    directory that ends one: cut off, as a copy or download stopped midway leaves it (or
    its end record garbled, which :func:`torch_load_failure` tells apart first)."""
    with path.open("rb") as file:
        start = file.read(4)
    return start == b"PK\x03\x04" and not zipfile.is_zipfile(path)


def _has_garbled_end(path: Path) -> bool:
    """Whether ``path`` starts as a zip archive and ends as a whole one does, with its
    directory's end record (22 bytes: after the ZIP64 locator torch.save writes, or after
    the directory), but that record's signature is garbled: damaged, not cut off."""
    size = path.stat().st_size
    if size < 42:
        return False
    with path.open("rb") as file:
        if file.read(4) != b"PK\x03\x04":
            return False
        file.seek(size - 42)
        locator, end = file.read(20), file.read()
    disks, entries, total, length, offset, comment = struct.unpack("<4xL2H2LH", end)
    return (
        end[:4] != b"PK\x05\x06"
        and (disks, comment) == (0, 0)
        and entries == total
        and (locator[:4] == b"PK\x06\x07" or offset + length == size - 22)
    )


def bytes_before_zip(path: Path) -> int:
    """How many bytes precede the zip archive ``path`` holds (its first record's local
    header), as a file written after some other bytes has them; 0 where none, or where
    it holds no readable zip archive."""
    if not zipfile.is_zipfile(path):
        return 0
    try:
        with zipfile.ZipFile(path) as archive:  # its offsets count the bytes before it
            return min((record.header_offset for record in archive.infolist()), default=0)
    except _ZIP_ERRORS:
        return 0


def zip_damage(path: Path, only: str | None = None) -> str | None:
    """How the zip archive ``path`` (as ``torch.save`` writes one) is damaged, in words
    (its directory unreadable, a record failing its checksum or unreadable), naming the
    record as ``torch.save`` names it (``data.pkl``, ``data/3``); ``None`` where it is
    whole, or no zip archive. Every record is read (``only``: just the one so named):
    what torch.load reads unchecked (it reads a tensor's bytes that fail their checksum
    without a word)."""
    if not zipfile.is_zipfile(path):
        return None
    try:
        archive = zipfile.ZipFile(path)
    except _ZIP_ERRORS:  # its directory's records or names garbled
        return "damaged: its zip archive's directory cannot be read"
    with archive:
        for record in archive.infolist():
            name = record.filename.partition("/")[2] or record.filename  # after the archive's
            if only is None or name == only:
                damage = _record_damage(archive, record)
                if damage is not None:
                    return f"damaged: its zip archive's {name} {damage}"
    return None


def _record_damage(archive: zipfile.ZipFile, record: zipfile.ZipInfo) -> str | None:
    """What is wrong with ``record`` of ``archive`` (``"fails its checksum"``, ``"cannot
    be read"``), read whole; ``None``: nothing."""
    try:
        with archive.open(record) as file:
            while file.read(1 << 24):
                pass
    except zipfile.BadZipFile as error:
        if "CRC" not in str(error):
            return "cannot be read"
        # A checksum of 0 is none: torch.save records none where told not to
        # (torch.utils.serialization.config.save.compute_crc32 = False).
        return "fails its checksum" if record.CRC != 0 else None
    except _ZIP_ERRORS:
        return "cannot be read"
    return None


def _is_cut_off_pickle(path: Path) -> bool:
    """Whether ``path`` starts as a pickle (as ``torch.save``'s legacy format does) but
    ends within one of its :data:`_LEGACY_PICKLES` pickles: cut off. The pickles are
    walked opcode by opcode (``pickletools``), nothing in them is run."""
    with path.open("rb") as file:
        if file.read(1) != b"\x80":  # pickle's PROTO opcode, which torch.save writes first
            return False
        file.seek(0)
        try:
            for _ in range(_LEGACY_PICKLES):
                start = file.tell()
                for _ in pickletools.genops(file):
                    pass
        except ValueError:  # an opcode unknown, or its argument or the STOP missing
            # Missing, as the bytes ran out, in a pickle begun (a plain pickle.dump file
            # holds only one).
            return start < file.tell() == path.stat().st_size
    return False


def is_one_pickle(path: Path) -> bool:
    """Whether ``path`` is one whole pickle, as ``pickle.dump`` writes, of any protocol (a
    torch.save file of the legacy format is several, then its tensors' bytes). The pickle
    is walked opcode by opcode (``pickletools``), nothing in it is run."""
    with path.open("rb") as file:
        try:
            for _ in pickletools.genops(file):
                pass
        except ValueError:  # an opcode unknown, or its argument or the STOP missing
            return False
        return file.tell() == path.stat().st_size


def _not_weights(path: Path, why: str) -> ValueError:
    """The refusal of ``path``, which neither ``torch.load`` nor safetensors reads."""
    return ValueError(f"{path} is not a PyTorch checkpoint or safetensors file ({why})")


def _state_dict_in(content: object, path: Path, checkpoint_key: str | None) -> dict[str, Tensor]:
    """The state dict of named tensors that ``content``, read from ``path``, is, or (with
    ``checkpoint_key``) that it holds under that key."""
    if checkpoint_key is not None and isinstance(content, Mapping) and checkpoint_key in content:
        content = content[checkpoint_key]
    if not isinstance(content, Mapping) or not all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in content.items()
    ):
        expected = "a state dict of named tensors"
        if checkpoint_key is not None:
            expected += f" or a checkpoint with a {checkpoint_key!r} entry"
        raise ValueError(f"{path}: expected {expected}, got {type(content).__name__}")
    return dict(content)


def safetensors_failure(path: Path) -> str:
    """Why safetensors refused the file ``path``, in words: it says "header too small" of
    an empty file, "header too large" of a text file, "incomplete metadata, file not
    fully covered" of one with bytes after its tensors', which it refuses too."""
    size = path.stat().st_size
    with path.open("rb") as file:
        start = file.read(9)
        length = int.from_bytes(start[:8], "little")
        header = file.read(max(length - 1, 0)) if start[8:9] == b"{" and 8 + length <= size else b""
    if not start:
        return "empty"
    if start[8:9] != b"{":
        return "no safetensors header at its start"
    if not header:
        return "cut off: it ends within its header"
    try:
        entries = json.loads(b"{" + header).values()
        ends = (entry["data_offsets"][1] for entry in entries if "dtype" in entry)
        end = 8 + length + max(ends, default=0)
    except (ValueError, TypeError, KeyError, IndexError):  # not JSON, or not entries of tensors
        return "its header is damaged"
    if size < end:
        return "cut off: it ends within its tensors"
    if size > end:
        return f"it has {counted(size - end, 'byte')} after its data"
    return "damaged"


def _has_safetensors_header(path: Path) -> bool:
    """Whether ``path`` starts as a safetensors file does: the header's length (8 bytes,
    little-endian, within the file) and the header, a JSON object."""
    with path.open("rb") as file:
        start = file.read(9)
    if len(start) < 9:
        return False
    length = int.from_bytes(start[:8], "little")
    return start[8:9] == b"{" and 8 + length <= path.stat().st_size


def _without_ddp_prefix(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """``state`` without the ``module.`` prefix ``DistributedDataParallel`` puts on every
    key of the model it wraps."""
    if state and all(key.startswith("module.") for key in state):
        return {key.removeprefix("module."): tensor for key, tensor in state.items()}
    return state


def check_finite(tensors: Mapping[str, Tensor], path: str | Path) -> None:
    """Refuse weights read from ``path`` that hold NaN or infinite values: a model of them
    detects nothing (every score NaN), and training from them never recovers.

    Raises:
        ValueError: naming how many tensors are not finite and the first of them.
    """
    bad = [
        key
        for key, tensor in tensors.items()
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())
    ]
    if bad:
        raise ValueError(
            f"{path}: {counted(len(bad), 'tensor holds', 'tensors hold')} NaN or infinite "
            "values (the first, "
            f"{bad[0]}): the training run that wrote them diverged"
        )
