"""Training the lip-sync expert (:class:`coursekit.models.syncnet.SyncNet`) and checking it.

No pretrained SyncNet is available offline, so the course trains its own on real frames.

Training is contrastive (InfoNCE). A batch holds ``B`` random 5-frame windows of the training
clips. Each video window's own 5 MFCC windows are its positive; its negatives are

* the audio of the same clip shifted by ``min_offset`` to ``max_offset`` frames either way
  (``hard_negatives`` per window): the same voice and face, only the timing is wrong;
* the positives of the other windows of the batch (other clips, or the same clip at least
  ``min_offset`` frames away).

The loss is the cross-entropy of picking the positive among them from the cosine similarities
divided by ``temperature``, in both directions (video to audio with the hard negatives, audio
to video over the batch). The logged ``acc`` is the fraction of windows whose positive beats
all its hard negatives.

Checking it (:func:`evaluate_syncnet`): on held-out clips, :func:`coursekit.metrics.sync_scores`
of the real frames with their own audio (the offset should be 0), with another utterance's
audio (no sync: larger distance, lower confidence), and with the frames delayed by ``shift``
frames (the offset should be ``shift``).

Python use::

    from coursekit.data.dataset import load_index
    from coursekit.models.syncnet import SyncNetConfig
    from coursekit.train.audio2au import holdout_split
    from coursekit.train.syncnet import SyncNetTrainConfig, evaluate_syncnet, load_syncnet, train_syncnet

    train, held = holdout_split(load_index("proc64"))
    train_syncnet("proc64", train, "syncnet.pt", SyncNetConfig.tiny(), SyncNetTrainConfig())
    expert, ckpt = load_syncnet("syncnet.pt")
    print(evaluate_syncnet(expert, "proc64", held, (ckpt["mfcc_mean"], ckpt["mfcc_std"]))["summary"])
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from ..data.dataset import FIELD_FILES, mfcc_stats
from ..evaluate.rows import fit_length, shuffle_partners  # noqa: F401 (fit_length re-exported)
from ..metrics import sync_scores
from ..models.syncnet import SyncNet, SyncNetConfig
from ..checkpoint import load_checkpoint
from .common import CSVLogger, pick_device, save_checkpoint, seed_everything

KIND = "coursekit-syncnet"


@dataclass
class SyncNetTrainConfig:
    """How the sync expert is trained.

    steps: optimiser steps (or fewer, when ``max_minutes`` runs out first).
    batch_size: video windows per step (``B``). hard_negatives: shifted audio windows of the
        same clip per video window, shifts drawn uniformly from ``min_offset .. max_offset``
        frames either way (within the clip).
    temperature: the InfoNCE softmax temperature on cosine similarities.
    lr, weight_decay: AdamW; the rate falls along a half cosine to ``lr * min_lr_fraction``
        over the run's progress (the larger of steps done / ``steps`` and time spent /
        ``max_minutes``).
    flip: mirror half of the video windows left-right (a mirrored mouth says the same).
    noise: std of Gaussian noise added to the frames in [-1, 1] (generated frames are not crisp).
    num_threads: ``torch.set_num_threads`` for the run (None = leave as is).
    log_every: steps per row of the CSV log / the history (mean loss and acc of those steps).
    """

    steps: int = 1000
    batch_size: int = 64
    hard_negatives: int = 4
    min_offset: int = 3
    max_offset: int = 15
    temperature: float = 0.1
    lr: float = 1e-3
    min_lr_fraction: float = 0.05
    weight_decay: float = 1e-4
    flip: bool = True
    noise: float = 0.02
    max_minutes: float | None = None
    seed: int = 0
    device: str = "cpu"
    num_threads: int | None = None
    log_every: int = 25


# ----------------------------------------------------------------------------- data


def _folder(clip: dict, root) -> Path:
    return Path(clip["path"]) if "path" in clip else Path(root) / clip["dir"]


def load_clip(root, clip: dict, stats=None) -> tuple[torch.Tensor, torch.Tensor]:
    """One clip's ``frames (T, 3, S, S)`` float in [-1, 1] and ``mfcc (T, 12, 28)``
    (normalised with ``stats = (mean, std)`` when given)."""
    folder = _folder(clip, root)
    frames = np.load(folder / FIELD_FILES["frames"])
    mfcc = np.load(folder / FIELD_FILES["mfcc"]).astype(np.float32)
    if stats is not None:
        mean, std = (np.asarray(s, np.float32).reshape(-1, 1) for s in stats)
        mfcc = (mfcc - mean) / std
    img = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    return img.contiguous(), torch.from_numpy(mfcc)


class _Windows:
    """The training clips in memory: lower faces as uint8 ``(T, S/2, S, 3)``, normalised MFCCs,
    and every (clip, first frame) of a ``context``-frame window."""

    def __init__(self, root, clips, stats, context: int, min_offset: int):
        self.video, self.audio, pairs = [], [], []
        mean, std = (np.asarray(s, np.float32).reshape(-1, 1) for s in stats)
        for clip in clips:
            folder = _folder(clip, root)
            frames = np.load(folder / FIELD_FILES["frames"], mmap_mode="r")
            n_win = frames.shape[0] - context + 1
            if n_win <= min_offset:  # no shifted negative fits
                continue
            half = frames.shape[1] // 2
            self.video.append(torch.from_numpy(np.ascontiguousarray(frames[:, half:])))
            mfcc = (np.load(folder / FIELD_FILES["mfcc"]).astype(np.float32) - mean) / std
            self.audio.append(torch.from_numpy(mfcc))
            pairs += [(len(self.video) - 1, i) for i in range(n_win)]
        if not pairs:
            raise ValueError(f"no clip has enough frames for {context}-frame windows "
                             f"{min_offset} frames apart")
        self.pairs = np.asarray(pairs, dtype=np.int64)
        self.context = context

    def n_windows(self, c: int) -> int:
        return self.video[c].shape[0] - self.context + 1

    def video_batch(self, idx) -> torch.Tensor:
        """``(B, K, 3, S/2, S)`` float in [-1, 1] for ``(clip, start)`` pairs."""
        k = self.context
        x = torch.stack([self.video[c][i:i + k] for c, i in idx])
        return x.permute(0, 1, 4, 2, 3).float() / 127.5 - 1.0

    def audio_batch(self, idx) -> torch.Tensor:
        """``(B, K, 12, 28)`` normalised MFCC windows for ``(clip, start)`` pairs."""
        k = self.context
        return torch.stack([self.audio[c][i:i + k] for c, i in idx])


def _shifted(data: _Windows, idx: np.ndarray, n: int, lo: int, hi: int,
             rng: np.random.Generator) -> np.ndarray:
    """``n`` shifted starts per pair: ``(B, n, 2)`` ``(clip, start + d)``, ``lo <= |d| <= hi``,
    inside the clip (drawn with replacement)."""
    out = np.empty((len(idx), n, 2), dtype=np.int64)
    for b, (c, i) in enumerate(idx):
        w = data.n_windows(c)
        ok = [j for j in range(max(0, i - hi), min(w, i + hi + 1)) if abs(j - i) >= lo]
        out[b, :, 0] = c
        out[b, :, 1] = rng.choice(ok, size=n)
    return out


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


def train_syncnet(root: str | Path, clips: list[dict], out_path: str | Path,
                  model_cfg: SyncNetConfig | None = None, cfg: SyncNetTrainConfig | None = None,
                  *, progress: bool = True, stats=None, log_path: str | Path | None = None) -> dict:
    """Train a sync expert on the real frames of ``clips`` and save it to ``out_path``.

    stats: MFCC ``(mean, std)``; by default :func:`coursekit.data.dataset.mfcc_stats` of
    ``clips``. The checkpoint (atomic, ``weights_only``) holds ``kind``, ``model``,
    ``model_config``, ``train_config``, ``mfcc_mean``/``mfcc_std`` ``(12, 1)``, ``history``
    (``{"step", "loss", "acc"}`` lists), ``clips`` (``speaker/utt`` keys), ``steps``,
    ``seconds``. Returns ``{"checkpoint": path, "history": ..., "steps", "seconds"}``.
    """
    from tqdm.auto import tqdm

    model_cfg = model_cfg or SyncNetConfig.tiny()
    cfg = cfg or SyncNetTrainConfig()
    if not 1 <= cfg.min_offset <= cfg.max_offset:
        raise ValueError(f"need 1 <= min_offset <= max_offset, got {cfg.min_offset}, "
                         f"{cfg.max_offset}")
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    seed_everything(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    device = pick_device(cfg.device)
    stats = mfcc_stats(clips, root) if stats is None else stats
    data = _Windows(root, clips, stats, model_cfg.context, cfg.min_offset)
    model = SyncNet(model_cfg).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    history = {"step": [], "loss": [], "acc": []}
    logger = CSVLogger(log_path) if log_path else None
    start, sums, step = time.time(), [0.0, 0.0, 0], 0
    bar = tqdm(total=cfg.steps, desc="SyncNet", disable=not progress)
    try:
        while step < cfg.steps:
            elapsed = (time.time() - start) / 60
            if cfg.max_minutes is not None and elapsed > cfg.max_minutes:
                break
            done = max(step / cfg.steps, elapsed / cfg.max_minutes if cfg.max_minutes else 0.0)
            cosine = 0.5 * (1 + math.cos(math.pi * min(done, 1.0)))
            scale = cfg.min_lr_fraction + (1 - cfg.min_lr_fraction) * cosine
            for group in opt.param_groups:
                group["lr"] = cfg.lr * scale
            idx = data.pairs[rng.integers(len(data.pairs), size=cfg.batch_size)]
            hard_idx = _shifted(data, idx, cfg.hard_negatives, cfg.min_offset, cfg.max_offset, rng)
            video = data.video_batch(idx)
            if cfg.flip:
                mirror = torch.from_numpy(rng.random(len(idx)) < 0.5)
                video[mirror] = video[mirror].flip(-1)
            if cfg.noise:
                video = video + cfg.noise * torch.randn_like(video)
            audio = data.audio_batch(np.concatenate([idx, hard_idx.reshape(-1, 2)]))
            same = ((idx[:, None, 0] == idx[None, :, 0])
                    & (np.abs(idx[:, None, 1] - idx[None, :, 1]) < cfg.min_offset))
            model.train()
            v = model.embed_video(video.to(device))
            a = model.embed_audio(audio.to(device))
            b = len(idx)
            loss, acc = contrastive_loss(v, a[:b], a[b:].reshape(b, cfg.hard_negatives, -1),
                                         torch.from_numpy(same).to(device), cfg.temperature)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            sums = [sums[0] + loss.item(), sums[1] + acc.item(), sums[2] + 1]
            if step % cfg.log_every == 0 or step == cfg.steps:
                row = {"step": step, "loss": sums[0] / sums[2], "acc": sums[1] / sums[2]}
                for key, value in row.items():
                    history[key].append(value)
                if logger:
                    logger.log(**row, lr=cfg.lr * scale, seconds=time.time() - start)
                bar.set_postfix(loss=f"{row['loss']:.3f}", acc=f"{row['acc']:.2f}")
                sums = [0.0, 0.0, 0]
            bar.update(1)
    finally:
        bar.close()
        if logger:
            logger.close()
    seconds = time.time() - start
    path = save_checkpoint(out_path, kind=KIND, model=model.cpu().state_dict(),
                           model_config=asdict(model_cfg), train_config=asdict(cfg),
                           mfcc_mean=np.asarray(stats[0], np.float32).reshape(-1, 1),
                           mfcc_std=np.asarray(stats[1], np.float32).reshape(-1, 1),
                           history=history, clips=[f"{c['speaker']}/{c['utt']}" for c in clips],
                           steps=step, seconds=seconds)
    return {"checkpoint": path, "history": history, "steps": step, "seconds": seconds}


def load_syncnet(path: str | Path, device: str = "cpu") -> tuple[SyncNet, dict]:
    """``(expert in eval mode, its checkpoint's meta)``; the meta's ``mfcc_mean`` and
    ``mfcc_std`` ``(12, 1)`` normalise the MFCCs the expert is given."""
    loaded = load_checkpoint(path, device, kind="syncnet")
    return loaded.model, loaded.meta


# ----------------------------------------------------------------------------- checking


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
    loaded = [load_clip(root, c, stats) for c in clips]
    expected = {"real": 0, "shuffled": 0, "shifted": shift}
    out = {"clips": [f"{c['speaker']}/{c['utt']}" for c in clips],
           **{name: [] for name in expected}}
    partners = shuffle_partners(clips)
    for n, (frames, mfcc) in enumerate(loaded):
        other = fit_length(loaded[partners[n]][1], len(mfcc))
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
