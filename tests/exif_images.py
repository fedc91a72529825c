"""Images stored with an EXIF orientation tag, as phones and cameras save them."""

from __future__ import annotations

from pathlib import Path

from PIL import Image


def save_exif_jpeg(path: Path, size: tuple[int, int], orientation: int) -> None:
    """A blue ``(width, height)`` JPEG with a red left edge (4 px), which shows the turn,
    tagged with the EXIF ``orientation`` (6: shown turned 90 degrees clockwise)."""
    image = Image.new("RGB", size, (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 4, size[1]))
    exif = Image.Exif()
    exif[0x0112] = orientation
    image.save(path, exif=exif, quality=95)
