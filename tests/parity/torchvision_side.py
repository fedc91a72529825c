"""Run torchvision's Faster R-CNN and record what it computes, for the parity tests.

Runs in an environment that has torchvision (see design.md, "Measuring"):

    python tests/parity/torchvision_side.py tiny OUT.pt              # the committed fixture
    python tests/parity/torchvision_side.py tiny_heads OUT.pt        # ... with an RPN head
    python tests/parity/torchvision_side.py resnet50 OUT.pt          # fasterrcnn_resnet50_fpn
    python tests/parity/torchvision_side.py resnet50_fpn_v2 OUT.pt   # ... and its v2
    python tests/parity/torchvision_side.py mobilenet_v2_fpn OUT.pt  # MobileNetV2 + FPN
    python tests/parity/torchvision_side.py mobilenet_v3_large_fpn OUT.pt      # and its 320
    python tests/parity/torchvision_side.py mobilenet_v3_large_320_fpn OUT.pt  # version
    python tests/parity/torchvision_side.py builder_heads OUT.pt     # its builder, heads given
    python tests/parity/torchvision_side.py keys OUT.json            # state-dict layouts

The record holds the model's state dict, the input images (uint8, fed as ``x / 255``) and
targets, the sizes torchvision resized them to, eval detections (each image alone and all
batched), and one training step: the four losses, the head gradients, the RPN's
proposals, the masks both samplers drew, and which of the box head's fc6/fc7 ReLUs were
open for each RoI, so that the other side can replay the same random choices and the same
decisions at a ReLU's edge. Weights are random with a fixed seed; the class-score layer
is drawn with a small std so that scores are spread out instead of saturating at 1 (exact
ties would make the order of detections arbitrary on both sides).

The image sizes are ones where torchvision's eager resize (scale in Python floats) and its
scripted one (float32) disagree by a pixel, at both the tiny model's 200/320 and the
presets' 800/1333: Pascal VOC's commonest 375x500, its transpose, 333x500, and 250x710,
whose longer side hits ``max_size`` with an inexact ratio.
"""

import json
import sys
from pathlib import Path

import torch
import torchvision
from torchvision.models import mobilenet_v3_large, resnet50
from torchvision.models.detection import FasterRCNN, fasterrcnn_mobilenet_v3_large_320_fpn
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import (
    _mobilenet_extractor,
    _resnet_fpn_extractor,
    mobilenet_backbone,
)
from torchvision.models.detection.faster_rcnn import (
    FastRCNNConvFCHead,
    FastRCNNPredictor,
    TwoMLPHead,
)
from torchvision.models.detection.rpn import RPNHead
from torchvision.ops import MultiScaleRoIAlign
from torchvision.ops.misc import FrozenBatchNorm2d

sys.path.insert(0, str(Path(__file__).parent))
from tiny_backbone import TinyBackbone

HEAD_PREFIXES = ("rpn.head.", "roi_heads.box_head.", "roi_heads.box_predictor.")


class RecordingSampler:
    """Wraps a sampler and keeps every (pos_masks, neg_masks) it returns."""

    def __init__(self, sampler):
        self.sampler = sampler
        self.calls = []

    def __call__(self, matched_idxs):
        pos, neg = self.sampler(matched_idxs)
        self.calls.append(([p.clone() for p in pos], [n.clone() for n in neg]))
        return pos, neg


def tiny_model():
    """A small torchvision FasterRCNN: TinyBackbone, 2 FPN-like levels, 4 classes."""
    return FasterRCNN(
        TinyBackbone(),
        num_classes=None,
        min_size=200,
        max_size=320,
        rpn_anchor_generator=AnchorGenerator(((24, 32), (64, 96)), ((0.5, 1.0, 2.0),) * 2),
        rpn_pre_nms_top_n_train=300,
        rpn_pre_nms_top_n_test=200,
        rpn_post_nms_top_n_train=200,
        rpn_post_nms_top_n_test=100,
        box_roi_pool=MultiScaleRoIAlign(["0", "1"], 7, 2),
        box_head=TwoMLPHead(16 * 7 * 7, 64),
        box_predictor=FastRCNNPredictor(64, 4),
        box_batch_size_per_image=64,
    )


