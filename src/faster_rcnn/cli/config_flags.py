"""The flags that set config fields, so that a config's refusal of a value given on the
command line names the flag and the value typed (``--min-size 100000: must be in [1,
16384]``), not the field (``TransformConfig.min_size``), which a user of the commands
never wrote.

The configs check their values themselves, wherever a command builds them; :func:`main
<faster_rcnn.cli.main>` words their refusal by :func:`flag_error`. From Python, a
config's own message names the field.
"""

from __future__ import annotations

import argparse
import typing
from typing import Any

from ..config import ConfigError, FasterRCNNConfig, worded_change
from ..train.state import ChangedSettings, OtherModelSettings
from .arguments import flag_dest
from .model_options import CONFIG_OPTIONS


def _field(setting: str) -> str:
    """A model config's ``"section.field"`` (or top-level ``"field"``) as its refusal names
    it: ``"RPNConfig.sampler"``, ``"FasterRCNNConfig.class_names"``."""
    section, _, field = setting.rpartition(".")
    owner = typing.get_type_hints(FasterRCNNConfig)[section] if section else FasterRCNNConfig
    return f"{owner.__name__}.{field}"


# Each model setting a flag sets, by its dotted name (``"transform.min_size"``), and that
# flag.
SETTING_FLAGS: dict[str, str] = {
    "class_names": "--classes",
    "transform.min_size": "--min-size",
    "transform.max_size": "--max-size",
    "transform.train_window": "--train-window",
    "backbone.returned_layers": "--returned-layers",
    **{option.setting: option.flag for option in CONFIG_OPTIONS},
}
# Each field a flag sets, as a config's refusal names it, and that flag; a flag in a unit
# of its own (--minutes) is shown with the value typed, not the field's (its seconds).
FIELD_FLAGS: dict[str, str] = {
    **{_field(setting): flag for setting, flag in SETTING_FLAGS.items()},
    "TrainConfig.steps": "--steps",
    "TrainConfig.batch_size": "--batch-size",
    "TrainConfig.lr": "--lr",
    "TrainConfig.grad_clip_norm": "--grad-clip-norm",
    "TrainConfig.schedule": "--schedule",
    "TrainConfig.max_seconds": "--minutes",
    "TrainConfig.checkpoint_every": "--checkpoint-every",
    "TrainConfig.checkpoint_minutes": "--checkpoint-minutes",
    "TrainConfig.num_workers": "--workers",
    "TrainConfig.seed": "--seed",
}


def flag_error(error: ConfigError, args: argparse.Namespace) -> str:
    """``error`` as the flag given in ``args`` that set its field, with the value given:
    ``"--min-size 300 100000: must be in [1, 16384]"``; as it is where no flag of the
    command set the field (a model file's config, a field the command chose)."""
    flag = FIELD_FLAGS.get(error.field)
    value = None if flag is None else getattr(args, flag_dest(flag), None)
    if value is None:
        return str(error)
    return f"{flag} {_shown(value)}: {error.requirement}"


def changes_by_flag(warning: ChangedSettings) -> str:
    """The warning of a resumed run's changed settings, each model setting a flag sets
    named as that flag with its values as typed (``"--min-size 96 -> 256 288 320"``), not
    as the field (``"transform.min_size (96,) -> (256, 288, 320)"``), which a user of the
    commands never wrote: the flag is what resumes the run as it was started."""
    return warning.worded(_flag_change)


def settings_by_flag(error: OtherModelSettings) -> str:
    """The refusal to resume a checkpoint of other model settings, each setting a flag sets
    named as that flag (``"--returned-layers"``), as :func:`changes_by_flag` names it, and
    a preset as ``--preset`` gives it."""
    return error.worded(
        lambda setting: SETTING_FLAGS.get(setting, setting), lambda name: f"--preset {name}"
    )


def _flag_change(setting: str, old: Any, new: Any) -> str:
    """The change of the model setting ``setting`` from ``old`` to ``new``, named as the
    flag that sets it where one does."""
    flag = SETTING_FLAGS.get(setting)
    if flag is None:
        return worded_change(setting, old, new)
    return f"{flag} {_shown(old)} -> {_shown(new)}"


def _shown(value: Any) -> str:
    """A flag's value as typed: ``300 100000``, ``0.5``, ``2``, ``1e-320`` (the shortest
    text that reads back as it, where ``:g`` would round it to ``9.99989e-321``)."""
    if isinstance(value, (list, tuple)):
        return " ".join(map(_shown, value))
    if isinstance(value, float):
        return repr(value).removesuffix(".0")
    return str(value)
