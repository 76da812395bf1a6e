"""Losses (paper eq. 5-11) and AU metrics against hand-computed values."""

import hashlib
import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from coursekit import losses
from coursekit.losses import (PerceptualLoss, TalkerLoss, TalkerLossWeights, VGG19Features,
                              au_class_weights, au_loss, identity_loss, l1_reconstruction,
                              load_vgg19_weights, weighted_bce, weighted_dice)
from coursekit.metrics import accuracy_per_au, au_table, binarize, f1_per_au

CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34)
"""Conv layers of torchvision's ``vgg19().features`` (ReLUs after each, pools at 4, 9, 18,
27, 36)."""
TORCHVISION_KEYS = [f"features.{i}.{p}" for i in CONV_INDICES for p in ("weight", "bias")]


@pytest.fixture
def no_vgg_env(monkeypatch):
    monkeypatch.delenv(losses.WEIGHTS_ENV, raising=False)


def fallback_perceptual() -> PerceptualLoss:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return PerceptualLoss()


# ----------------------------------------------------------------------------- pixel losses


def test_l1_reconstruction_mean_and_mask():
    pred = torch.zeros(1, 3, 3, 2, 2)
    target = torch.zeros(1, 3, 3, 2, 2)
    target[0, 0] = 1.0  # frame 0 off by 1
    target[0, 2] = 7.0  # frame 2 is padding
    assert l1_reconstruction(pred, target).item() == pytest.approx((1 + 7) / 3)
    mask = torch.tensor([[True, True, False]])
    assert l1_reconstruction(pred, target, mask).item() == pytest.approx(0.5)


def test_identity_loss_looks_only_at_the_upper_half():
    pred = torch.zeros(2, 3, 3, 8, 6)
    identity = torch.zeros(2, 3, 8, 6)
    pred[..., 4:, :] = 5.0  # the lower half (the mouth) may differ freely
    assert identity_loss(pred, identity).item() == 0.0
    pred[..., :4, :] += 1.0  # every upper-half pixel off by 1
    assert identity_loss(pred, identity).item() == pytest.approx(1.0)
    identity[..., 4:, :] = -3.0  # the identity's lower half is ignored too
    assert identity_loss(pred, identity).item() == pytest.approx(1.0)
    pred[0, 1, :, 0, 0] += 3 * 4 * 6 * 2  # one pixel row 0 of frame (0, 1), all channels
    expected = 1.0 + 3 * 4 * 6 * 2 * 3 / pred[..., :4, :].numel()
    assert identity_loss(pred, identity).item() == pytest.approx(expected)


# ----------------------------------------------------------------------------- AU losses


def test_class_weights_formula():
    # w_i = (1 / r_i) n / sum_j (1 / r_j): rates 0.5, 0.25 -> 1/r = 2, 4 -> 2*2/6, 4*2/6
    w = au_class_weights([0.5, 0.25])
    assert w.dtype == torch.float32
    assert w.tolist() == pytest.approx([2 / 3, 4 / 3])
    assert au_class_weights([0.3] * 5).tolist() == pytest.approx([1.0] * 5)
    rates = np.array([0.165, 0.134, 0.261, 0.491, 0.351])
    w = au_class_weights(rates).numpy()
    assert w.sum() == pytest.approx(5.0, rel=1e-5)
    assert np.allclose(w * rates, (w * rates)[0], rtol=1e-5)  # w_i r_i is constant


def test_class_weights_guard_against_zero_rate():
    w = au_class_weights([0.0, 0.5], min_rate=0.01)  # 1/r -> 100, 2
    assert torch.all(torch.isfinite(w))
    assert w.tolist() == pytest.approx([200 / 102, 4 / 102])
    with pytest.raises(ValueError):
        au_class_weights([0.2, 1.5])


def test_weighted_bce_hand_computed():
    logits = torch.tensor([[0.0, 2.0]])
    targets = torch.tensor([[1.0, 0.0]])
    weights = torch.tensor([1.0, 3.0])
    # -log sigmoid(0) = log 2 ; -log(1 - sigmoid(2)) = log(1 + e^2) ; mean over n = 2 AUs
    expected = (1 * math.log(2) + 3 * math.log(1 + math.e ** 2)) / 2
    assert weighted_bce(logits, targets, weights).item() == pytest.approx(expected, rel=1e-6)


def test_weighted_bce_is_stable_and_masked():
    logits = torch.tensor([[[200.0, -200.0], [0.0, 0.0]]], requires_grad=True)  # (1, 2, 2)
    targets = torch.tensor([[[0.0, 1.0], [1.0, 1.0]]])
    loss = weighted_bce(logits, targets, torch.ones(2))
    assert torch.isfinite(loss) and loss.item() == pytest.approx((400 + 2 * math.log(2)) / 4)
    loss.backward()
    assert torch.all(torch.isfinite(logits.grad))
    mask = torch.tensor([[False, True]])  # only the second frame counts
    assert weighted_bce(logits, targets, torch.ones(2), mask).item() == pytest.approx(math.log(2))


