"""The labs (``coursekit course labs``, ``coursekit course grade``): the otter checks of every
notebook's exercises pass on the solutions and fail, with a score and no crash, on the student
version whose answers are still ``...``.

What runs, chosen for CI time (the whole suite has a budget):

* Every notebook's lab is built once, through the command line (``otter assign`` without its own
  grading run: seconds).
* **Solutions pass through the autograder**, every notebook: ``tests/test_notebook_parameters.py``
  executes each solution notebook (with other parameters than its defaults) and then runs, in
  that kernel, the test files of the notebook's autograder zip with otter's own test runner;
  every question must get its points. nbval runs the committed notebooks, whose test cells
  call the same tests on the solutions' values. Here we check that every test cell does make
  that call, and that the tests otter exports read no notebook name except their arguments
  (otter runs them outside the notebook).
* **Unanswered fails**, every notebook: each question's exported tests run, with otter's own test
  runner, on the student version's answer cells executed by themselves; every question must score
  0. (Arguments that are not answers, e.g. ``audio``, are None there: the full grading below is
  what shows a test failing in context.)
* **Graded end to end**, notebook 01 (it runs in about 10 s): the solution and the student version
  are handed in as a folder to ``coursekit course grade``: 100 % and 0 on every question.
"""

import ast
import builtins
import csv
import dis
import shutil
import subprocess
import sys
import types

import nbformat
import pytest

pytest.importorskip("otter")

from coursekit.course import notebooks  # noqa: E402
from coursekit.labs import build_lab, question_names  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.drop")
ANSWER_TAG = "otter_answer_cell"
WITH_EXERCISES = [nb for nb in notebooks() if question_names(nb)]


def _student(labs, nb) -> nbformat.NotebookNode:
    return nbformat.read(str(labs / "student" / nb.name), as_version=4)


def test_every_notebook_gets_a_student_version(labs):
    assert WITH_EXERCISES, "no notebook has exercises"
    for nb in notebooks():
        assert (labs / "student" / nb.name).is_file()
    for nb in WITH_EXERCISES:
        assert (labs / "autograder" / f"{nb.stem}.zip").is_file()
        student = _student(labs, nb)
        text = "\n".join(c.source for c in student.cells)
        assert "SOLUTION" not in text, f"{nb.name}: a solution is left in the student version"
        checks = [c.source for c in student.cells if c.source.startswith("grader.check(")]
        assert checks == [f'grader.check("{q}")' for q in question_names(nb)], nb.name
        assert not any(c.get("outputs") for c in student.cells if c.cell_type == "code")


@pytest.mark.parametrize("nb", WITH_EXERCISES, ids=lambda p: p.stem)
def test_solution_notebook_runs_every_test(nb):
    """Each test cell of the committed notebook defines one test and calls it with its own
    parameters, so nbval runs it on the solution's values."""
    calls = 0
    for cell in nbformat.read(str(nb), as_version=4).cells:
        if cell.cell_type != "code" or not cell.source.startswith("def test_"):
            continue
        body = ast.parse(cell.source).body
        params = [a.arg for a in body[0].args.args]
        call = body[-1].value if len(body) == 2 and isinstance(body[-1], ast.Expr) else None
        assert (isinstance(call, ast.Call) and getattr(call.func, "id", "") == body[0].name
                and [getattr(a, "id", None) for a in call.args] == params), \
            f"{nb.name}: the cell of {body[0].name} must end with {body[0].name}({', '.join(params)})"
        calls += 1
    assert calls >= len(question_names(nb)), f"{nb.name}: a question without a test cell"


def _global_names(code: types.CodeType) -> set[str]:
    names = {i.argval for i in dis.get_instructions(code) if i.opname == "LOAD_GLOBAL"}
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _global_names(const)
    return names


@pytest.mark.parametrize("nb", WITH_EXERCISES, ids=lambda p: p.stem)
def test_tests_are_self_contained(labs, nb):
    tests = _student(labs, nb).metadata["otter"]["tests"]
    assert sorted(tests) == sorted(question_names(nb))
    allowed = set(dir(builtins))
    for name, source in tests.items():
        module = compile(source, name, "exec")
        funcs = [c for c in module.co_consts if isinstance(c, types.CodeType)]
        assert funcs, f"{nb.name} {name}: no test function"
        for func in funcs:
            stray = _global_names(func) - allowed
            assert not stray, (f"{nb.name} {name}: {func.co_name} uses {sorted(stray)} from the "
                               "notebook; import inside the test or take them as arguments")


@pytest.mark.parametrize("nb", WITH_EXERCISES, ids=lambda p: p.stem)
def test_unanswered_questions_fail(labs, nb):
    from otter.test_files.exception_test import ExceptionTestFile

    student = _student(labs, nb)
    answers = {}
    for cell in student.cells:
        if ANSWER_TAG in cell.metadata.get("tags", []):
            exec(compile(cell.source, f"{nb.name} answer cell", "exec"), answers)  # noqa: S102
    for name, source in student.metadata["otter"]["tests"].items():
        test = ExceptionTestFile.from_string(source, path=name)
        test.run(dict(answers))
        assert test.possible > 0 and test.score == 0, \
            f"{nb.name} {name}: the check passes with the answer left as `...`"


def test_bad_exercise_name_is_refused(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(
        "```otter\n# BEGIN QUESTION\nname: q1\n```\nA question.")])
    path = tmp_path / "05_x.ipynb"
    nbformat.write(nb, str(path))
    with pytest.raises(ValueError, match="nb05_q<number>"):
        build_lab(path, tmp_path / "out")


def test_colab_ships_the_checks_as_files(tmp_path):
    first = WITH_EXERCISES[0]
    lab = build_lab(first, tmp_path, colab=True)
    assert sorted(p.stem for p in (tmp_path / "student" / "tests").glob("*.py")) == \
        sorted(lab.questions)


def test_notebook01_graded_end_to_end(labs, tmp_path):
    nb = next(p for p in notebooks() if p.name.startswith("01_"))
    questions = question_names(nb)
    handed_in = tmp_path / "handed_in"
    handed_in.mkdir()
    shutil.copyfile(labs / "autograder" / nb.name, handed_in / "a_solution.ipynb")
    shutil.copyfile(labs / "student" / nb.name, handed_in / "b_unanswered.ipynb")
    scores = tmp_path / "scores.csv"
    command = [sys.executable, "-m", "coursekit.cli", "course", "grade", str(handed_in),
               "--autograder", str(labs / "autograder" / f"{nb.stem}.zip"), "--out", str(scores)]
    # In a child process with a time limit: a Jupyter kernel that never answers (seen once on
    # a heavily loaded machine) fails this test instead of stalling the suite.
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    solution, unanswered = csv.DictReader(scores.open())
    assert solution["submission"] == "a_solution.ipynb"
    assert float(solution["total"]) == float(solution["possible"]) > 0
    assert all(float(solution[q]) > 0 for q in questions)
    assert float(unanswered["possible"]) == float(solution["possible"])
    assert all(float(unanswered[q]) == 0 for q in questions)


@pytest.mark.parametrize("nb", WITH_EXERCISES, ids=lambda p: p.stem)
def test_graders_skip_interactive_widgets(nb):
    """Cells that open ipywidgets (``interact``, sliders) carry otter's ``otter_ignore`` tag, so
    grading executes no widget (a widget's messages have stalled a headless kernel before)."""
    for cell in nbformat.read(str(nb), as_version=4).cells:
        if cell.cell_type == "code" and ("interact(" in cell.source or "ipywidgets" in cell.source):
            assert "otter_ignore" in cell.metadata.get("tags", []), cell.source[:80]
