import itertools
import shutil
import sys
import warnings
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch
from matplotlib import font_manager
from PIL import Image, ImageDraw

from exif_images import png_chunks
from faster_rcnn.data.dataset import as_float_image
from faster_rcnn.insight import draw
from faster_rcnn.insight.draw import (
    CAPTION_FONT,
    caption_font,
    caption_font_file,
    caption_pixels,
    caption_places,
    draw_detections,
    draw_proposals,
    fallback_fonts,
    save_pictures,
    to_pil,
)
from peak_memory import peak_rise_mb


def test_to_pil_keeps_pixel_values():
    image = torch.zeros(3, 4, 5)
    image[0, 1, 2] = 1.0
    image[2, 3, 4] = 0.5
    array = np.asarray(to_pil(image))
    assert array.shape == (4, 5, 3)
    assert tuple(array[1, 2]) == (255, 0, 0) and tuple(array[3, 4]) == (0, 0, 128)


def test_png_pictures_are_written_at_the_fastest_zlib_level_with_the_pixels_drawn(tmp_path):
    # A photo's picture at PIL's default level 6 took 2.4 times as long to write.
    detections = detections_of([[2.0, 2.0, 20.0, 20.0]], [1], [0.9])
    proposals = {"boxes": detections["boxes"], "scores": detections["scores"]}
    image = torch.rand(3, 30, 40)
    save_pictures(image, detections, proposals, ["a"], tmp_path / "a.png")
    drawn = {
        "a.png": draw_detections(image, detections, ["a"]),
        "a_proposals.png": draw_proposals(image, proposals),
    }
    for name, picture in drawn.items():
        chunks = png_chunks((tmp_path / name).read_bytes())
        zlib_stream = next(chunk[8:-4] for chunk in chunks if chunk[4:8] == b"IDAT")
        assert zlib_stream[1] >> 6 == 0  # FLEVEL 0: zlib's fastest levels, 0 and 1
        with Image.open(tmp_path / name) as saved:
            assert np.array_equal(np.asarray(saved), np.asarray(picture))


def test_both_pictures_are_drawn_from_one_conversion_of_the_image(tmp_path, monkeypatch):
    conversions = []
    monkeypatch.setattr(draw, "to_pil", lambda image: conversions.append(image) or to_pil(image))
    detections = detections_of([[2.0, 2.0, 20.0, 20.0]], [1], [0.9])
    proposals = {"boxes": torch.tensor([[4.0, 4.0, 30.0, 24.0]]), "scores": torch.ones(1)}
    image = torch.rand(3, 30, 40)
    save_pictures(image, detections, proposals, ["a"], tmp_path / "a.png")
    assert len(conversions) == 1
    # Neither picture shows what the other draws.
    with Image.open(tmp_path / "a.png") as saved:
        assert np.array_equal(
            np.asarray(saved), np.asarray(draw_detections(image, detections, ["a"]))
        )
    with Image.open(tmp_path / "a_proposals.png") as saved:
        assert np.array_equal(np.asarray(saved), np.asarray(draw_proposals(image, proposals)))


def test_uint8_levels_are_drawn_as_the_float_image_scaled_from_them():
    """A reader's item is uint8: clamped to 0..1 as if it were float, it drew black and
    the faintest grey."""
    levels = torch.arange(256, dtype=torch.uint8).reshape(1, 16, 16).repeat(3, 1, 1)
    drawn = np.asarray(to_pil(levels))
    assert np.array_equal(drawn, np.asarray(to_pil(as_float_image(levels))))
    assert np.array_equal(drawn[..., 1], np.arange(256).reshape(16, 16))


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/self/status")
def test_to_pil_holds_one_full_size_float_copy():
    # A 3 x 3000 x 3000 image is 108 MB in float32: clamped, scaled and rounded into a
    # new tensor each, two of them at a time raised the peak by 206 MB; scaled and rounded
    # in place, the clamped copy and the 27 MB of uint8 pixels by 128.
    setup = (
        "from faster_rcnn.insight.draw import to_pil\n"
        "to_pil(torch.rand(3, 8, 8))\n"
        "image = torch.rand(3, 3000, 3000)"
    )
    assert peak_rise_mb(setup, "picture = to_pil(image)") < 170  # MB


