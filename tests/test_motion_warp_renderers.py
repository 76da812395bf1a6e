"""Both renderers with ``motion="warp"``: the warped identity and mouth mask as extra inputs.

A small processed dataset is written by hand (two 14-frame clips at 64 px whose lips part in
the middle frames), so the tests need no preprocessing and run in seconds.
"""

from dataclasses import asdict, replace

import coursekit  # noqa: F401  (sets OMP_WAIT_POLICY before torch starts)
import numpy as np
import pytest
import torch
from conftest import write_processed

from coursekit.checkpoint import load_checkpoint, read_checkpoint, save_model
from coursekit.data.dataset import TalkingFaceDataset, collate, load_index
from coursekit.data.warped import lips_mask, warp_inputs, warp_tensors
from coursekit.face import template
from coursekit.models.config import DiffusionConfig, TalkerConfig, from_dict
from coursekit.models.diffusion import DiffusionTalker
from coursekit.models.talker import Talker
from coursekit.train.diffusion import DiffusionTrainConfig, diffusion_trainer
from coursekit.train.talker import TalkerTrainConfig, talker_trainer

S, T = 64, 14
STATS = (np.zeros((12, 1), np.float32), np.ones((12, 1), np.float32))


def _landmarks(gap: float) -> np.ndarray:
    face = template(S).copy()
    face[[65, 66, 67]] = face[[63, 62, 61]]  # lower inner lip on the upper: closed
    face[[65, 66, 67], 1] += gap
    face[[56, 57, 58], 1] += gap
    face[8, 1] += gap / 2  # the chin follows
    return face


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """Two clips: a textured face, lips parting in frames 5-9."""
    rng = np.random.default_rng(0)
    clips = {}
    for k, utt in enumerate(("aaaa1a", "bbbb2b")):
        face = rng.integers(40, 220, (S, S, 3), dtype=np.uint8)
        gaps = np.r_[np.zeros(5), [2, 4, 5, 4, 2], np.zeros(T - 10)] * (1 + k)
        clips[utt] = dict(frames=np.repeat(face[None], T, 0), identity=face,
                          landmarks=np.stack([_landmarks(g) for g in gaps]),
                          mfcc=rng.normal(size=(T, 12, 28)),
                          aus=np.stack([np.r_[0, 0, 0, g, g] for g in gaps]))
    return write_processed(tmp_path_factory.mktemp("warp64"), clips, S)


@pytest.fixture(scope="module")
def batch(root):
    data = TalkingFaceDataset(root, seq_len=8, random_window=False,
                              fields=("frames", "identity", "mfcc", "aus", "warped", "mouth_mask"))
    return collate([data[0], data[1]])


def test_dataset_serves_the_warped_identity_and_the_mouth_mask(root, batch):
    assert batch["warped"].shape == (2, 8, 3, S, S) and batch["mouth_mask"].shape == (2, 8, 1, S, S)
    lm = np.load(root / "spk1/aaaa1a/aligned_landmarks.npy")
    start = int(batch["start"][0])
    gaps = lm[start:start + 8, 66, 1] - lm[start:start + 8, 62, 1]
    parted = gaps > 1
    assert parted.any() and (~parted).any()
    masks = batch["mouth_mask"][0].amax(dim=(1, 2, 3)).numpy()
    assert (masks[parted] > 0.5).all() and (masks[~parted] == 0).all()  # closed lips: nothing
    moved = (batch["warped"][0] - batch["identity"][0]).abs().amax(dim=(1, 2, 3)).numpy()
    assert (moved[parted] > 0.05).all() and (moved[gaps == 0] == 0).all()
    assert batch["warped"].min() >= -1 and batch["warped"].max() <= 1
    # the same as the inference helper, which takes any wanted landmarks
    identity = np.load(root / "spk1/aaaa1a/identity.npy")
    warped, mask = warp_inputs(identity, lm[0], lm[start:start + 8])
    assert np.allclose(mask, batch["mouth_mask"][0, :, 0].numpy(), atol=1e-3)
    w, m = warp_tensors(batch["identity"][0], lm[0], lm[start:start + 8])
    assert torch.allclose(w, batch["warped"][0], atol=1e-5) and m.shape == (8, 1, S, S)
    assert lips_mask(lm[0], (S, S)).max() == 0


