"""Run an exported detector with ONNX Runtime, as :class:`~faster_rcnn.model.FasterRCNN`
runs in eval mode: a list of images in, per image ``{"boxes", "labels", "scores"}`` out."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from .. import file_checksum
from ..config import FasterRCNNConfig
from ..data.dataset import as_float_image
from ..train.checkpoint import MODEL_FILE
from ..transform import ImageTransform
from ..validation import rgb_image_list, validate_image_sizes, validate_images
from .graph import GRAPH_INPUTS, GRAPH_OUTPUTS, prepare_graph_inputs
from .onnx_export import CONFIG_KEY, FORMAT_KEY, ONNX_FORMAT, checksum_digits, require_onnx


class OnnxDetector:
    """An ONNX file written by :func:`~faster_rcnn.export.export_onnx`, on the CPU.

    Args:
        path: the ``.onnx`` file.
        threads: ONNX Runtime's intra-op threads (default: its own choice).

    Raises:
        ValueError: ``onnxruntime`` is missing, or the file is not such an export, or is
            damaged (its bytes fail the checksum written with them).
    """

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        require_onnx("onnxruntime")
        import onnxruntime

        _check_onnx_file(Path(path))
        if Path(path).is_file():  # ONNX Runtime names a missing one
            file_checksum.check_checksum(
                Path(path), checksum_digits, remedy="export its model file again"
            )
        options = onnxruntime.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
        try:
            self.session = onnxruntime.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:  # ONNX Runtime raises its own untyped errors
            if Path(path).suffix.lower() == ".safetensors":
                raise ValueError(
                    f"{path} is a model file, not an ONNX export: `predict --model` runs it, "
                    "`export --model` writes its ONNX file"
                ) from None
            raise ValueError(f"{path}: not an ONNX model ONNX Runtime can load ({error})") from None
        metadata = self.session.get_modelmeta().custom_metadata_map
        if metadata.get(FORMAT_KEY) != ONNX_FORMAT:
            raise ValueError(f"{path}: not a faster-rcnn ONNX export (no {ONNX_FORMAT} metadata)")
        self.config = FasterRCNNConfig.from_json(metadata[CONFIG_KEY])
        self.transform = ImageTransform(self.config.transform).eval()

    def __call__(self, images: list[Tensor] | Tensor) -> list[dict[str, Tensor]]:
        """Detect objects.

        Args:
            images: per image, ``float[3, H_i, W_i]`` in 0..1 (or grey ``float[1, H_i,
                W_i]``), or ``uint8`` levels, as the model takes them; sizes may differ. A
                ``float[N, 3, H, W]`` batch tensor is its ``N`` images.

        Returns:
            Per image ``{"boxes": (D, 4), "labels": (D,), "scores": (D,)}`` in the image's
            pixels, by decreasing score.
        """
        images = rgb_image_list(images)
        validate_images(images)
        validate_image_sizes(images, self.transform.min_size, self.transform.max_size)
        # The graph takes float32: uint8 levels scaled as the model scales them.
        floats = [as_float_image(image).float().cpu() for image in images]
        inputs = prepare_graph_inputs(self.transform, floats)
        feeds = {name: tensor.numpy() for name, tensor in zip(GRAPH_INPUTS, inputs, strict=True)}
        boxes, scores, labels = (
            torch.from_numpy(output) for output in self.session.run(list(GRAPH_OUTPUTS), feeds)
        )
        found = labels > 0
        return [
            {"boxes": b[f], "labels": lab[f], "scores": s[f]}
            for b, s, lab, f in zip(boxes, scores, labels, found, strict=True)
        ]


def _check_onnx_file(path: Path) -> None:
    """Refuse a folder, naming the export in it (a run's ``model.onnx``): ONNX Runtime
    would call it a file it cannot parse."""
    if not path.is_dir():
        return
    inside = path / Path(MODEL_FILE).with_suffix(".onnx")
    if inside.is_file():
        raise ValueError(f"{path} is a folder: pass the ONNX file in it, {inside}")
    raise ValueError(f"{path} is a folder: pass an ONNX file (`faster-rcnn export` writes one)")
