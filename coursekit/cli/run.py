"""``coursekit course``, ``evaluate`` and ``generate``: running the course and the models."""

from __future__ import annotations

import sys
from pathlib import Path

from .context import device_arguments, run_command
from .train import split_arguments


def _course_run(args) -> int:
    from ..course import load_parameters, run_course

    params = load_parameters(args.params)
    if args.device:
        params["device"] = args.device
    try:
        run_course(args.out, params, only=args.only, notebook_dir=args.notebooks)
    except FileNotFoundError as err:
        print(f"coursekit course run: error: {err}", file=sys.stderr)
        return 2
    return 0


def _course_sweep(args) -> int:
    import yaml

    from ..sweep import ABLATIONS, run_sweep

    overrides = {}
    for item in args.set or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            print(f"coursekit course sweep: error: --set wants KEY=VALUE, got {item!r}",
                  file=sys.stderr)
            return 2
        overrides[key.strip()] = yaml.safe_load(value)
    if args.device:
        overrides["device"] = args.device
    try:
        rows = run_sweep(args.notebook, args.grid or ABLATIONS, args.out, force=args.force,
                         only=args.only, overrides=overrides)
    except (FileNotFoundError, ValueError) as err:
        print(f"coursekit course sweep: error: {err}", file=sys.stderr)
        return 2
    return 1 if any(r["status"] == "error" for r in rows) else 0


def _course_labs(args) -> int:
    from ..labs import build_labs

    try:
        build_labs(args.out, notebook_dir=args.notebooks, only=args.only, check=args.check,
                   colab=args.colab)
    except (FileNotFoundError, ValueError, RuntimeError) as err:
        print(f"coursekit course labs: error: {err}", file=sys.stderr)
        return 2
    return 0


def _course_grade(args) -> int:
    from ..labs import grade_submissions

    try:
        grade_submissions(args.submissions, args.autograder, args.out)
    except (FileNotFoundError, RuntimeError) as err:
        print(f"coursekit course grade: error: {err}", file=sys.stderr)
        return 2
    return 0


def _course_execute(args) -> int:
    import time

    from ..stamps import execute_notebook

    for nb in args.notebooks:
        if not Path(nb).is_file():
            print(f"coursekit course execute: error: {nb}: no such notebook", file=sys.stderr)
            return 2
        start = time.time()
        stamps = execute_notebook(nb, timeout=args.timeout)
        print(f"{nb}: executed in {time.time() - start:.0f} s; checkpoints: "
              f"{', '.join(stamps) or 'none'}")
    return 0


def _evaluate(args) -> int:
    import json
    import time

    from ..evaluate import default_scorers, evaluate_checkpoint, write_report
    from ..infer import InferError, load_generator

    start = time.time()

    def scorers(size: int) -> tuple:
        """The given judge and sync expert, or those shipped for ``size`` px faces."""
        judge, syncnet = args.judge, args.syncnet
        shipped_judge, shipped_sync = default_scorers(size)
        for given, found, what, cols in ((judge, shipped_judge, "judge", "AU-F1, Acc"),
                                         (syncnet, shipped_sync, "syncnet", "LSE-D, LSE-C")):
            if given is None and found is None:
                print(f"note: no --{what} given and none shipped for {size} px faces: "
                      f"{cols} skipped")
        judge = shipped_judge if judge is None else judge
        syncnet = shipped_sync if syncnet is None else syncnet
        for path, what in ((judge, "judge"), (syncnet, "syncnet")):
            if path is not None and not Path(path).is_file():
                raise FileNotFoundError(f"{path}: no such {what} checkpoint")
        return judge, syncnet

    def body(ctx) -> int:
        if not Path(args.checkpoint).is_file():
            raise FileNotFoundError(f"{args.checkpoint}: no such checkpoint")
        if not Path(args.data).is_dir():
            raise FileNotFoundError(f"{args.data}: no such data folder (a processed dataset "
                                    "of `coursekit preprocess`)")
        gen = load_generator(args.checkpoint, str(ctx.torch_device))
        judge, syncnet = scorers(gen.image_size)
        results = evaluate_checkpoint(gen, args.data, judge=judge, syncnet=syncnet,
                                      clips=args.clips, speakers=args.speakers,
                                      test_speakers=args.test_speakers, split=args.split,
                                      steps=args.steps, seed=args.seed, max_clips=args.max_clips)
        out = Path(args.out or Path("runs") / "evaluate" / Path(args.checkpoint).stem)
        md, csv_path = write_report(results, out,
                                    title=f"Evaluation of {Path(args.checkpoint).name}")
        (out / "evaluation.json").write_text(json.dumps(results, indent=1) + "\n")
        lines = md.read_text().splitlines()
        first = next(i for i, line in enumerate(lines) if line.startswith("|"))
        print("\n".join(lines[first:first + 2 + len(results["rows"])]))
        print(f"wrote {md}, {csv_path} ({len(results['clips'])} clips, "
              f"{time.time() - start:.1f} s)")
        return 0

    return run_command(args, "coursekit evaluate", body, (FileNotFoundError, InferError, ValueError))


