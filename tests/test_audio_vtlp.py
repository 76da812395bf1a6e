"""Vocal tract length perturbation of the MFCC front end, and the voice augmentation."""

import json

import numpy as np
import pytest

from coursekit import audio as A


def _tone(freq: float, seconds: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * A.SAMPLE_RATE)) / A.SAMPLE_RATE
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _peak_band(freq: float, warp: float) -> int:
    spec = np.abs(np.fft.rfft(_tone(freq)[:A.N_FFT] * np.hanning(A.N_FFT))) ** 2
    return int(np.argmax(A.mel_filterbank(warp=warp) @ spec))


def test_warp_one_is_bit_identical():
    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal(16000)).astype(np.float32)
    assert np.array_equal(A.mfcc(x), A.mfcc(x, warp=1.0))
    assert np.array_equal(A.mfcc_windows(x, n_frames=25), A.mfcc_windows(x, n_frames=25, warp=1.0))
    assert np.array_equal(A.mel_filterbank(), A.mel_filterbank(warp=1.0))
    assert not np.allclose(A.mfcc(x), A.mfcc(x, warp=1.1))


def test_warp_moves_a_tone_to_higher_bands():
    base = _peak_band(1000.0, 1.0)
    assert _peak_band(1000.0, 1.2) > base > _peak_band(1000.0, 0.8)


@pytest.mark.parametrize("alpha", [0.8, 1.0, 1.2])
def test_vtlp_frequencies_piecewise_linear(alpha):
    f = np.linspace(0, 8000, 513)
    w = A.vtlp_frequencies(f, alpha)
    assert w[0] == 0 and w[-1] == pytest.approx(8000)
    assert np.all(np.diff(w) > 0)  # monotone: no band folds onto another
    low = f < 3000
    np.testing.assert_allclose(w[low], alpha * f[low])


def test_augment_voices_copies_keep_labels(tmp_path):
    import soundfile

    from coursekit.train.audio_augment import VoiceAugmentConfig, augment_voices

    clip_dir = tmp_path / "proc" / "spk" / "u1"
    clip_dir.mkdir(parents=True)
    wav = tmp_path / "u1.wav"
    soundfile.write(wav, np.concatenate([_tone(300.0), _tone(2000.0)]), A.SAMPLE_RATE)
    occ = (np.arange(25)[:, None] % 2 == np.arange(5)[None] % 2).astype(np.uint8)
    np.save(clip_dir / "occurrence.npy", occ)
    np.save(clip_dir / "aus.npy", occ.astype(np.float32) * 2)
    (clip_dir / "meta.json").write_text(json.dumps(
        {"video": "none.mp4", "audio": str(wav), "n_frames": 25, "fps": 25.0}))
    clip = {"speaker": "spk", "utt": "u1", "n_frames": 25, "dir": "spk/u1", "path": str(clip_dir)}
    cfg = VoiceAugmentConfig(copies=2, vtlp=(1.1, 1.2), noise=1.0)
    extra = augment_voices(tmp_path / "proc", [clip], tmp_path / "voices", cfg)
    assert [c["utt"] for c in extra] == ["u1~v0", "u1~v1"]
    first = np.load(f"{extra[0]['path']}/mfcc.npy")
    assert first.shape == (25, 12, 28)
    assert np.array_equal(np.load(f"{extra[1]['path']}/occurrence.npy"), occ)
    own = A.mfcc_windows(A.load_audio(wav)[0], n_frames=25)
    assert not np.allclose(first, own) and not np.allclose(first, np.load(f"{extra[1]['path']}/mfcc.npy"))
    again = augment_voices(tmp_path / "proc", [clip], tmp_path / "voices", cfg)  # cached, same
    assert again == extra and np.array_equal(np.load(f"{extra[0]['path']}/mfcc.npy"), first)
    with pytest.raises(ValueError, match="vtlp"):
        VoiceAugmentConfig(vtlp=(1.2, 0.9))
