"""The paper configs really train, and every run resumes exactly.

Paper sizes (``TalkerConfig.paper()``: 53 M parameters; ``DiffusionConfig.paper()`` with its
EMA) on the CPU at the paper's 112 px: two optimiser steps at batch 1 on 2-frame windows of
two sample clips, the exported file reloaded through :func:`coursekit.checkpoint.load_checkpoint`,
one more step resumed from ``last.pt``. Then the tiny configs: a run stopped after a checkpoint
and resumed ends with the weights of an uninterrupted one.
"""

import dataclasses
import shutil
import warnings

import coursekit  # noqa: F401  (sets OMP_WAIT_POLICY before torch starts)
import pytest
import torch

from coursekit.checkpoint import load_checkpoint, save_model
from coursekit.data.dataset import TalkingFaceDataset, load_index, mfcc_stats
from coursekit.models.au_classifier import AUClassifier
from coursekit.models.config import (AUClassifierConfig, DiffusionConfig, TalkerConfig,
                                     UNetConfig)
from coursekit.train.diffusion import DiffusionTrainConfig, train_diffusion
from coursekit.train.talker import TalkerTrainConfig, train_talker


@pytest.fixture(scope="session")
def processed112(tmp_path_factory):
    """Two clips of spk1 at the paper's 112 px, ground-truth landmarks and AUs."""
    from coursekit.data.corpus import SAMPLES_DIR
    from coursekit.data.preprocess import PreprocessConfig, preprocess_corpus

    src = tmp_path_factory.mktemp("src112") / "spk1"
    utts = sorted(p.stem for p in (SAMPLES_DIR / "spk1" / "video").iterdir())[:2]
    for sub in ("video", "audio", "align", "gt"):
        (src / sub).mkdir(parents=True)
        for f in (SAMPLES_DIR / "spk1" / sub).iterdir():
            if f.stem in utts:
                shutil.copy2(f, src / sub / f.name)
    out = tmp_path_factory.mktemp("processed112")
    preprocess_corpus(src.parent, out, PreprocessConfig(size=112, landmarks="ground_truth",
                                                        aus="ground_truth"), progress=False)
    clips = load_index(out)
    assert len(clips) == 2
    return out, clips, mfcc_stats(clips)


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the perceptual loss's fallback weights
        yield


def _clf(path, image_size: int, tiny: bool = False):
    """An untrained AU classifier checkpoint (the talker fine-tunes it)."""
    cfg = AUClassifierConfig.tiny() if tiny else AUClassifierConfig.paper()
    cfg = dataclasses.replace(cfg, image_size=image_size)
    torch.manual_seed(0)
    return save_model(path, "au_classifier", AUClassifier(cfg), cfg,
                      meta={"occurrence_rates": [0.2, 0.3, 0.1, 0.5, 0.4]})


def _item(root, clips, stats, frames: int = 2):
    item = TalkingFaceDataset(root, clips[:1], frames, random_window=False,
                              fields=("identity", "mfcc"), normalize_mfcc=stats)[0]
    return item["identity"][None], item["mfcc"][None]


class Keep:
    """An ``on_step`` hook that keeps the trainer (to look at its EMA copy)."""

    trainer = None

    def __call__(self, step, trainer):
        self.trainer = trainer


def _same_output(a, b, *inputs, **kw):
    """``a(*inputs, **kw)`` and ``b(...)`` agree (their ``frames`` for a talker)."""
    x, y = (v["frames"] if isinstance(v, dict) else v for v in (a(*inputs, **kw), b(*inputs, **kw)))
    torch.testing.assert_close(x, y, rtol=0, atol=1e-6)


def _assert_same_weights(a: dict, b: dict):
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6, msg=k)


# ----------------------------------------------------------------------------- paper sizes


