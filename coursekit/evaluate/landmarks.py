"""Scoring the landmark predictor (:mod:`coursekit.models.landmarks`) on held-out clips.

Every row predicts the displacements ``(T, 33, 2)`` of the moving landmarks from each clip's
neutral face (inter-ocular distances, :func:`coursekit.models.motion.motion_targets`), so a
row placed on the clip's neutral gives landmarks, and the error below is the landmark error
divided by the inter-ocular distance. Rows:

* ``text``, ``audio``, ``text+audio``: the model with those inputs;
* ``... shuffled``: the same model driven by another held-out clip's inputs
  (:func:`coursekit.evaluate.rows.shuffle_partners`, fitted to the clip's length);
* ``position only``: the training clips' mean displacement at each frame index
  (:func:`coursekit.evaluate.rows.position_mean`);
* ``still mouth``: the clip's first frame repeated;
* ``AU route`` (when a warp generator is given): the course's own route, speech -> Audio2AU's
  AU intensities -> the motion model's landmark motion
  (:meth:`coursekit.infer.warp.WarpGenerator.audio_motion`, gated by the recording's speech
  activity as at inference).

Scores over every frame of the clips: ``error``, the mean Euclidean distance of the 20 mouth
points (48-67) in inter-ocular distances; ``opening_r``, the Pearson correlation of the
predicted and the real inner-lip gap (:data:`coursekit.models.motion.LIP_PAIRS`).
"""

from __future__ import annotations

import numpy as np
import torch

from ..checkpoint import load_checkpoint
from ..models.motion import LIP_PAIRS
from ..train.landmarks import MODES, LandmarkWindows
from ..warp import MOVING
from .rows import clip_array, clip_audio, fit_length, position_mean, shuffle_partners

MOUTH_SLOTS = np.searchsorted(MOVING, np.arange(48, 68))
"""The 20 mouth points' indices within :data:`coursekit.warp.MOVING`."""


def mouth_error(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Per-frame mean distance of the mouth points of displacements ``(T, 33, 2)``: ``(T,)``."""
    diff = np.asarray(pred)[:, MOUTH_SLOTS] - np.asarray(true)[:, MOUTH_SLOTS]
    return np.linalg.norm(diff, axis=-1).mean(-1)


def mouth_opening(motion: np.ndarray) -> np.ndarray:
    """Change of the inner-lip gap from the neutral of displacements ``(T, 33, 2)``: ``(T,)``."""
    upper, lower = (np.searchsorted(MOVING, list(p)) for p in zip(*LIP_PAIRS))
    return (motion[:, lower, 1] - motion[:, upper, 1]).mean(-1)


def score(preds: list[np.ndarray], truths: list[np.ndarray]) -> dict[str, float]:
    """``{"error", "opening_r"}`` of per-clip predictions and truths, frames pooled."""
    err = np.concatenate([mouth_error(p, t) for p, t in zip(preds, truths)])
    a = np.concatenate([mouth_opening(p) for p in preds])
    b = np.concatenate([mouth_opening(t) for t in truths])
    r = float(np.corrcoef(a, b)[0, 1]) if a.std() > 1e-9 and b.std() > 1e-9 else float("nan")
    return {"error": float(err.mean()), "opening_r": r}


def clip_inputs(root, clips: list[dict], meta: dict, corpus=None) -> list[dict]:
    """Whole-clip items (``phonemes``, normalised ``mfcc``, target ``motion``) of ``clips``."""
    data = LandmarkWindows(root, clips, None, normalize_mfcc=(meta["mfcc_mean"], meta["mfcc_std"]),
                           corpus=corpus)
    return [data[i] for i in range(len(data))]


@torch.no_grad()
def predict_rows(model, items: list[dict], partners: list[int]) -> dict[str, list[np.ndarray]]:
    """Per-clip displacement predictions of every mode, with own and with partner inputs."""
    rows: dict[str, list[np.ndarray]] = {}
    for mode, (text, audio) in MODES.items():
        for suffix, source in (("", None), (" shuffled", partners)):
            out = []
            for i, item in enumerate(items):
                other = items[source[i]] if source is not None else item
                n = len(item["mask"])
                out.append(model.predict(fit_length(other["phonemes"], n) if text else None,
                                         fit_length(other["mfcc"], n) if audio else None))
            rows[mode + suffix] = out
    return rows


def au_route_rows(route, root, clips: list[dict], lengths: list[int]) -> list[np.ndarray]:
    """Displacements ``(T, 33, 2)`` of each clip heard by ``route`` (an object with
    ``audio_motion(raw MFCC windows (T, 12, 28), recording, sr)``, e.g. the shipped warp
    generator) from the clip's raw MFCC windows and its recording
    (:func:`coursekit.evaluate.rows.clip_audio`), fitted to ``lengths``."""
    out = []
    for clip, n in zip(clips, lengths):
        audio, sr, _ = clip_audio(clip["path"])
        out.append(fit_length(route.audio_motion(clip_array(clip, root, "mfcc"), audio, sr), n))
    return out


def position_prior(root, train_clips: list[dict], corpus=None) -> np.ndarray:
    """The position-only row's prediction ``(T_max, 33, 2)``: the mean displacement of the
    training clips at each frame index (:func:`coursekit.evaluate.rows.position_mean`).
    A checkpoint may carry it as ``meta["position_mean"]`` (``benchmarks/landmarks_multimodal.py``
    stores it), so the row needs no training clip at evaluation."""
    train = LandmarkWindows(root, train_clips, None, corpus=corpus)
    return position_mean([train[i]["motion"].numpy() for i in range(len(train))])


def evaluate_landmarks(checkpoint, root, clips: list[dict], train_clips: list[dict] | None = None,
                       *, corpus=None, au_route=None) -> dict[str, dict[str, float]]:
    """Scores (:func:`score`) of every row of the module docstring on ``clips`` (held out),
    the position-only row from ``train_clips`` (None: the checkpoint's
    ``meta["position_mean"]``, :func:`position_prior`); phonemes from ``corpus``'s align
    files; ``au_route``: a warp generator (:func:`au_route_rows`) for the ``AU route`` row."""
    loaded = load_checkpoint(checkpoint, kind="landmarks")
    if train_clips is None and "position_mean" not in loaded.meta:
        raise ValueError(f"{checkpoint}: no meta['position_mean']; give the training clips")
    items = clip_inputs(root, clips, loaded.meta, corpus)
    truths = [it["motion"].numpy() for it in items]
    rows = predict_rows(loaded.model, items, shuffle_partners(clips))
    if au_route is not None:
        rows["AU route"] = au_route_rows(au_route, root, clips, [len(t) for t in truths])
    prior = (position_prior(root, train_clips, corpus) if train_clips is not None
             else np.asarray(loaded.meta["position_mean"], np.float32))
    rows["position only"] = [fit_length(prior, len(t)) for t in truths]
    rows["still mouth"] = [fit_length(t[:1], len(t)) for t in truths]
    return {name: score(preds, truths) for name, preds in rows.items()}
