"""Fuzzing the readers: random bytes as images, random XML, JSON and YOLO text, random and
degenerate boxes, each opened as a user opens a dataset (``open_dataset``). The only
acceptable outcomes are a dataset whose targets keep the data contract, or the project's
own one-line error (``ValueError`` / ``FileNotFoundError``).
Any other exception, a message over several lines, or a box outside its image is a
defect."""

import io
import json
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image
from pycocotools import mask as mask_utils

from faster_rcnn.data.dataset import UnreadableImageError, read_image
from faster_rcnn.data.open import find_layout, open_dataset

# The suite runs the same cases every time; FUZZ_RANDOM=1 FUZZ_EXAMPLES=2000 explores.
FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "150")),
    derandomize="FUZZ_RANDOM" not in os.environ,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
ONE_LINE_ERRORS = (ValueError, FileNotFoundError)


def _png(size: tuple[int, int] = (24, 16), mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size).save(buffer, format="PNG")
    return buffer.getvalue()


def _jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (24, 16), (10, 200, 30)).save(buffer, format="JPEG")
    return buffer.getvalue()


VALID_IMAGES = [_png(), _png(mode="L"), _png(mode="I;16"), _png(mode="RGBA"), _jpeg()]


@st.composite
def damaged_images(draw: st.DrawFn) -> bytes:
    """A valid image cut short, with bytes overwritten or inserted, or random bytes."""
    kind = draw(st.sampled_from(["random", "cut", "overwrite", "insert"]))
    if kind == "random":
        return draw(st.binary(max_size=400))
    data = bytearray(draw(st.sampled_from(VALID_IMAGES)))
    at = draw(st.integers(0, len(data) - 1))
    if kind == "cut":
        return bytes(data[:at])
    chunk = draw(st.binary(min_size=1, max_size=16))
    if kind == "overwrite":
        data[at : at + len(chunk)] = chunk
    else:
        data[at:at] = chunk
    return bytes(data)


def _assert_one_line(error: BaseException) -> None:
    event(f"refused: {type(error).__name__}")
    assert "\n" not in str(error), f"a message over several lines: {error!r}"


@FUZZ
@given(data=damaged_images(), suffix=st.sampled_from([".png", ".jpg", ".bmp"]))
def test_any_bytes_decode_to_an_image_or_an_unreadable_image_error(data, suffix):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"image{suffix}"
        path.write_bytes(data)
        try:
            image = read_image(path)
        except UnreadableImageError as error:
            _assert_one_line(error)
            assert error.path == path
            return
    event("decoded")
    assert image.dtype == torch.float32 and image.dim() == 3 and image.shape[0] == 3
    assert bool(torch.isfinite(image).all()) and 0 <= float(image.min()) <= float(image.max()) <= 1


def _assert_contract(dataset) -> None:
    """Every target has finite boxes inside its image, with area, and labels in range."""
    for index in range(len(dataset)):
        target = dataset.target(index)
        boxes, labels = target["boxes"], target["labels"]
        assert boxes.shape == (len(labels), 4) and boxes.dtype == torch.float32
        assert bool(((labels >= 1) & (labels < dataset.num_classes)).all())
        if len(boxes):
            height, width = dataset.image_size(index)
            assert bool(torch.isfinite(boxes).all())
            assert bool((boxes[:, 2:] > boxes[:, :2]).all()), boxes
            assert bool((boxes[:, :2] >= 0).all()) and float(boxes[:, 2].max()) <= width
            assert float(boxes[:, 3].max()) <= height


def _open_or_one_line_error(opener) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dataset = opener()
    except ONE_LINE_ERRORS as error:
        _assert_one_line(error)
        return
    event("opened")
    _assert_contract(dataset)


NUMBERS = st.one_of(
    st.integers(-10_000, 10_000),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["", " 12 ", "1e3", "-0", "nan", "12px", "0x10"]),
)
# Mostly plausible pixel coordinates, sometimes anything.
XML_TEXT = st.one_of(*[st.integers(-20, 80).map(str)] * 6, NUMBERS.map(str), st.text(max_size=12))


