import json
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_utils
from torch import Tensor

from exif_images import save_exif_jpeg
from faster_rcnn.data.coco import COCODetection, drop_crowd
from faster_rcnn.evaluate.coco_ap import COCOEvaluator, load_coco_annotations, score_results_file

# The fixture's annotation 3 of a.png has no area on purpose: it is dropped with this warning.
pytestmark = pytest.mark.filterwarnings(r"ignore:.*1 box dropped \(annotation 3")


# _coco's images under an integer id, a string one and a string of digits (as some
# exporters write them), and a box on each.
MIXED_ID_IMAGES = [
    {"id": 11, "file_name": "a.png"},
    {"id": "img_b", "file_name": "b.png"},
    {"id": "7", "file_name": "sub/c.png"},
]
MIXED_ID_BOXES = [
    {"id": 1, "image_id": "img_b", "category_id": 7, "bbox": [1, 2, 3, 4]},
    {"id": 2, "image_id": "7", "category_id": 3, "bbox": [2, 2, 5, 5]},
    {"id": 3, "image_id": 11, "category_id": 3, "bbox": [0, 0, 4, 4]},
]


def _coco(tmp_path: Path, **changes: Any) -> tuple[Path, Path]:
    """A tiny COCO dataset: categories 7 and 3 (out of order), three images."""
    images = tmp_path / "images"
    images.mkdir(exist_ok=True)
    for name, size in (("a.png", (40, 30)), ("b.png", (16, 16)), ("sub/c.png", (12, 24))):
        (images / name).parent.mkdir(exist_ok=True)
        Image.new("RGB", size, (0, 128, 255)).save(images / name)
    data = {
        "images": [
            {"id": 11, "file_name": "a.png", "height": 30, "width": 40},
            {"id": 5, "file_name": "b.png", "height": 16, "width": 16},
            {"id": 2, "file_name": "sub/c.png"},  # no size: read from the file
        ],
        "categories": [{"id": 7, "name": "dog"}, {"id": 3, "name": "cat"}],
        "annotations": [
            {"id": 1, "image_id": 11, "category_id": 7, "bbox": [2, 3, 10, 5], "iscrowd": 0},
            {"id": 2, "image_id": 11, "category_id": 3, "bbox": [0, 0, 40, 30], "iscrowd": 1},
            {"id": 3, "image_id": 11, "category_id": 3, "bbox": [5, 5, 0, 4], "iscrowd": 0},
            {"id": 4, "image_id": 2, "category_id": 3, "bbox": [1.5, 2.25, 4, 8.5]},
        ],
    }
    data.update(changes)
    annotation_file = tmp_path / "instances.json"
    annotation_file.write_text(json.dumps(data))
    return images, annotation_file


def test_reads_contiguous_labels_xyxy_boxes_crowd_and_empty_images(tmp_path: Path) -> None:
    data = COCODetection(*_coco(tmp_path))
    assert len(data) == 3
    assert data.class_names == ("cat", "dog") and data.num_classes == 3
    assert data.category_id_to_label == {3: 1, 7: 2}
    assert data.label_to_category_id == {1: 3, 2: 7}

    image, target = data[0]
    assert image.shape == (3, 30, 40)
    assert torch.equal(image[:, 0, 0], torch.tensor([0, 128, 255], dtype=torch.uint8))
    assert torch.equal(target["boxes"], torch.tensor([[2.0, 3, 12, 8], [0, 0, 40, 30]]))
    assert torch.equal(target["labels"], torch.tensor([2, 1]))
    assert torch.equal(target["iscrowd"], torch.tensor([False, True]))
    assert target["image_id"] == 11

    image, target = data[1]  # no annotation: a valid example without objects
    assert image.shape == (3, 16, 16) and target["image_id"] == 5
    assert target["boxes"].shape == (0, 4) and target["labels"].shape == (0,)

    _, target = data[2]
    assert torch.equal(target["boxes"], torch.tensor([[1.5, 2.25, 5.5, 10.75]]))
    assert torch.equal(target["iscrowd"], torch.tensor([False]))  # absent iscrowd: 0
    assert [data.image_size(i) for i in range(3)] == [(30, 40), (16, 16), (24, 12)]
    assert [a["id"] for a in data.skipped_annotations] == [3]  # zero width
    assert data.box_audit.dropped == ["annotation 3 of a.png [5, 5, 0, 4]: no area"]


def test_targets_are_copies(tmp_path: Path) -> None:
    data = COCODetection(*_coco(tmp_path))
    data.target(0)["boxes"][0, 0] = 99
    assert data.target(0)["boxes"][0, 0] == 2


