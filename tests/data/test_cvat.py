"""The CVAT for images 1.1 reader: CVAT's own ``annotations.xml``, with its images in
``images/``, ``images/<subset>/`` or beside it, built here from small files."""

from pathlib import Path

import pytest
import torch
from PIL import Image

from exif_images import save_exif_jpeg
from faster_rcnn.cli import main
from faster_rcnn.cli.explain import read_annotated_image
from faster_rcnn.data import open_dataset
from faster_rcnn.data.cvat import CVATDetection, is_cvat_file, turned_box_extent
from faster_rcnn.data.dataset import read_image_levels
from faster_rcnn.data.open import find_layout


def image(path: Path, size: tuple[int, int] = (100, 80)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (90, 120, 200)).save(path)
    return path


def image_element(
    name: str, *shapes: str, size: tuple[int, int] = (100, 80), subset: str | None = None
) -> str:
    """An ``<image>`` as CVAT writes it, holding the ``shapes`` (XML elements)."""
    said = f' subset="{subset}"' if subset else ""
    return (
        f'<image id="0" name="{name}" width="{size[0]}" height="{size[1]}"{said}>'
        f"{''.join(shapes)}</image>"
    )


def box(x1: float, y1: float, x2: float, y2: float, label: str = "cell", more: str = "") -> str:
    return (
        f'<box label="{label}" source="manual" occluded="0" xtl="{x1}" ytl="{y1}" xbr="{x2}" '
        f'ybr="{y2}" z_order="0"{more}></box>'
    )


