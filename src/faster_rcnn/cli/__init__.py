"""The ``faster-rcnn`` command line: demo, train, evaluate, predict and anchors.

Each command is a module here that defines its options (``add_parser``) and runs them
(``run``) through the library's functions. User mistakes (a missing file, an unknown
preset, a bad option value, a flag the chosen scheme would ignore) end in one line on
stderr and exit status 2, not a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import anchors, demo, evaluate, predict, train

COMMANDS = (demo, train, evaluate, predict, anchors)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command ``argv`` names (default: ``sys.argv[1:]``); returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, FileNotFoundError, NotADirectoryError) as error:
        print(f"faster-rcnn: error: {error}", file=sys.stderr)
        return 2


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command, each defined by its module."""
    parser = argparse.ArgumentParser(
        prog="faster-rcnn", description="The Region Proposal Network and Faster R-CNN."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(commands).set_defaults(run=command.run)
    return parser
