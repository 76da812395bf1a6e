"""Text input: a sentence spoken by espeak-ng, or a transcript aligned to a recording.

``coursekit generate --text "bin blue at f two now" --face me.jpg --out me.mp4`` speaks the
text with the bundled espeak-ng (:func:`speak`, exact phoneme timings) and makes the video
from that speech; with ``--audio`` as well, the text is the recording's transcript and
:func:`align` times its phonemes on the recording:

1. espeak speaks the text, so its phoneme boundaries are known to the sample;
2. both are resampled to 16 kHz and turned into the course's 12 MFCCs per 10 ms cell
   (:func:`coursekit.audio.mfcc`), plus a log-energy row, each row normalised over the
   utterance (mean 0, variance 1: the voices differ, the sounds do not);
3. dynamic time warping (:func:`dtw`, librosa's) pairs every cell of the speech with cells
   of the recording along the cheapest monotone path;
4. each phoneme boundary, a time on espeak's axis, goes through the path
   (:func:`warp_times`) onto the recording's axis.

Text is normalised first (:func:`normalize_text`): typographic quotes, dashes and spaces
become ASCII, compatibility forms (ligatures, full-width letters, superscripts) their
plain letters, a few symbols words ("&" -> "and"), and letters of scripts that English
espeak cannot read are dropped. Text with nothing left to say is a :class:`TextError`.
"""

from __future__ import annotations

import csv
import json
import os
import re
import unicodedata
from pathlib import Path

import numpy as np

from ..audio import HOP_LENGTH, SAMPLE_RATE, mfcc, resample
from ..data.espeak import EspeakError, Phone, Speech, Word, synthesize
from .generator import InferError
from .run import generate_video, load_speech

__all__ = ["MAX_ALIGN_S", "TextError", "align", "align_speech", "dtw", "landmark_driven",
           "normalize_text", "speak", "text_video", "warp_times", "write_timings"]

MAX_ALIGN_S = 90.0
"""Longest recording :func:`align` takes: the cost matrix grows with its length squared."""
CELL = HOP_LENGTH / SAMPLE_RATE  # 10 ms: one MFCC cell
PAD_S = 0.5
"""Silence put before and after espeak's speech, to pair with the recording's pauses."""
DITHER_DBFS = -60.0
ENERGY_RANGE_DB = 40.0
NOT_SPEECH_COST = 4.1
"""Mean DTW distance above which a recording is not speech: measured 3.0-3.7 for the 125
GRID s1 clips with their transcripts (3.4-3.7 with a wrong one), 2.1-3.7 for espeak's other
voices and rates, 4.3-4.6 for a tone, a chord, clicks and white noise."""

_CHARACTERS = {  # typographic forms -> what espeak reads as punctuation or spaces
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u00ab": '"', "\u00bb": '"',
    "\u2013": " - ", "\u2014": " - ", "\u2015": " - ", "\u2212": " minus ", "\u2026": "...",
    "\u00df": "ss", "\u00e6": "ae", "\u00c6": "Ae", "\u0153": "oe", "\u0152": "Oe",
    "\u00f8": "o", "\u00d8": "O", "\u0142": "l", "\u0141": "L", "\u0111": "d", "\u0110": "D",
    "\u00fe": "th", "\u00de": "Th", "\u00f0": "th", "\u00d0": "Th", "\u0131": "i",
}
_SYMBOLS = {"&": "and", "%": "percent", "+": "plus", "=": "equals", "@": "at",
            "$": "dollars", "\u20ac": "euros", "\u00a3": "pounds", "\u00a5": "yen"}
_CURRENCY = re.compile(r"([$\u20ac\u00a3\u00a5])\s*(\d+(?:[.,]\d+)*)")


class TextError(InferError):
    """Text that cannot be spoken or aligned (empty, nothing speakable, bad voice or rate)."""


def normalize_text(text: str) -> str:
    """``text`` as plain words espeak reads correctly; see the module docstring.

    ``"“Hi” – it’s 3.5 €"`` -> ``"\\"Hi\\" - it's 3.5 euros"``. Accented Latin letters stay
    (espeak pronounces "café"); letters of other scripts and emoji become spaces; runs of
    white space (tabs, new lines, no-break and zero-width spaces) become one space.
    """
    text = unicodedata.normalize("NFKC", str(text))
    text = "".join(_CHARACTERS.get(c, c) for c in text)
    text = _CURRENCY.sub(lambda m: f"{m.group(2)} {_SYMBOLS[m.group(1)]}", text)
    kept = []
    for c in text:
        category = unicodedata.category(c)
        if c in _SYMBOLS:
            c = f" {_SYMBOLS[c]} "
        elif category == "Nd" and not c.isascii():
            c = str(unicodedata.digit(c))
        elif category.startswith("L") and not c.isascii():
            name = unicodedata.name(c, "")
            if not name.startswith(("LATIN", "GREEK")):
                c = " "
            elif name.startswith("LATIN") and not "\u00c0" <= c <= "\u00ff":
                c = unicodedata.normalize("NFKD", c)[0]  # "ł", "ş" -> their base letter
        elif category[0] in "CSZ" or (category[0] == "M" and not kept):
            c = " "  # controls, format characters, emoji and other symbols, spaces
        kept.append(c)
    return re.sub(r"\s+", " ", "".join(kept)).strip()


