"""Executed notebooks remember the checkpoints they used, so that stale outputs show.

The course's notebooks are committed with their outputs. When a shipped checkpoint changes,
every notebook that loaded it must be executed again, or its stored figures and numbers
describe a model that is gone. :func:`execute_notebook` (``coursekit course execute NB...``)
runs a notebook top to bottom, then asks its kernel which checkpoint files it read
(:func:`coursekit.checkpoint.files_read`) and stores their SHA-256 in the notebook's metadata::

    "metadata": {"coursekit": {"checkpoints": {"coursekit/assets/tiny/talker.pt": "9f2c..."}}}

Only files of the source checkout count (paths relative to it; a notebook's own training
runs under ``runs/`` or a temporary folder change on every run and are left out).
:func:`stale_checkpoints` compares a notebook's record with the files as they are now; the
test suite runs it on every notebook.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
"""The source checkout (the stamps' paths are relative to it)."""
KEY = "coursekit"
"""The notebook metadata entry of the stamps."""
_ASK = "import json, coursekit.checkpoint as _ck\nprint(json.dumps(_ck.files_read()))"


def sha256(path: str | Path) -> str:
    """The SHA-256 hex digest of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checkpoint_stamps(files: list[str], root: str | Path = REPO) -> dict[str, str]:
    """``{path relative to root: sha256}`` of the ``files`` inside ``root`` (not under its
    ``runs/``), sorted by path."""
    root = Path(root).resolve()
    out = {}
    for name in files:
        path = Path(name).resolve()
        if not path.is_file() or not path.is_relative_to(root):
            continue
        rel = path.relative_to(root)
        if rel.parts[0] != "runs":
            out[rel.as_posix()] = sha256(path)
    return dict(sorted(out.items()))


def execute_notebook(path: str | Path, *, timeout: int = 1800, kernel: str = "python3",
                     root: str | Path = REPO) -> dict[str, str]:
    """Execute the notebook at ``path`` in its own folder (nbclient, outputs stored in
    place) and stamp the checkpoints it read (module docstring); returns the stamps.
    A failing cell raises nbclient's CellExecutionError and leaves the file as it was."""
    import nbclient
    import nbformat

    path = Path(path)
    nb = nbformat.read(str(path), as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(_ASK))
    client = nbclient.NotebookClient(nb, timeout=timeout, kernel_name=kernel,
                                     resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    asked = nb.cells.pop()
    text = "".join(o.get("text", "") for o in asked.outputs if o.get("name") == "stdout")
    stamps = checkpoint_stamps(json.loads(text.strip().splitlines()[-1]), root)
    nb.metadata[KEY] = {"checkpoints": stamps}
    nbformat.write(nb, str(path))
    return stamps


def stale_checkpoints(path: str | Path, root: str | Path = REPO) -> list[str]:
    """One line per problem with the notebook's stamps: none recorded, or a recorded
    checkpoint that is missing or changed since the notebook was executed."""
    import nbformat

    path, root = Path(path), Path(root)
    nb = nbformat.read(str(path), as_version=4)
    stamps = nb.metadata.get(KEY, {}).get("checkpoints")
    if stamps is None:
        return [f"{path.name}: no record of the checkpoints it used (execute it with "
                "`coursekit course execute`)"]
    problems = []
    for rel, digest in stamps.items():
        file = root / rel
        if not file.is_file():
            problems.append(f"{path.name}: {rel} is gone")
        elif sha256(file) != digest:
            problems.append(f"{path.name}: {rel} changed since it was executed "
                            "(re-execute it with `coursekit course execute`)")
    return problems
