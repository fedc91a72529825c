"""A two-process torchrun run in which one process dies (SIGKILL) ends without hanging,
keeps its last checkpoint, and resumed under torchrun ends with the weights of a run that
was never interrupted, bit for bit.

Run by pytest, the test starts this file under ``python -m torch.distributed.run``; run
that way, the file trains (see ``worker``): ``straight``, ``crash`` (rank 1 kills itself
once ``CRASH_AFTER`` steps are done) or ``resume``.
"""

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from faster_rcnn import FasterRCNN
from faster_rcnn.data.synthetic import SyntheticShapes
from faster_rcnn.models import small_config
from faster_rcnn.train.checkpoint import STATE_FILE, TrainingCheckpoint
from faster_rcnn.train.distributed import PeersLost, destroy_distributed, init_distributed
from faster_rcnn.train.train_config import TrainConfig
from faster_rcnn.train.trainer import Trainer

DATA = SyntheticShapes(8, image_size=(64, 64), seed=5, max_objects=2)
CFG = TrainConfig(steps=6, batch_size=1, lr=0.01, warmup_steps=1, seed=6, checkpoint_every=2)
CRASH_AFTER = 5  # steps done when rank 1 dies, one past the last checkpoint (at 4)


def worker(out_dir: Path, mode: str) -> None:
    context = init_distributed()
    cfg = small_config(DATA.num_classes).replace(
        transform={"min_size": (64,), "max_size": 64},
        rpn={"pre_nms_top_n_train": 200, "post_nms_top_n_train": 200},
        roi_heads={"batch_size_per_image": 32},
    )
    torch.manual_seed(0)
    model = FasterRCNN.from_config(cfg)

    def crash(step: int, record: dict[str, float]) -> None:
        if mode == "crash" and context.rank == 1 and step + 1 == CRASH_AFTER:
            os.kill(os.getpid(), signal.SIGKILL)

    trainer = Trainer(model, DATA, CFG, out_dir=out_dir, on_step=crash)
    # torchrun sends the survivor SIGTERM as soon as it sees the lost process, racing the
    # survivor's own report: inside training the trainer records the signal, but between
    # leaving the training loop and printing the report a default SIGTERM would end the
    # process silently (seen once under load). Ignored out here, the report always gets out.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        trainer.fit(resume=mode == "resume")
    except PeersLost as error:
        sys.exit(f"rank {context.rank}: {error}")
    destroy_distributed()


def torchrun(out_dir: Path, mode: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc_per_node", "2", __file__, str(out_dir), mode]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)


def test_a_run_that_loses_a_process_resumes_to_the_uninterrupted_weights(tmp_path):
    straight, broken = tmp_path / "straight", tmp_path / "broken"
    finished = torchrun(straight, "straight")
    assert finished.returncode == 0, finished.stderr[-3000:]

    crashed = torchrun(broken, "crash")
    assert crashed.returncode != 0  # torchrun reports the lost process and stops the other
    assert "Signal 9 (SIGKILL)" in crashed.stderr, crashed.stderr[-3000:]
    # The survivor's next collective fails; it says so in one line (a stop signal from
    # torchrun meanwhile only asks it to stop after the step).
    lost = "rank 0: joint: lost contact with the other training processes (.+); resume from "
    assert re.search(
        f"{lost}the checkpoint in {re.escape(str(broken / 'joint'))}\n", crashed.stderr
    )
    checkpoint = TrainingCheckpoint.find(broken / "joint")
    assert checkpoint is not None
    state = torch.load(checkpoint / STATE_FILE, weights_only=True)
    assert state["step"] == CRASH_AFTER - 1

    resumed = torchrun(broken, "resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    first = load_file(straight / "joint" / "model.safetensors")
    second = load_file(broken / "joint" / "model.safetensors")
    assert first.keys() == second.keys()
    for name in first:
        assert torch.equal(first[name], second[name]), name


if __name__ == "__main__":
    worker(Path(sys.argv[1]), sys.argv[2])
