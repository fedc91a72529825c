import warnings
from pathlib import Path

import pytest
import torch
from PIL import Image

from exif_images import save_exif_jpeg
from faster_rcnn.data import yolo
from faster_rcnn.data.dataset import read_image_levels
from faster_rcnn.data.yolo import YOLODetection


def _yolo(root: Path, split: str | None, labels: dict[str, str], names: str | None = None) -> Path:
    """Images a.png (40 x 20) and b.jpg (10 x 30); ``labels``: file stem -> text."""
    sub = Path(split) if split else Path()
    (root / "images" / sub).mkdir(parents=True)
    (root / "labels" / sub).mkdir(parents=True)
    Image.new("RGB", (40, 20), (255, 0, 0)).save(root / "images" / sub / "a.png")
    Image.new("RGB", (10, 30), (0, 255, 0)).save(root / "images" / sub / "b.jpg")
    (root / "images" / sub / "notes.txt").write_text("not an image")
    for stem, text in labels.items():
        (root / "labels" / sub / f"{stem}.txt").write_text(text)
    if names is not None:
        (root / "classes.txt").write_text(names)
    return root


def test_normalised_centres_become_pixel_corners(tmp_path: Path) -> None:
    root = _yolo(tmp_path, "train", {"a": "1 0.5 0.5 0.25 0.5\n\n0 0.125 0.75 0.25 0.5\n"})
    data = YOLODetection(root, "train")
    assert len(data) == 2 and [p.name for p in data.image_files] == ["a.png", "b.jpg"]
    assert data.class_names == ("class0", "class1") and data.num_classes == 3

    image, target = data[0]
    assert image.shape == (3, 20, 40)
    assert torch.equal(image[:, 0, 0], torch.tensor([255, 0, 0], dtype=torch.uint8))
    # cx 0.5 * 40 = 20, w 0.25 * 40 = 10; cy 0.5 * 20 = 10, h 0.5 * 20 = 10.
    expected = torch.tensor([[15.0, 5, 25, 15], [0, 10, 10, 20]])
    assert torch.equal(target["boxes"], expected)
    assert torch.equal(target["labels"], torch.tensor([2, 1]))
    assert target["image_id"] == 0
    assert torch.equal(data.target(0)["boxes"], expected)

    image, target = data[1]  # no label file: no object
    assert image.shape == (3, 30, 10) and target["boxes"].shape == (0, 4)
    assert target["labels"].dtype == torch.int64 and target["image_id"] == 1
    assert [data.image_size(i) for i in range(2)] == [(20, 40), (30, 10)]
    with pytest.raises(IndexError):
        data[2]


def test_each_image_header_is_read_once_for_its_targets_and_sizes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The recipe, the loader's aspect-ratio groups and the audits each ask for every
    image's size: training read each header three times (a minute of 118,000 images)."""
    root = _yolo(tmp_path, "train", {"a": "0 0.5 0.5 0.25 0.5\n"})
    data = YOLODetection(root, "train")
    read = []
    monkeypatch.setattr(yolo, "read_upright_size", lambda path: read.append(path.name) or (20, 40))
    for _ in range(3):
        assert data.image_size(0) == (20, 40)
        assert data.target(0)["boxes"].tolist() == [[15.0, 5.0, 25.0, 15.0]]
    data.image_size(1)
    assert read == ["a.png", "b.jpg"]
    with pytest.raises(IndexError):
        data.image_size(-1)


def test_flat_layout_and_class_names_file(tmp_path: Path) -> None:
    root = _yolo(tmp_path, None, {"b": "2 0.5 0.5 1 1\n", "a": ""}, names="cat\ndog\nbird\n\n")
    data = YOLODetection(root)
    assert data.class_names == ("cat", "dog", "bird")
    assert data[0][1]["boxes"].shape == (0, 4)  # an empty label file
    _, target = data[1]
    assert torch.equal(target["boxes"], torch.tensor([[0.0, 0, 10, 30]]))
    assert torch.equal(target["labels"], torch.tensor([3]))


