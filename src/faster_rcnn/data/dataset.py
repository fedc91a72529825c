"""What every detection dataset shares: the item contract and reading image files.

A dataset is a sequence of ``(image, target)`` pairs:

- ``image``: ``float32[3, H, W]`` RGB in 0..1, or ``uint8[3, H, W]`` levels as the
  readers of image files decode an 8-bit image (a quarter of the memory on the way
  to the model, which scales them alike: :func:`as_float_image`);
- ``target``: ``{"boxes": float32[N, 4]`` as ``x1, y1, x2, y2`` in continuous absolute
  pixels, ``"labels": int64[N]`` in ``1..C`` (0 is background), ``"image_id": int}``,
  plus ``"difficult": bool[N]`` (Pascal VOC) or ``"iscrowd": bool[N]`` (COCO).

Readers also carry ``class_names`` (without background), ``num_classes`` (with it) and
``image_size(i) -> (h, w)``, which reads only the file header or the annotation so that
batches can be grouped by aspect ratio without decoding every image. The readers of
image files (VOC, COCO, YOLO) share all of that through :class:`ImageFileDataset`.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
import struct
import unicodedata
import warnings
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar

import numpy as np
import torch
from PIL import Image, ImageOps, PngImagePlugin, TiffImagePlugin, UnidentifiedImageError
from torch import Tensor
from torch.utils.data import Subset as TorchSubset

from ..counted import counted, plural_of
from .sample_depth import SampleDepth, declared_depth

Target = dict[str, Tensor | int]
Sample = tuple[Tensor, Target]

# The image files the readers and predict take, in a folder or named (compared in lower
# case): those of Ultralytics' list that PIL decodes, and GIF, of which the first frame
# is read (read_image), as of an animated PNG or WebP. TIFF is common in microscopy.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif")
# What an empty split's message adds of an annotation file (a CSV, a VIA file) without an
# image beside it.
NO_IMAGE_BESIDE = f"no {'/'.join(IMAGE_SUFFIXES)} file beside it"

# Target entries with one row per box: whatever removes boxes must filter all of them
# ("area" is COCO's, which COCO AP reads where a target carries it).
PER_BOX_KEYS = ("boxes", "labels", "difficult", "iscrowd", "area")


def is_image_file(path: Path) -> bool:
    """Whether ``path`` is a file with one of :data:`IMAGE_SUFFIXES` (in any case)."""
    return path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()


def image_files_in(folder: Path) -> list[Path]:
    """The image files directly in ``folder``, sorted by name."""
    return sorted(p for p in folder.iterdir() if is_image_file(p))


def images_beside(image_files: Sequence[Path]) -> list[Path]:
    """The image files in the folders of ``image_files`` that are not among them, sorted:
    those an annotation format left out (an image without an ``.xml``, or in no row)."""
    used = set(image_files)
    return sorted(
        path
        for folder in sorted({path.parent for path in image_files})
        for path in image_files_in(folder)
        if path not in used
    )


def warn_of_images_left_out(
    unused: Sequence[Path], source: str, said: tuple[str, str], remedy: str
) -> None:
    """Warn of the images ``unused`` that no annotation names (:func:`images_beside`):
    left out, where the user may have meant them as images without objects. ``said`` is
    what is said of one and of several (``"image has no .xml and is"``), ``remedy`` how
    an image without objects is annotated in the format."""
    if unused:
        warnings.warn(
            f"{source}: {counted(len(unused), *said)} left out "
            f"({first_few([p.name for p in unused])}): {remedy}",
            stacklevel=4,
        )


def files_with_suffix(folder: Path, *suffixes: str) -> list[Path]:
    """The files directly in ``folder`` whose suffix is one of ``suffixes`` (``".txt"``,
    lower case) in any case, sorted by name: a ``.TXT`` label file copied from Windows is
    one, as a ``.JPG`` is an image (:func:`is_image_file`). None where ``folder`` is not
    a folder, as a glob finds none there."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in suffixes)


def as_on_disk(wanted: Sequence[Path]) -> list[Path]:
    """Each of the ``wanted`` files (``a.txt``, ``a.xml``) as it is on disk: where only a
    file of its stem with that suffix in another case is there (``a.TXT``), that file, as
    a ``.JPG`` is an image (copied from Windows, whose file names ignore case); where
    only one of its stem in the other Unicode form is (``é`` as ``e`` and an accent, as
    macOS writes names, beside an image named in one character), that one; else as
    wanted. Each folder is listed once, not each file looked for."""
    on_disk: dict[tuple[Path, str], dict[str, Path]] = {}
    for folder, suffix in {(path.parent, path.suffix) for path in wanted}:
        # the suffix itself first, where another case of it is there too
        found = files_with_suffix(folder, suffix.lower())
        stems = on_disk[folder, suffix] = {}
        for path in sorted(found, key=lambda path: path.suffix == suffix, reverse=True):
            stems.setdefault(path.stem, path)
        for stem, path in list(stems.items()):  # after every stem as it is
            stems.setdefault(_composed(stem), path)
    return [_on_disk(path, on_disk[path.parent, path.suffix]) for path in wanted]


