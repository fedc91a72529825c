"""Stop requests: a first Ctrl-C asks for a checkpoint, a second one later quits; a
hang-up stops as SIGTERM does, where ``nohup`` does not ignore it."""

import signal
import sys

import pytest

from faster_rcnn.train.stops import (
    DOUBLE_PRESS_SECONDS,
    LOSS_BLOWUP,
    NonFiniteGuard,
    StopRequest,
    stop_requests,
)


def test_a_second_ctrl_c_quits_unless_it_is_the_same_press_twice(monkeypatch, capsys):
    now = [100.0]
    monkeypatch.setattr("faster_rcnn.train.stops.time.monotonic", lambda: now[0])
    request = StopRequest()
    request.handle(signal.SIGINT, None)
    assert request.signum == signal.SIGINT
    assert "with a checkpoint (Ctrl-C again quits without one)" in capsys.readouterr().err
    now[0] += DOUBLE_PRESS_SECONDS / 2  # a key pressed twice in haste: still stopping
    request.handle(signal.SIGINT, None)
    assert request.signum == signal.SIGINT
    now[0] += DOUBLE_PRESS_SECONDS  # pressed again: the user does not want to wait
    with pytest.raises(KeyboardInterrupt):
        request.handle(signal.SIGINT, None)


def test_sigterm_is_recorded_without_a_word_and_never_quits_at_once(capsys):
    request = StopRequest()
    request.handle(signal.SIGTERM, None)
    request.handle(signal.SIGTERM, None)
    assert request.signum == signal.SIGTERM and capsys.readouterr().err == ""
    request.handle(signal.SIGINT, None)  # a Ctrl-C after it is a first one
    assert request.signum == signal.SIGINT


@pytest.mark.skipif(sys.platform == "win32", reason="no SIGHUP")
def test_a_hang_up_is_a_stop_request_unless_ignored_as_nohup_ignores_it():
    outside: list[int] = []

    def record(signum, frame):
        outside.append(signum)

    previous = signal.signal(signal.SIGHUP, record)
    try:
        with stop_requests() as request:
            signal.raise_signal(signal.SIGHUP)
        assert (request.signum, outside) == (signal.SIGHUP, [])
        assert signal.getsignal(signal.SIGHUP) is record  # back after the stage
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        with stop_requests() as request:
            assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
            signal.raise_signal(signal.SIGHUP)
        assert request.signum is None
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_a_loss_blowup_is_measured_against_the_first_positive_finite_loss():
    guard = NonFiniteGuard("joint", limit=5)
    guard.check(0, {"loss": 0.0})  # no reference: every loss would be infinitely many times it
    guard.check(1, {"loss": 2.0})
    guard.check(2, {"loss": 2.0 * LOSS_BLOWUP * 0.99})
    assert not guard.diverged and not guard.holds_back
    guard.check(3, {"loss": 2.0 * LOSS_BLOWUP})
    assert guard.diverged and guard.holds_back and guard.blown_up == (3, 2e4, 2.0)
    assert str(guard.error(None)).startswith(
        "joint, step 3: the loss blew up to 2e+04, 1e+04 times the stage's first (2); "
    )


def test_a_resumed_stage_measures_a_blowup_against_the_first_loss_of_its_history():
    history = [{"loss": float("nan")}, {"loss": 0.5}, {"loss": 900.0}]
    guard = NonFiniteGuard("rpn", limit=5, history=history)
    guard.check(3, {"loss": 4000.0})  # 8000 times 0.5
    assert not guard.diverged
    guard.check(4, {"loss": 5000.0})
    assert guard.blown_up == (4, 5000.0, 0.5)
