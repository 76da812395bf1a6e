"""Run the notebook course with papermill: every notebook, in order, into a run folder.

``coursekit course run --out runs/latest`` executes ``notebooks/NN_*.ipynb`` in order, writing
each executed notebook (outputs included) to the run folder, with the same parameters for all
of them (data folder, shipped checkpoints, config size, device, seed; each notebook writes into
its own output folder ``RUN/NN_name/``). Budgets such as ``epochs`` keep each notebook's own
default (tuned so the whole course runs in minutes on a laptop CPU) unless a parameters file
sets them. A lab can hand its students a YAML/JSON parameters file instead of editing notebooks.

The notebooks come with the source repository: the folder given (``--notebooks``), else the
checkout's ``notebooks/``, else ``./notebooks``.

At the end the run folder gets ``summary.md``: the time of each notebook, the evaluation table
(notebook 07's ``evaluation.md``) and the generated videos (notebook 08's mp4 files).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from .assets import TINY_DIR
from .data.corpus import SAMPLES_DIR, SAMPLES_HINT

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = REPO / "notebooks"
"""The notebooks of a source checkout (an installed package has none)."""
DEFAULT_PARAMETERS = {
    "config": "tiny",
    "device": "cpu",
    "data_dir": str(SAMPLES_DIR),
    "checkpoint_dir": str(TINY_DIR),
    "seed": 0,
}


def notebooks(folder: str | Path | None = None) -> list[Path]:
    """The course notebooks in order (``NN_name.ipynb``) of ``folder``; by default
    :data:`NOTEBOOK_DIR`, else ``./notebooks``. FileNotFoundError (one line) when none."""
    if folder is None:
        folder = NOTEBOOK_DIR if NOTEBOOK_DIR.is_dir() else Path.cwd() / "notebooks"
    found = sorted(p for p in Path(folder).glob("[0-9][0-9]_*.ipynb"))
    if not found:
        raise FileNotFoundError(f"{folder}: no course notebooks (NN_name.ipynb); they come "
                                "with the source repository (its notebooks/ folder): run from "
                                "a clone of it or give --notebooks DIR")
    return found


def load_parameters(path: str | Path | None) -> dict:
    """Parameters from a YAML or JSON file, over :data:`DEFAULT_PARAMETERS`."""
    params = dict(DEFAULT_PARAMETERS)
    if path:
        text = Path(path).read_text()
        if str(path).endswith(".json"):
            params.update(json.loads(text))
        else:
            import yaml

            params.update(yaml.safe_load(text) or {})
    return params


def run_course(out: str | Path, parameters: dict | None = None, *, only: list[str] | None = None,
               kernel: str = "python3", progress: bool = True,
               notebook_dir: str | Path | None = None) -> list[Path]:
    """Execute the notebooks with papermill; returns the executed notebooks' paths.

    Args:
        out: run folder; executed notebooks go there, each notebook's own outputs (figures,
            videos, tables) under ``out/<notebook name>/``.
        parameters: injected into the ``parameters`` cell of every notebook that has them
            (a name that no notebook has is reported once and used nowhere).
        only: run just the notebooks whose names contain one of these strings.
        notebook_dir: where the notebooks are (default: :func:`notebooks`' lookup).

    Raises FileNotFoundError (one line) when there are no notebooks or no data folder.
    """
    import papermill

    params = dict(DEFAULT_PARAMETERS, **(parameters or {}))
    found = notebooks(notebook_dir)
    data = found[0].parent / params["data_dir"]  # relative: to the notebooks, as they read it
    if not data.is_dir():
        raise FileNotFoundError(f"{data}: no such data folder ({SAMPLES_HINT.format(root=data)})")
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    known = {nb: set(papermill.inspect_notebook(str(nb))) for nb in found}
    stray = sorted(set(parameters or {}) - set(DEFAULT_PARAMETERS) - set().union(*known.values()))
    if stray:
        print(f"coursekit course run: no notebook has the parameter(s) {', '.join(stray)}; "
              "they are not used")
    done, seconds = [], {}
    for nb in found:
        if only and not any(key in nb.name for key in only):
            continue
        start = time.time()
        target = out / nb.name
        nb_params = {k: v for k, v in dict(params, out_dir=str(out / nb.stem)).items()
                     if k in known[nb]}
        papermill.execute_notebook(str(nb), str(target), parameters=nb_params, kernel_name=kernel,
                                   cwd=str(nb.parent), progress_bar=progress)
        seconds[nb.name] = time.time() - start
        print(f"{nb.name}: executed in {seconds[nb.name]:.0f} s -> {target}")
        done.append(target)
    (out / "parameters.json").write_text(json.dumps(params, indent=1) + "\n")
    summary = write_summary(out, seconds)
    print(f"summary: {summary}")
    return done


def write_summary(out: Path, seconds: dict[str, float]) -> Path:
    """``out/summary.md``: notebook times, the evaluation tables and the generated videos."""
    lines = ["# Course run\n", "| notebook | seconds |", "|---|---:|"]
    lines += [f"| {name} | {sec:.0f} |" for name, sec in seconds.items()]
    lines.append(f"| **total** | **{sum(seconds.values()):.0f}** |")
    for table in sorted(out.glob("*/evaluation.md")):
        lines += ["", f"## {table.parent.name}: evaluation ({table.relative_to(out)})", "",
                  table.read_text().strip()]
    videos = sorted(out.glob("*/*.mp4"))
    if videos:
        lines += ["", "## Generated videos", ""]
        lines += [f"- [{v.relative_to(out)}]({v.relative_to(out)})" for v in videos]
    path = out / "summary.md"
    path.write_text("\n".join(lines) + "\n")
    return path
