"""Threads for the CPU time a container is given, not for the cores it can see.

PyTorch starts a thread per core it may run on. A container limited by a CPU quota
(Docker's ``--cpus``, a Kubernetes CPU limit: cgroup's ``cpu.max``) may run on every
core of its host but only for its quota's worth of time each period; once its threads
have spent it, the kernel pauses them all until the next period. PyTorch's threads meet
at the end of every operation, so each operation waits for the paused ones. With more
threads than the quota allows, a training step takes longer than with as many threads
as the quota's whole CPUs: :func:`threads_for_cpu_quota` sets that many.

The same wait makes a second thread a loss for work made of many small operations
(a dataset's boxes, one at a time), whatever the quota: :func:`one_thread` runs it on one.

``python benchmarks/threads_over_cpus.py`` measures it (a ``mobilenet_v2_fpn`` training
step). On the 2-core machine in a cgroup allowed one CPU, 2 threads took 1.09-1.22 times
as long as 1; with no quota, 4 and 8 threads on its 2 cores (as a quota of 2 CPUs on a
host of 4 or 8 cores would leave them) took 1.30-1.44 and 1.73-1.79 times as long as 2.
"""

from __future__ import annotations

import math
import os
import platform
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import torch

from .cgroups import CGROUP_ROOT, PROC_CGROUP, own_cgroup_folders, read_text

# What Python's platform.machine() calls an x86 processor, lowered.
X86 = ("x86_64", "amd64", "i386", "i686")
# The user's own thread count, which this leaves alone.
USER_SETTING = "OMP_NUM_THREADS"


class ThreadLimit(NamedTuple):
    """Threads lowered to a CPU quota.

    Attributes:
        threads: the threads PyTorch now runs on.
        quota: the CPUs' worth of time the cgroup allows (2.5: two and a half CPUs).
        before: the threads PyTorch would have started.
    """

    threads: int
    quota: float
    before: int

    def line(self) -> str:
        """The choice as the commands print it."""
        return (
            f"threads: {self.threads}, the CPU quota's whole CPUs ({self.quota:g}), not "
            f"{self.before} ({USER_SETTING} sets them)"
        )


def threads_for_cpu_quota(
    root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP
) -> ThreadLimit | None:
    """Lower PyTorch's threads to the CPU quota's whole CPUs (at least one), where that
    is fewer than it would start and ``OMP_NUM_THREADS`` is not set; ``None`` where
    nothing changed. Process-wide, as ``torch.set_num_threads`` is."""
    quota = cpu_quota(root, proc_cgroup)
    before = torch.get_num_threads()
    if quota is None or USER_SETTING in os.environ:
        return None
    threads = max(1, math.floor(quota))
    if threads >= before:
        return None
    torch.set_num_threads(threads)
    return ThreadLimit(threads, quota, before)


@contextmanager
def one_thread() -> Iterator[None]:
    """PyTorch on one thread, then back to its own count: for many small operations, where
    a second thread only adds the wait for it at every one. On a loaded 2-core machine,
    ``anchors``' measurement of 200 COCO-like images took 3 times the CPU time and wall
    time on 2 threads as on 1, its summary table of 37,352 boxes 2.2-6.2 s on 2 threads
    and 0.08 s on 1; ``data`` on 300 generated slides (the boxes of masks of a few
    thousand pixels each) took 176 s on 2 threads, 9 s on 1."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def cpu_quota(root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP) -> float | None:
    """The CPUs' worth of time this process's cgroup allows: the smallest quota of its
    cgroup and those above it, in cgroup v2 (``cpu.max``) or v1's ``cpu`` controller
    (``cpu.cfs_quota_us`` over ``cpu.cfs_period_us``); ``None`` where none is set or
    there are no cgroups."""
    folders = own_cgroup_folders("cpu", root, proc_cgroup)
    v2 = (_quota(read_text(f / "cpu.max")) for f in folders.v2)
    v1 = (_v1_quota(f) for f in folders.v1)
    return min((q for q in (*v2, *v1) if q is not None), default=None)


def _v1_quota(folder: Path) -> float | None:
    """A v1 ``cpu`` cgroup's quota."""
    quota = read_text(folder / "cpu.cfs_quota_us")
    period = read_text(folder / "cpu.cfs_period_us")
    if quota is None or period is None:
        return None
    return _quota(f"{quota} {period}")


def _quota(text: str | None) -> float | None:
    """``"200000 100000"`` (cgroup v2's ``cpu.max``: time a period, the period) as 2.0;
    ``None`` for no limit (``max``, or v1's ``-1``) or an unreadable file."""
    if text is None:
        return None
    try:
        quota, period = (int(v) for v in text.split())
    except ValueError:  # "max 100000", or not two numbers
        return None
    return quota / period if quota > 0 and period > 0 else None


def is_x86() -> bool:
    """This machine's processor is an x86 (Intel or AMD), where oneDNN's checks and
    kernels are the ones the project measured."""
    return platform.machine().lower() in X86
