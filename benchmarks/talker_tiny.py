"""The tiny talker on the samples: train within the CPU budget, then judge generated frames.

1. preprocess ``data_samples/`` at 64 px with its ground truth (skipped when already done);
2. train the tiny pipeline (AU classifier, Audio2AU, talker) on the training utterances of the
   training speakers (spk1-spk4), timed;
3. train the *judge*: another AU classifier (another seed) on the same real training frames;
4. AU occurrence F1 of the frames generated for held-out utterances, beside copy identity,
   shuffled audio and position only; and silent audio (the mouth must stay closed and still).

Writes a Markdown report (``--out``, default ``benchmarks/talker_tiny.md``).

    python benchmarks/talker_tiny.py [--minutes 5.5] [--work /tmp/coursekit_tiny] [--save checkpoints/tiny]
"""

import argparse
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.5, help="talker stage budget")
    parser.add_argument("--work", default="/tmp/coursekit_tiny")
    parser.add_argument("--out", default="benchmarks/talker_tiny.md")
    parser.add_argument("--save", help="copy the checkpoints (and the judge) to this folder, "
                        "e.g. checkpoints/tiny")
    args = parser.parse_args()

    import numpy as np
    import torch

    from coursekit.au import AUS
    from coursekit.data.corpus import SAMPLES_DIR
    from coursekit.data.preprocess import PreprocessConfig, preprocess_corpus
    from coursekit.evaluate import evaluate_talker, silence_check
    from coursekit.train.au_classifier import (AUClassifierTrainConfig, load_au_classifier,
                                               train_au_classifier)
    from coursekit.train.talker import PipelineConfig, load_talker, train_pipeline

    torch.set_num_threads(2)
    work = Path(args.work)
    data = work / "processed64"
    preprocess_corpus(SAMPLES_DIR, data, PreprocessConfig(size=64, landmarks="ground_truth",
                                                          aus="ground_truth"), workers=2)
    cfg = PipelineConfig.tiny()
    cfg.test_speakers = ("spk5", "spk6")
    cfg.talker.max_minutes = args.minutes
    start = time.time()
    result = train_pipeline(data, work / "run", cfg)
    train_minutes = (time.time() - start) / 60
    judge_path = train_au_classifier(data, result["train"], work / "judge.pt", cfg.au_classifier,
                                     AUClassifierTrainConfig(seed=1, max_minutes=2.0))
    judge = load_au_classifier(judge_path)
    model, ckpt = load_talker(result["paths"]["talker"])
    stats = (ckpt["mfcc_mean"], ckpt["mfcc_std"])
    scores = evaluate_talker(model, judge, data, result["test"], result["train"], stats)
    silent = silence_check(model, judge, data, result["test"], stats)

    lines = [f"# Tiny talker on the samples\n",
             f"Machine: {platform.machine()} {os.cpu_count()} cores, torch {torch.__version__}. "
             f"Date: {time.strftime('%Y-%m-%d')}. Whole pipeline (AU classifier, Audio2AU, talker "
             f"at {args.minutes} min) trained in **{train_minutes:.1f} min**, "
             f"{ckpt['steps']} talker steps. Train: {len(result['train'])} clips of spk1-spk4; "
             f"held out: {len(result['test'])} utterances of the same speakers.\n",
             "AU occurrence F1 of the frames, read by the judge (an AU classifier trained on real "
             "frames only, never used as a loss):\n",
             "| frames | " + " | ".join(AUS) + " | mean |", "|---|" + "---:|" * (len(AUS) + 1)]
    for name, s in scores.items():
        f1 = s["f1"]
        lines.append(f"| {name} | " + " | ".join(f"{v:.3f}" for v in f1) + f" | **{f1.mean():.3f}** |")
    lines += ["", "Silent audio (generated from digital silence, same identities):", "",
              f"- AU25/AU26 occurrence on silent frames: {silent['au25']:.3f} / {silent['au26']:.3f} "
              f"(speech: {silent['speech_au25']:.3f} / {silent['speech_au26']:.3f})",
              f"- mouth-region change between consecutive frames (mean |diff|, 0-1 scale): "
              f"silent {silent['silent_motion']:.4f}, speech {silent['speech_motion']:.4f}"]
    text = "\n".join(lines) + "\n"
    Path(args.out).write_text(text)
    print(text)
    if args.save:
        import shutil

        save = Path(args.save)
        save.mkdir(parents=True, exist_ok=True)
        for path in [*result["paths"].values(), judge_path]:
            shutil.copy2(path, save / Path(path).name)
        print(f"copied to {save}; its README.md documents this command (kept by hand)")
    m = {k: float(np.mean(v["f1"])) for k, v in scores.items()}
    print(f"model - shuffled {m['model'] - m['shuffled audio']:+.3f}, "
          f"- position {m['model'] - m['position only']:+.3f}, "
          f"- copy {m['model'] - m['copy identity']:+.3f}")


if __name__ == "__main__":
    main()
