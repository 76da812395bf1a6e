"""Pre-training the audio-to-AU module (paper section 3.1, Fig. 2) and measuring it honestly.

Training: :class:`coursekit.models.Audio2AU` (five nets, one per AU) learns AU *occurrence*
from the per-frame MFCC windows of a processed dataset, on random windows of ``seq_len``
frames, with the paper's AU loss (eq. 5-7: weighted BCE + weighted soft Dice, the weights
from the training clips' occurrence rates). MFCCs are normalised with the training clips'
statistics, which the checkpoint keeps. An optional validation split picks the best epoch.

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

import dataclasses
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, RandomSampler

from ..au import AUS
from ..data.dataset import TalkingFaceDataset, collate, load_index, mfcc_stats
from ..data.splits import (clip_key, hashed_utterance_split, load_split, make_split,
                           split_settings)
from ..evaluate.audio2au import evaluate_audio2au, results_table  # noqa: F401 (re-exported)
from ..evaluate.rows import (clip_array, fit_length, label_priors,  # noqa: F401 (re-exported)
                             position_predict, shuffle_partners)
from ..losses import au_class_weights, weighted_bce, weighted_dice
from ..metrics import binarize, f1_per_au
from ..models import Audio2AU, Audio2AUConfig
from ..checkpoint import load_checkpoint
from .common import CSVLogger, pick_device, save_checkpoint, seed_everything

CHECKPOINT_NAME = "audio2au.pt"
KIND = "coursekit-audio2au"

MODEL_PRESETS = {
    "paper": {},
    "cpu": {"conv_channels": (16, 32), "lstm_hidden": 64},
}
""":class:`Audio2AUConfig` overrides for ``Audio2AUTrainConfig.model``. ``"paper"``: the
defaults (5.5 M parameters for the five nets). ``"cpu"``: the same structure and the same
64-d AU features with thinner convs and LSTMs (1.45 M parameters, about 3.5x faster a step
on a CPU); a talker using it needs ``TalkerConfig(audio2au=Audio2AUConfig(**preset))``."""


@dataclass
class Audio2AUTrainConfig:
    """How Audio2AU is pre-trained.

    seq_len: frames per training window (GRID clips have 75; shorter clips are padded and
        masked). batch_size: windows per step. epochs: passes; each pass draws
        ``windows_per_clip`` random windows from every training clip.
    lr, weight_decay, grad_clip: Adam and gradient-norm clipping (per AU network).
    lr_schedule: ``"cosine"``: the learning rate falls from ``lr`` to ``lr * min_lr_fraction``
        along a half cosine of the run's progress, the larger of steps done / all steps and
        time spent / ``max_minutes`` (so a time-limited run still ends at a low rate);
        ``"constant"``: ``lr`` throughout.
    dice_eps: eq. 6's smoothing term; min_rate: floor of the occurrence rates in eq. 5's
        weights (:func:`coursekit.losses.au_class_weights`).
    val_fraction: fraction of the training utterances kept aside (stable hash per clip) to
        pick, **per AU network**, the epoch with the best validation F1 (ties: lower BCE);
        0 = keep the last epoch.
    max_minutes: wall-time budget; training stops after the step that exceeds it.
    model: :class:`coursekit.models.Audio2AUConfig` fields to override (a plain dict).
    num_threads: ``torch.set_num_threads`` for the run (None = leave as is).
    channels_last: keep the conv layers in channels-last memory format (the same maths,
        about 1.6x faster a step on a CPU; the checkpoint is saved in the default format).
    """

    seq_len: int = 50
    batch_size: int = 16
    epochs: int = 60
    windows_per_clip: int = 4
    lr: float = 1e-3
    lr_schedule: str = "cosine"
    min_lr_fraction: float = 0.05
    weight_decay: float = 0.0
    grad_clip: float = 5.0
    dice_eps: float = 1.0
    min_rate: float = 0.01
    val_fraction: float = 0.1
    max_minutes: float | None = None
    seed: int = 0
    device: str = "auto"
    threshold: float = 0.5
    model: dict = field(default_factory=dict)
    num_threads: int | None = None
    channels_last: bool = True
    progress: bool = True


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


# ----------------------------------------------------------------------------- training


def _run_batch(model, batch, weights, cfg, device):
    mfcc = batch["mfcc"].to(device)
    target = batch["occurrence"].to(device)
    mask = batch["mask"].to(device)
    logits = model(mfcc)
    bce = weighted_bce(logits, target, weights, mask)
    dice = weighted_dice(torch.sigmoid(logits), target, weights, cfg.dice_eps, mask)
    return bce, dice


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


def _cosine_lr(cfg: Audio2AUTrainConfig, step_frac: float, elapsed: float,
               budget: float | None) -> float:
    """Learning rate at a run's progress (the larger of the step and the time fraction)."""
    progress = max(step_frac, 0.0 if budget is None else elapsed / budget)
    floor = cfg.lr * cfg.min_lr_fraction
    return floor + (cfg.lr - floor) * 0.5 * (1.0 + np.cos(np.pi * min(progress, 1.0)))


