"""Tests of coursekit.models: shapes, any clip length, non-causality, receptive field, fusions."""

from __future__ import annotations

import dataclasses
import io
import re

import pytest
import torch

from coursekit.au import AUS
from coursekit.models import (
    FUSIONS,
    TCSAN,
    AUClassifier,
    AUClassifierConfig,
    Audio2AU,
    Audio2AUConfig,
    CoAttTCNFusion,
    Talker,
    TalkerConfig,
    count_parameters,
    lower_half,
    make_fusion,
    receptive_field,
)

# small fusion inputs: identity, audio and AU streams of a few channels each
IN_DIMS = {"id": 8, "audio": 12, "au": 10}
C_IN = sum(IN_DIMS.values())


def small_cfg(fusion: str = "tcsan", **kw) -> TalkerConfig:
    return TalkerConfig.tiny(fusion=fusion, tcsan_channels=32, attn_token_dim=8, **kw)


def fast_cfg(**kw) -> TalkerConfig:
    """The tiny talker on 32x32 faces, for tests that run it several times."""
    return TalkerConfig.tiny(image_size=32, **kw)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def paper_model():
    torch.manual_seed(0)
    return Talker(TalkerConfig.paper()).eval()


# ----------------------------------------------------------------------------- configs


def test_tiny_and_paper_differ_only_in_numbers():
    tiny, paper = TalkerConfig.tiny(), TalkerConfig.paper()
    for f in dataclasses.fields(TalkerConfig):
        a, b = getattr(tiny, f.name), getattr(paper, f.name)
        if isinstance(a, (int, float)) and not isinstance(a, bool):
            continue
        if isinstance(a, tuple):
            assert len(a) == len(b), f.name
        elif dataclasses.is_dataclass(a):
            assert type(a) is type(b)
        else:
            assert a == b, f.name
    assert paper.fused_dim == 1344 and paper.au_dim == 320


def test_config_keeps_au_feature_size_in_step_and_validates():
    cfg = TalkerConfig.tiny(au_feat_dim=24)
    assert cfg.audio2au.fc[-1] == 24
    with pytest.raises(ValueError):
        TalkerConfig.tiny(fusion="lstm")
    with pytest.raises(ValueError):
        TalkerConfig.tiny(kernel=4)
    assert TalkerConfig.tiny(use_audio2au=False).fused_dim == 96 + 96


# ----------------------------------------------------------------------------- Audio2AU


@pytest.mark.parametrize("t", [1, 7])
def test_audio2au_shapes_any_length(t):
    cfg = TalkerConfig.tiny().audio2au
    model = Audio2AU(cfg).eval()
    mfcc = torch.randn(2, t, 12, 28)
    assert model(mfcc).shape == (2, t, 5)
    assert model.features(mfcc).shape == (2, t, 5, cfg.fc[-1])
    p = model.predict_proba(mfcc)
    assert p.shape == (2, t, 5) and p.min() >= 0 and p.max() <= 1
    feats, logits = model.features_and_logits(mfcc)
    assert torch.allclose(logits, model(mfcc), atol=1e-6)
    assert model.aus == AUS and model.net("AU25") is model.nets[3]


def test_audio2au_paper_features_are_5_by_64():
    model = Audio2AU(TalkerConfig.paper().audio2au).eval()
    assert model.features(torch.randn(1, 3, 12, 28)).shape == (1, 3, 5, 64)
    assert model.out_dim == 320


def test_audio2au_lstm_gives_temporal_context():
    net = Audio2AU(Audio2AUConfig(conv_channels=(4, 8), lstm_hidden=8, fc=(8, 4))).eval()
    mfcc = torch.randn(1, 6, 12, 28)
    changed = mfcc.clone()
    changed[:, 5] += 1.0  # the last window only
    with torch.no_grad():
        assert not torch.allclose(net(mfcc)[:, 0], net(changed)[:, 0])


# ----------------------------------------------------------------------------- fusions


