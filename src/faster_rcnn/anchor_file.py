"""Anchor files: an :class:`~faster_rcnn.config.AnchorConfig` as JSON, as ``faster-rcnn
anchors --fit`` writes it and ``faster-rcnn train --anchors`` reads it.

The file holds ``sizes``, ``aspect_ratios`` and ``offset`` (the config's fields) and may
hold anything else under other keys (the fit writes how many boxes each anchor set
covers); only the three fields are read.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .config import AnchorConfig, FasterRCNNConfig
from .data.dataset import read_text

FIELDS = ("sizes", "aspect_ratios", "offset")


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
        ValueError: one line naming the file: not JSON, a field missing, or anchors the
            config refuses.
    """
    path = Path(path)
    try:
        data = json.loads(read_text(path))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not a JSON anchor file ({error})") from error
    if not isinstance(data, dict) or not {"sizes", "aspect_ratios"} <= set(data):
        raise ValueError(f"{path}: an anchor file needs 'sizes' and 'aspect_ratios'")
    try:
        return AnchorConfig(**{name: data[name] for name in FIELDS if name in data})
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path}: {error}") from error


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
