"""The measurement helpers of benchmarks/real_faces.py: region PSNR of a video against its
photo, agreement of mouth-opening series, and the opening tracked on real frames."""

import numpy as np
import pytest

from coursekit.data.corpus import SAMPLES_DIR
from coursekit.metrics import (
    mouth_opening,
    opening_agreement,
    region_psnr,
    tracked_opening,
)
from coursekit.video import read_video


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (48, 40, 3), dtype=np.uint8)


def test_region_psnr_unchanged_is_infinite_changed_is_finite(photo):
    video = np.repeat(photo[None], 4, 0)
    assert np.isinf(region_psnr(video, photo)).all()
    video[2, 30:, :] = 255 - video[2, 30:, :]  # only below row 30 changes, in frame 2
    above = region_psnr(video, photo, box=(0, 0, 40, 30))
    assert np.isinf(above).all()
    whole = region_psnr(video, photo)
    assert np.isinf(whole[[0, 1, 3]]).all() and np.isfinite(whole[2]) and whole[2] < 20
    # a one-level change everywhere: MSE 1 -> 20 log10(255) dB
    assert region_psnr(photo[None].astype(np.int16) + 1, photo)[0] == pytest.approx(
        20 * np.log10(255.0))


def test_region_psnr_box_is_clipped_and_checked(photo):
    video = photo[None].copy()
    video[0, :5] = 0
    assert np.isfinite(region_psnr(video, photo, box=(-10, -10, 100, 10))[0])
    assert np.isinf(region_psnr(video, photo, box=(0, 5, 40, 48))[0])
    with pytest.raises(ValueError, match="empty"):
        region_psnr(video, photo, box=(10, 10, 10, 20))
    with pytest.raises(ValueError, match="reference"):
        region_psnr(video[:, :10], photo)


def test_opening_agreement():
    t = np.linspace(0, 6, 75)
    real = 0.2 + 0.1 * np.sin(t)
    assert opening_agreement(real, real) == pytest.approx((1.0, 1.0))
    corr, spread = opening_agreement(0.5 * real, real)
    assert corr == pytest.approx(1.0) and spread == pytest.approx(0.5)
    assert opening_agreement(-real, real)[0] == pytest.approx(-1.0)
    assert opening_agreement(np.full(75, 0.3), real) == (0.0, 0.0)  # a frozen mouth
    assert opening_agreement(real, np.full(75, 0.3)) == (0.0, float("inf"))
    with pytest.raises(ValueError, match="same length"):
        opening_agreement(real, real[:10])


def test_tracked_opening_on_a_sample_clip():
    video = min((SAMPLES_DIR / "spk1" / "video").glob("*.mp4"))
    frames = read_video(video)[0][:20]
    opening, landmarks = tracked_opening(frames, source=str(video))
    assert opening.shape == (20,) and landmarks.shape == (20, 68, 2)
    assert np.allclose(opening, mouth_opening(landmarks))
    assert np.isfinite(opening).all() and (opening >= 0).all() and opening.max() < 1
    assert opening_agreement(opening, opening)[0] == pytest.approx(1.0)
