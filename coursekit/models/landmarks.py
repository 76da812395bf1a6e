"""Text and/or speech -> mouth landmarks: step one of Yu et al. 2020 (multimodal inputs).

:class:`LandmarkPredictor` maps, per video frame (25 fps), a phoneme id ``(B, T)``
(:mod:`coursekit.data.phonemes`) and an MFCC window ``(B, T, 12, 28)`` (the course's audio
input) to the displacements ``(B, T, K, 2)`` of the ``K = 33`` moving landmarks
(:data:`coursekit.warp.MOVING`: jaw 2-14, mouth 48-67) from the face's closed-mouth neutral,
in inter-ocular distances: the target of :class:`coursekit.models.motion.MotionModel`, so
:func:`coursekit.warp.displace` places them on any face.

Either input may be absent, per item: text only, audio only, or both. An absent input is
replaced by a learned "missing" vector of its branch; training drops each input at random
(modality dropout) so that one model serves all three settings.

Structure::

    phonemes -> embedding -> temporal conv (context)   \\
                                                         concat -> linear -> bi-GRU -> linear
    MFCC windows -> AudioEncoder (per frame)           /
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ..data.phonemes import PHONEMES
from ..presets import Presets
from ..warp import MOVING
from .encoders import AudioEncoder


@dataclass(frozen=True)
class LandmarkConfig(Presets):
    """Sizes of :class:`LandmarkPredictor`.

    n_phonemes: the inventory (:data:`coursekit.data.phonemes.PHONEMES`); n_points: moving
    landmarks predicted. text_dim, text_kernel: phoneme embedding and its context conv.
    audio_channels, audio_dim: :class:`~coursekit.models.encoders.AudioEncoder`'s widths.
    hidden, gru_layers: the fusion width and the bidirectional GRU. dropout: after fusion.

    ``paper()``: about 1 M parameters; ``tiny()``: about 65 k, for CPU work and tests.
    """

    TINY: ClassVar[dict] = {"text_dim": 32, "audio_channels": (8, 16, 16, 32, 32),
                            "audio_dim": 32, "hidden": 64}

    n_phonemes: int = len(PHONEMES)
    n_points: int = len(MOVING)
    text_dim: int = 128
    text_kernel: int = 5
    audio_channels: tuple[int, ...] = (32, 64, 64, 128, 128)
    audio_dim: int = 128
    hidden: int = 256
    gru_layers: int = 1
    dropout: float = 0.1


class LandmarkPredictor(nn.Module):
    """``(phonemes (B, T) int | None, mfcc (B, T, 12, 28) | None)`` -> displacements
    ``(B, T, n_points, 2)`` (inter-ocular distances from the neutral face).

    ``text_on`` / ``audio_on``: ``(B,)`` bool, which items use each input (default: all
    items when the input is given); an input given as None is absent for every item.
    """

    def __init__(self, cfg: LandmarkConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or LandmarkConfig()
        self.embed = nn.Embedding(cfg.n_phonemes, cfg.text_dim)
        self.text_conv = nn.Conv1d(cfg.text_dim, cfg.text_dim, cfg.text_kernel,
                                   padding=cfg.text_kernel // 2, padding_mode="replicate")
        self.audio = AudioEncoder(cfg)
        self.missing_text = nn.Parameter(torch.zeros(cfg.text_dim))
        self.missing_audio = nn.Parameter(torch.zeros(cfg.audio_dim))
        self.fuse = nn.Sequential(nn.Linear(cfg.text_dim + cfg.audio_dim, cfg.hidden), nn.GELU(),
                                  nn.Dropout(cfg.dropout))
        self.gru = nn.GRU(cfg.hidden, cfg.hidden // 2, cfg.gru_layers, batch_first=True,
                          bidirectional=True)
        self.head = nn.Linear(cfg.hidden, cfg.n_points * 2)

    @staticmethod
    def _select(features, on, missing, shape) -> torch.Tensor:
        """``features (B, T, D)`` where ``on``, the missing vector elsewhere."""
        fill = missing.expand(*shape, -1)
        if features is None:
            return fill
        if on is None:
            return features
        return torch.where(on.to(features.device).view(-1, 1, 1), features, fill)

    def forward(self, phonemes: torch.Tensor | None = None, mfcc: torch.Tensor | None = None,
                text_on: torch.Tensor | None = None,
                audio_on: torch.Tensor | None = None) -> torch.Tensor:
        if phonemes is None and mfcc is None:
            raise ValueError("LandmarkPredictor: give phonemes, mfcc or both")
        if phonemes is not None and phonemes.ndim != 2:
            raise ValueError(f"LandmarkPredictor: phonemes must be (B, T), got {tuple(phonemes.shape)}")
        if mfcc is not None and mfcc.ndim != 4:
            raise ValueError(f"LandmarkPredictor: mfcc must be (B, T, 12, 28), got {tuple(mfcc.shape)}")
        shape = tuple((phonemes if phonemes is not None else mfcc).shape[:2])
        if phonemes is not None and mfcc is not None and tuple(mfcc.shape[:2]) != shape:
            raise ValueError(f"LandmarkPredictor: phonemes {shape} and mfcc "
                             f"{tuple(mfcc.shape[:2])} differ in (B, T)")
        text = None
        if phonemes is not None:
            text = self.text_conv(self.embed(phonemes.long()).transpose(1, 2)).transpose(1, 2)
        audio = self.audio(mfcc) if mfcc is not None else None
        h = torch.cat([self._select(text, text_on, self.missing_text, shape),
                       self._select(audio, audio_on, self.missing_audio, shape)], -1)
        h, _ = self.gru(self.fuse(h))
        out = self.head(h)
        return out.view(*shape, self.cfg.n_points, 2)

    @torch.no_grad()
    def predict(self, phonemes=None, mfcc=None):
        """Displacements ``(T, K, 2)`` float32 numpy of one clip's ``phonemes (T,)`` and/or
        normalised ``mfcc (T, 12, 28)`` (numpy or tensors; eval mode)."""
        was = self.training
        self.eval()
        device = next(self.parameters()).device

        def batch(x, dtype):
            return None if x is None else torch.as_tensor(x, dtype=dtype, device=device)[None]

        out = self(batch(phonemes, torch.long), batch(mfcc, torch.float32))[0]
        self.train(was)
        return out.cpu().numpy()
