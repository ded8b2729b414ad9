"""DA-CLIP's diffusion restorer: the conditional U-Net that IR-SDE calls at every sampling step.

Written for mmfir in the module layout of DA-CLIP's ``ConditionalUNet``
(``universal-image-restoration/config/daclip-sde/models/modules/DenoisingUNet_arch.py``, commit c2cc141),
so DA-CLIP's released ``universal-ir.pth`` state dict loads key for key. What it computes:

- input: the state ``xt`` and the degraded image ``cond`` (the SDE's mean), concatenated as
  ``[xt - cond, cond]``, reflect-padded to a multiple of ``2 ** len(ch_mult)``, cropped back at the end;
- the time step through a sinusoidal embedding and an MLP; the controller's degradation embedding
  (``text_context``) becomes a prompt (softmax of an MLP of it, times a learned prompt vector, through a
  linear layer) added to the time embedding;
- per level: two ResBlocks (the time embedding scales and shifts the first conv), attention, down/up
  sampling. Attention is ``LinearAttention`` over all pixels at the upper levels and, at the deepest level
  and in the middle, a transformer block (self-attention over all pixels, cross-attention to the content
  embedding ``image_context``, gated feed-forward); skip connections are concatenated;
- output: the predicted noise in ``xt``.

Two parts look at every pixel of the input (``LinearAttention``'s context and the deepest self-attention),
so running it on tiles changes the result; ``SDEUNetConfig`` matches DA-CLIP's options file.
"""
from __future__ import annotations

import math
import torch
import torch.nn.functional as F
from torch import nn

from .config import SDEUNetConfig

__all__ = ["SDEUNet", "SDEUNetConfig"]

HEAD_CHANNELS = 32  # DA-CLIP: num_head_channels = dim_head = 32


def conv(c_in: int, c_out: int, k: int = 3, bias: bool = False) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=bias)


