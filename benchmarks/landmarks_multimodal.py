"""Multimodal landmark predictor on real GRID (speaker s1): text, audio, or both -> mouth.

Step one of Yu et al. 2020 ("Multimodal inputs driven talking face generation with
spatial-temporal dependency"): phonemes and speech -> mouth landmarks per video frame. One
:class:`~coursekit.models.landmarks.LandmarkPredictor` is trained with modality dropout on
GRID s1's 100 training clips (the split every GRID benchmark uses: sorted names, every 5th
held out, :func:`coursekit.data.splits.make_split`) and scored on the 25 held-out clips with
text only, audio only and text + audio, beside its shuffled-input rows, position only and
the still mouth (:mod:`coursekit.evaluate.landmarks`). Phonemes come from GRID's word
alignments with espeak's phonemes spread over each word.

    python benchmarks/landmarks_multimodal.py --grid /path/to/grid [--proc /tmp/grid_proc] \\
        [--steps 1500] [--model tiny|paper] [--out benchmarks/landmarks_multimodal.md] \\
        [--save coursekit/assets/grid/landmarks.pt] [--samples /tmp/proc64]

The AU route row is the course's own way from speech to landmarks on the same clips: the
shipped warp generator's Audio2AU and motion model (``coursekit/assets/grid``, trained on the
same training split). ``--save`` copies the trained predictor (the file the notebook
``09_text_and_flow`` loads).
"""

import argparse
import datetime
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROW_ORDER = ("text", "audio", "text+audio")
READING_SAMPLES = """Reading it: On the samples the mouth is made from the phonemes (each phoneme's viseme, blended
by the coarticulation model), so exact phonemes are the mouth's own cause: text alone is as
good as text + audio on the held-out utterances (0.0064 both) and a little better on the unseen
speakers, and audio can only add noise. On real speech (GRID, above) the two inputs complement
each other. The shipped GRID AU route hears the synthetic voices poorly (its Audio2AU never
heard them), so it trails here."""
"""The reading of the samples' tables (their mouths are made from the phonemes)."""


