"""Real faces never trained on: what a generator makes of them, end to end on a CPU.

Cases (figures printed and written to ``--out``; PNGs to ``--png``):

* ``brbk7n``, ``lbax4n``: the two GRID ``others`` clips held out of every training run (two
  speakers no model has seen). Identity = the clip's first frame at its native 360x288;
  audio = the clip's own sound (:func:`coursekit.audio.load_video_audio`, cut to its 75
  frames); ground truth = the clip itself.
* ``astronaut``: ``skimage.data.astronaut()`` (512x512) saying a sample utterance
  (``data_samples/spk5``, the first by name) after 1 s of digital silence.

Each video is made by :func:`coursekit.infer.generate_video` with paste-back (the whole photo),
read back (:func:`coursekit.video.read_video`) and measured on its frames, as a viewer sees it:

* mouth opening (inner-lip gap / mouth width, :func:`coursekit.metrics.tracked_opening`: dlib
  landmarks tracked on the generated frames): correlation with the real clip's opening (tracked
  the same way), beside the same face driven by the OTHER held-out clip's audio (a baseline
  that knows nothing of this clip's timing), and the spread ratio std generated / std real;
* astronaut: the spread (std of the opening) during speech against the median real spread of
  the five GRID ``others`` clips, and in the silent second (frames whose 280 ms MFCC window
  lies inside it): the opening's std and mean frame-to-frame change;
* PSNR of the region above the nose (above landmark 29 of the photo: in the face box, and
  across the whole width) of every frame against the input photo, the minimum over frames;
  the codec's own ceiling is the same figure for a still video of the photo;
* lip sync judged by the GRID sync expert (``coursekit/assets/grid/syncnet.pt``) on the 112 px
  crops aligned as in preprocessing (:func:`coursekit.face.align_clip` on the tracked
  landmarks): offset (0 = in sync) and LSE-C, beside the same frames with shuffled audio
  (another clip's), and the real clip's own figures;
* speed: frames / wall seconds of the whole ``generate_video`` call (loading included).

``--checkpoint`` (repeatable; ``default`` = the shipped default generator) picks the
generators; one section per generator, and a summary table for ``benchmarks/RESULTS.md``::

    COURSEKIT_GRID_DIR=/path/to/grid python benchmarks/real_faces.py \\
        --checkpoint default --checkpoint coursekit/assets/tiny/diffusion.pt
"""

import argparse
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402

HELD_OUT = ("brbk7n", "lbax4n")
"""The GRID ``others`` clips no model was trained on (each the other's audio baseline)."""
OTHERS = ("brbk7n", "lbax4n", "lbbc2a", "lrwp9a", "lwbsza")
SILENCE_S = 1.0
NOTE = ("GRID sentences share one grammar and rhythm, so another clip's audio is a hard "
        "baseline for the opening correlation and for sync. The sync expert learnt mostly "
        "one speaker (s1): it finds offset 0 on real clips of new speakers, but its LSE-C "
        "barely separates their own audio from another clip's (the real clips' rows above), "
        "so on new faces its offsets say more than its LSE-C.")
FPS = 25.0


@dataclass
class Case:
    """One face to animate: photo and audio files, and what it is measured against."""

    name: str
    photo: Path
    audio: Path
    other_audio: Path  # audio of another clip, the same length (baseline / shuffled sync)
    n_frames: int
    real_opening: np.ndarray | None = None  # (T,) tracked on the real clip
    real_sync: dict = field(default_factory=dict)  # {"own": scores, "shuffled": scores}
    silent: np.ndarray | None = None  # (T,) bool: frames whose audio window is silent


# ----------------------------------------------------------------------------- inputs


def write_wav(path, audio, sr):
    import soundfile

    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, np.asarray(audio, np.float32), sr, subtype="PCM_16")
    return path


def fit_samples(audio, n):
    """``audio`` cut or zero-padded to ``n`` samples."""
    return np.concatenate([audio, np.zeros(max(0, n - len(audio)), np.float32)])[:n]


