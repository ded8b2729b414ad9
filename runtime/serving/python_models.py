"""The python-backend models of the repository (imported by Triton's python stub, never by mmfir itself).

Every request gets its own response: a request that fails (empty or oversized image, bad shape) is
answered with an error naming the problem, and the others in the same batch still get their results.
The network models concatenate same-shaped requests into one batch (Triton's dynamic batcher hands a
python model a list of requests; it does not concatenate them itself).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..bundle import Bundle
from ..errors import ImageError, MmfirError
from ..image_io import DecodedImage
from ..pipeline import softmax
from ..preprocess import ClipPreprocess
from ..spec import CLIP_IMAGE, IMAGE, LOGITS, PIXELS, RESTORED, SAMPLED
from ..tiling import padded_batch
from .repo import CLASS, PADDED_RESTORED, PROBS, SIZE, context_inputs


def _pb():
    import triton_python_backend_utils as pb_utils  # only inside Triton's python stub

    return pb_utils


def describe(label: str, err: Exception) -> str:
    """One line for the client: our own errors as they are, anything else with its type."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    if isinstance(err, MmfirError):
        return f"{label}: {text}"
    return f"{label}: {type(err).__name__}: {text}"


class _Model:
    label = "model"  # names the model in error messages
    inputs: tuple[str, ...] = ()
    repository: Path | None = None  # set by the model.py serve-repo writes; the bundle path is relative to it

    def initialize(self, args):
        self.pb = _pb()
        config = json.loads(args["model_config"])
        self.params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        root = Path(self.params["bundle"])
        if not root.is_absolute():
            root = (self.repository or Path(args["model_repository"]).parent) / root
        self.bundle = Bundle.open(root)
        self.setup()

    def setup(self) -> None:
        """Per-model state (sessions, parameters)."""

    def read(self, request) -> dict[str, np.ndarray]:
        return {name: self.pb.get_input_tensor_by_name(request, name).as_numpy() for name in self.inputs}

    def respond(self, outputs: dict[str, np.ndarray]):
        return self.pb.InferenceResponse([self.pb.Tensor(k, v) for k, v in outputs.items()])

    def error(self, message: str):
        return self.pb.InferenceResponse(output_tensors=[], error=self.pb.TritonError(message))

    def execute(self, requests):
        responses = []
        for request in requests:
            try:
                responses.append(self.respond(self.compute(self.read(request))))
            except Exception as err:  # noqa: BLE001 - answered to the client; the server stays up
                responses.append(self.error(describe(self.label, err)))
        return responses

    def compute(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def finalize(self):
        pass


class PreprocessModel(_Model):
    """UINT8 [B, H, W, 3] -> clip_image [B, 3, S, S], pixels [B, 3, H', W'] in [0, 1], size [B, 2]."""

    label, inputs = "preprocess", (IMAGE,)

    def setup(self):
        self.clip = ClipPreprocess.from_bundle(self.bundle)
        self.multiple = self.bundle.graph.multiple
        self.max_side = int(self.params["max_side"])

    def compute(self, inputs):
        images = inputs[IMAGE]
        check_image_batch(images, self.max_side)
        decoded = [DecodedImage(np.ascontiguousarray(im)) for im in images]
        clip = np.stack([self.clip(im) for im in decoded])
        padded = padded_batch(decoded, self.multiple)
        size = np.tile(np.asarray(images.shape[1:3], dtype=np.int32), (len(images), 1))
        return {CLIP_IMAGE: clip, PIXELS: np.ascontiguousarray(padded), SIZE: size}


def check_image_batch(images: np.ndarray, max_side: int) -> None:
    """A batch of RGB images of at least 1 pixel and at most max_side per side, or an ImageError naming why."""
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ImageError(f"expected images [batch, height, width, 3], got shape {list(images.shape)}")
    b, h, w = images.shape[:3]
    if b == 0 or h == 0 or w == 0:
        raise ImageError(f"empty image tensor of shape {list(images.shape)}; send at least one 1x1 RGB image")
    if max(h, w) > max_side:
        raise ImageError(f"image of {w}x{h} pixels exceeds this server's limit of {max_side} pixels per side "
                         "(--max-side of `mmfir serve-repo`); downscale it or restore it in-process with tiling")


class NetworkModel(_Model):
    """The encoder or the restorer, run by mmfir's runtime (onnxruntime) on the bundle's ONNX graph."""

    def setup(self):
        from ..backends.base import create_backend

        self.network = self.label = self.params["network"]
        self.inputs = tuple(self.bundle.specs[self.network].input_names)
        threads = int(self.params["threads"]) if self.params.get("threads") else None
        self.backend = create_backend(self.params.get("runtime_backend", "ort-cpu"), self.bundle,
                                      self.params.get("precision", "fp32"), threads)

    def compute(self, inputs):
        return self.backend.run(self.network, inputs)

    def execute(self, requests):
        """Requests whose inputs agree in shape run as one batch; a failing group fails only its requests."""
        responses, groups = [None] * len(requests), {}
        feeds = [self.read(r) for r in requests]
        for i, feed in enumerate(feeds):
            groups.setdefault(tuple(feed[n].shape[1:] for n in self.inputs), []).append(i)
        for members in groups.values():
            try:
                batch = {n: np.concatenate([feeds[i][n] for i in members]) for n in self.inputs}
                outputs = self.compute(batch)
            except Exception as err:  # noqa: BLE001 - answered to the client; the server stays up
                for i in members:
                    responses[i] = self.error(describe(self.label, err))
                continue
            start = 0
            for i in members:
                rows = len(feeds[i][self.inputs[0]])
                responses[i] = self.respond({k: v[start:start + rows] for k, v in outputs.items()})
                start += rows
        return responses

    def finalize(self):
        self.backend.close()


class SamplerModel(_Model):
    """A diffusion bundle's sampling loop: degraded pixels, size and the encoder's outputs -> final state.

    Runs the runtime's own loop (``Pipeline.sample``, whole image, the denoiser on onnxruntime), so a
    served image is what ``mmfir restore --tile 0`` gives; with the repository's ``seed`` parameter every
    request draws the same noise as ``--seed``, without it each request draws fresh noise. Requests are
    sampled one by one (a batch would draw its noise for all its images at once).
    """

    def setup(self):
        from ..backends.base import create_backend
        from ..pipeline import Pipeline

        graph = self.bundle.graph
        self.network = self.label = graph.sampler
        self.contexts = context_inputs(graph)
        self.inputs = (PIXELS, SIZE, *self.contexts)
        threads = int(self.params["threads"]) if self.params.get("threads") else None
        self.backend = create_backend(self.params.get("runtime_backend", "ort-cpu"), self.bundle,
                                      self.params.get("precision", "fp32"), threads)
        steps, seed = (self.params.get(k) for k in ("steps", "seed"))
        self.pipeline = Pipeline(self.backend, tile=0, steps=int(steps) if steps else None,
                                 seed=int(seed) if seed else None)

    def compute(self, inputs):
        h, w = (int(v) for v in inputs[SIZE][0])
        mu = np.ascontiguousarray(inputs[PIXELS][:, :, :h, :w])
        values = {source: inputs[name] for name, source in self.contexts.items()}
        return {SAMPLED: self.pipeline.sample(mu, values).astype(np.float32)}

    def finalize(self):
        self.backend.close()


class PostprocessModel(_Model):
    """Padded restored image, original size, logits -> restored H x W x 3, class label, probabilities."""

    label, inputs = "postprocess", (PADDED_RESTORED, SIZE, LOGITS)

    def setup(self):
        self.class_names = self.bundle.class_names

    def compute(self, inputs):
        (h, w), restored = inputs[SIZE][0], inputs[PADDED_RESTORED]
        probs = softmax(inputs[LOGITS]).astype(np.float32)
        labels = np.array([[self.class_names[int(i)].encode()] for i in np.argmax(probs, axis=-1)], dtype=np.object_)
        cropped = np.ascontiguousarray(np.moveaxis(restored[:, :, :h, :w], 1, 3))
        return {RESTORED: cropped, CLASS: labels, PROBS: probs}
