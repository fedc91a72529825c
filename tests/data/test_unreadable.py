"""Unreadable images: skipped with a warning and a count, in loaders, training and evaluation."""

import math
import warnings
from pathlib import Path

import pytest
import torch

from faster_rcnn import FasterRCNN
from faster_rcnn.cli import main
from faster_rcnn.data.dataset import MissingImageError, UnreadableImageError
from faster_rcnn.data.loader import (
    GroupedBatchSampler,
    iterate_batches,
    make_eval_loader,
)
from faster_rcnn.data.synthetic import SyntheticShapes
from faster_rcnn.data.unreadable import Skipped, UnreadableLog
from faster_rcnn.data.yolo import YOLODetection
from faster_rcnn.evaluate.runner import evaluate_detector
from faster_rcnn.insight.draw import to_pil
from faster_rcnn.models import small_config
from faster_rcnn.train.checkpoint import TrainingCheckpoint
from faster_rcnn.train.train_config import TrainConfig
from faster_rcnn.train.trainer import Trainer

SHAPES = SyntheticShapes(5, image_size=(64, 64), seed=3, max_objects=2)


def yolo_tree(root: Path, bad: dict[int, bytes | None]) -> YOLODetection:
    """The shapes as a YOLO dataset; image ``i`` in ``bad`` gets those bytes (None: it is
    deleted after the dataset is opened, as a file vanishing mid-run)."""
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    (root / "classes.txt").write_text("\n".join(SHAPES.class_names) + "\n")
    for i in range(len(SHAPES)):
        image, target = SHAPES[i]
        to_pil(image).save(root / "images" / f"{i}.png")
        lines = []
        for (x1, y1, x2, y2), label in zip(
            target["boxes"].tolist(), target["labels"].tolist(), strict=True
        ):
            cx, cy, w, h = (x1 + x2) / 128, (y1 + y2) / 128, (x2 - x1) / 64, (y2 - y1) / 64
            lines.append(f"{label - 1} {cx} {cy} {w} {h}")
        (root / "labels" / f"{i}.txt").write_text("\n".join(lines) + "\n")
    for i, data in bad.items():
        if data is not None:
            path = root / "images" / f"{i}.png"
            path.write_bytes(data if data else path.read_bytes()[:200])  # b"": truncated
    dataset = YOLODetection(root)
    for i, data in bad.items():
        if data is None:
            (root / "images" / f"{i}.png").unlink()
    return dataset


def test_the_reader_raises_its_own_errors(tmp_path):
    dataset = yolo_tree(tmp_path, {1: b"", 2: b"not an image", 3: None})
    with pytest.raises(UnreadableImageError, match=r"1\.png") as truncated:
        dataset[1]
    assert truncated.value.path == tmp_path / "images" / "1.png"
    with pytest.raises(UnreadableImageError, match=r"cannot read image .*2\.png"):
        dataset[2]
    with pytest.raises(MissingImageError, match=r"3\.png does not exist"):
        dataset[3]
    assert isinstance(MissingImageError(Path("x"), "m"), FileNotFoundError)


@pytest.mark.parametrize("workers", [0, 1])
def test_evaluation_loader_leaves_unreadable_images_out_and_says_which(tmp_path, workers):
    dataset = yolo_tree(tmp_path, {1: b"", 4: None})
    batches = list(make_eval_loader(dataset, 2, num_workers=workers, skip_unreadable=True))
    assert [len(images) for images, _ in batches] == [1, 2, 0]
    assert [t["image_id"] for _, targets in batches for t in targets] == [0, 2, 3]
    skipped = [entry for batch in batches for entry in batch.unreadable]
    assert [(s.index, Path(s.file).name, s.replacement) for s in skipped] == [
        (1, "1.png", None),
        (4, "4.png", None),
    ]
    assert "does not exist" in skipped[1].reason


def test_without_skipping_the_loader_raises(tmp_path):
    dataset = yolo_tree(tmp_path, {1: b""})
    with pytest.raises(UnreadableImageError, match=r"1\.png"):
        list(make_eval_loader(dataset, 2))


