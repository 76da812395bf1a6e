"""The five speech-related facial action units (FACS) that drive the mouth.

=====  ======================  ============================================
AU     FACS name               what it does to the mouth
=====  ======================  ============================================
AU10   upper lip raiser        lifts the upper lip, shows the upper teeth
AU14   dimpler                 tightens the lip corners, pulls them inwards
AU20   lip stretcher           pulls the lip corners sideways
AU25   lips part               separates the lips
AU26   jaw drop                lowers the jaw, opens the mouth
=====  ======================  ============================================

Intensities follow OpenFace's convention: 0 (absent) to 5 (maximum).

Two sources of AU labels:

* **OpenFace 2** output, read with :func:`read_openface_csv` (FeatureExtraction, one CSV per
  video) or :func:`read_openface_frames` (one one-row CSV per frame, the reference code's
  ``align_face/N.csv`` layout);
* a **built-in estimator** from 68 landmarks, :func:`estimate_aus` (no OpenFace needed):
  similarity-align each frame on the nose and eye corners (units: inter-ocular distance, IOD),
  measure six mouth/jaw distances, subtract the speaker's neutral (closed-mouth) face, add one
  temporal cue (lips closed between open frames), and map the result linearly to 0-5 with
  :data:`WEIGHTS`, fitted by :func:`calibrate` on dlib-tracked sample speakers spk1-spk4.
  Measured accuracy (``benchmarks/au_estimator.md``): AU25/AU26 reliable, AU10/AU20 fair,
  AU14 weak (its main cue, the dimple, has no landmark).

Shapes: landmarks ``(T, 68, 2)`` image pixels ``(x, y)``; AU arrays ``(T, 5)`` in :data:`AUS`
order; features ``(T, F)``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from .face import TEMPLATE, similarity_transform, smooth_landmarks, transform_points

AUS = ("AU10", "AU14", "AU20", "AU25", "AU26")
"""AU names in the fixed order used everywhere (arrays of shape ``(..., 5)``)."""

OCCURRENCE_THRESHOLD = 1.0
"""An AU occurs in a frame when its 0-5 intensity reaches this value (FACS level 'A')."""

# ----------------------------------------------------------------------------- OpenFace CSVs


def _read_table(path: Path) -> tuple[dict[str, int], np.ndarray]:
    """An OpenFace CSV as ``({column name: index}, (rows, columns) float64)``."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such OpenFace CSV")
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    if not lines:
        raise ValueError(f"{path}: empty file (expected an OpenFace CSV: a header and rows)")
    header = [h.strip() for h in lines[0].split(",")]
    if len(lines) < 2:
        raise ValueError(f"{path}: header but no data rows (OpenFace found no face?)")
    rows = []
    for n, line in enumerate(lines[1:], 2):
        values = line.split(",")
        if len(values) != len(header):
            raise ValueError(f"{path}:{n}: {len(values)} values for {len(header)} columns")
        try:
            rows.append([float(v) for v in values])
        except ValueError:
            raise ValueError(f"{path}:{n}: non-numeric value in {line[:60]!r}...") from None
    return {name: i for i, name in enumerate(header)}, np.array(rows, dtype=np.float64)


def _openface_dict(path: Path, col: dict[str, int], data: np.ndarray, fps: float) -> dict:
    missing = [f"{au}_r" for au in AUS if f"{au}_r" not in col]
    if missing:
        raise ValueError(f"{path}: missing AU column(s) {', '.join(missing)} "
                         "(not OpenFace 2 output with AUs?)")
    if "face_id" in col and len(np.unique(data[:, col["face_id"]])) > 1:
        raise ValueError(f"{path}: several faces (face_id); keep one face's rows first")
    n = len(data)

    def column(name, default):
        return data[:, col[name]] if name in col else np.asarray(default, np.float64)

    aus = data[:, [col[f"{au}_r"] for au in AUS]].astype(np.float32)
    if all(f"{au}_c" in col for au in AUS):
        occurrence = (data[:, [col[f"{au}_c"] for au in AUS]] > 0.5).astype(np.int64)
    else:  # intensities only: occurrence by the FACS threshold
        occurrence = (aus >= OCCURRENCE_THRESHOLD).astype(np.int64)
    out = {"frame": column("frame", np.arange(1, n + 1)).astype(np.int64),
           "timestamp": column("timestamp", np.arange(n) / fps).astype(np.float32),
           "success": column("success", np.ones(n)) > 0.5,
           "confidence": column("confidence", np.ones(n)).astype(np.float32),
           "aus": aus,
           "occurrence": occurrence}
    if all(f"x_{i}" in col and f"y_{i}" in col for i in range(68)):
        out["landmarks"] = np.stack([data[:, [col[f"x_{i}"] for i in range(68)]],
                                     data[:, [col[f"y_{i}"] for i in range(68)]]],
                                    axis=-1).astype(np.float32)
    return out


