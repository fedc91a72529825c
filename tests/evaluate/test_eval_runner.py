"""evaluate_detector end to end: an untrained small model, and a perfect stub."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch
from torch import Tensor

from faster_rcnn.data.holdout import Subset
from faster_rcnn.data.synthetic import SyntheticShapes
from faster_rcnn.evaluate.runner import evaluate_detector
from faster_rcnn.models import small
from thread_counts import threads_at_calls


class PerfectDetector:
    """Returns each image's ground truth as its detections and its proposals."""

    def __init__(self, dataset: SyntheticShapes) -> None:
        self.samples = [dataset[i] for i in range(len(dataset))]
        self.num_classes = dataset.num_classes
        self.training = True
        self.calls = 0

    def eval(self) -> PerfectDetector:
        return self.train(False)

    def train(self, mode: bool = True) -> PerfectDetector:
        self.training = mode
        return self

    def detect_with_proposals(
        self, images: list[Tensor], proposal_limit: int | None = None
    ) -> tuple[list[dict[str, Tensor]], list[dict[str, Tensor]]]:
        assert not self.training and proposal_limit == 1000
        self.calls += 1
        detections, proposals = [], []
        for image in images:
            target = next(t for img, t in self.samples if torch.equal(img, image))
            scores = torch.ones(len(target["labels"]))
            detections.append({**target, "scores": scores})
            proposals.append({"boxes": target["boxes"], "scores": scores})
        return detections, proposals


def test_perfect_detector_scores_one_and_keeps_its_mode() -> None:
    dataset = SyntheticShapes(5, image_size=(96, 96), seed=3, empty_fraction=0.0)
    model = PerfectDetector(dataset)
    result = evaluate_detector(model, dataset, batch_size=2)
    assert model.training and model.calls == 3
    flat = result.as_dict()
    assert flat["voc_map50"] == 1.0
    assert flat["voc07_map50"] == 1.0
    assert flat["coco_ap"] == pytest.approx(1.0)
    assert flat["AR@100"] == 1.0
    assert flat["recall@300@0.7"] == 1.0
    assert flat["num_gt"] == sum(len(dataset[i][1]["labels"]) for i in range(5))
    assert set(result.voc.ap) == {"rectangle", "ellipse", "triangle"}
    errors = result.errors
    assert errors is not None and errors.objects == result.voc.npos
    for name in errors.ap:
        assert sum(errors.missed[name].values()) == 0
        assert sum(errors.false_positives[name].values()) == 0


class ThreadRecordingDetector(PerfectDetector):
    """A :class:`PerfectDetector` that notes PyTorch's threads at each forward."""

    def __init__(self, dataset: SyntheticShapes) -> None:
        super().__init__(dataset)
        self.threads: list[int] = []

    def detect_with_proposals(
        self, images: list[Tensor], proposal_limit: int | None = None
    ) -> tuple[list[dict[str, Tensor]], list[dict[str, Tensor]]]:
        self.threads.append(torch.get_num_threads())
        return super().detect_with_proposals(images, proposal_limit)


def test_scoring_runs_on_one_thread_and_the_forward_on_the_users(monkeypatch, two_threads) -> None:
    # 300 images of 100 detections and 1000 proposals each scored in 20.7 s on 2 threads
    # of a loaded 2-core machine, 1.5 s on 1: a batch is many small operations.
    import faster_rcnn.evaluate.runner as runner_module

    scoring = threads_at_calls(monkeypatch, runner_module.VOCEvaluator, "update")
    dataset = SyntheticShapes(4, image_size=(96, 96), seed=3, empty_fraction=0.0)
    model = ThreadRecordingDetector(dataset)
    result = evaluate_detector(model, dataset, batch_size=2)
    assert scoring == [1, 1] and model.threads == [2, 2]
    assert torch.get_num_threads() == 2 and result.as_dict()["voc_map50"] == 1.0


def test_untrained_small_model_runs_and_reports_every_figure() -> None:
    torch.manual_seed(0)
    model = small(num_classes=4)
    dataset = SyntheticShapes(4, image_size=(96, 128), seed=0)
    result = evaluate_detector(model, dataset, batch_size=3)
    assert model.training  # restored: a freshly built model is in training mode
    flat = result.as_dict()
    expected = {
        "voc_map50", "voc07_map50", "coco_ap", "coco_ap50", "coco_ap75", "coco_aps",
        "coco_apm", "coco_apl", "coco_ar1", "coco_ar10", "coco_ar100", "coco_ars",
        "coco_arm", "coco_arl", "recall@100@0.5", "recall@300@0.7", "recall@1000@0.7",
        "AR@100", "AR@300", "AR@1000", "num_gt", "num_images",
    }  # fmt: skip
    assert expected <= set(flat)
    for key, value in flat.items():
        assert isinstance(value, float)
        if not key.startswith(("num_", "proposals_per_image/")):
            assert math.isnan(value) or 0.0 <= value <= 1.0, key
    assert flat["num_images"] == 4.0
    table = result.table()
    assert "VOC mAP@0.5" in table and "COCO AP" in table and "AR@100" in table


