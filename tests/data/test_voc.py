from pathlib import Path

import pytest
import torch
from PIL import Image

from exif_images import save_exif_jpeg
from faster_rcnn.data.dataset import read_image_levels
from faster_rcnn.data.voc import VOCDetection

RACCOON = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "raccoon"


def _object(name: str, box: tuple[int, int, int, int], difficult: int | None = 0) -> str:
    flag = "" if difficult is None else f"<difficult>{difficult}</difficult>"
    xmin, ymin, xmax, ymax = box
    return (
        f"<object><name>{name}</name><pose>Unspecified</pose>{flag}<bndbox>"
        f"<xmin>{xmin}</xmin><ymin>{ymin}</ymin><xmax>{xmax}</xmax><ymax>{ymax}</ymax>"
        "</bndbox></object>"
    )


def _write_voc(root: Path, annotations: dict[str, tuple[tuple[int, int], str, str]]) -> Path:
    """``annotations``: id -> ((width, height), <filename> text, objects xml)."""
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for k, (image_id, ((width, height), filename, objects)) in enumerate(annotations.items()):
        Image.new("RGB", (width, height), (200, 40 * k, 10)).save(
            root / "JPEGImages" / f"{image_id}.jpg", quality=95
        )
        (root / "Annotations" / f"{image_id}.xml").write_text(
            f"<annotation><folder>x</folder><filename>{filename}</filename>"
            f"<size><width>{width}</width><height>{height}</height><depth>3</depth></size>"
            f"{objects}</annotation>"
        )
    (root / "ImageSets" / "Main" / "train.txt").write_text("\n".join(annotations) + "\n")
    return root


@pytest.fixture
def voc(tmp_path: Path) -> Path:
    return _write_voc(
        tmp_path,
        {
            # <filename> names another file: the id decides.
            "img_a": (
                (40, 30),
                "not_this_one.png",
                _object("dog", (1, 1, 10, 5)) + _object("cat", (5, 3, 40, 30), difficult=1),
            ),
            "img_b": ((20, 50), "img_b.jpg", _object("dog", (3, 4, 3, 4), difficult=None)),
        },
    )


def test_reads_boxes_labels_difficult_and_images(voc: Path) -> None:
    data = VOCDetection(voc)
    assert len(data) == 2 and data.class_names == ("cat", "dog") and data.num_classes == 3

    image, target = data[0]
    assert image.shape == (3, 30, 40) and image.dtype == torch.uint8
    assert torch.allclose(
        image.double().mean(dim=(1, 2)), torch.tensor([200.0, 0, 10], dtype=torch.float64), atol=5
    )
    # 1-based inclusive -> continuous: (x1 - 1, y1 - 1, x2, y2).
    assert torch.equal(target["boxes"], torch.tensor([[0.0, 0, 10, 5], [4, 2, 40, 30]]))
    assert target["boxes"].dtype == torch.float32
    assert torch.equal(target["labels"], torch.tensor([2, 1]))
    assert torch.equal(target["difficult"], torch.tensor([False, True]))
    assert target["image_id"] == 0

    image, target = data[1]
    assert image.shape == (3, 50, 20)
    # A one-pixel box (xmin == xmax) has width 1; a missing <difficult> means 0.
    assert torch.equal(target["boxes"], torch.tensor([[2.0, 3, 3, 4]]))
    assert torch.equal(target["difficult"], torch.tensor([False]))
    assert target["image_id"] == 1
    assert [data.image_size(i) for i in range(2)] == [(30, 40), (50, 20)]
    with pytest.raises(IndexError):
        data[2]


def test_difficult_objects_can_be_dropped(voc: Path) -> None:
    _, target = VOCDetection(voc, keep_difficult=False)[0]
    assert torch.equal(target["boxes"], torch.tensor([[0.0, 0, 10, 5]]))
    assert torch.equal(target["labels"], torch.tensor([2]))


def test_given_class_names_decide_labels_and_unknown_names_are_errors(voc: Path) -> None:
    _, target = VOCDetection(voc, class_names=("dog", "cat", "bird"))[0]
    assert torch.equal(target["labels"], torch.tensor([1, 2]))
    with pytest.raises(ValueError, match=r"img_a\.xml: object 1 has class 'cat'"):
        VOCDetection(voc, class_names=("dog",))


def test_image_size_falls_back_to_the_image_header(tmp_path: Path) -> None:
    root = _write_voc(tmp_path, {"x": ((33, 17), "x.jpg", "")})
    xml = root / "Annotations" / "x.xml"
    xml.write_text(xml.read_text().replace("<width>33</width>", "<width>0</width>"))
    data = VOCDetection(root)
    assert data.image_size(0) == (17, 33)
    assert data[0][1]["boxes"].shape == (0, 4) and data.class_names == ()


