import json
import math
import re
from pathlib import Path

import pytest
import torch
from PIL import Image

from faster_rcnn.cli import main
from faster_rcnn.cli.train import named_repeats
from faster_rcnn.data.augment import Augmented, RandomHorizontalFlip
from faster_rcnn.data.repeat_factor import (
    REPEAT_FACTORS_FILE,
    Repeated,
    class_image_shares,
    image_labels,
    repeat_factors,
    repeated_indices,
)
from faster_rcnn.data.yolo import YOLODetection

# Ten images: every one holds class 1, the first nine class 2 too, the last class 3 (10 %).
LABELS = [[1, 2, 2]] * 9 + [[1, 3]]


def test_a_class_share_counts_images_not_boxes() -> None:
    assert class_image_shares(LABELS) == {1: 1.0, 2: 0.9, 3: 0.1}
    assert class_image_shares([[], [4, 4, 4, 4]]) == {4: 0.5}


def test_an_image_repeats_as_its_rarest_class_asks() -> None:
    # Class 3 is in 10 % of the images: sqrt(0.4 / 0.1) = 2; classes 1 and 2 are in more
    # than 40 %, so an image of them alone stays once.
    assert repeat_factors(LABELS, 0.4) == [1.0] * 9 + [2.0]
    # At 0.95 class 2 (90 %) asks sqrt(0.95 / 0.9) = 1.0274 and class 3 sqrt(9.5) = 3.0822.
    factors = repeat_factors(LABELS, 0.95)
    assert factors[:9] == pytest.approx([1.0274] * 9, abs=1e-4)
    assert factors[9] == pytest.approx(3.0822, abs=1e-4)
    # An image without objects is listed once; class 1 in 60 % asks sqrt(0.8 / 0.6).
    factors = repeat_factors([[], [1], [1], [1], [2]], 0.8)
    assert factors == pytest.approx([1.0, 1.1547, 1.1547, 1.1547, 2.0], abs=1e-4)


@pytest.mark.parametrize("threshold", [0.0, 1.5, -0.2])
def test_a_threshold_outside_the_shares_is_refused(threshold: float) -> None:
    with pytest.raises(ValueError, match="repeat threshold"):
        repeat_factors(LABELS, threshold)


def test_whole_factors_list_each_index_that_often_in_order() -> None:
    assert repeated_indices([1.0, 3.0, 1.0, 2.0]) == [0, 1, 1, 1, 2, 3, 3]


def test_a_fraction_is_an_extra_listing_that_often_drawn_from_the_seed() -> None:
    factors = [1.3] * 10_000
    indices = repeated_indices(factors, seed=5)
    # 3000 extra listings expected, standard deviation sqrt(10000 * 0.3 * 0.7) = 46.
    assert abs(len(indices) - 13_000) < 4 * 46
    assert set(torch.tensor(indices).bincount().tolist()) == {1, 2}
    assert repeated_indices(factors, seed=5) == indices
    assert repeated_indices(factors, seed=6) != indices


def _slide_set(root: Path, images: list[list[int]] = LABELS) -> Path:
    """A YOLO train split of 16 x 24 images labelled as ``images`` (ten, ``LABELS``, by
    default; classes 1..3 are YOLO's 0..2), image ``i`` filled with grey level ``10 i``."""
    for folder in ("images/train", "labels/train"):
        (root / folder).mkdir(parents=True)
    for index, labels in enumerate(images):
        Image.new("RGB", (24, 16), (10 * index,) * 3).save(root / f"images/train/i{index}.png")
        lines = [f"{label - 1} 0.{2 + k} 0.5 0.25 0.5" for k, label in enumerate(labels)]
        (root / f"labels/train/i{index}.txt").write_text("\n".join(lines) + "\n")
    return root


def test_a_repeated_dataset_reads_the_listed_items_and_augments_each_apart(
    tmp_path: Path,
) -> None:
    data = YOLODetection(_slide_set(tmp_path), "train")
    assert image_labels(data) == LABELS
    repeated = Repeated(data, [0, 9, 9])
    assert len(repeated) == 3 and repeated.class_names == data.class_names
    assert repeated.image_size(2) == (16, 24)
    assert torch.equal(repeated.target(1)["labels"], torch.tensor([1, 3]))
    assert torch.equal(repeated[1][0], data[9][0]) and torch.equal(repeated[2][0], data[9][0])
    # Each listing is an item of its own, so a flip is drawn for each: over twenty epochs
    # the two listings of image 9 are flipped differently in some.
    flipped = Augmented(repeated, [RandomHorizontalFlip(0.5)], seed=0)
    differ = []
    for epoch in range(20):
        flipped.set_epoch(epoch)
        differ.append(not torch.equal(flipped[1][1]["boxes"], flipped[2][1]["boxes"]))
    assert any(differ) and not all(differ)


