"""The paper's 4-step alternating training: what each step trains, freezes and shares."""

from __future__ import annotations

import json
import math
import signal
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import Tensor

from faster_rcnn import FasterRCNNConfig
from faster_rcnn.data.synthetic import SyntheticShapes
from faster_rcnn.models import mobilenet_v2_fpn_config, small_config
from faster_rcnn.train.alternating import (
    STAGES,
    AlternatingConfig,
    build_initial_model,
    fast_rcnn_losses,
    finetune_fast_rcnn,
    finetune_rpn,
    share_backbone,
    split_steps,
    train_alternating,
    train_fast_rcnn_on_proposals,
)
from faster_rcnn.train.checkpoint import TrainingCheckpoint
from faster_rcnn.train.rpn_only import rpn_trainer
from faster_rcnn.train.schedule import learning_rate
from faster_rcnn.train.stops import TrainingInterrupted
from faster_rcnn.train.train_config import TrainConfig

REPO_ROOT = Path(__file__).resolve().parents[2]
MOBILENET_V2_FILE = REPO_ROOT.parent / "shared" / "weights" / "mobilenet_v2-b0353104.pth"

State = dict[str, Tensor]


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_config() -> FasterRCNNConfig:
    return small_config(4).replace(transform={"min_size": (128,), "max_size": 128})


def samples(num_images: int = 3) -> list[tuple[Tensor, dict[str, Tensor]]]:
    data = SyntheticShapes(
        num_images, image_size=(128, 128), seed=3, max_objects=3, empty_fraction=0.0
    )
    return [data[i] for i in range(num_images)]


def step_config(steps: int) -> TrainConfig:
    return TrainConfig(
        steps=steps, batch_size=2, lr=0.02, warmup_steps=0, schedule="step", lr_decay_at=()
    )


def state(module: torch.nn.Module, prefix: str = "") -> State:
    """A copy of the state dict (parameters and buffers) entries under ``prefix``."""
    return {k: v.detach().clone() for k, v in module.state_dict().items() if k.startswith(prefix)}


def changed(before: State, module: torch.nn.Module) -> set[str]:
    after = module.state_dict()
    return {k for k, v in before.items() if not torch.equal(after[k], v)}


def parameter_names(module: torch.nn.Module, prefix: str) -> set[str]:
    return {name for name, _ in module.named_parameters() if name.startswith(prefix)}


@pytest.fixture(scope="module")
def steps() -> dict[str, object]:
    """The four steps run one by one (15/15/10/10 iterations), with snapshots between."""
    data = samples()
    cfg = tiny_config()
    model_a, _ = build_initial_model(cfg, seed=0)
    model_b, _ = build_initial_model(cfg, seed=1)
    out: dict[str, object] = {"a_init": state(model_a), "b_init": state(model_b)}

    rpn_trainer(model_a, data, step_config(15)).fit()
    model_a.zero_grad(set_to_none=True)
    out["a_step1"] = state(model_a)

    # Record what A's RPN hands out in step 2 and what B's RoI head is given.
    seen: dict[str, list] = {"proposals": [], "roi_inputs": []}
    predict, roi_forward = model_a.rpn.predict, model_b.roi_heads.forward

    def recording_predict(image_list, features):
        prediction = predict(image_list, features)
        seen["proposals"].append(
            (
                torch.is_grad_enabled(),
                model_a.rpn.training,
                model_a.backbone.training,
                [b.requires_grad for b in prediction.boxes],
                prediction.boxes,
            )
        )
        return prediction

    def recording_roi_forward(features, proposals, image_shapes, targets=None, generator=None):
        seen["roi_inputs"].append(proposals)
        return roi_forward(features, proposals, image_shapes, targets, generator)

    model_a.rpn.predict = recording_predict
    model_b.roi_heads.forward = recording_roi_forward
    out["step2_history"] = train_fast_rcnn_on_proposals(model_b, model_a, data, step_config(15))
    del model_a.rpn.predict, model_b.roi_heads.forward
    out["seen"] = seen
    out["a_grads"] = [p.grad for p in model_a.parameters()]
    out["a_step2"] = state(model_a)
    out["b_step2"] = state(model_b)

    model = share_backbone(model_b, model_a)
    out["shared"] = state(model)
    out["step3_history"] = finetune_rpn(model, data, step_config(10))
    out["step3"] = state(model)
    out["step4_history"] = finetune_fast_rcnn(model, data, step_config(10))
    out["model_a"], out["model"], out["data"] = model_a, model, data
    return out