def speak(text: str, voice: str = "en-us", rate: int = 160, pitch: int = 50) -> Speech:
    """``text`` (normalised) spoken by espeak-ng: the audio and its exact phoneme timings.

    Args:
        text: any English sentence; numbers, punctuation and typographic characters are fine.
        voice: an espeak voice (:func:`coursekit.data.espeak.voices`), e.g. ``en-gb+f3``.
        rate: words per minute, 80..450. pitch: 0..99 (50 is the voice's own).

    Returns:
        :class:`~coursekit.data.espeak.Speech`: ``audio (n,)`` float32 at ``sr`` (22050 Hz),
        ``phones`` and ``words`` with start and end in seconds.

    Raises:
        TextError: empty text, nothing speakable, an unknown voice, rate or pitch out of range.
    """
    if not str(text).strip():
        raise TextError("empty text: nothing to say")
    spoken = normalize_text(text)
    if not re.search(r"[^\W_]", spoken):
        raise TextError(f"nothing speakable in the text {text!r} (no letters or digits)")
    if not (80 <= rate <= 450 and 0 <= pitch <= 99):
        raise TextError(f"rate must be 80..450 words per minute and pitch 0..99, got rate "
                        f"{rate} and pitch {pitch}")
    try:
        return synthesize(spoken, voice=voice, rate=rate, pitch=pitch)
    except EspeakError as err:
        raise TextError(str(err)) from err


# ----------------------------------------------------------------------------- alignment


def features(audio: np.ndarray, sr: int) -> np.ndarray:
    """The alignment features of mono ``audio``: ``(13, n_cells)`` float32, one column per
    10 ms cell: the course's 12 MFCCs and the log energy, each row normalised over the
    utterance to mean 0 and variance 1 (rows that barely vary are only centred).

    A faint fixed noise (:data:`DITHER_DBFS`) is added first and the energy is floored
    :data:`ENERGY_RANGE_DB` below the loud cells, so that espeak's digital silence and a
    room's quiet background look alike."""
    x = np.asarray(audio, np.float32)
    x = x if sr == SAMPLE_RATE else resample(x, sr, SAMPLE_RATE)
    noise = np.random.default_rng(0).standard_normal(x.size).astype(np.float32)
    x = x + noise * np.float32(10 ** (DITHER_DBFS / 20))
    ceps = mfcc(x)
    n = ceps.shape[1]
    padded = np.zeros(n * HOP_LENGTH, np.float32)
    padded[: min(x.size, padded.size)] = x[: padded.size]
    energy = 10 * np.log10(np.maximum((padded.reshape(n, HOP_LENGTH) ** 2).mean(1), 1e-10))
    energy = np.maximum(energy, np.percentile(energy, 95) - ENERGY_RANGE_DB)
    feats = np.vstack([ceps, energy[None]]).astype(np.float64)
    feats -= feats.mean(axis=1, keepdims=True)
    feats /= np.maximum(feats.std(axis=1, keepdims=True), 1.0)
    return feats.astype(np.float32)