@pytest.mark.parametrize("fusion", FUSIONS)
@pytest.mark.parametrize("t", [1, 7, 50, 75])
def test_fusions_any_length(fusion, t):
    model = make_fusion(small_cfg(fusion), IN_DIMS).eval()
    with torch.no_grad():
        assert model(torch.randn(2, t, C_IN)).shape == (2, t, 32)


@pytest.mark.parametrize("fusion", FUSIONS)
def test_fusions_forward_backward(fusion):
    model = make_fusion(small_cfg(fusion), IN_DIMS).train()
    x = torch.randn(2, 9, C_IN, requires_grad=True)
    model(x).square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_coattention_needs_both_streams():
    with pytest.raises(ValueError):
        CoAttTCNFusion({"id": 8, "audio": 12}, 32)
    with pytest.raises(ValueError):
        make_fusion(small_cfg("coatt_tcn"), {"id": 8, "audio": 12, "au": 0})


def _dependence(model, t_out: int, t_len: int = 75) -> torch.Tensor:
    """Which input frames output frame ``t_out`` depends on: ``(t_len,)`` bool."""
    x = torch.randn(1, t_len, C_IN, dtype=torch.float64, requires_grad=True)
    model(x)[0, t_out].sum().backward()
    return x.grad[0].abs().sum(-1) > 0


@pytest.mark.parametrize("levels,kernel", [(1, 3), (2, 3), (3, 3), (2, 5)])
def test_receptive_field_matches_gradient(levels, kernel):
    model = TCSAN(C_IN, 16, levels=levels, kernel=kernel, token_dim=8).double().eval()
    rf = receptive_field(levels, kernel)
    assert model.receptive_field() == rf and rf % 2 == 1
    half, t = (rf - 1) // 2, 37
    depends = _dependence(model, t)
    assert depends.sum().item() == rf
    # symmetric window: as many future frames as past ones (non-causal)
    assert depends[t - half: t + half + 1].all()
    assert not depends[: t - half].any() and not depends[t + half + 1:].any()


def test_paper_receptive_field():
    assert receptive_field(4, 3) == 61


def test_non_causal_future_frames_change_the_past():
    model = TCSAN(C_IN, 16, levels=3, kernel=3, token_dim=8).eval()
    half = (model.receptive_field() - 1) // 2  # 14
    x = torch.randn(1, 60, C_IN)
    t = 20
    near, far = x.clone(), x.clone()
    near[:, t + 3] += 1.0  # a future frame inside the window of frame t
    far[:, t + half + 1] += 1.0  # just outside it
    with torch.no_grad():
        y, y_near, y_far = model(x), model(near), model(far)
    assert not torch.allclose(y[:, t], y_near[:, t])
    assert not torch.allclose(y[:, : t + 1], y_near[:, : t + 1])
    assert torch.allclose(y[:, : t + 1], y_far[:, : t + 1], atol=1e-6)


# ----------------------------------------------------------------------------- attention


def test_attention_projections_are_registered_parameters():
    model = TCSAN(C_IN, 32, levels=2, token_dim=8).eval()
    names = [n for n, _ in model.named_parameters()]
    assert any("attention.qkv" in n for n in names) and any("attention.proj" in n for n in names)
    x = torch.randn(2, 11, C_IN)
    with torch.no_grad():
        y1, y2 = model(x), model(x)
    assert torch.equal(y1, y2)
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    buf.seek(0)
    torch.manual_seed(1)
    other = TCSAN(C_IN, 32, levels=2, token_dim=8).eval()
    with torch.no_grad():
        assert not torch.allclose(other(x), y1)
        other.load_state_dict(torch.load(buf))
        assert torch.allclose(other(x), y1, atol=1e-6)


def test_attention_maps_weight_elements_within_each_frame():
    model = TCSAN(C_IN, 32, levels=2, heads=4, token_dim=8).eval()
    maps = model.attention_maps(torch.randn(2, 7, C_IN))
    assert len(maps) == 2
    for w in maps:
        assert w.shape == (2, 7, 4, 4, 4)  # (B, T, heads, tokens, tokens): 32 / 8 tokens
        assert torch.allclose(w.sum(-1), torch.ones(2, 7, 4, 4), atol=1e-5)


