"""Warp renderer probe on real GRID: does AU -> landmark motion -> warp move an unseen face's
mouth with the speech, as much as the real mouth moves?

End to end, on the CPU (results printed and written to ``--out``):

1. preprocess GRID (112 px crops, dlib landmarks, estimated AUs; cached in ``--proc``) and the
   shipped samples (ground-truth landmarks and AUs; ``--samples-proc``);
2. split: s1 by coursekit's holdout rule (every 5th utterance held out: 100 / 25); the five
   ``others`` clips (five unseen speakers) sorted by name: the first two held out from all
   training, the other three train;
3. train Audio2AU (``cpu`` preset, ``--a2u-minutes``) on s1's training clips + the three
   ``others`` clips, unless ``--audio2au`` names a checkpoint; fit the probability ->
   intensity quantile map on its validation clips
   (:func:`coursekit.train.motion.fit_audio_map`);
4. train the motion model (:class:`coursekit.models.motion.MotionModel`, ``paper`` size) on
   the same GRID clips + every sample clip;
5. on each held-out clip (the two unseen speakers and s1's 25 utterances): the clip's first
   video frame at its own resolution is the identity photo; its crop's backward map
   (:func:`coursekit.warp.backward_map`) is applied to the photo
   (:func:`coursekit.warp.warp_photo`) for every frame, driven by

   * ``real landmarks``: the clip's own tracked jaw and mouth landmarks (the warp's ceiling);
   * ``motion <- real AUs``: the motion model on the clip's AU intensities;
   * ``motion <- audio``: the motion model on Audio2AU's mapped intensities of its audio;
   * ``+ dark interior``: the same, with the mouth mask (:func:`coursekit.warp.mouth_mask`)
     darkened: a crude stand-in for the network that will paint the mouth interior;
   * ``other clip's audio``: the audio route fed another held-out clip's audio (baseline).

   Motion is taken relative to the model's output for all-zero AUs (the photo is taken as
   the face at rest). dlib tracks the warped frames; the mouth opening (inner-lip gap over
   mouth width, :func:`coursekit.metrics.mouth_opening`) is compared with the real clip's:
   Pearson correlation and spread ratio (std generated / std real).

Goals for the audio route on the unseen speakers: median correlation >= 0.7, spread ratio
0.8-1.25, and >= 0.15 above the other-clip baseline. PNGs go to ``--png``.

    COURSEKIT_GRID_DIR=/path/to/grid python benchmarks/motion_probe.py [--save coursekit/assets/grid/motion.pt]
"""

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402

ROUTES = ("real landmarks", "motion <- real AUs", "motion <- audio", "+ dark interior",
          "other clip's audio")


def splits(proc, samples_proc):
    """``(train_grid, train_samples, held_unseen, held_s1)`` clip lists."""
    from coursekit.data.dataset import load_index
    from coursekit.train.audio2au import holdout_split

    clips = load_index(proc)
    s1_train, s1_held = holdout_split([c for c in clips if c["speaker"] == "s1"])
    others = sorted((c for c in clips if c["speaker"] == "others"), key=lambda c: c["utt"])
    samples = [{**c, "path": str(Path(samples_proc) / c["dir"])} for c in load_index(samples_proc)]
    return s1_train + others[2:], samples, others[:2], s1_held


def preprocess(grid, proc, samples_proc):
    from coursekit.data.corpus import SAMPLES_DIR
    from coursekit.data.preprocess import PreprocessConfig, preprocess_corpus

    for src, dst, cfg in ((grid, proc, PreprocessConfig()),
                          (SAMPLES_DIR, samples_proc,
                           PreprocessConfig(landmarks="ground_truth", aus="ground_truth"))):
        summary = preprocess_corpus(src, dst, cfg, workers=1, progress=False)
        print(f"preprocess {src}: {summary['done']} done, {summary['skipped']} cached, "
              f"{len(summary['failed'])} failed", flush=True)


def relative_motion(model, aus):
    """Displacements ``(T, K, 2)`` from the model's all-zero-AU output (the face at rest)."""
    return model.predict(aus) - model.predict(np.zeros((1, aus.shape[1]), np.float32))[0]


def render(photo, transform, source, targets, dark=False):
    """The photo warped to each target (crop landmarks ``(T, 68, 2)``): ``(T, H, W, 3)``."""
    import cv2

    from coursekit import warp

    inv = cv2.invertAffineTransform(transform)
    out = []
    for target in targets:
        frame = warp.warp_photo(photo, warp.backward_map(source, target, (112, 112)), transform)
        if dark:
            from coursekit.face import transform_points

            mask = warp.mouth_mask(transform_points(target, inv), photo.shape[:2],
                                   feather=0.04)[..., None]
            frame = (frame * (1 - 0.75 * mask) + 25 * 0.75 * mask).astype(np.uint8)
        out.append(frame)
    return np.stack(out)


