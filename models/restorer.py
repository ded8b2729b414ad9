"""The restorer (stage 2): a NAFNet-style U-Net conditioned on the mmf tokens by cross-attention.

Two ways to read the tokens (``RestorerConfig.conditioning``):

- ``modulation`` (the shipped configs): at every stage, learned queries (one per head) attend to the
  mmf tokens (content, degradation, class text); the attended values become a per-channel scale and
  shift of the stage's features (FiLM). The conditioning is the same for every pixel, so it cannot
  switch from cell to cell, and it is the same for every tile of an image (the tokens come from the
  whole image).
- ``pixel-attention`` (the first architecture): every pixel of the deepest levels is a query over the
  tokens. With three tokens the softmax picks a different mix in neighbouring 1/16-resolution cells,
  which shows as a 16-pixel block pattern on smooth regions (measured on the first shipped model: the
  jump across 16-px boundaries was 1.78x the jump elsewhere on low-light images, 1.16x with the
  attention output averaged over the pixels).

Haze showed the same grid from the 2x2 sampling itself (1.82x at period 16, falling to 1.11x at
period 2): ``upsample="bilinear"`` replaces the 1x1-conv + PixelShuffle upsampling with a 1x1 conv
at the low resolution followed by bilinear x2, which has no 2x2 cell structure. NAFNet's simplified
channel attention pools each block's whole input, so a tile sees other statistics than the whole
image; ``channel_attention=False`` drops it (global context comes from the tokens instead).

``stem="space-to-depth"`` rearranges each 2x2 cell of pixels into 12 channels before the first
convolution (and back after the last), so no level runs at full resolution. At width 16 the full-resolution
level's LayerNorms and residual additions were memory-bound element-wise passes, about 40 % of OpenVINO's
time on the tiny restorer; ``tiny-s2d`` (width 32 at half resolution, three levels) runs 1.70x faster on
OpenVINO at 512² (AVX2 AMD EPYC, random weights, README "Speed"). Trained alone (the shipped encoder, the
shipped restorer's recipe and step count) it matched the shipped ``tiny`` in mean PSNR (+5.95 vs +5.92 dB
on the demo's 72 held-out cases) but lost detail where the full-resolution level matters: denoising
+8.6 vs +9.7 dB, mean SSIM 0.788 vs 0.810. Nor does it raise OpenVINO's lead over torch: torch eager
gains more from it (1.75x vs OpenVINO's 1.48x under the AVX2 cap on an Intel Xeon). So ``tiny`` keeps the
full-resolution stem.

The output is a residual added to the input. H and W must be divisible by ``cfg.multiple`` (2 per
level, once more with the space-to-depth stem); the runtime pads.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from .config import RestorerConfig


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel axis of an NCHW tensor.

    The two channel means are 1x1 convolutions with a constant 1/C kernel instead of ``mean(dim=1)``: the
    same function (outputs 1.2e-7 apart on the shipped model), but onnxruntime's CPU runs a channel-axis
    ReduceMean slowly. Measured on this 2-core AMD EPYC, tiny restorer at 512², 2 threads, one run
    alternating the two graphs: onnxruntime 353 ms with ReduceMean vs 271 ms with the convolution (1.30x);
    OpenVINO unchanged (224 vs 225 ms); torch eager within noise (157 vs 164 ms). The kernel is a
    non-persistent buffer, so checkpoints are unchanged; FP16 export keeps these convolutions FP32.
    """

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps
        self.register_buffer("mean_kernel", torch.full((1, channels, 1, 1), 1.0 / channels), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return normalize_channels(x, self.mean_kernel, self.eps) * self.weight[:, None, None] + self.bias[:, None, None]


def normalize_channels(x: torch.Tensor, mean_kernel: torch.Tensor, eps: float) -> torch.Tensor:
    """LayerNorm2d without its affine: (x - mean_c x) / sqrt(var_c x + eps), the means as 1x1 convolutions."""
    d = x - F.conv2d(x, mean_kernel)
    return d / torch.sqrt(F.conv2d(d.pow(2), mean_kernel) + eps)


class SimpleGate(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        return a * b


class NAFBlock(nn.Module):
    def __init__(self, c: int, expand: int = 2, channel_attention: bool = True):
        super().__init__()
        dw = c * expand
        self.norm1 = LayerNorm2d(c)
        self.conv1 = nn.Conv2d(c, dw, 1)
        self.conv2 = nn.Conv2d(dw, dw, 3, padding=1, groups=dw)
        self.gate = SimpleGate()
        self.sca = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(dw // 2, dw // 2, 1)) if channel_attention else None
        self.conv3 = nn.Conv2d(dw // 2, c, 1)
        self.norm2 = LayerNorm2d(c)
        self.conv4 = nn.Conv2d(c, c * expand, 1)
        self.conv5 = nn.Conv2d(c * expand // 2, c, 1)
        self.beta = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, c, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.gate(self.conv2(self.conv1(self.norm1(x))))
        y = self.conv3(y * self.sca(y) if self.sca is not None else y)
        x = x + y * self.beta
        y = self.conv5(self.gate(self.conv4(self.norm2(x))))
        return x + y * self.gamma


class FusedNAFBlock(nn.Module):
    """A NAFBlock's inference form: the same function, fewer passes over the feature map.

    Built from a trained block by ``inference_form`` (the export uses it; training and the torch reference
    use NAFBlock). Folded: each LayerNorm2d's affine into the 1x1 convolution after it, ``beta`` and
    ``gamma`` into the convolutions before them; SimpleGate's channel split becomes two half convolutions
    (the depthwise 3x3 acts per channel, so it splits too), which removes the Split op that OpenVINO runs
    with a reference kernel. Tiny restorer, 512², 2 threads, AVX2 AMD EPYC, one run alternating the graphs:
    OpenVINO 239 -> 184 ms with the modulation change in TokenModulation, onnxruntime 246 -> 210 ms;
    outputs 2e-5 apart at most (the folded weights round differently). Variants measured and not taken: the
    channel means as ReduceMean (onnxruntime 1.35x slower), centring folded into the convolutions with
    var = E[x²] - mean² (slower on both), LayerNormalization between transposes (1.7x slower on OpenVINO).
    """

    def __init__(self, block: NAFBlock):
        super().__init__()
        self.eps = block.norm1.eps
        self.register_buffer("mean_kernel", block.norm1.mean_kernel.clone(), persistent=False)
        self.half = block.conv1.out_channels // 2
        w1, b1 = fold_norm(block.norm1, block.conv1)
        w4, b4 = fold_norm(block.norm2, block.conv4)
        w2, b2 = block.conv2.weight.detach(), block.conv2.bias.detach()
        h = self.half
        self.conv1a, self.conv1b = conv1x1(w1[:h], b1[:h]), conv1x1(w1[h:], b1[h:])
        self.conv2a, self.conv2b = depthwise3x3(w2[:h], b2[:h]), depthwise3x3(w2[h:], b2[h:])
        self.sca = copy.deepcopy(block.sca)
        self.conv3 = scaled_conv(block.conv3, block.beta)
        h4 = block.conv4.out_channels // 2
        self.conv4a, self.conv4b = conv1x1(w4[:h4], b4[:h4]), conv1x1(w4[h4:], b4[h4:])
        self.conv5 = scaled_conv(block.conv5, block.gamma)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = normalize_channels(x, self.mean_kernel, self.eps)
        y = self.conv2a(self.conv1a(n)) * self.conv2b(self.conv1b(n))
        x = x + self.conv3(y * self.sca(y) if self.sca is not None else y)
        n = normalize_channels(x, self.mean_kernel, self.eps)
        return x + self.conv5(self.conv4a(n) * self.conv4b(n))


def fold_norm(norm: LayerNorm2d, conv: nn.Conv2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight [O, C] and bias of ``conv(norm(x))`` as a convolution of the normalised x."""
    w = conv.weight.detach()[:, :, 0, 0]
    return w * norm.weight.detach()[None], conv.bias.detach() + w @ norm.bias.detach()


def conv1x1(weight: torch.Tensor, bias: torch.Tensor) -> nn.Conv2d:
    conv = nn.Conv2d(weight.shape[1], weight.shape[0], 1)
    conv.weight.data.copy_(weight[:, :, None, None])
    conv.bias.data.copy_(bias)
    return conv


def depthwise3x3(weight: torch.Tensor, bias: torch.Tensor) -> nn.Conv2d:
    conv = nn.Conv2d(weight.shape[0], weight.shape[0], 3, padding=1, groups=weight.shape[0])
    conv.weight.data.copy_(weight)
    conv.bias.data.copy_(bias)
    return conv


def scaled_conv(conv: nn.Conv2d, scale: torch.Tensor) -> nn.Conv2d:
    """``conv(x) * scale`` (scale [1, O, 1, 1]) as one convolution."""
    out = copy.deepcopy(conv)
    s = scale.detach().reshape(-1)
    out.weight.data.mul_(s[:, None, None, None])
    out.bias.data.mul_(s)
    return out


def inference_form(restorer: nn.Module) -> nn.Module:
    """A copy of ``restorer`` with every NAFBlock replaced by its FusedNAFBlock (same function; for export)."""
    fused = copy.deepcopy(restorer).eval()
    for module in list(fused.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, NAFBlock):
                setattr(module, name, FusedNAFBlock(child))
    return fused


class CrossAttention(nn.Module):
    """Pixels (queries) attend to the mmf tokens (keys/values); zero-initialised output."""

    def __init__(self, c: int, token_dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm = LayerNorm2d(c)
        self.q = nn.Conv2d(c, c, 1)
        self.kv = nn.Linear(token_dim, 2 * c)
        self.out = nn.Conv2d(c, c, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        d = c // self.heads
        q = self.q(self.norm(x)).reshape(b, self.heads, d, h * w).transpose(2, 3)  # b, heads, hw, d
        k, v = self.kv(tokens).chunk(2, dim=-1)  # b, t, c
        k = k.reshape(b, -1, self.heads, d).transpose(1, 2)  # b, heads, t, d
        v = v.reshape(b, -1, self.heads, d).transpose(1, 2)
        attn = (q @ k.transpose(2, 3)) * (d ** -0.5)
        y = attn.softmax(dim=-1) @ v  # b, heads, hw, d
        y = y.transpose(2, 3).reshape(b, c, h, w)
        return x + self.out(y)


class TokenModulation(nn.Module):
    """Learned queries attend to the mmf tokens; the result scales and shifts the channels (zero-initialised).

    One query per head over the tokens' keys gives a mix of their values per head; a linear layer maps
    the C attended values to a scale and a shift per channel: ``x * (1 + scale) + shift``, the same for
    every pixel. Nothing here reads the image, so every tile of an image gets the same modulation.
    """

    def __init__(self, c: int, token_dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.query = nn.Parameter(torch.randn(heads, c // heads) * (c // heads) ** -0.5)
        self.kv = nn.Linear(token_dim, 2 * c)
        self.film = nn.Linear(c, 2 * c)
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)

    def forward(self, x: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        # b and c from the tokens and the weights, never from x: a Shape of the feature map in the exported
        # graph made OpenVINO run the modulation in a planar layout, with a reorder of the whole map before
        # it (about 20 % of the tiny restorer's time at 512² on an AVX2 CPU)
        b, c = tokens.shape[0], self.film.in_features
        d = c // self.heads
        k, v = self.kv(tokens).chunk(2, dim=-1)  # b, t, c
        k = k.reshape(b, -1, self.heads, d).transpose(1, 2)  # b, heads, t, d
        v = v.reshape(b, -1, self.heads, d).transpose(1, 2)
        attn = (k @ self.query[:, :, None]).squeeze(-1) * (d ** -0.5)  # b, heads, t
        y = (attn.softmax(dim=-1)[:, :, None] @ v).reshape(b, c)  # b, heads, 1, d -> b, c
        film = self.film(y).reshape(b, 2 * c, 1, 1)
        return x * (1 + film[:, :c]) + film[:, c:]


class Stage(nn.Module):
    """NAF blocks, optionally followed by the tokens' conditioning (pixel cross-attention or modulation)."""

    def __init__(self, c: int, blocks: int, cfg: RestorerConfig, token_dim: int, attend: bool):
        super().__init__()
        self.blocks = nn.Sequential(*[NAFBlock(c, cfg.ffn_expand, cfg.channel_attention) for _ in range(blocks)])
        if cfg.conditioning == "modulation":
            self.attn = TokenModulation(c, token_dim, cfg.attn_heads)
        else:
            self.attn = CrossAttention(c, token_dim, cfg.attn_heads) if attend else None

    def forward(self, x: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        x = self.blocks(x)
        return self.attn(x, tokens) if self.attn is not None else x


def upsampler(c: int, kind: str) -> nn.Module:
    """C channels at H x W -> C/2 channels at 2H x 2W."""
    if kind == "bilinear":  # the 1x1 conv commutes with the interpolation: run it at the low resolution
        return nn.Sequential(nn.Conv2d(c, c // 2, 1, bias=False),
                             nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False))
    return nn.Sequential(nn.Conv2d(c, 2 * c, 1, bias=False), nn.PixelShuffle(2))


class Restorer(nn.Module):
    def __init__(self, cfg: RestorerConfig, token_dim: int):
        super().__init__()
        self.cfg = cfg
        levels = len(cfg.enc_blocks)
        self.multiple = cfg.multiple
        attend = [lvl >= levels - cfg.attn_levels for lvl in range(levels)]
        cells = 4 if cfg.stem == "space-to-depth" else 1  # pixels per stem cell
        self.to_cells = nn.PixelUnshuffle(2) if cells > 1 else nn.Identity()
        self.from_cells = nn.PixelShuffle(2) if cells > 1 else nn.Identity()
        self.intro = nn.Conv2d(3 * cells, cfg.width, 3, padding=1)
        self.ending = nn.Conv2d(cfg.width, 3 * cells, 3, padding=1)
        self.encoders, self.downs, self.ups, self.decoders = (nn.ModuleList() for _ in range(4))
        c = cfg.width
        for lvl, n in enumerate(cfg.enc_blocks):
            self.encoders.append(Stage(c, n, cfg, token_dim, attend[lvl]))
            self.downs.append(nn.Conv2d(c, 2 * c, 2, stride=2))
            c *= 2
        self.middle = Stage(c, cfg.middle_blocks, cfg, token_dim, cfg.attn_levels > 0)
        for lvl, n in reversed(list(enumerate(cfg.dec_blocks))):
            self.ups.append(upsampler(c, cfg.upsample))
            c //= 2
            self.decoders.append(Stage(c, n, cfg, token_dim, attend[lvl]))

    def forward(self, image: torch.Tensor, mmf: torch.Tensor) -> torch.Tensor:
        x = self.intro(self.to_cells(image))
        skips = []
        for stage, down in zip(self.encoders, self.downs):
            x = stage(x, mmf)
            skips.append(x)
            x = down(x)
        x = self.middle(x, mmf)
        for up, stage, skip in zip(self.ups, self.decoders, reversed(skips)):
            x = stage(up(x) + skip, mmf)
        return image + self.from_cells(self.ending(x))

    def pad_forward(self, image: torch.Tensor, mmf: torch.Tensor) -> torch.Tensor:
        """Forward on any H, W: reflect-pad to the multiple, crop back."""
        h, w = image.shape[-2:]
        ph, pw = (-h) % self.multiple, (-w) % self.multiple
        x = F.pad(image, (0, pw, 0, ph), mode="reflect") if (ph or pw) else image
        return self(x, mmf)[..., :h, :w]
