"""Audio2AU on voices it never heard: training variants scored on GRID's unseen speakers.

The split is ``benchmarks/motion_probe.py``'s: s1's training utterances (coursekit's holdout
rule) and the three trainable ``others`` clips train; the unseen speakers' clips brbk7n and
lbax4n and s1's 25 held-out utterances are scored. Audio2AU's validation clips (the epoch
choice and the probability -> intensity quantile map) are the same 8 s1 clips in every
variant, unaugmented. Variants (``--variant``, one per run; each trains the ``cpu`` preset
for ``--steps`` steps or ``--minutes``, whichever ends first):

* ``baseline``: the recorded clips only;
* ``vtlp``: plus ``--copies`` copies of every training clip with a random VTLP factor
  (:mod:`coursekit.train.audio_augment`), no other change;
* ``voices``: VTLP plus a random EQ tilt and low white noise;
* ``vtlp-mild``: 2 copies per clip, VTLP in 0.9-1.1;
* ``samples``: the recorded clips plus the 60 synthetic sample clips (6 voices, exact AUs);
* ``val-others``: the three trainable ``others`` clips leave the training clips and join
  the validation clips (another voice picks each AU net's epoch and fits the quantile map);
* ``others-x10``, ``samples+others-x10``: the three trainable ``others`` clips weigh ten
  times more (10 exact copies each).

Scoring is on the driving landmarks (no warp, no tracking): the shipped motion model
(``--motion``) turns the mapped AU intensities into jaw and mouth displacements of the
clip's first aligned frame; their mouth opening (inner-lip gap / mouth width) is compared
with the real clip's: Pearson correlation and spread ratio (std generated / std real).
``other audio``: each clip driven by another held-out clip's audio
(:func:`coursekit.evaluate.rows.shuffle_partners`: the two unseen clips swap).

    python benchmarks/audio2au_voices.py --variant vtlp --seed 0     # train one (cached)
    python benchmarks/audio2au_voices.py --report                    # table of all trained
    python benchmarks/audio2au_voices.py --variant samples --seed 1 --curve 40   # + snapshots
    python benchmarks/audio2au_voices.py --report --curve 40         # their learning curve
"""

import argparse
import datetime
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from motion_probe import relative_motion, score, splits  # noqa: E402

VOICES = {"copies": 4, "vtlp": (0.8, 1.2), "tilt": 0.3, "noise": 0.5, "snr_db": (20.0, 40.0)}
OTHERS_UP = {"copies": 10, "vtlp": (1.0, 1.0), "tilt": 0.0, "noise": 0.0}
VARIANTS = {  # name: (voice augmentation of every clip, with the samples, the others clips
    "baseline": (None, False, False, None),          # validate, extra copies of the others)
    "vtlp": ({**VOICES, "tilt": 0.0, "noise": 0.0}, False, False, None),
    "vtlp-mild": ({"copies": 2, "vtlp": (0.9, 1.1), "tilt": 0.0, "noise": 0.0}, False, False, None),
    "voices": (VOICES, False, False, None),
    "samples": (None, True, False, None),
    "val-others": (None, False, True, None),
    "others-x10": (None, False, False, OTHERS_UP),
    "samples+others-x10": (None, True, False, OTHERS_UP),
}


