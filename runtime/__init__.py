"""mmfir.runtime: torch-free inference (numpy, onnxruntime, PIL). Heavy parts are imported lazily."""
from .errors import (BackendUnavailable, BundleError, CheckpointError, ConfigError, ImageError, MmfirError,
                     ValidationError)
from .spec import CONTRACTS, ENCODER, RESTORER, NetworkSpec, Precision, TensorSpec, network_specs

__all__ = ["BackendUnavailable", "BundleError", "CONTRACTS", "CheckpointError", "ConfigError", "ENCODER",
           "ImageError", "MmfirError", "NetworkSpec", "Precision", "RESTORER", "TensorSpec", "ValidationError",
           "network_specs"]
