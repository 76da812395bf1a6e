"""Scoring a talking-face generator beside its baselines (:mod:`.rows`) on held-out clips.

:func:`evaluate_checkpoint` is the one evaluation of a generator, saved (``talker.pt``,
``diffusion.pt``) or in memory; :func:`evaluate_talker` is its short view for training
notebooks (AU F1/accuracy, PSNR/SSIM, no landmarks). Which clips: :func:`select_clips`, the
same split as training (:func:`coursekit.data.splits.make_split`).
"""

from __future__ import annotations

import time

import numpy as np
import torch

from ..data.dataset import TalkingFaceDataset
from ..metrics import f1_per_au, psnr, ssim
from ..train.au_classifier import classify_frames
from .report import COLUMNS
from .rows import (ROWS, au_scores, clip_speech, frame_rows, label_priors, position_predict,
                   shuffle_partners, shuffled_mfcc)
from .scorers import identity_box, load_scorers, sync, track

FRAMED = ("model", "shuffled audio", "copy identity", "real frames")
"""The rows that have frames (all but *position only*)."""

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


def as_generator(model, mfcc_stats, source: str = "(in memory)"):
    """A :class:`~coursekit.infer.Generator` around a model in memory (a
    :class:`~coursekit.models.talker.Talker` or a
    :class:`~coursekit.models.diffusion.DiffusionTalker`) that renders with :func:`generate`;
    ``mfcc_stats``: its training ``(mean, std)``, each ``(12, 1)``."""
    from ..infer import Generator

    size = getattr(model, "image_size", None) or model.cfg.image_size
    mean, std = (np.asarray(x, dtype=np.float32).reshape(-1, 1) for x in mfcc_stats)

    def render(identity, mfcc, *, seed=0, steps=None, progress=False):
        return generate(model, identity, mfcc, seed=seed, steps=steps)

    name = "diffusion" if hasattr(model, "sample") else "decoder"
    device = next(model.parameters()).device
    return Generator(name, size, mean, std, render, device, source, model)


def _select(root, clips: str, speakers, test_speakers, split) -> tuple[list, list, tuple]:
    from ..data.splits import load_split, split_settings

    if clips not in ("heldout", "all"):
        raise ValueError(f"clips must be 'heldout' or 'all', got {clips!r}")
    parts = load_split(root, **split_settings(split, test_speakers))
    everything = parts.train + parts.val + parts.test
    train, chosen = parts.train, parts.test if clips == "heldout" else everything
    if speakers:
        wanted = [s for s in (speakers.split(",") if isinstance(speakers, str) else speakers) if s]
        unknown = sorted(set(wanted) - {c["speaker"] for c in everything})
        if unknown:
            raise ValueError(f"{root}: no speaker(s) {', '.join(unknown)} in the dataset")
        chosen = [c for c in chosen if c["speaker"] in wanted]
        train = [c for c in train if c["speaker"] in wanted] or train  # all unseen: every one
    if len(chosen) < 2 or not train:
        raise ValueError(f"{root}: {len(chosen)} clip(s) to evaluate and {len(train)} training "
                         "clip(s); need at least 2 (shuffled audio swaps them) and 1")
    return sorted(chosen, key=lambda c: (c["speaker"], c["utt"])), train, parts.test_speakers


def select_clips(root, clips: str = "heldout", speakers=None, test_speakers=None,
                 split: str | None = None) -> tuple[list[dict], list[dict]]:
    """``(evaluated, training)`` clips of the processed dataset ``root``, from the split that
    training uses (:func:`coursekit.data.splits.make_split`).

    clips: ``"heldout"``: the clips training left out: every 5th utterance of each speaker
    and, with ``test_speakers`` (names, or ``"spk5,spk6"``), every clip of those speakers;
    ``"all"``: every clip. split: a :data:`~coursekit.data.splits.SPLITS` preset
    (``"paper"``: GRID's 6 test speakers). speakers: names (a list or ``"spk1,spk2"``) to
    keep, all when None. The training side is returned either way (its per-position AU rates
    make the position-only baseline; of the kept speakers, or all when they are all test
    speakers). Raises FileNotFoundError (no dataset) or ValueError (unknown speakers, too
    few clips)."""
    chosen, train, _ = _select(root, clips, speakers, test_speakers, split)
    return chosen, train


