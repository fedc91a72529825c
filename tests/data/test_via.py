"""The VGG Image Annotator (VIA) reader: VIA 1's and 2's JSON exports and VIA 2's project
file, and the Mask R-CNN balloon dataset's layout, built here from small files."""

import json
import math
from pathlib import Path

import pytest
import torch
from PIL import Image

from exif_images import save_exif_jpeg
from faster_rcnn.cli import main
from faster_rcnn.cli.explain import read_annotated_image
from faster_rcnn.data import open_dataset
from faster_rcnn.data.dataset import read_image_levels
from faster_rcnn.data.open import find_layout
from faster_rcnn.data.via import VIADetection, ellipse_extent, is_via_file


def image(path: Path, size: tuple[int, int] = (100, 80)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (90, 120, 200)).save(path)
    return path


def region(shape: dict, **attributes) -> dict:
    """A region as VIA writes it: its shape and its region attributes."""
    return {"shape_attributes": shape, "region_attributes": attributes}


def rect(x: float, y: float, width: float, height: float, label: str = "cell") -> dict:
    return region({"name": "rect", "x": x, "y": y, "width": width, "height": height}, label=label)


def via_file(path: Path, regions: dict[str, list[dict]]) -> Path:
    """A VIA 2 export of the images named by ``regions`` (file name: its regions), keyed
    as VIA keys them, by name and size."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        f"{name}123": {"filename": name, "size": 123, "regions": shapes, "file_attributes": {}}
        for name, shapes in regions.items()
    }
    path.write_text(json.dumps(data))
    return path


def test_each_shape_gives_the_box_of_its_extent(tmp_path):
    image(tmp_path / "a.jpg")
    theta = math.pi / 3
    shapes = [
        {"name": "rect", "x": 10, "y": 20, "width": 30, "height": 40},
        {"name": "polygon", "all_points_x": [5, 25, 15], "all_points_y": [30, 32, 60]},
        {"name": "polyline", "all_points_x": [1.5, 9], "all_points_y": [7, 2]},
        {"name": "circle", "cx": 50, "cy": 40, "r": 7},
        # Radii 10 along x and 5, turned 60 degrees: cos² = 1/4 and sin² = 3/4, so it
        # reaches sqrt(100/4 + 25 * 3/4) = sqrt(43.75) = 6.6144 to each side and
        # sqrt(100 * 3/4 + 25/4) = sqrt(81.25) = 9.0139 up and down.
        {"name": "ellipse", "cx": 50, "cy": 40, "rx": 10, "ry": 5, "theta": theta},
        {"name": "ellipse", "cx": 50, "cy": 40, "rx": 10, "ry": 5},  # VIA 1: no theta
    ]
    file = via_file(tmp_path / "via.json", {"a.jpg": [region(s, label="cell") for s in shapes]})
    dataset = VIADetection(file)
    assert dataset.class_names == ("cell",) and dataset.image_size(0) == (80, 100)
    expected = [
        [10, 20, 40, 60],
        [5, 30, 25, 60],
        [1.5, 2, 9, 7],
        [43, 33, 57, 47],
        [50 - 6.6144, 40 - 9.0139, 50 + 6.6144, 40 + 9.0139],
        [40, 35, 60, 45],
    ]
    boxes = dataset.target(0)["boxes"]
    torch.testing.assert_close(boxes, torch.tensor(expected), atol=1e-4, rtol=0)
    assert dataset.target(0)["labels"].tolist() == [1] * 6


def test_an_ellipse_turned_a_quarter_or_half_turn_has_its_radii_swapped_or_kept():
    for theta, half in ((0.0, (4, 2)), (math.pi / 2, (2, 4)), (math.pi, (4, 2))):
        corners = ellipse_extent(10, 20, 4, 2, theta)
        assert corners == pytest.approx([10 - half[0], 20 - half[1], 10 + half[0], 20 + half[1]])


def test_points_are_left_out_with_one_warning_and_an_image_without_regions_has_no_object(
    tmp_path,
):
    for name in ("a.jpg", "b.jpg"):
        image(tmp_path / name)
    point = region({"name": "point", "cx": 5, "cy": 6}, label="nucleus")
    file = via_file(tmp_path / "via.json", {"b.jpg": [point, rect(1, 2, 3, 4), point], "a.jpg": []})
    with pytest.warns(UserWarning) as warned:
        dataset = VIADetection(file)
    assert [str(w.message) for w in warned] == [
        f"{file}: 2 point regions are left out: a point marks no box"
    ]
    # The file's order, not the names'; the class of a point is none.
    assert dataset.image_files == [tmp_path / "b.jpg", tmp_path / "a.jpg"]
    assert dataset.class_names == ("cell",)
    assert dataset.target(0)["boxes"].tolist() == [[1, 2, 4, 6]]
    empty = dataset.target(1)
    assert empty["boxes"].shape == (0, 4) and empty["labels"].shape == (0,)


def test_via1_regions_keyed_by_number_and_a_via2_project_read_as_the_export(tmp_path):
    image(tmp_path / "a.jpg")
    image(tmp_path / "b.jpg")
    regions = {"a.jpg": [rect(1, 2, 10, 10, "dog"), rect(20, 20, 5, 5, "cat")], "b.jpg": []}
    export = via_file(tmp_path / "export" / "via.json", regions)
    entries = json.loads(export.read_text())
    # VIA 1: regions an object keyed "0", "1", ..., with fileref and base64_img_data.
    via1 = {
        key: {**entry, "fileref": "", "base64_img_data": "", "regions": dict(enumerate(r))}
        for (key, entry), r in zip(entries.items(), regions.values(), strict=True)
    }
    project = {
        "_via_settings": {"ui": {}, "core": {"buffer_size": 18}, "project": {"name": "p"}},
        "_via_img_metadata": entries,
        "_via_attributes": {"region": {"label": {"type": "text"}}, "file": {}},
        "_via_data_format_version": "2.0.10",
        "_via_image_id_list": list(entries),
    }
    for name, data in (("via_region_data.json", via1), ("via_project_1Jan2024.json", project)):
        file = tmp_path / name
        file.write_text(json.dumps(data))
        assert is_via_file(file)
        dataset = VIADetection(file)
        assert dataset.class_names == ("cat", "dog")
        assert dataset.image_files == [tmp_path / "a.jpg", tmp_path / "b.jpg"]
        assert dataset.target(0)["boxes"].tolist() == [[1, 2, 11, 12], [20, 20, 25, 25]]
        assert dataset.target(0)["labels"].tolist() == [2, 1]
        assert len(dataset.target(1)["boxes"]) == 0


@pytest.mark.parametrize(
    ("attributes", "classes"),
    [
        # The one attribute filled, whatever its name; one left empty on every region
        # (VIA writes a text attribute's default, "") is none.
        ([{"kind": "rbc"}, {"kind": "wbc", "note": ""}], ("rbc", "wbc")),
        # label before any other, even among the usual names.
        ([{"label": "rbc", "name": "cell 1", "note": "x"}, {"label": "wbc"}], ("rbc", "wbc")),
        # The one usual name among others.
        ([{"type": "rbc", "note": "blurred"}, {"type": "wbc", "note": "x"}], ("rbc", "wbc")),
        # A checkbox attribute: the option checked (VIA leaves out those unchecked, a
        # false one is not checked either).
        ([{"class": {"rbc": True}}, {"class": {"wbc": True, "rbc": False}}], ("rbc", "wbc")),
    ],
)
def test_the_class_is_the_attribute_the_regions_fill_or_the_usual_one(
    tmp_path, attributes, classes
):
    image(tmp_path / "a.jpg")
    shape = {"name": "rect", "x": 1, "y": 1, "width": 5, "height": 5}
    file = via_file(tmp_path / "via.json", {"a.jpg": [region(shape, **a) for a in attributes]})
    dataset = VIADetection(file)
    assert dataset.class_names == classes
    assert dataset.target(0)["labels"].tolist() == [1, 2]


@pytest.mark.parametrize(
    ("attributes", "said"),
    [
        (
            [{"name": "rbc", "type": "round"}, {"name": "wbc"}],
            "the regions have the attributes 'name', 'type'; which one is the class cannot "
            "be told: name it 'label' in the file's region_attributes",
        ),
        (
            [{"form": "round", "colour": "red"}],
            "the regions have the attributes 'form', 'colour'; which one is the class cannot "
            "be told: name it 'label' in the file's region_attributes",
        ),
    ],
)
def test_a_class_attribute_that_cannot_be_told_is_refused_naming_the_attributes(
    tmp_path, attributes, said
):
    image(tmp_path / "a.jpg")
    shape = {"name": "rect", "x": 1, "y": 1, "width": 5, "height": 5}
    file = via_file(tmp_path / "via.json", {"a.jpg": [region(shape, **a) for a in attributes]})
    with pytest.raises(ValueError) as refused:
        VIADetection(file)
    assert str(refused.value) == f"{file}: {said}"


@pytest.mark.parametrize("attributes", [{}, {"label": ""}])
def test_regions_that_fill_no_attribute_are_one_class_saying_so(tmp_path, attributes):
    """The balloon dataset's regions hold no attribute: all of one class, "object"."""
    image(tmp_path / "a.jpg")
    image(tmp_path / "b.jpg")
    shape = {"name": "rect", "x": 1, "y": 2, "width": 5, "height": 6}
    regions = {"a.jpg": [region(shape, **attributes)] * 2, "b.jpg": [region(shape)]}
    file = via_file(tmp_path / "via.json", regions)
    with pytest.warns(UserWarning) as warned:
        dataset = VIADetection(file)
    assert dataset.class_names == ("object",)
    assert [dataset.target(k)["labels"].tolist() for k in range(2)] == [[1, 1], [1]]
    assert dataset.target(1)["boxes"].tolist() == [[1.0, 2.0, 6.0, 8.0]]
    assert [str(w.message) for w in warned] == [
        f"{file}: no region fills a region attribute to give its class: every region is "
        "read as one class, 'object' (to name classes, add a 'label' in VIA and set it on "
        "every region)"
    ]


