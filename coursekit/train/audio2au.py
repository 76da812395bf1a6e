"""Pre-training the audio-to-AU module (paper section 3.1, Fig. 2) and measuring it honestly.

Training: :class:`coursekit.models.Audio2AU` (five nets, one per AU) learns AU *occurrence*
from the per-frame MFCC windows of a processed dataset with the paper's AU loss (eq. 5-7:
weighted BCE + weighted soft Dice, the weights from the training clips' occurrence rates).
It runs on the course's one loop, :class:`~coursekit.train.trainer.Trainer`: an epoch is
every ``seq_len``-frame window of the training clips (:class:`~coursekit.data.windows.FrameWindows`),
one parameter group per AU net (each net's gradient norm clipped on its own), a cosine
learning rate that also follows the time budget. MFCCs are normalised with the training
clips' statistics, which the checkpoint keeps. After each epoch a validation split scores
the nets, and **each AU net keeps its best epoch's weights** (that state is part of the
resumable ``last.pt``, so a resumed run ends exactly as an uninterrupted one).

Evaluation (:func:`~coursekit.evaluate.audio2au.evaluate_audio2au`, re-exported here with
:func:`results_table`): per-AU F1 and accuracy over every frame of held-out clips, beside the
baselines of :mod:`coursekit.evaluate.rows` (shuffled audio, position only, majority).

Python use::

    from coursekit.train.audio2au import Audio2AUTrainConfig, train_audio2au, evaluate_audio2au
    from coursekit.train.audio2au import holdout_split, results_table
    from coursekit.data.dataset import load_index

    train, held = holdout_split(load_index("proc"))          # every 5th utterance held out
    summary = train_audio2au("proc", "runs/a2u", Audio2AUTrainConfig(max_minutes=10), train)
    results = evaluate_audio2au(summary["checkpoint"], "proc", held)
    print(results_table(results))

From the command line, the ``coursekit`` CLI calls :func:`cli`.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..au import AUS
from ..checkpoint import load_checkpoint
from ..data.dataset import load_index, mfcc_stats
from ..data.splits import (clip_key, hashed_utterance_split, load_split, make_split,
                           split_settings)
from ..data.windows import FrameWindows
from ..evaluate.audio2au import evaluate_audio2au, results_table  # noqa: F401 (re-exported)
from ..evaluate.rows import (clip_array, fit_length, label_priors,  # noqa: F401 (re-exported)
                             position_predict, shuffle_partners)
from ..losses import au_class_weights, weighted_bce, weighted_dice
from ..metrics import binarize, f1_per_au
from ..models import Audio2AU, Audio2AUConfig
from .audio_augment import VoiceAugmentConfig, augment_voices
from .common import CSVLogger, seed_everything
from .trainer import Trainer, TrainerConfig

CHECKPOINT_NAME = "audio2au.pt"
KIND = "audio2au"

MODEL_PRESETS = {
    "paper": {},
    "cpu": {"conv_channels": (16, 32), "lstm_hidden": 64},
}
""":class:`Audio2AUConfig` overrides for ``Audio2AUTrainConfig.model``. ``"paper"``: the
defaults (5.5 M parameters for the five nets). ``"cpu"``: the same structure and the same
64-d AU features with thinner convs and LSTMs (1.45 M parameters, about 3.5x faster a step
on a CPU); a talker using it needs ``TalkerConfig(audio2au=Audio2AUConfig(**preset))``."""


@dataclass
class Audio2AUTrainConfig(TrainerConfig):
    """How Audio2AU is pre-trained: :class:`~coursekit.train.trainer.TrainerConfig`'s fields
    (Audio2AU's defaults below) and its own.

    batch_size: windows per step. epochs: passes over every ``seq_len``-frame window of the
        training clips (:class:`~coursekit.data.windows.FrameWindows`).
    lr, weight_decay: Adam's (AdamW; ``weight_decay=0`` is plain Adam).
    grad_clip: gradient-norm clipping of **each AU network** on its own (``clip_per_group``:
        the rare AUs' large loss weights stay their own); None or 0 turns it off.
    lr_schedule: ``"cosine"``: the learning rate falls from ``lr`` to ``lr * min_lr_fraction``
        along a half cosine of the run's progress, the larger of steps done / all steps and
        time spent / ``max_minutes`` (a time-limited run still ends at a low rate);
        ``"constant"``: ``lr`` throughout.
    max_minutes: training time budget; training stops after the step that exceeds it.
    device: ``"auto"``, ``"cpu"``, ``"cuda"``, ... (``"cpu"`` never uses a GPU).

    seq_len: frames per training window (GRID clips have 75; shorter clips are padded and
        masked). dice_eps: eq. 6's smoothing term; min_rate: floor of the occurrence rates in
        eq. 5's weights (:func:`coursekit.losses.au_class_weights`).
    val_fraction: fraction of the training utterances kept aside (stable hash per clip) to
        pick, **per AU network**, the epoch with the best validation F1 (ties: lower BCE);
        0 = keep the last epoch. threshold: on the probabilities for the validation F1.
    model: :class:`coursekit.models.Audio2AUConfig` fields to override (a plain dict).
    channels_last: keep the conv layers in channels-last memory format (the same maths,
        about 1.6x faster a step on a CPU; the checkpoint is saved in the default format).
    progress: show a progress bar.
    voices: augmented copies of the training clips, other voices heard in the same speech
        (:class:`~coursekit.train.audio_augment.VoiceAugmentConfig` fields, a plain dict,
        e.g. ``{"copies": 4}``; None = off), written under ``voice_dir`` (None: ``OUT/voices``).
    """

    batch_size: int = 16
    epochs: int = 60
    lr: float = 1e-3
    lr_schedule: str = "cosine"
    min_lr_fraction: float = 0.05
    grad_clip: float | None = 5.0
    clip_per_group: bool = True
    seq_len: int = 50
    dice_eps: float = 1.0
    min_rate: float = 0.01
    val_fraction: float = 0.1
    threshold: float = 0.5
    model: dict = field(default_factory=dict)
    channels_last: bool = True
    progress: bool = True
    voices: dict | None = None
    voice_dir: str | None = None

    def __post_init__(self):
        if not self.grad_clip:
            self.grad_clip = None  # 0 turns clipping off


# ----------------------------------------------------------------------------- data helpers


def holdout_split(clips: list[dict], every: int = 5, offset: int = 4) -> tuple[list, list]:
    """Utterance-disjoint ``(train, held_out)``: per speaker, clips sorted by utterance name,
    those at positions ``i % every == offset`` are held out
    (:func:`coursekit.data.splits.make_split`). Both lists sorted by speaker/utt."""
    split = make_split(clips, holdout_every=every, holdout_offset=offset)
    return split.train, split.test


def _model_config(d: dict) -> Audio2AUConfig:
    """An :class:`Audio2AUConfig` from a plain dict (lists back to tuples)."""
    names = {f.name for f in dataclasses.fields(Audio2AUConfig)}
    unknown = set(d) - names
    if unknown:
        raise ValueError(f"unknown Audio2AUConfig fields {sorted(unknown)}; known: {sorted(names)}")
    return Audio2AUConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


@torch.no_grad()
def predict_clips(model: Audio2AU, root, clips: list[dict], mfcc_mean, mfcc_std,
                  device="cpu", mfcc_override: list[np.ndarray] | None = None) -> list[np.ndarray]:
    """Occurrence probabilities ``(T_i, 5)`` for each whole clip (one clip per forward pass,
    so no padding reaches the bidirectional LSTM). ``mfcc_override[i]`` replaces clip ``i``'s
    raw MFCCs ``(T_i, 12, 28)`` (the shuffled-audio baseline)."""
    model.eval()
    mean = np.asarray(mfcc_mean, np.float32).reshape(1, -1, 1)
    std = np.asarray(mfcc_std, np.float32).reshape(1, -1, 1)
    out = []
    for i, clip in enumerate(clips):
        raw = clip_array(clip, root, "mfcc") if mfcc_override is None else mfcc_override[i]
        x = torch.from_numpy(((raw - mean) / std).astype(np.float32))[None].to(device)
        out.append(torch.sigmoid(model(x))[0].cpu().numpy())
    return out


def _val_scores(model, root, clips, stats, device, threshold) -> tuple[np.ndarray, np.ndarray]:
    """Per-AU validation ``(F1 (5,), BCE (5,))`` over every frame of ``clips``."""
    probs = np.concatenate(predict_clips(model, root, clips, *stats, device=device))
    true = np.concatenate([clip_array(c, root, "occurrence") for c in clips]).astype(bool)
    p = np.clip(probs, 1e-6, 1 - 1e-6)
    bce = -np.where(true, np.log(p), np.log(1 - p)).mean(0)
    return f1_per_au(binarize(probs, threshold), true), bce


# ----------------------------------------------------------------------------- training


class _Epochs:
    """The Trainer hooks of one run: the loss, the per-epoch rows and each AU net's best epoch.

    Their state lives in ``trainer.extra`` (saved in ``last.pt``, restored on resume):
    ``sums`` ``[bce, dice, steps]`` of the epoch so far, ``history`` (one row per epoch),
    ``best`` ``[val F1, -val BCE]`` per net (compared in that order), ``best_epoch`` (1-based)
    per net and ``weights``: each net's tensors at its best epoch.
    """

    def __init__(self, cfg: Audio2AUTrainConfig, root: Path, val_clips: list[dict], stats,
                 au_weights: torch.Tensor, on_step=None):
        self.cfg, self.root, self.val_clips, self.stats = cfg, root, val_clips, stats
        self.au_weights, self.user_on_step = au_weights, on_step
        self._pending = [0.0, 0.0, 0]  # this optimizer step's micro-batches

    def step_fn(self, model, batch: dict, device: torch.device):
        """Eq. 5-7 on a batch: ``mfcc (B, T, 12, 28)``, ``occurrence (B, T, 5)``, ``mask (B, T)``."""
        mfcc, target = batch["mfcc"].to(device), batch["occurrence"].to(device)
        mask, weights = batch["mask"].to(device), self.au_weights.to(device)
        logits = model(mfcc)
        bce = weighted_bce(logits, target, weights, mask)
        dice = weighted_dice(torch.sigmoid(logits), target, weights, self.cfg.dice_eps, mask)
        b, d = float(bce.detach()), float(dice.detach())
        self._pending = [self._pending[0] + b, self._pending[1] + d, self._pending[2] + 1]
        return bce + dice, {"bce": b, "dice": d}

    def on_step(self, step: int, trainer: Trainer) -> None:
        b, d, n = self._pending
        self._pending = [0.0, 0.0, 0]
        sums = trainer.extra.setdefault("sums", [0.0, 0.0, 0])
        if n:
            trainer.extra["sums"] = [sums[0] + b / n, sums[1] + d / n, sums[2] + 1]
        if self.user_on_step is not None:
            self.user_on_step(step, trainer)

    def on_epoch_end(self, epoch: int, trainer: Trainer) -> None:
        self.close_epoch(epoch, trainer, trainer.extra)

    def close_epoch(self, epoch: int, trainer: Trainer, state: dict) -> None:
        """Score epoch ``epoch`` (0-based) into ``state``: its row, and the nets it improved."""
        model, n_aus = trainer.model, len(trainer.model.nets)
        bce, dice, n = state.pop("sums", [0.0, 0.0, 0])
        n = max(n, 1)
        row = {"epoch": epoch + 1, "loss": (bce + dice) / n, "bce": bce / n, "dice": dice / n,
               "lr": trainer.optimizer.param_groups[0]["lr"], "val_f1": float("nan")}
        best = state.setdefault("best", [[-1.0, float("-inf")] for _ in range(n_aus)])
        improved = list(range(n_aus))  # without validation: the last epoch wins
        if self.val_clips:
            f1, val_bce = _val_scores(model, self.root, self.val_clips, self.stats,
                                      trainer.device, self.cfg.threshold)
            row["val_f1"] = float(f1.mean())
            row.update({f"val_f1_{name}": float(v) for name, v in zip(AUS, f1)})
            scores = [[float(f1[i]), -float(val_bce[i])] for i in range(n_aus)]
            improved = [i for i in range(n_aus) if scores[i] >= list(best[i])]
            for i in improved:
                best[i] = scores[i]
        best_epoch = state.setdefault("best_epoch", [0] * n_aus)
        weights = state.setdefault("weights", {})
        current = model.state_dict()
        for i in improved:  # the nets are independent: each keeps its own best epoch
            best_epoch[i] = epoch + 1
            weights.update({k: v.detach().cpu().contiguous().clone()
                            for k, v in current.items() if k.startswith(f"nets.{i}.")})
        row["seconds"] = round(trainer.seconds, 2)
        state.setdefault("history", []).append(row)

    def final_state(self, trainer: Trainer) -> dict:
        """The hooks' state at the end; an epoch cut short (time, ``should_stop``) is scored
        too, on a copy (``last.pt`` keeps the state a resumed run continues from)."""
        state = trainer.extra
        if (trainer.step * trainer.cfg.grad_accum) % trainer.batches_per_epoch:
            state = copy.deepcopy(state)
            self.close_epoch(trainer.epoch, trainer, state)
        return state


def train_audio2au(data_root, out_dir, cfg: Audio2AUTrainConfig | None = None,
                   clips: list[dict] | None = None, val_clips: list[dict] | None = None, *,
                   resume: bool = False, on_step=None) -> dict:
    """Pre-train Audio2AU on a processed dataset; writes ``out_dir/audio2au.pt``,
    ``out_dir/audio2au_log.csv`` (one row per epoch) and the Trainer's folder
    ``out_dir/audio2au/`` (``last.pt``, ``log.csv``: one row per step).

    Args:
        data_root: processed dataset (``coursekit preprocess``).
        out_dir: output folder.
        cfg: :class:`Audio2AUTrainConfig`.
        clips: training clips (from :func:`coursekit.data.load_index`); all by default.
            Keep the test clips out (:func:`holdout_split`).
        val_clips: validation clips for the epoch choice; None splits ``cfg.val_fraction``
            of ``clips`` off by utterance (stable hash), when there are at least 10.
        resume: continue from ``out_dir/audio2au/last.pt`` when it exists.
        on_step: ``hook(step, trainer)`` after each optimizer step (e.g. to stop early).

    The checkpoint (:mod:`coursekit.checkpoint`, kind ``"audio2au"``, loads with
    :func:`load_audio2au`) holds each AU net's best-epoch weights, the model config, and in
    its ``meta``: ``mfcc_mean`` / ``mfcc_std`` ``(12, 1)``, ``au_weights (5,)``, the label
    ``priors`` (:func:`label_priors`), ``history``, ``best_epoch`` (per AU), ``train_clips``,
    ``val_clips``, ``aus`` and ``train_config``. Returns ``{"checkpoint", "history",
    "best_epoch", "epochs_run", "stopped" ("epochs", "steps", "time" or "hook"), "seconds",
    "n_train", "n_val"}``.
    """
    cfg = cfg or Audio2AUTrainConfig()
    start = time.time()
    root = Path(data_root).expanduser().resolve()
    out_dir = Path(out_dir)
    clips = list(load_index(root) if clips is None else clips)
    if val_clips is None and cfg.val_fraction > 0 and len(clips) >= 10:
        drawn = hashed_utterance_split(clips, test=cfg.val_fraction, seed=cfg.seed)
        clips, val_clips = drawn.train, drawn.test
    val_clips = list(val_clips or [])
    if not clips:
        raise ValueError(f"{root}: no training clips")
    if cfg.voices:  # the validation clips stay as recorded
        clips += augment_voices(root, clips, cfg.voice_dir or out_dir / "voices",
                                VoiceAugmentConfig(**cfg.voices))

    stats = mfcc_stats(clips, root)
    priors = label_priors(root, clips)
    au_weights = au_class_weights(priors["rates"], cfg.min_rate)
    model_cfg = _model_config(cfg.model)
    seed_everything(cfg.seed)  # the initial weights
    model = Audio2AU(model_cfg)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    data = FrameWindows(root, clips, cfg.seq_len, seed=cfg.seed, fields=("mfcc", "occurrence"),
                        normalize_mfcc=stats)
    hooks = _Epochs(cfg, root, val_clips, stats, au_weights, on_step)
    meta = {"aus": list(AUS), "mfcc_mean": stats[0], "mfcc_std": stats[1],
            "au_weights": au_weights, "priors": priors, "train_config": asdict(cfg),
            "train_clips": [clip_key(c) for c in clips],
            "val_clips": [clip_key(c) for c in val_clips]}
    trainer = Trainer(model, data, cfg, out_dir / "audio2au", step_fn=hooks.step_fn, kind=KIND,
                      model_config=model_cfg, meta=meta,
                      param_groups=lambda m: [{"params": list(net.parameters())} for net in m.nets],
                      on_step=hooks.on_step, on_epoch_end=hooks.on_epoch_end,
                      progress=cfg.progress, desc="audio2au")
    trainer.fit(resume=resume)

    state = hooks.final_state(trainer)
    history, n_aus = state.get("history", []), len(model.nets)
    best_epoch = list(state.get("best_epoch", [0] * n_aus))
    best = state.get("weights", {})
    weights = {k: best.get(k, v.detach().cpu().contiguous()) for k, v in model.state_dict().items()}
    ckpt_path = out_dir / CHECKPOINT_NAME
    if trainer.is_main:
        trainer.meta.update(history=history, best_epoch=best_epoch)
        trainer.export(ckpt_path, model=weights)
        with CSVLogger(out_dir / "audio2au_log.csv") as log:
            for row in history:
                log.log(**row)
    if trainer.step >= trainer.total_steps:
        stopped = "epochs" if cfg.max_steps is None else "steps"
    elif cfg.max_minutes is not None and trainer.seconds > 60.0 * cfg.max_minutes:
        stopped = "time"
    else:
        stopped = "hook"
    return {"checkpoint": str(ckpt_path), "history": history,
            "best_epoch": dict(zip(AUS, best_epoch)), "epochs_run": len(history),
            "stopped": stopped, "seconds": time.time() - start,
            "n_train": len(clips), "n_val": len(val_clips)}


def load_audio2au(path, device="cpu") -> tuple[Audio2AU, dict]:
    """``(model in eval mode, its checkpoint's meta)``: ``mfcc_mean``, ``mfcc_std`` ``(12, 1)``,
    the AU ``priors``, the clips and the history."""
    loaded = load_checkpoint(path, device, kind="audio2au")
    return loaded.model, loaded.meta


__all__ = ["Audio2AUTrainConfig", "MODEL_PRESETS", "cli", "clip_key", "evaluate_audio2au",
           "fit_length", "holdout_split", "label_priors", "load_audio2au", "position_predict",
           "predict_clips", "results_table", "shuffle_partners", "train_audio2au"]


# ----------------------------------------------------------------------------- CLI


def cli(args) -> int:
    """Body of ``coursekit train audio2au``: train on a processed dataset, evaluate on the
    clips training left out (:func:`coursekit.data.splits.make_split`: every 5th utterance
    per speaker, and every clip of the test speakers), write ``OUT/audio2au.pt``,
    ``OUT/audio2au_log.csv``, ``OUT/audio2au_eval.md`` and ``.json``, and write the Markdown
    report to standard output.

    args: an ``argparse.Namespace`` with ``data`` (processed dataset), ``out`` (folder),
    ``minutes`` (time budget or None), ``epochs``, ``seed``; optional ``device``, ``model``
    (a :data:`MODEL_PRESETS` name, default ``"paper"``), ``test_speakers`` (``"s1,s2"``) and
    ``split`` (a :data:`~coursekit.data.splits.SPLITS` name). Returns 0 (exit status).
    CPU threads are the caller's (:class:`coursekit.runtime.RunContext`).
    """
    cfg = Audio2AUTrainConfig(epochs=int(args.epochs), seed=int(args.seed),
                              max_minutes=None if args.minutes is None else float(args.minutes),
                              device=getattr(args, "device", None) or "auto",
                              model=dict(MODEL_PRESETS[getattr(args, "model", None) or "paper"]))
    split = load_split(args.data, **split_settings(getattr(args, "split", None),
                                                   getattr(args, "test_speakers", None)))
    train, held = split.train, split.test
    summary = train_audio2au(args.data, args.out, cfg, clips=train)
    results = evaluate_audio2au(summary["checkpoint"], args.data, held)
    unseen = (f" ({len(split.unseen)} of test speakers {', '.join(split.test_speakers)})"
              if split.test_speakers else "")
    report = (f"# Audio2AU on {args.data}\n\n{len(train)} training clips "
              f"({summary['n_val']} of them for validation), {len(held)} held out{unseen}; "
              f"{summary['epochs_run']} epochs (stopped by {summary['stopped']}), best epoch "
              f"per AU: {', '.join(f'{a} {e}' for a, e in summary['best_epoch'].items())}; "
              f"{summary['seconds'] / 60:.1f} min.\n\n"
              f"Per-AU F1 and accuracy on the {results['n_frames']} held-out frames "
              f"(threshold 0.5):\n\n{results_table(results)}\n")
    out = Path(args.out)
    (out / "audio2au_eval.md").write_text(report)
    plain = {k: (v if not isinstance(v, dict) else {m: np.asarray(a).tolist() for m, a in v.items()})
             for k, v in results.items()}
    plain["true_rates"] = np.asarray(results["true_rates"]).tolist()
    (out / "audio2au_eval.json").write_text(json.dumps({"summary": {k: v for k, v in summary.items()
                                                                     if k != "history"},
                                                        "results": plain}, indent=1))
    sys.stdout.write(report)
    return 0
