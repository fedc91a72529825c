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

from ..config import ConfigError, FasterRCNNConfig
from .arguments import flag_dest
from .model_options import CONFIG_OPTIONS


def _field(setting: str) -> str:
    """A model config's ``"section.field"`` as its refusal names it: ``"RPNConfig.sampler"``."""
    section, field = setting.split(".")
    return f"{typing.get_type_hints(FasterRCNNConfig)[section].__name__}.{field}"


# Each field a flag sets, as a config's refusal names it, and that flag; a flag in a unit
# of its own (--minutes) is shown with the value typed, not the field's (its seconds).
FIELD_FLAGS: dict[str, str] = {
    "FasterRCNNConfig.class_names": "--classes",
    "TransformConfig.min_size": "--min-size",
    "TransformConfig.max_size": "--max-size",
    "BackboneConfig.returned_layers": "--returned-layers",
    **{_field(option.setting): option.flag for option in CONFIG_OPTIONS},
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


def _shown(value: Any) -> str:
    """A flag's value as typed: ``300 100000``, ``0.5``, ``2``, ``1e-320`` (the shortest
    text that reads back as it, where ``:g`` would round it to ``9.99989e-321``)."""
    if isinstance(value, list):
        return " ".join(map(_shown, value))
    if isinstance(value, float):
        return repr(value).removesuffix(".0")
    return str(value)
