"""Peak memory of the scorers' training against the size of the dataset (1x and 10x GRID).

The AU classifier and the sync expert read their training items from the memory-mapped
processed dataset, so their peak RSS should not grow with the number of clips. This script
measures it: ``coursekit train au-classifier`` and ``coursekit train syncnet`` (tiny presets,
a fixed number of steps, no held-out check) each run as a child process on

* **1x**: the shared GRID clips, processed once into ``--proc`` (``coursekit preprocess
  ../shared/grid /tmp/grid_proc --workers 2``, skipped when its ``index.json`` exists);
* **10x**: a processed-dataset folder whose index lists every clip 10 times under new names
  (symlinked clip folders, ``--proc10``),

and the peak resident set size of each child (``os.wait4``'s ``ru_maxrss``) is reported with
the ratio 10x / 1x, which must stay at or below 1.5. Writes ``--out`` (Markdown).

    python benchmarks/scorer_memory.py [--steps 20] [--threads 1] [--grid ../shared/grid]
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

LIMIT = 1.5
COMMANDS = ("au-classifier", "syncnet")


def ensure_processed(grid: Path, proc: Path) -> None:
    """Preprocess the GRID clips into ``proc`` unless its index exists (another run may have
    made it already)."""
    if (proc / "index.json").is_file():
        return
    subprocess.run([sys.executable, "-m", "coursekit.cli", "preprocess", str(grid), str(proc),
                    "--workers", "2"], check=True)


def make_copies(proc: Path, dst: Path, times: int = 10) -> int:
    """``dst``: every clip of ``proc`` listed ``times`` times (folders ``r<k>/<dir>`` symlinked
    to the originals, utterances renamed ``<utt>_r<k>``). Returns the number of clips."""
    index = json.loads((proc / "index.json").read_text())
    clips = []
    for k in range(times):
        for clip in index["clips"]:
            link = dst / f"r{k}" / clip["dir"]
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.is_symlink():
                link.symlink_to((proc / clip["dir"]).resolve(), target_is_directory=True)
            clips.append({**clip, "utt": f"{clip['utt']}_r{k}", "dir": f"r{k}/{clip['dir']}"})
    (dst / "index.json").write_text(json.dumps({**index, "clips": clips}))
    return len(clips)


def peak_rss_mb(command: list[str], log: Path) -> float:
    """Run ``command`` as a child; its peak RSS in MiB (``ru_maxrss``, KiB on Linux)."""
    with open(log, "w") as out:
        child = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({child.returncode}); see {log}")
    return usage.ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", default="../shared/grid")
    parser.add_argument("--proc", default="/tmp/grid_proc")
    parser.add_argument("--proc10", default="/tmp/grid_proc10")
    parser.add_argument("--work", default="/tmp/scorer_memory")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/scorer_memory.md")
    args = parser.parse_args()

    proc, proc10, work = Path(args.proc), Path(args.proc10), Path(args.work)
    ensure_processed(Path(args.grid), proc)
    n10 = make_copies(proc, proc10)
    index = json.loads((proc / "index.json").read_text())
    n1, size = len(index["clips"]), index["size"]
    frames = sum(c["n_frames"] for c in index["clips"])
    work.mkdir(parents=True, exist_ok=True)
    rows, failed = [], False
    for name in COMMANDS:
        peaks = []
        for tag, data in (("1x", proc), ("10x", proc10)):
            out = work / f"{name}_{tag}.pt"
            command = [sys.executable, "-m", "coursekit.cli", "train", name, "tiny",
                       "--data", str(data), "--out", str(out), "--steps", str(args.steps),
                       "--threads", str(args.threads), "--device", "cpu", "--no-eval"]
            peaks.append(peak_rss_mb(command, work / f"{name}_{tag}.log"))
        ratio = peaks[1] / peaks[0]
        failed |= ratio > LIMIT
        rows.append((name, *peaks, ratio))
        print(f"{name}: peak RSS {peaks[0]:.0f} MiB (1x) / {peaks[1]:.0f} MiB (10x), "
              f"ratio {ratio:.2f}")
    old_gb = frames * size * size * 3 * 4 / 2 ** 30  # every frame as float32 (S, S, 3)
    lines = ["# Peak memory of the scorers' training: 1x and 10x GRID\n",
             f"Machine: {platform.machine()} {os.cpu_count()} cores. "
             f"Date: {time.strftime('%Y-%m-%d')}. "
             f"Command: `python benchmarks/scorer_memory.py --steps {args.steps} --threads "
             f"{args.threads}`.\n",
             f"1x: the shared GRID clips processed at {size} px ({n1} clips, {frames} frames); "
             f"10x: the same listed 10 times under new names ({n10} clips, symlinked folders). "
             f"Each run: `coursekit train <scorer> tiny --steps {args.steps} --no-eval` on the "
             "CPU, in its own process; peak RSS = the child's `ru_maxrss`.\n",
             "| scorer | peak RSS 1x (MiB) | peak RSS 10x (MiB) | 10x / 1x |",
             "|---|---:|---:|---:|",
             *[f"| {n} | {a:.0f} | {b:.0f} | {r:.2f} |" for n, a, b, r in rows],
             "",
             f"Items are read from the memory-mapped crops, so RAM holds a batch, not the corpus "
             f"(limit: ratio <= {LIMIT}). Before, the AU classifier held every frame in RAM "
             f"as float32 (about {old_gb:.1f} GB for 1x, {10 * old_gb:.1f} GB for 10x) and the "
             f"sync expert every lower half as uint8 (an eighth of that).\n"]
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
