"""A SyncNet-style audio-visual synchronisation expert (Chung & Zisserman, 2016).

Two encoders map 5 frames of the mouth region and the 5 MFCC windows of the same frames
into one embedding space where matching (in-sync) pairs lie close together:

* video: the **lower half** of 5 consecutive faces (:func:`lower_half`), their RGB channels
  stacked into 15 channels, ``(N, 5, 3, S/2, S) -> (N, D)``;
* audio: the 5 MFCC windows of those frames (one ``(12, 28)`` window per video frame, see
  :func:`coursekit.audio.mfcc_windows`) stacked as 5 channels, ``(N, 5, 12, 28) -> (N, D)``.

Both embeddings are L2-normalised, so their cosine similarity is a dot product and their
Euclidean distance is ``sqrt(2 - 2 cos)`` in [0, 2]. No pretrained SyncNet weights are
available offline: the course trains this expert itself (:mod:`coursekit.train.syncnet`) and
uses it to score lip sync (:func:`coursekit.metrics.sync_scores`: offset, LSE-D, LSE-C).

The two presets of :class:`SyncNetConfig` differ only in numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from ..presets import Presets
from .au_classifier import lower_half
from .config import N_MFCC, WINDOW_STEPS, from_dict


@dataclass(frozen=True)
class SyncNetConfig(Presets):
    """Sizes of :class:`SyncNet`.

    image_size: side S of the full face crop; the video encoder sees ``(3, S/2, S)`` per frame.
    context: frames per window (SyncNet: 5, i.e. 0.2 s at 25 fps).
    n_mfcc, mfcc_steps: one MFCC window per frame, ``(n_mfcc, mfcc_steps)``.
    video_channels: conv stages of the video encoder; the first halves the width only (the
        lower half is twice as wide as high), every later one halves both sides.
    audio_channels: conv stages of the audio encoder; the first keeps the size, the second
        halves the time axis, every later one halves both axes.
    embed_dim: size D of the embeddings.
    pooled: side of the adaptive average pooling before the last linear layer.

    ``paper()``: 112 px faces, 512-d embeddings (the size of Wav2Lip's expert; 7.6 M
    parameters). ``tiny()``: 64 px faces, 64-d embeddings, thin convs for CPU work (0.25 M).
    """

    TINY: ClassVar[dict] = dict(image_size=64, video_channels=(24, 48, 64, 96),
                                audio_channels=(32, 48, 64, 96), embed_dim=64)

    image_size: int = 112
    context: int = 5
    n_mfcc: int = N_MFCC
    mfcc_steps: int = WINDOW_STEPS
    video_channels: tuple[int, ...] = (64, 128, 256, 512, 512)
    audio_channels: tuple[int, ...] = (64, 128, 256, 512)
    embed_dim: int = 512
    pooled: int = 2

    @classmethod
    def from_dict(cls, d: dict) -> "SyncNetConfig":
        """From ``dataclasses.asdict`` output (:func:`coursekit.models.config.from_dict`)."""
        return from_dict(cls, d)


def _block(c_in: int, c_out: int, stride) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


class SyncNet(nn.Module):
    """Video and audio encoders into a shared, L2-normalised D-dimensional space.

    Args: cfg (SyncNetConfig).

    * ``embed_video(frames (N, K, 3, S/2, S)) -> (N, D)`` (``K = cfg.context``); full faces
      ``(N, K, 3, S, S)`` are accepted too and cropped with :func:`lower_half`;
    * ``embed_audio(mfcc (N, K, 12, 28)) -> (N, D)`` (normalised MFCCs, as trained);
    * ``forward(frames, mfcc) -> (N,)`` cosine similarity of the two, in [-1, 1];
      ``forward(frames, mfcc, paired=False) -> ((N_v, D), (N_a, D))``: both embeddings,
      any numbers of windows (training calls this, so ``DistributedDataParallel`` sees a
      forward pass).
    """

    def __init__(self, cfg: SyncNetConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or SyncNetConfig()
        k = cfg.context
        layers, c_in = [], 3 * k
        for i, c_out in enumerate(cfg.video_channels):
            layers += _block(c_in, c_out, (1, 2) if i == 0 else 2)
            c_in = c_out
        layers.append(nn.AdaptiveAvgPool2d(cfg.pooled))
        self.video = nn.Sequential(*layers, nn.Flatten(),
                                 nn.Linear(c_in * cfg.pooled ** 2, cfg.embed_dim))
        layers, c_in = [], k
        for i, c_out in enumerate(cfg.audio_channels):
            layers += _block(c_in, c_out, 1 if i == 0 else (1, 2) if i == 1 else 2)
            c_in = c_out
        layers.append(nn.AdaptiveAvgPool2d(cfg.pooled))
        self.audio = nn.Sequential(*layers, nn.Flatten(),
                                 nn.Linear(c_in * cfg.pooled ** 2, cfg.embed_dim))

    def embed_video(self, frames: torch.Tensor) -> torch.Tensor:
        """``(N, K, 3, S/2, S)`` lower faces (or ``(N, K, 3, S, S)`` faces) in [-1, 1]
        -> ``(N, D)`` unit vectors."""
        if frames.ndim != 5 or frames.shape[1] != self.cfg.context or frames.shape[2] != 3:
            raise ValueError(f"embed_video wants (N, {self.cfg.context}, 3, H, W), "
                             f"got {tuple(frames.shape)}")
        if frames.shape[-2] == frames.shape[-1]:
            frames = lower_half(frames)
        return F.normalize(self.video(frames.flatten(1, 2)), dim=-1)

    def embed_audio(self, mfcc: torch.Tensor) -> torch.Tensor:
        """``(N, K, 12, 28)`` MFCC windows -> ``(N, D)`` unit vectors."""
        cfg = self.cfg
        if mfcc.ndim != 4 or tuple(mfcc.shape[1:]) != (cfg.context, cfg.n_mfcc, cfg.mfcc_steps):
            raise ValueError(f"embed_audio wants (N, {cfg.context}, {cfg.n_mfcc}, "
                             f"{cfg.mfcc_steps}), got {tuple(mfcc.shape)}")
        return F.normalize(self.audio(mfcc), dim=-1)

    def forward(self, frames: torch.Tensor, mfcc: torch.Tensor, paired: bool = True):
        v, a = self.embed_video(frames), self.embed_audio(mfcc)
        return (v * a).sum(-1) if paired else (v, a)


def windows(x: torch.Tensor, context: int = 5) -> torch.Tensor:
    """Every run of ``context`` consecutive rows of a clip: ``(T, ...) -> (T - context + 1,
    context, ...)`` (a view, no copy); row ``i`` holds frames ``i .. i + context - 1``."""
    if x.shape[0] < context:
        raise ValueError(f"a clip of {x.shape[0]} frames has no {context}-frame window")
    return x.unfold(0, context, 1).movedim(-1, 1)
