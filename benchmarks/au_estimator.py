"""Validate the landmark AU estimator (:func:`coursekit.au.estimate_aus`).

1. Sample corpus (exact ground truth): per-AU occurrence F1, accuracy and Pearson r of the
   intensities, for the held-out speakers (spk5, spk6; the weights were fitted on spk1-spk4)
   and for all speakers, from dlib-tracked landmarks (``face.track_landmarks`` on the videos)
   and from the ground-truth landmarks, with the neutral face estimated per clip (the default)
   or per speaker (:func:`coursekit.au.neutral_features` over the speaker's clips).
2. Real GRID clips (no AU ground truth): AU25/AU26 occurrence rate inside words versus inside
   ``sil`` segments of the ``.align`` files (speaker s1, all clips). The other speakers have no
   ``.align`` files, so their words/silence come from the audio energy of each video frame
   (speech: above the midpoint between the clip's 10th and 95th percentile in dB; silence:
   below the first quarter); the same proxy is also reported for s1 as a check.

    python benchmarks/au_estimator.py [--grid DIR] [--out benchmarks/au_estimator.md]

``--grid`` defaults to $COURSEKIT_GRID_DIR; without either, the GRID part is skipped. Writes
the Markdown tables to ``--out`` and the numbers, one row per condition and AU, to the same
name with ``.csv``.
"""

import argparse
import csv
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from coursekit import au  # noqa: E402
from coursekit.data import corpus  # noqa: E402
from coursekit.face import LandmarkDetector, track_landmarks  # noqa: E402
from coursekit.video import read_video  # noqa: E402

HELD_OUT = ("spk5", "spk6")


def scores(pred: np.ndarray, true: np.ndarray) -> dict[str, np.ndarray]:
    """Per-AU metrics of ``(T, 5)`` predicted vs true intensities (occurrence at the threshold)."""
    p, t = pred >= au.OCCURRENCE_THRESHOLD, true >= au.OCCURRENCE_THRESHOLD
    tp = (p & t).sum(0)
    f1 = np.where(p.sum(0) + t.sum(0) > 0, 2 * tp / np.maximum(p.sum(0) + t.sum(0), 1), 1.0)
    r = np.array([np.corrcoef(pred[:, k], true[:, k])[0, 1] if pred[:, k].std() > 0 else 0.0
                  for k in range(len(au.AUS))])
    return {"f1": f1, "accuracy": (p == t).mean(0), "pearson": r, "true_rate": t.mean(0),
            "pred_rate": p.mean(0)}


def sample_rows(detector) -> list[dict]:
    clips = corpus.list_clips()
    data = []
    for clip in clips:
        gt = corpus.read_ground_truth(clip.ground_truth)
        frames, _ = read_video(clip.video)
        dlib = track_landmarks(frames, detector, source=str(clip.video))
        data.append((clip.speaker, {"dlib": dlib, "ground truth": gt["landmarks"]}, gt["aus"]))
    rows = []
    for subset, speakers in (("held-out spk5-6", HELD_OUT), ("all spk1-6", None)):
        chosen = [d for d in data if speakers is None or d[0] in speakers]
        for source in ("dlib", "ground truth"):
            for mode in ("clip", "speaker"):
                neutral = {s: au.neutral_features([d[1][source] for d in chosen if d[0] == s])
                           for s in {d[0] for d in chosen}} if mode == "speaker" else {}
                pred = np.concatenate([au.estimate_aus(d[1][source], neutral.get(d[0]))[0]
                                       for d in chosen])
                res = scores(pred, np.concatenate([d[2] for d in chosen]))
                for k, name in enumerate(au.AUS):
                    rows.append({"set": subset, "landmarks": source, "neutral": mode, "au": name,
                                 "frames": len(pred),
                                 **{m: round(float(v[k]), 4) for m, v in res.items()}})
    return rows


def _masks_from_align(path: Path, n: int, fps: float) -> tuple[np.ndarray, np.ndarray]:
    words = corpus.read_align(path)
    t = np.arange(n) / fps
    sil = np.zeros(n, bool)
    for start, end, word in words:
        if word == "sil":
            sil |= (t >= start) & (t < end)
    return corpus.speech_mask(words, n, fps), sil


def _masks_from_audio(video: Path, n: int, fps: float) -> tuple[np.ndarray, np.ndarray]:
    from coursekit.audio import load_audio

    audio, sr = load_audio(video, 16000)
    hop = sr / fps
    db = np.array([10 * np.log10(np.mean(audio[int(k * hop):int((k + 1) * hop)] ** 2) + 1e-12)
                   if int(k * hop) < len(audio) else -120.0 for k in range(n)])
    lo, hi = np.percentile(db, 10), np.percentile(db, 95)
    return db > lo + 0.5 * (hi - lo), db < lo + 0.25 * (hi - lo)


