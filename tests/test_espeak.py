"""Tests of coursekit.data.espeak: offline speech with phoneme and word timings."""

import ctypes
import hashlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from coursekit.data import espeak
from coursekit.data.espeak import EspeakError, Phone, Speech, synthesize, voices

GRID = [
    "bin blue at f two now",
    "place red by a nine again",
    "lay green in x zero please",
    "set white with w seven soon",
    "bin blue at a eight again",  # espeak's dictionary would say "at a" as one word
    "place green by b four now",
    "set red at q one please",
    "lay white with z six soon",
]


def _same(a: Speech, b: Speech) -> bool:
    return (a.sr == b.sr and np.array_equal(a.audio, b.audio)
            and a.phones == b.phones and a.words == b.words)


def test_same_call_gives_bit_identical_results():
    first = synthesize("bin blue at f two now")
    assert _same(first, synthesize("bin blue at f two now"))
    synthesize("place red by a nine again", voice="en-gb+f3", rate=250)  # whatever came before
    assert _same(first, synthesize("bin blue at f two now"))
    # a breathy variant: its noise must be seeded too
    assert _same(synthesize("set white with w seven soon", voice="en-us+f3"),
                 synthesize("set white with w seven soon", voice="en-us+f3"))


@pytest.mark.parametrize("voice, digest", [
    ("en-us", "0b0efd1271dc47b7"),
    ("en-us+f3", "9665b6e397fa1ebb"),  # breath noise: espeak's generator, seeded from the clock
    ("en-us+caleb", "10d5526c507167d8"),  # noise from C rand()
])
def test_audio_is_the_same_in_every_process_and_at_every_time(voice, digest):
    # pinned to espeakng-loader 0.2.4: a new espeak-ng may change the audio (and data_samples/)
    ctypes.CDLL(None).srand(12345)  # as if other code in the process had used C rand()
    audio = synthesize("place red by a nine again", voice=voice).audio
    assert hashlib.sha256(audio.tobytes()).hexdigest()[:16] == digest


def test_threads_get_the_same_results_as_one_after_another():
    expected = [synthesize(text) for text in GRID[:4]]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(synthesize, GRID[:4] * 2))
    assert all(_same(a, b) for a, b in zip(expected * 2, got))


@pytest.mark.parametrize("text", GRID)
def test_audio_phones_and_words_are_well_formed(text):
    speech = synthesize(text)
    assert speech.sr == 22050
    assert speech.audio.dtype == np.float32 and speech.audio.ndim == 1
    assert 0.5 < speech.duration < 4.0
    assert np.abs(speech.audio).max() <= 1.0 and np.abs(speech.audio).max() > 0.1
    phones = speech.phones
    assert phones and all(isinstance(p, Phone) for p in phones)
    assert 0.0 <= phones[0].start and phones[-1].end == pytest.approx(speech.duration, abs=1e-9)
    assert all(p.start < p.end for p in phones)
    assert all(a.end == b.start for a, b in zip(phones, phones[1:]))  # in order, back to back
    assert all(p.symbol and p.symbol[0] not in "',%=" for p in phones)  # no stress marks
    for word in speech.words:
        assert word.start < word.end
        assert any(p.start == word.start and not p.is_pause for p in phones)
        assert any(p.end == word.end and not p.is_pause for p in phones)
    assert all(a.end <= b.start for a, b in zip(speech.words, speech.words[1:]))


@pytest.mark.parametrize("text", GRID)
def test_one_word_per_word_of_the_text(text):
    assert [w.text for w in synthesize(text).words] == text.split()


def test_words_are_the_words_of_the_text_even_when_espeak_splits_or_joins_them():
    speech = synthesize("Don't stop at 42, twenty-one times!")  # "42": two WORD events
    assert [w.text for w in speech.words] == ["Don't", "stop", "at", "42", "twenty-one", "times"]


def test_words_of_several_sentences_keep_their_punctuation_free_text():
    speech = synthesize("Place red, by a nine. Again soon!")
    assert [w.text for w in speech.words] == ["Place", "red", "by", "a", "nine", "Again", "soon"]
    assert any(p.is_pause for p in speech.phones[:-1])  # the comma and the full stop


def test_phoneme_symbols_of_a_grid_sentence():
    speech = synthesize("bin blue at f two now")
    assert [p.symbol for p in speech.phones if not p.is_pause] == [
        "b", "I", "n", "b", "l", "u:", "a", "t#", "E", "f", "t", "u:", "n", "aU"]