def train_variant(args, name: str, seed: int) -> Path:
    """Train one variant (skipped when its checkpoint exists); returns the checkpoint."""
    from coursekit.data.splits import hashed_utterance_split
    from coursekit.train.audio2au import (
        MODEL_PRESETS,
        Audio2AUTrainConfig,
        train_audio2au,
    )
    from coursekit.train.audio_augment import VoiceAugmentConfig, augment_voices

    voices, with_samples, val_others, others_up = VARIANTS[name]
    out = Path(args.run) / f"{name}_s{seed}"
    if (out / "audio2au.pt").is_file():
        return out / "audio2au.pt"
    train, samples, _, _ = splits(args.proc, args.samples_proc)
    drawn = hashed_utterance_split(train, test=0.1, seed=0)  # motion_probe's validation clips
    if val_others:  # the three trainable others clips choose the epochs and fit the map
        drawn.test.extend(c for c in drawn.train if c["speaker"] == "others")
        drawn.train[:] = [c for c in drawn.train if c["speaker"] != "others"]
    voices = None if voices is None else {**voices, "copies": args.copies or voices["copies"],
                                          "seed": seed}
    cfg = Audio2AUTrainConfig(epochs=1000, max_steps=args.steps, max_minutes=args.minutes,
                              seed=seed, model=dict(MODEL_PRESETS["cpu"]), progress=False,
                              voices=voices)
    extra = [] if others_up is None else augment_voices(
        args.proc, [c for c in drawn.train if c["speaker"] == "others"], out / "others",
        VoiceAugmentConfig(**{**others_up, "seed": seed}))
    snapshots = {}

    def snapshot(step, trainer):  # the weights every --curve steps (a learning curve)
        if args.curve and step % args.curve == 0:
            snapshots[step] = {k: v.detach().cpu().contiguous().clone()
                               for k, v in trainer.model.state_dict().items()}

    summary = train_audio2au(args.proc, out, cfg, val_clips=drawn.test, on_step=snapshot,
                             clips=drawn.train + extra + (samples if with_samples else []))
    if snapshots:
        import torch

        final = torch.load(summary["checkpoint"], map_location="cpu", weights_only=False)
        (out / "curve").mkdir(exist_ok=True)
        for step, weights in snapshots.items():
            key = "model" if "model" in final else "state_dict"
            dtypes = {k: v.dtype for k, v in final[key].items()}
            torch.save({**final, key: {k: v.to(dtypes[k]) for k, v in weights.items()}},
                       out / "curve" / f"step_{step:05d}.pt")
    print(f"{name} seed {seed}: {summary['n_train']} clips, {summary['epochs_run']} epochs, "
          f"stopped by {summary['stopped']}, {summary['seconds'] / 60:.1f} min, best epochs "
          f"{summary['best_epoch']}", flush=True)
    return Path(summary["checkpoint"])


def evaluate(args, checkpoint: Path, motion) -> dict:
    """Per held-out clip ``(own corr, own spread, other corr, other spread)``."""
    from coursekit import warp
    from coursekit.data.splits import clip_key
    from coursekit.metrics import mouth_opening
    from coursekit.train.motion import fit_audio_map, own_and_other_intensities

    train, _, unseen, s1_held = splits(args.proc, args.samples_proc)
    qmap = fit_audio_map(checkpoint, args.proc, train, train)
    held = unseen + s1_held
    own, other = own_and_other_intensities(checkpoint, args.proc, held, qmap)
    rows = {}
    for clip, a, b in zip(held, own, other):
        source = np.load(Path(clip["path"]) / "aligned_landmarks.npy")[0]
        real = mouth_opening(np.load(Path(clip["path"]) / "landmarks.npy"))
        drive = [mouth_opening(warp.displace(source, relative_motion(motion, x))) for x in (a, b)]
        rows[clip_key(clip)] = score(drive[0], real) + score(drive[1], real)
    return rows


def summarise(rows: dict) -> dict:
    """Medians over the unseen and the s1 clips, and the unseen clips one by one."""
    unseen = {k: v for k, v in rows.items() if k.startswith("others/")}
    s1 = [v for k, v in rows.items() if k.startswith("s1/")]
    med = np.median(list(unseen.values()), axis=0)
    return {"unseen": med, "lead": med[0] - med[2], "s1": np.median(s1, axis=0),
            "per_clip": {k.split("/")[1]: v for k, v in sorted(unseen.items())}}


