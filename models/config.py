"""Model configs: JSON files read into dataclasses. A config fully determines the architecture."""
from __future__ import annotations

import dataclasses
import json
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

from mmfir.runtime.errors import ConfigError
from mmfir.runtime.sde import SDESettings
from mmfir.runtime.spec import denoiser_multiple, restorer_multiple

CONFIG_DIR = Path(__file__).with_name("configs")

# Six tasks plus clean; the prompt given to the text tower is the template around the name.
DEFAULT_CLASSES = ("clean", "noisy", "blurry", "jpeg-compressed", "low-light", "hazy", "rainy")


@dataclass(frozen=True)
class VisionConfig:
    image_size: int = 224
    patch_size: int = 32
    width: int = 768
    layers: int = 12
    heads: int = 12
    mlp_ratio: float = 4.0


@dataclass(frozen=True)
class TextConfig:
    context_length: int = 77
    vocab_size: int = 49408
    width: int = 512
    layers: int = 12
    heads: int = 8


@dataclass(frozen=True)
class EncoderConfig:
    """MultiContentNet: open_clip CLIP (frozen) + a controller copy of the image tower."""

    embed_dim: int = 512
    vision: VisionConfig = field(default_factory=VisionConfig)
    text: TextConfig = field(default_factory=TextConfig)
    class_names: tuple[str, ...] = DEFAULT_CLASSES
    prompt_template: str = "{}"
    # "resize": shorter side to image_size, bicubic, centre crop (open_clip / DA-CLIP).
    # "crop": centre crop of image_size at native resolution (keeps noise/JPEG/blur cues).
    preprocess: str = "resize"
    mean: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
    std: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)
    patch_tokens: int = 0  # extra controller patch tokens appended to mmf (0 = none)
    quick_gelu: bool = False
    # class logits = scale * cosine; 0 = the CLIP's learned logit_scale.exp(), > 0 a fixed scale
    # (100 for imported DA-CLIP models, whose probabilities are softmax(100 * cosine))
    fixed_logit_scale: float = 0.0


CONDITIONING = ("pixel-attention", "modulation")
UPSAMPLING = ("pixelshuffle", "bilinear")
STEMS = ("conv", "space-to-depth")


@dataclass(frozen=True)
class RestorerConfig:
    """NAFNet-style U-Net conditioned on the mmf tokens.

    The defaults are the first architecture, so checkpoints saved before these keys existed load
    unchanged; the shipped configs choose the second one (see ``models/restorer.py`` for why):

    - ``conditioning``: ``"pixel-attention"`` (every pixel of the deepest ``attn_levels`` levels and the
      middle attends to the tokens) or ``"modulation"`` (learned queries attend to the tokens at every
      stage; the result scales and shifts the stage's channels, the same for every pixel).
    - ``channel_attention``: NAFNet's simplified channel attention (a global average pool per block).
      It makes a tile's output depend on the whole tile, so tiles and the whole image differ.
    - ``upsample``: ``"pixelshuffle"`` (1x1 conv to 2C, PixelShuffle) or ``"bilinear"`` (1x1 conv to C/2
      at the low resolution, then bilinear x2: smooth, no 2x2 cell structure).
    - ``stem``: ``"conv"`` (a 3x3 convolution at full resolution; the first level runs at full resolution)
      or ``"space-to-depth"`` (each 2x2 cell of pixels becomes 12 channels, a 3x3 convolution maps them to
      ``width``; every level runs at half resolution or less, and the end maps back to 12 channels and
      rearranges them into full-resolution pixels). The rearrangement is lossless; the restored image is
      still ``image + residual`` at full resolution.
    """

    width: int = 32
    enc_blocks: tuple[int, ...] = (2, 2, 4, 8)
    middle_blocks: int = 12
    dec_blocks: tuple[int, ...] = (2, 2, 2, 2)
    attn_levels: int = 2  # pixel-attention only: the deepest N encoder/decoder levels and the middle
    attn_heads: int = 4
    ffn_expand: int = 2
    conditioning: str = "pixel-attention"
    channel_attention: bool = True
    upsample: str = "pixelshuffle"
    stem: str = "conv"

    @property
    def multiple(self) -> int:
        """H and W must be divisible by this (the runtime's rule, which reads the bundle's config)."""
        return restorer_multiple(dataclasses.asdict(self))


@dataclass(frozen=True)
class SDEUNetConfig:
    """DA-CLIP's ``network_G.setting`` (universal-ir: 3, 3, 64, [1, 2, 4, 8], 512, true, true)."""

    in_nc: int = 3
    out_nc: int = 3
    nf: int = 64
    ch_mult: tuple[int, ...] = (1, 2, 4, 8)
    context_dim: int = 512
    use_degra_context: bool = True
    use_image_context: bool = True

    @property
    def multiple(self) -> int:
        return denoiser_multiple(dataclasses.asdict(self))  # the runtime's rule, read from the bundle's config


@dataclass(frozen=True)
class DiffusionConfig:
    """A diffusion restorer in place of the NAFNet one: DA-CLIP's conditional U-Net and its IR-SDE sampler.

    The U-Net predicts the noise in the sampler's state from the state, the degraded image, the time
    step, the encoder's degradation embedding (``text_context``) and its content embedding
    (``image_context``); ``sde`` holds the sampler's settings, which travel with the model into the bundle.
    """

    unet: SDEUNetConfig = field(default_factory=SDEUNetConfig)
    sde: SDESettings = field(default_factory=SDESettings)


