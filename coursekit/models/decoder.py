"""Image decoder with U-Net skips from the identity encoder (paper section 3.1).

One fully connected layer turns a frame's fused feature ``f_t,k`` into a ``S/16 x S/16`` map;
six transposed convolutions bring it back to a ``3 x S x S`` image:

====  ===========================  ===========================================
step  layer                        size (S = 112)
====  ===========================  ===========================================
FC    Linear -> d1 x S/16 x S/16   7 x 7
1     [x, skip4] -> ConvT s2       7 -> 14
2     [x, skip3] -> ConvT s2       14 -> 28
3     [x, skip2] -> ConvT s2       28 -> 56
4     [x, skip1] -> ConvT s2       56 -> 112
5     ConvT s1 (k3)                112
6     ConvT s1 (k3) -> 3, tanh     112, values in [-1, 1]
====  ===========================  ===========================================

``[x, skip]`` concatenates the identity encoder's map of the same size along channels (the
U-Net idea: the identity's texture is copied, the decoder only has to move the mouth).

With a ``base`` (the talker's ``motion="warp"`` mode: ``atanh`` of the warped identity) the
last layer's output is added to it before the tanh, so the decoder paints a change of the
warped face, as the mouth painter does.

``cfg.attn_levels`` adds spatial self-attention (Face2Vid; the diffusion UNet's
:class:`~coursekit.models.unet.AttentionBlock`, residual) on the map of each listed level
``l`` (``S / 2**l``: 4 is the FC map, 1 the last upsampling's input), before its skip joins.
"""

from __future__ import annotations

import torch
from torch import nn

from .config import TalkerConfig
from .unet import AttentionBlock


def _up(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    kernel, pad = (4, 1) if stride == 2 else (3, 1)
    return nn.Sequential(nn.ConvTranspose2d(c_in, c_out, kernel, stride=stride, padding=pad,
                                            bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class ImageDecoder(nn.Module):
    """FC + 6 transposed convs (4 upsampling x2, 2 stride-1), skips, tanh output.

    Args:
        cfg: uses image_size S, enc_channels (skip widths), dec_channels (d1..d4).
        in_dim: width C of the per-frame feature (the fusion's output).

    ``forward(x (N, C), skips [(N, c1, S/2, S/2), ..., (N, c4, S/16, S/16)], base=None)
    -> (N, 3, S, S)``: ``tanh(out + base)`` (``base (N, 3, S, S)`` pre-activations, or none).
    ``N`` is ``B * T``: the talker repeats each clip's skips over its frames.
    """

    def __init__(self, cfg: TalkerConfig, in_dim: int):
        super().__init__()
        self.side = cfg.image_size // 16
        d, e = cfg.dec_channels, cfg.enc_channels
        self.fc = nn.Sequential(nn.Linear(in_dim, d[0] * self.side ** 2), nn.ReLU(inplace=True))
        # upsampling i sees [x, skip of the same size]; skips are used deepest first
        outs = (d[1], d[2], d[3], d[3])
        ins = (d[0], d[1], d[2], d[3])
        self.ups = nn.ModuleList(_up(ci + ce, co, 2) for ci, ce, co in zip(ins, e[::-1], outs))
        self.refine = _up(d[3], d[3], 1)
        self.out = nn.ConvTranspose2d(d[3], 3, 3, stride=1, padding=1)
        widths = dict(zip((4, 3, 2, 1), ins))  # level -> channels of the map it attends over
        self.attn = nn.ModuleDict({str(lv): AttentionBlock(widths[lv], cfg.heads, 8, cross=False)
                                   for lv in sorted(cfg.attn_levels)})

    def forward(self, x: torch.Tensor, skips: list[torch.Tensor],
                base: torch.Tensor | None = None) -> torch.Tensor:
        x = self.fc(x).reshape(x.shape[0], -1, self.side, self.side)
        for level, up, skip in zip((4, 3, 2, 1), self.ups, skips[::-1]):
            if str(level) in self.attn:
                x = self.attn[str(level)](x, None)
            x = up(torch.cat([x, skip], dim=1))
        out = self.out(self.refine(x))
        return torch.tanh(out if base is None else out + base)
