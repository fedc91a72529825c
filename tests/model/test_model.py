"""The assembled detector: every preset trains and detects; the data contract holds."""

import functools
import io
import math

import pytest
import torch
from torch import nn

from faster_rcnn import AnchorGenerator, FasterRCNN, FasterRCNNConfig
from faster_rcnn.export import DetectionGraph
from faster_rcnn.matcher import ANCHOR_BANDS, PROPOSAL_BANDS, Matcher
from faster_rcnn.models import PRESETS, preset_config, resnet50_fpn_config, small
from faster_rcnn.ops.boxes import BoxCoder
from faster_rcnn.roi_heads import MultiScaleRoIAlign, SingleScaleRoIPool, TwoMLPHead
from faster_rcnn.roi_heads.predictor import FastRCNNPredictor
from faster_rcnn.rpn.head import RPNHead
from faster_rcnn.samplers import (
    BalancedPositiveNegativeSampler,
    ClassBalancedSampler,
    HardNegativeSampler,
)
from faster_rcnn.train.checkpoint import load_model, save_model
from spread_models import spread_scores
from torchvision_stand_ins import (
    TorchvisionBalancedPositiveNegativeSampler,
    TorchvisionBoxCoder,
    TorchvisionMatcher,
)


def tiny(name: str, num_classes: int = 3):
    """A preset's config at a small image size, so every preset runs in seconds."""
    cfg = preset_config(name, num_classes)
    return cfg.replace(transform={"min_size": (256,), "max_size": 384})


def batch():
    gen = torch.Generator().manual_seed(0)
    images = [torch.rand(3, 100, 150, generator=gen), torch.rand(3, 120, 90, generator=gen)]
    targets = [
        {
            "boxes": torch.tensor([[10.0, 20.0, 60.0, 80.0], [70, 10, 140, 50]]),
            "labels": torch.tensor([1, 2]),
        },
        {"boxes": torch.zeros((0, 4)), "labels": torch.zeros((0,), dtype=torch.int64)},
    ]
    return images, targets


def reloaded_detecting_alike(model: FasterRCNN, path, images) -> tuple[FasterRCNN, list]:
    """``model`` saved to ``path`` and loaded back, once it is shown to detect on
    ``images`` exactly as ``model`` does (eval mode); and its detections."""
    save_model(model, path)
    loaded = load_model(path)
    with torch.no_grad():
        expected, got = model.eval()(images), loaded(images)
    for x, y in zip(got, expected, strict=True):
        assert all(torch.equal(x[key], y[key]) for key in x)
    return loaded, got


@pytest.mark.parametrize("name", list(PRESETS))
def test_preset_trains_and_detects(name):
    # Fewer RoIs than the presets' 512 and 1000: ResNet-50 FPN v2's four-convolution box
    # head took 30 of its 36 s on them, and every stage runs as it does at full counts.
    light = {"rpn": {"post_nms_top_n_test": 100}, "roi_heads": {"batch_size_per_image": 128}}
    torch.manual_seed(0)
    model = FasterRCNN.from_config(tiny(name).replace(**light))
    images, targets = batch()

    model.train()
    losses = model(images, targets, generator=torch.Generator().manual_seed(0))
    assert set(losses) == {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"}
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert model.rpn.head.cls_logits.weight.grad.abs().sum() > 0
    assert model.roi_heads.box_predictor.cls_score.weight.grad.abs().sum() > 0
    trained_backbone = [p for p in model.backbone.parameters() if p.requires_grad]
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in trained_backbone)

    model.eval()
    with torch.no_grad():
        detections = model(images)
    assert len(detections) == 2
    for det, image in zip(detections, images, strict=True):
        assert set(det) == {"boxes", "labels", "scores"}
        assert det["labels"].dtype == torch.int64
        boxes = det["boxes"]
        assert (boxes[:, 0::2] >= 0).all() and (boxes[:, 0::2] <= image.shape[2]).all()
        assert (boxes[:, 1::2] >= 0).all() and (boxes[:, 1::2] <= image.shape[1]).all()


@pytest.mark.parametrize("name", list(PRESETS))
def test_a_batch_that_leaves_the_head_no_roi_trains_the_rpn(name):
    """Images without objects whose proposals all score under the RPN's threshold (here
    0.999, where an untrained RPN scores about 0.5) leave the head no RoI: its losses are
    zero, not the NaN of a mean over none, and the RPN still learns from the batch."""
    torch.manual_seed(0)
    model = FasterRCNN.from_config(tiny(name).replace(rpn={"score_thresh": 0.999})).train()
    images = batch()[0]
    empty = {"boxes": torch.zeros((0, 4)), "labels": torch.zeros((0,), dtype=torch.int64)}
    losses = model(images, [empty, empty], generator=torch.Generator().manual_seed(0))
    assert losses["loss_classifier"].item() == 0 and losses["loss_box_reg"].item() == 0
    assert losses["loss_objectness"].item() > 0.1
    sum(losses.values()).backward()
    assert model.rpn.head.cls_logits.weight.grad.abs().sum() > 0
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert all(torch.isfinite(g).all() for g in grads)


def test_resnet50_fpn_has_torchvisions_module_tree():
    # fasterrcnn_resnet50_fpn: 295 state-dict entries and 41,755,286 parameters (its
    # published figure; frozen batch-norm statistics and affine terms are buffers).
    with torch.device("meta"):
        model = FasterRCNN.from_config(resnet50_fpn_config())
    state = model.state_dict()
    assert len(state) == 295
    assert sum(p.numel() for p in model.parameters()) == 41_755_286
    expected = {
        "backbone.body.conv1.weight": (64, 3, 7, 7),
        "backbone.body.bn1.running_var": (64,),
        "backbone.body.layer1.0.downsample.0.weight": (256, 64, 1, 1),
        "backbone.body.layer4.2.conv3.weight": (2048, 512, 1, 1),
        "backbone.fpn.inner_blocks.3.0.weight": (256, 2048, 1, 1),
        "backbone.fpn.layer_blocks.0.0.weight": (256, 256, 3, 3),
        "rpn.head.conv.0.0.weight": (256, 256, 3, 3),
        "rpn.head.cls_logits.weight": (3, 256, 1, 1),
        "rpn.head.bbox_pred.weight": (12, 256, 1, 1),
        "roi_heads.box_head.fc6.weight": (1024, 256 * 7 * 7),
        "roi_heads.box_head.fc7.weight": (1024, 1024),
        "roi_heads.box_predictor.cls_score.weight": (91, 1024),
        "roi_heads.box_predictor.bbox_pred.weight": (364, 1024),
    }
    for key, shape in expected.items():
        assert tuple(state[key].shape) == shape, key
    # torchvision's default: layer2..layer4 train, conv1 and layer1 are frozen.
    trainable = {
        k.split(".")[2]
        for k, p in model.named_parameters()
        if p.requires_grad and k.startswith("backbone.body.")
    }
    assert trainable == {"layer2", "layer3", "layer4"}


def test_state_dict_round_trip_gives_identical_detections():
    torch.manual_seed(0)
    model = FasterRCNN.from_config(tiny("small")).eval()
    torch.manual_seed(1)
    other = FasterRCNN.from_config(tiny("small")).eval()
    other.load_state_dict(model.state_dict(), strict=True)
    images, _ = batch()
    with torch.no_grad():
        a, b = model(images), other(images)
    for x, y in zip(a, b, strict=True):
        for key in x:
            torch.testing.assert_close(x[key], y[key])


def test_a_model_built_on_the_meta_device_detects_once_a_state_dict_is_assigned():
    """Built under ``torch.device("meta")`` (no memory, no random draws) and given its
    weights by ``load_state_dict(assign=True)``, as torchvision's detectors can be, the
    model detects as the one the state dict came from: its anchors, which are no
    parameter or buffer, hold values."""
    torch.manual_seed(0)
    model = FasterRCNN.from_config(tiny("small")).eval()
    with torch.device("meta"):
        empty = FasterRCNN.from_config(tiny("small"))
    empty.load_state_dict(model.state_dict(), strict=True, assign=True)
    images, _ = batch()
    with torch.no_grad():
        expected, found = model(images), empty.eval()(images)
    assert len(expected[0]["boxes"]) > 0
    for x, y in zip(found, expected, strict=True):
        assert all(torch.equal(x[key], y[key]) for key in ("boxes", "labels", "scores"))


def test_torch_save_of_the_whole_model_round_trips_with_identical_detections():
    torch.manual_seed(0)
    model = FasterRCNN.from_config(tiny("small")).eval()
    model.memory_format = torch.channels_last
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    assert loaded.memory_format == torch.channels_last and loaded.config == model.config
    images, _ = batch()
    with torch.no_grad():
        a, b = model(images), loaded(images)
    for x, y in zip(a, b, strict=True):
        assert x.keys() == y.keys() and all(torch.equal(x[key], y[key]) for key in x)
    with pytest.raises(TypeError, match=r"^memory_format must be a torch\.memory_format, got 'x'$"):
        model.memory_format = "x"


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")
def test_torchscript_is_refused_in_one_line_naming_what_exports_the_model():
    """torch.jit.script fails on a type annotation of the model's Python; it is refused
    before, naming the exports and torch.compile."""
    model = FasterRCNN.from_config(tiny("small"))
    with pytest.raises(RuntimeError) as refused:
        torch.jit.script(model)
    assert str(refused.value) == (
        "TorchScript cannot compile FasterRCNN (its Python goes beyond what TorchScript "
        "reads): export it with faster_rcnn.export.export_onnx (`faster-rcnn export`) or "
        "torch.export of faster_rcnn.export.DetectionGraph(model), or run torch.compile(model)"
    )


