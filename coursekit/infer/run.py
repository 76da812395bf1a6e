"""The whole run: a speech recording and a photo -> an mp4 with sound."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from ..audio import (FPS, SAMPLE_RATE, AudioError, is_silent, load_video_audio, mfcc_windows,
                     peak_dbfs, resample)
from ..face import LandmarkDetector
from ..video import write_video
from .faces import crop_face, paste_back as _paste_back_fn, read_image, to_tensor, to_uint8
from .generator import Generator, InferError, default_checkpoint, load_generator

VIEW_SIZE = 256
"""Crops smaller than this are enlarged to ``VIEW_SIZE x VIEW_SIZE`` in the video (viewing only)."""


# ----------------------------------------------------------------------------- the whole run


def n_video_frames(n_samples: int, sr: int, fps: float = FPS) -> int:
    """``ceil(duration * fps)``: enough frames to cover the whole recording (at least 1)."""
    return max(1, math.ceil(round(n_samples * fps / sr, 6)))


def load_speech(path: str | os.PathLike) -> tuple[np.ndarray, int, np.ndarray]:
    """The recording at its own rate (for the video), and at 16 kHz (for the MFCCs).

    Returns ``(audio (n,), sr, audio_16k (m,))``, mono float32. Raises FileNotFoundError or
    :class:`~coursekit.audio.AudioError` naming the file (empty, undecodable, silent).
    """
    sound, sr = load_video_audio(path, sr=None)  # a video's sound starts at its first frame
    if is_silent(sound):
        raise AudioError(f"{path}: no speech: the audio is silent (peak "
                         f"{peak_dbfs(sound):.1f} dBFS)")
    speech = sound if sr == SAMPLE_RATE else resample(sound, sr, SAMPLE_RATE)
    return sound, sr, speech


def generate_video(checkpoint: str | os.PathLike | Generator | None, face: str | os.PathLike,
                   audio: str | os.PathLike, out: str | os.PathLike, *,
                   paste_back: bool = False, device: str = "cpu", seed: int = 0,
                   steps: int | None = None, progress: bool = True,
                   view_size: int | None = VIEW_SIZE,
                   detector: LandmarkDetector | None = None) -> Path:
    """Make ``out`` (mp4: H.264 at 25 fps + AAC) of the face in the photo ``face`` saying
    ``audio``; see the module docstring for the steps.

    Args:
        checkpoint: a generator checkpoint (:func:`load_generator`), None for the shipped
            default one (:func:`default_checkpoint`), or a :class:`Generator` already
            loaded (reused as is: ``device`` is then the generator's own).
        face: a photo with a frontal face (the largest face is used).
        audio: any speech recording (wav, flac, mp3, or a video's sound).
        out: the ``.mp4`` to write (atomically; folders are created).
        paste_back: frames are the whole photo (its size, reduced to
            :data:`MAX_PHOTO_SIDE` and to even dimensions) instead of the face crop.
        device: ``cpu``, ``cuda``, ``auto``, ... seed, steps: for sampling renderers.
        progress: a tqdm bar while frames are made.
        view_size: crops smaller than this are enlarged to it (without paste-back).

    Returns:
        ``out``. The video has ``ceil(duration * 25)`` frames; the audio stream is the whole
        input recording.

    Raises:
        FileNotFoundError, :class:`~coursekit.audio.AudioError` (empty, silent, undecodable),
        :class:`InferError` (unreadable image, unknown renderer),
        :class:`~coursekit.face.FaceError` (no face); every message names the file.
    """
    import cv2

    face, audio, out = Path(face), Path(audio), Path(out)
    checkpoint = default_checkpoint() if checkpoint is None else checkpoint
    for path, what in ((checkpoint, "checkpoint"), (face, "image"), (audio, "audio")):
        if not isinstance(path, Generator) and not Path(path).is_file():
            raise FileNotFoundError(f"{path}: no such {what} file")
    if out.suffix.lower() != ".mp4":
        raise InferError(f"{out}: the output must be an .mp4 file")
    sound, sr, speech = load_speech(audio)
    n_frames = n_video_frames(len(sound), sr)
    windows = mfcc_windows(speech, SAMPLE_RATE, n_frames)
    photo = read_image(face)
    generator = (checkpoint if isinstance(checkpoint, Generator)
                 else load_generator(checkpoint, device))
    found = crop_face(photo, generator.image_size, detector, source=str(face))
    frames = generator(to_tensor(found.crop), generator.normalize(windows), seed=seed,
                       steps=steps, progress=progress)
    crops = to_uint8(frames)
    if paste_back:
        h, w = photo.shape[:2]
        photo = photo[: h - h % 2, : w - w % 2]  # H.264 (yuv420p) needs even sizes
        video = _paste_back_fn(photo, crops, found.transform, found.landmarks)
    elif view_size and crops.shape[1] < view_size:
        video = np.stack([cv2.resize(c, (view_size, view_size), interpolation=cv2.INTER_CUBIC)
                          for c in crops])
    else:
        video = crops
    return write_video(out, video, FPS, sound, sr)
