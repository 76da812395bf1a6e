"""Optical flow between consecutive frames, and images warped along it (Face2Vid's temporal link).

The image-decoder talker's ``temporal="flow"`` mode (:class:`~coursekit.models.config.TalkerConfig`)
reads, for every frame, the frame before it moved to the current one by the optical flow
between consecutive *warped identity* frames (:mod:`coursekit.data.warped`): the flow of the
conditioning, known at inference as well as in training.

Convention: ``flow[t]`` is a ``(2, H, W)`` field of pixel offsets ``(dx, dy)`` such that
``frame[t](x) ~ frame[t - 1](x + flow[t](x))`` (a *backward* flow: :func:`flow_warp` of
frame ``t - 1`` by it gives frame ``t``); ``flow[0]`` is zero.

* :func:`frame_flows`: Farneback flows (:func:`cv2.calcOpticalFlowFarneback`) of a clip
  ``(T, H, W, 3)`` uint8 -> ``(T, 2, H, W)`` float32;
* :func:`flow_warp`: ``image (N, C, H, W)`` sampled at ``x + flow (N, 2, H, W)`` (bilinear,
  border pixels repeated);
* :class:`FlowCache`: the dataset fields :data:`FLOW_FIELDS` of a clip window, ``flow``
  (the warped identity's flows) and ``previous`` (teacher forcing: each frame's real
  predecessor warped by its flow; the clip's first frame gets its warped identity).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

FLOW_FIELDS = ("flow", "previous")
"""The dataset fields of the temporal mode (computed from the warped identity and the frames)."""

FARNEBACK = dict(pyr_scale=0.5, levels=3, winsize=9, iterations=5, poly_n=5, poly_sigma=1.1,
                 flags=0)
"""Farneback settings for small (64-112 px) face crops."""


def _gray(image: np.ndarray) -> np.ndarray:
    import cv2

    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
        raise ValueError(f"flow: frames must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def pair_flow(current: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """``(2, H, W)`` float32 flow with ``current(x) ~ previous(x + flow(x))`` of two
    ``(H, W, 3)`` uint8 images (identical images give exactly zero)."""
    import cv2

    a, b = _gray(current), _gray(previous)
    if np.array_equal(a, b):
        return np.zeros((2, *a.shape), np.float32)
    flow = cv2.calcOpticalFlowFarneback(a, b, None, **FARNEBACK)
    return np.ascontiguousarray(flow.transpose(2, 0, 1), np.float32)


def frame_flows(frames: np.ndarray) -> np.ndarray:
    """Flows of a clip ``(T, H, W, 3)`` uint8: ``(T, 2, H, W)`` float32, ``[t]`` from frame
    ``t`` back to frame ``t - 1`` (:func:`pair_flow`), ``[0]`` zero."""
    frames = np.asarray(frames)
    if frames.ndim != 4:
        raise ValueError(f"frame_flows: frames must be (T, H, W, 3) uint8, got {frames.shape}")
    out = np.zeros((len(frames), 2, *frames.shape[1:3]), np.float32)
    for t in range(1, len(frames)):
        out[t] = pair_flow(frames[t], frames[t - 1])
    return out


def flow_warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """``image (N, C, H, W)`` sampled at ``x + flow(x)`` with ``flow (N, 2, H, W)`` pixel
    offsets ``(dx, dy)``: bilinear, border pixels repeated (any leading axes ``(..., C, H, W)``
    work as long as image and flow share them). Differentiable in the image."""
    lead, (c, h, w) = image.shape[:-3], image.shape[-3:]
    if flow.shape[:-3] != lead or flow.shape[-3:] != (2, h, w):
        raise ValueError(f"flow_warp: flow {tuple(flow.shape)} does not fit image "
                         f"{tuple(image.shape)} (want (..., 2, H, W))")
    img, fl = image.reshape(-1, c, h, w), flow.reshape(-1, 2, h, w).to(image)
    ys, xs = torch.meshgrid(torch.arange(h, device=image.device, dtype=image.dtype),
                            torch.arange(w, device=image.device, dtype=image.dtype), indexing="ij")
    gx = (xs + fl[:, 0]) * (2.0 / max(w - 1, 1)) - 1
    gy = (ys + fl[:, 1]) * (2.0 / max(h - 1, 1)) - 1
    out = F.grid_sample(img, torch.stack([gx, gy], dim=-1), mode="bilinear",
                        padding_mode="border", align_corners=True)
    return out.reshape(image.shape)


class FlowCache:
    """The flows of each clip's warped identity, computed once (milliseconds a frame) and
    kept in float16; :meth:`fields` serves a window's :data:`FLOW_FIELDS`."""

    def __init__(self):
        self.clips: dict = {}

    def flows(self, key, warped_clip: np.ndarray) -> np.ndarray:
        """``(n, 2, S, S)`` float32 flows of the whole clip's warped identity
        ``(n, S, S, 3)`` uint8 (cached under ``key``)."""
        if key not in self.clips:
            self.clips[key] = frame_flows(warped_clip).astype(np.float16)
        return self.clips[key].astype(np.float32)

    def fields(self, key, warped_clip: np.ndarray, frames_npy, start: int, stop: int) -> dict:
        """Frames ``[start, stop)``: ``{"flow": (n, 2, S, S) float32, "previous": (n, S, S, 3)
        uint8}``; ``frames_npy`` is the clip's (memory-mapped) ``(N, S, S, 3)`` frames."""
        flow = self.flows(key, warped_clip)[start:stop]
        before = np.array(frames_npy[max(start - 1, 0):stop - 1])
        if start == 0:  # the clip's first frame has no predecessor: its warped identity
            before = np.concatenate([np.asarray(warped_clip[:1]), before])
        prev = torch.from_numpy(before.astype(np.float32)).permute(0, 3, 1, 2)
        moved = flow_warp(prev, torch.from_numpy(flow))
        if start == 0:
            moved[0] = prev[0]
        image = moved.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
        return {"flow": flow, "previous": image}