@pytest.mark.parametrize(
    ("objects", "message"),
    [
        ("<object><name>dog</name><bndbox><xmin>1</xmin></bndbox></object>", r"<ymin>"),
        (_object("dog", (1, 1, 2, 2)).replace("<ymax>2", "<ymax>two"), r"not a number"),
        (_object("dog", (1, 1, 2, 2), difficult=2), r"<difficult>2"),
        ("<object><name>dog</name", r"x\.xml: malformed XML"),
    ],
)
def test_malformed_annotations_are_errors_naming_file_and_object(
    tmp_path: Path, objects: str, message: str
) -> None:
    root = _write_voc(tmp_path, {"x": ((20, 20), "x.jpg", _object("cat", (1, 1, 5, 5)) + objects)})
    with pytest.raises(ValueError, match=message):
        VOCDetection(root)


@pytest.mark.parametrize(
    "root_element",
    [
        # CVAT's own XML export: every image's boxes in one file
        '<annotations><image name="x.jpg"><box label="cat" xtl="1" ytl="1" xbr="5" '
        'ybr="5"/></image></annotations>',
        # a default namespace puts every element's name in {uri}: none would be found
        "<annotation xmlns='http://example.org/voc'><object><name>cat</name><bndbox>"
        "<xmin>1</xmin><ymin>1</ymin><xmax>5</xmax><ymax>5</ymax></bndbox></object>"
        "</annotation>",
    ],
)
def test_an_xml_that_is_no_voc_annotation_is_refused_not_read_as_holding_no_object(
    tmp_path: Path, root_element: str
) -> None:
    root = _write_voc(tmp_path, {"x": ((20, 20), "x.jpg", "")})
    (root / "Annotations" / "x.xml").write_text(root_element)
    with pytest.raises(ValueError, match=r"x\.xml: not a Pascal VOC annotation: its root"):
        VOCDetection(root)


def test_a_missing_split_file_is_named(voc: Path) -> None:
    with pytest.raises(
        FileNotFoundError, match=r"val\.txt does not exist \(splits found: [a-z, ]*train[a-z, ]*\)$"
    ):
        VOCDetection(voc, split="val")


def test_ids_without_their_image_or_annotation_are_left_out_and_named(voc: Path) -> None:
    # A list written before an image was deleted, or before its annotation was saved:
    # the ids with both files are read, the others named, not the whole split refused.
    listed = voc / "ImageSets" / "Main" / "train.txt"
    listed.write_text("img_a\r\nno_xml\r\nimg_b\r\n\r\n")
    Image.new("RGB", (8, 8)).save(voc / "JPEGImages" / "no_xml.jpg")
    (voc / "JPEGImages" / "img_b.jpg").unlink()
    with pytest.warns(UserWarning) as warned:
        data = VOCDetection(voc)
    assert data.ids == ("img_a",) and [p.name for p in data.image_files] == ["img_a.jpg"]
    assert [str(w.message) for w in warned] == [
        f"{listed}: 2 ids are left out, not found as Annotations/<id>.xml and "
        "JPEGImages/<id>{.jpg,.jpeg,.png,.bmp,.webp,.tif,.tiff,.gif}: no_xml (no annotation), "
        "img_b (no image)"
    ]
    (voc / "Annotations" / "img_a.xml").unlink()
    with (
        pytest.warns(UserWarning),
        pytest.raises(
            ValueError,
            match=r"train\.txt: the train split holds no image \(none of its 3 ids has both an "
            r"annotation and an image\)",
        ),
    ):
        VOCDetection(voc)


def test_class_names_that_differ_only_in_case_are_read_as_one_class(tmp_path: Path) -> None:
    # A labeller's slip: one 'rbc' (and a trailing space) among the 'RBC'. As a class of
    # its own it would be trained on one box, oversampled as the rarest, and scored.
    root = _write_voc(
        tmp_path,
        {
            "a": (
                (40, 30),
                "a.jpg",
                _object("RBC", (1, 1, 9, 9)) + _object("rbc ", (5, 5, 20, 20)),
            ),
            "b": ((40, 30), "b.jpg", _object("RBC", (2, 2, 8, 8)) + _object("WBC", (3, 3, 30, 25))),
        },
    )
    with pytest.warns(UserWarning) as warned:
        data = VOCDetection(root)
    assert [str(w.message) for w in warned] == [
        f"{root} (train): class names that differ only in case are read as one class: "
        "1 box of 'rbc' as 'RBC'"
    ]
    assert data.class_names == ("RBC", "WBC")
    assert data.target(0)["labels"].tolist() == [1, 1]
    # Given classes decide the spelling (a split read in the training split's classes),
    # and a class given in two spellings keeps both (a model trained with both).
    with pytest.warns(UserWarning, match="2 boxes of 'RBC' as 'rbc'$"):
        assert VOCDetection(root, class_names=("rbc", "WBC")).target(1)["labels"].tolist() == [1, 2]
    data = VOCDetection(root, class_names=("RBC", "WBC", "rbc"))
    assert data.target(0)["labels"].tolist() == [1, 3]


