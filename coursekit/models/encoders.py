"""Identity and audio encoders (paper section 3.1).

* :class:`IdentityEncoder` ``E_id``: four stride-2 convolutions with ReLU and a fully connected
  layer turn the identity face ``(B, 3, S, S)`` into ``f_id (B, id_dim)``. Its four feature maps
  are also returned: the image decoder concatenates them (U-Net skips) to keep the identity's
  texture.
* :class:`AudioEncoder` ``E_a``: five conv2d + BN + ReLU layers and two FC layers turn each
  ``(12, 28)`` MFCC window into ``f_a,k (audio_dim)``; applied frame by frame,
  ``(B, T, 12, 28) -> (B, T, audio_dim)``. Temporal context is the fusion network's job.
"""

from __future__ import annotations

import torch
from torch import nn

from .config import N_MFCC, WINDOW_STEPS, TalkerConfig

AUDIO_STRIDES = ((1, 1), (1, 2), (2, 2), (1, 1), (2, 2))
"""Strides of the audio encoder's 5 convs over ``(freq, time)``: 12x28 -> 3x7."""


class IdentityEncoder(nn.Module):
    """``E_id``: 4 stride-2 conv + ReLU, then FC to ``id_dim``.

    Args: cfg (uses image_size S, enc_channels, id_dim, and ``motion``: with ``"warp"`` the
    image has 7 channels, the identity, a warped identity and a mouth mask stacked).

    ``forward(image (B, C, S, S)) -> (f_id (B, id_dim), skips)`` where ``skips`` is the list of
    the 4 maps ``[(B, c1, S/2, S/2), (B, c2, S/4, S/4), (B, c3, S/8, S/8), (B, c4, S/16, S/16)]``.
    """

    def __init__(self, cfg: TalkerConfig):
        super().__init__()
        layers, c_in = [], cfg.identity_channels
        for c_out in cfg.enc_channels:
            layers.append(nn.Sequential(nn.Conv2d(c_in, c_out, 4, stride=2, padding=1),
                                        nn.ReLU(inplace=True)))
            c_in = c_out
        self.convs = nn.ModuleList(layers)
        side = cfg.image_size // 16
        self.fc = nn.Linear(c_in * side * side, cfg.id_dim)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        skips, x = [], image
        for conv in self.convs:
            x = conv(x)
            skips.append(x)
        return self.fc(x.flatten(1)), skips


class AudioEncoder(nn.Module):
    """``E_a``: 5 x (conv2d + BN + ReLU) on each MFCC window, then 2 FC to ``audio_dim``.

    Args: cfg (uses audio_channels (5 ints), audio_dim).

    ``forward(mfcc (B, T, 12, 28)) -> (B, T, audio_dim)``; also accepts one window per item,
    ``(N, 12, 28) -> (N, audio_dim)``.
    """

    def __init__(self, cfg: TalkerConfig):
        super().__init__()
        if len(cfg.audio_channels) != len(AUDIO_STRIDES):
            raise ValueError(f"audio_channels needs {len(AUDIO_STRIDES)} ints")
        layers, c_in = [], 1
        h, w = N_MFCC, WINDOW_STEPS
        for c_out, (sh, sw) in zip(cfg.audio_channels, AUDIO_STRIDES):
            layers += [nn.Conv2d(c_in, c_out, 3, stride=(sh, sw), padding=1, bias=False),
                       nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
            c_in, h, w = c_out, (h - 1) // sh + 1, (w - 1) // sw + 1
        self.convs = nn.Sequential(*layers)
        self.fc = nn.Sequential(nn.Linear(c_in * h * w, cfg.audio_dim), nn.ReLU(inplace=True),
                                nn.Linear(cfg.audio_dim, cfg.audio_dim))

    def forward(self, mfcc: torch.Tensor) -> torch.Tensor:
        lead = mfcc.shape[:-2]  # (B, T) or (N,)
        x = self.convs(mfcc.reshape(-1, 1, N_MFCC, WINDOW_STEPS))  # every window on its own
        return self.fc(x.flatten(1)).reshape(*lead, -1)
