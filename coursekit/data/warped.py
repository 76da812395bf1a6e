"""The warped identity: the identity crop moved to a frame's wanted landmarks, and its mouth mask.

One place for what the mouth painter's training items
(:class:`coursekit.train.painter.PainterFrames`), the renderers' ``motion="warp"`` inputs
(:class:`~coursekit.data.dataset.TalkingFaceDataset` fields ``"warped"`` and ``"mouth_mask"``)
and inference share:

* :func:`wanted_landmarks`: the identity's landmarks with the :data:`coursekit.warp.MOVING`
  points (jaw and mouth) of a frame, everything else where the identity has it;
* :func:`warp_to`: the identity crop warped to them (thin-plate :func:`coursekit.warp.backward_map`
  and :func:`coursekit.warp.warp_image`);
* :func:`lips_mask`: where the wanted lips part (:func:`coursekit.warp.mouth_mask`, dilated), the
  region a warp cannot fill; all 0 for closed lips;
* :func:`warp_inputs`: both for a clip, ``(T, S, S, 3)`` uint8 and ``(T, S, S)`` float32;
  :func:`clip_warp_inputs` reads them from a processed clip folder (teacher forcing with the
  clip's tracked landmarks); :func:`warp_tensors` gives the renderers' tensors.

At inference the wanted landmarks come from the motion model: ``targets =
coursekit.warp.displace(source, motion)`` with ``motion (T, 33, 2)`` the
:class:`~coursekit.models.motion.MotionModel`'s displacements (inter-ocular distances; the warp
generator's :meth:`~coursekit.infer.warp.WarpGenerator.audio_motion` makes them from audio), then
``warp_tensors(identity, source, targets)``.

Landmarks are ``(68, 2)`` crop pixels ``(x, y)`` in dlib's order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..warp import MOVING, backward_map, mouth_mask, warp_image

WARP_FIELDS = ("warped", "mouth_mask")
"""The dataset fields of the warped identity (computed, not read from a file)."""

MASK_FEATHER = 0.12
"""Default Gaussian fall-off of :func:`lips_mask`, mouth widths (the painter's too)."""
MASK_GROW = 1
"""Default dilation of :func:`lips_mask`, pixels."""


def wanted_landmarks(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``(68, 2)`` float32: ``source`` with the moving points (jaw, mouth) of ``target``."""
    wanted = np.array(source, np.float32, copy=True)
    wanted[MOVING] = np.asarray(target, np.float32)[MOVING]
    return wanted


def warp_to(identity: np.ndarray, source: np.ndarray, target: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray]:
    """The identity crop ``(S, S, 3)`` uint8 (landmarks ``source``) warped so that its
    jaw and mouth sit where ``target``'s do: ``(warped (S, S, 3) uint8, wanted (68, 2))``
    (:func:`wanted_landmarks`). Unmoved landmarks give the crop itself."""
    wanted = wanted_landmarks(source, target)
    if np.array_equal(wanted[MOVING], np.asarray(source, np.float32)[MOVING]):
        return np.array(identity, copy=True), wanted
    return warp_image(identity, backward_map(source, wanted, identity.shape[:2])), wanted


def lips_mask(landmarks: np.ndarray, shape: tuple[int, int], feather: float = MASK_FEATHER,
              grow: int = MASK_GROW) -> np.ndarray:
    """Where the lips of ``landmarks (68, 2)`` part (:func:`coursekit.warp.mouth_mask` with
    ``feather`` mouth widths) dilated by ``grow`` pixels: ``(H, W)`` float32 in [0, 1], all 0
    for closed lips."""
    import cv2

    mask = mouth_mask(landmarks, shape, feather=feather)
    if grow > 0 and mask.any():
        mask = cv2.dilate(mask, np.ones((3, 3), np.uint8), iterations=int(grow))
    return mask


def warp_inputs(identity: np.ndarray, source: np.ndarray, targets: np.ndarray, *,
                feather: float = MASK_FEATHER, grow: int = MASK_GROW
                ) -> tuple[np.ndarray, np.ndarray]:
    """For each of ``targets (T, 68, 2)``: the identity crop ``(S, S, 3)`` uint8 (landmarks
    ``source (68, 2)``) warped to it and the mask of its wanted lips. Returns
    ``(warped (T, S, S, 3) uint8, masks (T, S, S) float32)``."""
    identity = np.asarray(identity)
    if identity.ndim != 3 or identity.dtype != np.uint8:
        raise ValueError(f"warp_inputs: identity must be an (S, S, 3) uint8 crop, got "
                         f"{identity.shape} {identity.dtype}")
    targets = np.asarray(targets, np.float32)
    if targets.ndim != 3 or targets.shape[1:] != (68, 2):
        raise ValueError(f"warp_inputs: targets must be (T, 68, 2), got {targets.shape}")
    size = identity.shape[:2]
    warped, masks = [], []
    for target in targets:
        image, wanted = warp_to(identity, source, target)
        warped.append(image)
        masks.append(lips_mask(wanted, size, feather, grow))
    empty = (0, *identity.shape)
    return (np.stack(warped) if warped else np.zeros(empty, np.uint8),
            np.stack(masks) if masks else np.zeros(empty[:3], np.float32))


def clip_warp_inputs(folder: str | Path, start: int, stop: int) -> dict[str, np.ndarray]:
    """Frames ``[start, stop)`` of the processed clip ``folder``: its identity crop
    (``identity.npy``, the clip's first frame) warped to each frame's tracked landmarks
    (``aligned_landmarks.npy``), teacher forcing. Returns ``{"warped": (n, S, S, 3) uint8,
    "mouth_mask": (n, S, S) float32}``."""
    folder = Path(folder)
    for name in ("identity.npy", "aligned_landmarks.npy"):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder / name}: missing (needed for the warped identity)")
    identity = np.load(folder / "identity.npy")
    landmarks = np.load(folder / "aligned_landmarks.npy", mmap_mode="r")
    if stop > landmarks.shape[0]:
        raise ValueError(f"{folder / 'aligned_landmarks.npy'}: {landmarks.shape[0]} rows, "
                         f"asked for frames up to {stop}")
    warped, masks = warp_inputs(identity, np.array(landmarks[0]), np.array(landmarks[start:stop]))
    return {"warped": warped, "mouth_mask": masks}


class WarpCache:
    """:func:`clip_warp_inputs` of whole clips kept in memory (teacher forcing is the same every
    epoch; a warp costs milliseconds a frame), up to ``limit_mb`` megabytes (masks kept in
    float16); clips past the limit are warped anew on each access."""

    def __init__(self, limit_mb: float = 512.0):
        self.limit, self.bytes, self.clips = float(limit_mb) * 2 ** 20, 0, {}

    def get(self, key, folder: str | Path, start: int, stop: int, n_frames: int) -> dict:
        """Frames ``[start, stop)`` of the clip ``folder`` of ``n_frames`` frames (``key``
        names it in the cache)."""
        if key not in self.clips:
            if self.bytes >= self.limit:
                return clip_warp_inputs(folder, start, stop)
            whole = clip_warp_inputs(folder, 0, n_frames)
            whole["mouth_mask"] = whole["mouth_mask"].astype(np.float16)
            self.clips[key] = whole
            self.bytes += sum(a.nbytes for a in whole.values())
        return {k: v[start:stop] for k, v in self.clips[key].items()}


def warp_tensors(identity: torch.Tensor, source: np.ndarray, targets: np.ndarray
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """The renderers' ``motion="warp"`` inputs for one clip: identity ``(3, S, S)`` in
    [-1, 1] (landmarks ``source (68, 2)``), wanted landmarks ``targets (T, 68, 2)`` ->
    ``(warped (T, 3, S, S) in [-1, 1], mouth_mask (T, 1, S, S) in [0, 1])`` on the
    identity's device (add a batch axis for ``forward`` / ``sample``)."""
    crop = ((identity.detach().float().cpu().clamp(-1, 1) + 1) * 127.5 + 0.5).to(torch.uint8)
    warped, masks = warp_inputs(crop.permute(1, 2, 0).numpy(), source, targets)
    return (image_tensor(warped).to(identity.device),
            torch.from_numpy(masks)[:, None].to(identity.device))


def image_tensor(images: np.ndarray) -> torch.Tensor:
    """``(..., S, S, 3)`` uint8 -> ``(..., 3, S, S)`` float32 in [-1, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(images)).float() / 127.5 - 1
    return x.movedim(-1, -3).contiguous()


def batch_warp_inputs(batch: dict, device) -> dict[str, torch.Tensor]:
    """``{"warped", "mouth_mask"}`` of a collated batch on ``device`` (the keyword arguments
    of a ``motion="warp"`` renderer), or ``{}`` when the batch has none."""
    return {k: batch[k].to(device) for k in WARP_FIELDS if k in batch}
