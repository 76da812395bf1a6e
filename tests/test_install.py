"""An installed coursekit (a wheel, no source checkout) finds its shipped checkpoints, makes
the samples, generates a video with the defaults, and says where the notebooks are; the
course runner passes the same parameters (device included) to every notebook."""

import json
import math
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import build_wheel

from coursekit import assets, cli

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = [assets.DEFAULT_GENERATOR, "grid/audio2au.pt", "grid/motion.pt", *assets.SCORERS[64],
           "README.md"]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """``(site folder, wheel)``: a wheel built offline from a copy of the source (so the
    checkout gets no build/ folder), installed with ``pip install --target``."""
    tmp = tmp_path_factory.mktemp("install")
    wheel = build_wheel(tmp)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    site = tmp / "site"
    subprocess.run([*pip, "install", "--no-deps", "--no-index", "--target", str(site),
                    str(wheel)], check=True, capture_output=True, timeout=300)
    return site, wheel


def run(site: Path, cwd: Path, *args, timeout=300):
    """``python -m coursekit.cli ARGS`` from ``cwd`` with only the installed copy importable
    (its dependencies come from this environment)."""
    env = dict(os.environ, PYTHONPATH=str(site), OMP_WAIT_POLICY="PASSIVE")
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_wheel_ships_the_default_checkpoints(installed):
    site, wheel = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in SHIPPED:
        assert f"coursekit/assets/{name}" in names, name
    assert "coursekit/ablations.yaml" in names
    assert not any(n.startswith(("checkpoints/", "data_samples/", "notebooks/")) for n in names)
    proc = run(site, site.parent, "-c", "import coursekit.assets as a; print(a.__file__); "
               "print(a.default_generator()); print(a.default_scorers(64))")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith(str(site)) and lines[1].startswith(str(site))
    assert "None" not in lines[2]


def test_samples_and_generate_without_a_checkout(installed, tmp_path):
    import cv2
    import soundfile
    skimage_data = pytest.importorskip("skimage.data")

    from coursekit.audio import load_audio
    from coursekit.video import probe_streams, read_video

    site, _ = installed
    proc = run(site, tmp_path, "-m", "coursekit.cli", "samples", "generate", "--out", "s",
               "--speakers", "1", "--utterances", "1")
    assert proc.returncode == 0, proc.stderr
    flac = next((tmp_path / "s" / "spk1" / "audio").glob("*.flac"))
    sound, sr = soundfile.read(flac, dtype="float32")
    soundfile.write(tmp_path / "a.wav", sound, sr)
    cv2.imwrite(str(tmp_path / "me.png"), cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR))
    proc = run(site, tmp_path, "-m", "coursekit.cli", "generate", "--face", "me.png",
               "--audio", "a.wav", "--out", "o.mp4", "--steps", "3", "--threads", "2")
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "o.mp4"
    assert probe_streams(out) == {"video", "audio"}
    frames, fps = read_video(out)
    duration = len(sound) / sr
    assert fps == 25 and abs(len(frames) - math.ceil(duration * 25)) <= 1
    audio, rate = load_audio(out, sr=None)
    assert abs(audio.size / rate - duration) < 0.05


def test_course_and_calibrate_say_what_is_missing(installed, tmp_path):
    site, _ = installed
    proc = run(site, tmp_path, "-m", "coursekit.cli", "course", "run", "--out", "r")
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert "notebooks" in lines[0] and "source repository" in lines[0]
    proc = run(site, tmp_path, "-m", "coursekit.cli", "au", "calibrate")
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert "coursekit samples generate" in lines[0]


@pytest.fixture
def fake_notebooks(tmp_path, monkeypatch):
    """Two notebooks and a data folder; papermill replaced by a recorder of its parameters."""
    import papermill

    import nbformat

    folder = tmp_path / "nbs"
    folder.mkdir()
    names = "device = 'cpu'\ndata_dir = ''\ncheckpoint_dir = ''\nout_dir = ''\nseed = 0\n"
    without_checkpoints = names.replace("checkpoint_dir = ''\n", "")
    for name, source in (("01_a.ipynb", names), ("02_b.ipynb", without_checkpoints)):
        cell = nbformat.v4.new_code_cell(source)
        cell.metadata["tags"] = ["parameters"]
        nb = nbformat.v4.new_notebook(cells=[cell], metadata={"kernelspec": {
            "name": "python3", "display_name": "Python 3", "language": "python"}})
        nbformat.write(nb, str(folder / name))
    (tmp_path / "data").mkdir()
    calls = []

    def execute(src, dst, parameters, **kwargs):
        calls.append((Path(src).name, dict(parameters)))
        Path(dst).write_text("{}")
        out = Path(parameters["out_dir"])
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text('{"x": 1}')  # what a sweep's notebook writes

    monkeypatch.setattr(papermill, "execute_notebook", execute)
    return folder, calls