def _on_disk(path: Path, stems: dict[str, Path]) -> Path:
    """The file of ``stems`` (by stem as on disk, then composed) that ``path`` is."""
    return stems.get(path.stem) or stems.get(_composed(path.stem), path)


def holds_images(folder: Path) -> bool:
    """Whether ``folder`` holds an image file directly (it stops at the first)."""
    return any(map(is_image_file, folder.iterdir()))


class DetectionDataset(Protocol):
    """The interface of every reader in :mod:`faster_rcnn.data`."""

    class_names: tuple[str, ...]

    @property
    def num_classes(self) -> int: ...

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Sample: ...


class UnreadableImageError(ValueError):
    """An image file that cannot be decoded (corrupt, truncated, not an image, or too
    large); ``path`` is the file. ``kind`` names such images in a run's summary (a
    subclass for another reason to leave an image out names its own)."""

    kind: ClassVar[str] = "unreadable"

    def __init__(self, path: Path, message: str) -> None:
        super().__init__(message)
        self.path = path

    def __reduce__(self) -> tuple[type, tuple[Path, str]]:
        return type(self), (self.path, str(self))


class MissingImageError(UnreadableImageError, FileNotFoundError):
    """An image file that does not exist."""


def read_image(path: str | os.PathLike[str], exif_transpose: bool = False) -> Tensor:
    """Decode an image file (a ``Path`` or a ``str``) to ``float32[3, H, W]`` RGB in 0..1:
    :func:`read_image_levels`, scaled by :func:`as_float_image`.

    Pixels are taken as stored: an EXIF orientation tag is not applied (unless
    ``exif_transpose``), because box annotations are drawn on the stored pixels by the
    common labelling tools. 16- and 32-bit grey images are scaled by their depth (PIL's
    RGB conversion clips them white), 12 or 14 bits in 16 where the file declares them
    (:mod:`faster_rcnn.data.sample_depth`), a TIFF's unsigned 32-bit samples as unsigned.
    Of an animated or multi-page file (GIF, APNG, TIFF), the first frame is read, without
    a word: a dataset's boxes were drawn on the one image its labelling tool showed, that
    frame, and a warning per file would bury the others. ``predict`` and ``explain`` warn
    of the frames left of a file the user names (:func:`warn_of_later_frames`).

    Raises:
        MissingImageError: the file does not exist (a ``FileNotFoundError``).
        UnreadableImageError: the file is not an image PIL can read, is truncated, or
            declares more pixels than PIL's decompression-bomb limit, or ``path`` is a
            folder (a ``ValueError``).
    """
    return as_float_image(read_image_levels(path, exif_transpose))


def read_image_levels(path: str | os.PathLike[str], exif_transpose: bool = False) -> Tensor:
    """The pixels of an image file as decoded: ``uint8[3, H, W]`` RGB levels of an 8-bit
    image, a quarter of :func:`read_image`'s float32 (144 MB, not 576, of an 8000 x 6000
    photo), ``float32[3, H, W]`` in 0..1 of a grey image of more bits. The readers' items
    carry them so; :func:`as_float_image` makes them :func:`read_image`'s, where the
    model's transform normalises them. Raises as :func:`read_image`."""
    path = Path(path)  # a public function: a str path from a user's script is read too
    with _open_image(path) as image:
        try:
            depth = declared_depth(image, path)
            pixels = _rgb_pixels(_upright(image) if exif_transpose else image, depth)
        # Corrupt data is found while decoding, and PIL's decoders report it as OSError,
        # SyntaxError, ValueError, EOFError, struct.error... whatever it is, the file is
        # unreadable.
        except Exception as error:
            reason = str(error) or type(error).__name__
            raise UnreadableImageError(path, f"cannot read image {path}: {reason}") from error
    return torch.from_numpy(pixels).permute(2, 0, 1)


