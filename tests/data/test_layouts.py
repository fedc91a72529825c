"""Datasets laid out as annotation tools export them, each built here from small files:
LabelImg VOC folders, Roboflow's VOC split folders, Ultralytics data YAMLs, Roboflow /
CVAT / Label Studio COCO; and the held-out split of data without splits, from the command
line through evaluation."""

import json
import re
import shutil
import unicodedata
import warnings
from pathlib import Path

import pytest
import torch
from PIL import Image

from exif_images import save_exif_jpeg
from faster_rcnn.cli import main, splits
from faster_rcnn.counted import counted
from faster_rcnn.data import open as layouts_module
from faster_rcnn.data import open_dataset
from faster_rcnn.data.coco import COCODetection
from faster_rcnn.data.csv_boxes import CSVDetection
from faster_rcnn.data.darknet import DarknetYOLO
from faster_rcnn.data.dataset import IMAGE_SUFFIXES
from faster_rcnn.data.holdout import Subset, holdout_indices, item_keys, read_split
from faster_rcnn.data.open import find_layout
from faster_rcnn.data.ultralytics import UltralyticsYOLO, label_path
from faster_rcnn.data.voc import VOCDetection
from faster_rcnn.data.voc_folder import VOCFolder
from faster_rcnn.data.yolo import YOLODetection
from thread_counts import threads_at_calls


