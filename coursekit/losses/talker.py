"""The total loss of the talking-face generator (paper eq. 11)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from .au import au_loss
from .image import identity_loss, l1_reconstruction
from .temporal import temporal_loss
from .vgg import PerceptualLoss


@dataclass
class TalkerLossWeights:
    """The trade-off weights of eq. 11 (paper's values as defaults)."""

    rec: float = 1.5    # L1 reconstruction
    id: float = 1.5     # identity (upper face)
    per: float = 0.07   # perceptual (VGG-19)
    au: float = 0.02    # AU classifier on the generated frames
    temp: float = 0.0   # Face2Vid's temporal loss (flow-warped previous output; not in eq. 11)


class TalkerLoss(nn.Module):
    """Eq. 11: ``rec * L_rec + id * L_id + per * L_per + au * L_au``.

    Args:
        au_weights: ``(5,)`` per-AU weights of eq. 5-6 (:func:`au_class_weights` of the
            training set's occurrence rates); None = all 1.
        weights: :class:`TalkerLossWeights` (or a dict of its fields).
        perceptual: a :class:`PerceptualLoss`; None builds one (weights from
            ``COURSEKIT_VGG19_WEIGHTS`` or the warned fallback). Skipped when ``per == 0``.
        dice_eps: the smoothing term of eq. 6.
        per_frames: the perceptual term (a VGG-19 pass per frame, most of a CPU step's
            time) is computed on this many of the batch's real frames, drawn at random with
            torch's global RNG (an unbiased estimate of the full term; a resumed
            :class:`~coursekit.train.trainer.Trainer` run replays the draws); None = all.

    ``forward(pred_frames, target_frames, identity, au_logits=None, au_targets=None,
    mask=None)`` with frames ``(B, T, 3, H, W)``, identity ``(B, 3, H, W)``, the AU
    classifier's logits on the generated frames ``(B, T, 5)`` and the true occurrences
    ``(B, T, 5)``, mask ``(B, T)`` bool; ``flow (B, T, 2, H, W)`` and ``mouth_mask (B, T,
    1, H, W)`` of a ``temporal="flow"`` talker for :func:`~.temporal.temporal_loss`. Returns
    ``{"total", "rec", "id", "per", "au", "temp"}`` scalars (the unweighted terms and their
    weighted sum; ``au`` is 0 without logits, ``temp`` 0 without a flow or a weight).
    """

    def __init__(self, au_weights=None, weights: TalkerLossWeights | dict | None = None,
                 perceptual: PerceptualLoss | None = None, dice_eps: float = 1.0,
                 per_frames: int | None = None):
        super().__init__()
        if isinstance(weights, dict):
            weights = TalkerLossWeights(**weights)
        self.weights = weights or TalkerLossWeights()
        au_w = torch.ones(5) if au_weights is None else torch.as_tensor(au_weights).float()
        self.register_buffer("au_weights", au_w.reshape(-1))
        if perceptual is None and self.weights.per != 0:
            perceptual = PerceptualLoss()
        self.perceptual = perceptual
        self.dice_eps = float(dice_eps)
        if per_frames is not None and int(per_frames) < 1:
            raise ValueError(f"per_frames must be a positive number of frames or None, got {per_frames}")
        self.per_frames = None if per_frames is None else int(per_frames)

    def perceptual_term(self, pred_frames: torch.Tensor, target_frames: torch.Tensor,
                        mask: torch.Tensor | None = None) -> torch.Tensor:
        """Eq. 8 on the real frames of ``(B, T, 3, H, W)`` (or ``per_frames`` of them)."""
        pred, target = pred_frames.flatten(0, 1), target_frames.flatten(0, 1)
        if mask is not None:
            keep = mask.reshape(-1).to(pred.device)
            pred, target = pred[keep], target[keep]  # (N_real, 3, H, W)
        if self.per_frames is not None and self.per_frames < len(pred):
            pick = torch.randperm(len(pred))[: self.per_frames].to(pred.device)
            pred, target = pred[pick], target[pick]
        return self.perceptual(pred, target)

    def forward(self, pred_frames: torch.Tensor, target_frames: torch.Tensor,
                identity: torch.Tensor, au_logits: torch.Tensor | None = None,
                au_targets: torch.Tensor | None = None,
                mask: torch.Tensor | None = None, flow: torch.Tensor | None = None,
                mouth_mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        zero = pred_frames.new_zeros(())
        terms = {
            "rec": l1_reconstruction(pred_frames, target_frames, mask),
            "id": identity_loss(pred_frames, identity, mask),
            "per": (self.perceptual_term(pred_frames, target_frames, mask)
                    if self.perceptual is not None and self.weights.per != 0 else zero),
            "au": (au_loss(au_logits, au_targets, self.au_weights, mask, self.dice_eps)
                   if au_logits is not None else zero),
            "temp": (temporal_loss(pred_frames, flow, mouth_mask, mask)
                     if flow is not None and self.weights.temp != 0 else zero),
        }
        lam = asdict(self.weights)
        terms["total"] = sum(lam[k] * terms[k] for k in ("rec", "id", "per", "au"))
        if lam["temp"] != 0:
            terms["total"] = terms["total"] + lam["temp"] * terms["temp"]
        return terms
