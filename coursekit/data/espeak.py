"""Offline English speech with exact phoneme and word timings, from libespeak-ng.

A small ctypes binding to the espeak-ng C library bundled by the
``espeakng-loader`` package. espeak runs in *synchronous retrieval* mode: instead
of playing sound it hands us buffers of 16-bit samples together with events
(SENTENCE, WORD, PHONEME, ...). Each event carries ``sample``, the index of the
output sample where it happens, so phoneme boundaries are exact to one sample
(``audio_position`` is the same instant rounded down to whole milliseconds).

Determinism. espeak keeps hidden global state that carries over from one
utterance to the next (the phase of its pitch "flutter", filter memories), so
the same text spoken twice comes out a few samples different. We therefore load
a private copy of the library for every utterance and unload it afterwards
(well under a millisecond). Its noise generator, which it seeds from the clock,
gets a fixed seed, and so does C ``rand()``, which a few variants use
(``srand(1)``, C's default; note this resets it for the whole process).
"""

from __future__ import annotations

import atexit
import bisect
import ctypes
import os
import re
import shutil
import tempfile
import threading
from dataclasses import dataclass

import _ctypes
import numpy as np

__all__ = ["EspeakError", "Phone", "Word", "Speech", "synthesize", "voices"]


class EspeakError(RuntimeError):
    """espeak-ng is missing, or it cannot speak the request."""


@dataclass(frozen=True)
class Phone:
    """One phoneme: espeak's mnemonic without stress marks ("b", "I", "aI", "t#").

    Pauses are phones too; their symbols start with "_" ("_", "_:", "_!").
    """

    symbol: str
    start: float  # seconds
    end: float  # seconds: start of the next phoneme, or the end of the audio

    @property
    def is_pause(self) -> bool:
        return self.symbol.startswith("_")


@dataclass(frozen=True)
class Word:
    """One word of the input text (without surrounding punctuation), timed by its phonemes."""

    text: str
    start: float  # seconds: start of the word's first phoneme
    end: float  # seconds: end of the word's last non-pause phoneme


@dataclass
class Speech:
    """An utterance and its timings.

    audio:  float32 mono in [-1, 1], shape (n_samples,), at ``sr`` Hz (22050).
    phones: every phoneme espeak produced, pauses included (``Phone.is_pause``),
            zero-length ones dropped; in time order, back to back from
            ``phones[0].start`` (the silence before it, if any) to the end.
    words:  one per spoken word of the text, in order; pauses excluded.
    espeak adds little silence around the speech: 0 to ~0.1 s at either end.
    """

    audio: np.ndarray
    sr: int
    phones: list[Phone]
    words: list[Word]

    @property
    def duration(self) -> float:
        """Length of the audio in seconds."""
        return len(self.audio) / self.sr


# From espeak-ng's speak_lib.h.
_SYNCHRONOUS, _CHARS_UTF8, _POS_CHARACTER = 2, 1, 1
_PHONEME_EVENTS, _DONT_EXIT = 0x1, 0x8000  # without DONT_EXIT, a bad data folder calls exit()
_RATE, _VOLUME, _PITCH, _RANGE, _WORDGAP = 1, 2, 3, 4, 7
_EVENT_LIST_TERMINATED, _EVENT_WORD, _EVENT_PHONEME = 0, 1, 7
_STRESS_MARKS = "',%="


class _Event(ctypes.Structure):  # espeak_EVENT
    class _Id(ctypes.Union):
        _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p),
                    ("string", ctypes.c_char * 8)]

    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),  # 1-based character index of the word
        ("length", ctypes.c_int),  # length of the word in characters (not always right)
        ("audio_position", ctypes.c_int),  # milliseconds, rounded down
        ("sample", ctypes.c_int),  # sample index: exact
        ("user_data", ctypes.c_void_p),
        ("id", _Id),  # .string is the phoneme of a PHONEME event
    ]


class _Voice(ctypes.Structure):  # the first fields of espeak_VOICE, all we read
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_void_p),  # (priority byte, NUL-terminated code)*, then a 0 byte
        ("identifier", ctypes.c_char_p),  # file in espeak-ng-data/{lang,voices}: "gmw/en-US"
    ]


_lock = threading.Lock()  # espeak's state is global: one utterance at a time
_paths: tuple[str, str] | None = None  # (our private copy of the .so, espeak-ng-data folder)
_catalogue: tuple[dict, dict, list] | None = None  # see _voices()
_chunks: list[np.ndarray] = []  # audio and events of the utterance being spoken,
_events: list[tuple] = []  # filled by _on_synth: (type, text_position, sample, phoneme)


@ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                  ctypes.POINTER(_Event))
def _on_synth(wav, n_samples, events):
    """espeak's SynthCallback: copy out one buffer of audio and its list of events.

    A module global, so the C function pointer espeak holds is never garbage-collected."""
    if wav and n_samples > 0:
        _chunks.append(np.frombuffer(ctypes.string_at(wav, 2 * n_samples), np.int16))
    i = 0
    while events and events[i].type != _EVENT_LIST_TERMINATED:
        e = events[i]
        phoneme = e.id.string.decode("utf-8", "replace") if e.type == _EVENT_PHONEME else ""
        _events.append((e.type, e.text_position, e.sample, phoneme))
        i += 1
    return 0  # 0 = go on


def _open() -> tuple[ctypes.CDLL, int]:
    """Load a fresh instance of the library and initialise it: (library, sample rate)."""
    global _paths
    try:
        if _paths is None:
            import espeakng_loader

            library, data = espeakng_loader.get_library_path(), espeakng_loader.get_data_path()
            folder = tempfile.mkdtemp(prefix="coursekit-espeak-")
            atexit.register(shutil.rmtree, folder, ignore_errors=True)
            _paths = shutil.copy(library, folder), data
        lib = ctypes.CDLL(_paths[0])
    except (ImportError, OSError) as err:
        raise EspeakError(f"libespeak-ng not found ({err}): pip install espeakng-loader") from err
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_Voice))
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
    lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                 ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
    sr = lib.espeak_Initialize(_SYNCHRONOUS, 0, _paths[1].encode(), _PHONEME_EVENTS | _DONT_EXIT)
    if sr <= 0:
        _close(lib)
        raise EspeakError(f"espeak could not initialise with data folder {_paths[1]}")
    lib.espeak_SetSynthCallback(_on_synth)
    return lib, sr


def _close(lib: ctypes.CDLL, voice_array=None) -> None:
    """Unload the library, so that the next _open() starts from its pristine state.
    voice_array: what espeak_ListVoices returned, an array espeak never frees."""
    lib.espeak_Terminate()
    if voice_array:
        ctypes.CDLL(None).free(voice_array)
    _ctypes.dlclose(lib._handle)  # POSIX; ctypes has no public way to unload a library


def _voices() -> tuple[dict[str, str], dict[str, str], list[str]]:
    """({voice name: identifier}, {lowercase variant: variant}, [main language codes]), cached.

    A voice is named by its main language code ("en-gb") and by its file ("en").
    Variants are the files in espeak-ng-data/voices/!v ("f3", "klatt", "Mr serious").
    """
    global _catalogue
    if _catalogue is None:
        lib, _ = _open()
        array, listed, i = lib.espeak_ListVoices(None), [], 0  # NULL-terminated
        try:
            while array[i]:
                voice = array[i].contents  # .languages: a priority byte, then the main code
                code = ctypes.string_at(voice.languages + 1).decode()
                listed.append((voice.identifier.decode(), code))
                i += 1
        finally:
            _close(lib, array)
        named: dict[str, str] = {}
        for identifier, code in listed:
            named.setdefault(code, identifier)
            named.setdefault(identifier.split("/")[-1].lower(), identifier)
        variants = {v.lower(): v for v in os.listdir(os.path.join(_paths[1], "voices", "!v"))}
        _catalogue = named, variants, sorted(code for _, code in listed)
    return _catalogue


def voices(language: str = "en", variants: bool = False) -> list[str]:
    """Names usable as ``synthesize(voice=...)``: "en-029", "en-gb", "en-gb-scotland", ...

    The voices whose main language is ``language`` or a dialect of it. With
    ``variants=True`` also every voice combined with every variant of espeak
    ("en-us+f3", "en-gb+klatt", "en-us+m7", ...).
    """
    with _lock:
        _, variant_names, main_codes = _voices()
    names = [code for code in main_codes if code == language or code.startswith(language + "-")]
    extra = sorted(variant_names.values(), key=str.lower) if variants else []
    return names + [f"{name}+{variant}" for name in names for variant in extra]


def _resolve(voice: str) -> str:
    """Turn "en-gb+f3" into what espeak loads ("gmw/en+f3"), or raise EspeakError."""
    named, variant_names, _ = _voices()
    base, _, variant = voice.strip().lower().partition("+")
    if base not in named:
        raise EspeakError(f"unknown voice {voice!r}; see coursekit.data.espeak.voices()")
    if variant and variant not in variant_names:
        raise EspeakError(f"unknown voice variant in {voice!r}; see voices(variants=True)")
    return named[base] + (f"+{variant_names[variant]}" if variant else "")


