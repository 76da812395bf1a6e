"""One training loop for every model of the course: config-driven, resumable, DDP-ready.

A model plugs in with a *step function* that turns a batch into a loss::

    def step_fn(model, batch, device):          # model: maybe DDP-wrapped
        x = batch["frames"].to(device)          # (B, T, 3, S, S)
        loss = (model(x) - x).abs().mean()      # mean over the batch
        return loss, {"l1": loss.item()}        # loss to backprop, floats to log

    trainer = Trainer(model, dataset, TrainerConfig(batch_size=8, max_steps=1000), "runs/x",
                      step_fn=step_fn)
    result = trainer.fit(resume=True)           # {"steps", "seconds", "checkpoint", "log"}

What it does for you (details in the docstrings of :mod:`coursekit.train.state`):

* **data order**: epoch ``e`` shuffles the indices by ``(seed, e)`` and cuts them into
  global batches of ``batch_size * world_size`` (the last incomplete one dropped); rank
  ``r`` takes slice ``r`` of each, so 2 processes at batch ``b`` make the updates of one at
  ``2 b``. Item randomness must come from ``(epoch, index)`` (``dataset.set_epoch(e)`` is
  called) for resumed runs to replay it exactly.
* **gradient accumulation** over ``grad_accum`` micro-batches (DDP's ``no_sync`` on all
  but the last); **mixed precision** ``amp="bf16"`` (CPU or CUDA) or ``"fp16"`` (CUDA, with
  a ``GradScaler``); **AdamW** on ``param_groups(model)``; gradient-norm clipping (of all
  parameters, or ``clip_per_group``); an **EMA** copy (``ema_decay``, warmed up as
  ``min(ema_decay, (1 + step) / (10 + step))``).
* **learning rate**: ``lr_schedule="cosine"`` falls along a half cosine to
  ``lr * min_lr_fraction`` (progress: the larger of steps done / all steps and, for a
  time-limited run, time spent / ``max_minutes``); ``"constant"`` keeps it; both warm up
  over ``warmup_steps``. Each parameter group keeps its own base rate.
* **DDP** under ``torchrun`` (gloo on a CPU, nccl on CUDA, ``LOCAL_RANK`` picks the GPU);
  only rank 0 logs, shows progress and writes files.
* **checkpoints**: ``out_dir/last.pt`` (atomic) every ``ckpt_every`` steps, at the end and
  when time runs out, in the one format of :mod:`coursekit.checkpoint` (``kind``,
  ``model_config``, ``model``, ``ema``, ``meta``) plus a ``training`` entry: optimizer,
  scaler, step, epoch, position in the epoch, every rank's RNG states, the config and
  ``trainer.extra`` (the hooks' state). ``fit(resume=True)`` goes on with exactly the next
  batch: a killed and resumed run ends with the weights of an uninterrupted one. The file
  loads for inference with :func:`coursekit.checkpoint.load_checkpoint`;
  :meth:`Trainer.export` writes a copy without the training state.
* **logs**: one CSV row per optimizer step in ``out_dir/log.csv`` (rows after the
  checkpoint's step dropped on resume), TensorBoard scalars in ``out_dir/tb`` when it
  imports, a ``tqdm`` bar on rank 0.

An *epoch* is one pass over the dataset's items: for the course's datasets one item per
frame window of every training clip (:class:`coursekit.data.windows.FrameWindows`).
Stopping: ``max_steps`` optimizer steps when set (it overrides ``epochs``), else every full
accumulation of ``epochs`` passes; ``max_minutes`` counts the run's training time over all
its resumed sessions; an ``on_step`` hook may set ``trainer.should_stop = True``.
``on_epoch_end(epoch, trainer)`` runs after the optimizer step that finishes an epoch.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader

from ..checkpoint import FORMAT_VERSION, model_checkpoint, plain, read_checkpoint, save_checkpoint
from ..data.dataset import collate
from ..runtime import check_amp
from .common import CSVLogger, seed_everything
from .state import (epoch_batches, ema_update, grad_scaler, join_processes, log_row, lr_factor,
                    rng_state, set_rng_state, summary_writer, truncate_log)


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
    lr_schedule: str = "constant"  # "constant" | "cosine"
    warmup_steps: int = 0
    min_lr_fraction: float = 0.0   # the cosine's floor, a fraction of each group's lr
    grad_clip: float | None = None
    clip_per_group: bool = False   # clip each parameter group's gradient norm on its own
    amp: str = "none"              # "none" | "bf16" | "fp16" (fp16 uses a GradScaler; CUDA only)
    ema_decay: float | None = None # keeps an EMA copy of the model when set
    ckpt_every: int = 100          # optimizer steps between checkpoints (plus one at the end)
    seed: int = 0
    device: str = "auto"
    num_workers: int = 0


StepFn = Callable[[nn.Module, dict, torch.device], "tuple[torch.Tensor, dict[str, float]]"]
Hook = Callable[[int, "Trainer"], None]


class Trainer:
    """Train ``model`` on ``dataset`` with ``step_fn``; files go to ``out_dir``.

    Args:
        model, dataset: the module to optimise (moved to the device) and a map-style dataset.
        cfg: :class:`TrainerConfig`; out_dir: folder of ``last.pt``, ``log.csv`` (and ``tb/``).
        step_fn: ``(model maybe DDP-wrapped, collated batch, device) -> (loss, terms)``: a
            scalar mean loss and floats to log (the same keys every step).
        kind, model_config, meta: stored beside the weights (:mod:`coursekit.checkpoint`),
            so ``last.pt`` loads for inference; ``trainer.meta`` may be updated meanwhile.
        param_groups: ``model -> [{"params": ..., "lr": ...}, ...]`` (default: every
            trainable parameter at ``cfg.lr``); collate_fn: batches a list of items.
        progress, desc: the tqdm bar (rank 0 only) and its label.
        on_step: ``hook(step, trainer)`` after each optimizer step, before its checkpoint
            (what it draws from the RNGs is replayed on resume); on_epoch_end:
            ``hook(epoch, trainer)`` after the step that completes an epoch.
        ddp_kwargs: extra ``DistributedDataParallel`` arguments.

    Attributes: ``model`` (unwrapped), ``ema`` (or None), ``wrapped`` (what ``step_fn``
    gets), ``optimizer``, ``step``, ``epoch``, ``device``, ``rank``, ``world_size``,
    ``seconds``, ``should_stop``, ``extra`` (hooks' state, saved and restored).
    """

    def __init__(self, model: nn.Module, dataset, cfg: TrainerConfig, out_dir, *, step_fn: StepFn,
                 kind: str | None = None, model_config=None, meta: dict | None = None,
                 param_groups: Callable[[nn.Module], list[dict]] | None = None,
                 collate_fn=collate, progress: bool = True, desc: str = "train",
                 on_step: Hook | None = None, on_epoch_end: Hook | None = None,
                 ddp_kwargs: dict | None = None):
        if cfg.batch_size < 1 or cfg.grad_accum < 1 or cfg.ckpt_every < 1:
            raise ValueError("batch_size, grad_accum and ckpt_every must be positive")
        lr_factor(cfg.lr_schedule, 0.0, 0)  # an unknown schedule fails here, not mid-run
        self.cfg, self.dataset, self.step_fn = cfg, dataset, step_fn
        self.kind, self.model_config, self.meta = kind, model_config, dict(meta or {})
        self.collate_fn, self.progress, self.desc = collate_fn, progress, desc
        self.on_step, self.on_epoch_end = on_step, on_epoch_end
        self.out_dir = Path(out_dir)
        self.checkpoint_path, self.log_path = self.out_dir / "last.pt", self.out_dir / "log.csv"

        self.world_size, self.rank, device, self._owns_group = join_processes(cfg.device)
        self.device, self.is_main = device, self.rank == 0
        self.amp_dtype = check_amp(cfg.amp, device)

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
        for group in self.optimizer.param_groups:
            group.setdefault("base_lr", group["lr"])
        self.scaler = grad_scaler(cfg.amp == "fp16")

        self.batches_per_epoch = len(dataset) // (cfg.batch_size * self.world_size)
        if self.batches_per_epoch < 1:
            raise ValueError(f"{len(dataset)} items make no full global batch of "
                             f"{cfg.batch_size} x {self.world_size} process(es)")
        if cfg.max_steps is not None:
            self.total_steps = int(cfg.max_steps)
        else:
            self.total_steps = max(1, cfg.epochs * self.batches_per_epoch // cfg.grad_accum)
        self.step, self.epoch, self.seconds = 0, 0, 0.0
        self._pos = 0  # batches of this epoch already taken
        self.should_stop = False
        self.extra: dict = {}
        self._saved_step = -1

    # ------------------------------------------------------------------ state

    def checkpoint(self, rng_states: list) -> dict:
        """The ``last.pt`` dict (``rng_states``: one dict per rank)."""
        training = {"optimizer": self.optimizer.state_dict(),
                    "scaler": self.scaler.state_dict() if self.scaler is not None else {},
                    "step": self.step, "epoch": self.epoch, "batch": self._pos,
                    "seconds": self.seconds, "world_size": self.world_size, "rng": rng_states,
                    "config": dataclasses.asdict(self.cfg), "extra": plain(self.extra)}
        return {"kind": self.kind, "format_version": FORMAT_VERSION,
                "model_config": plain(self.model_config or {}),
                "model": self.model.state_dict(),
                "ema": self.ema.state_dict() if self.ema is not None else {},
                "meta": plain(self.meta), "training": training}

    def load_state(self, ckpt: dict) -> None:
        """Restore a :meth:`checkpoint` (this rank's RNG state when the world size matches)."""
        training = ckpt.get("training")
        if not training:
            raise ValueError(f"{self.checkpoint_path}: holds no training state to resume")
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(training["optimizer"])
        if self.scaler is not None and training.get("scaler"):
            self.scaler.load_state_dict(training["scaler"])
        if self.ema is not None:
            self.ema.load_state_dict(ckpt.get("ema") or self.model.state_dict())
        self.step, self.epoch = int(training["step"]), int(training["epoch"])
        self._pos, self.seconds = int(training["batch"]), float(training["seconds"])
        self.extra = dict(training.get("extra") or {})
        self.meta.update(ckpt.get("meta") or {})
        old = training.get("config", {})
        changed = [k for k in ("batch_size", "grad_accum", "seed") if old.get(k) != getattr(self.cfg, k)]
        if int(training.get("world_size", 1)) != self.world_size:
            changed.append("world_size")
        if changed:
            warnings.warn(f"{self.checkpoint_path}: resuming with other {', '.join(changed)}; "
                          "the data order will not continue the run's exactly", stacklevel=3)
        states = training.get("rng") or []
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
            save_checkpoint(self.checkpoint_path, **self.checkpoint(states))
        if self.world_size > 1:
            dist.barrier()
        self._saved_step = self.step
        return self.checkpoint_path

    def export(self, path, *, model: nn.Module | dict | None = None, half: bool = False) -> Path:
        """Write the inference checkpoint (no training state) to ``path``: ``model``'s
        weights when given (e.g. the best epoch's), else the EMA copy's when there is
        one, else the model's; ``half`` stores them in fp16."""
        if self.kind is None:
            raise ValueError("Trainer(kind=...) is needed to export a loadable checkpoint")
        weights = model if model is not None else (self.ema if self.ema is not None else self.model)
        meta = {**self.meta, "steps": self.step, "seconds": round(self.seconds, 3)}
        return save_checkpoint(path, **model_checkpoint(self.kind, weights, self.model_config,
                                                        meta=meta, half=half))

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

    def _set_lr(self) -> None:
        cfg = self.cfg
        progress = self.step / max(self.total_steps, 1)
        if cfg.max_minutes and cfg.max_steps is None:
            progress = max(progress, self.seconds / (60.0 * cfg.max_minutes))
        factor = lr_factor(cfg.lr_schedule, progress, self.step, cfg.warmup_steps,
                           cfg.min_lr_fraction)
        for group in self.optimizer.param_groups:
            group["lr"] = group["base_lr"] * factor

    def _optimizer_step(self, stream) -> dict:
        """``grad_accum`` micro-batches, one optimizer step; returns the logged row."""
        cfg, ddp = self.cfg, self.world_size > 1
        self._set_lr()
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
        if cfg.grad_clip is not None:  # all parameters together, or each group on its own
            groups = [g["params"] for g in self.optimizer.param_groups]
            groups = groups if cfg.clip_per_group else [[p for g in groups for p in g]]
            row["grad_norm"] = max(float(torch.nn.utils.clip_grad_norm_(g, cfg.grad_clip))
                                   for g in groups)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None:
            # warm-up: early on the average covers the steps so far, not a stale start
            decay = min(cfg.ema_decay, (1 + self.step) / (10 + self.step))
            ema_update(self.ema, self.model, decay)
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

    def _start(self, resume: bool):
        """Restore or reset the state; open the log, TensorBoard and the bar (rank 0)."""
        from tqdm.auto import tqdm

        resumed = resume and self.checkpoint_path.is_file()
        if resumed:
            self.load_state(read_checkpoint(self.checkpoint_path))
        else:
            self.step, self.epoch, self._pos, self.seconds = 0, 0, 0, 0.0
            self._saved_step, self.extra = -1, {}
            seed_everything(self.cfg.seed + self.rank)
        if not self.is_main:
            return None, None, None
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if resumed:
            truncate_log(self.log_path, self.step)
        bar = tqdm(total=self.total_steps, initial=min(self.step, self.total_steps),
                   desc=self.desc, disable=not self.progress, dynamic_ncols=True)
        return CSVLogger(self.log_path, append=resumed), summary_writer(self.out_dir / "tb", self.step), bar

    def _fit(self, resume: bool) -> dict:
        log, tb, bar = self._start(resume)
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
                    log_row(log, row)
                    if tb is not None:
                        for k, v in row.items():
                            if k not in ("step", "epoch"):
                                tb.add_scalar(f"{self.desc}/{k}", v, self.step)
                    bar.update(1)
                    bar.set_postfix(loss=f"{row['loss']:.4f}")
                if self.on_step is not None:
                    self.on_step(self.step, self)
                    self.model.train()
                if self.on_epoch_end is not None and self._pos >= self.batches_per_epoch:
                    self.on_epoch_end(self.epoch, self)
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
