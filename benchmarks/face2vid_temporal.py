"""Face2Vid's temporal link on the samples: does the flow loss lower flicker at equal lip sync?

Two tiny ``motion="warp"``, ``temporal="flow"`` talkers train on the training utterances of
spk1-spk4 at 64 px (:mod:`_setup`'s split), same seed and steps, one with the temporal loss
(``w_temp > 0``) and one without; the shipped Audio2AU, AU classifier and sync expert
(``coursekit/assets/tiny``) are reused. Held-out clips (every 5th utterance of spk1-spk4 and
the test speakers spk5-spk6), generated autoregressively from their tracked landmarks'
warped identity, are scored by

* mouth-box change between consecutive frames on silent stretches (``speech.npy`` False);
* warping error (flicker) with the optical flow of the *real* clip, whole frame and mouth box;
* PSNR against the real frames (also with teacher forcing, the previous real frame given);
* LSE-D / LSE-C of the course's sync expert (:func:`coursekit.evaluate.scorers.sync`).

    python benchmarks/face2vid_temporal.py train --w-temp 1.5 --steps 150   # one model
    python benchmarks/face2vid_temporal.py report                           # writes the .md

``train`` runs are independent (run the two side by side, one thread each).
"""

import argparse
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
TINY = Path("coursekit/assets/tiny")
BOX = (0.62, 0.9, 0.3, 0.7)  # mouth box: rows y0-y1, columns x0-x1, fractions of the side


def samples(args):
    """``(data folder, split)``: the course's split with test speakers spk5, spk6."""
    from _setup import TEST_SPEAKERS
    from coursekit.train.talker import PipelineConfig, pipeline_split

    cfg = PipelineConfig.tiny()
    cfg.test_speakers = TEST_SPEAKERS
    return Path(args.data), pipeline_split(args.data, cfg)


def train(args) -> None:
    from dataclasses import replace

    import torch

    from coursekit.checkpoint import read_checkpoint
    from coursekit.models.config import TalkerConfig
    from coursekit.train.talker import TalkerTrainConfig, talker_trainer

    data, split = samples(args)
    torch.set_num_threads(1)
    a2a = read_checkpoint(TINY / "audio2au.pt")
    stats = (a2a["meta"]["mfcc_mean"].numpy(), a2a["meta"]["mfcc_std"].numpy())
    model_cfg = TalkerConfig.tiny(motion="warp", temporal="flow")
    cfg = replace(TalkerTrainConfig.tiny(), max_steps=args.steps, max_minutes=None,
                  w_temp=args.w_temp, ckpt_every=10_000)
    name = f"flow_wtemp{args.w_temp:g}"
    run = Path(args.work) / name
    trainer = talker_trainer(data, split.train, run, model_cfg, cfg,
                             mfcc_stats=stats, audio2au_state=a2a["model"],
                             au_classifier=TINY / "au_classifier.pt", progress=False)
    result = trainer.fit()
    trainer.export(run.with_suffix(".pt"), model=trainer.model.talker)
    print(f"{name}: {result['steps']} steps in {result['seconds'] / 60:.1f} min")


def mouth_box(size: int):
    import torch

    y0, y1, x0, x1 = (int(f * size) for f in BOX)
    box = torch.zeros(size, size)
    box[y0:y1, x0:x1] = 1
    return box


def score_clip(frames, real, flows, silent, mfcc_raw, scorers) -> dict:
    """Metrics of one clip's frames ``(T, 3, S, S)`` in [-1, 1] (0-1 scale for changes)."""
    from coursekit.evaluate.scorers import sync
    from coursekit.metrics import frame_change, psnr, warping_error

    box = mouth_box(frames.shape[-1])
    pairs = silent.clone()
    pairs[1:] &= silent[:-1]
    quiet = box[None] * pairs[:, None, None].float()  # (T, S, S): silent pairs, mouth box
    row = {"silent_change": frame_change(frames, quiet) / 2 if pairs[1:].any() else float("nan"),
           "warp_err": warping_error(frames, flows) / 2,
           "warp_err_mouth": warping_error(frames, flows, box) / 2,
           "psnr": psnr(frames, real)}
    scores = sync(scorers.expert, frames, scorers.sync_mfcc(mfcc_raw))
    row["lse_d"] = scores["distance"] if scores else float("nan")
    row["lse_c"] = scores["confidence"] if scores else float("nan")
    return row


