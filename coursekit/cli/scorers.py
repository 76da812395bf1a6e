"""``coursekit train judge | au-classifier | syncnet``: the scorers, trained from the command line.

::

    coursekit train judge CONFIG --data DIR --out FILE.pt [--image-size N] [--minutes M]
                          [--epochs E] [--steps N] [--seed S] [--device D] [--threads T]
                          [--resume] [--half] [--no-eval] [--test-speakers S1,S2] [--split ..]

``au-classifier`` is the same trainer (:func:`coursekit.train.au_classifier.train_au_classifier`,
seed 0: the classifier the talker's AU loss uses); ``judge`` is an AU classifier trained with
another seed (1) and kept for scoring only; ``syncnet`` trains the lip-sync expert
(:func:`coursekit.train.syncnet.train_syncnet`). CONFIG is ``tiny``, ``paper`` or a JSON file
``{"preset": "tiny", "model": {model config fields}, "train": {training config fields}}``.
The face size follows the processed dataset's crops; ``--image-size`` (or the JSON's
``model.image_size``) only checks it. Training uses the split's training clips; the held-out
utterances are scored afterwards (judge: F1 on real frames; sync expert: offsets, LSE-D/C).
The resumable state lives in the folder ``FILE`` without its suffix.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

COMMANDS = {
    "judge": "an AU classifier kept for scoring only (seed 1), e.g. for coursekit evaluate",
    "au-classifier": "the AU classifier of the talker's AU loss (seed 0)",
    "syncnet": "the lip-sync expert (LSE-D, LSE-C)",
}
"""Sub-command -> help."""


def scorer_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the three commands (the split's and the device's are added apart)."""
    parser.add_argument("config", help="tiny, paper, or a JSON file {preset, model, train}")
    parser.add_argument("--data", required=True, help="processed dataset (coursekit preprocess)")
    parser.add_argument("--out", required=True, help="checkpoint to write, e.g. judge.pt")
    parser.add_argument("--image-size", type=int, help="face size expected of the dataset")
    length_arguments(parser)
    parser.add_argument("--seed", type=int, help="default: 1 for judge, else 0")
    parser.add_argument("--no-eval", action="store_true", help="skip the held-out check")


def length_arguments(parser: argparse.ArgumentParser) -> None:
    """``--minutes``, ``--epochs``, ``--steps`` (see :func:`apply_length`), ``--resume`` and
    ``--half``: the options every ``coursekit train`` command writing ``FILE.pt`` shares."""
    parser.add_argument("--minutes", type=float, help="training time budget")
    parser.add_argument("--epochs", type=int, help="passes over the training clips (replaces "
                        "the preset's steps and, without --minutes, its time budget)")
    parser.add_argument("--steps", type=int, help="optimizer steps (overrides --epochs; "
                        "without --minutes, the preset's time budget is dropped)")
    parser.add_argument("--resume", action="store_true", help="continue FILE's training state")
    parser.add_argument("--half", action="store_true", help="store the weights in fp16")


def apply_length(cfg, args) -> None:
    """Set the TrainerConfig ``cfg``'s length from ``--epochs`` / ``--steps`` / ``--minutes``."""
    if args.epochs is not None:
        cfg.epochs, cfg.max_steps = args.epochs, None
    if args.steps is not None:
        cfg.max_steps = args.steps
    if args.epochs is not None or args.steps is not None:
        cfg.max_minutes = None  # a length asked for replaces the preset's time cap
    if args.minutes is not None:
        cfg.max_minutes = args.minutes


def crop_size(root) -> int:
    """The face crop size of a processed dataset (its ``index.json``)."""
    path = Path(root) / "index.json"
    if not path.is_file():
        raise FileNotFoundError(f"{root}: not a processed dataset (no index.json)")
    size = json.loads(path.read_text()).get("size")
    if not isinstance(size, int):
        raise ValueError(f"{path}: no face size ('size') in the index")
    return size


def configs(spec: str, model_cls, train_cls) -> tuple:
    """``(model config, training config, the image size CONFIG names or None)`` of CONFIG
    (see the module docstring)."""
    from ..models.config import from_dict

    values = {}
    if spec not in ("tiny", "paper"):
        try:
            values = json.loads(Path(spec).read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"{spec}: no such config (give tiny, paper or a JSON "
                                    "file)") from None
        except json.JSONDecodeError as err:
            raise ValueError(f"{spec}: not valid JSON ({err})") from None
        if not isinstance(values, dict) or set(values) - {"preset", "model", "train"}:
            raise ValueError(f"{spec}: expected a JSON object with keys preset, model, train")
    preset = values.get("preset", spec if spec in ("tiny", "paper") else "tiny")
    if preset not in ("tiny", "paper"):
        raise ValueError(f"{spec}: preset must be tiny or paper, got {preset!r}")
    model_cfg = from_dict(model_cls, {**dataclasses.asdict(getattr(model_cls, preset)()),
                                      **values.get("model", {})})
    cfg = from_dict(train_cls, {**dataclasses.asdict(getattr(train_cls, preset)()),
                                **values.get("train", {})})
    return model_cfg, cfg, values.get("model", {}).get("image_size")