class SinusoidalEmbedding(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.dim // 2
        freqs = torch.exp(torch.arange(half, device=t.device, dtype=torch.float32) * -(math.log(10000) / (half - 1)))
        angles = t.float()[:, None] * freqs[None]
        return torch.cat([angles.sin(), angles.cos()], dim=-1)


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channels of NCHW with a gain and no bias (eps 1e-5 in FP32, as DA-CLIP)."""

    def __init__(self, dim: int):
        super().__init__()
        self.g = nn.Parameter(torch.ones(1, dim, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        eps = 1e-5 if x.dtype == torch.float32 else 1e-3
        mean = x.mean(dim=1, keepdim=True)
        var = (x - mean).pow(2).mean(dim=1, keepdim=True)
        return (x - mean) * torch.rsqrt(var + eps) * self.g


class ConvBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.proj = conv(c_in, c_out)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor, scale_shift=None) -> torch.Tensor:
        x = self.proj(x)
        if scale_shift is not None:
            scale, shift = scale_shift
            x = x * (scale + 1) + shift
        return self.act(x)


class ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, time_dim: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.SiLU(), nn.Linear(time_dim, 2 * c_out))
        self.block1 = ConvBlock(c_in, c_out)
        self.block2 = ConvBlock(c_out, c_out)
        self.res_conv = conv(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        scale_shift = self.mlp(temb)[:, :, None, None].chunk(2, dim=1)
        return self.block2(self.block1(x, scale_shift)) + self.res_conv(x)


class LinearAttention(nn.Module):
    """Softmax-kernel linear attention over all pixels: keys and values summarised into a (d x d) context."""

    def __init__(self, dim: int, heads: int = 4, dim_head: int = 32):
        super().__init__()
        self.heads, self.scale = heads, dim_head ** -0.5
        hidden = heads * dim_head
        self.to_qkv = nn.Conv2d(dim, 3 * hidden, 1, bias=False)
        self.to_out = nn.Sequential(nn.Conv2d(hidden, dim, 1), ChannelLayerNorm(dim))

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        b, _, h, w = x.shape
        q, k, v = (t.reshape(b, self.heads, -1, h * w) for t in self.to_qkv(x).chunk(3, dim=1))
        q = q.softmax(dim=-2) * self.scale
        k = k.softmax(dim=-1)
        v = v / (h * w)
        summary = k @ v.transpose(-1, -2)  # b, heads, d, e
        out = summary.transpose(-1, -2) @ q  # b, heads, e, n
        return self.to_out(out.reshape(b, -1, h, w))


class Attention(nn.Module):
    """Multi-head attention of ``x`` (b, n, dim) over ``context`` (b, m, context_dim), or over itself."""

    def __init__(self, dim: int, context_dim: int | None, heads: int, dim_head: int):
        super().__init__()
        inner, context_dim = heads * dim_head, context_dim or dim
        self.heads, self.scale = heads, dim_head ** -0.5
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_k = nn.Linear(context_dim, inner, bias=False)
        self.to_v = nn.Linear(context_dim, inner, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, dim), nn.Dropout(0.0))

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        context = x if context is None else context
        split = lambda t: t.reshape(t.shape[0], t.shape[1], self.heads, -1).transpose(1, 2)  # noqa: E731
        q, k, v = split(self.to_q(x)), split(self.to_k(context)), split(self.to_v(context))
        attn = ((q @ k.transpose(-1, -2)) * self.scale).softmax(dim=-1)
        out = (attn @ v).transpose(1, 2).reshape(x.shape[0], x.shape[1], -1)
        return self.to_out(out)


class GatedFeedForward(nn.Module):
    def __init__(self, dim: int, mult: int = 4):
        super().__init__()
        inner = dim * mult
        self.net = nn.Sequential(GEGLU(dim, inner), nn.Dropout(0.0), nn.Linear(inner, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class GEGLU(nn.Module):
    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.proj = nn.Linear(dim_in, 2 * dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, gate = self.proj(x).chunk(2, dim=-1)
        return x * F.gelu(gate)


class TransformerBlock(nn.Module):
    def __init__(self, dim: int, heads: int, dim_head: int, context_dim: int):
        super().__init__()
        self.attn1 = Attention(dim, None, heads, dim_head)
        self.ff = GatedFeedForward(dim)
        self.attn2 = Attention(dim, context_dim, heads, dim_head)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        x = self.attn1(self.norm1(x)) + x
        x = self.attn2(self.norm2(x), context) + x
        return self.ff(self.norm3(x)) + x


class SpatialTransformer(nn.Module):
    """GroupNorm, 1x1 in, a transformer block over the pixels (self- then cross-attention), 1x1 out (zero init)."""

    def __init__(self, dim: int, heads: int, dim_head: int, context_dim: int):
        super().__init__()
        inner = heads * dim_head
        self.norm = nn.GroupNorm(32, dim, eps=1e-6)
        self.proj_in = nn.Conv2d(dim, inner, 1)
        self.transformer_blocks = nn.ModuleList([TransformerBlock(inner, heads, dim_head, context_dim)])
        self.proj_out = nn.Conv2d(inner, dim, 1)
        nn.init.zeros_(self.proj_out.weight)
        nn.init.zeros_(self.proj_out.bias)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        b, _, h, w = x.shape
        y = self.proj_in(self.norm(x)).flatten(2).transpose(1, 2)
        for block in self.transformer_blocks:
            y = block(y, context)
        return self.proj_out(y.transpose(1, 2).reshape(b, -1, h, w)) + x


class PreNormResidual(nn.Module):
    """``x + fn(norm(x), context)``; the attribute names (``fn.norm``, ``fn.fn``) are DA-CLIP's
    ``Residual(PreNorm(dim, fn))``."""

    def __init__(self, dim: int, fn: nn.Module):
        super().__init__()
        self.fn = nn.Module()
        self.fn.norm = ChannelLayerNorm(dim)
        self.fn.fn = fn

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        return self.fn.fn(self.fn.norm(x), context) + x


class SDEUNet(nn.Module):
    """``forward(xt, cond, time, text_context, image_context) -> predicted noise``, shapes as ``xt``."""

    def __init__(self, cfg: SDEUNetConfig = SDEUNetConfig()):
        super().__init__()
        self.cfg = cfg
        nf, time_dim, ctx = cfg.nf, 4 * cfg.nf, cfg.context_dim
        self.init_conv = conv(2 * cfg.in_nc, nf, 7)
        self.time_mlp = nn.Sequential(SinusoidalEmbedding(nf), nn.Linear(nf, time_dim), nn.GELU(),
                                      nn.Linear(time_dim, time_dim))
        self.degra = ctx > 0 and cfg.use_degra_context
        self.image = ctx > 0 and cfg.use_image_context
        if self.degra:
            self.prompt = nn.Parameter(torch.rand(1, time_dim))
            self.text_mlp = nn.Sequential(nn.Linear(ctx, time_dim), nn.SiLU(), nn.Linear(time_dim, time_dim))
            self.prompt_mlp = nn.Linear(time_dim, time_dim)

        def attention(dim: int, deepest: bool) -> nn.Module:
            if self.image and deepest:
                return SpatialTransformer(dim, dim // HEAD_CHANNELS, HEAD_CHANNELS, ctx)
            return LinearAttention(dim)

        depth, mult = len(cfg.ch_mult), (1, *cfg.ch_mult)
        self.downs, self.ups = nn.ModuleList(), nn.ModuleList()
        for i in range(depth):
            d_in, d_out, last = nf * mult[i], nf * mult[i + 1], i == depth - 1
            self.downs.append(nn.ModuleList([
                ResBlock(d_in, d_in, time_dim), ResBlock(d_in, d_in, time_dim),
                PreNormResidual(d_in, attention(d_in, i >= 3)),
                conv(d_in, d_out) if last else nn.Conv2d(d_in, d_out, 4, 2, 1)]))
            self.ups.insert(0, nn.ModuleList([
                ResBlock(d_out + d_in, d_out, time_dim), ResBlock(d_out + d_in, d_out, time_dim),
                PreNormResidual(d_out, attention(d_out, i >= 3)),
                conv(d_out, d_in) if i == 0 else nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                                               nn.Conv2d(d_out, d_in, 3, 1, 1))]))
        mid = nf * mult[-1]
        self.mid_block1 = ResBlock(mid, mid, time_dim)
        self.mid_attn = PreNormResidual(mid, attention(mid, True))
        self.mid_block2 = ResBlock(mid, mid, time_dim)
        self.final_res_block = ResBlock(2 * nf, nf, time_dim)
        self.final_conv = nn.Conv2d(nf, cfg.out_nc, 3, 1, 1)

    def forward(self, xt: torch.Tensor, cond: torch.Tensor, time: torch.Tensor,
                text_context: torch.Tensor | None = None, image_context: torch.Tensor | None = None) -> torch.Tensor:
        h, w = xt.shape[-2:]
        m = self.cfg.multiple
        x = torch.cat([xt - cond, cond], dim=1)
        x = F.pad(x, (0, (-w) % m, 0, (-h) % m), mode="reflect")
        x = self.init_conv(x)
        first = x
        t = self.time_mlp(time.reshape(-1))
        if self.degra and text_context is not None:
            t = t + self.prompt_mlp(torch.softmax(self.text_mlp(text_context), dim=1) * self.prompt)
        context = image_context[:, None] if self.image and image_context is not None else None
        skips = []
        for b1, b2, attn, down in self.downs:
            x = b1(x, t)
            skips.append(x)
            x = attn(b2(x, t), context)
            skips.append(x)
            x = down(x)
        x = self.mid_block2(self.mid_attn(self.mid_block1(x, t), context), t)
        for b1, b2, attn, up in self.ups:
            x = b1(torch.cat([x, skips.pop()], dim=1), t)
            x = b2(torch.cat([x, skips.pop()], dim=1), t)
            x = up(attn(x, context))
        x = self.final_res_block(torch.cat([x, first], dim=1), t)
        return self.final_conv(x)[..., :h, :w]
