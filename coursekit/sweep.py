"""Parameter sweeps of one notebook (the course's ablations): ``coursekit course sweep``.

``coursekit course sweep NOTEBOOK --grid GRID.yaml --out DIR`` executes ``NOTEBOOK`` with
papermill once per run of the grid and gathers the runs' metrics into one table.

The grid (YAML)::

    description: what the sweep compares          # optional
    common: {config: tiny, minutes: 6, seed: 0}   # parameters of every run
    runs:                                         # run name -> its parameters, over common
      baseline_rec: {w_per: 0.0, w_id: 0.0}
      plus_per_id: {w_per: 0.07, w_id: 1.5}

Run names become folder names (letters, digits, ``_ . -``). The shipped
``coursekit/ablations.yaml`` (:data:`ABLATIONS`) is the course's ablation study of
``notebooks/06_training.ipynb``.

Each run ``name``:

* gets the parameters ``common`` + ``runs[name]`` + ``output_dir = DIR/name`` (absolute;
  also as ``out_dir``, the name :mod:`coursekit.course` uses), injected by papermill after the
  notebook's ``parameters``-tagged cell;
* is executed from the notebook's folder (relative paths work as when opened there), the
  executed notebook (outputs included) saved as ``DIR/name/<notebook file name>``;
* **writes its metrics**: the convention is that the notebook saves a JSON object
  ``output_dir/metrics.json`` of numbers (strings allowed; nested objects are flattened to
  ``outer.inner`` keys), e.g. with
  :func:`coursekit.evaluate.summary_metrics` of :func:`coursekit.evaluate.evaluate_checkpoint`;
* leaves ``DIR/name/run.json``: ``{"status": "ok" | "error", "parameters", "seconds",
  "error"}``.

A run that raises, or writes no ``metrics.json``, is reported in the table's ``error``
column and the other runs go on. The sweep is resumable: a run whose ``run.json`` says
``ok`` with the same parameters is skipped (``force`` re-runs it); failed runs and runs
whose parameters changed are run again.

The table (:func:`write_table`): ``DIR/sweep.md`` and ``DIR/sweep.csv``, one row per run:
``run``, ``status``, the parameters that differ between runs, the union of the metric keys
(3 significant digits), ``minutes``, ``error``.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from .evaluate import format3

ABLATIONS = Path(__file__).resolve().parent / "ablations.yaml"
"""The course's ablation grid (package data)."""

GRID_KEYS = ("description", "common", "runs")
RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
RESERVED = ("output_dir", "out_dir")
"""Parameters the sweep sets itself: both to the run's folder (``out_dir`` is the name
``coursekit course run`` uses)."""


def load_grid(path: str | Path, overrides: dict | None = None) -> dict[str, dict]:
    """The runs of a grid file: ``{name: parameters}`` (``common`` merged under each run, then
    ``overrides`` over both), in file order. Raises FileNotFoundError or ValueError (a
    malformed grid, naming the file)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such grid file")
    try:
        grid = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML ({err})") from None
    if not isinstance(grid, dict) or not isinstance(grid.get("runs"), dict) or not grid["runs"]:
        raise ValueError(f"{path}: a grid needs a 'runs' mapping of run name -> parameters")
    unknown = set(grid) - set(GRID_KEYS)
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {sorted(unknown)}; a grid has {GRID_KEYS}")
    common = grid.get("common") or {}
    if not isinstance(common, dict):
        raise ValueError(f"{path}: 'common' must be a mapping of parameters")
    runs = {}
    for name, params in grid["runs"].items():
        if params is not None and not isinstance(params, dict):
            raise ValueError(f"{path}: run {name!r} must map parameter names to values")
        runs[str(name)] = {**common, **(params or {}), **(overrides or {})}
    return _checked(runs, path)


def _checked(runs: dict, where) -> dict:
    """``runs`` after checking its names (folder names) and parameters (no reserved ones)."""
    for name, params in runs.items():
        if not RUN_NAME.match(name):
            raise ValueError(f"{where}: run name {name!r} is not a folder name "
                             "(letters, digits, _ . -)")
        clash = [k for k in RESERVED if k in params]
        if clash:
            raise ValueError(f"{where}: run {name!r} sets {clash}, which the sweep sets itself")
    return runs


def flatten(metrics: dict, prefix: str = "") -> dict:
    """Nested dicts -> one level with ``outer.inner`` keys; other values kept."""
    flat = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _plain(value):
    """JSON round trip, so parameters compare equal to those read back from ``run.json``."""
    return json.loads(json.dumps(value))


def _read_status(folder: Path) -> dict | None:
    try:
        return json.loads((folder / "run.json").read_text())
    except (OSError, ValueError):
        return None


def _short(err: BaseException) -> str:
    """The error's type and first line (papermill's: the notebook's exception)."""
    name = getattr(err, "ename", None) or type(err).__name__
    text = str(getattr(err, "evalue", None) or err).strip().splitlines()
    return f"{name}: {text[0] if text else ''}"[:300]


