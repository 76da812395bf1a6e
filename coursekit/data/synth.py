"""The shipped sample corpus: synthetic talking faces with exact ground truth.

Every clip is made in four steps, each a function below:

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
from ..audio import SAMPLE_RATE, resample
from .corpus import sha256

GRID_WORDS = {
    "command": ["bin", "lay", "place", "set"],
    "colour": ["blue", "green", "red", "white"],
    "preposition": ["at", "by", "in", "with"],
    "letter": list("abcdefghijklmnopqrstuvxyz"),  # GRID has no 'w'
    "digit": ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"],
    "adverb": ["again", "now", "please", "soon"],
}

SPOKEN_AS = {"a": "eh"}
"""Words espeak-ng must be given differently: GRID's letter "a" is the letter name /eI/."""

# ----------------------------------------------------------------------------- visemes

# Target AU intensities (AU10, AU14, AU20, AU25, AU26) per class of espeak-ng phoneme, and the
# class's dominance (how strongly it imposes its shape on its neighbours). Bilabials must
# close the lips, so they dominate, but only nearby (see REACH_S); vowels yield to neighbours.
VISEMES: dict[str, tuple[tuple[float, float, float, float, float], float]] = {
    "pause":       ((0.0, 0.0, 0.0, 0.0, 0.0), 1.0),
    "bilabial":    ((0.0, 2.2, 0.0, 0.0, 0.0), 6.0),   # p b m: lips pressed together
    "labiodental": ((2.6, 0.0, 0.4, 1.4, 0.4), 3.0),   # f v: lower lip to upper teeth
    "dental":      ((1.0, 0.0, 0.8, 2.0, 1.2), 1.5),   # th
    "alveolar":    ((0.6, 0.0, 1.2, 1.8, 1.2), 0.8),   # t d n l
    "sibilant":    ((1.0, 0.0, 2.2, 1.6, 0.6), 1.5),   # s z: teeth close, lips spread
    "postalveolar": ((2.2, 0.6, 0.0, 2.0, 1.0), 1.5),  # sh ch j: lips forward
    "approximant": ((0.3, 2.6, 0.0, 1.2, 0.6), 1.2),   # w r: rounded
    "palatal":     ((0.8, 0.0, 2.0, 1.5, 0.8), 0.8),   # y
    "velar":       ((0.4, 0.0, 0.8, 1.8, 1.6), 0.5),   # k g ng h
    "open":        ((1.0, 0.0, 0.6, 3.8, 3.8), 1.0),   # a in "bat", "father"
    "mid":         ((0.8, 0.0, 1.4, 3.0, 2.6), 1.0),   # e, uh, aw
    "schwa":       ((0.4, 0.0, 0.6, 2.2, 1.6), 0.6),   # unstressed vowels
    "front":       ((2.0, 0.0, 2.8, 2.2, 1.0), 1.0),   # ee, i: spread lips, upper lip up
    "rounded":     ((0.0, 2.4, 0.0, 1.8, 1.4), 1.0),   # oo, o: rounded, corners tight
}

REACH_S = {"bilabial": 0.018, "labiodental": 0.022}
"""How far (seconds) a class's dominance reaches out of its phoneme; default ``spread_s``."""

_CONSONANTS = {
    "p": "bilabial", "b": "bilabial", "m": "bilabial",
    "f": "labiodental", "v": "labiodental", "T": "dental", "D": "dental",
    "t": "alveolar", "d": "alveolar", "n": "alveolar", "l": "alveolar", "t#": "alveolar",
    "s": "sibilant", "z": "sibilant", "S": "postalveolar", "Z": "postalveolar",
    "tS": "postalveolar", "dZ": "postalveolar", "w": "approximant", "r": "approximant",
    "j": "palatal", "k": "velar", "g": "velar", "N": "velar", "h": "velar", "x": "velar",
}
_VOWELS = {  # by the first letter of the espeak-ng symbol
    "a": "open", "A": "open", "0": "mid", "O": "mid", "V": "mid", "E": "mid", "e": "mid",
    "3": "schwa", "@": "schwa", "i": "front", "I": "front", "u": "rounded", "U": "rounded",
    "o": "rounded", "Y": "front", "y": "rounded",
}


