import pytest
import torch

from faster_rcnn.cli import main
from faster_rcnn.data.augment import Augmented
from faster_rcnn.data.coco import drop_crowd
from faster_rcnn.data.difficult import without_difficult
from faster_rcnn.data.loader import iterate_batches
from faster_rcnn.data.random_crop import RandomCrop, boxes_in_window
from faster_rcnn.data.synthetic import SyntheticShapes


def _target() -> dict:
    return {
        "boxes": torch.tensor(
            [
                [10.0, 10.0, 50.0, 30.0],  # centre (30, 20): inside, cut on the left
                [70.0, 40.0, 90.0, 60.0],  # centre (80, 50): inside, whole
                [100.0, 10.0, 160.0, 40.0],  # centre (130, 25): right of the window
                [60.0, 0.0, 80.0, 16.0],  # centre (70, 8): above the window
            ]
        ),
        "labels": torch.tensor([1, 2, 3, 1]),
        "difficult": torch.tensor([False, True, False, False]),
        "image_id": 5,
    }


def test_boxes_are_moved_cut_and_filtered_by_their_centre() -> None:
    target = _target()
    # The window x 20..120, y 10..70: a 100 x 60 image.
    out = boxes_in_window(target, (20, 10, 120, 70))
    # Box 1: (10 - 20, 10 - 10, 50 - 20, 30 - 10) = (-10, 0, 30, 20), cut at x = 0.
    # Box 2: (50, 30, 70, 50), whole. Box 3's centre x 130 >= 120 and box 4's centre y
    # 8 < 10: dropped with their labels and difficult flags.
    assert torch.equal(
        out["boxes"], torch.tensor([[0.0, 0.0, 30.0, 20.0], [50.0, 30.0, 70.0, 50.0]])
    )
    assert torch.equal(out["labels"], torch.tensor([1, 2]))
    assert torch.equal(out["difficult"], torch.tensor([False, True]))
    assert out["image_id"] == 5
    assert torch.equal(target["boxes"], _target()["boxes"])  # input untouched


def test_a_box_over_the_far_edges_is_cut_to_the_window() -> None:
    target = {"boxes": torch.tensor([[30.0, 20.0, 200.0, 90.0]]), "labels": torch.tensor([4])}
    # Centre (115, 55) lies in the window x 0..120, y 0..60; the box is cut to its size.
    out = boxes_in_window(target, (0, 0, 120, 60))
    assert torch.equal(out["boxes"], torch.tensor([[30.0, 20.0, 120.0, 60.0]]))


def test_an_image_without_boxes_stays_without_boxes() -> None:
    target = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}
    out = boxes_in_window(target, (3, 4, 10, 12))
    assert out["boxes"].shape == (0, 4) and out["labels"].shape == (0,)


def test_the_crop_is_the_image_under_the_window_and_the_boxes_follow_it() -> None:
    # A bright 8 x 6 block on a dark 40 x 60 image, boxed: wherever the window falls, a
    # kept box frames the block's pixels in the crop exactly (cut where the window cuts).
    image = torch.zeros(3, 40, 60)
    image[:, 20:26, 30:38] = 1.0
    target = {"boxes": torch.tensor([[30.0, 20.0, 38.0, 26.0]]), "labels": torch.tensor([1])}
    kept = 0
    for seed in range(40):
        crop = RandomCrop(0.5, p=1.0)
        cropped, out = crop(image, target, torch.Generator().manual_seed(seed))
        height, width = cropped.shape[-2:]
        scale = height / 40
        assert 0.5 - 1 / 40 <= scale <= 1.0 and abs(width / 60 - scale) <= 1 / 40
        if len(out["boxes"]) == 0:
            continue
        kept += 1
        x1, y1, x2, y2 = (int(v) for v in out["boxes"][0].tolist())
        inside = cropped[0, y1:y2, x1:x2]
        assert inside.numel() > 0 and bool((inside == 1.0).all())
        assert float(cropped[0].sum()) == inside.numel()  # no bright pixel outside the box
    assert 0 < kept < 40  # some windows keep the block's centre, some do not