@pytest.mark.parametrize("workers", [0, 1])
def test_training_batches_replace_an_unreadable_image_by_the_next_readable_one(tmp_path, workers):
    dataset = yolo_tree(tmp_path, {2: b"", 3: b"junk"})
    sampler = GroupedBatchSampler([0] * 5, 2, seed=7)
    expected = list(sampler)
    stream = iterate_batches(
        dataset, 2, seed=7, num_workers=workers, group_by_aspect_ratio=False, skip_unreadable=True
    )
    for indices in expected:
        batch = next(stream)
        # Items 2 and 3 are unreadable: both become item 4.
        used = [4 if i in (2, 3) else i for i in indices]
        assert [t["image_id"] for t in batch[1]] == used
        for image, i in zip(batch[0], used, strict=True):
            assert torch.equal(image, dataset[i][0])
        assert sorted(s.index for s in batch.unreadable) == sorted(
            i for i in indices if i in (2, 3)
        )
        assert all(s.replacement is not None for s in batch.unreadable)


def test_the_log_warns_once_per_file_counts_every_time_and_sums_up():
    log = UnreadableLog()
    entries = [Skipped(0, "a.png", "cannot read image a.png: truncated")] * 3
    with pytest.warns(UserWarning, match=r"^joint, step 4: cannot read image a\.png: truncated"):
        log.note(entries[:1], "joint, step 4")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        log.note(entries[1:], "joint, step 9")
    with pytest.warns(UserWarning, match="b.png"):
        log.note([Skipped(1, "b.png", "image file b.png does not exist")], "joint, step 10")
    assert log.files == ("a.png", "b.png")
    assert log.summary() == "2 unreadable images skipped (4 times): a.png, b.png"
    too_long = Skipped(2, "c.png", "c.png: 600x1 is too elongated", kind="unresizable")
    with pytest.warns(UserWarning, match="c.png"):
        log.note([too_long], "joint, step 11")
    assert log.files == ("a.png", "b.png", "c.png")
    assert log.files_of("unresizable") == ("c.png",)
    assert log.summary() == (
        "2 unreadable images skipped (4 times): a.png, b.png; 1 unresizable image skipped: c.png"
    )
    assert UnreadableLog().summary() == ""
    with pytest.raises(UnreadableImageError, match=r"^evaluate: cannot read .* \(strict\)$"):
        UnreadableLog(strict=True).note(entries[:1], "evaluate")


def tiny_model() -> FasterRCNN:
    cfg = small_config(SHAPES.num_classes).replace(
        transform={"min_size": (64,), "max_size": 64},
        rpn={"pre_nms_top_n_train": 100, "post_nms_top_n_train": 100},
        roi_heads={"batch_size_per_image": 16},
    )
    torch.manual_seed(0)
    return FasterRCNN.from_config(cfg)


CFG = TrainConfig(steps=6, batch_size=1, lr=0.01, warmup_steps=1, checkpoint_every=None)


def test_training_goes_on_past_an_unreadable_image_and_counts_it(tmp_path):
    dataset = yolo_tree(tmp_path / "data", {1: b""})
    # With batch size 1, the image comes up once per epoch of 5 steps.
    expected = sum(1 for b in batch_stream(1, epochs=2)[: CFG.steps] if b == [1])
    trainer = Trainer(tiny_model(), dataset, CFG)
    with pytest.warns(UserWarning, match=r"joint, step \d: cannot read image .*1\.png"):
        history = trainer.fit()
    assert len(history) == CFG.steps
    assert all(math.isfinite(v) for record in history for v in record.values())
    assert trainer.unreadable.times_skipped == {str(tmp_path / "data/images/1.png"): expected}


def batch_stream(batch_size: int, epochs: int) -> list[list[int]]:
    """The indices of the training batches of the 5 images, epoch after epoch (seed 0)."""
    sampler = GroupedBatchSampler([0] * 5, batch_size, seed=0)
    stream = []
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        stream += list(sampler)
    return stream


def test_strict_training_stops_at_the_unreadable_image_with_a_checkpoint(tmp_path):
    dataset = yolo_tree(tmp_path / "data", {1: b""})
    step = batch_stream(1, epochs=1).index([1])
    trainer = Trainer(tiny_model(), dataset, CFG.replace(skip_unreadable=False), out_dir=tmp_path)
    with pytest.raises(UnreadableImageError, match=rf"^joint, step {step}: .*1\.png.*\(strict\)"):
        trainer.fit()
    assert TrainingCheckpoint.load(tmp_path / "joint", tiny_model()).step == step


