"""COCO AP through pycocotools: perfect, shifted, crowd, empty, area buckets, ids."""

from __future__ import annotations

import json
import math
import re
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools.coco import COCO
from test_voc_map_devkit import devkit_outcomes

from faster_rcnn.data.coco import COCODetection
from faster_rcnn.evaluate.coco_ap import (
    STAT_NAMES,
    COCOevalIgnoring,
    COCOEvaluator,
    check_file_names,
    load_coco_annotations,
    score_results_file,
)
from faster_rcnn.evaluate.voc_map import VOCEvaluator


def boxes(values: list[list[float]]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32).reshape(-1, 4)


def det(b: list[list[float]], labels: list[int], scores: list[float] | None = None) -> dict:
    return {
        "boxes": boxes(b),
        "labels": torch.tensor(labels, dtype=torch.int64),
        "scores": torch.tensor(scores or [0.9] * len(labels)),
    }


def gt(b: list[list[float]], labels: list[int], **extra: list) -> dict:
    target = {"boxes": boxes(b), "labels": torch.tensor(labels, dtype=torch.int64)}
    for key, value in extra.items():
        target[key] = torch.tensor(value)
    return target


SMALL = [0.0, 0.0, 20.0, 20.0]  # area 400 < 32^2
MEDIUM = [100.0, 100.0, 150.0, 150.0]  # 2500
LARGE = [200.0, 200.0, 320.0, 320.0]  # 14400 > 96^2


def evaluate(predictions, targets, num_classes: int = 3, **kwargs) -> dict[str, float]:
    evaluator = COCOEvaluator(num_classes, **kwargs)
    evaluator.update(predictions, targets)
    return evaluator.compute()


def test_perfect_predictions_score_one() -> None:
    targets = [gt([SMALL, MEDIUM], [1, 2]), gt([LARGE], [1])]
    stats = evaluate(targets_as_detections(targets), targets)
    assert list(stats) == list(STAT_NAMES)
    for name in STAT_NAMES:
        assert stats[name] == pytest.approx(1.0), name


def targets_as_detections(targets: list[dict]) -> list[dict]:
    return [
        {"boxes": t["boxes"], "labels": t["labels"], "scores": torch.ones(len(t["labels"]))}
        for t in targets
    ]


def test_shifted_box_counts_at_low_iou_thresholds_only() -> None:
    # IoU 0.62: a hit at 0.50, 0.55 and 0.60 of the ten thresholds 0.50:0.95.
    targets = [gt([[0.0, 0.0, 100.0, 100.0]], [1])]
    stats = evaluate([det([[0.0, 0.0, 100.0, 62.0]], [1])], targets)
    assert stats["AP50"] == pytest.approx(1.0)
    assert stats["AP75"] == 0.0
    assert stats["AP"] == pytest.approx(0.3)
    assert stats["AR100"] == pytest.approx(0.3)


def test_detection_inside_a_crowd_box_is_ignored() -> None:
    crowd = [200.0, 200.0, 400.0, 400.0]
    inside = [210.0, 210.0, 300.0, 300.0]  # IoU 0.2 with the crowd box, all of it inside
    predictions = [det([MEDIUM, inside], [1, 1], [0.9, 0.95])]
    with_crowd = evaluate(predictions, [gt([MEDIUM, crowd], [1, 1], iscrowd=[False, True])])
    assert with_crowd["AP"] == pytest.approx(1.0)
    assert with_crowd["AR100"] == pytest.approx(1.0)
    # The same box not marked crowd: a missed object and a false positive ranked first.
    without = evaluate(predictions, [gt([MEDIUM, crowd], [1, 1])])
    assert without["AP"] < 0.5
    assert without["AR100"] == pytest.approx(0.5)


def test_no_detections_gives_zero_without_crashing() -> None:
    targets = [gt([MEDIUM], [1]), gt([], [])]
    stats = evaluate([det([], []), det([], [])], targets)
    assert stats["AP"] == 0.0
    assert stats["AP50"] == 0.0
    assert stats["APm"] == 0.0
    assert stats["AR100"] == 0.0
    # No small or large object: undefined, not zero.
    assert math.isnan(stats["APs"]) and math.isnan(stats["APl"])


def test_area_buckets() -> None:
    targets = [gt([SMALL, MEDIUM, LARGE], [1, 1, 2])]
    # The medium object is missed; its detection lands far away.
    predictions = [det([SMALL, [400.0, 0.0, 450.0, 50.0], LARGE], [1, 1, 2], [0.9, 0.8, 0.7])]
    stats = evaluate(predictions, targets)
    assert stats["APs"] == pytest.approx(1.0)
    assert stats["APm"] == 0.0
    assert stats["APl"] == pytest.approx(1.0)
    assert stats["ARs"] == pytest.approx(1.0)
    assert stats["ARm"] == 0.0
    assert stats["ARl"] == pytest.approx(1.0)
    # A given "area" (a segmentation's, say) decides the bucket instead of the box.
    targets[0]["area"] = torch.tensor([400.0, 400.0, 14400.0])
    stats = evaluate(predictions, targets)
    assert math.isnan(stats["APm"])
    assert stats["ARs"] == pytest.approx(0.5)


