"""Labs: the notebooks' exercises as student notebooks and autograders, with otter-grader.

The committed notebooks are the instructors' versions: each exercise is a block of cells in
otter's notebook format (question, solution, tests; see ``notebooks/EXERCISES.md``), and the
tests run as ordinary cells when the notebook runs, so nbval checks the solutions. One call of
:func:`build_labs` (``coursekit course labs --out DIR``) runs ``otter assign`` on every notebook
that has exercises and writes::

    DIR/student/NN_name.ipynb      solutions replaced by ``...``, outputs cleared, and after
                                   each exercise a ``grader.check("nb01_q1")`` cell
    DIR/autograder/NN_name.zip     the autograder of that notebook
    DIR/autograder/NN_name.ipynb   the solution notebook with the same check cells

Notebooks without exercises are copied to ``DIR/student/`` as they are. The checks are stored
inside each student notebook, so students need only ``pip install otter-grader``.
:func:`grade_submissions` (``coursekit course grade``) grades a folder of handed-in notebooks
with ``otter run``'s engine (no Docker) into one CSV.

The assignment configuration is :data:`LAB_CONFIG`, the same for every notebook; the notebooks
themselves hold only their exercises.
"""

from __future__ import annotations

import csv
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .course import notebooks

LAB_CONFIG = {
    "init_cell": True,          # `grader = otter.Notebook(...)` at the top
    "check_all_cell": True,     # `grader.check_all()` at the end
    "export_cell": False,       # students hand in the .ipynb itself
    "solutions_pdf": False,
    "tests": {"files": False, "ok_format": False},  # exception-based tests, in the notebook
}
"""otter's ``# ASSIGNMENT CONFIG`` for every lab (``run_tests`` is set per build)."""
QUESTION_NAME = re.compile(r"nb(\d\d)_q\d+")
"""Question names: ``nbNN_qK``, NN the notebook's number, unique across the course."""


@dataclass
class Lab:
    """What :func:`build_lab` wrote for one notebook (``student`` only when it has no exercises)."""

    notebook: Path
    student: Path
    autograder: Path | None = None
    solution: Path | None = None
    questions: list[str] = field(default_factory=list)


def _require_otter() -> None:
    try:
        import otter  # noqa: F401
    except ImportError:
        raise RuntimeError("otter-grader is not installed: pip install otter-grader (the "
                           "course extra has it: pip install -e '.[course]')") from None


def question_names(notebook: str | Path) -> list[str]:
    """The names of a notebook's exercises (its ``# BEGIN QUESTION`` blocks), in order."""
    _require_otter()
    import nbformat
    from otter.assign.blocks import (BlockType, extract_all_fenced_otter_cells, get_cell_config,
                                     is_block_boundary_cell)

    cells = extract_all_fenced_otter_cells(nbformat.read(str(notebook), as_version=4).cells)
    return [get_cell_config(c).get("name", "") for c in cells
            if is_block_boundary_cell(c, BlockType.QUESTION)]


def _check_names(notebook: Path, names: list[str]) -> None:
    for name in names:
        match = QUESTION_NAME.fullmatch(str(name))
        if match is None or match.group(1) != notebook.name[:2]:
            raise ValueError(f"{notebook}: exercise name {name!r} should be "
                             f"nb{notebook.name[:2]}_q<number> (see notebooks/EXERCISES.md)")
    if len(set(names)) != len(names):
        raise ValueError(f"{notebook}: two exercises share a name: {names}")


def _master_with_config(notebook: Path, folder: Path, *, check: bool, colab: bool) -> Path:
    """A copy of ``notebook`` in ``folder``, same name, with :data:`LAB_CONFIG` as its first cell."""
    import nbformat
    import yaml

    config = dict(LAB_CONFIG, run_tests=check)
    if colab:  # Colab cannot read tests from the notebook's metadata: ship them as files
        config.update(runs_on="colab", tests=dict(LAB_CONFIG["tests"], files=True))
    nb = nbformat.read(str(notebook), as_version=4)
    source = "# ASSIGNMENT CONFIG\n" + yaml.safe_dump(config, sort_keys=False)
    nb.cells.insert(0, nbformat.v4.new_raw_cell(source))
    path = folder / notebook.name
    nbformat.write(nb, str(path))
    return path