def test_drop_crowd_filters_every_per_box_entry(tmp_path: Path) -> None:
    target = COCODetection(*_coco(tmp_path)).target(0)
    kept = drop_crowd(target)
    assert torch.equal(kept["boxes"], torch.tensor([[2.0, 3, 12, 8]]))
    assert torch.equal(kept["labels"], torch.tensor([2]))
    assert torch.equal(kept["iscrowd"], torch.tensor([False]))
    assert kept["image_id"] == 11
    assert len(target["boxes"]) == 2  # the input is untouched
    plain = {"boxes": torch.zeros((1, 4)), "labels": torch.ones(1, dtype=torch.int64)}
    assert drop_crowd(plain) is plain


def test_a_placeholder_category_named_as_its_one_class_is_no_class(tmp_path: Path) -> None:
    # Roboflow's category 0 is named after the project, and so may its one class be; a
    # category that is its own supercategory (COCO's) stays a class without annotations.
    categories = [
        {"id": 0, "name": "raccoon", "supercategory": "none"},
        {"id": 1, "name": "raccoon", "supercategory": "raccoon"},
        {"id": 2, "name": "person", "supercategory": "person"},
    ]
    annotations = [{"id": 1, "image_id": 11, "category_id": 1, "bbox": [2, 3, 10, 5]}]
    data = COCODetection(*_coco(tmp_path, categories=categories, annotations=annotations))
    assert data.class_names == ("raccoon", "person")
    assert data.label_to_category_id == {1: 1, 2: 2}
    assert data.target(0)["labels"].tolist() == [1]


def _segmented(segmentation: Any) -> dict[str, Any]:
    """The fixture's changes for one annotation with ``segmentation`` and no bbox."""
    annotation = {"id": 6, "image_id": 11, "category_id": 3, "segmentation": segmentation}
    return {"annotations": [annotation]}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"annotations": [{"id": 8, "image_id": 11, "category_id": 4, "bbox": [0, 0, 1, 1]}]},
            r"annotation 8 of a.png has category_id 4, not one of \[3, 7\]",
        ),
        (
            {"annotations": [{"id": 9, "image_id": 11.0, "category_id": 3, "bbox": [0, 0, 1, 1]}]},
            r"annotation 9 has image_id 11\.0, not an integer or a string$",
        ),
        (
            {"annotations": [{"id": 9, "image_id": None, "category_id": 3, "bbox": [0, 0, 1, 1]}]},
            r"annotation 9 has image_id None, not an integer or a string$",
        ),
        (
            {"annotations": [{"id": 6, "image_id": 11, "category_id": 3, "bbox": [0, 0, 1]}]},
            r"annotation 6 of a.png has bbox \[0, 0, 1\]",
        ),
        (
            _segmented([]),
            r"annotation 6 of a.png has bbox None, not \[x, y, width, height\]$",
        ),
        (  # a polygon of fewer than three points
            _segmented([[1, 2, 3, 4]]),
            r"annotation 6 of a.png has no bbox, and its segmentation \[\[1, 2, 3, 4\]\] is "
            "neither",
        ),
        (  # an uncompressed RLE whose counts do not cover its 2x2 pixels
            _segmented({"size": [2, 2], "counts": [1, 2]}),
            r"annotation 6 of a.png has no bbox, and its segmentation \{'counts': \[1, 2\], 'size'",
        ),
        (  # more pixels than pycocotools counts in 32 bits
            _segmented({"size": [65536, 65536], "counts": [2**32]}),
            r"annotation 6 of a.png has no bbox, and its segmentation \{'counts': \[4294967296\]",
        ),
        (  # a compressed RLE of characters pycocotools does not write
            _segmented({"size": [30, 40], "counts": "0\u00e9~"}),
            r"annotation 6 of a.png has no bbox, and its segmentation \{'counts': '0\u00e9~'",
        ),
        (  # polygons whose extent is not finite
            _segmented([[1e308, 0, -1e308, 5, 3, 3]]),
            r"annotation 6 of a.png has no bbox, and its segmentation \[\[1e\+308, 0, -1e\+308",
        ),
        (  # an RLE without its height
            _segmented({"size": [30], "counts": "PP"}),
            r"annotation 6 of a.png has no bbox, and its segmentation "
            r"\{'counts': 'PP', 'size': \[30\]\}",
        ),
        ({"categories": [{"id": 1, "name": "a"}, {"id": 1, "name": "b"}]}, "duplicate category"),
        (
            {"images": [{"id": 4, "file_name": "a.png"}, {"id": 4, "file_name": "b.png"}]},
            r"duplicate image ids \(4\)",
        ),
        ({"images": [{"id": 11, "file_name": "a.png"}, {"id": 2}]}, "image 2 has no file_name"),
        (
            {"images": [{"id": 4, "file_name": "../../etc/passwd"}]},
            r"image 4 has file_name '../../etc/passwd', which leaves the image folder",
        ),
        (
            {"images": [{"id": 4, "file_name": "/etc/passwd"}]},
            "image 4 has file_name '/etc/passwd'",
        ),
        (
            {"images": [{"id": [4], "file_name": "a.png"}]},
            r"image #0 has id \[4\], not an integer or a string$",
        ),
        (
            {"images": [{"id": True, "file_name": "a.png"}]},
            "image #0 has id True, not an integer or a string$",
        ),
        (
            {"images": [{"id": 4.0, "file_name": "a.png"}]},
            r"image #0 has id 4\.0, not an integer or a string$",
        ),
        ({"images": [{"file_name": "a.png"}]}, "image #0 has id None, not an integer or a string$"),
        ({"categories": [{"id": 7}]}, "category 7 has no name"),
        ({"categories": [{"id": 7, "name": " "}]}, "category 7 has no name"),
        ({"categories": [{"name": "dog"}]}, "category #0 has no integer id"),
    ],
)
def test_bad_annotations_are_errors_naming_them(
    tmp_path: Path, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=r"instances\.json: " + message):
        COCODetection(*_coco(tmp_path, **changes))