def test_paper_talker_trains_exports_and_resumes(processed112, tmp_path):
    root, clips, stats = processed112
    model_cfg = TalkerConfig.paper()
    cfg = TalkerTrainConfig.paper(batch_size=1, seq_len=2, per_frames=1, max_steps=2,
                                  device="cpu")
    out, keep = tmp_path / "talker.pt", Keep()
    kwargs = dict(mfcc_stats=stats, au_classifier=_clf(tmp_path / "clf.pt", 112),
                  progress=False, on_step=keep)
    identity, mfcc = _item(root, clips, stats)
    outputs = []
    for steps in (2, 3):  # two steps, then one more resumed from last.pt
        cfg.max_steps = steps
        train_talker(root, clips, out, model_cfg, cfg, resume=steps == 3, **kwargs)
        assert keep.trainer.step == steps
        loaded = load_checkpoint(out, kind="talker")
        assert loaded.meta["steps"] == steps and loaded.model.cfg == model_cfg
        with torch.no_grad():
            _same_output(keep.trainer.model.talker.eval(), loaded.model, identity, mfcc)
            outputs.append(loaded.model(identity, mfcc)["frames"])
    assert not torch.equal(*outputs)


def test_paper_diffusion_trains_exports_resumes_and_samples(processed112, tmp_path):
    root, clips, stats = processed112
    model_cfg = DiffusionConfig.paper()
    cfg = DiffusionTrainConfig.paper(batch_size=1, seq_len=2, per_frames=1, max_steps=2,
                                     amp="none", device="cpu")
    assert cfg.ema_decay is not None
    out, keep = tmp_path / "diffusion.pt", Keep()
    train_diffusion(root, clips, out, model_cfg, cfg, mfcc_stats=stats, progress=False,
                    on_step=keep)
    first = load_checkpoint(out, kind="diffusion")  # the EMA weights
    assert first.meta["steps"] == 2
    _assert_same_weights(first.model.state_dict(), keep.trainer.ema.state_dict())
    del first

    cfg.max_steps = 3
    train_diffusion(root, clips, out, model_cfg, cfg, mfcc_stats=stats, progress=False,
                    on_step=keep, resume=True)
    assert keep.trainer.step == 3
    loaded = load_checkpoint(out, kind="diffusion")
    identity, mfcc = _item(root, clips, stats)
    with torch.no_grad():  # a one-step DDIM sample of two frames
        _same_output(keep.trainer.ema.sample, loaded.model.sample, identity, mfcc, steps=1,
                     seed=0)
        frames = loaded.model.sample(identity, mfcc, steps=1, seed=0)
    assert frames.shape == (1, 2, 3, 112, 112) and torch.isfinite(frames).all()


# ----------------------------------------------------------------------------- exact resume


def _run_twice(train, run_dir, cfg, steps: int, stop: int):
    """An uninterrupted run of ``steps`` and one stopped at ``stop`` then resumed; returns
    both trainers."""
    keep_a, keep_b = Keep(), Keep()
    cfg.max_steps = steps
    train(run_dir / "a" / "model.pt", cfg, keep_a, False)
    cfg.max_steps = stop
    train(run_dir / "b" / "model.pt", cfg, keep_b, False)
    cfg.max_steps = steps
    train(run_dir / "b" / "model.pt", cfg, keep_b, True)
    return keep_a.trainer, keep_b.trainer


def test_tiny_talker_resumes_exactly(processed112, tmp_path):
    root, clips, stats = processed112
    model_cfg = TalkerConfig.tiny(image_size=112, tcsan_levels=2)
    cfg = TalkerTrainConfig.tiny(batch_size=2, seq_len=4, per_frames=3, max_minutes=None,
                                 ckpt_every=2, ema_decay=0.9)
    clf = _clf(tmp_path / "clf.pt", 112, tiny=True)

    def train(out, cfg, keep, resume):
        train_talker(root, clips, out, model_cfg, cfg, mfcc_stats=stats, au_classifier=clf,
                     progress=False, on_step=keep, resume=resume)

    a, b = _run_twice(train, tmp_path, cfg, steps=4, stop=2)
    assert a.step == b.step == 4
    _assert_same_weights(a.model.state_dict(), b.model.state_dict())  # talker and classifier
    _assert_same_weights(a.ema.state_dict(), b.ema.state_dict())
    rows = (tmp_path / "b" / "model.csv").read_text().splitlines()
    assert len(rows) == 5  # header + one row per step