def _generate(args) -> int:
    import time

    from ..audio import AudioError
    from ..data.espeak import EspeakError
    from ..face import FaceError
    from ..infer import InferError, generate_video, text_video
    from ..video import VideoError

    if args.audio is None and args.text is None:
        print("coursekit generate: error: give --audio, --text or both", file=sys.stderr)
        return 2
    if args.phonemes is not None and args.text is None:
        print("coursekit generate: error: --phonemes needs --text", file=sys.stderr)
        return 2
    if args.landmarks and args.text is None:
        print("coursekit generate: error: --landmarks needs --text (the phonemes it reads)",
              file=sys.stderr)
        return 2

    def body(ctx) -> int:
        start = time.time()
        options = {"paste_back": args.paste_back, "device": str(ctx.torch_device),
                   "seed": args.seed, "steps": args.steps}
        if args.text is None:
            out = generate_video(args.checkpoint, args.face, args.audio, args.out, **options)
        else:
            phonemes = (Path(args.out).with_suffix(".phonemes.json") if args.phonemes == ""
                        else args.phonemes)
            out, _ = text_video(args.checkpoint, args.face, args.text, args.out, audio=args.audio,
                                voice=args.voice, rate=args.rate, pitch=args.pitch,
                                phonemes=phonemes, landmarks=args.landmarks, **options)
            if phonemes is not None:
                print(f"wrote {phonemes}")
        print(f"wrote {out} ({time.time() - start:.1f} s)")
        return 0

    return run_command(args, "coursekit generate", body, (FileNotFoundError, AudioError,
                       FaceError, InferError, VideoError, EspeakError))