@pytest.mark.parametrize("iscrowd", ["0", "1", None, 2, 0.5])
def test_an_iscrowd_other_than_0_or_1_is_refused_by_reader_and_evaluation(
    tmp_path: Path, iscrowd: Any
) -> None:
    # "0" is truthy: read as bool, it made every box a crowd region, left out of training
    # and of the objects to find, without a word.
    box = {"id": 6, "image_id": 11, "category_id": 3, "bbox": [0, 0, 4, 4], "iscrowd": iscrowd}
    images, annotation_file = _coco(tmp_path, annotations=[box])
    shown = re.escape(repr(iscrowd))
    message = rf"instances\.json: annotation 6 of a.png has iscrowd {shown}, not 0 or 1$"
    with pytest.raises(ValueError, match=message):
        COCODetection(images, annotation_file)
    with pytest.raises(ValueError, match=message):
        load_coco_annotations(annotation_file)


def test_an_annotation_without_bbox_takes_its_segmentations_extent(tmp_path: Path) -> None:
    """Polygons: the extent of all their points; an RLE, compressed (a string) or not (a
    list): pycocotools' toBbox. A bbox, where there is one, decides; an empty mask is a
    box without area."""
    mask = np.zeros((30, 40), dtype=np.uint8, order="F")
    mask[5:12, 8:20] = 1  # rows 5-11, columns 8-19 of a.png (40x30)
    compressed = mask_utils.encode(mask)
    compressed["counts"] = compressed["counts"].decode()
    # b.png (16x16), column by column: rows 2-5 of columns 3 and 4.
    uncompressed = {"size": [16, 16], "counts": [50, 4, 12, 4, 186]}
    polygons = [[1, 2, 6, 2, 6, 9.5], [4, 3, 8.5, 12, 5, 20]]  # on c.png (12x24)
    annotations = [
        {"id": 1, "image_id": 11, "category_id": 7, "segmentation": compressed},
        {"id": 2, "image_id": 5, "category_id": 3, "segmentation": uncompressed},
        {"id": 3, "image_id": 2, "category_id": 3, "segmentation": polygons},
        {
            "id": 4,
            "image_id": 11,
            "category_id": 3,
            "segmentation": polygons,
            "bbox": [2, 3, 10, 5],
        },
        {
            "id": 5,
            "image_id": 5,
            "category_id": 3,
            "segmentation": {"size": [16, 16], "counts": [256]},
        },
    ]
    images, annotation_file = _coco(tmp_path, annotations=annotations)
    with pytest.warns(
        UserWarning, match=r"annotation 5 of b.png segmentation extent \[0, 0, 0, 0\]: no area"
    ):
        data = COCODetection(images, annotation_file)
    assert torch.equal(data.target(0)["boxes"], torch.tensor([[8.0, 5, 20, 12], [2, 3, 12, 8]]))
    assert torch.equal(data.target(1)["boxes"], torch.tensor([[3.0, 2, 5, 6]]))
    assert torch.equal(data.target(2)["boxes"], torch.tensor([[1.0, 2, 8.5, 20]]))
    assert [a["id"] for a in data.skipped_annotations] == [5]
    # Evaluation against the file scores the same boxes (x, y, width, height), the empty
    # mask's left out as the reader leaves it out (it was an object no detection finds).
    with pytest.warns(
        UserWarning, match=r"1 box dropped \(annotation 5 of b.png segmentation extent"
    ):
        scored = load_coco_annotations(annotation_file).dataset["annotations"]
    assert [a["bbox"] for a in scored] == [
        [8, 5, 12, 7],
        [3, 2, 2, 4],
        [1, 2, 7.5, 18],
        [2, 3, 10, 5],
    ]


