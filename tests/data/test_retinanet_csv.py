"""keras-retinanet's CSV of boxes, which has no header, and its class mapping
``classes.csv``: files as keras-retinanet's README writes them, built here small."""

import warnings
from pathlib import Path

import pytest
import torch
from PIL import Image

from faster_rcnn.cli import main
from faster_rcnn.cli.explain import read_annotated_image
from faster_rcnn.data import dataset, open_dataset
from faster_rcnn.data.class_mapping import read_class_mapping
from faster_rcnn.data.csv_boxes import CSVDetection, is_retinanet_csv
from faster_rcnn.data.open import find_layout


def image(path: Path, size: tuple[int, int] = (40, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (90, 120, 200)).save(path)
    return path


def csv_file(path: Path, *rows: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{row}\n" for row in rows))
    return path


def test_rows_without_a_header_name_images_in_folders_relative_to_the_csv_or_absolute(
    tmp_path,
):
    image(tmp_path / "data/images/b.jpg")
    image(tmp_path / "data/images/night/a.png", (20, 50))
    image(tmp_path / "elsewhere/c.jpg")
    file = csv_file(
        tmp_path / "data/annotations.csv",
        "images/b.jpg,2,3,20,25,dog",
        "images/night/a.png,0,0,20,50,cat",
        "images/b.jpg,10,1,11,2,cat",
        f"{tmp_path / 'elsewhere/c.jpg'},,,,,",  # an image without objects
    )
    assert is_retinanet_csv(file)
    dataset = CSVDetection(file)  # no image beside the CSV: none is needed there
    assert dataset.image_files == [
        tmp_path / "data/images/b.jpg",
        tmp_path / "data/images/night/a.png",
        tmp_path / "elsewhere/c.jpg",
    ]
    assert dataset.class_names == ("cat", "dog") and dataset.class_file is None
    image_b, target = dataset[0]
    assert image_b.shape == (3, 30, 40)
    assert torch.equal(target["boxes"], torch.tensor([[2.0, 3.0, 20.0, 25.0], [10, 1, 11, 2]]))
    assert target["labels"].tolist() == [2, 1]
    assert torch.equal(dataset.target(1)["boxes"], torch.tensor([[0.0, 0.0, 20.0, 50.0]]))
    assert dataset.target(2)["boxes"].shape == (0, 4)
    assert [dataset.image_size(k) for k in range(3)] == [(30, 40), (50, 20), (30, 40)]


def test_a_first_row_of_an_image_without_objects_is_a_row_not_a_header(tmp_path):
    image(tmp_path / "a.jpg")
    image(tmp_path / "b.jpg")
    file = csv_file(tmp_path / "annotations.csv", "a.jpg,,,,,", "b.jpg,1,2,9,9,cell")
    dataset = CSVDetection(file)
    assert dataset.image_files == [tmp_path / "a.jpg", tmp_path / "b.jpg"]
    assert [len(dataset.target(k)["boxes"]) for k in range(2)] == [0, 1]


def test_the_class_mapping_beside_the_csv_fixes_the_class_order(tmp_path):
    """``classes.csv`` in any case; a class without a box keeps its place and label."""
    image(tmp_path / "a.jpg")
    file = csv_file(tmp_path / "annotations.csv", "a.jpg,1,2,9,9,cat", "a.jpg,3,4,20,20,dog")
    classes = csv_file(tmp_path / "Classes.csv", "dog,0", "bird,2", "", "cat,1")
    dataset = open_dataset(file)
    assert dataset.class_names == ("dog", "cat", "bird") and dataset.num_classes == 4
    assert dataset.class_file == classes
    assert dataset.target(0)["labels"].tolist() == [2, 1]
    # The same CSV without the mapping: sorted by name.
    classes.unlink()
    assert CSVDetection(file).target(0)["labels"].tolist() == [1, 2]


def test_a_box_of_a_class_the_mapping_lacks_is_refused_naming_its_line(tmp_path):
    image(tmp_path / "a.jpg")
    file = csv_file(tmp_path / "annotations.csv", "a.jpg,1,2,9,9,dog", "gone.jpg,1,2,9,9,fox")
    classes = csv_file(tmp_path / "classes.csv", "dog,0", "cat,1")
    with pytest.raises(ValueError) as refused:
        CSVDetection(file)  # the row of an image not there is checked too
    assert str(refused.value) == (
        f"{file}, line 2, gone.jpg [1, 2, 9, 9]: class 'fox' is not in {classes} (dog, cat)"
    )


@pytest.mark.parametrize(
    ("rows", "said"),
    [
        (("cat,0", "dog,0"), "line 2: id 0 of 'dog' is given to 'cat' on line 1 too"),
        (("cat,0", "cat,1"), "line 2: class 'cat' is given on line 1 too"),
        (
            ("cat,0", "dog,2"),
            "line 2: id 2 of 'dog' is not among 0 to 1: the 2 classes are numbered from 0, "
            "the background implicit",
        ),
        (
            ("cat,-1",),
            "line 1: id -1 of 'cat' is not among 0 to 0: the 1 class is numbered from 0, the "
            "background implicit",
        ),
        (("class_name,id", "cat,0"), "line 1: id 'id' of 'class_name' is not a whole number"),
        (("cat,1.0",), "line 1: id '1.0' of 'cat' is not a whole number"),
        (("cat,0,x",), "line 1: 3 fields, where a row is class_name,id (cat,0)"),
        ((" ,0",), "line 1: no class name"),
    ],
)
def test_each_bad_class_mapping_row_is_named_in_one_line(tmp_path, rows, said):
    classes = csv_file(tmp_path / "classes.csv", *rows)
    with pytest.raises(ValueError) as bad:
        read_class_mapping(classes)
    assert str(bad.value) == f"{classes}, {said}"


def test_the_class_mapping_opened_as_the_boxes_is_named_as_such(tmp_path):
    classes = csv_file(tmp_path / "classes.csv", "cat,0")
    with pytest.raises(ValueError) as bad:
        open_dataset(classes)
    assert str(bad.value) == (
        f"{classes} is keras-retinanet's class mapping (class_name,id), not boxes: open the "
        "CSV of boxes beside it"
    )


def test_a_class_mapping_without_a_row_is_refused(tmp_path):
    image(tmp_path / "a.jpg")
    file = csv_file(tmp_path / "annotations.csv", "a.jpg,1,2,9,9,dog")
    classes = csv_file(tmp_path / "classes.csv", "")
    with pytest.raises(ValueError) as bad:
        CSVDetection(file)
    assert str(bad.value) == f"{classes}: no class, where each row is class_name,id (cat,0)"


NO_FORMAT = (
    "where a header was expected (filename,width,height,class,xmin,ymin,xmax,ymax), or "
    "keras-retinanet's rows of 6, without one: path,x1,y1,x2,y2,class_name"
)


@pytest.mark.parametrize(
    ("rows", "said"),
    [
        (
            ("a.jpg,1,2,9,9,cell", "a.jpg,1,2,9,9"),
            "line 2: 5 fields, where keras-retinanet's rows have 6: path,x1,y1,x2,y2,class_name",
        ),
        (("a.jpg,9,2,9,9,cell",), "line 1, a.jpg [9, 2, 9, 9]: x2 9 is not greater than x1 9"),
        (("a.jpg,1,9,9,3,cell",), "line 1, a.jpg [1, 9, 9, 3]: y2 3 is not greater than y1 9"),
        (("a.jpg,1,x,9,9,cell",), "line 1, a.jpg [1, x, 9, 9]: y1 'x' is not a number"),
        (("a.jpg,1,2,9,9, ",), "line 1, a.jpg [1, 2, 9, 9]: no class name"),
        (("a.jpg,,,,,", ",1,2,9,9,cell"), "line 2, (no file name) [1, 2, 9, 9]: no file name"),
        # No header, and not keras-retinanet's six fields: a TensorFlow CSV without its
        # header, a row short of its class.
        (("a.jpg,40,30,cell,1,2,9,9",), f"line 1: a row of 8 fields {NO_FORMAT}"),
        (("a.jpg,1,2,9,9",), f"line 1: a row of 5 fields {NO_FORMAT}"),
        # keras-retinanet's columns under a header: neither format.
        (
            ("path,x1,y1,x2,y2,class_name", "a.jpg,1,2,9,9,cell"),
            "line 1: no 'filename', 'class', 'xmin', 'ymin', 'xmax', 'ymax' column (the "
            "header has path, x1, y1, x2, y2, class_name; needed: filename, width, height, "
            "class, xmin, ymin, xmax, ymax); nor is it a box of keras-retinanet's CSV, which "
            "has no header: path,x1,y1,x2,y2,class_name, the corners numbers",
        ),
    ],
)
def test_each_bad_row_is_named_in_one_line(tmp_path, rows, said):
    image(tmp_path / "a.jpg")
    file = csv_file(tmp_path / "annotations.csv", *rows)
    with pytest.raises(ValueError) as bad:
        open_dataset(file)
    assert str(bad.value) == f"{file}, {said}"


def test_a_folder_of_split_files_beside_classes_csv_is_a_split_per_file(tmp_path, capsys):
    """keras-retinanet's usual folder: ``train.csv``, ``val.csv``, ``classes.csv``, the
    images in a folder of their own; a Kaggle submission CSV beside them is left out."""
    for k in range(3):
        image(tmp_path / f"images/{k}.jpg")
    csv_file(tmp_path / "train.csv", "images/0.jpg,2,2,12,10,rbc", "images/1.jpg,,,,,")
    csv_file(tmp_path / "val.csv", "images/2.jpg,2,2,12,10,wbc")
    csv_file(tmp_path / "classes.csv", "wbc,0", "rbc,1")
    csv_file(tmp_path / "sample_submission.csv", "image_id,PredictionString")
    layout = find_layout(tmp_path)
    assert (layout.format, layout.splits) == (
        "keras-retinanet CSV (a file per split)",
        ("train", "val"),
    )
    assert layout.note == (
        f"{tmp_path}: 1 CSV file left out (sample_submission.csv): a first row that is no "
        "box, where keras-retinanet's CSV has no header"
    )
    with warnings.catch_warnings():  # of no image in no row: val's are in no train row
        warnings.simplefilter("error")
        train, val = layout.open("train"), layout.open("val")
    assert train.class_names == val.class_names == ("wbc", "rbc")
    assert train.target(0)["labels"].tolist() == [2] and val.target(0)["labels"].tolist() == [1]
    assert main(["data", "--data", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{tmp_path}: keras-retinanet CSV (a file per split), splits train, val"
    assert "  train: 2 images, 1 box; image sizes 40x30 to 40x30 (width x height)" in lines


def test_one_csv_beside_classes_csv_or_a_csv_named_is_data_without_splits(tmp_path):
    image(tmp_path / "images/a.jpg")
    file = csv_file(tmp_path / "annotations.csv", "images/a.jpg,2,2,12,10,cell")
    csv_file(tmp_path / "classes.csv", "cell,0")
    for data in (tmp_path, file):
        layout = find_layout(data)
        assert (layout.format, layout.splits, layout.note) == ("keras-retinanet CSV", (), None)
        assert len(layout.open("train")) == 1


def test_the_csv_is_read_whole_once_to_find_and_open_it(tmp_path, monkeypatch):
    """Telling keras-retinanet's CSV from one with a header read the whole file, and
    opening it read it twice more: its first row alone tells it now, and the rows are
    read once. So a byte that is not UTF-8 past the first row no longer makes the file
    one with a header (whose first row is no box: left out); opening it says so."""
    image(tmp_path / "images/a.jpg")
    file = csv_file(tmp_path / "annotations.csv", "images/a.jpg,2,2,12,10,cell")
    csv_file(tmp_path / "classes.csv", "cell,0")
    reads: list[Path] = []
    read_text = dataset.read_text
    monkeypatch.setattr(dataset, "read_text", lambda path: reads.append(path) or read_text(path))
    for data in (tmp_path, file):
        reads.clear()
        assert len(find_layout(data).open("train")) == 1
        assert reads.count(file) == 1
    file.write_bytes(b"images/a.jpg,2,2,12,10,cell\nimages/caf\xe9.jpg,1,1,5,5,cell\n")
    layout = find_layout(tmp_path)
    assert (layout.format, layout.note) == ("keras-retinanet CSV", None)
    with pytest.raises(ValueError) as refused:
        layout.open("train")
    # 28 bytes of the first line, then 10 of "images/caf".
    assert str(refused.value) == f"{file}: not UTF-8 text (byte 38 is b'\\xe9'); save it as UTF-8"


def test_explain_reads_the_boxes_of_its_image_from_a_keras_retinanet_csv(tmp_path):
    image(tmp_path / "images/a.jpg")
    image(tmp_path / "images/b.jpg")
    file = csv_file(
        tmp_path / "annotations.csv",
        "images/b.jpg,1,1,5,5,cat",
        "images/a.jpg,2,3,50,20,dog",  # clipped to the 40 px wide image, as the reader does
        "images/a.jpg,1,1,4,4,cat",
    )
    with pytest.warns(UserWarning, match="1 box clipped to the image"):
        image_a, boxes, names = read_annotated_image(file, tmp_path / "images/a.jpg")
    assert image_a.shape == (3, 30, 40) and names == ("dog", "cat")
    assert torch.equal(boxes, torch.tensor([[2.0, 3.0, 40.0, 20.0], [1, 1, 4, 4]]))
