"""A real training process stopped mid-run - by SIGKILL or SIGTERM - and resumed ends
with the same weights, bit for bit, as one that was never interrupted."""

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

STEPS = 8
TRAIN = ["train", "--data", "synthetic:8", "--steps", str(STEPS), "--batch-size", "1"]
TRAIN += ["--min-size", "96", "--max-size", "128", "--checkpoint-every", "2"]


def command(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "faster_rcnn", *TRAIN, "--out", str(out), *extra]


def steps_logged(out: Path) -> int:
    metrics = out / "metrics.jsonl"
    return len(metrics.read_text().splitlines()) if metrics.exists() else 0


def stop_after(out: Path, steps: int, signum: int) -> subprocess.CompletedProcess:
    """Start a run and send ``signum`` once ``steps`` steps are logged."""
    process = subprocess.Popen(command(out), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
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
def straight(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("straight")
    subprocess.run(command(out), check=True, capture_output=True)
    return out


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM])
def test_a_stopped_run_resumes_to_the_uninterrupted_weights(tmp_path, straight, signum):
    # After the checkpoint at step 2 (a random step, as a crash would pick).
    at = random.randrange(3, STEPS)
    stopped = stop_after(tmp_path, at, signum)
    if signum == signal.SIGTERM:
        assert stopped.returncode == 128 + signal.SIGTERM
        err = stopped.stderr.decode().strip().splitlines()
        assert err[-1].startswith("faster-rcnn: joint: stopped by SIGTERM after"), err
        assert err[-1].endswith("add --resume to continue")
        assert "Traceback" not in stopped.stderr.decode()
    else:
        assert stopped.returncode == -signal.SIGKILL
    resumed = subprocess.run(command(tmp_path, "--resume"), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "joint: resuming from step" in resumed.stderr + resumed.stdout
    assert steps_logged(tmp_path) == STEPS
    assert_same_weights(straight, tmp_path)


def test_resume_with_nothing_to_resume_is_refused(tmp_path):
    refused = subprocess.run(command(tmp_path, "--resume"), capture_output=True, text=True)
    assert refused.returncode == 2
    assert refused.stderr.startswith("faster-rcnn: error: nothing to resume")
