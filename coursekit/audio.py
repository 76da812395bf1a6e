"""Audio front end: load any speech recording, compute MFCCs, cut one window per video frame.

The journal paper feeds its audio encoder and Audio2AU with **12 MFCCs** (the energy term
dropped) in windows of **280 ms** whose middle is aligned with each video frame; at 10 ms per
MFCC frame a window is a ``12 x 28`` image, and windows slide with the video (40 ms at 25 fps).

Parameter choices (all module constants, so they are visible and shared):

==================  =========  ==========================================================
parameter           value      why
==================  =========  ==========================================================
sample rate         16 kHz     speech content is below 8 kHz; GRID, TIMIT and most
                               speech models use it; every input is resampled to it
pre-emphasis        0.97       flattens speech's -6 dB/octave tilt so the upper
                               formants weigh as much as the first (HTK default)
window              25 ms      400 samples, Hamming: long enough for two pitch periods,
                               short enough that the vocal tract is stationary
hop                 10 ms      160 samples: 28 hops make the paper's 280 ms window
FFT size            512        next power of two above 400 samples (zero padded)
mel filters         26         HTK/python_speech_features default, triangular, HTK mel
                               scale, 20 Hz to 8 kHz (the whole band at 16 kHz)
log                 dB         ``10 log10(max(power, 1e-10))``: the floor keeps digital
                               silence finite (silence gives all-zero c1..c12)
cepstra             13 -> 12   orthonormal DCT-II, c0 (the log energy) dropped
lifter              22         HTK sinusoidal lifter ``1 + 11 sin(pi n / 22)``, so the
                               higher cepstra are not drowned by the first ones
==================  =========  ==========================================================

Frame alignment. MFCC frame ``j`` is centred at ``(j + 0.5) * hop``, so it summarises the
10 ms *cell* ``[j * hop, (j + 1) * hop)``. Video frame ``k`` is shown at ``t_k = k / fps``
(its presentation time). Its window is the 28 cells ``[t_k - 140 ms, t_k + 140 ms)``:
exactly centred on ``t_k``, with 14 cells of context on each side. Windows that reach
past the ends of the recording repeat the first or last MFCC frame ("edge" padding):
recordings start and end in their own background noise, and repeating it is closer to the
truth than inventing digital silence.

Time 0 is the first video frame: :func:`load_video_audio` reads a video's sound by the
streams' timestamps (phones often start the audio stream seconds after the video), padding
the silence that was never recorded instead of sliding the speech onto the wrong frames.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import warnings
from pathlib import Path

import numpy as np
import scipy.fft

SAMPLE_RATE = 16000
PREEMPHASIS = 0.97
WIN_LENGTH = 400  # 25 ms at 16 kHz
HOP_LENGTH = 160  # 10 ms at 16 kHz
N_FFT = 512
N_MELS = 26
FMIN = 20.0
FMAX = 8000.0
N_MFCC = 12  # c1..c12; c0 is dropped
LIFTER = 22
LOG_FLOOR = 1e-10
WINDOW_MS = 280
FPS = 25.0
VTLP_F_HI = 4800.0  # Hz: VTLP's warp is linear up to about here (Jaitly & Hinton 2013)

VIDEO_SUFFIXES = {".mp4", ".mpg", ".mpeg", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".flv"}
"""Containers that go straight to ffmpeg; anything else is tried with libsndfile first."""

MAX_TAIL_SHORTFALL_S = 0.5
""":func:`load_video_audio` pads at most this much silence after the end of a video's audio."""

SILENCE_DBFS = -60.0
"""Recordings whose peak level is below this (dB relative to full scale) count as silent."""


class AudioError(ValueError):
    """Audio that cannot be used: unreadable, empty, silent where speech is needed, ..."""


# ----------------------------------------------------------------------------- loading