def test_settings_set_on_the_modules_are_what_a_model_file_records(tmp_path):
    """torchvision's users change the thresholds and the resize on the built model: the
    config follows, so the model file detects as the model that wrote it."""
    torch.manual_seed(0)
    model = spread_scores(FasterRCNN.from_config(tiny("small")))
    images, _ = batch()
    with torch.no_grad():
        before = model(images)[0]
    model.roi_heads.score_thresh = float(before["scores"][4])
    model.roi_heads.detections_per_img = 3
    model.roi_heads.nms_thresh = 0.3
    model.rpn.nms_thresh = 0.6
    model.transform.min_size = (192,)
    loaded, got = reloaded_detecting_alike(model, tmp_path / "model.safetensors", images)
    assert loaded.config.transform.min_size == (192,) and loaded.rpn.nms_thresh == 0.6
    assert loaded.roi_heads.detections_per_img == 3 and loaded.roi_heads.nms_thresh == 0.3
    assert 0 < len(got[0]["scores"]) <= 3
    with pytest.raises(ValueError, match=r"^roi_heads\.score_thresh = 1\.5: must be in \[0, 1\)$"):
        model.roi_heads.score_thresh = 1.5


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("roi_heads.soft_nms_sigma", 0.5),
        ("roi_heads.soft_nms_min_score", 0.05),
        ("roi_heads.min_box_size", 4.0),
        ("roi_heads.smooth_l1_beta", 0.5),
        ("roi_heads.class_nms_thresh", (0.4, 0.6)),
        ("roi_heads.target_creator.gt_jitter", 3),
        ("rpn.loss_normalization", "paper"),
        ("rpn.box_loss_weight", 5.0),
        ("rpn.smooth_l1_beta", 0.25),
        ("rpn.target_creator.allowed_border", 0.0),
        ("transform.multi_scale_per", "batch"),
        ("transform.train_window", (48, 48)),
    ],
)
def test_a_setting_the_modules_take_is_what_a_model_file_records(tmp_path, setting, value):
    """Each of these, set on the built model's modules, changed what it detects or how it
    trains, but ``model.config`` never read it: a model file silently dropped it and the
    model loaded from it ran with the default."""
    torch.manual_seed(0)
    model = small(num_classes=3)
    *path, name = setting.split(".")
    module = functools.reduce(getattr, path, model)
    assert getattr(module, name) != value  # not the default
    setattr(module, name, value)
    save_model(model, tmp_path / "model.safetensors")
    loaded = load_model(tmp_path / "model.safetensors")
    assert getattr(functools.reduce(getattr, path, loaded), name) == value


@pytest.mark.parametrize(
    ("setting", "value", "refusal"),
    [
        # Each failed later, in the forward pass or training step, in torch's words...
        (
            "roi_heads.score_thresh",
            None,
            r"roi_heads\.score_thresh = None: must be a number, got None",
        ),
        (
            "roi_heads.detections_per_img",
            2.5,
            r"roi_heads\.detections_per_img = 2\.5: must be an integer, got 2\.5",
        ),
        ("rpn.smooth_l1_beta", -1.0, r"rpn\.smooth_l1_beta = -1\.0: must be >= 0"),
        (
            "rpn.loss_normalization",
            "sum",
            r"rpn\.loss_normalization = 'sum': must be one of 'per_sample', 'paper'; got 'sum'",
        ),
        (
            "rpn.box_coder.weights",
            (1.0, 1.0),
            r"box_coder\.weights = \(1\.0, 1\.0\): must have 4 values, got 2",
        ),
        ("transform.size_divisible", 0, r"transform\.size_divisible = 0: must be in \[1, 256\]"),
        ("transform.min_size", (), r"transform\.min_size = \(\): must be at least one size"),
        (
            "rpn.target_creator.allowed_border",
            "x",
            r"rpn\.target_creator\.allowed_border = 'x': must be a number, got 'x'",
        ),
        (
            "roi_heads.target_creator.gt_jitter",
            2.5,
            r"roi_heads\.target_creator\.gt_jitter = 2\.5: must be an integer, got 2\.5",
        ),
        (
            "roi_heads.class_nms_thresh",
            (0.5,),
            r"roi_heads\.class_nms_thresh = \(0\.5,\): must be empty or 2 IoUs, one per class "
            r"without the background; got 1",
        ),
        (
            "roi_heads.box_roi_pool.output_size",
            64,
            r"roi_heads\.box_roi_pool\.output_size = 64: must be in \[1, 32\]",
        ),
        (
            "roi_heads.box_roi_pool.output_size",
            (7, 0),
            r"roi_heads\.box_roi_pool\.output_size\[1\] = 0: must be in \[1, 32\]",
        ),
        # ... or ran with it, and model.config refused it at save, or never.
        ("roi_heads.detections_per_img", 0, r"roi_heads\.detections_per_img = 0: must be >= 1"),
        ("roi_heads.nms_thresh", math.nan, r"roi_heads\.nms_thresh = nan: must be finite, got nan"),
        (
            "roi_heads.soft_nms_min_score",
            1.0,
            r"roi_heads\.soft_nms_min_score = 1\.0: must be in \[0, 1\)",
        ),
        (
            "roi_heads.fg_bg_sampler.positive_fraction",
            2.0,
            r"fg_bg_sampler\.positive_fraction = 2\.0: must be in \[0, 1\]",
        ),
        (
            "rpn.fg_bg_sampler.batch_size_per_image",
            0,
            r"fg_bg_sampler\.batch_size_per_image = 0: must be >= 1",
        ),
        ("rpn.score_thresh", 1.0, r"rpn\.score_thresh = 1\.0: must be in \[0, 1\)"),
        (
            "rpn.box_loss_weight",
            -1.0,
            r"rpn\.box_loss_weight = -1\.0: must be in \[0, 3\.4e\+38\] \(finite in float32\)",
        ),
        (
            "roi_heads.box_coder.weights",
            (0.0, 1.0, 1.0, 1.0),
            r"box_coder\.weights = \(0\.0, 1\.0, 1\.0, 1\.0\): must be positive",
        ),
        (
            "rpn.anchor_generator.offset",
            1.5,
            r"rpn\.anchor_generator\.offset = 1\.5: must be in \[0, 1\)",
        ),
        (
            "transform.image_std",
            (0.0, 1.0, 1.0),
            r"transform\.image_std = \(0\.0, 1\.0, 1\.0\): must be positive",
        ),
        (
            "transform.multi_scale_per",
            "epoch",
            r"transform\.multi_scale_per = 'epoch': must be one of 'image', 'batch'; got 'epoch'",
        ),
        (
            "transform.train_window",
            (8, 8),
            r"transform\.train_window = \(8, 8\): must be two sides in \[32, 16384\] px",
        ),
        (
            "rpn.target_creator.allowed_border",
            -5,
            r"rpn\.target_creator\.allowed_border = -5: must be >= 0, or -1 to keep every anchor",
        ),
        (
            "roi_heads.target_creator.gt_jitter",
            65,
            r"roi_heads\.target_creator\.gt_jitter = 65: must be in \[0, 64\], the RoIs sampled "
            r"an image",
        ),
        (
            "roi_heads.class_nms_thresh",
            (0.5, 0.5, 0.5),
            r"roi_heads\.class_nms_thresh = \(0\.5, 0\.5, 0\.5\): must be empty or 2 IoUs, one "
            r"per class without the background; got 3",
        ),
        (
            "rpn.proposal_matcher.high_threshold",
            1.5,
            r"proposal_matcher\.high_threshold = 1\.5: bg_iou_thresh \(0\.3\) must be ordered "
            r"0\.0 <= bg_iou_thresh \(0\.3\) <= fg_iou_thresh \(1\.5\) <= 1\.0",
        ),
        (
            "rpn.proposal_matcher.low_threshold",
            -0.5,
            r"proposal_matcher\.low_threshold = -0\.5: must be ordered 0\.0 <= bg_iou_thresh "
            r"\(-0\.5\) <= fg_iou_thresh \(0\.5\) <= 1\.0",
        ),
        (
            "rpn.proposal_matcher.low_quality_min_iou",
            0.9,
            r"proposal_matcher\.low_quality_min_iou = 0\.9: must be ordered 0\.0 <= "
            r"low_quality_min_iou \(0\.9\) <= fg_iou_thresh \(0\.5\) <= 1\.0",
        ),
        (
            "rpn.proposal_matcher.thresholds",
            (0.3, 1.5),
            r"proposal_matcher\.thresholds\[1\] = 1\.5: bg_iou_thresh \(0\.3\) must be ordered "
            r"0\.0 <= bg_iou_thresh \(0\.3\) <= fg_iou_thresh \(1\.5\) <= 1\.0",
        ),
        (
            "roi_heads.proposal_matcher.thresholds",
            (-0.1, 0.5, 0.5),
            r"proposal_matcher\.thresholds\[0\] = -0\.1: must be ordered 0\.0 <= bg_iou_thresh_lo "
            r"\(-0\.1\) <= bg_iou_thresh_hi \(0\.5\) <= fg_iou_thresh \(0\.5\) <= 1\.0",
        ),
        (
            "roi_heads.box_roi_pool.sampling_ratio",
            -3,
            r"roi_heads\.box_roi_pool\.sampling_ratio = -3: must be >= 1, or 0 or -1 for adaptive",
        ),
        (
            "roi_heads.box_roi_pool.canonical_level",
            0,
            r"roi_heads\.box_roi_pool\.canonical_level = 0: must be in \[1, 14\] \(the level of "
            r"stride 2\*\*k\), got 0",
        ),
        (
            "roi_heads.box_roi_pool.featmap_names",
            ("0", "0"),
            r"roi_heads\.box_roi_pool\.featmap_names = \('0', '0'\): must be names of different "
            r"maps, got \('0', '0'\)",
        ),
    ],
)
def test_a_value_its_config_field_refuses_is_refused_where_it_is_set(setting, value, refusal):
    """torchvision's users set values on the built model's modules: one that its config
    field refuses was taken, and failed later in torch's words, or ran (no detections
    at ``detections_per_img = 0``, NaN losses at ``image_std`` 0) until ``model.config``
    refused it at save. It is refused where it is set, by the config's rule, and the
    module keeps its value."""
    torch.manual_seed(0)
    model = FasterRCNN.from_config(tiny("small"))
    *path, name = setting.split(".")
    module = functools.reduce(getattr, path, model)
    before = getattr(module, name)
    with pytest.raises(ValueError, match=f"^{refusal}$"):
        setattr(module, name, value)
    assert getattr(module, name) == before and model.config == tiny("small")


