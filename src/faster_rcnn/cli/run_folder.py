"""What a run's ``--out`` holds, for ``train`` and ``demo``: a finished or an unfinished
run, the scheme whose checkpoints it holds, and what resuming it takes (the scheme, and
the weights file it started from)."""

from __future__ import annotations

import argparse
import os
import shutil
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

from ..train import non_approximate, rpn_only
from ..train.alternating import STAGES, is_step_config, no_step_to_resume
from ..train.checkpoint import (
    MODEL_FILE,
    PREVIOUS,
    TrainingCheckpoint,
    remove_cut_off_saves,
    saved_checkpoints,
)
from ..train.metrics import METRICS_FILE, read_metrics
from ..train.trainer import nothing_to_resume
from .arguments import check_out_folder
from .out_lock import check_unlocked
from .splits import RECORD_FILES, Records, write_records
from .unfinished import stopped_run_metrics, unfinished_checkpoints

# The stages of each scheme's run: the folders under --out its checkpoints are in.
SCHEME_STAGES = {
    "joint": ("joint",),
    "non-approximate": (non_approximate.STAGE,),
    "rpn": (rpn_only.STAGE,),
    "alternating": STAGES,
}
# Every scheme's stages, each once.
ALL_STAGES = tuple(dict.fromkeys(sum(SCHEME_STAGES.values(), ())))
# What export and evaluate write beside a run's model file, or of its checkpoints, by
# default: a run trained over it leaves them, and `predict --onnx` would run the model
# replaced.
MADE_FROM_MODEL = (
    str(Path(MODEL_FILE).with_suffix(".onnx")),
    *(f"{stage}.onnx" for stage in ALL_STAGES),
    "evaluation/",
)


def check_out(
    out: Path, scheme: str | None, resume: bool = False, writes: str = "training writes"
) -> None:
    """Refuse an ``--out`` that cannot be written (``writes`` ends the message) or that
    another run is writing; with ``resume``, one without a checkpoint of a ``scheme``
    run; without it, one holding the checkpoint of a run that did not finish, whose work
    a fresh start would overwrite (``scheme`` ``None``: a command without ``--resume``,
    the demo)."""
    check_out_folder(out, writes)
    if out.is_dir():
        check_unlocked(out)
    if scheme is not None and resume:
        check_resume(out, scheme)
    elif out.is_dir():
        refuse_unfinished_run(out, scheme)


def refuse_unfinished_run(out: Path, scheme: str | None) -> None:
    """Refuse an ``out`` holding the checkpoint of a run that did not finish, saying how
    a command training ``scheme`` continues it (``None``: it cannot). A run whose
    checkpoints hold no step (stopped at its first: no image could be read, a signal)
    left nothing a fresh start would lose: it is let over."""
    unfinished = [c for c in unfinished_checkpoints(out) if TrainingCheckpoint.steps_in(c) > 0]
    if unfinished:
        raise ValueError(
            f"{out} holds the checkpoint of a run that did not finish ({unfinished[0]}): "
            f"{continued_by(unfinished[0], scheme)}to start anew, remove it or choose "
            "another --out"
        )


def say_replaced_run(out: Path) -> None:
    """Say that the run about to start replaces the finished one whose model ``out``
    holds, what of it goes as training begins (:func:`begin_fresh_run`; its model file
    goes when the run writes its own), and which files made from that model stay beside
    the new one (:data:`MADE_FROM_MODEL`); without a model, that the metrics file of a run
    that stopped before its first checkpoint goes."""
    model = out / MODEL_FILE
    if model.is_file():
        written = datetime.fromtimestamp(model.stat().st_mtime).strftime("%Y-%m-%d %H:%M")
        made = [name for name in MADE_FROM_MODEL if (out / name).exists()]
        stays = "s" * (len(made) == 1)
        stay = f"; {' and '.join(made)}, made from that run, stay{stays}" if made else ""
        print(
            f"{out} holds a finished run (its {MODEL_FILE} of {written}): this run replaces "
            f"it{_going(out)}{stay}"
        )
    elif (out / METRICS_FILE).is_file():
        print(
            f"{out} holds the {METRICS_FILE} of a run that stopped before its first "
            "checkpoint (no model file or checkpoint beside it): it goes as training begins"
        )


