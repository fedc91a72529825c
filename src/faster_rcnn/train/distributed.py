"""Data-parallel training over processes started by ``torchrun``.

``torchrun --nproc_per_node N script.py`` starts N copies of a script with ``RANK``,
``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT`` in their environment.
A script calls :func:`init_distributed` once, moves its model to the returned device and
trains with a :class:`~faster_rcnn.train.trainer.Trainer` as usual, which sees the
process group and

- runs the loss computation inside :class:`~torch.nn.parallel.DistributedDataParallel`,
  which starts every rank from rank 0's weights and averages the gradients;
- draws one global batch of ``batch_size * world_size`` items from the shared seed, of
  which rank ``r`` trains on items ``r::world_size``;
- averages the logged losses over the ranks, and writes checkpoints and metrics on
  rank 0 only.

When a process dies, the others fail in their next collective; the trainer turns that
failure into a one-line :class:`PeersLost` that names the checkpoint to resume from
(rank 0 writes a checkpoint only once every rank has reached it, so a crash never leaves
a partial one behind).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from ..model import FasterRCNN


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands in the run.

    Attributes:
        rank: this process's index among all processes, ``0 .. world_size - 1``.
        local_rank: its index on this machine (which GPU it uses).
        world_size: the number of processes.
        device: the device this process trains on.
    """

    rank: int
    local_rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0, the process that writes files."""
        return self.rank == 0


def init_distributed(backend: str | None = None) -> DistributedContext:
    """Join the process group that ``torchrun``'s environment variables describe.

    Without ``WORLD_SIZE`` in the environment (a plain ``python`` run) nothing is
    initialised and the context is a single process. On CUDA, process ``LOCAL_RANK``
    takes GPU ``LOCAL_RANK``. Calling it again returns the context of the existing group.

    Args:
        backend: ``"nccl"``, ``"gloo"``, ...; by default NCCL when CUDA is available and
            Gloo otherwise.

    Raises:
        ValueError: the torchrun variables are incomplete or not integers.
    """
    use_cuda = torch.cuda.is_available()
    if "WORLD_SIZE" not in os.environ:
        return DistributedContext(0, 0, 1, torch.device("cuda" if use_cuda else "cpu"))
    try:
        rank = int(os.environ["RANK"])
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        world_size = int(os.environ["WORLD_SIZE"])
    except (KeyError, ValueError) as error:
        raise ValueError(
            "RANK, LOCAL_RANK and WORLD_SIZE must be integers set by torchrun "
            f"(got {error!r}); start the script with torchrun or python -m torch.distributed.run"
        ) from error
    if use_cuda:
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    if not dist.is_initialized():
        _import_group_defaults()
        dist.init_process_group(
            backend or ("nccl" if use_cuda else "gloo"), rank=rank, world_size=world_size
        )
    return DistributedContext(rank, local_rank, world_size, device)


class PeersLost(RuntimeError):
    """A data-parallel run lost one of its processes (it died, or the link to it did)."""


@contextmanager
def peers_lost_as_error(message: Callable[[str], str]) -> Iterator[None]:
    """Inside a process group, raise a collective's transport failure - the sign that
    another process is gone - as :class:`PeersLost` with ``message(reason)``, where
    ``reason`` is the first sentence of the backend's error."""
    try:
        yield
    except RuntimeError as error:
        text = str(error)
        transport = isinstance(error, dist.DistError) or "gloo" in text.lower()
        if not (dist.is_available() and dist.is_initialized() and transport):
            raise
        # Gloo's messages start with "[path/to/file.cc:line] ".
        reason = re.sub(r"^\[[^\]]*\]\s*", "", text).split(". ")[0].splitlines()[0]
        raise PeersLost(message(reason)) from error


def destroy_distributed() -> None:
    """Leave the process group, if one was joined."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def rank_and_world_size() -> tuple[int, int]:
    """``(rank, world_size)`` of the current process group; ``(0, 1)`` without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class LossComputation(nn.Module):
    """``compute_losses(model, images, targets, generator)`` (a ``train.trainer.LossFn``) as a
    module's forward.

    DistributedDataParallel synchronises gradients only of what runs inside the forward
    of the module it wraps; wrapping the whole loss computation (rather than the model)
    lets any loss function - one that calls only the RPN, say - run data-parallel.
    """

    def __init__(self, model: FasterRCNN, compute_losses: Callable[..., dict[str, Tensor]]) -> None:
        super().__init__()
        self.model = model
        self.compute_losses = compute_losses

    def forward(
        self, images: list[Tensor], targets: list[dict[str, Tensor]], generator: torch.Generator
    ) -> dict[str, Tensor]:
        return self.compute_losses(self.model, images, targets, generator)


def data_parallel_losses(
    model: FasterRCNN,
    compute_losses: Callable[..., dict[str, Tensor]],
    find_unused_parameters: bool,
) -> DistributedDataParallel:
    """``compute_losses`` on ``model`` wrapped in DistributedDataParallel.

    Wrapping broadcasts rank 0's parameters and buffers to every rank; rank 0's buffers
    (batch-norm statistics) are broadcast again before every forward pass.

    Args:
        find_unused_parameters: some trainable parameters may get no gradient in a step
            (an RPN-only loss leaves the RoI head out); DDP then has to look for them.
    """
    device = next(model.parameters()).device
    return DistributedDataParallel(
        LossComputation(model, compute_losses),
        device_ids=[device] if device.type == "cuda" else None,
        find_unused_parameters=find_unused_parameters,
    )


def mean_over_ranks(values: Tensor) -> Tensor:
    """The element-wise mean of ``values`` (any shape) over all ranks (a collective)."""
    values = values.clone()
    dist.all_reduce(values)  # Gloo has no AVG: sum, then divide.
    return values / dist.get_world_size()


def value_of_main(value: float, device: torch.device) -> float:
    """Rank 0's ``value`` on every rank (a collective), so that all ranks decide alike."""
    tensor = torch.tensor([float(value)], dtype=torch.float64, device=device)
    dist.broadcast(tensor, src=0)
    return float(tensor.item())


def any_over_ranks(flag: bool, device: torch.device) -> bool:
    """Whether ``flag`` holds on some rank (a collective)."""
    tensor = torch.tensor([float(flag)], device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return bool(tensor.item())


def gather_objects(value: Any) -> list[Any]:
    """``value`` of every rank, in rank order (a collective)."""
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, value)
    return gathered


def broadcast_buffers(module: nn.Module) -> None:
    """Copy rank 0's buffers to every rank (a collective), so all replicas end equal."""
    for buffer in module.buffers():
        dist.broadcast(buffer, src=0)


def barrier() -> None:
    """Wait until every rank gets here."""
    dist.barrier()


def _import_group_defaults() -> None:
    """Import ``torch.distributed.nn`` before the process group exists.

    Its functions take the default group as a default argument, bound at import. Imported
    later (DDP's constructor imports it, through ``torch._dynamo``), they keep the group
    alive past :func:`destroy_distributed`, and with it Gloo's worker threads: one still
    releasing a collective's tensors when Python shuts down needs the interpreter lock
    then, and aborts the process ("terminate called without an active exception").
    """
    import torch.distributed.nn  # noqa: F401
