"""The conditional denoising UNet of the diffusion renderer (one network, variants by config).

``UNet(x (N, C_in, S, S), t (N,), cond (N, D)) -> (N, C_out, S, S)``

* **Input channels**: the noisy frame ``x_t`` stacked with the identity image and the
  Id-face (``A * I_id``): 3 + 3 + 3 = 9 channels, so the identity reaches the network at full
  resolution, as in image-to-image diffusion models.
* **Time**: a sinusoidal embedding of ``t`` and a 2-layer MLP.
* **Per-frame condition** ``cond`` (the TCSAN output of the frame: audio, Audio2AU and
  Aud-face mixed over time) reaches the network two ways (``cond_mode``):

  - *adaptive group norm* (``"adagn"``): ``emb = time_emb + Linear(cond)``; every residual
    block normalises its features and applies ``(1 + scale) * h + shift`` with
    ``(scale, shift) = Linear(emb)``. A linear map of the whole vector: every conditioning
    dimension reaches every block (the reference code passed only 8 of 1024);
  - *cross-attention* (``"xattn"``): at the levels in ``attn_levels`` the image tokens attend
    to the condition cut into ``D / cond_token_dim`` tokens (with learned positions).

* **Shape**: ``patch > 1`` first folds ``patch x patch`` pixels into channels
  (pixel-unshuffle) and unfolds them at the end: a 64 px frame is then denoised on a 32 x 32
  grid, 4x cheaper, which the tiny CPU config uses.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .config import UNetConfig


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding ``(N,) -> (N, dim)`` (cos half, sin half)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def _norm(channels: int, groups: int, affine: bool = True) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(groups, channels), channels, affine=affine)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, with the embedding as scale and shift of the second norm.

    ``forward(h (N, c_in, H, W), emb (N, E)) -> (N, c_out, H, W)``
    """

    def __init__(self, c_in: int, c_out: int, emb_dim: int, groups: int, dropout: float,
                 adaptive: bool):
        super().__init__()
        self.norm1 = _norm(c_in, groups)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * c_out if adaptive else c_out)
        self.adaptive = adaptive
        self.norm2 = _norm(c_out, groups, affine=not adaptive)
        self.drop = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        x = self.conv1(F.silu(self.norm1(h)))
        e = self.emb(F.silu(emb))[:, :, None, None]
        if self.adaptive:
            scale, shift = e.chunk(2, dim=1)
            x = self.norm2(x) * (1 + scale) + shift
        else:
            x = self.norm2(x + e)
        return self.skip(h) + self.conv2(self.drop(F.silu(x)))


class AttentionBlock(nn.Module):
    """Spatial self-attention, then (optionally) cross-attention to condition tokens.

    ``forward(h (N, C, H, W), tokens (N, K, C) or None) -> (N, C, H, W)``
    """

    def __init__(self, channels: int, heads: int, groups: int, cross: bool):
        super().__init__()
        self.norm = _norm(channels, groups)
        self.self_attn = nn.MultiheadAttention(channels, heads, batch_first=True)
        self.cross = cross
        if cross:
            self.norm_x = nn.LayerNorm(channels)
            self.cross_attn = nn.MultiheadAttention(channels, heads, batch_first=True)

    def forward(self, h: torch.Tensor, tokens: torch.Tensor | None) -> torch.Tensor:
        n, c, hh, ww = h.shape
        x = self.norm(h).flatten(2).transpose(1, 2)  # (N, HW, C)
        x = x + self.self_attn(x, x, x, need_weights=False)[0]
        if self.cross:
            q = self.norm_x(x)
            x = x + self.cross_attn(q, tokens, tokens, need_weights=False)[0]
        return h + x.transpose(1, 2).reshape(n, c, hh, ww)


