"""Model files and training checkpoints: round trips, atomic writes, clear errors."""

import errno
import json
import os
import pickle
import random
import re
import shutil
import stat
from contextlib import contextmanager
from pathlib import Path

import pytest
import safetensors.torch
import torch
from safetensors import SafetensorError, safe_open
from torch import nn

from faster_rcnn import FasterRCNN, file_checksum
from faster_rcnn.config import FasterRCNNConfig
from faster_rcnn.models import small_config
from faster_rcnn.roi_heads import (
    ConvFCHead,
    MultiScaleRoIAlign,
    SingleScaleRoIPool,
    TwoMLPHead,
    VGG16BoxHead,
)
from faster_rcnn.roi_heads.predictor import FastRCNNPredictor
from faster_rcnn.rpn import RPNHead
from faster_rcnn.train import checkpoint as checkpoint_module
from faster_rcnn.train.checkpoint import (
    MODEL_FILE,
    STATE_FILE,
    TrainingCheckpoint,
    load_model,
    load_weights,
    model_file_of_state,
    read_model_config,
    remove_cut_off_saves,
    save_model,
    saved_checkpoints,
)
from faster_rcnn.train.state import weights_record
from zip_records import zip_record_start


def tiny_model(seed: int = 0, num_classes: int = 4) -> FasterRCNN:
    cfg = small_config(num_classes)
    cfg = cfg.replace(transform={"min_size": (64,), "max_size": 64})
    torch.manual_seed(seed)
    return FasterRCNN.from_config(cfg)


def make_checkpoint(step: int) -> TrainingCheckpoint:
    generator = torch.Generator().manual_seed(step)
    return TrainingCheckpoint(
        stage="joint",
        step=step,
        history=[{"loss": float(i)} for i in range(step)],
        train_config={"steps": 10, "schedule": "step", "lr_decay_at": (0.5,)},
        optimizer={"state": {0: {"momentum_buffer": torch.full((3,), float(step))}}},
        generator_states=[generator.get_state()],
        torch_rng_state=torch.get_rng_state(),
        cuda_rng_states=[],
        python_rng_state=random.getstate(),
    )


