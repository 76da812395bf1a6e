"""The sound side of a synthetic clip (steps 1-3 of :mod:`coursekit.data.synth`).

1. **Sentence** (:func:`grid_sentence`): a random sentence of the GRID grammar.
2. **Speech** (:func:`speak`): espeak-ng says it in a :class:`Voice` with random timing,
   giving an :class:`Utterance` (audio, timed words and :class:`TimedPhone` phonemes).
3. **Action units** (:func:`phones_to_aus`): phonemes -> visemes (:data:`VISEMES`, five AU
   intensities each), blended by Cohen-Massaro coarticulation into ``(n, 5)`` AU tracks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..au import AUS
from ..audio import SAMPLE_RATE, resample

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
