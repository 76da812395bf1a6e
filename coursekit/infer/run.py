"""The whole run: a speech recording and a photo -> an mp4 with sound."""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..audio import (FPS, SAMPLE_RATE, AudioError, is_silent, load_video_audio, mfcc_windows,
                     peak_dbfs, resample)
from ..face import LandmarkDetector, transform_points
from ..video import write_video
from .faces import crop_face, paste_back as _paste_back_fn, read_image, to_tensor, to_uint8
from .generator import Generator, InferError, generator_path, load_generator
from .warp import WarpGenerator
from .warp_frames import crop_frames, photo_frames

VIEW_SIZE = 256
"""Crops smaller than this are enlarged to ``VIEW_SIZE x VIEW_SIZE`` in the video (viewing only)."""
PRESET = "fast"
"""x264 preset of the videos: encoding is the largest cost per frame of the warp generator,
and ``fast`` halves it against ``medium`` at the same quality setting (crf 18)."""


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


@functools.lru_cache(maxsize=1)
def shared_detector() -> LandmarkDetector:
    """One :class:`~coursekit.face.LandmarkDetector` per process (made on first use): dlib's
    detector and 68-point model take 1-2 s to load, more than a short clip takes to make."""
    return LandmarkDetector()


def generate_video(checkpoint: str | os.PathLike | Generator | None, face: str | os.PathLike,
                   audio: str | os.PathLike | tuple[np.ndarray, int],
                   out: str | os.PathLike, *,
                   paste_back: bool = False, device: str = "cpu", seed: int = 0,
                   steps: int | None = None, progress: bool = True,
                   view_size: int | None = VIEW_SIZE,
                   detector: LandmarkDetector | None = None) -> Path:
    """Make ``out`` (mp4: H.264 at 25 fps + AAC) of the face in the photo ``face`` saying
    ``audio``; see the module docstring for the steps.

    Args:
        checkpoint: a generator checkpoint or ``warp_generator`` file
            (:func:`load_generator`), None for the shipped default one (the warp
            generator), a shipped one's name (``"warp"``, ``"diffusion"``, ``"decoder"``),
            or a :class:`Generator` already loaded (reused as is: ``device`` is then the
            generator's own).
        face: a photo with a frontal face (the largest face is used).
        audio: any speech recording (wav, flac, mp3, or a video's sound), or the speech
            itself as ``(samples (n,) float32, sample rate)`` (e.g. espeak's, from text).
        out: the ``.mp4`` to write (atomically; folders are created).
        paste_back: frames are the whole photo (its size, reduced to
            :data:`MAX_PHOTO_SIDE` and to even dimensions) instead of the face crop; with
            the warp generator the photo's own pixels, moved, at that resolution.
        device: ``cpu``, ``cuda``, ``auto``, ... seed, steps: for sampling renderers.
        progress: a tqdm bar while frames are made.
        view_size: crops smaller than this are enlarged to it (without paste-back).
        detector: the dlib face detector to reuse (default: one made on the first call and
            kept for the next ones: loading it takes about a second).

    Returns:
        ``out``. The video has ``ceil(duration * 25)`` frames; the audio stream is the whole
        input recording.

    Raises:
        FileNotFoundError, :class:`~coursekit.audio.AudioError` (empty, silent, undecodable),
        :class:`InferError` (unreadable image, unknown renderer),
        :class:`~coursekit.face.FaceError` (no face); every message names the file.
    """
    waveform = audio if isinstance(audio, tuple) else None
    face, out = Path(face), Path(out)
    if not isinstance(checkpoint, Generator):
        checkpoint = generator_path(checkpoint)
    files = [(checkpoint, "checkpoint"), (face, "image")] + [(audio, "audio")] * (not waveform)
    for path, what in files:
        if not isinstance(path, Generator) and not Path(path).is_file():
            raise FileNotFoundError(f"{path}: no such {what} file")
    if out.suffix.lower() != ".mp4":
        raise InferError(f"{out}: the output must be an .mp4 file")
    if waveform:
        sound, sr = np.asarray(waveform[0], np.float32), int(waveform[1])
        speech = sound if sr == SAMPLE_RATE else resample(sound, sr, SAMPLE_RATE)
    else:
        sound, sr, speech = load_speech(Path(audio))
    n_frames = n_video_frames(len(sound), sr)
    windows = mfcc_windows(speech, SAMPLE_RATE, n_frames)
    photo = read_image(face)
    generator = (checkpoint if isinstance(checkpoint, Generator)
                 else load_generator(checkpoint, device))
    found = crop_face(photo, generator.image_size, detector or shared_detector(),
                      source=str(face))
    if paste_back:
        h, w = photo.shape[:2]
        photo = photo[: h - h % 2, : w - w % 2]  # H.264 (yuv420p) needs even sizes
    if isinstance(generator, WarpGenerator):
        video = _warp_video(generator, photo, found, windows, speech, paste_back, view_size)
        if not isinstance(video, np.ndarray):
            from tqdm.auto import tqdm

            video = tqdm(video, desc="frames", unit="chunk", disable=not progress)
        return write_video(out, video, FPS, sound, sr, preset=PRESET)
    frames = generator(to_tensor(found.crop), generator.normalize(windows), seed=seed,
                       steps=steps, progress=progress, speech=speech)
    crops = to_uint8(frames)
    if paste_back:
        video = _paste_back_fn(photo, crops, found.transform, found.landmarks)
    else:
        video = _view(crops, view_size)
    return write_video(out, video, FPS, sound, sr, preset=PRESET)


def _warp_video(gen: WarpGenerator, photo: np.ndarray, found, windows: np.ndarray,
                speech: np.ndarray, paste_back: bool, view_size: int | None):
    """The warp generator's frames: with paste-back an iterator of ``(n, H, W, 3)`` chunks
    of the whole photo, made in a background thread (:func:`prefetch`) while the encoder
    works; without, the crops ``(T, V, V, 3)`` enlarged to ``view_size``."""
    motion = gen.audio_motion(windows, speech)
    if not paste_back:
        source = transform_points(found.landmarks, found.transform)
        return _view(crop_frames(found.crop, source, motion, gen.painter), view_size)
    return prefetch(photo_frames(photo, found.crop, found.transform, found.landmarks, motion,
                                 gen.painter))


def prefetch(items: Iterator, depth: int = 2) -> Iterator:
    """``items`` made in a background thread, at most ``depth`` ahead of the consumer (the
    frames of the next chunk are made while ffmpeg encodes the previous ones: numpy, OpenCV
    and torch release the GIL). An error in the thread is raised here; stopping early
    stops the thread."""
    import queue
    import threading

    box: queue.Queue = queue.Queue(maxsize=depth)
    stop, end = threading.Event(), object()

    def put(item) -> None:
        while not stop.is_set():
            try:
                box.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def work() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                put(item)
            put(end)
        except BaseException as err:  # noqa: BLE001  re-raised in the consumer
            put(err)

    threading.Thread(target=work, daemon=True, name="coursekit-frames").start()
    try:
        while (item := box.get()) is not end:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


def _view(crops: np.ndarray, view_size: int | None) -> np.ndarray:
    """Crops ``(T, S, S, 3)`` enlarged to ``view_size`` (bicubic) when smaller."""
    import cv2

    if not view_size or crops.shape[1] >= view_size:
        return crops
    return np.stack([cv2.resize(c, (view_size, view_size), interpolation=cv2.INTER_CUBIC)
                     for c in crops])
