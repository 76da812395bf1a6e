"""The painter of the warp generator: what moving a photo's pixels cannot make.

A warp (:mod:`coursekit.warp`) opens a mouth by stretching the lips; no cavity, teeth or
tongue appear. :class:`Painter` paints them on an aligned face crop::

    rgb, alpha = painter(warped (B, 3, S, S), mask (B, 1, S, S), identity (B, 3, S, S))
    frame = compose(warped, mask, rgb, alpha)   # warped * (1 - alpha*mask) + rgb * alpha*mask

``warped``: the identity crop warped to the wanted landmarks, RGB in [-1, 1]; ``mask``: where
the lips part (:func:`paint_mask` of the wanted landmarks, in [0, 1]); ``identity``: the
unwarped crop (skin, lip and teeth colours). ``rgb`` in [-1, 1] and ``alpha`` in [0, 1];
:func:`compose` blends them in only where ``mask`` is above 0, so everywhere else the frame
IS the warped photo (its own pixels, at any resolution once pasted back).

Structure: the network looks at a ``window x window`` square of the crop around the mask's
centre of mass (the mouth: 64 px of a 112 px crop), folded ``patch x patch`` pixels into
channels, through a small convolutional encoder-decoder (strided convs down, pre-norm residual
blocks, nearest upsampling + convs up with skip connections; LeakyReLU, group norms), then
unfolded. Its colour outputs change the warped pixels (``rgb = tanh(out + atanh(warped))``,
so an untrained painter leaves the frame about as it is); outside the window ``alpha`` is 0
and ``rgb`` the warped crop.

Why not :class:`coursekit.models.unet.UNet` (the one UNet of the package, ``in_channels=7``,
``cond_mode="adagn"`` with a zero condition and ``t=0``): the generator leaves the painter
about 10 ms a frame beside the warp (>= 100 frames/s at 112 px on 2 CPU cores). Measured in
batches of 32 on 2 free cores (from the CPU time used; the shared machine ran them 20-50 %
slower), the UNet on whole crops runs 41 frames/s with ``patch=2`` and widths (32, 64, 96),
and reaches 100 only coarse (``patch=4``, 4 x 4 pixel blocks: 165) or thin (``patch=2``,
widths (16, 32, 64): 126); on the mouth window its ``patch=2`` (32, 64, 96) variant would run
about 125 (scaled by the pixel count; its group norms, always-on middle attention and two up
blocks per level cost the most). This net at the same widths on the window runs 330 frames/s
(``tiny()``: 930), leaving the frame budget to the warp (``benchmarks/painter_grid.md``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..data.warped import lips_mask
from ..presets import Presets
from .warp_input import warp_base


@dataclass(frozen=True)
class PainterConfig(Presets):
    """Sizes of :class:`Painter`.

    image_size: side S of the aligned crops. window: side of the square around the mouth
    the network sees (at most S). patch: pixels folded into channels (pixel-unshuffle).
    channels: width per resolution level (each level halves the size). blocks: residual
    blocks per level (and at the bottom). mask_feather, mask_grow: :func:`paint_mask`'s
    Gaussian fall-off (mouth widths) and dilation (pixels), stored so inference makes the
    mask training saw.

    ``paper()``: the defaults; ``tiny()``: thinner (:mod:`coursekit.presets`).
    """

    TINY: ClassVar[dict] = dict(channels=(16, 32, 48))

    image_size: int = 112
    window: int = 64
    patch: int = 2
    channels: tuple[int, ...] = (32, 64, 96)
    blocks: int = 1
    mask_feather: float = 0.12
    mask_grow: int = 1

    def __post_init__(self):
        side = min(self.window, self.image_size)
        unit = self.patch * 2 ** (len(self.channels) - 1)
        if side % unit:
            raise ValueError(f"PainterConfig: window {side} must be divisible by patch * "
                             f"2**(levels - 1) = {unit}")


def paint_mask(landmarks: np.ndarray, shape: tuple[int, int], cfg: PainterConfig | None = None
               ) -> np.ndarray:
    """The painter's mask of the wanted ``landmarks (68, 2)`` (crop pixels): where the lips
    part (:func:`coursekit.warp.mouth_mask`, ``cfg.mask_feather``) dilated by
    ``cfg.mask_grow`` pixels (:func:`coursekit.data.warped.lips_mask`). ``(H, W)`` float32
    in [0, 1]; all 0 for closed lips."""
    cfg = cfg or PainterConfig()
    return lips_mask(landmarks, shape, cfg.mask_feather, cfg.mask_grow)


def compose(warped: torch.Tensor, mask: torch.Tensor, rgb: torch.Tensor,
            alpha: torch.Tensor) -> torch.Tensor:
    """The painted frame ``warped * (1 - alpha*mask) + rgb * alpha*mask`` ``(B, 3, S, S)``:
    exactly ``warped`` wherever ``mask`` or ``alpha`` is 0."""
    a = alpha * mask
    return warped * (1 - a) + rgb * a


class _Residual(nn.Module):
    """``h + conv(act(conv(act(norm(h)))))`` at constant width (second conv zero-initialised;
    the group norm keeps the scale of the features from growing with training)."""

    def __init__(self, width: int, groups: int = 8):
        super().__init__()
        self.norm = nn.GroupNorm(math.gcd(groups, width), width)
        self.a = nn.Conv2d(width, width, 3, padding=1)
        self.b = nn.Conv2d(width, width, 3, padding=1)
        nn.init.zeros_(self.b.weight)
        nn.init.zeros_(self.b.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.b(F.leaky_relu(self.a(F.leaky_relu(self.norm(h), 0.2)), 0.2))


class Painter(nn.Module):
    """``(warped (B, 3, S, S), mask (B, 1, S, S), identity (B, 3, S, S)) -> (rgb (B, 3, S, S)
    in [-1, 1], alpha (B, 1, S, S) in [0, 1])``; see the module docstring."""

    def __init__(self, cfg: PainterConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or PainterConfig()
        ch, p2 = cfg.channels, cfg.patch ** 2
        self.stem = nn.Conv2d(7 * p2, ch[0], 3, padding=1)
        self.down = nn.ModuleList()
        self.enc = nn.ModuleList([nn.Sequential(*[_Residual(ch[0]) for _ in range(cfg.blocks)])])
        for lv in range(1, len(ch)):
            self.down.append(nn.Conv2d(ch[lv - 1], ch[lv], 3, stride=2, padding=1))
            self.enc.append(nn.Sequential(*[_Residual(ch[lv]) for _ in range(cfg.blocks)]))
        self.mid = nn.Sequential(*[_Residual(ch[-1]) for _ in range(cfg.blocks)])
        self.up = nn.ModuleList(nn.Conv2d(ch[lv + 1], ch[lv], 3, padding=1)
                                for lv in reversed(range(len(ch) - 1)))
        self.merge = nn.ModuleList(nn.Conv2d(2 * ch[lv], ch[lv], 3, padding=1)
                                   for lv in reversed(range(len(ch) - 1)))
        self.out_norm = nn.GroupNorm(math.gcd(8, ch[0]), ch[0])
        self.head = nn.Conv2d(ch[0], 4 * p2, 3, padding=1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def windows(self, mask: torch.Tensor) -> list[tuple[int, int]]:
        """Top-left ``(y0, x0)`` of each sample's window: centred on the mask's centre of mass
        (the lower middle of the crop for an empty mask), kept inside the image."""
        _, _, h, w = mask.shape
        side = min(self.cfg.window, h, w)
        m = mask.detach()[:, 0].float()
        total = m.sum((1, 2))
        ys = torch.arange(h, dtype=m.dtype, device=m.device)
        xs = torch.arange(w, dtype=m.dtype, device=m.device)
        cy = (m.sum(2) * ys).sum(1) / total.clamp(min=1e-6)
        cx = (m.sum(1) * xs).sum(1) / total.clamp(min=1e-6)
        empty = total < 1e-6
        cy = torch.where(empty, torch.full_like(cy, 0.7 * (h - 1)), cy)
        cx = torch.where(empty, torch.full_like(cx, 0.5 * (w - 1)), cx)
        y0 = (cy - (side - 1) / 2).round().clamp(0, h - side).long().tolist()
        x0 = (cx - (side - 1) / 2).round().clamp(0, w - side).long().tolist()
        return list(zip(y0, x0))

    def net(self, x: torch.Tensor) -> torch.Tensor:
        """The encoder-decoder on windows ``(N, 7, W, W) -> (N, 4, W, W)`` (raw outputs)."""
        p = self.cfg.patch
        h = F.leaky_relu(self.stem(F.pixel_unshuffle(x, p) if p > 1 else x), 0.2)
        skips = []
        for lv, block in enumerate(self.enc):
            if lv > 0:
                h = F.leaky_relu(self.down[lv - 1](h), 0.2)
            h = block(h)
            skips.append(h)
        h = self.mid(h)
        skips.pop()  # the bottom level's: h is there already
        for up, merge in zip(self.up, self.merge):
            h = F.leaky_relu(up(F.interpolate(h, scale_factor=2.0, mode="nearest")), 0.2)
            h = F.leaky_relu(merge(torch.cat([h, skips.pop()], 1)), 0.2)
        h = self.head(F.leaky_relu(self.out_norm(h), 0.2))
        return F.pixel_shuffle(h, p) if p > 1 else h

    def forward(self, warped: torch.Tensor, mask: torch.Tensor,
                identity: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n, _, h, w = warped.shape
        if (warped.dim() != 4 or warped.shape[1] != 3 or mask.shape != (n, 1, h, w)
                or identity.shape != warped.shape):
            raise ValueError(f"Painter: expected warped (B, 3, S, S), mask (B, 1, S, S) and "
                             f"identity (B, 3, S, S), got {tuple(warped.shape)}, "
                             f"{tuple(mask.shape)} and {tuple(identity.shape)}")
        side = min(self.cfg.window, h, w)
        corners = self.windows(mask)
        x = torch.cat([warped, mask.to(warped.dtype), identity], 1)
        crops = torch.stack([x[i, :, y:y + side, x0:x0 + side] for i, (y, x0) in enumerate(corners)])
        out = self.net(crops)
        # the colours are a change of the warped pixels (in tanh space): they start as them
        paint = torch.tanh(out[:, :3] + warp_base(crops[:, :3]))
        rgb, alpha = warped.clone(), warped.new_zeros(n, 1, h, w)
        for i, (y, x0) in enumerate(corners):
            rgb[i, :, y:y + side, x0:x0 + side] = paint[i]
            alpha[i, :, y:y + side, x0:x0 + side] = torch.sigmoid(out[i, 3:])
        return rgb, alpha
