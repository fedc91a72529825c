"""torchvision's head modules given to ``FasterRCNN(backbone, ...)`` or a preset, as
config fields.

torchvision's constructor takes the RPN head, the box head and the box predictor as modules
(``rpn_head=RPNHead(256, 3)``, ``box_head=TwoMLPHead(256 * 7 * 7, 1024)``,
``box_predictor=FastRCNNPredictor(1024, 3)``), and its builders pass them on; the
presets of :mod:`faster_rcnn.models` take them as well. This package's own classes of
them are taken (the box head a :class:`TwoMLPHead`, a :class:`VGG16BoxHead` or a
:class:`ConvFCHead`, each as ``config.roi_heads.box_head`` builds it): the config's
fields are read off their shapes, so that the config (and a model file) describes the
network, and the model runs the given modules, weights and all. A module that contradicts
the rest of the model, or that the config cannot describe, is refused in one line naming
both sides.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch
from torch import nn

from .config import MAX_CLASSES, FasterRCNNConfig
from .roi_heads.box_head import ConvFCHead, TwoMLPHead, VGG16BoxHead
from .roi_heads.predictor import FastRCNNPredictor
from .rpn.head import RPNHead

BoxHead = TwoMLPHead | VGG16BoxHead | ConvFCHead
# The box head class: its name in config.roi_heads.box_head.
BOX_HEAD_NAMES: dict[type[nn.Module], str] = {
    TwoMLPHead: "two_mlp",
    VGG16BoxHead: "vgg16",
    ConvFCHead: "conv_fc",
}
# torchvision's keyword: the classes of this package taken there.
HEAD_TYPES: dict[str, tuple[type[nn.Module], ...]] = {
    "rpn_head": (RPNHead,),
    "box_head": tuple(BOX_HEAD_NAMES),
    "box_predictor": (FastRCNNPredictor,),
}
# What config.roi_heads.box_head builds, which a given box head must be.
_CONV_FC_CONVS = 4
_VGG16_DROPOUT = 0.5


class GivenHeads(NamedTuple):
    """The head modules given to torchvision's constructor form; ``None`` where the
    config builds a fresh one."""

    rpn_head: RPNHead | None = None
    box_head: BoxHead | None = None
    box_predictor: FastRCNNPredictor | None = None


def take_given_heads(options: dict[str, Any], caller: str) -> GivenHeads:
    """Pop from ``options`` the head keywords whose value is ``None`` or a module of
    exactly a class :data:`HEAD_TYPES` names; a module of another class (a subclass
    too, which the config could not rebuild) stays, to be refused there. ``caller``
    (``"FasterRCNN"``, a preset's name) begins a refusal."""
    taken = {
        key: options.pop(key)
        for key, head_type in HEAD_TYPES.items()
        if key in options and (options[key] is None or type(options[key]) in head_type)
    }
    heads = GivenHeads(**taken)
    _check_rebuildable(heads, caller)
    return heads


def class_count(num_classes: int | None, predictor: FastRCNNPredictor | None, caller: str) -> int:
    """The model's classes (background included), by torchvision's rule: ``num_classes``
    without a ``box_predictor``, the predictor's with one (``num_classes`` then ``None``).
    Only the constructor is given neither (a preset has its own class count).

    Raises:
        ValueError: both or neither given, or the predictor's classes out of the config's
            range (naming the predictor).
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
            f"{caller}(num_classes={num_classes}, box_predictor={described}): num_classes "
            f"must be None when box_predictor is given (its {_classes(predictor)} classes "
            "are the model's), as torchvision's FasterRCNN requires"
        )
    classes = _classes(predictor)
    if not 2 <= classes <= MAX_CLASSES:
        raise ValueError(
            f"{caller}(box_predictor={described}): its class count {classes} (background "
            f"included) is the model's num_classes, which must be in [2, {MAX_CLASSES}]"
        )
    return classes


def with_given_heads(config: FasterRCNNConfig, heads: GivenHeads, caller: str) -> FasterRCNNConfig:
    """``config`` with the fields the given heads set (the RPN head's conv depth, the box
    head's kind and width, or the predictor's width where no box head is given, the box
    head of the config's kind then being built to feed it), each head checked against the
    backbone's channels, the anchors a location and the pooled grid.

    Raises:
        ValueError: a head contradicts the config or the other head (naming both), or
            sets a field out of its range (naming the head and the field).
    """
    if heads.rpn_head is not None:
        depth = _rpn_head_depth(config, heads.rpn_head, caller)
        rpn = {"head_conv_depth": depth}
        config = _with_fields(caller, "rpn_head", heads.rpn_head, config, rpn=rpn)
    width = None
    if heads.box_head is not None:
        width = _box_head_width(config, heads.box_head, caller)
        fields = {"box_head": BOX_HEAD_NAMES[type(heads.box_head)], "representation_size": width}
        config = _with_fields(caller, "box_head", heads.box_head, config, roi_heads=fields)
    if heads.box_predictor is None:
        return config
    width = _predictor_width(heads.box_head, heads.box_predictor, width, caller)
    fields = {"representation_size": width}
    return _with_fields(caller, "box_predictor", heads.box_predictor, config, roi_heads=fields)


def replaced_heads_config(config: FasterRCNNConfig, heads: GivenHeads) -> FasterRCNNConfig | None:
    """``config`` with the fields that the heads of a built model set
    (:func:`with_given_heads`), as they are after ``model.rpn.head = RPNHead(...)`` or
    ``model.roi_heads.box_head = TwoMLPHead(...)``; ``None`` where a config does not
    describe them: a head of another class or layers (:func:`_check_rebuildable`), or
    one that contradicts the rest of the model or the other heads."""
    try:
        _check_rebuildable(heads, "model")
        return with_given_heads(config, heads, "model")
    except ValueError:
        return None


def check_described(config: FasterRCNNConfig, heads: GivenHeads) -> None:
    """Refuse ``heads`` given with ``config`` (``FasterRCNN(backbone, config,
    heads=...)``) that the config does not describe: a head of another class or layers
    than any config rebuilds (checked as the keywords check them), a predictor of
    another class count than ``config.num_classes``, or a head whose shapes give other
    fields than the config's (:func:`with_given_heads`), so that the config (and a model
    file) would not rebuild the network.

    Raises:
        ValueError: naming the head (``FasterRCNN(box_predictor=...)``, as the heads'
            keywords are named), what it gives and what the config says; or a head no
            config rebuilds, as the keywords refuse it (:func:`_check_rebuildable`).
    """
    _check_rebuildable(heads, "FasterRCNN")
    predictor = heads.box_predictor
    if predictor is not None and _classes(predictor) != config.num_classes:
        raise ValueError(
            f"FasterRCNN(box_predictor={_described(predictor)}): its {_classes(predictor)} "
            f"classes contradict config.num_classes {config.num_classes}"
        )
    described = with_given_heads(config, heads, "FasterRCNN")
    for (section, name), keys in _HEAD_FIELDS.items():
        given, said = (getattr(getattr(c, section), name) for c in (described, config))
        if given != said:
            key = next(key for key in keys if getattr(heads, key) is not None)
            raise ValueError(
                f"FasterRCNN({key}={_described(getattr(heads, key))}): it gives {section}.{name}"
                f" {given!r}, config.{section}.{name} is {said!r}"
            )


# The config fields that given heads set: the heads (keywords) that set each.
_HEAD_FIELDS = {
    ("rpn", "head_conv_depth"): ("rpn_head",),
    ("roi_heads", "box_head"): ("box_head",),
    ("roi_heads", "representation_size"): ("box_head", "box_predictor"),
}


def _with_fields(
    caller: str, key: str, head: nn.Module, config: FasterRCNNConfig, **sections: dict[str, Any]
) -> FasterRCNNConfig:
    """``config`` with the fields ``sections`` that ``head``, given as ``key``, sets; a
    field out of its range is refused naming the head (``RPNHead(24, 15,
    conv_depth=0)``), not only the field."""
    try:
        return config.replace(**sections)
    except ValueError as error:
        raise ValueError(f"{caller}({key}={_described(head)}): {error}") from None


def _rpn_head_depth(config: FasterRCNNConfig, head: RPNHead, caller: str) -> int:
    """The conv depth of ``head``, checked against the backbone's channels and the
    anchors a location of ``config``."""
    channels, anchors, depth = _rpn_head_args(head)
    described = _described(head)
    if channels != config.backbone.out_channels:
        raise ValueError(
            f"{caller}(rpn_head={described}): its {channels} input channels contradict "
            f"the backbone's out_channels {config.backbone.out_channels}"
        )
    generator = config.anchors
    if anchors != generator.num_anchors_per_location():
        raise ValueError(
            f"{caller}(rpn_head={described}): its {anchors} anchors a location contradict "
            f"the anchor generator's {generator.num_anchors_per_location()} "
            f"({len(generator.sizes[0])} sizes x {len(generator.aspect_ratios[0])} aspect "
            "ratios a level)"
        )
    return depth


def _box_head_width(config: FasterRCNNConfig, head: BoxHead, caller: str) -> int:
    """The representation size of ``head``, checked against the pooled RoI of ``config``
    (out_channels x output_size x output_size) and what ``config.roi_heads.box_head``
    builds: a :class:`ConvFCHead` of 4 convs, a :class:`VGG16BoxHead` dropping 0.5."""
    if isinstance(head, ConvFCHead):
        return _conv_fc_width(config, head, caller)
    inputs, width, *dropout = _HEAD_ARGS[type(head)](head)
    channels, side = config.backbone.out_channels, config.roi_heads.output_size
    if inputs != channels * side * side:
        raise ValueError(
            f"{caller}(box_head={_described(head)}): its {inputs} inputs contradict a "
            f"pooled RoI's {channels} x {side} x {side} = {channels * side * side} (the "
            "backbone's out_channels, the RoI pooler's output_size)"
        )
    if dropout and dropout[0] != _VGG16_DROPOUT:
        raise ValueError(
            f"{caller}(box_head={_described(head)}): config.roi_heads.box_head 'vgg16' "
            f"drops {_VGG16_DROPOUT} (the paper's), so a head dropping {dropout[0]} cannot "
            "be rebuilt from the config"
        )
    return width


def _conv_fc_width(config: FasterRCNNConfig, head: ConvFCHead, caller: str) -> int:
    """The representation size of ``head``, checked against the backbone's channels, the
    pooled grid and the 4 convs of ``config.roi_heads.box_head = 'conv_fc'``."""
    channels, side, width, convs = _conv_fc_args(head)
    described = _described(head)
    if convs != _CONV_FC_CONVS:
        raise ValueError(
            f"{caller}(box_head={described}): config.roi_heads.box_head 'conv_fc' has "
            f"{_CONV_FC_CONVS} convs (torchvision's FastRCNNConvFCHead), so a head of "
            f"{convs} cannot be rebuilt from the config"
        )
    if channels != config.backbone.out_channels:
        raise ValueError(
            f"{caller}(box_head={described}): its {channels} channels contradict the "
            f"backbone's out_channels {config.backbone.out_channels}"
        )
    if side != config.roi_heads.output_size:
        raise ValueError(
            f"{caller}(box_head={described}): its {side} x {side} RoIs contradict "
            f"the RoI pooler's output_size {config.roi_heads.output_size}"
        )
    return width


def _predictor_width(
    head: BoxHead | None, predictor: FastRCNNPredictor, head_width: int | None, caller: str
) -> int:
    """The predictor's input width, which a given box head's ``head_width`` must be."""
    inputs = predictor.cls_score.in_features
    if head is not None and head_width != inputs:
        raise ValueError(
            f"{caller}(box_head={_described(head)}, box_predictor={_described(predictor)}):"
            f" the head's {head_width} features contradict the predictor's {inputs} inputs"
        )
    return inputs


def _rpn_head_args(head: RPNHead) -> tuple[int, int, int]:
    """``(in_channels, num_anchors, conv_depth)`` of ``head``, as its constructor takes."""
    return head.cls_logits.in_channels, head.cls_logits.out_channels, len(head.conv)


def _box_head_args(head: TwoMLPHead) -> tuple[int, int]:
    """``(in_channels, representation_size)`` of ``head``, as its constructor takes."""
    return head.fc6.in_features, head.fc6.out_features


def _vgg16_args(head: VGG16BoxHead) -> tuple[int, int, float]:
    """``(in_channels, representation_size, dropout)`` of ``head``, as its constructor
    takes."""
    return head.fc6.in_features, head.fc6.out_features, head.dropout.p


def _conv_fc_args(head: ConvFCHead) -> tuple[int, int, int, int]:
    """``(in_channels, output_size, representation_size, num_convs)`` of ``head``, as its
    constructor takes: the convs, then a flatten, the fully connected layer and a ReLU.
    Without convs the layer's inputs do not tell the channels from the grid: those the
    head was made with are taken (its layer then checked against them)."""
    convs = len(head) - 3
    layer = head[convs + 1]
    if not convs:
        return head.in_channels, head.output_size, layer.out_features, convs
    channels = head[0][0].in_channels
    side = math.isqrt(layer.in_features // channels)
    return channels, side, layer.out_features, convs


def _predictor_args(predictor: FastRCNNPredictor) -> tuple[int, int]:
    """``(in_channels, num_classes)`` of ``predictor``, as its constructor takes."""
    return predictor.cls_score.in_features, _classes(predictor)


def _classes(predictor: FastRCNNPredictor) -> int:
    """The classes ``predictor`` scores, background included."""
    return predictor.cls_score.out_features


# A head's class: what its constructor took, read off a head of it.
_HEAD_ARGS: dict[type[nn.Module], Any] = {
    RPNHead: _rpn_head_args,
    TwoMLPHead: _box_head_args,
    VGG16BoxHead: _vgg16_args,
    ConvFCHead: _conv_fc_args,
    FastRCNNPredictor: _predictor_args,
}
# A head's class: its constructor's last argument, shown as a keyword unless the default.
_LAST_KEYWORD = {
    RPNHead: ("conv_depth", 1),
    VGG16BoxHead: ("dropout", _VGG16_DROPOUT),
    ConvFCHead: ("num_convs", _CONV_FC_CONVS),
}


def _described(head: nn.Module) -> str:
    """``head`` as the constructor call that makes one of its shapes: ``RPNHead(256, 3)``,
    ``TwoMLPHead(12544, 1024)``, ``ConvFCHead(256, 7, 1024, num_convs=2)``,
    ``FastRCNNPredictor(1024, 3)``."""
    args = [str(arg) for arg in _HEAD_ARGS[type(head)](head)]
    if type(head) in _LAST_KEYWORD:
        name, default = _LAST_KEYWORD[type(head)]
        last = args.pop()
        args += [] if last == str(default) else [f"{name}={last}"]
    return f"{type(head).__name__}({', '.join(args)})"


def _check_rebuildable(heads: GivenHeads, caller: str) -> None:
    """Refuse a head of ``heads`` that no config rebuilds: one of another class than
    :data:`HEAD_TYPES` names for its keyword (a subclass too), or whose layers are not
    those its class makes (:func:`_check_layout`)."""
    for key, head in heads._asdict().items():
        if head is None:
            continue
        if type(head) not in HEAD_TYPES[key]:
            *others, last = (head_type.__name__ for head_type in HEAD_TYPES[key])
            classes = f"{', '.join(others)} or {last}" if others else last
            raise ValueError(
                f"{caller}({key}={type(head).__name__}(...)): a config rebuilds only "
                f"{classes} there, not {type(head).__name__}"
            )
        _check_layout(key, head, caller)


def _check_layout(key: str, given: nn.Module, caller: str) -> None:
    """Refuse a ``given`` head whose layers are not those of the head its class makes of
    the arguments read off it: a layer replaced inside it (by another of its kind but
    shape or settings, a dilated conv, a batch norm of another eps, or by another kind,
    another activation) or added to it, which the config could not rebuild. The weights'
    shapes are compared first, then each layer's class and settings. That head is made
    on the meta device (no memory, no random draws)."""
    try:
        args = _HEAD_ARGS[type(given)](given)
    except (AttributeError, TypeError, IndexError):
        raise ValueError(
            f"{caller}({key}={type(given).__name__}(...)): its layers are not those of a "
            f"{type(given).__name__} (a layer replaced, which the config cannot rebuild)"
        ) from None
    with torch.device("meta"):
        built = type(given)(*args)
    difference = layout_difference(given, built, shapes_first=True)
    if difference is not None:
        name, part, expected = difference
        raise ValueError(
            f"{caller}({key}={_described(built)}): its {name} is {part}, not the "
            f"{expected} of that head (a layer replaced, which the config cannot rebuild)"
        )


def layout_difference(
    given: nn.Module, built: nn.Module, shapes_first: bool = False
) -> tuple[str, object, object] | None:
    """The first part (in name order) where ``given`` differs from ``built``: its name
    (a module's, or a weight's or buffer's state-dict key), what ``given`` has there and
    what ``built`` has (``None`` for nothing); ``None`` where they agree. The layers (each
    module's class and settings) are compared, and the weights' and buffers' shapes;
    ``shapes_first`` compares the shapes first."""
    parts = (_tensor_shapes, _layers)
    for parts_of in parts if shapes_first else parts[::-1]:
        have, expected = parts_of(given), parts_of(built)
        differ = sorted(
            name for name in have.keys() | expected.keys() if have.get(name) != expected.get(name)
        )
        if differ:
            return differ[0], have.get(differ[0]), expected.get(differ[0])
    return None


def _tensor_shapes(head: nn.Module) -> dict[str, tuple[int, ...]]:
    """Each weight and buffer of ``head`` (its state-dict key): its shape."""
    return {name: tuple(value.shape) for name, value in head.state_dict().items()}


class _Layer(NamedTuple):
    """A module's class and settings; shown as ``ReLU(inplace=True)``, compared with the
    class itself (torchvision's ``MultiScaleRoIAlign`` is not this package's, though
    they share a name)."""

    kind: type[nn.Module]
    settings: str

    def __str__(self) -> str:
        return f"{self.kind.__name__}({self.settings})"


def _layers(head: nn.Module) -> dict[str, _Layer]:
    """Each module inside ``head``: its class and settings, ``ReLU(inplace=True)``,
    ``Conv2d(24, 24, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))``."""
    return {
        name: _Layer(type(module), module.extra_repr())
        for name, module in head.named_modules()
        if name
    }