def evaluate_checkpoint(checkpoint, root, *, judge=None, syncnet=None, clips="heldout",
                        speakers=None, test_speakers=None, split: str | None = None,
                        train_clips: list[dict] | None = None, steps: int | None = None,
                        seed: int = 0, device: str = "cpu", max_clips: int | None = None,
                        landmarks: bool = True, progress: bool = True) -> dict:
    """Every score of a generator beside its baselines, on the clips of a processed dataset.

    Args:
        checkpoint: ``talker.pt`` or ``diffusion.pt`` (:func:`~coursekit.infer.load_generator`),
            or a :class:`~coursekit.infer.Generator` (:func:`as_generator` for a model in memory).
        root: processed dataset at the generator's image size (``coursekit preprocess``).
        judge: AU classifier checkpoint (or a loaded model) that reads AUs from frames;
            None skips the judge's columns. syncnet: sync expert checkpoint (or
            ``(expert, ckpt)`` of :func:`~coursekit.train.syncnet.load_syncnet`); None skips
            LSE-D/LSE-C. Both must be trained at the generator's image size.
        clips, speakers, test_speakers, split: which clips (:func:`select_clips`); or
            ``clips`` a list of clip dicts, with ``train_clips`` (for the position-only rates).
        max_clips: only the first N. landmarks: False skips dlib (LMD, LM-AU-F1).
        steps, seed: DDIM steps and noise seed of a diffusion renderer.

    Every clip is generated once per row (:func:`~coursekit.evaluate.rows.frame_rows`; the
    *shuffled audio* partner of :func:`~coursekit.evaluate.rows.shuffle_partners`); the frames
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
    {psnr, lmd, lse_c, ...}}}, "aus", "clips", "test_speakers", "n_frames", "checkpoint",
    "renderer", "image_size", "data", "judge", "syncnet", "steps", "seed", "seconds", "notes"}``.
    """
    from tqdm.auto import tqdm

    from ..au import AUS
    from ..infer import Generator, load_generator

    start = time.time()
    gen = checkpoint if isinstance(checkpoint, Generator) else load_generator(checkpoint, device)
    if isinstance(clips, str):
        test, train, unseen = _select(root, clips, speakers, test_speakers, split)
    elif not train_clips:
        raise ValueError("evaluate_checkpoint: a list of clips needs train_clips too "
                         "(their AU rates make the position-only baseline)")
    else:
        test, train, unseen = list(clips), list(train_clips), ()
    if max_clips:
        test = test[:max(2, int(max_clips))]
    scorers = load_scorers(judge, syncnet, gen.image_size)
    fields = ("frames", "identity", "mfcc", "occurrence") + (("landmarks",) if landmarks else ())
    data = TalkingFaceDataset(root, test, fields=fields)
    partners = shuffle_partners(test)
    rates = label_priors(root, train)["position_rates"].numpy()
    detector = None
    if landmarks:
        from ..face import LandmarkDetector
        detector = LandmarkDetector()
    judged, read = {k: [] for k in ROWS}, {k: [] for k in FRAMED}
    per_clip, truth = {}, []
    for i in tqdm(range(len(data)), desc="evaluate", unit="clip", disable=not progress):
        it = data[i]  # one clip in memory at a time
        n = len(it["occurrence"])
        truth.append(it["occurrence"].numpy().astype(bool))
        judged["position only"].append(position_predict(rates, n))
        speech = ((clip_speech(test[i], root, n), clip_speech(test[partners[i]], root, n))
                  if gen.hears_speech else (None, None))
        frames = frame_rows(lambda identity, mfcc, audio: gen(identity, mfcc, seed=seed,
                                                              steps=steps, speech=audio),
                            it, gen.normalize(it["mfcc"].numpy()),
                            gen.normalize(shuffled_mfcc(root, test, partners, i, n)), speech)
        key = f"{it['speaker']}/{it['utt']}"
        per_clip[key] = _score_clip(frames, it, key, scorers, detector, gen.image_size,
                                    read, judged)
    notes = [note for missing, note in (
        (scorers.judge is None, "no judge: AU-F1 and Acc not measured"),
        (scorers.expert is None, "no sync expert: LSE-D, LSE-C not measured"),
        (not landmarks, "no landmarks: LMD and LM-AU-F1 not measured")) if missing]
    return {"rows": _summarise(per_clip, judged, read, truth), "per_clip": per_clip,
            "aus": list(AUS), "clips": list(per_clip), "test_speakers": list(unseen),
            "n_frames": int(sum(len(t) for t in truth)), "checkpoint": gen.source,
            "renderer": gen.name, "image_size": gen.image_size, "data": str(root),
            "judge": scorers.judge_path, "syncnet": scorers.sync_path, "steps": steps,
            "seed": seed, "seconds": time.time() - start, "notes": notes}


