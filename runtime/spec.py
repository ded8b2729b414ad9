"""The one declaration of the networks: tensors, shapes, profiles, tolerances, and how they connect.

Every other part reads this module instead of restating it: export names the ONNX graphs' inputs and
outputs from it, engine build takes its profiles, backends bind feeds by its names, the pipeline,
compare, bench, autotune, export validation and the Triton repository derive their wiring from its
``sources``, and compare and validation check outputs under its contracts.

Shapes are tuples of ints (fixed) and strings (named dynamic axes). Each network input names where its
value comes from (its ``source``): either something the pipeline makes from the image (``CLIP_IMAGE``,
``PIXELS``) or another network's output, written ``"network.output"``. That is the graph: the encoder's
``mmf`` feeds the restorer's ``mmf``. Networks whose inputs do not depend on ``PIXELS`` run once per
image on the whole image; the others run on the padded image or on each of its tiles.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field

from .errors import BundleError, UsageError

# --- tensor names: the only place they are spelled -------------------------------------------------
ENCODER = "encoder"
RESTORER = "restorer"

IMAGE = "image"                  # input of both networks (CLIP-preprocessed / pixels in [0, 1])
CONTENT = "content"              # encoder: content embedding
DEGRADATION = "degradation"      # encoder: degradation embedding
LOGITS = "degradation_logits"    # encoder: scaled cosine to the class prompts
MMF = "mmf"                      # encoder output, restorer input: multi-modal feature tokens
RESTORED = "restored"            # restorer: the restored image

# The diffusion restorer (DA-CLIP's IR-SDE U-Net), called once per sampling step.
DENOISER = "denoiser"
XT = "xt"                        # the sampler's state
COND = "cond"                    # the degraded image (the SDE's mean)
TIME = "time"                    # the network time step, [B]
TEXT_CONTEXT = "text_context"    # the encoder's degradation embedding
IMAGE_CONTEXT = "image_context"  # the encoder's content embedding
NOISE = "noise"                  # the predicted noise in xt

# What the pipeline hands the graph (also the tensor names of the Triton preprocess model's outputs).
CLIP_IMAGE = "clip_image"        # the whole image, CLIP-preprocessed (resize or crop), [B, 3, S, S]
PIXELS = "pixels"                # the image (or a tile) in [0, 1], reflect-padded to the multiple
SAMPLER_STATE = "sampler_state"  # a diffusion sampler's current state (image or tile), as PIXELS
SAMPLER_TIME = "sampler_time"    # the network time step of the current sampling step, [B]
PIPELINE_SOURCES = (CLIP_IMAGE, PIXELS, SAMPLER_STATE, SAMPLER_TIME)
SAMPLED = "sampled"              # a diffusion graph's result: the sampler's final state (no network's output)


class Precision(str, enum.Enum):
    FP32 = "fp32"
    FP16 = "fp16"
    BF16 = "bf16"
    INT8 = "int8"

    @property
    def graph(self) -> "Precision":
        """Which of a bundle's ONNX graphs this precision runs: BF16 is an execution mode of the FP32 graph;
        FP16 and INT8 (QDQ) have graphs of their own."""
        return Precision.FP32 if self == Precision.BF16 else self

    @classmethod
    def parse(cls, value: "str | Precision") -> "Precision":
        try:
            return cls(str(getattr(value, "value", value)).lower())
        except ValueError:
            names = ", ".join(p.value for p in cls)
            raise UsageError(f"unknown precision {value!r}; choose one of {names}") from None


class OutputKind(str, enum.Enum):
    IMAGE = "image"          # compared by max abs (FP32) or PSNR (reduced precision)
    EMBEDDING = "embedding"  # compared by cosine similarity per row
    LOGITS = "logits"        # compared by argmax agreement
    FIELD = "field"          # compared by relative L2 error (a noise prediction: not an image in [0, 1])


@dataclass(frozen=True)
class Contract:
    """Bounds one precision must meet against torch FP32 (export validation and ``mmfir compare``)."""

    image_max_abs: float | None = None
    image_psnr_db: float | None = None
    embedding_cosine: float = 0.99999
    class_agreement: float = 1.0
    field_rel_l2: float = 1e-4  # ||got - ref|| / ||ref|| over the whole output


CONTRACTS: dict[Precision, Contract] = {
    Precision.FP32: Contract(image_max_abs=1e-4, embedding_cosine=0.99999, class_agreement=1.0, field_rel_l2=1e-4),
    Precision.FP16: Contract(image_psnr_db=45.0, embedding_cosine=0.999, class_agreement=0.99, field_rel_l2=1e-2),
    Precision.BF16: Contract(image_psnr_db=40.0, embedding_cosine=0.999, class_agreement=0.99, field_rel_l2=2e-2),
    Precision.INT8: Contract(image_psnr_db=40.0, embedding_cosine=0.999, class_agreement=0.99, field_rel_l2=5e-2),
}
GRAPH_PRECISIONS = (Precision.FP32, Precision.FP16, Precision.INT8)  # precisions with an ONNX file each


def output_ref(network: str, output: str) -> str:
    """How an input names another network's output as its source: ``"encoder.mmf"``."""
    return f"{network}.{output}"


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple  # ints and dynamic-axis names
    dtype: str = "float32"
    kind: OutputKind | None = None  # outputs only
    source: str | None = None       # inputs only: a PIPELINE_SOURCES name or "network.output"

    @property
    def dynamic_axes(self) -> dict[int, str]:
        return {i: d for i, d in enumerate(self.shape) if isinstance(d, str)}

    def concrete(self, axes: dict[str, int]) -> tuple[int, ...]:
        """The shape with each named axis replaced by ``axes[name]`` (e.g. batch=1, height=width=512)."""
        return tuple(axes[d] if isinstance(d, str) else d for d in self.shape)

    def to_json(self) -> dict:
        out = {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}
        if self.kind is not None:
            out["kind"] = self.kind.value
        if self.source is not None:
            out["source"] = self.source
        return out

    @classmethod
    def from_json(cls, d: dict) -> "TensorSpec":
        kind = OutputKind(d["kind"]) if d.get("kind") else None
        return cls(d["name"], tuple(d["shape"]), d.get("dtype", "float32"), kind, d.get("source"))


