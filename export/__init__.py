"""mmfir.export: torch -> ONNX -> FP16 ONNX bundles with validation, and the torch reference backends
(needs mmfir[export]). Its error types live with all others in ``mmfir.runtime.errors`` and are re-exported."""
from mmfir.runtime.errors import ExportError, ExportValidationError

from .exporter import DEFAULT_OPSET, OPSETS, export_bundle

__all__ = ["DEFAULT_OPSET", "OPSETS", "ExportError", "ExportValidationError", "export_bundle"]
