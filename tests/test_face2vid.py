"""Face2Vid's temporal link: the flow helper, the temporal loss and metrics, the talker's
``temporal="flow"`` / ``attn_levels`` options, training through the Trainer and old configs.

A small processed dataset is written by hand (two 10-frame clips at 64 px whose lips part and
whose texture drifts), so the tests need no preprocessing.
"""

from dataclasses import asdict

import coursekit  # noqa: F401  (sets OMP_WAIT_POLICY before torch starts)
import cv2
import numpy as np
import pytest
import torch
from conftest import write_processed

from coursekit.checkpoint import load_checkpoint, read_checkpoint
from coursekit.data.dataset import TalkingFaceDataset, collate, load_index
from coursekit.data.flow import flow_warp, frame_flows, pair_flow
from coursekit.face import template
from coursekit.losses import TalkerLoss, TalkerLossWeights, temporal_loss
from coursekit.metrics import frame_change, warping_error
from coursekit.models.config import TalkerConfig, from_dict
from coursekit.models.talker import Talker
from coursekit.train.talker import TalkerTrainConfig, talker_trainer

S, T = 64, 10
STATS = (np.zeros((12, 1), np.float32), np.ones((12, 1), np.float32))
FIELDS = ("frames", "identity", "mfcc", "warped", "mouth_mask", "flow", "previous")


