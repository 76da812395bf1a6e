"""Text input of `coursekit generate` (coursekit/infer/text.py): espeak speech from text,
transcripts aligned to recordings by DTW, text normalisation, errors."""

import itertools
import json
import math

import cv2
import numpy as np
import pytest
import soundfile

from coursekit import cli
from coursekit.audio import load_audio
from coursekit.infer import text as T
from coursekit.video import probe_streams, read_video

skimage_data = pytest.importorskip("skimage.data")

SENTENCE = "bin blue at f two now"


def bounds(words) -> np.ndarray:
    """``(n_words, 2)`` start and end of each word, seconds."""
    return np.array([[w.start, w.end] for w in words])


def with_silence(speech, before: float):
    """``speech`` after ``before`` seconds of silence: (audio, word bounds shifted)."""
    pad = np.zeros(round(before * speech.sr), np.float32)
    return np.concatenate([pad, speech.audio]), bounds(speech.words) + len(pad) / speech.sr


# ----------------------------------------------------------------------------- text


@pytest.mark.parametrize("text, expected", [
    ("\u201cHi,\u201d she said \u2013 it\u2019s 3.5\u2026", "\"Hi,\" she said - it's 3.5..."),
    ("yes\u2014no", "yes - no"),
    ("caf\u00e9 na\u00efve Zo\u00eb", "caf\u00e9 na\u00efve Zo\u00eb"),  # espeak says these
    ("\u0142\u00f3d\u017a Stra\u00dfe \ufb01ne x\u00b2", "l\u00f3dz Strasse fine x2"),
    ("\uff28\uff45\uff4c\uff4c\uff4f\u00a0\u200bworld\t\n", "Hello world"),
    ("at 7 now & 10% off \u20ac5", "at 7 now and 10 percent off 5 euros"),
    ("\u65e5\u672c hi \U0001f642", "hi"),
])
def test_normalize_text(text, expected):
    assert T.normalize_text(text) == expected


@pytest.mark.parametrize("text", ["at 7 now", "3.5 and 42", "\u201cHello,\u201d \u2014 caf\u00e9!",
                                  "it\u2019s 10:30 \u2013 Dr. Smith"])
def test_any_sentence_is_spoken_with_word_timings(text):
    speech = T.speak(text)
    n_words = len([w for w in T.normalize_text(text).split() if any(c.isalnum() for c in w)])
    assert len(speech.words) == n_words and speech.duration > 0.3
    assert all(0 <= w.start <= w.end <= speech.duration for w in speech.words)


@pytest.mark.parametrize("text, message", [
    ("", "empty text"), (" \t\n", "empty text"), ("\U0001f642 !!! \u2026", "nothing speakable")])
def test_empty_text_is_an_error(text, message):
    with pytest.raises(T.TextError, match=message):
        T.speak(text)


# ----------------------------------------------------------------------------- alignment


def test_dtw_and_warp_times_on_a_known_stretch():
    x = np.array([[0, 1, 2, 3, 4, 5]], np.float32)
    y = np.array([[0, 1, 1, 1, 2, 3, 4, 5, 5]], np.float32)  # cell 1 held 3x, cell 5 2x
    path, cost = T.dtw(x, y)
    assert cost == 0 and path[0].tolist() == [0, 0] and path[-1].tolist() == [5, 8]
    assert np.all(np.diff(path, axis=0) >= 0) and np.all(np.diff(path, axis=0) <= 1)
    edges = T.warp_times(np.arange(7) * T.CELL, path) / T.CELL
    assert np.allclose(edges, [0, 1, 4, 5, 6, 7, 9])  # each edge where the cells change


@pytest.mark.parametrize("rates", [(130, 190), (190, 130)])
def test_alignment_of_the_same_sentence_at_another_rate(rates):
    """espeak at one rate, after 0.4 s of silence, is the recording (its word bounds known
    to the sample); the transcript is spoken at the other rate and aligned to it. Measured:
    at most 8 ms off; a wrong transcript, or the truth without the silence, is 40+ ms off."""
    recording, truth = with_silence(T.speak(SENTENCE, rate=rates[0]), 0.4)
    sr = 22050
    aligned, _ = T.align_speech(T.speak(SENTENCE, rate=rates[1]), recording, sr)
    error = np.abs(bounds(aligned.words) - truth)
    assert error.max() < 0.025 and np.median(error) < 0.010
    assert np.abs(bounds(aligned.words) - (truth - 0.4)).min() > 0.3  # a bound that can fail
    wrong, _ = T.align_speech(T.speak("lay green in x zero please", rate=rates[1]), recording, sr)
    assert np.median(np.abs(bounds(wrong.words) - truth)) > 0.040
    phones = aligned.phones
    assert phones[0].start == 0 and math.isclose(phones[-1].end, len(recording) / sr)
    assert all(a.end == b.start for a, b in itertools.pairwise(phones))


