"""The set-up the sample benchmarks share: the samples at 64 px and the course's split.

``talker_tiny.py``, ``diffusion_tiny.py``, ``fusions.py`` and ``syncnet_tiny.py`` all train on
the training utterances of spk1-spk4 and score the held-out utterances (every 5th) of those
speakers and every clip of the test speakers spk5-spk6, the split of
:func:`coursekit.train.talker.pipeline_split` (the one ``coursekit evaluate --test-speakers
spk5,spk6`` scores too).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

TEST_SPEAKERS = ("spk5", "spk6")


@dataclass
class Samples:
    """data: the processed samples (64 px, ground-truth landmarks and AUs); cfg: the tiny
    :class:`~coursekit.train.talker.PipelineConfig` with :data:`TEST_SPEAKERS`; split: its
    :class:`~coursekit.data.splits.Split` (``train``, ``heldout``, ``unseen``)."""

    data: Path
    cfg: object
    split: object


def tiny_samples(work, *, threads: int = 2, preprocess: bool = True,
                 renderer: str = "decoder") -> Samples:
    """Set torch's threads, preprocess ``data_samples/`` into ``work/processed64`` (skipped
    when done, or with ``preprocess=False``) and split it."""
    import torch

    from coursekit.data.corpus import SAMPLES_DIR
    from coursekit.data.preprocess import PreprocessConfig, preprocess_corpus
    from coursekit.train.talker import PipelineConfig, pipeline_split

    torch.set_num_threads(threads)
    data = Path(work) / "processed64"
    if preprocess:
        preprocess_corpus(SAMPLES_DIR, data, PreprocessConfig(size=64, landmarks="ground_truth",
                                                              aus="ground_truth"), workers=2)
    cfg = PipelineConfig.tiny(renderer)
    cfg.test_speakers = TEST_SPEAKERS
    return Samples(data, cfg, pipeline_split(data, cfg))


def f1_rows(scores: dict, names=None, digits: int = 3) -> list[str]:
    """Markdown rows ``| name | F1 per AU | **mean** |`` of ``evaluate_talker`` scores."""
    out = []
    for name in names or scores:
        f1 = scores[name]["f1"]
        out.append(f"| {name} | " + " | ".join(f"{v:.{digits}f}" for v in f1)
                   + f" | **{f1.mean():.{digits}f}** |")
    return out
