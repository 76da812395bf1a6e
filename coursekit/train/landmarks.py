"""Training the multimodal landmark predictor (:mod:`coursekit.models.landmarks`).

Data: every frame window of the training clips (:class:`LandmarkWindows`): each frame's
phoneme id (:mod:`coursekit.data.phonemes`: the clip's ``.phn``, or its ``.align`` with
espeak's phonemes), its MFCC window (normalised by the training clips' statistics) and the
targets of the motion model (:class:`coursekit.train.motion.MotionWindows`: the moving
landmarks minus the clip's neutral, in inter-ocular distances, with its mirror and scale
augmentation; phonemes and audio are symmetric, so a mirrored face says the same).

Modality dropout: each item of a batch is trained with text only (``p_text_only``), audio
only (``p_audio_only``) or both (the rest), drawn from torch's generator (replayed on resume),
so one model serves the three settings. Loss: :func:`coursekit.train.motion.motion_loss`.

Optimisation, checkpoints, resume and EMA are :class:`~coursekit.train.trainer.Trainer`'s
(``kind="landmarks"``). Python use::

    from coursekit.models.landmarks import LandmarkConfig
    from coursekit.train.landmarks import LandmarkTrainConfig, train_landmarks

    path = train_landmarks("proc", train_clips, "runs/landmarks.pt", LandmarkConfig.tiny(),
                           LandmarkTrainConfig.tiny(), corpus="/data/grid")
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from ..data.dataset import mfcc_stats
from ..data.phonemes import PHONEMES, clip_alignment, phoneme_frames
from ..data.splits import clip_key
from ..models.landmarks import LandmarkConfig, LandmarkPredictor
from ..warp import MOVING
from .motion import MotionTrainConfig, MotionWindows, motion_loss
from .trainer import Trainer

MODES = {"text": (True, False), "audio": (False, True), "text+audio": (True, True)}
"""Input settings: name -> (text on, audio on)."""


@dataclass
class LandmarkTrainConfig(MotionTrainConfig):
    """Landmark-predictor training: :class:`~coursekit.train.motion.MotionTrainConfig`'s
    fields and defaults (the Trainer's, seq_len, flip, scale, w_spread) and modality dropout:
    p_text_only and p_audio_only, the chance of each item being trained with one input only.

    ``tiny()``: a short CPU run (about a minute on GRID s1's 100 training clips).
    """

    TINY: ClassVar[dict] = {"batch_size": 16, "lr": 3e-3, "max_steps": 400, "ema_decay": None,
                            "ckpt_every": 200, "seq_len": 32}

    p_text_only: float = 0.25
    p_audio_only: float = 0.25


class LandmarkWindows(MotionWindows):
    """Frame windows (whole clips with ``seq_len=None``) of ``phonemes (T,)`` int64,
    ``mfcc (T, 12, 28)`` (normalised by ``normalize_mfcc``), targets ``motion (T, K, 2)``
    and ``mask (T,)``.

    corpus: the corpus folder of the clips' ``<speaker>/align/`` files (default: beside each
    clip's video, :func:`~coursekit.data.phonemes.clip_alignment`).
    """

    def __init__(self, root, clips: list[dict] | None = None, seq_len: int | None = 32, *,
                 seed: int = 0, flip: float = 0.0, scale: float = 0.0, normalize_mfcc=None,
                 corpus=None):
        super().__init__(root, clips, seq_len, seed=seed, flip=flip, scale=scale)
        self.fields = ("mfcc", "landmarks")
        if normalize_mfcc is not None:
            self.mfcc_mean, self.mfcc_std = (np.asarray(v, np.float32).reshape(-1, 1)
                                             for v in normalize_mfcc)
        self.phonemes = [phoneme_frames(clip_alignment(self.clip_dir(c), corpus),
                                        int(clip["n_frames"]))
                         for c, clip in enumerate(self.clips)]

    def _item(self, c: int, start: int, n_real: int) -> dict:
        item = super()._item(c, start, n_real)
        ids = self.phonemes[c][start:start + n_real]
        ids = np.pad(ids, (0, len(item["mask"]) - n_real), mode="edge")
        item["phonemes"] = torch.from_numpy(ids)
        return item


def draw_modes(n: int, cfg: LandmarkTrainConfig, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Modality dropout for ``n`` items: ``(text_on (n,), audio_on (n,))`` bool, never both off."""
    u = torch.rand(n)
    text_on = u >= cfg.p_audio_only
    audio_on = u < 1.0 - cfg.p_text_only
    return text_on.to(device), audio_on.to(device)


def make_step_fn(cfg: LandmarkTrainConfig):
    """The :class:`.Trainer` step function: ``(model, batch, device) -> (loss, terms)``."""
    if min(cfg.p_text_only, cfg.p_audio_only) < 0 or cfg.p_text_only + cfg.p_audio_only > 1:
        raise ValueError(f"modality dropout needs p_text_only, p_audio_only >= 0 with a sum "
                         f"<= 1, got {cfg.p_text_only} and {cfg.p_audio_only}")

    def step_fn(model, batch, device):
        text_on, audio_on = draw_modes(len(batch["mask"]), cfg, device)
        pred = model(batch["phonemes"].to(device), batch["mfcc"].to(device), text_on, audio_on)
        return motion_loss(pred, batch["motion"].to(device), batch["mask"].to(device),
                           cfg.w_spread)

    return step_fn


def train_landmarks(root, clips: list[dict], out, model_cfg: LandmarkConfig | None = None,
                    cfg: LandmarkTrainConfig | None = None, *, corpus=None,
                    meta: dict | None = None, resume: bool = False, progress: bool = True,
                    on_step=None) -> Path:
    """Train a :class:`LandmarkPredictor` on ``clips`` of the processed dataset ``root``
    (phonemes from ``corpus``'s align files, see :class:`LandmarkWindows`).

    Writes the loadable checkpoint ``out`` (``kind="landmarks"``; meta: MFCC statistics, the
    phoneme inventory, the clip names) and keeps the resumable state in the folder ``out``
    without suffix. Returns ``out``.
    """
    out = Path(out)
    model_cfg = model_cfg or LandmarkConfig()
    cfg = cfg or LandmarkTrainConfig()
    torch.manual_seed(cfg.seed)
    stats = mfcc_stats(clips, root)
    data = LandmarkWindows(root, clips, cfg.seq_len, seed=cfg.seed, flip=cfg.flip,
                           scale=cfg.scale, normalize_mfcc=stats, corpus=corpus)
    meta = {"train_clips": [clip_key(c) for c in data.clips], "train_config": asdict(cfg),
            "mfcc_mean": stats[0], "mfcc_std": stats[1], "phonemes": list(PHONEMES),
            "points": MOVING.tolist(), "units": "inter-ocular distance", **(meta or {})}
    trainer = Trainer(LandmarkPredictor(model_cfg), data, cfg, out.with_suffix(""), meta=meta,
                      step_fn=make_step_fn(cfg), kind="landmarks", model_config=model_cfg,
                      progress=progress, desc="landmarks", on_step=on_step)
    trainer.fit(resume=resume)
    return trainer.export(out) if trainer.is_main else out
