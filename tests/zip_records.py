"""Where a record's bytes lie in a zip archive, as torch.save writes one."""

import io
import struct
import zipfile


def zip_record_start(data: bytes, name: str) -> int:
    """Where the bytes of the record whose name ends in ``name`` start in the zip archive
    ``data``: after its local header (30 bytes, then its name and extra field)."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        record = next(r for r in archive.infolist() if r.filename.endswith(name))
    offset = record.header_offset
    name_length, extra_length = struct.unpack("<2H", data[offset + 26 : offset + 30])
    return offset + 30 + name_length + extra_length