def test_annotations_whose_image_id_no_image_has_are_left_out_with_a_warning(
    tmp_path: Path,
) -> None:
    """An image taken out of ``images`` with its annotations left behind (a file edited
    by hand or merged) made the whole file refused ('unknown image_id 12'): its
    annotations are left out, named, and the others read."""
    images, annotation_file = _coco(tmp_path)
    data = json.loads(annotation_file.read_text())
    data["annotations"] += [
        {"id": 9, "image_id": 12, "category_id": 3, "bbox": [0, 0, 1, 1]},
        {"id": 10, "image_id": 13, "category_id": 7, "bbox": [0, 0, 2, 2]},
    ]
    annotation_file.write_text(json.dumps(data))
    with pytest.warns(UserWarning) as warned:
        read = COCODetection(images, annotation_file)
    assert [str(w.message) for w in warned] == [
        f"{annotation_file}: 2 annotations are left out, no image has their image_id: "
        "annotation 9 (image_id 12), annotation 10 (image_id 13)",
        f"{annotation_file}: 1 box dropped (annotation 3 of a.png [5, 5, 0, 4]: no area)",
    ]
    assert [read.target(k)["boxes"].shape[0] for k in range(3)] == [2, 0, 1]


def test_an_image_id_of_the_other_kind_is_named_as_the_likely_cause_and_left_out(
    tmp_path: Path,
) -> None:
    """An ``image_id`` written as the string "11" where the image's id is the integer 11
    (or the reverse) was left out as any other id no image has, the warning not saying
    why: it names the likely cause; what is left out is as before, alike in reader and
    evaluation. "13" and 12 are no image's id, of either kind."""
    records = [*MIXED_ID_IMAGES[:2], {"id": 2, "file_name": "sub/c.png"}]
    annotations = [
        {"id": 1, "image_id": "11", "category_id": 3, "bbox": [0, 0, 4, 4]},
        {"id": 2, "image_id": "img_b", "category_id": 7, "bbox": [1, 2, 3, 4]},
        {"id": 3, "image_id": "13", "category_id": 3, "bbox": [0, 0, 4, 4]},
        {"id": 4, "image_id": 12, "category_id": 3, "bbox": [0, 0, 4, 4]},
    ]
    images, annotation_file = _coco(tmp_path, images=records, annotations=annotations)
    said = (
        f"{annotation_file}: 3 annotations are left out, no image has their image_id: "
        "annotation 1 (image_id '11', a string where the image's id is the integer 11), "
        "annotation 3 (image_id '13'), annotation 4 (image_id 12)"
    )
    with pytest.warns(UserWarning) as warned:
        data = COCODetection(images, annotation_file)
    assert [str(w.message) for w in warned] == [said]
    assert [data.target(k)["boxes"].shape[0] for k in range(3)] == [0, 1, 0]
    with pytest.warns(UserWarning) as warned:
        truth = load_coco_annotations(annotation_file).dataset
    assert [str(w.message) for w in warned] == [said]
    assert [a["id"] for a in truth["annotations"]] == [2]


def test_an_image_listed_under_two_ids_is_read_once_with_the_boxes_of_both(
    tmp_path: Path,
) -> None:
    """Two records of one file under different ids (an exporter's glitch, or two
    annotation sessions merged) were read as two images, each with its own boxes only:
    each copy was taught the other's objects as background. The image is read once, at
    its first record's place and id, with the boxes of all its records, in one warning;
    ``sub\\c.png`` is ``sub/c.png``, as the reader finds it."""
    records = [
        {"id": 11, "file_name": "a.png", "height": 30, "width": 40},
        {"id": 5, "file_name": "b.png"},
        {"id": 8, "file_name": "a.png", "height": 30, "width": 40},
        {"id": 2, "file_name": "sub/c.png"},
        {"id": "c_again", "file_name": "sub\\c.png"},
    ]
    annotations = [
        {"id": 1, "image_id": 11, "category_id": 7, "bbox": [2, 3, 10, 5]},
        {"id": 2, "image_id": 8, "category_id": 3, "bbox": [20, 10, 10, 10]},
        {"id": 3, "image_id": "c_again", "category_id": 7, "bbox": [0, 0, 5, 5]},
        {"id": 4, "image_id": 2, "category_id": 3, "bbox": [1.5, 2.25, 4, 8.5]},
    ]
    images, annotation_file = _coco(tmp_path, images=records, annotations=annotations)
    with pytest.warns(UserWarning) as warned:
        data = COCODetection(images, annotation_file)
    assert [str(w.message) for w in warned] == [
        f"{annotation_file}: 2 file names are listed under more than one image id, each "
        "image read once with the boxes of all its ids: a.png (ids 11, 8), sub/c.png "
        "(ids 2, 'c_again')"
    ]
    assert warned[0].filename == __file__
    assert data.image_files == [images / "a.png", images / "b.png", images / "sub/c.png"]
    targets = [data.target(k) for k in range(3)]
    assert [t["image_id"] for t in targets] == [11, 5, 2]
    assert [t["boxes"].tolist() for t in targets] == [
        [[2.0, 3.0, 12.0, 8.0], [20.0, 10.0, 30.0, 20.0]],
        [],
        [[0.0, 0.0, 5.0, 5.0], [1.5, 2.25, 5.5, 10.75]],
    ]
    assert [t["labels"].tolist() for t in targets] == [[2, 1], [], [2, 1]]