def mfcc_of(path, n_frames, stats):
    """Normalised MFCC windows ``(T, 12, 28)`` of an audio file, for the sync expert."""
    import torch

    from coursekit.audio import load_audio, mfcc_windows

    audio, _ = load_audio(path)  # 16 kHz mono
    windows = mfcc_windows(fit_samples(audio, int(round(n_frames / FPS * 16000))), 16000,
                           n_frames)
    return torch.from_numpy((windows - stats[0]) / stats[1]).float()


def sync_of(expert, stats, frames, landmarks, audio_paths):
    """Sync-expert scores of ``frames`` (``(T, H, W, 3)``, landmarks ``(T, 68, 2)``) with
    each audio file: ``{key: {"offset", "confidence", ...}}``."""
    import torch

    from coursekit.face import align_clip
    from coursekit.metrics import sync_scores

    crops = align_clip(frames, landmarks, size=expert.cfg.image_size).crops
    video = torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    return {key: sync_scores(expert, video, mfcc_of(path, len(frames), stats))
            for key, path in audio_paths.items()}


def grid_cases(grid, work, detector, expert, stats):
    """The two held-out GRID cases, and the real opening spread of all five ``others``."""
    import cv2

    from coursekit.audio import load_video_audio
    from coursekit.metrics import tracked_opening
    from coursekit.video import read_video

    clips, spreads = {}, []
    for utt in OTHERS:
        mpg = Path(grid) / "others" / "video" / f"{utt}.mpg"
        frames, _ = read_video(mpg)
        opening, landmarks = tracked_opening(frames, detector, source=str(mpg))
        spreads.append(float(opening.std()))
        if utt not in HELD_OUT:
            continue
        sound, sr = load_video_audio(mpg, sr=None, duration=len(frames) / FPS)
        photo = work / "faces" / f"{utt}.png"
        photo.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(photo), frames[0][..., ::-1])
        clips[utt] = (frames, landmarks, opening, write_wav(work / "audio" / f"{utt}.wav", sound, sr))
    cases = []
    for utt in HELD_OUT:
        frames, landmarks, opening, wav = clips[utt]
        other = clips[next(u for u in HELD_OUT if u != utt)][3]
        case = Case(utt, work / "faces" / f"{utt}.png", wav, other, len(frames), opening)
        case.real_sync = sync_of(expert, stats, frames, landmarks,
                                 {"own": wav, "shuffled": other})
        cases.append(case)
    return cases, spreads


def astronaut_case(work):
    """The astronaut saying a spk5 sample utterance after :data:`SILENCE_S` of silence."""
    import cv2
    from skimage.data import astronaut

    from coursekit.audio import WINDOW_MS, frame_times, load_audio
    from coursekit.data.corpus import SAMPLES_DIR
    from coursekit.infer import n_video_frames

    photo = work / "faces" / "astronaut.png"
    photo.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(photo), astronaut()[..., ::-1])
    utts = sorted((SAMPLES_DIR / "spk5" / "audio").glob("*.flac"))
    own, sr = load_audio(utts[0], sr=None)
    other, sr2 = load_audio(utts[1], sr=sr)
    pad = np.zeros(int(round(SILENCE_S * sr)), np.float32)
    own = np.concatenate([pad, own])
    other = fit_samples(np.concatenate([pad, other]), len(own))
    n = n_video_frames(len(own), sr)
    # silent: the frame's MFCC window (and the STFT's half window) ends inside the silence
    silent = frame_times(n) + WINDOW_MS / 2000 + 0.0125 <= SILENCE_S
    return Case("astronaut", photo, write_wav(work / "audio" / "astronaut.wav", own, sr),
                write_wav(work / "audio" / "astronaut_other.wav", other, sr2), n, silent=silent)


# ----------------------------------------------------------------------------- measuring


def photo_regions(photo, detector):
    """``(face box above the nose, whole width above the nose)`` as ``(x0, y0, x1, y1)``:
    above landmark 29 of the photo; the face box spans the landmarks' width and reaches up
    by a third of the landmarks' height above the brows (the forehead)."""
    from coursekit.face import track_landmarks

    pts = track_landmarks(photo[None], detector, source="photo")[0]
    y29 = float(pts[29, 1])
    top = float(pts[:, 1].min()) - (float(pts[:, 1].max()) - float(pts[:, 1].min())) / 3
    return ((float(pts[:, 0].min()), top, float(pts[:, 0].max()), y29),
            (0.0, 0.0, float(photo.shape[1]), y29))