def prepare(args):
    """``(model config, training config, split)`` of the command's arguments; raises
    ValueError / FileNotFoundError with a one-line message."""
    from ..data.splits import load_split, split_settings
    from ..models.config import AUClassifierConfig
    from ..models.syncnet import SyncNetConfig
    from ..train.au_classifier import AUClassifierTrainConfig
    from ..train.syncnet import SyncNetTrainConfig

    classes = ((SyncNetConfig, SyncNetTrainConfig) if args.action == "syncnet"
               else (AUClassifierConfig, AUClassifierTrainConfig))
    model_cfg, cfg, asked = configs(args.config, *classes)
    size, asked = crop_size(args.data), args.image_size or asked
    if asked is not None and asked != size:
        raise ValueError(f"{args.data}: its face crops are {size} px, not the {asked} px asked "
                         f"for (preprocess with --size {asked}, or leave out --image-size)")
    model_cfg = dataclasses.replace(model_cfg, image_size=size)
    apply_length(cfg, args)
    cfg.seed = args.seed if args.seed is not None else int(args.action == "judge")
    split = load_split(args.data, **split_settings(args.split, args.test_speakers))
    if not split.train:
        raise ValueError(f"{args.data}: the split leaves no clip to train on")
    return model_cfg, cfg, split


def check(args, out: Path, held: list, device: str) -> list[str]:
    """Lines scoring the trained checkpoint (on ``device``) on the held-out clips."""
    from ..train.au_classifier import load_au_classifier, score_classifier
    from ..train.syncnet import evaluate_syncnet, load_syncnet

    if args.action != "syncnet":
        f1 = score_classifier(load_au_classifier(out, device), args.data, held)["f1"]
        return [f"held-out F1 on {len(held)} clips' real frames: "
                + ", ".join(f"{v:.3f}" for v in f1) + f" (mean {f1.mean():.3f})"]
    expert, meta = load_syncnet(out, device)
    stats = (meta["mfcc_mean"], meta["mfcc_std"])
    summary = evaluate_syncnet(expert, args.data, held, stats)["summary"]
    return [f"held-out {name} ({len(held)} clips): offset within 1 of "
            f"{5 if name == 'shifted' else 0} for {s['offset_ok']:.0%}, "
            f"LSE-D {s['distance']:.3f}, LSE-C {s['confidence']:.3f}"
            for name, s in summary.items()]


def start(args, prepare) -> tuple | None:
    """``prepare(args)`` (a tuple whose second item is the TrainerConfig), then the run
    context of ``--device`` (the config's device when not given) and ``--threads``
    (:func:`coursekit.cli.context.apply_context`), whose device the config gets. Returns the
    prepared tuple, or None after a one-line error on stderr."""
    from .context import apply_context

    prog = f"coursekit train {args.action}"
    try:
        prepared = prepare(args)
    except (FileNotFoundError, ValueError) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return None
    cfg = prepared[1]
    args.device = args.device or cfg.device
    ctx = apply_context(args, prog)
    if ctx is None:
        return None
    cfg.device = str(ctx.torch_device)
    return prepared


def train_scorer(args) -> int:
    """Body of the three commands (:func:`start`). Returns the exit status."""
    prog = f"coursekit train {args.action}"
    prepared = start(args, prepare)
    if prepared is None:
        return 2
    model_cfg, cfg, split = prepared
    out = Path(args.out)
    print(f"{prog}: split: {split.describe()}")
    if args.action == "syncnet":
        from ..train.syncnet import train_syncnet

        result = train_syncnet(args.data, split.train, out, model_cfg, cfg, resume=args.resume,
                               half=args.half)
        steps, seconds = result["steps"], result["seconds"]
    else:
        from ..checkpoint import read_checkpoint
        from ..train.au_classifier import train_au_classifier

        train_au_classifier(args.data, split.train, out, model_cfg, cfg, resume=args.resume,
                            half=args.half)
        meta = read_checkpoint(out)["meta"]
        steps, seconds = meta["steps"], meta["seconds"]
    print(f"{out}: {model_cfg.image_size} px, {steps} steps in {seconds / 60:.1f} min")
    held = split.heldout or split.test
    if not args.no_eval and len(held) >= 2:
        print("\n".join(check(args, out, held, cfg.device)))
    return 0
