"""Attention-based disentanglement of the identity face into an identity part and a speech part.

An AU-conditioned generator (GANimation-style) looks at the identity image ``I_id`` together
with the five AU probabilities of a frame (tiled as channels) and outputs an attention mask
``A`` in [0, 1]:

    Id-face  = A * I_id          what stays: identity, pose, eyes, hair, background
    Aud-face = (1 - A) * I_id    what speech changes: lips, teeth, jaw

**Training recipe** (the reference code has none). The mask generator trains jointly with the
diffusion renderer, end to end through both uses of the mask (Id-face enters the denoiser as
image channels, Aud-face is encoded into the per-frame condition), plus three regularisers
(:func:`coursekit.losses.mask_losses`):

1. a *weak mouth-region prior*: binary cross-entropy of ``1 - A`` towards
   :func:`mouth_prior`, a soft region drawn from the canonical landmark template (every crop
   is aligned to it, so the mouth of every face sits there), with a small weight;
2. an *area* term: the mean of ``1 - A`` is kept near the prior's, so the mask neither
   swallows the face nor vanishes (GANimation's mask-saturation problem);
3. *total variation* on ``A``: smooth, blob-like masks.

Because ``A`` depends on the frame's AUs (from Audio2AU at inference, so only on the audio),
an open mouth can claim a larger speech region than a closed one; the notebook shows this.

Shapes: identity ``(N, 3, S, S)`` in [-1, 1], AU probabilities ``(N, 5)`` -> mask
``(N, 1, S, S)``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..face import template

MOUTH_POINTS = np.r_[48:68]
JAW_POINTS = np.r_[2:15]
NOSE_BASE = np.r_[31:36]


def _poly_mask(points: np.ndarray, size: int) -> np.ndarray:
    import cv2

    mask = np.zeros((size, size), np.uint8)
    hull = cv2.convexHull(np.round(points * 8).astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 1, lineType=cv2.LINE_8, shift=3)
    return mask.astype(np.float32)


def lower_face_region(size: int) -> np.ndarray:
    """``(S, S)`` bool: the lower face of an aligned crop, inside the jaw line and below the
    base of the nose (the region speech moves)."""
    pts = template(size)
    return _poly_mask(np.concatenate([pts[JAW_POINTS], pts[NOSE_BASE]]), size) > 0


def mouth_prior(size: int, dilate: float = 0.35, blur: float = 0.08) -> np.ndarray:
    """``(S, S)`` float in [0, 1]: the soft mouth region of an aligned crop.

    The mouth landmarks of the canonical template, scaled by ``1 + dilate`` around their
    centre (room for an open jaw), Gaussian-blurred with sigma ``blur * S``.
    """
    import cv2

    pts = template(size)[MOUTH_POINTS]
    centre = pts.mean(0)
    grown = centre + (pts - centre) * np.array([1 + dilate, 1 + 2 * dilate])
    mask = _poly_mask(grown, size)
    sigma = max(blur * size, 0.5)
    return np.clip(cv2.GaussianBlur(mask, (0, 0), sigma) * 1.5, 0, 1).astype(np.float32)


class MaskGenerator(nn.Module):
    """``forward(identity (N, 3, S, S), au_probs (N, 5)) -> A (N, 1, S, S)`` in [0, 1].

    A small encoder-decoder at a quarter of the resolution (the mask is smooth), with the AUs
    tiled over the image as extra channels (3 + 5 inputs), upsampled bilinearly to ``S``. The
    output bias starts at +3 (``A`` about 0.95 everywhere: little is handed to speech at
    first; the prior and the renderer's gradients carve out the mouth).
    """

    def __init__(self, channels: tuple[int, ...] = (64, 128), n_aus: int = 5):
        super().__init__()
        c1, c2 = channels
        self.enc1 = nn.Sequential(nn.Conv2d(3 + n_aus, c1, 3, padding=1), nn.SiLU())
        self.enc2 = nn.Sequential(nn.Conv2d(c1, c2, 3, stride=2, padding=1), nn.SiLU(),
                                  nn.Conv2d(c2, c2, 3, padding=1), nn.SiLU())
        self.dec = nn.Sequential(nn.Conv2d(c2 + c1, c1, 3, padding=1), nn.SiLU(),
                                 nn.Conv2d(c1, 1, 3, padding=1))
        nn.init.constant_(self.dec[-1].bias, 3.0)

    def forward(self, identity: torch.Tensor, au_probs: torch.Tensor) -> torch.Tensor:
        s = identity.shape[-1]
        small = F.interpolate(identity, size=(s // 4, s // 4), mode="area")
        aus = au_probs[:, :, None, None].expand(-1, -1, s // 4, s // 4).to(small.dtype)
        h1 = self.enc1(torch.cat([small, aus], dim=1))
        h2 = F.interpolate(self.enc2(h1), size=h1.shape[-2:], mode="bilinear", align_corners=False)
        logits = self.dec(torch.cat([h2, h1], dim=1))
        return torch.sigmoid(F.interpolate(logits, size=(s, s), mode="bilinear", align_corners=False))


def split_identity(identity: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(Id-face, Aud-face) = (A * I_id, (1 - A) * I_id)``, both ``(N, 3, S, S)``.

    Images are in [-1, 1]; masking is applied to ``(I + 1) / 2`` and mapped back, so a masked
    out pixel is black (-1), not mid-grey."""
    unit = (identity + 1) / 2
    return mask * unit * 2 - 1, (1 - mask) * unit * 2 - 1


def lower_face_mass(mask: torch.Tensor, size: int | None = None) -> torch.Tensor:
    """Share of ``(1 - A)``'s mass inside :func:`lower_face_region`, per mask ``(N,)``."""
    size = size or mask.shape[-1]
    region = torch.from_numpy(lower_face_region(size)).to(mask.device)
    speech = (1 - mask).flatten(1)
    return (speech * region.flatten()).sum(1) / speech.sum(1).clamp(min=1e-8)