def table(results: dict) -> str:
    """The markdown table: each input setting beside its shuffled row, then the baselines."""
    lines = ["| row | mouth error (IOD) | opening r | shuffled inputs: error | shuffled: opening r |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for mode in ROW_ORDER:
        own, other = results[mode], results[f"{mode} shuffled"]
        lines.append(f"| {mode} | {own['error']:.4f} | {own['opening_r']:.3f} | "
                     f"{other['error']:.4f} | {other['opening_r']:.3f} |")
    for name in ("AU route", "position only", "still mouth"):
        r = results[name]
        lines.append(f"| {name} | {r['error']:.4f} | {r['opening_r']:.3f} | | |")
    return "\n".join(lines)


def lead(row: dict, base: dict) -> str:
    """``row``'s error below ``base``'s, in percent, and the opening correlations."""
    return (f"{100 * (1 - row['error'] / base['error']):.0f} % lower mouth error, opening r "
            f"{row['opening_r']:.2f} vs {base['opening_r']:.2f}")


def samples_part(args, model_cfg, cfg) -> str:
    """The same training and scoring on the synthetic samples (exact espeak phonemes from
    each clip's ``.phn``): spk1-spk4's training utterances, scored on their held-out
    utterances and on the unseen spk5-spk6. A markdown section."""
    from coursekit.data.dataset import load_index
    from coursekit.data.splits import make_split
    from coursekit.evaluate.landmarks import evaluate_landmarks, position_prior
    from coursekit.infer.generator import load_generator
    from coursekit.train.landmarks import train_landmarks

    split = make_split(load_index(args.samples), test_speakers=["spk5", "spk6"])
    t0 = time.time()
    ckpt = train_landmarks(args.samples, split.train, Path(args.run) / "samples.pt", model_cfg,
                           cfg, progress=False,
                           meta={"position_mean": position_prior(args.samples, split.train)})
    train_s = time.time() - t0
    route = load_generator("warp")
    parts = {"held-out utterances of spk1-spk4": [c for c in split.test
                                                  if c["speaker"] not in ("spk5", "spk6")],
             "unseen speakers spk5-spk6": [c for c in split.test
                                           if c["speaker"] in ("spk5", "spk6")]}
    text = [f"""
## The samples (exact phonemes)

The same model size and training ({args.steps} steps, {train_s:.0f} s) on the
{len(split.train)} training utterances of the synthetic sample speakers spk1-spk4 (ground-truth
landmarks; each clip's `.phn` gives espeak's exact phonemes, so text here carries exact
timing). The AU route is the shipped GRID warp generator (its Audio2AU was trained on GRID
only, its motion model on GRID and the samples).
"""]
    for name, clips in parts.items():
        results = evaluate_landmarks(ckpt, args.samples, clips, split.train, au_route=route)
        best = min(ROW_ORDER, key=lambda m: results[m]["error"])
        text += [f"### {name}: {len(clips)} clips", "", table(results), "",
                 f"Best of the three settings: **{best}**; text + audio against position only: "
                 f"{lead(results['text+audio'], results['position only'])}; against the AU "
                 f"route: {lead(results['text+audio'], results['AU route'])}.", ""]
    text += [READING_SAMPLES, ""]
    return "\n".join(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", default=os.environ.get("COURSEKIT_GRID_DIR"),
                        help="GRID corpus folder (with s1/video, s1/align)")
    parser.add_argument("--proc", default=os.path.join(tempfile.gettempdir(), "grid_proc"),
                        help="processed GRID dataset (created if needed; never inside the repo)")
    parser.add_argument("--run", default=os.path.join(tempfile.gettempdir(), "landmarks_run"))
    parser.add_argument("--out", default="benchmarks/landmarks_multimodal.md")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--model", default="tiny", choices=["tiny", "paper"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", help="also copy the trained checkpoint here")
    parser.add_argument("--samples", help="also train and score on the samples, preprocessed "
                        "with ground truth in this folder (e.g. /tmp/proc64): exact phonemes "
                        "(.phn), spk5-spk6 unseen")
    args = parser.parse_args()
    if not args.grid:
        raise SystemExit("give the GRID folder with --grid or COURSEKIT_GRID_DIR")

    from coursekit.data.dataset import load_index
    from coursekit.data.preprocess import PreprocessConfig, preprocess_corpus
    from coursekit.data.splits import make_split
    from coursekit.evaluate.landmarks import evaluate_landmarks, position_prior
    from coursekit.infer.generator import load_generator
    from coursekit.models.landmarks import LandmarkConfig
    from coursekit.runtime import RunContext
    from coursekit.train.landmarks import LandmarkTrainConfig, train_landmarks

    RunContext(device="cpu", threads=1).apply()
    if not (Path(args.proc) / "index.json").is_file():
        preprocess_corpus(args.grid, args.proc, PreprocessConfig(), workers=2, speakers=["s1"],
                          progress=False)
    clips = [c for c in load_index(args.proc) if c["speaker"] == "s1"]
    split = make_split(clips)
    model_cfg = getattr(LandmarkConfig, args.model)()
    cfg = LandmarkTrainConfig.tiny(max_steps=args.steps, seed=args.seed, lr_schedule="cosine")
    t0 = time.time()
    ckpt = train_landmarks(args.proc, split.train, Path(args.run) / "landmarks.pt", model_cfg,
                           cfg, corpus=args.grid, progress=False,
                           meta={"position_mean": position_prior(args.proc, split.train, args.grid)})
    train_s = time.time() - t0
    results = evaluate_landmarks(ckpt, args.proc, split.test, split.train, corpus=args.grid,
                                 au_route=load_generator("warp"))
    if args.save:
        import shutil

        shutil.copyfile(ckpt, args.save)
    text = table(results)
    print(text)
    best = min(ROW_ORDER, key=lambda m: results[m]["error"])
    verdict = ("Together the two inputs give the lowest error, though close to text alone, "
               "whose timing already comes from the recording." if best == "text+audio" else
               f"Here {best} alone beats text + audio: with one model trained under modality "
               "dropout, the fused setting had no more training than each single one, and "
               "at this size it does not yet profit from the second input.")
    n_params = sum(p.numel() for p in __import__("torch").load(
        ckpt, weights_only=True)["model"].values())
    report = f"""# Multimodal landmark predictor on GRID s1 (text, audio, text + audio)

Step one of Yu et al. 2020: phonemes and/or speech -> mouth landmarks per video frame
(25 fps). Produced by `benchmarks/landmarks_multimodal.py` on {datetime.date.today()}
({platform.machine()}, 1 CPU thread).

Setup: one `LandmarkPredictor` ({args.model}, {n_params / 1e3:.0f} k parameters), trained
{args.steps} steps (batch {cfg.batch_size} windows of {cfg.seq_len} frames, modality dropout
{cfg.p_text_only:.0%} text only / {cfg.p_audio_only:.0%} audio only / rest both) in
{train_s:.0f} s on the {len(split.train)} training clips of GRID s1; scored on the
{len(split.test)} held-out clips (`make_split`: every 5th utterance by name, the clips the
other GRID benchmarks hold out), every frame. Landmarks from the processed 112 px crops; the
target is each frame's jaw and mouth displacement from the clip's closed-mouth neutral, in
inter-ocular distances (IOD), so the error is the mean Euclidean distance of the 20 mouth
points 48-67 divided by the IOD. Opening r: Pearson correlation of the predicted and the
real inner-lip gap over all held-out frames. Text: GRID's word timings, each word's espeak
phonemes spread over it in proportion to espeak's durations.

{text}

Rows: *shuffled inputs*, the same model and setting driven by the next held-out utterance's
inputs; *position only*, the training clips' mean displacement at each frame index;
*still mouth*, the clip's first frame repeated; *AU route*, the course's own speech -> AUs ->
landmark motion (the shipped warp generator's Audio2AU and motion model, trained on the same
training clips, gated by the recording's speech activity as at inference).

Best of the three settings by mouth error: **{best}**. Text + audio against position only:
{lead(results["text+audio"], results["position only"])}; against its shuffled inputs:
{lead(results["text+audio"], results["text+audio shuffled"])}; against the AU route:
{lead(results["text+audio"], results["AU route"])}.

Reading it: in GRID every sentence has the same six-word grammar and starts at about the
same time, so position only is a strong baseline; a row beats it only by following each
clip's own timing and sounds. The text rows use GRID's word alignments, which were timed on
the recordings, so "text only" knows when each word is said (as a text-to-speech front end
would); it is not text without any timing. Audio only has to hear the phonemes from 12
MFCCs per window. {verdict}

Data: the GRID audiovisual sentence corpus (M. Cooke, J. Barker, S. Cunningham, X. Shao,
JASA 120(5), 2006; CC BY 4.0).
"""
    if args.samples:
        report += samples_part(args, model_cfg, cfg)
    Path(args.out).write_text(report)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
