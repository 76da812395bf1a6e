"""Other voices from one: augmented copies of training clips for Audio2AU.

A speaker's voice reaches the MFCCs mostly through the length of the vocal tract (formant
frequencies), the recording chain (spectral tilt) and the background noise. Audio2AU trained
on one real voice hears those differences as content; training it on copies of every clip
with those properties drawn at random, the same AU labels on the same frames, teaches it to
ignore them. Per copy (:class:`VoiceAugmentConfig`):

* vocal tract length perturbation (VTLP, Jaitly & Hinton 2013): the mel filters' frequency
  axis warped by ``alpha`` (:func:`coursekit.audio.mel_filterbank`), ``alpha > 1`` sounding
  like a shorter vocal tract;
* an EQ tilt: the first-order filter ``y[n] = x[n] + b x[n - 1]`` (``b > 0`` dulls the highs);
* white noise at a random signal-to-noise ratio;
* optionally a pitch shift (``librosa.effects.pitch_shift``, slower; 0 semitones = off).

Each copy's draws come from ``(seed, clip key, copy)``, so a run is reproducible and adding
clips never changes the others' copies. The copies are written as clips of a processed
dataset (``mfcc.npy``, ``occurrence.npy``, ``aus.npy``, ``meta.json``) under a cache folder;
their clip dicts carry a ``"path"``, so every dataset reader finds them.

Python use::

    from coursekit.train.audio_augment import VoiceAugmentConfig, augment_voices

    extra = augment_voices("proc", train_clips, "runs/voices", VoiceAugmentConfig(copies=4))
"""

from __future__ import annotations

import json
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..audio import mfcc_windows
from ..data.splits import clip_key
from ..evaluate.rows import clip_array, clip_audio


@dataclass
class VoiceAugmentConfig:
    """How each augmented copy of a clip is drawn.

    copies: augmented copies per clip (the clip itself is kept as well). vtlp: range of the
        VTLP factor ``alpha`` (uniform; ``(1, 1)`` turns it off). tilt: the EQ filter's ``b``
        is uniform in ``[-tilt, tilt]``. noise: probability of adding white noise, at a
        signal-to-noise ratio uniform in ``snr_db`` (dB, over the clip's mean power).
        pitch: semitones, uniform in ``[-pitch, pitch]`` (0 = no pitch shift). seed: of the
        draws.
    """

    copies: int = 4
    vtlp: tuple = (0.8, 1.2)
    tilt: float = 0.3
    noise: float = 0.5
    snr_db: tuple = (20.0, 40.0)
    pitch: float = 0.0
    seed: int = 0

    def __post_init__(self):
        self.vtlp, self.snr_db = tuple(self.vtlp), tuple(self.snr_db)
        if self.copies < 0 or not 0 < self.vtlp[0] <= self.vtlp[1]:
            raise ValueError(f"voice augmentation needs copies >= 0 and 0 < vtlp[0] <= vtlp[1], "
                             f"got copies={self.copies}, vtlp={self.vtlp}")


def draw(cfg: VoiceAugmentConfig, key: str, copy: int) -> dict:
    """One copy's parameters: ``alpha``, ``tilt``, ``snr_db`` (None: no noise), ``pitch``."""
    rng = np.random.default_rng([cfg.seed, zlib.crc32(key.encode()), copy])
    alpha = float(rng.uniform(*cfg.vtlp))
    tilt = float(rng.uniform(-cfg.tilt, cfg.tilt))
    snr = float(rng.uniform(*cfg.snr_db)) if rng.random() < cfg.noise else None
    pitch = float(rng.uniform(-cfg.pitch, cfg.pitch)) if cfg.pitch > 0 else 0.0
    return {"alpha": alpha, "tilt": tilt, "snr_db": snr, "pitch": pitch,
            "noise_seed": int(rng.integers(2 ** 31))}


def perturb(audio: np.ndarray, sr: int, params: dict) -> np.ndarray:
    """The waveform part of one copy (pitch, tilt, noise; VTLP acts on the MFCCs)."""
    x = audio.astype(np.float64)
    if params["pitch"]:
        import librosa

        x = librosa.effects.pitch_shift(x, sr=sr, n_steps=params["pitch"])
    if params["tilt"]:
        x = np.concatenate([x[:1], x[1:] + params["tilt"] * x[:-1]]) / (1 + abs(params["tilt"]))
    if params["snr_db"] is not None:
        power = float(np.mean(x ** 2)) + 1e-12
        noise = np.random.default_rng(params["noise_seed"]).standard_normal(x.size)
        x = x + noise * np.sqrt(power / 10 ** (params["snr_db"] / 10))
    return x.astype(np.float32)


def augment_voices(root, clips: list[dict], out_dir, cfg: VoiceAugmentConfig | None = None,
                   repo: Path | None = None) -> list[dict]:
    """Write ``cfg.copies`` augmented copies of each clip (processed dataset ``root``; clip
    dicts with a ``"path"`` may live elsewhere) under ``out_dir/<speaker>/<utt>~v<k>`` and
    return their clip dicts (``utt`` ``"<utt>~v<k>"``, ``path`` set). A copy whose folder
    already holds the same parameters is kept as it is. Each copy's MFCC windows
    ``(T, 12, 28)`` have the clip's frame count; its ``occurrence`` and ``aus`` are the clip's.
    """
    cfg = cfg or VoiceAugmentConfig()
    out_dir, extra = Path(out_dir), []
    for clip in clips:
        folder = Path(clip["path"]) if "path" in clip else Path(root) / clip["dir"]
        audio = None
        for k in range(cfg.copies):
            params = draw(cfg, clip_key(clip), k)
            utt = f"{clip['utt']}~v{k}"
            dest = out_dir / clip["speaker"] / utt
            record = {"speaker": clip["speaker"], "utt": utt, "n_frames": int(clip["n_frames"]),
                      "source": str(folder), "augment": params, "config": asdict(cfg)}
            done = dest / "meta.json"
            if not (done.is_file() and json.loads(done.read_text()) == json.loads(
                    json.dumps(record))):
                if audio is None:
                    audio, sr, meta = clip_audio(folder, repo)
                mfcc = mfcc_windows(perturb(audio, sr, params), sr, int(clip["n_frames"]),
                                    meta["fps"], warp=params["alpha"])
                dest.mkdir(parents=True, exist_ok=True)
                np.save(dest / "mfcc.npy", mfcc)
                for field in ("occurrence", "aus"):
                    np.save(dest / f"{field}.npy", clip_array(clip, root, field))
                done.write_text(json.dumps(record))
            extra.append({"speaker": clip["speaker"], "utt": utt, "n_frames": int(clip["n_frames"]),
                          "dir": f"{clip['speaker']}/{utt}", "path": str(dest)})
    return extra
