"""ONNX export: the exported file, run by ONNX Runtime, gives the eager detections.

The issue's tolerances: same count and labels, boxes within 1e-3 px, scores within 1e-4,
on several image sizes and aspect ratios, batched and alone, with and without detections.
Skipped without the optional ``onnx`` extra (``.ci/run`` installs it).
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import json
import re
import sys
import zlib
from pathlib import Path

import pytest
import torch

from faster_rcnn import models
from faster_rcnn.cli import main
from faster_rcnn.data.dataset import as_float_image
from faster_rcnn.export import OnnxDetector, export_onnx
from faster_rcnn.export.graph_ops import nms_rows, pool_levels
from faster_rcnn.insight.draw import to_pil
from faster_rcnn.train.checkpoint import save_model
from faster_rcnn.transform import resize_image
from spread_models import images_of_sizes, small_detector, spread_scores

pytestmark = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("onnx", "onnxscript", "onnxruntime")),
    reason="the onnx extra is not installed: pip install -e '.[onnx]'",
)

BATCHES = [[(240, 320), (300, 200)], [(480, 640)], [(100, 400), (333, 250), (250, 251)]]


def assert_same_detections(got, expected, box_rtol=0.0):
    assert len(got) == len(expected)
    for image, (g, e) in enumerate(zip(got, expected, strict=True)):
        assert torch.equal(g["labels"], e["labels"]), f"image {image}: labels differ"
        torch.testing.assert_close(g["boxes"], e["boxes"], atol=1e-3, rtol=box_rtol)
        torch.testing.assert_close(g["scores"], e["scores"], atol=1e-4, rtol=0)


@pytest.fixture(scope="module")
def small_export(tmp_path_factory):
    """The small preset saved, exported through the command line, and loaded back."""
    folder = tmp_path_factory.mktemp("small_export")
    model = small_detector()
    save_model(model, folder / "model.safetensors")
    assert main(["export", "--model", str(folder / "model.safetensors")]) == 0
    return model, folder / "model.onnx"


def test_exported_small_preset_gives_the_eager_detections(small_export):
    model, onnx_file = small_export
    detector = OnnxDetector(onnx_file)
    assert detector.config == model.config
    for sizes in BATCHES:
        images = images_of_sizes(sizes)
        with torch.no_grad():
            expected = model(images)
        assert all(len(e["scores"]) > 0 for e in expected)
        assert_same_detections(detector(images), expected)


def test_the_exported_dimensions_are_named_batch_height_and_width(small_export):
    """torch.export's symbols were the names Netron and ONNX Runtime showed: ``s34`` for
    the batch, ``s14`` and ``s54`` for the height and width, ``300*s34`` inside."""
    import onnx
    import onnxruntime

    _, onnx_file = small_export
    session = onnxruntime.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    assert [(i.name, i.shape) for i in session.get_inputs()] == [
        ("images", ["batch", 3, "height", "width"]),
        ("image_sizes", ["batch", 2]),
        ("original_sizes", ["batch", 2]),
    ]
    assert [(o.name, o.shape) for o in session.get_outputs()] == [
        ("boxes", ["batch", 100, 4]),
        ("scores", ["batch", 100]),
        ("labels", ["batch", 100]),
    ]
    graph = onnx.load(str(onnx_file)).graph
    values = (*graph.input, *graph.output, *graph.value_info)
    shapes = {d.dim_param for v in values for d in v.type.tensor_type.shape.dim if d.dim_param}
    assert "300*batch" in shapes and "((height + 31)//32)" in shapes
    assert {word for shape in shapes for word in re.findall(r"\b[a-z]\w*", shape)} == {
        "batch",
        "height",
        "width",
    }


def test_the_onnx_detector_takes_a_batch_tensor_and_grey_images_as_the_model_does(
    small_export,
):
    model, onnx_file = small_export
    detector = OnnxDetector(onnx_file)
    colour = images_of_sizes([(240, 320), (240, 320)])
    with torch.no_grad():
        expected = model(colour)
    assert all(len(e["scores"]) > 0 for e in expected)
    assert_same_detections(detector(torch.stack(colour)), expected)
    # A grey image is its channel three times. Each runtime is compared with itself: a
    # grey image's detections hold exact ties in score, which the two may order apart.
    grey = [image[:1] for image in colour]
    with torch.no_grad():
        for detect in (detector, model):
            got, as_colour = detect(grey), detect([g.expand(3, -1, -1) for g in grey])
            assert all(len(g["scores"]) > 0 for g in got)
            assert_same_detections(got, as_colour)


def test_onnx_runtime_run_on_a_batch_padded_to_no_multiple_gives_the_eager_detections(
    small_export,
):
    """README's graph inputs fed by hand, each image resized (375x500 to 320x426, 240x250
    to 320x333) and the batch padded to the largest alone, 320x426, not to a multiple of
    32 as the transform pads: the anchors' strides were the input's size over the
    feature maps' (426 // 14 = 30 px, not 32), and every box moved."""
    import onnxruntime

    model, onnx_file = small_export
    session = onnxruntime.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    images = images_of_sizes([(375, 500), (240, 250)])
    resized = [resize_image(image, 320, 512) for image in images]
    batch = torch.zeros(2, 3, 320, 426)
    for i, image in enumerate(resized):
        batch[i, :, : image.shape[1], : image.shape[2]] = image
    feeds = {
        "images": batch.numpy(),
        "image_sizes": torch.tensor([[320, 426], [320, 333]]).numpy(),
        "original_sizes": torch.tensor([[375, 500], [240, 250]]).numpy(),
    }
    boxes, scores, labels = (torch.from_numpy(o) for o in session.run(None, feeds))
    with torch.no_grad():
        expected = model(images)
    got = [
        {"boxes": b[lab > 0], "labels": lab[lab > 0], "scores": s[lab > 0]}
        for b, s, lab in zip(boxes, scores, labels, strict=True)
    ]
    assert all(len(e["scores"]) > 0 for e in expected)
    assert_same_detections(got, expected)