def test_course_run_passes_the_device_to_every_notebook(fake_notebooks, tmp_path):
    folder, calls = fake_notebooks
    params = tmp_path / "lab.json"
    params.write_text(json.dumps({"device": "cuda:1", "data_dir": str(tmp_path / "data")}))
    assert cli.main(["course", "run", "--notebooks", str(folder), "--params", str(params),
                     "--out", str(tmp_path / "run")]) == 0
    assert [name for name, _ in calls] == ["01_a.ipynb", "02_b.ipynb"]
    for _, p in calls:
        assert p["device"] == "cuda:1" and "config" not in p  # only the notebook's own names
    assert calls[0][1]["checkpoint_dir"] == str(assets.TINY_DIR)
    assert "checkpoint_dir" not in calls[1][1]
    calls.clear()
    assert cli.main(["course", "run", "--notebooks", str(folder), "--params", str(params),
                     "--device", "cpu", "--out", str(tmp_path / "run2")]) == 0
    assert [p["device"] for _, p in calls] == ["cpu", "cpu"]


def test_course_run_names_a_parameter_no_notebook_has(fake_notebooks, tmp_path, capsys):
    folder, calls = fake_notebooks
    params = tmp_path / "lab.json"
    params.write_text(json.dumps({"data_dir": str(tmp_path / "data"), "epocs": 3}))
    assert cli.main(["course", "run", "--notebooks", str(folder), "--params", str(params),
                     "--out", str(tmp_path / "run")]) == 0
    assert "no notebook has the parameter(s) epocs" in capsys.readouterr().out
    assert all("epocs" not in p for _, p in calls)


def test_course_run_without_data_says_how_to_make_it(fake_notebooks, tmp_path, capsys):
    folder, calls = fake_notebooks
    params = tmp_path / "lab.json"
    params.write_text(json.dumps({"data_dir": str(tmp_path / "data_samples")}))
    assert cli.main(["course", "run", "--notebooks", str(folder), "--params", str(params),
                     "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "coursekit samples generate" in err and not calls


def test_sweep_passes_the_device_to_every_run(fake_notebooks, tmp_path):
    folder, calls = fake_notebooks
    grid = tmp_path / "grid.yaml"
    grid.write_text("runs:\n  one: {seed: 1}\n  two: {seed: 2}\n")
    assert cli.main(["course", "sweep", str(folder / "01_a.ipynb"), "--grid", str(grid),
                     "--out", str(tmp_path / "sweep"), "--device", "cuda"]) == 0
    assert [p["device"] for _, p in calls] == ["cuda", "cuda"]


def test_model_commands_apply_one_run_context(tmp_path, capsys, monkeypatch):
    import torch

    threads = []
    monkeypatch.setattr(torch, "set_num_threads", threads.append)
    missing = ["--face", str(tmp_path / "me.png"), "--audio", str(tmp_path / "a.wav"),
               "--out", str(tmp_path / "o.mp4")]
    assert cli.main(["generate", *missing, "--threads", "3"]) == 2
    assert cli.main(["evaluate", str(tmp_path / "g.pt"), "--data", str(tmp_path),
                     "--threads", "1"]) == 2
    assert threads == [3, 1]
    capsys.readouterr()
    assert cli.main(["generate", *missing, "--threads", "0"]) == 2
    assert "--threads must be at least 1" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert cli.main(["generate", *missing, "--device", "cuda", "--threads", "2"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "CUDA is not available" in err
        assert threads == [3, 1]  # nothing applied on a failed context


def test_the_default_generator_and_scorers():
    from coursekit import infer
    from coursekit.evaluate import default_scorers

    gen = infer.load_generator()
    assert gen.name == "warp" and Path(gen.source) == assets.default_generator()
    judge, sync = default_scorers(gen.image_size)
    assert judge == assets.TINY_DIR / "judge112.pt" and sync == assets.TINY_DIR / "syncnet112.pt"
    assert default_scorers(64) == (assets.TINY_DIR / "judge.pt", assets.TINY_DIR / "syncnet.pt")
    assert default_scorers(48) == (None, None)