def test_alignment_across_voices_on_the_samples():
    """The samples' speakers (other espeak voices, pauses, background noise) with their
    exact .align: measured median 3 ms, 90th percentile 20 ms over all 60 clips."""
    from coursekit.data.corpus import SAMPLES_DIR

    errors = []
    for flac in sorted(SAMPLES_DIR.glob("spk*/audio/*.flac"))[::6]:
        lines = (flac.parent.parent / "align" / f"{flac.stem}.align").read_text().split("\n")
        rows = [line.split() for line in lines if line.strip()]
        truth = np.array([[int(a), int(b)] for a, b, w in rows if w not in ("sil", "sp")]) / 25e3
        audio, sr = load_audio(flac)
        speech = T.align(" ".join(w for *_, w in rows if w not in ("sil", "sp")), audio, sr,
                         source=flac.name)
        errors.append(np.abs(bounds(speech.words) - truth).ravel())
    errors = np.concatenate(errors)
    assert np.median(errors) < 0.015 and np.percentile(errors, 90) < 0.060


def test_grid_transcripts_align_to_their_recordings(grid_dir):
    """Real GRID s1 clips and the corpus' own word alignments. Measured over all 125
    clips: median 35 ms, 90th percentile 92 ms (about 1 and 2 video frames)."""
    errors = []
    for video in sorted((grid_dir / "s1" / "video").glob("*.mpg"))[:20]:
        rows = [line.split() for line in
                (grid_dir / "s1" / "align" / f"{video.stem}.align").read_text().splitlines()]
        words = [(int(a) / 25e3, int(b) / 25e3, w) for a, b, w in rows if w not in ("sil", "sp")]
        audio, sr = load_audio(video)
        speech = T.align(" ".join(w for *_, w in words), audio, sr, source=video.name)
        errors.append(np.abs(bounds(speech.words) - np.array([w[:2] for w in words])).ravel())
    errors = np.concatenate(errors)
    assert np.median(errors) < 0.050 and np.percentile(errors, 90) < 0.130


def test_a_recording_that_is_not_speech_is_an_error():
    t = np.arange(48000) / 16000
    for sound in (0.3 * np.sin(2 * np.pi * 440 * t),
                  0.1 * np.random.default_rng(0).standard_normal(t.size)):
        with pytest.raises(T.TextError, match=r"tone\.wav: does not sound like speech"):
            T.align(SENTENCE, sound.astype(np.float32), 16000, source="tone.wav")


def test_timings_files(tmp_path):
    speech = T.speak(SENTENCE)
    data = json.loads(T.write_timings(speech, tmp_path / "t.json").read_text())
    assert [w["text"] for w in data["words"]] == SENTENCE.split()
    assert data["phones"][0]["symbol"] == speech.phones[0].symbol
    rows = (T.write_timings(speech, tmp_path / "t.csv")).read_text().splitlines()
    assert rows[0] == "kind,label,start,end" and len(rows) == 1 + len(speech.phones) + 6
    with pytest.raises(T.TextError, match=r"t\.txt: timings are written as \.json or \.csv"):
        T.write_timings(speech, tmp_path / "t.txt")


# ----------------------------------------------------------------------------- command


@pytest.fixture(scope="module")
def face(tmp_path_factory):
    """The scikit-image astronaut at 256 x 256 px as a PNG (a small real photo)."""
    path = tmp_path_factory.mktemp("face") / "astronaut.png"
    image = cv2.resize(skimage_data.astronaut(), (256, 256), interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(path), image[..., ::-1])
    return path


def generate(capsys, *args):
    code = cli.main(["generate", *map(str, args), "--threads", "2"])
    out, err = capsys.readouterr()
    return code, out, err


def test_generate_from_text(face, tmp_path, capsys):
    out, timings = tmp_path / "me.mp4", tmp_path / "me.phonemes.json"
    code, text, err = generate(capsys, "--text", SENTENCE, "--face", face, "--out", out,
                               "--rate", 190, "--phonemes")
    assert code == 0, err
    assert f"wrote {out}" in text and f"wrote {timings}" in text
    duration = T.speak(SENTENCE, rate=190).duration
    assert probe_streams(out) == {"video", "audio"}
    frames, fps = read_video(out)
    assert fps == 25 and len(frames) == math.ceil(round(duration * 25, 6))
    sound, sr = load_audio(out, sr=None)
    assert abs(len(sound) / sr - duration) < 1 / 25
    words = json.loads(timings.read_text())["words"]
    assert [w["text"] for w in words] == SENTENCE.split()
    assert words[-1]["end"] <= duration + 1e-3


