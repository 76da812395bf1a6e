"""Evaluation metrics.

* AU occurrence (the paper's Table 1): :func:`f1_per_au`, :func:`accuracy_per_au` on boolean
  (or 0/1) arrays ``(N, 5)`` -- ``N`` frames, AUs in :data:`coursekit.au.AUS` order, numpy
  arrays or torch tensors; probabilities become decisions with :func:`binarize` (threshold
  0.5, as in the paper's sigmoid outputs); :func:`au_table` prints them.
* Image quality: :func:`psnr`, :func:`ssim` (images in [-1, 1] by default); :func:`region_psnr`
  of every frame of a video against one photo inside a box (uint8 by default).
* Mouth shape: :func:`lmd`, the landmark distance in pixels; :func:`mouth_opening` of landmarks
  (or :func:`tracked_opening` of a video's frames) and :func:`opening_agreement` of two such
  series (correlation, spread ratio).
* Lip sync: :func:`sync_scores` (offset, LSE-D, LSE-C) with a trained sync expert
  (:class:`coursekit.models.syncnet.SyncNet`).
* Temporal consistency: :func:`frame_change` (mean change between consecutive frames in a
  region, e.g. the mouth on silent stretches) and :func:`warping_error` (flicker: a frame
  against its predecessor moved by the real clip's optical flow).
"""

from __future__ import annotations

import numpy as np
import torch

from .au import AUS


def _as_bool(x, name: str) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"{name} must be (N, n_aus), got shape {arr.shape}")
    return arr.astype(bool)


def binarize(probs, threshold: float = 0.5) -> np.ndarray:
    """``probs >= threshold`` as a bool numpy array (same shape)."""
    if hasattr(probs, "detach"):
        probs = probs.detach().cpu().numpy()
    return np.asarray(probs) >= threshold


def confusion_per_au(pred, true) -> dict[str, np.ndarray]:
    """Counts per AU: ``{"tp", "fp", "fn", "tn"}``, each ``(n_aus,)`` int64."""
    p, t = _as_bool(pred, "pred"), _as_bool(true, "true")
    if p.shape != t.shape:
        raise ValueError(f"pred {p.shape} and true {t.shape} differ")
    return {"tp": (p & t).sum(0), "fp": (p & ~t).sum(0),
            "fn": (~p & t).sum(0), "tn": (~p & ~t).sum(0)}


def f1_per_au(pred, true, zero_division: float = 0.0) -> np.ndarray:
    """F1 score per AU ``(n_aus,)`` float64: ``2 TP / (2 TP + FP + FN)``.

    pred, true: ``(N, n_aus)`` bool. An AU never predicted and never true has no F1; it
    gets ``zero_division`` (0, as scikit-learn's default).
    """
    c = confusion_per_au(pred, true)
    denom = 2 * c["tp"] + c["fp"] + c["fn"]
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(denom > 0, 2 * c["tp"] / np.maximum(denom, 1), zero_division)
    return f1.astype(np.float64)


def accuracy_per_au(pred, true) -> np.ndarray:
    """Fraction of frames classified correctly, per AU ``(n_aus,)`` float64."""
    p, t = _as_bool(pred, "pred"), _as_bool(true, "true")
    if p.shape != t.shape:
        raise ValueError(f"pred {p.shape} and true {t.shape} differ")
    if len(p) == 0:
        raise ValueError("accuracy_per_au: no frames")
    return (p == t).mean(0).astype(np.float64)