def test_an_id_with_spaces_is_the_whole_line(tmp_path: Path) -> None:
    root = _write_voc(
        tmp_path, {"photo 2 copy": ((30, 20), "photo 2 copy.jpg", _object("dog", (2, 3, 12, 15)))}
    )
    (root / "ImageSets" / "Main" / "train.txt").write_text("  photo 2 copy \r\n\n")
    data = VOCDetection(root)
    assert data.ids == ("photo 2 copy",)
    assert [p.name for p in data.image_files] == ["photo 2 copy.jpg"]
    assert torch.equal(data[0][1]["boxes"], torch.tensor([[1.0, 2, 12, 15]]))


def test_an_image_of_another_suffix_is_found_by_its_id(voc: Path) -> None:
    # CVAT's VOC export keeps each image's own format; a .jpg of the id comes first.
    jpegs = voc / "JPEGImages"
    Image.open(jpegs / "img_a.jpg").save(jpegs / "img_a.png")
    (jpegs / "img_a.jpg").rename(jpegs / "img_a.JPG")
    (jpegs / "img_b.jpg").rename(jpegs / "img_b.tif")
    data = VOCDetection(voc)
    assert [p.name for p in data.image_files] == ["img_a.JPG", "img_b.tif"]
    assert data[1][0].shape == (3, 50, 20)
    (jpegs / "img_a.JPG").unlink()
    assert VOCDetection(voc).image_files[0].name == "img_a.png"


@pytest.mark.skipif(not RACCOON.is_dir(), reason="needs ../shared/data/raccoon")
def test_raccoon_dataset() -> None:
    train, test = VOCDetection(RACCOON, "train"), VOCDetection(RACCOON, "test")
    assert (len(train), len(test)) == (160, 40)
    assert set(train.ids).isdisjoint(test.ids)
    assert train.class_names == test.class_names == ("raccoon",)
    num_boxes = 0
    for data in (train, test):
        for i in range(len(data)):
            height, width = data.image_size(i)
            boxes = data.target(i)["boxes"]
            assert len(boxes) >= 1
            assert torch.all(boxes[:, :2] >= 0) and torch.all(boxes[:, 2:] > boxes[:, :2])
            assert torch.all(boxes[:, 2] <= width) and torch.all(boxes[:, 3] <= height)
            num_boxes += len(boxes)
    assert num_boxes == 217
    for i in (0, 1, len(test) - 1):  # decoded images agree with the XML sizes
        image, target = test[i]
        assert image.shape == (3, *test.image_size(i))
        assert torch.equal(target["labels"], torch.ones(len(target["boxes"]), dtype=torch.int64))


@pytest.mark.parametrize(
    ("boxes", "warning", "kept", "labels"),
    [
        (
            [("dog", (0, 1, 10, 5)), ("cat", (5, 3, 60, 30)), ("dog", (50, 40, 60, 45))],
            "2 boxes clipped to the image (x.xml object 0 [0, 1, 10, 5] on pixels 1..40 x "
            "1..30; x.xml object 1 [5, 3, 60, 30] on pixels 1..40 x 1..30); 1 box dropped "
            "(x.xml object 2 [50, 40, 60, 45] on pixels 1..40 x 1..30: outside the image)",
            [[0.0, 0, 10, 5], [4, 2, 40, 30]],
            [2, 1],
        ),
        (
            # A box dragged leftwards (or upwards) saved as drawn: the box between its
            # corners; xmax = xmin - 1 is VOC's box of no area, not a reversed one.
            [("dog", (5, 5, 3, 9)), ("cat", (5, 5, 9, 3)), ("dog", (5, 5, 4, 9))],
            "2 boxes with reversed corners swapped (x.xml object 0 [5, 5, 3, 9] on pixels "
            "1..40 x 1..30; x.xml object 1 [5, 5, 9, 3] on pixels 1..40 x 1..30); 1 box "
            "dropped (x.xml object 2 [5, 5, 4, 9] on pixels 1..40 x 1..30: no area)",
            [[2.0, 4, 5, 9], [4, 2, 9, 5]],
            [2, 1],
        ),
        (
            [("dog", (45, 5, 38, 9))],  # swapped, then clipped: both said
            "1 box with reversed corners swapped (x.xml object 0 [45, 5, 38, 9] on pixels "
            "1..40 x 1..30); 1 box clipped to the image (x.xml object 0 [45, 5, 38, 9] on "
            "pixels 1..40 x 1..30)",
            [[37.0, 4, 40, 9]],
            [2],
        ),
    ],
)
def test_boxes_leaving_the_image_or_without_area_are_clipped_or_dropped_with_a_warning(
    tmp_path: Path, boxes: list, warning: str, kept: list, labels: list[int]
) -> None:
    # The last box, xmin = xmax, is one pixel wide in VOC's inclusive pixel indices: kept.
    objects = "".join(_object(name, box) for name, box in [*boxes, ("cat", (2, 2, 2, 2))])
    root = _write_voc(tmp_path, {"x": ((40, 30), "x.jpg", objects)})
    with pytest.warns(UserWarning) as warned:
        data = VOCDetection(root)
    assert [str(w.message) for w in warned] == [f"{root} (train): {warning}"]
    target = data.target(0)
    assert torch.equal(target["boxes"], torch.tensor([*kept, [1.0, 1, 2, 2]]))
    assert target["labels"].tolist() == [*labels, 1]


