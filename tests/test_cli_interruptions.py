"""A real training process stopped mid-run - by SIGKILL, SIGTERM or Ctrl-C's SIGINT - and
resumed goes on from the step its checkpoint holds and ends with the same weights, bit for
bit, as one that was never interrupted: for every scheme, the paper's alternating one,
whose four steps each checkpoint, included. A run whose terminal closes (SIGHUP) stops
with a checkpoint too, unless under ``nohup``, where it goes on to its end, as it does
where the reader of its output stops early (``| head``). One killed leaves its ``--out``
unlocked at once, its data-loader workers still running."""

import fcntl
import functools
import os
import pty
import random
import re
import select
import signal
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from faster_rcnn.cli.out_lock import lock_holder
from faster_rcnn.cli.run_folder import SCHEME_STAGES
from faster_rcnn.train.checkpoint import TrainingCheckpoint

STEPS = 10  # the alternating scheme splits them 3, 2, 3, 2
SCHEMES = ("joint", "alternating", "rpn", "non-approximate")
# Each scheme stopped by each signal that takes another path: a crash (no checkpoint
# written), and the signals a stage handles (SIGTERM and SIGINT alike, by the trainer
# every scheme drives). The RPN alone writes stage "rpn", as the alternating scheme's
# first step does, so both ways are taken for it too.
STOPS = [
    *[(scheme, signal.SIGKILL) for scheme in SCHEMES],
    ("joint", signal.SIGTERM),
    ("alternating", signal.SIGTERM),
    ("alternating", signal.SIGINT),
    ("rpn", signal.SIGINT),
]
TRAIN = ["train", "--data", "synthetic:8", "--steps", str(STEPS), "--batch-size", "1"]
TRAIN += ["--min-size", "96", "--max-size", "128", "--checkpoint-every", "2"]


def command(out: Path, scheme: str, *extra: str) -> list[str]:
    run = [*TRAIN, "--scheme", scheme, "--out", str(out), *extra]
    return [sys.executable, "-m", "faster_rcnn", *run]


def steps_logged(out: Path) -> int:
    metrics = out / "metrics.jsonl"
    return len(metrics.read_text().splitlines()) if metrics.exists() else 0


def checkpointed_steps(out: Path, scheme: str) -> dict[str, int]:
    """The steps each stage of the run in ``out`` has a checkpoint of."""
    stages = SCHEME_STAGES[scheme]
    return {stage: TrainingCheckpoint.steps_in(out / stage) for stage in stages}


def stage_steps_logged(out: Path, stage: str) -> int:
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return sum(f'"stage": "{stage}"' in line for line in lines)


def stop_after(out: Path, scheme: str, steps: int, signum: int) -> subprocess.CompletedProcess:
    """Start a run and send ``signum`` once ``steps`` steps are logged."""
    process = subprocess.Popen(command(out, scheme), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while steps_logged(out) < steps and process.poll() is None:
        assert time.monotonic() < deadline, "the run logged no steps in 2 minutes"
        time.sleep(0.01)
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=120)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def assert_same_weights(a: Path, b: Path) -> None:
    first, second = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert first.keys() == second.keys()
    for name in first:
        assert torch.equal(first[name], second[name]), name


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> Callable[[str], Path]:
    """The uninterrupted run of a scheme, run once a module the first time it is asked
    for: each pytest-xdist worker runs only those of the schemes its tests stop."""

    @functools.cache
    def run(scheme: str) -> Path:
        out = tmp_path_factory.mktemp(f"straight_{scheme}")
        subprocess.run(command(out, scheme), check=True, capture_output=True)
        return out

    return run


