"""The detector as an ONNX model: any batch size and image size, NMS and RoI pooling as
ONNX's own operators (the optional ``onnx`` extra: ``onnx``, ``onnxscript``,
``onnxruntime``).

The ONNX model is :class:`~faster_rcnn.export.graph.DetectionGraph`: inputs ``images``
``(N, 3, H, W)`` float32 in 0..1 (each image resized as the model's transform does, top
left, any padding), ``image_sizes`` and ``original_sizes`` ``(N, 2)`` int64 (height,
width); outputs ``boxes`` ``(N, D, 4)`` in original pixels, ``scores`` ``(N, D)`` and
``labels`` ``(N, D)`` int64, label 0 after each image's detections. The model's config
travels in the file's metadata, so :class:`~faster_rcnn.export.onnx_runtime.OnnxDetector`
resizes as the model did and names the classes, and its checksum
(:mod:`~faster_rcnn.file_checksum`) lets it refuse a damaged copy.
"""

from __future__ import annotations

import importlib
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import torch
from torch import Tensor, nn

from .. import file_checksum
from ..model import FasterRCNN
from ..train.checkpoint import atomic_write
from .graph import GRAPH_INPUTS, GRAPH_OUTPUTS, DetectionGraph, prepare_graph_inputs

ONNX_FORMAT = "faster-rcnn-onnx/1"
FORMAT_KEY = "faster_rcnn.format"
CONFIG_KEY = "faster_rcnn.config"
CHECKSUM_KEY = "faster_rcnn.crc32"
# The checksum's entry as protobuf writes it (a StringStringEntryProto of the model's
# metadata_props), up to its digits: the key's field (tag 0x0a, length, the key), then the
# value's (tag 0x12, length 8).
_CHECKSUM_ENTRY = bytes([0x0A, len(CHECKSUM_KEY)]) + CHECKSUM_KEY.encode() + b"\x12\x08"
# RoiAlign's coordinate_transformation_mode (torchvision's aligned=False) needs opset 16.
OPSET = 18
ONNX_EXTRA = "pip install -e '.[onnx]' (onnx, onnxscript, onnxruntime)"


def require_onnx(*modules: str) -> None:
    """Fail with the install command when a module of the ``onnx`` extra is missing, or
    is there but does not import (a broken install: a shared library or a module it
    needs missing), saying why. The first such module is named: the others may fail
    only for it (onnxscript imports onnx)."""
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as error:
            why = "" if error.name == name else f" ({error})"
            raise ValueError(f"ONNX support needs {name}{why}: {ONNX_EXTRA}") from None


def export_onnx(model: FasterRCNN, path: str | Path, opset: int = OPSET) -> Path:
    """Write ``model`` (on the CPU, float32) to the ONNX file ``path``.

    The graph is traced once, on two images of different sizes, with the batch size and
    the image size symbolic (named ``batch``, ``height`` and ``width`` in the file); NMS
    and RoI pooling are exported as operators, never traced, so the file gives the eager
    model's detections for every input. The graph is the eval-mode model; ``model`` is
    left in the mode it was in (each module's own), so a training loop can export a
    snapshot and go on training.

    Returns:
        ``path``.

    Raises:
        ValueError: the ``onnx`` extra is missing, or the model is not a float32 CPU model.
    """
    require_onnx("onnx", "onnxscript")
    from .onnx_translations import translation_table

    if next(model.parameters()).device.type != "cpu":
        raise ValueError("export a CPU model (model.cpu())")
    dynamic = torch.export.Dim.DYNAMIC
    with _modes_kept(model), torch.no_grad(), _quiet_exporter():
        graph = DetectionGraph(model)  # puts the model in eval mode
        example = prepare_graph_inputs(
            model.transform, _example_images(model.transform.min_size[-1])
        )
        program = torch.onnx.export(
            graph,
            example,
            input_names=list(GRAPH_INPUTS),
            output_names=list(GRAPH_OUTPUTS),
            dynamic_shapes=({0: dynamic, 2: dynamic, 3: dynamic}, {0: dynamic}, {0: dynamic}),
            custom_translation_table=translation_table(),
            opset_version=opset,
            verbose=False,
        )
    _name_dimensions(program)
    program.model.metadata_props[FORMAT_KEY] = ONNX_FORMAT
    program.model.metadata_props[CONFIG_KEY] = model.config.to_json()
    # Filled in once the file is written.
    program.model.metadata_props[CHECKSUM_KEY] = file_checksum.PLACEHOLDER
    path = Path(path)
    # Written aside and renamed once its checksum is in: an export stopped half-way
    # leaves no file that would be run, or refused as damaged, and keeps an earlier one.
    with atomic_write(path) as temporary:
        program.save(str(temporary))
        file_checksum.write_checksum(temporary, checksum_digits)
    return path


def _name_dimensions(program: torch.onnx.ONNXProgram) -> None:
    """Name the graph's dynamic dimensions ``batch``, ``height`` and ``width`` (those of
    ``images``, also where the sizes inputs, the outputs and the shapes inside the graph
    have them), as Netron and ONNX Runtime's ``get_inputs()`` show them, in place of
    torch.export's symbols (``s34``)."""
    batch, _, height, width = program.model.graph.inputs[0].shape
    program.rename_axes({batch: "batch", height: "height", width: "width"})


def checksum_digits(file: BinaryIO) -> list[int]:
    """Where the digits of the ``CHECKSUM_KEY`` entries of the ONNX ``file`` lie (the
    model's metadata, after its graph: the whole file is read)."""
    return file_checksum.digits_after(file, _CHECKSUM_ENTRY)


def _example_images(min_size: int) -> list[Tensor]:
    """Two images of different widths: their padded batch is wider than high, and no
    dimension is 0, 1 or equal to another, so the trace ties no dimension to a constant
    or to another dimension."""
    generator = torch.Generator().manual_seed(0)
    sizes = ((min_size * 3 // 4, min_size), (min_size * 5 // 6, min_size))
    return [torch.rand(3, *size, generator=generator) for size in sizes]


@contextmanager
def _modes_kept(model: nn.Module) -> Iterator[None]:
    """Give every module of ``model`` back its training flag on exit."""
    modes = [(module, module.training) for module in model.modules()]
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


@contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Keep the exporter's progress lines and its notes on torchvision's operators (which
    the graph does not use) off the console."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            # torch's own deprecation notes on its internals, nothing the user can act on.
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        logger.setLevel(level)