def tiny_heads_model():
    """The tiny model with its RPN head given (two convs, six anchors a location) and a
    box predictor on the default box head, 1024 wide."""
    return FasterRCNN(
        TinyBackbone(),
        num_classes=None,
        min_size=200,
        max_size=320,
        rpn_anchor_generator=AnchorGenerator(((24, 32), (64, 96)), ((0.5, 1.0, 2.0),) * 2),
        rpn_head=RPNHead(16, 6, conv_depth=2),
        rpn_pre_nms_top_n_train=300,
        rpn_pre_nms_top_n_test=200,
        rpn_post_nms_top_n_train=200,
        rpn_post_nms_top_n_test=100,
        box_roi_pool=MultiScaleRoIAlign(["0", "1"], 7, 2),
        box_predictor=FastRCNNPredictor(1024, 4),
        box_batch_size_per_image=64,
    )


def resnet50_model():
    """fasterrcnn_resnet50_fpn as built with pretrained weights (frozen batch norm,
    3 trainable layers), randomly initialised."""
    body = resnet50(weights=None, norm_layer=FrozenBatchNorm2d)
    return FasterRCNN(_resnet_fpn_extractor(body, 3), num_classes=91)


def resnet50_fpn_v2_model():
    """fasterrcnn_resnet50_fpn_v2 as its builder makes it with pretrained weights (batch
    norm, 3 trainable layers), randomly initialised."""
    backbone = _resnet_fpn_extractor(resnet50(weights=None), 3, norm_layer=torch.nn.BatchNorm2d)
    anchors = AnchorGenerator(((32,), (64,), (128,), (256,), (512,)), ((0.5, 1.0, 2.0),) * 5)
    box_head = FastRCNNConvFCHead(
        (256, 7, 7), [256, 256, 256, 256], [1024], norm_layer=torch.nn.BatchNorm2d
    )
    return FasterRCNN(
        backbone,
        91,
        rpn_anchor_generator=anchors,
        rpn_head=RPNHead(256, 3, conv_depth=2),
        box_head=box_head,
    )


def mobilenet_v2_fpn_model():
    """A FasterRCNN on torchvision's MobileNetV2 FPN backbone, with the anchors of its
    MobileNet detectors (as pretrained: frozen batch norm, 3 trainable layers)."""
    backbone = mobilenet_backbone(
        backbone_name="mobilenet_v2",
        fpn=True,
        weights=None,
        trainable_layers=3,
        norm_layer=FrozenBatchNorm2d,
    )
    anchors = AnchorGenerator(((32, 64, 128, 256, 512),) * 3, ((0.5, 1.0, 2.0),) * 3)
    return FasterRCNN(backbone, 91, rpn_anchor_generator=anchors, rpn_score_thresh=0.05)


def mobilenet_v3_large_fpn_model(**kwargs):
    """fasterrcnn_mobilenet_v3_large_fpn as its builder makes it with pretrained weights
    (frozen batch norm, 3 trainable layers), randomly initialised; ``kwargs`` are the
    320 version's settings."""
    body = mobilenet_v3_large(weights=None, norm_layer=FrozenBatchNorm2d)
    backbone = _mobilenet_extractor(body, True, 3)
    anchors = AnchorGenerator(((32, 64, 128, 256, 512),) * 3, ((0.5, 1.0, 2.0),) * 3)
    return FasterRCNN(backbone, 91, rpn_anchor_generator=anchors, rpn_score_thresh=0.05, **kwargs)


def mobilenet_v3_large_320_fpn_model():
    """fasterrcnn_mobilenet_v3_large_320_fpn, as above."""
    return mobilenet_v3_large_fpn_model(
        min_size=320, max_size=640, rpn_pre_nms_top_n_test=150, rpn_post_nms_top_n_test=150
    )