def as_float_image(image: Tensor) -> Tensor:
    """``float32[C, H, W]`` in 0..1 of ``uint8`` levels (a new tensor, ``level / 255``
    rounded once, on the image's device), or ``image`` itself where it is floating point
    already (:func:`read_image_levels` gives either).

    Raises:
        TypeError: another integer dtype (int16 levels are not on 255's scale).
    """
    if image.is_floating_point():
        return image
    if image.dtype != torch.uint8:
        raise TypeError(f"expected uint8 levels or a floating point image, got {image.dtype}")
    # Divided in place, and by a tensor: a new tensor for the quotient is a fresh
    # allocation, which the kernel zeroes a page at a time (a 640 x 480 JPEG took 1.2 ms
    # instead of 5.6, benchmarks/bench_decode.py); and CUDA multiplies by the reciprocal
    # of a Python number, which rounds some levels 1 ulp off the CPU's quotient.
    return image.to(torch.float32).div_(torch.tensor(255.0, device=image.device))


@dataclass(frozen=True)
class ImageSizes:
    """The sizes a reader gives its images, reconciled with their files' headers (see
    :func:`image_sizes`).

    Attributes:
        sizes: per image, ``(height, width)`` of its pixels as read; ``None`` when
            neither its file nor its annotation tells.
        turned: the images turned by their EXIF orientation on reading.
    """

    sizes: list[tuple[int, int] | None]
    turned: frozenset[int]


def image_sizes(
    annotated: Sequence[tuple[int, int] | None],
    image_files: Sequence[Path],
    names: Sequence[str],
    source: str,
    field: str,
) -> ImageSizes:
    """Each image's size, read from its file's header and checked against the
    ``(height, width)`` its annotation gives (``field`` names it in the warnings).

    The file decides, except where the annotated size is the file's turned by 90 degrees
    and the file's EXIF orientation turns it so: the labelling tool showed the turned
    image, so it is turned on reading. Both cases are reported in a warning naming the
    first few images (by ``names``). An image whose header cannot be read (an empty
    file) has no size, whatever its annotation says: asked for it, the reader reads the
    header again and raises, so that ``data``, the recipe and the audits leave it out
    and name it, as training and evaluation do.
    """
    sizes: list[tuple[int, int] | None] = []
    turned: list[int] = []
    mismatched: list[str] = []
    for k, (size, path) in enumerate(zip(annotated, image_files, strict=True)):
        try:
            height, width, orientation = read_image_header(path)
        except UnreadableImageError:
            sizes.append(None)
            continue
        if size == (width, height) and orientation in EXIF_QUARTER_TURNS:
            turned.append(k)
            sizes.append(size)
            continue
        if size not in (None, (height, width)):
            mismatched.append(f"{names[k]} ({field} {size[1]}x{size[0]}, file {width}x{height})")
        sizes.append((height, width))
    if turned:
        warnings.warn(
            f"{source}: {counted(len(turned), 'image')} turned by the EXIF orientation to "
            f"agree with the annotated {field} ({first_few([names[k] for k in turned])})",
            stacklevel=3,
        )
    if mismatched:
        warnings.warn(
            f"{source}: {counted(len(mismatched), 'image')}: the annotated {field} "
            "differs from the image file's, "
            f"which is used ({first_few(mismatched)})",
            stacklevel=3,
        )
    return ImageSizes(sizes, frozenset(turned))


def read_image_size(path: str | os.PathLike[str]) -> tuple[int, int]:
    """``(height, width)`` of an image file, read from its header without decoding it."""
    return read_image_header(path)[:2]


def read_upright_size(path: Path) -> tuple[int, int]:
    """``(height, width)`` of an image file once turned by its EXIF orientation (as
    ``read_image(path, exif_transpose=True)`` decodes it), from its header."""
    height, width, orientation = read_image_header(path)
    return (width, height) if orientation in EXIF_QUARTER_TURNS else (height, width)


def upright_size_or_none(path: Path) -> tuple[int, int] | None:
    """:func:`read_upright_size`, or ``None`` where the header cannot be read (reading the
    image then fails, and the run skips or stops at it)."""
    try:
        return read_upright_size(path)
    except UnreadableImageError:
        return None


# EXIF orientations that turn the image by 90 degrees one way or the other.
EXIF_QUARTER_TURNS = frozenset({5, 6, 7, 8})


def read_image_header(path: str | os.PathLike[str]) -> tuple[int, int, int]:
    """``(height, width, EXIF orientation)`` of an image file as stored, from its header
    without decoding it; the orientation is 1 (upright) when the file has none."""
    with _open_image(Path(path)) as image:
        width, height = image.size
        return height, width, _orientation(image)


