"""The baselines every table puts beside a model, built in one place.

* **shuffled audio**: the model driven by another utterance's audio, the partner chosen by
  :func:`shuffle_partners` (the next utterance of the same speaker) and cut or padded to
  the clip's length by :func:`fit_length`;
* **position only**: no audio, no frames: each AU guessed from the frame's position in the
  clip, the training clips' occurrence rate there thresholded at 0.5
  (:func:`label_priors`, :func:`position_predict`);
* **copy identity**: the identity frame repeated (:func:`copy_identity`);
* **real frames**: the video itself (the judge's own ceiling).

:func:`frame_rows` makes the frames of every framed row of one clip; :func:`au_scores` pools
AU predictions of clips into per-AU F1 and accuracy. Used by
:func:`~coursekit.evaluate.evaluate_checkpoint` (and so ``evaluate_talker``),
:func:`~coursekit.evaluate.audio2au.evaluate_audio2au` and
:func:`~coursekit.train.syncnet.evaluate_syncnet`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ..audio import FPS, SAMPLE_RATE, load_audio, load_video_audio
from ..data.corpus import REPO
from ..data.dataset import FIELD_FILES
from ..metrics import accuracy_per_au, f1_per_au

ROWS = ("model", "shuffled audio", "position only", "copy identity", "real frames")
"""The rows of a generator's evaluation: the generator and its baselines."""


def clip_array(clip: dict, root, field: str) -> np.ndarray:
    """One field (:data:`~coursekit.data.dataset.FIELD_FILES`) of a clip, read whole."""
    folder = Path(clip["path"]) if "path" in clip else Path(root) / clip["dir"]
    return np.load(folder / FIELD_FILES[field])


def shuffle_partners(clips: list[dict]) -> list[int]:
    """For each clip, the index of another clip whose audio replaces its own: the next
    utterance (cyclically, by name) of the same speaker, or the next clip in (speaker, utt)
    order when the speaker has only one. Never the clip itself when there are two or more."""
    order = sorted(range(len(clips)), key=lambda i: (clips[i]["speaker"], clips[i]["utt"]))
    partners = [None] * len(clips)
    for i in order:
        own = [j for j in order if clips[j]["speaker"] == clips[i]["speaker"]]
        if len(own) > 1:
            partners[i] = own[(own.index(i) + 1) % len(own)]
        else:
            partners[i] = order[(order.index(i) + 1) % len(order)]
    return partners


def fit_length(x, n: int):
    """``x`` (a numpy array or a tensor, ``(T, ...)``) cut to its first ``n`` rows, or padded
    to ``n`` by repeating its last row; the same type back."""
    if len(x) >= n:
        return x[:n]
    if isinstance(x, torch.Tensor):
        return torch.cat([x, x[-1:].expand(n - len(x), *x.shape[1:])])
    return np.concatenate([x, np.repeat(x[-1:], n - len(x), axis=0)])


def clip_audio(folder: Path, repo: Path | None = None) -> tuple[np.ndarray, int, dict]:
    """``(audio, sr, meta)`` of a processed clip, read as preprocessing read it: a separate
    recording as is, a video's own sound on the video's timeline. Relative paths are taken
    from ``repo`` (default: the current folder, else the source checkout)."""
    meta = json.loads((Path(folder) / "meta.json").read_text())
    video, sound = meta.get("video"), meta.get("audio")
    if not video and not sound:
        raise FileNotFoundError(f"{folder}/meta.json: names no audio or video file")

    def where(p):
        if Path(p).is_absolute() or repo is not None:
            return Path(repo or "") / p
        return Path(p) if Path(p).exists() else REPO / p

    if sound and sound != video:
        audio, sr = load_audio(where(sound))
    else:
        audio, sr = load_video_audio(where(video), duration=meta["n_frames"] / meta["fps"])
    return audio, sr, meta


def clip_speech(clip: dict, root, n_frames: int, fps: float = FPS) -> np.ndarray | None:
    """The 16 kHz mono recording of a processed clip (:func:`clip_audio`), cut or
    zero-padded to ``n_frames`` frames; None when the recording is no longer there."""
    folder = Path(clip["path"]) if "path" in clip else Path(root) / clip["dir"]
    try:
        audio = np.asarray(clip_audio(folder)[0], np.float32)
    except (OSError, KeyError, ValueError):
        return None
    n = int(round(n_frames / fps * SAMPLE_RATE))
    return audio[:n] if len(audio) >= n else np.pad(audio, (0, n - len(audio)))


