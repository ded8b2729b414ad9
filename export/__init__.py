"""mmfir.export: torch -> ONNX -> FP16 ONNX bundles with validation (needs mmfir[export])."""
from .exporter import DEFAULT_OPSET, OPSETS, ExportError, ExportValidationError, export_bundle

__all__ = ["DEFAULT_OPSET", "OPSETS", "ExportError", "ExportValidationError", "export_bundle"]