def test_step1_trains_the_backbone_and_rpn_only(steps):
    model_a, before = steps["model_a"], steps["a_init"]
    moved = {k for k in changed(before, model_a) if k in parameter_names(model_a, "")}
    assert moved == parameter_names(model_a, "backbone.") | parameter_names(model_a, "rpn.")


def test_step2_proposals_are_constants_from_the_frozen_step1_network(steps):
    # Nothing in A moved: weights, batch-norm statistics (A's backbone was in eval mode),
    # and no gradient reached it.
    assert changed(steps["a_step1"], steps["model_a"]) == set()
    assert all(grad is None for grad in steps["a_grads"])
    seen = steps["seen"]
    assert len(seen["proposals"]) == 15
    for grad_enabled, rpn_training, backbone_training, requires_grad, _ in seen["proposals"]:
        assert not grad_enabled
        assert rpn_training  # the training-time numbers of proposals
        assert not backbone_training
        assert not any(requires_grad)
    # B's RoI head was given exactly A's proposals.
    assert len(seen["roi_inputs"]) == 15
    for (*_, boxes), given in zip(seen["proposals"], seen["roi_inputs"], strict=True):
        assert all(a is b for a, b in zip(boxes, given, strict=True))


def test_step2_trains_the_detector_backbone_and_roi_head_only(steps):
    model = steps["model"]
    before, after = steps["b_init"], steps["b_step2"]
    moved = {k for k in parameter_names(model, "") if not torch.equal(before[k], after[k])}
    assert moved <= parameter_names(model, "backbone.") | parameter_names(model, "roi_heads.")
    # At 128 px every RoI is pooled from FPN level "0", so the output convs of the other
    # levels get zero gradients; the rest of the backbone and the whole RoI head train.
    assert parameter_names(model, "backbone.body.") | parameter_names(model, "roi_heads.") <= moved
    history = steps["step2_history"]
    assert set(history[0]) == {"loss_classifier", "loss_box_reg", "loss"}
    assert history[-1]["loss_classifier"] < history[0]["loss_classifier"]


def test_step3_shares_the_step2_backbone_frozen_and_trains_the_rpn_head_only(steps):
    model, model_a = steps["model"], steps["model_a"]
    shared, b_step2, step3 = steps["shared"], steps["b_step2"], steps["step3"]
    # The initialisation: B's backbone and RoI head, A's RPN.
    for key, value in shared.items():
        source = steps["a_step2"] if key.startswith("rpn.") else b_step2
        assert torch.equal(value, source[key]), key
    # The backbone, buffers (batch-norm statistics) included, is B's after step 2.
    for key, value in step3.items():
        if key.startswith("backbone."):
            assert torch.equal(value, b_step2[key]), key
    assert not any(p.requires_grad for p in model.backbone.parameters())
    moved = {k for k, v in step3.items() if not torch.equal(v, shared[k])}
    assert moved == parameter_names(model, "rpn.head.")
    assert model_a.rpn is not model.rpn


def test_step4_trains_the_fast_rcnn_layers_only(steps):
    model, step3 = steps["model"], steps["step3"]
    moved = changed(step3, model)
    assert moved == parameter_names(model, "roi_heads.box_head.") | parameter_names(
        model, "roi_heads.box_predictor."
    )
    assert not any(p.requires_grad for p in model.backbone.parameters())
    assert set(steps["step4_history"][0]) == {"loss_classifier", "loss_box_reg", "loss"}


