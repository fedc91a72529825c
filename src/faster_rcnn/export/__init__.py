"""Getting a trained detector out of Python: a fixed-shape graph of the detector, its ONNX
export and an ONNX Runtime detector (the ONNX parts need the optional ``onnx`` extra)."""

from .graph import DetectionGraph, prepare_graph_inputs
from .onnx_export import export_onnx
from .onnx_runtime import OnnxDetector

__all__ = ["DetectionGraph", "OnnxDetector", "export_onnx", "prepare_graph_inputs"]
