"""The lip-sync expert: shapes, a short training run on the Trainer (exact resume, the
command line), and the committed tiny checkpoint's judgement of held-out sample utterances
(real, shuffled audio, delayed video)."""

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from coursekit.assets import TINY_DIR, default_scorers
from coursekit.checkpoint import CheckpointError, read_checkpoint
from coursekit.cli import main
from coursekit.data.corpus import SAMPLES_DIR, list_clips
from coursekit.data.dataset import load_index, mfcc_stats
from coursekit.data.preprocess import PreprocessConfig, preprocess_corpus
from coursekit.data.splits import make_split
from coursekit.metrics import sync_scores
from coursekit.models.syncnet import SyncNet, SyncNetConfig, windows
from coursekit.train.au_classifier import load_au_classifier, score_classifier
from coursekit.train.syncnet import (SyncNetTrainConfig, SyncWindows, contrastive_loss,
                                     evaluate_syncnet, fit_length, load_clip, load_syncnet,
                                     shift_frames, train_syncnet)

CHECKPOINT = TINY_DIR / "syncnet.pt"
SPEAKERS = ("spk1", "spk2", "spk3", "spk4")


def fast(**kw) -> SyncNetTrainConfig:
    """The tiny preset with small batches and a few steps."""
    base = dict(max_steps=6, batch_size=8, hard_negatives=2, ckpt_every=3, lr=2e-3)
    return dataclasses.replace(SyncNetTrainConfig.tiny(), **{**base, **kw})


def held_out(tmp_path_factory, size: int) -> Path:
    """The held-out utterances (every 5th, :func:`make_split`) of spk1-spk4, processed at
    ``size`` px with ground truth: the clips the committed scorers never saw (8 clips)."""
    clips = [{"speaker": c.speaker, "utt": c.utt_id, "clip": c}
             for c in list_clips(SAMPLES_DIR, list(SPEAKERS))]
    held = make_split(clips).test
    src = tmp_path_factory.mktemp("held_src")
    for entry in held:
        clip = entry["clip"]
        for path in (clip.video, clip.audio, clip.align, clip.phones, clip.ground_truth):
            if path is not None:
                dst = src / clip.speaker / path.parent.name / path.name
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, dst)
    out = tmp_path_factory.mktemp(f"held{size}")
    preprocess_corpus(src, out, PreprocessConfig(size=size, landmarks="ground_truth",
                                                 aus="ground_truth"), progress=False)
    return out


@pytest.fixture(scope="module")
def held_out64(tmp_path_factory) -> Path:
    return held_out(tmp_path_factory, 64)


# ----------------------------------------------------------------------------- the network