def au_table(rows: dict, aus=AUS, digits: int = 3) -> str:
    """A Markdown table of per-AU F1 and accuracy, like the paper's Table 1.

    rows: ``{method name: (f1 (n_aus,), acc (n_aus,))}`` (or dicts with ``"f1"``, ``"acc"``).
    One row per method and metric; the last column is the mean over the AUs.
    """
    head = ["method", "metric", *aus, "mean"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * (len(aus) + 1)) + "|"]
    for name, value in rows.items():
        f1, acc = (value["f1"], value["acc"]) if isinstance(value, dict) else value
        for metric, vals in (("F1", f1), ("accuracy", acc)):
            vals = np.asarray(vals, dtype=np.float64).reshape(-1)
            if len(vals) != len(aus):
                raise ValueError(f"{name}: {len(vals)} {metric} values for {len(aus)} AUs")
            cells = [f"{v:.{digits}f}" for v in vals] + [f"**{vals.mean():.{digits}f}**"]
            lines.append(f"| {name} | {metric} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def psnr(pred, target, data_range: float = 2.0) -> float:
    """Peak signal-to-noise ratio (dB) of images in [-1, 1] (``data_range`` 2), any shape."""
    pred, target = _to_numpy(pred).astype(np.float64), _to_numpy(target).astype(np.float64)
    if pred.shape != target.shape:
        raise ValueError(f"psnr: pred {pred.shape} and target {target.shape} differ")
    mse = np.mean((pred - target) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(data_range ** 2 / mse))


# ----------------------------------------------------------------------------- images


def _to_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _gaussian_window(size: int, sigma: float, dtype, device) -> torch.Tensor:
    """The 1-D Gaussian of ``scipy.ndimage.gaussian_filter`` (``size = 2 * radius + 1``)."""
    x = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    g = torch.exp(-0.5 * (x / sigma) ** 2)
    return g / g.sum()


def ssim(pred, target, data_range: float = 2.0, *, win_size: int = 11, sigma: float = 1.5,
         k1: float = 0.01, k2: float = 0.03) -> float:
    """Mean structural similarity (SSIM) of images ``(N, 3, H, W)`` or ``(3, H, W)``.

    pred, target: torch tensors or numpy arrays of the same shape, channels first, values in a
    range of width ``data_range`` (2 for [-1, 1] images; 1 for [0, 1]; 255 for uint8).

    Wang et al. (2004) with an ``win_size`` x ``win_size`` Gaussian window of std ``sigma``
    (11 and 1.5), ``C1 = (k1 R)^2``, ``C2 = (k2 R)^2`` and population (not sample) variances.
    The SSIM map is computed only where the window fits inside the image (a "valid"
    convolution) and averaged over those positions, the channels and the images: the same
    number as scikit-image's ``structural_similarity(a, b, data_range=R, channel_axis=0,
    gaussian_weights=True, sigma=1.5, use_sample_covariance=False)`` (averaged over images),
    computed in float32 with one grouped ``conv2d`` (within 1e-5 of scikit-image's float64 on
    real frames, and 70x faster than a float64 convolution on a CPU). Needs
    ``H, W >= win_size``. Returns a float in [-1, 1]; 1 for identical images.
    """
    p = torch.as_tensor(_to_numpy(pred), dtype=torch.float32)
    t = torch.as_tensor(_to_numpy(target), dtype=torch.float32)
    if p.shape != t.shape:
        raise ValueError(f"ssim: pred {tuple(p.shape)} and target {tuple(t.shape)} differ")
    if p.ndim == 3:
        p, t = p[None], t[None]
    if p.ndim != 4:
        raise ValueError(f"ssim: images must be (N, C, H, W) or (C, H, W), got {tuple(p.shape)}")
    n, c, h, w = p.shape
    if min(h, w) < win_size:
        raise ValueError(f"ssim: images of {h}x{w} are smaller than the "
                         f"{win_size}x{win_size} window")
    g = _gaussian_window(win_size, sigma, p.dtype, p.device)
    kernel = (g[:, None] * g[None, :]).expand(5 * c, 1, win_size, win_size)
    # one grouped convolution filters x, y, x^2, y^2 and xy of every channel at once
    stack = torch.cat([p, t, p * p, t * t, p * t], dim=1)  # (N, 5C, H, W)
    mu_x, mu_y, xx, yy, xy = torch.nn.functional.conv2d(stack, kernel, groups=5 * c).chunk(5, 1)
    var_x, var_y, cov = xx - mu_x ** 2, yy - mu_y ** 2, xy - mu_x * mu_y
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    num = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    den = (mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2)
    return float((num / den).double().mean())


# ----------------------------------------------------------------------------- landmarks

MOUTH = slice(48, 68)
"""The 20 mouth points (outer lip 48-59, inner lip 60-67) of the 68-point layout (0-based)."""


def mouth_opening(landmarks) -> np.ndarray:
    """Inner-lip gap over mouth width per frame, ``(..., 68, 2) -> (...)``: the mean distance
    of the inner-lip pairs 61-67, 62-66, 63-65 divided by the corner-to-corner width 48-54
    (scale-free, so it compares crops of any size)."""
    pts = _to_numpy(landmarks).astype(np.float64)
    gap = np.linalg.norm(pts[..., [61, 62, 63], :] - pts[..., [67, 66, 65], :], axis=-1).mean(-1)
    return gap / np.linalg.norm(pts[..., 54, :] - pts[..., 48, :], axis=-1)


def tracked_opening(frames, detector=None, source: str = "video") -> tuple[np.ndarray, np.ndarray]:
    """``(opening (T,), landmarks (T, 68, 2))`` of a video's frames ``(T, H, W, 3)`` RGB uint8:
    dlib landmarks tracked on them (:func:`coursekit.face.track_landmarks`, reusing
    ``detector`` when given) and their :func:`mouth_opening`."""
    from .face import track_landmarks

    landmarks = track_landmarks(np.asarray(frames), detector, source=source)
    return mouth_opening(landmarks), landmarks


def opening_agreement(pred, real) -> tuple[float, float]:
    """``(correlation, spread ratio)`` of two mouth-opening series ``(T,)``: Pearson's r, and
    ``std(pred) / std(real)``. A series that does not move has no correlation: ``(0, 0)``
    for a still ``pred``; ``(0, inf)`` for a still ``real`` and a moving ``pred``."""
    p, r = (_to_numpy(x).astype(np.float64).reshape(-1) for x in (pred, real))
    if p.shape != r.shape or len(p) < 2:
        raise ValueError(f"opening_agreement: series of {len(p)} and {len(r)} values "
                         "(need the same length, at least 2)")
    sp, sr = p.std(), r.std()
    if sp < 1e-12:
        return 0.0, 0.0
    if sr < 1e-12:
        return 0.0, float("inf")
    return float(np.corrcoef(p, r)[0, 1]), float(sp / sr)


def region_psnr(frames, reference, box=None, data_range: float = 255.0) -> np.ndarray:
    """PSNR (dB) of every frame against one reference image, inside ``box``.

    frames: ``(T, H, W, C)``; reference: ``(H, W, C)`` (e.g. uint8, ``data_range`` 255);
    box: ``(x0, y0, x1, y1)`` pixels (clipped to the image; None: the whole image).
    Returns ``(T,)`` float64, ``inf`` where the region is unchanged.
    """
    f, ref = _to_numpy(frames).astype(np.float64), _to_numpy(reference).astype(np.float64)
    if f.ndim != 4 or f.shape[1:] != ref.shape:
        raise ValueError(f"region_psnr: frames {f.shape} are not (T, *reference {ref.shape})")
    h, w = ref.shape[:2]
    x0, y0, x1, y1 = (0, 0, w, h) if box is None else (int(round(v)) for v in box)
    x0, x1, y0, y1 = max(x0, 0), min(x1, w), max(y0, 0), min(y1, h)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"region_psnr: box {box} is empty inside a {w}x{h} image")
    mse = ((f[:, y0:y1, x0:x1] - ref[y0:y1, x0:x1]) ** 2).mean(axis=(1, 2, 3))
    with np.errstate(divide="ignore"):
        return np.where(mse > 0, 10 * np.log10(data_range ** 2 / np.maximum(mse, 1e-300)), np.inf)


