"""Renderer speed: diffusion frames/s against DDIM steps, and end to end, audio file -> mp4.

Default mode: samples one clip of ``--frames`` frames (all frames of the clip as one batch,
as :meth:`coursekit.models.diffusion.DiffusionTalker.sample` does) and reports frames/s,
seconds per frame and peak memory for each step count. Speed does not depend on the weights,
so fresh random weights are used unless ``--checkpoint`` is given.

    python benchmarks/render.py                        # tiny config on the CPU
    python benchmarks/render.py --config paper --device cuda --dtype bf16 --frames 75

``--end-to-end`` (:func:`end_to_end`): the whole :func:`coursekit.infer.generate_video` call
with paste-back (read the audio file and the photo, find the face, make every frame, encode
the mp4 with the sound) for the shipped generators (the warp generator, the tiny diffusion
renderer at 10 DDIM steps, the tiny image decoder) on scikit-image's astronaut (512 px) and
a GRID clip's first frame (360 x 288, with its own sound; ``--grid-video`` or
``$COURSEKIT_GRID_DIR/others/video/brbk7n.mpg``); frames/s = frames / wall seconds of the
call, generator and face detector loaded beforehand (their load times are listed apart),
plus a cold ``coursekit generate`` command and the warp generator's time per stage.

    python benchmarks/render.py --end-to-end --threads 2 --out benchmarks/render.md

Prints a Markdown table (and appends it to ``--out`` when given).
"""

