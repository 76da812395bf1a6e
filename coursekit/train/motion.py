"""Training the AU -> landmark motion model (:mod:`coursekit.models.motion`) and its audio route.

Data: every frame window of the training clips (:class:`MotionWindows`, a
:class:`~coursekit.data.windows.FrameWindows` over ``aus`` and the aligned ``landmarks``).
Targets: each frame's jaw and mouth landmarks minus the clip's neutral (its most closed-mouth
frames, :func:`~coursekit.models.motion.neutral_landmarks`), in the clip's inter-ocular
distances, in the aligned crop's upright frame. Augmentation, drawn from ``(seed, epoch,
clip, start)`` so a resumed run replays it: a left-right mirror (x negated, the mirror
permutation of the points; the speech AUs are symmetric) and a small per-window scale of x
and y (face proportions).

Loss: L1 on the displacements, plus ``w_spread`` times the L1 between the predicted and the
true temporal spread (std over the window) of three mouth signals, the inner-lip gap, the
chin drop and the mouth width. A regression to the mean shrinks the motion (a linear AU ->
landmark fit moved the mouth 0.62 as much as the real one); the spread term pays for it.

Optimisation, checkpoints, resume and EMA are :class:`~coursekit.train.trainer.Trainer`'s
(``kind="motion"``); the exported file loads with :func:`coursekit.checkpoint.load_checkpoint`.

The audio route: Audio2AU (:mod:`coursekit.train.audio2au`) predicts AU occurrence
*probabilities*; :func:`fit_audio_map` maps them to intensities per AU by quantile mapping
(:func:`~coursekit.models.motion.fit_quantile_map`), fitted on the Audio2AU's own validation
clips (frames it did not train on) against the training clips' intensities, so that the
audio-driven motion keeps the real spread. :func:`audio_intensities` applies it.

Python use::

    from coursekit.train.motion import MotionTrainConfig, train_motion
    from coursekit.models.motion import MotionConfig

    path = train_motion("proc", train_clips, "runs/motion.pt", MotionConfig.tiny(),
                        MotionTrainConfig.tiny())
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from ..data.splits import clip_key
from ..data.windows import FrameWindows
from ..evaluate.rows import clip_array
from ..models.motion import (
    LIP_PAIRS,
    MotionConfig,
    MotionModel,
    apply_quantile_map,
    fit_quantile_map,
    neutral_landmarks,
)
from ..presets import Presets
from ..warp import MOVING, MOVING_MIRROR, inter_ocular
from .trainer import Trainer, TrainerConfig


def _slot(point: int) -> int:
    """Index of landmark ``point`` within :data:`coursekit.warp.MOVING`."""
    return int(np.searchsorted(MOVING, point))


UPPER = [_slot(u) for u, _ in LIP_PAIRS]
LOWER = [_slot(low) for _, low in LIP_PAIRS]
CHIN, LEFT, RIGHT = _slot(8), _slot(48), _slot(54)


@dataclass
class MotionTrainConfig(Presets, TrainerConfig):
    """Motion-model training: :class:`~coursekit.train.trainer.TrainerConfig`'s fields (the
    motion model's defaults below) and its own (see the module docstring).

    seq_len: frames per window. flip: probability of the left-right mirror. scale: the
    per-window x and y scales are drawn from ``1 +- scale``. w_spread: weight of the spread
    term.

    ``tiny()``: a short CPU run (for tests and the samples).
    """

    TINY: ClassVar[dict] = dict(batch_size=8, lr=3e-3, lr_schedule="constant", max_steps=200,
                                ema_decay=None, ckpt_every=100, grad_clip=None, seq_len=16)

    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    lr_schedule: str = "cosine"
    min_lr_fraction: float = 0.05
    max_steps: int | None = 3000
    ema_decay: float | None = 0.995
    ckpt_every: int = 500
    grad_clip: float | None = 1.0
    device: str = "cpu"
    seq_len: int = 32               # frames per window
    flip: float = 0.5
    scale: float = 0.05
    w_spread: float = 1.0


# ----------------------------------------------------------------------------- data


class MotionWindows(FrameWindows):
    """Frame windows of ``aus (T, 5)`` with their targets ``motion (T, K, 2)`` (inter-ocular
    distances from the clip's neutral; augmented when ``flip`` or ``scale`` > 0), plus
    ``mask (T,)``. Clips may live in several processed datasets (a clip dict with a
    ``"path"`` is read from there)."""

    def __init__(self, root, clips: list[dict] | None = None, seq_len: int | None = 32, *,
                 seed: int = 0, flip: float = 0.0, scale: float = 0.0):
        super().__init__(root, clips, seq_len, seed=seed, fields=("aus", "landmarks"))
        self.flip, self.scale = float(flip), float(scale)
        self.neutral, self.iod = [], []
        for c in range(len(self.clips)):
            lm = np.load(self.clip_dir(c) / "aligned_landmarks.npy")
            neutral = neutral_landmarks(lm)
            self.neutral.append(neutral[MOVING])
            self.iod.append(float(inter_ocular(neutral)))

    def _item(self, c: int, start: int, n_real: int) -> dict:
        item = super()._item(c, start, n_real)
        lm = item.pop("landmarks").numpy()[:, MOVING]
        motion = (lm - self.neutral[c]) / self.iod[c]
        if self.flip > 0 or self.scale > 0:
            rng = np.random.default_rng([int(self.seed or 0), self.epoch, c, start])
            if rng.random() < self.flip:
                motion = motion[:, MOVING_MIRROR] * np.array([-1.0, 1.0], np.float32)
            motion = motion * (1 + self.scale * rng.uniform(-1, 1, 2)).astype(np.float32)
        item["motion"] = torch.from_numpy(np.ascontiguousarray(motion, np.float32))
        return item


# ----------------------------------------------------------------------------- loss


def mouth_signals(motion: torch.Tensor) -> torch.Tensor:
    """Inner-lip gap, chin drop and mouth width (changes from the neutral) of
    displacements ``(..., K, 2)``: ``(..., 3)``."""
    gap = (motion[..., LOWER, 1] - motion[..., UPPER, 1]).mean(-1)
    return torch.stack([gap, motion[..., CHIN, 1], motion[..., RIGHT, 0] - motion[..., LEFT, 0]], -1)


def masked_std(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Std over time of ``x (B, T, C)`` on the frames where ``mask (B, T)``: ``(B, C)``."""
    w = mask.float()[..., None]
    n = w.sum(1).clamp(min=1)
    mean = (x * w).sum(1) / n
    return ((((x - mean[:, None]) ** 2) * w).sum(1) / n + 1e-8).sqrt()


def motion_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
                w_spread: float = 1.0) -> tuple[torch.Tensor, dict]:
    """``(loss, terms)``: masked L1 of ``pred``/``target (B, T, K, 2)`` plus ``w_spread``
    times the L1 between their :func:`mouth_signals`' spreads over the valid frames."""
    w = mask.float()
    l1 = ((pred - target).abs().mean((-1, -2)) * w).sum() / w.sum().clamp(min=1)
    spread = (masked_std(mouth_signals(pred), mask)
              - masked_std(mouth_signals(target), mask)).abs().mean()
    return l1 + w_spread * spread, {"l1": float(l1.detach()), "spread": float(spread.detach())}