def build_lab(notebook: str | Path, out: str | Path, *, check: bool = False,
              colab: bool = False) -> Lab:
    """Student notebook and autograder of one notebook (see the module docstring for the files).

    Args:
        notebook: a course notebook (the instructors' version).
        out: the labs folder; ``student/`` and ``autograder/`` are made in it.
        check: also grade the solution notebook with its autograder and raise RuntimeError
            unless it scores 100 % (executes the whole notebook).
        colab: for Google Colab: the tests go to ``out/student/tests/`` as files, which the
            students upload beside the notebook.

    Raises ValueError (one line) for a badly named exercise.
    """
    from otter.assign import main as otter_assign

    notebook, out = Path(notebook).resolve(), Path(out).resolve()
    student_dir, ag_dir = out / "student", out / "autograder"
    student_dir.mkdir(parents=True, exist_ok=True)
    names = question_names(notebook)
    if not names:
        shutil.copyfile(notebook, student_dir / notebook.name)
        return Lab(notebook, student_dir / notebook.name)
    _check_names(notebook, names)
    ag_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="coursekit-lab-") as tmp:
        master = _master_with_config(notebook, Path(tmp), check=check, colab=colab)
        dist = Path(tmp) / "dist"
        otter_assign(str(master), str(dist), no_pdfs=True, no_run_tests=not check)
        shutil.copyfile(dist / "student" / notebook.name, student_dir / notebook.name)
        shutil.copyfile(dist / "autograder" / notebook.name, ag_dir / notebook.name)
        (zipped,) = (dist / "autograder").glob("*.zip")  # otter stamps its name with the time
        shutil.copyfile(zipped, ag_dir / f"{notebook.stem}.zip")
        if colab:
            shutil.copytree(dist / "student" / "tests", student_dir / "tests", dirs_exist_ok=True)
    return Lab(notebook, student_dir / notebook.name, ag_dir / f"{notebook.stem}.zip",
               ag_dir / notebook.name, names)


def build_labs(out: str | Path, *, notebook_dir: str | Path | None = None,
               only: list[str] | None = None, check: bool = False,
               colab: bool = False) -> list[Lab]:
    """:func:`build_lab` for every course notebook (those whose names contain one of ``only``);
    prints one line per notebook. FileNotFoundError (one line) when there are no notebooks."""
    labs = []
    for nb in notebooks(notebook_dir):
        if only and not any(key in nb.name for key in only):
            continue
        lab = build_lab(nb, out, check=check, colab=colab)
        what = (f"{len(lab.questions)} exercises -> {lab.student}, {lab.autograder}"
                if lab.questions else f"no exercises, copied -> {lab.student}")
        print(f"{nb.name}: {what}" + (" (solutions score 100 %)" if check and lab.questions else ""))
        labs.append(lab)
    return labs


def submissions(paths: list[str | Path]) -> list[Path]:
    """The handed-in notebooks (``.ipynb``, or otter's export ``.zip``) of files and folders."""
    found = []
    for path in map(Path, paths):
        if path.is_dir():
            found += sorted(p for p in path.iterdir() if p.suffix in (".ipynb", ".zip"))
        elif path.is_file():
            found.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such submission file or folder")
    if not found:
        raise FileNotFoundError(f"no .ipynb or .zip submissions in {', '.join(map(str, paths))}")
    return found


def grade_submissions(paths: list[str | Path], autograder: str | Path,
                      out_csv: str | Path | None = None) -> list[dict]:
    """Grade each submission with otter (executes it; no Docker): one row per submission,
    ``{"submission", <question>: score..., "total", "possible"}``; written to ``out_csv`` when
    given. A notebook that stops with an error still gets the points of the checks it passes."""
    _require_otter()
    from otter.api import grade_submission

    autograder = Path(autograder)
    if not autograder.is_file():
        raise FileNotFoundError(f"{autograder}: no such autograder zip (coursekit course labs "
                                "writes them to DIR/autograder/)")
    rows = []
    for path in submissions(paths):
        result = grade_submission(str(path), str(autograder), quiet=True)
        row = {"submission": path.name}
        row.update({name: result.get_score(name) for name in result.test_files})
        row.update(total=result.total, possible=result.possible)
        rows.append(row)
        print(f"{path.name}: {result.total:g} / {result.possible:g}")
    if out_csv:
        columns = list(dict.fromkeys(key for row in rows for key in row))
        Path(out_csv).parent.mkdir(parents=True, exist_ok=True)
        with open(out_csv, "w", newline="") as f:
            writer = csv.DictWriter(f, columns)
            writer.writeheader()
            writer.writerows(rows)
    return rows