def test_the_scales_drawn_cover_the_range_and_half_the_images_are_left_whole() -> None:
    image, target = torch.zeros(3, 200, 300), _target()
    crop = RandomCrop(0.6)
    heights = [
        crop(image, target, torch.Generator().manual_seed(s))[0].shape[1] for s in range(400)
    ]
    whole = sum(h == 200 for h in heights)
    cropped = [h / 200 for h in heights if h != 200]
    assert 160 <= whole <= 240  # p = 0.5: 200 expected, sd 10
    assert min(cropped) < 0.65 and max(cropped) > 0.95 and min(cropped) >= 0.6


def test_no_crop_returns_the_inputs_themselves() -> None:
    image, target = torch.rand(3, 10, 12), _target()
    out_image, out_target = RandomCrop(0.5, p=0.0)(image, target, torch.Generator())
    assert out_image is image and out_target is target


@pytest.mark.parametrize("min_scale", [0.0, -0.5, 1.5, float("nan")])
def test_a_scale_outside_zero_to_one_is_refused(min_scale: float) -> None:
    with pytest.raises(ValueError, match=r"min_scale must be in \(0, 1\]"):
        RandomCrop(min_scale)


@pytest.mark.parametrize("p", [-0.1, 1.5])
def test_a_probability_outside_zero_to_one_is_refused(p: float) -> None:
    with pytest.raises(ValueError, match=r"crop probability must be in 0\.\.1"):
        RandomCrop(0.5, p)


def test_cropped_batches_train_the_loader_as_any_other() -> None:
    # The loader groups by the dataset's aspect ratio: crops keep it, and the batches
    # repeat for the same seed.
    data = Augmented(SyntheticShapes(6, image_size=(64, 96), seed=0), [RandomCrop(0.5)], seed=3)
    first = next(iterate_batches(data, batch_size=2, seed=1))
    again = next(iterate_batches(data, batch_size=2, seed=1))
    for image, image_again in zip(first[0], again[0], strict=True):
        assert torch.equal(image, image_again)
        assert abs(image.shape[-1] / image.shape[-2] - 1.5) < 0.05


def test_train_reads_cropped_images(tmp_path, monkeypatch) -> None:
    seen = []
    call = RandomCrop.__call__

    def recorded(self, image, target, generator):
        out, target = call(self, image, target, generator)
        seen.append((image.shape, out.shape))
        return out, target

    monkeypatch.setattr(RandomCrop, "__call__", recorded)
    argv = ["train", "--data", "synthetic:4", "--steps", "4", "--batch-size", "1"]
    argv += ["--min-size", "96", "--max-size", "128", "--random-crop", "0.5"]
    assert main([*argv, "--out", str(tmp_path)]) == 0
    assert len(seen) == 4 and any(shape != out for shape, out in seen)
    assert (tmp_path / "model.safetensors").exists()


def test_train_refuses_a_crop_scale_outside_zero_to_one(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["train", "--data", "synthetic:2", "--steps", "1", "--random-crop", "1.5"])
    assert info.value.code == 2
    assert "--random-crop: must be between 0 and 1, got 1.5" in capsys.readouterr().err


def test_every_per_box_entry_is_filtered_by_one_rule() -> None:
    # Difficult, crowd and cropped-out boxes leave with all of their per-box entries,
    # COCO's "area" too; entries of the image stay.
    target = {
        "boxes": torch.tensor([[0.0, 0.0, 4.0, 4.0], [10.0, 10.0, 20.0, 20.0]]),
        "labels": torch.tensor([1, 2]),
        "difficult": torch.tensor([True, False]),
        "iscrowd": torch.tensor([True, False]),
        "area": torch.tensor([16.0, 100.0]),
        "image_id": 3,
    }
    for kept in (
        without_difficult(target),
        drop_crowd(target),
        boxes_in_window(target, (8, 8, 30, 30)),
    ):
        assert kept["labels"].tolist() == [2] and kept["area"].tolist() == [100.0]
        assert kept["image_id"] == 3