def _val_scores(model, root, clips, stats, device, threshold) -> tuple[np.ndarray, np.ndarray]:
    """Per-AU validation ``(F1 (5,), BCE (5,))`` over every frame of ``clips``."""
    probs = np.concatenate(predict_clips(model, root, clips, *stats, device=device))
    true = np.concatenate([clip_array(c, root, "occurrence") for c in clips]).astype(bool)
    p = np.clip(probs, 1e-6, 1 - 1e-6)
    bce = -np.where(true, np.log(p), np.log(1 - p)).mean(0)
    return f1_per_au(binarize(probs, threshold), true), bce


def train_audio2au(data_root, out_dir, cfg: Audio2AUTrainConfig | None = None,
                   clips: list[dict] | None = None, val_clips: list[dict] | None = None) -> dict:
    """Pre-train Audio2AU on a processed dataset; writes ``out_dir/audio2au.pt`` and
    ``out_dir/audio2au_log.csv`` (one row per epoch).

    Args:
        data_root: processed dataset (``coursekit preprocess``).
        out_dir: output folder.
        cfg: :class:`Audio2AUTrainConfig`.
        clips: training clips (from :func:`coursekit.data.load_index`); all by default.
            Keep the test clips out (:func:`holdout_split`).
        val_clips: validation clips for the epoch choice; None splits ``cfg.val_fraction``
            of ``clips`` off by utterance (stable hash), when there are at least 10.

    The checkpoint (``weights_only``-loadable) holds ``state_dict``, ``model_config`` and
    ``train_config`` (plain dicts), ``mfcc_mean`` / ``mfcc_std`` ``(12, 1)``,
    ``au_weights (5,)``, the label priors (:func:`label_priors`), the clip names and the
    history. Returns ``{"checkpoint", "history", "best_epoch", "epochs_run", "stopped"
    ("epochs" or "time"), "seconds", "n_train", "n_val"}``.
    """
    from tqdm.auto import tqdm

    cfg = cfg or Audio2AUTrainConfig()
    start = time.time()
    if cfg.num_threads:
        torch.set_num_threads(int(cfg.num_threads))
    root = Path(data_root).expanduser().resolve()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    clips = list(load_index(root) if clips is None else clips)
    if val_clips is None and cfg.val_fraction > 0 and len(clips) >= 10:
        drawn = hashed_utterance_split(clips, test=cfg.val_fraction, seed=cfg.seed)
        clips, val_clips = drawn.train, drawn.test
    val_clips = list(val_clips or [])
    if not clips:
        raise ValueError(f"{root}: no training clips")
    if cfg.lr_schedule not in ("cosine", "constant"):
        raise ValueError(f"lr_schedule must be 'cosine' or 'constant', got {cfg.lr_schedule!r}")
    gen = seed_everything(cfg.seed)
    device = pick_device(cfg.device)

    stats = mfcc_stats(clips, root)
    priors = label_priors(root, clips)
    weights = au_class_weights(priors["rates"], cfg.min_rate).to(device)
    model_cfg = _model_config(cfg.model)
    model = Audio2AU(model_cfg).to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

    data = TalkingFaceDataset(root, clips, cfg.seq_len, random_window=True, seed=cfg.seed,
                              fields=("mfcc", "occurrence"), normalize_mfcc=stats)
    sampler = RandomSampler(data, num_samples=len(data) * cfg.windows_per_clip, generator=gen)
    loader = DataLoader(data, batch_size=cfg.batch_size, sampler=sampler, collate_fn=collate)

    def state(history, best_epoch, best_state):
        return dict(kind=KIND, aus=list(AUS), state_dict=best_state,
                    model_config=asdict(model_cfg), train_config=asdict(cfg),
                    mfcc_mean=torch.from_numpy(stats[0]), mfcc_std=torch.from_numpy(stats[1]),
                    au_weights=weights.cpu(), priors=priors, history=history,
                    best_epoch=best_epoch, train_clips=[clip_key(c) for c in clips],
                    val_clips=[clip_key(c) for c in val_clips])

    ckpt_path = out_dir / CHECKPOINT_NAME
    budget = None if cfg.max_minutes is None else 60.0 * cfg.max_minutes
    n_aus = len(model.nets)
    best = [(-1.0, -np.inf)] * n_aus  # per AU: (val F1, -val BCE), compared in that order
    best_epoch, best_state = [0] * n_aus, {}
    history, stopped = [], "epochs"
    total_steps, step = cfg.epochs * len(loader), 0
    bar = tqdm(range(1, cfg.epochs + 1), desc="audio2au", unit="epoch", disable=not cfg.progress)
    with CSVLogger(out_dir / "audio2au_log.csv") as log:
        for epoch in bar:
            model.train()
            data.set_epoch(epoch)
            sums, steps = np.zeros(2), 0
            for batch in loader:
                if cfg.lr_schedule == "cosine":
                    for group in opt.param_groups:
                        group["lr"] = _cosine_lr(cfg, step / total_steps, time.time() - start, budget)
                step += 1
                bce, dice = _run_batch(model, batch, weights, cfg, device)
                opt.zero_grad(set_to_none=True)
                (bce + dice).backward()
                if cfg.grad_clip:  # per AU network: the rare AUs' large weights stay their own
                    for net in model.nets:
                        torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
                opt.step()
                sums += (bce.item(), dice.item())
                steps += 1
                if budget is not None and time.time() - start > budget:
                    stopped = "time"
                    break
            row = {"epoch": epoch, "loss": sums.sum() / max(steps, 1),
                   "bce": sums[0] / max(steps, 1), "dice": sums[1] / max(steps, 1),
                   "lr": opt.param_groups[0]["lr"], "val_f1": float("nan")}
            improved = list(range(n_aus))  # without validation: the last epoch wins
            if val_clips:
                f1, val_bce = _val_scores(model, root, val_clips, stats, device, cfg.threshold)
                row["val_f1"] = float(f1.mean())
                row.update({f"val_f1_{name}": float(v) for name, v in zip(AUS, f1)})
                improved = [i for i in range(n_aus) if (f1[i], -val_bce[i]) >= best[i]]
                for i in improved:
                    best[i] = (f1[i], -val_bce[i])
            for i in improved:  # the five nets are independent: keep each one's best epoch
                best_epoch[i] = epoch
                prefix = f"nets.{i}."
                best_state.update({k: v.detach().cpu().contiguous().clone()
                                   for k, v in model.state_dict().items() if k.startswith(prefix)})
            row["seconds"] = round(time.time() - start, 2)
            history.append(row)
            log.log(**row)
            bar.set_postfix(loss=f"{row['loss']:.3f}", val_f1=f"{row['val_f1']:.3f}")
            if stopped == "time":
                break
    bar.close()
    best_state = {k: best_state[k] for k in model.state_dict()}  # the module's key order
    save_checkpoint(ckpt_path, **state(history, best_epoch, best_state))
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
