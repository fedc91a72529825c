"""End to end: the small model learns a few generated images until it finds every box."""

import torch

from faster_rcnn import FasterRCNN
from faster_rcnn.data.synthetic import SyntheticShapes
from faster_rcnn.models import small_config
from faster_rcnn.ops.boxes import box_iou
from faster_rcnn.train import TrainConfig, Trainer


def test_small_model_overfits_a_few_images():
    torch.manual_seed(0)
    data = SyntheticShapes(4, image_size=(160, 160), seed=5, max_objects=3, empty_fraction=0.0)
    samples = [data[i] for i in range(len(data))]
    cfg = small_config(data.num_classes)
    cfg = cfg.replace(transform={"min_size": (160,), "max_size": 160})
    model = FasterRCNN.from_config(cfg)

    cfg = TrainConfig(
        steps=150, batch_size=4, lr=0.02, warmup_steps=10, schedule="step", lr_decay_at=(0.8,)
    )
    history = Trainer(model, samples, cfg).fit()
    first = sum(h["loss"] for h in history[:10]) / 10
    last = sum(h["loss"] for h in history[-10:]) / 10
    assert last < 0.1 * first
    for name in ("loss_objectness", "loss_classifier"):
        assert history[-1][name] < 0.2 * history[0][name]

    model.eval()
    with torch.no_grad():
        outputs = model([image for image, _ in samples])
    for (_, target), output in zip(samples, outputs, strict=True):
        confident = output["scores"] >= 0.5
        iou = box_iou(target["boxes"], output["boxes"][confident])
        same_class = target["labels"][:, None] == output["labels"][confident][None, :]
        found = ((iou >= 0.7) & same_class).any(dim=1)
        assert found.all(), f"missed {target['boxes'][~found].tolist()}"
