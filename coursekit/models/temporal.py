"""Face2Vid's temporal link for the image-decoder talker (``TalkerConfig.temporal="flow"``).

Yu et al. (2020) synthesise a video from landmarks with the optical flow between consecutive
frames carrying the temporal dependency. Here the landmarks arrive as the ``motion="warp"``
inputs (the identity warped to each frame's wanted landmarks, :mod:`coursekit.data.warped`),
and the flow is that of consecutive warped identity frames (:func:`coursekit.data.flow.frame_flows`):
the flow of the conditioning, known at inference too.

Every frame ``t`` also gets ``previous_t``: the frame before it moved to it along
``flow_t``, ``(B, T, 3, S, S)`` in [-1, 1]. :class:`PreviousEncoder` reads it (4 stride-2
convs, the identity encoder's widths) and adds a zero-initialised 1x1 projection of each map
to the U-Net skip of the same size, so an untrained temporal talker decodes exactly as a
``motion="warp"`` one and learns how much of the previous frame to carry over.

* training (teacher forcing): ``previous`` is the previous *real* frame, flow-warped (the
  dataset field of the same name, :class:`coursekit.data.flow.FlowCache`); all frames are
  decoded at once (:func:`decode_teacher_forced`);
* inference (autoregressive): frame ``t`` reads the *generated* frame ``t - 1`` warped by
  ``flow_t``; the first frame reads its warped identity (:func:`decode_autoregressive`).

The fusion network sees none of this (its context runs both ways in time, so it must not
depend on generated frames): only the decoder is sequential.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..data.flow import flow_warp, frame_flows
from .config import TalkerConfig


class PreviousEncoder(nn.Module):
    """Maps of the previous frame added to the U-Net skips.

    ``forward(previous (N, 3, S, S), skips [(N, c_i, S / 2**i, S / 2**i)] * 4)`` -> the skips
    plus a (zero-initialised) 1x1 projection of this encoder's map of the same size.
    """

    def __init__(self, cfg: TalkerConfig):
        super().__init__()
        layers, c_in = [], 3
        for c_out in cfg.enc_channels:
            layers.append(nn.Sequential(nn.Conv2d(c_in, c_out, 4, stride=2, padding=1),
                                        nn.ReLU(inplace=True)))
            c_in = c_out
        self.convs = nn.ModuleList(layers)
        self.proj = nn.ModuleList(nn.Conv2d(c, c, 1) for c in cfg.enc_channels)
        for p in self.proj:
            nn.init.zeros_(p.weight)
            nn.init.zeros_(p.bias)

    def forward(self, previous: torch.Tensor, skips: list[torch.Tensor]) -> list[torch.Tensor]:
        out, x = [], previous
        for conv, proj, skip in zip(self.convs, self.proj, skips):
            x = conv(x)
            out.append(skip + proj(x))
        return out


def conditioning_flow(warped: torch.Tensor) -> torch.Tensor:
    """Flows ``(B, T, 2, S, S)`` of the warped identity ``(B, T, 3, S, S)`` in [-1, 1]
    (:func:`coursekit.data.flow.frame_flows` of its uint8 frames, as the dataset computes them)."""
    images = ((warped.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    flows = [frame_flows(clip.permute(0, 2, 3, 1).numpy()) for clip in images]
    return torch.from_numpy(np.stack(flows)).to(warped.device)


def decode_teacher_forced(decoder: nn.Module, encoder: PreviousEncoder, x: torch.Tensor,
                          skips: list[torch.Tensor], base: torch.Tensor,
                          previous: torch.Tensor) -> torch.Tensor:
    """Every frame at once: ``x (N, C)``, ``skips`` (per frame), ``base (N, 3, S, S)``,
    ``previous (N, 3, S, S)`` -> frames ``(N, 3, S, S)``."""
    return decoder(x, encoder(previous, skips), base)


def decode_autoregressive(decoder: nn.Module, encoder: PreviousEncoder, x: torch.Tensor,
                          skips: list[torch.Tensor], base: torch.Tensor, flow: torch.Tensor,
                          first: torch.Tensor) -> torch.Tensor:
    """Frame by frame: ``x (B, T, C)``, ``skips`` ``(B * T, c, h, w)`` each, ``base
    (B * T, 3, S, S)``, ``flow (B, T, 2, S, S)``, ``first (B, 3, S, S)`` (what frame 0
    reads: its warped identity) -> frames ``(B * T, 3, S, S)``; frame ``t`` reads frame
    ``t - 1`` as generated, warped by ``flow[:, t]``."""
    b, t = x.shape[:2]

    def at(z: torch.Tensor, k: int) -> torch.Tensor:
        return z.reshape(b, t, *z.shape[1:])[:, k]

    frames, previous = [], first
    for k in range(t):
        if k:
            previous = flow_warp(frames[-1], flow[:, k])
        frames.append(decoder(x[:, k], encoder(previous, [at(s, k) for s in skips]),
                              at(base, k)))
    return torch.stack(frames, dim=1).flatten(0, 1)
