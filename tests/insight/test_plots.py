"""The figures of the insight tools as written: pixels, mode and compression."""

import numpy as np
from PIL import Image

from faster_rcnn.insight.plots import new_figure, save_figure


def zlib_level_class(path) -> int:
    """FLEVEL of the first IDAT chunk's zlib header (RFC 1950): 0 for zlib's levels 0-1,
    1 for 2-5, 2 for 6, 3 for 7-9."""
    data = path.read_bytes()
    start = data.index(b"IDAT") + 4
    return data[start + 1] >> 6


def test_a_figure_is_written_as_an_rgb_png_of_its_pixels_compressed_fast(tmp_path):
    figure = new_figure(2.0, 1.0)
    figure.add_subplot().plot([0, 1], [0, 1], color="red")
    path = save_figure(figure, tmp_path / "figure")
    rgba = np.asarray(figure.canvas.buffer_rgba())
    assert (rgba[..., 3] == 255).all()  # opaque: the alpha dropped loses nothing
    with Image.open(path) as saved:
        assert (saved.format, saved.mode, saved.size) == ("PNG", "RGB", (220, 110))
        assert np.array_equal(np.asarray(saved), rgba[..., :3])
    assert zlib_level_class(path) == 0