def test_weighted_dice_hand_computed():
    probs = torch.tensor([[0.5, 0.2], [1.0, 0.0]])  # 2 frames x 2 AUs
    targets = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    weights = torch.tensor([1.0, 2.0])
    # AU1: 2*(0.5 + 1) + 1 = 4 over (1 + 1) + (0.25 + 1) + 1 = 4.25
    # AU2: 0 + 1 = 1 over 0 + 0.04 + 1 = 1.04
    expected = (1 * (1 - 4 / 4.25) + 2 * (1 - 1 / 1.04)) / 2
    assert weighted_dice(probs, targets, weights, eps=1.0).item() == pytest.approx(expected, rel=1e-6)
    assert weighted_dice(targets, targets, weights).item() == pytest.approx(0.0, abs=1e-7)
    # a padded frame with a wrong prediction does not count
    probs3 = torch.cat([probs, torch.tensor([[0.0, 1.0]])])[None]
    targets3 = torch.cat([targets, torch.tensor([[1.0, 0.0]])])[None]
    mask = torch.tensor([[True, True, False]])
    assert weighted_dice(probs3, targets3, weights, 1.0, mask).item() == pytest.approx(expected, rel=1e-6)


def test_au_loss_is_bce_plus_dice():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 7, 5, generator=gen)
    targets = (torch.rand(2, 7, 5, generator=gen) > 0.6).float()
    weights = au_class_weights(targets.reshape(-1, 5).mean(0).clamp_min(0.05))
    expected = weighted_bce(logits, targets, weights) + weighted_dice(
        torch.sigmoid(logits), targets, weights, 1.0)
    assert au_loss(logits, targets, weights).item() == pytest.approx(expected.item())


# ----------------------------------------------------------------------------- VGG-19


def test_vgg19_keys_equal_torchvision_layout():
    vgg = VGG19Features()
    assert list(vgg.state_dict()) == TORCHVISION_KEYS
    assert {k: tuple(v.shape) for k, v in vgg.state_dict().items()} == losses.vgg19_shapes()
    assert vgg.state_dict()["features.34.weight"].shape == (512, 512, 3, 3)
    assert vgg.state_dict()["features.0.weight"].shape == (64, 3, 3, 3)
    assert losses.VGG19_LAYERS == {"relu1_2": 3, "relu2_2": 8, "relu3_4": 17, "relu4_4": 26}
    assert all(isinstance(vgg.features[i], torch.nn.ReLU) for i in losses.VGG19_LAYERS.values())
    out = vgg(torch.zeros(1, 3, 32, 32))
    assert [tuple(v.shape[1:]) for v in out.values()] == [
        (64, 32, 32), (128, 16, 16), (256, 8, 8), (512, 4, 4)]
    assert not any(p.requires_grad for p in vgg.parameters())