def read_openface_csv(path: str | os.PathLike, fps: float = 25.0) -> dict[str, np.ndarray]:
    """Read an OpenFace 2 ``FeatureExtraction`` CSV (one row per video frame).

    Column names may carry OpenFace's leading spaces; other columns (gaze, pose, 3D points,
    other AUs) are ignored. Rows with ``success == 0`` keep their place (flagged ``False``).

    Returns:
        ``{"frame": (T,) int, "timestamp": (T,) s, "success": (T,) bool, "confidence": (T,),
        "aus": (T, 5) float32 0-5, "occurrence": (T, 5) int 0/1}`` in :data:`AUS` order, plus
        ``"landmarks": (T, 68, 2)`` when the ``x_0..x_67, y_0..y_67`` columns exist.
        Missing ``frame``/``timestamp``/``success``/``confidence`` columns default to
        ``1..T``, ``index / fps``, True and 1.

    Raises:
        FileNotFoundError, or ValueError naming the file: empty, no rows, a missing AU column.
    """
    path = Path(path)
    col, data = _read_table(path)
    return _openface_dict(path, col, data, fps)


def read_openface_frames(folder_or_paths, fps: float = 25.0) -> dict[str, np.ndarray]:
    """Read per-frame OpenFace CSVs (``align_face/0.csv``, ``1.csv``, ...) as one clip.

    ``folder_or_paths``: a folder (its ``*.csv``) or a list of files. Frame ``N`` is the last
    run of digits in the file name; files are ordered by its numeric value (``10.csv`` after
    ``9.csv``), numbering from 0 or 1. Each file's first data row is used. Returns the dict of
    :func:`read_openface_csv`, with ``"frame"`` the file numbers.
    """
    if isinstance(folder_or_paths, (str, os.PathLike)):
        folder = Path(folder_or_paths)
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: no such folder of per-frame OpenFace CSVs")
        paths = list(folder.glob("*.csv"))
        if not paths:
            raise FileNotFoundError(f"{folder}: no per-frame *.csv files")
    else:
        paths = [Path(p) for p in folder_or_paths]
    numbered = {}
    for path in paths:
        digits = re.findall(r"\d+", path.stem)
        if not digits:
            raise ValueError(f"{path}: no frame number in the file name")
        if int(digits[-1]) in numbered:
            raise ValueError(f"{path}: frame {int(digits[-1])} given twice")
        numbered[int(digits[-1])] = path
    if not numbered:
        raise ValueError("read_openface_frames: no files given")
    rows = []
    for number in sorted(numbered):
        col, data = _read_table(numbered[number])
        rows.append(_openface_dict(numbered[number], col, data[:1], fps))
    out = {key: np.concatenate([r[key] for r in rows])
           for key in rows[0] if all(key in r for r in rows)}  # landmarks only if in every file
    out["frame"] = np.array(sorted(numbered), dtype=np.int64)
    if len(rows) > 1 and np.all(out["timestamp"] == out["timestamp"][0]):  # one run per image
        out["timestamp"] = ((out["frame"] - out["frame"][0]) / fps).astype(np.float32)
    return out


# ----------------------------------------------------------------------------- estimator

ALIGN_POINTS = np.r_[27:36, 36, 39, 42, 45]
"""Nose and eye corners: the rigid points of :data:`coursekit.face.RIGID_POINTS` less the
eyelids (blinks move those)."""

FEATURES = ("lip_gap", "jaw_drop", "lower_lip_drop", "upper_lip_raise", "mouth_width",
            "corner_raise", "lip_closure")
"""Estimator inputs, in IOD units relative to the neutral face (see :func:`au_features`)."""

FEATURES_PER_AU = {
    "AU10": ("lip_gap", "upper_lip_raise", "mouth_width"),
    "AU14": ("lip_gap", "mouth_width", "corner_raise", "lip_closure"),
    "AU20": ("lip_gap", "upper_lip_raise", "mouth_width", "corner_raise"),
    "AU25": ("lip_gap", "jaw_drop", "lower_lip_drop"),
    "AU26": ("lip_gap", "jaw_drop", "lower_lip_drop", "corner_raise"),
}
"""The features each AU's intensity is a linear function of (the others get weight 0)."""