def test_detections_below_threshold_are_not_drawn():
    image = torch.zeros(3, 60, 80)
    detections = {
        "boxes": torch.tensor([[10.0, 10.0, 40.0, 50.0], [50.0, 5.0, 70.0, 20.0]]),
        "labels": torch.tensor([1, 2]),
        "scores": torch.tensor([0.9, 0.3]),
    }
    array = np.asarray(draw_detections(image, detections, ["a", "b"], score_threshold=0.5))
    assert array[30, 10].any()  # left edge of the kept box
    assert array[40, 25].sum() == 0  # its inside stays untouched
    assert array[12, 70].sum() == 0  # the low-scoring box is absent


def test_proposals_strongest_brightest():
    image = torch.zeros(3, 40, 40)
    proposals = {
        "boxes": torch.tensor([[5.0, 5.0, 15.0, 15.0], [25.0, 25.0, 35.0, 35.0]]),
        "scores": torch.tensor([0.9, 0.1]),
    }
    array = np.asarray(draw_proposals(image, proposals, top_k=2)).astype(int)
    assert array[10, 5].sum() > array[30, 25].sum() > 0


@pytest.mark.parametrize(
    ("picture", "label", "written", "image_format"),
    [
        ("a.jpg", "", ["a.jpg", "a_proposals.jpg"], "JPEG"),
        ("b.tif", "_detections", ["b_detections.tif", "b_proposals.tif"], "TIFF"),
        ("c.d.png", "", ["c.d.png", "c.d_proposals.png"], "PNG"),
    ],
)
def test_an_images_pictures_are_in_the_format_of_the_name_given(
    tmp_path, picture, label, written, image_format
):
    """The proposals picture was always ``<stem>_proposals.png``, whatever the name."""
    detections = detections_of([[2.0, 2.0, 20.0, 20.0]], [1], [0.9])
    proposals = {"boxes": detections["boxes"], "scores": detections["scores"]}
    image = torch.rand(3, 30, 40)
    save_pictures(image, detections, proposals, ["a"], tmp_path / picture, label=label)
    assert sorted(p.name for p in tmp_path.iterdir()) == written
    for name in written:
        with Image.open(tmp_path / name) as saved:
            assert (saved.format, saved.mode, saved.size) == (image_format, "RGB", (40, 30))


@pytest.mark.parametrize("letter", ["ü", "ш", "é"])
def test_captions_draw_letters_beyond_ascii(letter):
    # PIL's default font drew a class named 'chat ü' or 'кошка' with a box for each such
    # letter: the glyph of a character no font has (a private-use code point).
    detections = {
        "boxes": torch.tensor([[5.0, 30.0, 60.0, 50.0]]),
        "labels": torch.tensor([1]),
        "scores": torch.tensor([0.9]),
    }
    image = torch.zeros(3, 60, 80)
    drawn, missing = (
        np.asarray(draw_detections(image, detections, [name])) for name in (letter, "\U0010fffd")
    )
    assert drawn[:30].any() and not np.array_equal(drawn, missing)


def test_lines_and_captions_grow_with_the_image():
    # A 4000 x 3000 photo viewed whole is shrunk about 3 to 5 times: a 2-px outline and an
    # 11-px caption (as on a 640-px image) became a hairline and a smudge.
    image = torch.zeros(3, 3000, 4000)
    box = torch.tensor([[1000.0, 1000.0, 2000.0, 2000.0]])
    detections = {"boxes": box, "labels": torch.tensor([1]), "scores": torch.tensor([0.9])}
    drawn = np.asarray(draw_detections(image, detections, ["cell"])).any(axis=-1)
    scale = (4000 + 3000) / 2 / 640  # 5.47
    assert drawn[1500, 990:1100].sum() == round(2 * scale)  # the left edge: 11 px
    caption_rows = drawn[:1000, 1000:2000].any(axis=1).sum()  # above the box
    assert caption_rows == 48  # 10 on a 640-px image (9 before, whatever the image)
    outlined = np.asarray(draw_proposals(image, {"boxes": box, "scores": torch.ones(1)}))
    assert outlined[1500, 990:1100].any(axis=-1).sum() == round(scale)  # 5 px


