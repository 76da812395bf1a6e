"""The paper's fusion comparison (Table 3) on the samples: every fusion, the same budget.

As in the paper's Table 3 the AU stream is left out (no Audio2AU), so the fusions differ only in
how they combine identity and audio over time: GRU, TCN, Mh-att+TCN (attention over frames),
Co-att+TCN (needs the AU stream: run with Audio2AU) and TCSAN (attention within each frame).
Each talker trains for the same wall time on the samples' training utterances (spk1-spk4) and
is scored on held-out utterances: PSNR of the frames and AU occurrence F1 read by the judge of
``benchmarks/talker_tiny.py`` (and that F1 on the test speakers spk5-spk6, never trained on).

    python benchmarks/fusions.py [--minutes 1.5] [--work /tmp/coursekit_tiny]
"""

import argparse
import os
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=1.5, help="budget per fusion")
    parser.add_argument("--work", default="/tmp/coursekit_tiny")
    parser.add_argument("--out", default="benchmarks/fusions.md")
    args = parser.parse_args()

    import numpy as np

    from _setup import tiny_samples
    from coursekit.data.dataset import TalkingFaceDataset, mfcc_stats
    from coursekit.evaluate import evaluate_talker, generate
    from coursekit.metrics import psnr
    from coursekit.models import FUSIONS, TalkerConfig
    from coursekit.train.au_classifier import load_au_classifier
    from coursekit.train.talker import load_talker, train_talker

    work = Path(args.work)
    samples = tiny_samples(work, preprocess=False)  # talker_tiny.py preprocessed it
    data, cfg, split = samples.data, samples.cfg, samples.split
    train, test = split.train, split.heldout
    judge = load_au_classifier(work / "judge.pt")
    stats = mfcc_stats(train, data)
    rows = []
    for fusion in FUSIONS:
        model_cfg = TalkerConfig.tiny(fusion=fusion, use_audio2au=fusion == "coatt_tcn")
        path = work / "fusions" / f"{fusion}.pt"
        start = time.time()
        train_cfg = replace(cfg.talker, max_minutes=args.minutes, epochs=1000, w_au=0.0)
        train_talker(data, train, path, model_cfg, train_cfg, mfcc_stats=stats, progress=False)
        model, ckpt = load_talker(path)
        scores = evaluate_talker(model, judge, data, test, train, stats)
        unseen = evaluate_talker(model, judge, data, split.unseen, train, stats)
        items = TalkingFaceDataset(data, test, fields=("frames", "identity", "mfcc"),
                                   normalize_mfcc=stats)
        quality = [psnr(generate(model, it["identity"], it["mfcc"]).numpy(), it["frames"].numpy())
                   for it in (items[i] for i in range(len(items)))]
        rows.append((fusion, ckpt["steps"], time.time() - start, float(np.mean(quality)),
                     scores["model"]["f1"].mean(), scores["shuffled audio"]["f1"].mean(),
                     unseen["model"]["f1"].mean()))
        print(rows[-1])
    lines = ["# Fusion comparison on the samples (paper Table 3, tiny config)\n",
             f"Same wall-time budget per fusion: {args.minutes} min on 2 CPU cores; no Audio2AU "
             "stream except Co-att+TCN, which attends between the audio and AU streams. "
             f"Held out: {len(test)} utterances of spk1-spk4; test speakers: the "
             f"{len(split.unseen)} clips of spk5-spk6.\n",
             "| fusion | steps | PSNR (dB) | AU F1 (judge) | AU F1, shuffled audio "
             "| AU F1, test speakers |", "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {f} | {s} | {p:.2f} | {a:.3f} | {b:.3f} | {u:.3f} |"
              for f, s, _, p, a, b, u in rows]
    text = "\n".join(lines) + "\n"
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