NEUTRAL_TOLERANCE = 0.05
"""Frames whose mouth opening is within this (IOD) of the clip's most closed are 'neutral'."""

TRAIN_SPEAKERS = ("spk1", "spk2", "spk3", "spk4")

# Intensity = clip(WEIGHTS[:, :-1] @ features + WEIGHTS[:, -1], 0, 5); columns: FEATURES, bias.
# Fitted, not hand-tuned. To recompute, run `coursekit au calibrate` (about 30 s) and paste what
# it prints here: format_weights(calibrate(*tracked_clips(speakers=TRAIN_SPEAKERS))) (with
# coursekit.data.corpus.tracked_clips), i.e. least squares per AU
# on its FEATURES_PER_AU over every frame of data_samples spk1-spk4, landmarks tracked by dlib
# (face.track_landmarks on the videos), neutral estimated per clip as in estimate_aus.
# tests/test_au.py checks that a fresh calibration still gives these values.
WEIGHTS = np.array([
    # lip_gap  jaw_drop  lower_li  upper_li  mouth_wi  corner_r  lip_clos      bias
    [   0.206,    0.000,    0.000,   21.314,    2.791,    0.000,    0.000,    0.017],  # AU10
    [   5.639,    0.000,    0.000,    0.000,   -7.347,    7.861,   16.326,    0.190],  # AU14
    [  -0.538,    0.000,    0.000,    9.274,   10.018,   -4.759,    0.000,    0.092],  # AU20
    [   5.510,    5.652,    2.583,    0.000,    0.000,    0.000,    0.000,    0.105],  # AU25
    [  -2.751,   -0.734,   10.660,    0.000,    0.000,  -13.343,    0.000,    0.055],  # AU26
], np.float32)


def align_to_template(landmarks: np.ndarray) -> np.ndarray:
    """``(T, 68, 2)`` image pixels -> the same points similarity-aligned on
    :data:`ALIGN_POINTS` to :data:`coursekit.face.TEMPLATE` (IOD units, origin between the
    eyes, y down): pose, position and face size are factored out."""
    lm = np.asarray(landmarks, np.float64)
    if lm.ndim != 3 or lm.shape[1:] != (68, 2) or len(lm) == 0:
        raise ValueError(f"landmarks must be (T, 68, 2) with T >= 1, got {lm.shape}")
    if not np.all(np.isfinite(lm)):
        raise ValueError("landmarks contain NaN or infinite values")
    target = TEMPLATE[ALIGN_POINTS]
    m = np.stack([similarity_transform(p[ALIGN_POINTS], target) for p in lm]).astype(np.float64)
    return transform_points(lm, m)


def geometric_features(landmarks: np.ndarray, smooth_sigma: float = 1.0) -> np.ndarray:
    """The six per-frame distances ``(T, 6)`` (IOD units; not neutral-subtracted), each growing
    with the AU it mainly measures:

    ``lip_gap`` inner lips apart (AU25, AU26); ``jaw_drop`` chin height (AU26);
    ``lower_lip_drop`` outer lower lip height (AU26, AU25); ``upper_lip_raise`` upper lip,
    outer and inner, up towards the nose (AU10); ``mouth_width`` corner to corner, outer and
    inner (AU20 +, AU14 -); ``corner_raise`` lip corners up (AU14 +, AU26 -). Heights are
    measured from the eye line, which alignment fixes with the nose.
    """
    a = align_to_template(smooth_landmarks(np.asarray(landmarks, np.float32), smooth_sigma))
    x, y = a[..., 0], a[..., 1]
    return np.stack([
        (y[:, [65, 66, 67]] - y[:, [63, 62, 61]]).mean(1),
        y[:, [7, 8, 9]].mean(1),
        y[:, [56, 57, 58]].mean(1),
        -y[:, [50, 51, 52, 61, 62, 63]].mean(1),
        0.5 * (x[:, 54] - x[:, 48] + x[:, 64] - x[:, 60]),
        -y[:, [48, 54, 60, 64]].mean(1),
    ], axis=1).astype(np.float32)


def _neutral(geo: np.ndarray) -> np.ndarray:
    """Median ``(6,)`` of the frames with the most closed mouth (at least 10 % of them)."""
    opening = geo[:, 0] + geo[:, 2]
    limit = max(np.percentile(opening, 5) + NEUTRAL_TOLERANCE, np.percentile(opening, 10))
    return np.median(geo[opening <= limit], axis=0)