def test_the_final_network_detects(steps):
    model, data = steps["model"], steps["data"]
    model.eval()
    images = [image for image, _ in data]
    detections, proposals = model.detect_with_proposals(images)
    for detection, proposal in zip(detections, proposals, strict=True):
        assert set(detection) == {"boxes", "labels", "scores"}
        assert detection["boxes"].shape[1] == 4
        assert len(detection["boxes"]) == len(detection["labels"]) == len(detection["scores"])
        assert len(proposal["boxes"]) > 0
        assert ((detection["labels"] >= 1) & (detection["labels"] < 4)).all()
        assert (detection["boxes"] >= 0).all() and (detection["boxes"] <= 128).all()
    assert sum(len(d["boxes"]) for d in detections) > 0


def test_train_alternating_is_the_four_steps_in_order():
    data = samples(2)
    cfg = tiny_config()
    alt = AlternatingConfig(step_config(2), step_config(2), step_config(1), step_config(1))
    calls: list[tuple[str, int]] = []
    result = train_alternating(cfg, data, alt, on_step=lambda name, i, _: calls.append((name, i)))

    model_a, _ = build_initial_model(cfg, seed=0)
    model_b, _ = build_initial_model(cfg, seed=1)
    rpn_trainer(model_a, data, alt.rpn).fit()
    train_fast_rcnn_on_proposals(model_b, model_a, data, alt.fast_rcnn)
    model = share_backbone(model_b, model_a)
    finetune_rpn(model, data, alt.rpn_finetune)
    finetune_fast_rcnn(model, data, alt.fast_rcnn_finetune)

    assert calls == [
        ("rpn", 0),
        ("rpn", 1),
        ("fast_rcnn", 0),
        ("fast_rcnn", 1),
        ("rpn_finetune", 0),
        ("fast_rcnn_finetune", 0),
    ]
    assert [len(result.rpn), len(result.fast_rcnn)] == [2, 2]
    assert [len(result.rpn_finetune), len(result.fast_rcnn_finetune)] == [1, 1]
    assert result.weights_report is None
    assert not result.model.training
    expected = model.state_dict()
    for key, value in result.model.state_dict().items():
        assert torch.equal(value, expected[key]), key


def stage_weights(out_dir: Path, stage: str, prefix: str) -> State:
    """The weights under ``prefix`` (buffers included) of ``stage``'s final checkpoint."""
    weights = load_file(out_dir / stage / "model.safetensors")
    return {key: value for key, value in weights.items() if key.startswith(prefix)}


def assert_equal_weights(first: State, second: State) -> None:
    assert first.keys() == second.keys() and first
    for key, value in first.items():
        assert torch.equal(value, second[key]), key


def test_steps_3_and_4_leave_the_shared_layers_as_step_2_made_them(tmp_path):
    """The checkpoints of a run: step 3 changes only the RPN's own layers, step 4 only the
    RoI head's; the shared layers, batch-norm statistics included, are step 2's bit for
    bit, though step 2 moved those statistics (so a training-mode pass would too)."""
    alt = AlternatingConfig(step_config(2), step_config(2), step_config(2), step_config(2))
    result = train_alternating(tiny_config(), samples(2), alt, out_dir=tmp_path)

    step2 = stage_weights(tmp_path, "fast_rcnn", "backbone.")
    counts = [value for key, value in step2.items() if key.endswith("num_batches_tracked")]
    assert counts and all(count == 2 for count in counts)  # step 2's two batches
    for stage in ("rpn_finetune", "fast_rcnn_finetune"):
        assert_equal_weights(stage_weights(tmp_path, stage, "backbone."), step2)
    assert_equal_weights(state(result.model, "backbone."), step2)
    # Step 3 leaves the RoI head as step 2 made it; step 4 the RPN as step 3 did.
    assert_equal_weights(
        stage_weights(tmp_path, "rpn_finetune", "roi_heads."),
        stage_weights(tmp_path, "fast_rcnn", "roi_heads."),
    )
    assert_equal_weights(
        stage_weights(tmp_path, "fast_rcnn_finetune", "rpn."),
        stage_weights(tmp_path, "rpn_finetune", "rpn."),
    )


