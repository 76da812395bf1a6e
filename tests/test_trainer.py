"""The reusable Trainer: exact resume (also after SIGKILL), DDP = bigger batch, accumulation,
bf16 autocast, weights_only checkpoints, time limits.

Also a script: ``python tests/test_trainer.py kill|ddp OUT`` runs the trainings that the tests
start in other processes (killed, or under ``torchrun``).
"""

import coursekit  # noqa: F401  (before torch: OMP_WAIT_POLICY)

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import Dataset, default_collate

from coursekit.checkpoint import read_checkpoint
from coursekit.train.common import read_csv_log
from coursekit.train.state import epoch_batches, rng_state, set_rng_state
from coursekit.train.trainer import Trainer, TrainerConfig

ROOT = Path(__file__).resolve().parent.parent


class Pairs(Dataset):
    """``n`` regression pairs ``{"x": (6,), "y": (2,)}``; ``x`` gets noise drawn from
    ``(epoch, index)`` so the data change with :meth:`set_epoch`."""

    def __init__(self, n: int = 24):
        g = torch.Generator().manual_seed(1)
        self.x = torch.randn(n, 6, generator=g)
        self.y = torch.tanh(self.x @ torch.randn(6, 2, generator=g))
        self.epoch = 0

    def __len__(self):
        return len(self.x)

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(1000 * self.epoch + i)
        return {"x": self.x[i] + 0.05 * torch.randn(6, generator=g), "y": self.y[i]}


def make_model(dropout: float = 0.0) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 32), nn.Tanh(), nn.Dropout(dropout), nn.Linear(32, 2))


def mse_step(model, batch, device):
    pred = model(batch["x"].to(device))
    loss = ((pred - batch["y"].to(device)) ** 2).mean()
    return loss, {"mse": loss.detach()}


def run(out, dropout=0.0, data=None, resume=False, on_step=None, **cfg) -> Trainer:
    cfg = {"batch_size": 4, "lr": 1e-2, "device": "cpu", **cfg}
    trainer = Trainer(make_model(dropout), data or Pairs(), TrainerConfig(**cfg), out,
                      step_fn=mse_step, collate_fn=default_collate, progress=False,
                      on_step=on_step)
    trainer.fit(resume=resume)
    return trainer


def assert_same(a: nn.Module, b: nn.Module, atol: float):
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(p, q, atol=atol, rtol=0, msg=f"{name} differs")


def slow_hook(step, trainer):
    time.sleep(0.25)


# ----------------------------------------------------------------------------- resume


def test_resume_continues_exactly_with_dropout_and_ema(tmp_path):
    # 24 items, batches of 4: 6 per epoch; 4 micro-batches with grad_accum 2 stop mid-epoch
    kw = dict(dropout=0.3, ema_decay=0.9, grad_clip=0.5, grad_accum=2, max_steps=7)
    a = run(tmp_path / "a", **kw)
    first = run(tmp_path / "b", **{**kw, "max_steps": 2})
    assert first.step == 2 and first.epoch == 0
    b = run(tmp_path / "b", resume=True, **kw)
    assert a.step == b.step == 7 and a.epoch == b.epoch == 2
    assert_same(a.model, b.model, 1e-6)
    assert_same(a.ema, b.ema, 1e-6)
    assert not torch.allclose(a.ema[0].weight, a.model[0].weight)  # the EMA lags behind
    # the same batches and dropout masks: the same losses, step by step
    la, lb = read_csv_log(a.log_path), read_csv_log(b.log_path)
    assert [r["step"] for r in lb] == list(range(1, 8))
    np.testing.assert_allclose([r["loss"] for r in la], [r["loss"] for r in lb], atol=1e-6)
    # a fresh (not resumed) second half would differ: the check has teeth
    c = run(tmp_path / "c", **{**kw, "max_steps": 5})
    assert (c.model[0].weight - a.model[0].weight).abs().max() > 1e-4


