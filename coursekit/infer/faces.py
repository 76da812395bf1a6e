"""Faces in photos: reading, cropping as in preprocessing, pasting generated crops back."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..face import (FaceError, LandmarkDetector, alignment_transforms, template,
                    transform_points, warp_faces)
from .generator import InferError

MAX_PHOTO_SIDE = 1280
"""Photos whose longer side exceeds this are reduced to it first (detection speed, video size)."""

LOWER_FACE = np.r_[1:16, 30]
"""Landmarks whose hull is the paste-back region: the jaw line and the tip of the nose (the
eyes stay the photo's: speech moves only the lower face)."""

CHIN = np.r_[4:13]
"""Jaw points moved down in the paste-back mask, to leave room for a dropped jaw."""


# ----------------------------------------------------------------------------- faces


@dataclass
class FaceCrop:
    """A photo's face, aligned as in preprocessing."""

    crop: np.ndarray  # (S, S, 3) uint8
    transform: np.ndarray  # (2, 3) float32, photo pixels -> crop pixels
    landmarks: np.ndarray  # (68, 2) float32, photo pixels
    box: np.ndarray  # (4,) float32, detector box (x0, y0, x1, y1)


def read_image(path: str | os.PathLike, max_side: int | None = MAX_PHOTO_SIDE) -> np.ndarray:
    """A photo as ``(H, W, 3)`` RGB uint8 (grey and alpha images converted, EXIF rotation
    applied), reduced so that its longer side is at most ``max_side``.

    Raises FileNotFoundError (no such file) or :class:`InferError` (not a readable image),
    naming the file.
    """
    import cv2

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such image file")
    data = np.fromfile(path, dtype=np.uint8)
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if bgr is None:
        raise InferError(f"{path}: not a readable image (PNG, JPEG, BMP, TIFF, WebP, ...)")
    image = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    h, w = image.shape[:2]
    if max_side and max(h, w) > max_side:
        f = max_side / max(h, w)
        image = cv2.resize(image, (max(1, round(w * f)), max(1, round(h * f))),
                           interpolation=cv2.INTER_AREA)
    return image


def crop_face(image: np.ndarray, size: int, detector: LandmarkDetector | None = None, *,
              source: str = "image") -> FaceCrop:
    """Detect the largest face of ``image`` ``(H, W, 3)`` RGB uint8 and crop it to
    ``(size, size, 3)`` with preprocessing's template alignment.

    The transform is :func:`coursekit.face.alignment_transforms` of the 68 landmarks (one
    frame: no temporal smoothing), the crop :func:`coursekit.face.warp_faces`. When the
    transform shrinks by more than 2x, the photo is first reduced by area averaging so that
    the warp runs at scale 1 (same geometry, no aliasing).

    Raises:
        FaceError: no face found; the message names ``source``.
    """
    import cv2

    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"{source}: expected an (H, W, 3) uint8 RGB image, got "
                         f"{image.shape} {image.dtype}")
    detector = detector or LandmarkDetector()
    boxes = detector.detect(image)
    if not boxes:
        raise FaceError(f"no face found in {source} (dlib's frontal face detector needs a "
                        "frontal, unobstructed face at least about 80 px wide)")
    box = boxes[0]  # the largest
    landmarks = detector.landmarks(image, box)
    m = alignment_transforms(landmarks[None], size)[0]
    scale = float(np.sqrt(abs(np.linalg.det(m[:, :2].astype(np.float64)))))
    source_image, m_src = image, m
    if scale < 0.5:  # reduce first: warp_faces' bilinear warp would skip pixels
        h, w = image.shape[:2]
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        source_image = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
        fx, fy = nw / w, nh / h  # small -> photo: x = (x_s + 0.5) / fx - 0.5
        back = np.array([[1 / fx, 0, 0.5 / fx - 0.5], [0, 1 / fy, 0.5 / fy - 0.5], [0, 0, 1]])
        m_src = (np.vstack([m, [0, 0, 1]]) @ back)[:2].astype(np.float32)
    crop = warp_faces(source_image[None], m_src[None], size)[0]
    return FaceCrop(crop, m.astype(np.float32), landmarks, np.asarray(box, np.float32))


def to_tensor(crop: np.ndarray) -> torch.Tensor:
    """``(S, S, 3)`` uint8 -> ``(3, S, S)`` float32 in [-1, 1] (the datasets' scaling)."""
    img = crop.astype(np.float32) * np.float32(1 / 127.5) - np.float32(1.0)
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))


