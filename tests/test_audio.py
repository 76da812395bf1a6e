"""coursekit.audio: MFCCs against librosa, frame alignment, and every kind of bad input."""

import numpy as np
import pytest
import scipy.signal
import soundfile

from coursekit import audio as A
from conftest import ffmpeg, tone


def speechlike(seconds=2.0, sr=16000, seed=0):
    """Noise shaped by a moving resonance plus a tone: varied spectra over time."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(int(sr * seconds)).astype(np.float32) * 0.05
    t = np.arange(x.size) / sr
    return (x + 0.3 * np.sin(2 * np.pi * (200 + 300 * t) * t) * (t % 0.5 < 0.3)).astype(np.float32)


# ----------------------------------------------------------------------------- values


def test_mel_filterbank_matches_librosa():
    librosa = pytest.importorskip("librosa")
    ref = librosa.filters.mel(sr=16000, n_fft=512, n_mels=26, fmin=20, fmax=8000, htk=True, norm=None)
    np.testing.assert_allclose(A.mel_filterbank(), ref, atol=1e-6)


def test_mfcc_matches_librosa_frame_by_frame():
    """Independent path: scipy pre-emphasis, librosa STFT/mel/dB/DCT on the same frames."""
    librosa = pytest.importorskip("librosa")
    y = speechlike()
    ours = A.mfcc(y, lifter=0)
    pre = scipy.signal.lfilter([1.0, -A.PREEMPHASIS], [1.0], y.astype(np.float64))
    # librosa (center=False) puts the 400-sample window in the middle of a 512 frame that
    # starts at j*hop; ours is centred on (j + 0.5)*hop: shift by 256 - 80 = 176 samples
    z = np.pad(pre, (176, 512))
    mel = librosa.feature.melspectrogram(
        y=z, sr=16000, n_fft=512, hop_length=160, win_length=400, window="hamming",
        center=False, power=2.0, n_mels=26, fmin=20, fmax=8000, htk=True, norm=None)
    ref = librosa.feature.mfcc(S=librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None),
                               n_mfcc=13, dct_type=2, norm="ortho", lifter=0)[1:]
    assert ours.shape == (12, int(np.ceil(y.size / 160)))
    np.testing.assert_allclose(ours, ref[:, : ours.shape[1]], atol=2e-3, rtol=1e-4)


def test_lifter_is_htk_sinusoid():
    y = speechlike(seed=1)
    ratio = A.mfcc(y) / A.mfcc(y, lifter=0)
    n = np.arange(1, 13)
    expected = np.broadcast_to((1 + 11 * np.sin(np.pi * n / 22))[:, None], ratio.shape)
    np.testing.assert_allclose(ratio, expected, rtol=1e-4)


def test_silence_gives_zero_cepstra():
    m = A.mfcc(np.zeros(16000, dtype=np.float32))
    assert np.all(np.isfinite(m)) and np.abs(m).max() < 1e-3


# ----------------------------------------------------------------------------- windows


def test_window_shape_and_slide():
    y = speechlike(3.0)
    w = A.mfcc_windows(y, 16000, 75)
    assert w.shape == (75, 12, 28) and w.dtype == np.float32
    m = A.mfcc(y)
    # window k starts at cell 4k - 14 (40 ms per frame, 14 cells of left context)
    for k in (10, 40, 60):
        np.testing.assert_array_equal(w[k], m[:, 4 * k - 14: 4 * k + 14])
    # consecutive windows are the same image slid by 4 columns
    np.testing.assert_array_equal(w[31][:, :24], w[30][:, 4:])


def test_window_middle_is_aligned_with_frame_time():
    """A 20 ms burst at t = 1.2 s (frame 30 at 25 fps) sits in the middle of window 30."""
    sr, y = 16000, np.zeros(16000 * 3, dtype=np.float32)
    burst = slice(int(1.19 * sr), int(1.21 * sr))
    y[burst] = tone(1000, seconds=0.02)
    w = A.mfcc_windows(y, sr, 75)

    def centroid(win):
        energy = np.abs(win).sum(axis=0)
        return float((energy * np.arange(win.shape[1])).sum() / energy.sum())

    assert abs(centroid(w[30]) - 13.5) < 0.5  # middle of 28 columns
    assert abs(centroid(w[29]) - 17.5) < 0.5  # 40 ms earlier frame: burst 4 columns later
    assert np.abs(w[0]).max() < 1e-3  # far from the burst: silence


def test_edges_repeat_first_and_last_frames():
    y = speechlike(1.0)
    m = A.mfcc(y)
    w = A.mfcc_windows(y, 16000, 25)
    np.testing.assert_array_equal(w[0][:, :14], np.repeat(m[:, :1], 14, axis=1))
    last = w[-1]
    assert np.all(last[:, -1] == m[:, -1])


def test_mismatched_lengths_raise():
    with pytest.raises(A.AudioError, match="mismatched lengths"):
        A.mfcc_windows(np.ones(16000, dtype=np.float32) * 0.1, 16000, 75)


def test_default_frame_count_from_duration():
    assert A.mfcc_windows(speechlike(2.0), 16000).shape == (50, 12, 28)


# ----------------------------------------------------------------------------- loading


@pytest.mark.parametrize("rate", [8000, 16000, 44100, 48000])
def test_any_rate_is_resampled_to_16k(tmp_path, rate, recwarn):
    path = tmp_path / f"tone_{rate}.wav"
    soundfile.write(path, tone(440, sr=rate, seconds=1.5), rate)
    audio, sr = A.load_audio(path)
    assert sr == 16000 and audio.dtype == np.float32
    assert abs(audio.size - 24000) <= 2
    spectrum = np.abs(np.fft.rfft(audio))
    assert abs(np.argmax(spectrum) * sr / audio.size - 440) < 2
    warned = any("below 16000 Hz" in str(w.message) for w in recwarn)
    assert warned == (rate < 16000)


def test_stereo_is_mixed_to_mono(tmp_path):
    path = tmp_path / "stereo.flac"
    left = tone(440, seconds=1.0)
    soundfile.write(path, np.stack([left, np.zeros_like(left)], axis=1), 16000)
    audio, _ = A.load_audio(path)
    assert audio.ndim == 1
    np.testing.assert_allclose(audio, left / 2, atol=1e-3)


def test_mp3(tmp_path):
    path = tmp_path / "tone.mp3"
    soundfile.write(path, tone(440, seconds=1.0), 16000, format="MP3")
    audio, sr = A.load_audio(path)
    assert sr == 16000 and 0.9 < audio.size / sr < 1.2


def test_audio_track_of_a_video(tmp_path):
    path = tmp_path / "clip.mp4"
    ffmpeg("-f", "lavfi", "-i", "color=c=gray:s=64x64:d=2", "-f", "lavfi",
           "-i", "sine=f=440:d=2:sample_rate=44100", "-ac", "2", "-shortest",
           "-c:v", "libx264", "-c:a", "aac", str(path))
    audio, sr = A.load_audio(path)
    assert sr == 16000 and 1.9 < audio.size / sr < 2.2
    assert A.mfcc_windows(audio, sr, 50).shape == (50, 12, 28)


def test_video_without_audio_is_a_clear_error(tmp_path):
    path = tmp_path / "mute.mp4"
    ffmpeg("-f", "lavfi", "-i", "color=c=gray:s=64x64:d=1", "-c:v", "libx264", str(path))
    with pytest.raises(A.AudioError, match=r"mute\.mp4.*no audio stream"):
        A.load_audio(path)


def test_missing_empty_and_non_audio_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.wav"):
        A.load_audio(tmp_path / "nothere.wav")
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(A.AudioError, match=r"empty\.wav.*empty"):
        A.load_audio(empty)
    text = tmp_path / "notes.wav"
    text.write_text("this is not audio\n" * 50)
    with pytest.raises(A.AudioError, match=r"notes\.wav.*not a readable"):
        A.load_audio(text)


def test_zero_sample_file(tmp_path):
    path = tmp_path / "zero.wav"
    soundfile.write(path, np.zeros(0, dtype=np.float32), 16000)
    with pytest.raises(A.AudioError, match=r"zero\.wav.*0 samples"):
        A.load_audio(path)


def test_silent_file_loads_but_can_be_refused(tmp_path):
    path = tmp_path / "silence.wav"
    soundfile.write(path, np.zeros(16000, dtype=np.float32), 16000)
    audio, sr = A.load_audio(path)
    windows = A.mfcc_windows(audio, sr, 25)
    assert np.all(np.isfinite(windows)) and np.ptp(windows) < 1e-3  # still: all windows alike
    with pytest.raises(A.AudioError, match=r"silence\.wav.*silent"):
        A.load_audio(path, allow_silent=False)


def test_wrong_rate_or_shape_into_mfcc():
    with pytest.raises(ValueError, match="16000 Hz"):
        A.mfcc(tone(sr=44100), 44100)
    with pytest.raises(ValueError, match="mono"):
        A.mfcc(np.zeros((2, 16000), dtype=np.float32))
    with pytest.raises(A.AudioError, match="empty"):
        A.mfcc(np.zeros(0, dtype=np.float32))


# ----------------------------------------------------------------------------- real data


def test_every_grid_clip_gives_75_windows(grid_videos):
    for video in grid_videos:
        audio, sr = A.load_audio(video)
        assert 2.9 < audio.size / sr < 3.1, video
        windows = A.mfcc_windows(audio, sr, 75)
        assert windows.shape == (75, 12, 28), video
        assert np.all(np.isfinite(windows)), video
        assert windows.std() > 1.0, video  # real speech, not silence