RECT = {"name": "rect", "x": 1, "y": 2, "width": 5, "height": 5}


@pytest.mark.parametrize(
    ("bad", "said"),
    [
        ({"region_attributes": {"label": "cell"}}, "a.jpg, region 1: no 'shape_attributes'"),
        (
            region({**RECT, "name": "cuboid"}, label="cell"),
            "a.jpg, region 1: the shape "
            "'cuboid' is none of rect, circle, ellipse, polygon, polyline, point",
        ),
        (
            region({**RECT, "width": 0}, label="cell"),
            "a.jpg, region 1: rect width 0 is not above 0",
        ),
        (
            region({**RECT, "x": "10"}, label="cell"),
            "a.jpg, region 1: rect x is '10', not a number",
        ),
        (
            region({"name": "circle", "cx": 5, "cy": 5}, label="cell"),
            "a.jpg, region 1: circle r is missing",
        ),
        (
            region({"name": "polygon", "all_points_x": [1, 2], "all_points_y": [3]}, label="c"),
            "a.jpg, region 1: polygon all_points_x and all_points_y must be lists of as many "
            "numbers, at least one (they are of 2 and 1)",
        ),
        (
            region({"name": "polygon", "all_points_x": [1, None], "all_points_y": [3, 4]}),
            "a.jpg, region 1: polygon all_points_x[1] is None, not a number",
        ),
        (region(RECT, label=" "), "a.jpg, region 1: no class ('label' is ' ')"),
        (region(RECT, note="x"), "a.jpg, region 1: no class ('label' is missing)"),
        (region(RECT, label={}), "a.jpg, region 1: no class ('label' is {})"),
        (
            region(RECT, label={"rbc": True, "wbc": True}),
            "a.jpg, region 1: 'label' has 'rbc', 'wbc' checked; a box has one class",
        ),
    ],
)
def test_each_bad_region_is_named_in_one_line(tmp_path, bad, said):
    image(tmp_path / "a.jpg")
    file = via_file(tmp_path / "via.json", {"a.jpg": [rect(1, 1, 4, 4), bad]})
    with pytest.raises(ValueError) as refused:
        open_dataset(tmp_path)
    assert str(refused.value) == f"{file}, {said}"