def test_category_ids_and_from_coco_json(tmp_path) -> None:
    dataset = {
        "images": [{"id": 42, "width": 400, "height": 400}, {"id": 7}],
        "categories": [{"id": 3, "name": "cat"}, {"id": 18, "name": "dog"}],
        "annotations": [
            {"id": 1, "image_id": 42, "category_id": 18, "bbox": [100, 100, 50, 50],
             "area": 2500, "iscrowd": 0},
            {"id": 2, "image_id": 42, "category_id": 3, "bbox": [200, 200, 120, 120]},
        ],
    }  # fmt: skip
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(dataset))
    evaluator = COCOEvaluator.from_coco_json(path)
    assert evaluator.class_names == ["cat", "dog"]
    assert evaluator.label_to_category_id == {1: 3, 2: 18}
    # Labels 1 -> category 3 (cat), 2 -> category 18 (dog); image 7 is never seen.
    evaluator.update([det([MEDIUM, LARGE], [2, 1])], [{"image_id": torch.tensor(42)}])
    assert evaluator.compute()["AP"] == pytest.approx(1.0)
    swapped = COCOEvaluator.from_coco_json(path)
    swapped.update([det([MEDIUM, LARGE], [1, 2])], image_ids=[42])
    assert swapped.compute()["AP"] == 0.0
    with pytest.raises(ValueError, match="image id 5 is not in the COCO annotation file"):
        swapped.update([det([], [])], image_ids=[5])
    with pytest.raises(FileNotFoundError, match=r"nowhere\.json"):
        COCOEvaluator.from_coco_json(tmp_path / "nowhere.json")


def test_a_file_lacking_some_of_the_models_classes_scores_those_it_has(tmp_path) -> None:
    """The file has cat (3) and dog (18); the model's labels are bird 1, dog 2, cat 3.
    Its detections of bird, which the file cannot score, are left out: with them the
    perfect cat and dog detections still score AP 1."""
    dataset = {
        "images": [{"id": 42, "width": 400, "height": 400}],
        "categories": [{"id": 3, "name": "cat"}, {"id": 18, "name": "dog"}],
        "annotations": [
            {"id": 1, "image_id": 42, "category_id": 18, "bbox": [100, 100, 50, 50]},
            {"id": 2, "image_id": 42, "category_id": 3, "bbox": [200, 200, 120, 120]},
        ],
    }
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(dataset))
    evaluator = COCOEvaluator.from_coco_json(path, {2: 18, 3: 3}, ["bird", "dog", "cat"])
    assert evaluator.num_classes == 4 and evaluator.class_names == ["bird", "dog", "cat"]
    found = det([MEDIUM, MEDIUM, LARGE, SMALL], [1, 2, 3, 1], [0.99, 0.9, 0.9, 0.95])
    evaluator.update([found], image_ids=[42])
    assert evaluator.compute()["AP"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match=r"labels \[2, 3\] are not among the 2 classes"):
        COCOEvaluator.from_coco_json(path, {2: 18, 3: 3}, ["bird", "dog"])


def test_label_to_category_id_in_memory() -> None:
    targets = [gt([MEDIUM, LARGE], [1, 2])]
    stats = evaluate(targets_as_detections(targets), targets, label_to_category_id={1: 7, 2: 3})
    assert stats["AP"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match=r"box 0: predicted label 5"):
        evaluate([det([MEDIUM], [5])], targets)


def test_file_names_with_windows_separators_are_checked_by_their_name(tmp_path):
    # Label Studio on Windows writes "images\\x.jpg", which the COCO reader reads as x.jpg.
    images = [{"id": 1, "file_name": "images\\a.jpg"}, {"id": 2, "file_name": "b.jpg"}]
    file = tmp_path / "result.json"
    file.write_text(json.dumps({"images": images, "annotations": [], "categories": []}))
    coco = load_coco_annotations(file)
    check_file_names(coco, file, [(1, "/data/images/a.jpg"), (2, "/data/b.jpg")])
    with pytest.raises(ValueError, match=r"image 1 is images\\a.jpg, not b.jpg"):
        check_file_names(coco, file, [(1, "/data/images/b.jpg")])