def test_the_onnx_detector_takes_uint8_levels_as_the_model_does(small_export):
    """A reader's item is uint8: made float as ``float()``, its levels were read as
    0..255 and the detections were of another image."""
    model, onnx_file = small_export
    detector = OnnxDetector(onnx_file)
    levels = [(image * 255).round().to(torch.uint8) for image in images_of_sizes(BATCHES[0])]
    scaled = [as_float_image(image) for image in levels]
    got = detector(levels)
    assert all(len(g["scores"]) > 0 for g in got)
    for g, e in zip(got, detector(scaled), strict=True):  # the same floats to the graph
        assert all(torch.equal(g[key], e[key]) for key in ("boxes", "scores", "labels"))
    with torch.no_grad():
        assert_same_detections(got, model(levels))


def test_predict_onnx_writes_the_eager_json(small_export, tmp_path):
    _, onnx_file = small_export
    images = tmp_path / "images"
    for folder in ("a", "b"):  # same-named files in two folders
        (images / folder).mkdir(parents=True)
    for i, image in enumerate(images_of_sizes([(120, 160), (90, 200)])):
        to_pil(image).save(images / ("a" if i == 0 else "b") / "img.png")
    model_file = onnx_file.with_name("model.safetensors")
    inputs = [str(images / "a"), str(images / "b")]
    assert main(["predict", "--onnx", str(onnx_file), *inputs, "--out", str(tmp_path / "o")]) == 0
    assert main(["predict", "--model", str(model_file), *inputs, "--out", str(tmp_path / "e")]) == 0
    got = json.loads((tmp_path / "o" / "detections.json").read_text())
    expected = json.loads((tmp_path / "e" / "detections.json").read_text())
    assert len(got) == len(expected) > 0
    for g, e in zip(got, expected, strict=True):
        assert (g["image_id"], g["category_id"]) == (e["image_id"], e["category_id"])
        assert g["bbox"] == pytest.approx(e["bbox"], abs=0.011)
        assert g["score"] == pytest.approx(e["score"], abs=2e-5)
    pictures = sorted(p.name for p in (tmp_path / "o").glob("*.png"))
    assert pictures == ["a_img_png.png", "b_img_png.png"]  # no proposals from ONNX


