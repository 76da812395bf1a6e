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

One evaluation, two views:

* :func:`evaluate_checkpoint`: every score of a generator (either renderer, saved or in
  memory) on a processed dataset -- PSNR, SSIM, mouth LMD, AU F1/accuracy read by the judge,
  AU F1 read from tracked landmarks, and the sync expert's LSE-D/LSE-C -- for all rows,
  written by :func:`write_report` as Markdown + CSV in the paper's layout. From the command
  line::

      coursekit evaluate coursekit/assets/tiny/talker.pt --data processed64 --out runs/eval

* :func:`evaluate_talker`: its AU F1/accuracy and PSNR/SSIM of a model in memory (training
  notebooks, benchmarks).

The clips are those training left out, from the same split (:func:`select_clips`,
:func:`coursekit.data.splits.make_split`): held-out utterances and, with test speakers, every
clip of those speakers.

Modules: :mod:`.rows` (the baselines, shared by every table), :mod:`.talking` (generators),
:mod:`.audio2au` (Audio2AU's table), :mod:`.scorers` (judge, sync expert, landmarks),
:mod:`.silence` (silent audio), :mod:`.report` (Markdown and CSV).
"""

from .audio2au import evaluate_audio2au, results_table
from .report import COLUMNS, format3, summary_metrics, write_report
from .rows import (ROWS, copy_identity, fit_length, frame_rows, label_priors, position_predict,
                   shuffle_partners, shuffled_mfcc)
from .scorers import TINY_DIR, default_scorers
from .silence import silence_check
from .talking import as_generator, evaluate_checkpoint, evaluate_talker, generate, select_clips

__all__ = ["COLUMNS", "ROWS", "TINY_DIR", "as_generator", "copy_identity", "default_scorers",
           "evaluate_audio2au", "evaluate_checkpoint", "evaluate_talker", "fit_length",
           "format3", "frame_rows", "generate", "label_priors", "position_predict",
           "results_table", "select_clips", "shuffle_partners", "shuffled_mfcc",
           "silence_check", "summary_metrics", "write_report"]