def _texture(seed: int = 0) -> np.ndarray:
    """A smooth ``(S, S, 3)`` uint8 texture (optical flow needs gradients, not noise)."""
    noise = np.random.default_rng(seed).random((S, S, 3)).astype(np.float32)
    return (cv2.GaussianBlur(noise, (0, 0), 2.0) * 255 * 3 - 200).clip(0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    clips = {}
    for k, utt in enumerate(("aaaa1a", "bbbb2b")):
        face = _texture(k)
        gaps = np.r_[np.zeros(3), [2, 4, 5, 4, 2], np.zeros(T - 8)]
        lm = np.stack([template(S) for _ in gaps]).astype(np.float32)
        lm[:, [65, 66, 67]] = lm[:, [63, 62, 61]]
        lm[:, [56, 57, 58, 65, 66, 67], 1] += gaps[:, None]
        clips[utt] = dict(frames=np.stack([np.roll(face, t // 3, axis=1) for t in range(T)]),
                          identity=face, landmarks=lm,
                          mfcc=np.random.default_rng(k).normal(size=(T, 12, 28)),
                          aus=np.zeros((T, 5)))
    return write_processed(tmp_path_factory.mktemp("face2vid64"), clips, S)


@pytest.fixture(scope="module")
def batch(root):
    data = TalkingFaceDataset(root, seq_len=6, random_window=False, fields=FIELDS)
    return collate([data[0], data[1]])


def test_flow_recovers_a_shift_and_warps_it_back():
    image = _texture(3)
    moved = cv2.warpAffine(image, np.float32([[1, 0, 2], [0, 1, 1]]), (S, S),
                           borderMode=cv2.BORDER_REFLECT)  # moved(x) = image(x - (2, 1))
    flow = pair_flow(image, moved)  # image(x) ~ moved(x + flow)
    centre = flow[:, 16:48, 16:48].reshape(2, -1).mean(1)
    assert np.allclose(centre, [2, 1], atol=0.25)
    back = flow_warp(torch.from_numpy(moved).permute(2, 0, 1).float()[None],
                     torch.from_numpy(flow)[None])[0]
    err = (back - torch.from_numpy(image).permute(2, 0, 1).float())[:, 16:48, 16:48].abs().mean()
    assert err < 6  # of 255
    assert not pair_flow(image, image).any() and not frame_flows(image[None]).any()


def test_dataset_serves_flow_and_previous(batch, root):
    assert batch["flow"].shape == (2, 6, 2, S, S) and batch["previous"].shape == (2, 6, 3, S, S)
    start = int(batch["start"][0])
    frames = np.load(root / "spk1/aaaa1a/frames.npy")
    flows = frame_flows(TalkingFaceDataset(root, fields=("warped",))[0]["warped"]
                        .add(1).mul(127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy())
    assert torch.allclose(batch["flow"][0], torch.from_numpy(flows[start:start + 6]), atol=1e-2)
    real = torch.from_numpy(frames[start - 1:start + 5]).permute(0, 3, 1, 2).float() / 127.5 - 1
    want = flow_warp(real, torch.from_numpy(flows[start:start + 6]))
    assert (batch["previous"][0] - want).abs().max() < 0.02


def test_temporal_loss_zero_when_static_positive_when_flickering():
    still = torch.rand(1, 1, 3, 16, 16).expand(2, 5, 3, 16, 16)
    flow = torch.zeros(2, 5, 2, 16, 16)
    assert temporal_loss(still, flow) < 1e-6  # grid_sample round-off only
    flicker = still.clone()
    flicker[:, 1::2] += 0.2
    assert temporal_loss(flicker, flow) == pytest.approx(0.2, abs=1e-5)
    mouth = torch.zeros(2, 5, 1, 16, 16)
    mouth[:, :, :, :, :] = 1  # the mouth everywhere: no reliable pixel, nothing counted
    assert temporal_loss(flicker, flow, mouth) == 0
    weights = TalkerLossWeights(per=0.0, au=0.0, temp=2.0)
    terms = TalkerLoss(weights=weights)(flicker, flicker, flicker[:, 0], flow=flow)
    assert terms["temp"] == pytest.approx(0.2, abs=1e-5)
    assert terms["total"] == pytest.approx(1.5 * terms["id"].item() + 2 * 0.2, abs=1e-5)


def test_frame_change_and_warping_error_by_hand():
    ramp = torch.arange(4.0).expand(4, 4)  # value = x
    frames = torch.stack([ramp, ramp + 1, ramp + 3])[:, None]  # (3, 1, 4, 4)
    assert frame_change(frames) == pytest.approx((1 + 2) / 2)
    # frame t = frame t-1 moved by one pixel to the left: flow (1, 0), border clamped
    flows = torch.zeros(3, 2, 4, 4)
    flows[1:, 0] = 1.0
    # pair 1: |x + 1 - (x + 1)| = 0 but 1 at x = 3 (clamped): 0.25; pair 2: 1 everywhere + same
    assert warping_error(frames, flows) == pytest.approx((0.25 + 1.25) / 2)
    left = torch.zeros(4, 4)
    left[:, :2] = 1
    assert warping_error(frames, flows, left) == pytest.approx((0 + 1) / 2)
    per_frame = torch.zeros(3, 4, 4)
    per_frame[2] = 1  # only the second pair counts
    assert frame_change(frames, per_frame) == pytest.approx(2.0)
    assert warping_error(frames, torch.zeros(3, 2, 4, 4)) == pytest.approx(frame_change(frames))


@pytest.mark.parametrize("temporal,attn", [("none", ()), ("none", (3, 4)), ("flow", ()),
                                           ("flow", (2, 4))])
def test_shapes_for_each_config(batch, temporal, attn):
    torch.manual_seed(0)
    model = Talker(TalkerConfig.tiny(motion="warp", temporal=temporal, attn_levels=attn)).eval()
    warp = {"warped": batch["warped"], "mouth_mask": batch["mouth_mask"]}
    with torch.no_grad():
        out = model(batch["identity"], batch["mfcc"], **warp)["frames"]
        assert out.shape == (2, 6, 3, S, S)
        if temporal == "flow":
            forced = model(batch["identity"], batch["mfcc"], previous=batch["previous"], **warp)
            given = model(batch["identity"], batch["mfcc"], flow=batch["flow"], **warp)
            # untrained: the previous frame's projections start at zero
            assert torch.allclose(forced["frames"], out) and torch.allclose(given["frames"], out)
        else:
            with pytest.raises(ValueError, match="temporal='none'"):
                model(batch["identity"], batch["mfcc"], previous=batch["previous"], **warp)


def test_bad_configs_are_refused():
    with pytest.raises(ValueError, match="needs motion='warp'"):
        TalkerConfig.tiny(temporal="flow")
    with pytest.raises(ValueError, match="temporal must be"):
        TalkerConfig.tiny(temporal="lstm")
    with pytest.raises(ValueError, match="attn_levels"):
        TalkerConfig.tiny(attn_levels=(0,))


def test_two_steps_through_the_trainer_and_a_weights_only_round_trip(root, batch, tmp_path):
    model_cfg = TalkerConfig.tiny(motion="warp", temporal="flow", attn_levels=(4,))
    cfg = TalkerTrainConfig.tiny(max_steps=2, batch_size=2, seq_len=6, w_per=0.0, w_temp=1.0,
                                 max_minutes=None, ckpt_every=1)
    trainer = talker_trainer(root, load_index(root), tmp_path / "run", model_cfg, cfg,
                             mfcc_stats=STATS, progress=False)
    assert trainer.fit()["steps"] == 2
    log = (tmp_path / "run" / "log.csv").read_text().splitlines()
    assert "temp" in log[0].split(",") and len(log) == 3
    model = trainer.model.talker
    assert model.previous_encoder.proj[0].weight.abs().sum() > 0  # it learns
    path = trainer.export(tmp_path / "talker.pt", model=model)
    stored = read_checkpoint(path)  # torch.load(weights_only=True)
    assert stored["model_config"]["temporal"] == "flow" and stored["model_config"]["attn_levels"] == [4]
    loaded = load_checkpoint(path, kind="talker")
    assert loaded.config == model_cfg
    warp = {"warped": batch["warped"], "mouth_mask": batch["mouth_mask"]}
    model.eval()
    with torch.no_grad():
        same = [m(batch["identity"], batch["mfcc"], **warp)["frames"] for m in (model, loaded.model)]
    assert torch.equal(*same)


def test_old_configs_load_unchanged(tmp_path):
    cfg = TalkerConfig.tiny(motion="warp")
    old = asdict(cfg)
    old.pop("temporal"), old.pop("attn_levels")
    assert from_dict(TalkerConfig, old) == cfg
    torch.manual_seed(0)
    keys = set(Talker(cfg).state_dict())
    assert not any(k.startswith(("previous_encoder.", "decoder.attn.")) for k in keys)
    shipped = load_checkpoint("coursekit/assets/tiny/talker.pt", kind="talker")  # strict load
    assert shipped.config.temporal == "none" and shipped.config.attn_levels == ()
