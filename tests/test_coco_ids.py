"""A COCO dataset's own ids through the command line: ``predict --data`` writes them, and
``evaluate --coco-annotations`` scores against the file (with or without a model); a YOLO
dataset's class ids, as its label files number them."""

import contextlib
import io
import json
from pathlib import Path

import pytest
from pycocotools.coco import COCO

from faster_rcnn.cli import main
from faster_rcnn.data.synthetic import SyntheticShapes
from faster_rcnn.insight.draw import to_pil
from faster_rcnn.model import FasterRCNN
from faster_rcnn.models import preset_config
from faster_rcnn.train.checkpoint import save_model

TINY = ["--min-size", "96", "--max-size", "128"]
# Ids as real COCO files have them: not contiguous, not starting at 1 or 0.
CATEGORY_IDS = {"rectangle": 5, "ellipse": 9, "triangle": 20}
IMAGE_IDS = {"train": [101, 102, 103, 104], "test": [205, 207]}


def write_coco_split(root: Path, split: str, category_ids: dict[str, int] = CATEGORY_IDS) -> Path:
    """A Roboflow-style split folder of synthetic images, its categories and their ids
    ``category_ids`` (the boxes of other classes left out); returns its annotation file."""
    folder = root / split
    folder.mkdir(parents=True)
    shapes = SyntheticShapes(len(IMAGE_IDS[split]), image_size=(80, 120), seed=len(split))
    names = SyntheticShapes.class_names
    images, annotations = [], []
    for k, image_id in enumerate(IMAGE_IDS[split]):
        image, target = shapes[k]
        to_pil(image).save(folder / f"{image_id}.png")
        images.append({"id": image_id, "file_name": f"{image_id}.png", "width": 120, "height": 80})
        for (x1, y1, x2, y2), label in zip(
            target["boxes"].tolist(), target["labels"].tolist(), strict=True
        ):
            if names[label - 1] not in category_ids:
                continue
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": category_ids[names[label - 1]],
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "iscrowd": 0,
                }
            )
    categories = [{"id": i, "name": n} for n, i in category_ids.items()]
    file = folder / "_annotations.coco.json"
    file.write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": categories})
    )
    return file


@pytest.fixture(scope="module")
def coco_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("coco")
    test_file = write_coco_split(root, "test")
    write_coco_split(root, "train")
    model = root / "run" / "model.safetensors"
    argv = ["train", "--data", str(root), "--steps", "1", "--batch-size", "2", *TINY]
    assert main([*argv, "--out", str(model.parent)]) == 0
    return root, test_file, model


def test_predict_writes_the_datasets_image_and_category_ids(coco_run, tmp_path):
    root, _, model = coco_run
    argv = ["predict", "--model", str(model), "--data", str(root), "--split", "test"]
    assert main([*argv, "--out", str(tmp_path), "--score", "0"]) == 0
    results = json.loads((tmp_path / "detections.json").read_text())
    assert results, "an untrained model still returns low-scored detections"
    assert {r["image_id"] for r in results} <= set(IMAGE_IDS["test"])
    for r in results:
        assert r["category_id"] == CATEGORY_IDS[r["category_name"]]
        assert Path(r["file_name"]).name == f"{r['image_id']}.png"


def test_predict_writes_a_yolo_datasets_class_ids(coco_run, tmp_path):
    _, _, model = coco_run
    root = tmp_path / "yolo"
    for folder in ("images/test", "labels/test"):
        (root / folder).mkdir(parents=True)
    (root / "classes.txt").write_text("triangle\nrectangle\n")  # the model's in another order
    for k in range(2):
        to_pil(SyntheticShapes(1, image_size=(80, 120), seed=k)[0][0]).save(
            root / "images" / "test" / f"{k}.png"
        )
        (root / "labels" / "test" / f"{k}.txt").write_text("1 0.5 0.5 0.2 0.2\n")
    argv = ["predict", "--model", str(model), "--data", str(root), "--split", "test"]
    assert main([*argv, "--out", str(tmp_path / "out"), "--score", "0"]) == 0
    results = json.loads((tmp_path / "out" / "detections.json").read_text())
    written = {(r["category_name"], r["category_id"]) for r in results}
    # The model's ellipse is no class of the data: drawn, not written.
    assert written == {("triangle", 0), ("rectangle", 1)}