@dataclass(frozen=True)
class ModelConfig:
    """The whole model. With ``diffusion`` set, the restorer is that U-Net and ``restorer`` is unused."""

    name: str
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    restorer: RestorerConfig = field(default_factory=RestorerConfig)
    diffusion: DiffusionConfig | None = None

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        if self.diffusion is None:
            del data["diffusion"]  # configs of NAFNet models read as before
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @property
    def multiple(self) -> int:
        return self.diffusion.unet.multiple if self.diffusion else self.restorer.multiple

    @property
    def num_tokens(self) -> int:
        return 3 + self.encoder.patch_tokens


def _build(cls, data: Any, where: str):
    if not isinstance(data, dict):
        raise ConfigError(f"config key '{where}' must be an object, got {type(data).__name__}")
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"unknown config key '{where}.{unknown[0]}' (known: {', '.join(sorted(names))})")
    kwargs = {}
    for key, value in data.items():
        hint, path = hints[key], f"{where}.{key}"
        if get_origin(hint) in (Union, types.UnionType):  # X | None -> X
            hint = next(a for a in get_args(hint) if a is not type(None))
        if value is None and dataclasses.is_dataclass(hint):
            kwargs[key] = None
        elif dataclasses.is_dataclass(hint):
            kwargs[key] = _build(hint, value, path)
        else:
            kwargs[key] = _coerce(hint, value, path)
    return cls(**kwargs)


def _coerce(hint, value, path: str):
    text = str(hint)
    if text.startswith("tuple"):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key '{path}' must be a list, got {value!r}")
        return tuple(value)
    expected = {"int": int, "float": (int, float), "str": str, "bool": bool}.get(getattr(hint, "__name__", text))
    if expected is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"config key '{path}' must be an integer, got {value!r}")
    if expected and not isinstance(value, expected):
        raise ConfigError(f"config key '{path}' must be {getattr(hint, '__name__', hint)}, got {value!r}")
    return float(value) if hint is float else value


def validate(cfg: ModelConfig) -> ModelConfig:
    e, v, t, r = cfg.encoder, cfg.encoder.vision, cfg.encoder.text, cfg.restorer
    checks = [
        ("encoder.embed_dim", e.embed_dim > 0),
        ("encoder.vision.image_size", v.image_size > 0 and v.image_size % v.patch_size == 0),
        ("encoder.vision.width", v.width > 0 and v.width % v.heads == 0),
        ("encoder.vision.layers", v.layers >= 1),
        ("encoder.text.width", t.width > 0 and t.width % t.heads == 0),
        ("encoder.text.layers", t.layers >= 1),
        ("encoder.class_names", len(e.class_names) >= 2 and len(set(e.class_names)) == len(e.class_names)),
        ("encoder.prompt_template", "{}" in e.prompt_template),
        ("encoder.preprocess", e.preprocess in ("resize", "crop", "texture")),
        ("encoder.mean", len(e.mean) == 3),
        ("encoder.std", len(e.std) == 3 and all(s > 0 for s in e.std)),
        ("encoder.fixed_logit_scale", e.fixed_logit_scale >= 0),
        ("encoder.patch_tokens", 0 <= e.patch_tokens <= (v.image_size // v.patch_size) ** 2),
        ("restorer.width", r.width > 0 and r.width % r.attn_heads == 0),
        ("restorer.enc_blocks", len(r.enc_blocks) >= 1 and len(r.enc_blocks) == len(r.dec_blocks)),
        ("restorer.middle_blocks", r.middle_blocks >= 1),
        ("restorer.attn_levels", 0 <= r.attn_levels <= len(r.enc_blocks)),
        ("restorer.ffn_expand", r.ffn_expand >= 1),
        ("restorer.conditioning", r.conditioning in CONDITIONING),
        ("restorer.upsample", r.upsample in UPSAMPLING),
        ("restorer.stem", r.stem in STEMS),
    ]
    if cfg.diffusion is not None:
        u = cfg.diffusion.unet
        checks += [
            ("diffusion.unet.nf", u.nf >= 32 and u.nf % 32 == 0),  # heads of 32 channels, as DA-CLIP's
            ("diffusion.unet.ch_mult", len(u.ch_mult) >= 1 and all(m >= 1 for m in u.ch_mult)),
            ("diffusion.unet.in_nc", u.in_nc == 3 and u.out_nc == 3),
            # both contexts come from the encoder: its degradation and content embeddings
            ("diffusion.unet.context_dim", u.context_dim == e.embed_dim),
            ("diffusion.unet.use_degra_context", u.use_degra_context and u.use_image_context),
        ]
    for key, ok in checks:
        if not ok:
            raise ConfigError(f"bad value for config key '{key}'")
    return cfg


def config_from_dict(data: dict) -> ModelConfig:
    if "name" not in data:
        raise ConfigError("config key 'name' is missing")
    return validate(_build(ModelConfig, data, "config"))


def available_configs() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.json"))


def load_config(name_or_path: str | Path) -> ModelConfig:
    """A shipped config by name (``tiny``, ``base``) or a JSON file by path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = CONFIG_DIR / f"{name_or_path}.json"
        if not path.exists():
            raise ConfigError(f"no config named '{name_or_path}' (shipped: {', '.join(available_configs())})")
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except json.JSONDecodeError as err:
        raise ConfigError(f"config file {path} is not valid JSON: {err}") from None
    return config_from_dict(data)