def test_tiny_diffusion_resumes_exactly(processed112, tmp_path):
    root, clips, stats = processed112
    talker = TalkerConfig.tiny(image_size=112, tcsan_channels=32, tcsan_levels=2)
    unet = UNetConfig(channels=(16, 32), blocks=1, attn_levels=(1,), heads=2, patch=2,
                      cond_token_dim=8, time_dim=32, groups=8)
    model_cfg = DiffusionConfig.tiny(talker=talker, audface_dim=8, mask_channels=(8, 16),
                                     unet=unet)
    cfg = DiffusionTrainConfig.tiny(batch_size=2, per_frames=2, max_minutes=None, ckpt_every=2,
                                    lr_audio2au=1e-4)

    def train(out, cfg, keep, resume):
        train_diffusion(root, clips, out, model_cfg, cfg, mfcc_stats=stats, progress=False,
                        on_step=keep, resume=resume)

    a, b = _run_twice(train, tmp_path, cfg, steps=4, stop=2)
    assert a.step == b.step == 4
    _assert_same_weights(a.model.state_dict(), b.model.state_dict())
    _assert_same_weights(a.ema.state_dict(), b.ema.state_dict())


# ----------------------------------------------------------------------------- the other kinds at paper size


def _two_steps_then_resume(train, out, kind: str, check):
    """Two optimiser steps, export, reload through load_checkpoint, one step resumed; ``check``
    compares the live trainer's model with the loaded one after each run."""
    keep = Keep()
    for steps in (2, 3):
        trainer_steps = train(steps, keep, steps == 3)
        assert keep.trainer.step == steps == trainer_steps
        loaded = load_checkpoint(out, kind=kind)
        check(keep.trainer, loaded.model)


def test_paper_audio2au_trains_exports_and_resumes(processed112, tmp_path):
    from coursekit.models import Audio2AU
    from coursekit.train.audio2au import Audio2AUTrainConfig, train_audio2au

    root, clips, _ = processed112
    cfg = Audio2AUTrainConfig(batch_size=1, seq_len=2, val_fraction=0, device="cpu",
                              progress=False)
    assert cfg.model == {}  # the paper's sizes

    def train(steps, keep, resume):
        cfg.max_steps = steps
        train_audio2au(root, tmp_path, cfg, clips, resume=resume, on_step=keep)
        return keep.trainer.step

    def check(trainer, model):
        assert isinstance(model, Audio2AU) and len(model.nets) == 5
        x = torch.randn(1, 2, 12, 28)
        with torch.no_grad():
            _same_output(trainer.model.eval(), model, x)

    _two_steps_then_resume(train, tmp_path / "audio2au.pt", "audio2au", check)


def test_paper_au_classifier_trains_exports_and_resumes(processed112, tmp_path):
    from coursekit.train.au_classifier import AUClassifierTrainConfig, train_au_classifier

    root, clips, _ = processed112
    cfg = AUClassifierTrainConfig.paper(batch_size=1, device="cpu")
    out = tmp_path / "clf.pt"

    def train(steps, keep, resume):
        cfg.max_steps = steps
        train_au_classifier(root, clips, out, AUClassifierConfig.paper(), cfg, progress=False,
                            resume=resume, on_step=keep)
        return keep.trainer.step

    def check(trainer, model):
        x = torch.randn(2, 3, 112, 112)
        with torch.no_grad():
            _same_output(trainer.model.eval(), model, x)

    _two_steps_then_resume(train, out, "au_classifier", check)


def test_paper_sync_expert_trains_exports_and_resumes(processed112, tmp_path):
    from coursekit.models.syncnet import SyncNetConfig
    from coursekit.train.syncnet import SyncNetTrainConfig, train_syncnet

    root, clips, stats = processed112
    cfg = SyncNetTrainConfig.paper(batch_size=1, hard_negatives=1, device="cpu")
    out = tmp_path / "syncnet.pt"

    def train(steps, keep, resume):
        cfg.max_steps = steps
        train_syncnet(root, clips, out, SyncNetConfig.paper(), cfg, progress=False,
                      stats=stats, resume=resume, on_step=keep)
        return keep.trainer.step

    def check(trainer, model):
        frames, mfcc = torch.randn(1, 5, 3, 112, 112), torch.randn(1, 5, 12, 28)
        with torch.no_grad():
            a = trainer.model.eval().embed_video(frames)
            torch.testing.assert_close(a, model.embed_video(frames), rtol=0, atol=1e-6)
            a = trainer.model.embed_audio(mfcc)
            torch.testing.assert_close(a, model.embed_audio(mfcc), rtol=0, atol=1e-6)

    _two_steps_then_resume(train, out, "syncnet", check)