def test_an_empty_bbox_beside_polygons_is_no_bbox(tmp_path: Path) -> None:
    """LabelMe-to-COCO converters write ``"bbox": []`` beside the polygons: the file was
    refused ('has bbox [], not [x, y, width, height]'); the polygons' extent is the box,
    for training and for evaluation against the file."""
    polygons = [[1, 2, 6, 2, 6, 9.5], [4, 3, 8.5, 12, 5, 20]]  # on c.png (12x24)
    annotations = [
        {"id": 1, "image_id": 2, "category_id": 3, "segmentation": polygons, "bbox": []},
    ]
    images, annotation_file = _coco(tmp_path, annotations=annotations)
    data = COCODetection(images, annotation_file)
    assert torch.equal(data.target(2)["boxes"], torch.tensor([[1.0, 2, 8.5, 20]]))
    scored = load_coco_annotations(annotation_file).dataset["annotations"]
    assert [a["bbox"] for a in scored] == [[1, 2, 7.5, 18]]
    # Without a segmentation, an empty bbox is no box at all.
    annotations[0]["segmentation"] = []
    with pytest.raises(
        ValueError, match=r"annotation 1 of sub/c.png has bbox \[\], not \[x, y, width"
    ):
        COCODetection(*_coco(tmp_path, annotations=annotations))


def test_unreadable_files_are_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"missing\.json does not exist"):
        COCODetection(tmp_path, tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ValueError, match=r"bad\.json: not valid json"):
        COCODetection(tmp_path, tmp_path / "bad.json")
    (tmp_path / "other.json").write_text('{"images": []}')
    with pytest.raises(ValueError, match="not a COCO detection file"):
        COCODetection(tmp_path, tmp_path / "other.json")
    _, annotation_file = _coco(tmp_path)
    with (
        pytest.warns(UserWarning, match=r"3 images are left out, not found: .*elsewhere/a\.png"),
        pytest.raises(ValueError) as no_image,
    ):
        COCODetection(tmp_path / "elsewhere", annotation_file, "train")
    assert str(no_image.value) == (
        f"{annotation_file}: the train split holds no image (none of its 3 images is there)"
    )


def test_an_image_whose_file_is_missing_is_left_out_with_its_annotations(tmp_path: Path) -> None:
    # a.png deleted after labelling: its three annotations go with it (annotation 3's box
    # without area is not counted), b.png and c.png are read as before.
    images, annotation_file = _coco(tmp_path)
    (images / "a.png").unlink()
    with pytest.warns(UserWarning) as warned:
        data = COCODetection(images, annotation_file)
    assert [str(w.message) for w in warned] == [
        f"{annotation_file}: 1 image is left out, not found: {images / 'a.png'}"
    ]
    assert data.image_files == [images / "b.png", images / "sub/c.png"]
    assert [data.target(k)["image_id"] for k in range(2)] == [5, 2]
    assert data.target(0)["boxes"].shape == (0, 4)
    assert torch.equal(data.target(1)["boxes"], torch.tensor([[1.5, 2.25, 5.5, 10.75]]))
    assert data.target(1)["labels"].tolist() == [1] and data.skipped_annotations == []
    assert data.image_size(1) == (24, 12)


