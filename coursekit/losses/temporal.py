"""Face2Vid's temporal loss: a generated frame should be its predecessor moved along the flow.

``L_temp = mean over valid pixels of |out_t - warp(out_{t-1}, flow_t)|`` for the frames
``t >= 1`` of a window whose predecessor is in the window too (both real, not padding).
``flow_t`` is the warped identity's flow (:mod:`coursekit.data.flow`: ``frame[t](x) ~
frame[t - 1](x + flow[t](x))``). The flow is unreliable where the lips part (the cavity and
teeth appear or vanish, no warp makes them): pixels inside either frame's mouth mask,
dilated by :data:`MASK_DILATE` pixels, do not count.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from ..data.flow import flow_warp

MASK_DILATE = 2
"""Pixels the mouth masks grow by before they are left out of :func:`temporal_loss`."""


def reliable(mouth_mask: torch.Tensor, dilate: int = MASK_DILATE) -> torch.Tensor:
    """``(B, T - 1, 1, H, W)`` weights in [0, 1]: 1 where the flow from frame ``t`` to
    ``t - 1`` can be trusted, outside both frames' mouth masks ``(B, T, 1, H, W)`` (grown by
    ``dilate`` pixels)."""
    both = torch.maximum(mouth_mask[:, 1:], mouth_mask[:, :-1]).flatten(0, 1)
    if dilate > 0:
        both = F.max_pool2d(both, 2 * dilate + 1, stride=1, padding=dilate)
    b, t = mouth_mask.shape[:2]
    return (1 - both).reshape(b, t - 1, *both.shape[1:])


def temporal_loss(frames: torch.Tensor, flow: torch.Tensor, mouth_mask: torch.Tensor | None = None,
                  mask: torch.Tensor | None = None, dilate: int = MASK_DILATE) -> torch.Tensor:
    """``L_temp`` of frames ``(B, T, 3, H, W)`` with flows ``(B, T, 2, H, W)`` (``flow[:, t]``
    from frame ``t`` back to ``t - 1``), mouth masks ``(B, T, 1, H, W)`` (None: every pixel
    counts) and frame masks ``(B, T)`` bool (True = real frame). A scalar; 0 when no pair of
    consecutive real frames is left."""
    if frames.dim() != 5 or flow.shape[:2] != frames.shape[:2] or flow.shape[2] != 2:
        raise ValueError(f"temporal_loss: frames (B, T, 3, H, W) and flow (B, T, 2, H, W), got "
                         f"{tuple(frames.shape)} and {tuple(flow.shape)}")
    if frames.shape[1] < 2:
        return frames.new_zeros(())
    moved = flow_warp(frames[:, :-1], flow[:, 1:].to(frames))  # (B, T-1, 3, H, W)
    weight = frames.new_ones(*frames.shape[:2], 1, 1, 1)[:, 1:]
    if mask is not None:
        real = mask.to(frames.device, torch.bool)
        weight = weight * (real[:, 1:] & real[:, :-1]).to(frames)[..., None, None, None]
    if mouth_mask is not None:
        weight = weight * reliable(mouth_mask.to(frames), dilate)
    weight = weight.expand(*moved.shape[:2], 1, *moved.shape[-2:])
    total = weight.sum() * frames.shape[2]
    if total <= 0:
        return frames.new_zeros(())
    return ((frames[:, 1:] - moved).abs() * weight).sum() / total