def shuffled_mfcc(root, clips: list[dict], partners: list[int], i: int, n: int) -> np.ndarray:
    """Raw MFCC windows ``(n, 12, 28)`` of clip ``i``'s partner, fitted to ``n`` frames."""
    return fit_length(clip_array(clips[partners[i]], root, "mfcc"), n)


def label_priors(root, clips: list[dict]) -> dict[str, torch.Tensor]:
    """Occurrence statistics of training clips for the loss weights and the baselines:
    ``rates (5,)`` overall occurrence rate per AU; ``position_rates (T_max, 5)`` rate at
    each frame index; ``position_counts (T_max,)`` clips long enough for that index."""
    occ = [clip_array(c, root, "occurrence").astype(np.float64) for c in clips]
    if not occ:
        raise ValueError("label_priors: no training clips")
    sums, counts = _position_sums(occ)
    rates = np.concatenate(occ).mean(0)
    return {"rates": torch.tensor(rates, dtype=torch.float32),
            "position_rates": torch.tensor(sums / counts[:, None], dtype=torch.float32),
            "position_counts": torch.tensor(counts, dtype=torch.float32)}


def position_predict(position_rates, n: int, threshold: float = 0.5) -> np.ndarray:
    """Position-only guess ``(n, 5)`` bool: the rate at each frame index (past the longest
    training clip, the last index's rate) ``>= threshold``."""
    rates = np.asarray(position_rates)
    idx = np.minimum(np.arange(n), len(rates) - 1)
    return rates[idx] >= threshold


def _position_sums(arrays: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``(sums (T_max, ...), counts (T_max,))``: per frame index, the sum of the clips'
    ``(T_i, ...)`` arrays there and how many clips are long enough for it."""
    t_max = max(len(a) for a in arrays)
    sums = np.zeros((t_max, *arrays[0].shape[1:]))
    counts = np.zeros(t_max)
    for a in arrays:
        sums[:len(a)] += a
        counts[:len(a)] += 1
    return sums, counts


def position_mean(arrays: list[np.ndarray]) -> np.ndarray:
    """Position-only guess of a continuous target: the mean at each frame index of the
    training clips' ``(T_i, ...)`` arrays, ``(T_max, ...)`` (cut or pad it to a clip with
    :func:`fit_length`)."""
    sums, counts = _position_sums(arrays)
    return (sums / counts.reshape(-1, *[1] * (sums.ndim - 1))).astype(np.float32)


def copy_identity(identity: torch.Tensor, n: int) -> torch.Tensor:
    """The identity image ``(3, S, S)`` as a still clip ``(n, 3, S, S)`` (a view)."""
    return identity[None].expand(n, -1, -1, -1)


def frame_rows(render, item: dict, own, other, speech=(None, None)) -> dict[str, torch.Tensor]:
    """Frames ``(T, 3, S, S)`` of every framed row of one clip.

    render: ``render(identity, mfcc, speech) -> frames``; item: a
    :class:`~coursekit.data.dataset.TalkingFaceDataset` item with ``identity`` and
    ``frames``; own, other: normalised MFCC windows ``(T, 12, 28)`` of the clip and of its
    partner (:func:`shuffled_mfcc`); speech: their recordings (:func:`clip_speech`) or
    None each."""
    return {"model": render(item["identity"], own, speech[0]),
            "shuffled audio": render(item["identity"], other, speech[1]),
            "copy identity": copy_identity(item["identity"], len(item["frames"])),
            "real frames": item["frames"]}


def au_scores(preds: list[np.ndarray], truth: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per-AU ``(F1 (5,), accuracy (5,))`` of every frame of the clips pooled: ``preds`` and
    ``truth`` are per-clip ``(T_i, 5)`` bool arrays."""
    pred, true = np.concatenate(preds), np.concatenate(truth)
    return f1_per_au(pred, true), accuracy_per_au(pred, true)