def _going(out: Path) -> str:
    """What of the finished run in ``out`` goes as the run replacing it begins, for
    :func:`say_replaced_run`: ``: its checkpoints (joint, rpn), metrics.jsonl and
    training_splits.json go as training begins``; empty where nothing does; where a run
    that began replacing it stopped before its first checkpoint
    (:func:`stopped_run_metrics`), that its metrics file goes."""
    if stopped_run_metrics(out):
        return (
            f"; the {METRICS_FILE} of a run that began replacing it and stopped before its "
            "first checkpoint goes as training begins"
        )
    going = []
    checkpoints = saved_checkpoints(out)
    if checkpoints:
        going.append(f"checkpoints ({', '.join(checkpoint.name for checkpoint in checkpoints)})")
    going += [name for name in (METRICS_FILE, *RECORD_FILES) if (out / name).is_file()]
    if not going:
        return ""
    listed = f"{', '.join(going[:-1])} and {going[-1]}" if len(going) > 1 else going[0]
    verb = "go" if len(going) > 1 or checkpoints else "goes"
    return f": its {listed} {verb} as training begins"


def clear_cut_off_saves(out: Path) -> None:
    """Remove what saves of a run in ``out`` that a kill (SIGKILL, the machine's memory
    running out) cut off left, by their names: every stage's checkpoint not swapped in,
    and the temporary files of its model and metrics files
    (:func:`~faster_rcnn.train.checkpoint.remove_cut_off_saves`). The run about to train
    there must hold its lock."""
    remove_cut_off_saves(out, ALL_STAGES, (MODEL_FILE, METRICS_FILE))


def begin_fresh_run(out: Path, records: Records) -> None:
    """Begin a fresh run in ``out``, its data read and checked: remove the checkpoints
    that ``out`` holds, a finished run's, the only ones a fresh start is let over
    (:func:`check_out`); start its metrics file anew, empty until its first step; and
    write its ``records`` (:func:`~.splits.write_records`), which its checkpoints are read
    with from their first (:func:`~.unfinished.records_folder`), and which the finished
    run's model file left beside them no longer has: the metrics file, newer than it,
    says that a run began after it (:func:`stopped_run_metrics`), even one stopped before
    its first step. Every stage's checkpoint goes, not only those the fresh run writes: a
    later ``--resume`` would continue the replaced model from another scheme's stage, or
    from the steps of an alternating run the fresh one has not reached."""
    for checkpoint in saved_checkpoints(out) if out.is_dir() else []:
        shutil.rmtree(checkpoint)
    (out / METRICS_FILE).write_text("")
    write_records(out, records)


def run_files(out: Path) -> list[str]:
    """The names of what a training run writes beside its model file that ``out`` holds:
    checkpoints, the metrics file and the run's records (:data:`~.splits.RECORD_FILES`);
    none where ``out`` is not a folder a run trained in."""
    if not out.is_dir():
        return []
    names = [checkpoint.name for checkpoint in saved_checkpoints(out)]
    return names + [name for name in (METRICS_FILE, *RECORD_FILES) if (out / name).is_file()]


def continued_by(checkpoint: Path, scheme: str | None) -> str:
    """The options that continue the run of ``checkpoint`` from a command running
    ``scheme`` (``None``: one that cannot resume), as advice ending in "; "."""
    if scheme is None:
        return ""
    its_scheme = scheme_of(checkpoint)
    if its_scheme is None or its_scheme == scheme:
        return "--resume continues it; "
    return f"--scheme {its_scheme} --resume continues it; "


def check_resume(out: Path, scheme: str) -> None:
    """Refuse ``--resume`` where ``out`` holds no checkpoint of a ``scheme`` run, naming
    the scheme of the run whose checkpoint it holds, if any, or a metrics file the run
    could not go on (a damaged line: :func:`~faster_rcnn.train.metrics.read_metrics`),
    which the trainer would find only once the data is read and the model built."""
    saved = saved_checkpoints(out) if out.is_dir() else []
    found = {checkpoint: scheme_of(checkpoint) for checkpoint in saved}
    if scheme in found.values():
        if (out / METRICS_FILE).is_file():
            read_metrics(out / METRICS_FILE)
        return
    others = [(checkpoint, its) for checkpoint, its in found.items() if its is not None]
    if not others:
        nothing_to_resume_in(out, scheme)
    checkpoint, its_scheme = others[0]
    state = "an unfinished" if checkpoint in unfinished_checkpoints(out) else "a finished"
    raise ValueError(
        f"{out} holds {state} --scheme {its_scheme} run ({checkpoint}), not a --scheme "
        f"{scheme} one: give --scheme {its_scheme} --resume to continue it"
    )


def nothing_to_resume_in(out: Path, scheme: str) -> NoReturn:
    """Refuse ``--resume`` where ``out`` holds no checkpoint of ``scheme``'s stages, as
    its trainers would once the data is read.

    Raises:
        FileNotFoundError: always.
    """
    if scheme == "alternating":
        raise FileNotFoundError(no_step_to_resume(out))
    stage = SCHEME_STAGES[scheme][0]
    raise FileNotFoundError(nothing_to_resume(stage, out / stage))


