"""`trt`: native TensorRT engines from the bundle's ``engines/``, run through Polygraphy's TrtRunner.

At start the engine of each network is looked up in the manifest and checked against this machine
(TensorRT version, GPU, compute capability), the ONNX hash, the precision, the profile and the plan's
hash (``runtime.engine_cache``). A stale or missing engine is rebuilt (``runtime.engine_build``,
imported only then) or, with ``no_build=True``, refused with a one-line error. Inputs and outputs are
bound by the network spec's names; input shapes are set per call and checked against the engine's
profile first. TrtRunner keeps its device buffers across calls (reallocating only when a tensor
grows) and runs on its own CUDA stream. Nothing here imports tensorrt at module import.
"""
from __future__ import annotations

import threading

import numpy as np

from ..engine_cache import (DeviceFacts, Profile, check_engine, engine_key, polygraphy_logging, profile_violation,
                            profiles_from_options, stale_message, trt_status, wanted_profile)
from ..errors import BundleError
from ..progress import step_log
from ..spec import Precision
from .base import Backend


class TrtBackend(Backend):
    name = "trt"
    precisions = (Precision.FP16, Precision.FP32, Precision.INT8)
    priority = 50

    def __init__(self, bundle, precision=Precision.FP16, threads=None, no_build: bool = False,
                 profile: list[str] | None = None, workspace: float | None = None, facts: DeviceFacts | None = None,
                 verbose: bool = False, **options):
        super().__init__(bundle, precision, threads, **options)
        self.no_build, self.workspace, self.verbose = no_build, workspace, verbose
        self.facts = facts or DeviceFacts.detect()
        self._wanted = profiles_from_options(self.specs, profile) if profile else {}
        self._runners: dict[str, object] = {}
        self._bounds: dict[str, Profile] = {}
        self._dtypes: dict[str, dict[str, np.dtype]] = {}
        self._locks = {network: threading.Lock() for network in self.specs}  # a runner's buffers serve one call at a time
        try:
            for network in self.specs:
                self._activate(network, self._engine_path(network))
        except BaseException:
            self.close()
            raise

    @classmethod
    def available(cls) -> tuple[bool, str]:
        return trt_status()

    # --- engines ----------------------------------------------------------------------------------
    def _engine_path(self, network: str):
        profile = wanted_profile(self.bundle, network, self.precision, self._wanted.get(network))
        key = engine_key(self.bundle, network, self.precision, self.facts, profile)
        status = check_engine(self.bundle, key)
        if status.fresh:
            return status.path
        if self.no_build:
            raise BundleError(stale_message(self.bundle, status))
        from ..engine_build import build_engine  # only when an engine must be (re)built

        step_log(f"building the {network} {self.precision.value} TensorRT engine ({status.reason})")
        path, _ = build_engine(self.bundle, key, profile, self.facts, self.workspace, self.verbose)
        return path

    def _activate(self, network: str, path) -> None:
        from polygraphy.backend.trt import EngineFromPath, TrtRunner
        from polygraphy.datatype import DataType

        with polygraphy_logging(self.verbose):
            runner = TrtRunner(EngineFromPath(str(path)), name=f"mmfir-{network}")
            runner.activate()
        self._runners[network] = runner
        self._bounds[network] = self._engine_bounds(network, runner.engine)
        self._dtypes[network] = {name: np.dtype(DataType.to_dtype(meta.dtype, "numpy"))
                                 for name, meta in runner.get_input_metadata(use_numpy_dtypes=False).items()}

    def _engine_bounds(self, network: str, engine) -> Profile:
        """Check the engine's I/O names against the spec; its profile-0 (min, opt, max) per input."""
        import tensorrt as trt

        spec = self.specs[network]
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = {n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT}
        if inputs != set(spec.input_names) or set(names) - inputs != set(spec.output_names):
            raise BundleError(f"the {network} engine's tensors {sorted(names)} do not match the bundle's spec "
                              f"(inputs {spec.input_names}, outputs {spec.output_names}); rebuild with `mmfir build`")
        return {n: tuple(tuple(int(d) for d in s) for s in engine.get_tensor_profile_shape(n, 0))
                for n in spec.input_names}

    # --- inference --------------------------------------------------------------------------------
    def check_profile(self, network: str, feeds: dict[str, np.ndarray]) -> None:
        """A shape outside the engine's profile is a one-line error naming the fix."""
        spec = self.specs[network]
        for t in spec.inputs:
            error = profile_violation(spec, t.name, tuple(feeds[t.name].shape), self._bounds[network][t.name])
            if error is not None:
                raise error

    def run(self, network: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        feeds = self.check_feeds(network, feeds)
        self.check_profile(network, feeds)
        feeds = {name: arr.astype(self._dtypes[network][name], copy=False) for name, arr in feeds.items()}
        with self._locks[network]:
            outputs = self._runners[network].infer(feeds)
            # TrtRunner reuses its host buffers on the next call: copy out
            return {name: np.array(outputs[name], dtype=np.float32, copy=True)
                    for name in self.specs[network].output_names}

    def close(self) -> None:
        for runner in self._runners.values():
            try:
                runner.deactivate()
            except Exception:  # noqa: BLE001 - closing must not mask the error that led here
                pass
        self._runners.clear()