def test_a_clamp_set_on_a_box_coder_in_place_is_refused():
    """``model.roi_heads.box_coder.bbox_xform_clip = 2.0`` clamped the detections' boxes
    while the config, which records no clamp, kept the default: a model file detected
    otherwise. A box coder of another clamp set whole is refused alike."""
    torch.manual_seed(0)
    model = FasterRCNN.from_config(tiny("small"))
    for coder in (model.rpn.box_coder, model.roi_heads.box_coder):
        with pytest.raises(
            ValueError,
            match=r"^box_coder\.bbox_xform_clip = 2\.0: the config records no clamp \(a model "
            r"file would clamp at log\(1000 / 16\)\); set the weights alone$",
        ):
            coder.bbox_xform_clip = 2.0
        assert coder.bbox_xform_clip == math.log(1000.0 / 16)
    model.roi_heads.box_coder.weights = (5.0, 5.0, 2.0, 2.0)
    assert model.config.roi_heads.box_coder_weights == (5.0, 5.0, 2.0, 2.0)


def test_an_nms_threshold_the_head_would_not_use_is_refused_where_it_is_set():
    """``model.roi_heads.nms_thresh = 0.3`` on a head with per-class thresholds or
    Soft-NMS changed neither its detections nor anything but the config's field."""
    torch.manual_seed(0)
    config = tiny("small").replace(roi_heads={"class_nms_thresh": (0.6, 0.4)})
    heads = FasterRCNN.from_config(config).roi_heads
    with pytest.raises(
        ValueError,
        match=r"^roi_heads\.nms_thresh = 0\.3 would change nothing: the head keeps each class "
        r"its own \(roi_heads\.class_nms_thresh = \(0\.6, 0\.4\)\); set those, or "
        r"roi_heads\.class_nms_thresh = \(\) first for one threshold$",
    ):
        heads.nms_thresh = 0.3
    heads.nms_thresh = 0.5  # the threshold it has
    heads.class_nms_thresh = ()
    heads.nms_thresh = 0.3
    heads.soft_nms_sigma = 0.5
    with pytest.raises(
        ValueError, match=r"^roi_heads\.nms_thresh = 0\.4 would change nothing: .* Soft-NMS"
    ):
        heads.nms_thresh = 0.4
    assert heads.nms_thresh == 0.3


def test_gt_jitter_and_the_rois_sampled_are_checked_against_each_other_where_set():
    """More jittered copies of a GT box than the RoIs an image samples, set as
    ``gt_jitter`` or by lowering the sampler's batch (or setting a sampler of a smaller
    one) below it, were taken and trained until ``model.config`` refused them: refused
    where set, by the config's rule, against the head's sampler of that moment."""
    torch.manual_seed(0)
    model = FasterRCNN.from_config(tiny("small"))  # 64 RoIs an image
    creator, sampler = model.roi_heads.target_creator, model.roi_heads.fg_bg_sampler
    creator.gt_jitter = 5
    with pytest.raises(
        ValueError,
        match=r"^fg_bg_sampler\.batch_size_per_image = 4: gt_jitter \(5\) must be in \[0, 4\], "
        r"the RoIs sampled an image$",
    ):
        sampler.batch_size_per_image = 4
    with pytest.raises(ValueError, match=r"^fg_bg_sampler\.batch_size_per_image = 3: gt_jitter "):
        model.roi_heads.fg_bg_sampler = BalancedPositiveNegativeSampler(3, 0.25)
    assert model.roi_heads.fg_bg_sampler is sampler and sampler.batch_size_per_image == 64
    sampler.batch_size_per_image = 5  # as many RoIs as copies
    with pytest.raises(
        ValueError,
        match=r"^roi_heads\.target_creator\.gt_jitter = 6: must be in \[0, 5\], the RoIs "
        r"sampled an image$",
    ):
        creator.gt_jitter = 6
    # Checked against the sampler the head draws with now, not the one it was built with.
    model.roi_heads.fg_bg_sampler = BalancedPositiveNegativeSampler(8, 0.25)
    creator.gt_jitter = 8
    sampler.batch_size_per_image = 1  # no longer the head's
    model.rpn.fg_bg_sampler.batch_size_per_image = 1  # the RPN has no GT jitter
    assert (model.config.roi_heads.gt_jitter, model.config.roi_heads.batch_size_per_image) == (8, 8)
    # More copies than the config's default 512 RoIs: still checked against the head's.
    model.roi_heads.fg_bg_sampler.batch_size_per_image = 1024
    creator.gt_jitter = 600
    with pytest.raises(ValueError, match=r"^fg_bg_sampler\.batch_size_per_image = 599: gt_jitter"):
        model.roi_heads.fg_bg_sampler.batch_size_per_image = 599


def test_iou_thresholds_set_one_at_a_time_are_checked_against_the_others_as_they_are():
    """A matcher's IoU thresholds set one at a time (``high_threshold``,
    ``low_threshold``, the RPN's ``low_quality_min_iou``) out of the config's order or of
    [0, 1] were taken, and labelled, until ``model.config`` refused them (or one out of
    order was refused in other words than the config's): refused where set, by the
    config's rule, against the matcher's other thresholds; a valid pair is set in either
    order."""
    torch.manual_seed(0)
    model = FasterRCNN.from_config(tiny("small"))
    rpn, heads = model.rpn.proposal_matcher, model.roi_heads.proposal_matcher
    assert (rpn.thresholds, heads.thresholds) == ((0.3, 0.5), (0.0, 0.5, 0.5))
    rpn.high_threshold, rpn.low_threshold = 0.9, 0.8  # high first: up
    rpn.low_threshold, rpn.high_threshold = 0.1, 0.2  # low first: down
    with pytest.raises(
        ValueError,
        match=r"^proposal_matcher\.high_threshold = 0\.05: bg_iou_thresh \(0\.1\) must be "
        r"ordered 0\.0 <= bg_iou_thresh \(0\.1\) <= fg_iou_thresh \(0\.05\) <= 1\.0$",
    ):
        rpn.high_threshold = 0.05
    rpn.low_quality_min_iou = 0.2  # rule (i)'s floor, at most the positive threshold
    with pytest.raises(
        ValueError,
        match=r"^proposal_matcher\.high_threshold = 0\.15: low_quality_min_iou \(0\.2\) must "
        r"be ordered 0\.0 <= low_quality_min_iou \(0\.2\) <= fg_iou_thresh \(0\.15\) <= 1\.0$",
    ):
        rpn.high_threshold = 0.15
    with pytest.raises(ValueError, match=r"^proposal_matcher\.low_quality_min_iou = 0\.3: must "):
        rpn.low_quality_min_iou = 0.3
    heads.low_threshold, heads.high_threshold = 0.3, 0.7
    heads.high_threshold, heads.low_threshold = 0.4, 0.4
    with pytest.raises(ValueError, match=r"^proposal_matcher\.low_threshold = 0\.45: "):
        heads.low_threshold = 0.45
    assert (rpn.thresholds, rpn.low_quality_min_iou) == ((0.1, 0.2), 0.2)
    assert heads.thresholds == (0.0, 0.4, 0.4)
    config = model.config
    assert (config.rpn.bg_iou_thresh, config.rpn.fg_iou_thresh) == (0.1, 0.2)
    assert (config.roi_heads.bg_iou_thresh_hi, config.roi_heads.fg_iou_thresh) == (0.4, 0.4)


def test_a_whole_matcher_or_its_thresholds_set_are_checked_by_the_stage_config():
    """A matcher set whole (``rpn.proposal_matcher = Matcher(...)``, torchvision's too) or
    its ``thresholds`` set directly were checked for ascending order only: an IoU out of
    [0, 1], or a positive threshold under the RPN's floor of rule (i), was taken and
    labelled until ``model.config`` refused it. Refused where set, by the stage config's
    rules, each boundary against the others set with it."""
    torch.manual_seed(0)
    model = FasterRCNN.from_config(tiny("small"))
    rpn = model.rpn.proposal_matcher
    with pytest.raises(
        ValueError,
        match=r"^proposal_matcher\.thresholds\[1\] = 1\.5: bg_iou_thresh \(0\.3\) must be "
        r"ordered 0\.0 <= bg_iou_thresh \(0\.3\) <= fg_iou_thresh \(1\.5\) <= 1\.0$",
    ):
        model.rpn.proposal_matcher = Matcher((0.3, 1.5), ANCHOR_BANDS)
    with pytest.raises(ValueError, match=r"^proposal_matcher\.thresholds\[2\] = 1\.2: "):
        model.roi_heads.proposal_matcher = TorchvisionMatcher(1.2, 0.5)
    assert model.rpn.proposal_matcher is rpn
    rpn.low_quality_min_iou = 0.3
    with pytest.raises(
        ValueError,
        match=r"^proposal_matcher\.thresholds\[1\] = 0\.2: low_quality_min_iou \(0\.3\) must "
        r"be ordered 0\.0 <= low_quality_min_iou \(0\.3\) <= fg_iou_thresh \(0\.2\) <= 1\.0$",
    ):
        rpn.thresholds = (0.1, 0.2)
    with pytest.raises(
        ValueError,
        match=r"^proposal_matcher\.thresholds\[2\] = 0\.7: bg_iou_thresh_lo \(0\.6\) must be "
        r"ordered 0\.0 <= bg_iou_thresh_lo \(0\.6\) <= bg_iou_thresh_hi \(0\.5\) <= "
        r"fg_iou_thresh \(0\.7\) <= 1\.0$",
    ):
        model.roi_heads.proposal_matcher.thresholds = (0.6, 0.5, 0.7)
    # Both above the old positive threshold (0.5): checked against each other, not it.
    rpn.thresholds = (0.6, 0.8)
    model.roi_heads.proposal_matcher = Matcher((0.1, 0.4, 0.6), PROPOSAL_BANDS)
    assert rpn.config_settings() == {
        "bg_iou_thresh": 0.6,
        "fg_iou_thresh": 0.8,
        "low_quality_min_iou": 0.3,
    }
    config = model.config
    assert (config.rpn.bg_iou_thresh, config.rpn.fg_iou_thresh) == (0.6, 0.8)
    assert config.rpn.low_quality_min_iou == 0.3
    heads = config.roi_heads
    assert (heads.bg_iou_thresh_lo, heads.bg_iou_thresh_hi, heads.fg_iou_thresh) == (0.1, 0.4, 0.6)