class WithImageIds:
    """A dataset whose targets carry COCO image ids 100, 101, ... (as a COCO reader's)."""

    def __init__(self, dataset: SyntheticShapes) -> None:
        self.dataset = dataset
        self.class_names = dataset.class_names
        self.label_to_category_id = {1: 5, 2: 9, 3: 11}

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[Tensor, dict]:
        image, target = self.dataset[index]
        return image, {**target, "image_id": 100 + index}


def write_coco_file(dataset: WithImageIds, path: Path) -> Path:
    """``dataset``'s boxes as a COCO file at ``path``: image ``i`` is id ``100 + i``, its
    labels the categories ``dataset.label_to_category_id`` gives (of ids 5, 9 and 11)."""
    annotations = []
    for i in range(len(dataset)):
        target = dataset[i][1]
        for box, label in zip(target["boxes"].tolist(), target["labels"].tolist(), strict=True):
            x1, y1, x2, y2 = box
            annotations.append(
                {"id": len(annotations) + 1, "image_id": 100 + i, "iscrowd": 0,
                 "category_id": dataset.label_to_category_id[label],
                 "bbox": [x1, y1, x2 - x1, y2 - y1]}
            )  # fmt: skip
    images = [{"id": 100 + i} for i in range(len(dataset))]
    categories = [{"id": c, "name": str(c)} for c in (5, 9, 11)]
    path.write_text(
        json.dumps({"images": images, "categories": categories, "annotations": annotations})
    )
    return path


def test_coco_against_an_annotation_file(tmp_path) -> None:
    base = SyntheticShapes(3, image_size=(96, 96), seed=5, empty_fraction=0.0)
    dataset = WithImageIds(base)
    coco_file = write_coco_file(dataset, tmp_path / "instances.json")
    result = evaluate_detector(PerfectDetector(base), dataset, coco_annotation_file=coco_file)
    assert result.coco["AP"] == pytest.approx(1.0)
    # The identity mapping would send label 1 to category 1, which the file lacks.
    dataset.label_to_category_id = {1: 9, 2: 5, 3: 11}
    swapped = evaluate_detector(PerfectDetector(base), dataset, coco_annotation_file=coco_file)
    assert swapped.coco["AP"] < 0.9


def test_a_held_out_part_is_scored_against_the_annotation_file_by_its_ids(tmp_path) -> None:
    """Images 0 and 2 held out (evaluate --val-fraction, or a split.json) were renumbered
    0 and 1, ids the file lacks ("image id 0 is not in the COCO annotation file"), and
    lost the dataset's label -> category id map: the part keeps both."""
    base = SyntheticShapes(3, image_size=(96, 96), seed=5, empty_fraction=0.0)
    dataset = WithImageIds(base)
    dataset.label_to_category_id = {1: 9, 2: 5, 3: 11}  # not the file's id order
    coco_file = write_coco_file(dataset, tmp_path / "instances.json")
    held = Subset(dataset, [0, 2])
    assert [held[k][1]["image_id"] for k in range(2)] == [100, 102]
    result = evaluate_detector(PerfectDetector(base), held, coco_annotation_file=coco_file)
    assert result.coco["AP"] == pytest.approx(1.0) and result.num_images == 2


def test_limits_no_image_reached_are_named_not_printed() -> None:
    dataset = SyntheticShapes(5, image_size=(96, 96), seed=3, empty_fraction=0.0)
    result = evaluate_detector(PerfectDetector(dataset), dataset, batch_size=2)
    most = max(len(dataset[i][1]["boxes"]) for i in range(5))  # proposals = the boxes
    assert result.proposals["proposals_per_image/max"] == most < 100
    assert result.detection_proposals is None  # a model without a config
    table = result.table()
    assert "proposals evaluated up to 1000 per image:" in table
    assert "@300, @1000 not measured: no image had more than 100 proposals" in table
    assert "recall@100@0.7: 1.000" in table
    assert "AR@300" not in table and "recall@1000" not in table
    assert "recall by size at IoU 0.7, 100 proposals: small 1.000" in table
    # The dict keeps every key: the largest limit's figures are what up to 1000 gives.
    assert result.proposals["AR@1000"] == result.proposals["AR@100"] == 1.0


