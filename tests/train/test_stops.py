"""Stop requests: a first Ctrl-C asks for a checkpoint, a second one later quits."""

import signal

import pytest

from faster_rcnn.train.stops import DOUBLE_PRESS_SECONDS, StopRequest


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
