"""The LabelMe reader: a folder of LabelMe (AnyLabeling, X-AnyLabeling) JSON files, one
per image, built here from small files."""

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from exif_images import save_exif_jpeg
from faster_rcnn.cli import main
from faster_rcnn.data import open_dataset
from faster_rcnn.data.dataset import read_image_levels
from faster_rcnn.data.labelme import LabelMeFolder

IMAGE_SUFFIXES = "{.jpg,.jpeg,.png,.bmp,.webp,.tif,.tiff,.gif}"


def image(path: Path, size: tuple[int, int] = (40, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (90, 120, 200)).save(path)
    return path


def shape(label: str, shape_type: str, *points: list[float]) -> dict:
    """A shape as LabelMe writes it."""
    return {
        "label": label,
        "points": list(points),
        "group_id": None,
        "description": "",
        "shape_type": shape_type,
        "flags": {},
    }


def labelme(
    path: Path, image_path: str | None, *shapes: dict, size: tuple[int, int] = (40, 30), **more
) -> Path:
    """A LabelMe file of ``shapes`` on the ``(width, height)`` image ``image_path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"version": "5.4.1", "flags": {}, "shapes": list(shapes), "imagePath": image_path}
    data |= {"imageData": None, "imageHeight": size[1], "imageWidth": size[0], **more}
    path.write_text(json.dumps(data))
    return path


def test_each_shape_type_gives_its_box(tmp_path):
    image(tmp_path / "a.jpg")
    image(tmp_path / "b.png", (60, 50))
    labelme(
        tmp_path / "a.json",
        "a.jpg",
        shape("cell", "rectangle", [30, 25], [2.5, 3]),  # dragged from bottom right
        shape("cell", "rectangle", [4, 5], [14, 5], [14, 9], [4, 9]),  # X-AnyLabeling's four
        shape("dot", "polygon", [5, 1], [9, 4], [3, 8]),
        shape("dot", "circle", [20, 15], [23, 19]),  # radius 5
        shape("blob", "mask", [1, 2], [6, 7]),
    )
    labelme(
        tmp_path / "b.json",
        "b.png",
        shape("cell", "oriented_rectangle", [10, 0], [20, 10], [10, 20], [0, 10]),
        shape("cell", "rotation", [30, 20], [40, 30], [35, 35], [25, 25]),
        {"label": "dot", "points": [[1, 1], [5, 2], [3, 6]]},  # no shape_type: a polygon
        size=(60, 50),
    )
    dataset = LabelMeFolder(tmp_path)
    assert dataset.class_names == ("blob", "cell", "dot") and dataset.num_classes == 4
    assert dataset.image_files == [tmp_path / "a.jpg", tmp_path / "b.png"]
    image_a, target = dataset[0]
    assert image_a.shape == (3, 30, 40) and target["image_id"] == 0
    assert torch.equal(
        target["boxes"],
        torch.tensor(
            [[2.5, 3, 30, 25], [4, 5, 14, 9], [3, 1, 9, 8], [15, 10, 25, 20], [1, 2, 6, 7]]
        ),
    )
    assert target["labels"].tolist() == [2, 2, 3, 3, 1]
    target = dataset.target(1)
    assert torch.equal(
        target["boxes"], torch.tensor([[0, 0, 20, 20], [25, 20, 40, 35], [1, 1, 5, 6]])
    )
    assert target["labels"].tolist() == [2, 2, 3]
    assert [dataset.image_size(k) for k in range(2)] == [(30, 40), (50, 60)]


def test_point_and_line_shapes_are_skipped_with_one_warning_naming_the_files(tmp_path):
    for name in ("a", "b", "c"):
        image(tmp_path / f"{name}.jpg")
    labelme(
        tmp_path / "a.json",
        "a.jpg",
        shape("eye", "point", [3, 4]),
        shape("cell", "rectangle", [1, 2], [10, 12]),
        shape("eye", "point", [5, 4]),
    )
    labelme(
        tmp_path / "b.json",
        "b.jpg",
        shape("edge", "line", [1, 1], [9, 9]),
        shape("edge", "linestrip", [1, 1], [9, 9], [1, 9]),
        shape("eye", "points", [3, 4], [5, 4]),
    )
    labelme(tmp_path / "c.json", "c.jpg")  # no shapes: an image without objects
    with pytest.warns(UserWarning) as warned:
        dataset = LabelMeFolder(tmp_path)
    assert [str(w.message) for w in warned] == [
        f"{tmp_path}: 5 shapes mark no box and are skipped (1 line, 1 linestrip, 2 point, "
        "1 points): a.json (2), b.json (3)"
    ]
    assert dataset.class_names == ("cell",)
    assert torch.equal(dataset.target(0)["boxes"], torch.tensor([[1.0, 2.0, 10.0, 12.0]]))
    for k in (1, 2):
        target = dataset.target(k)
        assert target["boxes"].shape == (0, 4) and target["labels"].shape == (0,)


def test_boxes_past_the_border_are_clipped_and_those_without_area_dropped(tmp_path):
    image(tmp_path / "a.jpg")
    file = labelme(
        tmp_path / "a.json",
        "a.jpg",
        shape("cell", "circle", [35, 5], [35, 13]),  # radius 8: [27, -3, 43, 13]
        shape("cell", "rectangle", [5, 5], [5, 20]),
        shape("cell", "polygon", [50, 1], [60, 2], [55, 9]),
    )
    with pytest.warns(UserWarning) as warned:
        dataset = open_dataset(tmp_path)
    assert torch.equal(dataset.target(0)["boxes"], torch.tensor([[27.0, 0.0, 40.0, 13.0]]))
    assert [str(w.message) for w in warned] == [
        f"{tmp_path}: 1 box clipped to the image ({file.name} shape 0 'cell' [27, -3, 43, 13] "
        "on 40x30); 2 boxes dropped (a.json shape 1 'cell' [5, 5, 5, 20] on 40x30: no area; "
        "a.json shape 2 'cell' [50, 1, 60, 9] on 40x30: outside the image)"
    ]


def test_images_are_found_by_image_path_in_another_folder_by_name_or_by_stem(tmp_path):
    """imagePath relative to the file (LabelMe's ../images/a.jpg, Windows' separators
    too); a path from another machine by its name beside the file; no imagePath, or one
    not there, by the file's stem; one found nowhere left out, saying so of imageData."""
    json_dir = tmp_path / "json"
    image(tmp_path / "images" / "a.jpg")
    image(tmp_path / "images" / "b.jpg")
    image(json_dir / "c.jpg")
    image(json_dir / "d.PNG")
    labelme(json_dir / "a.json", "../images/a.jpg", shape("x", "rectangle", [1, 1], [9, 9]))
    labelme(json_dir / "b.JSON", "..\\images\\b.jpg")
    labelme(json_dir / "c.json", "C:\\Users\\me\\Pictures\\c.jpg")
    labelme(json_dir / "d.json", "renamed-since.jpg")
    labelme(json_dir / "e.json", "gone.jpg", imageData="iVBORw0KGgo=")
    with pytest.warns(UserWarning) as warned:
        dataset = open_dataset(json_dir)
    assert dataset.image_files == [
        tmp_path / "images/a.jpg",
        tmp_path / "images/b.jpg",
        json_dir / "c.jpg",
        json_dir / "d.PNG",
    ]
    assert [str(w.message) for w in warned] == [
        f"{json_dir}: 1 .json file is left out, its image not found (1 file holds it in "
        "imageData, which is not read: save the image beside its .json): e.json ('gone.jpg' "
        f"(imagePath) or e{IMAGE_SUFFIXES})"
    ]
    for name in ("a.jpg", "b.jpg"):
        (tmp_path / "images" / name).unlink()
    for name in ("c.jpg", "d.PNG"):
        (json_dir / name).unlink()
    with pytest.warns(UserWarning), pytest.raises(ValueError) as none:
        open_dataset(json_dir)
    assert str(none.value) == (
        f"{json_dir}: the dataset holds no image (none of its 5 .json files has its image file)"
    )


def test_an_image_beside_that_no_file_names_is_left_out_saying_so(tmp_path):
    image(tmp_path / "a.jpg")
    image(tmp_path / "unlabelled.jpg")
    labelme(tmp_path / "a.json", "a.jpg", shape("x", "rectangle", [1, 1], [9, 9]))
    with pytest.warns(UserWarning) as warned:
        dataset = open_dataset(tmp_path)
    assert dataset.image_files == [tmp_path / "a.jpg"]
    assert [str(w.message) for w in warned] == [
        f"{tmp_path}: 1 image has no .json and is left out (unlabelled.jpg): an image without "
        "objects needs a .json without shapes (saved in LabelMe) to be trained on"
    ]


def test_a_size_that_disagrees_with_the_image_is_named_and_the_files_used(tmp_path):
    image(tmp_path / "a.jpg")
    labelme(tmp_path / "a.json", "a.jpg", shape("x", "rectangle", [1, 2], [45, 9]), size=(50, 30))
    with pytest.warns(UserWarning) as warned:
        dataset = open_dataset(tmp_path)
    assert dataset.image_size(0) == (30, 40)
    assert torch.equal(dataset.target(0)["boxes"], torch.tensor([[1.0, 2.0, 40.0, 9.0]]))
    assert [str(w.message) for w in warned] == [
        f"{tmp_path}: 1 image: the annotated imageWidth x imageHeight differs from the image "
        "file's, which is used (a.json (50x30, file 40x30))",
        f"{tmp_path}: 1 box clipped to the image (a.json shape 0 'x' [1, 2, 45, 9] on 40x30)",
    ]


def test_images_are_read_upright_as_labelme_shows_them(tmp_path):
    # Stored 40 wide and 20 high; orientation 6 shows it 20 wide and 40 high, as recorded;
    # orientation 3 turns it half round, as LabelMe shows it too.
    save_exif_jpeg(tmp_path / "x.jpg", (40, 20), orientation=6)
    save_exif_jpeg(tmp_path / "y.jpg", (40, 20), orientation=3)
    labelme(
        tmp_path / "x.json", "x.jpg", shape("dog", "rectangle", [0, 0], [20, 10]), size=(20, 40)
    )
    labelme(tmp_path / "y.json", "y.jpg", size=(40, 20))
    dataset = LabelMeFolder(tmp_path)  # no warning: the recorded sizes are the upright ones
    image_x, target = dataset[0]
    assert image_x.shape == (3, 40, 20) and dataset.image_size(0) == (40, 20)
    assert torch.equal(
        image_x, torch.rot90(read_image_levels(tmp_path / "x.jpg"), k=-1, dims=(1, 2))
    )
    assert torch.equal(target["boxes"], torch.tensor([[0.0, 0.0, 20.0, 10.0]]))
    expected = torch.rot90(read_image_levels(tmp_path / "y.jpg"), k=2, dims=(1, 2))
    assert torch.equal(dataset[1][0], expected)


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (
            "{",
            ": not valid json (Expecting property name enclosed in double quotes: line 1 "
            "column 2 (char 1))",
        ),
        (
            '{"images": [], "categories": []}',
            ": not a LabelMe file (needs 'shapes' and 'imagePath')",
        ),
        ('{"shapes": {}, "imagePath": "a.jpg"}', ": 'shapes' is dict, not a list"),
        ('{"shapes": [], "imagePath": 3}', ": imagePath 3 is not a file name"),
        (
            '{"shapes": [], "imagePath": "a.jpg", "imageWidth": 40, "imageHeight": 0}',
            ": imageHeight 0 is not a whole number above 0",
        ),
        ('{"shapes": [[1, 2]], "imagePath": "a.jpg"}', ", shape 0: list, not an object"),
        (
            '{"shapes": [{"label": "", "points": [[1, 2], [3, 4]]}], "imagePath": "a.jpg"}',
            ", shape 0: label '' is no class name",
        ),
    ],
)
def test_a_file_that_is_not_labelmes_is_refused_in_one_line_naming_it(tmp_path, content, said):
    image(tmp_path / "a.jpg")
    labelme(tmp_path / "a.json", "a.jpg")
    (tmp_path / "b.json").write_text(content)
    with pytest.raises(ValueError) as bad:
        open_dataset(tmp_path)
    assert str(bad.value) == f"{tmp_path / 'b.json'}{said}"


