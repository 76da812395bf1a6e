"""One run context: which device, which precision, how many CPU threads.

Library functions never change process-wide settings; entry points (the ``coursekit``
command, the course runner, benchmark scripts, a notebook's first cell) build one
:class:`RunContext` from their options and call :meth:`RunContext.apply` once::

    ctx = RunContext(device="auto", amp="bf16", threads=2).apply()
    model.to(ctx.device)

``device="auto"`` picks CUDA, then Apple's MPS, then the CPU. ``threads`` is applied only on
a CPU run (on a GPU run the CPU threads feed the data loader and are left alone). ``amp``
names the autocast precision: ``"none"``, ``"bf16"`` (CPU or CUDA) or ``"fp16"`` (CUDA,
with a loss scaler).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch

AMP_DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


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


def check_amp(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``amp`` on ``device`` (None for ``"none"``); a clear error for
    an unknown name or fp16 off CUDA."""
    if amp not in AMP_DTYPES:
        raise ValueError(f"amp must be one of {sorted(AMP_DTYPES)}, got {amp!r}")
    if amp == "fp16" and torch.device(device).type != "cuda":
        raise ValueError(f"amp='fp16' needs a CUDA device (its GradScaler), not {device}; "
                         "use amp='bf16' or 'none' here")
    return AMP_DTYPES[amp]


@dataclass
class RunContext:
    """Device, precision and CPU threads of one run (see the module docstring)."""

    device: str = "auto"
    amp: str = "none"
    threads: int | None = None
    resolved: torch.device | None = field(default=None, repr=False, compare=False)

    def apply(self) -> "RunContext":
        """Resolve the device, check ``amp`` against it and set the CPU threads (CPU runs
        only). Call once, at an entry point. Returns ``self``."""
        self.resolved = pick_device(self.device)
        check_amp(self.amp, self.resolved)
        if self.threads and self.resolved.type == "cpu":
            torch.set_num_threads(int(self.threads))
        return self

    @property
    def torch_device(self) -> torch.device:
        """The resolved device (resolving it, without side effects, when not applied)."""
        return self.resolved if self.resolved is not None else pick_device(self.device)

    def autocast(self):
        """A context manager that autocasts to ``amp`` (a no-op for ``"none"``)."""
        dtype = check_amp(self.amp, self.torch_device)
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.torch_device.type, dtype=dtype)
