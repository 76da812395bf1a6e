"""The diffusion renderer: UNet, disentanglement masks, training pass, sampling, one-shot input."""

import coursekit  # noqa: F401  (sets OMP_WAIT_POLICY before torch starts)
import numpy as np
import pytest
import torch
from torch import nn

from coursekit.losses import mask_losses, region_weighted_mse
from coursekit.models.config import DiffusionConfig, TalkerConfig, UNetConfig, from_dict
from coursekit.models.diffusion import DiffusionTalker
from coursekit.models.disentangle import (MaskGenerator, lower_face_mass, lower_face_region,
                                          mouth_prior, split_identity)
from coursekit.models.unet import UNet


def micro_cfg(talker=None, **kw) -> DiffusionConfig:
    """A very small renderer for fast tests (32 px)."""
    talker = talker or TalkerConfig.tiny(image_size=32, tcsan_channels=32, tcsan_levels=2)
    unet = UNetConfig(channels=(16, 32), blocks=1, attn_levels=(1,), heads=2, patch=2,
                      cond_token_dim=8, time_dim=32, groups=8)
    return DiffusionConfig(talker=talker, audface_dim=8, mask_channels=(8, 16), unet=unet, **kw)


def _randomise_zero_inits(module: nn.Module) -> None:
    """Zero-initialised output layers block every gradient at init; give them weights."""
    g = torch.Generator().manual_seed(0)
    for p in module.parameters():
        if p.dim() > 1 and not p.detach().abs().sum():
            p.data = 0.1 * torch.randn(p.shape, generator=g)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def test_tiny_and_paper_differ_only_in_numbers():
    tiny, paper = DiffusionConfig.tiny(), DiffusionConfig.paper()
    assert tiny.unet.cond_mode == paper.unet.cond_mode and tiny.prediction == paper.prediction
    assert tiny.unet.cond_dim == tiny.talker.tcsan_channels
    assert paper.unet.cond_dim == paper.talker.tcsan_channels == 512
    assert paper.talker.image_size == 112 and tiny.talker.image_size == 64
    assert from_dict(DiffusionConfig, __import__("dataclasses").asdict(tiny)) == tiny


@pytest.mark.parametrize("mode", ["adagn", "xattn", "both"])
def test_every_condition_dimension_reaches_the_unet(mode):
    cfg = UNetConfig(channels=(16, 32), blocks=1, attn_levels=(1,), heads=2, patch=2,
                     cond_dim=24, cond_mode=mode, cond_token_dim=8, time_dim=32, groups=8)
    unet = UNet(cfg)
    _randomise_zero_inits(unet)
    x, t = torch.randn(3, 9, 32, 32), torch.tensor([10, 500, 990])
    cond = torch.randn(3, 24, requires_grad=True)
    unet(x, t, cond).square().sum().backward()
    assert (cond.grad.abs() > 0).all(), cond.grad  # all 24 dims, every sample
    with pytest.raises(ValueError, match="cond"):
        unet(x, t, torch.randn(3, 23))


@pytest.mark.parametrize("patch,size", [(1, 16), (2, 32), (2, 64)])
def test_unet_shapes_and_timestep_dependence(patch, size):
    cfg = UNetConfig(channels=(8, 16, 16), blocks=2, attn_levels=(2,), heads=2, patch=patch,
                     cond_dim=16, cond_token_dim=8, time_dim=16, groups=4)
    unet = UNet(cfg)
    _randomise_zero_inits(unet)
    x, cond = torch.randn(2, 9, size, size), torch.randn(2, 16)
    a = unet(x, torch.tensor([1, 1]), cond)
    assert a.shape == (2, 3, size, size)
    assert not torch.allclose(a, unet(x, torch.tensor([900, 900]), cond))


def test_zero_initialised_output_predicts_zero():
    unet = UNet(micro_cfg().unet)
    out = unet(torch.randn(2, 9, 32, 32), torch.tensor([3, 4]), torch.randn(2, 32))
    assert torch.equal(out, torch.zeros_like(out))