def test_predict_onnx_says_its_threshold_was_fixed_at_export(small_export, tmp_path, capsys):
    """``--model`` runs the head down to a ``--score`` under its threshold; an export
    cannot, and says so."""
    _, onnx_file = small_export
    image = tmp_path / "a.png"
    to_pil(images_of_sizes([(120, 160)])[0]).save(image)
    argv = ["predict", "--onnx", str(onnx_file), str(image), "--out", str(tmp_path / "o")]
    assert main([*argv, "--score", "0.01"]) == 0
    assert capsys.readouterr().err == (
        f"faster-rcnn: warning: --score 0.01: {onnx_file} returns no detection under 0.05, "
        "its box head's threshold when exported (--model runs the head down to it)\n"
    )


def test_exported_model_without_detections_returns_empty_results(small_export, tmp_path):
    """The module's graph, its background logit raised by 100 in the file's weights (an
    export of its own costs 40 s): no class passes the score threshold."""
    import onnx
    from onnx import numpy_helper

    _, onnx_file = small_export
    graph = onnx.load(str(onnx_file))
    (bias,) = [w for w in graph.graph.initializer if w.name.endswith("cls_score.bias")]
    silent = numpy_helper.to_array(bias).copy()
    silent[0] += 100
    bias.CopyFrom(numpy_helper.from_array(silent, bias.name))
    drop_checksum(graph)  # the bytes changed on purpose
    onnx.save(graph, str(tmp_path / "silent.onnx"))
    detector = OnnxDetector(tmp_path / "silent.onnx")
    results = detector(images_of_sizes([(240, 320), (100, 400)]))
    assert [len(r["scores"]) for r in results] == [0, 0]
    assert [tuple(r["boxes"].shape) for r in results] == [(0, 4), (0, 4)]


def drop_checksum(graph) -> None:
    """Remove the checksum entry from the ONNX ``graph`` (a ``ModelProto``), as an export
    of an older version lacks it: a file edited with ``onnx`` would fail it."""
    kept = [entry for entry in graph.metadata_props if entry.key != "faster_rcnn.crc32"]
    del graph.metadata_props[:]
    graph.metadata_props.extend(kept)


def recorded_crc(path: Path) -> str:
    import onnx

    entries = onnx.load(str(path)).metadata_props
    return {entry.key: entry.value for entry in entries}["faster_rcnn.crc32"]


def crc_of(data: bytes, recorded: str) -> str:
    """The CRC-32 of the ONNX file ``data`` with its checksum's digits as zeros, computed
    here on its own: the one metadata entry, as protobuf encodes it (tag 0x0a, the key's
    length 17, the key, tag 0x12, the value's length 8, the digits)."""
    key = b"\x0a\x11faster_rcnn.crc32\x12\x08"
    assert data.count(key + recorded.encode()) == 1
    return f"{zlib.crc32(data.replace(key + recorded.encode(), key + b'00000000')):08x}"


def test_an_export_records_the_crc32_of_its_bytes(small_export):
    _, onnx_file = small_export
    recorded = recorded_crc(onnx_file)
    assert re.fullmatch("[0-9a-f]{8}", recorded)
    assert recorded == crc_of(onnx_file.read_bytes(), recorded)


def damaged_copy(onnx_file: Path, path: Path, where: str) -> str:
    """``onnx_file`` copied to ``path``, a bit flipped in the box predictor's class
    weights or a digit of the config's ``min_size`` (320 -> 220); the CRC-32 its bytes
    then give."""
    import onnx

    data = bytearray(onnx_file.read_bytes())
    if where == "weight":
        initializers = onnx.load(str(onnx_file)).graph.initializer
        (weight,) = [w for w in initializers if w.name.endswith("cls_score.weight")]
        assert data.count(weight.raw_data) == 1
        data[data.index(weight.raw_data) + 1] ^= 0x40
    else:
        setting = b'"min_size": [\n      320'
        assert data.count(setting) == 1
        data[data.index(setting) + len(setting) - 3] ^= ord("3") ^ ord("2")
    path.write_bytes(data)
    return crc_of(bytes(data), recorded_crc(onnx_file))


def damage_message(path: Path, crc: str, recorded: str) -> str:
    return (
        f"{path} is damaged: its bytes give the CRC-32 {crc}, not the {recorded} written "
        "with them (copy it again, or export its model file again)"
    )


