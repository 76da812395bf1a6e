"""Video input and output: frames in, frames out, audio muxed with ffmpeg.

Frames are RGB ``uint8`` arrays of shape ``(T, H, W, 3)`` everywhere in coursekit. Writing
uses the ffmpeg binary shipped by ``imageio-ffmpeg`` (H.264 + AAC in mp4, playable in
browsers and notebooks); reading uses OpenCV.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np


class VideoError(ValueError):
    """A video that cannot be read or written; the message names the file."""


def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary bundled with ``imageio-ffmpeg`` (no system ffmpeg needed)."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def read_video(path: str | os.PathLike) -> tuple[np.ndarray, float]:
    """Decode every frame of ``path``.

    Returns:
        ``(frames, fps)`` with frames of shape ``(T, H, W, 3)``, RGB uint8.
    """
    import cv2

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such video file")
    cap = cv2.VideoCapture(str(path))
    try:
        fps = float(cap.get(cv2.CAP_PROP_FPS))
        frames = []
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    finally:
        cap.release()
    if not frames:
        streams = probe_streams(path)
        if "audio" in streams and "video" not in streams:
            raise VideoError(f"{path}: the file has no video stream (audio only)")
        raise VideoError(f"{path}: no video frames could be decoded (corrupt, or not a video)")
    return np.stack(frames), fps


def probe_streams(path: str | os.PathLike) -> set[str]:
    """The kinds of streams ffmpeg finds in a file: a subset of ``{"video", "audio"}``."""
    proc = subprocess.run([ffmpeg_exe(), "-nostdin", "-hide_banner", "-i", str(path)],
                          capture_output=True, text=True)
    kinds = set()
    for line in proc.stderr.splitlines():
        if "Stream #" in line:
            kinds |= {k for k in ("video", "audio") if f"{k.capitalize()}:" in line}
    return kinds


def video_start(path: str | os.PathLike) -> float | None:
    """Presentation time (s) of the first frame of the video stream; ``None`` without one.

    The time is the stream's own timestamp (ffmpeg ``-copyts``), so it compares with the
    audio stream's (see :func:`coursekit.audio.load_video_audio`); it is read from the
    ``showinfo`` filter on the first decoded frame, so edit lists and B-frame delays count.
    """
    import re

    proc = subprocess.run([ffmpeg_exe(), "-nostdin", "-hide_banner", "-nostats", "-copyts",
                           "-i", str(path), "-map", "0:v:0", "-frames:v", "1",
                           "-vf", "showinfo", "-f", "null", "-"], capture_output=True, text=True)
    if proc.returncode != 0:
        return None
    found = re.search(r"\bn:\s*0\s+pts:\s*\S+\s+pts_time:\s*(-?[0-9.]+(?:e[-+]?\d+)?)", proc.stderr)
    return float(found.group(1)) if found else 0.0


def write_video(path: str | os.PathLike, frames, fps: float = 25.0,
                audio: np.ndarray | None = None, sr: int | None = None, *,
                crf: int = 18, preset: str = "medium") -> Path:
    """Encode ``(T, H, W, 3)`` RGB uint8 frames as H.264 mp4, with ``audio`` muxed as AAC.

    The file is written to a temporary name first and renamed, so a crash never leaves a
    half-written video under the final name. Encoding is single-threaded and bit-exact, so
    the same frames and audio always give the same file. ``preset``: x264's speed preset
    (``"fast"`` encodes about twice as fast as ``"medium"`` at the same ``crf``).

    ``frames`` may also be an iterator of ``(n, H, W, 3)`` chunks: each is handed to the
    encoder as it comes, so the frames can be made while ffmpeg encodes the previous ones
    and a long video is never held in memory whole.
    """
    import itertools

    import soundfile

    path = Path(path)
    streamed = not isinstance(frames, (np.ndarray, list, tuple))
    chunks = iter(frames) if streamed else iter([np.asarray(frames)])
    first = np.asarray(next(chunks, np.zeros((0, 2, 2, 3), np.uint8)))
    if first.ndim != 4 or first.shape[-1] != 3 or first.dtype != np.uint8:
        raise VideoError(f"{path}: frames must be (T, H, W, 3) uint8, got {first.shape} "
                         f"{first.dtype}")
    _, h, w, _ = first.shape
    if h % 2 or w % 2:
        raise VideoError(f"{path}: H.264 in yuv420p needs even width and height, got {w}x{h}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_video = path.with_name(f".{path.stem}.tmp{path.suffix}")
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [ffmpeg_exe(), "-nostdin", "-v", "error", "-y", "-f", "rawvideo",
               "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", f"{fps:g}", "-i", "-"]
        if audio is not None:
            if sr is None:
                raise VideoError(f"{path}: audio given without its sample rate")
            wav = Path(tmp) / "audio.wav"
            soundfile.write(wav, np.asarray(audio, dtype=np.float32), sr, subtype="PCM_16")
            cmd += ["-i", str(wav), "-map", "0:v", "-map", "1:a", "-c:a", "aac", "-b:a", "64k"]
        cmd += ["-c:v", "libx264", "-preset", preset, "-crf", str(crf), "-pix_fmt", "yuv420p",
                "-threads", "1", "-fflags", "+bitexact", "-flags", "+bitexact",
                "-movflags", "+faststart", str(tmp_video)]
        with open(Path(tmp) / "ffmpeg.log", "w+b") as log:
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                    stderr=log)
            try:
                for chunk in itertools.chain([first], chunks):
                    chunk = np.asarray(chunk)
                    if chunk.shape[1:] != first.shape[1:] or chunk.dtype != np.uint8:
                        raise VideoError(f"{path}: a chunk of {chunk.shape} {chunk.dtype} "
                                         f"frames after {first.shape[1:]} uint8 ones")
                    proc.stdin.write(np.ascontiguousarray(chunk).tobytes())
            except BrokenPipeError:  # ffmpeg stopped: its log says why
                pass
            except BaseException:
                proc.kill()
                proc.wait()
                tmp_video.unlink(missing_ok=True)
                raise
            finally:
                try:
                    proc.stdin.close()
                except BrokenPipeError:
                    pass
            returncode = proc.wait()
            log.seek(0)
            stderr = log.read()
    if returncode != 0:
        tmp_video.unlink(missing_ok=True)
        raise VideoError(f"{path}: ffmpeg failed: {stderr.decode(errors='replace').strip()}")
    os.replace(tmp_video, path)
    return path


def show_video(video: str | os.PathLike | np.ndarray, fps: float = 25.0,
               audio: np.ndarray | None = None, sr: int | None = None, *, width: int = 320):
    """Play a video inline in a notebook, with its sound.

    ``video`` is a file path or ``(T, H, W, 3)`` uint8 frames (encoded to mp4 with ``audio``
    first). The mp4 is embedded in the notebook (base64), so it still plays when the notebook
    is saved and reopened elsewhere.
    """
    import base64

    from IPython.display import HTML

    if isinstance(video, np.ndarray):
        with tempfile.TemporaryDirectory() as tmp:
            path = write_video(Path(tmp) / "clip.mp4", video, fps, audio, sr)
            data = path.read_bytes()
    else:
        data = Path(video).read_bytes()
    b64 = base64.b64encode(data).decode("ascii")
    return HTML(f'<video width="{width}" controls playsinline>'
                f'<source src="data:video/mp4;base64,{b64}" type="video/mp4"></video>')
