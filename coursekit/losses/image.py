"""Pixel losses on frames (paper eq. 9-10) and the frame masks every loss accepts.

Frames ``(B, T, 3, H, W)`` in [-1, 1]; identity ``(B, 3, H, W)``; masks ``(B, T)`` bool
(True = real frame, False = padding).
"""

from __future__ import annotations

import torch


def _frame_mask(mask: torch.Tensor | None, x: torch.Tensor, lead: int) -> torch.Tensor | None:
    """``mask`` (the first ``lead`` dims of ``x``) broadcast to ``x`` as float, or None."""
    if mask is None:
        return None
    if tuple(mask.shape) != tuple(x.shape[:lead]):
        raise ValueError(f"mask shape {tuple(mask.shape)} does not match the leading dims "
                         f"{tuple(x.shape[:lead])} of {tuple(x.shape)}")
    return mask.to(x.dtype).reshape(*mask.shape, *([1] * (x.dim() - lead)))


def _masked_mean(values: torch.Tensor, mask: torch.Tensor | None, lead: int) -> torch.Tensor:
    """Mean of ``values`` over the elements of the frames where ``mask`` (leading dims) is
    True; plain mean without a mask. An all-False mask gives 0 (no NaN)."""
    m = _frame_mask(mask, values, lead)
    if m is None:
        return values.mean()
    per_frame = values[(0,) * lead].numel()  # elements per masked position
    return (values * m).sum() / (m.sum() * per_frame).clamp_min(1.0)


def l1_reconstruction(pred: torch.Tensor, target: torch.Tensor,
                      mask: torch.Tensor | None = None) -> torch.Tensor:
    """Eq. 9: mean ``|pred - target|`` over pixels (and channels, frames).

    pred, target: ``(B, T, C, H, W)`` or any equal shapes. mask: ``(B, T)`` bool over the
    frames (padding excluded); None = all. Returns a scalar.
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    lead = 0 if mask is None else mask.dim()
    return _masked_mean((pred - target).abs(), mask, lead)


def identity_loss(pred_frames: torch.Tensor, identity: torch.Tensor,
                  mask: torch.Tensor | None = None) -> torch.Tensor:
    """Eq. 10: L1 between the **upper half** (rows ``0 .. H//2 - 1``) of every generated
    frame and of the identity image; the mouth region below is free to move.

    pred_frames: ``(B, T, 3, H, W)``; identity: ``(B, 3, H, W)`` (broadcast over T);
    mask: ``(B, T)`` bool. Returns a scalar (mean over ``W x H/2`` pixels, channels, frames).
    """
    if pred_frames.dim() != 5 or identity.dim() != 4:
        raise ValueError(f"expected pred_frames (B, T, 3, H, W) and identity (B, 3, H, W), got "
                         f"{tuple(pred_frames.shape)} and {tuple(identity.shape)}")
    half = pred_frames.shape[-2] // 2
    diff = (pred_frames[..., :half, :] - identity[:, None, :, :half, :]).abs()
    return _masked_mean(diff, mask, 2 if mask is not None else 0)
