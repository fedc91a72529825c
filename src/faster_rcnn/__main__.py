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
    try:
        from .cli import console_main
    except KeyboardInterrupt:
        print("faster-rcnn: interrupted by SIGINT", file=sys.stderr)
        return 128 + signal.SIGINT
    return console_main()


if __name__ == "__main__":
    raise SystemExit(main())
