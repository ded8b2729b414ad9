"""Exception types of the export (MmfirError subclasses: one-line messages, non-zero CLI exit)."""
from __future__ import annotations

from pathlib import Path

from mmfir.runtime.errors import MmfirError, ValidationError


class ExportError(MmfirError):
    """The export itself failed (exporter error, unwritable output, bad option, invalid graph)."""


class ExportValidationError(ValidationError):
    """Validation failed; the bundle was written marked invalid at ``path``."""

    def __init__(self, failures, path: Path):
        super().__init__(failures)
        self.path = path
        self.args = (f"{self.args[0]}; bundle written to {path} marked invalid (inspect it; it will not be served)",)