def grid_rows(grid: Path, detector) -> list[dict]:
    groups = {"s1 (.align)": [], "s1 (audio energy)": [], "others (audio energy)": []}
    for video in sorted(grid.glob("*/video/*.mpg")):
        frames, fps = read_video(video)
        _, occ = au.estimate_aus(track_landmarks(frames, detector, source=str(video)))
        align = video.parent.parent / "align" / f"{video.stem}.align"
        if align.is_file():
            groups["s1 (.align)"].append((occ, *_masks_from_align(align, len(occ), fps)))
            groups["s1 (audio energy)"].append((occ, *_masks_from_audio(video, len(occ), fps)))
        else:
            groups["others (audio energy)"].append((occ, *_masks_from_audio(video, len(occ), fps)))
    rows = []
    for name, items in groups.items():
        if not items:
            continue
        occ = np.concatenate([i[0] for i in items])
        words, sil = np.concatenate([i[1] for i in items]), np.concatenate([i[2] for i in items])
        for k, au_name in enumerate(au.AUS):
            rows.append({"group": name, "clips": len(items), "au": au_name,
                         "speech_frames": int(words.sum()), "silence_frames": int(sil.sum()),
                         "rate_speech": round(float(occ[words, k].mean()), 4),
                         "rate_silence": round(float(occ[sil, k].mean()), 4)})
    return rows


def markdown(sample: list[dict], grid: list[dict], header: str) -> str:
    out = [header, ""]
    held = [r["f1"] for r in sample if (r["set"], r["landmarks"], r["neutral"])
            == ("held-out spk5-6", "dlib", "clip")]
    verdict = "met" if np.mean(held) >= 0.8 else "NOT met"
    out += [f"Target: mean occurrence F1 >= 0.8 on held-out speakers with dlib landmarks "
            f"(neutral per clip): {np.mean(held):.3f}, {verdict}.", ""]
    conditions = sorted({(r["set"], r["landmarks"], r["neutral"]) for r in sample},
                        key=lambda c: (c[0] != "held-out spk5-6", c[1] != "dlib", c[2]))
    for metric, title in (("f1", "Occurrence F1"), ("accuracy", "Occurrence accuracy"),
                          ("pearson", "Pearson r of intensities")):
        note = (f"; occurrence = intensity >= {au.OCCURRENCE_THRESHOLD:g}" if metric != "pearson"
                else "")
        out += [f"**{title}** (samples{note})", "",
                "| speakers | landmarks | neutral | " + " | ".join(au.AUS) + " | mean |",
                "|---|---|---|" + "---:|" * (len(au.AUS) + 1)]
        for cond in conditions:
            vals = [r[metric] for r in sample if (r["set"], r["landmarks"], r["neutral"]) == cond]
            out.append(f"| {cond[0]} | {cond[1]} | {cond[2]} | "
                       + " | ".join(f"{v:.2f}" for v in vals) + f" | **{np.mean(vals):.3f}** |")
        out.append("")
    if grid:
        out += ["**GRID** (dlib landmarks, neutral per clip): occurrence rate in speech vs silence",
                "", "| clips | n | speech / silence frames | AU | in speech | in silence | ratio |",
                "|---|---:|---:|---|---:|---:|---:|"]
        for r in grid:
            ratio = r["rate_speech"] / r["rate_silence"] if r["rate_silence"] > 0 else float("inf")
            out.append(f"| {r['group']} | {r['clips']} | {r['speech_frames']} / "
                       f"{r['silence_frames']} | {r['au']} | {r['rate_speech']:.3f} | "
                       f"{r['rate_silence']:.3f} | {ratio:.1f} |")
        out.append("")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", default=os.environ.get("COURSEKIT_GRID_DIR"),
                        help="folder of real GRID clips (default: $COURSEKIT_GRID_DIR)")
    parser.add_argument("--out", default=str(Path(__file__).with_name("au_estimator.md")))
    args = parser.parse_args()
    start = time.time()
    detector = LandmarkDetector()
    sample = sample_rows(detector)
    grid = grid_rows(Path(args.grid), detector) if args.grid else []
    header = (f"## Landmark AU estimator (`benchmarks/au_estimator.py`)\n\n"
              f"Machine: {platform.machine()} {os.cpu_count()} cores, Python "
              f"{platform.python_version()}, numpy {np.__version__}. Date: "
              f"{time.strftime('%Y-%m-%d')}. Run time {time.time() - start:.0f} s. GRID: "
              + ("every clip under `--grid` (GRID corpus, Cooke et al. 2006)." if grid
                 else "not given."))
    text = markdown(sample, grid, header)
    print(text)
    out = Path(args.out)
    out.write_text(text + "\n")
    with open(out.with_suffix(".csv"), "w", newline="") as f:
        keys = list(sample[0]) + [k for k in (grid[0] if grid else {}) if k not in sample[0]]
        writer = csv.DictWriter(f, fieldnames=["part"] + keys)
        writer.writeheader()
        for part, rows in (("samples", sample), ("grid", grid)):
            for r in rows:
                writer.writerow({"part": part, **r})
    print(f"wrote {out} and {out.with_suffix('.csv')}")


if __name__ == "__main__":
    main()