def reference_photo(path):
    """The photo as :func:`coursekit.infer.generate_video` pastes into it (even sizes)."""
    from coursekit.infer import read_image

    photo = read_image(path)
    h, w = photo.shape[:2]
    return photo[: h - h % 2, : w - w % 2]


def codec_ceiling(photo, regions, work):
    """Min PSNR above the nose of a still video of the photo (the codec's own loss)."""
    from coursekit.metrics import region_psnr
    from coursekit.video import read_video, write_video

    path = write_video(work / "still.mp4", np.repeat(photo[None], 25, 0))
    frames = read_video(path)[0]
    return tuple(float(region_psnr(frames, photo, box).min()) for box in regions)


def generate(checkpoint, case, audio, out, device):
    """``(frames (T, H, W, 3), frames per wall second)`` of one generate_video call."""
    from coursekit.infer import generate_video
    from coursekit.video import read_video

    t0 = time.perf_counter()
    generate_video(checkpoint, case.photo, audio, out, paste_back=True, device=device,
                   progress=False)
    seconds = time.perf_counter() - t0
    frames = read_video(out)[0]
    return frames, len(frames) / seconds


def measure(checkpoint, label, case, work, detector, expert, stats, device, png):
    """Every figure of one generator on one case (a dict)."""
    from coursekit.evaluate.rows import fit_length
    from coursekit.metrics import opening_agreement, region_psnr, tracked_opening

    folder = work / re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("_")
    photo = reference_photo(case.photo)
    regions = photo_regions(photo, detector)
    frames, fps = generate(checkpoint, case, case.audio, folder / f"{case.name}.mp4", device)
    opening, landmarks = tracked_opening(frames, detector, source=f"{case.name} ({label})")
    row = {"fps": fps, "frames": len(frames), "opening": opening,
           "psnr_face": float(region_psnr(frames, photo, regions[0]).min()),
           "psnr_width": float(region_psnr(frames, photo, regions[1]).min()),
           "sync": sync_of(expert, stats, frames, landmarks,
                           {"own": case.audio, "shuffled": case.other_audio})}
    if case.real_opening is not None:
        real = fit_length(case.real_opening, len(opening))
        row["corr"], row["spread"] = opening_agreement(opening, real)
        other, row["fps_other"] = generate(checkpoint, case, case.other_audio,
                                           folder / f"{case.name}_other.mp4", device)
        other_opening = tracked_opening(other, detector, source=f"{case.name} other audio")[0]
        row["corr_other"] = opening_agreement(other_opening, real)[0]
    if case.silent is not None:
        quiet = opening[case.silent[: len(opening)]]
        speech = opening[~case.silent[: len(opening)]]
        row.update(silence_std=float(quiet.std()),
                   silence_change=float(np.abs(np.diff(quiet)).mean()),
                   speech_std=float(speech.std()),
                   speech_change=float(np.abs(np.diff(speech)).mean()))
    save_png(png / f"{folder.name}_{case.name}.png", photo, frames, opening, landmarks)
    return row


def save_png(path, photo, frames, opening, landmarks):
    """Identity | the most open generated frame | a 3x zoom on the paste-back seam of the
    lower face (identity above, generated below), all at the photo's height."""
    import cv2

    t = int(np.argmax(opening))
    pts = landmarks[t]
    x0, x1 = int(pts[2, 0]) - 10, int(pts[14, 0]) + 10
    y0, y1 = int(pts[30, 1]), int(pts[8, 1]) + 15
    x0, y0 = max(x0, 0), max(y0, 0)
    x1, y1 = min(x1, photo.shape[1]), min(y1, photo.shape[0])
    zoom = np.concatenate([photo[y0:y1, x0:x1], frames[t][y0:y1, x0:x1]], 0)
    h = photo.shape[0]
    zoom = cv2.resize(zoom, (max(1, round(zoom.shape[1] * h / zoom.shape[0])), h),
                      interpolation=cv2.INTER_NEAREST)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.concatenate([photo, frames[t], zoom], 1)[..., ::-1])