def test_boxes_past_the_border_are_clipped_and_those_outside_dropped_with_a_count(
    tmp_path: Path,
) -> None:
    annotations = [
        {"id": 1, "image_id": 11, "category_id": 7, "bbox": [-5, 20, 20, 20]},  # a.png 40x30
        {"id": 2, "image_id": 11, "category_id": 3, "bbox": [45, 0, 10, 10]},  # outside
        {"id": 3, "image_id": 11, "category_id": 3, "bbox": [5, 5, 0, 4]},  # no area
        {"id": 4, "image_id": 2, "category_id": 3, "bbox": [10, 20, 5, 10]},  # c.png 12x24
    ]
    with pytest.warns(UserWarning) as warned:
        data = COCODetection(*_coco(tmp_path, annotations=annotations))
    assert [str(w.message) for w in warned] == [
        f"{tmp_path / 'instances.json'}: 2 boxes clipped to the image (annotation 1 of a.png "
        "[-5, 20, 15, 40] on 40x30; annotation 4 of sub/c.png [10, 20, 15, 30] on 12x24); 2 "
        "boxes dropped (annotation 2 of a.png [45, 0, 55, 10] on 40x30: outside the image; "
        "annotation 3 of a.png [5, 5, 0, 4]: no area)"
    ]
    assert torch.equal(data.target(0)["boxes"], torch.tensor([[0.0, 20, 15, 30]]))
    # c.png's size is in no record: its file's header gives it.
    assert torch.equal(data.target(2)["boxes"], torch.tensor([[10.0, 20, 12, 24]]))
    assert [a["id"] for a in data.skipped_annotations] == [2, 3]
    # Evaluation against the file clips and drops them alike, where the file gives the
    # image's size (c.png's it does not: its box stays as written).
    with pytest.warns(UserWarning) as warned:
        scored = load_coco_annotations(tmp_path / "instances.json").dataset["annotations"]
    assert [str(w.message) for w in warned] == [
        f"{tmp_path / 'instances.json'}: 1 box clipped to the image (annotation 1 of a.png "
        "[-5, 20, 15, 40] on 40x30); 2 boxes dropped (annotation 2 of a.png [45, 0, 55, 10] "
        "on 40x30: outside the image; annotation 3 of a.png [5, 5, 0, 4]: no area)"
    ]
    assert [(a["id"], a["bbox"], a["area"]) for a in scored] == [
        (1, [0, 20, 15, 10], 150),
        (4, [10, 20, 5, 10], 50),
    ]


def test_an_annotation_file_not_in_utf8_is_named(tmp_path: Path) -> None:
    _, annotation_file = _coco(tmp_path)
    text = annotation_file.read_text().replace('"dog"', '"chien \u00e9"')
    annotation_file.write_bytes(text.encode("latin-1"))
    with pytest.raises(ValueError, match=r"instances\.json: not UTF-8 text \(byte \d+ is"):
        COCODetection(tmp_path / "images", annotation_file)


def test_an_annotation_file_in_utf16_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    """Saved by Windows Notepad as "Unicode": refused as not UTF-8."""
    _, annotation_file = _coco(tmp_path)
    text = annotation_file.read_text().replace('"dog"', '"chien \u00e9"')
    annotation_file.write_bytes(text.encode("utf-16"))  # with its byte-order mark
    data = COCODetection(tmp_path / "images", annotation_file)
    assert data.class_names == ("cat", "chien \u00e9")
    assert data.target(0)["boxes"].tolist() == [[2.0, 3.0, 12.0, 8.0], [0.0, 0.0, 40.0, 30.0]]
    assert data.target(0)["labels"].tolist() == [2, 1]


def test_an_exif_turned_image_is_turned_and_a_wrong_size_gives_way_to_the_file(
    tmp_path: Path,
) -> None:
    """a.png's record is replaced by a JPEG stored 40 wide and 20 high whose orientation 6
    shows it 20 wide and 40 high, as its record says: it is turned on reading, so its box
    at y 25-35 lies inside. b.png's record says 32 x 32 for a 16 x 16 file: the file's
    size is used, and its box clipped to it."""
    images, _ = _coco(tmp_path)
    save_exif_jpeg(images / "t.jpg", (40, 20), orientation=6)
    records = [
        {"id": 11, "file_name": "t.jpg", "height": 40, "width": 20},
        {"id": 5, "file_name": "b.png", "height": 32, "width": 32},
    ]
    boxes = [
        {"id": 1, "image_id": 11, "category_id": 7, "bbox": [2, 25, 10, 10]},
        {"id": 2, "image_id": 5, "category_id": 7, "bbox": [8, 8, 20, 20]},
    ]
    _, annotation_file = _coco(tmp_path, images=records, annotations=boxes)
    with pytest.warns(UserWarning) as warned:
        data = COCODetection(images, annotation_file)
    messages = [str(w.message) for w in warned]
    assert messages[:2] == [
        f"{annotation_file}: 1 image turned by the EXIF orientation to agree with the "
        f"annotated width and height ({images / 't.jpg'})",
        f"{annotation_file}: 1 image: the annotated width and height differs from the image "
        f"file's, which is used ({images / 'b.png'} (width and height 32x32, file 16x16))",
    ]
    image, target = data[0]
    assert (
        image.shape == (3, 40, 20) and image[0, :4].double().mean() > 0.9 * 255
    )  # the red edge on top
    assert torch.equal(target["boxes"], torch.tensor([[2.0, 25, 12, 35]]))
    assert data.image_size(1) == (16, 16)
    assert torch.equal(data.target(1)["boxes"], torch.tensor([[8.0, 8, 16, 16]]))