def load_audio(path: str | os.PathLike, sr: int | None = SAMPLE_RATE, *,
               allow_silent: bool = True) -> tuple[np.ndarray, int]:
    """Read the audio of ``path`` as mono float32, resampled to ``sr``.

    Reads wav/flac/ogg/mp3 with libsndfile (``soundfile``) and everything else, including the
    audio track of video files (mp4, mpg, ...), with the ffmpeg binary of ``imageio-ffmpeg``.
    Channels are averaged to mono. ``sr=None`` keeps the file's own rate.

    Returns:
        ``(audio, sr)``: audio of shape ``(n_samples,)``, float32, roughly in ``[-1, 1]``.

    Raises:
        FileNotFoundError: no such file.
        AudioError: not decodable, no audio stream, zero samples, or silent while
            ``allow_silent`` is False. The message names the file.
    """
    return _load(Path(path), sr, allow_silent)


def _load(path: Path, sr: int | None, allow_silent: bool,
          video_start: float | None = None) -> tuple[np.ndarray, int]:
    """:func:`load_audio`; with ``video_start``, sample 0 is that time of the file."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such audio or video file")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: the file is empty (0 bytes)")
    data, native_sr = None, None
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        try:
            import soundfile

            data, native_sr = soundfile.read(str(path), dtype="float32", always_2d=True)
        except Exception:  # not a format libsndfile knows: let ffmpeg try
            data = None
    if data is None:
        data, native_sr = _read_with_ffmpeg(path, video_start)
    if data.shape[0] == 0:
        raise AudioError(f"{path}: the audio stream is empty (0 samples)")
    audio = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    if not np.all(np.isfinite(audio)):
        raise AudioError(f"{path}: the audio contains NaN or infinite samples")
    if sr is not None and native_sr != sr:
        if native_sr < sr:
            warnings.warn(f"{path}: recorded at {native_sr} Hz, below {sr} Hz; it has no "
                          f"content above {native_sr / 2:.0f} Hz, so the upper mel bands "
                          "will be empty", stacklevel=2)
        audio = resample(audio, native_sr, sr)
    else:
        sr = native_sr
    if not allow_silent and is_silent(audio):
        raise AudioError(f"{path}: the audio is silent (peak {peak_dbfs(audio):.1f} dBFS, "
                         f"threshold {SILENCE_DBFS:.0f} dBFS); a speech recording is needed")
    return np.ascontiguousarray(audio, dtype=np.float32), int(sr)


def _read_with_ffmpeg(path: Path, start: float | None = None) -> tuple[np.ndarray, int]:
    """Decode the first audio stream of any container to float32 ``(n, channels)``.

    With ``start`` (a time on the streams' own clock, ``-copyts``), the samples are placed
    by their timestamps with sample 0 at ``start``: silence before a later first sample and
    in any gap, samples before ``start`` cut.
    """
    import imageio_ffmpeg
    import soundfile

    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "audio.wav"
        place = [] if start is None else [
            "-af", f"asetpts=PTS-{float(start)!r}/TB,aresample=async=1:first_pts=0"]
        cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-v", "error",
               *(["-copyts"] if place else []), "-i", str(path),
               "-map", "0:a:0", "-vn", *place, "-acodec", "pcm_f32le", "-f", "wav", str(wav)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0 or not wav.is_file():
            err = proc.stderr.strip()
            if "matches no streams" in err or "does not contain any stream" in err:
                raise AudioError(f"{path}: the file has no audio stream")
            last = err.splitlines()[-1] if err else "unknown error"
            raise AudioError(f"{path}: not a readable audio or video file ({last})")
        data, native_sr = soundfile.read(str(wav), dtype="float32", always_2d=True)
    return data, int(native_sr)


def load_video_audio(path: str | os.PathLike, sr: int | None = SAMPLE_RATE, *,
                     duration: float | None = None, allow_silent: bool = True,
                     max_shortfall_s: float = MAX_TAIL_SHORTFALL_S) -> tuple[np.ndarray, int]:
    """The sound of a video on the video's timeline, ready to pair with its frames.

    Phones often start the audio stream later than the video (a 2.4 s ``start_time`` is
    common): the samples are placed by the streams' timestamps, so sample 0 is the first
    video frame; a late start is padded with silence, an early one cut. With ``duration``
    (the video's ``n_frames / fps``) the end is padded with silence or cut to it. Files
    with no video stream (``.wav``, an audio-only ``.mp4``) are read as :func:`load_audio`.

    Returns:
        ``(audio, sr)`` as :func:`load_audio`; ``round(duration * sr)`` samples if given.

    Raises:
        FileNotFoundError, AudioError: as :func:`load_audio`, and when the audio ends more
            than ``max_shortfall_s`` before ``duration`` (mismatched lengths, naming the file).
    """
    from .video import video_start

    path = Path(path)
    start = video_start(path) if path.suffix.lower() in VIDEO_SUFFIXES and path.is_file() else None
    audio, sr = _load(path, sr, allow_silent, start)
    if start is None or duration is None:
        return audio, sr
    target = int(round(duration * sr))
    shortfall = (target - audio.size) / sr
    if shortfall > max_shortfall_s:
        raise AudioError(f"{path}: mismatched lengths: the audio track ends {shortfall:.2f} s "
                         f"before the video ({duration:.2f} s)")
    if audio.size < target:
        audio = np.concatenate([audio, np.zeros(target - audio.size, np.float32)])
    return np.ascontiguousarray(audio[:target]), sr


def resample(audio: np.ndarray, orig_sr: int, sr: int) -> np.ndarray:
    """Band-limited resampling (soxr, high quality) of ``(n_samples,)`` audio."""
    import librosa

    return librosa.resample(audio, orig_sr=orig_sr, target_sr=sr, res_type="soxr_hq")


def peak_dbfs(audio: np.ndarray) -> float:
    """Peak level in dB relative to full scale (``-inf`` for digital silence)."""
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    return 20.0 * np.log10(peak) if peak > 0 else float("-inf")


def is_silent(audio: np.ndarray, threshold_dbfs: float = SILENCE_DBFS) -> bool:
    """True when the whole recording stays below ``threshold_dbfs``."""
    return peak_dbfs(audio) < threshold_dbfs


# ----------------------------------------------------------------------------- MFCC


def vtlp_frequencies(f: np.ndarray, alpha: float, sr: int = SAMPLE_RATE,
                     f_hi: float = VTLP_F_HI) -> np.ndarray:
    """Vocal tract length perturbation (Jaitly & Hinton 2013): ``f -> alpha f`` up to
    ``f_hi min(alpha, 1) / alpha``, then the straight line that keeps ``sr / 2`` in place."""
    f, nyq = np.asarray(f, np.float64), sr / 2.0
    knee = f_hi * min(alpha, 1.0)
    upper = nyq - (nyq - knee) / (nyq - knee / alpha) * (nyq - f)
    return np.where(f <= knee / alpha, f * alpha, upper)


def mel_filterbank(sr: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS,
                   fmin: float = FMIN, fmax: float = FMAX, warp: float = 1.0) -> np.ndarray:
    """Triangular filters on the HTK mel scale ``2595 log10(1 + f / 700)``. ``warp``: VTLP
    factor; the filters weigh bin ``f`` as the unwarped ones weigh :func:`vtlp_frequencies`
    ``(f, warp)``, so ``warp > 1`` moves a voice's energy to higher bands (a shorter tract).

    Returns ``(n_mels, n_fft // 2 + 1)`` float32 weights (peak 1, no area normalisation).
    """
    def hz_to_mel(f):
        return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)

    def mel_to_hz(m):
        return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)

    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    bins = np.linspace(0.0, sr / 2.0, n_fft // 2 + 1)
    if warp != 1.0:
        bins = vtlp_frequencies(bins, warp, sr)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins[None] - lower) / (centre - lower)
    falling = (upper - bins[None]) / (upper - centre)
    return np.maximum(0.0, np.minimum(rising, falling)).astype(np.float32)


def _dct_matrix(n_out: int, n_in: int) -> np.ndarray:
    """Orthonormal DCT-II as a ``(n_out, n_in)`` matrix."""
    n = np.arange(n_in)[None]
    k = np.arange(n_out)[:, None]
    m = np.cos(np.pi * k * (2 * n + 1) / (2 * n_in)) * np.sqrt(2.0 / n_in)
    m[0] /= np.sqrt(2.0)
    return m.astype(np.float32)


def _lifter_weights(n: int = N_MFCC, lifter: float = LIFTER) -> np.ndarray:
    """HTK lifter ``1 + L/2 sin(pi n / L)`` for cepstra ``c1..cn``."""
    if lifter <= 0:
        return np.ones(n, dtype=np.float32)
    idx = np.arange(1, n + 1)
    return (1.0 + lifter / 2.0 * np.sin(np.pi * idx / lifter)).astype(np.float32)


_MEL = mel_filterbank()
_DCT = _dct_matrix(N_MFCC + 1, N_MELS)
_HAMMING = (0.54 - 0.46 * np.cos(2 * np.pi * np.arange(WIN_LENGTH) / WIN_LENGTH)).astype(np.float32)


def mfcc(audio: np.ndarray, sr: int = SAMPLE_RATE, *, lifter: float = LIFTER,
         warp: float = 1.0) -> np.ndarray:
    """The paper's 12 MFCCs, one frame per 10 ms.

    Args:
        audio: mono samples, shape ``(n_samples,)``.
        sr: must be 16000 (load files with :func:`load_audio`, which resamples).
        lifter: cepstral lifter (0 disables it).
        warp: VTLP factor of the mel filters (:func:`mel_filterbank`); 1 = none.

    Returns:
        ``(12, n_cells)`` float32 with ``n_cells = ceil(n_samples / 160)``; column ``j``
        describes the 10 ms cell ``[j, j + 1) * 10 ms`` (centred at ``(j + 0.5) * 10 ms``).
    """
    audio = _check_mono(audio, sr)
    n_cells = -(-audio.size // HOP_LENGTH)
    # pre-emphasis y[n] = x[n] - 0.97 x[n-1], with x[-1] = 0
    y = np.empty(audio.size, dtype=np.float32)
    y[0] = audio[0]
    np.subtract(audio[1:], PREEMPHASIS * audio[:-1], out=y[1:])
    # frame j covers samples [j*hop - 120, j*hop + 280): centred on (j + 0.5) * hop
    left = (WIN_LENGTH - HOP_LENGTH) // 2
    total = (n_cells - 1) * HOP_LENGTH + WIN_LENGTH
    padded = np.zeros(total, dtype=np.float32)
    padded[left:left + y.size] = y[:total - left]
    frames = np.lib.stride_tricks.sliding_window_view(padded, WIN_LENGTH)[::HOP_LENGTH]
    windowed = np.zeros((n_cells, N_FFT), dtype=np.float32)  # zero padded to the FFT size
    np.multiply(frames, _HAMMING, out=windowed[:, :WIN_LENGTH])
    spec = scipy.fft.rfft(windowed, axis=1, overwrite_x=True)  # pocketfft keeps float32
    power = spec.real ** 2
    power += spec.imag ** 2
    mel = _MEL if warp == 1.0 else mel_filterbank(warp=warp)
    log_mel = 10.0 * np.log10(np.maximum(power @ mel.T, LOG_FLOOR))
    ceps = log_mel @ _DCT[1:].T  # drop c0
    ceps *= _lifter_weights(N_MFCC, lifter)
    return np.ascontiguousarray(ceps.T, dtype=np.float32)


def _check_mono(audio: np.ndarray, sr: int) -> np.ndarray:
    audio = np.asarray(audio)
    if sr != SAMPLE_RATE:
        raise ValueError(f"MFCCs are defined for {SAMPLE_RATE} Hz audio, got {sr} Hz; "
                         f"resample first (load_audio(path, sr={SAMPLE_RATE}) does)")
    if audio.ndim != 1:
        raise ValueError(f"expected mono audio of shape (n_samples,), got {audio.shape}; "
                         "mix the channels first (load_audio does)")
    if audio.size == 0:
        raise AudioError("the audio is empty (0 samples)")
    return audio.astype(np.float32, copy=False)


# ----------------------------------------------------------------------------- windows


def frame_times(n_frames: int, fps: float = FPS) -> np.ndarray:
    """Presentation time ``k / fps`` of each video frame, seconds, shape ``(n_frames,)``."""
    return np.arange(n_frames) / float(fps)


def window_starts(n_frames: int, fps: float = FPS, window_ms: float = WINDOW_MS) -> np.ndarray:
    """Index of the first MFCC cell of each frame's window, shape ``(n_frames,)``.

    The window of frame ``k`` spans cells ``start_k .. start_k + width - 1`` with
    ``width = window_ms / 10`` and its middle at ``t_k = k / fps``. May be negative or run
    past the last cell: :func:`frame_windows` pads those with the edge frames.
    """
    width = _window_width(window_ms)
    cells = frame_times(n_frames, fps) * SAMPLE_RATE / HOP_LENGTH
    return np.floor(cells - width / 2.0 + 0.5).astype(np.int64)


def _window_width(window_ms: float) -> int:
    width = int(round(window_ms * SAMPLE_RATE / 1000.0 / HOP_LENGTH))
    if width < 1:
        raise ValueError(f"window_ms={window_ms} is shorter than one {HOP_LENGTH}-sample hop")
    return width


def frame_windows(features: np.ndarray, n_frames: int, fps: float = FPS,
                  window_ms: float = WINDOW_MS) -> np.ndarray:
    """Cut ``(n_coeffs, n_cells)`` features into one window per video frame.

    Returns ``(n_frames, n_coeffs, width)``; one fancy-indexing gather, no loop over frames.
    """
    width = _window_width(window_ms)
    idx = window_starts(n_frames, fps, window_ms)[:, None] + np.arange(width)[None]
    np.clip(idx, 0, features.shape[1] - 1, out=idx)  # edge padding
    return np.ascontiguousarray(features[:, idx].transpose(1, 0, 2))


def mfcc_windows(audio: np.ndarray, sr: int = SAMPLE_RATE, n_frames: int | None = None,
                 fps: float = FPS, window_ms: float = WINDOW_MS, *,
                 max_shortfall_s: float = 0.2, warp: float = 1.0) -> np.ndarray:
    """One MFCC window per video frame: the audio encoder's input.

    Args:
        audio: mono 16 kHz samples ``(n_samples,)``.
        sr: sample rate (must be 16000).
        n_frames: number of video frames; ``None`` takes ``round(duration * fps)``.
        fps: video frame rate.
        window_ms: window length; 280 ms gives the paper's 28 columns.
        max_shortfall_s: raise when the video outlasts the audio by more than this.
        warp: VTLP factor (:func:`mfcc`), for training on other voices; 1 = none.

    Returns:
        ``(n_frames, 12, window_ms / 10)`` float32, e.g. ``(75, 12, 28)`` for a 3 s clip.
    """
    audio = _check_mono(audio, sr)
    duration = audio.size / sr
    if n_frames is None:
        n_frames = max(1, int(round(duration * fps)))
    if n_frames < 1:
        raise ValueError(f"n_frames must be positive, got {n_frames}")
    shortfall = n_frames / fps - duration
    if shortfall > max_shortfall_s:
        raise AudioError(f"mismatched lengths: the audio lasts {duration:.2f} s but {n_frames} "
                         f"frames at {fps:g} fps need {n_frames / fps:.2f} s")
    return frame_windows(mfcc(audio, sr, warp=warp), n_frames, fps, window_ms)