def neutral_features(clips: list[np.ndarray], smooth_sigma: float = 1.0) -> np.ndarray:
    """A speaker's neutral face ``(6,)`` from several clips' landmarks (each ``(T_i, 68, 2)``):
    the median geometry of the frames whose mouth is closest to closed, over all clips."""
    return _neutral(np.concatenate([geometric_features(c, smooth_sigma) for c in clips]))


def _lip_closure(gap: np.ndarray, reach: int = 3) -> np.ndarray:
    """How far the lips close below the opening on *both* sides within ``reach`` frames
    (p/b/m between vowels); 0 in silence and on an opening or closing slope."""
    pad = np.r_[np.full(reach, -np.inf), gap, np.full(reach, -np.inf)]
    n = len(gap)
    before = np.max([pad[reach - j:reach - j + n] for j in range(1, reach + 1)], axis=0)
    after = np.max([pad[reach + j:reach + j + n] for j in range(1, reach + 1)], axis=0)
    return np.maximum(np.minimum(before, after) - gap, 0.0)


def au_features(landmarks: np.ndarray, neutral: np.ndarray | None = None,
                smooth_sigma: float = 1.0) -> np.ndarray:
    """The estimator's inputs ``(T, 7)`` (:data:`FEATURES`): :func:`geometric_features` minus
    the neutral face (``neutral``, e.g. from :func:`neutral_features`, else estimated from this
    clip), plus ``lip_closure``."""
    geo = geometric_features(landmarks, smooth_sigma)
    rel = geo - (_neutral(geo) if neutral is None else np.asarray(neutral, np.float32))
    return np.concatenate([rel, _lip_closure(rel[:, 0])[:, None]], axis=1).astype(np.float32)


def estimate_aus(landmarks: np.ndarray, neutral: np.ndarray | None = None, *,
                 smooth_sigma: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """AU intensities and occurrences from 68 landmarks, no OpenFace needed.

    Args:
        landmarks: ``(T, 68, 2)`` image pixels (any pose, position, face size).
        neutral: the speaker's neutral face ``(6,)`` from :func:`neutral_features`; None
            estimates it from this clip (its most closed-mouth frames; a clip with some
            silence, as GRID's, is needed then).
        smooth_sigma: temporal Gaussian on the landmarks (frames) against tracker jitter.

    Returns:
        ``(aus (T, 5) float32 0-5, occurrence (T, 5) int 0/1)``, :data:`AUS` order;
        occurrence is ``aus >= OCCURRENCE_THRESHOLD``.
    """
    feats = au_features(landmarks, neutral, smooth_sigma)
    aus = np.clip(feats @ WEIGHTS[:, :-1].T + WEIGHTS[:, -1], 0.0, 5.0).astype(np.float32)
    return aus, (aus >= OCCURRENCE_THRESHOLD).astype(np.int64)


def calibrate(landmarks: list[np.ndarray], aus: list[np.ndarray]) -> np.ndarray:
    """Fit :data:`WEIGHTS` ``(5, 8)``: for each AU, least squares (with a bias) of its
    ground-truth intensities on its :data:`FEATURES_PER_AU`, over all frames of the clips
    (``landmarks[i]`` ``(T_i, 68, 2)``, ``aus[i]`` ``(T_i, 5)``; neutral per clip)."""
    x = np.concatenate([au_features(lm) for lm in landmarks]).astype(np.float64)
    y = np.concatenate(aus).astype(np.float64)
    weights = np.zeros((len(AUS), len(FEATURES) + 1))
    for k, name in enumerate(AUS):
        cols = [FEATURES.index(feature) for feature in FEATURES_PER_AU[name]]
        design = np.c_[x[:, cols], np.ones(len(x))]
        w = np.linalg.lstsq(design, y[:, k], rcond=None)[0]
        weights[k, cols], weights[k, -1] = w[:-1], w[-1]
    return weights.astype(np.float32)


def format_weights(weights: np.ndarray) -> str:
    """``weights`` as the Python source of :data:`WEIGHTS` (to paste after a calibration)."""
    names = [n[:8] for n in (*FEATURES, "bias")]
    rows = [f"    #{'  '.join(f'{n:>8}' for n in names)}"]
    rows += [f"    [{', '.join(f'{v:8.3f}' for v in row)}],  # {name}"
             for name, row in zip(AUS, np.asarray(weights))]
    return "WEIGHTS = np.array([\n" + "\n".join(rows) + "\n], np.float32)"