def test_configs_default_to_none_and_warp_adds_input_channels():
    assert TalkerConfig.tiny().motion == TalkerConfig.paper().motion == "none"
    assert DiffusionConfig.tiny().unet.in_channels == 9
    for preset in (DiffusionConfig.tiny, DiffusionConfig.paper):
        cfg = preset(motion="warp")
        assert cfg.unet.in_channels == 13 and cfg.talker.motion == "warp"
    # tiny and paper differ only in numbers
    assert TalkerConfig.tiny(motion="warp").identity_channels == TalkerConfig.paper(motion="warp").identity_channels == 7
    assert DiffusionConfig(talker=TalkerConfig.tiny(motion="warp")).motion == "warp"
    with pytest.raises(ValueError, match="motion"):
        TalkerConfig.tiny(motion="flow")


def _talker_out(model, batch, **kw):
    return model(batch["identity"], batch["mfcc"], **kw)["frames"]


def test_talker_warp_shapes_and_the_warped_input_matters(batch):
    torch.manual_seed(0)
    model = Talker(TalkerConfig.tiny(motion="warp")).eval()
    warp = {"warped": batch["warped"], "mouth_mask": batch["mouth_mask"]}
    with torch.no_grad():
        out = model(batch["identity"], batch["mfcc"], **warp)
        other = _talker_out(model, batch, warped=batch["warped"].flip(-1),
                            mouth_mask=batch["mouth_mask"])
    assert out["frames"].shape == (2, 8, 3, S, S) and out["fused"].shape[:2] == (2, 8)
    assert (out["frames"] - other).abs().max() > 1e-3
    with pytest.raises(ValueError, match="needs warped"):
        _talker_out(model, batch)
    with pytest.raises(ValueError, match="motion='none'"):
        _talker_out(Talker(TalkerConfig.tiny()), batch, **warp)


def test_diffusion_warp_shapes_and_the_warped_input_matters(batch):
    torch.manual_seed(0)
    model = DiffusionTalker(DiffusionConfig.tiny(motion="warp"))
    for p in model.unet.out.parameters():  # a zero-initialised output would hide the inputs
        torch.nn.init.normal_(p, std=0.1)
    warp = {"warped": batch["warped"], "mouth_mask": batch["mouth_mask"]}
    out = model(batch["identity"], batch["mfcc"], batch["frames"], per_frames=3, **warp)
    assert out["pred"].shape == (6, 3, S, S)
    kw = dict(steps=2, seed=0)
    a = model.sample(batch["identity"], batch["mfcc"], **kw, **warp)
    b = model.sample(batch["identity"], batch["mfcc"], **kw, warped=batch["warped"].flip(-1),
                     mouth_mask=batch["mouth_mask"])
    assert a.shape == (2, 8, 3, S, S) and (a - b).abs().max() > 1e-3
    with pytest.raises(ValueError, match="needs warped"):
        model.sample(batch["identity"], batch["mfcc"], **kw)


def _clips(root):
    return load_index(root)


