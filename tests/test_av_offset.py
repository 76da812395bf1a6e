"""A video's sound on the video's timeline: audio streams that start later (phones) or earlier."""

import json

import numpy as np
import pytest
import soundfile

from coursekit import audio as A
from coursekit.data.corpus import SAMPLES_DIR
from coursekit.data.preprocess import PreprocessConfig, preprocess_corpus
from coursekit.video import video_start
from conftest import ffmpeg, tone

FRAME = 0.04  # one video frame at 25 fps


def onset(audio, sr, level=0.05):
    """Time (s) of the first sample louder than ``level``."""
    return int(np.argmax(np.abs(audio) > level)) / sr


def late_audio_clip(path, offset=2.4, seconds=4.0, tone_s=1.6):
    """``seconds`` of test pattern at 25 fps; a 440 Hz tone whose stream starts at ``offset``."""
    ffmpeg("-f", "lavfi", "-i", f"testsrc=s=64x64:d={seconds}:r=25",
           "-itsoffset", str(offset), "-f", "lavfi", "-i", f"sine=f=440:d={tone_s}:sample_rate=48000",
           "-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-c:a", "aac", str(path))
    return path


@pytest.mark.parametrize("suffix", [".mov", ".mp4"])
def test_late_audio_is_padded_with_silence(tmp_path, suffix):
    path = late_audio_clip(tmp_path / f"phone{suffix}")
    plain, sr = A.load_audio(path)  # the stream's samples as they are: the tone from 0
    assert onset(plain, sr) < FRAME and plain.size / sr < 1.7
    audio, sr = A.load_video_audio(path, duration=4.0)
    assert sr == 16000 and audio.size == 64000
    assert abs(onset(audio, sr) - 2.4) <= FRAME
    assert A.is_silent(audio[: int(2.35 * sr)])
    natural, _ = A.load_video_audio(path)  # no duration: the audio's own end (here the video's)
    assert abs(natural.size / sr - 4.0) <= FRAME
    assert A.mfcc_windows(audio, sr, 100).shape == (100, 12, 28)
    with pytest.raises(A.AudioError, match="mismatched lengths"):
        A.mfcc_windows(plain, sr, 100)  # what reading without the timestamps led to


def test_early_audio_is_cut(tmp_path):
    """The video stream starts 12 frames after the audio: the audio before it is dropped."""
    wav, path = tmp_path / "tone.wav", tmp_path / "late_video.mp4"
    sound = tone(440, sr=44100, seconds=4.0)
    sound[: 44100] = 0  # the tone starts at 1.0 s of the audio stream
    soundfile.write(wav, sound, 44100)
    ffmpeg("-itsoffset", "0.48", "-f", "lavfi", "-i", "testsrc=s=64x64:d=3.52:r=25", "-i", str(wav),
           "-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-c:a", "aac", str(path))
    assert abs(video_start(path) - 0.48) < 1e-6
    audio, sr = A.load_video_audio(path, duration=3.52)
    assert audio.size == round(3.52 * sr)
    assert abs(onset(audio, sr) - 0.52) <= FRAME


def test_tail_is_padded_or_the_mismatch_named(tmp_path):
    path = late_audio_clip(tmp_path / "short.mov", offset=2.4, tone_s=1.4)  # ends 0.2 s early
    audio, sr = A.load_video_audio(path, duration=4.0)
    assert audio.size == 64000 and A.is_silent(audio[-int(0.15 * sr):])
    trimmed, _ = A.load_video_audio(path, duration=3.0)  # longer than the video: cut
    assert trimmed.size == 48000
    path = late_audio_clip(tmp_path / "broken.mov", offset=0.5, tone_s=1.0)  # ends 2.5 s early
    with pytest.raises(A.AudioError, match=r"broken\.mov: mismatched lengths.*2\.50 s before"):
        A.load_video_audio(path, duration=4.0)


def test_files_without_a_video_stream_read_as_before(tmp_path):
    wav = tmp_path / "speech.wav"
    soundfile.write(wav, tone(300, seconds=1.0), 16000)
    ours, plain = A.load_video_audio(wav, duration=3.0), A.load_audio(wav)
    np.testing.assert_array_equal(ours[0], plain[0])
    sound_only = tmp_path / "soundonly.mp4"
    ffmpeg("-f", "lavfi", "-i", "sine=f=300:d=1", "-c:a", "aac", str(sound_only))
    assert video_start(sound_only) is None
    assert 0.9 < A.load_video_audio(sound_only)[0].size / 16000 < 1.1
    mute = tmp_path / "mute.mov"
    ffmpeg("-f", "lavfi", "-i", "color=c=gray:s=64x64:d=1", "-c:v", "libx264", str(mute))
    with pytest.raises(A.AudioError, match=r"mute\.mov: the file has no audio stream"):
        A.load_video_audio(mute, duration=1.0)
    with pytest.raises(FileNotFoundError, match="nothere.mov"):
        A.load_video_audio(tmp_path / "nothere.mov")


def test_generate_reads_a_phone_video_on_its_timeline(tmp_path):
    from coursekit.infer import load_speech, n_video_frames

    sound, sr, speech = load_speech(late_audio_clip(tmp_path / "phone.mov"))
    assert sr == 48000 and n_video_frames(sound.size, sr) == 100
    assert abs(onset(speech, 16000) - 2.4) <= FRAME


def test_preprocess_a_real_face_with_late_audio(tmp_path):
    """A sample clip re-muxed as a phone would write it: its sound stream starts 1.0 s late."""
    utt, offset = "bgif7s", 1.0
    src = tmp_path / "src" / "spk1" / "video"
    src.mkdir(parents=True)
    sound, sr = soundfile.read(SAMPLES_DIR / "spk1" / "audio" / f"{utt}.flac", dtype="float32")
    soundfile.write(tmp_path / "rest.wav", sound[int(offset * sr):], sr)
    ffmpeg("-i", str(SAMPLES_DIR / "spk1" / "video" / f"{utt}.mp4"), "-itsoffset", str(offset),
           "-i", str(tmp_path / "rest.wav"), "-map", "0:v", "-map", "1:a", "-c:v", "copy",
           "-c:a", "aac", "-b:a", "128k", str(src / f"{utt}.mov"))
    summary = preprocess_corpus(tmp_path / "src", tmp_path / "out", PreprocessConfig(size=64),
                                progress=False)
    assert summary["failed"] == {} and summary["done"] == 1
    folder = tmp_path / "out" / "spk1" / utt
    n = json.loads((folder / "meta.json").read_text())["n_frames"]
    windows = np.load(folder / "mfcc.npy")
    assert windows.shape == (n, 12, 28) and np.load(folder / "frames.npy").shape == (n, 64, 64, 3)
    reference = A.mfcc_windows(A.resample(sound, sr, 16000) if sr != 16000 else sound, 16000, n)
    t = np.arange(n) / 25.0
    before, after = t + 0.14 <= offset - 0.1, t - 0.14 >= offset + FRAME  # AAC pre-echo: 64 ms
    assert before.sum() >= 18 and np.abs(windows[before]).max() < 1e-3  # padded silence: c = 0
    corr = np.corrcoef(windows[after].ravel(), reference[after].ravel())[0, 1]
    assert corr > 0.98, corr  # the speech sits where it was said (one frame off: 0.7)