def test_bad_images_are_named_in_one_line(tmp_path):
    image(tmp_path / "a.jpg")
    file = tmp_path / "via.json"
    for data, said in (
        ({"a.jpg1": {"filename": "a.jpg", "size": 1}}, "a.jpg: no 'regions' list"),
        ({"a.jpg1": {"size": 1, "regions": []}}, "a.jpg1: no 'filename'"),
        (
            {"images": [], "categories": []},  # a COCO file opened as VIA
            "images: not an image (an object with 'filename' and 'regions')",
        ),
        (
            {
                "a.jpg1": {"filename": "a.jpg", "size": 1, "regions": []},
                "a.jpg2": {"filename": "a.jpg", "size": 2, "regions": []},
            },
            "a.jpg: named by two images, 'a.jpg1' and 'a.jpg2'; remove one from the project",
        ),
    ):
        file.write_text(json.dumps(data))
        with pytest.raises(ValueError) as refused:
            VIADetection(file)
        assert str(refused.value) == f"{file}, {said}"


def test_images_not_there_or_not_named_are_left_out_with_a_warning(tmp_path):
    image(tmp_path / "a.jpg")
    image(tmp_path / "unlabelled.jpg")
    file = via_file(tmp_path / "via.json", {"a.jpg": [rect(1, 1, 4, 4)], "gone.jpg": []})
    with pytest.warns(UserWarning) as warned:
        dataset = open_dataset(tmp_path)
    assert dataset.image_files == [tmp_path / "a.jpg"]
    assert [str(w.message) for w in warned] == [
        f"{file}: 1 image is left out, not found: {tmp_path / 'gone.jpg'}",
        f"{file}: 1 image is not in it and left out (unlabelled.jpg): an image of the VIA "
        "project without regions is one without objects",
    ]


