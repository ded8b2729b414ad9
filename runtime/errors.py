"""Every exception type of mmfir, in one place.

Library code raises these; the command line prints ``str(err)`` as one line and exits with
``err.exit_code`` (2 for a problem the user can fix, 3 for a failed accuracy check). Each type is
chosen where the problem is found, so no caller needs to read message text to tell them apart.
"""
from __future__ import annotations

from pathlib import Path


class MmfirError(Exception):
    """Base class: a problem the user can fix. ``str(err)`` is a one-line message."""

    exit_code = 2


class UsageError(MmfirError):
    """An option or argument has a value that cannot work (unknown name, negative size, ...)."""


class ConfigError(MmfirError):
    """A model config is malformed (unknown key, bad value)."""


class CheckpointError(MmfirError):
    """A checkpoint is missing, corrupt, or does not match the architecture."""


class BundleError(MmfirError):
    """A bundle is missing files, has stale hashes, or was not validated."""


class BackendUnavailable(MmfirError):
    """A requested backend (provider, library, device, precision) cannot run here."""


class FeedError(MmfirError):
    """A network was given inputs whose names or shapes do not match its spec."""


class ImageError(MmfirError):
    """An input image cannot be decoded, is out of bounds, or cannot be written."""


class TileError(ImageError):
    """A tile (or whole image) lies outside what the network or its engine profile accepts."""


class ExportError(MmfirError):
    """The export itself failed (exporter error, unwritable output, bad option, invalid graph)."""


class ServerError(MmfirError):
    """The Triton server cannot be started or reached, or is not ready in time."""


class ServerRejected(ServerError):
    """The server answered one request with an error: that request failed, the server is fine."""


class ValidationError(MmfirError):
    """Numeric comparison against the reference failed the accuracy contract."""

    exit_code = 3

    def __init__(self, failures):
        self.failures = list(failures)
        lines = "; ".join(str(f) for f in self.failures)
        super().__init__(f"{len(self.failures)} accuracy check(s) failed: {lines}")


class ExportValidationError(ValidationError):
    """Export validation failed; the bundle was written marked invalid at ``path``."""

    def __init__(self, failures, path: Path):
        super().__init__(failures)
        self.path = path
        self.args = (f"{self.args[0]}; bundle written to {path} marked invalid (inspect it; it will not be served)",)
