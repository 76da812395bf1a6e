"""Figures and measurements for display: AU sweep grids, the inference steps, lip motion.

Shapes: photos ``(H, W, 3)`` RGB uint8; crops ``(S, S, 3)`` uint8; videos ``(T, S, S, 3)``
uint8.
"""

from __future__ import annotations

import os

import numpy as np

from ..data.corpus import read_align
from ..face import RIGID_POINTS, template, transform_points
from ..infer import FaceCrop, lower_face_polygon, paste_back


def face_regions(size: int) -> tuple[np.ndarray, np.ndarray]:
    """``(lower, upper)`` boolean ``(S, S)`` masks of an aligned crop: the paste-back region
    (jaw line to nose tip, :func:`coursekit.infer.lower_face_polygon`) and the rows above the
    brows (forehead), where speech should change nothing."""
    import cv2

    lower = np.zeros((size, size), np.uint8)
    cv2.fillConvexPoly(lower, np.round(lower_face_polygon(size)).astype(np.int32), 1)
    upper = np.zeros((size, size), bool)
    upper[: int(template(size)[17:27, 1].min())] = True
    return lower.astype(bool), upper


def region_change(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Mean absolute difference (grey levels, 0-255) of two crops ``(S, S, 3)`` uint8 in the
    lower face and above the brows (:func:`face_regions`)."""
    diff = np.abs(a.astype(np.float32) - b.astype(np.float32)).mean(-1)
    lower, upper = face_regions(a.shape[0])
    return float(diff[lower].mean()), float(diff[upper].mean())


def sweep_figure(frames: dict[str, np.ndarray], levels=(0, 1, 2, 3, 4, 5), zoom: int = 2):
    """A grid of :func:`~coursekit.widgets.session.au_sweeps` frames: one row per sweep, one column per intensity, each
    frame enlarged ``zoom`` times by pixel repetition (the figure maps image pixels 1:1)."""
    import matplotlib.pyplot as plt

    rows, s, gap, left, top = len(frames), next(iter(frames.values())).shape[1] * zoom, 4, 150, 24
    grid = np.full((rows * (s + gap) - gap, len(levels) * (s + gap) - gap, 3), 255, np.uint8)
    for r, row in enumerate(frames.values()):
        for c, frame in enumerate(row):
            grid[r * (s + gap): r * (s + gap) + s, c * (s + gap): c * (s + gap) + s] = \
                frame.repeat(zoom, 0).repeat(zoom, 1)
    h, w = grid.shape[:2]
    dpi = plt.rcParams["figure.dpi"]
    fig = plt.figure(figsize=((w + left) / dpi, (h + top) / dpi))
    ax = fig.add_axes([left / (w + left), 0, w / (w + left), h / (h + top)])
    ax.imshow(grid, interpolation="nearest")
    ax.axis("off")
    for r, label in enumerate(frames):
        ax.text(-8, r * (s + gap) + s / 2, label.replace(", ", "\n"), ha="right", va="center")
    for c, level in enumerate(levels):
        ax.text(c * (s + gap) + s / 2, -6, f"{level:g}", ha="center", va="bottom")
    ax.text(-8, -6, "intensity", ha="right", va="bottom")
    return fig


def paste_mask(photo: np.ndarray, found: FaceCrop, size: int) -> np.ndarray:
    """The feathered paste-back mask of :func:`coursekit.infer.paste_back` in the photo,
    ``(H, W)`` float32 in [0, 1] (1: the generated crop, 0: the photo)."""
    white = np.full((1, size, size, 3), 255, np.uint8)
    pasted = paste_back(np.zeros_like(photo), white, found.transform, found.landmarks,
                        match_colour=False)
    return pasted[0, ..., 0].astype(np.float32) / 255


def inference_figure(photo: np.ndarray, found: FaceCrop, size: int):
    """Detect -> align -> crop -> paste back, as a matplotlib figure: the photo with its 68
    landmarks (sky-blue dots; the alignment points, eyes and nose, as vermillion crosses) and
    the crop's square (yellow, dashed); the ``(S, S)`` crop with the training template's
    alignment points; the paste-back mask over the photo. Okabe-Ito colours, told apart with
    every common colour-vision deficiency, and the marks differ in shape too."""
    import cv2
    import matplotlib.pyplot as plt

    inv = cv2.invertAffineTransform(found.transform.astype(np.float64)).astype(np.float32)
    corners = np.array([[0, 0], [size, 0], [size, size], [0, size], [0, 0]], np.float32) - 0.5
    square = transform_points(corners, inv)
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.6))
    axes[0].imshow(photo)
    axes[0].plot(*found.landmarks.T, ".", color="#56B4E9", ms=2)
    axes[0].plot(*found.landmarks[RIGID_POINTS].T, "x", color="#D55E00", ms=4, mew=1.2)
    axes[0].plot(*square.T, "--", color="#F0E442", lw=1.2)
    axes[0].set_title("1. detect, 68 landmarks")
    axes[1].imshow(found.crop)
    axes[1].plot(*template(size)[RIGID_POINTS].T, "x", color="#D55E00", ms=5, mew=1.2)
    axes[1].set_title(f"2. aligned crop {size}x{size}")
    axes[2].imshow(photo)
    shown = axes[2].imshow(paste_mask(photo, found, size), cmap="magma", alpha=0.6, vmin=0, vmax=1)
    fig.colorbar(shown, ax=axes[2], fraction=0.046, pad=0.02, label="weight of the crop (0-1)")
    axes[2].set_title("3. paste-back mask")
    x0, y0, x1, y1 = found.box
    half = 1.3 * max(x1 - x0, y1 - y0)  # zoom on the face, some of the photo around it
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    for ax in axes[[0, 2]]:
        ax.set_xlim(max(cx - half, -0.5), min(cx + half, photo.shape[1] - 0.5))
        ax.set_ylim(min(cy + 1.2 * half, photo.shape[0] - 0.5), max(cy - 0.8 * half, -0.5))
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    return fig


def motion_figure(videos: dict[str, str | os.PathLike], align: str | os.PathLike | None = None,
                  n: int = 8):
    """How much generated clips' lower faces move, frame by frame, with the words.

    ``videos``: ``{label: crop video}`` of :func:`coursekit.infer.generate_video` (no
    paste-back); ``align``: the utterance's GRID ``.align`` (words shaded). Top: ``n`` frames
    of each clip (lower half of the face); bottom: per frame, the mean absolute difference of
    the lower face from the clip's median frame (grey levels). Returns ``(figure,
    {label: motion (T,)})``."""
    import matplotlib.pyplot as plt

    from ..video import read_video

    rows = len(videos)
    fig = plt.figure(figsize=(10, 1.3 * rows + 2.6))
    grid = fig.add_gridspec(rows + 2, n)
    plot = fig.add_subplot(grid[rows:, :])
    motions = {}
    for r, (label, path) in enumerate(videos.items()):
        frames, fps = read_video(path)
        lower, _ = face_regions(frames.shape[1])
        diff = np.abs(frames.astype(np.float32) - np.median(frames, axis=0)).mean(-1)
        motions[label] = diff[:, lower].mean(1)
        half = frames.shape[1] // 2
        for i, k in enumerate(np.linspace(0, len(frames) - 1, n).round().astype(int)):
            ax = fig.add_subplot(grid[r, i])
            ax.imshow(frames[k, half:, half // 4: -half // 4])
            ax.set_xticks([]), ax.set_yticks([])
            if r == 0:
                ax.set_title(f"{k / fps:.2f} s", fontsize=8)
            if i == 0:
                ax.set_ylabel(label, fontsize=8)
        plot.plot(np.arange(len(frames)) / fps, motions[label], label=label)
    top = max(m.max() for m in motions.values())
    for start, end, word in (read_align(align) if align else []):
        if word not in ("sil", "sp"):
            plot.axvspan(start, end, color="tab:orange", alpha=0.12)
            plot.text((start + end) / 2, top, word, ha="center", va="bottom", fontsize=9)
    plot.set(xlabel="time (s)", ylabel="lower-face change", xlim=(0, len(frames) / fps))
    plot.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    return fig, motions