@pytest.mark.parametrize("where", ["weight", "config"])
def test_a_damaged_export_is_refused(small_export, tmp_path, where):
    """Before, ONNX Runtime ran a changed weight without a word, and the detector resized
    images by a changed config."""
    import onnx
    import onnxruntime

    _, onnx_file = small_export
    path = tmp_path / "damaged.onnx"
    crc = damaged_copy(onnx_file, path, where)
    onnxruntime.InferenceSession(str(path))  # what ran without a word
    metadata = {entry.key: entry.value for entry in onnx.load(str(path)).metadata_props}
    min_size = json.loads(metadata["faster_rcnn.config"])["transform"]["min_size"]
    assert min_size == ([220] if where == "config" else [320])
    with pytest.raises(ValueError) as refused:
        OnnxDetector(path)
    assert str(refused.value) == damage_message(path, crc, recorded_crc(onnx_file))


def test_predict_onnx_refuses_a_damaged_export_in_one_line(small_export, tmp_path, capsys):
    _, onnx_file = small_export
    path = tmp_path / "damaged.onnx"
    crc = damaged_copy(onnx_file, path, "weight")
    to_pil(images_of_sizes([(120, 160)])[0]).save(tmp_path / "img.png")
    argv = ["predict", "--onnx", str(path), str(tmp_path / "img.png")]
    assert main([*argv, "--out", str(tmp_path / "out")]) == 2
    message = damage_message(path, crc, recorded_crc(onnx_file))
    assert capsys.readouterr().err == f"faster-rcnn: error: {message}\n"


def test_an_export_stopped_before_its_checksum_is_in_leaves_the_earlier_file(tmp_path, monkeypatch):
    """Ctrl-C between the graph's write and its checksum's: the half-written file, whose
    placeholder would be refused as damaged, is not left where the export goes."""
    from faster_rcnn import file_checksum

    earlier = tmp_path / "model.onnx"
    earlier.write_bytes(b"the earlier export")

    def stopped(path, find):
        assert path != earlier and path.stat().st_size > 100_000  # the graph is written
        raise KeyboardInterrupt

    monkeypatch.setattr(file_checksum, "write_checksum", stopped)
    with pytest.raises(KeyboardInterrupt):
        export_onnx(small_detector(), earlier)
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]
    assert earlier.read_bytes() == b"the earlier export"


def test_an_export_that_records_no_checksum_still_loads_and_detects(small_export, tmp_path):
    """Exports of older versions, written before the checksum: nothing to check them
    against."""
    import onnx

    model, onnx_file = small_export
    graph = onnx.load(str(onnx_file))
    drop_checksum(graph)
    onnx.save(graph, str(tmp_path / "older.onnx"))
    assert b"faster_rcnn.crc32" not in (tmp_path / "older.onnx").read_bytes()
    images = images_of_sizes(BATCHES[0])
    with torch.no_grad():
        expected = model(images)
    assert_same_detections(OnnxDetector(tmp_path / "older.onnx")(images), expected)


