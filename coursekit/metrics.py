"""Evaluation metrics for AU occurrence (the paper's Table 1: per-AU F1 and accuracy).

Inputs are boolean (or 0/1) arrays ``(N, 5)``: ``N`` frames, AUs in :data:`coursekit.au.AUS`
order; numpy arrays or torch tensors. Probabilities are turned into decisions with
:func:`binarize` (threshold 0.5, as in the paper's sigmoid outputs).
"""

from __future__ import annotations

import numpy as np

from .au import AUS


def _as_bool(x, name: str) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"{name} must be (N, n_aus), got shape {arr.shape}")
    return arr.astype(bool)


def binarize(probs, threshold: float = 0.5) -> np.ndarray:
    """``probs >= threshold`` as a bool numpy array (same shape)."""
    if hasattr(probs, "detach"):
        probs = probs.detach().cpu().numpy()
    return np.asarray(probs) >= threshold


def confusion_per_au(pred, true) -> dict[str, np.ndarray]:
    """Counts per AU: ``{"tp", "fp", "fn", "tn"}``, each ``(n_aus,)`` int64."""
    p, t = _as_bool(pred, "pred"), _as_bool(true, "true")
    if p.shape != t.shape:
        raise ValueError(f"pred {p.shape} and true {t.shape} differ")
    return {"tp": (p & t).sum(0), "fp": (p & ~t).sum(0),
            "fn": (~p & t).sum(0), "tn": (~p & ~t).sum(0)}


def f1_per_au(pred, true, zero_division: float = 0.0) -> np.ndarray:
    """F1 score per AU ``(n_aus,)`` float64: ``2 TP / (2 TP + FP + FN)``.

    pred, true: ``(N, n_aus)`` bool. An AU never predicted and never true has no F1; it
    gets ``zero_division`` (0, as scikit-learn's default).
    """
    c = confusion_per_au(pred, true)
    denom = 2 * c["tp"] + c["fp"] + c["fn"]
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(denom > 0, 2 * c["tp"] / np.maximum(denom, 1), zero_division)
    return f1.astype(np.float64)


def accuracy_per_au(pred, true) -> np.ndarray:
    """Fraction of frames classified correctly, per AU ``(n_aus,)`` float64."""
    p, t = _as_bool(pred, "pred"), _as_bool(true, "true")
    if p.shape != t.shape:
        raise ValueError(f"pred {p.shape} and true {t.shape} differ")
    if len(p) == 0:
        raise ValueError("accuracy_per_au: no frames")
    return (p == t).mean(0).astype(np.float64)


def au_table(rows: dict, aus=AUS, digits: int = 3) -> str:
    """A Markdown table of per-AU F1 and accuracy, like the paper's Table 1.

    rows: ``{method name: (f1 (n_aus,), acc (n_aus,))}`` (or dicts with ``"f1"``, ``"acc"``).
    One row per method and metric; the last column is the mean over the AUs.
    """
    head = ["method", "metric", *aus, "mean"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * (len(aus) + 1)) + "|"]
    for name, value in rows.items():
        f1, acc = (value["f1"], value["acc"]) if isinstance(value, dict) else value
        for metric, vals in (("F1", f1), ("accuracy", acc)):
            vals = np.asarray(vals, dtype=np.float64).reshape(-1)
            if len(vals) != len(aus):
                raise ValueError(f"{name}: {len(vals)} {metric} values for {len(aus)} AUs")
            cells = [f"{v:.{digits}f}" for v in vals] + [f"**{vals.mean():.{digits}f}**"]
            lines.append(f"| {name} | {metric} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def psnr(pred, target, data_range: float = 2.0) -> float:
    """Peak signal-to-noise ratio (dB) of images in [-1, 1] (``data_range`` 2), any shape."""
    pred, target = np.asarray(pred, np.float64), np.asarray(target, np.float64)
    mse = np.mean((pred - target) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(data_range ** 2 / mse))