def test_every_steps_checkpoint_records_the_alternating_scheme(tmp_path):
    """Its first step is a stage "rpn", as the RPN trained alone is: the checkpoints say
    which scheme wrote them, whatever warm-up share the steps were given (here the RPN
    run's default, 2, not the steps' tenth)."""
    alt = AlternatingConfig(*[step_config(1)] * 4)
    assert alt.rpn.warmup_share == 2
    train_alternating(tiny_config(), samples(2), alt, out_dir=tmp_path)
    recorded = [TrainingCheckpoint.scheme_in(tmp_path / stage) for stage in STAGES]
    assert recorded == ["alternating"] * 4


def stop_at(stage: str, step: int):
    """A step callback that raises SIGTERM in ``stage``'s step ``step`` (in this thread,
    handled before the callback returns): the stage stops after it, with a checkpoint."""

    def report(name: str, index: int, _: dict[str, float]) -> None:
        if (name, index) == (stage, step):
            signal.raise_signal(signal.SIGTERM)

    return report


def test_a_run_resumed_longer_keeps_the_steps_a_later_step_began_from(tmp_path):
    """Stopped in step 3 and resumed with more steps, steps 1 and 2 stay as they ended:
    step 3's checkpoint holds the network they made, so more steps of theirs would reach
    neither the result nor the steps after them, though the records would count them. The
    new lengths apply from step 3 on."""
    data, cfg = samples(2), tiny_config()
    short = AlternatingConfig(step_config(2), step_config(2), step_config(2), step_config(1))
    with pytest.raises(TrainingInterrupted, match="rpn_finetune: stopped by SIGTERM after 1 step"):
        train_alternating(cfg, data, short, on_step=stop_at("rpn_finetune", 0), out_dir=tmp_path)
    ended = {
        name: load_file(tmp_path / name / "model.safetensors") for name in ("rpn", "fast_rcnn")
    }

    longer = AlternatingConfig(step_config(4), step_config(3), step_config(3), step_config(2))
    with pytest.warns(UserWarning) as caught:
        result = train_alternating(cfg, data, longer, out_dir=tmp_path, resume=True)

    said = [str(warning.message) for warning in caught]
    assert said[:2] == [
        "rpn keeps the 2 steps it ran: the run had gone on to fast_rcnn, which began from it; "
        "a resumed run's new length applies from the step under way on",
        "fast_rcnn keeps the 2 steps it ran: the run had gone on to rpn_finetune, which began "
        "from it; a resumed run's new length applies from the step under way on",
    ]
    ran = [result.rpn, result.fast_rcnn, result.rpn_finetune, result.fast_rcnn_finetune]
    assert [len(history) for history in ran] == [2, 2, 3, 2]
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    logged = [json.loads(line)["stage"] for line in lines]
    assert [logged.count(name) for name in STAGES] == [2, 2, 3, 2]
    final = result.model.state_dict()
    for name, weights in ended.items():
        now = load_file(tmp_path / name / "model.safetensors")
        assert all(torch.equal(now[key], weights[key]) for key in weights), name
    # The shared layers are still step 2's, batch-norm statistics included.
    backbone = [key for key in final if key.startswith("backbone.")]
    assert any(key.endswith("running_mean") for key in backbone)
    assert all(torch.equal(final[key], ended["fast_rcnn"][key]) for key in backbone)


def test_alternating_config_follows_the_paper_proportions():
    default = AlternatingConfig()
    steps = [default.rpn, default.fast_rcnn, default.rpn_finetune, default.fast_rcnn_finetune]
    assert [c.steps for c in steps] == [2000, 1000, 2000, 1000]
    assert all(c.lr_decay_at == (0.75,) for c in steps)
    assert all(c.warmup_steps == 50 for c in steps)  # TrainConfig's, under a tenth of each

    base = TrainConfig(lr=0.001, batch_size=1)
    scaled = AlternatingConfig.proportional(120, base, init_seed=5)
    assert [scaled.rpn.steps, scaled.fast_rcnn.steps] == [40, 20]
    assert [scaled.rpn_finetune.steps, scaled.fast_rcnn_finetune.steps] == [40, 20]
    # A short step warms up for a tenth of it (of its planned length), not for the base's
    # 50 steps.
    assert scaled.fast_rcnn == replace(base, steps=20, warmup_share=10)
    # The 40-step first step: warm-up over 4 steps, then the plain cosine.
    rates = [learning_rate(scaled.rpn, step) for step in (3, 4)]
    assert rates[0] < 0.001 * 0.5 * (1 + math.cos(math.pi * 3 / 40))
    assert rates[1] == pytest.approx(0.001 * 0.5 * (1 + math.cos(math.pi * 4 / 40)))
    assert scaled.init_seed == 5


