"""Send images to a Triton server running the `mmfir` ensemble (tritonclient, HTTP or gRPC).

    from mmfir.runtime.serving.client import restore_via_server
    results = restore_via_server("http://127.0.0.1:8000", [rgb_uint8_array, decoded_image])

The URL's scheme picks the protocol: ``http://HOST:PORT`` (or plain ``HOST:PORT``) or ``grpc://HOST:PORT``.
Results are the runtime's ``RestoreResult``s, as ``Pipeline.restore`` returns them.
"""
from __future__ import annotations

import json
import re
from urllib.parse import urlparse

import numpy as np

from ..errors import ImageError, ServerError, ServerRejected
from ..image_io import DecodedImage
from ..pipeline import RestoreResult
from ..spec import IMAGE, RESTORED
from .repo import CLASS, ENSEMBLE, POSTPROCESS, PROBS


def parse_url(url: str) -> tuple[str, str]:
    """(protocol, host:port) of a server URL."""
    parsed = urlparse(url if "://" in url else f"http://{url}")
    if parsed.scheme not in ("http", "grpc") or not parsed.hostname or not parsed.port:
        raise ServerError(f"bad server URL {url!r}; use http://HOST:PORT or grpc://HOST:PORT")
    return parsed.scheme, f"{parsed.hostname}:{parsed.port}"


def as_uint8(image) -> np.ndarray:
    """An 8-bit H x W x 3 RGB array from an array or a DecodedImage (the wire format of the ensemble)."""
    pixels = image.pixels if isinstance(image, DecodedImage) else np.asarray(image)
    if pixels.dtype != np.uint8:
        raise ImageError(f"the server takes 8-bit RGB images, got {pixels.dtype}; restore 16-bit or float "
                         "images in-process (`mmfir restore` without --server)")
    if pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ImageError(f"expected an H x W x 3 RGB image, got shape {pixels.shape}")
    return np.ascontiguousarray(pixels)


class ServerClient:
    """A client of one server's `mmfir` ensemble (or of a single model, via ``infer``)."""

    def __init__(self, url: str, model: str = ENSEMBLE, timeout: float = 120.0):
        self.protocol, self.address = parse_url(url)
        self.model, self.timeout = model, timeout
        if self.protocol == "grpc":
            import tritonclient.grpc as tc
        else:
            import tritonclient.http as tc
        self.tc = tc
        kwargs = {"network_timeout": timeout, "connection_timeout": timeout} if self.protocol == "http" else {}
        self.client = tc.InferenceServerClient(self.address, **kwargs)

    def infer(self, inputs: dict[str, np.ndarray], outputs: list[str], model: str | None = None) -> dict:
        """Raw inference: numpy arrays in (Triton dtype from the numpy dtype), numpy arrays out."""
        from tritonclient.utils import InferenceServerException, np_to_triton_dtype

        tensors = []
        for name, array in inputs.items():
            t = self.tc.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
            t.set_data_from_numpy(array)
            tensors.append(t)
        requested = [self.tc.InferRequestedOutput(n) for n in outputs]
        kwargs = {"client_timeout": self.timeout} if self.protocol == "grpc" else {}
        try:
            result = self.client.infer(model or self.model, tensors, outputs=requested, **kwargs)
        except InferenceServerException as err:
            message = re.sub(r"^\[request id: [^]]*\] ", "", str(err.message())).split(" NOTE: ")[0]
            raise ServerRejected(f"server at {self.address} answered: {message}") from None
        except OSError as err:
            raise ServerError(f"cannot reach the server at {self.address}: {err}") from None
        return {n: result.as_numpy(n) for n in outputs}

    def restore(self, image) -> RestoreResult:
        out = self.infer({IMAGE: as_uint8(image)[None]}, [RESTORED, CLASS, PROBS])
        names = self.class_names
        probs = out[PROBS][0].astype(np.float64)
        label = out[CLASS][0][0]
        label = label.decode() if isinstance(label, bytes) else str(label)
        return RestoreResult(out[RESTORED][0], label, {n: float(p) for n, p in zip(names, probs)})

    @property
    def class_names(self) -> list[str]:
        """The class names (order of the probabilities), from the postprocess model's config (read once)."""
        if not hasattr(self, "_names"):
            self._names = json.loads(self.parameter(POSTPROCESS, "class_names"))
        return self._names

    def parameter(self, model: str, key: str) -> str:
        """A string parameter of a served model's config."""
        config = self.client.get_model_config(model)
        config = config.get("config", config) if isinstance(config, dict) else config.config
        params = config["parameters"] if isinstance(config, dict) else config.parameters
        if key not in params:
            raise ServerError(f"model {model!r} on {self.address} has no parameter {key!r}: not a repository of "
                              "this mmfir version; rewrite it with `mmfir serve-repo --force`")
        value = params[key]
        return value["string_value"] if isinstance(value, dict) else value.string_value

    def ready(self) -> bool:
        try:
            return bool(self.client.is_model_ready(self.model))
        except Exception:  # noqa: BLE001 - any transport error means "not ready"
            return False

    def close(self) -> None:
        self.client.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def restore_via_server(url: str, images, model: str = ENSEMBLE, timeout: float = 120.0) -> list[RestoreResult]:
    """Restore 8-bit RGB images (arrays or DecodedImages) on a running server; results in input order."""
    with ServerClient(url, model, timeout) as client:
        return [client.restore(image) for image in images]


class ServerPipeline:
    """The Pipeline interface (``restore(images)``, ``batch``) on a running `mmfir serve`, one image a request.

    A request the server refuses (too large, 16-bit, ...) raises ImageError or ServerRejected for that
    image: the caller fails that file and goes on; a transport failure (ServerError) concerns every file.
    """

    batch = 1

    def __init__(self, url: str):
        self.client = ServerClient(url)
        if not self.client.ready():
            raise ServerError(f"no ready `mmfir` model at {url}; start one with `mmfir serve REPO`")

    def restore(self, images) -> list[RestoreResult]:
        from ..timing import timed

        results = []
        for image in images:
            timings: dict[str, float] = {}
            with timed(timings, "server"):
                result = self.client.restore(image)
            result.timings.update(timings)
            results.append(result)
        return results
