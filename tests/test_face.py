"""coursekit.face: detection, tracking, the largest face, alignment, errors; on real faces too."""

import os

import numpy as np
import pytest

from coursekit import face
from coursekit.data.corpus import SAMPLES_DIR, list_clips, read_ground_truth
from coursekit.video import read_video


@pytest.fixture(scope="module")
def detector():
    return face.LandmarkDetector()


@pytest.fixture(scope="module")
def sample_clip():
    clip = list_clips(SAMPLES_DIR, speakers=["spk2"])[0]
    frames, _ = read_video(clip.video)
    return clip, frames, read_ground_truth(clip.ground_truth)["landmarks"]


def nme(pred, truth):
    """Mean landmark error divided by the inter-ocular distance, per frame."""
    iod = np.linalg.norm(truth[:, 36:42].mean(1) - truth[:, 42:48].mean(1), axis=1)
    return np.linalg.norm(pred - truth, axis=2).mean(1) / iod


def test_model_file_is_found_and_can_be_overridden(monkeypatch, tmp_path):
    assert face.landmark_model_path().stat().st_size > 50e6
    monkeypatch.setenv("COURSEKIT_LANDMARK_MODEL", str(tmp_path / "none.dat"))
    with pytest.raises(FileNotFoundError, match="none.dat"):
        face.landmark_model_path()


def test_real_photo(detector):
    skimage = pytest.importorskip("skimage")
    img = skimage.data.astronaut()
    boxes = detector.detect(img)
    assert len(boxes) == 1
    x0, y0, x1, y1 = boxes[0]
    assert 150 < x0 < x1 < 300 and 50 < y0 < y1 < 220  # her face, not the flag or the suit
    lms = detector.landmarks(img, boxes[0])
    assert lms[36:42].mean(0)[0] < lms[42:48].mean(0)[0]  # eyes in order
    assert lms[36:48, 1].mean() < lms[30, 1] < lms[51, 1] < lms[8, 1]  # eyes, nose, mouth, chin


def test_tracking_matches_ground_truth_landmarks(detector, sample_clip):
    _, frames, truth = sample_clip
    tracked = face.track_landmarks(frames, detector)
    err = nme(tracked, truth)
    assert err.mean() < 0.08 and err.max() < 0.2, (err.mean(), err.max())


def test_no_face_is_a_clear_error(detector):
    frames = np.full((5, 120, 160, 3), 90, np.uint8)
    with pytest.raises(face.FaceError, match=r"empty\.mp4: no face found in any of its 5 frames"):
        face.track_landmarks(frames, detector, source="empty.mp4")


def test_several_faces_follow_the_largest(detector, sample_clip):
    import cv2

    _, frames, _ = sample_clip
    canvas = np.full((len(frames), 240, 400, 3), 120, np.uint8)
    for k, frame in enumerate(frames):
        canvas[k, 40:200, 220:380] = frame  # 160 px face on the right
        canvas[k, 70:170, 20:120] = cv2.resize(frame, (100, 100), interpolation=cv2.INTER_AREA)
    tracked = face.track_landmarks(canvas, detector)
    assert np.all(tracked[:, :, 0] > 200), "landmarks left the larger face"


def test_faces_missing_at_the_start_are_tracked_backwards(detector, sample_clip):
    _, frames, truth = sample_clip
    blurred = frames.copy()
    blurred[:3] = blurred[:3].mean(axis=(1, 2), keepdims=True).astype(np.uint8)  # no face there
    tracked = face.track_landmarks(blurred, detector)
    assert np.all(np.isfinite(tracked)) and nme(tracked[3:], truth[3:]).mean() < 0.08


def test_similarity_transform_recovers_a_known_one():
    rng = np.random.default_rng(0)
    src = rng.normal(size=(20, 2)) * 30
    angle, scale, shift = 0.3, 1.7, np.array([12.0, -5.0])
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    dst = src @ (scale * rot).T + shift
    m = face.similarity_transform(src, dst)
    np.testing.assert_allclose(m[:, :2], scale * rot, atol=1e-4)
    np.testing.assert_allclose(m[:, 2], shift, atol=1e-3)
    mirrored = face.similarity_transform(src, dst * [-1, 1])
    assert np.linalg.det(mirrored[:, :2]) > 0  # never a reflection


def test_smoothing_reduces_jitter_but_keeps_constant_sequences():
    rng = np.random.default_rng(1)
    still = np.tile(face.template(112), (30, 1, 1))
    np.testing.assert_allclose(face.smooth_landmarks(still, 1.5), still, atol=1e-5)
    noisy = still + rng.normal(size=still.shape).astype(np.float32)
    assert np.abs(face.smooth_landmarks(noisy, 1.5) - still).mean() < 0.6 * np.abs(noisy - still).mean()


def test_alignment_puts_rigid_points_on_the_template(sample_clip):
    _, frames, truth = sample_clip
    clip = face.align_clip(frames, truth, size=112)
    assert clip.crops.shape == (len(frames), 112, 112, 3) and clip.crops.dtype == np.uint8
    rigid = clip.aligned[:, face.RIGID_POINTS]
    target = face.template(112)[face.RIGID_POINTS]
    assert np.abs(rigid - target).mean() < 3.0  # pixels; the synthetic face is not the mean face
    # the whole face (chin included, jaw dropped or not) stays inside the crop
    assert clip.aligned.min() > 0 and clip.aligned.max() < 112


def test_detected_and_ground_truth_alignment_agree(detector, sample_clip):
    _, frames, truth = sample_clip
    detected = face.align_clip(frames, detector=detector)
    given = face.align_clip(frames, truth)
    diff = np.abs(detected.crops.astype(float) - given.crops.astype(float)).mean()
    assert diff < 12, diff  # grey levels: the same framing up to a pixel or two
    assert np.abs(detected.transforms - given.transforms)[..., 2].mean() < 3.0


def test_real_grid_faces_align(detector, grid_videos):
    for video in grid_videos[::25]:
        frames, fps = read_video(video)
        clip = face.align_clip(frames, detector=detector, source=str(video))
        rigid = clip.aligned[:, face.RIGID_POINTS]
        residual = np.abs(rigid - face.template(112)[face.RIGID_POINTS]).mean()
        assert residual < 3.0, (video, residual)
        assert len(clip.crops) == len(frames) == 75
