"""The ``faster-rcnn`` command line: demo, data, train, evaluate, predict, export, convert,
anchors and explain.

Each command is a module here that defines its options (``add_parser``) and runs them
(``run``) through the library's functions. User mistakes (a missing file, an unknown
preset, a bad option value, a flag the chosen scheme would ignore, an output path that
cannot be written) end in one line on stderr and exit status 2, not a traceback (a value
a config refuses is named by the flag that gave it: :mod:`.config_flags`); so does a
training run that diverged. Ctrl-C, SIGTERM or SIGHUP (the terminal or the ssh session
closing) during training ends it after a checkpoint, with one line and status 128 + the
signal's number; elsewhere they end the command with that line and status, without a
traceback (``predict`` keeps the detections of the images done, and says so). A hang-up
ignored (``nohup``) stays ignored. Output piped to a reader that stops early (``| head``)
ends the command quietly, with status 141 (128 + SIGPIPE), as the shell's own tools end;
but not a training run, whose results are its files: it goes on with its output sent to
the null device (:mod:`.streams`), as a message on stderr goes there where nothing reads
it any more (a terminal hung up), in every command.
"""

from __future__ import annotations

import argparse
import signal
import sys
import warnings
from collections.abc import Sequence
from typing import Any

from tqdm.auto import tqdm

from ..config import ConfigError
from ..data.open import UnknownSplit
from ..host_cpus import threads_for_cpu_quota
from ..host_memory import reuse_freed_memory
from ..train.state import ChangedSettings, OtherModelSettings
from ..train.stops import TrainingInterrupted, stop_signals
from . import anchors, convert, data, demo, evaluate, explain, export, predict, train
from .config_flags import changes_by_flag, flag_error, settings_by_flag
from .interrupted import Interrupted, interrupt
from .streams import reader_proof, to_null_device

COMMANDS = (demo, data, train, evaluate, predict, export, convert, anchors, explain)


def console_main() -> int:
    """The ``faster-rcnn`` program: :func:`main` in a process of its own, which keeps
    the memory it frees for reuse (:func:`~faster_rcnn.host_memory.reuse_freed_memory`:
    a tenth to a quarter of a CPU training step) and runs as many threads as its CPU
    quota allows (:func:`~faster_rcnn.host_cpus.threads_for_cpu_quota`)."""
    reuse_freed_memory()
    limit = threads_for_cpu_quota()
    if limit is not None:
        print(limit.line())
    return main()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command ``argv`` names (default: ``sys.argv[1:]``); returns the exit status."""
    args = build_parser().parse_args(argv)
    with reader_proof("stderr"):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    """Run the command ``args`` name, its errors and interruptions in one line."""
    # Outside training (which checkpoints first), SIGTERM and SIGHUP end the command as
    # Ctrl-C does.
    previous = {signum: signal.signal(signum, interrupt) for signum in _ending_signals()}
    previous_show, warnings.showwarning = warnings.showwarning, _show_warning
    try:
        status = args.run(args)
        sys.stdout.flush()  # a reader gone is met here, where it is caught, not at exit
        return status
    except TrainingInterrupted as stop:
        resumable = stop.checkpoint is not None and hasattr(args, "resume")  # not the demo
        resume = "; add --resume to continue" if resumable else ""
        print(f"faster-rcnn: {stop}{resume}", file=sys.stderr)
        return 128 + stop.signum
    except Interrupted as stop:
        print(f"faster-rcnn: {stop.line()}", file=sys.stderr)
        return 128 + stop.signum
    except KeyboardInterrupt:
        print("faster-rcnn: interrupted by SIGINT", file=sys.stderr)
        return 128 + signal.SIGINT
    except ConfigError as error:  # a value a config refused, named as the flag that gave it
        print(f"faster-rcnn: error: {flag_error(error, args)}", file=sys.stderr)
        return 2
    except OtherModelSettings as error:  # a resume refused, its settings named as flags
        print(f"faster-rcnn: error: {settings_by_flag(error)}", file=sys.stderr)
        return 2
    except UnknownSplit as error:  # a --split that no split fits, named as the flag
        print(f"faster-rcnn: error: {_split_error(error, args)}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError, NotADirectoryError, FloatingPointError) as error:
        print(f"faster-rcnn: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader of stdout went away (`| head`): end as `cat` does
        to_null_device(sys.stdout)
        return 128 + signal.SIGPIPE
    except OSError as error:  # a path that cannot be written: a file, read-only, disk full
        print(f"faster-rcnn: error: {_os_error_line(error)}", file=sys.stderr)
        return 2
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        warnings.showwarning = previous_show


def _split_error(error: UnknownSplit, args: argparse.Namespace) -> str:
    """``error`` as the ``--split`` that asked for the split, where that flag did:
    ``"--split nonexistent: synthetic (synthetic) has the splits train, val, test; none
    fits"``; as it is where the command chose the name."""
    if getattr(args, "split", None) != error.split:
        return str(error)
    return f"--split {error.split}: {error.flag_reason}"


def _ending_signals() -> tuple[int, ...]:
    """The stop signals the command line ends a command on (a training stage handles
    them itself); Ctrl-C is Python's ``KeyboardInterrupt``."""
    return tuple(signum for signum in stop_signals() if signum != signal.SIGINT)


def _os_error_line(error: OSError) -> str:
    """``error`` as the system says it, naming the path: "Is a directory: out.onnx"."""
    if error.strerror and error.filename is not None:
        return f"{error.strerror}: {error.filename}"
    return str(error)


def _show_warning(message: Warning | str, *args: Any, **kwargs: Any) -> None:
    """Warnings as the command's own one-line messages, above any progress bar; a resumed
    run's changed settings named as the flags that set them."""
    if isinstance(message, ChangedSettings):
        message = changes_by_flag(message)
    tqdm.write(f"faster-rcnn: warning: {message}", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command, each defined by its module."""
    parser = argparse.ArgumentParser(
        prog="faster-rcnn", description="The Region Proposal Network and Faster R-CNN."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(commands).set_defaults(run=command.run)
    return parser
