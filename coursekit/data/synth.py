"""The shipped sample corpus: synthetic talking faces with exact ground truth.

Every clip is made in four steps, each a function importable from here:

1. **Sentence** (:func:`grid_sentence`): a random sentence of the GRID grammar, e.g.
   ``bin blue at f two now`` (utterance id ``bbaf2n``, as in the GRID corpus).
2. **Speech** (:func:`speak`): espeak-ng synthesises it in the speaker's voice, with a random
   speaking rate, an optional pause inside the sentence and random leading/trailing silence,
   and reports when every phoneme starts and ends.
3. **Action units** (:func:`phones_to_aus`): each phoneme has a target mouth shape (a viseme,
   written as five AU intensities); the Cohen-Massaro coarticulation model blends neighbouring
   targets, so the mouth anticipates the next sound and lingers on the last.
4. **Faces** (:func:`render_clip`): the AUs, blinks and slight head motion move 68 landmarks,
   and :mod:`coursekit.data.facerender` draws the face from them.

Steps 1-3 are defined in :mod:`coursekit.data.synthspeech`, step 4 and the corpus writing
below.

Because the timing of speech differs from clip to clip (leading silence of 0.15-1.2 s), a model
cannot guess the mouth from the frame index alone, unlike real GRID where every clip speaks at
about the same times.

Layout written by :func:`generate_corpus` (GRID's, plus ground truth)::

    data_samples/
      README.md, corpus.json          description, speakers, settings, file checksums
      <speaker>/video/<utt>.mp4       160x160, 25 fps, H.264 + AAC
      <speaker>/audio/<utt>.flac      16 kHz mono, the exact synthesised audio
      <speaker>/align/<utt>.align     words: "start end word", units of 1/25000 s, sil/sp
      <speaker>/align/<utt>.phn       phonemes, same format (espeak-ng symbols)
      <speaker>/gt/<utt>.csv          per frame, OpenFace layout: x_0..x_67, y_0..y_67,
                                      AU10_r..AU26_r (0-5) and AU10_c..AU26_c (0/1)
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..au import AUS, OCCURRENCE_THRESHOLD
from ..audio import SAMPLE_RATE
from .corpus import sha256
from .synthspeech import (GRID_WORDS, REACH_S, SPOKEN_AS, VISEMES, TimedPhone, Utterance, Voice,
                          grid_sentence, phones_to_aus, speak, viseme_class)

__all__ = [
    "GRID_WORDS", "REACH_S", "SPOKEN_AS", "VISEMES", "CorpusConfig", "TimedPhone", "Utterance",
    "Voice", "align_lines", "blinks", "generate_corpus", "grid_sentence", "gt_table",
    "head_motion", "make_utterance", "phones_to_aus", "render_clip", "speak", "speaker_rngs",
    "viseme_class", "write_utterance",
]


def align_lines(words: list[tuple[str, float, float]], duration: float) -> list[str]:
    """GRID ``.align`` lines (units of 1/25000 s): ``sil`` at the ends, ``sp`` for pauses."""
    def unit(s: float) -> int:
        return int(round(s * 25000))

    rows, t = [], 0.0
    for i, (word, start, end) in enumerate(words):
        if start > t + 0.03 or (i == 0 and start > t):
            rows.append((t, start, "sil" if i == 0 else "sp"))
        elif rows:  # a tiny gap: close it
            rows[-1] = (rows[-1][0], start, rows[-1][2])
        rows.append((start, end, word))
        t = end
    rows.append((t, duration, "sil"))
    return [f"{unit(a)} {unit(b)} {w}" for a, b, w in rows]


# ----------------------------------------------------------------------------- faces


def head_motion(n_frames: int, rng: np.random.Generator, fps: float = 25.0) -> np.ndarray:
    """Slow, smooth head motion: ``(n_frames, 4)`` = (dx px, dy px, roll degrees, scale)."""
    t = np.arange(n_frames)[:, None] / fps
    freq = rng.uniform(0.1, 0.6, size=(3, 4))
    phase = rng.uniform(0, 2 * np.pi, size=(3, 4))
    amp = np.array([1.6, 1.2, 1.5, 0.012]) * rng.uniform(0.5, 1.0, size=(3, 4)) / 1.7
    motion = (amp[None] * np.sin(2 * np.pi * freq[None] * t[..., None] + phase[None])).sum(1)
    motion[:, 3] += 1.0
    return motion.astype(np.float32)


def blinks(n_frames: int, rng: np.random.Generator, fps: float = 25.0,
           rate_hz: float = 0.35) -> np.ndarray:
    """Eyelid closure per frame, 0 open to 1 closed: ``(n_frames,)``. Fast close, slower open."""
    t = np.arange(n_frames) / fps
    closure = np.zeros(n_frames, dtype=np.float32)
    onset = rng.uniform(-0.5, 1.5)
    while onset < t[-1] + 0.3:
        rel = t - onset
        shape = np.where(rel < 0.07, rel / 0.07, 1.0 - (rel - 0.07) / 0.15)
        closure = np.maximum(closure, np.clip(np.where((rel >= 0) & (rel < 0.22), shape, 0), 0, 1))
        onset += rng.exponential(1.0 / rate_hz) + 0.4
    return closure


def render_clip(identity, aus: np.ndarray, rng: np.random.Generator, size: int = 160,
                fps: float = 25.0) -> tuple[np.ndarray, np.ndarray]:
    """Draw a clip: ``aus (T, 5)`` -> frames ``(T, size, size, 3)`` uint8, landmarks ``(T, 68, 2)``."""
    from . import facerender

    n = len(aus)
    pose, blink = head_motion(n, rng, fps), blinks(n, rng, fps)
    frames = np.empty((n, size, size, 3), dtype=np.uint8)
    marks = np.empty((n, 68, 2), dtype=np.float32)
    for k in range(n):
        dx, dy, roll, scale = (float(v) for v in pose[k])  # facerender shifts in image widths
        marks[k] = facerender.face_landmarks(identity, aus[k], blink=float(blink[k]),
                                             pose=(dx / size, dy / size, roll, scale), size=size)
        frames[k] = facerender.render_face(identity, marks[k], size=size, blink=float(blink[k]),
                                           aus=aus[k])
    return frames, marks


def gt_table(aus: np.ndarray, landmarks: np.ndarray, fps: float = 25.0) -> str:
    """Per-frame ground truth as an OpenFace-style CSV (same column names as OpenFace 2)."""
    n = len(aus)
    header = (["frame", "face_id", "timestamp", "confidence", "success"]
              + [f"x_{i}" for i in range(68)] + [f"y_{i}" for i in range(68)]
              + [f"{au}_r" for au in AUS] + [f"{au}_c" for au in AUS])
    lines = [", ".join(header)]
    aus = np.round(aus.astype(np.float64), 2)  # as written, so occurrence agrees with the file
    occurrence = (aus >= OCCURRENCE_THRESHOLD).astype(int)
    for k in range(n):
        row = [str(k + 1), "0", f"{k / fps:.3f}", "0.98", "1"]
        row += [f"{v:.1f}" for v in landmarks[k, :, 0]] + [f"{v:.1f}" for v in landmarks[k, :, 1]]
        row += [f"{v:.2f}" for v in aus[k]] + [str(v) for v in occurrence[k]]
        lines.append(", ".join(row))
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- corpus


@dataclass
class CorpusConfig:
    """What :func:`generate_corpus` makes. The defaults are the shipped ``data_samples/``."""

    n_speakers: int = 6
    n_utterances: int = 10
    size: int = 160
    fps: float = 25.0
    seed: int = 2026
    voices: list[Voice] = field(default_factory=lambda: [
        Voice("en-us", 45, 50), Voice("en-gb", 60, 60), Voice("en-us+f3", 55, 70),
        Voice("en-gb-scotland", 40, 40), Voice("en-us+f4", 65, 55), Voice("en-gb+m3", 35, 45),
        Voice("en-us+m5", 50, 30), Voice("en-gb+f2", 70, 60)])


def speaker_rngs(cfg: CorpusConfig, speaker: int) -> list[np.random.Generator]:
    """Independent generators: one for the identity, one per utterance (reproducible alone)."""
    seq = np.random.SeedSequence([cfg.seed, speaker])
    return [np.random.default_rng(s) for s in seq.spawn(1 + cfg.n_utterances)]


def make_utterance(cfg: CorpusConfig, speaker: int, index: int):
    """Everything for utterance ``index`` of ``speaker``: (Utterance, aus, frames, landmarks)."""
    from . import facerender

    rngs = speaker_rngs(cfg, speaker)
    identity = facerender.random_identity(rngs[0])
    gain = float(rngs[0].uniform(0.85, 1.15))
    rng = rngs[1 + index]
    words, utt_id = grid_sentence(rng)
    utt = speak(words, utt_id, cfg.voices[speaker % len(cfg.voices)], rng, fps=cfg.fps)
    aus = phones_to_aus(utt.phones, np.arange(utt.n_frames) / cfg.fps, gain=gain)
    frames, marks = render_clip(identity, aus, rng, cfg.size, cfg.fps)
    return identity, utt, aus, frames, marks


def write_utterance(root: Path, speaker_name: str, utt: Utterance, aus, frames, marks,
                    fps: float = 25.0) -> list[Path]:
    """Write one clip in the corpus layout; returns the files written."""
    import soundfile

    from ..video import write_video

    base = Path(root) / speaker_name
    for sub in ("video", "audio", "align", "gt"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    duration = utt.n_frames / fps
    files = [write_video(base / "video" / f"{utt.utt_id}.mp4", frames, fps, utt.audio, SAMPLE_RATE)]
    flac = base / "audio" / f"{utt.utt_id}.flac"
    soundfile.write(flac, utt.audio, SAMPLE_RATE, subtype="PCM_16")
    files.append(flac)
    texts = {
        base / "align" / f"{utt.utt_id}.align": "\n".join(align_lines(utt.words, duration)) + "\n",
        base / "align" / f"{utt.utt_id}.phn": "".join(
            f"{round(p.start * 25000)} {round(p.end * 25000)} {p.symbol}\n" for p in utt.phones),
        base / "gt" / f"{utt.utt_id}.csv": gt_table(aus, marks, fps),
    }
    for path, text in texts.items():
        path.write_text(text)
        files.append(path)
    return files


def generate_corpus(out: str | Path, cfg: CorpusConfig | None = None, *, progress: bool = True) -> Path:
    """Generate the whole sample corpus into ``out`` (see the module docstring for the layout)."""
    from tqdm.auto import tqdm

    cfg = cfg or CorpusConfig()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    speakers, checksums = {}, {}
    jobs = [(s, u) for s in range(cfg.n_speakers) for u in range(cfg.n_utterances)]
    for s, u in tqdm(jobs, desc="sample clips", disable=not progress):
        name = f"spk{s + 1}"
        identity, utt, aus, frames, marks = make_utterance(cfg, s, u)
        used = speakers.get(name, {}).get("utterances", [])
        if utt.utt_id in used:  # the same sentence drawn twice: keep ids unique, like GRID
            utt.utt_id += str(sum(uid.startswith(utt.utt_id) for uid in used) + 1)
        for path in write_utterance(out, name, utt, aus, frames, marks, cfg.fps):
            checksums[str(path.relative_to(out))] = sha256(path)
        entry = speakers.setdefault(name, {"voice": asdict(cfg.voices[s % len(cfg.voices)]),
                                           "identity": _jsonable(asdict(identity)),
                                           "utterances": []})
        entry["utterances"].append(utt.utt_id)
    meta = {"config": _jsonable(asdict(cfg)), "aus": list(AUS),
            "occurrence_threshold": OCCURRENCE_THRESHOLD, "speakers": speakers,
            "sha256": dict(sorted(checksums.items()))}
    (out / "corpus.json").write_text(json.dumps(meta, indent=1) + "\n")
    return out


def _jsonable(obj):
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return obj
