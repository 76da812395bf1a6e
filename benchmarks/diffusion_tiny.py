"""The tiny diffusion renderer on the samples: train within a CPU budget, then judge its frames.

1. preprocess ``data_samples/`` at 64 px with its ground truth (skipped when already done);
2. train the tiny diffusion renderer on the training utterances of spk1-spk4, reusing the
   committed Audio2AU (``coursekit/assets/tiny/audio2au.pt``, pre-trained on the same clips);
3. on held-out utterances: AU occurrence F1 of the frames (read by the committed judge),
   PSNR and SSIM, beside shuffled audio, position only, copy identity and the committed
   image-decoder talker (and the same rows on the test speakers spk5-spk6); how much of ``1 - A`` lies in the lower face; how far the generated
   mouth opens compared with the real one (dlib landmarks on the frames); sampling speed.

Writes a Markdown report (``--out``); ``--save DIR`` stores the renderer (fp16 weights) there.

    python benchmarks/diffusion_tiny.py [--train-steps 900] [--save coursekit/assets/tiny]
"""

import argparse
import os
import platform
import shutil
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-steps", type=int, default=900,
                        help="optimizer steps (fixed, so the result does not depend on the load)")
    parser.add_argument("--minutes", type=float, help="optional time cap of the training")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run")
    parser.add_argument("--work", default="/tmp/coursekit_tiny")
    parser.add_argument("--steps", type=int, default=25, help="DDIM steps for the evaluation")
    parser.add_argument("--out", default="benchmarks/diffusion_tiny.md")
    parser.add_argument("--save", help="copy the renderer to this folder, e.g. coursekit/assets/tiny")
    parser.add_argument("--checkpoint", help="evaluate this renderer instead of training one")
    args = parser.parse_args()

    import numpy as np
    import torch

    from _setup import tiny_samples
    from coursekit.au import AUS
    from coursekit.data.dataset import TalkingFaceDataset
    from coursekit.evaluate import evaluate_talker, generate
    from coursekit.face import LandmarkDetector, track_landmarks
    from coursekit.metrics import mouth_opening
    from coursekit.models.config import DiffusionConfig
    from coursekit.models.disentangle import lower_face_mass
    from coursekit.train.au_classifier import load_au_classifier
    from coursekit.checkpoint import read_checkpoint
    from coursekit.train.diffusion import DiffusionTrainConfig, load_renderer, train_diffusion
    from coursekit.train.talker import load_talker

    from coursekit.assets import TINY_DIR as ckpts
    work = Path(args.work)
    samples = tiny_samples(work)
    data, split = samples.data, samples.split
    train, test = split.train, split.heldout
    a2a = read_checkpoint(ckpts / "audio2au.pt")
    stats = (a2a["meta"]["mfcc_mean"].numpy(), a2a["meta"]["mfcc_std"].numpy())

    path = Path(args.checkpoint) if args.checkpoint else None
    if path is None:
        tc = DiffusionTrainConfig.tiny(max_minutes=args.minutes, max_steps=args.train_steps)
        run = work / "diffusion_run"
        if not args.resume:
            shutil.rmtree(run, ignore_errors=True)
        path = train_diffusion(data, train, run / "diffusion.pt", DiffusionConfig.tiny(), tc,
                               mfcc_stats=stats, audio2au_state=a2a["model"],
                               resume=args.resume, half=True)  # EMA weights in fp16
    model, ckpt = load_renderer(path)  # the stored (fp16-rounded) weights are what we judge
    judge = load_au_classifier(ckpts / "judge.pt")
    talker, _ = load_talker(ckpts / "talker.pt")

    scores = evaluate_talker(model, judge, data, test, train, stats, steps=args.steps)
    decoder = evaluate_talker(talker, judge, data, test, train, stats)
    unseen = evaluate_talker(model, judge, data, split.unseen, train, stats, steps=args.steps)

    items = TalkingFaceDataset(data, test, fields=("frames", "identity", "mfcc", "landmarks"),
                               normalize_mfcc=stats)
    detector = LandmarkDetector()
    masses, gen_open, real_open, sample_time, n_frames = [], [], [], 0.0, 0
    for i in range(len(items)):
        it = items[i]
        with torch.no_grad():
            cond = model.condition(it["identity"][None], it["mfcc"][None])
        masses.append(lower_face_mass(cond["mask"][0]).numpy())
        start = time.time()
        frames = generate(model, it["identity"], it["mfcc"], steps=args.steps)
        sample_time += time.time() - start
        n_frames += len(frames)
        as_uint8 = ((frames.permute(0, 2, 3, 1) + 1) * 127.5).round().clamp(0, 255).byte().numpy()
        gen_open.append(mouth_opening(track_landmarks(as_uint8, detector, source="generated")))
        real_open.append(mouth_opening(it["landmarks"]))
    g, r = np.concatenate(gen_open), np.concatenate(real_open)
    corr = float(np.corrcoef(g, r)[0, 1])
    spread = float(g.std() / r.std())
    mass = np.concatenate(masses)

    head = ["| frames | " + " | ".join(AUS) + " | mean F1 | PSNR | SSIM |",
            "|---|" + "---:|" * (len(AUS) + 3)]
    lines = ["# Tiny diffusion renderer on the samples\n",
             f"Machine: {platform.machine()} {os.cpu_count()} cores, torch {torch.__version__}. "
             f"Date: {time.strftime('%Y-%m-%d')}. Trained for {ckpt['seconds'] / 60:.1f} min "
             f"({ckpt['steps']} steps) on {len(train)} clips of spk1-spk4; held out: {len(test)} "
             f"utterances of the same speakers. DDIM {args.steps} steps, one shared initial noise "
             f"per clip; weights stored in fp16.\n",
             "AU occurrence F1 of the frames (read by the judge, an AU classifier trained on real "
             "frames only), PSNR and SSIM against the real frames:\n", *head]

    def row(name, s):
        q = (f"{s['psnr']:.2f} | {s['ssim']:.3f}" if "psnr" in s else "- | -")
        return (f"| {name} | " + " | ".join(f"{v:.3f}" for v in s["f1"])
                + f" | **{s['f1'].mean():.3f}** | {q} |")

    for name in ("model", "shuffled audio", "position only", "copy identity"):
        lines.append(row(f"diffusion: {name}" if name in ("model", "shuffled audio") else name,
                         scores[name]))
    lines.append(row("image decoder (committed talker)", decoder["model"]))
    lines.append(row("image decoder, shuffled audio", decoder["shuffled audio"]))
    lines.append(row("real frames (judge's ceiling)", scores["real frames"]))
    lines += ["", f"The same on the {len(split.unseen)} clips of the test speakers spk5-spk6 "
              "(faces and voices never trained on):", "", *head]
    lines += [row(name, unseen[name]) for name in unseen]
    lines += ["",
              f"- Disentanglement: share of `1 - A` inside the lower-face region: mean "
              f"{mass.mean():.3f} (min {mass.min():.3f}) over {len(mass)} frames.",
              f"- Mouth opening (inner-lip gap / mouth width, dlib landmarks on the generated "
              f"frames vs ground-truth landmarks of the real ones): correlation {corr:.3f}, "
              f"spread ratio {spread:.2f}.",
              f"- Sampling: {n_frames / sample_time:.1f} frames/s at {args.steps} DDIM steps "
              f"({n_frames} frames, all frames of a clip in one batch)."]
    text = "\n".join(lines) + "\n"
    Path(args.out).write_text(text)
    print(text)
    if args.save:
        dest = Path(args.save) / "diffusion.pt"
        shutil.copyfile(path, dest)
        print(f"saved {dest} ({dest.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