def viseme_class(symbol: str) -> str:
    """Map an espeak-ng phoneme symbol (``"b"``, ``"aI"``, ``"@L"``, ``"_:"``) to a viseme class."""
    s = symbol.strip().rstrip(";:'\",%=")
    if not s or s.startswith("_"):
        return "pause"
    if s in _CONSONANTS:
        return _CONSONANTS[s]
    if s[0] in _VOWELS:
        return _VOWELS[s[0]]
    for length in (2, 1):  # e.g. "l/", "r-", "n-": fall back on the leading letters
        if s[:length] in _CONSONANTS:
            return _CONSONANTS[s[:length]]
    return "schwa"


def phones_to_aus(phones, times: np.ndarray, *, spread_s: float = 0.045,
                  gain: float = 1.0) -> np.ndarray:
    """AU intensities at ``times`` from timed phonemes, with coarticulation.

    Cohen-Massaro blending: phoneme ``i`` has a target ``T_i`` (its viseme) and a dominance
    ``D_i(t) = a_i`` inside the phoneme, decaying as ``a_i exp(-dist / reach_i)`` outside it
    (``reach_i`` is :data:`REACH_S` for lip closures, which act strongly but locally, and
    ``spread_s`` for the rest).
    The AU trajectory is the dominance-weighted mean ``sum_i D_i(t) T_i / sum_i D_i(t)``.
    Diphthongs (``aI``, ``eI``, ``aU``, ``oU``, ``OI``) glide from their first to their
    second vowel.

    Args:
        phones: sequence of objects with ``symbol``, ``start`` and ``end`` (seconds), covering
            the whole clip including pauses.
        times: ``(n,)`` seconds at which to evaluate (e.g. video frame times).
        spread_s: how far (seconds) a phoneme's influence reaches into its neighbours.
        gain: speaker expressiveness, scales every intensity (clipped to 0-5).

    Returns:
        ``(n, 5)`` float32 intensities in the order of :data:`coursekit.au.AUS`.
    """
    segments = []  # (start, end, target, dominance, reach)
    for ph in phones:
        parts = _split_diphthong(ph.symbol)
        edges = np.linspace(ph.start, ph.end, len(parts) + 1)
        for part, a, b in zip(parts, edges[:-1], edges[1:]):
            cls = viseme_class(part)
            target, dominance = VISEMES[cls]
            segments.append((a, b, target, dominance, REACH_S.get(cls, spread_s)))
    if not segments:
        return np.zeros((len(times), len(AUS)), dtype=np.float32)
    start, end, target, dom, reach = (np.array(x, dtype=np.float64) for x in zip(*segments))
    t = np.asarray(times, dtype=np.float64)[:, None]
    dist = np.maximum(0.0, np.maximum(start[None] - t, t - end[None]))  # 0 inside the phoneme
    weight = dom[None] * np.exp(-dist / reach[None])
    aus = (weight @ target) / np.maximum(weight.sum(axis=1, keepdims=True), 1e-12)
    return np.clip(aus * gain, 0.0, 5.0).astype(np.float32)


def _split_diphthong(symbol: str) -> list[str]:
    glides = {"aI": ["a", "I"], "eI": ["e", "I"], "aU": ["a", "U"], "oU": ["o", "U"],
              "OI": ["O", "I"], "aI@": ["a", "I", "@"], "aU@": ["a", "U", "@"],
              "e@": ["e", "@"], "i@": ["i", "@"], "U@": ["U", "@"]}
    return glides.get(symbol.strip().rstrip(";:'\",%="), [symbol])


# ----------------------------------------------------------------------------- speech


@dataclass(frozen=True)
class TimedPhone:
    symbol: str
    start: float
    end: float


@dataclass
class Utterance:
    """A synthesised clip's sound and timing, before any face is drawn."""

    utt_id: str
    words: list[tuple[str, float, float]]  # (word, start, end) seconds
    phones: list[TimedPhone]  # covers [0, duration], pauses as "_"
    audio: np.ndarray  # (n_samples,) float32 at 16 kHz, exactly n_frames / fps long
    n_frames: int