def test_labelimg_classes_file_beside_the_labels(tmp_path: Path) -> None:
    # LabelImg writes classes.txt into the folder it saves the labels in.
    root = _yolo(tmp_path, "train", {"a": "1 0.5 0.5 0.25 0.5\n"})
    (root / "labels" / "train" / "classes.txt").write_text("cat\ndog\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nor is classes.txt a label file without an image
        data = YOLODetection(root, "train")
    assert data.class_names == ("cat", "dog")
    assert data.target(0)["labels"].tolist() == [2]


def test_names_keep_their_lines_ids_spaces_and_trailing_blank_lines_aside(tmp_path: Path) -> None:
    root = _yolo(tmp_path, None, {"a": "1 0.5 0.5 0.25 0.5\n"}, names="cat  \r\n dog\n\n \n")
    data = YOLODetection(root)
    assert data.class_names == ("cat", "dog")
    assert data.target(0)["labels"].tolist() == [2]


@pytest.mark.parametrize(("names", "line"), [("cat\n\ndog\nbird\n", 2), ("\ncat\ndog\n", 1)])
def test_a_blank_line_before_a_class_name_is_an_error_naming_it(
    tmp_path: Path, names: str, line: int
) -> None:
    # Darknet and LabelImg read class 1 of "cat, blank, dog" as the blank line: leaving it
    # out would read each label of a dog as a bird's.
    root = _yolo(tmp_path, None, {"a": "1 0.5 0.5 0.25 0.5\n"}, names=names)
    with pytest.raises(ValueError, match=rf"classes\.txt, line {line}: blank, with class names"):
        YOLODetection(root)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0 0.5 0.5 0.2\n", r"a\.txt, line 1: expected 5 values 'class cx cy w h' or a .*got 4"),
        ("0 0.1 0.1 0.5 0.1 0.5\n", r"a\.txt, line 1: expected 5 values .* polygon .*got 6"),
        ("0 0.1 0.1 0.5 0.1 0.5 0.9 0.3\n", r"line 1: expected 5 values .*got 8"),
        ("0 0.1 0.1 0.5 0.1 30 80\n", r"line 1: polygon point 3 \(x y = 30 80\) must be fractions"),
        ("0 0.5 0.5 0.2 0.2\n0 0.5 3.5 0.2 0.2\n", r"a\.txt, line 2: cx cy w h = 0.5 3.5"),
        ("0 120 80 30 20\n", r"a\.txt, line 1: .* must be fractions of the image size"),
        ("0 0.5 0.5 nan 0.2\n", r"a\.txt, line 1: cx cy w h = 0.5 0.5 nan 0.2 must be"),
        ("1.5 0.5 0.5 0.2 0.2\n", r"a\.txt, line 1: class 1.5 is not an integer"),
        ("nan 0.5 0.5 0.2 0.2\n", r"a\.txt, line 1: class nan is not an integer"),
        ("dog 0.5 0.5 0.2 0.2\n", r"a\.txt, line 1: 'dog 0.5 0.5 0.2 0.2' is not numbers"),
        (
            "2 0.5 0.5 0.2 0.2\n",
            r"a\.txt, line 1: class 2 is not among the 2 classes named in .*classes\.txt "
            r"\(ids 0 to 1\)$",
        ),
        (
            "1 0.5 0.5 0.2 0.2\n\n7 0.5 0.5 0.2 0.2\n3 0.5 0.5 0.2 0.2\n",
            r"a\.txt, line 3: class 7 is not among the 2 classes named in .*classes\.txt",
        ),
    ],
)
def test_malformed_labels_are_errors_naming_file_and_line(
    tmp_path: Path, text: str, message: str
) -> None:
    root = _yolo(tmp_path, None, {"a": text}, names="cat\ndog\n")
    with pytest.raises(ValueError, match=message):
        YOLODetection(root)