@pytest.mark.parametrize(
    ("bad_shape", "said"),
    [
        (
            shape("cell", "ellipse", [1, 2], [3, 4]),
            "shape_type 'ellipse' is not one of rectangle, polygon, oriented_rectangle, rotation, "
            "circle, mask, point, points, line, linestrip",
        ),
        (shape("cell", "rectangle", [1, 2]), "a rectangle has 2 points or more, not 1"),
        (shape("cell", "polygon", [1, 2], [3, 4]), "a polygon has 3 points or more, not 2"),
        (
            shape("cell", "circle", [1, 2], [3, 4], [5, 6]),
            "a circle has 2 points (its centre and one on it), not 3",
        ),
        (
            shape("cell", "rectangle", [1, 2], [3, "4"]),
            "points [[1, 2], [3, '4']] are not [[x, y], ...] numbers",
        ),
        (
            shape("cell", "rectangle", [1, 2, 3], [3, 4]),
            "points [[1, 2, 3], [3, 4]] are not [[x, y], ...] numbers",
        ),
        ({"label": "cell", "shape_type": "point"}, "points None are not [[x, y], ...] numbers"),
    ],
)
def test_a_bad_shape_is_refused_in_one_line_naming_the_file_and_shape(tmp_path, bad_shape, said):
    image(tmp_path / "a.jpg")
    file = labelme(tmp_path / "a.json", "a.jpg", shape("cell", "point", [1, 1]), bad_shape)
    with pytest.raises(ValueError) as bad:
        open_dataset(tmp_path)
    assert str(bad.value) == f"{file}, shape 1 'cell': {said}"


def test_a_labelme_folder_trains(tmp_path):
    for k in range(4):
        image(tmp_path / "data" / f"{k}.jpg")
        box = shape("cell", "rectangle", [20 + k, 20], [5, 5])
        labelme(tmp_path / "data" / f"{k}.json", f"{k}.jpg", box)
    out = tmp_path / "run"
    argv = ["train", "--data", str(tmp_path / "data"), "--steps", "2", "--batch-size", "2"]
    argv += ["--min-size", "64", "--max-size", "64", "--out", str(out)]
    assert main(argv) == 0
    assert (out / "model.safetensors").is_file()
