"""Diffusion renderer speed: generated frames per second against DDIM steps.

Samples one clip of ``--frames`` frames (all frames of the clip as one batch, as
:meth:`coursekit.models.diffusion.DiffusionTalker.sample` does) and reports frames/s,
seconds per frame and peak memory for each step count. Speed does not depend on the weights,
so fresh random weights are used unless ``--checkpoint`` is given.

    python benchmarks/render.py                        # tiny config on the CPU
    python benchmarks/render.py --config paper --device cuda --dtype bf16 --frames 75

Prints a Markdown table (and appends it to ``--out`` when given).
"""

import argparse
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=("tiny", "paper"), default="tiny")
    parser.add_argument("--checkpoint", help="a trained renderer (overrides --config)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, mps or auto")
    parser.add_argument("--dtype", choices=("fp32", "bf16", "fp16"), default="fp32")
    parser.add_argument("--frames", type=int, default=75, help="frames per clip (3 s at 25 fps)")
    parser.add_argument("--steps", default="5,10,25,50")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", help="append the table to this Markdown file")
    args = parser.parse_args()

    import torch

    from coursekit.models.config import DiffusionConfig
    from coursekit.models.diffusion import DiffusionTalker
    from coursekit.models.talker import count_parameters
    from coursekit.runtime import RunContext
    from coursekit.train.diffusion import load_renderer

    amp = {"fp32": "none", "bf16": "bf16", "fp16": "fp16"}[args.dtype]
    ctx = RunContext(device=args.device, amp=amp, threads=args.threads).apply()
    device = ctx.torch_device
    if args.checkpoint:
        model, _ = load_renderer(args.checkpoint, device)
        name = Path(args.checkpoint).name
    else:
        torch.manual_seed(0)
        model = DiffusionTalker(getattr(DiffusionConfig, args.config)()).to(device).eval()
        name = f"{args.config} config"
    s = model.image_size
    identity = torch.rand(1, 3, s, s, device=device) * 2 - 1
    mfcc = torch.randn(1, args.frames, 12, 28, device=device)
    if device.type == "cuda":
        gpu = torch.cuda.get_device_name(device)
        where = f"{gpu}, torch {torch.__version__}"
    else:
        where = f"{platform.machine()} CPU, {args.threads} threads, torch {torch.__version__}"
    lines = [f"\n### {name}: {s} px, {count_parameters(model) / 1e6:.1f} M parameters, "
             f"{args.dtype}, {args.frames}-frame clip\n", f"Device: {where}. "
             f"Date: {time.strftime('%Y-%m-%d')}.\n",
             "| DDIM steps | seconds | frames/s | ms per frame | peak memory (GiB) |",
             "|---:|---:|---:|---:|---:|"]
    with ctx.autocast():
        model.sample(identity, mfcc[:, :4], steps=1)  # warm-up
    for steps in [int(x) for x in args.steps.split(",")]:
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats(device)
        start = time.perf_counter()
        with ctx.autocast():
            model.sample(identity, mfcc, steps=steps)
        if device.type == "cuda":
            torch.cuda.synchronize()
            peak = f"{torch.cuda.max_memory_allocated(device) / 2 ** 30:.2f}"
        else:
            peak = "-"
        sec = time.perf_counter() - start
        lines.append(f"| {steps} | {sec:.2f} | {args.frames / sec:.1f} | "
                     f"{1000 * sec / args.frames:.1f} | {peak} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "a") as f:
            f.write(text)


if __name__ == "__main__":
    main()
