import json
import sys
import warnings
from pathlib import Path

import pytest
import torch
from PIL import Image

from faster_rcnn.data import (
    COCODetection,
    SyntheticShapes,
    VOCDetection,
    YOLODetection,
    open_dataset,
)
from faster_rcnn.data.open import find_layout


def _image(path: Path, size: tuple[int, int] = (8, 6)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size).save(path)


def _voc(root: Path) -> Path:
    for split, image_id, name in (("train", "t", "dog"), ("val", "v", "cat")):
        _image(root / "JPEGImages" / f"{image_id}.jpg")
        (root / "ImageSets" / "Main").mkdir(parents=True, exist_ok=True)
        (root / "ImageSets" / "Main" / f"{split}.txt").write_text(f"{image_id}\n")
        (root / "Annotations").mkdir(exist_ok=True)
        (root / "Annotations" / f"{image_id}.xml").write_text(
            f"<annotation><size><width>8</width><height>6</height></size><object>"
            f"<name>{name}</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>4</xmax>"
            "<ymax>4</ymax></bndbox></object></annotation>"
        )
    return root


def _coco_json(path: Path, file_names: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    images = [{"id": k, "file_name": name} for k, name in enumerate(file_names)]
    categories = [{"id": 1, "name": "dog"}]
    path.write_text(json.dumps({"images": images, "categories": categories, "annotations": []}))
    return path


def test_synthetic_sizes_and_seeds_per_split() -> None:
    train, val, test = (open_dataset("synthetic:5", s) for s in ("train", "val", "test"))
    assert all(isinstance(d, SyntheticShapes) and len(d) == 5 for d in (train, val, test))
    assert (train.seed, val.seed, test.seed) == (0, 1, 1)
    assert len(open_dataset("synthetic")) == 2000
    assert len(open_dataset("synthetic", "val")) == 200
    said = f"the number of images must be a whole number from 1 to {sys.maxsize}$"
    # As typed on the command line, not as Python writes a string ('synthetic:ten').
    with pytest.raises(ValueError, match=f"^in synthetic:ten, {said}"):
        open_dataset("synthetic:ten")
    with pytest.raises(ValueError, match=f"^in 'synthetic:1 0', {said}"):
        open_dataset("synthetic:1 0")
    # An empty number was taken as none, for the default 2000 images.
    with pytest.raises(ValueError, match=f"^in synthetic:, {said}"):
        open_dataset("synthetic:")
    # One more than a length holds was taken, and len() stopped the command with a traceback.
    with pytest.raises(ValueError, match=f"^in slides:{sys.maxsize + 1}, {said}"):
        open_dataset(f"slides:{sys.maxsize + 1}")
    assert len(open_dataset(f"synthetic:{sys.maxsize}", "test")) == sys.maxsize
    with pytest.raises(ValueError, match="none fits 'extra'"):
        open_dataset("synthetic", "extra")


def test_voc_folder(tmp_path: Path) -> None:
    root = _voc(tmp_path)
    train = open_dataset(root)
    assert isinstance(train, VOCDetection) and train.ids == ("t",)
    val = open_dataset(str(root), "val", class_names=("dog", "cat"))
    assert val.class_names == ("dog", "cat")
    assert torch.equal(val[0][1]["labels"], torch.tensor([2]))


def test_coco_folder_picks_the_split_file_and_images_folder(tmp_path: Path) -> None:
    _coco_json(tmp_path / "annotations" / "instances_train2017.json", ["a.png", "b.png"])
    _coco_json(tmp_path / "annotations" / "instances_val2017.json", ["c.png"])
    _image(tmp_path / "val2017" / "c.png")
    _image(tmp_path / "train" / "a.png")
    _image(tmp_path / "train" / "b.png")
    val = open_dataset(tmp_path, "val")
    assert isinstance(val, COCODetection)
    assert val.annotation_file.name == "instances_val2017.json"
    assert val.images_dir == tmp_path / "val2017" and len(val) == 1
    train = open_dataset(tmp_path, "train")
    assert train.images_dir == tmp_path / "train" and len(train) == 2
    with pytest.raises(ValueError, match=r"splits train2017, val2017; none fits 'test'"):
        open_dataset(tmp_path, "test")
    with pytest.raises(ValueError, match=r"has classes \['dog'\]: \['dog'\] not among \['cat'\]"):
        open_dataset(tmp_path, "val", class_names=["cat"])


def test_coco_single_file_and_json_path(tmp_path: Path) -> None:
    annotation_file = _coco_json(tmp_path / "annotations" / "labels.json", ["a.png"])
    with pytest.raises(FileNotFoundError, match="no images folder"):
        open_dataset(tmp_path, "train")
    _image(tmp_path / "images" / "a.png")
    assert open_dataset(tmp_path, "val").images_dir == tmp_path / "images"
    assert open_dataset(annotation_file).images_dir == tmp_path / "images"
    # Images next to the json file (as some exporters write them).
    beside = _coco_json(tmp_path / "export" / "_annotations.coco.json", ["x.png"])
    _image(tmp_path / "export" / "x.png")
    assert open_dataset(beside).images_dir == tmp_path / "export"


def test_missing_images_are_left_out_together_when_the_dataset_is_opened(tmp_path: Path) -> None:
    names = [f"{i}.png" for i in range(8)]
    annotation_file = _coco_json(tmp_path / "annotations" / "labels.json", names)
    _image(tmp_path / "images" / "3.png")
    with pytest.warns(UserWarning) as warned:
        data = open_dataset(annotation_file)
    assert data.image_files == [tmp_path / "images" / "3.png"]
    first = ", ".join(str(tmp_path / "images" / f"{i}.png") for i in range(3))
    assert [str(w.message) for w in warned] == [
        f"{annotation_file}: 7 images are left out, not found: {first}, ..."
    ]


def test_yolo_folder(tmp_path: Path) -> None:
    _image(tmp_path / "split" / "images" / "val" / "a.png")
    (tmp_path / "split" / "labels" / "val").mkdir(parents=True)
    (tmp_path / "split" / "labels" / "val" / "a.txt").write_text("")  # an image of no object
    assert isinstance(open_dataset(tmp_path / "split", "val"), YOLODetection)
    with pytest.raises(ValueError, match=r"has the split val; none fits 'train'"):
        open_dataset(tmp_path / "split", "train")
    _image(tmp_path / "flat" / "images" / "a.png")
    (tmp_path / "flat" / "labels").mkdir(parents=True)
    (tmp_path / "flat" / "labels" / "a.txt").write_text("")
    assert open_dataset(tmp_path / "flat").split is None
    assert len(open_dataset(tmp_path / "flat", "val")) == 1  # no splits: every image


def test_unknown_layout_and_missing_path(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"looked for Annotations/ and ImageSets/ \(Pascal VOC\)"):
        open_dataset(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        open_dataset(tmp_path / "nothing")


def test_classes_named_alike_are_warned_of(tmp_path: Path) -> None:
    root = tmp_path / "yolo"
    _image(root / "images" / "a.jpg")
    (root / "labels").mkdir()
    (root / "labels" / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (root / "classes.txt").write_text("RBC\nrbc\nred_cell\nRed Cell\nWBC\n")
    with pytest.warns(UserWarning) as warned:
        data = open_dataset(root)
    assert data.class_names == ("RBC", "rbc", "red_cell", "Red Cell", "WBC")
    assert [str(w.message) for w in warned] == [
        f"{root} (train): the classes 'RBC' and 'rbc'; 'red_cell' and 'Red Cell' differ only "
        "in case, spaces or punctuation: where they are one class, give it one name in the "
        "annotations"
    ]
    (root / "classes.txt").write_text("cell\ncell\nCell\nWBC\n")
    with pytest.warns(UserWarning) as warned:
        open_dataset(root)
    assert [str(w.message) for w in warned] == [
        f"{root} (train): the class names 'cell' are given more than once: a model tells its "
        "classes apart by name, so train refuses them; give each class a name of its own",
        f"{root} (train): the classes 'cell' and 'Cell' differ only in case, spaces or "
        "punctuation: where they are one class, give it one name in the annotations",
    ]
    (root / "classes.txt").write_text("RBC\nWBC\nplatelet\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert open_dataset(root).class_names == ("RBC", "WBC", "platelet")


def test_a_split_is_named_in_warnings_and_errors_as_the_data_names_it(tmp_path: Path) -> None:
    """Roboflow's valid/, opened as val, was called "(val)", where data says "(valid)"."""
    _roboflow_split(tmp_path, "train", {"RBC": 1}, [("RBC", 1, 1, 9, 9)])
    _roboflow_split(tmp_path, "valid", {"RBC": 1, "rbc": 2}, [("rbc", 1, 1, 9, 9)])
    with pytest.warns(UserWarning) as warned:
        open_dataset(tmp_path, "val")
    assert [str(w.message) for w in warned] == [
        f"{tmp_path} (valid): the classes 'RBC' and 'rbc' differ only in case, spaces or "
        "punctuation: where they are one class, give it one name in the annotations"
    ]
    with pytest.warns(UserWarning), pytest.raises(ValueError) as refused:
        open_dataset(tmp_path, "val", class_names=["RBC"])
    assert str(refused.value) == (
        f"{tmp_path} (valid) has classes ['RBC', 'rbc']: ['rbc'] not among ['RBC']"
    )


def _roboflow_split(root: Path, split: str, categories: dict[str, int], boxes: list) -> None:
    """``root/split/_annotations.coco.json`` and its one image, with ``categories`` (name
    -> id) and ``boxes`` (category name, x, y, w, h)."""
    _image(root / split / "a.png", (40, 30))
    annotations = [
        {"id": k + 1, "image_id": 0, "category_id": categories[name], "bbox": box}
        for k, (name, *box) in enumerate(boxes)
    ]
    data = {
        "images": [{"id": 0, "file_name": "a.png", "width": 40, "height": 30}],
        "categories": [{"id": i, "name": name} for name, i in categories.items()],
        "annotations": annotations,
    }
    (root / split / "_annotations.coco.json").write_text(json.dumps(data))


def test_coco_splits_with_their_own_category_lists_are_read_in_one_class_order(
    tmp_path: Path,
) -> None:
    """Each split's file lists its own categories: valid numbers them in another order,
    test lacks dog. Opened in train's order, their labels are renumbered by name; a split
    with a class that order lacks is refused."""
    _roboflow_split(tmp_path, "train", {"raccoon": 1, "dog": 2}, [("raccoon", 1, 1, 9, 9)])
    valid_boxes = [("raccoon", 1, 1, 9, 9), ("dog", 20, 10, 9, 9)]
    _roboflow_split(tmp_path, "valid", {"dog": 1, "raccoon": 2}, valid_boxes)
    _roboflow_split(tmp_path, "test", {"raccoon": 7}, [("raccoon", 1, 1, 9, 9)])
    names = open_dataset(tmp_path, "train").class_names
    assert names == ("raccoon", "dog")
    valid = open_dataset(tmp_path, "val", class_names=names)
    assert valid.class_names == names and valid.num_classes == 3
    assert valid[0][1]["labels"].tolist() == valid.target(0)["labels"].tolist() == [1, 2]
    assert valid.label_to_category_id == {1: 2, 2: 1}
    test = open_dataset(tmp_path, "test", class_names=names)
    assert test.class_names == names and test.target(0)["labels"].tolist() == [1]
    assert test.label_to_category_id == {1: 7} and test.category_id_to_label == {7: 1}
    assert test.image_files == [tmp_path / "test" / "a.png"]  # the reader's, passed through
    with pytest.raises(
        ValueError, match=r"\['dog', 'raccoon'\]: \['dog'\] not among \['raccoon'\]"
    ):
        open_dataset(tmp_path, "val", class_names=["raccoon"])


def test_classes_the_order_lacks_can_follow_it(tmp_path: Path) -> None:
    """For evaluate: a split's classes the given order lacks come after it, in the split's
    order, instead of being refused, in VOC (whose reader refuses an unknown name) and in
    a COCO file that also lists a category with no box."""
    root = _voc(tmp_path / "voc")
    layout = find_layout(root)
    with pytest.raises(ValueError, match="cat"):
        layout.open("val", ["dog"])
    val = layout.open("val", ["dog"], append_unknown=True)
    assert val.class_names == ("dog", "cat") and val.target(0)["labels"].tolist() == [2]
    same = layout.open("val", ["cat", "dog"], append_unknown=True)
    assert same.class_names == ("cat", "dog") and same.target(0)["labels"].tolist() == [1]
    coco = tmp_path / "coco"
    boxes = [("raccoon", 1, 1, 9, 9), ("fox", 20, 10, 9, 9)]
    _roboflow_split(coco, "test", {"owl": 1, "fox": 2, "raccoon": 3}, boxes)
    test = find_layout(coco).open("test", ["raccoon"], append_unknown=True)
    assert test.class_names == ("raccoon", "owl", "fox")
    assert test.target(0)["labels"].tolist() == [1, 3]
    assert test.label_to_category_id == {1: 3, 2: 1, 3: 2}
