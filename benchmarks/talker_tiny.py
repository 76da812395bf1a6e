"""The tiny talker on the samples: train within the CPU budget, then judge generated frames.

1. preprocess ``data_samples/`` at 64 px with its ground truth (skipped when already done);
2. train the tiny pipeline (AU classifier, Audio2AU, talker) on the training utterances of the
   training speakers (spk1-spk4), timed;
3. train the *judge*: another AU classifier (another seed) on the same real training frames;
4. AU occurrence F1 of the frames generated for held-out utterances and for the test speakers
   spk5-spk6 (never trained on), beside copy identity, shuffled audio and position only; and
   silent audio (the mouth must stay closed and still).

Writes a Markdown report (``--out``, default ``benchmarks/talker_tiny.md``).

    python benchmarks/talker_tiny.py [--minutes 5.5] [--work /tmp/coursekit_tiny] [--save coursekit/assets/tiny]
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
                        "e.g. coursekit/assets/tiny")
    args = parser.parse_args()

    import numpy as np
    import torch

    from _setup import f1_rows, tiny_samples
    from coursekit.au import AUS
    from coursekit.evaluate import evaluate_talker, silence_check
    from coursekit.train.au_classifier import (AUClassifierTrainConfig, load_au_classifier,
                                               train_au_classifier)
    from coursekit.train.talker import load_talker, train_pipeline

    work = Path(args.work)
    samples = tiny_samples(work)
    data, cfg, split = samples.data, samples.cfg, samples.split
    cfg.talker.max_minutes = args.minutes
    cfg.half = True  # talker.pt in fp16, as committed: the weights judged are the ones shipped
    start = time.time()
    result = train_pipeline(data, work / "run", cfg)
    train_minutes = (time.time() - start) / 60
    judge_path = train_au_classifier(data, result["train"], work / "judge.pt", cfg.au_classifier,
                                     AUClassifierTrainConfig(seed=1, max_minutes=2.0))
    judge = load_au_classifier(judge_path)
    model, ckpt = load_talker(result["paths"]["talker"])
    stats = (ckpt["mfcc_mean"], ckpt["mfcc_std"])
    scores = evaluate_talker(model, judge, data, split.heldout, split.train, stats)
    unseen = evaluate_talker(model, judge, data, split.unseen, split.train, stats)
    silent = silence_check(model, judge, data, split.heldout, stats)

    head = ["| frames | " + " | ".join(AUS) + " | mean |", "|---|" + "---:|" * (len(AUS) + 1)]
    lines = [f"# Tiny talker on the samples\n",
             f"Machine: {platform.machine()} {os.cpu_count()} cores, torch {torch.__version__}. "
             f"Date: {time.strftime('%Y-%m-%d')}. Whole pipeline (AU classifier, Audio2AU, talker "
             f"at {args.minutes} min) trained in **{train_minutes:.1f} min**, "
             f"{ckpt['steps']} talker steps. Train: {len(result['train'])} clips of spk1-spk4; "
             f"held out: {len(split.heldout)} utterances of the same speakers, and the "
             f"{len(split.unseen)} clips of the test speakers spk5-spk6.\n",
             "AU occurrence F1 of the frames, read by the judge (an AU classifier trained on real "
             "frames only, never used as a loss):\n",
             *head, *f1_rows(scores), "",
             "The same on the test speakers (faces and voices never trained on):", "",
             *head, *f1_rows(unseen)]
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
