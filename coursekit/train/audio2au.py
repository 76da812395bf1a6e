"""Pre-training the audio-to-AU module (paper section 3.1, Fig. 2) and measuring it honestly.

Training: :class:`coursekit.models.Audio2AU` (five nets, one per AU) learns AU *occurrence*
from the per-frame MFCC windows of a processed dataset, on random windows of ``seq_len``
frames, with the paper's AU loss (eq. 5-7: weighted BCE + weighted soft Dice, the weights
from the training clips' occurrence rates). MFCCs are normalised with the training clips'
statistics, which the checkpoint keeps. An optional validation split picks the best epoch.

Evaluation (:func:`evaluate_audio2au`): per-AU F1 and accuracy over every frame of held-out
clips, probabilities thresholded at 0.5, beside baselines computed on the same frames:

* ``shuffled audio`` -- the same model fed the MFCCs of *another* held-out utterance
  (of the same speaker when there is one), cropped or padded to the clip's length: what the
  model gets from "someone is talking, roughly then", not from this audio;
* ``position only`` -- no audio at all: the training clips' occurrence rate at each frame
  index, thresholded at 0.5 (in GRID every clip speaks at about the same times, so this is
  strong there);
* ``majority`` -- each AU's most frequent training label, for every frame.

Python use::

    from coursekit.train.audio2au import Audio2AUTrainConfig, train_audio2au, evaluate_audio2au
    from coursekit.train.audio2au import holdout_split, results_table
    from coursekit.data import load_index

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
from ..data.dataset import FIELD_FILES, TalkingFaceDataset, collate, load_index, mfcc_stats
from ..losses import au_class_weights, weighted_bce, weighted_dice
from ..metrics import accuracy_per_au, au_table, binarize, f1_per_au
from ..models import Audio2AU, Audio2AUConfig
from .common import CSVLogger, load_checkpoint, pick_device, save_checkpoint, seed_everything

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


def clip_key(clip: dict) -> str:
    return f"{clip['speaker']}/{clip['utt']}"


def holdout_split(clips: list[dict], every: int = 5, offset: int = 4) -> tuple[list, list]:
    """Utterance-disjoint ``(train, held_out)``: per speaker, clips sorted by utterance name,
    those at positions ``i % every == offset`` are held out (every 5th: 2 of 10 sample
    utterances, 25 of GRID s1's 125). Deterministic; both lists sorted by speaker/utt."""
    train, held = [], []
    for speaker in sorted({c["speaker"] for c in clips}):
        own = sorted((c for c in clips if c["speaker"] == speaker), key=lambda c: c["utt"])
        for i, clip in enumerate(own):
            (held if i % every == offset else train).append(clip)
    return train, held


def _load(clip: dict, root: Path, field_name: str) -> np.ndarray:
    folder = Path(clip["path"]) if "path" in clip else root / clip["dir"]
    return np.load(folder / FIELD_FILES[field_name])


def label_priors(root, clips: list[dict]) -> dict[str, torch.Tensor]:
    """Occurrence statistics of training clips for the loss weights and the baselines:
    ``rates (5,)`` overall occurrence rate per AU; ``position_rates (T_max, 5)`` rate at
    each frame index; ``position_counts (T_max,)`` clips long enough for that index."""
    occ = [_load(c, Path(root), "occurrence").astype(np.float64) for c in clips]
    if not occ:
        raise ValueError("label_priors: no training clips")
    t_max = max(len(o) for o in occ)
    sums, counts = np.zeros((t_max, occ[0].shape[1])), np.zeros(t_max)
    for o in occ:
        sums[:len(o)] += o
        counts[:len(o)] += 1
    rates = np.concatenate(occ).mean(0)
    return {"rates": torch.tensor(rates, dtype=torch.float32),
            "position_rates": torch.tensor(sums / counts[:, None], dtype=torch.float32),
            "position_counts": torch.tensor(counts, dtype=torch.float32)}


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
        raw = _load(clip, Path(root), "mfcc") if mfcc_override is None else mfcc_override[i]
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
    true = np.concatenate([_load(c, Path(root), "occurrence") for c in clips]).astype(bool)
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
        from ..data.dataset import split_clips
        clips, val_clips = split_clips(clips, by="utterance", test=cfg.val_fraction, seed=cfg.seed)
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


def load_audio2au(ckpt, device="cpu") -> tuple[Audio2AU, dict]:
    """``(model in eval mode, checkpoint dict)`` from a checkpoint path or dict."""
    if not isinstance(ckpt, dict):
        path = ckpt
        ckpt = load_checkpoint(path, map_location=device)
        if ckpt.get("kind") != KIND:
            raise ValueError(f"{path}: not an Audio2AU checkpoint (kind {ckpt.get('kind')!r})")
    model = Audio2AU(_model_config(ckpt["model_config"]), aus=tuple(ckpt.get("aus", AUS)))
    model.load_state_dict(ckpt["state_dict"])
    return model.to(device).eval(), ckpt


# ----------------------------------------------------------------------------- evaluation


def shuffle_partners(clips: list[dict]) -> list[int]:
    """For each clip, the index of another clip whose audio replaces its own: the next
    utterance (cyclically, by name) of the same speaker, or the next clip of the list when
    the speaker has only one. Never the clip itself when there are two or more clips."""
    order = sorted(range(len(clips)), key=lambda i: (clips[i]["speaker"], clips[i]["utt"]))
    partners = [None] * len(clips)
    for i in order:
        own = [j for j in order if clips[j]["speaker"] == clips[i]["speaker"]]
        if len(own) > 1:
            partners[i] = own[(own.index(i) + 1) % len(own)]
        else:
            partners[i] = order[(order.index(i) + 1) % len(order)]
    return partners


def fit_length(x: np.ndarray, n: int) -> np.ndarray:
    """``x`` cropped to its first ``n`` rows, or padded by repeating its last row."""
    if len(x) >= n:
        return x[:n]
    return np.concatenate([x, np.repeat(x[-1:], n - len(x), axis=0)])


def position_predict(position_rates, n: int, threshold: float = 0.5) -> np.ndarray:
    """Position-only guess ``(n, 5)`` bool: the rate at each frame index (past the longest
    training clip, the last index's rate) ``>= threshold``."""
    rates = np.asarray(position_rates)
    idx = np.minimum(np.arange(n), len(rates) - 1)
    return rates[idx] >= threshold


def _scores(pred: np.ndarray, true: np.ndarray) -> dict:
    return {"f1": f1_per_au(pred, true), "acc": accuracy_per_au(pred, true)}


def evaluate_audio2au(model_or_ckpt, data_root, clips: list[dict], *, threshold: float = 0.5,
                      baselines: bool = True, device="cpu", mfcc_stats=None,
                      priors: dict | None = None) -> dict:
    """Per-AU F1 and accuracy on every frame of ``clips`` (held out), with baselines.

    model_or_ckpt: a checkpoint path / dict of :func:`train_audio2au`, or an
        :class:`Audio2AU` module (then pass ``mfcc_stats=(mean, std)``, and ``priors``
        (:func:`label_priors` of the training clips) for the position/majority baselines).
    threshold: on the sigmoid probabilities (paper: 0.5).

    Returns ``{"model": {"f1": (5,), "acc": (5,)}, "shuffled audio": ..., "position only":
    ..., "majority": ..., "n_clips", "n_frames", "true_rates": (5,)}`` (numpy arrays; the
    baselines only with ``baselines=True`` and what they need).
    """
    root = Path(data_root).expanduser().resolve()
    if isinstance(model_or_ckpt, torch.nn.Module):
        model = model_or_ckpt.to(device).eval()
        if mfcc_stats is None:
            raise ValueError("evaluate_audio2au: pass mfcc_stats=(mean, std) with a bare model")
    else:
        model, ckpt = load_audio2au(model_or_ckpt, device)
        mfcc_stats = mfcc_stats or (ckpt["mfcc_mean"].numpy(), ckpt["mfcc_std"].numpy())
        priors = priors or ckpt.get("priors")
    clips = list(clips)
    if not clips:
        raise ValueError("evaluate_audio2au: no clips")
    true_list = [_load(c, root, "occurrence").astype(bool) for c in clips]
    true = np.concatenate(true_list)
    probs = predict_clips(model, root, clips, *mfcc_stats, device=device)
    results = {"model": _scores(binarize(np.concatenate(probs), threshold), true)}
    if baselines and len(clips) > 1:
        raw = [_load(c, root, "mfcc") for c in clips]
        other = [fit_length(raw[j], len(raw[i])) for i, j in enumerate(shuffle_partners(clips))]
        shuffled = predict_clips(model, root, clips, *mfcc_stats, device=device,
                                 mfcc_override=other)
        results["shuffled audio"] = _scores(binarize(np.concatenate(shuffled), threshold), true)
    if baselines and priors is not None:
        pos_rates = np.asarray(priors["position_rates"])
        pos = np.concatenate([position_predict(pos_rates, len(t), threshold) for t in true_list])
        results["position only"] = _scores(pos, true)
        majority = np.asarray(priors["rates"]) >= 0.5
        results["majority"] = _scores(np.broadcast_to(majority, true.shape), true)
    results.update(n_clips=len(clips), n_frames=int(len(true)), true_rates=true.mean(0))
    return results


def results_table(results: dict, digits: int = 3) -> str:
    """The Markdown table (:func:`coursekit.metrics.au_table`) of :func:`evaluate_audio2au`'s
    methods."""
    rows = {name: (v["f1"], v["acc"]) for name, v in results.items()
            if isinstance(v, dict) and "f1" in v}
    return au_table(rows, digits=digits)


# ----------------------------------------------------------------------------- CLI


def cli(args) -> int:
    """Body of ``coursekit train audio2au``: train on a processed dataset, evaluate on held-out
    utterances (every 5th per speaker, :func:`holdout_split`), write ``OUT/audio2au.pt``,
    ``OUT/audio2au_log.csv``, ``OUT/audio2au_eval.md`` and ``.json``, and write the Markdown
    report to standard output.

    args: an ``argparse.Namespace`` with ``data`` (processed dataset), ``out`` (folder),
    ``minutes`` (time budget or None), ``epochs``, ``seed``; optional ``device`` and
    ``model`` (a :data:`MODEL_PRESETS` name, default ``"paper"``). Returns 0 (exit status).
    """
    cfg = Audio2AUTrainConfig(epochs=int(args.epochs), seed=int(args.seed),
                              max_minutes=None if args.minutes is None else float(args.minutes),
                              device=getattr(args, "device", None) or "auto",
                              model=dict(MODEL_PRESETS[getattr(args, "model", None) or "paper"]))
    train, held = holdout_split(load_index(args.data))
    summary = train_audio2au(args.data, args.out, cfg, clips=train)
    results = evaluate_audio2au(summary["checkpoint"], args.data, held)
    report = (f"# Audio2AU on {args.data}\n\n{len(train)} training clips "
              f"({summary['n_val']} of them for validation), {len(held)} held out; "
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
