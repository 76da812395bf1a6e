"""Training the mouth painter of the warp generator (:mod:`coursekit.models.painter`) on real frames.

Items (:class:`PainterFrames`): one frame ``t`` of a training clip whose lips part (inner-lip
gap above ``min_gap`` pixels), with

* ``identity``: the clip's first frame (or, with probability ``other_identity``, a random
  frame of the same clip, so that open mouths in the photo are seen too);
* ``warped``: the identity warped by the *real* landmarks of frame ``t``
  (:func:`coursekit.data.warped.warp_to`: from the identity's landmarks to the identity's with
  the moving points of frame ``t``; the renderers' ``motion="warp"`` inputs are made the same
  way);
* ``mask``: :func:`coursekit.models.painter.paint_mask` of those target landmarks;
* ``region``: where the loss looks, the same lips-part mask with a wider fall-off
  (``region_feather`` mouth widths): the cavity and the lips around it;
* ``target``: the real frame ``t``.

Augmentation, drawn from ``(seed, epoch, index)`` so that a resumed run replays it and applied
identically to the identity and the target frame (and their landmarks): a scale, a small
rotation and shift about the crop centre, a left-right flip (x mirrored, points permuted by
:data:`coursekit.warp.MIRROR`), and a colour jitter (brightness, contrast, per-channel gains).
Frames are read from the memory-mapped ``frames.npy`` of each clip: RAM holds a batch.

Loss (:func:`painter_loss`) on the composed frame ``compose(warped, mask, rgb, alpha)``: L1 in
the mouth region, plus ``w_face`` times the whole-face L1 and ``w_edge`` times the L1 of the
horizontal and vertical differences in the region (edges of teeth and lips; no pretrained
perceptual network is used), plus ``w_rgb`` times the L1 of the painted colours themselves
inside the mask (so that they learn even while ``alpha`` is low: a painter whose ``alpha``
falls to 0 early would otherwise never learn). Optimisation, checkpoints, resume and EMA are
:class:`~coursekit.train.trainer.Trainer`'s (``kind="painter"``).

Python use::

    from coursekit.train.painter import PainterTrainConfig, train_painter
    from coursekit.models.painter import PainterConfig

    train_painter(clips, "runs/painter.pt", PainterConfig.tiny(), PainterTrainConfig.tiny())

``clips``: clip dicts of :func:`coursekit.data.dataset.load_index` (with ``"path"``, so they
may come from several processed datasets of the same crop size).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch.utils.data import Dataset, default_collate

from ..data.splits import clip_key
from ..data.warped import image_tensor, warp_to
from ..models.motion import lip_gap
from ..models.painter import Painter, PainterConfig, compose, paint_mask
from ..presets import Presets
from ..warp import MIRROR, mouth_mask
from .trainer import Trainer, TrainerConfig


@dataclass
class PainterTrainConfig(Presets, TrainerConfig):
    """Painter training: :class:`~coursekit.train.trainer.TrainerConfig`'s fields (the
    painter's defaults below) and its own (see the module docstring).

    min_gap: frames whose inner-lip gap is at most this (pixels) are skipped (nothing to
    paint). other_identity: probability of another frame of the clip as the identity.
    flip: probability of the mirror. scale, rotate, shift: the geometric jitter (fraction,
    degrees, pixels). brightness, contrast, gain: the colour jitter (fractions of 255, of the
    contrast, of each channel). region_feather: the loss region's fall-off (mouth widths).
    w_face, w_edge, w_rgb: weights of the whole-face L1, of the edge term and of the L1 of
    the painted colours.

    ``tiny()``: a short CPU run (tests, the samples).
    """

    TINY: ClassVar[dict] = dict(batch_size=8, lr=2e-3, lr_schedule="constant", max_steps=100,
                                ema_decay=None, ckpt_every=50, grad_clip=None)

    # TrainerConfig's fields, the painter's defaults
    batch_size: int = 32
    lr: float = 1e-3
    lr_schedule: str = "cosine"
    warmup_steps: int = 50          # steps
    min_lr_fraction: float = 0.05
    max_steps: int | None = 3000
    ema_decay: float | None = 0.995
    ckpt_every: int = 250           # steps
    grad_clip: float | None = 1.0
    device: str = "cpu"
    # which items
    min_gap: float = 1.0            # pixels
    other_identity: float = 0.3
    # geometry, the same for the identity and the target
    flip: float = 0.5
    scale: float = 0.06
    rotate: float = 5.0             # degrees
    shift: float = 3.0              # pixels
    # colour, the same for the identity and the target
    brightness: float = 0.08
    contrast: float = 0.15
    gain: float = 0.08
    # loss
    region_feather: float = 0.3     # mouth widths
    w_face: float = 0.1
    w_edge: float = 0.5
    w_rgb: float = 0.5


# ----------------------------------------------------------------------------- data


def _affine(rng: np.random.Generator, size: int, cfg: PainterTrainConfig) -> tuple[np.ndarray, bool]:
    """A random ``(2, 3)`` crop -> crop transform (scale, rotation, shift, maybe a mirror
    about the vertical axis) and whether it mirrors."""
    import cv2

    centre = ((size - 1) / 2, (size - 1) / 2)
    m = cv2.getRotationMatrix2D(centre, float(rng.uniform(-cfg.rotate, cfg.rotate)),
                                float(1 + rng.uniform(-cfg.scale, cfg.scale)))
    m[:, 2] += rng.uniform(-cfg.shift, cfg.shift, 2)
    flip = bool(rng.random() < cfg.flip)
    if flip:  # x -> size - 1 - x after the jitter
        m[0] = -m[0]
        m[0, 2] += size - 1
    return m, flip


def _colour(rng: np.random.Generator, cfg: PainterTrainConfig):
    """A random colour jitter: ``uint8 image -> uint8 image`` (the same for every image)."""
    gains = (1 + rng.uniform(-cfg.gain, cfg.gain, 3)).astype(np.float32)
    contrast = np.float32(1 + rng.uniform(-cfg.contrast, cfg.contrast))
    shift = np.float32(255 * rng.uniform(-cfg.brightness, cfg.brightness))

    def apply(img: np.ndarray) -> np.ndarray:
        out = ((img.astype(np.float32) - 128) * contrast + 128 + shift) * gains
        return np.clip(out + 0.5, 0, 255).astype(np.uint8)

    return apply


class PainterFrames(Dataset):
    """Every frame with parted lips of ``clips`` (dicts with ``"path"``), as painter items:
    ``warped``, ``identity``, ``target`` ``(3, S, S)`` in [-1, 1], ``mask`` and ``region``
    ``(1, S, S)`` in [0, 1] (see the module docstring). ``len`` is the number of such frames;
    :meth:`set_epoch` picks the epoch's augmentation."""

    def __init__(self, clips: list[dict], cfg: PainterTrainConfig | None = None,
                 model_cfg: PainterConfig | None = None, *, seed: int | None = None,
                 augment: bool = True):
        self.cfg, self.model_cfg = cfg or PainterTrainConfig(), model_cfg or PainterConfig()
        self.clips = list(clips)
        self.seed = self.cfg.seed if seed is None else int(seed)
        self.augment, self.epoch = augment, 0
        self.landmarks, items = [], []
        for c, clip in enumerate(self.clips):
            if "path" not in clip:
                raise ValueError(f"PainterFrames: clip {clip_key(clip)} has no 'path' "
                                 "(use coursekit.data.dataset.load_index)")
            lm = np.load(Path(clip["path"]) / "aligned_landmarks.npy").astype(np.float32)
            self.landmarks.append(lm)
            items += [(c, t) for t in np.flatnonzero(lip_gap(lm) > self.cfg.min_gap)]
        if not items:
            raise ValueError(f"PainterFrames: no frame of the {len(self.clips)} clips has parted "
                             f"lips (inner-lip gap > {self.cfg.min_gap} px)")
        self.items = np.asarray(items, np.int64)
        self._frames: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.items)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def frames(self, c: int) -> np.ndarray:
        """Clip ``c``'s memory-mapped ``(T, S, S, 3)`` uint8 crops."""
        if c not in self._frames:
            self._frames[c] = np.load(Path(self.clips[c]["path"]) / "frames.npy", mmap_mode="r")
        return self._frames[c]

    def __getitem__(self, i: int) -> dict:
        import cv2

        c, t = (int(v) for v in self.items[i])
        frames, lm = self.frames(c), self.landmarks[c]
        rng = np.random.default_rng([self.seed, self.epoch, int(i)])
        s = self.cfg if self.augment else None
        k = 0
        if s is not None and rng.random() < s.other_identity:
            k = int(rng.integers(len(frames)))
        identity, target = np.array(frames[k]), np.array(frames[t])
        src, dst = lm[k].copy(), lm[t].copy()
        size = identity.shape[0]
        if s is not None:
            m, flip = _affine(rng, size, s)
            jitter = _colour(rng, s)
            identity, target = (jitter(cv2.warpAffine(img, m, (size, size), flags=cv2.INTER_LINEAR,
                                                      borderMode=cv2.BORDER_REPLICATE))
                                for img in (identity, target))
            src, dst = (p @ m[:, :2].T + m[:, 2] for p in (src, dst))
            if flip:
                src, dst = src[MIRROR], dst[MIRROR]
        warped, wanted = warp_to(identity, src, dst)
        mask = paint_mask(wanted, (size, size), self.model_cfg)
        region = mouth_mask(wanted, (size, size), feather=self.cfg.region_feather)
        return {"warped": image_tensor(warped), "identity": image_tensor(identity),
                "target": image_tensor(target),
                "mask": torch.from_numpy(mask)[None], "region": torch.from_numpy(region)[None]}


