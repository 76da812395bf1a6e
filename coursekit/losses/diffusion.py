"""Losses of the diffusion renderer: region-weighted MSE and the disentanglement-mask
regularisers."""

from __future__ import annotations

import torch
from torch import nn


def region_weighted_mse(pred: torch.Tensor, target: torch.Tensor,
                        weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error of ``(N, C, S, S)`` images, each pixel weighted by ``weight (S, S)``
    (normalised to mean 1, so the loss stays on the scale of a plain MSE)."""
    err = (pred.float() - target.float()) ** 2
    if weight is None:
        return err.mean()
    weight = weight.to(err) / weight.mean()
    return (err * weight).mean()


def mask_losses(mask: torch.Tensor, prior: torch.Tensor) -> dict[str, torch.Tensor]:
    """Regularisers of the disentanglement mask ``A (N, 1, S, S)`` (see
    :mod:`coursekit.models.disentangle`), against the soft mouth prior ``(S, S)`` in [0, 1]:

    * ``prior``: binary cross-entropy of the speech region ``1 - A`` towards the prior;
    * ``area``: squared difference of the mean of ``1 - A`` and the prior's mean;
    * ``tv``: total variation of ``A`` (mean absolute difference of neighbouring pixels).
    """
    speech = (1 - mask.float()).clamp(1e-6, 1 - 1e-6)
    prior = prior.to(speech).expand_as(speech)
    tv = (mask[..., 1:, :] - mask[..., :-1, :]).abs().mean() + \
         (mask[..., :, 1:] - mask[..., :, :-1]).abs().mean()
    return {"prior": nn.functional.binary_cross_entropy(speech, prior),
            "area": (speech.mean() - prior.mean()) ** 2, "tv": tv}