# ----------------------------------------------------------------------------- report


def fmt_sync(s):
    return f"{s['offset']:+d} / {s['confidence']:.2f}"


def generator_section(label, rows, cases, grid_spread):
    """The Markdown section of one generator."""
    lines = [f"### {label}", "",
             "| face | frames | frames/s | correlation (own audio) | correlation (other clip's "
             "audio) | spread ratio | min PSNR above nose: face box / width (dB) | sync: "
             "offset / LSE-C (own audio) | (shuffled audio) |", "|---" * 9 + "|"]
    for case in cases:
        r = rows[case.name]
        corr = (f"{r['corr']:.2f} | {r['corr_other']:.2f} | {r['spread']:.2f}"
                if "corr" in r else "- | - | -")
        lines.append(f"| {case.name} | {r['frames']} | {r['fps']:.1f} | {corr} | "
                     f"{r['psnr_face']:.1f} / {r['psnr_width']:.1f} | "
                     f"{fmt_sync(r['sync']['own'])} | {fmt_sync(r['sync']['shuffled'])} |")
    s = summary(rows, cases, grid_spread)
    lines += ["", f"Median over the GRID faces: correlation {s['corr']:.2f} (other clip's audio "
              f"{s['corr_other']:.2f}), spread ratio {s['spread']:.2f}."]
    a = rows.get("astronaut")
    if a is not None:
        lines.append(
            f"Astronaut: opening spread during speech {a['speech_std']:.3f} "
            f"({a['speech_std'] / grid_spread:.2f} x the median real GRID spread "
            f"{grid_spread:.3f}); in the silent second: std {a['silence_std']:.3f}, mean "
            f"frame-to-frame change {a['silence_change']:.4f} (speech: "
            f"{a['speech_change']:.4f}).")
    return lines


def summary(rows, cases, grid_spread):
    grid = [rows[c.name] for c in cases if "corr" in rows[c.name]]
    med = {k: float(np.median([r[k] for r in grid])) if grid else float("nan")
           for k in ("corr", "corr_other", "spread")}
    every = [rows[c.name] for c in cases]
    med.update(psnr=min(r["psnr_face"] for r in every),
               fps=float(np.median([r["fps"] for r in every])),
               offset0=sum(abs(r["sync"]["own"]["offset"]) <= 1 for r in every),
               lse_c=float(np.median([r["sync"]["own"]["confidence"] for r in every])),
               lse_c_shuffled=float(np.median([r["sync"]["shuffled"]["confidence"]
                                               for r in every])), n=len(every))
    a = rows.get("astronaut")
    med["astro_spread"] = a["speech_std"] / grid_spread if a else float("nan")
    med["astro_silence"] = a["silence_std"] if a else float("nan")
    return med


def summary_table(results, cases, grid_spread):
    lines = ["| generator | opening corr (other audio) | spread ratio | astronaut spread "
             "/ real | silence std | min PSNR above nose | sync offset within 1 | LSE-C "
             "(shuffled) | frames/s |", "|---" * 9 + "|"]
    for label, rows in results.items():
        s = summary(rows, cases, grid_spread)
        lines.append(f"| {label} | {s['corr']:.2f} ({s['corr_other']:.2f}) | {s['spread']:.2f} | "
                     f"{s['astro_spread']:.2f} | {s['astro_silence']:.3f} | {s['psnr']:.1f} dB | "
                     f"{s['offset0']}/{s['n']} | {s['lse_c']:.2f} ({s['lse_c_shuffled']:.2f}) | "
                     f"{s['fps']:.1f} |")
    return lines


