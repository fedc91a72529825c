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
120 steps took 127 s and peaked at 5.3 GB).
"""

from __future__ import annotations

import ctypes
import os
import platform

# mallopt's parameters (glibc's malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
# The largest value mallopt takes: only a free top of the heap beyond 2 GiB is trimmed.
_NEVER_TRIM = 2**31 - 1
# The switch that turns it off ("0"), leaving glibc as it is.
SWITCH = "FASTER_RCNN_REUSE_FREED_MEMORY"
# Settings of the user's that this leaves alone: glibc's own, or another allocator.
_USER_SETTINGS = ("MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_")
# Short of memory: less than this fraction of the machine's memory available.
SHORT_FRACTION = 0.15
_reusing = False


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
    (``malloc_trim``) when less than ``short_fraction`` of the machine's memory is
    available (``MemAvailable`` of ``/proc/meminfo``).

    The pages are faulted in again as they are reused. Giving back 4.5-5.2 GB resident
    took 0.25-0.31 s on the 2-core machine, and it only happens when the machine runs
    short again.

    Returns:
        Whether memory was given back: never when freed memory is not kept, or outside
        Linux.
    """
    if not _reusing or available_fraction() >= short_fraction:
        return False
    ctypes.CDLL(None).malloc_trim(0)
    return True


def available_fraction() -> float:
    """``MemAvailable / MemTotal`` from ``/proc/meminfo``; 1.0 where it does not say."""
    kib = _meminfo_kib()
    if kib is None:
        return 1.0
    return kib["MemAvailable"] / kib["MemTotal"]


def available_bytes() -> int | None:
    """``MemAvailable`` of ``/proc/meminfo`` (what the kernel can hand out without
    swapping) in bytes; ``None`` where it does not say."""
    kib = _meminfo_kib()
    return None if kib is None else kib["MemAvailable"] * 1024


def bytes_text(count: float) -> str:
    """``count`` bytes as the package's lines write memory: ``2.5 MB``, ``31.2 GB``."""
    if count >= 1e9:
        return f"{count / 1e9:.1f} GB"
    return f"{count / 1e6:.1f} MB"


def _meminfo_kib() -> dict[str, int] | None:
    """``MemAvailable`` and ``MemTotal`` of ``/proc/meminfo`` in KiB; ``None`` outside
    Linux and before Linux 3.14 (no ``MemAvailable``)."""
    try:
        with open("/proc/meminfo") as meminfo:
            fields = dict(line.split(":", 1) for line in meminfo)
    except OSError:
        return None
    if "MemAvailable" not in fields:
        return None
    return {name: int(fields[name].split()[0]) for name in ("MemAvailable", "MemTotal")}