def test_a_box_of_a_negative_side_is_read_between_its_corners_as_voc_reads_one(
    tmp_path: Path,
) -> None:
    """A box dragged leftwards or upwards, saved as drawn (``x`` its right edge, a negative
    ``width``), was dropped as one without area, and evaluation against the file refused
    it ('of a negative side'), where the VOC reader swaps an ``xmax < xmin``: both read it
    between its corners, and count it in the reader's warning, the clipping as usual."""
    annotations = [
        {"id": 1, "image_id": 11, "category_id": 7, "bbox": [12, 8, -10, -5]},  # a.png 40x30
        {"id": 2, "image_id": 5, "category_id": 3, "bbox": [2, 14, 6, -4]},  # b.png 16x16
        {"id": 3, "image_id": 5, "category_id": 3, "bbox": [10, 10, -12, 4]},  # to x = -2
    ]
    images, annotation_file = _coco(tmp_path, annotations=annotations)
    swapped = (
        f"{annotation_file}: 3 boxes with reversed corners swapped (annotation 1 of a.png "
        "[2, 3, 12, 8] on 40x30; annotation 2 of b.png [2, 10, 8, 14] on 16x16; annotation 3 "
        "of b.png [-2, 10, 10, 14] on 16x16)"
    )
    said = (
        f"{swapped}; 1 box clipped to the image (annotation 3 of b.png [-2, 10, 10, 14] on 16x16)"
    )
    with pytest.warns(UserWarning) as warned:
        data = COCODetection(images, annotation_file)
    assert [str(w.message) for w in warned] == [said]
    assert torch.equal(data.target(0)["boxes"], torch.tensor([[2.0, 3, 12, 8]]))
    assert torch.equal(data.target(1)["boxes"], torch.tensor([[2.0, 10, 8, 14], [0, 10, 10, 14]]))
    assert data.skipped_annotations == []
    with pytest.warns(UserWarning) as warned:
        scored = load_coco_annotations(annotation_file).dataset["annotations"]
    assert [str(w.message) for w in warned] == [said]
    assert [a["bbox"] for a in scored] == [[2, 3, 10, 5], [2, 10, 6, 4], [0, 10, 10, 4]]
    assert [a["area"] for a in scored] == [50, 24, 40]
    # Opened as the dataset evaluated, the file was warned of by its reader already.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_coco_annotations(annotation_file, read_before=True)


def test_string_image_ids_are_numbered_past_the_integer_ones_in_reader_and_evaluation(
    tmp_path: Path,
) -> None:
    """Some exporters write image ids as strings: the file was refused ("image #1 has id
    'img_b', not an integer"). A target's ``image_id`` is an integer: a string id is
    numbered past the file's largest integer id (11), in the order of ``images``, alike
    by the reader and by evaluation against the file, which then scores the reader's
    boxes as found. The integer 7 is no image's id, the string '7' is."""
    annotations = [
        *MIXED_ID_BOXES,
        {"id": 4, "image_id": 7, "category_id": 3, "bbox": [0, 0, 4, 4]},
    ]
    images, annotation_file = _coco(tmp_path, images=MIXED_ID_IMAGES, annotations=annotations)
    orphan = (
        f"{annotation_file}: 1 annotation is left out, no image has its image_id: annotation 4 "
        "(image_id 7, an integer where the image's id is the string '7')"
    )
    with pytest.warns(UserWarning) as warned:
        data = COCODetection(images, annotation_file)
    assert [str(w.message) for w in warned] == [orphan]
    targets = [data.target(k) for k in range(3)]
    assert [t["image_id"] for t in targets] == [11, 12, 13]
    assert [t["boxes"].tolist() for t in targets] == [
        [[0.0, 0.0, 4.0, 4.0]],
        [[1.0, 2.0, 4.0, 6.0]],
        [[2.0, 2.0, 7.0, 7.0]],
    ]
    with pytest.warns(UserWarning, match=re.escape(orphan)):
        truth = load_coco_annotations(annotation_file).dataset
    assert [image["id"] for image in truth["images"]] == [11, 12, 13]
    assert [a["image_id"] for a in truth["annotations"]] == [12, 13, 11]
    with pytest.warns(UserWarning, match=re.escape(orphan)):
        evaluator = COCOEvaluator.from_coco_json(annotation_file)
    for target in targets:
        scores = torch.ones(len(target["labels"]))
        evaluator.update([{**target, "scores": scores}], [target])
    assert evaluator.compute()["AP"] == pytest.approx(1.0)


