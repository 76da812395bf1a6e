"""Audio-to-AU module: speech-related action units predicted from MFCC windows.

The paper (section 3.1, "Audio-to-AU Module") pre-trains one small network per action unit
on paired audio/AU data. Each network

1. convolves the ``(12, 28)`` MFCC window of a video frame over **frequency** (the 12
   cepstral coefficients) and then over **time** (the 28 steps of 10 ms),
2. runs **two LSTM layers over the sequence of frames**, so the AU of frame k can use the
   sound of its neighbours (a lip parting starts before its sound does),
3. ends with **three fully connected layers**; a sigmoid on the last one gives the
   probability that the AU occurs.

After pre-training the last FC layer is dropped: the talker uses the penultimate, 64-d
output as the "AU feature" ``f_au_i``, richer than a single probability. Five such networks
(AU10, AU14, AU20, AU25, AU26, in :data:`coursekit.au.AUS` order) give five 64-d vectors,
concatenated into the 320-d AU stream ``f_au``.

Shapes: MFCC ``(B, T, 12, 28)``; logits ``(B, T, 5)``; features ``(B, T, 5, F)`` with
``F = au_feat_dim`` (paper 64). Any ``T >= 1`` works.
"""

from __future__ import annotations

import torch
from torch import nn

from ..au import AUS
from .config import N_MFCC, WINDOW_STEPS, Audio2AUConfig

POOLED = (2, 4)
"""Frequency x time size the conv maps are average-pooled to before the LSTM."""


def _conv_block(c_in: int, c_out: int, over: str) -> nn.Sequential:
    """Conv + BN + ReLU + max-pool along one axis of the ``(freq, time)`` map.

    ``over="freq"`` uses a ``(3, 1)`` kernel (mixes neighbouring cepstral coefficients,
    each time step on its own); ``over="time"`` a ``(1, 3)`` kernel.
    """
    kernel, pad, pool = ((3, 1), (1, 0), (2, 1)) if over == "freq" else ((1, 3), (0, 1), (1, 2))
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, padding=pad, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(pool, ceil_mode=True),
    )


class Audio2AUNet(nn.Module):
    """One AU's network: conv (freq, time) -> 2-layer LSTM over frames -> 3 FC -> 1 logit.

    Args:
        cfg: sizes; ``cfg.fc[-1]`` is the feature size returned by :meth:`features`.

    ``forward(mfcc (B, T, 12, 28)) -> logits (B, T)``;
    ``features(mfcc (B, T, 12, 28)) -> (B, T, cfg.fc[-1])``.
    """

    def __init__(self, cfg: Audio2AUConfig | None = None):
        super().__init__()
        cfg = cfg or Audio2AUConfig()
        self.cfg = cfg
        blocks, c_in = [], 1
        for i, c_out in enumerate(cfg.conv_channels):
            blocks.append(_conv_block(c_in, c_out, "freq" if i % 2 == 0 else "time"))
            c_in = c_out
        # each window -> a fixed-size vector whatever the conv stack did to 12 x 28
        blocks.append(nn.AdaptiveAvgPool2d(POOLED))
        self.conv = nn.Sequential(*blocks)
        self.lstm = nn.LSTM(
            c_in * POOLED[0] * POOLED[1], cfg.lstm_hidden, num_layers=cfg.lstm_layers,
            batch_first=True, bidirectional=cfg.bidirectional,
            dropout=cfg.dropout if cfg.lstm_layers > 1 else 0.0,
        )
        width = cfg.lstm_hidden * (2 if cfg.bidirectional else 1)
        hidden = []
        for w in cfg.fc:  # the hidden FC layers: their last output is the AU feature
            hidden += [nn.Linear(width, w), nn.ReLU(inplace=True), nn.Dropout(cfg.dropout)]
            width = w
        self.hidden = nn.Sequential(*hidden)
        self.head = nn.Linear(width, 1)  # the layer dropped after pre-training

    @property
    def feat_dim(self) -> int:
        return self.cfg.fc[-1]

    def features(self, mfcc: torch.Tensor) -> torch.Tensor:
        """Penultimate FC output: ``(B, T, 12, 28) -> (B, T, F)``."""
        if mfcc.dim() != 4 or mfcc.shape[-2:] != (N_MFCC, WINDOW_STEPS):
            raise ValueError(f"expected MFCC windows (B, T, {N_MFCC}, {WINDOW_STEPS}), "
                             f"got {tuple(mfcc.shape)}")
        b, t = mfcc.shape[:2]
        x = self.conv(mfcc.reshape(b * t, 1, N_MFCC, WINDOW_STEPS))  # every window on its own
        x, _ = self.lstm(x.reshape(b, t, -1))  # temporal context across the clip's frames
        return self.hidden(x)

    def forward(self, mfcc: torch.Tensor) -> torch.Tensor:
        """AU occurrence logits ``(B, T)``."""
        return self.head(self.features(mfcc)).squeeze(-1)


