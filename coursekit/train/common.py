"""What every training run needs beside the loop: seeds and CSV logs.

Devices live in :mod:`coursekit.runtime`, checkpoints in :mod:`coursekit.checkpoint`
(re-exported here for training code: :func:`save_checkpoint`, :func:`read_checkpoint`).
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

import numpy as np
import torch

from ..checkpoint import plain, read_checkpoint, save_checkpoint  # noqa: F401 (re-exported)
from ..runtime import pick_device  # noqa: F401 (re-exported)


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python's ``random``, numpy's global RNG and torch (CPU and CUDA).

    Returns a fresh ``torch.Generator`` seeded with ``seed`` for samplers / data order.
    """
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    return torch.Generator().manual_seed(seed)


class CSVLogger:
    """Append rows of numbers to a CSV file (e.g. one per epoch), flushed after each row.

    The columns are the keys of the first row (plus any given as ``fields``); a later row
    may leave columns out (empty cells) but not add new ones. ``append=False`` starts the
    file afresh. Use as a context manager or call :meth:`close`.
    """

    def __init__(self, path: str | Path, fields=None, append: bool = False):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fields = list(fields) if fields else None
        if append and self.path.is_file() and self.path.stat().st_size:
            with open(self.path, newline="") as f:
                self.fields = next(csv.reader(f))
            self._file = open(self.path, "a", newline="")
            self._writer = csv.DictWriter(self._file, self.fields)
        else:
            self._file = open(self.path, "w", newline="")
            self._writer = None
            if self.fields:
                self._start()

    def _start(self) -> None:
        self._writer = csv.DictWriter(self._file, self.fields)
        self._writer.writeheader()

    def log(self, **row) -> None:
        """Write one row (numbers, strings; tensors of one element are converted)."""
        row = {k: v.item() if hasattr(v, "item") and getattr(v, "ndim", 0) == 0 else v
               for k, v in row.items()}
        if self._writer is None:
            self.fields = list(row)
            self._start()
        extra = set(row) - set(self.fields)
        if extra:
            raise ValueError(f"{self.path}: columns {sorted(extra)} not in the header {self.fields}")
        self._writer.writerow(row)
        self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()

    def __enter__(self) -> "CSVLogger":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_csv_log(path: str | Path) -> list[dict]:
    """The rows of a :class:`CSVLogger` file, numbers parsed as float where possible."""
    rows = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            parsed = {}
            for k, v in row.items():
                try:
                    parsed[k] = float(v)
                except (TypeError, ValueError):
                    parsed[k] = v
            rows.append(parsed)
    return rows
