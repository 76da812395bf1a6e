"""Shared fixtures: the real GRID clips (through COURSEKIT_GRID_DIR) and small media files."""

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="session")
def grid_dir() -> Path:
    """The folder of real GRID clips, or skip when COURSEKIT_GRID_DIR is not set."""
    value = os.environ.get("COURSEKIT_GRID_DIR")
    if not value:
        pytest.skip("COURSEKIT_GRID_DIR is not set: no real GRID clips to test on")
    path = Path(value)
    assert path.is_dir(), f"COURSEKIT_GRID_DIR={value} is not a folder"
    return path


@pytest.fixture(scope="session")
def grid_videos(grid_dir) -> list[Path]:
    videos = sorted(grid_dir.glob("*/video/*.mpg"))
    assert videos, f"no */video/*.mpg under {grid_dir}"
    return videos


def tone(freq: float = 440.0, sr: int = 16000, seconds: float = 1.0, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(round(sr * seconds))) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def ffmpeg(*args: str) -> None:
    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-v", "error", "-y", *args],
                   check=True)


@pytest.fixture(scope="session")
def processed64(tmp_path_factory):
    """spk1 and spk2 of the samples at 64 px with ground truth (about 10 s)."""
    import shutil

    from coursekit.data.corpus import SAMPLES_DIR
    from coursekit.data.preprocess import PreprocessConfig, preprocess_corpus

    src = tmp_path_factory.mktemp("src")
    for spk in ("spk1", "spk2"):
        shutil.copytree(SAMPLES_DIR / spk, src / spk)
    out = tmp_path_factory.mktemp("processed64")
    preprocess_corpus(src, out, PreprocessConfig(size=64, landmarks="ground_truth",
                                                 aus="ground_truth"), progress=False)
    return out


@pytest.fixture(scope="session")
def grid_processed(grid_dir, tmp_path_factory):
    """Every real GRID clip preprocessed at 112 px (dlib landmarks, estimated AUs):
    ``(folder, summary)``."""
    from coursekit.data.preprocess import PreprocessConfig, preprocess_corpus

    out = tmp_path_factory.mktemp("grid_processed")
    summary = preprocess_corpus(grid_dir, out, PreprocessConfig(), workers=2, progress=False)
    return out, summary


@pytest.fixture(scope="session")
def labs(tmp_path_factory) -> Path:
    """Every notebook's lab, built once through the command line (``coursekit course labs``:
    ``student/`` notebooks and ``autograder/<notebook>.zip``, otter's autograders)."""
    pytest.importorskip("otter")
    from coursekit import cli

    out = tmp_path_factory.mktemp("labs")
    assert cli.main(["course", "labs", "--out", str(out)]) == 0
    return out


def build_wheel(tmp: Path) -> Path:
    """A coursekit wheel built offline from a copy of the source in ``tmp`` (so the checkout
    gets no build/ folder); returns its path."""
    import shutil
    import subprocess
    import sys

    repo = Path(__file__).resolve().parent.parent
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(repo / name, src / name)
    shutil.copytree(repo / "coursekit", src / "coursekit",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", str(src),
                    "-w", str(tmp / "wheel")], check=True, capture_output=True, timeout=300)
    return next((tmp / "wheel").glob("coursekit-*.whl"))


def write_processed(out: Path, clips: dict, size: int) -> Path:
    """A processed dataset written by hand in ``out`` (speaker spk1): ``clips`` maps an
    utterance name to its arrays ``frames (T, S, S, 3)``, ``identity (S, S, 3)`` uint8,
    ``landmarks (T, 68, 2)``, ``mfcc (T, 12, 28)`` and ``aus (T, 5)`` (occurrence: AU >= 1)."""
    import json

    entries = []
    for utt, a in clips.items():
        folder = out / "spk1" / utt
        folder.mkdir(parents=True)
        np.save(folder / "frames.npy", a["frames"])
        np.save(folder / "identity.npy", a["identity"])
        np.save(folder / "aligned_landmarks.npy", np.asarray(a["landmarks"], np.float32))
        np.save(folder / "mfcc.npy", np.asarray(a["mfcc"], np.float32))
        np.save(folder / "aus.npy", np.asarray(a["aus"], np.float32))
        np.save(folder / "occurrence.npy", (np.asarray(a["aus"]) >= 1).astype(np.uint8))
        (folder / "meta.json").write_text(json.dumps({"speaker": "spk1", "utt": utt}))
        entries.append({"speaker": "spk1", "utt": utt, "n_frames": len(a["frames"]),
                        "dir": f"spk1/{utt}"})
    (out / "index.json").write_text(json.dumps({"format": "coursekit-processed", "version": 1,
                                                "size": size, "fps": 25.0, "clips": entries}))
    return out