def image_frames(path: str | os.PathLike[str]) -> int:
    """How many frames an image file holds, from its header: an animated GIF's, APNG's or
    WebP's, a multi-page TIFF's pages; 1 for a still image. Pillow's ``n_frames`` is asked
    only where ``is_animated`` says there are more: on some formats (GIF) it seeks through
    the whole file to count them."""
    with _open_image(Path(path)) as image:
        return int(image.n_frames) if getattr(image, "is_animated", False) else 1


def warn_of_later_frames(path: str | os.PathLike[str], done: str) -> None:
    """Warn where the image file ``path`` a user named holds more frames than the first,
    which :func:`read_image` reads and the command then has ``done`` ("detected")."""
    frames = image_frames(path)
    if frames > 1:
        warnings.warn(f"{path}: only the first of its {frames} frames is {done}", stacklevel=2)


def _orientation(image: Image.Image) -> int:
    """The EXIF orientation of an open image, without decoding it: 1 (upright) when it
    has none, or when its EXIF block is malformed."""
    try:
        if isinstance(image, PngImagePlugin.PngImageFile) and "exif" not in image.info:
            _read_png_text_after_image_data(image)
            # PngImageFile.getexif would decode the pixels to find what was just read.
            return int(Image.Image.getexif(image).get(_EXIF_ORIENTATION, 1))
        return int(image.getexif().get(_EXIF_ORIENTATION, 1))
    except Exception:  # a malformed EXIF block, in any of the ways PIL reports it
        return 1


# The PNG chunks that PIL's getexif reads: EXIF, and text that can hold EXIF or XMP.
_PNG_EXIF_CHUNKS = frozenset({b"eXIf", b"tEXt", b"zTXt", b"iTXt"})


def _read_png_text_after_image_data(image: PngImagePlugin.PngImageFile) -> None:
    """Add to ``image.info`` the EXIF and text chunks after its image data as decoding
    it does (PIL's ``PngImageFile.load_end``; ``Image.open`` reads those before), but
    seeking past the image data.

    Raises:
        OSError: a chunk runs past the end of the file, where decoding fails too.
    """
    fp = image.fp
    start = fp.tell()  # where decoding the image later starts
    stream = PngImagePlugin.PngStream(fp)
    stream.im_info = image.info
    try:
        size = fp.seek(0, os.SEEK_END)
        fp.seek(image.tile[0][2] - 8)  # the first IDAT's header, as PIL's verify() finds it
        while True:
            try:
                kind, position, length = stream.read()
            except (struct.error, SyntaxError):  # where decoding stops reading, too
                break
            if kind == b"IEND" or (kind == b"fcTL" and image.is_animated):
                break
            if position + length > size:
                raise OSError(f"truncated PNG chunk {kind!r}")
            if kind in _PNG_EXIF_CHUNKS:
                stream.call(kind, position, length)
            fp.seek(position + length + 4)  # past the data and the CRC
    finally:
        fp.seek(start)


def _upright(image: Image.Image) -> Image.Image:
    """An open image turned by its EXIF orientation (itself when upright, uncopied)."""
    return image if _orientation(image) == 1 else ImageOps.exif_transpose(image)


_EXIF_ORIENTATION = 0x0112


# The grey modes PIL keeps at more than 8 bits: 16-bit, 32-bit integer, 32-bit float.
_GREY_MODES = frozenset({"I;16", "I;16B", "I;16L", "I", "F"})
# The ranges such pixels are stored in: a float image in 0..1 or 0..255, an integer one in
# 0..65535 (16 bits, or fewer stored in 16 where the file does not declare them).
_FULL_SCALES = (1.0, 255.0, 65535.0)


def _rgb_pixels(image: Image.Image, depth: SampleDepth | None) -> np.ndarray:
    """``uint8[H, W, 3]`` levels of an open 8-bit image, ``float32[H, W, 3]`` in 0..1 of a
    grey one of :data:`_GREY_MODES`, whose file declares ``depth`` (see
    :func:`faster_rcnn.data.sample_depth.declared_depth`)."""
    if image.mode not in _GREY_MODES:
        image.load()  # decoded here, so that a corrupt file raises PIL's own error
        return np.array(image if image.mode == "RGB" else image.convert("RGB"))
    grey = np.nan_to_num(_grey_samples(image), nan=0.0, posinf=0.0, neginf=0.0)
    white = _full_scale(grey, image.mode, depth)
    return np.repeat(np.clip(grey / white, 0.0, 1.0)[..., None], 3, axis=2)


