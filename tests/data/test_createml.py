"""The CreateML JSON reader: Apple's list of images with their boxes' centres and sizes,
and Roboflow's export of it (``_annotations.createml.json`` in a folder per split), built
here from small files."""

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from exif_images import save_exif_jpeg
from faster_rcnn.cli import main
from faster_rcnn.cli.explain import read_annotated_image
from faster_rcnn.data import open_dataset
from faster_rcnn.data.createml import CreateMLDetection, is_createml_file
from faster_rcnn.data.dataset import read_image_levels
from faster_rcnn.data.open import find_layout


def image(path: Path, size: tuple[int, int] = (100, 80)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (90, 120, 200)).save(path)
    return path


def box(label: str, x: float, y: float, width: float, height: float) -> dict:
    """An annotation as Create ML writes it: its centre and size in pixels."""
    return {"label": label, "coordinates": {"x": x, "y": y, "width": width, "height": height}}


def createml_file(path: Path, images: dict[str, list]) -> Path:
    """A CreateML file of the ``images`` (file name: its annotations), in their order."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([{"image": k, "annotations": v} for k, v in images.items()]))
    return path


def test_the_centre_and_size_give_the_corners_and_classes_keep_the_order_first_seen(
    tmp_path,
):
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        image(tmp_path / name)
    file = createml_file(
        tmp_path / "_annotations.createml.json",
        {
            "b.jpg": [box("dog", 30, 40, 20, 10), box("cat", 10.5, 20, 5, 7)],
            "c.jpg": [],  # an image without objects
            "a.jpg": [box("cat", 50, 40, 100, 80)],
        },
    )
    dataset = CreateMLDetection(file)
    assert dataset.class_names == ("dog", "cat")  # as first seen, not sorted
    assert dataset.image_files == [tmp_path / "b.jpg", tmp_path / "c.jpg", tmp_path / "a.jpg"]
    # x 30 +- 20 / 2, y 40 +- 10 / 2; x 10.5 +- 2.5, y 20 +- 3.5
    assert dataset.target(0)["boxes"].tolist() == [[20, 35, 40, 45], [8, 16.5, 13, 23.5]]
    assert dataset.target(0)["labels"].tolist() == [1, 2]
    empty = dataset.target(1)
    assert empty["boxes"].shape == (0, 4) and empty["labels"].shape == (0,)
    assert dataset.target(2)["boxes"].tolist() == [[0, 0, 100, 80]]
    assert dataset.image_size(2) == (80, 100)


def test_boxes_past_the_border_are_clipped_to_the_image_turned_by_its_exif_orientation(
    tmp_path,
):
    # Stored 100 wide and 80 high, orientation 6: upright it is 80 wide and 100 high.
    save_exif_jpeg(tmp_path / "a.jpg", (100, 80), orientation=6)
    image(tmp_path / "unlabelled.jpg")
    file = createml_file(tmp_path / "x.json", {"a.jpg": [box("cat", 70, 90, 40, 40)]})
    with pytest.warns(UserWarning) as warned:
        dataset = CreateMLDetection(file)
    said = "\n".join(str(w.message) for w in warned)
    assert "1 box clipped to the image (a.jpg, annotation 0 [50, 70, 90, 110] on 80x100" in said
    assert f"{file}: 1 image is not in it and left out (unlabelled.jpg)" in said
    assert dataset.image_size(0) == (100, 80)
    assert dataset.target(0)["boxes"].tolist() == [[50, 70, 80, 100]]
    assert dataset[0][0].shape == (3, 100, 80)


@pytest.mark.parametrize(
    ("entries", "said"),
    [
        ([{"image": "a.jpg", "annotations": None}], "image 0, a.jpg: no 'annotations' list"),
        ([{"annotations": []}], "image 0: no 'image' (the image's file name)"),
        ([["a.jpg"]], "image 0: not an image (an object with 'image' and 'annotations')"),
        (
            [{"image": "a.jpg", "annotations": [box("", 1, 2, 3, 4)]}],
            "a.jpg, annotation 0: no 'label'",
        ),
        (
            [{"image": "a.jpg", "annotations": [{"label": "cat"}]}],
            "a.jpg, annotation 0: no 'coordinates' (x, y, width, height)",
        ),
        (
            [{"image": "a.jpg", "annotations": [box("cat", 1, 2, 3, 4), box("cat", 1, "2", 3, 4)]}],
            "a.jpg, annotation 1: coordinates y is '2', not a number",
        ),
        (
            [{"image": "a.jpg", "annotations": [{"label": "cat", "coordinates": {"x": 1}}]}],
            "a.jpg, annotation 0: coordinates y is missing",
        ),
        (
            [{"image": "a.jpg", "annotations": [box("cat", 10, 10, 0, 4)]}],
            "a.jpg, annotation 0: width 0 is not above 0",
        ),
        (
            [{"image": "a.jpg", "annotations": []}, {"image": "a.jpg", "annotations": []}],
            "image 1: a.jpg is image 0 too: one entry an image, holding all its annotations",
        ),
    ],
)
def test_each_bad_entry_is_named_in_one_line(tmp_path, entries, said):
    image(tmp_path / "a.jpg")
    file = tmp_path / "_annotations.createml.json"
    file.write_text(json.dumps(entries))
    with pytest.raises(ValueError) as refused:
        CreateMLDetection(file)
    assert str(refused.value) == f"{file}, {said}"


def test_a_file_that_is_not_a_list_or_not_json_is_refused(tmp_path):
    image(tmp_path / "a.jpg")
    file = tmp_path / "_annotations.createml.json"
    file.write_text('{"images": []}')
    with pytest.raises(ValueError) as refused:
        CreateMLDetection(file)
    assert str(refused.value) == (
        f"{file}: not a CreateML file (a list of images, each with 'image' and 'annotations')"
    )
    file.write_text("[")
    with pytest.raises(ValueError, match=r": not valid json \("):
        CreateMLDetection(file)


def test_a_createml_file_is_told_from_coco_via_and_label_studio_by_its_start(tmp_path):
    files = {
        "createml.json": [{"image": "a.jpg", "annotations": []}],
        "coco.json": {"images": [], "annotations": []},
        "label_studio.json": [{"id": 1, "annotations": [], "data": {"image": "a.jpg"}}],
        "empty.json": [],
    }
    for name, data in files.items():
        (tmp_path / name).write_text(json.dumps(data))
    told = {name: is_createml_file(tmp_path / name) for name in files}
    assert told == {
        "createml.json": True,
        "coco.json": False,
        "label_studio.json": False,
        "empty.json": False,
    }


def test_roboflow_export_gives_a_split_per_folder_not_taken_for_coco(tmp_path, capsys):
    for split, count in (("train", 3), ("valid", 2)):
        images = {}
        for k in range(count):
            image(tmp_path / split / f"{split}{k}.jpg")
            images[f"{split}{k}.jpg"] = [box("kite" if k else "balloon", 7, 6, 10, 8)]
        createml_file(tmp_path / split / "_annotations.createml.json", images)
    createml_file(tmp_path / "test" / "_annotations.createml.json", {"t.jpg": []})
    layout = find_layout(tmp_path)
    assert (layout.format, layout.splits) == (
        "CreateML JSON (a folder per split)",
        ("train", "valid"),
    )
    assert layout.note == (
        f"{tmp_path / 'test/_annotations.createml.json'}: the test split holds no image (no "
        ".jpg/.jpeg/.png/.bmp/.webp/.tif/.tiff/.gif file beside it): left out"
    )
    train = open_dataset(tmp_path, "train")
    val = open_dataset(tmp_path, "val", class_names=train.class_names)
    assert train.class_names == ("balloon", "kite")
    assert val.image_files == [tmp_path / f"valid/valid{k}.jpg" for k in range(2)]
    assert [val.target(k)["labels"].tolist() for k in range(2)] == [[1], [2]]
    assert val.target(0)["boxes"].tolist() == [[2, 2, 12, 10]]
    assert main(["data", "--data", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{tmp_path}: CreateML JSON (a folder per split), splits train, valid"
    assert "  valid: 2 images, 2 boxes; image sizes 100x80 to 100x80 (width x height)" in lines
    for data in (tmp_path / "valid", tmp_path / "valid/_annotations.createml.json"):
        layout = find_layout(data)
        assert (layout.format, layout.splits) == ("CreateML JSON", ())
        assert len(layout.open("train")) == 2


def test_a_createml_file_of_any_name_is_read_by_its_content(tmp_path):
    image(tmp_path / "a.jpg")
    file = createml_file(tmp_path / "annotations.json", {"a.jpg": [box("cat", 7, 6, 10, 8)]})
    for data in (tmp_path, file):
        layout = find_layout(data)
        assert layout.format == "CreateML JSON"
        assert layout.open("train").target(0)["boxes"].tolist() == [[2, 2, 12, 10]]


def test_explain_reads_the_boxes_of_the_image_of_that_name(tmp_path):
    image(tmp_path / "d.png", (80, 40))
    file = createml_file(
        tmp_path / "_annotations.createml.json",
        {"other.png": [box("cat", 5, 5, 2, 2)], "d.png": [box("dog", 11, 16.5, 18, 27)]},
    )
    pixels, boxes, names = read_annotated_image(file, tmp_path / "d.png")
    assert torch.equal(pixels, read_image_levels(tmp_path / "d.png"))
    assert torch.equal(boxes, torch.tensor([[2.0, 3.0, 20.0, 30.0]]))
    assert names == ("dog",)
    with pytest.raises(ValueError) as refused:
        read_annotated_image(file, tmp_path / "e.png")
    assert str(refused.value) == f"{file} has no image named 'e.png'"


def test_a_createml_dataset_trains_and_is_evaluated(tmp_path):
    for k in range(4):
        image(tmp_path / "data" / f"{k}.jpg")
    createml_file(
        tmp_path / "data" / "_annotations.createml.json",
        {f"{k}.jpg": [box("cell", 12 + k / 2, 12, 14 + k, 14)] for k in range(4)},
    )
    out = tmp_path / "run"
    argv = ["train", "--data", str(tmp_path / "data"), "--steps", "2", "--batch-size", "2"]
    argv += ["--min-size", "64", "--max-size", "64", "--out", str(out)]
    assert main(argv) == 0
    model = str(out / "model.safetensors")
    scored = ["evaluate", "--model", model, "--data", str(tmp_path / "data")]
    assert main([*scored, "--out", str(tmp_path / "scored")]) == 0
