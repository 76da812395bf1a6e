"""Every committed notebook records the checkpoints it was executed with, and they are current."""

import re

import nbformat
import pytest

from coursekit.course import NOTEBOOK_DIR, notebooks
from coursekit.stamps import KEY, checkpoint_stamps, execute_notebook, sha256, stale_checkpoints

AUDIO2AU = NOTEBOOK_DIR.parent / "coursekit" / "assets" / "tiny" / "audio2au.pt"


@pytest.mark.parametrize("nb", notebooks(), ids=lambda p: p.stem)
def test_notebook_outputs_come_from_the_current_checkpoints(nb):
    assert stale_checkpoints(nb) == []


def test_execute_records_what_the_kernel_read_and_a_change_shows(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        "from coursekit.checkpoint import read_checkpoint\n"
        f"ck = read_checkpoint({str(AUDIO2AU)!r})\nprint(ck['kind'])")]
    path = tmp_path / "probe.ipynb"
    nbformat.write(nb, str(path))
    copy = tmp_path / "root" / "coursekit" / "assets" / "tiny" / "audio2au.pt"
    copy.parent.mkdir(parents=True)
    copy.write_bytes(AUDIO2AU.read_bytes())
    stamps = execute_notebook(path, timeout=300)
    assert stamps == {"coursekit/assets/tiny/audio2au.pt": sha256(AUDIO2AU)}
    stored = nbformat.read(str(path), as_version=4)
    assert stored.metadata[KEY]["checkpoints"] == stamps
    assert stored.cells[0].outputs[0]["text"].strip() == "audio2au"
    assert len(stored.cells) == 1  # the question to the kernel is not kept
    assert stale_checkpoints(path, tmp_path / "root") == []
    copy.write_bytes(copy.read_bytes() + b"\0")
    assert "changed since it was executed" in stale_checkpoints(path, tmp_path / "root")[0]
    copy.unlink()
    assert "is gone" in stale_checkpoints(path, tmp_path / "root")[0]


def test_only_files_of_the_checkout_outside_runs_are_stamped(tmp_path):
    (tmp_path / "runs").mkdir()
    inside, run, outside = tmp_path / "a.pt", tmp_path / "runs" / "b.pt", tmp_path.parent / "c.pt"
    for f in (inside, run):
        f.write_bytes(b"x")
    assert checkpoint_stamps([str(inside), str(run), str(outside)], tmp_path) == {
        "a.pt": sha256(inside)}


DEV_WORDS = re.compile(r"\b[Ii]ssues?\b|\bTargets\b|[Tt]argets? (were |was )?met")
MACHINE_PATH = re.compile(r"(/work/|/tmp/|/root/|/home/[a-z]|[A-Z]:\\\\Users)")


@pytest.mark.parametrize("nb", notebooks(), ids=lambda p: p.stem)
def test_committed_outputs_are_clean(nb):
    """No error, no stderr stream, no development wording, no path of the build machine."""
    problems = []
    for k, cell in enumerate(nbformat.read(str(nb), as_version=4).cells):
        for out in cell.get("outputs", []):
            if out.output_type == "error" or out.get("name") == "stderr":
                problems.append(f"cell {k}: {out.output_type} {out.get('name', out.get('ename'))}")
                continue
            text = out.get("text", "") + "".join(
                v for key, v in out.get("data", {}).items()
                if key.startswith("text/") and isinstance(v, str) and key != "text/html")
            for pattern in (DEV_WORDS, MACHINE_PATH):
                hit = pattern.search(text)
                if hit:
                    problems.append(f"cell {k}: {hit.group(0)!r} in an output")
    assert problems == []
