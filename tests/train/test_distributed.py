"""Data-parallel training: two CPU processes under torchrun (Gloo) end with equal weights.

Run by pytest, the test starts this file under ``python -m torch.distributed.run`` with
two processes; run that way, the file trains (see ``worker``) and saves what each rank
saw and ended with.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from faster_rcnn import FasterRCNN
from faster_rcnn.data.loader import iterate_batches
from faster_rcnn.data.synthetic import SyntheticShapes
from faster_rcnn.models import small_config
from faster_rcnn.train.checkpoint import load_model
from faster_rcnn.train.distributed import destroy_distributed, init_distributed
from faster_rcnn.train.train_config import TrainConfig
from faster_rcnn.train.trainer import Trainer

DATA = SyntheticShapes(8, image_size=(64, 64), seed=3, max_objects=2)
# A time budget that never binds: every step still takes rank 0's clock (a collective).
CFG = TrainConfig(steps=3, batch_size=1, lr=0.01, warmup_steps=0, seed=4, max_seconds=3600.0)


def worker(out_dir: Path) -> None:
    context = init_distributed()
    cfg = small_config(DATA.num_classes)
    cfg = cfg.replace(
        transform={"min_size": (64,), "max_size": 64},
        rpn={"pre_nms_top_n_train": 200, "post_nms_top_n_train": 200},
        roi_heads={"batch_size_per_image": 32},
    )
    torch.manual_seed(context.rank)  # different weights: training starts from rank 0's
    model = FasterRCNN.from_config(cfg)
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    seen: list[torch.Tensor] = []
    model.register_forward_pre_hook(lambda module, args: seen.extend(args[0]))
    history = Trainer(model, DATA, CFG, out_dir=out_dir).fit()

    def rpn_losses(model, images, targets, generator):
        losses = model(images, targets, generator=generator)
        return {k: losses[k] for k in ("loss_objectness", "loss_rpn_box_reg")}

    # The RoI head takes part in the forward pass but not in these losses.
    rpn_cfg = TrainConfig(steps=1, batch_size=1, lr=0.01, warmup_steps=0)
    Trainer(
        model,
        DATA,
        rpn_cfg,
        compute_losses=rpn_losses,
        parameters=list(model.rpn.parameters()),
        stage="rpn",
        out_dir=out_dir,
    ).fit()
    result = {"initial": initial, "final": model.state_dict(), "seen": seen, "history": history}
    torch.save(result, out_dir / f"rank{context.rank}.pt")
    destroy_distributed()
    (out_dir / f"rank{context.rank}.threads.json").write_text(json.dumps(thread_names()))


def thread_names() -> list[str] | None:
    """The names of this process's threads (Linux); ``None`` elsewhere."""
    tasks = Path("/proc/self/task")
    if not tasks.is_dir():
        return None
    return [(task / "comm").read_text().strip() for task in tasks.iterdir()]


def test_two_processes_train_the_same_model_on_different_images(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc_per_node", "2", __file__, str(tmp_path)]
    finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert finished.returncode == 0, finished.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]

    final = ranks[0]["final"]
    for name, value in final.items():
        assert torch.equal(value, ranks[1]["final"][name]), name
    assert any(not torch.equal(value, ranks[0]["initial"][name]) for name, value in final.items())
    assert ranks[0]["history"] == ranks[1]["history"]  # losses averaged over the ranks
    # Leaving the group joined Gloo's threads: one left running at exit can abort the
    # process while Python shuts down (see distributed._import_group_defaults).
    for r in (0, 1):
        names = json.loads((tmp_path / f"rank{r}.threads.json").read_text())
        assert names is None or not [name for name in names if "gloo" in name], names

    # Rank r trained on items r::2 of each global batch of 2, drawn with the shared seed.
    batches = iterate_batches(DATA, 2, seed=CFG.seed, drop_last=True)
    for step in range(CFG.steps):
        images, _ = next(batches)
        for rank in (0, 1):
            assert torch.equal(ranks[rank]["seen"][step], images[rank]), (step, rank)

    # Rank 0 alone wrote the metrics and checkpoints, and they hold the final weights.
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [(r["stage"], r["step"]) for r in records] == [
        ("joint", 0),
        ("joint", 1),
        ("joint", 2),
        ("rpn", 0),
    ]
    saved = load_model(tmp_path / "rpn" / "model.safetensors").state_dict()
    assert all(torch.equal(saved[name], value) for name, value in final.items())


if __name__ == "__main__":
    worker(Path(sys.argv[1]))
