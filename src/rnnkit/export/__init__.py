"""Export trained models to other runtimes: ``export_onnx(model, path)`` (also ``model.export_onnx(path)``)."""

from .onnx_export import UnsupportedForExport as UnsupportedForExport
from .onnx_export import export_onnx as export_onnx

__all__ = ["UnsupportedForExport", "export_onnx"]
