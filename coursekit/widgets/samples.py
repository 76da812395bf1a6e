"""Faces and voices to try without one's own: the shipped sample corpus and the astronaut.

Shapes: photos ``(H, W, 3)`` RGB uint8.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..data.corpus import SAMPLES_DIR, list_clips, read_align


def astronaut() -> np.ndarray:
    """scikit-image's astronaut photo ``(512, 512, 3)`` uint8 (bundled: no download)."""
    from skimage import data

    return data.astronaut()


def sample_faces(samples_dir: str | os.PathLike = SAMPLES_DIR) -> dict[str, np.ndarray]:
    """``{speaker: first frame (H, W, 3) uint8 of its first video}`` of a GRID-layout corpus."""
    import cv2

    faces = {}
    for clip in list_clips(samples_dir):
        if clip.speaker in faces:
            continue
        cap = cv2.VideoCapture(str(clip.video))
        ok, bgr = cap.read()
        cap.release()
        if ok:
            faces[clip.speaker] = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    return faces


def sample_utterances(samples_dir: str | os.PathLike = SAMPLES_DIR) -> dict[str, Path]:
    """``{label: audio path}`` of every clip, labelled ``spk1 bgif7s "bin green ..." (3.2 s)``."""
    import soundfile

    found = {}
    for clip in list_clips(samples_dir):
        words = ""
        if clip.align:
            words = " ".join(w for _, _, w in read_align(clip.align) if w not in ("sil", "sp"))
        try:
            seconds = f" ({soundfile.info(str(clip.audio_source)).duration:.1f} s)"
        except Exception:  # a video's sound: soundfile cannot tell its length
            seconds = ""
        found[f'{clip.speaker} {clip.utt_id} "{words}"{seconds}'] = clip.audio_source
    return found
