"""coursekit course sweep: one notebook run per parameter set, metrics gathered in one table."""

import csv
import json
import subprocess
import sys

import nbformat
import pytest
import yaml

from coursekit.sweep import ABLATIONS, collect, load_grid, run_sweep, write_table

NOTEBOOK_CODE = """\
import json
from pathlib import Path

if fail:
    raise ValueError(f"boom {a}")
Path(output_dir, "metrics.json").write_text(json.dumps(
    {"sum": a + b, "product": a * b, "label": f"a={a}", "extra": {"sq": a * a}}))
"""


@pytest.fixture()
def notebook(tmp_path):
    """A notebook whose parameters cell has a, b, fail, output_dir; it writes metrics.json
    (sum, product, label and a nested extra.sq) or raises when ``fail``."""
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("a = 1\nb = 2.0\nfail = False\noutput_dir = '.'")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(NOTEBOOK_CODE)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    path = tmp_path / "nb" / "toy.ipynb"
    path.parent.mkdir()
    nbformat.write(nb, path)
    return path


@pytest.fixture()
def grid(tmp_path):
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump({"common": {"b": 0.5},
                                    "runs": {"one": {"a": 1}, "two": {"a": 2, "b": 1.25},
                                             "bad": {"a": 3, "fail": True}}}, sort_keys=False))
    return path


def read_csv(path):
    with open(path, newline="") as fh:
        return {row["run"]: row for row in csv.DictReader(fh)}


def test_load_grid_merges_common_and_checks(tmp_path, grid):
    runs = load_grid(grid, overrides={"c": 7})
    assert list(runs) == ["one", "two", "bad"]
    assert runs["one"] == {"b": 0.5, "a": 1, "c": 7} and runs["two"]["b"] == 1.25
    bad = tmp_path / "bad.yaml"
    for text, message in (("runs: {}\n", "'runs' mapping"),
                          ("runs: {'a b': {x: 1}}\n", "not a folder name"),
                          ("runs: {r: {output_dir: x}}\n", "sets itself"),
                          ("grid: {}\nruns: {r: {x: 1}}\n", "unknown key")):
        bad.write_text(text)
        with pytest.raises(ValueError, match=message):
            load_grid(bad)
    with pytest.raises(FileNotFoundError):
        load_grid(tmp_path / "none.yaml")


def test_sweep_runs_tabulates_and_resumes(notebook, grid, tmp_path, capsys):
    out = tmp_path / "sweep"
    rows = run_sweep(notebook, grid, out)
    printed = capsys.readouterr().out
    assert "[1/3] one: running" in printed and "[3/3] bad: FAILED: ValueError: boom 3" in printed
    assert [r["status"] for r in rows] == ["ok", "ok", "error"]
    assert rows[1]["metrics"] == {"sum": 3.25, "product": 2.5, "label": "a=2", "extra.sq": 4}
    # every run has its own folder, executed notebook and output_dir
    for name in ("one", "two", "bad"):
        assert (out / name / "toy.ipynb").is_file()
        assert json.loads((out / name / "run.json").read_text())["status"] in ("ok", "error")
    executed = nbformat.read(out / "two" / "toy.ipynb", as_version=4)
    source = "".join(c.source for c in executed.cells)
    assert f"output_dir = \"{out / 'two'}\"" in source and f"out_dir = \"{out / 'two'}\"" in source
    table = read_csv(out / "sweep.csv")
    assert list(table) == ["one", "two", "bad"]
    assert list(next(iter(table.values()))) == ["run", "status", "b", "a", "fail", "sum",
                                                "product", "label", "extra.sq", "minutes",
                                                "error"]
    assert table["one"]["sum"] == "1.50" and table["two"]["product"] == "2.50"
    assert table["two"]["b"] == "1.25" and table["one"]["error"] == ""
    assert table["bad"]["status"] == "error" and table["bad"]["sum"] == ""
    assert table["bad"]["error"].startswith("ValueError: boom 3")
    md = (out / "sweep.md").read_text().splitlines()
    assert len(md) == 5 and md[2].startswith("| one | ok | 0.5 | 1 |  | 1.50 | 0.500 | a=1 | 1 |")

    # re-run: finished runs are skipped, the failed one is tried again
    stamp = (out / "one" / "toy.ipynb").stat().st_mtime_ns
    rows = run_sweep(notebook, grid, out)
    printed = capsys.readouterr().out
    assert "one: finished before, skipped" in printed and "two: finished before" in printed
    assert "bad: running" in printed
    assert (out / "one" / "toy.ipynb").stat().st_mtime_ns == stamp
    assert [r["status"] for r in rows] == ["ok", "ok", "error"]
    # changed parameters and --force run again
    grid.write_text(grid.read_text().replace("b: 1.25", "b: 1.5"))
    rows = run_sweep(notebook, grid, out, only=["two"])
    assert "two: running (parameters changed)" in capsys.readouterr().out
    assert rows[1]["metrics"]["sum"] == 3.5 and rows[0]["status"] == "ok"
    run_sweep(notebook, grid, out, only=["one"], force=True)
    assert (out / "one" / "toy.ipynb").stat().st_mtime_ns != stamp


