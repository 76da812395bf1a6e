"""coursekit preprocess: outputs, resume after a kill, per-clip errors, and all real GRID clips."""

import json
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from coursekit import cli
from coursekit.au import AUS
from coursekit.data.corpus import SAMPLES_DIR
from coursekit.data.preprocess import PreprocessConfig, preprocess_corpus
from conftest import ffmpeg


def copy_speaker(dst, speaker="spk1"):
    shutil.copytree(SAMPLES_DIR / speaker, dst / speaker)
    return dst


def test_outputs_of_one_speaker(tmp_path):
    src = copy_speaker(tmp_path / "src")
    summary = preprocess_corpus(src, tmp_path / "out", PreprocessConfig(aus="ground_truth"),
                                progress=False)
    assert summary["done"] == 10 and not summary["failed"]
    index = json.loads((tmp_path / "out" / "index.json").read_text())
    assert index["format"] == "coursekit-processed" and len(index["clips"]) == 10
    entry = index["clips"][0]
    folder = tmp_path / "out" / entry["dir"]
    n = entry["n_frames"]
    shapes = {"frames": (n, 112, 112, 3), "identity": (112, 112, 3), "landmarks": (n, 68, 2),
              "aligned_landmarks": (n, 68, 2), "transforms": (n, 2, 3), "aus": (n, 5),
              "occurrence": (n, 5), "mfcc": (n, 12, 28), "speech": (n,), "gt_aus": (n, 5)}
    for name, shape in shapes.items():
        assert np.load(folder / f"{name}.npy").shape == shape, name
    np.testing.assert_array_equal(np.load(folder / "identity.npy"), np.load(folder / "frames.npy")[0])
    speech = np.load(folder / "speech.npy")
    occ = np.load(folder / "occurrence.npy")
    assert occ[speech, AUS.index("AU25")].mean() > occ[~speech, AUS.index("AU25")].mean() + 0.5


def test_ground_truth_and_detected_landmarks_agree(tmp_path):
    src = copy_speaker(tmp_path / "src", "spk3")
    a = preprocess_corpus(src, tmp_path / "gt", PreprocessConfig(landmarks="ground_truth",
                                                                aus="ground_truth"), progress=False)
    b = preprocess_corpus(src, tmp_path / "det", PreprocessConfig(aus="ground_truth"), progress=False)
    assert a["done"] == b["done"] == 10
    for folder in sorted((tmp_path / "gt" / "spk3").iterdir())[:4]:
        other = tmp_path / "det" / "spk3" / folder.name
        la, lb = (np.load(f / "aligned_landmarks.npy") for f in (folder, other))
        assert np.abs(la - lb).mean() < 2.5  # pixels in the 112 px crop


def test_killed_run_resumes(tmp_path):
    src = copy_speaker(tmp_path / "src")
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "coursekit.cli", "preprocess", str(src), str(out),
                             "--aus", "ground-truth"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while len(list(out.glob("spk1/*/meta.json"))) < 3 and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = len(list(out.glob("spk1/*/meta.json")))
    assert 3 <= finished < 10, "the run must be killed half-way for this test to mean anything"
    summary = preprocess_corpus(src, out, PreprocessConfig(aus="ground_truth"), progress=False)
    assert summary["skipped"] == finished and summary["done"] == 10 - finished
    assert not list(out.glob("spk1/.*"))  # no half-written leftovers
    index = json.loads((out / "index.json").read_text())
    assert len(index["clips"]) == 10


def test_bad_clips_are_reported_and_the_run_goes_on(tmp_path, capsys):
    src = copy_speaker(tmp_path / "src")
    video_dir = src / "spk1" / "video"
    ffmpeg("-f", "lavfi", "-i", "color=c=gray:s=160x160:d=1:r=25", "-f", "lavfi",
           "-i", "sine=f=300:d=1", "-shortest", "-c:v", "libx264", "-c:a", "aac",
           str(video_dir / "noface.mp4"))
    ffmpeg("-f", "lavfi", "-i", "sine=f=300:d=1", "-c:a", "aac", str(video_dir / "soundonly.mp4"))
    (video_dir / "broken.mp4").write_bytes(b"not a video at all" * 10)
    code = cli.main(["preprocess", str(src), str(tmp_path / "out")])
    assert code == 1
    errors = json.loads((tmp_path / "out" / "errors.json").read_text())
    assert set(errors) == {"spk1/noface", "spk1/soundonly", "spk1/broken"}
    assert "noface.mp4: no face found" in errors["spk1/noface"]
    assert "soundonly.mp4: the file has no video stream (audio only)" in errors["spk1/soundonly"]
    assert "broken.mp4" in errors["spk1/broken"]
    index = json.loads((tmp_path / "out" / "index.json").read_text())
    assert len(index["clips"]) == 10  # every good clip made it
    assert "3 failed" in capsys.readouterr().out


# ----------------------------------------------------------------------------- real GRID


def test_every_grid_clip_is_aligned_and_labelled(grid_processed, grid_videos):
    out, summary = grid_processed
    assert summary["failed"] == {}
    index = json.loads((out / "index.json").read_text())
    assert len(index["clips"]) == len(grid_videos) == 130
    import cv2

    for entry in index["clips"]:
        folder = out / entry["dir"]
        n = entry["n_frames"]
        video = json.loads((folder / "meta.json").read_text())["video"]
        cap = cv2.VideoCapture(video)
        assert n == int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) >= 74, video  # s1/srbb4n has 74
        cap.release()
        aligned = np.load(folder / "aligned_landmarks.npy")
        assert aligned.shape == (n, 68, 2) and np.all(np.isfinite(aligned))
        assert np.all((aligned > 0) & (aligned < 112)), entry
        aus = np.load(folder / "aus.npy")
        assert aus.shape == (n, 5) and np.all((aus >= 0) & (aus <= 5))
        assert np.load(folder / "mfcc.npy").shape == (n, 12, 28)


def test_grid_mouth_aus_follow_speech(grid_processed):
    """AU25 (lips part) and AU26 (jaw drop) occur far more inside words than in silence."""
    out, _ = grid_processed
    inside, outside = [], []
    for folder in sorted(out.glob("s1/*")):
        speech = np.load(folder / "speech.npy")
        occ = np.load(folder / "occurrence.npy")
        inside.append(occ[speech])
        outside.append(occ[~speech])
    inside, outside = np.concatenate(inside).mean(0), np.concatenate(outside).mean(0)
    for au in ("AU25", "AU26"):
        i = AUS.index(au)
        assert inside[i] > 3 * outside[i] and inside[i] - outside[i] > 0.3, (au, inside[i], outside[i])