def test_phone_boundaries_are_exact_to_the_sample():
    for text in ("bin blue at f two now", "place red by a nine again", "set white with w seven soon"):
        speech = synthesize(text)
        sounding = np.flatnonzero(speech.audio)
        first, last = speech.phones[0], speech.phones[-1]
        assert not first.is_pause and last.is_pause  # speech, then the final pause
        assert sounding[0] == round(first.start * speech.sr)  # the first sample of sound
        assert sounding[-1] + 1 == round(last.start * speech.sr)  # silence from the pause on


def test_faster_rate_gives_shorter_audio():
    slow, normal, fast = (synthesize(GRID[1], rate=r).duration for r in (100, 160, 300))
    assert slow > normal > fast
    assert fast < 0.7 * normal


def test_word_gap_lengthens_the_pauses_between_words():
    plain, spaced = synthesize(GRID[0]), synthesize(GRID[0], word_gap=10)
    assert spaced.duration > plain.duration + 0.4  # 5 gaps of ~100 ms
    assert [w.text for w in spaced.words] == GRID[0].split()


@pytest.mark.parametrize("word_gap", [0, 10])
def test_speech_energy_lies_inside_the_words(word_gap):
    for text in GRID + ["place red, by a nine. Again soon."]:
        speech = synthesize(text, word_gap=word_gap)
        a, sr = speech.audio, speech.sr
        in_words = np.zeros(len(a), bool)
        for word in speech.words:
            in_words[round(word.start * sr):round(word.end * sr)] = True
        in_pauses = np.zeros(len(a), bool)
        in_pauses[:round(speech.phones[0].start * sr)] = True  # leading silence, if any
        for phone in speech.phones:
            if phone.is_pause:
                in_pauses[round(phone.start * sr):round(phone.end * sr)] = True
        assert in_pauses.sum() > 100 and not (in_words & in_pauses).any()
        rms_words = np.sqrt(np.mean(a[in_words] ** 2))
        rms_pauses = np.sqrt(np.mean(a[in_pauses] ** 2))
        assert rms_words > 0.05 and rms_words > 100 * rms_pauses


def test_english_voices_are_listed_and_sound_different():
    names = voices()
    assert {"en-us", "en-gb", "en-gb-scotland"} <= set(names)
    assert all(name.startswith("en") for name in names)
    assert "en-us+f3" in voices(variants=True)
    audio = {v: synthesize(GRID[0], voice=v).audio for v in ("en-us", "en-gb", "en-us+f3", "en-us+m3")}
    assert len({a.tobytes() for a in audio.values()}) == len(audio)
    for name in names:  # every listed voice speaks, with the right words
        assert [w.text for w in synthesize(GRID[0], voice=name).words] == GRID[0].split()


def test_pitch_changes_the_audio_but_not_the_words():
    low, high = synthesize(GRID[2], pitch=20), synthesize(GRID[2], pitch=80)
    assert not np.array_equal(low.audio[: len(high.audio)], high.audio[: len(low.audio)])
    assert [w.text for w in low.words] == [w.text for w in high.words]


@pytest.mark.parametrize("voice", ["xx-nonsense", "klingon", "en-us+no-such-variant", "f3"])
def test_unknown_voice_is_an_error(voice):
    with pytest.raises(EspeakError, match="unknown voice"):
        synthesize("bin blue at f two now", voice=voice)


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty_text_is_an_error(text):
    with pytest.raises(EspeakError, match="empty"):
        synthesize(text)


def test_out_of_range_parameters_are_errors():
    with pytest.raises(ValueError):
        synthesize("bin blue", rate=10)
    with pytest.raises(ValueError):
        synthesize("bin blue", pitch=150)


def test_missing_library_or_data_is_a_clear_error(monkeypatch):
    voices()  # find the library and read its voice list first
    library, data = espeak._paths
    monkeypatch.setattr(espeak, "_paths", ("/nonexistent/libespeak-ng.so", data))
    with pytest.raises(EspeakError, match="libespeak-ng not found"):
        synthesize("bin blue")
    monkeypatch.setattr(espeak, "_paths", (library, "/nonexistent/espeak-ng-data"))
    with pytest.raises(EspeakError, match="could not initialise"):
        synthesize("bin blue")
    monkeypatch.undo()
    assert [w.text for w in synthesize("bin blue").words] == ["bin", "blue"]  # still works
