"""Training on windows of the resized images (``TransformConfig.train_window``): their
size and orientation, the boxes they keep, evaluation on the whole image, the setting
saved with the model and given to ``train``."""

import json

import pytest
import safetensors.torch
import torch
from safetensors import safe_open

from faster_rcnn import FasterRCNN
from faster_rcnn.cli import main
from faster_rcnn.config import TransformConfig
from faster_rcnn.models import small_config
from faster_rcnn.train.checkpoint import load_model, save_model
from faster_rcnn.transform import ImageTransform, resize_image, window_size


def windowed(window: tuple[int, int] | None) -> ImageTransform:
    config = TransformConfig(min_size=(100,), max_size=1000, train_window=window)
    return ImageTransform(config).train()


def sizes_trained_on(window: tuple[int, int], images: list[torch.Tensor]) -> list:
    generator = torch.Generator().manual_seed(0)
    return windowed(window)(images, generator=generator)[0].image_sizes


@pytest.mark.parametrize(
    ("image", "window", "expected"),
    [
        ((1920, 2560), (800, 1333), (800, 1333)),  # landscape: as given
        ((2560, 1920), (800, 1333), (1333, 800)),  # portrait: turned
        ((1920, 2560), (1333, 800), (800, 1333)),  # a portrait window, turned to landscape
        ((1000, 1000), (800, 1333), (800, 1000)),  # square: as given, cut to the image
        ((2560, 1920), (900, 900), (900, 900)),
        ((600, 700), (800, 1333), (600, 700)),  # smaller than the window: whole
        ((700, 2000), (800, 1333), (700, 1333)),  # one side smaller: kept whole
        ((2000, 700), (800, 1333), (1333, 700)),
    ],
)
def test_the_window_is_turned_to_the_image_and_never_larger(image, window, expected):
    assert window_size(image, window) == expected


def test_training_cuts_landscape_portrait_and_square_images_to_their_windows():
    # Resized to a shorter side of 100: 100 x 160, 160 x 100 and 100 x 100.
    images = [torch.rand(3, 50, 80), torch.rand(3, 80, 50), torch.rand(3, 50, 50)]
    assert sizes_trained_on((64, 96), images) == [(64, 96), (96, 64), (64, 96)]


def test_a_side_smaller_than_the_window_is_kept_whole():
    # Resized to 100 x 160 (within 128 x 192), 100 x 300 and 300 x 100.
    images = [torch.rand(3, 50, 80), torch.rand(3, 50, 150), torch.rand(3, 150, 50)]
    assert sizes_trained_on((128, 192), images) == [(100, 160), (100, 192), (192, 100)]


def test_an_image_within_the_window_is_trained_on_whole_drawing_nothing():
    image = torch.rand(3, 50, 80)  # resized to 100 x 160
    target = {"boxes": torch.tensor([[2.0, 4.0, 30.0, 40.0]]), "labels": torch.tensor([1])}
    outputs, states = [], []
    for window in ((128, 192), None):
        generator = torch.Generator().manual_seed(3)
        outputs.append(windowed(window)([image], [target], generator=generator))
        states.append(generator.get_state())
    (whole, whole_targets), (plain, plain_targets) = outputs
    assert torch.equal(whole.tensors, plain.tensors)
    assert torch.equal(whole_targets[0]["boxes"], plain_targets[0]["boxes"])
    assert torch.equal(states[0], states[1])  # the global random stream stays in step


def test_the_window_keeps_the_boxes_whose_centre_it_holds_cut_to_it():
    # A 50 x 100 image resized to 100 x 200; the window, 100 x 120, is cut at the left
    # offset the seed draws, read from the pixels.
    image = torch.rand(3, 50, 100)
    boxes = torch.tensor(
        [
            [1.0, 10.0, 21.0, 30.0],  # resized (2, 20, 42, 60), centre x 22
            [40.0, 5.0, 60.0, 45.0],  # resized (80, 10, 120, 90), centre x 100
            [85.0, 20.0, 100.0, 40.0],  # resized (170, 40, 200, 80), centre x 185
        ]
    )
    target = {"boxes": boxes, "labels": torch.tensor([1, 2, 3])}
    transform = windowed((100, 120))
    resized = resize_image(transform.normalize(image), 100, 1000)
    expected = {
        # Window x 4..124: box 1 cut at its left, box 2 moved, box 3's centre outside.
        0: (4, [[0.0, 20.0, 38.0, 60.0], [76.0, 10.0, 116.0, 90.0]], [1, 2]),
        # Window x 71..191: box 1's centre outside, box 2 moved, box 3 cut at its right.
        1: (71, [[9.0, 10.0, 49.0, 90.0], [99.0, 40.0, 120.0, 80.0]], [2, 3]),
    }
    for seed, (left, kept_boxes, labels) in expected.items():
        generator = torch.Generator().manual_seed(seed)
        batch, targets = transform([image], [target], generator=generator)
        assert batch.image_sizes == [(100, 120)]
        window = batch.tensors[0, :, :100, :120]
        assert torch.equal(window, resized[:, :, left : left + 120])
        assert torch.equal(targets[0]["boxes"], torch.tensor(kept_boxes))
        assert targets[0]["labels"].tolist() == labels
    assert torch.equal(target["boxes"], boxes)  # the caller's target is not modified