def test_predict_refuses_an_out_among_a_datasets_images(coco_run, tmp_path, capsys):
    """``--out`` a YOLO split's image folder: the pictures a.png and a_proposals.png
    joined the split, a.png with a.jpg's label file: 1 image of 1 box became 3 of 2. The
    image is a link there, as a converted copy of a dataset may hold them."""
    _, _, model = coco_run
    root = tmp_path / "yolo"
    images = root / "images" / "test"
    for folder in (images, root / "labels" / "test"):
        folder.mkdir(parents=True)
    (root / "classes.txt").write_text("triangle\n")
    to_pil(SyntheticShapes(1, image_size=(80, 120))[0][0]).save(tmp_path / "a.jpg")
    (images / "a.jpg").symlink_to(tmp_path / "a.jpg")
    (root / "labels" / "test" / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    argv = ["predict", "--model", str(model), "--data", str(root), "--out", str(images)]
    assert main(argv) == 2
    assert capsys.readouterr().err == (
        f"faster-rcnn: error: --out {images} holds images of {root}: the pictures predict "
        "writes there would join them; choose another --out\n"
    )
    assert sorted(p.name for p in images.iterdir()) == ["a.jpg"]


def test_generated_images_are_not_scored_against_a_coco_file(coco_run, capsys):
    _, test_file, model = coco_run
    argv = ["evaluate", "--model", str(model), "--data", "synthetic:2"]
    assert main([*argv, "--coco-annotations", str(test_file)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"faster-rcnn: error: --coco-annotations {test_file}: synthetic:2 is generated, not "
        "image files of that annotation file"
    )


def test_evaluate_scores_a_detections_file_against_the_coco_file(coco_run, tmp_path, capsys):
    _, test_file, _ = coco_run
    truth = json.loads(test_file.read_text())["annotations"]
    perfect = [{**a, "score": 1.0} for a in truth]
    detections = tmp_path / "detections.json"
    detections.write_text(json.dumps(perfect))
    argv = ["evaluate", "--detections", str(detections), "--coco-annotations", str(test_file)]
    assert main([*argv, "--out", str(tmp_path / "e")]) == 0
    metrics = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert metrics["coco_ap"] == pytest.approx(1.0) and metrics["coco_ap50"] == pytest.approx(1.0)
    # Half the objects found: recall at 100 detections halves.
    half = [d for k, d in enumerate(perfect) if k % 2 == 0]
    detections.write_text(json.dumps(half))
    assert main([*argv, "--out", str(tmp_path / "h")]) == 0
    metrics = json.loads((tmp_path / "h" / "metrics.json").read_text())
    assert metrics["coco_ar100"] == pytest.approx(len(half) / len(perfect), abs=0.1)
    assert "AP 0." in capsys.readouterr().out


def test_a_detections_files_undefined_figures_are_written_as_null(coco_run, tmp_path, capsys):
    """APl and ARl of images without large objects are undefined: metrics.json had them
    as NaN, which is no JSON (json.loads takes it, jq and JavaScript do not); --model's
    metrics.json writes null."""
    _, test_file, _ = coco_run
    truth = json.loads(test_file.read_text())["annotations"]
    detections = tmp_path / "detections.json"
    detections.write_text(json.dumps([{**a, "score": 1.0} for a in truth]))
    argv = ["evaluate", "--detections", str(detections), "--coco-annotations", str(test_file)]
    assert main([*argv, "--out", str(tmp_path / "e")]) == 0
    text = (tmp_path / "e" / "metrics.json").read_text()
    metrics = json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in {text}"))
    assert metrics["coco_apl"] is None and metrics["coco_arl"] is None
    assert metrics["coco_ap"] == pytest.approx(1.0)
    assert "APl n/a" in capsys.readouterr().out


def assert_its_boxes_score_one(data: dict, truth: Path, tmp_path: Path) -> list[str]:
    """Assert that the annotations of ``data`` (``truth``'s), as detections, score COCO AP
    and AR100 1 through ``evaluate --detections``; the command's arguments, but ``--out``."""
    detections = tmp_path / "detections.json"
    detections.write_text(json.dumps([{**a, "score": 1.0} for a in data["annotations"]]))
    argv = ["evaluate", "--detections", str(detections), "--coco-annotations", str(truth)]
    assert main([*argv, "--out", str(tmp_path / "e")]) == 0
    metrics = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert metrics["coco_ap"] == pytest.approx(1.0) and metrics["coco_ar100"] == pytest.approx(1.0)
    return argv


@pytest.mark.parametrize("first_id", [0, 1])
def test_annotation_ids_from_0_or_repeated_score_as_any_others(coco_run, tmp_path, first_id):
    """pycocotools reads an annotation id of 0 as "not matched" and indexes one of two
    annotations of the same id: the file's ids are renumbered, so the ground truth itself,
    as detections, scores 1 with Roboflow's ids from 0 and with an id repeated."""
    _, test_file, _ = coco_run
    data = json.loads(test_file.read_text())
    for k, annotation in enumerate(data["annotations"]):
        annotation["id"] = first_id + k
    data["annotations"][-1]["id"] = data["annotations"][0]["id"]
    truth = tmp_path / "truth.json"
    truth.write_text(json.dumps(data))
    assert_its_boxes_score_one(data, truth, tmp_path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"bbox": None}, "annotation 1 of 205.png has bbox None, not [x, y, width, height]"),
        (
            {"bbox": [1, 2, 3]},
            "annotation 1 of 205.png has bbox [1, 2, 3], not [x, y, width, height]",
        ),
        ({"image_id": 205.0}, "annotation 1 has image_id 205.0, not an integer or a string"),
        ({"category_id": 6}, "annotation 1 of 205.png has category_id 6, not one of [5, 9, 20]"),
    ],
)
def test_a_bad_ground_truth_annotation_is_named_in_one_line(
    coco_run, tmp_path, capsys, change, message
):
    _, test_file, _ = coco_run
    data = json.loads(test_file.read_text())
    data["annotations"][0].update(change)
    truth = tmp_path / "truth.json"
    truth.write_text(json.dumps(data))
    detections = tmp_path / "detections.json"
    detections.write_text("[]")
    argv = ["evaluate", "--detections", str(detections), "--coco-annotations", str(truth)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"faster-rcnn: error: {truth}: {message}"


def test_an_annotation_whose_image_id_no_image_has_is_left_out_as_the_reader_does(
    coco_run, tmp_path, capsys
):
    """Refused ('annotation 99 has unknown image_id 999') where the reader leaves it out:
    left out in the reader's warning, the others scored as without it."""
    _, test_file, _ = coco_run
    data = json.loads(test_file.read_text())
    detections = tmp_path / "detections.json"
    detections.write_text(json.dumps([{**a, "score": 1.0} for a in data["annotations"]]))
    data["annotations"].append({"id": 99, "image_id": 999, "category_id": 5, "bbox": [1, 2, 3, 4]})
    truth = tmp_path / "truth.json"
    truth.write_text(json.dumps(data))
    argv = ["evaluate", "--detections", str(detections), "--coco-annotations", str(truth)]
    assert main([*argv, "--out", str(tmp_path / "e")]) == 0
    assert capsys.readouterr().err.splitlines() == [
        f"faster-rcnn: warning: {truth}: 1 annotation is left out, no image has its image_id: "
        "annotation 99 (image_id 999)"
    ]
    metrics = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert metrics["coco_ap"] == pytest.approx(1.0) and metrics["coco_ar100"] == pytest.approx(1.0)


def test_evaluate_warns_once_of_the_coco_file_it_reads_as_data_and_scores_against(
    coco_run, tmp_path, capsys
):
    """``--data`` and ``--coco-annotations`` the same file: its reader and the evaluation
    against it each warned of the annotation no image has, and of the box of a negative
    width read between its corners (as VOC reads xmax < xmin): once each."""
    _, test_file, model = coco_run
    data = json.loads(test_file.read_text())
    data["annotations"].append({"id": 99, "image_id": 999, "category_id": 5, "bbox": [1, 2, 3, 4]})
    data["annotations"].append({"id": 98, "image_id": 205, "category_id": 5, "bbox": [9, 2, -5, 4]})
    (tmp_path / "test").mkdir()
    for image in data["images"]:
        (tmp_path / "test" / image["file_name"]).write_bytes(
            (test_file.parent / image["file_name"]).read_bytes()
        )
    truth = tmp_path / "test" / "_annotations.coco.json"
    truth.write_text(json.dumps(data))
    capsys.readouterr()
    argv = ["evaluate", "--model", str(model), "--data", str(tmp_path), "--split", "test"]
    assert main([*argv, "--coco-annotations", str(truth), "--out", str(tmp_path / "e")]) == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert warned == [
        f"faster-rcnn: warning: {truth}: 1 annotation is left out, no image has its image_id: "
        "annotation 99 (image_id 999)",
        f"faster-rcnn: warning: {truth}: 1 box with reversed corners swapped "
        "(annotation 98 of 205.png [4, 2, 9, 6] on 120x80)",
    ]


def test_an_unreadable_annotation_file_is_named(tmp_path, capsys):
    truth, detections = tmp_path / "truth.json", tmp_path / "detections.json"
    truth.write_text('{"images": [')
    detections.write_text("[]")
    argv = ["evaluate", "--detections", str(detections), "--coco-annotations", str(truth)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"faster-rcnn: error: {truth}: not valid json") and "\n" not in err


def test_the_annotation_file_of_another_split_is_refused(coco_run, tmp_path, capsys):
    """Both splits' files number their images from 1 in the same way; the file names
    tell them apart."""
    root, _, model = coco_run
    train = json.loads((root / "train" / "_annotations.coco.json").read_text())
    for image, test_id in zip(train["images"], IMAGE_IDS["test"], strict=False):
        image["id"] = test_id
    other = tmp_path / "train.json"
    other.write_text(json.dumps({**train, "annotations": []}))
    argv = ["evaluate", "--model", str(model), "--data", str(root), "--split", "test"]
    assert main([*argv, "--coco-annotations", str(other), "--out", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err.strip()
    refusal = (
        f"faster-rcnn: error: {other}: image 205 is 101.png, not 205.png: is it the "
        "annotation file of another split?"
    )
    assert err == refusal
    # So is scoring predict's detections of the test images against it.
    argv = ["predict", "--model", str(model), "--data", str(root), "--split", "test"]
    assert main([*argv, "--out", str(tmp_path / "p"), "--score", "0"]) == 0
    detections = str(tmp_path / "p" / "detections.json")
    assert main(["evaluate", "--detections", detections, "--coco-annotations", str(other)]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == refusal


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"image_id": 999}, "detection 0: image_id 999 is not in"),
        ({"category_id": 1}, "detection 0: category_id 1 is not in"),
        ({"bbox": [1, 2, 3]}, "detection 0: bbox must be [x, y, width, height]"),
        ({"bbox": [1, 2, 3, -4]}, "detection 0: bbox [1, 2, 3, -4] has a negative width"),
        ({"score": "0.5"}, "detection 0: score must be a finite number, got '0.5'"),
    ],
)
def test_a_bad_detection_is_named_in_one_line(coco_run, tmp_path, capsys, entry, message):
    _, test_file, _ = coco_run
    detection = {"image_id": 205, "category_id": 5, "bbox": [1, 2, 3, 4], "score": 0.5}
    detections = tmp_path / "detections.json"
    detections.write_text(json.dumps([{**detection, **entry}]))
    argv = ["evaluate", "--detections", str(detections), "--coco-annotations", str(test_file)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("faster-rcnn: error: ") and message in err and "\n" not in err


def test_evaluate_a_model_against_the_coco_file_scores_as_against_the_targets(coco_run, tmp_path):
    root, test_file, model = coco_run
    argv = ["evaluate", "--model", str(model), "--data", str(root), "--split", "test"]
    assert main([*argv, "--out", str(tmp_path / "targets")]) == 0
    assert main([*argv, "--coco-annotations", str(test_file), "--out", str(tmp_path / "f")]) == 0
    by_targets = json.loads((tmp_path / "targets" / "metrics.json").read_text())
    by_file = json.loads((tmp_path / "f" / "metrics.json").read_text())
    # The file has no segmentation areas, so both take the box areas: the same figures.
    for name in ("coco_ap", "coco_ap50", "coco_ar100"):
        assert by_file[name] == pytest.approx(by_targets[name], nan_ok=True), name


def test_evaluate_needs_a_model_or_a_detections_file(capsys):
    assert main(["evaluate", "--data", "synthetic:2"]) == 2
    assert "evaluate needs --model or --detections" in capsys.readouterr().err


def test_a_split_without_images_is_refused_by_train_and_evaluate(coco_run, tmp_path, capsys):
    """A COCO file that lists no image: train said "no training images" (beside another
    split, it trained on that one alone), evaluate wrote a metrics.json of nulls and
    exited 0. Opening it now names the file."""
    _, _, model = coco_run
    root = tmp_path / "data"
    listed = write_coco_split(root, "train")
    write_coco_split(root, "test")
    listed.write_text(
        json.dumps({**json.loads(listed.read_text()), "images": [], "annotations": []})
    )
    said = (
        f"faster-rcnn: error: {listed}: the train split holds no image (its 'images' list is empty)"
    )
    argv = ["train", "--data", str(root), "--steps", "1", *TINY]
    assert main([*argv, "--out", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err.strip() == said
    argv = ["evaluate", "--model", str(model), "--data", str(root), "--split", "train"]
    assert main([*argv, "--out", str(tmp_path / "e")]) == 2
    assert capsys.readouterr().err.strip() == said
    assert not (tmp_path / "e" / "metrics.json").exists()


def scored_both_ways(
    model: Path, root: Path, test_file: Path, tmp_path: Path, capsys
) -> tuple[dict, str]:
    """``evaluate``'s metrics of the test split of ``root`` against its targets and what it
    printed to stderr, checked to give the COCO AP it gives against ``test_file``."""
    argv = ["evaluate", "--model", str(model), "--data", str(root), "--split", "test"]
    assert main([*argv, "--out", str(tmp_path / "e")]) == 0
    err = capsys.readouterr().err
    metrics = json.loads((tmp_path / "e" / "metrics.json").read_text())
    argv += ["--coco-annotations", str(test_file), "--out", str(tmp_path / "f")]
    assert main(argv) == 0
    with_file = json.loads((tmp_path / "f" / "metrics.json").read_text())
    assert with_file["coco_ap"] == pytest.approx(metrics["coco_ap"], abs=1e-6)
    return metrics, err


def detections_of_test_split(model: Path, root: Path, out: Path) -> list[dict]:
    """``predict --data``'s detections of the test split of ``root``, every score."""
    argv = ["predict", "--model", str(model), "--data", str(root), "--split", "test"]
    assert main([*argv, "--out", str(out), "--score", "0"]) == 0
    return json.loads((out / "detections.json").read_text())


def test_a_split_with_some_of_the_models_classes_in_its_own_order_is_scored(
    coco_run, tmp_path, capsys
):
    """A test file that lists only two of the model's three classes, numbered in another
    order (ellipse 1, rectangle 2; the model's labels are rectangle 1, ellipse 2,
    triangle 3), as a tool exporting each split on its own writes it: its labels are
    renumbered by name, evaluate scores it with and without --coco-annotations, and
    predict writes its own category ids, leaving out the class it lacks."""
    _, _, model = coco_run
    root = tmp_path / "data"
    test_file = write_coco_split(root, "test", {"ellipse": 1, "rectangle": 2})
    metrics, _ = scored_both_ways(model, root, test_file, tmp_path, capsys)
    assert metrics["voc_ap50/triangle"] is None  # no box of it: no AP, out of the mean
    assert metrics["voc_ap50/ellipse"] is not None and metrics["voc_ap50/rectangle"] is not None

    results = detections_of_test_split(model, root, tmp_path / "p")
    assert results and {r["category_name"] for r in results} <= {"ellipse", "rectangle"}
    for r in results:
        assert r["category_id"] == {"ellipse": 1, "rectangle": 2}[r["category_name"]]


def test_a_split_with_classes_the_model_lacks_scores_them_as_never_found(tmp_path, capsys):
    """A model trained without ellipses, scored on a test file with ellipses and a listed
    category with no box: evaluate said the split had classes the model lacked and
    stopped; now it warns, scores ellipse 0 (never detected) and leaves the box-less
    category out of the mean, against the targets and against the file alike; predict
    writes the detections of the classes it has, with the file's ids."""
    root = tmp_path / "data"
    write_coco_split(root, "train", {"rectangle": 5, "triangle": 20})
    test_file = write_coco_split(root, "test", {**CATEGORY_IDS, "hexagon": 30})
    model = tmp_path / "run" / "model.safetensors"
    argv = ["train", "--data", str(root), "--split", "train", "--steps", "1", *TINY]
    assert main([*argv, "--batch-size", "2", "--out", str(model.parent)]) == 0
    capsys.readouterr()
    metrics, err = scored_both_ways(model, root, test_file, tmp_path, capsys)
    assert (
        f"faster-rcnn: warning: {root} (test) has classes the model was not trained on, "
        "['ellipse', 'hexagon']: they are scored as never found" in err
    )
    assert metrics["voc_ap50/ellipse"] == 0.0 and metrics["voc_ap50/hexagon"] is None
    assert metrics["voc_ap50/triangle"] is None  # the model's, but no box of it in test
    assert metrics["voc_map50"] == pytest.approx(metrics["voc_ap50/rectangle"] / 2)

    results = detections_of_test_split(model, root, tmp_path / "p")
    assert results and {r["category_name"] for r in results} <= {"rectangle", "triangle"}
    for r in results:
        assert r["category_id"] == CATEGORY_IDS[r["category_name"]]


def test_evaluate_refuses_data_with_more_classes_than_a_model_without_names(tmp_path, capsys):
    """A model that names no classes (a checkpoint converted without --classes) has its
    outputs taken for the data's first classes; a box of a class past them stopped
    evaluate after detecting, with "image 0, box 0: ground truth label 3 is outside
    1..2", naming no file or class."""
    model = tmp_path / "model.safetensors"
    save_model(FasterRCNN.from_config(preset_config("small", 3)), model)
    write_coco_split(tmp_path / "data", "test")
    data = tmp_path / "data"
    argv = ["evaluate", "--model", str(model), "--data", str(data), "--out", str(tmp_path / "e")]
    assert main(argv) == 2
    assert capsys.readouterr().err == (
        f"faster-rcnn: error: {model} names no classes: its 2 outputs are taken for the "
        f"first of the 3 classes of {data}, ['rectangle', 'ellipse', 'triangle']; name its "
        "classes (faster-rcnn convert CHECKPOINT --classes NAME ...)\n"
    )
    assert not (tmp_path / "e").exists()


def test_images_held_out_of_a_coco_file_are_scored_against_it(coco_run, tmp_path):
    """evaluate --val-fraction on a COCO file with --coco-annotations that file stopped
    at "has no image of id 0": the held-out images were renumbered from 0. They keep the
    file's ids, and score as against their targets."""
    root, _, model = coco_run
    train_file = root / "train" / "_annotations.coco.json"
    argv = ["evaluate", "--model", str(model), "--data", str(train_file), "--val-fraction", "0.5"]
    assert main([*argv, "--out", str(tmp_path / "targets")]) == 0
    assert main([*argv, "--coco-annotations", str(train_file), "--out", str(tmp_path / "f")]) == 0
    by_targets = json.loads((tmp_path / "targets" / "metrics.json").read_text())
    by_file = json.loads((tmp_path / "f" / "metrics.json").read_text())
    assert by_file["num_images"] == by_targets["num_images"] == 2
    for name in ("coco_ap", "coco_ap50", "coco_ar100"):
        assert by_file[name] == pytest.approx(by_targets[name], nan_ok=True), name


def test_predict_writes_a_string_image_id_as_the_file_does_and_evaluate_scores_it(
    coco_run, tmp_path, capsys
):
    """A test file of string image ids ('img_205'): predict wrote the numbers the reader
    gives them (1 and 2), which pycocotools, given the file, does not know, and
    evaluate --detections refused the file's own ids. Both take the file's ids now."""
    _, test_file, model = coco_run
    data = json.loads(test_file.read_text())
    for image in data["images"]:
        image["id"] = f"img_{image['id']}"
    for annotation in data["annotations"]:
        annotation["image_id"] = f"img_{annotation['image_id']}"
    (tmp_path / "data" / "test").mkdir(parents=True)
    for image in data["images"]:
        (tmp_path / "data" / "test" / image["file_name"]).write_bytes(
            (test_file.parent / image["file_name"]).read_bytes()
        )
    truth = tmp_path / "data" / "test" / "_annotations.coco.json"
    truth.write_text(json.dumps(data))
    results = detections_of_test_split(model, tmp_path / "data", tmp_path / "p")
    assert results and {r["image_id"] for r in results} <= {"img_205", "img_207"}
    for r in results:
        assert Path(r["file_name"]).name == f"{r['image_id'][4:]}.png"
    capsys.readouterr()
    with contextlib.redirect_stdout(io.StringIO()):
        COCO(str(truth)).loadRes(str(tmp_path / "p" / "detections.json"))  # its ids known
    argv = assert_its_boxes_score_one(data, truth, tmp_path)
    argv[2] = str(tmp_path / "p" / "detections.json")
    assert main(argv) == 0
