import numpy as np
import pytest
import torch
from PIL import Image

from faster_rcnn.insight.draw import draw_detections, draw_proposals, save_pictures, to_pil


def test_to_pil_keeps_pixel_values():
    image = torch.zeros(3, 4, 5)
    image[0, 1, 2] = 1.0
    image[2, 3, 4] = 0.5
    array = np.asarray(to_pil(image))
    assert array.shape == (4, 5, 3)
    assert tuple(array[1, 2]) == (255, 0, 0) and tuple(array[3, 4]) == (0, 0, 128)


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
    detections = {
        "boxes": torch.tensor([[2.0, 2.0, 20.0, 20.0]]),
        "labels": torch.tensor([1]),
        "scores": torch.tensor([0.9]),
    }
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
