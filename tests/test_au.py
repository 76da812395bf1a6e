"""coursekit.au: OpenFace CSV readers and the landmark AU estimator."""

import numpy as np
import pytest

from coursekit import au
from coursekit.data import corpus

HELD_OUT = ("spk5", "spk6")

# OpenFace 2.2 FeatureExtraction column order (eye landmarks and 3D points shortened).
OPENFACE_AUS_R = ["AU01", "AU02", "AU04", "AU05", "AU06", "AU07", "AU09", "AU10", "AU12", "AU14",
                  "AU15", "AU17", "AU20", "AU23", "AU25", "AU26", "AU45"]
OPENFACE_AUS_C = OPENFACE_AUS_R[:-1] + ["AU28", "AU45"]
OPENFACE_HEADER = (
    ["frame", "face_id", "timestamp", "confidence", "success"]
    + [f"gaze_{e}_{a}" for e in (0, 1) for a in "xyz"] + ["gaze_angle_x", "gaze_angle_y"]
    + [f"eye_lmk_{c}_{i}" for c in "xy" for i in range(4)]
    + ["pose_Tx", "pose_Ty", "pose_Tz", "pose_Rx", "pose_Ry", "pose_Rz"]
    + [f"x_{i}" for i in range(68)] + [f"y_{i}" for i in range(68)]
    + [f"Z_{i}" for i in range(3)] + ["p_scale", "p_rx", "p_ry", "p_rz", "p_tx", "p_ty", "p_0"]
    + [f"{a}_r" for a in OPENFACE_AUS_R] + [f"{a}_c" for a in OPENFACE_AUS_C])


def openface_value(name: str, row: int) -> float:
    """A distinct, recognisable value for every (column, row)."""
    if name.endswith("_c"):
        return float((row + int(name[2:4])) % 2)
    if name.endswith("_r"):
        return round(int(name[2:4]) / 10 + row / 100, 2)
    return round(0.5 * row + 0.001 * OPENFACE_HEADER.index(name), 3)


def write_openface(path, rows, header=OPENFACE_HEADER, frame_col=None, failed=()):
    lines = [", ".join(header)]
    for k in rows:
        values = {name: openface_value(name, k) for name in header}
        values.update(frame=frame_col if frame_col is not None else k + 1, face_id=0,
                      timestamp=round(k * 0.04, 3) if frame_col is None else 0.0,
                      confidence=0.98, success=1)
        if k in failed:
            values.update({n: 0 for n in header if n.startswith(("AU", "x_", "y_"))},
                          success=0, confidence=0.0)
        lines.append(", ".join(f"{values[name]:g}" for name in header))
    path.write_text("\n".join(lines) + "\n")
    return path


def f1_scores(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    p, t = pred >= au.OCCURRENCE_THRESHOLD, true >= au.OCCURRENCE_THRESHOLD
    return 2 * (p & t).sum(0) / np.maximum(p.sum(0) + t.sum(0), 1)


# ----------------------------------------------------------------------------- OpenFace


def test_read_openface_csv(tmp_path):
    path = write_openface(tmp_path / "clip.csv", range(6), failed={3})
    table = au.read_openface_csv(path)
    assert table["aus"].shape == (6, 5) and table["occurrence"].shape == (6, 5)
    assert table["landmarks"].shape == (6, 68, 2)
    np.testing.assert_array_equal(table["frame"], np.arange(1, 7))
    np.testing.assert_allclose(table["timestamp"], np.arange(6) * 0.04, atol=1e-6)
    np.testing.assert_array_equal(table["success"], [1, 1, 1, 0, 1, 1])
    assert table["confidence"][3] == 0 and table["confidence"][0] == pytest.approx(0.98)
    for k, name in enumerate(au.AUS):
        for row in (0, 1, 2, 4, 5):
            assert table["aus"][row, k] == pytest.approx(openface_value(f"{name}_r", row))
            assert table["occurrence"][row, k] == openface_value(f"{name}_c", row)
    assert np.all(table["aus"][3] == 0) and np.all(table["occurrence"][3] == 0)  # kept, flagged
    assert table["landmarks"][2, 5, 0] == pytest.approx(openface_value("x_5", 2))
    assert table["landmarks"][2, 67, 1] == pytest.approx(openface_value("y_67", 2))


def test_read_openface_frames_numeric_order(tmp_path):
    folder = tmp_path / "align_face"
    folder.mkdir()
    for n in range(12):  # one single-image run per frame: every file says frame 1
        write_openface(folder / f"{n}.csv", [n], frame_col=1)
    table = au.read_openface_frames(folder)
    np.testing.assert_array_equal(table["frame"], np.arange(12))
    k = au.AUS.index("AU25")
    np.testing.assert_allclose(table["aus"][:, k], [openface_value("AU25_r", n) for n in range(12)])
    np.testing.assert_allclose(table["timestamp"], np.arange(12) / 25.0, atol=1e-6)
    # numbered from 1, given as a shuffled list of paths
    paths = [write_openface(tmp_path / f"frame_{n}.csv", [n]) for n in range(1, 12)]
    table = au.read_openface_frames(paths[::-1])
    np.testing.assert_array_equal(table["frame"], np.arange(1, 12))
    expected = [openface_value("AU25_r", n) for n in range(1, 12)]
    np.testing.assert_allclose(table["aus"][:, k], expected)


def test_openface_errors_name_the_file(tmp_path):
    header = [h for h in OPENFACE_HEADER if h != "AU14_r"]
    path = write_openface(tmp_path / "no_au14.csv", range(3), header=header)
    with pytest.raises(ValueError, match=r"no_au14\.csv.*AU14_r"):
        au.read_openface_csv(path)
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ValueError, match=r"empty\.csv"):
        au.read_openface_csv(tmp_path / "empty.csv")
    (tmp_path / "header.csv").write_text(", ".join(OPENFACE_HEADER) + "\n")
    with pytest.raises(ValueError, match=r"header\.csv"):
        au.read_openface_csv(tmp_path / "header.csv")
    folder = tmp_path / "frames"
    folder.mkdir()
    for n in range(3):
        write_openface(folder / f"{n}.csv", [n], header=header if n == 2 else OPENFACE_HEADER)
    with pytest.raises(ValueError, match=r"2\.csv.*AU14_r"):
        au.read_openface_frames(folder)