@pytest.mark.parametrize(("scheme", "signum"), STOPS)
def test_a_stopped_run_resumes_to_the_uninterrupted_weights(tmp_path, straight, scheme, signum):
    # After the first checkpoint (step 2; the alternating scheme's first step has 3), at a
    # random step, as a crash would pick, with two steps left for the signal to arrive in.
    at = random.randrange(3, STEPS - 1)
    stopped = stop_after(tmp_path, scheme, at, signum)
    saved = checkpointed_steps(tmp_path, scheme)
    if signum == signal.SIGKILL:
        assert stopped.returncode == -signal.SIGKILL
    else:
        assert stopped.returncode == 128 + signum
        err = stopped.stderr.decode().strip().splitlines()
        # Within a step the stage checkpoints; between two alternating steps the last one
        # has just written its final checkpoint.
        name = signal.Signals(signum).name
        stage_stop = rf"(\w+): stopped by {name} after .*; add --resume to continue"
        said = re.fullmatch(rf"faster-rcnn: ({stage_stop}|interrupted by {name})", err[-1])
        assert said, err[-1]
        assert "Traceback" not in stopped.stderr.decode()
        if said[2]:  # no step lost: the stage's checkpoint holds every step it logged
            assert saved[said[2]] == stage_steps_logged(tmp_path, said[2])
    resumed = subprocess.run(command(tmp_path, scheme, "--resume"), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    # Each stage with a checkpoint goes on from its step; the others start afresh.
    for stage, steps in saved.items():
        resuming = f"{stage}: resuming from step {steps} of "
        assert (resuming in resumed.stdout + resumed.stderr) == (steps > 0), (stage, steps)
    assert steps_logged(tmp_path) == STEPS
    assert_same_weights(straight(scheme), tmp_path)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_resume_with_nothing_to_resume_is_refused(tmp_path, scheme):
    refused = subprocess.run(command(tmp_path, scheme, "--resume"), capture_output=True, text=True)
    assert refused.returncode == 2
    assert refused.stderr.startswith("faster-rcnn: error: nothing to resume")


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX process groups")
def test_ctrl_c_with_data_loader_workers_says_once_that_the_run_stops(tmp_path):
    """A Ctrl-C reaches every process of the terminal's group, the data-loader workers
    (forked with the run's handler) too: the main process alone says what it does."""
    # 16 batches an epoch: the workers are up through the first steps.
    run = ["train", "--data", "synthetic:32", "--steps", "300", "--workers", "2"]
    run += ["--min-size", "96", "--max-size", "128"]
    process = subprocess.Popen(
        [sys.executable, "-m", "faster_rcnn", *run, "--out", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a group of its own, as a terminal's foreground job
    )
    deadline = time.monotonic() + 120
    while steps_logged(tmp_path) < 2 and process.poll() is None:
        assert time.monotonic() < deadline, "the run logged no steps in 2 minutes"
        time.sleep(0.01)
    os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C sends
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGINT
    said = "stopping after the step under way, with a checkpoint (Ctrl-C again quits without one)"
    assert stderr.count(said) == 1
    assert stderr.splitlines()[-1].startswith("faster-rcnn: joint: stopped by SIGINT after")


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file locks")
def test_a_run_killed_with_data_loader_workers_leaves_its_out_unlocked_at_once(tmp_path):
    """The workers, forked with the lock file open, kept the lock until they saw their
    parent gone (up to 5 s): a ``--resume`` started at once was refused as a second run."""
    run = ["train", "--data", "synthetic:32", "--steps", "300", "--workers", "2"]
    run += ["--min-size", "96", "--max-size", "128", "--recipe", "preset"]
    process = subprocess.Popen(
        [sys.executable, "-m", "faster_rcnn", *run, "--out", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while steps_logged(tmp_path) < 2 and process.poll() is None:
        assert time.monotonic() < deadline, "the run logged no steps in 2 minutes"
        time.sleep(0.01)
    process.kill()
    assert process.wait(timeout=120) == -signal.SIGKILL
    assert lock_holder(tmp_path) is None


# The runs that lose their terminal or their output's reader: short, and without reading
# the images for a recipe, as they check no weights.
SHORT_STEPS = 4


def short_run(out: Path, *extra: str) -> list[str]:
    return command(out, "joint", "--steps", str(SHORT_STEPS), "--recipe", "preset", *extra)


def on_a_terminal(run: list[str], ignore_hangups: bool = False) -> tuple[subprocess.Popen, int]:
    """Start ``run`` on a pseudo-terminal of its own, its controlling terminal, stdout and
    stderr, as a shell in a terminal window starts it (``ignore_hangups``: as ``nohup``
    does); returns the process and the terminal's other end, whose closing hangs it up."""
    master, slave = pty.openpty()

    def take_the_terminal() -> None:  # in the child, a session leader
        fcntl.ioctl(1, termios.TIOCSCTTY, 0)
        if ignore_hangups:
            signal.signal(signal.SIGHUP, signal.SIG_IGN)

    process = subprocess.Popen(
        run,
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
        preexec_fn=take_the_terminal,
    )
    os.close(slave)
    return process, master


def close_after_steps(process: subprocess.Popen, master: int, out: Path, steps: int) -> None:
    """Read the terminal until ``steps`` steps are logged, then close it, as its window."""
    deadline = time.monotonic() + 120
    while steps_logged(out) < steps and process.poll() is None:
        assert time.monotonic() < deadline, "the run logged no steps in 2 minutes"
        if select.select([master], [], [], 0.01)[0]:
            os.read(master, 1 << 16)  # what the window shows
    os.close(master)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX terminals")
def test_a_run_whose_terminal_closes_stops_with_a_checkpoint_that_resume_continues(tmp_path):
    process, master = on_a_terminal(short_run(tmp_path))
    close_after_steps(process, master, tmp_path, 1)
    # The system sends SIGHUP; what the run writes after goes nowhere, and raises nothing.
    assert process.wait(timeout=120) == 128 + signal.SIGHUP
    saved = TrainingCheckpoint.steps_in(tmp_path / "joint")
    assert 1 <= saved == steps_logged(tmp_path) < SHORT_STEPS  # no step lost
    resumed = subprocess.run(short_run(tmp_path, "--resume"), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert f"joint: resuming from step {saved} of {SHORT_STEPS}" in resumed.stdout
    assert steps_logged(tmp_path) == SHORT_STEPS


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX terminals")
def test_a_run_under_nohup_goes_on_to_its_end_after_its_terminal_closes(tmp_path):
    process, master = on_a_terminal(short_run(tmp_path), ignore_hangups=True)
    close_after_steps(process, master, tmp_path, 1)
    # Every write to the closed terminal fails (EIO), the run's last lines too.
    assert process.wait(timeout=120) == 0
    assert steps_logged(tmp_path) == SHORT_STEPS
    assert TrainingCheckpoint.steps_in(tmp_path / "joint") == SHORT_STEPS
    assert (tmp_path / "model.safetensors").is_file()


def test_a_run_piped_to_a_reader_that_stops_early_goes_on_to_its_end(tmp_path):
    # `faster-rcnn train ... | head -1`, unbuffered (as under PYTHONUNBUFFERED, or once
    # 8 KiB have gathered): every line after the first meets the closed pipe.
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        short_run(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    assert process.stdout.readline()
    process.stdout.close()
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr.decode()
    assert steps_logged(tmp_path) == SHORT_STEPS
    assert (tmp_path / "model.safetensors").is_file()
