"""Preprocessing speed: frames per second through the whole pipeline, one worker and all cores.

Decode, track landmarks, align and crop, estimate AUs, MFCC windows, write: everything
``coursekit preprocess`` does, on real GRID clips (``--grid`` or ``$COURSEKIT_GRID_DIR``).
Target: >= 60 frames/s per core.

    python benchmarks/preprocess.py [--grid DIR] [--clips 20]
"""

import argparse
import os
import shutil
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", default=os.environ.get("COURSEKIT_GRID_DIR"))
    parser.add_argument("--clips", type=int, default=20, help="clips of s1 to process per run")
    args = parser.parse_args()
    if not args.grid:
        raise SystemExit("give the GRID folder with --grid or COURSEKIT_GRID_DIR")

    from coursekit.data.preprocess import PreprocessConfig, preprocess_corpus

    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        for sub in ("video", "align"):
            (src / "s1" / sub).mkdir(parents=True)
        videos = sorted((Path(args.grid) / "s1" / "video").glob("*.mpg"))[: args.clips]
        for v in videos:
            os.symlink(v, src / "s1" / "video" / v.name)
            align = Path(args.grid) / "s1" / "align" / f"{v.stem}.align"
            if align.exists():
                os.symlink(align, src / "s1" / "align" / align.name)
        print(f"{len(videos)} GRID clips (s1), {cores} cores")
        for workers in sorted({1, cores}):
            out = Path(tmp) / f"out{workers}"
            s = preprocess_corpus(src, out, PreprocessConfig(), workers=workers, progress=False)
            fps = s["frames"] / s["seconds"]
            print(f"workers={workers}: {s['frames']} frames in {s['seconds']:.1f} s = "
                  f"{fps:.0f} frames/s ({fps / workers:.0f} per worker), {len(s['failed'])} failed")
            shutil.rmtree(out)


if __name__ == "__main__":
    main()
