"""The extra per-frame input of the renderers' ``motion="warp"`` mode, checked and stacked.

With ``motion="warp"`` (:data:`coursekit.models.config.MOTIONS`) both renderers take, beside the
identity image and the speech, each frame's

* ``warped (B, T, 3, S, S)`` in [-1, 1]: the identity crop warped to the frame's wanted
  landmarks (jaw and mouth moved, :func:`coursekit.data.warped.warp_to`);
* ``mouth_mask (B, T, 1, S, S)`` in [0, 1]: where the wanted lips part
  (:func:`coursekit.data.warped.lips_mask`), the region a warp cannot fill.

In training they come from the clip's tracked landmarks (the dataset fields of the same
names); at inference from the motion model's displacements
(:func:`coursekit.data.warped.warp_tensors`).
"""

from __future__ import annotations

import torch

from .config import check_motion


def warp_stack(motion: str, warped: torch.Tensor | None, mouth_mask: torch.Tensor | None,
               lead: tuple[int, int], size: int, who: str) -> torch.Tensor | None:
    """``(B, T, 4, S, S)``: ``warped`` and ``mouth_mask`` stacked along channels for a
    ``motion="warp"`` model (``lead = (B, T)``), None for ``motion="none"``; a one-line
    ValueError naming ``who`` when they are missing, unwanted or of the wrong shape."""
    if not check_motion(motion):
        if warped is not None or mouth_mask is not None:
            raise ValueError(f"{who}: warped / mouth_mask given to a motion='none' model")
        return None
    b, t = lead
    want = ((b, t, 3, size, size), (b, t, 1, size, size))
    if warped is None or mouth_mask is None:
        raise ValueError(f"{who}: motion='warp' needs warped {want[0]} and mouth_mask {want[1]}")
    if (tuple(warped.shape), tuple(mouth_mask.shape)) != want:
        raise ValueError(f"{who}: expected warped {want[0]} and mouth_mask {want[1]}, got "
                         f"{tuple(warped.shape)} and {tuple(mouth_mask.shape)}")
    return torch.cat([warped, mouth_mask.to(warped)], dim=2)


def warp_base(warped: torch.Tensor) -> torch.Tensor:
    """The pre-activation the image decoder adds its output to in ``motion="warp"`` mode:
    ``atanh`` of the warped identity (any shape, values in [-1, 1]; clamped to +-0.99 so it
    stays finite). An output of zero then gives the warped identity itself."""
    return torch.atanh(warped.clamp(-0.99, 0.99))
