"""Freed host memory kept for reuse: on a CPU, the largest cost of a step that is not
arithmetic.

A feature map of an 800-px image is tens to hundreds of megabytes (MobileNetV2's
first expansion of a batch of 4 at 800x1088: 334 MB). glibc serves every allocation
above 32 MiB with a fresh ``mmap`` and gives it back to the kernel when it is freed, so
each step maps its activations anew, and the kernel faults in and zeroes them a 4 KiB
page at a time: 100-120 ms for those 334 MB on the 2-core machine, where writing them
into memory already mapped takes 20 ms. :func:`reuse_freed_memory` has glibc serve
every allocation from its heap and never shrink it, so a step reuses the pages the last
one freed. On that machine a ``mobilenet_v2_fpn`` training step (batch 4, 640-800 px)
took 24-28 % less time and an eval-mode detection a fifth to a third less; the process
keeps its peak memory mapped, and images of varying size fragment the heap (a
multi-scale run settled at 3.4-3.8 GB resident instead of 2.2). ``faster-rcnn``'s
commands call it; the library never does on its own, since it changes the whole process.

Images of many sizes fragment the heap further: on raccoon (95 resized shapes) 120 steps
took 116 s instead of 174 s but peaked at 6.7 GB resident instead of 3.4. So the trainer
calls :func:`give_back_when_short` after each step: when the machine runs short of
memory, the freed pages go back to the kernel, and the run goes on instead of swapping or
being killed (made to count as short once 5.3 of the machine's 24 GB were in use, those
120 steps took 127 s and peaked at 5.3 GB). In a container with a memory limit, short
means short of the limit (:func:`memory_levels`): ``/proc/meminfo`` there shows the
host's memory, plentiful while the kernel kills the process at the limit.
"""

from __future__ import annotations

import ctypes
import os
import platform
from pathlib import Path
from typing import Literal, NamedTuple

from .cgroups import CGROUP_ROOT, PROC_CGROUP, own_cgroup_folders, read_text

# mallopt's parameters (glibc's malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
# The largest value mallopt takes: only a free top of the heap beyond 2 GiB is trimmed.
_NEVER_TRIM = 2**31 - 1
# The switch that turns it off ("0"), leaving glibc as it is.
SWITCH = "FASTER_RCNN_REUSE_FREED_MEMORY"
# Settings of the user's that this leaves alone: glibc's own, or another allocator.
_USER_SETTINGS = ("MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_")
# Short of memory: less than this fraction of the machine's memory, or of a memory
# limit's, available.
SHORT_FRACTION = 0.15
MEMINFO = Path("/proc/meminfo")
# cgroup v1's memory.limit_in_bytes of a cgroup with no limit: the largest multiple of
# the page size under 2**63 (9223372036854771712 with 4 KiB pages). From here up, none.
_NO_LIMIT = 2**62
# Where a level's figures come from: the machine's /proc/meminfo, or the file of the
# cgroup limit that sets it.
MemorySource = Literal["MemAvailable", "memory.max", "memory.high", "memory.limit_in_bytes"]
_reusing = False


class MemoryLevel(NamedTuple):
    """The memory one level the process lives in lets it have: the machine, or a
    cgroup's memory limit.

    Attributes:
        available: the bytes it can still hand out (without swapping, or within the
            limit).
        total: the machine's bytes, or the limit.
        source: ``MemAvailable`` for the machine; for a limit, the file that sets it.
    """

    available: int
    total: int
    source: MemorySource

    def available_text(self) -> str:
        """The available bytes, saying whose they are: ``"2.1 GB the machine has
        available (MemAvailable)"``, ``"2.1 GB this container's memory limit leaves
        (cgroup memory.max)"``."""
        if self.source == "MemAvailable":
            return f"{bytes_text(self.available)} the machine has available (MemAvailable)"
        return (
            f"{bytes_text(self.available)} this container's memory limit leaves (cgroup "
            f"{self.source})"
        )


