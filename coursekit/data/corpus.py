"""Read a corpus in the GRID layout: the real GRID corpus or the shipped ``data_samples/``.

Layout (per speaker folder)::

    <speaker>/video/<utt>.mpg|.mp4     video (GRID: MPEG-1 with audio; samples: H.264 + AAC)
    <speaker>/audio/<utt>.wav|.flac    optional separate audio (else the video's audio track)
    <speaker>/align/<utt>.align        word alignment, "start end word" in 1/25000 s
    <speaker>/align/<utt>.phn          optional phoneme alignment, same format
    <speaker>/gt/<utt>.csv             optional ground truth in OpenFace's CSV layout
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..au import read_openface_csv

REPO = Path(__file__).resolve().parents[2]
SAMPLES_DIR = (REPO / "data_samples" if (REPO / "data_samples").is_dir()
               else Path.cwd() / "data_samples")
"""The sample corpus: ``data_samples/`` of a source checkout, else ``./data_samples`` (an
installed package has none: ``coursekit samples generate`` writes it there)."""
SAMPLES_HINT = "make the sample corpus with `coursekit samples generate --out {root}`"
ALIGN_UNITS_PER_SECOND = 25000.0
VIDEO_SUFFIXES = (".mp4", ".mpg", ".mpeg", ".avi", ".mov")


@dataclass(frozen=True)
class Clip:
    """Paths of one utterance; missing optional files are ``None``."""

    speaker: str
    utt_id: str
    video: Path
    audio: Path | None
    align: Path | None
    phones: Path | None
    ground_truth: Path | None

    @property
    def audio_source(self) -> Path:
        """The separate audio file when there is one, else the video (its audio track)."""
        return self.audio or self.video


def _first(*candidates: Path) -> Path | None:
    return next((c for c in candidates if c.is_file()), None)


def list_clips(root: str | Path = SAMPLES_DIR, speakers: list[str] | None = None) -> list[Clip]:
    """Every clip under ``root`` (sorted by speaker, then utterance id)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such corpus folder"
                                + (f" ({SAMPLES_HINT.format(root=root)})"
                                   if root.name == "data_samples" else ""))
    clips = []
    for video in sorted(root.glob("*/video/*")):
        if video.suffix.lower() not in VIDEO_SUFFIXES:
            continue
        spk, utt = video.parent.parent.name, video.stem
        if speakers and spk not in speakers:
            continue
        base = video.parent.parent
        clips.append(Clip(spk, utt, video,
                          _first(base / "audio" / f"{utt}.flac", base / "audio" / f"{utt}.wav"),
                          _first(base / "align" / f"{utt}.align"),
                          _first(base / "align" / f"{utt}.phn"),
                          _first(base / "gt" / f"{utt}.csv")))
    if not clips:
        raise FileNotFoundError(f"{root}: no <speaker>/video/<utt> files found (GRID layout)")
    return clips


def read_align(path: str | Path) -> list[tuple[float, float, str]]:
    """A GRID ``.align`` (or ``.phn``) file as ``(start_s, end_s, label)`` rows."""
    rows = []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 3:
            raise ValueError(f"{path}:{n}: expected 'start end word', got {line!r}")
        rows.append((int(parts[0]) / ALIGN_UNITS_PER_SECOND,
                     int(parts[1]) / ALIGN_UNITS_PER_SECOND, parts[2]))
    return rows


def speech_mask(align: list[tuple[float, float, str]], n_frames: int, fps: float = 25.0) -> np.ndarray:
    """``(n_frames,)`` bool: True where frame time ``k / fps`` falls inside a word (not sil/sp)."""
    t = np.arange(n_frames) / fps
    mask = np.zeros(n_frames, dtype=bool)
    for start, end, word in align:
        if word not in ("sil", "sp"):
            mask |= (t >= start) & (t < end)
    return mask


def read_ground_truth(path: str | Path) -> dict[str, np.ndarray]:
    """The samples' per-frame ground truth (OpenFace CSV layout).

    Returns:
        ``{"timestamp": (T,), "landmarks": (T, 68, 2), "aus": (T, 5) 0-5 intensities,
        "occurrence": (T, 5) 0/1}``, AUs in the order of :data:`coursekit.au.AUS`.
    """
    table = read_openface_csv(path)
    if "landmarks" not in table:
        raise ValueError(f"{path}: no landmark columns x_0..y_67 (not a ground-truth CSV?)")
    return {key: table[key] for key in ("timestamp", "landmarks", "aus", "occurrence")}


def sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes (the checksums of ``corpus.json``)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def verify_checksums(root: str | Path = SAMPLES_DIR) -> list[str]:
    """Compare every file listed in ``corpus.json`` with its SHA-256; returns the problems."""
    root = Path(root)
    meta = json.loads((root / "corpus.json").read_text())
    problems = []
    for rel, digest in meta["sha256"].items():
        path = root / rel
        if not path.is_file():
            problems.append(f"{path}: missing")
        elif sha256(path) != digest:
            problems.append(f"{path}: content differs from corpus.json")
    return problems


def tracked_clips(root: str | Path = SAMPLES_DIR, speakers=None, detector=None
                  ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """dlib-tracked landmarks and ground-truth AUs of a corpus with ground truth (the samples):
    the inputs of :func:`coursekit.au.calibrate`.

    Returns ``([(T_i, 68, 2) image px], [(T_i, 5)])``, clips in corpus order.
    """
    from ..face import LandmarkDetector, track_landmarks
    from ..video import read_video

    detector = detector or LandmarkDetector()
    landmarks, aus = [], []
    for clip in list_clips(root, list(speakers) if speakers else None):
        frames, _ = read_video(clip.video)
        landmarks.append(track_landmarks(frames, detector, source=str(clip.video)))
        aus.append(read_ground_truth(clip.ground_truth)["aus"])
    return landmarks, aus
