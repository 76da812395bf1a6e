"""The tiny lip-sync expert on the samples: train it on CPU, then check it on held-out clips.

1. preprocess ``data_samples/`` at 64 px with its ground truth (skipped when already done);
2. train :class:`coursekit.models.syncnet.SyncNet` (``SyncNetConfig.tiny()``) on the training
   utterances of spk1-spk4 (:func:`coursekit.train.talker.pipeline_split`), one thread, timed;
3. sync scores (:func:`coursekit.metrics.sync_scores`) of the held-out utterances of the same
   speakers and of every clip of the unseen speakers spk5-spk6: real frames with their own
   audio, with another utterance's audio (shuffled) and delayed by 5 frames.

Writes a Markdown report (``--out``, default ``benchmarks/syncnet_tiny.md``); with ``--save``
copies the checkpoint there (``coursekit/assets/tiny/syncnet.pt``) and records the command in
``coursekit/assets/README.md``. (``coursekit train syncnet tiny --data DIR --out FILE.pt``
trains the same expert from the command line.)

    python benchmarks/syncnet_tiny.py [--steps 600] [--minutes M] [--work /tmp/coursekit_tiny] [--save coursekit/assets/tiny]
"""

import argparse
import os
import platform
import re
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

README_SECTION = "### syncnet.pt"


def _table(results: dict) -> list[str]:
    lines = ["| condition | offset within ±1 of expected | LSE-D (lower: better) | "
             "LSE-C (higher: better) |", "|---|---:|---:|---:|"]
    for name, s in results["summary"].items():
        expected = "5" if name == "shifted" else "0"
        lines.append(f"| {name} (expected offset {expected}) | {s['offset_ok']:.3f} | "
                     f"{s['distance']:.3f} | {s['confidence']:.3f} |")
    return lines


def _per_clip(results: dict) -> list[str]:
    lines = ["| clip | real: offset, LSE-D, LSE-C | shuffled | shifted by 5 |", "|---|---|---|---|"]
    for n, key in enumerate(results["clips"]):
        cells = [f"{r[n]['offset']:+d}, {r[n]['distance']:.3f}, {r[n]['confidence']:.3f}"
                 for r in (results["real"], results["shuffled"], results["shifted"])]
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    return lines


def _update_readme(path: Path, text: str) -> None:
    """Replace (or append) this script's section of the README at ``path``."""
    old = path.read_text() if path.is_file() else ""
    if README_SECTION + "\n" in old:
        head, _, rest = old.partition(README_SECTION + "\n")
        after = re.search(r"\n#{1,3} ", rest)  # the next heading
        old = head + (rest[after.start():].lstrip("\n") if after else "")
    path.write_text(old.rstrip("\n") + ("\n\n" if old.strip() else "") + text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--minutes", type=float, default=None,
                        help="training time budget (default: none, all --steps are run)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--work", default="/tmp/coursekit_tiny")
    parser.add_argument("--out", default="benchmarks/syncnet_tiny.md")
    parser.add_argument("--save", help="copy syncnet.pt to this folder, e.g. coursekit/assets/tiny")
    args = parser.parse_args()

    import coursekit  # noqa: F401  (before torch)
    import torch

    from _setup import tiny_samples
    from coursekit.assets import ASSETS_DIR
    from coursekit.models.syncnet import SyncNetConfig
    from coursekit.runtime import RunContext
    from coursekit.train.syncnet import (SyncNetTrainConfig, evaluate_syncnet, load_syncnet,
                                         train_syncnet)

    work = Path(args.work)
    samples = tiny_samples(work, threads=args.threads)
    data, split = samples.data, samples.split
    train, held, unseen = split.train, split.heldout, split.unseen
    model_cfg = SyncNetConfig.tiny()
    RunContext(device="cpu", threads=args.threads).apply()
    cfg = SyncNetTrainConfig.tiny()
    cfg.max_steps, cfg.max_minutes = args.steps, args.minutes
    result = train_syncnet(data, train, work / "syncnet.pt", model_cfg, cfg)
    expert, meta = load_syncnet(result["checkpoint"])
    stats = (meta["mfcc_mean"], meta["mfcc_std"])
    held_res = evaluate_syncnet(expert, data, held, stats)
    unseen_res = evaluate_syncnet(expert, data, unseen, stats)
    hist = result["history"]
    n_params = sum(p.numel() for p in expert.parameters())
    command = f"python benchmarks/syncnet_tiny.py --steps {args.steps}"
    if args.minutes is not None:
        command += f" --minutes {args.minutes}"
    if args.save:
        command += f" --save {args.save}"

    lines = ["# Tiny lip-sync expert (SyncNet-style) on the samples\n",
             f"Machine: {platform.machine()} {os.cpu_count()} cores, torch {torch.__version__}, "
             f"{args.threads} thread(s). Date: {time.strftime('%Y-%m-%d')}. "
             f"`SyncNetConfig.tiny()` ({n_params / 1e6:.2f} M parameters), 64 px faces, trained "
             f"in **{result['seconds'] / 60:.1f} min** ({result['steps']} steps of "
             f"{cfg.batch_size} windows, {cfg.hard_negatives} shifted-audio negatives each). "
             f"Train: {len(train)} clips of spk1-spk4. Command: `{command}`.\n",
             f"Training loss (InfoNCE) {hist['loss'][0]:.3f} -> {hist['loss'][-1]:.3f}; "
             f"positive beats all shifted negatives in {hist['acc'][0]:.2f} -> "
             f"{hist['acc'][-1]:.2f} of the training windows.\n",
             "Sync scores (offsets -15..15 frames; distances between unit embeddings, in [0, 2]). "
             "*shuffled*: the frames with the next clip's audio; *shifted*: the frames delayed by "
             "5 frames, their own audio.\n",
             f"## Held-out utterances of the training speakers ({len(held)} clips)\n",
             *_table(held_res), "", *_per_clip(held_res), "",
             f"## Unseen speakers spk5-spk6 ({len(unseen)} clips)\n",
             *_table(unseen_res), ""]
    text = "\n".join(lines)
    Path(args.out).write_text(text)
    print(text)
    if args.save:
        import shutil

        save = Path(args.save)
        save.mkdir(parents=True, exist_ok=True)
        shutil.copy2(result["checkpoint"], save / "syncnet.pt")
        s = held_res["summary"]
        _update_readme(ASSETS_DIR / "README.md", (
            f"{README_SECTION}\n\nThe lip-sync expert (`coursekit.train.syncnet.load_syncnet`), "
            f"trained on the training utterances of spk1-spk4 at 64 px by `{command}` "
            f"({time.strftime('%Y-%m-%d')}, {result['seconds'] / 60:.1f} min on one CPU thread). "
            f"Held-out utterances: offset 0 found for {s['real']['offset_ok']:.0%} of the clips, "
            f"a 5-frame delay for {s['shifted']['offset_ok']:.0%}; LSE-D / LSE-C "
            f"{s['real']['distance']:.3f} / {s['real']['confidence']:.3f} with their own audio, "
            f"{s['shuffled']['distance']:.3f} / {s['shuffled']['confidence']:.3f} with another "
            f"utterance's. Report: benchmarks/syncnet_tiny.md.\n"))


if __name__ == "__main__":
    main()
