"""Pretraining the AU classifier: which speech AUs does a face show (lower half only)?

The classifier plays two roles. In training it supplies the AU loss: generated frames should
show the AUs of the real frames (paper eq. 5-7). In evaluation a *second* classifier, trained
the same way with another seed and never used as a loss (the "judge"), reads the AUs of
generated frames, so the model cannot have learned to please its own examiner.

It learns from real frames only: aligned crops of the processed dataset with their occurrence
labels, weighted BCE + weighted Dice with weights from the training set's occurrence rates.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..data.dataset import TalkingFaceDataset, collate
from ..losses import au_class_weights, au_loss
from ..metrics import accuracy_per_au, f1_per_au
from ..models.au_classifier import AUClassifier, lower_half
from ..models.config import AUClassifierConfig
from ..checkpoint import load_checkpoint
from .common import pick_device, save_checkpoint, seed_everything


@dataclass
class AUClassifierTrainConfig:
    """Optimisation settings (the network's own sizes are in ``AUClassifierConfig``)."""

    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-3
    max_minutes: float = 1.5
    seed: int = 0
    device: str = "cpu"


def _frames_and_labels(root, clips) -> tuple[torch.Tensor, torch.Tensor]:
    """All frames of ``clips`` as ``(N, 3, S, S)`` in [-1, 1] and occurrences ``(N, 5)``."""
    data = TalkingFaceDataset(root, clips, fields=("frames", "occurrence"))
    batch = collate([data[i] for i in range(len(data))])
    mask = batch["mask"].reshape(-1)
    frames = batch["frames"].flatten(0, 1)[mask]
    return frames, batch["occurrence"].flatten(0, 1)[mask]


def train_au_classifier(root: str | Path, clips: list[dict], out: str | Path,
                        model_cfg: AUClassifierConfig, cfg: AUClassifierTrainConfig | None = None,
                        *, progress: bool = True) -> Path:
    """Train on the real frames of ``clips``; writes and returns the checkpoint path."""
    from tqdm.auto import tqdm

    cfg = cfg or AUClassifierTrainConfig()
    seed_everything(cfg.seed)
    device = pick_device(cfg.device)
    frames, labels = _frames_and_labels(root, clips)
    images = lower_half(frames)
    rates = labels.float().mean(0)
    weights = au_class_weights(rates).to(device)
    model = AUClassifier(model_cfg).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    start = time.time()
    history = []
    bar = tqdm(range(cfg.epochs), desc="AU classifier", disable=not progress)
    for epoch in bar:
        order = torch.randperm(len(images), generator=gen)
        total = 0.0
        model.train()
        for i in range(0, len(order), cfg.batch_size):
            idx = order[i:i + cfg.batch_size]
            x = images[idx].to(device)
            x = x + 0.03 * torch.randn_like(x)  # a little noise: generated frames are not crisp
            loss = au_loss(model(x), labels[idx].float().to(device), weights)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        history.append(total / len(images))
        bar.set_postfix(loss=f"{history[-1]:.3f}")
        if (time.time() - start) / 60 > cfg.max_minutes:
            break
    path = Path(out)
    save_checkpoint(path, model=model.state_dict(), model_config=asdict(model_cfg),
                    train_config=asdict(cfg), occurrence_rates=rates, history=history,
                    seconds=time.time() - start)
    return path


def load_au_classifier(path: str | Path, device: str = "cpu") -> AUClassifier:
    """A trained classifier in eval mode (``weights_only`` checkpoint)."""
    return load_checkpoint(path, device, kind="au_classifier").model


@torch.no_grad()
def classify_frames(model: AUClassifier, frames: torch.Tensor, batch: int = 256) -> np.ndarray:
    """Occurrence (probability >= 0.5) of the five AUs: ``(N, 3, S, S)`` -> ``(N, 5)`` bool."""
    model.eval()
    out = [torch.sigmoid(model(lower_half(frames[i:i + batch]))) >= 0.5
           for i in range(0, len(frames), batch)]
    return torch.cat(out).cpu().numpy()


def score_classifier(model: AUClassifier, root, clips) -> dict:
    """Per-AU F1 and accuracy of the classifier on the real frames of ``clips``."""
    frames, labels = _frames_and_labels(root, clips)
    pred = classify_frames(model, frames)
    true = labels.numpy().astype(bool)
    return {"f1": f1_per_au(pred, true), "accuracy": accuracy_per_au(pred, true)}
