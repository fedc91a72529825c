"""This process's cgroups: the folders whose files hold the limits a container is given
(Docker's ``--cpus`` and ``--memory``, Kubernetes limits), in cgroup v2 and v1.

:mod:`~faster_rcnn.host_cpus` reads the CPU quota from them and
:mod:`~faster_rcnn.host_memory` the memory limit.
"""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path
from typing import NamedTuple

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")


class CgroupFolders(NamedTuple):
    """This process's cgroup and each above it, from its own up to the mount.

    Attributes:
        v2: the folders of the unified (v2) hierarchy, under the root.
        v1: the folders of one v1 controller's hierarchy, under ``root / controller``.
    """

    v2: tuple[Path, ...]
    v1: tuple[Path, ...]


# The folders found, by controller, root, proc_cgroup and the id of the process that
# found them (a forked process finds its own).
_found: dict[tuple[str, Path, Path, int], CgroupFolders] = {}


def own_cgroup_folders(
    controller: str, root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP
) -> CgroupFolders:
    """The folders of this process's cgroup and those above it, as ``proc_cgroup``
    names it (``"0::/path"`` for v2; ``"4:cpu,cpuacct:/path"`` for v1's ``controller``
    ``cpu``); the mount alone where it does not say. Folders that do not exist are kept:
    their files read as ``None``.

    Found once per process for each ``controller``, ``root`` and ``proc_cgroup`` (a
    process's cgroup does not change during a run; reading ``proc_cgroup`` again took
    55 us of each training step's memory check): :func:`forget_cgroup_folders` forgets
    them."""
    key = (controller, root, proc_cgroup, os.getpid())
    if key not in _found:
        _found[key] = _find_folders(controller, root, proc_cgroup)
    return _found[key]


def forget_cgroup_folders() -> None:
    """Have :func:`own_cgroup_folders` find the folders again: after this process moved
    to another cgroup, or ``proc_cgroup`` changed."""
    _found.clear()


def _find_folders(controller: str, root: Path, proc_cgroup: Path) -> CgroupFolders:
    """:func:`own_cgroup_folders`, read from ``proc_cgroup`` now."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        lines = []
    own = {"v2": "/", "v1": "/"}
    for line in lines:
        if line.count(":") < 2:
            continue
        _, controllers, path = line.split(":", 2)
        if not controllers:
            own["v2"] = path
        elif controller in controllers.split(","):
            own["v1"] = path
    return CgroupFolders(_up_to(root, own["v2"]), _up_to(root / controller, own["v1"]))


def _up_to(base: Path, path: str) -> tuple[Path, ...]:
    """``base / path`` and each folder above it, up to ``base``. (A container sees its
    own cgroup at ``base``, and may see a ``path`` that is its host's.)"""
    folder = base / path.strip("/")
    return (folder, *(p for p in folder.parents if p.is_relative_to(base)))


def read_text(file: Path) -> str | None:
    """``file``'s text, stripped; ``None`` where it is missing or unreadable. Read with
    ``os.read``, which took 1.2 us for a short cgroup file where ``Path.read_text`` took
    5.5 (the memory check after each training step reads 4 to 12 files)."""
    try:
        descriptor = os.open(file, os.O_RDONLY)
    except OSError:
        return None
    try:
        return b"".join(iter(partial(os.read, descriptor, 65536), b"")).decode().strip()
    except (OSError, UnicodeDecodeError):
        return None
    finally:
        os.close(descriptor)
