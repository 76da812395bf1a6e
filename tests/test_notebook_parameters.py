"""Each notebook run by papermill with parameters other than its defaults uses them.

Every notebook runs once, outside the repository, with a fresh output folder, a copy of the
shipped checkpoints where it reads checkpoints, and parameters that change what it does (and
keep it quick). A cell added at the end reports which checkpoint files the kernel read
(:func:`coursekit.checkpoint.files_read`); each case then checks what its parameters must
have changed: the output folder filled, the copied checkpoints read, and the notebook's own
figures (epochs trained, clips evaluated, sampling steps, the fusion of the trained model).
``device`` is not among them: on a machine without a GPU every choice resolves to the CPU.

The same run grades the solutions with the notebook's autograder: a last cell runs the test
files of its otter autograder zip (``coursekit course labs``) with otter's own test runner on
the kernel's variables, as otter's grading does after executing a submission; every question
must get all its points.
"""

import json
import re
import shutil
import zipfile
from pathlib import Path

import nbformat
import pytest

from coursekit.assets import TINY_DIR
from coursekit.course import NOTEBOOK_DIR, notebooks

PROBE = ("import json as _json, coursekit.checkpoint as _ck\n"
         "print('PROBE' + _json.dumps(_ck.files_read()))")
GRADE = """import json as _json
from otter.test_files.exception_test import ExceptionTestFile as _Test
_scores = {}
for _name, _source in _json.loads(open(%r).read()).items():
    _test = _Test.from_string(_source, path=_name)
    _test.run(globals())
    _scores[_name] = [_test.score, _test.possible]
print('GRADED' + _json.dumps(_scores))"""


def autograder_tests(labs, name) -> dict[str, str]:
    """``{question: source}`` of the test files in the notebook's autograder zip."""
    with zipfile.ZipFile(labs / "autograder" / f"{name}.zip") as z:
        return {Path(f).stem: z.read(f).decode() for f in z.namelist()
                if f.startswith("tests/") and f.endswith(".py")}


def _text(nb) -> str:
    return "\n".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", [])
                     if o.get("output_type") == "stream")


def _fusion_of_trained(out, text):
    from coursekit.checkpoint import read_checkpoint

    assert read_checkpoint(out / "run" / "talker.pt")["model_config"]["fusion"] == "gru"
    assert "fusion gru" in text


def _short_diffusion_run(out, text):
    steps, seconds = map(int, re.search(r"(\d+) steps in (\d+) s", text).groups())
    assert seconds <= 0.1 * 60 + 15, f"a 0.1 minute run took {seconds} s"


CASES = {
    "01_mfcc_windowing": (dict(seed=1, grid_dir="no-grid-here"),
                          lambda out, text: "no GRID folder given" in text),
    "02_faces_and_action_units": (dict(seed=1, grid_dir="no-grid-here"),
                                  lambda out, text: (out / "processed").is_dir()
                                  and "no GRID folder given" in text),
    "03_audio2au": (dict(epochs=2, seed=1),
                    lambda out, text: re.search(r"trained [12] epochs", text) is not None),
    "04_tcsan": (dict(seed=1, checkpoints=True), None),
    "05_diffusion_renderer": (dict(max_minutes=0.1, seed=1, checkpoints=True),
                              _short_diffusion_run),
    "06_training": (dict(epochs=1, fusion="gru", checkpoints=True), _fusion_of_trained),
    "07_evaluation": (dict(max_clips=2, steps=2, checkpoints=True),
                      lambda out, text: re.search(r"diffusion: 2 clips", text) is not None),
    "08_your_own_face": (dict(steps=2, utterance="spk6/audio/bbwh1s.flac",
                              grid_dir="no-grid-here"),
                         lambda out, text: "bbwh1s.flac" in text and "(2 DDIM steps)" in text),
    "09_text_and_flow": (dict(text="Two books, 3 \u201cpens\u201d.", voice="en-gb", rate=175,
                              flicker_clips=1, seed=1, held_out=2, grid_dir="no-grid-here"),
                         lambda out, text: "'Two books, 3 \u201cpens\u201d.'" in text
                         and "1 spk5 clips rendered" in text and (out / "samples64").is_dir()
                         and "no-grid-here has no s1/video" in text),
}


