"""A stage's optimizer and random state: saved, restored, and what a restore refuses."""

import dataclasses
import re
import warnings

import pytest
import torch

from faster_rcnn import FasterRCNN
from faster_rcnn.models import small_config
from faster_rcnn.train.state import TrainingState, data_changes, data_signature
from faster_rcnn.train.train_config import TrainConfig, steps_bound

CFG = TrainConfig(lr=0.01, seed=3)


def state_of(model: FasterRCNN, stage: str = "joint", cfg: TrainConfig = CFG) -> TrainingState:
    return TrainingState(model, cfg, list(model.parameters()), stage)


def test_restore_gives_back_optimizer_generator_and_global_random_state(tmp_path):
    torch.manual_seed(0)
    model = FasterRCNN.from_config(small_config(3))
    saved = state_of(model)
    saved.optimizer.state[next(model.parameters())]["momentum_buffer"] = torch.ones(1)
    saved.generator.manual_seed(99)
    expected_draw = torch.rand(3, generator=saved.generator.clone_state())
    global_state = torch.get_rng_state()
    saved.save(tmp_path, [{"loss": 1.0}, {"loss": 0.5}])

    torch.rand(5)  # the global generator moves on
    torch.manual_seed(1)
    other = FasterRCNN.from_config(small_config(3))
    restored = state_of(other)
    assert restored.restore(tmp_path) == [{"loss": 1.0}, {"loss": 0.5}]
    assert torch.equal(torch.get_rng_state(), global_state)
    assert torch.equal(torch.rand(3, generator=restored.generator), expected_draw)
    buffer = restored.optimizer.state[next(other.parameters())]["momentum_buffer"]
    assert torch.equal(buffer, torch.ones(1))
    for a, b in zip(model.state_dict().values(), other.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_another_stages_checkpoint_is_refused_and_changed_settings_are_named(tmp_path):
    model = FasterRCNN.from_config(small_config(3))
    state_of(model, "rpn").save(tmp_path, [])
    with pytest.raises(ValueError, match="holds stage 'rpn', not 'joint'"):
        state_of(model, "joint").restore(tmp_path)
    with pytest.warns(UserWarning, match=r"changed settings: seed 3 -> 4; "):
        state_of(model, "rpn", CFG.replace(seed=4, max_seconds=60.0)).restore(tmp_path)


def test_another_schemes_checkpoint_is_refused_where_both_say_theirs(tmp_path):
    """Stage "rpn" is the RPN trained alone's and the alternating scheme's first step's."""
    model = FasterRCNN.from_config(small_config(3))
    params = list(model.parameters())
    TrainingState(model, CFG, params, "rpn", scheme="alternating").save(tmp_path, [{"loss": 1.0}])
    with pytest.raises(
        ValueError, match=r"written by the 'alternating' scheme, not 'rpn': resume it with"
    ):
        TrainingState(model, CFG, params, "rpn", scheme="rpn").restore(tmp_path)
    same = TrainingState(model, CFG, params, "rpn", scheme="alternating")
    assert same.restore(tmp_path) == [{"loss": 1.0}]
    # A trainer not told its scheme resumes any (an older state says none either).
    assert TrainingState(model, CFG, params, "rpn").restore(tmp_path) == [{"loss": 1.0}]


@pytest.mark.parametrize(
    ("before", "after", "said"),
    [
        # --minutes 0.1, then 0.4: the steps are the budgets' bounds, which nobody gave.
        ((steps_bound(6.0), 6.0), (steps_bound(24.0), 24.0), "0.1 minutes -> 0.4 minutes"),
        ((steps_bound(6.0), 6.0), (120, None), "0.1 minutes -> 120 steps"),
        # An alternating step's share of the time left, in three figures, not six.
        ((steps_bound(10.5), 10.5), (steps_bound(70.2), 70.2), "0.175 minutes -> 1.17 minutes"),
        (
            (300, 6.0),
            (600, 6.0),
            "0.1 minutes, at most 300 steps -> 0.1 minutes, at most 600 steps",
        ),
    ],
)
def test_a_changed_run_length_is_named_as_it_was_given(before, after, said):
    saved = dataclasses.asdict(CFG.replace(steps=before[0], max_seconds=before[1]))
    resumed = CFG.replace(steps=after[0], max_seconds=after[1])
    assert resumed.changes_since(saved) == [f"run length {said}"]
    assert CFG.replace(steps=4).changes_since(dataclasses.asdict(CFG.replace(steps=2))) == [
        "steps 2 -> 4"
    ]


def test_a_warmup_setting_is_named_only_where_it_changes_the_warmup():
    """A checkpoint of a --steps run from before warmup_share defaulted to 2 (None): its
    run of 100 steps or more warmed up over its 50 steps, as it does under a share of 2;
    a run of 60 over its 50 before, over 30 now."""
    before = dataclasses.asdict(CFG.replace(steps=100, warmup_share=None))
    assert CFG.replace(steps=100).changes_since(before) == []
    # min(60, 100 // 2) = 50 steps too; at 200 steps, 60.
    assert CFG.replace(steps=100, warmup_steps=60).changes_since(before) == []
    assert CFG.replace(steps=200, warmup_steps=60).changes_since({**before, "steps": 200}) == [
        "warmup_share None -> 2",
        "warmup_steps 50 -> 60",
    ]
    assert CFG.replace(steps=60).changes_since({**before, "steps": 60}) == [
        "warmup_share None -> 2"
    ]
    # Run longer, it warms up over 50 steps under either share: only the length changed.
    assert CFG.replace(steps=400).changes_since(before) == ["steps 100 -> 400"]
    # Under a time budget the share cuts the warm-up of a plan that moves: always named.
    budgeted = CFG.replace(steps=steps_bound(600.0), max_seconds=600.0)
    saved = {**dataclasses.asdict(budgeted), "warmup_share": None}
    assert budgeted.changes_since(saved) == ["warmup_share None -> 2"]


def test_a_resume_warns_of_a_changed_warmup_share_only_where_the_warmup_changes(tmp_path):
    model = FasterRCNN.from_config(small_config(3))
    for steps, warns in ((100, False), (99, True)):  # 99 // 2 = 49 steps: shorter
        state_of(model, cfg=CFG.replace(steps=steps, warmup_share=None)).save(tmp_path, [])
        with warnings.catch_warnings(record=True) as warned:
            warnings.simplefilter("always")
            state_of(model, cfg=CFG.replace(steps=steps)).restore(tmp_path)
        expected = (
            f"resuming {tmp_path} with changed settings: warmup_share None -> 2; the run "
            "will not match an uninterrupted one"
        )
        assert [str(warning.message) for warning in warned] == [expected] * warns


def test_changed_model_settings_are_named_too(tmp_path):
    """Sizes and the head's NMS go on training under the new values: the warning names
    them, as the optimisation settings."""
    model = FasterRCNN.from_config(small_config(3))
    state_of(model).save(tmp_path, [])
    changed = small_config(3).replace(
        transform={"min_size": (128,), "max_size": 192}, roi_heads={"soft_nms_sigma": 0.3}
    )
    expected = (
        "changed settings: roi_heads.soft_nms_sigma 0.0 -> 0.3, transform.max_size 512 -> "
        "192, transform.min_size (320,) -> (128,); "
    )
    with pytest.warns(UserWarning) as warned:
        state_of(FasterRCNN.from_config(changed)).restore(tmp_path)
    assert expected in str(warned[0].message)


class Files(list):
    """A dataset of image files in ``folder``, as the readers are (its length and files)."""

    def __init__(self, names, folder="/data"):
        super().__init__(names)
        self.image_files = [f"{folder}/{name}.jpg" for name in names]


def test_a_resume_on_other_training_images_is_named(tmp_path):
    model = FasterRCNN.from_config(small_config(3))
    saved = data_signature(Files("abcd"))
    TrainingState(model, CFG, list(model.parameters()), "joint", data=saved).save(tmp_path, [])
    for data, said in [
        (Files("abc"), "the training images (4 -> 3)"),
        (Files("abce"), "the training images (as many, 4, but other files)"),
    ]:
        resumed = TrainingState(
            model, CFG, [*model.parameters()], "joint", data=data_signature(data)
        )
        with pytest.warns(UserWarning, match=rf"changed settings: {re.escape(said)}; "):
            resumed.restore(tmp_path)
    assert data_changes(saved, data_signature(Files("abcd", "/moved/elsewhere"))) == []
    assert data_signature(range(5)) == {"images": 5, "files": None}  # generated: no files
