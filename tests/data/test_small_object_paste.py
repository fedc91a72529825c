import pytest
import torch

from faster_rcnn.cli import main
from faster_rcnn.data.small_object_paste import SmallObjectPaste, fade_mask, with_copies


def _scene() -> tuple[torch.Tensor, dict]:
    """A 60 x 80 grey image holding a 10 x 10 textured object of class 2 at (20, 20) and
    a 20 x 20 block of class 1 at (50, 30)."""
    image = torch.full((3, 60, 80), 0.5)
    image[:, 20:30, 20:30] = torch.rand(3, 10, 10, generator=torch.Generator().manual_seed(1))
    image[:, 30:50, 50:70] = 0.9
    target = {
        "boxes": torch.tensor([[20.0, 20.0, 30.0, 30.0], [50.0, 30.0, 70.0, 50.0]]),
        "labels": torch.tensor([2, 1]),
        "difficult": torch.tensor([True, False]),
        "image_id": 7,
    }
    return image, target


def _overlap_area(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    low = torch.maximum(a[:, None, :2], b[None, :, :2])
    high = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    return (high - low).clamp(min=0).prod(dim=2)


def test_each_copy_is_the_object_itself_where_no_box_lies() -> None:
    image, target = _scene()
    kept = image.clone()
    out, grown = SmallObjectPaste([2], copies=2, p=1.0)(image, target, torch.Generator())
    boxes = grown["boxes"]
    assert len(boxes) == 4 and torch.equal(boxes[:2], target["boxes"])
    # The copies take their source's label and difficult flag; other entries stay.
    assert grown["labels"].tolist() == [2, 1, 2, 2]
    assert grown["difficult"].tolist() == [True, False, True, True]
    assert grown["image_id"] == 7
    for box in boxes[2:].int().tolist():
        x1, y1, x2, y2 = box
        assert (x2 - x1, y2 - y1) == (10, 10)
        assert torch.equal(out[:, y1:y2, x1:x2], kept[:, 20:30, 20:30])
    # No copy overlaps a box, its image's or the other copy's.
    areas = _overlap_area(boxes, boxes).fill_diagonal_(0)
    assert areas.max() == 0
    assert torch.equal(image, kept) and len(target["boxes"]) == 2  # inputs untouched


def test_the_margin_fades_into_the_place_the_copy_lands_on() -> None:
    image, target = _scene()
    out, grown = SmallObjectPaste([2], copies=1, p=1.0)(image, target, torch.Generator())
    x1, y1, x2, _ = grown["boxes"][2].int().tolist()
    # Side 10, margin round(0.15 * 10) = 2: the copied margin is the grey 0.5 around the
    # object, landing on grey 0.5 (the drawn place is free of boxes), so it stays 0.5.
    assert torch.allclose(out[:, y1 - 2 : y1, x1 - 2 : x2 + 2], torch.full((3, 2, 14), 0.5))
    # Over a dark place the margin's outermost pixels weigh 1/3, the next 2/3.
    dark = torch.zeros(3, 60, 80)
    dark[:, 20:30, 20:30] = image[:, 20:30, 20:30]
    out, grown = SmallObjectPaste([2], copies=1, p=1.0)(dark, target, torch.Generator())
    x1, y1, *_ = grown["boxes"][2].int().tolist()
    assert out[0, y1 + 5, x1 - 2].item() == 0.0  # the source's margin there is dark too
    lit = dark.clone()
    lit[:, 18:32, 18:32] += 0.3  # the source's margin lit, the object's pixels too
    out, grown = SmallObjectPaste([2], copies=1, p=1.0)(lit, target, torch.Generator())
    x1, y1, *_ = grown["boxes"][2].int().tolist()
    for (row, col), weight in {(5, -2): 1 / 3, (5, -1): 2 / 3, (-2, -2): 1 / 9}.items():
        under = lit[0, y1 + row, x1 + col].item()
        expected = weight * 0.3 + (1 - weight) * under
        assert out[0, y1 + row, x1 + col].item() == pytest.approx(expected)


def test_fade_mask_by_hand() -> None:
    mask = fade_mask((2, 1), (0, 3), (6, 5))
    rows = torch.tensor([1 / 3, 2 / 3, 1, 1, 1, 1 / 2], dtype=torch.float64)
    cols = torch.tensor([1, 1, 3 / 4, 2 / 4, 1 / 4], dtype=torch.float64)
    assert torch.allclose(mask, rows[:, None] * cols[None, :])


def test_no_copy_where_no_place_is_free_or_no_object_is_of_the_class() -> None:
    image, target = _scene()
    covered = {
        **target,
        "boxes": torch.cat((target["boxes"], torch.tensor([[0.0, 0.0, 80.0, 60.0]]))),
        "labels": torch.tensor([2, 1, 3]),
        "difficult": torch.tensor([True, False, False]),
    }
    out, grown = SmallObjectPaste([2], copies=3, p=1.0)(image, covered, torch.Generator())
    assert out is image and grown is covered
    out, grown = SmallObjectPaste([4], copies=3, p=1.0)(image, target, torch.Generator())
    assert out is image and grown is target
    out, grown = SmallObjectPaste([2], copies=3, p=0.0)(image, target, torch.Generator())
    assert out is image and grown is target


def test_an_object_cut_by_the_border_is_copied_whole_without_a_margin_there() -> None:
    image = torch.full((3, 40, 60), 0.2)
    image[:, 0:8, 52:60] = 0.8  # an object in the top right corner
    target = {"boxes": torch.tensor([[52.0, 0.0, 60.0, 8.0]]), "labels": torch.tensor([1])}
    for seed in range(10):
        generator = torch.Generator().manual_seed(seed)
        out, grown = SmallObjectPaste([1], copies=1, p=1.0)(image, target, generator)
        x1, y1, x2, y2 = grown["boxes"][1].int().tolist()
        # Its margin is the 0.2 left of and below it, and 0.2 is where it lands: the
        # copy is the 8 x 8 object on an unchanged image.
        assert torch.allclose(out[:, y1:y2, x1:x2], torch.full((3, 8, 8), 0.8))
        assert out.sum().item() == pytest.approx(image.sum().item() + 3 * 64 * 0.6, rel=1e-5)


def test_a_box_over_the_border_is_copied_as_far_as_the_image_goes() -> None:
    image = torch.full((3, 40, 60), 0.2)
    image[:, 30:40, 0:6] = 0.8  # an object whose box runs past the bottom-left corner
    target = {"boxes": torch.tensor([[-3.0, 30.0, 6.0, 43.0]]), "labels": torch.tensor([1])}
    for seed in range(10):
        generator = torch.Generator().manual_seed(seed)
        out, grown = SmallObjectPaste([1], copies=1, p=1.0)(image, target, generator)
        # The copy is the object's 6 x 10 pixels in the image, its box cut to them.
        x1, y1, x2, y2 = grown["boxes"][1].int().tolist()
        assert (x2 - x1, y2 - y1) == (6, 10)
        assert torch.allclose(out[:, y1:y2, x1:x2], torch.full((3, 10, 6), 0.8))
        assert out.sum().item() == pytest.approx(image.sum().item() + 3 * 60 * 0.6, rel=1e-5)


def test_copies_stay_in_the_image_apart_from_every_box_over_many_draws() -> None:
    image = torch.rand(3, 120, 160, generator=torch.Generator().manual_seed(0))
    boxes = torch.tensor([[10.5, 12.2, 21.7, 25.0], [40.0, 40.0, 100.0, 90.0], [130, 5, 141, 14]])
    target = {"boxes": boxes, "labels": torch.tensor([1, 2, 1])}
    pasted = 0
    for seed in range(40):
        generator = torch.Generator().manual_seed(seed)
        _, grown = SmallObjectPaste([1], copies=3, p=0.5)(image, target, generator)
        copies = grown["boxes"][3:]
        pasted += len(copies)
        assert (copies[:, :2] >= 0).all() and (copies[:, 2] <= 160).all()
        assert (copies[:, 3] <= 120).all()
        assert _overlap_area(grown["boxes"], grown["boxes"]).fill_diagonal_(0).max() == 0
        # A copy keeps its source's size and fractional place within the pixel grid.
        sources = boxes[[0, 2]]
        for box, label in zip(copies, grown["labels"][3:], strict=True):
            assert label == 1
            shifts = box - sources
            same = (shifts[:, :2] - shifts[:, 2:]).abs().amax(dim=1) < 1e-4
            same &= ((shifts - shifts.round()).abs() < 1e-4).all(dim=1)
            assert same.any()
    assert 40 < pasted < 40 * 6  # about half the images get copies, most of them fit


def test_with_copies_appends_every_per_box_entry() -> None:
    target = {
        "boxes": torch.zeros(2, 4),
        "labels": torch.tensor([3, 4]),
        "iscrowd": torch.tensor([0, 0]),
        "area": torch.tensor([5.0, 6.0]),
        "image_id": 1,
    }
    grown = with_copies(target, torch.ones(3, 4), torch.tensor([1]))
    assert grown["labels"].tolist() == [3, 4, 4] and grown["area"].tolist() == [5.0, 6.0, 6.0]
    assert grown["iscrowd"].tolist() == [0, 0, 0] and grown["image_id"] == 1


@pytest.mark.parametrize(("copies", "p"), [(0, 0.5), (1, 1.5), (1, -0.1)])
def test_bad_copies_or_probability_are_refused(copies: int, p: float) -> None:
    with pytest.raises(ValueError, match="paste"):
        SmallObjectPaste([1], copies=copies, p=p)


def test_train_pastes_copies_of_the_smallest_class(tmp_path, monkeypatch, capsys) -> None:
    grown = []
    call = SmallObjectPaste.__call__

    def recorded(self, image, target, generator):
        out, out_target = call(self, image, target, generator)
        grown.append(len(out_target["boxes"]) - len(target["boxes"]))
        return out, out_target

    monkeypatch.setattr(SmallObjectPaste, "__call__", recorded)
    argv = ["train", "--data", "synthetic:8", "--steps", "4", "--batch-size", "2"]
    argv += ["--min-size", "96", "--max-size", "128", "--paste-small", "2"]
    assert main([*argv, "--out", str(tmp_path)]) == 0
    assert "paste: 2 more copies of each" in capsys.readouterr().out
    assert len(grown) == 8 and any(grown)


def test_train_refuses_no_copies(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["train", "--data", "synthetic:2", "--steps", "1", "--paste-small", "0"])
    assert info.value.code == 2
    assert "--paste-small" in capsys.readouterr().err