def test_export_leaves_every_module_of_the_model_in_its_mode(tmp_path, monkeypatch):
    """A training loop that exports a snapshot goes on training: the modes come back, a
    backbone frozen in eval mode (as alternating training does) included, also when the
    export fails. The exporter (stubbed: a real export takes 40 s) sees the eval model."""
    model = models.small(4).train()
    model.backbone.eval()
    modes = [(name, module.training) for name, module in model.named_modules()]
    seen = []

    def exporter(graph, *args, **kwargs):
        seen.append(any(module.training for module in model.modules()))
        raise RuntimeError("stub exporter")

    monkeypatch.setattr(torch.onnx, "export", exporter)
    with pytest.raises(RuntimeError, match="stub exporter"):
        export_onnx(model, tmp_path / "snapshot.onnx")
    assert seen == [False]
    assert [(name, module.training) for name, module in model.named_modules()] == modes
    image = torch.rand(3, 100, 120, generator=torch.Generator().manual_seed(0))
    target = {"boxes": torch.tensor([[10.0, 20.0, 60.0, 80.0]]), "labels": torch.tensor([1])}
    losses = model([image], [target])
    assert set(losses) == {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"}


def test_exported_model_keeps_each_class_its_nms_threshold(tmp_path):
    model = small_detector()
    model.roi_heads.detections_per_img = 1000  # 100 would hide what NMS keeps
    model.roi_heads.class_nms_thresh = (0.9, 0.5, 0.2)
    detector = OnnxDetector(export_onnx(model, tmp_path / "classes.onnx"))
    images = images_of_sizes(BATCHES[0])
    with torch.no_grad():
        expected = model(images)
    assert_same_detections(detector(images), expected)


def test_exported_model_keeps_its_soft_nms(tmp_path):
    model = small_detector()
    model.roi_heads.soft_nms_sigma = 0.5
    detector = OnnxDetector(export_onnx(model, tmp_path / "soft.onnx"))
    images = images_of_sizes(BATCHES[2])
    with torch.no_grad():
        expected = model(images)
    assert sum(len(d["scores"]) for d in expected) > 0
    assert_same_detections(detector(images), expected)


def test_exported_fpn_preset_gives_the_eager_detections(tmp_path):
    torch.manual_seed(0)
    model = spread_scores(models.mobilenet_v3_large_320_fpn(5), reinit_backbone=True)
    detector = OnnxDetector(export_onnx(model, tmp_path / "fpn.onnx"))
    for sizes in BATCHES[:2]:
        images = images_of_sizes(sizes)
        with torch.no_grad():
            expected = model(images)
        # A He-initialised MobileNetV3 amplifies float noise (1e-7) to 2.4e-5 of a box's
        # coordinates (1e-2 px); a trained MobileNetV2 FPN stays within 3e-4 px (README).
        assert_same_detections(detector(images), expected, box_rtol=1e-4)


def _run_exported(module, inputs, tmp_path, dynamic_shapes=None):
    import onnxruntime

    from faster_rcnn.export.onnx_translations import translation_table

    program = torch.onnx.export(
        module.eval(),
        inputs,
        dynamic_shapes=dynamic_shapes,
        custom_translation_table=translation_table(),
        opset_version=18,
    )
    program.save(str(tmp_path / "op.onnx"))
    session = onnxruntime.InferenceSession(str(tmp_path / "op.onnx"))
    feeds = {i.name: t.numpy() for i, t in zip(session.get_inputs(), inputs, strict=True)}
    return torch.from_numpy(session.run(None, feeds)[0])


class _NMSRows(torch.nn.Module):
    def forward(self, boxes, scores):
        return nms_rows(boxes, scores, 0.5, 40)


def test_onnx_nms_equals_eager_nms_on_every_row(tmp_path):
    # The chain case: each box overlaps the next by more than 0.5, not the one after, so
    # greedy NMS keeps every other box (a traced loop keeps them all).
    chain = torch.tensor([[float(i * 3), 0.0, i * 3 + 10.0, 10.0] for i in range(8)])
    generator = torch.Generator().manual_seed(0)
    corners = torch.rand(3, 8, 2, generator=generator) * 100
    random_boxes = torch.cat(
        (corners, corners + 1 + torch.rand(3, 8, 2, generator=generator) * 40), 2
    )
    boxes = torch.cat((chain[None], random_boxes))
    scores = torch.rand(4, 8, generator=generator)
    scores[0] = torch.linspace(0.9, 0.2, 8)
    scores[1, ::3] = -torch.inf  # not candidates
    scores[2] = -torch.inf  # an empty row
    rows, candidates = torch.export.Dim.DYNAMIC, torch.export.Dim.DYNAMIC
    dynamic = ({0: rows, 1: candidates}, {0: rows, 1: candidates})
    got = _run_exported(_NMSRows(), (boxes, scores), tmp_path, dynamic)
    assert got[0, :5].tolist() == [0, 2, 4, 6, -1]
    assert torch.equal(got, nms_rows(boxes, scores, 0.5, 40))
    # Other sizes through the same file: the loop is never frozen to the example.
    import onnxruntime

    session = onnxruntime.InferenceSession(str(tmp_path / "op.onnx"))
    many = torch.cat((corners[:, :1].expand(3, 300, 2) + torch.rand(3, 300, 2) * 60,), 1)
    many_boxes = torch.cat((many, many + 5 + torch.rand(3, 300, 2) * 30), 2)
    many_scores = torch.rand(3, 300)
    out = session.run(None, {"boxes": many_boxes.numpy(), "scores": many_scores.numpy()})[0]
    assert torch.equal(torch.from_numpy(out), nms_rows(many_boxes, many_scores, 0.5, 40))


class _Pool(torch.nn.Module):
    def __init__(self, sampling_ratio: int, aligned: bool, max_pool: bool) -> None:
        super().__init__()
        self.options = (sampling_ratio, aligned, max_pool)

    def forward(self, fine, coarse, rois, levels):
        return pool_levels([fine, coarse], rois, levels, [0.25, 0.125], 7, *self.options)


@pytest.mark.parametrize(
    "options",
    [(2, False, False), (0, False, False), (2, True, False), (0, False, True)],
    ids=["roi_align", "roi_align_adaptive", "roi_align_aligned", "roi_pool"],
)
def test_onnx_pooling_equals_eager_pooling(options, tmp_path):
    generator = torch.Generator().manual_seed(0)
    fine = torch.randn(2, 8, 40, 48, generator=generator)
    coarse = torch.randn(2, 8, 20, 24, generator=generator)
    corners = torch.rand(30, 2, generator=generator) * 150
    sides = torch.rand(30, 2, generator=generator) * 60 + 1
    image = torch.randint(0, 2, (30, 1), generator=generator).float()
    rois = torch.cat((image, corners, corners + sides), 1)
    levels = torch.randint(0, 2, (30,), generator=generator)
    module = _Pool(*options)
    got = _run_exported(module, (fine, coarse, rois, levels), tmp_path)
    torch.testing.assert_close(got, module(fine, coarse, rois, levels), atol=1e-5, rtol=0)


def test_onnx_detector_refuses_other_onnx_files(tmp_path):
    _run_exported(_NMSRows(), (torch.rand(1, 3, 4), torch.rand(1, 3)), tmp_path)
    with pytest.raises(ValueError, match="not a faster-rcnn ONNX export"):
        OnnxDetector(tmp_path / "op.onnx")
    (tmp_path / "junk.onnx").write_text("not a model")
    with pytest.raises(ValueError, match=r"junk\.onnx: not an ONNX model"):
        OnnxDetector(tmp_path / "junk.onnx")
    # A model file given as --onnx was named in ONNX Runtime's protobuf parsing error.
    save_model(models.small(2), tmp_path / "model.safetensors")
    with pytest.raises(ValueError) as refused:
        OnnxDetector(tmp_path / "model.safetensors")
    assert str(refused.value) == (
        f"{tmp_path / 'model.safetensors'} is a model file, not an ONNX export: `predict "
        "--model` runs it, `export --model` writes its ONNX file"
    )


def test_onnx_detector_given_a_folder_names_the_export_in_it(tmp_path):
    """ONNX Runtime called a folder a file it could not parse (a protobuf error)."""
    with pytest.raises(ValueError) as refused:
        OnnxDetector(tmp_path)
    assert str(refused.value) == (
        f"{tmp_path} is a folder: pass an ONNX file (`faster-rcnn export` writes one)"
    )
    (tmp_path / "model.onnx").write_bytes(b"")  # a run's export, by its name
    with pytest.raises(ValueError) as refused:
        OnnxDetector(tmp_path)
    assert str(refused.value) == (
        f"{tmp_path} is a folder: pass the ONNX file in it, {tmp_path / 'model.onnx'}"
    )


class _BrokenInstall(importlib.abc.MetaPathFinder):
    """A finder that fails on ``name`` as an install missing its shared library does."""

    def __init__(self, name: str) -> None:
        self.name = name

    def find_spec(self, name, path, target=None):
        if name == self.name:
            raise ImportError(f"lib{name}.so: cannot open shared object file")
        return None


@pytest.mark.parametrize(
    ("module", "use"),
    [
        ("onnx", lambda path: export_onnx(models.small(2), path)),
        ("onnxscript", lambda path: export_onnx(models.small(2), path)),
        ("onnxruntime", OnnxDetector),
    ],
)
def test_a_module_of_the_extra_that_does_not_import_is_named_with_why(
    module, use, tmp_path, monkeypatch
):
    monkeypatch.delitem(sys.modules, module, raising=False)
    monkeypatch.setattr(sys, "meta_path", [_BrokenInstall(module), *sys.meta_path])
    with pytest.raises(ValueError) as refused:
        use(tmp_path / "model.onnx")
    assert str(refused.value) == (
        f"ONNX support needs {module} (lib{module}.so: cannot open shared object file): "
        "pip install -e '.[onnx]' (onnx, onnxscript, onnxruntime)"
    )
    assert not (tmp_path / "model.onnx").exists()
