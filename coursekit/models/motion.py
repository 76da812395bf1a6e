"""Speech AUs -> mouth and jaw motion: the landmark intermediate of the warp renderer.

:class:`MotionModel` maps the five speech AU intensities of each frame ``(B, T, 5)`` (0-5,
order :data:`coursekit.au.AUS`, the processed dataset's ``aus``) to the displacements
``(B, T, K, 2)`` of the ``K = 33`` moving landmarks (:data:`coursekit.warp.MOVING`: jaw 2-14,
then mouth 48-67) from the face's closed-mouth *neutral*, in inter-ocular distances, in the
upright frame of an aligned crop. :func:`coursekit.warp.displace` turns them into target
landmarks of any face and :func:`coursekit.warp.backward_map` into a warp of its photo
(as in Yu et al. 2020, where mouth landmarks are the intermediate between speech and video).

Structure: a per-frame MLP, then residual temporal convolutions (centred, non-causal,
replicate padding) and a linear head. A single frame (``T = 1``, e.g. AU sliders) is a
constant sequence to the convolutions, so the model can be driven frame by frame.

Helpers for the targets (:func:`neutral_landmarks`, :func:`motion_targets`) and for the audio
route (Audio2AU gives occurrence *probabilities*, not intensities: :func:`fit_quantile_map`,
:func:`apply_quantile_map`) live here too, so inference needs nothing from training.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from ..presets import Presets
from ..warp import MOVING, inter_ocular

LIP_PAIRS = ((61, 67), (62, 66), (63, 65))
"""Upper / lower inner-lip points whose vertical gap is the mouth opening."""


@dataclass(frozen=True)
class MotionConfig(Presets):
    """Sizes of :class:`MotionModel`.

    n_aus: AU intensities per frame; au_scale: they are divided by this (0-5 -> 0-1).
    n_points: moving landmarks (``len(coursekit.warp.MOVING)``).
    hidden, mlp_layers: the per-frame MLP (GELU). kernel, conv_layers: the residual temporal
    convolutions (``kernel`` frames, centred). dropout: after the MLP.

    ``paper()``: the defaults (about 0.2 M parameters); ``tiny()``: thinner, for CPU work
    and tests (about 20 k parameters).
    """

    TINY: ClassVar[dict] = dict(hidden=48, conv_layers=1)

    n_aus: int = 5
    n_points: int = len(MOVING)
    au_scale: float = 5.0
    hidden: int = 128               # width of the per-frame MLP
    mlp_layers: int = 2
    kernel: int = 5
    conv_layers: int = 2
    dropout: float = 0.1


class MotionModel(nn.Module):
    """AU intensities ``(B, T, n_aus)`` -> landmark displacements ``(B, T, n_points, 2)``
    (inter-ocular distances from the neutral face; see the module docstring)."""

    def __init__(self, cfg: MotionConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or MotionConfig()
        layers, width = [], cfg.n_aus
        for _ in range(cfg.mlp_layers):
            layers += [nn.Linear(width, cfg.hidden), nn.GELU()]
            width = cfg.hidden
        self.mlp = nn.Sequential(*layers, nn.Dropout(cfg.dropout))
        self.convs = nn.ModuleList(
            nn.Conv1d(cfg.hidden, cfg.hidden, cfg.kernel, padding=cfg.kernel // 2,
                      padding_mode="replicate") for _ in range(cfg.conv_layers))
        self.act = nn.GELU()
        self.head = nn.Linear(cfg.hidden, cfg.n_points * 2)

    def forward(self, aus: torch.Tensor) -> torch.Tensor:
        if aus.ndim != 3 or aus.shape[-1] != self.cfg.n_aus:
            raise ValueError(f"MotionModel: aus must be (B, T, {self.cfg.n_aus}), got "
                             f"{tuple(aus.shape)}")
        h = self.mlp(aus / self.cfg.au_scale).transpose(1, 2)  # (B, H, T)
        for conv in self.convs:
            h = h + self.act(conv(h))
        out = self.head(h.transpose(1, 2))  # (B, T, 2K)
        return out.view(*out.shape[:2], self.cfg.n_points, 2)

    @torch.no_grad()
    def predict(self, aus: np.ndarray) -> np.ndarray:
        """Displacements ``(T, K, 2)`` float32 of one clip's ``aus (T, 5)`` (eval mode)."""
        was = self.training
        self.eval()
        device = next(self.parameters()).device
        out = self(torch.as_tensor(np.asarray(aus, np.float32), device=device)[None])[0]
        self.train(was)
        return out.cpu().numpy()