def grid_sentence(rng: np.random.Generator) -> tuple[list[str], str]:
    """A random GRID-grammar sentence and its GRID utterance id (``bbaf2n``)."""
    words = [str(rng.choice(GRID_WORDS[k])) for k in GRID_WORDS]
    digit = str(GRID_WORDS["digit"].index(words[4])) if words[4] != "zero" else "z"
    utt_id = words[0][0] + words[1][0] + words[2][0] + words[3] + digit + words[5][0]
    return words, utt_id


@dataclass
class Voice:
    """espeak-ng settings that make one synthetic speaker sound different."""

    name: str = "en-us"
    pitch: int = 50
    pitch_range: int = 50
    rate: tuple[int, int] = (140, 190)  # words per minute, drawn per clip


def speak(words: list[str], utt_id: str, voice: Voice, rng: np.random.Generator, *,
          fps: float = 25.0, lead_s=(0.15, 1.2), trail_s=(0.15, 0.8),
          pause_prob: float = 0.4, pause_s=(0.12, 0.45), noise_dbfs: float = -55.0) -> Utterance:
    """Synthesise a sentence with random timing: rate, an optional inner pause, silences.

    The clip lasts a whole number of video frames; the audio gets a little background noise so
    that pauses sound like a real recording rather than digital silence.
    """
    from . import espeak

    rate = int(rng.integers(voice.rate[0], voice.rate[1] + 1))
    cut = int(rng.integers(2, len(words) - 1)) if rng.random() < pause_prob else len(words)
    chunks = [words[:cut], words[cut:]] if cut < len(words) else [words]
    lead, trail = rng.uniform(*lead_s), rng.uniform(*trail_s)
    pieces, phones, timed_words, t = [np.zeros(int(lead * SAMPLE_RATE), np.float32)], [], [], lead
    for i, chunk in enumerate(chunks):
        if i:  # a pause inside the sentence
            gap = rng.uniform(*pause_s)
            pieces.append(np.zeros(int(gap * SAMPLE_RATE), np.float32))
            t += pieces[-1].size / SAMPLE_RATE
        spoken = [SPOKEN_AS.get(w, w) for w in chunk]
        sp = espeak.synthesize(" ".join(spoken), voice=voice.name, rate=rate, pitch=voice.pitch,
                               pitch_range=voice.pitch_range)
        if len(sp.words) != len(chunk):
            raise RuntimeError(f"espeak-ng timed {len(sp.words)} words for {chunk}")
        audio = resample(sp.audio, sp.sr, SAMPLE_RATE) if sp.sr != SAMPLE_RATE else sp.audio
        phones += [TimedPhone(p.symbol, t + p.start, t + p.end) for p in sp.phones]
        timed_words += [(word, t + w.start, t + w.end) for word, w in zip(chunk, sp.words)]
        pieces.append(audio.astype(np.float32))
        t += audio.size / SAMPLE_RATE
    n_frames = int(np.ceil((t + trail) * fps))
    n_samples = int(round(n_frames * SAMPLE_RATE / fps))
    audio = np.zeros(n_samples, np.float32)
    speech = np.concatenate(pieces)[:n_samples]
    audio[: speech.size] = speech
    audio += (10 ** (noise_dbfs / 20) * rng.standard_normal(n_samples)).astype(np.float32)
    return Utterance(utt_id, timed_words, _fill_pauses(phones, n_samples / SAMPLE_RATE),
                     audio, n_frames)


def _fill_pauses(phones: list[TimedPhone], duration: float) -> list[TimedPhone]:
    """Make the phoneme list cover ``[0, duration]``, with ``_`` for every gap."""
    out, t = [], 0.0
    for p in sorted(phones, key=lambda p: p.start):
        if p.start > t + 1e-4:
            out.append(TimedPhone("_", t, p.start))
        out.append(p)
        t = max(t, p.end)
    if duration > t + 1e-4:
        out.append(TimedPhone("_", t, duration))
    return out


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
