"""``coursekit train motion | painter``: the two trained parts of the warp generator.

::

    coursekit train motion CONFIG --data DIR [--data DIR2 ...] --out FILE.pt [--audio2au A.pt]
                           [--exclude CLIPS] [--include CLIPS] [--minutes M] [--epochs E]
                           [--steps N] [--seed S] [--resume] [--half] [--device D] [--threads T]
                           [--test-speakers S1,S2] [--split utterance|paper]
    coursekit train painter CONFIG --data DIR [--data DIR2 ...] --out FILE.pt [the same, but
                           --audio2au]

``motion`` trains the AU -> landmark motion model
(:func:`coursekit.train.motion.train_motion`, kind ``"motion"``); ``painter`` the mouth
painter (:func:`coursekit.train.painter.train_painter`, kind ``"painter"``). CONFIG is
``tiny``, ``paper`` or a JSON file ``{"preset": "tiny", "model": {model config fields},
"train": {training config fields}}`` (:func:`coursekit.cli.scorers.configs`). The painter's
face size follows the datasets' crops (all of one size).

Training clips: those the split (``--split`` / ``--test-speakers``, the ones ``coursekit
evaluate`` takes) leaves for training among the clips of every ``--data`` dataset (e.g. GRID
and the samples, preprocessed at one size), less ``--exclude`` (clips to keep out although the
split trains on them, such as a held-out speaker's) plus ``--include`` (clips to train on
although the split holds them out). Both take comma-separated ``speaker/utt`` names or whole
speakers; a name that matches no clip is an error.

``--audio2au A.pt`` (motion only): fit that Audio2AU's probability -> intensity quantile map
(:func:`coursekit.train.motion.fit_audio_map`) on its validation clips, found among the
training clips, against the intensities of the training clips of the datasets that hold them;
stored as ``meta["audio_map"]``, which the warp generator needs.

The resumable state lives in the folder ``FILE`` without its suffix (``last.pt``, ``log.csv``).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

COMMANDS = {
    "motion": "the warp generator's AU -> landmark motion model",
    "painter": "the warp generator's mouth painter",
}
"""Sub-command -> help."""


def warp_arguments(parser, action: str) -> None:
    """The options of ``coursekit train ACTION`` (the split's and the device's included)."""
    from .context import device_arguments
    from .scorers import length_arguments
    from .train import split_arguments

    parser.add_argument("config", help="tiny, paper, or a JSON file {preset, model, train}")
    parser.add_argument("--data", required=True, action="append", metavar="DIR",
                        help="processed dataset (coursekit preprocess); repeat for several")
    parser.add_argument("--out", required=True, help=f"checkpoint to write, e.g. {action}.pt")
    length_arguments(parser)
    parser.add_argument("--seed", type=int, help="default: the config's (0)")
    parser.add_argument("--exclude", metavar="CLIPS", help="speaker/utt names or speakers "
                        "kept out of training, e.g. others/brbk7n,others/lbax4n")
    parser.add_argument("--include", metavar="CLIPS", help="speaker/utt names or speakers "
                        "trained on although the split holds them out")
    if action == "motion":
        parser.add_argument("--audio2au", metavar="A.pt", help="fit and store this Audio2AU's "
                            "probability -> intensity map (the warp generator needs it)")
    device_arguments(parser, default=None)
    split_arguments(parser)


def register(train) -> None:
    """Add ``motion`` and ``painter`` to the ``coursekit train`` sub-parsers."""
    for action, what in COMMANDS.items():
        parser = train.add_parser(action, help=what)
        warp_arguments(parser, action)
        parser.set_defaults(func=train_warp)


# ----------------------------------------------------------------------------- clips


def _names(spec: str | None) -> set[str]:
    return {s.strip() for s in (spec or "").split(",") if s.strip()}


def _matches(clip: dict, names: set[str]) -> bool:
    return clip["speaker"] in names or f"{clip['speaker']}/{clip['utt']}" in names


def training_clips(args) -> tuple[list[dict], str]:
    """``(training clips, a line describing them)`` of ``--data``, the split, ``--exclude``
    and ``--include`` (see the module docstring); ValueError / FileNotFoundError otherwise."""
    from ..data.dataset import load_index
    from ..data.splits import make_split, split_settings

    clips = [c for root in args.data for c in load_index(root)]
    data = ", ".join(args.data)
    try:
        split = make_split(clips, **split_settings(args.split, args.test_speakers))
    except ValueError as err:
        raise ValueError(f"{data}: {err}") from None
    exclude, include = _names(args.exclude), _names(args.include)
    unknown = sorted(n for n in exclude | include if not any(_matches(c, {n}) for c in clips))
    if unknown:
        raise ValueError(f"{data}: no clip or speaker {', '.join(unknown)} (--exclude / "
                         "--include take speaker/utt names or speakers)")
    added = [c for c in split.val + split.test if _matches(c, include)]
    train = [c for c in split.train + added if not _matches(c, exclude)]
    if not train:
        raise ValueError(f"{data}: the split and --exclude leave no clip to train on")
    line = (f"{split.describe()}; trained on {len(train)} clips "
            f"({len(split.train) + len(added) - len(train)} excluded, {len(added)} included)")
    return train, line


# ----------------------------------------------------------------------------- configs


def prepare(args):
    """``(model config, training config, training clips, a line describing them)``;
    ValueError / FileNotFoundError with a one-line message."""
    from .scorers import apply_length, configs, crop_size

    if args.action == "motion":
        from ..models.motion import MotionConfig as Model
        from ..train.motion import MotionTrainConfig as Train
    else:
        from ..models.painter import PainterConfig as Model
        from ..train.painter import PainterTrainConfig as Train
    model_cfg, cfg, asked = configs(args.config, Model, Train)
    apply_length(cfg, args)
    if args.seed is not None:
        cfg.seed = args.seed
    if args.action == "painter":
        sizes = {root: crop_size(root) for root in args.data}
        size = sizes[args.data[0]]
        if len(set(sizes.values())) > 1:
            raise ValueError("--data: datasets of different face sizes ("
                             + ", ".join(f"{r}: {s} px" for r, s in sizes.items()) + ")")
        if asked is not None and asked != size:
            raise ValueError(f"{args.data[0]}: its face crops are {size} px, not the {asked} px "
                             f"of {args.config}")
        model_cfg = dataclasses.replace(model_cfg, image_size=size)
    return (model_cfg, cfg, *training_clips(args))


def audio_map_meta(path, clips: list[dict], data: list[str]) -> dict:
    """``{"audio_map", "audio_map_fitted_on"}`` of the Audio2AU checkpoint ``path`` (see the
    module docstring); ValueError (a checkpoint error included) otherwise."""
    from ..data.splits import clip_key
    from ..train.audio2au import load_audio2au
    from ..train.motion import fit_audio_map

    wanted = set(load_audio2au(path)[1].get("val_clips") or [])
    roots = [Path(r).resolve() for r in data]
    held = {r for r in roots for c in clips
            if clip_key(c) in wanted and Path(c["path"]).is_relative_to(r)}
    same = [c for c in clips if any(Path(c["path"]).is_relative_to(r) for r in held)]
    qmap = fit_audio_map(path, data[0], clips, same)
    return {"audio_map": {k: qmap[k] for k in ("probs", "intensities")},
            "audio_map_fitted_on": qmap["fitted_on"]}


# ----------------------------------------------------------------------------- command


def train_warp(args) -> int:
    """Body of ``coursekit train motion | painter`` (``--device`` / ``--threads`` applied by
    :func:`coursekit.cli.scorers.start`). Returns the exit status."""
    from ..checkpoint import read_checkpoint, save_model
    from .scorers import start

    prog = f"coursekit train {args.action}"
    prepared = start(args, prepare)
    if prepared is None:
        return 2
    model_cfg, cfg, clips, line = prepared
    out = Path(args.out)
    print(f"{prog}: split: {line}")
    if args.action == "painter":
        from ..train.painter import train_painter

        train_painter(clips, out, model_cfg, cfg, resume=args.resume, half=args.half)
    else:
        from ..train.motion import train_motion

        try:
            meta = audio_map_meta(args.audio2au, clips, args.data) if args.audio2au else None
        except (FileNotFoundError, ValueError) as err:
            print(f"{prog}: error: {err}", file=sys.stderr)
            return 2
        train_motion(args.data[0], clips, out, model_cfg, cfg, meta=meta, resume=args.resume)
        if args.half:  # train_motion writes fp32 weights
            ckpt = read_checkpoint(out)
            save_model(out, "motion", ckpt["model"], ckpt["model_config"], meta=ckpt["meta"],
                       half=True)
    meta = read_checkpoint(out)["meta"]
    print(f"{out}: {meta['steps']} steps in {meta['seconds'] / 60:.1f} min on {len(clips)} clips"
          + (" (no audio map: give --audio2au for the warp generator)"
             if args.action == "motion" and "audio_map" not in meta else ""))
    return 0