def report(args) -> str:
    import torch

    from coursekit.checkpoint import load_checkpoint

    motion = load_checkpoint(args.motion, kind="motion").model
    found = sorted(Path(args.run).glob("*_s*/audio2au.pt"))
    if args.probe and Path(args.probe).is_file():
        found = [Path(args.probe)] + found
    lines = [("| variant | seed | train clips | epochs | unseen corr | brbk7n | lbax4n "
              "| other audio | lead | unseen spread | s1 corr | s1 spread | s1 other audio |"),
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    by_variant = {}
    for ckpt in found:
        meta = torch.load(ckpt, map_location="cpu", weights_only=False)
        meta = meta.get("meta", meta)
        name, seed = (("motion_probe checkpoint", "-") if ckpt == Path(args.probe)
                      else tuple(ckpt.parent.name.rsplit("_s", 1)))
        s = summarise(evaluate(args, ckpt, motion))
        by_variant.setdefault(name, []).append(s)
        pc = s["per_clip"]
        lines.append(f"| {name} | {seed} | {len(meta['train_clips'])} | {len(meta['history'])} "
                     f"| {s['unseen'][0]:.2f} | {pc['brbk7n'][0]:.2f} | {pc['lbax4n'][0]:.2f} "
                     f"| {s['unseen'][2]:.2f} | {s['lead']:+.2f} | {s['unseen'][1]:.2f} "
                     f"| {s['s1'][0]:.2f} | {s['s1'][1]:.2f} | {s['s1'][2]:.2f} |")
        print(lines[-1], flush=True)
    means = ["| variant | runs | mean unseen corr | mean lead | mean s1 corr |", "| --- | --- | --- | --- | --- |"]
    for name, runs in by_variant.items():
        means.append(f"| {name} | {len(runs)} | {np.mean([r['unseen'][0] for r in runs]):.2f} "
                     f"| {np.mean([r['lead'] for r in runs]):+.2f} "
                     f"| {np.mean([r['s1'][0] for r in runs]):.2f} |")
    return "\n".join(lines) + "\n\nMeans over seeds:\n\n" + "\n".join(means) + "\n"


def curve(args) -> str:
    """Unseen and s1 correlations of every kept snapshot (``--curve`` runs)."""
    from coursekit.checkpoint import load_checkpoint

    motion = load_checkpoint(args.motion, kind="motion").model
    lines = ["| run | step | unseen corr | brbk7n | lbax4n | other audio | s1 corr |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for ckpt in sorted(Path(args.run).glob("*_s*/curve/step_*.pt")):
        s = summarise(evaluate(args, ckpt, motion))
        lines.append(f"| {ckpt.parent.parent.name} | {int(ckpt.stem[5:])} | {s['unseen'][0]:.2f} "
                     f"| {s['per_clip']['brbk7n'][0]:.2f} | {s['per_clip']['lbax4n'][0]:.2f} "
                     f"| {s['unseen'][2]:.2f} | {s['s1'][0]:.2f} |")
        print(lines[-1], flush=True)
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proc", default="/tmp/grid_proc")
    parser.add_argument("--samples-proc", default="/tmp/proc112")
    parser.add_argument("--run", default="/tmp/voices/runs")
    parser.add_argument("--motion", default="coursekit/assets/grid/motion.pt")
    parser.add_argument("--probe", default="/tmp/motion_probe/audio2au/audio2au.pt",
                        help="also score this checkpoint (motion_probe's, same split)")
    parser.add_argument("--variant", choices=sorted(VARIANTS), action="append", default=[])
    parser.add_argument("--seed", type=int, action="append", default=[])
    parser.add_argument("--copies", type=int, default=0, help="override the copies per clip")
    parser.add_argument("--steps", type=int, default=None, help="training steps")
    parser.add_argument("--minutes", type=float, default=8.0, help="training time budget")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--report", action="store_true", help="score every trained variant")
    parser.add_argument("--curve", type=int, default=0,
                        help="training: keep the weights every N steps; --report: score them")
    parser.add_argument("--out", default="benchmarks/audio2au_voices.md")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    t0 = time.time()
    for name in args.variant:
        for seed in args.seed or [0]:
            train_variant(args, name, seed)
    if args.report and args.curve:
        print(curve(args))
    elif args.report:
        table = report(args)
        print(table)
        notes = Path(args.out).read_text().split("## Notes", 1) if Path(args.out).is_file() else []
        Path(args.out).write_text(
            "# Audio2AU on unseen voices\n\nMade by `benchmarks/audio2au_voices.py --report` "
            f"({datetime.date.today()}, {(time.time() - t0) / 60:.0f} min to score). "
            "Landmark-level mouth-opening correlation and spread ratio "
            "(motion model `" + args.motion + "`); unseen: median of brbk7n and lbax4n; "
            "lead: unseen correlation minus the other-audio baseline's; s1: median of its 25 "
            "held-out utterances.\n\n" + table
            + ("\n## Notes" + notes[1] if len(notes) > 1 else ""))


if __name__ == "__main__":
    main()