@st.composite
def voc_annotations(draw: st.DrawFn) -> str:
    """A VOC annotation with random values in its fields, or random text around it."""
    width, height = draw(XML_TEXT), draw(XML_TEXT)
    objects = ""
    for _ in range(draw(st.integers(0, 4))):
        name = draw(st.sampled_from(["dog", "cat", "", " dog "]))
        fields = "".join(
            f"<{f}>{_escape(draw(XML_TEXT))}</{f}>" for f in ("xmin", "ymin", "xmax", "ymax")
        )
        difficult = draw(
            st.sampled_from(["", "<difficult>1</difficult>", "<difficult>x</difficult>"])
        )
        objects += f"<object><name>{name}</name>{difficult}<bndbox>{fields}</bndbox></object>"
    xml = (
        f"<annotation><size><width>{_escape(width)}</width><height>{_escape(height)}</height>"
        f"</size>{objects}</annotation>"
    )
    if draw(st.booleans()):
        at = draw(st.integers(0, len(xml)))
        xml = xml[:at] + draw(st.text(max_size=8)) + xml[at:]
    return xml


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@FUZZ
@given(xml=voc_annotations(), encoding=st.sampled_from(["utf-8", "latin-1", "utf-16"]))
def test_voc_opens_or_says_what_is_wrong_in_one_line(xml, encoding):
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
            (root / sub).mkdir(parents=True)
        Image.new("RGB", (40, 30)).save(root / "JPEGImages" / "x.jpg")
        try:
            data = xml.encode(encoding)
        except UnicodeEncodeError:
            data = xml.encode("utf-8")
        (root / "Annotations" / "x.xml").write_bytes(data)
        (root / "ImageSets" / "Main" / "train.txt").write_text("x\n")
        _open_or_one_line_error(lambda: open_dataset(root))


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | NUMBERS | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def coco_files(draw: st.DrawFn) -> object:
    """A valid COCO file with some fields replaced by random JSON, or random JSON."""
    if draw(st.integers(0, 9)) == 0:
        return draw(JSON_VALUES)
    data = {
        "images": [{"id": 1, "file_name": "a.png", "width": 24, "height": 16}],
        "categories": [{"id": 3, "name": "dog"}],
        "annotations": [
            {"id": k, "image_id": 1, "category_id": 3, "bbox": [2, 2, 10, 8]} for k in range(3)
        ],
    }
    for _ in range(draw(st.integers(1, 4))):
        section = draw(st.sampled_from(["images", "categories", "annotations"]))
        if draw(st.integers(0, 5)) == 0:  # the whole section
            data[section] = draw(JSON_VALUES)
            continue
        if not isinstance(data[section], list) or not data[section]:
            continue
        record = draw(st.sampled_from(data[section]))
        if not isinstance(record, dict):
            continue
        key = draw(st.sampled_from([*record, "iscrowd"]))
        record[key] = draw(JSON_VALUES | st.lists(NUMBERS, min_size=4, max_size=4))
    return data


@FUZZ
@given(data=coco_files())
def test_coco_opens_or_says_what_is_wrong_in_one_line(data):
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "a.png").write_bytes(VALID_IMAGES[0])
        (root / "instances.json").write_text(json.dumps(data))
        _open_or_one_line_error(lambda: open_dataset(root / "instances.json"))


@st.composite
def rles(draw: st.DrawFn) -> dict:
    """An RLE of a random mask, uncompressed (its counts) or compressed (pycocotools'
    string), sometimes with a count, a character or its size changed."""
    height, width = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    cuts = sorted(draw(st.lists(st.integers(0, height * width), max_size=6)))
    counts = [b - a for a, b in zip([0, *cuts], [*cuts, height * width], strict=True)]
    rle: dict = {"size": [height, width], "counts": counts}
    if draw(st.booleans()):
        pixels = np.repeat(np.arange(len(counts)) % 2, counts).astype(np.uint8)
        mask = np.asfortranarray(pixels.reshape((height, width), order="F"))
        rle["counts"] = mask_utils.encode(mask)["counts"].decode()
    if draw(st.integers(0, 3)) == 0:
        key = draw(st.sampled_from(["size", "counts"]))
        rle[key] = draw(JSON_VALUES | st.text(max_size=6) | st.lists(st.integers(-1, 2**40)))
    return rle


SEGMENTATIONS = st.one_of(
    st.lists(st.lists(st.one_of(st.integers(-10, 40), NUMBERS), max_size=8), max_size=3),
    rles(),
    JSON_VALUES,
)


@FUZZ
@given(segmentations=st.lists(SEGMENTATIONS, min_size=1, max_size=3))
def test_coco_segmentations_without_bbox_open_or_say_what_is_wrong_in_one_line(segmentations):
    annotations = [
        {"id": k, "image_id": 1, "category_id": 3, "segmentation": segmentation}
        for k, segmentation in enumerate(segmentations)
    ]
    data = {
        "images": [{"id": 1, "file_name": "a.png", "width": 24, "height": 16}],
        "categories": [{"id": 3, "name": "dog"}],
        "annotations": annotations,
    }
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "a.png").write_bytes(VALID_IMAGES[0])
        (root / "instances.json").write_text(json.dumps(data))
        _open_or_one_line_error(lambda: open_dataset(root / "instances.json"))


YOLO_FIELD = st.one_of(
    *[st.floats(-0.3, 1.3, allow_nan=False).map(lambda v: f"{v:.4g}")] * 6,
    st.floats(-3, 3, allow_nan=False).map(lambda v: f"{v:.4g}"),
    st.sampled_from(["0", "1", "nan", "inf", "-inf", "x", "1e309", ""]),
)


