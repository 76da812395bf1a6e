"""The ``coursekit`` command line.

::

    coursekit course run [--out runs/latest] [--params lab.yaml] [--only 01] [--device cpu]
                         [--notebooks DIR]
    coursekit course sweep NOTEBOOK [--grid GRID.yaml] --out DIR [--force] [--only RUN ...]
                           [--set KEY=VALUE ...] [--device cpu]
    coursekit course labs [--out runs/labs] [--only 01] [--check] [--colab] [--notebooks DIR]
    coursekit course execute NOTEBOOK... [--timeout 1800]
    coursekit course grade SUBMISSION|FOLDER... --autograder DIR/autograder/NN_name.zip
                           [--out scores.csv]
    coursekit preprocess SRC DST [--workers 2] [--landmarks detect|ground-truth]
    coursekit train talker tiny|paper|CONFIG.json --data DIR --out DIR [--renderer decoder|diffusion]
                       [--minutes 6] [--resume] [--test-speakers s5,s6] [--split utterance|paper]
    coursekit train audio2au --data DIR --out DIR [--minutes 5] [--test-speakers s5,s6]
                       [--split utterance|paper]
    coursekit train judge|au-classifier|syncnet tiny|paper|CONFIG.json --data DIR --out FILE.pt
                       [--image-size N] [--minutes M] [--epochs E] [--steps N] [--resume]
                       [--half] [--device cpu] [--threads N] [--test-speakers s5,s6]
    coursekit train motion|painter tiny|paper|CONFIG.json --data DIR [--data DIR2] --out FILE.pt
                       [--exclude CLIPS] [--include CLIPS] [--audio2au A.pt] [--steps N] [--resume]
                       [--half] [--device cpu] [--threads N] [--test-speakers s5,s6]
    coursekit au calibrate
    coursekit evaluate CKPT --data DIR [--judge J] [--syncnet S] [--clips heldout|all]
                       [--speakers spk1,spk2] [--test-speakers s5,s6] [--split utterance|paper]
                       [--steps N] [--seed 0] [--out DIR] [--device cpu] [--threads N]
    coursekit generate [--checkpoint CKPT] --face IMAGE --audio AUDIO --out OUT.mp4
                       [--paste-back] [--device cpu] [--threads N] [--seed 0] [--steps N]
    coursekit checkpoint info PATH...
    coursekit checkpoint upgrade PATH... [--half]
    coursekit samples generate [--out data_samples] [--speakers 6] [--utterances 10]
    coursekit samples verify [--root data_samples]

Commands that run models take ``--device`` (and ``--threads`` for CPU runs), applied once at
the start as one :class:`coursekit.runtime.RunContext` (:mod:`.context`).
"""

from __future__ import annotations

import argparse
import sys

from . import checkpoint, data, run, train


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="coursekit", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="group", required=True)
    for group in (run, data, train, checkpoint):
        group.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
