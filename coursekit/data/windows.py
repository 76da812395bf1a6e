"""Epochs that see every frame: a dataset of all the frame windows of the training clips.

An *epoch* of the course's training runs is one pass over every frame window of the
training clips, not one random window per clip. :class:`FrameWindows` tiles each clip of
``n`` frames with ``k = ceil(n / seq_len)`` windows of ``seq_len`` frames whose starts are
spread evenly from the first frame to the last possible one, so together they cover every
frame; each epoch jitters the inner starts (by at most half the overlap, so the cover
stays complete) with an RNG seeded by ``(seed, epoch, clip)``, so epochs see different
windows while a resumed run replays exactly the same ones. Items are read from the
memory-mapped ``.npy`` files of the processed dataset: RAM holds a batch, not the corpus.

With ``seq_len=1`` every item is one frame (the AU classifier); with ``seq_len=None`` every
item is a whole clip.
"""

from __future__ import annotations

import math

import numpy as np

from .dataset import DEFAULT_FIELDS, TalkingFaceDataset


def window_starts(n: int, seq_len: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """Starts of the ``ceil(n / seq_len)`` windows that cover ``n`` frames (a clip shorter
    than a window gives one window at 0). ``rng`` jitters the inner starts."""
    span = n - seq_len
    if span <= 0:
        return np.zeros(1, dtype=np.int64)
    k = math.ceil(n / seq_len)  # >= 2 here
    spacing = span / (k - 1)
    starts = np.round(np.arange(k) * spacing).astype(np.int64)
    slack = int((seq_len - math.ceil(spacing)) // 2)
    if rng is not None and slack > 0 and k > 2:
        starts[1:-1] += rng.integers(-slack, slack + 1, size=k - 2)
    return np.clip(starts, 0, span)


class FrameWindows(TalkingFaceDataset):
    """Every frame window of ``clips`` (see the module docstring); items as
    :class:`~coursekit.data.dataset.TalkingFaceDataset`'s (``frames (T, 3, S, S)``,
    ``mfcc (T, 12, 28)``, ``aus (T, 5)``, ..., ``mask (T,)``, ``start``).

    ``len(dataset)`` is the number of windows of one epoch (the same every epoch);
    :meth:`set_epoch` picks that epoch's jitter.
    """

    def __init__(self, root, clips: list[dict] | None = None, seq_len: int | None = 16, *,
                 seed: int = 0, fields=DEFAULT_FIELDS, normalize_mfcc=None, mmap: bool = True):
        super().__init__(root, clips, seq_len, random_window=False, seed=seed, fields=fields,
                         normalize_mfcc=normalize_mfcc, mmap=mmap)
        lengths = [int(c["n_frames"]) for c in self.clips]
        counts = [1 if seq_len is None else len(window_starts(n, int(seq_len))) for n in lengths]
        self._clip_of = np.repeat(np.arange(len(self.clips)), counts)
        self._slot = np.concatenate([np.arange(c) for c in counts]) if counts else np.zeros(0, int)
        self._starts: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self._clip_of)

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        self._starts = {}

    def _clip_starts(self, c: int) -> np.ndarray:
        if c not in self._starts:
            rng = np.random.default_rng([int(self.seed or 0), self.epoch, c])
            self._starts[c] = window_starts(int(self.clips[c]["n_frames"]), self.seq_len, rng)
        return self._starts[c]

    def clip_index(self, i: int) -> int:
        """The clip (index into ``clips``) of item ``i``."""
        return int(self._clip_of[i])

    def __getitem__(self, i: int) -> dict:
        c = int(self._clip_of[i])
        n = int(self.clips[c]["n_frames"])
        if self.seq_len is None:
            start, n_real = 0, n
        else:
            start = int(self._clip_starts(c)[self._slot[i]])
            n_real = min(self.seq_len, n - start)
        return self._item(c, start, n_real)

    def __repr__(self) -> str:
        return (f"FrameWindows({self.root}, {len(self.clips)} clips, {len(self)} windows of "
                f"{self.seq_len} frames)")