import argparse
import functools
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
    parser.add_argument("--end-to-end", action="store_true",
                        help="audio file -> mp4 with paste-back, per generator and photo")
    parser.add_argument("--grid-video", help="a GRID clip: its first frame and its sound "
                        "(default: $COURSEKIT_GRID_DIR/others/video/brbk7n.mpg)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="end to end: runs per case (the fastest is reported)")
    args = parser.parse_args()
    if args.end_to_end:
        return end_to_end(args)

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
    report(lines, args.out)


def report(lines: list[str], out: str | None) -> None:
    """Print the Markdown ``lines`` and append them to ``out`` when given."""
    text = "\n".join(lines) + "\n"
    print(text)
    if out:
        with open(out, "a") as f:
            f.write(text)


# ----------------------------------------------------------------------------- end to end


def _photos(work: Path, grid_video: str | None) -> list[tuple[str, Path, Path]]:
    """``(label, photo, audio)``: the astronaut with a spk5 utterance (never trained on), and
    a GRID clip's first frame with the clip's own sound (a wav), when the clip is found."""
    import cv2
    import soundfile
    from skimage import data

    from coursekit.audio import load_video_audio
    from coursekit.data.corpus import SAMPLES_DIR
    from coursekit.video import read_video

    astronaut = work / "astronaut.png"
    cv2.imwrite(str(astronaut), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    cases = [("astronaut 512x512", astronaut, SAMPLES_DIR / "spk5" / "audio" / "lgad2s.flac")]
    grid = Path(grid_video or Path(os.environ.get("COURSEKIT_GRID_DIR", "/nonexistent"))
                / "others" / "video" / "brbk7n.mpg")
    if grid.is_file():
        frame = read_video(grid)[0][0]
        h, w = frame.shape[:2]
        photo = work / f"{grid.stem}.png"
        cv2.imwrite(str(photo), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        sound, sr = load_video_audio(grid, sr=None)
        wav = work / f"{grid.stem}.wav"
        soundfile.write(wav, sound, sr)
        cases.append((f"GRID {grid.stem} frame 0, {w}x{h}", photo, wav))
    else:
        print(f"no GRID clip at {grid}: the GRID row is skipped")
    return cases


def _timed(fn, repeats: int = 1) -> tuple[float, object]:
    """``(fastest wall seconds, last result)`` of ``repeats`` calls of ``fn()``."""
    best, out = float("inf"), None
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def _stages(gen, photo_path: Path, audio: Path, detector, out: Path) -> tuple[dict, int]:
    """Wall seconds of each stage of the warp generator's paste-back run, and its frames."""
    import numpy as np

    from coursekit import infer
    from coursekit.audio import SAMPLE_RATE, mfcc_windows
    from coursekit.infer.warp_frames import photo_frames
    from coursekit.video import write_video

    t, start = {}, time.perf_counter()

    def lap(stage):
        nonlocal start
        now = time.perf_counter()
        t[stage], start = now - start, now

    sound, sr, speech = infer.load_speech(audio)
    windows = mfcc_windows(speech, SAMPLE_RATE, infer.n_video_frames(len(sound), sr))
    lap("audio: read, MFCC windows")
    photo = infer.read_image(photo_path)
    found = infer.crop_face(photo, gen.image_size, detector)
    lap("photo: read, detect, landmarks, crop")
    motion = gen.audio_motion(windows, speech)
    lap("Audio2AU -> intensities -> motion")
    h, w = photo.shape[:2]
    photo = photo[: h - h % 2, : w - w % 2]
    video = np.concatenate(list(photo_frames(photo, found.crop, found.transform,
                                             found.landmarks, motion, gen.painter)))
    lap("frames: maps, remap, painter, paste")
    write_video(out, video, 25, sound, sr, preset=infer.run.PRESET)
    lap("encode: H.264 + AAC mp4")
    return t, len(video)


def _with_untrained_painter(gen):
    """``gen`` (the warp generator) with a freshly initialised paper-size painter whose
    output is not blank (speed does not depend on the weights)."""
    import torch

    from coursekit.infer.warp import prepare_painter
    from coursekit.models.painter import Painter, PainterConfig

    torch.manual_seed(0)
    painter = Painter(PainterConfig())
    for p in painter.head.parameters():
        torch.nn.init.normal_(p, 0, 0.05)
    gen.painter = prepare_painter(painter)
    return gen


def end_to_end(args) -> None:
    """The ``--end-to-end`` tables (see the module docstring)."""
    import subprocess
    import sys
    import tempfile

    import torch

    from coursekit import infer
    from coursekit.face import LandmarkDetector
    from coursekit.runtime import RunContext
    from coursekit.video import read_video

    RunContext(device="cpu", threads=args.threads).apply()
    work = Path(tempfile.mkdtemp(prefix="render_e2e_"))
    cases = _photos(work, args.grid_video)
    load_det, detector = _timed(LandmarkDetector)
    gens = [("warp generator", "warp", None), ("tiny diffusion, 10 DDIM steps", "diffusion", 10),
            ("tiny image decoder", "decoder", None)]
    if infer.load_generator("warp").painter is None:  # its speed, until painter.pt is shipped
        gens.insert(1, ("warp generator + painter (untrained: speed only)", "warp+painter", None))
    lines = [f"\n### End to end: audio file -> mp4 with paste-back ({time.strftime('%Y-%m-%d')})\n",
             f"{platform.machine()} CPU, {args.threads} threads, torch {torch.__version__}, "
             f"x264 preset `{infer.run.PRESET}`, load average {os.getloadavg()[0]:.1f} "
             f"(other jobs on the machine). Fastest of {args.repeats} runs of "
             "`generate_video(generator, photo, audio, out, paste_back=True)`, the generator "
             f"and the face detector loaded beforehand (dlib's detector and 68-point model: "
             f"{load_det:.1f} s, once per process).\n",
             "| generator | photo | frames | seconds | frames/s | load (s) |",
             "|---|---|---:|---:|---:|---:|"]
    for label, name, steps in gens:
        load, gen = _timed(functools.partial(infer.load_generator, name.split("+")[0]))
        if name == "warp+painter":
            gen = _with_untrained_painter(gen)
        repeats = args.repeats if name != "diffusion" else 1
        for case, photo, audio in cases:
            out = work / f"{name}_{photo.stem}.mp4"
            sec, _ = _timed(functools.partial(
                infer.generate_video, gen, photo, audio, out, paste_back=True, steps=steps,
                progress=False, detector=detector), repeats)
            n = len(read_video(out)[0])
            lines.append(f"| {label} | {case} | {n} | {sec:.2f} | **{n / sec:.1f}** | {load:.2f} |")
            print(lines[-1], flush=True)
    case, photo, audio = cases[-1]
    cmd = [sys.executable, "-m", "coursekit.cli", "generate", "--face", str(photo), "--audio",
           str(audio), "--out", str(work / "cold.mp4"), "--paste-back", "--threads",
           str(args.threads)]
    cold, _ = _timed(lambda: subprocess.run(cmd, check=True, capture_output=True))
    n = len(read_video(work / "cold.mp4")[0])
    lines += ["", f"Cold start, the command `coursekit generate --face PHOTO --audio WAV --out "
              f"o.mp4 --paste-back` ({case}; Python start, imports, loading the warp "
              f"generator and dlib included): {cold:.2f} s for {n} frames, "
              f"{n / cold:.1f} frames/s.",
              "", "Warp generator, paste-back, time per stage (one run each):", "",
              "| generator | photo | stage | seconds | ms per frame |", "|---|---|---|---:|---:|"]
    for label, name, _ in gens[:2 if name_painter(gens) else 1]:
        gen = infer.load_generator("warp")
        gen = _with_untrained_painter(gen) if name == "warp+painter" else gen
        for case, photo, audio in cases:
            stages, n = _stages(gen, photo, audio, detector, work / "stages.mp4")
            stages["**total**"] = sum(stages.values())
            lines += [f"| {label} | {case} | {stage} | {sec:.3f} | {1000 * sec / n:.1f} |"
                      for stage, sec in stages.items()]
    report(lines, args.out)


def name_painter(gens) -> bool:
    """Whether ``gens`` has the untrained-painter variant of the warp generator."""
    return any(name == "warp+painter" for _, name, _ in gens)


if __name__ == "__main__":
    main()
