"""mmfir.runtime: the deployable, torch-free core (numpy, onnxruntime, PIL; OpenVINO, TensorRT optional).

Network specs and their graph, the bundle, backends (TensorRT engine build and cache included),
the pipeline with preprocessing and tiling, image I/O, errors, file plumbing, and Triton serving.
It imports nothing of ``mmfir.models``, ``mmfir.export``, ``mmfir.measure`` or ``mmfir.cli`` (checked
by the import-linter contracts in pyproject.toml).
"""
from . import cpu as _cpu

_cpu.apply_isa_cap(strict=False)  # MMFIR_CPU_ISA, before numpy, torch or OpenVINO start (runtime/cpu.py)

from .errors import (BackendUnavailable, BundleError, CheckpointError, ConfigError, ImageError, MmfirError,  # noqa: E402
                     ValidationError)
from .spec import CONTRACTS, ENCODER, RESTORER, Graph, NetworkSpec, Precision, TensorSpec, network_specs  # noqa: E402

__all__ = ["BackendUnavailable", "BundleError", "CONTRACTS", "CheckpointError", "ConfigError", "ENCODER", "Graph",
           "ImageError", "MmfirError", "NetworkSpec", "Precision", "RESTORER", "TensorSpec", "ValidationError",
           "network_specs"]
