"""Evaluating generated talking faces beside baselines computed the same way.

A number alone says little: on GRID-like data a model that ignores the audio can score well.
Every score is therefore reported beside three baselines:

* **copy identity**: every frame is the identity image (a still face);
* **shuffled audio**: the same model driven by another utterance's audio;
* **position only**: no audio and no model, the occurrence of each AU guessed from the frame's
  position in the clip (the per-position rate over the training clips, thresholded at 0.5).

The AUs of generated frames are read by a *judge*: an AU classifier trained on real frames
only, with another seed than the one used in the AU loss, and never used for training.
Image quality (PSNR, SSIM against the real frames) is reported too; note that on GRID-like
data, where the face barely moves, copying the identity frame already scores a high PSNR.

Both renderers are evaluated the same way: the image-decoder :class:`~coursekit.models.talker.Talker`
and the :class:`~coursekit.models.diffusion.DiffusionTalker` (sampled with DDIM from one
seeded noise image per clip).

Two levels:

* :func:`evaluate_talker`: AU F1/accuracy and PSNR/SSIM of a model in memory (training
  notebooks, benchmarks);
* :func:`evaluate_checkpoint`: every score of a saved generator (either renderer) on a
  processed dataset -- PSNR, SSIM, mouth LMD, AU F1/accuracy read by the judge, AU F1 read
  from tracked landmarks, and the sync expert's LSE-D/LSE-C -- for all rows, written by
  :func:`write_report` as Markdown + CSV in the paper's layout. From the command line::

      coursekit evaluate checkpoints/tiny/talker.pt --data processed64 --out runs/eval
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .data.dataset import FIELD_FILES, TalkingFaceDataset
from .metrics import accuracy_per_au, f1_per_au, psnr, ssim
from .train.au_classifier import classify_frames
from .train.audio2au import fit_length, label_priors, position_predict, shuffle_partners


@torch.no_grad()
def generate(model, identity: torch.Tensor, mfcc: torch.Tensor, *, seed: int = 0,
             steps: int | None = None) -> torch.Tensor:
    """Frames for one clip: identity ``(3, S, S)``, normalised MFCC ``(T, 12, 28)`` ->
    ``(T, 3, S, S)`` in [-1, 1]. The model sees nothing of the target video.

    A diffusion renderer (a model with ``sample``) is sampled with ``steps`` DDIM steps
    (its config's default when None) from the noise seeded by ``seed``."""
    model.eval()
    if hasattr(model, "sample"):
        return model.sample(identity[None], mfcc[None], steps=steps, seed=seed)[0]
    return model(identity[None], mfcc[None])["frames"][0]


def evaluate_talker(model, judge, root, test: list[dict], train: list[dict], mfcc_stats, *,
                    steps: int | None = None, seed: int = 0) -> dict:
    """AU occurrence F1 and accuracy of generated frames and of the baselines, and PSNR/SSIM
    of every set of frames against the real ones.

    Returns ``{name: {"f1": (5,), "accuracy": (5,), "psnr": float, "ssim": float}}`` for
    ``model``, ``shuffled audio`` (the audio of :func:`~coursekit.train.audio2au.shuffle_partners`'
    partner clip, cropped or padded to length), ``position only`` (no frames: no PSNR/SSIM),
    ``copy identity`` and ``real frames`` (the judge on the real video: how well the judge
    itself reads AUs, an upper bound; the reference of PSNR/SSIM, so none of its own). ``steps`` and ``seed`` apply to diffusion renderers.
    """
    data = TalkingFaceDataset(root, test, fields=("frames", "identity", "mfcc", "occurrence"),
                              normalize_mfcc=mfcc_stats)
    items = [data[i] for i in range(len(data))]
    partners = shuffle_partners(test)
    position_rates = label_priors(root, train)["position_rates"].numpy()
    names = ("model", "shuffled audio", "position only", "copy identity", "real frames")
    preds = {k: [] for k in names}
    quality = {k: {"psnr": [], "ssim": []} for k in ("model", "shuffled audio", "copy identity")}
    truth = []
    for i, it in enumerate(items):
        n = len(it["occurrence"])
        other = items[partners[i]]["mfcc"]  # another held-out utterance
        frames = {
            "model": generate(model, it["identity"], it["mfcc"], seed=seed, steps=steps),
            "shuffled audio": generate(model, it["identity"],
                                       torch.from_numpy(fit_length(other.numpy(), n)),
                                       seed=seed, steps=steps),
            "copy identity": it["identity"][None].expand(n, -1, -1, -1),
            "real frames": it["frames"]}
        for name, f in frames.items():
            preds[name].append(classify_frames(judge, f))
            if name in quality:
                quality[name]["psnr"].append(psnr(f, it["frames"]))
                quality[name]["ssim"].append(ssim(f, it["frames"]))
        preds["position only"].append(position_predict(position_rates, n))
        truth.append(it["occurrence"].numpy().astype(bool))
    true = np.concatenate(truth)
    out = {}
    for k, v in preds.items():
        out[k] = {"f1": f1_per_au(np.concatenate(v), true),
                  "accuracy": accuracy_per_au(np.concatenate(v), true)}
        if k in quality:
            out[k].update({m: float(np.mean(q)) for m, q in quality[k].items()})
    return out


def _mouth_motion(frames: torch.Tensor) -> float:
    """Mean |change| between consecutive frames in the mouth box, on a 0-1 scale."""
    s = frames.shape[-1]
    box = frames[:, :, int(0.62 * s): int(0.9 * s), int(0.3 * s): int(0.7 * s)]
    return float((box[1:] - box[:-1]).abs().mean() / 2) if len(frames) > 1 else 0.0


@torch.no_grad()
def silence_check(model, judge, root, clips: list[dict], mfcc_stats, *,
                  noise_dbfs: float | None = None, seed: int = 0,
                  steps: int | None = None) -> dict:
    """Drive the model with silence instead of speech (the paper's Fig. 13 check).

    For each clip's identity, generate as many frames from silent audio (digital silence, or
    white noise at ``noise_dbfs``) as from its real audio, and compare: the judge's AU25/AU26
    occurrence rates, and the motion in the mouth box between consecutive frames.
    """
    from .audio import SAMPLE_RATE, mfcc_windows

    mean, std = (torch.as_tensor(np.asarray(x), dtype=torch.float32) for x in mfcc_stats)
    rng = np.random.default_rng(seed)
    data = TalkingFaceDataset(root, clips, fields=("identity", "mfcc"), normalize_mfcc=mfcc_stats)
    silent_frames, speech_frames = [], []
    for i in range(len(data)):
        it = data[i]
        n = len(it["mfcc"])
        samples = int(np.ceil(n / 25 * SAMPLE_RATE))
        audio = (np.zeros(samples, np.float32) if noise_dbfs is None else
                 (10 ** (noise_dbfs / 20) * rng.standard_normal(samples)).astype(np.float32))
        quiet = (torch.from_numpy(mfcc_windows(audio, SAMPLE_RATE, n)) - mean) / std
        silent_frames.append(generate(model, it["identity"], quiet, seed=seed, steps=steps))
        speech_frames.append(generate(model, it["identity"], it["mfcc"], seed=seed, steps=steps))
    k25, k26 = 3, 4  # AU25, AU26 in coursekit.au.AUS order
    sil = np.concatenate([classify_frames(judge, f) for f in silent_frames])
    spe = np.concatenate([classify_frames(judge, f) for f in speech_frames])
    return {"au25": sil[:, k25].mean(), "au26": sil[:, k26].mean(),
            "speech_au25": spe[:, k25].mean(), "speech_au26": spe[:, k26].mean(),
            "silent_motion": float(np.mean([_mouth_motion(f) for f in silent_frames])),
            "speech_motion": float(np.mean([_mouth_motion(f) for f in speech_frames]))}


# ----------------------------------------------------------------------------- a checkpoint

ROWS = ("model", "shuffled audio", "position only", "copy identity", "real frames")
"""The rows of :func:`evaluate_checkpoint`: the generator and its baselines."""

COLUMNS = {"psnr": "PSNR", "ssim": "SSIM", "lmd": "LMD", "au_f1": "AU-F1", "au_acc": "Acc",
           "lm_au_f1": "LM-AU-F1", "lse_d": "LSE-D", "lse_c": "LSE-C", "abs_offset": "|offset|"}
"""Summary metric key -> column title of :func:`write_report` (the paper's layout)."""

TINY_DIR = Path(__file__).resolve().parent.parent / "checkpoints" / "tiny"
"""The committed tiny checkpoints (64 px): the default judge and sync expert of 64 px generators."""


def format3(value) -> str:
    """A float with 3 significant digits (``0.500``, ``27.3``, ``1234``); ``""`` for None or
    NaN; an int as it is (``12``); anything else as ``str``."""
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        return str(value)
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    v = float(value)
    if not np.isfinite(v):
        return "" if np.isnan(v) else ("inf" if v > 0 else "-inf")
    if abs(v) >= 999.5:
        return f"{v:.0f}"
    return f"{v:#.3g}".rstrip(".")


def select_clips(root, clips: str = "heldout", speakers=None) -> tuple[list[dict], list[dict]]:
    """``(evaluated, training)`` clips of the processed dataset ``root``.

    speakers: names (a list or ``"spk1,spk2"``) to keep, all when None. clips: ``"heldout"``
    evaluates the held-out side of :func:`~coursekit.train.audio2au.holdout_split` (every 5th
    utterance of each speaker, as in training); ``"all"`` every clip of those speakers. The
    training side is returned either way (its per-position AU rates make the position-only
    baseline). Raises FileNotFoundError (no dataset) or ValueError (unknown speakers, too few
    clips)."""
    from .data.dataset import load_index
    from .train.audio2au import holdout_split

    index = load_index(root)
    if speakers:
        wanted = [s for s in (speakers.split(",") if isinstance(speakers, str) else speakers) if s]
        unknown = sorted(set(wanted) - {c["speaker"] for c in index})
        if unknown:
            raise ValueError(f"{root}: no speaker(s) {', '.join(unknown)} in the dataset")
        index = [c for c in index if c["speaker"] in wanted]
    train, held = holdout_split(index)
    if clips not in ("heldout", "all"):
        raise ValueError(f"clips must be 'heldout' or 'all', got {clips!r}")
    chosen = held if clips == "heldout" else train + held
    if len(chosen) < 2 or not train:
        raise ValueError(f"{root}: {len(chosen)} clip(s) to evaluate and {len(train)} training "
                         "clip(s); need at least 2 (shuffled audio swaps them) and 1")
    return sorted(chosen, key=lambda c: (c["speaker"], c["utt"])), train


def _track(frames: torch.Tensor, detector, identity_box, source: str) -> np.ndarray:
    """dlib landmarks ``(T, 68, 2)`` (crop pixels) of frames ``(T, 3, S, S)`` in [-1, 1];
    where no face is found at all (a failed generator), the identity's box in every frame."""
    from .face import FaceError, track_landmarks
    from .infer import to_uint8

    images = to_uint8(frames)
    try:
        return track_landmarks(images, detector, source=source)
    except FaceError:
        return np.stack([detector.landmarks(im, identity_box) for im in images])


def _sync(expert, frames: torch.Tensor, mfcc: torch.Tensor) -> dict | None:
    """:func:`~coursekit.metrics.sync_scores` with offsets up to 15 frames (fewer for short
    clips; None below 2 offsets)."""
    from .metrics import sync_scores

    max_offset = min(15, len(frames) - expert.cfg.context)
    return None if max_offset < 1 else sync_scores(expert, frames, mfcc, max_offset=max_offset)


def default_scorers(image_size: int) -> tuple[Path | None, Path | None]:
    """``(judge, sync expert)``: the committed tiny ones (:data:`TINY_DIR`) when they exist
    and ``image_size`` is theirs (64), else None for each."""
    found = []
    for name in ("judge.pt", "syncnet.pt"):
        path = TINY_DIR / name
        found.append(path if path.is_file() and _image_size(path) == image_size else None)
    return found[0], found[1]


def _image_size(path) -> int | None:
    from .train.common import load_checkpoint

    cfg = load_checkpoint(path).get("model_config") or {}
    return cfg.get("image_size")


def evaluate_checkpoint(checkpoint, root, *, judge=None, syncnet=None, clips="heldout",
                        speakers=None, steps: int | None = None, seed: int = 0,
                        device: str = "cpu", max_clips: int | None = None,
                        progress: bool = True) -> dict:
    """Every score of a generator checkpoint (either renderer,
    :func:`~coursekit.infer.load_generator`) beside its baselines, on the clips of a processed
    dataset.

    Args:
        checkpoint: ``talker.pt`` or ``diffusion.pt`` (or a loaded
            :class:`~coursekit.infer.Generator`).
        root: processed dataset at the generator's image size (``coursekit preprocess``).
        judge: AU classifier checkpoint (or a loaded model) that reads AUs from frames;
            None skips the judge's columns. syncnet: sync expert checkpoint (or
            ``(expert, ckpt)`` of :func:`~coursekit.train.syncnet.load_syncnet`); None skips
            LSE-D/LSE-C. Both must be trained at the generator's image size.
        clips, speakers: which clips (:func:`select_clips`); max_clips: only the first N.
        steps, seed: DDIM steps and noise seed of a diffusion renderer.

    Every clip is generated once per row (the model with its own audio; *shuffled audio*
    with a partner clip's, :func:`~coursekit.train.audio2au.shuffle_partners`); the frames
    of every row are then read by all metrics, their dlib landmarks tracked once:

    * ``psnr``, ``ssim`` against the real frames (mean over clips);
    * ``lmd``: mouth landmark distance (pixels of the crop, mean over clips,
      :func:`~coursekit.metrics.lmd`) of the landmarks tracked on the frames
      (:func:`~coursekit.face.track_landmarks`) to the dataset's aligned landmarks of the real
      frames; the *real frames* row is the tracker's own error, the floor of this column;
    * ``au_f1``, ``au_acc``: AU occurrence F1 / accuracy read by the judge, all frames pooled,
      mean of the 5 AUs (``au_f1_per_au``, ``au_acc_per_au``: ``(5,)`` lists);
    * ``lm_au_f1``: the same F1 with AUs read from the tracked landmarks by
      :func:`~coursekit.au.estimate_aus` (``lm_au_f1_per_au``);
    * ``lse_d``, ``lse_c``, ``abs_offset``: the sync expert's distance, confidence and
      ``|offset|`` (frames) of the frames against the clip's *own* audio, mean over clips
      (the MFCCs normalised with the expert's statistics).

    *position only* has no frames: only ``au_f1``/``au_acc``. *real frames* has no PSNR/SSIM
    (it is their reference). Missing values are None.

    Returns ``{"rows": {row: {metric: float | None, ...}}, "per_clip": {"spk/utt": {row:
    {psnr, lmd, lse_c, ...}}}, "aus", "clips", "n_frames", "checkpoint", "renderer",
    "image_size", "data", "judge", "syncnet", "steps", "seed", "seconds", "notes"}``.
    """
    import time

    from tqdm.auto import tqdm

    from .au import AUS, estimate_aus
    from .face import LandmarkDetector
    from .infer import Generator, load_generator
    from .metrics import lmd
    from .train.au_classifier import load_au_classifier
    from .train.syncnet import load_syncnet

    start = time.time()
    gen = checkpoint if isinstance(checkpoint, Generator) else load_generator(checkpoint, device)
    test, train = select_clips(root, clips, speakers)
    if max_clips:
        test = test[:max(2, int(max_clips))]
    notes = []
    judge_path = None if judge is None or isinstance(judge, torch.nn.Module) else str(judge)
    sync_path = None if syncnet is None or isinstance(syncnet, tuple) else str(syncnet)
    for path, what in ((judge_path, "judge"), (sync_path, "sync expert")):
        size = _image_size(path) if path else None
        if size is not None and size != gen.image_size:
            raise ValueError(f"{path}: the {what} works on {size} px faces, the generator "
                             f"makes {gen.image_size} px")
    if judge_path:
        try:
            judge = load_au_classifier(judge_path)
        except (KeyError, TypeError, RuntimeError) as err:
            raise ValueError(f"{judge_path}: not an AU classifier checkpoint "
                             f"({type(err).__name__}: {err})") from None
    expert, sync_ckpt = load_syncnet(sync_path) if sync_path else (syncnet or (None, None))
    if expert is not None:
        sync_stats = (np.asarray(sync_ckpt["mfcc_mean"], np.float32).reshape(-1, 1),
                      np.asarray(sync_ckpt["mfcc_std"], np.float32).reshape(-1, 1))
    data = TalkingFaceDataset(root, test, fields=("frames", "identity", "mfcc", "occurrence",
                                                  "landmarks"))
    partners = shuffle_partners(test)
    rates = label_priors(root, train)["position_rates"].numpy()
    framed = ("model", "shuffled audio", "copy identity", "real frames")
    judged = {k: [] for k in ROWS}
    read = {k: [] for k in framed}
    per_clip, truth = {}, []
    detector = LandmarkDetector()
    for i in tqdm(range(len(data)), desc="evaluate", unit="clip", disable=not progress):
        it = data[i]  # one clip in memory at a time
        key = f"{it['speaker']}/{it['utt']}"
        n = len(it["occurrence"])
        own = gen.normalize(it["mfcc"].numpy())
        partner = np.load(data.clip_dir(partners[i]) / FIELD_FILES["mfcc"])
        other = gen.normalize(fit_length(partner, n))
        frames = {"model": gen(it["identity"], own, seed=seed, steps=steps),
                  "shuffled audio": gen(it["identity"], other, seed=seed, steps=steps),
                  "copy identity": it["identity"][None].expand(n, -1, -1, -1),
                  "real frames": it["frames"]}
        truth.append(it["occurrence"].numpy().astype(bool))
        judged["position only"].append(position_predict(rates, n))
        boxes = detector.detect(_to_uint8_one(it["identity"]))
        box = boxes[0] if boxes else np.array([0, 0, gen.image_size, gen.image_size], np.float32)
        sync_mfcc = (torch.from_numpy((it["mfcc"].numpy() - sync_stats[0]) / sync_stats[1])
                     if expert is not None else None)
        per_clip[key] = {}
        for name, f in frames.items():
            if name == "copy identity":  # one still frame: track it once
                marks = np.repeat(_track(f[:1], detector, box, key), n, axis=0)
            else:
                marks = _track(f, detector, box, f"{key} ({name})")
            scores = {"lmd": lmd(marks, it["landmarks"])}
            if name != "real frames":
                scores.update(psnr=psnr(f, it["frames"]), ssim=ssim(f, it["frames"]))
            if expert is not None:
                s = _sync(expert, f, sync_mfcc)
                if s is not None:
                    scores.update(lse_d=s["distance"], lse_c=s["confidence"],
                                  abs_offset=abs(s["offset"]))
            per_clip[key][name] = scores
            read[name].append(estimate_aus(marks)[1].astype(bool))
            if judge is not None:
                judged[name].append(classify_frames(judge, f))
    true = np.concatenate(truth)
    rows = {}
    for name in ROWS:
        row = dict.fromkeys(COLUMNS)
        if name in read:
            for metric in ("psnr", "ssim", "lmd", "lse_d", "lse_c", "abs_offset"):
                values = [c[name][metric] for c in per_clip.values() if metric in c[name]]
                row[metric] = float(np.mean(values)) if values else None
            f1 = f1_per_au(np.concatenate(read[name]), true)
            row.update(lm_au_f1=float(f1.mean()), lm_au_f1_per_au=f1.tolist())
        if judged[name]:
            pred = np.concatenate(judged[name])
            f1, acc = f1_per_au(pred, true), accuracy_per_au(pred, true)
            row.update(au_f1=float(f1.mean()), au_acc=float(acc.mean()),
                       au_f1_per_au=f1.tolist(), au_acc_per_au=acc.tolist())
        rows[name] = row
    if judge is None:
        notes.append("no judge: AU-F1 and Acc not measured")
    if expert is None:
        notes.append("no sync expert: LSE-D, LSE-C not measured")
    return {"rows": rows, "per_clip": per_clip, "aus": list(AUS), "clips": list(per_clip),
            "n_frames": int(len(true)), "checkpoint": gen.source, "renderer": gen.name,
            "image_size": gen.image_size, "data": str(root), "judge": judge_path,
            "syncnet": sync_path, "steps": steps, "seed": seed,
            "seconds": time.time() - start, "notes": notes}


def _to_uint8_one(image: torch.Tensor) -> np.ndarray:
    """``(3, S, S)`` in [-1, 1] -> ``(S, S, 3)`` uint8."""
    from .infer import to_uint8

    return to_uint8(image[None])[0]


def summary_metrics(results: dict, row: str = "model") -> dict:
    """One row of :func:`evaluate_checkpoint` as a flat ``{metric: float}`` dict (measured
    values only, per-AU F1 as ``au_f1_AU25`` ...), e.g. for a notebook's ``metrics.json``."""
    values = results["rows"][row]
    out = {k: values[k] for k in COLUMNS if values.get(k) is not None}
    for prefix in ("au_f1", "lm_au_f1"):
        for au, v in zip(results["aus"], values.get(f"{prefix}_per_au") or []):
            out[f"{prefix}_{au}"] = v
    return out


def write_report(results: dict, out_dir, title: str = "Evaluation") -> tuple[Path, Path]:
    """Write ``evaluation.md`` (the paper's layout: one row per model or baseline, columns
    PSNR, SSIM, LMD, AU-F1, Acc, LM-AU-F1, LSE-D, LSE-C, |offset|; then per-AU F1 tables)
    and ``evaluation.csv`` (the same numbers, per-AU F1 as extra columns) into ``out_dir``;
    numbers with 3 significant digits, unmeasured cells empty. Returns their paths."""
    import csv

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows, aus = results["rows"], results["aus"]
    cols = [k for k in COLUMNS if any(r.get(k) is not None for r in rows.values())]
    cell = lambda v: format3(v) or "–"  # noqa: E731
    lines = [f"# {title}", "",
             f"Checkpoint `{results['checkpoint']}` ({results['renderer']} renderer, "
             f"{results['image_size']} px"
             + (f", {results['steps']} steps" if results["steps"] else "")
             + f", seed {results['seed']}); data `{results['data']}`: {len(results['clips'])} "
             f"clips, {results['n_frames']} frames; judge `{results['judge']}`; sync expert "
             f"`{results['syncnet']}`; {format3(results['seconds'])} s.", "",
             "| frames | " + " | ".join(COLUMNS[k] for k in cols) + " |",
             "|---|" + "---:|" * len(cols)]
    for name, r in rows.items():
        lines.append(f"| {name} | " + " | ".join(cell(r.get(k)) for k in cols) + " |")
    lines += ["", "Rows: *shuffled audio*: the model driven by another utterance's audio; "
              "*position only*: no audio and no frames, each AU guessed from the frame's "
              "position in the clip (the training clips' rate there); *copy identity*: the "
              "identity frame repeated; *real frames*: the video itself (upper bounds).", "",
              "PSNR (dB), SSIM: against the real frames (higher is better). LMD: mouth "
              "landmark distance in crop pixels, dlib landmarks tracked on the frames vs the "
              "dataset's (lower is better; *real frames*: the tracker's own error). AU-F1, "
              "Acc: AU occurrence read by the judge (mean of the AUs). LM-AU-F1: AU occurrence "
              "read from the tracked landmarks. LSE-D (lower), LSE-C (higher), |offset| "
              "(frames): the sync expert on the frames and the clip's own audio.", "",
              "On GRID-like data the face barely moves, so copying the identity frame already "
              "scores a high PSNR and SSIM: image quality says little about whether the mouth "
              "follows the audio; read AU-F1, LMD and LSE beside it."]
    for prefix, what in (("au_f1", "read by the judge"), ("lm_au_f1", "read from the landmarks")):
        have = {n: r[f"{prefix}_per_au"] for n, r in rows.items() if r.get(f"{prefix}_per_au")}
        if have:
            lines += ["", f"AU occurrence F1 per AU, {what}:", "",
                      "| frames | " + " | ".join(aus) + " | mean |",
                      "|---|" + "---:|" * (len(aus) + 1)]
            lines += [f"| {n} | " + " | ".join(cell(v) for v in f1) + f" | {cell(np.mean(f1))} |"
                      for n, f1 in have.items()]
    for note in results.get("notes", []):
        lines += ["", f"Note: {note}."]
    md = out / "evaluation.md"
    md.write_text("\n".join(lines) + "\n")
    path = out / "evaluation.csv"
    fields = ["frames", *COLUMNS, *(f"{p}_{au}" for p in ("au_f1", "lm_au_f1") for au in aus)]
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(fields)
        for name, r in rows.items():
            flat = {k: r.get(k) for k in COLUMNS}
            for p in ("au_f1", "lm_au_f1"):
                flat.update({f"{p}_{au}": v for au, v in zip(aus, r.get(f"{p}_per_au") or [])})
            writer.writerow([name, *(format3(flat.get(k)) for k in fields[1:])])
    return md, path
