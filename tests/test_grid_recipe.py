"""The README's GRID recipe, end to end on real GRID s1 with a tiny budget (CPU).

preprocess (the session fixture: every clip at 112 px) -> ``coursekit train talker`` with the
diffusion renderer (tiny sizes at 112 px, a few steps) -> ``coursekit evaluate`` on held-out s1
utterances. Checks the plumbing and the report on real faces, not the quality (that needs a GPU
budget: ``benchmarks/diffusion_grid.py`` and the README).
"""

import dataclasses
import json
import subprocess
import sys

import coursekit  # noqa: F401
import pytest

from coursekit.models.config import TalkerConfig
from coursekit.checkpoint import read_checkpoint
from coursekit.train.talker import PipelineConfig


def test_grid_recipe_trains_and_evaluates_on_held_out_s1(grid_processed, tmp_path):
    root, _ = grid_processed
    cfg = PipelineConfig.tiny("diffusion")
    talker = TalkerConfig.tiny(image_size=112)
    cfg.diffusion = dataclasses.replace(cfg.diffusion, talker=talker)
    cfg.au_classifier = dataclasses.replace(cfg.au_classifier, image_size=112)
    cfg.au_classifier_train.max_minutes = 0.05
    cfg.audio2au_minutes = 0.05
    cfg.diffusion_train.max_steps = 3
    cfg.diffusion_train.max_minutes = None
    cfg.diffusion_train.batch_size = 2
    cfg.test_speakers = tuple(sorted({p.name for p in root.iterdir() if p.is_dir()} - {"s1"}))
    config = tmp_path / "grid_tiny.json"
    config.write_text(json.dumps(dataclasses.asdict(cfg)))
    out = tmp_path / "run"
    run = [sys.executable, "-m", "coursekit.cli"]
    subprocess.run([*run, "train", "talker", str(config), "--data", str(root), "--out", str(out)],
                   check=True, capture_output=True, text=True)
    ckpt = read_checkpoint(out / "diffusion.pt")
    assert ckpt["kind"] == "diffusion" and ckpt["meta"]["steps"] == 3
    report = tmp_path / "eval"
    result = subprocess.run([*run, "evaluate", str(out / "diffusion.pt"), "--data", str(root),
                             "--speakers", "s1", "--max-clips", "2", "--steps", "2",
                             "--out", str(report)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    table = (report / "evaluation.md").read_text()
    for row in ("model", "shuffled audio", "position only", "copy identity", "real frames"):
        assert f"| {row} |" in table, table
    assert "PSNR" in table and "LMD" in table