@pytest.mark.parametrize(
    ("total", "split"),
    [(4, (1, 1, 1, 1)), (5, (2, 1, 1, 1)), (7, (3, 1, 2, 1)), (9, (3, 2, 3, 1)),
     (355, (119, 59, 118, 59)), (2000, (667, 333, 667, 333))],
)  # fmt: skip
def test_the_steps_are_split_2_1_2_1_summing_to_the_total(total, split):
    """Each step's share rounded down, the rest to the largest remainders (an earlier step
    first): the four ran as many as asked, each at least one."""
    assert split_steps(total) == split
    configs = AlternatingConfig.proportional(total)
    steps = [configs.rpn, configs.fast_rcnn, configs.rpn_finetune, configs.fast_rcnn_finetune]
    assert tuple(c.steps for c in steps) == split
    assert all(sum(split_steps(n)) == n and min(split_steps(n)) >= 1 for n in range(4, 2000))


def test_fewer_than_four_steps_leave_a_step_none_and_are_refused():
    with pytest.raises(ValueError, match="3 iterations are too few for the alternating"):
        AlternatingConfig.proportional(3)


def test_step2_needs_one_transform_for_both_networks():
    cfg = tiny_config()
    other = cfg.replace(transform={"min_size": (96,)})
    detector, _ = build_initial_model(cfg)
    proposer, _ = build_initial_model(other)
    with pytest.raises(ValueError, match="transform"):
        train_fast_rcnn_on_proposals(detector, proposer, samples(1), step_config(1))


def test_fast_rcnn_losses_check_targets_like_the_model():
    model, _ = build_initial_model(tiny_config())
    image, target = samples(1)[0]
    bad = {"boxes": torch.tensor([[5.0, 5.0, 40.0, 30.0]]), "labels": torch.tensor([4])}
    with pytest.raises(ValueError, match="image 1, box 0: label 4"):
        fast_rcnn_losses(model.train(), [image, image], [target, bad])


def test_initial_models_differ_but_build_repeatably_and_leave_the_global_seed():
    cfg = tiny_config()
    torch.manual_seed(123)
    expected_draw = torch.rand(1)
    torch.manual_seed(123)
    first, _ = build_initial_model(cfg, seed=0)
    assert torch.equal(torch.rand(1), expected_draw)
    again, _ = build_initial_model(cfg, seed=0)
    other, _ = build_initial_model(cfg, seed=1)
    assert changed(state(first), again) == set()
    assert "rpn.head.conv.0.0.weight" in changed(state(first), other)


@pytest.mark.skipif(not MOBILENET_V2_FILE.exists(), reason=f"{MOBILENET_V2_FILE} is absent")
def test_initial_models_take_the_imagenet_backbone():
    cfg = mobilenet_v2_fpn_config(4)
    model, report = build_initial_model(cfg, MOBILENET_V2_FILE, seed=0)
    other, _ = build_initial_model(cfg, MOBILENET_V2_FILE, seed=1)
    assert report is not None and report.missing == [] and report.loaded
    file = torch.load(MOBILENET_V2_FILE, map_location="cpu", weights_only=True)
    weights = model.state_dict()
    assert torch.equal(weights["backbone.body.0.0.weight"], file["features.0.0.weight"])
    assert changed(state(model, "backbone.body."), other) == set()
    assert changed(state(model, "rpn."), other) != set()
