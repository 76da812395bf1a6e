"""``coursekit checkpoint info`` and ``upgrade``: what a file holds, old layouts rewritten in
the current format, fp16 weights, and one-line errors."""

from dataclasses import asdict

import coursekit  # noqa: F401  (before torch: OMP_WAIT_POLICY)
import pytest
import torch

from coursekit import cli
from coursekit.assets import asset_path
from coursekit.checkpoint import (FORMAT_VERSION, KINDS, load_checkpoint, plain, save_checkpoint,
                                  save_model)
from coursekit.models import AUClassifierConfig


@pytest.fixture
def classifier():
    torch.manual_seed(0)
    cfg = AUClassifierConfig.tiny()
    return KINDS["au_classifier"].build(asdict(cfg), {}), cfg


@pytest.fixture
def old_file(classifier, tmp_path):
    """An AU classifier saved in the layout before format 2 (no kind, meta at the top)."""
    model, cfg = classifier
    path = tmp_path / "old.pt"
    torch.save(plain({"model_config": cfg, "state_dict": model.state_dict(),
                      "occurrence_rates": torch.ones(5)}), path)
    return path


def run(capsys, *args):
    code = cli.main(["checkpoint", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def test_info_of_the_shipped_diffusion_renderer(capsys):
    path = asset_path("tiny/diffusion.pt")
    code, out, err = run(capsys, "info", path)
    assert code == 0, err
    loaded = load_checkpoint(path)
    n = sum(p.numel() for p in loaded.model.parameters())
    assert f"kind: {loaded.kind}:" in out
    assert f"format: {FORMAT_VERSION} (current)" in out
    assert f"parameters: {n:,}" in out
    assert "faces of 64 px" in out and "sample_steps=" in out
    assert "mfcc_mean" in out and "mfcc_std" in out
    assert "float16" in out  # the shipped renderer's weights are stored in fp16
    assert f"trained {loaded.meta['steps']} steps" in out


def test_info_of_a_training_state_and_an_old_layout(classifier, old_file, tmp_path, capsys):
    model, cfg = classifier
    last = save_model(tmp_path / "last.pt", "au_classifier", model, cfg,
                      training={"step": 42, "epoch": 3})
    code, out, err = run(capsys, "info", last, old_file)
    assert code == 0, err
    assert "step 42, epoch 3" in out
    assert "an older layout" in out and "occurrence_rates" in out
    assert out.count("kind: au_classifier") == 2


def test_upgrade_rewrites_an_old_layout_once(classifier, old_file, capsys):
    model, _ = classifier
    code, out, err = run(capsys, "upgrade", old_file)
    assert code == 0 and f"upgraded to format {FORMAT_VERSION}" in out, err
    raw = torch.load(old_file, weights_only=True)
    assert raw["kind"] == "au_classifier" and raw["format_version"] == FORMAT_VERSION
    assert "occurrence_rates" in raw["meta"]
    loaded = load_checkpoint(old_file, kind="au_classifier")
    for (k, a), b in zip(model.state_dict().items(), loaded.model.state_dict().values()):
        assert torch.equal(a, b), k
    before = old_file.read_bytes()
    code, out, _ = run(capsys, "upgrade", old_file)
    assert code == 0 and "unchanged" in out and old_file.read_bytes() == before


def test_upgrade_half(classifier, tmp_path, capsys):
    model, cfg = classifier
    path = save_model(tmp_path / "c.pt", "au_classifier", model, cfg, meta={"note": 1})
    code, out, err = run(capsys, "upgrade", path, "--half")
    assert code == 0 and "fp16" in out, err
    raw = torch.load(path, weights_only=True)
    assert all(v.dtype == torch.float16 for v in raw["model"].values() if v.is_floating_point())
    assert raw["meta"]["note"] == 1
    loaded = load_checkpoint(path)
    for (k, a), b in zip(model.state_dict().items(), loaded.model.state_dict().values()):
        assert torch.allclose(a.double(), b.double(), atol=1e-2, rtol=1e-3), k
    last = save_model(tmp_path / "last.pt", "au_classifier", model, cfg, training={"step": 1})
    before = last.read_bytes()
    code, _, err = run(capsys, "upgrade", last, "--half")
    assert code == 2 and "training state" in err and last.read_bytes() == before


def test_errors_are_one_line_and_the_other_files_go_on(classifier, old_file, tmp_path, capsys):
    model, cfg = classifier
    text = tmp_path / "notes.pt"
    text.write_text("not a checkpoint")
    bad = tmp_path / "bad.pt"
    ckpt = torch.load(save_model(bad, "au_classifier", model, cfg), weights_only=True)
    ckpt["model_config"]["channels"] = [8, 8, 8, 8]  # the weights no longer fit
    save_checkpoint(bad, **ckpt)
    for action in ("info", "upgrade"):
        code, out, err = run(capsys, action, tmp_path / "gone.pt", text, bad, old_file)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 3 and "Traceback" not in err
        assert "gone.pt" in lines[0] and "notes.pt" in lines[1] and "bad.pt" in lines[2]
        assert "do not fit" in lines[2]
        assert "old.pt" in out  # the good file was still handled