def dtw(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """Dynamic time warping of feature sequences ``x (d, n)`` and ``y (d, m)`` (librosa's,
    Euclidean distance, steps (1, 1), (1, 0), (0, 1), both ends matched).

    Returns ``(path, cost)``: ``path (K, 2)`` int pairs ``(i, j)`` from ``(0, 0)`` to
    ``(n - 1, m - 1)``, each index non-decreasing and moving by at most 1 per step; ``cost``
    the mean distance of the pairs on the path.
    """
    import librosa
    from scipy.spatial.distance import cdist

    if x.shape[1] == 0 or y.shape[1] == 0:
        raise ValueError(f"dtw needs two non-empty sequences, got {x.shape} and {y.shape}")
    distance = cdist(x.T, y.T)
    _, path = librosa.sequence.dtw(C=distance)
    path = np.ascontiguousarray(path[::-1])
    return path, float(distance[path[:, 0], path[:, 1]].mean())


def warp_times(times: np.ndarray, path: np.ndarray, cell: float = CELL) -> np.ndarray:
    """Times on ``x``'s axis (seconds) mapped through a :func:`dtw` path onto ``y``'s.

    Cell edge ``e`` of ``x`` (between cells ``e - 1`` and ``e``) lies, on ``y``, halfway
    between the end of the last ``y`` cell paired with ``e - 1`` and the start of the first
    one paired with ``e``; times between edges are interpolated linearly. The map is
    non-decreasing, and sends 0 to 0 and the end of ``x`` to the end of ``y``.
    """
    i, j = path[:, 0], path[:, 1]
    n = int(i[-1]) + 1
    first = np.full(n, np.iinfo(np.int64).max)
    last = np.full(n, -1)
    np.minimum.at(first, i, j)
    np.maximum.at(last, i, j)
    edges = np.concatenate([[0.0], (last[:-1] + 1 + first[1:]) / 2.0, [last[-1] + 1.0]])
    return np.interp(np.asarray(times, np.float64) / cell, np.arange(n + 1), edges) * cell


def align_speech(reference: Speech, audio: np.ndarray, sr: int) -> tuple[Speech, float]:
    """The phonemes and words of ``reference`` (espeak's speech of a transcript) timed on
    the recording ``audio (n,)`` at ``sr`` Hz.

    The reference gets :data:`PAD_S` of silence at both ends (a recording's pauses before
    and after the speech then have silence to pair with, instead of the first and last
    phonemes). Returns ``(Speech with the recording's audio, mean DTW distance per
    cell pair)``; the phones tile ``[0, duration]`` of the recording.
    """
    pad = np.zeros(round(PAD_S * reference.sr), np.float32)
    padded = np.concatenate([pad, np.asarray(reference.audio, np.float32), pad])
    path, cost = dtw(features(padded, reference.sr), features(audio, sr))
    duration = len(audio) / sr
    times = [p.end for p in reference.phones[:-1]] + [t for w in reference.words
                                                      for t in (w.start, w.end)]
    mapped = np.clip(warp_times(np.array(times) + len(pad) / reference.sr, path), 0, duration)
    edges = [0.0, *mapped[: len(reference.phones) - 1].tolist(), duration]
    phones = [Phone(p.symbol, s, e) for p, s, e in zip(reference.phones, edges, edges[1:])]
    spans = mapped[len(reference.phones) - 1:].reshape(-1, 2).tolist()
    words = [Word(w.text, s, e) for w, (s, e) in zip(reference.words, spans)]
    return Speech(audio=np.asarray(audio, np.float32), sr=sr, phones=phones, words=words), cost


def align(text: str, audio: np.ndarray, sr: int, *, voice: str = "en-us", rate: int = 160,
          source: str = "the recording") -> Speech:
    """The phonemes and words of the transcript ``text`` timed on the recording ``audio``
    ``(n,)`` at ``sr`` Hz (see the module docstring); ``audio`` becomes the Speech's audio.

    Raises:
        TextError: as :func:`speak`; or ``source`` (the file's name, for the message) is
            longer than :data:`MAX_ALIGN_S`, or does not sound like speech: its mean DTW
            distance to the spoken text exceeds :data:`NOT_SPEECH_COST`.
    """
    duration = len(audio) / sr
    if duration > MAX_ALIGN_S:
        raise TextError(f"{source}: {duration:.0f} s is too long to align a transcript to "
                        f"(at most {MAX_ALIGN_S:.0f} s): cut it into sentences")
    aligned, cost = align_speech(speak(text, voice=voice, rate=rate), audio, sr)
    if cost > NOT_SPEECH_COST:
        raise TextError(f"{source}: does not sound like speech: it matches the text's sounds "
                        f"no better than a tone or noise does (distance {cost:.2f} > "
                        f"{NOT_SPEECH_COST})")
    return aligned


# ----------------------------------------------------------------------------- video


def landmark_driven(speech: Speech | None, checkpoint=None, landmarks=None,
                    device: str = "cpu"):
    """The warp generator ``checkpoint`` (None: the shipped one) with its mouth driven by the
    multimodal landmark predictor (Yu et al. 2020's first step) instead of Audio2AU and the
    motion model: each frame's phoneme (from ``speech``'s timed phones, on the recording's
    time axis; None: audio only) and raw MFCC window ``(T, 12, 28)`` -> landmark motion
    ``(T, 33, 2)``, which the thin-plate warp and painter turn into frames as before.
    ``landmarks``: a ``kind="landmarks"`` checkpoint (None: the shipped ``grid/landmarks.pt``).
    """
    from ..assets import asset_path
    from ..checkpoint import load_checkpoint
    from ..data.phonemes import frames_of
    from .generator import load_generator
    from .warp import WarpGenerator

    gen = load_generator("warp" if checkpoint is None else checkpoint, device)
    if not isinstance(gen, WarpGenerator):
        raise InferError(f"{checkpoint}: landmarks drive the warp generator only (its warp moves "
                         f"the photo to landmarks), not a {gen.name} renderer")
    path = landmarks if landmarks is not None else asset_path("grid/landmarks.pt")
    if path is None or not Path(path).is_file():
        raise FileNotFoundError(f"{path or 'coursekit/assets/grid/landmarks.pt'}: no such "
                                "landmark predictor checkpoint")
    loaded = load_checkpoint(path, device, kind="landmarks")
    mean, std = (np.asarray(loaded.meta[k], np.float32).reshape(-1, 1)
                 for k in ("mfcc_mean", "mfcc_std"))
    segments = None if speech is None else [(p.start, p.end, p.symbol) for p in speech.phones]

    def audio_motion(windows: np.ndarray, recording=None, sr: int = SAMPLE_RATE) -> np.ndarray:
        ids = None if segments is None else frames_of(segments, len(windows))
        return loaded.model.predict(ids, (np.asarray(windows, np.float32) - mean) / std)

    gen.audio_motion = audio_motion
    return gen


def text_video(checkpoint, face: str | os.PathLike, text: str, out: str | os.PathLike, *,
               audio: str | os.PathLike | None = None, voice: str = "en-us", rate: int = 160,
               pitch: int = 50, phonemes: str | os.PathLike | None = None,
               landmarks: bool | str | os.PathLike = False, **options) -> tuple[Path, Speech]:
    """:func:`~coursekit.infer.generate_video` from text: ``out`` shows the face in ``face``
    saying ``text`` in espeak's voice (:func:`speak`), or, with ``audio``, saying the
    recording ``audio`` of which ``text`` is the transcript (:func:`align`; the video has
    the recording's sound). ``phonemes``: also write the timings there
    (:func:`write_timings`, ``.json`` or ``.csv``). ``landmarks``: True (the shipped
    predictor) or a checkpoint: the mouth follows the text's phonemes and the speech through
    the landmark predictor (:func:`landmark_driven`; the warp generator only).
    ``options`` go to ``generate_video``.

    Returns ``(out, speech)``: the Speech's audio is what the video says, its phones and
    words are timed on it. Raises what ``generate_video`` does, and :class:`TextError`.
    """
    if phonemes is not None and Path(phonemes).suffix.lower() not in (".json", ".csv"):
        raise TextError(f"{phonemes}: timings are written as .json or .csv")
    if audio is None:
        speech = speak(text, voice=voice, rate=rate, pitch=pitch)
        sound = (speech.audio, speech.sr)
    else:
        recording, sr, _ = load_speech(audio)
        speech = align(text, recording, sr, voice=voice, rate=rate, source=str(audio))
        sound = audio
    if landmarks:
        checkpoint = landmark_driven(speech, checkpoint, None if landmarks is True else landmarks,
                                     options.get("device", "cpu"))
    out = generate_video(checkpoint, face, sound, out, **options)
    if phonemes is not None:
        write_timings(speech, phonemes)
    return out, speech


# ----------------------------------------------------------------------------- files


def write_timings(speech: Speech, path: str | os.PathLike) -> Path:
    """Write the phoneme and word timings of ``speech`` to ``path``: ``.json``
    (``{"duration", "phones": [{"symbol", "start", "end"}], "words": [{"text", "start",
    "end"}]}``) or ``.csv`` (rows ``kind,label,start,end``, kind ``phone`` or ``word``);
    seconds, rounded to 0.1 ms."""
    path = Path(path)
    rows = [("phone", p.symbol, p.start, p.end) for p in speech.phones]
    rows += [("word", w.text, w.start, w.end) for w in speech.words]
    suffix = path.suffix.lower()
    if suffix not in (".json", ".csv"):
        raise TextError(f"{path}: timings are written as .json or .csv")
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".csv":
        with path.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["kind", "label", "start", "end"])
            writer.writerows((k, label, round(s, 4), round(e, 4)) for k, label, s, e in rows)
        return path
    phones = [{"symbol": p.symbol, "start": round(p.start, 4), "end": round(p.end, 4)}
              for p in speech.phones]
    words = [{"text": w.text, "start": round(w.start, 4), "end": round(w.end, 4)}
             for w in speech.words]
    data = {"duration": round(speech.duration, 4), "phones": phones, "words": words}
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    return path
