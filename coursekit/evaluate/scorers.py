"""What reads generated frames: the *judge* (an AU classifier trained on real frames only),
the sync expert (LSE-D, LSE-C) and dlib's landmark tracker (LMD, AUs from landmarks)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..assets import TINY_DIR, default_scorers  # noqa: F401  the shipped scorers (one lookup)


def image_size(path) -> int | None:
    """The face size a checkpoint was trained on (its ``model_config``), None if unknown."""
    from ..checkpoint import read_checkpoint

    cfg = read_checkpoint(path).get("model_config") or {}
    return cfg.get("image_size")


@dataclass
class Scorers:
    """The loaded judge and sync expert (None where not given) and where they came from.
    ``sync_stats``: the expert's MFCC ``(mean, std)``, each ``(12, 1)``."""

    judge: torch.nn.Module | None = None
    judge_path: str | None = None
    expert: torch.nn.Module | None = None
    sync_stats: tuple | None = None
    sync_path: str | None = None

    def sync_mfcc(self, raw: np.ndarray) -> torch.Tensor | None:
        """Raw MFCC windows ``(T, 12, 28)`` normalised for the expert (None without one)."""
        if self.expert is None:
            return None
        return torch.from_numpy((raw - self.sync_stats[0]) / self.sync_stats[1])


def load_scorers(judge, syncnet, size: int) -> Scorers:
    """:class:`Scorers` from checkpoint paths or loaded models: ``judge`` an AU classifier,
    ``syncnet`` a sync expert or ``(expert, ckpt)`` of
    :func:`~coursekit.train.syncnet.load_syncnet`. Raises ValueError for a checkpoint made for
    another face size than ``size`` or one that is not an AU classifier."""
    from ..train.au_classifier import load_au_classifier
    from ..train.syncnet import load_syncnet

    judge_path = None if judge is None or isinstance(judge, torch.nn.Module) else str(judge)
    sync_path = None if syncnet is None or isinstance(syncnet, tuple) else str(syncnet)
    for path, what in ((judge_path, "judge"), (sync_path, "sync expert")):
        found = image_size(path) if path else None
        if found is not None and found != size:
            raise ValueError(f"{path}: the {what} works on {found} px faces, the generator "
                             f"makes {size} px")
    if judge_path:
        try:
            judge = load_au_classifier(judge_path)
        except (KeyError, TypeError, RuntimeError, ValueError) as err:  # another kind too
            raise ValueError(f"{judge_path}: not an AU classifier checkpoint "
                             f"({type(err).__name__}: {err})") from None
    expert, sync_ckpt = load_syncnet(sync_path) if sync_path else (syncnet or (None, None))
    stats = None
    if expert is not None:
        stats = (np.asarray(sync_ckpt["mfcc_mean"], np.float32).reshape(-1, 1),
                 np.asarray(sync_ckpt["mfcc_std"], np.float32).reshape(-1, 1))
    return Scorers(judge, judge_path, expert, stats, sync_path)


def track(frames: torch.Tensor, detector, identity_box, source: str) -> np.ndarray:
    """dlib landmarks ``(T, 68, 2)`` (crop pixels) of frames ``(T, 3, S, S)`` in [-1, 1];
    where no face is found at all (a failed generator), the identity's box in every frame."""
    from ..face import FaceError, track_landmarks
    from ..infer import to_uint8

    images = to_uint8(frames)
    try:
        return track_landmarks(images, detector, source=source)
    except FaceError:
        return np.stack([detector.landmarks(im, identity_box) for im in images])


def identity_box(detector, identity: torch.Tensor, size: int) -> np.ndarray:
    """The face box of the identity image ``(3, S, S)`` (the whole image when none is found)."""
    from ..infer import to_uint8

    boxes = detector.detect(to_uint8(identity[None])[0])
    return boxes[0] if boxes else np.array([0, 0, size, size], np.float32)


def sync(expert, frames: torch.Tensor, mfcc: torch.Tensor) -> dict | None:
    """:func:`~coursekit.metrics.sync_scores` with offsets up to 15 frames (fewer for short
    clips; None below 2 offsets)."""
    from ..metrics import sync_scores

    max_offset = min(15, len(frames) - expert.cfg.context)
    return None if max_offset < 1 else sync_scores(expert, frames, mfcc, max_offset=max_offset)