def test_train_lists_the_rare_class_s_images_more_often(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    read = []
    item = Repeated.__getitem__

    def recorded(self: Repeated, index: int):
        read.append(self.indices[index])
        return item(self, index)

    monkeypatch.setattr(Repeated, "__getitem__", recorded)
    root = _slide_set(tmp_path / "data")
    argv = ["train", "--data", str(root), "--preset", "small", "--steps", "11", "--batch-size", "1"]
    argv += ["--repeat-threshold", "0.4", "--recipe", "preset", "--out", str(tmp_path / "run")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "'class2' (in 10% of the images) 2.00 times" in out
    assert "an epoch reads 11 items of 10 images" in out
    # One epoch: every image once, the one holding class 3 twice.
    assert sorted(read) == [*range(9), 9, 9]


def test_train_says_when_no_class_is_that_rare(tmp_path: Path, capsys) -> None:
    root = _slide_set(tmp_path / "data")
    argv = ["train", "--data", str(root), "--preset", "small", "--steps", "1"]
    argv += ["--repeat-threshold", "0.05", "--recipe", "preset", "--out", str(tmp_path / "run")]
    assert main(argv) == 0
    assert "repeat: every class is in at least 5% of the images" in capsys.readouterr().out


def test_train_names_the_rarest_class_first(tmp_path: Path, capsys) -> None:
    # At 0.95 class 3 ('class2', 10 %) asks 3.08 and class 2 ('class1', 90 %) 1.03.
    root = _slide_set(tmp_path / "data")
    argv = ["train", "--data", str(root), "--preset", "small", "--steps", "1"]
    argv += ["--repeat-threshold", "0.95", "--recipe", "preset", "--out", str(tmp_path / "run")]
    assert main(argv) == 0
    assert (
        "repeat: an image is listed as often as its rarest class asks, 'class2' (in 10% of the "
        "images) 3.08 times, 'class1' (in 90%) 1.03: an epoch reads"
    ) in capsys.readouterr().out


def test_train_names_the_most_repeated_few_and_records_every_class(tmp_path: Path, capsys) -> None:
    """Image k holds classes 1..k+1 (at most 8): class j is in 11 - j of the ten images.
    At 0.95 classes 2..8 ('class1'..'class7') are repeated, sqrt(0.95 / share) times: the
    line names five, the run's folder records all eight."""
    root = _slide_set(tmp_path / "data", [list(range(1, min(k + 1, 8) + 1)) for k in range(10)])
    out = tmp_path / "run"
    argv = ["train", "--data", str(root), "--preset", "small", "--steps", "1", "--recipe"]
    argv += ["preset", "--out", str(out)]
    assert main([*argv, "--repeat-threshold", "0.95"]) == 0
    printed = capsys.readouterr().out
    assert (
        "repeat: an image is listed as often as its rarest class asks, 'class7' (in 30% of the "
        "images) 1.78 times, 'class6' (in 40%) 1.54, 'class5' (in 50%) 1.38, 'class4' (in "
        "60%) 1.26, 'class3' (in 70%) 1.16, and 2 more classes, 1.09 down to 1.03 times "
        f"(every class in {out / REPEAT_FACTORS_FILE}, written with the model): an epoch "
        "reads "
    ) in printed
    record = json.loads((out / REPEAT_FACTORS_FILE).read_text())
    items = re.search(r"an epoch reads (\d+) items of 10 images", printed)
    assert items is not None
    assert (record["threshold"], record["images"], record["items"]) == (0.95, 10, int(items[1]))
    shares = {f"class{j - 1}": (11 - j) / 10 for j in range(8, 0, -1)}
    assert list(record["classes"]) == list(shares)  # the most repeated first
    for name, share in shares.items():
        factor = max(1.0, math.sqrt(0.95 / share))
        assert record["classes"][name] == pytest.approx({"share": share, "factor": factor})
    # A run that lists each image once leaves no record of an earlier one's repeats.
    assert main([*argv, "--repeat-threshold", "0"]) == 0
    assert not (out / REPEAT_FACTORS_FILE).exists()


def test_the_repeat_line_names_every_class_where_one_more_would_be_left_out() -> None:
    names = [f"c{label}" for label in range(1, 9)]
    shares = {label: label / 100 for label in range(1, 9)}
    factors = {label: 10 - label for label in range(1, 9)}
    six = named_repeats(names, shares, factors, list(range(1, 7)), Path("run"))
    assert six.endswith("'c5' (in 5%) 5.00, 'c6' (in 6%) 4.00") and "more" not in six
    seven = named_repeats(names, shares, factors, list(range(1, 8)), Path("run"))
    assert seven.endswith(
        "'c5' (in 5%) 5.00, and 2 more classes, 4.00 down to 3.00 times (every class in "
        f"{Path('run') / REPEAT_FACTORS_FILE}, written with the model)"
    )


def test_the_recipe_repeats_where_a_class_is_in_under_a_tenth_of_the_images(
    tmp_path: Path, capsys
) -> None:
    # Class 3 ('class2') in 1 of 11 images (9 %): listed sqrt(0.4 / (1 / 11)) = 2.10 times.
    root = _slide_set(tmp_path / "data", [*LABELS[:9], [1, 2], [1, 3]])
    argv = ["train", "--data", str(root), "--preset", "small", "--steps", "1"]
    assert main([*argv, "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert (
        "  train.repeat_threshold = 0.4: the class 'class2' is in 9.1% of the training images: "
        "an image is listed max(1, sqrt(0.4 / share)) times an epoch for its rarest class"
    ) in out
    assert "'class2' (in 9% of the images) 2.10 times" in out
    assert main([*argv, "--repeat-threshold", "0", "--out", str(tmp_path / "off")]) == 0
    out = capsys.readouterr().out
    assert "repeat_threshold" not in out and "repeat:" not in out and "recipe (" in out
    # Class 3 in 1 of 10 images: a tenth, not under it.
    other = _slide_set(tmp_path / "ten")
    argv = ["train", "--data", str(other), "--preset", "small", "--steps", "1"]
    assert main([*argv, "--out", str(tmp_path / "run10")]) == 0
    out = capsys.readouterr().out
    assert "repeat_threshold" not in out and "repeat:" not in out


def test_train_refuses_a_threshold_over_one(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["train", "--data", "synthetic:2", "--steps", "1", "--repeat-threshold", "1.5"])
    assert info.value.code == 2
    assert "--repeat-threshold" in capsys.readouterr().err