def _score_clip(frames: dict, it: dict, key: str, scorers, detector, size: int,
                read: dict, judged: dict) -> dict:
    """One clip's per-row scores; appends the AUs read from each row to ``read`` (landmarks)
    and ``judged`` (the judge)."""
    from ..au import estimate_aus
    from ..metrics import lmd

    n = len(it["frames"])
    box = identity_box(detector, it["identity"], size) if detector is not None else None
    sync_mfcc = scorers.sync_mfcc(it["mfcc"].numpy())
    out = {}
    for name, f in frames.items():
        scores = {}
        if detector is not None:
            if name == "copy identity":  # one still frame: track it once
                marks = np.repeat(track(f[:1], detector, box, key), n, axis=0)
            else:
                marks = track(f, detector, box, f"{key} ({name})")
            scores["lmd"] = lmd(marks, it["landmarks"])
            read[name].append(estimate_aus(marks)[1].astype(bool))
        if name != "real frames":
            scores.update(psnr=psnr(f, it["frames"]), ssim=ssim(f, it["frames"]))
        if scorers.expert is not None:
            s = sync(scorers.expert, f, sync_mfcc)
            if s is not None:
                scores.update(lse_d=s["distance"], lse_c=s["confidence"],
                              abs_offset=abs(s["offset"]))
        out[name] = scores
        if scorers.judge is not None:
            judged[name].append(classify_frames(scorers.judge, f))
    return out


def _summarise(per_clip: dict, judged: dict, read: dict, truth: list) -> dict:
    """The rows of :func:`evaluate_checkpoint`: per-clip scores averaged, AUs pooled."""
    true = np.concatenate(truth)
    rows = {}
    for name in ROWS:
        row = dict.fromkeys(COLUMNS)
        if name in FRAMED:
            for metric in ("psnr", "ssim", "lmd", "lse_d", "lse_c", "abs_offset"):
                values = [c[name][metric] for c in per_clip.values() if metric in c[name]]
                row[metric] = float(np.mean(values)) if values else None
        if read.get(name):
            f1 = f1_per_au(np.concatenate(read[name]), true)
            row.update(lm_au_f1=float(f1.mean()), lm_au_f1_per_au=f1.tolist())
        if judged[name]:
            f1, acc = au_scores(judged[name], truth)
            row.update(au_f1=float(f1.mean()), au_acc=float(acc.mean()),
                       au_f1_per_au=f1.tolist(), au_acc_per_au=acc.tolist())
        rows[name] = row
    return rows


def evaluate_talker(model, judge, root, test: list[dict], train: list[dict], mfcc_stats, *,
                    steps: int | None = None, seed: int = 0) -> dict:
    """AU occurrence F1 and accuracy of a model in memory and of its baselines, and PSNR/SSIM
    of every set of frames against the real ones: :func:`evaluate_checkpoint` on ``test``
    without landmarks or sync expert, as arrays.

    Returns ``{name: {"f1": (5,), "accuracy": (5,), "psnr": float, "ssim": float}}`` for
    every row of :data:`~coursekit.evaluate.rows.ROWS` (*position only* and *real frames*
    without PSNR/SSIM). ``steps`` and ``seed`` apply to diffusion renderers.
    """
    results = evaluate_checkpoint(as_generator(model, mfcc_stats), root, judge=judge,
                                  clips=test, train_clips=train, steps=steps, seed=seed,
                                  landmarks=False, progress=False)
    out = {}
    for name, row in results["rows"].items():
        out[name] = {"f1": np.asarray(row["au_f1_per_au"]),
                     "accuracy": np.asarray(row["au_acc_per_au"])}
        out[name].update({k: row[k] for k in ("psnr", "ssim") if row[k] is not None})
    return out
