"""How much a piece of code raises a fresh process's peak resident memory."""

from __future__ import annotations

import subprocess
import sys

# Run before the measured code: one thread, and ``peak_mb()``, the process's own peak
# (``ru_maxrss`` keeps the parent's across ``exec``, so /proc's VmHWM is read instead).
_PRELUDE = """
import torch
torch.set_num_threads(1)
def peak_mb():
    status = open("/proc/self/status").read()
    return int(status.split("VmHWM:")[1].split()[0]) // 1024
"""


def peak_rise_mb(setup: str, measured: str) -> int:
    """The MB by which ``measured`` raises the peak memory of a fresh process that has run
    ``setup`` (which should warm up the code measured, so that only its working memory
    counts). Linux only."""
    script = f"{_PRELUDE}{setup}\nbefore = peak_mb()\n{measured}\nprint(peak_mb() - before)\n"
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    return int(result.stdout)
