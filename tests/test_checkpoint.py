"""One checkpoint format: every kind saves and loads through one registry; old layouts load;
bad files fail with one line naming the file."""

import coursekit  # noqa: F401  (before torch: OMP_WAIT_POLICY)

import copy
from dataclasses import asdict

import pytest
import torch

from coursekit.assets import TINY_DIR
from coursekit.checkpoint import (FORMAT_VERSION, KINDS, CheckpointError, load_checkpoint,
                                  model_checkpoint, read_checkpoint, save_checkpoint, save_model)
from coursekit.models import AUClassifierConfig, Audio2AUConfig, TalkerConfig
from coursekit.models.config import DiffusionConfig
from coursekit.models.motion import MotionConfig
from coursekit.models.syncnet import SyncNetConfig
from coursekit.models.unet import UNet

TINY = TINY_DIR

TINY_CONFIGS = {
    "talker": TalkerConfig.tiny(),
    "diffusion": DiffusionConfig.tiny(),
    "audio2au": Audio2AUConfig(conv_channels=(8, 16), lstm_hidden=16, fc=(16, 8)),
    "au_classifier": AUClassifierConfig.tiny(),
    "syncnet": SyncNetConfig.tiny(),
    "motion": MotionConfig.tiny(),
}


@pytest.mark.parametrize("kind", sorted(TINY_CONFIGS))
def test_every_kind_round_trips(kind, tmp_path):
    torch.manual_seed(0)
    model = KINDS[kind].build(asdict(TINY_CONFIGS[kind]), {})
    path = save_model(tmp_path / f"{kind}.pt", kind, model, TINY_CONFIGS[kind],
                      meta={"note": "x", "mfcc_mean": torch.zeros(12, 1)})
    raw = torch.load(path, weights_only=True)
    assert raw["kind"] == kind and raw["format_version"] == FORMAT_VERSION
    assert set(raw) >= {"kind", "format_version", "model_config", "model", "meta", "training"}
    loaded = load_checkpoint(path)
    assert loaded.kind == kind and not loaded.model.training
    assert loaded.meta["note"] == "x"
    for (k, a), b in zip(model.state_dict().items(), loaded.model.state_dict().values()):
        assert torch.equal(a, b), k


def test_ema_weights_are_used_when_present(tmp_path):
    cfg = AUClassifierConfig.tiny()
    model = KINDS["au_classifier"].build(asdict(cfg), {})
    ema = copy.deepcopy(model)
    with torch.no_grad():
        for p in ema.parameters():
            p.add_(1.0)
    path = save_checkpoint(tmp_path / "c.pt", **model_checkpoint("au_classifier", model, cfg,
                                                                 ema=ema))
    first = next(iter(ema.state_dict()))
    assert torch.equal(load_checkpoint(path).model.state_dict()[first], ema.state_dict()[first])
    assert torch.equal(load_checkpoint(path, ema=False).model.state_dict()[first],
                       model.state_dict()[first])


def test_fp16_weights_load_into_fp32(tmp_path):
    cfg = AUClassifierConfig.tiny()
    model = KINDS["au_classifier"].build(asdict(cfg), {})
    path = save_model(tmp_path / "h.pt", "au_classifier", model, cfg, half=True)
    first = next(k for k, v in model.state_dict().items() if v.is_floating_point())
    assert torch.load(path, weights_only=True)["model"][first].dtype == torch.float16
    loaded = load_checkpoint(path)
    assert next(loaded.model.parameters()).dtype == torch.float32


def test_old_layouts_are_upgraded():
    cfg = AUClassifierConfig.tiny()
    model = KINDS["au_classifier"].build(asdict(cfg), {})
    from coursekit.checkpoint import upgrade, plain

    old = plain({"model": model.state_dict(), "model_config": cfg, "occurrence_rates": torch.ones(5)})
    new = upgrade(old)
    assert new["kind"] == "au_classifier" and "occurrence_rates" in new["meta"]
    old_a2a = {"kind": "coursekit-audio2au", "state_dict": {}, "model_config": {}, "mfcc_mean": 1}
    assert upgrade(old_a2a)["kind"] == "audio2au" and upgrade(old_a2a)["meta"]["mfcc_mean"] == 1
    old_diff = {"renderer": "diffusion", "model": {}, "model_config": {}}
    assert upgrade(old_diff)["kind"] == "diffusion"


def test_committed_checkpoints_are_in_the_current_format():
    kinds = {}
    for path in sorted(TINY.glob("*.pt")):
        raw = torch.load(path, weights_only=True)
        assert raw.get("format_version") == FORMAT_VERSION, path
        kinds[path.name] = load_checkpoint(path).kind
    assert kinds["talker.pt"] == "talker" and kinds["diffusion.pt"] == "diffusion"
    assert kinds["judge.pt"] == "au_classifier" and kinds["syncnet.pt"] == "syncnet"


def test_bad_files_fail_with_one_line(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError) as err:
        read_checkpoint(junk)
    assert str(junk) in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        read_checkpoint(tmp_path / "nope.pt")
    torch.save({"a": 1}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="other.pt.*expected"):
        read_checkpoint(tmp_path / "other.pt")
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="list.pt"):
        read_checkpoint(tmp_path / "list.pt")
    torch.save({"format_version": 99, "kind": "talker"}, tmp_path / "future.pt")
    with pytest.raises(CheckpointError, match="future.pt.*format 99"):
        read_checkpoint(tmp_path / "future.pt")
    with pytest.raises(CheckpointError, match="'syncnet' checkpoint, expected 'talker'"):
        load_checkpoint(TINY / "syncnet.pt", kind="talker")


def test_mismatched_weights_fail_with_one_line(tmp_path):
    cfg = AUClassifierConfig.tiny()
    model = KINDS["au_classifier"].build(asdict(cfg), {})
    ckpt = model_checkpoint("au_classifier", model, AUClassifierConfig.paper())
    path = save_checkpoint(tmp_path / "m.pt", **ckpt)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert "m.pt" in str(err.value) and "\n" not in str(err.value)


def test_deep_copied_unet_with_two_attention_levels_equals_the_original():
    cfg = DiffusionConfig.paper().unet
    assert len(cfg.attn_levels) >= 2
    torch.manual_seed(0)
    unet = UNet(cfg).eval()
    twin = copy.deepcopy(unet)
    s = 2 ** (len(cfg.channels) - 1) * cfg.patch * 2
    x = torch.randn(1, cfg.in_channels, s, s)
    cond = torch.randn(1, cfg.cond_dim)
    with torch.no_grad():
        assert torch.equal(unet(x, torch.tensor([10]), cond), twin(x, torch.tensor([10]), cond))