def test_a_matcher_s_thresholds_set_as_one_number_are_refused_naming_the_bands():
    """``matcher.thresholds = 0.5`` (one IoU, not a tuple) failed in ``len()`` with a
    TypeError traceback, on either stage's matcher. Refused where set, saying how many
    IoUs its bands take; the matcher keeps its own."""
    torch.manual_seed(0)
    model = FasterRCNN.from_config(tiny("small"))
    with pytest.raises(
        ValueError,
        match=r"^proposal_matcher\.thresholds = 0\.5: must be a tuple of 2 IoUs, the "
        r"boundaries of its bands \(0, -1, 1\)$",
    ):
        model.rpn.target_creator.matcher.thresholds = 0.5
    with pytest.raises(
        ValueError,
        match=r"^proposal_matcher\.thresholds = 0\.5: must be a tuple of 3 IoUs, the "
        r"boundaries of its bands \(-1, 0, -1, 1\)$",
    ):
        model.roi_heads.proposal_matcher.thresholds = 0.5
    with pytest.raises(
        ValueError, match=r"^proposal_matcher\.thresholds = 0\.5: must be a tuple of 1 IoU,"
    ):
        Matcher(0.5, (0, 1))
    assert model.rpn.proposal_matcher.thresholds == (0.3, 0.5)
    assert model.roi_heads.proposal_matcher.thresholds == (0.0, 0.5, 0.5)


def test_a_stage_matcher_s_band_labels_are_refused_where_set():
    """Band labels set on a built model's matcher (``matcher.labels = (0, 1, 1)``) were
    taken: no config describes a matcher of other bands, so ``model.config`` silently kept
    the old IoUs. Refused where set, naming the stage's bands; another matcher takes one
    label per band."""
    torch.manual_seed(0)
    model = FasterRCNN.from_config(tiny("small"))
    rpn = model.rpn.target_creator.matcher
    with pytest.raises(
        ValueError,
        match=r"^proposal_matcher\.labels = \(0, 1, 1\): must be \(0, -1, 1\), the bands "
        r"RPNConfig describes \(negative, ignored, positive\)$",
    ):
        rpn.labels = (0, 1, 1)
    with pytest.raises(ValueError, match=r"^proposal_matcher\.labels = \(0, -1, 1\): must be "):
        model.roi_heads.proposal_matcher.labels = ANCHOR_BANDS
    with pytest.raises(ValueError, match=r"^proposal_matcher\.labels = 1: must be a tuple of"):
        rpn.labels = 1
    with pytest.raises(ValueError, match=r"labels = \(0, 2, 1\): must be 1, 0 or -1"):
        rpn.labels = (0, 2, 1)
    rpn.labels = [0, -1, 1]  # the same bands
    assert rpn.labels == ANCHOR_BANDS
    assert model.roi_heads.proposal_matcher.labels == PROPOSAL_BANDS
    other = Matcher((0.2, 0.6), (0, 0, 1))
    with pytest.raises(
        ValueError,
        match=r"^proposal_matcher\.labels = \(0, 1\): must be 3 labels, one per band of its "
        r"2 thresholds$",
    ):
        other.labels = (0, 1)
    other.labels = (-1, 0, 1)
    assert other(torch.tensor([[0.1, 0.3, 0.7]]))[1].tolist() == [-1, 0, 1]


def test_a_single_scale_pooler_s_map_name_is_checked_where_it_is_set():
    """``SingleScaleRoIPool.featmap_name`` was taken unchecked, given or set: a name that
    is not a str failed only in the forward pass ("feature maps [3] requested") or in
    ``model.config``. Refused where set by the config's rule for ``pooler="pool"``'s one
    name, and the pooler keeps its own."""
    torch.manual_seed(0)
    model = FasterRCNN.from_config(tiny("small"))
    model.roi_heads.box_roi_pool = pool = SingleScaleRoIPool("2", 7)
    with pytest.raises(
        ValueError, match=r"^roi_heads\.box_roi_pool\.featmap_name = 3: must be a str, got 3$"
    ):
        pool.featmap_name = 3
    with pytest.raises(ValueError, match=r"featmap_name = \('0', '1'\): must be a str"):
        model.roi_heads.box_roi_pool = SingleScaleRoIPool(("0", "1"), 7)
    assert model.roi_heads.box_roi_pool is pool and pool.featmap_name == "2"
    pool.featmap_name = "1"
    assert model.config.roi_heads.pooler == "pool"
    assert model.config.roi_heads.featmap_names == ("1",)


def test_a_pooler_set_that_names_none_of_the_backbone_s_maps_is_refused_where_set():
    """A pooler set as ``roi_heads.box_roi_pool`` that names none of the backbone's
    feature maps was taken, and failed only in the forward pass ("feature maps ['nope']
    requested") or in ``model.config``. Refused where set, naming the backbone's maps;
    one naming some of them is taken, the others passed over as torchvision does."""
    torch.manual_seed(0)
    model = FasterRCNN.from_config(tiny("small"))
    pool = model.roi_heads.box_roi_pool
    with pytest.raises(
        ValueError,
        match=r"^roi_heads\.box_roi_pool\.featmap_names = \('nope',\): must be among "
        r"small's feature maps \('0', '1', '2', 'pool'\)$",
    ):
        model.roi_heads.box_roi_pool = MultiScaleRoIAlign(["nope"], 7, 2)
    with pytest.raises(ValueError, match=r"featmap_names = \('3',\): must be among small's"):
        model.roi_heads.box_roi_pool = SingleScaleRoIPool("3", 7)
    assert model.roi_heads.box_roi_pool is pool
    model.roi_heads.box_roi_pool = MultiScaleRoIAlign(["0", "1", "2", "3"], 7, 2)
    assert model.config.roi_heads.featmap_names == ("0", "1", "2", "3")


def test_a_pooler_of_a_backbone_set_in_place_of_the_built_one_is_taken():
    """The heads check a pooler set against the built backbone's maps: once another
    backbone is set (its one map named "feat"), a pooler of its maps is taken and the
    model detects through it."""

    class OneMap(nn.Module):
        out_channels = 64

        def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"feat": nn.functional.avg_pool2d(images[:, :1].expand(-1, 64, -1, -1), 16)}

    torch.manual_seed(0)
    model = FasterRCNN.from_config(tiny("small"))
    model.rpn.anchor_generator = AnchorGenerator(((16, 32, 64, 128),), ((0.5, 1.0, 2.0),))
    model.backbone = OneMap()
    model.roi_heads.box_roi_pool = MultiScaleRoIAlign(["feat"], 7, 2)
    with torch.no_grad():
        detections = model.eval()([torch.rand(3, 128, 160)])
    assert set(detections[0]) == {"boxes", "labels", "scores"}


def test_an_empty_map_name_is_refused_where_a_pooler_is_given_or_set_it():
    """``SingleScaleRoIPool("", 7)`` or ``featmap_name = ""`` was taken (a str, as the
    config's rule asked): no backbone names a map "", so it pooled nothing and failed in
    the forward pass. The config refuses an empty name, and so the poolers where set."""
    pool = SingleScaleRoIPool("2", 7)
    with pytest.raises(
        ValueError,
        match=r"^roi_heads\.box_roi_pool\.featmap_name = '': must be names of feature "
        r"maps, none empty; got \('',\)$",
    ):
        pool.featmap_name = ""
    with pytest.raises(ValueError, match=r"featmap_name = '': must be names of feature"):
        SingleScaleRoIPool("", 7)
    with pytest.raises(ValueError, match=r"featmap_names = \('0', ''\): must be names of"):
        MultiScaleRoIAlign(["0", ""], 7, 2)
    with pytest.raises(ValueError, match=r"^RoIHeadsConfig\.featmap_names must be names of"):
        preset_config("small", 3).replace(roi_heads={"featmap_names": ("",)})
    assert pool.featmap_name == "2"


def test_per_class_nms_thresholds_are_counted_against_the_predictor_of_that_moment():
    """Per-class NMS thresholds are one per class of the head's predictor: fewer failed
    in the forward pass (an IndexError), more were taken until ``model.config`` refused
    them. A predictor of other classes set first takes its own count."""
    torch.manual_seed(0)
    model = FasterRCNN.from_config(tiny("small"))  # 3 classes, the background one of them
    model.roi_heads.class_nms_thresh = (0.4, 0.6)
    model.roi_heads.box_predictor = FastRCNNPredictor(256, 4)
    with pytest.raises(
        ValueError,
        match=r"^roi_heads\.class_nms_thresh = \(0\.4, 0\.6\): must be empty or 3 IoUs, one "
        r"per class without the background; got 2$",
    ):
        model.roi_heads.class_nms_thresh = (0.4, 0.6)
    model.roi_heads.class_nms_thresh = (0.4, 0.6, 0.5)
    assert model.config.roi_heads.class_nms_thresh == (0.4, 0.6, 0.5)
    assert model.config.num_classes == 4


def test_training_samplers_set_on_the_modules_are_what_a_model_file_records(tmp_path):
    """torchvision's users set the RoIs and anchors a training image samples on
    ``model.roi_heads.fg_bg_sampler`` and ``model.rpn.fg_bg_sampler``: the head's is its
    target creator's, and the config follows both, so a model file trains alike."""
    torch.manual_seed(0)
    model = FasterRCNN.from_config(tiny("small"))
    assert model.roi_heads.fg_bg_sampler is model.roi_heads.target_creator.fg_bg_sampler
    model.roi_heads.fg_bg_sampler.batch_size_per_image = 16
    model.roi_heads.fg_bg_sampler.positive_fraction = 0.5
    model.rpn.fg_bg_sampler.batch_size_per_image = 32
    assert model.config.roi_heads.batch_size_per_image == 16
    assert model.config.roi_heads.positive_fraction == 0.5
    assert model.config.rpn.batch_size_per_image == 32
    save_model(model, tmp_path / "model.safetensors")
    loaded = load_model(tmp_path / "model.safetensors")
    sampler = loaded.roi_heads.fg_bg_sampler
    assert (sampler.batch_size_per_image, sampler.positive_fraction) == (16, 0.5)
    assert loaded.rpn.fg_bg_sampler.batch_size_per_image == 32
    loaded.roi_heads.fg_bg_sampler = BalancedPositiveNegativeSampler(8, 0.25)
    assert loaded.roi_heads.target_creator.fg_bg_sampler.batch_size_per_image == 8
    assert loaded.config.roi_heads.batch_size_per_image == 8
    with pytest.raises(
        ValueError, match=r"^fg_bg_sampler\.positive_fraction = 1\.5: must be in \[0, 1\]$"
    ):
        model.rpn.fg_bg_sampler.positive_fraction = 1.5


