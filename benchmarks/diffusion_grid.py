"""The tiny diffusion renderer on real GRID s1: the course's GRID recipe, on a CPU budget.

1. preprocess ``$COURSEKIT_GRID_DIR/s1`` at 64 px (dlib landmarks, AU labels from the landmark
   estimator), skipped when already done;
2. split s1 into 100 training / 25 held-out utterances (every 5th, ``select_clips``);
3. pre-train Audio2AU on the training clips (``--a2a-minutes``);
4. train the tiny diffusion renderer (``--train-steps`` optimizer steps, fixed so the result
   does not depend on the machine's load);
5. on the held-out clips: how the generated mouth opens (inner-lip gap / mouth width, dlib
   landmarks on the generated frames) against the real mouth: correlation and spread ratio,
   for the clip's own audio and for another utterance's (shuffled); PSNR, SSIM, LMD and AU-F1
   from the landmark estimator beside copy identity and position only
   (:func:`coursekit.evaluate.evaluate_checkpoint`).

The same commands on a GPU with the paper config are in the README ("Real data").

    COURSEKIT_GRID_DIR=/data/grid python benchmarks/diffusion_grid.py [--train-steps 900]
"""

import argparse
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", default=os.environ.get("COURSEKIT_GRID_DIR", ""))
    parser.add_argument("--work", default="/tmp/coursekit_grid")
    parser.add_argument("--a2a-minutes", type=float, default=4.0)
    parser.add_argument("--train-steps", type=int, default=900)
    parser.add_argument("--steps", type=int, default=25, help="DDIM steps for the evaluation")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--out", default="benchmarks/diffusion_grid.md")
    args = parser.parse_args()
    if not args.grid:
        parser.error("set COURSEKIT_GRID_DIR or --grid to the GRID folder (s1/video/*.mpg)")

    import numpy as np
    import torch

    from coursekit.data.dataset import TalkingFaceDataset
    from coursekit.data.preprocess import PreprocessConfig, preprocess_corpus
    from coursekit.evaluate import (COLUMNS, evaluate_checkpoint, fit_length, format3, generate,
                                    select_clips, shuffle_partners)
    from coursekit.face import LandmarkDetector, track_landmarks
    from coursekit.infer import to_uint8
    from coursekit.metrics import mouth_opening
    from coursekit.models.config import DiffusionConfig
    from coursekit.train.audio2au import Audio2AUTrainConfig, train_audio2au
    from coursekit.checkpoint import read_checkpoint
    from coursekit.runtime import RunContext
    from coursekit.train.diffusion import DiffusionTrainConfig, load_renderer, train_diffusion

    RunContext(device="cpu", threads=2).apply()
    work = Path(args.work)
    data = work / "grid64"
    start = time.time()
    preprocess_corpus(args.grid, data, PreprocessConfig(size=64), workers=2, speakers=["s1"])
    prep_minutes = (time.time() - start) / 60
    test, train = select_clips(data, "heldout", "s1")
    model_cfg = DiffusionConfig.tiny()

    a2a_path = work / "audio2au.pt"
    if not (args.resume and a2a_path.is_file()):
        a2a_cfg = Audio2AUTrainConfig(model=__import__("dataclasses").asdict(model_cfg.talker.audio2au),
                                      max_minutes=args.a2a_minutes, epochs=1000, device="cpu")
        a2a_path = Path(train_audio2au(data, work, a2a_cfg, clips=train)["checkpoint"])
    a2a = read_checkpoint(a2a_path)
    stats = (a2a["meta"]["mfcc_mean"].numpy(), a2a["meta"]["mfcc_std"].numpy())

    tc = DiffusionTrainConfig.tiny(max_minutes=None, max_steps=args.train_steps)
    ckpt_path = train_diffusion(data, train, work / "diffusion.pt", model_cfg, tc, mfcc_stats=stats,
                                audio2au_state=a2a["model"], resume=args.resume)
    model, ckpt = load_renderer(ckpt_path)

    # mouth opening of generated frames against the real mouth, own audio and shuffled audio
    items = TalkingFaceDataset(data, test, fields=("identity", "mfcc", "landmarks"),
                               normalize_mfcc=stats)
    partners = shuffle_partners(test)
    detector = LandmarkDetector()
    opening = {"real": [], "model": [], "shuffled audio": []}
    sample_seconds, n_frames = 0.0, 0
    for i in range(len(items)):
        it, other = items[i], items[partners[i]]
        n = len(it["mfcc"])
        mfcc_other = torch.from_numpy(fit_length(other["mfcc"].numpy(), n))
        t0 = time.time()
        own = generate(model, it["identity"], it["mfcc"], steps=args.steps)
        sample_seconds += time.time() - t0
        n_frames += n
        shuffled = generate(model, it["identity"], mfcc_other, steps=args.steps)
        opening["real"].append(mouth_opening(it["landmarks"]))
        for name, frames in (("model", own), ("shuffled audio", shuffled)):
            opening[name].append(mouth_opening(track_landmarks(to_uint8(frames), detector,
                                                               source=f"{name} {i}")))
    real = np.concatenate(opening["real"])
    follow = {}
    for name in ("model", "shuffled audio"):
        g = np.concatenate(opening[name])
        follow[name] = (float(np.corrcoef(g, real)[0, 1]), float(g.std() / real.std()))

    res = evaluate_checkpoint(ckpt_path, data, speakers="s1", steps=args.steps, progress=False)
    cols = [k for k in COLUMNS if any(r.get(k) is not None for r in res["rows"].values())]
    lines = ["# Tiny diffusion renderer on real GRID s1\n",
             f"Machine: {platform.machine()} {os.cpu_count()} cores, torch {torch.__version__}. "
             f"Date: {time.strftime('%Y-%m-%d')}. Preprocessing {prep_minutes:.1f} min (0 when "
             f"cached); Audio2AU {args.a2a_minutes} min; renderer {ckpt['steps']} steps in "
             f"{ckpt['seconds'] / 60:.1f} min. {len(train)} training / {len(test)} held-out s1 "
             f"utterances, 64 px crops with dlib landmarks, AU labels from the landmark "
             f"estimator. DDIM {args.steps} steps; sampling {n_frames / sample_seconds:.1f} "
             f"frames/s.\n",
             "Mouth opening (inner-lip gap / mouth width; dlib on the generated frames, the "
             "dataset's landmarks on the real ones), all held-out frames:\n",
             "| frames | correlation with the real mouth | spread / real spread |", "|---|---:|---:|"]
    lines += [f"| {name} | {c:.3f} | {s:.2f} |" for name, (c, s) in follow.items()]
    lines += ["", "Held-out scores (`coursekit evaluate`; no judge or sync expert for GRID here: "
              "AU-F1 from the landmark estimator). On GRID, copying the identity frame scores a "
              "high PSNR: most of the face does not move.\n",
              "| row | " + " | ".join(COLUMNS[k] for k in cols) + " |",
              "|---|" + "---:|" * len(cols)]
    for row, values in res["rows"].items():
        lines.append(f"| {row} | " + " | ".join(format3(values.get(k)) or "–" for k in cols) + " |")
    text = "\n".join(lines) + "\n"
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
