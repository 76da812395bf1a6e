"""The AU -> landmark motion model: shapes, targets, training through the Trainer, checkpoints."""

import numpy as np
import pytest
import torch

from coursekit import warp
from coursekit.checkpoint import load_checkpoint, read_checkpoint
from coursekit.data.dataset import load_index
from coursekit.face import template
from coursekit.models.motion import (MotionConfig, MotionModel, apply_quantile_map,
                                     fit_quantile_map, motion_targets, neutral_landmarks)
from coursekit.train.common import read_csv_log
from coursekit.train.motion import MotionTrainConfig, MotionWindows, motion_loss, train_motion

K = len(warp.MOVING)


def _cfg(steps: int) -> MotionTrainConfig:
    return MotionTrainConfig(batch_size=8, lr=3e-3, lr_schedule="constant", max_steps=steps,
                             ema_decay=None, ckpt_every=10, grad_clip=None, seq_len=16)


def test_shapes_and_single_frames():
    torch.manual_seed(0)
    model = MotionModel(MotionConfig.tiny()).eval()
    aus = torch.rand(3, 20, 5) * 5
    assert model(aus).shape == (3, 20, K, 2)
    assert model(aus[:, :1]).shape == (1 * 3, 1, K, 2)
    # a constant sequence is the same motion as its single frame (AU sliders)
    constant = aus[:1, :1].expand(1, 9, 5)
    torch.testing.assert_close(model(constant)[0], model(aus[:1, :1])[0].expand(9, K, 2))
    assert model.predict(aus[0].numpy()).shape == (20, K, 2)
    with pytest.raises(ValueError, match="MotionModel"):
        model(torch.rand(2, 5))
    assert MotionConfig.tiny().n_points == MotionConfig.paper().n_points == K


def test_targets_are_zero_at_the_neutral_and_in_iod_units():
    face = template(112)
    frames = np.repeat(face[None], 6, 0)
    frames[3:, [65, 66, 67, 56, 57, 58, 8], 1] += 3.1  # mouth open on the last frames
    neutral = neutral_landmarks(frames)
    np.testing.assert_allclose(neutral, face, atol=1e-5)
    motion = motion_targets(frames)
    assert motion.shape == (6, K, 2)
    assert np.abs(motion[:3]).max() == 0
    chin = int(np.searchsorted(warp.MOVING, 8))
    assert motion[4, chin, 1] == pytest.approx(3.1 / warp.inter_ocular(face), rel=1e-4)
    np.testing.assert_allclose(warp.displace(face, motion[4]), frames[4], atol=1e-4)


def test_windows_mirror_and_loss(processed64):
    clips = load_index(processed64)[:4]
    plain = MotionWindows(processed64, clips, 16)
    flipped = MotionWindows(processed64, clips, 16, flip=1.0)
    a, b = plain[1], flipped[1]
    assert a["motion"].shape == (16, K, 2) and a["aus"].shape == (16, 5)
    torch.testing.assert_close(b["motion"], a["motion"][:, warp.MOVING_MIRROR] * torch.tensor([-1.0, 1.0]))
    batch = {k: torch.stack([a[k], b[k]]) for k in ("motion", "mask")}
    loss, terms = motion_loss(batch["motion"], batch["motion"], batch["mask"])
    assert float(loss) == 0.0 and set(terms) == {"l1", "spread"}
    still = torch.zeros_like(batch["motion"])  # no motion at all: the spread term notices
    assert motion_loss(still, batch["motion"], batch["mask"])[1]["spread"] > 0


def test_training_reduces_the_loss_and_round_trips(processed64, tmp_path):
    clips = load_index(processed64)
    torch.manual_seed(0)
    out = train_motion(processed64, clips, tmp_path / "motion.pt", MotionConfig.tiny(), _cfg(60),
                       progress=False, meta={"note": "test"})
    rows = read_csv_log(tmp_path / "motion" / "log.csv")
    assert len(rows) == 60
    first = np.mean([r["loss"] for r in rows[:10]])
    last = np.mean([r["loss"] for r in rows[-10:]])
    assert last < 0.7 * first, (first, last)
    loaded = load_checkpoint(out, kind="motion")
    assert isinstance(loaded.model, MotionModel) and loaded.config == MotionConfig.tiny()
    assert loaded.meta["note"] == "test" and loaded.meta["steps"] == 60
    assert len(loaded.meta["train_clips"]) == len(clips)
    state = read_checkpoint(tmp_path / "motion" / "last.pt")["model"]
    for name, value in loaded.model.state_dict().items():
        torch.testing.assert_close(value, state[name])


def test_resume_gives_the_uninterrupted_weights(processed64, tmp_path):
    clips = load_index(processed64)[:8]
    whole = train_motion(processed64, clips, tmp_path / "a.pt", MotionConfig.tiny(), _cfg(30),
                         progress=False)
    train_motion(processed64, clips, tmp_path / "b.pt", MotionConfig.tiny(), _cfg(20),
                 progress=False)
    resumed = train_motion(processed64, clips, tmp_path / "b.pt", MotionConfig.tiny(), _cfg(30),
                           progress=False, resume=True)
    a, b = read_checkpoint(whole)["model"], read_checkpoint(resumed)["model"]
    for name in a:
        torch.testing.assert_close(a[name], b[name])


def test_quantile_map_keeps_the_intensity_spread():
    rng = np.random.default_rng(0)
    probs = rng.beta(0.5, 0.5, (2000, 5))
    intensities = rng.gamma(1.5, 0.8, (3000, 5))
    qmap = fit_quantile_map(probs, intensities)
    mapped = apply_quantile_map(qmap, probs)
    assert mapped.shape == (2000, 5)
    np.testing.assert_allclose(mapped.std(0), intensities.std(0), rtol=0.1)
    order = np.argsort(probs[:, 0])
    assert (np.diff(mapped[order, 0]) >= -1e-6).all()  # monotone: correlation is kept
    with pytest.raises(ValueError, match="apply_quantile_map"):
        apply_quantile_map(qmap, probs[:, :3])