def _grey_samples(image: Image.Image) -> np.ndarray:
    """``float32[H, W]``, the samples of an open grey image of :data:`_GREY_MODES` as
    stored. PIL keeps a TIFF's unsigned 32-bit samples as signed ones, those from 2**31
    up negative (black once clipped): they are read unsigned."""
    samples = np.asarray(image)
    if samples.dtype == np.int32 and _unsigned_tiff(image):
        samples = samples.view(np.uint32)
    return samples.astype(np.float32)


# TIFF's SampleFormat tag, and its value for unsigned integers (the spec's default).
_TIFF_SAMPLE_FORMAT, _TIFF_UNSIGNED = 339, 1


def _unsigned_tiff(image: Image.Image) -> bool:
    """Whether an open image is a TIFF of unsigned integer samples: its SampleFormat is
    1, or left out."""
    if not isinstance(image, TiffImagePlugin.TiffImageFile):
        return False
    value = image.tag_v2.get(_TIFF_SAMPLE_FORMAT, _TIFF_UNSIGNED)
    return (value[0] if isinstance(value, tuple) and value else value) == _TIFF_UNSIGNED


def _full_scale(grey: np.ndarray, mode: str, depth: SampleDepth | None) -> float:
    """The value that is white in a grey image of ``mode``: ``2**bits - 1`` where its file
    declares ``depth`` and its samples are stored at it (:meth:`SampleDepth.holds`), else
    65535 for integers, else the first of the float conventions 1 and 255 its pixels fit;
    pixels beyond every convention (20 or 32 bits of data) take their own largest value."""
    if depth is not None and depth.holds(grey):
        return float(depth.white)
    brightest = float(grey.max(initial=0.0))
    scales = _FULL_SCALES if mode == "F" else _FULL_SCALES[2:]
    return next((scale for scale in scales if brightest <= scale), brightest)


def _open_image(path: Path) -> Image.Image:
    """``Image.open`` with its errors as the reader's one-line ones.

    PIL warns of an image of more pixels than ``Image.MAX_IMAGE_PIXELS`` (89 million) as
    of a "decompression bomb DOS attack", and refuses one of twice as many. The warning
    is silenced: it names no file, and the image is the user's own and is read (a 150
    Mpx aerial photo: 1.8 GB as float32, 3 GB at the peak of decoding it). The refusal
    stands, in one line naming the file: a 320 Mpx one takes 6.2 GB to decode, of which
    the model keeps a resized image of a few million pixels.
    """
    if not path.is_file():  # one stat for the image that is there
        if path.is_dir():
            raise UnreadableImageError(path, f"{path} is a folder, not an image file")
        raise MissingImageError(path, f"image file {path} does not exist")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(path)
    except Image.DecompressionBombError as error:
        reason = str(error).split(", could be")[0]
        message = (
            f"refusing image {path}: {reason} (a decompression bomb?); downscale it or cut "
            "it into tiles"
        )
        raise UnreadableImageError(path, message) from error
    except UnidentifiedImageError as error:
        message = f"cannot read image {path}: {_unknown_format(path)}"
        raise UnreadableImageError(path, message) from error
    except Exception as error:  # as when decoding: PIL reports bad headers many ways
        reason = str(error) or type(error).__name__
        raise UnreadableImageError(path, f"cannot read image {path}: {reason}") from error


# The ISO base media brands of HEIF images (an iPhone's .heic photos), which PIL has no
# plugin for; its AVIF plugin reads the AVIF ones.
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"})


def _unknown_format(path: Path) -> str:
    """Why PIL identifies no image in the file ``path``: it is empty, a HEIC/HEIF photo,
    or in no format PIL knows."""
    with path.open("rb") as file:
        head = file.read(12)
    if not head:
        return "the file is empty (0 bytes)"
    if head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS:
        return "a HEIC/HEIF photo, which PIL cannot decode: convert it to JPEG or PNG"
    return "not in an image format PIL knows"


def image_size_of(dataset: object, index: int) -> tuple[int, int]:
    """``(height, width)`` of item ``index`` of any dataset, as cheaply as it allows.

    Readers answer through ``image_size(index)``; the generated datasets have one
    ``image_size`` for all images; a ``torch.utils.data.Subset`` asks the dataset it
    holds; any other dataset has its item decoded.
    """
    if isinstance(dataset, TorchSubset):
        return image_size_of(dataset.dataset, dataset.indices[index])
    image_size = getattr(dataset, "image_size", None)
    if callable(image_size):
        return image_size(index)
    if isinstance(image_size, tuple):
        return image_size
    image = dataset[index][0]  # type: ignore[index]
    return int(image.shape[-2]), int(image.shape[-1])


