"""Training the lip-sync expert (:class:`coursekit.models.syncnet.SyncNet`) and checking it.

No pretrained SyncNet is available offline, so the course trains its own on real frames.

Data (:class:`SyncWindows`): an epoch visits every ``context``-frame window of the training
clips once, read lazily from the memory-mapped crops and MFCCs of the processed dataset (RAM
holds a batch, not the corpus); what an item draws (its mirroring, its shifted negatives)
comes from ``(seed, epoch, index)``, so a resumed run replays an uninterrupted one.

Training is contrastive (InfoNCE). A batch holds ``B`` windows. Each video window's own
MFCC windows are its positive; its negatives are

* the audio of the same clip shifted by ``min_offset`` to ``max_offset`` frames either way
  (``hard_negatives`` per window): the same voice and face, only the timing is wrong;
* the positives of the other windows of the batch (other clips, or the same clip at least
  ``min_offset`` frames away).

The loss is the cross-entropy of picking the positive among them from the cosine similarities
divided by ``temperature``, in both directions (video to audio with the hard negatives, audio
to video over the batch). The logged ``acc`` is the fraction of windows whose positive beats
all its hard negatives. The loop, schedule, checkpoints and exact resume are
:class:`~coursekit.train.trainer.Trainer`'s; the checkpoint (kind ``"syncnet"``) keeps
``mfcc_mean`` / ``mfcc_std`` ``(12, 1)``, ``clips`` and ``history`` in its ``meta``.

Checking it (:func:`evaluate_syncnet`): on held-out clips, :func:`coursekit.metrics.sync_scores`
of the real frames with their own audio (the offset should be 0), with another utterance's
audio (no sync: larger distance, lower confidence), and with the frames delayed by ``shift``
frames (the offset should be ``shift``).

Python use (or ``coursekit train syncnet tiny --data proc64 --out syncnet.pt``)::

    from coursekit.data.splits import load_split
    from coursekit.models.syncnet import SyncNetConfig
    from coursekit.train.syncnet import (SyncNetTrainConfig, evaluate_syncnet, load_syncnet,
                                       train_syncnet)

    split = load_split("proc64")                   # every 5th utterance held out
    train_syncnet("proc64", split.train, "syncnet.pt", SyncNetConfig.tiny(),
                  SyncNetTrainConfig.tiny())
    expert, meta = load_syncnet("syncnet.pt")
    stats = (meta["mfcc_mean"], meta["mfcc_std"])
    print(evaluate_syncnet(expert, "proc64", split.heldout, stats)["summary"])
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch.nn import functional as F
from torch.utils.data import Dataset, default_collate

from ..checkpoint import load_checkpoint
from ..data.dataset import FIELD_FILES, mfcc_stats
from ..data.splits import clip_key
from ..evaluate.rows import fit_length, shuffle_partners  # noqa: F401 (fit_length re-exported)
from ..metrics import sync_scores
from ..models.syncnet import SyncNet, SyncNetConfig
from ..presets import Presets
from .au_classifier import clip_folder, crop_size
from .common import read_csv_log, seed_everything
from .trainer import Trainer, TrainerConfig


@dataclass
class SyncNetTrainConfig(Presets, TrainerConfig):
    """:class:`~coursekit.train.trainer.TrainerConfig` plus the expert's own settings.

    hard_negatives: shifted audio windows of the same clip per video window, shifts drawn
        uniformly from ``min_offset .. max_offset`` frames either way (within the clip).
    temperature: the InfoNCE softmax temperature on cosine similarities.
    flip: mirror half of the video windows left-right (a mirrored mouth says the same).
    noise: std of Gaussian noise added to the frames in [-1, 1] (generated frames are not crisp).
    log_every: optimizer steps per entry of the checkpoint's ``history`` (means of those steps).

    ``paper()``: 10 epochs over every window of the training clips, no time cap.
    ``tiny()``: the samples on a CPU: 600 steps of 64 windows (about 17 epochs of spk1-spk4).
    """

    TINY: ClassVar[dict] = dict(max_steps=600, ckpt_every=100, device="cpu")

    batch_size: int = 64
    epochs: int = 10
    lr: float = 1e-3
    weight_decay: float = 1e-4
    lr_schedule: str = "cosine"
    min_lr_fraction: float = 0.05
    ckpt_every: int = 500
    hard_negatives: int = 4         # shifted audio windows per video window
    min_offset: int = 3
    max_offset: int = 15
    temperature: float = 0.1
    flip: bool = True
    noise: float = 0.02
    log_every: int = 25


# ----------------------------------------------------------------------------- data


def _stats(stats) -> tuple[np.ndarray, np.ndarray]:
    mean, std = (np.asarray(s, np.float32).reshape(-1, 1) for s in stats)
    return mean, std


class SyncWindows(Dataset):
    """Every ``context``-frame window of ``clips`` (clips with no shifted negative left out).

    Item ``i`` (read through memory maps; random choices from ``(seed, epoch, i)``):
    ``video (K, 3, S/2, S)`` lower faces in [-1, 1] (mirrored left-right with probability
    1/2 when ``flip``); ``audio (K, 12, 28)`` the MFCC windows of the same frames, normalised
    with ``stats = (mean, std)``; ``hard (H, K, 12, 28)`` the same clip's MFCC windows
    shifted by ``min_offset .. max_offset`` frames either way; ``clip`` (index into
    :attr:`folders`) and ``start`` (first frame). Batch with ``torch``'s ``default_collate``.
    """

    def __init__(self, root, clips: list[dict], stats, *, context: int = 5,
                 hard_negatives: int = 4, min_offset: int = 3, max_offset: int = 15,
                 flip: bool = True, seed: int = 0):
        if not 1 <= min_offset <= max_offset:
            raise ValueError(f"need 1 <= min_offset <= max_offset, got {min_offset}, {max_offset}")
        self.folders, counts = [], []
        for clip in clips:
            n_win = int(clip["n_frames"]) - context + 1
            if n_win > min_offset:  # else no shifted negative fits
                self.folders.append(clip_folder(root, clip))
                counts.append(n_win)
        if not counts:
            raise ValueError(f"{root}: no clip has enough frames for {context}-frame windows "
                             f"{min_offset} frames apart")
        self.n_windows = np.asarray(counts, dtype=np.int64)
        self._clip = np.repeat(np.arange(len(counts)), counts)
        self._start = np.concatenate([np.arange(c) for c in counts])
        self.mean, self.std = _stats(stats)
        self.context, self.hard_negatives, self.flip = context, hard_negatives, flip
        self.min_offset, self.max_offset, self.seed, self.epoch = min_offset, max_offset, seed, 0

    def __len__(self) -> int:
        return len(self._clip)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def shifted_starts(self, c: int, start: int, rng: np.random.Generator) -> np.ndarray:
        """``hard_negatives`` starts ``start + d``, ``min_offset <= |d| <= max_offset``,
        inside clip ``c`` (drawn with replacement)."""
        lo, hi = self.min_offset, self.max_offset
        js = np.arange(max(0, start - hi), min(int(self.n_windows[c]), start + hi + 1))
        return rng.choice(js[np.abs(js - start) >= lo], size=self.hard_negatives)

    def __getitem__(self, i: int) -> dict:
        c, s, k = int(self._clip[i]), int(self._start[i]), self.context
        rng = np.random.default_rng([int(self.seed), self.epoch, int(i)])
        frames = np.load(self.folders[c] / FIELD_FILES["frames"], mmap_mode="r")
        video = np.array(frames[s:s + k, frames.shape[1] // 2:])  # (K, S/2, S, 3) uint8
        if self.flip and rng.random() < 0.5:
            video = np.ascontiguousarray(video[:, :, ::-1])
        video = torch.from_numpy(video).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        mfcc = np.load(self.folders[c] / FIELD_FILES["mfcc"], mmap_mode="r")
        starts = [s, *self.shifted_starts(c, s, rng).tolist()]
        audio = np.stack([mfcc[j:j + k] for j in starts]).astype(np.float32)  # (1 + H, K, 12, 28)
        audio = torch.from_numpy((audio - self.mean) / self.std)
        return {"video": video, "audio": audio[0], "hard": audio[1:], "clip": c, "start": s}


# ----------------------------------------------------------------------------- training


def contrastive_loss(v: torch.Tensor, a: torch.Tensor, hard: torch.Tensor, same: torch.Tensor,
                     temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """InfoNCE of the sync expert.

    v, a: ``(B, D)`` unit video / aligned audio embeddings; hard: ``(B, H, D)`` shifted audio
    of the same clips; same: ``(B, B)`` bool, True where window ``j`` must not count as a
    negative of window ``i`` (the same clip, too close in time; the diagonal is ignored).
    Returns ``(loss, acc)``: the mean of both directions' cross-entropy, and the fraction of
    windows whose positive beats every hard negative.
    """
    b = v.shape[0]
    eye = torch.eye(b, dtype=torch.bool, device=v.device)
    batch = (v @ a.T / temperature).masked_fill(same & ~eye, float("-inf"))  # (B, B)
    shifted = torch.einsum("bd,bhd->bh", v, hard) / temperature  # (B, H)
    target = torch.arange(b, device=v.device)
    loss = 0.5 * (F.cross_entropy(torch.cat([batch, shifted], 1), target)
                  + F.cross_entropy(batch.T, target))
    acc = (batch.diagonal()[:, None] > shifted).all(1).float().mean()
    return loss, acc


def make_step_fn(cfg: SyncNetTrainConfig):
    """The :class:`.Trainer` step: a batch of :class:`SyncWindows` items -> (loss, {"acc"})."""

    def step_fn(model, batch, device):
        video = batch["video"].to(device)  # (B, K, 3, S/2, S)
        if cfg.noise:
            video = video + cfg.noise * torch.randn_like(video)
        b, h = batch["hard"].shape[:2]
        audio = torch.cat([batch["audio"], batch["hard"].flatten(0, 1)]).to(device)
        v, a = model(video, audio, paired=False)
        v, a = v.float(), a.float()
        clip, start = batch["clip"], batch["start"]
        near = (start[:, None] - start[None]).abs() < cfg.min_offset
        same = (clip[:, None] == clip[None]) & near  # (B, B): not a negative of each other
        loss, acc = contrastive_loss(v, a[:b], a[b:].view(b, h, -1), same.to(device),
                                   cfg.temperature)
        return loss, {"acc": float(acc)}

    return step_fn


def step_history(log_path, every: int) -> dict:
    """``{"step", "loss", "acc"}`` lists: means over each ``every`` steps of a
    :class:`.Trainer` log (the last group may be shorter)."""
    rows = read_csv_log(log_path)
    history = {"step": [], "loss": [], "acc": []}
    for g in range(0, len(rows), max(1, every)):
        group = rows[g:g + every]
        history["step"].append(int(group[-1]["step"]))
        for key in ("loss", "acc"):
            history[key].append(float(np.mean([r[key] for r in group])))
    return history


def train_syncnet(root: str | Path, clips: list[dict], out_path: str | Path,
                  model_cfg: SyncNetConfig | None = None, cfg: SyncNetTrainConfig | None = None,
                  *, progress: bool = True, stats=None, resume: bool = False,
                  half: bool = False, on_step=None) -> dict:
    """Train a sync expert on the real frames of ``clips`` and export it to ``out_path``.

    stats: MFCC ``(mean, std)``; by default :func:`coursekit.data.dataset.mfcc_stats` of
    ``clips``. ``model_cfg.image_size`` is set to the crops' size. The resumable state lives
    in the folder ``out_path`` without its suffix (``last.pt``, ``log.csv``; ``resume``
    continues it); ``on_step(step, trainer)``: the :class:`.Trainer` hook. The checkpoint
    (kind ``"syncnet"``, weights in fp16 when ``half``) keeps ``mfcc_mean`` / ``mfcc_std``
    ``(12, 1)``, ``clips`` (``speaker/utt`` keys) and ``history`` (:func:`step_history`)
    in its ``meta``. Returns ``{"checkpoint", "history", "steps",
    "seconds"}``.
    """
    cfg = cfg or SyncNetTrainConfig.tiny()
    model_cfg = dataclasses.replace(model_cfg or SyncNetConfig.tiny(),
                                  image_size=crop_size(root, clips))
    stats = _stats(mfcc_stats(clips, root) if stats is None else stats)
    data = SyncWindows(root, clips, stats, context=model_cfg.context,
                       hard_negatives=cfg.hard_negatives, min_offset=cfg.min_offset,
                       max_offset=cfg.max_offset, flip=cfg.flip, seed=cfg.seed)
    seed_everything(cfg.seed)  # the initial weights
    meta = {"mfcc_mean": stats[0], "mfcc_std": stats[1], "clips": [clip_key(c) for c in clips],
            "train_config": cfg}
    out = Path(out_path)
    trainer = Trainer(SyncNet(model_cfg), data, cfg, out.with_suffix(""),
                      step_fn=make_step_fn(cfg), kind="syncnet", model_config=model_cfg,
                      meta=meta, collate_fn=default_collate, progress=progress, desc="SyncNet",
                      on_step=on_step)
    result = trainer.fit(resume=resume)
    history = step_history(trainer.log_path, cfg.log_every) if trainer.is_main else {}
    if trainer.is_main:
        trainer.meta["history"] = history
        trainer.export(out, half=half)
    return {"checkpoint": out, "history": history, "steps": result["steps"],
            "seconds": result["seconds"]}


def load_syncnet(path: str | Path, device: str = "cpu") -> tuple[SyncNet, dict]:
    """``(expert in eval mode, its checkpoint's meta)``; the meta's ``mfcc_mean`` and
    ``mfcc_std`` ``(12, 1)`` normalise the MFCCs the expert is given."""
    loaded = load_checkpoint(path, device, kind="syncnet")
    return loaded.model, loaded.meta


# ----------------------------------------------------------------------------- checking


def load_mfcc(root, clip: dict, stats=None) -> torch.Tensor:
    """One clip's MFCC windows ``(T, 12, 28)`` (normalised with ``stats = (mean, std)``
    when given)."""
    mfcc = np.load(clip_folder(root, clip) / FIELD_FILES["mfcc"]).astype(np.float32)
    if stats is not None:
        mean, std = _stats(stats)
        mfcc = (mfcc - mean) / std
    return torch.from_numpy(mfcc)


def load_clip(root, clip: dict, stats=None) -> tuple[torch.Tensor, torch.Tensor]:
    """One clip's ``frames (T, 3, S, S)`` float in [-1, 1] and ``mfcc (T, 12, 28)``
    (:func:`load_mfcc`)."""
    frames = np.load(clip_folder(root, clip) / FIELD_FILES["frames"])
    img = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    return img.contiguous(), load_mfcc(root, clip, stats)


def shift_frames(frames: torch.Tensor, shift: int) -> torch.Tensor:
    """Delay the video by ``shift`` frames: frame ``t`` becomes frame ``t - shift`` (the first
    frame repeated at the start), so the video lags its audio by ``shift``; negative shifts
    advance it (the last frame repeated at the end). Same shape ``(T, ...)``."""
    if shift == 0:
        return frames.clone()
    t = torch.arange(len(frames)) - int(shift)
    return frames[t.clamp(0, len(frames) - 1)]


def evaluate_syncnet(expert: SyncNet, root, clips: list[dict], stats, *, shift: int = 5,
                     max_offset: int = 15, tolerance: int = 1) -> dict:
    """Sync scores of held-out clips in three conditions.

    * ``"real"``: the frames with their own audio (the offset should be 0);
    * ``"shuffled"``: the frames with another utterance's audio (the partner of
      :func:`~coursekit.evaluate.rows.shuffle_partners`, as in every table; cut or padded to
      length): no sync, so a larger LSE-D and a lower LSE-C;
    * ``"shifted"``: the frames delayed by ``shift`` (:func:`shift_frames`) with their own
      audio (the offset should be ``shift``).

    Returns ``{"clips": [keys], condition: [sync_scores dicts without the curves], ...,
    "summary": {condition: {"offset_ok": fraction of clips within ``tolerance`` of the
    expected offset, "distance": mean LSE-D, "confidence": mean LSE-C}}}``.
    """
    if len(clips) < 2:
        raise ValueError("evaluate_syncnet needs at least 2 clips (one's audio shuffles another's)")
    expected = {"real": 0, "shuffled": 0, "shifted": shift}
    out = {"clips": [clip_key(c) for c in clips],
           **{name: [] for name in expected}}
    partners = shuffle_partners(clips)
    for n, clip in enumerate(clips):  # one clip in memory at a time
        frames, mfcc = load_clip(root, clip, stats)
        other = fit_length(load_mfcc(root, clips[partners[n]], stats), len(mfcc))
        for name, (f, m) in {"real": (frames, mfcc), "shuffled": (frames, other),
                             "shifted": (shift_frames(frames, shift), mfcc)}.items():
            s = sync_scores(expert, f, m, max_offset=max_offset)
            out[name].append({k: s[k] for k in ("offset", "distance", "confidence")})
    out["summary"] = {
        name: {"offset_ok": float(np.mean([abs(r["offset"] - expected[name]) <= tolerance
                                         for r in out[name]])),
               "distance": float(np.mean([r["distance"] for r in out[name]])),
               "confidence": float(np.mean([r["confidence"] for r in out[name]]))}
        for name in expected}
    return out
