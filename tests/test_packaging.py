"""The install files agree with each other, and the package layers import in order."""

import ast
import re
from pathlib import Path

import pytest
import yaml

try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parent.parent
CONDA_NAMES = {"pytorch": "torch", "pysoundfile": "soundfile"}
CONDA_ONLY = {"python", "pip", "cpuonly", "torchvision"}


def _name(spec: str) -> str:
    return re.split(r"[<>=!~ ;\[]", spec.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _pyproject() -> dict[str, str]:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = list(meta["dependencies"])
    for extra in meta["optional-dependencies"].values():
        specs += extra
    return {_name(s): s.replace(" ", "") for s in specs}


def _conda() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    specs = {}
    for dep in env["dependencies"]:
        items = dep["pip"] if isinstance(dep, dict) else [dep]
        for spec in items:
            if spec.startswith("-e"):
                continue
            name = CONDA_NAMES.get(_name(spec), _name(spec))
            if name not in CONDA_ONLY:
                specs[name] = re.sub(r"^[A-Za-z0-9_.-]+", name, spec.replace(" ", ""))
    return specs


def test_environment_yml_matches_pyproject():
    pip, conda = _pyproject(), _conda()
    assert sorted(pip) == sorted(conda), (
        f"only in pyproject: {sorted(set(pip) - set(conda))}, "
        f"only in environment.yml: {sorted(set(conda) - set(pip))}")
    for name in pip:
        assert pip[name] == conda[name], f"{name}: pyproject {pip[name]} vs conda {conda[name]}"


def test_constraints_pin_every_runtime_dependency():
    pins = {_name(line) for line in (ROOT / "constraints.txt").read_text().splitlines()
            if "==" in line}
    missing = set(_pyproject()) - pins - {"torch"}  # torch is installed first, by the Makefile
    assert not missing, f"constraints.txt lacks {sorted(missing)}"


# layers: a module may import only from its own layer or those below
LAYERS = [
    {"assets", "audio", "presets", "runtime", "video"},
    {"face", "au", "warp"},
    {"data"},
    {"models", "checkpoint"},
    {"losses", "metrics"},
    {"train", "infer", "evaluate"},
    {"cli", "course", "diagram", "labs", "plots", "stamps", "sweep", "widgets"},
]


def _layer(module: str) -> int:
    for i, names in enumerate(LAYERS):
        if module in names:
            return i
    raise AssertionError(f"coursekit.{module} is in no layer of this test: add it")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    rel = path.relative_to(ROOT / "coursekit").parts
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the package path
                base = list(rel[:-1])[: len(rel) - node.level]
                parts = base + (node.module.split(".") if node.module else [])
                found.add(parts[0] if parts else node.names[0].name)
            elif node.module and node.module.startswith("coursekit."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("coursekit."):
                    found.add(alias.name.split(".")[1])
    return found


def test_modules_import_only_lower_layers():
    for path in (ROOT / "coursekit").rglob("*.py"):
        rel = path.relative_to(ROOT / "coursekit").parts
        if rel[0] == "__init__.py":
            continue
        own = rel[0].removesuffix(".py")
        for dep in _imports(path) - {own}:
            assert _layer(dep) <= _layer(own), f"{path}: coursekit.{own} imports coursekit.{dep}"


def test_no_module_over_400_lines():
    for path in (ROOT / "coursekit").rglob("*.py"):
        n = len(path.read_text().splitlines())
        assert n <= 400, f"{path} has {n} lines"