def test_missing_split_is_named(tmp_path: Path) -> None:
    root = _yolo(tmp_path, "train", {})
    with pytest.raises(
        FileNotFoundError, match=r"images/val does not exist \(splits found: train\)$"
    ):
        YOLODetection(root, "val")


def test_boxes_past_the_border_are_clipped_and_those_outside_dropped_with_a_count(
    tmp_path: Path,
) -> None:
    text = "0 0.9 0.5 0.6 0.2\n1 0.5 1.5 0.2 0.2\n0 0.5 0.5 0.5 0.5\n1 -0.1 0.5 0.4 1.2\n"
    root = _yolo(tmp_path, None, {"a": text}, names="cat\ndog\n")
    with pytest.warns(UserWarning) as warned:
        data = YOLODetection(root)
    assert len(warned) == 1
    assert str(warned[0].message) == (
        f"{root / 'labels'}: 2 boxes clipped to the image (a.txt, line 1 [0.6, 0.4, 1.2, 0.6] "
        "in image fractions; a.txt, line 4 [-0.3, -0.1, 0.1, 1.1] in image fractions); 1 box "
        "dropped (a.txt, line 2 [0.4, 1.4, 0.6, 1.6] in image fractions: outside the image)"
    )
    # a.png is 40 x 20: x 0.6..1.0 -> 24..40, y 0.4..0.6 -> 8..12; x 0..0.1 -> 0..4.
    expected = torch.tensor([[24.0, 8, 40, 12], [10, 5, 30, 15], [0, 0, 4, 20]])
    assert torch.allclose(data[0][1]["boxes"], expected)
    assert data[0][1]["labels"].tolist() == [1, 1, 2]
    assert len(data.box_audit.clipped) == 2 and len(data.box_audit.dropped) == 1


def test_boxes_without_area_are_dropped_with_a_count(tmp_path: Path) -> None:
    """Line 4 is a flat polygon: its three points lie on y = 0.1, so its extent has no
    height."""
    text = "0 0.5 0.5 0 0.2\n1 0.5 0.5 -0.2 0.2\n0 0.5 0.5 0.5 0.5\n1 0.1 0.1 0.5 0.1 0.3 0.1\n"
    root = _yolo(tmp_path, None, {"a": text}, names="cat\ndog\n")
    with pytest.warns(UserWarning) as warned:
        data = YOLODetection(root)
    assert [str(w.message) for w in warned] == [
        f"{root / 'labels'}: 3 boxes dropped (a.txt, line 1 [0.5, 0.4, 0.5, 0.6] in image "
        "fractions: no area; a.txt, line 2 [0.6, 0.4, 0.4, 0.6] in image fractions: corners "
        "reversed; a.txt, line 4 [0.1, 0.1, 0.5, 0.1] in image fractions: no area)"
    ]
    # a.png is 40 x 20: the third box spans x 0.25..0.75 -> 10..30, y 0.25..0.75 -> 5..15.
    assert torch.allclose(data[0][1]["boxes"], torch.tensor([[10.0, 5, 30, 15]]))
    assert data[0][1]["labels"].tolist() == [1]


def test_a_corner_past_the_border_by_the_files_rounding_is_clipped_without_a_warning(
    tmp_path: Path,
) -> None:
    """cx 0.0123455 - w / 2 (w 0.024692) is -5e-7 (6 decimals' rounding): clipped to 0,
    not reported; -2e-6 is beyond rounding and reported."""
    text = "0 0.0123455 0.5 0.024692 0.5\n1 0.0123440 0.5 0.024692 0.5\n"
    root = _yolo(tmp_path, None, {"a": text}, names="cat\ndog\n")
    with pytest.warns(UserWarning) as warned:
        data = YOLODetection(root)
    assert len(data.box_audit.clipped) == 1 and "a.txt, line 2" in data.box_audit.clipped[0]
    assert len(warned) == 1 and "1 box clipped" in str(warned[0].message)
    assert data[0][1]["boxes"][:, 0].tolist() == [0.0, 0.0]