def builder_heads_model():
    """fasterrcnn_mobilenet_v3_large_320_fpn's builder, untrained (batch norms that learn,
    every stage trained), given an RPN head of two convs and a box head: the builder
    passes them on to FasterRCNN. The head must be 1024 wide, the predictor's inputs
    there."""
    return fasterrcnn_mobilenet_v3_large_320_fpn(
        weights=None,
        weights_backbone=None,
        num_classes=4,
        rpn_head=RPNHead(256, 15, conv_depth=2),
        box_head=TwoMLPHead(256 * 7 * 7, 1024),
    )


def randomize_frozen_batch_norm(model, image):
    """Give every batch norm of the backbone random affine parameters and the statistics
    of its input on ``image``, so that features keep unit scale through a randomly
    initialised backbone (with identity statistics MobileNetV2's shrink to 1e-9 and every RoI looks
    alike). One forward pass sets each layer before it runs."""
    gen = torch.Generator().manual_seed(2)

    def set_statistics(module, inputs):
        x = inputs[0]
        module.running_mean.copy_(x.mean(dim=(0, 2, 3)))
        module.running_var.copy_(x.var(dim=(0, 2, 3)).clamp(min=1e-4))
        module.weight.copy_(torch.empty(module.weight.shape).uniform_(0.5, 1.5, generator=gen))
        module.bias.copy_(0.1 * torch.randn(module.bias.shape, generator=gen))

    norms = (FrozenBatchNorm2d, torch.nn.BatchNorm2d)
    layers = [m for m in model.backbone.modules() if isinstance(m, norms)]
    hooks = [layer.register_forward_pre_hook(set_statistics) for layer in layers]
    model.eval()
    with torch.no_grad():
        model.backbone(model.transform([image])[0].tensors)
    for hook in hooks:
        hook.remove()


def state_dict_layouts():
    """Key -> shape of each torchvision model a preset mirrors."""
    models = {
        "resnet50_fpn": resnet50_model(),
        "resnet50_fpn_v2": resnet50_fpn_v2_model(),
        "mobilenet_v2_fpn": mobilenet_v2_fpn_model(),
        "mobilenet_v3_large_fpn": mobilenet_v3_large_fpn_model(),
    }
    return {
        name: {k: list(v.shape) for k, v in model.state_dict().items()}
        for name, model in models.items()
    }


MODELS = {
    "tiny": tiny_model,
    "tiny_heads": tiny_heads_model,
    "resnet50": resnet50_model,
    "resnet50_fpn_v2": resnet50_fpn_v2_model,
    "mobilenet_v2_fpn": mobilenet_v2_fpn_model,
    "mobilenet_v3_large_fpn": mobilenet_v3_large_fpn_model,
    "mobilenet_v3_large_320_fpn": mobilenet_v3_large_320_fpn_model,
    "builder_heads": builder_heads_model,
}
# Class-score std per model: scores above the 0.05 threshold, none saturating at 1.
CLS_SCORE_STD = {
    "tiny": 0.15,
    "tiny_heads": 0.15,
    "resnet50": 0.06,
    "resnet50_fpn_v2": 0.15,
    "mobilenet_v2_fpn": 0.2,
    "mobilenet_v3_large_fpn": 0.2,
    "mobilenet_v3_large_320_fpn": 0.2,
    "builder_heads": 0.2,
}
IMAGE_SIZES = [(375, 500), (500, 375), (333, 500), (250, 710)]


