"""Frames of the warp generator: landmark motion -> warped crops or warped photos.

* :func:`crop_frames`: the aligned crop warped by each frame's thin-plate map (and painted);
* :func:`photo_frames`: the whole photo at its own resolution, in chunks: each frame is
  the photo warped through the crop's map (:func:`coursekit.warp.warp_photo`: only the
  region that moves is resampled, everything else is the photo's own pixels); with a
  painter, the painter's change of the 112 px warped crop (mouth interior) is pasted into
  it under the feathered mouth mask (:func:`paste_mouth`), so outside the mouth the frame
  is exactly the warped photo.

Frames whose motion is zero (silence) are the input itself, not resampled. Shapes: crops
``(S, S, 3)`` uint8, photos ``(H, W, 3)`` uint8, motion ``(T, 33, 2)`` inter-ocular
distances, landmarks ``(68, 2)`` pixels.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from .. import warp
from ..face import transform_points

CHUNK = 25
"""Frames made (and painted as one batch) at once."""


def _targets(source: np.ndarray, motion: np.ndarray) -> np.ndarray:
    """Target crop landmarks ``(T, 68, 2)``: ``source`` with the moving points displaced."""
    return warp.displace(source, motion)


def upper_face_fade(source: np.ndarray, size: int) -> np.ndarray:
    """``(S, 1, 1)`` float32 weights of the crop rows' displacements: 0 down to the nose tip
    (landmark 30 of ``source``, crop pixels), 1 from the top of the upper lip (51), a
    smoothstep between. The thin-plate spline is smooth, so its tails reach the eyes and the
    hair beside them; faded, the face above the nose is exactly the photo."""
    top = float(source[30, 1])
    full = max(float(source[51, 1]), top + 1)
    t = np.clip((np.arange(size, dtype=np.float32) - top) / (full - top), 0, 1)
    return (t * t * (3 - 2 * t))[:, None, None]


def _maps(source: np.ndarray, targets: np.ndarray, motion: np.ndarray, size: int) -> list:
    """Each frame's crop backward map ``(S, S, 2)`` (faded above the nose:
    :func:`upper_face_fade`), None for a frame that does not move."""
    fade = upper_face_fade(source, size)
    grid = warp.identity_map(size, size)
    return [grid + fade * (warp.backward_map(source, t, (size, size)) - grid) if np.any(m)
            else None for t, m in zip(targets, motion)]


@torch.no_grad()
def paint(painter, warped: np.ndarray, masks: np.ndarray, identity: np.ndarray
          ) -> tuple[np.ndarray, np.ndarray]:
    """The painter on a batch: warped crops ``(B, S, S, 3)`` uint8, its masks ``(B, S, S)``
    in [0, 1] (:func:`coursekit.models.painter.paint_mask`), the identity crop
    ``(S, S, 3)`` -> ``(rgb (B, S, S, 3) float32 0-255, weight (B, S, S))``, the weight
    ``alpha * mask`` of :func:`coursekit.models.painter.compose` (tensors in [-1, 1])."""
    dev = next(painter.parameters()).device

    def tensor(img):
        x = torch.from_numpy(np.ascontiguousarray(img)).to(dev).permute(0, 3, 1, 2).float()
        return x / 127.5 - 1

    w = tensor(warped)
    m = torch.from_numpy(masks).to(dev).float()[:, None]
    rgb, alpha = painter(w, m, tensor(identity[None]).expand_as(w))
    rgb = ((rgb.clamp(-1, 1) + 1) * 127.5).permute(0, 2, 3, 1).float().cpu().numpy()
    return rgb, (alpha * m)[:, 0].float().cpu().numpy()


def _painted_delta(painter, warped: np.ndarray, targets: np.ndarray, identity: np.ndarray,
                   moving: list[int], fade: np.ndarray) -> dict[int, np.ndarray]:
    """Frame index -> ``(delta (S, S, 3), weight (S, S))`` float32: what the painter adds
    to the warped crop (``weight * (rgb - warped)``, colour matched: :func:`colour_matched`;
    none above the nose: ``fade``), for the moving frames whose lips part (elsewhere
    nothing is painted)."""
    from ..models.painter import paint_mask

    size = warped.shape[1]
    masks = np.stack([paint_mask(t, (size, size), painter.cfg) for t in targets])
    todo = [k for k in moving if masks[k].max() > 1e-3]
    if not todo:
        return {}
    rgb, weight = paint(painter, warped[todo], masks[todo], identity)
    weight *= fade[..., 0]
    return {k: (colour_matched(rgb[i], warped[k].astype(np.float32), weight[i]), weight[i])
            for i, k in enumerate(todo)}


def colour_matched(rgb: np.ndarray, warped: np.ndarray, weight: np.ndarray,
                   limit: float = 24.0) -> np.ndarray:
    """The painted change ``weight * (rgb - shift - warped)`` ``(S, S, 3)``, ``shift`` the
    per-channel mean of ``rgb - warped`` over the blend's soft edge (weights
    ``weight * (1 - weight)``, where painted and photo pixels mix and a colour cast would
    show as a seam), at most ``limit`` grey levels; zero where ``weight`` is zero."""
    band = weight * (1 - weight)
    diff = rgb - warped
    if band.sum() > 1.0:
        shift = (band[..., None] * diff).sum((0, 1)) / band.sum()
        diff -= np.clip(shift, -limit, limit)
    return weight[..., None] * diff


def crop_frames(crop: np.ndarray, source: np.ndarray, motion: np.ndarray,
                painter=None) -> np.ndarray:
    """``(T, S, S, 3)`` uint8: ``crop`` warped from its landmarks ``source`` (crop pixels)
    by each frame's ``motion``, the painter's mouth added when there is one."""
    size = crop.shape[0]
    targets = _targets(source, motion)
    maps = _maps(source, targets, motion, size)
    out = np.stack([crop if m is None else warp.warp_image(crop, m) for m in maps])
    if painter is not None:
        moving = [k for k, m in enumerate(maps) if m is not None]
        fade = upper_face_fade(source, size)
        for k, (delta, _) in _painted_delta(painter, out, targets, crop, moving, fade).items():
            out[k] = np.clip(out[k] + delta + 0.5, 0, 255).astype(np.uint8)
    return out


def paste_mouth(frame: np.ndarray, delta: np.ndarray, transform: np.ndarray,
                where: np.ndarray | None = None) -> None:
    """Add the crop-resolution change ``delta (S, S, 3)`` (zero outside the painted mouth,
    ``where (S, S)`` bool when known) to the photo ``frame`` in place, mapped through the
    inverse of ``transform`` (photo -> crop, bilinear), only in the photo box around the
    painted pixels."""
    import cv2

    ys, xs = np.nonzero((delta != 0).any(-1) if where is None else where)
    if not len(xs):
        return
    corners = np.array([[xs.min() - 1, ys.min() - 1], [xs.max() + 1, ys.min() - 1],
                        [xs.min() - 1, ys.max() + 1], [xs.max() + 1, ys.max() + 1]], np.float32)
    inv = cv2.invertAffineTransform(np.asarray(transform, np.float64))
    pts = transform_points(corners, inv.astype(np.float32))
    h, w = frame.shape[:2]
    x0, y0 = np.maximum(np.floor(pts.min(0)).astype(int), 0)
    x1, y1 = np.minimum(np.ceil(pts.max(0)).astype(int) + 1, [w, h])
    if x1 <= x0 or y1 <= y0:
        return
    inv[:, 2] -= (x0, y0)
    change = cv2.warpAffine(np.ascontiguousarray(delta, np.float32), inv,
                            (int(x1 - x0), int(y1 - y0)), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT)
    region = frame[y0:y1, x0:x1]
    region[:] = np.clip(region + change + 0.5, 0, 255).astype(np.uint8)


def photo_frames(photo: np.ndarray, crop: np.ndarray, transform: np.ndarray,
                 landmarks: np.ndarray, motion: np.ndarray, painter=None, *,
                 chunk: int = CHUNK) -> Iterator[np.ndarray]:
    """Chunks ``(n, H, W, 3)`` uint8 of the talking photo, ``chunk`` frames at a time.

    Args:
        photo: ``(H, W, 3)`` uint8. crop: its aligned ``(S, S, 3)`` crop, made with
            ``transform (2, 3)`` (photo -> crop). landmarks: ``(68, 2)`` photo pixels.
        motion: ``(T, 33, 2)`` displacements (inter-ocular distances, crop frame).
        painter: the mouth painter, or None (the warped photo as it is).
    """
    size = crop.shape[0]
    source = transform_points(np.asarray(landmarks, np.float32), np.asarray(transform, np.float32))
    for start in range(0, len(motion), chunk):
        part = motion[start:start + chunk]
        targets = _targets(source, part)
        maps = _maps(source, targets, part, size)
        frames = np.stack([photo if m is None else warp.warp_photo(photo, m, transform)
                           for m in maps])
        if painter is not None:
            moving = [k for k, m in enumerate(maps) if m is not None]
            warped = np.stack([crop if m is None else warp.warp_image(crop, m) for m in maps])
            fade = upper_face_fade(source, size)
            for k, (delta, weight) in _painted_delta(painter, warped, targets, crop, moving,
                                                     fade).items():
                paste_mouth(frames[k], delta, transform, weight > 0)
        yield frames
