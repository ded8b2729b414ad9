"""Exception types of mmfir. Library code raises these; the CLI prints one line and exits."""


class MmfirError(Exception):
    """Base class: a problem the user can fix. ``str(err)`` is a one-line message."""

    exit_code = 2


class ConfigError(MmfirError):
    """A model config is malformed (unknown key, bad value)."""


class CheckpointError(MmfirError):
    """A checkpoint is missing, corrupt, or does not match the architecture."""


class BundleError(MmfirError):
    """A bundle is missing files, has stale hashes, or was not validated."""


class BackendUnavailable(MmfirError):
    """A requested backend (provider, library, device) cannot run here."""


class ImageError(MmfirError):
    """An input image cannot be decoded or is out of bounds."""


class ValidationError(MmfirError):
    """Numeric comparison against the reference failed the accuracy contract."""

    exit_code = 3

    def __init__(self, failures):
        self.failures = list(failures)
        lines = "; ".join(str(f) for f in self.failures)
        super().__init__(f"{len(self.failures)} accuracy check(s) failed: {lines}")