def make_step_fn(cfg: MotionTrainConfig):
    """The :class:`.Trainer` step function: ``(model, batch, device) -> (loss, terms)``."""

    def step_fn(model, batch, device):
        pred = model(batch["aus"].to(device))
        return motion_loss(pred, batch["motion"].to(device), batch["mask"].to(device),
                           cfg.w_spread)

    return step_fn


# ----------------------------------------------------------------------------- training


def train_motion(root, clips: list[dict], out, model_cfg: MotionConfig | None = None,
                 cfg: MotionTrainConfig | None = None, *, meta: dict | None = None,
                 resume: bool = False, progress: bool = True, on_step=None) -> Path:
    """Train a :class:`MotionModel` on ``clips`` of the processed dataset ``root`` (clip
    dicts with a ``"path"`` may come from other datasets).

    Writes the loadable checkpoint ``out`` (e.g. ``motion.pt``: EMA weights when enabled,
    ``kind="motion"``, the configs, the clip names and ``meta``) and keeps the resumable
    state in the folder ``out`` without suffix (``last.pt``, ``log.csv``). Returns ``out``.
    """
    out = Path(out)
    model_cfg = model_cfg or MotionConfig()
    cfg = cfg or MotionTrainConfig()
    torch.manual_seed(cfg.seed)
    data = MotionWindows(root, clips, cfg.seq_len, seed=cfg.seed, flip=cfg.flip, scale=cfg.scale)
    info = {"train_clips": [clip_key(c) for c in data.clips], "train_config": asdict(cfg),
            "points": MOVING.tolist(), "units": "inter-ocular distance", **(meta or {})}
    trainer = Trainer(MotionModel(model_cfg), data, cfg, out.with_suffix(""),
                      step_fn=make_step_fn(cfg), kind="motion", model_config=model_cfg,
                      meta=info, progress=progress, desc="motion", on_step=on_step)
    trainer.fit(resume=resume)
    if trainer.is_main:
        trainer.export(out)
    return out