def test_model_file_round_trip_gives_the_same_detections(tmp_path):
    model = tiny_model().eval()
    # Predictor biases are 0 at initialisation: make the detections depend on every layer.
    with torch.no_grad():
        for parameter in model.roi_heads.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    path = tmp_path / "model.safetensors"
    save_model(model, path)

    assert os.listdir(tmp_path) == ["model.safetensors"]
    loaded = load_model(path)
    assert not loaded.training
    assert loaded.config == model.config
    assert read_model_config(path) == model.config
    for (name, a), (_, b) in zip(
        model.state_dict().items(), loaded.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
    assert_same_detections(model, loaded)


def assert_same_detections(model, loaded):
    """``loaded`` detects exactly as ``model`` does, on an image where it finds boxes."""
    image = torch.rand(3, 64, 80, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, got = model([image])[0], loaded([image])[0]
    assert len(expected["boxes"]) > 0
    for key in ("boxes", "labels", "scores"):
        assert torch.equal(expected[key], got[key]), key


def test_a_channels_last_model_saves_and_detects_like_the_standard_layout(tmp_path):
    model = tiny_model().eval()
    with torch.no_grad():
        for parameter in model.roi_heads.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    nhwc = tiny_model().eval()
    nhwc.load_state_dict(model.state_dict())
    nhwc.to(memory_format=torch.channels_last)
    assert nhwc.backbone.body.stem[0][0].weight.is_contiguous(memory_format=torch.channels_last)
    path = tmp_path / "model.safetensors"
    save_model(nhwc, path)
    loaded = load_model(path)
    loaded_state = loaded.state_dict()
    for name, value in model.state_dict().items():
        assert torch.equal(value, loaded_state[name]), name
    image = torch.rand(3, 64, 80, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, got = model([image])[0], nhwc([image])[0]
    assert len(expected["boxes"]) > 0
    torch.testing.assert_close(got["boxes"], expected["boxes"], atol=1e-3, rtol=0)
    torch.testing.assert_close(got["scores"], expected["scores"], atol=1e-5, rtol=0)
    assert torch.equal(got["labels"], expected["labels"])


def test_a_model_whose_box_predictor_was_replaced_saves_and_loads(tmp_path):
    """torchvision's fine-tuning idiom: the file holds the new predictor's class count."""
    model = tiny_model(num_classes=4).eval()
    in_features = model.roi_heads.box_predictor.cls_score.in_features
    model.roi_heads.box_predictor = FastRCNNPredictor(in_features, 11)
    with torch.no_grad():
        for parameter in model.roi_heads.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    path = tmp_path / "model.safetensors"
    save_model(model, path)
    loaded = load_model(path)
    assert read_model_config(path).num_classes == 11 and loaded.config == model.config
    assert_same_detections(model, loaded)


class OwnBoxHead(nn.Module):
    """A box head of the user's own class, as wide as the small preset's."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(64 * 7 * 7, 256)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.fc(x.flatten(1)))


class OwnPooler(MultiScaleRoIAlign):
    """A pooler of the user's own class (its forward might differ)."""


def with_box_head(model: FasterRCNN, head: nn.Module, width: int, classes: int = 4) -> None:
    model.roi_heads.box_head = head
    model.roi_heads.box_predictor = FastRCNNPredictor(width, classes)


# The small preset pools 64 channels from maps "0", "1", "2" on a 7 x 7 grid, into a
# TwoMLPHead of 256, its RPN head one conv deep with 12 anchors a location.
FOLLOWED_HEADS = {
    "a narrower box head, with a predictor of other classes": (
        lambda m: with_box_head(m, TwoMLPHead(64 * 7 * 7, 128), 128, classes=6),
        {"num_classes": 6, "roi_heads.box_head": "two_mlp", "roi_heads.representation_size": 128},
    ),
    "a box head of another kind but the same shapes": (
        lambda m: setattr(m.roi_heads, "box_head", VGG16BoxHead(64 * 7 * 7, 256)),
        {"roi_heads.box_head": "vgg16", "roi_heads.representation_size": 256},
    ),
    "a conv box head": (
        lambda m: with_box_head(m, ConvFCHead(64, 7, 96), 96),
        {"roi_heads.box_head": "conv_fc", "roi_heads.representation_size": 96},
    ),
    "a deeper RPN head": (
        lambda m: setattr(m.rpn, "head", RPNHead(64, 12, conv_depth=2)),
        {"rpn.head_conv_depth": 2},
    ),
    "a pooler of another sampling ratio (the same weights)": (
        lambda m: setattr(m.roi_heads, "box_roi_pool", MultiScaleRoIAlign(("0", "1", "2"), 7, 1)),
        {"roi_heads.sampling_ratio": 1, "roi_heads.output_size": 7},
    ),
    "a pooler of a 5 x 5 grid, with a box head of its inputs": (
        lambda m: (
            setattr(m.roi_heads, "box_roi_pool", MultiScaleRoIAlign(("0", "1"), 5, 2)),
            setattr(m.roi_heads, "box_head", TwoMLPHead(64 * 5 * 5, 256)),
        ),
        {"roi_heads.output_size": 5, "roi_heads.featmap_names": ("0", "1")},
    ),
    "the paper's RoI pooling": (
        lambda m: setattr(m.roi_heads, "box_roi_pool", SingleScaleRoIPool("1", 7)),
        {"roi_heads.pooler": "pool", "roi_heads.featmap_names": ("1",)},
    ),
}


@pytest.mark.parametrize("replace", list(FOLLOWED_HEADS))
def test_a_model_whose_head_was_replaced_by_one_a_config_describes_loads_as_itself(
    replace, tmp_path
):
    """The config follows a head module replaced after building (its fields read off its
    shapes, as for heads given to the constructor): the file rebuilds the network."""
    change, fields = FOLLOWED_HEADS[replace]
    model = tiny_model().eval()
    assert model.config.rpn.head_conv_depth == 1  # read before the change, then again
    torch.manual_seed(1)
    change(model)
    model.eval()  # the new module too
    with torch.no_grad():
        for parameter in [*model.rpn.head.parameters(), *model.roi_heads.parameters()]:
            parameter.add_(0.05 * torch.randn_like(parameter))
    path = tmp_path / "model.safetensors"
    save_model(model, path)
    config = read_model_config(path)
    for name, value in fields.items():
        section, _, field = name.rpartition(".")
        assert getattr(getattr(config, section) if section else config, field) == value, name
    loaded = load_model(path)
    assert loaded.config == model.config
    assert_same_detections(model, loaded)


def replace_rpn_activation(model: FasterRCNN) -> None:
    model.rpn.head.conv[0][1] = nn.GELU()


REFUSED_HEADS = {
    "a box head of the user's own class": (
        lambda m: setattr(m.roi_heads, "box_head", OwnBoxHead()),
        r"model\.roi_heads\.box_head is OwnBoxHead\(\), but the model's config rebuilds "
        r"TwoMLPHead\(\) there",
    ),
    "a pooler of the user's own class": (
        lambda m: setattr(m.roi_heads, "box_roi_pool", OwnPooler(("0", "1", "2"), 7, 2)),
        r"model\.roi_heads\.box_roi_pool is OwnPooler\(featmap_names=\['0', '1', '2'\], "
        r"output_size=\(7, 7\), sampling_ratio=2\), but the model's config rebuilds "
        r"MultiScaleRoIAlign\(featmap_names=\['0', '1', '2'\]",
    ),
    "an RPN head's activation replaced inside it": (
        replace_rpn_activation,
        r"model\.rpn\.head\.conv\.0\.1 is GELU\(approximate='none'\), but the model's "
        r"config rebuilds ReLU\(inplace=True\) there",
    ),
    "a box head's layer narrowed inside it": (
        lambda m: (
            setattr(m.roi_heads.box_head, "fc6", nn.Linear(64 * 7 * 7, 128)),
            setattr(m.roi_heads.box_head, "fc7", nn.Linear(128, 256)),
        ),
        r"model\.roi_heads\.box_head\.fc6 is Linear\(in_features=3136, out_features=128, "
        r"bias=True\), but the model's config rebuilds Linear\(in_features=3136, "
        r"out_features=256, bias=True\) there",
    ),
}


@pytest.mark.parametrize("replace", list(REFUSED_HEADS))
def test_a_model_whose_config_would_not_rebuild_it_is_refused_at_save(replace, tmp_path):
    """A module replaced that no config describes: the model still detects, but its file
    would load as another network (or not at all), so none is written."""
    change, message = REFUSED_HEADS[replace]
    model = tiny_model().eval()
    change(model)
    with torch.no_grad():
        assert len(model([torch.rand(3, 64, 80)])) == 1
    path = tmp_path / "model.safetensors"
    with pytest.raises(ValueError, match=rf"^cannot save {re.escape(str(path))}: {message}"):
        save_model(model, path)
    assert list(tmp_path.iterdir()) == []


def test_model_file_metadata_holds_format_and_config(tmp_path):
    model = tiny_model()
    save_model(model, tmp_path / "m.safetensors")
    with safe_open(str(tmp_path / "m.safetensors"), framework="pt") as file:
        metadata = file.metadata()
    assert metadata["format"] == "faster-rcnn/1"
    assert FasterRCNNConfig.from_json(metadata["config"]) == model.config


def test_a_model_file_gets_the_permissions_the_umask_gives_a_new_file(tmp_path):
    # safetensors alone writes 0o600: a model file others on the machine could not read.
    old_umask = os.umask(0o027)
    try:
        save_model(tiny_model(), tmp_path / "m.safetensors")
        (tmp_path / "plain").touch()
    finally:
        os.umask(old_umask)
    assert (tmp_path / "m.safetensors").stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "plain").stat().st_mode & 0o777 == 0o640


def test_missing_and_foreign_files_get_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nothere\.safetensors"):
        load_model(tmp_path / "nothere.safetensors")
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00not a safetensors file at all")
    with pytest.raises(ValueError, match=r"garbage\.safetensors"):
        load_model(garbage)
    foreign = tmp_path / "foreign.safetensors"
    safetensors.torch.save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(ValueError, match="not a faster-rcnn model file"):
        load_model(foreign)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"rpn": {"nms_thresh": 7.5}}, r"RPNConfig\.nms_thresh must be in \[0, 1\]"),
        ({"rpn": {"pre_nms_top_n_test": "x"}}, r"RPNConfig\.pre_nms_top_n_test must be an integer"),
        ({"num_classes": 1e9}, r"FasterRCNNConfig\.num_classes must be an integer"),
        ({"backbone": {"name": "os.system"}}, r"BackboneConfig\.name must be one of"),
        ({"rpn": 3}, r"RPNConfig must be a JSON object"),
    ],
)
def test_a_crafted_config_is_refused_before_anything_is_built(tmp_path, change, reason):
    path = tmp_path / "m.safetensors"
    save_model(tiny_model(), path)
    with safe_open(str(path), framework="pt") as file:
        metadata = file.metadata()
    config = json.loads(metadata["config"])
    for key, value in change.items():
        config[key] = {**config[key], **value} if isinstance(value, dict) else value
    crafted = tmp_path / "crafted.safetensors"
    metadata["config"] = json.dumps(config)
    # Crafted, not damaged: without the checksum, which its old one would fail first.
    del metadata[file_checksum.KEY]
    safetensors.torch.save_file(safetensors.torch.load_file(path), crafted, metadata)
    built = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(FasterRCNN, "__init__", lambda *args: built.append(args))
        with pytest.raises(
            ValueError, match=rf"^{re.escape(str(crafted))}: its config is invalid: {reason}"
        ):
            load_model(crafted)
    assert built == []


