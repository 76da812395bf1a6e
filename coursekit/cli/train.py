"""``coursekit train ...``: the training commands (one per model)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _train_talker(args) -> int:
    import json

    from ..data.splits import split_settings
    from ..runtime import RunContext
    from ..train.talker import PipelineConfig, pipeline_split, train_pipeline

    if args.config in ("tiny", "paper"):
        cfg = getattr(PipelineConfig, args.config)(renderer=args.renderer or "decoder")
    else:
        cfg = PipelineConfig.from_dict(json.loads(Path(args.config).read_text()))
        if args.renderer:
            cfg.renderer = args.renderer
    if args.minutes is not None:
        cfg.set_minutes(args.minutes)
    if args.device:
        cfg.set_device(args.device)
    try:
        if args.split or args.test_speakers:
            settings = split_settings(args.split, args.test_speakers)
            cfg.test_speakers = tuple(settings["test_speakers"] or ())
            cfg.holdout_every = settings["holdout_every"]
        pipeline_split(args.data, cfg)  # bad speakers, data or device: an error before training
        stage = cfg.diffusion_train if cfg.renderer == "diffusion" else cfg.talker
        RunContext(device=args.device or stage.device, threads=args.threads).apply()
    except (FileNotFoundError, ValueError) as err:
        print(f"coursekit train talker: error: {err}", file=sys.stderr)
        return 2
    result = train_pipeline(args.data, args.out, cfg, resume=args.resume)
    print(f"split: {result['split'].describe()}")
    for name, path in result["paths"].items():
        print(f"{name}: {path}")
    return 0


def _train_audio2au(args) -> int:
    from ..data.splits import load_split, split_settings
    from ..runtime import RunContext
    from ..train.audio2au import cli

    try:  # bad speakers, data or device: an error before any training
        load_split(args.data, **split_settings(args.split, args.test_speakers))
        RunContext(device=args.device, threads=args.threads).apply()
    except (FileNotFoundError, ValueError) as err:
        print(f"coursekit train audio2au: error: {err}", file=sys.stderr)
        return 2
    return cli(args) or 0


def _train_scorer(args) -> int:
    from .scorers import train_scorer

    return train_scorer(args)


def split_arguments(parser: argparse.ArgumentParser) -> None:
    """``--test-speakers`` and ``--split``: the split of :func:`coursekit.data.splits.make_split`
    (give ``coursekit evaluate`` the same ones as ``coursekit train``)."""
    from ..data.splits import GRID_TEST_SPEAKERS, SPLITS

    parser.add_argument("--test-speakers", metavar="S1,S2",
                        help="comma-separated speakers kept out of training and evaluated")
    parser.add_argument("--split", choices=tuple(SPLITS),
                        help="utterance: every 5th utterance per speaker held out (default); "
                        "paper: GRID's 27 training / 6 test speakers "
                        f"({', '.join(GRID_TEST_SPEAKERS)})")


def register(sub) -> None:
    """Add ``train`` and its sub-commands to the ``coursekit`` parser."""
    train = sub.add_parser("train", help="train the networks").add_subparsers(
        dest="action", required=True)
    talker = train.add_parser("talker", help="AU classifier, Audio2AU, then the whole model")
    talker.add_argument("config", help="tiny, paper, or a JSON file of PipelineConfig fields")
    talker.add_argument("--data", required=True, help="processed dataset (coursekit preprocess)")
    talker.add_argument("--out", required=True, help="folder for checkpoints and logs")
    talker.add_argument("--renderer", choices=("decoder", "diffusion"),
                        help="image decoder (the paper's model, default) or diffusion renderer")
    talker.add_argument("--minutes", type=float, help="time budget of the end-to-end stage")
    talker.add_argument("--device", help="cpu, cuda, cuda:1, ... for every stage (default: "
                        "the config's)")
    talker.add_argument("--threads", type=int, help="CPU threads of a CPU run")
    talker.add_argument("--resume", action="store_true", help="keep finished stages in --out "
                        "and continue the end-to-end stage from its last checkpoint")
    split_arguments(talker)
    talker.set_defaults(func=_train_talker)
    a2a = train.add_parser("audio2au", help="pretrain Audio2AU (MFCC windows -> AUs)")
    a2a.add_argument("--data", required=True)
    a2a.add_argument("--out", required=True)
    a2a.add_argument("--minutes", type=float, default=5.0)
    a2a.add_argument("--epochs", type=int, default=100)
    a2a.add_argument("--seed", type=int, default=0)
    a2a.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    a2a.add_argument("--threads", type=int, help="CPU threads of a CPU run (default: torch's)")
    a2a.add_argument("--model", choices=("paper", "cpu"), default="paper",
                     help="Audio2AU sizes (coursekit.train.audio2au.MODEL_PRESETS)")
    split_arguments(a2a)
    a2a.set_defaults(func=_train_audio2au)
    from .context import device_arguments
    from .scorers import COMMANDS, scorer_arguments

    for name, what in COMMANDS.items():  # judge, au-classifier, syncnet
        scorer = train.add_parser(name, help=what)
        scorer_arguments(scorer)
        device_arguments(scorer, default=None)
        split_arguments(scorer)
        scorer.set_defaults(func=_train_scorer)
    from .warp import register as register_warp

    register_warp(train)  # motion, painter


