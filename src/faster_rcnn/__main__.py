"""The ``faster-rcnn`` program, and ``python -m faster_rcnn``.

The command line, and with it PyTorch, is imported inside :func:`main`: that takes a
second or more, and Ctrl-C in it ends in one line and status 130, as it does later, not
in Python's traceback.
"""

from __future__ import annotations

import signal
import sys


def main() -> int:
    """Run the command that ``sys.argv`` names; returns the exit status."""
    # Ctrl-C is held while the command line imports, and acted on after: PyTorch's
    # extension swallows whatever is raised while it imports NumPy, a KeyboardInterrupt
    # too, and leaves NumPy half-imported; the command then ran on as if never
    # interrupted, or failed later in a traceback of NumPy's.
    held: list[int] = []
    previous = signal.getsignal(signal.SIGINT)
    if previous is signal.default_int_handler:  # not where SIGINT is ignored
        signal.signal(signal.SIGINT, lambda signum, frame: held.append(signum))
    try:
        from .cli import console_main
    except KeyboardInterrupt:  # raised in an import, as Ctrl-C's handler would
        held.append(signal.SIGINT)
    finally:
        signal.signal(signal.SIGINT, previous)
    if held:
        print("faster-rcnn: interrupted by SIGINT", file=sys.stderr)
        return 128 + signal.SIGINT
    return console_main()


if __name__ == "__main__":
    raise SystemExit(main())
