"""Evaluating generated talking faces beside baselines computed the same way.

A number alone says little: on GRID-like data a model that ignores the audio can score well.
Every score is therefore reported beside three baselines:

* **copy identity**: every frame is the identity image (a still face);
* **shuffled audio**: the same model driven by another utterance's audio;
* **position only**: no audio and no model, the occurrence of each AU guessed from the frame's
  position in the clip (the per-position rate over the training clips, thresholded at 0.5).

The AUs of generated frames are read by a *judge*: an AU classifier trained on real frames
only, with another seed than the one used in the AU loss, and never used for training.
Image quality (PSNR, SSIM against the real frames) is reported too; note that on GRID-like
data, where the face barely moves, copying the identity frame already scores a high PSNR.

Both renderers are evaluated the same way: the image-decoder :class:`~coursekit.models.talker.Talker`
and the :class:`~coursekit.models.diffusion.DiffusionTalker` (sampled with DDIM from one
seeded noise image per clip).
"""

from __future__ import annotations

import numpy as np
import torch

from .data.dataset import TalkingFaceDataset
from .metrics import accuracy_per_au, f1_per_au, psnr, ssim
from .train.au_classifier import classify_frames
from .train.audio2au import fit_length, label_priors, position_predict, shuffle_partners


@torch.no_grad()
def generate(model, identity: torch.Tensor, mfcc: torch.Tensor, *, seed: int = 0,
             steps: int | None = None) -> torch.Tensor:
    """Frames for one clip: identity ``(3, S, S)``, normalised MFCC ``(T, 12, 28)`` ->
    ``(T, 3, S, S)`` in [-1, 1]. The model sees nothing of the target video.

    A diffusion renderer (a model with ``sample``) is sampled with ``steps`` DDIM steps
    (its config's default when None) from the noise seeded by ``seed``."""
    model.eval()
    if hasattr(model, "sample"):
        return model.sample(identity[None], mfcc[None], steps=steps, seed=seed)[0]
    return model(identity[None], mfcc[None])["frames"][0]


def evaluate_talker(model, judge, root, test: list[dict], train: list[dict], mfcc_stats, *,
                    steps: int | None = None, seed: int = 0) -> dict:
    """AU occurrence F1 and accuracy of generated frames and of the baselines, and PSNR/SSIM
    of every set of frames against the real ones.

    Returns ``{name: {"f1": (5,), "accuracy": (5,), "psnr": float, "ssim": float}}`` for
    ``model``, ``shuffled audio`` (the audio of :func:`~coursekit.train.audio2au.shuffle_partners`'
    partner clip, cropped or padded to length), ``position only`` (no frames: no PSNR/SSIM),
    ``copy identity`` and ``real frames`` (the judge on the real video: how well the judge
    itself reads AUs, an upper bound; the reference of PSNR/SSIM, so none of its own). ``steps`` and ``seed`` apply to diffusion renderers.
    """
    data = TalkingFaceDataset(root, test, fields=("frames", "identity", "mfcc", "occurrence"),
                              normalize_mfcc=mfcc_stats)
    items = [data[i] for i in range(len(data))]
    partners = shuffle_partners(test)
    position_rates = label_priors(root, train)["position_rates"].numpy()
    names = ("model", "shuffled audio", "position only", "copy identity", "real frames")
    preds = {k: [] for k in names}
    quality = {k: {"psnr": [], "ssim": []} for k in ("model", "shuffled audio", "copy identity")}
    truth = []
    for i, it in enumerate(items):
        n = len(it["occurrence"])
        other = items[partners[i]]["mfcc"]  # another held-out utterance
        frames = {
            "model": generate(model, it["identity"], it["mfcc"], seed=seed, steps=steps),
            "shuffled audio": generate(model, it["identity"],
                                       torch.from_numpy(fit_length(other.numpy(), n)),
                                       seed=seed, steps=steps),
            "copy identity": it["identity"][None].expand(n, -1, -1, -1),
            "real frames": it["frames"]}
        for name, f in frames.items():
            preds[name].append(classify_frames(judge, f))
            if name in quality:
                quality[name]["psnr"].append(psnr(f, it["frames"]))
                quality[name]["ssim"].append(ssim(f, it["frames"]))
        preds["position only"].append(position_predict(position_rates, n))
        truth.append(it["occurrence"].numpy().astype(bool))
    true = np.concatenate(truth)
    out = {}
    for k, v in preds.items():
        out[k] = {"f1": f1_per_au(np.concatenate(v), true),
                  "accuracy": accuracy_per_au(np.concatenate(v), true)}
        if k in quality:
            out[k].update({m: float(np.mean(q)) for m, q in quality[k].items()})
    return out


def _mouth_motion(frames: torch.Tensor) -> float:
    """Mean |change| between consecutive frames in the mouth box, on a 0-1 scale."""
    s = frames.shape[-1]
    box = frames[:, :, int(0.62 * s): int(0.9 * s), int(0.3 * s): int(0.7 * s)]
    return float((box[1:] - box[:-1]).abs().mean() / 2) if len(frames) > 1 else 0.0


@torch.no_grad()
def silence_check(model, judge, root, clips: list[dict], mfcc_stats, *,
                  noise_dbfs: float | None = None, seed: int = 0) -> dict:
    """Drive the model with silence instead of speech (the paper's Fig. 13 check).

    For each clip's identity, generate as many frames from silent audio (digital silence, or
    white noise at ``noise_dbfs``) as from its real audio, and compare: the judge's AU25/AU26
    occurrence rates, and the motion in the mouth box between consecutive frames.
    """
    from .audio import SAMPLE_RATE, mfcc_windows

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
        silent_frames.append(generate(model, it["identity"], quiet))
        speech_frames.append(generate(model, it["identity"], it["mfcc"]))
    k25, k26 = 3, 4  # AU25, AU26 in coursekit.au.AUS order
    sil = np.concatenate([classify_frames(judge, f) for f in silent_frames])
    spe = np.concatenate([classify_frames(judge, f) for f in speech_frames])
    return {"au25": sil[:, k25].mean(), "au26": sil[:, k26].mean(),
            "speech_au25": spe[:, k25].mean(), "speech_au26": spe[:, k26].mean(),
            "silent_motion": float(np.mean([_mouth_motion(f) for f in silent_frames])),
            "speech_motion": float(np.mean([_mouth_motion(f) for f in speech_frames]))}