def test_a_missing_area_is_the_segmentations_pixels_as_in_cocos_own_files(tmp_path):
    # COCO's "area" is the mask's: a right triangle fills half its box, which moves it
    # from medium (1600 px) to small (< 32^2). Two 30-pixel columns 10 apart in an RLE
    # fill 60 of their box's 330. A given area stands; polygons on an image of unknown
    # size cannot be rasterised, and keep the box's.
    triangle = [[0, 0, 40, 0, 0, 40]]
    columns = {"size": [100, 100], "counts": [1000, 30, 970, 30, 7970]}
    data = {
        "images": [{"id": 1, "width": 100, "height": 100}, {"id": 2}],
        "categories": [{"id": 1, "name": "cell"}],
        "annotations": [
            {"image_id": 1, "category_id": 1, "bbox": [0, 0, 40, 40], "segmentation": triangle},
            {"image_id": 1, "category_id": 1, "segmentation": columns},
            {"image_id": 1, "category_id": 1, "segmentation": triangle, "area": 1234},
            {"image_id": 2, "category_id": 1, "segmentation": triangle},
            # LabelMe-to-COCO converters write an area of 0: as left out, not all small.
            {"image_id": 2, "category_id": 1, "bbox": [0, 0, 50, 40], "area": 0},
            # Infinite: out of every area range, "all" too, so never counted.
            {"image_id": 2, "category_id": 1, "bbox": [0, 0, 10, 10], "area": math.inf},
            {"image_id": 2, "category_id": 1, "bbox": [0, 0, 10, 20], "area": math.nan},
        ],
    }
    file = tmp_path / "masks.json"
    file.write_text(json.dumps(data))
    areas = [ann["area"] for ann in load_coco_annotations(file).dataset["annotations"]]
    assert areas[0] == pytest.approx(800, abs=40) and areas[0] < 32**2
    assert areas[1:] == [60.0, 1234, 1600.0, 2000.0, 100.0, 200.0]


def test_annotations_whose_image_id_no_image_has_are_left_out_as_the_reader_does(tmp_path):
    """Annotations left behind by images taken out of ``images`` made evaluation against
    the file refuse it ('unknown image_id 12'), where the reader leaves them out: they are
    left out with the reader's warning, and the figures are those of the file without
    them. The cat of image 2 is missed by a detection scored higher than the one that
    finds image 1's: precision 1/2 up to recall 1/2, AP 51 of COCO's 101 recall points
    at 1/2."""
    clean = {
        "images": [{"id": 1, "width": 400, "height": 400}, {"id": 2, "width": 400, "height": 400}],
        "categories": [{"id": 3, "name": "cat"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 3, "bbox": [100, 100, 50, 50]},
            {"id": 2, "image_id": 2, "category_id": 3, "bbox": [200, 200, 120, 120]},
        ],
    }
    orphaned = json.loads(json.dumps(clean))
    orphaned["annotations"][1:1] = [
        {"id": 7, "image_id": 12, "category_id": 3, "bbox": [100, 100, 50, 50]},
        {"id": 8, "image_id": 13, "category_id": 3, "bbox": [0, 0, 40, 40]},
    ]
    files = {name: tmp_path / f"{name}.json" for name in ("clean", "orphaned")}
    files["clean"].write_text(json.dumps(clean))
    files["orphaned"].write_text(json.dumps(orphaned))
    results = tmp_path / "results.json"
    results.write_text(
        json.dumps(
            [
                {"image_id": 1, "category_id": 3, "bbox": [100, 100, 50, 50], "score": 0.9},
                {"image_id": 2, "category_id": 3, "bbox": [0, 0, 40, 40], "score": 0.95},
            ]
        )
    )
    with pytest.warns(UserWarning) as warned:
        figures = score_results_file(files["orphaned"], results)
    assert [str(w.message) for w in warned] == [
        f"{files['orphaned']}: 2 annotations are left out, no image has their image_id: "
        "annotation 7 (image_id 12), annotation 8 (image_id 13)"
    ]
    assert warned[0].filename == __file__  # the call of score_results_file
    assert figures["AP"] == pytest.approx(51 / 2 / 101) and figures["AR100"] == 0.5
    assert figures == pytest.approx(score_results_file(files["clean"], results), nan_ok=True)
    with pytest.warns(UserWarning, match="2 annotations are left out") as warned:
        evaluator = COCOEvaluator.from_coco_json(files["orphaned"])
    assert warned[0].filename == __file__
    evaluator.update([det([[100, 100, 150, 150]], [1])], image_ids=[1])
    assert evaluator.compute()["AP"] == pytest.approx(1.0)