def test_results_name_images_by_the_files_own_ids_string_ones_too(tmp_path: Path) -> None:
    """A results file (predict --data's, or any tool's for pycocotools) names an image by
    the file's id: "image_id 'img_b' is not in" the file was refused, and the number the
    reader gives 'img_b' (12) accepted, which no other tool knows. The reader gives a
    string id back for its number; integer ids stay themselves."""
    annotations = MIXED_ID_BOXES
    images, annotation_file = _coco(tmp_path, images=MIXED_ID_IMAGES, annotations=annotations)
    data = COCODetection(images, annotation_file)
    numbers = [data.target(k)["image_id"] for k in range(3)]
    assert [data.file_image_id(n) for n in numbers] == [11, "img_b", "7"]
    results = tmp_path / "results.json"

    def scored(*entries: dict[str, Any]) -> dict[str, float]:
        results.write_text(json.dumps([{"score": 0.9, **e} for e in entries]))
        return score_results_file(annotation_file, results)

    found = [{k: a[k] for k in ("image_id", "category_id", "bbox")} for a in annotations]
    assert scored(*found)["AP"] == pytest.approx(1.0)
    # 'img_b''s dog, the one dog, missed: recall 0 of dogs, 1 of cats.
    assert scored(*found[1:])["AR100"] == pytest.approx(0.5)
    for image_id in (7, 12):  # the integer 7 is no image's id; 12 is the reader's number
        with pytest.raises(ValueError, match=rf"detection 0: image_id {image_id} is not in"):
            scored({**found[1], "image_id": image_id})
    with pytest.raises(ValueError, match=r"detection 0: image_id \['img_b'\] is not in"):
        scored({**found[0], "image_id": ["img_b"]})
    with pytest.raises(ValueError, match=r"image 'img_b' is b\.png, not c\.png: is it"):
        scored({**found[0], "file_name": "images/c.png"})


def test_the_evaluator_takes_a_files_own_string_ids_as_results_do(tmp_path: Path) -> None:
    """``COCOEvaluator.update(image_ids=...)`` against a file took only integers: the
    file's own id 'img_b' failed in int() ("invalid literal"), where a results file names
    images by the file's ids. It takes those (a string too) and the reader's numbers (a
    target's ``image_id``: 12 for 'img_b'); the integer 7 is still no image's id."""
    annotations = MIXED_ID_BOXES
    _, annotation_file = _coco(tmp_path, images=MIXED_ID_IMAGES, annotations=annotations)
    evaluator = COCOEvaluator.from_coco_json(annotation_file)

    def found(x: float, y: float, w: float, h: float, label: int) -> list[dict[str, Tensor]]:
        return [
            {
                "boxes": torch.tensor([[x, y, x + w, y + h]]),
                "labels": torch.tensor([label]),
                "scores": torch.tensor([0.9]),
            }
        ]

    evaluator.update(found(1, 2, 3, 4, 2), image_ids=["img_b"])  # the dog, label 2
    evaluator.update(found(2, 2, 5, 5, 1), image_ids=["7"])
    evaluator.update(found(0, 0, 4, 4, 1), image_ids=[11])
    assert evaluator.compute()["AP"] == pytest.approx(1.0)
    assert evaluator.compute()["AR100"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match=r"^image id 'img_b' was added twice$"):
        evaluator.update(found(1, 2, 3, 4, 2), image_ids=["img_b"])
    with pytest.raises(ValueError, match=r"^image id 12 was added twice$"):  # its number
        evaluator.update(found(1, 2, 3, 4, 2), image_ids=[12])
    for image_id in ("img_x", 7):
        with pytest.raises(ValueError, match=rf"^image id {image_id!r} is not in the COCO"):
            evaluator.update(found(1, 2, 3, 4, 2), image_ids=[image_id])
    in_memory = COCOEvaluator(3)
    gt_nothing = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}
    with pytest.raises(ValueError, match=r"^image id 'img_b': a string id names an image of"):
        in_memory.update(found(1, 2, 3, 4, 2), [gt_nothing], ["img_b"])