class UNet(nn.Module):
    """Denoiser ``(x (N, in_channels, S, S), t (N,), cond (N, cond_dim)) -> (N, out_channels, S, S)``.

    ``S`` must be divisible by ``patch * 2 ** (len(channels) - 1)``.
    """

    def __init__(self, cfg: UNetConfig):
        super().__init__()
        self.cfg = cfg
        p2, ch, emb = cfg.patch ** 2, cfg.channels, cfg.time_dim
        adaptive = cfg.cond_mode in ("adagn", "both")
        self.cross = cfg.cond_mode in ("xattn", "both")
        self.time_mlp = nn.Sequential(nn.Linear(emb, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.cond_mlp = nn.Sequential(nn.Linear(cfg.cond_dim, emb), nn.SiLU(), nn.Linear(emb, emb))
        n_tokens = cfg.cond_dim // cfg.cond_token_dim
        self.token_proj = nn.ModuleDict()
        if self.cross:
            self.token_pos = nn.Parameter(torch.zeros(1, n_tokens, cfg.cond_token_dim))
            for lv in sorted({*cfg.attn_levels, len(ch) - 1}):
                self.token_proj[str(lv)] = nn.Linear(cfg.cond_token_dim, ch[lv])
        self.stem = nn.Conv2d(cfg.in_channels * p2, ch[0], 3, padding=1)

        def block(ci, co):
            return ResBlock(ci, co, emb, cfg.groups, cfg.dropout, adaptive)

        def attn(c):
            return AttentionBlock(c, cfg.heads, cfg.groups, self.cross)

        self.down, skip_widths, c = nn.ModuleList(), [ch[0]], ch[0]
        for lv, width in enumerate(ch):
            for _ in range(cfg.blocks):
                layer = nn.ModuleList([block(c, width)])
                if lv in cfg.attn_levels:
                    layer.append(attn(width))
                self.down.append(layer)
                c = width
                skip_widths.append(c)
            if lv < len(ch) - 1:
                self.down.append(nn.ModuleList([nn.Conv2d(c, c, 3, stride=2, padding=1)]))
                skip_widths.append(c)
        last = len(ch) - 1
        self.mid = nn.ModuleList([block(c, c), attn(c), block(c, c)])
        self.mid_level = last
        self.up = nn.ModuleList()
        for lv in reversed(range(len(ch))):
            for i in range(cfg.blocks + 1):
                layer = nn.ModuleList([block(c + skip_widths.pop(), ch[lv])])
                c = ch[lv]
                if lv in cfg.attn_levels:
                    layer.append(attn(c))
                if lv > 0 and i == cfg.blocks:
                    layer.append(nn.Upsample(scale_factor=2, mode="nearest"))
                    layer.append(nn.Conv2d(c, c, 3, padding=1))
                self.up.append(layer)
        self.out_norm = _norm(c, cfg.groups)
        self.out = nn.Conv2d(c, cfg.out_channels * p2, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.down_levels, self.up_levels = self._level_of_layers()

    def _level_of_layers(self) -> tuple[list[int], list[int]]:
        """Resolution level of each down and up layer, by position (to pick the right token
        projection). Plain ints, not object ids: a deep copy (the trainer's EMA model) or a
        reloaded model finds the same levels."""
        down, lv = [], 0
        for layer in self.down:
            down.append(lv)
            if isinstance(layer[0], nn.Conv2d):
                lv += 1
        up = [len(self.cfg.channels) - 1 - i // (self.cfg.blocks + 1) for i in range(len(self.up))]
        return down, up

    def _run(self, layer: nn.ModuleList, level: int, h, emb, tokens):
        for m in layer:
            if isinstance(m, ResBlock):
                h = m(h, emb)
            elif isinstance(m, AttentionBlock):
                h = m(h, tokens.get(level) if tokens else None)
            else:
                h = m(h)
        return h

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        if x.dim() != 4 or x.shape[1] != cfg.in_channels or cond.shape != (x.shape[0], cfg.cond_dim):
            raise ValueError(f"expected x (N, {cfg.in_channels}, S, S) and cond (N, {cfg.cond_dim}), "
                             f"got {tuple(x.shape)} and {tuple(cond.shape)}")
        t = torch.as_tensor(t, device=x.device).expand(x.shape[0])
        emb = self.time_mlp(timestep_embedding(t, cfg.time_dim).to(x.dtype))
        if cfg.cond_mode in ("adagn", "both"):
            emb = emb + self.cond_mlp(cond)
        tokens = {}
        if self.cross:
            raw = cond.reshape(len(cond), -1, cfg.cond_token_dim) + self.token_pos
            tokens = {int(lv): proj(raw) for lv, proj in self.token_proj.items()}
        h = F.pixel_unshuffle(x, cfg.patch) if cfg.patch > 1 else x
        h = self.stem(h)
        skips = [h]
        for layer, level in zip(self.down, self.down_levels):
            h = self._run(layer, level, h, emb, tokens)
            skips.append(h)
        h = self.mid[0](h, emb)
        h = self.mid[1](h, tokens.get(self.mid_level) if tokens else None)
        h = self.mid[2](h, emb)
        for layer, level in zip(self.up, self.up_levels):
            h = torch.cat([h, skips.pop()], dim=1)
            h = self._run(layer, level, h, emb, tokens)
        h = self.out(F.silu(self.out_norm(h)))
        return F.pixel_shuffle(h, cfg.patch) if cfg.patch > 1 else h
