"""Per-frame phonemes of a clip: the text input of the landmark predictor.

Each video frame ``k`` (time ``k / fps``, as :func:`coursekit.data.corpus.speech_mask`) gets
the id of the phoneme sounding then, from a fixed inventory (:data:`PHONEMES`, espeak-ng's
English mnemonics without stress marks): id 0 is silence (GRID's ``sil``/``sp``, espeak's
pauses ``_``, ``_:``, ...), id 1 any symbol outside the inventory.

Two sources, both in the GRID layout (``<speaker>/align/<utt>.phn|.align``, 1/25000 s):

* a ``.phn`` file (the samples of ``data_samples/``): the exact phonemes espeak spoke;
* a ``.align`` file (real GRID): only word timings. The transcript is spoken once by espeak
  (:func:`coursekit.data.espeak.synthesize`, en-us) and each word's phonemes are spread over
  the word's span in proportion to espeak's own durations (:func:`word_phonemes`).

:func:`phoneme_frames` reads either; :func:`clip_alignment` finds a processed clip's file
from its ``meta.json`` (the video's corpus folder) or from a given corpus root.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np

from .corpus import REPO, read_align
from .espeak import synthesize

SILENCE, UNKNOWN = 0, 1
PHONEMES = (
    "_", "?",  # silence, unknown
    # vowels and diphthongs
    "@", "@2", "@5", "@L", "3", "3:", "a", "a#", "aa", "A:", "A@", "aI", "aI2", "aI@", "aU",
    "aU@", "E", "e@", "eI", "I", "I#", "I2", "i", "i:", "i@", "i@3", "0", "O:", "O@", "o@",
    "OI", "oU", "U", "U@", "u:", "V",
    # consonants
    "b", "d", "d#", "D", "dZ", "f", "g", "h", "j", "k", "l", "m", "n", "N", "n-", "p", "r",
    "s", "S", "t", "t#", "T", "tS", "v", "w", "w#", "x", "z", "Z",
)
"""The fixed phoneme inventory: ``PHONEMES[id]`` (0 silence, 1 unknown)."""
PHONEME_IDS = {symbol: i for i, symbol in enumerate(PHONEMES)}
SILENT_WORDS = ("sil", "sp")


def phoneme_id(symbol: str) -> int:
    """The id of an espeak symbol: 0 for pauses (``_...``) and silent words, 1 if unknown."""
    if symbol.startswith("_") or symbol in SILENT_WORDS:
        return SILENCE
    return PHONEME_IDS.get(symbol, UNKNOWN)


def frames_of(segments: list[tuple[float, float, str]], n_frames: int,
              fps: float = 25.0) -> np.ndarray:
    """``(n_frames,)`` int64 phoneme ids of timed ``(start_s, end_s, symbol)`` segments: frame
    ``k`` takes the segment containing ``k / fps`` (silence outside every segment)."""
    ids = np.full(n_frames, SILENCE, dtype=np.int64)
    t = np.arange(n_frames) / fps
    for start, end, symbol in segments:
        ids[(t >= start) & (t < end)] = phoneme_id(symbol)
    return ids


@functools.lru_cache(maxsize=4096)
def word_phonemes(words: tuple[str, ...]) -> tuple[tuple[tuple[str, float], ...], ...]:
    """Each word's phonemes with espeak's durations (seconds), the transcript spoken as one
    sentence (so that words join as in speech); a word espeak merged away falls back to
    being spoken alone. ``(("b", 0.04), ("I", 0.12), ...)`` per word."""
    speech = synthesize(" ".join(words))
    spoken = [p for p in speech.phones if not p.is_pause]
    if len(speech.words) != len(words):
        return tuple(word_phonemes((w,))[0] for w in words)
    out = []
    for w in speech.words:
        inside = [p for p in spoken if p.start >= w.start - 1e-6 and p.end <= w.end + 1e-6]
        out.append(tuple((p.symbol, p.end - p.start) for p in inside))
    return tuple(out)


def spread_words(words: list[tuple[float, float, str]]) -> list[tuple[float, float, str]]:
    """Phoneme segments of timed words ``(start_s, end_s, word)`` (a GRID ``.align``):
    each word's espeak phonemes share its span in proportion to their espeak durations."""
    spoken = [(s, e, w) for s, e, w in words if w not in SILENT_WORDS]
    if not spoken:
        return []
    segments = []
    for (start, end, _), phones in zip(spoken, word_phonemes(tuple(w for _, _, w in spoken))):
        if not phones:
            continue
        durations = np.array([d for _, d in phones], np.float64)
        edges = start + (end - start) * np.concatenate([[0], np.cumsum(durations)]) / durations.sum()
        segments += [(float(a), float(b), sym) for (sym, _), a, b in zip(phones, edges, edges[1:])]
    return segments


def phoneme_frames(path: str | Path, n_frames: int, fps: float = 25.0) -> np.ndarray:
    """``(n_frames,)`` int64 phoneme ids of a clip from its ``.phn`` (exact phonemes) or
    ``.align`` (word timings, phonemes from espeak: :func:`spread_words`)."""
    path = Path(path)
    if path.suffix not in (".phn", ".align"):
        raise ValueError(f"{path}: expected a .phn or .align file")
    rows = read_align(path)
    return frames_of(rows if path.suffix == ".phn" else spread_words(rows), n_frames, fps)


def clip_alignment(folder: str | Path, corpus: str | Path | None = None) -> Path:
    """The ``.phn`` (preferred) or ``.align`` of a processed clip folder: in
    ``corpus/<speaker>/align/`` when ``corpus`` is given, else beside its video
    (``meta.json``'s ``video``, relative paths from the repository)."""
    meta = json.loads((Path(folder) / "meta.json").read_text())
    if corpus is not None:
        base = Path(corpus) / meta["speaker"]
    else:
        video = Path(meta.get("video") or meta.get("audio") or "")
        base = (video if video.is_absolute() else REPO / video).parent.parent
    for suffix in (".phn", ".align"):
        path = base / "align" / f"{meta['utt']}{suffix}"
        if path.is_file():
            return path
    raise FileNotFoundError(f"{folder}: no {meta['utt']}.phn or .align in {base / 'align'}")