def test_error_breakdown_counts_every_object_once() -> None:
    """On an untrained model's detections: the breakdown counts VOC's objects, no class
    misses more objects than it has, and no class has more false positives than
    detections."""
    torch.manual_seed(0)
    model = small(num_classes=4)
    dataset = SyntheticShapes(4, image_size=(96, 128), seed=0, empty_fraction=0.0)
    result = evaluate_detector(model, dataset, batch_size=2)
    errors = result.errors
    assert errors is not None
    assert errors.objects == result.voc.npos
    assert sum(errors.objects.values()) == result.proposals["num_gt"]
    for name, objects in errors.objects.items():
        assert all(count >= 0 for count in errors.missed[name].values())
        assert sum(errors.missed[name].values()) <= objects
        assert sum(errors.false_positives[name].values()) <= result.voc.num_detections[name]
    assert "missed objects at IoU 0.5" in result.table()


class WithCrowdRegions(WithImageIds):
    """Every image also holds a crowd region of class 1 (COCO's ``iscrowd``) in its
    bottom-right corner."""

    def __getitem__(self, index: int) -> tuple[Tensor, dict]:
        image, target = self.dataset[index]
        region = torch.tensor([[88.0, 88.0, 96.0, 96.0]])
        crowd = torch.zeros(len(target["labels"]) + 1, dtype=torch.bool)
        crowd[-1] = True
        return image, {
            "boxes": torch.cat((target["boxes"], region)),
            "labels": torch.cat((target["labels"], torch.tensor([1]))),
            "iscrowd": crowd,
        }


def test_crowd_regions_are_no_objects_to_any_figure() -> None:
    """A detector that finds every object and none of the crowd regions scores 1 in
    every figure, the error breakdown misses nothing, and every figure counts the same
    objects."""
    base = SyntheticShapes(3, image_size=(96, 96), seed=5, empty_fraction=0.0)
    dataset = WithCrowdRegions(base)
    assert all(dataset[i][1]["iscrowd"].any() for i in range(len(dataset)))
    result = evaluate_detector(PerfectDetector(base), dataset, batch_size=2)
    assert result.voc.map == result.voc07.map == 1.0
    assert result.voc.npos["rectangle"] == sum(
        int((base[i][1]["labels"] == 1).sum()) for i in range(len(base))
    )
    assert result.coco["AP"] == pytest.approx(1.0)
    assert result.proposals["AR@100"] == 1.0
    errors = result.errors
    assert errors is not None and errors.objects == result.voc.npos
    assert sum(errors.objects.values()) == result.proposals["num_gt"]
    assert all(sum(errors.missed[name].values()) == 0 for name in errors.ap)


class BlindToLastClass(PerfectDetector):
    """A perfect detector trained without the dataset's last class: it never reports it."""

    def __init__(self, dataset: SyntheticShapes) -> None:
        super().__init__(dataset)
        self.num_classes = dataset.num_classes - 1

    def detect_with_proposals(
        self, images: list[Tensor], proposal_limit: int | None = None
    ) -> tuple[list[dict[str, Tensor]], list[dict[str, Tensor]]]:
        detections, proposals = super().detect_with_proposals(images, proposal_limit)
        kept = [{k: v[d["labels"] < self.num_classes] for k, v in d.items()} for d in detections]
        return kept, proposals


def test_a_class_the_model_was_not_trained_on_scores_zero() -> None:
    """The dataset's classes go on past the model's: the last one, with boxes and never
    detected, has AP 0 and is missed wholly; the others score as before."""
    dataset = SyntheticShapes(6, image_size=(96, 96), seed=3, empty_fraction=0.0)
    model = BlindToLastClass(dataset)
    result = evaluate_detector(model, dataset, batch_size=2, class_names=dataset.class_names)
    assert model.num_classes == 3 and dataset.class_names[-1] == "triangle"
    assert result.voc.npos["triangle"] > 0 and result.voc.num_detections["triangle"] == 0
    assert result.voc.ap == {"rectangle": 1.0, "ellipse": 1.0, "triangle": 0.0}
    assert result.voc.map == pytest.approx(2 / 3)
    assert result.coco["AP"] == pytest.approx(2 / 3)
    errors = result.errors
    assert (
        errors is not None and sum(errors.missed["triangle"].values()) == errors.objects["triangle"]
    )


