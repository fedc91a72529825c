"""The YOLO Keras TXT reader: Roboflow's export (``_annotations.txt`` and ``_classes.txt``
in a folder per split) and keras-yolo3's files, built here from small files."""

from pathlib import Path

import pytest
import torch
from PIL import Image

from faster_rcnn.cli import main
from faster_rcnn.cli.explain import read_annotated_image
from faster_rcnn.data import open_dataset
from faster_rcnn.data.dataset import read_image_levels
from faster_rcnn.data.keras_txt import KerasTXTDetection, is_keras_txt
from faster_rcnn.data.open import find_layout


def image(path: Path, size: tuple[int, int] = (100, 80)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (90, 120, 200)).save(path)
    return path


def keras_txt(folder: Path, *lines: str, classes: str = "cat\ndog\n") -> Path:
    """Roboflow's ``_annotations.txt`` of ``lines`` and ``_classes.txt`` in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "_classes.txt").write_text(classes)
    file = folder / "_annotations.txt"
    file.write_text("\n".join(lines) + "\n")
    return file


def test_reads_the_corners_and_class_ids_of_each_line_in_its_order(tmp_path):
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        image(tmp_path / name)
    file = keras_txt(
        tmp_path,
        "b.jpg 10,20,50,60,1 5,5,25.5,30,0",
        "",  # passed over
        "c.jpg",  # an image without objects
        "a.jpg 0,0,100,80,0",
    )
    dataset = KerasTXTDetection(file)
    assert dataset.class_names == ("cat", "dog")
    assert dataset.image_files == [tmp_path / "b.jpg", tmp_path / "c.jpg", tmp_path / "a.jpg"]
    assert dataset.target(0)["boxes"].tolist() == [[10, 20, 50, 60], [5, 5, 25.5, 30]]
    assert dataset.target(0)["labels"].tolist() == [2, 1]  # class id k is label k + 1
    empty = dataset.target(1)
    assert empty["boxes"].shape == (0, 4) and empty["labels"].shape == (0,)
    assert dataset.target(2)["boxes"].tolist() == [[0, 0, 100, 80]]
    assert dataset.image_size(2) == (80, 100)


def test_boxes_past_the_border_are_clipped_and_images_no_line_names_left_out(tmp_path):
    image(tmp_path / "a.jpg")
    image(tmp_path / "unlabelled.jpg")
    file = keras_txt(tmp_path, "a.jpg -5,10,120,70,0 200,10,220,20,1")
    with pytest.warns(UserWarning) as warned:
        dataset = KerasTXTDetection(file)
    said = [str(w.message) for w in warned]
    assert any("1 box clipped to the image (line 1, a.jpg [-5,10,120,70,0]" in s for s in said)
    assert any("1 box dropped (line 1, a.jpg [200,10,220,20,1]" in s for s in said)
    assert f"{file}: 1 image is on no line and left out (unlabelled.jpg)" in "\n".join(said)
    assert dataset.target(0)["boxes"].tolist() == [[0, 10, 100, 70]]
    assert dataset.target(0)["labels"].tolist() == [1]


@pytest.mark.parametrize(
    ("line", "said"),
    [
        ("a.jpg 10,20,30", "line 1, a.jpg [10,20,30]: not a box x1,y1,x2,y2,class_id"),
        ("a.jpg 10,20,30,40,cat", "line 1, a.jpg [10,20,30,40,cat]: not a box"),
        ("a.jpg 1,2,x,4,0", "line 1, a.jpg [1,2,x,4,0]: not a box"),
        ("a.jpg 1,2,nan,4,0", "line 1, a.jpg [1,2,nan,4,0]: not a box"),
        ("a.jpg 30,20,30,40,0", "line 1, a.jpg [30,20,30,40,0]: x2 30 is not greater than x1 30"),
        ("a.jpg 10,50,30,40,0", "line 1, a.jpg [10,50,30,40,0]: y2 40 is not greater than y1 50"),
        (
            "a.jpg 1,2,3,4,0 10,20,30,40,2",
            "line 1, a.jpg [10,20,30,40,2]: class id 2 is not among those of {classes} "
            "(2 classes: cat, dog), counted from 0",
        ),
    ],
)
def test_each_bad_box_is_named_in_one_line_with_its_image(tmp_path, line, said):
    image(tmp_path / "a.jpg")
    file = keras_txt(tmp_path, line)
    with pytest.raises(ValueError) as refused:
        KerasTXTDetection(file)
    assert str(refused.value).startswith(
        f"{file}, " + said.format(classes=tmp_path / "_classes.txt")
    )
    assert "\n" not in str(refused.value)


def test_an_image_on_two_lines_and_a_missing_classes_file_are_refused(tmp_path):
    image(tmp_path / "a.jpg")
    file = keras_txt(tmp_path, "a.jpg 1,2,3,4,0", "", "a.jpg 5,6,7,8,1")
    with pytest.raises(ValueError) as refused:
        KerasTXTDetection(file)
    assert str(refused.value) == (
        f"{file}, line 3: a.jpg is on line 1 too: one line an image, holding all its boxes"
    )
    (tmp_path / "_classes.txt").unlink()
    with pytest.raises(FileNotFoundError) as missing:
        KerasTXTDetection(file)
    assert str(missing.value) == (
        f"{file}: no _classes.txt or classes.txt beside it, whose line k + 1 names class k"
    )


def test_an_image_not_there_is_left_out_with_its_boxes_and_none_there_is_refused(tmp_path):
    image(tmp_path / "a.jpg")
    file = keras_txt(tmp_path, "gone.jpg 1,2,3,4,0", "a.jpg 5,6,7,8,1")
    with pytest.warns(UserWarning, match=r"1 image is left out, not found: .*gone\.jpg"):
        dataset = KerasTXTDetection(file)
    assert len(dataset) == 1 and dataset.target(0)["labels"].tolist() == [2]
    file.write_text("gone.jpg 1,2,3,4,0\n")
    none = r"the dataset holds no image \(none of its 1 image"
    with pytest.raises(ValueError, match=none), pytest.warns(UserWarning):
        KerasTXTDetection(file)


def test_keras_yolo3_files_are_told_by_their_first_line_with_boxes_where_classes_are_beside(
    tmp_path,
):
    """keras-yolo3's file has any name and paths of their own, and its first images may
    have no objects (a path alone: such a file was told only when named
    _annotations.txt); a YOLO label file's line has no commas, and Darknet's list of
    images is paths alone: neither is taken, nor is a file whose first boxes are past its
    first 20 lines."""
    image(tmp_path / "JPEGImages" / "000001.jpg")
    image(tmp_path / "JPEGImages" / "000002.jpg")
    file = tmp_path / "2007_train.txt"
    file.write_text("JPEGImages/000002.jpg\n\nJPEGImages/000001.jpg 8,12,48,70,1\n")
    (tmp_path / "classes.txt").write_text("aeroplane\nbicycle\n")
    label, listing = tmp_path / "a.txt", tmp_path / "train.txt"
    label.write_text("0 0.5 0.5 0.2 0.3\n")
    listing.write_text("JPEGImages/000001.jpg\nJPEGImages/000002.jpg\n")
    assert [is_keras_txt(p) for p in (file, label, listing)] == [True, False, False]
    layout = find_layout(file)
    assert (layout.format, layout.splits) == ("YOLO Keras TXT", ())
    dataset = layout.open("train")
    assert dataset.class_names == ("aeroplane", "bicycle")
    assert dataset.image_files == [tmp_path / "JPEGImages" / f"00000{k}.jpg" for k in (2, 1)]
    assert [dataset.target(k)["boxes"].tolist() for k in (0, 1)] == [[], [[8, 12, 48, 70]]]
    with pytest.raises(ValueError, match=r"a YOLO Keras \.txt"):
        find_layout(label)
    paths = "".join(f"JPEGImages/{k:06}.jpg\n" for k in range(3, 23))
    file.write_text(f"{paths}JPEGImages/000001.jpg 8,12,48,70,1\n")
    assert not is_keras_txt(file)
    file.write_text(f"{paths[22:]}JPEGImages/000001.jpg 8,12,48,70,1\n")
    assert is_keras_txt(file)


def test_roboflow_export_gives_a_split_per_folder(tmp_path, capsys):
    for split, count in (("train", 3), ("valid", 2)):
        for k in range(count):
            image(tmp_path / split / f"{split}{k}.jpg")
        keras_txt(tmp_path / split, *(f"{split}{k}.jpg 2,2,12,10,{k % 2}" for k in range(count)))
    (tmp_path / "test").mkdir()  # exported without images: left out
    layout = find_layout(tmp_path)
    assert (layout.format, layout.splits) == (
        "YOLO Keras TXT (a folder per split)",
        ("train", "valid"),
    )
    assert layout.note == (
        f"{tmp_path / 'test'}: the test split holds no image (no .txt file or image in it): "
        "left out"
    )
    val = open_dataset(tmp_path, "val")
    assert val.image_files == [tmp_path / f"valid/valid{k}.jpg" for k in range(2)]
    assert [val.target(k)["labels"].tolist() for k in range(2)] == [[1], [2]]
    assert main(["data", "--data", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{tmp_path}: YOLO Keras TXT (a folder per split), splits train, valid"
    assert "  valid: 2 images, 2 boxes; image sizes 100x80 to 100x80 (width x height)" in lines
    for data in (tmp_path / "valid", tmp_path / "valid/_annotations.txt"):
        layout = find_layout(data)
        assert (layout.format, layout.splits) == ("YOLO Keras TXT", ())
        assert len(layout.open("train")) == 2


def test_a_labelimg_yolo_folder_is_not_taken_for_keras_txt(tmp_path):
    image(tmp_path / "a.jpg")
    (tmp_path / "a.txt").write_text("0 0.5 0.5 0.2 0.3\n")
    (tmp_path / "classes.txt").write_text("cat\n")
    assert find_layout(tmp_path).format == "YOLO .txt files beside their images"


def test_explain_reads_the_line_of_the_image_of_that_name(tmp_path):
    image(tmp_path / "d.png", (80, 40))
    file = keras_txt(tmp_path, "other.png 1,1,4,4,0", "d.png 2,3,20,30,1 70,30,90,45,0")
    with pytest.warns(UserWarning, match=r"1 box clipped to the image \(line 2, d\.png "):
        pixels, boxes, names = read_annotated_image(file, tmp_path / "d.png")
    assert torch.equal(pixels, read_image_levels(tmp_path / "d.png"))
    assert torch.equal(boxes, torch.tensor([[2.0, 3.0, 20.0, 30.0], [70.0, 30.0, 80.0, 40.0]]))
    assert names == ("dog", "cat")
    with pytest.raises(ValueError) as refused:
        read_annotated_image(file, tmp_path / "e.png")
    assert str(refused.value) == f"{file} has no line of an image named 'e.png'"


def test_a_keras_txt_dataset_trains_and_is_evaluated(tmp_path):
    for k in range(4):
        image(tmp_path / "data" / f"{k}.jpg")
    keras_txt(tmp_path / "data", *(f"{k}.jpg 5,5,{20 + k},20,0" for k in range(4)))
    out = tmp_path / "run"
    argv = ["train", "--data", str(tmp_path / "data"), "--steps", "2", "--batch-size", "2"]
    argv += ["--min-size", "64", "--max-size", "64", "--out", str(out)]
    assert main(argv) == 0
    model = str(out / "model.safetensors")
    scored = ["evaluate", "--model", model, "--data", str(tmp_path / "data")]
    assert main([*scored, "--out", str(tmp_path / "scored")]) == 0