def test_an_exif_turned_image_is_turned_when_that_agrees_with_its_size(tmp_path: Path) -> None:
    root = _write_voc(tmp_path, {"x": ((20, 40), "x.jpg", _object("dog", (1, 1, 20, 10)))})
    # Stored 40 wide and 20 high; orientation 6 shows it turned 90 degrees clockwise,
    # 20 wide and 40 high, as <size> says.
    save_exif_jpeg(root / "JPEGImages" / "x.jpg", (40, 20), orientation=6)
    with pytest.warns(
        UserWarning,
        match=r"1 image turned by the EXIF orientation to agree with the annotated <size> \(x\)",
    ):
        data = VOCDetection(root)
    image, target = data[0]
    stored = read_image_levels(root / "JPEGImages" / "x.jpg")
    assert image.shape == (3, 40, 20) and data.image_size(0) == (40, 20)
    assert torch.equal(image, torch.rot90(stored, k=-1, dims=(1, 2)))
    assert image[0, :4].double().mean() > 0.9 * 255  # the red left edge is now the top
    assert torch.equal(target["boxes"], torch.tensor([[0.0, 0, 20, 10]]))


def test_a_size_that_disagrees_with_the_file_is_reported_and_the_file_decides(
    tmp_path: Path,
) -> None:
    root = _write_voc(tmp_path, {"x": ((40, 30), "x.jpg", _object("dog", (1, 1, 50, 50)))})
    xml = root / "Annotations" / "x.xml"
    xml.write_text(xml.read_text().replace("<width>40</width>", "<width>64</width>"))
    save_exif_jpeg(root / "JPEGImages" / "x.jpg", (40, 30), orientation=6)  # not a turn's size
    with pytest.warns(UserWarning) as warned:
        data = VOCDetection(root)
    messages = [str(w.message) for w in warned]
    assert messages[0].endswith(
        "1 image: the annotated <size> differs from the image file's, which is used (x (<size> "
        "64x30, "
        "file 40x30))"
    )
    assert "1 box clipped" in messages[1]
    assert data.image_size(0) == (30, 40)
    assert data[0][0].shape == (3, 30, 40)
    assert torch.equal(data.target(0)["boxes"], torch.tensor([[0.0, 0, 40, 30]]))


def test_a_split_file_not_in_utf8_is_named(voc: Path) -> None:
    (voc / "ImageSets" / "Main" / "train.txt").write_bytes(b"img_a\nimg_\xff\n")
    with pytest.raises(ValueError, match=r"train\.txt: not UTF-8 text \(byte 10 is b'\\xff'\)"):
        VOCDetection(voc)


def test_an_annotation_not_in_utf8_is_named_with_its_first_bad_byte(voc: Path) -> None:
    """A Latin-1 file is refused as not UTF-8 text, not as malformed XML; declared as
    Latin-1, it is read as the declaration says."""
    xml = voc / "Annotations" / "img_b.xml"
    text = xml.read_text().replace("<name>dog</name>", "<name>caf\u00e9</name>")
    xml.write_bytes(text.encode("latin-1"))
    with pytest.raises(ValueError) as refused:
        VOCDetection(voc)
    bad = text.index("\u00e9")
    assert str(refused.value) == f"{xml}: not UTF-8 text (byte {bad} is b'\\xe9'); save it as UTF-8"
    xml.write_bytes(f'<?xml version="1.0" encoding="ISO-8859-1"?>{text}'.encode("latin-1"))
    assert VOCDetection(voc).class_names == ("caf\u00e9", "cat", "dog")