def test_a_coco_file_of_another_class_count_is_told_from_the_models_classes(tmp_path) -> None:
    """Scored against a COCO file of 2 categories, data with a class past a model's 2 was
    refused as "the model predicts 3 classes": it predicts 2, the data adds the third."""
    dataset = SyntheticShapes(2, image_size=(96, 96), seed=3, empty_fraction=0.0)
    coco_file = tmp_path / "instances.json"
    categories = [{"id": 1, "name": "rectangle"}, {"id": 2, "name": "ellipse"}]
    coco_file.write_text(json.dumps({"images": [], "categories": categories, "annotations": []}))
    said = (
        f"{coco_file} has 2 categories but the model predicts 2 classes, and the data has 1 "
        "more, ['triangle']: 3 classes are scored"
    )
    with pytest.raises(ValueError, match=re.escape(said) + "$"):
        evaluate_detector(
            BlindToLastClass(dataset),
            dataset,
            class_names=dataset.class_names,
            coco_annotation_file=coco_file,
        )
    with pytest.raises(ValueError, match=r"but the model predicts 3 classes$"):
        evaluate_detector(PerfectDetector(dataset), dataset, coco_annotation_file=coco_file)


def test_the_summary_says_why_figures_are_undefined() -> None:
    # Images without objects: every AP and recall n/a, said once at the top; no "nan".
    empty = SyntheticShapes(3, image_size=(96, 96), seed=3, empty_fraction=1.0)
    table = evaluate_detector(PerfectDetector(empty), empty).table()
    assert "nan" not in table
    assert table.splitlines()[:3] == [
        "images: 3",
        "no object to find in them (none annotated, or each difficult or a crowd region): "
        "every AP and recall is n/a, undefined without objects",
        "VOC mAP@0.5:   n/a (area)    n/a (11-point)",
    ]
    # No image at all.
    table = evaluate_detector(PerfectDetector(empty), []).table()
    assert table.splitlines()[1] == (
        "no image was scored: every AP and recall is n/a, undefined without objects"
    )
    # Objects, none of them large (96 x 96 images): the COCO line says why APl is n/a.
    dataset = SyntheticShapes(3, image_size=(96, 96), seed=3, empty_fraction=0.0)
    lines = evaluate_detector(PerfectDetector(dataset), dataset).table().splitlines()
    assert lines[1].startswith("VOC mAP@0.5: 1.000")
    assert lines[2].endswith("/   n/a  AR100: 1.000  (n/a: no object of that size)")


class WithFirstObjectDifficult:
    """A dataset whose first object in each image is difficult, and a detector that finds
    every other one."""

    def __init__(self, dataset: SyntheticShapes) -> None:
        self.dataset = dataset
        self.class_names = dataset.class_names

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[Tensor, dict]:
        image, target = self.dataset[index]
        difficult = torch.zeros(len(target["labels"]), dtype=torch.bool)
        difficult[0] = True
        return image, {**target, "difficult": difficult}


def test_difficult_objects_missed_cost_nothing_in_any_figure() -> None:
    base = SyntheticShapes(4, image_size=(96, 96), seed=3, empty_fraction=0.0)
    model = PerfectDetector(base)
    model.samples = [(image, {k: v[1:] for k, v in t.items()}) for image, t in model.samples]
    result = evaluate_detector(model, WithFirstObjectDifficult(base))
    assert result.voc.map == 1.0
    assert result.coco["AP"] == pytest.approx(1.0)
    assert result.coco["AR100"] == pytest.approx(1.0)
    assert result.proposals["AR@100"] == 1.0


class CrowdedImages:
    """Two 64 x 64 images: 120 objects of class 1 in the first, 3 in the second."""

    num_classes = 2
    class_names = ("dot",)

    def __init__(self) -> None:
        generator = torch.Generator().manual_seed(0)
        self.samples = []
        for count in (120, 3):
            corners = torch.rand(count, 2, generator=generator) * 56
            target = {
                "boxes": torch.cat((corners, corners + 8), dim=1),
                "labels": torch.ones(count, dtype=torch.int64),
            }
            self.samples.append((torch.rand(3, 64, 64, generator=generator), target))

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Tensor, dict[str, Tensor]]:
        return self.samples[index]


def test_images_holding_more_objects_of_a_class_than_coco_scores_are_told() -> None:
    dataset = CrowdedImages()
    result = evaluate_detector(PerfectDetector(dataset), dataset, batch_size=2)
    assert result.coco_capped == (1, 120)
    assert result.voc.map == 1.0 and result.coco["AR100"] == pytest.approx(103 / 123)
    assert (
        "  COCO scores each class's best 100 detections an image (its maxDets): in 1 of 2 "
        "images a class has more objects (up to 120), at most 100 of which it can count as "
        "found; VOC mAP scores every detection"
    ) in result.table().splitlines()
    shapes = SyntheticShapes(2, image_size=(96, 96), seed=3, empty_fraction=0.0)
    uncapped = evaluate_detector(PerfectDetector(shapes), shapes, batch_size=2)
    assert uncapped.coco_capped[0] == 0 and "maxDets" not in uncapped.table()