# ----------------------------------------------------------------------------- talker


def test_tiny_talker_shapes():
    cfg = TalkerConfig.tiny()
    model = Talker(cfg)
    out = model(torch.rand(2, 3, 64, 64) * 2 - 1, torch.randn(2, 5, 12, 28))
    assert out["frames"].shape == (2, 5, 3, 64, 64)
    assert out["frames"].abs().max() <= 1
    assert out["au_logits"].shape == (2, 5, 5)
    assert out["fused"].shape == (2, 5, cfg.tcsan_channels)
    assert model.in_dims == {"id": 96, "audio": 96, "au": 80}


def test_paper_talker_forward(paper_model):
    assert paper_model.cfg.fused_dim == 1344
    with torch.no_grad():
        out = paper_model(torch.zeros(1, 3, 112, 112), torch.randn(1, 3, 12, 28))
        feats = paper_model.audio2au.features(torch.randn(1, 3, 12, 28))
    assert out["frames"].shape == (1, 3, 3, 112, 112)
    assert out["au_logits"].shape == (1, 3, 5) and out["fused"].shape == (1, 3, 512)
    assert feats.shape == (1, 3, 5, 64)


def test_paper_parameter_count_matches_docstring(paper_model):
    stated = re.search(r"\*\*([\d,]+)\*\*", TalkerConfig.paper.__doc__).group(1)
    assert count_parameters(paper_model) == int(stated.replace(",", ""))


def test_talker_without_audio2au():
    model = Talker(TalkerConfig.tiny(use_audio2au=False)).eval()
    assert model.audio2au is None
    with torch.no_grad():
        out = model(torch.zeros(1, 3, 64, 64), torch.randn(1, 4, 12, 28))
    assert out["au_logits"] is None and out["frames"].shape == (1, 4, 3, 64, 64)


@pytest.mark.parametrize("fusion", ["gru", "coatt_tcn"])
def test_talker_with_other_fusions(fusion):
    model = Talker(fast_cfg(fusion=fusion))
    out = model(torch.zeros(1, 3, 32, 32), torch.randn(1, 3, 12, 28))
    out["frames"].mean().backward()


def test_eval_mode_is_deterministic_and_batch_independent():
    model = Talker(fast_cfg()).eval()
    ident, mfcc = torch.rand(2, 3, 32, 32), torch.randn(2, 6, 12, 28)
    with torch.no_grad():
        a, b = model(ident, mfcc), model(ident, mfcc)
        single = model(ident[:1], mfcc[:1])
    assert torch.equal(a["frames"], b["frames"])
    # BatchNorm uses running statistics: a clip's frames do not depend on its batch mates
    assert torch.allclose(single["frames"][0], a["frames"][0], atol=1e-5)
    assert torch.allclose(single["au_logits"][0], a["au_logits"][0], atol=1e-5)


def test_frozen_audio2au_stays_fixed():
    model = Talker(fast_cfg()).freeze_audio2au().train()
    assert not model.audio2au.training and model.fusion.training
    assert count_parameters(model, trainable_only=True) == (
        count_parameters(model) - count_parameters(model.audio2au))


def test_talker_backward_reaches_every_trainable_parameter():
    model = Talker(fast_cfg()).train()
    out = model(torch.rand(2, 3, 32, 32), torch.randn(2, 4, 12, 28))
    (out["frames"].mean() + out["au_logits"].mean()).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing


# ----------------------------------------------------------------------------- AU classifier


def test_au_classifier_on_lower_half():
    frames = torch.rand(3, 3, 64, 64)
    lower = lower_half(frames)
    assert lower.shape == (3, 3, 32, 64) and torch.equal(lower, frames[:, :, 32:])
    model = AUClassifier(AUClassifierConfig.tiny()).eval()
    assert model(lower).shape == (3, 5)
    p = model.predict_proba(lower)
    assert p.min() >= 0 and p.max() <= 1