def lmd(pred_landmarks, true_landmarks, points: str = "mouth") -> float:
    """Landmark distance (LMD): mean Euclidean distance, in pixels, between corresponding
    points of ``(..., 68, 2)`` landmarks (e.g. ``(T, 68, 2)`` for a clip), over the points and
    every frame.

    points: ``"mouth"`` (the 20 points 48-67, the usual lip-sync LMD) or ``"all"`` (68).
    Compare landmarks in the same coordinates (e.g. both in crop pixels).
    """
    p = _to_numpy(pred_landmarks).astype(np.float64)
    t = _to_numpy(true_landmarks).astype(np.float64)
    if p.shape != t.shape:
        raise ValueError(f"lmd: pred {p.shape} and true {t.shape} differ")
    if p.ndim < 2 or p.shape[-2:] != (68, 2):
        raise ValueError(f"lmd: landmarks must be (..., 68, 2), got {p.shape}")
    if points == "mouth":
        p, t = p[..., MOUTH, :], t[..., MOUTH, :]
    elif points != "all":
        raise ValueError(f"points must be 'mouth' or 'all', got {points!r}")
    if p.size == 0:
        raise ValueError("lmd: no frames")
    return float(np.sqrt(((p - t) ** 2).sum(-1)).mean())


# ----------------------------------------------------------------------------- temporal


def _change(now: torch.Tensor, before: torch.Tensor, mask) -> float:
    """Mean |now - before| of ``(T-1, C, H, W)`` pairs, weighted by ``mask`` (None, ``(H, W)``
    or ``(T, H, W)`` whose rows 1.. go with the pairs); nan when the weights sum to 0."""
    diff = (now - before).abs().mean(1)  # (T-1, H, W): mean over channels
    if mask is None:
        return float(diff.mean()) if diff.numel() else float("nan")
    w = torch.as_tensor(_to_numpy(mask), dtype=torch.float64)
    w = w.expand(len(diff) + 1, *w.shape[-2:])[1:] if w.dim() == 2 else w[1:]
    if w.shape != diff.shape:
        raise ValueError(f"temporal metric: mask {tuple(w.shape)} does not fit the frames")
    total = float(w.sum())
    return float((diff * w).sum() / total) if total > 0 else float("nan")


def frame_change(frames, mask=None) -> float:
    """Mean absolute change between consecutive frames ``(T, C, H, W)`` (over channels and
    the pixels weighted by ``mask``: ``(H, W)`` for a fixed region, or ``(T, H, W)`` where
    row ``t`` weighs the change from frame ``t - 1`` to ``t``; None: every pixel). In the
    frames' units (halve it for [-1, 1] frames on a 0-1 scale); nan for fewer than 2 frames."""
    f = torch.as_tensor(_to_numpy(frames), dtype=torch.float64)
    return _change(f[1:], f[:-1], mask)