def test_openface_without_occurrence_columns_uses_the_threshold(tmp_path):
    header = [h for h in OPENFACE_HEADER if not h.endswith("_c")]
    table = au.read_openface_csv(write_openface(tmp_path / "r_only.csv", range(4), header=header))
    np.testing.assert_array_equal(table["occurrence"], table["aus"] >= au.OCCURRENCE_THRESHOLD)


def test_ground_truth_csvs_read_like_corpus():
    paths = sorted(corpus.SAMPLES_DIR.glob("*/gt/*.csv"))
    assert len(paths) == 60
    for path in paths:
        ours, theirs = au.read_openface_csv(path), corpus.read_ground_truth(path)
        for key in ("timestamp", "landmarks", "aus", "occurrence"):
            np.testing.assert_allclose(ours[key], theirs[key], atol=1e-6, err_msg=f"{path} {key}")
        assert ours["success"].all()


# ----------------------------------------------------------------------------- estimator


@pytest.fixture(scope="module")
def held_out():
    """dlib-tracked landmarks and ground truth of the held-out sample speakers."""
    return corpus.tracked_clips(speakers=HELD_OUT)


def ground_truth_clips(speakers):
    gts = [corpus.read_ground_truth(c.ground_truth) for c in corpus.list_clips(speakers=speakers)]
    return [g["landmarks"] for g in gts], [g["aus"] for g in gts]


def held_out_f1(landmarks, aus) -> np.ndarray:
    pred = np.concatenate([au.estimate_aus(lm)[0] for lm in landmarks])
    return f1_scores(pred, np.concatenate(aus))


def test_estimator_on_ground_truth_landmarks():
    """The estimator itself: exact landmarks of speakers not used for calibration."""
    f1 = held_out_f1(*ground_truth_clips(list(HELD_OUT)))
    print("F1 on ground-truth landmarks, held-out speakers:", dict(zip(au.AUS, f1.round(3))))
    assert f1.mean() >= 0.8  # the target; measured 0.849
    assert f1[au.AUS.index("AU25")] >= 0.9 and f1[au.AUS.index("AU26")] >= 0.8
    assert f1[au.AUS.index("AU20")] >= 0.8


def test_estimator_on_dlib_landmarks(held_out):
    """As in preprocessing real video: landmarks tracked by dlib (whose precision limits it)."""
    f1 = held_out_f1(*held_out)
    print("F1 on dlib landmarks, held-out speakers:", dict(zip(au.AUS, f1.round(3))))
    assert f1.mean() >= 0.6  # measured 0.638
    assert f1[au.AUS.index("AU25")] >= 0.85 and f1[au.AUS.index("AU26")] >= 0.65


@pytest.mark.xfail(strict=True, reason="with dlib landmarks mean F1 is 0.64 held-out (0.71 over "
                   "all speakers): AU14 and AU10 move the lips by about a pixel per intensity "
                   "unit, at the landmark predictor's noise level")
def test_estimator_f1_target_on_dlib_landmarks(held_out):
    assert held_out_f1(*held_out).mean() >= 0.8