def test_truncated_file_and_mismatched_weights_are_refused(tmp_path):
    path = tmp_path / "m.safetensors"
    save_model(tiny_model(num_classes=4), path)
    with pytest.raises(ValueError, match="do not fit the model"):
        load_weights(tiny_model(num_classes=5), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"m\.safetensors"):
        load_model(path)


@pytest.mark.parametrize(
    ("content", "why"),
    [
        # safetensors: "header too small", "header too large" (a text file's first 8 bytes,
        # read as the header's length), "incomplete metadata, file not fully covered".
        (b"", "empty"),
        (b"raccoon\nsquirrel\n", "no safetensors header at its start"),
        (b"\xff\xff\x00\x00\x00\x00\x00\x00{", "cut off: it ends within its header"),
        ("half", "cut off: it ends within its tensors"),
        (b"\x05\x00\x00\x00\x00\x00\x00\x00{abcd", "its header is damaged"),
        # Bytes after the tensors' end are refused by safetensors too ("not fully covered").
        ("appended x", "it has 1 byte after its data"),
        ("appended garbage", "it has 7 bytes after its data"),
        # No tensors at all: their end is the header's.
        (
            b'\x1a\x00\x00\x00\x00\x00\x00\x00{"__metadata__":{"a":"b"}}xyz',
            "it has 3 bytes after its data",
        ),
    ],
)
def test_an_unreadable_model_file_is_said_why_in_words(tmp_path, content, why):
    path = tmp_path / "m.safetensors"
    save_model(tiny_model(), path)
    data = path.read_bytes()
    if content == "half":
        content = data[: len(data) // 2]
    elif isinstance(content, str):  # "appended <bytes>", after the file's own
        content = data + content.removeprefix("appended ").encode()
    path.write_bytes(content)
    with pytest.raises(ValueError) as info:
        load_model(path)
    assert str(info.value) == f"{path} is not a readable model file ({why})"


def test_a_cut_off_pytorch_checkpoint_is_said_unreadable_not_a_checkpoint_to_convert(tmp_path):
    path = tmp_path / "model.pth"
    torch.save({"model": {"w": torch.zeros(100)}}, path)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ValueError) as info:
        load_model(path)
    assert str(info.value) == (
        f"{path} cannot be read: a PyTorch checkpoint, cut off: its zip archive ends before "
        "its directory"
    )