def _fake_official_file(path, seed=1):
    """A torchvision-style checkpoint: the features keys plus classifier keys."""
    gen = torch.Generator().manual_seed(seed)
    state = {k: torch.randn(v.shape, generator=gen) * 0.05
             for k, v in VGG19Features().state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(4, 4)
    torch.save(state, path)
    return state


def test_loading_a_saved_state_dict_is_used(tmp_path, no_vgg_env):
    path = tmp_path / "vgg19-test.pth"
    state = _fake_official_file(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    loaded = load_vgg19_weights(path, sha256=digest[:8])
    assert list(loaded) == TORCHVISION_KEYS  # the classifier is dropped
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no fallback warning with weights
        per = PerceptualLoss(path, sha256=digest)
    assert per.pretrained
    assert torch.equal(per.vgg.features[34].weight, state["features.34.weight"])
    a, b = torch.rand(1, 3, 32, 32) * 2 - 1, torch.rand(1, 3, 32, 32) * 2 - 1
    assert per(a, b).item() != pytest.approx(fallback_perceptual()(a, b).item())


def test_env_var_names_the_weights(tmp_path, monkeypatch):
    path = tmp_path / "w.pth"
    _fake_official_file(path)
    monkeypatch.setenv(losses.WEIGHTS_ENV, str(path))
    per = PerceptualLoss(sha256=None)
    assert per.pretrained and per.weights_path == str(path)


def test_checksum_mismatch_names_the_file(tmp_path):
    path = tmp_path / "vgg19-dcbb9e9d.pth"
    _fake_official_file(path)  # right name, wrong content
    with pytest.raises(ValueError, match="vgg19-dcbb9e9d.pth.*SHA-256"):
        load_vgg19_weights(path)
    with pytest.raises(ValueError, match="SHA-256"):
        PerceptualLoss(path)
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        load_vgg19_weights(tmp_path / "missing.pth")


def test_fallback_warns_and_is_deterministic(no_vgg_env):
    with pytest.warns(UserWarning, match="(?i)not ImageNet-based.*COURSEKIT_VGG19_WEIGHTS"):
        per = PerceptualLoss()
    assert not per.pretrained
    again = fallback_perceptual()
    assert torch.equal(per.vgg.features[0].weight, again.vgg.features[0].weight)


def _blur(img: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = int(3 * sigma) + 1
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-x ** 2 / (2 * sigma ** 2))
    k = (k / k.sum()).to(img.dtype)
    c = img.shape[1]
    img = F.conv2d(F.pad(img, (radius, radius, 0, 0), mode="reflect"), k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(F.pad(img, (0, 0, radius, radius), mode="reflect"), k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def test_perceptual_zero_for_identical_and_grows_with_blur(no_vgg_env):
    per = fallback_perceptual()
    gen = torch.Generator().manual_seed(0)
    img = _blur(torch.rand(2, 3, 48, 48, generator=gen) * 2 - 1, 0.7)  # textured images
    frames = img[None]  # (B=1, T=2, 3, H, W)
    assert per(frames, frames.clone()).item() == 0.0
    values = [per(_blur(img, s)[None], frames).item() for s in (0.5, 1.0, 2.0, 4.0)]
    assert all(b > a for a, b in zip(values, values[1:])), values
    pred = _blur(img, 1.0)[None].requires_grad_(True)
    per(pred, frames).backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0


def test_talker_loss_combines_with_paper_weights():
    assert TalkerLossWeights() == TalkerLossWeights(rec=1.5, id=1.5, per=0.07, au=0.02)
    gen = torch.Generator().manual_seed(0)
    pred = torch.rand(2, 3, 3, 32, 32, generator=gen) * 2 - 1
    real = torch.rand(2, 3, 3, 32, 32, generator=gen) * 2 - 1
    ident = real[:, 0]
    logits, occ = torch.randn(2, 3, 5, generator=gen), (torch.rand(2, 3, 5, generator=gen) > 0.5).float()
    crit = TalkerLoss(au_weights=torch.ones(5), perceptual=fallback_perceptual())
    t = crit(pred, real, ident, logits, occ)
    expected = 1.5 * t["rec"] + 1.5 * t["id"] + 0.07 * t["per"] + 0.02 * t["au"]
    assert t["total"].item() == pytest.approx(expected.item())
    assert t["rec"].item() == pytest.approx(l1_reconstruction(pred, real).item())
    assert t["au"].item() == pytest.approx(au_loss(logits, occ, torch.ones(5)).item())
    no_per = TalkerLoss(weights={"per": 0.0})(pred, real, ident)
    assert no_per["per"].item() == 0.0 and no_per["au"].item() == 0.0


# ----------------------------------------------------------------------------- metrics


def test_f1_and_accuracy_hand_computed():
    pred = np.array([[1, 0], [1, 1], [0, 0], [0, 1]], bool)
    true = np.array([[1, 0], [0, 1], [1, 0], [0, 1]], bool)
    # AU 1: TP 1, FP 1, FN 1 -> 2 / 4 ; AU 2: TP 2 -> 1
    assert f1_per_au(pred, true).tolist() == pytest.approx([0.5, 1.0])
    assert accuracy_per_au(pred, true).tolist() == pytest.approx([0.5, 1.0])
    assert f1_per_au(torch.tensor(pred), torch.tensor(true)).tolist() == pytest.approx([0.5, 1.0])
    none = np.zeros((3, 2), bool)
    assert f1_per_au(none, none).tolist() == [0.0, 0.0]  # undefined -> 0 (scikit-learn's way)
    assert f1_per_au(none, none, zero_division=1.0).tolist() == [1.0, 1.0]
    assert binarize(np.array([0.49, 0.5, 0.9])).tolist() == [False, True, True]


def test_au_table_markdown():
    table = au_table({"model": (np.array([1, 0.5, 0.5, 1, 0.5]), np.full(5, 0.9)),
                      "position only": {"f1": np.zeros(5), "acc": np.ones(5)}})
    lines = table.splitlines()
    assert lines[0] == "| method | metric | AU10 | AU14 | AU20 | AU25 | AU26 | mean |"
    assert len(lines) == 2 + 4
    assert lines[2].startswith("| model | F1 | 1.000 | 0.500") and "**0.700**" in lines[2]
    assert "| position only | accuracy |" in table
