"""Image and landmark metrics against scikit-image and hand-computed values; sync_scores'
offset convention with a hand-made expert."""

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from coursekit.data.corpus import SAMPLES_DIR
from coursekit.metrics import MOUTH, lmd, psnr, ssim, sync_scores
from coursekit.video import read_video


def sk_ssim(a: np.ndarray, b: np.ndarray, data_range: float) -> float:
    """scikit-image's SSIM of ``(N, C, H, W)`` batches, averaged over the images."""
    return float(np.mean([
        structural_similarity(x, y, data_range=data_range, channel_axis=0, gaussian_weights=True,
                              sigma=1.5, use_sample_covariance=False) for x, y in zip(a, b)]))


@pytest.fixture(scope="module")
def sample_frames() -> np.ndarray:
    """Frames of a sample clip as ``(T, 3, H, W)`` float64 in [-1, 1]."""
    frames, _ = read_video(next(iter(sorted((SAMPLES_DIR / "spk1" / "video").glob("*.mp4")))))
    return frames[::5][:8].transpose(0, 3, 1, 2).astype(np.float64) / 127.5 - 1.0


def test_ssim_matches_skimage_on_random_images():
    rng = np.random.default_rng(0)
    a = rng.uniform(-1, 1, (3, 3, 40, 33))
    b = np.clip(a + rng.normal(0, 0.3, a.shape), -1, 1)
    ours = ssim(torch.from_numpy(a).float(), torch.from_numpy(b).float())
    assert ours == pytest.approx(sk_ssim(a, b, 2.0), abs=1e-4)
    assert 0.05 < ours < 0.95  # neither identical nor unrelated
    # a single (3, H, W) image, numpy input, another data range
    u, v = (a[0] + 1) / 2, (b[0] + 1) / 2
    assert ssim(u, v, data_range=1.0) == pytest.approx(sk_ssim(u[None], v[None], 1.0), abs=1e-4)
    assert ssim(a, a) == pytest.approx(1.0, abs=1e-6)
    # uint8 images, data range 255
    x, y = ((a[:2] + 1) * 127.5).astype(np.uint8), ((b[:2] + 1) * 127.5).astype(np.uint8)
    assert ssim(x, y, data_range=255) == pytest.approx(
        sk_ssim(x.astype(np.float64), y.astype(np.float64), 255.0), abs=1e-4)


def test_ssim_and_psnr_match_skimage_on_sample_frames(sample_frames):
    a, b = sample_frames[:-1], sample_frames[1:]  # frames 0.2 s apart: a moving mouth, a head
    ours = ssim(a, b)
    assert ours == pytest.approx(sk_ssim(a, b, 2.0), abs=1e-4)
    assert 0.3 < ours < 0.999
    noisy = np.clip(a + np.random.default_rng(1).normal(0, 0.1, a.shape), -1, 1)
    assert ssim(noisy, a) == pytest.approx(sk_ssim(noisy, a, 2.0), abs=1e-4)
    assert ssim(noisy, a) < ours  # noise hurts more than the motion
    assert psnr(b, a) == pytest.approx(peak_signal_noise_ratio(a, b, data_range=2.0), abs=1e-6)
    assert psnr(torch.from_numpy(noisy), torch.from_numpy(a)) == pytest.approx(
        peak_signal_noise_ratio(a, noisy, data_range=2.0), abs=1e-6)
    assert psnr(a, a) == float("inf")


def test_ssim_refuses_bad_shapes():
    with pytest.raises(ValueError, match="differ"):
        ssim(np.zeros((3, 16, 16)), np.zeros((3, 16, 17)))
    with pytest.raises(ValueError, match="window"):
        ssim(np.zeros((3, 10, 16)), np.zeros((3, 10, 16)))


def test_lmd_by_hand():
    true = np.zeros((2, 68, 2))
    pred = true.copy()
    pred[0, 48:68] = [3.0, 4.0]   # frame 0: every mouth point 5 px off
    pred[1, 48] = [6.0, 8.0]      # frame 1: one mouth point 10 px off
    pred[:, 0:17] = [100.0, 0.0]  # the jaw line is far off, but it is not the mouth
    assert lmd(pred, true) == pytest.approx((20 * 5 + 10) / 40)
    assert lmd(torch.from_numpy(pred), torch.from_numpy(true), points="mouth") == pytest.approx(2.75)
    assert lmd(pred, true, points="all") == pytest.approx((20 * 5 + 10 + 2 * 17 * 100) / (2 * 68))
    assert MOUTH == slice(48, 68)
    with pytest.raises(ValueError):
        lmd(pred, true, points="eyes")
    with pytest.raises(ValueError):
        lmd(pred[:, :60], true[:, :60])


class _CodeExpert(torch.nn.Module):
    """A perfect "expert": frame ``t`` shows the number ``x_t`` (every pixel of its lower half)
    and the audio's window ``t`` starts with the same ``x_t``; a window embeds as its 5
    numbers, centred and normalised."""

    class cfg:  # noqa: N801  (stands for a SyncNetConfig)
        context = 5

    def __init__(self):
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    @staticmethod
    def _unit(x):
        return torch.nn.functional.normalize(x - x.mean(-1, keepdim=True), dim=-1)

    def embed_video(self, frames):  # (N, 5, 3, S/2, S)
        return self._unit(frames.mean((2, 3, 4)))

    def embed_audio(self, mfcc):  # (N, 5, 12, 28)
        return self._unit(mfcc[:, :, 0, 0])


def test_sync_scores_offset_convention():
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.uniform(-1, 1, 60)).float()
    frames = x[:, None, None, None].expand(60, 3, 16, 16).clone()
    frames[:, :, :8] = 0.7  # the upper half is not looked at
    mfcc = torch.zeros(60, 12, 28)
    mfcc[:, 0, 0] = x
    expert = _CodeExpert()
    s = sync_scores(expert, frames, mfcc, max_offset=10)
    assert s["offset"] == 0 and s["distance"] == pytest.approx(0.0, abs=1e-6)
    assert s["confidence"] > 0.5 and s["mean_distances"].shape == (21,)
    assert list(s["offsets"][[0, -1]]) == [-10, 10]
    # the video lags by 4 frames: frame t shows the sound of t - 4
    late = sync_scores(expert, torch.cat([frames[:1].expand(4, -1, -1, -1), frames[:-4]]),
                       mfcc, max_offset=10)
    assert late["offset"] == 4
    early = sync_scores(expert, frames[3:], mfcc[:-3], max_offset=10)
    assert early["offset"] == -3
    with pytest.raises(ValueError, match="too few"):
        sync_scores(expert, frames[:12], mfcc[:12], max_offset=10)