def test_training_with_no_readable_image_is_one_error(tmp_path):
    dataset = yolo_tree(tmp_path / "data", dict.fromkeys(range(5), b""))
    with pytest.raises(UnreadableImageError, match=r"none of the 5 images can be read"):
        Trainer(tiny_model(), dataset, CFG).fit()


def test_evaluation_leaves_the_unreadable_image_out_of_every_figure(tmp_path):
    model = tiny_model()
    dataset = yolo_tree(tmp_path / "bad", {2: b""})
    with pytest.warns(UserWarning, match=r"evaluate: cannot read image .*2\.png"):
        result = evaluate_detector(model, dataset, batch_size=2)
    assert result.num_images == 4
    assert result.unreadable == (str(tmp_path / "bad/images/2.png"),)
    assert "images: 4 (1 unreadable, left out)" in result.table()
    readable = [dataset[i] for i in (0, 1, 3, 4)]
    reference = evaluate_detector(model, readable, batch_size=2, class_names=SHAPES.class_names)
    assert result.voc.map == pytest.approx(reference.voc.map, nan_ok=True)
    assert result.proposals == pytest.approx(reference.proposals, nan_ok=True)
    assert result.as_dict()["num_unreadable_images"] == 1
    with pytest.raises(UnreadableImageError, match=r"2\.png.*\(strict\)"):
        evaluate_detector(model, dataset, batch_size=2, strict=True)


def test_the_command_line_skips_and_sums_up_or_stops_with_strict(tmp_path, capsys):
    data = str(tmp_path / "data")
    yolo_tree(tmp_path / "data", {3: b"not an image"})
    argv = ["train", "--data", data, "--steps", "6", "--batch-size", "2", "--no-flip"]
    argv += ["--min-size", "64", "--max-size", "64", "--split", "train"]
    assert main([*argv, "--out", str(tmp_path / "run")]) == 0
    out, err = capsys.readouterr()
    bad = tmp_path / "data/images/3.png"
    assert f"joint: 1 unreadable image skipped (2 times): {bad}" in out
    # (The unreadable image held the one triangle: a warning names the class too.)
    warned = [line for line in err.splitlines() if "cannot read image" in line]
    assert warned == [
        f"faster-rcnn: warning: joint, step {step}: cannot read image {bad}: not in an image "
        "format PIL knows; skipped, the next readable image used"
        for step in [next(i for i, b in enumerate(batch_stream(2, epochs=1)) if 3 in b)]
    ]
    assert main([*argv, "--out", str(tmp_path / "strict"), "--strict"]) == 2
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith(f"(strict); checkpoint in {tmp_path / 'strict/joint'}")
    )
    model = str(tmp_path / "run/model.safetensors")
    assert main(["evaluate", "--model", model, "--data", data, "--split", "train"]) == 0
    assert "images: 4 (1 unreadable, left out)" in capsys.readouterr().out


def test_the_alternating_scheme_warns_once_and_sums_up_its_four_steps(tmp_path, capsys):
    data = str(tmp_path / "data")
    yolo_tree(tmp_path / "data", {3: b"not an image"})
    argv = ["train", "--data", data, "--steps", "12", "--batch-size", "2", "--no-flip"]
    argv += ["--min-size", "64", "--max-size", "64", "--split", "train", "--scheme", "alternating"]
    assert main([*argv, "--out", str(tmp_path / "run")]) == 0
    out, err = capsys.readouterr()
    bad = tmp_path / "data/images/3.png"
    # Each of the four steps (4, 2, 4 and 2 steps) starts the batch stream afresh.
    stream = batch_stream(2, epochs=2)
    times = sum(1 for steps in (4, 2, 4, 2) for batch in stream[:steps] if 3 in batch)
    assert f"alternating: 1 unreadable image skipped ({times} times): {bad}" in out
    assert len([line for line in err.splitlines() if "cannot read image" in line]) == 1
