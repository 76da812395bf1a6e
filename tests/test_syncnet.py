"""The lip-sync expert: shapes, a short training run, and the committed tiny checkpoint's
judgement of held-out sample utterances (real, shuffled audio, delayed video)."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from coursekit.data.corpus import SAMPLES_DIR, list_clips
from coursekit.data.dataset import load_index
from coursekit.data.preprocess import PreprocessConfig, preprocess_corpus
from coursekit.metrics import sync_scores
from coursekit.models.syncnet import SyncNet, SyncNetConfig, windows
from coursekit.train.audio2au import holdout_split
from coursekit.train.syncnet import (SyncNetTrainConfig, contrastive_loss, evaluate_syncnet,
                                     fit_length, load_clip, load_syncnet, shift_frames,
                                     train_syncnet)

ROOT = Path(__file__).resolve().parent.parent
CHECKPOINT = ROOT / "checkpoints" / "tiny" / "syncnet.pt"
SPEAKERS = ("spk1", "spk2", "spk3", "spk4")


@pytest.fixture(scope="module")
def held_out64(tmp_path_factory) -> Path:
    """The held-out utterances (``holdout_split``) of spk1-spk4, processed at 64 px with
    ground truth: the clips the committed expert never saw (8 clips, a few seconds)."""
    clips = [{"speaker": c.speaker, "utt": c.utt_id, "clip": c}
             for c in list_clips(SAMPLES_DIR, list(SPEAKERS))]
    _, held = holdout_split(clips)
    src = tmp_path_factory.mktemp("held_src")
    for entry in held:
        clip = entry["clip"]
        for path in (clip.video, clip.audio, clip.align, clip.phones, clip.ground_truth):
            if path is not None:
                dst = src / clip.speaker / path.parent.name / path.name
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, dst)
    out = tmp_path_factory.mktemp("held64")
    preprocess_corpus(src, out, PreprocessConfig(size=64, landmarks="ground_truth",
                                                 aus="ground_truth"), progress=False)
    return out


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


def test_short_training_run_lowers_the_loss(held_out64, tmp_path):
    torch.set_num_threads(1)
    clips = load_index(held_out64)
    cfg = SyncNetTrainConfig(steps=40, batch_size=16, hard_negatives=3, log_every=5, lr=2e-3)
    result = train_syncnet(held_out64, clips, tmp_path / "s.pt", SyncNetConfig.tiny(), cfg,
                           progress=False, log_path=tmp_path / "s.csv")
    loss = np.array(result["history"]["loss"])
    assert result["steps"] == 40 and len(loss) == 8
    assert loss[-2:].mean() < 0.8 * loss[0], loss
    expert, ckpt = load_syncnet(result["checkpoint"])
    assert not expert.training and ckpt["mfcc_mean"].shape == (12, 1)
    assert ckpt["clips"] == [f"{c['speaker']}/{c['utt']}" for c in clips]
    assert not list(tmp_path.glob(".*"))  # the atomic write left no temporary file
    with pytest.raises(ValueError, match="sync expert"):
        torch.save({"kind": "other"}, tmp_path / "x.pt")
        load_syncnet(tmp_path / "x.pt")


# ----------------------------------------------------------------------------- the checkpoint


@pytest.fixture(scope="module")
def committed():
    assert CHECKPOINT.is_file(), f"{CHECKPOINT} is missing (benchmarks/syncnet_tiny.py --save)"
    return load_syncnet(CHECKPOINT)


def test_committed_checkpoint_is_small_and_never_saw_the_held_out_clips(committed, held_out64):
    assert CHECKPOINT.stat().st_size < 2_000_000
    _, ckpt = committed
    trained = set(ckpt["clips"])
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
