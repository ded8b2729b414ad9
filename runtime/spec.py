"""The one declaration of each network's inputs, outputs, shapes, profiles and tolerances.

Export, engine build, runtime binding, compare and serving all read these specs; nothing
restates them. Shapes are tuples whose entries are ints (fixed) or strings (named dynamic
axes). Specs are built from the model config's few numbers (see ``network_specs``).
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Precision(str, enum.Enum):
    FP32 = "fp32"
    FP16 = "fp16"
    BF16 = "bf16"

    @classmethod
    def parse(cls, value: "str | Precision") -> "Precision":
        try:
            return cls(str(getattr(value, "value", value)).lower())
        except ValueError:
            names = ", ".join(p.value for p in cls)
            raise ValueError(f"unknown precision {value!r}; choose one of {names}") from None


class OutputKind(str, enum.Enum):
    IMAGE = "image"          # compared by max abs (FP32) or PSNR (reduced precision)
    EMBEDDING = "embedding"  # compared by cosine similarity per row
    LOGITS = "logits"        # compared by argmax agreement


@dataclass(frozen=True)
class Contract:
    """Bounds one precision must meet against torch FP32 (DESIGN.md, accuracy contract)."""

    image_max_abs: float | None = None
    image_psnr_db: float | None = None
    embedding_cosine: float = 0.99999
    class_agreement: float = 1.0


CONTRACTS: dict[Precision, Contract] = {
    Precision.FP32: Contract(image_max_abs=1e-4, embedding_cosine=0.99999, class_agreement=1.0),
    Precision.FP16: Contract(image_psnr_db=45.0, embedding_cosine=0.999, class_agreement=0.99),
    Precision.BF16: Contract(image_psnr_db=40.0, embedding_cosine=0.999, class_agreement=0.99),
}


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple  # ints and dynamic-axis names
    dtype: str = "float32"
    kind: OutputKind | None = None  # outputs only

    @property
    def dynamic_axes(self) -> dict[int, str]:
        return {i: d for i, d in enumerate(self.shape) if isinstance(d, str)}

    def to_json(self) -> dict:
        out = {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}
        if self.kind is not None:
            out["kind"] = self.kind.value
        return out

    @classmethod
    def from_json(cls, d: dict) -> "TensorSpec":
        kind = OutputKind(d["kind"]) if d.get("kind") else None
        return cls(d["name"], tuple(d["shape"]), d.get("dtype", "float32"), kind)


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
        return cls(
            d["name"],
            tuple(TensorSpec.from_json(t) for t in d["inputs"]),
            tuple(TensorSpec.from_json(t) for t in d["outputs"]),
            profile,
            d.get("multiple", 1),
        )


ENCODER = "encoder"
RESTORER = "restorer"
NETWORKS = (ENCODER, RESTORER)

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
        inputs=(TensorSpec("image", ("batch", 3, s, s)),),
        outputs=(
            TensorSpec("content", ("batch", embed_dim), kind=OutputKind.EMBEDDING),
            TensorSpec("degradation", ("batch", embed_dim), kind=OutputKind.EMBEDDING),
            TensorSpec("degradation_logits", ("batch", num_classes), kind=OutputKind.LOGITS),
            TensorSpec("mmf", ("batch", num_tokens, embed_dim), kind=OutputKind.EMBEDDING),
        ),
        profile={"image": ((b_min, 3, s, s), (b_opt, 3, s, s), (b_max, 3, s, s))},
    )


def restorer_spec(embed_dim: int, num_tokens: int, multiple: int,
                  batch: tuple[int, int, int] = DEFAULT_BATCH,
                  tile: tuple[int, int, int] = DEFAULT_TILE) -> NetworkSpec:
    """Degraded image in [0, 1] + mmf tokens -> restored image (same size)."""
    b_min, b_opt, b_max = batch
    t_min, t_opt, t_max = tile
    return NetworkSpec(
        name=RESTORER,
        inputs=(
            TensorSpec("image", ("batch", 3, "height", "width")),
            TensorSpec("mmf", ("batch", num_tokens, embed_dim)),
        ),
        outputs=(TensorSpec("restored", ("batch", 3, "height", "width"), kind=OutputKind.IMAGE),),
        profile={
            "image": ((b_min, 3, t_min, t_min), (b_opt, 3, t_opt, t_opt), (b_max, 3, t_max, t_max)),
            "mmf": ((b_min, num_tokens, embed_dim), (b_opt, num_tokens, embed_dim),
                    (b_max, num_tokens, embed_dim)),
        },
        multiple=multiple,
    )


def network_specs(config: dict) -> dict[str, NetworkSpec]:
    """Specs of both networks from a model config as a plain dict (``ModelConfig.to_dict()``)."""
    enc, res = config["encoder"], config["restorer"]
    embed_dim = enc["embed_dim"]
    num_tokens = 3 + int(enc.get("patch_tokens", 0))
    return {
        ENCODER: encoder_spec(enc["vision"]["image_size"], embed_dim, len(enc["class_names"]), num_tokens),
        RESTORER: restorer_spec(embed_dim, num_tokens, 2 ** len(res["enc_blocks"])),
    }
