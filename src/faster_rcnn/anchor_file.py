"""Anchor files: an :class:`~faster_rcnn.config.AnchorConfig` as JSON, as ``faster-rcnn
anchors --fit`` writes it and ``faster-rcnn train --anchors`` reads it.

The file holds ``sizes``, ``aspect_ratios`` and ``offset`` (the config's fields) and may
hold anything else under other keys (the fit writes how many boxes each anchor set
covers); only the three fields are read as anchors. The file holds a level of anchors a
feature map, so a model of other maps refuses it. The fit also writes the input scale
its boxes were resized at, ``fitted_at_min_size`` and ``fitted_at_max_size``: the fit
depends on it (a box twice as large wants anchors twice as large), and train warns where
it resizes otherwise (:func:`other_scale`). A file without them (written before they
were, or by hand) says nothing of its scale.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .config import AnchorConfig, FasterRCNNConfig, TransformConfig
from .data.dataset import read_text

FIELDS = ("sizes", "aspect_ratios", "offset")
SCALE_NOTES = ("fitted_at_min_size", "fitted_at_max_size")


def write_anchor_file(
    path: str | os.PathLike[str], anchors: AnchorConfig, notes: dict[str, Any] | None = None
) -> Path:
    """Write ``anchors`` (and ``notes`` beside them) to ``path`` as JSON; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fields = {name: getattr(anchors, name) for name in FIELDS}
    # The anchors last: a note of the same name never replaces them.
    path.write_text(json.dumps({**(notes or {}), **fields}, indent=2) + "\n")
    return path


def read_anchor_file(path: str | os.PathLike[str]) -> AnchorConfig:
    """The anchors of an anchor file, validated.

    Raises:
        FileNotFoundError: there is no file at ``path``.
        ValueError: one line naming the file: a folder, not JSON, a field missing,
            anchors the config refuses, or a recorded input scale that is not a positive
            integer (checked with the anchors, before a run builds anything from them).
    """
    path = Path(path)
    data = _read_json(path)
    _recorded_scale(data, path)
    try:
        return AnchorConfig(**{name: data[name] for name in FIELDS if name in data})
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path}: {error}") from error


def _read_json(path: Path) -> dict[str, Any]:
    """The object of an anchor file, with ``sizes`` and ``aspect_ratios``."""
    if path.is_dir():
        raise ValueError(f"{path} is a folder, not an anchor file")
    if not path.is_file():
        raise FileNotFoundError(f"anchor file {path} does not exist")
    try:
        data = json.loads(read_text(path))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not a JSON anchor file ({error})") from error
    if not isinstance(data, dict) or not {"sizes", "aspect_ratios"} <= set(data):
        raise ValueError(f"{path}: an anchor file needs 'sizes' and 'aspect_ratios'")
    return data


def scale_notes(transform: TransformConfig) -> dict[str, int]:
    """The notes of the input scale anchors are fitted at on a model of ``transform``:
    its boxes resized as evaluation resizes them (the last ``min_size``, capped by
    ``max_size``)."""
    return dict(zip(SCALE_NOTES, (transform.min_size[-1], transform.max_size), strict=True))


def other_scale(path: str | os.PathLike[str], transform: TransformConfig) -> str | None:
    """One line saying that the anchors of the file at ``path`` were fitted at another
    input scale than ``transform``'s (its last ``min_size`` and its ``max_size``, as
    :func:`scale_notes` records them); ``None`` where the scales agree or the file does
    not say its own.

    Raises:
        ValueError: naming the file, where a scale it records is not a positive integer.
    """
    path = Path(path)
    fitted = _recorded_scale(_read_json(path), path)
    if fitted is None:
        return None
    run = (transform.min_size[-1], transform.max_size)
    if fitted == run:
        return None
    return (
        f"--anchors {path} were fitted to boxes resized at --min-size {fitted[0]} --max-size "
        f"{fitted[1]}, this run resizes at {run[0]} and {run[1]}: its objects are not the "
        "size the anchors were fitted for; refit them at its sizes (faster-rcnn anchors "
        f"--fit --min-size {run[0]} --max-size {run[1]})"
    )


def _recorded_scale(data: dict[str, Any], path: Path) -> tuple[int, ...] | None:
    """The input scale an anchor file's ``data`` says its anchors were fitted at
    (:data:`SCALE_NOTES`), ``None`` where it does not say both.

    Raises:
        ValueError: naming the file, where a scale it records is not a positive integer.
    """
    if not set(SCALE_NOTES) <= set(data):
        return None
    fitted = tuple(data[name] for name in SCALE_NOTES)
    for name, size in zip(SCALE_NOTES, fitted, strict=True):
        if type(size) is not int or size <= 0:
            raise ValueError(f"{path}: {name} must be a positive integer, got {size!r}")
    return fitted


def with_anchor_file(config: FasterRCNNConfig, path: str | os.PathLike[str]) -> FasterRCNNConfig:
    """``config`` with the anchors of the file at ``path``.

    Raises:
        ValueError: naming the file, when the anchors do not fit the config (one tuple of
            sizes per feature map of its backbone).
    """
    anchors = read_anchor_file(path)
    try:
        return config.replace(anchors=anchors)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from error