def test_an_image_named_by_a_url_or_a_path_of_another_machine_is_looked_for_beside_it(
    tmp_path,
):
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        image(tmp_path / name)
    image(tmp_path / "sub" / "d.jpg")
    file = via_file(
        tmp_path / "via.json",
        {
            "https://example.org/shots/a.jpg": [],
            "C:\\Users\\me\\shots\\b.jpg": [],
            "/home/me/shots/c.jpg": [],
            "sub/d.jpg": [],
        },
    )
    dataset = VIADetection(file)
    names = ("a.jpg", "b.jpg", "c.jpg", "sub/d.jpg")
    assert dataset.image_files == [tmp_path / name for name in names]


def test_boxes_past_the_border_are_clipped_to_the_image_turned_by_its_exif_orientation(
    tmp_path,
):
    """VIA shows the image as the browser does, turned: stored 40 wide and 20 high,
    orientation 6 shows it 20 wide and 40 high, where the regions were drawn."""
    save_exif_jpeg(tmp_path / "x.jpg", (40, 20), orientation=6)
    file = via_file(tmp_path / "via.json", {"x.jpg": [rect(2, 30, 25, 5), rect(30, 1, 5, 5)]})
    with pytest.warns(UserWarning) as warned:
        dataset = VIADetection(file)
    assert [str(w.message) for w in warned] == [
        f"{file}: 1 box clipped to the image (x.jpg, region 0 [2, 30, 27, 35] on 20x40); 1 "
        "box dropped (x.jpg, region 1 [30, 1, 35, 6] on 20x40: outside the image)"
    ]
    pixels, target = dataset[0]
    assert dataset.image_size(0) == (40, 20) and pixels.shape == (3, 40, 20)
    assert torch.equal(pixels, read_image_levels(tmp_path / "x.jpg", exif_transpose=True))
    assert target["boxes"].tolist() == [[2, 30, 20, 35]]


def test_a_via_file_is_told_from_coco_and_label_studio_by_its_start(tmp_path):
    coco = {"info": {"description": "x"}, "images": [], "annotations": [], "categories": []}
    cases = {
        "coco.json": (json.dumps(coco), False),
        "label_studio.json": (json.dumps([{"id": 1, "annotations": []}]), False),
        "empty.json": ("{}", False),
        "not_json.json": ("filename regions", False),
        "bom.json": ("\ufeff" + json.dumps({"a.jpg1": {"filename": "a.jpg", "regions": []}}), True),
        "project.json": (json.dumps({"_via_settings": {}, "_via_img_metadata": {}}), True),
    }
    for name, (text, expected) in cases.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
        assert is_via_file(tmp_path / name) is expected, name


