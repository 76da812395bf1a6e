"""Measuring Audio2AU honestly: per-AU F1 and accuracy over every frame of held-out clips,
probabilities thresholded at 0.5, beside baselines computed on the same frames
(:mod:`.rows`):

* ``shuffled audio`` -- the same model fed the MFCCs of *another* held-out utterance
  (of the same speaker when there is one), cropped or padded to the clip's length: what the
  model gets from "someone is talking, roughly then", not from this audio;
* ``position only`` -- no audio at all: the training clips' occurrence rate at each frame
  index, thresholded at 0.5 (in GRID every clip speaks at about the same times, so this is
  strong there);
* ``majority`` -- each AU's most frequent training label, for every frame.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..metrics import au_table, binarize
from .rows import au_scores, clip_array, position_predict, shuffle_partners, shuffled_mfcc


def _scores(preds: list[np.ndarray], truth: list[np.ndarray]) -> dict:
    f1, acc = au_scores(preds, truth)
    return {"f1": f1, "acc": acc}


def evaluate_audio2au(model_or_ckpt, data_root, clips: list[dict], *, threshold: float = 0.5,
                      baselines: bool = True, device="cpu", mfcc_stats=None,
                      priors: dict | None = None) -> dict:
    """Per-AU F1 and accuracy on every frame of ``clips`` (held out), with baselines.

    model_or_ckpt: a checkpoint path / dict of
        :func:`~coursekit.train.audio2au.train_audio2au`, or an :class:`Audio2AU` module
        (then pass ``mfcc_stats=(mean, std)``, and ``priors``
        (:func:`~coursekit.evaluate.rows.label_priors` of the training clips) for the
        position/majority baselines).
    threshold: on the sigmoid probabilities (paper: 0.5).

    Returns ``{"model": {"f1": (5,), "acc": (5,)}, "shuffled audio": ..., "position only":
    ..., "majority": ..., "n_clips", "n_frames", "true_rates": (5,)}`` (numpy arrays; the
    baselines only with ``baselines=True`` and what they need).
    """
    from ..train.audio2au import load_audio2au, predict_clips

    root = Path(data_root).expanduser().resolve()
    if isinstance(model_or_ckpt, torch.nn.Module):
        model = model_or_ckpt.to(device).eval()
        if mfcc_stats is None:
            raise ValueError("evaluate_audio2au: pass mfcc_stats=(mean, std) with a bare model")
    else:
        model, ckpt = load_audio2au(model_or_ckpt, device)
        mfcc_stats = mfcc_stats or tuple(np.asarray(ckpt[k], np.float32)
                                         for k in ("mfcc_mean", "mfcc_std"))
        priors = priors or ckpt.get("priors")
    clips = list(clips)
    if not clips:
        raise ValueError("evaluate_audio2au: no clips")
    truth = [clip_array(c, root, "occurrence").astype(bool) for c in clips]

    def predicted(override=None) -> list[np.ndarray]:
        probs = predict_clips(model, root, clips, *mfcc_stats, device=device,
                              mfcc_override=override)
        return [binarize(p, threshold) for p in probs]

    results = {"model": _scores(predicted(), truth)}
    if baselines and len(clips) > 1:
        partners = shuffle_partners(clips)
        other = [shuffled_mfcc(root, clips, partners, i, len(t)) for i, t in enumerate(truth)]
        results["shuffled audio"] = _scores(predicted(other), truth)
    if baselines and priors is not None:
        pos_rates = np.asarray(priors["position_rates"])
        results["position only"] = _scores([position_predict(pos_rates, len(t), threshold)
                                            for t in truth], truth)
        majority = np.asarray(priors["rates"]) >= 0.5
        results["majority"] = _scores([np.broadcast_to(majority, t.shape) for t in truth], truth)
    true = np.concatenate(truth)
    results.update(n_clips=len(clips), n_frames=int(len(true)), true_rates=true.mean(0))
    return results


def results_table(results: dict, digits: int = 3) -> str:
    """The Markdown table (:func:`coursekit.metrics.au_table`) of :func:`evaluate_audio2au`'s
    methods."""
    rows = {name: (v["f1"], v["acc"]) for name, v in results.items()
            if isinstance(v, dict) and "f1" in v}
    return au_table(rows, digits=digits)
