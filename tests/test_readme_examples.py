"""README's Python examples in "Using it" run as written and do what its text says.

Each block of the section is run here or left out for a reason (the table below), so a
new block is sorted in when it is added. The blocks run as a user copies them, in their
README order, sharing names where they build on one another (the inference wrappers run
on the first block's ``model`` and ``images``); only the paths and the trainer's step
count are changed, to a temporary folder and one step.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
README = REPO_ROOT / "README.md"
MOBILENET_V2_FILE = REPO_ROOT.parent / "shared" / "weights" / "mobilenet_v2-b0353104.pth"

# Each block of the section by a line only it has: the blocks run here, and those left
# out with the reason.
RUN = {
    "api": "model = models.small(num_classes=4)",
    "trainer": 'open_dataset("synthetic:64", "train")',
    "presets": 'preset_config("resnet50_fpn", num_classes=3)',
    "backbone weights": "report = load_backbone_weights(",
    "faster inference": "fast = optimize_for_inference(model)",
    "test-time flips": 'detector = TestTimeFlips(model, "both")',
    "windows": "detector = WindowedDetection(model, (800, 1067), overlap=0.25)",
}
LEFT_OUT = {
    "PennFudanDataset(": "the tutorial's dataset class, with torchvision and its images",
    "load_torchvision_checkpoint(": "torchvision's published files (tests/parity)",
    "reuse_freed_memory()": "changes the test process's allocator (test_host_memory.py)",
    "export_onnx(": "an export takes half a minute (tests/export)",
}


def section_blocks() -> list[str]:
    """The Python blocks of README's "Using it", in order."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("\n## Using it\n") :]
    section = section[: section.index("\n## ", 1)]
    return re.findall(r"^```python\n(.*?)^```$", section, flags=re.DOTALL | re.MULTILINE)


def block(name: str) -> str:
    """The one block holding ``RUN[name]``."""
    (found,) = [code for code in section_blocks() if RUN[name] in code]
    return found


def run(code: str, namespace: dict[str, Any]) -> dict[str, Any]:
    exec(compile(code, f"{README.name} (Using it)", "exec"), namespace)
    return namespace


def test_every_block_of_the_section_is_run_here_or_left_out_for_a_reason():
    markers = [*RUN.values(), *LEFT_OUT]
    blocks = section_blocks()
    assert len(blocks) == len(markers)  # 11 when written
    for code in blocks:
        assert sum(marker in code for marker in markers) == 1, code


def test_the_first_example_trains_and_detects_and_the_wrappers_detect_as_it_does():
    names = run(block("api"), {})
    model, images = names["model"], names["images"]
    # The four losses its comment names, and per image boxes in the image's own pixels.
    assert set(names["losses"]) == {
        "loss_objectness",
        "loss_rpn_box_reg",
        "loss_classifier",
        "loss_box_reg",
    }
    for image, found in zip(images, names["detections"], strict=True):
        assert set(found) == {"boxes", "labels", "scores"}
        assert len(found["boxes"]) > 0
        assert found["boxes"].ge(0).all()
        assert found["boxes"][:, 2:].le(torch.tensor(image.shape[:0:-1])).all()  # (W, H)
    weights = {key: value.clone() for key, value in model.state_dict().items()}
    with torch.no_grad():
        plain = [model([image])[0] for image in images]
    for name in ("faster inference", "test-time flips", "windows"):
        found = run(block(name), names)["detections"]
        assert [set(one) for one in found] == [{"boxes", "labels", "scores"}] * len(images)
    # "model left as it was"; each image fits one 800 x 1067 window whole (the small
    # preset resizes to at most 512), which gives the model's own detections, bit for bit.
    assert not model.training
    assert all(torch.equal(weights[key], value) for key, value in model.state_dict().items())
    for alone, windowed in zip(plain, names["detections"], strict=True):  # the last block's
        assert all(torch.equal(alone[key], windowed[key]) for key in alone)


def test_the_trainer_example_trains_and_writes_its_run(tmp_path: Path):
    code = block("trainer").replace("steps=200", "steps=1")
    code = code.replace('"runs/mine"', repr(str(tmp_path / "mine")))
    history = run(code, {})["history"]
    assert len(history) == 1
    assert (tmp_path / "mine" / "metrics.jsonl").is_file()


def test_the_presets_example_builds_the_changed_config():
    model = run(block("presets"), {})["model"]
    assert model.config.num_classes == 3
    assert model.config.anchors.sizes == ((16,), (32,), (64,), (128,), (256,))
    assert model.config.rpn.sampler == "hard_negative"


@pytest.mark.skipif(not MOBILENET_V2_FILE.exists(), reason=f"{MOBILENET_V2_FILE} is not present")
def test_the_backbone_example_loads_torchvision_s_imagenet_file():
    code = block("backbone weights").replace(
        '"mobilenet_v2-b0353104.pth"', repr(str(MOBILENET_V2_FILE))
    )
    report = run(code, {})["report"]
    assert len(report.loaded) == 260 and not report.missing and not report.unexpected
    assert sorted(report.dropped) == ["classifier.1.bias", "classifier.1.weight"]