def test_a_small_box_on_a_large_image_keeps_its_object_in_sight():
    # 8 px outlines on a 3000 x 2000 image, drawn inside the box, filled a 16-px one whole.
    image = torch.zeros(3, 2000, 3000)
    box = torch.tensor([[1000.0, 1000.0, 1016.0, 1016.0]])
    detections = {"boxes": box, "labels": torch.tensor([1]), "scores": torch.tensor([0.9])}
    drawn = np.asarray(draw_detections(image, detections, ["cell"])).any(axis=-1)
    # 2 px each side, an eighth of its 16; the object inside is not drawn over
    assert np.flatnonzero(drawn[1008, 990:1030]).tolist() == [10, 11, 25, 26]
    outlined = np.asarray(draw_proposals(image, {"boxes": box, "scores": torch.ones(1)}))
    assert outlined[1008, 1000:1017].any(axis=-1).sum() == 4  # 2 px each side, not 4


def test_lines_and_captions_on_an_image_up_to_640_px_keep_their_size():
    image = torch.zeros(3, 400, 600)
    box = torch.tensor([[100.0, 100.0, 200.0, 200.0]])
    detections = {"boxes": box, "labels": torch.tensor([1]), "scores": torch.tensor([0.9])}
    drawn = np.asarray(draw_detections(image, detections, ["cell"])).any(axis=-1)
    assert drawn[150, 90:120].sum() == 2
    assert drawn[:100, 100:200].any(axis=1).sum() == 10
    outlined = np.asarray(draw_proposals(image, {"boxes": box, "scores": torch.ones(1)}))
    assert outlined[150, 90:120].any(axis=-1).sum() == 1


def caption_columns_and_rows(image_size: tuple[int, int], box: list[float]) -> tuple[int, int]:
    """How many columns and rows of the image a detection's caption (in its class's
    colour, outside the box's outline) colours, drawn on black."""
    height, width = image_size
    detections = {
        "boxes": torch.tensor([box]),
        "labels": torch.tensor([1]),
        "scores": torch.tensor([0.9]),
    }
    drawn = np.asarray(draw_detections(torch.zeros(3, height, width), detections, ["cell"]))
    caption = drawn.any(axis=-1)
    x1, y1, x2, y2 = (round(v) for v in box)
    caption[y1 : y2 + 1, x1 : x2 + 1] = False  # the box and its outline
    return int(caption.any(axis=0).sum()), int(caption.any(axis=1).sum())


def test_captions_stay_inside_the_image():
    whole = caption_columns_and_rows((200, 300), [20.0, 50.0, 60.0, 90.0])
    assert whole[1] > 0  # above the box
    # At the right edge it ran past the image, cut short.
    assert caption_columns_and_rows((200, 300), [285.0, 50.0, 299.0, 90.0]) == whole
    # On a box as tall as the image it went below the image's bottom, not drawn at all;
    # it is inside the box, at its top.
    detections = {
        "boxes": torch.tensor([[100.0, 0.0, 299.0, 199.0]]),
        "labels": torch.tensor([1]),
        "scores": torch.tensor([0.9]),
    }
    drawn = np.asarray(draw_detections(torch.zeros(3, 200, 300), detections, ["cell"]))
    assert drawn[3:12, 103:140].any()  # inside the outline


NAMES = ["cell", "nucleus"]


def detections_of(boxes: list[list[float]], labels: list[int], scores: list[float]) -> dict:
    """A detections dict of the boxes, labels and scores given."""
    return {
        "boxes": torch.tensor(boxes),
        "labels": torch.tensor(labels),
        "scores": torch.tensor(scores),
    }