def test_a_checkpoint_after_other_bytes_given_as_a_model_is_said_to_have_them(tmp_path):
    """It was "not a readable model file (no safetensors header at its start)"."""
    path = tmp_path / "model.pth"
    torch.save({"model": {"w": torch.zeros(100)}}, path)
    path.write_bytes(b"J" + path.read_bytes())
    with pytest.raises(ValueError) as info:
        load_model(path)
    assert str(info.value) == (
        f"{path} cannot be read: a PyTorch checkpoint, it has 1 byte before its zip archive, "
        "which torch.load refuses"
    )


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_a_plain_pickle_given_as_a_model_is_said_to_be_one(tmp_path, protocol):
    """It was "cannot be read: a PyTorch checkpoint, not a pickle"; of protocols 0 and 1,
    which start with no PROTO opcode, "not a readable model file (no safetensors header
    at its start)"."""
    path = tmp_path / "model.pth"
    path.write_bytes(pickle.dumps({"w": torch.zeros(100)}, protocol=protocol))
    with pytest.raises(ValueError) as info:
        load_model(path)
    assert str(info.value) == f"{path} is a pickle, not a model file (nor a torch.save checkpoint)"


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_a_model_file_with_non_finite_weights_is_refused(tmp_path, value):
    """A diverged run's weights detect nothing (every score NaN): loading says so rather
    than letting evaluate score zero boxes."""
    model = tiny_model(num_classes=4)
    with torch.no_grad():
        model.rpn.head.cls_logits.weight[0, 0] = value
        model.roi_heads.box_predictor.bbox_pred.bias[3] = value
    save_model(model, tmp_path / "m.safetensors")
    with pytest.raises(ValueError) as error:
        load_model(tmp_path / "m.safetensors")
    assert str(error.value) == (
        f"{tmp_path / 'm.safetensors'}: 2 tensors hold NaN or infinite values (the "
        "first, rpn.head.cls_logits.weight): the training run that wrote them diverged"
    )