def synthesize(text: str, voice: str = "en-us", rate: int = 160, pitch: int = 50,
               pitch_range: int = 50, word_gap: int = 0) -> Speech:
    """Speak ``text``; return the audio with its phoneme and word timings.

    voice: a name from :func:`voices`, optionally with "+variant".
    rate: words per minute, 80..450. pitch, pitch_range: 0..100, 50 = the voice's own.
    word_gap: extra pause between words, in units of 10 ms.
    The same arguments always give bit-identical results.
    """
    if not text or not text.strip():
        raise EspeakError("empty text: nothing to say")
    if not (80 <= rate <= 450 and 0 <= pitch <= 100 and 0 <= pitch_range <= 100 and word_gap >= 0):
        raise ValueError(f"out of range: {rate=} {pitch=} {pitch_range=} {word_gap=}")
    # espeak's dictionary speaks some word pairs as one word ("at a" -> "at@") with a single
    # WORD event. No-break spaces keep them apart; elsewhere the audio is bit-identical.
    spoken = re.sub(r"(?<=\w) (?=\w)", "\u00a0", text).encode("utf-8")
    with _lock:
        name = _resolve(voice)
        lib, sr = _open()
        _chunks.clear()
        _events.clear()
        array = None
        try:
            # espeak looks a voice file up by its lower-cased name; for one with capitals
            # ("gmw/en-US") it lists all voices instead, in an array it never frees. So we
            # list them ourselves, and _close() frees that array.
            if name.split("+")[0] != name.split("+")[0].lower():
                array = lib.espeak_ListVoices(None)
            if lib.espeak_SetVoiceByName(name.encode()) != 0:
                raise EspeakError(f"espeak could not load voice {voice!r}")
            for parameter, value in ((_RATE, rate), (_VOLUME, 100), (_PITCH, pitch),
                                     (_RANGE, pitch_range), (_WORDGAP, word_gap)):
                lib.espeak_SetParameter(parameter, value, 0)
            lib.espeak_ng_SetRandSeed(1)  # espeak_Initialize seeded it from the clock
            ctypes.CDLL(None).srand(1)  # some variants (+caleb, +Reed) use C rand()
            status = lib.espeak_Synth(spoken, len(spoken) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8,
                                      None, None)
            if status != 0 or lib.espeak_Synchronize() != 0:
                raise EspeakError(f"espeak failed (error {status}) on {text!r}")
            samples = np.concatenate(_chunks) if _chunks else np.zeros(0, np.int16)
            events = list(_events)
        finally:
            _chunks.clear()
            _close(lib, array)
    audio = samples.astype(np.float32) / 32768.0
    phones, words = _timings(events, text, len(audio), sr)
    if not words:
        raise EspeakError(f"espeak said no words for {text!r}")
    return Speech(audio=audio, sr=sr, phones=phones, words=words)


def _timings(events: list, text: str, n_samples: int, sr: int) -> tuple[list[Phone], list[Word]]:
    """Phones and words from the events: a phoneme lasts until the next one starts.

    A WORD event points into the text, but not always at a whole word ("42" gives
    two events, "don't" has length 1), so it counts for the word of the text
    that it points into; a word is a run of non-space characters with a letter or digit.
    """
    tokens = [m for m in re.finditer(r"\S+", text) if re.search(r"\w", m.group())]
    token_ends = [m.end() for m in tokens]
    events = [(kind, position, min(max(sample, 0), n_samples), phoneme)
              for kind, position, sample, phoneme in events
              if kind in (_EVENT_WORD, _EVENT_PHONEME)]
    phone_ends = iter([e[2] for e in events if e[0] == _EVENT_PHONEME][1:] + [n_samples])
    phones: list[Phone] = []
    words: dict[int, tuple[int, list[Phone]]] = {}  # token: (sample of its 1st WORD event, phones)
    token = None
    for kind, position, sample, phoneme in events:
        if kind == _EVENT_WORD and tokens:
            token = min(bisect.bisect_right(token_ends, position - 1), len(tokens) - 1)
            words.setdefault(token, (sample, []))
        elif kind == _EVENT_PHONEME:
            end = next(phone_ends)
            if end <= sample:
                continue  # zero length, like the end-of-clause "_" at the very end
            phones.append(Phone(phoneme.lstrip(_STRESS_MARKS), sample / sr, end / sr))
            if token is not None and not phones[-1].is_pause:
                words[token][1].append(phones[-1])
    spoken = []
    for token, (sample, its_phones) in words.items():
        word = re.sub(r"^\W+|\W+$", "", tokens[token].group())  # without quotes, commas, ...
        if its_phones:
            spoken.append(Word(word, its_phones[0].start, its_phones[-1].end))
        else:  # a word whose sounds espeak gave to its neighbour
            spoken.append(Word(word, sample / sr, sample / sr))
    return phones, spoken