def to_uint8(frames: torch.Tensor) -> np.ndarray:
    """``(T, 3, S, S)`` in [-1, 1] -> ``(T, S, S, 3)`` uint8."""
    img = ((frames.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return img.permute(0, 2, 3, 1).contiguous().numpy()


# ----------------------------------------------------------------------------- paste-back


def lower_face_polygon(size: int, points: np.ndarray | None = None, jaw_drop: float = 0.06,
                       shrink: float = 0.94) -> np.ndarray:
    """The paste-back region in crop pixels: hull of the jaw line and the nose tip
    (:data:`LOWER_FACE`) of ``points`` (``(68, 2)`` crop pixels; the template when None), chin
    points lowered by ``jaw_drop * size`` (an open mouth drops the jaw), shrunk towards its
    centre by ``shrink`` (the feathering then fades out near the face's edge, not outside
    it). Returns ``(N, 2)`` float32 convex-hull points."""
    import cv2

    pts = (template(size) if points is None else np.asarray(points, np.float32))[LOWER_FACE]
    pts = pts.copy()
    chin = np.isin(LOWER_FACE, CHIN)
    pts[chin, 1] = np.minimum(pts[chin, 1] + jaw_drop * size, size - 1)
    centre = pts.mean(axis=0)
    pts = centre + shrink * (pts - centre)
    return cv2.convexHull(pts.astype(np.float32))[:, 0]


def paste_back(photo: np.ndarray, frames: np.ndarray, transform: np.ndarray,
               landmarks: np.ndarray | None = None, *, feather: float = 0.03,
               match_colour: bool = True) -> np.ndarray:
    """Put generated crops back into the photo: the whole photo, with a talking face.

    Each crop is warped into the photo with the inverse of ``transform`` and blended under a
    mask of the lower face (:func:`lower_face_polygon` of the photo's ``landmarks``, or of
    the template when they are not given, mapped into the photo) blurred by a
    Gaussian of ``feather`` crop widths. Outside the mask the photo is untouched. With
    ``match_colour`` the crops are first shifted (per channel, one shift for the whole clip)
    so that their mean colour under the mask is the photo's there.

    Args:
        photo: ``(H, W, 3)`` uint8 RGB. frames: ``(T, S, S, 3)`` uint8 generated crops.
        transform: ``(2, 3)`` photo -> crop, as in :class:`FaceCrop`.
        landmarks: ``(68, 2)`` photo pixels (:attr:`FaceCrop.landmarks`), or None.

    Returns:
        ``(T, H, W, 3)`` uint8.
    """
    import cv2

    photo = np.asarray(photo)
    frames = np.asarray(frames)
    h, w = photo.shape[:2]
    s = frames.shape[1]
    m = np.asarray(transform, np.float64)
    inv = cv2.invertAffineTransform(m)
    scale = 1.0 / np.sqrt(abs(np.linalg.det(m[:, :2])))  # photo pixels per crop pixel
    poly = lower_face_polygon(s, None if landmarks is None else
                              transform_points(np.asarray(landmarks, np.float32), m.astype(np.float32)))
    if match_colour:
        crop_mask = np.zeros((s, s), np.uint8)
        cv2.fillConvexPoly(crop_mask, np.round(poly).astype(np.int32), 1)
        reference = cv2.warpAffine(photo, m, (s, s), flags=cv2.INTER_AREA,
                                   borderMode=cv2.BORDER_REPLICATE)
        inside = crop_mask.astype(bool)
        shift = reference[inside].mean(axis=0) - frames[:, inside].reshape(-1, 3).mean(axis=0)
        frames = np.clip(frames + shift, 0, 255).astype(np.uint8)
    # the mask at photo resolution (smooth edges, whatever the upscaling)
    mask = np.zeros((h, w), np.float32)
    photo_poly = transform_points(poly, inv.astype(np.float32))
    cv2.fillConvexPoly(mask, np.round(photo_poly * 16).astype(np.int32), 1.0,
                       lineType=cv2.LINE_AA, shift=4)
    sigma = max(feather * s * scale, 0.5)
    mask = cv2.GaussianBlur(mask, (0, 0), sigma)
    ys, xs = np.nonzero(mask > 1e-3)
    out = np.repeat(photo[None], len(frames), axis=0)
    if len(xs) == 0:  # the face lies outside the photo
        return out
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    alpha = mask[y0:y1, x0:x1, None]
    roi_inv = inv.copy()
    roi_inv[:, 2] -= (x0, y0)
    base = photo[y0:y1, x0:x1].astype(np.float32)
    for k, crop in enumerate(frames):
        warped = cv2.warpAffine(crop, roi_inv, (int(x1 - x0), int(y1 - y0)),
                                flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
        blend = base + alpha * (warped.astype(np.float32) - base)
        out[k, y0:y1, x0:x1] = np.clip(np.round(blend), 0, 255).astype(np.uint8)
    return out