def warping_error(frames, flows, mask=None) -> float:
    """Flicker: mean ``|frame_t - warp(frame_{t-1}, flow_t)|`` over ``t >= 1`` of frames
    ``(T, C, H, W)`` with ``flows (T, 2, H, W)`` (``frame_t(x) ~ frame_{t-1}(x + flow_t(x))``,
    computed from the *real* clip: :func:`coursekit.data.flow.frame_flows`), pixels weighted
    by ``mask`` as in :func:`frame_change`."""
    from .data.flow import flow_warp

    f = torch.as_tensor(_to_numpy(frames), dtype=torch.float64)
    fl = torch.as_tensor(_to_numpy(flows), dtype=torch.float64)
    if f.dim() != 4 or fl.shape != (len(f), 2, *f.shape[-2:]):
        raise ValueError(f"warping_error: frames (T, C, H, W) and flows (T, 2, H, W), got "
                         f"{tuple(f.shape)} and {tuple(fl.shape)}")
    return _change(f[1:], flow_warp(f[:-1], fl[1:]), mask)


# ----------------------------------------------------------------------------- lip sync


@torch.no_grad()
def sync_scores(expert, frames, mfcc, max_offset: int = 15, batch: int = 256) -> dict:
    """Audio-visual sync of one clip as judged by a sync expert (SyncNet's evaluation).

    Args:
        expert: a :class:`coursekit.models.syncnet.SyncNet` (e.g. from
            :func:`coursekit.train.syncnet.load_syncnet`); used in eval mode.
        frames: ``(T, 3, S, S)`` faces in [-1, 1] (the expert looks at their lower half).
        mfcc: ``(T, 12, 28)`` MFCC windows, normalised with the expert's own statistics.
        max_offset: offsets ``-max_offset .. max_offset`` frames are tried; the clip needs
            more than ``max_offset + 4`` frames.

    Every 5-frame window of video and of audio is embedded; for each offset ``s`` the
    distance of video window ``i`` to audio window ``i - s`` is averaged over the windows
    where both exist (SyncNet pads the audio with zeros instead; here nothing is made up).
    An offset ``s > 0`` means the video lags the audio by ``s`` frames (frame ``t`` shows the
    sound of frame ``t - s``), so delaying the frames of an in-sync clip by 5 gives 5.

    Returns ``{"offset": int`` the offset of least mean distance, ``"distance": float`` that
    least mean distance (LSE-D, lower is better), ``"confidence": float`` the median over
    offsets of the mean distance minus the least (LSE-C, higher is better), ``"offsets"
    (2 max_offset + 1,)`` int, ``"mean_distances" (2 max_offset + 1,)`` float ``}``.
    Distances are between unit vectors, so in [0, 2].
    """
    from .models.au_classifier import lower_half
    from .models.syncnet import windows

    frames, mfcc = torch.as_tensor(frames), torch.as_tensor(mfcc, dtype=torch.float32)
    k = expert.cfg.context
    if frames.ndim != 4 or mfcc.ndim != 3 or len(frames) != len(mfcc):
        raise ValueError(f"sync_scores wants frames (T, 3, S, S) and mfcc (T, 12, 28), got "
                         f"{tuple(frames.shape)} and {tuple(mfcc.shape)}")
    n_win = len(frames) - k + 1
    if n_win <= max_offset:
        raise ValueError(f"sync_scores: {len(frames)} frames give {max(n_win, 0)} windows of "
                         f"{k}, too few for offsets up to {max_offset}")
    device = next(expert.parameters()).device
    was_training = expert.training
    expert.eval()
    try:
        vw, aw = windows(lower_half(frames.float()), k), windows(mfcc, k)
        v = torch.cat([expert.embed_video(vw[i:i + batch].to(device))
                       for i in range(0, n_win, batch)]).double().cpu()
        a = torch.cat([expert.embed_audio(aw[i:i + batch].to(device))
                       for i in range(0, n_win, batch)]).double().cpu()
    finally:
        expert.train(was_training)
    dist = torch.cdist(v, a)  # (W, W): video window i vs audio window j
    offsets = np.arange(-max_offset, max_offset + 1)
    mean = np.empty(len(offsets))
    for n, s in enumerate(offsets):  # pairs (i, i - s): the diagonal -s of the matrix
        mean[n] = float(torch.diagonal(dist, offset=-int(s)).mean())
    best = int(np.argmin(mean))
    return {"offset": int(offsets[best]), "distance": float(mean[best]),
            "confidence": float(np.median(mean) - mean[best]), "offsets": offsets,
            "mean_distances": mean}
