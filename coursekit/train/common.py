"""What every training loop needs: seeds, a device, checkpoints that survive a crash, a log.

Checkpoints are plain ``torch.save`` dicts that load with ``torch.load(weights_only=True)``
(no pickled code: safe to open files from elsewhere). Keep them to tensors, dicts, lists,
strings and numbers: store configs as ``dataclasses.asdict(cfg)`` and arrays as tensors
(:func:`plain` converts).
"""

from __future__ import annotations

import csv
import dataclasses
import os
import random
import tempfile
from pathlib import Path

import numpy as np
import torch


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


def pick_device(name: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` (or None): CUDA if available, else Apple's MPS, else CPU. Otherwise the
    named device (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``), with a clear error when
    it is not available here."""
    if name is None or str(name) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but CUDA is not available "
                         "(use 'cpu' or 'auto')")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None)
                                     and torch.backends.mps.is_available()):
        raise ValueError(f"device {name!r} asked for, but MPS is not available (use 'cpu')")
    return device


def plain(obj):
    """``obj`` with dataclasses turned into dicts, numpy arrays into tensors, tuples into
    lists, numpy scalars into Python numbers and dict keys into strings (integer keys stay
    integers, as in an optimizer's ``state_dict``): what ``weights_only=True`` can load."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return plain(dataclasses.asdict(obj))
    if isinstance(obj, dict):  # int keys stay ints (an optimizer's state is keyed by index)
        return {(int(k) if isinstance(k, (int, np.integer)) and not isinstance(k, bool)
                 else str(k)): plain(v)
                for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(obj))
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    return obj


def save_checkpoint(path: str | Path, **state) -> Path:
    """Write ``state`` (tensors, state_dicts, plain dicts, numbers, strings) atomically.

    The dict goes to a temporary file in the same folder, flushed to disk, then renamed over
    ``path`` with ``os.replace`` (atomic): a crash leaves either the old or the new file,
    never a truncated one, and no temporary file is left behind. Values pass through
    :func:`plain`. Returns ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(plain(state), f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """A checkpoint of :func:`save_checkpoint`, read with ``weights_only=True``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    return torch.load(path, map_location=map_location, weights_only=True)


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