@dataclass(frozen=True)
class NetworkSpec:
    """Everything about one network's interface that more than one part needs."""

    name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    # Optimisation profile per input: (min, opt, max) concrete shapes (TensorRT, OpenVINO).
    profile: dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]] = field(default_factory=dict)
    # Spatial dims must be divisible by this (restorer); 1 means no constraint.
    multiple: int = 1

    def onnx_file(self, precision: Precision = Precision.FP32) -> str:
        return f"{self.name}.onnx" if precision == Precision.FP32 else f"{self.name}.{precision.value}.onnx"

    def input(self, name: str) -> TensorSpec:
        return next(t for t in self.inputs if t.name == name)

    def output(self, name: str) -> TensorSpec:
        return next(t for t in self.outputs if t.name == name)

    def outputs_of_kind(self, kind: OutputKind) -> list[TensorSpec]:
        return [t for t in self.outputs if t.kind == kind]

    @property
    def input_names(self) -> list[str]:
        return [t.name for t in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [t.name for t in self.outputs]

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "inputs": [t.to_json() for t in self.inputs],
            "outputs": [t.to_json() for t in self.outputs],
            "profile": {k: [list(s) for s in v] for k, v in self.profile.items()},
            "multiple": self.multiple,
        }

    @classmethod
    def from_json(cls, d: dict) -> "NetworkSpec":
        profile = {k: tuple(tuple(s) for s in v) for k, v in d.get("profile", {}).items()}
        return cls(d["name"], tuple(TensorSpec.from_json(t) for t in d["inputs"]),
                   tuple(TensorSpec.from_json(t) for t in d["outputs"]), profile, d.get("multiple", 1))


# --- the graph -------------------------------------------------------------------------------------
Values = dict  # source name ("clip_image", "pixels", "encoder.mmf", ...) -> array