def test_killed_run_resumes_to_the_uninterrupted_weights(tmp_path):
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, __file__, "kill", str(out)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline, killed_at = time.time() + 90, None
    try:
        while time.time() < deadline and proc.poll() is None:
            if (out / "last.pt").is_file():
                killed_at = read_checkpoint(out / "last.pt")["training"]["step"]
                if killed_at >= 2:
                    os.kill(proc.pid, signal.SIGKILL)
                    break
            time.sleep(0.05)
    finally:
        if proc.poll() is None and killed_at is None:
            proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stdout.read().decode()[-2000:]
    assert 2 <= read_checkpoint(out / "last.pt")["training"]["step"] < 12
    resumed = run(out, resume=True, **KILL_RUN)
    whole = run(tmp_path / "whole", **KILL_RUN)
    assert resumed.step == 12
    assert_same(resumed.model, whole.model, 1e-6)
    assert_same(resumed.ema, whole.ema, 1e-6)
    steps = [r["step"] for r in read_csv_log(resumed.log_path)]
    assert steps == list(range(1, 13))  # rows logged after the last checkpoint were dropped
    assert not list(out.glob(".*"))  # no temporary file left by the kill


KILL_RUN = dict(dropout=0.2, ema_decay=0.8, max_steps=12, ckpt_every=1)


# ----------------------------------------------------------------------------- batches


def test_epoch_batches_split_global_batches_across_ranks():
    one = epoch_batches(26, 6, 1, 0, seed=3, epoch=1)
    r0, r1 = (epoch_batches(26, 3, 2, r, seed=3, epoch=1) for r in (0, 1))
    assert len(one) == len(r0) == len(r1) == 4  # 26 // 6, the rest dropped
    assert all(a + b == c for a, b, c in zip(r0, r1, one))
    assert epoch_batches(26, 6, 1, 0, seed=3, epoch=2) != one  # a new order each epoch
    assert len({i for b in one for i in b}) == 24


def test_grad_accum_equals_the_bigger_batch(tmp_path):
    a = run(tmp_path / "a", batch_size=3, grad_accum=2, epochs=2)
    b = run(tmp_path / "b", batch_size=6, grad_accum=1, epochs=2)
    assert a.step == b.step == 8
    assert_same(a.model, b.model, 1e-5)
    c = run(tmp_path / "c", batch_size=3, grad_accum=1, max_steps=8)  # not the same thing
    assert (c.model[0].weight - b.model[0].weight).abs().max() > 1e-3


def test_two_ddp_processes_equal_one_with_double_batch(tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                             "--nproc_per_node", "2", __file__, "ddp", str(out)],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    single = run(tmp_path / "single", **{**DDP_RUN, "batch_size": 2 * DDP_RUN["batch_size"]})
    ckpt = read_checkpoint(out / "last.pt")
    state = ckpt["training"]
    assert state["step"] == single.step == 6 and state["world_size"] == 2
    assert len(state["rng"]) == 2  # both ranks' RNG states
    ddp_model = make_model()
    ddp_model.load_state_dict(ckpt["model"])
    assert_same(ddp_model, single.model, 1e-5)
    assert [r["step"] for r in read_csv_log(out / "log.csv")] == list(range(1, 7))  # rank 0 only


DDP_RUN = dict(batch_size=2, grad_accum=2, max_steps=6, ema_decay=0.9)


# ----------------------------------------------------------------------------- amp, files


class Clips(Dataset):
    """Items in coursekit's format: ``frames (T, 3, 8, 8)``, ``mask (T,)``."""

    def __init__(self, n=16, t=3):
        g = torch.Generator().manual_seed(2)
        self.frames = torch.rand(n, t, 3, 8, 8, generator=g) * 2 - 1

    def __len__(self):
        return len(self.frames)

    def __getitem__(self, i):
        return {"frames": self.frames[i], "mask": torch.ones(len(self.frames[i]), dtype=torch.bool),
                "speaker": "s", "utt": str(i), "start": 0}