# ----------------------------------------------------------------------------- audio route


def fit_audio_map(audio2au, root, clips: list[dict], intensity_clips: list[dict]) -> dict:
    """The quantile map (:func:`~coursekit.models.motion.fit_quantile_map`) from the
    probabilities of the Audio2AU checkpoint ``audio2au`` (path) to AU intensities.

    The probabilities are predicted on the checkpoint's validation clips (its ``val_clips``,
    looked up in ``clips``: frames it did not train on); the intensities are the ``aus`` of
    ``intensity_clips`` (the training clips). Returns the map plus ``"fitted_on"`` (clip
    names) and ``"audio2au"`` (the path).
    """
    from .audio2au import load_audio2au, predict_clips

    model, ckpt = load_audio2au(audio2au)
    wanted = set(ckpt.get("val_clips") or [])
    val = [c for c in clips if clip_key(c) in wanted]
    if not val:
        raise ValueError(f"{audio2au}: none of its validation clips is among the {len(clips)} "
                         "clips given (train it with val_fraction > 0 on these clips)")
    probs = predict_clips(model, root, val, ckpt["mfcc_mean"], ckpt["mfcc_std"])
    intensities = [clip_array(c, root, "aus") for c in intensity_clips]
    qmap = fit_quantile_map(np.concatenate(probs), np.concatenate(intensities))
    return {**qmap, "fitted_on": [clip_key(c) for c in val], "audio2au": str(audio2au)}


def audio_intensities(audio2au, root, clips: list[dict], qmap: dict,
                      mfcc: list[np.ndarray] | None = None) -> list[np.ndarray]:
    """AU intensities ``(T_i, 5)`` heard in each clip's audio (or in ``mfcc[i]``, raw MFCC
    windows of other audio): Audio2AU probabilities through ``qmap``."""
    from .audio2au import load_audio2au, predict_clips

    model, ckpt = load_audio2au(audio2au)
    probs = predict_clips(model, root, clips, ckpt["mfcc_mean"], ckpt["mfcc_std"],
                          mfcc_override=mfcc)
    return [apply_quantile_map(qmap, p) for p in probs]


def own_and_other_intensities(audio2au, root, clips: list[dict], qmap: dict
                              ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """:func:`audio_intensities` of each clip's own audio and of its *shuffled audio*
    partner's (:func:`coursekit.evaluate.rows.shuffle_partners`, fitted to the clip's
    length): the model row and its baseline."""
    from ..evaluate.rows import fit_length, shuffle_partners

    partners = shuffle_partners(clips)
    raw = [clip_array(c, root, "mfcc") for c in clips]
    other = [fit_length(raw[p], len(raw[i])) for i, p in enumerate(partners)]
    return (audio_intensities(audio2au, root, clips, qmap),
            audio_intensities(audio2au, root, clips, qmap, mfcc=other))