def image(path: Path, size: tuple[int, int] = (40, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (90, 120, 200)).save(path)
    return path


def voc_xml(path: Path, filename: str | None, boxes: list[tuple[str, list[int]]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    objects = "".join(
        f"<object><name>{name}</name><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>"
        f"<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
        for name, b in boxes
    )
    named = f"<filename>{filename}</filename>" if filename is not None else ""
    path.write_text(
        f"<annotation>{named}<size><width>40</width><height>30</height></size>"
        f"{objects}</annotation>"
    )


# --- VOC XML without ImageSets/ (LabelImg) --------------------------------------------


def test_labelimg_xml_beside_their_images(tmp_path):
    image(tmp_path / "a.jpg")
    image(tmp_path / "b.png")
    voc_xml(tmp_path / "a.xml", "a.jpg", [("dog", [2, 3, 20, 25])])
    voc_xml(tmp_path / "b.xml", None, [("cat", [1, 1, 10, 10]), ("dog", [5, 5, 30, 28])])
    layout = find_layout(tmp_path)
    assert (layout.format, layout.splits) == ("Pascal VOC XML files (no ImageSets/)", ())
    dataset = open_dataset(tmp_path)
    assert dataset.class_names == ("cat", "dog")
    assert dataset.image_files == [tmp_path / "a.jpg", tmp_path / "b.png"]  # b by its stem
    assert torch.equal(dataset[0][1]["boxes"], torch.tensor([[1.0, 2.0, 20.0, 25.0]]))
    assert dataset[1][1]["labels"].tolist() == [1, 2]
    # An image no .xml names is left out, and said so.
    image(tmp_path / "c.jpg")
    with pytest.warns(UserWarning) as warned:
        dataset = open_dataset(tmp_path)
    assert dataset.image_files == [tmp_path / "a.jpg", tmp_path / "b.png"]
    assert [str(w.message) for w in warned] == [
        f"{tmp_path}: 1 image has no .xml and is left out (c.jpg): an image without "
        "objects needs an .xml without <object> to be trained on"
    ]


def test_labelimg_xml_in_a_sibling_folder_found_by_filename_or_stem(tmp_path):
    # <filename> as LabelImg writes it on Windows, a name from another machine.
    voc_xml(
        tmp_path / "annots" / "x1.xml", r"C:\Users\me\Pictures\IMG_7.JPG", [("r", [1, 1, 9, 9])]
    )
    voc_xml(tmp_path / "annots" / "x2.xml", "renamed-since.jpg", [("r", [1, 1, 9, 9])])
    image(tmp_path / "images" / "IMG_7.jpg")
    image(tmp_path / "images" / "x2.jpeg")
    image(tmp_path / "notes" / "unrelated.png")  # a sibling with images, searched after
    dataset = open_dataset(tmp_path)
    assert dataset.image_files == [tmp_path / "images/IMG_7.jpg", tmp_path / "images/x2.jpeg"]
    # An image deleted after labelling: its .xml is left out, as VOC leaves out an id
    # (the whole folder was refused).
    voc_xml(tmp_path / "annots" / "x3.xml", "gone.jpg", [("r", [1, 1, 9, 9])])
    with pytest.warns(UserWarning) as warned:
        dataset = open_dataset(tmp_path)
    assert dataset.image_files == [tmp_path / "images/IMG_7.jpg", tmp_path / "images/x2.jpeg"]
    assert [str(w.message) for w in warned] == [
        f"{tmp_path / 'annots'}: 1 .xml file is left out, its image not found in "
        f"{tmp_path / 'images'}, {tmp_path / 'notes'}: x3.xml ('gone.jpg' (<filename>) or "
        "x3{.jpg,.jpeg,.png,.bmp,.webp,.tif,.tiff,.gif})"
    ]
    for name in ("IMG_7.jpg", "x2.jpeg"):
        (tmp_path / "images" / name).unlink()
    with pytest.warns(UserWarning), pytest.raises(ValueError) as none:
        open_dataset(tmp_path)
    assert str(none.value) == (
        f"{tmp_path / 'annots'}: the dataset holds no image (none of its 3 .xml files has its "
        "image)"
    )


def test_labelimg_image_found_nowhere_names_the_first_few_of_many_folders_searched(tmp_path):
    """A LabelImg folder among many holding images (a folder of datasets): the warning
    of an .xml whose image is found nowhere counts the folders searched and names the
    first three, the .xml's own first."""
    voc_xml(tmp_path / "annots" / "a.xml", "a.jpg", [("r", [1, 1, 9, 9])])
    voc_xml(tmp_path / "annots" / "b.xml", "gone.jpg", [("r", [1, 1, 9, 9])])
    image(tmp_path / "images" / "a.jpg")
    for name in ("other1", "other2", "other3"):
        image(tmp_path / name / "x.jpg")
    with pytest.warns(UserWarning) as warned:
        dataset = open_dataset(tmp_path / "annots")
    assert dataset.image_files == [tmp_path / "images/a.jpg"]
    assert [str(w.message) for w in warned] == [
        f"{tmp_path / 'annots'}: 1 .xml file is left out, its image not found in 4 folders, "
        f"{tmp_path / 'images'}, {tmp_path / 'other1'}, {tmp_path / 'other2'}, ...: b.xml "
        "('gone.jpg' (<filename>) or b{.jpg,.jpeg,.png,.bmp,.webp,.tif,.tiff,.gif})"
    ]


def test_roboflow_voc_export_one_folder_per_split_each_image_from_its_own_split(tmp_path):
    for split, boxes in (("train", [[2, 3, 20, 25]]), ("valid", [[1, 1, 9, 9]] * 2)):
        voc_xml(tmp_path / split / "c_jpg.rf.1.xml", "c_jpg.rf.1.jpg", [("wbc", b) for b in boxes])
        image(tmp_path / split / "c_jpg.rf.1.jpg")  # the same name in both splits
    voc_xml(tmp_path / "test" / "d.xml", "d.jpg", [("rbc", [5, 5, 30, 28])])
    image(tmp_path / "test" / "d.jpg")
    layout = find_layout(tmp_path)
    assert layout.format == "Pascal VOC XML files (a folder per split)"
    assert layout.splits == ("test", "train", "valid")
    val = open_dataset(tmp_path, "val", class_names=("rbc", "wbc"))
    assert val.image_files == [tmp_path / "valid/c_jpg.rf.1.jpg"]
    assert val[0][1]["labels"].tolist() == [2, 2]
    test = open_dataset(tmp_path, "test", class_names=("rbc", "wbc"))
    assert test[0][1]["labels"].tolist() == [1]
    # An image missing from its split's folder (which still holds images, so it is still
    # a split) is not taken from another split's.
    (tmp_path / "valid" / "c_jpg.rf.1.jpg").unlink()
    image(tmp_path / "valid" / "other.jpg")
    with (
        pytest.warns(UserWarning, match=re.escape(f"its image not found in {tmp_path / 'valid'}:")),
        pytest.raises(ValueError) as none,
    ):
        open_dataset(tmp_path, "val")
    assert str(none.value) == (
        f"{tmp_path / 'valid'}: the valid split holds no image (none of its 1 .xml file has "
        "its image)"
    )


def test_roboflow_voc_export_of_one_split_reads_as_that_split(tmp_path, capsys):
    """Roboflow's export of its valid split alone, valid/ with the .xml beside the images,
    read as a LabelImg folder without splits; a lone folder of another name still is
    one (LabelImg's images/)."""
    (tmp_path / "README.roboflow.txt").write_text("exported via roboflow.com\n")
    voc_xml(tmp_path / "valid" / "a_jpg.rf.1.xml", "a_jpg.rf.1.jpg", [("wbc", [2, 3, 20, 25])])
    image(tmp_path / "valid" / "a_jpg.rf.1.jpg")
    layout = find_layout(tmp_path)
    assert (layout.format, layout.splits) == (
        "Pascal VOC XML files (a folder per split)",
        ("valid",),
    )
    assert open_dataset(tmp_path, "val").image_files == [tmp_path / "valid/a_jpg.rf.1.jpg"]
    argv = ["train", "--data", str(tmp_path), "--steps", "1", "--out", str(tmp_path / "run")]
    assert main(argv) == 2
    assert capsys.readouterr().err == (
        f"faster-rcnn: error: {tmp_path} (Pascal VOC XML files (a folder per split)) has the "
        "split valid; none fits 'train': --split valid trains on it (add --val-fraction "
        "0.2 to hold a fifth of it out: evaluate has no other split to score)\n"
    )
    (tmp_path / "valid").rename(tmp_path / "images")
    layout = find_layout(tmp_path)
    assert (layout.format, layout.splits) == ("Pascal VOC XML files (no ImageSets/)", ())


def test_a_roboflow_voc_train_folder_without_images_is_kept_for_opening_to_name_it(tmp_path):
    """train/ holding its .xml files alone was no split: train asked which of the others
    to train on ('--split test or --split valid'); it is kept, as train always is, and
    opening it says it holds no image, as every format says of an empty split."""
    empty_roboflow_voc_test(tmp_path)
    (tmp_path / "test").rename(tmp_path / "train2")
    (tmp_path / "train").rename(tmp_path / "test")
    (tmp_path / "train2").rename(tmp_path / "train")
    layout = find_layout(tmp_path)
    assert (layout.splits, layout.note) == (("test", "train", "valid"), None)
    with pytest.raises(ValueError) as refused:
        open_dataset(tmp_path, "train")
    assert str(refused.value) == (
        f"{tmp_path / 'train'}: the train split holds no image (3 .xml files without their images)"
    )


def test_xml_folders_without_images_or_under_a_labelimg_folder_are_not_split_folders(tmp_path):
    voc_xml(tmp_path / "annots" / "a.xml", "a.jpg", [("r", [1, 1, 9, 9])])
    voc_xml(tmp_path / "more_annots" / "b.xml", "b.jpg", [("r", [1, 1, 9, 9])])
    image(tmp_path / "images" / "a.jpg")
    image(tmp_path / "images" / "b.jpg")
    # Two folders of XML files, neither holding images: not Roboflow's split folders.
    with pytest.raises(ValueError, match="cannot tell the dataset format"):
        find_layout(tmp_path)
    # XML files beside images in the folder itself: LabelImg's, whatever its subfolders hold.
    for folder in ("annots", "more_annots"):
        image(tmp_path / folder / "c.jpg")
    voc_xml(tmp_path / "d.xml", "d.jpg", [("r", [1, 1, 9, 9])])
    image(tmp_path / "d.jpg")
    assert find_layout(tmp_path).format == "Pascal VOC XML files (no ImageSets/)"


def test_a_folder_holding_only_a_dataset_folder_names_it(tmp_path):
    """An export unzipped into a folder of its own: --data one level too high is told
    where the dataset is; a folder with anything else beside it is not guessed at."""
    inner = tmp_path / "export" / "task_1 yolo"
    yolo_images(inner, "train", 1)
    with pytest.raises(ValueError) as refused:
        find_layout(tmp_path / "export")
    assert str(refused.value).startswith(
        f"cannot tell the dataset format of {tmp_path / 'export'} (it holds one folder only, "
        f"which reads as YOLO: --data {inner}): looked for "
    )
    (tmp_path / "export" / "notes.txt").write_text("exported by hand\n")
    with pytest.raises(ValueError, match=f"format of {re.escape(str(tmp_path / 'export'))}: "):
        find_layout(tmp_path / "export")


def test_a_folder_of_images_and_instance_masks_is_told_that_masks_are_not_read(tmp_path):
    """PennFudan's layout (torchvision's fine-tuning tutorial): images beside a folder of
    instance masks, which no layout reads; a folder of images alone is not told so."""
    image(tmp_path / "PNGImages" / "FudanPed00001.png")
    with pytest.raises(ValueError, match=f"format of {re.escape(str(tmp_path))}: "):
        find_layout(tmp_path)
    image(tmp_path / "PedMasks" / "FudanPed00001_mask.png")
    with pytest.raises(ValueError) as refused:
        find_layout(tmp_path)
    assert str(refused.value).startswith(
        f"cannot tell the dataset format of {tmp_path} (PedMasks/ holds masks, which no "
        "layout reads: derive the boxes from them in a Dataset class of your own, or write "
        "them in one of the layouts looked for; README, Your own Dataset class): looked for "
    )


# --- Ultralytics data YAML -----------------------------------------------------------


def yolo_images(root: Path, split: str, count: int, class_id: int = 0) -> None:
    for k in range(count):
        image(root / "images" / split / f"{split}{k}.jpg")
        label = root / "labels" / split / f"{split}{k}.txt"
        label.parent.mkdir(parents=True, exist_ok=True)
        label.write_text(f"{class_id} 0.5 0.5 0.25 0.5\n")


@pytest.mark.parametrize("names", ["[person, bicycle]", "{0: person, 1: bicycle}"])
def test_ultralytics_yaml_with_folders_and_list_files(tmp_path, names):
    root = tmp_path / "datasets" / "coco8"
    yolo_images(root, "train2017", 3, class_id=1)
    yolo_images(root, "val2017", 2)
    (root / "val.txt").write_text("./images/val2017/val20171.jpg\nimages/val2017/val20170.jpg\n")
    yaml = tmp_path / "cfg" / "coco8.yaml"
    yaml.parent.mkdir()
    yaml.write_text(
        f"path: ../datasets/coco8\ntrain: images/train2017\nval: val.txt\nnames: {names}\n"
    )
    layout = find_layout(yaml)
    assert (layout.format, layout.splits) == ("YOLO (Ultralytics YAML)", ("train", "val"))
    train = open_dataset(yaml)
    assert train.class_names == ("person", "bicycle") and len(train) == 3
    assert torch.equal(train[0][1]["boxes"], torch.tensor([[15.0, 7.5, 25.0, 22.5]]))
    assert train[0][1]["labels"].tolist() == [2]
    val = open_dataset(yaml, "val")
    assert [p.name for p in val.image_files] == ["val20171.jpg", "val20170.jpg"]
    with pytest.raises(ValueError, match=r"has the splits train, val; none fits 'test'"):
        open_dataset(yaml, "test")
    yaml.write_text(f"path: ../datasets/coco8\ntrain: images/train2017\nnc: 2\nnames: {names}\n")
    assert open_dataset(yaml).class_names == ("person", "bicycle")
    yaml.write_text(f"path: ../datasets/coco8\ntrain: images/train2017\nnc: 3\nnames: {names}\n")
    with pytest.raises(ValueError, match=r"coco8\.yaml: 'nc: 3' but 'names' lists 2 classes"):
        open_dataset(yaml)


def test_a_data_yaml_path_that_is_not_there_is_named(tmp_path):
    """A YAML copied from Ultralytics' examples names its datasets folder (path:
    ../datasets/coco8), which is not there: the error named the train folder under it,
    as neither a folder of images nor a list, not the path that led there."""
    yolo_images(tmp_path, "train", 1)
    yaml = tmp_path / "data.yaml"
    yaml.write_text("path: ../datasets/coco8\ntrain: images/train\nnames: [cell]\n")
    with pytest.raises(FileNotFoundError) as refused:
        open_dataset(yaml)
    assert str(refused.value) == (
        f"{yaml}: 'path: ../datasets/coco8' is not there ({tmp_path / '../datasets/coco8'}): "
        "the split folders are read from it, relative to the YAML's folder; drop it to read "
        "them from the YAML's folder"
    )
    yaml.write_text("train: images/train\nnames: [cell]\n")
    assert open_dataset(yaml).image_files == [tmp_path / "images/train/train0.jpg"]


def test_ultralytics_list_file_written_on_windows(tmp_path):
    """Its backslashes were taken as part of a file name: every image was missing."""
    yolo_images(tmp_path, "train", 2)
    (tmp_path / "train.txt").write_text(
        ".\\images\\train\\train1.jpg\r\nimages\\train\\train0.jpg\r\n"
    )
    (tmp_path / "data.yaml").write_text("train: train.txt\nnames: [cell]\n")
    data = open_dataset(tmp_path / "data.yaml")
    assert data.image_files == [
        tmp_path / "images/train/train1.jpg",
        tmp_path / "images/train/train0.jpg",
    ]
    assert data.target(0)["labels"].tolist() == [1]


def test_ultralytics_yaml_entries_written_on_windows(tmp_path):
    """``train: images\\train`` was taken as one folder named so, which is not there."""
    root = tmp_path / "cells"
    yolo_images(root, "train", 2)
    for split in ("valid", "test"):  # Roboflow's ../valid/images, beside valid/
        yolo_images(root / split, "", 1)
    (tmp_path / "data.yaml").write_text(
        "path: .\\cells\ntrain: images\\train\nval: ..\\valid\\images\n"
        "test: .\\test\\images\nnames: [cell]\n"
    )
    layout = find_layout(tmp_path / "data.yaml")
    assert layout.splits == ("train", "val", "test") and not layout.left_out
    train = layout.open("train")
    assert train.image_files == [root / "images/train/train0.jpg", root / "images/train/train1.jpg"]
    assert train.target(1)["labels"].tolist() == [1]
    assert layout.open("val").image_files == [root / "valid/images/0.jpg"]
    assert layout.open("test").image_files == [root / "test/images/0.jpg"]


def test_ultralytics_yaml_in_utf16_with_a_byte_order_mark(tmp_path):
    """Saved by Windows Notepad as "Unicode": refused as not UTF-8."""
    yolo_images(tmp_path, "train", 1)
    (tmp_path / "data.yaml").write_bytes(
        "train: images/train\nnames: [c\u00e9lula]\n".encode("utf-16")
    )
    data = open_dataset(tmp_path / "data.yaml")
    assert data.class_names == ("c\u00e9lula",)
    assert data.target(0)["labels"].tolist() == [1]


@pytest.mark.parametrize("names", ["[on, off, yes, no]", "{0: on, 1: off, 2: yes, 3: no}"])
def test_ultralytics_names_yaml_reads_as_truth_values_keep_their_text(tmp_path, names):
    """``yaml.safe_load`` read an unquoted ``on`` as True: the class was named 'True'."""
    yolo_images(tmp_path, "train", 1, class_id=3)
    (tmp_path / "data.yaml").write_text(f"train: images/train\nnames: {names}\n")
    data = open_dataset(tmp_path / "data.yaml")
    assert data.class_names == ("on", "off", "yes", "no")
    assert data[0][1]["labels"].tolist() == [4]


def test_ultralytics_names_mapping_a_class_to_no_name_is_refused(tmp_path):
    """``{0: cell, 1: }`` named class 1 'None'."""
    yolo_images(tmp_path, "train", 1)
    (tmp_path / "data.yaml").write_text("train: images/train\nnames: {0: cell, 1: }\n")
    with pytest.raises(ValueError, match=r"data\.yaml: 'names' must be a list of names or a"):
        open_dataset(tmp_path / "data.yaml")


def test_ultralytics_stray_labels_are_warned_of_in_folders_not_beside_a_partial_list(tmp_path):
    yolo_images(tmp_path, "train", 2)
    yolo_images(tmp_path, "val", 2)
    (tmp_path / "labels" / "train" / "gone.txt").write_text("0 0.5 0.5 0.25 0.5\n")
    (tmp_path / "val.txt").write_text("images/val/val1.jpg\n")  # val0's label is not stray
    (tmp_path / "data.yaml").write_text("train: images/train\nval: val.txt\nnames: [cell]\n")
    with pytest.warns(UserWarning) as warned:
        assert len(open_dataset(tmp_path / "data.yaml", "train")) == 2
    assert [str(w.message) for w in warned] == [
        f"{tmp_path / 'data.yaml'} (train): 1 label file is not read, no image of theirs was "
        "found (.jpg/.jpeg/.png/.bmp/.webp/.tif/.tiff/.gif): gone.txt"
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(open_dataset(tmp_path / "data.yaml", "val")) == 1


def test_ultralytics_rule_for_label_paths_and_roboflow_yaml_beside_its_splits(tmp_path):
    assert label_path(Path("/d/images/a/images/x.jpg")) == Path("/d/images/a/labels/x.txt")
    # Roboflow's YOLO export: data.yaml says ../train/images, next to train/.
    for split in ("train", "valid"):
        yolo_images(tmp_path / split, "", 2)
    (tmp_path / "data.yaml").write_text(
        "train: ../train/images\nval: ../valid/images\nnc: 1\nnames: ['cell']\n"
    )
    assert len(open_dataset(tmp_path, "train")) == 2
    assert open_dataset(tmp_path, "val").class_names == ("cell",)


def test_a_yaml_split_whose_folder_is_not_there_is_left_out(tmp_path, capsys):
    """A Roboflow YOLO export without a test split whose data.yaml still names
    ../test/images: test counted as a split, so train joined train and val ('test is kept
    for evaluate') and evaluate had nothing to score; data could not open it."""
    for split in ("train", "valid"):
        yolo_images(tmp_path / split, "", 2)
    (tmp_path / "data.yaml").write_text(
        "train: ../train/images\nval: ../valid/images\ntest: ../test/images\nnc: 1\n"
        "names: ['cell']\n"
    )
    layout = find_layout(tmp_path)
    assert layout.splits == ("train", "val")
    assert layout.note == (
        f"{tmp_path / 'data.yaml'}: the test split holds no image (test: ../test/images is "
        "not there): left out"
    )
    assert main(["data", "--data", str(tmp_path)]) == 0
    said = capsys.readouterr().out.splitlines()
    assert said[:2] == [
        f"{tmp_path}: YOLO (Ultralytics YAML), splits train, val",
        f"note: {layout.note}",
    ]
    assert "train trains on train and val together" not in "\n".join(said)
    # train is never left out: its absence is an error when it is opened.
    (tmp_path / "data.yaml").write_text("train: ../gone/images\nval: ../valid/images\nnames: [a]\n")
    assert find_layout(tmp_path).splits == ("train", "val")
    with pytest.raises(FileNotFoundError, match="gone/images is neither a folder of images"):
        open_dataset(tmp_path, "train")


def voc_lists(root: Path, lists: dict[str, list[str]]) -> Path:
    """Pascal VOC with ``ImageSets/Main/<split>.txt`` of the image ids ``lists`` gives,
    each image holding one cat."""
    (root / "ImageSets/Main").mkdir(parents=True)
    (root / "Annotations").mkdir()
    for split, ids in lists.items():
        (root / f"ImageSets/Main/{split}.txt").write_text("".join(f"{i}\n" for i in ids))
        for i in ids:
            voc_xml(root / f"Annotations/{i}.xml", None, [("cat", [2, 3, 20, 25])])
            image(root / f"JPEGImages/{i}.jpg")
    return root


def empty_voc_test(root: Path) -> str:
    voc_lists(root, {"train": ["a"], "val": ["b"], "test": []})
    return f"{root / 'ImageSets/Main/test.txt'}: the test split holds no image"


def empty_coco_test(root: Path) -> str:
    for split, names in (("train", ["a.jpg"]), ("val", ["b.jpg"]), ("test", [])):
        for name in names:
            image(root / split / name)
        coco(root / f"annotations/instances_{split}.json", names, [{"id": 1, "name": "car"}], 1)
    return (
        f"{root / 'annotations/instances_test.json'}: the test split holds no image (its "
        "'images' list is empty)"
    )


def empty_roboflow_coco_test(root: Path) -> str:
    for split, names in (("train", ["a.jpg"]), ("valid", ["b.jpg"]), ("test", [])):
        for name in names:
            image(root / split / name)
        coco(root / split / "_annotations.coco.json", names, [{"id": 1, "name": "car"}], 1)
    return (
        f"{root / 'test/_annotations.coco.json'}: the test split holds no image (its "
        "'images' list is empty)"
    )


def empty_yolo_test(root: Path) -> str:
    yolo_images(root, "train", 1)
    yolo_images(root, "val", 1)
    (root / "images/test").mkdir()
    (root / "labels/test").mkdir()
    return (
        f"{root / 'images/test'}: the test split holds no image (no "
        ".jpg/.jpeg/.png/.bmp/.webp/.tif/.tiff/.gif file in it)"
    )


def empty_yaml_test(root: Path) -> str:
    for split in ("train", "valid"):
        yolo_images(root / split, "", 1)
    (root / "test/images").mkdir(parents=True)
    (root / "data.yaml").write_text(
        "train: ../train/images\nval: ../valid/images\ntest: ../test/images\nnames: [cell]\n"
    )
    return f"{root / 'data.yaml'}: the test split holds no image (test: ../test/images)"


def empty_darknet_test(root: Path) -> str:
    cvat_yolo(root, {"train": {"a": "0 0.5 0.5 0.2 0.2\n"}, "valid": {"b": ""}, "test": {}})
    return f"{root / 'test.txt'}: the test split holds no image"


def empty_roboflow_voc_test(root: Path) -> str:
    """Roboflow's Pascal VOC export whose ``test/`` holds its ``.xml`` files alone."""
    for split in ("train", "valid"):
        voc_xml(root / split / "a.xml", "a.jpg", [("cat", [2, 3, 20, 25])])
        image(root / split / "a.jpg")
    for k in range(3):
        voc_xml(root / "test" / f"t{k}.xml", f"t{k}.jpg", [("cat", [2, 3, 20, 25])])
    return f"{root / 'test'}: the test split holds no image (3 .xml files without their images)"


def empty_roboflow_coco_test_folder(root: Path) -> str:
    """Roboflow's COCO export with an empty ``test/`` folder: it was no split, silently."""
    empty_roboflow_coco_test(root)
    (root / "test/_annotations.coco.json").unlink()
    return f"{root / 'test'}: the test split holds no image (no .json file or image in it)"


def empty_roboflow_voc_test_folder(root: Path) -> str:
    empty_roboflow_voc_test(root)
    for k in range(3):
        (root / f"test/t{k}.xml").unlink()
    return f"{root / 'test'}: the test split holds no image (no .xml file or image in it)"


@pytest.mark.parametrize(
    "empty_test",
    [
        empty_voc_test,
        empty_coco_test,
        empty_roboflow_coco_test,
        empty_yolo_test,
        empty_yaml_test,
        empty_darknet_test,
        empty_roboflow_voc_test,
        empty_roboflow_coco_test_folder,
        empty_roboflow_voc_test_folder,
    ],
)
def test_an_empty_split_is_left_out_with_a_note_naming_its_file(tmp_path, capsys, empty_test):
    """An empty test split counted as a split: train joined train and val ('test is kept
    for evaluate') and evaluate took test, which has nothing to score (or could not be
    opened); data could not describe it. The note says what the format's reader says of
    the split opened, as of an empty train: the notes said '<file> lists no image',
    '<folder> holds no image', '<yaml>: its test split, ..., holds no image'."""
    said = empty_test(tmp_path)
    layout = find_layout(tmp_path)
    assert len(layout.splits) == 2 and "test" not in layout.splits
    assert layout.note == f"{said}: left out"
    with pytest.raises(ValueError) as opened:
        layout.opener("test", None)
    assert str(opened.value) == said
    assert splits.default_training_splits(layout) == ("train",)
    assert splits.test_or_val(layout) == layout.resolve("val")
    with pytest.raises(ValueError) as refused:
        open_dataset(tmp_path, "test")
    assert str(refused.value).endswith(f"none fits 'test' ({said}: left out)")
    assert main(["data", "--data", str(tmp_path)]) == 0
    assert f"note: {said}: left out" in capsys.readouterr().out.splitlines()


def test_train_evaluate_predict_and_anchors_say_which_split_they_left_out(tmp_path, capsys):
    """Only data said why an empty test split was gone: train trained on train alone,
    evaluate and predict took val ('no test split: using val'), none naming the empty
    list."""
    said = empty_voc_test(tmp_path / "voc")
    run = tmp_path / "run"
    train = ["train", "--data", str(tmp_path / "voc"), "--preset", "small", "--steps", "1"]
    assert main([*train, "--min-size", "64", "--max-size", "64", "--out", str(run)]) == 0
    assert f"note: {said}: left out" in capsys.readouterr().out.splitlines()
    evaluate = ["evaluate", "--model", str(run / "model.safetensors")]
    assert main([*evaluate, "--data", str(tmp_path / "voc")]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[:2] == [
        f"note: {said}: left out",
        f"{tmp_path / 'voc'} has no test split: using val",
    ]
    model = str(run / "model.safetensors")
    predict = ["predict", "--model", model, "--data", str(tmp_path / "voc")]
    assert main([*predict, "--out", str(tmp_path / "p")]) == 0
    assert capsys.readouterr().out.splitlines()[0] == f"note: {said}: left out"
    anchors = ["anchors", "--data", str(tmp_path / "voc"), "--out", str(tmp_path / "a")]
    assert main(anchors) == 0
    assert capsys.readouterr().out.splitlines()[0] == f"note: {said}: left out"


@pytest.mark.parametrize(
    ("lists", "said"),
    [
        ({"train": ["a"], "test": ["b"]}, "train trains on train; evaluate scores test"),
        ({"train": ["a"], "val": ["b"]}, "train trains on train; evaluate scores val"),
        (
            {"train": ["a"], "val": ["b"], "test": ["c"]},
            "train trains on train and val together (--split train: on train alone); "
            "evaluate scores test",
        ),
    ],
)
def test_data_says_what_train_takes_and_evaluate_scores(tmp_path, capsys, lists, said):
    """data said which splits train takes only where it joined train and val, or left
    val out: on raccoon's train and test it said nothing of either command. Where it
    joins them, it said nothing of evaluate, which scores test."""
    voc_lists(tmp_path, lists)
    assert main(["data", "--data", str(tmp_path)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == said


@pytest.mark.parametrize(
    ("valid_class", "said"),
    [
        ("rbc", "train trains on train and valid together (--split train: on train alone)"),
        ("wbc", "train trains on train alone: valid has a class it lacks"),
    ],
)
def test_data_names_the_validation_split_by_its_name_in_the_data(
    tmp_path, capsys, valid_class, said
):
    """Roboflow's valid/ was said to be 'val', where train says 'valid'."""
    for split, name in (("train", "rbc"), ("valid", valid_class), ("test", "rbc")):
        voc_xml(tmp_path / split / "a.xml", "a.jpg", [(name, [2, 3, 20, 25])])
        image(tmp_path / split / "a.jpg")
    assert main(["data", "--data", str(tmp_path)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"{said}; evaluate scores test"


def test_a_coco_split_whose_own_image_folder_holds_images_is_not_parsed_to_find_it(
    tmp_path, monkeypatch
):
    """Finding the layout parsed every annotation file but train's to see whether it
    lists an image: 2.6 s for a val file of 50,000 images, before opening parsed it again.
    A val2017/ that holds images settles it; a test file without its folder is read."""
    for split, names in (("train2017", ["a.jpg"]), ("val2017", ["b.jpg"]), ("test2017", [])):
        for name in names:
            image(tmp_path / split / name)
        coco(tmp_path / f"annotations/instances_{split}.json", names, [{"id": 1, "name": "car"}], 1)
    parsed = []
    monkeypatch.setattr(
        layouts_module, "listed_image_names", lambda file: parsed.append(file.name) or []
    )
    layout = find_layout(tmp_path)
    assert layout.splits == ("train2017", "val2017")
    assert parsed == ["instances_test2017.json"]


def test_where_every_split_is_empty_the_error_names_their_files(tmp_path):
    voc = voc_lists(tmp_path / "voc", {"val": [], "test": []})
    lists = voc / "ImageSets/Main"
    with pytest.raises(ValueError) as refused:
        find_layout(voc)
    assert str(refused.value) == (
        f"{voc} (Pascal VOC) has no split with an image: {lists / 'test.txt'}: the test split "
        f"holds no image; {lists / 'val.txt'}: the val split holds no image"
    )
    roboflow = tmp_path / "roboflow"
    image(roboflow / "valid/a.jpg")  # not one the file lists
    coco(roboflow / "valid/_annotations.coco.json", [], [{"id": 1, "name": "car"}], 1)
    with pytest.raises(ValueError) as refused:
        find_layout(roboflow)
    assert str(refused.value) == (
        f"{roboflow} (COCO (a folder per split)) has no split with an image: "
        f"{roboflow / 'valid/_annotations.coco.json'}: the valid split holds no image (its "
        "'images' list is empty)"
    )


def test_a_data_yaml_without_train_whose_splits_hold_no_image_is_named(tmp_path, capsys):
    """Given the folder, the YAML's 'no split with an image' was passed over as though it
    were no data YAML: 'cannot tell the dataset format'. A YAML that is no data YAML
    still is, for the layout beside it."""
    (tmp_path / "valid/images").mkdir(parents=True)
    yaml = tmp_path / "data.yaml"
    yaml.write_text("val: ../valid/images\ntest: ../test/images\nnames: [cell]\n")
    said = (
        f"{yaml} (YOLO (Ultralytics YAML)) has no split with an image: {yaml}: the val split "
        f"holds no image (val: ../valid/images); {yaml}: the test split holds no image (test: "
        "../test/images is not there)"
    )
    for given in (tmp_path, yaml):
        with pytest.raises(ValueError) as refused:
            find_layout(given)
        assert str(refused.value) == said
    assert main(["data", "--data", str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"faster-rcnn: error: {said}\n"
    yaml.write_text("epochs: 3\n")  # a training config, beside a LabelImg folder
    image(tmp_path / "a.jpg")
    voc_xml(tmp_path / "a.xml", "a.jpg", [("cell", [2, 3, 20, 25])])
    assert find_layout(tmp_path).format == "Pascal VOC XML files (no ImageSets/)"


def test_a_data_yaml_naming_nothing_to_train_on_is_passed_over_for_the_layout_beside_it(
    tmp_path, capsys
):
    """A data YAML without train whose folders are not there, beside a YOLO images/ and
    labels/ that work, stopped every command with its 'has no split with an image': it
    names nothing to train on (another dataset's, or its folders moved), so the layout
    beside it is read, with a warning. Given by name, it is still refused; and a YAML
    naming train is the dataset's own description, its typo named."""
    yolo_images(tmp_path, "train", 2)
    yolo_images(tmp_path, "val", 1)
    yaml = tmp_path / "data.yaml"
    yaml.write_text("val: ../valid/images\ntest: ../test/images\nnames: [cell]\n")
    said = (
        f"{yaml} (YOLO (Ultralytics YAML)) has no split with an image: {yaml}: the val split "
        f"holds no image (val: ../valid/images is not there); {yaml}: the test split holds "
        "no image (test: ../test/images is not there)"
    )
    warned = f"{said}; nor does it name a train split: passed over with its names, "
    with pytest.warns(UserWarning) as caught:
        layout = find_layout(tmp_path)
    assert [str(w.message) for w in caught] == [f"{warned}{tmp_path} is read as YOLO"]
    assert (layout.format, layout.splits) == ("YOLO", ("train", "val"))
    with pytest.warns(UserWarning, match="passed over with its names"):
        assert len(open_dataset(tmp_path)) == 2
    assert main(["data", "--data", str(tmp_path)]) == 0
    assert f"faster-rcnn: warning: {warned}" in capsys.readouterr().err
    with pytest.raises(ValueError) as refused:
        find_layout(yaml)
    assert str(refused.value) == said
    yaml.write_text("train: images/trian\nval: images/val\nnames: [cell]\n")
    assert find_layout(tmp_path).format == "YOLO (Ultralytics YAML)"
    with pytest.raises(FileNotFoundError) as refused:
        open_dataset(tmp_path)
    assert str(refused.value) == (
        f"{yaml}: {tmp_path / 'images/trian'} is neither a folder of images nor a .txt list"
    )


def test_val_fraction_warns_once_of_a_data_yaml_passed_over(tmp_path, capsys):
    """train --val-fraction found the layout twice, checking the option and then opening
    the data, and so did evaluate: the warning of a data YAML passed over (it names no
    train split) was printed twice. The layout is found once, and the warning said once,
    every warning shown (Python's default shows one once per place in the code)."""
    data = tmp_path / "data"
    yolo_images(data, "train", 4)
    (data / "data.yaml").write_text("val: ../valid/images\nnames: [cell]\n")
    run, held = tmp_path / "run", ["--val-fraction", "0.5"]
    train = ["train", "--data", str(data), "--preset", "small", "--steps", "1", *held]
    evaluate = ["evaluate", "--model", str(run / "model.safetensors"), "--data", str(data)]
    warned = f"faster-rcnn: warning: {data / 'data.yaml'} (YOLO (Ultralytics YAML)) has no "
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        assert main([*train, "--min-size", "64", "--max-size", "64", "--out", str(run)]) == 0
        assert capsys.readouterr().err.count(warned) == 1
        assert main([*evaluate, *held, "--out", str(tmp_path / "scored")]) == 0
        assert capsys.readouterr().err.count(warned) == 1


def test_an_empty_training_split_is_kept_for_opening_it_to_name_its_file(tmp_path):
    """train is never left out, as a data YAML's train whose folder is not there: a note
    would leave train asking which split to train on."""
    voc_lists(tmp_path, {"train": [], "val": ["b"], "test": ["c"]})
    assert find_layout(tmp_path).splits == ("test", "train", "val")
    with pytest.raises(ValueError) as refused:
        open_dataset(tmp_path, "train")
    assert str(refused.value) == (
        f"{tmp_path / 'ImageSets/Main/train.txt'}: the train split holds no image"
    )


def empty_coco_train(root: Path) -> str:
    """COCO's own layout whose ``instances_train.json`` lists no image (and no ``train/``
    folder is there)."""
    for split, names in (("train", []), ("val", ["b.jpg"]), ("test", ["c.jpg"])):
        for name in names:
            image(root / split / name)
        coco(root / f"annotations/instances_{split}.json", names, [{"id": 1, "name": "car"}], 1)
    return (
        f"{root / 'annotations/instances_train.json'}: the train split holds no image (its "
        "'images' list is empty)"
    )


def empty_roboflow_coco_train(root: Path) -> str:
    for split, names in (("train", []), ("valid", ["b.jpg"]), ("test", ["c.jpg"])):
        for name in names:
            image(root / split / name)
        coco(root / split / "_annotations.coco.json", names, [{"id": 1, "name": "car"}], 1)
    return (
        f"{root / 'train/_annotations.coco.json'}: the train split holds no image (its "
        "'images' list is empty)"
    )


def empty_voc_train(root: Path) -> str:
    voc_lists(root, {"train": [], "val": ["b"], "test": ["c"]})
    return f"{root / 'ImageSets/Main/train.txt'}: the train split holds no image"


def empty_yolo_train(root: Path) -> str:
    yolo_images(root, "val", 1)
    yolo_images(root, "test", 1)
    (root / "images/train").mkdir()
    return (
        f"{root / 'images/train'}: the train split holds no image (no "
        ".jpg/.jpeg/.png/.bmp/.webp/.tif/.tiff/.gif file in it)"
    )


def empty_yaml_train(root: Path) -> str:
    for split in ("valid", "test"):
        yolo_images(root / split, "", 1)
    (root / "train/images").mkdir(parents=True)
    (root / "data.yaml").write_text(
        "train: ../train/images\nval: ../valid/images\ntest: ../test/images\nnames: [cell]\n"
    )
    return f"{root / 'data.yaml'}: the train split holds no image (train: ../train/images)"


def empty_darknet_train(root: Path) -> str:
    cvat_yolo(root, {"train": {}, "valid": {"b": ""}, "test": {"c": "0 0.5 0.5 0.2 0.2\n"}})
    return f"{root / 'train.txt'}: the train split holds no image"


def empty_roboflow_voc_train(root: Path) -> str:
    """Roboflow's Pascal VOC export whose ``train/`` holds its ``.xml`` files alone."""
    for split in ("valid", "test"):
        voc_xml(root / split / "a.xml", "a.jpg", [("cat", [2, 3, 20, 25])])
        image(root / split / "a.jpg")
    for k in range(3):
        voc_xml(root / "train" / f"t{k}.xml", f"t{k}.jpg", [("cat", [2, 3, 20, 25])])
    return f"{root / 'train'}: the train split holds no image (3 .xml files without their images)"


def empty_roboflow_coco_train_folder(root: Path) -> str:
    """Roboflow's COCO export whose ``train/`` is empty: no split, so train said 'none fits
    'train'' and asked which of valid and test to train on."""
    empty_roboflow_coco_train(root)
    (root / "train/_annotations.coco.json").unlink()
    return f"{root / 'train'}: the train split holds no image (no .json file or image in it)"


def empty_roboflow_voc_train_folder(root: Path) -> str:
    empty_roboflow_voc_train(root)
    for k in range(3):
        (root / f"train/t{k}.xml").unlink()
    return f"{root / 'train'}: the train split holds no image (no .xml file or image in it)"


@pytest.mark.parametrize(
    "empty_train",
    [
        empty_coco_train,
        empty_roboflow_coco_train,
        empty_voc_train,
        empty_yolo_train,
        empty_yaml_train,
        empty_darknet_train,
        empty_roboflow_voc_train,
        empty_roboflow_coco_train_folder,
        empty_roboflow_voc_train_folder,
    ],
)
def test_train_refuses_an_empty_training_split_naming_its_file(tmp_path, capsys, empty_train):
    """A COCO training file that lists no image, beside val and test: train joined the
    two and trained on val alone ('training on 0 train + 1 valid images'), or said that
    the folder of the images it does not list was missing. Each format refuses it, in one
    wording: VOC said '... lists no image ids', a data YAML 'no image in its 'train'
    split', YOLO 'no .jpg/... image in ...', Roboflow VOC named the first .xml's image."""
    said = empty_train(tmp_path / "data")
    run = tmp_path / "run"
    argv = ["train", "--data", str(tmp_path / "data"), "--preset", "small", "--steps", "1"]
    assert main([*argv, "--out", str(run)]) == 2
    assert capsys.readouterr().err == f"faster-rcnn: error: {said}\n"
    assert not (run / "model.safetensors").exists()


def test_each_reader_says_a_split_without_images_holds_none_in_one_wording(tmp_path):
    """The readers named an empty split each its own way ('lists no image', 'no image in
    its 'val' split', 'no .jpg/... image in', the first .xml's missing image): each says
    '<file or folder>: the <split> split holds no image', 'the dataset' where there are
    no splits, with what its format adds in parentheses."""
    file = coco(tmp_path / "coco/labels.json", [], [{"id": 1, "name": "car"}], 1)
    said = "holds no image (its 'images' list is empty)"
    with pytest.raises(ValueError, match=f"^{re.escape(f'{file}: the dataset {said}')}$"):
        COCODetection(file.parent, file)
    with pytest.raises(ValueError, match=f"^{re.escape(f'{file}: the val split {said}')}$"):
        COCODetection(file.parent, file, "val")
    (tmp_path / "yolo/images").mkdir(parents=True)
    (tmp_path / "yolo/labels").mkdir()
    suffixes = "/".join(IMAGE_SUFFIXES)
    with pytest.raises(ValueError) as refused:
        YOLODetection(tmp_path / "yolo")
    assert str(refused.value) == (
        f"{tmp_path / 'yolo/images'}: the dataset holds no image (no {suffixes} file in it)"
    )
    for k in range(2):
        voc_xml(tmp_path / f"labelimg/t{k}.xml", f"t{k}.jpg", [("cat", [2, 3, 20, 25])])
    with pytest.raises(ValueError) as refused:
        VOCFolder(tmp_path / "labelimg")
    assert str(refused.value) == (
        f"{tmp_path / 'labelimg'}: the dataset holds no image (2 .xml files without their images)"
    )
    yolo_images(tmp_path / "yaml", "train", 1)
    (tmp_path / "yaml/images/val").mkdir()
    yaml = tmp_path / "yaml/data.yaml"
    yaml.write_text("train: images/train\nval: images/val\nnames: [cell]\n")
    with pytest.raises(ValueError) as refused:
        UltralyticsYOLO(yaml, "val")
    assert str(refused.value) == f"{yaml}: the val split holds no image (val: images/val)"
    cvat_yolo(tmp_path / "darknet", {"train": {"a": ""}, "valid": {}})
    with pytest.raises(ValueError) as refused:
        DarknetYOLO(tmp_path / "darknet", "valid")
    assert str(refused.value) == f"{tmp_path / 'darknet/valid.txt'}: the valid split holds no image"
    voc = voc_lists(tmp_path / "voc", {"train": ["a"], "val": []})
    with pytest.raises(ValueError) as refused:
        VOCDetection(voc, "val")
    assert str(refused.value) == f"{voc / 'ImageSets/Main/val.txt'}: the val split holds no image"
    listed = csv_annotations(tmp_path / "csv/valid", "a.jpg,40,30,cell,2,2,12,10")
    with pytest.raises(ValueError) as refused:
        CSVDetection(listed, "valid")
    assert str(refused.value) == (
        f"{listed}: the valid split holds no image (no {suffixes} file beside it)"
    )


def test_an_empty_cvat_default_list_is_the_dataset_without_images(tmp_path, capsys):
    """CVAT's Pascal VOC export without subsets lists all its images in default.txt, data
    without splits: an empty one said 'the default split holds no image', of a split the
    data does not have. It says 'the dataset', as other data without splits does; beside
    a train.txt, default is a split, and named so."""
    data = voc_lists(tmp_path / "cvat", {"default": []})
    said = f"{data / 'ImageSets/Main/default.txt'}: the dataset holds no image"
    with pytest.raises(ValueError) as refused:
        open_dataset(data)
    assert str(refused.value) == said
    run = tmp_path / "run"
    argv = ["train", "--data", str(data), "--preset", "small", "--steps", "1", "--out", str(run)]
    assert main(argv) == 2
    assert capsys.readouterr().err == f"faster-rcnn: error: {said}\n"
    voc_lists(tmp_path / "split", {"train": ["a"], "default": []})
    with pytest.raises(ValueError) as refused:
        VOCDetection(tmp_path / "split", "default")
    assert str(refused.value) == (
        f"{tmp_path / 'split/ImageSets/Main/default.txt'}: the default split holds no image"
    )


def test_labelimg_yolo_txt_files_beside_their_images(tmp_path):
    """LabelImg's YOLO format, each image's .txt and classes.txt beside the images, was
    no layout ('cannot tell the dataset format'). An image without a .txt was never
    saved in LabelImg (it writes an empty one for an image without boxes): left out."""
    (tmp_path / "classes.txt").write_text("dog\ncat\n")
    image(tmp_path / "a.jpg")
    (tmp_path / "a.txt").write_text("1 0.5 0.5 0.25 0.5\n")
    image(tmp_path / "b.png")
    (tmp_path / "b.txt").write_text("")  # saved without boxes
    image(tmp_path / "c.jpg")  # never saved
    layout = find_layout(tmp_path)
    assert (layout.format, layout.splits) == ("YOLO .txt files beside their images", ())
    with pytest.warns(UserWarning) as warned:
        dataset = open_dataset(tmp_path)
    assert [str(w.message) for w in warned] == [
        f"{tmp_path}: 1 image has no .txt and is left out (c.jpg): an image without objects "
        "needs an empty .txt to be trained on"
    ]
    assert dataset.class_names == ("dog", "cat")
    assert dataset.image_files == [tmp_path / "a.jpg", tmp_path / "b.png"]
    assert dataset.target(0)["boxes"].tolist() == [[15.0, 7.5, 25.0, 22.5]]
    assert dataset.target(0)["labels"].tolist() == [2]
    assert dataset.target(1)["boxes"].shape == (0, 4)
    for name in ("a.txt", "b.txt"):
        (tmp_path / name).unlink()
    with pytest.raises(ValueError) as refused:
        open_dataset(tmp_path)
    assert str(refused.value) == (
        f"{tmp_path}: no image has a label file beside it (as a.txt of a.jpg), as LabelImg "
        "writes them in YOLO format"
    )


def test_a_labelimg_yolo_folder_is_opened_in_comparisons_linear_in_its_images(
    tmp_path, monkeypatch
):
    """Each image was looked for in the list of those kept, to warn of the others: n^2 / 2
    path comparisons, a minute for 20,000 images. 200 images, one of them without a .txt:
    a few comparisons per image (the label files found in dicts and sets), not 20,000."""
    (tmp_path / "classes.txt").write_text("dog\n")
    first = image(tmp_path / "000.png", (4, 3))
    for k in range(1, 200):
        (tmp_path / f"{k:03d}.png").hardlink_to(first)
        (tmp_path / f"{k:03d}.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    compared = []
    equal = Path.__eq__
    monkeypatch.setattr(Path, "__eq__", lambda a, b: compared.append(a) or equal(a, b))
    with pytest.warns(UserWarning, match=r"1 image has no \.txt and is left out \(000\.png\)"):
        dataset = open_dataset(tmp_path)
    assert len(dataset) == 199
    assert len(compared) < 5 * 200


def test_label_files_and_images_of_any_suffix_case_are_read_alike(tmp_path):
    """Files copied from Windows may end in .TXT, .XML, .JPG: an image's .TXT label file
    was not found (its image left out as never saved, or read without objects) and a stray
    .TXT not counted, where a .JPG image was read as one."""
    labelimg = tmp_path / "labelimg"
    (labelimg / "classes.txt").parent.mkdir()
    (labelimg / "classes.txt").write_text("dog\n")
    image(labelimg / "a.JPG")
    (labelimg / "a.TXT").write_text("0 0.5 0.5 0.25 0.5\n")
    image(labelimg / "b.PNG")
    (labelimg / "b.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dataset = open_dataset(labelimg)
    assert dataset.image_files == [labelimg / "a.JPG", labelimg / "b.PNG"]
    assert dataset.target(0)["boxes"].tolist() == [[15.0, 7.5, 25.0, 22.5]]

    yolo = tmp_path / "yolo"
    image(yolo / "images" / "a.JPG")
    (yolo / "labels").mkdir()
    (yolo / "labels" / "a.TXT").write_text("0 0.5 0.5 0.5 0.5\n")
    (yolo / "labels" / "z.TXT").write_text("0 0.5 0.5 0.5 0.5\n")  # no image of its own
    with pytest.warns(UserWarning) as warned:
        dataset = open_dataset(yolo)
    assert dataset.target(0)["boxes"].tolist() == [[10.0, 7.5, 30.0, 22.5]]
    assert [str(w.message) for w in warned] == [
        f"{yolo / 'labels'}: 1 label file is not read, no image of theirs was found "
        "(.jpg/.jpeg/.png/.bmp/.webp/.tif/.tiff/.gif): z.TXT"
    ]
    yaml = yolo / "data.yaml"
    (yolo / "val.TXT").write_text("images/a.JPG\n")
    yaml.write_text("train: val.TXT\nval: val.TXT\nnames: [dog]\n")
    assert UltralyticsYOLO(yaml, "val").target(0)["boxes"].tolist() == [[10.0, 7.5, 30.0, 22.5]]

    voc = tmp_path / "voc"
    image(voc / "a.jpg")
    voc_xml(voc / "a.XML", "a.jpg", [("dog", [2, 3, 20, 25])])
    assert open_dataset(voc).target(0)["boxes"].tolist() == [[1.0, 2.0, 20.0, 25.0]]

    darknet = cvat_yolo(tmp_path / "darknet", {"train": {"a": "1 0.5 0.5 0.5 0.4\n"}})
    (darknet / "train.txt").rename(darknet / "train.TXT")
    (darknet / "obj.data").write_text("classes = 2\ntrain = data/train.TXT\n")
    (darknet / "obj_train_data/a.txt").rename(darknet / "obj_train_data/a.TXT")
    assert DarknetYOLO(darknet, "train").target(0)["boxes"].tolist() == [[10.0, 9.0, 30.0, 21.0]]


@pytest.mark.parametrize("image_form, label_form", [("NFD", "NFC"), ("NFC", "NFD")])
def test_an_image_and_its_label_file_named_in_two_unicode_forms_are_paired(
    tmp_path, image_form, label_form
):
    """macOS writes "é" as "e" and an accent (NFD), most tools as one character (NFC): an
    image and its label copied from two places were an image without boxes and a label
    file without image."""
    name = "café"
    image(tmp_path / "images" / f"{unicodedata.normalize(image_form, name)}.jpg")
    (tmp_path / "labels").mkdir()
    label = tmp_path / "labels" / f"{unicodedata.normalize(label_form, name)}.txt"
    label.write_text("0 0.5 0.5 0.5 0.5\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dataset = open_dataset(tmp_path)
    assert dataset.target(0)["boxes"].tolist() == [[10.0, 7.5, 30.0, 22.5]]


def test_dataset_files_and_voc_lists_of_any_suffix_case_are_found(tmp_path):
    """COCO's .JSON, a data .YAML, VOC's train.TXT list and a.XML annotation (copied from
    Windows) were not found: the layout was not told, the file refused, a split lost."""
    voc = voc_lists(tmp_path / "voc", {"train": ["a"], "val": ["b"], "test": []})
    for name in ("ImageSets/Main/train.txt", "ImageSets/Main/test.txt", "Annotations/a.xml"):
        (voc / name).rename((voc / name).with_suffix((voc / name).suffix.upper()))
    layout = find_layout(voc)
    assert layout.splits == ("train", "val")
    test_list = voc / "ImageSets/Main/test.TXT"
    assert layout.left_out == {"test": f"{test_list}: the test split holds no image"}
    assert layout.open("train").target(0)["boxes"].tolist() == [[1.0, 2.0, 20.0, 25.0]]

    cars = [{"id": 1, "name": "car"}]
    coco_root = tmp_path / "coco"
    image(coco_root / "train" / "a.jpg")
    instances = coco(coco_root / "annotations/instances_train.JSON", ["a.jpg"], cars, 1)
    assert find_layout(coco_root).splits == ("train",)
    assert open_dataset(instances).target(0)["boxes"].tolist() == [[2.0, 2.0, 12.0, 10.0]]

    roboflow = tmp_path / "roboflow"
    for split in ("train", "valid"):
        image(roboflow / split / "a.jpg")
        coco(roboflow / split / "_annotations.coco.JSON", ["a.jpg"], cars, 1)
    assert find_layout(roboflow).splits == ("train", "valid")

    studio = tmp_path / "studio"
    image(studio / "a.jpg")
    coco(studio / "result.Json", ["a.jpg"], cars, 1)
    assert find_layout(studio).format == "COCO"

    yaml = tmp_path / "yaml" / "data.YAML"
    yolo_images(yaml.parent / "train", "", 1)
    yaml.write_text("train: ../train/images\nnames: [cell]\n")
    assert find_layout(yaml.parent).path == str(yaml)
    assert find_layout(yaml).splits == ("train",)


def test_labelimg_xml_and_yolo_files_in_one_folder_say_which_is_read(tmp_path):
    """LabelImg saves in either format: a folder of both was read as VOC without a word,
    the .txt files left unread."""
    root = tmp_path / "cells"
    image(root / "a.jpg")
    image(root / "b.png")
    voc_xml(root / "a.xml", "a.jpg", [("dog", [2, 3, 20, 25])])
    voc_xml(root / "b.xml", None, [("cat", [1, 1, 10, 10])])
    (root / "README.txt").write_text("cells, 2024\n")
    (root / "classes.txt").write_text("dog\ncat\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a classes.txt without label files: VOC, quietly
        assert find_layout(root).format == "Pascal VOC XML files (no ImageSets/)"
    (root / "a.txt").write_text("1 0.5 0.5 0.25 0.5\n")
    (root / "b.txt").write_text("")
    with pytest.warns(UserWarning) as warned:
        layout = find_layout(root)
    assert layout.format == "Pascal VOC XML files (no ImageSets/)"
    assert [str(w.message) for w in warned] == [
        f"{root} holds 2 Pascal VOC .xml files and 2 YOLO .txt label files beside their "
        "images, with classes.txt: read as Pascal VOC, whose files name their classes; to "
        "read the YOLO files instead, move the .xml files out of it"
    ]
    # As the warning says: without the .xml files, the .txt files are read.
    for name in ("a.xml", "b.xml", "README.txt"):  # the YOLO reader warns of a README.txt
        (root / name).rename(tmp_path / name)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dataset = open_dataset(root)
    assert dataset.class_names == ("dog", "cat")
    assert dataset.target(0)["labels"].tolist() == [2]


def test_split_folders_of_xml_and_yolo_files_say_which_is_read(tmp_path):
    """Split folders each holding LabelImg's .xml and YOLO files were read as VOC without
    a word (the warning looked at the dataset's own folder alone), and so was one
    subfolder of both."""
    for split in ("train", "val"):
        image(tmp_path / split / "a.jpg")
        voc_xml(tmp_path / split / "a.xml", "a.jpg", [("dog", [2, 3, 20, 25])])
        (tmp_path / split / "classes.txt").write_text("dog\ncat\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # classes.txt without label files: VOC, quietly
        assert find_layout(tmp_path).splits == ("train", "val")
    (tmp_path / "val" / "a.txt").write_text("1 0.5 0.5 0.25 0.5\n")
    with pytest.warns(UserWarning) as warned:
        layout = find_layout(tmp_path)
    assert layout.format == "Pascal VOC XML files (a folder per split)"
    assert [str(w.message) for w in warned] == [
        f"{tmp_path}: the split folders val/ hold 1 Pascal VOC .xml file and 1 YOLO .txt "
        "label file beside their images, with classes.txt: read as Pascal VOC, whose files "
        "name their classes; to read a split's YOLO files instead, move its .xml files out "
        "and open its folder alone"
    ]
    # As the warning says: val/ without its .xml file is read as its YOLO files.
    (tmp_path / "val" / "a.xml").unlink()
    assert open_dataset(tmp_path / "val").target(0)["labels"].tolist() == [2]
    (tmp_path / "train").rename(tmp_path / "train_only")
    (tmp_path / "train_only" / "a.txt").write_text("")
    (tmp_path / "val").rename(tmp_path / "unused")
    with pytest.warns(UserWarning) as warned:
        layout = find_layout(tmp_path)
    assert layout.format == "Pascal VOC XML files (no ImageSets/)"
    assert [str(w.message) for w in warned] == [
        f"{tmp_path / 'train_only'} holds 1 Pascal VOC .xml file and 1 YOLO .txt label "
        "file beside their images, with classes.txt: read as Pascal VOC, whose files name "
        "their classes; to read the YOLO files instead, move the .xml files out of it"
    ]


def test_label_studio_yolo_export_without_its_images_says_where_they_go(tmp_path):
    """Label Studio's YOLO export (labels/, classes.txt, notes.json) may leave the images
    out: without images/ its notes.json, the one .json there, was read as a COCO file
    ('not a COCO detection file')."""
    yolo_images(tmp_path, "", 2)
    (tmp_path / "classes.txt").write_text("cell\n")
    (tmp_path / "notes.json").write_text(json.dumps({"categories": [{"id": 0, "name": "cell"}]}))
    assert find_layout(tmp_path).format == "YOLO"
    for file in (tmp_path / "images").iterdir():
        file.unlink()
    (tmp_path / "images").rmdir()
    with pytest.raises(FileNotFoundError) as refused:
        find_layout(tmp_path)
    assert str(refused.value) == (
        f"{tmp_path / 'labels'} holds YOLO label files, but there is no "
        f"{tmp_path / 'images'} beside it: put their images there (Label Studio's YOLO "
        "export may leave them out)"
    )


def test_yolo_split_folders_with_other_names(tmp_path):
    yolo_images(tmp_path, "train2017", 2)
    yolo_images(tmp_path, "val2017", 1)
    assert find_layout(tmp_path).splits == ("train2017", "val2017")
    assert len(open_dataset(tmp_path)) == 2  # "train" finds train2017
    assert len(open_dataset(tmp_path, "val")) == 1


def voc_listing_an_id_twice(root: Path) -> tuple[Path, str]:
    for stem in ("a", "b"):
        image(root / "JPEGImages" / f"{stem}.jpg")
        voc_xml(root / "Annotations" / f"{stem}.xml", None, [("cell", [2, 3, 20, 25])])
    listed = root / "ImageSets/Main/train.txt"
    listed.parent.mkdir(parents=True)
    listed.write_text("a\nb\na\n")
    return root, f"{listed}: 1 id is listed more than once, read once: a"


def darknet_listing_an_image_twice(root: Path) -> tuple[Path, str]:
    cvat_yolo(root, {"train": {"a": "0 0.5 0.5 0.5 0.4\n", "b": "1 0.5 0.5 0.5 0.4\n"}})
    listed = root / "train.txt"
    listed.write_text(listed.read_text() + "data/obj_train_data/a.jpg\n")
    a = root / "obj_train_data/a.jpg"
    return root / "obj.data", f"{listed}: 1 image is listed more than once, read once: {a}"


def yaml_listing_an_image_twice(root: Path) -> tuple[Path, str]:
    yolo_images(root, "train", 2)
    (root / "train.txt").write_text("images/train/train0.jpg\nimages/train/train1.jpg\n")
    yaml = root / "data.yaml"
    yaml.write_text("train: [train.txt, images/train]\nnames: [cell]\n")
    shown = f"{root / 'images/train/train0.jpg'}, {root / 'images/train/train1.jpg'}"
    return yaml, f"{yaml} (train): 2 images are listed more than once, read once: {shown}"


@pytest.mark.parametrize(
    "listing_twice",
    [voc_listing_an_id_twice, darknet_listing_an_image_twice, yaml_listing_an_image_twice],
)
def test_an_image_listed_twice_in_a_split_is_read_once_with_a_warning(tmp_path, listing_twice):
    """It was read as often as listed: trained on twice as often and, in a split scored,
    its objects counted twice, without a word."""
    data, warned = listing_twice(tmp_path)
    with pytest.warns(UserWarning) as caught:
        train = open_dataset(data, "train")
    assert [str(w.message) for w in caught] == [warned]
    assert len(train) == 2 and len(set(train.image_files)) == 2


# --- Darknet YOLO (CVAT's "YOLO 1.1") ----------------------------------------------------


def cvat_yolo(root: Path, subsets: dict[str, dict[str, str]], prefix: str = "data/") -> Path:
    """CVAT's "YOLO 1.1" export of ``subsets`` (``{subset: {image stem: label lines}}``),
    classes cat and dog: ``obj.data`` and the lists name paths from Darknet's folder, in
    which ``root`` is ``data/`` (``prefix``)."""
    lists = "".join(f"{subset} = {prefix}{subset}.txt\n" for subset in subsets)
    (root / "obj.data").parent.mkdir(parents=True, exist_ok=True)
    (root / "obj.data").write_text(
        f"classes = 2\n{lists}names = {prefix}obj.names\nbackup = backup/\n"
    )
    (root / "obj.names").write_text("cat\ndog\n")
    for subset, labels in subsets.items():
        folder = root / f"obj_{subset}_data"
        for stem, lines in labels.items():
            image(folder / f"{stem}.jpg")
            (folder / f"{stem}.txt").write_text(lines)
        listed = "".join(f"{prefix}obj_{subset}_data/{stem}.jpg\n" for stem in labels)
        (root / f"{subset}.txt").write_text(listed)
    return root


@pytest.mark.parametrize("prefix", ["data/", "", "data\\"])
def test_cvat_yolo_export_in_darknets_layout(tmp_path, capsys, prefix):
    """The paths are CVAT's (``data/obj_train_data/a.jpg``, from the folder above this
    one, whatever its name) or relative to this folder; Windows' ``data\\`` was a file
    name, and the lists were not found."""
    root = tmp_path / "task_7_dataset_yolo 1.1"
    subsets = {
        "train": {"a": "0 0.5 0.5 0.5 0.4\n1 0.25 0.25 0.1 0.2\n", "b": ""},
        "valid": {"c": "1 0.5 0.5 0.2 0.2\n"},
    }
    cvat_yolo(root, subsets, prefix)
    layout = find_layout(root)
    assert (layout.format, layout.splits) == ("YOLO (Darknet obj.data)", ("train", "valid"))
    train = open_dataset(root)
    assert train.class_names == ("cat", "dog")
    assert train.image_files == [root / "obj_train_data/a.jpg", root / "obj_train_data/b.jpg"]
    _, target = train[0]  # a.jpg is 40x30
    assert torch.equal(target["boxes"], torch.tensor([[10.0, 9, 30, 21], [8, 4.5, 12, 10.5]]))
    assert target["labels"].tolist() == [1, 2]
    assert train.target(1)["boxes"].shape == (0, 4)
    assert find_layout(root / "obj.data").splits == ("train", "valid")  # as Darknet takes it
    valid = open_dataset(root / "obj.data", "val")  # val finds valid
    assert valid.image_files == [root / "obj_valid_data/c.jpg"]
    assert torch.equal(valid.target(0)["boxes"], torch.tensor([[16.0, 12, 24, 18]]))
    with pytest.raises(ValueError, match=r"has the splits train, valid; none fits 'test'"):
        open_dataset(root, "test")
    assert main(["data", "--data", str(root)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{root}: YOLO (Darknet obj.data), splits train, valid"
    assert out[1] == "  train: 2 images, 2 boxes; image sizes 40x30 to 40x30 (width x height)"


def test_cvat_yolo_export_problems_are_named(tmp_path):
    root = cvat_yolo(tmp_path, {"train": {"a": "0 0.5 0.5 0.5 0.4\n"}})
    (root / "obj.names").write_text("cat\n")
    with pytest.raises(ValueError, match=r"obj\.data: 'classes = 2' but .*obj\.names names 1"):
        open_dataset(root)
    (root / "train.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"obj\.data: the train list .*train\.txt does"):
        open_dataset(root)
    (root / "obj.data").write_text("classes = 2\nnames = data/obj.names\n")
    with pytest.raises(ValueError, match=r"obj\.data names no list of images"):
        find_layout(root)
    (root / "obj.data").write_text("classes = 2\ntrain data/train.txt\n")
    with pytest.raises(ValueError, match=r"obj\.data, line 2: 'train data/train\.txt' is not"):
        find_layout(root)


# --- COCO as exporters write it ---------------------------------------------------------


def coco(path: Path, file_names: list[str], categories: list[dict], category_id: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    images = [
        {"id": k, "file_name": n, "width": 40, "height": 30} for k, n in enumerate(file_names)
    ]
    annotations = [
        {"id": k, "image_id": k, "category_id": category_id, "bbox": [2, 2, 10, 8], "iscrowd": 0}
        for k in range(len(file_names))
    ]
    path.write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": categories})
    )
    return path


def test_roboflow_coco_one_folder_per_split_without_its_placeholder_category(tmp_path):
    categories = [
        {"id": 0, "name": "cells", "supercategory": "none"},
        {"id": 1, "name": "rbc", "supercategory": "cells"},
    ]
    for split, count in (("train", 3), ("valid", 2), ("test", 1)):
        names = [f"{split}{k}_jpg.rf.abc.jpg" for k in range(count)]
        for name in names:
            image(tmp_path / split / name)
        coco(tmp_path / split / "_annotations.coco.json", names, categories, category_id=1)
    layout = find_layout(tmp_path)
    assert (layout.format, layout.splits) == (
        "COCO (a folder per split)",
        ("test", "train", "valid"),
    )
    val = open_dataset(tmp_path, "val")
    assert len(val) == 2 and val.class_names == ("rbc",)
    assert val[0][1]["labels"].tolist() == [1]


def csv_annotations(folder: Path, *rows: str) -> Path:
    """``_annotations.csv`` in ``folder``, as Roboflow's "Tensorflow Object Detection CSV"
    export writes it: its header, then ``rows``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "_annotations.csv"
    path.write_text("\n".join(["filename,width,height,class,xmin,ymin,xmax,ymax", *rows]))
    return path


def test_roboflow_csv_export_one_folder_per_split(tmp_path, capsys):
    """Roboflow's "Tensorflow Object Detection CSV" export: a split per folder, found by
    find_layout, open_dataset and `data`; one split's folder alone, or its file, is data
    without splits."""
    for split, count in (("train", 3), ("valid", 2), ("test", 1)):
        rows = []
        for k in range(count):
            image(tmp_path / split / f"{split}{k}_jpg.rf.1.jpg")
            rows.append(f"{split}{k}_jpg.rf.1.jpg,40,30,{'rbc' if k else 'wbc'},2,2,12,10")
        csv_annotations(tmp_path / split, *rows)
    (tmp_path / "README.roboflow.txt").write_text("exported via roboflow.com\n")
    layout = find_layout(tmp_path)
    assert (layout.format, layout.splits) == (
        "TensorFlow Object Detection CSV (a folder per split)",
        ("test", "train", "valid"),
    )
    val = open_dataset(tmp_path, "val", class_names=("rbc", "wbc"))
    assert val.image_files == [tmp_path / f"valid/valid{k}_jpg.rf.1.jpg" for k in range(2)]
    assert [val.target(k)["labels"].tolist() for k in range(2)] == [[2], [1]]
    test = open_dataset(tmp_path, "test", class_names=("rbc", "wbc"))
    assert test.class_names == ("rbc", "wbc")  # its own are ("wbc",), renumbered by name
    assert test.target(0)["labels"].tolist() == [2]
    assert main(["data", "--data", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (
        f"{tmp_path}: TensorFlow Object Detection CSV (a folder per split), splits test, "
        "train, valid"
    )
    assert "  valid: 2 images, 2 boxes; image sizes 40x30 to 40x30 (width x height)" in lines
    assert lines[-1] == (
        "train trains on train and valid together (--split train: on train alone); "
        "evaluate scores test"
    )
    for data in (tmp_path / "valid", tmp_path / "valid/_annotations.csv"):
        layout = find_layout(data)
        assert (layout.format, layout.splits) == ("TensorFlow Object Detection CSV", ())
        assert len(layout.open("train")) == 2


def test_a_roboflow_csv_split_without_images_is_left_out_saying_so(tmp_path):
    image(tmp_path / "train" / "a.jpg")
    csv_annotations(tmp_path / "train", "a.jpg,40,30,cell,2,2,12,10")
    csv_annotations(tmp_path / "test", "b.jpg,40,30,cell,2,2,12,10")
    said = (
        f"{tmp_path / 'test/_annotations.csv'}: the test split holds no image (no "
        f"{'/'.join(IMAGE_SUFFIXES)} file beside it)"
    )
    layout = find_layout(tmp_path)
    assert (layout.splits, layout.note) == (("train",), f"{said}: left out")
    with pytest.raises(ValueError) as refused:
        open_dataset(tmp_path, "test")
    assert str(refused.value) == (
        f"{tmp_path} (TensorFlow Object Detection CSV (a folder per split)) has the split "
        f"train; none fits 'test' ({said}: left out)"
    )


def test_a_coco_split_none_of_whose_images_is_there_is_left_out_saying_so(tmp_path, capsys):
    """Roboflow's test/ holding its _annotations.coco.json but none of its images was no
    split, without a word; a split with some of its images is one, and opening it leaves
    out those missing, naming them; train is kept, its opening refused as holding no
    image."""
    cells = [{"id": 1, "name": "rbc"}]
    for split, count in (("train", 2), ("valid", 1), ("test", 3)):
        names = [f"{split}{k}.jpg" for k in range(count)]
        coco(tmp_path / split / "_annotations.coco.json", names, cells, 1)
        for name in names if split != "test" else []:
            image(tmp_path / split / name)
    said = (
        f"{tmp_path / 'test/_annotations.coco.json'}: the test split holds no image (it lists "
        f"3 images, none of them in {tmp_path / 'test'})"
    )
    layout = find_layout(tmp_path)
    assert (layout.splits, layout.note) == (("train", "valid"), f"{said}: left out")
    assert main(["data", "--data", str(tmp_path)]) == 0
    assert f"note: {said}: left out" in capsys.readouterr().out.splitlines()
    image(tmp_path / "test/test1.jpg")
    assert find_layout(tmp_path).splits == ("test", "train", "valid")
    with pytest.warns(UserWarning) as warned:
        test = open_dataset(tmp_path, "test")
    assert test.image_files == [tmp_path / "test/test1.jpg"]
    missing = f"{tmp_path / 'test/test0.jpg'}, {tmp_path / 'test/test2.jpg'}"
    assert [str(w.message) for w in warned] == [
        f"{tmp_path / 'test/_annotations.coco.json'}: 2 images are left out, not found: {missing}"
    ]
    for name in ("train0.jpg", "train1.jpg"):
        (tmp_path / "train" / name).unlink()
    assert find_layout(tmp_path).splits == ("test", "train", "valid")
    with (
        pytest.warns(UserWarning, match="2 images are left out"),
        pytest.raises(ValueError) as refused,
    ):
        open_dataset(tmp_path, "train")
    assert str(refused.value) == (
        f"{tmp_path / 'train/_annotations.coco.json'}: the train split holds no image (none "
        "of its 2 images is there)"
    )


@pytest.mark.parametrize(
    ("written", "on_disk", "why"),
    [
        # Written where the disk ignores case (Windows, macOS).
        ("a.jpg", "A.JPG", "A.JPG is there: file names are case-sensitive here"),
        # The é one character (NFC) in the file, an e and an accent (NFD, as macOS writes
        # names) on disk: the two names look alike.
        (
            "caf\u00e9.jpg",
            "cafe\u0301.jpg",
            "a file of this name is there in Unicode NFD, the name above in NFC: names must "
            "match byte for byte here",
        ),
    ],
)
def test_an_image_missing_but_for_the_form_of_its_name_is_said_to_be_there(
    tmp_path, written, on_disk, why
):
    """A COCO file naming an image whose file is there under a name that differs only in
    case or Unicode form: said to be missing, and why the one is not the other."""
    coco(tmp_path / "labels.json", [written, "b.jpg"], [{"id": 1, "name": "car"}], 1)
    image(tmp_path / "images" / on_disk)
    image(tmp_path / "images/b.jpg")
    with pytest.warns(UserWarning) as warned:
        data = open_dataset(tmp_path)
    assert data.image_files == [tmp_path / "images/b.jpg"]
    assert [str(w.message) for w in warned] == [
        f"{tmp_path / 'labels.json'}: 1 image is left out, not found: "
        f"{tmp_path / 'images' / written} ({why})"
    ]


# A box of each image of the layouts below, as label and as read from a 40 x 30 image.
YOLO_BOX, YOLO_READ = "0 0.5 0.5 0.5 0.4\n", [[10.0, 9.0, 30.0, 21.0]]


def _cvat_coco_of_two(root: Path) -> tuple[Path, str, list[list[float]]]:
    """CVAT's COCO export of a.jpg and b.jpg, one car each: the file naming them, what
    the error of the dataset without either says of it, and the box of each as read."""
    cars = [{"id": 1, "name": "car"}]
    listed = coco(root / "annotations/instances_default.json", ["a.jpg", "b.jpg"], cars, 1)
    image(root / "images/a.jpg")
    image(root / "images/b.jpg")
    return listed, "the dataset holds no image", [[2.0, 2.0, 12.0, 10.0]]


def _darknet_of_two(root: Path) -> tuple[Path, str, list[list[float]]]:
    """CVAT's "YOLO 1.1" export of a.jpg and b.jpg, a cat each."""
    cvat_yolo(root, {"train": {"a": YOLO_BOX, "b": YOLO_BOX}})
    return root / "train.txt", "the train split holds no image", YOLO_READ


def _data_yaml_list_of_two(root: Path) -> tuple[Path, str, list[list[float]]]:
    """A data YAML whose train split is a list of images/train/{a,b}.jpg, a cell each."""
    for stem in ("a", "b"):
        image(root / f"images/train/{stem}.jpg")
        (root / "labels/train").mkdir(parents=True, exist_ok=True)
        (root / f"labels/train/{stem}.txt").write_text(YOLO_BOX)
    (root / "train.txt").write_text("./images/train/a.jpg\n./images/train/b.jpg\n")
    (root / "data.yaml").write_text("train: train.txt\nnames: [cell]\n")
    return root / "data.yaml", "the train split holds no image", YOLO_READ


@pytest.mark.parametrize("layout", [_cvat_coco_of_two, _darknet_of_two, _data_yaml_list_of_two])
def test_an_image_whose_file_is_missing_is_left_out_in_every_format_alike(tmp_path, layout):
    """An image deleted after labelling made train and evaluate refuse the whole split
    (COCO, Darknet, a data YAML's list), where VOC leaves its id out: each now leaves the
    image out with one warning, in the same words; a split with no image left is
    refused as one that holds none."""
    listed, empty, box = layout(tmp_path)
    gone, kept = (next(tmp_path.rglob(f"{stem}.jpg")) for stem in ("a", "b"))
    gone.unlink()
    with pytest.warns(UserWarning) as warned:
        data = open_dataset(tmp_path, "train")
    assert [str(w.message) for w in warned] == [f"{listed}: 1 image is left out, not found: {gone}"]
    assert data.image_files == [kept] and len(data) == 1
    assert data.target(0)["boxes"].tolist() == box
    kept.unlink()
    with pytest.warns(UserWarning, match="2 images are left out"), pytest.raises(ValueError) as no:
        open_dataset(tmp_path, "train")
    assert str(no.value) == f"{listed}: {empty} (none of its 2 images is there)"


def test_a_coco_instances_file_whose_images_are_nowhere_is_left_out_saying_so(tmp_path):
    cars = [{"id": 1, "name": "car"}]
    coco(tmp_path / "annotations/instances_train2017.json", ["a.jpg"], cars, 1)
    image(tmp_path / "train2017/a.jpg")
    coco(tmp_path / "annotations/instances_val2017.json", ["b.jpg", "c.jpg"], cars, 1)
    layout = find_layout(tmp_path)
    looked = ("val2017", "val", "images/val2017", "images")
    places = ", ".join(str(tmp_path / name) for name in looked)
    assert (layout.splits, layout.note) == (
        ("train2017",),
        f"{tmp_path / 'annotations/instances_val2017.json'}: the val2017 split holds no image "
        f"(it lists 2 images, none of them in {places} or {tmp_path}): left out",
    )


def test_cvat_and_label_studio_coco_exports(tmp_path):
    # CVAT: annotations/instances_default.json, images/.
    cvat = tmp_path / "cvat"
    coco(cvat / "annotations/instances_default.json", ["a.jpg"], [{"id": 1, "name": "car"}], 1)
    image(cvat / "images" / "a.jpg")
    assert open_dataset(cvat).image_files == [cvat / "images/a.jpg"]
    # Label Studio: result.json beside images/, file names relative to the json's folder.
    studio = tmp_path / "studio"
    coco(studio / "result.json", ["images/b.jpg"], [{"id": 0, "name": "car"}], 0)
    image(studio / "images" / "b.jpg")
    layout = find_layout(studio)
    assert (layout.format, layout.splits) == ("COCO", ())
    assert open_dataset(studio).image_files == [studio / "images/b.jpg"]
    # A Windows tool's separators read as /, the first image's too, which chose the folder.
    names = ["images\\c.jpg", "images/b.jpg"]
    coco(studio / "result.json", names, [{"id": 0, "name": "car"}], 0)
    image(studio / "images" / "c.jpg")
    assert open_dataset(studio).image_files == [studio / "images/c.jpg", studio / "images/b.jpg"]


def test_cvat_coco_export_with_its_images_in_a_folder_per_subset(tmp_path):
    # CVAT's COCO 1.0 export (Datumaro's, merge_images=False): images/<subset>/ beside
    # annotations/instances_<subset>.json, file names without the folder.
    coco(tmp_path / "annotations/instances_default.json", ["a.PNG"], [{"id": 1, "name": "car"}], 1)
    image(tmp_path / "images/default/a.PNG")
    data = open_dataset(tmp_path)
    assert data.image_files == [tmp_path / "images/default/a.PNG"]
    assert data.target(0)["labels"].tolist() == [1]
    # Exported without its images: the folders looked for are the file's, not ones
    # named for the split asked of data without splits ('train', data's 'all').
    (tmp_path / "images/default/a.PNG").unlink()
    (tmp_path / "images/default").rmdir()
    (tmp_path / "images").rmdir()
    file = tmp_path / "annotations/instances_default.json"
    looked = [str(tmp_path / f) for f in ("default", "images/default", "images")]
    for split in ("train", "all"):
        with pytest.raises(FileNotFoundError) as missing:
            open_dataset(tmp_path, split)
        assert str(missing.value) == f"no images folder for {file}: looked for {looked}"


def test_cvat_subsets_train_validation_test_are_found_in_any_case(tmp_path):
    # CVAT's subsets are named Train, Validation and Test.
    for subset, count in (("Train", 2), ("Validation", 1), ("Test", 1)):
        names = [f"{subset}{k}.jpg" for k in range(count)]
        coco(
            tmp_path / f"annotations/instances_{subset}.json", names, [{"id": 1, "name": "car"}], 1
        )
        for name in names:
            image(tmp_path / "images" / subset / name)
    layout = find_layout(tmp_path)
    assert [layout.resolve(s) for s in ("train", "val", "test")] == ["Train", "Validation", "Test"]
    assert len(open_dataset(tmp_path, "train")) == 2
    assert len(open_dataset(tmp_path, "val")) == 1


@pytest.mark.parametrize(
    ("stem", "splits"),
    [
        ("instances_train2017", ("train2017",)),
        ("instances_val2017", ("val2017",)),
        ("instances_Validation", ("Validation",)),  # CVAT's one subset
        ("instances_default", ()),  # CVAT's export without subsets
        ("labels", ()),
    ],
)
def test_one_coco_instances_file_names_its_split_unless_it_is_cvats_default(tmp_path, stem, splits):
    coco(tmp_path / f"annotations/{stem}.json", ["a.jpg"], [{"id": 1, "name": "car"}], 1)
    image(tmp_path / "images" / "a.jpg")
    layout = find_layout(tmp_path)
    assert (layout.format, layout.splits) == ("COCO", splits)
    assert open_dataset(tmp_path, splits[0] if splits else "train").image_files == [
        tmp_path / "images/a.jpg"
    ]


def test_the_layouts_that_name_splits_by_list_name_one_list_alone_too(tmp_path):
    """One split list alone is a split of its name in every layout that names splits by
    their lists or folders, as a COCO instances file alone is."""
    voc = tmp_path / "voc"
    (voc / "Annotations").mkdir(parents=True)
    (voc / "ImageSets/Main").mkdir(parents=True)
    (voc / "ImageSets/Main/train.txt").write_text("a\n")
    yolo = tmp_path / "yolo"
    yolo_images(yolo, "train", 1)
    (yolo / "data.yaml").write_text("train: images/train\nnames: [cell]\n")
    darknet = cvat_yolo(tmp_path / "darknet", {"train": {"a": "0 0.5 0.5 0.2 0.2\n"}})
    for root in (voc, yolo, yolo / "data.yaml", darknet):
        assert find_layout(root).splits == ("train",), root
    (yolo / "data.yaml").unlink()
    assert find_layout(yolo).splits == ("train",)


def test_cocos_own_folder_reads_its_instances_files_alone_as_splits(tmp_path, capsys):
    """COCO's annotations_trainval2017.zip holds captions_*.json and
    person_keypoints_*.json beside instances_*.json: each was read as a split (captions
    without boxes, keypoints of persons alone), and data failed to open four of six."""
    cars = [{"id": 3, "name": "car", "supercategory": "vehicle"}]
    persons = [{"id": 1, "name": "person", "supercategory": "person", "keypoints": ["nose"]}]
    for split, count in (("train2017", 2), ("val2017", 1)):
        names = [f"{k:012d}.jpg" for k in range(count)]
        for name in names:
            image(tmp_path / split / name)
        coco(tmp_path / f"annotations/instances_{split}.json", names, cars, 3)
        coco(tmp_path / f"annotations/person_keypoints_{split}.json", names, persons, 1)
        captions = {"images": [], "annotations": [{"id": 1, "image_id": 0, "caption": "a car"}]}
        (tmp_path / f"annotations/captions_{split}.json").write_text(json.dumps(captions))
    layout = find_layout(tmp_path)
    assert (layout.format, layout.splits) == ("COCO", ("train2017", "val2017"))
    assert [layout.resolve(s) for s in ("train", "val")] == ["train2017", "val2017"]
    assert open_dataset(tmp_path, "val").class_names == ("car",)
    assert main(["data", "--data", str(tmp_path)]) == 0
    said = capsys.readouterr().out.splitlines()
    assert said[:3] == [
        f"{tmp_path}: COCO, splits train2017, val2017",
        f"note: {tmp_path / 'annotations'}: 4 files left out (captions_train2017.json, "
        "captions_val2017.json, person_keypoints_train2017.json, ...): only "
        "instances_<split>.json files are read as detection splits",
        "  train2017: 2 images, 2 boxes; image sizes 40x30 to 40x30 (width x height)",
    ]
    # Without the instances files, what is left is no detection data.
    for split in ("train2017", "val2017"):
        (tmp_path / f"annotations/instances_{split}.json").unlink()
    with pytest.raises(ValueError) as refused:
        find_layout(tmp_path)
    assert str(refused.value) == (
        f"{tmp_path / 'annotations'} holds COCO's annotations of other tasks than detection "
        "(captions_train2017.json, captions_val2017.json, person_keypoints_train2017.json, "
        "...) and no instances_<split>.json, where its boxes are"
    )


def test_label_studio_coco_with_the_image_paths_of_its_server(tmp_path):
    # Label Studio 1.16's "COCO with images" names each image by its path on the server
    # and puts the image in images/: the file is found there by its name.
    names = ["..\\..\\label-studio\\media\\upload\\4\\cb-a.jpg", "/data/upload/1/cd-b.jpg"]
    coco(tmp_path / "result.json", names, [{"id": 0, "name": "car"}], 0)
    for name in ("cb-a.jpg", "cd-b.jpg"):
        image(tmp_path / "images" / name)
    data = open_dataset(tmp_path)
    assert data.image_files == [tmp_path / "images/cb-a.jpg", tmp_path / "images/cd-b.jpg"]
    assert data.target(1)["boxes"].tolist() == [[2.0, 2.0, 12.0, 10.0]]
    # Where the name is not there either, the path is refused, naming both.
    (tmp_path / "images/cd-b.jpg").unlink()
    with pytest.raises(ValueError, match=r"'/data/upload/1/cd-b.jpg', which leaves .* cd-b.jpg"):
        open_dataset(tmp_path)


def test_coco_file_names_of_a_windows_drive_are_found_by_their_name(tmp_path):
    """A conversion script run on Windows writes each image's path there: it was looked
    for as images/C:/Users/... and reported missing."""
    names = ["C:\\Users\\me\\shots\\a.jpg", "D:/data/b.jpg"]
    coco(tmp_path / "labels.json", names, [{"id": 1, "name": "car"}], 1)
    for name in ("a.jpg", "b.jpg"):
        image(tmp_path / "images" / name)
    data = open_dataset(tmp_path)
    assert data.image_files == [tmp_path / "images/a.jpg", tmp_path / "images/b.jpg"]


# --- LabelMe ------------------------------------------------------------------------------


def labelme_json(path: Path, image_path: str, boxes: list[tuple[str, list[int]]]) -> Path:
    """A LabelMe file of rectangles on the 40x30 image ``image_path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    shapes = [
        {"label": name, "points": [b[:2], b[2:]], "shape_type": "rectangle"} for name, b in boxes
    ]
    data = {"shapes": shapes, "imagePath": image_path, "imageHeight": 30, "imageWidth": 40}
    path.write_text(json.dumps({"version": "5.4.1", "flags": {}, **data, "imageData": None}))
    return path


def test_labelme_files_beside_their_images_one_alone_told_from_coco_by_content(tmp_path, capsys):
    """A folder holding one .json is Label Studio's COCO file, unless the file is
    LabelMe's: then it is a folder of LabelMe files, as with more of them."""
    image(tmp_path / "a.jpg")
    labelme_json(tmp_path / "a.json", "a.jpg", [("cell", [2, 3, 20, 25])])
    layout = find_layout(tmp_path)
    assert (layout.format, layout.splits) == ("LabelMe", ())
    assert torch.equal(open_dataset(tmp_path).target(0)["boxes"], torch.tensor([[2, 3, 20, 25.0]]))
    # The file named, read as COCO by its suffix, says what it is and what to read.
    with pytest.raises(ValueError) as refused:
        open_dataset(tmp_path / "a.json")
    assert str(refused.value) == (
        f"{tmp_path / 'a.json'}: a LabelMe file, not COCO: read its folder, {tmp_path}"
    )
    image(tmp_path / "b.jpg")
    labelme_json(tmp_path / "b.JSON", "b.jpg", [("cell", [1, 1, 9, 9]), ("dot", [4, 4, 6, 6])])
    assert main(["data", "--data", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == [
        f"{tmp_path}: LabelMe, no splits",
        "  all: 2 images, 3 boxes; image sizes 40x30 to 40x30 (width x height)",
    ]
    studio = tmp_path / "studio"
    coco(studio / "result.json", ["images/b.jpg"], [{"id": 0, "name": "car"}], 0)
    image(studio / "images" / "b.jpg")
    assert find_layout(studio).format == "COCO"


def test_labelme_split_folders_one_holding_one_file_not_taken_for_roboflow_coco(tmp_path):
    """train/, valid/ and test/ of LabelMe files: a split each, valid/ holding one file
    as Roboflow's COCO folders each hold one .json; an empty test/ left out with a note;
    a valid/ folder alone is that split."""
    for k in range(2):
        image(tmp_path / "train" / f"t{k}.jpg")
        labelme_json(tmp_path / "train" / f"t{k}.json", f"t{k}.jpg", [("wbc", [2, 2, 12, 10])])
    image(tmp_path / "valid" / "v.jpg")
    labelme_json(tmp_path / "valid" / "v.json", "v.jpg", [("rbc", [1, 1, 9, 9])])
    (tmp_path / "test").mkdir()
    layout = find_layout(tmp_path)
    assert (layout.format, layout.splits) == ("LabelMe (a folder per split)", ("train", "valid"))
    assert layout.note == (
        f"{tmp_path / 'test'}: the test split holds no image (no .json file or image in it): "
        "left out"
    )
    val = open_dataset(tmp_path, "val", class_names=("rbc", "wbc"))
    assert val.image_files == [tmp_path / "valid/v.jpg"] and val.target(0)["labels"].tolist() == [1]
    train = open_dataset(tmp_path, "train", class_names=("rbc", "wbc"))
    assert [train.target(k)["labels"].tolist() for k in range(2)] == [[2], [2]]
    shutil.rmtree(tmp_path / "train")
    layout = find_layout(tmp_path)
    assert (layout.format, layout.splits) == ("LabelMe (a folder per split)", ("valid",))


# --- held-out splits ----------------------------------------------------------------------


def test_the_held_out_split_is_stable_and_independent_of_listing_order():
    keys = [f"img{k:03d}.jpg" for k in range(100)]
    parts = holdout_indices(keys, 0.2, seed=7)
    assert len(parts["val"]) == 20 and sorted(parts["train"] + parts["val"]) == list(range(100))
    # The same images, listed backwards: the same ones are held out.
    backwards = holdout_indices(keys[::-1], 0.2, seed=7)
    assert {keys[::-1][i] for i in backwards["val"]} == {keys[i] for i in parts["val"]}
    assert holdout_indices(keys, 0.2, seed=8)["val"] != parts["val"]
    # The hash, not a random generator: fixed across machines and library versions.
    assert holdout_indices(["a", "b", "c", "d"], 0.5, seed=0)["val"] == [1, 2]
    assert holdout_indices(["a", "b"], 0.01, seed=0)["val"] != []  # at least one held out
    with pytest.raises(ValueError, match="two are needed"):
        holdout_indices(["a"], 0.5, seed=0)


def test_data_gives_box_sides_per_class_and_names_boxes_annotated_twice(tmp_path, capsys):
    data = tmp_path / "data"
    image(data / "a.jpg")
    image(data / "b.jpg")
    # VOC corners are 1-based and inclusive: [1, 1, 10, 10] is 10 px a side.
    twice = [("cell", [1, 1, 10, 10]), ("cell", [1, 1, 10, 10]), ("cell", [5, 5, 24, 24])]
    voc_xml(data / "a.xml", "a.jpg", [*twice, ("platelet", [3, 3, 3, 3])])
    platelets = [("platelet", [1, 1, 4, 4]), ("platelet", [1, 1, 6, 6])]
    voc_xml(data / "b.xml", "b.jpg", [("cell", [1, 1, 10, 10]), *platelets])
    assert main(["data", "--data", str(data)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2:5] == [
        "    class     boxes  images  box side px: median (range)",
        "    cell          4       2  10 (10-20)",
        "    platelet      3       2  4 (1-6)",
    ]
    assert lines[5] == (
        "    note: 1 box repeats another box of its class in its image, corner for corner "
        f"({data / 'a.jpg'} 'cell' [0, 0, 10, 10]): an annotation slip most likely; "
        "evaluation counts each as an object to find (as the VOC and COCO tools do), and no "
        "detector finds one object twice"
    )


def test_data_counts_crowd_regions_apart_from_the_boxes_train_trains_on(tmp_path, capsys):
    """COCO's crowd regions (iscrowd 1) are left out of training: data counts them apart,
    neither as boxes nor as images holding a class ('blob' is in crowd regions alone)."""
    data = tmp_path / "data"
    for k in range(3):
        image(data / f"{k}.png")
    boxes = [(0, 1, [2, 2, 10, 8], 0), (0, 1, [0, 0, 20, 20], 1), (1, 2, [0, 0, 30, 20], 1)]
    boxes += [(2, 2, [5, 5, 30, 20], 1), (2, 1, [5, 5, 8, 8], 0)]
    annotations = [
        {"id": n, "image_id": k, "category_id": c, "bbox": box, "iscrowd": crowd}
        for n, (k, c, box, crowd) in enumerate(boxes)
    ]
    images = [{"id": k, "file_name": f"{k}.png", "width": 40, "height": 30} for k in range(3)]
    categories = [{"id": 1, "name": "cell"}, {"id": 2, "name": "blob"}]
    coco = {"images": images, "annotations": annotations, "categories": categories}
    (data / "_annotations.coco.json").write_text(json.dumps(coco))
    assert main(["data", "--data", str(data)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("  all: 3 images, 2 boxes; ")
    # The cells' sides: sqrt(10 * 8) = 8.9 and 8; the crowd region of 20 is none of them.
    assert lines[2:6] == [
        "    class  boxes  images  box side px: median (range)",
        "    cell       2       2  8 (8-9)",
        "    blob       0       0",
        "    note: 3 crowd regions (iscrowd 1: 'blob' 2, 'cell' 1) are not among the boxes "
        "above: train leaves them out, and evaluate (COCO AP as VOC mAP) counts neither "
        "them as objects to find nor a detection in one as a false positive",
    ]
    coco["annotations"] = [a for a in annotations if a["category_id"] == 1]
    (data / "_annotations.coco.json").write_text(json.dumps(coco))
    assert main(["data", "--data", str(data)]) == 0
    assert "note: 1 crowd region (iscrowd 1: 'cell' 1) is not among the boxes above" in (
        capsys.readouterr().out
    )


def test_data_names_a_split_it_cannot_open_and_describes_the_others(tmp_path, capsys):
    data = tmp_path / "voc"
    image(data / "JPEGImages" / "a.jpg")
    voc_xml(data / "Annotations" / "a.xml", "a.jpg", [("cell", [1, 1, 10, 10])])
    (data / "ImageSets" / "Main").mkdir(parents=True)
    (data / "ImageSets" / "Main" / "train.txt").write_text("a\n")
    (data / "ImageSets" / "Main" / "val.txt").write_text("gone\n")
    assert main(["data", "--data", str(data)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == "  train: 1 image, 1 box; image sizes 40x30 to 40x30 (width x height)"
    listed = data / "ImageSets" / "Main" / "val.txt"
    assert (
        f"  val: cannot be opened: {listed}: the val split holds no image (none of its 1 id "
        "has both an annotation and an image)"
    ) in lines


def test_data_shows_portrait_and_landscape_images_of_one_area(tmp_path, capsys):
    data = tmp_path / "data"
    (data / "labels" / "train").mkdir(parents=True)
    for name, size in (("a", (40, 30)), ("b", (30, 40)), ("c", (40, 30))):
        image(data / "images" / "train" / f"{name}.jpg", size)
        (data / "labels" / "train" / f"{name}.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    (data / "classes.txt").write_text("cell\n")
    assert main(["data", "--data", str(data)]) == 0
    sizes = "image sizes 30x40 to 40x30 (width x height)"
    assert capsys.readouterr().out.splitlines()[1].endswith(sizes)


@pytest.mark.parametrize(
    ("sizes", "said"),
    [
        # A 4000x50 strip among photos of 100x100 to 4000x4000: the range by area hid it.
        (
            [(640, 480), (100, 100), (4000, 4000), (4000, 50)],
            "image sizes 100x100 to 4000x4000 (width x height), the widest 4000x50 (80:1)",
        ),
        (
            [(640, 480), (100, 100), (2000, 2000), (50, 1000), (600, 80)],
            "image sizes 100x100 to 2000x2000 (width x height), the widest 600x80 (7.5:1), "
            "the tallest 50x1000 (1:20)",
        ),
        # Ratios from 100:1 on are whole, not '1.33e+03:1'.
        (
            [(640, 480), (100, 100), (4000, 4000), (4000, 3), (3, 4000)],
            "image sizes 100x100 to 4000x4000 (width x height), the widest 4000x3 (1333:1), "
            "the tallest 3x4000 (1:1333)",
        ),
        # The smallest and largest are the widest and tallest: nothing more to say.
        ([(300, 20), (640, 480)], "image sizes 300x20 to 640x480 (width x height)"),
        # Photos of ordinary shapes, up to 2.1:1 (raccoon's): no strip among them.
        (
            [(640, 480), (240, 156), (2000, 1333), (328, 154), (577, 1024)],
            "image sizes 240x156 to 2000x1333 (width x height)",
        ),
    ],
)
def test_data_shows_the_widest_and_tallest_images_where_the_sizes_by_area_hide_them(
    tmp_path, capsys, sizes, said
):
    data = tmp_path / "data"
    (data / "labels" / "train").mkdir(parents=True)
    for k, size in enumerate(sizes):
        image(data / "images" / "train" / f"{k}.png", size)
        (data / "labels" / "train" / f"{k}.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    (data / "classes.txt").write_text("cell\n")
    assert main(["data", "--data", str(data)]) == 0
    count = counted(len(sizes), "image")
    expected = f"  train: {count}, {counted(len(sizes), 'box')}; {said}"
    assert capsys.readouterr().out.splitlines()[1] == expected


def test_data_and_anchors_count_an_unreadable_image_and_go_on(tmp_path, capsys):
    """An empty file among YOLO images: its boxes cannot be placed (YOLO's are fractions
    of the image's size), so `data` names it in a note and counts the other image,
    `anchors` measures the other image's boxes and `predict --data` detects the other
    image, where all three stopped at it."""
    data = tmp_path / "data"
    image(data / "images" / "train" / "a.jpg")
    (data / "images" / "train" / "b.jpg").write_bytes(b"")
    for name in ("a", "b"):
        (data / "labels" / "train").mkdir(parents=True, exist_ok=True)
        (data / "labels" / "train" / f"{name}.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    (data / "classes.txt").write_text("cell\n")
    assert main(["data", "--data", str(data)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == "  train: 2 images, 1 box; image sizes 40x30 to 40x30 (width x height)"
    empty = data / "images" / "train" / "b.jpg"
    assert lines[4] == (
        f"    note: 1 image cannot be read (cannot read image {empty}: the file is empty (0 "
        "bytes)): train, evaluate and predict skip them"
    )
    argv = ["anchors", "--data", str(data), "--preset", "small", "--out", str(tmp_path / "a")]
    assert main(argv) == 0
    coverage = json.loads((tmp_path / "a" / "anchors.json").read_text())
    assert coverage["boxes"] == 1
    run = tmp_path / "run"
    argv = ["train", "--data", str(data), "--steps", "1", "--min-size", "32", "--max-size", "64"]
    assert main([*argv, "--out", str(run)]) == 0
    argv = ["predict", "--model", str(run / "model.safetensors"), "--data", str(data)]
    assert main([*argv, "--split", "train", "--out", str(tmp_path / "p")]) == 1
    assert "in 1 image (1 skipped)" in capsys.readouterr().out


def test_data_names_an_empty_image_file_whose_annotation_gives_its_size(tmp_path, capsys):
    """An empty file among LabelImg and COCO images, whose annotation gives a size: `data`
    names it and counts the other image's box alone, as it does a YOLO image's, where it
    counted the empty file as a 40x30 image with a box that training cannot read."""
    voc = tmp_path / "voc"
    for name in ("a", "b"):
        voc_xml(voc / f"{name}.xml", f"{name}.jpg", [("cell", [2, 3, 20, 25])])
    coco(tmp_path / "coco" / "labels.json", ["a.jpg", "b.jpg"], [{"id": 1, "name": "cell"}], 1)
    for data, images in ((voc, voc), (tmp_path / "coco", tmp_path / "coco" / "images")):
        image(images / "a.jpg")
        (images / "b.jpg").write_bytes(b"")
        assert main(["data", "--data", str(data)]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert lines[1] == "  all: 2 images, 1 box; image sizes 40x30 to 40x30 (width x height)"
        assert lines[4] == (
            f"    note: 1 image cannot be read (cannot read image {images / 'b.jpg'}: the file "
            "is empty (0 bytes)): train, evaluate and predict skip them"
        )


def test_data_counts_the_yolo_images_without_a_label_file(tmp_path, capsys):
    """An image without a label file is read as one without objects, as Ultralytics reads
    it, silently: `data` counts them (named by their files) where some image has one, and
    the reader gives the same targets; where none has, the reader's warning says so."""
    data = tmp_path / "data"
    for name in ("a", "b", "c", "d"):
        image(data / "images" / "train" / f"{name}.jpg")
    (data / "labels" / "train").mkdir(parents=True)
    (data / "labels" / "train" / "a.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    (data / "labels" / "train" / "c.txt").write_text("")  # an image without objects
    (data / "classes.txt").write_text("cell\n")
    image(data / "images" / "val" / "e.jpg")  # none of val has a label file
    (data / "labels" / "val").mkdir()
    assert main(["data", "--data", str(data)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == "  train: 4 images, 1 box; image sizes 40x30 to 40x30 (width x height)"
    train = data / "images" / "train"
    assert lines[4] == (
        f"    note: 2 images have no label file ({train / 'b.jpg'}, {train / 'd.jpg'}): "
        "read as images without objects, as Ultralytics reads them; train learns them as "
        "background"
    )
    notes = [line for line in lines if "label file" in line]
    assert notes[1:] == [
        f"    note: {data / 'labels' / 'val'}: no label file for any of the 1 image (as "
        f"{data / 'labels' / 'val' / 'e.txt'}): every image is read as holding no object"
    ]
    read = YOLODetection(data, "train")
    assert read.unlabelled_images == [train / "b.jpg", train / "d.jpg"]
    assert [read.target(k)["boxes"].shape[0] for k in range(4)] == [1, 0, 0, 0]


def test_a_labelimg_folder_trains_evaluates_its_held_out_images_and_predicts(tmp_path, capsys):
    data = tmp_path / "data"
    for k in range(10):
        image(data / "images" / f"{k}.jpg")
        voc_xml(data / "annots" / f"{k}.xml", f"{k}.jpg", [("cell", [5, 5, 20, 20])])
    assert main(["data", "--data", str(data)]) == 0
    summary = capsys.readouterr().out
    assert f"{data}: Pascal VOC XML files (no ImageSets/), no splits" in summary
    assert "  all: 10 images, 10 boxes; image sizes 40x30 to 40x30 (width x height)" in summary

    out = tmp_path / "run"
    argv = ["train", "--data", str(data), "--steps", "2", "--batch-size", "2", "--out", str(out)]
    argv += ["--min-size", "64", "--max-size", "64", "--val-fraction", "0.3", "--split-seed", "1"]
    assert main(argv) == 0
    assert "3 of 10 images held out for evaluation" in capsys.readouterr().out
    whole = open_dataset(data)
    held = read_split(out / "split.json", whole, "val")
    expected = holdout_indices(item_keys(whole), 0.3, seed=1)["val"]
    assert isinstance(held, Subset) and held.indices == expected

    model = str(out / "model.safetensors")
    assert main(["evaluate", "--model", model, "--data", str(data)]) == 0
    scored = capsys.readouterr().out
    assert f"scoring the 3 images held out in {out / 'split.json'}" in scored
    assert "images: 3" in scored
    assert (
        main(
            [
                "evaluate",
                "--model",
                model,
                "--data",
                str(data),
                "--val-fraction",
                "0.3",
                "--split-seed",
                "1",
            ]
        )
        == 0
    )
    printed = capsys.readouterr()
    assert "scoring the 3 of 10 images held out by --val-fraction 0.3" in printed.out
    assert "trained on" not in printed.err
    # Another fraction scores images the model's split.json trained on: said so.
    argv = ["evaluate", "--model", model, "--data", str(data)]
    assert main([*argv, "--val-fraction", "0.5", "--split-seed", "1"]) == 0
    seen = set(holdout_indices(item_keys(whole), 0.5, seed=1)["val"]) - set(expected)
    assert seen  # the two fractions' held-out images differ
    assert f"the model was trained on {len(seen)} of the 5 images scored" in capsys.readouterr().err
    assert main([*argv, "--split", "train"]) == 0
    printed = capsys.readouterr()
    assert "scoring the 7 images of" in printed.err and "images: 7" in printed.out
    assert main([*argv, "--split", "test"]) == 2
    assert "--split test: " in capsys.readouterr().err
    (out / "split.json").unlink()
    assert main(["evaluate", "--model", model, "--data", str(data)]) == 0
    assert "scoring all 10 images, which training may have seen" in capsys.readouterr().err

    pictures = tmp_path / "pred"
    assert (
        main(["predict", "--model", model, str(data / "images" / "0.jpg"), "--out", str(pictures)])
        == 0
    )
    assert (pictures / "detections.json").is_file()


def test_a_model_trained_on_a_relative_data_path_finds_its_data_from_elsewhere(
    tmp_path, capsys, monkeypatch
):
    for k in range(4):
        image(tmp_path / "data" / "images" / f"{k}.jpg")
        voc_xml(tmp_path / "data" / "annots" / f"{k}.xml", f"{k}.jpg", [("cell", [5, 5, 20, 20])])
    monkeypatch.chdir(tmp_path)
    argv = ["train", "--data", "data", "--steps", "1", "--batch-size", "2", "--out", "run"]
    assert main([*argv, "--min-size", "64", "--max-size", "64", "--val-fraction", "0.5"]) == 0
    monkeypatch.chdir(tmp_path / "run")
    assert main(["evaluate", "--model", "model.safetensors"]) == 0
    printed = capsys.readouterr().out
    assert f"scoring {tmp_path / 'data'}, the data model.safetensors was trained on" in printed
    assert "images: 2" in printed
    (tmp_path / "data").rename(tmp_path / "moved")
    assert main(["evaluate", "--model", "model.safetensors"]) == 2
    gone = f"split.json names {tmp_path / 'data'}, which is not there from here"
    assert gone in capsys.readouterr().err


def test_evaluate_scores_val_where_there_is_no_test_split(tmp_path, capsys):
    root = tmp_path / "d"
    yolo_images(root, "train", 2)
    yolo_images(root, "val", 2)
    (root / "data.yaml").write_text("train: images/train\nval: images/val\nnames: [cell]\n")
    out = tmp_path / "run"
    argv = ["train", "--data", str(root / "data.yaml"), "--steps", "1", "--batch-size", "2"]
    assert main([*argv, "--min-size", "64", "--max-size", "64", "--out", str(out)]) == 0
    model = str(out / "model.safetensors")
    assert main(["evaluate", "--model", model, "--data", str(root)]) == 0
    printed = capsys.readouterr().out
    assert f"{root / 'data.yaml'} has no test split: using val" in printed
    assert "images: 2" in printed


def test_predict_data_reads_each_image_as_its_reader_does_turned_by_exif_in_yolo(tmp_path):
    """A YOLO set's phone photo, stored 40 wide and 30 high with EXIF orientation 6, is
    trained and predicted upright (30 wide, 40 high) through --data; named as a file, it
    is predicted upright too, as a viewer shows it (and detectron2, mmdetection and
    Ultralytics read it), its boxes in that frame."""
    data = tmp_path / "data"
    (data / "labels" / "train").mkdir(parents=True)
    image(data / "images" / "train" / "a.jpg")
    photo = data / "images" / "train" / "b.jpg"
    save_exif_jpeg(photo, (40, 30), orientation=6)
    for name in ("a", "b"):
        (data / "labels" / "train" / f"{name}.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    run = tmp_path / "run"
    argv = ["train", "--data", str(data), "--steps", "1", "--min-size", "32", "--max-size", "64"]
    assert main([*argv, "--out", str(run)]) == 0
    model = str(run / "model.safetensors")
    argv = ["predict", "--model", model, "--data", str(data), "--split", "train"]
    assert main([*argv, "--out", str(tmp_path / "p")]) == 0
    assert Image.open(tmp_path / "p" / "b.png").size == (30, 40)
    argv = ["predict", "--model", model, str(photo), "--out", str(tmp_path / "f"), "--score", "0"]
    assert main(argv) == 0
    assert Image.open(tmp_path / "f" / "b.png").size == (30, 40)
    records = json.loads((tmp_path / "f" / "detections.json").read_text())
    assert records
    for record in records:
        x, y, w, h = record["bbox"]
        assert x + w <= 30 + 1e-3 and y + h <= 40 + 1e-3


def test_data_notes_the_classes_that_few_images_hold_rarest_first(tmp_path, capsys):
    data = tmp_path / "data"
    platelet, leukocyte = ("platelet", [3, 3, 8, 8]), ("leukocyte", [2, 2, 9, 9])
    rare = {0: platelet, 1: platelet, 2: leukocyte}
    for k in range(30):
        objects = [("cell", [1, 1, 10, 10]), *([rare[k]] if k in rare else [])]
        image(data / f"i{k:02d}.jpg")
        voc_xml(data / f"i{k:02d}.xml", f"i{k:02d}.jpg", objects)
    assert main(["data", "--data", str(data)]) == 0
    # Platelets in 2 of 30 images (7 %), leukocytes in 1 (3 %): both under a tenth.
    assert capsys.readouterr().out.splitlines()[6] == (
        "    note: a class few images hold: 'leukocyte' in 1 (3%), 'platelet' in 2 (7%) of the "
        "30 images; train lists such images more often (repeat-factor sampling at 0.4; "
        "--repeat-threshold 0 lists each image once)"
    )
    for k in range(20, 30):
        (data / f"i{k:02d}.xml").unlink()
        (data / f"i{k:02d}.jpg").unlink()
    assert main(["data", "--data", str(data)]) == 0  # platelets in 2 of 20: a tenth
    assert capsys.readouterr().out.splitlines()[6] == (
        "    note: a class few images hold: 'leukocyte' in 1 (5%) of the 20 images; train lists "
        "such images more often (repeat-factor sampling at 0.4; --repeat-threshold 0 lists "
        "each image once)"
    )
    for k in range(20):  # one class, in 1 of 20 images: none to balance it against
        voc_xml(
            data / f"i{k:02d}.xml", f"i{k:02d}.jpg", [("cell", [1, 1, 10, 10])] if k == 0 else []
        )
    assert main(["data", "--data", str(data)]) == 0
    assert "few images hold" not in capsys.readouterr().out


def small_and_tiny_yolo(data: Path) -> Path:
    """A YOLO dataset of three 32x32 crops (10 times enlarged at the small preset's 320 px,
    not a mistake) and a 640x480 photo with a 2 x 1 px platelet (1.3 x 0.7 px at 320)
    beside a cell; returns the photo."""
    (data / "labels" / "train").mkdir(parents=True)
    (data / "classes.txt").write_text("cell\nplatelet\n")
    for k in range(3):
        image(data / "images" / "train" / f"crop{k}.jpg", (32, 32))
        (data / "labels" / "train" / f"crop{k}.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    image(data / "images" / "train" / "photo.jpg", (640, 480))
    (data / "labels" / "train" / "photo.txt").write_text(
        f"0 0.5 0.5 0.25 0.25\n1 0.25 0.25 {2 / 640} {1 / 480}\n"
    )
    return data / "images" / "train" / "photo.jpg"


def test_data_notes_boxes_too_small_to_find(tmp_path, capsys):
    """It went unsaid: a box under 2 px once resized, which no anchor matches."""
    photo = small_and_tiny_yolo(tmp_path / "data")
    assert main(["data", "--data", str(tmp_path / "data")]) == 0
    # The lines after the summary's, before the one on its one split.
    assert capsys.readouterr().out.splitlines()[5:-1] == [
        "    note: 1 of the 5 boxes is under 2 px on a side once resized to 320 px "
        f"('platelet' 1; the first: {photo} 'platelet' [159, 119.5, 161, 120.5], 0.7 px once "
        "resized): too small for an anchor to match or the model to find; an annotation slip "
        "most likely, or objects that need a larger --min-size",
    ]
    # Resized to 640 px (4/3 times), the platelet is 2.7 x 1.3 px: still under.
    sizes = ["--min-size", "640", "--max-size", "1000"]
    assert main(["data", "--data", str(tmp_path / "data"), *sizes]) == 0
    notes = capsys.readouterr().out.splitlines()[5:-1]
    assert len(notes) == 1 and "once resized to 640 px" in notes[0]
    assert "1.3 px once resized" in notes[0]


def test_train_warns_of_boxes_too_small_to_find(tmp_path, capsys):
    """As `data` notes them, at the sizes the run resizes to."""
    small_and_tiny_yolo(tmp_path / "data")
    argv = ["train", "--data", str(tmp_path / "data"), "--steps", "1", "--recipe", "preset"]
    assert main([*argv, "--out", str(tmp_path / "run")]) == 0
    warned = [
        line
        for line in capsys.readouterr().err.splitlines()
        if line.startswith("faster-rcnn: warning: training images: ")
    ]
    assert len(warned) == 1
    assert "1 of the 5 boxes is under 2 px on a side once resized to 320 px" in warned[0]


class ModelBuilt(Exception):
    """Raised where training would build its model: the warnings are all out by then."""


def strip_among_photos(data: Path) -> Path:
    """A YOLO dataset of three 300x200 photos (900x600 at 600 / 1000) and a 2000x50 strip
    (1000x25 there, under every paper_vgg16 anchor's 90 px height); returns the strip."""
    (data / "labels" / "train").mkdir(parents=True)
    (data / "classes.txt").write_text("cell\n")
    for name, size in [
        ("a", (300, 200)),
        ("b", (300, 200)),
        ("strip", (2000, 50)),
        ("c", (300, 200)),
    ]:
        image(data / "images" / "train" / f"{name}.jpg", size)
        (data / "labels" / "train" / f"{name}.txt").write_text("0 0.5 0.5 0.1 0.5\n")
    return data / "images" / "train" / "strip.jpg"


@pytest.mark.parametrize("preset", ["paper_vgg16", "mobilenet_v2_fpn"])
def test_train_warns_of_images_without_an_anchor_inside_where_the_rpn_ignores_the_border(
    tmp_path, capsys, monkeypatch, preset
):
    """paper_vgg16 ignores the anchors crossing the border: the strip has none inside, and
    its RPN loss would be 0 without a word; mobilenet_v2_fpn keeps them, as does
    paper_vgg16 told to (--allowed-border -1), and nothing is said."""
    strip = strip_among_photos(tmp_path / "data")

    def stop(*args, **kwargs):
        raise ModelBuilt

    monkeypatch.setattr("faster_rcnn.cli.train.build_model", stop)
    argv = ["train", "--data", str(tmp_path / "data"), "--preset", preset, "--recipe", "preset"]
    for options in ([], ["--allowed-border", "-1"]):
        with pytest.raises(ModelBuilt):
            main([*argv, *options, "--steps", "1", "--out", str(tmp_path / "run")])
        warned = [
            line
            for line in capsys.readouterr().err.splitlines()
            if line.startswith("faster-rcnn: warning: training images: ")
        ]
        if preset == "mobilenet_v2_fpn" or options:
            assert warned == []
            continue
        assert warned == [
            "faster-rcnn: warning: training images: 1 of the 4 images admits no anchor inside "
            f"once resized to 600 px (the first: {strip}, 2000x50 (width x height), 1000x25 "
            "once resized), and anchors crossing the border by more than 0 px are ignored in "
            "training (rpn.allowed_border): the RPN learns nothing from them; keep every "
            "anchor (--allowed-border -1, as torchvision's presets do) or give smaller ones "
            "(--anchors)"
        ]


def test_data_summarizes_on_one_thread_and_gives_the_threads_back(monkeypatch, two_threads):
    # 300 generated slides took 176 s on 2 threads of a loaded 2-core machine, 9 s on 1:
    # their boxes are read from masks of a few thousand pixels, one operation at a time.
    import faster_rcnn.cli.data as data_command

    threads = threads_at_calls(monkeypatch, data_command, "summarize_split")
    assert main(["data", "--data", "slides:2"]) == 0
    assert threads == [1, 1, 1] and torch.get_num_threads() == 2