class Audio2AU(nn.Module):
    """Five :class:`Audio2AUNet`, one per AU of :data:`coursekit.au.AUS`.

    Args:
        cfg: sizes shared by the five networks.
        aus: AU names (default the five speech AUs); one network each.

    ``forward(mfcc (B, T, 12, 28)) -> logits (B, T, n_aus)``;
    ``features(mfcc) -> (B, T, n_aus, F)``; ``predict_proba(mfcc) -> (B, T, n_aus)``.
    """

    def __init__(self, cfg: Audio2AUConfig | None = None, aus: tuple[str, ...] = AUS):
        super().__init__()
        self.cfg = cfg or Audio2AUConfig()
        self.aus = tuple(aus)
        self.nets = nn.ModuleList(Audio2AUNet(self.cfg) for _ in self.aus)

    @property
    def feat_dim(self) -> int:
        """Per-AU feature size F (paper 64)."""
        return self.cfg.fc[-1]

    @property
    def out_dim(self) -> int:
        """Width of the concatenated AU stream, ``n_aus * F`` (paper 320)."""
        return len(self.aus) * self.feat_dim

    def net(self, au: str) -> Audio2AUNet:
        """The network of one AU by name, e.g. ``net("AU25")``."""
        return self.nets[self.aus.index(au)]

    def features(self, mfcc: torch.Tensor) -> torch.Tensor:
        """Per-AU features ``(B, T, n_aus, F)``; ``.flatten(2)`` gives ``(B, T, n_aus * F)``."""
        return torch.stack([net.features(mfcc) for net in self.nets], dim=2)

    def forward(self, mfcc: torch.Tensor) -> torch.Tensor:
        """AU occurrence logits ``(B, T, n_aus)`` (apply a sigmoid for probabilities)."""
        return torch.stack([net(mfcc) for net in self.nets], dim=-1)

    def features_and_logits(self, mfcc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Both at the cost of one pass: ``((B, T, n_aus, F), (B, T, n_aus))``."""
        feats = self.features(mfcc)
        logits = torch.stack([net.head(feats[:, :, i]).squeeze(-1)
                              for i, net in enumerate(self.nets)], dim=-1)
        return feats, logits

    @torch.no_grad()
    def predict_proba(self, mfcc: torch.Tensor) -> torch.Tensor:
        """AU occurrence probabilities ``(B, T, n_aus)`` in [0, 1] (no gradient)."""
        return torch.sigmoid(self(mfcc))

    def freeze(self) -> "Audio2AU":
        """Stop training the (pre-trained) networks: no gradients, BN/dropout in eval mode.

        Note that a later ``.train()`` on a parent module switches the mode back; the talker
        calls ``eval()`` on a frozen Audio2AU in its own ``train()``.
        """
        self.requires_grad_(False)
        self.eval()
        return self


class FreezableAudio2AU:
    """Mixin for a model with an ``audio2au`` attribute (an :class:`Audio2AU` or None):
    :meth:`freeze_audio2au` keeps the pre-trained networks fixed, and :meth:`train` keeps
    them in eval mode afterwards (``nn.Module.train`` would switch them back)."""

    _audio2au_frozen = False

    def freeze_audio2au(self):
        """Keep the pre-trained Audio2AU fixed (no gradients, eval mode, also under train())."""
        if self.audio2au is not None:
            self.audio2au.freeze()
            self._audio2au_frozen = True
        return self

    def train(self, mode: bool = True):
        super().train(mode)
        if self._audio2au_frozen:
            self.audio2au.eval()
        return self