def image_name_of(dataset: object, index: int) -> str:
    """What to call item ``index`` of any dataset in a message: its file where the reader
    has one (``image_path(index)``, through a ``torch.utils.data.Subset`` too), else its
    index (in ``dataset``, not in one a ``Subset`` holds)."""
    held, held_index = dataset, index
    while isinstance(held, TorchSubset):  # a Subset of a Subset too (random_split twice)
        held, held_index = held.dataset, held.indices[held_index]
    image_path = getattr(held, "image_path", None)
    return str(image_path(held_index)) if callable(image_path) else f"image {index}"


def target_of(dataset: object, index: int) -> Target:
    """The target of item ``index`` of any dataset: through the reader's ``target(index)``
    (no image decoded) when it has one, through a ``torch.utils.data.Subset`` too, else
    from ``dataset[index]``."""
    if isinstance(dataset, TorchSubset):
        return target_of(dataset.dataset, dataset.indices[index])
    target = getattr(dataset, "target", None)
    if callable(target):
        return target(index)
    return dataset[index][1]  # type: ignore[index]


def boxes_kept(target: Target, keep: Tensor) -> Target:
    """``target`` with only the boxes ``keep`` selects (a bool mask of ``N`` or indices):
    every per-box entry (:data:`PER_BOX_KEYS`) is filtered alike, the others stay."""
    return {
        key: value[keep] if key in PER_BOX_KEYS and isinstance(value, Tensor) else value
        for key, value in target.items()
    }


class WrappedDataset:
    """Base of the datasets that wrap another: class names, length and image sizes are
    the wrapped dataset's.

    Args:
        dataset: any detection dataset.
    """

    def __init__(self, dataset: DetectionDataset) -> None:
        self.dataset = dataset

    @property
    def class_names(self) -> tuple[str, ...]:
        """The wrapped dataset's class names."""
        return self.dataset.class_names

    @property
    def num_classes(self) -> int:
        """Classes including background."""
        return self.dataset.num_classes

    def __len__(self) -> int:
        return len(self.dataset)

    def image_size(self, index: int) -> tuple[int, int]:
        """``(height, width)`` of the wrapped item ``index``."""
        return image_size_of(self.dataset, index)


class TransparentWrapper(WrappedDataset):
    """A wrapper that changes some of what a dataset gives and passes every other
    attribute through: the wrapped reader's ``image_files``, ``image_path``,
    ``box_audit``, ``label_to_category_id`` and the rest are the wrapper's."""

    def __getattr__(self, name: str) -> Any:
        # Only reached for what the wrapper lacks; "dataset" itself is missing only while
        # an unpickled copy is being rebuilt, which must not recurse.
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)


class ImageFileDataset(ABC):
    """Base of the readers of image files and their annotations.

    A reader sets ``class_names`` and ``image_files`` (the image file of each item, in
    item order) and implements :meth:`target`; the length, the class count, the items,
    the index checks and the image sizes are the same for all and written here. A reader
    whose annotation gives image sizes says so in :meth:`_annotated_size`.
    """

    class_names: tuple[str, ...]
    image_files: list[Path]

    @property
    def num_classes(self) -> int:
        """Classes including background."""
        return len(self.class_names) + 1

    def __len__(self) -> int:
        return len(self.image_files)

    def __getitem__(self, index: int) -> Sample:
        target = self.target(index)  # checks the index first
        return self._read_image(index), target

    def _read_image(self, index: int) -> Tensor:
        """The decoded image ``index`` (a reader may turn it, see :meth:`VOCDetection`)."""
        return read_image_levels(self.image_path(index))

    @abstractmethod
    def target(self, index: int) -> Target:
        """The target of image ``index``, without decoding the image."""

    def image_path(self, index: int) -> Path:
        """The file of image ``index``."""
        self._check_index(index)
        return self.image_files[index]

    def image_size(self, index: int) -> tuple[int, int]:
        """``(height, width)`` of image ``index``: from the annotation when it has it, else
        from the image file's header."""
        self._check_index(index)
        return self._annotated_size(index) or read_image_size(self.image_files[index])

    def _annotated_size(self, index: int) -> tuple[int, int] | None:
        """``(height, width)`` of image ``index`` as its annotation gives it; None (the
        default) when it does not."""
        return None

    def _check_index(self, index: int) -> None:
        if not 0 <= index < len(self.image_files):
            raise IndexError(f"index {index} out of range for {len(self.image_files)} images")