def test_a_detections_image_id_of_another_kind_or_a_file_stem_is_refused_naming_the_image(
    tmp_path,
):
    """Ultralytics' predictions.json names each image by its file's stem (an integer where
    the stem is digits), and other tools write an integer id as a string: the refusal
    said only that the id was not in the file. It names the image meant and its id."""
    images = [
        {"id": 1, "file_name": "images\\cat.jpg", "width": 100, "height": 100},
        {"id": "b7", "file_name": "0042.jpg", "width": 100, "height": 100},
    ]
    annotation_file = tmp_path / "gt.json"
    annotation_file.write_text(
        json.dumps({"images": images, "categories": [{"id": 1, "name": "cat"}]})
    )
    results = tmp_path / "predictions.json"
    stem = "(Ultralytics names images by file stem): give each detection that id"
    for image_id, why in (
        ("cat", f": it is the stem of images\\cat.jpg, whose image_id there is 1 {stem}"),
        (42, f": it is the stem of 0042.jpg, whose image_id there is 'b7' {stem}"),
        ("1", ": its image 1 is written as an integer there"),
        (7, ""),
    ):
        results.write_text(
            json.dumps([{"image_id": image_id, "category_id": 1, "bbox": [0, 0, 9, 9], "score": 1}])
        )
        said = f"{results}: detection 0: image_id {image_id!r} is not in {annotation_file}{why}"
        with pytest.raises(ValueError, match=f"^{re.escape(said)}$"):
            score_results_file(annotation_file, results)


def test_detections_past_the_100_that_coco_scores_of_an_images_class_are_warned_of(tmp_path):
    """COCOeval scores an image's best 100 detections of a class and drops the rest
    without a word: a file of 150 cats and 60 dogs on one image has 50 that count for
    nothing. Of 150 cats, the one on the cat ranked 100th is found at precision 1/100 (AP
    0.01 at every recall point); ranked 101st, it is not scored: AP 0."""
    cats = [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]
    cat = {"image_id": 1, "category_id": 1, "bbox": [10, 10, 40, 40]}
    annotation_file = tmp_path / "gt.json"
    annotation_file.write_text(
        json.dumps(
            {
                "images": [{"id": 1, "file_name": "a.jpg", "width": 100, "height": 100}],
                "categories": cats,
                "annotations": [{**cat, "id": 1}],
            }
        )
    )
    results = tmp_path / "results.json"
    said = (
        f"{results}: 50 detections of 1 image rank past the 100 of an image's class that "
        "COCO scores: not scored, as in the official evaluation"
    )
    for rank, ap in ((100, 0.01), (101, 0.0)):
        entries = [
            {**cat, "bbox": [60, 60, 10, 10] if k != rank else cat["bbox"], "score": 1 - k / 1000}
            for k in range(1, 151)
        ]
        dogs = [{**cat, "category_id": 2, "score": 0.5} for _ in range(60)]
        results.write_text(json.dumps(entries + dogs))
        with pytest.warns(UserWarning) as warned:
            figures = score_results_file(annotation_file, results)
        assert [str(w.message) for w in warned] == [said]
        assert warned[0].filename == __file__
        assert figures["AP"] == pytest.approx(ap) and figures["AR100"] == (rank <= 100)


