"""AU classifier: which speech AUs occur in a (generated) frame (paper section 3.1).

Four convolutions (a 2x2 max-pool after every two) and three fully connected layers give one
logit per AU; a sigmoid gives occurrence probabilities, trained with the weighted BCE + Dice
AU loss. To focus on the mouth it only sees the **lower half** of the face,
:func:`lower_half`: ``(N, 3, S, S) -> (N, 3, S/2, S)``.
"""

from __future__ import annotations

import torch
from torch import nn

from .config import AUClassifierConfig

POOLED = (4, 8)
"""Height x width the conv maps are average-pooled to before the FC layers."""


def lower_half(frames: torch.Tensor) -> torch.Tensor:
    """The lower half (rows ``S/2:``) of images ``(..., 3, S, S) -> (..., 3, S/2, S)``."""
    return frames[..., frames.shape[-2] // 2:, :]


class AUClassifier(nn.Module):
    """4 conv (+ReLU, max-pool after every 2) -> 3 FC -> ``n_aus`` logits.

    Args: cfg (AUClassifierConfig).

    ``forward(lower (N, 3, S/2, S)) -> logits (N, n_aus)``; call :func:`lower_half` first.
    """

    def __init__(self, cfg: AUClassifierConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or AUClassifierConfig()
        layers, c_in = [], 3
        for i, c_out in enumerate(cfg.channels):
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out),
                       nn.ReLU(inplace=True)]
            if i % 2 == 1:
                layers.append(nn.MaxPool2d(2))
            c_in = c_out
        layers.append(nn.AdaptiveAvgPool2d(POOLED))
        self.convs = nn.Sequential(*layers)
        f1, f2 = cfg.fc
        self.fc = nn.Sequential(
            nn.Linear(c_in * POOLED[0] * POOLED[1], f1), nn.ReLU(inplace=True),
            nn.Dropout(cfg.dropout),
            nn.Linear(f1, f2), nn.ReLU(inplace=True),
            nn.Linear(f2, cfg.n_aus),
        )

    def forward(self, lower: torch.Tensor) -> torch.Tensor:
        return self.fc(self.convs(lower).flatten(1))

    @torch.no_grad()
    def predict_proba(self, lower: torch.Tensor) -> torch.Tensor:
        """Occurrence probabilities ``(N, n_aus)`` in [0, 1] (no gradient)."""
        return torch.sigmoid(self(lower))