def test_mouth_prior_and_lower_face_region():
    for size in (64, 112):
        prior, region = mouth_prior(size), lower_face_region(size)
        assert prior.shape == region.shape == (size, size) and 0 <= prior.min() and prior.max() <= 1
        assert (prior * region).sum() / prior.sum() > 0.85  # the prior lies in the lower face
        assert not region[: size // 2].any()  # nothing above the middle of the crop
        ys, xs = np.nonzero(prior > 0.5)
        assert abs(xs.mean() - size / 2) < 0.05 * size  # centred left-right


def test_mask_generator_split_and_mass():
    gen = MaskGenerator((8, 16))
    identity = torch.rand(4, 3, 64, 64) * 2 - 1
    mask = gen(identity, torch.rand(4, 5))
    assert mask.shape == (4, 1, 64, 64) and mask.min() >= 0 and mask.max() <= 1
    id_face, aud_face = split_identity(identity, mask)
    torch.testing.assert_close((id_face + 1) / 2 + (aud_face + 1) / 2, (identity + 1) / 2)
    ideal = 1 - torch.from_numpy(mouth_prior(64))[None, None].expand(4, 1, 64, 64)
    assert (lower_face_mass(ideal) > 0.85).all()
    assert (lower_face_mass(torch.zeros(4, 1, 64, 64)) < 0.25).all()  # uniform: region's share


def test_mask_losses_prefer_the_prior():
    prior = torch.from_numpy(mouth_prior(32))
    good = (1 - prior)[None, None]
    bad = torch.full((1, 1, 32, 32), 0.5)
    lg, lb = mask_losses(good, prior), mask_losses(bad, prior)
    assert lg["prior"] < lb["prior"] and lg["area"] < lb["area"]
    noisy = torch.rand(1, 1, 32, 32)
    assert mask_losses(noisy, prior)["tv"] > mask_losses(good, prior)["tv"]


def test_region_weighted_mse():
    a, b = torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4)
    b[..., 0, 0] = 1.0
    w = torch.ones(4, 4)
    assert region_weighted_mse(a, b) == region_weighted_mse(a, b, w)
    w[0, 0] = 3.0
    assert region_weighted_mse(a, b, w) > region_weighted_mse(a, b)