def report(args, results, cases, grid_spreads, ceilings, seconds):
    grid_spread = float(np.median(grid_spreads))
    lines = ["# Real faces never trained on", "",
             f"`python benchmarks/real_faces.py {' '.join(args.argv)}` "
             f"({time.strftime('%Y-%m-%d')}, {args.threads} CPU threads, {seconds / 60:.1f} min "
             "in all). GRID clips: Cooke et al. 2006, JASA 120(5), CC BY 4.0.", "",
             "Faces: the first frame of the held-out GRID clips brbk7n and lbax4n (360x288, "
             "their own audio; each other's audio is the baseline and the shuffled audio) and "
             "skimage's astronaut (512x512) saying spk5's first sample utterance after 1 s of "
             "silence. Videos with paste-back, read back from the mp4; mouth opening = inner-lip "
             "gap / mouth width of dlib landmarks tracked on the frames; sync by the GRID sync "
             "expert on 112 px aligned crops (offset 0 = in sync; LSE-C higher = surer).", "",
             "## Reference: the real clips", "",
             "| clip | opening spread (std) | sync: offset / LSE-C (own audio) | (shuffled) | "
             "codec ceiling of min PSNR above nose: face box / width (dB) |", "|---" * 5 + "|"]
    for case in cases:
        spread = f"{case.real_opening.std():.3f}" if case.real_opening is not None else "-"
        own = fmt_sync(case.real_sync["own"]) if case.real_sync else "-"
        shuf = fmt_sync(case.real_sync["shuffled"]) if case.real_sync else "-"
        c = ceilings[case.name]
        lines.append(f"| {case.name} | {spread} | {own} | {shuf} | {c[0]:.1f} / {c[1]:.1f} |")
    lines += ["", f"Median real opening spread of the five GRID `others` clips: {grid_spread:.3f}.",
              "", NOTE, "", "## Generators", ""]
    for label, rows in results.items():
        lines += generator_section(label, rows, cases, grid_spread) + [""]
    lines += ["## Summary (for benchmarks/RESULTS.md)", "",
              "Medians over the faces (correlation, spread: the two GRID faces; sync, speed: "
              "all three); min PSNR: the worst frame of any face (face box above the nose).", ""]
    lines += summary_table(results, cases, grid_spread)
    return "\n".join(lines) + "\n"


def main() -> None:
    import sys

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", default=os.environ.get("COURSEKIT_GRID_DIR"))
    parser.add_argument("--checkpoint", action="append", help="a generator checkpoint, or "
                        "'default' (the shipped default); repeatable (default: default)")
    parser.add_argument("--syncnet", default=None, help="default: the shipped grid/syncnet.pt")
    parser.add_argument("--work", default="/tmp/real_faces", help="inputs and videos")
    parser.add_argument("--png", default="/tmp/real_faces_png")
    parser.add_argument("--out", default="benchmarks/real_faces.md")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    args.argv = sys.argv[1:]
    if not args.grid:
        raise SystemExit("give the GRID folder with --grid or COURSEKIT_GRID_DIR")

    from coursekit.assets import DEFAULT_GENERATOR, asset_path
    from coursekit.face import LandmarkDetector
    from coursekit.runtime import RunContext
    from coursekit.train.syncnet import load_syncnet

    RunContext(device=args.device, threads=args.threads).apply()
    t0 = time.time()
    work, png = Path(args.work), Path(args.png)
    sync_path = args.syncnet or asset_path("grid/syncnet.pt")
    if sync_path is None:
        raise SystemExit("no GRID sync expert: give --syncnet")
    expert, meta = load_syncnet(sync_path, args.device)
    stats = (np.asarray(meta["mfcc_mean"], np.float32).reshape(-1, 1),
             np.asarray(meta["mfcc_std"], np.float32).reshape(-1, 1))
    detector = LandmarkDetector()
    cases, grid_spreads = grid_cases(args.grid, work, detector, expert, stats)
    cases.append(astronaut_case(work))
    ceilings = {c.name: codec_ceiling(reference_photo(c.photo),
                                      photo_regions(reference_photo(c.photo), detector), work)
                for c in cases}
    results = {}
    for spec in args.checkpoint or ["default"]:
        checkpoint = None if spec == "default" else spec
        label = f"default ({DEFAULT_GENERATOR})" if checkpoint is None else spec
        results[label] = {}
        for case in cases:
            row = measure(checkpoint, label, case, work, detector, expert, stats, args.device, png)
            results[label][case.name] = row
            print(f"{label} {case.name}: " + ", ".join(
                f"{k} {v:.3f}" for k, v in row.items() if isinstance(v, float)), flush=True)
    text = report(args, results, cases, grid_spreads, ceilings, time.time() - t0)
    print(text)
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
