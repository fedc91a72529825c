"""The picture files the commands write: their names, and their format by its suffix.

A picture named by the user is written in the format its suffix names, where PIL writes
it (``--out x.jpg`` gives ``x.jpg``, its companions ``x_proposals.jpg``); a name without
a suffix is a PNG, and any other suffix is refused before any work. Every command that
writes pictures names them, and writes them, through this module.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

# The suffixes a picture may have, each with the PIL format that writes it.
FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
}
DEFAULT_SUFFIX = ".png"
# Formats without an alpha channel: their pictures are written as RGB.
WITHOUT_ALPHA = {"JPEG"}
# What follows the name of an image's detections picture in that of its proposals.
PROPOSALS = "_proposals"


def picture_path(path: Path, option: str = "") -> Path:
    """``path`` as a picture file: as given where its suffix is a picture format's
    (:data:`FORMATS`, in any case), with :data:`DEFAULT_SUFFIX` added where it has none.

    Raises:
        ValueError: another suffix, naming the accepted ones (and ``option``, the
            command-line option that gave ``path``, where given).
    """
    if not path.suffix:
        return path.with_name(path.name + DEFAULT_SUFFIX)
    if path.suffix.lower() not in FORMATS:
        accepted = ", ".join(FORMATS)
        named = f"{option} {path}" if option else str(path)
        raise ValueError(f"{named}: a picture is written as {accepted}, not {path.suffix}")
    return path


def image_pictures(picture: Path, proposals: bool, detections: str = "") -> list[Path]:
    """The pictures of one image, named after ``picture`` and in its format: its
    detections (``detections`` after the name's stem) and, with ``proposals``, its
    proposals (:data:`PROPOSALS` after it): ``out/a.jpg`` -> ``out/a.jpg``,
    ``out/a_proposals.jpg``."""
    labels = [detections, PROPOSALS] if proposals else [detections]
    return [picture.with_name(f"{picture.stem}{label}{picture.suffix}") for label in labels]


def save_picture(picture: Image.Image, path: Path, png_level: int = 6) -> Path:
    """Write ``picture`` to ``path`` (:func:`picture_path`) in the format of its suffix,
    as RGB where that format holds no alpha, a PNG compressed at zlib level ``png_level``
    (0-9; PIL's default 6); returns the path written."""
    path = picture_path(path)
    image_format = FORMATS[path.suffix.lower()]
    if image_format in WITHOUT_ALPHA and picture.mode != "RGB":
        picture = picture.convert("RGB")
    options = {"compress_level": png_level} if image_format == "PNG" else {}
    picture.save(path, format=image_format, **options)
    return path