def register(sub) -> None:
    """Add ``course``, ``evaluate`` and ``generate`` to the ``coursekit`` parser."""
    course = sub.add_parser("course", help="run the notebook course").add_subparsers(
        dest="action", required=True)
    run = course.add_parser("run", help="execute every notebook in order with papermill")
    run.add_argument("--out", default="runs/latest", help="run folder (default: runs/latest)")
    run.add_argument("--params", help="YAML or JSON file of notebook parameters")
    run.add_argument("--only", nargs="*", help="run only notebooks whose names contain these")
    run.add_argument("--notebooks", help="folder of the course notebooks (default: the source "
                     "checkout's notebooks/, else ./notebooks)")
    device_arguments(run, threads=False, default=None)
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
    device_arguments(sweep, threads=False, default=None)
    sweep.set_defaults(func=_course_sweep)

    labs = course.add_parser("labs", help="student notebooks (solutions stripped, checks kept) "
                             "and otter autograders of the notebooks' exercises")
    labs.add_argument("--out", default="runs/labs", help="labs folder: student/, autograder/ "
                      "(default: runs/labs)")
    labs.add_argument("--only", nargs="*", help="only notebooks whose names contain these")
    labs.add_argument("--notebooks", help="folder of the course notebooks (as for run)")
    labs.add_argument("--check", action="store_true", help="also grade each solution notebook "
                      "with its autograder (runs the notebooks) and fail unless it scores 100 %%")
    labs.add_argument("--colab", action="store_true", help="for Google Colab: the checks as "
                      "files in student/tests/ instead of inside the notebooks")
    labs.set_defaults(func=_course_labs)
    ex = course.add_parser("execute", help="execute notebooks in place (outputs stored) and "
                           "record the checkpoints each used in its metadata")
    ex.add_argument("notebooks", nargs="+", help="notebooks to execute (.ipynb)")
    ex.add_argument("--timeout", type=int, default=1800, help="seconds a cell may take")
    ex.set_defaults(func=_course_execute)
    grade = course.add_parser("grade", help="grade handed-in notebooks with an autograder of "
                              "`course labs` (otter, no Docker) into one CSV")
    grade.add_argument("submissions", nargs="+", help="notebooks (.ipynb, or otter .zip) or "
                       "folders of them")
    grade.add_argument("--autograder", required=True, help="DIR/autograder/NN_name.zip")
    grade.add_argument("--out", help="CSV of the scores (one row per submission)")
    grade.set_defaults(func=_course_grade)

    ev = sub.add_parser("evaluate", help="score a generator checkpoint beside its baselines "
                        "(PSNR, SSIM, LMD, AU F1, LSE-D/C)")
    ev.add_argument("checkpoint", help="generator checkpoint (talker.pt or diffusion.pt)")
    ev.add_argument("--data", required=True, help="processed dataset at the generator's size")
    ev.add_argument("--judge", help="AU classifier for scoring (default: the shipped one for "
                    "the generator's face size, coursekit/assets/tiny/judge.pt at 64 px)")
    ev.add_argument("--syncnet", help="sync expert (default: the shipped one for the "
                    "generator's face size, coursekit/assets/tiny/syncnet.pt at 64 px)")
    ev.add_argument("--clips", choices=("heldout", "all"), default="heldout",
                    help="the clips training left out (default: every 5th utterance per "
                    "speaker and the test speakers' clips) or all clips")
    ev.add_argument("--speakers", help="comma-separated speakers (default: all)")
    split_arguments(ev)
    ev.add_argument("--max-clips", type=int, help="evaluate only the first N clips")
    ev.add_argument("--steps", type=int, help="sampling steps of a diffusion renderer")
    ev.add_argument("--seed", type=int, default=0, help="noise seed of a diffusion renderer")
    device_arguments(ev)
    ev.add_argument("--out", help="report folder (default: runs/evaluate/<checkpoint name>)")
    ev.set_defaults(func=_evaluate)

    video = sub.add_parser("generate", help="a talking-face video from a face photo and a voice")
    video.add_argument("--checkpoint", help="generator: a checkpoint (talker.pt, diffusion.pt), "
                       "a warp_generator .json, or a shipped one by name: warp, diffusion, "
                       "decoder (default: warp, coursekit/assets/grid/warp.json: the photo's "
                       "own pixels moved by the speech)")
    video.add_argument("--face", required=True, help="photo with a frontal face (the largest is used)")
    video.add_argument("--audio", help="speech: wav, flac, mp3, or a video's sound")
    video.add_argument("--text", help="a sentence to say in espeak-ng's voice; with --audio, "
                       "the recording's transcript (its phonemes are aligned to it)")
    video.add_argument("--voice", default="en-us", help="espeak voice of --text, e.g. en-gb, "
                       "en-us+f3 (default en-us)")
    video.add_argument("--rate", type=int, default=160, help="words per minute of --text, "
                       "80-450 (default 160)")
    video.add_argument("--pitch", type=int, default=50, help="pitch of --text, 0-99 (default 50)")
    video.add_argument("--phonemes", nargs="?", const="", metavar="PATH", help="with --text: "
                       "write the phoneme and word timings (.json or .csv; default OUT with "
                       ".phonemes.json)")
    video.add_argument("--landmarks", nargs="?", const=True, default=False, metavar="CKPT",
                       help="with --text and the warp generator: drive the mouth by the "
                       "multimodal landmark predictor (the text's phonemes and the speech, Yu "
                       "et al. 2020) instead of the AU route; CKPT: another predictor than the "
                       "shipped grid/landmarks.pt")
    video.add_argument("--out", required=True, help="the .mp4 to write (H.264 + the input audio)")
    video.add_argument("--paste-back", action="store_true",
                       help="the whole photo at its own resolution (default: the face crop)")
    device_arguments(video)
    video.add_argument("--seed", type=int, default=0, help="for sampling renderers (default 0)")
    video.add_argument("--steps", type=int, help="sampling steps of a diffusion renderer")
    video.set_defaults(func=_generate)