# ----------------------------------------------------------------------------- loss


def _weighted_l1(a: torch.Tensor, b: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Mean over channels of ``|a - b|`` ``(B, C, H, W)``, averaged with ``weight (B, 1, H, W)``."""
    return ((a - b).abs().mean(1, keepdim=True) * weight).sum() / weight.sum().clamp(min=1.0)


def painter_loss(out: torch.Tensor, target: torch.Tensor, region: torch.Tensor,
                 w_face: float = 0.1, w_edge: float = 0.5, *, rgb: torch.Tensor | None = None,
                 mask: torch.Tensor | None = None, w_rgb: float = 0.5) -> tuple[torch.Tensor, dict]:
    """``(loss, terms)`` of composed frames ``out`` against ``target`` ``(B, 3, S, S)``:
    the L1 in ``region (B, 1, S, S)`` (weighted mean), ``w_face`` times the whole-face L1,
    ``w_edge`` times the region-weighted L1 of the x and y differences and, given the
    painter's ``rgb`` and ``mask``, ``w_rgb`` times their L1 to the target weighted by the
    mask (the colours learn even where ``alpha`` is still low: no dead start)."""
    weight = region.sum().clamp(min=1.0)
    mouth = _weighted_l1(out, target, region)
    face = (out - target).abs().mean()
    dx = ((out[..., :, 1:] - out[..., :, :-1]) - (target[..., :, 1:] - target[..., :, :-1])).abs()
    dy = ((out[..., 1:, :] - out[..., :-1, :]) - (target[..., 1:, :] - target[..., :-1, :])).abs()
    edge = ((dx.mean(1, keepdim=True) * region[..., :, 1:]).sum()
            + (dy.mean(1, keepdim=True) * region[..., 1:, :]).sum()) / (2 * weight)
    loss = mouth + w_face * face + w_edge * edge
    terms = {"mouth": float(mouth.detach()), "face": float(face.detach()),
             "edge": float(edge.detach())}
    if rgb is not None:
        direct = _weighted_l1(rgb, target, mask)
        loss = loss + w_rgb * direct
        terms["rgb"] = float(direct.detach())
    return loss, terms


def make_step_fn(cfg: PainterTrainConfig):
    """The :class:`.Trainer` step function: ``(model, batch, device) -> (loss, terms)``."""

    def step_fn(model, batch, device):
        warped, mask = batch["warped"].to(device), batch["mask"].to(device)
        rgb, alpha = model(warped, mask, batch["identity"].to(device))
        return painter_loss(compose(warped, mask, rgb, alpha), batch["target"].to(device),
                            batch["region"].to(device), cfg.w_face, cfg.w_edge, rgb=rgb,
                            mask=mask, w_rgb=cfg.w_rgb)

    return step_fn


# ----------------------------------------------------------------------------- training


def painter_trainer(clips: list[dict], out_dir, model_cfg: PainterConfig | None = None,
                    cfg: PainterTrainConfig | None = None, *, meta: dict | None = None,
                    progress: bool = True, on_step=None) -> Trainer:
    """The :class:`.Trainer` of a :class:`Painter` on ``clips`` (files in ``out_dir``)."""
    model_cfg = model_cfg or PainterConfig()
    cfg = cfg or PainterTrainConfig()
    torch.manual_seed(cfg.seed)
    data = PainterFrames(clips, cfg, model_cfg)
    size = int(np.load(Path(data.clips[0]["path"]) / "frames.npy", mmap_mode="r").shape[1])
    if size != model_cfg.image_size:
        raise ValueError(f"{clips[0]['path']}: crops of {size} px, the painter's image_size is "
                         f"{model_cfg.image_size}")
    info = {"train_clips": [clip_key(c) for c in data.clips], "train_config": asdict(cfg),
            "frames": len(data), **(meta or {})}
    return Trainer(Painter(model_cfg), data, cfg, out_dir, step_fn=make_step_fn(cfg),
                   kind="painter", model_config=model_cfg, meta=info,
                   collate_fn=default_collate, progress=progress, desc="painter",
                   on_step=on_step)


def train_painter(clips: list[dict], out, model_cfg: PainterConfig | None = None,
                  cfg: PainterTrainConfig | None = None, *, meta: dict | None = None,
                  resume: bool = False, progress: bool = True, on_step=None,
                  half: bool = False) -> Path:
    """Train a :class:`Painter` on ``clips``; write the loadable checkpoint ``out`` (EMA
    weights when enabled, ``kind="painter"``, fp16 with ``half``) and keep the resumable state
    in the folder ``out`` without suffix (``last.pt``, ``log.csv``). Returns ``out``."""
    out = Path(out)
    trainer = painter_trainer(clips, out.with_suffix(""), model_cfg, cfg, meta=meta,
                              progress=progress, on_step=on_step)
    trainer.fit(resume=resume)
    if trainer.is_main:
        trainer.export(out, half=half)
    return out