@pytest.mark.parametrize("kind", ["talker", "diffusion"])
def test_two_steps_export_and_reload(kind, root, batch, tmp_path):
    clips = _clips(root)
    if kind == "talker":
        model_cfg = TalkerConfig.tiny(motion="warp")
        cfg = TalkerTrainConfig.tiny(max_steps=2, batch_size=2, seq_len=6, w_per=0.0,
                                     max_minutes=None, ckpt_every=1)
        trainer = talker_trainer(root, clips, tmp_path / "run", model_cfg, cfg,
                                 mfcc_stats=STATS, progress=False)
    else:
        model_cfg = DiffusionConfig.tiny(motion="warp")
        cfg = DiffusionTrainConfig.tiny(max_steps=2, batch_size=2, seq_len=6, per_frames=2,
                                        max_minutes=None, ckpt_every=1)
        trainer = diffusion_trainer(root, clips, tmp_path / "run", model_cfg, cfg,
                                    mfcc_stats=STATS, progress=False)
    assert trainer.fit()["steps"] == 2
    model = trainer.model.talker if kind == "talker" else trainer.model
    path = trainer.export(tmp_path / f"{kind}.pt", model=model)
    assert read_checkpoint(path)["model_config"]["motion"] == "warp"
    loaded = load_checkpoint(path, kind=kind)
    assert loaded.config.motion == "warp" and loaded.config == model_cfg
    warp = {"warped": batch["warped"], "mouth_mask": batch["mouth_mask"]}
    model.eval()
    with torch.no_grad():
        if kind == "talker":
            same = [_talker_out(m, batch, **warp) for m in (model, loaded.model)]
        else:
            same = [m.sample(batch["identity"], batch["mfcc"], steps=2, **warp)
                    for m in (model, loaded.model)]
    assert torch.equal(*same)


@pytest.mark.parametrize("cls,build", [(TalkerConfig, Talker), (DiffusionConfig, DiffusionTalker)])
def test_a_model_config_without_motion_loads_as_none(cls, build, tmp_path):
    cfg = cls.tiny()
    old = asdict(cfg)
    old.pop("motion")
    if cls is DiffusionConfig:
        old["talker"].pop("motion")
    assert from_dict(cls, old) == cfg
    torch.manual_seed(0)
    model = build(cfg)
    kind = "talker" if cls is TalkerConfig else "diffusion"
    path = save_model(tmp_path / "old.pt", kind, model, old)
    loaded = load_checkpoint(path, kind=kind)
    assert loaded.config.motion == "none"
    assert replace(loaded.config) == cfg


@pytest.mark.parametrize("kind", ["talker", "diffusion"])
def test_a_warp_checkpoint_generates_from_speech(kind, root, batch, tmp_path):
    """load_generator gives a warp-mode checkpoint its warped identity from the speech (the
    shipped warp generator's motion), chunked decoding included, as the model would."""
    from coursekit.infer import load_generator
    from coursekit.infer.generator import decode_in_chunks
    from coursekit.infer.warp_renderer import motion_driver, warp_inputs_from_speech

    if kind == "talker":
        torch.manual_seed(0)
        model = Talker(TalkerConfig.tiny(motion="warp"))
        torch.nn.init.normal_(model.decoder.out.weight, std=0.05)  # not the zero start
    else:
        model = DiffusionTalker(DiffusionConfig.tiny(motion="warp"))
    path = save_model(tmp_path / f"{kind}.pt", kind, model, asdict(model.cfg),
                      meta={"mfcc_mean": torch.zeros(12), "mfcc_std": torch.ones(12)})
    gen = load_generator(path)
    assert gen.hears_speech
    identity, mfcc = batch["identity"][0], batch["mfcc"][0]
    n = len(mfcc)
    speech = np.random.default_rng(1).normal(0, 0.1, 16000 * n // 25).astype(np.float32)
    warped, mask = warp_inputs_from_speech(gen, motion_driver(), identity, mfcc, speech)
    assert warped.shape == (n, 3, S, S) and mask.shape == (n, 1, S, S)
    assert not torch.equal(warped, identity[None].expand_as(warped))  # the speech moved it
    got = gen(identity, mfcc, speech=speech, steps=2)
    model.eval()
    with torch.no_grad():
        if kind == "talker":
            want = model(identity[None], mfcc[None], warped=warped[None],
                         mouth_mask=mask[None])["frames"][0]
            chunked = decode_in_chunks(model, identity, mfcc, chunk=4, warped=warped,
                                       mouth_mask=mask)
            torch.testing.assert_close(chunked, want, atol=1e-5, rtol=0)
        else:
            want = model.sample(identity[None], mfcc[None], steps=2, seed=0,
                                warped=warped[None], mouth_mask=mask[None])[0]
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
