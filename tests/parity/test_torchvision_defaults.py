"""The resnet50_fpn preset carries torchvision's numbers (FasterRCNN.__init__ defaults,
fasterrcnn_resnet50_fpn, rpn.py, roi_heads.py and poolers.py of torchvision 0.29)."""

import math

from faster_rcnn.models import resnet50_fpn_config


def test_resnet50_fpn_preset_numbers_are_torchvisions():
    cfg = resnet50_fpn_config()
    assert cfg.num_classes == 91
    t = cfg.transform
    assert (t.min_size, t.max_size, t.size_divisible) == ((800,), 1333, 32)
    assert t.image_mean == (0.485, 0.456, 0.406) and t.image_std == (0.229, 0.224, 0.225)
    a = cfg.anchors
    assert a.sizes == ((32,), (64,), (128,), (256,), (512,))
    assert a.aspect_ratios == ((0.5, 1.0, 2.0),) * 5 and a.offset == 0.0
    r = cfg.rpn
    assert (r.pre_nms_top_n_train, r.pre_nms_top_n_test) == (2000, 1000)
    assert (r.post_nms_top_n_train, r.post_nms_top_n_test) == (2000, 1000)
    assert (r.nms_thresh, r.fg_iou_thresh, r.bg_iou_thresh) == (0.7, 0.7, 0.3)
    assert (r.batch_size_per_image, r.positive_fraction) == (256, 0.5)
    assert (r.score_thresh, r.min_size, r.allowed_border) == (0.0, 1e-3, -1)
    assert r.allow_low_quality_matches and r.sampler == "random"
    assert r.loss_normalization == "per_sample" and r.box_loss_weight == 1.0
    assert math.isclose(r.smooth_l1_beta, 1 / 9) and r.box_coder_weights == (1, 1, 1, 1)
    h = cfg.roi_heads
    assert (h.fg_iou_thresh, h.bg_iou_thresh_hi, h.bg_iou_thresh_lo) == (0.5, 0.5, 0.0)
    assert (h.batch_size_per_image, h.positive_fraction) == (512, 0.25)
    assert (h.pooler, h.featmap_names, h.output_size) == ("align", ("0", "1", "2", "3"), 7)
    assert (h.sampling_ratio, h.aligned) == (2, False)
    assert (h.canonical_scale, h.canonical_level) == (224, 4)
    assert (h.box_head, h.representation_size, h.predictor_init_std) == ("two_mlp", 1024, None)
    assert h.box_coder_weights == (10.0, 10.0, 5.0, 5.0) and math.isclose(h.smooth_l1_beta, 1 / 9)
    assert (h.score_thresh, h.nms_thresh, h.detections_per_img, h.min_box_size) == (
        0.05,
        0.5,
        100,
        1e-2,
    )
    b = cfg.backbone
    assert (b.name, b.trainable_layers, b.frozen_batch_norm, b.out_channels) == (
        "resnet50_fpn",
        3,
        True,
        256,
    )