def reuse_freed_memory() -> bool:
    """Have glibc keep freed memory for reuse instead of returning it to the kernel.

    Process-wide, for the allocations that follow. Does nothing (and returns ``False``)
    when ``FASTER_RCNN_REUSE_FREED_MEMORY=0``, outside glibc, when the environment sets
    one of glibc's own malloc options (``MALLOC_*`` or ``glibc.malloc`` tunables), or when
    ``LD_PRELOAD`` loads another allocator (jemalloc, tcmalloc).

    Returns:
        Whether the setting was applied.
    """
    if os.environ.get(SWITCH) == "0" or platform.libc_ver()[0] != "glibc":
        return False
    if os.environ.get("LD_PRELOAD") or "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    if any(name in os.environ for name in _USER_SETTINGS):
        return False
    global _reusing
    libc = ctypes.CDLL(None)
    # mallopt returns 1 on success.
    _reusing = bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(
        libc.mallopt(_M_TRIM_THRESHOLD, _NEVER_TRIM)
    )
    return _reusing


def give_back_when_short(short_fraction: float = SHORT_FRACTION) -> bool:
    """Return the freed memory :func:`reuse_freed_memory` keeps to the kernel
    (``malloc_trim``) when less than ``short_fraction`` of the machine's memory, or of
    a memory limit of the process's cgroups, is available (:func:`available_fraction`).

    The pages are faulted in again as they are reused. Giving back 4.5-5.2 GB resident
    took 0.25-0.31 s on the 2-core machine, and it only happens when the machine runs
    short again. The check itself reads ``/proc/meminfo`` and the limits' files anew
    (their folders are found once per process): 45-48 us of CPU time there, 62-65 us
    under a cgroup v2 limit on its cgroup two folders below the mount (119-144 us while
    it found the folders at every check and read files with ``Path.read_text``).

    Returns:
        Whether memory was given back: never when freed memory is not kept, or outside
        Linux.
    """
    if not _reusing or available_fraction() >= short_fraction:
        return False
    ctypes.CDLL(None).malloc_trim(0)
    return True


def available_fraction(
    root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP, meminfo: Path = MEMINFO
) -> float:
    """The smallest fraction of its memory that any level the process lives in has
    available (:func:`memory_levels`: the machine's ``MemAvailable / MemTotal``, or a
    cgroup's memory limit's); 1.0 where none says. It may come from another level than
    :func:`least_available` does: a process limited to 1 GiB, half of it used, on a
    machine with 6 % of 24 GiB available has 0.06 of its memory available, and 0.5 GiB."""
    levels = memory_levels(root, proc_cgroup, meminfo)
    return min((level.available / level.total for level in levels), default=1.0)


def least_available(
    root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP, meminfo: Path = MEMINFO
) -> MemoryLevel | None:
    """The level the process lives in (:func:`memory_levels`) that can still hand it
    the fewest bytes, the machine's where a limit leaves as many; ``None`` where none
    says."""
    levels = memory_levels(root, proc_cgroup, meminfo)
    return min(levels, key=lambda level: level.available, default=None)


def bytes_text(count: float) -> str:
    """``count`` bytes as the package's lines write memory: ``2.5 MB``, ``31.2 GB``."""
    if count >= 1e9:
        return f"{count / 1e9:.1f} GB"
    return f"{count / 1e6:.1f} MB"


def memory_levels(
    root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP, meminfo: Path = MEMINFO
) -> list[MemoryLevel]:
    """The memory of the machine (``MemAvailable`` and ``MemTotal`` of ``meminfo``) and
    of each memory limit of this process's cgroup and those above it (cgroup v2's
    ``memory.max`` or ``memory.high``, the tighter; v1's ``memory.limit_in_bytes``),
    where they say. A container limited to less than its host's memory (Docker's
    ``--memory``, a Kubernetes memory limit) sees its host's in ``/proc/meminfo``; the
    limit is what its kernel enforces, killing the process when the cgroup's usage
    reaches ``memory.max`` and nothing more can be reclaimed, throttling it above
    ``memory.high``."""
    folders = own_cgroup_folders("memory", root, proc_cgroup)
    limits = (*map(_v2_limit, folders.v2), *map(_v1_limit, folders.v1))
    return [level for level in (_machine(meminfo), *limits) if level is not None]


