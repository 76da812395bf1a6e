"""The ``coursekit`` command line.

::

    coursekit course run [--out runs/latest] [--params lab.yaml] [--only 01]
    coursekit course sweep NOTEBOOK [--grid GRID.yaml] --out DIR [--force] [--only RUN ...]
                           [--set KEY=VALUE ...]
    coursekit preprocess SRC DST [--workers 2] [--landmarks detect|ground-truth]
    coursekit train talker tiny|paper|CONFIG.json --data DIR --out DIR [--renderer decoder|diffusion]
                       [--minutes 6] [--resume] [--test-speakers s5,s6] [--split utterance|paper]
    coursekit train audio2au --data DIR --out DIR [--minutes 5] [--test-speakers s5,s6]
                       [--split utterance|paper]
    coursekit au calibrate
    coursekit evaluate CKPT --data DIR [--judge J] [--syncnet S] [--clips heldout|all]
                       [--speakers spk1,spk2] [--test-speakers s5,s6] [--split utterance|paper]
                       [--steps N] [--seed 0] [--out DIR]
    coursekit generate --checkpoint CKPT --face IMAGE --audio AUDIO --out OUT.mp4
                       [--paste-back] [--device cpu] [--seed 0] [--steps N]
    coursekit samples generate [--out data_samples] [--speakers 6] [--utterances 10]
    coursekit samples verify [--root data_samples]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _course_run(args) -> int:
    from .course import load_parameters, run_course

    run_course(args.out, load_parameters(args.params), only=args.only)
    return 0


def _course_sweep(args) -> int:
    import yaml

    from .sweep import ABLATIONS, run_sweep

    overrides = {}
    for item in args.set or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            print(f"coursekit course sweep: error: --set wants KEY=VALUE, got {item!r}",
                  file=sys.stderr)
            return 2
        overrides[key.strip()] = yaml.safe_load(value)
    try:
        rows = run_sweep(args.notebook, args.grid or ABLATIONS, args.out, force=args.force,
                         only=args.only, overrides=overrides)
    except (FileNotFoundError, ValueError) as err:
        print(f"coursekit course sweep: error: {err}", file=sys.stderr)
        return 2
    return 1 if any(r["status"] == "error" for r in rows) else 0


def _evaluate(args) -> int:
    import json
    import time

    from .evaluate import default_scorers, evaluate_checkpoint, write_report
    from .infer import InferError, load_generator

    start = time.time()
    try:
        if not Path(args.checkpoint).is_file():
            raise FileNotFoundError(f"{args.checkpoint}: no such checkpoint")
        if not Path(args.data).is_dir():
            raise FileNotFoundError(f"{args.data}: no such data folder (a processed dataset "
                                    "of `coursekit preprocess`)")
        gen = load_generator(args.checkpoint, args.device)
        judge, syncnet = args.judge, args.syncnet
        if judge is None or syncnet is None:
            tiny_judge, tiny_sync = default_scorers(gen.image_size)
            for given, found, what, cols in ((judge, tiny_judge, "judge", "AU-F1, Acc"),
                                             (syncnet, tiny_sync, "syncnet", "LSE-D, LSE-C")):
                if given is None and found is None:
                    print(f"note: no --{what} for {gen.image_size} px faces (the committed "
                          f"ones are 64 px): {cols} skipped")
            judge = tiny_judge if judge is None else judge
            syncnet = tiny_sync if syncnet is None else syncnet
        for path, what in ((judge, "judge"), (syncnet, "syncnet")):
            if path is not None and not Path(path).is_file():
                raise FileNotFoundError(f"{path}: no such {what} checkpoint")
        results = evaluate_checkpoint(gen, args.data, judge=judge, syncnet=syncnet,
                                      clips=args.clips, speakers=args.speakers,
                                      test_speakers=args.test_speakers, split=args.split,
                                      steps=args.steps, seed=args.seed, max_clips=args.max_clips)
    except (FileNotFoundError, InferError, ValueError) as err:
        print(f"coursekit evaluate: error: {err}", file=sys.stderr)
        return 2
    out = Path(args.out or Path("runs") / "evaluate" / Path(args.checkpoint).stem)
    md, csv_path = write_report(results, out, title=f"Evaluation of {Path(args.checkpoint).name}")
    (out / "evaluation.json").write_text(json.dumps(results, indent=1) + "\n")
    lines = md.read_text().splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("|"))
    print("\n".join(lines[first:first + 2 + len(results["rows"])]))
    print(f"wrote {md}, {csv_path} ({len(results['clips'])} clips, "
          f"{time.time() - start:.1f} s)")
    return 0


def _samples_generate(args) -> int:
    from .data.synth import CorpusConfig, generate_corpus

    cfg = CorpusConfig(n_speakers=args.speakers, n_utterances=args.utterances, seed=args.seed)
    out = generate_corpus(args.out, cfg)
    print(f"sample corpus written to {out}")
    return 0


def _samples_verify(args) -> int:
    from .data.corpus import verify_checksums

    bad = verify_checksums(args.root)
    for line in bad:
        print(line, file=sys.stderr)
    print(f"{args.root}: {'OK' if not bad else f'{len(bad)} problem(s)'}")
    return 1 if bad else 0


def _preprocess(args) -> int:
    from .data.preprocess import PreprocessConfig, preprocess_corpus

    cfg = PreprocessConfig(size=args.size, landmarks=args.landmarks.replace("-", "_"),
                           aus=args.aus.replace("-", "_"))
    summary = preprocess_corpus(args.src, args.dst, cfg, workers=args.workers,
                                speakers=args.speakers)
    fps = summary["frames"] / max(summary["seconds"], 1e-9)
    print(f"{summary['done']} clips processed ({summary['frames']} frames, {fps:.0f} frames/s), "
          f"{summary['skipped']} already done, {len(summary['failed'])} failed")
    for key, message in summary["failed"].items():
        print(f"  failed {key}: {message}", file=sys.stderr)
    print(f"index: {summary['index']}")
    return 1 if summary["failed"] else 0


def _au_calibrate(args) -> int:
    from . import au
    from .data.corpus import tracked_clips

    print(au.format_weights(au.calibrate(*tracked_clips(args.root, au.TRAIN_SPEAKERS))))
    return 0


def _train_talker(args) -> int:
    import json

    from .data.splits import split_settings
    from .train.talker import PipelineConfig, pipeline_split, train_pipeline

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
        pipeline_split(args.data, cfg)  # bad speakers or data: an error before any training
    except (FileNotFoundError, ValueError) as err:
        print(f"coursekit train talker: error: {err}", file=sys.stderr)
        return 2
    result = train_pipeline(args.data, args.out, cfg, resume=args.resume)
    print(f"split: {result['split'].describe()}")
    for name, path in result["paths"].items():
        print(f"{name}: {path}")
    return 0


def _train_audio2au(args) -> int:
    from .data.splits import load_split, split_settings
    from .train.audio2au import cli

    try:  # bad speakers or data: an error before any training
        load_split(args.data, **split_settings(args.split, args.test_speakers))
    except (FileNotFoundError, ValueError) as err:
        print(f"coursekit train audio2au: error: {err}", file=sys.stderr)
        return 2
    return cli(args) or 0


def _generate(args) -> int:
    import time

    from .audio import AudioError
    from .face import FaceError
    from .infer import InferError, generate_video
    from .video import VideoError

    start = time.time()
    try:
        out = generate_video(args.checkpoint, args.face, args.audio, args.out,
                             paste_back=args.paste_back, device=args.device, seed=args.seed,
                             steps=args.steps)
    except (FileNotFoundError, AudioError, FaceError, InferError, VideoError) as err:
        print(f"coursekit generate: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {out} ({time.time() - start:.1f} s)")
    return 0


def _split_arguments(parser: argparse.ArgumentParser) -> None:
    """``--test-speakers`` and ``--split``: the split of :func:`coursekit.data.splits.make_split`
    (give ``coursekit evaluate`` the same ones as ``coursekit train``)."""
    from .data.splits import GRID_TEST_SPEAKERS, SPLITS

    parser.add_argument("--test-speakers", metavar="S1,S2",
                        help="comma-separated speakers kept out of training and evaluated")
    parser.add_argument("--split", choices=tuple(SPLITS),
                        help="utterance: every 5th utterance per speaker held out (default); "
                        "paper: GRID's 27 training / 6 test speakers "
                        f"({', '.join(GRID_TEST_SPEAKERS)})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="coursekit", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="group", required=True)

    course = sub.add_parser("course", help="run the notebook course").add_subparsers(
        dest="action", required=True)
    run = course.add_parser("run", help="execute every notebook in order with papermill")
    run.add_argument("--out", default="runs/latest", help="run folder (default: runs/latest)")
    run.add_argument("--params", help="YAML or JSON file of notebook parameters")
    run.add_argument("--only", nargs="*", help="run only notebooks whose names contain these")
    run.set_defaults(func=_course_run)
    sweep = course.add_parser("sweep", help="run one notebook once per parameter set of a grid "
                              "and tabulate each run's metrics.json")
    sweep.add_argument("notebook", help="the notebook to run (e.g. notebooks/06_training.ipynb)")
    sweep.add_argument("--grid", help="YAML grid: common: {...}, runs: {name: {...}} "
                       "(default: the course's ablations, coursekit/ablations.yaml)")
    sweep.add_argument("--out", required=True, help="folder: one sub-folder per run, sweep.md/.csv")
    sweep.add_argument("--force", action="store_true", help="re-run runs that finished before")
    sweep.add_argument("--only", nargs="*", help="run only these runs of the grid")
    sweep.add_argument("--set", action="append", metavar="KEY=VALUE",
                       help="a parameter for every run (YAML value), e.g. --set minutes=20")
    sweep.set_defaults(func=_course_sweep)

    pre = sub.add_parser("preprocess", help="GRID-layout corpus -> processed training dataset")
    pre.add_argument("src", help="corpus folder (<speaker>/video/<utt>.mpg|mp4, align/, ...)")
    pre.add_argument("dst", help="output folder (resumable: complete clips are skipped)")
    pre.add_argument("--workers", type=int, default=1, help="processes (default 1)")
    pre.add_argument("--size", type=int, default=112, help="face crop size in pixels")
    pre.add_argument("--landmarks", choices=["detect", "ground-truth"], default="detect")
    pre.add_argument("--aus", choices=["estimate", "openface", "ground-truth"], default="estimate")
    pre.add_argument("--speakers", nargs="*", help="only these speaker folders")
    pre.set_defaults(func=_preprocess)

    train = sub.add_parser("train", help="train the networks").add_subparsers(
        dest="action", required=True)
    talker = train.add_parser("talker", help="AU classifier, Audio2AU, then the whole model")
    talker.add_argument("config", help="tiny, paper, or a JSON file of PipelineConfig fields")
    talker.add_argument("--data", required=True, help="processed dataset (coursekit preprocess)")
    talker.add_argument("--out", required=True, help="folder for checkpoints and logs")
    talker.add_argument("--renderer", choices=("decoder", "diffusion"),
                        help="image decoder (the paper's model, default) or diffusion renderer")
    talker.add_argument("--minutes", type=float, help="time budget of the end-to-end stage")
    talker.add_argument("--device", help="cpu, cuda, cuda:1, ...")
    talker.add_argument("--resume", action="store_true", help="keep finished stages in --out "
                        "and continue the end-to-end stage from its last checkpoint")
    _split_arguments(talker)
    talker.set_defaults(func=_train_talker)
    a2a = train.add_parser("audio2au", help="pretrain Audio2AU (MFCC windows -> AUs)")
    a2a.add_argument("--data", required=True)
    a2a.add_argument("--out", required=True)
    a2a.add_argument("--minutes", type=float, default=5.0)
    a2a.add_argument("--epochs", type=int, default=100)
    a2a.add_argument("--seed", type=int, default=0)
    _split_arguments(a2a)
    a2a.set_defaults(func=_train_audio2au)

    aus = sub.add_parser("au", help="the landmark AU estimator").add_subparsers(
        dest="action", required=True)
    cal = aus.add_parser("calibrate", help="refit coursekit.au.WEIGHTS on the samples' "
                         "training speakers and print them")
    cal.add_argument("--root", default=str(Path(__file__).resolve().parent.parent / "data_samples"))
    cal.set_defaults(func=_au_calibrate)

    ev = sub.add_parser("evaluate", help="score a generator checkpoint beside its baselines "
                        "(PSNR, SSIM, LMD, AU F1, LSE-D/C)")
    ev.add_argument("checkpoint", help="generator checkpoint (talker.pt or diffusion.pt)")
    ev.add_argument("--data", required=True, help="processed dataset at the generator's size")
    ev.add_argument("--judge", help="AU classifier for scoring (default: checkpoints/tiny/"
                    "judge.pt for 64 px generators)")
    ev.add_argument("--syncnet", help="sync expert (default: checkpoints/tiny/syncnet.pt for "
                    "64 px generators)")
    ev.add_argument("--clips", choices=("heldout", "all"), default="heldout",
                    help="the clips training left out (default: every 5th utterance per "
                    "speaker and the test speakers' clips) or all clips")
    ev.add_argument("--speakers", help="comma-separated speakers (default: all)")
    _split_arguments(ev)
    ev.add_argument("--max-clips", type=int, help="evaluate only the first N clips")
    ev.add_argument("--steps", type=int, help="sampling steps of a diffusion renderer")
    ev.add_argument("--seed", type=int, default=0, help="noise seed of a diffusion renderer")
    ev.add_argument("--device", default="cpu", help="cpu, cuda, auto, ... (default cpu)")
    ev.add_argument("--out", help="report folder (default: runs/evaluate/<checkpoint name>)")
    ev.set_defaults(func=_evaluate)

    video = sub.add_parser("generate", help="a talking-face video from a face photo and a voice")
    video.add_argument("--checkpoint", required=True, help="generator checkpoint (talker.pt)")
    video.add_argument("--face", required=True, help="photo with a frontal face (the largest is used)")
    video.add_argument("--audio", required=True, help="speech: wav, flac, mp3, or a video's sound")
    video.add_argument("--out", required=True, help="the .mp4 to write (H.264 + the input audio)")
    video.add_argument("--paste-back", action="store_true",
                       help="put the face back into the whole photo (default: the face crop)")
    video.add_argument("--device", default="cpu", help="cpu, cuda, auto, ... (default cpu)")
    video.add_argument("--seed", type=int, default=0, help="for sampling renderers (default 0)")
    video.add_argument("--steps", type=int, help="sampling steps of a diffusion renderer")
    video.set_defaults(func=_generate)

    samples = sub.add_parser("samples", help="the shipped sample corpus").add_subparsers(
        dest="action", required=True)
    gen = samples.add_parser("generate", help="(re)generate the synthetic talking-face corpus")
    gen.add_argument("--out", default="data_samples")
    gen.add_argument("--speakers", type=int, default=6)
    gen.add_argument("--utterances", type=int, default=10)
    gen.add_argument("--seed", type=int, default=2026)
    gen.set_defaults(func=_samples_generate)
    ver = samples.add_parser("verify", help="check the corpus files against corpus.json")
    ver.add_argument("--root", default="data_samples", type=Path)
    ver.set_defaults(func=_samples_verify)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
