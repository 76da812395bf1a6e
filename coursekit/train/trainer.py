"""One training loop for every model of the course: config-driven, resumable, DDP-ready.

A model plugs in with a *step function* that turns a batch into a loss::

    def step_fn(model, batch, device):          # model: maybe DDP-wrapped
        x = batch["frames"].to(device)          # (B, T, 3, S, S)
        loss = (model(x) - x).abs().mean()      # mean over the batch
        return loss, {"l1": loss.item()}        # loss to backprop, floats to log

    trainer = Trainer(model, dataset, TrainerConfig(batch_size=8, max_steps=1000), "runs/x",
                      step_fn=step_fn)
    result = trainer.fit(resume=True)           # {"steps", "seconds", "checkpoint", "log"}

What it does for you:

* **data order**: its own deterministic sampler. Epoch ``e`` shuffles the indices with a
  permutation drawn from ``(seed, e)``, cuts them into *global* batches of
  ``batch_size * world_size`` (the incomplete last one is dropped), and rank ``r`` takes
  items ``[r * batch_size, (r + 1) * batch_size)`` of each. So a 2-process run with batch
  ``b`` sees exactly the batches of a 1-process run with batch ``2 b`` (losses are means
  and DDP averages gradients: the same updates). ``dataset.set_epoch(e)`` is called when the
  dataset has it. Item randomness must come from ``(epoch, index)`` (like
  :class:`~coursekit.data.dataset.TalkingFaceDataset` with a seed, rebuilt per epoch) or
  from the global RNG with ``num_workers=0`` for resumed runs to replay it exactly.
* **gradient accumulation** over ``grad_accum`` micro-batches (each loss scaled by
  ``1 / grad_accum``; DDP's ``no_sync`` on all but the last); accumulation may straddle an
  epoch boundary (the micro-batches form one stream).
* **mixed precision**: ``amp="bf16"`` (CPU or CUDA) autocasts the step function;
  ``amp="fp16"`` also scales the loss with a ``GradScaler`` and needs CUDA (on a CPU it
  raises ``ValueError``: use ``"bf16"`` or ``"none"``).
* **AdamW** on ``param_groups(model)`` (default: every trainable parameter at ``cfg.lr``;
  a group may set its own ``lr`` / ``weight_decay``); ``weight_decay=0`` is plain Adam.
  Optional gradient-norm clipping and an EMA copy of the weights (``ema_decay``, warmed up
  as ``min(ema_decay, (1 + step) / (10 + step))`` so short runs are not dominated by the
  random initial weights).
* **DDP**: under ``torchrun`` (``WORLD_SIZE > 1``) it joins the process group (gloo on a
  CPU, nccl on CUDA with ``LOCAL_RANK`` picking the GPU) unless one exists, wraps the model
  in ``DistributedDataParallel``, and only rank 0 logs, shows progress and writes files. A
  group it created is destroyed at the end of :meth:`Trainer.fit`.
* **checkpoints**: ``out_dir/last.pt`` (atomic, ``weights_only``-loadable) every
  ``ckpt_every`` optimizer steps, at the end and when ``max_minutes`` runs out: model,
  optimizer, scaler, EMA, step, epoch, position in the epoch, every rank's RNG states
  (torch CPU / CUDA, numpy, Python) and the config. ``fit(resume=True)`` restores all of it
  and goes on with exactly the next batch, so a killed and resumed run ends with the weights
  of an uninterrupted one (dropout included).
* **logs**: one CSV row per optimizer step in ``out_dir/log.csv`` (step, epoch, loss, the
  step function's terms averaged over the micro-batches of rank 0, lr, grad_norm when
  clipping, seconds); on resume rows after the checkpoint's step are dropped and new ones
  appended. TensorBoard scalars in ``out_dir/tb`` when ``torch.utils.tensorboard`` imports;
  a ``tqdm`` bar with the loss on rank 0.

Stopping: ``max_steps`` optimizer steps when set (it overrides ``epochs``), else every full
accumulation of ``epochs`` passes; ``max_minutes`` counts the run's training time over all
its resumed sessions; an ``on_step`` hook may set ``trainer.should_stop = True``.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import dataclasses
import os
import random
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader

from ..data.dataset import collate
from .common import CSVLogger, load_checkpoint, pick_device, save_checkpoint, seed_everything

AMP_DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class TrainerConfig:
    """How :class:`Trainer` optimises; see the module docstring for the semantics."""

    batch_size: int = 8            # per process (global batch = batch_size * world_size * grad_accum)
    grad_accum: int = 1
    epochs: int = 1
    max_steps: int | None = None   # optimizer steps; overrides epochs when set
    max_minutes: float | None = None
    lr: float = 2e-4
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    grad_clip: float | None = None
    amp: str = "none"              # "none" | "bf16" | "fp16" (fp16 uses a GradScaler; CUDA only)
    ema_decay: float | None = None # keeps an EMA copy of the model when set
    ckpt_every: int = 100          # optimizer steps between checkpoints (plus one at the end)
    seed: int = 0
    device: str = "auto"
    num_workers: int = 0


StepFn = Callable[[nn.Module, dict, torch.device], "tuple[torch.Tensor, dict[str, float]]"]


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


# ----------------------------------------------------------------------------- trainer


class Trainer:
    """Train ``model`` on ``dataset`` with ``step_fn``; files go to ``out_dir``.

    Args:
        model: the module to optimise (moved to the device; ``trainer.model``).
        dataset: map-style dataset (``len`` and integer indexing), optionally ``set_epoch``.
        cfg: :class:`TrainerConfig`.
        out_dir: folder of ``last.pt``, ``log.csv`` (and ``tb/``).
        step_fn: ``(model maybe DDP-wrapped, collated batch, device) -> (loss, terms)``; the
            loss is a scalar tensor (a mean over the batch), ``terms`` floats (or 0-d
            tensors) to log, the same keys every step.
        param_groups: ``model -> [{"params": ..., "lr": ...}, ...]`` for the optimizer;
            default every parameter with ``requires_grad`` at ``cfg.lr``.
        collate_fn: batches a list of items (default :func:`coursekit.data.dataset.collate`).
        progress, desc: the tqdm bar (rank 0 only) and its label.
        on_step: ``hook(step, trainer)`` after each optimizer step, before that step's
            checkpoint (so what it draws from the RNGs is replayed on resume).
        ddp_kwargs: extra ``DistributedDataParallel`` arguments (``find_unused_parameters``).

    Attributes: ``model`` (unwrapped, on ``device``), ``ema`` (unwrapped EMA copy or None),
    ``wrapped`` (what ``step_fn`` gets), ``optimizer``, ``scaler``, ``step``, ``epoch``,
    ``device``, ``rank``, ``world_size``, ``is_main``, ``seconds`` (training time so far),
    ``should_stop``, ``checkpoint_path``, ``log_path``.
    """

    def __init__(self, model: nn.Module, dataset, cfg: TrainerConfig, out_dir, *, step_fn: StepFn,
                 param_groups: Callable[[nn.Module], list[dict]] | None = None,
                 collate_fn=collate, progress: bool = True, desc: str = "train",
                 on_step: Callable[[int, "Trainer"], None] | None = None,
                 ddp_kwargs: dict | None = None):
        if cfg.amp not in AMP_DTYPES:
            raise ValueError(f"amp must be one of {sorted(AMP_DTYPES)}, got {cfg.amp!r}")
        if cfg.batch_size < 1 or cfg.grad_accum < 1 or cfg.ckpt_every < 1:
            raise ValueError("batch_size, grad_accum and ckpt_every must be positive")
        self.cfg, self.dataset, self.step_fn = cfg, dataset, step_fn
        self.collate_fn, self.progress, self.desc, self.on_step = collate_fn, progress, desc, on_step
        self.out_dir = Path(out_dir)
        self.checkpoint_path, self.log_path = self.out_dir / "last.pt", self.out_dir / "log.csv"

        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0")) if self.world_size > 1 else 0
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0")) if self.world_size > 1 else 0
        device = pick_device(cfg.device)
        if device.type == "cuda" and device.index is None:  # under torchrun: LOCAL_RANK's GPU
            device = torch.device("cuda", self.local_rank if self.world_size > 1
                                  else torch.cuda.current_device())
        if device.type == "cuda":
            torch.cuda.set_device(device)
        self.device = device
        self.amp_dtype = AMP_DTYPES[cfg.amp]
        if cfg.amp == "fp16" and device.type != "cuda":
            raise ValueError(f"amp='fp16' needs a CUDA device (its GradScaler), not {device}; "
                             "use amp='bf16' or 'none' here")
        self._owns_group = False
        if self.world_size > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
            self._owns_group = True
        self.is_main = self.rank == 0

        self.model = model.to(device)
        self.ema = None
        if cfg.ema_decay is not None:
            self.ema = copy.deepcopy(self.model).eval().requires_grad_(False)
        self.wrapped = self.model
        if self.world_size > 1:
            from torch.nn.parallel import DistributedDataParallel

            self.wrapped = DistributedDataParallel(
                self.model, device_ids=[device.index] if device.type == "cuda" else None,
                **(ddp_kwargs or {}))
        groups = (param_groups(self.model) if param_groups is not None else
                  [{"params": [p for p in self.model.parameters() if p.requires_grad]}])
        self.optimizer = torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas),
                                           weight_decay=cfg.weight_decay)
        self.scaler = _grad_scaler(cfg.amp == "fp16")

        self.batches_per_epoch = len(dataset) // (cfg.batch_size * self.world_size)
        if self.batches_per_epoch < 1:
            raise ValueError(f"{len(dataset)} items make no full global batch of "
                             f"{cfg.batch_size} x {self.world_size} process(es)")
        if cfg.max_steps is not None:
            self.total_steps = int(cfg.max_steps)
        else:
            self.total_steps = cfg.epochs * self.batches_per_epoch // cfg.grad_accum
        self.step, self.epoch, self.seconds = 0, 0, 0.0
        self._pos = 0  # batches of this epoch already taken
        self.should_stop = False
        self._saved_step = -1

    # ------------------------------------------------------------------ state

    def state_dict(self, rng_states: list) -> dict:
        """Everything :meth:`load_state_dict` needs (``rng_states``: one dict per rank)."""
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scaler": self.scaler.state_dict() if self.scaler is not None else {},
                "ema": self.ema.state_dict() if self.ema is not None else {},
                "step": self.step, "epoch": self.epoch, "batch": self._pos,
                "seconds": self.seconds, "world_size": self.world_size, "rng": rng_states,
                "config": dataclasses.asdict(self.cfg), "kind": "coursekit-trainer"}

    def load_state_dict(self, ckpt: dict) -> None:
        """Restore a :meth:`state_dict` (this rank's RNG state when the world size matches)."""
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if self.scaler is not None and ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        if self.ema is not None:
            if ckpt.get("ema"):
                self.ema.load_state_dict(ckpt["ema"])
            else:
                self.ema.load_state_dict(self.model.state_dict())
        self.step, self.epoch = int(ckpt["step"]), int(ckpt["epoch"])
        self._pos, self.seconds = int(ckpt["batch"]), float(ckpt["seconds"])
        old = ckpt.get("config", {})
        changed = [k for k in ("batch_size", "grad_accum", "seed") if old.get(k) != getattr(self.cfg, k)]
        if int(ckpt.get("world_size", 1)) != self.world_size:
            changed.append("world_size")
        if changed:
            warnings.warn(f"{self.checkpoint_path}: resuming with other {', '.join(changed)}; "
                          "the data order will not continue the run's exactly", stacklevel=3)
        states = ckpt.get("rng") or []
        if len(states) == self.world_size:
            set_rng_state(states[self.rank], self.device)
        else:
            seed_everything(self.cfg.seed + self.rank + self.step)
        self._saved_step = self.step

    def save(self) -> Path:
        """Write ``last.pt`` (collective under DDP: every rank must call it)."""
        states = [rng_state(self.device)]
        if self.world_size > 1:
            states = [None] * self.world_size
            dist.all_gather_object(states, rng_state(self.device))
        if self.is_main:
            save_checkpoint(self.checkpoint_path, **self.state_dict(states))
        if self.world_size > 1:
            dist.barrier()
        self._saved_step = self.step
        return self.checkpoint_path

    # ------------------------------------------------------------------ loop

    def _micro_batches(self):
        """The stream of this rank's batches from ``(epoch, _pos)`` on, across epochs."""
        cfg = self.cfg
        while True:
            if self._pos >= self.batches_per_epoch:
                self.epoch, self._pos = self.epoch + 1, 0
            if hasattr(self.dataset, "set_epoch"):
                self.dataset.set_epoch(self.epoch)
            batches = epoch_batches(len(self.dataset), cfg.batch_size, self.world_size,
                                    self.rank, cfg.seed, self.epoch)[self._pos:]
            gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + self.epoch)  # not the global RNG
            loader = DataLoader(self.dataset, batch_sampler=batches, collate_fn=self.collate_fn,
                                num_workers=cfg.num_workers, generator=gen,
                                pin_memory=self.device.type == "cuda")
            for batch in loader:
                self._pos += 1
                yield batch

    def _optimizer_step(self, stream) -> dict:
        """``grad_accum`` micro-batches, one optimizer step; returns the logged row."""
        cfg, ddp = self.cfg, self.world_size > 1
        sums: dict[str, float] = {}
        for micro in range(cfg.grad_accum):
            batch = next(stream)
            sync = (not ddp) or micro == cfg.grad_accum - 1
            autocast = (torch.autocast(self.device.type, dtype=self.amp_dtype)
                        if self.amp_dtype is not None else contextlib.nullcontext())
            with (contextlib.nullcontext() if sync else self.wrapped.no_sync()):
                with autocast:
                    loss, terms = self.step_fn(self.wrapped, batch, self.device)
                scaled = loss.float() / cfg.grad_accum
                (self.scaler.scale(scaled) if self.scaler is not None else scaled).backward()
            for k, v in {"loss": loss.detach(), **terms}.items():
                sums[k] = sums.get(k, 0.0) + float(v) / cfg.grad_accum
        row = {"step": self.step + 1, "epoch": self.epoch, **sums,
               "lr": self.optimizer.param_groups[0]["lr"]}
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        if cfg.grad_clip is not None:
            params = [p for g in self.optimizer.param_groups for p in g["params"]]
            row["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip))
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None:
            # warm-up: early on the average covers the steps so far, not a stale start
            decay = min(cfg.ema_decay, (1 + self.step) / (10 + self.step))
            _ema_update(self.ema, self.model, decay)
        self.step += 1
        return row

    def _stop_now(self) -> bool:
        """Out of time or asked to stop (agreed by all ranks)."""
        cfg = self.cfg
        stop = self.should_stop or (cfg.max_minutes is not None
                                    and self.seconds > 60.0 * cfg.max_minutes)
        if self.world_size > 1:
            flag = torch.tensor([float(stop)], device=self.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            stop = bool(flag.item())
        return stop

    def fit(self, resume: bool = False) -> dict:
        """Train until ``max_steps`` / the epochs / ``max_minutes`` / ``should_stop``.

        ``resume``: continue from ``out_dir/last.pt`` when it exists (a fresh start
        otherwise). Returns ``{"steps", "seconds", "checkpoint": out_dir/last.pt,
        "log": out_dir/log.csv}``.
        """
        try:
            return self._fit(resume)
        finally:
            if self._owns_group and dist.is_initialized():
                dist.destroy_process_group()
                self._owns_group = False

    def _fit(self, resume: bool) -> dict:
        from tqdm.auto import tqdm

        resumed = resume and self.checkpoint_path.is_file()
        if resumed:
            self.load_state_dict(load_checkpoint(self.checkpoint_path))
        else:
            self.step, self.epoch, self._pos, self.seconds = 0, 0, 0, 0.0
            self._saved_step = -1
            seed_everything(self.cfg.seed + self.rank)
        log = tb = bar = None
        if self.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            if resumed:
                _truncate_log(self.log_path, self.step)
            log = CSVLogger(self.log_path, append=resumed)
            tb = _summary_writer(self.out_dir / "tb", self.step)
            bar = tqdm(total=self.total_steps, initial=min(self.step, self.total_steps),
                       desc=self.desc, disable=not self.progress, dynamic_ncols=True)
        self.should_stop = False
        self.model.train()
        stream = self._micro_batches()
        start, base = time.time(), self.seconds
        try:
            while self.step < self.total_steps and not self._stop_now():
                row = self._optimizer_step(stream)
                self.seconds = base + time.time() - start
                row["seconds"] = round(self.seconds, 3)
                if self.is_main:
                    _log_row(log, row)
                    if tb is not None:
                        for k, v in row.items():
                            if k not in ("step", "epoch"):
                                tb.add_scalar(f"{self.desc}/{k}", v, self.step)
                    bar.update(1)
                    bar.set_postfix(loss=f"{row['loss']:.4f}")
                if self.on_step is not None:
                    self.on_step(self.step, self)
                    self.model.train()
                if self.step % self.cfg.ckpt_every == 0:
                    self.save()
            if self._saved_step != self.step or not self.checkpoint_path.is_file():
                self.save()
        finally:
            stream.close()
            if self.is_main:
                bar.close()
                log.close()
                if tb is not None:
                    tb.close()
        return {"steps": self.step, "seconds": self.seconds,
                "checkpoint": self.checkpoint_path, "log": self.log_path}


# ----------------------------------------------------------------------------- helpers


@torch.no_grad()
def _ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """``ema = decay * ema + (1 - decay) * model`` on floating parameters; buffers copied."""
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p.detach(), 1.0 - decay)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


def _grad_scaler(enabled: bool):
    if not enabled:
        return None
    if hasattr(torch.amp, "GradScaler"):
        return torch.amp.GradScaler("cuda")
    return torch.cuda.amp.GradScaler()  # torch < 2.3


def _summary_writer(folder: Path, step: int):
    """A TensorBoard writer when ``torch.utils.tensorboard`` imports, else None."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception:  # tensorboard not installed
        return None
    return SummaryWriter(str(folder), purge_step=step or None)


def _truncate_log(path: Path, step: int) -> None:
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


def _log_row(log: CSVLogger, row: dict) -> None:
    if log.fields is not None and set(row) - set(log.fields):
        extra = sorted(set(row) - set(log.fields))
        if not getattr(log, "_warned", False):
            warnings.warn(f"{log.path}: not logging new columns {extra}", stacklevel=3)
            log._warned = True
        row = {k: v for k, v in row.items() if k in log.fields}
    log.log(**row)
