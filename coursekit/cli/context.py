"""``--device`` / ``--threads`` of the commands that run models, applied once per command.

Every such command adds the options with :func:`device_arguments` and starts with
:func:`apply_context`, which builds one :class:`~coursekit.runtime.RunContext` from them and
applies it (the library itself never sets threads)::

    ctx = apply_context(args, "coursekit generate")
    if ctx is None:
        return 2                      # one-line error already printed
    load_generator(path, str(ctx.torch_device))

or, with the errors of the command turned into one-line messages, :func:`run_command`.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable

from ..runtime import RunContext


def device_arguments(parser: argparse.ArgumentParser, *, threads: bool = True,
                     default: str | None = "cpu") -> None:
    """Add ``--device`` (and ``--threads`` when the command computes on a CPU)."""
    parser.add_argument("--device", default=default,
                        help="cpu, cuda, cuda:1, mps or auto (CUDA, then MPS, then the CPU)"
                        + (f"; default {default}" if default else ""))
    if threads:
        parser.add_argument("--threads", type=int,
                            help="CPU threads of a CPU run (default: torch's own choice)")


def apply_context(args, prog: str, amp: str = "none") -> RunContext | None:
    """The command's :class:`RunContext` (``args.device``, None meaning ``cpu``, and
    ``args.threads``), applied; None after printing a one-line error (e.g. ``cuda`` asked for
    on a machine without CUDA)."""
    threads = getattr(args, "threads", None)
    if threads is not None and threads < 1:
        print(f"{prog}: error: --threads must be at least 1, got {threads}", file=sys.stderr)
        return None
    try:
        return RunContext(device=args.device or "cpu", amp=amp, threads=threads).apply()
    except (RuntimeError, ValueError) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return None


def run_command(args, prog: str, body: Callable[[RunContext], int],
                errors: tuple[type[BaseException], ...] = (FileNotFoundError, ValueError)) -> int:
    """Apply the command's run context, then ``body(ctx)``; ``errors`` become one line on
    stderr and exit status 2 (so does a device that is not available)."""
    ctx = apply_context(args, prog)
    if ctx is None:
        return 2
    try:
        return body(ctx)
    except errors as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