def test_a_caption_without_room_above_goes_inside_its_box_not_over_another():
    # Each caption was drawn at its box's top-left corner, the later over the earlier:
    # on a crowded image they piled up unreadably.
    first, second = [100.0, 100.0, 120.0, 120.0], [110.0, 100.0, 130.0, 120.0]
    image = torch.zeros(3, 200, 300)
    both = np.asarray(
        draw_detections(image, detections_of([first, second], [1, 2], [0.9, 0.8]), NAMES)
    )
    alone = np.asarray(draw_detections(image, detections_of([first], [1], [0.9]), NAMES))
    assert np.array_equal(both[:100], alone[:100])  # the better caption, whole, above
    green = (both[100:121, 132:160] == (60, 180, 75)).all(
        axis=-1
    )  # its colour, right of both boxes
    assert green.any(axis=1).nonzero()[0].tolist() == list(range(2, 12))  # inside its top


def caption_extents(captions: list[str], size: int = 11) -> list[tuple]:
    """Each caption's textbbox at (0, 0) in the captions' font of ``size`` pixels."""
    font = caption_font(CAPTION_FONT, size)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    return [measure.textbbox((0, 0), caption, font=font) for caption in captions]


def test_crowded_captions_never_overlap_and_stay_inside_the_image():
    # 50 cells of 20 px in a grid of 10 x 5 on a 640 x 480 image, scores falling in
    # reading order but for the last cell, the best.
    boxes = [[200.0 + 20 * (k % 10), 150.0 + 20 * (k // 10)] for k in range(50)]
    boxes = [[x, y, x + 20, y + 20] for x, y in boxes]
    scores = [0.9 - 0.01 * k for k in range(49)] + [0.99]
    captions = [f"cell {score:.2f}" for score in scores]
    extents = caption_extents(captions)
    places = caption_places(extents, boxes, scores, (640, 480))
    placed = [
        caption_pixels(extent, place)
        for extent, place in zip(extents, places, strict=True)
        if place is not None
    ]
    assert 5 <= len(placed) < 50  # some left out, their boxes drawn bare
    for a, b in itertools.combinations(placed, 2):
        assert a[2] < b[0] or b[2] < a[0] or a[3] < b[1] or b[3] < a[1], (a, b)
    assert all(x1 >= 0 and y1 >= 0 and x2 < 640 and y2 < 480 for x1, y1, x2, y2 in placed)
    # The best, the last cell's, above its box's top-left, as a lone detection's.
    assert places[49] == (380.0, 218.0)  # its text 11 px high from its top: 230 - 11 - 1
    # The next best, the first cell's, above its box too.
    assert places[0] == (200.0, 138.0)


def test_a_caption_with_no_free_place_is_left_out_and_its_box_drawn():
    box = [100.0, 100.0, 160.0, 140.0]
    scores = [0.9, 0.8, 0.7]
    extents = caption_extents([f"cell {score:.2f}" for score in scores])
    places = caption_places(extents, [box] * 3, scores, (300, 200))
    assert places == [(100.0, 88.0), (100.0, 100.0), None]  # above, inside
    drawn = np.asarray(
        draw_detections(torch.zeros(3, 200, 300), detections_of([box] * 3, [1] * 3, scores), NAMES)
    )
    assert drawn[120, 100].any() and drawn[120, 160].any()  # the outline, left and right


def test_a_large_box_whose_left_corner_a_neighbours_caption_holds_keeps_its_own():
    # The demo's picture: a small ellipse's caption reached over the top-left corner of a
    # large ellipse beside it, above and inside, so the large one, found at 0.99, had none.
    small, large = [112.74, 208.08, 124.88, 231.92], [155.89, 204.84, 320.0, 265.7]
    extents = caption_extents(["ellipse 1.00", "ellipse 1.00"])
    places = caption_places(extents, [small, large], [0.998, 0.997], (320, 320))
    text_w, text_h = extents[1][2], extents[1][3]
    assert places[0] == (112.74, 208.08 - text_h - 1)  # above its box's left
    # Above the large box, ending at its right edge, moved 1 px in from the image's.
    assert places[1] == (320 - text_w - 1, 204.84 - text_h - 1)


def test_separated_captions_are_drawn_as_each_alone():
    boxes = [[20.0, 50.0, 60.0, 90.0], [150.0, 100.0, 250.0, 180.0]]
    image = torch.zeros(3, 200, 300)
    both = np.asarray(draw_detections(image, detections_of(boxes, [1, 2], [0.6, 0.9]), NAMES))
    first, second = (
        np.asarray(draw_detections(image, detections_of([box], [label], [score]), NAMES))
        for box, label, score in zip(boxes, [1, 2], [0.6, 0.9], strict=True)
    )
    assert np.array_equal(both, np.maximum(first, second))
    assert first[:50, 20:60].any(axis=-1).any(axis=1).sum() == 10  # above, as ever


MATPLOTLIB_FONTS = Path(matplotlib.get_data_path()) / "fonts" / "ttf"


@pytest.fixture
def fallbacks(monkeypatch):
    """Captions fall back on two of matplotlib's own fonts (on every machine with it)
    alone, DejaVu Sans Mono, which has APL's symbols, and STIX, which has '⌚'; each
    name's font chosen afresh."""
    fonts = [MATPLOTLIB_FONTS / "DejaVuSansMono.ttf", MATPLOTLIB_FONTS / "STIXGeneral.ttf"]
    monkeypatch.setattr(draw, "fallback_fonts", lambda: fonts)
    caption_font_file.cache_clear()
    yield fonts
    caption_font_file.cache_clear()


def test_a_name_in_letters_dejavu_sans_lacks_is_drawn_in_a_font_that_has_them(fallbacks):
    # A class named in Chinese was drawn as a row of boxes, with no word why.
    assert caption_font_file("кошка") == caption_font_file("γάτα") == CAPTION_FONT
    assert caption_font_file("⍋ grade") == fallbacks[0]
    assert caption_font_file("⌚ watch") == fallbacks[1]  # the first font that has it
    detections = detections_of([[5.0, 30.0, 60.0, 50.0]], [1], [0.9])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        drawn = np.asarray(draw_detections(torch.zeros(3, 60, 80), detections, ["⌚"]))
    with pytest.warns(UserWarning, match="shows as boxes"):
        boxed = np.asarray(draw_detections(torch.zeros(3, 60, 80), detections, ["细"]))
    assert drawn[:30].any() and not np.array_equal(drawn, boxed)


def test_a_name_no_font_here_has_is_warned_of_once(fallbacks):
    detections = detections_of(
        [[5.0, 30.0, 30.0, 50.0], [45.0, 30.0, 75.0, 50.0]], [1, 2], [0.9, 0.8]
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):  # two images
            draw_detections(torch.zeros(3, 60, 80), detections, ["细胞", "клетка"])
    assert [str(warning.message) for warning in caught] == [
        "class '细胞': no font here has its letters, so its name shows as boxes in the pictures"
    ]


def test_captions_fall_back_on_installed_fonts_regular_first_none_all_boxes():
    fonts = fallback_fonts()
    regular, bold = MATPLOTLIB_FONTS / "STIXGeneral.ttf", MATPLOTLIB_FONTS / "STIXGeneralBol.ttf"
    assert fonts.index(regular) < fonts.index(bold)
    # matplotlib's Last Resort font (3.10 on) "has" every character, each a box.
    assert MATPLOTLIB_FONTS / "LastResortHE-Regular.ttf" not in fonts


def test_a_font_installed_since_matplotlib_listed_the_fonts_is_a_fallback(tmp_path, monkeypatch):
    # matplotlib lists the fonts installed once and keeps the list: a font installed
    # after the warning said none had a name's letters was still not used.
    installed = tmp_path / "Watches.ttf"
    shutil.copy(MATPLOTLIB_FONTS / "STIXGeneral.ttf", installed)
    monkeypatch.setattr(font_manager, "findSystemFonts", lambda: [str(installed)])
    fallback_fonts.cache_clear()
    try:
        assert installed in fallback_fonts()
    finally:
        fallback_fonts.cache_clear()
