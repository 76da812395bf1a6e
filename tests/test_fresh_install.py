"""A notebook runs where a student runs it: coursekit installed (not the checkout) in a fresh
virtual environment, the notebook alone in a folder of its own; and every notebook starts with
the same set-up cell, which installs coursekit where it is missing (Colab, a JupyterHub)."""

import json
import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest
from conftest import build_wheel

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
INSTALL_CELL = """\
# Set-up: in the course's checkout, or wherever coursekit is installed, this does nothing. On Colab
# or a JupyterHub it installs the course's package: set COURSEKIT_SOURCE to where the course lives
# (e.g. "coursekit[course] @ git+https://<your course's git host>/coursekit.git").
import importlib.util, os, subprocess, sys
if importlib.util.find_spec("coursekit") is None:
    source = os.environ.get("COURSEKIT_SOURCE", "coursekit[course]")
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", source])"""
"""The source of the cell tagged ``install`` in every notebook."""

def _install_cells(path: Path) -> list[str]:
    cells = json.loads(path.read_text())["cells"]
    return ["".join(c["source"]) for c in cells
            if "install" in c.get("metadata", {}).get("tags", [])]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_notebook_has_the_install_cell(path):
    cells = json.loads(path.read_text())["cells"]
    sources = _install_cells(path)
    assert len(sources) == 1, f"{path.name}: {len(sources)} cells tagged 'install', expected 1"
    assert sources[0] == INSTALL_CELL, f"{path.name}: the 'install' cell differs from the course's"
    first = next(i for i, c in enumerate(cells) if "coursekit" in "".join(c["source"])
                 and c["cell_type"] == "code" and "install" not in c["metadata"].get("tags", []))
    install = next(i for i, c in enumerate(cells) if "install" in c["metadata"].get("tags", []))
    assert install < first, f"{path.name}: the 'install' cell comes after coursekit is used"


def _env() -> dict[str, str]:
    """This environment without anything that would put the checkout on ``sys.path``."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "COURSEKIT_GRID_DIR")}
    return dict(env, OMP_WAIT_POLICY="PASSIVE", PYTHONNOUSERSITE="1")


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory) -> Path:
    """A new virtual environment with coursekit installed from a wheel (not editable); its
    dependencies are this environment's, reached by a ``.pth`` line to its site-packages (so
    nothing is downloaded, and the editable coursekit of this environment stays invisible:
    a plain path line does not run that folder's own ``.pth`` files)."""
    tmp = tmp_path_factory.mktemp("fresh")
    wheel = build_wheel(tmp)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    env = tmp / "venv"
    venv.create(env, with_pip=False)
    python = env / "bin" / "python"
    purelib = "import sysconfig; print(sysconfig.get_path('purelib'))"
    site = Path(subprocess.run([python, "-c", purelib], check=True, capture_output=True,
                               text=True, env=_env(), cwd=tmp).stdout.strip())
    (site / "course_deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    subprocess.run([*pip, "--python", str(python), "install", "--no-deps", "--no-index",
                    str(wheel)], check=True, capture_output=True, timeout=300, env=_env(), cwd=tmp)
    subprocess.run([python, "-m", "ipykernel", "install", "--sys-prefix", "--name", "python3"],
                   check=True, capture_output=True, timeout=120, env=_env(), cwd=tmp)
    return env


def test_notebook_01_runs_with_an_installed_coursekit(fresh_venv, tmp_path):
    """Notebook 01 copied alone into an empty folder, as on Colab or a JupyterHub: the
    sample corpus is made there with the installed ``coursekit samples generate`` (one clip,
    all the notebook needs), found by the notebook's fallback to
    ``coursekit.data.corpus.SAMPLES_DIR`` (``./data_samples`` for an installed package). nbval
    runs it in the fresh environment (errors fail, outputs are not compared), with a last cell
    that checks where the kernel's coursekit comes from."""
    work = tmp_path / "work"
    work.mkdir()
    nb = json.loads((ROOT / "notebooks" / "01_mfcc_windowing.ipynb").read_text())
    nb["cells"].append({"cell_type": "code", "execution_count": None, "id": "where",
                        "metadata": {}, "outputs": [], "source": (
        "import sys, coursekit\n"
        "from pathlib import Path\n"
        f"assert Path(sys.prefix) == Path({str(fresh_venv)!r}), sys.prefix\n"
        "assert Path(coursekit.__file__).is_relative_to(sys.prefix), coursekit.__file__\n"
        f"assert not Path(coursekit.__file__).is_relative_to({str(ROOT)!r}), coursekit.__file__")})
    (work / "01_mfcc_windowing.ipynb").write_text(json.dumps(nb))
    run = {"cwd": work, "env": _env(), "capture_output": True, "text": True}
    proc = subprocess.run([fresh_venv / "bin" / "coursekit", "samples", "generate", "--out",
                           "data_samples", "--speakers", "1", "--utterances", "1"],
                          check=False, timeout=300, **run)
    assert proc.returncode == 0, proc.stderr
    proc = subprocess.run([fresh_venv / "bin" / "python", "-m", "pytest", "-q", "-p",
                           "no:cacheprovider", "--nbval-lax", "--nbval-current-env",
                           "01_mfcc_windowing.ipynb"], check=False, timeout=900, **run)
    assert proc.returncode == 0, f"notebook 01 failed:\n{proc.stdout[-3000:]}"
    assert "passed" in proc.stdout and "failed" not in proc.stdout, proc.stdout[-3000:]