def score(opening, real):
    """``(correlation, spread ratio)`` of two mouth-opening series."""
    if np.std(opening) < 1e-9:
        return 0.0, 0.0
    return float(np.corrcoef(opening, real)[0, 1]), float(np.std(opening) / np.std(real))


def evaluate_clip(clip, proc, motion, drive, detector, png=None):
    """Per route ``(correlation, spread, landmark correlation, landmark spread)`` for one
    held-out clip (the last two: of the driving landmarks themselves, before the warp and
    the tracking); ``drive``: route -> AUs."""
    from coursekit import warp
    from coursekit.face import track_landmarks
    from coursekit.metrics import mouth_opening
    from coursekit.video import read_video

    folder = Path(proc) / clip["dir"]
    meta = __import__("json").loads((folder / "meta.json").read_text())
    photo = read_video(meta["video"])[0][0]
    transform = np.load(folder / "transforms.npy")[0]
    aligned = np.load(folder / "aligned_landmarks.npy")
    real = mouth_opening(np.load(folder / "landmarks.npy"))
    source = aligned[0]
    real_targets = np.repeat(source[None], len(aligned), 0)
    real_targets[:, warp.MOVING] = aligned[:, warp.MOVING]
    results, videos = {}, {}
    for route in ROUTES:
        if route == "real landmarks":
            targets = real_targets
        else:
            key = "motion <- audio" if route == "+ dark interior" else route
            targets = warp.displace(source, relative_motion(motion, drive[key]))
        frames = render(photo, transform, source, targets, dark=route == "+ dark interior")
        opening = mouth_opening(track_landmarks(frames, detector, source=clip["utt"]))
        results[route] = score(opening, real) + score(mouth_opening(targets), real)
        videos[route] = frames
    if png is not None:
        save_png(png, clip, photo, videos, real)
    return results


