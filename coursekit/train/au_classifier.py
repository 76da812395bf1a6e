"""Pretraining the AU classifier: which speech AUs does a face show (lower half only)?

The classifier plays two roles. In training it supplies the AU loss: generated frames should
show the AUs of the real frames (paper eq. 5-7). In evaluation a *second* classifier, trained
the same way with another seed and never used as a loss (the "judge"), reads the AUs of
generated frames, so the model cannot have learned to please its own examiner.

It learns from real frames only: every frame of the training clips once per epoch
(:class:`~coursekit.data.windows.FrameWindows` with ``seq_len`` frames an item, read from the
memory-mapped crops, so RAM holds a batch, not the corpus), its lower half
(:func:`~coursekit.models.au_classifier.lower_half`) with a little Gaussian noise, and the
paper's weighted BCE + weighted Dice (:func:`coursekit.losses.au_loss`) with weights from the
training clips' occurrence rates. The loop, checkpoints and exact resume are
:class:`~coursekit.train.trainer.Trainer`'s; the checkpoint's ``meta`` keeps
``occurrence_rates`` (the talker's AU loss weights), ``history`` (mean loss per epoch) and
``clips``. From the command line: ``coursekit train au-classifier`` / ``coursekit train judge``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from ..checkpoint import load_checkpoint
from ..data.dataset import FIELD_FILES, TalkingFaceDataset
from ..data.splits import clip_key
from ..data.windows import FrameWindows
from ..losses import au_class_weights, au_loss
from ..metrics import accuracy_per_au, f1_per_au
from ..models.au_classifier import AUClassifier, lower_half
from ..models.config import AUClassifierConfig
from ..presets import Presets
from .common import read_csv_log, seed_everything
from .trainer import Trainer, TrainerConfig


@dataclass
class AUClassifierTrainConfig(Presets, TrainerConfig):
    """:class:`~coursekit.train.trainer.TrainerConfig` plus the classifier's own settings.

    seq_len: frames per dataset item (1: one item per frame; a few frames read from disk in
        fewer calls, and a batch then holds ``batch_size * seq_len`` frames).
    noise: std of the Gaussian noise added to the frames in [-1, 1] (generated frames are
        not crisp). min_rate: floor of the occurrence rates in the loss weights
        (:func:`coursekit.losses.au_class_weights`).

    The defaults are the paper preset (:meth:`paper`: 30 epochs, no time cap);
    :meth:`tiny` caps a CPU run at 1.5 minutes.
    """

    TINY: ClassVar[dict] = dict(max_minutes=1.5, ckpt_every=100, device="cpu")

    batch_size: int = 64
    epochs: int = 30
    lr: float = 1e-3
    ckpt_every: int = 500
    seq_len: int = 1
    noise: float = 0.03
    min_rate: float = 0.01


# ----------------------------------------------------------------------------- data


def clip_folder(root, clip: dict) -> Path:
    """The folder of a processed clip (its ``path``, else ``root / dir``)."""
    return Path(clip["path"]) if "path" in clip else Path(root) / clip["dir"]


def crop_size(root, clips: list[dict]) -> int:
    """Side ``S`` of the face crops of ``clips`` (the first clip's memory-mapped frames)."""
    if not clips:
        raise ValueError(f"{root}: no clips to train on")
    path = clip_folder(root, clips[0]) / FIELD_FILES["frames"]
    return int(np.load(path, mmap_mode="r").shape[1])


def occurrence_rates(root, clips: list[dict]) -> torch.Tensor:
    """``(5,)`` fraction of the frames of ``clips`` where each AU occurs."""
    occ = np.concatenate([np.load(clip_folder(root, c) / FIELD_FILES["occurrence"])
                          for c in clips]).astype(np.float64)
    return torch.tensor(occ.mean(0), dtype=torch.float32)


def epoch_losses(log_path) -> list[float]:
    """Mean training loss of each epoch of a :class:`.Trainer` log (the last may be partial)."""
    by_epoch: dict[int, list[float]] = {}
    for row in read_csv_log(log_path):
        by_epoch.setdefault(int(row["epoch"]), []).append(float(row["loss"]))
    return [float(np.mean(v)) for _, v in sorted(by_epoch.items())]


# ----------------------------------------------------------------------------- training


def make_step_fn(weights: torch.Tensor, noise: float):
    """The :class:`.Trainer` step: frames ``(B, T, 3, S, S)`` -> lower halves (+ noise) ->
    logits ``(B, T, 5)``; loss = :func:`~coursekit.losses.au_loss` against ``occurrence``
    (padded frames masked)."""

    def step_fn(model, batch, device):
        x = lower_half(batch["frames"].to(device))  # (B, T, 3, S/2, S)
        if noise:
            x = x + noise * torch.randn_like(x)
        b, t = x.shape[:2]
        logits = model(x.flatten(0, 1)).view(b, t, -1)
        loss = au_loss(logits.float(), batch["occurrence"].to(device), weights.to(device),
                       batch["mask"].to(device))
        return loss, {}

    return step_fn


def train_au_classifier(root: str | Path, clips: list[dict], out: str | Path,
                        model_cfg: AUClassifierConfig, cfg: AUClassifierTrainConfig | None = None,
                        *, progress: bool = True, resume: bool = False,
                        half: bool = False, on_step=None) -> Path:
    """Train on the real frames of ``clips`` of the processed dataset ``root``.

    Writes the inference checkpoint ``out`` (kind ``"au_classifier"``; ``half``: weights in
    fp16) and keeps the resumable state in the folder ``out`` without its suffix
    (``last.pt``, ``log.csv``); ``resume`` continues from there; ``on_step``: the
    :class:`.Trainer` hook. ``model_cfg.image_size`` is set to the crops' size (the network
    itself works at any size). Returns ``out``.
    """
    cfg = cfg or AUClassifierTrainConfig.tiny()
    out = Path(out)
    model_cfg = dataclasses.replace(model_cfg, image_size=crop_size(root, clips))
    data = FrameWindows(root, clips, cfg.seq_len, seed=cfg.seed, fields=("frames", "occurrence"))
    rates = occurrence_rates(root, clips)
    seed_everything(cfg.seed)  # the initial weights
    meta = {"occurrence_rates": rates, "clips": [clip_key(c) for c in clips],
            "train_config": cfg}
    trainer = Trainer(AUClassifier(model_cfg), data, cfg, out.with_suffix(""),
                      step_fn=make_step_fn(au_class_weights(rates, cfg.min_rate), cfg.noise),
                      kind="au_classifier", model_config=model_cfg, meta=meta,
                      progress=progress, desc="AU classifier", on_step=on_step)
    trainer.fit(resume=resume)
    if trainer.is_main:
        trainer.meta["history"] = epoch_losses(trainer.log_path)
        trainer.export(out, half=half)
    return out


def load_au_classifier(path: str | Path, device: str = "cpu") -> AUClassifier:
    """A trained classifier in eval mode (any :mod:`coursekit.checkpoint` layout)."""
    return load_checkpoint(path, device, kind="au_classifier").model


# ----------------------------------------------------------------------------- reading


@torch.no_grad()
def classify_frames(model: AUClassifier, frames: torch.Tensor, batch: int = 256) -> np.ndarray:
    """Occurrence (probability >= 0.5) of the five AUs: ``(N, 3, S, S)`` -> ``(N, 5)`` bool."""
    model.eval()
    device = next(model.parameters()).device
    out = [torch.sigmoid(model(lower_half(frames[i:i + batch]).to(device))) >= 0.5
           for i in range(0, len(frames), batch)]
    return torch.cat(out).cpu().numpy()


def score_classifier(model: AUClassifier, root, clips) -> dict:
    """Per-AU F1 and accuracy of the classifier on every real frame of ``clips`` (read one
    clip at a time)."""
    data = TalkingFaceDataset(root, clips, fields=("frames", "occurrence"))
    preds, truth = [], []
    for i in range(len(data)):
        item = data[i]
        preds.append(classify_frames(model, item["frames"]))
        truth.append(item["occurrence"].numpy().astype(bool))
    pred, true = np.concatenate(preds), np.concatenate(truth)
    return {"f1": f1_per_au(pred, true), "accuracy": accuracy_per_au(pred, true)}