def test_invariant_to_rotation_scale_shift():
    gt = corpus.read_ground_truth(corpus.list_clips(speakers=["spk5"])[0].ground_truth)
    lm = gt["landmarks"]
    angle = np.deg2rad(25.0)
    rot = 1.8 * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    moved = (lm @ rot.T + [310.0, -45.0]).astype(np.float32)
    aus, occ = au.estimate_aus(lm)
    aus2, occ2 = au.estimate_aus(moved)
    np.testing.assert_allclose(aus2, aus, atol=0.02)
    assert (occ != occ2).mean() < 0.005  # only frames within rounding of the threshold may flip
    assert occ.sum() > 0


def neutral_sequence(n=60, seed=0, aus=None):
    """A synthetic face with a closed mouth (or ``aus``), blinking and moving its head."""
    from coursekit.data import facerender, synth

    rng = np.random.default_rng(seed)
    who = facerender.random_identity(rng)
    pose, blink = synth.head_motion(n, rng), synth.blinks(n, rng)
    aus = np.zeros((n, 5)) if aus is None else aus
    lm = np.stack([facerender.face_landmarks(who, aus[k], blink=float(blink[k]),
                                             pose=(pose[k, 0] / 160, pose[k, 1] / 160,
                                                   float(pose[k, 2]), float(pose[k, 3])))
                   for k in range(n)])
    return lm + rng.normal(0, 0.3, lm.shape).astype(np.float32)  # tracker-like jitter


def test_neutral_face_has_no_occurrences():
    for seed in range(3):
        lm = neutral_sequence(seed=seed)
        aus, occ = au.estimate_aus(lm)
        assert occ.sum() == 0, f"seed {seed}: {occ.sum(0)}"
        assert aus.max() < au.OCCURRENCE_THRESHOLD
        _, occ = au.estimate_aus(lm, au.neutral_features([lm[:30], lm[30:]]))
        assert occ.sum() == 0


def test_open_mouth_is_detected():
    target = np.zeros((60, 5))
    target[25:45, au.AUS.index("AU25")] = 3.0
    target[25:45, au.AUS.index("AU26")] = 3.0
    lm = neutral_sequence(aus=target, seed=4)
    neutral = au.neutral_features([neutral_sequence(seed=4)])
    for given in (None, neutral):
        _, occ = au.estimate_aus(lm, given)
        for name in ("AU25", "AU26"):
            k = au.AUS.index(name)
            assert occ[27:43, k].all() and not occ[:20, k].any() and not occ[50:, k].any()


def test_estimate_aus_shapes_and_errors():
    lm = neutral_sequence(n=10)
    aus, occ = au.estimate_aus(lm)
    assert aus.shape == (10, 5) and aus.dtype == np.float32 and occ.shape == (10, 5)
    assert np.all((aus >= 0) & (aus <= 5))
    with pytest.raises(ValueError, match="68"):
        au.estimate_aus(lm[:, :60])
    bad = lm.copy()
    bad[3, 10] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        au.estimate_aus(bad)


def test_calibration_reproduces_stored_weights():
    weights = au.calibrate(*corpus.tracked_clips(speakers=au.TRAIN_SPEAKERS))
    assert weights.shape == au.WEIGHTS.shape
    np.testing.assert_array_equal(weights == 0, au.WEIGHTS == 0)  # same features per AU
    scale = np.abs(au.WEIGHTS).max(axis=1, keepdims=True)
    np.testing.assert_allclose(weights, au.WEIGHTS, rtol=0.03, atol=0.01 * scale.max())
    assert np.all(np.abs(weights - au.WEIGHTS) <= 0.02 * scale + 0.005)


# ----------------------------------------------------------------------------- real GRID


def test_grid_mouth_opens_in_words_not_in_silence(grid_dir, grid_videos):
    from coursekit.face import LandmarkDetector, track_landmarks
    from coursekit.video import read_video

    s1 = [v for v in grid_videos if (v.parent.parent / "align" / f"{v.stem}.align").is_file()]
    assert len(s1) >= 25
    detector = LandmarkDetector()
    inside, silent = [], []
    for video in s1[::5]:
        frames, fps = read_video(video)
        _, occ = au.estimate_aus(track_landmarks(frames, detector, source=str(video)))
        words = corpus.read_align(video.parent.parent / "align" / f"{video.stem}.align")
        t = np.arange(len(occ)) / fps
        sil = np.zeros(len(occ), bool)
        for start, end, word in words:
            sil |= (word == "sil") & (t >= start) & (t < end)
        inside.append(occ[corpus.speech_mask(words, len(occ), fps)])
        silent.append(occ[sil])
    in_words, in_sil = np.concatenate(inside).mean(0), np.concatenate(silent).mean(0)
    print("GRID s1 occurrence in words", dict(zip(au.AUS, in_words.round(3))),
          "in sil", dict(zip(au.AUS, in_sil.round(3))))
    for name in ("AU25", "AU26"):
        k = au.AUS.index(name)
        assert in_words[k] >= 3 * in_sil[k] and in_words[k] - in_sil[k] >= 0.3, name