def test_the_same_seed_cuts_the_same_windows_and_another_seed_others():
    images = [torch.rand(3, 50, 100), torch.rand(3, 100, 50), torch.rand(3, 70, 90)]
    transform = windowed((64, 80))

    def cut(seed: int) -> torch.Tensor:
        return transform(images, generator=torch.Generator().manual_seed(seed))[0].tensors

    assert torch.equal(cut(0), cut(0))
    assert not torch.equal(cut(0), cut(1))


def test_evaluation_never_cuts():
    image = torch.rand(3, 50, 80)
    target = {"boxes": torch.tensor([[2.0, 4.0, 30.0, 40.0]]), "labels": torch.tensor([1])}
    generator = torch.Generator().manual_seed(0)
    before = generator.get_state()
    batch, targets = windowed((64, 64)).eval()([image], [target], generator=generator)
    plain, plain_targets = windowed(None).eval()([image], [target])
    assert batch.image_sizes == [(100, 160)]
    assert torch.equal(batch.tensors, plain.tensors)
    assert torch.equal(targets[0]["boxes"], plain_targets[0]["boxes"])
    assert torch.equal(generator.get_state(), before)


@pytest.mark.parametrize(
    ("window", "error"),
    [
        ((16, 800), r"^TransformConfig\.train_window must be two sides in \[32, 16384\] px"),
        ((800, 20000), r"^TransformConfig\.train_window must be two sides in \[32, 16384\] px"),
        ((800,), r"^TransformConfig\.train_window must have 2 values, got 1"),
        ((800.0, 1333), r"^TransformConfig\.train_window\[0\] must be an integer, got 800\.0"),
    ],
)
def test_a_window_of_other_than_two_whole_sides_of_32_px_or_more_is_refused(window, error):
    with pytest.raises(ValueError, match=error):
        TransformConfig(train_window=window)


def tiny_model(window: tuple[int, int] | None) -> FasterRCNN:
    config = small_config(3).replace(
        transform={"min_size": (64,), "max_size": 64, "train_window": window}
    )
    torch.manual_seed(0)
    return FasterRCNN.from_config(config)


def test_the_window_is_saved_with_the_model_and_an_older_file_loads_without_one(tmp_path):
    path = tmp_path / "model.safetensors"
    save_model(tiny_model((48, 32)), path)
    loaded = load_model(path)
    assert loaded.config.transform.train_window == (48, 32)
    assert loaded.transform.train_window == (48, 32)
    with safe_open(str(path), framework="pt") as file:
        metadata = file.metadata()
    # As a model file written before the setting (and before the checksum).
    config = json.loads(metadata["config"])
    del config["transform"]["train_window"]
    metadata = {"format": metadata["format"], "config": json.dumps(config)}
    older = tmp_path / "older.safetensors"
    safetensors.torch.save_file(safetensors.torch.load_file(path), older, metadata)
    assert load_model(older).config.transform.train_window is None


def test_train_window_reaches_the_saved_model_and_train_says_so(tmp_path, capsys):
    argv = ["train", "--data", "synthetic:8", "--min-size", "96", "--max-size", "128"]
    argv += ["--steps", "2", "--train-window", "64", "96", "--out", str(tmp_path)]
    assert main(argv) == 0
    assert (
        "window: training on windows of 64x96 px of the images resized to 96 px (longer "
        "side at most 128), evaluation on the whole image\n"
    ) in capsys.readouterr().out
    assert load_model(tmp_path / "model.safetensors").config.transform.train_window == (64, 96)