class TargetsReadOnOpening(ImageFileDataset):
    """Base of the readers that read every image's boxes, labels and size when opened
    (a CSV, a VIA file, LabelMe's files): they set, per image in item order, ``_boxes``
    (``float32[N, 4]`` x1 y1 x2 y2 pixels), ``_labels`` (``int64[N]``) and ``_sizes``
    (``(height, width)`` as read, ``None`` where unknown); targets and sizes are given
    from them."""

    _boxes: list[Tensor]
    _labels: list[Tensor]
    _sizes: list[tuple[int, int] | None]

    def target(self, index: int) -> Target:
        """The target of image ``index``, without decoding the image."""
        self._check_index(index)
        return {
            "boxes": self._boxes[index].clone(),
            "labels": self._labels[index].clone(),
            "image_id": index,
        }

    def _annotated_size(self, index: int) -> tuple[int, int] | None:
        """``(height, width)`` of the image as read on opening."""
        return self._sizes[index]


def empty_split_error(source: str | Path, split: str | None, detail: str = "") -> ValueError:
    """The error of a split that holds no image, in one wording for every format's reader
    (:func:`empty_split_message`)."""
    return ValueError(empty_split_message(source, split, detail))


def empty_split_message(source: str | Path, split: str | None, detail: str = "") -> str:
    """What is said of a split that holds no image, in one wording for every format, in
    the error of one opened and in the note of one left out:
    ``"<source>: the train split holds no image (<detail>)"``, ``source`` naming the file
    or folder the split is read from, ``"the dataset"`` in place of the split where there
    are no splits, and ``detail`` (what the format adds, if anything) in parentheses."""
    part = f"the {split} split" if split else "the dataset"
    said = f" ({detail})" if detail else ""
    return f"{source}: {part} holds no image{said}"


def images_there(image_files: Sequence[Path], source: str | Path, split: str | None) -> list[int]:
    """The indices of the ``image_files`` that are there, those that are not (an image
    deleted after labelling, a list written before it was copied) left out with one
    warning (:func:`warn_of_left_out`): there is nothing to train on or score.

    Args:
        source: the annotation or list file that names the images, for the messages.
        split: the split it is, for the error of one without images.

    Raises:
        ValueError: none is there (:func:`empty_split_error`).
    """
    missing = [k for k, path in enumerate(image_files) if not path.is_file()]
    if missing:
        warn_of_left_out(source, [missing_file(image_files[k]) for k in missing], "image")
    if len(missing) == len(image_files):
        raise empty_split_error(source, split, none_there(len(image_files)))
    gone = set(missing)
    return [k for k in range(len(image_files)) if k not in gone]


def none_there(count: int) -> str:
    """What is said of a split none of whose ``count`` image files is there, in the
    error of one opened (:func:`images_there`) and the note of one left out."""
    return f"none of its {counted(count, 'image')} is there"


def warn_of_left_out(
    source: str | Path, left_out: Sequence[str], noun: str, why: str = "not found"
) -> None:
    """Warn that the ``left_out`` items of ``source`` (each as named in the message) are
    left out for want of their files, in one wording for every format:
    ``"<source>: 2 images are left out, not found: a.jpg, b.jpg"``, ``noun`` naming what
    they are (``image``, VOC's ``id``) and ``why`` what is missing, where the names do
    not say (``"not found as Annotations/<id>.xml ..."``)."""
    if left_out:
        warnings.warn(
            f"{source}: {counted(len(left_out), f'{noun} is', f'{plural_of(noun)} are')} left "
            f"out, {why}: {first_few(left_out)}",
            stacklevel=3,
        )


# An image or id of a split's list (:func:`listed_once`).
Listed = TypeVar("Listed", str, Path)


def listed_once(listed: Sequence[Listed], source: str | Path, noun: str = "image") -> list[Listed]:
    """``listed`` (the images or ids of a split's list) each once, where first listed; those
    listed more than once named in one warning, in one wording for every format:
    ``"<source>: 1 image is listed more than once, read once: a.jpg"``. Read as often as
    listed, an image would be trained on twice as often and, in a split scored, have its
    objects counted twice."""
    counts = Counter(listed)
    repeated = [str(item) for item, count in counts.items() if count > 1]
    if repeated:
        warnings.warn(
            f"{source}: {counted(len(repeated), f'{noun} is', f'{plural_of(noun)} are')} "
            f"listed more than once, read once: {first_few(repeated)}",
            stacklevel=3,
        )
    return list(counts)