def test_the_balloon_layout_gives_a_split_per_folder(tmp_path, capsys):
    """Mask R-CNN's balloon dataset: train/ and val/ each hold via_region_data.json
    beside their images; a split per folder, found by find_layout, open_dataset and
    `data`; one folder alone, or its file, is data without splits."""
    for split, count in (("train", 3), ("val", 2)):
        regions = {}
        for k in range(count):
            image(tmp_path / split / f"{split}{k}.jpg")
            polygon = {"name": "polygon", "all_points_x": [2, 12, 7], "all_points_y": [2, 2, 10]}
            regions[f"{split}{k}.jpg"] = [region(polygon, label="balloon" if k else "kite")]
        via_file(tmp_path / split / "via_region_data.json", regions)
    layout = find_layout(tmp_path)
    assert (layout.format, layout.splits) == (
        "VGG Image Annotator (VIA) (a folder per split)",
        ("train", "val"),
    )
    val = open_dataset(tmp_path, "val", class_names=("balloon", "kite"))
    assert val.image_files == [tmp_path / f"val/val{k}.jpg" for k in range(2)]
    assert [val.target(k)["labels"].tolist() for k in range(2)] == [[2], [1]]
    assert val.target(0)["boxes"].tolist() == [[2, 2, 12, 10]]
    assert main(["data", "--data", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert (
        lines[0] == f"{tmp_path}: VGG Image Annotator (VIA) (a folder per split), splits train, val"
    )
    assert "  val: 2 images, 2 boxes; image sizes 100x80 to 100x80 (width x height)" in lines
    for data in (tmp_path / "val", tmp_path / "val/via_region_data.json"):
        layout = find_layout(data)
        assert (layout.format, layout.splits) == ("VGG Image Annotator (VIA)", ())
        assert len(layout.open("train")) == 2


def test_a_balloon_split_without_images_is_left_out_saying_so(tmp_path):
    image(tmp_path / "train" / "a.jpg")
    via_file(tmp_path / "train" / "via.json", {"a.jpg": [rect(1, 1, 4, 4)]})
    via_file(tmp_path / "val" / "via.json", {"b.jpg": [rect(1, 1, 4, 4)]})
    said = (
        f"{tmp_path / 'val/via.json'}: the val split holds no image (no "
        ".jpg/.jpeg/.png/.bmp/.webp/.tif/.tiff/.gif file beside it)"
    )
    layout = find_layout(tmp_path)
    assert (layout.splits, layout.note) == (("train",), f"{said}: left out")


def test_explain_reads_the_regions_of_the_image_of_that_name(tmp_path):
    image(tmp_path / "d.png", (80, 40))
    file = via_file(
        tmp_path / "via.json",
        {
            "other.png": [rect(1, 1, 4, 4, "cat")],
            "d.png": [rect(2, 3, 18, 27, "dog"), rect(70, 30, 20, 15)],
        },
    )
    with pytest.warns(UserWarning, match=r"1 box clipped to the image \(d\.png, region 1 "):
        pixels, boxes, names = read_annotated_image(file, tmp_path / "d.png")
    assert torch.equal(pixels, read_image_levels(tmp_path / "d.png"))
    assert torch.equal(boxes, torch.tensor([[2.0, 3.0, 20.0, 30.0], [70.0, 30.0, 80.0, 40.0]]))
    assert names == ("dog", "cell")
    with pytest.raises(ValueError) as refused:
        read_annotated_image(file, tmp_path / "e.png")
    assert str(refused.value) == f"{file} has no image named 'e.png'"


def test_a_via_dataset_trains(tmp_path):
    for k in range(4):
        image(tmp_path / "data" / f"{k}.jpg")
    via_file(
        tmp_path / "data" / "via.json", {f"{k}.jpg": [rect(5, 5, 15 + k, 15)] for k in range(4)}
    )
    out = tmp_path / "run"
    argv = ["train", "--data", str(tmp_path / "data"), "--steps", "2", "--batch-size", "2"]
    argv += ["--min-size", "64", "--max-size", "64", "--out", str(out)]
    assert main(argv) == 0
    assert (out / "model.safetensors").is_file()