def test_a_sampler_of_another_kind_set_on_the_modules_is_what_a_model_file_records(tmp_path):
    """A sampler of another of the config's kinds set as ``fg_bg_sampler`` drew the
    batches while the config (so the model file) kept the old kind; torchvision's sampler
    failed in the training step (its signature is not this package's)."""
    torch.manual_seed(0)
    model = FasterRCNN.from_config(tiny("small"))
    model.rpn.fg_bg_sampler = HardNegativeSampler(128, 0.5)
    model.roi_heads.fg_bg_sampler = ClassBalancedSampler(32, 0.5, share_exponent=0.5)
    assert model.config.rpn.sampler == "hard_negative"
    assert model.config.roi_heads.sampler == "class_sqrt_balanced"
    save_model(model, tmp_path / "model.safetensors")
    loaded = load_model(tmp_path / "model.safetensors")
    assert type(loaded.rpn.fg_bg_sampler) is HardNegativeSampler
    sampler = loaded.roi_heads.fg_bg_sampler
    assert type(sampler) is ClassBalancedSampler and sampler.share_exponent == 0.5
    loaded.rpn.fg_bg_sampler = TorchvisionBalancedPositiveNegativeSampler(64, 0.25)
    loaded.roi_heads.fg_bg_sampler = TorchvisionBalancedPositiveNegativeSampler(16, 0.5)
    assert type(loaded.rpn.fg_bg_sampler) is BalancedPositiveNegativeSampler
    assert type(loaded.roi_heads.target_creator.fg_bg_sampler) is BalancedPositiveNegativeSampler
    rpn, heads = loaded.config.rpn, loaded.config.roi_heads
    assert (rpn.sampler, rpn.batch_size_per_image, rpn.positive_fraction) == ("random", 64, 0.25)
    assert (heads.sampler, heads.batch_size_per_image, heads.positive_fraction) == (
        "random",
        16,
        0.5,
    )
    images, targets = batch()
    losses = loaded.train()(images, targets, generator=torch.Generator().manual_seed(0))
    assert all(torch.isfinite(loss) for loss in losses.values())


def test_matchers_and_box_coders_set_on_the_modules_label_and_are_what_a_model_file_records(
    tmp_path,
):
    """torchvision's users set the IoUs that label the anchors and RoIs on
    ``model.rpn.proposal_matcher`` and ``model.roi_heads.proposal_matcher``
    (``high_threshold``, ``low_threshold``) and the box coders' ``weights``: they are the
    target creators' own, so they label, and the config follows them."""
    torch.manual_seed(0)
    model = FasterRCNN.from_config(tiny("small"))
    matcher = model.rpn.proposal_matcher
    assert matcher is model.rpn.target_creator.matcher
    matcher.high_threshold, matcher.low_threshold = 0.6, 0.2
    matcher.allow_low_quality_matches = False
    # Anchors of IoU 100/130, 100/150, 100/200 and 100/600 with the box (0, 0, 10, 10).
    anchors = torch.tensor([[0.0, 0, 10, 13], [0, 0, 10, 15], [0, 0, 10, 20], [0, 0, 10, 60]])
    gt = torch.tensor([[0.0, 0, 10, 10]])
    labels, _ = model.rpn.target_creator.assign_single(anchors, gt, (50, 50))
    assert labels.tolist() == [1, 1, -1, 0]
    heads = model.roi_heads.proposal_matcher
    assert heads is model.roi_heads.target_creator.proposal_matcher
    heads.high_threshold, heads.low_threshold = 0.7, 0.4
    model.roi_heads.box_coder.weights = (5.0, 5.0, 2.0, 2.0)
    model.rpn.box_coder = BoxCoder((2.0, 2.0, 1.0, 1.0))
    config = model.config
    assert (config.rpn.fg_iou_thresh, config.rpn.bg_iou_thresh) == (0.6, 0.2)
    assert config.rpn.allow_low_quality_matches is False
    assert (config.roi_heads.fg_iou_thresh, config.roi_heads.bg_iou_thresh_hi) == (0.7, 0.4)
    assert config.roi_heads.box_coder_weights == (5.0, 5.0, 2.0, 2.0)
    assert config.rpn.box_coder_weights == (2.0, 2.0, 1.0, 1.0)
    save_model(model, tmp_path / "model.safetensors")
    loaded = load_model(tmp_path / "model.safetensors")
    assert loaded.rpn.proposal_matcher.thresholds == (0.2, 0.6)
    assert loaded.roi_heads.proposal_matcher.high_threshold == 0.7
    assert loaded.roi_heads.target_creator.box_coder.weights == (5.0, 5.0, 2.0, 2.0)
    # The head's coder is its target creator's: one set encodes the targets it decodes.
    loaded.roi_heads.box_coder = BoxCoder((1.0, 1.0, 1.0, 1.0))
    assert loaded.roi_heads.target_creator.box_coder is loaded.roi_heads.box_coder


def test_a_matcher_of_other_bands_or_class_set_as_proposal_matcher_is_refused():
    model = FasterRCNN.from_config(tiny("small"))
    own = model.roi_heads.proposal_matcher
    with pytest.raises(ValueError, match=r"^roi_heads\.proposal_matcher must label its bands"):
        model.roi_heads.proposal_matcher = Matcher((0.3, 0.7), (0, -1, 1))
    with pytest.raises(TypeError, match=r"^rpn\.proposal_matcher takes faster_rcnn\.matcher"):
        model.rpn.proposal_matcher = object()
    assert model.roi_heads.proposal_matcher is own
    model.rpn.proposal_matcher = Matcher((0.25, 0.65), (0, -1, 1), True)
    assert (model.config.rpn.bg_iou_thresh, model.config.rpn.fg_iou_thresh) == (0.25, 0.65)


def test_torchvision_s_matcher_set_on_the_model_labels_and_is_what_a_model_file_records(
    tmp_path,
):
    """torchvision's ``Matcher(high, low, allow_low_quality_matches)`` set as either
    stage's ``proposal_matcher`` was refused: it becomes the model's own, labelling as
    torchvision's does (the head's background from IoU 0, whatever the config's lower
    bound was), and the config and so the model file follow it."""
    torch.manual_seed(0)
    model = FasterRCNN.from_config(tiny("small").replace(roi_heads={"bg_iou_thresh_lo": 0.1}))
    model.rpn.proposal_matcher = TorchvisionMatcher(0.6, 0.2, False)
    model.roi_heads.proposal_matcher = TorchvisionMatcher(0.6, 0.4)
    # Boxes of IoU 100/130, 100/200, 100/300 and 0 with the box (0, 0, 10, 10).
    boxes = torch.tensor([[0.0, 0, 10, 13], [0, 0, 10, 20], [0, 0, 10, 30], [20, 20, 30, 30]])
    gt = torch.tensor([[0.0, 0, 10, 10]])
    labels, _ = model.rpn.target_creator.assign_single(boxes, gt, (50, 50))
    assert labels.tolist() == [1, -1, -1, 0]
    creator = model.roi_heads.target_creator
    _, labels = creator.assign_targets_to_proposals([boxes], [gt], [torch.tensor([2])])
    assert labels[0].tolist() == [2, -1, 0, 0]
    config = model.config
    assert (config.rpn.bg_iou_thresh, config.rpn.fg_iou_thresh) == (0.2, 0.6)
    assert config.rpn.allow_low_quality_matches is False
    heads = config.roi_heads
    assert (heads.bg_iou_thresh_lo, heads.bg_iou_thresh_hi, heads.fg_iou_thresh) == (0, 0.4, 0.6)
    save_model(model, tmp_path / "model.safetensors")
    loaded = load_model(tmp_path / "model.safetensors")
    assert loaded.roi_heads.proposal_matcher.thresholds == (0.0, 0.4, 0.6)
    assert loaded.rpn.proposal_matcher.thresholds == (0.2, 0.6)


def test_torchvision_s_box_coder_set_on_the_model_decodes_and_is_what_a_model_file_records(
    tmp_path,
):
    """torchvision's ``BoxCoder(weights)`` set as ``model.rpn.box_coder`` or
    ``model.roi_heads.box_coder`` becomes the model's own; another object, which failed in
    the forward pass (no ``decode``) and made ``model.config`` fail, and a clamp the config
    does not record are refused where they are set."""
    torch.manual_seed(0)
    model = FasterRCNN.from_config(tiny("small"))
    model.rpn.box_coder = TorchvisionBoxCoder((2.0, 2.0, 1.0, 1.0))
    model.roi_heads.box_coder = TorchvisionBoxCoder(weights=(5.0, 5.0, 2.0, 2.0))
    assert isinstance(model.rpn.box_coder, BoxCoder)
    assert model.roi_heads.target_creator.box_coder is model.roi_heads.box_coder
    # dx = 2 at weight 2 moves a 10 px wide box by one width.
    boxes = model.rpn.box_coder.decode_single(
        torch.tensor([[2.0, 0, 0, 0]]), torch.tensor([[0.0, 0, 10, 10]])
    )
    assert boxes.tolist() == [[10.0, 0.0, 20.0, 10.0]]
    assert model.config.rpn.box_coder_weights == (2.0, 2.0, 1.0, 1.0)
    save_model(model, tmp_path / "model.safetensors")
    loaded = load_model(tmp_path / "model.safetensors")
    assert loaded.roi_heads.box_coder.weights == (5.0, 5.0, 2.0, 2.0)
    with pytest.raises(
        TypeError,
        match=r"^rpn\.box_coder takes faster_rcnn\.ops\.boxes\.BoxCoder, got builtins\.object: ",
    ):
        model.rpn.box_coder = object()
    with pytest.raises(
        ValueError, match=r"^roi_heads\.box_coder: a bbox_xform_clip of 2\.0 is not recorded by"
    ):
        model.roi_heads.box_coder = TorchvisionBoxCoder((1.0, 1.0, 1.0, 1.0), 2.0)
    assert model.rpn.box_coder.weights == (2.0, 2.0, 1.0, 1.0)
    assert model.roi_heads.box_coder.weights == (5.0, 5.0, 2.0, 2.0)