def inputs():
    """uint8 images of ``IMAGE_SIZES`` and their targets; the second has no object."""
    gen = torch.Generator().manual_seed(1)
    images = [
        torch.randint(0, 256, (3, h, w), generator=gen, dtype=torch.uint8) for h, w in IMAGE_SIZES
    ]
    targets = []
    for i, (h, w) in enumerate(IMAGE_SIZES):
        n = 0 if i == 1 else 3
        xy = torch.rand(n, 2, generator=gen) * torch.tensor([w * 0.6, h * 0.6])
        wh = (0.15 + 0.3 * torch.rand(n, 2, generator=gen)) * torch.tensor([w, h])
        targets.append(
            {
                "boxes": torch.cat([xy, xy + wh], dim=1),
                "labels": torch.randint(1, 4, (n,), generator=gen),
            }
        )
    return images, targets


def record_relu_open(box_head) -> dict:
    """``{"roi_heads.box_head.fc6": (K, out) bool, ...}``, filled in by the forward pass:
    where the fully connected layer's output was positive, its ReLU open."""
    relu_open = {}

    def record_open(name):
        def hook(module, inputs, output):
            relu_open[name] = output.detach() > 0

        return hook

    for fc in ("fc6", "fc7"):
        if isinstance(getattr(box_head, fc, None), torch.nn.Linear):
            getattr(box_head, fc).register_forward_hook(record_open(f"roi_heads.box_head.{fc}"))
    return relu_open


def record(kind):
    torch.manual_seed(0)
    model = MODELS[kind]()
    with torch.no_grad():
        model.roi_heads.box_predictor.cls_score.weight.normal_(0, CLS_SCORE_STD[kind])
    images_uint8, targets = inputs()
    images = [image.float() / 255 for image in images_uint8]
    if not kind.startswith("tiny"):
        randomize_frozen_batch_norm(model, images[0])
    state_dict = {k: v.clone() for k, v in model.state_dict().items()}

    model.eval()
    with torch.no_grad():
        resized_sizes = model.transform(images)[0].image_sizes
        eval_single = [model([image])[0] for image in images]
        eval_batched = model(images)

    model.train()
    rpn_sampler = RecordingSampler(model.rpn.fg_bg_sampler)
    roi_sampler = RecordingSampler(model.roi_heads.fg_bg_sampler)
    model.rpn.fg_bg_sampler = rpn_sampler
    model.roi_heads.fg_bg_sampler = roi_sampler
    proposals = []
    model.rpn.register_forward_hook(lambda m, i, out: proposals.extend(p.clone() for p in out[0]))
    relu_open = record_relu_open(model.roi_heads.box_head)
    losses = model(images, targets)
    sum(losses.values()).backward()
    grads = {
        name: p.grad.clone()
        for name, p in model.named_parameters()
        if name.startswith(HEAD_PREFIXES) and p.grad is not None
    }
    return {
        "versions": {"torch": str(torch.__version__), "torchvision": str(torchvision.__version__)},
        "state_dict": state_dict,
        "images_uint8": images_uint8,
        "resized_sizes": resized_sizes,
        "targets": targets,
        "eval_single": eval_single,
        "eval_batched": eval_batched,
        "train_losses": {k: v.detach() for k, v in losses.items()},
        "train_grads": grads,
        "train_proposals": proposals,
        "train_relu_open": relu_open,
        "rpn_samples": rpn_sampler.calls,
        "roi_samples": roi_sampler.calls,
    }


if __name__ == "__main__":
    kind, out = sys.argv[1], sys.argv[2]
    if kind == "keys":
        Path(out).write_text(json.dumps(state_dict_layouts(), indent=1) + "\n")
        raise SystemExit(0)
    if kind not in MODELS:
        raise SystemExit(f"unknown model {kind!r}: use one of {', '.join(MODELS)} or 'keys'")
    result = record(kind)
    torch.save(result, out)
    counts = [len(d["boxes"]) for d in result["eval_single"]]
    top = [round(float(d["scores"].max()), 4) for d in result["eval_single"]]
    print(
        f"{kind}: resized to {result['resized_sizes']}, detections per image {counts},",
        f"top scores {top}, losses",
        {k: round(float(v), 5) for k, v in result["train_losses"].items()},
    )