class Graph:
    """The networks of one model in dataflow order, wired by their inputs' ``source``.

    ``per_image`` networks see the whole image once (their inputs do not depend on ``PIXELS``);
    ``spatial`` networks run on the padded image or on each tile, fed the per-image networks' outputs
    of that image. ``restored`` and ``logits`` name the outputs the pipeline reports: the image output
    and the logits output that no other network reads.

    A diffusion graph has a ``sampler`` network: the one that reads ``SAMPLER_STATE``. The pipeline runs
    it once per sampling step (``runtime/sde.py``); ``noise`` names its output, and ``restored`` is
    ``SAMPLED``, the sampler's final state.
    """

    def __init__(self, specs: dict[str, NetworkSpec]):
        self.specs = dict(specs)
        self.order = self._ordered()
        spatial = {n for n in self.order if self._depends_on_pixels(n)}
        self.per_image = tuple(n for n in self.order if n not in spatial)
        self.spatial = tuple(n for n in self.order if n in spatial)
        samplers = [n for n in self.order if SAMPLER_STATE in self.sources(n).values()]
        if len(samplers) > 1 or (samplers and samplers != list(self.spatial)):
            raise BundleError(f"a diffusion graph needs exactly one spatial network, the one reading "
                              f"{SAMPLER_STATE!r}; found samplers {samplers} among spatial {list(self.spatial)}")
        self.sampler = samplers[0] if samplers else None
        if self.sampler:
            self.noise = self._only_output(OutputKind.FIELD, self.spatial)
            self.restored = SAMPLED
        else:
            self.noise = None
            self.restored = self._only_output(OutputKind.IMAGE, self.spatial)
        self.logits = self._only_output(OutputKind.LOGITS, self.per_image)

    def __getitem__(self, network: str) -> NetworkSpec:
        return self.specs[network]

    @property
    def multiple(self) -> int:
        """Spatial size multiple the pixels must be padded to (largest of the spatial networks)."""
        return max(self.specs[n].multiple for n in self.spatial)

    def sources(self, network: str) -> dict[str, str]:
        return {t.name: t.source for t in self.specs[network].inputs}

    def feeds(self, network: str, values: Values) -> dict:
        """The network's inputs, taken from ``values`` by their sources."""
        return {name: values[source] for name, source in self.sources(network).items()}

    def run(self, run, values: Values, networks=None) -> Values:
        """Run ``networks`` (default all, in order) through ``run(network, feeds)``; outputs added to values."""
        values = dict(values)
        for network in networks if networks is not None else self.order:
            outputs = run(network, self.feeds(network, values))
            values.update({output_ref(network, k): v for k, v in outputs.items()})
        return values

    def consumed(self) -> list[str]:
        """Every network output some other network reads (e.g. ``encoder.mmf``)."""
        return [t.source for n in self.order for t in self.specs[n].inputs if t.source not in PIPELINE_SOURCES]

    def _ordered(self) -> tuple[str, ...]:
        done: list[str] = []
        pending = list(self.specs)
        while pending:
            ready = [n for n in pending if all(self._producer(n, s) in (None, *done) for s in self.sources(n).values())]
            if not ready:
                raise BundleError(f"the networks {pending} feed each other in a cycle; fix their input sources")
            done += ready
            pending = [n for n in pending if n not in ready]
        return tuple(done)

    def _producer(self, network: str, source: str | None) -> str | None:
        """The network that produces ``source`` (None for the pipeline's own); checks the reference."""
        if source in PIPELINE_SOURCES:
            return None
        producer, _, output = str(source).partition(".")
        if producer not in self.specs or output not in self.specs[producer].output_names:
            raise BundleError(f"{network}: input source {source!r} is neither one of {PIPELINE_SOURCES} nor an "
                              f"output of a network of this bundle ({', '.join(self.specs)})")
        return producer

    def _depends_on_pixels(self, network: str) -> bool:
        return any(s == PIXELS or (s not in PIPELINE_SOURCES and self._depends_on_pixels(self._producer(network, s)))
                   for s in self.sources(network).values())

    def _only_output(self, kind: OutputKind, networks: tuple[str, ...]) -> str:
        """The one output of ``kind`` that no other network reads (the graph's final result of that kind)."""
        consumed = set(self.consumed())
        refs = [output_ref(n, t.name) for n in networks for t in self.specs[n].outputs_of_kind(kind)
                if output_ref(n, t.name) not in consumed]
        if len(refs) != 1:
            raise BundleError(f"the graph needs exactly one final {kind.value} output among {networks}, found {refs}")
        return refs[0]


def rows(values: Values, index: int, count: int = 1) -> Values:
    """The per-image values of image ``index`` repeated ``count`` times along the batch axis."""
    import numpy as np

    return {k: np.repeat(v[index:index + 1], count, axis=0) for k, v in values.items()}


# --- the two networks of an mmfir model -----------------------------------------------------------
# Default TensorRT profile ranges: batch 1-8, restorer inputs 64² up to 1024² tiles.
DEFAULT_BATCH = (1, 1, 8)
DEFAULT_TILE = (64, 512, 1024)  # small images run whole; 256²-1024² tiles covered


def encoder_spec(image_size: int, embed_dim: int, num_classes: int, num_tokens: int,
                 batch: tuple[int, int, int] = DEFAULT_BATCH) -> NetworkSpec:
    """CLIP-preprocessed image -> content, degradation, degradation_logits, mmf tokens."""
    s = image_size
    b_min, b_opt, b_max = batch
    return NetworkSpec(
        name=ENCODER,
        inputs=(TensorSpec(IMAGE, ("batch", 3, s, s), source=CLIP_IMAGE),),
        outputs=(
            TensorSpec(CONTENT, ("batch", embed_dim), kind=OutputKind.EMBEDDING),
            TensorSpec(DEGRADATION, ("batch", embed_dim), kind=OutputKind.EMBEDDING),
            TensorSpec(LOGITS, ("batch", num_classes), kind=OutputKind.LOGITS),
            TensorSpec(MMF, ("batch", num_tokens, embed_dim), kind=OutputKind.EMBEDDING),
        ),
        profile={IMAGE: ((b_min, 3, s, s), (b_opt, 3, s, s), (b_max, 3, s, s))},
    )


