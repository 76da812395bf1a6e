"""The trainer's bookkeeping: RNG states, data order, learning-rate schedule, EMA, logs.

Kept apart from :mod:`coursekit.train.trainer` so the loop reads on its own; everything here
is a plain function of its arguments.
"""

from __future__ import annotations

import csv
import math
import os
import random
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from ..runtime import pick_device
from .common import CSVLogger


def join_processes(device_name: str) -> tuple[int, int, torch.device, bool]:
    """``(world_size, rank, device, created_group)`` of this process. Under ``torchrun``
    (``WORLD_SIZE > 1``) joins the process group (gloo on a CPU, nccl on CUDA) unless one
    exists, and a CUDA device without an index becomes ``LOCAL_RANK``'s GPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0")) if world > 1 else 0
    local_rank = int(os.environ.get("LOCAL_RANK", "0")) if world > 1 else 0
    device = pick_device(device_name)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank if world > 1 else torch.cuda.current_device())
    if device.type == "cuda":
        torch.cuda.set_device(device)
    created = False
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        created = True
    return world, rank, device, created


# ----------------------------------------------------------------------------- RNG states


def rng_state(device: torch.device | None = None) -> dict:
    """This process's RNG states as tensors and plain values (``weights_only``-safe): torch's
    CPU generator, the CUDA generator of ``device`` (when a CUDA device; an empty tensor
    otherwise), numpy's global and Python's ``random``."""
    np_state = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    on_cuda = device is not None and torch.device(device).type == "cuda"
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(device) if on_cuda else torch.empty(0, dtype=torch.uint8),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "python": {"version": int(py_version), "state": torch.tensor(py_state, dtype=torch.int64),
                   "gauss_next": py_gauss},
    }


def set_rng_state(state: dict, device: torch.device | None = None) -> None:
    """Restore what :func:`rng_state` returned (the CUDA state into ``device``'s generator)."""
    torch.set_rng_state(state["torch"].cpu())
    cuda = state.get("cuda")
    if device is not None and torch.device(device).type == "cuda" and cuda is not None and cuda.numel():
        torch.cuda.set_rng_state(cuda.cpu(), device)
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), int(n["pos"]),
                         int(n["has_gauss"]), float(n["cached_gaussian"])))
    p = state["python"]
    random.setstate((int(p["version"]), tuple(int(v) for v in p["state"].tolist()),
                     p["gauss_next"]))


# ----------------------------------------------------------------------------- data order


def epoch_batches(n_items: int, batch_size: int, world_size: int, rank: int, seed: int,
                  epoch: int) -> list[list[int]]:
    """This rank's batches of one epoch: ``n_items // (batch_size * world_size)`` lists of
    ``batch_size`` dataset indices (a permutation from ``(seed, epoch)``, cut into global
    batches, the incomplete last one dropped; rank ``r`` takes slice ``r`` of each)."""
    order = np.random.default_rng([int(seed), int(epoch)]).permutation(n_items)
    glob = batch_size * world_size
    return [order[g * glob + rank * batch_size: g * glob + (rank + 1) * batch_size].tolist()
            for g in range(n_items // glob)]


# ----------------------------------------------------------------------------- schedule


def lr_factor(schedule: str, progress: float, step: int, warmup_steps: int = 0,
              min_fraction: float = 0.0) -> float:
    """Multiplier of the base learning rate at ``progress`` in [0, 1] of the run.

    ``"constant"``: 1. ``"cosine"``: a half cosine from 1 down to ``min_fraction``. Both
    ramp up linearly over the first ``warmup_steps`` optimizer steps.
    """
    if schedule not in ("constant", "cosine"):
        raise ValueError(f"lr_schedule must be 'constant' or 'cosine', got {schedule!r}")
    warm = min(1.0, (step + 1) / warmup_steps) if warmup_steps else 1.0
    if schedule == "constant":
        return warm
    p = min(max(progress, 0.0), 1.0)
    return warm * (min_fraction + (1.0 - min_fraction) * 0.5 * (1.0 + math.cos(math.pi * p)))


# ----------------------------------------------------------------------------- EMA and logs


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """``ema = decay * ema + (1 - decay) * model`` on floating parameters; buffers copied."""
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p.detach(), 1.0 - decay)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


def grad_scaler(enabled: bool):
    if not enabled:
        return None
    if hasattr(torch.amp, "GradScaler"):
        return torch.amp.GradScaler("cuda")
    return torch.cuda.amp.GradScaler()  # torch < 2.3


def summary_writer(folder: Path, step: int):
    """A TensorBoard writer when ``torch.utils.tensorboard`` imports, else None."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception:  # tensorboard not installed
        return None
    return SummaryWriter(str(folder), purge_step=step or None)


def truncate_log(path: Path, step: int) -> None:
    """Keep the complete rows up to ``step``: a killed run may have logged steps after its
    last checkpoint (they are redone) or left half a row."""
    if not path.is_file():
        return
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows or "step" not in rows[0]:
        return
    header, col = rows[0], rows[0].index("step")

    def keep(row) -> bool:
        try:
            return len(row) == len(header) and float(row[col]) <= step
        except ValueError:
            return False

    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as f:
        csv.writer(f).writerows([header, *filter(keep, rows[1:])])
    os.replace(tmp, path)


def log_row(log: CSVLogger, row: dict) -> None:
    if log.fields is not None and set(row) - set(log.fields):
        extra = sorted(set(row) - set(log.fields))
        if not getattr(log, "_warned", False):
            warnings.warn(f"{log.path}: not logging new columns {extra}", stacklevel=3)
            log._warned = True
        row = {k: v for k, v in row.items() if k in log.fields}
    log.log(**row)