def cvat_file(path: Path, *images: str, labels: tuple[str, ...] | None = ("cell",)) -> Path:
    """A CVAT for images 1.1 file of a task declaring ``labels`` (none: no ``<meta>``
    labels) and holding the ``images`` (XML elements)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    declared = "".join(
        f"<label><name>{name}</name><color>#fa3253</color><type>any</type></label>"
        for name in labels or ()
    )
    meta = f"<meta><task><id>1</id><name>t</name><labels>{declared}</labels></task></meta>"
    path.write_text(
        '<?xml version="1.0" encoding="utf-8"?>\n<annotations><version>1.1</version>'
        f"{meta}{''.join(images)}</annotations>"
    )
    return path


def test_each_shape_gives_the_box_of_its_extent(tmp_path):
    image(tmp_path / "images" / "a.jpg")
    shapes = [
        box(10, 20, 40, 60),
        # 40 wide and 20 high about (30, 30), turned 30 degrees: it spans
        # (40 cos 30 + 20 sin 30) / 2 = (34.641 + 10) / 2 = 22.3205 to each side and
        # (40 sin 30 + 20 cos 30) / 2 = (20 + 17.3205) / 2 = 18.6603 up and down.
        box(10, 20, 50, 40, more=' rotation="30.0"'),
        '<polygon label="cell" points="5.00,30.00;25.00,32.00;15.00,60.00"></polygon>',
        '<polyline label="cell" points="1.5,7;9,2"></polyline>',
        # Radii 10 along x and 5, turned 60 degrees: sqrt(100/4 + 25 * 3/4) = 6.6144 to
        # each side and sqrt(100 * 3/4 + 25/4) = 9.0139 up and down.
        '<ellipse label="cell" cx="50" cy="40" rx="10" ry="5" rotation="60"></ellipse>',
        '<mask label="cell" rle="3, 7, 2" left="3" top="4" width="10" height="20"></mask>',
    ]
    file = cvat_file(tmp_path / "annotations.xml", image_element("a.jpg", *shapes))
    dataset = CVATDetection(file)
    assert dataset.class_names == ("cell",) and dataset.image_size(0) == (80, 100)
    expected = [
        [10, 20, 40, 60],
        [30 - 22.3205, 30 - 18.6603, 30 + 22.3205, 30 + 18.6603],
        [5, 30, 25, 60],
        [1.5, 2, 9, 7],
        [50 - 6.6144, 40 - 9.0139, 50 + 6.6144, 40 + 9.0139],
        [3, 4, 13, 24],
    ]
    boxes = dataset.target(0)["boxes"]
    torch.testing.assert_close(boxes, torch.tensor(expected), atol=1e-4, rtol=0)


def test_a_box_turned_a_quarter_turn_has_its_sides_swapped_and_a_half_turn_kept():
    # 20 wide and 10 high about (10, 10).
    for rotation, expected in ((90, [5, 0, 15, 20]), (180, [0, 5, 20, 15]), (-90, [5, 0, 15, 20])):
        assert turned_box_extent(0, 5, 20, 15, rotation) == pytest.approx(expected)


def test_classes_are_in_the_order_meta_declares_them_less_a_skeletons_points(tmp_path):
    image(tmp_path / "a.jpg")
    file = cvat_file(
        tmp_path / "annotations.xml",
        image_element("a.jpg", box(1, 1, 5, 5, "dog"), box(2, 2, 6, 6, "cat")),
        labels=("dog", "zebra", "cat"),
    )
    # A skeleton's point is a label of its own, with a <parent>, and a label of tags
    # marks no box: neither is a class.
    never_boxed = (
        "<label><name>nose</name><type>points</type><parent>dog</parent></label>"
        "<label><name>blurred</name><type>tag</type></label>"
    )
    file.write_text(file.read_text().replace("</labels>", f"{never_boxed}</labels>"))
    dataset = CVATDetection(file)
    assert dataset.class_names == ("dog", "zebra", "cat")
    assert dataset.target(0)["labels"].tolist() == [1, 3]
    # Without labels in <meta>: those found, sorted, as the other readers give them.
    cvat_file(
        file, image_element("a.jpg", box(1, 1, 5, 5, "dog"), box(2, 2, 6, 6, "cat")), labels=None
    )
    assert CVATDetection(file).class_names == ("cat", "dog")


def test_shapes_that_mark_no_box_are_skipped_with_one_warning_and_an_image_without_shapes_has_none(
    tmp_path,
):
    for name in ("a.jpg", "b.jpg"):
        image(tmp_path / name)
    skipped = [
        '<points label="cell" points="1,2;3,4"></points>',
        '<tag label="cell" source="manual"></tag>',
        '<skeleton label="cell"><points label="nose" points="1,2"></points></skeleton>',
        '<points label="cell" points="5,6"></points>',
    ]
    file = cvat_file(
        tmp_path / "annotations.xml",
        image_element("b.jpg", skipped[0], box(1, 2, 4, 6), *skipped[1:]),
        image_element("a.jpg"),
    )
    with pytest.warns(UserWarning) as warned:
        dataset = CVATDetection(file)
    assert [str(w.message) for w in warned] == [
        f"{file}: 4 shapes mark no box and are skipped (2 points, 1 skeleton, 1 tag): b.jpg (4)"
    ]
    assert dataset.image_files == [tmp_path / "b.jpg", tmp_path / "a.jpg"]  # the file's order
    assert dataset.target(0)["boxes"].tolist() == [[1, 2, 4, 6]]
    empty = dataset.target(1)
    assert empty["boxes"].shape == (0, 4) and empty["labels"].shape == (0,)


def test_subsets_are_splits_with_their_images_in_a_folder_each(tmp_path, capsys):
    """A project exported with its images: images/<subset>/, CVAT's subset names, which
    train and val find; found from the folder or the file."""
    images = []
    for subset, count in (("Train", 3), ("Validation", 2), ("Test", 1)):
        for k in range(count):
            image(tmp_path / "images" / subset / f"{subset}{k}.jpg")
            images.append(image_element(f"{subset}{k}.jpg", box(2, 2, 12, 10), subset=subset))
    file = cvat_file(tmp_path / "annotations.xml", *images)
    for data in (tmp_path, file):
        layout = find_layout(data)
        assert (layout.format, layout.splits) == (
            "CVAT for images 1.1",
            ("Test", "Train", "Validation"),
        )
    val = open_dataset(tmp_path, "val")
    assert val.image_files == [tmp_path / f"images/Validation/Validation{k}.jpg" for k in range(2)]
    assert len(open_dataset(tmp_path, "train")) == 3
    assert main(["data", "--data", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{tmp_path}: CVAT for images 1.1, splits Test, Train, Validation"
    assert "  Validation: 2 images, 2 boxes; image sizes 100x80 to 100x80 (width x height)" in lines
    assert lines[-1] == (
        "train trains on Train and Validation together (--split Train: on Train alone); "
        "evaluate scores Test"
    )


def test_a_subset_none_of_whose_images_is_there_is_left_out_saying_so(tmp_path, capsys):
    """A project exported with its Test subset's shapes but not its images made every
    split's layout one that evaluate refused: Test is left out with a note, as a
    Roboflow split without images is, and asking for it says why; Train is kept whatever
    it holds, for opening it to say what is wrong."""
    elements = []
    for subset, count in (("Train", 2), ("Validation", 1), ("Test", 2)):
        for k in range(count):
            if subset != "Test":
                image(tmp_path / "images" / subset / f"{subset}{k}.jpg")
            elements.append(image_element(f"{subset}{k}.jpg", box(2, 2, 12, 10), subset=subset))
    file = cvat_file(tmp_path / "annotations.xml", *elements)
    said = f"{file}: the Test split holds no image (none of its 2 images is there)"
    layout = find_layout(tmp_path)
    assert (layout.splits, layout.note) == (("Train", "Validation"), f"{said}: left out")
    assert main(["data", "--data", str(tmp_path)]) == 0
    assert f"note: {said}: left out" in capsys.readouterr().out.splitlines()
    with pytest.raises(ValueError) as refused:
        open_dataset(tmp_path, "test")
    assert str(refused.value) == (
        f"{tmp_path} (CVAT for images 1.1) has the splits Train, Validation; none fits "
        f"'test' ({said}: left out)"
    )
    for k in range(2):
        (tmp_path / f"images/Train/Train{k}.jpg").unlink()
    assert find_layout(tmp_path).splits == ("Train", "Validation")
    with (
        pytest.warns(UserWarning, match="2 images are left out"),
        pytest.raises(ValueError) as refused,
    ):
        open_dataset(tmp_path, "train")
    assert str(refused.value) == (
        f"{file}: the Train split holds no image (none of its 2 images is there)"
    )


def test_subsets_whose_images_share_one_folder_warn_of_none_of_the_others(tmp_path, recwarn):
    """CVAT 1.x exports every image in images/: opening Train does not take the
    Validation images beside its own for images the file left out."""
    image(tmp_path / "images" / "t.jpg")
    image(tmp_path / "images" / "v.jpg")
    cvat_file(
        tmp_path / "annotations.xml",
        image_element("t.jpg", box(1, 1, 4, 4), subset="Train"),
        image_element("v.jpg", box(2, 2, 5, 5), subset="Validation"),
    )
    assert open_dataset(tmp_path, "train").image_files == [tmp_path / "images/t.jpg"]
    assert open_dataset(tmp_path, "val").image_files == [tmp_path / "images/v.jpg"]
    assert [str(w.message) for w in recwarn] == []


def test_a_file_without_subsets_has_no_splits_its_images_in_images_or_beside_it(tmp_path):
    image(tmp_path / "export" / "images" / "a.jpg")
    image(tmp_path / "export" / "images" / "sub" / "b.jpg")  # a name with a sub-path
    image(tmp_path / "beside" / "a.jpg")
    elements = [
        image_element("a.jpg", box(1, 1, 4, 4), subset="default"),
        image_element("sub/b.jpg", box(2, 2, 5, 5)),
    ]
    cvat_file(tmp_path / "export" / "annotations.xml", *elements)
    cvat_file(tmp_path / "beside" / "annotations.xml", elements[0])
    layout = find_layout(tmp_path / "export")
    assert (layout.format, layout.splits) == ("CVAT for images 1.1", ())
    assert layout.open("train").image_files == [
        tmp_path / "export/images/a.jpg",
        tmp_path / "export/images/sub/b.jpg",
    ]
    assert find_layout(tmp_path / "beside").open("val").image_files == [tmp_path / "beside/a.jpg"]


def test_images_not_there_or_not_named_are_left_out_with_a_warning(tmp_path):
    image(tmp_path / "images" / "a.jpg")
    image(tmp_path / "images" / "unlabelled.jpg")
    file = cvat_file(
        tmp_path / "annotations.xml",
        image_element("a.jpg", box(1, 1, 4, 4)),
        image_element("gone.jpg"),
    )
    with pytest.warns(UserWarning) as warned:
        dataset = open_dataset(tmp_path)
    assert dataset.image_files == [tmp_path / "images/a.jpg"]
    assert [str(w.message) for w in warned] == [
        f"{file}: 1 image is left out, not found: {tmp_path / 'images/gone.jpg'}",
        f"{file}: 1 image is not in it and left out (unlabelled.jpg): an image of the CVAT "
        "task without shapes is one without objects",
    ]


def test_boxes_are_clipped_to_the_image_whose_file_decides_its_size(tmp_path):
    image(tmp_path / "a.jpg", (60, 40))
    file = cvat_file(
        tmp_path / "annotations.xml",
        image_element("a.jpg", box(2, 30, 70, 35), box(65, 1, 70, 6), size=(100, 80)),
    )
    with pytest.warns(UserWarning) as warned:
        dataset = CVATDetection(file)
    assert [str(w.message) for w in warned] == [
        f"{file}: 1 image: the annotated width and height differs from the image file's, "
        "which is used (a.jpg (width and height 100x80, file 60x40))",
        f"{file}: 1 box clipped to the image (a.jpg, box 0 'cell' [2, 30, 70, 35] on 60x40); 1 "
        "box dropped (a.jpg, box 1 'cell' [65, 1, 70, 6] on 60x40: outside the image)",
    ]
    assert dataset.image_size(0) == (40, 60)
    assert dataset.target(0)["boxes"].tolist() == [[2, 30, 60, 35]]


def test_an_image_annotated_turned_by_its_exif_orientation_is_read_turned(tmp_path):
    """Stored 40 wide and 20 high, orientation 6 shows it 20 wide and 40 high, the size
    CVAT recorded: it is read so."""
    save_exif_jpeg(tmp_path / "x.jpg", (40, 20), orientation=6)
    file = cvat_file(
        tmp_path / "annotations.xml", image_element("x.jpg", box(2, 30, 18, 38), size=(20, 40))
    )
    with pytest.warns(UserWarning, match="1 image turned by the EXIF orientation"):
        dataset = CVATDetection(file)
    pixels, target = dataset[0]
    assert pixels.shape == (3, 40, 20)
    assert torch.equal(pixels, read_image_levels(tmp_path / "x.jpg", exif_transpose=True))
    assert target["boxes"].tolist() == [[2, 30, 18, 38]]


@pytest.mark.parametrize(
    ("bad", "said"),
    [
        (
            box(1, 1, 4, 4, "dog"),
            "a.jpg, box 1 'dog': the label is not one of those <meta> declares ('cell')",
        ),
        (box(1, 1, 4, 4, ""), "a.jpg, box 1: no label"),
        (box(1, "x", 4, 4), "a.jpg, box 1 'cell': ytl is 'x', not a number"),
        (
            box(1, 1, 4, 4, more=' rotation="inf"'),
            "a.jpg, box 1 'cell': rotation is 'inf', not a number",
        ),
        (
            '<polygon label="cell" points="1,2;3"></polygon>',
            "a.jpg, polygon 1 'cell': points '1,2;3' are not x1,y1;x2,y2;... numbers",
        ),
        (
            '<polyline label="cell"></polyline>',
            "a.jpg, polyline 1 'cell': points None are not x1,y1;x2,y2;... numbers",
        ),
        (
            '<ellipse label="cell" cx="5" cy="5" rx="0" ry="2"></ellipse>',
            "a.jpg, ellipse 1 'cell': rx 0 is not above 0",
        ),
        (
            '<ellipse label="cell" cx="5" cy="5" rx="3"></ellipse>',
            "a.jpg, ellipse 1 'cell': ry is missing",
        ),
        (
            '<mask label="cell" left="1" top="1" width="-2" height="2"></mask>',
            "a.jpg, mask 1 'cell': width -2 is not above 0",
        ),
        (
            '<circle label="cell"></circle>',
            "a.jpg, shape 1: <circle> is none of box, ellipse, mask, polygon, polyline, "
            "points, skeleton, tag, cuboid",
        ),
    ],
)
def test_a_bad_shape_is_refused_in_one_line_naming_the_file_image_and_shape(tmp_path, bad, said):
    image(tmp_path / "a.jpg")
    file = cvat_file(tmp_path / "annotations.xml", image_element("a.jpg", box(1, 1, 4, 4), bad))
    with pytest.raises(ValueError) as refused:
        open_dataset(tmp_path)
    assert str(refused.value) == f"{file}, {said}"


def test_a_bad_image_or_file_is_refused_in_one_line_naming_it(tmp_path):
    image(tmp_path / "a.jpg")
    file = tmp_path / "annotations.xml"
    track = (
        '<track id="0" label="cell" source="manual"><box frame="0" outside="0" keyframe="1" '
        'occluded="0" xtl="1" ytl="1" xbr="4" ybr="4" z_order="0"></box></track>'
    )
    for element, said in (
        ('<image id="3" width="10" height="10"></image>', "image id '3': no name"),
        ('<image id="0" name="a.jpg" width="10"></image>', "a.jpg: height is missing"),
        (
            '<image id="0" name="a.jpg" width="10.5" height="8"></image>',
            "a.jpg: width is '10.5', not a whole number above 0",
        ),
        (
            track,
            'CVAT for video (its shapes are in <track> elements): export "CVAT for images 1.1" '
            "instead",
        ),
    ):
        cvat_file(file, element)
        with pytest.raises(ValueError) as refused:
            find_layout(tmp_path)
        assert str(refused.value) == f"{file}{', ' if 'CVAT' not in said else ': '}{said}"
    cvat_file(file, image_element("b.jpg"))
    with pytest.raises(ValueError) as refused, pytest.warns(UserWarning, match="not found"):
        find_layout(file).open("train")
    assert str(refused.value) == (
        f"{file}: the dataset holds no image (none of its 1 image is there)"
    )


def test_a_cvat_file_is_told_from_a_voc_file_by_its_root_and_first_element(tmp_path):
    cases = {
        "cvat.xml": ("<annotations><version>1.1</version></annotations>", True),
        "meta.xml": ("<annotations><meta></meta><image/></annotations>", True),
        "voc.xml": ("<annotation><filename>a.jpg</filename></annotation>", False),
        "other.xml": ("<annotations><image/></annotations>", False),
        "empty.xml": ("<annotations/>", False),
        "not_xml.xml": ("annotations", False),
    }
    for name, (text, expected) in cases.items():
        (tmp_path / name).write_text(text)
        assert is_cvat_file(tmp_path / name) is expected, name


def test_explain_reads_the_shapes_of_the_image_of_that_name(tmp_path):
    image(tmp_path / "images" / "Train" / "d.png", (80, 40))
    file = cvat_file(
        tmp_path / "annotations.xml",
        image_element("other.png", box(1, 1, 4, 4), subset="Train"),
        image_element(
            "d.png", box(2, 3, 20, 30), box(70, 30, 90, 45), size=(80, 40), subset="Train"
        ),
    )
    with pytest.warns(UserWarning, match=r"1 box clipped to the image \(d\.png, box 1 'cell' "):
        pixels, boxes, names = read_annotated_image(file, tmp_path / "images/Train/d.png")
    assert torch.equal(pixels, read_image_levels(tmp_path / "images/Train/d.png"))
    assert torch.equal(boxes, torch.tensor([[2.0, 3.0, 20.0, 30.0], [70.0, 30.0, 80.0, 40.0]]))
    assert names == ("cell", "cell")
    with pytest.raises(ValueError) as refused:
        read_annotated_image(file, tmp_path / "e.png")
    assert str(refused.value) == f"{file} has no image named 'e.png'"


def test_a_cvat_dataset_trains(tmp_path):
    elements = []
    for k in range(4):
        image(tmp_path / "data" / "images" / f"{k}.jpg")
        elements.append(image_element(f"{k}.jpg", box(5, 5, 20 + k, 20)))
    cvat_file(tmp_path / "data" / "annotations.xml", *elements)
    out = tmp_path / "run"
    argv = ["train", "--data", str(tmp_path / "data"), "--steps", "2", "--batch-size", "2"]
    argv += ["--min-size", "64", "--max-size", "64", "--out", str(out)]
    assert main(argv) == 0
    assert (out / "model.safetensors").is_file()


def test_a_file_not_in_the_utf8_it_declares_is_named_with_its_first_bad_byte(tmp_path):
    image(tmp_path / "a.jpg")
    file = cvat_file(tmp_path / "annotations.xml", image_element("a.jpg", box(1, 1, 9, 9)))
    text = file.read_text().replace("cell", "cell\u00e9")
    file.write_bytes(text.encode("latin-1"))
    with pytest.raises(ValueError) as refused:
        find_layout(tmp_path).open("train")
    bad = text.index("\u00e9")
    assert (
        str(refused.value) == f"{file}: not UTF-8 text (byte {bad} is b'\\xe9'); save it as UTF-8"
    )
