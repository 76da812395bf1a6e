"""Audio front-end speed: seconds of audio turned into frame windows per second of CPU time.

Runs on one core (threads pinned to 1) and prints coursekit's MFCC windows beside bare librosa
MFCC (13 coefficients, same frame and filter settings) on the same audio, as a ratio.
Targets: >= 1,000x real time, and within 1.5x of librosa.

    python benchmarks/audio.py [--seconds 600] [--repeats 5]
"""

import argparse
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import time  # noqa: E402

import numpy as np  # noqa: E402


def cpu_seconds(fn, repeats: int) -> float:
    """Best CPU time of ``repeats`` calls (after one warm-up call)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600.0, help="length of test audio")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    import librosa

    from coursekit.audio import HOP_LENGTH, N_FFT, N_MELS, SAMPLE_RATE, WIN_LENGTH, mfcc_windows

    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal(int(args.seconds * SAMPLE_RATE))).astype(np.float32)
    ours = cpu_seconds(lambda: mfcc_windows(audio, SAMPLE_RATE), args.repeats)
    ref = cpu_seconds(lambda: librosa.feature.mfcc(
        y=audio, sr=SAMPLE_RATE, n_mfcc=13, n_fft=N_FFT, hop_length=HOP_LENGTH,
        win_length=WIN_LENGTH, window="hamming", n_mels=N_MELS), args.repeats)
    n_windows = int(round(args.seconds * 25))
    print(f"audio: {args.seconds:.0f} s at {SAMPLE_RATE} Hz, {n_windows} frame windows (12x28)")
    print(f"coursekit mfcc_windows: {ours:.3f} s CPU = {args.seconds / ours:,.0f}x real time "
          f"({n_windows / ours:,.0f} windows/s)")
    print(f"librosa mfcc (bare):    {ref:.3f} s CPU = {args.seconds / ref:,.0f}x real time")
    print(f"ratio coursekit / librosa: {ours / ref:.2f} (target <= 1.5)")


if __name__ == "__main__":
    main()