def test_generate_from_a_recording_and_its_transcript(face, tmp_path, capsys):
    speech = T.speak(SENTENCE, voice="en-gb", rate=140)
    wav = tmp_path / "said.wav"
    soundfile.write(wav, np.concatenate([np.zeros(8000, np.float32), speech.audio]), speech.sr)
    out, timings = tmp_path / "said.mp4", tmp_path / "said.csv"
    code, _, err = generate(capsys, "--text", SENTENCE, "--audio", wav, "--face", face,
                            "--out", out, "--phonemes", timings)
    assert code == 0, err
    sound, sr = load_audio(out, sr=None)
    assert abs(len(sound) / sr - (len(speech.audio) + 8000) / speech.sr) < 1 / 25
    first = next(r for r in timings.read_text().splitlines() if r.startswith("word,"))
    start = 8000 / speech.sr + speech.words[0].start
    assert abs(float(first.split(",")[2]) - start) < 0.025


def test_generate_from_text_through_the_landmark_predictor(face, tmp_path, capsys):
    """``--landmarks``: the mouth follows the multimodal landmark predictor (the text's
    phonemes and espeak's speech): during the words the photo moves between nose and chin,
    not above the nose, and otherwise than with the AU route."""
    routes = {}
    for name, extra in (("landmarks", ["--landmarks"]), ("au", [])):
        out = tmp_path / f"{name}.mp4"
        code, _, err = generate(capsys, "--text", SENTENCE, "--face", face, "--out", out,
                                "--paste-back", *extra)
        assert code == 0, err
        routes[name] = read_video(out)[0].astype(np.float32)
    speech = T.speak(SENTENCE)
    frames = routes["landmarks"]
    assert frames.shape == routes["au"].shape
    from coursekit.infer import crop_face, read_image

    lm = crop_face(read_image(face), 112).landmarks                 # (68, 2) photo pixels
    change = np.abs(frames - frames[:1]).mean(-1)               # (T, H, W) from the first frame
    x0, x1 = int(lm[3, 0]), int(lm[13, 0])
    lower = change[:, int(lm[33, 1]):int(lm[8, 1]), x0:x1]      # nose base to chin
    upper = change[:, :int(lm[29, 1]), x0:x1]                   # eyes and above
    in_words = [k for k in range(len(frames))
                if any(w.start <= k / 25 < w.end for w in speech.words)]
    assert lower[in_words].mean() > 3 * upper[in_words].mean() + 0.05
    assert np.abs(frames - routes["au"]).mean() > 0.05          # another motion than the AU route

    gen = T.landmark_driven(speech)
    windows = np.random.default_rng(0).normal(0, 10, (30, 12, 28)).astype(np.float32)
    text_and_audio = gen.audio_motion(windows)
    assert text_and_audio.shape == (30, 33, 2)
    audio_only = T.landmark_driven(None).audio_motion(windows)
    assert not np.allclose(text_and_audio, audio_only)


def test_landmarks_drive_the_warp_generator_only(face, tmp_path, capsys):
    from coursekit.infer import InferError

    with pytest.raises(InferError, match="warp generator only"):
        T.landmark_driven(None, "diffusion")
    with pytest.raises(FileNotFoundError, match="nowhere.pt: no such landmark predictor"):
        T.landmark_driven(None, landmarks=tmp_path / "nowhere.pt")
    code, _, err = generate(capsys, "--audio", tmp_path / "a.wav", "--landmarks", "--face", face,
                            "--out", tmp_path / "x.mp4")
    assert code == 2 and "--landmarks needs --text" in err


@pytest.mark.parametrize("args, message", [
    (["--text", " "], "empty text: nothing to say"),
    (["--text", "!!!"], "nothing speakable"),
    (["--text", "hi", "--pitch", 120], "pitch 0..99"),
    (["--text", "hi", "--voice", "klingon"], "unknown voice 'klingon'"),
    (["--text", SENTENCE, "--audio", "TONE"], "tone.wav: does not sound like speech"),
    ([], "give --audio, --text or both"),
])
def test_command_errors_are_one_line(face, tmp_path, capsys, args, message):
    tone = tmp_path / "tone.wav"
    soundfile.write(tone, 0.3 * np.sin(np.arange(32000) / 16000 * 2 * np.pi * 300), 16000)
    args = [tone if a == "TONE" else a for a in args]
    code, _, err = generate(capsys, *args, "--face", face, "--out", tmp_path / "x.mp4")
    assert code == 2 and err.startswith("coursekit generate: error: ") and message in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "x.mp4").exists()