def restorer_spec(embed_dim: int, num_tokens: int, multiple: int,
                  batch: tuple[int, int, int] = DEFAULT_BATCH,
                  tile: tuple[int, int, int] = DEFAULT_TILE) -> NetworkSpec:
    """Degraded image in [0, 1] + the encoder's mmf tokens -> restored image (same size)."""
    b_min, b_opt, b_max = batch
    t_min, t_opt, t_max = tile
    tokens = (num_tokens, embed_dim)
    return NetworkSpec(
        name=RESTORER,
        inputs=(
            TensorSpec(IMAGE, ("batch", 3, "height", "width"), source=PIXELS),
            TensorSpec(MMF, ("batch", *tokens), source=output_ref(ENCODER, MMF)),
        ),
        outputs=(TensorSpec(RESTORED, ("batch", 3, "height", "width"), kind=OutputKind.IMAGE),),
        profile={
            IMAGE: ((b_min, 3, t_min, t_min), (b_opt, 3, t_opt, t_opt), (b_max, 3, t_max, t_max)),
            MMF: ((b_min, *tokens), (b_opt, *tokens), (b_max, *tokens)),
        },
        multiple=multiple,
    )


def denoiser_spec(context_dim: int, multiple: int, batch: tuple[int, int, int] = DEFAULT_BATCH,
                  tile: tuple[int, int, int] = DEFAULT_TILE) -> NetworkSpec:
    """Sampler state + degraded image + time step + the encoder's two embeddings -> predicted noise.

    Both images are PIXELS-sized (the whole padded image or a tile); the embeddings are per image.
    """
    b_min, b_opt, b_max = batch
    t_min, t_opt, t_max = tile
    image = ("batch", 3, "height", "width")
    image_profile = ((b_min, 3, t_min, t_min), (b_opt, 3, t_opt, t_opt), (b_max, 3, t_max, t_max))
    context_profile = ((b_min, context_dim), (b_opt, context_dim), (b_max, context_dim))
    return NetworkSpec(
        name=DENOISER,
        inputs=(
            TensorSpec(XT, image, source=SAMPLER_STATE),
            TensorSpec(COND, image, source=PIXELS),
            TensorSpec(TIME, ("batch",), source=SAMPLER_TIME),
            TensorSpec(TEXT_CONTEXT, ("batch", context_dim), source=output_ref(ENCODER, DEGRADATION)),
            TensorSpec(IMAGE_CONTEXT, ("batch", context_dim), source=output_ref(ENCODER, CONTENT)),
        ),
        outputs=(TensorSpec(NOISE, image, kind=OutputKind.FIELD),),
        profile={XT: image_profile, COND: image_profile, TIME: ((b_min,), (b_opt,), (b_max,)),
                 TEXT_CONTEXT: context_profile, IMAGE_CONTEXT: context_profile},
        multiple=multiple,
    )


def network_specs(config: dict) -> dict[str, NetworkSpec]:
    """Specs of the networks from a model config as a plain dict (``ModelConfig.to_dict()``): the encoder,
    and the restorer or (with a ``diffusion`` section) the denoiser."""
    enc = config["encoder"]
    embed_dim = enc["embed_dim"]
    num_tokens = 3 + int(enc.get("patch_tokens", 0))
    encoder = encoder_spec(enc["vision"]["image_size"], embed_dim, len(enc["class_names"]), num_tokens)
    if config.get("diffusion"):
        unet = config["diffusion"]["unet"]
        return {ENCODER: encoder, DENOISER: denoiser_spec(unet["context_dim"], denoiser_multiple(unet))}
    return {ENCODER: encoder, RESTORER: restorer_spec(embed_dim, num_tokens, restorer_multiple(config["restorer"]))}


def denoiser_multiple(unet: dict) -> int:
    """H and W of the diffusion U-Net must be divisible by this: one factor 2 per level of ``ch_mult``."""
    return 2 ** len(unet["ch_mult"])


def restorer_multiple(restorer: dict) -> int:
    """H and W of the NAFNet restorer must be divisible by this: one factor 2 per U-Net level, and one more
    for a space-to-depth stem (which runs the first level at half resolution)."""
    return 2 ** (len(restorer["enc_blocks"]) + (restorer.get("stem", "conv") == "space-to-depth"))