def missing_file(path: Path) -> str:
    """``path``, with the file its folder holds of its name in another case (a dataset
    annotated on Windows or macOS, whose disks ignore the case, read where it counts), or
    of its name in another Unicode form (``é`` one character or ``e`` and an accent: the
    names look alike, but macOS writes them decomposed, most tools composed)."""
    if path.parent.is_dir():
        for other in path.parent.iterdir():
            if _composed(other.name) == _composed(path.name):
                return (
                    f"{path} (a file of this name is there in Unicode {_form(other.name)}, "
                    f"the name above in {_form(path.name)}: names must match byte for byte here)"
                )
            if other.name.lower() == path.name.lower():
                return f"{path} ({other.name} is there: file names are case-sensitive here)"
    return str(path)


def _composed(name: str) -> str:
    return unicodedata.normalize("NFC", name)


def _form(name: str) -> str:
    """The Unicode normalization form ``name`` is in: ``"NFC"`` (composed), ``"NFD"``
    (decomposed), or ``"mixed forms"``."""
    return next(
        (form for form in ("NFC", "NFD") if unicodedata.is_normalized(form, name)), "mixed forms"
    )


def written_path(name: str) -> Path:
    """A path as an annotation or list file writes it, a Windows tool's ``\\`` separators
    read as ``/`` (``data\\obj\\x.jpg``, ``C:\\shots\\x.jpg``)."""
    return Path(name.replace("\\", "/"))


# In no text file of a dataset; in UTF-16 beside every ASCII character.
NUL = b"\x00"


def read_text(path: Path) -> str:
    """The text of an annotation or list file: UTF-8, a byte-order mark allowed, or UTF-16
    where a byte-order mark says so (Windows Notepad's "Unicode").

    Raises:
        ValueError: the file is not text in the encoding it was read in, naming it and
            the first bad byte; or it holds a NUL byte, which no text of these files has
            (UTF-16 without a mark reads as UTF-8 with a NUL beside each ASCII letter).
    """
    data = path.read_bytes()
    # UTF-16 without a mark cannot be told from other bytes; with one, the codec reads
    # its order from it.
    utf16 = data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
    encoding, name = ("utf-16", "UTF-16") if utf16 else ("utf-8-sig", "UTF-8")
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as error:
        bad = error.object[error.start : error.start + 1]
        raise ValueError(
            f"{path}: not {name} text (byte {error.start} is {bad!r}); save it as UTF-8"
        ) from None
    nul = -1 if utf16 else data.find(NUL)
    if nul >= 0:
        raise ValueError(
            f"{path}: not {name} text (byte {nul} is {NUL!r}: UTF-16 without a byte-order "
            "mark?); save it as UTF-8"
        )
    return text


def read_text_start(path: Path, size: int) -> str:
    """The first ``size`` bytes of ``path`` as text: UTF-8, or UTF-16 where a byte-order
    mark says so (as :func:`read_text` reads the whole, without its checks), a character
    cut off at the end dropped. What tells formats apart, where a file may be large and
    is read whole once, on opening."""
    with path.open("rb") as opened:
        head = opened.read(size)
    utf16 = head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
    return head.decode("utf-16" if utf16 else "utf-8-sig", errors="ignore")


def numbered_csv_rows(file: Path) -> Iterator[tuple[int, list[str]]]:
    """``(line, row)`` of each row of the CSV ``file`` (:func:`read_text`), ``line`` its
    last line's number.

    Raises:
        ValueError: the csv module's error (a field too long), naming the file and line.
    """
    # As the csv module asks: line ends left to it, so that a quoted field may hold one.
    reader = csv.reader(io.StringIO(read_text(file), newline=""))
    try:
        for row in reader:
            yield reader.line_num, row
    except csv.Error as error:
        raise ValueError(f"{file}, line {reader.line_num}: not CSV ({error})") from None


def first_few(items: Sequence[str], shown: int = 3, separator: str = ", ") -> str:
    """The first ``shown`` of ``items`` joined, with ``", ..."`` when there are more: how
    the data warnings name what they count."""
    more = ", ..." if len(items) > shown else ""
    return separator.join(items[:shown]) + more


def spread_indices(length: int, most: int) -> range:
    """Indices of about ``most`` items spread evenly over ``length`` (every one where
    ``length`` is at most ``most``): what is read to describe a large dataset."""
    return range(0, length, max(1, length // most))


def named_box(image: str, name: str, box: Tensor) -> str:
    """A box as the data notes name it: its image, class and corners
    (``a.jpg 'cell' [0, 0, 10, 10]``)."""
    corners = ", ".join(f"{v:g}" for v in box.tolist())
    return f"{image} {name!r} [{corners}]"


def boxes_tensor(rows: list[list[float]]) -> Tensor:
    """``float32[N, 4]`` from a list of ``N`` rows, ``(0, 4)`` when empty."""
    return torch.tensor(rows, dtype=torch.float32).reshape(-1, 4)