@FUZZ
@given(
    lines=st.lists(
        st.one_of(*[st.lists(YOLO_FIELD, min_size=5, max_size=5)] * 4, st.lists(YOLO_FIELD))
        .map(" ".join)
        .map(lambda line: line if not line or line[0] == "-" else "0" + line[1:]),
        max_size=5,
    ),
    names=st.sampled_from([None, "dog\ncat\n", "dog\n", ""]),
)
def test_yolo_opens_or_says_what_is_wrong_in_one_line(lines, names):
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "images").mkdir()
        (root / "labels").mkdir()
        (root / "images" / "a.png").write_bytes(VALID_IMAGES[0])
        (root / "labels" / "a.txt").write_text("\n".join(lines))
        if names is not None:
            (root / "classes.txt").write_text(names)
        _open_or_one_line_error(lambda: open_dataset(root))


CSV_COLUMNS = ["filename", "width", "height", "class", "xmin", "ymin", "xmax", "ymax"]
# True one time in ten: Hypothesis draws the least of st.integers far more often than that.
RARELY = st.sampled_from([False] * 9 + [True])


@st.composite
def csv_rows(draw: st.DrawFn, columns: list[str], size: tuple[str, str]) -> str:
    """A row of a box of the image ``a.png`` recorded as ``size`` (width, height), most
    often plausible (corners in order, reaching past the border at times), else with a
    field of any value (commas and quotes too, which the csv module reads) or one
    short."""
    x1, y1 = draw(st.integers(-10, 30)), draw(st.integers(-10, 20))
    value = {
        "filename": draw(st.sampled_from(["a.png"] * 12 + ["b.png", "", "A.PNG"])),
        "class": draw(st.sampled_from(["dog"] * 6 + ["cat"] * 5 + ['"a, b"', ""])),
        "width": size[0],
        "height": size[1],
        "xmin": str(x1),
        "ymin": str(y1),
        "xmax": str(x1 + draw(st.integers(0, 30))),
        "ymax": str(y1 + draw(st.integers(1, 20))),
    }
    if draw(RARELY):
        value[draw(st.sampled_from(CSV_COLUMNS))] = draw(XML_TEXT)
    row = [value[name] for name in columns]
    return ",".join(row[: len(row) - draw(RARELY)])


@st.composite
def csv_files(draw: st.DrawFn) -> str:
    """A CSV of boxes of the 24 x 16 image ``a.png``, its columns in any order (sometimes
    one missing), its size recorded right or not, or random text inserted into it."""
    columns = draw(st.permutations(CSV_COLUMNS))
    if draw(RARELY):
        columns = columns[1:]
    size = draw(st.sampled_from([("24", "16")] * 6 + [("16", "24"), ("30", "16"), ("0", "16")]))
    rows = draw(st.lists(csv_rows(columns, size), min_size=1, max_size=4))
    text = "\n".join([",".join(columns), *rows])
    if draw(RARELY):
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.text(max_size=8)) + text[at:]
    return text


@FUZZ
@given(text=csv_files())
def test_csv_opens_or_says_what_is_wrong_in_one_line(text):
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "a.png").write_bytes(VALID_IMAGES[0])
        (root / "_annotations.csv").write_text(text)
        # Read as CSV whatever it holds, so that a refusal is the reader's (keras-retinanet's
        # where the text inserted makes the header a row of numbers).
        assert find_layout(root).format in (
            "TensorFlow Object Detection CSV",
            "keras-retinanet CSV",
        )
        _open_or_one_line_error(lambda: open_dataset(root))


# keras-retinanet's columns, which its CSV writes without a header.
RETINANET_COLUMNS = ["filename", "xmin", "ymin", "xmax", "ymax", "class"]


@st.composite
def retinanet_files(draw: st.DrawFn) -> tuple[str, str | None]:
    """keras-retinanet's CSV of boxes of the image ``a.png`` (no header; random text
    inserted at times) and its class mapping: none, one that maps its classes, one that
    lacks one, or random text."""
    rows = draw(st.lists(csv_rows(RETINANET_COLUMNS, ("24", "16")), min_size=1, max_size=4))
    text = "\n".join(rows)
    if draw(RARELY):
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.text(max_size=8)) + text[at:]
    mapping = draw(st.sampled_from([None, "dog,0\ncat,1\n", "cat,0\n", "dog,1\ncat,0\n"]))
    if draw(RARELY):
        mapping = draw(st.text(max_size=20))
    return text, mapping


@FUZZ
@given(files=retinanet_files())
def test_a_keras_retinanet_csv_opens_or_says_what_is_wrong_in_one_line(files):
    text, mapping = files
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "a.png").write_bytes(VALID_IMAGES[0])
        (root / "annotations.csv").write_text(text)
        if mapping is not None:
            (root / "classes.csv").write_text(mapping)
        _open_or_one_line_error(lambda: open_dataset(root / "annotations.csv"))
