"""The trainer: resuming bit for bit, metrics files, and its guards."""

import json
import math
import shutil
import signal
import sys
from pathlib import Path

import pytest
import torch

from faster_rcnn import FasterRCNN
from faster_rcnn.data.augment import Augmented, RandomHorizontalFlip
from faster_rcnn.data.cache import InMemoryDataset
from faster_rcnn.data.dataset import UnreadableImageError, WrappedDataset, as_float_image
from faster_rcnn.data.random_crop import RandomCrop
from faster_rcnn.data.synthetic import SyntheticShapes
from faster_rcnn.models import small_config
from faster_rcnn.roi_heads.box_head import TwoMLPHead
from faster_rcnn.train.checkpoint import TrainingCheckpoint
from faster_rcnn.train.precision import cpu_has_bfloat16
from faster_rcnn.train.schedule import learning_rate
from faster_rcnn.train.state import TrainingState
from faster_rcnn.train.stops import TrainingDiverged, TrainingInterrupted
from faster_rcnn.train.train_config import TrainConfig
from faster_rcnn.train.trainer import Trainer

DATA = SyntheticShapes(6, image_size=(64, 64), seed=3, max_objects=2)
CFG = TrainConfig(steps=4, batch_size=1, lr=0.01, warmup_steps=2, checkpoint_every=2)


def tiny_model(seed: int = 0) -> FasterRCNN:
    cfg = small_config(DATA.num_classes)
    cfg = cfg.replace(
        transform={"min_size": (64,), "max_size": 64},
        rpn={"pre_nms_top_n_train": 200, "post_nms_top_n_train": 200},
        roi_heads={"batch_size_per_image": 32},
    )
    torch.manual_seed(seed)
    return FasterRCNN.from_config(cfg)