def save_png(png, clip, photo, videos, real):
    """Identity, the most open real frame's warps (real landmarks, audio route) and one
    more audio-route frame, side by side."""
    import cv2

    png.mkdir(parents=True, exist_ok=True)
    t = int(np.argmax(real))
    t2 = int(np.argsort(real)[-len(real) // 6])
    row = [photo, videos["real landmarks"][t], videos["motion <- audio"][t],
           videos["+ dark interior"][t], videos["motion <- audio"][t2]]
    cv2.imwrite(str(png / f"{clip['speaker']}_{clip['utt']}.png"),
                np.concatenate(row, 1)[..., ::-1])


def summary_table(rows, title):
    lines = [f"**{title}** ({len(rows)} clips): medians of the correlation and of the spread "
             "ratio (std generated / std real) of the mouth opening tracked on the warped "
             "frames, and of the driving landmarks' own opening (before warp and tracking)", "",
             "| drive | correlation | spread ratio | landmarks: correlation | landmarks: spread |",
             "| --- | --- | --- | --- | --- |"]
    for route in ROUTES:
        med = np.median([r[route] for r in rows], axis=0)
        lines.append(f"| {route} | " + " | ".join(f"{v:.2f}" for v in med) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", default=os.environ.get("COURSEKIT_GRID_DIR"))
    parser.add_argument("--proc", default="/tmp/grid_proc")
    parser.add_argument("--samples-proc", default="/tmp/samples_proc")
    parser.add_argument("--run", default="/tmp/motion_probe", help="checkpoints and logs")
    parser.add_argument("--audio2au", default=None, help="a GRID Audio2AU checkpoint to use")
    parser.add_argument("--a2u-minutes", type=float, default=8.0)
    parser.add_argument("--steps", type=int, default=3000, help="motion model training steps")
    parser.add_argument("--no-samples", action="store_true", help="train on GRID clips only")
    parser.add_argument("--out", default="benchmarks/motion_probe.md")
    parser.add_argument("--png", default="/tmp/motion_png")
    parser.add_argument("--save", default=None, help="also write the motion checkpoint here "
                        "(fp16, with the audio map in its meta)")
    args = parser.parse_args()
    if not args.grid:
        raise SystemExit("give the GRID folder with --grid or COURSEKIT_GRID_DIR")

    import torch

    from coursekit.checkpoint import load_checkpoint, save_model
    from coursekit.data.splits import clip_key
    from coursekit.evaluate.rows import clip_array
    from coursekit.face import LandmarkDetector
    from coursekit.models.motion import MotionConfig
    from coursekit.train.audio2au import MODEL_PRESETS, Audio2AUTrainConfig, train_audio2au
    from coursekit.train.motion import (MotionTrainConfig, fit_audio_map,
                                        own_and_other_intensities, train_motion)

    torch.set_num_threads(1)
    t0 = time.time()
    run = Path(args.run)
    preprocess(args.grid, args.proc, args.samples_proc)
    train, samples, unseen, s1_held = splits(args.proc, args.samples_proc)
    a2u = Path(args.audio2au) if args.audio2au else run / "audio2au" / "audio2au.pt"
    if not a2u.is_file():
        cfg = Audio2AUTrainConfig(epochs=1000, max_minutes=args.a2u_minutes,
                                  model=dict(MODEL_PRESETS["cpu"]), progress=False)
        train_audio2au(args.proc, a2u.parent, cfg, clips=train)
    qmap = fit_audio_map(a2u, args.proc, train, train)
    print(f"audio map fitted on {len(qmap['fitted_on'])} validation clips", flush=True)

    tcfg = MotionTrainConfig(max_steps=args.steps)
    motion_path = run / ("motion_grid.pt" if args.no_samples else "motion.pt")
    if not motion_path.is_file():
        train_motion(args.proc, train + ([] if args.no_samples else samples), motion_path,
                     MotionConfig.paper(), tcfg, progress=False,
                     meta={"audio_map": {k: qmap[k] for k in ("probs", "intensities")}})
    loaded = load_checkpoint(motion_path, kind="motion")
    motion = loaded.model
    print(f"motion model: {loaded.meta['steps']} steps, {loaded.meta['seconds']:.0f} s", flush=True)

    detector = LandmarkDetector()
    held = unseen + s1_held
    own, other = own_and_other_intensities(a2u, args.proc, held, qmap)
    rows = []
    for i, clip in enumerate(held):
        drive = {"motion <- real AUs": clip_array(clip, args.proc, "aus"),
                 "motion <- audio": own[i], "other clip's audio": other[i]}
        rows.append(evaluate_clip(clip, args.proc, motion, drive, detector,
                                  Path(args.png) if i < len(unseen) + 2 else None))
        print(clip_key(clip), {k: tuple(round(x, 2) for x in v[:2]) for k, v in rows[-1].items()},
              flush=True)
    report = write_report(args, held, unseen, rows, loaded, qmap, a2u, time.time() - t0)
    print(report)
    if args.save:
        save_model(args.save, "motion", loaded.model, loaded.checkpoint["model_config"],
                   meta={**loaded.meta, "audio_map": {k: qmap[k] for k in ("probs", "intensities")},
                         "audio_map_fitted_on": qmap["fitted_on"]}, half=True)
        print(f"saved {args.save} ({Path(args.save).stat().st_size / 1e3:.0f} kB)")


def write_report(args, held, unseen, rows, loaded, qmap, a2u, seconds):
    n_unseen = len(unseen)
    audio = [r["motion <- audio"] for r in rows[:n_unseen]]
    base = [r["other clip's audio"] for r in rows[:n_unseen]]
    corr, spread = np.median([a[0] for a in audio]), np.median([a[1] for a in audio])
    lead = corr - np.median([b[0] for b in base])
    per_clip = ["| clip | " + " | ".join(ROUTES) + " |", "| --- |" + " --- |" * len(ROUTES)]
    for clip, r in zip(held[:n_unseen], rows[:n_unseen]):
        per_clip.append(f"| {clip['speaker']}/{clip['utt']} | "
                        + " | ".join(f"{r[k][0]:.2f} / {r[k][1]:.2f}" for k in ROUTES) + " |")
    text = f"""# Warp renderer probe on real GRID: AU -> landmark motion -> warp

Made by `benchmarks/motion_probe.py` ({seconds / 60:.0f} min on the CPU). Data: the GRID
audiovisual corpus (Cooke et al. 2006, CC BY 4.0, DOI 10.5281/zenodo.3625687), 112 px crops,
dlib landmarks, AU intensities estimated from the landmarks.

Held out from all training: the unseen speakers' clips {', '.join(c['utt'] for c in unseen)}
(the first two `others` clips by name) and s1's every 5th utterance ({len(held) - n_unseen}).
Motion model: {loaded.meta['steps']} steps, trained on {len(loaded.meta['train_clips'])} clips
(s1 training utterances, the other three `others` clips{'' if args.no_samples else ', the 60 sample clips'}).
Audio2AU: `{a2u}` (unless given, the `cpu` preset trained by this script for
{args.a2u_minutes:g} minutes on the same GRID clips); probability -> intensity quantile map
fitted on its {len(qmap['fitted_on'])} validation clips.

The identity is the clip's first frame at its own resolution (360x288); every frame is that
photo warped by the thin-plate map of its crop; dlib tracks the warped frames; mouth opening
= inner-lip gap / mouth width, against the real clip's.

{summary_table(rows[:n_unseen], 'Unseen speakers')}

{summary_table(rows[n_unseen:], 's1 held-out utterances')}

Per unseen clip, correlation / spread ratio:

{chr(10).join(per_clip)}

Audio route on the unseen speakers: correlation {corr:.2f} (goal >= 0.7), spread ratio
{spread:.2f} (goal 0.8-1.25), {lead:+.2f} over the other-clip baseline (goal >= 0.15).
"""
    Path(args.out).write_text(text)
    return text


if __name__ == "__main__":
    main()