def report(args) -> None:
    import numpy as np
    import torch

    from coursekit.checkpoint import load_checkpoint
    from coursekit.data.dataset import TalkingFaceDataset
    from coursekit.data.flow import frame_flows
    from coursekit.evaluate.scorers import load_scorers
    from coursekit.infer import to_uint8

    root, split = samples(args)
    torch.set_num_threads(1)
    scorers = load_scorers(None, TINY / "syncnet.pt", 64)
    runs = sorted(Path(args.work).glob("flow_wtemp*.pt"))
    models = {p.stem: load_checkpoint(p, kind="talker") for p in runs}
    stats = next(iter(models.values())).meta
    stats = (stats["mfcc_mean"].numpy(), stats["mfcc_std"].numpy())
    fields = ("frames", "identity", "mfcc", "warped", "mouth_mask", "previous", "speech")
    parts = {"held-out utterances (spk1-4)": split.heldout,
             "test speakers (spk5-6)": split.unseen}
    rows = {}
    for part, clips in parts.items():
        data = TalkingFaceDataset(root, clips, None, fields=fields, normalize_mfcc=stats)
        for i in range(len(data)):
            it = data[i]
            real = it["frames"]
            flows = torch.from_numpy(frame_flows(to_uint8(real)))
            silent = ~it["speech"]
            mfcc_raw = np.load(data.clip_dir(i) / "mfcc.npy")
            kw = {"warped": it["warped"][None], "mouth_mask": it["mouth_mask"][None]}
            cand = {"real frames": real, "warped identity": it["warped"]}
            with torch.no_grad():
                for name, loaded in models.items():
                    m = loaded.model.eval()
                    cand[name] = m(it["identity"][None], it["mfcc"][None], **kw)["frames"][0]
                    tf = m(it["identity"][None], it["mfcc"][None], previous=it["previous"][None],
                           **kw)["frames"][0]
                    rows.setdefault((part, name + " (teacher-forced)"), []).append(
                        score_clip(tf, real, flows, silent, mfcc_raw, scorers))
            for name, frames in cand.items():
                rows.setdefault((part, name), []).append(
                    score_clip(frames, real, flows, silent, mfcc_raw, scorers))
    write(args, rows, models, parts)


def paired(rows, part: str, keys) -> list[str]:
    """Each temporal-loss model against ``flow_wtemp0`` clip by clip (autoregressive rows):
    the mean relative change of each measure and on how many clips it is lower."""
    import numpy as np

    base = rows.get((part, "flow_wtemp0"))
    out = []
    for (p, name), vals in rows.items():
        if p != part or base is None or not name.startswith("flow_wtemp") or "(" in name \
                or name == "flow_wtemp0":
            continue
        cells = []
        for k in keys:
            a, b = np.array([v[k] for v in base]), np.array([v[k] for v in vals])
            ok = np.isfinite(a) & np.isfinite(b)
            cells.append(f"{k} {100 * (b[ok].mean() / a[ok].mean() - 1):+.1f} % (lower on "
                         f"{int((b[ok] < a[ok]).sum())} of {int(ok.sum())})")
        out.append(f"Paired, `{name}` against `flow_wtemp0`: " + "; ".join(cells) + ".")
    return out


def write(args, rows, models, parts) -> None:
    import numpy as np
    import torch

    keys = ("silent_change", "warp_err", "warp_err_mouth", "psnr", "lse_d", "lse_c")
    head = ("| clips | frames | mouth change, silent | warping error | warping error, mouth "
            "| PSNR dB | LSE-D | LSE-C |")
    lines = ["# Face2Vid temporal link on the samples (64 px)\n",
             f"Machine: {platform.machine()} {os.cpu_count()} cores, torch {torch.__version__}, "
             f"one thread per run. Date: {time.strftime('%Y-%m-%d')}.\n"]
    for name, loaded in models.items():
        tc = loaded.meta["train_config"]
        lines.append(f"- `{name}`: TalkerConfig.tiny(motion='warp', temporal='flow'), "
                     f"{loaded.meta['steps']} steps (batch {tc['batch_size']} x {tc['seq_len']} "
                     f"frames), {loaded.meta['seconds'] / 60:.1f} min, w_temp={tc['w_temp']}")
    lines += ["", "Generated autoregressively (each frame reads the one generated before it, "
              "moved by the warped identity's flow) unless marked teacher-forced (the previous "
              "real frame, flow-warped, is given). Changes and warping errors are mean absolute "
              "differences on a 0-1 scale; the warping error uses the optical flow of the real "
              "clip; the mouth box is rows 62-90 %, columns 30-70 % of the crop; silent: pairs "
              "of frames outside words (`speech.npy`). LSE by `coursekit/assets/tiny/syncnet.pt` "
              "(offsets up to 15 frames). Means over clips.", ""]
    for part, clips in parts.items():
        lines += [f"## {part}: {len(clips)} clips", "", head, "|---|---|" + "---:|" * len(keys)]
        for (p, name), vals in rows.items():
            if p != part:
                continue
            means = [np.nanmean([v[k] for v in vals]) for k in keys]
            cells = [f"{m:.4f}" for m in means[:3]] + [f"{means[3]:.2f}"] + [f"{m:.3f}" for m in means[4:]]
            lines.append(f"| {len(vals)} | {name} | " + " | ".join(cells) + " |")
        lines += [""] + paired(rows, part, keys) + [""]
    text = "\n".join(lines) + "\n"
    Path(args.out).write_text(text)
    print(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("train", "report"))
    parser.add_argument("--data", default="/tmp/proc64", help="the samples preprocessed at "
                        "64 px with ground truth (benchmarks/talker_tiny.py makes them)")
    parser.add_argument("--work", default="/tmp/face2vid")
    parser.add_argument("--w-temp", type=float, default=1.5)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--out", default="benchmarks/face2vid_temporal.md")
    args = parser.parse_args()
    train(args) if args.what == "train" else report(args)


if __name__ == "__main__":
    main()
