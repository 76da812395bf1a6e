"""coursekit.video round trip and errors; the coursekit command line."""

import json

import numpy as np
import pytest

from coursekit import cli, video
from coursekit.audio import load_audio
from coursekit.course import load_parameters, notebooks
from coursekit.data.corpus import SAMPLES_DIR
from conftest import ffmpeg


def test_write_then_read_video_with_audio(tmp_path):
    rng = np.random.default_rng(0)
    frames = np.zeros((30, 64, 48, 3), dtype=np.uint8)
    frames[:, 16:48, 8:40] = rng.integers(0, 255, size=3, dtype=np.uint8)
    sr = 16000
    audio = (0.2 * np.sin(2 * np.pi * 300 * np.arange(sr * 30 // 25) / sr)).astype(np.float32)
    path = video.write_video(tmp_path / "clip.mp4", frames, 25, audio, sr)
    back, fps = video.read_video(path)
    assert back.shape == frames.shape and fps == 25
    assert np.abs(back.astype(int) - frames.astype(int)).mean() < 3
    sound, _ = load_audio(path)
    assert abs(sound.size / sr - 1.2) < 0.05
    assert not list(tmp_path.glob(".*tmp*"))  # the temporary file was renamed away


def test_video_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.mp4"):
        video.read_video(tmp_path / "missing.mp4")
    bad = tmp_path / "corrupt.mp4"
    bad.write_bytes(b"\x00\x01garbage" * 100)
    with pytest.raises(video.VideoError, match="corrupt.mp4"):
        video.read_video(bad)
    sound = tmp_path / "sound.m4a"
    ffmpeg("-f", "lavfi", "-i", "sine=f=300:d=1", "-c:a", "aac", str(sound))
    with pytest.raises(video.VideoError, match=r"sound\.m4a: the file has no video stream"):
        video.read_video(sound)
    with pytest.raises(video.VideoError, match="even width"):
        video.write_video(tmp_path / "odd.mp4", np.zeros((2, 15, 16, 3), np.uint8))
    with pytest.raises(video.VideoError, match="uint8"):
        video.write_video(tmp_path / "float.mp4", np.zeros((2, 16, 16, 3), np.float32))


def test_samples_verify_command(capsys):
    assert cli.main(["samples", "verify", "--root", str(SAMPLES_DIR)]) == 0
    assert "OK" in capsys.readouterr().out


def test_samples_verify_reports_a_changed_file(tmp_path, capsys):
    (tmp_path / "spk1" / "align").mkdir(parents=True)
    (tmp_path / "spk1" / "align" / "x.align").write_text("0 1 sil\n")
    (tmp_path / "corpus.json").write_text(json.dumps({"sha256": {"spk1/align/x.align": "0" * 64}}))
    assert cli.main(["samples", "verify", "--root", str(tmp_path)]) == 1
    assert "x.align: content differs" in capsys.readouterr().err


def test_course_parameters_and_notebook_order(tmp_path):
    lab = tmp_path / "lab.yaml"
    lab.write_text("seed: 7\nepochs: 3\n")
    params = load_parameters(lab)
    assert params["seed"] == 7 and params["epochs"] == 3 and params["config"] == "tiny"
    names = [nb.name for nb in notebooks()]
    assert names == sorted(names) and names[0] == "01_mfcc_windowing.ipynb"


def test_course_summary_collects_times_tables_and_videos(tmp_path):
    from coursekit.course import write_summary

    (tmp_path / "07_evaluation").mkdir()
    (tmp_path / "07_evaluation" / "evaluation.md").write_text("| row | PSNR |\n|---|---:|\n| model | 33.4 |\n")
    (tmp_path / "08_your_own_face").mkdir()
    (tmp_path / "08_your_own_face" / "talks.mp4").write_bytes(b"")
    text = write_summary(tmp_path, {"01_a.ipynb": 12.0, "02_b.ipynb": 30.4}).read_text()
    assert "| **total** | **42** |" in text
    assert "| model | 33.4 |" in text and "08_your_own_face/talks.mp4" in text
    assert "epochs" not in __import__("coursekit.course").course.DEFAULT_PARAMETERS