# ----------------------------------------------------------------------------- targets


def lip_gap(landmarks: np.ndarray) -> np.ndarray:
    """Mean vertical inner-lip gap of ``(..., 68, 2)`` landmarks, ``(...)`` pixels."""
    pts = np.asarray(landmarks, np.float64)
    upper, lower = zip(*LIP_PAIRS)
    return (pts[..., list(lower), 1] - pts[..., list(upper), 1]).mean(-1)


def neutral_landmarks(landmarks: np.ndarray, fraction: float = 0.1) -> np.ndarray:
    """A clip's closed-mouth face ``(68, 2)``: the median of its ``landmarks (T, 68, 2)``
    over the frames whose inner-lip gap is smallest (``fraction`` of them, at least one)."""
    lm = np.asarray(landmarks, np.float32)
    if lm.ndim != 3 or lm.shape[1:] != (68, 2) or len(lm) == 0:
        raise ValueError(f"neutral_landmarks: expected (T, 68, 2) landmarks, got {lm.shape}")
    k = max(1, int(round(fraction * len(lm))))
    closed = np.argsort(lip_gap(lm), kind="stable")[:k]
    return np.median(lm[closed], axis=0).astype(np.float32)


def motion_targets(landmarks: np.ndarray, neutral: np.ndarray | None = None) -> np.ndarray:
    """Displacements ``(T, K, 2)`` float32 of the moving points of aligned-crop
    ``landmarks (T, 68, 2)`` from ``neutral (68, 2)`` (default :func:`neutral_landmarks`),
    in the neutral face's inter-ocular distances."""
    lm = np.asarray(landmarks, np.float32)
    neutral = neutral_landmarks(lm) if neutral is None else np.asarray(neutral, np.float32)
    iod = float(inter_ocular(neutral))
    return ((lm[:, MOVING] - neutral[MOVING]) / iod).astype(np.float32)


# ----------------------------------------------------------------------------- audio route


def fit_quantile_map(predicted: np.ndarray, intensities: np.ndarray,
                     n_quantiles: int = 101) -> dict:
    """A per-AU monotone map from Audio2AU's occurrence probabilities to AU intensities.

    ``predicted (N, A)``: probabilities on frames the Audio2AU did not train on (its
    validation clips: on its own training clips it is over-confident); ``intensities (M, A)``:
    the training clips' AU intensities. Each AU's probability quantile ``q`` is mapped to the
    intensity quantile ``q``, so mapped predictions keep the real intensity distribution (its
    spread), and their order (correlation) is the probabilities'.

    Returns ``{"probs": (Q, A), "intensities": (Q, A)}`` float32 (plain arrays, storable in a
    checkpoint's meta), for :func:`apply_quantile_map`.
    """
    qs = np.linspace(0, 1, n_quantiles)
    probs = np.quantile(np.asarray(predicted, np.float64), qs, axis=0)
    probs = np.maximum.accumulate(probs + 1e-9 * np.arange(n_quantiles)[:, None], axis=0)
    values = np.quantile(np.asarray(intensities, np.float64), qs, axis=0)
    return {"probs": probs.astype(np.float32), "intensities": values.astype(np.float32)}


def apply_quantile_map(qmap: dict, probs: np.ndarray) -> np.ndarray:
    """Intensities ``(T, A)`` float32 of Audio2AU probabilities ``(T, A)`` through
    :func:`fit_quantile_map`'s map (linear between quantiles, clamped at the ends)."""
    p = np.asarray(probs, np.float64)
    xs = np.asarray(qmap["probs"], np.float64)
    ys = np.asarray(qmap["intensities"], np.float64)
    if p.ndim != 2 or p.shape[1] != xs.shape[1]:
        raise ValueError(f"apply_quantile_map: probs must be (T, {xs.shape[1]}), got {p.shape}")
    return np.stack([np.interp(p[:, a], xs[:, a], ys[:, a]) for a in range(p.shape[1])],
                    1).astype(np.float32)