def test_low_quality_matches_set_on_the_head_s_matcher_are_refused_where_they_are_set():
    """``model.roi_heads.proposal_matcher.allow_low_quality_matches = True`` was taken, and
    the next training step failed ("low-quality matches need every IoU"); the RPN's
    matcher takes them."""
    torch.manual_seed(0)
    model = FasterRCNN.from_config(tiny("small"))
    refused = (
        r"^roi_heads\.proposal_matcher\.allow_low_quality_matches = True: the head appends "
        r"every GT box to its proposals, .* leave it False \(rpn\.proposal_matcher takes them\)$"
    )
    with pytest.raises(ValueError, match=refused):
        model.roi_heads.proposal_matcher.allow_low_quality_matches = True
    with pytest.raises(ValueError, match=refused):
        model.roi_heads.proposal_matcher = TorchvisionMatcher(0.5, 0.5, True)
    own = Matcher((0.0, 0.4, 0.6), (-1, 0, -1, 1))
    model.roi_heads.proposal_matcher = own
    with pytest.raises(ValueError, match=refused):
        own.allow_low_quality_matches = True
    model.rpn.proposal_matcher.allow_low_quality_matches = False
    model.rpn.proposal_matcher.allow_low_quality_matches = True
    assert model.roi_heads.proposal_matcher.allow_low_quality_matches is False
    images, targets = batch()
    losses = model.train()(images, targets, generator=torch.Generator().manual_seed(0))
    assert all(torch.isfinite(loss) for loss in losses.values())


def test_torchvision_s_mask_and_keypoint_branches_are_absent_and_refuse_a_module():
    """torchvision's RoIHeads asks ``has_mask()`` and ``has_keypoint()``, and its users'
    code reads the branches' modules (None in its Faster R-CNN)."""
    heads = FasterRCNN.from_config(tiny("small")).roi_heads
    assert heads.has_mask() is False and heads.has_keypoint() is False
    assert heads.mask_predictor is None and heads.keypoint_roi_pool is None
    heads.mask_head = None
    with pytest.raises(
        ValueError, match=r"^roi_heads\.mask_predictor: this Faster R-CNN has no mask"
    ):
        heads.mask_predictor = nn.Linear(4, 4)
    assert heads.mask_predictor is None and "mask_predictor" not in dict(heads.named_children())


def test_a_pooler_naming_maps_the_backbone_lacks_pools_those_it_returns(tmp_path):
    """torchvision's ``MultiScaleRoIAlign(["0", "1", "2", "3"], 7, 2)`` set on a model
    whose backbone returns ``"0"``, ``"1"``, ``"2"`` and ``"pool"`` pools the first
    three, as torchvision's does; the config records it as set, and rebuilds it."""
    torch.manual_seed(0)
    model = spread_scores(FasterRCNN.from_config(tiny("small"))).eval()
    assert model.config.roi_heads.featmap_names == ("0", "1", "2")
    images, _ = batch()
    with torch.no_grad():
        expected = model(images)
    model.roi_heads.box_roi_pool = MultiScaleRoIAlign(["0", "1", "2", "3"], 7, 2)
    assert model.config.roi_heads.featmap_names == ("0", "1", "2", "3")
    loaded, got = reloaded_detecting_alike(model, tmp_path / "model.safetensors", images)
    assert loaded.roi_heads.box_roi_pool.featmap_names == ("0", "1", "2", "3")
    assert sum(len(d["scores"]) for d in got) > 0
    for g, e in zip(got, expected, strict=True):
        assert all(torch.equal(g[key], e[key]) for key in g)


def test_a_pooler_of_another_grid_than_the_box_head_names_the_head_to_set(tmp_path):
    """A pooler of another grid set as ``model.roi_heads.box_roi_pool`` failed in the box
    head ("mat1 and mat2 shapes cannot be multiplied"); the head to set with it is named,
    and once set the model trains, detects, and its file rebuilds it."""
    torch.manual_seed(0)
    model = FasterRCNN.from_config(tiny("small"))  # 64 channels, 7 x 7, 256 features
    model.roi_heads.box_roi_pool = MultiScaleRoIAlign(["0", "1", "2"], 5, 2)
    images, targets = batch()
    named = (
        r"^roi_heads\.box_head takes pooled RoIs of 3136 values but roi_heads\.box_roi_pool "
        r"gives 64 x 5 x 5 = 1600: replace the head as well "
        r"\(model\.roi_heads\.box_head = TwoMLPHead\(1600, 256\)\)$"
    )
    with pytest.raises(ValueError, match=named):
        model.train()(images, targets)
    with pytest.raises(ValueError, match=named):
        model.eval()(images)
    with pytest.raises(ValueError, match=named):
        DetectionGraph(model)  # before export traces it, which wraps what fails
    model.roi_heads.box_head = TwoMLPHead(1600, 256)
    losses = model.train()(images, targets, generator=torch.Generator().manual_seed(0))
    assert all(torch.isfinite(loss) for loss in losses.values())
    assert model.config.roi_heads.output_size == 5
    loaded, _ = reloaded_detecting_alike(spread_scores(model), tmp_path / "m.safetensors", images)
    assert loaded.roi_heads.box_head.fc6.in_features == 1600


def test_a_normalisation_set_on_the_transform_is_what_a_model_file_records(tmp_path):
    """torchvision's ``GeneralizedRCNNTransform`` keeps ``image_mean``, ``image_std`` and
    ``size_divisible`` as attributes its users set: the model file follows them too."""
    torch.manual_seed(0)
    model = spread_scores(FasterRCNN.from_config(tiny("small")))
    model.transform.image_mean = [0.5, 0.5, 0.5]
    model.transform.image_std = [0.25, 0.25, 0.25]
    model.transform.size_divisible = 64
    transform = model.config.transform
    assert (transform.image_mean, transform.image_std) == ((0.5,) * 3, (0.25,) * 3)
    assert transform.size_divisible == 64
    _, got = reloaded_detecting_alike(model, tmp_path / "model.safetensors", batch()[0])
    assert sum(len(d["scores"]) for d in got) > 0


def test_an_anchor_generator_set_on_the_rpn_is_what_a_model_file_records(tmp_path):
    """torchvision's users replace ``model.rpn.anchor_generator`` (with ``model.rpn.head``
    where the anchors a location change): the config's anchors follow, so the model file
    rebuilds the anchors the model ran with."""
    torch.manual_seed(0)
    model = spread_scores(FasterRCNN.from_config(tiny("small")))
    levels = len(model.config.anchors.sizes)
    sizes = tuple((24.0 * 2**level, 40.0 * 2**level) for level in range(levels))
    model.rpn.anchor_generator = AnchorGenerator(sizes, ((0.5, 2.0),) * levels, offset=0.5)
    channels = model.rpn.head.conv[0][0].in_channels
    model.rpn.head = RPNHead(channels, 4)
    anchors = model.config.anchors
    assert (anchors.sizes, anchors.aspect_ratios, anchors.offset) == (
        sizes,
        ((0.5, 2.0),) * levels,
        0.5,
    )
    _, got = reloaded_detecting_alike(model, tmp_path / "model.safetensors", batch()[0])
    assert sum(len(d["scores"]) for d in got) > 0
    model.rpn.anchor_generator = AnchorGenerator(((32,),), ((1.0,),))  # one level of several
    with pytest.raises(ValueError, match=r"^a setting set on the model's modules is invalid: "):
        save_model(model, tmp_path / "other.safetensors")


def test_an_anchor_generator_of_another_count_a_location_than_the_head_is_named():
    """torchvision reshapes the head's deltas to the anchors and fails deep in its box
    coder; here the RPN names both counts and the head to replace."""
    torch.manual_seed(0)
    model = FasterRCNN.from_config(tiny("small"))  # 12 anchors a location
    levels = len(model.config.anchors.sizes)
    model.rpn.anchor_generator = AnchorGenerator(((32.0,),) * levels, ((0.5, 1.0, 2.0),) * levels)
    images, targets = batch()
    with pytest.raises(
        ValueError,
        match=r"^rpn\.head predicts 12 anchors a location but rpn\.anchor_generator makes 3 "
        r"on feature level 0: replace the head as well "
        r"\(model\.rpn\.head = RPNHead\(in_channels, 3\)\)$",
    ):
        model(images, targets)
    model.rpn.head = RPNHead(model.rpn.head.conv[0][0].in_channels, 3)
    assert set(model(images, targets)) == {
        "loss_classifier",
        "loss_box_reg",
        "loss_objectness",
        "loss_rpn_box_reg",
    }


@pytest.mark.parametrize("name", ["sizes", "aspect_ratios"])
def test_anchor_sizes_or_ratios_set_in_place_are_refused(name):
    """``model.rpn.anchor_generator.sizes = ...`` was recorded by the config while the
    generator kept making the anchors it was built with: a model file made others."""
    torch.manual_seed(0)
    model = FasterRCNN.from_config(tiny("small"))
    generator = model.rpn.anchor_generator
    before = [cell.clone() for cell in generator.cell_anchors]
    levels = len(model.config.anchors.sizes)
    with pytest.raises(
        ValueError,
        match=rf"^rpn\.anchor_generator\.{name} cannot be set in place \(the anchors are made "
        r"when it is built\): set model\.rpn\.anchor_generator = AnchorGenerator\(sizes, "
        r"aspect_ratios\), and model\.rpn\.head where the anchors a location change$",
    ):
        setattr(generator, name, ((2.0,),) * levels)
    assert model.config == tiny("small")
    assert all(torch.equal(a, b) for a, b in zip(generator.cell_anchors, before, strict=True))


class TorchvisionAnchorGenerator(nn.Module):
    """Stands for torchvision's ``AnchorGenerator``: its arguments, not its offset."""

    def __init__(self, sizes, aspect_ratios):
        super().__init__()
        self.sizes, self.aspect_ratios = sizes, aspect_ratios


def test_an_anchor_generator_of_another_class_is_refused_where_it_is_set():
    """Set on the RPN, torchvision's generator failed in the forward pass (no
    ``level_grids``) and made ``model.config`` read as a missing attribute."""
    torch.manual_seed(0)
    model = FasterRCNN.from_config(tiny("small"))
    own = model.rpn.anchor_generator
    levels = len(model.config.anchors.sizes)
    with pytest.raises(
        TypeError,
        match=r"^rpn\.anchor_generator takes faster_rcnn\.AnchorGenerator \(torchvision's "
        r"sizes and aspect_ratios\), got test_model\.TorchvisionAnchorGenerator$",
    ):
        model.rpn.anchor_generator = TorchvisionAnchorGenerator(
            ((32,),) * levels, ((1.0,),) * levels
        )
    assert model.rpn.anchor_generator is own and model.config.anchors.sizes == own.sizes


