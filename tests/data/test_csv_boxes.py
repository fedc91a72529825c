"""The TensorFlow Object Detection CSV reader: Roboflow's "Tensorflow Object Detection
CSV" export and the raccoon dataset's own CSV, built here from small files."""

from pathlib import Path

import pytest
import torch
from PIL import Image

from exif_images import save_exif_jpeg
from faster_rcnn.cli import main
from faster_rcnn.data import open_dataset
from faster_rcnn.data.csv_boxes import CSVDetection
from faster_rcnn.data.dataset import read_image_levels

HEADER = "filename,width,height,class,xmin,ymin,xmax,ymax"


def image(path: Path, size: tuple[int, int] = (40, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (90, 120, 200)).save(path)
    return path


def annotations(folder: Path, *rows: str, header: str = HEADER) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "_annotations.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def test_reads_boxes_and_labels_by_column_name_in_the_order_images_are_first_named(tmp_path):
    image(tmp_path / "b.jpg")
    image(tmp_path / "a.png", (20, 50))
    file = annotations(
        tmp_path,
        "b.jpg,dog,  2.5,3,20,25,40,30,x",
        "a.png,cat,0,0,20,50,20,50,y",
        "b.jpg,cat,10,1,11,2,40,30,z",
        "",  # a blank line, as editors leave at the end
        # Columns in another order, in another case, with one that is not read.
        header="filename,class,xmin,ymin,xmax,ymax,Width,HEIGHT,source",
    )
    dataset = CSVDetection(file)
    assert dataset.class_names == ("cat", "dog") and dataset.num_classes == 3
    assert dataset.image_files == [tmp_path / "b.jpg", tmp_path / "a.png"]
    image_b, target = dataset[0]
    assert image_b.shape == (3, 30, 40)
    # Continuous pixel corners, as TensorFlow's generate_tfrecord reads them.
    assert torch.equal(target["boxes"], torch.tensor([[2.5, 3.0, 20.0, 25.0], [10, 1, 11, 2]]))
    assert target["labels"].tolist() == [2, 1] and target["image_id"] == 0
    assert torch.equal(dataset.target(1)["boxes"], torch.tensor([[0.0, 0.0, 20.0, 50.0]]))
    assert dataset.target(1)["labels"].tolist() == [1]
    assert [dataset.image_size(k) for k in range(2)] == [(30, 40), (50, 20)]


def test_boxes_past_the_border_are_clipped_and_images_no_row_names_left_out(tmp_path):
    image(tmp_path / "a.jpg")
    image(tmp_path / "unlabelled.jpg")
    file = annotations(tmp_path, "a.jpg,40,30,cell,-4,2,12,35", "a.jpg,40,30,cell,50,2,60,9")
    with pytest.warns(UserWarning) as warned:
        dataset = open_dataset(file)
    assert torch.equal(dataset.target(0)["boxes"], torch.tensor([[0.0, 2.0, 12.0, 30.0]]))
    assert [str(w.message) for w in warned] == [
        f"{file}: 1 image is in no row and left out (unlabelled.jpg): a row of its file name "
        "with the class and corners left empty makes an image one without objects",
        f"{file}: 1 box clipped to the image (line 2, a.jpg [-4, 2, 12, 35] on 40x30); 1 box "
        "dropped (line 3, a.jpg [50, 2, 60, 9] on 40x30: outside the image)",
    ]


def test_a_row_with_the_class_and_corners_empty_is_an_image_without_objects(tmp_path):
    """keras-retinanet's way to write one (``a.jpg,,,,,``), its size given or not; a row
    with a corner but no class is still refused."""
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        image(tmp_path / name)
    file = annotations(tmp_path, "a.jpg,40,30,cell,1,2,12,20", "b.jpg,,,,,,,", "c.jpg,40,30,,,,,")
    dataset = CSVDetection(file)  # no warning: every image beside it is named
    assert dataset.image_files == [tmp_path / n for n in ("a.jpg", "b.jpg", "c.jpg")]
    assert dataset.class_names == ("cell",)
    for k in (1, 2):
        target = dataset.target(k)
        assert target["boxes"].shape == (0, 4) and target["labels"].shape == (0,)
    assert dataset.target(0)["labels"].tolist() == [1]
    annotations(tmp_path, "a.jpg,40,30,,1,,,")
    with pytest.raises(ValueError) as refused:
        CSVDetection(file)
    assert str(refused.value) == f"{file}, line 2, a.jpg [1, , , ]: no class name"


def test_an_image_a_row_names_that_is_not_there_is_left_out_with_its_rows(tmp_path):
    image(tmp_path / "a.jpg")
    file = annotations(tmp_path, "a.jpg,40,30,cell,1,2,12,20", "gone.jpg,40,30,cell,1,2,3,4")
    with pytest.warns(UserWarning) as warned:
        dataset = open_dataset(tmp_path)
    assert dataset.image_files == [tmp_path / "a.jpg"] and len(dataset.target(0)["boxes"]) == 1
    assert [str(w.message) for w in warned] == [
        f"{file}: 1 image is left out, not found: {tmp_path / 'gone.jpg'}"
    ]
    (tmp_path / "a.jpg").rename(tmp_path / "other.jpg")
    with pytest.warns(UserWarning), pytest.raises(ValueError) as none:
        open_dataset(tmp_path)
    assert str(none.value) == f"{file}: the dataset holds no image (none of its 2 images is there)"


def test_without_width_and_height_columns_the_image_files_give_the_size(tmp_path):
    image(tmp_path / "a.jpg")
    file = annotations(
        tmp_path, "a.jpg,cell,1,2,50,20", header="filename,class,xmin,ymin,xmax,ymax"
    )
    with pytest.warns(UserWarning, match=r"1 box clipped to the image \(line 2, a\.jpg"):
        dataset = CSVDetection(file)
    assert torch.equal(dataset.target(0)["boxes"], torch.tensor([[1.0, 2.0, 40.0, 20.0]]))


@pytest.mark.parametrize(
    ("header", "row", "said"),
    [
        (
            "filename,width,height,class,xmin,ymin,ymax",
            "a.jpg,40,30,cell,1,2,9",
            "line 1: no 'xmax' column (the header has filename, width, height, class, xmin, "
            "ymin, ymax; needed: filename, width, height, class, xmin, ymin, xmax, ymax)",
        ),
        (
            "filename,width,class,xmin,ymin,xmax,ymax",
            "a.jpg,40,cell,1,2,9,9",
            "line 1: no 'height' column (the header has filename, width, class, xmin, ymin, "
            "xmax, ymax; needed: filename, width, height, class, xmin, ymin, xmax, ymax)",
        ),
        (
            # A quote left open: the header is one field to the end of the file.
            f'"{HEADER}',
            "a.jpg,40,30,cell,1,2,9,9",
            "line 2: no 'filename', 'class', 'xmin', 'ymin', 'xmax', 'ymax' column (the header "
            "has 'filename,width,height,class,xmin,ymin,xmax,ymax\\na.jpg,40,30,cell,1,2,9,9'; "
            "needed: filename, width, height, class, xmin, ymin, xmax, ymax); nor is it a box "
            "of keras-retinanet's CSV, which has no header: path,x1,y1,x2,y2,class_name, the "
            "corners numbers",
        ),
        (HEADER, "a.jpg,40,30,cell,1,2,9", "line 2: 7 fields, where the header has 8"),
        (
            HEADER,
            "a.jpg,40,30,cell,1,x2,9,9",
            "line 2, a.jpg [1, x2, 9, 9]: ymin 'x2' is not a number",
        ),
        (
            HEADER,
            "a.jpg,40,30,cell,1,nan,9,9",
            "line 2, a.jpg [1, nan, 9, 9]: ymin 'nan' is not a number",
        ),
        (
            HEADER,
            "a.jpg,40,30,cell,9,2,9,9",
            "line 2, a.jpg [9, 2, 9, 9]: xmax 9 is not greater than xmin 9",
        ),
        (
            HEADER,
            "a.jpg,40,30,cell,1,9,9,3",
            "line 2, a.jpg [1, 9, 9, 3]: ymax 3 is not greater than ymin 9",
        ),
        (HEADER, "a.jpg,40,30, ,1,2,9,9", "line 2, a.jpg [1, 2, 9, 9]: no class name"),
        (HEADER, ",40,30,cell,1,2,9,9", "line 2, (no file name) [1, 2, 9, 9]: no file name"),
        (
            HEADER,
            "a.jpg,40.5,30,cell,1,2,9,9",
            "line 2, a.jpg [1, 2, 9, 9]: width 40.5 is not a whole number above 0",
        ),
        (
            HEADER,
            "a.jpg,40,0,cell,1,2,9,9",
            "line 2, a.jpg [1, 2, 9, 9]: height 0 is not a whole number above 0",
        ),
    ],
)
def test_each_bad_header_or_row_is_named_in_one_line(tmp_path, header, row, said):
    image(tmp_path / "a.jpg")
    file = annotations(tmp_path, row, header=header)
    with pytest.raises(ValueError) as bad:
        open_dataset(tmp_path)
    assert str(bad.value) == f"{file}, {said}"


def test_sizes_that_disagree_with_each_other_or_with_the_image_are_named(tmp_path):
    image(tmp_path / "a.jpg")
    file = annotations(tmp_path, "a.jpg,40,30,cell,1,2,9,9", "a.jpg,41,30,cell,1,2,9,9")
    with pytest.raises(ValueError) as bad:
        open_dataset(tmp_path)
    assert str(bad.value) == (
        f"{file}, line 3, a.jpg [1, 2, 9, 9]: width and height 41x30, where line 2 gives 40x30"
    )
    # A size that disagrees with the file: the file's is used, as in the COCO and VOC
    # readers, and said so.
    annotations(tmp_path, "a.jpg,50,30,cell,1,2,45,9")
    with pytest.warns(UserWarning) as warned:
        dataset = open_dataset(tmp_path)
    assert dataset.image_size(0) == (30, 40)
    assert torch.equal(dataset.target(0)["boxes"], torch.tensor([[1.0, 2.0, 40.0, 9.0]]))
    assert [str(w.message) for w in warned] == [
        f"{file}: 1 image: the annotated width and height differs from the image file's, "
        "which is used (a.jpg, line 2 (width and height 50x30, file 40x30))",
        f"{file}: 1 box clipped to the image (line 2, a.jpg [1, 2, 45, 9] on 40x30)",
    ]


def test_an_exif_turned_image_is_turned_where_the_recorded_size_is_its_turned_one(tmp_path):
    # Stored 40 wide and 20 high; orientation 6 shows it 20 wide and 40 high, as recorded.
    save_exif_jpeg(tmp_path / "x.jpg", (40, 20), orientation=6)
    file = annotations(tmp_path, "x.jpg,20,40,dog,0,0,20,10")
    with pytest.warns(UserWarning) as warned:
        dataset = CSVDetection(file)
    assert [str(w.message) for w in warned] == [
        f"{file}: 1 image turned by the EXIF orientation to agree with the annotated width "
        "and height (x.jpg, line 2)"
    ]
    image, target = dataset[0]
    assert image.shape == (3, 40, 20) and dataset.image_size(0) == (40, 20)
    assert torch.equal(image, torch.rot90(read_image_levels(tmp_path / "x.jpg"), k=-1, dims=(1, 2)))
    assert torch.equal(target["boxes"], torch.tensor([[0.0, 0.0, 20.0, 10.0]]))


def test_an_empty_file_and_a_file_without_rows_are_named(tmp_path):
    image(tmp_path / "a.jpg")
    file = annotations(tmp_path)
    with pytest.raises(ValueError) as bad:
        open_dataset(tmp_path)
    assert str(bad.value) == f"{file}: the dataset holds no image (no row under its header)"
    file.write_text("")
    with pytest.raises(ValueError) as bad:
        open_dataset(tmp_path)
    assert str(bad.value) == (
        f"{file}: empty, expected the header {HEADER}, or keras-retinanet's rows "
        "path,x1,y1,x2,y2,class_name"
    )


def test_a_csv_dataset_trains(tmp_path, capsys):
    for k in range(4):
        image(tmp_path / "data" / f"{k}.jpg")
    annotations(tmp_path / "data", *(f"{k}.jpg,40,30,cell,5,5,{20 + k},20" for k in range(4)))
    out = tmp_path / "run"
    argv = ["train", "--data", str(tmp_path / "data"), "--steps", "2", "--batch-size", "2"]
    argv += ["--min-size", "64", "--max-size", "64", "--out", str(out)]
    assert main(argv) == 0
    assert (out / "model.safetensors").is_file()