def read_records(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def assert_same_state(a: FasterRCNN, b: FasterRCNN) -> None:
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(x, y), name


def test_resumed_run_matches_an_uninterrupted_one_bit_for_bit(tmp_path):
    straight = tiny_model()
    expected = Trainer(straight, DATA, CFG, out_dir=tmp_path / "straight").fit()

    class Interrupted(Exception):
        pass

    def interrupt(step, losses):
        if step == 2:  # after the checkpoint at 2 steps and one step more
            raise Interrupted

    first = tiny_model()
    with pytest.raises(Interrupted):
        Trainer(first, DATA, CFG, out_dir=tmp_path / "resumed", on_step=interrupt).fit()
    assert TrainingCheckpoint.find(tmp_path / "resumed" / "joint") is not None
    torch.rand(10)  # the global generator moves on in between; resuming puts it back

    resumed = tiny_model(seed=1)  # other weights: the checkpoint must replace them
    steps_run = []
    history = Trainer(
        resumed,
        DATA,
        CFG,
        out_dir=tmp_path / "resumed",
        progress=True,
        on_step=lambda step, losses: steps_run.append(step),
    ).fit(resume=True)
    assert steps_run == [2, 3]
    assert history == expected
    assert_same_state(straight, resumed)

    records = read_records(tmp_path / "resumed" / "metrics.jsonl")
    assert [r["step"] for r in records] == list(range(4))
    assert [r["losses"] for r in records] == expected

    # A finished stage resumes to nothing and keeps its weights.
    again = Trainer(tiny_model(seed=2), DATA, CFG, out_dir=tmp_path / "resumed").fit(resume=True)
    assert again == expected
    changed = CFG.replace(lr=0.02)
    with pytest.warns(UserWarning, match=r"lr 0\.01 -> 0\.02"):
        Trainer(tiny_model(), DATA, changed, out_dir=tmp_path / "resumed").fit(resume=True)


class ScaledToFloat(WrappedDataset):
    """``dataset``'s items with their images as float32 in 0..1 (:func:`as_float_image`)."""

    def __getitem__(self, index: int):
        image, target = self.dataset[index]
        return as_float_image(image), target


def test_training_on_uint8_levels_is_training_on_them_as_floats_bit_for_bit(tmp_path):
    """The readers carry 8-bit images to the model as uint8, which it scales itself: the
    same losses and weights as the float images, flipped and cropped on the way."""
    levels = InMemoryDataset(DATA)  # the images at 8 bits, handed out as uint8
    assert levels[0][0].dtype == torch.uint8
    steps = [RandomHorizontalFlip(0.5), RandomCrop(0.5, p=0.5)]
    cfg = CFG.replace(steps=3, batch_size=2)
    runs = {}
    for name, data in (("levels", levels), ("floats", ScaledToFloat(levels))):
        model = tiny_model()
        history = Trainer(model, Augmented(data, steps), cfg, out_dir=tmp_path / name).fit()
        runs[name] = model, history
    assert runs["levels"][1] == runs["floats"][1]
    assert_same_state(runs["levels"][0], runs["floats"][0])


def test_metrics_file_has_one_record_per_step(tmp_path):
    cfg = TrainConfig(steps=3, batch_size=2, lr=0.01, warmup_steps=2, schedule="cosine")
    history = Trainer(tiny_model(), DATA, cfg, stage="rpn1", out_dir=tmp_path).fit()
    records = read_records(tmp_path / "metrics.jsonl")
    assert len(records) == cfg.steps == len(history)
    for step, record in enumerate(records):
        assert record["stage"] == "rpn1" and record["step"] == step
        assert record["lr"] == pytest.approx(learning_rate(cfg, step))
        assert record["losses"] == history[step]
        assert record["grad_norm"] > 0
        assert record["seconds"] > 0
        assert record["images_per_s"] == pytest.approx(2 / record["seconds"])
    assert set(history[0]) == {
        "loss_classifier",
        "loss_box_reg",
        "loss_objectness",
        "loss_rpn_box_reg",
        "loss",
    }
    assert TrainingCheckpoint.find(tmp_path / "rpn1") is not None


def test_a_time_budget_paces_the_schedule_and_stops_the_run(tmp_path, monkeypatch, capsys):
    # A fake clock that reads 1 s later each time it is read (3 readings per step).
    clock = iter(range(10_000))
    monkeypatch.setattr("faster_rcnn.train.trainer.time.perf_counter", lambda: float(next(clock)))
    cfg = TrainConfig(
        steps=100,
        batch_size=1,
        lr=0.01,
        warmup_steps=0,
        max_seconds=90.0,
        schedule="step",
        lr_decay_at=(0.5,),
        checkpoint_every=None,
    )
    history = Trainer(tiny_model(), DATA, cfg, out_dir=tmp_path, progress=True).fit()
    lrs = [record["lr"] for record in read_records(tmp_path / "metrics.jsonl")]
    # Step k is planned at 3k + 2 s. The plan is 100 steps until the pacer's first
    # projection at step 20 (62 s): 20 + 28 s * 20 / 60 s = 29 steps, decay at 14, so the
    # rate drops there at once; step 28 (86 s) ends by 90 s, step 29 (89 s) would not.
    assert len(history) == len(lrs) == 29
    assert lrs == pytest.approx([0.01] * 20 + [0.001] * 9)
    assert (
        "joint: stopped after 29 steps: 89 s of the 90 s budget spent, and a step takes about "
        "3 s (the median of the last 5 steps): the next would end past the budget"
    ) in capsys.readouterr().out


def test_a_run_of_few_slow_steps_lays_its_warmup_and_decay_over_the_steps_that_fit(
    tmp_path, monkeypatch
):
    clock = iter(range(10_000))  # as above: 1 s a reading, 3 readings a step
    monkeypatch.setattr("faster_rcnn.train.trainer.time.perf_counter", lambda: float(next(clock)))
    cfg = TrainConfig(
        steps=100, batch_size=1, lr=0.01, warmup_steps=50, warmup_factor=0.1, warmup_share=3,
        max_seconds=30.0, schedule="step", lr_decay_at=(0.5,), checkpoint_every=None,
    )  # fmt: skip
    history = Trainer(tiny_model(), DATA, cfg, out_dir=tmp_path).fit()
    lrs = [record["lr"] for record in read_records(tmp_path / "metrics.jsonl")]
    # Step k is planned at 3k + 2 s. Steps 0-2 are laid over 100 steps (a warm-up of
    # 100 // 3 = 33); at step 3 (11 s), 3 steps in 9 s say 3 + 19 s / 3 s = 9 fit, fewer
    # than 20: the plan is 9 from then on (a warm-up of 3 steps, the decay at step 4), not
    # from step 20, which the run never reaches. Step 8 (26 s) ends by 30 s; step 9 would not.
    assert len(history) == 9
    warmup = [0.001, 0.01 * (0.1 + 0.9 / 33), 0.01 * (0.1 + 1.8 / 33)]
    assert lrs == pytest.approx(warmup + [0.01] + [0.001] * 5)


def test_a_short_run_raises_its_rate_once_projected_and_a_resumed_one_keeps_it(
    tmp_path, monkeypatch, capsys
):
    clock = iter(range(10_000))  # as above: 1 s a reading, 3 readings a step
    monkeypatch.setattr("faster_rcnn.train.trainer.time.perf_counter", lambda: float(next(clock)))
    cfg = TrainConfig(
        steps=100, batch_size=1, lr=0.01, warmup_steps=0, max_seconds=90.0, schedule="step",
        lr_decay_at=(0.5,), checkpoint_every=25, short_run_steps=40,
    )  # fmt: skip

    def interrupt(step, losses):
        if step == 25:
            raise InterruptedError

    with pytest.raises(InterruptedError):
        Trainer(tiny_model(), DATA, cfg, out_dir=tmp_path, on_step=interrupt, progress=True).fit()
    # As above, the first projection (step 20) fits 29 steps, fewer than 40: the rate is
    # 40 / 29 times the schedule's from there on (past the decay at step 14).
    scale = 40 / 29
    said = "joint: about 29 steps fit, fewer than 40 (train.short_run_steps): the rate rises"
    assert f"{said} 1.38 times, to 0.0137931" in capsys.readouterr().out
    lrs = [record["lr"] for record in read_records(tmp_path / "metrics.jsonl")]
    assert lrs == pytest.approx([0.01] * 20 + [0.001 * scale] * 6)
    saved = TrainingCheckpoint.load(tmp_path / "joint", tiny_model())
    assert saved.step == 25 and saved.lr_scale == pytest.approx(scale)
    # Resumed at step 25, the budget goes on from the seconds it had counted and the plan
    # it had projected: the rate stays decayed and scaled, and the run stops where the
    # uninterrupted one did (after 29 steps: a 3 s step at 89 s would end past 90 s), not
    # after a second budget.
    assert saved.planned_steps == 29 and saved.seconds_spent == pytest.approx(76.0)
    assert saved.step_seconds == [3.0] * 5
    history = Trainer(tiny_model(), DATA, cfg, out_dir=tmp_path).fit(resume=True)
    lrs = [record["lr"] for record in read_records(tmp_path / "metrics.jsonl")]
    assert len(history) == len(lrs) == 29
    assert lrs[25:] == pytest.approx([0.001 * scale] * 4)
    # Resumed again, the steps timed before say the next would end past the budget.
    history = Trainer(tiny_model(), DATA, cfg, out_dir=tmp_path).fit(resume=True)
    assert len(history) == len(read_records(tmp_path / "metrics.jsonl")) == 29


def test_a_time_limited_run_resumed_for_longer_lays_its_schedule_over_the_new_length(
    tmp_path, monkeypatch
):
    """A finished run given twice its budget plans twice the steps it had projected (what
    twice the time fits at its speed), and one given a step count plans those: kept, its
    plan would have ended the cosine at once, and every step past it trained at 0."""
    clock = iter(range(10_000))  # as above: 1 s a reading, 3 readings a step
    monkeypatch.setattr("faster_rcnn.train.trainer.time.perf_counter", lambda: float(next(clock)))
    cfg = TrainConfig(
        steps=1000, batch_size=1, lr=0.01, warmup_steps=0, max_seconds=66.0, checkpoint_every=None
    )
    Trainer(tiny_model(), DATA, cfg, out_dir=tmp_path / "minutes").fit()
    # The first projection (step 20, 62 s) fits 21 steps; step 21 (65 s) would end at 68 s.
    saved = TrainingCheckpoint.load(tmp_path / "minutes" / "joint", tiny_model())
    assert (saved.step, saved.planned_steps) == (21, 21)
    shutil.copytree(tmp_path / "minutes", tmp_path / "steps")

    longer = cfg.replace(max_seconds=132.0)
    Trainer(tiny_model(), DATA, longer, out_dir=tmp_path / "minutes").fit(resume=True)
    lrs = [record["lr"] for record in read_records(tmp_path / "minutes" / "metrics.jsonl")]
    # The plan of 42 steps holds until the resumed run has timed 20 steps of its own.
    assert lrs[21:41] == pytest.approx([learning_rate(cfg, step, 42) for step in range(21, 41)])
    assert min(lrs[21:]) > 0

    steps = cfg.replace(steps=33, max_seconds=None)
    with pytest.warns(UserWarning, match=r"run length 1\.1 minutes, at most 1,000 steps -> 33 "):
        Trainer(tiny_model(), DATA, steps, out_dir=tmp_path / "steps").fit(resume=True)
    lrs = [record["lr"] for record in read_records(tmp_path / "steps" / "metrics.jsonl")]
    assert lrs[21:] == pytest.approx([learning_rate(steps, step) for step in range(21, 33)])
    assert min(lrs[21:]) > 0


def test_amp_is_ignored_on_a_cpu_without_bfloat16(monkeypatch):
    monkeypatch.setattr("faster_rcnn.train.precision.cpu_has_bfloat16", lambda: False)
    cfg = TrainConfig(steps=2, batch_size=1, lr=0.01, warmup_steps=0)
    plain, mixed = tiny_model(), tiny_model()
    Trainer(plain, DATA, cfg).fit()
    Trainer(mixed, DATA, cfg.replace(amp=True)).fit()
    assert_same_state(plain, mixed)


@pytest.mark.skipif(not cpu_has_bfloat16(), reason="this CPU has no bfloat16 instructions")
def test_amp_trains_in_bfloat16_on_a_cpu_that_has_it(tmp_path):
    cfg = TrainConfig(steps=2, batch_size=2, lr=0.01, warmup_steps=0, amp=True)
    plain, mixed = tiny_model(), tiny_model()
    expected = Trainer(plain, DATA, cfg.replace(amp=False)).fit()
    history = Trainer(mixed, DATA, cfg, out_dir=tmp_path).fit()
    # The same losses but for bfloat16's rounding (8 significant bits in every layer,
    # a few per cent after the backbone's), not float32's.
    first, reference = history[0], expected[0]
    assert first != reference
    for name, value in reference.items():
        assert first[name] == pytest.approx(value, rel=0.1), name
    weights = [p for p in mixed.parameters() if p.requires_grad]
    assert all(p.dtype == torch.float32 for p in weights)  # autocast keeps float32 weights
    # No loss scaling: bfloat16 has float32's range.
    assert TrainingCheckpoint.load(tmp_path / "joint", tiny_model()).grad_scaler is None


def test_only_the_given_parameters_are_trained():
    model = tiny_model()
    head_before = [p.clone() for p in model.roi_heads.parameters()]
    rpn_before = [p.clone() for p in model.rpn.parameters()]

    def rpn_losses(model, images, targets, generator):
        losses = model(images, targets, generator=generator)
        return {k: v for k, v in losses.items() if k in ("loss_objectness", "loss_rpn_box_reg")}

    cfg = TrainConfig(steps=1, batch_size=1, lr=0.1, warmup_steps=0)
    trainer = Trainer(
        model, DATA, cfg, compute_losses=rpn_losses, parameters=list(model.rpn.parameters())
    )
    history = trainer.fit()
    assert set(history[0]) == {"loss_objectness", "loss_rpn_box_reg", "loss"}
    assert all(
        torch.equal(a, b) for a, b in zip(head_before, model.roi_heads.parameters(), strict=True)
    )
    assert any(
        not torch.equal(a, b) for a, b in zip(rpn_before, model.rpn.parameters(), strict=True)
    )


def test_non_finite_steps_are_skipped_and_too_many_in_a_row_stop_saving_nothing(tmp_path):
    model = tiny_model()
    before = [p.clone() for p in model.parameters()]

    def nan_loss(model, images, targets, generator):
        return {"loss_nan": sum(p.sum() for p in model.rpn.parameters()) * float("nan")}

    cfg = TrainConfig(steps=10, batch_size=1, max_nonfinite_steps=3, checkpoint_every=2)
    trainer = Trainer(model, DATA, cfg, compute_losses=nan_loss, out_dir=tmp_path)
    with (
        pytest.warns(UserWarning, match=r"step \d: non-finite loss"),
        pytest.raises(
            TrainingDiverged,
            match="3 steps in a row had a non-finite loss or gradient; stopped without saving the "
            r"weights that gave it\. Likely causes",
        ),
    ):
        trainer.fit()
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    # The weights gave nothing but NaN: no checkpoint of them, at 2 steps or at the end.
    assert TrainingCheckpoint.find(tmp_path / "joint") is None
    records = read_records(tmp_path / "metrics.jsonl")
    assert [r["losses"] for r in records] == [{"loss_nan": None, "loss": None}] * 3
    assert [r["grad_norm"] for r in records] == [None] * 3


def losses_nan_from_step(step: int):
    """A ``compute_losses`` whose objectness loss is NaN from its (0-based) ``step`` on."""
    calls: list[int] = []

    def compute(model, images, targets, generator):
        losses = model(images, targets, generator=generator)
        calls.append(0)
        if len(calls) > step:
            losses["loss_objectness"] = losses["loss_objectness"] * float("nan")
        return losses

    return compute


def test_a_diverged_stage_keeps_the_checkpoint_written_before_its_non_finite_losses(tmp_path):
    """The weights that gave the non-finite losses would give them again when resumed:
    the checkpoint before them stays, and resuming goes on from its weights."""

    saved: dict[int, list[torch.Tensor]] = {}

    def keep_weights(step, losses):
        saved[step] = [p.detach().clone() for p in model.parameters()]

    model = tiny_model()
    cfg = TrainConfig(steps=8, batch_size=1, max_nonfinite_steps=3, checkpoint_every=2)
    trainer = Trainer(
        model,
        DATA,
        cfg,
        compute_losses=losses_nan_from_step(3),
        out_dir=tmp_path,
        on_step=keep_weights,
    )
    stage = tmp_path / "joint"
    with (
        pytest.warns(UserWarning, match=r"step [345]: non-finite loss"),
        pytest.raises(
            TrainingDiverged,
            match=rf"stopped without saving the weights that gave it; the checkpoint of step 2 in "
            rf"{stage}, written before them, is kept \(--resume goes on from it\)",
        ),
    ):
        trainer.fit()
    # Steps 3, 4, 5 were skipped; the checkpoint due after 4 steps was not written.
    kept = tiny_model(seed=1)
    assert TrainingCheckpoint.load(stage, kept).step == 2
    assert all(torch.equal(a, b) for a, b in zip(saved[1], kept.parameters(), strict=True))
    history = Trainer(kept, DATA, cfg, out_dir=tmp_path).fit(resume=True)
    assert len(history) == 8
    assert all(math.isfinite(v) for record in history[2:] for v in record.values())


def test_a_finite_loss_that_blows_up_stops_the_stage_keeping_the_checkpoint_before_it(tmp_path):
    """Weights blown up by too high a rate give huge but finite losses, which the
    non-finite checks let through to the checkpoints: a loss LOSS_BLOWUP times the
    stage's first stops it, as non-finite ones do."""

    def blowing_up_from_call_4(model, images, targets, generator):
        losses = model(images, targets, generator=generator)
        calls.append(0)
        if len(calls) >= 4:  # finite, and the gradient too (clipped)
            losses = {name: loss * 1e6 for name, loss in losses.items()}
        return losses

    calls: list[int] = []
    model = tiny_model()
    cfg = TrainConfig(steps=8, batch_size=1, checkpoint_every=2)
    trainer = Trainer(model, DATA, cfg, compute_losses=blowing_up_from_call_4, out_dir=tmp_path)
    stage = tmp_path / "joint"
    with pytest.raises(TrainingDiverged) as diverged:
        trainer.fit()
    first, blown = [r["losses"]["loss"] for r in read_records(tmp_path / "metrics.jsonl")][::3]
    assert blown / first > 1e4 and trainer.skipped_steps == 0
    assert str(diverged.value) == (
        f"joint, step 3: the loss blew up to {blown:.3g}, {blown / first:.2g} times the "
        f"stage's first ({first:.3g}); stopped without saving the weights that gave it; the "
        f"checkpoint of step 2 in {stage}, written before them, is kept (--resume goes on "
        "from it). The learning rate is too high: train with a lower --lr"
    )
    assert TrainingCheckpoint.steps_in(stage) == 2
    # Resumed at step 2, the stage compares with the first loss of its history.
    calls[:] = [0, 0]
    resumed = Trainer(model, DATA, cfg, compute_losses=blowing_up_from_call_4, out_dir=tmp_path)
    with pytest.raises(TrainingDiverged, match=rf"^joint, step 3: .* \({first:.3g}\);"):
        resumed.fit(resume=True)


def test_a_stop_signal_amid_non_finite_losses_keeps_the_checkpoint_written_before_them(
    tmp_path,
):
    """Ctrl-C on seeing the warnings of non-finite losses must not save over the good
    checkpoint the weights that gave them, as divergence does not."""

    def terminate_at_step_3(step, losses):
        if step == 3:
            signal.raise_signal(signal.SIGTERM)

    cfg = TrainConfig(steps=8, batch_size=1, max_nonfinite_steps=3, checkpoint_every=2)
    trainer = Trainer(
        tiny_model(),
        DATA,
        cfg,
        compute_losses=losses_nan_from_step(3),
        out_dir=tmp_path,
        on_step=terminate_at_step_3,
    )
    stage = tmp_path / "joint"
    with (
        pytest.warns(UserWarning, match="step 3: non-finite loss"),
        pytest.raises(
            TrainingInterrupted,
            match=rf"stopped by SIGTERM after 4 steps; the checkpoint of step 2 in {stage}, "
            "written before the non-finite losses or gradients since, is kept",
        ) as info,
    ):
        trainer.fit()
    assert info.value.checkpoint == stage
    assert TrainingCheckpoint.steps_in(stage) == 2


class VanishingImage:
    """``DATA`` whose next image read after :meth:`vanish` fails, as a file deleted
    mid-run (the reads after it, the replacement's, succeed)."""

    def __init__(self) -> None:
        self.gone = False

    def __len__(self) -> int:
        return len(DATA)

    def __getitem__(self, index: int):
        if self.gone:
            self.gone = False
            raise UnreadableImageError(Path(f"{index}.png"), f"cannot read image {index}.png")
        return DATA[index]

    def vanish(self) -> None:
        self.gone = True


def test_a_strict_stop_at_an_unreadable_image_amid_non_finite_losses_keeps_the_checkpoint(
    tmp_path,
):
    """The stage stops short, as a stop signal stops it: the weights that gave the
    non-finite losses must not be saved over the checkpoint written before them, which
    --resume would go on from."""
    data = VanishingImage()

    def vanish_at_step_3(step, losses):
        if step == 3:
            data.vanish()  # the batch of step 4

    cfg = TrainConfig(
        steps=8, batch_size=1, max_nonfinite_steps=3, checkpoint_every=2, skip_unreadable=False
    )
    trainer = Trainer(
        tiny_model(),
        data,
        cfg,
        compute_losses=losses_nan_from_step(3),
        out_dir=tmp_path,
        on_step=vanish_at_step_3,
    )
    stage = tmp_path / "joint"
    with (
        pytest.warns(UserWarning, match="step 3: non-finite loss"),
        pytest.raises(UnreadableImageError) as info,
    ):
        trainer.fit()
    assert str(info.value) == (
        f"joint, step 4: cannot read image {info.value.path} (strict); the checkpoint of "
        f"step 2 in {stage}, written before the non-finite losses or gradients since, is kept"
    )
    assert TrainingCheckpoint.steps_in(stage) == 2


def test_a_single_non_finite_step_is_skipped_and_training_goes_on():
    def losses_nan_at_step_1(model, images, targets, generator):
        losses = model(images, targets, generator=generator)
        calls.append(0)
        if len(calls) == 2:
            losses["loss_objectness"] = losses["loss_objectness"] * float("inf")
        return losses

    calls: list[int] = []
    model = tiny_model()
    cfg = TrainConfig(steps=3, batch_size=1, warmup_steps=0)
    trainer = Trainer(model, DATA, cfg, compute_losses=losses_nan_at_step_1)
    with pytest.warns(UserWarning, match="step 1: non-finite loss"):
        history = trainer.fit()
    assert trainer.skipped_steps == 1
    finite = [all(math.isfinite(v) for v in record.values()) for record in history]
    assert finite == [True, False, True]
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_a_step_with_a_finite_loss_but_a_non_finite_gradient_is_skipped_and_counted(tmp_path):
    def overflowing_gradient(model, images, targets, generator):
        # sqrt(|w|) at w = 0: the loss is finite, its gradient NaN (infinite times sign 0).
        w = model.rpn.head.cls_logits.bias
        return {"loss_root": (w * 0).abs().sqrt().sum() + 1.5}

    model = tiny_model()
    cfg = TrainConfig(steps=10, batch_size=1, max_nonfinite_steps=2, checkpoint_every=1)
    trainer = Trainer(model, DATA, cfg, compute_losses=overflowing_gradient, out_dir=tmp_path)
    with (
        pytest.warns(UserWarning, match=r"joint, step [01]: non-finite gradient \(loss 1\.5\)"),
        pytest.raises(TrainingDiverged, match="2 steps in a row had a non-finite loss or gradient"),
    ):
        trainer.fit()
    assert trainer.skipped_steps == 2
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert TrainingCheckpoint.find(tmp_path / "joint") is None
    assert [r["grad_norm"] for r in read_records(tmp_path / "metrics.jsonl")] == [None, None]


def test_a_stop_signal_ends_the_stage_with_a_checkpoint_that_resumes_bit_for_bit(tmp_path):
    straight = tiny_model()
    expected = Trainer(straight, DATA, CFG).fit()
    handler = signal.getsignal(signal.SIGTERM)

    def terminate(step, losses):
        if step == 0:
            # To this thread, handled before it returns: os.kill's process-wide signal
            # may be taken by another thread, which the stage notices a step later.
            signal.raise_signal(signal.SIGTERM)

    stopped = Trainer(tiny_model(), DATA, CFG, out_dir=tmp_path, on_step=terminate)
    with pytest.raises(TrainingInterrupted, match="stopped by SIGTERM after 1 step;") as info:
        stopped.fit()
    assert info.value.checkpoint == tmp_path / "joint"
    assert signal.getsignal(signal.SIGTERM) is handler  # the stage's handler is gone
    resumed = tiny_model(seed=1)
    assert Trainer(resumed, DATA, CFG, out_dir=tmp_path).fit(resume=True) == expected
    assert_same_state(straight, resumed)


def test_a_stop_signal_during_the_last_checkpoint_is_not_lost(tmp_path, monkeypatch):
    save = TrainingState.save

    def save_and_be_signalled(self, stage_dir, history):
        save(self, stage_dir, history)
        if len(history) == CFG.steps:
            signal.raise_signal(signal.SIGTERM)  # after the loop's last check

    monkeypatch.setattr(TrainingState, "save", save_and_be_signalled)
    # Only the final checkpoint, written after the loop (at 2 steps apart, the last step's
    # own would come before the loop's check, which would see the signal).
    cfg = CFG.replace(checkpoint_every=None)
    trainer = Trainer(tiny_model(), DATA, cfg, out_dir=tmp_path)
    with pytest.raises(TrainingInterrupted, match=f"stopped by SIGTERM after {CFG.steps} steps"):
        trainer.fit()
    assert TrainingCheckpoint.find(tmp_path / "joint") == tmp_path / "joint"


def test_a_model_its_checkpoints_could_not_save_is_refused_before_any_step(tmp_path):
    """save_model refuses a model its config does not rebuild; the stage found out only
    at its first checkpoint, its steps (minutes of them, or the whole run) lost."""

    class OwnBoxHead(TwoMLPHead):
        pass

    model = tiny_model()
    fc6 = model.roi_heads.box_head.fc6
    model.roi_heads.box_head = OwnBoxHead(fc6.in_features, fc6.out_features)
    steps: list[int] = []
    trainer = Trainer(
        model, DATA, CFG, out_dir=tmp_path, on_step=lambda step, losses: steps.append(step)
    )
    stage = tmp_path / "joint"
    with pytest.raises(
        ValueError,
        match=rf"^cannot checkpoint joint in {stage}: model\.roi_heads\.box_head is "
        r"OwnBoxHead\(\), but the model's config rebuilds TwoMLPHead\(\) there",
    ):
        trainer.fit()
    assert steps == []
    assert list(tmp_path.iterdir()) == []
    # Without an output folder nothing is saved, and the model trains.
    assert len(Trainer(model, DATA, CFG).fit()) == CFG.steps


def test_resuming_without_a_checkpoint_is_refused(tmp_path):
    trainer = Trainer(tiny_model(), DATA, CFG, out_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        trainer.fit(resume=True)
    Trainer(tiny_model(), DATA, CFG, out_dir=tmp_path).fit()
    (tmp_path / "joint" / "state.pt").unlink()
    with pytest.raises(FileNotFoundError) as refused:
        trainer.fit(resume=True)
    assert str(refused.value) == (
        f"the checkpoint in {tmp_path / 'joint'} is incomplete (it has model.safetensors but "
        "no state.pt) and cannot be resumed; start without resuming"
    )


def test_resuming_a_run_past_the_steps_asked_says_so(tmp_path, capsys):
    Trainer(tiny_model(), DATA, CFG, out_dir=tmp_path).fit()
    fewer = CFG.replace(steps=CFG.steps - 1)
    history = Trainer(tiny_model(), DATA, fewer, out_dir=tmp_path, progress=True).fit(resume=True)
    assert len(history) == CFG.steps
    said = f"joint: the checkpoint has {CFG.steps} steps, more than the {CFG.steps - 1} asked"
    assert said in capsys.readouterr().out


def test_tensorboard_without_the_package_fails_before_training(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails
    steps = []
    with pytest.raises(ImportError, match="tensorboard"):
        Trainer(
            tiny_model(),
            DATA,
            TrainConfig(steps=1, batch_size=1),
            tensorboard_dir=tmp_path / "tb",
            on_step=lambda step, losses: steps.append(step),
        ).fit()
    assert steps == []


def test_bad_arguments_are_refused():
    cfg = TrainConfig(steps=1, batch_size=1)
    with pytest.raises(ValueError, match="stage name"):
        Trainer(tiny_model(), DATA, cfg, stage="a/b")
    with pytest.raises(ValueError, match="needs out_dir"):
        Trainer(tiny_model(), DATA, cfg).fit(resume=True)


def test_resuming_on_other_classes_is_refused_in_one_line(tmp_path):
    """The same number of classes in another order would load without a shape error and
    go on training each class's weights under another's name."""

    def named(names):
        return FasterRCNN.from_config(tiny_model().config.replace(class_names=names))

    Trainer(named(DATA.class_names), DATA, CFG, out_dir=tmp_path).fit()
    names = tuple(reversed(DATA.class_names))
    renamed = named(names)
    with pytest.raises(ValueError) as info:
        Trainer(renamed, DATA, CFG, out_dir=tmp_path).fit(resume=True)
    message = str(info.value)
    assert message == (
        f"{tmp_path / 'joint'} was trained on the classes {list(DATA.class_names)}, not "
        f"{list(names)}: resume with the data it was trained on, or train afresh in another --out"
    )


def test_weights_of_another_shape_are_refused_in_one_line(tmp_path):
    Trainer(tiny_model(), DATA, CFG, out_dir=tmp_path).fit()
    wider = tiny_model().config.replace(num_classes=DATA.num_classes + 1)
    with pytest.raises(ValueError, match="do not fit the model: size mismatch for ") as info:
        Trainer(FasterRCNN.from_config(wider), DATA, CFG, out_dir=tmp_path).fit(resume=True)
    assert "\n" not in str(info.value) and "more)" in str(info.value)