def test_proposal_limits_set_on_the_rpn_are_what_a_model_file_records(tmp_path):
    """``model.rpn._post_nms_top_n["testing"] = k`` (torchvision's dict) changes the
    proposals the model keeps, and the config and so the model file follow it."""
    torch.manual_seed(0)
    model = FasterRCNN.from_config(tiny("small")).eval()
    images, _ = batch()
    model.rpn._post_nms_top_n["testing"] = 6
    model.rpn._pre_nms_top_n = {"training": 400, "testing": 300}
    _, proposals = model.detect_with_proposals(images)
    assert [len(p["boxes"]) for p in proposals] == [6, 6]
    rpn = model.config.rpn
    assert (rpn.pre_nms_top_n_train, rpn.pre_nms_top_n_test) == (400, 300)
    assert (rpn.post_nms_top_n_train, rpn.post_nms_top_n_test) == (500, 6)
    loaded, _ = reloaded_detecting_alike(model, tmp_path / "model.safetensors", images)
    assert loaded.rpn._pre_nms_top_n == {"training": 400, "testing": 300}
    assert loaded.rpn._post_nms_top_n == {"training": 500, "testing": 6}
    with pytest.raises(ValueError, match=r"^rpn\._post_nms_top_n\['testing'\] = 0: must be >= 1$"):
        model.rpn._post_nms_top_n["testing"] = 0


def test_batched_and_single_image_inference_agree():
    # Same-size images need no extra padding, so batching must not change any result.
    torch.manual_seed(0)
    model = FasterRCNN.from_config(tiny("small")).eval()
    gen = torch.Generator().manual_seed(3)
    images = [torch.rand(3, 100, 150, generator=gen) for _ in range(3)]
    with torch.no_grad():
        together = model(images)
        alone = [model([image])[0] for image in images]
    for x, y in zip(together, alone, strict=True):
        torch.testing.assert_close(x["boxes"], y["boxes"], atol=1e-3, rtol=0)
        torch.testing.assert_close(x["scores"], y["scores"], atol=1e-4, rtol=0)
        assert torch.equal(x["labels"], y["labels"])


def test_training_rejects_missing_and_invalid_targets():
    model = FasterRCNN.from_config(tiny("small")).train()
    images, targets = batch()
    with pytest.raises(ValueError, match="targets are required"):
        model(images)
    targets[1] = {"boxes": torch.tensor([[5.0, 5.0, 5.0, 9.0]]), "labels": torch.tensor([1])}
    with pytest.raises(ValueError, match=r"image 1, box 0: .* has no area"):
        model(images, targets)
    targets[1] = {"boxes": torch.tensor([[5.0, 5.0, 9.0, 9.0]]), "labels": torch.tensor([3])}
    with pytest.raises(ValueError, match=r"image 1, box 0: label 3 is outside 1..2"):
        model(images, targets)


def test_a_batch_too_small_for_the_backbones_training_batch_norms_is_named():
    cfg = preset_config("small", 3).replace(transform={"min_size": (16,), "max_size": 16})
    model = FasterRCNN.from_config(cfg).train()  # the small preset trains its batch norms
    images, targets = batch()
    with pytest.raises(ValueError, match=r"^a training batch of 1 image\(s\) padded to 32x32 px"):
        model(images[1:], targets[1:])
    assert set(model(images, targets)) >= {"loss_classifier"}  # two images: a value each


def test_a_replaced_box_predictor_sets_the_class_count_labels_are_checked_against():
    """torchvision's fine-tuning idiom: ``roi_heads.box_predictor = FastRCNNPredictor(in_
    features, k)``; the config follows, without the old classes' names and thresholds."""
    config = tiny("small", 4).replace(
        class_names=("a", "b", "c"), roi_heads={"class_nms_thresh": (0.3, 0.5, 0.7)}
    )
    model = FasterRCNN.from_config(config).train()
    in_features = model.roi_heads.box_predictor.cls_score.in_features
    images, targets = batch()
    targets[0]["labels"] = torch.tensor([1, 6])
    with pytest.raises(ValueError, match=r"^image 0, box 1: label 6 is outside 1\.\.3 "):
        model(images, targets)

    model.roi_heads.box_predictor = FastRCNNPredictor(in_features, 7)
    losses = model(images, targets)
    assert all(torch.isfinite(v) for v in losses.values())
    assert model.num_classes == 7
    assert model.config == config.replace(
        num_classes=7, class_names=(), roi_heads={"class_nms_thresh": ()}
    )
    assert model.roi_heads.class_nms_thresh == ()
    model.eval()
    with torch.no_grad():
        labels = torch.cat([d["labels"] for d in model(images)])
    assert len(labels) > 0 and labels.max() <= 6

    model.roi_heads.box_predictor = FastRCNNPredictor(in_features, 3)
    with pytest.raises(ValueError, match=r"^image 0, box 1: label 6 is outside 1\.\.2 "):
        model.train()(images, targets)
    assert model.config.num_classes == 3


class TutorialBackbone(nn.Sequential):
    """A backbone of one stride-16 map, returned as a tensor, with the ``out_channels``
    torchvision's fine-tuning tutorial sets on MobileNetV2's features."""

    def __init__(self) -> None:
        super().__init__(
            nn.Conv2d(3, 16, 3, stride=4, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 24, 3, stride=4, padding=1),
        )
        self.out_channels = 24


def test_torchvision_s_constructor_form_builds_the_model_its_config_describes():
    """The fine-tuning tutorial's ``FasterRCNN(backbone, num_classes=2,
    rpn_anchor_generator=..., box_roi_pool=...)``: torchvision's defaults, the modules'
    settings and the keywords as config fields; the same network as that config builds."""
    torch.manual_seed(0)
    backbone = TutorialBackbone()
    model = FasterRCNN(
        backbone,
        num_classes=3,
        rpn_anchor_generator=AnchorGenerator(
            sizes=((32, 64, 128, 256, 512),), aspect_ratios=((0.5, 1.0, 2.0),)
        ),
        box_roi_pool=MultiScaleRoIAlign(featmap_names=["0"], output_size=7, sampling_ratio=2),
        min_size=96,
        max_size=128,
        box_score_thresh=0.0,
    )
    expected = FasterRCNNConfig().replace(
        num_classes=3,
        backbone={"name": "custom", "out_channels": 24},
        transform={"min_size": (96,), "max_size": 128},
        anchors={"sizes": ((32, 64, 128, 256, 512),), "aspect_ratios": ((0.5, 1.0, 2.0),)},
        roi_heads={
            "featmap_names": ("0",),
            "output_size": 7,
            "sampling_ratio": 2,
            "score_thresh": 0.0,
        },
    )
    assert model.config == expected
    assert model.rpn.head.cls_logits.out_channels == 15  # five sizes by three ratios
    same = FasterRCNN(backbone, expected)
    same.load_state_dict(model.state_dict())
    images, targets = batch()
    model.train()
    assert all(torch.isfinite(v) for v in model(images, targets).values())
    with torch.no_grad():
        got, wanted = model.eval()(images), same.eval()(images)
    assert sum(len(d["scores"]) for d in got) > 0
    for g, w in zip(got, wanted, strict=True):
        torch.testing.assert_close(g, w, rtol=0, atol=0)


def test_torchvision_s_constructor_takes_its_transform_s_defaults():
    """``FasterRCNN(backbone, ..., fixed_size=None, _skip_resize=False)``, which
    torchvision passes on to its transform, was refused as unexpected keywords."""
    generator = AnchorGenerator(sizes=((32, 64),), aspect_ratios=((1.0,),))
    plain = FasterRCNN(TutorialBackbone(), 3, rpn_anchor_generator=generator, min_size=96)
    given = FasterRCNN(
        TutorialBackbone(),
        3,
        rpn_anchor_generator=generator,
        min_size=96,
        fixed_size=None,
        _skip_resize=False,
    )
    assert given.config == plain.config
    with pytest.raises(ValueError, match=r"^FasterRCNN\(_skip_resize=True\): only False"):
        FasterRCNN(TutorialBackbone(), 3, rpn_anchor_generator=generator, _skip_resize=True)


def test_torchvision_s_class_count_in_place_of_the_config_is_its_num_classes():
    """torchvision's ``FasterRCNN(backbone, num_classes, ...)``, its second argument: the
    model of ``num_classes=`` that count; a count given twice, or a dict, is refused."""
    generator = AnchorGenerator(sizes=((32, 64),), aspect_ratios=((1.0,),))
    positional = FasterRCNN(TutorialBackbone(), 3, rpn_anchor_generator=generator, min_size=96)
    keyword = FasterRCNN(
        TutorialBackbone(), num_classes=3, rpn_anchor_generator=generator, min_size=96
    )
    assert positional.config == keyword.config
    assert positional.config.num_classes == 3
    assert positional.roi_heads.box_predictor.cls_score.out_features == 3
    with pytest.raises(TypeError, match=r"^FasterRCNN\(\) got multiple values for argument "):
        FasterRCNN(TutorialBackbone(), 3, num_classes=3)
    backbone = FasterRCNN.from_config(tiny("small")).backbone
    with pytest.raises(TypeError, match=r"^config must be a FasterRCNNConfig, got dict: "):
        FasterRCNN(backbone, {"num_classes": 3})
    with pytest.raises(TypeError, match=r"^config must be a FasterRCNNConfig, got bool: "):
        FasterRCNN(backbone, True)
    assert FasterRCNN(backbone, tiny("small", 5)).num_classes == 5


class TwoMapBackbone(nn.Module):
    """Maps ``"0"`` (stride 8), ``"1"`` (stride 16) and an FPN's ``"pool"`` (stride 32)."""

    def __init__(self) -> None:
        super().__init__()
        self.fine = nn.Conv2d(3, 8, 3, stride=8, padding=1)
        self.coarse = nn.Conv2d(8, 8, 3, stride=2, padding=1)
        self.out_channels = 8

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        fine = self.fine(x)
        coarse = self.coarse(fine)
        return {"0": fine, "1": coarse, "pool": nn.functional.max_pool2d(coarse, 1, 2)}