def test_a_label_file_not_in_utf8_is_named(tmp_path: Path) -> None:
    root = _yolo(tmp_path, None, {}, names="cat\ndog\n")
    (root / "classes.txt").write_bytes("chat\nc\xe9page\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"classes\.txt: not UTF-8 text \(byte 6 is b'\\xe9'\)"):
        YOLODetection(root)


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_label_files_in_utf16_with_a_byte_order_mark_are_read(
    tmp_path: Path, encoding: str
) -> None:
    """Windows Notepad's "Unicode" (UTF-16 with a byte-order mark) was refused as not
    UTF-8."""
    root = _yolo(tmp_path, None, {})
    mark = "\ufeff".encode(encoding)
    (root / "classes.txt").write_bytes(mark + "chat\r\nchien\r\n".encode(encoding))
    (root / "labels" / "a.txt").write_bytes(mark + "1 0.5 0.5 0.25 0.5\r\n".encode(encoding))
    data = YOLODetection(root)
    assert data.class_names == ("chat", "chien")
    assert data.target(0)["boxes"].tolist() == [[15.0, 5.0, 25.0, 15.0]]
    assert data.target(0)["labels"].tolist() == [2]
    # Cut in the middle of a character: not UTF-16 after all, named as such.
    (root / "labels" / "a.txt").write_bytes(mark + "1 0.5".encode(encoding) + b"5")
    with pytest.raises(ValueError, match=r"a\.txt: not UTF-16 text \(byte 12 is b'5'\)"):
        YOLODetection(root)


def test_utf16_without_a_byte_order_mark_is_named_not_read_as_garbled_names(
    tmp_path: Path,
) -> None:
    """Read as UTF-8, UTF-16 without a mark had a NUL beside each letter: class names
    'c\x00h\x00a\x00t\x00' and no word of why."""
    root = _yolo(tmp_path, None, {})
    (root / "classes.txt").write_bytes("chat\r\nchien\r\n".encode("utf-16-le"))
    message = r"classes\.txt: not UTF-8 text \(byte 1 is b'\\x00': UTF-16 without a byte-order"
    with pytest.raises(ValueError, match=message):
        YOLODetection(root)


def test_label_files_without_a_readable_image_are_named_in_a_warning(tmp_path: Path) -> None:
    # c.ppm is not a format the readers take; A.txt differs from a.png's stem in case.
    labels = {"a": "0 0.5 0.5 0.2 0.2\n", "A": "0 0.5 0.5 0.2 0.2\n", "c": "0 0.5 0.5 0.2 0.2\n"}
    root = _yolo(tmp_path, "train", labels)
    Image.new("RGB", (8, 8)).save(root / "images" / "train" / "c.ppm")
    (root / "labels" / "train" / "classes.txt").write_text("cat\n")  # a names file: not labels
    with pytest.warns(UserWarning) as warned:
        data = YOLODetection(root, "train")
    assert [str(w.message) for w in warned] == [
        f"{root / 'labels' / 'train'}: 2 label files are not read, no image of theirs was found "
        "(.jpg/.jpeg/.png/.bmp/.webp/.tif/.tiff/.gif): A.txt, c.txt"
    ]
    assert [p.name for p in data.image_files] == ["a.png", "b.jpg"]


def test_tiff_images_are_read_and_a_dataset_whose_labels_all_have_images_is_quiet(
    tmp_path: Path,
) -> None:
    root = _yolo(tmp_path, None, {"a": "0 0.5 0.5 0.5 0.5\n"})
    Image.new("I;16", (16, 12), 32768).save(root / "images" / "c.tif")
    (root / "labels" / "c.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data = YOLODetection(root)
    assert [p.name for p in data.image_files] == ["a.png", "b.jpg", "c.tif"]
    image, target = data[2]
    # 16-bit grey at half scale, as three equal channels.
    assert image.shape == (3, 12, 16) and torch.allclose(
        image, torch.full_like(image, 0.5), atol=1e-4
    )
    assert torch.equal(target["boxes"], torch.tensor([[4.0, 3, 12, 9]]))


def test_polygon_lines_become_the_box_of_their_extent(tmp_path: Path) -> None:
    # Ultralytics' segment labels (a triangle) and oriented boxes (four corners) beside a
    # plain box, in one file; a.png is 40 x 20.
    text = "0 0.1 0.2 0.5 0.1 0.3 0.9\n1 0.5 0.5 0.25 0.5\n1 0.6 0.2 0.9 0.5 0.7 0.8 0.4 0.5\n"
    root = _yolo(tmp_path, None, {"a": text}, names="cat\ndog\n")
    target = YOLODetection(root)[0][1]
    expected = torch.tensor([[4.0, 2, 20, 18], [15, 5, 25, 15], [16, 4, 36, 16]])
    assert torch.allclose(target["boxes"], expected)
    assert target["labels"].tolist() == [1, 2, 2]


def test_an_exif_tagged_image_is_read_upright_and_its_labels_placed_on_it(
    tmp_path: Path,
) -> None:
    """As Ultralytics reads YOLO sets (OpenCV applies the tag), the labels are fractions
    of the upright image: c.jpg is stored 40 wide and 20 high with orientation 6, so it
    is read 20 wide and 40 high, its red left edge on top, and the box in its top half
    lies at y 0-20 of 40, not 0-10 of 20."""
    root = _yolo(tmp_path, None, {"c": "0 0.5 0.25 1 0.5\n"})
    save_exif_jpeg(root / "images" / "c.jpg", (40, 20), orientation=6)
    data = YOLODetection(root)
    index = [p.name for p in data.image_files].index("c.jpg")
    image, target = data[index]
    stored = read_image_levels(root / "images" / "c.jpg")
    assert image.shape == (3, 40, 20) and data.image_size(index) == (40, 20)
    assert torch.equal(image, torch.rot90(stored, k=-1, dims=(1, 2)))
    assert (
        image[0, :4].double().mean() > 0.9 * 255 and image[2, -4:].double().mean() > 0.9 * 255
    )  # red top, blue bottom
    expected = torch.tensor([[0.0, 0, 20, 20]])
    assert torch.equal(target["boxes"], expected)
    assert torch.equal(data.target(index)["boxes"], expected)  # from the header alone


@pytest.mark.parametrize("orientation", [1, 9])
def test_an_upright_or_undefined_orientation_reads_the_image_as_stored(
    tmp_path: Path, orientation: int
) -> None:
    root = _yolo(tmp_path, None, {"c": "0 0.5 0.5 0.5 0.5\n"})
    save_exif_jpeg(root / "images" / "c.jpg", (40, 20), orientation)
    dataset = YOLODetection(root)
    index = [p.name for p in dataset.image_files].index("c.jpg")
    image, target = dataset[index]
    assert torch.equal(image, read_image_levels(root / "images" / "c.jpg"))
    assert image.shape == (3, 20, 40) and dataset.image_size(index) == (20, 40)
    assert torch.equal(target["boxes"], torch.tensor([[10.0, 5, 30, 15]]))


def test_a_split_without_any_label_file_is_named_in_a_warning(tmp_path: Path) -> None:
    root = _yolo(tmp_path, "val", {})
    (root / "labels" / "val").rmdir()  # labels/val was never made, or named otherwise
    with pytest.warns(UserWarning, match=r"no label file for any of the 2 images \(as .*a\.txt\)"):
        data = YOLODetection(root, "val")
    assert [len(data[i][1]["boxes"]) for i in range(2)] == [0, 0]
    root = _yolo(tmp_path / "labelled", "val", {"b": ""})  # an empty file: a background image
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        YOLODetection(root, "val")