def run_one(notebook: Path, folder: Path, params: dict, *, kernel: str = "python3",
            progress: bool = False) -> dict:
    """Execute one run into ``folder``; returns its status dict (also saved as ``run.json``)."""
    import papermill

    folder.mkdir(parents=True, exist_ok=True)
    for stale in ("metrics.json", "run.json"):
        (folder / stale).unlink(missing_ok=True)
    start, error = time.time(), None
    try:
        papermill.execute_notebook(str(notebook), str(folder / notebook.name),
                                   parameters={**params, **dict.fromkeys(RESERVED, str(folder))},
                                   kernel_name=kernel, cwd=str(notebook.parent),
                                   progress_bar=progress)
        if not (folder / "metrics.json").is_file():
            error = f"the notebook wrote no {folder / 'metrics.json'}"
    except Exception as err:  # noqa: BLE001  a failed run must not stop the sweep
        error = _short(err)
    status = {"status": "error" if error else "ok", "parameters": _plain(params),
              "seconds": time.time() - start, "error": error}
    (folder / "run.json").write_text(json.dumps(status, indent=1) + "\n")
    return status


def run_sweep(notebook: str | Path, grid: str | Path | dict, out: str | Path, *,
              force: bool = False, only: list[str] | None = None, overrides: dict | None = None,
              kernel: str = "python3", progress: bool = True) -> list[dict]:
    """Run every run of ``grid`` (a grid file, or ``{name: parameters}``) on ``notebook`` into
    ``out/<name>/`` (see the module docstring), then write the table.

    force: re-run runs that finished before. only: just these run names (the table still
    lists every run of the grid that has a result). overrides: parameters over every run's.
    progress: a line per run (and papermill's cell bar).

    Returns the table rows (:func:`collect`): ``[{"run", "status", "parameters", "metrics",
    "seconds", "error"}]``; ``status`` is ``ok``, ``error``, or ``not run``.
    """
    notebook = Path(notebook).resolve()
    if not notebook.is_file():
        raise FileNotFoundError(f"{notebook}: no such notebook")
    if isinstance(grid, dict):
        runs = _checked({str(k): {**v, **(overrides or {})} for k, v in grid.items()}, "grid")
    else:
        runs = load_grid(grid, overrides)
    unknown = set(only or ()) - set(runs)
    if unknown:
        raise ValueError(f"no run(s) {sorted(unknown)} in the grid; runs: {', '.join(runs)}")
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    todo = [name for name in runs if not only or name in only]
    for k, name in enumerate(todo, 1):
        folder, params = out / name, runs[name]
        old = _read_status(folder)
        finished = (old is not None and old.get("status") == "ok"
                    and (folder / "metrics.json").is_file())
        if finished and not force and old.get("parameters") == _plain(params):
            if progress:
                print(f"[{k}/{len(todo)}] {name}: finished before, skipped (force re-runs it)",
                      flush=True)
            continue
        if progress:
            why = " (parameters changed)" if finished and not force else ""
            print(f"[{k}/{len(todo)}] {name}: running{why} ...", flush=True)
        status = run_one(notebook, folder, params, kernel=kernel, progress=progress)
        if progress:
            done = ("done" if status["status"] == "ok" else f"FAILED: {status['error']}")
            print(f"[{k}/{len(todo)}] {name}: {done} ({status['seconds'] / 60:.1f} min)",
                  flush=True)
    rows = collect(out, runs)
    md, csv_path = write_table(rows, out)
    if progress:
        failed = sum(r["status"] == "error" for r in rows)
        print(f"{len(rows)} run(s), {failed} failed: {md}, {csv_path}", flush=True)
    return rows


def collect(out: str | Path, runs: dict[str, dict]) -> list[dict]:
    """One row per run of ``runs`` from ``out/<name>/`` (``run.json``, ``metrics.json``):
    ``{"run", "status", "parameters", "metrics" (flat), "seconds", "error"}``."""
    rows = []
    for name, params in runs.items():
        folder = Path(out) / name
        status = _read_status(folder) or {"status": "not run", "seconds": None, "error": None}
        metrics, error = {}, status.get("error")
        if status["status"] == "ok":
            try:
                found = json.loads((folder / "metrics.json").read_text())
                if not isinstance(found, dict):
                    raise ValueError("not a JSON object")
                metrics = flatten(found)
            except (OSError, ValueError) as err:
                status["status"], error = "error", f"metrics.json: {err}"
        rows.append({"run": name, "status": status["status"], "parameters": params,
                     "metrics": metrics, "seconds": status.get("seconds"), "error": error})
    return rows


def write_table(rows: list[dict], out: str | Path) -> tuple[Path, Path]:
    """``out/sweep.md`` and ``out/sweep.csv``: columns ``run``, ``status``, the parameters
    that differ between runs, the union of the metric keys (in order of first appearance),
    ``minutes``, ``error``; numbers to 3 significant digits, missing cells empty."""
    import csv

    out = Path(out)
    keys = list(dict.fromkeys(k for r in rows for k in r["parameters"]))
    varying = [k for k in keys
               if len({json.dumps(r["parameters"].get(k), sort_keys=True) for r in rows}) > 1]
    metric_keys = list(dict.fromkeys(k for r in rows for k in r["metrics"]))
    param_cols = [k if k not in metric_keys else f"param.{k}" for k in varying]
    header = ["run", "status", *param_cols, *metric_keys, "minutes", "error"]
    table = []
    for r in rows:
        params = [str(r["parameters"].get(k, "")) for k in varying]
        metrics = [format3(r["metrics"].get(k)) for k in metric_keys]
        minutes = None if r["seconds"] is None else r["seconds"] / 60
        table.append([r["run"], r["status"], *params, *metrics, format3(minutes),
                      r["error"] or ""])
    md = out / "sweep.md"
    esc = lambda s: str(s).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---:" if h in metric_keys or h == "minutes" else "---"
                            for h in header) + "|"]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in table]
    md.write_text("\n".join(lines) + "\n")
    path = out / "sweep.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(table)
    return md, path
