"""Faces: detection, 68 landmarks, tracking through a clip, alignment and cropping.

Offline and CPU-only: dlib's HOG frontal-face detector and its 68-point shape predictor
(``dlib-bin`` wheel; the predictor file ships in the ``face-recognition-models`` package and is
located by path). Licence note: that predictor was trained on iBUG 300-W, whose terms exclude
commercial use.

The pipeline for a clip (:func:`align_clip`):

1. **track** (:func:`track_landmarks`): detect the face in the first frame where one is found
   (the largest, if several), then follow it: each frame is searched only near the previous
   face (fast, and the same person is followed even when someone larger walks in), the whole
   frame again when the face is lost;
2. **smooth** (:func:`smooth_landmarks`): a small temporal Gaussian on the landmarks that
   define the alignment, so crops do not jitter with the predictor's noise;
3. **align** (:func:`similarity_transform`): the rotation + uniform scale + shift that maps the
   rigid points (eyes and nose, which speech does not move) onto a canonical template;
4. **crop** (:func:`warp_faces`): warp each frame with its transform into a ``size x size`` crop
   (112 px as in the paper) framing forehead to chin, with room for a dropped jaw.

Shapes: frames ``(T, H, W, 3)`` RGB uint8, landmarks ``(T, 68, 2)`` float32 ``(x, y)`` pixels,
transforms ``(T, 2, 3)`` (image -> crop, for ``cv2.warpAffine``).
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Canonical face: Procrustes mean of dlib landmarks on real GRID speakers, made left-right
# symmetric; units of inter-ocular distance (eye centre to eye centre), origin midway between
# the eyes, x to the image right, y down.
TEMPLATE = np.array("""
-1.111 0.097 -1.086 0.409 -1.058 0.718 -1.027 1.030 -0.948 1.321 -0.793 1.575 -0.566 1.775
-0.305 1.924 -0.000 1.977 0.305 1.924 0.566 1.775 0.793 1.575 0.948 1.321 1.027 1.030 1.058
0.718 1.086 0.409 1.111 0.097 -0.924 -0.209 -0.802 -0.370 -0.602 -0.422 -0.392 -0.397 -0.188
-0.332 0.188 -0.332 0.392 -0.397 0.602 -0.422 0.802 -0.370 0.924 -0.209 -0.000 -0.077 -0.000
0.130 -0.000 0.330 -0.000 0.543 -0.236 0.760 -0.120 0.787 -0.000 0.811 0.120 0.787 0.236 0.760
-0.697 -0.003 -0.574 -0.065 -0.425 -0.062 -0.288 0.022 -0.429 0.054 -0.581 0.055 0.288 0.022
0.425 -0.062 0.574 -0.065 0.697 -0.003 0.581 0.055 0.429 0.054 -0.430 1.235 -0.280 1.155 -0.120
1.102 -0.000 1.137 0.120 1.102 0.280 1.155 0.430 1.235 0.285 1.361 0.128 1.422 -0.000 1.434
-0.128 1.422 -0.285 1.361 -0.356 1.238 -0.121 1.205 -0.000 1.217 0.121 1.205 0.356 1.238 0.120
1.272 -0.000 1.286 -0.120 1.272""".split(), dtype=np.float32).reshape(68, 2)

RIGID_POINTS = np.r_[27:36, 36:48]
"""Nose and eyes: the landmarks that speech does not move, used for alignment."""

CROP_BOX = (-1.8, -1.2, 1.8, 2.4)
"""The crop in template units (x0, y0, x1, y1): forehead to below the chin, cheek to cheek."""

LANDMARK_MODEL = "shape_predictor_68_face_landmarks.dat"
UPSCALE_BELOW = 200
"""Faces narrower than this (pixels) are enlarged before landmark prediction (sub-pixel)."""


class FaceError(ValueError):
    """A face problem in a named file (no face found, unusable landmarks, ...)."""


# ----------------------------------------------------------------------------- models


def landmark_model_path() -> Path:
    """Path of dlib's 68-point predictor: ``$COURSEKIT_LANDMARK_MODEL``, else the copy in the
    ``face-recognition-models`` package (found by path: importing that package needs
    ``pkg_resources``, which modern Pythons lack)."""
    env = os.environ.get("COURSEKIT_LANDMARK_MODEL")
    if env:
        path = Path(env)
    else:
        spec = importlib.util.find_spec("face_recognition_models")
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError("dlib's 68-point landmark model is missing: "
                                    "pip install face-recognition-models (or set "
                                    "COURSEKIT_LANDMARK_MODEL to the .dat file)")
        path = Path(list(spec.submodule_search_locations)[0]) / "models" / LANDMARK_MODEL
    if not path.is_file():
        raise FileNotFoundError(f"{path}: dlib landmark model not found")
    return path


class LandmarkDetector:
    """dlib HOG face detector plus the 68-point shape predictor (load once, reuse)."""

    def __init__(self, model_path: str | os.PathLike | None = None):
        import dlib

        self._dlib = dlib
        self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(str(model_path or landmark_model_path()))

    def detect(self, image: np.ndarray, upsample: int | None = None) -> list[np.ndarray]:
        """Face boxes ``(x0, y0, x1, y1)``, largest first. Tries upsampling once for small faces."""
        for up in ([upsample] if upsample is not None else [0, 1]):
            rects = self.detector(image, up)
            if len(rects):
                boxes = [np.array([r.left(), r.top(), r.right(), r.bottom()], np.float32)
                         for r in rects]
                return sorted(boxes, key=lambda b: -(b[2] - b[0]) * (b[3] - b[1]))
        return []

    def landmarks(self, image: np.ndarray, box: np.ndarray) -> np.ndarray:
        """``(68, 2)`` float32 landmarks of the face inside ``box``.

        dlib returns whole pixels; on a face 100 px wide one pixel is 0.03 inter-ocular
        distances, as much as a small lip movement. Faces narrower than
        :data:`UPSCALE_BELOW` are therefore enlarged (only the region around the box) before
        the predictor runs, and the points are mapped back: sub-pixel landmarks.
        """
        import cv2

        width = float(box[2] - box[0])
        scale = int(np.clip(np.ceil(UPSCALE_BELOW / max(width, 1.0)), 1, 4))
        x0 = int(max(0, box[0] - width / 2))
        y0 = int(max(0, box[1] - width / 2))
        x1 = int(min(image.shape[1], box[2] + width / 2))
        y1 = int(min(image.shape[0], box[3] + width / 2))
        roi = image[y0:y1, x0:x1]
        if scale > 1:
            roi = cv2.resize(roi, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        rect = (np.asarray(box, np.float64) - [x0, y0, x0, y0]) * scale
        shape = self.predictor(np.ascontiguousarray(roi),
                               self._dlib.rectangle(*(int(round(v)) for v in rect)))
        pts = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)
        return ((pts + 0.5) / scale - 0.5 + [x0, y0]).astype(np.float32)


# ----------------------------------------------------------------------------- tracking


def _bbox(points: np.ndarray) -> np.ndarray:
    return np.concatenate([points.min(axis=0), points.max(axis=0)]).astype(np.float32)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def track_landmarks(frames: np.ndarray, detector: LandmarkDetector | None = None, *,
                    source: str = "video", redetect_every: int = 5) -> np.ndarray:
    """68 landmarks in every frame of a clip, following one face.

    The face is found in the first frame that has one (the largest face), then followed: in
    each frame the detector searches only a small region around the previous box (fast, and
    it cannot jump to another person); where it finds nothing the previous box is kept, and
    every ``redetect_every`` such frames the whole frame is searched again. Boxes always come
    from the detector, never from the predicted landmarks, so a biased prediction cannot
    drag the box away frame after frame.

    Args:
        frames: ``(T, H, W, 3)`` RGB uint8.
        detector: a loaded :class:`LandmarkDetector` (made if None; reuse it across clips).
        source: the file name, for error messages.
        redetect_every: frames without a nearby detection before a whole-frame search.

    Returns:
        ``(T, 68, 2)`` float32 landmarks, image pixels.

    Raises:
        FaceError: no face in any frame (the message names ``source``).
    """
    detector = detector or LandmarkDetector()
    n = len(frames)
    if n == 0:
        raise FaceError(f"{source}: the clip has no frames")
    start = next((k for k in range(n) if detector.detect(frames[k])), None)
    if start is None:
        raise FaceError(f"{source}: no face found in any of its {n} frames")
    out = np.zeros((n, 68, 2), dtype=np.float32)
    first = detector.detect(frames[start])[0]  # the largest face
    _follow(frames, detector, out, first, range(start, n), redetect_every)
    if start > 0:  # frames before the first detection: track backwards
        _follow(frames, detector, out, first, range(start, -1, -1), redetect_every)
    return out


def _detect_near(detector: LandmarkDetector, image: np.ndarray, box: np.ndarray):
    """The detection overlapping ``box`` most, searched in a region around it, or None."""
    w = box[2] - box[0]
    x0, y0 = int(max(0, box[0] - w / 2)), int(max(0, box[1] - w / 2))
    x1, y1 = int(min(image.shape[1], box[2] + w / 2)), int(min(image.shape[0], box[3] + w / 2))
    found = detector.detect(np.ascontiguousarray(image[y0:y1, x0:x1]), 0 if w >= 90 else 1)
    found = [b + np.array([x0, y0, x0, y0], np.float32) for b in found]
    best = max(found, key=lambda b: _iou(b, box), default=None)
    return best if best is not None and _iou(best, box) > 0.3 else None


def _follow(frames, detector, out, box, order, redetect_every) -> None:
    missed = 0
    for k in order:
        found = _detect_near(detector, frames[k], box)
        if found is None:
            missed += 1
            if missed % redetect_every == 0:  # lost for a while: search the whole frame
                boxes = detector.detect(frames[k])
                found = max(boxes, key=lambda b: _iou(b, box)) if boxes else None
        if found is not None:
            box, missed = found, 0
        out[k] = detector.landmarks(frames[k], box)


def smooth_landmarks(landmarks: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    """Temporal Gaussian smoothing (``sigma`` in frames) of ``(T, 68, 2)`` landmarks."""
    if sigma <= 0 or len(landmarks) < 2:
        return landmarks.astype(np.float32, copy=True)
    from scipy.ndimage import gaussian_filter1d

    return gaussian_filter1d(landmarks.astype(np.float32), sigma, axis=0, mode="nearest")


# ----------------------------------------------------------------------------- alignment


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, shift; no reflection), Umeyama 1991.

    Returns the ``(2, 3)`` matrix ``M`` minimising ``sum |M [src; 1] - dst|^2``.
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    u, sig, vt = np.linalg.svd(d.T @ s / len(src))
    sign = np.diag([1.0, np.sign(np.linalg.det(u @ vt))])
    rot = u @ sign @ vt
    scale = np.trace(np.diag(sig) @ sign) / (s ** 2).sum(axis=1).mean()
    m = np.zeros((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - scale * rot @ mu_s
    return m.astype(np.float32)


def template(size: int = 112) -> np.ndarray:
    """The canonical landmarks in a ``size x size`` crop, ``(68, 2)`` pixels."""
    x0, y0, x1, y1 = CROP_BOX
    return ((TEMPLATE - [x0, y0]) * [size / (x1 - x0), size / (y1 - y0)]).astype(np.float32)


def transform_points(points: np.ndarray, transforms: np.ndarray) -> np.ndarray:
    """Apply ``(..., 2, 3)`` affine transforms to ``(..., N, 2)`` points."""
    return points @ np.swapaxes(transforms[..., :2], -1, -2) + transforms[..., None, :, 2]


def alignment_transforms(landmarks: np.ndarray, size: int = 112,
                         smooth_sigma: float = 1.5) -> np.ndarray:
    """Image -> crop similarity transforms ``(T, 2, 3)`` from (smoothed) rigid landmarks."""
    rigid = smooth_landmarks(landmarks[:, RIGID_POINTS], smooth_sigma)
    target = template(size)[RIGID_POINTS]
    return np.stack([similarity_transform(r, target) for r in rigid])


def warp_faces(frames: np.ndarray, transforms: np.ndarray, size: int = 112) -> np.ndarray:
    """Crop ``(T, H, W, 3)`` frames with their transforms into ``(T, size, size, 3)``."""
    import cv2

    out = np.empty((len(frames), size, size, 3), dtype=np.uint8)
    for k, (frame, m) in enumerate(zip(frames, transforms)):
        out[k] = cv2.warpAffine(frame, m, (size, size), flags=cv2.INTER_AREA
                                if m[0, 0] ** 2 + m[0, 1] ** 2 < 0.5 else cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REPLICATE)
    return out


@dataclass
class AlignedClip:
    """A clip's faces, aligned and cropped."""

    crops: np.ndarray  # (T, size, size, 3) uint8
    landmarks: np.ndarray  # (T, 68, 2) image pixels
    aligned: np.ndarray  # (T, 68, 2) crop pixels
    transforms: np.ndarray  # (T, 2, 3) image -> crop


def align_clip(frames: np.ndarray, landmarks: np.ndarray | None = None, *, size: int = 112,
               source: str = "video", detector: LandmarkDetector | None = None,
               smooth_sigma: float = 1.5) -> AlignedClip:
    """Track (unless ``landmarks`` are given, e.g. a corpus' ground truth), align and crop."""
    if landmarks is None:
        landmarks = track_landmarks(frames, detector, source=source)
    if len(landmarks) != len(frames):
        raise FaceError(f"{source}: {len(landmarks)} landmark frames for {len(frames)} video frames")
    transforms = alignment_transforms(landmarks, size, smooth_sigma)
    return AlignedClip(warp_faces(frames, transforms, size), landmarks.astype(np.float32),
                       transform_points(landmarks, transforms).astype(np.float32), transforms)
