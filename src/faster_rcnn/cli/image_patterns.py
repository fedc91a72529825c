"""Patterns naming image files, which ``predict`` expands itself: Windows' shells pass
``images\\*.jpg`` on as it is, and a quoted ``"photos/**/*.jpg"`` reaches it whole.

A pattern is read as Python's ``glob(recursive=True)`` reads it (as Ultralytics reads its
sources): ``*``, ``?`` and ``[...]`` within a name, and ``**``, a whole part of the path,
for any depth of folders below, none too. A wildcard does not match a hidden name (one
starting with ``.``), so ``**`` does not go into hidden folders.
"""

from __future__ import annotations

import fnmatch
import glob
from collections.abc import Sequence
from pathlib import Path

from ..data.dataset import is_image_file

WILDCARDS = "*?["


def is_pattern(item: Path | str) -> bool:
    """Whether ``item`` (a path, or one part of it) holds a wildcard (``*``, ``?``,
    ``[``)."""
    return any(c in str(item) for c in WILDCARDS)


def every_file_below(folder: Path) -> Path:
    """The pattern of the files at any depth below ``folder``, ``folder/**/*``, with the
    wildcards of its name escaped (``shots [1]`` is no set of characters)."""
    return Path(glob.escape(str(folder))) / "**" / "*"


def pattern_images(pattern: Path) -> list[Path]:
    """The image files ``pattern`` names, at any depth below a ``**``, sorted part by
    part (``a/x.jpg`` before ``a-b/x.jpg``: a folder's files and subfolders together).

    Raises:
        FileNotFoundError: it names none.
    """
    found = map(Path, glob.glob(str(pattern), recursive=True))
    images = sorted(p for p in found if is_image_file(p))
    if not images:
        raise FileNotFoundError(f"no image file matches {pattern}")
    return images


def named_by_pattern(pattern: Path, files: Sequence[Path]) -> list[Path]:
    """Those of ``files`` (absolute and resolved; they need not exist yet) that
    ``pattern`` names: below the folder of its parts before its first wildcard, the rest
    of their path matching the rest of the pattern."""
    parts = pattern.parts
    fixed = next(k for k, part in enumerate(parts) if is_pattern(part))
    folder = Path(*parts[:fixed]).resolve()
    return [
        file
        for file in files
        if file.is_relative_to(folder)
        and _names_match(file.relative_to(folder).parts, parts[fixed:])
    ]


def _names_match(names: Sequence[str], parts: Sequence[str]) -> bool:
    """Whether the path of ``names`` matches the pattern's ``parts``, a ``**`` taking any
    number of them."""
    if not parts:
        return not names
    if parts[0] == "**":
        deeper = bool(names) and not names[0].startswith(".") and _names_match(names[1:], parts)
        return deeper or _names_match(names, parts[1:])
    return bool(names) and _name_matches(names[0], parts[0]) and _names_match(names[1:], parts[1:])


def _name_matches(name: str, part: str) -> bool:
    """Whether one name matches one part of a pattern, as ``glob`` matches it (in the
    platform's case rule; a hidden name only by a part that starts with ``.``)."""
    return fnmatch.fnmatch(name, part) and (part.startswith(".") or not name.startswith("."))