CELL_TIMEOUT = 300
"""Seconds a cell may take here (the slowest, a short training or evaluation, takes ~100)."""


def _execute(source, out, params):
    """papermill, once more if a cell hangs: nbclient sometimes waits forever for the reply to
    a cell that shows ipywidgets (jupyter/nbclient#312) although the kernel has finished."""
    import papermill

    for attempt in (1, 2):
        try:
            papermill.execute_notebook(str(source), str(out), parameters=params,
                                       cwd=str(NOTEBOOK_DIR), kernel_name="python3",
                                       progress_bar=False, log_output=False,
                                       execution_timeout=CELL_TIMEOUT)
            return
        except TimeoutError:
            if attempt == 2:
                raise


@pytest.mark.parametrize("name", sorted(CASES))
def test_parameters_take_effect_and_solutions_pass_the_autograder(name, tmp_path, labs):
    import papermill

    params, check = CASES[name]
    source = NOTEBOOK_DIR / f"{name}.ipynb"
    params = dict(params)
    has_out = "out_dir" in papermill.inspect_notebook(str(source))
    if has_out:
        params["out_dir"] = str(tmp_path / "out")
    ckpts = tmp_path / "checkpoints"
    if params.pop("checkpoints", False):
        shutil.copytree(TINY_DIR, ckpts)
        params["checkpoint_dir"] = str(ckpts)
    nb = nbformat.read(str(source), as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(PROBE))
    tests = autograder_tests(labs, name)
    assert len(tests) >= 3, f"{name}: {len(tests)} autograded questions"
    (tmp_path / "tests.json").write_text(json.dumps(tests))
    nb.cells.append(nbformat.v4.new_code_cell(GRADE % str(tmp_path / "tests.json")))
    probe_in, ran = tmp_path / "in.ipynb", tmp_path / "ran.ipynb"
    nbformat.write(nb, str(probe_in))
    _execute(probe_in, ran, params)
    done = nbformat.read(str(ran), as_version=4)
    text = _text(done)
    read = json.loads(text.rsplit("PROBE", 1)[1].splitlines()[0])
    scores = json.loads(text.rsplit("GRADED", 1)[1].splitlines()[0])
    assert sorted(scores) == sorted(tests)
    short = {q: s for q, s in scores.items() if not s[1] > 0 or s[0] < s[1]}
    assert not short, f"{name}: the autograder gives the solutions less than full points: {short}"
    out = tmp_path / "out"
    if has_out:
        assert out.is_dir() and any(p.is_file() for p in out.rglob("*")), "nothing in out_dir"
    if "checkpoint_dir" in params:
        assert any(f.startswith(str(ckpts.resolve())) for f in read), \
            f"no checkpoint read from checkpoint_dir; read: {read}"
    if check is not None:
        assert check(out, text) is not False


def _parameters_cell(path):
    nb = nbformat.read(str(path), as_version=4)
    (cell,) = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    return nb, cell


@pytest.mark.parametrize("path", notebooks(), ids=lambda p: p.stem)
def test_papermill_reads_every_parameter_and_each_is_used(path):
    """papermill can override every assignment of the parameters cell (a comment it cannot
    parse hides a parameter), and every parameter is read somewhere after that cell."""
    import papermill

    nb, cell = _parameters_cell(path)
    names = re.findall(r"^([A-Za-z_]\w*)\s*=", cell.source, flags=re.M)
    assert sorted(papermill.inspect_notebook(str(path))) == sorted(names)
    after = "\n".join(c.source for c in nb.cells[nb.cells.index(cell) + 1:]
                      if c.cell_type == "code")
    unused = [n for n in names if not re.search(rf"\b{n}\b", after)]
    assert unused == [], f"parameters never used: {unused}"