def conv_step(model, batch, device):
    x = batch["frames"].to(device).flatten(0, 1)  # (B*T, 3, 8, 8)
    loss = (model(x).float() - 0.5 * x).abs().mean()
    return loss, {"l1": loss.item()}


def test_bf16_autocast_on_cpu_trains_and_fp16_is_refused(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 3, 3, padding=1))
    trainer = Trainer(model, Clips(), TrainerConfig(batch_size=4, lr=3e-3, max_steps=40,
                                                    amp="bf16", device="cpu"),
                      tmp_path, step_fn=conv_step, progress=False)  # coursekit's collate
    seen = []
    trainer.step_fn = lambda m, b, d: (seen.append(m(b["frames"].flatten(0, 1)).dtype),
                                       conv_step(m, b, d))[1]
    trainer.fit()
    assert seen[0] == torch.bfloat16  # the forward pass ran under bf16 autocast
    assert trainer.model[0].weight.dtype == torch.float32  # the weights stay float32
    loss = [r["loss"] for r in read_csv_log(trainer.log_path)]
    assert len(loss) == 40 and np.mean(loss[-5:]) < 0.7 * np.mean(loss[:5])
    with pytest.raises(ValueError, match="fp16.*CUDA"):
        Trainer(model, Clips(), TrainerConfig(amp="fp16", device="cpu"), tmp_path,
                step_fn=conv_step)
    with pytest.raises(ValueError, match="amp"):
        Trainer(model, Clips(), TrainerConfig(amp="fp8", device="cpu"), tmp_path, step_fn=conv_step)


def test_checkpoint_loads_weights_only_and_restores_rngs(tmp_path):
    t = run(tmp_path, dropout=0.1, ema_decay=0.5, max_steps=3)
    full = torch.load(tmp_path / "last.pt", weights_only=True)
    assert {"kind", "format_version", "model_config", "model", "ema", "meta",
            "training"} <= set(full)
    ckpt = full["training"]
    assert {"optimizer", "scaler", "step", "epoch", "batch", "rng", "config", "seconds",
            "extra"} <= set(ckpt)
    assert ckpt["step"] == 3 and ckpt["epoch"] == 0 and ckpt["batch"] == 3
    assert ckpt["config"]["batch_size"] == 4 and ckpt["config"]["betas"] == [0.9, 0.999]
    assert set(full["ema"]) == set(t.model.state_dict())
    import random

    set_rng_state(ckpt["rng"][0])
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.rand(5), np.random.rand(5), random.random()
    set_rng_state(ckpt["rng"][0])
    again = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(expected[0], again[0]) and np.array_equal(expected[1], again[1])
    assert expected[2] == again[2]
    state = rng_state()
    torch.save(state, tmp_path / "rng.pt")
    torch.load(tmp_path / "rng.pt", weights_only=True)


def test_max_minutes_stops_cleanly_with_a_checkpoint(tmp_path):
    t = run(tmp_path, max_steps=1000, max_minutes=0.6 / 60, on_step=slow_hook)
    assert 1 <= t.step < 10 and t.seconds >= 0.6
    assert read_checkpoint(t.checkpoint_path)["training"]["step"] == t.step
    again = run(tmp_path, max_steps=1000, max_minutes=0.6 / 60, resume=True)  # budget spent
    assert again.step == t.step

    def stop_at_3(step, trainer):
        trainer.should_stop = step >= 3

    assert run(tmp_path / "hook", max_steps=1000, on_step=stop_at_3).step == 3


def test_too_small_a_dataset_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="no full global batch"):
        run(tmp_path, data=Pairs(3), batch_size=4)


# ----------------------------------------------------------------------------- as a script


if __name__ == "__main__":
    mode, out = sys.argv[1], Path(sys.argv[2])
    torch.set_num_threads(1)
    if mode == "kill":  # slow, checkpoint after every step: the test SIGKILLs it
        run(out, on_step=slow_hook, **KILL_RUN)
    elif mode == "ddp":  # under torchrun
        run(out, **DDP_RUN)
    else:
        raise SystemExit(f"unknown mode {mode}")