def scheme_of(checkpoint: Path) -> str | None:
    """The ``--scheme`` of the run that wrote the stage checkpoint ``checkpoint`` (a
    folder of ``--out``, or its ``.previous``); ``None`` for a stage no scheme has."""
    stage = checkpoint.name.removesuffix(PREVIOUS)
    if stage == rpn_only.STAGE:
        return rpn_scheme(checkpoint)
    return next((name for name, stages in SCHEME_STAGES.items() if stage in stages), None)


def rpn_scheme(checkpoint: Path) -> str:
    """The scheme whose stage ``"rpn"`` ``checkpoint`` is, the RPN trained alone or the
    alternating scheme's first step: as the checkpoint records it, or where it does not
    (an earlier version's), as its warm-up share says (:func:`is_step_config`)."""
    recorded = TrainingCheckpoint.scheme_in(checkpoint)
    if recorded is not None:
        return recorded
    alternating = is_step_config(TrainingCheckpoint.train_config_in(checkpoint))
    return "alternating" if alternating else "rpn"


def resumed_weights(args: argparse.Namespace) -> Path | None:
    """The weights file a resumed run loads, once ``--weights`` is checked against the
    file the run started from (as its checkpoints record it): none for a single-stage
    scheme, whose checkpoint holds every weight; for the alternating scheme, that file,
    which its steps not begun start from too, where they are some.

    Raises:
        ValueError: ``--weights`` is not the file the run started from (of a single-stage
            scheme's run that does not record it, any file: it has no effect).
        FileNotFoundError: the file an alternating run started from is gone, and a step
            not begun needs it.
    """
    started = started_weights(args.out, SCHEME_STAGES[args.scheme])
    alternating = args.scheme == "alternating"
    if args.weights is not None and not same_start(args.weights, started, alternating):
        raise ValueError(other_weights_message(args, started))
    if not alternating:
        return None
    if args.weights is not None or started is None or started["file"] is None:
        return args.weights
    return weights_of_steps_to_come(args.out, Path(started["file"]))


def started_weights(out: Path, stages: Sequence[str]) -> dict[str, Any] | None:
    """The initial weights the run in ``out`` records (in the checkpoint of the first of
    its ``stages`` that records them: :func:`~faster_rcnn.train.state.weights_record`);
    ``None`` where none does (an earlier version's run)."""
    records = (TrainingCheckpoint.weights_in(out / stage) for stage in stages)
    return next((record for record in records if record is not None), None)


def same_start(weights: Path, started: dict[str, Any] | None, alternating: bool) -> bool:
    """Whether the file ``weights`` is the one a run started from, ``started`` (its
    record); where the run does not say, only an alternating run's may be (its steps
    not begun load it), not a single-stage one's (its checkpoint holds every weight)."""
    if started is None:
        return alternating
    file = started["file"]
    return file is not None and (weights.resolve() == Path(file) or _same_inode(weights, file))


def _same_inode(path: Path, other: str) -> bool:
    """Whether ``path`` and ``other`` are one file (a hard link); not where either is gone."""
    try:
        return os.path.samefile(path, other)
    except OSError:
        return False


def other_weights_message(args: argparse.Namespace, started: dict[str, Any] | None) -> str:
    """Why the ``--weights`` of a resumed run (not the file it started from, ``started``)
    are refused, and what to do instead."""
    if started is None:
        was = f"{args.out} does not record which it started from: an earlier version wrote it"
    elif started["file"] is None:
        was = "the run started without --weights"
    else:
        was = f"the run started from {started['file']}"
    if args.scheme == "alternating":
        effect = (
            "continues from its checkpoints' weights, and its steps not begun start from the "
            "weights the run started from"
        )
    else:
        effect = "continues from its checkpoint's weights, so --weights has no effect"
    return (
        f"--weights {args.weights}: a resumed run {effect} ({was}): leave --weights out, or "
        f"start a new --out to train from {args.weights}"
    )


def weights_of_steps_to_come(out: Path, file: Path) -> Path | None:
    """``file``, the weights the alternating run in ``out`` started from, where a step built
    from them (its first two) has not begun, saying so; ``None`` where both have.

    Raises:
        FileNotFoundError: ``file`` is gone.
    """
    to_come = [stage for stage in STAGES[:2] if TrainingCheckpoint.find(out / stage) is None]
    if not to_come:
        return None
    if not file.is_file():
        raise FileNotFoundError(
            f"{file}, the weights the run in {out} started from, is gone, and its step "
            f"{to_come[0]}, not begun, starts from it: put it back, or start a new --out"
        )
    print(f"{out}: its step {to_come[0]}, not begun, starts from the run's weights, {file}")
    return file