@pytest.mark.parametrize("preset", ["tiny", "paper"])
def test_shapes_and_unit_embeddings(preset):
    cfg = getattr(SyncNetConfig, preset)()
    model = SyncNet(cfg).eval()
    s = cfg.image_size
    faces = torch.rand(3, 5, 3, s, s) * 2 - 1
    mfcc = torch.randn(3, 5, 12, 28)
    v, a = model.embed_video(faces[..., s // 2:, :]), model.embed_audio(mfcc)
    assert v.shape == a.shape == (3, cfg.embed_dim)
    assert torch.allclose(v.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert torch.allclose(a.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert torch.allclose(model.embed_video(faces), v)  # full faces are cropped to the lower half
    cos = model(faces, mfcc)
    assert cos.shape == (3,) and torch.allclose(cos, (v * a).sum(-1), atol=1e-6)
    with pytest.raises(ValueError):
        model.embed_audio(torch.randn(3, 4, 12, 28))
    assert SyncNetConfig.from_dict(
        {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.__dict__.items()}) == cfg


def test_windows_and_shifts():
    x = torch.arange(8.0)[:, None]
    w = windows(x, 5)
    assert w.shape == (4, 5, 1) and w[3, :, 0].tolist() == [3, 4, 5, 6, 7]
    assert shift_frames(x, 2)[:, 0].tolist() == [0, 0, 0, 1, 2, 3, 4, 5]
    assert shift_frames(x, -2)[:, 0].tolist() == [2, 3, 4, 5, 6, 7, 7, 7]
    assert fit_length(x, 10)[:, 0].tolist() == list(range(8)) + [7, 7]
    assert fit_length(x, 3).shape == (3, 1)


def test_contrastive_loss_prefers_aligned_pairs():
    v = torch.nn.functional.normalize(torch.randn(6, 8), dim=-1)
    hard = torch.nn.functional.normalize(torch.randn(6, 3, 8), dim=-1)
    same = torch.zeros(6, 6, dtype=torch.bool)
    good, acc_good = contrastive_loss(v, v, hard, same, 0.1)
    bad, acc_bad = contrastive_loss(v, v.roll(1, 0), hard, same, 0.1)
    assert good < 0.5 < bad and acc_good == 1.0 and acc_bad < 1.0
    # a masked in-batch pair is no negative: making it identical to the positive costs nothing
    twin = v.clone()
    twin[1] = v[0]
    mask = torch.zeros(6, 6, dtype=torch.bool)
    mask[0, 1] = mask[1, 0] = True
    unmasked, _ = contrastive_loss(twin, twin, hard, same, 0.1)
    masked, _ = contrastive_loss(twin, twin, hard, mask, 0.1)
    assert masked < 0.5 * unmasked


# ----------------------------------------------------------------------------- training


def test_windows_are_read_lazily_and_replayed_by_epoch(held_out64):
    clips = load_index(held_out64)
    data = SyncWindows(held_out64, clips, mfcc_stats(clips), hard_negatives=3)
    assert len(data) == sum(c["n_frames"] - 4 for c in clips)
    data.set_epoch(2)
    item = data[7]
    assert item["video"].shape == (5, 3, 32, 64) and item["audio"].shape == (5, 12, 28)
    assert item["hard"].shape == (3, 5, 12, 28) and item["start"] == 7
    assert -1 <= item["video"].min() and item["video"].max() <= 1
    again = data[7]
    assert all(torch.equal(item[k], again[k]) for k in ("video", "audio", "hard"))


def test_short_training_run_lowers_the_loss(held_out64, tmp_path):
    torch.set_num_threads(1)
    clips = load_index(held_out64)
    cfg = fast(max_steps=40, batch_size=16, hard_negatives=3, log_every=5, ckpt_every=100)
    result = train_syncnet(held_out64, clips, tmp_path / "s.pt", SyncNetConfig.tiny(), cfg,
                           progress=False)
    loss = np.array(result["history"]["loss"])
    assert result["steps"] == 40 and len(loss) == 8
    assert result["history"]["step"] == list(range(5, 45, 5))
    assert loss[-2:].mean() < 0.8 * loss[0], loss
    expert, meta = load_syncnet(result["checkpoint"])
    assert not expert.training and meta["mfcc_mean"].shape == (12, 1)
    assert meta["clips"] == [f"{c['speaker']}/{c['utt']}" for c in clips]
    assert read_checkpoint(result["checkpoint"])["kind"] == "syncnet"
    assert not list(tmp_path.glob(".*"))  # the atomic write left no temporary file
    torch.save({"kind": "other"}, tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match="x.pt: not a coursekit checkpoint"):
        load_syncnet(tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match="'au_classifier' checkpoint, expected 'syncnet'"):
        load_syncnet(TINY_DIR / "judge.pt")


def test_resumed_run_ends_with_the_uninterrupted_weights(held_out64, tmp_path):
    torch.set_num_threads(1)
    clips = load_index(held_out64)[:4]
    whole = train_syncnet(held_out64, clips, tmp_path / "whole.pt", SyncNetConfig.tiny(), fast(),
                          progress=False)
    def kill(step, trainer):  # stopped after step 3's checkpoint (the cosine keeps its length)
        trainer.should_stop = step >= 3

    train_syncnet(held_out64, clips, tmp_path / "part.pt", SyncNetConfig.tiny(), fast(),
                  progress=False, on_step=kill)
    assert len((tmp_path / "part" / "log.csv").read_text().splitlines()) == 4
    part = train_syncnet(held_out64, clips, tmp_path / "part.pt", SyncNetConfig.tiny(), fast(),
                         progress=False, resume=True)
    assert part["steps"] == 6 and part["history"] == whole["history"]
    a, b = (read_checkpoint(r["checkpoint"])["model"] for r in (whole, part))
    for k in a:
        assert torch.allclose(a[k].float(), b[k].float(), atol=1e-6), k


def test_cli_trains_a_sync_expert(held_out64, tmp_path, capsys):
    out = tmp_path / "sync.pt"
    assert main(["train", "syncnet", "tiny", "--data", str(held_out64), "--out", str(out),
                 "--steps", "2", "--threads", "1", "--no-eval", "--half"]) == 0
    assert "64 px, 2 steps" in capsys.readouterr().out
    ckpt = read_checkpoint(out)
    assert ckpt["model_config"]["image_size"] == 64
    assert ckpt["model"]["video.0.weight"].dtype == torch.float16


# ----------------------------------------------------------------------------- the checkpoint


@pytest.fixture(scope="module")
def committed():
    assert CHECKPOINT.is_file(), f"{CHECKPOINT} is missing (benchmarks/syncnet_tiny.py --save)"
    return load_syncnet(CHECKPOINT)


def test_committed_checkpoint_is_small_and_never_saw_the_held_out_clips(committed, held_out64):
    assert CHECKPOINT.stat().st_size < 2_000_000
    _, meta = committed
    trained = set(meta["clips"])
    assert len(trained) >= 30
    held = {f"{c['speaker']}/{c['utt']}" for c in load_index(held_out64)}
    assert len(held) == 8 and not trained & held


@pytest.fixture(scope="module")
def held_out_results(committed, held_out64):
    torch.set_num_threads(1)
    expert, ckpt = committed
    clips = load_index(held_out64)
    return evaluate_syncnet(expert, held_out64, clips, (ckpt["mfcc_mean"], ckpt["mfcc_std"]),
                            shift=5)


def test_expert_finds_held_out_clips_in_sync(held_out_results):
    real = held_out_results["real"]
    offsets = [r["offset"] for r in real]
    assert np.mean([abs(o) <= 1 for o in offsets]) >= 0.75, offsets


def test_expert_tells_own_audio_from_another_utterance(held_out_results):
    real, shuffled = held_out_results["real"], held_out_results["shuffled"]
    lower = [r["distance"] < s["distance"] for r, s in zip(real, shuffled)]
    surer = [r["confidence"] > s["confidence"] for r, s in zip(real, shuffled)]
    assert np.mean(lower) >= 0.75 and np.mean(surer) >= 0.75, (real, shuffled)
    summary = held_out_results["summary"]
    assert summary["real"]["distance"] < summary["shuffled"]["distance"] - 0.1
    assert summary["real"]["confidence"] > 2 * summary["shuffled"]["confidence"]


def test_expert_recovers_a_five_frame_delay(held_out_results):
    offsets = [r["offset"] for r in held_out_results["shifted"]]
    assert np.mean([abs(o - 5) <= 1 for o in offsets]) >= 0.75, offsets


def test_expert_detects_an_advance_too(committed, held_out64):
    expert, ckpt = committed
    clip = load_index(held_out64)[0]
    frames, mfcc = load_clip(held_out64, clip, (ckpt["mfcc_mean"], ckpt["mfcc_std"]))
    s = sync_scores(expert, shift_frames(frames, -4), mfcc)
    assert abs(s["offset"] + 4) <= 1, s["offset"]


def test_committed_112px_scorers_on_held_out_clips(tmp_path_factory):
    """The scorers ``default_scorers(112)`` returns: small, 112 px, and as good on held-out
    utterances as the 64 px ones."""
    judge_path, sync_path = default_scorers(112)
    assert judge_path == TINY_DIR / "judge112.pt" and sync_path == TINY_DIR / "syncnet112.pt"
    assert judge_path.stat().st_size < 2_000_000 and sync_path.stat().st_size < 2_000_000
    torch.set_num_threads(1)
    data = held_out(tmp_path_factory, 112)
    clips = load_index(data)
    expert, meta = load_syncnet(sync_path)
    assert expert.cfg.image_size == 112 and not set(meta["clips"]) & {
        f"{c['speaker']}/{c['utt']}" for c in clips}
    results = evaluate_syncnet(expert, data, clips, (meta["mfcc_mean"], meta["mfcc_std"]))
    assert np.mean([r["offset"] == 0 for r in results["real"]]) >= 0.75, results["real"]
    summary = results["summary"]
    assert summary["real"]["confidence"] > 2 * summary["shuffled"]["confidence"], summary
    assert results["summary"]["shifted"]["offset_ok"] >= 0.75
    f1 = score_classifier(load_au_classifier(judge_path), data, clips)["f1"]
    assert f1.mean() > 0.75 and f1.min() > 0.5, f1