def _machine(meminfo: Path) -> MemoryLevel | None:
    """The machine's memory; ``None`` outside Linux and before Linux 3.14 (no
    ``MemAvailable``)."""
    text = read_text(meminfo)
    fields = dict(line.split(":", 1) for line in (text or "").splitlines())
    if "MemAvailable" not in fields or "MemTotal" not in fields:
        return None
    kib = {name: int(fields[name].split()[0]) for name in ("MemAvailable", "MemTotal")}
    return MemoryLevel(kib["MemAvailable"] * 1024, kib["MemTotal"] * 1024, "MemAvailable")


def _v2_limit(folder: Path) -> MemoryLevel | None:
    """A v2 cgroup's memory limit: the tighter of ``memory.max`` and ``memory.high``
    (``max``: none; above ``memory.high`` the kernel throttles the cgroup's allocations
    and reclaims its memory hard), ``memory.current`` and ``memory.stat``'s
    ``active_file`` and ``inactive_file`` (of it and those below it, as the usage)."""
    limits = ("memory.max", "memory.high")
    return _limit(folder, limits, "memory.current", ("active_file", "inactive_file"))


def _v1_limit(folder: Path) -> MemoryLevel | None:
    """A v1 ``memory`` cgroup's limit: ``memory.limit_in_bytes``,
    ``memory.usage_in_bytes`` and ``memory.stat``'s ``total_active_file`` and
    ``total_inactive_file`` (of it and those below it, as the usage)."""
    cache = ("total_active_file", "total_inactive_file")
    return _limit(folder, ("memory.limit_in_bytes",), "memory.usage_in_bytes", cache)


def _limit(
    folder: Path,
    limit_files: tuple[MemorySource, ...],
    usage_file: str,
    cache: tuple[str, str],
) -> MemoryLevel | None:
    """What a cgroup's memory limit leaves: the limit (the smallest of ``limit_files``)
    less its usage, the usage less its page cache (``memory.stat``'s ``cache`` figures,
    active and inactive; 0 where it does not say), which the kernel reclaims before it
    kills, as ``MemAvailable`` counts the machine's page cache as available (counting
    the inactive part alone, a container whose cache filled its limit would trim the
    heap at every step, undoing its reuse); ``None`` where there is no limit or the
    usage is missing or unreadable."""
    tightest = _tightest_limit(folder, limit_files)
    if tightest is None:
        return None
    usage = _whole_number(read_text(folder / usage_file))
    if usage is None:
        return None
    limit, source = tightest
    in_use = usage - _sum_of_stats(folder / "memory.stat", cache)
    return MemoryLevel(min(limit, max(0, limit - in_use)), limit, source)


def _tightest_limit(
    folder: Path, limit_files: tuple[MemorySource, ...]
) -> tuple[int, MemorySource] | None:
    """The smallest limit that ``limit_files`` in ``folder`` set, and its file (the
    first of those setting it); ``None`` where none does."""
    limits = [(_limit_in(folder / name), name) for name in limit_files]
    set_limits = [(limit, name) for limit, name in limits if limit is not None]
    return min(set_limits, key=lambda pair: pair[0], default=None)


def _limit_in(limit_file: Path) -> int | None:
    """The limit ``limit_file`` sets, in bytes; ``None`` for none (``max``, 0, v1's no
    limit) or a missing or unreadable file."""
    limit = _whole_number(read_text(limit_file))
    return limit if limit is not None and 0 < limit < _NO_LIMIT else None


def _sum_of_stats(memory_stat: Path, names: tuple[str, ...]) -> int:
    """The sum of the figures ``names`` of a ``memory.stat`` file (a ``name value`` a
    line), read once; 0 for each it does not say."""
    figures: dict[str, int] = {}
    for line in (read_text(memory_stat) or "").splitlines():
        key, _, value = line.partition(" ")
        if key in names:
            figures.setdefault(key, _whole_number(value) or 0)
    return sum(figures.values())


def _whole_number(text: str | None) -> int | None:
    """``text`` as a whole number of bytes; ``None`` for ``max``, or where it is not."""
    return int(text) if text is not None and text.strip().isdecimal() else None
