"""When checkpoints are written: every N steps, and once at the end unless just written."""

from faster_rcnn.train.cadence import CheckpointCadence


def run(cadence: CheckpointCadence, start: int, stop: int) -> None:
    for steps_done in range(start + 1, stop + 1):
        cadence.after_step(steps_done)
    cadence.at_end(stop)


def test_every_nth_step_and_the_end():
    saves: list[int] = []
    cadence = CheckpointCadence(3, lambda: saves.append(0))
    run(cadence, 0, 7)
    assert len(saves) == 3  # after steps 3 and 6, and at the end (7)
    assert cadence.saved_at == 7


def test_the_end_is_not_written_twice():
    saves: list[int] = []
    run(CheckpointCadence(3, lambda: saves.append(0)), 0, 6)
    assert len(saves) == 2  # 3 and 6; the end is step 6, already written


def test_only_at_the_end_without_a_period():
    saves: list[int] = []
    run(CheckpointCadence(None, lambda: saves.append(0)), 0, 10)
    assert len(saves) == 1


def test_a_finished_resumed_stage_is_not_rewritten_but_a_fresh_empty_one_is():
    saves: list[int] = []
    CheckpointCadence(3, lambda: saves.append(0), saved_at=5).at_end(5)
    assert saves == []
    CheckpointCadence(3, lambda: saves.append(0)).at_end(0)
    assert saves == [0]


def test_a_checkpoint_held_back_at_its_step_is_written_at_the_next_step_called():
    saves: list[int] = []
    done = [0]
    cadence = CheckpointCadence(3, lambda: saves.append(done[0]))
    for done[0] in (1, 2, 4, 5, 6, 7):  # the trainer held back the save after 3 steps
        cadence.after_step(done[0])
    assert saves == [4, 6]


def test_no_folder_writes_nothing():
    cadence = CheckpointCadence(2, None)
    run(cadence, 0, 4)
    assert cadence.saved_at is None


def test_by_minutes_after_the_first_step_past_the_period():
    now = [0.0]
    saves: list[float] = []
    cadence = CheckpointCadence(
        None, lambda: saves.append(now[0]), minutes=1.0, clock=lambda: now[0]
    )
    for steps_done, seconds in enumerate([20, 50, 70, 100, 125, 131], start=1):
        now[0] = seconds
        cadence.after_step(steps_done)
    assert saves == [70, 131]  # 60 s after 0, then 60 s after 70