def test_a_box_past_the_border_scores_against_the_file_as_against_the_readers_targets(tmp_path):
    """A cat's box reaching 40 px past the right edge of a 100x100 image (x 60-140), and
    a dog's wholly outside it. The reader clips the cat to x 60-100 and leaves the dog
    out; a perfect detection of the cat's visible part scored AP 1 against the targets
    (VOC mAP alike) but 0.05 against the file: the cat 0.1, at IoU 0.5 with the unclipped
    box (found at COCO's first threshold alone), the dog 0, as no detection inside the
    image can find it. The file's boxes are now clipped and left out as the reader does,
    with its warning; the area the file gives stands, a missing one is the clipped
    box's."""
    Image.new("RGB", (100, 100)).save(tmp_path / "a.png")
    data = {
        "images": [{"id": 4, "file_name": "a.png", "width": 100, "height": 100}],
        "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}],
        "annotations": [
            {"id": 1, "image_id": 4, "category_id": 1, "bbox": [60, 20, 80, 40]},
            {"id": 2, "image_id": 4, "category_id": 2, "bbox": [120, 0, 10, 10], "area": 100},
        ],
    }
    file = tmp_path / "instances.json"
    file.write_text(json.dumps(data))
    said = (
        f"{file}: 1 box clipped to the image (annotation 1 of a.png [60, 20, 140, 60] on "
        "100x100); 1 box dropped (annotation 2 of a.png [120, 0, 130, 10] on 100x100: outside "
        "the image)"
    )
    with pytest.warns(UserWarning) as warned:
        dataset = COCODetection(tmp_path, file)
    assert [str(w.message) for w in warned] == [said]
    target = dataset.target(0)
    found = [det([[60, 20, 100, 60]], [1])]
    assert evaluate(found, [target], label_to_category_id={1: 1, 2: 2})["AP"] == pytest.approx(1.0)
    with pytest.warns(UserWarning) as warned:
        evaluator = COCOEvaluator.from_coco_json(file)
    assert [str(w.message) for w in warned] == [said]
    evaluator.update(found, [target])
    figures = evaluator.compute()
    assert figures["AP"] == pytest.approx(1.0) and figures["AR100"] == pytest.approx(1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # opened as the dataset evaluated: warned of once
        coco = load_coco_annotations(file, read_before=True)
    assert [(a["bbox"], a["area"]) for a in coco.dataset["annotations"]] == [
        ([60, 20, 40, 40], 1600)
    ]


def test_an_image_listed_under_two_ids_is_scored_once_with_the_boxes_of_both(tmp_path):
    """a.png is listed under ids 1 and 2 (two annotation sessions merged), a cat in each
    record. The reader reads it once, as image 1, with both cats; evaluation against the
    file scored image 1 with its own cat alone, so the reader's perfect detection of the
    other cat (scored highest) was a false positive, AP 2/3, and image 2's cat was never
    looked for. It scores a.png once with both cats, with the reader's warning, and a
    results file's detections go to it by either id: AP 1."""
    for name in ("a.png", "b.png"):
        Image.new("RGB", (400, 400)).save(tmp_path / name)
    data = {
        "images": [
            {"id": 1, "file_name": "a.png", "width": 400, "height": 400},
            {"id": 3, "file_name": "b.png", "width": 400, "height": 400},
            {"id": 2, "file_name": "a.png", "width": 400, "height": 400},
        ],
        "categories": [{"id": 1, "name": "cat"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [100, 100, 50, 50]},
            {"id": 2, "image_id": 2, "category_id": 1, "bbox": [200, 200, 120, 120]},
            {"id": 3, "image_id": 3, "category_id": 1, "bbox": [0, 0, 40, 40]},
        ],
    }
    file = tmp_path / "instances.json"
    file.write_text(json.dumps(data))
    said = (
        f"{file}: 1 file name is listed under more than one image id, each image read once "
        "with the boxes of all its ids: a.png (ids 1, 2)"
    )
    with pytest.warns(UserWarning) as warned:
        dataset = COCODetection(tmp_path, file)
    assert [str(w.message) for w in warned] == [said]
    targets = [dataset.target(k) for k in range(len(dataset))]
    assert [t["image_id"] for t in targets] == [1, 3]
    assert targets[0]["boxes"].tolist() == [[100, 100, 150, 150], [200, 200, 320, 320]]
    found = [
        det([[100, 100, 150, 150], [200, 200, 320, 320]], [1, 1], [0.9, 0.95]),
        det([[0, 0, 40, 40]], [1]),
    ]
    with pytest.warns(UserWarning) as warned:
        evaluator = COCOEvaluator.from_coco_json(file)
    assert [str(w.message) for w in warned] == [said]
    assert warned[0].filename == __file__
    evaluator.update(found, targets)
    assert evaluator.compute()["AP"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match=r"^image id 2 was added twice$"):  # a.png's too
        evaluator.update(found[:1], image_ids=[2])
    results = tmp_path / "results.json"
    entries = [
        {"image_id": 1, "category_id": 1, "bbox": [100, 100, 50, 50], "score": 0.9},
        {"image_id": 2, "category_id": 1, "bbox": [200, 200, 120, 120], "score": 0.95},
        {"image_id": 3, "category_id": 1, "bbox": [0, 0, 40, 40], "score": 0.9},
    ]
    for second_id in (1, 2):  # predict names a.png by its first id; another tool, by 2
        entries[1]["image_id"] = second_id
        results.write_text(json.dumps(entries))
        with pytest.warns(UserWarning, match=re.escape(said)):
            assert score_results_file(file, results)["AP"] == pytest.approx(1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # opened as the dataset evaluated: warned of once
        coco = load_coco_annotations(file, read_before=True)
    assert [image["id"] for image in coco.dataset["images"]] == [1, 3]
    assert [a["image_id"] for a in coco.dataset["annotations"]] == [1, 1, 3]


DIFFICULT = [0.0, 200.0, 60.0, 260.0]  # 3600 px: medium, as MEDIUM


def test_a_difficult_object_is_ignored_as_in_voc() -> None:
    # The detection on the difficult object reaches IoU 0.625 with it: at IoU 0.50-0.60
    # it is matched and ignored, above that a false positive ranked after the found
    # object, which costs nothing. Counted as an object (as before), the difficult one
    # was missed at seven of the ten thresholds: AP 0.65, AR100 0.65.
    targets = [gt([MEDIUM, DIFFICULT], [1, 1], difficult=[False, True])]
    on_difficult = [0.0, 200.0, 60.0, 237.5]
    stats = evaluate([det([MEDIUM, on_difficult], [1, 1], [0.9, 0.8])], targets)
    assert stats["AP"] == pytest.approx(1.0)
    assert stats["AP75"] == pytest.approx(1.0)
    assert stats["AR100"] == pytest.approx(1.0)
    # Missing a difficult object costs nothing either.
    stats = evaluate([det([MEDIUM], [1], [0.9])], targets)
    assert stats["AP"] == pytest.approx(1.0)
    assert stats["AR100"] == pytest.approx(1.0)


def test_a_difficult_object_is_matched_by_iou() -> None:
    # Unlike a crowd region it is matched by IoU: a detection all inside it at IoU 0.11
    # is a false positive above the found object, precision 1/2 at recall 1 (as a crowd
    # region it would be ignored: AP 1).
    targets = [gt([MEDIUM, DIFFICULT], [1, 1], difficult=[False, True])]
    inside = [10.0, 210.0, 30.0, 230.0]
    stats = evaluate([det([inside, MEDIUM], [1, 1], [0.95, 0.9])], targets)
    assert stats["AP"] == pytest.approx(0.5)


def test_every_detection_on_a_difficult_object_is_ignored_as_in_voc() -> None:
    # Two detections on the difficult object above the one on the found object: both
    # ignored, AP 1, as in VOC mAP. (COCOeval lets the object take one: the second was a
    # false positive ranked first, precision 1/2 at recall 1, AP 0.5.)
    targets = [gt([MEDIUM, DIFFICULT], [1, 1], difficult=[False, True])]
    twice = det([DIFFICULT, DIFFICULT, MEDIUM], [1, 1, 1], [0.95, 0.94, 0.9])
    stats = evaluate([twice], targets)
    assert stats["AP"] == pytest.approx(1.0) and stats["AP50"] == pytest.approx(1.0)
    assert stats["AR100"] == pytest.approx(1.0)
    # The second at IoU 0.625 with it (2250 of its 3600 px): ignored at IoU 0.50-0.60,
    # a false positive ranked first from 0.65 on: AP (3 * 1 + 7 * 0.5) / 10.
    partly = [0.0, 200.0, 60.0, 237.5]
    stats = evaluate([det([DIFFICULT, partly, MEDIUM], [1, 1, 1], [0.95, 0.94, 0.9])], targets)
    assert stats["AP"] == pytest.approx(0.65)
    assert stats["AP50"] == pytest.approx(1.0) and stats["AP75"] == pytest.approx(0.5)
    # The second below IoU 0.5 with it (0.11, all inside): a false positive still.
    inside = [10.0, 210.0, 30.0, 230.0]
    stats = evaluate([det([DIFFICULT, inside, MEDIUM], [1, 1, 1], [0.95, 0.94, 0.9])], targets)
    assert stats["AP"] == pytest.approx(0.5) and stats["AP50"] == pytest.approx(0.5)


def test_a_crowd_region_takes_detections_as_before() -> None:
    # Two detections all inside the crowd region are ignored; one with 40% of it inside
    # (40 x 100 px of its 100 x 100) is a false positive ranked first: AP 0.5.
    crowd = [200.0, 200.0, 400.0, 400.0]
    inside = [[210.0, 210.0, 300.0, 300.0], [300.0, 300.0, 390.0, 390.0]]
    straddling = [360.0, 200.0, 460.0, 300.0]
    targets = [gt([MEDIUM, crowd], [1, 1], iscrowd=[False, True])]
    predictions = [det([*inside, MEDIUM], [1, 1, 1], [0.97, 0.96, 0.9])]
    assert evaluate(predictions, targets)["AP"] == pytest.approx(1.0)
    predictions = [det([*inside, straddling, MEDIUM], [1] * 4, [0.97, 0.96, 0.95, 0.9])]
    assert evaluate(predictions, targets)["AP"] == pytest.approx(0.5)


def test_the_area_ranges_ignore_detections_on_difficult_objects_only() -> None:
    # A large difficult object detected twice above the found large object: APl 1 (the
    # second was a false positive ranked first: 0.5), AP 1 (2/3). In APm the three large
    # boxes are out of range and ignored, the medium object found.
    hard = [400.0, 0.0, 520.0, 120.0]  # 14400 px, large
    targets = [gt([MEDIUM, LARGE, hard], [1, 1, 1], difficult=[False, False, True])]
    found = det([hard, hard, LARGE, MEDIUM], [1] * 4, [0.99, 0.98, 0.9, 0.8])
    stats = evaluate([found], targets)
    for name in ("AP", "APm", "APl"):
        assert stats[name] == pytest.approx(1.0), name
    # An object to find out of the range stays COCOeval's: a large one (10000 px)
    # detected twice by medium boxes (9200 px, IoU 0.92) above the medium object. In APm
    # the first is ignored and the second a false positive ranked first up to IoU 0.90;
    # at 0.95 both are: APm (9 * 1/2 + 1/3) / 10.
    large, medium = [0.0, 0.0, 100.0, 100.0], [0.0, 0.0, 100.0, 92.0]
    targets = [gt([MEDIUM, large], [1, 1])]
    found = det([medium, medium, MEDIUM], [1, 1, 1], [0.99, 0.98, 0.9])
    assert evaluate([found], targets)["APm"] == pytest.approx((9 / 2 + 1 / 3) / 10)


def test_a_detection_goes_to_a_free_object_before_a_difficult_one_it_overlaps_more() -> None:
    # What still parts COCO AP from VOC mAP. The first detection overlaps the difficult
    # object by IoU 2/3 and the object to find by 7/13: at IoU 0.5 COCOeval gives it the
    # object to find, so the second, on that object, is a false positive, and the third
    # finds the other object: precision 1 up to recall 1/2, then 2/3: AP50
    # (51 * 1 + 50 * 2/3) / 101. VOC ignores the first (its best overlap is difficult),
    # the second finds the object: AP 1.
    ordinary, hard, across = (
        [0.0, 0.0, 100.0, 100.0],
        [50.0, 0.0, 150.0, 100.0],
        [30.0, 0.0, 130.0, 100.0],
    )
    other = [300.0, 300.0, 400.0, 400.0]
    targets = [gt([ordinary, hard, other], [1, 1, 1], difficult=[False, True, False])]
    predictions = [det([across, ordinary, other], [1, 1, 1], [0.9, 0.8, 0.7])]
    assert evaluate(predictions, targets)["AP50"] == pytest.approx((51 + 50 * 2 / 3) / 101)
    voc = VOCEvaluator(2)
    voc.update(predictions, targets)
    assert voc.compute().ap["1"] == 1.0


def test_difficult_objects_and_crowd_regions_together() -> None:
    # A detection inside the crowd region (IoU 0.2) is ignored as before, the difficult
    # object missed costs nothing, its class-2 twin not difficult is missed: AP 1 for
    # class 1, 0 for class 2.
    crowd = [200.0, 200.0, 400.0, 400.0]
    inside = [210.0, 210.0, 300.0, 300.0]
    targets = [gt([MEDIUM, crowd, DIFFICULT], [1, 1, 1], iscrowd=[0, 1, 0], difficult=[0, 0, 1])]
    stats = evaluate([det([MEDIUM, inside], [1, 1], [0.9, 0.95])], targets, num_classes=2)
    assert stats["AP"] == pytest.approx(1.0)
    targets[0] = gt([MEDIUM, crowd, DIFFICULT, LARGE], [1, 1, 1, 2], iscrowd=[0, 1, 0, 0],
                    difficult=[0, 0, 1, 0])  # fmt: skip
    stats = evaluate([det([MEDIUM, inside], [1, 1], [0.9, 0.95])], targets)
    assert stats["AP"] == pytest.approx(0.5)


def test_images_with_more_objects_of_a_class_than_coco_scores_detections_are_counted() -> None:
    # Image 0: 150 of class 1 (one of them a crowd region) and 5 of class 2; image 1: 101
    # of class 2; image 2: 100 of class 1, as many as COCO scores.
    def grid(count: int) -> list[list[float]]:
        return [[float(10 * k), 0.0, float(10 * k + 8), 8.0] for k in range(count)]

    crowd = [True] + [False] * 154
    targets = [
        gt(grid(155), [1] * 150 + [2] * 5, iscrowd=crowd),
        gt(grid(101), [2] * 101),
        gt(grid(100), [1] * 100),
    ]
    evaluator = COCOEvaluator(3)
    evaluator.update(targets_as_detections(targets), targets)
    assert evaluator.objects_beyond_the_cap() == (2, 149)
    stats = evaluator.compute()
    # Every box detected at score 1, but only the first 100 of a class an image count:
    # in image 0 the crowd region's (ignored) and 99 objects of class 1, in image 1 100
    # of the 101 of class 2.
    assert stats["AR100"] == pytest.approx(((99 + 100) / (149 + 100) + (5 + 100) / 106) / 2)


def separated_case(rng: np.random.Generator) -> tuple[list[dict], list[dict]]:
    """VOC-like images, each object (class 1 or 2, a third of them difficult) in a cell of
    its own of a 4 x 4 grid of 40 px, 5 px or more from the others: a detection that
    reaches IoU 0.5 with one object reaches no other, so that COCOeval's and VOC's choices
    of object agree. Each object is detected 0-3 times near it (its class or the other),
    1-3 detections anywhere; integer boxes, scores on a grid of four (ties)."""
    predictions, targets = [], []
    for _ in range(int(rng.integers(1, 5))):
        cells = rng.permutation(16)[: int(rng.integers(0, 7))]
        corners = 40 * np.stack((cells % 4, cells // 4), axis=1) + rng.integers(
            1, 10, (len(cells), 2)
        )
        gt_boxes = np.concatenate((corners, corners + rng.integers(8, 28, corners.shape)), axis=1)
        gt_labels = rng.integers(1, 3, len(cells))
        copies = rng.integers(0, 4, len(cells))
        near = np.repeat(gt_boxes, copies, axis=0) + rng.integers(-4, 5, (copies.sum(), 4))
        anywhere = rng.integers(0, 150, (int(rng.integers(1, 4)), 2))
        anywhere = np.concatenate(
            (anywhere, anywhere + rng.integers(4, 30, anywhere.shape)), axis=1
        )
        boxes = np.concatenate((near, anywhere)).reshape(-1, 4)
        boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 1)
        labels = np.concatenate((np.repeat(gt_labels, copies), rng.integers(1, 3, len(anywhere))))
        labels[rng.random(len(labels)) < 0.1] ^= 3  # 1 <-> 2
        targets.append(
            {
                "boxes": torch.tensor(gt_boxes, dtype=torch.float32).reshape(-1, 4),
                "labels": torch.tensor(gt_labels, dtype=torch.int64),
                "difficult": torch.tensor(rng.random(len(cells)) < 1 / 3),
            }
        )
        scores = rng.integers(1, 5, len(labels)) / 4
        predictions.append(det(boxes.tolist(), labels.tolist(), scores.tolist()))
    return predictions, targets


def xywh(box: list[float]) -> list[float]:
    return [box[0], box[1], box[2] - box[0], box[3] - box[1]]


def coco_ground_truth(targets: list[dict]) -> tuple[COCO, list[int]]:
    """The targets of classes 1 and 2 as a pycocotools dataset, and its difficult ids."""
    annotations, difficult = [], []
    for image, target in enumerate(targets):
        fields = (target[key].tolist() for key in ("boxes", "labels", "difficult"))
        for box, label, hard in zip(*fields, strict=True):
            bbox = xywh(box)
            annotations.append(
                {"id": len(annotations) + 1, "image_id": image, "category_id": label,
                 "bbox": bbox, "area": bbox[2] * bbox[3], "iscrowd": 0}
            )  # fmt: skip
            if hard:
                difficult.append(len(annotations))
    coco = COCO()
    coco.dataset = {
        "images": [{"id": image} for image in range(len(targets))],
        "categories": [{"id": 1, "name": "1"}, {"id": 2, "name": "2"}],
        "annotations": annotations,
    }
    coco.createIndex()
    return coco, difficult


def coco_outcomes(
    predictions: list[dict], targets: list[dict]
) -> tuple[np.ndarray, dict[tuple[int, int], list[str]]]:
    """COCOeval's IoU thresholds, and each detection's outcome at each of them ("tp",
    "fp" or "ignored", over all areas), by (image, index in the image's prediction)."""
    coco_gt, difficult = coco_ground_truth(targets)
    results, where = [], []
    for image, prediction in enumerate(predictions):
        fields = (prediction[key].tolist() for key in ("boxes", "labels", "scores"))
        for k, (box, label, score) in enumerate(zip(*fields, strict=True)):
            results.append(
                {"image_id": image, "category_id": label, "bbox": xywh(box), "score": score}
            )
            where.append((image, k))
    coco_eval = COCOevalIgnoring(coco_gt, coco_gt.loadRes(results), difficult)
    coco_eval.evaluate()
    outcomes = {}
    for e in coco_eval.evalImgs:
        if e is None or e["aRng"] != coco_eval.params.areaRng[0]:
            continue
        for k, dt_id in enumerate(e["dtIds"]):  # loadRes numbers the results from 1
            outcomes[where[dt_id - 1]] = [
                "ignored" if ignored else "tp" if match else "fp"
                for match, ignored in zip(e["dtMatches"][:, k], e["dtIgnore"][:, k], strict=True)
            ]
    return coco_eval.params.iouThrs, outcomes


@pytest.mark.parametrize("seed", range(60))
def test_detections_are_true_false_or_ignored_as_the_voc_devkit_has_them(seed: int) -> None:
    predictions, targets = separated_case(np.random.default_rng(seed))
    thresholds, coco = coco_outcomes(predictions, targets)
    assert len(coco) == sum(len(p["labels"]) for p in predictions)
    for t, threshold in enumerate(thresholds):
        for label in (1, 2):
            ranked, tp, fp, _ = devkit_outcomes(predictions, targets, label, float(threshold))
            voc = {
                d: "tp" if hit else "fp" if miss else "ignored"
                for d, hit, miss in zip(ranked, tp, fp, strict=True)
            }
            assert {d: coco[d][t] for d in voc} == voc, (label, threshold)