def test_interrupted_model_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "m.safetensors"
    old = tiny_model(seed=0)
    save_model(old, path)

    def crash(model, filename, metadata=None, force_contiguous=False):
        with open(filename, "wb") as file:
            file.write(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(safetensors.torch, "save_model", crash)
    with pytest.raises(KeyboardInterrupt):
        save_model(tiny_model(seed=1), path)
    assert os.listdir(tmp_path) == ["m.safetensors"]
    loaded = load_model(path)
    assert all(
        torch.equal(a, b)
        for a, b in zip(old.state_dict().values(), loaded.state_dict().values(), strict=True)
    )


def test_training_checkpoint_round_trip(tmp_path):
    model = tiny_model(seed=0)
    saved = make_checkpoint(step=3)
    saved.save(tmp_path / "joint", model)
    assert sorted(os.listdir(tmp_path)) == ["joint"]
    assert sorted(os.listdir(tmp_path / "joint")) == [MODEL_FILE, STATE_FILE]
    # The state file needs no unpickling of arbitrary objects.
    torch.load(tmp_path / "joint" / STATE_FILE, weights_only=True)

    other = tiny_model(seed=1)
    loaded = TrainingCheckpoint.load(tmp_path / "joint", other)
    assert loaded.step == 3 and loaded.stage == "joint"
    assert loaded.history == saved.history
    assert loaded.train_config == saved.train_config
    assert loaded.python_rng_state == saved.python_rng_state
    assert torch.equal(loaded.generator_states[0], saved.generator_states[0])
    assert torch.equal(loaded.optimizer["state"][0]["momentum_buffer"], torch.full((3,), 3.0))
    for a, b in zip(model.state_dict().values(), other.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_global_random_states_are_restored():
    checkpoint = make_checkpoint(step=1)
    expected_torch, expected_python = torch.rand(4), random.random()
    torch.rand(100)
    random.random()
    checkpoint.restore_global_rng()
    assert torch.equal(torch.rand(4), expected_torch)
    assert random.random() == expected_python


def test_failed_checkpoint_write_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    model = tiny_model()
    make_checkpoint(step=2).save(tmp_path / "joint", model)

    def crash(obj, path):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        make_checkpoint(step=4).save(tmp_path / "joint", model)
    assert sorted(os.listdir(tmp_path)) == ["joint"]
    assert TrainingCheckpoint.load(tmp_path / "joint", model).step == 2


def test_a_full_disk_writing_a_model_file_is_an_os_error_naming_it(tmp_path, monkeypatch):
    """safetensors reports a full disk in an error of its own, which the command line
    would show as a traceback; the old file stays."""
    path = tmp_path / "m.safetensors"
    save_model(tiny_model(seed=0), path)

    def full_disk(model, filename, metadata=None, force_contiguous=False):
        # What safetensors 0.4-0.5 raise on a full tmpfs.
        raise SafetensorError(
            "Error while serializing: I/O error: No space left on device (os error 28)"
        )

    monkeypatch.setattr(safetensors.torch, "save_model", full_disk)
    with pytest.raises(OSError) as error:
        save_model(tiny_model(seed=1), path)
    assert (error.value.errno, error.value.strerror) == (errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert error.value.filename == str(path)
    assert os.listdir(tmp_path) == ["m.safetensors"]


def test_a_folder_made_read_only_names_the_model_file_not_its_removed_temporary(
    tmp_path, monkeypatch
):
    """The error named the hidden temporary file beside it, which was never made."""
    path = tmp_path / "m.safetensors"
    save_model(tiny_model(seed=0), path)
    before = path.read_bytes()

    def read_only(self, *args, **kwargs):
        # Root may write anywhere: the refusal a read-only folder gives others.
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))

    monkeypatch.setattr(Path, "touch", read_only)
    with pytest.raises(PermissionError) as error:
        save_model(tiny_model(seed=1), path)
    assert (error.value.strerror, error.value.filename) == ("Permission denied", str(path))
    assert os.listdir(tmp_path) == ["m.safetensors"]
    assert path.read_bytes() == before


@pytest.mark.skipif(
    not (os.path.exists("/dev/full") and stat.S_ISCHR(os.stat("/dev/full").st_mode)),
    reason="no /dev/full device here (opening it would make a file)",
)
def test_a_full_disk_writing_the_training_state_is_an_os_error_naming_it(tmp_path, monkeypatch):
    """torch.save reports a full disk as "unexpected pos 704 vs 598"; the old checkpoint
    stays."""
    model = tiny_model()
    make_checkpoint(step=2).save(tmp_path / "joint", model)
    real_atomic_write = checkpoint_module.atomic_write

    @contextmanager
    def state_onto_a_full_disk(path):
        if path.name == STATE_FILE:
            yield Path("/dev/full")  # written in place: torch.save renames nothing
        else:
            with real_atomic_write(path) as temporary:
                yield temporary

    monkeypatch.setattr(checkpoint_module, "atomic_write", state_onto_a_full_disk)
    error = refused_over_step_2(tmp_path / "joint", model, OSError)
    assert (error.errno, error.strerror) == (errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_full_disk_writing_a_checkpoint_names_the_checkpoint_not_its_removed_partial(
    tmp_path, monkeypatch
):
    """The file the system refused was in <stage>.partial, removed at once: the command
    line's one line named a file that was not there."""
    model = tiny_model()
    make_checkpoint(step=2).save(tmp_path / "joint", model)

    def full_disk(model, filename, metadata=None, force_contiguous=False):
        raise SafetensorError(
            "Error while serializing: I/O error: No space left on device (os error 28)"
        )

    monkeypatch.setattr(safetensors.torch, "save_model", full_disk)
    error = refused_over_step_2(tmp_path / "joint", model, OSError)
    assert (error.errno, error.strerror) == (errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_run_folder_made_read_only_names_the_checkpoint_it_refused(tmp_path, monkeypatch):
    model = tiny_model()
    make_checkpoint(step=2).save(tmp_path / "joint", model)
    real_mkdir = Path.mkdir

    def read_only(self, *args, **kwargs):
        # Root may write anywhere: the refusal a read-only folder gives others.
        if self.parent == tmp_path:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
        real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", read_only)
    error = refused_over_step_2(tmp_path / "joint", model, PermissionError)
    assert error.strerror == "Permission denied"


def refused_over_step_2(stage: Path, model, kind: type[OSError]) -> OSError:
    """The ``kind`` of error a step-4 checkpoint saved over the step-2 one in ``stage``
    raises, once checked to name ``stage`` (not the ``.partial`` folder it was written
    in, removed) and to leave the step-2 checkpoint alone there."""
    with pytest.raises(kind) as error:
        make_checkpoint(step=4).save(stage, model)
    assert error.value.filename == str(stage)
    assert sorted(os.listdir(stage.parent)) == [stage.name]
    assert TrainingCheckpoint.load(stage, model).step == 2
    return error.value


def test_the_folder_of_an_unfinished_run_given_as_a_model_names_its_last_checkpoint(tmp_path):
    model = tiny_model()
    run = tmp_path / "run"
    make_checkpoint(step=2).save(run / "rpn_1", model)
    make_checkpoint(step=4).save(run / "det_2", model)
    os.utime(run / "rpn_1" / STATE_FILE, (0, 0))  # written long before det_2's
    (run / "det_2.partial").mkdir()  # a save cut off: no checkpoint
    with pytest.raises(ValueError) as error:
        load_model(run)
    assert str(error.value) == (
        f"{run} holds no model.safetensors: the training run there did not finish; add "
        "--resume to its train command to finish it, or pass the model file of its last "
        f"checkpoint, {run / 'det_2' / MODEL_FILE}"
    )


def test_crash_between_the_final_renames_falls_back_to_the_old_checkpoint(tmp_path, monkeypatch):
    model = tiny_model()
    make_checkpoint(step=2).save(tmp_path / "joint", model)
    real_replace = os.replace

    def crash_on_swap(source, target):
        if str(source).endswith(".partial"):
            raise KeyboardInterrupt
        real_replace(source, target)

    monkeypatch.setattr(checkpoint_module.os, "replace", crash_on_swap)
    with pytest.raises(KeyboardInterrupt):
        make_checkpoint(step=4).save(tmp_path / "joint", model)
    monkeypatch.undo()

    assert not (tmp_path / "joint").exists()
    assert TrainingCheckpoint.find(tmp_path / "joint") == tmp_path / "joint.previous"
    assert TrainingCheckpoint.load(tmp_path / "joint", model).step == 2
    make_checkpoint(step=4).save(tmp_path / "joint", model)
    assert sorted(os.listdir(tmp_path)) == ["joint"]
    assert TrainingCheckpoint.load(tmp_path / "joint", model).step == 4


def test_a_swap_a_kill_cut_off_between_its_renames_is_finished(tmp_path):
    """A kill after the old checkpoint's rename to ``.previous`` and before the new one's
    from ``.partial``: the new one is whole, and the next run puts it in place instead of
    going back a checkpoint."""
    model = tiny_model()
    make_checkpoint(step=2).save(tmp_path / "joint", model)
    make_checkpoint(step=4).save(tmp_path / "new", model)
    os.replace(tmp_path / "joint", tmp_path / "joint.previous")
    os.replace(tmp_path / "new", tmp_path / "joint.partial")
    assert TrainingCheckpoint.load(tmp_path / "joint", model).step == 2  # before tidying

    remove_cut_off_saves(tmp_path, ["joint"], [])
    assert sorted(os.listdir(tmp_path)) == ["joint"]
    assert TrainingCheckpoint.load(tmp_path / "joint", model).step == 4


def test_what_kills_mid_save_leave_is_no_checkpoint_and_goes_by_its_names(tmp_path):
    """A kill before a save's renames left ``<stage>.partial`` whole, which ``train`` took
    for the checkpoint of a run that did not finish (and ``--resume`` then found none); one
    at the last rename, the old checkpoint as ``.previous`` beside the new, both taken for
    checkpoints; one mid-write, temporary files that no later save removed."""
    model = tiny_model()
    make_checkpoint(step=4).save(tmp_path / "joint", model)
    shutil.copytree(tmp_path / "joint", tmp_path / "joint.previous")
    shutil.copytree(tmp_path / "joint", tmp_path / "rpn.partial")
    hex_digits = "0123456789abcdef" * 2
    (tmp_path / "rpn.partial" / f".state.pt.41.{hex_digits}.tmp").write_bytes(b"PK")
    for name in ("model.safetensors", "metrics.jsonl", "model.onnx"):
        (tmp_path / f".{name}.41.{hex_digits}.tmp").write_bytes(b"cut")
    (tmp_path / "notes.tmp").write_text("the user's")
    (tmp_path / "old.partial").mkdir()  # no stage's
    assert saved_checkpoints(tmp_path) == [tmp_path / "joint"]

    remove_cut_off_saves(tmp_path, ["joint", "rpn"], ["model.safetensors", "metrics.jsonl"])
    # export's temporary file is no run's to remove: it may be writing it now.
    left = [f".model.onnx.41.{hex_digits}.tmp", "joint", "notes.tmp", "old.partial"]
    assert sorted(os.listdir(tmp_path)) == left
    assert TrainingCheckpoint.load(tmp_path / "joint", model).step == 4


def test_a_run_folder_not_made_yet_has_no_cut_off_save_to_remove(tmp_path):
    """Where no lock makes ``--out`` before the tidying (Windows), a fresh run's folder is
    not there yet: listing it raised FileNotFoundError, a traceback."""
    out = tmp_path / "runs" / "first"
    remove_cut_off_saves(out, ["joint"], ["model.safetensors"])
    assert not out.exists()


def test_missing_or_corrupt_training_state_is_reported(tmp_path):
    model = tiny_model()
    with pytest.raises(FileNotFoundError, match="no training checkpoint"):
        TrainingCheckpoint.load(tmp_path / "joint", model)
    make_checkpoint(step=1).save(tmp_path / "joint", model)
    (tmp_path / "joint" / STATE_FILE).write_bytes(b"garbage")
    with pytest.raises(ValueError, match=STATE_FILE):
        TrainingCheckpoint.load(tmp_path / "joint", model)
    torch.save({"format": "something else"}, tmp_path / "joint" / STATE_FILE)
    with pytest.raises(ValueError, match="not a faster-rcnn training state"):
        TrainingCheckpoint.load(tmp_path / "joint", model)


def damaged_state(damage: str, checkpoint: Path) -> bytes:
    """The bytes of the state file of ``checkpoint`` as ``damage`` leaves them."""
    state = checkpoint / STATE_FILE
    if damage.startswith("legacy"):  # torch.save's format before PyTorch 1.6
        content = torch.load(state, weights_only=True)
        torch.save(content, state, _use_new_zipfile_serialization=False)
    if damage == "code":
        torch.save({"layer": nn.Linear(1, 1)}, state)
    if damage == "pickle":  # pickle.dump's, not torch.save's
        state.write_bytes(pickle.dumps(torch.load(state, weights_only=True)))
    if damage == "flipped":  # a byte within data.pkl, the pickle after its local header
        data = bytearray(state.read_bytes())
        data[data.index(b"\x80\x02", data.index(b"data.pkl")) + 5] ^= 0xFF
        state.write_bytes(data)
    cuts = {"cut": -10, "legacy cut": -10, "legacy cut early": 100}
    replaced = {"empty": b"", "text": b"raccoon\n", "model": (checkpoint / MODEL_FILE).read_bytes()}
    return replaced.get(damage, state.read_bytes()[: cuts.get(damage)])


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        ("empty", "empty"),
        ("text", "not a pickle"),
        ("pickle", "a pickle, not a torch.save file"),  # pickle.dump's: "not a pickle"
        ("flipped", "damaged: its zip archive's data.pkl fails its checksum"),  # "not a pickle"
        ("cut", "cut off: its zip archive ends before its directory"),
        ("legacy cut", "cut off: it ends within its tensors"),
        ("legacy cut early", "cut off: it ends mid-pickle"),
        ("model", "a safetensors file, not a torch.save one"),
        ("code", "holds Python objects besides tensors, which could run code when loaded"),
    ],
)
def test_an_unreadable_training_state_is_said_why_in_words(tmp_path, damage, why):
    """torch's own words were passed on: "PytorchStreamReader failed reading zip archive:
    failed finding central directory. This is an internal miniz error...", the name of an
    EOFError, an IndexError's "list index out of range"."""
    model, checkpoint = tiny_model(), tmp_path / "joint"
    make_checkpoint(step=1).save(checkpoint, model)
    state = checkpoint / STATE_FILE
    state.write_bytes(damaged_state(damage, checkpoint))
    with pytest.raises(ValueError) as info:
        TrainingCheckpoint.load(checkpoint, model)
    assert str(info.value) == f"{state} is not a readable training state ({why})"


def test_a_checkpoint_whose_tensor_bytes_were_changed_is_not_resumed(tmp_path):
    """torch.load and safetensors read a tensor's changed bytes without a word: the
    model file's own checksum (file_checksum), the state's zip records' checksums."""
    model, checkpoint = tiny_model(), tmp_path / "joint"
    make_checkpoint(step=1).save(checkpoint, model)
    model_file, state = checkpoint / MODEL_FILE, checkpoint / STATE_FILE
    pristine = model_file.read_bytes()
    model_file.write_bytes(pristine[:-1] + bytes([pristine[-1] ^ 0x01]))  # its last tensor's
    with pytest.raises(ValueError, match=rf"^{re.escape(str(model_file))} is damaged: its bytes"):
        TrainingCheckpoint.load(checkpoint, model)
    model_file.write_bytes(pristine)
    data = bytearray(state.read_bytes())
    data[zip_record_start(bytes(data), "data/0")] ^= 0x01  # a tensor of the optimizer's
    state.write_bytes(data)
    with pytest.raises(ValueError) as info:
        TrainingCheckpoint.load(checkpoint, model)
    why = "damaged: its zip archive's data/0 fails its checksum"
    assert str(info.value) == f"{state} is not a readable training state ({why})"


def test_a_state_whose_fields_were_changed_is_refused_before_they_are_used(tmp_path):
    """A changed byte of the pickle can still unpickle, to another value: the step the
    run would resume from, read before the state is loaded, was taken as it came."""
    model, checkpoint = tiny_model(), tmp_path / "joint"
    make_checkpoint(step=3).save(checkpoint, model)
    state = checkpoint / STATE_FILE
    data = bytearray(state.read_bytes())
    # The key "step" (its memo entry after it), then the one-byte int 3 (opcode K).
    (field,) = re.finditer(rb"X\x04\x00\x00\x00stepq.K(\x03)", data, re.DOTALL)
    data[field.start(1)] = 7
    state.write_bytes(data)
    assert torch.load(state, weights_only=True)["step"] == 7  # it still unpickles
    with pytest.raises(ValueError) as info:
        TrainingCheckpoint.steps_in(checkpoint)
    why = "damaged: its zip archive's data.pkl fails its checksum"
    assert str(info.value) == f"{state} is not a readable training state ({why})"


def test_the_rate_scale_round_trips_and_older_states_without_it_still_load(tmp_path):
    model = tiny_model()
    checkpoint = make_checkpoint(step=2)
    checkpoint.lr_scale = 1.5
    checkpoint.save(tmp_path / "joint", model)
    assert TrainingCheckpoint.load(tmp_path / "joint", model).lr_scale == 1.5
    # A state written before the field existed: the scale is not settled yet.
    state = torch.load(tmp_path / "joint" / STATE_FILE, weights_only=True)
    del state["lr_scale"]
    torch.save(state, tmp_path / "joint" / STATE_FILE)
    assert TrainingCheckpoint.load(tmp_path / "joint", model).lr_scale is None
    # A missing required field, or one the format does not know, is still refused.
    for broken in ({**state, "surprise": 1}, {k: v for k, v in state.items() if k != "step"}):
        torch.save(broken, tmp_path / "joint" / STATE_FILE)
        with pytest.raises(ValueError, match="holds the fields"):
            TrainingCheckpoint.load(tmp_path / "joint", model)


def test_the_initial_weights_round_trip_and_older_states_without_them_still_load(tmp_path):
    """A checkpoint records the weights file its run started from (read without the
    weights); one of an earlier version does not say, and still loads."""
    model = tiny_model()
    assert TrainingCheckpoint.weights_in(tmp_path / "joint") is None  # no checkpoint
    checkpoint = make_checkpoint(step=2)
    checkpoint.weights = weights_record(tmp_path / "." / "start.pth")
    checkpoint.save(tmp_path / "joint", model)
    recorded = {"file": str((tmp_path / "start.pth").resolve())}
    assert TrainingCheckpoint.weights_in(tmp_path / "joint") == recorded
    assert TrainingCheckpoint.load(tmp_path / "joint", model).weights == recorded
    state = torch.load(tmp_path / "joint" / STATE_FILE, weights_only=True)
    del state["weights"]
    torch.save(state, tmp_path / "joint" / STATE_FILE)
    assert TrainingCheckpoint.weights_in(tmp_path / "joint") is None
    assert TrainingCheckpoint.load(tmp_path / "joint", model).weights is None


def test_the_scheme_round_trips_and_older_states_without_it_still_load(tmp_path):
    """A checkpoint records its run's scheme (read without the weights); one of an
    earlier version does not say, and still loads."""
    model = tiny_model()
    assert TrainingCheckpoint.scheme_in(tmp_path / "rpn") is None  # no checkpoint
    checkpoint = make_checkpoint(step=2)
    checkpoint.scheme = "alternating"
    checkpoint.save(tmp_path / "rpn", model)
    assert TrainingCheckpoint.scheme_in(tmp_path / "rpn") == "alternating"
    assert TrainingCheckpoint.load(tmp_path / "rpn", model).scheme == "alternating"
    state = torch.load(tmp_path / "rpn" / STATE_FILE, weights_only=True)
    del state["scheme"]
    torch.save(state, tmp_path / "rpn" / STATE_FILE)
    assert TrainingCheckpoint.scheme_in(tmp_path / "rpn") is None
    assert TrainingCheckpoint.load(tmp_path / "rpn", model).scheme is None


def test_a_states_model_file_is_found_by_the_stage_it_records_not_two_folders_up(
    tmp_path, monkeypatch
):
    """The run was taken as the state's folder's parent: state.pt given from inside its
    checkpoint folder named the checkpoint's own model as the run's, and a checkpoint
    copied out of its run named whatever model file lay beside the copy."""
    run = tmp_path / "run"
    make_checkpoint(2).save(run / "joint", tiny_model())
    save_model(tiny_model(), run / MODEL_FILE)
    monkeypatch.chdir(run / "joint")
    assert model_file_of_state(Path(STATE_FILE)) == f"the run's model file, {run / MODEL_FILE}"
    with pytest.raises(ValueError) as refused:
        load_model(".")
    assert str(refused.value) == (
        f". is a training checkpoint: pass the run's model file, {run / MODEL_FILE}"
    )
    # A copy under another name is out of any run: its own model file is its model.
    copy = tmp_path / "joint_backup"
    shutil.copytree(run / "joint", copy)
    save_model(tiny_model(), tmp_path / MODEL_FILE)  # some other model beside it
    own = copy / MODEL_FILE
    assert model_file_of_state(copy / STATE_FILE) == f"the checkpoint's own, {own}"
    with pytest.raises(
        ValueError, match=re.escape(f"is a folder: pass the model file in it, {own}") + "$"
    ):
        load_model(copy)
    # A checkpoint left as joint.previous by a cut-off save is still the run's.
    (run / MODEL_FILE).unlink()
    (run / "joint").rename(run / "joint.previous")
    assert model_file_of_state(run / "joint.previous" / STATE_FILE) == (
        f"the checkpoint's own, {run / 'joint.previous' / MODEL_FILE} (`train --resume --out "
        f"{run}` finishes the run and writes {run / MODEL_FILE})"
    )


def test_the_commands_the_refusals_give_quote_a_path_with_spaces(tmp_path):
    # Copied into a shell as printed, `faster-rcnn convert my models/coco.pth` named two files.
    checkpoint = tmp_path / "my models" / "coco.pth"
    checkpoint.parent.mkdir()
    torch.save({"weight": torch.zeros(1)}, checkpoint)
    with pytest.raises(ValueError) as refused:
        load_model(checkpoint)
    assert f"`faster-rcnn convert '{checkpoint}' --preset P`" in str(refused.value)
    run = tmp_path / "my run"
    make_checkpoint(2).save(run / "joint", tiny_model())
    assert model_file_of_state(run / "joint" / STATE_FILE) == (
        f"the checkpoint's own, {run / 'joint' / MODEL_FILE} (`train --resume --out "
        f"'{run}'` finishes the run and writes {run / MODEL_FILE})"
    )
