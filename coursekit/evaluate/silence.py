"""The silent-audio check (the paper's Fig. 13): with no speech the mouth stays closed and still."""

from __future__ import annotations

import numpy as np
import torch

from ..data.dataset import TalkingFaceDataset
from ..train.au_classifier import classify_frames
from .talking import generate


def _mouth_motion(frames: torch.Tensor) -> float:
    """Mean |change| between consecutive frames in the mouth box, on a 0-1 scale."""
    s = frames.shape[-1]
    box = frames[:, :, int(0.62 * s): int(0.9 * s), int(0.3 * s): int(0.7 * s)]
    return float((box[1:] - box[:-1]).abs().mean() / 2) if len(frames) > 1 else 0.0


@torch.no_grad()
def silence_check(model, judge, root, clips: list[dict], mfcc_stats, *,
                  noise_dbfs: float | None = None, seed: int = 0,
                  steps: int | None = None) -> dict:
    """Drive the model with silence instead of speech (the paper's Fig. 13 check).

    For each clip's identity, generate as many frames from silent audio (digital silence, or
    white noise at ``noise_dbfs``) as from its real audio, and compare: the judge's AU25/AU26
    occurrence rates, and the motion in the mouth box between consecutive frames.
    """
    from ..audio import SAMPLE_RATE, mfcc_windows

    mean, std = (torch.as_tensor(np.asarray(x), dtype=torch.float32) for x in mfcc_stats)
    rng = np.random.default_rng(seed)
    data = TalkingFaceDataset(root, clips, fields=("identity", "mfcc"), normalize_mfcc=mfcc_stats)
    silent_frames, speech_frames = [], []
    for i in range(len(data)):
        it = data[i]
        n = len(it["mfcc"])
        samples = int(np.ceil(n / 25 * SAMPLE_RATE))
        audio = (np.zeros(samples, np.float32) if noise_dbfs is None else
                 (10 ** (noise_dbfs / 20) * rng.standard_normal(samples)).astype(np.float32))
        quiet = (torch.from_numpy(mfcc_windows(audio, SAMPLE_RATE, n)) - mean) / std
        silent_frames.append(generate(model, it["identity"], quiet, seed=seed, steps=steps))
        speech_frames.append(generate(model, it["identity"], it["mfcc"], seed=seed, steps=steps))
    k25, k26 = 3, 4  # AU25, AU26 in coursekit.au.AUS order
    sil = np.concatenate([classify_frames(judge, f) for f in silent_frames])
    spe = np.concatenate([classify_frames(judge, f) for f in speech_frames])
    return {"au25": sil[:, k25].mean(), "au26": sil[:, k26].mean(),
            "speech_au25": spe[:, k25].mean(), "speech_au26": spe[:, k26].mean(),
            "silent_motion": float(np.mean([_mouth_motion(f) for f in silent_frames])),
            "speech_motion": float(np.mean([_mouth_motion(f) for f in speech_frames]))}

