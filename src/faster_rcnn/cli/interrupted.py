"""A stop signal outside training: the command ends where it is, in one line.

Training stops after a checkpoint (:mod:`faster_rcnn.train.stops`); elsewhere SIGTERM and
SIGHUP raise :class:`Interrupted` where the command is, as Ctrl-C raises
``KeyboardInterrupt``, and a command that keeps what it had done (``predict``'s
detections) raises it again with the words that say so.
"""

from __future__ import annotations

import signal
from types import FrameType


class Interrupted(BaseException):
    """A stop signal outside training; not an ``Exception``, as ``KeyboardInterrupt`` is
    not, so that no ``except Exception`` it lands in takes it for a failure of its own (an
    image that could not be decoded, skipped, and the command going on).

    Attributes:
        signum: the signal.
        kept: what the command kept of its work, as the end of its line (``" after 3 of
            10 images; ..."``); empty where it kept nothing.
    """

    def __init__(self, signum: int, kept: str = "") -> None:
        super().__init__(signum)
        self.signum, self.kept = signum, kept

    def line(self) -> str:
        """The command's last line: ``interrupted by SIGINT`` and what it kept."""
        return f"interrupted by {signal.Signals(self.signum).name}{self.kept}"


def interrupt(signum: int, frame: FrameType | None) -> None:
    """The handler of the stop signals outside training: :class:`Interrupted`."""
    raise Interrupted(signum)
