"""torchvision's head modules given to ``FasterRCNN(backbone, ...)``, as config fields.

torchvision's constructor takes the RPN head, the box head and the box predictor as modules
(``rpn_head=RPNHead(256, 3)``, ``box_head=TwoMLPHead(256 * 7 * 7, 1024)``,
``box_predictor=FastRCNNPredictor(1024, 3)``). This package's own classes of them are
taken: the config's fields are read off their shapes, so that the config (and a model
file) describes the network, and the model runs the given modules, weights and all. A
module that contradicts the rest of the model is refused in one line naming both sides.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import nn

from .config import FasterRCNNConfig
from .roi_heads.box_head import TwoMLPHead
from .roi_heads.predictor import FastRCNNPredictor
from .rpn.head import RPNHead

# torchvision's keyword: the class of this package taken there.
HEAD_TYPES: dict[str, type[nn.Module]] = {
    "rpn_head": RPNHead,
    "box_head": TwoMLPHead,
    "box_predictor": FastRCNNPredictor,
}


class GivenHeads(NamedTuple):
    """The head modules given to torchvision's constructor form; ``None`` where the
    config builds a fresh one."""

    rpn_head: RPNHead | None = None
    box_head: TwoMLPHead | None = None
    box_predictor: FastRCNNPredictor | None = None


def take_given_heads(options: dict[str, Any]) -> GivenHeads:
    """Pop from ``options`` the head keywords whose value is ``None`` or a module of
    exactly the class :data:`HEAD_TYPES` names; a module of another class (a subclass
    too, which the config could not rebuild) stays, to be refused there."""
    taken = {
        key: options.pop(key)
        for key, head_type in HEAD_TYPES.items()
        if key in options and (options[key] is None or type(options[key]) is head_type)
    }
    for key, head in taken.items():
        if head is not None:
            _check_layout(key, head)
    return GivenHeads(**taken)


def class_count(num_classes: int | None, predictor: FastRCNNPredictor | None) -> int:
    """The model's classes (background included), by torchvision's rule: ``num_classes``
    without a ``box_predictor``, the predictor's with one (``num_classes`` then ``None``).

    Raises:
        ValueError: both or neither given, or the predictor's layers do not fit.
    """
    if predictor is None:
        if num_classes is None:
            raise ValueError(
                "FasterRCNN(backbone, ...) needs num_classes (background included), or "
                "box_predictor=FastRCNNPredictor(in_features, num_classes)"
            )
        return num_classes
    described = _described(predictor)
    if num_classes is not None:
        raise ValueError(
            f"FasterRCNN(num_classes={num_classes}, box_predictor={described}): num_classes "
            f"must be None when box_predictor is given (its {_classes(predictor)} classes "
            "are the model's), as in torchvision"
        )
    return _classes(predictor)


def with_given_heads(config: FasterRCNNConfig, heads: GivenHeads) -> FasterRCNNConfig:
    """``config`` with the fields the given heads set (the RPN head's conv depth, the box
    head's width, or the predictor's where no box head is given, the box head then being
    built to feed it), each head checked against the backbone's channels, the anchors a
    location and the pooled grid.

    Raises:
        ValueError: a head contradicts the config or the other head (naming both), or
            sets a field out of its range (naming the head and the field).
    """
    if heads.rpn_head is not None:
        depth = _rpn_head_depth(config, heads.rpn_head)
        config = _with_fields("rpn_head", heads.rpn_head, config, rpn={"head_conv_depth": depth})
    width = _box_head_width(config, heads.box_head)
    if heads.box_predictor is not None:
        width = _predictor_width(heads.box_head, heads.box_predictor, width)
    if width is None:
        return config
    given = heads.box_head if heads.box_head is not None else heads.box_predictor
    key = "box_head" if heads.box_head is not None else "box_predictor"
    fields = {"box_head": "two_mlp", "representation_size": width}
    return _with_fields(key, given, config, roi_heads=fields)


def _with_fields(
    key: str, head: nn.Module, config: FasterRCNNConfig, **sections: dict[str, Any]
) -> FasterRCNNConfig:
    """``config`` with the fields ``sections`` that ``head``, given as ``key``, sets; a
    field out of its range is refused naming the head (``RPNHead(24, 15,
    conv_depth=0)``), not only the field."""
    try:
        return config.replace(**sections)
    except ValueError as error:
        raise ValueError(f"FasterRCNN({key}={_described(head)}): {error}") from None


def _rpn_head_depth(config: FasterRCNNConfig, head: RPNHead) -> int:
    """The conv depth of ``head``, checked against the backbone's channels and the
    anchors a location of ``config``."""
    channels, anchors, depth = _rpn_head_args(head)
    described = _described(head)
    if channels != config.backbone.out_channels:
        raise ValueError(
            f"FasterRCNN(rpn_head={described}): its {channels} input channels contradict "
            f"the backbone's out_channels {config.backbone.out_channels}"
        )
    generator = config.anchors
    if anchors != generator.num_anchors_per_location():
        raise ValueError(
            f"FasterRCNN(rpn_head={described}): its {anchors} anchors a location contradict "
            f"the anchor generator's {generator.num_anchors_per_location()} "
            f"({len(generator.sizes[0])} sizes x {len(generator.aspect_ratios[0])} aspect "
            "ratios a level)"
        )
    return depth


def _box_head_width(config: FasterRCNNConfig, head: TwoMLPHead | None) -> int | None:
    """The representation size of ``head`` (``None`` without one), checked against the
    flattened pooled RoI of ``config``: out_channels x output_size x output_size."""
    if head is None:
        return None
    inputs, width = _box_head_args(head)
    channels, side = config.backbone.out_channels, config.roi_heads.output_size
    if inputs != channels * side * side:
        raise ValueError(
            f"FasterRCNN(box_head={_described(head)}): its {inputs} inputs contradict a "
            f"pooled RoI's {channels} x {side} x {side} = {channels * side * side} (the "
            "backbone's out_channels, box_roi_pool's output_size)"
        )
    return width


def _predictor_width(
    head: TwoMLPHead | None, predictor: FastRCNNPredictor, head_width: int | None
) -> int:
    """The predictor's input width, which a given box head's ``head_width`` must be."""
    inputs = predictor.cls_score.in_features
    if head is not None and head_width != inputs:
        raise ValueError(
            f"FasterRCNN(box_head={_described(head)}, box_predictor={_described(predictor)}):"
            f" the head's {head_width} features contradict the predictor's {inputs} inputs"
        )
    return inputs


def _rpn_head_args(head: RPNHead) -> tuple[int, int, int]:
    """``(in_channels, num_anchors, conv_depth)`` of ``head``, as its constructor takes."""
    return head.cls_logits.in_channels, head.cls_logits.out_channels, len(head.conv)


def _box_head_args(head: TwoMLPHead) -> tuple[int, int]:
    """``(in_channels, representation_size)`` of ``head``, as its constructor takes."""
    return head.fc6.in_features, head.fc6.out_features


def _predictor_args(predictor: FastRCNNPredictor) -> tuple[int, int]:
    """``(in_channels, num_classes)`` of ``predictor``, as its constructor takes."""
    return predictor.cls_score.in_features, _classes(predictor)


def _classes(predictor: FastRCNNPredictor) -> int:
    """The classes ``predictor`` scores, background included."""
    return predictor.cls_score.out_features


def _described(head: nn.Module) -> str:
    """``head`` as the constructor call that makes one of its shapes: ``RPNHead(256, 3)``,
    ``TwoMLPHead(12544, 1024)``, ``FastRCNNPredictor(1024, 3)``."""
    if isinstance(head, RPNHead):
        channels, anchors, depth = _rpn_head_args(head)
        return f"RPNHead({channels}, {anchors}{f', conv_depth={depth}' if depth != 1 else ''})"
    if isinstance(head, TwoMLPHead):
        return "TwoMLPHead({}, {})".format(*_box_head_args(head))
    assert isinstance(head, FastRCNNPredictor)
    return "FastRCNNPredictor({}, {})".format(*_predictor_args(head))


# torchvision's keyword: what its class's constructor took, read off a head of it.
_HEAD_ARGS = {
    "rpn_head": _rpn_head_args,
    "box_head": _box_head_args,
    "box_predictor": _predictor_args,
}


def _check_layout(key: str, given: nn.Module) -> None:
    """Refuse a ``given`` head whose layers are not those of the head its class makes of
    the arguments read off it: a layer replaced inside it (by another of its kind but
    shape, or by another kind), which the config could not rebuild. That head is made on
    the meta device (no memory, no random draws)."""
    try:
        args = _HEAD_ARGS[key](given)  # type: ignore[operator]
    except (AttributeError, TypeError):
        raise ValueError(
            f"FasterRCNN({key}={type(given).__name__}(...)): its layers are not those of a "
            f"{type(given).__name__} (a layer replaced, which the config cannot rebuild)"
        ) from None
    with torch.device("meta"):
        built = type(given)(*args)
    shapes = {name: tuple(value.shape) for name, value in given.state_dict().items()}
    expected = {name: tuple(value.shape) for name, value in built.state_dict().items()}
    differ = sorted(
        name for name in shapes.keys() | expected.keys() if shapes.get(name) != expected.get(name)
    )
    if differ:
        raise ValueError(
            f"FasterRCNN({key}={_described(built)}): its {differ[0]} is "
            f"{shapes.get(differ[0])}, not the {expected.get(differ[0])} of that head (a "
            "layer replaced, which the config cannot rebuild)"
        )
