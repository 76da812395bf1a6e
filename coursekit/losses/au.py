"""AU occurrence losses of the paper (eq. 5-7): weighted BCE, weighted soft Dice, their sum.

AU logits / targets ``(..., 5)`` in :data:`coursekit.au.AUS` order; masks over the leading
dims (e.g. ``(B, T)``) bool.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .image import _frame_mask, _masked_mean


def au_class_weights(occurrence_rates, min_rate: float = 0.01) -> torch.Tensor:
    """Eq. 5's per-AU weights ``w_i = (1 / r_i) n / sum_j (1 / r_j)`` ``(n,)`` float32.

    occurrence_rates: ``(n,)`` fraction of training frames where each AU occurs (array,
    list or tensor). Rare AUs get large weights; the weights sum to ``n`` (all 1 when the
    rates are equal). A rate below ``min_rate`` (an AU that never occurs: ``r = 0``) is
    raised to ``min_rate`` so the weights stay finite and the other AUs keep theirs.
    """
    if isinstance(occurrence_rates, torch.Tensor):
        occurrence_rates = occurrence_rates.detach().cpu().numpy()
    r = torch.as_tensor(np.asarray(occurrence_rates, dtype=np.float64)).reshape(-1)
    if r.numel() == 0 or not torch.all(torch.isfinite(r)) or torch.any(r < 0) or torch.any(r > 1):
        raise ValueError(f"occurrence rates must be finite fractions in [0, 1], got {r.tolist()}")
    inv = 1.0 / r.clamp_min(float(min_rate))
    return (inv * r.numel() / inv.sum()).float()


def _check_au(logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    if logits.shape != targets.shape:
        raise ValueError(f"predictions {tuple(logits.shape)} and targets "
                         f"{tuple(targets.shape)} differ")
    weights = torch.as_tensor(weights, dtype=logits.dtype, device=logits.device)
    if weights.shape != logits.shape[-1:]:
        raise ValueError(f"weights {tuple(weights.shape)} must be (n_aus,) = "
                         f"{tuple(logits.shape[-1:])}")
    return weights


def weighted_bce(logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor,
                 mask: torch.Tensor | None = None) -> torch.Tensor:
    """Eq. 5: ``-1/n sum_i w_i [y_i log p_i + (1 - y_i) log(1 - p_i)]``, averaged over frames.

    logits: ``(..., n)`` pre-sigmoid (``p = sigmoid(logits)``; computed in the log-sum-exp
    form, stable for large logits); targets: ``(..., n)`` 0/1 float; weights: ``(n,)``
    (:func:`au_class_weights`); mask: the leading dims of ``logits`` (e.g. ``(B, T)``) bool.
    """
    weights = _check_au(logits, targets, weights)
    bce = F.binary_cross_entropy_with_logits(logits, targets.to(logits.dtype), reduction="none")
    per_frame = (bce * weights).mean(-1)  # 1/n sum_i w_i bce_i
    return _masked_mean(per_frame, mask, per_frame.dim() if mask is not None else 0)


def weighted_dice(probs: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor,
                  eps: float = 1.0, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Eq. 6: weighted multi-label soft Dice loss, ``1/n sum_i w_i (1 - D_i)`` with

    ``D_i = (2 sum y_i p_i + eps) / (sum y_i^2 + sum p_i^2 + eps)``,

    the sums running over every (unmasked) frame of the batch, per AU ``i``: a soft Dice
    score per AU over the batch. probs: ``(..., n)`` in [0, 1]; targets ``(..., n)`` 0/1;
    weights ``(n,)``; eps: the smoothing term (an AU absent from both gives ``D = 1``);
    mask: the leading dims, bool.
    """
    weights = _check_au(probs, targets, weights)
    y = targets.to(probs.dtype)
    m = _frame_mask(mask, probs, probs.dim() - 1)
    p = probs if m is None else probs * m
    y = y if m is None else y * m
    dims = tuple(range(probs.dim() - 1))
    inter = (y * p).sum(dims) if dims else y * p
    denom = ((y * y).sum(dims) + (p * p).sum(dims)) if dims else y * y + p * p
    dice = (2.0 * inter + eps) / (denom + eps)
    return (weights * (1.0 - dice)).mean()


def au_loss(logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor,
            mask: torch.Tensor | None = None, eps: float = 1.0) -> torch.Tensor:
    """Eq. 7: ``weighted_bce(logits) + weighted_dice(sigmoid(logits))`` (shapes as there)."""
    return (weighted_bce(logits, targets, weights, mask)
            + weighted_dice(torch.sigmoid(logits), targets, weights, eps, mask))