def test_training_pass_shapes_and_backward():
    model = DiffusionTalker(micro_cfg())
    _randomise_zero_inits(model.unet)
    b, t = 2, 9
    out = model(torch.rand(b, 3, 32, 32) * 2 - 1, torch.randn(b, t, 12, 28),
                torch.rand(b, t, 3, 32, 32) * 2 - 1, per_frames=3, cond_drop=0.5)
    assert out["pred"].shape == out["target"].shape == (6, 3, 32, 32)
    assert out["mask"].shape == (b, t, 1, 32, 32) and out["au_logits"].shape == (b, t, 5)
    assert sorted(set((out["index"] // t).tolist())) == [0, 1]  # 3 frames of each clip
    loss = (out["pred"] - out["target"]).square().mean() + mask_losses(
        out["mask"].flatten(0, 1), torch.from_numpy(mouth_prior(32)))["prior"]
    loss.backward()
    for name in ("mask_generator", "audface_encoder", "fusion", "audio_encoder", "audio2au"):
        grads = [p.grad for p in getattr(model, name).parameters() if p.requires_grad]
        assert any(g is not None and g.abs().sum() > 0 for g in grads), name


def test_sampling_is_seeded_batched_and_temporally_shared():
    model = DiffusionTalker(micro_cfg(sample_steps=4))
    _randomise_zero_inits(model.unet)
    identity = torch.rand(1, 3, 32, 32) * 2 - 1
    mfcc = torch.randn(1, 6, 12, 28)
    a = model.sample(identity, mfcc, seed=3)
    assert a.shape == (1, 6, 3, 32, 32) and a.min() >= -1 and a.max() <= 1
    assert torch.equal(a, model.sample(identity, mfcc, seed=3))
    assert not torch.equal(a, model.sample(identity, mfcc, seed=4))
    assert not torch.equal(a, model.sample(identity, mfcc, steps=2, seed=3))
    # frames are sampled from ONE initial noise: the same condition in every frame gives the
    # same frame every time (without Audio2AU, whose LSTM varies even on a constant input)
    plain = DiffusionTalker(micro_cfg(sample_steps=4, talker=TalkerConfig.tiny(
        image_size=32, tcsan_channels=32, tcsan_levels=2, use_audio2au=False)))
    _randomise_zero_inits(plain.unet)
    still = plain.sample(identity, mfcc[:, :1].expand(1, 6, 12, 28), seed=3)[0]
    torch.testing.assert_close(still, still[:1].expand_as(still), rtol=0, atol=1e-4)
    # chunking the frames through the UNet changes nothing
    torch.testing.assert_close(model.sample(identity, mfcc, seed=3, chunk=4), a, rtol=0, atol=1e-5)
    # classifier-free guidance runs (and changes the result)
    assert not torch.allclose(model.sample(identity, mfcc, seed=3, guidance=2.0), a)


def test_sampling_leaves_training_mode_as_it_was():
    model = DiffusionTalker(micro_cfg(sample_steps=1))
    model.train()
    model.sample(torch.zeros(1, 3, 32, 32), torch.zeros(1, 3, 12, 28))
    assert model.training
    model.freeze_audio2au().train()
    assert not model.audio2au.training


def test_au_driven_sampling_ignores_the_audio_and_follows_the_aus():
    model = DiffusionTalker(micro_cfg(sample_steps=3))
    _randomise_zero_inits(model.unet)
    identity = torch.rand(1, 3, 32, 32) * 2 - 1
    aus = torch.rand(1, 5, 5)
    a = model.sample(identity, torch.randn(1, 5, 12, 28), aus=aus)
    b = model.sample(identity, torch.randn(1, 5, 12, 28), aus=aus)
    torch.testing.assert_close(a, b)  # the audio no longer matters
    assert not torch.allclose(a, model.sample(identity, torch.zeros(1, 5, 12, 28), aus=1 - aus))
    c = model.condition(identity, torch.randn(2, 5, 12, 28).narrow(0, 0, 1), aus)
    torch.testing.assert_close(c["au_probs"], aus)
    with pytest.raises(ValueError, match="aus"):
        model.sample(identity, torch.zeros(1, 5, 12, 28), aus=torch.rand(1, 4, 5))


def test_au_only_clips_do_not_depend_on_their_audio():
    model = DiffusionTalker(micro_cfg()).eval()
    b, t = 3, 6
    identity, aus = torch.rand(b, 3, 32, 32), torch.rand(b, t, 5)
    flags = torch.tensor([True, False, True])
    c1 = model.condition(identity, torch.randn(b, t, 12, 28), aus, flags)["cond"]
    c2 = model.condition(identity, torch.randn(b, t, 12, 28), aus, flags)["cond"]
    torch.testing.assert_close(c1[flags], c2[flags])  # AU-driven: the audio is ignored
    assert not torch.allclose(c1[~flags], c2[~flags])  # audio-driven: it is not
    out = model(identity, torch.randn(b, t, 12, 28), torch.rand(b, t, 3, 32, 32), aus=aus,
                au_drive=0.5, per_frames=2)
    assert out["pred"].shape == (b * 2, 3, 32, 32)


def test_train_config_is_a_trainer_config_with_presets():
    from dataclasses import asdict

    from coursekit.train.diffusion import DiffusionTrainConfig
    from coursekit.train.trainer import TrainerConfig

    tiny, paper = DiffusionTrainConfig.tiny(), DiffusionTrainConfig.paper()
    assert isinstance(tiny, TrainerConfig) and paper.ema_decay and tiny.ema_decay
    assert tiny.device == "cpu" and tiny.seq_len < paper.seq_len
    assert DiffusionTrainConfig.from_dict(asdict(tiny)) == tiny
    old = {"trainer": {"batch_size": 3, "max_steps": 7}, "seq_len": 5}  # the older layout
    cfg = DiffusionTrainConfig.from_dict(old)
    assert (cfg.batch_size, cfg.max_steps, cfg.seq_len) == (3, 7, 5)
