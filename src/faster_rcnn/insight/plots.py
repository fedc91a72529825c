"""Figures the insight tools write: matplotlib without pyplot's global state, saved as a
picture (a PNG unless named otherwise) with the numbers behind it in a JSON file of the
same name.

Every plot is made from a :class:`~matplotlib.figure.Figure` of its own (no ``pyplot``),
so plotting is thread-safe, needs no display and leaves no figure open.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, cast

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from .pictures import picture_path, save_picture

# Colours that stay distinguishable for the common kinds of colour blindness (Okabe-Ito).
COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442")
DPI = 110
# A figure's PNG is compressed at zlib level 1, as PIL shows its own images: level 6 took
# 0.6-0.9 s of CPU for an explain figure of 1782 x 1496 px, level 1 0.26 s for a file
# 15 % larger (benchmarks/bench_explain.md).
FIGURE_PNG_LEVEL = 1


def new_figure(width: float, height: float) -> Figure:
    """An empty figure of ``width`` x ``height`` inches, drawn by the Agg backend."""
    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save_figure(
    figure: Figure, path: str | os.PathLike[str], data: dict[str, Any] | None = None
) -> Path:
    """Write ``figure`` to ``path`` (a picture in the format of its suffix, a PNG without
    one: :func:`~faster_rcnn.insight.pictures.picture_path`; its folder created) and,
    when ``data`` is given, the numbers it shows to the ``.json`` beside it (NaN and inf
    as ``null``).

    Returns:
        The picture's path.
    """
    path = picture_path(Path(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas = cast(FigureCanvasAgg, figure.canvas)  # new_figure's, at its DPI
    canvas.draw()
    # The figure's face is opaque: its alpha, 255 everywhere, only doubled the PNG's
    # encoding time (1.1-1.5 s against 0.5-0.9 s at level 6) and made it 18 % larger.
    picture = Image.fromarray(np.asarray(canvas.buffer_rgba())).convert("RGB")
    save_picture(picture, path, FIGURE_PNG_LEVEL)
    if data is not None:
        path.with_suffix(".json").write_text(json.dumps(_finite(data), indent=2) + "\n")
    return path


def _finite(value: Any) -> Any:
    """``value`` with every non-finite float replaced by ``None`` (JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value