def test_torchvision_s_constructor_form_without_a_pooler_pools_the_backbone_s_maps():
    """Without ``box_roi_pool``, torchvision's default ``MultiScaleRoIAlign(["0", "1",
    "2", "3"], 7, 2)`` pools those of its maps the backbone returns: ``"0"`` of one map,
    ``"0"`` and ``"1"`` (not ``"pool"``) of an FPN's two."""
    torch.manual_seed(0)
    one = FasterRCNN(
        TutorialBackbone(),
        num_classes=3,
        rpn_anchor_generator=AnchorGenerator(sizes=((32, 64),), aspect_ratios=((1.0,),)),
        min_size=96,
        max_size=128,
    )
    assert one.config.roi_heads.featmap_names == ("0",)
    assert one.roi_heads.box_roi_pool.featmap_names == ("0",)
    two = FasterRCNN(
        TwoMapBackbone(),
        num_classes=3,
        rpn_anchor_generator=AnchorGenerator(((32,), (64,), (128,)), ((0.5, 1.0, 2.0),) * 3),
        min_size=96,
        max_size=128,
        box_score_thresh=0.0,
    )
    assert two.config.roi_heads.featmap_names == ("0", "1")
    images, targets = batch()
    assert all(torch.isfinite(v) for v in two.train()(images, targets).values())
    with torch.no_grad():
        assert sum(len(d["scores"]) for d in two.eval()(images)) > 0


def test_torchvision_s_constructor_form_is_refused_in_one_line_where_it_cannot_be_built():
    backbone = TutorialBackbone()
    refusals = [
        ({"num_classes": 2, "nm": 3}, TypeError, r"unexpected keyword argument 'nm'$"),
        ({"num_classes": 2, "trainable_backbone_layers": 3}, TypeError, r"'trainable_backbone"),
        ({"min_size": 600}, ValueError, r"^FasterRCNN\(backbone, \.\.\.\) needs num_classes"),
        (
            {"num_classes": 2, "rpn_head": nn.Identity()},
            ValueError,
            r"^FasterRCNN\(rpn_head=\.\.\.\): torchvision takes a module there; here",
        ),
        (
            {"num_classes": 2, "rpn_anchor_generator": nn.Identity()},
            TypeError,
            r"takes faster_rcnn.AnchorGenerator, got torch.nn.modules.linear.Identity$",
        ),
        (
            {"num_classes": 2, "box_roi_pool": MultiScaleRoIAlign(["0"], (7, 5), 2)},
            ValueError,
            r"a pooled grid of 7x5; the box head here pools square grids",
        ),
        ({"num_classes": 2, "box_score_thresh": 2.0}, ValueError, r"score_thresh"),
    ]
    for keywords, error, message in refusals:
        with pytest.raises(error, match=message):
            FasterRCNN(backbone, **keywords)
    with pytest.raises(TypeError, match=r"give a config or torchvision's keywords \(min_size\)"):
        FasterRCNN(backbone, tiny("small"), min_size=600)
    with pytest.raises(ValueError, match=r"the backbone needs an integer out_channels"):
        FasterRCNN(nn.Sequential(nn.Conv2d(3, 8, 3)), num_classes=2)


def test_a_predictor_whose_box_deltas_do_not_fit_its_classes_is_refused():
    model = FasterRCNN.from_config(tiny("small")).eval()
    predictor = model.roi_heads.box_predictor
    predictor.bbox_pred = nn.Linear(predictor.bbox_pred.in_features, 4 * 5)
    message = (
        r"^the box predictor's bbox_pred has 20 outputs, but its cls_score's 3 classes "
        r"need 12 \(four deltas per class\)$"
    )
    with pytest.raises(ValueError, match=message):
        model(batch()[0])
    with pytest.raises(ValueError, match=message):
        _ = model.config


def test_detect_with_proposals_matches_forward_and_maps_proposals_back():
    torch.manual_seed(0)
    model = FasterRCNN.from_config(tiny("small")).eval()
    images, _ = batch()
    with torch.no_grad():
        expected = model(images)
    detections, proposals = model.detect_with_proposals(images)
    for det, ref in zip(detections, expected, strict=True):
        for key in ref:
            torch.testing.assert_close(det[key], ref[key])
    for props, image in zip(proposals, images, strict=True):
        boxes, scores = props["boxes"], props["scores"]
        assert 0 < len(boxes) <= model.config.rpn.post_nms_top_n_test
        assert torch.all(scores[:-1] >= scores[1:])
        assert (boxes[:, 0::2] <= image.shape[2]).all() and (boxes[:, 1::2] <= image.shape[1]).all()
    with pytest.raises(RuntimeError, match="eval mode"):
        model.train().detect_with_proposals(images)


def test_a_batch_tensor_is_taken_as_its_images():
    """torchvision's models take an ``(N, 3, H, W)`` tensor in place of a list."""
    torch.manual_seed(0)
    model = FasterRCNN.from_config(tiny("small"))
    stacked = torch.rand(2, 3, 100, 150, generator=torch.Generator().manual_seed(1))
    _, targets = batch()
    model.train()
    losses = model(stacked, targets, generator=torch.Generator().manual_seed(2))
    expected = model(list(stacked), targets, generator=torch.Generator().manual_seed(2))
    assert all(torch.equal(losses[key], expected[key]) for key in expected)
    model.eval()
    with torch.no_grad():
        found, listed = model(stacked), model(list(stacked))
    assert len(found) == 2
    for x, y in zip(found, listed, strict=True):
        assert all(torch.equal(x[key], y[key]) for key in ("boxes", "labels", "scores"))


def test_a_grey_image_is_read_as_its_channel_three_times():
    """torchvision's normalisation broadcasts a ``(1, H, W)`` image to three channels:
    each is ``(grey - mean_c) / std_c``, as for the grey value repeated."""
    torch.manual_seed(0)
    model = FasterRCNN.from_config(tiny("small")).eval()
    grey = torch.rand(1, 100, 150, generator=torch.Generator().manual_seed(1))
    colour = torch.rand(3, 120, 90, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        found = model([grey, colour])
        expected = model([grey.repeat(3, 1, 1), colour])
    assert len(found[0]["boxes"]) > 0
    for x, y in zip(found, expected, strict=True):
        assert all(torch.equal(x[key], y[key]) for key in ("boxes", "labels", "scores"))
    with pytest.raises(ValueError) as refused:
        model([torch.rand(4, 100, 150)])  # RGBA: its alpha is the caller's to drop
    assert str(refused.value) == (
        "image 0: expected shape (3, H, W), or (1, H, W) for a grey image, got (4, 100, 150) "
        "(an RGBA image: drop its alpha channel, image[:3])"
    )
    with pytest.raises(ValueError, match=r"\(100, 150, 3\) \(channels last: image\.permute"):
        model([torch.rand(100, 150, 3)])
    with pytest.raises(ValueError, match=r"\(100, 150\) \(a grey image: image\[None\] gives"):
        model([torch.rand(100, 150)])


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.uint8])
def test_integer_boxes_train_as_the_same_boxes_in_float(dtype):
    """torchvision's resize turns integer boxes into float32 ones; so does the model."""
    torch.manual_seed(0)
    model = FasterRCNN.from_config(tiny("small")).train()
    images, targets = batch()
    targets[0]["boxes"] = torch.tensor([[10, 20, 60, 80], [70, 10, 140, 50]])
    as_integers = [{**t, "boxes": t["boxes"].to(dtype)} for t in targets]
    losses = model(images, as_integers, generator=torch.Generator().manual_seed(2))
    expected = model(images, targets, generator=torch.Generator().manual_seed(2))
    assert all(torch.equal(losses[key], expected[key]) for key in expected)
    assert as_integers[0]["boxes"].dtype == dtype  # the caller's targets are left alone


@pytest.mark.filterwarnings("error")  # PyTorch's of a scalar read off a graph, among them
def test_a_detection_s_score_is_differentiated_by_its_image():
    """Saliency maps differentiate a score by the image, out of ``torch.no_grad()``, as
    torchvision's detectors allow; the detections are those of ``no_grad``."""
    torch.manual_seed(0)
    model = FasterRCNN.from_config(tiny("small")).eval()
    image = torch.rand(3, 100, 150, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = model([image])[0]
    found = model([image.requires_grad_()])[0]
    assert all(torch.equal(found[key], expected[key]) for key in ("boxes", "labels", "scores"))
    found["scores"][0].backward()
    assert image.grad is not None and image.grad.abs().sum() > 0


def test_a_pooler_of_sampling_ratio_0_is_adaptive_as_in_torchvision(tmp_path):
    """torchvision's RoIAlign reads any sampling ratio <= 0 as adaptive, and detectron2's
    poolers give 0: a pooler of 0 set on a built model made every model.config read fail
    ('must be >= 1, or -1 for adaptive'). It is followed, pools as -1 does, and reloads."""
    torch.manual_seed(0)
    model = FasterRCNN.from_config(tiny("small").replace(roi_heads={"score_thresh": 0.0}))
    images, _ = batch()
    names = list(model.config.roi_heads.featmap_names)
    model.roi_heads.box_roi_pool = MultiScaleRoIAlign(names, 7, -1)
    with torch.no_grad():
        adaptive = model.eval()(images)
    model.roi_heads.box_roi_pool = MultiScaleRoIAlign(names, 7, 0)
    assert model.config.roi_heads.sampling_ratio == 0
    loaded, got = reloaded_detecting_alike(model, tmp_path / "model.safetensors", images)
    assert loaded.config.roi_heads.sampling_ratio == 0
    assert sum(len(d["scores"]) for d in got) > 0
    for g, a in zip(got, adaptive, strict=True):
        assert all(torch.equal(g[key], a[key]) for key in g)


def test_a_module_replaced_without_the_settings_config_reads_is_named_not_a_missing_config():
    """An AttributeError raised inside the ``config`` property fell back to nn.Module's
    ``__getattr__``: "'FasterRCNN' object has no attribute 'config'", naming nothing."""
    model = FasterRCNN.from_config(tiny("small"))
    model.roi_heads.target_creator = lambda *args: None  # no fg_bg_sampler
    with pytest.raises(RuntimeError, match=r"^model\.config cannot read a module's settings: "):
        _ = model.config