def test_a_run_without_metrics_is_an_error(notebook, tmp_path):
    silent = nbformat.read(notebook, as_version=4)
    silent.cells = silent.cells[:1]  # the parameters cell alone: no metrics.json
    nbformat.write(silent, notebook)
    out = tmp_path / "sweep"
    rows = run_sweep(notebook, {"quiet": {"a": 1}}, out, progress=False)
    assert rows[0]["status"] == "error" and "wrote no" in rows[0]["error"]
    assert (out / "quiet" / "toy.ipynb").is_file()
    (out / "quiet" / "metrics.json").write_text("[1, 2]")
    (out / "quiet" / "run.json").write_text(json.dumps({"status": "ok", "seconds": 1.0}))
    rows = collect(out, {"quiet": {}, "never": {}})
    assert rows[0]["status"] == "error" and "not a JSON object" in rows[0]["error"]
    assert rows[1]["status"] == "not run"
    md, _ = write_table(rows, out)
    assert "| never | not run |" in md.read_text()


def test_cli_sweep(notebook, grid, tmp_path):
    out = tmp_path / "cli"
    cmd = [sys.executable, "-m", "coursekit.cli", "course", "sweep", str(notebook),
           "--grid", str(grid), "--out", str(out), "--only", "one", "--set", "a=10"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "[1/1] one: done" in proc.stdout
    table = read_csv(out / "sweep.csv")
    assert table["one"]["sum"] == "10.5" and table["two"]["status"] == "not run"
    proc = subprocess.run(cmd[:-2] + ["--set", "novalue"], capture_output=True, text=True)
    assert proc.returncode == 2 and "KEY=VALUE" in proc.stderr


def test_shipped_ablation_grid():
    runs = load_grid(ABLATIONS)
    assert list(runs) == ["baseline_rec", "plus_per_id", "gru", "plus_au_loss",
                          "plus_audio2au", "diffusion"]
    assert all(r["config"] == "tiny" and "output_dir" not in r for r in runs.values())
    assert runs["baseline_rec"] | {"w_per": 0.07, "w_id": 1.5} == runs["plus_per_id"]
    assert runs["gru"] == runs["plus_per_id"] | {"fusion": "gru"}
    assert runs["plus_au_loss"] == runs["plus_per_id"] | {"w_au": 0.02}
    assert runs["plus_audio2au"] == runs["plus_au_loss"] | {"use_audio2au": True}
    assert runs["diffusion"] == runs["plus_audio2au"] | {"renderer": "diffusion"}
    assert {r["renderer"] for r in runs.values()} == {"decoder", "diffusion"}
