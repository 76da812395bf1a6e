"""``coursekit preprocess``, ``samples`` and ``au``: making and checking data."""

from __future__ import annotations

import sys
from pathlib import Path


def _samples_generate(args) -> int:
    from ..data.synth import CorpusConfig, generate_corpus

    cfg = CorpusConfig(n_speakers=args.speakers, n_utterances=args.utterances, seed=args.seed)
    out = generate_corpus(args.out, cfg)
    print(f"sample corpus written to {out}")
    return 0


def _samples_verify(args) -> int:
    from ..data.corpus import verify_checksums

    bad = verify_checksums(args.root)
    for line in bad:
        print(line, file=sys.stderr)
    print(f"{args.root}: {'OK' if not bad else f'{len(bad)} problem(s)'}")
    return 1 if bad else 0


def _preprocess(args) -> int:
    from ..data.preprocess import PreprocessConfig, preprocess_corpus

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
    from .. import au
    from ..data.corpus import SAMPLES_DIR, tracked_clips

    try:
        clips = tracked_clips(args.root or SAMPLES_DIR, au.TRAIN_SPEAKERS)
    except FileNotFoundError as err:
        print(f"coursekit au calibrate: error: {err}", file=sys.stderr)
        return 2
    print(au.format_weights(au.calibrate(*clips)))
    return 0


def register(sub) -> None:
    """Add ``preprocess``, ``au`` and ``samples`` to the ``coursekit`` parser."""
    pre = sub.add_parser("preprocess", help="GRID-layout corpus -> processed training dataset")
    pre.add_argument("src", help="corpus folder (<speaker>/video/<utt>.mpg|mp4, align/, ...)")
    pre.add_argument("dst", help="output folder (resumable: complete clips are skipped)")
    pre.add_argument("--workers", type=int, default=1, help="processes (default 1)")
    pre.add_argument("--size", type=int, default=112, help="face crop size in pixels")
    pre.add_argument("--landmarks", choices=["detect", "ground-truth"], default="detect")
    pre.add_argument("--aus", choices=["estimate", "openface", "ground-truth"], default="estimate")
    pre.add_argument("--speakers", nargs="*", help="only these speaker folders")
    pre.set_defaults(func=_preprocess)

    aus = sub.add_parser("au", help="the landmark AU estimator").add_subparsers(
        dest="action", required=True)
    cal = aus.add_parser("calibrate", help="refit coursekit.au.WEIGHTS on the samples' "
                         "training speakers and print them")
    cal.add_argument("--root", help="the sample corpus (default: the source checkout's "
                     "data_samples/, else ./data_samples)")
    cal.set_defaults(func=_au_calibrate)

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

